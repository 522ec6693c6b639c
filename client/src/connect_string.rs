//! Connect strings, as every ZooKeeper client spells them:
//! `host1:2181,host2:2181,[::1]:2182/optional/chroot`.
//!
//! A host without a port means 2181. The chroot, when present, starts at the first `/`
//! and must be a valid absolute path; `/` alone means no chroot.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::path;

/// ZooKeeper's default client port.
pub const DEFAULT_PORT: u16 = 2181;

/// One server of a connect string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed connect string: the servers (in the order given) and an optional chroot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    pub hosts: Vec<HostPort>,
    pub chroot: Option<String>,
}

impl ConnectString {
    pub fn parse(input: &str) -> Result<ConnectString, Error> {
        let bad = |reason: String| {
            Error::BadArguments(format!("invalid connect string {input:?}: {reason}"))
        };
        let trimmed = input.trim();
        // The chroot starts at the first '/' (a host cannot contain one).
        let (hosts_part, chroot) = match trimmed.find('/') {
            Some(i) => (&trimmed[..i], Some(&trimmed[i..])),
            None => (trimmed, None),
        };
        let chroot = match chroot {
            None | Some("/") => None,
            Some(c) => {
                path::validate(c, false)
                    .map_err(|reason| bad(format!("chroot {c:?}: {reason}")))?;
                Some(c.to_string())
            }
        };
        let mut hosts = Vec::new();
        for item in hosts_part.split(',') {
            let item = item.trim();
            if item.is_empty() {
                if hosts_part.trim().is_empty() {
                    return Err(bad("no servers".into()));
                }
                return Err(bad("empty server between commas".into()));
            }
            hosts.push(parse_host_port(item).map_err(|reason| bad(format!("{item:?}: {reason}")))?);
        }
        Ok(ConnectString { hosts, chroot })
    }

    /// The hosts in a random order, so that clients spread over the ensemble.
    pub fn shuffled_hosts(&self) -> Vec<HostPort> {
        let mut hosts = self.hosts.clone();
        fastrand::shuffle(&mut hosts);
        hosts
    }

    /// `host:port,host:port` without the chroot (for messages).
    pub fn hosts_string(&self) -> String {
        let list: Vec<String> = self.hosts.iter().map(ToString::to_string).collect();
        list.join(",")
    }
}

impl FromStr for ConnectString {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        ConnectString::parse(s)
    }
}

impl fmt::Display for ConnectString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hosts_string())?;
        if let Some(chroot) = &self.chroot {
            f.write_str(chroot)?;
        }
        Ok(())
    }
}

fn parse_host_port(item: &str) -> Result<HostPort, String> {
    let (host, port) = if let Some(rest) = item.strip_prefix('[') {
        // [v6]:port or [v6]
        let end = rest.find(']').ok_or("unclosed '[' in IPv6 address")?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("expected ':port' after ']'".into()),
        };
        (host, port)
    } else {
        match item.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err("IPv6 addresses must be written in brackets: [addr]:port".into());
            }
            Some((h, p)) => (h, Some(p)),
            None => (item, None),
        }
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    if host.chars().any(|c| c.is_whitespace()) {
        return Err("whitespace in host".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) => return Err("port 0".into()),
            Ok(port) => port,
            Err(_) => return Err(format!("invalid port {p:?}")),
        },
    };
    Ok(HostPort {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_hosts_ports_and_chroot() {
        let cs = ConnectString::parse("a:1,b, [::1]:3 ,10.0.0.1:2182/app/x").unwrap();
        assert_eq!(
            cs.hosts,
            vec![
                hp("a", 1),
                hp("b", 2181),
                hp("::1", 3),
                hp("10.0.0.1", 2182)
            ]
        );
        assert_eq!(cs.chroot.as_deref(), Some("/app/x"));
        assert_eq!(cs.to_string(), "a:1,b:2181,[::1]:3,10.0.0.1:2182/app/x");
        assert_eq!(ConnectString::parse("h:1/").unwrap().chroot, None);
        assert_eq!(
            ConnectString::parse("[::1]").unwrap().hosts,
            vec![hp("::1", 2181)]
        );
    }

    #[test]
    fn refuses_malformed_strings_with_a_reason() {
        for (input, needle) in [
            ("", "no servers"),
            ("/chroot", "no servers"),
            ("a:1,,b:2", "empty server"),
            ("a:99999", "invalid port"),
            ("a:x", "invalid port"),
            ("a:0", "port 0"),
            (":2181", "empty host"),
            ("::1:2181", "brackets"),
            ("[::1", "unclosed"),
            ("a:1/b/", "chroot"),
            ("a:1/b//c", "chroot"),
            ("a b:1", "whitespace"),
        ] {
            let err = ConnectString::parse(input).unwrap_err();
            assert!(
                err.to_string().contains(needle),
                "{input:?}: {err} should mention {needle:?}"
            );
            assert_eq!(err.code(), paddock_proto::ErrorCode::BadArguments);
        }
    }

    #[test]
    fn shuffling_keeps_every_host() {
        let cs = ConnectString::parse("a,b,c,d,e").unwrap();
        let mut shuffled = cs.shuffled_hosts();
        shuffled.sort_by(|x, y| x.host.cmp(&y.host));
        assert_eq!(shuffled, cs.hosts);
    }
}
