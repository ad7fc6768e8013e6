//! HCS configuration documents as serde types.
//!
//! `v1` is the schema that vmcompute.dll takes (`ContainerConfig`, what the reference
//! sends); `v2` is the `ComputeSystem` schema that computecore.dll takes. Statistics,
//! process lists, property queries and process modify requests have the same shape
//! in both schemas and live in `v1`.

pub mod v1;
pub mod v2;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{v1, v2};

    #[test]
    fn modify_requests_have_the_reference_shape() {
        assert_eq!(
            serde_json::to_value(v1::ProcessModifyRequest::resize(120, 40)).unwrap(),
            json!({ "Operation": "ConsoleSize", "ConsoleSize": { "Height": 40, "Width": 120 } })
        );
        assert_eq!(
            serde_json::to_value(v1::ProcessModifyRequest::close_stdin()).unwrap(),
            json!({ "Operation": "CloseHandle", "CloseHandle": { "Handle": "StdIn" } })
        );
    }

    #[test]
    fn property_queries() {
        use v1::PropertyType::*;
        for (t, name) in [
            (Statistics, "Statistics"),
            (ProcessList, "ProcessList"),
            (PendingUpdates, "PendingUpdates"),
        ] {
            assert_eq!(
                serde_json::to_value(v1::PropertyQuery::of(&[t])).unwrap(),
                json!({ "PropertyTypes": [name] })
            );
        }
    }

    #[test]
    fn statistics_and_process_list_parse() {
        let props: v1::ContainerProperties = serde_json::from_value(json!({
            "Id": "c1", "SystemType": "Container", "Unknown": 1,
            "Statistics": {
                "Timestamp": "2017-01-01T00:00:00Z", "ContainerStartTime": "2017-01-01T00:00:00Z",
                "Uptime100ns": 10,
                "Memory": { "MemoryUsageCommitBytes": 1, "MemoryUsageCommitPeakBytes": 2,
                            "MemoryUsagePrivateWorkingSetBytes": 3 },
                "Processor": { "TotalRuntime100ns": 4, "RuntimeUser100ns": 5, "RuntimeKernel100ns": 6 },
                "Storage": { "ReadCountNormalized": 7, "ReadSizeBytes": 8,
                             "WriteCountNormalized": 9, "WriteSizeBytes": 10 },
                "Network": [{ "BytesReceived": 11, "BytesSent": 12, "PacketsReceived": 13,
                              "PacketsSent": 14, "DroppedPacketsIncoming": 15,
                              "DroppedPacketsOutgoing": 16, "EndpointId": "e", "InstanceId": "i" }],
            },
            "ProcessList": [{
                "CreateTimestamp": "2017-01-01T00:00:00Z", "ImageName": "cmd.exe",
                "KernelTime100ns": 1, "MemoryCommitBytes": 2, "MemoryWorkingSetPrivateBytes": 3,
                "MemoryWorkingSetSharedBytes": 4, "ProcessId": 5, "UserTime100ns": 6,
            }],
        }))
        .unwrap();
        assert_eq!(props.id, "c1");
        let s = props.statistics.unwrap();
        assert_eq!(s.uptime_100ns, 10);
        assert_eq!(s.memory.memory_usage_private_working_set_bytes, 3);
        assert_eq!(s.processor.runtime_kernel_100ns, 6);
        assert_eq!(s.storage.write_size_bytes, 10);
        assert_eq!(s.network[0].dropped_packets_outgoing, 16);
        assert_eq!(s.network[0].endpoint_id, "e");
        let p = &props.process_list.unwrap()[0];
        assert_eq!(
            (p.image_name.as_str(), p.process_id, p.user_time_100ns),
            ("cmd.exe", 5, 6)
        );
        // Serialising gives the same names back.
        let back = serde_json::to_value(p).unwrap();
        assert_eq!(back["MemoryWorkingSetSharedBytes"], json!(4));
        assert_eq!(back["KernelTime100ns"], json!(1));
    }

    #[test]
    fn exit_code_is_known_only_after_a_clean_wait() {
        let st = |exited, code, wait| v1::ProcessStatus {
            process_id: 1,
            exited,
            exit_code: code,
            last_wait_result: wait,
        };
        assert_eq!(st(true, 3, 0).known_exit_code(), Some(3));
        assert_eq!(st(true, 0, 0).known_exit_code(), Some(0));
        assert_eq!(st(false, 0, 0).known_exit_code(), None);
        assert_eq!(st(true, 0, 5).known_exit_code(), None);
    }

    #[test]
    fn v2_process_parameters_and_signals() {
        let cfg = v1::ProcessConfig {
            command_line: "cmd".into(),
            emulate_console: true,
            create_std_in_pipe: true,
            create_std_out_pipe: true,
            console_size: [25, 80],
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(v2::ProcessParameters::from(&cfg)).unwrap(),
            json!({ "CommandLine": "cmd", "EmulateConsole": true, "CreateStdInPipe": true,
                    "CreateStdOutPipe": true, "ConsoleSize": [25, 80] })
        );
        assert_eq!(
            serde_json::to_value(v2::SignalProcessOptions {
                signal: v2::ConsoleSignal::CtrlBreak
            })
            .unwrap(),
            json!({ "Signal": "CtrlBreak" })
        );
    }
}
