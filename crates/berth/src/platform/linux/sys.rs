//! The few raw system calls the Linux client needs that std, tokio and nix do not
//! wrap safely. Every `unsafe` block of the client lives here.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;

/// A descriptor that becomes readable when process `pid` exits (a pidfd).
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; we alone own it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as RawFd) })
}

/// Makes `fd` the child's descriptor 3 (the shim's listening socket, as the
/// runtime v2 `start` contract hands it over) and puts the child in a session of
/// its own, detached from this process's terminal.
pub fn listener_as_fd3(cmd: &mut tokio::process::Command, fd: RawFd) {
    // SAFETY: the closure runs between fork and exec and only calls the
    // async-signal-safe fcntl, dup2 and setsid; it allocates nothing.
    unsafe {
        cmd.as_std_mut().pre_exec(move || {
            if fd == 3 {
                // dup2 onto itself keeps CLOEXEC; clear it instead.
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Waits until process `pid` exits, at most `limit`: `Ok(true)` when it did.
pub async fn wait_exit(pid: i32, limit: std::time::Duration) -> io::Result<bool> {
    let fd = pidfd_open(pid)?;
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and is the same
    // descriptor for the AsyncFd's whole life.
    let fd = unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(io::Error::from)?;
    match tokio::time::timeout(limit, fd.readable()).await {
        Ok(Ok(_)) => Ok(true),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(false),
    }
}

/// An inotify instance as tokio's `AsyncFd` takes it.
pub struct InotifyFd(pub nix::sys::inotify::Inotify);

impl std::os::fd::AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

/// Registers `inotify` with the current runtime's IO driver, for reading.
pub fn register_inotify(
    inotify: nix::sys::inotify::Inotify,
) -> io::Result<tokio::io::unix::AsyncFd<InotifyFd>> {
    // SAFETY: the descriptor is owned by the `InotifyFd` that the `AsyncFd` owns:
    // it stays open, and is not replaced, for as long as it is registered.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(
            InotifyFd(inotify),
            tokio::io::Interest::READABLE,
        )
        .map_err(Into::into)
    }
}
