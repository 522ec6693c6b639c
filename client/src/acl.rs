//! ACLs: the usual lists, digest identities, and zkCli's text form
//! (`scheme:id:perms`, perms as letters of `cdrwa`).

pub use paddock_proto::{Acl, Id, perms};

use base64::Engine;
use sha1::{Digest, Sha1};

/// Everyone may do everything (ZooDefs.Ids.OPEN_ACL_UNSAFE).
pub fn open_unsafe() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

/// Everyone may read (ZooDefs.Ids.READ_ACL_UNSAFE).
pub fn read_unsafe() -> Vec<Acl> {
    vec![Acl {
        perms: perms::READ,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

/// All rights to the identities the creating session authenticated as
/// (ZooDefs.Ids.CREATOR_ALL_ACL).
pub fn creator_all() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "auth".into(),
            id: String::new(),
        },
    }]
}

/// The `digest` identity of `user` with `password`: `user:base64(sha1(user:password))`,
/// as DigestAuthenticationProvider computes it.
pub fn digest_id(user: &str, password: &str) -> Id {
    let hash = Sha1::digest(format!("{user}:{password}").as_bytes());
    Id {
        scheme: "digest".into(),
        id: format!(
            "{user}:{}",
            base64::engine::general_purpose::STANDARD.encode(hash)
        ),
    }
}

/// `cdrwa`-style letters of a permission mask, in zkCli's order.
pub fn perms_to_string(mask: i32) -> String {
    [
        (perms::CREATE, 'c'),
        (perms::DELETE, 'd'),
        (perms::READ, 'r'),
        (perms::WRITE, 'w'),
        (perms::ADMIN, 'a'),
    ]
    .iter()
    .filter(|(bit, _)| mask & bit != 0)
    .map(|(_, c)| *c)
    .collect()
}

/// Parses permission letters (any order, each of `cdrwa`).
pub fn parse_perms(text: &str) -> Result<i32, String> {
    let mut mask = 0;
    for c in text.chars() {
        mask |= match c.to_ascii_lowercase() {
            'c' => perms::CREATE,
            'd' => perms::DELETE,
            'r' => perms::READ,
            'w' => perms::WRITE,
            'a' => perms::ADMIN,
            other => {
                return Err(format!(
                    "unknown permission {other:?} (expected letters of cdrwa)"
                ));
            }
        };
    }
    Ok(mask)
}

/// Parses zkCli's ACL text: comma-separated `scheme:id:perms` entries, e.g.
/// `world:anyone:r,digest:bob:Y3Vb...=:cdrwa,ip:10.0.0.0/8:r,auth::cdrwa`. The id is
/// everything between the first and the last colon (digest ids contain one).
pub fn parse_acl(text: &str) -> Result<Vec<Acl>, String> {
    let mut acl = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (scheme, rest) = entry
            .split_once(':')
            .ok_or_else(|| format!("{entry:?}: expected scheme:id:perms"))?;
        let (id, perms) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("{entry:?}: expected scheme:id:perms"))?;
        if scheme.is_empty() {
            return Err(format!("{entry:?}: empty scheme"));
        }
        acl.push(Acl {
            perms: parse_perms(perms).map_err(|e| format!("{entry:?}: {e}"))?,
            id: Id {
                scheme: scheme.to_string(),
                id: id.to_string(),
            },
        });
    }
    if acl.is_empty() {
        return Err("empty ACL".into());
    }
    Ok(acl)
}

/// One entry in zkCli's text form.
pub fn format_acl(acl: &Acl) -> String {
    format!(
        "{}:{}:{}",
        acl.id.scheme,
        acl.id.id,
        perms_to_string(acl.perms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_zookeeper() {
        // The super digest the compat suites configure: super:secret.
        assert_eq!(
            digest_id("super", "secret").id,
            "super:lK75jTNcA+U9vtVEw5vB51mj/w4="
        );
    }

    #[test]
    fn text_form_round_trips() {
        let acl = parse_acl("world:anyone:r, digest:bob:abc=:cdrwa,auth::rw").unwrap();
        assert_eq!(acl.len(), 3);
        assert_eq!(acl[1].id.id, "bob:abc=");
        assert_eq!(acl[1].perms, perms::ALL);
        assert_eq!(format_acl(&acl[0]), "world:anyone:r");
        assert_eq!(format_acl(&acl[2]), "auth::rw");
        assert!(parse_acl("world:anyone:x").is_err());
        assert!(parse_acl("world").is_err());
        assert!(parse_acl("").is_err());
    }
}
