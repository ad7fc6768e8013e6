//! Checkpoints with CRIU: the command lines of `criu dump` and `criu restore` for
//! one container, the helper's restore step, and reading CRIU's verdicts.
//!
//! CRIU is run as a command (`BERTH_CRIU`, else `criu` on PATH). A dump writes into
//! the checkpoint directory: CRIU's images, `dump.log`, and `descriptors.json`
//! (what init's descriptors 0-2 were, as runc records them, so that a restore can
//! hand the new stdio pipes in their place). A restore runs in the helper, which
//! joins the new container's cgroups, makes a private mount namespace in which the
//! root filesystem is a mount point, and then becomes `criu restore`; the restored
//! init is the shim's child (`--restore-sibling`), so the shim reaps it as any init.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_types::WireErrorKind;
use oci_spec::runtime::{Mount, Spec};

/// Environment variable naming the criu binary.
pub const ENV_CRIU: &str = "BERTH_CRIU";

/// The oldest CRIU that locks the network with nftables (3.16).
const MIN_VERSION: (u32, u32) = (3, 16);

/// CRIU's record of init's stdio, written beside the images.
pub const DESCRIPTORS: &str = "descriptors.json";

/// The file every CRIU image set has.
pub const INVENTORY: &str = "inventory.img";

/// Where a restored init's stdio is handed to CRIU: descriptors 10, 11, 12.
const INHERIT_BASE: i32 = 10;

/// The criu binary to run.
pub fn binary() -> PathBuf {
    std::env::var_os(ENV_CRIU)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("criu"))
}

/// Judges `criu --version`'s exit code and output: its version, if recent enough.
pub fn check_version(criu: &Path, code: i32, stdout: &str, stderr: &str) -> Result<String, String> {
    if code != 0 {
        return Err(format!(
            "criu ({}) is unusable: `criu --version` exited with {code}: {}",
            criu.display(),
            stderr.trim()
        ));
    }
    let version = parse_version(stdout).ok_or_else(|| {
        format!(
            "criu ({}) is unusable: cannot read its version from {:?}",
            criu.display(),
            stdout.trim()
        )
    })?;
    if version < MIN_VERSION {
        return Err(format!(
            "criu ({}) is too old: {}.{} (berth needs {}.{} or newer)",
            criu.display(),
            version.0,
            version.1,
            MIN_VERSION.0,
            MIN_VERSION.1
        ));
    }
    Ok(format!("{}.{}", version.0, version.1))
}

/// `Version: 4.1.1` → (4, 1).
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Version:"))?
        .trim();
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()
        .map(|m| {
            m.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    Some((major, minor))
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_ref()
            .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"))
}

/// The mounts CRIU must treat as external: every bind mount of the spec (its
/// destination is the key; the source is what a restore mounts there) and, on
/// cgroup v1, the host's cgroup hierarchies as the container sees them.
pub fn external_mounts(spec: &Spec, cgroup_mounts: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = spec
        .mounts()
        .iter()
        .flatten()
        .filter(|m| is_bind(m))
        .filter_map(|m| {
            let dest = m.destination().to_str()?.to_owned();
            let src = m.source().as_ref()?.to_str()?.to_owned();
            Some((dest, src))
        })
        .collect();
    for m in cgroup_mounts {
        if !out.iter().any(|(d, _)| d == m) {
            out.push((m.clone(), m.clone()));
        }
    }
    out
}

/// Mount points of cgroup file systems in `mountinfo` (the host's hierarchies).
pub fn cgroup_mounts(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            left.split_whitespace().nth(4).map(str::to_owned)
        })
        .filter(|m| m.starts_with("/sys/fs/cgroup"))
        .collect()
}

/// What one dump needs.
pub struct Dump<'a> {
    pub pid: i32,
    pub images: &'a Path,
    pub freezer: Option<&'a Path>,
    pub externals: &'a [(String, String)],
}

/// The arguments of `criu dump` for a container (left running: the caller stops it
/// if asked, after the checkpointed event).
pub fn dump_args(d: &Dump<'_>) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "dump".into(),
        "--tree".into(),
        d.pid.to_string().into(),
        "--images-dir".into(),
        d.images.into(),
        "--work-dir".into(),
        d.images.into(),
        "--log-file".into(),
        "dump.log".into(),
        "-v4".into(),
        "--leave-running".into(),
        "--manage-cgroups".into(),
        "--tcp-established".into(),
        "--ext-unix-sk".into(),
        "--file-locks".into(),
        "--network-lock".into(),
        "nftables".into(),
    ];
    if let Some(f) = d.freezer {
        a.push("--freeze-cgroup".into());
        a.push(f.into());
    }
    for (dest, _) in d.externals {
        a.push("--external".into());
        a.push(format!("mnt[{dest}]:{dest}").into());
    }
    a
}

/// What one restore needs.
pub struct Restore<'a> {
    pub images: &'a Path,
    pub work: &'a Path,
    pub root: &'a Path,
    pub pidfile: &'a Path,
    pub externals: &'a [(String, String)],
    /// What init's descriptors 0-2 were at the dump (`descriptors.json`).
    pub descriptors: &'a [String],
    /// `controllers:path` of each cgroup v1 hierarchy the restored tree goes into.
    pub cgroup_roots: &'a [String],
}

/// The arguments of `criu restore`; init's new stdio is at descriptors 10-12.
pub fn restore_args(r: &Restore<'_>) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "restore".into(),
        "--images-dir".into(),
        r.images.into(),
        "--work-dir".into(),
        r.work.into(),
        "--log-file".into(),
        "restore.log".into(),
        "-v4".into(),
        "--root".into(),
        r.root.into(),
        "--pidfile".into(),
        r.pidfile.into(),
        "--restore-detached".into(),
        "--restore-sibling".into(),
        "--manage-cgroups".into(),
        "--tcp-established".into(),
        "--ext-unix-sk".into(),
        "--file-locks".into(),
    ];
    for c in r.cgroup_roots {
        a.push("--cgroup-root".into());
        a.push(c.into());
    }
    for (dest, src) in r.externals {
        a.push("--external".into());
        a.push(format!("mnt[{dest}]:{src}").into());
    }
    for (i, d) in r.descriptors.iter().enumerate().take(3) {
        if d.starts_with("pipe:") {
            a.push("--inherit-fd".into());
            a.push(format!("fd[{}]:{d}", INHERIT_BASE + i as i32).into());
        }
    }
    a
}

/// The `controllers:path` cgroup roots of `/proc/self/cgroup` text: every named
/// v1 hierarchy except systemd's, which berth does not manage.
pub fn cgroup_roots(proc_cgroup: &str) -> Vec<String> {
    proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let _ = f.next()?;
            let ctrls = f.next()?;
            let path = f.next()?;
            (!ctrls.is_empty() && !ctrls.starts_with("name=")).then(|| format!("{ctrls}:{path}"))
        })
        .collect()
}

/// The error lines of a CRIU log, joined: what a person needs to see first.
/// Whether a dump failed because criu could not stop a task of the container in
/// its time (criu's own timeout while seizing), which a second try gets past.
pub fn seize_timed_out(log: &Path) -> bool {
    std::fs::read_to_string(log)
        .is_ok_and(|t| t.contains("Timeout reached") || t.contains("Unseizable"))
}

/// Removes what a failed dump wrote (criu's `*.img` files) from `dir`, so that a
/// second dump starts from nothing.
pub fn remove_images(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "img") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

pub fn log_errors(log: &Path) -> String {
    let Ok(f) = File::open(log) else {
        return format!("no log at {}", log.display());
    };
    let lines: Vec<String> = BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains("Error") && !l.contains("RLIMIT_NOFILE") && !l.contains("tables"))
        .map(|l| match l.find("): ") {
            Some(i) => l[i + 3..].trim().to_owned(),
            None => l.trim().to_owned(),
        })
        .collect();
    let tail: Vec<&str> = lines
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    if tail.is_empty() {
        format!("see {}", log.display())
    } else {
        format!("{} (log: {})", tail.join("; "), log.display())
    }
}

/// Init's descriptors 0-2 as the dump recorded them.
pub fn read_descriptors(images: &Path) -> std::io::Result<Vec<String>> {
    let data = std::fs::read(images.join(DESCRIPTORS))?;
    serde_json::from_slice(&data).map_err(std::io::Error::other)
}

/// Records `pid`'s descriptors 0-2 beside the images.
pub fn write_descriptors(images: &Path, pid: i32) -> std::io::Result<()> {
    let d: Vec<String> = (0..3)
        .map(|n| {
            std::fs::read_link(format!("/proc/{pid}/fd/{n}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "/dev/null".into())
        })
        .collect();
    std::fs::write(
        images.join(DESCRIPTORS),
        serde_json::to_vec(&d).unwrap_or_default(),
    )
}

type HelperError = (WireErrorKind, &'static str, String);

/// Makes `dest` (a path inside the container) under `root`, never through a
/// symlink: a directory, or an empty file for a file bind mount.
fn make_mount_point(root: &Path, dest: &Path, file: bool) -> std::io::Result<()> {
    let parts: Vec<_> = dest
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    let mut cur = root.to_path_buf();
    for (i, c) in parts.iter().enumerate() {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(std::io::Error::other(format!(
                    "{} is a symlink; not followed",
                    cur.display()
                )))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if file && i + 1 == parts.len() {
                    File::create(&cur)?;
                } else {
                    std::fs::create_dir(&cur)?;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The helper's `restore` step: never returns on success (it becomes criu).
/// Its stdin, stdout and stderr are init's new stdio.
pub fn helper_restore(
    id: &str,
    bundle: &Path,
    images: &Path,
    work: &Path,
    criu: &Path,
) -> HelperError {
    match prepare_restore(id, bundle, images, work) {
        Ok(args) => {
            let err = Command::new(criu).args(args).exec();
            (
                WireErrorKind::FailedPrecondition,
                "run criu",
                format!("criu ({}) cannot run: {err}", criu.display()),
            )
        }
        Err(e) => e,
    }
}

fn prepare_restore(
    id: &str,
    bundle: &Path,
    images: &Path,
    work: &Path,
) -> Result<Vec<OsString>, HelperError> {
    use libcgroups::common::{create_cgroup_manager, CgroupConfig, CgroupManager, ControllerOpt};
    use nix::mount::{mount, MsFlags};

    let internal = |step: &'static str| move |e: String| (WireErrorKind::Internal, step, e);
    let spec = Spec::load(bundle.join("config.json"))
        .map_err(|e| (WireErrorKind::InvalidArgument, "read bundle", e.to_string()))?;
    let descriptors = read_descriptors(images).map_err(|e| {
        (
            WireErrorKind::InvalidArgument,
            "read checkpoint",
            format!("{}: {e}", images.join(DESCRIPTORS).display()),
        )
    })?;
    // Join the new container's cgroups with its limits: criu and what it restores
    // land there.
    let config = libcontainer::config::YoukiConfig::from_spec(&spec, id)
        .map_err(|e| internal("read bundle")(e.to_string()))?;
    let manager = create_cgroup_manager(CgroupConfig {
        cgroup_path: config.cgroup_path,
        systemd_cgroup: false,
        container_name: id.to_owned(),
    })
    .map_err(|e| internal("create cgroup")(e.to_string()))?;
    manager
        .add_task(nix::unistd::Pid::this())
        .map_err(|e| internal("create cgroup")(e.to_string()))?;
    let resources = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    manager
        .apply(&ControllerOpt {
            resources: &resources,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        })
        .map_err(|e| internal("apply resources")(e.to_string()))?;
    let roots = cgroup_roots(
        &std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| internal("read cgroups")(e.to_string()))?,
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| internal("read mounts")(e.to_string()))?;
    let externals = external_mounts(&spec, &cgroup_mounts(&mountinfo));

    // CRIU wants the root to be a mount point: bind it onto itself in a mount
    // namespace of our own, which the restored container's namespace starts from.
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .ok_or_else(|| {
            (
                WireErrorKind::InvalidArgument,
                "read bundle",
                "the spec has no root".to_owned(),
            )
        })?;
    let root = if root.is_absolute() {
        root
    } else {
        bundle.join(root)
    };
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| internal("make mount namespace")(e.to_string()))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| internal("make mount namespace")(e.to_string()))?;
    mount(
        Some(&root),
        &root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| internal("mount root filesystem")(format!("{}: {e}", root.display())))?;
    // Every mount needs its mount point in this root: a restore under a new id, or
    // onto a fresh snapshot, starts from a root where libcontainer made none.
    for m in spec.mounts().iter().flatten() {
        let file = is_bind(m) && m.source().as_ref().is_some_and(|s| s.is_file());
        make_mount_point(&root, m.destination(), file).map_err(|e| {
            internal("make mount points")(format!("{}: {e}", m.destination().display()))
        })?;
    }
    // Init's new stdio moves to 10-12 (criu hands them to the restored init in
    // place of the pipes it had); criu's own is /dev/null, it logs to a file.
    for fd in 0..3 {
        nix::unistd::dup2(fd, INHERIT_BASE + fd)
            .map_err(|e| internal("pass stdio")(e.to_string()))?;
    }
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| internal("pass stdio")(e.to_string()))?;
    for fd in 0..3 {
        nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd)
            .map_err(|e| internal("pass stdio")(e.to_string()))?;
    }
    let pidfile = work.join("restore.pid");
    let args = restore_args(&Restore {
        images,
        work,
        root: &root,
        pidfile: &pidfile,
        externals: &externals,
        descriptors: &descriptors,
        cgroup_roots: &roots,
    });
    let _ = std::io::stderr().flush();
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_or_broken_criu_is_refused() {
        let p = Path::new("/c");
        assert_eq!(
            check_version(p, 0, "Version: 4.1.1\n", ""),
            Ok("4.1".into())
        );
        assert!(check_version(p, 0, "Version: 3.15\n", "")
            .unwrap_err()
            .contains("too old"));
        assert!(check_version(p, 1, "", "vdso")
            .unwrap_err()
            .contains("unusable"));
    }

    #[test]
    fn mount_points_are_made_without_following_symlinks() {
        let root = std::env::temp_dir().join(format!("berth-mp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        make_mount_point(&root, Path::new("/run/lock"), false).unwrap();
        assert!(root.join("run/lock").is_dir());
        make_mount_point(&root, Path::new("/etc/hosts"), true).unwrap();
        assert!(root.join("etc/hosts").is_file());
        assert!(make_mount_point(&root, Path::new("/escape/berth-mp-x"), false).is_err());
        assert!(!Path::new("/berth-mp-x").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("Version: 4.1.1\n"), Some((4, 1)));
        assert_eq!(parse_version("Version: 3.17\nGitID: x\n"), Some((3, 17)));
        assert_eq!(parse_version("criu 4\n"), None);
    }

    #[test]
    fn cgroup_mounts_of_mountinfo() {
        let mi = "\
31 23 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
33 31 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
50 23 8:1 / /mnt/other rw - cgroup cgroup rw,memory
";
        assert_eq!(
            cgroup_mounts(mi),
            [
                "/sys/fs/cgroup/unified",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/cpu"
            ]
        );
    }

    #[test]
    fn roots_skip_named_and_unified_hierarchies() {
        let pc = "9:name=systemd:/\n8:pids:/berth/c2\n2:cpu,cpuacct:/berth/c2\n0::/\n";
        assert_eq!(
            cgroup_roots(pc),
            ["pids:/berth/c2", "cpu,cpuacct:/berth/c2"]
        );
    }

    #[test]
    fn restore_hands_only_pipes_to_criu() {
        let d = vec![
            "/dev/null".to_owned(),
            "pipe:[27387]".to_owned(),
            "pipe:[27388]".to_owned(),
        ];
        let args = restore_args(&Restore {
            images: Path::new("/i"),
            work: Path::new("/w"),
            root: Path::new("/r"),
            pidfile: Path::new("/w/pid"),
            externals: &[("/usr".into(), "/usr".into())],
            descriptors: &d,
            cgroup_roots: &["pids:/berth/x".into()],
        });
        let s: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = s.join(" ");
        assert!(
            joined.contains("--inherit-fd fd[11]:pipe:[27387]"),
            "{joined}"
        );
        assert!(
            joined.contains("--inherit-fd fd[12]:pipe:[27388]"),
            "{joined}"
        );
        assert!(!joined.contains("fd[10]"), "{joined}");
        assert!(joined.contains("--external mnt[/usr]:/usr"), "{joined}");
        assert!(joined.contains("--cgroup-root pids:/berth/x"), "{joined}");
        assert!(joined.contains("--restore-sibling"), "{joined}");
    }

    #[test]
    fn dump_marks_binds_external_by_destination() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","root":{"path":"/r"},"mounts":[
                {"destination":"/proc","type":"proc","source":"proc"},
                {"destination":"/data","type":"bind","source":"/srv/data","options":["rbind","ro"]},
                {"destination":"/etc/hosts","source":"/x/hosts","options":["bind"]}]}"#,
        )
        .unwrap();
        let ext = external_mounts(&spec, &["/sys/fs/cgroup/cpu".to_owned()]);
        assert_eq!(
            ext,
            [
                ("/data".to_owned(), "/srv/data".to_owned()),
                ("/etc/hosts".to_owned(), "/x/hosts".to_owned()),
                (
                    "/sys/fs/cgroup/cpu".to_owned(),
                    "/sys/fs/cgroup/cpu".to_owned()
                )
            ]
        );
        let args = dump_args(&Dump {
            pid: 42,
            images: Path::new("/i"),
            freezer: Some(Path::new("/sys/fs/cgroup/freezer/berth/c")),
            externals: &ext,
        });
        let joined = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(joined.contains("--tree 42"), "{joined}");
        assert!(joined.contains("--external mnt[/data]:/data"), "{joined}");
        assert!(joined.contains("--leave-running"), "{joined}");
        assert!(
            joined.contains("--freeze-cgroup /sys/fs/cgroup/freezer/berth/c"),
            "{joined}"
        );
    }
}
