//! The host's event log: every event of every container under one berth root, in
//! the order they happened, one JSON line each (`<root>/.events.jsonl`). Each
//! container's own journal stays the source of truth for the engine; this log is
//! what `berth events` reads, so that it sees containers that lived for
//! milliseconds and the history of removed ones. Past [`MAX_BYTES`] the log moves
//! to `.events.jsonl.1` (replacing the one before) and starts anew.
//!
//! The one part of this crate that touches files: the shim and the client both
//! append here.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where the log is under a berth root. Not a valid container id (those begin
/// with a letter or digit), so no container's state dir can take its place.
pub const FILE: &str = ".events.jsonl";

/// Where the previous log went when the current one filled.
pub const OLD_FILE: &str = ".events.jsonl.1";

/// The size at which the log moves aside.
pub const MAX_BYTES: u64 = 4 << 20;

/// `<root>/.events.jsonl`.
pub fn path(root: &Path) -> PathBuf {
    root.join(FILE)
}

/// `<root>/.events.jsonl.1`.
pub fn old_path(root: &Path) -> PathBuf {
    root.join(OLD_FILE)
}

/// Appends `lines` (whole lines, each ending in `\n`) in one write, then moves
/// the log aside if it has grown past [`MAX_BYTES`].
pub fn append(root: &Path, lines: &[u8]) -> io::Result<()> {
    let path = path(root);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    f.write_all(lines)?;
    if f.metadata()?.len() > MAX_BYTES {
        std::fs::rename(&path, old_path(root))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past the limit the log moves aside whole and the next append starts anew.
    #[test]
    fn a_full_log_moves_aside() {
        let root = std::env::temp_dir().join(format!("berth-event-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let line = vec![b'x'; 1 << 20];
        for _ in 0..4 {
            append(&root, &line).unwrap();
        }
        assert_eq!(std::fs::metadata(path(&root)).unwrap().len(), 4 << 20);
        assert!(!old_path(&root).exists());
        append(&root, b"y\n").unwrap();
        assert!(!path(&root).exists(), "moved aside once past the limit");
        assert_eq!(
            std::fs::metadata(old_path(&root)).unwrap().len(),
            (4 << 20) + 2
        );
        append(&root, b"z\n").unwrap();
        assert_eq!(std::fs::read(path(&root)).unwrap(), b"z\n");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
