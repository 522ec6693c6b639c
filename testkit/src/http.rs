//! A small HTTP/1.1 client for tests: one connection per request.
//!
//! * [`request`] and friends (hyper): well-formed requests, the answer as a [`Resp`];
//! * [`raw_request`]: the request written by hand (any header line, as sent), the answer
//!   read until the server closes, for the admin port and malformed input;
//! * [`read_until_closed`]: for raw sockets left open on purpose (slow clients).
//!
//! Server-sent event streams are in [`crate::sse`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long [`request`] waits for a whole answer (long polls included).
pub const REQUEST_LIMIT: Duration = Duration::from_secs(330);

/// An answer, its body read whole.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Resp {
    /// The body as JSON; panics (with the status and body) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {:?}",
                self.status, self.body
            )
        })
    }

    /// A header's value (any case of `name`).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Sends one request on a new connection; the answer with its body still to be read.
pub(crate) async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<hyper::Response<Incoming>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
        .map_err(|e| format!("request: {e}"))?;
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))
}

/// One request, unbounded; `Err` (saying why) if the server cannot be reached or the
/// exchange breaks.
pub async fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Resp, String> {
    let resp = send(addr, method, path, headers, body).await?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// One request that must be answered within [`REQUEST_LIMIT`]; panics otherwise,
/// naming the request.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    match tokio::time::timeout(
        REQUEST_LIMIT,
        try_request(addr, method, path, headers, body),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("{method} {path}: {e}"),
        Err(_) => panic!("{method} {path}: no answer within {REQUEST_LIMIT:?}"),
    }
}

/// `GET path` (see [`request`]).
pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], None).await
}

/// `PUT path` with `body` (see [`request`]).
pub async fn put(addr: SocketAddr, path: &str, body: &str) -> Resp {
    request(addr, "PUT", path, &[], Some(body)).await
}

/// `DELETE path` (see [`request`]).
pub async fn delete(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "DELETE", path, &[], None).await
}

/// `POST path`, with `body` if any (see [`request`]).
pub async fn post(addr: SocketAddr, path: &str, body: Option<&str>) -> Resp {
    request(addr, "POST", path, &[], body).await
}

/// One exchange written by hand, bounded by `limit`: `method path` with `headers`
/// (whole lines, each ending in CRLF, sent as they are), a Content-Length and `body`,
/// and `Connection: close`; the answer is read until the server closes. (status code,
/// head, body), or None when the server could not be reached, did not answer in time
/// or answered something that is not HTTP. The body is returned as sent (a chunked one
/// is not decoded).
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
    limit: Duration,
) -> Option<(u16, String, String)> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        Some(buf)
    };
    let buf = tokio::time::timeout(limit, exchange).await.ok()??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((code, head.to_string(), body.to_string()))
}

/// Reads from `s` until the peer closes it (EOF or reset); what it sent, and how long
/// after the call it closed (None: still open after `limit`).
pub async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into(), None),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&got).into(),
                    Some(started.elapsed()),
                );
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot server on 127.0.0.1 that answers `answer` to the first connection.
    async fn one_shot(answer: &'static str) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = l.local_addr().expect("local addr");
        tokio::spawn(async move {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(answer.as_bytes()).await;
        });
        addr
    }

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nX-Paddock-Index: 7\r\n\
                      Connection: close\r\n\r\n{\"a\": 1}\n";

    #[test]
    fn both_clients_read_an_answer() {
        crate::rt::run(async {
            let r = get(one_shot(OK).await, "/x").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header("X-Paddock-Index"), Some("7"));
            assert_eq!(r.json()["a"], 1);
            let (code, head, body) = raw_request(
                one_shot(OK).await,
                "POST",
                "/y",
                "X-Any: 1\r\n",
                "{}",
                Duration::from_secs(5),
            )
            .await
            .expect("an answer");
            assert_eq!(code, 200);
            assert!(head.contains("X-Paddock-Index: 7"), "{head}");
            assert_eq!(body, "{\"a\": 1}\n");
        });
    }
}
