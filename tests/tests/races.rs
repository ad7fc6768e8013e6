//! Creations raced by everything an operator can do at the same moment: readers
//! (`ps`, `inspect`), more starts, `rm -f`, and `kill -9` of the creating `berth`.
//! A container is never reported lost while it is being made, is made once, and
//! whatever a killed creation left is cleaned up by the next look at it.

use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_e2e::{eventually, Env};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

fn spawn(env: &Env, args: &[&str]) -> Child {
    env.cmd(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn berth")
}

/// Kills `child` with SIGKILL after `delay`, and reaps it.
fn kill_after(mut child: Child, delay: Duration) {
    std::thread::sleep(delay);
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    child.wait().unwrap();
}

#[test]
fn readers_during_a_start_never_see_it_lost() {
    let env = Env::new("rr");
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = [&["ps", "-a"][..], &["ps", "-a", "--format", "json"][..]]
        .into_iter()
        .map(|args| {
            let stop = stop.clone();
            let mut cmd = env.cmd(args);
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = cmd.status();
                }
            })
        })
        .collect();
    for i in 0..6 {
        let name = env.name(&format!("c{i}"));
        env.berth(&["create", "--name", &name, "--", "sh", "-c", "exit 5"])
            .code(0);
        env.berth(&["inspect", &name]);
        env.berth_timeout(&["start", "-a", &name], Duration::from_secs(30))
            .code(5);
        let events = env.events_of(&name);
        let kinds: Vec<&str> = events.iter().map(|e| e["Type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["create", "start", "exit"], "{name}: {events:?}");
        assert_eq!(events[2]["ExitCode"], 5, "{events:?}");
        env.berth(&["rm", &name]).code(0);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    env.finish();
}

#[test]
fn many_starts_at_once_start_it_once() {
    let env = Env::new("rm");
    let name = env.name("c");
    env.berth(&["create", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let mut cmd = env.cmd(&["start", &name]);
            cmd.stdin(Stdio::null());
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
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), name);
    }
    assert_eq!(env.inspect(&name)["State"]["Status"], "running");
    let starts = env
        .events_of(&name)
        .iter()
        .filter(|e| e["Type"] == "start")
        .count();
    assert_eq!(starts, 1, "started more than once");
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn rm_f_racing_a_start_removes_it_whoever_wins() {
    let env = Env::new("rf");
    for (i, ms) in [0u64, 2, 5, 10, 20, 40].into_iter().enumerate() {
        let name = env.name(&format!("c{i}"));
        env.berth(&["create", "--name", &name, "--", "sleep", "1000"])
            .code(0);
        let mut start = spawn(&env, &["start", &name]);
        std::thread::sleep(Duration::from_millis(ms));
        env.berth(&["rm", "-f", &name]).code(0);
        start.wait().unwrap();
        // Whichever came first, nothing of it is left once both are done.
        env.berth(&["inspect", &name]).code(1);
    }
    env.finish();
}

#[test]
fn a_killed_start_leaves_it_created_or_running_never_lost() {
    let env = Env::new("rk");
    for (i, ms) in [1u64, 5, 10, 15, 20, 30, 50].into_iter().enumerate() {
        let name = env.name(&format!("c{i}"));
        env.berth(&["create", "--name", &name, "--", "sleep", "1000"])
            .code(0);
        kill_after(spawn(&env, &["start", &name]), Duration::from_millis(ms));
        // The killed berth may take a moment to be gone; then the container is
        // either still created (the start never got far) or running (it did).
        let mut status = String::new();
        eventually(&format!("{name} settles"), Duration::from_secs(10), || {
            status = env.inspect(&name)["State"]["Status"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            status == "running" || status == "created"
        });
        if status == "created" {
            // And it starts as any created container does.
            eventually(&format!("{name} starts"), Duration::from_secs(10), || {
                env.berth(&["start", &name]).code == 0
            });
            env.wait_status(&name, "running", Duration::from_secs(10));
        }
        env.berth(&["rm", "-f", &name]).code(0);
    }
    env.finish();
}

#[test]
fn what_a_killed_run_left_goes_at_the_next_look() {
    let env = Env::new("rd");
    for (i, ms) in [1u64, 5, 10, 15, 20, 30, 50].into_iter().enumerate() {
        let name = env.name(&format!("c{i}"));
        kill_after(
            spawn(&env, &["run", "-d", "--name", &name, "--", "sleep", "1000"]),
            Duration::from_millis(ms),
        );
        // `ps` cleans up after a creation that died; one that got through runs.
        let start = Instant::now();
        loop {
            let ps = env.berth(&["ps", "-a", "--format", "json"]).ok();
            let status = ps
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .find(|r| r["Id"] == name.as_str())
                .map(|r| r["Status"].as_str().unwrap_or_default().to_owned());
            match status.as_deref() {
                None | Some("running") => break,
                Some(s) => assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "{name}: {s} after a killed run -d"
                ),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = env.berth(&["rm", "-f", &name]);
        // The name is free again.
        eventually(&format!("{name} reusable"), Duration::from_secs(10), || {
            env.berth(&["run", "--rm", "--name", &name, "--", "true"])
                .code
                == 0
        });
    }
    env.finish();
}

#[test]
fn a_killed_start_of_an_exited_container_never_jams_it() {
    let env = Env::new("rx");
    let name = env.name("c");
    env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
        .code(0);
    for ms in [1u64, 5, 10, 15, 20, 30, 50, 100] {
        env.berth(&["kill", &name]).code(0);
        env.wait_status(&name, "exited", Duration::from_secs(10));
        // Killed anywhere in its teardown of the last run or the new one's making.
        kill_after(spawn(&env, &["start", &name]), Duration::from_millis(ms));
        let out = env.berth_timeout(&["start", &name], Duration::from_secs(90));
        assert_eq!(out.ok().trim(), name, "after a start killed at {ms} ms");
        env.wait_status(&name, "running", Duration::from_secs(10));
    }
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn starts_restarts_and_looks_at_once_leave_one_run() {
    let env = Env::new("rs");
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
    for round in 1..=3 {
        env.berth(&["kill", &name]).code(0);
        env.wait_status(&name, "exited", Duration::from_secs(10));
        let mut all: Vec<(String, std::thread::JoinHandle<std::process::Output>)> = Vec::new();
        for verb in [
            "start", "start", "start", "restart", "ps", "ps", "start", "ps",
        ] {
            let mut cmd = match verb {
                "ps" => env.cmd(&["ps", "-a"]),
                "restart" => env.cmd(&["restart", "-t", "0", &name]),
                _ => env.cmd(&["start", &name]),
            };
            all.push((
                verb.to_owned(),
                std::thread::spawn(move || cmd.output().unwrap()),
            ));
        }
        for (verb, t) in all {
            let o = t.join().unwrap();
            assert!(
                o.status.success() && o.stderr.is_empty(),
                "round {round}: {verb}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        env.wait_status(&name, "running", Duration::from_secs(10));
    }
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn rm_f_racing_many_starts_removes_it_and_a_killed_rm_frees_the_name() {
    let env = Env::new("rm");
    let name = env.name("c");
    for round in 0..4 {
        env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
            .code(0);
        env.berth(&["kill", &name]).code(0);
        env.wait_status(&name, "exited", Duration::from_secs(10));
        let starts: Vec<Child> = (0..4).map(|_| spawn(&env, &["start", &name])).collect();
        env.berth(&["rm", "-f", &name]).code(0);
        for mut s in starts {
            s.wait().unwrap();
        }
        // A start that came after the rm finds no such container; none revives it.
        env.berth(&["inspect", &name]).code(1);
        assert!(
            !env.data.join("containers").join(&name).exists(),
            "round {round}: record dir left"
        );
    }
    // An rm killed anywhere leaves the name usable (removed, or removable).
    for ms in [0u64, 1, 2, 5, 10, 20] {
        env.berth(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
            .code(0);
        kill_after(spawn(&env, &["rm", "-f", &name]), Duration::from_millis(ms));
        let _ = env.berth(&["rm", "-f", &name]);
        env.berth(&["run", "-d", "--name", &name, "--", "true"])
            .code(0);
        env.berth(&["rm", "-f", &name]).code(0);
    }
    env.finish();
}

#[test]
fn an_attached_run_rm_whose_berth_is_killed_is_removed_when_it_exits() {
    let env = Env::new("ra");
    let name = env.name("c");
    kill_after(
        spawn(&env, &["run", "--rm", "--name", &name, "--", "sleep", "1"]),
        Duration::from_millis(300),
    );
    // Its shim runs the removal that the killed berth cannot.
    eventually(&format!("{name} removed"), Duration::from_secs(15), || {
        env.berth(&["inspect", &name]).code == 1
    });
    // A live attached run --rm still removes it itself, with its status.
    for _ in 0..5 {
        let out = env.berth(&[
            "run",
            "--rm",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            "echo x; exit 3",
        ]);
        out.code(3);
        assert_eq!(out.out(), "x\n");
        assert_eq!(out.err(), "", "no error from racing removals");
        env.berth(&["inspect", &name]).code(1);
    }
    env.finish();
}
