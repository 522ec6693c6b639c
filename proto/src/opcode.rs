//! ZooKeeper's opcodes (ZooDefs.OpCode) and, in one table, what a server does with each:
//! whether it reads or writes, whether a follower hands it to the leader, whether a
//! multi may hold it, and the names ZooKeeper gives it. The server's pipeline, its
//! read-only mode, its `enforce.auth` check, its `cons` report and the multi decoders all
//! read the table instead of keeping lists of their own, so a new opcode is one new
//! variant plus one row: [`OpCode::info`] matches every variant without a wildcard, so
//! leaving the row out does not compile.

use crate::jute::DecodeError;

wire_enum! {
    /// Request types (ZooDefs.OpCode). An unknown number decodes to
    /// [`DecodeError::UnknownOpcode`], which the server answers with Unimplemented.
    OpCode: "opcode" => DecodeError::UnknownOpcode {
        Notification = 0,
        Create = 1,
        Delete = 2,
        Exists = 3,
        GetData = 4,
        SetData = 5,
        GetAcl = 6,
        SetAcl = 7,
        GetChildren = 8,
        Sync = 9,
        Ping = 11,
        GetChildren2 = 12,
        Check = 13,
        Multi = 14,
        Create2 = 15,
        Reconfig = 16,
        CheckWatches = 17,
        RemoveWatches = 18,
        CreateContainer = 19,
        DeleteContainer = 20,
        CreateTtl = 21,
        MultiRead = 22,
        Auth = 100,
        SetWatches = 101,
        Sasl = 102,
        GetEphemerals = 103,
        GetAllChildrenNumber = 104,
        SetWatches2 = 105,
        AddWatch = 106,
        WhoAmI = 107,
        CreateSession = -10,
        CloseSession = -11,
        Error = -1,
    }
}

/// What kind of work a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Answered by the server the client is connected to, from its tree and watch table:
    /// reads and watch management (ZooKeeper's non-quorum requests).
    Read,
    /// Changes the replicated state: the leader validates it and, but for a lone check,
    /// logs it as a transaction (ZooKeeper's quorum requests).
    Write,
    /// Keeps the session alive; touches nothing else.
    Ping,
    /// Authenticates the connection (addauth, SASL): the one kind `enforce.auth` lets
    /// through before the connection holds an id of an enforced scheme.
    Auth,
    /// Never sent as a request: a watch notification, or a multi's error entry.
    Internal,
}

/// Which server answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// The server the client is connected to.
    Local,
    /// The leader, which sequences it: a follower forwards it, and a read-only server
    /// refuses it with NotReadOnly.
    Leader,
}

/// Which batch may hold a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InMulti {
    /// Neither.
    No,
    /// An op of a `multi` (an atomic write batch).
    Multi,
    /// An op of a `multiRead` (independent reads).
    MultiRead,
}

/// One row of the table: everything the workspace needs to know about an opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpInfo {
    /// ZooKeeper's name for it (Request.op2String), as its logs and admin server say it.
    pub name: &'static str,
    /// The `lop=` name in `cons` (FinalRequestProcessor's lastOp); "NA" for the requests
    /// ZooKeeper gives none.
    pub cons: &'static str,
    pub kind: OpKind,
    pub route: Route,
    pub multi: InMulti,
}

const fn row(
    name: &'static str,
    cons: &'static str,
    kind: OpKind,
    route: Route,
    multi: InMulti,
) -> OpInfo {
    OpInfo {
        name,
        cons,
        kind,
        route,
        multi,
    }
}

impl OpCode {
    /// The table. `sync` reads but goes to the leader (it waits for the leader's commits
    /// to reach this server); `check` alone is answered without a txn, but it is a write
    /// all the same: ZooKeeper sequences it through the leader.
    #[rustfmt::skip]
    pub const fn info(self) -> OpInfo {
        use InMulti::{Multi, MultiRead, No};
        use OpKind::{Auth, Internal, Ping, Read, Write};
        use Route::{Leader, Local};
        match self {
            //                                    ZooKeeper name          cons      kind      route   multi
            OpCode::Notification         => row("notification",         "NA",     Internal, Local,  No),
            OpCode::Create               => row("create",               "CREA",   Write,    Leader, Multi),
            OpCode::Delete               => row("delete",               "DELE",   Write,    Leader, Multi),
            OpCode::Exists               => row("exists",               "EXIS",   Read,     Local,  No),
            OpCode::GetData              => row("getData",              "GETD",   Read,     Local,  MultiRead),
            OpCode::SetData              => row("setData",              "SETD",   Write,    Leader, Multi),
            OpCode::GetAcl               => row("getACL",               "GETA",   Read,     Local,  No),
            OpCode::SetAcl               => row("setACL",               "SETA",   Write,    Leader, No),
            OpCode::GetChildren          => row("getChildren",          "GETC",   Read,     Local,  MultiRead),
            OpCode::Sync                 => row("sync",                 "SYNC",   Read,     Leader, No),
            OpCode::Ping                 => row("ping",                 "PING",   Ping,     Local,  No),
            OpCode::GetChildren2         => row("getChildren2",         "GETC",   Read,     Local,  No),
            OpCode::Check                => row("check",                "CHEC",   Write,    Leader, Multi),
            OpCode::Multi                => row("multi",                "MULT",   Write,    Leader, No),
            OpCode::Create2              => row("create2",              "CREA",   Write,    Leader, Multi),
            OpCode::Reconfig             => row("reconfig",             "RECO",   Write,    Leader, No),
            OpCode::CheckWatches         => row("checkWatches",         "CHKW",   Read,     Local,  No),
            OpCode::RemoveWatches        => row("removeWatches",        "REMW",   Read,     Local,  No),
            OpCode::CreateContainer      => row("createContainer",      "CREA",   Write,    Leader, Multi),
            OpCode::DeleteContainer      => row("deleteContainer",      "DELE",   Write,    Leader, No),
            OpCode::CreateTtl            => row("createTtl",            "CREA",   Write,    Leader, Multi),
            OpCode::MultiRead            => row("multiRead",            "MLTR",   Read,     Local,  No),
            OpCode::Auth                 => row("auth",                 "NA",     Auth,     Local,  No),
            OpCode::SetWatches           => row("setWatches",           "SETW",   Read,     Local,  No),
            OpCode::Sasl                 => row("sasl",                 "NA",     Auth,     Local,  No),
            OpCode::GetEphemerals        => row("getEphemerals",        "GETE",   Read,     Local,  No),
            OpCode::GetAllChildrenNumber => row("getAllChildrenNumber", "GETACN", Read,     Local,  No),
            OpCode::SetWatches2          => row("setWatches2",          "STW2",   Read,     Local,  No),
            OpCode::AddWatch             => row("addWatch",             "ADDW",   Read,     Local,  No),
            OpCode::WhoAmI               => row("whoAmI",               "HOMI",   Read,     Local,  No),
            // The ConnectRequest's txn: followers forward it to the leader as well.
            OpCode::CreateSession        => row("createSession",        "SESS",   Write,    Leader, No),
            OpCode::CloseSession         => row("closeSession",         "CLOS",   Write,    Leader, No),
            OpCode::Error                => row("error",                "NA",     Internal, Local,  No),
        }
    }

    /// ZooKeeper's name for the opcode (`getData`, `create2`, ...); `name()` and
    /// `Display` give the Rust variant's name instead (`GetData`).
    pub const fn zk_name(self) -> &'static str {
        self.info().name
    }

    /// The `lop=` name `cons` shows for a connection's last request (`GETD`, ...).
    pub const fn cons_name(self) -> &'static str {
        self.info().cons
    }

    pub const fn kind(self) -> OpKind {
        self.info().kind
    }

    /// Whether the request changes state (and so becomes a transaction).
    pub const fn is_write(self) -> bool {
        matches!(self.kind(), OpKind::Write)
    }

    /// Whether the request authenticates the connection (auth, sasl).
    pub const fn is_auth(self) -> bool {
        matches!(self.kind(), OpKind::Auth)
    }

    /// Whether the leader sequences it: a follower forwards it, and a read-only server
    /// refuses it.
    pub const fn goes_to_leader(self) -> bool {
        matches!(self.info().route, Route::Leader)
    }

    pub const fn in_multi(self) -> InMulti {
        self.info().multi
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_round_trip_and_unknowns_are_refused() {
        for op in OpCode::ALL {
            assert_eq!(OpCode::from_code(op.code()), Some(*op));
            assert_eq!(OpCode::try_from(op.code()), Ok(*op));
        }
        assert_eq!(OpCode::from_code(10), None);
        assert_eq!(OpCode::try_from(10), Err(DecodeError::UnknownOpcode(10)));
        assert_eq!(OpCode::try_from(999), Err(DecodeError::UnknownOpcode(999)));
        assert_eq!(OpCode::WhoAmI.code(), 107);
        assert_eq!(OpCode::CreateSession.code(), -10);
    }

    #[test]
    fn every_write_goes_to_the_leader_and_only_sync_besides() {
        for op in OpCode::ALL {
            if op.is_write() {
                assert!(op.goes_to_leader(), "{op} is a write the leader never sees");
            } else if op.goes_to_leader() {
                assert_eq!(*op, OpCode::Sync, "{op} goes to the leader without writing");
            }
        }
    }

    #[test]
    fn batches_hold_only_their_own_kind() {
        for op in OpCode::ALL {
            match op.in_multi() {
                InMulti::Multi => assert!(op.is_write() && *op != OpCode::Multi, "{op}"),
                InMulti::MultiRead => assert_eq!(op.kind(), OpKind::Read, "{op}"),
                InMulti::No => {}
            }
        }
        let multi: Vec<_> = OpCode::ALL
            .iter()
            .filter(|op| op.in_multi() == InMulti::Multi)
            .collect();
        // ZooKeeper's MultiOperationRecord: the creates, delete, setData and check.
        assert_eq!(
            multi,
            [
                &OpCode::Create,
                &OpCode::Delete,
                &OpCode::SetData,
                &OpCode::Check,
                &OpCode::Create2,
                &OpCode::CreateContainer,
                &OpCode::CreateTtl,
            ]
        );
    }

    #[test]
    fn names_are_unique_and_zookeepers() {
        let names: HashSet<_> = OpCode::ALL.iter().map(|op| op.zk_name()).collect();
        assert_eq!(names.len(), OpCode::ALL.len());
        assert_eq!(OpCode::GetData.zk_name(), "getData");
        assert_eq!(OpCode::Create2.zk_name(), "create2");
        assert_eq!(OpCode::GetAcl.zk_name(), "getACL");
        assert_eq!(OpCode::CreateTtl.zk_name(), "createTtl");
        // cons names are shared where ZooKeeper's lastOp is (every create is CREA).
        assert_eq!(OpCode::GetData.cons_name(), "GETD");
        assert_eq!(OpCode::CreateTtl.cons_name(), "CREA");
        assert_eq!(OpCode::CreateSession.cons_name(), "SESS");
        assert_eq!(OpCode::Auth.cons_name(), "NA");
    }

    #[test]
    fn only_auth_and_sasl_authenticate() {
        let auth: Vec<_> = OpCode::ALL.iter().filter(|op| op.is_auth()).collect();
        assert_eq!(auth, [&OpCode::Auth, &OpCode::Sasl]);
        for op in OpCode::ALL {
            if matches!(op.kind(), OpKind::Auth | OpKind::Ping | OpKind::Internal) {
                assert!(!op.goes_to_leader(), "{op}");
                assert_eq!(op.in_multi(), InMulti::No, "{op}");
            }
        }
    }
}
