//! The engine's handle on its containers.

use std::sync::Arc;

use std::path::Path;

use berth_types::{ContainerId, Event, ExitStatus, ProcessId, ProcessSummary, Resources, Stats};
use oci_spec::runtime::Spec;

use crate::error::Result;
use crate::platform::{Config, Platform};
use crate::types::{
    CheckpointInfo, ContainerInfo, CreateOptions, EventSink, ProcessIo, StdioRequest,
};

/// Creates, runs, observes and removes containers; delivers their events to the
/// engine's sink, per container in order.
pub struct Client {
    platform: Platform,
}

/// What `create` returns: init's host pid and the caller's ends of its stdio.
#[derive(Debug)]
pub struct Created {
    /// Host pid of init.
    pub pid: u32,
    /// The caller's ends of init's stdio.
    pub io: ProcessIo,
}

impl Client {
    /// A client over `config`, delivering events to `sink`.
    pub fn new(config: Config, sink: impl EventSink) -> Self {
        Self {
            platform: Platform::new(config, Arc::new(sink)),
        }
    }

    /// Creates **and starts** `id` from `spec`. Stdio is attached before the process
    /// runs; the start event has reached the sink when this returns. On failure
    /// everything made so far is removed and the error names the step.
    pub async fn create(
        &self,
        id: &ContainerId,
        spec: &Spec,
        options: &CreateOptions,
        stdio: StdioRequest,
    ) -> Result<Created> {
        let span = tracing::info_span!("create", container_id = %id);
        let (pid, io) =
            tracing::Instrument::instrument(self.platform.create(id, spec, options, stdio), span)
                .await?;
        Ok(Created { pid, io })
    }

    /// Defines `id` from `spec` without running anything (Docker's `create`): the
    /// name is taken and the container is listed as created, with no process,
    /// mount or cgroup, until [`Client::start`]. Linux only.
    pub async fn define(
        &self,
        id: &ContainerId,
        spec: &Spec,
        options: &CreateOptions,
    ) -> Result<()> {
        self.platform.define(id, spec, options).await
    }

    /// Creates and starts a container [`Client::define`] defined, with `stdio`
    /// attached, as [`Client::create`] does; one that has exited is run again as
    /// it was made (its logs and image writable layer kept, Docker's start of a
    /// stopped container). A start that fails leaves it defined.
    pub async fn start(&self, id: &ContainerId, stdio: StdioRequest) -> Result<Created> {
        let span = tracing::info_span!("start", container_id = %id);
        let (pid, io) =
            tracing::Instrument::instrument(self.platform.start(id, stdio), span).await?;
        Ok(Created { pid, io })
    }

    /// Sends `signal` to init; SIGKILL kills every process of the container.
    pub async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        self.platform.signal(id, signal).await
    }

    /// Waits for a process to exit and returns how it ended.
    pub async fn wait(&self, id: &ContainerId, process: &ProcessId) -> Result<ExitStatus> {
        self.platform.wait(id, process).await
    }

    /// The container's current state.
    pub async fn state(&self, id: &ContainerId) -> Result<ContainerInfo> {
        self.platform.state(id).await
    }

    /// Every container this client's roots hold, running or not.
    pub async fn list(&self) -> Result<Vec<ContainerInfo>> {
        self.platform.list().await
    }

    /// Deletes a container that is not running, with its record and runtime state.
    pub async fn delete(&self, id: &ContainerId) -> Result<ExitStatus> {
        self.platform.delete(id).await
    }

    /// The events recorded for `id` so far, in order.
    pub fn events(&self, id: &ContainerId) -> Vec<Event> {
        self.platform.events(id)
    }

    /// Starts another process in the container (the reference's AddProcess).
    /// Unset fields of `process` come from init's. Returns its host pid.
    pub async fn exec(
        &self,
        id: &ContainerId,
        process_id: &ProcessId,
        process: &oci_spec::runtime::Process,
        stdio: StdioRequest,
    ) -> Result<Created> {
        let (pid, io) = self.platform.exec(id, process_id, process, stdio).await?;
        Ok(Created { pid, io })
    }

    /// Sends `signal` to one process of the container.
    pub async fn signal_process(
        &self,
        id: &ContainerId,
        process_id: &ProcessId,
        signal: i32,
    ) -> Result<()> {
        self.platform.signal_process(id, process_id, signal).await
    }

    /// Resizes a process's terminal.
    pub async fn resize(
        &self,
        id: &ContainerId,
        process_id: &ProcessId,
        width: u32,
        height: u32,
    ) -> Result<()> {
        self.platform.resize(id, process_id, width, height).await
    }

    /// Closes a process's stdin (once; a no-op after it exited).
    pub async fn close_stdin(&self, id: &ContainerId, process_id: &ProcessId) -> Result<()> {
        self.platform.close_stdin(id, process_id).await
    }

    /// Freezes every process of the container; the paused event has reached the
    /// sink when this returns.
    pub async fn pause(&self, id: &ContainerId) -> Result<()> {
        self.platform.pause(id).await
    }

    /// Thaws the container; the resumed event has reached the sink when this returns.
    pub async fn resume(&self, id: &ContainerId) -> Result<()> {
        self.platform.resume(id).await
    }

    /// A sample of the container's resource use.
    pub async fn stats(&self, id: &ContainerId) -> Result<Stats> {
        self.platform.stats(id).await
    }

    /// Host pids of every process of the container.
    pub async fn pids(&self, id: &ContainerId) -> Result<Vec<u32>> {
        self.platform.pids(id).await
    }

    /// Every process of the container with user, CPU time, memory and command.
    pub async fn summary(&self, id: &ContainerId) -> Result<Vec<ProcessSummary>> {
        self.platform.summary(id).await
    }

    /// Changes resource limits of a running container.
    pub async fn update_resources(&self, id: &ContainerId, resources: &Resources) -> Result<()> {
        self.platform.update_resources(id, resources).await
    }

    /// Writes a checkpoint `name` of the container under `dir`; stops it if `exit`.
    pub async fn checkpoint(
        &self,
        id: &ContainerId,
        name: &str,
        dir: Option<&Path>,
        exit: bool,
    ) -> Result<()> {
        self.platform.checkpoint(id, name, dir, exit).await
    }

    /// The container's checkpoints under `dir`.
    pub async fn list_checkpoints(
        &self,
        id: &ContainerId,
        dir: Option<&Path>,
    ) -> Result<Vec<CheckpointInfo>> {
        self.platform.list_checkpoints(id, dir).await
    }

    /// Removes checkpoint `name`.
    pub async fn delete_checkpoint(
        &self,
        id: &ContainerId,
        name: &str,
        dir: Option<&Path>,
    ) -> Result<()> {
        self.platform.delete_checkpoint(id, name, dir).await
    }

    /// Reattaches to a container after an engine restart: a running one gets its
    /// stdio back and keeps delivering events; one that exited meanwhile reports
    /// its exit.
    pub async fn restore(&self, id: &ContainerId, stdio: StdioRequest) -> Result<Created> {
        let (pid, io) = self.platform.restore(id, stdio).await?;
        Ok(Created { pid, io })
    }
}
