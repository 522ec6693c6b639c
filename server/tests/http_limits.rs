//! The admin HTTP port against slow and oversized requests, on raw sockets: a request
//! head sent one byte at a time, and a body that never arrives, get the connection
//! closed within the timeouts (admin::serve::ADMIN_LIMITS: 10 s each); an oversized
//! body gets 413; connections over the cap (256) get 503; and probes keep answering.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{Server, next_loopback, run};
use paddock_testkit::http::read_until_closed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// ADMIN_LIMITS' header and body timeouts.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Slack for a loaded machine.
const SLACK: Duration = Duration::from_secs(5);

fn admin_server() -> (Server, SocketAddr) {
    let ip: Ipv4Addr = next_loopback();
    let port = common::free_port(ip);
    // A zoo.cfg (any line) makes the builder put the admin port on `ip`.
    let server = Server::builder()
        .ip(ip)
        .admin_port(port)
        .cfg("tickTime=2000")
        .start();
    let addr = server.admin_addr().expect("admin address");
    (server, addr)
}

async fn livez_answers(addr: SocketAddr) {
    let body = common::ensemble::http_get(addr, "/livez", Duration::from_secs(2)).await;
    assert!(body.is_some(), "/livez answers during the attack");
}

#[test]
fn a_head_sent_one_byte_at_a_time_is_cut_off() {
    run(async {
        let (_server, addr) = admin_server();
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let started = Instant::now();
        let mut closed_at = None;
        // One byte every 200 ms: the head would take far longer than the timeout.
        for byte in head.iter().cycle().take(500) {
            if s.write_all(&[*byte]).await.is_err() {
                closed_at = Some(started.elapsed());
                break;
            }
            let mut probe = [0u8; 1];
            if let Ok(Ok(0)) =
                tokio::time::timeout(Duration::from_millis(200), s.read(&mut probe)).await
            {
                closed_at = Some(started.elapsed());
                break;
            }
            if started.elapsed() > TIMEOUT + SLACK {
                break;
            }
        }
        livez_answers(addr).await;
        let closed_at = closed_at.expect("the slow head's connection was closed");
        eprintln!("slow head cut off after {closed_at:?}");
        assert!(closed_at <= TIMEOUT + SLACK, "closed after {closed_at:?}");
    });
}

#[test]
fn a_body_that_never_arrives_is_cut_off() {
    run(async {
        let (_server, addr) = admin_server();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"POST /leadership/transfer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        )
        .await
        .unwrap();
        livez_answers(addr).await;
        let (reply, closed) = read_until_closed(&mut s, TIMEOUT + SLACK).await;
        let closed = closed.expect("closed within the body timeout");
        eprintln!("incomplete body cut off after {closed:?}: {reply:?}");
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    });
}

#[test]
fn a_huge_declared_body_gets_413_at_once() {
    run(async {
        let (_server, addr) = admin_server();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"POST /leadership/transfer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n{",
        )
        .await
        .unwrap();
        let (reply, closed) = read_until_closed(&mut s, SLACK).await;
        assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
        assert!(closed.is_some(), "closed after the 413");

        // Undeclared (chunked) and over the limit: 413 as well.
        let mut s = TcpStream::connect(addr).await.unwrap();
        let chunk = vec![b' '; 100 * 1024];
        let mut req =
            b"POST /leadership/transfer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n0\r\n\r\n");
        let _ = s.write_all(&req).await;
        let (reply, _) = read_until_closed(&mut s, SLACK).await;
        assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
        livez_answers(addr).await;
    });
}

#[test]
fn connections_over_the_cap_get_503() {
    run(async {
        let (_server, addr) = admin_server();
        // ADMIN_LIMITS.max_connections, held open and idle.
        let mut held = Vec::new();
        for _ in 0..256 {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        // The server takes them in as it accepts: poll for the 503.
        let deadline = Instant::now() + SLACK;
        let mut refused = None;
        while Instant::now() < deadline && refused.is_none() {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let (reply, _) = read_until_closed(&mut s, Duration::from_millis(500)).await;
            refused = reply.starts_with("HTTP/1.1 503").then_some(reply);
        }
        assert!(refused.is_some(), "a connection over the cap gets 503");
        // Closed connections free their slots.
        drop(held);
        let served = common::eventually(SLACK, || async move {
            common::ensemble::http_get(addr, "/livez", Duration::from_secs(1))
                .await
                .is_some()
        })
        .await;
        assert!(served, "served again once the idle connections are gone");
    });
}
