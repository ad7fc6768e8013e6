//! A process's stdio as the shim holds it: pipes to the process, copier threads
//! that drain them into the caller's FIFOs (while a caller is attached) and into the
//! container's log, so output is never lost and readers reach EOF at exit.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// A pipe whose both ends are close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

fn clear_nonblock(f: &File) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(f.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Opens the caller's FIFO for writing without blocking when nobody reads it:
/// `None` then (the caller went away; the log still gets everything).
pub fn open_fifo_writer(path: &Path) -> io::Result<Option<File>> {
    match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => {
            clear_nonblock(&f)?;
            Ok(Some(f))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether anybody has the FIFO at `path` open for reading (an empty path: no).
/// A writer's open that would not wait fails with ENXIO when nobody does.
pub fn fifo_has_reader(path: &str) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    !path.is_empty()
        && std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .is_ok()
}

/// Opens the caller's stdin FIFO for reading without waiting for a writer.
pub fn open_fifo_reader(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    clear_nonblock(&f)?;
    Ok(f)
}

/// Counts running copiers so that an exit can wait for its output to drain.
#[derive(Default)]
pub struct IoGroup {
    active: Mutex<usize>,
    cond: Condvar,
    /// A copier found its caller still reading when the output ended.
    read_to_the_end: std::sync::atomic::AtomicBool,
}

impl IoGroup {
    /// Whether a caller read one of the outputs up to its end: it was there when
    /// the shim was about to close its FIFO.
    pub fn read_to_the_end(&self) -> bool {
        self.read_to_the_end
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn enter(self: &Arc<Self>) -> IoGuard {
        *self.active.lock().unwrap() += 1;
        IoGuard(self.clone())
    }

    /// Waits until every copier finished, or `timeout` passed (a daemon in the
    /// container may hold the pipe open forever).
    pub fn wait(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut n = self.active.lock().unwrap();
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            n = self.cond.wait_timeout(n, left).unwrap().0;
        }
    }
}

struct IoGuard(Arc<IoGroup>);

impl Drop for IoGuard {
    fn drop(&mut self) {
        let mut n = self.0.active.lock().unwrap();
        *n -= 1;
        self.0.cond.notify_all();
    }
}

/// A process's log in the CRI format: `TIME STREAM F|P DATA`, one record per line
/// of output (`P` when the line continues in the next record).
pub struct Log {
    file: File,
    path: std::path::PathBuf,
    /// Bytes in the current file.
    size: u64,
    /// Past this many bytes (of both files) the oldest half goes.
    max: u64,
}

/// Default log limit per process: 100 MiB.
pub const DEFAULT_LOG_MAX: u64 = 100 << 20;

impl Log {
    /// Opens (appending to) the log at `path`, kept under `max` bytes.
    pub fn open(path: &Path, max: u64) -> io::Result<Arc<Mutex<Self>>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(Arc::new(Mutex::new(Self {
            file,
            path: path.to_owned(),
            size,
            max: max.max(4096),
        })))
    }

    /// Keeps the log within its limit: the current file becomes `<path>.1` and the
    /// previous `.1` (the oldest bytes) goes; a `dropped` record in the new file
    /// says how many bytes of output were lost. This is the only loss of output.
    fn rotate(&mut self) -> io::Result<()> {
        let old = self.path.with_extension("log.1");
        let dropped = data_bytes(&old);
        std::fs::rename(&self.path, &old)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        self.size = 0;
        if dropped > 0 {
            let time = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
            let rec = format!("{time} dropped F {dropped}\n");
            self.file.write_all(rec.as_bytes())?;
            self.size += rec.len() as u64;
        }
        Ok(())
    }

    fn write(&mut self, stream: &str, data: &[u8]) -> io::Result<()> {
        let time = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
        let mut out = Vec::with_capacity(data.len() + 64);
        let mut rest = data;
        while !rest.is_empty() {
            let (chunk, tag, next) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], "F", &rest[i + 1..]),
                None => (rest, "P", &rest[rest.len()..]),
            };
            out.extend_from_slice(time.as_bytes());
            out.push(b' ');
            out.extend_from_slice(stream.as_bytes());
            out.push(b' ');
            out.extend_from_slice(tag.as_bytes());
            out.push(b' ');
            out.extend_from_slice(chunk);
            out.push(b'\n');
            rest = next;
        }
        if self.size + out.len() as u64 > self.max / 2 && self.size > 0 {
            self.rotate()?;
        }
        self.size += out.len() as u64;
        self.file.write_all(&out)
    }
}

/// Output bytes recorded in the log file at `path` (0 if there is none).
fn data_bytes(path: &Path) -> u64 {
    use std::io::BufRead;
    let Ok(f) = File::open(path) else {
        return 0;
    };
    let mut total = 0u64;
    let mut reader = io::BufReader::new(f);
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        // TIME STREAM TAG DATA\n
        let mut fields = line.splitn(4, |&b| b == b' ');
        let (_, stream, tag) = (fields.next(), fields.next(), fields.next());
        let data = fields.next().map_or(0, |d| d.len().saturating_sub(1)) as u64;
        match (stream, tag) {
            (Some(b"dropped"), _) => {
                let n = std::str::from_utf8(fields_last(&line))
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok());
                total += n.unwrap_or(0);
            }
            (_, Some(b"F")) => total += data + 1,
            _ => total += data,
        }
        line.clear();
    }
    total
}

fn fields_last(line: &[u8]) -> &[u8] {
    line.rsplit(|&b| b == b' ').next().unwrap_or_default()
}

/// How long a process's output waits for its caller to open the FIFO at first.
const FIRST_READER_WAIT: Duration = Duration::from_secs(2);

/// Drains `src` (the process's stdout or stderr pipe) into the log and the FIFO.
/// A FIFO whose reader vanished is dropped; the log keeps going.
pub fn copy_out(
    group: &Arc<IoGroup>,
    mut src: File,
    fifo_path: Option<std::path::PathBuf>,
    log: Option<Arc<Mutex<Log>>>,
    stream: &'static str,
) -> io::Result<()> {
    // Opened before the process runs, so its first bytes reach the caller. A
    // caller that has not opened its end yet (containerd's client opens it in the
    // background) is waited for, briefly, before the first byte is read: until
    // then the output waits in the pipe rather than being lost to the FIFO.
    let mut fifo = match &fifo_path {
        Some(p) => open_fifo_writer(p)?,
        None => None,
    };
    let guard = group.enter();
    thread::Builder::new()
        .name(format!("io-{stream}"))
        .stack_size(64 * 1024)
        .spawn(move || {
            if let (None, Some(p)) = (&fifo, &fifo_path) {
                let deadline = Instant::now() + FIRST_READER_WAIT;
                while fifo.is_none() && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(2));
                    fifo = open_fifo_writer(p).ok().flatten();
                }
            }
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                if let Some(log) = &log {
                    let _ = log.lock().unwrap().write(stream, &buf[..n]);
                }
                if fifo.is_none() {
                    // A caller that went away may come back (a restored client
                    // opens the same FIFO again); meanwhile the log has it all.
                    if let Some(p) = &fifo_path {
                        fifo = open_fifo_writer(p).ok().flatten();
                    }
                }
                if let Some(f) = &mut fifo {
                    if f.write_all(&buf[..n]).is_err() {
                        fifo = None;
                    }
                }
            }
            // Looked at while this end is still open: a caller that lives has
            // not seen the end yet, so it still reads.
            if fifo_path
                .as_deref()
                .is_some_and(|p| fifo_has_reader(&p.to_string_lossy()))
            {
                guard
                    .0
                    .read_to_the_end
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
            drop(fifo);
            drop(guard);
        })?;
    Ok(())
}

/// Copies the caller's stdin FIFO into the process's stdin (pipe or terminal).
/// EOF on the FIFO closes the pipe, so the process sees EOF too. The copy also
/// stops, after forwarding what is already buffered, once `closer`'s other end is
/// closed (CloseIO, or the process exited), so the thread never outlives its use.
pub fn copy_in(fifo: File, mut dst: File, closer: OwnedFd) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    thread::Builder::new()
        .name("io-stdin".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut fifo = fifo;
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let (fifo_ready, closed) = {
                    let mut fds = [
                        PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
                        PollFd::new(closer.as_fd(), PollFlags::POLLIN),
                    ];
                    match poll(&mut fds, PollTimeout::NONE) {
                        Ok(_) => {}
                        Err(nix::errno::Errno::EINTR) => continue,
                        Err(_) => return,
                    }
                    let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
                    (ready(&fds[0]), ready(&fds[1]))
                };
                if fifo_ready {
                    match fifo.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            if dst.write_all(&buf[..n]).is_err() {
                                return;
                            }
                            continue;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => return,
                    }
                }
                if closed {
                    return;
                }
            }
        })
        .expect("spawn io thread");
}

/// The console socket libcontainer sends a terminal's master to.
pub struct ConsoleSocket {
    path: std::path::PathBuf,
    thread: thread::JoinHandle<io::Result<OwnedFd>>,
}

impl ConsoleSocket {
    /// Listens at `path` and starts waiting for the master in the background.
    pub fn bind(path: &Path) -> io::Result<Self> {
        let _ = std::fs::remove_file(path);
        let listener = std::os::unix::net::UnixListener::bind(path)?;
        let thread = thread::Builder::new()
            .name("console".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let (conn, _) = listener.accept()?;
                crate::sys::recv_fd(&conn)
            })?;
        Ok(Self {
            path: path.to_owned(),
            thread,
        })
    }

    /// The master, once the container process has sent it.
    pub fn master(self) -> io::Result<File> {
        let r = self
            .thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("console thread panicked")));
        let _ = std::fs::remove_file(&self.path);
        r.map(File::from)
    }

    /// Gives up waiting (the container process was never made).
    pub fn cancel(self) {
        // Unblock the accept; the receive then fails and the thread ends.
        let _ = std::os::unix::net::UnixStream::connect(&self.path);
        let _ = self.thread.join();
        let _ = std::fs::remove_file(&self.path);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reassembles the output bytes of a log, and the dropped count it records.
    fn replay(path: &Path) -> (Vec<u8>, u64) {
        let text = std::fs::read(path).unwrap();
        let (mut out, mut dropped) = (Vec::new(), 0);
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let f: Vec<&[u8]> = line.splitn(4, |&b| b == b' ').collect();
            match (f[1], f[2]) {
                (b"dropped", _) => {
                    dropped += std::str::from_utf8(f[3]).unwrap().parse::<u64>().unwrap()
                }
                (_, b"F") => {
                    out.extend_from_slice(f[3]);
                    out.push(b'\n');
                }
                _ => out.extend_from_slice(f[3]),
            }
        }
        (out, dropped)
    }

    #[test]
    fn log_keeps_exact_bytes_and_counts_what_it_drops() {
        let dir = std::env::temp_dir().join(format!("berth-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("init.log");
        let log = Log::open(&path, 16 * 1024).unwrap();
        let mut all = Vec::new();
        for i in 0..500u32 {
            let chunk = format!("line {i} partial-").into_bytes();
            let chunk2 = b"rest\n".to_vec();
            log.lock().unwrap().write("stdout", &chunk).unwrap();
            log.lock().unwrap().write("stdout", &chunk2).unwrap();
            all.extend(chunk);
            all.extend(chunk2);
        }
        let (older, d1) = replay(&path.with_extension("log.1"));
        let (newer, d2) = replay(&path);
        let kept: Vec<u8> = older.into_iter().chain(newer).collect();
        let dropped = (d1 + d2) as usize;
        assert!(dropped > 0, "the limit must have dropped something");
        assert_eq!(
            dropped + kept.len(),
            all.len(),
            "every byte is either kept or counted as dropped"
        );
        assert_eq!(
            &all[dropped..],
            &kept[..],
            "what is kept is exactly the newest bytes"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
