//! `berth logs` and `berth events`: reading what the shims keep.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth::logs::{Record, Stream, Tail};
use berth::{Client, ContainerStatus, Event};
use chrono::{DateTime, Utc};
use clap::Args;

use crate::{names, output};

/// How often `-f` looks for more.
const POLL: Duration = Duration::from_millis(100);

/// `--tail N`, or Docker's `all`.
fn parse_tail(s: &str) -> std::result::Result<usize, String> {
    match s {
        "all" => Ok(usize::MAX),
        n => n
            .parse()
            .map_err(|_| format!("{n:?} is not a number of lines or \"all\"")),
    }
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing new output until the container exits.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines (`all`: every line, as without it).
    #[arg(long, value_parser = parse_tail)]
    pub tail: Option<usize>,
    /// Prefix each line with its time.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only output since this time (RFC 3339, Unix seconds, or a duration ago: 10m).
    #[arg(long)]
    pub since: Option<String>,
    /// The container.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// `json`: one object per line.
    #[arg(long)]
    pub format: Option<String>,
    /// Only events since this time (RFC 3339, Unix seconds, or a duration ago: 10m).
    #[arg(long)]
    pub since: Option<String>,
    /// Stop at this time (as --since); without it, follow live events.
    #[arg(long)]
    pub until: Option<String>,
    /// `container=NAME`.
    #[arg(long)]
    pub filter: Vec<String>,
}

/// A time as Docker takes it: RFC 3339, Unix seconds (`1733328000`, `1733328000.5`),
/// or a duration before now (`10m`, `1h30m`, `45s`).
fn parse_time(flag: &str, t: &Option<String>) -> Result<Option<DateTime<Utc>>> {
    t.as_ref()
        .map(|s| {
            time_of(s, Utc::now()).with_context(|| {
                format!(
                    "parse {flag}: {s:?} is not an RFC 3339 time, Unix seconds or a \
                     duration such as 10m"
                )
            })
        })
        .transpose()
}

fn time_of(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            let nanos = (secs.fract() * 1e9) as u32;
            return DateTime::from_timestamp(secs.trunc() as i64, nanos).context("out of range");
        }
    }
    let ago = duration_of(s).context("not a time")?;
    now.checked_sub_signed(ago).context("out of range")
}

/// `1h30m`, `10m`, `45s`, `500ms`: a sequence of numbers with units.
fn duration_of(s: &str) -> Option<chrono::TimeDelta> {
    let mut total = chrono::TimeDelta::zero();
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit] {
            "ms" => chrono::TimeDelta::try_milliseconds(n)?,
            "s" => chrono::TimeDelta::try_seconds(n)?,
            "m" => chrono::TimeDelta::try_minutes(n)?,
            "h" => chrono::TimeDelta::try_hours(n)?,
            _ => return None,
        };
        total = total.checked_add(&part)?;
        rest = &rest[unit..];
    }
    Some(total)
}

struct Printer {
    timestamps: bool,
    at_line_start: [bool; 2],
}

impl Printer {
    fn print(&mut self, r: &Record) -> Result<()> {
        match r {
            Record::Dropped { bytes, .. } => eprintln!(
                "berth: logs: {bytes} bytes of older output were dropped (log size limit)"
            ),
            Record::Output {
                time,
                stream,
                data,
                partial,
            } => {
                let i = usize::from(*stream == Stream::Stderr);
                let mut buf = Vec::with_capacity(data.len() + 40);
                if self.timestamps && self.at_line_start[i] {
                    buf.extend_from_slice(output::time(time).as_bytes());
                    buf.push(b' ');
                }
                buf.extend_from_slice(data);
                if !partial {
                    buf.push(b'\n');
                }
                self.at_line_start[i] = !partial;
                match stream {
                    Stream::Stdout => std::io::stdout().lock().write_all(&buf)?,
                    Stream::Stderr => std::io::stderr().lock().write_all(&buf)?,
                }
            }
        }
        Ok(())
    }
}

fn record_time(r: &Record) -> DateTime<Utc> {
    match r {
        Record::Dropped { time, .. } | Record::Output { time, .. } => *time,
    }
}

pub async fn logs(data_root: &Path, c: &Client, a: &LogsArgs) -> Result<()> {
    let id = names::resolve(data_root, &a.name)?;
    let since = parse_time("--since", &a.since)?;
    let dir = data_root.join("containers").join(id.as_str());
    let [older, current] = berth::logs::files(&dir, "init");
    // The current file is read through the tail that `-f` goes on following.
    let mut tail = Tail::new(current);
    let mut records = berth::logs::read_file(&older).context("read log")?;
    records.extend(tail.poll().context("read log")?);
    if let Some(since) = since {
        records.retain(|r| record_time(r) >= since);
    }
    if let Some(n) = a.tail {
        // Keep the records of the last n lines; output that ends without a
        // newline is a line too, as Docker counts.
        let mut lines = 0;
        let mut start = records.len();
        let last = records.len().saturating_sub(1);
        for (i, r) in records.iter().enumerate().rev() {
            if let Record::Output { partial, .. } = r {
                if !partial || i == last {
                    if lines == n {
                        break;
                    }
                    lines += 1;
                }
            }
            start = i;
        }
        records.drain(..start);
    }
    // The size limit's records, one per rotation, add up to what was lost: say it
    // once, first.
    let dropped: u64 = records
        .iter()
        .map(|r| match r {
            Record::Dropped { bytes, .. } => *bytes,
            Record::Output { .. } => 0,
        })
        .sum();
    if dropped > 0 {
        eprintln!(
            "berth: logs {}: {dropped} bytes of older output were dropped (log size limit)",
            a.name
        );
    }
    records.retain(|r| matches!(r, Record::Output { .. }));
    let mut p = Printer {
        timestamps: a.timestamps,
        at_line_start: [true, true],
    };
    for r in &records {
        p.print(r)?;
    }
    if !a.follow {
        return Ok(());
    }
    loop {
        let running = matches!(
            c.state(&id).await.map(|s| s.status),
            Ok(ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Created)
        );
        for r in tail.poll().context("follow log")? {
            p.print(&r)?;
        }
        if !running {
            // The shim drains a process's output before it records the exit.
            for r in tail.poll().context("follow log")? {
                p.print(&r)?;
            }
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

fn event_line(e: &Event, json: bool) -> String {
    if json {
        return serde_json::to_string(e).unwrap_or_default();
    }
    let mut attrs = Vec::new();
    if let Some(p) = &e.process_id {
        attrs.push(format!("process={p}"));
    }
    if let Some(pid) = e.pid {
        attrs.push(format!("pid={pid}"));
    }
    if let Some(code) = e.exit_code {
        attrs.push(format!("exitCode={code}"));
    }
    if e.oom_killed == Some(true) {
        attrs.push("oomKilled=true".into());
    }
    let line = format!(
        "{} container {} {}",
        output::time(&e.time),
        e.kind.as_str(),
        e.id
    );
    if attrs.is_empty() {
        line
    } else {
        format!("{line} ({})", attrs.join(", "))
    }
}

pub async fn events(root: &Path, data_root: &Path, a: &EventsArgs) -> Result<()> {
    let json = match a.format.as_deref() {
        None => false,
        Some("json") => true,
        Some(f) => bail!("unknown format {f:?}: use json"),
    };
    let since = parse_time("--since", &a.since)?;
    let until = parse_time("--until", &a.until)?;
    let mut only = None;
    for f in &a.filter {
        match f.split_once('=') {
            Some(("container", name)) => {
                only = Some(
                    names::resolve(data_root, name)
                        .map(|i| i.to_string())
                        .unwrap_or_else(|_| name.to_owned()),
                )
            }
            _ => bail!("parse --filter: {f:?}: use container=NAME"),
        }
    }
    let show = |e: &Event| {
        only.as_ref().is_none_or(|o| o == e.id.as_str())
            && since.is_none_or(|s| e.time >= s)
            && until.is_none_or(|u| e.time <= u)
    };
    let print = |events: Vec<Event>| -> Result<()> {
        let mut out = std::io::stdout().lock();
        for e in events.iter().filter(|e| show(e)) {
            writeln!(out, "{}", event_line(e, json))?;
        }
        out.flush()?;
        Ok(())
    };
    let mut log = HostLog::open(berth_types::event_log::path(root));
    if since.is_some() || until.is_some() {
        // History first: the log that was moved aside, then the current one.
        let old = std::fs::read(berth_types::event_log::old_path(root)).unwrap_or_default();
        print(parse_lines(&old).0)?;
    } else {
        // Without --since, only live events, as Docker does.
        log.skip_to_end();
    }
    loop {
        print(log.read_new())?;
        if until.is_some_and(|u| Utc::now() > u) {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The host's event log, read as it grows, across its moves aside.
struct HostLog {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
    inode: Option<u64>,
    /// The start of a line not yet whole.
    partial: Vec<u8>,
}

impl HostLog {
    fn open(path: std::path::PathBuf) -> Self {
        let file = std::fs::File::open(&path).ok();
        let inode = file.as_ref().and_then(inode_of);
        Self {
            path,
            file,
            inode,
            partial: Vec::new(),
        }
    }

    fn skip_to_end(&mut self) {
        if let Some(f) = &mut self.file {
            let _ = std::io::Seek::seek(f, std::io::SeekFrom::End(0));
        }
    }

    /// The events appended since the last call: the rest of the file being read,
    /// then, if the log was moved aside meanwhile, the new one from its start.
    fn read_new(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            if let Some(f) = &mut self.file {
                let _ = std::io::Read::read_to_end(f, &mut self.partial);
                let (mut got, used) = parse_lines(&self.partial);
                self.partial.drain(..used);
                events.append(&mut got);
            }
            let now = std::fs::File::open(&self.path).ok();
            let inode = now.as_ref().and_then(inode_of);
            if inode.is_none() || inode == self.inode {
                return events;
            }
            self.file = now;
            self.inode = inode;
            self.partial.clear();
        }
    }
}

fn inode_of(f: &std::fs::File) -> Option<u64> {
    std::os::unix::fs::MetadataExt::ino(&f.metadata().ok()?).into()
}

/// The events of the whole lines in `bytes`, and how many bytes they took.
fn parse_lines(bytes: &[u8]) -> (Vec<Event>, usize) {
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let events = bytes[..whole]
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Event>(l).ok())
        .collect();
    (events, whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_bytes(id: &str, seq: u64) -> Vec<u8> {
        let e = Event {
            seq,
            time: Utc::now(),
            id: berth::ContainerId::new(id).unwrap(),
            kind: berth::EventKind::Start,
            process_id: None,
            pid: None,
            exit_code: None,
            oom_killed: None,
        };
        let mut b = serde_json::to_vec(&e).unwrap();
        b.push(b'\n');
        b
    }

    /// A follower of the host log gets every event once: a line written in two
    /// parts whole, and across a move aside the rest of the old log, then the new.
    #[test]
    fn host_log_is_read_whole_lines_once_across_a_move_aside() {
        let root = std::env::temp_dir().join(format!("berth-hostlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let seqs = |v: Vec<Event>| {
            v.iter()
                .map(|e| (e.id.to_string(), e.seq))
                .collect::<Vec<_>>()
        };
        let mut log = HostLog::open(berth_types::event_log::path(&root));
        assert!(log.read_new().is_empty(), "no log yet");
        berth_types::event_log::append(&root, &event_bytes("a", 1)).unwrap();
        let two = event_bytes("a", 2);
        let (head, tail) = two.split_at(10);
        berth_types::event_log::append(&root, head).unwrap();
        assert_eq!(seqs(log.read_new()), [("a".into(), 1)]);
        berth_types::event_log::append(&root, tail).unwrap();
        berth_types::event_log::append(&root, &event_bytes("a", 3)).unwrap();
        // Moved aside, as a writer does past the limit, then a new log begins.
        std::fs::rename(
            berth_types::event_log::path(&root),
            berth_types::event_log::old_path(&root),
        )
        .unwrap();
        berth_types::event_log::append(&root, &event_bytes("b", 1)).unwrap();
        assert_eq!(
            seqs(log.read_new()),
            [("a".into(), 2), ("a".into(), 3), ("b".into(), 1)]
        );
        assert!(log.read_new().is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn times_as_docker_takes_them() {
        let now = DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| time_of(s, now).map(|t| t.to_rfc3339()).ok();
        assert_eq!(
            at("2026-12-04T11:00:00Z").as_deref(),
            Some("2026-12-04T11:00:00+00:00")
        );
        assert_eq!(at("10m").as_deref(), Some("2026-12-04T11:50:00+00:00"));
        assert_eq!(at("1h30m").as_deref(), Some("2026-12-04T10:30:00+00:00"));
        assert_eq!(at("0").as_deref(), Some("1970-01-01T00:00:00+00:00"));
        assert_eq!(
            at("1733313600.5").as_deref(),
            Some("2024-12-04T12:00:00.500+00:00")
        );
        for bad in ["", "10x", "m", "-5", "yesterday", "1h-3m"] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }
}
