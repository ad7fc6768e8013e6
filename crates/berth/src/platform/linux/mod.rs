//! Linux: one shim per container (containerd shim v2 over ttrpc), FIFOs for stdio,
//! the event journal followed from a cursor.

mod cgroup_prime;
mod checkpoints;
mod creation;
mod define;
pub use checkpoints::check_images as check_checkpoint;
mod journal;
mod layers;
mod observe;
mod paths;
mod record;
mod shim;
mod stdio;
mod sys;

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_types::{
    ContainerId, ContainerStatus, Event, EventKind, ExitStatus, ProcessId, INIT_PROCESS_ID,
};
use chrono::{DateTime, TimeZone, Utc};
use containerd_shim_protos::api;
use oci_spec::runtime::Spec;

use self::journal::{Follower, Watcher};
pub use self::paths::Roots;
use self::shim::{ctx, map_err, Launch, Shim, QUICK};
use crate::error::{Error, ErrorKind, Result};
use crate::types::{ContainerInfo, CreateOptions, EventSink, ProcessIo, StdioRequest};

/// How long `list` waits for any one shim's state.
const LIST_DEADLINE: Duration = Duration::from_secs(2);

/// How long `delete` waits for a creation under way (a restore of a large
/// checkpoint takes a while) before it goes on regardless.
const CREATION_WAIT: Duration = Duration::from_secs(60);

/// How long a shim may take to go away after Shutdown.
const SHIM_EXIT_WAIT: Duration = Duration::from_secs(5);

/// Settings of the Linux platform.
#[derive(Debug, Clone)]
pub struct Config {
    /// Runtime state root (`/run/berth`).
    pub root: PathBuf,
    /// Data root (`/var/lib/berth`).
    pub data_root: PathBuf,
    /// The shim binary.
    pub shim_binary: PathBuf,
    /// Log limit per process in bytes (`None`: the shim's default, 100 MiB).
    pub log_max: Option<u64>,
    /// The criu binary for checkpoints (`None`: `BERTH_CRIU`, else `criu` on PATH).
    pub criu: Option<PathBuf>,
}

/// The Linux platform behind [`crate::Client`].
pub struct Platform {
    roots: Roots,
    launch: Launch,
    sink: Arc<dyn EventSink>,
    followers: Mutex<HashMap<ContainerId, Follower>>,
    /// Made on first use, on the runtime the client is used from.
    watcher: std::sync::OnceLock<Option<Arc<Watcher>>>,
    /// Connections to shims, with the pid of the shim each was made to.
    shims: Mutex<HashMap<ContainerId, (Shim, Option<i32>)>>,
}

fn io_err<'a>(
    op: &'static str,
    id: &'a ContainerId,
    step: &str,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    let step = step.to_owned();
    move |e| {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            _ => ErrorKind::Internal,
        };
        Error::new(op, id.as_str(), kind, step, e)
    }
}

fn ts(
    t: &protobuf::MessageField<protobuf::well_known_types::timestamp::Timestamp>,
) -> DateTime<Utc> {
    t.as_ref()
        .and_then(|t| Utc.timestamp_opt(t.seconds, t.nanos.max(0) as u32).single())
        .unwrap_or_else(Utc::now)
}

fn mkdir_private(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

impl Platform {
    /// A platform over the given roots.
    pub fn new(config: Config, sink: Arc<dyn EventSink>) -> Self {
        let roots = Roots {
            state: config.root,
            data: config.data_root,
        };
        Self {
            launch: Launch {
                binary: config.shim_binary,
                runtime_root: roots.runtime_root(),
                log_max: config.log_max,
                criu: config.criu,
            },
            roots,
            sink,
            followers: Mutex::new(HashMap::new()),
            watcher: std::sync::OnceLock::new(),
            shims: Mutex::new(HashMap::new()),
        }
    }

    /// Follows the journal in `state_dir` from its start.
    fn follow(&self, state_dir: &Path) -> Follower {
        let watcher = self.watcher.get_or_init(Watcher::start).clone();
        Follower::start(paths::journal(state_dir), 0, self.sink.clone(), watcher)
    }

    fn shim(&self, op: &'static str, id: &ContainerId) -> Result<Shim> {
        // A connection is good while its shim is the container's: after a
        // restart or a remove and run of the name (by another berth, say) it is
        // another's, and a new one is made.
        let pid = self.shim_pid(id);
        if let Some((s, of)) = self.shims.lock().unwrap().get(id) {
            if pid.is_some() && *of == pid {
                return Ok(s.clone());
            }
        }
        if self.is_defined(id) {
            return Err(Self::not_started(op, id));
        }
        let sock = paths::socket(&self.roots.state_dir(id));
        let s = Shim::connect(&sock).map_err(|e| {
            Error::new(
                op,
                id.as_str(),
                ErrorKind::ShimUnavailable,
                "connect to shim",
                e,
            )
        })?;
        self.shims
            .lock()
            .unwrap()
            .insert(id.clone(), (s.clone(), pid));
        Ok(s)
    }

    /// The shim of a container that should be running: one that exited (its
    /// shim gone, its exit recorded) is an error that says so.
    fn live_shim(&self, op: &'static str, id: &ContainerId) -> Result<Shim> {
        self.shim(op, id).map_err(|e| {
            if e.kind == ErrorKind::ShimUnavailable
                && record::exit(&self.roots.data_dir(id)).is_some()
            {
                Error::new(
                    op,
                    id.as_str(),
                    ErrorKind::FailedPrecondition,
                    "check state",
                    "the container is not running (it exited)",
                )
            } else {
                e
            }
        })
    }

    fn record(&self, op: &'static str, id: &ContainerId) -> Result<record::Record> {
        record::read(&self.roots.data_dir(id)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::new(
                op,
                id.as_str(),
                ErrorKind::NotFound,
                "find container",
                "no such container",
            ),
            _ => Error::new(op, id.as_str(), ErrorKind::Internal, "read record", e),
        })
    }

    /// Creates and starts `id`'s init process.
    pub async fn create(
        &self,
        id: &ContainerId,
        spec: &Spec,
        opts: &CreateOptions,
        stdio: StdioRequest,
    ) -> Result<(u32, ProcessIo)> {
        self.create_from(id, spec, opts, stdio, None).await
    }

    /// Creates and starts `id`; `defined` is when `id` was defined, when it is a
    /// defined container's start (its record holds the name already).
    async fn create_from(
        &self,
        id: &ContainerId,
        spec: &Spec,
        opts: &CreateOptions,
        stdio: StdioRequest,
        defined: Option<DateTime<Utc>>,
    ) -> Result<(u32, ProcessIo)> {
        const OP: &str = "create";
        reserved(OP, id)?;
        cgroup_prime::start();
        let state_dir = self.roots.state_dir(id);
        let data_dir = self.roots.data_dir(id);
        mkdir_private(&self.roots.state).map_err(io_err(OP, id, "create state root"))?;
        mkdir_private(&self.roots.containers_dir()).map_err(io_err(OP, id, "create data root"))?;
        let in_use = |why: &str| {
            Error::new(
                OP,
                id.as_str(),
                ErrorKind::AlreadyExists,
                "reserve name",
                why,
            )
        };
        // A creation killed midway is cleaned up first; one under way keeps the name.
        if self.settle(id).await {
            return Err(in_use(
                "the container is being created (or started) already",
            ));
        }
        if data_dir.exists() && defined.is_none() {
            return Err(in_use("the name is already in use"));
        }
        let guard = match creation::reserve(&state_dir) {
            Ok(g) => g,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(in_use("the name is already in use"));
            }
            Err(e) => return Err(io_err(OP, id, "create state dir")(e)),
        };
        if defined.is_some() && !self.is_defined(id) {
            // Removed between the caller's read of its definition and now.
            let _ = std::fs::remove_dir_all(&state_dir);
            drop(guard);
            return Err(Error::new(
                OP,
                id.as_str(),
                ErrorKind::NotFound,
                "find container",
                "no such container (removed meanwhile)",
            ));
        }
        match self.create_steps(id, spec, opts, stdio, defined).await {
            Ok(r) => {
                if defined.is_some() {
                    self.forget_definition(id);
                } else {
                    self.keep_template(id, spec, opts);
                }
                creation::finish(&state_dir, guard);
                Ok(r)
            }
            Err(e) => {
                tracing::debug!(container_id = %id, error = %e, "create failed; cleaning up");
                // A defined container's failed start leaves it defined, as it was.
                self.teardown(id, &state_dir, &data_dir, defined.is_some())
                    .await;
                drop(guard);
                Err(e)
            }
        }
    }

    /// Cleans up after a creation of `id` whose creator was killed midway (a
    /// definition stays: the container is created again, as it was). True while
    /// a live creation holds it.
    async fn settle(&self, id: &ContainerId) -> bool {
        let state_dir = self.roots.state_dir(id);
        let data_dir = self.roots.data_dir(id);
        match creation::of(&state_dir, &data_dir) {
            creation::Creation::Settled => false,
            creation::Creation::Running => true,
            creation::Creation::Unfinished(guard) => {
                self.forget_definition(id);
                creation::finish(&state_dir, guard);
                false
            }
            creation::Creation::Abandoned(guard) => {
                tracing::debug!(container_id = %id, "removing what a killed creation left");
                let keep = self.is_defined(id);
                self.teardown(id, &state_dir, &data_dir, keep).await;
                drop(guard);
                false
            }
        }
    }

    async fn create_steps(
        &self,
        id: &ContainerId,
        spec: &Spec,
        opts: &CreateOptions,
        stdio: StdioRequest,
        defined: Option<DateTime<Utc>>,
    ) -> Result<(u32, ProcessIo)> {
        const OP: &str = "create";
        let state_dir = &self.roots.state_dir(id);
        let data_dir = &self.roots.data_dir(id);
        let stdio = if stdio.terminal {
            StdioRequest {
                stderr: false,
                ..stdio
            }
        } else {
            stdio
        };
        if let Some(cp) = &opts.checkpoint {
            checkpoints::check_images(cp).map_err(|e| {
                Error::new(
                    OP,
                    id.as_str(),
                    ErrorKind::InvalidArgument,
                    "read checkpoint",
                    e,
                )
            })?;
        }
        // The bundle as run: the spec with an absolute root path.
        let mut spec = spec.clone();
        if opts.default_rootfs {
            let dir = state_dir.join("rootfs");
            let hostname = spec.hostname().clone().unwrap_or_else(|| id.to_string());
            let binds = crate::rootfs::prepare_default(&dir, &hostname).map_err(io_err(
                OP,
                id,
                "prepare default root filesystem",
            ))?;
            if let Some(cp) = &opts.checkpoint {
                checkpoints::unpack_rootfs(cp, &dir).map_err(|e| {
                    Error::new(
                        OP,
                        id.as_str(),
                        ErrorKind::Internal,
                        "restore root filesystem",
                        e,
                    )
                })?;
            }
            let mut mounts = spec.mounts().clone().unwrap_or_default();
            mounts.extend(binds);
            spec.set_mounts(Some(mounts));
            let mut root = spec.root().clone().unwrap_or_default();
            root.set_path(dir);
            spec.set_root(Some(root));
        }
        // Image layers: an overlay root, unmounted by the guard if a later step fails.
        let overlay = match &opts.layers {
            Some(_) if opts.default_rootfs => {
                return Err(Error::new(
                    OP,
                    id.as_str(),
                    ErrorKind::InvalidArgument,
                    "mount layers",
                    "layers and the default root filesystem exclude each other",
                ));
            }
            Some(l) => {
                let seed = |upper: &Path| match &opts.checkpoint {
                    Some(cp) => checkpoints::unpack_rootfs(cp, upper),
                    None => Ok(()),
                };
                let (overlay, dir) = layers::mount_root(l, state_dir, data_dir, Some(&seed))
                    .map_err(|e| Error::new(OP, id.as_str(), e.kind(), "mount layers", e))?;
                // Docker's /etc/hostname, /etc/hosts and /etc/resolv.conf.
                let mut mounts = spec.mounts().clone().unwrap_or_default();
                let taken: Vec<PathBuf> = mounts.iter().map(|m| m.destination().clone()).collect();
                let hostname = spec.hostname().clone().unwrap_or_else(|| id.to_string());
                let binds =
                    crate::rootfs::network_files(&state_dir.join("etc"), &dir, &hostname, &taken)
                        .map_err(io_err(OP, id, "write /etc/hosts"))?;
                mounts.extend(binds);
                spec.set_mounts(Some(mounts));
                let mut root = spec.root().clone().unwrap_or_default();
                root.set_path(dir);
                spec.set_root(Some(root));
                Some(overlay)
            }
            None => None,
        };
        let (root, root_path) = root_dir(spec.root().as_ref(), opts.bundle_dir.as_deref())
            .map_err(|(step, why)| {
                Error::new(OP, id.as_str(), ErrorKind::InvalidArgument, step, why)
            })?;
        let mut new_root = root.clone();
        new_root.set_path(root_path.clone());
        spec.set_root(Some(new_root));
        if let Some(user) = &opts.user {
            let (uid, gid, gids) = crate::spec::user::resolve(&root_path, user).map_err(|e| {
                Error::new(
                    OP,
                    id.as_str(),
                    ErrorKind::InvalidArgument,
                    "resolve user",
                    e,
                )
            })?;
            let mut process = spec.process().clone().unwrap_or_default();
            let mut u = process.user().clone();
            u.set_uid(uid);
            u.set_gid(gid);
            u.set_additional_gids((!gids.is_empty()).then_some(gids));
            process.set_user(u);
            spec.set_process(Some(process));
        }
        // Docker's HOME: the user's in the root's passwd, else `/`.
        if let Some(mut process) = spec.process().clone() {
            let mut env = process.env().clone().unwrap_or_default();
            if !env.iter().any(|e| e.starts_with("HOME=")) {
                env.push(format!(
                    "HOME={}",
                    crate::spec::user::home(&root_path, process.user().uid())
                ));
                process.set_env(Some(env));
                spec.set_process(Some(process));
            }
        }
        // Names are per root, cgroups per host: never join processes that are not ours.
        if let Some(cg) = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()) {
            if let Some(holder) = cgroup_holder(&cg) {
                return Err(Error::new(
                    OP,
                    id.as_str(),
                    ErrorKind::AlreadyExists,
                    "reserve cgroup",
                    format!(
                        "cgroup {} already holds processes ({holder}): a container of this \
                         name under another berth root, or another runtime's",
                        cg.display()
                    ),
                ));
            }
        }
        let bundle = paths::bundle_dir(state_dir);
        mkdir_private(&bundle).map_err(io_err(OP, id, "write bundle"))?;
        spec.save(bundle.join("config.json"))
            .map_err(|e| Error::new(OP, id.as_str(), ErrorKind::Internal, "write bundle", e))?;

        let args = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default();
        mkdir_private(data_dir).map_err(io_err(OP, id, "write record"))?;
        let rec = record::Record {
            id: id.clone(),
            created: defined.unwrap_or_else(Utc::now),
            bundle: opts.bundle_dir.clone().unwrap_or_else(|| bundle.clone()),
            image: opts.image.clone(),
            args,
            spec: serde_json::to_value(&spec).unwrap_or_default(),
            started_at: None,
        };
        record::write(data_dir, &rec).map_err(io_err(OP, id, "write record"))?;

        let (fifo_paths, io) =
            stdio::make(state_dir, "init", stdio).map_err(io_err(OP, id, "make stdio fifos"))?;
        let sock = self
            .launch
            .start(id, state_dir, data_dir, &bundle)
            .await
            .map_err(|e| {
                Error::new(OP, id.as_str(), ErrorKind::ShimUnavailable, "start shim", e)
            })?;
        let shim = Shim::connect(&sock).map_err(|e| {
            Error::new(
                OP,
                id.as_str(),
                ErrorKind::ShimUnavailable,
                "connect to shim",
                e,
            )
        })?;
        let pid = self.shim_pid(id);
        self.shims
            .lock()
            .unwrap()
            .insert(id.clone(), (shim.clone(), pid));
        let mut follower = self.follow(state_dir);

        let mut req = api::CreateTaskRequest::new();
        req.id = id.to_string();
        req.bundle = bundle.to_string_lossy().into_owned();
        if let Some(cp) = &opts.checkpoint {
            req.checkpoint = cp.to_string_lossy().into_owned();
        }
        req.stdin = fifo_paths.stdin;
        req.stdout = fifo_paths.stdout;
        req.stderr = fifo_paths.stderr;
        req.terminal = stdio.terminal;
        let pid = shim
            .call(move |t| t.create(ctx(Some(QUICK)), &req))
            .await
            .map_err(|e| map_err(OP, id, "create container", e))?
            .pid;
        let mut req = api::StartRequest::new();
        req.id = id.to_string();
        // A restore takes as long as criu does; the shim bounds it by the size of
        // the images.
        let limit = opts.checkpoint.is_none().then_some(QUICK);
        shim.call(move |t| t.start(ctx(limit), &req))
            .await
            .map_err(|e| map_err(OP, id, "start container", e))?;
        let mut rec = rec;
        rec.started_at = Some(Utc::now());
        let _ = record::write(data_dir, &rec);
        follower.poke();
        follower
            .wait_for(|e| {
                e.kind == EventKind::Start && e.process_id.as_ref().is_none_or(ProcessId::is_init)
            })
            .await;
        self.followers.lock().unwrap().insert(id.clone(), follower);
        if let Some(o) = overlay {
            o.keep();
        }
        Ok((pid, io))
    }

    /// Removes everything of `id`: shim, container, state dir and record (all but
    /// its definition, with `keep_definition`).
    async fn teardown(
        &self,
        id: &ContainerId,
        state_dir: &Path,
        data_dir: &Path,
        keep_definition: bool,
    ) {
        self.followers.lock().unwrap().remove(id);
        // Another process's creation has no shim of ours: reach it by its socket.
        let shim = self
            .shims
            .lock()
            .unwrap()
            .remove(id)
            .map(|(s, _)| s)
            .or_else(|| Shim::connect(&paths::socket(state_dir)).ok());
        if let Some(shim) = shim {
            let mut req = api::DeleteRequest::new();
            req.id = id.to_string();
            let _ = shim.call(move |t| t.delete(ctx(Some(QUICK)), &req)).await;
            let req = api::ShutdownRequest::new();
            let _ = shim.call(move |t| t.shutdown(ctx(Some(QUICK)), &req)).await;
        }
        self.stop_shim(state_dir).await;
        let _ = self.launch.cleanup(id, &paths::bundle_dir(state_dir)).await;
        if layers::unmount(&layers::root_of(state_dir)).is_err() {
            // Never remove a tree through a mount that is still there.
            return;
        }
        if keep_definition {
            // The container's next run goes on from this one's last Seq.
            let last = journal::read_all(&paths::journal(state_dir))
                .last()
                .map_or(0, |e| e.seq)
                .max(berth_types::wire::last_seq(data_dir));
            if last > 0 {
                let _ = std::fs::write(
                    data_dir.join(berth_types::wire::LAST_SEQ_FILE),
                    last.to_string(),
                );
            }
        }
        let _ = std::fs::remove_dir_all(state_dir);
        if keep_definition {
            self.reset_to_definition(id);
        } else {
            let _ = std::fs::remove_dir_all(data_dir);
        }
    }

    /// Waits for the shim of `state_dir` to exit; kills it if it lingers.
    async fn stop_shim(&self, state_dir: &Path) {
        let Some(pid) = std::fs::read_to_string(state_dir.join("shim.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            return;
        };
        if !process_alive(pid) {
            return;
        }
        // A pidfd wakes us the moment the shim exits; polling is the fallback.
        let exited = match sys::wait_exit(pid, SHIM_EXIT_WAIT).await {
            Ok(exited) => exited,
            Err(_) => {
                let deadline = tokio::time::Instant::now() + SHIM_EXIT_WAIT;
                while process_alive(pid) && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                !process_alive(pid)
            }
        };
        if !exited {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Whether `id`'s shim process still exists (it may just not answer).
    fn shim_alive(&self, id: &ContainerId) -> bool {
        self.shim_pid(id).is_some_and(process_alive)
    }

    /// The pid of `id`'s shim, as it wrote it.
    fn shim_pid(&self, id: &ContainerId) -> Option<i32> {
        std::fs::read_to_string(self.roots.state_dir(id).join("shim.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
    }

    /// A container whose shim is gone (killed, host crash): ends whatever of it is
    /// left, and records and journals its exit as unknown (255) with the reason,
    /// unless the shim recorded the real one first. Returns the exit.
    ///
    /// `None` when a start holds the container (it is being run again) or, once
    /// its lock is taken, a live shim is there after all: nothing is lost. A
    /// caller holding the start lock says so with `holding`.
    async fn converge_lost(
        &self,
        op: &'static str,
        id: &ContainerId,
        holding: bool,
    ) -> Result<Option<ExitStatus>> {
        self.shims.lock().unwrap().remove(id);
        let state_dir = self.roots.state_dir(id);
        let data_dir = self.roots.data_dir(id);
        // An exit the shim recorded means init ended, and with it the container's
        // PID namespace: nothing is left to end.
        if let Some(exit) = record::exit(&data_dir) {
            return Ok(Some(exit));
        }
        // The runtime state and cgroup are named by the id alone: never clean
        // them up while a start may be making a new run under it.
        let _starts = if holding {
            None
        } else {
            match self.try_lock_starts(id) {
                Ok(g) => g,
                Err(()) => return Ok(None),
            }
        };
        if !holding && (self.is_defined(id) || self.shim_alive(id)) {
            return Ok(None);
        }
        if let Some(exit) = record::exit(&data_dir) {
            return Ok(Some(exit));
        }
        let _ = self
            .launch
            .cleanup(id, &paths::bundle_dir(&state_dir))
            .await;
        let exit = ExitStatus::unknown("the container's shim is gone");
        record::write_exit(&data_dir, &exit).map_err(io_err(op, id, "record exit"))?;
        if state_dir.exists() {
            let after = berth_types::wire::last_seq(&data_dir);
            journal::append_exit(&paths::journal(&state_dir), id, &exit, after).map_err(io_err(
                op,
                id,
                "journal exit",
            ))?;
        }
        Ok(Some(exit))
    }

    /// Sends `signal` to init; SIGKILL goes to every process of the container.
    pub async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        const OP: &str = "signal";
        let shim = self.live_shim(OP, id)?;
        let mut req = api::KillRequest::new();
        req.id = id.to_string();
        req.signal = signal as u32;
        req.all = signal == libc::SIGKILL;
        shim.call(move |t| t.kill(ctx(Some(QUICK)), &req))
            .await
            .map_err(|e| map_err(OP, id, "kill", e))?;
        Ok(())
    }

    /// Waits for `process` to exit.
    pub async fn wait(&self, id: &ContainerId, process: &ProcessId) -> Result<ExitStatus> {
        const OP: &str = "wait";
        let shim = match self.shim(OP, id) {
            Ok(s) => s,
            Err(e) if e.kind == ErrorKind::ShimUnavailable && process.is_init() => {
                self.record(OP, id)?;
                return Ok(record::exit(&self.roots.data_dir(id))
                    .unwrap_or_else(|| ExitStatus::unknown("the container's shim is gone")));
            }
            Err(e) => return Err(e),
        };
        let mut req = api::WaitRequest::new();
        req.id = id.to_string();
        if !process.is_init() {
            req.exec_id = process.to_string();
        }
        match shim.call(move |t| t.wait(ctx(None), &req)).await {
            Ok(r) => {
                if !process.is_init() {
                    // The exit is read: the shim may forget the process.
                    let mut req = api::DeleteRequest::new();
                    req.id = id.to_string();
                    req.exec_id = process.to_string();
                    let _ = shim.call(move |t| t.delete(ctx(Some(QUICK)), &req)).await;
                    stdio::remove(&self.roots.state_dir(id), process.as_str());
                }
                let rec_exit = process
                    .is_init()
                    .then(|| record::exit(&self.roots.data_dir(id)))
                    .flatten();
                Ok(ExitStatus {
                    code: r.exit_status as i32,
                    exited_at: ts(&r.exited_at),
                    oom_killed: rec_exit.is_some_and(|e| e.oom_killed),
                    error: None,
                })
            }
            Err(e) => {
                let err = map_err(OP, id, "wait", e);
                if err.kind == ErrorKind::ShimUnavailable && process.is_init() {
                    return Ok(record::exit(&self.roots.data_dir(id))
                        .unwrap_or_else(|| ExitStatus::unknown("the container's shim is gone")));
                }
                Err(err)
            }
        }
    }

    /// The container's state.
    pub async fn state(&self, id: &ContainerId) -> Result<ContainerInfo> {
        self.state_as(id, false).await
    }

    /// [`Self::state`] for a caller that holds `id`'s start lock (`holding`) or
    /// not: a lost shim is converged only under that lock, so a look never
    /// cleans up a run that a start is making under the same name.
    pub(super) async fn state_as(&self, id: &ContainerId, holding: bool) -> Result<ContainerInfo> {
        const OP: &str = "state";
        let creating = self.settle(id).await;
        if let Some(info) = self.defined_info(id) {
            return Ok(info);
        }
        let rec = self.record(OP, id)?;
        if creating {
            // Being made: no shim to ask yet, and nothing is lost.
            return Ok(define::created_info(id, rec));
        }
        let data_dir = self.roots.data_dir(id);
        let mut info = ContainerInfo {
            id: id.clone(),
            status: ContainerStatus::Exited,
            pid: None,
            created: rec.created,
            started_at: rec.started_at,
            exit: None,
            bundle: rec.bundle.clone(),
            image: rec.image.clone(),
            args: rec.args.clone(),
        };
        let answer = match self.shim(OP, id) {
            Ok(shim) => {
                let mut req = api::StateRequest::new();
                req.id = id.to_string();
                shim.call(move |t| t.state(ctx(Some(QUICK)), &req))
                    .await
                    .map_err(|e| map_err(OP, id, "state", e))
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok(r) => {
                info.status = match r.status.enum_value_or_default() {
                    api::Status::CREATED => ContainerStatus::Created,
                    api::Status::RUNNING => ContainerStatus::Running,
                    api::Status::PAUSED | api::Status::PAUSING => ContainerStatus::Paused,
                    api::Status::STOPPED => ContainerStatus::Exited,
                    _ => ContainerStatus::Unknown,
                };
                if info.status == ContainerStatus::Exited {
                    info.exit = Some(record::exit(&data_dir).unwrap_or(ExitStatus {
                        code: r.exit_status as i32,
                        exited_at: ts(&r.exited_at),
                        oom_killed: false,
                        error: None,
                    }));
                } else {
                    info.pid = Some(r.pid);
                }
            }
            Err(e) if e.kind == ErrorKind::ShimUnavailable && !self.shim_alive(id) => {
                match self.converge_lost(OP, id, holding).await? {
                    Some(exit) => info.exit = Some(exit),
                    // A start is running it again (or just did): being made.
                    None => info.status = ContainerStatus::Created,
                }
            }
            Err(e) if e.kind == ErrorKind::ShimUnavailable => {
                // The shim lives but does not answer (stopped, wedged): say so.
                info.status = ContainerStatus::Unknown;
            }
            Err(e) => {
                // Defined again meanwhile (a start runs it anew): created.
                return self.defined_info(id).ok_or(e);
            }
        }
        Ok(info)
    }

    /// Every container under the data root.
    pub async fn list(&self) -> Result<Vec<ContainerInfo>> {
        // Creations killed before they wrote a record have nothing to list, but
        // may have left a shim, a process and mounts: clean those up here.
        creation::sweep(&self.roots.state);
        for entry in std::fs::read_dir(&self.roots.state)
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.path().join(creation::LOCK).exists() {
                if let Ok(id) = ContainerId::new(entry.file_name().to_string_lossy().into_owned()) {
                    self.settle(&id).await;
                }
            }
        }
        let mut out = Vec::new();
        let Ok(dir) = std::fs::read_dir(self.roots.containers_dir()) else {
            return Ok(out);
        };
        let mut ids: Vec<ContainerId> = dir
            .flatten()
            .filter_map(|e| ContainerId::new(e.file_name().to_string_lossy().into_owned()).ok())
            .collect();
        ids.sort();
        // Every shim is asked at once, each with a short deadline: one that does
        // not answer (stopped, wedged) is reported unknown and never holds up the rest.
        let mut pending: Vec<_> = ids
            .iter()
            .map(|id| Box::pin(tokio::time::timeout(LIST_DEADLINE, self.state(id))))
            .collect();
        let mut results: Vec<Option<_>> = ids.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut done = true;
            for (i, f) in pending.iter_mut().enumerate() {
                if results[i].is_none() {
                    match std::future::Future::poll(f.as_mut(), cx) {
                        std::task::Poll::Ready(r) => results[i] = Some(r),
                        std::task::Poll::Pending => done = false,
                    }
                }
            }
            if done {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        for (id, r) in ids.iter().zip(results.into_iter().flatten()) {
            match r {
                Ok(Ok(info)) => out.push(info),
                Ok(Err(e)) if e.kind == ErrorKind::NotFound => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    if let Ok(rec) = record::read(&self.roots.data_dir(id)) {
                        out.push(ContainerInfo {
                            id: id.clone(),
                            status: ContainerStatus::Unknown,
                            pid: None,
                            created: rec.created,
                            started_at: rec.started_at,
                            exit: None,
                            bundle: rec.bundle,
                            image: rec.image,
                            args: rec.args,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Deletes a stopped container and everything it left.
    pub async fn delete(&self, id: &ContainerId) -> Result<ExitStatus> {
        const OP: &str = "delete";
        // Asides of creations killed before they took a name (this one's too).
        creation::sweep(&self.roots.state);
        // Not while a start makes it ready to run again (or runs it).
        let _starts = self.lock_starts(OP, id).await?;
        // A creation under way finishes first (or is found dead and cleaned up).
        let deadline = tokio::time::Instant::now() + CREATION_WAIT;
        loop {
            while self.settle(id).await && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if !self.is_defined(id) || tokio::time::Instant::now() >= deadline {
                break;
            }
            // Defined: gone unless a start takes it first (both take the state dir).
            if let Some(exit) = self.delete_defined(id)? {
                return Ok(exit);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.record(OP, id)?;
        let state_dir = self.roots.state_dir(id);
        let data_dir = self.roots.data_dir(id);
        let mut exit = None;
        match self.shim(OP, id) {
            Ok(shim) => {
                let mut req = api::DeleteRequest::new();
                req.id = id.to_string();
                match shim.call(move |t| t.delete(ctx(Some(QUICK)), &req)).await {
                    Ok(r) => {
                        // The delete event is journaled: read it now, not at the next tick.
                        if let Some(f) = self.followers.lock().unwrap().get(id) {
                            f.poke();
                        }
                        exit = Some(ExitStatus {
                            code: r.exit_status as i32,
                            exited_at: ts(&r.exited_at),
                            oom_killed: false,
                            error: None,
                        });
                    }
                    Err(e) => {
                        let err = map_err(OP, id, "delete container", e);
                        if err.kind != ErrorKind::ShimUnavailable {
                            return Err(err);
                        }
                    }
                }
                let req = api::ShutdownRequest::new();
                let _ = shim.call(move |t| t.shutdown(ctx(Some(QUICK)), &req)).await;
            }
            Err(e) if e.kind == ErrorKind::ShimUnavailable => {}
            Err(e) => return Err(e),
        }
        self.shims.lock().unwrap().remove(id);
        self.stop_shim(&state_dir).await;
        let delivered = self
            .followers
            .lock()
            .unwrap()
            .get(id)
            .map(|f| f.delivered.clone());
        if let Some(mut rx) = delivered {
            // Let the delete event reach the sink before the journal goes away.
            let deleted = rx.wait_for(|h| h.iter().any(|e| e.kind == EventKind::Delete));
            let _ = tokio::time::timeout(Duration::from_millis(500), deleted).await;
        }
        self.followers.lock().unwrap().remove(id);
        if exit.is_none() {
            // The shim did not delete the container (it is gone): do it by its
            // `delete` contract.
            self.launch
                .cleanup(id, &paths::bundle_dir(&state_dir))
                .await
                .map_err(|e| {
                    Error::new(
                        OP,
                        id.as_str(),
                        ErrorKind::Internal,
                        "remove runtime state",
                        e,
                    )
                })?;
        }
        let exit = exit
            .or_else(|| record::exit(&data_dir))
            .unwrap_or_else(|| ExitStatus::unknown("the container's shim is gone"));
        layers::unmount(&layers::root_of(&state_dir))
            .map_err(|e| Error::new(OP, id.as_str(), ErrorKind::Internal, "unmount layers", e))?;
        std::fs::remove_dir_all(&state_dir)
            .or_else(ignore_missing)
            .map_err(io_err(OP, id, "remove state dir"))?;
        creation::remove_record_dir(&data_dir).map_err(io_err(OP, id, "remove record"))?;
        Ok(exit)
    }

    // pause, resume, stats, pids, summary and update_resources: observe.rs.

    // checkpoint, list_checkpoints and delete_checkpoint: checkpoints.rs.

    /// Reattaches to `id` after an engine restart: replays its journal to the sink
    /// (every event; `Seq` lets the engine skip what it saw) and follows it; a
    /// live container gets a restore event and its init's output FIFOs back. A
    /// container whose shim is gone converges to exited 255 with the reason.
    pub async fn restore(&self, id: &ContainerId, stdio: StdioRequest) -> Result<(u32, ProcessIo)> {
        const OP: &str = "restore";
        self.record(OP, id)?;
        let state_dir = self.roots.state_dir(id);
        self.followers.lock().unwrap().remove(id);
        let connected = match self.shim(OP, id) {
            Ok(shim) => {
                let req = api::ConnectRequest::new();
                shim.call(move |t| t.connect(ctx(Some(QUICK)), &req))
                    .await
                    .map_err(|e| map_err(OP, id, "connect to shim", e))
            }
            Err(e) => Err(e),
        };
        match connected {
            Ok(r) => {
                let io = stdio::reopen(&state_dir, INIT_PROCESS_ID, stdio).map_err(io_err(
                    OP,
                    id,
                    "reopen stdio fifos",
                ))?;
                let mut follower = self.follow(&state_dir);
                follower.poke();
                if r.task_pid > 0 {
                    let restored = follower.wait_for(|e| e.kind == EventKind::Restore);
                    let _ = tokio::time::timeout(QUICK, restored).await;
                }
                self.followers.lock().unwrap().insert(id.clone(), follower);
                Ok((r.task_pid, io))
            }
            Err(e) if e.kind == ErrorKind::ShimUnavailable && !self.shim_alive(id) => {
                if self.converge_lost(OP, id, false).await?.is_none() {
                    return Err(Error::new(
                        OP,
                        id.as_str(),
                        ErrorKind::ShimUnavailable,
                        "connect to shim",
                        "the container is being started again: restore it once it runs",
                    ));
                }
                let follower = self.follow(&state_dir);
                follower.poke();
                self.followers.lock().unwrap().insert(id.clone(), follower);
                Ok((0, ProcessIo::default()))
            }
            Err(e) => Err(e),
        }
    }

    /// Starts another process in the container; unset fields come from init's.
    pub async fn exec(
        &self,
        id: &ContainerId,
        process_id: &ProcessId,
        process: &oci_spec::runtime::Process,
        stdio: StdioRequest,
    ) -> Result<(u32, ProcessIo)> {
        const OP: &str = "exec";
        cgroup_prime::start();
        if process_id.is_init() {
            return Err(Error::new(
                OP,
                id.as_str(),
                ErrorKind::InvalidArgument,
                "check process id",
                "\"init\" is the container's own process",
            ));
        }
        self.record(OP, id)?;
        let shim = self.live_shim(OP, id)?;
        let state_dir = self.roots.state_dir(id);
        let init = Spec::load(paths::bundle_dir(&state_dir).join("config.json")).map_err(|e| {
            Error::new(
                OP,
                id.as_str(),
                ErrorKind::Internal,
                "read container spec",
                e,
            )
        })?;
        let mut p = process.clone();
        if let Some(init) = init.process() {
            inherit(&mut p, init);
        }
        p.set_terminal(Some(stdio.terminal));
        let stdio = if stdio.terminal {
            StdioRequest {
                stderr: false,
                ..stdio
            }
        } else {
            stdio
        };
        let (fifo_paths, io) = stdio::make(&state_dir, process_id.as_str(), stdio)
            .map_err(io_err(OP, id, "make stdio fifos"))?;
        let mut any = protobuf::well_known_types::any::Any::new();
        any.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Process".into();
        any.value = serde_json::to_vec(&p).map_err(|e| {
            Error::new(
                OP,
                id.as_str(),
                ErrorKind::InvalidArgument,
                "encode process",
                e,
            )
        })?;
        let mut req = api::ExecProcessRequest::new();
        req.id = id.to_string();
        req.exec_id = process_id.to_string();
        req.terminal = stdio.terminal;
        req.stdin = fifo_paths.stdin.clone();
        req.stdout = fifo_paths.stdout.clone();
        req.stderr = fifo_paths.stderr.clone();
        req.spec = protobuf::MessageField::some(any);
        let result = async {
            shim.call(move |t| t.exec(ctx(Some(QUICK)), &req))
                .await
                .map_err(|e| map_err(OP, id, "add process", e))?;
            let mut req = api::StartRequest::new();
            req.id = id.to_string();
            req.exec_id = process_id.to_string();
            let started = shim
                .call(move |t| t.start(ctx(Some(QUICK)), &req))
                .await
                .map_err(|e| map_err(OP, id, "start process", e));
            if started.is_err() {
                // A process that never ran is not kept in the shim's table.
                let mut req = api::DeleteRequest::new();
                req.id = id.to_string();
                req.exec_id = process_id.to_string();
                let _ = shim.call(move |t| t.delete(ctx(Some(QUICK)), &req)).await;
            }
            Ok::<u32, Error>(started?.pid)
        }
        .await;
        match result {
            Ok(pid) => {
                let delivered = self.followers.lock().unwrap().get(id).map(|f| {
                    f.poke();
                    f.delivered.clone()
                });
                if let Some(mut rx) = delivered {
                    let started = rx.wait_for(|h| {
                        h.iter().any(|e| {
                            e.kind == EventKind::ExecStarted
                                && e.process_id.as_ref() == Some(process_id)
                        })
                    });
                    let _ = tokio::time::timeout(Duration::from_secs(5), started).await;
                }
                Ok((pid, io))
            }
            Err(e) => {
                stdio::remove(&state_dir, process_id.as_str());
                Err(e)
            }
        }
    }

    /// Sends `signal` to one process of the container.
    pub async fn signal_process(
        &self,
        id: &ContainerId,
        process_id: &ProcessId,
        signal: i32,
    ) -> Result<()> {
        const OP: &str = "signal";
        let shim = self.live_shim(OP, id)?;
        let mut req = api::KillRequest::new();
        req.id = id.to_string();
        req.exec_id = exec_id(process_id);
        req.signal = signal as u32;
        shim.call(move |t| t.kill(ctx(Some(QUICK)), &req))
            .await
            .map_err(|e| map_err(OP, id, "kill", e))?;
        Ok(())
    }

    /// Resizes a process's terminal.
    pub async fn resize(
        &self,
        id: &ContainerId,
        process_id: &ProcessId,
        width: u32,
        height: u32,
    ) -> Result<()> {
        const OP: &str = "resize";
        let shim = self.live_shim(OP, id)?;
        let mut req = api::ResizePtyRequest::new();
        req.id = id.to_string();
        req.exec_id = exec_id(process_id);
        req.width = width;
        req.height = height;
        shim.call(move |t| t.resize_pty(ctx(Some(QUICK)), &req))
            .await
            .map_err(|e| map_err(OP, id, "resize", e))?;
        Ok(())
    }

    /// Closes a process's stdin.
    pub async fn close_stdin(&self, id: &ContainerId, process_id: &ProcessId) -> Result<()> {
        const OP: &str = "close-stdin";
        let shim = self.live_shim(OP, id)?;
        let mut req = api::CloseIORequest::new();
        req.id = id.to_string();
        req.exec_id = exec_id(process_id);
        req.stdin = true;
        shim.call(move |t| t.close_io(ctx(Some(QUICK)), &req))
            .await
            .map_err(|e| map_err(OP, id, "close stdin", e))?;
        Ok(())
    }

    /// Every event recorded for `id` so far.
    pub fn events(&self, id: &ContainerId) -> Vec<Event> {
        journal::read_all(&paths::journal(&self.roots.state_dir(id)))
    }
}

/// The shim's name for a process: empty for init.
fn exec_id(p: &ProcessId) -> String {
    if p.is_init() {
        String::new()
    } else {
        p.to_string()
    }
}

/// Fills what an exec left unset from the container's init process.
fn inherit(p: &mut oci_spec::runtime::Process, init: &oci_spec::runtime::Process) {
    if p.env().is_none() {
        p.set_env(init.env().clone());
    }
    if p.cwd().as_os_str().is_empty() {
        p.set_cwd(init.cwd().clone());
    }
    if p.capabilities().is_none() {
        p.set_capabilities(init.capabilities().clone());
    }
    if p.rlimits().is_none() {
        p.set_rlimits(init.rlimits().clone());
    }
    if p.no_new_privileges().is_none() {
        p.set_no_new_privileges(init.no_new_privileges());
    }
    if p.apparmor_profile().is_none() {
        p.set_apparmor_profile(init.apparmor_profile().clone());
    }
    if p.selinux_label().is_none() {
        p.set_selinux_label(init.selinux_label().clone());
    }
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// Whether `pid` exists and is not a zombie.
fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Refuses the one valid id whose state dir would be berth's own.
fn reserved(op: &'static str, id: &ContainerId) -> Result<()> {
    if id.as_str() == paths::RUNTIME_DIR {
        return Err(Error::new(
            op,
            id.as_str(),
            ErrorKind::InvalidArgument,
            "reserve name",
            "the name \"runtime\" is berth's own (its runtime state under the root)",
        ));
    }
    Ok(())
}

/// The spec's root and its directory, made absolute against the bundle dir and
/// checked to be a directory; or the failed step and why.
fn root_dir(
    root: Option<&oci_spec::runtime::Root>,
    bundle_dir: Option<&Path>,
) -> std::result::Result<(oci_spec::runtime::Root, PathBuf), (&'static str, String)> {
    let root = root.ok_or(("check spec", "the spec has no root".to_owned()))?;
    let path = match (bundle_dir, root.path().is_absolute()) {
        (_, true) => root.path().clone(),
        (Some(b), false) => b.join(root.path()),
        (None, false) => {
            return Err((
                "check spec",
                "root.path is relative and no bundle dir was given".into(),
            ))
        }
    };
    let path = std::fs::canonicalize(&path)
        .map_err(|e| ("check root filesystem", format!("{}: {e}", path.display())))?;
    if !path.is_dir() {
        return Err((
            "check root filesystem",
            format!("{} is not a directory", path.display()),
        ));
    }
    Ok((root.clone(), path))
}

/// Where cgroup `path` (as a spec names it) holds a process, in the unified
/// hierarchy or any v1 one: that hierarchy's `cgroup.procs` path.
fn cgroup_holder(path: &Path) -> Option<String> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let base = Path::new("/sys/fs/cgroup");
    let hierarchies = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(rel));
    std::iter::once(base.join(rel))
        .chain(hierarchies)
        .map(|d| d.join("cgroup.procs"))
        .find(|procs| {
            std::fs::read_to_string(procs).is_ok_and(|t| t.lines().any(|l| !l.trim().is_empty()))
        })
        .map(|p| p.display().to_string())
}
