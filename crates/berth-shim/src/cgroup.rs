//! The container's cgroup as the shim observes and changes it: statistics, the
//! freezer state, the OOM kill counter and its notifications, and live resource
//! updates, on cgroup v1 (one dir per controller) and v2 (one unified dir).
//!
//! Figures are read straight from the cgroup files so that a figure a host does not
//! have is `None` (JSON `null`), never 0. Freezing and listing pids go through
//! libcgroups' manager.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use berth_types::{BlockIoStats, CpuStats, MemoryStats, NetworkStats, PidsStats, Stats};
use oci_spec::runtime::LinuxResources;

/// A v1 limit at or above this is "unlimited" (the kernel shows 2^63 rounded down
/// to a page).
const V1_UNLIMITED: u64 = 1 << 62;

/// Where the container's cgroup lives.
#[derive(Debug, Clone)]
pub enum Cgroup {
    /// cgroup v1: the container's dir under each controller's mount.
    V1(HashMap<&'static str, PathBuf>),
    /// cgroup v2: the container's unified dir.
    V2(PathBuf),
}

/// The v1 controllers berth reads or writes.
const V1_CONTROLLERS: [&str; 7] = [
    "cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "freezer",
];

/// Mount points of the v1 controllers (or `None` on a unified host), read once.
fn v1_mounts() -> &'static Option<HashMap<&'static str, PathBuf>> {
    static MOUNTS: OnceLock<Option<HashMap<&'static str, PathBuf>>> = OnceLock::new();
    MOUNTS.get_or_init(|| {
        use libcgroups::common::{get_cgroup_setup, CgroupSetup};
        match get_cgroup_setup() {
            Ok(CgroupSetup::Unified) | Err(_) => None,
            Ok(_) => {
                let found = libcgroups::v1::util::list_supported_mount_points().ok()?;
                let mut out = HashMap::new();
                for (ctrl, path) in found {
                    let name = ctrl.to_string();
                    if let Some(n) = V1_CONTROLLERS.iter().find(|c| **c == name) {
                        out.insert(*n, path);
                    }
                }
                Some(out)
            }
        }
    })
}

/// See [`Cgroup::detail`].
#[derive(Debug, Default)]
pub struct Detail {
    pub memory_stat: HashMap<String, u64>,
    pub per_cpu: Vec<u64>,
    pub cpu_stat: HashMap<String, u64>,
    /// The keys are cgroup v2's (`anon`, `file`, `throttled_usec`, ...).
    pub v2: bool,
}

impl Cgroup {
    /// The cgroup at `cgroup_path` (`/berth/<id>`) on this host.
    pub fn open(cgroup_path: &Path) -> Self {
        let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
        match v1_mounts() {
            Some(mounts) => Cgroup::V1(
                mounts
                    .iter()
                    .map(|(name, mount)| (*name, mount.join(rel)))
                    .collect(),
            ),
            None => Cgroup::V2(Path::new(libcgroups::common::DEFAULT_CGROUP_ROOT).join(rel)),
        }
    }

    fn v1(&self, ctrl: &str) -> Option<&Path> {
        match self {
            Cgroup::V1(m) => m.get(ctrl).map(PathBuf::as_path),
            Cgroup::V2(_) => None,
        }
    }

    /// Whether the cgroup still exists.
    pub fn exists(&self) -> bool {
        match self {
            Cgroup::V1(_) => self
                .v1("memory")
                .or(self.v1("pids"))
                .is_some_and(Path::is_dir),
            Cgroup::V2(d) => d.is_dir(),
        }
    }

    /// What containerd's Metrics carry beyond [`Stats`]: `memory.stat` as the
    /// kernel keys it, CPU time per CPU (v1 only), and CFS throttling.
    pub fn detail(&self) -> Detail {
        match self {
            Cgroup::V1(_) => Detail {
                memory_stat: self
                    .v1("memory")
                    .map(|d| read_keyed(&d.join("memory.stat")))
                    .unwrap_or_default(),
                per_cpu: self
                    .v1("cpuacct")
                    .and_then(|d| fs::read_to_string(d.join("cpuacct.usage_percpu")).ok())
                    .map(|s| {
                        s.split_whitespace()
                            .filter_map(|n| n.parse().ok())
                            .collect()
                    })
                    .unwrap_or_default(),
                cpu_stat: self
                    .v1("cpu")
                    .map(|d| read_keyed(&d.join("cpu.stat")))
                    .unwrap_or_default(),
                v2: false,
            },
            Cgroup::V2(d) => Detail {
                memory_stat: read_keyed(&d.join("memory.stat")),
                per_cpu: Vec::new(),
                cpu_stat: read_keyed(&d.join("cpu.stat")),
                v2: true,
            },
        }
    }

    /// A sample of CPU, memory, pids and block I/O (network is not a cgroup figure).
    pub fn stats(&self) -> Stats {
        match self {
            Cgroup::V1(_) => self.stats_v1(),
            Cgroup::V2(d) => stats_v2(d),
        }
    }

    fn stats_v1(&self) -> Stats {
        let mut s = Stats::default();
        if let Some(d) = self.v1("cpuacct") {
            s.cpu = CpuStats {
                total_ns: read_u64(&d.join("cpuacct.usage")),
                user_ns: read_u64(&d.join("cpuacct.usage_user")),
                system_ns: read_u64(&d.join("cpuacct.usage_sys")),
            };
            if s.cpu.user_ns.is_none() {
                // Older kernels: only cpuacct.stat, in USER_HZ ticks.
                let stat = read_keyed(&d.join("cpuacct.stat"));
                let tick = 1_000_000_000 / clock_ticks();
                s.cpu.user_ns = stat.get("user").map(|t| t * tick);
                s.cpu.system_ns = stat.get("system").map(|t| t * tick);
            }
        }
        if let Some(d) = self.v1("memory") {
            let stat = read_keyed(&d.join("memory.stat"));
            s.memory = MemoryStats {
                usage: read_u64(&d.join("memory.usage_in_bytes")),
                limit: read_u64(&d.join("memory.limit_in_bytes")).filter(|l| *l < V1_UNLIMITED),
                max_usage: read_u64(&d.join("memory.max_usage_in_bytes")),
                cache: stat
                    .get("total_cache")
                    .or_else(|| stat.get("cache"))
                    .copied(),
            };
        }
        if let Some(d) = self.v1("pids") {
            s.pids = pids_of(d);
        }
        if let Some(d) = self.v1("blkio") {
            // CFQ's (or BFQ's) accounting when present, else the throttle layer's,
            // which counts every bio.
            s.block_io = [
                "blkio.io_service_bytes_recursive",
                "blkio.bfq.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes_recursive",
            ]
            .iter()
            .map(|f| d.join(f))
            .find(|p| p.exists())
            .map(|p| blkio_v1(&p))
            .unwrap_or_default();
        }
        s
    }

    /// Whether the freezer holds the cgroup frozen (or freezing).
    pub fn frozen(&self) -> bool {
        match self {
            Cgroup::V1(_) => self.v1("freezer").is_some_and(|d| {
                fs::read_to_string(d.join("freezer.state"))
                    .is_ok_and(|s| matches!(s.trim(), "FROZEN" | "FREEZING"))
            }),
            Cgroup::V2(d) => {
                fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
            }
        }
    }

    /// How many times the memory limit's OOM killer killed a process here, if the
    /// kernel counts it.
    pub fn oom_kills(&self) -> Option<u64> {
        match self {
            Cgroup::V1(_) => read_keyed(&self.v1("memory")?.join("memory.oom_control"))
                .get("oom_kill")
                .copied(),
            Cgroup::V2(d) => read_keyed(&d.join("memory.events"))
                .get("oom_kill")
                .copied(),
        }
    }

    /// The file whose changes announce an OOM (v1: registered through
    /// cgroup.event_control; v2: watched with inotify).
    fn oom_source(&self) -> Option<PathBuf> {
        match self {
            Cgroup::V1(_) => Some(self.v1("memory")?.join("memory.oom_control")),
            Cgroup::V2(d) => Some(d.join("memory.events")),
        }
    }

    /// The writes that apply `r`, in order, or why they cannot be made here.
    pub fn plan_update(&self, r: &LinuxResources) -> Result<Vec<Write>, PlanError> {
        match self {
            Cgroup::V1(_) => self.plan_v1(r),
            Cgroup::V2(d) => plan_v2(d, r),
        }
    }

    fn need(&self, ctrl: &str) -> Result<&Path, PlanError> {
        self.v1(ctrl)
            .ok_or_else(|| PlanError::Unavailable(format!("no {ctrl} cgroup controller")))
    }

    fn plan_v1(&self, r: &LinuxResources) -> Result<Vec<Write>, PlanError> {
        let mut w = Vec::new();
        if let Some(m) = r.memory() {
            let d = self.need("memory")?;
            let memsw_file = d.join("memory.memsw.limit_in_bytes");
            let limit = m.limit().map(|l| if l <= 0 { -1 } else { l });
            let swap = m.swap().map(|s| if s <= 0 { -1 } else { s });
            if swap.is_some() && !memsw_file.exists() {
                return Err(PlanError::Unavailable(
                    "swap limits need swap accounting (no memory.memsw.limit_in_bytes)".into(),
                ));
            }
            let cur_memsw =
                read_u64(&memsw_file).map(|v| if v >= V1_UNLIMITED { -1 } else { v as i64 });
            let mem_w = |v: i64| Write::new(d.join("memory.limit_in_bytes"), v.to_string());
            let sw_w = |v: i64| Write::new(memsw_file.clone(), v.to_string());
            match (limit, swap) {
                (Some(l), Some(s)) => {
                    if s != -1 && l != -1 && s < l {
                        return Err(PlanError::Invalid(format!(
                            "memory+swap limit {s} is below the memory limit {l}"
                        )));
                    }
                    // The kernel keeps memory <= memory+swap at every step: raise
                    // memory+swap first when it grows, lower memory first otherwise.
                    let grows = s == -1 || cur_memsw.is_some_and(|c| c != -1 && s > c);
                    if grows {
                        w.push(sw_w(s));
                        w.push(mem_w(l));
                    } else {
                        w.push(mem_w(l));
                        w.push(sw_w(s));
                    }
                }
                (Some(l), None) => {
                    if let Some(c) = cur_memsw.filter(|c| *c != -1) {
                        if l == -1 || l > c {
                            return Err(PlanError::Invalid(format!(
                                "the memory limit must stay at or below the memory+swap limit ({c}): update --memory-swap at the same time"
                            )));
                        }
                    }
                    w.push(mem_w(l));
                }
                (None, Some(s)) => w.push(sw_w(s)),
                (None, None) => {}
            }
        }
        if let Some(c) = r.cpu() {
            if c.period().is_some() || c.quota().is_some() || c.shares().is_some() {
                let d = self.need("cpu")?;
                if let Some(p) = c.period() {
                    w.push(Write::new(d.join("cpu.cfs_period_us"), p.to_string()));
                }
                if let Some(q) = c.quota() {
                    let q = if q <= 0 { -1 } else { q };
                    w.push(Write::new(d.join("cpu.cfs_quota_us"), q.to_string()));
                }
                if let Some(s) = c.shares() {
                    w.push(Write::new(d.join("cpu.shares"), s.to_string()));
                }
            }
            if let Some(cpus) = c.cpus() {
                let d = self.need("cpuset")?;
                w.push(Write::new(d.join("cpuset.cpus"), cpus.clone()));
            }
        }
        if let Some(p) = r.pids() {
            let d = self.need("pids")?;
            w.push(Write::new(d.join("pids.max"), pids_max(p.limit())));
        }
        if let Some(weight) = r.block_io().as_ref().and_then(|b| b.weight()) {
            let d = self.need("blkio")?;
            let file = weight_file(d, "blkio.weight", "blkio.bfq.weight").ok_or_else(|| {
                PlanError::Unavailable(
                    "block I/O weight is not available on this host: no blkio.weight, and no disk uses the bfq I/O scheduler".into(),
                )
            })?;
            w.push(Write::new(file, weight.to_string()));
        }
        Ok(w)
    }
}

fn plan_v2(d: &Path, r: &LinuxResources) -> Result<Vec<Write>, PlanError> {
    let mut w = Vec::new();
    let has = |f: &str| d.join(f).exists();
    let need = |f: &str| {
        if has(f) {
            Ok(d.join(f))
        } else {
            Err(PlanError::Unavailable(format!(
                "no {f} (controller not enabled)"
            )))
        }
    };
    if let Some(m) = r.memory() {
        let limit = m.limit().map(|l| if l <= 0 { -1 } else { l });
        if let Some(l) = limit {
            w.push(Write::new(need("memory.max")?, v2_max(l)));
        }
        if let Some(s) = m.swap() {
            // v2 limits swap alone: memory+swap minus memory.
            let file = need("memory.swap.max")?;
            let mem = match limit {
                Some(l) => Some(l),
                None => read_max(&d.join("memory.max")).map(|v| v.map_or(-1, |v| v as i64)),
            };
            let value = match (s, mem) {
                (s, _) if s <= 0 => "max".to_owned(),
                (_, Some(-1)) | (_, None) => "max".to_owned(),
                (s, Some(m)) if s < m => {
                    return Err(PlanError::Invalid(format!(
                        "memory+swap limit {s} is below the memory limit {m}"
                    )))
                }
                (s, Some(m)) => (s - m).to_string(),
            };
            w.push(Write::new(file, value));
        }
    }
    if let Some(c) = r.cpu() {
        if c.quota().is_some() || c.period().is_some() {
            let file = need("cpu.max")?;
            let cur = fs::read_to_string(&file).unwrap_or_default();
            let mut it = cur.split_whitespace();
            let cur_quota = it.next().unwrap_or("max").to_owned();
            let cur_period = it.next().unwrap_or("100000").to_owned();
            let quota = match c.quota() {
                Some(q) if q > 0 => q.to_string(),
                Some(_) => "max".to_owned(),
                None => cur_quota,
            };
            let period = c.period().map_or(cur_period, |p| p.to_string());
            w.push(Write::new(file, format!("{quota} {period}")));
        }
        if let Some(shares) = c.shares() {
            w.push(Write::new(
                need("cpu.weight")?,
                shares_to_weight(shares).to_string(),
            ));
        }
        if let Some(cpus) = c.cpus() {
            w.push(Write::new(need("cpuset.cpus")?, cpus.clone()));
        }
    }
    if let Some(p) = r.pids() {
        w.push(Write::new(need("pids.max")?, pids_max(p.limit())));
    }
    if let Some(weight) = r.block_io().as_ref().and_then(|b| b.weight()) {
        match weight_file(d, "io.weight", "io.bfq.weight") {
            Some(f) if f.ends_with("io.weight") => {
                w.push(Write::new(f, format!("default {weight}")))
            }
            Some(f) => w.push(Write::new(f, weight.to_string())),
            None => {
                return Err(PlanError::Unavailable(
                    "block I/O weight is not available on this host: no io.weight, and no disk uses the bfq I/O scheduler".into(),
                ))
            }
        }
    }
    Ok(w)
}

/// The file a block I/O weight goes to: `plain` (CFQ's blkio.weight, v2's
/// io.weight) when the kernel has it, else BFQ's file if some disk actually runs
/// BFQ. The BFQ file exists whenever the module is loaded, but a weight written to
/// it does nothing unless a disk uses that scheduler.
fn weight_file(d: &Path, plain: &str, bfq: &str) -> Option<PathBuf> {
    if d.join(plain).exists() {
        return Some(d.join(plain));
    }
    (d.join(bfq).exists() && a_disk_runs_bfq()).then(|| d.join(bfq))
}

fn a_disk_runs_bfq() -> bool {
    fs::read_dir("/sys/block").is_ok_and(|rd| {
        rd.flatten().any(|e| {
            fs::read_to_string(e.path().join("queue/scheduler")).is_ok_and(|s| s.contains("[bfq]"))
        })
    })
}

/// runc's mapping of v1 shares (2..262144) onto v2 weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

fn pids_max(limit: i64) -> String {
    if limit <= 0 {
        "max".to_owned()
    } else {
        limit.to_string()
    }
}

fn v2_max(v: i64) -> String {
    if v < 0 {
        "max".to_owned()
    } else {
        v.to_string()
    }
}

/// Why an update cannot be planned.
#[derive(Debug)]
pub enum PlanError {
    /// The host has no such knob (no blkio.weight, no swap accounting, ...).
    Unavailable(String),
    /// The values contradict each other or the limits in force.
    Invalid(String),
}

/// One write of an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The cgroup file.
    pub path: PathBuf,
    /// What goes in it.
    pub value: String,
}

impl Write {
    fn new(path: PathBuf, value: impl Into<String>) -> Self {
        Self {
            path,
            value: value.into(),
        }
    }
}

/// A write the kernel refused, after the earlier ones were undone.
#[derive(Debug)]
pub struct Refused {
    /// The write.
    pub write: Write,
    /// The kernel's answer.
    pub error: io::Error,
}

/// Makes `writes` in order; if the kernel refuses one, restores what the earlier
/// ones changed, so the old limits stay in force.
pub fn apply(writes: &[Write]) -> Result<(), Refused> {
    let mut done: Vec<(PathBuf, String)> = Vec::new();
    for w in writes {
        let old = fs::read_to_string(&w.path).map(|s| s.trim().to_owned());
        match fs::write(&w.path, &w.value) {
            Ok(()) => {
                if let Ok(old) = old {
                    done.push((w.path.clone(), restore_value(&w.path, &old)));
                }
            }
            Err(error) => {
                for (path, old) in done.iter().rev() {
                    if let Err(e) = fs::write(path, old) {
                        tracing::warn!(path = %path.display(), error = %e, "restore cgroup value");
                    }
                }
                return Err(Refused {
                    write: w.clone(),
                    error,
                });
            }
        }
    }
    Ok(())
}

/// What to write back to restore a file whose content read `old`. Most files take
/// back what they show; io.weight shows `default N`, which it also takes.
fn restore_value(_path: &Path, old: &str) -> String {
    old.lines().next().unwrap_or_default().to_owned()
}

fn stats_v2(d: &Path) -> Stats {
    let cpu = read_keyed(&d.join("cpu.stat"));
    let mem = read_keyed(&d.join("memory.stat"));
    let mut io = BlockIoStats::default();
    if let Ok(text) = fs::read_to_string(d.join("io.stat")) {
        let (mut r, mut w) = (0u64, 0u64);
        for line in text.lines() {
            for kv in line.split_whitespace().skip(1) {
                match kv.split_once('=') {
                    Some(("rbytes", v)) => r += v.parse::<u64>().unwrap_or(0),
                    Some(("wbytes", v)) => w += v.parse::<u64>().unwrap_or(0),
                    _ => {}
                }
            }
        }
        io = BlockIoStats {
            read_bytes: Some(r),
            write_bytes: Some(w),
        };
    }
    Stats {
        read: None,
        cpu: CpuStats {
            total_ns: cpu.get("usage_usec").map(|u| u * 1000),
            user_ns: cpu.get("user_usec").map(|u| u * 1000),
            system_ns: cpu.get("system_usec").map(|u| u * 1000),
        },
        memory: MemoryStats {
            usage: read_u64(&d.join("memory.current")),
            limit: read_max(&d.join("memory.max")).flatten(),
            // memory.peak exists from Linux 5.19 on.
            max_usage: read_u64(&d.join("memory.peak")),
            cache: mem.get("file").copied(),
        },
        pids: pids_of(d),
        block_io: io,
        network: NetworkStats::default(),
    }
}

fn pids_of(d: &Path) -> PidsStats {
    PidsStats {
        current: read_u64(&d.join("pids.current")),
        limit: read_max(&d.join("pids.max")).flatten(),
    }
}

/// Sums `Read` and `Write` over the devices of a v1 blkio file.
fn blkio_v1(path: &Path) -> BlockIoStats {
    let Ok(text) = fs::read_to_string(path) else {
        return BlockIoStats::default();
    };
    let (mut r, mut w) = (0u64, 0u64);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [_dev, op, v] = f[..] {
            let v = v.parse::<u64>().unwrap_or(0);
            match op {
                "Read" => r += v,
                "Write" => w += v,
                _ => {}
            }
        }
    }
    BlockIoStats {
        read_bytes: Some(r),
        write_bytes: Some(w),
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A file holding a number or `max`: `Some(None)` for `max`, `None` if unreadable.
fn read_max(path: &Path) -> Option<Option<u64>> {
    let s = fs::read_to_string(path).ok()?;
    match s.trim() {
        "max" => Some(None),
        v => v.parse().ok().map(Some),
    }
}

/// A flat keyed file (`key value` lines).
fn read_keyed(path: &Path) -> HashMap<String, u64> {
    fs::read_to_string(path)
        .map(|s| parse_keyed(&s))
        .unwrap_or_default()
}

fn parse_keyed(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .map_or(100, |t| t as u64)
}

/// Network totals of the namespace `/proc/<pid>/net/dev` shows, loopback aside.
/// `None` when the process shares the shim's (the host's) namespace: those figures
/// would be the host's, not the container's.
pub fn network_of(pid: i32) -> NetworkStats {
    let ns = |p: &str| fs::read_link(p).ok();
    let theirs = ns(&format!("/proc/{pid}/ns/net"));
    if theirs.is_none() || theirs == ns("/proc/self/ns/net") {
        return NetworkStats::default();
    }
    match fs::read_to_string(format!("/proc/{pid}/net/dev")) {
        Ok(text) => parse_net_dev(&text),
        Err(_) => NetworkStats::default(),
    }
}

fn parse_net_dev(text: &str) -> NetworkStats {
    let (mut rb, mut rp, mut tb, mut tp) = (0u64, 0u64, 0u64, 0u64);
    for line in text.lines().skip(2) {
        let Some((iface, rest)) = line.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if f.len() >= 10 {
            rb += f[0];
            rp += f[1];
            tb += f[8];
            tp += f[9];
        }
    }
    NetworkStats {
        rx_bytes: Some(rb),
        rx_packets: Some(rp),
        tx_bytes: Some(tb),
        tx_packets: Some(tp),
    }
}

/// Watches the container's OOM kill counter: a thread woken by the kernel (v1:
/// eventfd on memory.oom_control; v2: inotify on memory.events) reports each kill,
/// and [`OomWatch::check`] reports any not yet reported (the exit path calls it so
/// the oom event precedes the exit event).
pub struct OomWatch {
    cgroup: Cgroup,
    reported: Mutex<u64>,
    emit: Box<dyn Fn() + Send + Sync>,
}

impl OomWatch {
    /// Starts watching; `None` when the kernel does not count OOM kills here.
    /// The cgroup is the container's own since its creation, so every kill it has
    /// counted is the container's, those before the watch began included (a
    /// process can be killed between its start and this call).
    pub fn start(cgroup: Cgroup, emit: impl Fn() + Send + Sync + 'static) -> Option<Arc<Self>> {
        cgroup.oom_kills()?;
        let source = cgroup.oom_source()?;
        let v1 = matches!(cgroup, Cgroup::V1(_));
        let watch = Arc::new(Self {
            cgroup,
            reported: Mutex::new(0),
            emit: Box::new(emit),
        });
        let w = watch.clone();
        let spawned = std::thread::Builder::new()
            .name("oom".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let r = if v1 {
                    w.follow_v1(&source)
                } else {
                    w.follow_v2(&source)
                };
                if let Err(e) = r {
                    tracing::warn!(error = %e, "oom notifications stopped");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "start oom watcher");
        }
        Some(watch)
    }

    /// Emits an oom event if the counter moved since the last report; returns
    /// whether the OOM killer acted here at all.
    pub fn check(&self) -> bool {
        let mut reported = self.reported.lock().unwrap();
        let now = self.cgroup.oom_kills().unwrap_or(*reported);
        if now > *reported {
            *reported = now;
            (self.emit)();
        }
        *reported > 0
    }

    /// After a notification the counter may lag the kill by a moment.
    fn settle(&self) {
        let before = *self.reported.lock().unwrap();
        let start = Instant::now();
        loop {
            self.check();
            let moved = *self.reported.lock().unwrap() > before;
            if moved || start.elapsed() > Duration::from_millis(200) || !self.cgroup.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn follow_v1(&self, oom_control: &Path) -> io::Result<()> {
        use nix::sys::eventfd::{EfdFlags, EventFd};
        use std::os::fd::AsRawFd;
        let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC)?;
        let ctl = fs::File::open(oom_control)?;
        let event_control = oom_control.with_file_name("cgroup.event_control");
        fs::write(
            &event_control,
            format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd()),
        )?;
        // Kills before the eventfd was armed signal nothing.
        self.check();
        loop {
            efd.read()?;
            // The cgroup's removal also signals the eventfd.
            if !self.cgroup.exists() {
                return Ok(());
            }
            self.settle();
        }
    }

    fn follow_v2(&self, events: &Path) -> io::Result<()> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let ino = Inotify::init(InitFlags::IN_CLOEXEC)?;
        ino.add_watch(events, AddWatchFlags::IN_MODIFY)?;
        self.check();
        loop {
            let evs = ino.read_events()?;
            if evs
                .iter()
                .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
                || !self.cgroup.exists()
            {
                return Ok(());
            }
            self.check();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
        LinuxResourcesBuilder,
    };

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name)
    }

    /// A copy of a fixture tree in a temp dir, for tests that write.
    fn scratch(name: &str) -> PathBuf {
        let dst = std::env::temp_dir().join(format!(
            "berth-cg-{}-{}-{name}",
            std::process::id(),
            COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dst);
        copy_dir(&fixture(name), &dst);
        dst
    }
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    fn copy_dir(src: &Path, dst: &Path) {
        fs::create_dir_all(dst).unwrap();
        for e in fs::read_dir(src).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                copy_dir(&p, &dst.join(e.file_name()));
            } else {
                fs::copy(&p, dst.join(e.file_name())).unwrap();
            }
        }
    }

    fn v1_at(base: &Path) -> Cgroup {
        Cgroup::V1(V1_CONTROLLERS.iter().map(|c| (*c, base.join(c))).collect())
    }

    #[test]
    fn v2_stats_map_every_figure() {
        let s = Cgroup::V2(fixture("cgroupv2")).stats();
        assert_eq!(s.cpu.total_ns, Some(7_512_345_000));
        assert_eq!(s.cpu.user_ns, Some(5_001_000_000));
        assert_eq!(s.cpu.system_ns, Some(2_511_345_000));
        assert_eq!(s.memory.usage, Some(52_891_648));
        assert_eq!(s.memory.limit, Some(67_108_864));
        assert_eq!(s.memory.cache, Some(1_232_896));
        assert_eq!(s.memory.max_usage, None, "no memory.peak before 5.19");
        assert_eq!(s.pids.current, Some(3));
        assert_eq!(s.pids.limit, Some(100));
        assert_eq!(s.block_io.read_bytes, Some(4_096 + 1_208_320));
        assert_eq!(s.block_io.write_bytes, Some(8_192));
        // The JSON says null for what v2 does not have, never 0.
        let v = serde_json::to_value(&s).unwrap();
        assert!(v["Memory"]["MaxUsage"].is_null(), "{v}");
    }

    #[test]
    fn v2_unlimited_is_null_and_oom_counter_and_freezer_read() {
        let cg = Cgroup::V2(fixture("cgroupv2-unlimited"));
        let s = cg.stats();
        assert_eq!(s.memory.limit, None);
        assert_eq!(s.pids.limit, None);
        assert_eq!(
            s.memory.max_usage,
            Some(104_857_600),
            "memory.peak on 5.19+"
        );
        assert_eq!(
            s.block_io.read_bytes,
            Some(0),
            "empty io.stat: nothing read yet"
        );
        assert!(cg.frozen());
        assert_eq!(cg.oom_kills(), Some(2));
        let cg = Cgroup::V2(fixture("cgroupv2"));
        assert!(!cg.frozen());
        assert_eq!(cg.oom_kills(), Some(0));
    }

    #[test]
    fn v1_stats_map_every_figure() {
        let cg = v1_at(&fixture("cgroupv1"));
        let s = cg.stats();
        assert_eq!(s.cpu.total_ns, Some(123_456_789));
        assert_eq!(s.cpu.user_ns, Some(100_000_000));
        assert_eq!(s.cpu.system_ns, Some(23_456_789));
        assert_eq!(s.memory.usage, Some(5_242_880));
        assert_eq!(s.memory.limit, None, "unlimited v1 limit is null");
        assert_eq!(s.memory.max_usage, Some(6_291_456));
        assert_eq!(s.memory.cache, Some(1_048_576));
        assert_eq!(s.pids.current, Some(2));
        assert_eq!(s.pids.limit, None);
        assert_eq!(s.block_io.read_bytes, Some(1_000 + 24));
        assert_eq!(s.block_io.write_bytes, Some(512));
        assert_eq!(cg.oom_kills(), Some(1));
        assert!(cg.frozen());
    }

    #[test]
    fn missing_controller_is_null_not_zero() {
        let cg = Cgroup::V2(std::env::temp_dir().join("berth-no-such-cgroup"));
        let v = serde_json::to_value(cg.stats()).unwrap();
        for (k, f) in [
            ("Cpu", "TotalNs"),
            ("Memory", "Usage"),
            ("Pids", "Current"),
            ("BlockIo", "ReadBytes"),
        ] {
            assert!(v[k][f].is_null(), "{k}.{f}: {v}");
        }
    }

    #[test]
    fn net_dev_skips_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  \
eth0:    2000      20    0    0    0     0          0         0     3000      30    0    0    0     0       0          0\n";
        let n = parse_net_dev(text);
        assert_eq!(n.rx_bytes, Some(2000));
        assert_eq!(n.rx_packets, Some(20));
        assert_eq!(n.tx_bytes, Some(3000));
        assert_eq!(n.tx_packets, Some(30));
    }

    fn resources(f: impl FnOnce(LinuxResourcesBuilder) -> LinuxResourcesBuilder) -> LinuxResources {
        f(LinuxResourcesBuilder::default()).build().unwrap()
    }

    #[test]
    fn v2_update_maps_docker_settings() {
        let d = fixture("cgroupv2");
        let r = resources(|b| {
            b.memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .swap(128 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .quota(50_000)
                    .shares(1024u64)
                    .cpus("0")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(-1).build().unwrap())
        });
        let w = Cgroup::V2(d.clone()).plan_update(&r).unwrap();
        let got: Vec<(String, String)> = w
            .iter()
            .map(|w| {
                (
                    w.path.file_name().unwrap().to_string_lossy().into_owned(),
                    w.value.clone(),
                )
            })
            .collect();
        let want = [
            ("memory.max", "67108864"),
            ("memory.swap.max", "67108864"),
            ("cpu.max", "50000 100000"),
            ("cpu.weight", "39"),
            ("cpuset.cpus", "0"),
            ("pids.max", "max"),
        ];
        assert_eq!(
            got,
            want.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        );
        // No io.weight in the fixture: a clear error, nothing planned.
        let r = resources(|b| {
            b.block_io(
                LinuxBlockIoBuilder::default()
                    .weight(300u16)
                    .build()
                    .unwrap(),
            )
        });
        match Cgroup::V2(d).plan_update(&r) {
            Err(PlanError::Unavailable(m)) => assert!(m.contains("io.weight"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shares_map_onto_weight_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
    }

    #[test]
    fn v1_update_orders_memory_and_swap_and_refuses_blkio_without_weights() {
        let base = scratch("cgroupv1");
        let cg = v1_at(&base);
        // memsw is 64 MiB in the fixture: growing both raises memsw first.
        let r = resources(|b| {
            b.memory(
                LinuxMemoryBuilder::default()
                    .limit(96 << 20)
                    .swap(192 << 20)
                    .build()
                    .unwrap(),
            )
        });
        let w = cg.plan_update(&r).unwrap();
        assert!(w[0].path.ends_with("memory.memsw.limit_in_bytes"), "{w:?}");
        assert!(w[1].path.ends_with("memory.limit_in_bytes"), "{w:?}");
        // Memory alone past memory+swap: Docker's error.
        let r = resources(|b| {
            b.memory(
                LinuxMemoryBuilder::default()
                    .limit(96 << 20)
                    .build()
                    .unwrap(),
            )
        });
        assert!(matches!(cg.plan_update(&r), Err(PlanError::Invalid(_))));
        let r = resources(|b| {
            b.block_io(
                LinuxBlockIoBuilder::default()
                    .weight(300u16)
                    .build()
                    .unwrap(),
            )
        });
        assert!(matches!(cg.plan_update(&r), Err(PlanError::Unavailable(_))));
        // Applying writes the files; a refused write undoes the earlier ones.
        let r = resources(|b| b.pids(LinuxPidsBuilder::default().limit(50).build().unwrap()));
        let mut w = cg.plan_update(&r).unwrap();
        w.push(Write::new(base.join("no-such-dir/x"), "1"));
        assert!(apply(&w).is_err());
        assert_eq!(
            fs::read_to_string(base.join("pids/pids.max"))
                .unwrap()
                .trim(),
            "max"
        );
        w.pop();
        apply(&w).unwrap();
        assert_eq!(
            fs::read_to_string(base.join("pids/pids.max"))
                .unwrap()
                .trim(),
            "50"
        );
        let _ = fs::remove_dir_all(&base);
    }
}
