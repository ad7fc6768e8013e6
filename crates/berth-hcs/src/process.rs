//! The HCS `ProcessConfig` of a container process (init or exec) from its OCI
//! process.
//!
//! Rules (the reference's, with proper quoting): a terminal means console
//! emulation, a console size of `[height, width]` and no stderr pipe; stdin and
//! stdout pipes always exist, except for a servicing container, which gets none;
//! the environment comes from `K=V` entries split at the first `=` (entries
//! without one are dropped); an empty working directory falls back to init's; the
//! command line is the spec's `commandLine` when given, else the arguments joined
//! by the Windows quoting rules (see [`crate::cmdline`]).

use oci_spec::runtime::Process;

use crate::cmdline::{self, JoinError};
use crate::documents::v1::ProcessConfig;

/// The error of building a process configuration, named for the step.
#[derive(Debug, thiserror::Error)]
pub enum ProcessConfigError {
    /// The arguments cannot form a Windows command line.
    #[error("cannot build the command line")]
    CommandLine(#[source] JoinError),
}

/// Where the process runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessContext<'a> {
    /// The container is a servicing container (no stdio at all).
    pub servicing: bool,
    /// The init process's working directory, for an exec that names none.
    pub init_cwd: Option<&'a str>,
}

/// The `ProcessConfig` for `process` in the given context.
pub fn process_config(
    process: &Process,
    ctx: ProcessContext<'_>,
) -> Result<ProcessConfig, ProcessConfigError> {
    let terminal = process.terminal().unwrap_or(false);
    let command_line = match process.command_line().as_deref() {
        Some(line) if !line.is_empty() => line.to_owned(),
        _ => cmdline::join(process.args().as_deref().unwrap_or_default())
            .map_err(ProcessConfigError::CommandLine)?,
    };
    let environment = process
        .env()
        .iter()
        .flatten()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let cwd = process.cwd().to_string_lossy();
    let working_directory = if cwd.is_empty() {
        ctx.init_cwd.unwrap_or_default().to_owned()
    } else {
        cwd.into_owned()
    };
    let saturate = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let console_size = match process.console_size() {
        Some(size) if terminal => [saturate(size.height()), saturate(size.width())],
        _ => [0, 0],
    };
    Ok(ProcessConfig {
        application_name: String::new(),
        command_line,
        user: process.user().username().clone().unwrap_or_default(),
        working_directory,
        environment,
        emulate_console: terminal,
        create_std_in_pipe: !ctx.servicing,
        create_std_out_pipe: !ctx.servicing,
        create_std_err_pipe: !ctx.servicing && !terminal,
        console_size,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cmdline;

    fn process(v: serde_json::Value) -> Process {
        serde_json::from_value(v).expect("valid process")
    }

    #[test]
    fn terminal_process() {
        let p = process(json!({
            "terminal": true,
            "consoleSize": { "height": 40, "width": 120 },
            "user": { "uid": 0, "gid": 0, "username": "ContainerUser" },
            "args": ["cmd", "/S", "/C", "echo a b"],
            "env": ["PATH=C:\\Windows", "A=b=c", "NOEQUALS", "EMPTY="],
            "cwd": "C:\\work",
        }));
        let cfg = process_config(&p, ProcessContext::default()).unwrap();
        assert!(cfg.emulate_console);
        assert!(cfg.create_std_in_pipe && cfg.create_std_out_pipe);
        assert!(
            !cfg.create_std_err_pipe,
            "a terminal has no separate stderr"
        );
        assert_eq!(cfg.console_size, [40, 120]);
        assert_eq!(cfg.user, "ContainerUser");
        assert_eq!(cfg.working_directory, "C:\\work");
        assert_eq!(cfg.command_line, r#"cmd /S /C "echo a b""#);
        let env: Vec<_> = cfg
            .environment
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(env, [("A", "b=c"), ("EMPTY", ""), ("PATH", "C:\\Windows")]);
        assert_eq!(
            serde_json::to_value(&cfg).unwrap(),
            json!({
                "ApplicationName": "",
                "CommandLine": r#"cmd /S /C "echo a b""#,
                "User": "ContainerUser",
                "WorkingDirectory": "C:\\work",
                "Environment": { "A": "b=c", "EMPTY": "", "PATH": "C:\\Windows" },
                "EmulateConsole": true,
                "CreateStdInPipe": true,
                "CreateStdOutPipe": true,
                "CreateStdErrPipe": false,
                "ConsoleSize": [40, 120],
            })
        );
    }

    #[test]
    fn no_terminal_has_stderr_and_no_console_size() {
        let p = process(json!({
            "consoleSize": { "height": 40, "width": 120 },
            "user": { "uid": 0, "gid": 0 },
            "args": ["ping", "-t", "localhost"],
            "cwd": "C:\\",
        }));
        let cfg = process_config(&p, ProcessContext::default()).unwrap();
        assert!(!cfg.emulate_console);
        assert!(cfg.create_std_in_pipe && cfg.create_std_out_pipe && cfg.create_std_err_pipe);
        assert_eq!(cfg.console_size, [0, 0]);
        assert_eq!(cfg.user, "");
    }

    #[test]
    fn servicing_has_no_pipes() {
        let p = process(json!({ "user": { "uid": 0, "gid": 0 }, "args": ["svc"], "cwd": "C:\\" }));
        let cfg = process_config(
            &p,
            ProcessContext {
                servicing: true,
                init_cwd: None,
            },
        )
        .unwrap();
        assert!(!cfg.create_std_in_pipe && !cfg.create_std_out_pipe && !cfg.create_std_err_pipe);
    }

    #[test]
    fn exec_cwd_falls_back_to_init() {
        let p = process(json!({ "user": { "uid": 0, "gid": 0 }, "args": ["cmd"], "cwd": "" }));
        let ctx = ProcessContext {
            servicing: false,
            init_cwd: Some("C:\\app"),
        };
        assert_eq!(
            process_config(&p, ctx).unwrap().working_directory,
            "C:\\app"
        );
        let p =
            process(json!({ "user": { "uid": 0, "gid": 0 }, "args": ["cmd"], "cwd": "C:\\own" }));
        assert_eq!(
            process_config(&p, ctx).unwrap().working_directory,
            "C:\\own"
        );
    }

    #[test]
    fn command_line_round_trips_and_spec_command_line_wins() {
        let args = [
            "C:\\Program Files\\x.exe",
            "a \"quoted\" arg",
            "trailing\\ space\\",
        ];
        let p = process(json!({ "user": { "uid": 0, "gid": 0 }, "args": args, "cwd": "C:\\" }));
        let cfg = process_config(&p, ProcessContext::default()).unwrap();
        assert_eq!(cmdline::split(&cfg.command_line), args);

        let p = process(json!({
            "user": { "uid": 0, "gid": 0 }, "args": ["ignored"],
            "commandLine": "cmd /c \"as is\"", "cwd": "C:\\",
        }));
        assert_eq!(
            process_config(&p, ProcessContext::default())
                .unwrap()
                .command_line,
            "cmd /c \"as is\""
        );
    }

    #[test]
    fn empty_command_is_an_error() {
        let p = process(json!({ "user": { "uid": 0, "gid": 0 }, "args": [], "cwd": "C:\\" }));
        let e = process_config(&p, ProcessContext::default()).unwrap_err();
        assert!(matches!(
            e,
            ProcessConfigError::CommandLine(cmdline::JoinError::Empty)
        ));
        assert_eq!(e.to_string(), "cannot build the command line");
    }
}
