//! How the CLI fails: one line on stderr (a JSON object with `--json`) and an exit code
//! per kind of failure, so scripts can tell "not there" from "someone else got there
//! first" from "no server".

use std::process::ExitCode;

use paddock_client::{Error, ErrorCode};

pub const OTHER: u8 = 1;
pub const USAGE: u8 = 2;
pub const NOT_FOUND: u8 = 3;
pub const CONFLICT: u8 = 4;
pub const CANNOT_CONNECT: u8 = 5;
pub const NOT_AUTHORIZED: u8 = 6;

#[derive(Debug)]
pub enum Failure {
    /// A ZooKeeper error (from the server or the client library).
    Zk(Error),
    /// Arguments that parsed but make no sense.
    Usage(String),
    /// A four-letter word could not be asked or was refused.
    FourLetterWord {
        server: String,
        message: String,
        connect: bool,
    },
    Other(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Zk(e)
    }
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Zk(e) => match e {
                Error::CannotConnect { .. }
                | Error::ConnectionLoss { .. }
                | Error::Timeout { .. } => CANNOT_CONNECT,
                Error::BadArguments(_) | Error::InvalidPath { .. } | Error::TooLarge { .. } => {
                    USAGE
                }
                _ => match e.code() {
                    ErrorCode::NoNode => NOT_FOUND,
                    ErrorCode::NodeExists | ErrorCode::BadVersion | ErrorCode::NotEmpty => CONFLICT,
                    ErrorCode::NoAuth | ErrorCode::AuthFailed => NOT_AUTHORIZED,
                    _ => OTHER,
                },
            },
            Failure::Usage(_) => USAGE,
            Failure::FourLetterWord { connect: true, .. } => CANNOT_CONNECT,
            Failure::FourLetterWord { .. } | Failure::Other(_) => OTHER,
        }
    }

    fn message(&self) -> String {
        match self {
            Failure::Zk(e) => e.to_string(),
            Failure::Usage(m) | Failure::Other(m) => m.clone(),
            Failure::FourLetterWord {
                server, message, ..
            } => format!("{server}: {message}"),
        }
    }

    fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({ "message": self.message() });
        match self {
            Failure::Zk(e) => {
                v["error"] = e.code().name().into();
                if let Some(path) = e.path() {
                    v["path"] = path.into();
                }
            }
            Failure::Usage(_) => v["error"] = "Usage".into(),
            Failure::FourLetterWord { server, .. } => {
                v["error"] = "FourLetterWord".into();
                v["server"] = server.clone().into();
            }
            Failure::Other(_) => v["error"] = "Error".into(),
        }
        v["exitCode"] = self.exit_code().into();
        v
    }
}

/// Prints the failure on stderr and returns its exit code.
pub fn report(failure: &Failure, json: bool) -> ExitCode {
    if json {
        eprintln!("{}", failure.json());
    } else {
        eprintln!("paddock: {}", failure.message());
    }
    ExitCode::from(failure.exit_code())
}
