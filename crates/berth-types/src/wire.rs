//! The typed error detail that crosses the shim boundary inside a ttrpc status, so
//! that callers branch on a kind and an exit code, never on message text.

use serde::{Deserialize, Serialize};

/// `type_url` of the `Any` in a ttrpc status's details that carries a [`WireError`].
pub const WIRE_ERROR_TYPE_URL: &str = "type.berth.dev/berth.WireError";

/// What kind of failure a shim reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WireErrorKind {
    /// The request was malformed or the spec invalid.
    InvalidArgument,
    /// The container or process does not exist.
    NotFound,
    /// It exists already.
    AlreadyExists,
    /// The operation does not fit the current state (exec into a stopped container).
    FailedPrecondition,
    /// The command to run was not found (exit code 127).
    CommandNotFound,
    /// The command exists but cannot be executed (exit code 126).
    CommandNotExecutable,
    /// The operation is not implemented by this shim.
    Unimplemented,
    /// Anything else.
    Internal,
}

/// A shim's failure: kind, the step that failed, and the cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// What kind of failure.
    pub kind: WireErrorKind,
    /// The step that failed (`start helper`, `create container`, ...).
    pub step: String,
    /// The cause, for people.
    pub message: String,
}

impl WireError {
    /// A new wire error.
    pub fn new(kind: WireErrorKind, step: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            step: step.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.message)
    }
}

impl std::error::Error for WireError {}

/// `type_url` of the `Any` berth puts in a shim's Checkpoint request: a JSON
/// [`CheckpointOptions`].
pub const CHECKPOINT_OPTIONS_TYPE_URL: &str = "type.berth.dev/berth.CheckpointOptions";

/// The archive of a container's writable root layer in a checkpoint directory.
pub const ROOTFS_DIFF: &str = "rootfs-diff.tar";

/// How a shim checkpoints its container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointOptions {
    /// Stop the container once the checkpoint is written (Docker's default; the
    /// CLI's `--leave-running` clears it).
    pub exit: bool,
    /// The criu binary the caller names (its `--criu` / `BERTH_CRIU`); without
    /// it the shim runs the one it was started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criu: Option<String>,
    /// The container's writable root layer (a plain root directory, or an
    /// overlay's upper dir), archived as `rootfs-diff.tar` beside the images while
    /// the container is frozen, so that a restore finds the files its processes
    /// hold open. `None`: the root is the caller's and outlives the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<String>,
    /// What the caller's marker of a complete checkpoint says (a JSON object); the
    /// shim adds the size of every file (`Files`) and writes it as
    /// [`CHECKPOINT_MARKER`] once the dump is whole, so that a caller killed
    /// meanwhile loses nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<serde_json::Value>,
}

/// The spec annotation whose value (a JSON array: program and arguments) the shim
/// runs, detached, once init has exited and its exit is recorded, when init ran
/// with no caller attached: `berth run -d --rm` removes its container this way,
/// as podman's exit command does. Honoured only under berth (not containerd).
pub const EXIT_COMMAND_ANNOTATION: &str = "org.berth.exit-command";

/// Spec annotation (`"true"`): init keeps a stdin open even when no caller gives
/// it one (`run -d -i`, a detached start of `create -i`, Docker's open stdin):
/// the shim holds the writing end of a pipe, so reads wait instead of ending,
/// until CloseIO or the exit.
pub const OPEN_STDIN_ANNOTATION: &str = "org.berth.open-stdin";

/// The marker of a complete berth checkpoint, beside CRIU's images.
pub const CHECKPOINT_MARKER: &str = "berth.json";

/// In a container's record dir: the last `Seq` of its runs before this one (a
/// start of an exited container begins a new journal), so that `Seq` goes on
/// increasing across runs and never repeats.
pub const LAST_SEQ_FILE: &str = "last-seq";

/// The last `Seq` that the runs before this one used, from `record_dir`.
pub fn last_seq(record_dir: &std::path::Path) -> u64 {
    std::fs::read_to_string(record_dir.join(LAST_SEQ_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
