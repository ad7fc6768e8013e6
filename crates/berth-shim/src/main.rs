//! `containerd-shim-berth-v1`: one shim per container.
//!
//! Modes, chosen first thing so that nothing threaded ever forks a container:
//! - `helper ...`: synchronous, single-threaded; calls libcontainer to create a
//!   container (or exec into one) and reports over fd 3, then exits.
//! - `start` / `delete`: containerd's runtime v2 binary contract.
//! - no action: the long-lived shim serving the Task API on its socket.

#![deny(unsafe_code)]

mod args;
mod cgroup;
mod checkpoint;
mod fixups;
mod helper;
mod io;
mod journal;
mod mounts;
mod publish;
mod reaper;
mod service;
mod start;
mod sys;
mod trim;

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(helper::ARG) {
        return helper::main(&argv[2..]);
    }
    let flags = match args::Flags::parse(&argv[1..]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("containerd-shim-berth-v1: {e}");
            return ExitCode::from(2);
        }
    };
    if flags.version {
        println!("containerd-shim-berth-v1:\n  Version: {}\n  Revision: berth\n  Go version: none (Rust)", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if flags.info {
        // What containerd 2.x asks of a runtime; plain facts for people and 1.6.
        println!(
            "{{\"name\":\"io.containerd.berth.v1\",\"version\":\"{}\",\"features\":{{\"ociVersionMin\":\"1.0.0\",\"ociVersionMax\":\"1.2.0\"}}}}",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    let result = match flags.action.as_deref() {
        Some("start") => start::start(&flags),
        Some("delete") => start::delete(&flags),
        None => service::serve(&flags),
        Some(other) => Err(anyhow::anyhow!("unknown action {other:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("containerd-shim-berth-v1: {e:#}");
            ExitCode::FAILURE
        }
    }
}
