//! What the engine passes in and gets back.

use std::path::PathBuf;

use berth_types::{ContainerId, ContainerStatus, Event, ExitStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::platform::{OutputReader, StdinWriter};

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
/// The stream types are the platform's ([`StdinWriter`], [`OutputReader`]): both
/// implement tokio's `AsyncWrite` / `AsyncRead`.
#[derive(Debug, Default)]
pub struct ProcessIo {
    /// Write here to feed the process's stdin; drop it to send EOF.
    pub stdin: Option<StdinWriter>,
    /// The process's stdout.
    pub stdout: Option<OutputReader>,
    /// The process's stderr.
    pub stderr: Option<OutputReader>,
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
    /// The image layers the root filesystem is made of. On Windows they are the
    /// container's storage; on Linux they become an overlayfs root (lower = the
    /// read-only layers, upper and work dirs in the writable folder). When `None`,
    /// Windows falls back to the spec's `windows.layerFolders`.
    pub layers: Option<Layers>,
    /// Bring the container back from this checkpoint (a directory of CRIU images
    /// that [`crate::Client::checkpoint`] wrote) instead of starting its command:
    /// its processes resume where the dump left them. Linux only.
    pub checkpoint: Option<PathBuf>,
    /// Options only the Windows platform reads (the reference's HCS options);
    /// ignored elsewhere.
    pub windows: WindowsOptions,
}

/// The layers of a container's root filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layers {
    /// Read-only layer folders, top-most first.
    pub read_only: Vec<PathBuf>,
    /// The writable layer folder (Windows: the sandbox; Linux: holds upper and work).
    pub writable: PathBuf,
}

/// Windows-only create options. Anything left at its default is taken from the
/// spec's `windows` section, as containerd passes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowsOptions {
    /// Process or Hyper-V isolation.
    pub isolation: Isolation,
    /// Run a servicing (update) container to completion: `create` returns once it
    /// has exited 0 (an error naming the code otherwise) and reports no events.
    pub servicing: bool,
    /// Ask HCS to ignore flushes while the container boots.
    pub ignore_flushes_during_boot: bool,
    /// Networking.
    pub network: WindowsNetwork,
    /// A credential spec (JSON), passed to HCS as given.
    pub credentials: Option<String>,
}

/// How a Windows container is isolated from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Isolation {
    /// A Windows Server container: shares the host kernel.
    #[default]
    Process,
    /// A Hyper-V container: runs in a utility VM.
    HyperV {
        /// The utility VM image; searched for in the layers (top-most first) when
        /// `None`.
        utility_vm: Option<PathBuf>,
        /// The folder of unmounted sandboxes (`%root%\windowsfilter`).
        sandbox_path: Option<PathBuf>,
    },
}

/// Networking of a Windows container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowsNetwork {
    /// HNS endpoint ids to attach.
    pub endpoints: Vec<String>,
    /// The HNS namespace the endpoints live in (needed by HCS schema 2).
    pub namespace: Option<String>,
    /// Resolve unqualified DNS names.
    pub allow_unqualified_dns_query: bool,
    /// DNS suffixes to search.
    pub dns_search_list: Vec<String>,
    /// Share the network stack of this container.
    pub shared_container: Option<String>,
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
