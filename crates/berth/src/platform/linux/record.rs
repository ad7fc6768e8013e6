//! The container's record under the data root: written at create, completed by the
//! shim with the exit, read when the shim is gone.

use std::path::{Path, PathBuf};

use berth_types::{ContainerId, ExitStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `config.json` of the record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: ContainerId,
    pub created: DateTime<Utc>,
    pub bundle: PathBuf,
    pub image: Option<String>,
    pub args: Vec<String>,
    pub spec: serde_json::Value,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
}

pub fn read(dir: &Path) -> std::io::Result<Record> {
    let bytes = std::fs::read(dir.join("config.json"))?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}

pub fn write(dir: &Path, rec: &Record) -> std::io::Result<()> {
    let tmp = dir.join("config.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(rec).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(tmp, dir.join("config.json"))
}

/// Records an exit the shim could not (it is gone).
pub fn write_exit(dir: &Path, exit: &ExitStatus) -> std::io::Result<()> {
    std::fs::write(
        dir.join("exit.json"),
        serde_json::to_vec(exit).map_err(std::io::Error::other)?,
    )
}

/// The exit the shim recorded, if it recorded one.
pub fn exit(dir: &Path) -> Option<ExitStatus> {
    serde_json::from_slice(&std::fs::read(dir.join("exit.json")).ok()?).ok()
}
