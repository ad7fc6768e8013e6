//! Unpacks one layer tar into an empty directory, as overlayfs wants a lower layer:
//! whiteouts `.wh.NAME` become character devices 0:0, an opaque marker
//! `.wh..wh..opq` becomes the `trusted.overlay.opaque=y` xattr of its directory.
//! Hard links, symlinks, devices, fifos, xattrs, owners, modes and times are kept.
//!
//! No entry may land outside the layer directory: a path with `..` is refused, and
//! so is one that passes through a symlink leading out of it (an absolute symlink
//! target counts from the layer's root, as it will inside the container). The
//! directory is private to the import while it is written (under the image
//! store's temp dir), so resolving paths step by step cannot race with anyone.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};
use sha2::{Digest, Sha256};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const MAX_SYMLINK_HOPS: usize = 40;

/// How a layer's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// From the first bytes of a stream.
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }

    /// A reader of the uncompressed bytes of `r`.
    pub fn reader<'a>(self, r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Self::None => Box::new(r),
            Self::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Self::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        })
    }
}

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// An entry would land outside the layer directory.
    #[error("entry {path:?} escapes the layer: {why}")]
    Escape { path: String, why: &'static str },
    /// The tar stream is broken or truncated.
    #[error("read tar: {0}")]
    Tar(io::Error),
    /// An entry's data ends before its header says.
    #[error("entry {path:?}: truncated ({got} of {want} bytes)")]
    Truncated { path: String, got: u64, want: u64 },
    /// An entry of a kind berth does not unpack.
    #[error("entry {path:?}: unsupported tar entry type {kind:?}")]
    Unsupported { path: String, kind: char },
    /// Writing an entry failed.
    #[error("entry {path:?}: {source}")]
    Write { path: String, source: io::Error },
}

/// Counts and hashes what passes through.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    /// Bytes read so far.
    pub count: u64,
}

impl<R: Read> Hashing<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads the rest, then gives the hex sha256 of everything read and the count.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((hex(&self.hasher.finalize()), self.count))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Ends a tar stream cleanly when the writer left out the padding of its last
/// entry and the end-of-archive blocks (umoci 0.4 does): after EOF of `inner`,
/// zeros up to the next 512-byte boundary and two zero blocks. The layer's diff id,
/// checked over the real bytes, still catches a truncated layer.
pub struct ZeroTrailer<R> {
    inner: R,
    count: u64,
    pad: Option<u64>,
}

impl<R: Read> ZeroTrailer<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            count: 0,
            pad: None,
        }
    }
}

impl<R: Read> Read for ZeroTrailer<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pad.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.count += n as u64;
                return Ok(n);
            }
            self.pad = Some((512 - self.count % 512) % 512 + 1024);
        }
        let left = self.pad.as_mut().expect("set above");
        let n = (*left).min(buf.len() as u64) as usize;
        buf[..n].fill(0);
        *left -= n as u64;
        Ok(n)
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The components of an entry path, refusing `..`. Leading `/` and `./` and empty
/// or `.` components are dropped (tars name the root `./`).
pub fn entry_components(raw: &[u8]) -> Result<Vec<OsString>, &'static str> {
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("`..` in the path"),
            c => out.push(OsStr::from_bytes(c).to_owned()),
        }
    }
    Ok(out)
}

/// Where a symlink at `dir/<link>` (dir given as components under the root)
/// leads, as components under the root: an absolute target counts from the root;
/// a `..` above the root is an escape.
pub fn follow_link(dir: &[OsString], target: &Path) -> Result<Vec<OsString>, &'static str> {
    let mut cur: Vec<OsString> = if target.is_absolute() {
        Vec::new()
    } else {
        dir.to_vec()
    };
    for c in target.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => cur.clear(),
            Component::CurDir => {}
            Component::ParentDir => {
                if cur.pop().is_none() {
                    return Err("a symlink on the way leads out of the layer");
                }
            }
            Component::Normal(n) => cur.push(n.to_owned()),
        }
    }
    Ok(cur)
}

/// Resolves directory components under `root`, following symlinks inside the layer
/// and making missing directories (mode 0755) when `create`. Returns the
/// components of the real directory under the root.
fn resolve_dir(
    root: &Path,
    comps: &[OsString],
    create: bool,
) -> Result<Vec<OsString>, (&'static str, Option<io::Error>)> {
    let mut todo: Vec<OsString> = comps.iter().rev().cloned().collect();
    let mut cur: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        let p = join(root, &cur).join(&c);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(("too many symlinks on the way", None));
                }
                let target = std::fs::read_link(&p).map_err(|e| ("read symlink", Some(e)))?;
                let rest = follow_link(&cur, &target).map_err(|w| (w, None))?;
                // Re-walk the target from the root: it may pass through symlinks too.
                cur.clear();
                todo.extend(rest.into_iter().rev());
            }
            Ok(m) if m.is_dir() => cur.push(c),
            Ok(_) => return Err(("a parent is not a directory", None)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                std::fs::create_dir(&p).map_err(|e| ("make parent directory", Some(e)))?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| ("make parent directory", Some(e)))?;
                cur.push(c);
            }
            Err(e) => return Err(("resolve parent", Some(e))),
        }
    }
    Ok(cur)
}

fn join(root: &Path, comps: &[OsString]) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in comps {
        p.push(c);
    }
    p
}

/// Removes whatever is at `p` (a directory with all it holds), if anything.
fn clear(p: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Unpacks the tar `r` (already decompressed) into `root`, an existing directory.
pub fn unpack(r: impl Read, root: &Path) -> Result<(), UnpackError> {
    let mut archive = tar::Archive::new(ZeroTrailer::new(r));
    let mut dirs: Vec<(PathBuf, u64)> = Vec::new();
    for entry in archive.entries().map_err(UnpackError::Tar)? {
        let mut entry = entry.map_err(UnpackError::Tar)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let escape = |why| UnpackError::Escape {
            path: shown.clone(),
            why,
        };
        let write = |what: &str, e: io::Error| UnpackError::Write {
            path: shown.clone(),
            source: io::Error::new(e.kind(), format!("{what}: {e}")),
        };
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            continue;
        }
        let mut comps = entry_components(&raw).map_err(escape)?;
        let Some(name) = comps.pop() else {
            // The layer's root itself: keep the directory as made.
            continue;
        };
        let parent = resolve_dir(root, &comps, true).map_err(|(why, e)| match e {
            Some(e) => write(why, e),
            None => escape(why),
        })?;
        let dir = join(root, &parent);
        let name_s = name.to_string_lossy();
        if name_s == OPAQUE {
            xattr::set(&dir, "trusted.overlay.opaque", b"y")
                .map_err(|e| write("mark opaque directory", e))?;
            continue;
        }
        if let Some(hidden) = name_s.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.starts_with(WHITEOUT_PREFIX) {
                // aufs metadata (.wh..wh.plnk and the like): nothing for overlayfs.
                continue;
            }
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(escape("a whiteout of no name"));
            }
            let p = dir.join(hidden);
            clear(&p).map_err(|e| write("whiteout", e))?;
            nix::sys::stat::mknod(&p, SFlag::S_IFCHR, Mode::empty(), 0)
                .map_err(|e| write("whiteout", e.into()))?;
            continue;
        }
        let path = dir.join(&name);
        let h = entry.header();
        let mode = h.mode().map_err(UnpackError::Tar)? & 0o7777;
        let uid = h.uid().map_err(UnpackError::Tar)?;
        let gid = h.gid().map_err(UnpackError::Tar)?;
        let mtime = h.mtime().unwrap_or(0);
        let size = h.size().map_err(UnpackError::Tar)?;
        match kind {
            tar::EntryType::Directory => {
                match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    _ => {
                        clear(&path).map_err(|e| write("replace", e))?;
                        std::fs::create_dir(&path).map_err(|e| write("make directory", e))?;
                    }
                }
                dirs.push((path.clone(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                clear(&path).map_err(|e| write("replace", e))?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(|e| write("create file", e))?;
                let got = io::copy(&mut entry, &mut f).map_err(UnpackError::Tar)?;
                if got != size {
                    return Err(UnpackError::Truncated {
                        path: shown,
                        got,
                        want: size,
                    });
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| escape("a symlink without a target"))?
                    .into_owned();
                clear(&path).map_err(|e| write("replace", e))?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .map_err(|e| write("make symlink", e))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| escape("a hard link without a target"))?
                    .into_owned();
                let mut tcomps = entry_components(&target).map_err(escape)?;
                let tname = tcomps
                    .pop()
                    .ok_or_else(|| escape("a hard link to the root"))?;
                let tparent = resolve_dir(root, &tcomps, false).map_err(|(why, e)| match e {
                    Some(e) => write(why, e),
                    None => escape(why),
                })?;
                let tpath = join(root, &tparent).join(tname);
                if tpath == path {
                    continue;
                }
                clear(&path).map_err(|e| write("replace", e))?;
                std::fs::hard_link(&tpath, &path).map_err(|e| write("make hard link", e))?;
                // A hard link shares the target's owner, mode and times.
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let kind_flag = match kind {
                    tar::EntryType::Char => SFlag::S_IFCHR,
                    tar::EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                clear(&path).map_err(|e| write("replace", e))?;
                nix::sys::stat::mknod(
                    &path,
                    kind_flag,
                    Mode::from_bits_truncate(0o600),
                    nix::sys::stat::makedev(major.into(), minor.into()),
                )
                .map_err(|e| write("make device", e.into()))?;
            }
            other => {
                return Err(UnpackError::Unsupported {
                    path: shown,
                    kind: other.as_byte() as char,
                });
            }
        }
        // Owner first: chown clears set-id bits that chmod then sets.
        nix::unistd::fchownat(
            None,
            &path,
            Some(Uid::from_raw(uid as u32)),
            Some(Gid::from_raw(gid as u32)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| write("set owner", e.into()))?;
        if kind != tar::EntryType::Symlink {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| write("set mode", e))?;
        }
        if let Some(exts) = entry.pax_extensions().map_err(UnpackError::Tar)? {
            for ext in exts {
                let ext = ext.map_err(UnpackError::Tar)?;
                if let Some(attr) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    xattr::set(&path, OsStr::from_bytes(attr), ext.value_bytes())
                        .map_err(|e| write("set xattr", e))?;
                }
            }
        }
        if kind != tar::EntryType::Directory {
            set_mtime(&path, mtime).map_err(|e| write("set time", e))?;
        }
    }
    // Directory times last: their entries changed them while unpacking.
    for (p, mtime) in dirs.iter().rev() {
        let _ = set_mtime(p, *mtime);
    }
    Ok(())
}

fn set_mtime(p: &Path, mtime: u64) -> io::Result<()> {
    let t = nix::sys::time::TimeSpec::new(mtime as i64, 0);
    nix::sys::stat::utimensat(
        None,
        p,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(s: &str) -> Vec<String> {
        entry_components(s.as_bytes())
            .unwrap()
            .into_iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect()
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn entry_paths_are_cleaned() {
        assert_eq!(comps("./etc/passwd"), ["etc", "passwd"]);
        assert_eq!(comps("/etc//x/./y/"), ["etc", "x", "y"]);
        assert!(comps("./").is_empty());
        assert_eq!(comps("a/..b/c.."), ["a", "..b", "c.."]);
    }

    #[test]
    fn dotdot_is_refused_anywhere() {
        for bad in ["../x", "a/../../x", "a/..", "./../etc", "/.."] {
            assert!(entry_components(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn symlinks_resolve_inside_the_layer() {
        // lib -> usr/lib, in the root.
        assert_eq!(
            follow_link(&[], Path::new("usr/lib")).unwrap(),
            os(&["usr", "lib"])
        );
        // An absolute target counts from the layer's root.
        assert_eq!(
            follow_link(&os(&["a", "b"]), Path::new("/etc")).unwrap(),
            os(&["etc"])
        );
        // a/b/l -> ../c stays inside.
        assert_eq!(
            follow_link(&os(&["a", "b"]), Path::new("../c")).unwrap(),
            os(&["a", "c"])
        );
        assert_eq!(
            follow_link(&os(&["a"]), Path::new("./../x/./y")).unwrap(),
            os(&["x", "y"])
        );
    }

    #[test]
    fn symlinks_out_of_the_layer_are_escapes() {
        assert!(follow_link(&[], Path::new("..")).is_err());
        assert!(follow_link(&os(&["a"]), Path::new("../../etc")).is_err());
        assert!(follow_link(&os(&["a", "b"]), Path::new("../../../../tmp")).is_err());
        assert!(follow_link(&[], Path::new("/../x")).is_err());
    }

    #[test]
    fn zero_trailer_pads_to_a_block_and_ends_the_archive() {
        let mut v = Vec::new();
        ZeroTrailer::new(&[1u8; 700][..])
            .read_to_end(&mut v)
            .unwrap();
        assert_eq!(v.len(), 1024 + 1024);
        assert!(v[700..].iter().all(|&b| b == 0));
        let mut v = Vec::new();
        ZeroTrailer::new(&[1u8; 512][..])
            .read_to_end(&mut v)
            .unwrap();
        assert_eq!(v.len(), 512 + 1024);
    }

    #[test]
    fn compression_is_sniffed() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"etc/\0\0"), Compression::None);
    }

    #[test]
    fn hashing_counts_and_hashes() {
        let h = Hashing::new(&b"abc"[..]);
        let (d, n) = h.finish().unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            d,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-unpack-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn resolve_follows_inner_links_and_stops_outer_ones() {
        let root = scratch("resolve");
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("/usr", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("usr/out")).unwrap();
        assert_eq!(
            resolve_dir(&root, &os(&["lib", "x"]), true).unwrap(),
            os(&["usr", "lib", "x"])
        );
        assert!(root.join("usr/lib/x").is_dir());
        assert_eq!(
            resolve_dir(&root, &os(&["abs", "lib"]), false).unwrap(),
            os(&["usr", "lib"])
        );
        let e = resolve_dir(&root, &os(&["usr", "out", "tmp"]), true).unwrap_err();
        assert!(e.1.is_none(), "an escape, not an I/O error: {}", e.0);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
