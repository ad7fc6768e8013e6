//! What the engine passes in and gets back.

use std::path::PathBuf;

use berth_types::{ContainerId, ContainerStatus, Event, ExitStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Receives every container's events, per container in order. Called from the
/// Client's own tasks, never while a lock the engine may hold is held.
pub trait EventSink: Send + Sync + 'static {
    /// One event.
    fn event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync + 'static> EventSink for F {
    fn event(&self, event: &Event) {
        self(event)
    }
}

/// Which stdio streams a process gets. The Client makes FIFOs for them under the
/// container's state dir and hands back their open ends in [`ProcessIo`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StdioRequest {
    /// Give the process a stdin the caller writes to.
    pub stdin: bool,
    /// Stream stdout to the caller.
    pub stdout: bool,
    /// Stream stderr to the caller.
    pub stderr: bool,
    /// Run the process on a terminal.
    pub terminal: bool,
}

impl StdioRequest {
    /// Stdout and stderr only.
    pub fn output() -> Self {
        Self {
            stdout: true,
            stderr: true,
            ..Self::default()
        }
    }
}

/// The caller's ends of a process's stdio. Readers reach EOF when the process exits.
#[derive(Debug, Default)]
pub struct ProcessIo {
    /// Write here to feed the process's stdin; drop it to send EOF.
    pub stdin: Option<tokio::net::unix::pipe::Sender>,
    /// The process's stdout.
    pub stdout: Option<tokio::net::unix::pipe::Receiver>,
    /// The process's stderr.
    pub stderr: Option<tokio::net::unix::pipe::Receiver>,
}

/// Options of `create` beyond the spec.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Where the spec's relative `root.path` is resolved (an OCI bundle dir).
    pub bundle_dir: Option<PathBuf>,
    /// The image the container was made from, for records and listings.
    pub image: Option<String>,
    /// Run on berth's default root filesystem (host `/usr` read-only, its own
    /// `/etc`), made under the container's state dir; the spec's root is replaced.
    pub default_rootfs: bool,
    /// `USER[:GROUP]` to resolve in the container's own `/etc/passwd` and
    /// `/etc/group` once its root filesystem is known; overrides the spec's user.
    pub user: Option<String>,
}

/// A container as the Client sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Its id.
    pub id: ContainerId,
    /// Lifecycle state.
    pub status: ContainerStatus,
    /// Host pid of init, while it has one.
    pub pid: Option<u32>,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// When init started.
    pub started_at: Option<DateTime<Utc>>,
    /// How init ended, once it has.
    pub exit: Option<ExitStatus>,
    /// The bundle dir it runs from.
    pub bundle: PathBuf,
    /// The image, if any.
    pub image: Option<String>,
    /// Init's command line.
    pub args: Vec<String>,
}

/// One checkpoint of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// Its name.
    pub name: String,
    /// When it was written.
    pub created: DateTime<Utc>,
    /// Where it lives.
    pub path: PathBuf,
}
