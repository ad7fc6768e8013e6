//! `berth run` attached on the default root: what the process sees inside, what
//! comes out, and exit codes.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use berth_e2e::Env;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[test]
fn init_is_pid_1_in_its_own_namespaces() {
    let env = Env::new("pid");
    let name = env.name("c");
    let out = env.berth(&["run", "--rm", "--name", &name, "--", "sh", "-c", "echo $$"]);
    assert_eq!(out.ok(), "1\n");
    // Only loopback in its own network namespace.
    let name = env.name("n");
    let out = env.berth(&["run", "--rm", "--name", &name, "--", "cat", "/proc/net/dev"]);
    let text = out.ok();
    let ifaces: Vec<&str> = text
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "{text}");
    // ... and loopback is up: its flags say IFF_UP and 127.0.0.1 answers.
    let name = env.name("l");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "cat /sys/class/net/lo/flags; busybox ping -c 1 -W 2 127.0.0.1 >/dev/null && echo answered",
    ]);
    let text = out.ok();
    let mut lines = text.lines();
    let flags = lines
        .next()
        .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok());
    assert!(flags.is_some_and(|f| f & 1 == 1), "lo is not up: {text}");
    assert_eq!(lines.next(), Some("answered"), "{text}");
    env.finish();
}

#[test]
fn hostname_defaults_to_first_12_chars_of_name() {
    let env = Env::new("hst");
    let name = env.name("abcdefghijklmnop");
    let out = env.berth(&["run", "--rm", "--name", &name, "--", "hostname"]);
    let want: String = name.chars().take(12).collect();
    assert_eq!(out.ok(), format!("{want}\n"));
    env.finish();
}

/// Every valid name runs without `--hostname`: `_` is valid in a name but not in
/// a hostname, and the first 12 characters may end with `-` or `.`.
#[test]

fn hostname_default_for_names_that_are_not_hostnames() {
    let env = Env::new("hsn");
    for suffix in ["_app", "-", "."] {
        let mut name = env.name("");
        name.truncate(11);
        name.push_str(suffix);
        name.push('x');
        env.track(&name);
        let out = env.berth(&["run", "--rm", "--name", &name, "--", "hostname"]);
        let h = out.ok();
        assert!(!h.trim().is_empty());
    }
    env.finish();
}

#[test]
fn hostname_flag_sets_it() {
    let env = Env::new("hsf");
    let name = env.name("c");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--hostname",
        "box-one",
        "--",
        "sh",
        "-c",
        "hostname; echo $HOSTNAME",
    ]);
    assert_eq!(out.ok(), "box-one\nbox-one\n");
    env.finish();
}

#[test]
fn env_flags_and_default_path() {
    let env = Env::new("env");
    let name = env.name("c");
    let env_file = env.base.join("envfile");
    std::fs::write(&env_file, "FROM_FILE=yes\n# comment\n").unwrap();
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "-e",
        "FOO=bar",
        "-e",
        "SPACED=a b  c",
        "--env-file",
        env_file.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "printf '%s|%s|%s|%s\\n' \"$FOO\" \"$SPACED\" \"$FROM_FILE\" \"$PATH\"",
    ]);
    assert_eq!(out.ok(), format!("bar|a b  c|yes|{DEFAULT_PATH}\n"));
    env.finish();
}

#[test]
fn workdir_flag() {
    let env = Env::new("cwd");
    let name = env.name("c");
    let out = env.berth(&["run", "--rm", "--name", &name, "-w", "/tmp", "--", "pwd"]);
    assert_eq!(out.ok(), "/tmp\n");
    // Default: /.
    let name = env.name("d");
    let out = env.berth(&["run", "--rm", "--name", &name, "--", "pwd"]);
    assert_eq!(out.ok(), "/\n");
    env.finish();
}

#[test]

fn workdir_missing_is_created_for_init() {
    let env = Env::new("cwm");
    let name = env.name("c");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "-w",
        "/srv/new/dir",
        "--",
        "pwd",
    ]);
    assert_eq!(out.ok(), "/srv/new/dir\n");
    env.finish();
}

#[test]
fn user_numeric() {
    let env = Env::new("usn");
    let name = env.name("c");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "-u",
        "1000:1000",
        "--",
        "sh",
        "-c",
        "id -u; id -g",
    ]);
    assert_eq!(out.ok(), "1000\n1000\n");
    env.finish();
}

#[test]
fn user_by_name() {
    let env = Env::new("usr");
    let name = env.name("c");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "-u",
        "nobody",
        "--",
        "sh",
        "-c",
        "id -u; id -un; id -g",
    ]);
    assert_eq!(out.ok(), "65534\nnobody\n65534\n");
    // Default: root.
    let name = env.name("d");
    let out = env.berth(&["run", "--rm", "--name", &name, "--", "id", "-u"]);
    assert_eq!(out.ok(), "0\n");
    env.finish();
}

#[test]
fn exit_code_0_and_7() {
    let env = Env::new("ex");
    let name = env.name("z");
    env.berth(&["run", "--rm", "--name", &name, "--", "true"])
        .code(0);
    let name = env.name("s");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "echo hi; exit 7",
    ]);
    out.code(7);
    assert_eq!(out.out(), "hi\n");
    env.finish();
}

#[test]
fn stdout_and_stderr_are_separate() {
    let env = Env::new("std");
    let name = env.name("c");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; echo out2",
    ]);
    assert_eq!(out.ok(), "out\nout2\n");
    assert_eq!(out.err(), "err\n");
    env.finish();
}

#[test]
fn twenty_megabytes_of_stdout_arrive_byte_for_byte() {
    const N: usize = 20_000_000;
    let env = Env::new("big");
    let name = env.name("c");
    let out = env.berth_timeout(
        &[
            "run",
            "--rm",
            "--name",
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
    let want: Vec<u8> = line.iter().copied().cycle().take(N).collect();
    assert_eq!(out.stdout.len(), N, "stdout length");
    if let Some(i) = (0..N).find(|&i| out.stdout[i] != want[i]) {
        panic!("stdout differs from byte {i}");
    }
    env.finish();
}

#[test]
fn stdin_arrives_and_eof_ends_cat() {
    let env = Env::new("in");
    let name = env.name("c");
    // More than a pipe buffer, ending without a newline.
    let mut input = Vec::new();
    for i in 0..20_000 {
        input.extend_from_slice(format!("line {i}\n").as_bytes());
    }
    input.extend_from_slice(b"no newline at the end");
    let out = env.berth_stdin(&["run", "--rm", "-i", "--name", &name, "--", "cat"], &input);
    out.code(0);
    assert!(
        out.stdout == input,
        "cat echoed {} bytes, sent {}",
        out.stdout.len(),
        input.len()
    );
    // And stdin goes through a pipeline in the container.
    let name = env.name("w");
    let out = env.berth_stdin(
        &[
            "run",
            "--rm",
            "-i",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            "wc -l; echo end",
        ],
        b"a\nb\nc\n",
    );
    assert_eq!(
        out.ok().split_whitespace().collect::<Vec<_>>(),
        ["3", "end"]
    );
    env.finish();
}

#[test]
fn without_i_stdin_is_not_forwarded() {
    let env = Env::new("noi");
    let name = env.name("c");
    // Without -i the container's stdin is empty (EOF at once), like Docker's.
    let out = env.berth_stdin(&["run", "--rm", "--name", &name, "--", "cat"], b"secret\n");
    assert_eq!(out.ok(), "");
    env.finish();
}

#[test]
fn volume_ro_cannot_be_written_and_rw_can() {
    let env = Env::new("vol");
    let host = env.base.join("vol");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("seen"), "from host\n").unwrap();
    let ro = format!("{}:/data:ro", host.display());
    let name = env.name("ro");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "-v",
        &ro,
        "--",
        "sh",
        "-c",
        "cat /data/seen; echo x > /data/new",
    ]);
    assert_ne!(out.code, 0, "writing to a :ro volume succeeded");
    assert_eq!(out.out(), "from host\n");
    assert!(out.err().contains("Read-only file system"), "{}", out.err());
    assert!(
        !host.join("new").exists(),
        "a file appeared through a :ro volume"
    );

    for (suffix, spec) in [
        ("rw", format!("{}:/data:rw", host.display())),
        ("df", format!("{}:/data", host.display())),
    ] {
        let name = env.name(suffix);
        env.berth(&[
            "run",
            "--rm",
            "--name",
            &name,
            "-v",
            &spec,
            "--",
            "sh",
            "-c",
            &format!("echo {suffix} > /data/{suffix}"),
        ])
        .code(0);
        assert_eq!(
            std::fs::read_to_string(host.join(suffix)).unwrap(),
            format!("{suffix}\n")
        );
    }
    env.finish();
}

#[test]
fn default_root_hides_the_host() {
    let env = Env::new("hide");
    let name = env.name("c");
    let root = env.root.to_str().unwrap().to_owned();
    let data = env.data.to_str().unwrap().to_owned();
    let script = format!(
        "for p in /root /home /etc/shadow /var {root} {data} {base}; do \
           if test -e $p; then echo visible $p; fi; done; \
         test -x /bin/sh && echo has-sh; \
         touch /usr/berth-e2e 2>/dev/null && echo usr-writable; \
         test -s /etc/passwd && echo has-passwd",
        base = env.base.display()
    );
    let out = env.berth(&["run", "--rm", "--name", &name, "--", "sh", "-c", &script]);
    assert_eq!(out.ok(), "has-sh\nhas-passwd\n");
    assert!(!std::path::Path::new("/usr/berth-e2e").exists());
    env.finish();
}

#[test]
fn attached_run_forwards_sigterm_to_the_container() {
    let env = Env::new("fwd");
    let name = env.name("c");
    let mut child = env
        .cmd(&[
            "run",
            "--rm",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 143' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "got-term");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    env.finish();
}

#[test]
fn attached_run_reports_137_when_killed_from_outside() {
    let env = Env::new("k9");
    let name = env.name("c");
    let mut child = env
        .cmd(&[
            "run",
            "--rm",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 1000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    env.berth(&["kill", &name]).code(0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    env.finish();
}

/// `berth info` says what the host supports, one fact a line.
#[test]
fn info_describes_the_host() {
    let env = Env::new("inf");
    let out = env.berth(&["info"]).ok();
    for key in [
        "Kernel:",
        "Cgroups:",
        "Controllers:",
        "Overlayfs:",
        "Seccomp:",
        "User namespaces:",
        "CRIU:",
        "Shim:",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(key)),
            "{key} missing:\n{out}"
        );
    }
    assert!(out.contains("memory"), "{out}");
    env.finish();
}

#[test]
fn home_is_the_users_own_or_slash_for_one_passwd_does_not_know() {
    let env = Env::new("rhome");
    for (user, want) in [("0", "/root"), ("nobody", "/nonexistent"), ("1000", "/")] {
        let out = env.berth(&["run", "--rm", "-u", user, "--", "sh", "-c", "echo $HOME"]);
        assert_eq!(out.ok(), format!("{want}\n"), "-u {user}");
    }
    // The caller's own HOME stays.
    let out = env.berth(&[
        "run",
        "--rm",
        "-u",
        "1000",
        "-e",
        "HOME=/x",
        "--",
        "sh",
        "-c",
        "echo $HOME",
    ]);
    assert_eq!(out.ok(), "/x\n");
    // An exec as another user gets that user's HOME, not init's.
    let name = env.name("c");
    env.berth(&[
        "run", "-d", "-u", "4242", "--name", &name, "--", "sleep", "1000",
    ])
    .code(0);
    for (user, want) in [
        (None, "/"),
        (Some("root"), "/root"),
        (Some("nobody"), "/nonexistent"),
    ] {
        let mut args = vec!["exec"];
        if let Some(u) = user {
            args.extend(["-u", u]);
        }
        args.extend([name.as_str(), "--", "sh", "-c", "echo $HOME"]);
        assert_eq!(
            env.berth(&args).ok(),
            format!("{want}\n"),
            "exec -u {user:?}"
        );
    }
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}
