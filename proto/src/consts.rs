//! ZooKeeper's numbers: error codes, create modes, watch event types, keeper states,
//! permissions and special xids (ZooDefs.java, KeeperException.java, Watcher.java,
//! CreateMode.java). Opcodes and what the server does with each are in [`crate::opcode`].

use crate::jute::DecodeError;

/// Declares a fieldless enum with fixed wire values and a checked conversion from i32.
/// The conversion is the one place an unknown number is refused: with `BadValue` naming
/// `$what`, or with `$unknown(code)` when the enum names its own error.
macro_rules! wire_enum {
    (@unknown $code:ident, $what:literal) => {
        DecodeError::BadValue { what: $what, value: $code as i64 }
    };
    (@unknown $code:ident, $what:literal, $unknown:path) => {
        $unknown($code)
    };
    ($(#[$meta:meta])* $name:ident : $what:literal $(=> $unknown:path)? { $($(#[$vmeta:meta])* $variant:ident = $value:expr),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(i32)]
        pub enum $name { $($(#[$vmeta])* $variant = $value),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn code(self) -> i32 {
                self as i32
            }

            pub fn from_code(code: i32) -> Option<Self> {
                match code {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }

            pub fn name(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),* }
            }
        }

        impl TryFrom<i32> for $name {
            type Error = DecodeError;
            fn try_from(code: i32) -> Result<Self, DecodeError> {
                $name::from_code(code).ok_or(wire_enum!(@unknown code, $what $(, $unknown)?))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum! {
    /// Result codes (KeeperException.Code).
    ErrorCode: "error code" {
        Ok = 0,
        SystemError = -1,
        RuntimeInconsistency = -2,
        DataInconsistency = -3,
        ConnectionLoss = -4,
        MarshallingError = -5,
        Unimplemented = -6,
        OperationTimeout = -7,
        BadArguments = -8,
        UnknownSession = -12,
        NewConfigNoQuorum = -13,
        ReconfigInProgress = -14,
        ApiError = -100,
        NoNode = -101,
        NoAuth = -102,
        BadVersion = -103,
        NoChildrenForEphemerals = -108,
        NodeExists = -110,
        NotEmpty = -111,
        SessionExpired = -112,
        InvalidCallback = -113,
        InvalidAcl = -114,
        AuthFailed = -115,
        SessionMoved = -118,
        NotReadOnly = -119,
        EphemeralOnLocalSession = -120,
        NoWatcher = -121,
        RequestTimeout = -122,
        ReconfigDisabled = -123,
        SessionClosedRequireSaslAuth = -124,
        QuotaExceeded = -125,
        Throttled = -127,
    }
}

impl std::error::Error for ErrorCode {}

wire_enum! {
    /// Node creation modes (CreateMode), sent as the `flags` of create requests.
    CreateMode: "create mode" {
        Persistent = 0,
        Ephemeral = 1,
        PersistentSequential = 2,
        EphemeralSequential = 3,
        Container = 4,
        PersistentWithTtl = 5,
        PersistentSequentialWithTtl = 6,
    }
}

impl CreateMode {
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }
    pub fn is_container(self) -> bool {
        self == CreateMode::Container
    }
    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

wire_enum! {
    /// Watch event types (Watcher.Event.EventType).
    EventType: "event type" {
        None = -1,
        NodeCreated = 1,
        NodeDeleted = 2,
        NodeDataChanged = 3,
        NodeChildrenChanged = 4,
        DataWatchRemoved = 5,
        ChildWatchRemoved = 6,
        PersistentWatchRemoved = 7,
    }
}

wire_enum! {
    /// Connection states carried in watch events (Watcher.Event.KeeperState).
    KeeperState: "keeper state" {
        Unknown = -1,
        Disconnected = 0,
        NoSyncConnected = 1,
        SyncConnected = 3,
        AuthFailed = 4,
        ConnectedReadOnly = 5,
        SaslAuthenticated = 6,
        Expired = -112,
        Closed = 7,
    }
}

wire_enum! {
    /// Watch kinds named by checkWatches / removeWatches (Watcher.WatcherType).
    WatcherType: "watcher type" {
        Children = 1,
        Data = 2,
        Any = 3,
        Persistent = 4,
        PersistentRecursive = 5,
    }
}

wire_enum! {
    /// Modes of the addWatch request (AddWatchMode).
    AddWatchMode: "add watch mode" {
        Persistent = 0,
        PersistentRecursive = 1,
    }
}

/// ACL permission bits (ZooDefs.Perms).
pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 1 << 1;
    pub const CREATE: i32 = 1 << 2;
    pub const DELETE: i32 = 1 << 3;
    pub const ADMIN: i32 = 1 << 4;
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

/// Reserved xids with fixed meanings.
pub mod xid {
    /// Server → client watch notification.
    pub const NOTIFICATION: i32 = -1;
    /// Client ping and its reply.
    pub const PING: i32 = -2;
    /// addauth request and its reply.
    pub const AUTH: i32 = -4;
    /// setWatches request and its reply.
    pub const SET_WATCHES: i32 = -8;
}

/// The default largest request or response: jute.maxbuffer = 0xfffff (1 MiB - 1).
pub const DEFAULT_MAX_BUFFER: usize = 0xfffff;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknowns_are_refused() {
        for e in ErrorCode::ALL {
            assert_eq!(ErrorCode::try_from(e.code()), Ok(*e));
        }
        assert!(CreateMode::try_from(7).is_err());
        assert_eq!(ErrorCode::NoNode.code(), -101);
    }

    #[test]
    fn create_mode_predicates() {
        assert!(CreateMode::EphemeralSequential.is_ephemeral());
        assert!(CreateMode::EphemeralSequential.is_sequential());
        assert!(CreateMode::PersistentSequentialWithTtl.is_ttl());
        assert!(!CreateMode::Container.is_sequential());
    }
}
