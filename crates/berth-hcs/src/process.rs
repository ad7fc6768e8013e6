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
