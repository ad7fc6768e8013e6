//! Resource limits hold: memory, pids, and the container cannot lift them.

use std::time::Duration;

use berth_e2e::Env;

#[test]
fn memory_limit_stops_a_process_that_allocates_past_it() {
    let env = Env::new("mem");
    let name = env.name("c");
    // The shell holds 100 MB in a variable: far past 32 MiB.
    let out = env.berth_timeout(
        &[
            "run",
            "--name",
            &name,
            "--memory",
            "32m",
            "--",
            "sh",
            "-c",
            "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo done",
        ],
        Duration::from_secs(120),
    );
    out.code(137);
    assert!(
        !out.out().contains("done"),
        "allocation succeeded: {}",
        out.out()
    );
    let v = env.inspect(&name);
    assert_eq!(v["State"]["ExitCode"], 137);
    assert_eq!(v["Resources"]["Memory"], 32 * 1024 * 1024);
    env.berth(&["rm", &name]).code(0);
    // Under the limit, the same kind of work completes.
    let name = env.name("u");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--memory",
        "32m",
        "--",
        "sh",
        "-c",
        "x=$(head -c 1000000 /dev/zero | tr '\\0' a); echo ${#x}",
    ]);
    assert_eq!(out.ok(), "1000000\n");
    env.finish();
}

#[test]
fn memory_oom_is_reported_as_oomkilled() {
    let env = Env::new("oom");
    let name = env.name("c");
    env.berth_timeout(
        &[
            "run",
            "--name",
            &name,
            "--memory",
            "32m",
            "--",
            "sh",
            "-c",
            "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo done",
        ],
        Duration::from_secs(120),
    )
    .code(137);
    let v = env.inspect(&name);
    assert_eq!(v["State"]["OOMKilled"], true, "{v}");
    env.berth(&["rm", &name]).code(0);
    env.finish();
}

#[test]
fn memory_limit_is_set_on_the_cgroup() {
    let env = Env::new("mcg");
    let name = env.name("c");
    env.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "--memory",
        "48m",
        "--pids-limit",
        "33",
        "--",
        "sleep",
        "1000",
    ])
    .code(0);
    let mem = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/berth/{name}/memory.limit_in_bytes"
    ))
    .expect("memory cgroup of the container");
    assert_eq!(mem.trim(), (48u64 << 20).to_string());
    let pids = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/berth/{name}/pids.max"))
        .expect("pids cgroup of the container");
    assert_eq!(pids.trim(), "33");
    let pid = env.inspect(&name)["State"]["Pid"].as_i64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.lines()
            .any(|l| l.ends_with(&format!(":memory:/berth/{name}"))),
        "{cg}"
    );
    env.berth(&["rm", "-f", &name]).code(0);
    env.finish();
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let env = Env::new("pid");
    let name = env.name("c");
    let out = env.berth_timeout(
        &[
            "run",
            "--rm",
            "--name",
            &name,
            "--pids-limit",
            "20",
            "--",
            "sh",
            "-c",
            "n=0; while [ $n -lt 100 ]; do sleep 30 & n=$((n+1)); done; echo forked-100",
        ],
        Duration::from_secs(60),
    );
    assert_ne!(out.code, 0, "{}", out.out());
    assert!(
        !out.out().contains("forked-100"),
        "100 forks under --pids-limit 20"
    );
    assert!(out.err().contains("fork"), "no fork failure: {}", out.err());
    // The same loop with 10 forks fits.
    let name = env.name("u");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--pids-limit",
        "20",
        "--",
        "sh",
        "-c",
        "n=0; while [ $n -lt 10 ]; do sleep 1 & n=$((n+1)); done; wait; echo forked-10",
    ]);
    assert_eq!(out.ok(), "forked-10\n");
    env.finish();
}

#[test]

fn container_cannot_lift_its_own_limits() {
    let env = Env::new("cgw");
    let name = env.name("c");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--pids-limit",
        "20",
        "--memory",
        "32m",
        "--",
        "sh",
        "-c",
        "echo max > /sys/fs/cgroup/pids/pids.max; cat /sys/fs/cgroup/pids/pids.max; \
         echo 1073741824 > /sys/fs/cgroup/memory/memory.limit_in_bytes; \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
         grep -E ' /sys/fs/cgroup(/[a-z]+)? ' /proc/self/mountinfo | cut -d' ' -f5,6",
    ]);
    let text = out.out();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("20"),
        "pids.max raised from inside:\n{text}"
    );
    assert_eq!(
        lines.next(),
        Some("33554432"),
        "memory limit raised from inside:\n{text}"
    );
    // What a path shows is its last (topmost) mount; earlier ones are shadowed.
    let mut effective = std::collections::BTreeMap::new();
    for l in lines {
        if let Some((point, opts)) = l.split_once(' ') {
            effective.insert(point.to_owned(), opts.to_owned());
        }
    }
    assert!(!effective.is_empty(), "no cgroup mounts seen:\n{text}");
    for (point, opts) in &effective {
        assert!(
            opts.split(',').any(|x| x == "ro"),
            "rw cgroup mount: {point} {opts}"
        );
    }
    env.finish();
}
