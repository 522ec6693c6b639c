//! Client requests: the body that follows a [`RequestHeader`](crate::RequestHeader),
//! typed by its opcode.

use crate::consts::ErrorCode;
use crate::jute::{Data, DecodeError, Jute, JuteWrite, Reader};
use crate::opcode::{InMulti, OpCode};
use crate::records::*;

/// A decoded client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    /// Sent by ZooKeeper's own container reaper: the body is the raw UTF-8 path.
    DeleteContainer(String),
    Exists(ExistsRequest),
    GetData(GetDataRequest),
    SetData(SetDataRequest),
    GetAcl(GetAclRequest),
    SetAcl(SetAclRequest),
    GetChildren(GetChildrenRequest),
    GetChildren2(GetChildrenRequest),
    Sync(SyncRequest),
    Ping,
    Check(CheckVersionRequest),
    /// Atomic writes; every op is a create, delete, setData or check.
    Multi(Vec<Request>),
    /// Independent reads; every op is a getData or getChildren.
    MultiRead(Vec<Request>),
    Reconfig(ReconfigRequest),
    CheckWatches(CheckWatchesRequest),
    RemoveWatches(RemoveWatchesRequest),
    Auth(AuthPacket),
    SetWatches(SetWatches),
    SetWatches2(SetWatches2),
    Sasl(GetSaslRequest),
    GetEphemerals(GetEphemeralsRequest),
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    AddWatch(AddWatchRequest),
    WhoAmI,
    CloseSession,
}

impl Request {
    pub fn opcode(&self) -> OpCode {
        match self {
            Request::Create(_) => OpCode::Create,
            Request::Create2(_) => OpCode::Create2,
            Request::CreateContainer(_) => OpCode::CreateContainer,
            Request::CreateTtl(_) => OpCode::CreateTtl,
            Request::Delete(_) => OpCode::Delete,
            Request::DeleteContainer(_) => OpCode::DeleteContainer,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl(_) => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::Sync(_) => OpCode::Sync,
            Request::Ping => OpCode::Ping,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::Reconfig(_) => OpCode::Reconfig,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::Auth(_) => OpCode::Auth,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::Sasl(_) => OpCode::Sasl,
            Request::GetEphemerals(_) => OpCode::GetEphemerals,
            Request::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::CloseSession => OpCode::CloseSession,
        }
    }

    /// The path the request is about, for requests that name one.
    pub fn path(&self) -> Option<&str> {
        Some(match self {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => &r.path,
            Request::CreateTtl(r) => &r.path,
            Request::Delete(r) => &r.path,
            Request::DeleteContainer(p) => p,
            Request::Exists(r) => &r.path,
            Request::GetData(r) => &r.path,
            Request::SetData(r) => &r.path,
            Request::GetAcl(r) => &r.path,
            Request::SetAcl(r) => &r.path,
            Request::GetChildren(r) | Request::GetChildren2(r) => &r.path,
            Request::Sync(r) => &r.path,
            Request::Check(r) => &r.path,
            Request::CheckWatches(r) => &r.path,
            Request::RemoveWatches(r) => &r.path,
            Request::GetEphemerals(r) => &r.prefix_path,
            Request::GetAllChildrenNumber(r) => &r.path,
            Request::AddWatch(r) => &r.path,
            Request::Ping
            | Request::Multi(_)
            | Request::MultiRead(_)
            | Request::Reconfig(_)
            | Request::Auth(_)
            | Request::SetWatches(_)
            | Request::SetWatches2(_)
            | Request::Sasl(_)
            | Request::WhoAmI
            | Request::CloseSession => return None,
        })
    }

    /// Decodes the body of a request whose header named `opcode`. The whole body must be consumed.
    pub fn decode(opcode: i32, body: &[u8]) -> Result<Request, DecodeError> {
        let mut r = Reader::new(body);
        let req = Self::read_body(opcode, &mut r)?;
        r.finish()?;
        Ok(req)
    }

    fn read_body(opcode: i32, r: &mut Reader<'_>) -> Result<Request, DecodeError> {
        let op = OpCode::try_from(opcode)?;
        Ok(match op {
            OpCode::Create => Request::Create(Jute::read(r)?),
            OpCode::Create2 => Request::Create2(Jute::read(r)?),
            OpCode::CreateContainer => Request::CreateContainer(Jute::read(r)?),
            OpCode::CreateTtl => Request::CreateTtl(Jute::read(r)?),
            OpCode::Delete => Request::Delete(Jute::read(r)?),
            OpCode::DeleteContainer => {
                let offset = r.position();
                let raw = r.rest();
                Request::DeleteContainer(
                    String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::BadUtf8 { offset })?,
                )
            }
            OpCode::Exists => Request::Exists(Jute::read(r)?),
            OpCode::GetData => Request::GetData(Jute::read(r)?),
            OpCode::SetData => Request::SetData(Jute::read(r)?),
            OpCode::GetAcl => Request::GetAcl(Jute::read(r)?),
            OpCode::SetAcl => Request::SetAcl(Jute::read(r)?),
            OpCode::GetChildren => Request::GetChildren(Jute::read(r)?),
            OpCode::GetChildren2 => Request::GetChildren2(Jute::read(r)?),
            OpCode::Sync => Request::Sync(Jute::read(r)?),
            OpCode::Ping => Request::Ping,
            OpCode::Check => Request::Check(Jute::read(r)?),
            OpCode::Multi => Request::Multi(read_multi(r, "multi", InMulti::Multi)?),
            OpCode::MultiRead => {
                Request::MultiRead(read_multi(r, "multiRead", InMulti::MultiRead)?)
            }
            OpCode::Reconfig => Request::Reconfig(Jute::read(r)?),
            OpCode::CheckWatches => Request::CheckWatches(Jute::read(r)?),
            OpCode::RemoveWatches => Request::RemoveWatches(Jute::read(r)?),
            OpCode::Auth => Request::Auth(Jute::read(r)?),
            OpCode::SetWatches => Request::SetWatches(Jute::read(r)?),
            OpCode::SetWatches2 => Request::SetWatches2(Jute::read(r)?),
            OpCode::Sasl => Request::Sasl(Jute::read(r)?),
            OpCode::GetEphemerals => Request::GetEphemerals(Jute::read(r)?),
            OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber(Jute::read(r)?),
            OpCode::AddWatch => Request::AddWatch(Jute::read(r)?),
            OpCode::WhoAmI => Request::WhoAmI,
            OpCode::CloseSession => Request::CloseSession,
            OpCode::Notification | OpCode::CreateSession | OpCode::Error => {
                return Err(DecodeError::UnknownOpcode(opcode));
            }
        })
    }

    /// Appends the body (without header) to `out`.
    pub fn write_body(&self, out: &mut Vec<u8>) {
        match self {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => r.write(out),
            Request::CreateTtl(r) => r.write(out),
            Request::Delete(r) => r.write(out),
            Request::DeleteContainer(p) => out.extend_from_slice(p.as_bytes()),
            Request::Exists(r) => r.write(out),
            Request::GetData(r) => r.write(out),
            Request::SetData(r) => r.write(out),
            Request::GetAcl(r) => r.write(out),
            Request::SetAcl(r) => r.write(out),
            Request::GetChildren(r) | Request::GetChildren2(r) => r.write(out),
            Request::Sync(r) => r.write(out),
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
            Request::Check(r) => r.write(out),
            Request::Multi(ops) | Request::MultiRead(ops) => {
                for op in ops {
                    MultiHeader {
                        op: op.opcode().code(),
                        done: false,
                        err: -1,
                    }
                    .write(out);
                    op.write_body(out);
                }
                MULTI_END.write(out);
            }
            Request::Reconfig(r) => r.write(out),
            Request::CheckWatches(r) => r.write(out),
            Request::RemoveWatches(r) => r.write(out),
            Request::Auth(r) => r.write(out),
            Request::SetWatches(r) => r.write(out),
            Request::SetWatches2(r) => r.write(out),
            Request::Sasl(r) => r.write(out),
            Request::GetEphemerals(r) => r.write(out),
            Request::GetAllChildrenNumber(r) => r.write(out),
            Request::AddWatch(r) => r.write(out),
        }
    }

    /// Header plus body, without the frame length.
    pub fn encode(&self, xid: i32) -> Vec<u8> {
        let mut out = Vec::new();
        RequestHeader {
            xid,
            op: self.opcode().code(),
        }
        .write(&mut out);
        self.write_body(&mut out);
        out
    }
}

/// The header that closes a multi request or response.
pub const MULTI_END: MultiHeader = MultiHeader {
    op: -1,
    done: true,
    err: -1,
};

/// The ops of a multi (`batch` is [`InMulti::Multi`]) or multiRead, up to the closing
/// header; an op the table does not allow in that batch is refused.
fn read_multi(
    r: &mut Reader<'_>,
    kind: &'static str,
    batch: InMulti,
) -> Result<Vec<Request>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let header = MultiHeader::read(r)?;
        if header.done {
            return Ok(ops);
        }
        if OpCode::try_from(header.op)?.in_multi() != batch {
            return Err(DecodeError::OpcodeNotAllowed(header.op, kind));
        }
        ops.push(Request::read_body(header.op, r)?);
    }
}

/// One entry of a multi's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    /// A plain create (opcode 1) answers with the path only.
    Create(String),
    /// create2, createTTL and createContainer answer with path and stat.
    Create2(String, Stat),
    Delete,
    SetData(Stat),
    Check,
    /// The data may be null (see [`Data`]).
    GetData(Data, Stat),
    GetChildren(Vec<String>),
    /// A failed op; also `Ok` for ops rolled back because a later op failed.
    Error(i32),
}

impl MultiResult {
    fn opcode(&self) -> i32 {
        match self {
            MultiResult::Create(_) => OpCode::Create.code(),
            MultiResult::Create2(..) => OpCode::Create2.code(),
            MultiResult::Delete => OpCode::Delete.code(),
            MultiResult::SetData(_) => OpCode::SetData.code(),
            MultiResult::Check => OpCode::Check.code(),
            MultiResult::GetData(..) => OpCode::GetData.code(),
            MultiResult::GetChildren(_) => OpCode::GetChildren.code(),
            MultiResult::Error(_) => OpCode::Error.code(),
        }
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        let err = match self {
            MultiResult::Error(e) => *e,
            _ => 0,
        };
        MultiHeader {
            op: self.opcode(),
            done: false,
            err,
        }
        .write(out);
        match self {
            MultiResult::Create(path) => out.put_ustring(path),
            MultiResult::Create2(path, stat) => {
                out.put_ustring(path);
                stat.write(out);
            }
            MultiResult::Delete | MultiResult::Check => {}
            MultiResult::SetData(stat) => stat.write(out),
            MultiResult::GetData(data, stat) => {
                data.write(out);
                stat.write(out);
            }
            MultiResult::GetChildren(children) => out.put_vec(children),
            MultiResult::Error(e) => out.put_i32(*e),
        }
    }

    pub fn read_all(r: &mut Reader<'_>) -> Result<Vec<MultiResult>, DecodeError> {
        let mut results = Vec::new();
        loop {
            let header = MultiHeader::read(r)?;
            if header.done {
                return Ok(results);
            }
            results.push(match OpCode::try_from(header.op)? {
                OpCode::Create => MultiResult::Create(r.read_ustring()?),
                OpCode::Create2 | OpCode::CreateTtl | OpCode::CreateContainer => {
                    MultiResult::Create2(r.read_ustring()?, Stat::read(r)?)
                }
                OpCode::Delete => MultiResult::Delete,
                OpCode::Check => MultiResult::Check,
                OpCode::SetData => MultiResult::SetData(Stat::read(r)?),
                OpCode::GetData => MultiResult::GetData(Data::read(r)?, Stat::read(r)?),
                OpCode::GetChildren => MultiResult::GetChildren(r.read_vec()?),
                OpCode::Error => MultiResult::Error(r.read_i32()?),
                OpCode::Notification
                | OpCode::Exists
                | OpCode::GetAcl
                | OpCode::SetAcl
                | OpCode::Sync
                | OpCode::Ping
                | OpCode::GetChildren2
                | OpCode::Multi
                | OpCode::Reconfig
                | OpCode::CheckWatches
                | OpCode::RemoveWatches
                | OpCode::DeleteContainer
                | OpCode::MultiRead
                | OpCode::Auth
                | OpCode::SetWatches
                | OpCode::Sasl
                | OpCode::GetEphemerals
                | OpCode::GetAllChildrenNumber
                | OpCode::SetWatches2
                | OpCode::AddWatch
                | OpCode::WhoAmI
                | OpCode::CreateSession
                | OpCode::CloseSession => {
                    return Err(DecodeError::OpcodeNotAllowed(header.op, "multi response"));
                }
            });
        }
    }

    /// The error this entry carries, if it is an error entry.
    pub fn error(&self) -> Option<ErrorCode> {
        match self {
            MultiResult::Error(code) => ErrorCode::from_code(*code),
            _ => None,
        }
    }
}
