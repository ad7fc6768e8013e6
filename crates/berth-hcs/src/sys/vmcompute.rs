//! Schema 1 compute systems and processes, and `NameToGuid`, over vmcompute.dll.
//!
//! The `windows` crate does not bind vmcompute.dll, so its exports are looked up
//! with `GetProcAddress` at first use (the DLL only exists where the Containers
//! feature is installed). Schema 1 calls answer HCS_E_OPERATION_PENDING and then
//! complete by notification, which the callback forwards to a channel.

use std::ffi::c_void;
use std::fs::File;
use std::os::windows::io::{FromRawHandle, OwnedHandle};
use std::sync::OnceLock;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use windows::core::{s, w, GUID, HSTRING, PCSTR, PCWSTR};
use windows::Win32::Foundation::HANDLE;
use windows::Win32::System::Com::CoTaskMemFree;
use windows::Win32::System::LibraryLoader::{
    GetProcAddress, LoadLibraryExW, LOAD_LIBRARY_SEARCH_SYSTEM32,
};

use super::{
    deliver, HcsError, Notification, ProcessStdio, Subscription, EXIT_POLL, HCS_E_PENDING,
    OPERATION_TIMEOUT,
};
use crate::documents::v1::{
    ContainerConfig, ContainerProperties, ProcessConfig, ProcessListItem, ProcessModifyRequest,
    ProcessStatus, PropertyQuery, PropertyType, Statistics,
};

type Raw = *mut c_void;
type Wstr = *const u16;
type OutWstr = *mut *mut u16;
type Callback = unsafe extern "system" fn(u32, *const c_void, i32, Wstr);

/// Schema 1 notification types.
const NOTIFY_SYSTEM_EXITED: u32 = 0x0000_0001;
const NOTIFY_SYSTEM_CREATE_COMPLETED: u32 = 0x0000_0002;
const NOTIFY_SYSTEM_START_COMPLETED: u32 = 0x0000_0003;
const NOTIFY_SYSTEM_PAUSE_COMPLETED: u32 = 0x0000_0004;
const NOTIFY_SYSTEM_RESUME_COMPLETED: u32 = 0x0000_0005;
const NOTIFY_PROCESS_EXITED: u32 = 0x0001_0000;
const NOTIFY_SERVICE_DISCONNECT: u32 = 0x0100_0000;

/// `HCS_PROCESS_INFORMATION` as vmcompute.dll fills it.
#[repr(C)]
#[derive(Default)]
struct ProcessInformation {
    process_id: u32,
    reserved: u32,
    std_input: HANDLE,
    std_output: HANDLE,
    std_error: HANDLE,
}

/// The vmcompute.dll exports berth uses, with their C signatures.
struct Api {
    name_to_guid: unsafe extern "system" fn(Wstr, *mut GUID) -> i32,
    create_system: unsafe extern "system" fn(Wstr, Wstr, HANDLE, *mut Raw, OutWstr) -> i32,
    open_system: unsafe extern "system" fn(Wstr, *mut Raw, OutWstr) -> i32,
    close_system: unsafe extern "system" fn(Raw) -> i32,
    start_system: unsafe extern "system" fn(Raw, Wstr, OutWstr) -> i32,
    shutdown_system: unsafe extern "system" fn(Raw, Wstr, OutWstr) -> i32,
    terminate_system: unsafe extern "system" fn(Raw, Wstr, OutWstr) -> i32,
    pause_system: unsafe extern "system" fn(Raw, Wstr, OutWstr) -> i32,
    resume_system: unsafe extern "system" fn(Raw, Wstr, OutWstr) -> i32,
    system_properties: unsafe extern "system" fn(Raw, Wstr, OutWstr, OutWstr) -> i32,
    modify_system: unsafe extern "system" fn(Raw, Wstr, OutWstr) -> i32,
    register_system_callback:
        unsafe extern "system" fn(Raw, Callback, *const c_void, *mut Raw) -> i32,
    unregister_system_callback: unsafe extern "system" fn(Raw) -> i32,
    create_process:
        unsafe extern "system" fn(Raw, Wstr, *mut ProcessInformation, *mut Raw, OutWstr) -> i32,
    open_process: unsafe extern "system" fn(Raw, u32, *mut Raw, OutWstr) -> i32,
    close_process: unsafe extern "system" fn(Raw) -> i32,
    terminate_process: unsafe extern "system" fn(Raw, OutWstr) -> i32,
    process_properties: unsafe extern "system" fn(Raw, OutWstr, OutWstr) -> i32,
    modify_process: unsafe extern "system" fn(Raw, Wstr, OutWstr) -> i32,
    register_process_callback:
        unsafe extern "system" fn(Raw, Callback, *const c_void, *mut Raw) -> i32,
    unregister_process_callback: unsafe extern "system" fn(Raw) -> i32,
}

fn api() -> Result<&'static Api, HcsError> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load)
        .as_ref()
        .map_err(|e| HcsError::new("load vmcompute.dll", 0, e.clone()))
}

fn load() -> Result<Api, String> {
    // SAFETY: loads a system DLL from System32 only; the module is never freed,
    // so the function pointers below stay valid for the life of the process.
    let module = unsafe { LoadLibraryExW(w!("vmcompute.dll"), None, LOAD_LIBRARY_SEARCH_SYSTEM32) }
        .map_err(|e| {
            format!("cannot load vmcompute.dll (is the Containers feature installed?): {e}")
        })?;
    macro_rules! export {
        ($name:literal) => {{
            let name: PCSTR = s!($name);
            // SAFETY: `module` is loaded; the name is a NUL-terminated literal.
            let f = unsafe { GetProcAddress(module, name) }
                .ok_or_else(|| format!("vmcompute.dll has no export {}", $name))?;
            // SAFETY: the export has the C signature of the field it fills, as
            // vmcompute.dll declares it; function pointers have one size.
            unsafe { std::mem::transmute::<unsafe extern "system" fn() -> isize, _>(f) }
        }};
    }
    Ok(Api {
        name_to_guid: export!("NameToGuid"),
        create_system: export!("HcsCreateComputeSystem"),
        open_system: export!("HcsOpenComputeSystem"),
        close_system: export!("HcsCloseComputeSystem"),
        start_system: export!("HcsStartComputeSystem"),
        shutdown_system: export!("HcsShutdownComputeSystem"),
        terminate_system: export!("HcsTerminateComputeSystem"),
        pause_system: export!("HcsPauseComputeSystem"),
        resume_system: export!("HcsResumeComputeSystem"),
        system_properties: export!("HcsGetComputeSystemProperties"),
        modify_system: export!("HcsModifyComputeSystem"),
        register_system_callback: export!("HcsRegisterComputeSystemCallback"),
        unregister_system_callback: export!("HcsUnregisterComputeSystemCallback"),
        create_process: export!("HcsCreateProcess"),
        open_process: export!("HcsOpenProcess"),
        close_process: export!("HcsCloseProcess"),
        terminate_process: export!("HcsTerminateProcess"),
        process_properties: export!("HcsGetProcessProperties"),
        modify_process: export!("HcsModifyProcess"),
        register_process_callback: export!("HcsRegisterProcessCallback"),
        unregister_process_callback: export!("HcsUnregisterProcessCallback"),
    })
}

/// The GUID HCS names layer folder `name` by (vmcompute.dll's `NameToGuid`), in
/// lower-case `8-4-4-4-12` form.
pub fn name_to_guid(name: &str) -> Result<String, HcsError> {
    let api = api()?;
    let wide = HSTRING::from(name);
    let mut guid = GUID::zeroed();
    // SAFETY: a NUL-terminated name and a valid GUID out-pointer.
    let hr = unsafe { (api.name_to_guid)(wide.as_ptr(), &mut guid) };
    check("NameToGuid", hr, String::new())?;
    let d = guid.data4;
    Ok(format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        guid.data1, guid.data2, guid.data3, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
    ))
}

/// Take ownership of a string vmcompute allocated with CoTaskMemAlloc, and free it.
fn take_string(p: *mut u16) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: vmcompute returned a NUL-terminated UTF-16 string it allocated with
    // CoTaskMemAlloc; it is read once here and freed once.
    unsafe {
        let text = PCWSTR(p).to_string().unwrap_or_default();
        CoTaskMemFree(Some(p as *const c_void));
        text
    }
}

fn check(op: &'static str, hr: i32, detail: String) -> Result<(), HcsError> {
    if hr < 0 {
        // HRESULTs are compared as the unsigned values HCS documents them as.
        Err(HcsError::new(op, hr as u32, detail))
    } else {
        Ok(())
    }
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

/// The schema 1 notification callback: copies the notification into the
/// subscription's channel.
unsafe extern "system" fn on_notification(
    kind: u32,
    context: *const c_void,
    status: i32,
    data: Wstr,
) {
    let data = if data.is_null() {
        String::new()
    } else {
        // SAFETY: HCS passes a NUL-terminated UTF-16 string valid during the call.
        unsafe { PCWSTR(data).to_string().unwrap_or_default() }
    };
    deliver(context, Notification { kind, status, data });
}

/// Finish a call that may answer "pending": wait for `completed` (or an exit or
/// disconnect, which fail it).
fn complete(
    op: &'static str,
    hr: i32,
    result: *mut u16,
    events: &Subscription,
    completed: u32,
) -> Result<(), HcsError> {
    let detail = take_string(result);
    if hr as u32 != HCS_E_PENDING {
        return check(op, hr, detail);
    }
    let kinds = [completed, NOTIFY_SYSTEM_EXITED, NOTIFY_SERVICE_DISCONNECT];
    match events.wait_for(&kinds, OPERATION_TIMEOUT) {
        None => Err(HcsError::new(
            op,
            HCS_E_PENDING,
            "timed out waiting for HCS",
        )),
        Some(n) if n.kind == completed => check(op, n.status, n.data),
        Some(n) if n.kind == NOTIFY_SYSTEM_EXITED && completed == NOTIFY_SYSTEM_EXITED => Ok(()),
        Some(n) if n.kind == NOTIFY_SYSTEM_EXITED => Err(HcsError::new(
            op,
            n.status as u32,
            "the compute system exited",
        )),
        Some(n) => Err(HcsError::new(
            op,
            n.status as u32,
            "lost the connection to HCS",
        )),
    }
}

/// A schema 1 compute system, closed on drop (which does not stop it).
pub struct ComputeSystem {
    api: &'static Api,
    handle: Raw,
    callback: Raw,
    id: String,
    events: Subscription,
}

// SAFETY: vmcompute handles may be used from any thread, concurrently.
unsafe impl Send for ComputeSystem {}
// SAFETY: as above; `&self` methods only pass the handle to vmcompute.
unsafe impl Sync for ComputeSystem {}

impl std::fmt::Debug for ComputeSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("vmcompute::ComputeSystem")
            .field("id", &self.id)
            .finish()
    }
}

impl ComputeSystem {
    /// Create (but do not start) compute system `id` from a schema 1 document.
    pub fn create(id: &str, config: &ContainerConfig) -> Result<Self, HcsError> {
        let api = api()?;
        let json = to_json("create", config)?;
        let wid = HSTRING::from(id);
        let mut handle: Raw = std::ptr::null_mut();
        let mut result: *mut u16 = std::ptr::null_mut();
        // SAFETY: NUL-terminated strings living across the call, a null identity
        // token, and valid out-pointers.
        let hr = unsafe {
            (api.create_system)(
                wid.as_ptr(),
                json.as_ptr(),
                HANDLE::default(),
                &mut handle,
                &mut result,
            )
        };
        if handle.is_null() {
            check("create", hr, take_string(result))?;
            return Err(HcsError::new("create", 0, "HCS returned no handle"));
        }
        let system = Self::adopt(api, handle, id)?;
        complete(
            "create",
            hr,
            result,
            &system.events,
            NOTIFY_SYSTEM_CREATE_COMPLETED,
        )?;
        Ok(system)
    }

    /// Open the existing compute system `id`.
    pub fn open(id: &str) -> Result<Self, HcsError> {
        let api = api()?;
        let wid = HSTRING::from(id);
        let mut handle: Raw = std::ptr::null_mut();
        let mut result: *mut u16 = std::ptr::null_mut();
        // SAFETY: a NUL-terminated id and valid out-pointers.
        let hr = unsafe { (api.open_system)(wid.as_ptr(), &mut handle, &mut result) };
        check("open", hr, take_string(result))?;
        Self::adopt(api, handle, id)
    }

    fn adopt(api: &'static Api, handle: Raw, id: &str) -> Result<Self, HcsError> {
        let mut system = Self {
            api,
            handle,
            callback: std::ptr::null_mut(),
            id: id.to_owned(),
            events: Subscription::new(),
        };
        let mut callback: Raw = std::ptr::null_mut();
        // SAFETY: live handle; the context is a registry key, not a pointer.
        let hr = unsafe {
            (api.register_system_callback)(
                handle,
                on_notification,
                system.events.context(),
                &mut callback,
            )
        };
        check("register callback", hr, String::new())?;
        system.callback = callback;
        Ok(system)
    }

    /// The compute system's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn verb(
        &self,
        op: &'static str,
        f: unsafe extern "system" fn(Raw, Wstr, OutWstr) -> i32,
        completed: u32,
    ) -> Result<(), HcsError> {
        let mut result: *mut u16 = std::ptr::null_mut();
        // SAFETY: live handle, null options, a valid out-pointer.
        let hr = unsafe { f(self.handle, std::ptr::null(), &mut result) };
        complete(op, hr, result, &self.events, completed)
    }

    /// Start it.
    pub fn start(&self) -> Result<(), HcsError> {
        self.verb(
            "start",
            self.api.start_system,
            NOTIFY_SYSTEM_START_COMPLETED,
        )
    }

    /// Shut it down gracefully.
    pub fn shutdown(&self) -> Result<(), HcsError> {
        self.verb("shutdown", self.api.shutdown_system, NOTIFY_SYSTEM_EXITED)
    }

    /// Terminate it.
    pub fn terminate(&self) -> Result<(), HcsError> {
        self.verb("terminate", self.api.terminate_system, NOTIFY_SYSTEM_EXITED)
    }

    /// Pause it (Hyper-V isolation only).
    pub fn pause(&self) -> Result<(), HcsError> {
        self.verb(
            "pause",
            self.api.pause_system,
            NOTIFY_SYSTEM_PAUSE_COMPLETED,
        )
    }

    /// Resume it.
    pub fn resume(&self) -> Result<(), HcsError> {
        self.verb(
            "resume",
            self.api.resume_system,
            NOTIFY_SYSTEM_RESUME_COMPLETED,
        )
    }

    /// Wait until it exits, up to `timeout`; whether it did.
    pub fn wait_exited(&self, timeout: Duration) -> bool {
        self.events
            .wait_for(&[NOTIFY_SYSTEM_EXITED, NOTIFY_SERVICE_DISCONNECT], timeout)
            .is_some()
    }

    /// Query its properties.
    pub fn properties(&self, query: &PropertyQuery) -> Result<ContainerProperties, HcsError> {
        let json = to_json("properties", query)?;
        let mut props: *mut u16 = std::ptr::null_mut();
        let mut result: *mut u16 = std::ptr::null_mut();
        // SAFETY: live handle, a NUL-terminated query, valid out-pointers.
        let hr = unsafe {
            (self.api.system_properties)(self.handle, json.as_ptr(), &mut props, &mut result)
        };
        let text = take_string(props);
        check("properties", hr, take_string(result))?;
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

    /// Send a schema 1 modify request.
    pub fn modify(&self, request: &serde_json::Value) -> Result<(), HcsError> {
        let json = to_json("modify", request)?;
        let mut result: *mut u16 = std::ptr::null_mut();
        // SAFETY: live handle, a NUL-terminated request, a valid out-pointer.
        let hr = unsafe { (self.api.modify_system)(self.handle, json.as_ptr(), &mut result) };
        check("modify", hr, take_string(result))
    }

    /// Create a process in it.
    pub fn create_process(&self, config: &ProcessConfig) -> Result<Process, HcsError> {
        let json = to_json("create process", config)?;
        let mut info = ProcessInformation::default();
        let mut handle: Raw = std::ptr::null_mut();
        let mut result: *mut u16 = std::ptr::null_mut();
        // SAFETY: live handle, NUL-terminated parameters, valid out-pointers.
        let hr = unsafe {
            (self.api.create_process)(
                self.handle,
                json.as_ptr(),
                &mut info,
                &mut handle,
                &mut result,
            )
        };
        check("create process", hr, take_string(result))?;
        let mut process = Process::adopt(self.api, handle, info.process_id)?;
        process.stdio = ProcessStdio {
            stdin: handle_to_file(info.std_input),
            stdout: handle_to_file(info.std_output),
            stderr: handle_to_file(info.std_error),
        };
        Ok(process)
    }

    /// Open a process of it by pid; it has no stdio.
    pub fn open_process(&self, pid: u32) -> Result<Process, HcsError> {
        let mut handle: Raw = std::ptr::null_mut();
        let mut result: *mut u16 = std::ptr::null_mut();
        // SAFETY: live handle and valid out-pointers.
        let hr = unsafe { (self.api.open_process)(self.handle, pid, &mut handle, &mut result) };
        check("open process", hr, take_string(result))?;
        Process::adopt(self.api, handle, pid)
    }
}

impl Drop for ComputeSystem {
    fn drop(&mut self) {
        // SAFETY: both handles are owned by `self` and released only here; the
        // callback goes first so none arrives for a closed handle.
        unsafe {
            if !self.callback.is_null() {
                (self.api.unregister_system_callback)(self.callback);
            }
            (self.api.close_system)(self.handle);
        }
    }
}

fn handle_to_file(h: HANDLE) -> Option<File> {
    if h.is_invalid() {
        return None;
    }
    // SAFETY: vmcompute hands the caller ownership of the pipe handles; each is
    // wrapped exactly once.
    Some(File::from(unsafe { OwnedHandle::from_raw_handle(h.0) }))
}

/// A process in a schema 1 compute system, closed on drop.
pub struct Process {
    api: &'static Api,
    handle: Raw,
    callback: Raw,
    pid: u32,
    stdio: ProcessStdio,
    events: Subscription,
    exit: OnceLock<Option<u32>>,
}

// SAFETY: vmcompute process handles may be used from any thread, concurrently.
unsafe impl Send for Process {}
// SAFETY: as above.
unsafe impl Sync for Process {}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("vmcompute::Process")
            .field("pid", &self.pid)
            .finish()
    }
}

impl Process {
    fn adopt(api: &'static Api, handle: Raw, pid: u32) -> Result<Self, HcsError> {
        let mut process = Self {
            api,
            handle,
            callback: std::ptr::null_mut(),
            pid,
            stdio: ProcessStdio::default(),
            events: Subscription::new(),
            exit: OnceLock::new(),
        };
        let mut callback: Raw = std::ptr::null_mut();
        // SAFETY: live handle; the context is a registry key, not a pointer.
        let hr = unsafe {
            (api.register_process_callback)(
                handle,
                on_notification,
                process.events.context(),
                &mut callback,
            )
        };
        check("register process callback", hr, String::new())?;
        process.callback = callback;
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

    /// Terminate it (schema 1 has no console signals).
    pub fn terminate(&self) -> Result<(), HcsError> {
        let mut result: *mut u16 = std::ptr::null_mut();
        // SAFETY: live handle and a valid out-pointer.
        let hr = unsafe { (self.api.terminate_process)(self.handle, &mut result) };
        let detail = take_string(result);
        if hr as u32 == HCS_E_PENDING {
            return Ok(());
        }
        check("terminate process", hr, detail)
    }

    fn modify(&self, op: &'static str, request: &ProcessModifyRequest) -> Result<(), HcsError> {
        let json = to_json(op, request)?;
        let mut result: *mut u16 = std::ptr::null_mut();
        // SAFETY: live handle, a NUL-terminated request, a valid out-pointer.
        let hr = unsafe { (self.api.modify_process)(self.handle, json.as_ptr(), &mut result) };
        check(op, hr, take_string(result))
    }

    /// Resize its console.
    pub fn resize(&self, width: u16, height: u16) -> Result<(), HcsError> {
        self.modify(
            "resize console",
            &ProcessModifyRequest::resize(width, height),
        )
    }

    /// Close its stdin.
    pub fn close_stdin(&self) -> Result<(), HcsError> {
        self.modify("close stdin", &ProcessModifyRequest::close_stdin())
    }

    /// Its status as HCS reports it.
    pub fn status(&self) -> Result<ProcessStatus, HcsError> {
        let mut props: *mut u16 = std::ptr::null_mut();
        let mut result: *mut u16 = std::ptr::null_mut();
        // SAFETY: live handle and valid out-pointers.
        let hr = unsafe { (self.api.process_properties)(self.handle, &mut props, &mut result) };
        let text = take_string(props);
        check("process status", hr, take_string(result))?;
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
            let kinds = [NOTIFY_PROCESS_EXITED, NOTIFY_SERVICE_DISCONNECT];
            if let Some(n) = self.events.wait_for(&kinds, EXIT_POLL) {
                if n.kind == NOTIFY_SERVICE_DISCONNECT {
                    return None;
                }
            }
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: both handles are owned by `self` and released only here.
        unsafe {
            if !self.callback.is_null() {
                (self.api.unregister_process_callback)(self.callback);
            }
            (self.api.close_process)(self.handle);
        }
    }
}
