//! Property tests: every decoder is driven with arbitrary bytes (it must return, never
//! panic), and every record, request and response survives encode → decode unchanged.

use proptest::prelude::*;

use crate::jute::sample::{Rng, Sample};
use crate::jute::{Buffer, Data, Jute};
use crate::opcode::{InMulti, OpCode};
use crate::records::*;
use crate::request::{MultiResult, Request};
use crate::response::Response;

/// Runs `$body` once for every jute record type, bound to the type alias `R`.
macro_rules! for_each_record {
    ($body:ident) => {
        $body!(Id);
        $body!(Acl);
        $body!(Stat);
        $body!(StatPersisted);
        $body!(ClientInfo);
        $body!(RequestHeader);
        $body!(ReplyHeader);
        $body!(MultiHeader);
        $body!(AuthPacket);
        $body!(WatcherEvent);
        $body!(ErrorResponse);
        $body!(SetWatches);
        $body!(SetWatches2);
        $body!(GetDataRequest);
        $body!(GetDataResponse);
        $body!(SetDataRequest);
        $body!(SetDataResponse);
        $body!(ReconfigRequest);
        $body!(GetSaslRequest);
        $body!(SetSaslResponse);
        $body!(CreateRequest);
        $body!(CreateTtlRequest);
        $body!(CreateResponse);
        $body!(Create2Response);
        $body!(DeleteRequest);
        $body!(GetChildrenRequest);
        $body!(GetChildrenResponse);
        $body!(GetChildren2Response);
        $body!(GetAllChildrenNumberRequest);
        $body!(GetAllChildrenNumberResponse);
        $body!(CheckVersionRequest);
        $body!(SyncRequest);
        $body!(SyncResponse);
        $body!(GetAclRequest);
        $body!(GetAclResponse);
        $body!(SetAclRequest);
        $body!(SetAclResponse);
        $body!(ExistsRequest);
        $body!(ExistsResponse);
        $body!(AddWatchRequest);
        $body!(CheckWatchesRequest);
        $body!(RemoveWatchesRequest);
        $body!(GetEphemeralsRequest);
        $body!(GetEphemeralsResponse);
        $body!(WhoAmIResponse);
        $body!(TxnHeader);
        $body!(TxnDigest);
        $body!(CreateTxn);
        $body!(CreateTtlTxn);
        $body!(CreateContainerTxn);
        $body!(DeleteTxn);
        $body!(SetDataTxn);
        $body!(CheckVersionTxn);
        $body!(SetAclTxn);
        $body!(CreateSessionTxn);
        $body!(CloseSessionTxn);
        $body!(ErrorTxn);
        $body!(Txn);
        $body!(MultiTxn);
    };
}

/// An opcode drawn from those `keep` accepts.
fn sample_opcode(rng: &mut Rng, keep: impl Fn(OpCode) -> bool) -> OpCode {
    let ops: Vec<OpCode> = OpCode::ALL.iter().copied().filter(|op| keep(*op)).collect();
    ops[rng.below(ops.len() as u64) as usize]
}

/// One op of a multi or multiRead: an opcode the table allows in that batch.
fn sample_batch_op(rng: &mut Rng, batch: InMulti) -> Request {
    loop {
        let op = sample_opcode(rng, |op| op.in_multi() == batch);
        if let Some(req) = sample_request_of(op, rng) {
            return req;
        }
    }
}

fn sample_request(rng: &mut Rng) -> Request {
    loop {
        let op = sample_opcode(rng, |_| true);
        if let Some(req) = sample_request_of(op, rng) {
            return req;
        }
    }
}

/// A request of type `op` with a sampled body, `None` for the opcodes no client sends.
/// Every opcode is matched, so a new one does not compile until the round trips cover it.
fn sample_request_of(op: OpCode, s: &mut Rng) -> Option<Request> {
    Some(match op {
        OpCode::Create => Request::Create(Sample::sample(s)),
        OpCode::Create2 => Request::Create2(Sample::sample(s)),
        OpCode::CreateContainer => Request::CreateContainer(Sample::sample(s)),
        OpCode::CreateTtl => Request::CreateTtl(Sample::sample(s)),
        OpCode::Delete => Request::Delete(Sample::sample(s)),
        OpCode::DeleteContainer => Request::DeleteContainer(Sample::sample(s)),
        OpCode::Exists => Request::Exists(Sample::sample(s)),
        OpCode::GetData => Request::GetData(Sample::sample(s)),
        OpCode::SetData => Request::SetData(Sample::sample(s)),
        OpCode::GetAcl => Request::GetAcl(Sample::sample(s)),
        OpCode::SetAcl => Request::SetAcl(Sample::sample(s)),
        OpCode::GetChildren => Request::GetChildren(Sample::sample(s)),
        OpCode::GetChildren2 => Request::GetChildren2(Sample::sample(s)),
        OpCode::Sync => Request::Sync(Sample::sample(s)),
        OpCode::Ping => Request::Ping,
        OpCode::Check => Request::Check(Sample::sample(s)),
        OpCode::Multi => Request::Multi(
            (0..s.below(4))
                .map(|_| sample_batch_op(s, InMulti::Multi))
                .collect(),
        ),
        OpCode::MultiRead => Request::MultiRead(
            (0..s.below(4))
                .map(|_| sample_batch_op(s, InMulti::MultiRead))
                .collect(),
        ),
        OpCode::Reconfig => Request::Reconfig(Sample::sample(s)),
        OpCode::CheckWatches => Request::CheckWatches(Sample::sample(s)),
        OpCode::RemoveWatches => Request::RemoveWatches(Sample::sample(s)),
        OpCode::Auth => Request::Auth(Sample::sample(s)),
        OpCode::SetWatches => Request::SetWatches(Sample::sample(s)),
        OpCode::SetWatches2 => Request::SetWatches2(Sample::sample(s)),
        OpCode::Sasl => Request::Sasl(Sample::sample(s)),
        OpCode::GetEphemerals => Request::GetEphemerals(Sample::sample(s)),
        OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber(Sample::sample(s)),
        OpCode::AddWatch => Request::AddWatch(Sample::sample(s)),
        OpCode::WhoAmI => Request::WhoAmI,
        OpCode::CloseSession => Request::CloseSession,
        OpCode::Notification | OpCode::CreateSession | OpCode::Error => return None,
    })
}

fn sample_multi_result(rng: &mut Rng) -> MultiResult {
    match rng.below(8) {
        0 => MultiResult::Create(Sample::sample(rng)),
        1 => MultiResult::Create2(Sample::sample(rng), Sample::sample(rng)),
        2 => MultiResult::Delete,
        3 => MultiResult::SetData(Sample::sample(rng)),
        4 => MultiResult::Check,
        5 => MultiResult::GetData(Data::sample(rng), Sample::sample(rng)),
        6 => MultiResult::GetChildren(Sample::sample(rng)),
        _ => MultiResult::Error(Sample::sample(rng)),
    }
}

/// A response together with an opcode whose reply it can be.
fn sample_response(rng: &mut Rng) -> (OpCode, Response) {
    loop {
        let op = sample_opcode(rng, |_| true);
        if let Some(resp) = sample_response_of(op, rng) {
            return (op, resp);
        }
    }
}

/// A reply to a request of type `op`, `None` for the opcodes no client sends. Every
/// opcode is matched, so a new one does not compile until its reply is covered.
fn sample_response_of(op: OpCode, s: &mut Rng) -> Option<Response> {
    Some(match op {
        OpCode::Create => Response::Create(Sample::sample(s)),
        OpCode::Create2 | OpCode::CreateTtl | OpCode::CreateContainer => {
            Response::Create2(Sample::sample(s))
        }
        OpCode::Exists | OpCode::SetData | OpCode::SetAcl => Response::Stat(Sample::sample(s)),
        OpCode::GetData | OpCode::Reconfig => Response::GetData(Sample::sample(s)),
        OpCode::GetAcl => Response::GetAcl(Sample::sample(s)),
        OpCode::GetChildren => Response::GetChildren(Sample::sample(s)),
        OpCode::GetChildren2 => Response::GetChildren2(Sample::sample(s)),
        OpCode::Sync => Response::Sync(Sample::sample(s)),
        OpCode::Multi | OpCode::MultiRead => {
            Response::Multi((0..s.below(5)).map(|_| sample_multi_result(s)).collect())
        }
        OpCode::GetAllChildrenNumber => Response::AllChildrenNumber(Sample::sample(s)),
        OpCode::GetEphemerals => Response::Ephemerals(Sample::sample(s)),
        OpCode::WhoAmI => Response::WhoAmI(Sample::sample(s)),
        OpCode::Sasl => Response::Sasl(Sample::sample(s)),
        OpCode::AddWatch => Response::Error(Sample::sample(s)),
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
        OpCode::Notification | OpCode::CreateSession | OpCode::Error => return None,
    })
}

/// Every opcode value a decoder could meet, including unknown ones.
fn opcode_values() -> impl Strategy<Value = i32> {
    prop_oneof![
        proptest::sample::select(OpCode::ALL.iter().map(|o| o.code()).collect::<Vec<_>>()),
        any::<i32>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_record_decoder_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        macro_rules! decode { ($t:ty) => { let _ = <$t>::from_bytes(&bytes); }; }
        for_each_record!(decode);
        let _ = ConnectRequest::from_bytes(&bytes);
        let _ = ConnectResponse::from_bytes(&bytes);
        let _ = MultiResult::read_all(&mut crate::jute::Reader::new(&bytes));
    }

    #[test]
    fn request_and_response_decoders_survive_arbitrary_bytes(
        op in opcode_values(),
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let _ = Request::decode(op, &bytes);
        let _ = Response::decode(op, &bytes);
    }

    #[test]
    fn every_record_round_trips(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        macro_rules! round_trip {
            ($t:ty) => {
                let value = <$t as Sample>::sample(&mut rng);
                let bytes = value.to_bytes();
                prop_assert_eq!(<$t>::from_bytes(&bytes), Ok(value));
            };
        }
        for_each_record!(round_trip);
    }

    #[test]
    fn connect_records_round_trip(seed in any::<u64>(), ro in proptest::option::of(any::<bool>())) {
        let mut rng = Rng::new(seed);
        let req = ConnectRequest {
            protocol_version: Sample::sample(&mut rng),
            last_zxid_seen: Sample::sample(&mut rng),
            time_out: Sample::sample(&mut rng),
            session_id: Sample::sample(&mut rng),
            passwd: Sample::sample(&mut rng),
            read_only: ro,
        };
        prop_assert_eq!(ConnectRequest::from_bytes(&req.to_bytes()), Ok(req));
        let resp = ConnectResponse {
            protocol_version: 0,
            time_out: Sample::sample(&mut rng),
            session_id: Sample::sample(&mut rng),
            passwd: Sample::sample(&mut rng),
            read_only: ro,
        };
        prop_assert_eq!(ConnectResponse::from_bytes(&resp.to_bytes()), Ok(resp));
    }

    #[test]
    fn requests_round_trip(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let req = sample_request(&mut rng);
        let mut body = Vec::new();
        req.write_body(&mut body);
        prop_assert_eq!(Request::decode(req.opcode().code(), &body), Ok(req));
    }

    #[test]
    fn responses_round_trip(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (op, resp) = sample_response(&mut rng);
        let mut body = Vec::new();
        resp.write_body(&mut body);
        prop_assert_eq!(Response::decode(op.code(), &body), Ok(resp));
    }

    #[test]
    fn truncating_an_encoded_request_is_an_error_not_a_panic(seed in any::<u64>(), cut in any::<usize>()) {
        let mut rng = Rng::new(seed);
        let req = sample_request(&mut rng);
        let mut body = Vec::new();
        req.write_body(&mut body);
        if !body.is_empty() && !matches!(req, Request::DeleteContainer(_)) {
            let cut = cut % body.len();
            prop_assert!(Request::decode(req.opcode().code(), &body[..cut]).is_err());
        }
    }
}

#[test]
fn multi_inside_multi_is_refused() {
    let inner = Request::Multi(vec![]);
    let mut body = Vec::new();
    Request::Multi(vec![inner]).write_body(&mut body);
    assert!(matches!(
        Request::decode(OpCode::Multi.code(), &body),
        Err(crate::DecodeError::OpcodeNotAllowed(14, "multi"))
    ));
}

#[test]
fn connect_request_without_read_only_byte_decodes() {
    // A pre-3.4 client: no trailing readOnly byte.
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: 30000,
        session_id: 0,
        passwd: Buffer(vec![0; 16]),
        read_only: None,
    };
    let bytes = req.to_bytes();
    assert_eq!(bytes.len(), 4 + 8 + 4 + 8 + 4 + 16);
    assert_eq!(ConnectRequest::from_bytes(&bytes), Ok(req));
}

#[test]
fn known_encoding_of_a_create_request() {
    // create "/a" data "x" world:anyone ALL, persistent — as the Java client encodes it.
    let req = Request::Create(CreateRequest {
        path: "/a".into(),
        data: b"x".to_vec().into(),
        acl: vec![Acl {
            perms: 31,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }],
        flags: 0,
    });
    let bytes = req.encode(7);
    let expected: Vec<u8> = [
        &[0, 0, 0, 7, 0, 0, 0, 1][..],
        &[0, 0, 0, 2, b'/', b'a'],
        &[0, 0, 0, 1, b'x'],
        &[0, 0, 0, 1, 0, 0, 0, 31],
        &[0, 0, 0, 5, b'w', b'o', b'r', b'l', b'd'],
        &[0, 0, 0, 6, b'a', b'n', b'y', b'o', b'n', b'e'],
        &[0, 0, 0, 0],
    ]
    .concat();
    assert_eq!(bytes, expected);
}

#[test]
fn null_data_is_length_minus_one_in_requests_responses_and_multi() {
    const NULL: [u8; 4] = [0xff, 0xff, 0xff, 0xff];
    let create = Request::Create(CreateRequest {
        path: "/n".into(),
        data: Data::NULL,
        acl: vec![],
        flags: 0,
    });
    let body = create.encode(1)[8..].to_vec();
    assert_eq!(&body[6..10], NULL, "create: path /n, then the null data");
    assert_eq!(Request::decode(OpCode::Create.code(), &body), Ok(create));

    let set = Request::SetData(SetDataRequest {
        path: "/n".into(),
        data: Data::NULL,
        version: -1,
    });
    let body = set.encode(1)[8..].to_vec();
    assert_eq!(
        body,
        [&[0, 0, 0, 2, b'/', b'n'][..], &NULL, &[0xff; 4]].concat()
    );
    assert_eq!(Request::decode(OpCode::SetData.code(), &body), Ok(set));

    // An empty buffer stays empty (length 0), distinct from null.
    let empty = Request::SetData(SetDataRequest {
        path: "/n".into(),
        data: Vec::new().into(),
        version: -1,
    });
    let decoded = Request::decode(OpCode::SetData.code(), &empty.encode(1)[8..]);
    assert!(matches!(decoded, Ok(Request::SetData(r)) if !r.data.is_null() && r.data.is_empty()));

    let reply = Response::GetData(GetDataResponse {
        data: Data::NULL,
        stat: Stat::default(),
    });
    let mut body = Vec::new();
    reply.write_body(&mut body);
    assert_eq!(&body[..4], NULL);
    assert_eq!(Response::decode(OpCode::GetData.code(), &body), Ok(reply));

    let multi = Request::Multi(vec![
        Request::Create(CreateRequest {
            path: "/m".into(),
            data: Data::NULL,
            acl: vec![],
            flags: 0,
        }),
        Request::SetData(SetDataRequest {
            path: "/m".into(),
            data: Data::NULL,
            version: 0,
        }),
    ]);
    let mut body = Vec::new();
    multi.write_body(&mut body);
    assert_eq!(Request::decode(OpCode::Multi.code(), &body), Ok(multi));
    let read = Response::Multi(vec![
        MultiResult::GetData(Data::NULL, Stat::default()),
        MultiResult::GetData(Vec::new().into(), Stat::default()),
    ]);
    let mut body = Vec::new();
    read.write_body(&mut body);
    assert_eq!(Response::decode(OpCode::MultiRead.code(), &body), Ok(read));
}
