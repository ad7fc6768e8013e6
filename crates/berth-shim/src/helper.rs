//! The helper mode: a synchronous, single-threaded re-exec of the shim (from a
//! read-only view or a sealed copy of its binary, see `sys::readonly_self_view`)
//! that calls libcontainer, whose clone of the container process is safe only in
//! such a process. It reports over descriptor 3, one line each:
//!
//! - `ok <pid>`: the container process exists and waits to be started;
//! - `error <kind> <step>\t<message>`: nothing was created;
//! - `exec-error <code> <message>` (written by the container process itself, before
//!   the helper's own line, or at start): the command cannot run; code 127 or 126.
//!
//! `restore` answers only with an error line: on success the helper becomes
//! `criu restore` and the pipe closes at that exec.
//!
//! The container process inherits descriptor 3 with FD_CLOEXEC (libcontainer marks
//! every extra descriptor so), so the shim sees EOF exactly when the command was
//! exec'd, and an `exec-error` line when it could not be.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_types::WireErrorKind;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::Spec;

use crate::sys;

/// First argument that selects the helper mode.
pub const ARG: &str = "helper";

/// Descriptor the helper and the container process report on.
const REPORT_FD: i32 = 3;

pub fn main(args: &[String]) -> ExitCode {
    let report = match sys::take_fd3() {
        Ok(fd) => File::from(fd),
        Err(_) => return ExitCode::from(2),
    };
    let line = match args {
        [verb, id, bundle, root, console @ ..] if verb == "create" => create(
            id,
            Path::new(bundle),
            Path::new(root),
            console.first().map(PathBuf::from),
        ),
        [verb, id, root, process, console @ ..] if verb == "exec" => exec(
            id,
            Path::new(root),
            Path::new(process),
            console.first().map(PathBuf::from),
        ),
        // On success this process has become criu: the report pipe closes at exec.
        [verb, id, bundle, images, work, criu] if verb == "restore" => {
            Err(crate::checkpoint::helper_restore(
                id,
                Path::new(bundle),
                Path::new(images),
                Path::new(work),
                Path::new(criu),
            ))
        }
        _ => Err((
            WireErrorKind::InvalidArgument,
            "parse helper arguments",
            format!("{args:?}"),
        )),
    };
    let line = match line {
        Ok(pid) => format!("ok {pid}\n"),
        Err((kind, step, msg)) => {
            let kind = serde_json::to_string(&kind).unwrap_or_default();
            format!(
                "error {} {step}\t{}\n",
                kind.trim_matches('"'),
                msg.replace('\n', " ")
            )
        }
    };
    let mut report = report;
    let _ = report.write_all(line.as_bytes());
    ExitCode::SUCCESS
}

type HelperError = (WireErrorKind, &'static str, String);

fn error_kind(e: &libcontainer::error::LibcontainerError) -> WireErrorKind {
    use libcontainer::error::LibcontainerError as E;
    match e {
        E::InvalidInput(_) | E::InvalidID(_) | E::MissingSpec(_) | E::InvalidSpec(_) => {
            WireErrorKind::InvalidArgument
        }
        E::Exist => WireErrorKind::AlreadyExists,
        E::NoDirectory => WireErrorKind::NotFound,
        _ => WireErrorKind::Internal,
    }
}

fn builder(
    id: &str,
    root: &Path,
    console: Option<PathBuf>,
) -> Result<ContainerBuilder, HelperError> {
    ContainerBuilder::new(id.to_owned(), SyscallType::default())
        .with_root_path(PathBuf::from(root))
        .map_err(|e| {
            (
                WireErrorKind::Internal,
                "prepare runtime root",
                e.to_string(),
            )
        })
        .map(|b| b.with_executor(BerthExecutor).with_console_socket(console))
}

fn create(
    id: &str,
    bundle: &Path,
    root: &Path,
    console: Option<PathBuf>,
) -> Result<i32, HelperError> {
    let container = builder(id, root, console)?
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .as_sibling(true)
        .build()
        .map_err(|e| (error_kind(&e), "create container", format!("{e:#}")))?;
    let pid = container.pid().map(|p| p.as_raw()).ok_or((
        WireErrorKind::Internal,
        "create container",
        "no pid recorded".into(),
    ))?;
    // A network namespace of its own starts with loopback down; libcontainer leaves
    // it so, runc brings it up. The container's processes lack CAP_NET_ADMIN, so it
    // is done from here, in the namespace, before init is started.
    if owns_network_namespace(bundle) {
        sys::loopback_up_in(pid).map_err(|e| {
            (
                WireErrorKind::Internal,
                "bring up loopback",
                format!("in /proc/{pid}/ns/net: {e}"),
            )
        })?;
    }
    Ok(pid)
}

/// Whether the bundle's spec asks for a new network namespace (one with no path).
fn owns_network_namespace(bundle: &Path) -> bool {
    let Ok(spec) = Spec::load(bundle.join("config.json")) else {
        return false;
    };
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::Network && n.path().is_none()
            })
        })
}

fn exec(
    id: &str,
    root: &Path,
    process: &Path,
    console: Option<PathBuf>,
) -> Result<i32, HelperError> {
    let pid = builder(id, root, console)?
        .as_tenant()
        .with_process(Some(process))
        .with_detach(true)
        .as_sibling(true)
        .build()
        .map_err(|e| (error_kind(&e), "exec process", format!("{e:#}")))?;
    Ok(pid.as_raw())
}

/// Runs the container's command; reports a command that cannot run on fd 3.
#[derive(Clone)]
struct BerthExecutor;

/// Runs in the container process: fd 3 is the report pipe inherited from the
/// helper, open until exec. A failed write loses only the detail, not the exit.
fn report_exec_error(code: i32, msg: &str) {
    let line = format!("exec-error {code} {}\n", msg.replace('\n', " "));
    let _ = nix::unistd::write(sys::report_fd(REPORT_FD), line.as_bytes());
}

/// 127 when `cmd` is not found in `path_var`, 126 when found but not executable.
fn check_command(cmd: &str, path_var: &str) -> Result<(), (i32, String)> {
    use std::os::unix::fs::PermissionsExt;
    let candidates: Vec<PathBuf> = if cmd.contains('/') {
        vec![PathBuf::from(cmd)]
    } else {
        path_var
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(cmd))
            .collect()
    };
    let mut not_executable = None;
    for path in candidates {
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(()),
            Ok(_) => not_executable = Some(path),
            Err(_) => {}
        }
    }
    match not_executable {
        Some(p) => Err((
            126,
            format!("{}: permission denied: not an executable file", p.display()),
        )),
        None if cmd.contains('/') => Err((127, format!("{cmd}: no such file or directory"))),
        None => Err((127, format!("{cmd}: executable file not found in $PATH"))),
    }
}

fn args_of(spec: &Spec) -> Option<&Vec<String>> {
    spec.process()
        .as_ref()?
        .args()
        .as_ref()
        .filter(|a| !a.is_empty())
}

impl Executor for BerthExecutor {
    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let Some(args) = args_of(spec) else {
            return Err(ExecutorValidationError::ArgValidationError(
                "process.args is empty".into(),
            ));
        };
        let env = spec
            .process()
            .as_ref()
            .and_then(|p| p.env().clone())
            .unwrap_or_default();
        let path_var = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        check_command(&args[0], path_var).map_err(|(code, msg)| {
            report_exec_error(code, &msg);
            ExecutorValidationError::ArgValidationError(msg)
        })
    }

    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let args = args_of(spec).ok_or(ExecutorError::InvalidArg)?;
        // libcontainer ignores consoleSize; set it on the terminal before the
        // command can read it, so no size is ever lost to a race.
        if let Some(p) = spec
            .process()
            .as_ref()
            .filter(|p| p.terminal() == Some(true))
        {
            if let Some(size) = p.console_size() {
                let _ =
                    sys::set_winsize(&std::io::stdin(), size.height() as u16, size.width() as u16);
            }
        }
        let cargs: Vec<std::ffi::CString> = args
            .iter()
            .map(|a| std::ffi::CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| ExecutorError::InvalidArg)?;
        sys::reset_signals();
        let err = nix::unistd::execvp(&cargs[0], &cargs).unwrap_err();
        let code = if err == nix::errno::Errno::ENOENT {
            127
        } else {
            126
        };
        report_exec_error(code, &format!("{}: {}", args[0], err.desc()));
        Err(ExecutorError::Execution(err.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lookup_distinguishes_missing_and_not_executable() {
        assert!(check_command("sh", "/usr/bin:/bin").is_ok());
        assert_eq!(
            check_command("no-such-cmd-xyz", "/usr/bin").unwrap_err().0,
            127
        );
        let plain = std::env::temp_dir().join(format!("berth-not-exec-{}", std::process::id()));
        std::fs::write(&plain, "x").unwrap();
        let result = check_command(plain.to_str().unwrap(), "");
        std::fs::remove_file(&plain).unwrap();
        assert_eq!(result.unwrap_err().0, 126);
        assert_eq!(check_command("/nope/x", "").unwrap_err().0, 127);
        assert_eq!(check_command("etc", "/").unwrap_err().0, 126);
    }
}
