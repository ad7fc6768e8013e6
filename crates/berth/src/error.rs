//! The error every Client operation returns: it names the container, the operation
//! and the step that failed, and carries a kind to branch on.

use berth_types::{WireError, WireErrorKind};

/// What kind of failure, for callers to branch on (never on message text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: an invalid id, spec or option.
    InvalidArgument,
    /// No such container or process.
    NotFound,
    /// The id is in use.
    AlreadyExists,
    /// The operation does not fit the container's state.
    FailedPrecondition,
    /// The command to run was not found (exit code 127).
    CommandNotFound,
    /// The command cannot be executed (exit code 126).
    CommandNotExecutable,
    /// Not supported on this platform or by this runtime.
    Unsupported,
    /// The container's shim cannot be reached.
    ShimUnavailable,
    /// Anything else.
    Internal,
}

impl From<WireErrorKind> for ErrorKind {
    fn from(k: WireErrorKind) -> Self {
        match k {
            WireErrorKind::InvalidArgument => Self::InvalidArgument,
            WireErrorKind::NotFound => Self::NotFound,
            WireErrorKind::AlreadyExists => Self::AlreadyExists,
            WireErrorKind::FailedPrecondition => Self::FailedPrecondition,
            WireErrorKind::CommandNotFound => Self::CommandNotFound,
            WireErrorKind::CommandNotExecutable => Self::CommandNotExecutable,
            WireErrorKind::Unimplemented => Self::Unsupported,
            WireErrorKind::Internal => Self::Internal,
        }
    }
}

/// A failed Client operation: `<op> <container>: <step>: <cause>`.
#[derive(Debug, thiserror::Error)]
#[error("{op} {id}: {step}: {message}")]
pub struct Error {
    /// The operation (`create`, `exec`, `delete`, ...).
    pub op: &'static str,
    /// The container.
    pub id: String,
    /// The step that failed.
    pub step: String,
    /// The cause.
    pub message: String,
    /// What kind of failure.
    pub kind: ErrorKind,
}

impl Error {
    /// A new error.
    pub fn new(
        op: &'static str,
        id: impl Into<String>,
        kind: ErrorKind,
        step: impl Into<String>,
        message: impl std::fmt::Display,
    ) -> Self {
        Self {
            op,
            id: id.into(),
            step: step.into(),
            message: message.to_string(),
            kind,
        }
    }

    /// Builds the error from a shim's typed wire error.
    pub fn from_wire(op: &'static str, id: impl Into<String>, w: WireError) -> Self {
        Self::new(op, id, w.kind.into(), w.step, w.message)
    }

    /// The exit code `berth run`/`exec` report for this error: 127, 126, or 125.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::CommandNotFound => 127,
            ErrorKind::CommandNotExecutable => 126,
            _ => 125,
        }
    }
}

/// Result of a Client operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
