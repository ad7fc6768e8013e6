//! Names on the command line: the id itself, or a unique prefix of 3+ characters.

use std::path::Path;

use anyhow::{bail, Result};
use berth::ContainerId;

/// Resolves `name` among the containers under `data_root`.
pub fn resolve(data_root: &Path, name: &str) -> Result<ContainerId> {
    let id = ContainerId::new(name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = data_root.join("containers");
    if dir.join(id.as_str()).is_dir() {
        return Ok(id);
    }
    if name.len() >= 3 {
        let matches: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(name))
                    .collect()
            })
            .unwrap_or_default();
        match matches.as_slice() {
            [one] => return ContainerId::new(one.clone()).map_err(|e| anyhow::anyhow!("{e}")),
            [] => {}
            _ => bail!("find container: {name:?} matches more than one container"),
        }
    }
    bail!("find container: no such container")
}
