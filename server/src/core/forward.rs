//! What servers of an ensemble tell each other beyond ZAB itself, carried as opaque
//! application messages on the same ordered links: a follower forwards writes, session
//! creation and `sync` to the leader (with the client's credentials, since ACLs are
//! checked where the txn is made), batches session touches, and the leader answers the
//! requests that produced no txn (errors, `check`, `sync`).

use paddock_proto::{DecodeError, Id, JuteWrite, Reader, Request, Response};

const FORWARD: i32 = 1;
const CREATE_SESSION: i32 = 2;
const TOUCH: i32 = 3;
const RESULT: i32 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppMsg {
    /// A client request the leader must sequence.
    Forward {
        session: i64,
        cxid: i32,
        ids: Vec<Id>,
        is_super: bool,
        request: Request,
    },
    CreateSession {
        session: i64,
        timeout_ms: i32,
    },
    /// Sessions that saw activity on the sender since its last touch.
    Touch {
        sessions: Vec<i64>,
    },
    /// The answer to a forwarded request that produced no txn.
    Result {
        session: i64,
        cxid: i32,
        err: i32,
        opcode: i32,
        body: Vec<u8>,
    },
}

impl AppMsg {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        match self {
            AppMsg::Forward {
                session,
                cxid,
                ids,
                is_super,
                request,
            } => {
                out.put_i32(FORWARD);
                out.put_i64(*session);
                out.put_i32(*cxid);
                out.put_vec(ids);
                out.put_bool(*is_super);
                out.put_i32(request.opcode().code());
                let mut body = Vec::new();
                request.write_body(&mut body);
                out.put_buffer(&body);
            }
            AppMsg::CreateSession {
                session,
                timeout_ms,
            } => {
                out.put_i32(CREATE_SESSION);
                out.put_i64(*session);
                out.put_i32(*timeout_ms);
            }
            AppMsg::Touch { sessions } => {
                out.put_i32(TOUCH);
                out.put_vec(sessions);
            }
            AppMsg::Result {
                session,
                cxid,
                err,
                opcode,
                body,
            } => {
                out.put_i32(RESULT);
                out.put_i64(*session);
                out.put_i32(*cxid);
                out.put_i32(*err);
                out.put_i32(*opcode);
                out.put_buffer(body);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<AppMsg, DecodeError> {
        let mut r = Reader::new(bytes);
        let msg = match r.read_i32()? {
            FORWARD => {
                let session = r.read_i64()?;
                let cxid = r.read_i32()?;
                let ids: Vec<Id> = r.read_vec()?;
                let is_super = r.read_bool()?;
                let op = r.read_i32()?;
                let body = r.read_buffer()?;
                AppMsg::Forward {
                    session,
                    cxid,
                    ids,
                    is_super,
                    request: Request::decode(op, &body)?,
                }
            }
            CREATE_SESSION => AppMsg::CreateSession {
                session: r.read_i64()?,
                timeout_ms: r.read_i32()?,
            },
            TOUCH => AppMsg::Touch {
                sessions: r.read_vec()?,
            },
            RESULT => AppMsg::Result {
                session: r.read_i64()?,
                cxid: r.read_i32()?,
                err: r.read_i32()?,
                opcode: r.read_i32()?,
                body: r.read_buffer()?,
            },
            other => return Err(DecodeError::UnknownOpcode(other)),
        };
        r.finish()?;
        Ok(msg)
    }

    /// A Result message for `result` to a request of type `opcode`.
    pub fn result(
        session: i64,
        cxid: i32,
        opcode: i32,
        result: &Result<Response, paddock_proto::ErrorCode>,
    ) -> AppMsg {
        let (err, body) = match result {
            Ok(resp) => {
                let mut body = Vec::new();
                resp.write_body(&mut body);
                (0, body)
            }
            Err(code) => (code.code(), Vec::new()),
        };
        AppMsg::Result {
            session,
            cxid,
            err,
            opcode,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_proto::{CreateRequest, GetDataRequest};

    #[test]
    fn app_messages_round_trip() {
        let all = vec![
            AppMsg::Forward {
                session: 5,
                cxid: 9,
                ids: vec![Id {
                    scheme: "digest".into(),
                    id: "u:h".into(),
                }],
                is_super: true,
                request: Request::Create2(CreateRequest {
                    path: "/x".into(),
                    data: vec![1].into(),
                    acl: vec![],
                    flags: 1,
                }),
            },
            AppMsg::CreateSession {
                session: 7,
                timeout_ms: 4000,
            },
            AppMsg::Touch {
                sessions: vec![1, 2, 3],
            },
            AppMsg::result(5, 9, 9, &Err(paddock_proto::ErrorCode::NodeExists)),
            AppMsg::Forward {
                session: 1,
                cxid: 2,
                ids: vec![],
                is_super: false,
                request: Request::GetData(GetDataRequest {
                    path: "/".into(),
                    watch: false,
                }),
            },
        ];
        for m in all {
            assert_eq!(AppMsg::decode(&m.encode()), Ok(m));
        }
        assert!(AppMsg::decode(&[0, 0, 0, 9]).is_err());
    }
}
