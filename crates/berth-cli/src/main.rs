//! `berth`: docker-like verbs over `berth::Client`.

#![deny(unsafe_code)]

mod checkpoint;
mod cli;
mod commands;
mod image;
mod logs;
mod names;
mod observe;
mod output;
mod term;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let level = if cli.debug {
        "debug"
    } else {
        cli.log_level.as_str()
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: start runtime: {e}");
            return ExitCode::from(125);
        }
    };
    let code = rt.block_on(commands::dispatch(cli));
    // Blocking ttrpc calls may still sit in the pool; do not wait for them.
    rt.shutdown_background();
    ExitCode::from(code)
}
