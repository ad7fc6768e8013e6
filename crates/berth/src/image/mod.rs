//! The image store under `<data-root>/images/`: OCI image layouts and `docker save`
//! archives imported, verified, and unpacked into layers a container's overlay root
//! is made of.
//!
//! ```text
//! images/
//!   blobs/sha256/<hex>     manifests, configs and layer blobs, by digest
//!   layers/<diff-id hex>/  each layer unpacked once, as an overlayfs lower dir
//!   index.json             the images: id (the config digest), names, layers
//!   tmp/                   an import in progress; renamed into place at its end
//!   lock                   flock(2): one writer (import, rm) at a time
//! ```

mod import;
mod reference;
mod unpack;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use self::import::ImportOptions;
pub use self::reference::{Reference, ReferenceError};
pub use self::unpack::{entry_components, follow_link};
use crate::types::Layers;

/// The annotation in a container's spec that names the image it runs (its id), so
/// that `remove` can refuse an image in use.
pub const IMAGE_ID_ANNOTATION: &str = "io.berth.image.id";

/// Why an image operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image has that name or id.
    #[error("no such image: {0}")]
    NotFound(String),
    /// The reference is not valid.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The image is used by containers.
    #[error("image {image} is in use by container {}", containers.join(", "))]
    InUse {
        /// The image.
        image: String,
        /// The containers using it.
        containers: Vec<String>,
    },
    /// An id prefix names more than one image.
    #[error("{0}: more than one image has this id prefix")]
    Ambiguous(String),
    /// The input is not an image berth can take, or is damaged.
    #[error("{0}")]
    Bad(String),
    /// The store could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl ImageError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// The parts of an image's config that decide how it runs (Docker's names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `USER[:GROUP]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `K=V` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Prepended to the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The default command (arguments of the entrypoint, if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

/// An image as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The config's digest, `sha256:<hex>` (as Docker names images).
    pub id: String,
    /// Normalised references naming it.
    pub names: Vec<String>,
    /// The manifest blob's digest.
    pub manifest: String,
    /// Layer diff ids, bottom-most first.
    pub layers: Vec<String>,
    /// The image's creation time, from its config.
    pub created: Option<String>,
    /// Bytes of its layer blobs.
    pub size: u64,
    /// `os/architecture` from its config.
    pub platform: String,
    /// How it runs.
    pub config: RunConfig,
    /// When it was imported.
    pub imported: DateTime<Utc>,
}

impl Image {
    /// The id without `sha256:`.
    pub fn hex(&self) -> &str {
        self.id.strip_prefix("sha256:").unwrap_or(&self.id)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    images: Vec<Image>,
}

/// The image store of one data root.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    containers: PathBuf,
}

impl ImageStore {
    /// The store under `<data_root>/images`.
    pub fn new(data_root: &Path) -> Self {
        Self {
            root: data_root.join("images"),
            containers: data_root.join("containers"),
        }
    }

    /// `images/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.root
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap_or(digest))
    }

    /// The unpacked directory of a layer, by diff id.
    pub fn layer_path(&self, diff_id: &str) -> PathBuf {
        self.root
            .join("layers")
            .join(diff_id.strip_prefix("sha256:").unwrap_or(diff_id))
    }

    fn lock(&self) -> Result<nix::fcntl::Flock<File>, ImageError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(ImageError::io("create image store"))?;
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("lock"))
            .map_err(ImageError::io("open image store lock"))?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
            ImageError::Io {
                what: "lock image store".into(),
                source: e.into(),
            }
        })
    }

    fn read_index(&self) -> Result<Index, ImageError> {
        match std::fs::read(self.root.join("index.json")) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ImageError::Io {
                what: "read image index".into(),
                source: std::io::Error::other(e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(ImageError::io("read image index")(e)),
        }
    }

    fn write_index(&self, index: &Index) -> Result<(), ImageError> {
        let tmp = self.root.join("index.json.tmp");
        let bytes = serde_json::to_vec_pretty(index).map_err(|e| ImageError::Io {
            what: "write image index".into(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&tmp, bytes).map_err(ImageError::io("write image index"))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(ImageError::io("write image index"))?;
        std::fs::rename(&tmp, self.root.join("index.json"))
            .map_err(ImageError::io("write image index"))
    }

    /// Every image, newest import first.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let mut v = self.read_index()?.images;
        v.sort_by_key(|i| std::cmp::Reverse(i.imported));
        Ok(v)
    }

    /// The image a reference names: a name (normalised), a full `sha256:` id, or an
    /// id prefix of at least 12 hex digits.
    pub fn get(&self, reference: &str) -> Result<Image, ImageError> {
        find(&self.read_index()?.images, reference).cloned()
    }

    /// The layers of `image` for [`crate::CreateOptions::layers`], top-most first,
    /// with the container's own writable folder (an empty path: see `Layers`).
    pub fn layers(&self, image: &Image) -> Layers {
        Layers {
            read_only: image
                .layers
                .iter()
                .rev()
                .map(|d| self.layer_path(d))
                .collect(),
            writable: PathBuf::new(),
        }
    }

    /// Imports an OCI image layout (directory or tar) or a `docker save` archive.
    /// `progress(done, total)` is called as bytes are read. Nothing is stored
    /// unless all of it is good.
    pub fn import(
        &self,
        src: &Path,
        opts: &ImportOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<Image>, ImageError> {
        let _lock = self.lock()?;
        import::import(self, src, opts, progress)
    }

    /// Containers (by id) whose spec names `image_id`.
    pub fn users(&self, image_id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.containers) else {
            return out;
        };
        for e in rd.flatten() {
            let Ok(b) = std::fs::read(e.path().join("config.json")) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) else {
                continue;
            };
            if v["spec"]["annotations"][IMAGE_ID_ANNOTATION] == image_id {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        out
    }

    /// Removes a name, or the image when it is named by id or by its last name;
    /// refused while a container uses the image. Layers and blobs no other image
    /// needs go with it. Returns what was untagged and what was deleted.
    pub fn remove(&self, reference: &str) -> Result<Removed, ImageError> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let image = find(&index.images, reference)?.clone();
        let by_name = match Reference::parse(reference) {
            Ok(r) => image.names.contains(&r.to_string()).then(|| r.to_string()),
            Err(_) => None,
        };
        let mut removed = Removed::default();
        if let Some(name) = &by_name {
            if image.names.len() > 1 {
                let img = index
                    .images
                    .iter_mut()
                    .find(|i| i.id == image.id)
                    .expect("found above");
                img.names.retain(|n| n != name);
                self.write_index(&index)?;
                removed.untagged.push(name.clone());
                return Ok(removed);
            }
        }
        let users = self.users(&image.id);
        if !users.is_empty() {
            return Err(ImageError::InUse {
                image: by_name.unwrap_or_else(|| image.id.clone()),
                containers: users,
            });
        }
        index.images.retain(|i| i.id != image.id);
        // The index goes first: a crash after it leaves only unreferenced files.
        self.write_index(&index)?;
        removed.untagged = image.names.clone();
        removed.deleted = Some(image.id.clone());
        let keep_layers: BTreeSet<&String> =
            index.images.iter().flat_map(|i| i.layers.iter()).collect();
        let mut keep_blobs: BTreeSet<String> = BTreeSet::new();
        for i in &index.images {
            keep_blobs.extend(self.blobs_of(i));
        }
        for l in &image.layers {
            if !keep_layers.contains(l) {
                let p = self.layer_path(l);
                std::fs::remove_dir_all(&p)
                    .or_else(not_found_ok)
                    .map_err(ImageError::io(format!("remove layer {l}")))?;
            }
        }
        for b in self.blobs_of(&image) {
            if !keep_blobs.contains(&b) {
                std::fs::remove_file(self.blob_path(&b))
                    .or_else(not_found_ok)
                    .map_err(ImageError::io(format!("remove blob {b}")))?;
            }
        }
        Ok(removed)
    }

    /// The digests of an image's manifest, config and layer blobs.
    fn blobs_of(&self, image: &Image) -> Vec<String> {
        let mut v = vec![image.manifest.clone(), image.id.clone()];
        if let Ok(b) = std::fs::read(self.blob_path(&image.manifest)) {
            if let Ok(m) = serde_json::from_slice::<import::Manifest>(&b) {
                v.extend(m.layers.into_iter().map(|d| d.digest));
            }
        }
        v
    }
}

/// What [`ImageStore::remove`] did.
#[derive(Debug, Default, Clone)]
pub struct Removed {
    /// Names taken away.
    pub untagged: Vec<String>,
    /// The image deleted, if it was.
    pub deleted: Option<String>,
}

fn not_found_ok(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

fn find<'a>(images: &'a [Image], reference: &str) -> Result<&'a Image, ImageError> {
    if let Ok(r) = Reference::parse(reference) {
        let name = r.to_string();
        if let Some(i) = images.iter().find(|i| i.names.contains(&name)) {
            return Ok(i);
        }
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    let full = reference.starts_with("sha256:");
    if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hits: Vec<&Image> = images
            .iter()
            .filter(|i| {
                if full {
                    i.hex() == hex
                } else {
                    i.hex().starts_with(hex)
                }
            })
            .collect();
        match hits.len() {
            0 => {}
            1 => return Ok(hits[0]),
            _ => return Err(ImageError::Ambiguous(reference.to_owned())),
        }
    }
    if let Err(e) = Reference::parse(reference) {
        return Err(e.into());
    }
    Err(ImageError::NotFound(reference.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str, names: &[&str]) -> Image {
        Image {
            id: format!("sha256:{id}"),
            names: names.iter().map(|s| s.to_string()).collect(),
            manifest: String::new(),
            layers: vec![],
            created: None,
            size: 0,
            platform: String::new(),
            config: RunConfig::default(),
            imported: Utc::now(),
        }
    }

    #[test]
    fn find_by_name_and_id() {
        let a = "a".repeat(64);
        let ab = format!("{}{}", "a".repeat(12), "b".repeat(52));
        let images = vec![
            img(&a, &["docker.io/library/busybox:latest"]),
            img(&ab, &["quay.io/x/y:1"]),
        ];
        assert_eq!(find(&images, "busybox").unwrap().id, images[0].id);
        assert_eq!(find(&images, "busybox:latest").unwrap().id, images[0].id);
        assert_eq!(find(&images, "quay.io/x/y:1").unwrap().id, images[1].id);
        assert_eq!(
            find(&images, &format!("sha256:{a}")).unwrap().id,
            images[0].id
        );
        assert_eq!(find(&images, &ab[..13]).unwrap().id, images[1].id);
        assert!(matches!(
            find(&images, &a[..12]),
            Err(ImageError::Ambiguous(_))
        ));
        assert!(matches!(find(&images, "sh"), Err(ImageError::NotFound(_))));
        assert!(matches!(
            find(&images, "BAD:"),
            Err(ImageError::Reference(_))
        ));
    }
}
