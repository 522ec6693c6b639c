//! The one error type of the client. Every variant maps onto a ZooKeeper [`ErrorCode`]
//! (so callers can match on `err.code()` as they would on a `KeeperException`) and
//! carries the path it concerns when there is one, so that a message reads like
//! `NoNode: /a/b`.

use std::time::Duration;

use paddock_proto::ErrorCode;

use crate::multi::OpResult;

/// Why an operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The server refused the request with `code` (NoNode, NodeExists, BadVersion, ...).
    #[error("{code}{}", at(path))]
    Server {
        code: ErrorCode,
        path: Option<String>,
    },

    /// A multi failed at operation `index` with `code`; nothing was applied. `results`
    /// holds the server's per-operation results (ZooKeeper's `getResults()`).
    #[error("{code}{} (operation {index} of the multi)", at(path))]
    MultiFailed {
        code: ErrorCode,
        path: Option<String>,
        index: usize,
        results: Vec<OpResult>,
    },

    /// The connection dropped while the request was in flight: it may or may not have
    /// been applied. The session may still be alive; the client is reconnecting.
    #[error("ConnectionLoss{}", at(path))]
    ConnectionLoss { path: Option<String> },

    /// The server expired the session: its ephemeral nodes and watches are gone and
    /// this client can do nothing more. Build a new one.
    #[error("SessionExpired{}", at(path))]
    SessionExpired { path: Option<String> },

    /// No reply within the request timeout. Like a connection loss, the request may or
    /// may not have been applied.
    #[error("RequestTimeout{}: no reply within {timeout:?}", at(path))]
    Timeout {
        path: Option<String>,
        timeout: Duration,
    },

    /// The client was closed (by [`Client::close`](crate::Client::close)).
    #[error("Closed: the client was closed")]
    Closed,

    /// The server refused our credentials for `scheme`; the session is unusable.
    #[error("AuthFailed: the server refused the {scheme} credentials")]
    AuthFailed { scheme: String },

    /// A path the server would refuse anyway, caught before sending.
    #[error("BadArguments: invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },

    /// A request larger than the server accepts (jute.maxbuffer), caught before sending.
    #[error(
        "BadArguments{}: request of {size} bytes exceeds the {limit}-byte limit (jute.maxbuffer)",
        at(path)
    )]
    TooLarge {
        path: Option<String>,
        size: usize,
        limit: usize,
    },

    /// Arguments the client refuses (a malformed connect string, an empty multi, ...).
    #[error("BadArguments: {0}")]
    BadArguments(String),

    /// No server of the connect string could be reached in time.
    #[error("ConnectionLoss: cannot connect to {hosts}: {reason}")]
    CannotConnect { hosts: String, reason: String },

    /// The server sent bytes we could not make sense of.
    #[error("MarshallingError: {0}")]
    Protocol(String),
}

fn at(path: &Option<String>) -> String {
    match path {
        Some(p) => format!(": {p}"),
        None => String::new(),
    }
}

impl Error {
    /// The ZooKeeper error code this error corresponds to.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Server { code, .. } | Error::MultiFailed { code, .. } => *code,
            Error::ConnectionLoss { .. } | Error::CannotConnect { .. } => ErrorCode::ConnectionLoss,
            // ZooKeeper answers requests on a closed handle with SessionExpired too.
            Error::SessionExpired { .. } | Error::Closed => ErrorCode::SessionExpired,
            Error::Timeout { .. } => ErrorCode::RequestTimeout,
            Error::AuthFailed { .. } => ErrorCode::AuthFailed,
            Error::InvalidPath { .. } | Error::TooLarge { .. } | Error::BadArguments(_) => {
                ErrorCode::BadArguments
            }
            Error::Protocol(_) => ErrorCode::MarshallingError,
        }
    }

    /// The path the failed request was about, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            Error::Server { path, .. }
            | Error::MultiFailed { path, .. }
            | Error::ConnectionLoss { path }
            | Error::SessionExpired { path }
            | Error::Timeout { path, .. }
            | Error::TooLarge { path, .. } => path.as_deref(),
            Error::InvalidPath { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Whether the outcome of the request is unknown because the connection was lost or
    /// the reply did not come in time (the request may have been applied).
    pub fn is_connection_loss(&self) -> bool {
        matches!(self, Error::ConnectionLoss { .. } | Error::Timeout { .. })
    }

    /// Whether the session is over (expired, closed or refused): retrying on this
    /// client cannot succeed.
    pub fn is_session_over(&self) -> bool {
        matches!(
            self,
            Error::SessionExpired { .. } | Error::Closed | Error::AuthFailed { .. }
        )
    }

    pub(crate) fn server(code: ErrorCode, path: Option<String>) -> Error {
        Error::Server { code, path }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_code_and_the_path() {
        let e = Error::server(ErrorCode::NoNode, Some("/a/b".into()));
        assert_eq!(e.to_string(), "NoNode: /a/b");
        assert_eq!(e.code(), ErrorCode::NoNode);
        assert_eq!(e.path(), Some("/a/b"));
        assert_eq!(
            Error::ConnectionLoss { path: None }.to_string(),
            "ConnectionLoss"
        );
        let big = Error::TooLarge {
            path: Some("/x".into()),
            size: 2_000_000,
            limit: 1_048_575,
        };
        assert_eq!(
            big.to_string(),
            "BadArguments: /x: request of 2000000 bytes exceeds the 1048575-byte limit (jute.maxbuffer)"
        );
        assert_eq!(Error::Closed.code(), ErrorCode::SessionExpired);
    }
}
