//! Detached containers: ps, inspect, kill, stop, rm, checked from outside.

use std::time::Duration;

use berth_e2e::{alive, eventually, Env};
use serde_json::Value;

fn ps_json(env: &Env, all: bool) -> Vec<Value> {
    let args: &[&str] = if all {
        &["ps", "-a", "--format", "json"]
    } else {
        &["ps", "--format", "json"]
    };
    env.berth(args)
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("ps line {l:?}: {e}")))
        .collect()
}

fn find<'a>(rows: &'a [Value], id: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["Id"] == id)
}

/// RFC 3339, UTC, nanoseconds: `2026-12-03T16:00:00.123456789Z`.
#[track_caller]
fn assert_time(v: &Value, what: &str) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v}"));
    assert!(s.len() == 30 && s.ends_with('Z'), "{what}: {s:?}");
    assert_eq!(&s[10..11], "T", "{what}: {s:?}");
    assert_eq!(&s[19..20], ".", "{what}: {s:?}");
    assert!(
        s[20..29].bytes().all(|b| b.is_ascii_digit()),
        "{what}: {s:?}"
    );
}

#[test]
fn detached_container_shows_in_ps_survives_the_cli_and_is_killed_and_removed() {
    let env = Env::new("det");
    let name = env.name("c");
    let out = env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"]);
    assert_eq!(out.ok(), format!("{name}\n"));
    // The CLI has exited; the container runs on.
    std::thread::sleep(Duration::from_millis(500));
    let rows = ps_json(&env, false);
    let row = find(&rows, &name).unwrap_or_else(|| panic!("{name} not in ps: {rows:?}"));
    assert_eq!(row["Name"], name.as_str());
    assert_eq!(row["Status"], "running");
    assert_eq!(row["Command"], "sleep 1000");
    assert!(row["ExitCode"].is_null());
    assert_time(&row["Created"], "ps Created");
    let pid = row["Pid"].as_i64().expect("Pid") as i32;
    assert!(pid > 1 && alive(pid), "pid {pid} not alive");
    // From outside: its own namespaces and its own cgroup.
    for ns in ["pid", "mnt", "uts", "ipc", "net"] {
        let mine = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let its = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_ne!(mine, its, "container shares the {ns} namespace");
    }
    assert!(
        std::path::Path::new(&format!("/sys/fs/cgroup/memory/berth/{name}")).is_dir()
            || std::path::Path::new(&format!("/sys/fs/cgroup/pids/berth/{name}")).is_dir(),
        "no cgroup /berth/{name}"
    );
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap(),
        "sleep\u{0}1000\u{0}"
    );
    // Table and -q.
    let table = env.berth(&["ps"]).ok();
    let line = table
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("{name} not in ps table:\n{table}"));
    assert!(line.contains("Up "), "{line}");
    assert!(table.starts_with("ID"), "{table}");
    assert_eq!(env.berth(&["ps", "-q"]).ok(), format!("{name}\n"));

    env.berth(&["kill", &name]).code(0);
    let v = env.wait_status(&name, "exited", Duration::from_secs(10));
    assert_eq!(v["State"]["ExitCode"], 137);
    eventually("container process gone", Duration::from_secs(5), || {
        !alive(pid)
    });
    // Exited: gone from ps, still in ps -a.
    assert!(find(&ps_json(&env, false), &name).is_none());
    let rows = ps_json(&env, true);
    let row = find(&rows, &name).expect("in ps -a");
    assert_eq!(row["Status"], "exited");
    assert_eq!(row["ExitCode"], 137);
    assert!(row["Pid"].is_null(), "{row}");
    let table = env.berth(&["ps", "-a"]).ok();
    assert!(table.contains("Exited (137)"), "{table}");

    env.berth(&["rm", &name]).code(0);
    assert!(find(&ps_json(&env, true), &name).is_none());
    env.finish();
}

#[test]
fn kill_sigkill_gives_137() {
    let env = Env::new("kk");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    env.berth(&["kill", "-s", "KILL", &name]).code(0);
    let v = env.wait_status(&name, "exited", Duration::from_secs(10));
    assert_eq!(v["State"]["ExitCode"], 137);
    assert_eq!(v["State"]["Running"], false);
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

/// A container's init is PID 1 of its namespace: the kernel drops a signal it has
/// no handler for, SIGKILL aside, even from outside. `sleep` as init survives
/// SIGTERM, as it does under Docker; a handler that exits 143 is honoured.
#[test]
fn sigterm_reaches_init_and_default_action_is_ignored_as_pid_1() {
    let env = Env::new("trm");
    let sleeper = env.name("s");
    env.berth(&["run", "-d", "--name", &sleeper, "--", "sleep", "1000"])
        .code(0);
    let trapper = env.name("t");
    env.berth(&[
        "run",
        "-d",
        "--name",
        &trapper,
        "--",
        "sh",
        "-c",
        "trap 'exit 143' TERM; touch /tmp/ready; while :; do sleep 0.1; done",
    ])
    .code(0);
    // Wait until the trap is set before signalling.
    let pid = env.inspect(&trapper)["State"]["Pid"].as_i64().unwrap();
    eventually("trap set", Duration::from_secs(10), || {
        std::path::Path::new(&format!("/proc/{pid}/root/tmp/ready")).exists()
    });
    env.berth(&["kill", "-s", "TERM", &sleeper]).code(0);
    env.berth(&["kill", "-s", "SIGTERM", &trapper]).code(0);
    let v = env.wait_status(&trapper, "exited", Duration::from_secs(10));
    assert_eq!(v["State"]["ExitCode"], 143);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(env.inspect(&sleeper)["State"]["Status"], "running");
    // stop: TERM is ignored, so KILL after the grace period.
    let start = std::time::Instant::now();
    env.berth(&["stop", "-t", "1", &sleeper]).code(0);
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "stop did not wait"
    );
    let v = env.inspect(&sleeper);
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 137);
    env.berth(&["rm", &sleeper, &trapper]).code(0);
    env.finish();
}

#[test]
fn stop_of_a_process_that_exits_on_term_is_quick() {
    let env = Env::new("stp");
    let name = env.name("c");
    env.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "trap 'exit 0' TERM; touch /tmp/ready; while :; do sleep 0.1; done",
    ])
    .code(0);
    let pid = env.inspect(&name)["State"]["Pid"].as_i64().unwrap();
    eventually("trap set", Duration::from_secs(10), || {
        std::path::Path::new(&format!("/proc/{pid}/root/tmp/ready")).exists()
    });
    let start = std::time::Instant::now();
    env.berth(&["stop", "-t", "10", &name]).code(0);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "stop waited for the grace period"
    );
    assert_eq!(env.inspect(&name)["State"]["ExitCode"], 0);
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

#[test]
fn rm_force_kills_a_running_container() {
    let env = Env::new("rmf");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    let pid = env.inspect(&name)["State"]["Pid"].as_i64().unwrap() as i32;
    assert_eq!(env.berth(&["rm", "-f", &name]).ok(), format!("{name}\n"));
    assert!(!alive(pid));
    env.finish();
}

#[test]
fn random_id_is_12_hex_and_prefix_works() {
    let env = Env::new("rid");
    let out = env.berth(&["run", "-d", "--", "sleep", "1000"]);
    let id = out.ok().trim().to_owned();
    env.track(&id);
    assert!(
        id.len() == 12
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "id {id:?}"
    );
    let v = env.inspect(&id[..4]);
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Config"]["Hostname"], id.as_str());
    env.berth(&["rm", "-f", &id[..3]]).code(0);
    env.finish();
}

#[test]
fn inspect_json_fields() {
    let env = Env::new("ins");
    let name = env.name("c");
    env.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "-u",
        "1000:1001",
        "--hostname",
        "hostx",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--",
        "sleep",
        "1000",
    ])
    .code(0);
    let v = env.inspect(&name);
    let keys = |o: &Value| {
        let mut k: Vec<String> = o.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let sorted = |a: &[&str]| {
        let mut k: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&v),
        sorted(&[
            "Id",
            "Name",
            "Created",
            "Image",
            "Bundle",
            "Root",
            "State",
            "Config",
            "Processes",
            "Resources"
        ])
    );
    assert_eq!(
        keys(&v["State"]),
        sorted(&[
            "Status",
            "Running",
            "Paused",
            "OOMKilled",
            "Pid",
            "ExitCode",
            "StartedAt",
            "FinishedAt",
            "Error"
        ])
    );
    assert_eq!(
        keys(&v["Config"]),
        sorted(&["Args", "Env", "Cwd", "User", "Hostname", "Terminal"])
    );
    assert_eq!(
        keys(&v["Resources"]),
        sorted(&[
            "Memory",
            "MemorySwap",
            "CpuQuota",
            "CpuPeriod",
            "CpuShares",
            "CpusetCpus",
            "PidsLimit"
        ])
    );
    assert_eq!(v["Id"], name.as_str());
    assert_eq!(v["Name"], name.as_str());
    assert_time(&v["Created"], "Created");
    assert!(
        v["Root"].as_str().is_some_and(|r| r.starts_with('/')),
        "Root {}",
        v["Root"]
    );
    let s = &v["State"];
    assert_eq!(s["Status"], "running");
    assert_eq!(s["Running"], true);
    assert_eq!(s["Paused"], false);
    assert_eq!(s["OOMKilled"], false);
    assert!(s["Pid"].as_i64().is_some_and(|p| p > 1));
    assert!(s["ExitCode"].is_null());
    assert_time(&s["StartedAt"], "StartedAt");
    assert!(s["FinishedAt"].is_null());
    assert!(s["Error"].is_null());
    let c = &v["Config"];
    assert_eq!(c["Args"], serde_json::json!(["sleep", "1000"]));
    let envs: Vec<&str> = c["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(envs.contains(&"A=1"), "{envs:?}");
    assert!(envs.iter().any(|e| e.starts_with("PATH=")), "{envs:?}");
    assert_eq!(c["Cwd"], "/tmp");
    assert_eq!(c["User"], "1000:1001");
    assert_eq!(c["Hostname"], "hostx");
    assert_eq!(c["Terminal"], false);
    let r = &v["Resources"];
    assert_eq!(r["Memory"], 64 * 1024 * 1024);
    assert_eq!(r["CpuQuota"], 50_000);
    assert_eq!(r["CpuPeriod"], 100_000);
    assert_eq!(r["PidsLimit"], 50);
    assert!(r["CpusetCpus"].is_null());
    let p = v["Processes"].as_array().expect("Processes");
    assert_eq!(p[0]["ProcessId"], "init");
    assert_eq!(p[0]["Pid"], s["Pid"]);
    assert_eq!(p[0]["Status"], "running");

    env.berth(&["kill", &name]).code(0);
    let v = env.wait_status(&name, "exited", Duration::from_secs(10));
    let s = &v["State"];
    assert_eq!(s["Running"], false);
    assert_eq!(s["ExitCode"], 137);
    assert!(s["Pid"].is_null());
    assert_time(&s["FinishedAt"], "FinishedAt");
    assert!(s["FinishedAt"].as_str() >= s["StartedAt"].as_str());
    assert_eq!(v["Processes"][0]["ExitCode"], 137);
    // Unknown names: exit 1, a message, and the known ones still printed.
    let out = env.berth(&["inspect", "no-such-container"]);
    out.code(1);
    out.one_line_error(&["no-such-container", "no such container"]);
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

/// The leftover check is not vacuous: it sees a running container's shim, init,
/// cgroup, state dir and record.
#[test]
fn leftover_check_sees_a_running_container() {
    let env = Env::new("lft");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    let pid = env.inspect(&name)["State"]["Pid"].as_i64().unwrap() as i32;
    let left = env.leftovers();
    let has = |p: &str| left.iter().any(|l| l.starts_with(p));
    assert!(left.contains(&format!("process {pid}")), "{left:?}");
    assert!(left.len() >= 2 && has("process"), "no shim seen: {left:?}");
    assert!(has("cgroup"), "{left:?}");
    assert!(
        left.contains(&format!("state {}", env.root.join(&name).display())),
        "{left:?}"
    );
    assert!(
        left.contains(&format!(
            "state {}",
            env.data.join("containers").join(&name).display()
        )),
        "{left:?}"
    );
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

/// Real-time signals reach init by name (SIGRTMIN+3 is systemd's stop signal).
#[test]
fn realtime_signal_reaches_init() {
    let env = Env::new("lrt");
    let name = env.name("c");
    env.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "trap 'echo got-rt; exit 9' 37; echo ready; while :; do sleep 0.1; done",
    ])
    .code(0);
    eventually("trap set", Duration::from_secs(10), || {
        env.berth(&["logs", &name]).out().contains("ready")
    });
    env.berth(&["kill", "-s", "RTMIN+3", &name]).code(0);
    let v = env.wait_status(&name, "exited", Duration::from_secs(10));
    assert_eq!(v["State"]["ExitCode"], 9, "{v}");
    assert!(env.berth(&["logs", &name]).out().contains("got-rt"));
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

/// `run --stop-timeout 1`: `stop` without `-t` kills a process that ignores
/// SIGTERM after about a second, not Docker's default ten.
#[test]
fn stop_timeout_of_run_is_the_default_grace() {
    let env = Env::new("lst");
    let name = env.name("c");
    env.berth(&[
        "run",
        "-d",
        "--stop-timeout",
        "1",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.1; done",
    ])
    .code(0);
    eventually("trap set", Duration::from_secs(10), || {
        env.berth(&["logs", &name]).out().contains("ready")
    });
    let start = std::time::Instant::now();
    env.berth(&["stop", &name]).code(0);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(6), "stop took {took:?}");
    let v = env.inspect(&name);
    assert_eq!(v["State"]["ExitCode"], 137, "{v}");
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

/// SIGKILL ends a paused container even after another signal was sent to it
/// (the frozen task only dies once thawed).
#[test]
fn sigkill_ends_a_paused_container_after_other_signals() {
    let env = Env::new("lpk");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    env.berth(&["pause", &name]).code(0);
    env.berth(&["kill", "-s", "TERM", &name]).code(0);
    env.berth(&["kill", "-s", "KILL", &name]).code(0);
    let v = env.wait_status(&name, "exited", Duration::from_secs(10));
    assert_eq!(v["State"]["ExitCode"], 137, "{v}");
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

/// `run -d --rm`: the container removes itself when it exits, with no CLI
/// attached (its shim runs `berth rm`), whether it ends by itself, by `stop`, or
/// races an `rm -f` of its own.
#[test]
fn detached_rm_container_removes_itself_when_it_exits() {
    let env = Env::new("ldrm");
    let gone = |name: &str| {
        eventually(&format!("{name} removed"), Duration::from_secs(10), || {
            env.berth(&["inspect", name]).code == 1
        })
    };
    let quick = env.name("q");
    env.berth(&[
        "run", "-d", "--rm", "--name", &quick, "--", "sh", "-c", "exit 3",
    ])
    .code(0);
    gone(&quick);
    let stopped = env.name("s");
    env.berth(&[
        "run", "-d", "--rm", "--name", &stopped, "--", "sleep", "1000",
    ])
    .code(0);
    env.berth(&["stop", "-t", "1", &stopped]).code(0);
    gone(&stopped);
    for i in 0..5 {
        let raced = env.name(&format!("r{i}"));
        env.berth(&["run", "-d", "--rm", "--name", &raced, "--", "sleep", "1000"])
            .code(0);
        env.berth(&["rm", "-f", &raced]).code(0);
        gone(&raced);
    }
    // Without --rm it stays, exited, for inspection.
    let kept = env.name("k");
    env.berth(&["run", "-d", "--name", &kept, "--", "true"])
        .code(0);
    env.wait_status(&kept, "exited", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(env.inspect(&kept)["State"]["Status"], "exited");
    env.berth(&["rm", &kept]).code(0);
    env.finish();
}
