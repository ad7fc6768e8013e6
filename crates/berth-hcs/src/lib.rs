//! berth-hcs: what berth needs to run containers on the Windows Host Compute
//! Service (HCS).
//!
//! - [`documents`]: the HCS configuration documents as serde types, schema 1
//!   ([`documents::v1::ContainerConfig`], what vmcompute.dll takes) and schema 2
//!   ([`documents::v2::ComputeSystem`], what computecore.dll takes), plus process
//!   configuration, modify requests, property queries, statistics and process lists.
//! - [`translate`]: pure functions from an OCI spec plus [`CreateOptions`] to those
//!   documents. They run and are tested on every OS.
//! - [`process`] and [`cmdline`]: the process configuration of init or an exec, with
//!   a command line quoted so that `CommandLineToArgvW` returns the original args.
//! - `sys` (Windows only): RAII handles over computecore.dll (the `windows` crate's
//!   HostComputeSystem bindings, schema 2) and hand-bound vmcompute.dll exports
//!   (NameToGuid and the schema 1 API, for older hosts).
//!
//! # Entry points for `berth::Client`'s Windows platform
//!
//! ```text
//! // create (schema 2; Windows Server 2019 and later)
//! let host = HostInfo::detect();
//! let doc = translate::to_v2(&spec, &opts, &sys::NameToGuidResolver, &host)?;
//! let system = sys::ComputeSystem::create(id, &doc)?;   // closes on drop
//! system.start()?;                                       // on error: terminate, drop
//! let cfg = process::process_config(spec.process(), ProcessContext { servicing, init_cwd: None })?;
//! let mut init = system.create_process(&(&cfg).into())?; // v2::ProcessParameters
//! let stdio = init.take_stdio();                          // Option<File> x3
//! // on a blocking thread:
//! let code: Option<u32> = init.wait();                    // None = unknown (report 255)
//!
//! // exec: process_config(p, ProcessContext { servicing: false, init_cwd: Some(cwd) })
//! // signal: SIGKILL -> system.terminate(); others -> system.shutdown()
//! // one exec: proc.terminate()  or  proc.signal(v2::ConsoleSignal::CtrlC)
//! // resize / close stdin: proc.resize(w, h), proc.close_stdin()
//! // pause / resume (Hyper-V only): system.pause(), system.resume()
//! // stats / top: system.statistics(), system.process_list()
//! // restore: sys::ComputeSystem::open(id), then system.open_process(pid)
//!
//! // schema 1 (older hosts): translate::to_v1(id, &spec, &opts, &resolver, &host)
//! // with sys::vmcompute::ComputeSystem::{create, open, start, ...}, the same verbs.
//! ```
//!
//! Hyper-V isolation under schema 2 is [`translate::TranslateError::Unsupported`]
//! until berth creates utility VMs; schema 1 keeps the reference's `HvPartition`
//! behaviour.

#![deny(unsafe_code)]

pub mod cmdline;
pub mod documents;
mod options;
pub mod process;
pub mod translate;

#[cfg(windows)]
#[allow(unsafe_code)]
pub mod sys;

pub use options::{
    CreateOptions, HostInfo, Isolation, LayerOptions, LayerResolver, NetworkOptions, DEFAULT_OWNER,
};
