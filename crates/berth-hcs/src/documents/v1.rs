//! HCS schema 1 documents, with the JSON names and omission rules of the schema
//! the reference's hcsshim speaks.
//!
//! Fields that HCS reads as "absent" when empty or zero are skipped when empty or
//! zero; the others are always written, as the reference writes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// The `SystemType` of every container compute system.
pub const SYSTEM_TYPE_CONTAINER: &str = "Container";

/// The schema 1 document that creates a container compute system.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    /// Always `"Container"`.
    pub system_type: String,
    /// The container id.
    pub name: String,
    /// The management stack that created the container.
    pub owner: String,
    /// A development-only flag; always false.
    pub is_dummy: bool,
    /// Scratch volume (`\\?\Volume{GUID}`), process isolation only.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub volume_path: String,
    /// Startup optimisation hint.
    pub ignore_flushes_during_boot: bool,
    /// The writable layer folder.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub layer_folder_path: String,
    /// Read-only layers, top-most first.
    pub layers: Vec<Layer>,
    /// Credential spec, as given.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub credentials: String,
    /// Number of processors.
    #[serde(skip_serializing_if = "is_zero")]
    pub processor_count: u32,
    /// Relative CPU weight.
    #[serde(skip_serializing_if = "is_zero")]
    pub processor_weight: u64,
    /// CPU cap in 1/100 of a per cent (1..=10000).
    #[serde(skip_serializing_if = "is_zero")]
    pub processor_maximum: i64,
    /// Storage IOPS cap.
    #[serde(rename = "StorageIOPSMaximum", skip_serializing_if = "is_zero")]
    pub storage_iops_maximum: u64,
    /// Storage bandwidth cap in bytes per second.
    #[serde(skip_serializing_if = "is_zero")]
    pub storage_bandwidth_maximum: u64,
    /// Size in bytes the system drive is expanded to.
    #[serde(skip_serializing_if = "is_zero")]
    pub storage_sandbox_size: u64,
    /// Memory cap in MiB.
    #[serde(rename = "MemoryMaximumInMB", skip_serializing_if = "is_zero")]
    pub memory_maximum_in_mb: i64,
    /// The container's host name.
    pub host_name: String,
    /// Volumes and bind mounts.
    pub mapped_directories: Vec<MappedDir>,
    /// Folder of unmounted sandboxes, Hyper-V isolation only.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sandbox_path: String,
    /// True for Hyper-V isolation.
    pub hv_partition: bool,
    /// Network endpoint ids to attach.
    pub endpoint_list: Vec<String>,
    /// Container whose network stack this one shares.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub network_shared_container_name: String,
    /// Utility VM settings, Hyper-V isolation only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hv_runtime: Option<HvRuntime>,
    /// True for a servicing (update) container.
    pub servicing: bool,
    /// Resolve unqualified DNS names.
    #[serde(rename = "AllowUnqualifiedDNSQuery")]
    pub allow_unqualified_dns_query: bool,
    /// DNS suffixes, comma separated.
    #[serde(rename = "DNSSearchList", skip_serializing_if = "String::is_empty")]
    pub dns_search_list: String,
}

/// One read-only layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Layer {
    /// The layer's GUID (NameToGuid of its folder name).
    #[serde(rename = "ID")]
    pub id: String,
    /// The layer folder.
    pub path: String,
}

/// A host directory mapped into the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MappedDir {
    /// Directory on the host.
    pub host_path: String,
    /// Directory in the container.
    pub container_path: String,
    /// Mapped read-only.
    pub read_only: bool,
    /// Bandwidth cap in bytes per second (0 = none).
    pub bandwidth_maximum: u64,
    /// IOPS cap (0 = none).
    #[serde(rename = "IOPSMaximum")]
    pub iops_maximum: u64,
}

/// Utility VM settings of a Hyper-V isolated container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HvRuntime {
    /// The utility VM image folder.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_path: String,
    /// Do not clone from a template.
    #[serde(skip_serializing_if = "is_zero")]
    pub skip_template: bool,
}

/// The document that creates a process in a compute system.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProcessConfig {
    /// Executable path; empty means "from the command line".
    pub application_name: String,
    /// The full command line, quoted by Windows rules.
    pub command_line: String,
    /// User name to run as.
    pub user: String,
    /// Working directory.
    pub working_directory: String,
    /// Environment variables.
    pub environment: BTreeMap<String, String>,
    /// Run under a pseudo console.
    pub emulate_console: bool,
    /// Create a stdin pipe.
    pub create_std_in_pipe: bool,
    /// Create a stdout pipe.
    pub create_std_out_pipe: bool,
    /// Create a stderr pipe.
    pub create_std_err_pipe: bool,
    /// `[height, width]`, zero unless `emulate_console`.
    pub console_size: [u32; 2],
}

/// A request to change a running process (`HcsModifyProcess`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Operation")]
pub enum ProcessModifyRequest {
    /// Resize the process's console.
    ConsoleSize {
        /// The new size.
        #[serde(rename = "ConsoleSize")]
        console_size: ConsoleSize,
    },
    /// Close one of the process's standard handles.
    CloseHandle {
        /// Which handle.
        #[serde(rename = "CloseHandle")]
        close_handle: CloseHandle,
    },
}

impl ProcessModifyRequest {
    /// A console resize to `width` × `height` characters.
    pub fn resize(width: u16, height: u16) -> Self {
        Self::ConsoleSize {
            console_size: ConsoleSize { height, width },
        }
    }

    /// Close the process's stdin.
    pub fn close_stdin() -> Self {
        Self::CloseHandle {
            close_handle: CloseHandle {
                handle: StdHandle::StdIn,
            },
        }
    }
}

/// A console size in characters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsoleSize {
    /// Rows.
    pub height: u16,
    /// Columns.
    pub width: u16,
}

/// The handle named by a close request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CloseHandle {
    /// Which standard handle.
    pub handle: StdHandle,
}

/// A process's standard handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StdHandle {
    /// Standard input.
    StdIn,
    /// Standard output.
    StdOut,
    /// Standard error.
    StdErr,
}

/// A query for compute system properties.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PropertyQuery {
    /// The properties wanted.
    pub property_types: Vec<PropertyType>,
}

impl PropertyQuery {
    /// A query for the given property types.
    pub fn of(types: &[PropertyType]) -> Self {
        Self {
            property_types: types.to_vec(),
        }
    }
}

/// A property that can be queried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PropertyType {
    /// Resource usage.
    Statistics,
    /// The processes running in the system.
    ProcessList,
    /// Whether updates are pending (servicing).
    PendingUpdates,
}

/// The answer to a property query; only the requested parts are present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerProperties {
    /// The compute system's id.
    #[serde(rename = "Id", alias = "ID")]
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its system type.
    pub system_type: String,
    /// Its owner.
    pub owner: String,
    /// Schema 2: the state (`Running`, `Paused`, `Stopped`, ...).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// Schema 1: whether it has stopped.
    pub stopped: bool,
    /// Schema 1: how it exited.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub exit_type: String,
    /// Whether servicing left updates pending.
    pub are_updates_pending: bool,
    /// Resource usage, when queried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics: Option<Statistics>,
    /// Processes, when queried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_list: Option<Vec<ProcessListItem>>,
}

/// Resource usage of a compute system.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Statistics {
    /// When the sample was taken (RFC 3339).
    pub timestamp: String,
    /// When the container started (RFC 3339).
    pub container_start_time: String,
    /// Uptime in 100 ns units.
    #[serde(rename = "Uptime100ns")]
    pub uptime_100ns: u64,
    /// Memory usage.
    pub memory: MemoryStats,
    /// Processor usage.
    pub processor: ProcessorStats,
    /// Storage usage.
    pub storage: StorageStats,
    /// Per-endpoint network usage.
    pub network: Vec<NetworkStats>,
}

/// Memory usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MemoryStats {
    /// Committed bytes.
    pub memory_usage_commit_bytes: u64,
    /// Peak committed bytes.
    pub memory_usage_commit_peak_bytes: u64,
    /// Private working set in bytes.
    pub memory_usage_private_working_set_bytes: u64,
}

/// Processor usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProcessorStats {
    /// Total run time in 100 ns units.
    #[serde(rename = "TotalRuntime100ns")]
    pub total_runtime_100ns: u64,
    /// User-mode run time in 100 ns units.
    #[serde(rename = "RuntimeUser100ns")]
    pub runtime_user_100ns: u64,
    /// Kernel-mode run time in 100 ns units.
    #[serde(rename = "RuntimeKernel100ns")]
    pub runtime_kernel_100ns: u64,
}

/// Storage usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StorageStats {
    /// Reads, normalised.
    pub read_count_normalized: u64,
    /// Bytes read.
    pub read_size_bytes: u64,
    /// Writes, normalised.
    pub write_count_normalized: u64,
    /// Bytes written.
    pub write_size_bytes: u64,
}

/// Network usage of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkStats {
    /// Bytes received.
    pub bytes_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Packets received.
    pub packets_received: u64,
    /// Packets sent.
    pub packets_sent: u64,
    /// Incoming packets dropped.
    pub dropped_packets_incoming: u64,
    /// Outgoing packets dropped.
    pub dropped_packets_outgoing: u64,
    /// The endpoint.
    pub endpoint_id: String,
    /// The adapter instance.
    pub instance_id: String,
}

/// One process of a compute system.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProcessListItem {
    /// When it was created (RFC 3339).
    pub create_timestamp: String,
    /// Its image name.
    pub image_name: String,
    /// Kernel time in 100 ns units.
    #[serde(rename = "KernelTime100ns")]
    pub kernel_time_100ns: u64,
    /// Committed bytes.
    pub memory_commit_bytes: u64,
    /// Private working set in bytes.
    pub memory_working_set_private_bytes: u64,
    /// Shared working set in bytes.
    pub memory_working_set_shared_bytes: u64,
    /// Its process id.
    pub process_id: u32,
    /// User time in 100 ns units.
    #[serde(rename = "UserTime100ns")]
    pub user_time_100ns: u64,
}

/// The status of a process, as `HcsGetProcessProperties` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProcessStatus {
    /// Its process id.
    pub process_id: u32,
    /// Whether it has exited.
    pub exited: bool,
    /// Its exit code; meaningful only when exited and `last_wait_result` is 0.
    pub exit_code: u32,
    /// The result of HCS's wait on the process (0 = success).
    pub last_wait_result: i32,
}

impl ProcessStatus {
    /// The exit code, or `None` when it cannot be known.
    pub fn known_exit_code(&self) -> Option<u32> {
        (self.exited && self.last_wait_result == 0).then_some(self.exit_code)
    }
}
