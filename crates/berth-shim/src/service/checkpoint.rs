//! Checkpoint of the Task service, and the restore that Start does for a task
//! created from a checkpoint (containerd's contract: Create records the checkpoint,
//! Start brings the processes back).

use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use berth_types::wire::{
    CheckpointOptions, CHECKPOINT_MARKER as MARKER, CHECKPOINT_OPTIONS_TYPE_URL, ROOTFS_DIFF,
};
use berth_types::{EventKind, WireErrorKind, INIT_PROCESS_ID};
use containerd_shim_protos::api;
use libcgroups::common::{CgroupManager, FreezerState};
use libcontainer::container::{Container, ContainerStatus};
use oci_spec::runtime::Spec;

use super::{fail, parse_helper_error, Phase, Proc, Service, TResult};
use crate::checkpoint::{self as criu, Dump, INVENTORY};
use crate::journal::Detail;
use crate::{helper, io, sys};

impl Service {
    fn spec(&self, step: &str) -> TResult<Spec> {
        let bundle = self.bundle.lock().unwrap().clone();
        Spec::load(bundle.join("config.json"))
            .map_err(|e| fail(WireErrorKind::Internal, step, format!("read bundle: {e}")))
    }

    /// The criu binary, once it answered `--version` well (run as our child: the
    /// reaper owns every exit status, so never through `Command::output`).
    /// `named`: the caller's choice, else `BERTH_CRIU` or `criu` on PATH.
    fn criu(&self, step: &str, named: Option<&str>) -> TResult<PathBuf> {
        let bin = named.map(PathBuf::from).unwrap_or_else(criu::binary);
        let unusable = |e: std::io::Error| {
            fail(
                WireErrorKind::FailedPrecondition,
                step,
                format!("criu ({}) cannot run: {e}", bin.display()),
            )
        };
        let mut child = Command::new(&bin)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(unusable)?;
        self.reaper.spawned();
        let (mut out, mut err) = (String::new(), String::new());
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let code = self.reaper.wait(child.id() as i32);
        criu::check_version(&bin, code, &out, &err)
            .map_err(|e| fail(WireErrorKind::FailedPrecondition, step, e))?;
        Ok(bin)
    }

    pub(super) fn do_checkpoint(&self, req: api::CheckpointTaskRequest) -> TResult<api::Empty> {
        const STEP: &str = "checkpoint";
        let init = self.running_init(STEP)?;
        if init.terminal {
            return Err(fail(
                WireErrorKind::Unimplemented,
                STEP,
                "berth does not checkpoint containers with a terminal",
            ));
        }
        let running: Vec<String> = self
            .execs
            .lock()
            .unwrap()
            .values()
            .filter(|p| p.phase() == Phase::Running && p.exit().is_none())
            .map(|p| p.id.clone())
            .collect();
        if !running.is_empty() {
            return Err(fail(
                WireErrorKind::FailedPrecondition,
                STEP,
                format!(
                    "exec processes are running ({}): CRIU dumps init's process tree only",
                    running.join(", ")
                ),
            ));
        }
        let opts: CheckpointOptions = req
            .options
            .as_ref()
            .filter(|a| a.type_url == CHECKPOINT_OPTIONS_TYPE_URL)
            .and_then(|a| serde_json::from_slice(&a.value).ok())
            .unwrap_or_default();
        if req.path.is_empty() {
            return Err(fail(
                WireErrorKind::InvalidArgument,
                STEP,
                "no checkpoint directory given",
            ));
        }
        let images = PathBuf::from(&req.path);
        let bin = self.criu("find criu", opts.criu.as_deref())?;
        std::fs::create_dir_all(&images)
            .map_err(|e| fail(WireErrorKind::Internal, "create checkpoint directory", e))?;
        let pid = init.pid();
        criu::write_descriptors(&images, pid)
            .map_err(|e| fail(WireErrorKind::Internal, "record stdio", e))?;
        let spec = self.spec(STEP)?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let externals = criu::external_mounts(&spec, &criu::cgroup_mounts(&mountinfo));
        let cgroup = self.cgroup_path(STEP)?;
        let rel = cgroup.strip_prefix("/").unwrap_or(&cgroup);
        let freezer = match Path::new("/sys/fs/cgroup/freezer") {
            v1 if v1.is_dir() => v1.join(rel),
            _ => Path::new("/sys/fs/cgroup").join(rel),
        };
        // Hold the container still from the dump to the kill (or the thaw): nothing
        // it does after its image was taken may reach the world, and its root
        // filesystem is archived as its processes left it.
        let we_froze = !self.frozen();
        if we_froze {
            self.freeze(STEP, FreezerState::Frozen)?;
        }
        let args = criu::dump_args(&Dump {
            pid,
            images: &images,
            freezer: Some(&freezer),
            externals: &externals,
        });
        let dump = || {
            self.run_criu(&bin, &args, "criu dump")
                .and_then(|code| match code {
                    0 => Ok(()),
                    c => Err(fail(
                        WireErrorKind::Internal,
                        "criu dump",
                        format!(
                            "criu failed (exit {c}): {}",
                            criu::log_errors(&images.join("dump.log"))
                        ),
                    )),
                })
        };
        let mut outcome = dump();
        if outcome.is_err() && criu::seize_timed_out(&images.join("dump.log")) {
            // criu could not stop a task in time: one the freezer caught in the
            // middle of a fork. Let it finish, hold the container still again,
            // and dump once more from scratch.
            tracing::warn!(container_id = %self.id, "criu dump timed out seizing a task; retrying once");
            self.unlock_network(pid);
            if we_froze && self.frozen() {
                let _ = self.freeze(STEP, FreezerState::Thawed);
                std::thread::sleep(std::time::Duration::from_millis(20));
                self.freeze(STEP, FreezerState::Frozen)?;
            }
            let _ = std::fs::rename(images.join("dump.log"), images.join("dump-1.log"));
            criu::remove_images(&images);
            outcome = dump();
        }
        let outcome = outcome.and_then(|()| match &opts.rootfs {
            Some(dir) => self.archive_rootfs(Path::new(dir), &images),
            None => Ok(()),
        });
        let outcome = outcome.and_then(|()| match &opts.marker {
            Some(marker) => write_marker(&images, marker),
            None => Ok(()),
        });
        if let Err(e) = outcome {
            self.unlock_network(pid);
            // Not if the container went meanwhile (`rm -f`): a freeze would make
            // its freezer cgroup again.
            if we_froze && self.frozen() {
                let _ = self.freeze(STEP, FreezerState::Thawed);
            }
            return Err(e);
        }
        self.emit(
            EventKind::Checkpointed,
            Detail {
                process_id: Some(INIT_PROCESS_ID),
                pid: Some(pid),
                ..Default::default()
            },
        );
        if opts.exit {
            {
                let _state = self.state_lock.lock().unwrap();
                let mut container = self.container_locked(STEP)?;
                container
                    .kill(nix::sys::signal::Signal::SIGKILL, true)
                    .map_err(|e| fail(WireErrorKind::Internal, "stop after checkpoint", e))?;
            }
            if self.frozen() {
                self.freeze(STEP, FreezerState::Thawed)?;
            }
        } else if we_froze {
            self.freeze(STEP, FreezerState::Thawed)?;
        }
        Ok(api::Empty::new())
    }

    /// Archives the writable root layer `dir` into the checkpoint (GNU tar keeps
    /// owners, modes, devices, overlay whiteouts and xattrs; sparse files stay
    /// sparse).
    fn archive_rootfs(&self, dir: &Path, images: &Path) -> TResult<()> {
        const STEP: &str = "archive root filesystem";
        let file = images.join(ROOTFS_DIFF);
        let log = images.join("rootfs-diff.log");
        let code = self.run_logged(
            Path::new("tar"),
            &[
                "--create".as_ref(),
                "--file".as_ref(),
                file.as_os_str(),
                "--numeric-owner".as_ref(),
                "--sparse".as_ref(),
                "--xattrs".as_ref(),
                "--xattrs-include=*".as_ref(),
                "--directory".as_ref(),
                dir.as_os_str(),
                ".".as_ref(),
            ],
            &log,
            STEP,
        )?;
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        match code {
            0 => Ok(()),
            c => Err(fail(
                WireErrorKind::Internal,
                STEP,
                format!(
                    "tar of {} failed (exit {c}): {}",
                    dir.display(),
                    said.lines().last().unwrap_or("no message")
                ),
            )),
        }
    }

    /// After a failed dump: criu locks the container's network with an nftables
    /// table `CRIU-<pid>` (drop everything) and removes it when it is done; a criu
    /// that was killed leaves it, and the container can no longer talk. Best effort,
    /// with `nsenter` and `nft` where they exist.
    fn unlock_network(&self, pid: i32) {
        let ns = format!("--net=/proc/{pid}/ns/net");
        let mut list = Command::new("nsenter");
        list.args([ns.as_str(), "nft", "list", "tables"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null());
        let Ok(mut child) = list.spawn() else {
            return;
        };
        self.reaper.spawned();
        let mut tables = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut tables);
        }
        let _ = self.reaper.wait(child.id() as i32);
        for name in tables
            .lines()
            .filter_map(|l| l.trim().strip_prefix("table inet "))
            .filter(|n| n.starts_with("CRIU-"))
        {
            tracing::warn!(table = name, "removing the network lock a failed criu left");
            let _ = self.run_child(Command::new("nsenter").args([
                ns.as_str(),
                "nft",
                "delete",
                "table",
                "inet",
                name,
            ]));
        }
    }

    /// Runs `bin` as a child with stderr to `log`; returns its exit code.
    fn run_logged(
        &self,
        bin: &Path,
        args: &[&std::ffi::OsStr],
        log: &Path,
        step: &str,
    ) -> TResult<i32> {
        let err = File::create(log).map_err(|e| fail(WireErrorKind::Internal, step, e))?;
        self.run_child(Command::new(bin).args(args).stderr(err))
            .map_err(|e| {
                fail(
                    WireErrorKind::Internal,
                    step,
                    format!("{}: {e}", bin.display()),
                )
            })
    }

    /// Runs criu as a child; returns its exit code.
    fn run_criu(&self, bin: &Path, args: &[std::ffi::OsString], step: &str) -> TResult<i32> {
        self.run_child(Command::new(bin).args(args).stderr(Stdio::null()))
            .map_err(|e| {
                fail(
                    WireErrorKind::FailedPrecondition,
                    step,
                    format!("criu ({}) cannot run: {e}", bin.display()),
                )
            })
    }

    /// Runs `cmd` with no stdin or stdout as a child (the reaper owns every exit
    /// status, so never through `Command::output`); returns its exit code.
    fn run_child(&self, cmd: &mut Command) -> std::io::Result<i32> {
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).spawn()?;
        self.reaper.spawned();
        let pid = child.id() as i32;
        drop(child);
        Ok(self.reaper.wait(pid))
    }

    /// Create of a task from a checkpoint: checks the images and, under containerd
    /// (which removes its unpacked copy once Create returns), keeps a copy of them.
    pub(super) fn accept_checkpoint(&self, path: &str, terminal: bool) -> TResult<PathBuf> {
        const STEP: &str = "read checkpoint";
        let images = PathBuf::from(path);
        if !images.join(INVENTORY).is_file() {
            return Err(fail(
                WireErrorKind::InvalidArgument,
                STEP,
                format!(
                    "{}: not a CRIU checkpoint (no {INVENTORY})",
                    images.display()
                ),
            ));
        }
        if terminal {
            return Err(fail(
                WireErrorKind::FailedPrecondition,
                STEP,
                "a container with a terminal cannot be restored from a checkpoint",
            ));
        }
        if self.paths.data_dir.is_some() {
            return Ok(images);
        }
        let copy = self.paths.state_dir.join("checkpoint");
        let _ = std::fs::remove_dir_all(&copy);
        copy_dir(&images, &copy).map_err(|e| {
            let _ = std::fs::remove_dir_all(&copy);
            fail(WireErrorKind::Internal, "copy checkpoint", e)
        })?;
        Ok(copy)
    }

    /// Start of a task created from a checkpoint: the helper becomes `criu restore`
    /// in the container's cgroups with init's new stdio; the restored init is our
    /// child. Leaves nothing behind when it fails.
    pub(super) fn restore_init(&self, proc: &Arc<Proc>, images: &Path) -> TResult<()> {
        const STEP: &str = "restore from checkpoint";
        let bin = self.criu("find criu", None)?;
        let spec = self.spec(STEP)?;
        let work = self.paths.state_dir.join("criu");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)
            .map_err(|e| fail(WireErrorKind::Internal, "create criu work dir", e))?;
        let (stdio, _) = self.setup_stdio(proc)?;
        let bundle = self.bundle.lock().unwrap().clone();
        let result = self.run_restore_helper(&bin, &bundle, images, &work, stdio);
        let pid = match result {
            Ok(pid) => pid,
            Err(e) => {
                kill_and_remove_cgroup(&spec, self.id.as_str());
                proc.stdin_closer.lock().unwrap().take();
                return Err(e);
            }
        };
        if let Err(e) = self.record_restored(&spec, &bundle, pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = self.reaper.wait(pid);
            kill_and_remove_cgroup(&spec, self.id.as_str());
            return Err(e);
        }
        proc.pid.store(pid, Ordering::SeqCst);
        self.monitor(proc);
        Ok(())
    }

    fn run_restore_helper(
        &self,
        bin: &Path,
        bundle: &Path,
        images: &Path,
        work: &Path,
        stdio: [Stdio; 3],
    ) -> TResult<i32> {
        const STEP: &str = "restore from checkpoint";
        let (report_r, report_w) =
            io::pipe().map_err(|e| fail(WireErrorKind::Internal, "create report pipe", e))?;
        let (exe, _fd) = self.helper_path()?;
        let mut cmd = Command::new(&exe);
        cmd.arg0("containerd-shim-berth-v1")
            .arg(helper::ARG)
            .arg("restore")
            .arg(self.id.as_str())
            .arg(bundle)
            .arg(images)
            .arg(work)
            .arg(bin);
        let [i, o, e] = stdio;
        cmd.stdin(i).stdout(o).stderr(e);
        sys::pass_fd3(&mut cmd, std::os::fd::AsRawFd::as_raw_fd(&report_w), false);
        sys::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| fail(WireErrorKind::Internal, "start helper", e))?;
        self.reaper.spawned();
        drop(cmd);
        drop(report_w);
        let helper_pid = child.id() as i32;
        drop(child);
        // The helper is criu by now (which may hold the report pipe: read it
        // once criu is done). A damaged image can leave it, or what it
        // restored, spinning: give up before the Client's call times out (the
        // caller kills what is in the cgroup, criu included).
        let limit = restore_limit(images);
        let Some(code) = self.reaper.wait_timeout(helper_pid, limit) else {
            return Err(fail(
                WireErrorKind::Internal,
                STEP,
                format!(
                    "criu restore did not finish within {} s: {}",
                    limit.as_secs(),
                    criu::log_errors(&work.join("restore.log"))
                ),
            ));
        };
        let mut report = String::new();
        let _ = File::from(report_r).read_to_string(&mut report);
        if let Some(rest) = report.lines().find_map(|l| l.strip_prefix("error ")) {
            return Err(parse_helper_error(rest));
        }
        if code != 0 {
            return Err(fail(
                WireErrorKind::Internal,
                STEP,
                format!(
                    "criu restore failed (exit {code}): {}",
                    criu::log_errors(&work.join("restore.log"))
                ),
            ));
        }
        std::fs::read_to_string(work.join("restore.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| fail(WireErrorKind::Internal, STEP, "criu wrote no pid"))
    }

    /// libcontainer's record of the restored container, so that kill, exec, pause
    /// and delete work on it as on any other.
    fn record_restored(&self, spec: &Spec, bundle: &Path, pid: i32) -> TResult<()> {
        const STEP: &str = "record restored container";
        let id = self.id.as_str();
        let dir = self.paths.runtime_root.join(id);
        std::fs::create_dir_all(&dir).map_err(|e| fail(WireErrorKind::Internal, STEP, e))?;
        libcontainer::config::YoukiConfig::from_spec(spec, id)
            .and_then(|c| c.save(&dir))
            .map_err(|e| fail(WireErrorKind::Internal, STEP, e))?;
        let mut c = Container::new(id, ContainerStatus::Running, Some(pid), bundle, &dir)
            .map_err(|e| fail(WireErrorKind::Internal, STEP, e))?;
        c.set_systemd(false)
            .set_creator(nix::unistd::geteuid().as_raw())
            .save()
            .map_err(|e| fail(WireErrorKind::Internal, STEP, e))
    }
}

/// How long a restore of `images` may take: a minute, and a second more for every
/// 20 MB of images (a damaged image can leave criu spinning; a big one is slow).
fn restore_limit(images: &Path) -> std::time::Duration {
    let bytes: u64 = std::fs::read_dir(images)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    std::time::Duration::from_secs(60 + bytes / (20 << 20))
}

/// Writes the caller's marker of a complete checkpoint into `images`, with the size
/// of every file the dump wrote (`Files`), last and atomically: the checkpoint is
/// whole even if the caller is gone by now.
fn write_marker(images: &Path, marker: &serde_json::Value) -> TResult<()> {
    const STEP: &str = "write checkpoint marker";
    let mut marker = marker.clone();
    let mut files = serde_json::Map::new();
    for entry in std::fs::read_dir(images).map_err(|e| fail(WireErrorKind::Internal, STEP, e))? {
        let entry = entry.map_err(|e| fail(WireErrorKind::Internal, STEP, e))?;
        let meta = entry
            .metadata()
            .map_err(|e| fail(WireErrorKind::Internal, STEP, e))?;
        if meta.is_file() {
            files.insert(
                entry.file_name().to_string_lossy().into_owned(),
                meta.len().into(),
            );
        }
    }
    if let Some(m) = marker.as_object_mut() {
        m.insert("Files".into(), files.into());
    }
    let tmp = images.join(".berth.json.tmp");
    let bytes = serde_json::to_vec_pretty(&marker).unwrap_or_default();
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, images.join(MARKER)))
        .map_err(|e| fail(WireErrorKind::Internal, STEP, e))
}

/// After a failed restore: kills whatever criu left in the container's cgroup
/// (criu itself, half-restored tasks), then removes the cgroup.
pub(crate) fn kill_and_remove_cgroup(spec: &Spec, id: &str) {
    let Ok(config) = libcontainer::config::YoukiConfig::from_spec(spec, id) else {
        return;
    };
    if let Ok(m) = libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
        cgroup_path: config.cgroup_path.clone(),
        systemd_cgroup: false,
        container_name: id.to_owned(),
    }) {
        // A frozen task does not die of SIGKILL until it is thawed.
        let _ = m.freeze(FreezerState::Thawed);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let pids = cgroup_pids(&config.cgroup_path);
            if pids.is_empty() || std::time::Instant::now() > deadline {
                break;
            }
            for p in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if let Err(e) = m.remove() {
            tracing::warn!(error = %e, "remove cgroup after failed restore");
        }
    }
}

/// Every pid in cgroup `path`, in the unified hierarchy or any v1 one.
fn cgroup_pids(path: &Path) -> Vec<i32> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let base = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![base.join(rel)];
    for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
        dirs.push(e.path().join(rel));
    }
    let mut pids: Vec<i32> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Copies a flat directory of CRIU images (CRIU writes no subdirectories).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}
