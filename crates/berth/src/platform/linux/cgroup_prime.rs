//! Starts the kernel's wait for a cgroup migration early, so that it overlaps the
//! rest of a create instead of adding to it.
//!
//! Moving a process into a cgroup (a pid written to `cgroup.procs`, as
//! libcontainer's intermediate process does for every container) takes the kernel's
//! global `cgroup_threadgroup_rwsem` for writing. When no migration happened
//! recently, that first waits for a full RCU grace period: 5 to 15 ms here, the
//! largest single step of `berth run` (runc pays it too). Once one writer has waited,
//! the next ones within about a grace period do not. So `create` first moves this
//! process into the cgroup it is already in (a migration that changes nothing) on a
//! thread of its own, while it prepares the bundle, launches the shim and the helper;
//! by the time the container's process joins its cgroups the wait is over or under
//! way. Best effort: any failure is ignored and costs only the time it would have.

use std::path::{Path, PathBuf};

/// Begins the wait on a short-lived thread of its own and returns at once.
pub fn start() {
    let Some(procs) = own_procs_file(Path::new("/sys/fs/cgroup")) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("cgroup-prime".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            // The process already is in this cgroup: nothing moves.
            let _ = std::fs::write(&procs, std::process::id().to_string());
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "cgroup prime thread not started");
    }
}

/// The `cgroup.procs` of the cgroup this process is in, on one hierarchy.
fn own_procs_file(mount: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    procs_file(mount, &text).filter(|p| p.is_file())
}

/// From `/proc/self/cgroup` text: the `cgroup.procs` file of a v1 hierarchy with a
/// controller (`pids`, else `freezer`, else `memory`: each mounted at
/// `<mount>/<name>` on Debian-like hosts), or else of the unified hierarchy
/// (`<mount>/unified` on hybrid hosts, `<mount>` itself on pure v2).
fn procs_file(mount: &Path, proc_self_cgroup: &str) -> Option<PathBuf> {
    let mut unified = None;
    let mut v1 = None;
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            unified = Some(rel.to_owned());
            continue;
        }
        for (rank, name) in ["pids", "freezer", "memory"].iter().enumerate() {
            if controllers.split(',').any(|c| c == *name)
                && v1.as_ref().is_none_or(|(r, _, _)| rank < *r)
            {
                v1 = Some((rank, *name, rel.to_owned()));
            }
        }
    }
    if let Some((_, name, rel)) = v1 {
        return Some(mount.join(name).join(rel).join("cgroup.procs"));
    }
    let rel = unified?;
    let hybrid = mount.join("unified");
    let base = if hybrid.join("cgroup.procs").is_file() {
        hybrid
    } else {
        mount.to_path_buf()
    };
    Some(base.join(rel).join("cgroup.procs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_hierarchy_is_preferred_to_the_unified_one() {
        let text = "10:hugetlb:/\n9:name=systemd:/\n8:pids:/a/b\n4:memory:/m\n0::/u\n";
        assert_eq!(
            procs_file(Path::new("/sys/fs/cgroup"), text),
            Some(PathBuf::from("/sys/fs/cgroup/pids/a/b/cgroup.procs"))
        );
        let text = "4:memory:/m\n2:cpu,cpuacct:/\n6:freezer:/\n";
        assert_eq!(
            procs_file(Path::new("/sys/fs/cgroup"), text),
            Some(PathBuf::from("/sys/fs/cgroup/freezer/cgroup.procs"))
        );
    }

    #[test]
    fn pure_v2_uses_the_mount_itself() {
        let dir = std::env::temp_dir().join(format!("berth-prime-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(
            procs_file(&dir, "0::/system.slice/x.service\n"),
            Some(dir.join("system.slice/x.service/cgroup.procs"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nothing_to_write_without_a_hierarchy() {
        assert_eq!(procs_file(Path::new("/sys/fs/cgroup"), ""), None);
        assert_eq!(
            procs_file(Path::new("/sys/fs/cgroup"), "1:name=systemd:/x\n"),
            None
        );
    }
}
