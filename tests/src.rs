//! End-to-end test support: run the real `berth` binary (and through it the real
//! shim) as root on real containers, each test in its own state and data roots, and
//! check afterwards that nothing of the test is left behind.
//!
//! A test makes a [`Env`], runs commands through it, and ends with
//! [`Env::finish`], which fails the test on any leftover process, mount, cgroup,
//! state dir or record, then removes the roots. A test that panics earlier still
//! gets its containers, processes and mounts cleaned up by `Drop`.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The `berth` binary: `BERTH_BIN`, else beside the test's target dir
/// (`target/debug/deps/x` → `target/debug/berth`).
pub fn berth_bin() -> PathBuf {
    locate("BERTH_BIN", "berth")
}

/// The shim binary: `BERTH_SHIM`, else beside `berth`.
pub fn shim_bin() -> PathBuf {
    locate("BERTH_SHIM", "containerd-shim-berth-v1")
}

fn locate(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.file_name() == Some(OsStr::new("deps")) {
        dir.pop();
    }
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} not found: build the workspace first (`cargo build --workspace`, or run \
         `cargo test --workspace`), or set {var}",
        p.display()
    );
    p
}

/// Fails the test unless it runs as root: these tests need real namespaces and
/// cgroups. Failing (not passing) is deliberate: a test that cannot run must not
/// count as a pass.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "SKIPPED: end-to-end tests need root (real namespaces and cgroups)"
    );
}

/// The criu binary the tests' berth runs: `BERTH_CRIU`, else `criu` on PATH.
pub fn criu_bin() -> String {
    std::env::var("BERTH_CRIU")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "criu".into())
}

/// Fails the test unless `criu check` passes: a checkpoint test that cannot run
/// must not count as a pass.
pub fn require_criu() {
    let criu = criu_bin();
    let usable = Command::new(&criu)
        .arg("check")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        usable,
        "SKIPPED: `{criu} check` fails or criu is missing (run scripts/install-criu)"
    );
}

/// Outcome of one `berth` invocation.
#[derive(Debug)]
pub struct Out {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Raw stdout.
    pub stdout: Vec<u8>,
    /// Raw stderr.
    pub stderr: Vec<u8>,
    /// What was run, for messages.
    pub what: String,
}

impl Out {
    fn from(o: Output, what: String) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: o.stdout,
            stderr: o.stderr,
            what,
        }
    }
    /// stdout as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// stderr as text.
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(
            self.code,
            want,
            "{}: exit code\nstdout: {}\nstderr: {}",
            self.what,
            self.out(),
            self.err()
        );
        self
    }
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> String {
        self.code(0);
        self.out()
    }
    /// Asserts stderr is exactly one line `berth: ...` that contains every one of
    /// `needles`, and returns it.
    #[track_caller]
    pub fn one_line_error(&self, needles: &[&str]) -> String {
        let err = self.err();
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{}: want one line on stderr, got {err:?}",
            self.what
        );
        let line = lines[0];
        assert!(
            line.starts_with("berth: "),
            "{}: stderr {line:?} does not start with `berth: `",
            self.what
        );
        for n in needles {
            assert!(
                line.contains(n),
                "{}: stderr {line:?} does not mention {n:?}",
                self.what
            );
        }
        line.to_owned()
    }
}

/// One test's world: its roots, the ids it made, and a `berth` to run.
#[derive(Debug)]
pub struct Env {
    /// `/tmp/bt-<pid>-<n>`; short, so socket paths stay under 108 bytes.
    pub base: PathBuf,
    /// State root (`--root`).
    pub root: PathBuf,
    /// Data root (`--data-root`).
    pub data: PathBuf,
    tag: String,
    ids: Mutex<Vec<String>>,
    finished: bool,
}

impl Env {
    /// A fresh pair of roots. `tag` (a few letters) goes into container names.
    pub fn new(tag: &str) -> Env {
        require_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let base = PathBuf::from(format!("/tmp/bt-{pid}-{n}"));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).expect("create test base");
        let root = base.join("r");
        let data = base.join("d");
        Env {
            base,
            root,
            data,
            // Letters and digits only: the default hostname is the name's first 12
            // characters, and a hostname may not end with `-` or `.`.
            tag: format!("{tag}{pid}n{n}"),
            ids: Mutex::new(Vec::new()),
            finished: false,
        }
    }

    /// A container name unique to this test (and to the machine while it runs),
    /// recorded for the leftover check. `suffix`: letters and digits.
    pub fn name(&self, suffix: &str) -> String {
        let name = format!("{}{suffix}", self.tag);
        assert!(name.len() <= 64, "test name too long: {name}");
        self.track(&name);
        name
    }

    /// Records an id made some other way (a random one from `run -d`).
    pub fn track(&self, id: &str) {
        let mut ids = self.ids.lock().unwrap();
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_owned());
        }
    }

    /// Ids made so far.
    pub fn ids(&self) -> Vec<String> {
        self.ids.lock().unwrap().clone()
    }

    /// A `berth` command with this test's roots and shim.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        c.env("BERTH_ROOT", &self.root)
            .env("BERTH_DATA_ROOT", &self.data)
            .env("BERTH_SHIM", shim_bin())
            .env_remove("RUST_LOG")
            .args(args);
        c
    }

    /// Runs `berth ARGS` with stdin from /dev/null.
    pub fn berth(&self, args: &[&str]) -> Out {
        self.berth_timeout(args, Duration::from_secs(60))
    }

    /// Runs `berth ARGS`, failing the test if it takes longer than `limit`.
    pub fn berth_timeout(&self, args: &[&str], limit: Duration) -> Out {
        let child = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        wait_output(child, limit, format!("berth {}", args.join(" ")))
    }

    /// Runs `berth ARGS` with `input` on stdin, then EOF.
    pub fn berth_stdin(&self, args: &[&str], input: &[u8]) -> Out {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
            // Dropping stdin is the EOF.
        });
        let out = wait_output(
            child,
            Duration::from_secs(60),
            format!("berth {}", args.join(" ")),
        );
        writer.join().unwrap();
        out
    }

    /// `name`'s events from the host log (`berth events --format json`), oldest
    /// first.
    pub fn events_of(&self, name: &str) -> Vec<serde_json::Value> {
        self.berth(&[
            "events",
            "--format",
            "json",
            "--since",
            "1h",
            "--until",
            "0s",
            "--filter",
            &format!("container={name}"),
        ])
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
    }

    /// `berth inspect NAME` parsed; panics unless it is an array of one object.
    #[track_caller]
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let out = self.berth(&["inspect", name]);
        let text = out.ok();
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("inspect {name}: not JSON ({e}): {text}"));
        let arr = v.as_array().expect("inspect prints an array");
        assert_eq!(arr.len(), 1, "inspect {name}: {text}");
        arr[0].clone()
    }

    /// Polls `inspect` until `State.Status` is `want`.
    #[track_caller]
    pub fn wait_status(&self, name: &str, want: &str, limit: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let v = self.inspect(name);
            if v["State"]["Status"] == want {
                return v;
            }
            assert!(
                start.elapsed() < limit,
                "{name}: status {} after {limit:?}, want {want}",
                v["State"]["Status"]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything of this test that is still around (empty: clean).
    pub fn leftovers(&self) -> Vec<String> {
        let ids = self.ids();
        let mut found = Vec::new();
        for p in processes(&self.base, &ids) {
            found.push(format!("process {p}"));
        }
        for m in mounts_under(&self.base) {
            found.push(format!("mount {m}"));
        }
        for m in overlays_of(&self.base) {
            found.push(format!("overlay mount {m}"));
        }
        for c in cgroups_of(&ids) {
            found.push(format!("cgroup {}", c.display()));
        }
        for id in &ids {
            for p in [
                self.root.join(id),
                self.root.join("runtime").join(id),
                self.data.join("containers").join(id),
            ] {
                if p.exists() {
                    found.push(format!("state {}", p.display()));
                }
            }
        }
        // Anything at all left in the roots, whatever its id (random ids included).
        for dir in [
            self.root.clone(),
            self.root.join("runtime"),
            self.data.join("containers"),
        ] {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    // libcontainer's root and the host's event log belong to
                    // the root, not to any container.
                    if dir == self.root && matches!(n.as_str(), "runtime" | ".events.jsonl") {
                        continue;
                    }
                    let p = dir.join(&n);
                    let s = format!("state {}", p.display());
                    if !found.contains(&s) {
                        found.push(s);
                    }
                }
            }
        }
        found
    }

    /// Fails the test on any leftover, then removes the roots. Call at the end of
    /// every test, after removing its containers.
    #[track_caller]
    pub fn finish(mut self) {
        // A shim may take a moment to exit after `rm`; give it a short grace period.
        let start = Instant::now();
        let mut left = self.leftovers();
        while !left.is_empty() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
            left = self.leftovers();
        }
        assert!(
            left.is_empty(),
            "left behind by the test:\n  {}",
            left.join("\n  ")
        );
        self.finished = true;
        let _ = std::fs::remove_dir_all(&self.base);
    }

    /// Best effort removal of everything this test made (used on failure).
    fn cleanup(&self) {
        for id in self.ids() {
            let _ = self
                .cmd(&["rm", "-f", &id])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let ids = self.ids();
        for pid in processes(&self.base, &ids) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut ms = mounts_under(&self.base);
        ms.reverse();
        for m in ms {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        for c in cgroups_of(&ids) {
            let _ = std::fs::remove_dir(&c);
        }
        if mounts_under(&self.base).is_empty() {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !self.finished {
            self.cleanup();
        }
    }
}

fn wait_output(mut child: Child, limit: Duration, what: String) -> Out {
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = t1.join().unwrap();
    let stderr = t2.join().unwrap();
    Out::from(
        Output {
            status,
            stdout,
            stderr,
        },
        what,
    )
}

/// Pids of processes (not this one) whose command line mentions `base` or one of
/// `ids`, whose root is under `base`, or whose cgroup is `/berth/<id>`.
pub fn processes(base: &Path, ids: &[String]) -> Vec<i32> {
    let me = std::process::id() as i32;
    let base_s = base.to_string_lossy().into_owned();
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let dir = e.path();
        let cmdline = std::fs::read(dir.join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let words: Vec<&str> = cmdline.split_whitespace().collect();
        let mut hit = cmdline.contains(&format!("{base_s}/"))
            || words.iter().any(|w| *w == base_s)
            || ids.iter().any(|id| words.iter().any(|w| w == id));
        if !hit {
            if let Ok(r) = std::fs::read_link(dir.join("root")) {
                hit = r.starts_with(base);
            }
        }
        if !hit {
            if let Ok(cg) = std::fs::read_to_string(dir.join("cgroup")) {
                hit = ids.iter().any(|id| {
                    let want = format!("/berth/{id}");
                    cg.lines()
                        .any(|l| l.rsplit(':').next() == Some(want.as_str()))
                });
            }
        }
        if hit {
            found.push(pid);
        }
    }
    found
}

/// Mount points (from /proc/self/mountinfo) at or under `base`.
pub fn mounts_under(base: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .filter(|m| Path::new(m).starts_with(base))
        .collect()
}

/// Overlay mounts anywhere whose layers, upper or work dir are under `base`.
pub fn overlays_of(base: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let base = base.to_string_lossy().into_owned();
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut f = post.split(' ');
            let point = unescape_mount(pre.split(' ').nth(4)?);
            (f.next()? == "overlay" && f.nth(1)?.contains(&format!("{base}/"))).then_some(point)
        })
        .collect()
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Cgroup dirs `/sys/fs/cgroup/<controller>/berth/<id>` (and the unified one) that
/// exist for `ids`.
pub fn cgroups_of(ids: &[String]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            if e.path().is_dir() {
                roots.push(e.path());
            }
        }
    }
    for r in roots {
        for id in ids {
            // `:youki:<id>` is libcontainer's own choice for a spec without a path.
            for p in [r.join("berth").join(id), r.join(format!(":youki:{id}"))] {
                if p.is_dir() {
                    found.push(p);
                }
            }
        }
    }
    found
}

/// Whether a process is alive (not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// A busybox-static root filesystem in `dir`: `/bin/busybox` plus a link for each
/// applet, and a marker file `/marker`. Panics with the reason when the host has
/// no static busybox.
pub fn busybox_rootfs(dir: &Path) {
    let src = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .expect("SKIPPED: no /bin/busybox (install busybox-static)");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(src, bin.join("busybox")).unwrap();
    let list = Command::new(src)
        .arg("--list")
        .output()
        .expect("busybox --list");
    assert!(list.status.success(), "busybox --list failed");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" {
            continue;
        }
        let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
    }
    for d in ["proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("marker"), "busybox-root\n").unwrap();
}

/// Waits until `f` holds, polling, or panics with `what`.
#[track_caller]
pub fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `umoci ARGS`, failing the test with umoci's message if it fails.
pub fn umoci(args: &[&str]) {
    let out = Command::new("umoci")
        .args(args)
        .output()
        .expect("SKIPPED: umoci not found (apt-get install umoci)");
    assert!(
        out.status.success(),
        "umoci {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
