//! berth's shim under the real containerd (Debian's 1.6), driven by containerd's own
//! `ctr`, as a Kubernetes node would run it: `--runtime io.containerd.berth.v1`.
//!
//! Each test starts its own containerd on a private socket, root and state dir under
//! `/tmp/bc-<pid>-<n>` (CRI disabled, cgroupfs: `SystemdCgroup = false`), with the
//! directory of `containerd-shim-berth-v1` (the same target dir as the `berth` the
//! harness finds, or `BERTH_SHIM`) first on containerd's PATH, imports a small busybox
//! image laid out by hand as an OCI image, and works in its own containerd namespace
//! `bc<pid>n<n>`. [`Ctrd::finish`] stops containerd and fails the test on any shim or
//! container process, mount under the test dir, cgroup `/sys/fs/cgroup/*/<ns>/<id>` or
//! libcontainer state left behind; a test that panics earlier is cleaned up by `Drop`.
//!
//! Needs: root, `containerd` and `ctr` (Debian package `containerd`), `tar`,
//! `sha256sum`, `script` (util-linux/bsdutils) and `/bin/busybox` (busybox-static).
//! A missing tool fails the test with `SKIPPED: ...` and the reason (never a silent
//! pass).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_e2e::{alive, busybox_rootfs, eventually, mounts_under, require_root, shim_bin, Out};
use serde_json::{json, Value};

const RUNTIME: &str = "io.containerd.berth.v1";
const IMAGE: &str = "docker.io/library/berth-e2e:latest";
const SHIM: &str = "containerd-shim-berth-v1";
/// Where berth's shim keeps libcontainer's state under containerd.
const SHIM_RUNTIME_ROOT: &str = "/run/berth-containerd";
/// Where berth's shim puts its socket under containerd (`berth-<ns>@<id>`).
const SHIM_SOCKET_DIR: &str = "/run/containerd/s";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn need(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "SKIPPED: `{tool}` is not installed (apt-get install {package}); the containerd \
         tests need it"
    );
}

/// Runs a command with a time limit, collecting both streams.
fn run_timeout(mut cmd: Command, input: Option<&[u8]>, limit: Duration, what: String) -> Out {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: spawn: {e}"));
    let writer = input.map(|i| {
        let mut stdin = child.stdin.take().unwrap();
        let i = i.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&i);
        })
    });
    let out = wait_child(child, limit, &what);
    if let Some(w) = writer {
        let _ = w.join();
    }
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: out.stderr,
        what,
    }
}

fn wait_child(mut child: Child, limit: Duration, what: &str) -> Output {
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = so.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = se.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
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
    Output {
        status,
        stdout: t1.join().unwrap(),
        stderr: t2.join().unwrap(),
    }
}

/// Shell quoting for `script -c`.
fn quote(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn ppid(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

fn kill(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// One event line of `ctr events`:
/// `2026-01-01 00:00:00.1 +0000 UTC <namespace> <topic> <json>`.
#[derive(Debug, Clone)]
struct Ev {
    ns: String,
    topic: String,
    body: Value,
}

fn parse_events(text: &str) -> Vec<Ev> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(7, ' ');
            let _date = it.next()?;
            let _time = it.next()?;
            let _zone = it.next()?;
            let _utc = it.next()?;
            let ns = it.next()?.to_owned();
            let topic = it.next()?.to_owned();
            let body = serde_json::from_str(it.next().unwrap_or("{}")).unwrap_or(Value::Null);
            Some(Ev { ns, topic, body })
        })
        .collect()
}

/// `ctr events` running in the background, its output in a file.
struct Tap {
    child: Child,
    file: PathBuf,
}

impl Tap {
    fn text(&self) -> String {
        std::fs::read_to_string(&self.file).unwrap_or_default()
    }
    /// Events of namespace `ns` seen so far.
    fn events(&self, ns: &str) -> Vec<Ev> {
        parse_events(&self.text())
            .into_iter()
            .filter(|e| e.ns == ns)
            .collect()
    }
    #[track_caller]
    fn wait_for(&self, ns: &str, what: &str, f: impl Fn(&Ev) -> bool) -> Ev {
        let start = Instant::now();
        loop {
            if let Some(e) = self.events(ns).into_iter().find(|e| f(e)) {
                return e;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "event {what} not seen within 30s; events:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.text()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One private containerd and everything a test made in it.
struct Ctrd {
    /// `/tmp/bc-<pid>-<n>`, short for socket paths.
    base: PathBuf,
    /// The containerd namespace of this test; cgroups are `/<ns>/<id>`.
    ns: String,
    sock: PathBuf,
    daemon: Option<Child>,
    taps: usize,
    finished: bool,
}

impl Ctrd {
    /// Starts containerd and imports the busybox image.
    fn new() -> Ctrd {
        require_root();
        need("containerd", "containerd");
        need("ctr", "containerd");
        need("tar", "tar");
        need("sha256sum", "coreutils");
        let shim = shim_bin();
        assert!(shim.is_file(), "{} missing", shim.display());
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let base = PathBuf::from(format!("/tmp/bc-{pid}-{n}"));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let sock = base.join("c.sock");
        let config = format!(
            r#"version = 2
root = "{b}/root"
state = "{b}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{s}"

[ttrpc]
  address = "{s}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{b}/opt"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
"#,
            b = base.display(),
            s = sock.display()
        );
        std::fs::write(base.join("config.toml"), config).unwrap();
        let mut c = Ctrd {
            base,
            ns: format!("bc{pid}n{n}"),
            sock,
            daemon: None,
            taps: 0,
            finished: false,
        };
        c.start();
        c.import_image();
        c
    }

    /// Starts containerd (again) on this test's config.
    fn start(&mut self) {
        assert!(self.daemon.is_none(), "containerd already running");
        let shim_dir = shim_bin().parent().unwrap().to_path_buf();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![shim_dir];
        dirs.extend(std::env::split_paths(&path));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.base.join("containerd.log"))
            .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.base.join("config.toml"))
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        self.daemon = Some(child);
        let start = Instant::now();
        loop {
            let out = self.ctr(&["version"]);
            if out.code == 0 {
                break;
            }
            if let Some(Ok(Some(st))) = self.daemon.as_mut().map(|d| d.try_wait()) {
                panic!("containerd exited ({st}):\n{}", self.log_tail());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "containerd does not answer after 30s:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops containerd (SIGTERM, then SIGKILL after 10 s). Shims live on.
    fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            kill(d.id() as i32, nix::sys::signal::Signal::SIGTERM);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = d.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.base.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(&self.sock)
            .arg("-n")
            .arg(&self.ns)
            .args(args);
        c
    }

    fn ctr_argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![
            "ctr".to_owned(),
            "-a".to_owned(),
            self.sock.display().to_string(),
            "-n".to_owned(),
            self.ns.clone(),
        ];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// `ctr ARGS`, stdin from /dev/null, at most 60 s.
    fn ctr(&self, args: &[&str]) -> Out {
        run_timeout(
            self.ctr_cmd(args),
            None,
            Duration::from_secs(60),
            format!("ctr {}", args.join(" ")),
        )
    }

    /// `ctr ARGS` with `input` on stdin.
    fn ctr_stdin(&self, args: &[&str], input: &[u8]) -> Out {
        run_timeout(
            self.ctr_cmd(args),
            Some(input),
            Duration::from_secs(60),
            format!("ctr {}", args.join(" ")),
        )
    }

    /// `ctr ARGS` in the background.
    fn ctr_spawn(&self, args: &[&str]) -> Child {
        self.ctr_cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ctr")
    }

    /// `ctr run --runtime io.containerd.berth.v1 OPTS IMAGE ID CMD...`.
    fn run(&self, opts: &[&str], id: &str, cmd: &[&str]) -> Out {
        let mut a = vec!["run", "--runtime", RUNTIME];
        a.extend_from_slice(opts);
        a.push(IMAGE);
        a.push(id);
        a.extend_from_slice(cmd);
        self.ctr(&a)
    }

    /// `ctr run -d` of `CMD`, asserting success; returns init's host pid.
    #[track_caller]
    fn run_detached(&self, id: &str, cmd: &[&str]) -> i32 {
        self.run(&["-d"], id, cmd).ok();
        self.task_pid(id)
            .unwrap_or_else(|| panic!("{id}: not in `ctr task ls` after run -d"))
    }

    /// `ctr task ls`: (pid, status) of `id`.
    fn task(&self, id: &str) -> Option<(i32, String)> {
        let out = self.ctr(&["task", "ls"]).ok();
        out.lines().skip(1).find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 3 && w[0] == id).then(|| (w[1].parse().unwrap_or(0), w[2].to_owned()))
        })
    }

    fn task_pid(&self, id: &str) -> Option<i32> {
        self.task(id).map(|t| t.0)
    }

    #[track_caller]
    fn wait_status(&self, id: &str, want: &str) {
        let start = Instant::now();
        loop {
            let t = self.task(id);
            if t.as_ref().map(|t| t.1.as_str()) == Some(want) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{id}: task {t:?}, want {want}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills every process of `id` with SIGKILL, then deletes task and container.
    #[track_caller]
    fn remove(&self, id: &str) {
        self.ctr(&["task", "kill", "--all", "-s", "SIGKILL", id])
            .ok();
        self.wait_status(id, "STOPPED");
        self.ctr(&["task", "delete", id]).ok();
        self.ctr(&["container", "rm", id]).ok();
    }

    /// The bundle containerd gives the shim.
    fn bundle(&self, id: &str) -> PathBuf {
        self.base
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.ns)
            .join(id)
    }

    fn rootfs(&self, id: &str) -> PathBuf {
        self.bundle(id).join("rootfs")
    }

    fn rootfs_mounted(&self, id: &str) -> bool {
        let r = self.rootfs(id);
        mounts_under(&self.base).iter().any(|m| Path::new(m) == r)
    }

    /// Live (non-zombie) processes in the container's cgroup `/<ns>/<id>` (read from
    /// /proc, not asked of the shim).
    fn container_pids(&self, id: &str) -> BTreeSet<i32> {
        let want = format!("/{}/{id}", self.ns);
        all_pids()
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cgroup")).is_ok_and(|c| {
                    c.lines()
                        .any(|l| l.rsplit(':').next() == Some(want.as_str()))
                }) && alive(*p)
            })
            .collect()
    }

    /// Pid of the berth shim serving `id` (found by its command line).
    fn shim_pid(&self, id: &str) -> Option<i32> {
        all_pids().into_iter().find(|p| {
            let w = cmdline(*p);
            w.first().is_some_and(|a| a.ends_with(SHIM))
                && w.windows(2).any(|x| x[0] == "-id" && x[1] == id)
                && w.windows(2)
                    .any(|x| x[0] == "-namespace" && x[1] == self.ns)
                && alive(*p)
        })
    }

    fn shim_socket(&self, id: &str) -> PathBuf {
        Path::new(SHIM_SOCKET_DIR).join(format!("berth-{}@{id}", self.ns))
    }

    /// Starts `ctr events` and waits until it is subscribed (a namespace label
    /// change it must see).
    fn tap(&mut self) -> Tap {
        self.taps += 1;
        let file = self.base.join(format!("events-{}.txt", self.taps));
        let out = File::create(&file).unwrap();
        let child = Command::new("ctr")
            .arg("-a")
            .arg(&self.sock)
            .arg("events")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ctr events");
        let tap = Tap { child, file };
        let mark = format!("tap={}", self.taps);
        let start = Instant::now();
        loop {
            self.ctr(&["namespaces", "label", &self.ns, &mark]).ok();
            std::thread::sleep(Duration::from_millis(100));
            if tap.text().contains(&format!("\"tap\":\"{}\"", self.taps)) {
                return tap;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "ctr events saw nothing"
            );
        }
    }

    /// Lays out the busybox root as an OCI image by hand and imports it.
    fn import_image(&self) {
        let img = self.base.join("img");
        let rootfs = img.join("rootfs");
        busybox_rootfs(&rootfs);
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
        std::fs::create_dir_all(rootfs.join("root")).unwrap();
        let oci = img.join("oci");
        let blobs = oci.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let blob = |file: &Path| -> (String, u64) {
            let out = Command::new("sha256sum").arg(file).output().unwrap();
            assert!(out.status.success(), "sha256sum failed");
            let hex = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned();
            let size = std::fs::metadata(file).unwrap().len();
            std::fs::rename(file, blobs.join(&hex)).unwrap();
            (format!("sha256:{hex}"), size)
        };
        let layer = img.join("layer.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .args(["--numeric-owner", "--owner=0", "--group=0", "-cf"])
            .arg(&layer)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success(), "tar of the layer failed");
        let (ld, ls) = blob(&layer);
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let write = |name: &str, v: Value| -> PathBuf {
            let p = img.join(name);
            std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
            p
        };
        let (cd, cs) = blob(&write(
            "config.json",
            json!({"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                   "rootfs": {"type": "layers", "diff_ids": [ld]}}),
        ));
        let (md, ms) = blob(&write(
            "manifest.json",
            json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                              "digest": cd, "size": cs},
                   "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                               "digest": ld, "size": ls}]}),
        ));
        std::fs::write(
            oci.join("index.json"),
            serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": md, "size": ms, "platform": {"architecture": arch, "os": "linux"},
                "annotations": {"io.containerd.image.name": IMAGE,
                                "org.opencontainers.image.ref.name": "latest"}}]}))
            .unwrap(),
        )
        .unwrap();
        std::fs::write(oci.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let tarball = img.join("image.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&oci)
            .arg("-cf")
            .arg(&tarball)
            .args(["oci-layout", "index.json", "blobs"])
            .status()
            .unwrap();
        assert!(st.success(), "tar of the image failed");
        self.ctr(&["images", "import", &tarball.display().to_string()])
            .ok();
        let _ = std::fs::remove_dir_all(&rootfs);
    }

    /// Processes of this test still alive: command line naming the test dir or the
    /// namespace (shims: `-address <base>/c.sock -namespace <ns>`), root under the
    /// test dir, or cgroup under `/<ns>/`.
    fn processes(&self) -> Vec<String> {
        let me = std::process::id() as i32;
        let base = self.base.display().to_string();
        let cg = format!("/{}/", self.ns);
        all_pids()
            .into_iter()
            .filter(|p| *p != me && alive(*p))
            .filter_map(|p| {
                let words = cmdline(p);
                let mut hit = words.iter().any(|w| w.contains(&base) || *w == self.ns);
                if !hit {
                    hit = std::fs::read_link(format!("/proc/{p}/root"))
                        .is_ok_and(|r| r.starts_with(&self.base));
                }
                if !hit {
                    hit = std::fs::read_to_string(format!("/proc/{p}/cgroup")).is_ok_and(|c| {
                        c.lines()
                            .any(|l| l.rsplit(':').next().is_some_and(|x| x.starts_with(&cg)))
                    });
                }
                hit.then(|| format!("process {p}: {}", words.join(" ")))
            })
            .collect()
    }

    /// `/sys/fs/cgroup/*/<ns>` (the namespace's parent cgroups).
    fn ns_cgroups(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let p = e.path().join(&self.ns);
                if p.is_dir() {
                    v.push(p);
                }
            }
        }
        let p = Path::new("/sys/fs/cgroup").join(&self.ns);
        if p.is_dir() {
            v.push(p);
        }
        v
    }

    /// Container cgroups `/sys/fs/cgroup/*/<ns>/<id>` (any id).
    fn cgroups(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        for d in self.ns_cgroups() {
            if let Ok(rd) = std::fs::read_dir(&d) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        v.push(e.path());
                    }
                }
            }
        }
        v
    }

    fn shim_sockets(&self) -> Vec<PathBuf> {
        let prefix = format!("berth-{}@", self.ns);
        std::fs::read_dir(SHIM_SOCKET_DIR)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn leftovers(&self) -> Vec<String> {
        let mut found = self.processes();
        for m in mounts_under(&self.base) {
            found.push(format!("mount {m}"));
        }
        for c in self.cgroups() {
            found.push(format!("cgroup {}", c.display()));
        }
        let rt = Path::new(SHIM_RUNTIME_ROOT).join(&self.ns);
        if let Ok(rd) = std::fs::read_dir(&rt) {
            for e in rd.flatten() {
                found.push(format!("libcontainer state {}", e.path().display()));
            }
        }
        found
    }

    /// Checks that the test removed its containers, stops containerd, fails on
    /// anything left behind, and removes the test dir.
    #[track_caller]
    fn finish(mut self) {
        let tasks = self.ctr(&["task", "ls", "-q"]).ok();
        assert!(tasks.trim().is_empty(), "tasks left: {tasks}");
        let cs = self.ctr(&["container", "ls", "-q"]).ok();
        assert!(cs.trim().is_empty(), "containers left: {cs}");
        self.stop();
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
        self.tidy();
    }

    /// Removes what is not the test's to check: the namespace's parent cgroups (the
    /// runc shim leaves them too), the namespace's libcontainer root, leftover shim
    /// sockets (checked by `shim_socket_is_removed_after_delete`), the test dir.
    fn tidy(&self) {
        for c in self.ns_cgroups() {
            let _ = std::fs::remove_dir(&c);
        }
        let _ = std::fs::remove_dir(Path::new(SHIM_RUNTIME_ROOT).join(&self.ns));
        for s in self.shim_sockets() {
            let _ = std::fs::remove_file(&s);
        }
        if mounts_under(&self.base).is_empty() {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }

    /// Best effort removal of everything (a test that failed).
    fn cleanup(&mut self) {
        if self.daemon.is_some() {
            let ids = self.ctr(&["task", "ls", "-q"]).out();
            for id in ids.split_whitespace() {
                let _ = self.ctr(&["task", "kill", "--all", "-s", "SIGKILL", id]);
            }
            std::thread::sleep(Duration::from_millis(300));
            for id in ids.split_whitespace() {
                let _ = self.ctr(&["task", "delete", "-f", id]);
            }
            for id in self
                .ctr(&["container", "ls", "-q"])
                .out()
                .split_whitespace()
            {
                let _ = self.ctr(&["container", "rm", id]);
            }
        }
        self.stop();
        let me = std::process::id() as i32;
        for l in self.processes() {
            if let Some(p) = l
                .strip_prefix("process ")
                .and_then(|r| r.split(':').next())
                .and_then(|p| p.parse::<i32>().ok())
            {
                if p != me {
                    kill(p, nix::sys::signal::Signal::SIGKILL);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let mut ms = mounts_under(&self.base);
        ms.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ms {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        for c in self.cgroups() {
            let _ = std::fs::remove_dir(&c);
        }
        let rt = Path::new(SHIM_RUNTIME_ROOT).join(&self.ns);
        let _ = std::fs::remove_dir_all(&rt);
        self.tidy();
    }
}

impl Drop for Ctrd {
    fn drop(&mut self) {
        if !self.finished {
            self.cleanup();
        }
    }
}

// ------------------------------------------------------------------------- tests

#[test]
fn run_attached_output_stdin_and_exit_code() {
    let c = Ctrd::new();
    let out = c.run(
        &["--rm"],
        "att",
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    out.code(3);
    assert_eq!(out.out(), "out\n");
    assert!(out.err().contains("err"), "stderr: {}", out.err());
    // The root filesystem is the image's (containerd's snapshot, mounted by the shim).
    let out = c.run(&["--rm"], "img", &["cat", "/marker"]);
    assert_eq!(out.ok(), "busybox-root\n");
    // stdin reaches the container and its EOF ends it.
    let out = c.ctr_stdin(
        &[
            "run",
            "--runtime",
            RUNTIME,
            "--rm",
            IMAGE,
            "stdin",
            "sh",
            "-c",
            "cat; echo done",
        ],
        b"hello\n",
    );
    assert_eq!(out.ok(), "hello\ndone\n");
    c.finish();
}

#[test]
fn run_detached_then_task_ls() {
    let c = Ctrd::new();
    let pid = c.run_detached("det", &["sleep", "1000"]);
    assert_eq!(c.task("det").unwrap().1, "RUNNING");
    assert!(alive(pid), "init {pid} not alive");
    assert_eq!(cmdline(pid), ["sleep", "1000"]);
    // init's root is the image (the snapshot the shim mounted).
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/root/marker")).unwrap(),
        "busybox-root\n"
    );
    assert_eq!(c.container_pids("det"), BTreeSet::from([pid]));
    assert!(
        c.rootfs_mounted("det"),
        "rootfs not mounted at <bundle>/rootfs"
    );
    let shim = c.shim_pid("det").expect("no berth shim process for det");
    assert_eq!(ppid(pid), Some(shim), "init's parent is not the shim");
    let ls = c.ctr(&["container", "ls"]).ok();
    assert!(
        ls.lines()
            .any(|l| l.starts_with("det ") && l.contains(RUNTIME)),
        "container ls: {ls}"
    );
    c.remove("det");
    assert!(
        !c.rootfs_mounted("det"),
        "rootfs still mounted after delete"
    );
    c.finish();
}

#[test]
fn run_tty_under_a_pseudo_terminal() {
    need("script", "bsdutils");
    let c = Ctrd::new();
    let script = |argv: Vec<String>, input: &[u8]| -> Out {
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &quote(&argv), "/dev/null"]);
        run_timeout(
            cmd,
            Some(input),
            Duration::from_secs(60),
            format!("script -qec {}", quote(&argv)),
        )
    };
    let out = script(
        c.ctr_argv(&[
            "run",
            "--runtime",
            RUNTIME,
            "--rm",
            "--tty",
            IMAGE,
            "tty",
            "sh",
            "-c",
            "tty; test -t 0 && echo stdin-is-a-tty; exit 4",
        ]),
        b"",
    );
    out.code(4);
    let text = out.out();
    assert!(text.contains("/dev/pts/"), "run --tty: {text:?}");
    assert!(text.contains("stdin-is-a-tty"), "run --tty: {text:?}");
    // exec -t into a running container, then an interactive shell fed through the pty.
    c.run_detached("ttyd", &["sleep", "1000"]);
    let out = script(
        c.ctr_argv(&[
            "task",
            "exec",
            "-t",
            "--exec-id",
            "t1",
            "ttyd",
            "sh",
            "-c",
            "tty; exit 6",
        ]),
        b"",
    );
    out.code(6);
    assert!(out.out().contains("/dev/pts/"), "exec -t: {:?}", out.out());
    let out = script(
        c.ctr_argv(&["task", "exec", "-t", "--exec-id", "t2", "ttyd", "sh"]),
        b"echo typed-$((6*7)); exit 9\n",
    );
    out.code(9);
    assert!(
        out.out().contains("typed-42"),
        "interactive exec -t: {:?}",
        out.out()
    );
    c.remove("ttyd");
    c.finish();
}

#[test]
fn task_exec_exit_code_output_stdin_cwd() {
    let c = Ctrd::new();
    c.run_detached("ex", &["sleep", "1000"]);
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "ex",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 5",
    ]);
    out.code(5);
    assert_eq!(out.out(), "out\n");
    assert!(out.err().contains("err"), "stderr: {}", out.err());
    let out = c.ctr_stdin(
        &["task", "exec", "--exec-id", "e2", "ex", "cat"],
        b"piped\n",
    );
    assert_eq!(out.ok(), "piped\n");
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e3",
        "--cwd",
        "/tmp",
        "ex",
        "pwd",
    ]);
    assert_eq!(out.ok(), "/tmp\n");
    // An exec sees the init's root and pid namespace.
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e4",
        "ex",
        "sh",
        "-c",
        "cat /marker; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert_eq!(out.ok(), "busybox-root\nsleep 1000 ");
    // A program that does not exist is a clear error, and the task lives on.
    let out = c.ctr(&["task", "exec", "--exec-id", "e5", "ex", "/no/such/program"]);
    assert_ne!(out.code, 0, "exec of a missing program succeeded");
    assert!(
        out.err().contains("no/such/program") || out.err().contains("not found"),
        "stderr: {}",
        out.err()
    );
    assert_eq!(c.task("ex").unwrap().1, "RUNNING");
    c.remove("ex");
    c.finish();
}

#[test]
fn task_kill_one_exec_then_all() {
    let c = Ctrd::new();
    let init = c.run_detached("k", &["sleep", "1000"]);
    let exec = c.ctr_spawn(&["task", "exec", "--exec-id", "long", "k", "sleep", "999"]);
    eventually("exec `long` running", Duration::from_secs(20), || {
        c.container_pids("k").len() == 2
    });
    c.ctr(&["task", "kill", "--exec-id", "long", "k"]).ok();
    let out = wait_child(exec, Duration::from_secs(20), "ctr task exec long");
    assert_eq!(
        out.status.code(),
        Some(143),
        "exec killed by SIGTERM: {out:?}"
    );
    assert_eq!(c.task("k").unwrap(), (init, "RUNNING".to_owned()));
    assert_eq!(c.container_pids("k"), BTreeSet::from([init]));
    // --all reaches every process: init and two detached execs.
    c.ctr(&["task", "exec", "-d", "--exec-id", "d1", "k", "sleep", "997"])
        .ok();
    c.ctr(&["task", "exec", "-d", "--exec-id", "d2", "k", "sleep", "998"])
        .ok();
    eventually("three processes", Duration::from_secs(20), || {
        c.container_pids("k").len() == 3
    });
    c.ctr(&["task", "kill", "--all", "-s", "SIGKILL", "k"]).ok();
    c.wait_status("k", "STOPPED");
    eventually("no process left in k", Duration::from_secs(10), || {
        c.container_pids("k").is_empty()
    });
    c.ctr(&["task", "delete", "k"]).ok();
    c.ctr(&["container", "rm", "k"]).ok();
    c.finish();
}

#[test]
fn task_ps_pids_match() {
    let c = Ctrd::new();
    let init = c.run_detached("ps", &["sleep", "1000"]);
    c.ctr(&[
        "task",
        "exec",
        "-d",
        "--exec-id",
        "p1",
        "ps",
        "sleep",
        "999",
    ])
    .ok();
    eventually("two processes", Duration::from_secs(20), || {
        c.container_pids("ps").len() == 2
    });
    let want = c.container_pids("ps");
    assert!(want.contains(&init));
    let out = c.ctr(&["task", "ps", "ps"]).ok();
    let got: BTreeSet<i32> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(got, want, "ctr task ps:\n{out}");
    c.remove("ps");
    c.finish();
}

fn freezer_state(c: &Ctrd, id: &str) -> Option<String> {
    std::fs::read_to_string(
        Path::new("/sys/fs/cgroup/freezer")
            .join(&c.ns)
            .join(id)
            .join("freezer.state"),
    )
    .ok()
    .map(|s| s.trim().to_owned())
}

#[test]
fn task_pause_and_resume() {
    let mut c = Ctrd::new();
    let tap = c.tap();
    c.run_detached(
        "pz",
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done",
        ],
    );
    let counter = c.rootfs("pz").join("tmp/n");
    let read = || -> u64 {
        std::fs::read_to_string(&counter)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    eventually("counter running", Duration::from_secs(10), || read() > 2);
    c.ctr(&["task", "pause", "pz"]).ok();
    assert_eq!(c.task("pz").unwrap().1, "PAUSED");
    if let Some(s) = freezer_state(&c, "pz") {
        assert_eq!(s, "FROZEN");
    }
    let a = read();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read(), a, "counter advanced while paused");
    tap.wait_for(&c.ns, "/tasks/paused", |e| {
        e.topic == "/tasks/paused" && e.body["container_id"] == "pz"
    });
    c.ctr(&["task", "resume", "pz"]).ok();
    assert_eq!(c.task("pz").unwrap().1, "RUNNING");
    eventually(
        "counter advancing after resume",
        Duration::from_secs(10),
        || read() > a + 2,
    );
    tap.wait_for(&c.ns, "/tasks/resumed", |e| {
        e.topic == "/tasks/resumed" && e.body["container_id"] == "pz"
    });
    // kill of a paused container works (thawed as needed) and reports 137.
    c.ctr(&["task", "pause", "pz"]).ok();
    c.remove("pz");
    let text = tap.stop();
    let evs: Vec<Ev> = parse_events(&text)
        .into_iter()
        .filter(|e| e.ns == c.ns)
        .collect();
    let exit = evs
        .iter()
        .find(|e| e.topic == "/tasks/exit" && e.body["id"] == "pz")
        .unwrap_or_else(|| panic!("no exit event for pz:\n{text}"));
    assert_eq!(exit.body["exit_status"], 137, "{text}");
    c.finish();
}

#[test]
fn task_metrics() {
    let c = Ctrd::new();
    c.run_detached("mt", &["sleep", "1000"]);
    let out = c.ctr(&["task", "metrics", "mt"]);
    let text = out.ok();
    assert!(text.contains("pids.current"), "ctr task metrics:\n{text}");
    assert!(
        text.contains("memory.usage_in_bytes") || text.contains("memory.usage"),
        "ctr task metrics:\n{text}"
    );
    let json = c.ctr(&["task", "metrics", "--format", "json", "mt"]).ok();
    let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    // cgroup v1 (io.containerd.cgroups.v1.Metrics) or v2 (io.containerd.cgroups.v2.Metrics).
    let pids = v["pids"]["current"].as_u64().unwrap_or(0);
    assert_eq!(pids, 1, "pids.current: {json}");
    let mem = v["memory"]["usage"]["usage"]
        .as_u64()
        .or_else(|| v["memory"]["usage"].as_u64())
        .unwrap_or(0);
    assert!(mem > 0, "memory usage: {json}");
    // What the CRI's working set and page-fault figures come from, and on cgroup
    // v1 the CPU time of each CPU.
    let v1 = v["memory"]["total_rss"].is_u64() || v["memory"]["rss"].is_u64();
    if v1 {
        let rss = v["memory"]["total_rss"].as_u64().unwrap_or(0);
        assert!(rss > 0, "memory.total_rss: {json}");
        assert!(
            v["memory"]["total_pg_fault"].as_u64().unwrap_or(0) > 0,
            "{json}"
        );
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_cpu = v["cpu"]["usage"]["per_cpu"]
            .as_array()
            .unwrap_or_else(|| panic!("cpu.usage.per_cpu: {json}"));
        assert!(
            per_cpu.len() >= cpus,
            "per_cpu has {} of {cpus}: {json}",
            per_cpu.len()
        );
    } else {
        assert!(
            v["memory"]["anon"].as_u64().unwrap_or(0) > 0,
            "memory.anon: {json}"
        );
    }
    c.remove("mt");
    c.finish();
}

#[test]
fn oom_event() {
    let mut c = Ctrd::new();
    let tap = c.tap();
    c.run(
        &["-d", "--memory-limit", "33554432"],
        "oom",
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/null bs=128M count=1; echo dd=$?; sleep 1000",
        ],
    )
    .ok();
    tap.wait_for(&c.ns, "/tasks/oom", |e| {
        e.topic == "/tasks/oom" && e.body["container_id"] == "oom"
    });
    c.remove("oom");
    drop(tap);
    c.finish();
}

#[test]
fn task_delete_and_container_rm() {
    let c = Ctrd::new();
    c.run_detached("del", &["sleep", "1000"]);
    // Neither goes while the task runs, and both say why.
    let out = c.ctr(&["task", "delete", "del"]);
    assert_ne!(out.code, 0, "delete of a running task succeeded");
    assert!(
        out.err().contains("stopped") || out.err().contains("running"),
        "{}",
        out.err()
    );
    let out = c.ctr(&["container", "rm", "del"]);
    assert_ne!(out.code, 0, "container rm with a running task succeeded");
    assert_eq!(c.task("del").unwrap().1, "RUNNING");
    // delete -f kills and deletes.
    c.ctr(&["task", "delete", "-f", "del"]).ok();
    assert_eq!(c.task("del"), None);
    assert!(
        !c.rootfs_mounted("del"),
        "rootfs still mounted after task delete"
    );
    assert!(c.container_pids("del").is_empty());
    assert!(
        !Path::new(SHIM_RUNTIME_ROOT)
            .join(&c.ns)
            .join("del")
            .exists(),
        "libcontainer state left after task delete"
    );
    c.ctr(&["container", "rm", "del"]).ok();
    assert!(!c.bundle("del").exists(), "bundle left after container rm");
    // A task that exited by itself deletes too.
    c.run_detached("del2", &["sh", "-c", "exit 2"]);
    c.wait_status("del2", "STOPPED");
    c.ctr(&["task", "delete", "del2"]).ok();
    c.ctr(&["container", "rm", "del2"]).ok();
    c.finish();
}

#[test]
fn event_stream_order_and_fields() {
    let mut c = Ctrd::new();
    let tap = c.tap();
    let id = "evt";
    c.ctr(&[
        "container",
        "create",
        "--runtime",
        RUNTIME,
        IMAGE,
        id,
        "sleep",
        "1000",
    ])
    .ok();
    c.ctr(&["task", "start", "-d", id]).ok();
    let init = c.task_pid(id).unwrap();
    let out = c.ctr(&["task", "exec", "--exec-id", "x1", id, "sh", "-c", "exit 5"]);
    out.code(5);
    c.ctr(&["task", "kill", "-s", "SIGKILL", id]).ok();
    c.wait_status(id, "STOPPED");
    c.ctr(&["task", "delete", id]).ok();
    c.ctr(&["container", "rm", id]).ok();
    tap.wait_for(&c.ns, "/containers/delete", |e| {
        e.topic == "/containers/delete"
    });
    let text = tap.stop();
    let evs: Vec<Ev> = parse_events(&text)
        .into_iter()
        .filter(|e| e.ns == c.ns && e.topic.starts_with("/tasks/"))
        .collect();
    let topics: Vec<&str> = evs.iter().map(|e| e.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "events:\n{text}"
    );
    let b: Vec<&Value> = evs.iter().map(|e| &e.body).collect();
    for e in &b {
        assert_eq!(e["container_id"], id, "{text}");
    }
    assert_eq!(b[0]["pid"], init, "create pid: {text}");
    assert_eq!(b[0]["bundle"], c.bundle(id).display().to_string(), "{text}");
    assert_eq!(b[1]["pid"], init, "start pid: {text}");
    assert_eq!(b[2]["exec_id"], "x1", "{text}");
    assert_eq!(b[3]["exec_id"], "x1", "{text}");
    let exec_pid = b[3]["pid"].as_i64().unwrap_or(0);
    assert!(
        exec_pid > 0 && exec_pid != i64::from(init),
        "exec-started pid: {text}"
    );
    assert_eq!(b[4]["id"], "x1", "{text}");
    assert_eq!(b[4]["pid"], exec_pid, "{text}");
    assert_eq!(b[4]["exit_status"], 5, "{text}");
    assert_eq!(b[5]["id"], id, "{text}");
    assert_eq!(b[5]["pid"], init, "{text}");
    assert_eq!(b[5]["exit_status"], 137, "{text}");
    assert_eq!(b[6]["pid"], init, "{text}");
    assert_eq!(b[6]["exit_status"], 137, "{text}");
    for e in [b[4], b[5], b[6]] {
        assert!(e["exited_at"].is_string(), "exited_at: {text}");
    }
    c.finish();
}

#[test]
fn delete_contract_after_shim_killed() {
    let mut c = Ctrd::new();
    let tap = c.tap();
    let init = c.run_detached("lost", &["sleep", "1000"]);
    let shim = c.shim_pid("lost").expect("no shim for lost");
    assert!(c.rootfs_mounted("lost"));
    kill(shim, nix::sys::signal::Signal::SIGKILL);
    // containerd notices the lost shim and runs `containerd-shim-berth-v1 delete`;
    // `ctr task delete` then works, or says the task is already gone.
    eventually("task lost cleaned up", Duration::from_secs(30), || {
        let out = c.ctr(&["task", "delete", "lost"]);
        out.code == 0 || out.err().contains("not found")
    });
    let exit = tap.wait_for(&c.ns, "/tasks/exit of lost", |e| {
        e.topic == "/tasks/exit" && e.body["container_id"] == "lost"
    });
    assert_eq!(exit.body["exit_status"], 137, "{}", tap.text());
    eventually("init gone", Duration::from_secs(10), || !alive(init));
    assert!(c.container_pids("lost").is_empty());
    assert!(
        !c.rootfs_mounted("lost"),
        "rootfs still mounted after delete"
    );
    assert!(
        !Path::new(SHIM_RUNTIME_ROOT)
            .join(&c.ns)
            .join("lost")
            .exists(),
        "libcontainer state left"
    );
    c.ctr(&["container", "rm", "lost"]).ok();
    drop(tap);
    c.finish();
}

/// The `delete` action run by hand, as containerd does for a shim it lost.
#[test]
fn delete_binary_answers_137() {
    require_root();
    let dir = PathBuf::from(format!("/tmp/bc-{}-del", std::process::id()));
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    let mut cmd = Command::new(shim_bin());
    cmd.current_dir(&dir).args([
        "-namespace",
        &format!("bcdel{}", std::process::id()),
        "-id",
        "ghost",
        "-bundle",
        &dir.display().to_string(),
        "delete",
    ]);
    let out = run_timeout(cmd, None, Duration::from_secs(20), "shim delete".into());
    let _ = std::fs::remove_dir_all(&dir);
    out.code(0);
    // DeleteResponse { exit_status (field 2, varint) = 137 } → 0x10 0x89 0x01
    assert!(
        out.stdout.windows(3).any(|w| w == [0x10, 0x89, 0x01]),
        "no exit_status 137 in {:?}",
        out.stdout
    );
}

#[test]
fn shim_version_answers() {
    let out = run_timeout(
        {
            let mut c = Command::new(shim_bin());
            c.arg("-v");
            c
        },
        None,
        Duration::from_secs(10),
        format!("{SHIM} -v"),
    );
    let text = out.ok();
    assert!(text.contains(SHIM) && text.contains("Version:"), "{text}");
}

#[test]
fn shim_info_answers() {
    let out = run_timeout(
        {
            let mut c = Command::new(shim_bin());
            c.arg("-info");
            c
        },
        None,
        Duration::from_secs(10),
        format!("{SHIM} -info"),
    );
    out.code(0);
    assert!(!out.stdout.is_empty(), "-info printed nothing");
}

/// What berth's shim does not support answers NotImplemented and the shim lives
/// on: here a checkpoint of a container with a terminal (CRIU would need the
/// terminal's other end, which only the shim holds).
#[test]
fn unsupported_request_is_not_implemented() {
    need("script", "bsdutils");
    let c = Ctrd::new();
    let argv = c.ctr_argv(&[
        "run",
        "-d",
        "--tty",
        "--runtime",
        RUNTIME,
        IMAGE,
        "ni",
        "sleep",
        "1000",
    ]);
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &quote(&argv), "/dev/null"]);
    run_timeout(
        cmd,
        None,
        Duration::from_secs(60),
        "ctr run -d --tty".into(),
    )
    .code(0);
    let init = c
        .task_pid("ni")
        .expect("ni: not in `ctr task ls` after run -d --tty");
    let shim = c.shim_pid("ni").unwrap();
    let out = c.ctr(&["task", "checkpoint", "ni"]);
    assert_ne!(out.code, 0, "checkpoint succeeded: {}", out.out());
    let err = out.err();
    // The shim still answers, with the same task.
    assert!(alive(shim), "shim died on checkpoint");
    assert_eq!(c.task("ni"), Some((init, "RUNNING".to_owned())));
    c.ctr(&["task", "exec", "--exec-id", "after", "ni", "true"])
        .ok();
    c.remove("ni");
    c.finish();
    // containerd maps ttrpc UNIMPLEMENTED to errdefs.ErrNotImplemented.
    assert!(
        err.contains("not implemented") && err.contains("terminal"),
        "ctr task checkpoint: want NotImplemented, got: {err}"
    );
}

/// `ctr container checkpoint --task` and `ctr container restore --live` go through
/// berth's shim (Checkpoint, then Create with the checkpoint and Start): the
/// restored task's counter goes on from where it was, not from 0.
#[test]
fn ctr_checkpoint_and_restore_through_the_shim() {
    berth_e2e::require_criu();
    let c = Ctrd::new();
    c.run_detached(
        "cr",
        &[
            "sh",
            "-c",
            "i=0; while :; do echo $i > /tmp/n; i=$((i+1)); sleep 0.1; done",
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let count = |exec_id: &str| -> u64 {
        let out = c
            .ctr(&["task", "exec", "--exec-id", exec_id, "cr", "cat", "/tmp/n"])
            .ok();
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("counter {out:?}"))
    };
    let before = count("n0");
    assert!(before >= 5, "counter at {before} after 1.5 s");
    c.ctr(&["container", "checkpoint", "--task", "cr", "berth-e2e/cr:1"])
        .ok();
    c.remove("cr");
    c.ctr(&["container", "restore", "--live", "cr", "berth-e2e/cr:1"])
        .ok();
    c.wait_status("cr", "RUNNING");
    std::thread::sleep(Duration::from_millis(300));
    let after = count("n1");
    c.remove("cr");
    c.ctr(&["images", "rm", "berth-e2e/cr:1"]).ok();
    c.finish();
    assert!(
        after >= before,
        "restored counter at {after}, below {before} where it was checkpointed"
    );
}

/// Forwarding events is best effort: with containerd gone, the container keeps
/// running, exits, and its shim outlives the failed forwarding.
#[test]
fn shim_survives_when_nothing_listens_for_events() {
    let mut c = Ctrd::new();
    let init = c.run_detached("nl", &["sh", "-c", "sleep 2; exit 7"]);
    let shim = c.shim_pid("nl").unwrap();
    c.stop();
    assert!(
        alive(init) && alive(shim),
        "init or shim died with containerd"
    );
    eventually("init exits by itself", Duration::from_secs(20), || {
        !alive(init)
    });
    // Forwarding the exit fails (nothing listens); the shim waits on.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        alive(shim),
        "shim died while nothing listened for its events"
    );
    assert!(
        std::os::unix::net::UnixStream::connect(c.shim_socket("nl")).is_ok(),
        "shim socket does not accept"
    );
    // Let containerd clean up as after a lost shim (reconnecting is tested by
    // containerd_restart_reconnects_to_shims).
    kill(shim, nix::sys::signal::Signal::SIGKILL);
    c.start();
    eventually("nl cleaned up", Duration::from_secs(30), || {
        c.task("nl").is_none()
    });
    c.ctr(&["container", "rm", "nl"]).ok();
    c.finish();
}

/// containerd restarts (an upgrade on a node): it finds the running shims again,
/// the running container keeps running, and an exit that happened while it was
/// away is reported with its real status. The delete is asked for while that exit
/// may still be in the shim's retries; the shim's /tasks/delete (containerd 1.6
/// publishes none itself for a live shim) must not be lost when it shuts down.
#[test]
fn containerd_restart_reconnects_to_shims() {
    let mut c = Ctrd::new();
    let init = c.run_detached("rs", &["sleep", "1000"]);
    c.run_detached("rx", &["sh", "-c", "sleep 1; exit 7"]);
    c.stop();
    std::thread::sleep(Duration::from_secs(2));
    c.start();
    let tap = c.tap();
    assert_eq!(
        c.task("rs"),
        Some((init, "RUNNING".to_owned())),
        "after restart:\n{}",
        c.log_tail()
    );
    assert!(alive(init));
    c.ctr(&["task", "exec", "--exec-id", "r1", "rs", "true"])
        .ok();
    c.wait_status("rx", "STOPPED");
    c.ctr(&["task", "delete", "rx"]).ok();
    let del = tap.wait_for(&c.ns, "/tasks/delete of rx", |e| {
        e.topic == "/tasks/delete" && e.body["container_id"] == "rx"
    });
    assert_eq!(del.body["exit_status"], 7, "{}", tap.text());
    c.ctr(&["container", "rm", "rx"]).ok();
    c.remove("rs");
    drop(tap);
    c.finish();
}

/// A shim that containerd shut down removes its socket (as the runc shim does).
#[test]
fn shim_socket_is_removed_after_delete() {
    let c = Ctrd::new();
    c.run(&["--rm"], "sk", &["true"]).ok();
    let sock = c.shim_socket("sk");
    eventually("shim gone", Duration::from_secs(10), || {
        c.shim_pid("sk").is_none()
    });
    let left = sock.exists();
    c.finish();
    assert!(
        !left,
        "{} left after the container was removed",
        sock.display()
    );
}

/// `ctr run --log-uri`: `file://` appends both streams to the file; `binary://`
/// hands them to a logging binary on its descriptors 3 and 4, with the
/// container's id and namespace in its environment (as nerdctl uses it).
#[test]
fn log_uri_file_and_binary() {
    let c = Ctrd::new();
    let file = c.base.join("out.log");
    let uri = format!("file://{}", file.display());
    c.run(
        &["--rm", "--log-uri", &uri],
        "lf",
        &["sh", "-c", "echo to-out; echo to-err >&2"],
    )
    .ok();
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        text.contains("to-out") && text.contains("to-err"),
        "{text:?}"
    );

    let logger = c.base.join("logger.sh");
    let got = c.base.join("binary.log");
    std::fs::write(
        &logger,
        format!(
            "#!/bin/sh\necho \"id=$CONTAINER_ID ns=$CONTAINER_NAMESPACE arg=$1\" >{got}\n\
             exec 5>&-\ncat <&3 >>{got} &\ncat <&4 >>{got}\nwait\n",
            got = got.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let uri = format!("binary://{}?tag", logger.display());
    c.run(
        &["--rm", "--log-uri", &uri],
        "lb",
        &["sh", "-c", "echo bin-out; echo bin-err >&2"],
    )
    .ok();
    let mut text = String::new();
    eventually(
        "the logger wrote both streams",
        Duration::from_secs(10),
        || {
            text = std::fs::read_to_string(&got).unwrap_or_default();
            text.contains("bin-out") && text.contains("bin-err")
        },
    );
    assert!(
        text.starts_with(&format!("id=lb ns={} arg=tag", c.ns)),
        "{text:?}"
    );
    c.finish();
}

/// `ctr run --null-io`: output nobody takes can still be written (libcontainer
/// would reopen a /dev/null stdout read-only and every write would fail).
#[test]
fn null_io_output_is_writable() {
    let c = Ctrd::new();
    c.run(
        &["--rm", "--null-io"],
        "nio",
        &["sh", "-c", "echo out && echo err >&2"],
    )
    .ok();
    c.finish();
}

/// /tasks/delete carries the time the task exited (as the runc shim sends it),
/// not the time of the delete.
#[test]
fn delete_event_carries_the_exit_time() {
    let mut c = Ctrd::new();
    let tap = c.tap();
    c.run_detached("dt", &["true"]);
    let exit = tap.wait_for(&c.ns, "/tasks/exit of dt", |e| {
        e.topic == "/tasks/exit" && e.body["container_id"] == "dt"
    });
    std::thread::sleep(Duration::from_millis(1200));
    c.ctr(&["task", "delete", "dt"]).ok();
    let del = tap.wait_for(&c.ns, "/tasks/delete of dt", |e| {
        e.topic == "/tasks/delete" && e.body["container_id"] == "dt"
    });
    assert_eq!(
        del.body["exited_at"],
        exit.body["exited_at"],
        "{}",
        tap.text()
    );
    c.ctr(&["container", "rm", "dt"]).ok();
    drop(tap);
    c.finish();
}
