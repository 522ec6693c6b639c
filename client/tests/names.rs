//! Connect-string host names are resolved on every connection attempt: a host whose name
//! does not resolve (yet) is skipped for that attempt while the others serve, and is used
//! once its name appears (a pod's DNS record that exists only after the pod does).
//!
//! The test thread runs in a mount namespace of its own where /etc/hosts is a test-owned
//! file, rewritten in place (the bind mount shows the new content); the runtime's
//! threads, started from that thread, share it. Needs root (CAP_SYS_ADMIN): if the kernel
//! refuses, the test fails loudly.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use common::proxy::Mode;
use common::{Backend, Proxy, eventually, wait_state};
use paddock_client::{Client, CreateMode, SessionState};

const WAIT: Duration = Duration::from_secs(20);
const NAME: &str = "late.paddock.test";

/// Moves the calling thread (and threads it starts later) into a mount namespace of its
/// own whose /etc/hosts is `hosts`.
fn private_etc_hosts(hosts: &Path) {
    let source = CString::new(hosts.as_os_str().as_bytes()).unwrap();
    let target = CString::new("/etc/hosts").unwrap();
    let root = CString::new("/").unwrap();
    // SAFETY: plain system calls on NUL-terminated strings that outlive them.
    unsafe {
        assert_eq!(
            libc::unshare(libc::CLONE_NEWNS),
            0,
            "unshare(CLONE_NEWNS): {}",
            std::io::Error::last_os_error()
        );
        assert_eq!(
            libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ),
            0,
            "make / private: {}",
            std::io::Error::last_os_error()
        );
        assert_eq!(
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ),
            0,
            "bind-mount {} over /etc/hosts: {}",
            hosts.display(),
            std::io::Error::last_os_error()
        );
    }
}

/// Rewrites `hosts` in place (truncate + write: the same inode, as the bind mount needs).
fn write_hosts(hosts: &Path, names: &[(&str, &str)]) {
    let mut text = String::from("127.0.0.1 localhost\n");
    for (ip, name) in names {
        text.push_str(&format!("{ip} {name}\n"));
    }
    std::fs::write(hosts, text).expect("rewrite the hosts file in place");
}

#[test]
fn a_host_that_does_not_resolve_yet_is_skipped_then_used_once_it_resolves() {
    let server = common::server(Backend::Paddock);
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = dir.path().join("hosts");
    write_hosts(&hosts, &[]);
    let body = std::thread::spawn(move || {
        private_etc_hosts(&hosts);
        assert!(
            std::net::ToSocketAddrs::to_socket_addrs(&(NAME, 1)).is_err(),
            "{NAME} must not resolve yet"
        );
        let rt = paddock_testkit::rt::multi_thread();
        rt.block_on(async move {
            // Two ways to the one server: through the name (not resolvable yet) and
            // through an address.
            let named = Proxy::start(server).await;
            let direct = Proxy::start(server).await;
            let connect = format!("{NAME}:{},{}", named.addr().port(), direct.addr());
            let client = Client::builder(connect.as_str())
                .session_timeout(Duration::from_secs(20))
                .connect_timeout(WAIT)
                .connect()
                .await
                .unwrap_or_else(|e| panic!("connect to {connect}: {e}"));
            assert_eq!(named.connections(), 0, "nothing listens behind {NAME} yet");
            assert!(direct.connections() >= 1);
            let session = client.session().id;
            client
                .create("/names-test", b"before", CreateMode::Ephemeral)
                .await
                .expect("create through the resolvable host");

            // The name appears; the address goes away. The session moves to the name.
            write_hosts(&hosts, &[("127.0.0.1", NAME)]);
            direct.set_mode(Mode::Refuse);
            direct.cut();
            eventually(WAIT, "a connection through the name", || {
                let n = named.connections();
                async move { n >= 1 }
            })
            .await;
            wait_state(&client, SessionState::Connected, WAIT).await;
            assert_eq!(client.session().id, session, "the same session");
            let (data, _) = client
                .get_data("/names-test")
                .await
                .expect("read through the name");
            assert_eq!(data, b"before", "the session's ephemeral node survived");
            client.close().await;
        });
        rt.shutdown_timeout(Duration::from_secs(1));
    });
    if let Err(panic) = body.join() {
        std::panic::resume_unwind(panic);
    }
}
