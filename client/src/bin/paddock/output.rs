//! Rendering: Stats as zkCli prints them (times in UTC, zxids in hex) or as JSON with
//! ZooKeeper's field names; data as raw bytes, or in JSON as a UTF-8 string or base64.

use std::io::{IsTerminal, Write};

use base64::Engine;
use paddock_client::Stat;
use serde_json::{Value, json};

/// zkCli's `stat` block.
pub fn stat_text(stat: &Stat) -> String {
    format!(
        "cZxid = {:#x}\nctime = {}\nmZxid = {:#x}\nmtime = {}\npZxid = {:#x}\ncversion = {}\n\
         dataVersion = {}\naclVersion = {}\nephemeralOwner = {:#x}\ndataLength = {}\nnumChildren = {}\n",
        stat.czxid,
        utc(stat.ctime),
        stat.mzxid,
        utc(stat.mtime),
        stat.pzxid,
        stat.cversion,
        stat.version,
        stat.aversion,
        stat.ephemeral_owner,
        stat.data_length,
        stat.num_children,
    )
}

/// A Stat with ZooKeeper's (Java) field names; zxids and times as numbers.
pub fn stat_json(stat: &Stat) -> Value {
    json!({
        "czxid": stat.czxid,
        "mzxid": stat.mzxid,
        "pzxid": stat.pzxid,
        "ctime": stat.ctime,
        "mtime": stat.mtime,
        "version": stat.version,
        "cversion": stat.cversion,
        "aversion": stat.aversion,
        "ephemeralOwner": stat.ephemeral_owner,
        "dataLength": stat.data_length,
        "numChildren": stat.num_children,
    })
}

/// Data in JSON: `data` holds the text when it is UTF-8, else `dataBase64` the bytes.
pub fn data_json(data: &[u8]) -> (&'static str, Value) {
    match std::str::from_utf8(data) {
        Ok(text) => ("data", Value::String(text.to_string())),
        Err(_) => (
            "dataBase64",
            Value::String(base64::engine::general_purpose::STANDARD.encode(data)),
        ),
    }
}

/// Writes data exactly as stored; on a terminal, ends the line if the data does not.
pub fn write_data(data: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(data)?;
    if std::io::stdout().is_terminal() && !data.ends_with(b"\n") && !data.is_empty() {
        out.write_all(b"\n")?;
    }
    out.flush()
}

pub fn print_json(value: &Value) {
    println!("{value}");
}

/// Milliseconds since the epoch as an ISO-8601 UTC time.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(1_795_247_514_810), "2026-11-21T07:51:54.810Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn data_is_text_or_base64() {
        assert_eq!(data_json(b"hi"), ("data", json!("hi")));
        assert_eq!(data_json(&[0xff, 0]), ("dataBase64", json!("/wA=")));
    }
}
