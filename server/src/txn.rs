//! Transactions: the only way the replicated state changes. A request that passes
//! validation becomes a `Txn`; the txn is logged, (later) replicated, and applied to the
//! tree in zxid order. The log encoding is ZooKeeper's own: a TxnHeader followed by the
//! txn record of its type.
//!
//! Znode data may be null, as in ZooKeeper: a create or setData whose data is null
//! logs the buffer with length -1 (jute's null), and reads back as `None`. Builds before
//! null data was kept never wrote -1 there (an empty buffer is length 0), so their logs
//! read back unchanged; they read a -1 as empty, so a log or proposal from this build
//! still loads on them, with null turned into empty.

use paddock_proto::{
    Acl, CheckVersionTxn, CloseSessionTxn, CreateContainerTxn, CreateSessionTxn, CreateTtlTxn,
    CreateTxn, DecodeError, DeleteTxn, Jute, JuteWrite, MultiTxn, OpCode, Reader, SetAclTxn,
    SetDataTxn, TxnHeader,
};

use crate::tree::NodeKind;

/// A TxnHeader's encoded length: client id, cxid, zxid, time, type.
const TXN_HEADER_LEN: usize = 8 + 4 + 8 + 8 + 4;

/// A transaction with its header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// The session on whose behalf the txn runs (ZooKeeper's clientId).
    pub session: i64,
    /// The client's xid, so replies can be matched on any server.
    pub cxid: i32,
    pub zxid: i64,
    /// Wall-clock milliseconds chosen once by the proposer; becomes ctime/mtime.
    pub time: i64,
    pub op: TxnOp,
}

/// What a transaction does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    CreateSession {
        timeout_ms: i32,
    },
    CloseSession,
    Create {
        /// create, create2, createContainer or createTTL: decides the reply's shape.
        op: OpCode,
        path: String,
        /// `None`: null data, kept distinct from empty.
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        kind: NodeKind,
        /// The parent's cversion after this create.
        parent_cversion: i32,
    },
    Delete {
        path: String,
        /// Whether the container/TTL reaper issued it (deleteContainer).
        reaped: bool,
    },
    SetData {
        path: String,
        /// `None`: null data, kept distinct from empty.
        data: Option<Vec<u8>>,
        /// The node's version after this write.
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        /// The node's aversion after this write.
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<TxnOp>),
    /// A membership change: the new text of /zookeeper/config (logged, as ZooKeeper
    /// does, as a SetDataTxn on that node with the reconfig type).
    Reconfig {
        data: Vec<u8>,
    },
}

impl TxnOp {
    /// The opcode recorded in the txn header.
    pub fn opcode(&self) -> OpCode {
        match self {
            TxnOp::CreateSession { .. } => OpCode::CreateSession,
            TxnOp::CloseSession => OpCode::CloseSession,
            TxnOp::Create { op, kind, .. } => match kind {
                NodeKind::Container => OpCode::CreateContainer,
                NodeKind::Ttl(_) => OpCode::CreateTtl,
                _ => *op,
            },
            TxnOp::Delete { reaped: true, .. } => OpCode::DeleteContainer,
            TxnOp::Delete { .. } => OpCode::Delete,
            TxnOp::SetData { .. } => OpCode::SetData,
            TxnOp::SetAcl { .. } => OpCode::SetAcl,
            TxnOp::Check { .. } => OpCode::Check,
            TxnOp::Multi(_) => OpCode::Multi,
            TxnOp::Reconfig { .. } => OpCode::Reconfig,
        }
    }

    /// Writes the body in the layout of its jute record (`CreateTxn`, `SetDataTxn`, …:
    /// field by field, as `read_body` reads it back through those records), straight
    /// from the op's fields: building the record first would copy the path and the
    /// data once more for every write.
    fn write_body(&self, out: &mut Vec<u8>) {
        match self {
            TxnOp::CreateSession { timeout_ms } => out.put_i32(*timeout_ms),
            // CloseSessionTxn: an empty paths_to_delete vector.
            TxnOp::CloseSession => out.put_i32(0),
            TxnOp::Create {
                path,
                data,
                acl,
                kind,
                parent_cversion,
                ..
            } => {
                out.put_ustring(path);
                out.put_nullable_buffer(data.as_deref());
                out.put_vec(acl);
                match kind {
                    NodeKind::Container => out.put_i32(*parent_cversion),
                    NodeKind::Ttl(ttl) => {
                        out.put_i32(*parent_cversion);
                        out.put_i64(*ttl);
                    }
                    NodeKind::Persistent | NodeKind::Ephemeral(_) => {
                        out.put_bool(matches!(kind, NodeKind::Ephemeral(_)));
                        out.put_i32(*parent_cversion);
                    }
                }
            }
            TxnOp::Delete { path, .. } => out.put_ustring(path),
            TxnOp::SetData {
                path,
                data,
                version,
            } => {
                out.put_ustring(path);
                out.put_nullable_buffer(data.as_deref());
                out.put_i32(*version);
            }
            TxnOp::SetAcl { path, acl, version } => {
                out.put_ustring(path);
                out.put_vec(acl);
                out.put_i32(*version);
            }
            TxnOp::Check { path, version } => {
                out.put_ustring(path);
                out.put_i32(*version);
            }
            TxnOp::Reconfig { data } => {
                out.put_ustring(crate::tree::CONFIG_NODE);
                out.put_nullable_buffer(Some(data));
                out.put_i32(-1);
            }
            // MultiTxn: the count, then each sub-txn as its type and its body as a buffer
            // (the body's length is filled in once it is written).
            TxnOp::Multi(ops) => {
                out.put_i32(i32::try_from(ops.len()).unwrap_or(i32::MAX));
                for op in ops {
                    out.put_i32(op.opcode().code());
                    let len_at = out.len();
                    out.put_i32(0);
                    op.write_body(out);
                    let len = i32::try_from(out.len() - len_at - 4).unwrap_or(i32::MAX);
                    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
                }
            }
        }
    }

    /// Bytes the body will take, near enough to size the buffer once.
    fn body_len_hint(&self) -> usize {
        match self {
            TxnOp::Create { path, data, .. } | TxnOp::SetData { path, data, .. } => {
                path.len() + data.as_ref().map_or(0, Vec::len) + 64
            }
            TxnOp::Reconfig { data } => data.len() + 64,
            TxnOp::Multi(ops) => ops.iter().map(|op| op.body_len_hint() + 8).sum::<usize>() + 4,
            _ => 64,
        }
    }

    fn read_body(kind: i32, session: i64, r: &mut Reader<'_>) -> Result<TxnOp, DecodeError> {
        let op = OpCode::try_from(kind)?;
        Ok(match op {
            OpCode::CreateSession => TxnOp::CreateSession {
                timeout_ms: CreateSessionTxn::read(r)?.time_out,
            },
            OpCode::CloseSession => {
                CloseSessionTxn::read(r)?;
                TxnOp::CloseSession
            }
            OpCode::Create | OpCode::Create2 => {
                let t = CreateTxn::read(r)?;
                TxnOp::Create {
                    op,
                    path: t.path,
                    data: t.data.into_option(),
                    acl: t.acl,
                    kind: if t.ephemeral {
                        NodeKind::Ephemeral(session)
                    } else {
                        NodeKind::Persistent
                    },
                    parent_cversion: t.parent_cversion,
                }
            }
            OpCode::CreateContainer => {
                let t = CreateContainerTxn::read(r)?;
                TxnOp::Create {
                    op,
                    path: t.path,
                    data: t.data.into_option(),
                    acl: t.acl,
                    kind: NodeKind::Container,
                    parent_cversion: t.parent_cversion,
                }
            }
            OpCode::CreateTtl => {
                let t = CreateTtlTxn::read(r)?;
                TxnOp::Create {
                    op,
                    path: t.path,
                    data: t.data.into_option(),
                    acl: t.acl,
                    kind: NodeKind::Ttl(t.ttl),
                    parent_cversion: t.parent_cversion,
                }
            }
            OpCode::Delete | OpCode::DeleteContainer => TxnOp::Delete {
                path: DeleteTxn::read(r)?.path,
                reaped: op == OpCode::DeleteContainer,
            },
            OpCode::SetData => {
                let t = SetDataTxn::read(r)?;
                TxnOp::SetData {
                    path: t.path,
                    data: t.data.into_option(),
                    version: t.version,
                }
            }
            OpCode::SetAcl => {
                let t = SetAclTxn::read(r)?;
                TxnOp::SetAcl {
                    path: t.path,
                    acl: t.acl,
                    version: t.version,
                }
            }
            OpCode::Check => {
                let t = CheckVersionTxn::read(r)?;
                TxnOp::Check {
                    path: t.path,
                    version: t.version,
                }
            }
            OpCode::Reconfig => TxnOp::Reconfig {
                data: SetDataTxn::read(r)?.data.into_vec(),
            },
            OpCode::Multi => {
                let multi = MultiTxn::read(r)?;
                let mut ops = Vec::with_capacity(multi.txns.len());
                for sub in multi.txns {
                    if sub.kind == OpCode::Multi.code() {
                        return Err(DecodeError::OpcodeNotAllowed(sub.kind, "multi txn"));
                    }
                    let mut sr = Reader::new(&sub.data);
                    ops.push(TxnOp::read_body(sub.kind, session, &mut sr)?);
                    sr.finish()?;
                }
                TxnOp::Multi(ops)
            }
            // Requests that never become a txn. (ZooKeeper also logs error txns, -1,
            // which this server never writes.)
            OpCode::Notification
            | OpCode::Exists
            | OpCode::GetData
            | OpCode::GetAcl
            | OpCode::GetChildren
            | OpCode::Sync
            | OpCode::Ping
            | OpCode::GetChildren2
            | OpCode::CheckWatches
            | OpCode::RemoveWatches
            | OpCode::MultiRead
            | OpCode::Auth
            | OpCode::SetWatches
            | OpCode::Sasl
            | OpCode::GetEphemerals
            | OpCode::GetAllChildrenNumber
            | OpCode::SetWatches2
            | OpCode::AddWatch
            | OpCode::WhoAmI
            | OpCode::Error => return Err(DecodeError::OpcodeNotAllowed(kind, "txn log")),
        })
    }
}

impl Txn {
    /// The log record: TxnHeader then body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TXN_HEADER_LEN + self.op.body_len_hint());
        TxnHeader {
            client_id: self.session,
            cxid: self.cxid,
            zxid: self.zxid,
            time: self.time,
            kind: self.op.opcode().code(),
        }
        .write(&mut out);
        self.op.write_body(&mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Txn, DecodeError> {
        let mut r = Reader::new(bytes);
        let header = TxnHeader::read(&mut r)?;
        let op = TxnOp::read_body(header.kind, header.client_id, &mut r)?;
        r.finish()?;
        Ok(Txn {
            session: header.client_id,
            cxid: header.cxid,
            zxid: header.zxid,
            time: header.time,
            op,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_ops() -> Vec<TxnOp> {
        let acl = crate::tree::acl::open_acl();
        vec![
            TxnOp::CreateSession { timeout_ms: 30000 },
            TxnOp::CloseSession,
            TxnOp::Create {
                op: OpCode::Create2,
                path: "/a".into(),
                data: Some(b"x".to_vec()),
                acl: acl.clone(),
                kind: NodeKind::Ephemeral(7),
                parent_cversion: 3,
            },
            TxnOp::Create {
                op: OpCode::CreateContainer,
                path: "/c".into(),
                data: None,
                acl: acl.clone(),
                kind: NodeKind::Container,
                parent_cversion: 1,
            },
            TxnOp::Create {
                op: OpCode::CreateTtl,
                path: "/t".into(),
                data: Some(vec![1]),
                acl: acl.clone(),
                kind: NodeKind::Ttl(5000),
                parent_cversion: 2,
            },
            TxnOp::Delete {
                path: "/a".into(),
                reaped: true,
            },
            TxnOp::SetData {
                path: "/a".into(),
                data: Some(vec![0; 10]),
                version: 4,
            },
            TxnOp::Create {
                op: OpCode::Create,
                path: "/e".into(),
                data: Some(vec![]),
                acl: acl.clone(),
                kind: NodeKind::Persistent,
                parent_cversion: 4,
            },
            TxnOp::SetData {
                path: "/e".into(),
                data: None,
                version: 1,
            },
            TxnOp::SetAcl {
                path: "/a".into(),
                acl,
                version: 1,
            },
            TxnOp::Check {
                path: "/a".into(),
                version: 1,
            },
            TxnOp::Reconfig {
                data: b"server.1=a:1:2:participant\nversion=100000001".to_vec(),
            },
        ]
    }

    #[test]
    fn every_txn_round_trips() {
        let mut ops = sample_ops();
        ops.push(TxnOp::Multi(sample_ops()));
        for op in ops {
            let txn = Txn {
                session: 7,
                cxid: 9,
                zxid: 0x1_0000_0002,
                time: 1_700_000_000_000,
                op,
            };
            assert_eq!(Txn::decode(&txn.encode()), Ok(txn));
        }
    }

    #[test]
    fn null_data_is_logged_as_length_minus_one() {
        let txn = |data| Txn {
            session: 9,
            cxid: 3,
            zxid: 0x1_0000_0005,
            time: 1_700_000_000_000,
            op: TxnOp::SetData {
                path: "/n".into(),
                data,
                version: 2,
            },
        };
        let null = txn(None).encode();
        let empty = txn(Some(vec![])).encode();
        // TxnHeader (8 + 4 + 8 + 8 + 4), path "/n" (4 + 2), then the data's length.
        assert_eq!(null[38..42], [0xff; 4]);
        assert_eq!(empty[38..42], [0; 4]);
        assert_eq!(Txn::decode(&null), Ok(txn(None)));
        assert_eq!(Txn::decode(&empty), Ok(txn(Some(vec![]))));
    }

    /// A create of "/e" with empty data as the build before null data was kept logged
    /// it (session 9, cxid 3, zxid 0x100000005): it still reads as empty, not null.
    const OLD_EMPTY_CREATE: &str = "00000000000000090000000300000001000000050000018bcfe568000000000f000000022f6500000000000000010000001f00000005776f726c6400000006616e796f6e650000000002";

    #[test]
    fn a_record_logged_before_null_data_was_kept_still_reads() {
        let bytes: Vec<u8> = (0..OLD_EMPTY_CREATE.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&OLD_EMPTY_CREATE[i..i + 2], 16).unwrap())
            .collect();
        let txn = Txn::decode(&bytes).unwrap();
        assert_eq!(
            txn.op,
            TxnOp::Create {
                op: OpCode::Create2,
                path: "/e".into(),
                data: Some(vec![]),
                acl: crate::tree::acl::open_acl(),
                kind: NodeKind::Persistent,
                parent_cversion: 2,
            }
        );
        assert_eq!(txn.encode(), bytes, "and is written the same way today");
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Txn::decode(&bytes);
        }
    }
}
