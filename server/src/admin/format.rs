//! Java-compatible renderings of numbers, dates and socket addresses, so the four-letter words
//! print what ZooKeeper prints.

use std::net::{IpAddr, SocketAddr};

/// `Double.toString`: `0.0`, `3.6`, `1.3333`, `1.0E7`, `1.0E-4`.
pub fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let a = v.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
        if mantissa.contains('.') {
            format!("{mantissa}E{exp}")
        } else {
            format!("{mantissa}.0E{exp}")
        }
    }
}

/// `java.util.Date.toString` in UTC: `Sat Nov 21 07:32:04 UTC 2026`.
pub fn java_date(unix_ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = unix_ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        d,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        y
    )
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `InetSocketAddress.toString` for an address without a host name: `/127.0.0.1:2181`,
/// `/[0:0:0:0:0:0:0:1]:2181` (Java prints IPv6 uncompressed).
pub fn java_socket_address(addr: &SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(ip) => format!("/{ip}:{}", addr.port()),
        IpAddr::V6(ip) => {
            let segs: Vec<String> = ip.segments().iter().map(|s| format!("{s:x}")).collect();
            format!("/[{}]:{}", segs.join(":"), addr.port())
        }
    }
}

/// `Long.toHexString`: two's complement for negative values.
pub fn java_hex(v: i64) -> String {
    format!("{:x}", v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_like_java() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(3.6), "3.6");
        assert_eq!(java_double(1.3333), "1.3333");
        assert_eq!(java_double(7.0), "7.0");
        assert_eq!(java_double(1234567.0), "1234567.0");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(1.5e-4), "1.5E-4");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(-2.5), "-2.5");
    }

    #[test]
    fn dates_like_java_in_utc() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        // Seen from a real ZooKeeper 3.8 `dump`.
        assert_eq!(java_date(1_795_246_324_000), "Sat Nov 21 07:32:04 UTC 2026");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn socket_addresses_like_java() {
        let v4: SocketAddr = "127.0.0.1:47028".parse().unwrap();
        assert_eq!(java_socket_address(&v4), "/127.0.0.1:47028");
        let v6: SocketAddr = "[::1]:2181".parse().unwrap();
        assert_eq!(java_socket_address(&v6), "/[0:0:0:0:0:0:0:1]:2181");
        assert_eq!(java_hex(-1), "ffffffffffffffff");
        assert_eq!(java_hex(0x4), "4");
    }
}
