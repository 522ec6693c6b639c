//! Each limit against a real loopback socket, with short timeouts.

use std::time::Instant;

use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const LIMITS: HttpLimits = HttpLimits {
    header_timeout: Duration::from_millis(300),
    body_timeout: Duration::from_millis(300),
    max_body_bytes: 1024,
    max_connections: 2,
};

/// A server with `GET /` and `POST /echo`; its address and the sender that stops it.
async fn start() -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/echo", post(|body: String| async move { body }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, router, LIMITS, async {
        let _ = stopped.await;
    }));
    (address, stop, task)
}

/// Everything the server sends until it closes, or what came within `within`.
async fn read_all(stream: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_closed_after_the_header_timeout() {
    let (address, _stop, _task) = start().await;
    let mut s = TcpStream::connect(address).await.unwrap();
    let started = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let answer = read_all(&mut s, Duration::from_secs(5)).await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "closed after {waited:?}: {answer:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_at_once() {
    let (address, _stop, _task) = start().await;
    let mut s = TcpStream::connect(address).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nx")
        .await
        .unwrap();
    let answer = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("exceeds the limit of 1024 bytes"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_oversized_chunked_body_is_refused() {
    let (address, _stop, _task) = start().await;
    let mut s = TcpStream::connect(address).await.unwrap();
    let chunk = "x".repeat(800);
    let request = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let answer = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn a_body_that_trickles_gets_408() {
    let (address, _stop, _task) = start().await;
    let mut s = TcpStream::connect(address).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        .await
        .unwrap();
    let answer = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn a_small_body_is_served() {
    let (address, _stop, _task) = start().await;
    let mut s = TcpStream::connect(address).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await
    .unwrap();
    let answer = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
}

#[tokio::test]
async fn connections_over_the_cap_get_503_until_one_closes() {
    let (address, _stop, _task) = start().await;
    // Two idle keep-alive connections that completed a request hold both slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(address).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let mut third = TcpStream::connect(address).await.unwrap();
    let answer = read_all(&mut third, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    drop(held);
    // Slots come back as the server notices the closes.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = TcpStream::connect(address).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_all(&mut s, Duration::from_secs(2)).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {answer}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn shutdown_waits_for_open_connections_to_finish() {
    let (address, stop, task) = start().await;
    let mut s = TcpStream::connect(address).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    stop.send(()).unwrap();
    // The idle keep-alive connection is closed by the server, and serve returns.
    let rest = read_all(&mut s, Duration::from_secs(5)).await;
    assert_eq!(rest, "");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("serve returned")
        .unwrap();
}
