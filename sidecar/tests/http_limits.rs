//! Slow and oversized requests on raw sockets: a head sent one byte at a time and a body
//! that never arrives get the connection closed within --http-read-timeout (2 s here);
//! an oversized body gets 413; connections over --max-connections get 503; the API
//! keeps answering meanwhile.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use paddock_testkit::http::read_until_closed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Slack for a loaded machine.
const SLACK: Duration = Duration::from_secs(3);
const MAX_CONNECTIONS: usize = 8;

fn sidecar(server: &Server, name: &str) -> Sidecar {
    Sidecar::start(
        &server.addr.to_string(),
        name,
        &[
            "--http-read-timeout",
            "2s",
            "--max-connections",
            &MAX_CONNECTIONS.to_string(),
        ],
    )
}

async fn healthz_answers(addr: SocketAddr) {
    let r = within(Duration::from_secs(2), "/healthz", get(addr, "/healthz")).await;
    assert_eq!(r.status, 200, "/healthz answers during the attack");
}

#[test]
fn slow_heads_and_bodies_are_cut_off_and_oversized_bodies_get_413() {
    run(
        "slow_heads_and_bodies_are_cut_off_and_oversized_bodies_get_413",
        || async {
            let server = Server::start();
            let sc = sidecar(&server, "limits-a");
            let addr = sc.addr;

            // A head one byte at a time, 100 ms apart: far slower than the timeout.
            let mut slow = TcpStream::connect(addr).await.unwrap();
            let head = b"GET /v1/config/a HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
            let started = Instant::now();
            let mut closed_at = None;
            for byte in head.iter().cycle().take(200) {
                if slow.write_all(&[*byte]).await.is_err() {
                    closed_at = Some(started.elapsed());
                    break;
                }
                let mut probe = [0u8; 1];
                if let Ok(Ok(0)) =
                    tokio::time::timeout(Duration::from_millis(100), slow.read(&mut probe)).await
                {
                    closed_at = Some(started.elapsed());
                    break;
                }
                if started.elapsed() > READ_TIMEOUT + SLACK {
                    break;
                }
            }
            let closed_at = closed_at.expect("the slow head's connection was closed");
            eprintln!("slow head cut off after {closed_at:?}");
            assert!(
                closed_at <= READ_TIMEOUT + SLACK,
                "closed after {closed_at:?}"
            );

            // A body that never arrives: 408, then closed.
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(
                b"PUT /v1/config/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
            )
            .await
            .unwrap();
            healthz_answers(addr).await;
            let (reply, closed) = read_until_closed(&mut s, READ_TIMEOUT + SLACK).await;
            assert!(closed.is_some(), "closed within the read timeout: {reply}");
            assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");

            // A huge declared body: 413 at once, then closed.
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(
                b"PUT /v1/config/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n{",
            )
            .await
            .unwrap();
            let (reply, closed) = read_until_closed(&mut s, SLACK).await;
            assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
            assert!(reply.contains("exceeds the limit"), "{reply}");
            assert!(closed.is_some(), "closed after the 413");

            // An oversized body that does not declare its length (chunked): 413 too.
            let s = TcpStream::connect(addr).await.unwrap();
            let chunk = vec![b' '; 8 * 1024 * 1024 + 1024];
            let mut req = b"PUT /v1/config/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            req.extend_from_slice(&chunk);
            req.extend_from_slice(b"\r\n0\r\n\r\n");
            let (mut rd, mut wr) = s.into_split();
            let writer = tokio::spawn(async move {
                let _ = wr.write_all(&req).await;
                wr
            });
            let mut reply = Vec::new();
            let _ = tokio::time::timeout(SLACK, rd.read_to_end(&mut reply)).await;
            let reply = String::from_utf8_lossy(&reply);
            assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
            writer.abort();
            healthz_answers(addr).await;
        },
    );
}

#[test]
fn connections_over_the_cap_get_503() {
    run("connections_over_the_cap_get_503", || async {
        let server = Server::start();
        let sc = sidecar(&server, "limits-b");
        let addr = sc.addr;
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        // Give the sidecar a moment to take each of them in: poll for the 503.
        let mut extra = None;
        let deadline = Instant::now() + SLACK;
        while Instant::now() < deadline {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let (reply, _) = read_until_closed(&mut s, Duration::from_millis(500)).await;
            if reply.starts_with("HTTP/1.1 503") {
                extra = Some(reply);
                break;
            }
        }
        let reply = extra.expect("a connection over the cap gets 503");
        assert!(reply.contains("retry-after"), "{reply}");
        // Closed connections free their slots.
        drop(held);
        eventually(Duration::from_secs(5), "served again", || async move {
            try_request(addr, "GET", "/healthz", &[], None)
                .await
                .is_ok_and(|r| r.status == 200)
        })
        .await;
    });
}
