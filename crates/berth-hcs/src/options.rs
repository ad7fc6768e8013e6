//! What the engine tells berth about a Windows container beyond its OCI spec, and
//! what translation needs to know about the host.

use std::io;

/// The `Owner` berth writes into HCS documents unless told otherwise.
pub const DEFAULT_OWNER: &str = "berth";

/// Options for creating a Windows container (the reference's create options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// `Owner` of the compute system; [`DEFAULT_OWNER`] when `None`.
    pub owner: Option<String>,
    /// The image layers; required.
    pub layers: Option<LayerOptions>,
    /// Process or Hyper-V isolation.
    pub isolation: Isolation,
    /// Run a servicing (update) container to completion.
    pub servicing: bool,
    /// Ask HCS to ignore flushes while the container boots.
    pub ignore_flushes_during_boot: bool,
    /// Networking.
    pub network: NetworkOptions,
    /// A credential spec, passed to HCS as given.
    pub credentials: Option<String>,
    /// A CPU cap in per cent (1..=100), for engines that still speak per cent;
    /// used only when the spec has no `windows.resources.cpu.maximum`.
    pub cpu_percent: Option<u32>,
}

/// The image layers of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerOptions {
    /// Read-only layer folders, top-most first.
    pub paths: Vec<String>,
    /// The writable layer folder (may be empty for Hyper-V isolation).
    pub folder: String,
}

/// How the container is isolated from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Windows Server container: shares the host kernel.
    #[default]
    Process,
    /// Hyper-V container: runs in a utility VM.
    HyperV {
        /// Folder of unmounted sandboxes (`%root%\windowsfilter`).
        sandbox_path: String,
        /// The utility VM image; searched for in the layers when `None`.
        utility_vm_path: Option<String>,
    },
}

/// Networking of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkOptions {
    /// HNS endpoint ids to attach (schema 1).
    pub endpoints: Vec<String>,
    /// The HNS namespace GUID the endpoints live in (schema 2).
    pub namespace: Option<String>,
    /// Resolve unqualified DNS names.
    pub allow_unqualified_dns_query: bool,
    /// DNS suffixes to search.
    pub dns_search_list: Vec<String>,
    /// Share the network stack of this container.
    pub shared_container: Option<String>,
}

/// What translation needs to know about the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostInfo {
    /// Logical processors of the host; CPU counts are clamped to it.
    pub processor_count: u32,
}

impl HostInfo {
    /// The running host's processor count (at least 1).
    pub fn detect() -> Self {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            processor_count: u32::try_from(n).unwrap_or(u32::MAX),
        }
    }
}

/// Layer lookups that need the host: GUIDs (vmcompute's NameToGuid on Windows)
/// and the utility VM image. Tests pass a fake.
pub trait LayerResolver {
    /// The GUID HCS uses for the layer whose folder is named `folder_name`,
    /// in canonical lower-case `8-4-4-4-12` form.
    fn layer_guid(&self, folder_name: &str) -> io::Result<String>;

    /// Whether `path` (a layer's `UtilityVM` folder) exists. A not-found error
    /// must be `Ok(false)`; any other error is returned as is.
    fn utility_vm_exists(&self, path: &str) -> io::Result<bool> {
        match std::fs::metadata(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}
