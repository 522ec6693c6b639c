//! ACL schemes (world, auth, digest, ip) and the permission check.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use paddock_proto::{Acl, Id, perms};
use sha1::{Digest, Sha1};

use crate::hashing::FastMap;

/// An identity a session has proven (addauth) or has by its address (ip).
pub type AuthId = Id;

/// `user:base64(sha1("user:password"))`, the digest scheme's id for `user:password`.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The world:anyone ALL list every unprotected node carries.
pub fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

/// The credentials of one session, as the permission check sees them.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub ids: Vec<AuthId>,
    pub is_super: bool,
}

impl Credentials {
    /// Whether these credentials grant any of the bits in `wanted` on a node with `acl`.
    pub fn allows(&self, acl: &[Acl], wanted: i32) -> bool {
        if self.is_super {
            return true;
        }
        acl.iter().any(|entry| {
            entry.perms & wanted != 0
                && match entry.id.scheme.as_str() {
                    "world" => entry.id.id == "anyone",
                    "ip" => self
                        .ids
                        .iter()
                        .any(|id| id.scheme == "ip" && ip_matches(&entry.id.id, &id.id)),
                    scheme => self
                        .ids
                        .iter()
                        .any(|id| id.scheme == scheme && id.id == entry.id.id),
                }
        })
    }
}

/// Whether the client address `client` falls in the ACL's `addr` or `addr/bits`.
fn ip_matches(pattern: &str, client: &str) -> bool {
    let (addr, bits) = match pattern.split_once('/') {
        Some((a, b)) => match b.parse::<u32>() {
            Ok(bits) => (a, Some(bits)),
            Err(_) => return false,
        },
        None => (pattern, None),
    };
    let (Ok(net), Ok(client)) = (addr.parse::<IpAddr>(), client.parse::<IpAddr>()) else {
        return false;
    };
    match (net, client) {
        (IpAddr::V4(n), IpAddr::V4(c)) => prefix_eq(&n.octets(), &c.octets(), bits.unwrap_or(32)),
        (IpAddr::V6(n), IpAddr::V6(c)) => prefix_eq(&n.octets(), &c.octets(), bits.unwrap_or(128)),
        _ => false,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u32) -> bool {
    let bits = bits.min(a.len() as u32 * 8) as usize;
    let (full, rest) = (bits / 8, bits % 8);
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

/// Checks a client-supplied ACL list and expands the `auth` scheme into the session's
/// ids, as ZooKeeper's fixupACL does. Errors mean InvalidACL. A list without `auth`
/// entries (nearly all of them) is returned as it came, not copied.
pub fn fix_up(acl: Vec<Acl>, creds: &Credentials) -> Result<Vec<Acl>, &'static str> {
    if acl.is_empty() {
        return Err("empty ACL list");
    }
    let mut expands = false;
    for entry in &acl {
        expands |= check_entry(entry, creds)?;
    }
    let mut fixed = if expands {
        let mut fixed: Vec<Acl> = Vec::with_capacity(acl.len());
        for entry in acl {
            if entry.id.scheme == "auth" {
                fixed.extend(authenticated(creds).map(|id| Acl {
                    perms: entry.perms,
                    id: id.clone(),
                }));
            } else {
                fixed.push(entry);
            }
        }
        fixed
    } else {
        acl
    };
    fixed.dedup();
    Ok(fixed)
}

/// The ids an `auth` ACL entry stands for.
fn authenticated(creds: &Credentials) -> impl Iterator<Item = &Id> {
    creds
        .ids
        .iter()
        .filter(|id| id.scheme != "ip" && id.scheme != "super")
}

/// Checks one entry of a client-supplied list; `Ok(true)` when it is an `auth` entry,
/// to be expanded.
fn check_entry(entry: &Acl, creds: &Credentials) -> Result<bool, &'static str> {
    if entry.perms & !perms::ALL != 0 || entry.perms == 0 {
        return Err("invalid permission bits");
    }
    match entry.id.scheme.as_str() {
        "world" if entry.id.id == "anyone" => Ok(false),
        "world" => Err("world scheme only accepts the id 'anyone'"),
        "auth" if authenticated(creds).next().is_none() => {
            Err("auth scheme used without any authenticated identity")
        }
        "auth" => Ok(true),
        "digest" => {
            let mut parts = entry.id.id.split(':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(user), Some(_), None) if !user.is_empty() => Ok(false),
                _ => Err("digest ids are user:base64digest"),
            }
        }
        "ip" => {
            let addr = entry.id.id.split('/').next().unwrap_or("");
            match addr.parse::<IpAddr>() {
                Ok(_) => Ok(false),
                Err(_) => Err("ip ids are an address or address/bits"),
            }
        }
        "sasl" if crate::sasl::valid_acl_id(&entry.id.id) => Ok(false),
        "sasl" => Err("sasl ids are user names (a Kerberos name has one '@')"),
        // ZooKeeper's X509AuthenticationProvider: a subject DN, compared as written.
        "x509" if !entry.id.id.is_empty() => Ok(false),
        "x509" => Err("x509 ids are a certificate subject DN"),
        "super" => Ok(false),
        _ => Err("unknown ACL scheme"),
    }
}

/// The ACL lists in use, by id: a node stores a 4-byte id instead of the list, and the
/// thousands of nodes that share a list share one copy. As ZooKeeper's
/// ReferenceCountedACLCache, an id counts the nodes that use it and is freed (for reuse)
/// when the last goes, so distinct lists set and dropped over time do not accumulate.
#[derive(Debug, Clone, Default)]
pub struct AclTable {
    /// Id → list. Shared with snapshot views, which resolve the ids their nodes hold.
    lists: Arc<Vec<Option<Arc<[Acl]>>>>,
    ids: FastMap<Arc<[Acl]>, u32>,
    /// Id → nodes that use it.
    users: Vec<u64>,
    free: Vec<u32>,
    /// What an unknown id resolves to: nobody but super may do anything.
    none: Arc<[Acl]>,
}

impl AclTable {
    /// The id of `acl` for one more node.
    pub fn acquire(&mut self, acl: &[Acl]) -> u32 {
        if let Some(&id) = self.ids.get(acl) {
            self.users[id as usize] += 1;
            return id;
        }
        let list: Arc<[Acl]> = Arc::from(acl);
        let lists = Arc::make_mut(&mut self.lists);
        let id = match self.free.pop() {
            Some(id) => {
                lists[id as usize] = Some(list.clone());
                self.users[id as usize] = 1;
                id
            }
            None => {
                lists.push(Some(list.clone()));
                self.users.push(1);
                (lists.len() - 1) as u32
            }
        };
        self.ids.insert(list, id);
        id
    }

    /// `acl` as a shared list: the table's own copy when a node uses it already (no
    /// allocation: nearly every create names a list in use), else a new one.
    pub fn shared(&self, acl: &[Acl]) -> Arc<[Acl]> {
        match self.ids.get_key_value(acl) {
            Some((list, _)) => list.clone(),
            None => Arc::from(acl),
        }
    }

    /// One more node uses `id`, which must be in use.
    pub fn acquire_again(&mut self, id: u32) {
        if let Some(users) = self.users.get_mut(id as usize) {
            *users += 1;
        }
    }

    /// One node fewer uses `id`.
    pub fn release(&mut self, id: u32) {
        let Some(users) = self.users.get_mut(id as usize) else {
            return;
        };
        *users = users.saturating_sub(1);
        if *users > 0 {
            return;
        }
        if let Some(list) = Arc::make_mut(&mut self.lists)[id as usize].take() {
            self.ids.remove(&list);
            self.free.push(id);
        }
    }

    pub fn list(&self, id: u32) -> &Arc<[Acl]> {
        resolve(&self.lists, id).unwrap_or(&self.none)
    }

    /// A frozen copy of the id → list mapping, for a snapshot.
    pub fn frozen(&self) -> FrozenAcls {
        FrozenAcls(self.lists.clone())
    }

    /// Lists in use (tests and metrics).
    pub fn in_use(&self) -> usize {
        self.ids.len()
    }
}

fn resolve(lists: &[Option<Arc<[Acl]>>], id: u32) -> Option<&Arc<[Acl]>> {
    lists.get(id as usize).and_then(Option::as_ref)
}

/// The ACL lists as they were when a snapshot was taken.
#[derive(Debug, Clone)]
pub struct FrozenAcls(Arc<Vec<Option<Arc<[Acl]>>>>);

impl FrozenAcls {
    pub fn list(&self, id: u32) -> &[Acl] {
        resolve(&self.0, id).map_or(&[], |l| &l[..])
    }

    /// Every list in use, with its id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &[Acl])> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(id, list)| list.as_ref().map(|l| (id as u32, &l[..])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    #[test]
    fn digest_matches_zookeeper() {
        // From ZooKeeper's documentation: super:secret → super:... computed the same way.
        assert_eq!(
            digest_id("user:password"),
            "user:tpUq/4Pn5A64fVZyQ0gOJ8ZWqkY="
        );
    }

    #[test]
    fn permission_checks_per_scheme() {
        let creds = Credentials {
            ids: vec![id("digest", "u:h"), id("ip", "127.0.0.5")],
            is_super: false,
        };
        let acl = vec![Acl {
            perms: perms::READ,
            id: id("digest", "u:h"),
        }];
        assert!(creds.allows(&acl, perms::READ));
        assert!(!creds.allows(&acl, perms::WRITE));
        let net = vec![Acl {
            perms: perms::ALL,
            id: id("ip", "127.0.0.0/8"),
        }];
        assert!(creds.allows(&net, perms::WRITE));
        let other = vec![Acl {
            perms: perms::ALL,
            id: id("ip", "10.0.0.1"),
        }];
        assert!(!creds.allows(&other, perms::READ));
        assert!(Credentials::default().allows(&open_acl(), perms::ADMIN));
        let sup = Credentials {
            ids: vec![],
            is_super: true,
        };
        assert!(sup.allows(&other, perms::ADMIN));
    }

    #[test]
    fn fix_up_expands_auth_and_rejects_bad_lists() {
        let creds = Credentials {
            ids: vec![id("ip", "127.0.0.1"), id("digest", "u:h")],
            is_super: false,
        };
        let fixed = fix_up(
            vec![Acl {
                perms: perms::ALL,
                id: id("auth", ""),
            }],
            &creds,
        )
        .unwrap();
        assert_eq!(
            fixed,
            vec![Acl {
                perms: perms::ALL,
                id: id("digest", "u:h")
            }]
        );
        assert!(fix_up(vec![], &creds).is_err());
        assert!(
            fix_up(
                vec![Acl {
                    perms: 31,
                    id: id("auth", "")
                }],
                &Credentials::default()
            )
            .is_err()
        );
        assert!(
            fix_up(
                vec![Acl {
                    perms: 31,
                    id: id("nope", "x")
                }],
                &creds
            )
            .is_err()
        );
        assert!(
            fix_up(
                vec![Acl {
                    perms: 31,
                    id: id("digest", "nocolon")
                }],
                &creds
            )
            .is_err()
        );
        assert!(
            fix_up(
                vec![Acl {
                    perms: 64,
                    id: id("world", "anyone")
                }],
                &creds
            )
            .is_err()
        );
    }
}
