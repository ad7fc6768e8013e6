//! HCS schema 2 documents for computecore.dll: the `ComputeSystem` document that
//! creates a container, the process parameters and the signal options.
//!
//! Schema 2 omits every empty or zero field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::v1;

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// The schema version berth writes.
pub const SCHEMA_VERSION: Version = Version { major: 2, minor: 1 };

/// The document that creates a compute system.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ComputeSystem {
    /// The management stack that created it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub owner: String,
    /// Schema version of this document.
    pub schema_version: Version,
    /// The utility VM hosting the container (Hyper-V isolation).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hosting_system_id: String,
    /// The container definition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// Terminate the system when its last handle closes.
    #[serde(skip_serializing_if = "is_zero")]
    pub should_terminate_on_last_handle_closed: bool,
}

/// A schema version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Version {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

/// A container definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Container {
    /// Guest OS settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_os: Option<GuestOs>,
    /// Storage: layers and the scratch volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// Volumes and bind mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mapped_directories: Vec<MappedDirectory>,
    /// Memory limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// Processor limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processor: Option<Processor>,
    /// Networking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networking: Option<Networking>,
}

/// Guest OS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GuestOs {
    /// The host name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host_name: String,
}

/// Container storage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Storage {
    /// Read-only layers, top-most first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Layer>,
    /// The mounted scratch volume.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Storage limits.
    #[serde(rename = "QoS", skip_serializing_if = "Option::is_none")]
    pub qos: Option<StorageQoS>,
}

/// One read-only layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Layer {
    /// The layer's GUID.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The layer folder.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
}

/// Storage limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StorageQoS {
    /// IOPS cap.
    #[serde(skip_serializing_if = "is_zero")]
    pub iops_maximum: u32,
    /// Bandwidth cap in bytes per second.
    #[serde(skip_serializing_if = "is_zero")]
    pub bandwidth_maximum: u32,
}

/// A host directory mapped into the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MappedDirectory {
    /// Directory on the host.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host_path: String,
    /// Directory in the container.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_path: String,
    /// Mapped read-only.
    #[serde(skip_serializing_if = "is_zero")]
    pub read_only: bool,
}

/// Memory limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Memory {
    /// Memory cap in MiB.
    #[serde(rename = "SizeInMB", skip_serializing_if = "is_zero")]
    pub size_in_mb: u64,
}

/// Processor limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Processor {
    /// Number of processors.
    #[serde(skip_serializing_if = "is_zero")]
    pub count: u32,
    /// CPU cap in 1/100 of a per cent (1..=10000).
    #[serde(skip_serializing_if = "is_zero")]
    pub maximum: u32,
    /// Relative CPU weight.
    #[serde(skip_serializing_if = "is_zero")]
    pub weight: u32,
}

/// Container networking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Networking {
    /// Resolve unqualified DNS names.
    #[serde(skip_serializing_if = "is_zero")]
    pub allow_unqualified_dns_query: bool,
    /// DNS suffixes, comma separated.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dns_search_list: String,
    /// Container whose network stack this one shares.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub network_shared_container_name: String,
    /// The HNS network namespace GUID.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The document that creates a process (`HcsCreateProcess`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProcessParameters {
    /// Executable path; empty means "from the command line".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub application_name: String,
    /// The full command line, quoted by Windows rules.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub command_line: String,
    /// User name to run as.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Working directory.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub working_directory: String,
    /// Environment variables.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Run under a pseudo console.
    #[serde(skip_serializing_if = "is_zero")]
    pub emulate_console: bool,
    /// Create a stdin pipe.
    #[serde(skip_serializing_if = "is_zero")]
    pub create_std_in_pipe: bool,
    /// Create a stdout pipe.
    #[serde(skip_serializing_if = "is_zero")]
    pub create_std_out_pipe: bool,
    /// Create a stderr pipe.
    #[serde(skip_serializing_if = "is_zero")]
    pub create_std_err_pipe: bool,
    /// `[height, width]`.
    #[serde(skip_serializing_if = "is_zero")]
    pub console_size: [u16; 2],
}

impl From<&v1::ProcessConfig> for ProcessParameters {
    fn from(p: &v1::ProcessConfig) -> Self {
        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        Self {
            application_name: p.application_name.clone(),
            command_line: p.command_line.clone(),
            user: p.user.clone(),
            working_directory: p.working_directory.clone(),
            environment: p.environment.clone(),
            emulate_console: p.emulate_console,
            create_std_in_pipe: p.create_std_in_pipe,
            create_std_out_pipe: p.create_std_out_pipe,
            create_std_err_pipe: p.create_std_err_pipe,
            console_size: [clamp(p.console_size[0]), clamp(p.console_size[1])],
        }
    }
}

/// Options of `HcsSignalProcess`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SignalProcessOptions {
    /// The console control signal to deliver.
    pub signal: ConsoleSignal,
}

/// A console control signal, the only signals a Windows process receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsoleSignal {
    /// Ctrl+C.
    CtrlC,
    /// Ctrl+Break.
    CtrlBreak,
    /// The console is closing.
    CtrlClose,
    /// The user is logging off.
    CtrlLogOff,
    /// The system is shutting down.
    CtrlShutdown,
}
