//! Durations in flags (`--session-timeout`) and query parameters (`wait`, `heartbeat`,
//! `ttl`): humantime's grammar, the same as the `paddock` CLI's and paddock-bench's. A
//! unit is required (`500ms`, `10s`, `1.5s`, `5m`, `1h30m`); a bare number other than
//! `0` is refused, since it meant seconds here and milliseconds in the CLI.

use std::time::Duration;

/// What a duration looks like, for error messages.
pub const GRAMMAR: &str =
    "a number with a unit, e.g. 500ms, 10s, 1.5s, 5m, 1h30m (units: ns, us, ms, s, m, h, d)";

/// The longest duration accepted anywhere (a week), so arithmetic never overflows.
const MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a duration, or says precisely what is wrong with it.
pub fn parse(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("bad duration {text:?}: {e}; expected {GRAMMAR}"))?;
    if d > MAX {
        return Err(format!("duration {text:?} is longer than a week"));
    }
    Ok(d)
}

/// A duration for messages: `1.5s`, `250ms`, `5m`.
pub fn display(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return format!("{}µs", d.as_micros());
    }
    if ms.is_multiple_of(60_000) {
        return format!("{}m", ms / 60_000);
    }
    if ms.is_multiple_of(1000) {
        return format!("{}s", ms / 1000);
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    format!("{}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_forms() {
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("0"), Ok(Duration::ZERO), "zero needs no unit");
        assert_eq!(parse(" 2s "), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn refuses_bare_numbers_and_malformed_ones_with_the_units() {
        for bad in [
            "", "s", "10x", "-1s", "1..2s", "abc", "ms10", ".", "99999h", "7", "10",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains(bad.trim()), "{err}");
        }
        let bare = parse("7").unwrap_err();
        assert!(bare.contains("unit"), "{bare}");
        assert!(bare.contains("500ms, 10s"), "{bare}");
        assert!(parse("10x").unwrap_err().contains("unknown time unit"));
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(display(Duration::from_secs(300)), "5m");
        assert_eq!(display(Duration::from_secs(10)), "10s");
        assert_eq!(display(Duration::from_millis(250)), "250ms");
        assert_eq!(display(Duration::from_millis(1500)), "1.5s");
    }
}
