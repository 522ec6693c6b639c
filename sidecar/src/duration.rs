//! Durations as people write them: `250ms`, `10s`, `1.5s`, `5m`, `1h30m`, or a bare
//! number of seconds. Used by flags (`--session-timeout`) and query parameters
//! (`wait`, `heartbeat`).

use std::time::Duration;

/// The longest duration accepted anywhere (a week), so arithmetic never overflows.
const MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a duration, or says precisely what is wrong with it.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration (expected e.g. 500ms, 10s, 5m)".into());
    }
    if s.starts_with('-') {
        return Err(format!("negative duration {text:?}"));
    }
    // A bare number is seconds.
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return number(s, text).and_then(|n| scaled(n, 1e9, text));
    }
    let mut total_nanos = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "malformed duration {text:?}: expected a number at {rest:?}"
            ));
        }
        let value = number(&rest[..digits], text)?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("malformed duration {text:?}: a unit is missing")),
            other => {
                return Err(format!(
                    "malformed duration {text:?}: unknown unit {other:?} (use ms, s, m or h)"
                ));
            }
        };
        total_nanos += value * scale;
        if total_nanos > MAX.as_nanos() as f64 {
            return Err(format!("duration {text:?} is longer than a week"));
        }
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

fn number(digits: &str, text: &str) -> Result<f64, String> {
    if digits.matches('.').count() > 1 || digits == "." {
        return Err(format!(
            "malformed duration {text:?}: bad number {digits:?}"
        ));
    }
    digits
        .parse::<f64>()
        .map_err(|_| format!("malformed duration {text:?}: bad number {digits:?}"))
}

fn scaled(value: f64, scale: f64, text: &str) -> Result<Duration, String> {
    let nanos = value * scale;
    if !nanos.is_finite() || nanos > MAX.as_nanos() as f64 {
        return Err(format!("duration {text:?} is longer than a week"));
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
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
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse(" 2s "), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn refuses_malformed_ones_with_a_reason() {
        for bad in [
            "", "s", "10x", "-1s", "1..2s", "abc", "10 s", "1e3s", "ms10", ".", "99999h",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(!err.is_empty());
        }
        assert!(parse("10x").unwrap_err().contains("unknown unit"));
        assert!(parse("-1s").unwrap_err().contains("negative"));
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(display(Duration::from_secs(300)), "5m");
        assert_eq!(display(Duration::from_secs(10)), "10s");
        assert_eq!(display(Duration::from_millis(250)), "250ms");
        assert_eq!(display(Duration::from_millis(1500)), "1.5s");
    }
}
