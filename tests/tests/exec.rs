//! `berth exec` and `berth kill --process-id` on running containers: what an exec
//! sees inside, exit codes, errors that leave nothing running, stdio, signals to one
//! process and to all, and a shim that stays lean over many execs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{alive, eventually, Env};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `berth run -d --name NAME EXTRA... -- sleep 1000`, returning init's host pid.
fn start(env: &Env, name: &str, extra: &[&str]) -> i32 {
    start_cmd(env, name, extra, &["sleep", "1000"])
}

fn start_cmd(env: &Env, name: &str, extra: &[&str], cmd: &[&str]) -> i32 {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(cmd);
    env.berth(&args).code(0);
    let pid = env.inspect(name)["State"]["Pid"]
        .as_i64()
        .expect("running container has a Pid") as i32;
    assert!(alive(pid), "init {pid} of {name} not alive");
    pid
}

/// Host pids in the container's cgroup (the pids controller; cgroup v1 here).
fn cgroup_procs(name: &str) -> Vec<i32> {
    let candidates = [
        format!("/sys/fs/cgroup/pids/berth/{name}/cgroup.procs"),
        format!("/sys/fs/cgroup/berth/{name}/cgroup.procs"),
    ];
    let path = candidates
        .iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("no cgroup.procs for {name}: tried {candidates:?}"));
    let mut v: Vec<i32> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    v.sort();
    v
}

/// Asserts that only init is left in the container's cgroup (allowing a moment for
/// a process that is on its way out).
#[track_caller]
fn only_init_left(name: &str, init: i32, what: &str) {
    let start = Instant::now();
    loop {
        let procs = cgroup_procs(name);
        if procs == [init] {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what}: cgroup of {name} holds {procs:?}, want only init {init}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The host pid of the process in the container's cgroup whose command line is
/// `args`, once it runs. (Found from the cgroup, not `inspect`: see
/// `inspect_lists_exec_processes`.)
#[track_caller]
fn exec_pid(name: &str, args: &[&str]) -> i32 {
    let want: String = args.iter().map(|a| format!("{a}\0")).collect();
    let mut pid = 0;
    eventually(
        &format!("{args:?} running in {name}"),
        Duration::from_secs(10),
        || {
            let found = cgroup_procs(name).into_iter().find(|p| {
                std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == want.as_bytes())
            });
            if let Some(p) = found {
                pid = p;
            }
            found.is_some()
        },
    );
    pid
}

/// An attached `berth exec` running in the background; its first stdout line is read
/// (the command should print one when it is ready).
fn spawn_attached(env: &Env, args: &[&str]) -> (Child, String) {
    let mut child = env
        .cmd(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth exec");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    (child, line)
}

/// Waits for a child with a limit; its exit code.
#[track_caller]
fn wait_child(child: &mut Child, limit: Duration, what: &str) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exec_sees_the_containers_hostname_pid_namespace_mounts_env_and_cgroup() {
    let env = Env::new("xns");
    let name = env.name("c");
    let init = start_cmd(
        &env,
        &name,
        &[
            "--hostname",
            "exec-box",
            "-e",
            "INIT_VAR=from-init",
            "-e",
            "SHARED=init",
            "-w",
            "/tmp",
        ],
        &[
            "sh",
            "-c",
            "echo made-by-init > /tmp/init-file; exec sleep 1000",
        ],
    );
    eventually("init wrote /tmp/init-file", Duration::from_secs(10), || {
        Path::new(&format!("/proc/{init}/root/tmp/init-file")).exists()
    });

    let x = |args: &[&str]| {
        let mut a = vec!["exec", name.as_str(), "--"];
        a.extend_from_slice(args);
        env.berth(&a).ok()
    };
    assert_eq!(x(&["hostname"]), "exec-box\n");
    // Its own pid in the container's namespace is not 1, and pid 1 is init.
    let pid = x(&["sh", "-c", "echo $$"]);
    let pid: i32 = pid
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("echo $$: {pid:?}"));
    assert!(pid > 1, "exec's pid in the container is {pid}");
    // Init's shell exec'd sleep.
    assert_eq!(x(&["cat", "/proc/1/cmdline"]), "sleep\u{0}1000\u{0}");
    let ps = x(&["ps", "-eo", "pid=,args="]);
    let rows: Vec<(i32, String)> = ps
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let (p, a) = l.split_once(' ')?;
            Some((p.parse().ok()?, a.trim().to_owned()))
        })
        .collect();
    assert!(
        rows.contains(&(1, "sleep 1000".to_owned())),
        "ps in the container:\n{ps}"
    );
    // No host process is visible: every pid seen is small and belongs to the
    // container (init, and the exec's own ps).
    assert!(rows.len() <= 3, "ps sees more than the container:\n{ps}");
    // Mounts: the file init wrote in its /tmp.
    assert_eq!(x(&["cat", "/tmp/init-file"]), "made-by-init\n");
    // Env: init's, with exec's -e added and overriding.
    assert_eq!(
        x(&["sh", "-c", "echo \"$INIT_VAR|$SHARED|$PATH\""]),
        format!("from-init|init|{DEFAULT_PATH}\n")
    );
    let out = env
        .berth(&[
            "exec",
            "-e",
            "NEW=added",
            "-e",
            "SHARED=exec",
            &name,
            "--",
            "sh",
            "-c",
            "echo \"$INIT_VAR|$SHARED|$NEW\"; env | grep -c '^SHARED='",
        ])
        .ok();
    assert_eq!(out, "from-init|exec|added\n1\n");
    // cwd: init's -w by default; -w to an existing dir.
    assert_eq!(x(&["pwd"]), "/tmp\n");
    assert_eq!(
        env.berth(&["exec", "-w", "/proc", &name, "--", "pwd"]).ok(),
        "/proc\n"
    );

    // From outside: a detached exec is in every namespace of init and in its cgroup.
    env.berth(&[
        "exec",
        "-d",
        "--process-id",
        "nsx",
        &name,
        "--",
        "sleep",
        "1001",
    ])
    .code(0);
    let xpid = exec_pid(&name, &["sleep", "1001"]);
    assert_ne!(xpid, init);
    for ns in ["pid", "mnt", "uts", "ipc", "net", "cgroup"] {
        let a = std::fs::read_link(format!("/proc/{init}/ns/{ns}")).unwrap();
        let b = std::fs::read_link(format!("/proc/{xpid}/ns/{ns}")).unwrap();
        assert_eq!(a, b, "exec is not in init's {ns} namespace");
    }
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap(),
        std::fs::read_to_string(format!("/proc/{xpid}/cgroup")).unwrap(),
        "exec is not in init's cgroups"
    );
    assert!(cgroup_procs(&name).contains(&xpid));
    assert_eq!(
        std::fs::read_link(format!("/proc/{xpid}/root")).unwrap(),
        std::fs::read_link(format!("/proc/{init}/root")).unwrap()
    );

    env.berth(&["rm", "-f", &name]).code(0);
    assert!(!alive(xpid), "exec {xpid} survived rm -f");
    env.finish();
}

#[test]
fn exit_codes_pass_through_and_killed_exec_gives_137() {
    let env = Env::new("xec");
    let name = env.name("c");
    let init = start(&env, &name, &[]);
    env.berth(&["exec", &name, "--", "true"]).code(0);
    env.berth(&["exec", &name, "--", "false"]).code(1);
    let out = env.berth(&[
        "exec",
        &name,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    out.code(3);
    assert_eq!(out.out(), "out\n");
    assert_eq!(out.err(), "err\n");
    // An exec killed by a signal: 128+N.
    env.berth(&["exec", &name, "--", "sh", "-c", "kill -TERM $$"])
        .code(143);

    let (mut child, line) = spawn_attached(
        &env,
        &[
            "exec",
            "--process-id",
            "victim",
            &name,
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 1001",
        ],
    );
    assert_eq!(line, "ready\n");
    let xpid = exec_pid(&name, &["sleep", "1001"]);
    env.berth(&["kill", "--process-id", "victim", "-s", "KILL", &name])
        .code(0);
    assert_eq!(
        wait_child(&mut child, Duration::from_secs(10), "killed exec"),
        Some(137)
    );
    assert!(!alive(xpid));
    // Killing one exec leaves init running.
    assert_eq!(env.inspect(&name)["State"]["Status"], "running");
    assert!(alive(init));
    only_init_left(&name, init, "after the killed exec");

    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn killing_one_exec_leaves_init_and_other_execs_running() {
    let env = Env::new("xk1");
    let name = env.name("c");
    let init = start(&env, &name, &[]);
    for (p, secs) in [("one", "1001"), ("two", "1002")] {
        env.berth(&["exec", "-d", "--process-id", p, &name, "--", "sleep", secs])
            .code(0);
    }
    let one = exec_pid(&name, &["sleep", "1001"]);
    let two = exec_pid(&name, &["sleep", "1002"]);
    // Default signal of kill: KILL.
    env.berth(&["kill", "--process-id", "one", &name]).code(0);
    eventually("exec one gone", Duration::from_secs(10), || !alive(one));
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(two), "killing exec one also ended exec two");
    assert!(alive(init), "killing exec one ended init");
    assert_eq!(env.inspect(&name)["State"]["Status"], "running");
    let v = env.inspect(&name);
    let p1 = v["Processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["ProcessId"] == "one")
        .cloned();
    if let Some(p1) = p1 {
        assert_eq!(p1["Status"], "exited", "{p1}");
        assert_eq!(p1["ExitCode"], 137, "{p1}");
    }
    // TERM to the other: sleep is not pid 1, so the default action ends it.
    env.berth(&["kill", "-s", "TERM", "--process-id", "two", &name])
        .code(0);
    eventually("exec two gone", Duration::from_secs(10), || !alive(two));
    assert!(alive(init));
    only_init_left(&name, init, "after both execs were killed");
    // Kill of an unknown process id: a clear error.
    let out = env.berth(&["kill", "--process-id", "nosuch", &name]);
    out.code(1);
    out.one_line_error(&["nosuch"]);

    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn exec_workdir_missing_is_an_error_and_is_not_created() {
    let env = Env::new("xwd");
    let name = env.name("c");
    let init = start(&env, &name, &[]);
    let out = env.berth(&["exec", "-w", "/nope/dir", &name, "--", "pwd"]);
    assert_ne!(out.code, 0, "exec -w to a missing dir ran: {}", out.out());
    assert_eq!(out.out(), "", "the command ran");
    assert!(
        !Path::new(&format!("/proc/{init}/root/nope")).exists(),
        "exec -w created the missing dir"
    );
    only_init_left(&name, init, "after exec -w to a missing dir");
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

/// The error of `exec -w` to a missing dir says what is wrong: which dir, and that
/// it does not exist.
#[test]
fn exec_workdir_missing_error_names_the_dir() {
    let env = Env::new("xwdm");
    let name = env.name("c");
    let init = start(&env, &name, &[]);
    let out = env.berth(&["exec", "-w", "/nope/dir", &name, "--", "pwd"]);
    out.code(125);
    let line = out.one_line_error(&[&name, "/nope/dir"]);
    assert!(
        line.contains("no such file or directory") || line.contains("does not exist"),
        "{line}"
    );
    only_init_left(&name, init, "after exec -w to a missing dir");
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

/// `inspect`'s Processes lists the container's execs beside init, with their
/// process id, pid, args, status and exit code.
#[test]
fn inspect_lists_exec_processes() {
    let env = Env::new("xins");
    let name = env.name("c");
    start(&env, &name, &[]);
    env.berth(&[
        "exec",
        "-d",
        "--process-id",
        "px",
        &name,
        "--",
        "sleep",
        "1001",
    ])
    .code(0);
    let pid = exec_pid(&name, &["sleep", "1001"]);
    let v = env.inspect(&name);
    let px = v["Processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["ProcessId"] == "px")
        .cloned()
        .unwrap_or_else(|| panic!("exec px not in Processes: {}", v["Processes"]));
    assert_eq!(px["Pid"], pid);
    assert_eq!(px["Args"], serde_json::json!(["sleep", "1001"]));
    assert_eq!(px["Status"], "running");
    assert!(px["ExitCode"].is_null());
    env.berth(&["kill", "--process-id", "px", &name]).code(0);
    eventually("px exited in inspect", Duration::from_secs(10), || {
        let v = env.inspect(&name);
        v["Processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["ProcessId"] == "px" && p["Status"] == "exited" && p["ExitCode"] == 137)
    });
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

/// Processes in the container start with default signal dispositions: nothing the
/// shim ignores for itself (SIGPIPE) leaks in, so `yes | head` ends quietly by
/// SIGPIPE as on the host, instead of `yes: standard output: Broken pipe`.
#[test]
fn exec_and_init_start_with_no_ignored_signals() {
    let env = Env::new("xsig");
    let name = env.name("c");
    start(&env, &name, &[]);
    let sig_ign = |out: String| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no SigIgn in {out}"))
    };
    let exec = env
        .berth(&["exec", &name, "--", "cat", "/proc/self/status"])
        .ok();
    assert_eq!(sig_ign(exec), "0000000000000000", "exec's ignored signals");
    let out = env.berth(&[
        "exec",
        &name,
        "--",
        "sh",
        "-c",
        "yes | head -c 10 >/dev/null",
    ]);
    out.code(0);
    assert_eq!(out.err(), "", "yes | head in an exec");
    let init = env
        .berth(&[
            "run",
            "--rm",
            "--name",
            &env.name("r"),
            "--",
            "cat",
            "/proc/self/status",
        ])
        .ok();
    assert_eq!(sig_ign(init), "0000000000000000", "init's ignored signals");
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn exec_user_flag_and_default_user_from_init() {
    let env = Env::new("xus");
    let name = env.name("c");
    start(&env, &name, &["-u", "1000:1001"]);
    // Default: init's user.
    assert_eq!(
        env.berth(&["exec", &name, "--", "sh", "-c", "id -u; id -g"])
            .ok(),
        "1000\n1001\n"
    );
    assert_eq!(
        env.berth(&[
            "exec",
            "-u",
            "2000:2001",
            &name,
            "--",
            "sh",
            "-c",
            "id -u; id -g"
        ])
        .ok(),
        "2000\n2001\n"
    );
    assert_eq!(
        env.berth(&[
            "exec",
            "-u",
            "nobody",
            &name,
            "--",
            "sh",
            "-c",
            "id -u; id -un; id -g"
        ])
        .ok(),
        "65534\nnobody\n65534\n"
    );
    assert_eq!(
        env.berth(&[
            "exec",
            "-u",
            "root",
            &name,
            "--",
            "sh",
            "-c",
            "id -u; id -g"
        ])
        .ok(),
        "0\n0\n"
    );
    let out = env.berth(&["exec", "-u", "no-such-user", &name, "--", "true"]);
    assert_ne!(out.code, 0);
    assert!(out.err().contains("no-such-user"), "{}", out.err());
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn duplicate_process_id_while_the_first_runs_is_a_clear_error() {
    let env = Env::new("xdup");
    let name = env.name("c");
    let init = start(&env, &name, &[]);
    env.berth(&[
        "exec",
        "-d",
        "--process-id",
        "same",
        &name,
        "--",
        "sleep",
        "1001",
    ])
    .code(0);
    let first = exec_pid(&name, &["sleep", "1001"]);
    let out = env.berth(&["exec", "--process-id", "same", &name, "--", "echo", "ran"]);
    out.code(125);
    assert_eq!(out.out(), "", "the duplicate ran");
    let line = out.one_line_error(&["same"]);
    assert!(
        line.contains("exists") || line.contains("in use") || line.contains("already"),
        "error does not say the id is taken: {line}"
    );
    // The first is untouched, and nothing else runs.
    assert!(alive(first));
    let mut want = vec![init, first];
    want.sort();
    assert_eq!(cgroup_procs(&name), want);
    env.berth(&["kill", "--process-id", "same", &name]).code(0);
    eventually("first exec gone", Duration::from_secs(10), || !alive(first));
    only_init_left(&name, init, "after the duplicate");
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn exec_into_stopped_and_unknown_containers_are_clear_errors() {
    let env = Env::new("xstp");
    let name = env.name("c");
    start(&env, &name, &[]);
    env.berth(&["kill", &name]).code(0);
    env.wait_status(&name, "exited", Duration::from_secs(10));
    let out = env.berth(&["exec", &name, "--", "echo", "ran"]);
    out.code(125);
    assert_eq!(out.out(), "");
    let line = out.one_line_error(&[&name]);
    assert!(line.contains("not running"), "{line}");
    // Nothing started: still exited, no new process in its record.
    let v = env.inspect(&name);
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["Processes"].as_array().map(Vec::len), Some(1), "{v}");

    let out = env.berth(&["exec", "no-such-ctr", "--", "true"]);
    out.code(125);
    out.one_line_error(&["no-such-ctr", "no such container"]);
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

#[test]
fn missing_binary_127_and_not_executable_126_leave_nothing_running() {
    let env = Env::new("xnf");
    let name = env.name("c");
    let init = start(&env, &name, &[]);
    for (cmd, code) in [
        ("/no/such/binary", 127),
        ("no-such-command", 127),
        ("/etc/passwd", 126),
        ("/tmp", 126),
    ] {
        let out = env.berth(&["exec", &name, "--", cmd]);
        out.code(code);
        assert_eq!(out.out(), "", "{cmd}");
        assert!(out.err().contains(cmd), "{cmd}: stderr {:?}", out.err());
        only_init_left(&name, init, cmd);
        // The same with -d: an error, not a detached process that failed later.
        let out = env.berth(&["exec", "-d", &name, "--", cmd]);
        out.code(code);
        only_init_left(&name, init, &format!("-d {cmd}"));
    }
    // None of them stays in the process table as a process that never ran.
    let procs = env.inspect(&name)["Processes"].clone();
    assert_eq!(procs.as_array().map(Vec::len), Some(1), "{procs}");
    assert!(!std::fs::read_dir(env.root.join(&name))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with("-process.json")));
    // Still usable.
    assert_eq!(env.berth(&["exec", &name, "--", "echo", "ok"]).ok(), "ok\n");
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn stdin_eof_reaches_cat_through_exec() {
    let env = Env::new("xin");
    let name = env.name("c");
    let init = start(&env, &name, &[]);
    let out = env.berth_stdin(&["exec", "-i", &name, "--", "cat"], b"abc");
    out.code(0);
    assert_eq!(out.out(), "abc");
    // More than a pipe buffer, through a pipeline.
    let mut input = Vec::new();
    for i in 0..20_000 {
        input.extend_from_slice(format!("line {i}\n").as_bytes());
    }
    let out = env.berth_stdin(
        &["exec", "-i", &name, "--", "sh", "-c", "wc -l; echo end"],
        &input,
    );
    assert_eq!(
        out.ok().split_whitespace().collect::<Vec<_>>(),
        ["20000", "end"]
    );
    // Without -i: EOF at once.
    let out = env.berth_stdin(&["exec", &name, "--", "cat"], b"secret\n");
    assert_eq!(out.ok(), "");
    // Empty stdin with -i.
    let out = env.berth_stdin(&["exec", "-i", &name, "--", "cat"], b"");
    assert_eq!(out.ok(), "");
    only_init_left(&name, init, "after the cats");
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn twenty_megabytes_through_exec_stdout_byte_for_byte() {
    const N: usize = 20_000_000;
    let env = Env::new("xbig");
    let name = env.name("c");
    start(&env, &name, &[]);
    let out = env.berth_timeout(
        &[
            "exec",
            &name,
            "--",
            "sh",
            "-c",
            "yes 0123456789abcdef | head -c 20000000",
        ],
        Duration::from_secs(120),
    );
    out.code(0);
    let line = b"0123456789abcdef\n";
    assert_eq!(out.stdout.len(), N, "stdout length");
    if let Some(i) = (0..N).find(|&i| out.stdout[i] != line[i % line.len()]) {
        panic!("stdout differs from byte {i}");
    }
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn sigkill_to_the_container_ends_every_exec() {
    let env = Env::new("xall");
    let name = env.name("c");
    let init = start(&env, &name, &[]);
    env.berth(&[
        "exec",
        "-d",
        "--process-id",
        "det",
        &name,
        "--",
        "sleep",
        "1001",
    ])
    .code(0);
    let det = exec_pid(&name, &["sleep", "1001"]);
    let (mut attached, line) = spawn_attached(
        &env,
        &[
            "exec",
            "--process-id",
            "att",
            &name,
            "--",
            "sh",
            "-c",
            "sleep 1002 & echo ready; wait",
        ],
    );
    assert_eq!(line, "ready\n");
    exec_pid(&name, &["sleep", "1002"]);
    let before = cgroup_procs(&name);
    assert!(before.len() >= 4, "init, det, sh, sleep: {before:?}");
    env.berth(&["kill", "-s", "KILL", &name]).code(0);
    let v = env.wait_status(&name, "exited", Duration::from_secs(10));
    assert_eq!(v["State"]["ExitCode"], 137);
    let code = wait_child(&mut attached, Duration::from_secs(10), "attached exec");
    assert_eq!(
        code,
        Some(137),
        "attached exec after SIGKILL to the container"
    );
    for p in before {
        eventually(&format!("process {p} gone"), Duration::from_secs(5), || {
            !alive(p)
        });
    }
    assert!(!alive(det) && !alive(init));
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

fn count_dir(p: &str) -> usize {
    std::fs::read_dir(p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .count()
}

fn fd_targets(p: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .flatten()
        .map(|e| {
            let t = std::fs::read_link(e.path()).unwrap_or_default();
            format!("{}->{}", e.file_name().to_string_lossy(), t.display())
        })
        .collect();
    v.sort();
    v
}

/// The shim's anonymous resident memory (heap, stacks): what a leak grows. Its
/// file pages come and go (it drops code pages when idle).
fn rss_anon_kib(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("RssAnon")
}

#[test]
fn shim_stays_lean_over_1000_sequential_execs() {
    let env = Env::new("xlean");
    let name = env.name("c");
    start(&env, &name, &[]);
    let shim: i32 = std::fs::read_to_string(env.root.join(&name).join("shim.pid"))
        .expect("shim.pid")
        .trim()
        .parse()
        .expect("shim.pid holds a pid");
    assert!(alive(shim));
    for _ in 0..20 {
        env.berth(&["exec", &name, "--", "true"]).code(0);
    }
    let fd_path = format!("/proc/{shim}/fd");
    let task_path = format!("/proc/{shim}/task");
    // Both measures are taken at rest: the last exec's connection and exit are done.
    std::thread::sleep(Duration::from_millis(500));
    let fd_list0 = fd_targets(&fd_path);
    let fds0 = count_dir(&fd_path);
    let threads0 = count_dir(&task_path);
    let rss0 = rss_anon_kib(shim);
    let start = Instant::now();
    for i in 0..1000 {
        let out = env.berth(&["exec", &name, "--", "true"]);
        assert_eq!(out.code, 0, "exec {i}: {}", out.err());
    }
    let took = start.elapsed();
    // Threads of a runtime may park and exit on their own clock: give them a moment.
    std::thread::sleep(Duration::from_millis(500));
    let fds1 = count_dir(&fd_path);
    let fd_list1 = fd_targets(&fd_path);
    let threads1 = count_dir(&task_path);
    let rss1 = rss_anon_kib(shim);
    eprintln!(
        "1000 execs in {took:?}: fds {fds0} -> {fds1}, threads {threads0} -> {threads1}, \
         RssAnon {rss0} -> {rss1} KiB"
    );
    assert_eq!(
        fds1, fds0,
        "shim fds after 1000 execs\nbefore: {fd_list0:?}\nafter: {fd_list1:?}"
    );
    assert_eq!(threads1, threads0, "shim threads after 1000 execs");
    assert!(
        rss1 <= rss0 + 512,
        "shim RssAnon grew {rss0} -> {rss1} KiB over 1000 execs"
    );
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}
