//! Checkpoints: the shim dumps with CRIU into a directory the platform chooses
//! (`<data-root>/checkpoints/<id>/<name>` unless the caller names another parent);
//! a `berth.json` written last marks a checkpoint as complete.

use std::path::{Path, PathBuf};

use berth_types::wire::{CheckpointOptions, CHECKPOINT_OPTIONS_TYPE_URL, ROOTFS_DIFF};
use berth_types::ContainerId;
use chrono::{DateTime, Utc};
use containerd_shim_protos::api;
use serde::{Deserialize, Serialize};

use super::shim::{ctx, map_err};
use super::Platform;
use crate::error::{Error, ErrorKind, Result};
use crate::types::CheckpointInfo;

use berth_types::wire::CHECKPOINT_MARKER as MARKER;

/// What the marker says.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Marker {
    name: String,
    container: String,
    created: DateTime<Utc>,
    /// The command line of the container's init, for a restore that gives none.
    #[serde(default)]
    args: Vec<String>,
    /// The image the container ran, for a restore that names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    /// The container's hostname: its UTS namespace comes back with it, and its
    /// /etc/hostname and /etc/hosts should say the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    /// The size of every file the dump wrote, by name: a restore refuses a
    /// checkpoint whose files were cut short or grew (CRIU reads its page images
    /// unchecked, and a short one can hang the restore).
    #[serde(default)]
    files: std::collections::BTreeMap<String, u64>,
}

/// Checks that `dir` holds a complete checkpoint (CRIU's images and berth's marker).
pub fn check_images(dir: &Path) -> std::result::Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("{}: no such checkpoint", dir.display()));
    }
    if !dir.join("inventory.img").is_file() {
        return Err(format!(
            "{}: not a checkpoint (no CRIU inventory.img)",
            dir.display()
        ));
    }
    let marker = match std::fs::read(dir.join(MARKER)) {
        Ok(bytes) => serde_json::from_slice::<Marker>(&bytes)
            .map_err(|e| format!("{}: damaged checkpoint ({MARKER}: {e})", dir.display()))?,
        Err(_) => {
            return Err(format!(
                "{}: incomplete checkpoint (no {MARKER}: its dump did not finish)",
                dir.display()
            ))
        }
    };
    for (name, size) in &marker.files {
        let found = std::fs::metadata(dir.join(name)).map(|m| m.len());
        match found {
            Ok(n) if n == *size => {}
            Ok(n) => {
                return Err(format!(
                    "{}: damaged checkpoint ({name} is {n} bytes; the dump wrote {size})",
                    dir.display()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "{}: damaged checkpoint ({name}: {e})",
                    dir.display()
                ))
            }
        }
    }
    Ok(())
}

/// A checkpoint name: as a container name (`[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}`).
fn check_name(op: &'static str, id: &ContainerId, name: &str) -> Result<()> {
    ContainerId::new(name).map(drop).map_err(|e| {
        Error::new(
            op,
            id.as_str(),
            ErrorKind::InvalidArgument,
            "check checkpoint name",
            format!("{name:?}: {e}"),
        )
    })
}

/// Unpacks a checkpoint's archive of the writable root layer into `dir`, if the
/// checkpoint has one (a checkpoint of a container on a caller's root has none).
pub fn unpack_rootfs(checkpoint: &Path, dir: &Path) -> std::result::Result<(), String> {
    let archive = checkpoint.join(ROOTFS_DIFF);
    if !archive.is_file() {
        return Ok(());
    }
    let out = std::process::Command::new("tar")
        .arg("--extract")
        .arg("--file")
        .arg(&archive)
        .args(["--numeric-owner", "--same-permissions", "--xattrs"])
        .args(["--xattrs-include=*", "--directory"])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("tar: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "tar of {} failed ({}): {}",
        archive.display(),
        out.status,
        said.lines().last().unwrap_or("no message")
    ))
}

impl Platform {
    /// The writable root layer berth made for `id`: the upper dir of its image
    /// overlay, or the default root's own directory. `None` when the root is the
    /// caller's (a `--rootfs` or bundle root outlives the container as it is).
    fn writable_root(&self, id: &ContainerId, spec: &serde_json::Value) -> Option<PathBuf> {
        let ours = super::layers::root_of(&self.roots.state_dir(id));
        let root = spec.pointer("/root/path")?.as_str()?;
        if std::fs::canonicalize(root).ok()? != std::fs::canonicalize(&ours).ok()? {
            return None;
        }
        // berth's overlays always have an upper dir; a root that is none is the
        // default root's own directory.
        Some(super::layers::upper_of(&ours).unwrap_or(ours))
    }

    /// The checkpoint dir's parent, absolute: the shim works in another directory.
    fn checkpoint_parent(&self, id: &ContainerId, dir: Option<&Path>) -> PathBuf {
        let parent = dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.roots.checkpoints_dir(id));
        std::path::absolute(&parent).unwrap_or(parent)
    }

    /// Dumps `id` into checkpoint `name`; stops it afterwards if `exit`.
    pub async fn checkpoint(
        &self,
        id: &ContainerId,
        name: &str,
        dir: Option<&Path>,
        exit: bool,
    ) -> Result<()> {
        const OP: &str = "checkpoint";
        check_name(OP, id, name)?;
        let rec = self.record(OP, id)?;
        let parent = self.checkpoint_parent(id, dir);
        let path = parent.join(name);
        super::mkdir_private(&parent).map_err(super::io_err(OP, id, "create checkpoint dir"))?;
        match std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&path)
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::new(
                    OP,
                    id.as_str(),
                    ErrorKind::AlreadyExists,
                    "create checkpoint dir",
                    format!("checkpoint {name} exists in {}", parent.display()),
                ));
            }
            Err(e) => return Err(super::io_err(OP, id, "create checkpoint dir")(e)),
        }
        let mut written = self.dump(id, name, &path, exit, rec).await;
        if let Err(e) = &mut written {
            // criu's log goes with the checkpoint dir: keep it in the container's
            // record, where the error says it is.
            let log = path.join("dump.log");
            let kept = self
                .roots
                .data_dir(id)
                .join(format!("checkpoint-{name}-dump.log"));
            if std::fs::rename(&log, &kept).is_ok() {
                e.message = e
                    .message
                    .replace(&*log.to_string_lossy(), &kept.to_string_lossy());
            }
            let _ = std::fs::remove_dir_all(&path);
            if dir.is_none() {
                // The default parent goes again if this was its only checkpoint.
                let _ = std::fs::remove_dir(&parent);
            }
        }
        written
    }

    async fn dump(
        &self,
        id: &ContainerId,
        name: &str,
        path: &Path,
        exit: bool,
        rec: super::record::Record,
    ) -> Result<()> {
        const OP: &str = "checkpoint";
        let shim = self.live_shim(OP, id)?;
        let mut req = api::CheckpointTaskRequest::new();
        req.id = id.to_string();
        req.path = path.to_string_lossy().into_owned();
        let mut any = protobuf::well_known_types::any::Any::new();
        any.type_url = CHECKPOINT_OPTIONS_TYPE_URL.to_owned();
        // The caller's criu, not the one of whoever started the shim.
        let criu = self
            .launch
            .criu
            .as_ref()
            .map(|c| c.to_string_lossy().into_owned());
        let rootfs = self
            .writable_root(id, &rec.spec)
            .map(|r| r.to_string_lossy().into_owned());
        let marker = Marker {
            name: name.to_owned(),
            container: id.to_string(),
            created: Utc::now(),
            hostname: rec
                .spec
                .get("hostname")
                .and_then(|h| h.as_str())
                .map(str::to_owned),
            args: rec.args,
            image: rec.image,
            files: Default::default(),
        };
        let opts = CheckpointOptions {
            exit,
            criu,
            rootfs,
            marker: serde_json::to_value(&marker).ok(),
        };
        any.value = serde_json::to_vec(&opts).unwrap_or_default();
        req.options = protobuf::MessageField::some(any);
        // The shim writes the marker once the dump is whole: a caller killed during
        // a long dump loses nothing.
        shim.call(move |t| t.checkpoint(ctx(None), &req))
            .await
            .map(drop)
            .map_err(|e| map_err(OP, id, "checkpoint", e))
    }

    /// The complete checkpoints under `dir` (default: `id`'s), oldest first.
    pub async fn list_checkpoints(
        &self,
        id: &ContainerId,
        dir: Option<&Path>,
    ) -> Result<Vec<CheckpointInfo>> {
        const OP: &str = "checkpoint ls";
        let parent = self.checkpoint_parent(id, dir);
        let entries = match std::fs::read_dir(&parent) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(super::io_err(OP, id, "read checkpoint dir")(e)),
        };
        let mut out: Vec<CheckpointInfo> = entries
            .filter_map(std::result::Result::ok)
            .filter_map(|e| {
                let path = e.path();
                check_images(&path).ok()?;
                let marker: Marker =
                    serde_json::from_slice(&std::fs::read(path.join(MARKER)).ok()?).ok()?;
                Some(CheckpointInfo {
                    name: e.file_name().to_string_lossy().into_owned(),
                    created: marker.created,
                    path,
                })
            })
            .collect();
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    /// Removes checkpoint `name` of `id` (under `dir`, default `id`'s).
    pub async fn delete_checkpoint(
        &self,
        id: &ContainerId,
        name: &str,
        dir: Option<&Path>,
    ) -> Result<()> {
        const OP: &str = "checkpoint rm";
        check_name(OP, id, name)?;
        let parent = self.checkpoint_parent(id, dir);
        let path = parent.join(name);
        // An incomplete one (its dump was cut short) goes as well.
        if !path.is_dir() {
            return Err(Error::new(
                OP,
                id.as_str(),
                ErrorKind::NotFound,
                "find checkpoint",
                format!("no checkpoint {name} in {}", parent.display()),
            ));
        }
        std::fs::remove_dir_all(&path).map_err(super::io_err(OP, id, "remove checkpoint"))?;
        if dir.is_none() {
            let _ = std::fs::remove_dir(&parent);
        }
        Ok(())
    }
}
