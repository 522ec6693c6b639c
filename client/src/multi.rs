//! Multi: several writes applied atomically (all or none), and multiRead: several
//! independent reads in one round trip.

use paddock_proto::{
    CheckVersionRequest, DeleteRequest, ErrorCode, GetChildrenRequest, GetDataRequest, MultiResult,
    Request, SetDataRequest, Stat,
};

use crate::error::Error;
use crate::ops::{CreateOptions, create_request, version_or_any};
use crate::path::{self, Chroot};

/// One write of a multi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `data: None` creates the node with null data (see
    /// [`Client::create_nullable`](crate::Client::create_nullable)).
    Create {
        path: String,
        data: Option<Vec<u8>>,
        options: CreateOptions,
    },
    /// `version: None` deletes whatever the version.
    Delete { path: String, version: Option<i32> },
    /// `data: None` sets null data.
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: Option<i32>,
    },
    /// Fails the multi unless the node is at `version`.
    Check { path: String, version: i32 },
}

impl Op {
    pub fn create(
        path: impl Into<String>,
        data: impl Into<Vec<u8>>,
        options: impl Into<CreateOptions>,
    ) -> Op {
        Op::create_nullable(path, Some(data.into()), options)
    }

    /// A create whose data may be null (`None`).
    pub fn create_nullable(
        path: impl Into<String>,
        data: Option<Vec<u8>>,
        options: impl Into<CreateOptions>,
    ) -> Op {
        Op::Create {
            path: path.into(),
            data,
            options: options.into(),
        }
    }

    pub fn delete(path: impl Into<String>, version: Option<i32>) -> Op {
        Op::Delete {
            path: path.into(),
            version,
        }
    }

    pub fn set_data(path: impl Into<String>, data: impl Into<Vec<u8>>, version: Option<i32>) -> Op {
        Op::set_data_nullable(path, Some(data.into()), version)
    }

    /// A setData whose data may be null (`None`).
    pub fn set_data_nullable(
        path: impl Into<String>,
        data: Option<Vec<u8>>,
        version: Option<i32>,
    ) -> Op {
        Op::SetData {
            path: path.into(),
            data,
            version,
        }
    }

    pub fn check(path: impl Into<String>, version: i32) -> Op {
        Op::Check {
            path: path.into(),
            version,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            Op::Create { path, .. }
            | Op::Delete { path, .. }
            | Op::SetData { path, .. }
            | Op::Check { path, .. } => path,
        }
    }

    pub(crate) fn to_request(&self, chroot: &Chroot) -> Result<Request, Error> {
        Ok(match self {
            Op::Create {
                path,
                data,
                options,
            } => {
                path::check(path, options.mode.is_sequential())?;
                create_request(&chroot.to_server(path), data.as_deref(), options, path)?
            }
            Op::Delete { path, version } => {
                path::check(path, false)?;
                Request::Delete(DeleteRequest {
                    path: chroot.to_server(path),
                    version: version_or_any(*version),
                })
            }
            Op::SetData {
                path,
                data,
                version,
            } => {
                path::check(path, false)?;
                Request::SetData(SetDataRequest {
                    path: chroot.to_server(path),
                    data: data.clone().into(),
                    version: version_or_any(*version),
                })
            }
            Op::Check { path, version } => {
                path::check(path, false)?;
                Request::Check(CheckVersionRequest {
                    path: chroot.to_server(path),
                    version: *version,
                })
            }
        })
    }
}

/// The outcome of one op of a multi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Create {
        path: String,
        stat: Option<Stat>,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
    /// In a failed multi: the failing op carries its error; the others carry `Ok`
    /// (rolled back) or RuntimeInconsistency (not attempted), as ZooKeeper reports.
    Error {
        code: ErrorCode,
    },
}

impl OpResult {
    pub(crate) fn from_wire(result: MultiResult, chroot: &Chroot) -> OpResult {
        match result {
            MultiResult::Create(path) => OpResult::Create {
                path: chroot.to_client_lossy(&path),
                stat: None,
            },
            MultiResult::Create2(path, stat) => OpResult::Create {
                path: chroot.to_client_lossy(&path),
                stat: Some(stat),
            },
            MultiResult::Delete => OpResult::Delete,
            MultiResult::SetData(stat) => OpResult::SetData { stat },
            MultiResult::Check => OpResult::Check,
            MultiResult::Error(code) => OpResult::Error {
                code: ErrorCode::from_code(code).unwrap_or(ErrorCode::SystemError),
            },
            MultiResult::GetData(..) | MultiResult::GetChildren(_) => OpResult::Error {
                code: ErrorCode::MarshallingError,
            },
        }
    }
}

/// The error a failed multi reports: the first op whose code is neither Ok (rolled
/// back) nor RuntimeInconsistency (skipped), as ZooKeeper's clients do.
pub(crate) fn multi_failure(results: &[OpResult], ops: &[Op]) -> Option<Error> {
    let failed = |skip_inconsistency: bool| {
        results.iter().position(|r| match r {
            OpResult::Error { code } => {
                *code != ErrorCode::Ok
                    && !(skip_inconsistency && *code == ErrorCode::RuntimeInconsistency)
            }
            _ => false,
        })
    };
    let index = failed(true).or_else(|| failed(false))?;
    let OpResult::Error { code } = results[index] else {
        return None;
    };
    Some(Error::MultiFailed {
        code,
        path: ops.get(index).map(|op| op.path().to_string()),
        index,
        results: results.to_vec(),
    })
}

/// One read of a multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetData(String),
    GetChildren(String),
}

impl ReadOp {
    pub fn path(&self) -> &str {
        match self {
            ReadOp::GetData(p) | ReadOp::GetChildren(p) => p,
        }
    }

    pub(crate) fn to_request(&self, chroot: &Chroot) -> Result<Request, Error> {
        path::check(self.path(), false)?;
        let server = chroot.to_server(self.path());
        Ok(match self {
            ReadOp::GetData(_) => Request::GetData(GetDataRequest {
                path: server,
                watch: false,
            }),
            ReadOp::GetChildren(_) => Request::GetChildren(GetChildrenRequest {
                path: server,
                watch: false,
            }),
        })
    }
}

/// The outcome of one read of a multiRead; each read succeeds or fails on its own.
#[derive(Debug, Clone)]
pub enum ReadResult {
    /// `data: None` when the node's data is null (ZooKeeper keeps it apart from empty).
    Data {
        data: Option<Vec<u8>>,
        stat: Stat,
    },
    Children {
        children: Vec<String>,
    },
    Error(Error),
}
