//! Following a container's event journal from a cursor, delivering each event to
//! the engine's sink once and in order.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_types::{Event, EventKind};
use tokio::sync::watch;

use crate::types::EventSink;

/// Poll interval while following a journal.
const TICK: Duration = Duration::from_millis(10);

/// How many delivered events a follower remembers for [`Follower::wait_for`].
const HISTORY: usize = 256;

/// A running follower: `delivered` holds the latest events handed to the sink.
pub struct Follower {
    pub delivered: watch::Receiver<Vec<Event>>,
    poke: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Follower {
    /// Follows `path` from after sequence number `after`, until the delete event.
    pub fn start(path: PathBuf, after: u64, sink: Arc<dyn EventSink>) -> Self {
        let (tx, rx) = watch::channel(Vec::new());
        let poke = Arc::new(tokio::sync::Notify::new());
        let poked = poke.clone();
        let task = tokio::spawn(async move {
            let mut offset = 0u64;
            let mut last = after;
            loop {
                let (events, new_offset) = {
                    let path = path.clone();
                    match tokio::task::spawn_blocking(move || read_from(&path, offset)).await {
                        Ok(Ok(r)) => r,
                        _ => (Vec::new(), offset),
                    }
                };
                offset = new_offset;
                let mut done = false;
                for ev in events {
                    if ev.seq <= last {
                        continue;
                    }
                    last = ev.seq;
                    done |= ev.kind == EventKind::Delete;
                    sink.event(&ev);
                    tx.send_modify(|h| {
                        if h.len() == HISTORY {
                            h.remove(0);
                        }
                        h.push(ev);
                    });
                }
                if done || !path.parent().is_some_and(|p| p.exists()) {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = poked.notified() => {}
                }
            }
        });
        Self {
            delivered: rx,
            poke,
            task,
        }
    }

    /// Reads the journal now rather than at the next tick (an event was just made).
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Waits until an event matching `pred` was delivered.
    pub async fn wait_for(&mut self, pred: impl Fn(&Event) -> bool) {
        let _ = self.delivered.wait_for(|h| h.iter().any(&pred)).await;
    }
}

/// Complete lines from `offset` on, and the offset after the last complete line.
fn read_from(path: &std::path::Path, offset: u64) -> std::io::Result<(Vec<Event>, u64)> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(f);
    let mut events = Vec::new();
    let mut pos = offset;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        pos += n as u64;
        if let Ok(ev) = serde_json::from_str::<Event>(&line) {
            events.push(ev);
        }
    }
    Ok((events, pos))
}

/// Appends the exit of a container whose shim is gone (the shim, the journal's
/// only other writer, is dead), continuing its sequence.
pub fn append_exit(
    path: &std::path::Path,
    id: &berth_types::ContainerId,
    exit: &berth_types::ExitStatus,
) -> std::io::Result<()> {
    use std::io::Write;
    let seq = read_all(path).last().map_or(1, |e| e.seq + 1);
    let ev = Event {
        seq,
        time: exit.exited_at,
        id: id.clone(),
        kind: EventKind::Exit,
        process_id: Some(berth_types::ProcessId::init()),
        pid: None,
        exit_code: Some(exit.code),
        oom_killed: Some(exit.oom_killed),
    };
    let mut line = serde_json::to_vec(&ev).map_err(std::io::Error::other)?;
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&line)
}

/// Every event in the journal at `path` (for `berth events` and catch-up).
pub fn read_all(path: &std::path::Path) -> Vec<Event> {
    read_from(path, 0).map(|(e, _)| e).unwrap_or_default()
}
