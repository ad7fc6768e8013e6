//! The few raw system calls the shim needs that std and nix do not wrap safely.
//! Every `unsafe` block of the crate lives here.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes this process the reaper of its orphaned descendants.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integers.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Arranges for `fd` to be the child's descriptor 3 (and nothing else beyond stdio),
/// and optionally for the child to start a new session.
pub fn pass_fd3(cmd: &mut Command, fd: RawFd, new_session: bool) {
    // SAFETY: the closure runs between fork and exec and only calls the
    // async-signal-safe dup2 and setsid; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                // dup2 onto itself keeps CLOEXEC; clear it instead.
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            if new_session && libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Starts `argv` in a session of its own with stdio on /dev/null, not waited
/// for here (the reaper collects it): a command that outlives the shim.
pub fn spawn_detached(argv: &[String]) -> io::Result<()> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::other("empty command"))?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: the closure runs between fork and exec and only calls the
    // async-signal-safe setsid; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map(drop)
}

/// Arranges for the child to be killed when the thread that spawned it exits
/// (the shim's request thread, which waits for the helper): a helper whose shim
/// was killed mid-create must not live on holding a half-made container.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only calls the
    // async-signal-safe prctl; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Arranges for the child to get `fds[i]` as descriptor `3 + i` (a containerd
/// logging binary's stdout, stderr and ready pipes).
pub fn pass_fds_from_3(cmd: &mut Command, fds: [RawFd; 3]) {
    // SAFETY: the closure runs between fork and exec and only calls the
    // async-signal-safe fcntl and dup2; it allocates nothing. The sources are first
    // copied above 9, close-on-exec, so that no dup2 overwrites a source still to
    // be copied and no extra copy outlives the exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut high = [0; 3];
            for (h, fd) in high.iter_mut().zip(fds) {
                *h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                if *h < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (i, h) in high.into_iter().enumerate() {
                if libc::dup2(h, 3 + i as RawFd) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Takes ownership of descriptor 3 as handed over by [`pass_fd3`].
pub fn take_fd3() -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only inspects the descriptor.
    if unsafe { libc::fcntl(3, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd 3 is open (checked above) and, by the process's contract with its
    // parent, owned by nobody else in this process.
    let fd = unsafe { OwnedFd::from_raw_fd(3) };
    set_cloexec(&fd)?;
    Ok(fd)
}

/// Sets FD_CLOEXEC on `fd`.
pub fn set_cloexec(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: fcntl F_SETFD on a descriptor we hold.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// This executable on a private, detached, read-only bind mount: an `O_PATH`
/// descriptor from `open_tree(OPEN_TREE_CLONE)` whose mount `mount_setattr` made
/// read-only, never attached to any mount namespace.
///
/// The helper that clones container processes is exec'd from it, so its
/// `/proc/<pid>/exe` leads to a read-only mount: reopening it for writing fails
/// with EROFS and no container process can reach a writable handle on the host's
/// shim binary (CVE-2019-5736). Unlike [`sealed_self_copy`] it copies nothing
/// (a few microseconds instead of a 4 MiB copy per container) and the helper
/// shares the binary's page cache. Needs Linux 5.12 and CAP_SYS_ADMIN.
pub fn readonly_self_view() -> io::Result<OwnedFd> {
    readonly_view(c"/proc/self/exe")
}

/// `path` on a private, detached, read-only bind mount (see [`readonly_self_view`]).
fn readonly_view(path: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: open_tree takes a valid C string and plain flags; it returns a new
    // descriptor or -1.
    let raw = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open_tree returned a new descriptor that we alone own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads one mount_attr of the size given, which lives
    // for the call, on a descriptor we hold; the path is an empty C string.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A sealed, read-only in-memory copy of this executable: the fallback of
/// [`readonly_self_view`] where detached mounts are not available (older
/// kernels, no CAP_SYS_ADMIN). Same protection (CVE-2019-5736), at the cost of
/// copying the binary once per shim, off the request path where possible.
pub fn sealed_self_copy() -> io::Result<File> {
    let name = c"berth-helper";
    // SAFETY: memfd_create with a valid C string and flags.
    let raw =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new descriptor that we alone own.
    let mut memfd = unsafe { File::from_raw_fd(raw) };
    let mut exe = File::open("/proc/self/exe")?;
    io::copy(&mut exe, &mut memfd)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl F_ADD_SEALS on our memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(memfd)
}

/// Ignores SIGPIPE so that a vanished FIFO reader is an EPIPE error, not death.
pub fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN for SIGPIPE has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Descriptor `fd`, borrowed for the rest of the process's life.
///
/// Only for the report descriptor, which the process holds until exec or exit.
pub fn report_fd(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: callers pass a descriptor that stays open for the process's life
    // (the helper's report pipe, closed only by exec).
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Sets the window size of the terminal open at `fd`.
pub fn set_winsize(fd: &impl AsRawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one descriptor sent with SCM_RIGHTS over `sock` (the pty master that
/// libcontainer sends to a console socket).
pub fn recv_fd(sock: &impl AsRawFd) -> io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 256];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us; we own it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(io::Error::other(
        "no descriptor received on the console socket",
    ))
}

/// Restores every signal's default disposition and unblocks all signals, so the
/// container's command does not inherit the Rust runtime's ignored SIGPIPE (or any
/// other disposition of the shim). Runs in the container process just before exec.
pub fn reset_signals() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: setting SIG_DFL has no preconditions; invalid numbers just fail.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    // glibc keeps 32 and 33 for itself and refuses to change them; the kernel
    // does not. A zeroed kernel sigaction is SIG_DFL with no flags and no mask.
    for sig in [32, 33] {
        let act = [0u64; 4];
        // SAFETY: rt_sigaction reads one kernel sigaction (at most 32 bytes,
        // all zero here) and writes nothing (no old action asked for).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                act.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            );
        }
    }
    // SAFETY: an empty set, initialised by sigemptyset, unblocks everything.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// One malloc arena: the shim's threads are few and short-lived, and per-thread
/// arenas only hold on to memory.
pub fn single_malloc_arena() {
    // SAFETY: mallopt with M_ARENA_MAX takes a plain integer.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Drops this process's page-table entries for the clean, read-only file mappings
/// (code and read-only data of this binary and its shared libraries), as an idle
/// shim needs little of what created its container. The pages stay in the page
/// cache, shared with every other shim and helper; whatever runs next faults its
/// pages back in (minor faults). A mapping is touched only when `smaps` shows no
/// anonymous page in it: a RELRO region (written by the loader, then made
/// read-only) holds private copies and is left alone, so nothing is ever lost.
pub fn trim_file_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for (start, end) in clean_read_only_file_mappings(&smaps) {
        // SAFETY: the range is a private, read-only file mapping of this process
        // with no anonymous (copied-on-write) page: MADV_DONTNEED only unmaps its
        // pages, which fault back in from the file unchanged.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// The `(start, end)` of each `r-xp`/`r--p` file mapping in `smaps` text whose
/// `Anonymous:` is 0 kB.
fn clean_read_only_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            current = None;
            let perms = fields.next().unwrap_or("");
            let inode = fields.nth(2).unwrap_or("0");
            if (perms == "r-xp" || perms == "r--p") && inode != "0" {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    current = Some((a, b));
                }
            }
        } else if first == "Anonymous:" {
            if let Some(range) = current.take() {
                if fields.next() == Some("0") {
                    out.push(range);
                }
            }
        }
    }
    out
}

/// Sends signal number `sig` (a real-time one, which nix does not name) to `pid`.
pub fn kill_raw(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill takes plain integers.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the loopback interface up in the network namespace of process `pid`.
/// Joins that namespace for good: call it only from a single-threaded process that
/// is about to exit (the helper).
pub fn loopback_up_in(pid: i32) -> io::Result<()> {
    let ns = File::open(format!("/proc/{pid}/ns/net"))?;
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
    // SAFETY: socket takes plain integers and returns a new descriptor or -1.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; we alone own it.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS read and write the ifreq we own, whose
    // name is NUL-terminated.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_read_only_file_mappings_are_trimmed() {
        let smaps = "\
1000-2000 r-xp 00000000 fe:00 11 /bin/shim
Rss: 8 kB
Anonymous: 0 kB
2000-3000 r--p 00000000 fe:00 11 /bin/shim
Anonymous: 4 kB
3000-4000 rw-p 00000000 fe:00 11 /bin/shim
Anonymous: 0 kB
4000-5000 r--p 00000000 00:00 0 
Anonymous: 0 kB
5000-6000 r--p 00001000 fe:00 12 /lib/libc.so.6
Anonymous: 0 kB
";
        assert_eq!(
            clean_read_only_file_mappings(smaps),
            [(0x1000, 0x2000), (0x5000, 0x6000)]
        );
    }

    #[test]
    fn readonly_view_refuses_writes() {
        let path = std::env::temp_dir().join(format!("berth-ro-view-{}", std::process::id()));
        std::fs::write(&path, b"original").unwrap();
        let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        let view = readonly_view(&cpath);
        let result = view.as_ref().map(|fd| {
            let through = format!("/proc/self/fd/{}", fd.as_raw_fd());
            (
                std::fs::OpenOptions::new().write(true).open(&through),
                std::fs::read(&through),
            )
        });
        std::fs::remove_file(&path).unwrap();
        // Runs as root, as the shim does (open_tree needs CAP_SYS_ADMIN).
        let (write, read) = result.expect("read-only view (open_tree needs root)");
        let err = write.expect_err("a read-only view must refuse writers");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        assert_eq!(read.unwrap(), b"original");
    }
}
