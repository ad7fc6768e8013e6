//! `berth`: docker-like verbs over `berth::Client`.

#![deny(unsafe_code)]

mod checkpoint;
mod cli;
mod commands;
mod image;
mod info;
mod logs;
mod names;
mod observe;
mod output;
mod term;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
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

/// A command line clap refused: help and version as clap prints them; anything
/// else as one line (`berth: <what is wrong> (see --help)`), exit 125 for `run`
/// and `exec` (berth failed before the process ran) and 1 for the other verbs.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    // clap's first line, with the lines indented under it (what is missing),
    // on one line: "the following required arguments were not provided: <NAME>".
    let text = e.to_string();
    let mut lines = text.lines();
    let mut first = lines
        .next()
        .unwrap_or("bad arguments")
        .trim_start_matches("error: ")
        .to_owned();
    for more in lines.take_while(|l| l.starts_with(' ')) {
        first.push(' ');
        first.push_str(more.trim());
    }
    let verbs: Vec<String> = <cli::Cli as clap::CommandFactory>::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    let verb = std::env::args()
        .skip(1)
        .take_while(|a| a != "--")
        .find(|a| verbs.contains(a));
    match &verb {
        Some(v) => eprintln!("berth: {v}: {first} (see berth {v} --help)"),
        None => eprintln!("berth: {first} (see berth --help)"),
    }
    let launches = verb.as_deref().is_some_and(|v| v == "run" || v == "exec");
    ExitCode::from(if launches { 125 } else { 1 })
}

/// `berth inspect x | head`: when the reader of stdout goes away, end quietly with
/// the status a Unix tool killed by SIGPIPE has (128 + 13), not with a panic and a
/// backtrace. (Rust ignores SIGPIPE, so `println!` panics on the broken pipe.)
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
