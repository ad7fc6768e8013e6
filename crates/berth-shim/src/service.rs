//! The long-lived shim: the containerd shim v2 Task service for one container.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{IntoRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use berth_types::wire::WIRE_ERROR_TYPE_URL;
use berth_types::{ContainerId, EventKind, ExitStatus, WireError, WireErrorKind, INIT_PROCESS_ID};
use chrono::{DateTime, Utc};
use containerd_shim_protos::api::{self, Status};
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::shim_sync::{create_task, Task};
use libcontainer::container::Container;
use ttrpc::{Code, TtrpcContext};

use crate::args::{Flags, ENV_DATA_DIR, ENV_LOG_MAX, ENV_RUNTIME_ROOT, ENV_STATE_DIR};
use crate::io::{self, ConsoleSocket, IoGroup, Log};
use crate::journal::{Detail, Journal};
use crate::reaper::Reaper;
use crate::{fixups, helper, mounts, sys};

mod checkpoint;
pub(crate) use checkpoint::kill_and_remove_cgroup;
mod observe;

type TResult<T> = ttrpc::Result<T>;

/// Builds the one ttrpc error form the shim sends: a status code plus the typed
/// [`WireError`] in its details. This is the only place wire errors are made.
fn fail(kind: WireErrorKind, step: &str, msg: impl std::fmt::Display) -> ttrpc::Error {
    let w = WireError::new(kind, step, msg.to_string());
    let code = match kind {
        WireErrorKind::InvalidArgument => Code::INVALID_ARGUMENT,
        WireErrorKind::NotFound | WireErrorKind::CommandNotFound => Code::NOT_FOUND,
        WireErrorKind::AlreadyExists => Code::ALREADY_EXISTS,
        WireErrorKind::FailedPrecondition => Code::FAILED_PRECONDITION,
        WireErrorKind::CommandNotExecutable => Code::PERMISSION_DENIED,
        WireErrorKind::Unimplemented => Code::UNIMPLEMENTED,
        WireErrorKind::Internal => Code::INTERNAL,
    };
    let mut status = ttrpc::get_status(code, w.to_string());
    let mut any = ttrpc::proto::Any::new();
    any.type_url = WIRE_ERROR_TYPE_URL.to_owned();
    any.value = serde_json::to_vec(&w).unwrap_or_default();
    status.details.push(any);
    ttrpc::Error::RpcStatus(status)
}

/// A protobuf timestamp of `t`, as every shim message carries times.
pub(crate) fn timestamp(t: DateTime<Utc>) -> MessageField<Timestamp> {
    let mut ts = Timestamp::new();
    ts.seconds = t.timestamp();
    ts.nanos = t.timestamp_subsec_nanos() as i32;
    MessageField::some(ts)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Starting,
    Running,
    StartFailed,
    Exited,
}

struct ProcState {
    phase: Phase,
    exit: Option<ExitStatus>,
}

/// One process of the container (init or an exec).
struct Proc {
    id: String,
    /// Host pid; 0 until an exec is started.
    pid: AtomicI32,
    stdin: String,
    stdout: String,
    stderr: String,
    terminal: bool,
    state: Mutex<ProcState>,
    cond: Condvar,
    io: Arc<IoGroup>,
    /// Read end of the report pipe: EOF once the command was exec'd.
    report: Mutex<Option<BufReader<File>>>,
    /// Closing this ends the stdin copy (CloseIO, or exit); for an open stdin
    /// nobody feeds, it is the pipe's writing end itself.
    stdin_closer: Mutex<Option<OwnedFd>>,
    /// Give a stdin that stays open when the caller gives none.
    hold_stdin: std::sync::atomic::AtomicBool,
    /// The terminal's master, for resizes.
    console: Mutex<Option<File>>,
    /// An exec's process.json.
    spec_path: Option<PathBuf>,
}

impl Proc {
    fn new(
        id: &str,
        stdin: String,
        stdout: String,
        stderr: String,
        terminal: bool,
        spec_path: Option<PathBuf>,
    ) -> Self {
        Self {
            id: id.to_owned(),
            pid: AtomicI32::new(0),
            stdin,
            stdout,
            stderr,
            terminal,
            state: Mutex::new(ProcState {
                phase: Phase::Created,
                exit: None,
            }),
            cond: Condvar::new(),
            io: Arc::new(IoGroup::default()),
            report: Mutex::new(None),
            stdin_closer: Mutex::new(None),
            hold_stdin: std::sync::atomic::AtomicBool::new(false),
            console: Mutex::new(None),
            spec_path,
        }
    }

    fn pid(&self) -> i32 {
        self.pid.load(Ordering::SeqCst)
    }

    fn phase(&self) -> Phase {
        self.state.lock().unwrap().phase
    }

    fn exit(&self) -> Option<ExitStatus> {
        self.state.lock().unwrap().exit.clone()
    }

    fn wait_exit(&self) -> ExitStatus {
        let mut st = self.state.lock().unwrap();
        loop {
            if let Some(e) = &st.exit {
                return e.clone();
            }
            st = self.cond.wait(st).unwrap();
        }
    }
}

/// Counts requests in progress, so that a shutdown asked for by one client never
/// cuts off another's reply (a kill racing the `rm` of the same container).
#[derive(Default)]
pub(crate) struct Busy {
    count: Mutex<usize>,
    cond: Condvar,
    /// When the last request ended: its reply is written just after.
    last_end: Mutex<Option<std::time::Instant>>,
}

pub(crate) struct BusyGuard<'a>(&'a Busy);

impl Busy {
    fn enter(&self) -> BusyGuard<'_> {
        *self.count.lock().unwrap() += 1;
        BusyGuard(self)
    }

    /// Waits until no request runs, and until the reply of one that just ended
    /// has had a moment to be written (a `kill` beside the Shutdown of `run
    /// --rm` lost its reply to the shim's exit).
    fn wait_idle(&self, timeout: Duration) {
        let count = self.count.lock().unwrap();
        let _ = self.cond.wait_timeout_while(count, timeout, |n| *n > 0);
        const REPLY_GRACE: Duration = Duration::from_millis(2);
        if let Some(end) = *self.last_end.lock().unwrap() {
            if let Some(left) = REPLY_GRACE.checked_sub(end.elapsed()) {
                std::thread::sleep(left);
            }
        }
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        *self.0.last_end.lock().unwrap() = Some(std::time::Instant::now());
        *self.0.count.lock().unwrap() -= 1;
        self.0.cond.notify_all();
    }
}

/// Where this shim keeps things.
struct Paths {
    /// Runtime state dir (berth: `<root>/<id>`; containerd: the bundle).
    state_dir: PathBuf,
    /// The container's record dir under the data root, when berth started us.
    data_dir: Option<PathBuf>,
    /// libcontainer's state root.
    runtime_root: PathBuf,
    /// Log limit per process, in bytes.
    log_max: u64,
}

pub struct Service {
    /// Requests being handled that change the container; shutdown waits for them.
    busy: Arc<Busy>,
    id: ContainerId,
    paths: Paths,
    reaper: Arc<Reaper>,
    journal: Arc<Mutex<Journal>>,
    init: Mutex<Option<Arc<Proc>>>,
    execs: Mutex<HashMap<String, Arc<Proc>>>,
    bundle: Mutex<PathBuf>,
    /// What the helper is exec'd from: a read-only view or a sealed copy of this binary.
    helper_exe: Mutex<Option<OwnedFd>>,
    shutdown: Mutex<mpsc::Sender<()>>,
    /// The root filesystem this shim mounted (under containerd), unmounted on delete.
    rootfs: Mutex<Option<PathBuf>>,
    /// The checkpoint init is restored from at Start, when created from one.
    checkpoint: Mutex<Option<PathBuf>>,
    /// A checkpoint is being taken: pause and resume wait their turn (criu holds
    /// the container's freezer).
    checkpointing: std::sync::atomic::AtomicBool,
    /// Run once a detached init has exited (the spec's
    /// [`berth_types::EXIT_COMMAND_ANNOTATION`]; under berth only).
    exit_command: Mutex<Option<Vec<String>>>,
    /// Init's deletion: held while it runs, then its answer, which a second
    /// Delete (an exit command's `rm` beside `rm -f`) gets as well.
    init_deleted: Mutex<Option<api::DeleteResponse>>,
    /// libcontainer's state.json is rewritten in place (truncated, then written)
    /// by kill, start and pause: every load and every load-then-save holds this,
    /// so that no request reads it half written (a Delete that raced a Kill's save
    /// found it empty and left the container's cgroups and state behind).
    state_lock: Mutex<()>,
}

pub fn serve(flags: &Flags) -> Result<()> {
    sys::single_malloc_arena();
    sys::ignore_sigpipe();
    sys::set_child_subreaper().context("become child subreaper")?;
    let listener = sys::take_fd3().context("take listening socket (fd 3)")?;
    let id = ContainerId::new(&flags.id).context("container id")?;
    let paths = paths_for(flags)?;
    std::fs::create_dir_all(&paths.runtime_root).context("create runtime root")?;
    let after = paths
        .data_dir
        .as_deref()
        .map_or(0, berth_types::wire::last_seq);
    let mut journal = Journal::open(&paths.state_dir.join("events.jsonl"), id.clone(), after)
        .context("open event journal")?;
    if paths.data_dir.is_some() {
        if let Some(root) = paths.state_dir.parent() {
            journal.log_to_host(root.to_path_buf());
        }
        // The client writes it too, once the spawn returns; a client killed
        // before that must not leave a shim nobody can find.
        let _ = std::fs::write(
            paths.state_dir.join("shim.pid"),
            std::process::id().to_string(),
        );
    }
    if paths.data_dir.is_none() {
        if let Ok(address) = std::env::var("TTRPC_ADDRESS") {
            let bundle = flags
                .bundle
                .clone()
                .unwrap_or_else(|| paths.state_dir.clone());
            journal.forward_to(crate::publish::Forwarder::start(
                address,
                flags.namespace.clone(),
                bundle,
            ));
        }
    }
    // The helper runs from a read-only view of this binary (microseconds), set
    // before the first request can arrive: a request that found none would seal a
    // copy and exec it by a descriptor path that this assignment then closed.
    let view = sys::readonly_self_view()
        .map_err(
            |e| tracing::debug!(error = %e, "no read-only view of the shim binary; sealing a copy"),
        )
        .ok();
    let sealed_later = view.is_none();
    let (tx, rx) = mpsc::channel();
    let bundle = flags
        .bundle
        .clone()
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
    let service = Arc::new(Service {
        id,
        paths,
        reaper: Reaper::start(),
        journal: Arc::new(Mutex::new(journal)),
        init: Mutex::new(None),
        execs: Mutex::new(HashMap::new()),
        bundle: Mutex::new(bundle),
        helper_exe: Mutex::new(view),
        shutdown: Mutex::new(tx),
        rootfs: Mutex::new(None),
        checkpoint: Mutex::new(None),
        checkpointing: std::sync::atomic::AtomicBool::new(false),
        exit_command: Mutex::new(None),
        init_deleted: Mutex::new(None),
        state_lock: Mutex::new(()),
        busy: Arc::new(Busy::default()),
    });
    let mut server = ttrpc::Server::new()
        .set_thread_count_default(2)
        .set_thread_count_min(1)
        .set_thread_count_max(64)
        .add_listener(listener.into_raw_fd())
        .context("listen")?
        .register_service(create_task(service.clone()));
    server.start().context("start ttrpc server")?;
    if sealed_later {
        // Sealed while the client is still preparing its first request; whoever
        // comes first makes the copy, under the lock, and it is never replaced.
        let s = service.clone();
        std::thread::spawn(move || drop(s.helper_path()));
    }
    let _ = rx.recv();
    service.busy.wait_idle(Duration::from_secs(2));
    if let Ok(sock) = crate::start::socket_path(flags) {
        let _ = std::fs::remove_file(sock);
    }
    // The delete event is queued by now; exiting would drop it with the queue.
    let forwarder = service.journal.lock().unwrap().stop_forwarding();
    if let Some(f) = forwarder {
        f.close(Duration::from_secs(5));
    }
    // Nothing of the container is left to hold. The reply to Shutdown may be cut
    // off by the exit: berth's Client waits for this process to exit instead, and
    // containerd takes a closed connection as the answer (as with the Go shims).
    std::process::exit(0)
}

fn paths_for(flags: &Flags) -> Result<Paths> {
    if let Some(state) = std::env::var_os(ENV_STATE_DIR) {
        let state_dir = PathBuf::from(state);
        let runtime_root = std::env::var_os(ENV_RUNTIME_ROOT)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                state_dir
                    .parent()
                    .unwrap_or(Path::new("/run/berth"))
                    .join("runtime")
            });
        return Ok(Paths {
            state_dir,
            data_dir: std::env::var_os(ENV_DATA_DIR).map(PathBuf::from),
            runtime_root,
            log_max: std::env::var(ENV_LOG_MAX)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(io::DEFAULT_LOG_MAX),
        });
    }
    let bundle = match &flags.bundle {
        Some(b) => b.clone(),
        None => std::env::current_dir().context("bundle (working directory)")?,
    };
    Ok(Paths {
        state_dir: bundle,
        data_dir: None,
        runtime_root: PathBuf::from("/run/berth-containerd").join(&flags.namespace),
        log_max: io::DEFAULT_LOG_MAX,
    })
}

impl Service {
    fn emit(&self, kind: EventKind, d: Detail<'_>) {
        emit(&self.journal, kind, d);
    }

    /// libcontainer's record of the container, read under `state_lock`.
    fn container(&self, step: &str) -> TResult<Container> {
        let _state = self.state_lock.lock().unwrap();
        self.container_locked(step)
    }

    /// As `container`, for a caller that holds `state_lock` (to save what it read).
    fn container_locked(&self, step: &str) -> TResult<Container> {
        Container::load(self.paths.runtime_root.join(self.id.as_str())).map_err(|e| {
            fail(
                WireErrorKind::NotFound,
                step,
                format!("load container state: {e}"),
            )
        })
    }

    fn init(&self) -> TResult<Arc<Proc>> {
        self.init.lock().unwrap().clone().ok_or_else(|| {
            fail(
                WireErrorKind::NotFound,
                "find container",
                "container not created",
            )
        })
    }

    fn process(&self, exec_id: &str) -> TResult<Arc<Proc>> {
        if exec_id.is_empty() || exec_id == INIT_PROCESS_ID {
            return self.init();
        }
        self.execs
            .lock()
            .unwrap()
            .get(exec_id)
            .cloned()
            .ok_or_else(|| {
                fail(
                    WireErrorKind::NotFound,
                    "find process",
                    format!("process {exec_id} does not exist"),
                )
            })
    }

    /// The path the helper is exec'd from: a read-only view (or a sealed copy)
    /// of this binary, never a writable handle on it.
    fn helper_path(&self) -> TResult<(String, i32)> {
        let mut exe = self.helper_exe.lock().unwrap();
        if exe.is_none() {
            let f = sys::sealed_self_copy()
                .map_err(|e| fail(WireErrorKind::Internal, "seal helper binary", e))?;
            *exe = Some(f.into());
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(exe.as_ref().unwrap());
        Ok((format!("/proc/self/fd/{fd}"), fd))
    }

    /// Runs the helper with the process's stdio and returns the container pid and
    /// the report pipe (still open in the container process until it execs).
    fn run_helper(&self, args: &[&str], stdio: [Stdio; 3]) -> TResult<(i32, BufReader<File>)> {
        let (report_r, report_w) =
            io::pipe().map_err(|e| fail(WireErrorKind::Internal, "create report pipe", e))?;
        let (exe, _fd) = self.helper_path()?;
        let mut cmd = Command::new(&exe);
        cmd.arg0("containerd-shim-berth-v1")
            .arg(helper::ARG)
            .args(args);
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
        let mut report = BufReader::new(File::from(report_r));
        let mut exec_error: Option<(i32, String)> = None;
        let outcome = loop {
            let mut line = String::new();
            match report.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    break Err(fail(
                        WireErrorKind::Internal,
                        "create container",
                        "helper exited without an answer",
                    ))
                }
                Ok(_) => {}
            }
            let line = line.trim_end();
            if let Some(rest) = line.strip_prefix("ok ") {
                break rest.parse::<i32>().map_err(|_| {
                    fail(
                        WireErrorKind::Internal,
                        "create container",
                        format!("bad helper answer {line:?}"),
                    )
                });
            } else if let Some(rest) = line.strip_prefix("exec-error ") {
                exec_error = parse_exec_error(rest);
            } else if let Some(rest) = line.strip_prefix("error ") {
                break Err(match exec_error.take() {
                    Some(ee) => exec_failure(ee),
                    None => parse_helper_error(rest),
                });
            }
        };
        let code = self.reaper.wait(helper_pid);
        let pid = outcome?;
        if code != 0 {
            return Err(fail(
                WireErrorKind::Internal,
                "create container",
                format!("helper exited with {code}"),
            ));
        }
        Ok((pid, report))
    }

    /// Removes the container (its cgroup, libcontainer's state), holding
    /// `state_lock`. A state file that still cannot be loaded (written by
    /// another process) is tried again, and what cannot be loaded is removed
    /// from the spec's cgroup path all the same.
    fn delete_container(&self) -> TResult<()> {
        let dir = self.paths.runtime_root.join(self.id.as_str());
        let mut loaded = Container::load(dir.clone());
        for _ in 0..5 {
            if loaded.is_ok() || !dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            loaded = Container::load(dir.clone());
        }
        match loaded {
            Ok(mut c) => c
                .delete(true)
                .map_err(|e| fail(WireErrorKind::Internal, "delete container", e)),
            Err(e) if dir.exists() => {
                tracing::warn!(error = %e, "libcontainer state unreadable; removing the cgroup by the spec");
                let bundle = self.bundle.lock().unwrap().clone();
                if let Ok(spec) = oci_spec::runtime::Spec::load(bundle.join("config.json")) {
                    checkpoint::kill_and_remove_cgroup(&spec, self.id.as_str());
                }
                let _ = std::fs::remove_dir_all(&dir);
                Ok(())
            }
            Err(_) => Ok(()),
        }
    }

    /// Starts the monitor of `proc`: on exit, drains its output, records the exit
    /// (after the start event, never before it) and wakes waiters.
    fn monitor(&self, proc: &Arc<Proc>) {
        let oom = (proc.id == INIT_PROCESS_ID)
            .then(|| self.oom_watch(proc.pid()))
            .flatten();
        let detached = proc.stdin.is_empty() && proc.stdout.is_empty() && proc.stderr.is_empty();
        let exit_command = (proc.id == INIT_PROCESS_ID)
            .then(|| self.exit_command.lock().unwrap().clone())
            .flatten();
        let proc = proc.clone();
        let reaper = self.reaper.clone();
        let journal = self.journal.clone();
        let data_dir = self.paths.data_dir.clone();
        std::thread::Builder::new()
            .name("monitor".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let code = reaper.wait(proc.pid());
                proc.stdin_closer.lock().unwrap().take();
                proc.io.wait(Duration::from_secs(2));
                // An attached caller reads its FIFOs to their end and removes
                // the container itself; one that was gone by then (killed)
                // leaves that to the exit command, as a detached one does. (If
                // the output has not ended, a live caller still reads now.)
                let caller_gone = detached
                    || !(proc.io.read_to_the_end()
                        || io::fifo_has_reader(&proc.stdout)
                        || io::fifo_has_reader(&proc.stderr));
                let exit_command = exit_command.filter(|_| caller_gone);
                let mut st = proc.state.lock().unwrap();
                while st.phase == Phase::Starting {
                    st = proc.cond.wait(st).unwrap();
                }
                let exit = ExitStatus {
                    code: st.exit.as_ref().map(|e| e.code).unwrap_or(code),
                    exited_at: Utc::now(),
                    // Checked before the exit is recorded: the oom event comes first.
                    oom_killed: oom.as_ref().is_some_and(|w| w.check()),
                    error: None,
                };
                let is_init = proc.id == INIT_PROCESS_ID;
                if is_init {
                    if let Some(dir) = &data_dir {
                        let _ = std::fs::write(
                            dir.join("exit.json"),
                            serde_json::to_vec(&exit).unwrap_or_default(),
                        );
                    }
                }
                emit(
                    &journal,
                    EventKind::Exit,
                    Detail {
                        process_id: Some(&proc.id),
                        pid: Some(proc.pid()),
                        exit_code: Some(exit.code),
                        oom_killed: Some(exit.oom_killed),
                        exited_at: Some(exit.exited_at),
                    },
                );
                st.exit = Some(exit);
                st.phase = Phase::Exited;
                proc.console.lock().unwrap().take();
                proc.cond.notify_all();
                drop(st);
                if let Some(argv) = exit_command {
                    if let Err(e) = sys::spawn_detached(&argv) {
                        tracing::warn!(error = %e, command = ?argv, "exit command did not start");
                    } else {
                        reaper.spawned();
                    }
                }
            })
            .expect("spawn monitor thread");
    }

    /// Makes `proc`'s stdio: pipes (or a console socket for a terminal) and their
    /// copiers. Returns the helper's stdio and, for a terminal, the console socket
    /// whose master [`Self::attach_console`] wires up once the process exists.
    fn setup_stdio(&self, proc: &Proc) -> TResult<([Stdio; 3], Option<ConsoleSocket>)> {
        let io_err =
            |step: &'static str| move |e: std::io::Error| fail(WireErrorKind::Internal, step, e);
        if proc.terminal {
            let path = self
                .paths
                .state_dir
                .join(format!("{}-console.sock", proc.id));
            let console = ConsoleSocket::bind(&path).map_err(io_err("create console socket"))?;
            return Ok(([Stdio::null(), Stdio::null(), Stdio::null()], Some(console)));
        }
        let log = self.log(&proc.id)?;
        let child_in = if proc.stdin.is_empty() && proc.hold_stdin.load(Ordering::SeqCst) {
            let (r, w) = io::pipe().map_err(io_err("create stdin pipe"))?;
            *proc.stdin_closer.lock().unwrap() = Some(w);
            Stdio::from(r)
        } else if proc.stdin.is_empty() {
            Stdio::null()
        } else {
            let fifo =
                io::open_fifo_reader(Path::new(&proc.stdin)).map_err(io_err("open stdin fifo"))?;
            let (r, w) = io::pipe().map_err(io_err("create stdin pipe"))?;
            let (closer_r, closer_w) = io::pipe().map_err(io_err("create stdin pipe"))?;
            io::copy_in(fifo, File::from(w), closer_r);
            *proc.stdin_closer.lock().unwrap() = Some(closer_w);
            Stdio::from(r)
        };
        if let Some((out, err)) = self.log_uri_stdio(&proc.stdout)? {
            return Ok(([child_in, out, err], None));
        }
        let mut outs = Vec::with_capacity(2);
        for (path, stream) in [(&proc.stdout, "stdout"), (&proc.stderr, "stderr")] {
            // Output nobody takes still goes through a pipe we drain: libcontainer
            // reopens a /dev/null stdout or stderr inside the container read-only,
            // and every write of the process would fail.
            let fifo = (!path.is_empty()).then(|| PathBuf::from(path));
            let (r, w) = io::pipe().map_err(io_err("create output pipe"))?;
            io::copy_out(&proc.io, File::from(r), fifo, log.clone(), stream)
                .map_err(io_err("open output fifo"))?;
            outs.push(Stdio::from(w));
        }
        let err = outs.pop().unwrap();
        let out = outs.pop().unwrap();
        Ok(([child_in, out, err], None))
    }

    /// containerd's `--log-uri` in place of FIFOs: `file:///path` (both streams
    /// appended to the file) or `binary:///path?flag=value` (a logging binary that
    /// reads stdout and stderr on its descriptors 3 and 4 and closes 5 when ready,
    /// with CONTAINER_ID and CONTAINER_NAMESPACE set). `None` for a plain path.
    fn log_uri_stdio(&self, uri: &str) -> TResult<Option<(Stdio, Stdio)>> {
        const STEP: &str = "open log uri";
        let err = |e: std::io::Error| fail(WireErrorKind::Internal, STEP, format!("{uri}: {e}"));
        if let Some(path) = uri.strip_prefix("file://") {
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(path)
                .map_err(err)?;
            let f2 = f.try_clone().map_err(err)?;
            return Ok(Some((Stdio::from(f), Stdio::from(f2))));
        }
        let Some(rest) = uri.strip_prefix("binary://") else {
            return Ok(None);
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut args = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            args.push(k.to_owned());
            if !v.is_empty() {
                args.push(v.to_owned());
            }
        }
        let (out_r, out_w) = io::pipe().map_err(err)?;
        let (err_r, err_w) = io::pipe().map_err(err)?;
        let (ready_r, ready_w) = io::pipe().map_err(err)?;
        let namespace = self
            .paths
            .runtime_root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut cmd = Command::new(path);
        cmd.args(&args)
            .env("CONTAINER_ID", self.id.as_str())
            .env("CONTAINER_NAMESPACE", namespace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        use std::os::fd::AsRawFd;
        sys::pass_fds_from_3(
            &mut cmd,
            [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()],
        );
        let child = cmd.spawn().map_err(err)?;
        self.reaper.spawned();
        drop(child);
        drop((out_r, err_r, ready_w));
        // Ready when it closes its end (or exits).
        let mut sink = Vec::new();
        let _ = File::from(ready_r).read_to_end(&mut sink);
        Ok(Some((Stdio::from(out_w), Stdio::from(err_w))))
    }

    fn log(&self, proc_id: &str) -> TResult<Option<Arc<Mutex<Log>>>> {
        match &self.paths.data_dir {
            Some(dir) => Log::open(
                &dir.join("logs").join(format!("{proc_id}.log")),
                self.paths.log_max,
            )
            .map(Some)
            .map_err(|e| fail(WireErrorKind::Internal, "open log", e)),
            None => Ok(None),
        }
    }

    /// Copies between a terminal's master and the caller's FIFOs (and the log).
    fn attach_console(&self, proc: &Proc, console: ConsoleSocket) -> TResult<()> {
        let io_err =
            |step: &'static str| move |e: std::io::Error| fail(WireErrorKind::Internal, step, e);
        let master = console.master().map_err(io_err("receive terminal"))?;
        let log = self.log(&proc.id)?;
        let fifo = (!proc.stdout.is_empty()).then(|| PathBuf::from(&proc.stdout));
        io::copy_out(
            &proc.io,
            master.try_clone().map_err(io_err("dup terminal"))?,
            fifo,
            log,
            "stdout",
        )
        .map_err(io_err("open output fifo"))?;
        if !proc.stdin.is_empty() {
            let fifo =
                io::open_fifo_reader(Path::new(&proc.stdin)).map_err(io_err("open stdin fifo"))?;
            let (closer_r, closer_w) = io::pipe().map_err(io_err("create stdin pipe"))?;
            io::copy_in(
                fifo,
                master.try_clone().map_err(io_err("dup terminal"))?,
                closer_r,
            );
            *proc.stdin_closer.lock().unwrap() = Some(closer_w);
        }
        *proc.console.lock().unwrap() = Some(master);
        Ok(())
    }

    /// Runs the helper for `proc` with its stdio; on success `proc` has its pid and
    /// its copiers run.
    fn spawn_process(&self, proc: &Arc<Proc>, helper_args: &[&str]) -> TResult<()> {
        let (stdio, console) = self.setup_stdio(proc)?;
        let mut args: Vec<&str> = helper_args.to_vec();
        let console_path = console
            .as_ref()
            .map(|c| c.path().to_string_lossy().into_owned());
        if let Some(p) = &console_path {
            args.push(p);
        }
        match self.run_helper(&args, stdio) {
            Ok((pid, report)) => {
                proc.pid.store(pid, Ordering::SeqCst);
                *proc.report.lock().unwrap() = Some(report);
                if let Some(console) = console {
                    self.attach_console(proc, console)?;
                }
                self.monitor(proc);
                Ok(())
            }
            Err(e) => {
                if let Some(c) = console {
                    c.cancel();
                }
                proc.stdin_closer.lock().unwrap().take();
                Err(e)
            }
        }
    }
}

fn emit(journal: &Mutex<Journal>, kind: EventKind, d: Detail<'_>) {
    if let Err(e) = journal.lock().unwrap().append(kind, d) {
        tracing::error!(error = %e, "append to event journal");
    }
}

fn parse_exec_error(rest: &str) -> Option<(i32, String)> {
    let (code, msg) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((code.parse().ok()?, msg.to_owned()))
}

fn exec_failure((code, msg): (i32, String)) -> ttrpc::Error {
    let kind = if code == 127 {
        WireErrorKind::CommandNotFound
    } else {
        WireErrorKind::CommandNotExecutable
    };
    fail(kind, "exec command", msg)
}

fn parse_helper_error(rest: &str) -> ttrpc::Error {
    let (kind, rest) = rest.split_once(' ').unwrap_or(("internal", rest));
    let (step, msg) = rest.split_once('\t').unwrap_or((rest, ""));
    let kind = serde_json::from_str(&format!("\"{kind}\"")).unwrap_or(WireErrorKind::Internal);
    fail(kind, step, msg)
}

/// Reads the report pipe until the command was exec'd (EOF) or failed to be.
fn await_exec(report: &mut BufReader<File>) -> Option<(i32, String)> {
    let mut buf = String::new();
    let _ = report.read_to_string(&mut buf);
    buf.lines()
        .find_map(|l| l.strip_prefix("exec-error "))
        .and_then(parse_exec_error)
}

impl Task for Service {
    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TResult<api::CreateTaskResponse> {
        let _span = tracing::info_span!("create", container_id = %self.id).entered();
        if self.init.lock().unwrap().is_some() {
            return Err(fail(
                WireErrorKind::AlreadyExists,
                "create",
                "container already created",
            ));
        }
        *self.bundle.lock().unwrap() = PathBuf::from(&req.bundle);
        // Under containerd the shim mounts the snapshot itself.
        let rootfs = (!req.rootfs.is_empty()).then(|| Path::new(&req.bundle).join("rootfs"));
        if let Some(target) = &rootfs {
            mounts::mount_rootfs(&req.rootfs, target)
                .map_err(|e| fail(WireErrorKind::Internal, "mount rootfs", e))?;
            *self.rootfs.lock().unwrap() = Some(target.clone());
        }
        let proc = Arc::new(Proc::new(
            INIT_PROCESS_ID,
            req.stdin,
            req.stdout,
            req.stderr,
            req.terminal,
            None,
        ));
        let root = self.paths.runtime_root.to_string_lossy().into_owned();
        let prepared = fixups::prepare_bundle(Path::new(&req.bundle))
            .map_err(|e| fail(WireErrorKind::InvalidArgument, "read bundle", e));
        let spawned = prepared.and_then(|spec| {
            let open_stdin = spec
                .pointer("/annotations")
                .and_then(|a| a.get(berth_types::OPEN_STDIN_ANNOTATION))
                .and_then(|v| v.as_str())
                == Some("true");
            proc.hold_stdin.store(open_stdin, Ordering::SeqCst);
            if self.paths.data_dir.is_some() {
                *self.exit_command.lock().unwrap() = spec
                    .pointer("/annotations")
                    .and_then(|a| a.get(berth_types::EXIT_COMMAND_ANNOTATION))
                    .and_then(|v| v.as_str())
                    .and_then(|v| serde_json::from_str::<Vec<String>>(v).ok())
                    .filter(|argv| !argv.is_empty());
            }
            if req.checkpoint.is_empty() {
                return self
                    .spawn_process(&proc, &["create", self.id.as_str(), &req.bundle, &root]);
            }
            // From a checkpoint: nothing runs until Start restores it.
            let images = self.accept_checkpoint(&req.checkpoint, req.terminal)?;
            *self.checkpoint.lock().unwrap() = Some(images);
            Ok(())
        });
        if let Err(e) = spawned {
            if let Some(target) = self.rootfs.lock().unwrap().take() {
                mounts::unmount_all(&target);
            }
            return Err(e);
        }
        let pid = proc.pid();
        *self.init.lock().unwrap() = Some(proc);
        self.emit(
            EventKind::Create,
            Detail {
                process_id: Some(INIT_PROCESS_ID),
                // A restore has no process until Start.
                pid: (pid > 0).then_some(pid),
                ..Default::default()
            },
        );
        let mut resp = api::CreateTaskResponse::new();
        resp.pid = pid as u32;
        Ok(resp)
    }

    fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> TResult<api::Empty> {
        let _busy = self.busy.enter();
        let _span = tracing::info_span!("exec", container_id = %self.id, process_id = %req.exec_id)
            .entered();
        if berth_types::ProcessId::new(&req.exec_id).is_err() || req.exec_id == INIT_PROCESS_ID {
            return Err(fail(
                WireErrorKind::InvalidArgument,
                "exec",
                format!("invalid process id {:?}", req.exec_id),
            ));
        }
        let init = self.init()?;
        if init.phase() != Phase::Running {
            return Err(fail(
                WireErrorKind::FailedPrecondition,
                "exec",
                "the container is not running",
            ));
        }
        if self.frozen() {
            return Err(fail(
                WireErrorKind::FailedPrecondition,
                "exec",
                "the container is paused: resume it first",
            ));
        }
        let spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        let process: oci_spec::runtime::Process = serde_json::from_slice(&spec)
            .map_err(|e| fail(WireErrorKind::InvalidArgument, "read process spec", e))?;
        // The working directory must exist in the container (it is not made for
        // an exec); look through init's root, which is the container's view.
        let cwd = process.cwd();
        if !cwd.as_os_str().is_empty() {
            let seen = PathBuf::from(format!("/proc/{}/root", init.pid()))
                .join(cwd.strip_prefix("/").unwrap_or(cwd));
            if !seen.is_dir() {
                return Err(fail(
                    WireErrorKind::InvalidArgument,
                    "exec",
                    format!(
                        "working directory {}: no such file or directory in the container",
                        cwd.display()
                    ),
                ));
            }
        }
        let mut execs = self.execs.lock().unwrap();
        if execs.contains_key(&req.exec_id) {
            return Err(fail(
                WireErrorKind::AlreadyExists,
                "exec",
                format!("process {} already exists", req.exec_id),
            ));
        }
        let spec_path = self
            .paths
            .state_dir
            .join(format!("{}-process.json", req.exec_id));
        std::fs::write(&spec_path, serde_json::to_vec(&process).unwrap_or_default())
            .map_err(|e| fail(WireErrorKind::Internal, "write process spec", e))?;
        let terminal = process.terminal().unwrap_or(false) || req.terminal;
        let proc = Arc::new(Proc::new(
            &req.exec_id,
            req.stdin,
            req.stdout,
            req.stderr,
            terminal,
            Some(spec_path),
        ));
        execs.insert(req.exec_id.clone(), proc);
        drop(execs);
        self.emit(
            EventKind::ExecAdded,
            Detail {
                process_id: Some(&req.exec_id),
                ..Default::default()
            },
        );
        Ok(api::Empty::new())
    }

    fn start(&self, _ctx: &TtrpcContext, req: api::StartRequest) -> TResult<api::StartResponse> {
        let _busy = self.busy.enter();
        let proc = self.process(&req.exec_id)?;
        let is_init = proc.id == INIT_PROCESS_ID;
        {
            let mut st = proc.state.lock().unwrap();
            if st.phase != Phase::Created {
                return Err(fail(
                    WireErrorKind::FailedPrecondition,
                    "start",
                    format!("process {} is not in created state", proc.id),
                ));
            }
            st.phase = Phase::Starting;
        }
        let checkpoint = is_init
            .then(|| self.checkpoint.lock().unwrap().clone())
            .flatten();
        let result = if let Some(images) = checkpoint {
            self.restore_init(&proc, &images)
        } else if is_init {
            (|| {
                {
                    let _state = self.state_lock.lock().unwrap();
                    let mut container = self.container_locked("start")?;
                    container
                        .start()
                        .map_err(|e| fail(WireErrorKind::Internal, "start container", e))?;
                }
                let mut report = proc.report.lock().unwrap().take();
                match report.as_mut().and_then(await_exec) {
                    Some(ee) => Err(exec_failure(ee)),
                    None => Ok(()),
                }
            })()
        } else {
            let root = self.paths.runtime_root.to_string_lossy().into_owned();
            let spec = proc
                .spec_path
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            // A process of a container that stopped meanwhile must not start.
            match self.init().map(|i| i.phase()) {
                Ok(Phase::Running) => self
                    .spawn_process(&proc, &["exec", self.id.as_str(), &root, &spec])
                    .map(|()| {
                        proc.report.lock().unwrap().take();
                    }),
                _ => Err(fail(
                    WireErrorKind::FailedPrecondition,
                    "exec",
                    "the container is not running",
                )),
            }
        };
        let mut st = proc.state.lock().unwrap();
        match result {
            Ok(()) => {
                let kind = if is_init {
                    EventKind::Start
                } else {
                    EventKind::ExecStarted
                };
                self.emit(
                    kind,
                    Detail {
                        process_id: Some(&proc.id),
                        pid: Some(proc.pid()),
                        ..Default::default()
                    },
                );
                st.phase = Phase::Running;
                proc.cond.notify_all();
                drop(st);
                if is_init {
                    // From here the shim mostly waits.
                    crate::trim::start();
                }
                let mut resp = api::StartResponse::new();
                resp.pid = proc.pid() as u32;
                Ok(resp)
            }
            Err(e) => {
                st.phase = Phase::StartFailed;
                proc.cond.notify_all();
                if !is_init {
                    drop(st);
                    // A failed exec leaves nothing: its process is gone or never was.
                    if let Some(p) = &proc.spec_path {
                        let _ = std::fs::remove_file(p);
                    }
                    self.execs.lock().unwrap().remove(&proc.id);
                }
                Err(e)
            }
        }
    }

    fn checkpoint(
        &self,
        _ctx: &TtrpcContext,
        req: api::CheckpointTaskRequest,
    ) -> TResult<api::Empty> {
        let _busy = self.busy.enter();
        let _span = tracing::info_span!("checkpoint", container_id = %self.id).entered();
        use std::sync::atomic::Ordering::SeqCst;
        if self.checkpointing.swap(true, SeqCst) {
            return Err(fail(
                WireErrorKind::FailedPrecondition,
                "checkpoint",
                "a checkpoint is already being taken",
            ));
        }
        let done = self.do_checkpoint(req);
        self.checkpointing.store(false, SeqCst);
        done
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, req: api::ResizePtyRequest) -> TResult<api::Empty> {
        let proc = self.process(&req.exec_id)?;
        if !proc.terminal {
            return Err(fail(
                WireErrorKind::FailedPrecondition,
                "resize",
                format!("process {} has no terminal", proc.id),
            ));
        }
        let console = proc.console.lock().unwrap();
        match console.as_ref() {
            Some(master) => sys::set_winsize(master, req.height as u16, req.width as u16)
                .map_err(|e| fail(WireErrorKind::Internal, "resize", e))?,
            None if proc.exit().is_some() => {}
            None => {
                return Err(fail(
                    WireErrorKind::FailedPrecondition,
                    "resize",
                    format!("process {} has not started", proc.id),
                ))
            }
        }
        Ok(api::Empty::new())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: api::CloseIORequest) -> TResult<api::Empty> {
        let proc = self.process(&req.exec_id)?;
        if req.stdin {
            proc.stdin_closer.lock().unwrap().take();
        }
        Ok(api::Empty::new())
    }

    fn state(&self, _ctx: &TtrpcContext, req: api::StateRequest) -> TResult<api::StateResponse> {
        let proc = self.process(&req.exec_id)?;
        let mut resp = api::StateResponse::new();
        resp.id = self.id.to_string();
        resp.exec_id = req.exec_id;
        resp.bundle = self.bundle.lock().unwrap().to_string_lossy().into_owned();
        resp.pid = proc.pid() as u32;
        resp.stdin = proc.stdin.clone();
        resp.stdout = proc.stdout.clone();
        resp.stderr = proc.stderr.clone();
        resp.terminal = proc.terminal;
        resp.status = match proc.phase() {
            Phase::Created | Phase::Starting => Status::CREATED,
            Phase::Running if proc.id == INIT_PROCESS_ID && self.frozen() => Status::PAUSED,
            Phase::Running => Status::RUNNING,
            Phase::StartFailed | Phase::Exited => Status::STOPPED,
        }
        .into();
        if let Some(exit) = proc.exit() {
            resp.exit_status = exit.code as u32;
            resp.exited_at = timestamp(exit.exited_at);
        }
        Ok(resp)
    }

    fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> TResult<api::WaitResponse> {
        let proc = self.process(&req.exec_id)?;
        let exit = proc.wait_exit();
        let mut resp = api::WaitResponse::new();
        resp.exit_status = exit.code as u32;
        resp.exited_at = timestamp(exit.exited_at);
        Ok(resp)
    }

    fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> TResult<api::Empty> {
        let _busy = self.busy.enter();
        let proc = self.process(&req.exec_id)?;
        if proc.exit().is_some() {
            return Err(fail(
                WireErrorKind::NotFound,
                "kill",
                format!("process {} already finished", proc.id),
            ));
        }
        let raw = req.signal as i32;
        let Ok(sig) = nix::sys::signal::Signal::try_from(raw) else {
            // Real-time signals (SIGRTMIN+3 is systemd's stop signal): nix and
            // libcontainer name none of them, so they go out as numbers.
            if !(libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&raw) {
                return Err(fail(
                    WireErrorKind::InvalidArgument,
                    "kill",
                    format!("invalid signal {}", req.signal),
                ));
            }
            let pids = if proc.id == INIT_PROCESS_ID && req.all {
                self.container_pids("kill")?
            } else {
                vec![proc.pid()]
            };
            for pid in pids.into_iter().filter(|p| *p > 0) {
                sys::kill_raw(pid, raw).map_err(|e| fail(WireErrorKind::Internal, "kill", e))?;
            }
            return Ok(api::Empty::new());
        };
        if proc.id == INIT_PROCESS_ID {
            let _state = self.state_lock.lock().unwrap();
            let mut container = self.container_locked("kill")?;
            container
                .kill(sig, req.all)
                .map_err(|e| fail(WireErrorKind::Internal, "kill", e))?;
        } else if proc.pid() > 0 {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(proc.pid()), sig)
                .map_err(|e| fail(WireErrorKind::Internal, "kill", e))?;
        } else {
            return Err(fail(
                WireErrorKind::FailedPrecondition,
                "kill",
                format!("process {} has not started", proc.id),
            ));
        }
        // A frozen process dies of SIGKILL only once thawed (as runc does it).
        if sig == nix::sys::signal::Signal::SIGKILL && self.frozen() {
            let _ = self.freeze("kill", libcgroups::common::FreezerState::Thawed);
        }
        Ok(api::Empty::new())
    }

    fn delete(&self, _ctx: &TtrpcContext, req: api::DeleteRequest) -> TResult<api::DeleteResponse> {
        let _busy = self.busy.enter();
        let proc = self.process(&req.exec_id)?;
        let is_init = proc.id == INIT_PROCESS_ID;
        match proc.phase() {
            Phase::Running | Phase::Starting => {
                return Err(fail(
                    WireErrorKind::FailedPrecondition,
                    "delete",
                    format!("process {} is running", proc.id),
                ));
            }
            Phase::Created | Phase::StartFailed if proc.pid() > 0 => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(proc.pid()),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Phase::Created | Phase::StartFailed => {
                // A process that never ran: nothing to wait for.
                self.execs.lock().unwrap().remove(&proc.id);
                if let Some(p) = &proc.spec_path {
                    let _ = std::fs::remove_file(p);
                }
                let mut resp = api::DeleteResponse::new();
                resp.exit_status = berth_types::UNKNOWN_EXIT_CODE as u32;
                return Ok(resp);
            }
            Phase::Exited => {}
        }
        let exit = proc.wait_exit();
        let mut deleted = self.init_deleted.lock().unwrap();
        if let Some(resp) = deleted.as_ref().filter(|_| is_init) {
            return Ok(resp.clone());
        }
        if is_init {
            let _state = self.state_lock.lock().unwrap();
            self.delete_container()?;
            if let Some(target) = self.rootfs.lock().unwrap().take() {
                mounts::unmount_all(&target);
            }
            self.emit(
                EventKind::Delete,
                Detail {
                    process_id: Some(INIT_PROCESS_ID),
                    pid: Some(proc.pid()),
                    exit_code: Some(exit.code),
                    exited_at: Some(exit.exited_at),
                    ..Default::default()
                },
            );
        } else {
            self.execs.lock().unwrap().remove(&proc.id);
            if let Some(p) = &proc.spec_path {
                let _ = std::fs::remove_file(p);
            }
        }
        let mut resp = api::DeleteResponse::new();
        resp.pid = proc.pid() as u32;
        resp.exit_status = exit.code as u32;
        resp.exited_at = timestamp(exit.exited_at);
        if is_init {
            *deleted = Some(resp.clone());
        }
        Ok(resp)
    }

    fn pause(&self, _ctx: &TtrpcContext, _req: api::PauseRequest) -> TResult<api::Empty> {
        self.do_pause()
    }

    fn resume(&self, _ctx: &TtrpcContext, _req: api::ResumeRequest) -> TResult<api::Empty> {
        self.do_resume()
    }

    fn stats(&self, _ctx: &TtrpcContext, _req: api::StatsRequest) -> TResult<api::StatsResponse> {
        self.do_stats()
    }

    fn update(&self, _ctx: &TtrpcContext, req: api::UpdateTaskRequest) -> TResult<api::Empty> {
        self.do_update(req)
    }

    fn pids(&self, _ctx: &TtrpcContext, _req: api::PidsRequest) -> TResult<api::PidsResponse> {
        let pids = self.container_pids("pids")?;
        let mut resp = api::PidsResponse::new();
        for pid in pids {
            let mut info = containerd_shim_protos::api::ProcessInfo::new();
            info.pid = pid as u32;
            resp.processes.push(info);
        }
        Ok(resp)
    }

    fn connect(
        &self,
        _ctx: &TtrpcContext,
        _req: api::ConnectRequest,
    ) -> TResult<api::ConnectResponse> {
        // A client (re)connects to a live container: journal it, in order.
        if let Ok(init) = self.init() {
            if init.exit().is_none() && init.pid() > 0 {
                self.emit(
                    EventKind::Restore,
                    Detail {
                        process_id: Some(INIT_PROCESS_ID),
                        pid: Some(init.pid()),
                        ..Default::default()
                    },
                );
            }
        }
        let mut resp = api::ConnectResponse::new();
        resp.shim_pid = std::process::id();
        resp.task_pid = self
            .init
            .lock()
            .unwrap()
            .as_ref()
            .map(|p| p.pid() as u32)
            .unwrap_or(0);
        resp.version = env!("CARGO_PKG_VERSION").to_owned();
        Ok(resp)
    }

    fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> TResult<api::Empty> {
        let live =
            self.init.lock().unwrap().as_ref().is_some_and(|p| {
                p.exit().is_none() && p.phase() != Phase::StartFailed && p.pid() > 0
            });
        if !live {
            let _ = self.shutdown.lock().unwrap().send(());
        }
        Ok(api::Empty::new())
    }
}
