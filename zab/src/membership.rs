//! The configuration ZAB replicates: who votes under which rule, who observes, the
//! config's version, and where each member is reached. It is the one owner of the
//! membership: the server derives its view (`/zookeeper/config`'s members, the dynamic
//! config file, the links it keeps) from the config ZAB has activated.

use std::collections::{BTreeMap, BTreeSet};

use crate::{QuorumVerifier, Sid};

/// Who is in the ensemble, under which quorum rule, the config's version (the zxid of
/// the reconfig that made it, or the static config's version) and each member's
/// addresses.
///
/// The addresses travel with the config (in votes, proposals and the sync's config) so
/// that a server learns a new member's addresses in the very message that makes it a
/// member; ZAB itself never dials them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub verifier: QuorumVerifier,
    pub observers: BTreeSet<Sid>,
    pub version: i64,
    /// By member; a member may lack an entry (a standalone server's config names none).
    pub addresses: BTreeMap<Sid, MemberAddresses>,
}

/// Where one member is reached, as its `server.N` line states it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberAddresses {
    /// Quorum and election address pairs, the preferred one first (ZooKeeper 3.6+
    /// allows several, `|`-separated).
    pub peer: Vec<PeerAddress>,
    /// Where clients connect, when the line names it.
    pub client: Option<ClientAddress>,
}

/// One `host:quorumPort:electionPort` of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddress {
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
}

/// A member's client `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress {
    pub host: String,
    pub port: u16,
}

impl Membership {
    /// A config of the given voters (majority rule) and no observers or addresses.
    pub fn of_voters(voters: impl IntoIterator<Item = Sid>, version: i64) -> Membership {
        Membership {
            verifier: QuorumVerifier::majority(voters),
            observers: BTreeSet::new(),
            version,
            addresses: BTreeMap::new(),
        }
    }

    pub fn standalone(me: Sid) -> Membership {
        Membership::of_voters([me], 0)
    }

    pub fn is_member(&self, sid: Sid) -> bool {
        self.verifier.is_voter(sid) || self.observers.contains(&sid)
    }

    /// Every member: the voters, then the observers.
    pub fn members(&self) -> impl Iterator<Item = Sid> + '_ {
        self.verifier
            .voters()
            .into_iter()
            .chain(self.observers.iter().copied())
    }

    /// Everyone this server talks to besides itself.
    pub fn peers(&self, me: Sid) -> impl Iterator<Item = Sid> + '_ {
        self.members().filter(move |p| *p != me)
    }
}
