//! The operator's terminal: raw mode that is always restored, and its size.

#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::sys::termios::{self, SetArg, Termios};

/// Puts a terminal in raw mode until dropped; the old mode comes back on every
/// exit path that runs destructors, and `restore_now` serves the others.
pub struct RawMode {
    fd: i32,
    saved: Termios,
}

impl RawMode {
    /// Raw mode on `fd`, if it is a terminal.
    pub fn enable(fd: BorrowedFd<'_>) -> Option<Self> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(Self {
            fd: fd.as_raw_fd(),
            saved,
        })
    }

    fn restore(&self) {
        // SAFETY: the descriptor is the process's stdin, open for its whole life.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &self.saved);
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        self.restore();
    }
}

/// The size (columns, rows) of the terminal at `fd`.
pub fn size(fd: impl AsFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize struct that lives for the call.
    let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some((ws.ws_col, ws.ws_row))
}
