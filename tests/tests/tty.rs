//! Terminals: `run -t` and `exec -t` allocate a pty, its size follows the calling
//! terminal (resizes included), `-it` is interactive, Ctrl-C is a byte through the
//! container's line discipline, and the caller's terminal mode comes back after;
//! `create -it` then `start -ai` is as interactive as `run -it`.
//!
//! The interactive tests drive the real CLI on a real terminal: a tmux server of the
//! test's own (`tmux -L <socket>`), whose pane runs a host shell in which the test
//! types `berth ...` with `send-keys`, resizes with `resize-window`, and reads the
//! screen with `capture-pane`. tmux must be installed (CI: `apt-get install tmux`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{alive, berth_bin, eventually, shim_bin, Env};

/// A tmux server of this test's own with one session, whose pane runs `/bin/sh` with
/// the test's roots in its environment. Killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(env: &Env, cols: u16, rows: u16) -> Tmux {
        let have = Command::new("tmux").arg("-V").output();
        assert!(
            have.is_ok_and(|o| o.status.success()),
            "SKIPPED: tmux is not installed (apt-get install -y tmux)"
        );
        let socket = format!(
            "berth-e2e-{}",
            env.base.file_name().unwrap().to_string_lossy()
        );
        let bin_dir = berth_bin().parent().unwrap().to_path_buf();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let shell = format!(
            "exec env BERTH_ROOT={} BERTH_DATA_ROOT={} BERTH_SHIM={} PATH={} PS1='$ ' \
             ENV= /bin/sh",
            env.root.display(),
            env.data.display(),
            shim_bin().display(),
            path
        );
        let t = Tmux { socket };
        let st = t
            .cmd()
            .args(["-f", "/dev/null", "new-session", "-d", "-s", "t", "-x"])
            .arg(cols.to_string())
            .arg("-y")
            .arg(rows.to_string())
            .arg(shell)
            .status()
            .expect("tmux new-session");
        assert!(st.success(), "tmux new-session failed");
        // Keep panes around after their shell exits, so a failure can be read.
        t.run(&["set-option", "-g", "remain-on-exit", "on"]);
        t.run(&["set-option", "-g", "history-limit", "5000"]);
        t.wait_for("host shell prompt", |s| s.contains("$ "));
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-L").arg(&self.socket);
        c.stdin(Stdio::null());
        c
    }

    #[track_caller]
    fn run(&self, args: &[&str]) -> String {
        let o = self.cmd().args(args).output().expect("tmux");
        assert!(
            o.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Types `text` literally, then Enter.
    fn line(&self, text: &str) {
        self.run(&["send-keys", "-t", "t", "-l", text]);
        self.run(&["send-keys", "-t", "t", "Enter"]);
    }

    fn keys(&self, key: &str) {
        self.run(&["send-keys", "-t", "t", key]);
    }

    fn resize(&self, cols: u16, rows: u16) {
        self.run(&[
            "resize-window",
            "-t",
            "t",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ]);
    }

    /// The pane's screen and history, with lines joined where they wrapped.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-J", "-t", "t", "-S", "-5000"])
    }

    /// Waits until `f(screen)` holds (10 s), else fails showing the screen.
    #[track_caller]
    fn wait_for(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if f(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{what}: not on the screen within 10 s:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a screen line that is exactly `want` (output, not the typed command).
    #[track_caller]
    fn wait_line(&self, want: &str) -> String {
        self.wait_for(want, |s| s.lines().any(|l| l.trim_end() == want))
    }

    /// Types `echo M<n>=$(stty size)=` in the shell on the pane and returns the
    /// `ROWS COLS` it printed.
    #[track_caller]
    fn stty_size(&self, n: &mut u32) -> String {
        *n += 1;
        let tag = format!("M{n}=");
        self.line(&format!("echo M{n}=$(stty size)="));
        let s = self.wait_for(&format!("stty size #{n}"), |s| {
            s.lines()
                .any(|l| l.starts_with(&tag) && l.trim_end().ends_with('='))
        });
        let l = s.lines().find(|l| l.starts_with(&tag)).unwrap().trim_end();
        l[tag.len()..l.len() - 1].to_owned()
    }

    /// Asks for the size until it is `want` (the resize travels asynchronously:
    /// SIGWINCH to the CLI, then to the shim); fails with the last one seen.
    #[track_caller]
    fn expect_size(&self, n: &mut u32, cols: u16, rows: u16, what: &str) {
        let want = format!("{rows} {cols}");
        let start = Instant::now();
        loop {
            let got = self.stty_size(n);
            if got == want {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{what}: stty size {got:?}, want {want:?}\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The host shell's `echo rc=$?` after the CLI returned.
    #[track_caller]
    fn wait_rc(&self, tag: &str) -> i32 {
        let prefix = format!("{tag}=");
        let s = self.wait_for(&format!("{tag} exit code"), |s| {
            s.lines()
                .any(|l| l.starts_with(&prefix) && l[prefix.len()..].trim().parse::<i32>().is_ok())
        });
        let l = s.lines().find(|l| l.starts_with(&prefix)).unwrap();
        l[prefix.len()..].trim().parse().unwrap()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .arg("kill-server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Reads a file the host shell in the pane wrote.
fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `stty -a` shows `icanon` and `echo` on (not `-icanon`, `-echo`).
#[track_caller]
fn assert_cooked(stty_a: &str) {
    let words: Vec<&str> = stty_a
        .split(|c: char| c.is_whitespace() || c == ';')
        .collect();
    for w in ["icanon", "echo", "isig", "icrnl", "opost"] {
        assert!(
            words.contains(&w),
            "{w} is off after the CLI exited:\n{stty_a}"
        );
    }
}

/// The host shell saves its terminal mode before the CLI runs and after; they match.
fn save_mode(t: &Tmux, env: &Env, tag: &str) {
    t.line(&format!(
        "stty -g > {b}/{tag}.g; stty -a > {b}/{tag}.a; echo saved-{tag}",
        b = env.base.display()
    ));
    t.wait_line(&format!("saved-{tag}"));
}

#[track_caller]
fn assert_mode_restored(env: &Env, before: &str, after: &str) {
    let b = read(&env.base.join(format!("{before}.g")));
    let a = read(&env.base.join(format!("{after}.g")));
    assert_eq!(a, b, "stty -g differs after the CLI exited");
    assert_cooked(&read(&env.base.join(format!("{after}.a"))));
}

#[test]
fn t_allocates_a_pty_for_init_and_exec() {
    let env = Env::new("tpty");
    // Without a terminal on the caller's side: the container still gets a pty.
    let name = env.name("r");
    let out = env.berth(&["run", "--rm", "-t", "--name", &name, "--", "tty"]);
    let text = out.ok();
    assert!(
        text.starts_with("/dev/pts/")
            && text.trim_end()["/dev/pts/".len()..].parse::<u32>().is_ok(),
        "run -t: tty printed {text:?}"
    );
    // A pty's output side turns \n into \r\n.
    assert!(text.ends_with("\r\n"), "{text:?}");

    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    let out = env.berth(&["exec", "-t", &name, "--", "tty"]);
    let text = out.ok();
    assert!(
        text.starts_with("/dev/pts/")
            && text.trim_end()["/dev/pts/".len()..].parse::<u32>().is_ok(),
        "exec -t: tty printed {text:?}"
    );
    // stdin and stdout are both the terminal.
    let out = env.berth(&[
        "exec",
        "-t",
        &name,
        "--",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo both",
    ]);
    let text = out.ok();
    assert!(text.starts_with("both\r\n"), "{text:?}");
    // Without -t: no terminal, `tty` says so and exits 1.
    let out = env.berth(&["exec", &name, "--", "tty"]);
    out.code(1);
    assert_eq!(out.out(), "not a tty\n");
    // Exit codes pass through a pty too.
    env.berth(&["exec", "-t", &name, "--", "sh", "-c", "exit 5"])
        .code(5);
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn run_it_size_follows_the_terminal_and_its_resizes() {
    let env = Env::new("trun");
    let name = env.name("c");
    let t = Tmux::new(&env, 91, 27);
    save_mode(&t, &env, "before");
    t.line(&format!(
        "berth run -it --rm --name {name} -- sh; echo rc=$?"
    ));
    t.wait_for("container prompt", |s| {
        s.lines().any(|l| l.starts_with("# "))
    });
    let mut n = 0;
    t.expect_size(&mut n, 91, 27, "run -it at start");
    t.resize(120, 40);
    t.expect_size(&mut n, 120, 40, "run -it after a resize");
    t.resize(70, 20);
    t.expect_size(&mut n, 70, 20, "run -it after a second resize");
    t.line("exit 4");
    assert_eq!(t.wait_rc("rc"), 4);
    save_mode(&t, &env, "after");
    assert_mode_restored(&env, "before", "after");
    drop(t);
    env.finish();
}

/// `create -it` then `start -ai`: the terminal is the one `start` runs on (its
/// size, then its resizes), typed lines reach the shell, and the mode comes back.
#[test]
fn create_it_then_start_ai_is_an_interactive_terminal() {
    let env = Env::new("tcst");
    let name = env.name("c");
    env.berth(&["create", "-it", "--name", &name, "--", "sh"])
        .code(0);
    let t = Tmux::new(&env, 83, 25);
    save_mode(&t, &env, "before");
    t.line(&format!("berth start -ai {name}; echo rc=$?"));
    t.wait_for("container prompt", |s| {
        s.lines().any(|l| l.starts_with("# "))
    });
    let mut n = 0;
    t.expect_size(&mut n, 83, 25, "start -ai at start");
    t.resize(100, 33);
    t.expect_size(&mut n, 100, 33, "start -ai after a resize");
    t.line("echo h''i");
    t.wait_line("hi");
    t.line("exit 5");
    assert_eq!(t.wait_rc("rc"), 5);
    save_mode(&t, &env, "after");
    assert_mode_restored(&env, "before", "after");
    drop(t);
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

#[test]
fn exec_it_size_follows_the_terminal_and_its_resizes() {
    let env = Env::new("texe");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    let t = Tmux::new(&env, 93, 29);
    save_mode(&t, &env, "before");
    t.line(&format!("berth exec -it {name} -- sh; echo rc=$?"));
    t.wait_for("container prompt", |s| {
        s.lines().any(|l| l.starts_with("# "))
    });
    let mut n = 0;
    t.expect_size(&mut n, 93, 29, "exec -it at start");
    t.resize(131, 41);
    t.expect_size(&mut n, 131, 41, "exec -it after a resize");
    t.resize(60, 15);
    t.expect_size(&mut n, 60, 15, "exec -it after a second resize");
    t.line("exit 6");
    assert_eq!(t.wait_rc("rc"), 6);
    save_mode(&t, &env, "after");
    assert_mode_restored(&env, "before", "after");
    drop(t);
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

/// A resize right after the CLI starts (while the exec is being created) is never
/// lost: the container ends up with the terminal's latest size.
#[test]
fn resize_right_after_exec_starts_is_not_lost() {
    let env = Env::new("trac");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    let t = Tmux::new(&env, 80, 24);
    let mut n = 0;
    for (i, delay_ms) in [0u64, 5, 20, 50, 100].into_iter().enumerate() {
        let cols = 100 + i as u16 * 7;
        let rows = 30 + i as u16;
        let before = t.screen().lines().filter(|l| l.starts_with("# ")).count();
        t.line(&format!("berth exec -it {name} -- sh; echo rc{i}=$?"));
        std::thread::sleep(Duration::from_millis(delay_ms));
        t.resize(cols, rows);
        let prompts = |s: &str| s.lines().filter(|l| l.starts_with("# ")).count();
        t.wait_for("container prompt", |s| prompts(s) > before);
        t.expect_size(
            &mut n,
            cols,
            rows,
            &format!("resize {delay_ms} ms after exec -it"),
        );
        t.line("exit");
        assert_eq!(t.wait_rc(&format!("rc{i}")), 0);
        t.resize(80, 24);
    }
    drop(t);
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn exec_it_is_interactive_and_ctrl_c_is_a_byte_for_the_containers_terminal() {
    let env = Env::new("tint");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    let init_pid = env.inspect(&name)["State"]["Pid"].as_i64().unwrap() as i32;
    let t = Tmux::new(&env, 100, 30);
    save_mode(&t, &env, "before");

    // Typed lines reach an interactive shell, output comes back.
    t.line(&format!("berth exec -it {name} -- sh; echo rcA=$?"));
    t.wait_for("container prompt", |s| {
        s.lines().any(|l| l.starts_with("# "))
    });
    t.line("echo h''i");
    t.wait_line("hi");
    t.line("exit");
    assert_eq!(t.wait_rc("rcA"), 0);

    // Ctrl-C: the byte 0x03 reaches the container's pty, whose line discipline turns
    // it into SIGINT for the foreground group (cat dies, the shell's trap runs). The
    // CLI itself lives on: it still carries the next line in and the shell's exit
    // code out.
    t.line(&format!(
        "berth exec -it {name} -- sh -c 'trap \"echo got-int\" INT; echo cat-ready; cat; \
         echo after-cat; read x; echo read-$x; exit 9'; echo rcB=$?"
    ));
    t.wait_line("cat-ready");
    t.line("typed-to-cat");
    // cat echoes the line back (once from the pty's echo, once from cat).
    t.wait_for("cat echo", |s| {
        s.lines().filter(|l| l.trim_end() == "typed-to-cat").count() >= 2
    });
    t.keys("C-c");
    t.wait_for("got-int", |s| {
        s.lines().any(|l| l.trim_end().ends_with("got-int"))
    });
    t.wait_line("after-cat");
    t.line("more");
    t.wait_line("read-more");
    assert_eq!(t.wait_rc("rcB"), 9);
    save_mode(&t, &env, "after");
    assert_mode_restored(&env, "before", "after");

    // Ctrl-C as a byte also leaves the terminal in stty's hands: with isig off in the
    // container, 0x03 arrives as data.
    t.line(&format!(
        "berth exec -it {name} -- sh -c 'stty -isig; echo raw-ready; \
         head -c 1 | od -An -tx1'; echo rcC=$?"
    ));
    t.wait_line("raw-ready");
    t.keys("C-c");
    t.keys("Enter");
    t.wait_for("0x03 through od", |s| s.lines().any(|l| l.trim() == "03"));
    assert_eq!(t.wait_rc("rcC"), 0);
    save_mode(&t, &env, "after2");
    assert_mode_restored(&env, "before", "after2");

    assert!(alive(init_pid));
    drop(t);
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

/// The caller's terminal comes back on exit paths other than a clean exit: the
/// container killed under an attached `exec -it`, a command that cannot run, and
/// `run -it` whose init is killed.
#[test]
fn terminal_mode_is_restored_on_every_exit_path() {
    let env = Env::new("trst");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    let t = Tmux::new(&env, 100, 30);
    save_mode(&t, &env, "before");

    // A command that is not found: 127, through -t.
    t.line(&format!(
        "berth exec -it {name} -- no-such-cmd; echo rcA=$?"
    ));
    assert_eq!(t.wait_rc("rcA"), 127);
    save_mode(&t, &env, "a");
    assert_mode_restored(&env, "before", "a");

    // The exec killed from outside while attached.
    t.line(&format!(
        "berth exec -it --process-id victim {name} -- sh -c 'echo victim-ready; exec sleep 1000'; echo rcB=$?"
    ));
    t.wait_line("victim-ready");
    env.berth(&["kill", "--process-id", "victim", "-s", "KILL", &name])
        .code(0);
    assert_eq!(t.wait_rc("rcB"), 137);
    save_mode(&t, &env, "b");
    assert_mode_restored(&env, "before", "b");

    // The whole container killed under an attached exec.
    t.line(&format!(
        "berth exec -it {name} -- sh -c 'echo all-ready; exec sleep 1000'; echo rcC=$?"
    ));
    t.wait_line("all-ready");
    env.berth(&["kill", "-s", "KILL", &name]).code(0);
    assert_eq!(t.wait_rc("rcC"), 137);
    save_mode(&t, &env, "c");
    assert_mode_restored(&env, "before", "c");
    env.berth(&["rm", &name]).code(0);

    // run -it whose init is killed.
    let name2 = env.name("r");
    t.line(&format!(
        "berth run -it --rm --name {name2} -- sh -c 'echo run-ready; exec sleep 1000'; echo rcD=$?"
    ));
    t.wait_line("run-ready");
    env.berth(&["kill", "-s", "KILL", &name2]).code(0);
    assert_eq!(t.wait_rc("rcD"), 137);
    save_mode(&t, &env, "d");
    assert_mode_restored(&env, "before", "d");

    drop(t);
    eventually(
        "run --rm removed its container",
        Duration::from_secs(10),
        || !env.data.join("containers").join(&name2).exists(),
    );
    env.finish();
}

/// `-it` with a stdin that is not a terminal: as with Docker, a clear error rather
/// than a pty that never sees the input's EOF (a pty has no EOF but VEOF, so `cat`
/// would wait forever).
#[test]
fn it_with_a_stdin_that_is_not_a_terminal_is_an_error_not_a_hang() {
    use std::io::Write;
    let env = Env::new("tnot");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    let run_name = env.name("r");
    for args in [
        vec!["exec", "-it", name.as_str(), "--", "cat"],
        vec![
            "run",
            "--rm",
            "-it",
            "--name",
            run_name.as_str(),
            "--",
            "cat",
        ],
    ] {
        let mut child = env
            .cmd(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"abc");
        drop(stdin);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("berth {args:?} with stdin from a pipe: still running after 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_ne!(status.code(), Some(0), "{args:?}");
        assert!(
            err.to_lowercase().contains("tty") || err.contains("terminal"),
            "{args:?}: stderr {err:?}"
        );
    }
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}
