//! Windows: the Host Compute Service supervises compute systems itself, so there
//! is no shim; the Client calls HCS directly (through berth-hcs), as the
//! reference does.
//!
//! - create builds an HCS document (schema 2 by default; schema 1 when
//!   [`Config::use_schema_1`] is set and always for servicing containers), then
//!   creates the compute system, starts it and creates init; a failed step
//!   terminates and closes what exists and names the step.
//! - Every HCS call blocks, so it runs on tokio's blocking pool; each process's
//!   exit is waited for on a thread of its own, which stops the compute system
//!   when init exits (as the reference does), records the exit and emits it.
//! - Records and event journals live under [`Config::data_root`]; `restore`
//!   reopens a compute system that still exists and otherwise reports the exit.
//!   HCS cannot hand a new engine the pipes of a process created by an earlier
//!   one, so a restored process has no stdio.
//! - `update_resources` is accepted and ignored (the reference's contract; logged
//!   once at warn); checkpoints are unsupported; pause and resume need Hyper-V
//!   isolation.

mod events;
mod hcs;
mod record;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use berth_hcs::documents::v1::{PropertyQuery, PropertyType};
use berth_hcs::process::ProcessContext;
use berth_hcs::sys::{HcsError, NameToGuidResolver, ProcessStdio};
use berth_hcs::{translate, HostInfo};
use berth_types::{
    ContainerId, ContainerStatus, Event, EventKind, ExitStatus, ProcessId, ProcessSummary,
    Resources, Stats,
};
use chrono::Utc;
use oci_spec::runtime::Spec;
use tokio::sync::watch;

use self::events::{Delivery, Emitter};
use self::hcs::{ignore_stopped, Document, Proc, Schema, System};
use self::record::{Journal, Record};
use super::windows_convert::{self as convert, ContainerStop, ProcessStop};
use crate::error::{Error, ErrorKind, Result};
use crate::types::{
    CheckpointInfo, ContainerInfo, CreateOptions, EventSink, ProcessIo, StdioRequest,
};

/// The caller's end of a process's stdin: the HCS pipe, written on tokio's
/// blocking pool (HCS pipes are not opened for overlapped I/O).
pub type StdinWriter = tokio::fs::File;
/// The caller's end of a process's stdout or stderr: the HCS pipe, read on
/// tokio's blocking pool; a closed pipe reads as EOF.
pub type OutputReader = tokio::fs::File;

/// How long `delete` lets the delete event reach the sink before the journal goes.
const DELETE_EVENT_WAIT: Duration = Duration::from_millis(500);

/// Settings of the Windows platform.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where container records and event journals live
    /// (`%ProgramData%\berth` by default).
    pub data_root: PathBuf,
    /// `Owner` of the compute systems berth creates (`berth` when `None`).
    pub owner: Option<String>,
    /// Create containers with HCS schema 1 (vmcompute.dll) instead of schema 2
    /// (computecore.dll): hosts older than Windows Server 2019, and Hyper-V
    /// isolation, which berth cannot run under schema 2 yet.
    pub use_schema_1: bool,
}

impl Default for Config {
    fn default() -> Self {
        let program_data = std::env::var_os("ProgramData")
            .map_or_else(|| PathBuf::from(r"C:\ProgramData"), PathBuf::from);
        Self {
            data_root: program_data.join("berth"),
            owner: None,
            use_schema_1: false,
        }
    }
}

/// The Windows platform behind [`crate::Client`].
pub struct Platform {
    config: Config,
    delivery: Delivery,
    containers: Mutex<HashMap<ContainerId, Arc<Container>>>,
    update_warned: AtomicBool,
}

/// A container whose compute system berth holds open.
struct Container {
    id: ContainerId,
    dir: PathBuf,
    system: Arc<System>,
    hyperv: bool,
    init_cwd: String,
    memory_limit: Option<u64>,
    emitter: Emitter,
    journal: Mutex<Journal>,
    record: Mutex<Record>,
    processes: Mutex<HashMap<ProcessId, Arc<ProcessEntry>>>,
    paused: AtomicBool,
    /// Serialises the operations that change the container.
    ops: tokio::sync::Mutex<()>,
}

/// A process berth holds open: init or an exec.
struct ProcessEntry {
    process: Arc<Proc>,
    pid: u32,
    exit: watch::Receiver<Option<ExitStatus>>,
    stdin_closed: AtomicBool,
}

/// A container as `find` finds it.
enum Found {
    /// Its compute system is open and init has a watcher.
    Live(Arc<Container>),
    /// Init has exited (its compute system may be gone): only the record is left.
    Gone(Record),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An error and its sources, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

fn hcs_err<'a>(
    op: &'static str,
    id: &'a ContainerId,
    step: &'static str,
) -> impl FnOnce(HcsError) -> Error + 'a {
    move |e| {
        let kind = if e.is_not_found() {
            ErrorKind::NotFound
        } else if e.is_already_stopped() || e.is_invalid_state() {
            ErrorKind::FailedPrecondition
        } else {
            ErrorKind::Internal
        };
        Error::new(op, id.as_str(), kind, step, e)
    }
}

fn io_err<'a>(
    op: &'static str,
    id: &'a ContainerId,
    step: &'static str,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            _ => ErrorKind::Internal,
        };
        Error::new(op, id.as_str(), kind, step, e)
    }
}

/// Run a blocking HCS call on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    op: &'static str,
    id: &ContainerId,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(op, id.as_str(), ErrorKind::Internal, "run HCS call", e))
}

fn to_io(stdio: ProcessStdio) -> ProcessIo {
    ProcessIo {
        stdin: stdio.stdin.map(tokio::fs::File::from_std),
        stdout: stdio.stdout.map(tokio::fs::File::from_std),
        stderr: stdio.stderr.map(tokio::fs::File::from_std),
    }
}

fn info_from_record(rec: &Record) -> ContainerInfo {
    ContainerInfo {
        id: rec.id.clone(),
        status: ContainerStatus::Exited,
        pid: None,
        created: rec.created,
        started_at: rec.started_at,
        exit: Some(
            rec.exit
                .clone()
                .unwrap_or_else(|| ExitStatus::unknown("the compute system is gone")),
        ),
        bundle: rec.bundle.clone(),
        image: rec.image.clone(),
        args: rec.args.clone(),
    }
}

/// Append an event to a journal and queue it for the sink, in one step under the
/// journal's lock so that journal order is delivery order.
fn emit(
    emitter: &Emitter,
    journal: &mut Journal,
    id: &ContainerId,
    kind: EventKind,
    process_id: Option<&ProcessId>,
    pid: Option<u32>,
    exit_code: Option<i32>,
) -> tokio::sync::oneshot::Receiver<()> {
    let event = Event {
        seq: journal.take_seq(),
        time: Utc::now(),
        id: id.clone(),
        kind,
        process_id: process_id.cloned(),
        pid,
        exit_code,
        oom_killed: (kind == EventKind::Exit).then_some(false),
    };
    if let Err(e) = journal.append(&event) {
        tracing::warn!(container_id = %id, error = %e, "cannot journal event");
    }
    emitter.send(event)
}

impl Container {
    fn emit(
        &self,
        kind: EventKind,
        process_id: Option<&ProcessId>,
        pid: Option<u32>,
        exit_code: Option<i32>,
    ) -> tokio::sync::oneshot::Receiver<()> {
        let mut journal = lock(&self.journal);
        emit(
            &self.emitter,
            &mut journal,
            &self.id,
            kind,
            process_id,
            pid,
            exit_code,
        )
    }

    fn update_record(&self, f: impl FnOnce(&mut Record)) {
        let mut rec = lock(&self.record);
        f(&mut rec);
        if let Err(e) = record::write(&self.dir, &rec) {
            tracing::warn!(container_id = %self.id, error = %e, "cannot write the container record");
        }
    }

    fn init_exit(&self) -> Option<ExitStatus> {
        lock(&self.processes)
            .get(&ProcessId::init())
            .and_then(|p| p.exit.borrow().clone())
    }

    fn process(&self, op: &'static str, process_id: &ProcessId) -> Result<Arc<ProcessEntry>> {
        lock(&self.processes)
            .get(process_id)
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    op,
                    self.id.as_str(),
                    ErrorKind::NotFound,
                    "find process",
                    format!("no process {process_id}"),
                )
            })
    }

    /// Track `process` and wait for its exit on a thread of its own. When init
    /// exits, the compute system is stopped and the exit recorded before it is
    /// reported.
    fn watch(
        self: &Arc<Self>,
        process_id: ProcessId,
        process: Arc<Proc>,
    ) -> std::io::Result<Arc<ProcessEntry>> {
        let (tx, rx) = watch::channel(None);
        let entry = Arc::new(ProcessEntry {
            pid: process.pid(),
            process: process.clone(),
            exit: rx,
            stdin_closed: AtomicBool::new(false),
        });
        let c = self.clone();
        let pid = entry.pid;
        let pid_for_thread = process_id.clone();
        std::thread::Builder::new()
            .name(format!("berth-wait-{}-{}", self.id, process_id))
            .spawn(move || {
                let process_id = pid_for_thread;
                let status = convert::exit_status(
                    process.wait(),
                    "HCS could not report the exit code",
                );
                if process_id.is_init() {
                    if let Err(e) = c.system.stop() {
                        tracing::warn!(container_id = %c.id, error = %e, "cannot stop the compute system after init exited");
                    }
                    c.update_record(|r| r.exit = Some(status.clone()));
                }
                tx.send_replace(Some(status.clone()));
                c.emit(EventKind::Exit, Some(&process_id), Some(pid), Some(status.code));
            })?;
        lock(&self.processes).insert(process_id, entry.clone());
        Ok(entry)
    }
}

impl Platform {
    /// A platform keeping its records under `config.data_root`.
    pub fn new(config: Config, sink: Arc<dyn EventSink>) -> Self {
        Self {
            config,
            delivery: Delivery::new(sink),
            containers: Mutex::new(HashMap::new()),
            update_warned: AtomicBool::new(false),
        }
    }

    fn dir(&self, id: &ContainerId) -> PathBuf {
        record::dir(&self.config.data_root, id)
    }

    /// The container `id`: held open, reopened from its record, or only its record
    /// when init has exited.
    async fn find(&self, op: &'static str, id: &ContainerId) -> Result<Found> {
        self.delivery.ensure_running();
        if let Some(c) = lock(&self.containers).get(id) {
            return Ok(Found::Live(c.clone()));
        }
        let dir = self.dir(id);
        let rec = record::read(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::new(
                op,
                id.as_str(),
                ErrorKind::NotFound,
                "find container",
                "no such container",
            ),
            _ => Error::new(op, id.as_str(), ErrorKind::Internal, "read record", e),
        })?;
        if rec.exit.is_some() {
            return Ok(Found::Gone(rec));
        }
        let Some(init_pid) = rec.init_pid else {
            return Ok(Found::Gone(rec));
        };
        // Reopen the compute system and init, if they still exist.
        let (schema, name) = (rec.schema, id.to_string());
        let opened = blocking(op, id, move || -> std::result::Result<_, HcsError> {
            let system = System::open(schema, &name)?;
            match system.open_process(init_pid) {
                Ok(init) => Ok(Ok((system, init))),
                Err(e) => {
                    // Init is gone while the system lingers: nothing can run in it.
                    let _ = system.stop();
                    Ok(Err(e))
                }
            }
        })
        .await?;
        let (system, init) = match opened {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) | Err(e) if e.is_not_found() || e.is_already_stopped() => {
                let mut rec = rec;
                rec.exit = Some(ExitStatus::unknown(format!(
                    "init's exit was not observed: {e}"
                )));
                let _ = record::write(&dir, &rec);
                return Ok(Found::Gone(rec));
            }
            Ok(Err(e)) | Err(e) => return Err(hcs_err(op, id, "reopen compute system")(e)),
        };
        let c = Arc::new(Container {
            id: id.clone(),
            journal: Mutex::new(Journal::open(&dir)),
            dir,
            system: Arc::new(system),
            hyperv: rec.hyperv,
            init_cwd: rec.init_cwd.clone(),
            memory_limit: rec.memory_limit,
            emitter: self.delivery.emitter(),
            record: Mutex::new(rec),
            processes: Mutex::new(HashMap::new()),
            paused: AtomicBool::new(false),
            ops: tokio::sync::Mutex::new(()),
        });
        c.watch(ProcessId::init(), Arc::new(init))
            .map_err(io_err(op, id, "watch init"))?;
        let mut containers = lock(&self.containers);
        // Another call may have reopened it meanwhile; keep the first.
        Ok(Found::Live(
            containers.entry(id.clone()).or_insert(c).clone(),
        ))
    }

    async fn live(&self, op: &'static str, id: &ContainerId) -> Result<Arc<Container>> {
        match self.find(op, id).await? {
            Found::Live(c) => Ok(c),
            Found::Gone(_) => Err(Error::new(
                op,
                id.as_str(),
                ErrorKind::FailedPrecondition,
                "find container",
                "the container is not running",
            )),
        }
    }

    /// Creates and starts `id`'s init process.
    pub async fn create(
        &self,
        id: &ContainerId,
        spec: &Spec,
        opts: &CreateOptions,
        stdio: StdioRequest,
    ) -> Result<(u32, ProcessIo)> {
        const OP: &str = "create";
        self.delivery.ensure_running();
        let dir = self.dir(id);
        let in_use = || {
            Error::new(
                OP,
                id.as_str(),
                ErrorKind::AlreadyExists,
                "reserve name",
                "the name is already in use",
            )
        };
        if lock(&self.containers).contains_key(id) {
            return Err(in_use());
        }
        std::fs::create_dir_all(record::containers_dir(&self.config.data_root)).map_err(io_err(
            OP,
            id,
            "create data root",
        ))?;
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(in_use()),
            Err(e) => return Err(io_err(OP, id, "create record dir")(e)),
        }
        match self.create_steps(id, spec, opts, stdio, &dir).await {
            Ok(r) => Ok(r),
            Err(e) => {
                tracing::debug!(container_id = %id, error = %e, "create failed; cleaning up");
                lock(&self.containers).remove(id);
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    async fn create_steps(
        &self,
        id: &ContainerId,
        spec: &Spec,
        opts: &CreateOptions,
        stdio: StdioRequest,
        dir: &Path,
    ) -> Result<(u32, ProcessIo)> {
        const OP: &str = "create";
        let invalid = |step: &'static str, msg: String| {
            Error::new(OP, id.as_str(), ErrorKind::InvalidArgument, step, msg)
        };
        let hopts = convert::hcs_options(spec, opts, self.config.owner.as_deref());
        let servicing = hopts.servicing;
        let hyperv = matches!(hopts.isolation, berth_hcs::Isolation::HyperV { .. });
        // Servicing is a schema 1 feature: HCS schema 2 has no such container.
        let schema = if self.config.use_schema_1 || servicing {
            Schema::V1
        } else {
            Schema::V2
        };
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| invalid("check spec", "the spec has no process".into()))?;
        let init_cwd = process.cwd().to_string_lossy().into_owned();
        let cfg = convert::process_config(
            process,
            stdio,
            ProcessContext {
                servicing,
                init_cwd: None,
            },
        )
        .map_err(|e| invalid("build process config", chain(&e)))?;
        let host = HostInfo::detect();
        let translated = match schema {
            Schema::V2 => {
                translate::to_v2(spec, &hopts, &NameToGuidResolver, &host).map(Document::V2)
            }
            Schema::V1 => translate::to_v1(id.as_str(), spec, &hopts, &NameToGuidResolver, &host)
                .map(Document::V1),
        };
        let doc = translated.map_err(|e| {
            Error::new(
                OP,
                id.as_str(),
                convert::translate_error_kind(&e),
                "translate spec",
                chain(&e),
            )
        })?;

        let mut rec = Record {
            id: id.clone(),
            created: Utc::now(),
            started_at: None,
            bundle: opts.bundle_dir.clone().unwrap_or_default(),
            image: opts.image.clone(),
            args: process.args().clone().unwrap_or_default(),
            schema,
            hyperv,
            init_pid: None,
            init_cwd: init_cwd.clone(),
            memory_limit: convert::memory_limit(spec),
            exit: None,
        };
        record::write(dir, &rec).map_err(io_err(OP, id, "write record"))?;

        // Create, start, create init; a failed step terminates what exists.
        let name = id.to_string();
        let made = blocking(OP, id, move || {
            let system = match System::create(&name, &doc) {
                Ok(s) => s,
                Err(e) => {
                    // HCS may have made the system before the failure was known.
                    if let Ok(s) = System::open(schema, &name) {
                        let _ = s.terminate();
                    }
                    return Err(("create compute system", e));
                }
            };
            if let Err(e) = system.start() {
                let _ = system.terminate();
                return Err(("start compute system", e));
            }
            match system.create_process(&cfg) {
                Ok(init) => Ok((system, init)),
                Err(e) => {
                    let _ = system.terminate();
                    Err(("create init process", e))
                }
            }
        })
        .await?;
        let (system, mut init) = made.map_err(|(step, e)| hcs_err(OP, id, step)(e))?;
        let pid = init.pid();
        let system = Arc::new(system);

        if servicing {
            return self.finish_servicing(id, dir, rec, system, init).await;
        }

        let io = to_io(init.take_stdio());
        rec.init_pid = Some(pid);
        rec.started_at = Some(Utc::now());
        if let Err(e) = record::write(dir, &rec) {
            let s = system.clone();
            let _ = blocking(OP, id, move || s.terminate()).await;
            return Err(io_err(OP, id, "write record")(e));
        }
        let c = Arc::new(Container {
            id: id.clone(),
            dir: dir.to_path_buf(),
            system: system.clone(),
            hyperv,
            init_cwd,
            memory_limit: rec.memory_limit,
            emitter: self.delivery.emitter(),
            journal: Mutex::new(Journal::open(dir)),
            record: Mutex::new(rec),
            processes: Mutex::new(HashMap::new()),
            paused: AtomicBool::new(false),
            ops: tokio::sync::Mutex::new(()),
        });
        let init_id = ProcessId::init();
        c.emit(EventKind::Create, Some(&init_id), Some(pid), None);
        let started = c.emit(EventKind::Start, Some(&init_id), Some(pid), None);
        if let Err(e) = c.watch(init_id, Arc::new(init)) {
            let s = system.clone();
            let _ = blocking(OP, id, move || s.terminate()).await;
            return Err(io_err(OP, id, "watch init")(e));
        }
        lock(&self.containers).insert(id.clone(), c);
        // The start event reaches the engine before create returns.
        let _ = started.await;
        Ok((pid, io))
    }

    /// A servicing container runs to completion here and reports no events; an
    /// exit other than 0 is an error naming the code.
    async fn finish_servicing(
        &self,
        id: &ContainerId,
        dir: &Path,
        mut rec: Record,
        system: Arc<System>,
        init: Proc,
    ) -> Result<(u32, ProcessIo)> {
        const OP: &str = "create";
        let pid = init.pid();
        let code = blocking(OP, id, move || {
            let code = init.wait();
            if let Err(e) = system.stop() {
                tracing::warn!(error = %e, "cannot stop the servicing container");
            }
            code
        })
        .await?;
        let status = convert::exit_status(code, "HCS could not report the exit code");
        if status.code != 0 {
            return Err(Error::new(
                OP,
                id.as_str(),
                ErrorKind::Internal,
                "run servicing container",
                format!("it exited with code {}", status.code),
            ));
        }
        rec.init_pid = Some(pid);
        rec.started_at = Some(Utc::now());
        rec.exit = Some(status);
        record::write(dir, &rec).map_err(io_err(OP, id, "write record"))?;
        Ok((pid, ProcessIo::default()))
    }

    /// SIGKILL terminates the compute system; any other signal shuts it down
    /// gracefully (terminating it if that fails), as Docker 17.04 and later do.
    pub async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        const OP: &str = "signal";
        let c = self.live(OP, id).await?;
        let system = c.system.clone();
        let r = match ContainerStop::for_signal(signal) {
            ContainerStop::Terminate => {
                blocking(OP, id, move || ignore_stopped(system.terminate())).await?
            }
            ContainerStop::Shutdown => blocking(OP, id, move || system.stop()).await?,
        };
        r.map_err(hcs_err(OP, id, "stop compute system"))
    }

    /// Waits for `process` to exit.
    pub async fn wait(&self, id: &ContainerId, process: &ProcessId) -> Result<ExitStatus> {
        const OP: &str = "wait";
        let c = match self.find(OP, id).await? {
            Found::Live(c) => c,
            Found::Gone(rec) if process.is_init() => {
                return Ok(info_from_record(&rec)
                    .exit
                    .unwrap_or_else(|| ExitStatus::unknown("the compute system is gone")));
            }
            Found::Gone(_) => {
                return Err(Error::new(
                    OP,
                    id.as_str(),
                    ErrorKind::NotFound,
                    "find process",
                    format!("no process {process}"),
                ))
            }
        };
        let mut exit = c.process(OP, process)?.exit.clone();
        let status = exit
            .wait_for(Option::is_some)
            .await
            .map(|s| s.clone())
            .ok()
            .flatten()
            .unwrap_or_else(|| ExitStatus::unknown("the exit watcher went away"));
        Ok(status)
    }

    /// The container's state.
    pub async fn state(&self, id: &ContainerId) -> Result<ContainerInfo> {
        const OP: &str = "state";
        let c = match self.find(OP, id).await? {
            Found::Live(c) => c,
            Found::Gone(rec) => return Ok(info_from_record(&rec)),
        };
        let mut info = info_from_record(&lock(&c.record));
        match c.init_exit() {
            Some(exit) => info.exit = Some(exit),
            None => {
                info.exit = None;
                info.pid = lock(&c.processes).get(&ProcessId::init()).map(|p| p.pid);
                info.status = if c.paused.load(Ordering::SeqCst) {
                    ContainerStatus::Paused
                } else {
                    ContainerStatus::Running
                };
            }
        }
        Ok(info)
    }

    /// Every container under the data root.
    pub async fn list(&self) -> Result<Vec<ContainerInfo>> {
        let mut out = Vec::new();
        let Ok(dir) = std::fs::read_dir(record::containers_dir(&self.config.data_root)) else {
            return Ok(out);
        };
        let mut ids: Vec<ContainerId> = dir
            .flatten()
            .filter_map(|e| ContainerId::new(e.file_name().to_string_lossy().into_owned()).ok())
            .collect();
        ids.sort();
        for id in ids {
            match self.state(&id).await {
                Ok(info) => out.push(info),
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Deletes a container whose init has exited, with its record and journal.
    pub async fn delete(&self, id: &ContainerId) -> Result<ExitStatus> {
        const OP: &str = "delete";
        let (exit, delete_event) = match self.find(OP, id).await? {
            Found::Live(c) => {
                let _ops = c.ops.lock().await;
                let Some(exit) = c.init_exit() else {
                    return Err(Error::new(
                        OP,
                        id.as_str(),
                        ErrorKind::FailedPrecondition,
                        "check state",
                        "the container is running; stop it first",
                    ));
                };
                // The exit watcher stopped it already; make sure before closing,
                // but a system HCS will not stop now must not keep the record.
                let system = c.system.clone();
                if let Err(e) = blocking(OP, id, move || system.stop()).await? {
                    tracing::warn!(container_id = %id, error = %e, "cannot stop the compute system");
                }
                lock(&self.containers).remove(id);
                let ev = c.emit(EventKind::Delete, None, None, None);
                (exit, ev)
            }
            Found::Gone(rec) => {
                let exit = info_from_record(&rec)
                    .exit
                    .unwrap_or_else(|| ExitStatus::unknown("the compute system is gone"));
                let mut journal = Journal::open(&self.dir(id));
                let ev = emit(
                    &self.delivery.emitter(),
                    &mut journal,
                    id,
                    EventKind::Delete,
                    None,
                    None,
                    None,
                );
                (exit, ev)
            }
        };
        let _ = tokio::time::timeout(DELETE_EVENT_WAIT, delete_event).await;
        match std::fs::remove_dir_all(self.dir(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(OP, id, "remove record")(e)),
        }
        Ok(exit)
    }

    /// Starts another process in the container (the reference's AddProcess).
    pub async fn exec(
        &self,
        id: &ContainerId,
        process_id: &ProcessId,
        process: &oci_spec::runtime::Process,
        stdio: StdioRequest,
    ) -> Result<(u32, ProcessIo)> {
        const OP: &str = "exec";
        let c = self.live(OP, id).await?;
        let _ops = c.ops.lock().await;
        if c.init_exit().is_some() {
            return Err(Error::new(
                OP,
                id.as_str(),
                ErrorKind::FailedPrecondition,
                "check state",
                "the container is not running",
            ));
        }
        if lock(&c.processes).contains_key(process_id) {
            return Err(Error::new(
                OP,
                id.as_str(),
                ErrorKind::AlreadyExists,
                "reserve process id",
                format!("process {process_id} already exists"),
            ));
        }
        let cfg = convert::process_config(
            process,
            stdio,
            ProcessContext {
                servicing: false,
                init_cwd: Some(&c.init_cwd),
            },
        )
        .map_err(|e| {
            Error::new(
                OP,
                id.as_str(),
                ErrorKind::InvalidArgument,
                "build process config",
                chain(&e),
            )
        })?;
        let system = c.system.clone();
        let mut proc = blocking(OP, id, move || system.create_process(&cfg))
            .await?
            .map_err(hcs_err(OP, id, "create process"))?;
        let pid = proc.pid();
        let io = to_io(proc.take_stdio());
        c.emit(EventKind::ExecAdded, Some(process_id), Some(pid), None);
        c.emit(EventKind::ExecStarted, Some(process_id), Some(pid), None);
        let proc = Arc::new(proc);
        if let Err(e) = c.watch(process_id.clone(), proc.clone()) {
            let _ = blocking(OP, id, move || proc.terminate()).await;
            return Err(io_err(OP, id, "watch process")(e));
        }
        Ok((pid, io))
    }

    /// Signals one process: SIGKILL terminates it; SIGINT and SIGTERM become
    /// console control events where HCS can deliver them.
    pub async fn signal_process(
        &self,
        id: &ContainerId,
        process_id: &ProcessId,
        signal: i32,
    ) -> Result<()> {
        const OP: &str = "signal";
        let c = self.live(OP, id).await?;
        let entry = c.process(OP, process_id)?;
        let process = entry.process.clone();
        let Some(action) = ProcessStop::for_signal(signal, process.has_console_signals()) else {
            return Err(Error::new(
                OP,
                id.as_str(),
                ErrorKind::InvalidArgument,
                "map signal",
                format!("signal {signal} has no Windows equivalent"),
            ));
        };
        blocking(OP, id, move || match action {
            ProcessStop::Terminate => ignore_stopped(process.terminate()),
            ProcessStop::Console(s) => process.signal(s),
        })
        .await?
        .map_err(hcs_err(OP, id, "signal process"))
    }

    /// Resizes a process's console.
    pub async fn resize(
        &self,
        id: &ContainerId,
        process_id: &ProcessId,
        width: u32,
        height: u32,
    ) -> Result<()> {
        const OP: &str = "resize";
        let c = self.live(OP, id).await?;
        let process = c.process(OP, process_id)?.process.clone();
        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        let (w, h) = (clamp(width), clamp(height));
        blocking(OP, id, move || process.resize(w, h))
            .await?
            .map_err(hcs_err(OP, id, "resize console"))
    }

    /// Closes a process's stdin, once; a process that already exited is fine.
    pub async fn close_stdin(&self, id: &ContainerId, process_id: &ProcessId) -> Result<()> {
        const OP: &str = "close-stdin";
        let c = self.live(OP, id).await?;
        let entry = c.process(OP, process_id)?;
        if entry.stdin_closed.swap(true, Ordering::SeqCst) || entry.exit.borrow().is_some() {
            return Ok(());
        }
        let process = entry.process.clone();
        blocking(OP, id, move || ignore_stopped(process.close_stdin()))
            .await?
            .map_err(hcs_err(OP, id, "close stdin"))
    }

    async fn hyperv_only(&self, op: &'static str, id: &ContainerId) -> Result<Arc<Container>> {
        let c = self.live(op, id).await?;
        if !c.hyperv {
            return Err(Error::new(
                op,
                id.as_str(),
                ErrorKind::Unsupported,
                "check isolation",
                "only Hyper-V isolated containers can be paused; Windows Server containers (process isolation) cannot",
            ));
        }
        Ok(c)
    }

    /// Pauses a Hyper-V isolated container; returns after the sink had the event.
    pub async fn pause(&self, id: &ContainerId) -> Result<()> {
        const OP: &str = "pause";
        let c = self.hyperv_only(OP, id).await?;
        let _ops = c.ops.lock().await;
        let system = c.system.clone();
        blocking(OP, id, move || system.pause())
            .await?
            .map_err(hcs_err(OP, id, "pause compute system"))?;
        c.paused.store(true, Ordering::SeqCst);
        let _ = c.emit(EventKind::Paused, None, None, None).await;
        Ok(())
    }

    /// Resumes a paused container; returns after the sink had the event.
    pub async fn resume(&self, id: &ContainerId) -> Result<()> {
        const OP: &str = "resume";
        let c = self.hyperv_only(OP, id).await?;
        let _ops = c.ops.lock().await;
        let system = c.system.clone();
        blocking(OP, id, move || system.resume())
            .await?
            .map_err(hcs_err(OP, id, "resume compute system"))?;
        c.paused.store(false, Ordering::SeqCst);
        let _ = c.emit(EventKind::Resumed, None, None, None).await;
        Ok(())
    }

    /// Statistics and the process count, in one HCS query.
    pub async fn stats(&self, id: &ContainerId) -> Result<Stats> {
        const OP: &str = "stats";
        let c = self.live(OP, id).await?;
        let system = c.system.clone();
        let query = PropertyQuery::of(&[PropertyType::Statistics, PropertyType::ProcessList]);
        let props = blocking(OP, id, move || system.properties(&query))
            .await?
            .map_err(hcs_err(OP, id, "query statistics"))?;
        let statistics = props.statistics.ok_or_else(|| {
            Error::new(
                OP,
                id.as_str(),
                ErrorKind::Internal,
                "query statistics",
                "HCS returned no statistics",
            )
        })?;
        Ok(convert::stats(
            &statistics,
            props.process_list.as_ref().map(Vec::len),
            c.memory_limit,
        ))
    }

    async fn process_list(
        &self,
        op: &'static str,
        id: &ContainerId,
    ) -> Result<Vec<berth_hcs::documents::v1::ProcessListItem>> {
        let c = self.live(op, id).await?;
        let system = c.system.clone();
        let query = PropertyQuery::of(&[PropertyType::ProcessList]);
        let props = blocking(op, id, move || system.properties(&query))
            .await?
            .map_err(hcs_err(op, id, "query process list"))?;
        Ok(props.process_list.unwrap_or_default())
    }

    /// Process ids of every process of the container.
    pub async fn pids(&self, id: &ContainerId) -> Result<Vec<u32>> {
        Ok(self
            .process_list("pids", id)
            .await?
            .iter()
            .map(|p| p.process_id)
            .collect())
    }

    /// Every process of the container, for `top`.
    pub async fn summary(&self, id: &ContainerId) -> Result<Vec<ProcessSummary>> {
        Ok(convert::summary(&self.process_list("top", id).await?))
    }

    /// Accepted and ignored: HCS cannot change a running container's limits (the
    /// reference's contract). Logged once at warn.
    pub async fn update_resources(&self, id: &ContainerId, _resources: &Resources) -> Result<()> {
        self.find("update", id).await?;
        if !self.update_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(container_id = %id, "resource updates are ignored on Windows");
        }
        Ok(())
    }

    fn no_checkpoints<T>(op: &'static str, id: &ContainerId) -> Result<T> {
        Err(Error::new(
            op,
            id.as_str(),
            ErrorKind::Unsupported,
            op,
            "Windows containers do not support checkpoints",
        ))
    }

    /// Unsupported on Windows: a container is created and started at once.
    pub async fn define(
        &self,
        id: &ContainerId,
        _spec: &Spec,
        _opts: &CreateOptions,
    ) -> Result<()> {
        Err(Error::new(
            "create",
            id.as_str(),
            ErrorKind::Unsupported,
            "define container",
            "containers defined for a later start are not supported on Windows",
        ))
    }

    /// Unsupported on Windows (see [`Platform::define`]).
    pub async fn start(&self, id: &ContainerId, _stdio: StdioRequest) -> Result<(u32, ProcessIo)> {
        Err(Error::new(
            "start",
            id.as_str(),
            ErrorKind::Unsupported,
            "start container",
            "containers defined for a later start are not supported on Windows",
        ))
    }

    /// Unsupported on Windows.
    pub async fn checkpoint(
        &self,
        id: &ContainerId,
        _name: &str,
        _dir: Option<&Path>,
        _exit: bool,
    ) -> Result<()> {
        Self::no_checkpoints("checkpoint", id)
    }

    /// Unsupported on Windows.
    pub async fn list_checkpoints(
        &self,
        id: &ContainerId,
        _dir: Option<&Path>,
    ) -> Result<Vec<CheckpointInfo>> {
        Self::no_checkpoints("checkpoint ls", id)
    }

    /// Unsupported on Windows.
    pub async fn delete_checkpoint(
        &self,
        id: &ContainerId,
        _name: &str,
        _dir: Option<&Path>,
    ) -> Result<()> {
        Self::no_checkpoints("checkpoint rm", id)
    }

    /// Reattaches after an engine restart: reopens the compute system and init
    /// when they still exist (a restore event, then exits as they happen), else
    /// reports the exit that happened meanwhile. HCS cannot hand out the pipes of
    /// a process an earlier engine created, so the returned stdio is empty.
    pub async fn restore(&self, id: &ContainerId, stdio: StdioRequest) -> Result<(u32, ProcessIo)> {
        const OP: &str = "restore";
        if stdio.stdin || stdio.stdout || stdio.stderr {
            tracing::warn!(container_id = %id, "stdio cannot be reattached on Windows; restoring without it");
        }
        match self.find(OP, id).await? {
            Found::Live(c) => {
                let pid = lock(&c.processes)
                    .get(&ProcessId::init())
                    .map(|p| p.pid)
                    .unwrap_or_default();
                let _ = c
                    .emit(
                        EventKind::Restore,
                        Some(&ProcessId::init()),
                        Some(pid),
                        None,
                    )
                    .await;
                Ok((pid, ProcessIo::default()))
            }
            Found::Gone(rec) => {
                let pid = rec.init_pid.unwrap_or_default();
                let exit = info_from_record(&rec)
                    .exit
                    .unwrap_or_else(|| ExitStatus::unknown("the compute system is gone"));
                let mut journal = Journal::open(&self.dir(id));
                let reported = journal.events().iter().any(|e| {
                    e.kind == EventKind::Exit
                        && e.process_id.as_ref().is_none_or(ProcessId::is_init)
                });
                if !reported {
                    let ev = emit(
                        &self.delivery.emitter(),
                        &mut journal,
                        id,
                        EventKind::Exit,
                        Some(&ProcessId::init()),
                        rec.init_pid,
                        Some(exit.code),
                    );
                    let _ = ev.await;
                }
                Ok((pid, ProcessIo::default()))
            }
        }
    }

    /// Every event recorded for `id` so far.
    pub fn events(&self, id: &ContainerId) -> Vec<Event> {
        record::read_events(&record::journal_path(&self.dir(id)))
    }
}
