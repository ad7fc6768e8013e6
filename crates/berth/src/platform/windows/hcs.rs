//! One face over the two HCS schemas: schema 2 (computecore.dll, the default) and
//! schema 1 (vmcompute.dll: older hosts, Hyper-V isolation and servicing). Every
//! call blocks until HCS answers; callers run them off the async runtime.

use berth_hcs::documents::v1::{
    ContainerConfig, ContainerProperties, ProcessConfig, PropertyQuery,
};
use berth_hcs::documents::v2;
use berth_hcs::sys::{self, vmcompute, HcsError, ProcessStdio};
use serde::{Deserialize, Serialize};

/// Which HCS schema (and DLL) a container was created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Schema {
    /// computecore.dll.
    V2,
    /// vmcompute.dll.
    V1,
}

/// The document a compute system is created from.
pub(super) enum Document {
    V2(v2::ComputeSystem),
    V1(ContainerConfig),
}

/// A compute system (container), closed on drop; dropping does not stop it.
pub(super) enum System {
    V2(sys::ComputeSystem),
    V1(vmcompute::ComputeSystem),
}

macro_rules! both {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Self::V2($s) => $e,
            Self::V1($s) => $e,
        }
    };
}

impl System {
    pub(super) fn create(id: &str, doc: &Document) -> Result<Self, HcsError> {
        Ok(match doc {
            Document::V2(d) => Self::V2(sys::ComputeSystem::create(id, d)?),
            Document::V1(d) => Self::V1(vmcompute::ComputeSystem::create(id, d)?),
        })
    }

    pub(super) fn open(schema: Schema, id: &str) -> Result<Self, HcsError> {
        Ok(match schema {
            Schema::V2 => Self::V2(sys::ComputeSystem::open(id)?),
            Schema::V1 => Self::V1(vmcompute::ComputeSystem::open(id)?),
        })
    }

    pub(super) fn start(&self) -> Result<(), HcsError> {
        both!(self, s => s.start())
    }

    pub(super) fn shutdown(&self) -> Result<(), HcsError> {
        both!(self, s => s.shutdown())
    }

    pub(super) fn terminate(&self) -> Result<(), HcsError> {
        both!(self, s => s.terminate())
    }

    pub(super) fn pause(&self) -> Result<(), HcsError> {
        both!(self, s => s.pause())
    }

    pub(super) fn resume(&self) -> Result<(), HcsError> {
        both!(self, s => s.resume())
    }

    pub(super) fn properties(
        &self,
        query: &PropertyQuery,
    ) -> Result<ContainerProperties, HcsError> {
        both!(self, s => s.properties(query))
    }

    pub(super) fn create_process(&self, cfg: &ProcessConfig) -> Result<Proc, HcsError> {
        Ok(match self {
            Self::V2(s) => Proc::V2(s.create_process(&v2::ProcessParameters::from(cfg))?),
            Self::V1(s) => Proc::V1(s.create_process(cfg)?),
        })
    }

    pub(super) fn open_process(&self, pid: u32) -> Result<Proc, HcsError> {
        Ok(match self {
            Self::V2(s) => Proc::V2(s.open_process(pid)?),
            Self::V1(s) => Proc::V1(s.open_process(pid)?),
        })
    }

    /// Stop it: gracefully first, and terminate when that fails. A system that
    /// has already stopped is fine.
    pub(super) fn stop(&self) -> Result<(), HcsError> {
        match self.shutdown() {
            Ok(()) => Ok(()),
            Err(e) if e.is_already_stopped() || e.is_not_found() => Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, "graceful shutdown failed; terminating");
                ignore_stopped(self.terminate())
            }
        }
    }
}

/// A process in a compute system, closed on drop.
pub(super) enum Proc {
    V2(sys::Process),
    V1(vmcompute::Process),
}

impl Proc {
    pub(super) fn pid(&self) -> u32 {
        both!(self, p => p.pid())
    }

    pub(super) fn take_stdio(&mut self) -> ProcessStdio {
        both!(self, p => p.take_stdio())
    }

    pub(super) fn terminate(&self) -> Result<(), HcsError> {
        both!(self, p => p.terminate())
    }

    /// Whether console control signals can be delivered (schema 2 only).
    pub(super) fn has_console_signals(&self) -> bool {
        matches!(self, Self::V2(_))
    }

    pub(super) fn signal(&self, signal: v2::ConsoleSignal) -> Result<(), HcsError> {
        match self {
            Self::V2(p) => p.signal(signal),
            // Callers check `has_console_signals` first; schema 1 can only terminate.
            Self::V1(p) => p.terminate(),
        }
    }

    pub(super) fn resize(&self, width: u16, height: u16) -> Result<(), HcsError> {
        both!(self, p => p.resize(width, height))
    }

    pub(super) fn close_stdin(&self) -> Result<(), HcsError> {
        both!(self, p => p.close_stdin())
    }

    /// Block until it exits; `None` when the exit code cannot be known.
    pub(super) fn wait(&self) -> Option<u32> {
        both!(self, p => p.wait())
    }
}

/// `Ok` for "it had already stopped", as stopping something stopped is done.
pub(super) fn ignore_stopped(r: Result<(), HcsError>) -> Result<(), HcsError> {
    match r {
        Err(e) if e.is_already_stopped() || e.is_not_found() => Ok(()),
        r => r,
    }
}
