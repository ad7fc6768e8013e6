//! Types shared by berth's crates: validated ids, lifecycle events, exit statuses,
//! statistics, process summaries and resource updates. Nothing here touches the OS
//! but [`event_log`] (appends to one file), so the same types serve the Linux shim,
//! the Windows HCS client and the CLI.

#![deny(unsafe_code)]

mod event;
pub mod event_log;
mod id;
mod resources;
mod stats;
mod status;
pub mod wire;

pub use event::{Event, EventKind};
pub use id::{ContainerId, IdError, ProcessId, INIT_PROCESS_ID};
pub use resources::Resources;
pub use stats::{
    BlockIoStats, CpuStats, MemoryStats, NetworkStats, PidsStats, ProcessSummary, Stats,
    STATS_TYPE_URL,
};
pub use status::{ContainerStatus, ExitStatus, UNKNOWN_EXIT_CODE};
pub use wire::{WireError, WireErrorKind, EXIT_COMMAND_ANNOTATION, OPEN_STDIN_ANNOTATION};
