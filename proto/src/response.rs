//! Server replies: the body after a [`ReplyHeader`](crate::ReplyHeader) whose `err` is 0.
//! (A failed request carries only the header, as in ZooKeeper.)

use crate::jute::{Data, DecodeError, Jute, JuteWrite, Reader};
use crate::opcode::OpCode;
use crate::records::*;
use crate::request::{MULTI_END, MultiResult};

/// A successful reply body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// No body: delete, check, ping, auth, setWatches, closeSession, removeWatches,
    /// checkWatches, addWatch.
    Empty,
    Create(CreateResponse),
    /// create2, createTTL, createContainer.
    Create2(Create2Response),
    /// exists, setData, setACL: a bare Stat.
    Stat(Stat),
    GetData(GetDataResponse),
    GetAcl(GetAclResponse),
    GetChildren(GetChildrenResponse),
    GetChildren2(GetChildren2Response),
    Sync(SyncResponse),
    Multi(Vec<MultiResult>),
    AllChildrenNumber(GetAllChildrenNumberResponse),
    Ephemerals(GetEphemeralsResponse),
    WhoAmI(WhoAmIResponse),
    Sasl(SetSaslResponse),
    /// addWatch answers with an ErrorResponse body (err 0), as the Java client expects.
    Error(ErrorResponse),
}

impl Response {
    pub fn write_body(&self, out: &mut Vec<u8>) {
        match self {
            Response::Empty => {}
            Response::Create(r) => r.write(out),
            Response::Create2(r) => r.write(out),
            Response::Stat(s) => s.write(out),
            Response::GetData(r) => r.write(out),
            Response::GetAcl(r) => r.write(out),
            Response::GetChildren(r) => r.write(out),
            Response::GetChildren2(r) => r.write(out),
            Response::Sync(r) => r.write(out),
            Response::Multi(results) => {
                for result in results {
                    result.write(out);
                }
                MULTI_END.write(out);
            }
            Response::AllChildrenNumber(r) => r.write(out),
            Response::Ephemerals(r) => r.write(out),
            Response::WhoAmI(r) => r.write(out),
            Response::Sasl(r) => r.write(out),
            Response::Error(r) => r.write(out),
        }
    }

    /// Decodes a successful reply to a request of type `opcode`.
    pub fn decode(opcode: i32, body: &[u8]) -> Result<Response, DecodeError> {
        let op = OpCode::try_from(opcode)?;
        let mut r = Reader::new(body);
        let resp = match op {
            OpCode::Create => Response::Create(Jute::read(&mut r)?),
            OpCode::Create2 | OpCode::CreateTtl | OpCode::CreateContainer => {
                Response::Create2(Jute::read(&mut r)?)
            }
            OpCode::Exists | OpCode::SetData | OpCode::SetAcl => {
                Response::Stat(Jute::read(&mut r)?)
            }
            // reconfig answers with the new configuration as a GetDataResponse.
            OpCode::GetData | OpCode::Reconfig => Response::GetData(Jute::read(&mut r)?),
            OpCode::GetAcl => Response::GetAcl(Jute::read(&mut r)?),
            OpCode::GetChildren => Response::GetChildren(Jute::read(&mut r)?),
            OpCode::GetChildren2 => Response::GetChildren2(Jute::read(&mut r)?),
            OpCode::Sync => Response::Sync(Jute::read(&mut r)?),
            OpCode::Multi | OpCode::MultiRead => Response::Multi(MultiResult::read_all(&mut r)?),
            OpCode::GetAllChildrenNumber => Response::AllChildrenNumber(Jute::read(&mut r)?),
            OpCode::GetEphemerals => Response::Ephemerals(Jute::read(&mut r)?),
            OpCode::WhoAmI => Response::WhoAmI(Jute::read(&mut r)?),
            OpCode::Sasl => Response::Sasl(Jute::read(&mut r)?),
            OpCode::Delete
            | OpCode::DeleteContainer
            | OpCode::Check
            | OpCode::Ping
            | OpCode::Auth
            | OpCode::SetWatches
            | OpCode::SetWatches2
            | OpCode::CloseSession
            | OpCode::RemoveWatches
            | OpCode::CheckWatches => Response::Empty,
            OpCode::AddWatch => Response::Error(Jute::read(&mut r)?),
            OpCode::Notification | OpCode::CreateSession | OpCode::Error => {
                return Err(DecodeError::UnknownOpcode(opcode));
            }
        };
        r.finish()?;
        Ok(resp)
    }
}

/// Encodes a complete reply (header and, when `err` is 0, the body) without the frame length.
pub fn encode_reply(xid: i32, zxid: i64, err: i32, body: &Response) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_reply(&mut out, xid, zxid, err, body);
    out
}

/// Appends what [`encode_reply`] returns to `out` (a connection's send buffer, with no
/// copy in between).
pub fn write_reply(out: &mut Vec<u8>, xid: i32, zxid: i64, err: i32, body: &Response) {
    ReplyHeader { xid, zxid, err }.write(out);
    if err == 0 {
        body.write_body(out);
    } else if let Response::Sasl(_) = body {
        // ZooKeeper answers a failed SASL login with an error header *and* a
        // SetSASLResponse whose token is null; its Java client reads that body as the next
        // token whatever the error (and reports AuthFailed when the mechanism refuses it),
        // so the body must be there.
        out.extend_from_slice(&(-1i32).to_be_bytes());
    }
}

/// Appends a watch notification without the frame length: ZooKeeper's header for it
/// (always xid -1, zxid -1, err 0), then the WatcherEvent record, written from its
/// fields (the path shared by every watcher told of one change, not copied per watcher).
pub fn write_notification(out: &mut Vec<u8>, kind: i32, state: i32, path: &str) {
    ReplyHeader {
        xid: crate::consts::xid::NOTIFICATION,
        zxid: -1,
        err: 0,
    }
    .write(out);
    out.put_i32(kind);
    out.put_i32(state);
    out.put_ustring(path);
}

/// Convenience for building GetData responses (with non-null data).
pub fn get_data_response(data: &[u8], stat: Stat) -> Response {
    Response::GetData(GetDataResponse {
        data: Data::from(data),
        stat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_is_its_header_then_the_watcher_event_record() {
        let event = WatcherEvent {
            kind: 3,
            state: 3,
            path: "/a/b".into(),
        };
        let mut expected = Vec::new();
        ReplyHeader {
            xid: -1,
            zxid: -1,
            err: 0,
        }
        .write(&mut expected);
        event.write(&mut expected);
        // Appending leaves what the buffer held in front.
        let mut out = vec![9u8];
        write_notification(&mut out, 3, 3, "/a/b");
        assert_eq!(out[0], 9);
        assert_eq!(&out[1..], expected.as_slice());
    }
}
