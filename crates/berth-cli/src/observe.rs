//! `pause`, `resume`, `stats`, `top` and `update`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use berth::{Client, ContainerId, ContainerStatus, Resources, Stats};
use clap::Args;
use serde_json::{json, Value};

use crate::cli::Cli;
use crate::{names, output};

/// Options of `berth stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one sample and exit.
    #[arg(long)]
    pub no_stream: bool,
    /// `json`: one object per container per sample.
    #[arg(long)]
    pub format: Option<String>,
    /// Containers (default: every running one).
    pub names: Vec<String>,
}

/// Options of `berth update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Memory limit (64m, 1g).
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Memory plus swap limit (-1: unlimited).
    #[arg(long)]
    pub memory_swap: Option<String>,
    /// CPUs (0.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Relative CPU weight.
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// CPUs to run on (0-1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of tasks (0 or -1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block I/O weight (10-1000).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// The container.
    pub name: String,
}

/// How often the live table refreshes.
const INTERVAL: Duration = Duration::from_secs(1);
/// The gap between the two samples of `--no-stream` that CPU % is measured over.
const ONE_SHOT_GAP: Duration = Duration::from_millis(200);

fn report_err(verb: &str, name: &str, e: &anyhow::Error) {
    match e.downcast_ref::<berth::Error>() {
        Some(be) => eprintln!("berth: {verb} {}: {}: {}", be.id, be.step, be.message),
        None => eprintln!("berth: {verb} {name}: {e:#}"),
    }
}

/// `berth pause NAME...` / `berth resume NAME...`.
pub async fn freezer(cli: &Cli, c: &Client, names: &[String], pause: bool) -> u8 {
    let verb = if pause { "pause" } else { "resume" };
    let mut code = 0;
    for name in names {
        let r = async {
            let id = names::resolve(&cli.data_root, name)?;
            if pause {
                c.pause(&id).await?;
            } else {
                c.resume(&id).await?;
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        match r {
            Ok(()) => println!("{name}"),
            Err(e) => {
                report_err(verb, name, &e);
                code = 1;
            }
        }
    }
    code
}

/// `berth update [FLAGS] NAME`.
pub async fn update(cli: &Cli, c: &Client, a: &UpdateArgs) -> u8 {
    let r = async {
        let r = resources(a)?;
        let id = names::resolve(&cli.data_root, &a.name)?;
        c.update_resources(&id, &r).await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    match r {
        Ok(()) => {
            println!("{}", a.name);
            0
        }
        Err(e) => {
            report_err("update", &a.name, &e);
            1
        }
    }
}

fn resources(a: &UpdateArgs) -> Result<Resources> {
    use berth::spec::parse;
    let mut r = Resources::default();
    if let Some(m) = &a.memory {
        r.memory = Some(parse::parse_bytes(m).map_err(|e| anyhow!("parse --memory: {e}"))?);
    }
    if let Some(m) = &a.memory_swap {
        r.memory_swap =
            Some(parse::parse_memory_swap(m).map_err(|e| anyhow!("parse --memory-swap: {e}"))?);
    }
    if let Some(cpus) = &a.cpus {
        let (quota, period) = parse::parse_cpus(cpus).map_err(|e| anyhow!("parse --cpus: {e}"))?;
        r.cpu_quota = Some(quota);
        r.cpu_period = Some(period);
    }
    r.cpu_shares = a.cpu_shares;
    r.cpuset_cpus = a.cpuset_cpus.clone();
    r.pids_limit = a.pids_limit;
    r.blkio_weight = a.blkio_weight;
    berth::spec::check_host_cpus(r.cpu_quota, r.cpu_period, r.cpuset_cpus.as_deref())
        .map_err(|why| anyhow!("check options: {why}"))?;
    if r == Resources::default() {
        bail!("parse arguments: nothing to update: give at least one of --memory, --memory-swap, --cpus, --cpu-shares, --cpuset-cpus, --pids-limit, --blkio-weight");
    }
    Ok(r)
}

/// `berth top NAME`.
pub async fn top(cli: &Cli, c: &Client, name: &str) -> u8 {
    let r = async {
        let id = names::resolve(&cli.data_root, name)?;
        let procs = c.summary(&id).await?;
        if procs.is_empty() && c.state(&id).await?.status == ContainerStatus::Exited {
            // Its shim outlived it: no process is not a process table.
            bail!("check state: the container is not running");
        }
        Ok::<_, anyhow::Error>(procs)
    }
    .await;
    match r {
        Ok(procs) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{:<10}{:<12}{:<12}{:<12}COMMAND",
                "PID", "USER", "TIME", "RSS"
            );
            for p in procs {
                let _ = writeln!(
                    out,
                    "{:<10}{:<12}{:<12}{:<12}{}",
                    p.pid,
                    p.user,
                    cpu_time(p.cpu_time_ns),
                    binary(p.memory_bytes),
                    p.command
                );
            }
            0
        }
        Err(e) => {
            report_err("top", name, &e);
            1
        }
    }
}

/// `[DD-]HH:MM:SS`, as ps prints TIME.
fn cpu_time(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// One container's latest sample and the one before it.
struct Row {
    id: ContainerId,
    prev: Option<(Instant, u64)>,
    now: Option<(Instant, Stats)>,
}

/// `berth stats`.
pub async fn stats(cli: &Cli, c: &Client, a: &StatsArgs) -> u8 {
    let json = match a.format.as_deref() {
        None => false,
        Some("json") => true,
        Some(f) => {
            eprintln!("berth: stats: unknown format {f:?}: use json");
            return 1;
        }
    };
    let mut fixed = Vec::new();
    for name in &a.names {
        match names::resolve(&cli.data_root, name) {
            Ok(id) => fixed.push(id),
            Err(e) => {
                report_err("stats", name, &e);
                return 1;
            }
        }
    }
    let live = !a.no_stream && std::io::stdout().is_terminal() && !json;
    let mut rows: Vec<Row> = Vec::new();
    let mut first = true;
    loop {
        // Which containers: the named ones, or every running one (new ones appear).
        let ids: Vec<ContainerId> = if a.names.is_empty() {
            match c.list().await {
                Ok(list) => list
                    .into_iter()
                    .filter(|i| {
                        matches!(i.status, ContainerStatus::Running | ContainerStatus::Paused)
                    })
                    .map(|i| i.id)
                    .collect(),
                Err(e) => {
                    eprintln!("berth: stats: {e}");
                    return 1;
                }
            }
        } else {
            fixed.clone()
        };
        rows.retain(|r| ids.contains(&r.id));
        for id in &ids {
            if !rows.iter().any(|r| &r.id == id) {
                rows.push(Row {
                    id: id.clone(),
                    prev: None,
                    now: None,
                });
            }
        }
        sample(c, &mut rows).await;
        if first && a.no_stream {
            // CPU % needs two samples.
            tokio::time::sleep(ONE_SHOT_GAP).await;
            sample(c, &mut rows).await;
        }
        first = false;
        let mut out = std::io::stdout().lock();
        if json {
            for r in &rows {
                let _ = writeln!(out, "{}", stats_json(r));
            }
        } else {
            if live {
                // Home and clear, as docker stats redraws.
                let _ = write!(out, "\x1b[H\x1b[2J");
            }
            let _ = write!(out, "{}", table(&rows));
        }
        if out.flush().is_err() {
            return 0;
        }
        drop(out);
        if a.no_stream {
            return 0;
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

async fn sample(c: &Client, rows: &mut [Row]) {
    for r in rows.iter_mut() {
        if let Some((t, s)) = &r.now {
            if let Some(total) = s.cpu.total_ns {
                r.prev = Some((*t, total));
            }
        }
        r.now = match c.stats(&r.id).await {
            Ok(s) => Some((Instant::now(), s)),
            Err(_) => None,
        };
    }
}

/// CPU use between the last two samples, in % of one CPU (docker's convention:
/// up to 100 × CPUs).
fn cpu_percent(r: &Row) -> Option<f64> {
    let (t0, c0) = r.prev?;
    let (t1, s) = r.now.as_ref()?;
    let c1 = s.cpu.total_ns?;
    let wall = t1.duration_since(t0).as_nanos() as f64;
    (wall > 0.0).then(|| c1.saturating_sub(c0) as f64 / wall * 100.0)
}

fn stats_json(r: &Row) -> Value {
    let s = r.now.as_ref().map(|(_, s)| s.clone()).unwrap_or_default();
    json!({
        "Id": r.id.as_str(),
        "Name": r.id.as_str(),
        "Read": s.read.as_ref().map(output::time),
        "CpuPercent": cpu_percent(r).map(|p| (p * 100.0).round() / 100.0),
        "Cpu": {"TotalNs": s.cpu.total_ns, "UserNs": s.cpu.user_ns, "SystemNs": s.cpu.system_ns},
        "Memory": {"Usage": s.memory.usage, "Limit": s.memory.limit, "MaxUsage": s.memory.max_usage, "Cache": s.memory.cache},
        "Pids": {"Current": s.pids.current, "Limit": s.pids.limit},
        "BlockIo": {"ReadBytes": s.block_io.read_bytes, "WriteBytes": s.block_io.write_bytes},
        "Network": {"RxBytes": s.network.rx_bytes, "RxPackets": s.network.rx_packets, "TxBytes": s.network.tx_bytes, "TxPackets": s.network.tx_packets},
    })
}

fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn table(rows: &[Row]) -> String {
    let mut s = format!(
        "{:<14}{:<24}{:<9}{:<22}{:<9}{:<20}{:<20}{}\n",
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS"
    );
    let host = host_memory();
    for r in rows {
        let id12: String = r.id.as_str().chars().take(12).collect();
        let Some((_, st)) = &r.now else {
            s += &format!(
                "{:<14}{:<24}{:<9}{:<22}{:<9}{:<20}{:<20}{}\n",
                id12,
                r.id.as_str(),
                "--",
                "-- / --",
                "--",
                "--",
                "--",
                "--"
            );
            continue;
        };
        let cpu = cpu_percent(r).map_or("--".into(), |p| format!("{p:.2}%"));
        let used = st
            .memory
            .usage
            .map(|u| u.saturating_sub(st.memory.cache.unwrap_or(0)));
        let limit = st.memory.limit.or(host);
        let mem = format!(
            "{} / {}",
            used.map_or("--".into(), binary),
            limit.map_or("--".into(), binary)
        );
        let mem_pct = match (used, limit) {
            (Some(u), Some(l)) if l > 0 => format!("{:.2}%", u as f64 / l as f64 * 100.0),
            _ => "--".into(),
        };
        let pair = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => format!("{} / {}", decimal(a), decimal(b)),
            _ => "--".into(),
        };
        s += &format!(
            "{:<14}{:<24}{:<9}{:<22}{:<9}{:<20}{:<20}{}\n",
            id12,
            r.id.as_str(),
            cpu,
            mem,
            mem_pct,
            pair(st.network.rx_bytes, st.network.tx_bytes),
            pair(st.block_io.read_bytes, st.block_io.write_bytes),
            st.pids.current.map_or("--".into(), |p| p.to_string())
        );
    }
    s
}

/// Sizes as docker prints memory: 1.5MiB.
fn binary(n: u64) -> String {
    human(n, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB"])
}

/// Sizes as docker prints I/O: 1.2kB.
fn decimal(n: u64) -> String {
    human(n, 1000.0, &["B", "kB", "MB", "GB", "TB"])
}

fn human(n: u64, base: f64, units: &[&str]) -> String {
    let mut v = n as f64;
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    if i == 0 {
        format!("{n}{}", units[0])
    } else {
        format!("{:.3}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
            + units[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(binary(0), "0B");
        assert_eq!(binary(1536 * 1024), "1.5MiB");
        assert_eq!(decimal(1200), "1.2kB");
        assert_eq!(cpu_time(3_723_000_000_000), "01:02:03");
    }

    #[test]
    fn unknown_figures_are_null_and_cpu_needs_two_samples() {
        let now = Instant::now();
        let mut s = Stats::default();
        s.cpu.total_ns = Some(2_000_000_000);
        s.pids.current = Some(3);
        let r = Row {
            id: ContainerId::new("c1").unwrap(),
            prev: None,
            now: Some((now, s.clone())),
        };
        let v = stats_json(&r);
        assert!(v["CpuPercent"].is_null());
        assert!(v["Memory"]["Usage"].is_null());
        assert_eq!(v["Pids"]["Current"], 3);
        for k in [
            "Id", "Name", "Read", "Cpu", "Memory", "Pids", "BlockIo", "Network",
        ] {
            assert!(v.get(k).is_some(), "{k} missing: {v}");
        }
        let r = Row {
            prev: Some((now - Duration::from_secs(1), 1_500_000_000)),
            ..r
        };
        let p = cpu_percent(&r).unwrap();
        assert!((p - 50.0).abs() < 1.0, "{p}");
        assert!(table(&[r]).contains("50."));
    }
}
