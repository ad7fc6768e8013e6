//! Schema 2 compute systems and processes over computecore.dll.

use std::ffi::c_void;
use std::fs::File;
use std::os::windows::io::{FromRawHandle, OwnedHandle};
use std::sync::OnceLock;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use windows::core::{HSTRING, PCWSTR, PWSTR};
use windows::Win32::Foundation::{LocalFree, HANDLE, HLOCAL};
use windows::Win32::System::HostComputeSystem::{
    HcsCloseComputeSystem, HcsCloseOperation, HcsCloseProcess, HcsCreateComputeSystem,
    HcsCreateOperation, HcsCreateProcess, HcsEventOptionNone, HcsEventProcessExited,
    HcsEventServiceDisconnect, HcsEventSystemExited, HcsGetComputeSystemProperties,
    HcsGetProcessProperties, HcsModifyComputeSystem, HcsModifyProcess, HcsOpenComputeSystem,
    HcsOpenProcess, HcsPauseComputeSystem, HcsResumeComputeSystem, HcsSetComputeSystemCallback,
    HcsSetProcessCallback, HcsShutDownComputeSystem, HcsSignalProcess, HcsStartComputeSystem,
    HcsTerminateComputeSystem, HcsTerminateProcess, HcsWaitForOperationResult,
    HcsWaitForOperationResultAndProcessInfo, HCS_EVENT, HCS_OPERATION, HCS_PROCESS,
    HCS_PROCESS_INFORMATION, HCS_SYSTEM,
};

use super::{deliver, HcsError, Notification, Subscription, EXIT_POLL, OPERATION_TIMEOUT};
use crate::documents::v1::{
    ContainerProperties, ProcessListItem, ProcessModifyRequest, ProcessStatus, PropertyQuery,
    PropertyType, Statistics,
};
use crate::documents::v2;

/// GENERIC_ALL, the access berth asks for when opening systems and processes.
const GENERIC_ALL: u32 = 0x1000_0000;

fn timeout_ms() -> u32 {
    u32::try_from(OPERATION_TIMEOUT.as_millis()).unwrap_or(u32::MAX)
}

fn to_json<T: Serialize>(op: &'static str, doc: &T) -> Result<HSTRING, HcsError> {
    serde_json::to_string(doc)
        .map(|s| HSTRING::from(s.as_str()))
        .map_err(|e| HcsError::new(op, 0, format!("cannot encode the request: {e}")))
}

fn from_json<T: DeserializeOwned>(op: &'static str, text: &str) -> Result<T, HcsError> {
    serde_json::from_str(text)
        .map_err(|e| HcsError::new(op, 0, format!("cannot decode HCS's answer: {e}")))
}

fn win_error(op: &'static str, e: &windows::core::Error, detail: String) -> HcsError {
    // HRESULTs are compared as the unsigned values HCS documents them as.
    HcsError::new(op, e.code().0 as u32, detail)
}

/// Take ownership of a string HCS allocated with LocalAlloc, and free it.
fn take_local_string(p: PWSTR) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: HCS returned a NUL-terminated UTF-16 string that it allocated with
    // LocalAlloc and handed to us; it is read once here and freed once.
    unsafe {
        let text = p.to_string().unwrap_or_default();
        let _ = LocalFree(Some(HLOCAL(p.0.cast())));
        text
    }
}

/// An HCS operation handle, closed on drop; waited on synchronously.
struct Operation(HCS_OPERATION);

impl Operation {
    fn new(op: &'static str) -> Result<Self, HcsError> {
        // SAFETY: no context and no completion callback: the operation is only
        // waited on with HcsWaitForOperationResult.
        let handle = unsafe { HcsCreateOperation(None, None) };
        if handle.is_invalid() {
            return Err(HcsError::new(op, 0, "cannot create an HCS operation"));
        }
        Ok(Self(handle))
    }

    /// Wait for the operation; its result document on success.
    fn wait(&self, op: &'static str) -> Result<String, HcsError> {
        let mut doc = PWSTR::null();
        // SAFETY: `self.0` is a live operation; `doc` receives a LocalAlloc'd string
        // or stays null.
        let r = unsafe { HcsWaitForOperationResult(self.0, timeout_ms(), Some(&mut doc)) };
        let text = take_local_string(doc);
        r.map(|()| text.clone())
            .map_err(|e| win_error(op, &e, text))
    }

    fn wait_process_info(&self, op: &'static str) -> Result<HCS_PROCESS_INFORMATION, HcsError> {
        let mut info = HCS_PROCESS_INFORMATION::default();
        let mut doc = PWSTR::null();
        // SAFETY: as in `wait`; `info` is a valid out-pointer for the duration.
        let r = unsafe {
            HcsWaitForOperationResultAndProcessInfo(
                self.0,
                timeout_ms(),
                Some(&mut info),
                Some(&mut doc),
            )
        };
        let text = take_local_string(doc);
        r.map(|()| info).map_err(|e| win_error(op, &e, text))
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        // SAFETY: the handle came from HcsCreateOperation and is closed only here.
        unsafe { HcsCloseOperation(self.0) }
    }
}

/// Run one asynchronous HCS call to completion.
fn run(
    op: &'static str,
    call: impl FnOnce(HCS_OPERATION) -> windows::core::Result<()>,
) -> Result<String, HcsError> {
    let operation = Operation::new(op)?;
    call(operation.0).map_err(|e| win_error(op, &e, String::new()))?;
    operation.wait(op)
}

/// The HCS event callback: copies the event into the subscription's channel.
unsafe extern "system" fn on_event(event: *const HCS_EVENT, context: *const c_void) {
    if event.is_null() {
        return;
    }
    // SAFETY: HCS passes a valid event that lives for the duration of the call;
    // its data, when not null, is a NUL-terminated UTF-16 string.
    let (kind, data) = unsafe {
        let ev = &*event;
        let data = if ev.EventData.is_null() {
            String::new()
        } else {
            ev.EventData.to_string().unwrap_or_default()
        };
        (ev.Type.0 as u32, data)
    };
    deliver(
        context,
        Notification {
            kind,
            status: 0,
            data,
        },
    );
}

/// A schema 2 compute system (a container), closed on drop. Dropping does not
/// stop it: containers outlive berth, and `open` finds them again.
pub struct ComputeSystem {
    handle: HCS_SYSTEM,
    id: String,
    events: Subscription,
}

// SAFETY: an HCS_SYSTEM handle may be used from any thread, concurrently; HCS
// serialises operations on one system itself.
unsafe impl Send for ComputeSystem {}
// SAFETY: as above; every method takes `&self` and only passes the handle to HCS.
unsafe impl Sync for ComputeSystem {}

impl std::fmt::Debug for ComputeSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputeSystem")
            .field("id", &self.id)
            .finish()
    }
}

impl ComputeSystem {
    /// Create (but do not start) compute system `id` from a schema 2 document.
    pub fn create(id: &str, document: &v2::ComputeSystem) -> Result<Self, HcsError> {
        let json = to_json("create", document)?;
        let operation = Operation::new("create")?;
        // SAFETY: the strings live across the call; no security descriptor.
        let handle =
            unsafe { HcsCreateComputeSystem(&HSTRING::from(id), &json, operation.0, None) }
                .map_err(|e| win_error("create", &e, String::new()))?;
        // Owned from here on: an error below closes it.
        let system = Self::adopt(handle, id)?;
        operation.wait("create")?;
        Ok(system)
    }

    /// Open the existing compute system `id` (to restore after an engine restart).
    pub fn open(id: &str) -> Result<Self, HcsError> {
        // SAFETY: the id string lives across the call.
        let handle = unsafe { HcsOpenComputeSystem(&HSTRING::from(id), GENERIC_ALL) }
            .map_err(|e| win_error("open", &e, String::new()))?;
        Self::adopt(handle, id)
    }

    fn adopt(handle: HCS_SYSTEM, id: &str) -> Result<Self, HcsError> {
        let system = Self {
            handle,
            id: id.to_owned(),
            events: Subscription::new(),
        };
        // SAFETY: the handle is live; the context is a registry key, not a
        // pointer, so it stays valid whatever happens to `system`.
        unsafe {
            HcsSetComputeSystemCallback(
                system.handle,
                HcsEventOptionNone,
                Some(system.events.context()),
                Some(on_event),
            )
        }
        .map_err(|e| win_error("register callback", &e, String::new()))?;
        Ok(system)
    }

    /// The compute system's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Start it.
    pub fn start(&self) -> Result<(), HcsError> {
        // SAFETY: live handle and operation; null options.
        run("start", |op| unsafe {
            HcsStartComputeSystem(self.handle, op, PCWSTR::null())
        })
        .map(drop)
    }

    /// Shut it down gracefully.
    pub fn shutdown(&self) -> Result<(), HcsError> {
        // SAFETY: live handle and operation; null options.
        run("shutdown", |op| unsafe {
            HcsShutDownComputeSystem(self.handle, op, PCWSTR::null())
        })
        .map(drop)
    }

    /// Terminate it.
    pub fn terminate(&self) -> Result<(), HcsError> {
        // SAFETY: live handle and operation; null options.
        run("terminate", |op| unsafe {
            HcsTerminateComputeSystem(self.handle, op, PCWSTR::null())
        })
        .map(drop)
    }

    /// Pause it (Hyper-V isolation only; HCS refuses otherwise).
    pub fn pause(&self) -> Result<(), HcsError> {
        // SAFETY: live handle and operation; null options.
        run("pause", |op| unsafe {
            HcsPauseComputeSystem(self.handle, op, PCWSTR::null())
        })
        .map(drop)
    }

    /// Resume it.
    pub fn resume(&self) -> Result<(), HcsError> {
        // SAFETY: live handle and operation; null options.
        run("resume", |op| unsafe {
            HcsResumeComputeSystem(self.handle, op, PCWSTR::null())
        })
        .map(drop)
    }

    /// Query its properties.
    pub fn properties(&self, query: &PropertyQuery) -> Result<ContainerProperties, HcsError> {
        let json = to_json("properties", query)?;
        // SAFETY: live handle and operation; the query string lives across the call.
        let text = run("properties", |op| unsafe {
            HcsGetComputeSystemProperties(self.handle, op, &json)
        })?;
        from_json("properties", &text)
    }

    /// Its resource usage.
    pub fn statistics(&self) -> Result<Statistics, HcsError> {
        self.properties(&PropertyQuery::of(&[PropertyType::Statistics]))?
            .statistics
            .ok_or_else(|| HcsError::new("statistics", 0, "HCS returned no statistics"))
    }

    /// Its processes.
    pub fn process_list(&self) -> Result<Vec<ProcessListItem>, HcsError> {
        Ok(self
            .properties(&PropertyQuery::of(&[PropertyType::ProcessList]))?
            .process_list
            .unwrap_or_default())
    }

    /// Send a modify request (a schema 2 `ModifySettingRequest`).
    pub fn modify(&self, request: &serde_json::Value) -> Result<(), HcsError> {
        let json = to_json("modify", request)?;
        // SAFETY: live handle and operation; the request lives across the call.
        run("modify", |op| unsafe {
            HcsModifyComputeSystem(self.handle, op, &json, None)
        })
        .map(drop)
    }

    /// Wait until it exits, up to `timeout`; whether it did.
    pub fn wait_exited(&self, timeout: Duration) -> bool {
        let kinds = [
            HcsEventSystemExited.0 as u32,
            HcsEventServiceDisconnect.0 as u32,
        ];
        self.events.wait_for(&kinds, timeout).is_some()
    }

    /// Create a process in it, with the pipes the parameters ask for.
    pub fn create_process(&self, params: &v2::ProcessParameters) -> Result<Process, HcsError> {
        let json = to_json("create process", params)?;
        let operation = Operation::new("create process")?;
        // SAFETY: live handle and operation; the parameters live across the call.
        let handle = unsafe { HcsCreateProcess(self.handle, &json, operation.0, None) }
            .map_err(|e| win_error("create process", &e, String::new()))?;
        let mut process = Process::adopt(handle, 0)?;
        let info = operation.wait_process_info("create process")?;
        process.pid = info.ProcessId;
        process.stdio = ProcessStdio {
            stdin: handle_to_file(info.StdInput),
            stdout: handle_to_file(info.StdOutput),
            stderr: handle_to_file(info.StdError),
        };
        Ok(process)
    }

    /// Open a process of it by pid (to restore after an engine restart); it has
    /// no stdio.
    pub fn open_process(&self, pid: u32) -> Result<Process, HcsError> {
        // SAFETY: live handle.
        let handle = unsafe { HcsOpenProcess(self.handle, pid, GENERIC_ALL) }
            .map_err(|e| win_error("open process", &e, String::new()))?;
        Process::adopt(handle, pid)
    }
}

impl Drop for ComputeSystem {
    fn drop(&mut self) {
        // SAFETY: the handle is owned by `self` and closed only here. A callback
        // still in flight finds its registry entry gone (dropped after this).
        unsafe { HcsCloseComputeSystem(self.handle) }
    }
}

/// Take ownership of a pipe handle HCS gave us.
fn handle_to_file(h: HANDLE) -> Option<File> {
    if h.is_invalid() {
        return None;
    }
    // SAFETY: HCS hands the caller ownership of the process's pipe handles; each
    // is wrapped exactly once.
    Some(File::from(unsafe { OwnedHandle::from_raw_handle(h.0) }))
}

/// The pipes of a process that asked for them.
#[derive(Debug, Default)]
pub struct ProcessStdio {
    /// Write end of the process's stdin.
    pub stdin: Option<File>,
    /// Read end of its stdout.
    pub stdout: Option<File>,
    /// Read end of its stderr.
    pub stderr: Option<File>,
}

/// A process in a schema 2 compute system, closed on drop.
pub struct Process {
    handle: HCS_PROCESS,
    pid: u32,
    stdio: ProcessStdio,
    events: Subscription,
    exit: OnceLock<Option<u32>>,
}

// SAFETY: an HCS_PROCESS handle may be used from any thread, concurrently.
unsafe impl Send for Process {}
// SAFETY: as above; `&self` methods only pass the handle to HCS.
unsafe impl Sync for Process {}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process").field("pid", &self.pid).finish()
    }
}

impl Process {
    fn adopt(handle: HCS_PROCESS, pid: u32) -> Result<Self, HcsError> {
        let process = Self {
            handle,
            pid,
            stdio: ProcessStdio::default(),
            events: Subscription::new(),
            exit: OnceLock::new(),
        };
        // SAFETY: the handle is live; the context is a registry key, not a pointer.
        unsafe {
            HcsSetProcessCallback(
                process.handle,
                HcsEventOptionNone,
                process.events.context(),
                Some(on_event),
            )
        }
        .map_err(|e| win_error("register process callback", &e, String::new()))?;
        Ok(process)
    }

    /// Its process id in the container.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Take its pipes (once; later calls get none).
    pub fn take_stdio(&mut self) -> ProcessStdio {
        std::mem::take(&mut self.stdio)
    }

    /// Deliver a console control signal.
    pub fn signal(&self, signal: v2::ConsoleSignal) -> Result<(), HcsError> {
        let json = to_json("signal process", &v2::SignalProcessOptions { signal })?;
        // SAFETY: live handle and operation; the options live across the call.
        run("signal process", |op| unsafe {
            HcsSignalProcess(self.handle, op, &json)
        })
        .map(drop)
    }

    /// Terminate it.
    pub fn terminate(&self) -> Result<(), HcsError> {
        // SAFETY: live handle and operation; null options.
        run("terminate process", |op| unsafe {
            HcsTerminateProcess(self.handle, op, PCWSTR::null())
        })
        .map(drop)
    }

    fn modify(&self, op: &'static str, request: &ProcessModifyRequest) -> Result<(), HcsError> {
        let json = to_json(op, request)?;
        // SAFETY: live handle and operation; the request lives across the call.
        run(op, |o| unsafe { HcsModifyProcess(self.handle, o, &json) }).map(drop)
    }

    /// Resize its console.
    pub fn resize(&self, width: u16, height: u16) -> Result<(), HcsError> {
        self.modify(
            "resize console",
            &ProcessModifyRequest::resize(width, height),
        )
    }

    /// Close its stdin (after the caller closed its own end).
    pub fn close_stdin(&self) -> Result<(), HcsError> {
        self.modify("close stdin", &ProcessModifyRequest::close_stdin())
    }

    /// Its status as HCS reports it.
    pub fn status(&self) -> Result<ProcessStatus, HcsError> {
        // SAFETY: live handle and operation; a null query asks for the status.
        let text = run("process status", |op| unsafe {
            HcsGetProcessProperties(self.handle, op, PCWSTR::null())
        })?;
        from_json("process status", &text)
    }

    /// Block until it exits; its exit code, or `None` when it cannot be known
    /// (report that as 255, never 0).
    pub fn wait(&self) -> Option<u32> {
        *self.exit.get_or_init(|| loop {
            match self.status() {
                Ok(status) if status.exited => return status.known_exit_code(),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(pid = self.pid, error = %e, "cannot read the exit code");
                    return None;
                }
            }
            // Woken by the exit notification, or re-checked every EXIT_POLL in
            // case it fired before the callback was registered.
            let kinds = [
                HcsEventProcessExited.0 as u32,
                HcsEventServiceDisconnect.0 as u32,
            ];
            if let Some(n) = self.events.wait_for(&kinds, EXIT_POLL) {
                if n.kind == HcsEventServiceDisconnect.0 as u32 {
                    return None;
                }
            }
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: the handle is owned by `self` and closed only here.
        unsafe { HcsCloseProcess(self.handle) }
    }
}
