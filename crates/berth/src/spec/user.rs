//! `-u USER[:GROUP]` resolved against the container's own `/etc/passwd` and
//! `/etc/group`, with runc's semantics (libcontainer/user.GetExecUser).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Largest uid or gid runc accepts (ids are signed 32-bit in the kernel ABI).
const MAX_ID: u32 = i32::MAX as u32;

/// Symlinks followed before giving up, as the kernel's ELOOP limit.
const MAX_SYMLINKS: usize = 40;

/// Why a `-u` value cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A user name has no entry in the container's /etc/passwd.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// A group name has no entry in the container's /etc/group.
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    /// A numeric id is beyond 2^31-1.
    #[error("id {0} is out of range (0 to 2147483647)")]
    OutOfRange(String),
    /// The container's passwd or group file exists but cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file, as a host path.
        path: PathBuf,
        /// Why it cannot be read.
        source: io::Error,
    },
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves `user` (`USER`, `USER:GROUP`, names or numbers, or empty for
/// root) in the root filesystem at `rootfs`, returning `(uid, gid,
/// additional_gids)`.
///
/// As runc does: a number is always an id, found in passwd or not (a uid not
/// in passwd gets gid 0); a name must exist; without an explicit group the
/// gid is the passwd entry's and the additional gids are the groups that
/// list the user as a member; with an explicit group there are none.
/// Symlinks under `rootfs` are resolved inside it, never on the host.
pub fn resolve(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>), UserError> {
    let (user_arg, group_arg) = match user.split_once(':') {
        Some((u, g)) => (u, g),
        None => (user, ""),
    };
    let uid_arg = parse_id(user_arg)?;
    let gid_arg = parse_id(group_arg)?;

    let passwd = read_in_root(rootfs, "etc/passwd")?;
    let users = passwd.as_deref().map(parse_passwd).unwrap_or_default();
    let found = users.into_iter().find(|u| match (user_arg, uid_arg) {
        ("", _) => u.uid == 0,
        (_, Some(uid)) => u.uid == uid,
        (name, None) => u.name == name,
    });

    let (uid, mut gid, matched_name) = match (found, uid_arg) {
        (Some(u), _) => (u.uid, u.gid, Some(u.name)),
        (None, Some(uid)) => (uid, 0, None),
        (None, None) if user_arg.is_empty() => (0, 0, None),
        (None, None) => return Err(UserError::UnknownUser(user_arg.to_owned())),
    };

    let mut additional = Vec::new();
    if !group_arg.is_empty() || matched_name.is_some() {
        let group = read_in_root(rootfs, "etc/group")?;
        let groups = group.as_deref().map(parse_group).unwrap_or_default();
        if group_arg.is_empty() {
            let name = matched_name.as_deref().unwrap_or_default();
            additional = groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m == name))
                .map(|g| g.gid)
                .collect();
        } else {
            gid = match groups.iter().find(|g| match gid_arg {
                Some(gid) => g.gid == gid,
                None => g.name == group_arg,
            }) {
                Some(g) => g.gid,
                None => gid_arg.ok_or_else(|| UserError::UnknownGroup(group_arg.to_owned()))?,
            };
        }
    }
    Ok((uid, gid, additional))
}

/// The HOME a process of `uid` gets, as Docker gives it: its home in the root's
/// /etc/passwd, or `/` when passwd does not name it.
pub fn home(rootfs: &Path, uid: u32) -> String {
    passwd_home(rootfs, uid)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_owned())
}

fn passwd_home(rootfs: &Path, uid: u32) -> Option<String> {
    let text = read_in_root(rootfs, "etc/passwd").ok().flatten()?;
    parse_passwd(&text)
        .into_iter()
        .find(|e| e.uid == uid)
        .map(|e| e.home)
}

/// A numeric id, `None` for a name; a number past [`MAX_ID`] is an error.
fn parse_id(s: &str) -> Result<Option<u32>, UserError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u64>() {
        Ok(n) if n <= u64::from(MAX_ID) => Ok(Some(n as u32)),
        _ => Err(UserError::OutOfRange(s.to_owned())),
    }
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    records(text)
        .filter_map(|f| {
            // A line whose ids do not parse is skipped: reading it as 0, as
            // runc's parser does, would turn a typo into root.
            Some(PasswdEntry {
                name: (*f.first()?).to_owned(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).map(|h| (*h).to_owned()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    records(text)
        .filter_map(|f| {
            Some(GroupEntry {
                name: (*f.first()?).to_owned(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The colon-separated fields of each entry; comments, blank lines and NIS
/// compat entries (`+`, `-`) are skipped.
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', '+', '-']))
        .map(|l| l.split(':').collect())
}

/// Reads `rel` under `root`, `None` when it does not exist.
fn read_in_root(root: &Path, rel: &str) -> Result<Option<String>, UserError> {
    let path = resolve_in_root(root, Path::new(rel)).map_err(|source| UserError::Read {
        path: root.join(rel),
        source,
    })?;
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(UserError::Read { path, source }),
    }
}

/// The host path of `path` as seen from a process whose root is `root`:
/// every symlink is followed with `root` as `/`, and `..` stops at `root`, so
/// an image whose /etc/passwd links to /etc/shadow reads its own, not the
/// host's. (A racing writer could still swap a component afterwards; the
/// result only selects ids and never leaves berth.)
pub(crate) fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<OsString> = components(path);
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate: PathBuf = std::iter::once(root.as_os_str())
            .chain(resolved.iter().map(OsString::as_os_str))
            .chain(std::iter::once(part.as_os_str()))
            .collect();
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::other("too many levels of symbolic links"));
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for c in components(&target).into_iter().rev() {
                    pending.push_front(c);
                }
            }
            Ok(_) => resolved.push(part),
            // Whatever is missing stays missing: the caller's open reports it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                resolved.push(part);
                resolved.extend(pending.drain(..).filter(|c| c != ".."));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(std::iter::once(root.as_os_str())
        .chain(resolved.iter().map(OsString::as_os_str))
        .collect())
}

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::spec::test_support::TempDir;
    use std::os::unix::fs::symlink;

    fn rootfs() -> TempDir {
        let dir = TempDir::new("user");
        let etc = dir.path().join("etc");
        fs::create_dir(&etc).unwrap();
        fs::write(
            etc.join("passwd"),
            "# comment\n\
             root:x:0:0:root:/root:/bin/sh\n\
             daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
             broken:x:notanumber:0::/:/bin/sh\n\
             alice:x:1000:1000:Alice:/home/alice:/bin/sh\n\
             alice:x:1001:1001:second alice:/:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        )
        .unwrap();
        fs::write(
            etc.join("group"),
            "root:x:0:\n\
             daemon:x:1:\n\
             tty:x:5:alice\n\
             staff:x:50:bob,alice\n\
             alice:x:1000:\n\
             nogroup:x:65534:\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn default_is_root() {
        let r = rootfs();
        assert_eq!(resolve(r.path(), "").unwrap(), (0, 0, vec![]));
        assert_eq!(resolve(r.path(), "root").unwrap(), (0, 0, vec![]));
        assert_eq!(resolve(r.path(), "0").unwrap(), (0, 0, vec![]));
    }

    #[test]
    fn names_and_supplementary_groups() {
        let r = rootfs();
        // First match wins; supplementary groups come from the member lists.
        assert_eq!(
            resolve(r.path(), "alice").unwrap(),
            (1000, 1000, vec![5, 50])
        );
        assert_eq!(
            resolve(r.path(), "1000").unwrap(),
            (1000, 1000, vec![5, 50])
        );
        assert_eq!(resolve(r.path(), "nobody").unwrap(), (65534, 65534, vec![]));
    }

    #[test]
    fn explicit_group_has_no_supplementary_groups() {
        let r = rootfs();
        assert_eq!(
            resolve(r.path(), "alice:staff").unwrap(),
            (1000, 50, vec![])
        );
        assert_eq!(resolve(r.path(), "alice:5").unwrap(), (1000, 5, vec![]));
        assert_eq!(
            resolve(r.path(), "alice:4242").unwrap(),
            (1000, 4242, vec![])
        );
        assert_eq!(resolve(r.path(), "daemon:tty").unwrap(), (1, 5, vec![]));
        assert_eq!(resolve(r.path(), ":tty").unwrap(), (0, 5, vec![]));
    }

    #[test]
    fn numeric_ids_need_no_entry() {
        let r = rootfs();
        assert_eq!(resolve(r.path(), "4242").unwrap(), (4242, 0, vec![]));
        assert_eq!(
            resolve(r.path(), "4242:4343").unwrap(),
            (4242, 4343, vec![])
        );
        assert_eq!(
            resolve(r.path(), "4242:nogroup").unwrap(),
            (4242, 65534, vec![])
        );
    }

    #[test]
    fn unknown_names_and_ranges() {
        let r = rootfs();
        assert!(
            matches!(resolve(r.path(), "mallory"), Err(UserError::UnknownUser(n)) if n == "mallory")
        );
        assert!(
            matches!(resolve(r.path(), "alice:nope"), Err(UserError::UnknownGroup(n)) if n == "nope")
        );
        assert!(matches!(
            resolve(r.path(), "broken"),
            Err(UserError::UnknownUser(_))
        ));
        assert!(matches!(
            resolve(r.path(), "2147483648"),
            Err(UserError::OutOfRange(_))
        ));
        assert!(matches!(
            resolve(r.path(), "0:99999999999"),
            Err(UserError::OutOfRange(_))
        ));
        assert_eq!(resolve(r.path(), "2147483647").unwrap().0, 2_147_483_647);
    }

    #[test]
    fn without_passwd_only_numbers() {
        let dir = TempDir::new("user-empty");
        assert_eq!(resolve(dir.path(), "").unwrap(), (0, 0, vec![]));
        assert_eq!(resolve(dir.path(), "12:34").unwrap(), (12, 34, vec![]));
        assert!(matches!(
            resolve(dir.path(), "alice"),
            Err(UserError::UnknownUser(_))
        ));
        assert!(matches!(
            resolve(dir.path(), "1:staff"),
            Err(UserError::UnknownGroup(_))
        ));
    }

    #[test]
    fn symlinks_stay_inside_the_rootfs() {
        let r = rootfs();
        let etc = r.path().join("etc");
        // An absolute link must resolve under the rootfs, not on the host.
        fs::create_dir(r.path().join("data")).unwrap();
        fs::rename(etc.join("passwd"), r.path().join("data/passwd")).unwrap();
        symlink("/data/passwd", etc.join("passwd")).unwrap();
        assert_eq!(resolve(r.path(), "alice").unwrap().0, 1000);

        // Escaping with .. stops at the rootfs; the host's /etc/passwd (which
        // has no alice) is never read.
        fs::remove_file(etc.join("passwd")).unwrap();
        symlink("../../../../../../data/passwd", etc.join("passwd")).unwrap();
        assert_eq!(resolve(r.path(), "alice").unwrap().0, 1000);

        fs::remove_file(etc.join("passwd")).unwrap();
        symlink("/etc/shadow-that-is-not-here", etc.join("passwd")).unwrap();
        assert!(matches!(
            resolve(r.path(), "root"),
            Err(UserError::UnknownUser(_))
        ));

        // A loop is an error, not a hang.
        fs::remove_file(etc.join("passwd")).unwrap();
        symlink("passwd", etc.join("passwd")).unwrap();
        assert!(matches!(
            resolve(r.path(), "root"),
            Err(UserError::Read { .. })
        ));
    }
}
