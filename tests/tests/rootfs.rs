//! `--rootfs DIR` and `--bundle DIR` with a busybox-static root built here.

use berth_e2e::{busybox_rootfs, Env};
use serde_json::Value;

#[test]
fn rootfs_dir_with_busybox() {
    let env = Env::new("rfs");
    let rootfs = env.base.join("rootfs");
    busybox_rootfs(&rootfs);
    let name = env.name("c");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--rootfs",
        rootfs.to_str().unwrap(),
        "-e",
        "X=y",
        "--",
        "sh",
        "-c",
        "echo $$; cat /marker; hostname; echo $X; test -e /usr/bin/apt || echo no-host-usr; exit 3",
    ]);
    out.code(3);
    let want: String = name.chars().take(12).collect();
    assert_eq!(
        out.out(),
        format!("1\nbusybox-root\n{want}\ny\nno-host-usr\n")
    );
    // The rootfs dir itself is untouched by the container's life (no leftover mounts
    // on it is checked by finish).
    assert_eq!(
        std::fs::read_to_string(rootfs.join("marker")).unwrap(),
        "busybox-root\n"
    );
    env.finish();
}

#[test]
fn rootfs_relative_path() {
    let env = Env::new("rfr");
    let rootfs = env.base.join("rootfs");
    busybox_rootfs(&rootfs);
    let name = env.name("c");
    let out = env
        .cmd(&[
            "run", "--rm", "--name", &name, "--rootfs", "rootfs", "--", "cat", "/marker",
        ])
        .current_dir(&env.base)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "busybox-root\n");
    env.finish();
}

#[test]
fn rootfs_read_only_flag() {
    let env = Env::new("rro");
    let rootfs = env.base.join("rootfs");
    busybox_rootfs(&rootfs);
    let name = env.name("c");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--rootfs",
        rootfs.to_str().unwrap(),
        "--read-only",
        "--",
        "sh",
        "-c",
        "echo x > /written",
    ]);
    assert_ne!(out.code, 0, "wrote to a --read-only root");
    assert!(!rootfs.join("written").exists());
    let name = env.name("w");
    env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--rootfs",
        rootfs.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo x > /written",
    ])
    .code(0);
    assert!(rootfs.join("written").exists());
    env.finish();
}

fn spec_bundle(env: &Env, args: &[&str]) -> std::path::PathBuf {
    let bundle = env.base.join("bundle");
    busybox_rootfs(&bundle.join("rootfs"));
    let text = env.berth(&["spec"]).ok();
    let mut spec: Value = serde_json::from_str(&text).expect("berth spec prints JSON");
    // As `runc spec`: the root is `rootfs` in the bundle. Point it there explicitly.
    spec["root"]["path"] = Value::from("rootfs");
    spec["process"]["args"] = serde_json::json!(args);
    spec["hostname"] = Value::from("from-bundle");
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_string_pretty(&spec).unwrap(),
    )
    .unwrap();
    bundle
}

#[test]
fn spec_prints_a_default_config() {
    let env = Env::new("spc");
    let out = env.berth(&["spec"]);
    let text = out.ok();
    let spec: Value = serde_json::from_str(&text).expect("berth spec prints JSON");
    assert!(spec["ociVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("1.")));
    assert_eq!(spec["process"]["noNewPrivileges"], true);
    assert_eq!(spec["root"]["path"], "rootfs");
    let rl = &spec["process"]["rlimits"][0];
    assert_eq!(rl["type"], "RLIMIT_NOFILE");
    assert_eq!(rl["hard"], 1024);
    assert_eq!(rl["soft"], 1024);
    assert_eq!(spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    let caps = spec["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap();
    assert!(caps.iter().any(|c| c == "CAP_CHOWN"));
    assert!(!caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
    let masked = spec["linux"]["maskedPaths"].as_array().unwrap();
    assert!(masked.iter().any(|p| p == "/proc/kcore"));
    env.finish();
}

#[test]
fn bundle_from_spec_runs_as_is() {
    let env = Env::new("bdl");
    let bundle = spec_bundle(
        &env,
        &["sh", "-c", "echo $$; hostname; cat /marker; exit 5"],
    );
    let name = env.name("c");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    out.code(5);
    assert_eq!(out.out(), "1\nfrom-bundle\nbusybox-root\n");
    // `-- CMD` overrides the bundle's args.
    let name = env.name("o");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--bundle",
        bundle.to_str().unwrap(),
        "--",
        "echo",
        "overridden",
    ]);
    assert_eq!(out.ok(), "overridden\n");
    // The bundle is left as it was.
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(spec["process"]["args"][0], "sh");
    env.finish();
}

#[test]
fn two_bundle_containers_from_one_spec_at_once() {
    let env = Env::new("bd2");
    let bundle = spec_bundle(&env, &["sleep", "1000"]);
    let a = env.name("a");
    let b = env.name("b");
    for n in [&a, &b] {
        env.berth(&[
            "run",
            "-d",
            "--name",
            n,
            "--bundle",
            bundle.to_str().unwrap(),
        ])
        .code(0);
    }
    for n in [&a, &b] {
        assert_eq!(env.inspect(n)["State"]["Status"], "running");
    }
    env.berth(&["rm", "-f", &a, &b]).code(0);
    env.finish();
}
