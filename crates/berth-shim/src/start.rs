//! containerd's runtime v2 binary contract: `start` launches the long-lived shim
//! and prints its address; `delete` cleans up after a shim that is gone.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message;
use libcontainer::container::Container;

use crate::args::{Flags, ENV_RUNTIME_ROOT, ENV_STATE_DIR};
use crate::sys;

pub fn socket_path(flags: &Flags) -> Result<PathBuf> {
    if let Some(state) = std::env::var_os(ENV_STATE_DIR) {
        return Ok(PathBuf::from(state).join("shim.sock"));
    }
    Ok(PathBuf::from(SOCKET_DIR).join(socket_name(&flags.namespace, &flags.id)))
}

/// containerd's socket dir.
const SOCKET_DIR: &str = "/run/containerd/s";

/// The socket's name under containerd: `berth-<namespace>@<id>` (`@` is in
/// neither, so no two pairs share a name), or, when that path would not fit a
/// unix socket address (108 bytes), `berth-<FNV-1a hash of both>`.
fn socket_name(namespace: &str, id: &str) -> String {
    let name = format!("berth-{namespace}@{id}");
    if SOCKET_DIR.len() + 1 + name.len() < 108 {
        return name;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in namespace.bytes().chain([b'@']).chain(id.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("berth-{hash:016x}")
}

pub fn start(flags: &Flags) -> Result<()> {
    let path = socket_path(flags)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if UnixStream::connect(&path).is_ok() {
        // A shim already serves this container: containerd expects its address.
        println!("unix://{}", path.display());
        return Ok(());
    }
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
    let exe = std::env::current_exe().context("find own executable")?;
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    args.retain(|a| a != "start");
    let mut cmd = Command::new(exe);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    sys::pass_fd3(&mut cmd, listener.as_raw_fd(), true);
    let child = cmd.spawn().context("launch shim")?;
    // Where a restarted client (berth's, or containerd reloading its tasks) finds
    // the shim: `<state dir>` for berth, the bundle (our working directory) for
    // containerd.
    let state = match std::env::var_os(ENV_STATE_DIR) {
        Some(state) => PathBuf::from(state),
        None => std::env::current_dir().context("find bundle (working directory)")?,
    };
    std::fs::write(state.join("shim.pid"), child.id().to_string()).context("write shim.pid")?;
    std::fs::write(state.join("address"), format!("unix://{}", path.display()))
        .context("write address")?;
    let mut out = std::io::stdout().lock();
    write!(out, "unix://{}", path.display())?;
    out.flush()?;
    Ok(())
}

/// Cleans up after a lost shim: kills what is left, removes the container's state,
/// and answers as the runc shim does (exit 137, SIGKILL).
pub fn delete(flags: &Flags) -> Result<()> {
    let root = std::env::var_os(ENV_RUNTIME_ROOT)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/berth-containerd").join(&flags.namespace));
    if let Ok(mut c) = Container::load(root.join(&flags.id)) {
        let _ = c.kill(nix::sys::signal::Signal::SIGKILL, true);
        let _ = c.delete(true);
    }
    let bundle = flags
        .bundle
        .clone()
        .or_else(|| std::env::current_dir().ok());
    // A shim killed mid-create leaves what libcontainer cannot load: whatever is
    // in the container's cgroup, the cgroup, and libcontainer's state dir.
    if let Some(spec) = bundle
        .as_ref()
        .and_then(|b| oci_spec::runtime::Spec::load(b.join("config.json")).ok())
    {
        crate::service::kill_and_remove_cgroup(&spec, &flags.id);
    }
    let _ = std::fs::remove_dir_all(root.join(&flags.id));
    // Under containerd the shim mounted the rootfs; a lost shim leaves it mounted.
    if let Some(b) = bundle.filter(|_| std::env::var_os(ENV_STATE_DIR).is_none()) {
        crate::mounts::unmount_all(&b.join("rootfs"));
    }
    let mut resp = DeleteResponse::new();
    resp.exit_status = 137;
    resp.exited_at = crate::service::timestamp(chrono::Utc::now());
    let bytes = resp.write_to_bytes().context("encode delete response")?;
    std::io::stdout().write_all(&bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_are_unique_and_fit() {
        assert_eq!(socket_name("k8s.io", "abc"), "berth-k8s.io@abc");
        assert_ne!(socket_name("brk-x", "c1"), socket_name("brk", "x-c1"));
        let long = "a".repeat(200);
        let name = socket_name("default", &long);
        assert!(SOCKET_DIR.len() + 1 + name.len() < 108, "{name}");
        assert_ne!(name, socket_name("default", &"b".repeat(200)));
    }
}
