//! The platform's container service, chosen once here. Each platform has a
//! `Config`, a `Platform` with the operations the Client delegates to, and the
//! stream types of a process's stdio (`StdinWriter`, `OutputReader`).

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{check_checkpoint, Config, Platform};
/// The caller's end of a process's stdin (a FIFO held by the shim).
#[cfg(target_os = "linux")]
pub type StdinWriter = tokio::net::unix::pipe::Sender;
/// The caller's end of a process's stdout or stderr (a FIFO held by the shim).
#[cfg(target_os = "linux")]
pub type OutputReader = tokio::net::unix::pipe::Receiver;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{Config, OutputReader, Platform, StdinWriter};

// The Windows platform's pure conversions build on every OS so that their unit
// tests run on Linux too.
#[cfg(any(windows, test))]
mod windows_convert;
