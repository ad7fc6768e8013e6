//! Observing and controlling the running container: Pause, Resume, Stats and
//! Update of the Task service, the paused state, and the OOM watch that makes the
//! oom event and init's OOMKilled.

use containerd_shim_protos::protobuf::Message;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use berth_types::{EventKind, WireErrorKind, INIT_PROCESS_ID, STATS_TYPE_URL};
use chrono::Utc;
use containerd_shim_protos::api;
use libcgroups::common::{CgroupManager, FreezerState};
use libcontainer::container::ContainerStatus;

use super::{emit, fail, Phase, Service, TResult};
use crate::cgroup::{self, Cgroup, OomWatch, PlanError};
use crate::journal::Detail;

/// The container's cgroup path (`/berth/<id>`): fixed at create, so read once.
static CGROUP_PATH: OnceLock<PathBuf> = OnceLock::new();

impl Service {
    pub(super) fn cgroup_path(&self, step: &str) -> TResult<PathBuf> {
        if let Some(p) = CGROUP_PATH.get() {
            return Ok(p.clone());
        }
        let c = self.container(step)?;
        let p = c
            .spec()
            .map_err(|e| {
                fail(
                    WireErrorKind::Internal,
                    step,
                    format!("read container config: {e}"),
                )
            })?
            .cgroup_path;
        Ok(CGROUP_PATH.get_or_init(|| p).clone())
    }

    /// The container's cgroup.
    pub(super) fn cgroup(&self, step: &str) -> TResult<Cgroup> {
        Ok(Cgroup::open(&self.cgroup_path(step)?))
    }

    /// Whether the freezer holds the container: the cgroup is the truth, so the
    /// state survives anything that happens to the shim's clients.
    pub(super) fn frozen(&self) -> bool {
        self.cgroup("state").is_ok_and(|c| c.frozen())
    }

    /// Init, if it is running (not created, not exited).
    pub(super) fn running_init(&self, step: &str) -> TResult<Arc<super::Proc>> {
        let init = self.init()?;
        if init.phase() != Phase::Running || init.exit().is_some() {
            return Err(fail(
                WireErrorKind::FailedPrecondition,
                step,
                "the container is not running",
            ));
        }
        Ok(init)
    }

    pub(super) fn freeze(&self, step: &str, state: FreezerState) -> TResult<()> {
        let manager = libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
            cgroup_path: self.cgroup_path(step)?,
            systemd_cgroup: false,
            container_name: self.id.to_string(),
        })
        .map_err(|e| fail(WireErrorKind::Internal, step, format!("open cgroup: {e}")))?;
        manager
            .freeze(state)
            .map_err(|e| fail(WireErrorKind::Internal, step, format!("freezer: {e}")))?;
        // Keep libcontainer's own record in step (best effort: the cgroup is what
        // counts).
        let _state = self.state_lock.lock().unwrap();
        if let Ok(mut c) = self.container_locked(step) {
            let status = match state {
                FreezerState::Frozen => ContainerStatus::Paused,
                _ => ContainerStatus::Running,
            };
            if let Err(e) = c.set_status(status).save() {
                tracing::warn!(error = %e, "save container status");
            }
        }
        Ok(())
    }

    /// Every process in the container's cgroup.
    pub(super) fn container_pids(&self, step: &str) -> TResult<Vec<i32>> {
        let container = self.container(step)?;
        let config = container
            .spec()
            .map_err(|e| fail(WireErrorKind::Internal, step, e))?;
        let manager = libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
            cgroup_path: config.cgroup_path.clone(),
            systemd_cgroup: false,
            container_name: self.id.to_string(),
        })
        .map_err(|e| fail(WireErrorKind::Internal, step, format!("open cgroup: {e}")))?;
        let pids = libcgroups::common::CgroupManager::get_all_pids(&manager)
            .map_err(|e| fail(WireErrorKind::Internal, step, format!("read cgroup: {e}")))?;
        Ok(pids.into_iter().map(|p| p.as_raw()).collect())
    }

    fn not_checkpointing(&self, step: &str) -> TResult<()> {
        if self.checkpointing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(fail(
                WireErrorKind::FailedPrecondition,
                step,
                "a checkpoint is being taken; try again when it is done",
            ));
        }
        Ok(())
    }

    pub(super) fn do_pause(&self) -> TResult<api::Empty> {
        let _span = tracing::info_span!("pause", container_id = %self.id).entered();
        self.running_init("pause")?;
        self.not_checkpointing("pause")?;
        if self.frozen() {
            return Err(fail(
                WireErrorKind::FailedPrecondition,
                "pause",
                "the container is already paused",
            ));
        }
        self.freeze("pause", FreezerState::Frozen)?;
        self.emit(EventKind::Paused, Detail::default());
        Ok(api::Empty::new())
    }

    pub(super) fn do_resume(&self) -> TResult<api::Empty> {
        let _span = tracing::info_span!("resume", container_id = %self.id).entered();
        self.running_init("resume")?;
        self.not_checkpointing("resume")?;
        if !self.frozen() {
            return Err(fail(
                WireErrorKind::FailedPrecondition,
                "resume",
                "the container is not paused",
            ));
        }
        self.freeze("resume", FreezerState::Thawed)?;
        self.emit(EventKind::Resumed, Detail::default());
        Ok(api::Empty::new())
    }

    pub(super) fn do_stats(&self) -> TResult<api::StatsResponse> {
        let init = self.running_init("stats")?;
        let cgroup = self.cgroup("stats")?;
        let mut stats = cgroup.stats();
        stats.network = cgroup::network_of(init.pid());
        stats.read = Some(Utc::now());
        let mut any = containerd_shim_protos::protobuf::well_known_types::any::Any::new();
        if self.paths.data_dir.is_some() {
            any.type_url = STATS_TYPE_URL.to_owned();
            any.value = serde_json::to_vec(&stats)
                .map_err(|e| fail(WireErrorKind::Internal, "stats", e))?;
        } else {
            // containerd (`ctr task metrics`, the CRI) reads its own cgroups v1
            // Metrics; a figure this host lacks is 0 there, the proto has no null.
            any.type_url = "io.containerd.cgroups.v1.Metrics".to_owned();
            any.value = containerd_metrics(&stats, &cgroup.detail())
                .write_to_bytes()
                .map_err(|e| fail(WireErrorKind::Internal, "stats", e))?;
        }
        let mut resp = api::StatsResponse::new();
        resp.stats = containerd_shim_protos::protobuf::MessageField::some(any);
        Ok(resp)
    }

    pub(super) fn do_update(&self, req: api::UpdateTaskRequest) -> TResult<api::Empty> {
        let _span = tracing::info_span!("update", container_id = %self.id).entered();
        self.running_init("update")?;
        let value = req
            .resources
            .as_ref()
            .map(|a| a.value.as_slice())
            .unwrap_or(b"{}");
        let resources: oci_spec::runtime::LinuxResources = serde_json::from_slice(value)
            .map_err(|e| fail(WireErrorKind::InvalidArgument, "read resources", e))?;
        let writes = self
            .cgroup("update")?
            .plan_update(&resources)
            .map_err(|e| match e {
                PlanError::Unavailable(m) => fail(WireErrorKind::FailedPrecondition, "update", m),
                PlanError::Invalid(m) => fail(WireErrorKind::InvalidArgument, "update", m),
            })?;
        cgroup::apply(&writes).map_err(|r| {
            let file = r
                .write
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let why = match r.error.raw_os_error() {
                Some(libc::EBUSY) if file.starts_with("memory.") => {
                    "the container uses more memory than that".to_owned()
                }
                Some(libc::EINVAL) => "the value is out of range for this cgroup".to_owned(),
                _ => String::new(),
            };
            let msg = if why.is_empty() {
                format!("the kernel refused {file}={}: {}", r.write.value, r.error)
            } else {
                format!(
                    "the kernel refused {file}={}: {why} ({}); the old limits stay",
                    r.write.value, r.error
                )
            };
            fail(WireErrorKind::FailedPrecondition, "update", msg)
        })?;
        Ok(api::Empty::new())
    }

    /// Starts the OOM watch of the container (called once init exists).
    pub(super) fn oom_watch(&self, pid: i32) -> Option<Arc<OomWatch>> {
        let cgroup = self.cgroup("watch oom").ok()?;
        let journal = self.journal.clone();
        OomWatch::start(cgroup, move || {
            emit(
                &journal,
                EventKind::Oom,
                Detail {
                    process_id: Some(INIT_PROCESS_ID),
                    pid: Some(pid),
                    ..Default::default()
                },
            );
        })
    }
}

/// berth's stats and the cgroup's `detail` as containerd's cgroups v1 `Metrics`
/// (the CRI's working set is `usage - total_inactive_file`).
fn containerd_metrics(
    s: &berth_types::Stats,
    d: &cgroup::Detail,
) -> containerd_shim_protos::cgroups::metrics::Metrics {
    use containerd_shim_protos::cgroups::metrics as m;
    use containerd_shim_protos::protobuf::MessageField;
    let mut out = m::Metrics::new();
    let mut usage = m::CPUUsage::new();
    usage.total = s.cpu.total_ns.unwrap_or_default();
    usage.user = s.cpu.user_ns.unwrap_or_default();
    usage.kernel = s.cpu.system_ns.unwrap_or_default();
    usage.per_cpu = d.per_cpu.clone();
    let mut cpu = m::CPUStat::new();
    cpu.usage = MessageField::some(usage);
    let c = |k: &str| d.cpu_stat.get(k).copied().unwrap_or_default();
    let mut throttle = m::Throttle::new();
    throttle.periods = c("nr_periods");
    throttle.throttled_periods = c("nr_throttled");
    throttle.throttled_time = if d.v2 {
        c("throttled_usec") * 1000
    } else {
        c("throttled_time")
    };
    cpu.throttling = MessageField::some(throttle);
    out.cpu = MessageField::some(cpu);
    let mut entry = m::MemoryEntry::new();
    entry.usage = s.memory.usage.unwrap_or_default();
    entry.limit = s.memory.limit.unwrap_or(u64::MAX);
    entry.max = s.memory.max_usage.unwrap_or_default();
    let mut mem = m::MemoryStat::new();
    // v1 keys each figure as containerd names it (and `total_*` for the
    // hierarchy); v2 has one set, hierarchical, under its own names.
    let stat = |v1: &str, v2: &str| {
        let key = if d.v2 { v2 } else { v1 };
        d.memory_stat.get(key).copied().unwrap_or_default()
    };
    let total = |v1: &str, v2: &str| {
        let key = if d.v2 {
            v2.to_owned()
        } else {
            format!("total_{v1}")
        };
        d.memory_stat.get(&key).copied().unwrap_or_default()
    };
    for (own, hier, v1, v2) in [
        (&mut mem.cache, &mut mem.total_cache, "cache", "file"),
        (&mut mem.rss, &mut mem.total_rss, "rss", "anon"),
        (
            &mut mem.rss_huge,
            &mut mem.total_rss_huge,
            "rss_huge",
            "anon_thp",
        ),
        (
            &mut mem.mapped_file,
            &mut mem.total_mapped_file,
            "mapped_file",
            "file_mapped",
        ),
        (&mut mem.dirty, &mut mem.total_dirty, "dirty", "file_dirty"),
        (
            &mut mem.writeback,
            &mut mem.total_writeback,
            "writeback",
            "file_writeback",
        ),
        (
            &mut mem.pg_pg_in,
            &mut mem.total_pg_pg_in,
            "pgpgin",
            "pgpgin",
        ),
        (
            &mut mem.pg_pg_out,
            &mut mem.total_pg_pg_out,
            "pgpgout",
            "pgpgout",
        ),
        (
            &mut mem.pg_fault,
            &mut mem.total_pg_fault,
            "pgfault",
            "pgfault",
        ),
        (
            &mut mem.pg_maj_fault,
            &mut mem.total_pg_maj_fault,
            "pgmajfault",
            "pgmajfault",
        ),
        (
            &mut mem.inactive_anon,
            &mut mem.total_inactive_anon,
            "inactive_anon",
            "inactive_anon",
        ),
        (
            &mut mem.active_anon,
            &mut mem.total_active_anon,
            "active_anon",
            "active_anon",
        ),
        (
            &mut mem.inactive_file,
            &mut mem.total_inactive_file,
            "inactive_file",
            "inactive_file",
        ),
        (
            &mut mem.active_file,
            &mut mem.total_active_file,
            "active_file",
            "active_file",
        ),
        (
            &mut mem.unevictable,
            &mut mem.total_unevictable,
            "unevictable",
            "unevictable",
        ),
    ] {
        *own = stat(v1, v2);
        *hier = total(v1, v2);
    }
    if !d.v2 {
        mem.hierarchical_memory_limit = stat("hierarchical_memory_limit", "");
        mem.hierarchical_swap_limit = stat("hierarchical_memsw_limit", "");
    }
    mem.usage = MessageField::some(entry);
    out.memory = MessageField::some(mem);
    let mut pids = m::PidsStat::new();
    pids.current = s.pids.current.unwrap_or_default();
    pids.limit = s.pids.limit.unwrap_or_default();
    out.pids = MessageField::some(pids);
    let mut blkio = m::BlkIOStat::new();
    for (op, v) in [
        ("Read", s.block_io.read_bytes),
        ("Write", s.block_io.write_bytes),
    ] {
        if let Some(v) = v {
            let mut e = m::BlkIOEntry::new();
            e.op = op.to_owned();
            e.value = v;
            blkio.io_service_bytes_recursive.push(e);
        }
    }
    out.blkio = MessageField::some(blkio);
    if s.network.rx_bytes.is_some() {
        let mut n = m::NetworkStat::new();
        n.name = "eth0".to_owned();
        n.rx_bytes = s.network.rx_bytes.unwrap_or_default();
        n.rx_packets = s.network.rx_packets.unwrap_or_default();
        n.tx_bytes = s.network.tx_bytes.unwrap_or_default();
        n.tx_packets = s.network.tx_packets.unwrap_or_default();
        out.network.push(n);
    }
    out
}
