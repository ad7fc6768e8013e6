//! Observing and controlling a running container: pause and resume (through the
//! shim's cgroup freezer), stats, pids, the process summary behind `top`, and live
//! resource updates.

use std::collections::HashMap;
use std::time::Duration;

use berth_types::{
    ContainerId, Event, EventKind, ProcessSummary, Resources, Stats, STATS_TYPE_URL,
};
use containerd_shim_protos::api;
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources,
    LinuxResourcesBuilder,
};

use super::shim::{ctx, map_err, QUICK};
use super::{journal, paths, record, Platform};
use crate::error::{Error, ErrorKind, Result};

/// `type_url` containerd gives the OCI resources of an UpdateTaskRequest.
const RESOURCES_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

/// How long pause/resume wait for their event to reach the sink.
const EVENT_WAIT: Duration = Duration::from_secs(5);

impl Platform {
    /// The sequence number of the last event journaled for `id`.
    fn last_seq(&self, id: &ContainerId) -> u64 {
        journal::read_all(&paths::journal(&self.roots.state_dir(id)))
            .last()
            .map_or(0, |e| e.seq)
    }

    /// Waits until this client's follower of `id` handed an event matching `pred`
    /// to the sink. A client that follows no journal of `id` has nothing to wait for.
    async fn delivered(&self, id: &ContainerId, pred: impl Fn(&Event) -> bool) {
        let rx = self
            .followers
            .lock()
            .unwrap()
            .get(id)
            .map(|f| f.delivered.clone());
        if let Some(mut rx) = rx {
            let seen = rx.wait_for(|h| h.iter().any(&pred));
            let _ = tokio::time::timeout(EVENT_WAIT, seen).await;
        }
    }

    /// Freezes every process of the container; returns once the paused event
    /// reached the sink.
    pub async fn pause(&self, id: &ContainerId) -> Result<()> {
        self.freezer("pause", id, EventKind::Paused).await
    }

    /// Thaws the container; returns once the resumed event reached the sink.
    pub async fn resume(&self, id: &ContainerId) -> Result<()> {
        self.freezer("resume", id, EventKind::Resumed).await
    }

    async fn freezer(&self, op: &'static str, id: &ContainerId, kind: EventKind) -> Result<()> {
        self.record(op, id)?;
        let shim = self.live_shim(op, id)?;
        let before = self.last_seq(id);
        let mut reqid = id.to_string();
        let call = if kind == EventKind::Paused {
            shim.call(move |t| {
                let mut req = api::PauseRequest::new();
                req.id = std::mem::take(&mut reqid);
                t.pause(ctx(Some(QUICK)), &req)
            })
            .await
        } else {
            shim.call(move |t| {
                let mut req = api::ResumeRequest::new();
                req.id = std::mem::take(&mut reqid);
                t.resume(ctx(Some(QUICK)), &req)
            })
            .await
        };
        call.map_err(|e| map_err(op, id, op, e))?;
        self.delivered(id, |e| e.kind == kind && e.seq > before)
            .await;
        Ok(())
    }

    /// A sample of the container's resource use.
    pub async fn stats(&self, id: &ContainerId) -> Result<Stats> {
        const OP: &str = "stats";
        let shim = self.live_shim(OP, id)?;
        let mut req = api::StatsRequest::new();
        req.id = id.to_string();
        let resp = shim
            .call(move |t| t.stats(ctx(Some(QUICK)), &req))
            .await
            .map_err(|e| map_err(OP, id, "read stats", e))?;
        let any = resp.stats.into_option().ok_or_else(|| {
            Error::new(
                OP,
                id.as_str(),
                ErrorKind::Internal,
                "read stats",
                "the shim sent no stats",
            )
        })?;
        if any.type_url != STATS_TYPE_URL {
            return Err(Error::new(
                OP,
                id.as_str(),
                ErrorKind::Unsupported,
                "read stats",
                format!("stats of type {:?} are not understood", any.type_url),
            ));
        }
        serde_json::from_slice(&any.value)
            .map_err(|e| Error::new(OP, id.as_str(), ErrorKind::Internal, "decode stats", e))
    }

    /// Host pids of every process of the container.
    pub async fn pids(&self, id: &ContainerId) -> Result<Vec<u32>> {
        const OP: &str = "pids";
        self.record(OP, id)?;
        let shim = self.live_shim(OP, id)?;
        let mut req = api::PidsRequest::new();
        req.id = id.to_string();
        let resp = shim
            .call(move |t| t.pids(ctx(Some(QUICK)), &req))
            .await
            .map_err(|e| map_err(OP, id, "list processes", e))?;
        let mut pids: Vec<u32> = resp.processes.iter().map(|p| p.pid).collect();
        pids.sort_unstable();
        Ok(pids)
    }

    /// Every process of the container with user, CPU time, memory and command.
    pub async fn summary(&self, id: &ContainerId) -> Result<Vec<ProcessSummary>> {
        let pids = self.pids(id).await.map_err(|mut e| {
            e.op = "top";
            e
        })?;
        Ok(tokio::task::spawn_blocking(move || {
            let mut users = Users::default();
            pids.into_iter()
                .filter_map(|p| summarize(p, &mut users))
                .collect()
        })
        .await
        .unwrap_or_default())
    }

    /// Changes resource limits of a running container. A value the kernel refuses
    /// leaves the old limits in force and is an error naming it.
    pub async fn update_resources(&self, id: &ContainerId, r: &Resources) -> Result<()> {
        const OP: &str = "update";
        self.record(OP, id)?;
        let shim = self.live_shim(OP, id)?;
        let resources = to_oci(r).map_err(|e| {
            Error::new(
                OP,
                id.as_str(),
                ErrorKind::InvalidArgument,
                "check resources",
                e,
            )
        })?;
        let mut any = protobuf::well_known_types::any::Any::new();
        any.type_url = RESOURCES_TYPE_URL.to_owned();
        any.value = serde_json::to_vec(&resources)
            .map_err(|e| Error::new(OP, id.as_str(), ErrorKind::Internal, "encode resources", e))?;
        let mut req = api::UpdateTaskRequest::new();
        req.id = id.to_string();
        req.resources = protobuf::MessageField::some(any);
        shim.call(move |t| t.update(ctx(Some(QUICK)), &req))
            .await
            .map_err(|e| map_err(OP, id, "update", e))?;
        // The record shows the limits in force (inspect's Resources).
        let dir = self.roots.data_dir(id);
        if let Ok(mut rec) = record::read(&dir) {
            if let Ok(mut spec) =
                serde_json::from_value::<oci_spec::runtime::Spec>(rec.spec.clone())
            {
                merge_resources(&mut spec, &resources);
                if let Ok(v) = serde_json::to_value(&spec) {
                    rec.spec = v;
                    if let Err(e) = record::write(&dir, &rec) {
                        tracing::warn!(container_id = %id, error = %e, "record updated resources");
                    }
                }
            }
        }
        Ok(())
    }
}

/// berth's resources as the OCI runtime spec's (what containerd sends).
fn to_oci(r: &Resources) -> std::result::Result<LinuxResources, String> {
    let mut b = LinuxResourcesBuilder::default();
    if r.memory.is_some() || r.memory_swap.is_some() {
        let mut m = LinuxMemoryBuilder::default();
        if let Some(v) = r.memory {
            m = m.limit(v);
        }
        if let Some(v) = r.memory_swap {
            m = m.swap(v);
        }
        b = b.memory(m.build().map_err(|e| e.to_string())?);
    }
    if r.cpu_quota.is_some()
        || r.cpu_period.is_some()
        || r.cpu_shares.is_some()
        || r.cpuset_cpus.is_some()
    {
        let mut c = LinuxCpuBuilder::default();
        if let Some(v) = r.cpu_quota {
            c = c.quota(v);
        }
        if let Some(v) = r.cpu_period {
            c = c.period(v);
        }
        if let Some(v) = r.cpu_shares {
            c = c.shares(v);
        }
        if let Some(v) = &r.cpuset_cpus {
            c = c.cpus(v.clone());
        }
        b = b.cpu(c.build().map_err(|e| e.to_string())?);
    }
    if let Some(v) = r.pids_limit {
        b = b.pids(
            LinuxPidsBuilder::default()
                .limit(v)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    if let Some(w) = r.blkio_weight {
        if !(10..=1000).contains(&w) {
            return Err(format!("block I/O weight {w} is outside 10-1000"));
        }
        b = b.block_io(
            LinuxBlockIoBuilder::default()
                .weight(w)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    b.build().map_err(|e| e.to_string())
}

/// Writes the fields `u` sets into `spec`'s resources.
fn merge_resources(spec: &mut oci_spec::runtime::Spec, u: &LinuxResources) {
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut res = linux.resources().clone().unwrap_or_default();
    if let Some(um) = u.memory() {
        let mut m = (*res.memory()).unwrap_or_default();
        if let Some(v) = um.limit() {
            m.set_limit(Some(v));
        }
        if let Some(v) = um.swap() {
            m.set_swap(Some(v));
        }
        res.set_memory(Some(m));
    }
    if let Some(uc) = u.cpu() {
        let mut c = res.cpu().clone().unwrap_or_default();
        if uc.quota().is_some() {
            c.set_quota(uc.quota());
        }
        if uc.period().is_some() {
            c.set_period(uc.period());
        }
        if uc.shares().is_some() {
            c.set_shares(uc.shares());
        }
        if uc.cpus().is_some() {
            c.set_cpus(uc.cpus().clone());
        }
        res.set_cpu(Some(c));
    }
    if let Some(p) = u.pids() {
        res.set_pids(Some(*p));
    }
    if let Some(b) = u.block_io() {
        let mut bio = res.block_io().clone().unwrap_or_default();
        bio.set_weight(b.weight());
        res.set_block_io(Some(bio));
    }
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
}

/// uid → name, from the passwd file of each process's own root.
#[derive(Default)]
struct Users {
    by_root: HashMap<String, HashMap<u32, String>>,
}

impl Users {
    fn name(&mut self, pid: u32, uid: u32) -> String {
        let root = std::fs::read_link(format!("/proc/{pid}/root"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let table = self.by_root.entry(root).or_insert_with(|| {
            std::fs::read_to_string(format!("/proc/{pid}/root/etc/passwd"))
                .map(|s| parse_passwd(&s))
                .unwrap_or_default()
        });
        table.get(&uid).cloned().unwrap_or_else(|| uid.to_string())
    }
}

fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, (*f.first()?).to_owned()))
        })
        .collect()
}

/// One process as `top` shows it; `None` if it went away meanwhile.
fn summarize(pid: u32, users: &mut Users) -> Option<ProcessSummary> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let (comm, cpu_ticks) = parse_stat(&stat)?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap_or(0);
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |p| p as u64);
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .map_or(100, |t| t as u64);
    let command = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        let mut args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.last().is_some_and(String::is_empty) {
            args.pop();
        }
        args.join(" ")
    };
    Some(ProcessSummary {
        pid,
        user: users.name(pid, uid),
        cpu_time_ns: cpu_ticks * (1_000_000_000 / ticks),
        memory_bytes: pages * page,
        command,
    })
}

/// `comm` and utime + stime (clock ticks) from `/proc/<pid>/stat`.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After the comm: state is field 3; utime and stime are fields 14 and 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let stat =
            "42 (my (odd) cmd) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 100 1000 50";
        assert_eq!(parse_stat(stat), Some(("my (odd) cmd".into(), 10)));
    }

    #[test]
    fn resources_become_the_oci_shape_containerd_sends() {
        let r = Resources {
            memory: Some(64 << 20),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            pids_limit: Some(20),
            ..Default::default()
        };
        let v = serde_json::to_value(to_oci(&r).unwrap()).unwrap();
        assert_eq!(v["memory"]["limit"], 64 << 20);
        assert_eq!(v["cpu"]["quota"], 50_000);
        assert_eq!(v["pids"]["limit"], 20);
        assert!(v.get("blockIO").is_none());
        let bad = Resources {
            blkio_weight: Some(5),
            ..Default::default()
        };
        assert!(to_oci(&bad).is_err());
    }

    #[test]
    fn passwd_maps_uids() {
        let m = parse_passwd("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n");
        assert_eq!(m.get(&65534).map(String::as_str), Some("nobody"));
    }
}
