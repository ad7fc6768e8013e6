//! `berth create` and `berth start`: a container defined now and run later, as
//! Docker's are. Created, it holds its name and nothing else: no shim, process,
//! mount or cgroup. Started, it runs as `run` would have run it.

use std::time::Duration;

use berth_e2e::{cgroups_of, eventually, mounts_under, processes, Env};

/// Nothing of `env`'s containers runs or is mounted, and the state root holds no
/// directory for them: all a created container has is its record.
#[track_caller]
fn only_a_record(env: &Env, name: &str) {
    let ids = env.ids();
    assert!(
        processes(&env.base, &ids).is_empty(),
        "processes of {ids:?}"
    );
    assert!(
        mounts_under(&env.base).is_empty(),
        "mounts under {:?}",
        env.base
    );
    assert!(cgroups_of(&ids).is_empty(), "cgroups of {ids:?}");
    assert!(!env.root.join(name).exists(), "state dir of {name}");
    assert!(
        env.data.join("containers").join(name).is_dir(),
        "record of {name}"
    );
}

#[test]
fn create_then_start_attached_gives_output_and_status() {
    let env = Env::new("csa");
    let name = env.name("c");
    let out = env.berth(&[
        "create",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(out.ok().trim(), name);
    only_a_record(&env, &name);
    let v = env.inspect(&name);
    assert_eq!(v["State"]["Status"], "created", "{v}");
    assert_eq!(v["State"]["Running"], false, "{v}");
    assert!(v["State"]["Pid"].is_null(), "{v}");
    assert!(v["State"]["StartedAt"].is_null(), "{v}");
    assert!(v["State"]["ExitCode"].is_null(), "{v}");
    let created = v["Created"].clone();
    let ps = env.berth(&["ps", "-a", "--format", "json"]).ok();
    let row: serde_json::Value = ps
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["Id"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not in ps -a: {ps}"));
    assert_eq!(row["Status"], "created", "{row}");
    // Not running: plain ps leaves it out.
    assert!(!env.berth(&["ps", "-q"]).ok().contains(&name));

    let started = env.berth(&["start", "-a", &name]);
    started.code(7);
    assert_eq!(started.out(), "out\n");
    assert_eq!(started.err(), "err\n");
    let v = env.inspect(&name);
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["ExitCode"], 7, "{v}");
    assert!(v["State"]["StartedAt"].is_string(), "{v}");
    assert_eq!(v["Created"], created, "Created is the time of create");
    // Its output is in its log too.
    assert_eq!(env.berth(&["logs", &name]).out(), "out\n");
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

#[test]
fn start_detached_runs_it_and_a_second_start_leaves_it_alone() {
    let env = Env::new("csd");
    let name = env.name("c");
    env.berth(&[
        "create",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "echo hi; exec sleep 1000",
    ])
    .code(0);
    assert_eq!(env.berth(&["start", &name]).ok().trim(), name);
    env.wait_status(&name, "running", Duration::from_secs(10));
    eventually("output in the log", Duration::from_secs(10), || {
        env.berth(&["logs", &name]).out() == "hi\n"
    });
    let pid = env.inspect(&name)["State"]["Pid"].as_i64().unwrap();
    // Docker's start of a running container: nothing happens, the name is printed.
    assert_eq!(env.berth(&["start", &name]).ok().trim(), name);
    assert_eq!(env.inspect(&name)["State"]["Pid"].as_i64().unwrap(), pid);
    // Attaching to one that runs already is refused, not a second start.
    env.berth(&["start", "-a", &name])
        .code(1)
        .one_line_error(&[&name, "running already"]);
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn create_i_then_start_ai_feeds_stdin_and_rm_removes_it_after() {
    let env = Env::new("csi");
    let name = env.name("c");
    env.berth(&[
        "create",
        "-i",
        "--rm",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "cat; echo done; exit 3",
    ])
    .code(0);
    let out = env.berth_stdin(&["start", "-ai", &name], b"line one\nline two\n");
    out.code(3);
    assert_eq!(out.out(), "line one\nline two\ndone\n");
    // --rm: gone once the attached start saw it exit.
    env.berth(&["inspect", &name]).code(1);
    env.finish();
}

#[test]
fn a_created_container_holds_its_name_and_refuses_what_needs_a_process() {
    let env = Env::new("csn");
    let name = env.name("c");
    env.berth(&["create", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    env.berth(&["create", "--name", &name, "--", "true"])
        .code(1)
        .one_line_error(&["create", &name, "already in use"]);
    env.berth(&["run", "--name", &name, "--", "true"])
        .code(125)
        .one_line_error(&["run", &name, "already in use"]);
    env.berth(&["exec", &name, "--", "true"])
        .code(125)
        .one_line_error(&["exec", &name, "not started"]);
    for verb in ["kill", "pause", "resume", "top"] {
        env.berth(&[verb, &name])
            .code(1)
            .one_line_error(&[verb, &name, "not started"]);
    }
    // Stopping what never started has nothing to do.
    env.berth(&["stop", &name]).code(0);
    only_a_record(&env, &name);
    env.berth(&["rm", &name]).code(0);
    // The name is free again.
    env.berth(&["run", "--rm", "--name", &name, "--", "true"])
        .code(0);
    env.finish();
}

#[test]
fn a_start_that_fails_leaves_it_created_and_nothing_else() {
    let env = Env::new("csf");
    let missing = env.name("m");
    env.berth(&["create", "--name", &missing, "--", "/no/such/cmd"])
        .code(0);
    env.berth(&["start", "-a", &missing])
        .code(127)
        .one_line_error(&["start", &missing, "/no/such/cmd"]);
    env.berth(&["start", &missing])
        .code(1)
        .one_line_error(&["start", &missing, "/no/such/cmd"]);
    assert_eq!(env.inspect(&missing)["State"]["Status"], "created");
    only_a_record(&env, &missing);

    // One that ran and exited starts again (Docker's start of a stopped one).
    let done = env.name("d");
    env.berth(&["create", "--name", &done, "--", "true"])
        .code(0);
    env.berth(&["start", "-a", &done]).code(0);
    assert_eq!(env.berth(&["start", &done]).ok().trim(), done);
    env.wait_status(&done, "exited", Duration::from_secs(10));
    env.berth(&["rm", &missing, &done]).code(0);
    env.finish();
}

#[test]
fn create_refuses_bad_input_and_leaves_nothing() {
    let env = Env::new("csb");
    let name = env.name("c");
    let nowhere = env.base.join("nowhere");
    env.berth(&[
        "create",
        "--rootfs",
        nowhere.to_str().unwrap(),
        "--name",
        &name,
        "--",
        "sh",
    ])
    .code(1)
    .one_line_error(&["create", &name, "root filesystem"]);
    env.berth(&["create", "-d", "--name", &name, "--", "true"])
        .code(1)
        .one_line_error(&["create", "-d"]);
    env.berth(&["create", "--name", "bad/name", "--", "true"])
        .code(1)
        .one_line_error(&["create", "invalid name"]);
    env.berth(&["start", "-a", &name, "other"])
        .code(1)
        .one_line_error(&["start", "one"]);
    env.berth(&["start", &name])
        .code(1)
        .one_line_error(&["start", &name, "no such container"]);
    env.finish();
}

/// `create --rm` started detached: the container removes itself once it exits.
#[test]
fn create_rm_started_detached_removes_itself_when_it_exits() {
    let env = Env::new("csr");
    let name = env.name("c");
    env.berth(&[
        "create", "--rm", "--name", &name, "--", "sh", "-c", "exit 4",
    ])
    .code(0);
    assert_eq!(env.berth(&["start", &name]).ok().trim(), name);
    eventually("removed after its exit", Duration::from_secs(10), || {
        env.berth(&["inspect", &name]).code == 1
    });
    env.finish();
}

/// The types of `name`'s events so far, in order.
fn event_types(env: &Env, name: &str) -> Vec<String> {
    env.events_of(name)
        .iter()
        .map(|v| v["Type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn an_exited_container_starts_again_with_its_logs_kept() {
    let env = Env::new("cse");
    let name = env.name("c");
    env.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "echo run; exec sleep 1000",
    ])
    .code(0);
    let first = env.wait_status(&name, "running", Duration::from_secs(10));
    env.berth(&["kill", &name]).code(0);
    let exited = env.wait_status(&name, "exited", Duration::from_secs(10));
    assert_eq!(exited["State"]["ExitCode"], 137, "{exited}");

    // Docker's start of a stopped container: it runs again, as it was made.
    assert_eq!(env.berth(&["start", &name]).ok().trim(), name);
    let again = env.wait_status(&name, "running", Duration::from_secs(10));
    assert_ne!(again["State"]["Pid"], first["State"]["Pid"], "{again}");
    assert_eq!(again["Created"], first["Created"], "{again}");
    assert_eq!(again["Config"]["Args"], first["Config"]["Args"], "{again}");
    assert!(again["State"]["ExitCode"].is_null(), "{again}");
    assert!(
        again["State"]["StartedAt"].as_str() > first["State"]["StartedAt"].as_str(),
        "{first}\n{again}"
    );
    // Its output goes on in the same log.
    eventually("both runs in the log", Duration::from_secs(10), || {
        env.berth(&["logs", &name]).out() == "run\nrun\n"
    });
    let starts = event_types(&env, &name)
        .iter()
        .filter(|t| *t == "start")
        .count();
    assert_eq!(starts, 2);
    // Seq goes on across the runs: it never repeats (engines skip what they saw).
    let seqs: Vec<u64> = env
        .events_of(&name)
        .iter()
        .map(|v| v["Seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.len() >= 6, "{seqs:?}");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn start_a_of_an_exited_container_reruns_it_attached_and_many_starts_run_it_once() {
    let env = Env::new("csx");
    let name = env.name("c");
    let out = env.berth(&["run", "--name", &name, "--", "sh", "-c", "echo out; exit 5"]);
    out.code(5);
    assert_eq!(out.out(), "out\n");
    let out = env.berth(&["start", "-a", &name]);
    out.code(5);
    assert_eq!(out.out(), "out\n");
    assert_eq!(env.inspect(&name)["State"]["ExitCode"], 5);

    assert_eq!(env.berth(&["logs", &name]).out(), "out\nout\n");
    env.berth(&["rm", &name]).code(0);

    // Four starts at once of an exited container that stays up once run: each
    // succeeds, one runs it. (One that exits at once may be run by each start
    // that finds it exited, as Docker's are.)
    let long = env.name("l");
    env.berth(&[
        "run",
        "-d",
        "--name",
        &long,
        "--",
        "sh",
        "-c",
        "echo up; exec sleep 1000",
    ])
    .code(0);
    env.wait_status(&long, "running", Duration::from_secs(10));
    env.berth(&["kill", &long]).code(0);
    env.wait_status(&long, "exited", Duration::from_secs(10));
    let before = event_types(&env, &long).len();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let mut cmd = env.cmd(&["start", &long]);
            std::thread::spawn(move || cmd.output().expect("berth start"))
        })
        .collect();
    for s in starts {
        let o = s.join().unwrap();
        assert!(
            o.status.success(),
            "a start failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), long);
    }
    env.wait_status(&long, "running", Duration::from_secs(10));
    let runs = event_types(&env, &long)[before..]
        .iter()
        .filter(|t| *t == "start")
        .count();
    assert_eq!(runs, 1, "started more than once");
    eventually("both runs in the log", Duration::from_secs(10), || {
        env.berth(&["logs", &long]).out() == "up\nup\n"
    });
    env.berth(&["rm", "-f", &long]).code(0);
    env.finish();
}

#[test]
fn restart_stops_and_starts_again_running_paused_or_created() {
    let env = Env::new("csr");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    let first = env.wait_status(&name, "running", Duration::from_secs(10));
    assert_eq!(env.berth(&["restart", "-t", "1", &name]).ok().trim(), name);
    let again = env.inspect(&name);
    assert_eq!(again["State"]["Status"], "running", "{again}");
    assert_ne!(again["State"]["Pid"], first["State"]["Pid"], "{again}");
    // A paused one is stopped (SIGKILL reaches it frozen) and runs again.
    env.berth(&["pause", &name]).code(0);
    assert_eq!(env.berth(&["restart", "-t", "1", &name]).ok().trim(), name);
    assert_eq!(env.inspect(&name)["State"]["Status"], "running");
    // A created one just starts; a missing name is an error of its own.
    let created = env.name("d");
    env.berth(&["create", "--name", &created, "--", "sleep", "1000"])
        .code(0);
    let missing = env.name("none");
    let out = env.berth(&["restart", &created, &missing]);
    out.code(1);
    assert_eq!(out.out().trim(), created);
    out.one_line_error(&["restart", &missing, "no such container"]);
    assert_eq!(env.inspect(&created)["State"]["Status"], "running");
    env.berth(&["rm", "-f", &name, &created]).code(0);
    env.finish();
}

#[test]
fn detached_i_keeps_stdin_open_and_dit_needs_no_terminal() {
    let env = Env::new("csk");
    // Docker's open stdin: `cat` waits on it instead of reading an end.
    let di = env.name("di");
    env.berth_stdin(&["run", "-d", "-i", "--name", &di, "--", "cat"], b"")
        .code(0);
    // `-dit` attaches nothing, so this side need not be a terminal.
    let dit = env.name("dit");
    env.berth_stdin(&["run", "-dit", "--name", &dit, "--", "sh"], b"")
        .code(0);
    // A created -i container started detached keeps it open too.
    let ci = env.name("ci");
    env.berth(&["create", "-i", "--name", &ci, "--", "cat"])
        .code(0);
    env.berth(&["start", &ci]).code(0);
    std::thread::sleep(Duration::from_millis(500));
    for n in [&di, &dit, &ci] {
        assert_eq!(env.inspect(n)["State"]["Status"], "running", "{n}");
    }
    assert_eq!(env.berth(&["exec", &dit, "--", "echo", "ok"]).ok(), "ok\n");
    // Without -i, stdin is empty and `cat` ends at once.
    let plain = env.name("p");
    env.berth(&["run", "-d", "--name", &plain, "--", "cat"])
        .code(0);
    let v = env.wait_status(&plain, "exited", Duration::from_secs(10));
    assert_eq!(v["State"]["ExitCode"], 0, "{v}");
    env.berth(&["rm", "-f", &di, &dit, &ci, &plain]).code(0);
    env.finish();
}
