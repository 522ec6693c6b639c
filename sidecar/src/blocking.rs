//! Blocking reads: `?index=<zxid>&wait=<duration>` on any GET. The answer comes as soon
//! as the resource's index moves past `index` (or the handler's own condition holds,
//! e.g. an ETag differs from `If-None-Match`), or when `wait` (at most 5 minutes) is
//! up, with the current index in `X-Paddock-Index`.
//!
//! Waiting never hides a session problem: when the session drops, the wait ends and
//! the answer says so (or is a 503).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

use crate::app::App;
use crate::duration;
use crate::error::ApiError;
use crate::hub::{Filter, load_consistent};

/// The longest a read blocks.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// How long a read with `index` but no `wait` blocks.
pub const DEFAULT_WAIT: Duration = MAX_WAIT;

/// `index` and `wait`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Block {
    pub index: Option<i64>,
    pub wait: Option<Duration>,
}

impl Block {
    pub fn from_params(params: &HashMap<String, String>) -> Result<Block, ApiError> {
        let index = match params.get("index") {
            None => None,
            Some(raw) => Some(raw.trim().parse::<i64>().ok().filter(|i| *i >= 0).ok_or_else(
                || {
                    ApiError::bad_request(format!(
                        "index must be a non-negative integer (a zxid from X-Paddock-Index), got {raw:?}"
                    ))
                    .with_detail(serde_json::json!({ "field": "index" }))
                },
            )?),
        };
        let wait = match params.get("wait") {
            None => None,
            Some(raw) => Some(
                duration::parse(raw)
                    .map_err(|e| {
                        ApiError::bad_request(format!("wait: {e}"))
                            .with_detail(serde_json::json!({ "field": "wait" }))
                    })?
                    .min(MAX_WAIT),
            ),
        };
        Ok(Block { index, wait })
    }

    /// When to give up waiting, if the read blocks at all (`blocks` adds the handler's
    /// own reason to block, e.g. If-None-Match).
    pub fn deadline(&self, blocks: bool) -> Option<Instant> {
        if self.index.is_none() && !blocks {
            return None;
        }
        let wait = self.wait.unwrap_or(DEFAULT_WAIT);
        Some(Instant::now() + wait)
    }

    /// Whether `index` has moved past the one asked for.
    pub fn moved(&self, index: i64) -> bool {
        self.index.is_none_or(|asked| index > asked)
    }
}

/// Loads until `done` holds or the deadline passes; returns the last value and index.
/// `load` is called with no lock held; it returns the value and its index.
pub async fn until<T, F, Fut, D>(
    app: &App,
    filter: &Filter,
    deadline: Option<Instant>,
    mut load: F,
    mut done: D,
) -> Result<(T, i64), ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(T, i64), ApiError>>,
    D: FnMut(&T, i64) -> bool,
{
    let mut slots = app.sessions.subscribe();
    let mut local = app.local_changes();
    let mut shutdown = app.shutdown_signal();
    loop {
        slots.borrow_and_update();
        local.borrow_and_update();
        let loaded = load_consistent(&app.hub, filter, &mut load).await?;
        let Some(deadline) = deadline else {
            return Ok((loaded.value, loaded.index));
        };
        if done(&loaded.value, loaded.index) || Instant::now() >= deadline || app.shutting_down() {
            return Ok((loaded.value, loaded.index));
        }
        let mut sub = loaded.sub;
        if !loaded.consistent {
            // Changes keep coming: look again shortly.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        // Parked from here until something moves: visible as a gauge, so that a test
        // (or an operator) can tell that a reader is waiting.
        let _parked = app.metrics.blocking_read();
        tokio::select! {
            () = sub.next_relevant(filter) => {}
            _ = slots.changed() => {}
            _ = local.changed() => {}
            () = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Adds `X-Paddock-Index`.
pub fn index_header(headers: &mut HeaderMap, index: i64) {
    if let Ok(v) = HeaderValue::from_str(&index.to_string()) {
        headers.insert("x-paddock-index", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_caps() {
        let b = Block::from_params(&params(&[("index", "42"), ("wait", "10m")])).unwrap();
        assert_eq!(b.index, Some(42));
        assert_eq!(b.wait, Some(MAX_WAIT));
        assert!(b.moved(43));
        assert!(!b.moved(42));
        assert!(Block::from_params(&params(&[("index", "-1")])).is_err());
        assert!(Block::from_params(&params(&[("index", "x")])).is_err());
        let e = Block::from_params(&params(&[("wait", "soon")])).unwrap_err();
        assert!(e.message.starts_with("wait: "), "{}", e.message);
        let none = Block::from_params(&params(&[])).unwrap();
        assert!(none.deadline(false).is_none());
        assert!(none.moved(0));
    }
}
