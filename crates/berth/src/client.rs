//! The engine's handle on its containers.

use std::sync::Arc;

use berth_types::{ContainerId, Event, ExitStatus, ProcessId};
use oci_spec::runtime::Spec;

use crate::error::Result;
use crate::platform::{Config, Platform};
use crate::types::{ContainerInfo, CreateOptions, EventSink, ProcessIo, StdioRequest};

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
        let _e = span.enter();
        drop(_e);
        let (pid, io) = self.platform.create(id, spec, options, stdio).await?;
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
}
