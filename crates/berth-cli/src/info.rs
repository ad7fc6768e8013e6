//! `berth info`: what this host supports, as berth sees it.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::cli::Cli;

/// The cgroup layout: `v2`, `v1`, or `v1 (hybrid: v2 at /sys/fs/cgroup/unified)`,
/// and the v1 controllers (or v2's).
fn cgroups() -> (String, Vec<String>) {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").is_file() {
        let ctrls = std::fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
        return (
            "v2".into(),
            ctrls.split_whitespace().map(str::to_owned).collect(),
        );
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v1 = Vec::new();
    let mut hybrid = false;
    for l in mounts.lines() {
        let Some((left, right)) = l.split_once(" - ") else {
            continue;
        };
        let point = left.split_whitespace().nth(4).unwrap_or("");
        let mut r = right.split_whitespace();
        let (fstype, opts) = (r.next(), r.nth(1).unwrap_or(""));
        match (fstype, point.strip_prefix("/sys/fs/cgroup/")) {
            (Some("cgroup2"), Some(_)) => hybrid = true,
            // Named hierarchies (systemd's) control nothing.
            (Some("cgroup"), Some(name)) if !name.contains('/') && !opts.contains("name=") => {
                v1.push(name.to_owned())
            }
            _ => {}
        }
    }
    v1.sort();
    let layout = if hybrid {
        "v1 (hybrid, v2 beside it)"
    } else {
        "v1"
    };
    (layout.into(), v1)
}

/// `criu --version` and `criu check` of the criu berth would run.
fn criu(cli: &Cli) -> String {
    let bin = cli.criu.clone().unwrap_or_else(|| "criu".into());
    let run = |arg: &str| Command::new(&bin).arg(arg).stdin(Stdio::null()).output();
    match run("--version") {
        Err(e) => format!("{}: {e}", bin.display()),
        Ok(v) => {
            let version = String::from_utf8_lossy(&v.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            let usable = run("check").is_ok_and(|o| o.status.success());
            let verdict = if usable {
                "usable"
            } else {
                "`criu check` fails"
            };
            format!("{} ({version}, {verdict})", bin.display())
        }
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub fn print(cli: &Cli) -> u8 {
    let (layout, controllers) = cgroups();
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let overlay = filesystems
        .lines()
        .any(|l| l.trim_end().ends_with("overlay"));
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let seccomp = status.lines().any(|l| l.starts_with("Seccomp:"));
    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("Kernel:          {}", kernel.trim());
    println!("Cgroups:         {layout}");
    println!("Controllers:     {}", controllers.join(" "));
    println!("Overlayfs:       {}", yes(overlay));
    println!("Seccomp:         {}", yes(seccomp));
    println!("User namespaces: {}", yes(userns));
    println!("CRIU:            {}", criu(cli));
    println!(
        "Shim:            {}",
        crate::commands::shim_binary().display()
    );
    println!("Root:            {}", cli.root.display());
    println!("Data root:       {}", cli.data_root.display());
    0
}
