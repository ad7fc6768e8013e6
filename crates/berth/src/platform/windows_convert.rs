//! Pure conversions between berth's types and berth-hcs's, for the Windows
//! platform: create options, process configuration, signals, exit codes,
//! statistics and process lists. Nothing here calls HCS, so it builds and is
//! tested on every OS.

use berth_hcs::documents::v1::{ProcessConfig, ProcessListItem, Statistics};
use berth_hcs::documents::v2::ConsoleSignal;
use berth_hcs::process::{ProcessConfigError, ProcessContext};
use berth_hcs::translate::TranslateError;
use berth_types::{ExitStatus, ProcessSummary, Stats};
use chrono::{DateTime, Utc};
use oci_spec::runtime::{Process, Spec};

use crate::error::ErrorKind;
use crate::types::{CreateOptions, Isolation, StdioRequest};

/// POSIX signal numbers as engines send them; Windows has no signals of its own.
pub(crate) const SIGINT: i32 = 2;
pub(crate) const SIGKILL: i32 = 9;
pub(crate) const SIGTERM: i32 = 15;

/// The berth-hcs options of a container: what the caller set in `opts`, and for
/// anything left at its default, the spec's own `windows` section.
pub(crate) fn hcs_options(
    spec: &Spec,
    opts: &CreateOptions,
    owner: Option<&str>,
) -> berth_hcs::CreateOptions {
    let from_spec = berth_hcs::CreateOptions::from_spec(spec);
    let w = &opts.windows;
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let layers = match &opts.layers {
        Some(l) => Some(berth_hcs::LayerOptions {
            paths: l.read_only.iter().map(|p| path(p)).collect(),
            folder: path(&l.writable),
        }),
        None => from_spec.layers,
    };
    let isolation = match &w.isolation {
        Isolation::HyperV {
            utility_vm,
            sandbox_path,
        } => berth_hcs::Isolation::HyperV {
            sandbox_path: sandbox_path.as_deref().map(path).unwrap_or_default(),
            utility_vm_path: utility_vm.as_deref().map(path),
        },
        Isolation::Process => from_spec.isolation,
    };
    let network = if w.network == Default::default() {
        from_spec.network
    } else {
        berth_hcs::NetworkOptions {
            endpoints: w.network.endpoints.clone(),
            namespace: w.network.namespace.clone(),
            allow_unqualified_dns_query: w.network.allow_unqualified_dns_query,
            dns_search_list: w.network.dns_search_list.clone(),
            shared_container: w.network.shared_container.clone(),
        }
    };
    berth_hcs::CreateOptions {
        owner: owner.map(str::to_owned),
        layers,
        isolation,
        servicing: w.servicing || from_spec.servicing,
        ignore_flushes_during_boot: w.ignore_flushes_during_boot
            || from_spec.ignore_flushes_during_boot,
        network,
        credentials: w.credentials.clone().or(from_spec.credentials),
        cpu_percent: None,
    }
}

/// The kind of a translation failure: what the caller asked for is either not
/// possible here yet, or wrong.
pub(crate) fn translate_error_kind(e: &TranslateError) -> ErrorKind {
    match e {
        TranslateError::Unsupported { .. } => ErrorKind::Unsupported,
        TranslateError::Layers
        | TranslateError::UtilityVm
        | TranslateError::VolumePath
        | TranslateError::NetworkNamespace
        | TranslateError::LayerId { .. } => ErrorKind::InvalidArgument,
        TranslateError::UtilityVmProbe { .. } => ErrorKind::Internal,
    }
}

/// The `ProcessConfig` of a process: the reference's rules (see
/// [`berth_hcs::process`]), with a terminal when either the spec or the caller
/// asks for one, and only the pipes the caller asked for (a pipe nobody reads
/// would stall the process once it fills).
pub(crate) fn process_config(
    process: &Process,
    stdio: StdioRequest,
    ctx: ProcessContext<'_>,
) -> Result<ProcessConfig, ProcessConfigError> {
    let mut process = process.clone();
    let terminal = stdio.terminal || process.terminal().unwrap_or(false);
    process.set_terminal(Some(terminal));
    let mut cfg = berth_hcs::process::process_config(&process, ctx)?;
    cfg.create_std_in_pipe &= stdio.stdin;
    cfg.create_std_out_pipe &= stdio.stdout;
    cfg.create_std_err_pipe &= stdio.stderr;
    Ok(cfg)
}

/// What a signal to the whole container does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContainerStop {
    /// SIGKILL: terminate the compute system.
    Terminate,
    /// Anything else: shut it down gracefully (Docker 17.04 and later).
    Shutdown,
}

impl ContainerStop {
    pub(crate) fn for_signal(signal: i32) -> Self {
        if signal == SIGKILL {
            Self::Terminate
        } else {
            Self::Shutdown
        }
    }
}

/// What a signal to one process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProcessStop {
    /// Terminate the process.
    Terminate,
    /// Deliver a console control event.
    Console(ConsoleSignal),
}

impl ProcessStop {
    /// SIGKILL terminates; SIGINT is Ctrl+C and SIGTERM a console shutdown where
    /// HCS can deliver console signals (schema 2), a termination where it cannot
    /// (schema 1, as the reference did). `None` for signals with no equivalent.
    pub(crate) fn for_signal(signal: i32, console_signals: bool) -> Option<Self> {
        match signal {
            SIGKILL => Some(Self::Terminate),
            SIGINT | SIGTERM if !console_signals => Some(Self::Terminate),
            SIGINT => Some(Self::Console(ConsoleSignal::CtrlC)),
            SIGTERM => Some(Self::Console(ConsoleSignal::CtrlShutdown)),
            _ => None,
        }
    }
}

/// The exit status of a process whose exit code HCS gave as `code`; `None` (the
/// code could not be read) is [`UNKNOWN_EXIT_CODE`], never 0. Windows exit codes
/// are 32-bit unsigned; NTSTATUS codes such as 0xC000013A come out negative, as
/// they do from `GetExitCodeProcess` read as a signed value.
pub(crate) fn exit_status(code: Option<u32>, unknown_reason: &str) -> ExitStatus {
    match code {
        Some(c) => ExitStatus {
            code: c as i32,
            exited_at: Utc::now(),
            oom_killed: false,
            error: None,
        },
        None => ExitStatus::unknown(unknown_reason),
    }
}

/// The memory limit the spec gives the container, in bytes.
pub(crate) fn memory_limit(spec: &Spec) -> Option<u64> {
    // oci-spec 0.10 has no getters on the Windows resources; read them back
    // through serde.
    let windows = serde_json::to_value(spec.windows().as_ref()?).ok()?;
    windows
        .pointer("/resources/memory/limit")?
        .as_u64()
        .filter(|&l| l > 0)
}

/// 100 ns units to nanoseconds.
fn ns(v: u64) -> u64 {
    v.saturating_mul(100)
}

/// berth's stats from HCS's. Figures HCS does not give are `None`: the memory
/// limit comes from the spec, the process count from a process list queried with
/// the statistics (`None` when it was not), and peak usage, page cache and the
/// task limit have no HCS counterpart.
pub(crate) fn stats(
    s: &Statistics,
    process_count: Option<usize>,
    memory_limit: Option<u64>,
) -> Stats {
    let mut out = Stats {
        read: DateTime::parse_from_rfc3339(&s.timestamp)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        ..Stats::default()
    };
    out.cpu.total_ns = Some(ns(s.processor.total_runtime_100ns));
    out.cpu.user_ns = Some(ns(s.processor.runtime_user_100ns));
    out.cpu.system_ns = Some(ns(s.processor.runtime_kernel_100ns));
    // What `docker stats` shows for Windows: the private working set.
    out.memory.usage = Some(s.memory.memory_usage_private_working_set_bytes);
    out.memory.limit = memory_limit;
    out.pids.current = process_count.map(|n| n as u64);
    out.block_io.read_bytes = Some(s.storage.read_size_bytes);
    out.block_io.write_bytes = Some(s.storage.write_size_bytes);
    if !s.network.is_empty() {
        let sum = |f: fn(&berth_hcs::documents::v1::NetworkStats) -> u64| {
            Some(s.network.iter().map(f).fold(0u64, u64::saturating_add))
        };
        out.network.rx_bytes = sum(|n| n.bytes_received);
        out.network.rx_packets = sum(|n| n.packets_received);
        out.network.tx_bytes = sum(|n| n.bytes_sent);
        out.network.tx_packets = sum(|n| n.packets_sent);
    }
    out
}

/// berth's process summary (`top`) from HCS's process list. HCS does not say
/// which user runs a process, so `user` is empty.
pub(crate) fn summary(list: &[ProcessListItem]) -> Vec<ProcessSummary> {
    list.iter()
        .map(|p| ProcessSummary {
            pid: p.process_id,
            user: String::new(),
            cpu_time_ns: ns(p.user_time_100ns.saturating_add(p.kernel_time_100ns)),
            memory_bytes: p.memory_working_set_private_bytes,
            command: p.image_name.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use berth_hcs::documents::v1;
    use serde_json::json;

    use berth_types::UNKNOWN_EXIT_CODE;

    use super::*;
    use crate::types::{Layers, WindowsNetwork, WindowsOptions};

    fn spec(v: serde_json::Value) -> Spec {
        serde_json::from_value(v).expect("valid spec")
    }

    fn windows_spec() -> Spec {
        spec(json!({
            "ociVersion": "1.0.2",
            "windows": {
                "layerFolders": ["C:\\l\\spec-top", "C:\\scratch-spec"],
                "network": { "endpointList": ["spec-ep"], "networkNamespace": "spec-ns" },
                "servicing": true,
                "credentialSpec": { "CmsPlugins": ["ActiveDirectory"] },
                "resources": { "memory": { "limit": 1073741824u64 } },
            },
        }))
    }

    #[test]
    fn options_fall_back_to_the_spec_section() {
        let o = hcs_options(&windows_spec(), &CreateOptions::default(), None);
        let l = o.layers.unwrap();
        assert_eq!(l.paths, ["C:\\l\\spec-top"]);
        assert_eq!(l.folder, "C:\\scratch-spec");
        assert!(o.servicing);
        assert_eq!(o.network.endpoints, ["spec-ep"]);
        assert_eq!(o.network.namespace.as_deref(), Some("spec-ns"));
        assert_eq!(
            o.credentials.as_deref(),
            Some(r#"{"CmsPlugins":["ActiveDirectory"]}"#)
        );
        assert_eq!(o.owner, None);
        assert_eq!(o.isolation, berth_hcs::Isolation::Process);
    }

    #[test]
    fn caller_options_win_over_the_spec() {
        let opts = CreateOptions {
            layers: Some(Layers {
                read_only: vec![PathBuf::from("C:\\l\\top"), PathBuf::from("C:\\l\\base")],
                writable: PathBuf::from("C:\\sandbox"),
            }),
            windows: WindowsOptions {
                isolation: Isolation::HyperV {
                    utility_vm: None,
                    sandbox_path: Some(PathBuf::from("C:\\windowsfilter")),
                },
                servicing: false,
                ignore_flushes_during_boot: true,
                network: WindowsNetwork {
                    endpoints: vec!["ep".into()],
                    namespace: None,
                    allow_unqualified_dns_query: true,
                    dns_search_list: vec!["a.example".into(), "b.example".into()],
                    shared_container: Some("other".into()),
                },
                credentials: Some("{}".into()),
            },
            ..CreateOptions::default()
        };
        let o = hcs_options(&windows_spec(), &opts, Some("docker"));
        assert_eq!(o.owner.as_deref(), Some("docker"));
        let l = o.layers.unwrap();
        assert_eq!(l.paths, ["C:\\l\\top", "C:\\l\\base"], "top-most first");
        assert_eq!(l.folder, "C:\\sandbox");
        assert_eq!(
            o.isolation,
            berth_hcs::Isolation::HyperV {
                sandbox_path: "C:\\windowsfilter".into(),
                utility_vm_path: None,
            }
        );
        assert!(o.ignore_flushes_during_boot);
        assert!(o.servicing, "the spec asked for servicing");
        assert_eq!(o.network.endpoints, ["ep"]);
        assert_eq!(o.network.namespace, None);
        assert!(o.network.allow_unqualified_dns_query);
        assert_eq!(o.network.dns_search_list, ["a.example", "b.example"]);
        assert_eq!(o.network.shared_container.as_deref(), Some("other"));
        assert_eq!(o.credentials.as_deref(), Some("{}"));
    }

    #[test]
    fn options_translate_to_both_schemas() {
        struct Guids;
        impl berth_hcs::LayerResolver for Guids {
            fn layer_guid(&self, name: &str) -> std::io::Result<String> {
                Ok(format!("guid-of-{name}"))
            }
        }
        let mut s = windows_spec();
        s.set_root(Some(
            serde_json::from_value(json!({ "path": "\\\\?\\Volume{abc}\\" })).unwrap(),
        ));
        let opts = CreateOptions {
            windows: WindowsOptions {
                network: WindowsNetwork {
                    endpoints: vec!["ep".into()],
                    namespace: Some("ns".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        };
        let mut o = hcs_options(&s, &opts, None);
        let host = berth_hcs::HostInfo { processor_count: 2 };
        let v1 = berth_hcs::translate::to_v1("c1", &s, &o, &Guids, &host).unwrap();
        assert!(v1.servicing);
        assert_eq!(v1.endpoint_list, ["ep"]);
        assert_eq!(v1.layers[0].id, "guid-of-spec-top");
        assert_eq!(v1.memory_maximum_in_mb, 1024);
        // Schema 2 cannot run servicing containers or credential specs yet.
        let e = berth_hcs::translate::to_v2(&s, &o, &Guids, &host).unwrap_err();
        assert_eq!(translate_error_kind(&e), ErrorKind::Unsupported);
        o.servicing = false;
        o.credentials = None;
        let v2 = berth_hcs::translate::to_v2(&s, &o, &Guids, &host).unwrap();
        let c = v2.container.unwrap();
        assert_eq!(c.networking.unwrap().namespace, "ns");
        assert_eq!(c.storage.unwrap().layers[0].path, "C:\\l\\spec-top");
        // Hyper-V under schema 2 is a clear Unsupported error.
        o.isolation = berth_hcs::Isolation::HyperV {
            sandbox_path: String::new(),
            utility_vm_path: Some("C:\\uvm".into()),
        };
        let e = berth_hcs::translate::to_v2(&s, &o, &Guids, &host).unwrap_err();
        assert_eq!(translate_error_kind(&e), ErrorKind::Unsupported);
        assert!(e.to_string().contains("Hyper-V"), "{e}");
        // A missing layer option is the caller's mistake.
        o.layers = None;
        let e = berth_hcs::translate::to_v1("c1", &s, &o, &Guids, &host).unwrap_err();
        assert_eq!(translate_error_kind(&e), ErrorKind::InvalidArgument);
    }

    #[test]
    fn memory_limit_from_the_spec() {
        assert_eq!(memory_limit(&windows_spec()), Some(1 << 30));
        assert_eq!(memory_limit(&spec(json!({ "ociVersion": "1.0.2" }))), None);
    }

    fn process(terminal: bool) -> Process {
        serde_json::from_value(json!({
            "terminal": terminal,
            "consoleSize": { "height": 25, "width": 80 },
            "user": { "uid": 0, "gid": 0 },
            "args": ["cmd", "/c", "echo hi"],
            "cwd": "",
        }))
        .unwrap()
    }

    #[test]
    fn pipes_follow_the_request() {
        let ctx = ProcessContext {
            servicing: false,
            init_cwd: Some("C:\\app"),
        };
        let cfg = process_config(&process(false), StdioRequest::output(), ctx).unwrap();
        assert!(!cfg.create_std_in_pipe, "no stdin asked for");
        assert!(cfg.create_std_out_pipe && cfg.create_std_err_pipe);
        assert!(!cfg.emulate_console);
        assert_eq!(cfg.working_directory, "C:\\app");
        assert_eq!(cfg.command_line, r#"cmd /c "echo hi""#);

        let all = StdioRequest {
            stdin: true,
            stdout: true,
            stderr: true,
            terminal: true,
        };
        let cfg = process_config(&process(false), all, ctx).unwrap();
        assert!(cfg.emulate_console, "the caller asked for a terminal");
        assert!(cfg.create_std_in_pipe && cfg.create_std_out_pipe);
        assert!(!cfg.create_std_err_pipe, "a terminal has no stderr");
        assert_eq!(cfg.console_size, [25, 80]);

        let servicing = ProcessContext {
            servicing: true,
            init_cwd: None,
        };
        let cfg = process_config(&process(true), all, servicing).unwrap();
        assert!(!cfg.create_std_in_pipe && !cfg.create_std_out_pipe && !cfg.create_std_err_pipe);
    }

    #[test]
    fn signals() {
        assert_eq!(ContainerStop::for_signal(SIGKILL), ContainerStop::Terminate);
        assert_eq!(ContainerStop::for_signal(SIGTERM), ContainerStop::Shutdown);
        assert_eq!(ContainerStop::for_signal(SIGINT), ContainerStop::Shutdown);
        assert_eq!(
            ProcessStop::for_signal(SIGKILL, true),
            Some(ProcessStop::Terminate)
        );
        assert_eq!(
            ProcessStop::for_signal(SIGINT, true),
            Some(ProcessStop::Console(ConsoleSignal::CtrlC))
        );
        assert_eq!(
            ProcessStop::for_signal(SIGTERM, true),
            Some(ProcessStop::Console(ConsoleSignal::CtrlShutdown))
        );
        assert_eq!(
            ProcessStop::for_signal(SIGTERM, false),
            Some(ProcessStop::Terminate)
        );
        assert_eq!(ProcessStop::for_signal(10, true), None);
    }

    #[test]
    fn unknown_exit_codes_are_255_never_0() {
        let e = exit_status(None, "gone");
        assert_eq!(e.code, UNKNOWN_EXIT_CODE);
        assert_eq!(e.error.as_deref(), Some("gone"));
        assert_eq!(exit_status(Some(0), "x").code, 0);
        assert_eq!(exit_status(Some(3), "x").error, None);
        assert_eq!(
            exit_status(Some(0xC000_013A), "x").code,
            0xC000_013Au32 as i32
        );
    }

    fn statistics(network: Vec<v1::NetworkStats>) -> Statistics {
        Statistics {
            timestamp: "2017-01-01T00:00:01Z".into(),
            uptime_100ns: 10,
            memory: v1::MemoryStats {
                memory_usage_commit_bytes: 100,
                memory_usage_commit_peak_bytes: 200,
                memory_usage_private_working_set_bytes: 50,
            },
            processor: v1::ProcessorStats {
                total_runtime_100ns: 30,
                runtime_user_100ns: 20,
                runtime_kernel_100ns: 10,
            },
            storage: v1::StorageStats {
                read_size_bytes: 7,
                write_size_bytes: 9,
                ..Default::default()
            },
            network,
            ..Default::default()
        }
    }

    #[test]
    fn stats_convert_and_unknown_figures_stay_none() {
        let s = stats(&statistics(vec![]), Some(3), Some(1 << 20));
        assert_eq!(
            s.read.unwrap(),
            "2017-01-01T00:00:01Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            (s.cpu.total_ns, s.cpu.user_ns, s.cpu.system_ns),
            (Some(3000), Some(2000), Some(1000))
        );
        assert_eq!(s.memory.usage, Some(50));
        assert_eq!(s.memory.limit, Some(1 << 20));
        assert_eq!(s.memory.max_usage, None);
        assert_eq!(s.memory.cache, None);
        assert_eq!(s.pids.current, Some(3));
        assert_eq!(s.pids.limit, None);
        assert_eq!(
            (s.block_io.read_bytes, s.block_io.write_bytes),
            (Some(7), Some(9))
        );
        assert_eq!(s.network, Default::default(), "no endpoint: unknown");

        let mut bad = statistics(vec![]);
        bad.timestamp = "not a time".into();
        let s = stats(&bad, None, None);
        assert_eq!((s.read, s.pids.current, s.memory.limit), (None, None, None));
    }

    #[test]
    fn network_stats_add_up_over_endpoints() {
        let ep = |n: u64| v1::NetworkStats {
            bytes_received: n,
            bytes_sent: 2 * n,
            packets_received: 3 * n,
            packets_sent: 4 * n,
            ..Default::default()
        };
        let s = stats(&statistics(vec![ep(1), ep(10)]), None, None);
        assert_eq!(s.network.rx_bytes, Some(11));
        assert_eq!(s.network.tx_bytes, Some(22));
        assert_eq!(s.network.rx_packets, Some(33));
        assert_eq!(s.network.tx_packets, Some(44));
    }

    #[test]
    fn process_list_converts() {
        let list = [v1::ProcessListItem {
            image_name: "cmd.exe".into(),
            kernel_time_100ns: 5,
            user_time_100ns: 7,
            memory_working_set_private_bytes: 4096,
            process_id: 1234,
            ..Default::default()
        }];
        assert_eq!(
            summary(&list),
            [ProcessSummary {
                pid: 1234,
                user: String::new(),
                cpu_time_ns: 1200,
                memory_bytes: 4096,
                command: "cmd.exe".into(),
            }]
        );
    }
}
