//! The default root filesystem: what `berth run -- CMD` runs on when no image,
//! rootfs or bundle is given.
//!
//! The host's `/usr` (and `/bin`, `/sbin`, `/lib*` where they are real
//! directories) are bound read-only; `/etc` is berth's own, a handful of
//! files; `/proc`, `/dev`, `/sys`, `/tmp` and `/run` are fresh. Nothing else
//! of the host is visible: no `/root`, `/home`, `/var`, `/etc/shadow`, and
//! none of berth's state or data roots.
//!
//! Unix only (symlinks, modes, bind mounts); on other platforms the module
//! is empty.

#![cfg(unix)]

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use oci_spec::runtime::{Mount, MountBuilder};

/// Host entries the default root takes over, in mount order.
const HOST_ENTRIES: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Options of each host bind: read-only and without device nodes, but with
/// exec (the point is to run host binaries) and setuid left to
/// no_new_privileges; private, so host mount events do not leak in.
const BIND_OPTIONS: &[&str] = &["rbind", "ro", "nodev", "rprivate"];

/// Empty mount points and scratch directories, with their modes.
const DIRS: &[(&str, u32)] = &[
    ("proc", 0o555),
    ("dev", 0o755),
    ("sys", 0o555),
    ("run", 0o755),
    ("tmp", 0o1777),
];

const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";

const GROUP: &str = "\
root:x:0:
tty:x:5:
nogroup:x:65534:
";

/// Files first, then DNS: glibc's resolver needs to know where to look, and
/// the host's nsswitch.conf may name modules (sss, systemd) absent here.
const NSSWITCH: &str = "\
passwd: files
group: files
shadow: files
hosts: files dns
networks: files
protocols: files
services: files
";

/// Creates the default root filesystem in `dir` (created if missing; an
/// existing one is brought up to date) for a container named `hostname`, and
/// returns the read-only bind mounts of the host directories it needs, to be
/// added to the container's spec. Call it while no container runs on `dir`:
/// links a container planted are replaced, not followed, but a container
/// racing the call could still swap a directory under it.
///
/// Host entries that are symlinks (merged-/usr: `/bin -> usr/bin`) are
/// recreated as the same symlinks; real directories become empty mount
/// points with a bind; entries the host lacks are skipped.
pub fn prepare_default(dir: &Path, hostname: &str) -> io::Result<Vec<Mount>> {
    prepare_from(Path::new("/"), dir, hostname)
}

/// [`prepare_default`] against `host` as the host's root, so tests can use a
/// fake host.
fn prepare_from(host: &Path, dir: &Path, hostname: &str) -> io::Result<Vec<Mount>> {
    fs::create_dir_all(dir)?;
    // Mode 0755 whatever the umask: a non-root container user must traverse /.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;

    let mut mounts = Vec::new();
    for name in HOST_ENTRIES {
        let source = host.join(name);
        let target = dir.join(name);
        let meta = match fs::symlink_metadata(&source) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() {
            ensure_symlink(&fs::read_link(&source)?, &target)?;
        } else if meta.is_dir() {
            ensure_dir(&target, 0o755)?;
            mounts.push(
                MountBuilder::default()
                    .destination(Path::new("/").join(name))
                    .typ("bind")
                    .source(&source)
                    .options(
                        BIND_OPTIONS
                            .iter()
                            .map(|o| (*o).to_owned())
                            .collect::<Vec<_>>(),
                    )
                    .build()
                    .map_err(io::Error::other)?,
            );
        }
    }

    for (name, mode) in DIRS {
        ensure_dir(&dir.join(name), *mode)?;
    }

    let etc = dir.join("etc");
    ensure_dir(&etc, 0o755)?;
    write(&etc.join("passwd"), PASSWD)?;
    write(&etc.join("group"), GROUP)?;
    write_network_files(host, &etc, hostname)?;
    write(&etc.join("nsswitch.conf"), NSSWITCH)?;
    // Tools such as mount and df read /etc/mtab; the kernel's view is the truth.
    ensure_symlink(Path::new("/proc/self/mounts"), &etc.join("mtab"))?;
    Ok(mounts)
}

/// Writes `hostname`, `hosts` and `resolv.conf` (the host's resolver settings)
/// for a container named `hostname` into `etc`.
fn write_network_files(host: &Path, etc: &Path, hostname: &str) -> io::Result<()> {
    write(&etc.join("hostname"), &format!("{hostname}\n"))?;
    write(
        &etc.join("hosts"),
        &format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
        ),
    )?;
    let host_resolv = match fs::read_to_string(host.join("etc/resolv.conf")) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    write(&etc.join("resolv.conf"), &resolv_conf(&host_resolv))
}

/// The files every Docker container has in `/etc`, for a root that is an
/// image's (whose `/etc` is the image's): `hostname`, `hosts` and
/// `resolv.conf` are written into `files` and bound over the root's own, as
/// Docker binds them. A destination in `taken` (the caller's own mount) is
/// left alone. Empty mount points are made in `root`, the container's writable
/// layer; a link the image has there (`resolv.conf -> ../run/...`) is replaced
/// by one, never followed from the host side, and an image whose `/etc` is a
/// link gets none. Returns the binds for the spec.
pub fn network_files(
    files: &Path,
    root: &Path,
    hostname: &str,
    taken: &[std::path::PathBuf],
) -> io::Result<Vec<Mount>> {
    fs::create_dir_all(files)?;
    write_network_files(Path::new("/"), files, hostname)?;
    let etc = root.join("etc");
    match fs::symlink_metadata(&etc) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&etc)?,
        Err(e) => return Err(e),
    }
    let mut mounts = Vec::new();
    for name in ["hostname", "hosts", "resolv.conf"] {
        let dest = Path::new("/etc").join(name);
        if taken.iter().any(|t| t == &dest) {
            continue;
        }
        let target = etc.join(name);
        let make = match fs::symlink_metadata(&target) {
            Ok(m) if m.is_file() => false,
            Ok(m) if m.file_type().is_symlink() => {
                fs::remove_file(&target)?;
                true
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(e),
        };
        if make {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&target)?;
        }
        mounts.push(
            MountBuilder::default()
                .destination(dest)
                .typ("bind")
                .source(files.join(name))
                .options(
                    ["rbind", "nosuid", "nodev", "noexec", "rprivate"]
                        .iter()
                        .map(|o| (*o).to_owned())
                        .collect::<Vec<_>>(),
                )
                .build()
                .map_err(io::Error::other)?,
        );
    }
    Ok(mounts)
}

/// The host's resolver settings (`nameserver`, `search`, `domain`,
/// `options` lines) and nothing else: comments can name host details.
fn resolv_conf(host: &str) -> String {
    host.lines()
        .map(str::trim)
        .filter(|l| {
            ["nameserver", "search", "domain", "options"]
                .iter()
                .any(|k| l.split_whitespace().next() == Some(k))
        })
        .fold(String::new(), |mut out, l| {
            out.push_str(l);
            out.push('\n');
            out
        })
}

/// Makes `path` a real directory with `mode`. A symlink or file in its place
/// (a container can plant one in its writable root) is replaced, never
/// followed: chmod through a planted `tmp -> /etc` would change the host.
fn ensure_dir(path: &Path, mode: u32) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            fs::remove_file(path)?;
            fs::create_dir(path)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(path)?,
        Err(e) => return Err(e),
    }
    // fchmod on a handle opened without following links; an explicit mode
    // because the umask would strip the sticky, world-writable bits of /tmp.
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)?
        .set_permissions(fs::Permissions::from_mode(mode))
}

/// Points `link` at `target`, replacing whatever is there (a file, a stale
/// link, or an empty directory from an older host layout).
fn ensure_symlink(target: &Path, link: &Path) -> io::Result<()> {
    match fs::symlink_metadata(link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            if fs::read_link(link)? == target {
                return Ok(());
            }
            fs::remove_file(link)?;
        }
        // Only an empty directory goes: a full one is not ours to delete.
        Ok(meta) if meta.is_dir() => fs::remove_dir(link)?,
        Ok(_) => fs::remove_file(link)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    symlink(target, link)
}

/// Writes a 0644 file, replacing a symlink in its place rather than writing
/// through it.
fn write(path: &Path, contents: &str) -> io::Result<()> {
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(path)?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.set_permissions(fs::Permissions::from_mode(0o644))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::test_support::TempDir;

    /// A fake host: merged-/usr symlinks for bin, sbin and lib, a real lib64
    /// and usr, no lib32 or libx32, and the secrets the root must not show.
    fn fake_host() -> TempDir {
        let host = TempDir::new("host");
        let h = host.path();
        for d in [
            "usr/bin", "usr/sbin", "usr/lib", "lib64", "root", "home/u", "var/lib", "etc",
        ] {
            fs::create_dir_all(h.join(d)).unwrap();
        }
        symlink("usr/bin", h.join("bin")).unwrap();
        symlink("usr/sbin", h.join("sbin")).unwrap();
        symlink("usr/lib", h.join("lib")).unwrap();
        fs::write(h.join("etc/shadow"), "root:secret").unwrap();
        fs::write(
            h.join("etc/resolv.conf"),
            "# generated by host-tool on secret-host\nnameserver 10.0.0.2\nsearch corp.example\noptions ndots:2\nsortlist 1.2.3.4\n",
        )
        .unwrap();
        host
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn layout_and_binds() {
        let host = fake_host();
        let out = TempDir::new("root");
        let dir = out.path().join("rootfs");
        let mounts = prepare_from(host.path(), &dir, "box1").unwrap();

        assert_eq!(
            names(&dir),
            ["bin", "dev", "etc", "lib", "lib64", "proc", "run", "sbin", "sys", "tmp", "usr"]
        );
        assert_eq!(
            fs::read_link(dir.join("bin")).unwrap(),
            Path::new("usr/bin")
        );
        assert_eq!(
            fs::read_link(dir.join("lib")).unwrap(),
            Path::new("usr/lib")
        );
        assert!(fs::symlink_metadata(dir.join("usr")).unwrap().is_dir());
        // Mount points are empty: the binds provide the content.
        assert!(names(&dir.join("usr")).is_empty());

        let dests: Vec<_> = mounts.iter().map(|m| m.destination().clone()).collect();
        assert_eq!(dests, [Path::new("/usr"), Path::new("/lib64")]);
        for m in &mounts {
            assert_eq!(m.typ().as_deref(), Some("bind"));
            let src = m.source().as_ref().unwrap();
            assert_eq!(
                src,
                &host.path().join(m.destination().strip_prefix("/").unwrap())
            );
            let opts = m.options().as_ref().unwrap();
            for o in ["rbind", "ro", "nodev"] {
                assert!(opts.iter().any(|x| x == o), "{o} missing from {opts:?}");
            }
            assert!(!opts.iter().any(|x| x == "noexec" || x == "nosuid"));
        }

        let mode = |p: &str| fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("tmp"), 0o1777);
        assert_eq!(mode("."), 0o755);
        assert_eq!(mode("etc/passwd"), 0o644);
    }

    #[test]
    fn etc_is_berths_own() {
        let host = fake_host();
        let out = TempDir::new("root");
        let dir = out.path().join("rootfs");
        prepare_from(host.path(), &dir, "box1").unwrap();
        let etc = dir.join("etc");
        assert_eq!(
            names(&etc),
            [
                "group",
                "hostname",
                "hosts",
                "mtab",
                "nsswitch.conf",
                "passwd",
                "resolv.conf"
            ]
        );
        let read = |f: &str| fs::read_to_string(etc.join(f)).unwrap();
        assert!(read("passwd").starts_with("root:x:0:0:root:/root:/bin/sh\n"));
        assert!(read("passwd").contains("nobody:x:65534:65534:"));
        assert!(read("group").contains("root:x:0:\n"));
        assert!(read("group").contains("tty:x:5:\n"));
        assert!(read("group").contains("nogroup:x:65534:\n"));
        assert_eq!(read("hostname"), "box1\n");
        assert!(read("hosts").contains("127.0.0.1\tlocalhost\n"));
        assert!(read("hosts").contains("::1\t"));
        assert!(read("hosts").contains("\tbox1\n"));
        assert_eq!(
            read("resolv.conf"),
            "nameserver 10.0.0.2\nsearch corp.example\noptions ndots:2\n"
        );
        assert!(read("nsswitch.conf").contains("hosts: files dns"));
        assert_eq!(
            fs::read_link(etc.join("mtab")).unwrap(),
            Path::new("/proc/self/mounts")
        );

        // The user resolver reads what we wrote.
        assert_eq!(
            crate::spec::user::resolve(&dir, "nobody").unwrap(),
            (65534, 65534, vec![])
        );
    }

    #[test]
    fn nothing_else_of_the_host() {
        let host = fake_host();
        let out = TempDir::new("root");
        let dir = out.path().join("rootfs");
        prepare_from(host.path(), &dir, "h").unwrap();
        for hidden in ["root", "home", "var", "etc/shadow", "lib32", "libx32"] {
            assert!(
                fs::symlink_metadata(dir.join(hidden)).is_err(),
                "{hidden} must not exist"
            );
        }
    }

    #[test]
    fn idempotent_and_repairs() {
        let host = fake_host();
        let out = TempDir::new("root");
        let dir = out.path().join("rootfs");
        prepare_from(host.path(), &dir, "old").unwrap();
        // A stale link and a planted symlink in /etc are replaced, not followed.
        fs::remove_file(dir.join("bin")).unwrap();
        symlink("/elsewhere", dir.join("bin")).unwrap();
        let outside = out.path().join("outside");
        fs::write(&outside, "keep").unwrap();
        fs::remove_file(dir.join("etc/hostname")).unwrap();
        symlink(&outside, dir.join("etc/hostname")).unwrap();

        // A container that swapped its /tmp for a link to a host directory
        // must not get that directory chmod-ed 1777.
        let victim = out.path().join("victim");
        fs::create_dir(&victim).unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o700)).unwrap();
        fs::remove_dir(dir.join("tmp")).unwrap();
        symlink(&victim, dir.join("tmp")).unwrap();

        let mounts = prepare_from(host.path(), &dir, "new").unwrap();
        assert_eq!(mounts.len(), 2);
        assert_eq!(
            fs::metadata(&victim).unwrap().permissions().mode() & 0o7777,
            0o700
        );
        let tmp = fs::symlink_metadata(dir.join("tmp")).unwrap();
        assert!(tmp.is_dir());
        assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
        assert_eq!(
            fs::read_link(dir.join("bin")).unwrap(),
            Path::new("usr/bin")
        );
        assert_eq!(
            fs::read_to_string(dir.join("etc/hostname")).unwrap(),
            "new\n"
        );
        assert_eq!(fs::read_to_string(&outside).unwrap(), "keep");
    }

    #[test]
    fn no_resolv_conf_on_host() {
        let host = fake_host();
        fs::remove_file(host.path().join("etc/resolv.conf")).unwrap();
        let out = TempDir::new("root");
        let dir = out.path().join("rootfs");
        prepare_from(host.path(), &dir, "h").unwrap();
        assert_eq!(fs::read_to_string(dir.join("etc/resolv.conf")).unwrap(), "");
    }

    #[test]
    fn real_host() {
        // On this machine: every returned bind is a real host directory.
        let out = TempDir::new("root");
        let dir = out.path().join("rootfs");
        let mounts = prepare_default(&dir, "h").unwrap();
        assert!(mounts.iter().any(|m| m.destination() == Path::new("/usr")));
        for m in &mounts {
            assert!(m.source().as_ref().unwrap().is_dir());
        }
        assert!(fs::symlink_metadata(dir.join("root")).is_err());
    }

    #[test]
    fn network_files_bind_over_files_and_replace_links_but_not_taken_ones() {
        let files = TempDir::new("netfiles");
        let root = TempDir::new("netroot");
        let r = root.path();
        fs::create_dir_all(r.join("etc")).unwrap();
        // The image made resolv.conf a link out of its root: replaced by a
        // file in the root, the link never followed.
        let outside = TempDir::new("netoutside");
        fs::write(outside.path().join("secret"), "keep").unwrap();
        symlink(outside.path().join("secret"), r.join("etc/resolv.conf")).unwrap();
        let taken = vec![std::path::PathBuf::from("/etc/hostname")];
        let mounts = network_files(files.path(), r, "box", &taken).unwrap();
        let dests: Vec<_> = mounts.iter().map(|m| m.destination().clone()).collect();
        assert_eq!(
            dests,
            [Path::new("/etc/hosts"), Path::new("/etc/resolv.conf")]
        );
        assert!(fs::metadata(r.join("etc/hosts")).unwrap().is_file());
        let resolv = fs::symlink_metadata(r.join("etc/resolv.conf")).unwrap();
        assert!(resolv.is_file(), "the link is replaced");
        assert_eq!(
            fs::read_to_string(outside.path().join("secret")).unwrap(),
            "keep"
        );
        let hosts = fs::read_to_string(files.path().join("hosts")).unwrap();
        assert!(hosts.contains("127.0.1.1\tbox"), "{hosts}");
        // An image whose /etc is a link gets none.
        let linked = TempDir::new("netlinked");
        symlink("/etc", linked.path().join("etc")).unwrap();
        assert!(network_files(files.path(), linked.path(), "box", &[])
            .unwrap()
            .is_empty());
    }
}
