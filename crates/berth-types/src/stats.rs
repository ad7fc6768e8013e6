use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `type_url` of the `Any` in the Task API's `StatsResponse` that carries a
/// [`Stats`] as JSON (berth's shim answers Stats with it).
pub const STATS_TYPE_URL: &str = "type.berth.dev/berth.Stats";

/// A sample of a container's resource use. A figure this host cannot give is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stats {
    /// When the sample was taken.
    pub read: Option<DateTime<Utc>>,
    /// CPU time.
    pub cpu: CpuStats,
    /// Memory.
    pub memory: MemoryStats,
    /// Tasks.
    pub pids: PidsStats,
    /// Block I/O.
    pub block_io: BlockIoStats,
    /// Network of the container's network namespace.
    pub network: NetworkStats,
}

/// CPU time used, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CpuStats {
    /// Total CPU time.
    pub total_ns: Option<u64>,
    /// User-mode CPU time.
    pub user_ns: Option<u64>,
    /// Kernel-mode CPU time.
    pub system_ns: Option<u64>,
}

/// Memory use, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemoryStats {
    /// Current usage.
    pub usage: Option<u64>,
    /// The limit in force.
    pub limit: Option<u64>,
    /// Highest usage seen (cgroup v1 only).
    pub max_usage: Option<u64>,
    /// Page cache (v1 `cache`, v2 `file`).
    pub cache: Option<u64>,
}

/// Task counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PidsStats {
    /// Tasks now.
    pub current: Option<u64>,
    /// The limit, `None` when unlimited.
    pub limit: Option<u64>,
}

/// Block I/O totals, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BlockIoStats {
    /// Bytes read.
    pub read_bytes: Option<u64>,
    /// Bytes written.
    pub write_bytes: Option<u64>,
}

/// Network totals of the container's network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkStats {
    /// Bytes received.
    pub rx_bytes: Option<u64>,
    /// Packets received.
    pub rx_packets: Option<u64>,
    /// Bytes sent.
    pub tx_bytes: Option<u64>,
    /// Packets sent.
    pub tx_packets: Option<u64>,
}

/// One process of a container, as `top` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessSummary {
    /// Host pid.
    pub pid: u32,
    /// User name or numeric uid.
    pub user: String,
    /// CPU time used, in nanoseconds.
    pub cpu_time_ns: u64,
    /// Resident memory in bytes.
    pub memory_bytes: u64,
    /// Command line.
    pub command: String,
}
