//! Durations on the command line (`--timeout`, `create -t`): humantime's grammar, the
//! same as the sidecar's and paddock-bench's. A unit is required (`500ms`, `10s`, `2m`,
//! `1h`, `1d`); a bare number other than `0` is refused, since it meant milliseconds
//! here and seconds in the sidecar.

use std::time::Duration;

const GRAMMAR: &str = "a number with a unit, e.g. 500ms, 10s, 2m, 1h, 1d";

pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("bad duration {text:?}: {e}; expected {GRAMMAR}"))
}

/// A TTL: a duration of at least 1 ms.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    match parse(text)? {
        d if d < Duration::from_millis(1) => Err("a TTL must be at least 1ms".into()),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        let bare = parse("250").unwrap_err();
        assert!(bare.contains("unit") && bare.contains("500ms"), "{bare}");
        assert!(parse("s").is_err());
        assert!(parse("3 weeks").is_ok());
        assert!(parse("3 fortnights").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse_ttl("0s").is_err());
        assert_eq!(parse_ttl("1ms"), Ok(Duration::from_millis(1)));
    }
}
