//! Checkpoints with CRIU through the `berth` CLI: a container is dumped
//! (`checkpoint create`, stopped or `--leave-running`) and brought back
//! (`run --checkpoint`) under its own name, under another one, or twice side by
//! side; its processes go on where they were (counter, pids, open files, a
//! listening socket), the restored container's output is in its log, the events
//! say `checkpointed` and `start`, and every failure is one line that leaves
//! nothing behind. Checkpoints outlive `rm` until `checkpoint rm`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_e2e::{busybox_rootfs, eventually, require_criu, umoci, Env};
use serde_json::Value;

/// Writes `COUNT BG` to /tmp/n every 0.1 s (BG: the pid of a background sleep,
/// as the shell remembers it) and `tick COUNT` to stdout.
const COUNTER: &str = "sleep 100000 & bg=$!; i=0; \
    while :; do echo \"$i $bg\" >/tmp/n; echo tick $i; i=$((i+1)); sleep 0.1; done";

const LIMIT: Duration = Duration::from_secs(20);

/// `/tmp/n` inside `name`: (count, pid of the background sleep). The shell
/// truncates the file before each write, so an empty read is read again.
fn counter(env: &Env, name: &str) -> (u64, u32) {
    let mut got = None;
    eventually(&format!("{name}: a whole line in /tmp/n"), LIMIT, || {
        let text = env.berth(&["exec", name, "--", "cat", "/tmp/n"]).ok();
        let f: Vec<u64> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        got = (f.len() == 2).then(|| (f[0], f[1] as u32));
        got.is_some()
    });
    got.unwrap()
}

/// Waits until `name`'s counter is past `n`; returns it.
fn counts_past(env: &Env, name: &str, n: u64) -> (u64, u32) {
    let mut last = (0, 0);
    eventually(&format!("{name}: counter past {n}"), LIMIT, || {
        last = counter(env, name);
        last.0 > n
    });
    last
}

/// Starts the counter in `name`, detached, and waits until it has counted a bit.
fn start_counter(env: &Env, name: &str) {
    env.berth(&["run", "-d", "--name", name, "--", "sh", "-c", COUNTER])
        .ok();
    eventually(&format!("{name}: /tmp/n written"), LIMIT, || {
        env.berth(&["exec", name, "--", "test", "-s", "/tmp/n"])
            .code
            == 0
    });
    counts_past(env, name, 5);
}

/// Starts the counter in `name` and checkpoints it as `cp` (which stops it);
/// returns `/tmp/n` (count, background pid) as read just before the dump.
fn counted_and_checkpointed(env: &Env, name: &str, cp: &str) -> (u64, u32) {
    start_counter(env, name);
    let before = counter(env, name);
    let out = env.berth(&["checkpoint", "create", name, cp]).ok();
    assert_eq!(out, format!("{cp}\n"));
    let v = env.wait_status(name, "exited", LIMIT);
    assert_eq!(v["State"]["Running"], false, "{v}");
    before
}

/// `State.Pid` of `name` (0 when there is none).
fn host_pid(env: &Env, name: &str) -> u64 {
    env.inspect(name)["State"]["Pid"].as_u64().unwrap_or(0)
}

/// `<data-root>/checkpoints/<name>`: where `name`'s checkpoints go by default.
fn cp_dir(env: &Env, name: &str) -> PathBuf {
    env.data.join("checkpoints").join(name)
}

/// `berth run --checkpoint CP [--checkpoint-dir DIR] --name NAME -d`.
fn restore(env: &Env, cp: &str, dir: Option<&Path>, name: &str) -> berth_e2e::Out {
    let dir = dir.map(|d| d.to_string_lossy().into_owned());
    let mut a = vec!["run", "--checkpoint", cp];
    if let Some(d) = &dir {
        a.extend(["--checkpoint-dir", d.as_str()]);
    }
    a.extend(["--name", name, "-d"]);
    env.berth(&a)
}

/// The command line of pid `pid` inside `name`, or "" when it has none.
fn cmdline_inside(env: &Env, name: &str, pid: u32) -> String {
    let out = env.berth(&[
        "exec",
        name,
        "--",
        "sh",
        "-c",
        &format!("tr '\\0' ' ' </proc/{pid}/cmdline"),
    ]);
    if out.code == 0 {
        out.out()
    } else {
        String::new()
    }
}

/// `berth events --format json --filter container=NAME` up to now, parsed.
fn events_of(env: &Env, name: &str) -> Vec<Value> {
    let now = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%NZ"])
        .output()
        .expect("date");
    let now = String::from_utf8_lossy(&now.stdout).trim().to_owned();
    let filter = format!("container={name}");
    let text = env
        .berth(&[
            "events", "--format", "json", "--filter", &filter, "--until", &now,
        ])
        .ok();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["Type"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Names listed by `berth checkpoint ls [--checkpoint-dir DIR] NAME`.
fn ls(env: &Env, name: &str, dir: Option<&Path>) -> Vec<String> {
    let dir = dir.map(|d| d.to_string_lossy().into_owned());
    let mut a = vec!["checkpoint", "ls"];
    if let Some(d) = &dir {
        a.extend(["--checkpoint-dir", d.as_str()]);
    }
    a.push(name);
    let text = env.berth(&a).ok();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("CHECKPOINT NAME"), "{text}");
    lines.map(str::to_owned).collect()
}

/// Waits until `file` inside `name` has more lines than now: the restored init
/// goes on writing through its descriptor 3.
fn grows_through_fd3(env: &Env, name: &str, file: &str) {
    let lines = || {
        env.berth(&["exec", name, "--", "wc", "-l", file])
            .ok()
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let n = lines();
    eventually(
        &format!("{file} grows through fd 3 after restore"),
        LIMIT,
        || lines() > n,
    );
}

/// `checkpoint rm NAME CP` for each, then the default checkpoint dir is gone.
fn rm_checkpoints(env: &Env, name: &str, cps: &[&str]) {
    for cp in cps {
        env.berth(&["checkpoint", "rm", name, cp]).ok();
    }
    let dir = cp_dir(env, name);
    assert!(!dir.exists(), "{} left after checkpoint rm", dir.display());
}

/// The end of a test: `rm -f` of `containers`, `checkpoint rm` of `owner`'s
/// `cps`, then the leftover check.
#[track_caller]
fn clean_up(env: Env, containers: &[&str], owner: &str, cps: &[&str]) {
    let mut a = vec!["rm", "-f"];
    a.extend_from_slice(containers);
    env.berth(&a).ok();
    rm_checkpoints(&env, owner, cps);
    env.finish();
}

/// Stopped by the checkpoint, removed, restored under its own name: the counter
/// goes on from where it was, with the same pids inside.
#[test]
fn counter_goes_on_after_restore_under_its_own_name() {
    require_criu();
    let env = Env::new("cpc");
    let name = env.name("c");
    let (before, bg) = counted_and_checkpointed(&env, &name, "cp1");
    env.berth(&["rm", &name]).ok();

    restore(&env, "cp1", None, &name).ok();
    let v = env.wait_status(&name, "running", LIMIT);
    assert_eq!(v["State"]["Running"], true, "{v}");
    let (first, bg_after) = counter(&env, &name);
    assert!(
        first >= before,
        "restored counter at {first}, below {before} where it was checkpointed"
    );
    let (later, _) = counts_past(&env, &name, first);
    assert!(later > first);
    // Same pids inside: the shell is still 1 and its background sleep still has
    // the pid the shell remembers.
    assert_eq!(bg_after, bg, "the shell's $! changed");
    assert!(
        cmdline_inside(&env, &name, bg).starts_with("sleep 100000"),
        "background sleep {bg} not there after restore"
    );
    assert!(
        cmdline_inside(&env, &name, 1).contains("while :"),
        "pid 1 inside is not the counter after restore"
    );

    clean_up(env, &[&name], &name, &["cp1"]);
}

/// A descriptor kept open on a file and a listening TCP socket are there again
/// after the restore, and the file goes on being written through the descriptor.
#[test]
fn open_file_and_listening_socket_survive() {
    require_criu();
    let env = Env::new("cpf");
    let name = env.name("f");
    let script = "exec 3>/tmp/f; echo first >&3; busybox nc -l -p 8080 >/dev/null & \
        i=0; while :; do echo $i >/tmp/n; echo line$i >&3; i=$((i+1)); sleep 0.1; done";
    env.berth(&["run", "-d", "--name", &name, "--", "sh", "-c", script])
        .ok();
    let has_both = |env: &Env| {
        let fds = env
            .berth(&["exec", &name, "--", "ls", "-l", "/proc/1/fd"])
            .out();
        // Port 8080 (1F90) in state LISTEN (0A), over IPv4 or IPv6.
        let tcp = env
            .berth(&[
                "exec",
                &name,
                "--",
                "cat",
                "/proc/net/tcp",
                "/proc/net/tcp6",
            ])
            .out();
        let listening = tcp.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(":1F90") && f[3] == "0A"
        });
        (fds.lines().any(|l| l.ends_with(" 3 -> /tmp/f")), listening)
    };
    eventually("fd 3 and the listener before the dump", LIMIT, || {
        has_both(&env) == (true, true)
    });
    env.berth(&["checkpoint", "create", &name, "cp1"]).ok();
    env.wait_status(&name, "exited", LIMIT);
    env.berth(&["rm", &name]).ok();

    restore(&env, "cp1", None, &name).ok();
    assert_eq!(
        has_both(&env),
        (true, true),
        "(fd 3 on /tmp/f, listener on 8080) after restore"
    );
    grows_through_fd3(&env, &name, "/tmp/f");
    let head = env
        .berth(&["exec", &name, "--", "head", "-n", "1", "/tmp/f"])
        .ok();
    assert_eq!(
        head, "first\n",
        "/tmp/f lost what was written before the dump"
    );

    clean_up(env, &[&name], &name, &["cp1"]);
}

/// `--leave-running`: the original counts on, and the checkpoint restores beside
/// it under another name from `--checkpoint-dir <data-root>/checkpoints/<orig>`.
#[test]
fn leave_running_and_restore_under_another_name() {
    require_criu();
    let env = Env::new("cpl");
    let orig = env.name("o");
    let copy = env.name("k");
    start_counter(&env, &orig);
    let (before, _) = counter(&env, &orig);
    env.berth(&["checkpoint", "create", "--leave-running", &orig, "cp1"])
        .ok();
    let v = env.inspect(&orig);
    assert_eq!(v["State"]["Status"], "running", "{v}");
    counts_past(&env, &orig, before);

    restore(&env, "cp1", Some(&cp_dir(&env, &orig)), &copy).ok();
    env.wait_status(&copy, "running", LIMIT);
    let (first, _) = counter(&env, &copy);
    assert!(first >= before, "copy's counter {first} below {before}");
    counts_past(&env, &copy, first);
    let (o, _) = counter(&env, &orig);
    counts_past(&env, &orig, o);
    // Two containers, two pids on the host.
    assert_ne!(host_pid(&env, &orig), host_pid(&env, &copy));

    clean_up(env, &[&orig, &copy], &orig, &["cp1"]);
}

/// One checkpoint, two restores running side by side, each counting on its own.
#[test]
fn two_restores_of_one_checkpoint_side_by_side() {
    require_criu();
    let env = Env::new("cp2");
    let orig = env.name("o");
    let a = env.name("a");
    let b = env.name("b");
    let (before, _) = counted_and_checkpointed(&env, &orig, "cp1");
    let dir = cp_dir(&env, &orig);
    restore(&env, "cp1", Some(&dir), &a).ok();
    restore(&env, "cp1", Some(&dir), &b).ok();
    for n in [&a, &b] {
        env.wait_status(n, "running", LIMIT);
        let (first, _) = counter(&env, n);
        assert!(first >= before, "{n}: counter {first} below {before}");
        counts_past(&env, n, first);
    }
    // Each has its own /tmp: writing one's does not touch the other's.
    env.berth(&["exec", &a, "--", "sh", "-c", "echo mine >/tmp/own"])
        .ok();
    assert_ne!(
        env.berth(&["exec", &b, "--", "test", "-e", "/tmp/own"])
            .code,
        0,
        "{b} sees {a}'s /tmp"
    );
    assert_ne!(host_pid(&env, &a), host_pid(&env, &b));

    clean_up(env, &[&orig, &a, &b], &orig, &["cp1"]);
}

/// `checkpoint ls` lists what `checkpoint create` made, `checkpoint rm` removes it,
/// and removing it twice is a one-line error.
#[test]
fn checkpoint_ls_and_rm() {
    require_criu();
    let env = Env::new("cpr");
    let name = env.name("c");
    start_counter(&env, &name);
    assert!(ls(&env, &name, None).is_empty());
    for cp in ["cp1", "cp2"] {
        env.berth(&["checkpoint", "create", "--leave-running", &name, cp])
            .ok();
    }
    assert_eq!(ls(&env, &name, None), ["cp1", "cp2"]);
    let dir = cp_dir(&env, &name);
    assert_eq!(ls(&env, &name, Some(&dir)), ["cp1", "cp2"]);
    env.berth(&["checkpoint", "rm", &name, "cp1"]).ok();
    assert_eq!(ls(&env, &name, None), ["cp2"]);
    assert!(!dir.join("cp1").exists());
    let again = env.berth(&["checkpoint", "rm", &name, "cp1"]);
    again.code(1);
    again.one_line_error(&[&format!("berth: checkpoint rm {name}: "), "cp1"]);
    // Checkpoints outlive the container.
    env.berth(&["rm", "-f", &name]).ok();
    assert_eq!(ls(&env, &name, None), ["cp2"]);
    rm_checkpoints(&env, &name, &["cp2"]);
    env.finish();
}

/// The original's journal says `checkpointed`; the restored one's says `start`,
/// and its output after the restore is in `berth logs`.
#[test]
fn events_and_logs_of_a_restore() {
    require_criu();
    let env = Env::new("cpe");
    let name = env.name("c");
    let copy = env.name("k");
    let (before, _) = counted_and_checkpointed(&env, &name, "cp1");
    let ev = events_of(&env, &name);
    let t = types(&ev);
    let cp = t
        .iter()
        .position(|t| t == "checkpointed")
        .unwrap_or_else(|| panic!("no checkpointed event for {name}: {t:?}"));
    assert_eq!(ev[cp]["Id"], name.as_str());
    assert_eq!(ev[cp]["ProcessId"], "init");
    assert!(
        t[cp..].iter().any(|t| t == "exit"),
        "no exit after checkpointed: {t:?}"
    );

    restore(&env, "cp1", Some(&cp_dir(&env, &name)), &copy).ok();
    env.wait_status(&copy, "running", LIMIT);
    let t = types(&events_of(&env, &copy));
    assert!(t.iter().any(|t| t == "start"), "{copy}: {t:?}");
    assert!(!t.iter().any(|t| t == "exit"), "{copy}: {t:?}");

    // The restored shell prints on: `tick N` with N from where it was.
    let ticks = |env: &Env| -> Vec<u64> {
        env.berth(&["logs", &copy])
            .ok()
            .lines()
            .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
            .collect()
    };
    eventually("restored output in berth logs", LIMIT, || {
        ticks(&env).len() >= 3
    });
    let got = ticks(&env);
    assert!(
        got.iter().all(|n| *n >= before),
        "{copy}: logs start over from below {before}: {got:?}"
    );
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");

    clean_up(env, &[&name, &copy], &name, &["cp1"]);
}

/// A container that is not running has nothing to dump.
#[test]
fn checkpoint_of_an_exited_container_fails() {
    require_criu();
    let env = Env::new("cpx");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "true"])
        .ok();
    env.wait_status(&name, "exited", LIMIT);
    let out = env.berth(&["checkpoint", "create", &name, "cp1"]);
    out.code(1);
    out.one_line_error(&[&format!("berth: checkpoint create {name}: ")]);
    assert!(!cp_dir(&env, &name).join("cp1").exists());
    assert!(ls(&env, &name, None).is_empty());
    env.berth(&["rm", &name]).ok();
    assert!(!cp_dir(&env, &name).exists());
    env.finish();
}

/// Restoring onto a name in use fails with 125 and leaves the container there
/// running as it was.
#[test]
fn restore_onto_a_name_in_use_fails() {
    require_criu();
    let env = Env::new("cpu");
    let name = env.name("c");
    start_counter(&env, &name);
    env.berth(&["checkpoint", "create", "--leave-running", &name, "cp1"])
        .ok();
    let pid = env.inspect(&name)["State"]["Pid"].clone();
    let out = restore(&env, "cp1", None, &name);
    out.code(125);
    out.one_line_error(&[&format!("berth: run {name}: ")]);
    let v = env.inspect(&name);
    assert_eq!(v["State"]["Status"], "running", "{v}");
    assert_eq!(v["State"]["Pid"], pid);
    let (n, _) = counter(&env, &name);
    counts_past(&env, &name, n);
    clean_up(env, &[&name], &name, &["cp1"]);
}

/// Restores of damaged checkpoints (`cases` among `pages`: truncated memory pages,
/// `inventory`: truncated inventory, `marker`: no `berth.json`) are each a one-line
/// 125 and leave nothing behind; an intact one from the same container still
/// restores afterwards.
fn damaged_restores_fail_and_leave_nothing(tag: &str, cases: &[&str]) {
    require_criu();
    let env = Env::new(tag);
    let orig = env.name("o");
    start_counter(&env, &orig);
    let mut cps = cases.to_vec();
    cps.push("good");
    for cp in &cps {
        env.berth(&["checkpoint", "create", "--leave-running", &orig, cp])
            .ok();
    }
    let dir = cp_dir(&env, &orig);
    let truncate = |p: PathBuf| {
        let f = std::fs::OpenOptions::new().write(true).open(&p);
        f.and_then(|f| f.set_len(0))
            .unwrap_or_else(|e| panic!("truncate {}: {e}", p.display()));
    };
    for cp in cases {
        match *cp {
            "pages" => truncate(dir.join("pages/pages-1.img")),
            "inventory" => truncate(dir.join("inventory/inventory.img")),
            "marker" => std::fs::remove_file(dir.join("marker/berth.json")).unwrap(),
            other => panic!("no such damage: {other}"),
        }
    }
    env.berth(&["rm", "-f", &orig]).ok();
    for cp in cases {
        let new = env.name(cp);
        let out = restore(&env, cp, Some(&dir), &new);
        out.code(125);
        out.one_line_error(&[&format!("berth: run {new}: ")]);
        let left = env.leftovers();
        assert!(left.is_empty(), "after restore of {cp}: {left:?}");
    }
    let new = env.name("good");
    restore(&env, "good", Some(&dir), &new).ok();
    env.wait_status(&new, "running", LIMIT);
    env.berth(&["rm", "-f", &new]).ok();
    rm_checkpoints(&env, &orig, &cps);
    env.finish();
}

#[test]
fn damaged_inventory_or_marker_fail_and_leave_nothing() {
    damaged_restores_fail_and_leave_nothing("cpd", &["inventory", "marker"]);
}

#[test]
fn truncated_pages_fail_and_leave_nothing() {
    damaged_restores_fail_and_leave_nothing("cpp", &["pages"]);
}

/// A criu that does not exist: the dump and the restore say so in one line and
/// leave the container (running) and the data root as they were.
#[test]
fn missing_criu_is_a_one_line_error() {
    require_criu();
    let env = Env::new("cpm");
    let name = env.name("c");
    start_counter(&env, &name);
    let out = env.berth(&[
        "--criu",
        "/nonexistent",
        "checkpoint",
        "create",
        &name,
        "cp1",
    ]);
    out.code(1);
    out.one_line_error(&[
        &format!("berth: checkpoint create {name}: "),
        "/nonexistent",
    ]);
    // The same through the environment.
    let o = env
        .cmd(&["checkpoint", "create", &name, "cp1"])
        .env("BERTH_CRIU", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .expect("run berth");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/nonexistent") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!cp_dir(&env, &name).exists(), "checkpoint dir left");
    let v = env.inspect(&name);
    assert_eq!(v["State"]["Status"], "running", "{v}");
    let (n, _) = counter(&env, &name);
    counts_past(&env, &name, n);

    // A good checkpoint, then a restore with the missing criu.
    env.berth(&["checkpoint", "create", "--leave-running", &name, "cp1"])
        .ok();
    let new = env.name("n");
    let dir = cp_dir(&env, &name).to_string_lossy().into_owned();
    let out = env.berth(&[
        "--criu",
        "/nonexistent",
        "run",
        "--checkpoint",
        "cp1",
        "--checkpoint-dir",
        &dir,
        "--name",
        &new,
        "-d",
    ]);
    out.code(125);
    out.one_line_error(&[&format!("berth: run {new}: "), "/nonexistent"]);
    clean_up(env, &[&name], &name, &["cp1"]);
}

/// A checkpoint name that does not exist: restore and rm say so in one line.
#[test]
fn nonexistent_checkpoint_is_a_one_line_error() {
    require_criu();
    let env = Env::new("cpn");
    let name = env.name("c");
    let out = restore(&env, "nope", None, &name);
    out.code(125);
    out.one_line_error(&[&format!("berth: run {name}: "), "nope"]);
    let out = env.berth(&["checkpoint", "rm", &name, "nope"]);
    out.code(1);
    out.one_line_error(&[&format!("berth: checkpoint rm {name}: "), "nope"]);
    assert!(!cp_dir(&env, &name).exists());
    env.finish();
}

/// A container of an image: its root is an overlay, and what it wrote there (a
/// file it keeps open) comes back from the checkpoint's archive of the upper dir;
/// the restore names no image, the checkpoint remembers it.
#[test]
fn image_container_keeps_its_written_root() {
    require_criu();
    let env = Env::new("cpi");
    let root = env.base.join("bbroot");
    busybox_rootfs(&root);
    let layout = env.base.join("oci");
    let tagged = format!("{}:latest", layout.display());
    umoci(&["init", "--layout", layout.to_str().unwrap()]);
    umoci(&["new", "--image", &tagged]);
    umoci(&["insert", "--image", &tagged, root.to_str().unwrap(), "/"]);
    env.berth(&[
        "image",
        "import",
        "--name",
        "berth-test/cpi",
        layout.to_str().unwrap(),
    ])
    .ok();
    let name = env.name("c");
    let script = "exec 3>/kept; echo first >&3; i=0; \
        while :; do echo line$i >&3; i=$((i+1)); sleep 0.1; done";
    env.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "berth-test/cpi",
        "--",
        "sh",
        "-c",
        script,
    ])
    .ok();
    let fd3 = |env: &Env| {
        env.berth(&["exec", &name, "--", "ls", "-l", "/proc/1/fd"])
            .out()
            .lines()
            .any(|l| l.ends_with(" 3 -> /kept"))
    };
    eventually("fd 3 on /kept before the dump", LIMIT, || fd3(&env));
    env.berth(&["checkpoint", "create", &name, "cp1"]).ok();
    env.wait_status(&name, "exited", LIMIT);
    env.berth(&["rm", &name]).ok();

    restore(&env, "cp1", None, &name).ok();
    assert!(fd3(&env), "fd 3 on /kept after restore");
    let head = env
        .berth(&["exec", &name, "--", "head", "-n", "1", "/kept"])
        .ok();
    assert_eq!(
        head, "first\n",
        "/kept lost what was written before the dump"
    );
    grows_through_fd3(&env, &name, "/kept");
    env.berth(&["rm", "-f", &name]).ok();
    env.berth(&["checkpoint", "rm", &name, "cp1"]).ok();
    env.berth(&["image", "rm", "berth-test/cpi"]).ok();
    env.finish();
}

/// Restore mistakes a user makes: no name to find the checkpoint by, a command
/// given to a restore, and `checkpoint ls` of a name that never was.
#[test]
fn restore_usage_mistakes_are_one_line_errors() {
    require_criu();
    let env = Env::new("cpx");
    let name = env.name("c");
    let out = env.berth(&["run", "--checkpoint", "cp1", "-d"]);
    out.code(125);
    out.one_line_error(&["--checkpoint needs --name"]);
    let out = env.berth(&[
        "run",
        "--checkpoint",
        "cp1",
        "--name",
        &name,
        "-d",
        "--",
        "echo",
        "hi",
    ]);
    out.code(125);
    out.one_line_error(&[&format!("berth: run {name}: "), "no command"]);
    let out = env.berth(&["checkpoint", "ls", &name]);
    out.code(1);
    out.one_line_error(&[
        &format!("berth: checkpoint ls {name}: "),
        "no such container",
    ]);
    env.finish();
}
