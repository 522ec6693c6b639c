//! Every record of zookeeper.jute that crosses the client wire or lands in the
//! transaction log, field for field in ZooKeeper's order.

use crate::jute::{Buffer, Data, DecodeError, Jute, JuteWrite, Reader};

// ---- org.apache.zookeeper.data ----

jute_record!(
    /// An identity: a scheme and a scheme-specific id (e.g. `digest`, `user:hash`).
    Id { scheme: String, id: String }
);

jute_record!(
    /// A permission grant.
    Acl { perms: i32, id: Id }
);

jute_record!(
    /// Node metadata as clients see it.
    Stat {
        czxid: i64,
        mzxid: i64,
        ctime: i64,
        mtime: i64,
        version: i32,
        cversion: i32,
        aversion: i32,
        ephemeral_owner: i64,
        data_length: i32,
        num_children: i32,
        pzxid: i64,
    }
);

jute_record!(
    /// Node metadata as snapshots store it (no derived fields).
    StatPersisted {
        czxid: i64,
        mzxid: i64,
        ctime: i64,
        mtime: i64,
        version: i32,
        cversion: i32,
        aversion: i32,
        ephemeral_owner: i64,
        pzxid: i64,
    }
);

jute_record!(
    /// One authenticated identity of a session (whoAmI).
    ClientInfo { auth_scheme: String, user: String }
);

// ---- org.apache.zookeeper.proto ----

jute_record!(RequestHeader { xid: i32, op: i32 });
jute_record!(ReplyHeader {
    xid: i32,
    zxid: i64,
    err: i32
});
jute_record!(MultiHeader {
    op: i32,
    done: bool,
    err: i32
});
jute_record!(AuthPacket {
    kind: i32,
    scheme: String,
    auth: Buffer
});
jute_record!(WatcherEvent {
    kind: i32,
    state: i32,
    path: String
});
jute_record!(ErrorResponse { err: i32 });

jute_record!(SetWatches {
    relative_zxid: i64,
    data_watches: Vec<String>,
    exist_watches: Vec<String>,
    child_watches: Vec<String>,
});
jute_record!(SetWatches2 {
    relative_zxid: i64,
    data_watches: Vec<String>,
    exist_watches: Vec<String>,
    child_watches: Vec<String>,
    persistent_watches: Vec<String>,
    persistent_recursive_watches: Vec<String>,
});

jute_record!(GetDataRequest {
    path: String,
    watch: bool
});
jute_record!(GetDataResponse {
    data: Data,
    stat: Stat
});
jute_record!(SetDataRequest {
    path: String,
    data: Data,
    version: i32
});
jute_record!(SetDataResponse { stat: Stat });
jute_record!(ReconfigRequest {
    joining_servers: String,
    leaving_servers: String,
    new_members: String,
    cur_config_id: i64,
});
jute_record!(GetSaslRequest { token: Buffer });
jute_record!(SetSaslResponse { token: Buffer });
jute_record!(CreateRequest {
    path: String,
    data: Data,
    acl: Vec<Acl>,
    flags: i32,
});
jute_record!(CreateTtlRequest {
    path: String,
    data: Data,
    acl: Vec<Acl>,
    flags: i32,
    ttl: i64,
});
jute_record!(CreateResponse { path: String });
jute_record!(Create2Response {
    path: String,
    stat: Stat
});
jute_record!(DeleteRequest {
    path: String,
    version: i32
});
jute_record!(GetChildrenRequest {
    path: String,
    watch: bool
});
jute_record!(GetChildrenResponse { children: Vec<String> });
jute_record!(GetChildren2Response { children: Vec<String>, stat: Stat });
jute_record!(GetAllChildrenNumberRequest { path: String });
jute_record!(GetAllChildrenNumberResponse { total_number: i32 });
jute_record!(CheckVersionRequest {
    path: String,
    version: i32
});
jute_record!(SyncRequest { path: String });
jute_record!(SyncResponse { path: String });
jute_record!(GetAclRequest { path: String });
jute_record!(GetAclResponse { acl: Vec<Acl>, stat: Stat });
jute_record!(SetAclRequest { path: String, acl: Vec<Acl>, version: i32 });
jute_record!(SetAclResponse { stat: Stat });
jute_record!(ExistsRequest {
    path: String,
    watch: bool
});
jute_record!(ExistsResponse { stat: Stat });
jute_record!(AddWatchRequest {
    path: String,
    mode: i32
});
jute_record!(CheckWatchesRequest {
    path: String,
    kind: i32
});
jute_record!(RemoveWatchesRequest {
    path: String,
    kind: i32
});
jute_record!(GetEphemeralsRequest {
    prefix_path: String
});
jute_record!(GetEphemeralsResponse { ephemerals: Vec<String> });
jute_record!(WhoAmIResponse { client_info: Vec<ClientInfo> });

// ---- org.apache.zookeeper.txn ----

jute_record!(TxnHeader {
    client_id: i64,
    cxid: i32,
    zxid: i64,
    time: i64,
    kind: i32,
});
jute_record!(TxnDigest {
    version: i32,
    tree_digest: i64
});
jute_record!(CreateTxn {
    path: String,
    data: Data,
    acl: Vec<Acl>,
    ephemeral: bool,
    parent_cversion: i32,
});
jute_record!(CreateTtlTxn {
    path: String,
    data: Data,
    acl: Vec<Acl>,
    parent_cversion: i32,
    ttl: i64,
});
jute_record!(CreateContainerTxn {
    path: String,
    data: Data,
    acl: Vec<Acl>,
    parent_cversion: i32,
});
jute_record!(DeleteTxn { path: String });
jute_record!(SetDataTxn {
    path: String,
    data: Data,
    version: i32
});
jute_record!(CheckVersionTxn {
    path: String,
    version: i32
});
jute_record!(SetAclTxn { path: String, acl: Vec<Acl>, version: i32 });
jute_record!(CreateSessionTxn { time_out: i32 });
jute_record!(CloseSessionTxn { paths_to_delete: Vec<String> });
jute_record!(ErrorTxn { err: i32 });
jute_record!(
    /// One sub-transaction of a multi: its type and its encoded body.
    Txn { kind: i32, data: Buffer }
);
jute_record!(MultiTxn { txns: Vec<Txn> });

// ---- session establishment (no request header; optional trailing readOnly byte) ----

/// The first message of every connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub time_out: i32,
    pub session_id: i64,
    pub passwd: Buffer,
    /// `None` when the client is older than 3.4 and sent no readOnly byte.
    pub read_only: Option<bool>,
}

/// The server's answer to a [`ConnectRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub time_out: i32,
    pub session_id: i64,
    pub passwd: Buffer,
    pub read_only: Option<bool>,
}

impl Jute for ConnectRequest {
    const MIN_ENCODED_LEN: usize = 4 + 8 + 4 + 8 + 4;
    fn write(&self, out: &mut Vec<u8>) {
        out.put_i32(self.protocol_version);
        out.put_i64(self.last_zxid_seen);
        out.put_i32(self.time_out);
        out.put_i64(self.session_id);
        out.put_buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            out.put_bool(ro);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectRequest {
            protocol_version: r.read_i32()?,
            last_zxid_seen: r.read_i64()?,
            time_out: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: Buffer(r.read_buffer()?),
            read_only: if r.is_empty() {
                None
            } else {
                Some(r.read_bool()?)
            },
        })
    }
}

impl Jute for ConnectResponse {
    const MIN_ENCODED_LEN: usize = 4 + 4 + 8 + 4;
    fn write(&self, out: &mut Vec<u8>) {
        out.put_i32(self.protocol_version);
        out.put_i32(self.time_out);
        out.put_i64(self.session_id);
        out.put_buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            out.put_bool(ro);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectResponse {
            protocol_version: r.read_i32()?,
            time_out: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: Buffer(r.read_buffer()?),
            read_only: if r.is_empty() {
                None
            } else {
                Some(r.read_bool()?)
            },
        })
    }
}

impl Stat {
    /// The client-visible stat of a persisted one, given the derived fields.
    pub fn from_persisted(p: &StatPersisted, data_length: i32, num_children: i32) -> Stat {
        Stat {
            czxid: p.czxid,
            mzxid: p.mzxid,
            ctime: p.ctime,
            mtime: p.mtime,
            version: p.version,
            cversion: p.cversion,
            aversion: p.aversion,
            ephemeral_owner: p.ephemeral_owner,
            data_length,
            num_children,
            pzxid: p.pzxid,
        }
    }
}
