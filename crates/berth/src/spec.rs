//! The OCI runtime spec berth generates for `berth run` / `berth create` and
//! prints for `berth spec`: Linux, with Docker's defaults (capabilities,
//! mounts, masked and read-only paths, device rules, seccomp allowlist) plus
//! `no_new_privileges` as `runc spec` sets it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use berth_types::{ContainerId, IdError, Resources};
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDevice,
    LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use oci_spec::OciSpecError;

pub mod parse;
pub mod seccomp;
pub mod user;

pub use parse::{
    parse_bytes, parse_cpus, parse_env, parse_memory_swap, parse_signal, parse_tmpfs, parse_volume,
    read_env_file, ParseError, Tmpfs, Volume, CPU_PERIOD,
};
pub use user::UserError;

/// The OCI runtime spec version berth writes.
pub const OCI_VERSION: &str = "1.0.2";

/// `PATH` every container starts with, as Docker sets it.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set, held in the bounding, effective and
/// permitted sets (never inheritable or ambient, since CVE-2022-24769).
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Paths Docker hides from containers (an empty file or tmpfs is mounted over them).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only in containers.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Size of `/dev/shm`, Docker's `--shm-size` default.
const SHM_SIZE: i64 = 64 << 20;

/// Docker refuses memory limits below this (6 MiB): the container could not
/// even start.
pub const MIN_MEMORY: i64 = 6 << 20;

/// Soft and hard RLIMIT_NOFILE, as `runc spec` sets them (Docker inherits the
/// daemon's, which is host-dependent and can exceed the host's hard limit).
const NOFILE: u64 = 1024;

/// Which network namespace the container gets (`--network`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    /// A new network namespace with only loopback (`--network none`, the default).
    #[default]
    Private,
    /// The host's network namespace (`--network host`).
    Host,
    /// Join the network namespace at this path (`--network /run/netns/x`).
    Path(PathBuf),
}

/// Everything `berth run` / `berth create` decides about a container, in the
/// terms of the command line. [`build`] turns it into an OCI spec.
#[derive(Debug, Clone)]
pub struct SpecOptions {
    /// Container id; the cgroup is `/berth/<id>` and, without a hostname, the
    /// hostname is its first 12 characters (as Docker).
    pub id: String,
    /// Command and arguments; must not be empty.
    pub args: Vec<String>,
    /// `-e` / `--env-file` entries, `K=V` to set, a bare `K` to remove;
    /// they override the defaults by key.
    pub env: Vec<String>,
    /// Working directory, absolute (`-w`).
    pub cwd: PathBuf,
    /// User id (`-u`, resolved with [`user::resolve`]).
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
    /// Allocate a terminal (`-t`); also sets `TERM=xterm`.
    pub terminal: bool,
    /// Hostname (`--hostname`); empty: derived from the id.
    pub hostname: String,
    /// Root filesystem path, absolute or relative to the bundle.
    pub rootfs: PathBuf,
    /// Mount the root filesystem read-only (`--read-only`).
    pub readonly_rootfs: bool,
    /// Bind mounts (`-v`).
    pub volumes: Vec<Volume>,
    /// Tmpfs mounts (`--tmpfs`).
    pub tmpfs: Vec<Tmpfs>,
    /// Further mounts from the caller, such as the binds of
    /// [`crate::rootfs::prepare_default`].
    pub extra_mounts: Vec<Mount>,
    /// Network namespace (`--network`).
    pub network: Network,
    /// Resource limits (`--memory`, `--cpus`, ...).
    pub resources: Resources,
    /// Capabilities in the bounding, effective and permitted sets; the
    /// seccomp profile is resolved against them.
    pub capabilities: Vec<Capability>,
    /// Apply Docker's default seccomp profile (`false`: unconfined).
    pub seccomp: bool,
}

impl Default for SpecOptions {
    fn default() -> Self {
        Self {
            id: String::new(),
            args: vec!["sh".to_owned()],
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            terminal: false,
            hostname: String::new(),
            rootfs: PathBuf::from("rootfs"),
            readonly_rootfs: false,
            volumes: Vec::new(),
            tmpfs: Vec::new(),
            extra_mounts: Vec::new(),
            network: Network::Private,
            resources: Resources::default(),
            capabilities: DEFAULT_CAPABILITIES.to_vec(),
            seccomp: true,
        }
    }
}

/// Why options cannot become a spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The id is not a valid container id.
    #[error("invalid container id {id:?}: {source}")]
    InvalidId {
        /// The id given.
        id: String,
        /// What is wrong with it.
        source: IdError,
    },
    /// No command to run.
    #[error("no command given")]
    NoCommand,
    /// `-w` is not absolute.
    #[error("the working directory {0} is invalid: it must be an absolute path")]
    RelativeCwd(PathBuf),
    /// `--hostname` is not a valid hostname.
    #[error("invalid hostname {0:?}: use up to 63 letters, digits, '-' and '.', not starting or ending with '-' or '.'")]
    InvalidHostname(String),
    /// An environment entry has no name.
    #[error("invalid environment variable {0:?}: the name is empty")]
    InvalidEnv(String),
    /// `--memory` is below Docker's 6 MiB minimum.
    #[error("memory limit {0} bytes is too low: the minimum is 6MB")]
    MemoryTooLow(i64),
    /// `--memory-swap` without `--memory`.
    #[error("--memory-swap needs --memory: the swap limit is memory plus swap")]
    SwapWithoutMemory,
    /// `--memory-swap` below `--memory`.
    #[error("memory+swap limit {swap} is below the memory limit {memory}: --memory-swap counts memory plus swap")]
    SwapBelowMemory {
        /// The memory limit.
        memory: i64,
        /// The memory+swap limit.
        swap: i64,
    },
    /// CPU quota or period outside the kernel's range.
    #[error("invalid CPU quota {quota} per period {period}: the quota must be at least 1000 and the period 1000 to 1000000 microseconds")]
    CpuQuota {
        /// The quota in microseconds.
        quota: i64,
        /// The period in microseconds.
        period: u64,
    },
    /// `--cpuset-cpus` is not a list such as `0-2,4`.
    #[error("invalid cpuset {0:?}: expected a list of CPUs or ranges such as 0-2,4")]
    InvalidCpuset(String),
    /// `--blkio-weight` outside 10 to 1000.
    #[error("invalid blkio weight {0}: the range is 10 to 1000")]
    BlkioWeight(u16),
    /// A mount destination is not absolute.
    #[error("mount destination {0} is not an absolute path")]
    RelativeMountDestination(PathBuf),
    /// Two mounts (volumes, tmpfs or extra mounts) at one destination.
    #[error("duplicate mount point {0}")]
    DuplicateMount(PathBuf),
    /// `--network PATH` is not absolute.
    #[error("network namespace path {0} is not absolute")]
    RelativeNetnsPath(PathBuf),
    /// oci-spec refused a value (none of berth's values should be).
    #[error("building the OCI spec: {0}")]
    Build(#[from] OciSpecError),
}

/// Builds the Linux OCI runtime spec for `opts`, with Docker's defaults.
pub fn build(opts: &SpecOptions) -> Result<Spec, SpecError> {
    let id = ContainerId::new(opts.id.clone()).map_err(|source| SpecError::InvalidId {
        id: opts.id.clone(),
        source,
    })?;
    if opts.args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    if !opts.cwd.is_absolute() {
        return Err(SpecError::RelativeCwd(opts.cwd.clone()));
    }
    let hostname = if opts.hostname.is_empty() {
        default_hostname(id.as_str())
    } else {
        opts.hostname.clone()
    };
    if !valid_hostname(&hostname) {
        return Err(SpecError::InvalidHostname(hostname));
    }

    let mut env = vec![DEFAULT_PATH.to_owned(), format!("HOSTNAME={hostname}")];
    if opts.terminal {
        env.push("TERM=xterm".to_owned());
    }
    let env = merge_env(env, &opts.env)?;

    let caps: HashSet<Capability> = opts.capabilities.iter().copied().collect();
    let mut user = UserBuilder::default().uid(opts.uid).gid(opts.gid);
    if !opts.additional_gids.is_empty() {
        user = user.additional_gids(opts.additional_gids.clone());
    }
    let process = ProcessBuilder::default()
        .terminal(opts.terminal)
        .user(user.build()?)
        .args(opts.args.clone())
        .env(env)
        .cwd(&opts.cwd)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps.clone())
                .inheritable(HashSet::new())
                .ambient(HashSet::new())
                .build()?,
        )
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(NOFILE)
            .hard(NOFILE)
            .build()?])
        .no_new_privileges(true)
        .build()?;

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces(&opts.network)?)
        .cgroups_path(Path::new("/berth").join(id.as_str()))
        .resources(create_resources(&opts.resources)?)
        .devices(default_devices()?)
        .masked_paths(MASKED_PATHS.map(str::to_owned).to_vec())
        .readonly_paths(READONLY_PATHS.map(str::to_owned).to_vec());
    if opts.seccomp {
        linux = linux.seccomp(seccomp::default_profile(&caps, std::env::consts::ARCH)?);
    }

    Ok(SpecBuilder::default()
        .version(OCI_VERSION)
        .hostname(hostname)
        .root(
            RootBuilder::default()
                .path(&opts.rootfs)
                .readonly(opts.readonly_rootfs)
                .build()?,
        )
        .mounts(mounts(opts)?)
        .process(process)
        .linux(linux.build()?)
        .build()?)
}

/// Translates resource settings to their OCI form, validating them as Docker
/// does. `None` settings stay unset, so this also serves live updates;
/// [`build`] adds the create-time defaults (swap, device rules).
pub fn linux_resources(r: &Resources) -> Result<LinuxResources, SpecError> {
    let mut res = LinuxResourcesBuilder::default();

    if let Some(memory) = r.memory {
        if memory < MIN_MEMORY {
            return Err(SpecError::MemoryTooLow(memory));
        }
    }
    if let Some(swap) = r.memory_swap {
        match r.memory {
            _ if swap == -1 => {}
            None => return Err(SpecError::SwapWithoutMemory),
            Some(memory) if swap < memory => {
                return Err(SpecError::SwapBelowMemory { memory, swap })
            }
            Some(_) => {}
        }
    }
    if r.memory.is_some() || r.memory_swap.is_some() {
        let mut mem = LinuxMemoryBuilder::default();
        if let Some(memory) = r.memory {
            mem = mem.limit(memory);
        }
        if let Some(swap) = r.memory_swap {
            mem = mem.swap(swap);
        }
        res = res.memory(mem.build()?);
    }

    if r.cpu_quota.is_some()
        || r.cpu_period.is_some()
        || r.cpu_shares.is_some()
        || r.cpuset_cpus.is_some()
    {
        let mut cpu = LinuxCpuBuilder::default();
        if r.cpu_quota.is_some() || r.cpu_period.is_some() {
            let quota = r.cpu_quota.unwrap_or(-1);
            let period = r.cpu_period.unwrap_or(CPU_PERIOD);
            if (quota != -1 && quota < 1000) || !(1000..=1_000_000).contains(&period) {
                return Err(SpecError::CpuQuota { quota, period });
            }
            cpu = cpu.quota(quota).period(period);
        }
        if let Some(shares) = r.cpu_shares {
            cpu = cpu.shares(shares);
        }
        if let Some(cpus) = &r.cpuset_cpus {
            if !valid_cpuset(cpus) {
                return Err(SpecError::InvalidCpuset(cpus.clone()));
            }
            cpu = cpu.cpus(cpus.clone());
        }
        res = res.cpu(cpu.build()?);
    }

    if let Some(limit) = r.pids_limit {
        // Docker: zero or negative means unlimited.
        let limit = if limit > 0 { limit } else { -1 };
        res = res.pids(LinuxPidsBuilder::default().limit(limit).build()?);
    }

    if let Some(weight) = r.blkio_weight {
        if !(10..=1000).contains(&weight) {
            return Err(SpecError::BlkioWeight(weight));
        }
        res = res.block_io(
            oci_spec::runtime::LinuxBlockIoBuilder::default()
                .weight(weight)
                .build()?,
        );
    }
    Ok(res.build()?)
}

/// [`linux_resources`] plus what Docker adds at create: swap defaults to
/// twice the memory limit, and the device allowlist.
fn create_resources(r: &Resources) -> Result<LinuxResources, SpecError> {
    let mut r = r.clone();
    if let (Some(memory), None) = (r.memory, r.memory_swap) {
        r.memory_swap = Some(memory.saturating_mul(2));
    }
    let mut res = linux_resources(&r)?;
    res.set_devices(Some(device_rules()?));
    Ok(res)
}

/// Docker's device cgroup: deny everything, allow mknod of any node (using
/// one still needs a rule below), then the standard character devices.
fn device_rules() -> Result<Vec<LinuxDeviceCgroup>, OciSpecError> {
    let rule = |allow: bool,
                typ: LinuxDeviceType,
                major: Option<i64>,
                minor: Option<i64>,
                access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if let Some(major) = major {
            b = b.major(major);
        }
        if let Some(minor) = minor {
            b = b.minor(minor);
        }
        b.build()
    };
    use LinuxDeviceType::{A, B, C};
    [
        rule(false, A, None, None, "rwm"),
        rule(true, C, None, None, "m"),
        rule(true, B, None, None, "m"),
        rule(true, C, Some(1), Some(3), "rwm"), // /dev/null
        rule(true, C, Some(1), Some(5), "rwm"), // /dev/zero
        rule(true, C, Some(1), Some(7), "rwm"), // /dev/full
        rule(true, C, Some(1), Some(8), "rwm"), // /dev/random
        rule(true, C, Some(1), Some(9), "rwm"), // /dev/urandom
        rule(true, C, Some(5), Some(0), "rwm"), // /dev/tty
        rule(true, C, Some(5), Some(1), "rwm"), // /dev/console
        rule(true, C, Some(5), Some(2), "rwm"), // /dev/ptmx
        rule(true, C, Some(136), None, "rwm"),  // /dev/pts/*
    ]
    .into_iter()
    .collect()
}

/// The device nodes every container gets (the runtime creates them in /dev).
fn default_devices() -> Result<Vec<LinuxDevice>, OciSpecError> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(path, major, minor)| {
        LinuxDeviceBuilder::default()
            .path(path)
            .typ(LinuxDeviceType::C)
            .major(major)
            .minor(minor)
            .file_mode(0o666u32)
            .uid(0u32)
            .gid(0u32)
            .build()
    })
    .collect()
}

fn namespaces(network: &Network) -> Result<Vec<LinuxNamespace>, SpecError> {
    let ns = |typ| LinuxNamespaceBuilder::default().typ(typ).build();
    let mut list = vec![
        ns(LinuxNamespaceType::Pid)?,
        ns(LinuxNamespaceType::Ipc)?,
        ns(LinuxNamespaceType::Uts)?,
        ns(LinuxNamespaceType::Mount)?,
        ns(LinuxNamespaceType::Cgroup)?,
    ];
    match network {
        Network::Private => list.push(ns(LinuxNamespaceType::Network)?),
        Network::Host => {}
        Network::Path(path) => {
            if !path.is_absolute() {
                return Err(SpecError::RelativeNetnsPath(path.clone()));
            }
            list.push(
                LinuxNamespaceBuilder::default()
                    .typ(LinuxNamespaceType::Network)
                    .path(path)
                    .build()?,
            );
        }
    }
    Ok(list)
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, OciSpecError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
        .build()
}

/// Docker's default mounts, in its order.
fn default_mounts() -> Result<Vec<Mount>, OciSpecError> {
    let shm_size = format!("size={SHM_SIZE}");
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        )?,
    ])
}

/// Default mounts, minus those a caller's mount replaces, then the caller's
/// mounts parents first (Docker's order, so `-v /a:/x -v /b:/x/y` works).
fn mounts(opts: &SpecOptions) -> Result<Vec<Mount>, SpecError> {
    let mut user: Vec<Mount> = opts.extra_mounts.clone();
    for v in &opts.volumes {
        let mut options = vec!["rbind".to_owned(), "rprivate".to_owned()];
        options.push(if v.readonly { "ro" } else { "rw" }.to_owned());
        user.push(
            MountBuilder::default()
                .destination(&v.destination)
                .typ("bind")
                .source(&v.source)
                .options(options)
                .build()?,
        );
    }
    for t in &opts.tmpfs {
        user.push(
            MountBuilder::default()
                .destination(&t.destination)
                .typ("tmpfs")
                .source("tmpfs")
                .options(tmpfs_options(&t.options))
                .build()?,
        );
    }

    let mut seen = HashSet::new();
    for m in &user {
        if !m.destination().is_absolute() {
            return Err(SpecError::RelativeMountDestination(m.destination().clone()));
        }
        if !seen.insert(normalize(m.destination())) {
            return Err(SpecError::DuplicateMount(m.destination().clone()));
        }
    }
    let over_dev = seen.contains(Path::new("/dev"));
    let mut all: Vec<Mount> = default_mounts()?
        .into_iter()
        .filter(|m| {
            let dest = m.destination();
            let replaced = seen.contains(dest.as_path());
            let under_users_dev = over_dev && dest.starts_with("/dev");
            !replaced && !under_users_dev
        })
        .collect();
    user.sort_by_key(|m| normalize(m.destination()).components().count());
    all.extend(user);
    Ok(all)
}

/// `/a//b/` and `/a/./b` name one mount point.
fn normalize(path: &Path) -> PathBuf {
    path.components().collect()
}

/// Docker's `--tmpfs` defaults (noexec, nosuid, nodev, private) with the
/// user's options applied over them: `exec` replaces `noexec`, and so on.
fn tmpfs_options(user: &[String]) -> Vec<String> {
    let mut opts: Vec<String> = ["noexec", "nosuid", "nodev", "rprivate"]
        .map(str::to_owned)
        .to_vec();
    for o in user {
        let opposite = match o.as_str() {
            "exec" => Some("noexec"),
            "noexec" => Some("exec"),
            "suid" => Some("nosuid"),
            "nosuid" => Some("suid"),
            "dev" => Some("nodev"),
            "nodev" => Some("dev"),
            "ro" => Some("rw"),
            "rw" => Some("ro"),
            _ => None,
        };
        opts.retain(|x| Some(x.as_str()) != opposite && x != o);
        // Options of the form key=value replace an earlier value of the key.
        if let Some((key, _)) = o.split_once('=') {
            opts.retain(|x| x.split_once('=').map(|(k, _)| k) != Some(key));
        }
        opts.push(o.clone());
    }
    opts
}

/// `base` with `overrides` applied by key: `K=V` replaces or appends, a bare
/// `K` removes (Docker's `ReplaceOrAppendEnvValues`).
fn merge_env(mut env: Vec<String>, overrides: &[String]) -> Result<Vec<String>, SpecError> {
    let key = |s: &str| s.split_once('=').map_or(s, |(k, _)| k).to_owned();
    for entry in overrides {
        let k = key(entry);
        if k.is_empty() {
            return Err(SpecError::InvalidEnv(entry.clone()));
        }
        if entry.contains('=') {
            match env.iter_mut().find(|e| key(e) == k) {
                Some(existing) => existing.clone_from(entry),
                None => env.push(entry.clone()),
            }
        } else {
            env.retain(|e| key(e) != k);
        }
    }
    Ok(env)
}

/// RFC 1123 host names, within the kernel's 64-byte limit for uname.
/// Docker's default hostname, the short id, made a valid hostname: a name may
/// hold `_` or end its first 12 characters in `-` or `.`, a hostname may not.
fn default_hostname(id: &str) -> String {
    let short: String = id
        .chars()
        .take(12)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = short.trim_matches('-');
    if trimmed.is_empty() {
        "berth".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 63
        && h.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `0`, `0-3`, `0,2,4-7`: what cpuset.cpus accepts.
/// Whether this host can give what `--cpus` (as quota per period) and
/// `--cpuset-cpus` ask, as Docker checks before it creates or updates: no more
/// CPUs than are online, and only online ones. `Err` says why, in Docker's terms.
pub fn check_host_cpus(
    quota: Option<i64>,
    period: Option<u64>,
    cpuset: Option<&str>,
) -> Result<(), String> {
    match std::fs::read_to_string("/sys/devices/system/cpu/online") {
        Ok(online) => check_cpus(quota, period, cpuset, online.trim()),
        // No sysfs: the kernel will say.
        Err(_) => Ok(()),
    }
}

/// [`check_host_cpus`] against `online`, the kernel's list (`0-3,6`).
fn check_cpus(
    quota: Option<i64>,
    period: Option<u64>,
    cpuset: Option<&str>,
    online: &str,
) -> Result<(), String> {
    let Some(available) = cpu_list(online) else {
        return Ok(());
    };
    if let (Some(quota), period) = (quota.filter(|q| *q > 0), period.unwrap_or(CPU_PERIOD)) {
        let asked = quota as f64 / period.max(1) as f64;
        if asked > available.len() as f64 {
            return Err(format!(
                "--cpus {asked}: the range of CPUs is from 0.01 to {}.00, as there are only {} CPUs available",
                available.len(),
                available.len()
            ));
        }
    }
    if let Some(set) = cpuset {
        let asked = cpu_list(set).unwrap_or_default();
        let missing: Vec<String> = asked
            .iter()
            .filter(|c| !available.contains(c))
            .map(u32::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "--cpuset-cpus {set}: requested CPUs are not available: {} (online: {online})",
                missing.join(",")
            ));
        }
    }
    Ok(())
}

/// The CPUs of a list such as `0-2,4`; `None` when it is not one.
fn cpu_list(s: &str) -> Option<Vec<u32>> {
    if !valid_cpuset(s) {
        return None;
    }
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        out.extend(a.parse::<u32>().ok()?..=b.parse::<u32>().ok()?);
    }
    Some(out)
}

fn valid_cpuset(s: &str) -> bool {
    let num = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && n.len() <= 5;
    !s.is_empty()
        && s.split(',').all(|part| match part.split_once('-') {
            Some((a, b)) => num(a) && num(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok(),
            None => num(part),
        })
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A temporary directory removed on drop (std only).

    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "berth-test-{tag}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create temp dir");
            Self(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxSeccompAction;

    fn opts() -> SpecOptions {
        SpecOptions {
            id: "c0ffee1234567890".to_owned(),
            args: vec!["sh".to_owned(), "-c".to_owned(), "true".to_owned()],
            ..SpecOptions::default()
        }
    }

    fn env_of(spec: &Spec) -> Vec<String> {
        spec.process().as_ref().unwrap().env().clone().unwrap()
    }

    fn mount_dests(spec: &Spec) -> Vec<String> {
        spec.mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect()
    }

    fn find_mount<'a>(spec: &'a Spec, dest: &str) -> &'a Mount {
        spec.mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new(dest))
            .unwrap_or_else(|| panic!("no mount at {dest}"))
    }

    #[test]
    fn defaults_like_docker() {
        let spec = build(&opts()).unwrap();
        assert_eq!(spec.version(), OCI_VERSION);
        assert_eq!(spec.hostname().as_deref(), Some("c0ffee123456"));
        assert_eq!(default_hostname("my_app"), "my-app");
        assert_eq!(default_hostname("abcdefghijk-x"), "abcdefghijk");
        assert_eq!(default_hostname("abcdefghij.kl"), "abcdefghij-k");
        assert!(valid_hostname(&default_hostname("a_.-_b")));
        let root = spec.root().as_ref().unwrap();
        assert_eq!(root.path(), Path::new("rootfs"));
        assert_eq!(root.readonly(), Some(false));

        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &["sh", "-c", "true"]);
        assert_eq!(p.cwd(), Path::new("/"));
        assert_eq!(p.terminal(), Some(false));
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
        assert_eq!(p.user().additional_gids(), &None);
        assert_eq!(env_of(&spec), [DEFAULT_PATH, "HOSTNAME=c0ffee123456"]);

        let rl = p.rlimits().as_ref().unwrap();
        assert_eq!(rl.len(), 1);
        assert_eq!(rl[0].typ(), PosixRlimitType::RlimitNofile);
        assert_eq!((rl[0].soft(), rl[0].hard()), (1024, 1024));

        let caps = p.capabilities().as_ref().unwrap();
        let want: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
        assert_eq!(want.len(), 14);
        assert_eq!(caps.bounding().as_ref(), Some(&want));
        assert_eq!(caps.effective().as_ref(), Some(&want));
        assert_eq!(caps.permitted().as_ref(), Some(&want));
        assert!(caps.inheritable().as_ref().unwrap().is_empty());
        assert!(caps.ambient().as_ref().unwrap().is_empty());
        assert!(!want.contains(&Capability::SysAdmin));

        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(Path::new("/berth/c0ffee1234567890"))
        );
        let mut ns: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| (n.typ().to_string(), n.path().clone()))
            .collect();
        ns.sort();
        let names: Vec<_> = ns.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(names, ["cgroup", "ipc", "mnt", "net", "pid", "uts"]);
        assert!(ns.iter().all(|(_, p)| p.is_none()));
        assert_eq!(
            linux.masked_paths().as_ref().unwrap(),
            &MASKED_PATHS.map(String::from).to_vec()
        );
        assert!(linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/sys/devices/virtual/powercap".to_owned()));
        assert_eq!(
            linux.readonly_paths().as_ref().unwrap(),
            &READONLY_PATHS.map(String::from).to_vec()
        );
        let seccomp = linux.seccomp().as_ref().unwrap();
        assert_eq!(seccomp.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(seccomp.default_errno_ret(), Some(1));
        let devices: Vec<_> = linux
            .devices()
            .as_ref()
            .unwrap()
            .iter()
            .map(|d| d.path().display().to_string())
            .collect();
        assert_eq!(
            devices,
            [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty"
            ]
        );
    }

    #[test]
    fn default_mounts_like_docker() {
        let spec = build(&opts()).unwrap();
        assert_eq!(
            mount_dests(&spec),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm"
            ]
        );
        let opts_of = |d: &str| find_mount(&spec, d).options().clone().unwrap();
        assert_eq!(find_mount(&spec, "/proc").typ().as_deref(), Some("proc"));
        assert_eq!(
            opts_of("/dev"),
            ["nosuid", "strictatime", "mode=755", "size=65536k"]
        );
        let pts = opts_of("/dev/pts");
        for o in ["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] {
            assert!(pts.contains(&o.to_owned()), "{o}");
        }
        assert!(opts_of("/dev/shm").contains(&"size=67108864".to_owned()));
        for o in ["ro", "nosuid", "noexec", "nodev"] {
            assert!(opts_of("/sys").contains(&o.to_owned()));
            assert!(opts_of("/sys/fs/cgroup").contains(&o.to_owned()));
        }
        assert_eq!(
            find_mount(&spec, "/sys/fs/cgroup").typ().as_deref(),
            Some("cgroup")
        );
        assert_eq!(
            find_mount(&spec, "/dev/mqueue").typ().as_deref(),
            Some("mqueue")
        );
    }

    #[test]
    fn env_terminal_and_overrides() {
        let spec = build(&SpecOptions {
            terminal: true,
            hostname: "web".to_owned(),
            env: vec![
                "A=1".to_owned(),
                "PATH=/bin".to_owned(),
                "TERM".to_owned(),
                "A=2".to_owned(),
                "B=x=y".to_owned(),
            ],
            ..opts()
        })
        .unwrap();
        assert_eq!(env_of(&spec), ["PATH=/bin", "HOSTNAME=web", "A=2", "B=x=y"]);
        assert_eq!(spec.process().as_ref().unwrap().terminal(), Some(true));
        assert_eq!(spec.hostname().as_deref(), Some("web"));

        let spec = build(&SpecOptions {
            terminal: true,
            ..opts()
        })
        .unwrap();
        assert!(env_of(&spec).contains(&"TERM=xterm".to_owned()));
        assert!(matches!(
            build(&SpecOptions {
                env: vec!["=1".to_owned()],
                ..opts()
            }),
            Err(SpecError::InvalidEnv(_))
        ));
    }

    #[test]
    fn user_cwd_rootfs() {
        let spec = build(&SpecOptions {
            uid: 1000,
            gid: 100,
            additional_gids: vec![5, 50],
            cwd: "/work".into(),
            rootfs: "/var/lib/x/rootfs".into(),
            readonly_rootfs: true,
            ..opts()
        })
        .unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 100));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[5, 50][..]));
        assert_eq!(p.cwd(), Path::new("/work"));
        let root = spec.root().as_ref().unwrap();
        assert_eq!(root.path(), Path::new("/var/lib/x/rootfs"));
        assert_eq!(root.readonly(), Some(true));
    }

    #[test]
    fn invalid_options() {
        let bad = |o: SpecOptions| build(&o).unwrap_err();
        assert!(matches!(
            bad(SpecOptions {
                id: "../x".into(),
                ..opts()
            }),
            SpecError::InvalidId { .. }
        ));
        assert!(matches!(
            bad(SpecOptions {
                id: String::new(),
                ..opts()
            }),
            SpecError::InvalidId { .. }
        ));
        assert!(matches!(
            bad(SpecOptions {
                args: vec![],
                ..opts()
            }),
            SpecError::NoCommand
        ));
        assert!(matches!(
            bad(SpecOptions {
                cwd: "work".into(),
                ..opts()
            }),
            SpecError::RelativeCwd(_)
        ));
        for h in ["-x", "a b", "a..b", "x/y", &"h".repeat(64)] {
            assert!(
                matches!(
                    bad(SpecOptions {
                        hostname: h.to_owned(),
                        ..opts()
                    }),
                    SpecError::InvalidHostname(_)
                ),
                "{h}"
            );
        }
        assert!(matches!(
            bad(SpecOptions {
                network: Network::Path("netns".into()),
                ..opts()
            }),
            SpecError::RelativeNetnsPath(_)
        ));
    }

    #[test]
    fn network_modes() {
        let has_net = |spec: &Spec| {
            spec.linux()
                .as_ref()
                .unwrap()
                .namespaces()
                .as_ref()
                .unwrap()
                .iter()
                .find(|n| n.typ() == LinuxNamespaceType::Network)
                .map(|n| n.path().clone())
        };
        assert_eq!(has_net(&build(&opts()).unwrap()), Some(None));
        assert_eq!(
            has_net(
                &build(&SpecOptions {
                    network: Network::Host,
                    ..opts()
                })
                .unwrap()
            ),
            None
        );
        assert_eq!(
            has_net(
                &build(&SpecOptions {
                    network: Network::Path("/run/netns/blue".into()),
                    ..opts()
                })
                .unwrap()
            ),
            Some(Some(PathBuf::from("/run/netns/blue")))
        );
    }

    #[test]
    fn resources_and_swap_default() {
        let spec = build(&SpecOptions {
            resources: Resources {
                memory: Some(64 << 20),
                cpu_quota: Some(50_000),
                cpu_period: Some(100_000),
                cpu_shares: Some(512),
                cpuset_cpus: Some("0-1".to_owned()),
                pids_limit: Some(100),
                ..Resources::default()
            },
            ..opts()
        })
        .unwrap();
        let res = spec.linux().as_ref().unwrap().resources().as_ref().unwrap();
        let mem = res.memory().unwrap();
        assert_eq!(mem.limit(), Some(64 << 20));
        assert_eq!(mem.swap(), Some(128 << 20));
        let cpu = res.cpu().as_ref().unwrap();
        assert_eq!(cpu.quota(), Some(50_000));
        assert_eq!(cpu.period(), Some(100_000));
        assert_eq!(cpu.shares(), Some(512));
        assert_eq!(cpu.cpus().as_deref(), Some("0-1"));
        assert_eq!(res.pids().unwrap().limit(), 100);

        // Device allowlist: deny all first, then the standard devices.
        let rules = res.devices().as_ref().unwrap();
        assert!(!rules[0].allow());
        assert_eq!(rules[0].typ(), Some(LinuxDeviceType::A));
        assert_eq!(rules[0].access().as_deref(), Some("rwm"));
        let allowed: Vec<String> = rules[1..].iter().map(|r| r.to_string()).collect();
        for want in [
            "c 1:3 rwm",
            "c 1:5 rwm",
            "c 1:7 rwm",
            "c 1:8 rwm",
            "c 1:9 rwm",
            "c 5:0 rwm",
            "c 5:1 rwm",
            "c 5:2 rwm",
            "c 136:* rwm",
            "c *:* m",
            "b *:* m",
        ] {
            assert!(
                allowed.contains(&want.to_owned()),
                "{want} missing from {allowed:?}"
            );
        }
        assert!(rules[1..].iter().all(|r| r.allow()));

        // Without limits: no memory, cpu or pids sections, devices still there.
        let spec = build(&opts()).unwrap();
        let res = spec.linux().as_ref().unwrap().resources().as_ref().unwrap();
        assert!(res.memory().is_none() && res.cpu().is_none() && res.pids().is_none());
        assert!(res.devices().is_some());
    }

    #[test]
    fn resource_validation() {
        let r = |res: Resources| linux_resources(&res);
        assert!(matches!(
            r(Resources {
                memory: Some(1 << 20),
                ..Default::default()
            }),
            Err(SpecError::MemoryTooLow(_))
        ));
        assert!(matches!(
            r(Resources {
                memory_swap: Some(1 << 30),
                ..Default::default()
            }),
            Err(SpecError::SwapWithoutMemory)
        ));
        assert!(matches!(
            r(Resources {
                memory: Some(1 << 30),
                memory_swap: Some(1 << 29),
                ..Default::default()
            }),
            Err(SpecError::SwapBelowMemory { .. })
        ));
        let unlimited = r(Resources {
            memory: Some(1 << 30),
            memory_swap: Some(-1),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(unlimited.memory().unwrap().swap(), Some(-1));
        assert!(matches!(
            r(Resources {
                cpu_quota: Some(10),
                ..Default::default()
            }),
            Err(SpecError::CpuQuota { .. })
        ));
        assert!(matches!(
            r(Resources {
                cpu_quota: Some(5000),
                cpu_period: Some(10),
                ..Default::default()
            }),
            Err(SpecError::CpuQuota { .. })
        ));
        for bad in ["", "a", "1-", "-1", "3-1", "0,,1", "0-1-2"] {
            assert!(
                matches!(
                    r(Resources {
                        cpuset_cpus: Some(bad.into()),
                        ..Default::default()
                    }),
                    Err(SpecError::InvalidCpuset(_))
                ),
                "{bad:?}"
            );
        }
        // Against the host's online CPUs (a pure check here: two online).
        assert!(check_cpus(Some(200_000), None, Some("0-1"), "0-1").is_ok());
        let e = check_cpus(Some(300_000), Some(100_000), None, "0-1").unwrap_err();
        assert!(e.contains("only 2 CPUs"), "{e}");
        let e = check_cpus(None, None, Some("1,7"), "0-1").unwrap_err();
        assert!(e.contains("not available: 7"), "{e}");
        assert!(check_cpus(None, None, Some("3"), "0-1,3").is_ok());
        for good in ["0", "0-1", "0,2,4-7"] {
            assert!(
                r(Resources {
                    cpuset_cpus: Some(good.into()),
                    ..Default::default()
                })
                .is_ok(),
                "{good}"
            );
        }
        assert!(matches!(
            r(Resources {
                blkio_weight: Some(5),
                ..Default::default()
            }),
            Err(SpecError::BlkioWeight(5))
        ));
        assert_eq!(
            r(Resources {
                pids_limit: Some(0),
                ..Default::default()
            })
            .unwrap()
            .pids()
            .unwrap()
            .limit(),
            -1
        );
        // An update leaves unset values unset: no swap default, no devices.
        let upd = r(Resources {
            memory: Some(64 << 20),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(upd.memory().unwrap().swap(), None);
        assert!(upd.devices().is_none());
    }

    #[test]
    fn volumes_tmpfs_and_extra_mounts() {
        let extra = MountBuilder::default()
            .destination("/usr")
            .typ("bind")
            .source("/usr")
            .options(vec!["rbind".to_owned(), "ro".to_owned()])
            .build()
            .unwrap();
        let spec = build(&SpecOptions {
            volumes: vec![
                Volume {
                    source: "/srv/b".into(),
                    destination: "/data/sub".into(),
                    readonly: false,
                },
                Volume {
                    source: "/srv/a".into(),
                    destination: "/data".into(),
                    readonly: true,
                },
            ],
            tmpfs: vec![
                Tmpfs {
                    destination: "/run".into(),
                    options: vec![],
                },
                Tmpfs {
                    destination: "/dev/shm".into(),
                    options: vec!["exec".into(), "size=1m".into()],
                },
            ],
            extra_mounts: vec![extra],
            ..opts()
        })
        .unwrap();
        assert_eq!(
            mount_dests(&spec),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                // user mounts, parents first, stable otherwise
                "/usr",
                "/data",
                "/run",
                "/data/sub",
                "/dev/shm",
            ]
        );
        let data = find_mount(&spec, "/data");
        assert_eq!(data.typ().as_deref(), Some("bind"));
        assert_eq!(data.source().as_deref(), Some(Path::new("/srv/a")));
        assert!(data.options().as_ref().unwrap().contains(&"ro".to_owned()));
        assert!(data
            .options()
            .as_ref()
            .unwrap()
            .contains(&"rbind".to_owned()));
        assert!(find_mount(&spec, "/data/sub")
            .options()
            .as_ref()
            .unwrap()
            .contains(&"rw".to_owned()));
        assert_eq!(
            find_mount(&spec, "/run").options().clone().unwrap(),
            ["noexec", "nosuid", "nodev", "rprivate"]
        );
        // The user's /dev/shm replaced Docker's, with exec over noexec.
        let shm = find_mount(&spec, "/dev/shm");
        assert_eq!(
            shm.options().clone().unwrap(),
            ["nosuid", "nodev", "rprivate", "exec", "size=1m"]
        );

        let dup = build(&SpecOptions {
            volumes: vec![Volume {
                source: "/a".into(),
                destination: "/x".into(),
                readonly: false,
            }],
            tmpfs: vec![Tmpfs {
                destination: "/x/".into(),
                options: vec![],
            }],
            ..opts()
        });
        assert!(matches!(dup, Err(SpecError::DuplicateMount(_))));

        // A mount over /dev drops Docker's /dev submounts with it.
        let spec = build(&SpecOptions {
            tmpfs: vec![Tmpfs {
                destination: "/dev".into(),
                options: vec![],
            }],
            ..opts()
        })
        .unwrap();
        assert_eq!(
            mount_dests(&spec),
            ["/proc", "/sys", "/sys/fs/cgroup", "/dev"]
        );
    }

    #[test]
    fn unconfined_and_extra_caps() {
        let spec = build(&SpecOptions {
            seccomp: false,
            ..opts()
        })
        .unwrap();
        assert!(spec.linux().as_ref().unwrap().seccomp().is_none());

        let mut caps = DEFAULT_CAPABILITIES.to_vec();
        caps.push(Capability::SysAdmin);
        let spec = build(&SpecOptions {
            capabilities: caps,
            ..opts()
        })
        .unwrap();
        let seccomp = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
        let allowed = &seccomp.syscalls().as_ref().unwrap()[0];
        assert!(allowed.names().contains(&"mount".to_owned()));
    }

    #[test]
    fn serializes_to_config_json() {
        let spec = build(&opts()).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["ociVersion"], OCI_VERSION);
        assert_eq!(json["process"]["noNewPrivileges"], true);
        assert_eq!(json["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert_eq!(json["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(json["linux"]["seccomp"]["defaultErrnoRet"], 1);
        assert_eq!(json["linux"]["cgroupsPath"], "/berth/c0ffee1234567890");
        let back: Spec = serde_json::from_value(json).unwrap();
        assert_eq!(back, spec);
    }
}
