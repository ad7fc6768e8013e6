//! Reading a process's log as the shim keeps it (`TIME STREAM F|P DATA` lines, the
//! CRI format; older half in `<process>.log.1`), so exact bytes and timestamps
//! come back, and a `dropped` record tells how much the size limit discarded.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

/// Which stream a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One record of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Output: `data` without the newline; `partial` when the line goes on.
    Output {
        /// When the shim read it.
        time: DateTime<Utc>,
        /// Its stream.
        stream: Stream,
        /// The bytes (no trailing newline).
        data: Vec<u8>,
        /// The line continues in the next record of the stream.
        partial: bool,
    },
    /// The size limit dropped this many bytes of older output.
    Dropped {
        /// When.
        time: DateTime<Utc>,
        /// How many bytes.
        bytes: u64,
    },
}

/// Parses one log line (without its newline); `None` for a malformed one.
pub fn parse(line: &[u8]) -> Option<Record> {
    let mut f = line.splitn(4, |&b| b == b' ');
    let time = DateTime::parse_from_rfc3339(std::str::from_utf8(f.next()?).ok()?)
        .ok()?
        .with_timezone(&Utc);
    let stream = f.next()?;
    let tag = f.next()?;
    let data = f.next().unwrap_or_default();
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        b"dropped" => {
            let bytes = std::str::from_utf8(data).ok()?.trim().parse().ok()?;
            return Some(Record::Dropped { time, bytes });
        }
        _ => return None,
    };
    Some(Record::Output {
        time,
        stream,
        data: data.to_vec(),
        partial: tag == b"P",
    })
}

/// The log files of `process` under a container's record dir, oldest first.
pub fn files(record_dir: &Path, process: &str) -> [PathBuf; 2] {
    let cur = record_dir.join("logs").join(format!("{process}.log"));
    [cur.with_extension("log.1"), cur]
}

/// Follows one log file from an offset, surviving its rotation.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
    inode: u64,
    pending: Vec<u8>,
}

impl Tail {
    /// Starts at the beginning of `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            inode: 0,
            pending: Vec::new(),
        }
    }

    /// Records appended since the last call (complete lines only).
    pub fn poll(&mut self) -> std::io::Result<Vec<Record>> {
        use std::os::unix::fs::MetadataExt;
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if meta.ino() != self.inode || meta.len() < self.offset {
            // Rotated: the file we followed became `.1`; this one is new.
            self.inode = meta.ino();
            self.offset = 0;
            self.pending.clear();
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.pending.extend_from_slice(&buf);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(i) = self.pending[start..].iter().position(|&b| b == b'\n') {
            if let Some(r) = parse(&self.pending[start..start + i]) {
                out.push(r);
            }
            start += i + 1;
        }
        self.pending.drain(..start);
        Ok(out)
    }
}

/// Every record of one log file (none if it does not exist).
pub fn read_file(path: &Path) -> std::io::Result<Vec<Record>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in BufReader::new(f).split(b'\n') {
        if let Some(r) = parse(&line?) {
            out.push(r);
        }
    }
    Ok(out)
}

/// Every record of `process`'s log, oldest first.
pub fn read_all(record_dir: &Path, process: &str) -> std::io::Result<Vec<Record>> {
    let mut out = Vec::new();
    for path in files(record_dir, process) {
        out.extend(read_file(&path)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cri_lines() {
        let r = parse(b"2026-12-03T16:00:00.000000000Z stdout F hello world").unwrap();
        match r {
            Record::Output {
                stream,
                data,
                partial,
                ..
            } => {
                assert_eq!(stream, Stream::Stdout);
                assert_eq!(data, b"hello world");
                assert!(!partial);
            }
            _ => panic!("not output"),
        }
        assert!(matches!(
            parse(b"2026-12-03T16:00:00Z stderr P "),
            Some(Record::Output { partial: true, .. })
        ));
        assert_eq!(
            parse(b"2026-12-03T16:00:00Z dropped F 42"),
            Some(Record::Dropped {
                time: "2026-12-03T16:00:00Z".parse().unwrap(),
                bytes: 42
            })
        );
        assert!(parse(b"garbage").is_none());
    }
}
