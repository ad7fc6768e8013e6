//! Every path under the state and data roots comes from these functions of the id.

use std::path::{Path, PathBuf};

use berth_types::ContainerId;

/// libcontainer's state dir under the state root: not a name a container can
/// take, since a container's state dir is `<root>/<id>`.
pub const RUNTIME_DIR: &str = "runtime";

/// The two roots.
#[derive(Debug, Clone)]
pub struct Roots {
    pub state: PathBuf,
    pub data: PathBuf,
}

impl Roots {
    /// `<root>/<id>`: sockets, journal, FIFOs, bundle.
    pub fn state_dir(&self, id: &ContainerId) -> PathBuf {
        self.state.join(id.as_str())
    }

    /// `<root>/runtime`: libcontainer's state.
    pub fn runtime_root(&self) -> PathBuf {
        self.state.join(RUNTIME_DIR)
    }

    /// `<data-root>/containers/<id>`: the record that survives a reboot.
    pub fn data_dir(&self, id: &ContainerId) -> PathBuf {
        self.containers_dir().join(id.as_str())
    }

    /// `<data-root>/checkpoints/<id>`: the container's checkpoints by default; they
    /// outlive the container, so that one can be brought back under its name.
    pub fn checkpoints_dir(&self, id: &ContainerId) -> PathBuf {
        self.data.join("checkpoints").join(id.as_str())
    }

    /// `<data-root>/containers`.
    pub fn containers_dir(&self) -> PathBuf {
        self.data.join("containers")
    }
}

pub fn bundle_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("bundle")
}

pub fn socket(state_dir: &Path) -> PathBuf {
    state_dir.join("shim.sock")
}

pub fn journal(state_dir: &Path) -> PathBuf {
    state_dir.join("events.jsonl")
}
