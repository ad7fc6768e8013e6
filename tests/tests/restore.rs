//! Restore: the client goes away (kill -9 of an attached `berth run`, or simply
//! the next stateless CLI invocation), the containers live on, and nothing is
//! lost: output (kept by the shim in the log), exits that happened while nobody
//! listened, events (journaled by the shim), the paused state; a shim that is
//! killed converges to exited 255 and leaves nothing behind.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_e2e::{alive, cgroups_of, eventually, processes, Env};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// The fields of `berth events --format json` (CLI.md).
const EVENT_FIELDS: [&str; 8] = [
    "Time",
    "Seq",
    "Id",
    "Type",
    "ProcessId",
    "Pid",
    "ExitCode",
    "OOMKilled",
];

/// Counts up every 0.1 s, one number a line.
const COUNTER: &str = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done";

/// `t` as RFC 3339 in UTC with nanoseconds, the form berth prints and parses.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).expect("after the epoch");
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Whether `s` is `YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ`.
fn is_rfc3339_nanos(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 30
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            29 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn run_detached(env: &Env, name: &str, script: &str) {
    let out = env.berth(&["run", "-d", "--name", name, "--", "sh", "-c", script]);
    assert_eq!(out.ok(), format!("{name}\n"));
}

fn shim_pid(env: &Env, name: &str) -> i32 {
    let p = env.root.join(name).join("shim.pid");
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: not a pid: {e}", p.display()))
}

fn init_pid(env: &Env, name: &str) -> i32 {
    let v = env.inspect(name);
    v["State"]["Pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("{name}: no pid: {v}")) as i32
}

/// The events the shim journaled for `name`, read from the file (no client).
fn journal(env: &Env, name: &str) -> Vec<Value> {
    std::fs::read_to_string(env.root.join(name).join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits, without any client, until the shim has journaled the exit of init.
fn wait_exit_journaled(env: &Env, name: &str, limit: Duration) {
    eventually(
        &format!("{name}: exit journaled (container not stuck)"),
        limit,
        || {
            journal(env, name)
                .iter()
                .any(|e| e["Type"] == "exit" && e["ProcessId"] == "init")
        },
    );
}

/// `berth events --format json ARGS...` parsed, one object a line.
fn events_json(env: &Env, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["events", "--format", "json"];
    a.extend_from_slice(args);
    let text = env.berth_timeout(&a, Duration::from_secs(30)).ok();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn of<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["Id"] == name).collect()
}

fn lines_u64(text: &str) -> Vec<u64> {
    text.lines()
        .map(|l| {
            l.parse()
                .unwrap_or_else(|e| panic!("{l:?}: not a number: {e}"))
        })
        .collect()
}

/// The bytes of `yes LINE | head -c N`.
fn yes_bytes(line: &str, n: usize) -> Vec<u8> {
    let unit = format!("{line}\n").into_bytes();
    unit.iter().copied().cycle().take(n).collect()
}

/// Fails with the lengths and the first differing offset, not 10 MB of text.
#[track_caller]
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        let ctx = |v: &[u8]| {
            String::from_utf8_lossy(&v[at.min(v.len())..(at + 40).min(v.len())]).into_owned()
        };
        panic!(
            "{what}: got {} bytes, want {}; first difference at {at}: got {:?}, want {:?}",
            got.len(),
            want.len(),
            ctx(got),
            ctx(want)
        );
    }
}

/// The counts in `berth logs`' stderr notices about dropped output.
fn dropped_notices(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter(|l| l.contains("dropped"))
        .map(|l| {
            l.split_whitespace()
                .find_map(|w| w.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("notice without a count: {l:?}"))
        })
        .collect()
}

#[test]
fn kill_9_of_attached_run_leaves_the_container_running_and_reachable() {
    let env = Env::new("rk");
    let name = env.name("c");
    let mut child = env
        .cmd(&["run", "--name", &name, "--", "sh", "-c", COUNTER])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn berth run");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut last = 0;
    for want in 1..=3u64 {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read from berth run");
        assert_eq!(line.trim().parse::<u64>().ok(), Some(want), "line {line:?}");
        last = want;
    }
    child.kill().expect("SIGKILL berth run");
    child.wait().unwrap();
    drop(reader);

    // Still running, seen by fresh clients.
    let ps = env.berth(&["ps", "--format", "json"]).ok();
    let row: Value = ps
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["Name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not in ps after kill -9 of its client:\n{ps}"));
    assert_eq!(row["Status"], "running", "{row}");
    let v = env.inspect(&name);
    assert_eq!(v["State"]["Status"], "running", "{v}");

    // Output produced after the kill is kept, none is lost: 1, 2, 3, ... in order.
    eventually(
        "the counter goes on in the log after the client died",
        Duration::from_secs(15),
        || {
            let text = env.berth(&["logs", &name]).ok();
            lines_u64(&text).last().copied().unwrap_or(0) >= last + 10
        },
    );
    let text = env.berth(&["logs", &name]).ok();
    let got = lines_u64(&text);
    let want: Vec<u64> = (1..=got.len() as u64).collect();
    assert_eq!(got, want, "the log is not the contiguous count");

    // exec into it works.
    let out = env.berth(&[
        "exec",
        &name,
        "--",
        "sh",
        "-c",
        "echo in-$$; cat /proc/1/cmdline",
    ]);
    let text = out.ok();
    assert!(text.starts_with("in-"), "{text}");
    assert!(text.contains("sh"), "{text}");

    // kill gives the real exit code.
    env.berth(&["kill", &name]).code(0);
    let v = env.wait_status(&name, "exited", Duration::from_secs(15));
    assert_eq!(v["State"]["ExitCode"], 137, "{v}");
    assert!(v["State"]["FinishedAt"].is_string(), "{v}");
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

#[test]
fn exit_while_no_client_listens_is_reported_with_code_time_and_events() {
    let env = Env::new("rx");
    let name = env.name("c");
    let start = rfc3339(SystemTime::now());
    run_detached(&env, &name, "sleep 0.5; exit 7");
    // No client at all while it exits.
    std::thread::sleep(Duration::from_millis(2000));
    let v = env.inspect(&name);
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["Running"], false, "{v}");
    assert_eq!(v["State"]["ExitCode"], 7, "{v}");
    let started = v["State"]["StartedAt"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    let finished = v["State"]["FinishedAt"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(is_rfc3339_nanos(finished), "FinishedAt {finished:?}");
    assert!(
        finished > started,
        "FinishedAt {finished} not after StartedAt {started}"
    );
    assert!(
        finished > start.as_str(),
        "FinishedAt {finished} before the test began {start}"
    );
    // A second fresh client sees the same.
    let v2 = env.inspect(&name);
    assert_eq!(v2["State"]["ExitCode"], 7, "{v2}");
    assert_eq!(v2["State"]["FinishedAt"], v["State"]["FinishedAt"], "{v2}");

    let until = rfc3339(SystemTime::now());
    let all = events_json(&env, &["--since", &start, "--until", &until]);
    let mine = of(&all, &name);
    let seqs: Vec<u64> = mine.iter().map(|e| e["Seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "events not in Seq order: {mine:?}"
    );
    let kinds: Vec<&str> = mine
        .iter()
        .map(|e| e["Type"].as_str().unwrap())
        .filter(|k| matches!(*k, "create" | "start" | "exit"))
        .collect();
    assert_eq!(kinds, ["create", "start", "exit"], "{mine:?}");
    let exit = mine.iter().find(|e| e["Type"] == "exit").unwrap();
    assert_eq!(exit["ExitCode"], 7, "{exit}");
    let exit_time = exit["Time"].as_str().unwrap_or_default();
    assert!(
        exit_time > started,
        "exit event at {exit_time}, before StartedAt {started}"
    );

    env.berth(&["rm", &name]).code(0);
    env.finish();
}

/// Runs a container, kills its shim with SIGKILL, and checks what a fresh
/// `inspect` reports. Returns the container's name and init pid.
fn kill_the_shim(env: &Env) -> (String, i32) {
    let name = env.name("c");
    run_detached(env, &name, "sleep 1000 & sleep 1000");
    let init = init_pid(env, &name);
    let shim = shim_pid(env, &name);
    assert!(alive(shim), "shim {shim} not running");
    kill(Pid::from_raw(shim), Signal::SIGKILL).unwrap();
    eventually("the shim is gone", Duration::from_secs(5), || !alive(shim));
    let v = env.inspect(&name);
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["Running"], false, "{v}");
    assert_eq!(v["State"]["ExitCode"], 255, "{v}");
    assert!(v["State"]["FinishedAt"].is_string(), "{v}");
    let err = v["State"]["Error"].as_str().unwrap_or_default();
    assert!(err.contains("shim"), "Error should name the shim: {v}");
    (name, init)
}

fn container_processes(env: &Env, name: &str) -> Vec<i32> {
    processes(&env.base, &[name.to_owned()])
        .into_iter()
        .filter(|p| alive(*p))
        .collect()
}

#[test]
fn killed_shim_converges_to_exited_255_and_rm_leaves_nothing() {
    let env = Env::new("rs");
    let (name, _init) = kill_the_shim(&env);
    // Stable across clients.
    let v = env.inspect(&name);
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["ExitCode"], 255, "{v}");
    let ps = env.berth(&["ps", "-a", "--format", "json"]).ok();
    assert!(
        ps.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .any(|r| r["Name"] == name.as_str() && r["Status"] == "exited" && r["ExitCode"] == 255),
        "{ps}"
    );
    env.berth(&["rm", &name]).code(0);
    let cg = std::path::Path::new("/sys/fs/cgroup/pids/berth").join(&name);
    assert!(!cg.exists(), "{} still there after rm", cg.display());
    assert_eq!(
        cgroups_of(std::slice::from_ref(&name)),
        Vec::<std::path::PathBuf>::new()
    );
    eventually(
        "no process of the container left after rm",
        Duration::from_secs(5),
        || container_processes(&env, &name).is_empty(),
    );
    env.finish();
}

/// Issue 5: "its shim is gone: the container's processes are ended, state
/// converges to exited with code 255". Reporting `exited` while its processes
/// still run (in its cgroup, with libcontainer state) is not converged.
#[test]
fn killed_shim_container_processes_end_when_reported_exited() {
    let env = Env::new("rq");
    let (name, init) = kill_the_shim(&env);
    eventually(
        "the container's processes end once it is reported exited",
        Duration::from_secs(5),
        || !alive(init) && container_processes(&env, &name).is_empty(),
    );
    assert!(
        !env.root.join("runtime").join(&name).exists(),
        "libcontainer state kept for an exited container"
    );
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

#[test]
fn ten_mb_printed_with_no_client_neither_blocks_nor_loses_a_byte() {
    let env = Env::new("rt");
    let name = env.name("c");
    const N: usize = 10_000_000;
    run_detached(&env, &name, &format!("yes 0123456789abcdef | head -c {N}"));
    wait_exit_journaled(&env, &name, Duration::from_secs(60));
    let v = env.inspect(&name);
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["ExitCode"], 0, "{v}");
    let out = env.berth(&["logs", &name]);
    out.code(0);
    // The container's own stderr may say `yes: ... Broken pipe` (see
    // `container_processes_do_not_inherit_ignored_sigpipe`); no dropped notice.
    assert!(dropped_notices(&out.err()).is_empty(), "{}", out.err());
    assert_same_bytes(&out.stdout, &yes_bytes("0123456789abcdef", N), "berth logs");
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

/// Prints 5 MB of distinct lines (`1000000\n` .. `1624999\n`) under a 1 MiB limit.
fn log_limit_run(env: &Env, name: &str) -> (Out5, Vec<u8>) {
    let out = env.berth(&[
        "--log-max",
        "1m",
        "run",
        "-d",
        "--name",
        name,
        "--",
        "sh",
        "-c",
        "seq 1000000 1624999",
    ]);
    assert_eq!(out.ok(), format!("{name}\n"));
    wait_exit_journaled(env, name, Duration::from_secs(60));
    let v = env.inspect(name);
    assert_eq!(v["State"]["ExitCode"], 0, "{v}");
    let all: Vec<u8> = (1_000_000..1_625_000u32)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    assert_eq!(all.len(), 5_000_000);
    let out = env.berth(&["logs", name]);
    out.code(0);
    (
        Out5 {
            stdout: out.stdout.clone(),
            stderr: out.err(),
        },
        all,
    )
}

struct Out5 {
    stdout: Vec<u8>,
    stderr: String,
}

/// Found with the 10 MB test: `yes | head` in a container reports EPIPE, since
/// SIGPIPE is ignored in the container's processes (runc and Docker start them
/// with default dispositions).
#[test]
fn container_processes_do_not_inherit_ignored_sigpipe() {
    let env = Env::new("rsp");
    let name = env.name("c");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--",
        "grep",
        "SigIgn",
        "/proc/self/status",
    ]);
    assert_eq!(out.ok(), "SigIgn:\t0000000000000000\n", "init");
    let name = env.name("e");
    run_detached(&env, &name, "sleep 1000");
    let out = env.berth(&["exec", &name, "--", "grep", "SigIgn", "/proc/self/status"]);
    let text = out.ok();
    env.berth(&["rm", "-f", &name]).code(0);
    assert_eq!(text, "SigIgn:\t0000000000000000\n", "exec");
    let name = env.name("p");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "yes | head -c 4",
    ]);
    assert_eq!(out.ok(), "y\ny\n");
    assert_eq!(
        out.err(),
        "",
        "a pipeline's writer should die of SIGPIPE quietly"
    );
    env.finish();
}

#[test]
fn log_limit_keeps_the_newest_bytes_and_counts_the_dropped() {
    let env = Env::new("rl");
    let name = env.name("c");
    let (out, all) = log_limit_run(&env, &name);
    let kept = &out.stdout;
    assert!(!kept.is_empty(), "nothing kept");
    assert!(
        kept.len() < 1 << 20,
        "kept {} bytes, over the 1 MiB limit",
        kept.len()
    );
    assert!(kept.len() > 64 << 10, "kept only {} bytes", kept.len());
    assert_same_bytes(
        kept,
        &all[all.len() - kept.len()..],
        "kept bytes are the newest",
    );
    let notices = dropped_notices(&out.stderr);
    assert!(
        !notices.is_empty(),
        "no dropped notice on stderr: {:?}",
        out.stderr
    );
    for l in out.stderr.lines() {
        assert!(l.starts_with("berth: "), "stderr line {l:?}");
    }
    let dropped: u64 = notices.iter().sum();
    assert_eq!(
        dropped + kept.len() as u64,
        all.len() as u64,
        "kept + dropped (sum of the notices {notices:?}) != total"
    );
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

/// CLI.md: "a record says how many" — the notice a user reads should be the
/// number of bytes dropped, not a share of it.
#[test]
fn log_limit_notice_states_the_total_dropped() {
    let env = Env::new("rn");
    let name = env.name("c");
    let (out, all) = log_limit_run(&env, &name);
    let notices = dropped_notices(&out.stderr);
    let want = (all.len() - out.stdout.len()) as u64;
    assert_eq!(
        notices,
        [want],
        "want one notice saying {want} bytes were dropped; stderr: {:?}",
        out.stderr
    );
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

#[test]
fn logs_tail_timestamps_and_follow() {
    let env = Env::new("rg");
    let name = env.name("c");
    run_detached(
        &env,
        &name,
        // The streams are read apart; the pause orders them in the log.
        "echo oops >&2; sleep 0.3; for i in 1 2 3 4 5 6; do echo line$i; done",
    );
    wait_exit_journaled(&env, &name, Duration::from_secs(15));
    let out = env.berth(&["logs", &name]);
    assert_eq!(out.ok(), "line1\nline2\nline3\nline4\nline5\nline6\n");
    assert_eq!(out.err(), "oops\n", "stderr goes to stderr");
    let out = env.berth(&["logs", "--tail", "3", &name]);
    assert_eq!(out.ok(), "line4\nline5\nline6\n");
    assert_eq!(out.err(), "");
    let out = env.berth(&["logs", "--tail", "7", &name]);
    assert_eq!(out.ok(), "line1\nline2\nline3\nline4\nline5\nline6\n");
    assert_eq!(out.err(), "oops\n", "--tail counts stderr's lines too");
    let out = env.berth(&["logs", "--timestamps", &name]);
    let text = out.ok();
    let before = rfc3339(SystemTime::now());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    for (i, l) in lines.iter().enumerate() {
        let (ts, rest) = l.split_once(' ').unwrap_or_else(|| panic!("{l:?}"));
        assert!(is_rfc3339_nanos(ts), "timestamp {ts:?} in {l:?}");
        assert!(ts < before.as_str(), "{ts} in the future");
        assert_eq!(rest, format!("line{}", i + 1));
    }
    let sorted = {
        let mut s = lines.clone();
        s.sort();
        s
    };
    assert_eq!(sorted, lines, "timestamps not in order");
    // --since after everything: nothing.
    let out = env.berth(&["logs", "--since", &before, &name]);
    assert_eq!(out.ok(), "");
    env.berth(&["rm", &name]).code(0);

    // -f follows until the container exits, then exits 0.
    let name = env.name("f");
    run_detached(
        &env,
        &name,
        "for i in 1 2 3 4; do echo f$i; sleep 0.4; done; exit 3",
    );
    let t = Instant::now();
    let out = env.berth_timeout(&["logs", "-f", &name], Duration::from_secs(30));
    let took = t.elapsed();
    assert_eq!(out.ok(), "f1\nf2\nf3\nf4\n");
    assert!(
        took >= Duration::from_millis(900),
        "logs -f returned after {took:?}: it did not follow"
    );
    let v = env.inspect(&name);
    assert_eq!(v["State"]["ExitCode"], 3, "{v}");
    // -f on an exited container prints what there is and returns.
    let out = env.berth_timeout(
        &["logs", "-f", "--tail", "1", &name],
        Duration::from_secs(10),
    );
    assert_eq!(out.ok(), "f4\n");
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

/// A `berth events --format json ARGS...` running in the background, its lines
/// read as they come.
struct LiveEvents {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

impl LiveEvents {
    fn start(env: &Env, args: &[&str]) -> LiveEvents {
        let mut a = vec!["events", "--format", "json"];
        a.extend_from_slice(args);
        let mut child = env
            .cmd(&a)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn berth events");
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let reader = std::thread::spawn(move || loop {
            let mut l = String::new();
            match out.read_line(&mut l) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            }
        });
        // Let it begin following before anything happens.
        std::thread::sleep(Duration::from_millis(500));
        LiveEvents {
            child,
            lines,
            reader,
        }
    }

    /// The events that came until one satisfied `last` (10 s at most); stops it.
    fn until(mut self, last: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
                let done = last(&v);
                got.push(v);
                if done {
                    break;
                }
            }
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        self.child.wait().unwrap();
        self.reader.join().unwrap();
        got
    }
}

#[test]
fn events_json_fields_seq_and_filter() {
    let env = Env::new("re");
    let a = env.name("a");
    let b = env.name("b");
    let start = rfc3339(SystemTime::now());
    run_detached(&env, &a, "sleep 1000");
    run_detached(&env, &b, "exit 4");
    env.berth(&["exec", &a, "--", "true"]).code(0);
    env.berth(&["pause", &a]).code(0);
    env.berth(&["resume", &a]).code(0);
    wait_exit_journaled(&env, &b, Duration::from_secs(15));

    // Live: only what happens after it started, as it happens.
    let live = LiveEvents::start(&env, &["--filter", &format!("container={a}")]);
    env.berth(&["kill", &a]).code(0);
    let got = live.until(|v| v["Type"] == "exit" && v["ProcessId"] == "init");
    assert!(
        got.iter().all(|e| e["Id"] == a.as_str()),
        "--filter container={a} let others through: {got:?}"
    );
    assert!(
        !got.iter()
            .any(|e| matches!(e["Type"].as_str(), Some("create" | "start"))),
        "live events replayed the past: {got:?}"
    );
    let exit = got
        .iter()
        .find(|e| e["Type"] == "exit")
        .unwrap_or_else(|| panic!("no live exit event: {got:?}"));
    assert_eq!(exit["ExitCode"], 137, "{exit}");

    let until = rfc3339(SystemTime::now());
    let all = events_json(&env, &["--since", &start, "--until", &until]);
    for e in &all {
        let o = e.as_object().unwrap_or_else(|| panic!("{e}"));
        for k in ["Time", "Seq", "Id", "Type"] {
            assert!(o.contains_key(k), "{k} missing: {e}");
        }
        for k in o.keys() {
            assert!(EVENT_FIELDS.contains(&k.as_str()), "unknown field {k}: {e}");
        }
        assert!(is_rfc3339_nanos(e["Time"].as_str().unwrap()), "{e}");
        assert!(
            matches!(
                e["Type"].as_str().unwrap(),
                "create"
                    | "start"
                    | "exec-added"
                    | "exec-started"
                    | "exit"
                    | "oom"
                    | "paused"
                    | "resumed"
                    | "checkpointed"
                    | "restore"
                    | "delete"
            ),
            "{e}"
        );
    }
    for (n, want) in [
        (
            &a,
            &[
                "create",
                "start",
                "exec-added",
                "exec-started",
                "exit",
                "paused",
                "resumed",
                "exit",
            ][..],
        ),
        (&b, &["create", "start", "exit"][..]),
    ] {
        let mine = of(&all, n);
        let seqs: Vec<u64> = mine.iter().map(|e| e["Seq"].as_u64().unwrap()).collect();
        let one_by_one: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, one_by_one, "{n}: Seq not 1, 2, 3, ...: {mine:?}");
        let kinds: Vec<&str> = mine
            .iter()
            .map(|e| e["Type"].as_str().unwrap())
            .filter(|k| *k != "restore")
            .collect();
        assert_eq!(kinds, want, "{n}: {mine:?}");
        let start_ev = mine.iter().find(|e| e["Type"] == "start").unwrap();
        assert!(
            start_ev["Pid"].as_u64().is_some_and(|p| p > 0),
            "{start_ev}"
        );
    }
    let b_exit = of(&all, &b)
        .into_iter()
        .find(|e| e["Type"] == "exit")
        .unwrap();
    assert_eq!(b_exit["ExitCode"], 4, "{b_exit}");
    let exec_exit = of(&all, &a)
        .into_iter()
        .find(|e| e["Type"] == "exit" && e["ProcessId"] != "init")
        .unwrap_or_else(|| panic!("no exit event of the exec"));
    assert_eq!(exec_exit["ExitCode"], 0, "{exec_exit}");

    // --filter on the past too.
    let only_b = events_json(
        &env,
        &[
            "--since",
            &start,
            "--until",
            &until,
            "--filter",
            &format!("container={b}"),
        ],
    );
    assert!(!only_b.is_empty());
    assert!(only_b.iter().all(|e| e["Id"] == b.as_str()), "{only_b:?}");
    assert_eq!(only_b.len(), of(&all, &b).len());

    env.berth(&["rm", &a, &b]).code(0);
    env.finish();
}

/// `berth events` sees a container that lived for milliseconds as it happens, and
/// still shows its history (`--since`) once it is removed.
#[test]
fn events_show_short_lived_and_removed_containers() {
    let env = Env::new("rs");
    let quick = env.name("q");
    let start = rfc3339(SystemTime::now());
    let live = LiveEvents::start(&env, &[]);
    env.berth(&["run", "--rm", "--name", &quick, "--", "true"])
        .code(0);
    let got = live.until(|v| v["Id"] == quick.as_str() && v["Type"] == "delete");
    let kinds = |events: &[Value]| -> Vec<String> {
        of(events, &quick)
            .iter()
            .map(|e| e["Type"].as_str().unwrap().to_owned())
            .collect()
    };
    let want = ["create", "start", "exit", "delete"];
    assert_eq!(kinds(&got), want, "live: {got:?}");
    env.berth(&["inspect", &quick]).code(1);
    let until = rfc3339(SystemTime::now());
    let past = events_json(&env, &["--since", &start, "--until", &until]);
    assert_eq!(kinds(&past), want, "--since after rm: {past:?}");
    env.finish();
}

/// CLI.md lists the fields of an event object, and "a figure that is unknown or
/// does not exist is `null`" (as `ps --format json` does with `ExitCode`).
#[test]
fn events_json_objects_carry_every_field() {
    let env = Env::new("rf");
    let name = env.name("c");
    let start = rfc3339(SystemTime::now());
    run_detached(&env, &name, "exit 2");
    wait_exit_journaled(&env, &name, Duration::from_secs(15));
    let until = rfc3339(SystemTime::now());
    let all = events_json(&env, &["--since", &start, "--until", &until]);
    let mine = of(&all, &name);
    assert!(mine.len() >= 3, "{mine:?}");
    for e in mine {
        let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = EVENT_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "{e}");
    }
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

#[test]
fn paused_stays_paused_across_fresh_clients() {
    let env = Env::new("rp");
    let name = env.name("c");
    run_detached(&env, &name, "sleep 1000");
    env.berth(&["pause", &name]).code(0);
    let freezer = std::path::Path::new("/sys/fs/cgroup/freezer/berth")
        .join(&name)
        .join("freezer.state");
    for _ in 0..2 {
        let v = env.inspect(&name);
        assert_eq!(v["State"]["Status"], "paused", "{v}");
        assert_eq!(v["State"]["Paused"], true, "{v}");
        assert_eq!(v["State"]["Running"], true, "{v}");
        if freezer.exists() {
            assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
        }
    }
    let ps = env.berth(&["ps", "--format", "json"]).ok();
    assert!(
        ps.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .any(|v| v["Name"] == name.as_str() && v["Status"] == "paused"),
        "{ps}"
    );
    env.berth(&["resume", &name]).code(0);
    for _ in 0..2 {
        let v = env.inspect(&name);
        assert_eq!(v["State"]["Status"], "running", "{v}");
        assert_eq!(v["State"]["Paused"], false, "{v}");
    }
    if freezer.exists() {
        assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "THAWED");
    }
    env.berth(&["exec", &name, "--", "true"]).code(0);
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

fn make_many(env: &Env, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let name = env.name(&format!("m{i}"));
            run_detached(env, &name, "sleep 1000");
            name
        })
        .collect()
}

fn ps_running(env: &Env, limit: Duration) -> (Vec<String>, Duration) {
    let t = Instant::now();
    let out = env.berth_timeout(&["ps", "--format", "json"], limit);
    let took = t.elapsed();
    let names = out
        .ok()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["Status"] == "running")
        .map(|v| v["Name"].as_str().unwrap().to_owned())
        .collect();
    (names, took)
}

#[test]
fn ps_restores_20_containers() {
    let env = Env::new("rm");
    let names = make_many(&env, 20);
    for _ in 0..3 {
        let (mut got, took) = ps_running(&env, Duration::from_secs(60));
        got.sort();
        let mut want = names.clone();
        want.sort();
        assert_eq!(got, want);
        eprintln!("berth ps of 20 running containers: {took:?}");
    }
    let mut args = vec!["rm", "-f"];
    args.extend(names.iter().map(String::as_str));
    env.berth(&args).code(0);
    env.finish();
}

/// SIGCONTs the shim however the test ends.
struct Cont(Pid);
impl Drop for Cont {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

#[test]
fn one_stopped_shim_does_not_block_ps_for_the_others() {
    let env = Env::new("rz");
    let names = make_many(&env, 20);
    let stopped = &names[7];
    let shim = Pid::from_raw(shim_pid(&env, stopped));
    kill(shim, Signal::SIGSTOP).unwrap();
    let cont = Cont(shim);
    let (got, took) = ps_running(&env, Duration::from_secs(120));
    eprintln!("berth ps of 20 containers, one shim stopped: {took:?}");
    for n in names.iter().filter(|n| *n != stopped) {
        assert!(got.contains(n), "{n} missing from ps: {got:?}");
    }
    assert!(
        took < Duration::from_secs(3),
        "one stopped shim blocked `berth ps` for {took:?}"
    );
    drop(cont);
    let mut args = vec!["rm", "-f"];
    args.extend(names.iter().map(String::as_str));
    env.berth(&args).code(0);
    env.finish();
}

/// A shim killed while an exec runs: the exec reads exited 255 (unknown) like
/// init, never running forever; an attached exec exits 255, not 125.
#[test]
fn execs_of_a_lost_shim_read_exited_255() {
    let env = Env::new("rle");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    env.berth(&[
        "exec",
        "-d",
        "--process-id",
        "bg",
        &name,
        "--",
        "sleep",
        "1000",
    ])
    .code(0);
    let shim = shim_pid(&env, &name);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let _ = kill(Pid::from_raw(shim), Signal::SIGKILL);
    });
    let out = env.berth(&["exec", &name, "--", "sh", "-c", "echo up; sleep 100"]);
    killer.join().unwrap();
    out.code(255);
    assert_eq!(out.out(), "up\n");
    let v = env.inspect(&name);
    assert_eq!(v["State"]["ExitCode"], 255, "{v}");
    for p in v["Processes"].as_array().unwrap() {
        assert_eq!(p["Status"], "exited", "{p}");
        assert_eq!(p["ExitCode"], 255, "{p}");
    }
    env.berth(&["rm", &name]).code(0);
    env.finish();
}
