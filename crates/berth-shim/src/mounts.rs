//! Mounting the root filesystem containerd hands over in Create (containerd does
//! not mount it for v2 shims) at `<bundle>/rootfs`, and unmounting it on delete.

use std::path::Path;

use containerd_shim_protos::types::mount::Mount;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Splits mount options into flags and the data string, as mount(8) does.
pub fn parse_options(options: &[String]) -> (MsFlags, bool, String) {
    let mut flags = MsFlags::empty();
    let mut ro = false;
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => ro = true,
            "rw" => ro = false,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "suid" | "dev" | "exec" | "async" | "defaults" => {}
            other => data.push(other.to_owned()),
        }
    }
    (flags, ro, data.join(","))
}

/// Mounts `mounts` in order at `target`; on failure unmounts what it mounted.
pub fn mount_rootfs(mounts: &[Mount], target: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(target)?;
    for (done, m) in mounts.iter().enumerate() {
        let (flags, ro, data) = parse_options(&m.options);
        let fstype = if m.type_ == "bind" {
            None
        } else {
            Some(m.type_.as_str())
        };
        let flags = if m.type_ == "bind" {
            flags | MsFlags::MS_BIND
        } else {
            flags
        };
        let base = if ro && !flags.contains(MsFlags::MS_BIND) {
            flags | MsFlags::MS_RDONLY
        } else {
            flags
        };
        let result = mount(
            Some(m.source.as_str()),
            target,
            fstype,
            base,
            (!data.is_empty()).then_some(data.as_str()),
        )
        .and_then(|()| {
            if ro && flags.contains(MsFlags::MS_BIND) {
                // A bind mount becomes read-only only by a remount.
                mount(
                    None::<&str>,
                    target,
                    None::<&str>,
                    flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None::<&str>,
                )
            } else {
                Ok(())
            }
        });
        if let Err(e) = result {
            for _ in 0..done {
                let _ = umount2(target, MntFlags::MNT_DETACH);
            }
            return Err(std::io::Error::other(format!(
                "mount {} ({}) on {}: {e}",
                m.source,
                m.type_,
                target.display()
            )));
        }
    }
    Ok(())
}

/// Unmounts everything mounted at `target` (ignores "not mounted").
pub fn unmount_all(target: &Path) {
    for _ in 0..8 {
        if umount2(target, MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_flags_from_data() {
        let opts: Vec<String> = ["ro", "rbind", "nosuid", "lowerdir=/a:/b", "upperdir=/u"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, ro, data) = parse_options(&opts);
        assert!(ro);
        assert!(flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_NOSUID));
        assert_eq!(data, "lowerdir=/a:/b,upperdir=/u");
    }
}
