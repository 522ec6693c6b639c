//! The one HTTP request the runtime makes: a GET for httpGet probes and preStop hooks, over a
//! plain TCP stream, timed and with a capped read (only the status line matters).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// At most this much of a response is read while looking for its status line.
const MAX_RESPONSE_BYTES: usize = 10 * 1024;

/// One GET request.
#[derive(Clone, Debug)]
pub(crate) struct HttpGet {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// Sends the request and returns the response's status code, all within `timeout`.
pub(crate) async fn get_status(request: &HttpGet, timeout: Duration) -> Result<u16, String> {
    let wire = request_bytes(request)?;
    let exchange = async {
        let mut stream = TcpStream::connect((request.host.as_str(), request.port))
            .await
            .map_err(|e| format!("dial tcp {}:{}: {e}", request.host, request.port))?;
        stream
            .write_all(&wire)
            .await
            .map_err(|e| format!("writing the request: {e}"))?;
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(code) = parse_status_line(&buf)? {
                return Ok(code);
            }
            if buf.len() >= MAX_RESPONSE_BYTES {
                return Err(format!(
                    "no HTTP status line in the first {MAX_RESPONSE_BYTES} bytes"
                ));
            }
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("reading the response: {e}"))?;
            if n == 0 {
                return Err("connection closed before an HTTP status line".to_owned());
            }
            let room = MAX_RESPONSE_BYTES - buf.len();
            buf.extend_from_slice(&chunk[..n.min(room)]);
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "Get \"http://{}:{}{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            request.host, request.port, request.path
        )),
    }
}

/// The request as bytes; a header or path with a line break is refused rather than sent.
fn request_bytes(request: &HttpGet) -> Result<Vec<u8>, String> {
    let unsafe_text = |s: &str| s.contains(['\r', '\n']);
    let path = if request.path.starts_with('/') {
        request.path.clone()
    } else {
        format!("/{}", request.path)
    };
    if unsafe_text(&path)
        || request
            .headers
            .iter()
            .any(|(k, v)| unsafe_text(k) || unsafe_text(v) || k.contains(':'))
    {
        return Err("a probe path or header contains a line break".to_owned());
    }
    let has = |name: &str| {
        request
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    let mut text = format!("GET {path} HTTP/1.1\r\n");
    if !has("Host") {
        text.push_str(&format!("Host: {}:{}\r\n", request.host, request.port));
    }
    if !has("User-Agent") {
        text.push_str("User-Agent: kube-probe/1.33\r\n");
    }
    if !has("Accept") {
        text.push_str("Accept: */*\r\n");
    }
    for (name, value) in &request.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("Connection: close\r\n\r\n");
    Ok(text.into_bytes())
}

/// The status code once `buf` holds a whole status line, `None` while it does not yet.
fn parse_status_line(buf: &[u8]) -> Result<Option<u16>, String> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buf[..end]);
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    match (version.starts_with("HTTP/"), code) {
        (true, Some(code)) => Ok(Some(code)),
        _ => Err(format!("malformed HTTP status line {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Ok(Some(200)));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable\r\nX: y"),
            Ok(Some(503))
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 20"), Ok(None));
        assert!(parse_status_line(b"SSH-2.0-OpenSSH\r\n").is_err());
    }

    #[test]
    fn requests_carry_host_and_custom_headers() {
        let request = HttpGet {
            host: "127.0.0.9".into(),
            port: 80,
            path: "healthz".into(),
            headers: vec![("X-Probe".into(), "1".into())],
        };
        let text = String::from_utf8(request_bytes(&request).unwrap()).unwrap();
        assert!(
            text.starts_with("GET /healthz HTTP/1.1\r\nHost: 127.0.0.9:80\r\n"),
            "{text}"
        );
        assert!(text.contains("X-Probe: 1\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        let evil = HttpGet {
            path: "/\r\nX: y".into(),
            ..request
        };
        assert!(request_bytes(&evil).is_err());
    }
}
