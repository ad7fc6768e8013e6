//! Windows-only bindings to the Host Compute Service.
//!
//! - [`ComputeSystem`] and [`Process`]: schema 2, over computecore.dll through the
//!   `windows` crate's `Win32::System::HostComputeSystem` bindings (Windows Server
//!   2019 and later).
//! - [`vmcompute`]: schema 1 and `NameToGuid`, over vmcompute.dll, which the
//!   `windows` crate does not bind; its exports are looked up at first use, so a
//!   host without them fails that call, not the whole program.
//!
//! Every handle closes on drop. Calls block until HCS answers (up to
//! [`OPERATION_TIMEOUT`]), so async callers run them on a blocking thread.
//! HCS callbacks only hand their notification to a channel and return.
//! Exit codes that cannot be read are `None`: report them as
//! [`berth_types::UNKNOWN_EXIT_CODE`], never as 0.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

mod computecore;
pub mod vmcompute;

pub use computecore::{ComputeSystem, Process, ProcessStdio};

use crate::options::LayerResolver;

/// How long one HCS operation may take before berth gives up on it.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(240);

/// How often a process wait re-checks the process in case a notification was
/// missed (one can fire before its callback is registered).
const EXIT_POLL: Duration = Duration::from_secs(2);

/// HCS_E_OPERATION_PENDING: the operation completes later, by notification.
pub const HCS_E_PENDING: u32 = 0xC037_0103;
/// HCS_E_TERMINATED / already stopped.
pub const HCS_E_ALREADY_STOPPED: u32 = 0xC037_0110;
/// The compute system or process does not exist.
pub const HCS_E_NOT_FOUND: u32 = 0xC037_010E;
/// The compute system is in a state that does not allow the operation.
pub const HCS_E_INVALID_STATE: u32 = 0xC037_0105;
const ERROR_NOT_FOUND: u32 = 0x490;
const ERROR_PROC_NOT_FOUND: u32 = 0x7F;

/// A failed HCS call: which operation, the HRESULT and HCS's own explanation.
#[derive(Debug, thiserror::Error)]
#[error("HCS {op} failed (HRESULT {code:#010x}){}", detail_suffix(.detail))]
pub struct HcsError {
    /// The operation, e.g. `"start"`.
    pub op: &'static str,
    /// The HRESULT (or 0 when the failure did not come with one).
    pub code: u32,
    /// HCS's result document or berth's explanation, when there is one.
    pub detail: Option<String>,
}

fn detail_suffix(detail: &Option<String>) -> String {
    match detail {
        Some(d) if !d.is_empty() => format!(": {d}"),
        _ => String::new(),
    }
}

impl HcsError {
    pub(crate) fn new(op: &'static str, code: u32, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self {
            op,
            code,
            detail: (!detail.is_empty()).then_some(detail),
        }
    }

    /// The operation will complete later.
    pub fn is_pending(&self) -> bool {
        self.code == HCS_E_PENDING
    }

    /// The system or process had already stopped.
    pub fn is_already_stopped(&self) -> bool {
        matches!(
            self.win32_or_hresult(),
            HCS_E_ALREADY_STOPPED | ERROR_NOT_FOUND | ERROR_PROC_NOT_FOUND
        )
    }

    /// The system or process does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self.win32_or_hresult(), HCS_E_NOT_FOUND | ERROR_NOT_FOUND)
    }

    /// The system is in a state that does not allow the operation.
    pub fn is_invalid_state(&self) -> bool {
        self.code == HCS_E_INVALID_STATE
    }

    /// A Win32 error wrapped as HRESULT_FROM_WIN32 unwrapped, else the code.
    fn win32_or_hresult(&self) -> u32 {
        if self.code & 0xFFFF_0000 == 0x8007_0000 {
            self.code & 0xFFFF
        } else {
            self.code
        }
    }
}

/// A notification from an HCS callback.
#[derive(Debug, Clone)]
pub(crate) struct Notification {
    /// The event or notification type.
    pub kind: u32,
    /// The HRESULT that came with it (schema 1), 0 otherwise.
    pub status: i32,
    /// Its JSON data, if any.
    pub data: String,
}

type Registry = RwLock<HashMap<usize, Sender<Notification>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// A channel that HCS callbacks deliver to. The callback's context is a key into a
/// registry, not a pointer, so a callback that arrives after the handle was
/// closed finds nothing and does nothing.
pub(crate) struct Subscription {
    key: usize,
    rx: Mutex<Receiver<Notification>>,
}

impl Subscription {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let key = NEXT.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        registry()
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, tx);
        Self {
            key,
            rx: Mutex::new(rx),
        }
    }

    /// The context value to register with HCS.
    pub(crate) fn context(&self) -> *const c_void {
        self.key as *const c_void
    }

    /// Wait for a notification whose kind is in `kinds`, dropping others.
    pub(crate) fn wait_for(&self, kinds: &[u32], timeout: Duration) -> Option<Notification> {
        let deadline = Instant::now() + timeout;
        let rx = self.rx.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(n) if kinds.contains(&n.kind) => return Some(n),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        registry()
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// Hand a notification to its subscription. Called from HCS's threads: it takes
/// the registry's read lock (writers only insert or remove one entry) and sends on
/// an unbounded channel, so it never waits on berth.
pub(crate) fn deliver(context: *const c_void, notification: Notification) {
    let key = context as usize;
    if let Ok(map) = registry().read() {
        if let Some(tx) = map.get(&key) {
            let _ = tx.send(notification);
        }
    }
}

/// Resolves layer GUIDs with vmcompute.dll's `NameToGuid`, and finds utility VM
/// images on the local disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct NameToGuidResolver;

impl LayerResolver for NameToGuidResolver {
    fn layer_guid(&self, folder_name: &str) -> std::io::Result<String> {
        vmcompute::name_to_guid(folder_name).map_err(std::io::Error::other)
    }
}
