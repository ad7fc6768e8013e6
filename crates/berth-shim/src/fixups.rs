//! What the shim adjusts in a bundle before libcontainer creates from it, where
//! libcontainer 0.7 falls short of what runc does with the same spec:
//! - a read-only `/sys/fs/cgroup` mount on cgroup v1 stays writable under
//!   libcontainer (it mounts each hierarchy read-write), so a container could
//!   lift its own limits: each hierarchy is added to `readonlyPaths`;
//! - a missing working directory of init is created, as runc does, inside the
//!   root filesystem without following symlinks out of it.

use std::io;
use std::path::{Component, Path};

use serde_json::Value;

/// Applies the fixups to `<bundle>/config.json` (rewritten only when changed);
/// returns the spec as it now is.
pub fn prepare_bundle(bundle: &Path) -> io::Result<Value> {
    let path = bundle.join("config.json");
    let mut spec: Value =
        serde_json::from_slice(&std::fs::read(&path)?).map_err(io::Error::other)?;
    let mut changed = readonly_cgroup_v1(&mut spec, &cgroup_v1_hierarchies());
    changed |= masked_eq_for_libcontainer(&mut spec);
    if let Some(root) = spec.pointer("/root/path").and_then(Value::as_str) {
        let root = bundle.join(root);
        if let Some(cwd) = spec.pointer("/process/cwd").and_then(Value::as_str) {
            // A cwd that cannot be made is left to libcontainer to report.
            let _ = mkdir_in_root(&root, Path::new(cwd));
        }
    }
    if changed {
        let bytes = serde_json::to_vec(&spec).map_err(io::Error::other)?;
        let tmp = bundle.join(".config.json.berth");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(tmp, &path)?;
    }
    Ok(spec)
}

/// The cgroup v1 hierarchies mounted under `/sys/fs/cgroup` on this host.
fn cgroup_v1_hierarchies() -> Vec<String> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let mountpoint = left.split_whitespace().nth(4)?;
            (fstype == "cgroup").then(|| {
                mountpoint
                    .strip_prefix("/sys/fs/cgroup/")
                    .map(str::to_owned)
            })?
        })
        .filter(|n| !n.contains('/'))
        .collect()
}

/// Adds `/sys/fs/cgroup/<h>` to readonlyPaths when the spec mounts the cgroup
/// tree read-only. Returns whether the spec changed.
fn readonly_cgroup_v1(spec: &mut Value, hierarchies: &[String]) -> bool {
    let ro_cgroup = spec
        .pointer("/mounts")
        .and_then(Value::as_array)
        .is_some_and(|ms| {
            ms.iter().any(|m| {
                m.get("destination").and_then(Value::as_str) == Some("/sys/fs/cgroup")
                    && m.get("options")
                        .and_then(Value::as_array)
                        .is_some_and(|o| o.iter().any(|x| x.as_str() == Some("ro")))
            })
        });
    if !ro_cgroup || hierarchies.is_empty() {
        return false;
    }
    let Some(linux) = spec.get_mut("linux").and_then(Value::as_object_mut) else {
        return false;
    };
    let paths = linux
        .entry("readonlyPaths")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(paths) = paths.as_array_mut() else {
        return false;
    };
    let mut changed = false;
    // The tmpfs holding the hierarchies first, then each hierarchy inside it.
    let top = std::iter::once("/sys/fs/cgroup".to_owned());
    for p in top.chain(hierarchies.iter().map(|h| format!("/sys/fs/cgroup/{h}"))) {
        let p = Value::String(p);
        if !paths.contains(&p) {
            paths.push(p);
            changed = true;
        }
    }
    changed
}

/// Swaps `value` and `valueTwo` of every SCMP_CMP_MASKED_EQ seccomp argument.
/// Bundles say it as runc reads it (mask in `value`, Docker's profile does so);
/// libcontainer 0.7 reads the mask from `valueTwo`, and a zero mask would make
/// the rule always true (every clone allowed). Returns whether anything changed.
fn masked_eq_for_libcontainer(spec: &mut Value) -> bool {
    let Some(syscalls) = spec
        .pointer_mut("/linux/seccomp/syscalls")
        .and_then(Value::as_array_mut)
    else {
        return false;
    };
    let mut changed = false;
    for sc in syscalls {
        let Some(args) = sc.get_mut("args").and_then(Value::as_array_mut) else {
            continue;
        };
        for a in args {
            if a.get("op").and_then(Value::as_str) != Some("SCMP_CMP_MASKED_EQ") {
                continue;
            }
            let Some(obj) = a.as_object_mut() else {
                continue;
            };
            let value = obj.get("value").cloned().unwrap_or(Value::from(0));
            let two = obj.get("valueTwo").cloned().unwrap_or(Value::from(0));
            obj.insert("value".into(), two);
            obj.insert("valueTwo".into(), value);
            changed = true;
        }
    }
    changed
}

/// Creates `dir` (absolute, as seen in the container) under `root`, one component
/// at a time, refusing to follow any symlink (nothing in the container runs yet,
/// so the tree cannot change under this walk).
fn mkdir_in_root(root: &Path, dir: &Path) -> io::Result<()> {
    let mut at = root.to_path_buf();
    for c in dir.components() {
        match c {
            Component::Normal(name) => at.push(name),
            Component::ParentDir => return Err(io::Error::other("'..' in working directory")),
            _ => continue,
        }
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(io::Error::other(format!("{} is a symlink", at.display())));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is not a directory",
                    at.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir(&at)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_readonly_hierarchies_only_for_ro_cgroup_mount() {
        let mut spec: Value = serde_json::json!({
            "mounts": [{"destination": "/sys/fs/cgroup", "type": "cgroup", "options": ["nosuid", "ro"]}],
            "linux": {"readonlyPaths": ["/proc/bus"]}
        });
        let h = vec!["pids".to_owned(), "memory".to_owned()];
        assert!(readonly_cgroup_v1(&mut spec, &h));
        assert_eq!(
            spec["linux"]["readonlyPaths"],
            serde_json::json!([
                "/proc/bus",
                "/sys/fs/cgroup",
                "/sys/fs/cgroup/pids",
                "/sys/fs/cgroup/memory"
            ])
        );
        assert!(!readonly_cgroup_v1(&mut spec, &h), "idempotent");
        let mut rw: Value = serde_json::json!({"mounts": [{"destination": "/sys/fs/cgroup", "options": []}], "linux": {}});
        assert!(!readonly_cgroup_v1(&mut rw, &h));
    }

    #[test]
    fn masked_eq_is_handed_to_libcontainer_mask_in_value_two() {
        let mut spec: Value = serde_json::json!({"linux": {"seccomp": {"syscalls": [
            {"names": ["clone"], "args": [{"index": 0, "value": 2114060288u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["personality"], "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
        ]}}});
        assert!(masked_eq_for_libcontainer(&mut spec));
        let clone = &spec["linux"]["seccomp"]["syscalls"][0]["args"][0];
        assert_eq!(clone["value"], 0);
        assert_eq!(clone["valueTwo"], 2114060288u64);
        assert_eq!(
            spec["linux"]["seccomp"]["syscalls"][1]["args"][0]["value"],
            8
        );
    }

    #[test]
    fn mkdir_in_root_creates_and_refuses_symlinks() {
        let root = std::env::temp_dir().join(format!("berth-fixup-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        mkdir_in_root(&root, Path::new("/srv/new/dir")).unwrap();
        assert!(root.join("srv/new/dir").is_dir());
        std::os::unix::fs::symlink("/tmp", root.join("escape")).unwrap();
        assert!(mkdir_in_root(&root, Path::new("/escape/x")).is_err());
        assert!(!Path::new("/tmp/x-berth-never").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
