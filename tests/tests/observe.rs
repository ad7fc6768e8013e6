//! Observing and controlling running containers: pause/resume, stats, top, live
//! updates and OOM, through the real `berth` binary, checked from outside (the
//! cgroup files, /proc) and inside (files the container writes).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_e2e::{eventually, Env};
use serde_json::Value;

/// Waits for `/tmp/go` inside the container before running `script`.
fn gated(script: &str) -> String {
    format!("while [ ! -e /tmp/go ]; do sleep 0.05; done; {script}")
}

fn init_pid(env: &Env, name: &str) -> i64 {
    env.inspect(name)["State"]["Pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("{name}: no pid"))
}

/// A path inside the container's root, seen from the host.
fn inside(env: &Env, name: &str, path: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{}/root{path}", init_pid(env, name)))
}

fn go(env: &Env, name: &str) {
    std::fs::write(inside(env, name, "/tmp/go"), "").expect("write the go file");
}

fn stats(env: &Env, name: &str) -> Value {
    let text = env
        .berth(&["stats", "--no-stream", "--format", "json", name])
        .ok();
    let line = text.lines().next().expect("one JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("stats: not JSON ({e}): {text}"))
}

fn events(env: &Env, name: &str) -> Vec<Value> {
    std::fs::read_to_string(env.root.join(name).join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn counter(env: &Env, name: &str) -> u64 {
    std::fs::read_to_string(inside(env, name, "/tmp/c"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn paused_container_stops_counting_until_resumed() {
    let env = Env::new("pau");
    let name = env.name("c");
    env.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/c; sleep 0.05; done",
    ])
    .code(0);
    eventually("counter starts", Duration::from_secs(10), || {
        counter(&env, &name) > 2
    });
    assert_eq!(env.berth(&["pause", &name]).ok(), format!("{name}\n"));
    // The event is journaled before pause returns.
    assert!(
        events(&env, &name).iter().any(|e| e["Type"] == "paused"),
        "no paused event"
    );
    let v = env.inspect(&name);
    assert_eq!(v["State"]["Status"], "paused", "{v}");
    assert_eq!(v["State"]["Paused"], true);
    assert_eq!(v["State"]["Running"], true);
    let frozen_at = counter(&env, &name);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        counter(&env, &name),
        frozen_at,
        "the counter advanced while paused"
    );
    // Exec into a paused container and pausing twice are clear errors.
    let out = env.berth(&["exec", &name, "--", "true"]);
    assert_ne!(out.code, 0);
    out.one_line_error(&["exec", &name, "paused"]);
    let out = env.berth(&["pause", &name]);
    out.code(1);
    out.one_line_error(&["pause", &name, "already paused"]);
    assert_eq!(env.berth(&["resume", &name]).ok(), format!("{name}\n"));
    assert!(events(&env, &name).iter().any(|e| e["Type"] == "resumed"));
    assert_eq!(env.inspect(&name)["State"]["Status"], "running");
    eventually(
        "counter advances after resume",
        Duration::from_secs(10),
        || counter(&env, &name) > frozen_at + 3,
    );
    let out = env.berth(&["resume", &name]);
    out.code(1);
    out.one_line_error(&["resume", &name, "not paused"]);
    // kill of a paused container: thawed as needed, the real exit.
    env.berth(&["pause", &name]).code(0);
    env.berth(&["kill", &name]).code(0);
    let v = env.wait_status(&name, "exited", Duration::from_secs(10));
    assert_eq!(v["State"]["ExitCode"], 137, "{v}");
    assert_eq!(v["State"]["OOMKilled"], false);
    // Pausing a stopped container is a clear error.
    let out = env.berth(&["pause", &name]);
    out.code(1);
    out.one_line_error(&["pause", &name, "not running"]);
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

#[test]
fn stop_and_rm_force_of_paused_containers_report_the_real_exit() {
    let env = Env::new("pst");
    let a = env.name("stop");
    let b = env.name("rmf");
    for n in [&a, &b] {
        env.berth(&["run", "-d", "--name", n, "--", "sleep", "1000"])
            .code(0);
        env.berth(&["pause", n]).code(0);
    }
    env.berth_timeout(&["stop", "-t", "1", &a], Duration::from_secs(30))
        .code(0);
    let v = env.inspect(&a);
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["ExitCode"], 137, "{v}");
    env.berth(&["rm", &a]).code(0);
    env.berth(&["rm", "-f", &b]).code(0);
    env.finish();
}

#[test]
fn stats_memory_rises_when_the_container_allocates_50mb() {
    let env = Env::new("smem");
    let name = env.name("c");
    let script = gated("x=$(head -c 50000000 /dev/zero | tr '\\0' a); touch /tmp/held; sleep 1000");
    env.berth(&["run", "-d", "--name", &name, "--", "sh", "-c", &script])
        .code(0);
    let before = stats(&env, &name);
    for (k, f) in [
        ("Cpu", "TotalNs"),
        ("Cpu", "UserNs"),
        ("Cpu", "SystemNs"),
        ("Memory", "Usage"),
        ("Memory", "MaxUsage"),
        ("Memory", "Cache"),
        ("Pids", "Current"),
        ("BlockIo", "ReadBytes"),
        ("Network", "RxBytes"),
    ] {
        assert!(
            before[k][f].is_u64(),
            "{k}.{f} should be a number: {before}"
        );
    }
    assert_eq!(before["Id"], name.as_str());
    assert!(before["Read"].is_string());
    assert!(before["CpuPercent"].is_number(), "{before}");
    // No limit set: null, never 0.
    assert!(before["Memory"]["Limit"].is_null(), "{before}");
    assert!(before["Pids"]["Limit"].is_null(), "{before}");
    let u0 = before["Memory"]["Usage"].as_u64().unwrap();
    go(&env, &name);
    eventually("the 50 MB are held", Duration::from_secs(30), || {
        inside(&env, &name, "/tmp/held").exists()
    });
    let after = stats(&env, &name);
    let u1 = after["Memory"]["Usage"].as_u64().unwrap();
    assert!(
        u1 >= u0 + 45_000_000,
        "usage {u0} -> {u1}: did not rise by ~50 MB"
    );
    assert!(after["Memory"]["MaxUsage"].as_u64().unwrap() >= u1);
    assert!(after["Cpu"]["TotalNs"].as_u64().unwrap() > before["Cpu"]["TotalNs"].as_u64().unwrap());
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn pids_in_stats_match_top() {
    let env = Env::new("top");
    let name = env.name("c");
    env.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "sleep 1000 & sleep 1001 & wait",
    ])
    .code(0);
    eventually("three processes", Duration::from_secs(10), || {
        stats(&env, &name)["Pids"]["Current"] == 3
    });
    let top = env.berth(&["top", &name]).ok();
    let mut lines = top.lines();
    let header = lines.next().unwrap();
    for col in ["PID", "USER", "TIME", "RSS", "COMMAND"] {
        assert!(header.contains(col), "{header}");
    }
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{top}");
    let procs =
        std::fs::read_to_string(format!("/sys/fs/cgroup/pids/berth/{name}/cgroup.procs")).unwrap();
    let mut want: Vec<&str> = procs.split_whitespace().collect();
    let mut got: Vec<&str> = rows
        .iter()
        .map(|r| r.split_whitespace().next().unwrap())
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{top}");
    assert!(top.contains("sleep 1001"), "{top}");
    assert!(
        rows.iter()
            .all(|r| r.split_whitespace().nth(1) == Some("root")),
        "{top}"
    );
    let out = env.berth(&["top", "nosuch-container"]);
    out.code(1);
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn update_memory_then_allocating_past_it_is_an_oom_kill() {
    let env = Env::new("uoom");
    let name = env.name("c");
    let script = gated("x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo done");
    env.berth(&["run", "-d", "--name", &name, "--", "sh", "-c", &script])
        .code(0);
    assert_eq!(
        env.berth(&["update", "--memory", "32m", &name]).ok(),
        format!("{name}\n")
    );
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/berth/{name}/memory.limit_in_bytes"
    ))
    .unwrap();
    assert_eq!(limit.trim(), (32u64 << 20).to_string());
    assert_eq!(env.inspect(&name)["Resources"]["Memory"], 32u64 << 20);
    assert_eq!(stats(&env, &name)["Memory"]["Limit"], 32u64 << 20);
    go(&env, &name);
    let v = env.wait_status(&name, "exited", Duration::from_secs(60));
    assert_eq!(v["State"]["ExitCode"], 137, "{v}");
    assert_eq!(v["State"]["OOMKilled"], true, "{v}");
    let evs = events(&env, &name);
    let oom = evs.iter().position(|e| e["Type"] == "oom");
    let exit = evs.iter().position(|e| e["Type"] == "exit");
    assert!(
        matches!((oom, exit), (Some(o), Some(x)) if o < x),
        "want oom before exit: {evs:?}"
    );
    assert_eq!(evs[exit.unwrap()]["OOMKilled"], true);
    assert_eq!(evs[exit.unwrap()]["ExitCode"], 137);
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

#[test]
fn a_refused_update_is_an_error_and_keeps_the_old_limits() {
    let env = Env::new("uref");
    let name = env.name("c");
    let script = "x=$(head -c 50000000 /dev/zero | tr '\\0' a); touch /tmp/held; sleep 1000";
    env.berth(&[
        "run", "-d", "--name", &name, "--memory", "256m", "--", "sh", "-c", script,
    ])
    .code(0);
    eventually("the 50 MB are held", Duration::from_secs(30), || {
        inside(&env, &name, "/tmp/held").exists()
    });
    let file = format!("/sys/fs/cgroup/memory/berth/{name}/memory.limit_in_bytes");
    let old = std::fs::read_to_string(&file).unwrap();
    let out = env.berth(&["update", "--memory", "8m", &name]);
    out.code(1);
    out.one_line_error(&["update", &name, "memory"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), old);
    assert_eq!(env.inspect(&name)["State"]["Status"], "running");
    assert_eq!(env.inspect(&name)["Resources"]["Memory"], 256u64 << 20);
    // Nothing to update, and a container that is not running, are errors too.
    env.berth(&["update", &name]).code(1);
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn update_pids_limit_caps_a_fork_loop() {
    let env = Env::new("upid");
    let name = env.name("c");
    let script = gated(
        "(i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; wait) 2>/dev/null; \
         echo $? > /tmp/r; sleep 1000",
    );
    env.berth(&["run", "-d", "--name", &name, "--", "sh", "-c", &script])
        .code(0);
    env.berth(&["update", "--pids-limit", "20", &name]).code(0);
    assert_eq!(
        std::fs::read_to_string(format!("/sys/fs/cgroup/pids/berth/{name}/pids.max"))
            .unwrap()
            .trim(),
        "20"
    );
    assert_eq!(env.inspect(&name)["Resources"]["PidsLimit"], 20);
    go(&env, &name);
    eventually("the fork loop ends", Duration::from_secs(30), || {
        inside(&env, &name, "/tmp/r").exists()
    });
    let s = stats(&env, &name);
    assert_eq!(s["Pids"]["Limit"], 20, "{s}");
    assert!(s["Pids"]["Current"].as_u64().unwrap() <= 20, "{s}");
    let events =
        std::fs::read_to_string(format!("/sys/fs/cgroup/pids/berth/{name}/pids.events")).unwrap();
    let refused: u64 = events
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(refused > 0, "no fork was refused: {events}");
    let r = std::fs::read_to_string(inside(&env, &name, "/tmp/r")).unwrap();
    assert_ne!(r.trim(), "0", "the loop of 100 forks succeeded");
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn blkio_weight_update_applies_or_is_a_clear_error() {
    let env = Env::new("blk");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    let dir = PathBuf::from(format!("/sys/fs/cgroup/blkio/berth/{name}"));
    let bfq_disk = std::fs::read_dir("/sys/block").is_ok_and(|rd| {
        rd.flatten().any(|e| {
            std::fs::read_to_string(e.path().join("queue/scheduler"))
                .is_ok_and(|s| s.contains("[bfq]"))
        })
    });
    let weighted =
        dir.join("blkio.weight").exists() || (bfq_disk && dir.join("blkio.bfq.weight").exists());
    let out = env.berth(&["update", "--blkio-weight", "300", &name]);
    if weighted {
        out.code(0);
    } else {
        out.code(1);
        out.one_line_error(&["update", &name, "block I/O weight"]);
        println!(
            "SKIPPED: blkio weight taking effect: this host has no blkio.weight and no disk runs bfq; checked the clear error instead"
        );
    }
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

/// tmux on a private socket, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux (apt-get install tmux)")
    }
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "s"]).stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[test]
fn live_stats_table_redraws_the_row_in_a_terminal() {
    let env = Env::new("live");
    let name = env.name("c");
    // Memory grows by ~200 kB a step, so the row's figures change every sample.
    env.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "x=; while true; do x=\"$x$(head -c 200000 /dev/zero | tr '\\0' a)\"; sleep 0.3; done",
    ])
    .code(0);
    let tmux = Tmux {
        socket: format!("berth-{name}"),
    };
    let command = format!(
        "env BERTH_ROOT={} BERTH_DATA_ROOT={} BERTH_SHIM={} {} stats {name}",
        env.root.display(),
        env.data.display(),
        berth_e2e::shim_bin().display(),
        berth_e2e::berth_bin().display(),
    );
    let o = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "s",
        "-x",
        "160",
        "-y",
        "20",
        &command,
    ]);
    assert!(
        o.status.success(),
        "tmux: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let row = |screen: &str| -> Option<String> {
        screen
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name.as_str()))
            .map(str::to_owned)
    };
    let mut first = None;
    eventually("the row appears", Duration::from_secs(10), || {
        first = row(&tmux.screen());
        first.is_some()
    });
    let first = first.unwrap();
    let start = Instant::now();
    let mut changed = None;
    while start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(500));
        let screen = tmux.screen();
        // Redrawn in place: one header, one row, never a scrolled history.
        assert_eq!(screen.matches("CONTAINER ID").count(), 1, "{screen}");
        assert_eq!(
            screen.lines().filter(|l| l.contains(name.as_str())).count(),
            1,
            "{screen}"
        );
        if let Some(r) = row(&screen).filter(|r| *r != first) {
            changed = Some(r);
            break;
        }
    }
    let changed = changed.unwrap_or_else(|| panic!("the row never changed: {first}"));
    assert!(
        changed.contains('%') && changed.contains(" / "),
        "{changed}"
    );
    drop(tmux);
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

/// `logs --tail N` counts output that ends without a newline as a line.
#[test]
fn tail_counts_an_unterminated_last_line() {
    let env = Env::new("otl");
    let name = env.name("c");
    env.berth(&[
        "run",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "printf '1\\n2\\n3\\n4\\n5'",
    ])
    .code(0);
    assert_eq!(env.berth(&["logs", "--tail", "0", &name]).ok(), "");
    assert_eq!(env.berth(&["logs", "--tail", "1", &name]).ok(), "5");
    assert_eq!(env.berth(&["logs", "--tail", "2", &name]).ok(), "4\n5");
    // Docker's `all`.
    assert_eq!(
        env.berth(&["logs", "--tail", "all", &name]).ok(),
        "1\n2\n3\n4\n5"
    );
    env.berth(&["rm", &name]).code(0);
    env.finish();
}
