//! A reader of server-sent events (`text/event-stream`) over [`crate::http`]: the
//! stream is opened with one GET and read event by event, each read bounded.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

/// How long [`Sse::open`] waits for the answer's head.
const OPEN_LIMIT: Duration = Duration::from_secs(10);

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// The `event:` field (`message` when there is none).
    pub event: String,
    pub id: Option<String>,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

impl SseEvent {
    /// The data as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// An open event stream.
pub struct Sse {
    body: Incoming,
    buf: String,
    /// The answer's status code.
    pub status: u16,
}

impl Sse {
    /// `GET path` with `headers`; panics when the answer's head does not come within
    /// 10 s or the server cannot be reached. A non-200 status is returned, not refused.
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Sse {
        let resp = crate::wait::within(
            OPEN_LIMIT,
            &format!("open the event stream GET {path}"),
            crate::http::send(addr, "GET", path, headers, None),
        )
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        Sse {
            body: resp.into_body(),
            buf: String::new(),
            status,
        }
    }

    /// The next event within `limit`, or `None` if none came (or the stream ended).
    /// Comments and blocks without an event or data field are skipped.
    pub async fn next_within(&mut self, limit: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(ev) = parse_block(&block) {
                    return Some(ev);
                }
                continue;
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame()).await;
            match frame {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                _ => return None,
            }
        }
    }

    /// The next event other than a `heartbeat`, within `limit`.
    pub async fn next_change(&mut self, limit: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = self.next_within(left).await?;
            if ev.event != "heartbeat" {
                return Some(ev);
            }
        }
    }

    /// Waits for an event named `name` (skipping others); panics, naming it, when none
    /// comes within `limit`.
    pub async fn expect(&mut self, name: &str, limit: Duration) -> SseEvent {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(ev) if ev.event == name => return ev,
                Some(_) => continue,
                None => panic!("no {name:?} event within {limit:?}"),
            }
        }
    }
}

/// One event from the lines of one block (up to a blank line); None when the block has
/// neither an `event:` nor a `data:` field.
fn parse_block(block: &str) -> Option<SseEvent> {
    let mut ev = SseEvent {
        event: "message".into(),
        id: None,
        data: String::new(),
    };
    let mut any = false;
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            ev.event = v.trim().to_string();
            any = true;
        } else if let Some(v) = line.strip_prefix("id:") {
            ev.id = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("data:") {
            if !ev.data.is_empty() {
                ev.data.push('\n');
            }
            ev.data.push_str(v.strip_prefix(' ').unwrap_or(v));
            any = true;
        }
    }
    any.then_some(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse_into_events() {
        let ev = parse_block("event: put\nid: 4\ndata: {\"a\":\ndata:  1}\n\n").expect("an event");
        assert_eq!(ev.event, "put");
        assert_eq!(ev.id.as_deref(), Some("4"));
        assert_eq!(ev.data, "{\"a\":\n 1}");
        assert_eq!(ev.json()["a"], 1);
        assert_eq!(parse_block(": a comment\n\n"), None);
        assert_eq!(
            parse_block("data: x\n\n").map(|e| e.event),
            Some("message".into())
        );
    }
}
