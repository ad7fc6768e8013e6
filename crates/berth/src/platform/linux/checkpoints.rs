//! Checkpoints: the shim dumps with CRIU into a directory the platform chooses
//! (`<data-root>/checkpoints/<id>/<name>` unless the caller names another parent);
//! a `berth.json` written last marks a checkpoint as complete.

use std::path::{Path, PathBuf};

use berth_types::wire::{CheckpointOptions, CHECKPOINT_OPTIONS_TYPE_URL};
use berth_types::ContainerId;
use chrono::{DateTime, Utc};
use containerd_shim_protos::api;
use serde::{Deserialize, Serialize};

use super::shim::{ctx, map_err};
use super::Platform;
use crate::error::{Error, ErrorKind, Result};
use crate::types::CheckpointInfo;

/// The marker of a complete checkpoint.
const MARKER: &str = "berth.json";

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
    if !dir.join(MARKER).is_file() {
        return Err(format!(
            "{}: incomplete checkpoint (no {MARKER}: its dump did not finish)",
            dir.display()
        ));
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

impl Platform {
    fn checkpoint_parent(&self, id: &ContainerId, dir: Option<&Path>) -> PathBuf {
        dir.map(Path::to_path_buf)
            .unwrap_or_else(|| self.roots.checkpoints_dir(id))
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
        let args = self.record(OP, id)?.args;
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
        let written = self.dump(id, name, &path, exit, args).await;
        if written.is_err() {
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
        args: Vec<String>,
    ) -> Result<()> {
        const OP: &str = "checkpoint";
        let shim = self.shim(OP, id)?;
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
        any.value = serde_json::to_vec(&CheckpointOptions { exit, criu }).unwrap_or_default();
        req.options = protobuf::MessageField::some(any);
        shim.call(move |t| t.checkpoint(ctx(None), &req))
            .await
            .map_err(|e| map_err(OP, id, "checkpoint", e))?;
        let marker = Marker {
            name: name.to_owned(),
            container: id.to_string(),
            created: Utc::now(),
            args,
        };
        std::fs::write(
            path.join(MARKER),
            serde_json::to_vec_pretty(&marker).unwrap_or_default(),
        )
        .map_err(super::io_err(OP, id, "write checkpoint marker"))
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
        if !path.join("inventory.img").is_file() && !path.join(MARKER).is_file() {
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
