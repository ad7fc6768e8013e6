//! What survives an engine restart on Windows: one record per container (how it
//! was created, its init pid, its exit once known) and its event journal, under
//! `<data root>\containers\<id>\`. HCS keeps the compute system itself.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use berth_types::{ContainerId, Event, ExitStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::hcs::Schema;

const RECORD: &str = "record.json";
const JOURNAL: &str = "events.jsonl";

/// A container's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Record {
    pub id: ContainerId,
    pub created: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub bundle: PathBuf,
    pub image: Option<String>,
    pub args: Vec<String>,
    /// The HCS schema it was created with, to reopen it with the same DLL.
    pub schema: Schema,
    pub hyperv: bool,
    pub init_pid: Option<u32>,
    pub init_cwd: String,
    pub memory_limit: Option<u64>,
    pub exit: Option<ExitStatus>,
}

/// The record dir of `id` under the data root.
pub(super) fn dir(data_root: &Path, id: &ContainerId) -> PathBuf {
    containers_dir(data_root).join(id.as_str())
}

/// Where every record dir lives.
pub(super) fn containers_dir(data_root: &Path) -> PathBuf {
    data_root.join("containers")
}

pub(super) fn read(dir: &Path) -> io::Result<Record> {
    let text = std::fs::read(dir.join(RECORD))?;
    serde_json::from_slice(&text).map_err(io::Error::other)
}

/// Write the record whole, through a temporary file, so a crash leaves the old
/// one or the new one.
pub(super) fn write(dir: &Path, record: &Record) -> io::Result<()> {
    let tmp = dir.join(".record.json.tmp");
    let text = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(RECORD))
}

/// The event journal of one container: appended to in order, read back whole.
#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    next_seq: u64,
}

impl Journal {
    /// The journal in `dir`, continuing its numbering.
    pub(super) fn open(dir: &Path) -> Self {
        let path = dir.join(JOURNAL);
        let next_seq = read_events(&path).last().map_or(1, |e| e.seq + 1);
        Self { path, next_seq }
    }

    /// The next sequence number, taken.
    pub(super) fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub(super) fn append(&self, event: &Event) -> io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?
            .write_all(&line)
    }

    pub(super) fn events(&self) -> Vec<Event> {
        read_events(&self.path)
    }
}

/// Every event in the journal at `path`; lines that do not parse are skipped.
pub(super) fn read_events(path: &Path) -> Vec<Event> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

/// The journal file of the record dir `dir`.
pub(super) fn journal_path(dir: &Path) -> PathBuf {
    dir.join(JOURNAL)
}
