//! Talking to a container's shim: launching it by the runtime v2 `start` contract
//! and calling its Task service. ttrpc calls block, so they run on tokio's blocking
//! pool; wire errors become [`Error`]s here and nowhere else.

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_types::wire::WIRE_ERROR_TYPE_URL;
use berth_types::{ContainerId, WireError};
use containerd_shim_protos::shim_sync::TaskClient;

use crate::error::{Error, ErrorKind};

/// Env vars the shim reads (see berth-shim's `args`).
const ENV_STATE_DIR: &str = "BERTH_SHIM_STATE_DIR";
const ENV_DATA_DIR: &str = "BERTH_SHIM_DATA_DIR";
const ENV_RUNTIME_ROOT: &str = "BERTH_SHIM_RUNTIME_ROOT";
/// The criu binary the shim runs for checkpoints.
const ENV_CRIU: &str = "BERTH_CRIU";
const ENV_LOG_MAX: &str = "BERTH_SHIM_LOG_MAX";

/// Timeout of calls that should answer at once.
pub const QUICK: Duration = Duration::from_secs(30);

/// Converts a ttrpc failure into the Client's error.
pub fn map_err(op: &'static str, id: &ContainerId, step: &str, e: ttrpc::Error) -> Error {
    if let ttrpc::Error::RpcStatus(status) = &e {
        if let Some(any) = status
            .details
            .iter()
            .find(|a| a.type_url == WIRE_ERROR_TYPE_URL)
        {
            if let Ok(w) = serde_json::from_slice::<WireError>(&any.value) {
                return Error::from_wire(op, id.as_str(), w);
            }
        }
        let kind = match status.code() {
            ttrpc::Code::NOT_FOUND => ErrorKind::NotFound,
            ttrpc::Code::UNIMPLEMENTED => ErrorKind::Unsupported,
            ttrpc::Code::INVALID_ARGUMENT => ErrorKind::InvalidArgument,
            ttrpc::Code::FAILED_PRECONDITION => ErrorKind::FailedPrecondition,
            ttrpc::Code::ALREADY_EXISTS => ErrorKind::AlreadyExists,
            _ => ErrorKind::Internal,
        };
        return Error::new(op, id.as_str(), kind, step, status.message());
    }
    Error::new(op, id.as_str(), ErrorKind::ShimUnavailable, step, e)
}

/// A connection to one shim.
#[derive(Clone)]
pub struct Shim {
    pub task: TaskClient,
}

impl Shim {
    /// Connects to the shim listening at `socket`.
    pub fn connect(socket: &Path) -> std::io::Result<Self> {
        // ttrpc's connect blocks forever on a socket nobody accepts on; check first.
        std::os::unix::net::UnixStream::connect(socket)?;
        let client = ttrpc::Client::connect(&format!("unix://{}", socket.display()))
            .map_err(std::io::Error::other)?;
        Ok(Self {
            task: TaskClient::new(client),
        })
    }

    /// Runs a blocking call on tokio's blocking pool.
    pub async fn call<T, F>(&self, f: F) -> std::result::Result<T, ttrpc::Error>
    where
        T: Send + 'static,
        F: FnOnce(&TaskClient) -> std::result::Result<T, ttrpc::Error> + Send + 'static,
    {
        let task = self.task.clone();
        tokio::task::spawn_blocking(move || f(&task))
            .await
            .unwrap_or_else(|e| Err(ttrpc::Error::Others(format!("call panicked: {e}"))))
    }
}

/// A context whose deadline is `d` from now.
pub fn ctx(d: Option<Duration>) -> ttrpc::context::Context {
    match d {
        Some(d) => ttrpc::context::with_timeout(d.as_nanos() as i64),
        None => ttrpc::context::Context::default(),
    }
}

/// Where to launch the shim from.
#[derive(Debug, Clone)]
pub struct Launch {
    pub binary: PathBuf,
    pub runtime_root: PathBuf,
    pub log_max: Option<u64>,
    pub criu: Option<PathBuf>,
}

impl Launch {
    /// Starts a shim for `id` and returns its socket.
    ///
    /// What the runtime v2 `start` subcommand does, done here: bind
    /// `<state dir>/shim.sock`, hand the listener to the shim as descriptor 3 in a
    /// session of its own, record its pid and address. The shim binary is exec'd
    /// once rather than twice (`start`, then the server), and the first request
    /// waits in the socket's backlog while the shim starts.
    pub async fn start(
        &self,
        id: &ContainerId,
        state_dir: &Path,
        data_dir: &Path,
        bundle: &Path,
    ) -> std::io::Result<PathBuf> {
        use std::os::fd::AsRawFd;
        let socket = state_dir.join("shim.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket)?;
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.args(["-namespace", "berth", "-id", id.as_str(), "-address", ""])
            .current_dir(bundle)
            .env(ENV_STATE_DIR, state_dir)
            .env(ENV_DATA_DIR, data_dir)
            .env(
                ENV_LOG_MAX,
                self.log_max.map(|m| m.to_string()).unwrap_or_default(),
            )
            .env(ENV_RUNTIME_ROOT, &self.runtime_root)
            .envs(self.criu.as_ref().map(|c| (ENV_CRIU, c)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        super::sys::listener_as_fd3(&mut cmd, listener.as_raw_fd());
        let child = cmd.spawn().map_err(|e| {
            std::io::Error::new(e.kind(), format!("{}: {e}", self.binary.display()))
        })?;
        let pid = child.id().unwrap_or_default();
        // The shim outlives this call (and this process); tokio reaps it if it
        // exits while we still run.
        drop(child);
        std::fs::write(state_dir.join("shim.pid"), pid.to_string())?;
        std::fs::write(
            state_dir.join("address"),
            format!("unix://{}", socket.display()),
        )?;
        Ok(socket)
    }

    /// Runs the shim's `delete` contract: kills what is left of a container whose
    /// shim is gone and removes its runtime state.
    pub async fn cleanup(&self, id: &ContainerId, bundle: &Path) -> std::io::Result<()> {
        let dir = if bundle.is_dir() {
            bundle.to_path_buf()
        } else {
            PathBuf::from("/")
        };
        let out = tokio::process::Command::new(&self.binary)
            .args([
                "-namespace",
                "berth",
                "-id",
                id.as_str(),
                "-address",
                "",
                "delete",
            ])
            .current_dir(&dir)
            .env(ENV_STATE_DIR, dir.parent().unwrap_or(&dir))
            .env(ENV_RUNTIME_ROOT, &self.runtime_root)
            .stdin(std::process::Stdio::null())
            .output()
            .await?;
        if out.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ))
        }
    }
}
