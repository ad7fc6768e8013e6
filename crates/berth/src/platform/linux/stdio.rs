//! FIFOs for a process's stdio under the container's state dir, opened so that
//! nothing blocks: readers before the shim opens the writers, and stdin read-write
//! so that its opening never waits for the shim.

use std::io;
use std::path::Path;

use nix::sys::stat::Mode;
use tokio::net::unix::pipe;

use crate::types::{ProcessIo, StdioRequest};

/// FIFO paths as passed to the shim (empty: no such stream).
#[derive(Debug, Default)]
pub struct FifoPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
}

fn mkfifo(path: &Path) -> io::Result<()> {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600))?;
    Ok(())
}

/// Makes the requested FIFOs for `process` in `dir` and opens the caller's ends.
pub fn make(dir: &Path, process: &str, req: StdioRequest) -> io::Result<(FifoPaths, ProcessIo)> {
    let mut paths = FifoPaths::default();
    let mut io = ProcessIo::default();
    if req.stdin {
        let p = dir.join(format!("{process}-stdin"));
        mkfifo(&p)?;
        io.stdin = Some(pipe::OpenOptions::new().read_write(true).open_sender(&p)?);
        paths.stdin = p.to_string_lossy().into_owned();
    }
    if req.stdout {
        let p = dir.join(format!("{process}-stdout"));
        mkfifo(&p)?;
        io.stdout = Some(pipe::OpenOptions::new().open_receiver(&p)?);
        paths.stdout = p.to_string_lossy().into_owned();
    }
    if req.stderr {
        let p = dir.join(format!("{process}-stderr"));
        mkfifo(&p)?;
        io.stderr = Some(pipe::OpenOptions::new().open_receiver(&p)?);
        paths.stderr = p.to_string_lossy().into_owned();
    }
    Ok((paths, io))
}

/// Opens the caller's ends of `process`'s existing FIFOs again (a restored client);
/// streams without a FIFO (the process ran detached) stay `None`: see its log.
pub fn reopen(dir: &Path, process: &str, req: StdioRequest) -> io::Result<ProcessIo> {
    let mut io = ProcessIo::default();
    let path = |s: &str| dir.join(format!("{process}-{s}"));
    if req.stdout && path("stdout").exists() {
        io.stdout = Some(pipe::OpenOptions::new().open_receiver(path("stdout"))?);
    }
    if req.stderr && path("stderr").exists() {
        io.stderr = Some(pipe::OpenOptions::new().open_receiver(path("stderr"))?);
    }
    Ok(io)
}

/// Removes `process`'s FIFOs.
pub fn remove(dir: &Path, process: &str) {
    for stream in ["stdin", "stdout", "stderr"] {
        let _ = std::fs::remove_file(dir.join(format!("{process}-{stream}")));
    }
}
