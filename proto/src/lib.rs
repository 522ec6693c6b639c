//! paddock-proto: ZooKeeper's client wire format (jute records, opcodes, error codes,
//! create modes, watch events and keeper states) as pure functions from bytes to typed
//! values and back, and the rules both ends share: what each opcode is ([`opcode`]) and
//! which znode paths are valid ([`path`]). No I/O lives here; every decoder returns an
//! error on malformed input and never panics (see the property tests in `tests/`).

#[macro_use]
pub mod jute;
#[macro_use]
pub mod consts;
pub mod frame;
pub mod opcode;
pub mod path;
pub mod records;
pub mod request;
pub mod response;
pub mod sasl;

pub use consts::{
    AddWatchMode, CreateMode, ErrorCode, EventType, KeeperState, WatcherType, perms, xid,
};
pub use jute::{Buffer, Data, DecodeError, Jute, JuteWrite, Reader};
pub use opcode::{InMulti, OpCode, OpInfo, OpKind, Route};
pub use path::{PathError, validate_path};
pub use records::*;
pub use request::{MULTI_END, MultiResult, Request};
pub use response::{Response, encode_reply, write_notification, write_reply};

#[cfg(test)]
mod fuzz;
