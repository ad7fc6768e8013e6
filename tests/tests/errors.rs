//! Errors users hit: each has its exit code, a one-line message naming the
//! problem, and leaves nothing behind.

use std::time::Duration;

use berth_e2e::{alive, Env};

/// The name is free again after a failed run: nothing of it was left reserved.
fn name_is_free(env: &Env, name: &str) {
    env.berth(&["run", "--rm", "--name", name, "--", "true"])
        .code(0);
}

#[test]
fn command_not_found_is_127() {
    let env = Env::new("e127");
    let name = env.name("c");
    let out = env.berth(&["run", "--rm", "--name", &name, "--", "no-such-command"]);
    out.code(127);
    out.one_line_error(&["no-such-command", "not found"]);
    // Without --rm too: the start failed, so nothing of the container is kept.
    let kept = env.name("k");
    let out = env.berth(&["run", "--name", &kept, "--", "/no/such/path"]);
    out.code(127);
    out.one_line_error(&["/no/such/path"]);
    env.berth(&["inspect", &kept]).code(1);
    name_is_free(&env, &name);
    name_is_free(&env, &kept);
    env.finish();
}

#[test]
fn not_executable_is_126() {
    let env = Env::new("e126");
    let name = env.name("c");
    let out = env.berth(&["run", "--rm", "--name", &name, "--", "/etc/hostname"]);
    out.code(126);
    out.one_line_error(&["/etc/hostname"]);
    name_is_free(&env, &name);
    env.finish();
}

#[test]
fn missing_rootfs_is_125() {
    let env = Env::new("erfs");
    let name = env.name("c");
    let missing = env.base.join("no-rootfs");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--rootfs",
        missing.to_str().unwrap(),
        "--",
        "sh",
    ]);
    out.code(125);
    out.one_line_error(&[missing.to_str().unwrap(), "No such file or directory"]);
    name_is_free(&env, &name);
    env.finish();
}

#[test]
fn rootfs_that_is_a_file_is_125() {
    let env = Env::new("erff");
    let name = env.name("c");
    let file = env.base.join("file");
    std::fs::write(&file, "x").unwrap();
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--rootfs",
        file.to_str().unwrap(),
        "--",
        "sh",
    ]);
    out.code(125);
    out.one_line_error(&[file.to_str().unwrap(), "not a directory"]);
    name_is_free(&env, &name);
    env.finish();
}

#[test]
fn missing_bundle_is_125() {
    let env = Env::new("ebm");
    let name = env.name("c");
    let missing = env.base.join("no-bundle");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--bundle",
        missing.to_str().unwrap(),
    ]);
    out.code(125);
    out.one_line_error(&[missing.to_str().unwrap(), "No such file or directory"]);
    name_is_free(&env, &name);
    env.finish();
}

#[test]
fn bundle_with_invalid_config_is_125() {
    let env = Env::new("ebi");
    let bundle = env.base.join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    std::fs::write(
        bundle.join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": ",
    )
    .unwrap();
    let name = env.name("c");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    out.code(125);
    // Names the file and says what is wrong with it (the parser's position).
    let line = out.one_line_error(&["config.json"]);
    assert!(line.contains("line 1"), "no parse error position: {line}");
    // Valid JSON, not a spec.
    std::fs::write(bundle.join("config.json"), "[1, 2]").unwrap();
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    out.code(125);
    out.one_line_error(&["config.json", "invalid type"]);
    name_is_free(&env, &name);
    env.finish();
}

#[test]
fn bundle_with_unreadable_config_is_125() {
    let env = Env::new("ebu");
    let bundle = env.base.join("bundle");
    // Root reads any file whatever its mode: a directory in its place is unreadable.
    std::fs::create_dir_all(bundle.join("config.json")).unwrap();
    let name = env.name("c");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    out.code(125);
    out.one_line_error(&["config.json", "Is a directory"]);
    name_is_free(&env, &name);
    env.finish();
}

#[test]
fn duplicate_name_is_125_and_first_untouched() {
    let env = Env::new("edup");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    let before = env.inspect(&name);
    let pid = before["State"]["Pid"].as_i64().unwrap() as i32;
    let out = env.berth(&["run", "--rm", "--name", &name, "--", "true"]);
    out.code(125);
    out.one_line_error(&[&name, "already in use"]);
    let out = env.berth(&["run", "-d", "--name", &name, "--", "true"]);
    out.code(125);
    let after = env.inspect(&name);
    assert_eq!(after["State"]["Status"], "running");
    assert_eq!(after["State"]["Pid"], before["State"]["Pid"]);
    assert_eq!(after["Created"], before["Created"]);
    assert_eq!(
        after["Config"]["Args"],
        serde_json::json!(["sleep", "1000"])
    );
    assert!(alive(pid));
    // An exited container still holds its name until rm.
    env.berth(&["kill", &name]).code(0);
    env.wait_status(&name, "exited", Duration::from_secs(10));
    env.berth(&["run", "--rm", "--name", &name, "--", "true"])
        .code(125);
    assert_eq!(env.inspect(&name)["State"]["ExitCode"], 137);
    env.berth(&["rm", &name]).code(0);
    name_is_free(&env, &name);
    env.finish();
}

#[test]
fn invalid_names_are_125() {
    let env = Env::new("enam");
    let long = "a".repeat(65);
    for (bad, needle) in [
        ("../x", "../x"),
        ("", "empty"),
        (long.as_str(), "64"),
        ("/abs", "/abs"),
        (".", "\".\""),
        ("-x", "-x"),
    ] {
        let out = env.berth(&["run", "--rm", "--name", bad, "--", "true"]);
        out.code(125);
        out.one_line_error(&["name", needle]);
    }
    // 64 characters is the limit, and valid.
    let mut ok = env.name("m");
    while ok.len() < 64 {
        ok.push('z');
    }
    env.track(&ok);
    env.berth(&["run", "--rm", "--name", &ok, "--", "true"])
        .code(0);
    // Nothing made for any of them: not even a directory `x` beside the roots.
    assert!(!env.base.join("x").exists());
    assert!(!env.root.parent().unwrap().join("x").exists());
    env.finish();
}

#[test]
fn bad_memory_value_is_125() {
    let env = Env::new("emem");
    let name = env.name("c");
    let out = env.berth(&[
        "run", "--rm", "--name", &name, "--memory", "lots", "--", "true",
    ]);
    out.code(125);
    out.one_line_error(&["--memory", "lots"]);
    name_is_free(&env, &name);
    env.finish();
}

#[test]
fn missing_volume_source_is_125() {
    let env = Env::new("evol");
    let name = env.name("c");
    let missing = env.base.join("no-such-dir");
    let spec = format!("{}:/data", missing.display());
    let out = env.berth(&["run", "--rm", "--name", &name, "-v", &spec, "--", "true"]);
    out.code(125);
    out.one_line_error(&[missing.to_str().unwrap(), "does not exist"]);
    assert!(!missing.exists(), "berth created the volume source");
    name_is_free(&env, &name);
    env.finish();
}

#[test]
fn rm_of_running_container_without_force_is_1() {
    let env = Env::new("erm");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    let pid = env.inspect(&name)["State"]["Pid"].as_i64().unwrap() as i32;
    let out = env.berth(&["rm", &name]);
    out.code(1);
    out.one_line_error(&[&format!("rm {name}"), "running"]);
    assert_eq!(env.inspect(&name)["State"]["Status"], "running");
    assert!(alive(pid));
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn run_without_dashdash_is_125_and_says_how() {
    let env = Env::new("edd");
    let name = env.name("c");
    let out = env.berth(&["run", "--rm", "--name", &name, "sh"]);
    out.code(125);
    out.one_line_error(&["\"sh\"", "berth run -- sh"]);
    let out = env.berth(&["run", "--rm", "--name", &name, "sh", "-c", "true"]);
    out.code(125);
    out.one_line_error(&["berth run -- sh -c true"]);
    name_is_free(&env, &name);
    env.finish();
}

#[test]
fn run_without_any_command_is_125() {
    let env = Env::new("enoc");
    let name = env.name("c");
    let out = env.berth(&["run", "--rm", "--name", &name]);
    out.code(125);
    out.one_line_error(&["command"]);
    env.finish();
}

#[test]
fn verbs_on_unknown_container_are_1() {
    let env = Env::new("eunk");
    for verb in [
        &["kill"][..],
        &["stop"],
        &["rm"],
        &["rm", "-f"],
        &["inspect"],
    ] {
        let mut args: Vec<&str> = verb.to_vec();
        args.push("nope");
        let out = env.berth(&args);
        out.code(1);
        out.one_line_error(&["nope", "no such container"]);
    }
    env.finish();
}

#[test]
fn unknown_run_flag_is_125() {
    let env = Env::new("eflg");
    let name = env.name("c");
    let out = env.berth(&["run", "--rm", "--name", &name, "--bogus", "--", "true"]);
    out.code(125);
    let line = out.one_line_error(&["--bogus"]);
    assert!(
        !line.contains("image"),
        "an unknown flag read as an image: {line}"
    );
    env.finish();
}

#[test]
fn usage_errors_name_the_verb_and_what_is_missing() {
    let env = Env::new("euse");
    for (args, verb, missing, code) in [
        (&["logs"][..], "logs", "<NAME>", 1),
        (&["stop"], "stop", "<NAMES>", 1),
        (
            &["checkpoint", "create", "x"],
            "checkpoint",
            "<CHECKPOINT>",
            1,
        ),
        (&["exec", "web"], "exec", "<COMMAND>", 125),
    ] {
        let out = env.berth(args);
        out.code(code);
        out.one_line_error(&[&format!("berth: {verb}:"), missing]);
    }
    // With no --name, an unknown flag does not name a random id nobody saw.
    let out = env.berth(&["run", "--bogus"]);
    out.code(125);
    out.one_line_error(&["berth: run: parse arguments: unknown flag: --bogus"]);
    env.finish();
}

#[test]
fn top_of_an_exited_container_is_1_and_kill_prints_the_name() {
    let env = Env::new("etop");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    env.wait_status(&name, "running", Duration::from_secs(10));
    assert_eq!(env.berth(&["kill", &name]).ok().trim(), name);
    env.wait_status(&name, "exited", Duration::from_secs(10));
    env.berth(&["top", &name])
        .code(1)
        .one_line_error(&["top", &name, "not running"]);
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

#[test]
fn logs_into_a_reader_that_goes_away_ends_quietly() {
    use std::io::BufRead;
    let env = Env::new("epip");
    let name = env.name("c");
    // More output than a pipe holds, so the write after the reader left fails.
    env.berth(&["run", "--name", &name, "--", "seq", "1", "200000"])
        .code(0);
    let mut child = env
        .cmd(&["logs", &name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "1\n");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(141),
        "as `head` sees a SIGPIPE'd tool"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "no error for a closed pipe"
    );
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

#[test]
fn more_cpus_than_the_host_has_are_refused_before_anything_is_made() {
    let env = Env::new("ecpu");
    let name = env.name("c");
    for (flag, value, needle) in [
        ("--cpus", "100000", "CPUs available"),
        ("--cpuset-cpus", "0,99999", "not available: 99999"),
    ] {
        let out = env.berth(&["run", "--rm", "--name", &name, flag, value, "--", "true"]);
        out.code(125);
        out.one_line_error(&[&name, "check options", needle]);
        name_is_free(&env, &name);
    }
    env.finish();
}

/// Names are per root but cgroups per host: a second root's container of the same
/// name is refused while the first one's cgroup holds processes, and the first runs
/// on untouched (it used to join the cgroup and die with the other's `rm -f`).
#[test]
fn same_name_under_another_root_is_refused() {
    let first = Env::new("ecg");
    let second = Env::new("ecg");
    let name = first.name("c");
    second.track(&name);
    first
        .berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    let out = second.berth(&["run", "--rm", "--name", &name, "--", "true"]);
    out.code(125);
    out.one_line_error(&[&format!("berth: run {name}: "), "cgroup", "holds processes"]);
    for p in [
        second.root.join(&name),
        second.data.join("containers").join(&name),
    ] {
        assert!(!p.exists(), "{} left by the refused run", p.display());
    }
    let v = first.wait_status(&name, "running", Duration::from_secs(5));
    assert_eq!(v["State"]["Running"], true, "{v}");
    let procs = first.berth(&["top", &name]).ok();
    assert!(procs.contains("sleep"), "{procs}");
    first.berth(&["rm", "-f", &name]).code(0);
    first.finish();
    second.finish();
}

/// A create whose caller was killed before it wrote the container's record leaves
/// a state dir whose create lock nobody holds: the next create of the name takes
/// it back instead of saying the name is in use.
#[test]
fn name_of_a_killed_create_is_taken_back() {
    let env = Env::new("eab");
    let name = env.name("c");
    let state = env.root.join(&name);
    std::fs::create_dir_all(state.join("rootfs/tmp")).unwrap();
    std::fs::write(state.join(".create.lock"), "").unwrap();
    std::fs::write(state.join("rootfs/tmp/junk"), "x").unwrap();
    env.berth(&["run", "--rm", "--name", &name, "--", "true"])
        .code(0);
    assert!(!state.exists(), "{} left", state.display());
    env.finish();
}
