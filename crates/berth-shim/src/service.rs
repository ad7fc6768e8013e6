//! The long-lived shim: the containerd shim v2 Task service for one container.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::IntoRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

use crate::args::{Flags, ENV_DATA_DIR, ENV_RUNTIME_ROOT, ENV_STATE_DIR};
use crate::io::{self, IoGroup, Log};
use crate::journal::{Detail, Journal};
use crate::reaper::Reaper;
use crate::{helper, sys};

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

fn timestamp(t: DateTime<Utc>) -> MessageField<Timestamp> {
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
    pid: i32,
    stdin: String,
    stdout: String,
    stderr: String,
    terminal: bool,
    state: Mutex<ProcState>,
    cond: Condvar,
    io: Arc<IoGroup>,
    /// Read end of the report pipe: EOF once the command was exec'd.
    report: Mutex<Option<BufReader<File>>>,
}

impl Proc {
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

/// Where this shim keeps things.
struct Paths {
    /// Runtime state dir (berth: `<root>/<id>`; containerd: the bundle).
    state_dir: PathBuf,
    /// The container's record dir under the data root, when berth started us.
    data_dir: Option<PathBuf>,
    /// libcontainer's state root.
    runtime_root: PathBuf,
}

pub struct Service {
    id: ContainerId,
    paths: Paths,
    reaper: Arc<Reaper>,
    journal: Arc<Mutex<Journal>>,
    init: Mutex<Option<Arc<Proc>>>,
    execs: Mutex<HashMap<String, Arc<Proc>>>,
    bundle: Mutex<PathBuf>,
    sealed_exe: Mutex<Option<File>>,
    shutdown: Mutex<mpsc::Sender<()>>,
}

pub fn serve(flags: &Flags) -> Result<()> {
    sys::ignore_sigpipe();
    sys::set_child_subreaper().context("become child subreaper")?;
    let listener = sys::take_fd3().context("take listening socket (fd 3)")?;
    let id = ContainerId::new(&flags.id).context("container id")?;
    let paths = paths_for(flags)?;
    std::fs::create_dir_all(&paths.runtime_root).context("create runtime root")?;
    let journal = Journal::open(&paths.state_dir.join("events.jsonl"), id.clone())
        .context("open event journal")?;
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
        sealed_exe: Mutex::new(None),
        shutdown: Mutex::new(tx),
    });
    let mut server = ttrpc::Server::new()
        .set_thread_count_default(2)
        .set_thread_count_min(1)
        .set_thread_count_max(64)
        .add_listener(listener.into_raw_fd())
        .context("listen")?
        .register_service(create_task(service.clone()));
    server.start().context("start ttrpc server")?;
    let _ = rx.recv();
    // Let the reply to the request that asked for the shutdown reach the caller.
    std::thread::sleep(Duration::from_millis(20));
    server.shutdown();
    if let Some(sock) = socket_path_in(&service.paths.state_dir) {
        let _ = std::fs::remove_file(sock);
    }
    Ok(())
}

fn socket_path_in(state_dir: &Path) -> Option<PathBuf> {
    let p = state_dir.join("shim.sock");
    p.exists().then_some(p)
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
    })
}

impl Service {
    fn emit(&self, kind: EventKind, d: Detail<'_>) {
        emit(&self.journal, kind, d);
    }

    fn container(&self, step: &str) -> TResult<Container> {
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

    /// The path the helper is exec'd from: a sealed copy of this binary.
    fn helper_path(&self) -> TResult<(String, i32)> {
        let mut sealed = self.sealed_exe.lock().unwrap();
        if sealed.is_none() {
            let f = sys::sealed_self_copy()
                .map_err(|e| fail(WireErrorKind::Internal, "seal helper binary", e))?;
            *sealed = Some(f);
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(sealed.as_ref().unwrap());
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

    /// Starts the monitor of `proc`: on exit, drains its output, records the exit
    /// (after the start event, never before it) and wakes waiters.
    fn monitor(&self, proc: Arc<Proc>) {
        let reaper = self.reaper.clone();
        let journal = self.journal.clone();
        let data_dir = self.paths.data_dir.clone();
        std::thread::Builder::new()
            .name("monitor".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let code = reaper.wait(proc.pid);
                proc.io.wait(Duration::from_secs(2));
                let mut st = proc.state.lock().unwrap();
                while st.phase == Phase::Starting {
                    st = proc.cond.wait(st).unwrap();
                }
                let exit = ExitStatus {
                    code: st.exit.as_ref().map(|e| e.code).unwrap_or(code),
                    exited_at: Utc::now(),
                    oom_killed: false,
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
                        pid: Some(proc.pid),
                        exit_code: Some(exit.code),
                        oom_killed: Some(exit.oom_killed),
                    },
                );
                st.exit = Some(exit);
                st.phase = Phase::Exited;
                proc.cond.notify_all();
            })
            .expect("spawn monitor thread");
    }

    /// Pipes for a process's stdio, its copiers, and the helper's side of them.
    fn setup_stdio(
        &self,
        proc_id: &str,
        stdin: &str,
        stdout: &str,
        stderr: &str,
    ) -> TResult<([Stdio; 3], Arc<IoGroup>)> {
        let io_err =
            |step: &'static str| move |e: std::io::Error| fail(WireErrorKind::Internal, step, e);
        let group = Arc::new(IoGroup::default());
        let log = match &self.paths.data_dir {
            Some(dir) => Some(
                Log::open(&dir.join("logs").join(format!("{proc_id}.log")))
                    .map_err(io_err("open log"))?,
            ),
            None => None,
        };
        let child_in = if stdin.is_empty() {
            Stdio::null()
        } else {
            let fifo = io::open_fifo_reader(Path::new(stdin)).map_err(io_err("open stdin fifo"))?;
            let (r, w) = io::pipe().map_err(io_err("create stdin pipe"))?;
            io::copy_in(fifo, File::from(w));
            Stdio::from(r)
        };
        let mut outs = Vec::with_capacity(2);
        for (path, stream) in [(stdout, "stdout"), (stderr, "stderr")] {
            let fifo = if path.is_empty() {
                None
            } else {
                io::open_fifo_writer(Path::new(path)).map_err(io_err("open output fifo"))?
            };
            if fifo.is_none() && log.is_none() {
                outs.push(Stdio::null());
                continue;
            }
            let (r, w) = io::pipe().map_err(io_err("create output pipe"))?;
            io::copy_out(&group, File::from(r), fifo, log.clone(), stream);
            outs.push(Stdio::from(w));
        }
        let err = outs.pop().unwrap();
        let out = outs.pop().unwrap();
        Ok(([child_in, out, err], group))
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
        if !req.rootfs.is_empty() {
            return Err(fail(
                WireErrorKind::Unimplemented,
                "mount rootfs",
                "rootfs mounts are not supported yet",
            ));
        }
        if req.terminal {
            return Err(fail(
                WireErrorKind::Unimplemented,
                "set up terminal",
                "terminals are not supported yet",
            ));
        }
        let bundle = PathBuf::from(&req.bundle);
        *self.bundle.lock().unwrap() = bundle.clone();
        let (stdio, group) =
            self.setup_stdio(INIT_PROCESS_ID, &req.stdin, &req.stdout, &req.stderr)?;
        let root = self.paths.runtime_root.to_string_lossy().into_owned();
        let (pid, report) =
            self.run_helper(&["create", self.id.as_str(), &req.bundle, &root], stdio)?;
        let proc = Arc::new(Proc {
            id: INIT_PROCESS_ID.to_owned(),
            pid,
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            terminal: req.terminal,
            state: Mutex::new(ProcState {
                phase: Phase::Created,
                exit: None,
            }),
            cond: Condvar::new(),
            io: group,
            report: Mutex::new(Some(report)),
        });
        *self.init.lock().unwrap() = Some(proc.clone());
        self.emit(
            EventKind::Create,
            Detail {
                process_id: Some(INIT_PROCESS_ID),
                pid: Some(pid),
                ..Default::default()
            },
        );
        self.monitor(proc);
        let mut resp = api::CreateTaskResponse::new();
        resp.pid = pid as u32;
        Ok(resp)
    }

    fn start(&self, _ctx: &TtrpcContext, req: api::StartRequest) -> TResult<api::StartResponse> {
        let proc = self.process(&req.exec_id)?;
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
        let result = (|| {
            let mut container = self.container("start")?;
            container
                .start()
                .map_err(|e| fail(WireErrorKind::Internal, "start container", e))?;
            let mut report = proc.report.lock().unwrap().take();
            match report.as_mut().and_then(await_exec) {
                Some(ee) => Err(exec_failure(ee)),
                None => Ok(()),
            }
        })();
        let mut st = proc.state.lock().unwrap();
        match result {
            Ok(()) => {
                self.emit(
                    EventKind::Start,
                    Detail {
                        process_id: Some(&proc.id),
                        pid: Some(proc.pid),
                        ..Default::default()
                    },
                );
                st.phase = Phase::Running;
                proc.cond.notify_all();
                let mut resp = api::StartResponse::new();
                resp.pid = proc.pid as u32;
                Ok(resp)
            }
            Err(e) => {
                st.phase = Phase::StartFailed;
                proc.cond.notify_all();
                Err(e)
            }
        }
    }

    fn state(&self, _ctx: &TtrpcContext, req: api::StateRequest) -> TResult<api::StateResponse> {
        let proc = self.process(&req.exec_id)?;
        let mut resp = api::StateResponse::new();
        resp.id = self.id.to_string();
        resp.exec_id = req.exec_id;
        resp.bundle = self.bundle.lock().unwrap().to_string_lossy().into_owned();
        resp.pid = proc.pid as u32;
        resp.stdin = proc.stdin.clone();
        resp.stdout = proc.stdout.clone();
        resp.stderr = proc.stderr.clone();
        resp.terminal = proc.terminal;
        resp.status = match proc.phase() {
            Phase::Created | Phase::Starting => Status::CREATED,
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
        let proc = self.process(&req.exec_id)?;
        if proc.exit().is_some() {
            return Err(fail(
                WireErrorKind::NotFound,
                "kill",
                format!("process {} already finished", proc.id),
            ));
        }
        let sig = nix::sys::signal::Signal::try_from(req.signal as i32).map_err(|_| {
            fail(
                WireErrorKind::InvalidArgument,
                "kill",
                format!("invalid signal {}", req.signal),
            )
        })?;
        if proc.id == INIT_PROCESS_ID {
            let mut container = self.container("kill")?;
            container
                .kill(sig, req.all)
                .map_err(|e| fail(WireErrorKind::Internal, "kill", e))?;
        } else {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(proc.pid), sig)
                .map_err(|e| fail(WireErrorKind::Internal, "kill", e))?;
        }
        Ok(api::Empty::new())
    }

    fn delete(&self, _ctx: &TtrpcContext, req: api::DeleteRequest) -> TResult<api::DeleteResponse> {
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
            Phase::Created | Phase::StartFailed => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(proc.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Phase::Exited => {}
        }
        let exit = proc.wait_exit();
        if is_init {
            if let Ok(mut c) = Container::load(self.paths.runtime_root.join(self.id.as_str())) {
                c.delete(true)
                    .map_err(|e| fail(WireErrorKind::Internal, "delete container", e))?;
            }
            self.emit(
                EventKind::Delete,
                Detail {
                    process_id: Some(INIT_PROCESS_ID),
                    pid: Some(proc.pid),
                    exit_code: Some(exit.code),
                    ..Default::default()
                },
            );
        } else {
            self.execs.lock().unwrap().remove(&proc.id);
        }
        let mut resp = api::DeleteResponse::new();
        resp.pid = proc.pid as u32;
        resp.exit_status = exit.code as u32;
        resp.exited_at = timestamp(exit.exited_at);
        Ok(resp)
    }

    fn pids(&self, _ctx: &TtrpcContext, _req: api::PidsRequest) -> TResult<api::PidsResponse> {
        let container = self.container("pids")?;
        let config = container
            .spec()
            .map_err(|e| fail(WireErrorKind::Internal, "pids", e))?;
        let manager = libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
            cgroup_path: config.cgroup_path.clone(),
            systemd_cgroup: false,
            container_name: self.id.to_string(),
        })
        .map_err(|e| fail(WireErrorKind::Internal, "pids: open cgroup", e))?;
        let pids = libcgroups::common::CgroupManager::get_all_pids(&manager)
            .map_err(|e| fail(WireErrorKind::Internal, "pids: read cgroup", e))?;
        let mut resp = api::PidsResponse::new();
        for pid in pids {
            let mut info = containerd_shim_protos::api::ProcessInfo::new();
            info.pid = pid.as_raw() as u32;
            resp.processes.push(info);
        }
        Ok(resp)
    }

    fn connect(
        &self,
        _ctx: &TtrpcContext,
        _req: api::ConnectRequest,
    ) -> TResult<api::ConnectResponse> {
        let mut resp = api::ConnectResponse::new();
        resp.shim_pid = std::process::id();
        resp.task_pid = self
            .init
            .lock()
            .unwrap()
            .as_ref()
            .map(|p| p.pid as u32)
            .unwrap_or(0);
        resp.version = env!("CARGO_PKG_VERSION").to_owned();
        Ok(resp)
    }

    fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> TResult<api::Empty> {
        let live = self
            .init
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|p| p.exit().is_none());
        if !live {
            let _ = self.shutdown.lock().unwrap().send(());
        }
        Ok(api::Empty::new())
    }
}
