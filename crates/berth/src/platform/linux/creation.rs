//! A container being made (create, start of a defined one, define) holds a lock
//! in its state dir, `.create.lock`, from the moment it takes the name until it is
//! done, when it removes the lock file still holding it. Whoever else looks at the
//! container tells from it whether a creation is under way (report it as created,
//! never as lost) or its creator was killed midway (clean up what it left).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use super::record;

/// The lock file in a container's state dir.
pub const LOCK: &str = ".create.lock";

/// A creation's hold on its container.
pub type Guard = Flock<File>;

/// Prefix of a state dir being made, under the state root. Not a valid id.
const NEW_PREFIX: &str = ".new-";

/// Takes the name: makes `state_dir` holding its creation lock, already locked.
/// The dir is made aside with the lock in it and renamed into place, so nobody
/// ever finds it without the lock, or the lock unlocked while its creator lives.
/// `AlreadyExists` when the name is taken. Asides that killed makers left (of any
/// name) go first.
pub fn reserve(state_dir: &Path) -> std::io::Result<Guard> {
    use std::os::unix::fs::DirBuilderExt;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let root = state_dir.parent().unwrap_or(Path::new("/"));
    sweep(root);
    let name = state_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let aside = root.join(format!("{NEW_PREFIX}{name}-{}-{n}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&aside)?;
    let locked = File::create(aside.join(LOCK)).and_then(|f| {
        Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| std::io::Error::from(e))
    });
    // rename(2) replaces an empty dir (what an earlier berth killed midway left),
    // never one holding a lock.
    let placed = locked.and_then(|g| std::fs::rename(&aside, state_dir).map(|()| g));
    placed.map_err(|e| {
        let _ = std::fs::remove_dir_all(&aside);
        match e.raw_os_error() {
            Some(libc::ENOTEMPTY | libc::EEXIST) => {
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the name is taken")
            }
            _ => e,
        }
    })
}

/// Prefix of a record dir being removed, under the containers dir. Not a valid id.
const GONE_PREFIX: &str = ".rm-";

/// Removes a container's record dir as one step: it is renamed aside (so the
/// name is free and nobody finds half a record, nor makes a lock file in it),
/// then removed. An rm killed midway leaves only the aside, which the next
/// [`sweep`] of the containers dir removes. Missing is fine.
pub fn remove_record_dir(data_dir: &Path) -> std::io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let root = data_dir.parent().unwrap_or(Path::new("/"));
    sweep(root);
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let aside = root.join(format!("{GONE_PREFIX}{name}-{}-{n}", std::process::id()));
    match std::fs::rename(data_dir, &aside) {
        Ok(()) => std::fs::remove_dir_all(&aside),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the dirs of reservations (and record removals) whose makers died
/// before they were done (the maker's pid is in the name: `.new-<id>-<pid>-<n>`,
/// `.rm-<id>-<pid>-<n>`).
pub fn sweep(root: &Path) {
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix(NEW_PREFIX)
            .or_else(|| name.strip_prefix(GONE_PREFIX))
        else {
            continue;
        };
        let maker = rest.rsplit('-').nth(1).and_then(|p| p.parse::<i32>().ok());
        if maker.is_some_and(|pid| !super::process_alive(pid)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Ends a creation that succeeded: the lock file goes while it is still held.
pub fn finish(state_dir: &Path, guard: Guard) {
    let _ = std::fs::remove_file(state_dir.join(LOCK));
    drop(guard);
}

/// Where a container's creation stands.
pub enum Creation {
    /// None under way, none left behind.
    Settled,
    /// A live creator holds the lock.
    Running,
    /// The creator was killed midway; the guard keeps others out while its
    /// leftovers are removed.
    Abandoned(Guard),
    /// The creator was killed after the container started, before it was done
    /// (a start's definition may remain): the container stands, the rest goes.
    Unfinished(Guard),
}

/// Looks at the creation of the container whose dirs these are.
pub fn of(state_dir: &Path, data_dir: &Path) -> Creation {
    let path = state_dir.join(LOCK);
    let Ok(f) = File::open(&path) else {
        return Creation::Settled;
    };
    let guard = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(g) => g,
        Err(_) => return Creation::Running,
    };
    // Finished meanwhile: the creator removed the file before letting go.
    let same =
        std::fs::metadata(&path).ok().map(|m| m.ino()) == guard.metadata().ok().map(|m| m.ino());
    // A container that started is not abandoned, whatever its lock says (one
    // made by an earlier berth, which left the file).
    let started = record::read(data_dir).is_ok_and(|r| r.started_at.is_some());
    match (same, started) {
        (false, _) => Creation::Settled,
        (true, false) => Creation::Abandoned(guard),
        (true, true) => Creation::Unfinished(guard),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid that was a process and is no longer.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn reserving_sweeps_asides_of_dead_makers_only() {
        let root = std::env::temp_dir().join(format!("berth-creation-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let dead = root.join(format!("{NEW_PREFIX}a-{}-0", dead_pid()));
        let live = root.join(format!("{NEW_PREFIX}b-{}-7", std::process::id()));
        std::fs::create_dir(&dead).unwrap();
        std::fs::create_dir(&live).unwrap();

        let guard = reserve(&root.join("c")).unwrap();
        assert!(!dead.exists(), "a dead maker's aside stays");
        assert!(live.exists(), "a live maker's aside was removed");
        assert!(root.join("c").join(LOCK).exists());
        assert_eq!(
            reserve(&root.join("c")).unwrap_err().kind(),
            std::io::ErrorKind::AlreadyExists
        );
        finish(&root.join("c"), guard);
        assert!(!root.join("c").join(LOCK).exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
