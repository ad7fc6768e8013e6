//! berth: a container supervisor library, Docker's `libcontainerd` in Rust.
//!
//! An engine embeds [`Client`] to create and start containers from OCI runtime
//! specs, signal, wait for and delete them, and receive every state change in order
//! through an [`EventSink`]. On Linux each container has a shim
//! (`containerd-shim-berth-v1`) that holds its stdio and exit codes, so containers
//! outlive the engine.

#![deny(unsafe_code)]

mod client;
mod error;
/// The image store (Linux: layers become an overlayfs root).
#[cfg(target_os = "linux")]
pub mod image;
#[cfg(unix)]
pub mod logs;
mod platform;
pub mod rootfs;
pub mod spec;
mod types;

pub use berth_types::{
    ContainerId, ContainerStatus, Event, EventKind, ExitStatus, ProcessId, ProcessSummary,
    Resources, Stats,
};
pub use client::{Client, Created};
pub use error::{Error, ErrorKind, Result};
/// Checks that a directory holds a complete checkpoint (CRIU's images and the
/// marker berth writes last); the error says what is missing.
#[cfg(target_os = "linux")]
pub use platform::check_checkpoint;
pub use platform::Config;
pub use types::{
    CheckpointInfo, ContainerInfo, CreateOptions, EventSink, Isolation, Layers, OutputReader,
    ProcessIo, StdinWriter, StdioRequest, WindowsNetwork, WindowsOptions,
};
