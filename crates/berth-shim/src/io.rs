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
}

impl IoGroup {
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
}

impl Log {
    pub fn open(path: &Path) -> io::Result<Arc<Mutex<Self>>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(Arc::new(Mutex::new(Self { file })))
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
        self.file.write_all(&out)
    }
}

/// Drains `src` (the process's stdout or stderr pipe) into the log and the FIFO.
/// A FIFO whose reader vanished is dropped; the log keeps going.
pub fn copy_out(
    group: &Arc<IoGroup>,
    mut src: File,
    mut fifo: Option<File>,
    log: Option<Arc<Mutex<Log>>>,
    stream: &'static str,
) {
    let guard = group.enter();
    thread::Builder::new()
        .name(format!("io-{stream}"))
        .stack_size(64 * 1024)
        .spawn(move || {
            let _guard = guard;
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
                if let Some(f) = &mut fifo {
                    if f.write_all(&buf[..n]).is_err() {
                        fifo = None;
                    }
                }
            }
        })
        .expect("spawn io thread");
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
