//! Peer messages. The type numbers are ZooKeeper's QuorumPacket types (REQUEST 1 …
//! ACKEPOCH 18), so that a later step can speak to Apache ZooKeeper peers; election
//! notifications use type 100. The encoding is jute primitives: type, then fields.

use paddock_proto::{DecodeError, JuteWrite, Reader};

use std::collections::BTreeMap;

use super::{
    Bytes, ClientAddress, MemberAddresses, Membership, PeerAddress, QuorumVerifier, Sid, Zxid,
};

/// What a peer says about itself in election notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Looking = 0,
    Following = 1,
    Leading = 2,
    Observing = 3,
}

impl PeerState {
    fn from_code(c: i32) -> Result<PeerState, DecodeError> {
        Ok(match c {
            0 => PeerState::Looking,
            1 => PeerState::Following,
            2 => PeerState::Leading,
            3 => PeerState::Observing,
            _ => {
                return Err(DecodeError::BadValue {
                    what: "peer state",
                    value: c.into(),
                });
            }
        })
    }
}

/// A vote: who should lead, and why (its epoch and last zxid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    pub leader: Sid,
    pub zxid: Zxid,
    pub epoch: i64,
}

impl Vote {
    /// ZooKeeper's totalOrderPredicate: higher epoch, then higher zxid, then higher id.
    pub fn beats(&self, other: &Vote) -> bool {
        (self.epoch, self.zxid, self.leader) > (other.epoch, other.zxid, other.leader)
    }
}

/// An election notification. Like ZooKeeper's, it carries the sender's active config,
/// so a server that missed a reconfig's commit adopts it before it counts votes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub vote: Vote,
    /// The sender's election round (ZooKeeper's electionEpoch / logicalclock).
    pub round: u64,
    pub state: PeerState,
    pub config: Membership,
    /// The sender hears a quorum of voters, so it may lead. A server that does not
    /// (cut off from most, e.g. at the edge of a non-transitive partition) still votes,
    /// but nobody adopts its own candidacy: a quorum that gathers around it could never
    /// be led by it.
    pub stands: bool,
}

/// Everything peers say to each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Vote(Notification),
    FollowerInfo {
        accepted_epoch: i64,
        last_zxid: Zxid,
        observer: bool,
    },
    LeaderInfo {
        epoch: i64,
    },
    AckEpoch {
        current_epoch: i64,
        last_zxid: Zxid,
    },
    /// Sync by difference: proposals and commits follow, up to `zxid`.
    Diff {
        zxid: Zxid,
    },
    /// Drop everything after `zxid`, then proposals and commits follow.
    Trunc {
        zxid: Zxid,
    },
    /// The whole state at `zxid`.
    Snap {
        zxid: Zxid,
        payload: Vec<u8>,
    },
    /// A txn to log; a reconfig carries the config it activates at its commit (inside
    /// the same message, so the two can never be separated by a lost link).
    Proposal {
        zxid: Zxid,
        payload: Bytes,
        config: Option<Membership>,
    },
    Commit {
        zxid: Zxid,
    },
    /// A committed txn for an observer (with its config, for a reconfig:
    /// ZooKeeper's INFORMANDACTIVATE).
    Inform {
        zxid: Zxid,
        payload: Bytes,
        config: Option<Membership>,
    },
    NewLeader {
        zxid: Zxid,
    },
    Ack {
        zxid: Zxid,
    },
    UpToDate,
    Ping,
    /// Opaque application traffic (forwarded requests, replies, session touches), kept
    /// in order with the protocol messages on the same link.
    App(Vec<u8>),
    /// A configuration: active from the commit of `zxid`, or at once when `zxid` is 0
    /// (sent at the start of a sync). ZooKeeper's COMMITANDACTIVATE/INFORMANDACTIVATE
    /// carry the same information.
    Config {
        zxid: Zxid,
        config: Membership,
    },
    /// The leader hands off to `to`; everyone votes for it at (zxid, epoch).
    Transfer {
        to: Sid,
        zxid: Zxid,
        epoch: i64,
    },
}

mod code {
    pub const REQUEST: i32 = 1;
    pub const PROPOSAL: i32 = 2;
    pub const ACK: i32 = 3;
    pub const COMMIT: i32 = 4;
    pub const PING: i32 = 5;
    pub const INFORM: i32 = 8;
    pub const NEWLEADER: i32 = 10;
    pub const FOLLOWERINFO: i32 = 11;
    pub const UPTODATE: i32 = 12;
    pub const DIFF: i32 = 13;
    pub const TRUNC: i32 = 14;
    pub const SNAP: i32 = 15;
    pub const OBSERVERINFO: i32 = 16;
    pub const LEADERINFO: i32 = 17;
    pub const ACKEPOCH: i32 = 18;
    pub const COMMITANDACTIVATE: i32 = 9;
    pub const VOTE: i32 = 100;
    pub const TRANSFER: i32 = 101;
}

/// The flags that end a VOTE (absent in servers before them).
mod vote_flags {
    /// [`super::Notification::stands`].
    pub const STANDS: i32 = 1;
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        match self {
            Message::Vote(n) => {
                out.put_i32(code::VOTE);
                out.put_i64(n.vote.leader as i64);
                out.put_i64(n.vote.zxid);
                out.put_i64(n.vote.epoch);
                out.put_i64(n.round as i64);
                out.put_i32(n.state as i32);
                n.config.write(&mut out);
                out.put_i32(if n.stands { vote_flags::STANDS } else { 0 });
            }
            Message::FollowerInfo {
                accepted_epoch,
                last_zxid,
                observer,
            } => {
                out.put_i32(if *observer {
                    code::OBSERVERINFO
                } else {
                    code::FOLLOWERINFO
                });
                out.put_i64(*accepted_epoch);
                out.put_i64(*last_zxid);
            }
            Message::LeaderInfo { epoch } => {
                out.put_i32(code::LEADERINFO);
                out.put_i64(*epoch);
            }
            Message::AckEpoch {
                current_epoch,
                last_zxid,
            } => {
                out.put_i32(code::ACKEPOCH);
                out.put_i64(*current_epoch);
                out.put_i64(*last_zxid);
            }
            Message::Diff { zxid } => zxid_only(&mut out, code::DIFF, *zxid),
            Message::Trunc { zxid } => zxid_only(&mut out, code::TRUNC, *zxid),
            Message::Commit { zxid } => zxid_only(&mut out, code::COMMIT, *zxid),
            Message::NewLeader { zxid } => zxid_only(&mut out, code::NEWLEADER, *zxid),
            Message::Ack { zxid } => zxid_only(&mut out, code::ACK, *zxid),
            Message::Snap { zxid, payload } => with_payload(&mut out, code::SNAP, *zxid, payload),
            Message::Proposal {
                zxid,
                payload,
                config,
            } => {
                with_payload(&mut out, code::PROPOSAL, *zxid, payload);
                write_config(&mut out, config.as_ref());
            }
            Message::Inform {
                zxid,
                payload,
                config,
            } => {
                with_payload(&mut out, code::INFORM, *zxid, payload);
                write_config(&mut out, config.as_ref());
            }
            Message::UpToDate => out.put_i32(code::UPTODATE),
            Message::Ping => out.put_i32(code::PING),
            Message::App(payload) => {
                out.put_i32(code::REQUEST);
                out.put_buffer(payload);
            }
            Message::Config { zxid, config } => {
                out.put_i32(code::COMMITANDACTIVATE);
                out.put_i64(*zxid);
                config.write(&mut out);
            }
            Message::Transfer { to, zxid, epoch } => {
                out.put_i32(code::TRANSFER);
                out.put_i64(*to as i64);
                out.put_i64(*zxid);
                out.put_i64(*epoch);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader::new(bytes);
        let kind = r.read_i32()?;
        let msg = match kind {
            code::VOTE => Message::Vote(Notification {
                vote: Vote {
                    leader: r.read_i64()? as u64,
                    zxid: r.read_i64()?,
                    epoch: r.read_i64()?,
                },
                round: r.read_i64()? as u64,
                state: PeerState::from_code(r.read_i32()?)?,
                config: Membership::read(&mut r)?,
                // Servers from before the flags sent none: they stood whenever they could.
                stands: r.is_empty() || r.read_i32()? & vote_flags::STANDS != 0,
            }),
            code::FOLLOWERINFO | code::OBSERVERINFO => Message::FollowerInfo {
                accepted_epoch: r.read_i64()?,
                last_zxid: r.read_i64()?,
                observer: kind == code::OBSERVERINFO,
            },
            code::LEADERINFO => Message::LeaderInfo {
                epoch: r.read_i64()?,
            },
            code::ACKEPOCH => Message::AckEpoch {
                current_epoch: r.read_i64()?,
                last_zxid: r.read_i64()?,
            },
            code::DIFF => Message::Diff {
                zxid: r.read_i64()?,
            },
            code::TRUNC => Message::Trunc {
                zxid: r.read_i64()?,
            },
            code::COMMIT => Message::Commit {
                zxid: r.read_i64()?,
            },
            code::NEWLEADER => Message::NewLeader {
                zxid: r.read_i64()?,
            },
            code::ACK => Message::Ack {
                zxid: r.read_i64()?,
            },
            code::SNAP => Message::Snap {
                zxid: r.read_i64()?,
                payload: r.read_buffer()?,
            },
            code::PROPOSAL => Message::Proposal {
                zxid: r.read_i64()?,
                payload: r.read_buffer()?.into(),
                config: read_config(&mut r)?,
            },
            code::INFORM => Message::Inform {
                zxid: r.read_i64()?,
                payload: r.read_buffer()?.into(),
                config: read_config(&mut r)?,
            },
            code::UPTODATE => Message::UpToDate,
            code::PING => Message::Ping,
            code::REQUEST => Message::App(r.read_buffer()?),
            code::COMMITANDACTIVATE => Message::Config {
                zxid: r.read_i64()?,
                config: Membership::read(&mut r)?,
            },
            code::TRANSFER => Message::Transfer {
                to: r.read_i64()? as u64,
                zxid: r.read_i64()?,
                epoch: r.read_i64()?,
            },
            other => return Err(DecodeError::UnknownOpcode(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// A hierarchical quorum group on the wire: its id and members.
type Group = (u64, Vec<Sid>);

impl Membership {
    /// version, rule (0 majority, 1 weighted, 2 hierarchical), voters with weights,
    /// groups (hierarchical), observers.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.put_i64(self.version);
        let (rule, weights, groups): (i32, Vec<(Sid, u64)>, Vec<Group>) = match &self.verifier {
            QuorumVerifier::Majority { voters } => {
                (0, voters.iter().map(|v| (*v, 1)).collect(), vec![])
            }
            QuorumVerifier::Weighted { weights } => {
                (1, weights.iter().map(|(s, w)| (*s, *w)).collect(), vec![])
            }
            QuorumVerifier::Hierarchical { groups, weights } => (
                2,
                weights.iter().map(|(s, w)| (*s, *w)).collect(),
                groups
                    .iter()
                    .map(|(g, m)| (*g, m.iter().copied().collect()))
                    .collect(),
            ),
        };
        out.put_i32(rule);
        out.put_i32(weights.len() as i32);
        for (sid, w) in weights {
            out.put_i64(sid as i64);
            out.put_i64(w as i64);
        }
        out.put_i32(groups.len() as i32);
        for (g, members) in groups {
            out.put_i64(g as i64);
            let members: Vec<i64> = members.into_iter().map(|m| m as i64).collect();
            out.put_vec(&members);
        }
        let observers: Vec<i64> = self.observers.iter().map(|o| *o as i64).collect();
        out.put_vec(&observers);
        out.put_i32(self.addresses.len() as i32);
        for (sid, a) in &self.addresses {
            out.put_i64(*sid as i64);
            out.put_i32(a.peer.len() as i32);
            for p in &a.peer {
                out.put_ustring(&p.host);
                out.put_i32(p.quorum_port.into());
                out.put_i32(p.election_port.into());
            }
            out.put_bool(a.client.is_some());
            if let Some(c) = &a.client {
                out.put_ustring(&c.host);
                out.put_i32(c.port.into());
            }
        }
    }

    pub fn read(r: &mut Reader<'_>) -> Result<Membership, DecodeError> {
        let version = r.read_i64()?;
        let rule = r.read_i32()?;
        let n = r.read_i32()?;
        if n < 0 || n as usize > r.remaining() / 16 {
            return Err(DecodeError::BadValue {
                what: "voter count",
                value: n.into(),
            });
        }
        let mut weights = std::collections::BTreeMap::new();
        for _ in 0..n {
            weights.insert(r.read_i64()? as u64, r.read_i64()? as u64);
        }
        let g = r.read_i32()?;
        if g < 0 || g as usize > r.remaining() / 12 {
            return Err(DecodeError::BadValue {
                what: "group count",
                value: g.into(),
            });
        }
        let mut groups = std::collections::BTreeMap::new();
        for _ in 0..g {
            let id = r.read_i64()? as u64;
            let members: Vec<i64> = r.read_vec()?;
            groups.insert(id, members.into_iter().map(|m| m as u64).collect());
        }
        let observers: Vec<i64> = r.read_vec()?;
        let addresses = read_addresses(r)?;
        let verifier = match rule {
            0 => QuorumVerifier::Majority {
                voters: weights.keys().copied().collect(),
            },
            1 => QuorumVerifier::Weighted { weights },
            2 => QuorumVerifier::Hierarchical { groups, weights },
            other => {
                return Err(DecodeError::BadValue {
                    what: "quorum rule",
                    value: other.into(),
                });
            }
        };
        Ok(Membership {
            verifier,
            observers: observers.into_iter().map(|o| o as u64).collect(),
            version,
            addresses,
        })
    }
}

/// Each member's addresses: (sid, peer addresses, optional client address). Every count
/// is checked against the bytes left, so a frame cannot make us allocate more than it
/// carries.
fn read_addresses(r: &mut Reader<'_>) -> Result<BTreeMap<Sid, MemberAddresses>, DecodeError> {
    // The smallest entry: sid, an empty address list, no client.
    let n = read_count(r, "address count", 8 + 4 + 1)?;
    let mut addresses = BTreeMap::new();
    for _ in 0..n {
        let sid = r.read_i64()? as Sid;
        // The smallest address: an empty host and two ports.
        let k = read_count(r, "peer address count", 4 + 4 + 4)?;
        let mut peer = Vec::with_capacity(k);
        for _ in 0..k {
            peer.push(PeerAddress {
                host: r.read_ustring()?,
                quorum_port: read_port(r)?,
                election_port: read_port(r)?,
            });
        }
        let client = if r.read_bool()? {
            Some(ClientAddress {
                host: r.read_ustring()?,
                port: read_port(r)?,
            })
        } else {
            None
        };
        addresses.insert(sid, MemberAddresses { peer, client });
    }
    Ok(addresses)
}

fn read_count(
    r: &mut Reader<'_>,
    what: &'static str,
    min_size: usize,
) -> Result<usize, DecodeError> {
    let n = r.read_i32()?;
    if n < 0 || n as usize > r.remaining() / min_size {
        return Err(DecodeError::BadValue {
            what,
            value: n.into(),
        });
    }
    Ok(n as usize)
}

fn read_port(r: &mut Reader<'_>) -> Result<u16, DecodeError> {
    let port = r.read_i32()?;
    u16::try_from(port).map_err(|_| DecodeError::BadValue {
        what: "port",
        value: port.into(),
    })
}

fn zxid_only(out: &mut Vec<u8>, kind: i32, zxid: Zxid) {
    out.put_i32(kind);
    out.put_i64(zxid);
}

fn write_config(out: &mut Vec<u8>, config: Option<&Membership>) {
    out.put_bool(config.is_some());
    if let Some(c) = config {
        c.write(out);
    }
}

fn read_config(r: &mut Reader<'_>) -> Result<Option<Membership>, DecodeError> {
    Ok(if r.read_bool()? {
        Some(Membership::read(r)?)
    } else {
        None
    })
}

fn with_payload(out: &mut Vec<u8>, kind: i32, zxid: Zxid, payload: &[u8]) {
    out.put_i32(kind);
    out.put_i64(zxid);
    out.put_buffer(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_message_round_trips() {
        let vote = Vote {
            leader: 3,
            zxid: 0x2_0000_0005,
            epoch: 2,
        };
        let all = vec![
            Message::Vote(Notification {
                vote,
                round: 7,
                state: PeerState::Leading,
                config: Membership {
                    verifier: QuorumVerifier::majority([1, 2, 3]),
                    observers: [4].into_iter().collect(),
                    version: 5,
                    addresses: [
                        (
                            1,
                            MemberAddresses {
                                peer: vec![
                                    PeerAddress {
                                        host: "zk-1.zk".into(),
                                        quorum_port: 2888,
                                        election_port: 3888,
                                    },
                                    PeerAddress {
                                        host: "::1".into(),
                                        quorum_port: 1,
                                        election_port: 65535,
                                    },
                                ],
                                client: Some(ClientAddress {
                                    host: "0.0.0.0".into(),
                                    port: 2181,
                                }),
                            },
                        ),
                        (4, MemberAddresses::default()),
                    ]
                    .into_iter()
                    .collect(),
                },
                stands: false,
            }),
            Message::FollowerInfo {
                accepted_epoch: 2,
                last_zxid: 9,
                observer: true,
            },
            Message::LeaderInfo { epoch: 3 },
            Message::AckEpoch {
                current_epoch: 2,
                last_zxid: 9,
            },
            Message::Diff { zxid: 1 },
            Message::Trunc { zxid: 2 },
            Message::Snap {
                zxid: 3,
                payload: vec![1, 2],
            },
            Message::Proposal {
                zxid: 4,
                payload: Bytes::from_static(&[9]),
                config: None,
            },
            Message::Proposal {
                zxid: 6,
                payload: Bytes::from_static(&[9]),
                config: Some(Membership {
                    verifier: QuorumVerifier::majority([1, 2]),
                    observers: [3].into_iter().collect(),
                    version: 6,
                    addresses: Default::default(),
                }),
            },
            Message::Commit { zxid: 4 },
            Message::Inform {
                zxid: 5,
                payload: Bytes::new(),
                config: None,
            },
            Message::NewLeader { zxid: 3 << 32 },
            Message::Ack { zxid: 4 },
            Message::UpToDate,
            Message::Ping,
            Message::App(b"hello".to_vec()),
            Message::Config {
                zxid: 7,
                config: Membership {
                    verifier: QuorumVerifier::Hierarchical {
                        groups: [(1, [1, 2].into_iter().collect())].into_iter().collect(),
                        weights: [(1, 1), (2, 3)].into_iter().collect(),
                    },
                    observers: [9].into_iter().collect(),
                    version: 0x1_0000_0007,
                    addresses: Default::default(),
                },
            },
            Message::Config {
                zxid: 0,
                config: Membership {
                    verifier: QuorumVerifier::majority([1, 2, 3]),
                    observers: Default::default(),
                    version: 0,
                    addresses: Default::default(),
                },
            },
            Message::Transfer {
                to: 2,
                zxid: 9,
                epoch: 3,
            },
        ];
        for m in all {
            assert_eq!(Message::decode(&m.encode()), Ok(m));
        }
        assert!(vote.beats(&Vote {
            leader: 9,
            zxid: 0x2_0000_0004,
            epoch: 2
        }));
        assert!(!vote.beats(&Vote {
            leader: 1,
            zxid: 0,
            epoch: 3
        }));
    }

    /// A VOTE as servers before the flags wrote it (no trailing flags) still decodes,
    /// and its sender counts as standing, as it then did.
    #[test]
    fn a_vote_without_flags_decodes_as_standing() {
        let n = Notification {
            vote: Vote {
                leader: 2,
                zxid: 9,
                epoch: 1,
            },
            round: 3,
            state: PeerState::Looking,
            config: Membership {
                verifier: QuorumVerifier::majority([1, 2, 3]),
                observers: Default::default(),
                version: 0,
                addresses: Default::default(),
            },
            stands: false,
        };
        let mut bytes = Message::Vote(n.clone()).encode();
        assert_eq!(bytes.split_off(bytes.len() - 4), vec![0, 0, 0, 0]);
        assert_eq!(
            Message::decode(&bytes),
            Ok(Message::Vote(Notification { stands: true, ..n }))
        );
    }

    /// A config that claims more member addresses, or a port larger, than its frame can
    /// carry is refused with the field named, before anything is allocated for it.
    #[test]
    fn a_config_with_impossible_addresses_is_refused() {
        let mut config = Membership::of_voters([1], 0);
        let mut bytes = Vec::new();
        config.write(&mut bytes);
        // The address count is the last i32 of a config without addresses.
        let at = bytes.len() - 4;
        bytes[at..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            Membership::read(&mut Reader::new(&bytes)),
            Err(DecodeError::BadValue {
                what: "address count",
                value: i32::MAX.into()
            })
        );
        config.addresses.insert(
            1,
            MemberAddresses {
                peer: vec![],
                client: Some(ClientAddress {
                    host: "h".into(),
                    port: 2181,
                }),
            },
        );
        let mut bytes = Vec::new();
        config.write(&mut bytes);
        let at = bytes.len() - 4;
        bytes[at..].copy_from_slice(&70_000i32.to_be_bytes());
        assert_eq!(
            Membership::read(&mut Reader::new(&bytes)),
            Err(DecodeError::BadValue {
                what: "port",
                value: 70_000
            })
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Message::decode(&bytes);
        }
    }
}
