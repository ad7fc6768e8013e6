//! The container's event journal: one JSON line per event, each with the next
//! sequence number. It is the source of truth that every client follows.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use berth_types::{ContainerId, Event, EventKind, ProcessId};
use chrono::Utc;

pub struct Journal {
    file: File,
    next_seq: u64,
    id: ContainerId,
    forwarder: Option<crate::publish::Forwarder>,
    /// The berth root whose host event log also gets every event (under berth).
    host_root: Option<std::path::PathBuf>,
}

/// What an event says beyond its kind.
#[derive(Default)]
pub struct Detail<'a> {
    pub process_id: Option<&'a str>,
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub oom_killed: Option<bool>,
    /// When the process exited, for a delete forwarded to containerd (whose
    /// TaskDelete carries the exit time); the journal's own entry is timed as
    /// always.
    pub exited_at: Option<chrono::DateTime<Utc>>,
}

impl Journal {
    /// Opens (or continues) the journal at `path`; its first event follows
    /// `after` (the last `Seq` of the container's earlier runs).
    pub fn open(path: &Path, id: ContainerId, after: u64) -> io::Result<Self> {
        let mut next_seq = after + 1;
        if let Ok(f) = File::open(path) {
            for line in BufReader::new(f).lines() {
                if let Ok(ev) = serde_json::from_str::<Event>(&line?) {
                    next_seq = ev.seq + 1;
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file,
            next_seq,
            id,
            forwarder: None,
            host_root: None,
        })
    }

    /// Also appends every event to the host's event log under `root`.
    pub fn log_to_host(&mut self, root: std::path::PathBuf) {
        self.host_root = Some(root);
    }

    /// Also forwards every event appended from now on (to containerd).
    pub fn forward_to(&mut self, f: crate::publish::Forwarder) {
        self.forwarder = Some(f);
    }

    /// Stops forwarding; the forwarder returned still holds the events queued.
    pub fn stop_forwarding(&mut self) -> Option<crate::publish::Forwarder> {
        self.forwarder.take()
    }

    /// Appends one event as a single write, so followers never read half a line.
    pub fn append(&mut self, kind: EventKind, d: Detail<'_>) -> io::Result<Event> {
        let ev = Event {
            seq: self.next_seq,
            time: Utc::now(),
            id: self.id.clone(),
            kind,
            process_id: d.process_id.and_then(|p| ProcessId::new(p).ok()),
            pid: d.pid.and_then(|p| u32::try_from(p).ok()),
            exit_code: d.exit_code,
            oom_killed: d.oom_killed,
        };
        let mut line = serde_json::to_vec(&ev).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.next_seq += 1;
        if let Some(root) = &self.host_root {
            // Best effort: the container's journal has it whatever happens here.
            let _ = berth_types::event_log::append(root, &line);
        }
        if let Some(f) = &self.forwarder {
            match d.exited_at {
                Some(time) => f.send(&Event { time, ..ev.clone() }),
                None => f.send(&ev),
            }
        }
        Ok(ev)
    }
}
