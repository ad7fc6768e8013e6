//! Docker's default seccomp profile, as data.
//!
//! The profile is an allowlist: every system call not named here fails with
//! `EPERM`. Groups that Docker conditions on the capability set or on the
//! architecture are resolved when the profile is generated, exactly as dockerd
//! resolves them, so the emitted `LinuxSeccomp` carries no conditions a runtime
//! would have to understand.
//!
//! Written from Docker's `profiles/seccomp/default.json` (moby 25-27). Names the
//! local libseccomp does not know are skipped by the runtime (libcontainer
//! warns and continues), so newer calls can be listed here safely.

use std::collections::{BTreeSet, HashSet};

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};
use oci_spec::OciSpecError;

/// `errno` returned for every call the profile does not allow (EPERM), as Docker does.
pub const DEFAULT_ERRNO: u32 = 1;

/// `errno` for `clone3` without CAP_SYS_ADMIN: ENOSYS makes glibc fall back to
/// `clone`, whose flags (unlike `clone3`'s, which sit behind a pointer) seccomp
/// can inspect.
const ENOSYS: u32 = 38;

/// Namespace flags a process without CAP_SYS_ADMIN may not pass to `clone`:
/// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
/// CLONE_NEWPID | CLONE_NEWNET.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// `AF_VSOCK`: Docker denies vsock sockets, which reach the host past the netns.
const AF_VSOCK: u64 = 40;

/// System calls every container may make (Docker's first, unconditional group).
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_setup",
    "io_submit",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// How a group's calls are answered.
#[derive(Clone, Copy)]
enum Action {
    Allow,
    Errno(u32),
}

/// One argument condition of a rule: (argument index, value, value two, operator).
type Cond = (usize, u64, u64, LinuxSeccompOperator);

/// A group of Docker's profile with its `includes` / `excludes` conditions.
struct Group {
    names: &'static [&'static str],
    action: Action,
    /// All conditions must hold (one `LinuxSyscall` with several args).
    args: &'static [Cond],
    /// Included only on these architectures (Rust `target_arch` names); empty: all.
    arches: &'static [&'static str],
    /// Excluded on these architectures.
    not_arches: &'static [&'static str],
    /// Included only when every one of these capabilities is held.
    caps: &'static [Capability],
    /// Excluded when any of these capabilities is held.
    not_caps: &'static [Capability],
}

impl Group {
    const fn allow(names: &'static [&'static str]) -> Self {
        Self {
            names,
            action: Action::Allow,
            args: &[],
            arches: &[],
            not_arches: &[],
            caps: &[],
            not_caps: &[],
        }
    }

    const fn args(mut self, args: &'static [Cond]) -> Self {
        self.args = args;
        self
    }

    const fn arches(mut self, arches: &'static [&'static str]) -> Self {
        self.arches = arches;
        self
    }

    const fn not_arches(mut self, arches: &'static [&'static str]) -> Self {
        self.not_arches = arches;
        self
    }

    const fn caps(mut self, caps: &'static [Capability]) -> Self {
        self.caps = caps;
        self
    }

    const fn not_caps(mut self, caps: &'static [Capability]) -> Self {
        self.not_caps = caps;
        self
    }

    const fn errno(mut self, errno: u32) -> Self {
        self.action = Action::Errno(errno);
        self
    }

    fn applies(&self, caps: &HashSet<Capability>, arch: &str) -> bool {
        (self.arches.is_empty() || self.arches.contains(&arch))
            && !self.not_arches.contains(&arch)
            && self.caps.iter().all(|c| caps.contains(c))
            && !self.not_caps.iter().any(|c| caps.contains(c))
    }
}

use LinuxSeccompOperator::{ScmpCmpEq as EQ, ScmpCmpMaskedEq as MASKED_EQ, ScmpCmpNe as NE};

/// Docker's conditional groups, in the profile's order.
const GROUPS: &[Group] = &[
    // Docker gates these on kernel >= 4.8, where seccomp can no longer be
    // bypassed through ptrace; berth needs newer kernels anyway (cgroup
    // namespaces, 4.6, and youki's requirements), so the gate always holds.
    Group::allow(&["process_vm_readv", "process_vm_writev", "ptrace"]),
    Group::allow(&["socket"]).args(&[(0, AF_VSOCK, 0, NE)]),
    // personality(2) only for the execution domains programs really ask for:
    // PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and the query.
    Group::allow(&["personality"]).args(&[(0, 0x0, 0, EQ)]),
    Group::allow(&["personality"]).args(&[(0, 0x0008, 0, EQ)]),
    Group::allow(&["personality"]).args(&[(0, 0x20000, 0, EQ)]),
    Group::allow(&["personality"]).args(&[(0, 0x20008, 0, EQ)]),
    Group::allow(&["personality"]).args(&[(0, 0xffff_ffff, 0, EQ)]),
    Group::allow(&["sync_file_range2", "swapcontext"]).arches(&["powerpc64"]),
    Group::allow(&[
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "sync_file_range2",
        "breakpoint",
        "cacheflush",
        "set_tls",
    ])
    .arches(&["arm", "aarch64"]),
    Group::allow(&["arch_prctl"]).arches(&["x86_64"]),
    Group::allow(&["modify_ldt"]).arches(&["x86_64", "x86"]),
    Group::allow(&[
        "s390_pci_mmio_read",
        "s390_pci_mmio_write",
        "s390_runtime_instr",
    ])
    .arches(&["s390x"]),
    Group::allow(&["riscv_flush_icache"]).arches(&["riscv64"]),
    Group::allow(&["open_by_handle_at"]).caps(&[Capability::DacReadSearch]),
    Group::allow(&[
        "bpf",
        "clone",
        "clone3",
        "fanotify_init",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "lookup_dcookie",
        "mount",
        "mount_setattr",
        "move_mount",
        "open_tree",
        "perf_event_open",
        "quotactl",
        "quotactl_fd",
        "setdomainname",
        "sethostname",
        "setns",
        "syslog",
        "umount",
        "umount2",
        "unshare",
    ])
    .caps(&[Capability::SysAdmin]),
    // Without CAP_SYS_ADMIN, clone only without namespace flags (the flags are
    // argument 0 everywhere but on s390, where they are argument 1).
    //
    // Docker's encoding, as runc and crun read it: the mask in `value`, the masked
    // value (0) in `valueTwo`. libcontainer (youki 0.7) reads the two the other
    // way round, so berth's shim swaps them before handing a bundle to it (see
    // berth-shim's fixups); a config from `berth spec` thus means the same
    // under runc, crun and berth.
    Group::allow(&["clone"])
        .args(&[(0, CLONE_NAMESPACE_FLAGS, 0, MASKED_EQ)])
        .not_arches(&["s390x"])
        .not_caps(&[Capability::SysAdmin]),
    Group::allow(&["clone"])
        .args(&[(1, CLONE_NAMESPACE_FLAGS, 0, MASKED_EQ)])
        .arches(&["s390x"])
        .not_caps(&[Capability::SysAdmin]),
    Group::allow(&["clone3"])
        .errno(ENOSYS)
        .not_caps(&[Capability::SysAdmin]),
    Group::allow(&["reboot"]).caps(&[Capability::SysBoot]),
    Group::allow(&["chroot"]).caps(&[Capability::SysChroot]),
    Group::allow(&["delete_module", "init_module", "finit_module"]).caps(&[Capability::SysModule]),
    Group::allow(&["acct"]).caps(&[Capability::SysPacct]),
    Group::allow(&[
        "kcmp",
        "pidfd_getfd",
        "process_madvise",
        "process_vm_readv",
        "process_vm_writev",
        "ptrace",
    ])
    .caps(&[Capability::SysPtrace]),
    Group::allow(&["iopl", "ioperm"]).caps(&[Capability::SysRawio]),
    Group::allow(&["settimeofday", "stime", "clock_settime", "clock_settime64"])
        .caps(&[Capability::SysTime]),
    Group::allow(&["vhangup"]).caps(&[Capability::SysTtyConfig]),
    Group::allow(&[
        "get_mempolicy",
        "mbind",
        "set_mempolicy",
        "set_mempolicy_home_node",
    ])
    .caps(&[Capability::SysNice]),
    Group::allow(&["syslog"]).caps(&[Capability::Syslog]),
    Group::allow(&["bpf"]).caps(&[Capability::Bpf]),
    Group::allow(&["perf_event_open"]).caps(&[Capability::Perfmon]),
];

/// The seccomp architectures Docker lists for a native architecture (its
/// `archMap`), named as Rust's `std::env::consts::ARCH`. 32-bit sub-architectures
/// are included so compat-mode binaries are filtered rather than refused.
pub fn architectures(arch: &str) -> Vec<Arch> {
    match arch {
        "x86_64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "x86" => vec![Arch::ScmpArchX86],
        "aarch64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        "arm" => vec![Arch::ScmpArchArm],
        "powerpc64" => vec![Arch::ScmpArchPpc64le],
        "s390x" => vec![Arch::ScmpArchS390x, Arch::ScmpArchS390],
        "riscv64" => vec![Arch::ScmpArchRiscv64],
        _ => Vec::new(),
    }
}

/// Docker's default profile resolved for the capability set `caps` (the
/// bounding set the container runs with) and the native architecture `arch`
/// (as in `std::env::consts::ARCH`).
pub fn default_profile(
    caps: &HashSet<Capability>,
    arch: &str,
) -> Result<LinuxSeccomp, OciSpecError> {
    // Unconditional allows are merged into one rule: fewer entries for the
    // runtime to walk, and a name allowed by two groups appears once.
    let mut allowed: BTreeSet<&'static str> = ALLOWED.iter().copied().collect();
    let mut conditional = Vec::new();
    for group in GROUPS.iter().filter(|g| g.applies(caps, arch)) {
        match (group.action, group.args.is_empty()) {
            (Action::Allow, true) => allowed.extend(group.names.iter().copied()),
            _ => conditional.push(group),
        }
    }
    let mut syscalls = vec![rule(
        &allowed.iter().copied().collect::<Vec<_>>(),
        Action::Allow,
        &[],
    )?];
    for group in conditional {
        // A conditional rule is redundant (and for libseccomp, conflicting)
        // when the same call is allowed outright, e.g. clone under CAP_SYS_ADMIN.
        let names: Vec<&str> = group
            .names
            .iter()
            .copied()
            .filter(|n| !allowed.contains(n))
            .collect();
        if !names.is_empty() {
            syscalls.push(rule(&names, group.action, group.args)?);
        }
    }

    let mut builder = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(DEFAULT_ERRNO)
        .syscalls(syscalls);
    let arches = architectures(arch);
    if !arches.is_empty() {
        builder = builder.architectures(arches);
    }
    builder.build()
}

fn rule(names: &[&str], action: Action, args: &[Cond]) -> Result<LinuxSyscall, OciSpecError> {
    let mut builder = LinuxSyscallBuilder::default()
        .names(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>());
    builder = match action {
        Action::Allow => builder.action(LinuxSeccompAction::ScmpActAllow),
        Action::Errno(errno) => builder
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(errno),
    };
    if !args.is_empty() {
        let args = args
            .iter()
            .map(|&(index, value, value_two, op)| {
                LinuxSeccompArgBuilder::default()
                    .index(index)
                    .value(value)
                    .value_two(value_two)
                    .op(op)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        builder = builder.args(args);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DEFAULT_CAPABILITIES;

    fn default_caps() -> HashSet<Capability> {
        DEFAULT_CAPABILITIES.into_iter().collect()
    }

    /// Every name the profile answers, with its action and whether it has
    /// argument conditions.
    fn rules(p: &LinuxSeccomp) -> Vec<(String, LinuxSeccompAction, Option<u32>, bool)> {
        p.syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .flat_map(|s| {
                s.names()
                    .iter()
                    .map(|n| (n.clone(), s.action(), s.errno_ret(), s.args().is_some()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn unconditional(p: &LinuxSeccomp) -> BTreeSet<String> {
        rules(p)
            .into_iter()
            .filter(|(_, a, _, args)| *a == LinuxSeccompAction::ScmpActAllow && !args)
            .map(|(n, ..)| n)
            .collect()
    }

    /// What busybox sh, ls, cat, sleep, fork/exec and pipes need, and what
    /// glibc and Rust's runtime call at start-up.
    const ESSENTIAL: &[&str] = &[
        "read",
        "write",
        "readv",
        "writev",
        "open",
        "openat",
        "close",
        "close_range",
        "execve",
        "wait4",
        "waitid",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "mmap",
        "munmap",
        "mprotect",
        "brk",
        "exit",
        "exit_group",
        "newfstatat",
        "fstat",
        "stat",
        "lstat",
        "statx",
        "getdents64",
        "pipe",
        "pipe2",
        "dup",
        "dup2",
        "dup3",
        "fcntl",
        "ioctl",
        "poll",
        "ppoll",
        "select",
        "pselect6",
        "nanosleep",
        "clock_nanosleep",
        "clock_gettime",
        "futex",
        "set_robust_list",
        "set_tid_address",
        "rseq",
        "prlimit64",
        "getrandom",
        "arch_prctl",
        "getpid",
        "getppid",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "setpgid",
        "getpgrp",
        "uname",
        "getcwd",
        "chdir",
        "lseek",
        "access",
        "faccessat",
        "faccessat2",
        "readlink",
        "readlinkat",
        "kill",
        "tgkill",
        "sigaltstack",
        "sched_getaffinity",
        "sched_yield",
        "madvise",
        "mremap",
        "socket",
        "socketpair",
        "vfork",
        "fork",
        "umask",
        "unlink",
        "unlinkat",
        "mkdir",
        "mkdirat",
        "rename",
        "renameat2",
        "chmod",
        "fchmodat",
        "capget",
        "capset",
        "prctl",
        "setuid",
        "setgid",
        "setgroups",
        "getgroups",
        "sysinfo",
        "times",
    ];

    #[test]
    fn allowlist_with_eperm() {
        let p = default_profile(&default_caps(), "x86_64").unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        // Every rule allows, except clone3's ENOSYS.
        for (name, action, errno, _) in rules(&p) {
            match action {
                LinuxSeccompAction::ScmpActAllow => {}
                LinuxSeccompAction::ScmpActErrno => {
                    assert_eq!((name.as_str(), errno), ("clone3", Some(38)))
                }
                other => panic!("{name}: unexpected action {other:?}"),
            }
        }
        assert!(
            ALLOWED.len() > 300,
            "the allowlist lost entries: {}",
            ALLOWED.len()
        );
    }

    #[test]
    fn common_syscalls_allowed() {
        let p = default_profile(&default_caps(), "x86_64").unwrap();
        let allowed = unconditional(&p);
        let conditional: BTreeSet<String> = rules(&p)
            .into_iter()
            .filter(|(_, a, _, args)| *a == LinuxSeccompAction::ScmpActAllow && *args)
            .map(|(n, ..)| n)
            .collect();
        for name in ESSENTIAL {
            assert!(
                allowed.contains(*name) || conditional.contains(*name),
                "{name} is not allowed"
            );
        }
        // Allowed only with conditions: clone without namespace flags,
        // sockets other than vsock, a few personalities.
        for name in ["clone", "socket", "personality"] {
            assert!(!allowed.contains(name), "{name} must be conditional");
            assert!(
                conditional.contains(name),
                "{name} must be allowed with conditions"
            );
        }
    }

    #[test]
    fn sys_admin_calls_denied_without_the_capability() {
        let p = default_profile(&default_caps(), "x86_64").unwrap();
        let all: BTreeSet<String> = rules(&p).into_iter().map(|(n, ..)| n).collect();
        for name in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "sethostname",
            "bpf",
            "perf_event_open",
            "reboot",
            "init_module",
            "kexec_load",
            "open_by_handle_at",
            "iopl",
            "settimeofday",
            "syslog",
            "acct",
            "swapon",
            "keyctl",
            "add_key",
            "userfaultfd",
            "kcmp",
            "pidfd_getfd",
            "mbind",
            "fsopen",
            "move_mount",
        ] {
            assert!(!all.contains(name), "{name} must not be in the profile");
        }
        // chroot: CAP_SYS_CHROOT is in Docker's default set.
        assert!(unconditional(&p).contains("chroot"));
        // ptrace: allowed as on kernel >= 4.8 (seccomp is re-checked after it).
        assert!(unconditional(&p).contains("ptrace"));
    }

    #[test]
    fn clone_rules_without_sys_admin() {
        let p = default_profile(&default_caps(), "x86_64").unwrap();
        let syscalls = p.syscalls().as_ref().unwrap();
        let clone = syscalls
            .iter()
            .find(|s| s.names() == &["clone"])
            .expect("conditional clone rule");
        let args = clone.args().as_ref().unwrap();
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].index(), 0);
        assert_eq!(args[0].op(), MASKED_EQ);
        // Docker's encoding (runc's reading): mask in value, masked value in valueTwo.
        assert_eq!(args[0].value(), CLONE_NAMESPACE_FLAGS);
        assert_eq!(args[0].value_two().unwrap_or(0), 0);
        assert_eq!(CLONE_NAMESPACE_FLAGS, 2_114_060_288);

        let clone3 = syscalls.iter().find(|s| s.names() == &["clone3"]).unwrap();
        assert_eq!(clone3.action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3.errno_ret(), Some(38));

        let personalities: Vec<u64> = syscalls
            .iter()
            .filter(|s| s.names() == &["personality"])
            .map(|s| s.args().as_ref().unwrap()[0].value())
            .collect();
        assert_eq!(personalities, [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff]);

        let socket = syscalls.iter().find(|s| s.names() == &["socket"]).unwrap();
        let a = socket.args().as_ref().unwrap()[0];
        assert_eq!((a.index(), a.value(), a.op()), (0, 40, NE));
    }

    #[test]
    fn capabilities_open_their_groups() {
        let mut caps = default_caps();
        caps.extend([
            Capability::SysAdmin,
            Capability::SysPtrace,
            Capability::SysTime,
            Capability::DacReadSearch,
        ]);
        let p = default_profile(&caps, "x86_64").unwrap();
        let allowed = unconditional(&p);
        for name in [
            "mount",
            "unshare",
            "setns",
            "clone",
            "clone3",
            "kcmp",
            "settimeofday",
            "open_by_handle_at",
        ] {
            assert!(allowed.contains(name), "{name}");
        }
        // With CAP_SYS_ADMIN, no conditional clone and no ENOSYS clone3.
        let syscalls = p.syscalls().as_ref().unwrap();
        assert!(!syscalls[1..]
            .iter()
            .any(|s| s.names().iter().any(|n| n.starts_with("clone"))));
        // A name allowed by two groups appears once.
        let count = rules(&p).iter().filter(|(n, ..)| n == "ptrace").count();
        assert_eq!(count, 1);
    }

    #[test]
    fn architecture_groups() {
        let x86 = unconditional(&default_profile(&default_caps(), "x86_64").unwrap());
        assert!(x86.contains("arch_prctl") && x86.contains("modify_ldt"));
        assert!(!x86.contains("set_tls"));

        let arm = default_profile(&default_caps(), "aarch64").unwrap();
        assert_eq!(
            arm.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        let arm = unconditional(&arm);
        assert!(arm.contains("set_tls") && arm.contains("arm_fadvise64_64"));
        assert!(!arm.contains("arch_prctl") && !arm.contains("modify_ldt"));
    }

    #[test]
    fn no_duplicates_in_allowlist() {
        let mut sorted = ALLOWED.to_vec();
        sorted.sort_by_key(|n| n.trim_start_matches('_'));
        sorted.dedup();
        assert_eq!(sorted.len(), ALLOWED.len(), "duplicates in ALLOWED");
    }
}

/// The profile through libseccomp itself, translated the way libcontainer
/// 0.7 translates it, so what passes here is what a container gets.
#[cfg(all(test, target_os = "linux"))]
mod libseccomp_tests {
    use super::*;
    use crate::spec::DEFAULT_CAPABILITIES;
    use libseccomp::{
        ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
    };
    use std::io::Read;
    use std::process::Command;

    fn action(a: LinuxSeccompAction, errno: Option<u32>) -> ScmpAction {
        let errno = errno.map_or(libc::EPERM, |e| e as i32);
        match a {
            LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
            LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
            other => panic!("the default profile does not use {other:?}"),
        }
    }

    fn op(o: LinuxSeccompOperator, mask: Option<u64>) -> ScmpCompareOp {
        match o {
            LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
            LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
            LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(mask.unwrap_or(0)),
            other => panic!("the default profile does not use {other:?}"),
        }
    }

    fn arch(a: Arch) -> ScmpArch {
        match a {
            Arch::ScmpArchX86_64 => ScmpArch::X8664,
            Arch::ScmpArchX86 => ScmpArch::X86,
            Arch::ScmpArchX32 => ScmpArch::X32,
            Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
            Arch::ScmpArchArm => ScmpArch::Arm,
            other => panic!("unexpected architecture {other:?}"),
        }
    }

    /// Builds the filter as libcontainer does; returns it and the names the
    /// local libseccomp does not know (skipped there, with a warning).
    fn filter(p: &LinuxSeccomp) -> (ScmpFilterContext, Vec<String>) {
        let default = action(p.default_action(), p.default_errno_ret());
        let mut ctx = ScmpFilterContext::new(default).unwrap();
        for &a in p.architectures().iter().flatten() {
            ctx.add_arch(arch(a)).unwrap();
        }
        let mut unknown = Vec::new();
        for s in p.syscalls().iter().flatten() {
            let act = action(s.action(), s.errno_ret());
            for name in s.names() {
                let Ok(sc) = ScmpSyscall::from_name(name) else {
                    unknown.push(name.clone());
                    continue;
                };
                match s.args() {
                    Some(args) => {
                        let cmps: Vec<_> = args
                            .iter()
                            .map(|a| {
                                // As runc reads the profile (and as libcontainer
                                // does once the shim has swapped MASKED_EQ's two
                                // values): mask in value, datum in valueTwo.
                                let (mask, datum) = match a.op() {
                                    LinuxSeccompOperator::ScmpCmpMaskedEq => {
                                        (Some(a.value()), a.value_two().unwrap_or(0))
                                    }
                                    _ => (None, a.value()),
                                };
                                ScmpArgCompare::new(a.index() as u32, op(a.op(), mask), datum)
                            })
                            .collect();
                        ctx.add_rule_conditional(act, sc, &cmps)
                    }
                    None => ctx.add_rule(act, sc),
                }
                .unwrap_or_else(|e| panic!("libseccomp refuses the rule for {name}: {e}"));
            }
        }
        (ctx, unknown)
    }

    fn pfc(ctx: &ScmpFilterContext) -> String {
        let dir = crate::spec::test_support::TempDir::new("pfc");
        let path = dir.path().join("filter.pfc");
        ctx.export_pfc(std::fs::File::create(&path).unwrap())
            .unwrap();
        let mut text = String::new();
        std::fs::File::open(&path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    fn default_caps() -> HashSet<Capability> {
        DEFAULT_CAPABILITIES.into_iter().collect()
    }

    #[test]
    fn libseccomp_accepts_every_rule() {
        for caps in [default_caps(), {
            let mut c = default_caps();
            c.insert(Capability::SysAdmin);
            c
        }] {
            let p = default_profile(&caps, std::env::consts::ARCH).unwrap();
            let (_ctx, unknown) = filter(&p);
            // Only syscalls newer than the local libseccomp may be unknown;
            // everything a shell needs must resolve.
            for name in [
                "read", "execve", "clone", "clone3", "openat", "statx", "rseq",
            ] {
                assert!(
                    !unknown.contains(&name.to_owned()),
                    "{name} unknown to libseccomp"
                );
            }
            assert!(unknown.len() < 40, "too many unknown names: {unknown:?}");
        }
    }

    #[test]
    fn clone_is_masked_not_open() {
        let p = default_profile(&default_caps(), "x86_64").unwrap();
        let (ctx, _) = filter(&p);
        let text = pfc(&ctx);
        // clone (56 on x86_64) is allowed only when no namespace flag is set.
        let start = text
            .find("\"clone\" (56)")
            .expect("clone in the x86_64 filter");
        let section = &text[start..start + 300];
        assert!(
            section.contains("& 0x7e020000 == 0"),
            "clone is not masked:\n{section}"
        );
    }

    /// Loads the filter into one fresh thread (other threads are unaffected)
    /// and runs busybox under it: shell, ls, cat, sleep, fork/exec, pipes.
    #[test]
    fn busybox_runs_under_the_profile() {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("busybox is needed for this test (apt-get install busybox-static)");
        let p = default_profile(&default_caps(), std::env::consts::ARCH).unwrap();
        std::thread::spawn(move || {
            let (ctx, _) = filter(&p);
            ctx.load().unwrap();

            // The default action answers EPERM: a namespace cannot be made.
            assert_eq!(
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS),
                Err(nix::errno::Errno::EPERM)
            );

            let script = "set -e; ls / >/dev/null; echo piped | cat | cat; \
                          sleep 0.05; x=$(echo sub); echo $x; \
                          cat /proc/self/status >/dev/null; (exit 3) || echo status $?";
            let out = Command::new(busybox)
                .args(["sh", "-c", script])
                .output()
                .expect("spawn busybox under the filter");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "busybox failed: {:?}\nstdout: {stdout}\nstderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(stdout, "piped\nsub\nstatus 3\n");
        })
        .join()
        .unwrap();
    }
}
