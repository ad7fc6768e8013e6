//! Containers defined but not started (`berth create`, Docker's created state):
//! the spec and options wait in the record's `definition.json`, holding the name,
//! with no shim, process, mount or cgroup; `start` creates and starts them with the
//! stdio its caller wants then. A started container keeps them as `template.json`,
//! so that once it has exited `start` runs it again (Docker's start of a stopped
//! container): its logs and its image's writable layer stay, the rest is made anew.

use std::path::{Path, PathBuf};

use berth_types::{ContainerId, ContainerStatus, ExitStatus};
use chrono::{DateTime, Utc};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use nix::fcntl::{Flock, FlockArg};

use super::{creation, mkdir_private, record, Platform};
use crate::error::{Error, ErrorKind, Result};
use crate::types::{ContainerInfo, CreateOptions, Layers, ProcessIo, StdioRequest};

const DEFINITION: &str = "definition.json";
/// How a started container was made, for its next start.
const TEMPLATE: &str = "template.json";
/// Held while an exited container is made ready to start again.
const RESTART_LOCK: &str = ".restart.lock";
/// What a reset to the definition keeps besides it: the container's output and
/// its files (an image's writable layer) live on across its runs.
const KEPT: [&str; 6] = [
    DEFINITION,
    TEMPLATE,
    RESTART_LOCK,
    berth_types::wire::LAST_SEQ_FILE,
    "logs",
    "rw",
];

/// `definition.json`: what `start` creates the container from.
#[derive(Debug, Serialize, Deserialize)]
struct Definition {
    spec: Spec,
    bundle_dir: Option<PathBuf>,
    image: Option<String>,
    default_rootfs: bool,
    user: Option<String>,
    layers: Option<(Vec<PathBuf>, PathBuf)>,
    created: DateTime<Utc>,
}

impl Definition {
    fn of(spec: &Spec, opts: &CreateOptions) -> Self {
        Self {
            spec: spec.clone(),
            bundle_dir: opts.bundle_dir.clone(),
            image: opts.image.clone(),
            default_rootfs: opts.default_rootfs,
            user: opts.user.clone(),
            layers: opts
                .layers
                .as_ref()
                .map(|l| (l.read_only.clone(), l.writable.clone())),
            created: Utc::now(),
        }
    }

    fn options(&self) -> CreateOptions {
        CreateOptions {
            bundle_dir: self.bundle_dir.clone(),
            image: self.image.clone(),
            default_rootfs: self.default_rootfs,
            user: self.user.clone(),
            layers: self.layers.clone().map(|(read_only, writable)| Layers {
                read_only,
                writable,
            }),
            ..CreateOptions::default()
        }
    }

    fn record(&self, id: &ContainerId) -> record::Record {
        record::Record {
            id: id.clone(),
            created: self.created,
            bundle: self.bundle_dir.clone().unwrap_or_default(),
            image: self.image.clone(),
            args: self
                .spec
                .process()
                .as_ref()
                .and_then(|p| p.args().clone())
                .unwrap_or_default(),
            spec: serde_json::to_value(&self.spec).unwrap_or_default(),
            started_at: None,
        }
    }
}

/// A container not (yet) started, from its record.
pub(super) fn created_info(id: &ContainerId, rec: record::Record) -> ContainerInfo {
    ContainerInfo {
        id: id.clone(),
        status: ContainerStatus::Created,
        pid: None,
        created: rec.created,
        started_at: None,
        exit: None,
        bundle: rec.bundle,
        image: rec.image,
        args: rec.args,
    }
}

fn read(data_dir: &Path) -> Option<Definition> {
    read_as(data_dir, DEFINITION)
}

fn read_as(data_dir: &Path, name: &str) -> Option<Definition> {
    serde_json::from_slice(&std::fs::read(data_dir.join(name)).ok()?).ok()
}

/// Writes `def` as `name` whole (aside, then renamed into place).
fn write_as(data_dir: &Path, name: &str, def: &Definition) -> std::io::Result<()> {
    let tmp = data_dir.join(format!("{name}.tmp"));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(def).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(tmp, data_dir.join(name))
}

fn write(data_dir: &Path, id: &ContainerId, def: &Definition) -> std::io::Result<()> {
    mkdir_private(data_dir)?;
    write_as(data_dir, DEFINITION, def)?;
    record::write(data_dir, &def.record(id))
}

impl Platform {
    /// Whether `id` is defined and not started.
    pub(super) fn is_defined(&self, id: &ContainerId) -> bool {
        self.roots.data_dir(id).join(DEFINITION).exists()
    }

    /// Leaves `id`'s record as its definition says, and nothing else of it (after
    /// a start that failed or was killed).
    pub(super) fn reset_to_definition(&self, id: &ContainerId) {
        let data_dir = self.roots.data_dir(id);
        let Some(def) = read(&data_dir) else {
            let _ = std::fs::remove_dir_all(&data_dir);
            return;
        };
        // The record is rewritten in place, never removed: whoever looks meanwhile
        // finds the container.
        for entry in std::fs::read_dir(&data_dir).into_iter().flatten().flatten() {
            if entry.file_name() != "config.json" && !KEPT.iter().any(|k| entry.file_name() == *k) {
                let p = entry.path();
                let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
            }
        }
        let _ = record::write(&data_dir, &def.record(id));
    }

    /// Drops `id`'s definition (its start has succeeded), keeping it as the
    /// template of the container's next start.
    pub(super) fn forget_definition(&self, id: &ContainerId) {
        let data_dir = self.roots.data_dir(id);
        let _ = std::fs::rename(data_dir.join(DEFINITION), data_dir.join(TEMPLATE));
    }

    /// Keeps how `id` was just created (not defined first), for its next start.
    pub(super) fn keep_template(&self, id: &ContainerId, spec: &Spec, opts: &CreateOptions) {
        let data_dir = self.roots.data_dir(id);
        let mut def = Definition::of(spec, opts);
        if let Ok(rec) = record::read(&data_dir) {
            def.created = rec.created;
        }
        if let Err(e) = write_as(&data_dir, TEMPLATE, &def) {
            tracing::warn!(container_id = %id, error = %e, "keeping the template failed: start will not rerun it");
        }
    }

    /// Takes `id`'s start lock, held by every start (and rm) for its whole length:
    /// a start never creates from a definition that another start's [`Self::rearm`]
    /// is still tearing the last run down under. A rearm whose start was killed
    /// midway (definition written, last run not yet removed) is finished first.
    /// `None` when there is no record dir (no such container: the caller says so).
    pub(super) async fn lock_starts(
        &self,
        op: &'static str,
        id: &ContainerId,
    ) -> Result<Option<Flock<std::fs::File>>> {
        let deadline = tokio::time::Instant::now() + super::CREATION_WAIT;
        let guard = loop {
            match self.try_lock_starts(id) {
                Ok(g) => break g,
                Err(()) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(()) => {
                    return Err(Error::new(
                        op,
                        id.as_str(),
                        ErrorKind::FailedPrecondition,
                        "lock record",
                        "another start or rm of the container has held it for 60 s",
                    ))
                }
            }
        };
        let state_dir = self.roots.state_dir(id);
        if guard.is_some() && self.is_defined(id) && state_dir.exists() && !self.settle(id).await {
            // No creation holds this state dir: it is the last run's.
            self.teardown(id, &state_dir, &self.roots.data_dir(id), true)
                .await;
        }
        Ok(guard)
    }

    /// [`Self::lock_starts`] if nobody holds it now (`None` inside when there is
    /// no record dir to hold it in); `Err` if somebody does.
    #[allow(clippy::result_unit_err)]
    pub(super) fn try_lock_starts(
        &self,
        id: &ContainerId,
    ) -> std::result::Result<Option<Flock<std::fs::File>>, ()> {
        // Never made here: a lock file would make the dir of a removed container.
        let f = match std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.roots.data_dir(id).join(RESTART_LOCK))
        {
            Ok(f) => f,
            Err(_) => return Ok(None),
        };
        Flock::lock(f, FlockArg::LockExclusiveNonblock)
            .map(Some)
            .map_err(|_| ())
    }

    /// Makes an exited `id` defined again from its template, with what its last
    /// run left (shim, state, mounts, cgroup) removed and its logs and writable
    /// layer kept. The caller holds [`Self::lock_starts`] and saw it exited.
    async fn rearm(&self, id: &ContainerId) -> Result<()> {
        const OP: &str = "start";
        let data_dir = self.roots.data_dir(id);
        let rec = self.record(OP, id)?;
        let Some(mut def) = read_as(&data_dir, TEMPLATE) else {
            return Err(Error::new(
                OP,
                id.as_str(),
                ErrorKind::FailedPrecondition,
                "read template",
                "the container has exited and was made by an older berth that kept no \
                 template: remove it and run it again",
            ));
        };
        def.created = rec.created;
        write(&data_dir, id, &def).map_err(super::io_err(OP, id, "write definition"))?;
        let state_dir = self.roots.state_dir(id);
        self.teardown(id, &state_dir, &data_dir, true).await;
        if state_dir.exists() {
            return Err(Error::new(
                OP,
                id.as_str(),
                ErrorKind::Internal,
                "remove last run",
                "its root filesystem is still mounted",
            ));
        }
        Ok(())
    }

    /// The error of an operation that needs a started container.
    pub(super) fn not_started(op: &'static str, id: &ContainerId) -> Error {
        Error::new(
            op,
            id.as_str(),
            ErrorKind::FailedPrecondition,
            "find container",
            "the container is created but not started (start it first)",
        )
    }

    /// The state of a defined container.
    pub(super) fn defined_info(&self, id: &ContainerId) -> Option<ContainerInfo> {
        let def = read(&self.roots.data_dir(id))?;
        Some(created_info(id, def.record(id)))
    }

    /// Removes a defined container: its record is all there is.
    /// `None` when a start holds it (its state dir exists): wait, then look again.
    pub(super) fn delete_defined(&self, id: &ContainerId) -> Result<Option<ExitStatus>> {
        let state_dir = self.roots.state_dir(id);
        let guard = match creation::reserve(&state_dir) {
            Ok(g) => g,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(super::io_err("delete", id, "create state dir")(e)),
        };
        let removed = super::creation::remove_record_dir(&self.roots.data_dir(id));
        let _ = std::fs::remove_dir_all(&state_dir);
        drop(guard);
        removed.map_err(|e| {
            Error::new(
                "delete",
                id.as_str(),
                ErrorKind::Internal,
                "remove record",
                e,
            )
        })?;
        Ok(Some(ExitStatus::unknown("the container was never started")))
    }

    /// Defines `id` from `spec` without starting anything: the name is taken and
    /// `start` creates it later.
    pub async fn define(&self, id: &ContainerId, spec: &Spec, opts: &CreateOptions) -> Result<()> {
        const OP: &str = "create";
        let invalid = |step: &str, why: &str| {
            Err(Error::new(
                OP,
                id.as_str(),
                ErrorKind::InvalidArgument,
                step,
                why,
            ))
        };
        super::reserved(OP, id)?;
        if opts.checkpoint.is_some() {
            return invalid(
                "check options",
                "a restore starts at once: a checkpoint cannot be created for later",
            );
        }
        if spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .is_none_or(|a| a.is_empty())
        {
            return invalid("check spec", "the spec has no process to run");
        }
        if !opts.default_rootfs && opts.layers.is_none() {
            super::root_dir(spec.root().as_ref(), opts.bundle_dir.as_deref()).map_err(
                |(step, why)| Error::new(OP, id.as_str(), ErrorKind::InvalidArgument, step, why),
            )?;
        }
        let state_dir = self.roots.state_dir(id);
        let data_dir = self.roots.data_dir(id);
        let in_use = || {
            Error::new(
                OP,
                id.as_str(),
                ErrorKind::AlreadyExists,
                "reserve name",
                "the name is already in use",
            )
        };
        mkdir_private(&self.roots.state).map_err(super::io_err(OP, id, "create state root"))?;
        mkdir_private(&self.roots.containers_dir()).map_err(super::io_err(
            OP,
            id,
            "create data root",
        ))?;
        if self.settle(id).await {
            return Err(in_use());
        }
        // The state dir and its creation lock hold the name, as for a create,
        // while the record is written: a define killed midway is cleaned up as a
        // killed create is.
        let guard = match creation::reserve(&state_dir) {
            Ok(g) => g,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(in_use()),
            Err(e) => return Err(super::io_err(OP, id, "create state dir")(e)),
        };
        let written = if data_dir.exists() {
            Err(in_use())
        } else {
            write(&data_dir, id, &Definition::of(spec, opts)).map_err(|e| {
                let _ = std::fs::remove_dir_all(&data_dir);
                super::io_err(OP, id, "write record")(e)
            })
        };
        let _ = std::fs::remove_dir_all(&state_dir);
        drop(guard);
        written
    }

    /// Creates and starts a defined container, with `stdio` attached; an exited
    /// one is run again as it was made. A start that fails leaves it defined.
    pub async fn start(&self, id: &ContainerId, stdio: StdioRequest) -> Result<(u32, ProcessIo)> {
        const OP: &str = "start";
        let data_dir = self.roots.data_dir(id);
        // One start (or rm) at a time, from its first look to its end.
        let _starts = self.lock_starts(OP, id).await?;
        let mut def = read(&data_dir);
        if def.is_none() && self.state_as(id, true).await?.status == ContainerStatus::Exited {
            self.rearm(id).await?;
            def = read(&data_dir);
        }
        let Some(def) = def else {
            return Err(Error::new(
                OP,
                id.as_str(),
                ErrorKind::FailedPrecondition,
                "check state",
                "the container was started already",
            ));
        };
        self.create_from(id, &def.spec, &def.options(), stdio, Some(def.created))
            .await
            .map_err(|mut e| {
                e.op = OP;
                if e.kind == ErrorKind::AlreadyExists {
                    // The state dir, the name's lock, is another start's.
                    e.kind = ErrorKind::FailedPrecondition;
                    e.step = "check state".into();
                    e.message = "the container is being started already".into();
                }
                e
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `define` writes, `start` reads back whole: spec, options and time.
    #[test]
    fn a_definition_comes_back_as_it_was_written() {
        let dir = std::env::temp_dir().join(format!("berth-define-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let id = ContainerId::new("web").unwrap();
        let spec = Spec::default();
        let opts = CreateOptions {
            image: Some("docker.io/library/busybox:latest".into()),
            user: Some("nobody".into()),
            layers: Some(Layers {
                read_only: vec!["/l/2".into(), "/l/1".into()],
                writable: "/w".into(),
            }),
            ..CreateOptions::default()
        };
        let def = Definition::of(&spec, &opts);
        write(&dir, &id, &def).unwrap();
        let back = read(&dir).expect("definition reads back");
        let o = back.options();
        assert_eq!(o.image, opts.image);
        assert_eq!(o.user, opts.user);
        assert_eq!(o.layers, opts.layers);
        assert!(!o.default_rootfs && o.checkpoint.is_none());
        assert_eq!(back.created, def.created);
        assert_eq!(back.spec, spec);
        // The record beside it lists it: same id, creation time, no start.
        let rec = record::read(&dir).unwrap();
        assert_eq!(rec.id, id);
        assert_eq!(rec.created, def.created);
        assert!(rec.started_at.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
