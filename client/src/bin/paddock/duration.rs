//! Durations on the command line: `500ms`, `10s`, `2m`, `1h`, `1d`; a bare number is
//! milliseconds (ZooKeeper's unit for timeouts and TTLs).

use std::time::Duration;

pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 500ms, 10s, 2m)"))?;
    let ms_per = match unit {
        "" | "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("unknown unit {other:?} (use ms, s, m, h or d)")),
    };
    n.checked_mul(ms_per)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// A TTL: a duration of at least 1 ms.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    match parse(text)? {
        d if d.is_zero() => Err("a TTL must be at least 1 ms".into()),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse("s").is_err());
        assert!(parse("3 weeks").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse_ttl("0").is_err());
        assert_eq!(parse_ttl("1"), Ok(Duration::from_millis(1)));
    }
}
