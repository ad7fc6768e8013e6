use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ContainerId, ProcessId};

/// What happened to a container or one of its processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The container (and its init process) was created.
    Create,
    /// Init started running.
    Start,
    /// An exec process was added.
    ExecAdded,
    /// An exec process started running.
    ExecStarted,
    /// A process exited.
    Exit,
    /// The memory limit's OOM killer acted in the container.
    Oom,
    /// The container was frozen.
    Paused,
    /// The container was thawed.
    Resumed,
    /// A checkpoint was written.
    Checkpointed,
    /// A client reattached to a running container.
    Restore,
    /// The container was deleted.
    Delete,
}

impl EventKind {
    /// The kebab-case name used in JSON (`exec-added`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Start => "start",
            Self::ExecAdded => "exec-added",
            Self::ExecStarted => "exec-started",
            Self::Exit => "exit",
            Self::Oom => "oom",
            Self::Paused => "paused",
            Self::Resumed => "resumed",
            Self::Checkpointed => "checkpointed",
            Self::Restore => "restore",
            Self::Delete => "delete",
        }
    }
}

/// RFC 3339 with all nine digits of nanoseconds, as the CLI contract gives every
/// time (chrono's own drops zeros: `.052814Z` for `.052814000Z`).
fn nanos<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
}

/// One entry of a container's event journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    /// Position in the container's journal: increases by one and never repeats.
    pub seq: u64,
    /// When the shim recorded it (written with nanoseconds, always nine digits).
    #[serde(serialize_with = "nanos")]
    pub time: DateTime<Utc>,
    /// The container.
    pub id: ContainerId,
    /// What happened.
    #[serde(rename = "Type")]
    pub kind: EventKind,
    /// The process concerned, if any.
    #[serde(default)]
    pub process_id: Option<ProcessId>,
    /// Host pid of the process concerned.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Exit code, for `exit`.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Whether the OOM killer ended the process, for `exit`.
    #[serde(rename = "OOMKilled", default)]
    pub oom_killed: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_field_names_follow_cli_contract() {
        let ev = Event {
            seq: 3,
            time: Utc::now(),
            id: ContainerId::new("c1").unwrap(),
            kind: EventKind::ExecAdded,
            process_id: Some(ProcessId::new("e1").unwrap()),
            pid: Some(42),
            exit_code: Some(7),
            oom_killed: Some(false),
        };
        let v: serde_json::Value = serde_json::to_value(&ev).unwrap();
        for key in [
            "Seq",
            "Time",
            "Id",
            "Type",
            "ProcessId",
            "Pid",
            "ExitCode",
            "OOMKilled",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["Type"], "exec-added");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn time_keeps_all_nine_digits_of_nanoseconds() {
        use chrono::TimeZone;
        // A time whose nanoseconds end in zeros: chrono's default drops them.
        let t = Utc.timestamp_opt(1_700_000_000, 52_814_000).unwrap();
        let ev = Event {
            seq: 1,
            time: t,
            id: ContainerId::new("c1").unwrap(),
            kind: EventKind::Start,
            process_id: None,
            pid: None,
            exit_code: None,
            oom_killed: None,
        };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["Time"], "2023-11-14T22:13:20.052814000Z");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back.time, t);
    }
}
