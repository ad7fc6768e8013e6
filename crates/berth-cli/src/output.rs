//! JSON and table shapes of `inspect` and `ps`, as `../shared/CLI.md` fixes them.

use berth::{ContainerInfo, ContainerStatus};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn opt_time(t: Option<&DateTime<Utc>>) -> Value {
    t.map(|t| Value::String(time(t))).unwrap_or(Value::Null)
}

pub fn command_line(info: &ContainerInfo) -> String {
    info.args.join(" ")
}

pub fn inspect(info: &ContainerInfo, spec: Option<&oci_spec::runtime::Spec>) -> Value {
    let process = spec.and_then(|s| s.process().as_ref());
    let resources = spec
        .and_then(|s| s.linux().as_ref())
        .and_then(|l| l.resources().as_ref());
    let memory = resources.and_then(|r| r.memory().as_ref());
    let cpu = resources.and_then(|r| r.cpu().as_ref());
    let exit = info.exit.as_ref();
    json!({
        "Id": info.id.as_str(),
        "Name": info.id.as_str(),
        "Created": time(&info.created),
        "Image": info.image,
        "Bundle": info.bundle,
        "Root": spec.and_then(|s| s.root().as_ref()).map(|r| r.path()),
        "State": {
            "Status": info.status.as_str(),
            "Running": info.status == ContainerStatus::Running || info.status == ContainerStatus::Paused,
            "Paused": info.status == ContainerStatus::Paused,
            "OOMKilled": exit.is_some_and(|e| e.oom_killed),
            "Pid": info.pid,
            "ExitCode": exit.map(|e| e.code),
            "StartedAt": opt_time(info.started_at.as_ref()),
            "FinishedAt": opt_time(exit.map(|e| &e.exited_at)),
            "Error": exit.and_then(|e| e.error.clone()),
        },
        "Config": {
            "Args": process.and_then(|p| p.args().clone()),
            "Env": process.and_then(|p| p.env().clone()),
            "Cwd": process.map(|p| p.cwd()),
            "User": process.map(|p| format!("{}:{}", p.user().uid(), p.user().gid())),
            "Hostname": spec.and_then(|s| s.hostname().clone()),
            "Terminal": process.map(|p| p.terminal().unwrap_or(false)),
        },
        "Processes": [{
            "ProcessId": "init",
            "Pid": info.pid,
            "Args": info.args,
            "Status": info.status.as_str(),
            "ExitCode": exit.map(|e| e.code),
        }],
        "Resources": {
            "Memory": memory.and_then(|m| m.limit()),
            "MemorySwap": memory.and_then(|m| m.swap()),
            "CpuQuota": cpu.and_then(|c| c.quota()),
            "CpuPeriod": cpu.and_then(|c| c.period()),
            "CpuShares": cpu.and_then(|c| c.shares()),
            "CpusetCpus": cpu.and_then(|c| c.cpus().clone()),
            "PidsLimit": resources.and_then(|r| r.pids().as_ref()).map(|p| p.limit()),
        },
    })
}

/// The exec processes the journal knows of, in the order they were added.
pub fn exec_processes(events: &[berth::Event], state_dir: &std::path::Path) -> Vec<Value> {
    use berth::EventKind;
    let mut order: Vec<String> = Vec::new();
    let mut procs: std::collections::HashMap<String, (Option<u32>, Option<i32>)> =
        Default::default();
    for e in events {
        let Some(p) = e.process_id.as_ref().filter(|p| !p.is_init()) else {
            continue;
        };
        let entry = procs.entry(p.to_string()).or_insert_with(|| {
            order.push(p.to_string());
            (None, None)
        });
        match e.kind {
            EventKind::ExecStarted => entry.0 = e.pid,
            EventKind::Exit => entry.1 = e.exit_code,
            _ => {}
        }
    }
    order
        .into_iter()
        .filter_map(|p| {
            let (pid, code) = procs[&p];
            let spec = state_dir.join(format!("{p}-process.json"));
            if pid.is_none() && code.is_none() && !spec.exists() {
                // Added, never started, and deleted: it failed to start.
                return None;
            }
            let status = match (pid, code) {
                (_, Some(_)) => "exited",
                (Some(_), None) => "running",
                (None, None) => "created",
            };
            // The process spec the shim keeps while the process is known.
            let args = std::fs::read(&spec)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v.get("args").cloned())
                .unwrap_or(Value::Null);
            Some(json!({"ProcessId": p, "Pid": pid, "Args": args, "Status": status, "ExitCode": code}))
        })
        .collect()
}

/// Docker's "Up 3 seconds", "Exited (7) 2 seconds ago".
pub fn status_line(info: &ContainerInfo, now: DateTime<Utc>) -> String {
    match info.status {
        ContainerStatus::Running => {
            format!("Up {}", ago(now, info.started_at.unwrap_or(info.created)))
        }
        ContainerStatus::Paused => format!(
            "Up {} (Paused)",
            ago(now, info.started_at.unwrap_or(info.created))
        ),
        ContainerStatus::Created => "Created".into(),
        ContainerStatus::Exited => match &info.exit {
            Some(e) => format!("Exited ({}) {} ago", e.code, ago(now, e.exited_at)),
            None => "Exited".into(),
        },
        ContainerStatus::Unknown => "Unknown".into(),
    }
}

pub fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let s = (now - then).num_seconds().max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

pub fn ps_json(info: &ContainerInfo) -> Value {
    json!({
        "Id": info.id.as_str(),
        "Name": info.id.as_str(),
        "Image": info.image,
        "Command": command_line(info),
        "Created": time(&info.created),
        "Status": info.status.as_str(),
        "Pid": info.pid,
        "ExitCode": info.exit.as_ref().map(|e| e.code),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_reads_like_docker() {
        let now = Utc::now();
        assert_eq!(ago(now, now - chrono::Duration::seconds(3)), "3 seconds");
        assert_eq!(
            ago(now, now - chrono::Duration::seconds(90)),
            "About a minute"
        );
        assert_eq!(ago(now, now - chrono::Duration::seconds(600)), "10 minutes");
    }
}
