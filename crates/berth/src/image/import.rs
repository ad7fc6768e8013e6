//! `import`: an OCI image layout (directory or tar) or a `docker save` archive into
//! the store. Everything is written under `images/tmp/` first, every blob checked
//! against its digest and size and every layer against its diff id, and only then
//! renamed into place and named in the index; any error leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::reference::{valid_tag, Reference};
use super::unpack::{self, entry_components, hex, Compression, Hashing};
use super::{Image, ImageError, ImageStore, RunConfig};

/// Options of an import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The repository for images the archive names only by a tag (as `umoci` and
    /// `skopeo` write OCI layouts), and the name of images it does not name at all.
    pub name: Option<String>,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The compression a layer media type says, or `None` for an unknown type.
fn layer_compression(media_type: &str) -> Option<Compression> {
    Some(match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Compression::None,
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Compression::Zstd,
        _ => return None,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PlatformSpec {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Manifest {
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct IndexFile {
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    config: Option<RunConfig>,
    rootfs: RootFs,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    #[serde(rename = "type", default)]
    kind: String,
    diff_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Progress in bytes, reported at most every MiB.
struct Meter<'p> {
    done: u64,
    total: u64,
    last: u64,
    f: &'p mut dyn FnMut(u64, u64),
}

impl Meter<'_> {
    fn add(&mut self, n: u64) {
        self.done += n;
        if self.done - self.last >= 1 << 20 || self.done >= self.total {
            self.last = self.done;
            (self.f)(self.done, self.total.max(self.done));
        }
    }
}

struct Metered<'m, 'p, R> {
    inner: R,
    meter: &'m mut Meter<'p>,
}

impl<R: Read> Read for Metered<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.add(n as u64);
        Ok(n)
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bad(msg: impl Into<String>) -> ImageError {
    ImageError::Bad(msg.into())
}

/// `sha256:<hex>` checked; the hex.
fn digest_hex(d: &str) -> Result<&str, ImageError> {
    let hex = d
        .strip_prefix("sha256:")
        .ok_or_else(|| bad(format!("digest {d:?}: only sha256 digests are supported")))?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad(format!("digest {d:?} is not sha256:<64 hex digits>")));
    }
    Ok(hex)
}

/// One image found in the input.
struct Candidate {
    names: Vec<String>,
    manifest: String,
    config_digest: String,
    config: ConfigFile,
    /// (blob digest, blob size, compression), bottom-most first.
    layers: Vec<(String, u64, Compression)>,
}

struct Import<'s, 'p> {
    store: &'s ImageStore,
    tmp: PathBuf,
    src: PathBuf,
    /// The source is our own extraction: blobs may be moved rather than copied.
    owned: bool,
    meter: Meter<'p>,
    ingested: BTreeSet<String>,
}

pub(super) fn import(
    store: &ImageStore,
    src: &Path,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<Image>, ImageError> {
    let tmp_root = store.root.join("tmp");
    mkdir(&tmp_root)?;
    let tmp = TempDir(tmp_root.join(format!(
        "import-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or(0)
    )));
    mkdir(&tmp.0.join("blobs/sha256"))?;
    mkdir(&tmp.0.join("layers"))?;
    let meta = std::fs::metadata(src).map_err(ImageError::io(format!("{}", src.display())))?;
    let mut meter = Meter {
        done: 0,
        total: 0,
        last: 0,
        f: progress,
    };
    let (src_dir, owned) = if meta.is_dir() {
        (src.to_path_buf(), false)
    } else {
        meter.total = meta.len();
        let dir = tmp.0.join("src");
        mkdir(&dir)?;
        extract_archive(src, &dir, &mut meter)?;
        (dir, true)
    };
    let src_dir = std::fs::canonicalize(&src_dir)
        .map_err(ImageError::io(format!("{}", src_dir.display())))?;
    let mut imp = Import {
        store,
        tmp: tmp.0.clone(),
        src: src_dir,
        owned,
        meter,
        ingested: BTreeSet::new(),
    };
    let candidates = if imp.src.join("manifest.json").is_file() {
        imp.docker(opts)?
    } else if imp.src.join("index.json").is_file() {
        imp.oci(opts)?
    } else {
        return Err(bad(
            "not an image: neither an OCI image layout (index.json) nor a `docker save` archive (manifest.json)",
        ));
    };
    if candidates.is_empty() {
        return Err(bad("the archive holds no image"));
    }
    imp.unpack_layers(&candidates)?;
    imp.commit(candidates)
}

fn mkdir(p: &Path) -> Result<(), ImageError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(ImageError::io(format!("create {}", p.display())))
}

/// Extracts an image archive (plain, gzip or zstd tar) into `dir`: directories,
/// regular files and symlinks (`docker save` links repeated layers), each path
/// checked to stay inside `dir`.
fn extract_archive(src: &Path, dir: &Path, meter: &mut Meter<'_>) -> Result<(), ImageError> {
    let what = format!("read {}", src.display());
    let mut f = std::fs::File::open(src).map_err(ImageError::io(&what))?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head).map_err(ImageError::io(&what))?;
    let compression = Compression::sniff(&head[..n]);
    let f = io::Cursor::new(head[..n].to_vec()).chain(f);
    let metered = Metered {
        inner: f,
        meter: &mut *meter,
    };
    let r = compression.reader(metered).map_err(ImageError::io(&what))?;
    let mut archive = tar::Archive::new(r);
    let tar_err = |e: io::Error| {
        bad(format!(
            "{}: not a readable tar archive: {e}",
            src.display()
        ))
    };
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let raw = entry.path_bytes().into_owned();
        let comps = entry_components(&raw).map_err(|why| {
            bad(format!(
                "archive entry {:?}: {why}",
                String::from_utf8_lossy(&raw)
            ))
        })?;
        if comps.is_empty() {
            continue;
        }
        let path = comps.iter().fold(dir.to_path_buf(), |p, c| p.join(c));
        let size = entry.header().size().map_err(tar_err)?;
        match entry.header().entry_type() {
            tar::EntryType::Directory => mkdir(&path)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = path.parent() {
                    mkdir(parent)?;
                }
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags_nofollow()
                    .open(&path)
                    .map_err(ImageError::io(format!("extract {}", path.display())))?;
                let got = io::copy(&mut entry, &mut out).map_err(tar_err)?;
                if got != size {
                    return Err(bad(format!(
                        "{}: truncated archive ({} has {got} of {size} bytes)",
                        src.display(),
                        String::from_utf8_lossy(&raw)
                    )));
                }
            }
            tar::EntryType::Symlink => {
                if let Some(t) = entry.link_name().map_err(tar_err)? {
                    links.push((path, t.into_owned()));
                }
            }
            _ => {}
        }
    }
    // Check the end of the archive was really there.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(tar_err)?;
    for (path, target) in links {
        if let Some(parent) = path.parent() {
            mkdir(parent)?;
        }
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(&target, &path)
            .map_err(ImageError::io(format!("extract {}", path.display())))?;
    }
    Ok(())
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOFOLLOW).mode(0o600)
    }
}

impl Import<'_, '_> {
    /// A path inside the source, refusing one that leads out of it.
    fn src_path(&self, rel: &str) -> Result<PathBuf, ImageError> {
        let comps = entry_components(rel.as_bytes())
            .map_err(|why| bad(format!("path {rel:?} in the image: {why}")))?;
        let p = comps.iter().fold(self.src.clone(), |p, c| p.join(c));
        let real = std::fs::canonicalize(&p)
            .map_err(|e| bad(format!("{rel}: missing from the image ({e})")))?;
        if !real.starts_with(&self.src) {
            return Err(bad(format!("{rel}: leads out of the image")));
        }
        Ok(real)
    }

    fn blob_src(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = digest_hex(digest)?;
        self.src_path(&format!("blobs/sha256/{hex}"))
    }

    /// Checks the blob at `path` against `digest` and `size` and puts it into the
    /// import's blobs (unless the store has it). Returns where it now is.
    fn ingest(
        &mut self,
        path: &Path,
        digest: &str,
        size: Option<u64>,
    ) -> Result<PathBuf, ImageError> {
        let hex = digest_hex(digest)?.to_owned();
        let dest = self.tmp.join("blobs/sha256").join(&hex);
        if self.ingested.contains(&hex) {
            return Ok(dest);
        }
        let stored = self.store.blob_path(digest);
        let keep = !stored.exists();
        let what = format!("blob {digest}");
        let f = std::fs::File::open(path).map_err(|e| bad(format!("{what}: missing ({e})")))?;
        let mut h = Hashing::new(Metered {
            inner: f,
            meter: &mut self.meter,
        });
        if keep && !self.owned {
            let mut out = std::fs::File::create(&dest).map_err(ImageError::io(&what))?;
            io::copy(&mut h, &mut out).map_err(ImageError::io(&what))?;
            out.flush().map_err(ImageError::io(&what))?;
        }
        let (got, n) = h.finish().map_err(ImageError::io(&what))?;
        if let Some(size) = size {
            if n != size {
                return Err(bad(format!(
                    "{what}: size mismatch: {n} bytes, the descriptor says {size}"
                )));
            }
        }
        if got != hex {
            return Err(bad(format!(
                "{what}: digest mismatch: the content hashes to sha256:{got}"
            )));
        }
        if keep && self.owned {
            std::fs::rename(path, &dest).map_err(ImageError::io(&what))?;
        }
        self.ingested.insert(hex);
        Ok(if keep { dest } else { stored })
    }

    fn ingest_json<T: for<'de> Deserialize<'de>>(
        &mut self,
        d: &Descriptor,
    ) -> Result<T, ImageError> {
        let src = self.blob_src(&d.digest)?;
        let at = self.ingest(&src, &d.digest, Some(d.size))?;
        let bytes = std::fs::read(&at).map_err(ImageError::io(format!("blob {}", d.digest)))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("blob {} ({}): {e}", d.digest, d.media_type)))
    }

    fn oci(&mut self, opts: &ImportOptions) -> Result<Vec<Candidate>, ImageError> {
        let bytes = std::fs::read(self.src.join("index.json"))
            .map_err(ImageError::io("read index.json"))?;
        let index: IndexFile =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("index.json: {e}")))?;
        let total: u64 = index.manifests.iter().map(|d| d.size).sum();
        self.meter.total += total;
        let mut out = Vec::new();
        for d in &index.manifests {
            let names = oci_names(d, opts)?;
            let (digest, manifest) = self.resolve_manifest(d, 0)?;
            out.push(self.candidate(names, digest, manifest)?);
        }
        Ok(out)
    }

    fn resolve_manifest(
        &mut self,
        d: &Descriptor,
        depth: usize,
    ) -> Result<(String, Manifest), ImageError> {
        match d.media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => Ok((d.digest.clone(), self.ingest_json(d)?)),
            OCI_INDEX | DOCKER_LIST if depth < 4 => {
                let index: IndexFile = self.ingest_json(d)?;
                let arch = match std::env::consts::ARCH {
                    "x86_64" => "amd64",
                    "aarch64" => "arm64",
                    other => other,
                };
                let pick = index
                    .manifests
                    .iter()
                    .find(|m| {
                        m.platform
                            .as_ref()
                            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
                    })
                    .or_else(|| (index.manifests.len() == 1).then(|| &index.manifests[0]))
                    .ok_or_else(|| bad(format!("index {}: no image for linux/{arch}", d.digest)))?
                    .clone();
                self.resolve_manifest(&pick, depth + 1)
            }
            other => Err(bad(format!(
                "{}: unknown media type {other:?} for a manifest",
                d.digest
            ))),
        }
    }

    fn candidate(
        &mut self,
        names: Vec<String>,
        manifest_digest: String,
        m: Manifest,
    ) -> Result<Candidate, ImageError> {
        if !matches!(m.config.media_type.as_str(), OCI_CONFIG | DOCKER_CONFIG) {
            return Err(bad(format!(
                "{}: unknown media type {:?} for an image config",
                m.config.digest, m.config.media_type
            )));
        }
        let mut layers = Vec::new();
        for l in &m.layers {
            let c = layer_compression(&l.media_type).ok_or_else(|| {
                bad(format!(
                    "layer {}: unknown media type {:?}",
                    l.digest, l.media_type
                ))
            })?;
            layers.push((l.digest.clone(), l.size, c));
        }
        self.meter.total += m.config.size + m.layers.iter().map(|l| 2 * l.size).sum::<u64>();
        let config: ConfigFile = self.ingest_json(&m.config)?;
        for l in &m.layers {
            let src = self.blob_src(&l.digest)?;
            self.ingest(&src, &l.digest, Some(l.size))?;
        }
        check_config(&config, layers.len(), &m.config.digest)?;
        Ok(Candidate {
            names,
            manifest: manifest_digest,
            config_digest: m.config.digest.clone(),
            config,
            layers,
        })
    }

    fn docker(&mut self, opts: &ImportOptions) -> Result<Vec<Candidate>, ImageError> {
        let bytes = std::fs::read(self.src.join("manifest.json"))
            .map_err(ImageError::io("read manifest.json"))?;
        let ms: Vec<DockerManifest> =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("manifest.json: {e}")))?;
        let mut out = Vec::new();
        for m in ms {
            // The config's file name is its digest (`<hex>.json` or `blobs/sha256/<hex>`).
            let cpath = self.src_path(&m.config)?;
            let cbytes = std::fs::read(&cpath).map_err(ImageError::io(&m.config))?;
            let chex = hex(&Sha256::digest(&cbytes));
            let named = Path::new(&m.config)
                .file_name()
                .map(|n| n.to_string_lossy().trim_end_matches(".json").to_owned())
                .unwrap_or_default();
            if named.len() == 64 && named != chex {
                return Err(bad(format!(
                    "config {}: digest mismatch: the content hashes to sha256:{chex}",
                    m.config
                )));
            }
            let config_digest = format!("sha256:{chex}");
            let config: ConfigFile = serde_json::from_slice(&cbytes)
                .map_err(|e| bad(format!("config {}: {e}", m.config)))?;
            check_config(&config, m.layers.len(), &config_digest)?;
            let cdest = self.tmp.join("blobs/sha256").join(&chex);
            if !self.store.blob_path(&config_digest).exists() {
                std::fs::write(&cdest, &cbytes).map_err(ImageError::io("write config"))?;
            }
            self.ingested.insert(chex);
            let mut descs = Vec::new();
            let mut layers = Vec::new();
            for (i, l) in m.layers.iter().enumerate() {
                let lpath = self.src_path(l)?;
                let size = std::fs::metadata(&lpath).map_err(ImageError::io(l))?.len();
                self.meter.total += 2 * size;
                let mut head = [0u8; 4];
                let n = std::fs::File::open(&lpath)
                    .and_then(|mut f| f.read(&mut head))
                    .map_err(ImageError::io(l))?;
                let c = Compression::sniff(&head[..n]);
                // A plain layer's digest is its diff id; else the file's own hash.
                let digest = match c {
                    Compression::None => config.rootfs.diff_ids[i].clone(),
                    _ => {
                        let f = std::fs::File::open(&lpath).map_err(ImageError::io(l))?;
                        let (h, _) = Hashing::new(f).finish().map_err(ImageError::io(l))?;
                        format!("sha256:{h}")
                    }
                };
                let named = Path::new(l)
                    .parent()
                    .filter(|p| p.ends_with("blobs/sha256"))
                    .and(Path::new(l).file_name())
                    .map(|n| n.to_string_lossy().into_owned());
                if let Some(named) = named {
                    if named.len() == 64 && format!("sha256:{named}") != digest {
                        return Err(bad(format!(
                            "layer {l}: digest mismatch: the layer's diff id is {digest}"
                        )));
                    }
                }
                self.ingest(&lpath, &digest, Some(size))
                    .map_err(|e| bad(format!("layer {l}: {e}")))?;
                let media_type = match c {
                    Compression::None => "application/vnd.oci.image.layer.v1.tar",
                    Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                    Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
                };
                descs.push(Descriptor {
                    media_type: media_type.into(),
                    digest: digest.clone(),
                    size,
                    annotations: None,
                    platform: None,
                });
                layers.push((digest, size, c));
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(OCI_MANIFEST.into()),
                config: Descriptor {
                    media_type: OCI_CONFIG.into(),
                    digest: config_digest.clone(),
                    size: cbytes.len() as u64,
                    annotations: None,
                    platform: None,
                },
                layers: descs,
            };
            let mbytes = serde_json::to_vec(&manifest).map_err(|e| bad(e.to_string()))?;
            let mhex = hex(&Sha256::digest(&mbytes));
            std::fs::write(self.tmp.join("blobs/sha256").join(&mhex), &mbytes)
                .map_err(ImageError::io("write manifest"))?;
            self.ingested.insert(mhex.clone());
            let mut names = Vec::new();
            for t in m.repo_tags.unwrap_or_default() {
                names.push(Reference::parse(&t)?.to_string());
            }
            if names.is_empty() {
                if let Some(n) = &opts.name {
                    names.push(Reference::parse(n)?.to_string());
                }
            }
            out.push(Candidate {
                names,
                manifest: format!("sha256:{mhex}"),
                config_digest,
                config,
                layers,
            });
        }
        Ok(out)
    }

    /// Unpacks every layer the store does not have yet, checking each against its
    /// diff id.
    fn unpack_layers(&mut self, candidates: &[Candidate]) -> Result<(), ImageError> {
        for c in candidates {
            for ((digest, _, compression), diff_id) in
                c.layers.iter().zip(&c.config.rootfs.diff_ids)
            {
                let dhex = digest_hex(diff_id)?.to_owned();
                let dest = self.tmp.join("layers").join(&dhex);
                if self.store.layer_path(diff_id).exists() || dest.exists() {
                    continue;
                }
                let blob = if self.store.blob_path(digest).exists() {
                    self.store.blob_path(digest)
                } else {
                    self.tmp.join("blobs/sha256").join(digest_hex(digest)?)
                };
                let what = format!("layer {diff_id}");
                std::fs::create_dir(&dest).map_err(ImageError::io(&what))?;
                let f = std::fs::File::open(&blob).map_err(ImageError::io(&what))?;
                let metered = Metered {
                    inner: f,
                    meter: &mut self.meter,
                };
                let mut h = Hashing::new(
                    compression
                        .reader(metered)
                        .map_err(|e| bad(format!("{what}: decompress: {e}")))?,
                );
                unpack::unpack(&mut h, &dest).map_err(|e| bad(format!("{what}: {e}")))?;
                let (got, _) = h
                    .finish()
                    .map_err(|e| bad(format!("{what}: decompress: {e}")))?;
                if got != dhex {
                    return Err(bad(format!(
                        "{what}: diff id mismatch: the uncompressed layer hashes to sha256:{got}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Moves blobs and layers into place, then names the images in the index.
    fn commit(self, candidates: Vec<Candidate>) -> Result<Vec<Image>, ImageError> {
        let store = self.store;
        mkdir(&store.root.join("blobs/sha256"))?;
        mkdir(&store.root.join("layers"))?;
        for (from, to) in [
            (
                self.tmp.join("blobs/sha256"),
                store.root.join("blobs/sha256"),
            ),
            (self.tmp.join("layers"), store.root.join("layers")),
        ] {
            let rd = std::fs::read_dir(&from).map_err(ImageError::io("commit import"))?;
            for e in rd.flatten() {
                let dest = to.join(e.file_name());
                if !dest.exists() {
                    std::fs::rename(e.path(), &dest).map_err(ImageError::io("commit import"))?;
                }
            }
        }
        let mut index = store.read_index()?;
        let mut out = Vec::new();
        for c in candidates {
            let image = Image {
                id: c.config_digest.clone(),
                names: c.names.clone(),
                manifest: c.manifest,
                layers: c.config.rootfs.diff_ids.clone(),
                created: c.config.created.clone(),
                size: c.layers.iter().map(|l| l.1).sum(),
                platform: format!(
                    "{}/{}",
                    c.config.os.as_deref().unwrap_or("linux"),
                    c.config.architecture.as_deref().unwrap_or("unknown")
                ),
                config: c.config.config.clone().unwrap_or_default(),
                imported: Utc::now(),
            };
            // A name moves to the image imported now, as `docker load` does.
            for other in index.images.iter_mut() {
                other.names.retain(|n| !image.names.contains(n));
            }
            match index.images.iter_mut().find(|i| i.id == image.id) {
                Some(existing) => {
                    for n in &image.names {
                        if !existing.names.contains(n) {
                            existing.names.push(n.clone());
                        }
                    }
                    existing.imported = image.imported;
                    out.push(existing.clone());
                }
                None => {
                    index.images.push(image.clone());
                    out.push(image);
                }
            }
        }
        store.write_index(&index)?;
        Ok(out)
    }
}

/// The config's rootfs must name one diff id per layer.
fn check_config(config: &ConfigFile, layers: usize, digest: &str) -> Result<(), ImageError> {
    if config.rootfs.kind != "layers" {
        return Err(bad(format!(
            "config {digest}: rootfs type {:?} is not \"layers\"",
            config.rootfs.kind
        )));
    }
    if config.rootfs.diff_ids.len() != layers {
        return Err(bad(format!(
            "config {digest}: {} diff ids for {layers} layers",
            config.rootfs.diff_ids.len()
        )));
    }
    for d in &config.rootfs.diff_ids {
        digest_hex(d)?;
    }
    if layers == 0 {
        return Err(bad(format!("config {digest}: the image has no layers")));
    }
    Ok(())
}

/// The names an OCI index entry gives its image: `io.containerd.image.name` (a full
/// reference), else `org.opencontainers.image.ref.name` (a full reference, or only a
/// tag, which needs `--name` for its repository).
fn oci_names(d: &Descriptor, opts: &ImportOptions) -> Result<Vec<String>, ImageError> {
    let ann = d.annotations.clone().unwrap_or_default();
    if let Some(n) = ann.get("io.containerd.image.name") {
        return Ok(vec![Reference::parse(n)?.to_string()]);
    }
    let base = opts.name.as_deref().map(Reference::parse).transpose()?;
    // `--name repo:tag` names the tag too; a bare `--name repo` takes the layout's.
    let tagged = opts
        .name
        .as_deref()
        .and_then(|n| n.rsplit('/').next())
        .is_some_and(|last| last.contains(':') || last.contains('@'));
    match ann.get("org.opencontainers.image.ref.name") {
        Some(r) if valid_tag(r) => Ok(match base {
            Some(b) if tagged => vec![b.to_string()],
            Some(b) => vec![b.with_tag(r)?.to_string()],
            None => Vec::new(),
        }),
        Some(r) => Ok(vec![Reference::parse(r)?.to_string()]),
        None => Ok(base.map(|b| b.to_string()).into_iter().collect()),
    }
}
