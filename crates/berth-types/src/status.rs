use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The exit code reported when the real one cannot be known. Never 0.
pub const UNKNOWN_EXIT_CODE: i32 = 255;

/// A container's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    /// Created, init not started yet.
    Created,
    /// Init is running.
    Running,
    /// Frozen through the cgroup freezer.
    Paused,
    /// Init has exited (or its exit could not be observed).
    Exited,
    /// The state could not be read.
    Unknown,
}

impl ContainerStatus {
    /// The lowercase name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Exited => "exited",
            Self::Unknown => "unknown",
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code; 128+N for death by signal N; 255 when unknown.
    pub code: i32,
    /// When the exit was observed.
    pub exited_at: DateTime<Utc>,
    /// Whether the memory limit's OOM killer ended the process.
    #[serde(default)]
    pub oom_killed: bool,
    /// Why the exit code is unknown, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ExitStatus {
    /// An exit that could not be observed, with the reason.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self {
            code: UNKNOWN_EXIT_CODE,
            exited_at: Utc::now(),
            oom_killed: false,
            error: Some(reason.into()),
        }
    }
}
