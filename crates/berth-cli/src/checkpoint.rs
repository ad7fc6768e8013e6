//! `berth checkpoint create|ls|rm`, and where `run --checkpoint` looks.

use std::path::{Path, PathBuf};

use berth::{Client, ContainerId};

use crate::cli::{CheckpointCommand, Cli};
use crate::commands::{report, report_berth};
use crate::names;

/// A container's checkpoints when no `--checkpoint-dir` is given (as the library's
/// default): `<data-root>/checkpoints/<id>`.
pub fn default_dir(data_root: &Path, id: &ContainerId) -> PathBuf {
    data_root.join("checkpoints").join(id.as_str())
}

/// Field `key` of the checkpoint's marker.
fn marker_field<T: serde::de::DeserializeOwned>(checkpoint: &Path, key: &str) -> Option<T> {
    let bytes = std::fs::read(checkpoint.join("berth.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    serde_json::from_value(v.get(key)?.clone()).ok()
}

/// The command line the checkpointed container ran, from the checkpoint's marker.
pub fn args_of(checkpoint: &Path) -> Vec<String> {
    marker_field(checkpoint, "Args").unwrap_or_default()
}

/// The hostname of the checkpointed container, if the marker has it.
pub fn hostname_of(checkpoint: &Path) -> Option<String> {
    marker_field(checkpoint, "Hostname")
}

/// The image the checkpointed container ran, if it ran one.
pub fn image_of(checkpoint: &Path) -> Option<String> {
    marker_field(checkpoint, "Image")
}

/// A container that may be gone (its checkpoints outlive it): its id as given.
fn id_of(cli: &Cli, name: &str) -> Result<ContainerId, String> {
    names::resolve(&cli.data_root, name)
        .or_else(|_| ContainerId::new(name))
        .map_err(|e| e.to_string())
}

pub async fn dispatch(cli: &Cli, c: &Client, cmd: &CheckpointCommand) -> u8 {
    match cmd {
        CheckpointCommand::Create {
            leave_running,
            checkpoint_dir,
            name,
            checkpoint,
        } => {
            const VERB: &str = "checkpoint create";
            let id = match names::resolve(&cli.data_root, name) {
                Ok(id) => id,
                Err(e) => {
                    crate::commands::report_any(VERB, name, &e);
                    return 1;
                }
            };
            match c
                .checkpoint(&id, checkpoint, checkpoint_dir.as_deref(), !leave_running)
                .await
            {
                Ok(()) => {
                    println!("{checkpoint}");
                    0
                }
                Err(e) => {
                    report_berth(VERB, &e);
                    1
                }
            }
        }
        CheckpointCommand::Ls {
            checkpoint_dir,
            name,
        } => {
            const VERB: &str = "checkpoint ls";
            let id = match id_of(cli, name) {
                Ok(id) => id,
                Err(e) => {
                    report(VERB, name, &e);
                    return 1;
                }
            };
            // Checkpoints outlive their container; a name with neither is a typo.
            if checkpoint_dir.is_none()
                && names::resolve(&cli.data_root, name).is_err()
                && !default_dir(&cli.data_root, &id).exists()
            {
                report(
                    VERB,
                    name,
                    &"no such container, and no checkpoints of that name",
                );
                return 1;
            }
            match c.list_checkpoints(&id, checkpoint_dir.as_deref()).await {
                Ok(list) => {
                    println!("CHECKPOINT NAME");
                    for cp in list {
                        println!("{}", cp.name);
                    }
                    0
                }
                Err(e) => {
                    report_berth(VERB, &e);
                    1
                }
            }
        }
        CheckpointCommand::Rm {
            checkpoint_dir,
            name,
            checkpoint,
        } => {
            const VERB: &str = "checkpoint rm";
            let id = match id_of(cli, name) {
                Ok(id) => id,
                Err(e) => {
                    report(VERB, name, &e);
                    return 1;
                }
            };
            match c
                .delete_checkpoint(&id, checkpoint, checkpoint_dir.as_deref())
                .await
            {
                Ok(()) => {
                    println!("{checkpoint}");
                    0
                }
                Err(e) => {
                    report_berth(VERB, &e);
                    1
                }
            }
        }
    }
}
