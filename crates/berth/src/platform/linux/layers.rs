//! The overlayfs root of a container made of read-only layers: lower = the layers
//! (top-most first, overlayfs's own order), upper and work dirs in the writable
//! folder. Mounted before create, unmounted on delete; a guard unmounts it on every
//! error path in between.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::types::Layers;

/// Why the overlay root could not be mounted.
#[derive(Debug, thiserror::Error)]
pub enum LayersError {
    /// No read-only layer was given.
    #[error("no read-only layers given")]
    Empty,
    /// A layer folder is missing or not a directory.
    #[error("layer {}: {reason}", path.display())]
    Layer { path: PathBuf, reason: String },
    /// A path cannot be named in overlayfs's mount options.
    #[error("{}: overlayfs cannot take a path with ':' or ','", .0.display())]
    Unmountable(PathBuf),
    /// The mount options are longer than the kernel takes (one page).
    #[error("too many or too long layer paths ({0} bytes of mount options, at most 4095)")]
    TooLong(usize),
    /// Making the upper, work or mount point dirs failed.
    #[error("prepare {}: {source}", path.display())]
    Prepare {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Filling the upper dir from a checkpoint failed.
    #[error("restore the writable layer into {}: {reason}", path.display())]
    Seed { path: PathBuf, reason: String },
    /// mount(2) failed.
    #[error("mount overlay at {}: {source}", target.display())]
    Mount { target: PathBuf, source: nix::Error },
}

/// A mounted overlay root; unmounted when dropped unless [`Overlay::keep`] is called.
#[derive(Debug)]
pub struct Overlay {
    target: Option<PathBuf>,
}

impl Overlay {
    /// Leaves the overlay mounted (the container owns it now; delete unmounts it).
    pub fn keep(mut self) {
        self.target = None;
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if let Some(t) = self.target.take() {
            if let Err(e) = unmount(&t) {
                tracing::warn!(target = %t.display(), error = %e, "unmount overlay root");
            }
        }
    }
}

impl LayersError {
    /// The error kind a caller sees: bad layers are the caller's input.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            Self::Prepare { .. } | Self::Mount { .. } | Self::Seed { .. } => {
                crate::error::ErrorKind::Internal
            }
            _ => crate::error::ErrorKind::InvalidArgument,
        }
    }
}

/// Where a container's overlay root is mounted: `<state dir>/rootfs`.
pub fn root_of(state_dir: &Path) -> PathBuf {
    state_dir.join("rootfs")
}

/// Mounts a container's overlay root at [`root_of`] its state dir. An empty
/// writable folder means one of the container's own, in its record (removed with it).
/// Fills an upper dir before its overlay is mounted; says why it could not.
pub type Seed<'a> = dyn Fn(&Path) -> Result<(), String> + 'a;

/// `seed`, when given, fills the upper dir before the mount (a checkpoint's
/// archive of the writable layer it was taken with).
pub fn mount_root(
    layers: &Layers,
    state_dir: &Path,
    data_dir: &Path,
    seed: Option<&Seed<'_>>,
) -> Result<(Overlay, PathBuf), LayersError> {
    let mut layers = layers.clone();
    if layers.writable.as_os_str().is_empty() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|source| LayersError::Prepare {
                path: data_dir.to_path_buf(),
                source,
            })?;
        layers.writable = data_dir.join("rw");
    }
    if let Some(seed) = seed {
        let (upper, _) = upper_work(&layers.writable);
        std::fs::create_dir_all(&upper).map_err(|source| LayersError::Prepare {
            path: upper.clone(),
            source,
        })?;
        seed(&upper).map_err(|reason| LayersError::Seed {
            path: upper,
            reason,
        })?;
    }
    let target = root_of(state_dir);
    Ok((mount(&layers, &target)?, target))
}

/// The upper dir of the overlay mounted at `target`, if one is.
pub fn upper_of(target: &Path) -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let point = l.split(' ').nth(4).map(unescape)?;
        let (_, rest) = l.split_once(" - ")?;
        let mut f = rest.split(' ');
        if point != *target.to_string_lossy() || f.next() != Some("overlay") {
            return None;
        }
        f.nth(1)?
            .split(',')
            .find_map(|o| o.strip_prefix("upperdir="))
            .map(|u| PathBuf::from(unescape(u)))
    })
}

/// The upper and work dirs of a writable folder.
fn upper_work(writable: &Path) -> (PathBuf, PathBuf) {
    (writable.join("upper"), writable.join("work"))
}

/// The mount options naming `lower` (top-most first), `upper` and `work`.
pub fn options(lower: &[PathBuf], upper: &Path, work: &Path) -> Result<String, LayersError> {
    if lower.is_empty() {
        return Err(LayersError::Empty);
    }
    for p in lower.iter().map(PathBuf::as_path).chain([upper, work]) {
        let s = p.as_os_str().as_encoded_bytes();
        if s.contains(&b':') || s.contains(&b',') {
            return Err(LayersError::Unmountable(p.to_path_buf()));
        }
    }
    let lower: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if opts.len() >= 4096 {
        return Err(LayersError::TooLong(opts.len()));
    }
    Ok(opts)
}

/// Mounts the overlay of `layers` at `target` (made if missing). Every layer is
/// checked first: a missing one is an error with nothing mounted.
pub fn mount(layers: &Layers, target: &Path) -> Result<Overlay, LayersError> {
    let mut lower = Vec::with_capacity(layers.read_only.len());
    for l in &layers.read_only {
        let canon = std::fs::canonicalize(l).map_err(|e| LayersError::Layer {
            path: l.clone(),
            reason: e.to_string(),
        })?;
        if !canon.is_dir() {
            return Err(LayersError::Layer {
                path: l.clone(),
                reason: "not a directory".into(),
            });
        }
        lower.push(canon);
    }
    let (upper, work) = upper_work(&layers.writable);
    for d in [&upper, &work, &target.to_path_buf()] {
        std::fs::create_dir_all(d).map_err(|source| LayersError::Prepare {
            path: d.clone(),
            source,
        })?;
    }
    let opts = options(&lower, &upper, &work)?;
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(|source| LayersError::Mount {
        target: target.to_path_buf(),
        source,
    })?;
    tracing::debug!(target = %target.display(), layers = lower.len(), "overlay root mounted");
    Ok(Overlay {
        target: Some(target.to_path_buf()),
    })
}

/// Whether `path` is an overlay mount point now.
pub fn is_overlay_mount(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|l| {
        let mut f = l.split(' ');
        let point = f.nth(4).map(unescape);
        let fstype = l.split(" - ").nth(1).and_then(|r| r.split(' ').next());
        point.as_deref() == Some(&*path.to_string_lossy()) && fstype == Some("overlay")
    })
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Unmounts the overlay root at `target`, if one is mounted there (after a reboot
/// or a failed create there may be none). A busy mount is detached lazily, so that
/// what is under it can never be reached through `target` afterwards.
pub fn unmount(target: &Path) -> nix::Result<()> {
    while is_overlay_mount(target) {
        match nix::mount::umount2(target, MntFlags::empty()) {
            Ok(()) => {}
            Err(nix::Error::EBUSY) => nix::mount::umount2(target, MntFlags::MNT_DETACH)?,
            Err(nix::Error::EINVAL | nix::Error::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_the_order_and_name_upper_and_work() {
        let o = options(
            &[PathBuf::from("/l/top"), PathBuf::from("/l/base")],
            Path::new("/w/upper"),
            Path::new("/w/work"),
        )
        .unwrap();
        assert_eq!(
            o,
            "lowerdir=/l/top:/l/base,upperdir=/w/upper,workdir=/w/work"
        );
    }

    #[test]
    fn options_refuse_separators_and_empty() {
        assert!(matches!(
            options(&[], Path::new("/u"), Path::new("/w")),
            Err(LayersError::Empty)
        ));
        assert!(matches!(
            options(&[PathBuf::from("/a:b")], Path::new("/u"), Path::new("/w")),
            Err(LayersError::Unmountable(_))
        ));
        assert!(matches!(
            options(&[PathBuf::from("/a")], Path::new("/u,x"), Path::new("/w")),
            Err(LayersError::Unmountable(_))
        ));
        let many: Vec<PathBuf> = (0..200)
            .map(|i| PathBuf::from(format!("/var/lib/berth/images/layers/{i:040}")))
            .collect();
        assert!(matches!(
            options(&many, Path::new("/u"), Path::new("/w")),
            Err(LayersError::TooLong(_))
        ));
    }

    #[test]
    fn missing_layer_is_an_error_with_nothing_made() {
        let tmp = std::env::temp_dir().join(format!("berth-layers-{}", std::process::id()));
        let layers = Layers {
            read_only: vec![tmp.join("nope")],
            writable: tmp.join("rw"),
        };
        let e = mount(&layers, &tmp.join("root")).unwrap_err();
        assert!(matches!(e, LayersError::Layer { .. }), "{e}");
        assert!(!tmp.join("rw").exists() && !tmp.join("root").exists());
    }
}
