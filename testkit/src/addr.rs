//! Loopback addresses and ports for the processes a test starts.
//!
//! Every address is in 127.0.0.0/8, and 127.0.0.1 is never handed out (it is left to
//! people and to whatever else runs on the machine). Two blocks, so that test binaries
//! of different crates run side by side do not meet:
//! * [`next_loopback`]: 127.0.0.2 to 127.0.0.251, a fresh one per call (one server
//!   each, restarts and moves included);
//! * [`binary_ip`]: an address of 127.0.1.0 to 127.0.200.255 that stays the same for
//!   one test binary (and a salt), across runs and rebuilds.
//!
//! Ports come from 20000 to 31999, below Linux's ephemeral range (32768 and up): a port
//! the kernel picked for a bind to port 0 could be handed out again to a process's own
//! port-0 listener (or an outbound socket) before the process meant to own it binds it.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// The first port [`free_port`] and [`reserve_ports`] hand out.
const FIRST_PORT: u32 = 20_000;
/// How many ports follow it (up to 31999).
const PORT_SPAN: u32 = 12_000;

static NEXT_IP: AtomicU32 = AtomicU32::new(0);
static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

/// This test binary's file name (with cargo's hash suffix, e.g. `opcodes-0123abcd`).
fn exe_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

fn hash(seed: u32, s: &str) -> u32 {
    s.bytes()
        .fold(seed, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
}

/// A loopback address for one server: 127.0.0.x with x varying per call and per test
/// binary (so binaries run one after another do not reuse the same ones right away).
pub fn next_loopback() -> Ipv4Addr {
    let base = hash(7, &exe_name());
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    let x = 2 + (base.wrapping_add(n.wrapping_mul(7)) % 250) as u8;
    Ipv4Addr::new(127, 0, 0, x)
}

/// The loopback address of this test binary for `salt`: the same for every call with
/// the same salt, and across rebuilds (cargo's hash suffix is left out), different
/// for salts less than 240 apart. 127.0.y.x with y from 1 to 200 (never 127.0.0.x, the
/// block of [`next_loopback`]) and x from 2 to 241.
pub fn binary_ip(salt: u32) -> Ipv4Addr {
    let exe = exe_name();
    let stem = exe.split('-').next().unwrap_or("");
    let h = hash(7, stem);
    let y = 1 + (h % 200) as u8;
    let x = 2 + ((h / 200).wrapping_add(salt.wrapping_mul(101)) % 240) as u8;
    Ipv4Addr::new(127, 0, y, x)
}

/// A port free on `ip` right now (see the module docs for the range). Successive calls
/// return different ports, so ports picked together do not collide either. Panics when
/// none of the range is free.
pub fn free_port(ip: Ipv4Addr) -> u16 {
    let start = std::process::id().wrapping_mul(7919) % PORT_SPAN;
    for _ in 0..PORT_SPAN {
        let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST_PORT + start.wrapping_add(n) % PORT_SPAN) as u16;
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free port in {FIRST_PORT}..{} on {ip}",
        FIRST_PORT + PORT_SPAN
    )
}

/// Reserves `n` ports on `ip` by listening on them: the caller keeps the listeners
/// until it hands the ports over (drops them right before the process that owns them
/// binds), so nothing else can take them meanwhile. The starting point varies with the
/// time and `ip`. Panics when fewer than `n` of the range are free.
pub fn reserve_ports(ip: Ipv4Addr, n: usize) -> Vec<TcpListener> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let start = (nanos ^ u32::from(ip).wrapping_mul(2_654_435_761)) % PORT_SPAN;
    let mut out = Vec::with_capacity(n);
    for k in 0..PORT_SPAN {
        let port = (FIRST_PORT + (start + k) % PORT_SPAN) as u16;
        if let Ok(l) = TcpListener::bind((ip, port)) {
            out.push(l);
            if out.len() == n {
                return out;
            }
        }
    }
    panic!(
        "no {n} free ports on {ip} in {FIRST_PORT}..{}",
        FIRST_PORT + PORT_SPAN
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_stay_in_their_blocks() {
        for _ in 0..600 {
            let ip = next_loopback();
            assert_eq!(ip.octets()[..3], [127, 0, 0]);
            assert!((2..=251).contains(&ip.octets()[3]), "{ip}");
        }
        for salt in 0..300 {
            let ip = binary_ip(salt);
            assert_eq!(ip, binary_ip(salt), "stable");
            let [a, b, y, x] = ip.octets();
            assert_eq!((a, b), (127, 0));
            assert!((1..=200).contains(&y) && (2..=241).contains(&x), "{ip}");
        }
        assert_ne!(binary_ip(0), binary_ip(1));
    }

    #[test]
    fn ports_picked_together_differ() {
        let ip = Ipv4Addr::LOCALHOST;
        let a = free_port(ip);
        let b = free_port(ip);
        assert_ne!(a, b);
        for p in [a, b] {
            assert!((20_000..32_000).contains(&p), "{p}");
        }
        let held = reserve_ports(ip, 3);
        assert_eq!(held.len(), 3);
    }
}
