//! A small HTTP/1.1 JSON client (one connection per request) for workers handing results
//! to the sink, and for the chaos run asking the sink for its counts.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// `http://HOST:PORT` (a trailing slash is fine; no path, no TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    authority: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: expected http://HOST:PORT"))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
            return Err(format!("{url:?}: expected http://HOST:PORT"));
        }
        Ok(Endpoint {
            authority: authority.to_string(),
        })
    }

    /// Sends `body` (JSON, or nothing for a GET) to `path`; the status and the JSON
    /// answer (Null when the answer is not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<(u16, serde_json::Value), String> {
        tokio::time::timeout(timeout, self.call_once(method, path, body))
            .await
            .map_err(|_| format!("{method} {path}: no answer within {timeout:?}"))?
    }

    async fn call_once(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), String> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("connect {}: {e}", self.authority))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.authority)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        // Answers here are a few hundred bytes; anything far larger is not the sink.
        let collected = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?
            .to_bytes();
        let json = serde_json::from_slice(&collected).unwrap_or(serde_json::Value::Null);
        Ok((status, json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert!(Endpoint::parse("http://127.0.0.1:7070/").is_ok());
        assert!(Endpoint::parse("127.0.0.1:7070").is_err());
        assert!(Endpoint::parse("http://host").is_err());
        assert!(Endpoint::parse("http://h:1/x").is_err());
    }
}
