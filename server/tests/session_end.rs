//! The end of a session on the wire: closeSession is answered, the server closes the
//! connection, and its FIN leaves in the same segment as the reply (TCP_CORK on the
//! connection's last write), one packet less for each kernel at every session's end:
//! that is most of what a short-lived session costs (bench's ephemeral-churn).

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use common::{RawConn, Server, run};
use paddock_proto::Request;

const T: Duration = Duration::from_secs(10);

/// Segments this side's kernel has received on `conn` (`tcp_info.tcpi_segs_in`).
fn segments_in(conn: &RawConn) -> u32 {
    // SAFETY: tcp_info is plain integers, for which all zeros is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the fd is the open socket `conn` owns; `info` and `len` are valid for
    // writes of `len` bytes, and the kernel writes at most that.
    let rc = unsafe {
        libc::getsockopt(
            conn.stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info.tcpi_segs_in
}

#[test]
fn the_fin_rides_in_the_close_session_replys_segment() {
    let server = Server::start();
    run(async {
        // A session's first exchanges may draw pure ACKs (the kernel's quick-ACK start),
        // and a loaded machine can delay an ACK into a segment of its own: the fewest of
        // a few tries is what the server sends. Without the cork it is never below two
        // (the reply, then the FIN).
        let mut fewest = u32::MAX;
        for _ in 0..5 {
            let mut conn = RawConn::session(server.addr()).await;
            conn.ping().await;
            conn.ping().await;
            let before = segments_in(&conn);
            let reply = conn.call(1, &Request::CloseSession).await;
            assert_eq!(reply.err(), 0, "closeSession answered");
            assert!(conn.closed_within(T).await, "closed after closeSession");
            fewest = fewest.min(segments_in(&conn) - before);
        }
        assert_eq!(
            fewest, 1,
            "segments from the closeSession request to the end of the connection"
        );
    });
}
