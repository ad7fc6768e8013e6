use serde::{Deserialize, Serialize};

/// A live resource update; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Memory plus swap limit in bytes (-1: unlimited).
    pub memory_swap: Option<i64>,
    /// CPU quota in microseconds per period.
    pub cpu_quota: Option<i64>,
    /// CPU period in microseconds.
    pub cpu_period: Option<u64>,
    /// Relative CPU weight (cgroup v1 shares).
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on (`0-1`).
    pub cpuset_cpus: Option<String>,
    /// Maximum number of tasks.
    pub pids_limit: Option<i64>,
    /// Block I/O weight (10-1000).
    pub blkio_weight: Option<u16>,
}
