//! Following a container's event journal from a cursor, delivering each event to
//! the engine's sink once and in order.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use berth_types::{Event, EventKind};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::sys::InotifyFd;
use tokio::io::unix::AsyncFd;
use tokio::sync::{watch, Notify};

use crate::types::EventSink;

/// Poll interval while following a journal that inotify cannot watch.
const TICK: Duration = Duration::from_millis(10);

/// Poll interval of a watched journal: a safety net only, as inotify wakes the
/// follower when the shim appends.
const WATCHED_TICK: Duration = Duration::from_secs(1);

/// How many delivered events a follower remembers for [`Follower::wait_for`].
const HISTORY: usize = 256;

/// A running follower: `delivered` holds the latest events handed to the sink.
pub struct Follower {
    pub delivered: watch::Receiver<Vec<Event>>,
    poke: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Follower {
    /// Follows `path` from after sequence number `after`, until the delete event,
    /// woken by `watcher` when the journal changes (polling without one).
    pub fn start(
        path: PathBuf,
        after: u64,
        sink: Arc<dyn EventSink>,
        watcher: Option<Arc<Watcher>>,
    ) -> Self {
        let (tx, rx) = watch::channel(Vec::new());
        let poke = Arc::new(Notify::new());
        let poked = poke.clone();
        let task = tokio::spawn(async move {
            let mut offset = 0u64;
            let mut last = after;
            let mut watch = None;
            loop {
                // Watch before reading, so that no append falls between the two.
                if watch.as_ref().is_none_or(|w: &Watch| !w.on_journal) {
                    watch = watcher.as_ref().and_then(|w| w.watch(&path, &poked));
                }
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
                let tick = if watch.is_some() { WATCHED_TICK } else { TICK };
                tokio::select! {
                    _ = tokio::time::sleep(tick) => {}
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

/// Wakes followers when their journals change: one inotify instance per client,
/// shared by all its followers (the per-user limit on inotify instances is small,
/// the one on watches large).
pub struct Watcher {
    inotify: AsyncFd<InotifyFd>,
    waiters: Mutex<HashMap<WatchDescriptor, Vec<Weak<Notify>>>>,
}

/// A follower's registration; the watch goes with the last follower of a file.
struct Watch {
    watcher: Arc<Watcher>,
    wd: WatchDescriptor,
    notify: Weak<Notify>,
    /// On the journal itself; else on its directory, until the journal exists.
    on_journal: bool,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut waiters = self.watcher.waiters.lock().unwrap();
        if let Some(list) = waiters.get_mut(&self.wd) {
            list.retain(|n| !n.ptr_eq(&self.notify) && n.strong_count() > 0);
            if list.is_empty() {
                waiters.remove(&self.wd);
                // Gone already when the file was removed; nothing to undo then.
                let _ = self.watcher.inotify.get_ref().0.rm_watch(self.wd);
            }
        }
    }
}

impl Watcher {
    /// A watcher with its reading task on the current runtime; `None` where inotify
    /// or the runtime's IO driver is not available (followers then poll).
    pub fn start() -> Option<Arc<Self>> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| tracing::debug!(error = %e, "no inotify; journals are polled"))
            .ok()?;
        let inotify = super::sys::register_inotify(inotify)
            .map_err(|e| tracing::debug!(error = %e, "no IO driver; journals are polled"))
            .ok()?;
        let watcher = Arc::new(Self {
            inotify,
            waiters: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&watcher);
        tokio::spawn(async move {
            while let Some(w) = weak.upgrade() {
                let Ok(mut ready) = w.inotify.readable().await else {
                    return;
                };
                match w.inotify.get_ref().0.read_events() {
                    Ok(events) => {
                        let waiters = w.waiters.lock().unwrap();
                        for ev in events {
                            for n in waiters.get(&ev.wd).into_iter().flatten() {
                                if let Some(n) = n.upgrade() {
                                    n.notify_one();
                                }
                            }
                        }
                    }
                    Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
                    Err(e) => {
                        tracing::warn!(error = %e, "reading inotify failed; journals are polled");
                        return;
                    }
                }
            }
        });
        Some(watcher)
    }

    /// Registers `notify` for changes of `journal` (or, while it does not exist,
    /// for files made in its directory).
    fn watch(self: &Arc<Self>, journal: &Path, notify: &Arc<Notify>) -> Option<Watch> {
        let ino = &self.inotify.get_ref().0;
        let on_file = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        let on_dir =
            AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_DELETE_SELF;
        let (wd, on_journal) = match ino.add_watch(journal, on_file) {
            Ok(wd) => (wd, true),
            Err(_) => (ino.add_watch(journal.parent()?, on_dir).ok()?, false),
        };
        self.waiters
            .lock()
            .unwrap()
            .entry(wd)
            .or_default()
            .push(Arc::downgrade(notify));
        Some(Watch {
            watcher: self.clone(),
            wd,
            notify: Arc::downgrade(notify),
            on_journal,
        })
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
/// only other writer, is dead), continuing its sequence: first an exit with the
/// same status for every exec that started and has none, then init's.
pub fn append_exit(
    path: &std::path::Path,
    id: &berth_types::ContainerId,
    exit: &berth_types::ExitStatus,
    after: u64,
) -> std::io::Result<()> {
    use std::io::Write;
    let events = read_all(path);
    // An empty journal of a container that ran before goes on from its last Seq.
    let first = events.last().map_or(after + 1, |e| e.seq + 1);
    let ended = |p: &berth_types::ProcessId| {
        events
            .iter()
            .any(|e| e.kind == EventKind::Exit && e.process_id.as_ref() == Some(p))
    };
    let mut running: Vec<berth_types::ProcessId> = events
        .iter()
        .filter(|e| e.kind == EventKind::ExecStarted)
        .filter_map(|e| e.process_id.clone())
        .filter(|p| !p.is_init() && !ended(p))
        .collect();
    running.dedup();
    running.push(berth_types::ProcessId::init());
    let mut out = Vec::new();
    for (seq, process) in (first..).zip(running) {
        let ev = Event {
            seq,
            time: exit.exited_at,
            id: id.clone(),
            kind: EventKind::Exit,
            process_id: Some(process),
            pid: None,
            exit_code: Some(exit.code),
            oom_killed: Some(exit.oom_killed),
        };
        out.extend(serde_json::to_vec(&ev).map_err(std::io::Error::other)?);
        out.push(b'\n');
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&out)?;
    // The journal is `<root>/<id>/events.jsonl`: the host's log is under `<root>`.
    if let Some(root) = path.parent().and_then(Path::parent) {
        let _ = berth_types::event_log::append(root, &out);
    }
    Ok(())
}

/// Every event in the journal at `path` (for `berth events` and catch-up).
pub fn read_all(path: &std::path::Path) -> Vec<Event> {
    read_from(path, 0).map(|(e, _)| e).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn event(seq: u64, kind: EventKind) -> String {
        let ev = Event {
            seq,
            time: chrono::Utc::now(),
            id: berth_types::ContainerId::new("j1").unwrap(),
            kind,
            process_id: None,
            pid: None,
            exit_code: None,
            oom_killed: None,
        };
        let mut line = serde_json::to_string(&ev).unwrap();
        line.push('\n');
        line
    }

    fn append(path: &Path, line: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
    }

    /// inotify, not the safety-net tick, wakes a follower: each append is seen well
    /// before `WATCHED_TICK`, whether the journal existed when following began or
    /// was made afterwards.
    #[tokio::test(flavor = "current_thread")]
    async fn a_watched_journal_wakes_its_follower() {
        let dir = std::env::temp_dir().join(format!("berth-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let watcher = Watcher::start().expect("inotify on this host");
        let mut f = Follower::start(path.clone(), 0, Arc::new(|_: &Event| {}), Some(watcher));
        let soon = WATCHED_TICK / 2;
        // The journal appears after the follower started (a directory watch first).
        tokio::time::sleep(Duration::from_millis(50)).await;
        append(&path, &event(1, EventKind::Create));
        let seen = tokio::time::timeout(soon, f.wait_for(|e| e.seq == 1)).await;
        assert!(
            seen.is_ok(),
            "the new journal's first event was not seen within {soon:?}"
        );
        for seq in 2..5 {
            append(&path, &event(seq, EventKind::Start));
            let seen = tokio::time::timeout(soon, f.wait_for(|e| e.seq == seq)).await;
            assert!(seen.is_ok(), "event {seq} was not seen within {soon:?}");
        }
        append(&path, &event(5, EventKind::Delete));
        let seen = tokio::time::timeout(soon, f.wait_for(|e| e.seq == 5)).await;
        assert!(
            seen.is_ok(),
            "the delete event was not seen within {soon:?}"
        );
        let seqs: Vec<u64> = f.delivered.borrow().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5], "each event once, in order");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
