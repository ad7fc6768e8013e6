use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use super::*;
use crate::options::NetworkOptions;

const LAYER: &str =
    r"C:\control\windowsfilter\65bf96e5760a09edf1790cb229e2dfb2dbd0fcdc0bf7451bae099106bfbfea0c";
const LAYER_GUID: &str = "18955d65-d45a-557b-bf1c-49d6dfefc526";

/// Resolves the one known NameToGuid pair, and "finds" utility VMs at given paths.
#[derive(Default)]
struct FakeResolver {
    guids: HashMap<String, String>,
    uvms: HashSet<String>,
    probe_error: Option<io::ErrorKind>,
}

impl FakeResolver {
    fn new() -> Self {
        let mut r = Self::default();
        r.guids.insert(
            "65bf96e5760a09edf1790cb229e2dfb2dbd0fcdc0bf7451bae099106bfbfea0c".into(),
            LAYER_GUID.into(),
        );
        r
    }
}

impl LayerResolver for FakeResolver {
    fn layer_guid(&self, folder_name: &str) -> io::Result<String> {
        self.guids
            .get(folder_name)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such layer"))
    }

    fn utility_vm_exists(&self, path: &str) -> io::Result<bool> {
        if let Some(kind) = self.probe_error {
            return Err(io::Error::from(kind));
        }
        Ok(self.uvms.contains(path))
    }
}

const HOST: HostInfo = HostInfo { processor_count: 4 };

fn spec(v: Value) -> Spec {
    serde_json::from_value(v).expect("valid spec")
}

fn layers(paths: &[&str], folder: &str) -> Option<LayerOptions> {
    Some(LayerOptions {
        paths: paths.iter().map(|p| p.to_string()).collect(),
        folder: folder.into(),
    })
}

/// The reference's comment prints its examples with every backslash doubled
/// once more than JSON needs (`"C:\\\\control"`); this undoes that extra level,
/// so the examples are compared as HCS receives them.
fn reference_example(text: &str) -> Value {
    serde_json::from_str(&text.replace(r"\\", r"\")).expect("example is JSON")
}

#[test]
fn golden_process_isolation() {
    let id = "5e0055c814a6005b8e57ac59f9a522066e0af12b48b3c26a9416e23907698776";
    let spec = spec(json!({
        "ociVersion": "1.0.2",
        "root": { "path": r"\\?\Volume{66d1ef4c-7a00-11e6-8948-00155ddbef9d}" },
        "hostname": "5e0055c814a6",
    }));
    let opts = CreateOptions {
        owner: Some("docker".into()),
        layers: layers(&[LAYER], &format!(r"C:\control\windowsfilter\{id}")),
        ignore_flushes_during_boot: true,
        network: NetworkOptions {
            endpoints: vec!["eef2649d-bb17-4d53-9937-295a8efe6f2c".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let got = serde_json::to_value(to_v1(id, &spec, &opts, &FakeResolver::new(), &HOST).unwrap())
        .unwrap();
    let mut want = reference_example(
        r#"{
 "SystemType": "Container",
 "Name": "5e0055c814a6005b8e57ac59f9a522066e0af12b48b3c26a9416e23907698776",
 "Owner": "docker",
 "IsDummy": false,
 "VolumePath": "\\\\\\\\?\\\\Volume{66d1ef4c-7a00-11e6-8948-00155ddbef9d}",
 "IgnoreFlushesDuringBoot": true,
 "LayerFolderPath": "C:\\\\control\\\\windowsfilter\\\\5e0055c814a6005b8e57ac59f9a522066e0af12b48b3c26a9416e23907698776",
 "Layers": [{
 "ID": "18955d65-d45a-557b-bf1c-49d6dfefc526",
 "Path": "C:\\\\control\\\\windowsfilter\\\\65bf96e5760a09edf1790cb229e2dfb2dbd0fcdc0bf7451bae099106bfbfea0c"
 }],
 "HostName": "5e0055c814a6",
 "MappedDirectories": [],
 "HvPartition": false,
 "EndpointList": ["eef2649d-bb17-4d53-9937-295a8efe6f2c"],
 "Servicing": false
}"#,
    );
    // The example predates AllowUnqualifiedDNSQuery, which the reference's
    // ContainerConfig always writes.
    want["AllowUnqualifiedDNSQuery"] = json!(false);
    assert_eq!(got, want);
    assert_eq!(
        got["VolumePath"],
        json!(r"\\?\Volume{66d1ef4c-7a00-11e6-8948-00155ddbef9d}")
    );
}

#[test]
fn golden_hyperv_isolation() {
    let id = "475c2c58933b72687a88a441e7e0ca4bd72d76413c5f9d5031fee83b98f6045d";
    let spec = spec(json!({ "ociVersion": "1.0.2", "hostname": "475c2c58933b" }));
    let mut resolver = FakeResolver::new();
    resolver.uvms.insert(format!(r"{LAYER}\UtilityVM"));
    let opts = CreateOptions {
        owner: Some("docker".into()),
        layers: layers(&[LAYER], ""),
        isolation: Isolation::HyperV {
            sandbox_path: r"C:\control\windowsfilter".into(),
            utility_vm_path: None,
        },
        ignore_flushes_during_boot: true,
        network: NetworkOptions {
            endpoints: vec!["e1bb1e61-d56f-405e-b75d-fd520cefa0cb".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let got = serde_json::to_value(to_v1(id, &spec, &opts, &resolver, &HOST).unwrap()).unwrap();
    let mut want = reference_example(
        r#"{
 "SystemType": "Container",
 "Name": "475c2c58933b72687a88a441e7e0ca4bd72d76413c5f9d5031fee83b98f6045d",
 "Owner": "docker",
 "IsDummy": false,
 "IgnoreFlushesDuringBoot": true,
 "Layers": [{
 "ID": "18955d65-d45a-557b-bf1c-49d6dfefc526",
 "Path": "C:\\\\control\\\\windowsfilter\\\\65bf96e5760a09edf1790cb229e2dfb2dbd0fcdc0bf7451bae099106bfbfea0c"
 }],
 "HostName": "475c2c58933b",
 "MappedDirectories": [],
 "SandboxPath": "C:\\\\control\\\\windowsfilter",
 "HvPartition": true,
 "EndpointList": ["e1bb1e61-d56f-405e-b75d-fd520cefa0cb"],
 "HvRuntime": {
 "ImagePath": "C:\\\\control\\\\windowsfilter\\\\65bf96e5760a09edf1790cb229e2dfb2dbd0fcdc0bf7451bae099106bfbfea0c\\\\UtilityVM"
 },
 "Servicing": false
}"#,
    );
    want["AllowUnqualifiedDNSQuery"] = json!(false);
    assert_eq!(got, want);
}

fn base_opts() -> CreateOptions {
    CreateOptions {
        layers: layers(&[LAYER], r"C:\w\c1"),
        ..Default::default()
    }
}

fn base_spec() -> Value {
    json!({ "ociVersion": "1.0.2", "root": { "path": r"\\?\Volume{x}" } })
}

#[test]
fn layer_option_with_paths_is_required() {
    let s = spec(base_spec());
    for layers in [None, Some(LayerOptions::default())] {
        let opts = CreateOptions {
            layers,
            ..Default::default()
        };
        let e = to_v1("c", &s, &opts, &FakeResolver::new(), &HOST).unwrap_err();
        assert!(matches!(e, TranslateError::Layers));
        assert_eq!(
            e.to_string(),
            "no layer option or paths were supplied to the runtime"
        );
        assert!(matches!(
            to_v2(&s, &opts, &FakeResolver::new(), &HOST),
            Err(TranslateError::Layers)
        ));
    }
}

#[test]
fn default_owner_is_berth() {
    let cfg = to_v1(
        "c",
        &spec(base_spec()),
        &base_opts(),
        &FakeResolver::new(),
        &HOST,
    )
    .unwrap();
    assert_eq!(cfg.owner, "berth");
    assert_eq!(cfg.system_type, "Container");
}

#[test]
fn resources_follow_the_reference_rules() {
    let mut v = base_spec();
    v["windows"] = json!({ "resources": {
        "cpu": { "count": 64, "shares": 500, "maximum": 2500 },
        "memory": { "limit": 3u64 * 1024 * 1024 * 1024 + 12345 },
        "storage": { "iops": 1000, "bps": 2_000_000, "sandboxSize": 42 },
    }});
    let s = spec(v);
    let cfg = to_v1("c", &s, &base_opts(), &FakeResolver::new(), &HOST).unwrap();
    assert_eq!(cfg.processor_count, 4, "clamped to the host's count");
    assert_eq!(cfg.processor_weight, 500);
    assert_eq!(cfg.processor_maximum, 2500);
    assert_eq!(cfg.memory_maximum_in_mb, 3072);
    assert_eq!(cfg.storage_iops_maximum, 1000);
    assert_eq!(cfg.storage_bandwidth_maximum, 2_000_000);
    assert_eq!(cfg.storage_sandbox_size, 42);

    let doc = to_v2(&s, &base_opts(), &FakeResolver::new(), &HOST).unwrap();
    let c = doc.container.unwrap();
    assert_eq!(
        c.processor,
        Some(v2::Processor {
            count: 4,
            maximum: 2500,
            weight: 500
        })
    );
    assert_eq!(c.memory, Some(v2::Memory { size_in_mb: 3072 }));
    assert_eq!(
        c.storage.unwrap().qos,
        Some(v2::StorageQoS {
            iops_maximum: 1000,
            bandwidth_maximum: 2_000_000
        })
    );
}

#[test]
fn cpu_count_within_the_host_is_kept() {
    let mut v = base_spec();
    v["windows"] = json!({ "resources": { "cpu": { "count": 2 } } });
    let cfg = to_v1("c", &spec(v), &base_opts(), &FakeResolver::new(), &HOST).unwrap();
    assert_eq!(cfg.processor_count, 2);
}

#[test]
fn cpu_percent_option_is_scaled_by_100() {
    let opts = CreateOptions {
        cpu_percent: Some(40),
        ..base_opts()
    };
    let cfg = to_v1("c", &spec(base_spec()), &opts, &FakeResolver::new(), &HOST).unwrap();
    assert_eq!(cfg.processor_maximum, 4000);
    // The spec's maximum (already × 100) wins over the option.
    let mut v = base_spec();
    v["windows"] = json!({ "resources": { "cpu": { "maximum": 100 } } });
    let cfg = to_v1("c", &spec(v), &opts, &FakeResolver::new(), &HOST).unwrap();
    assert_eq!(cfg.processor_maximum, 100);
}

#[test]
fn zero_resources_are_omitted() {
    let cfg = to_v1(
        "c",
        &spec(base_spec()),
        &base_opts(),
        &FakeResolver::new(),
        &HOST,
    )
    .unwrap();
    let v = serde_json::to_value(&cfg).unwrap();
    for key in [
        "ProcessorCount",
        "ProcessorWeight",
        "ProcessorMaximum",
        "MemoryMaximumInMB",
        "StorageIOPSMaximum",
        "StorageBandwidthMaximum",
        "StorageSandboxSize",
        "Credentials",
        "SandboxPath",
        "HvRuntime",
        "DNSSearchList",
        "NetworkSharedContainerName",
    ] {
        assert!(v.get(key).is_none(), "{key} must be omitted");
    }
    let doc = serde_json::to_value(
        to_v2(
            &spec(base_spec()),
            &base_opts(),
            &FakeResolver::new(),
            &HOST,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        doc,
        json!({
            "Owner": "berth",
            "SchemaVersion": { "Major": 2, "Minor": 1 },
            "Container": { "Storage": {
                "Layers": [{ "Id": LAYER_GUID, "Path": LAYER }],
                "Path": r"\\?\Volume{x}",
            }},
        })
    );
}

#[test]
fn mounts_are_read_only_on_ro_in_any_case() {
    let mut v = base_spec();
    v["mounts"] = json!([
        { "destination": r"C:\data", "source": r"D:\data", "options": ["RO"] },
        { "destination": r"C:\rw", "source": r"D:\rw", "options": ["rw", "rom"] },
        { "destination": r"C:\none", "source": r"D:\none" },
    ]);
    let s = spec(v);
    let cfg = to_v1("c", &s, &base_opts(), &FakeResolver::new(), &HOST).unwrap();
    let got: Vec<_> = cfg
        .mapped_directories
        .iter()
        .map(|m| (m.host_path.as_str(), m.container_path.as_str(), m.read_only))
        .collect();
    assert_eq!(
        got,
        [
            (r"D:\data", r"C:\data", true),
            (r"D:\rw", r"C:\rw", false),
            (r"D:\none", r"C:\none", false)
        ]
    );
    let v = serde_json::to_value(&cfg.mapped_directories[0]).unwrap();
    assert_eq!(
        v,
        json!({ "HostPath": r"D:\data", "ContainerPath": r"C:\data", "ReadOnly": true,
                "BandwidthMaximum": 0, "IOPSMaximum": 0 })
    );
    let doc = to_v2(&s, &base_opts(), &FakeResolver::new(), &HOST).unwrap();
    let dirs = doc.container.unwrap().mapped_directories;
    assert_eq!(dirs.len(), 3);
    assert!(dirs[0].read_only && !dirs[1].read_only);
}

#[test]
fn layer_guids_come_from_the_resolver_top_most_first() {
    let mut r = FakeResolver::new();
    r.guids
        .insert("top".into(), "00000000-0000-0000-0000-000000000001".into());
    let opts = CreateOptions {
        layers: layers(&[r"C:\l\top\", LAYER], r"C:\w"),
        ..Default::default()
    };
    let cfg = to_v1("c", &spec(base_spec()), &opts, &r, &HOST).unwrap();
    let ids: Vec<_> = cfg.layers.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, ["00000000-0000-0000-0000-000000000001", LAYER_GUID]);
    assert_eq!(cfg.layers[0].path, r"C:\l\top\");
}

#[test]
fn unresolvable_layer_names_the_layer() {
    let opts = CreateOptions {
        layers: layers(&[r"C:\l\nope"], r"C:\w"),
        ..Default::default()
    };
    let e = to_v1("c", &spec(base_spec()), &opts, &FakeResolver::new(), &HOST).unwrap_err();
    assert!(matches!(&e, TranslateError::LayerId { layer, .. } if layer == r"C:\l\nope"));
    assert_eq!(e.to_string(), r"cannot resolve the GUID of layer C:\l\nope");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn utility_vm_is_the_top_most_layer_that_has_one() {
    let mut r = FakeResolver::new();
    r.guids.insert("a".into(), "a-guid".into());
    r.guids.insert("b".into(), "b-guid".into());
    r.uvms.insert(r"C:\l\b\UtilityVM".into());
    r.uvms.insert(format!(r"{LAYER}\UtilityVM"));
    let opts = CreateOptions {
        layers: layers(&[r"C:\l\a", r"C:\l\b", LAYER], ""),
        isolation: Isolation::HyperV {
            sandbox_path: r"C:\sb".into(),
            utility_vm_path: None,
        },
        ..Default::default()
    };
    let s = spec(json!({ "ociVersion": "1.0.2" }));
    let cfg = to_v1("c", &s, &opts, &r, &HOST).unwrap();
    assert_eq!(cfg.hv_runtime.unwrap().image_path, r"C:\l\b\UtilityVM");
    assert!(cfg.hv_partition);
    assert_eq!(cfg.volume_path, "", "no volume path under Hyper-V");

    let explicit = CreateOptions {
        isolation: Isolation::HyperV {
            sandbox_path: r"C:\sb".into(),
            utility_vm_path: Some(r"D:\uvm".into()),
        },
        ..opts.clone()
    };
    let cfg = to_v1("c", &s, &explicit, &r, &HOST).unwrap();
    assert_eq!(cfg.hv_runtime.unwrap().image_path, r"D:\uvm");
}

#[test]
fn missing_utility_vm_and_probe_errors() {
    let opts = CreateOptions {
        layers: layers(&[LAYER], ""),
        isolation: Isolation::HyperV {
            sandbox_path: r"C:\sb".into(),
            utility_vm_path: None,
        },
        ..Default::default()
    };
    let s = spec(json!({ "ociVersion": "1.0.2" }));
    let e = to_v1("c", &s, &opts, &FakeResolver::new(), &HOST).unwrap_err();
    assert!(matches!(e, TranslateError::UtilityVm));
    assert_eq!(e.to_string(), "utility VM image could not be found");

    let r = FakeResolver {
        probe_error: Some(io::ErrorKind::PermissionDenied),
        ..FakeResolver::new()
    };
    let e = to_v1("c", &s, &opts, &r, &HOST).unwrap_err();
    assert!(matches!(&e, TranslateError::UtilityVmProbe { path, source }
            if path == &format!(r"{LAYER}\UtilityVM") && source.kind() == io::ErrorKind::PermissionDenied));
}

#[test]
fn process_isolation_needs_a_volume_path() {
    let s = spec(json!({ "ociVersion": "1.0.2" }));
    let e = to_v1("c", &s, &base_opts(), &FakeResolver::new(), &HOST).unwrap_err();
    assert!(matches!(e, TranslateError::VolumePath));
    assert!(matches!(
        to_v2(&s, &base_opts(), &FakeResolver::new(), &HOST),
        Err(TranslateError::VolumePath)
    ));
}

#[test]
fn options_reach_the_v1_document() {
    let opts = CreateOptions {
        servicing: true,
        credentials: Some("{\"CmsPlugins\":[]}".into()),
        network: NetworkOptions {
            endpoints: vec!["e1".into(), "e2".into()],
            namespace: None,
            allow_unqualified_dns_query: true,
            dns_search_list: vec!["corp.example".into(), "example".into()],
            shared_container: Some("other".into()),
        },
        ..base_opts()
    };
    let mut v = base_spec();
    v["hostname"] = json!("web");
    let cfg = to_v1("c", &spec(v), &opts, &FakeResolver::new(), &HOST).unwrap();
    let j = serde_json::to_value(&cfg).unwrap();
    assert_eq!(j["Servicing"], json!(true));
    assert_eq!(j["Credentials"], json!("{\"CmsPlugins\":[]}"));
    assert_eq!(j["EndpointList"], json!(["e1", "e2"]));
    assert_eq!(j["AllowUnqualifiedDNSQuery"], json!(true));
    assert_eq!(j["DNSSearchList"], json!("corp.example,example"));
    assert_eq!(j["NetworkSharedContainerName"], json!("other"));
    assert_eq!(j["HostName"], json!("web"));
    assert_eq!(j["LayerFolderPath"], json!(r"C:\w\c1"));
}

#[test]
fn v2_networking_and_hostname() {
    let opts = CreateOptions {
        network: NetworkOptions {
            endpoints: vec!["e1".into()],
            namespace: Some("ns-guid".into()),
            allow_unqualified_dns_query: true,
            dns_search_list: vec!["a".into(), "b".into()],
            shared_container: None,
        },
        ..base_opts()
    };
    let mut v = base_spec();
    v["hostname"] = json!("web");
    let doc =
        serde_json::to_value(to_v2(&spec(v), &opts, &FakeResolver::new(), &HOST).unwrap()).unwrap();
    assert_eq!(
        doc["Container"]["Networking"],
        json!({ "AllowUnqualifiedDnsQuery": true, "DnsSearchList": "a,b", "Namespace": "ns-guid" })
    );
    assert_eq!(doc["Container"]["GuestOs"], json!({ "HostName": "web" }));
    assert!(doc.get("ShouldTerminateOnLastHandleClosed").is_none());
}

#[test]
fn v2_refuses_what_it_cannot_run_yet() {
    let s = spec(base_spec());
    let r = FakeResolver::new();
    let hyperv = CreateOptions {
        isolation: Isolation::HyperV {
            sandbox_path: String::new(),
            utility_vm_path: None,
        },
        ..base_opts()
    };
    let e = to_v2(&s, &hyperv, &r, &HOST).unwrap_err();
    assert!(matches!(e, TranslateError::Unsupported { .. }));
    assert_eq!(
        e.to_string(),
        "Hyper-V isolation (berth does not create utility VMs) is not supported with HCS schema 2 yet"
    );
    let servicing = CreateOptions {
        servicing: true,
        ..base_opts()
    };
    assert!(matches!(
        to_v2(&s, &servicing, &r, &HOST),
        Err(TranslateError::Unsupported { .. })
    ));
    let creds = CreateOptions {
        credentials: Some("x".into()),
        ..base_opts()
    };
    assert!(matches!(
        to_v2(&s, &creds, &r, &HOST),
        Err(TranslateError::Unsupported { .. })
    ));
    let endpoints = CreateOptions {
        network: NetworkOptions {
            endpoints: vec!["e".into()],
            ..Default::default()
        },
        ..base_opts()
    };
    let e = to_v2(&s, &endpoints, &r, &HOST).unwrap_err();
    assert!(matches!(e, TranslateError::NetworkNamespace));
    assert_eq!(
        e.to_string(),
        "network endpoints need a network namespace with HCS schema 2"
    );
}

#[test]
fn path_helpers_follow_windows_rules() {
    assert_eq!(file_name(r"C:\a\b"), "b");
    assert_eq!(file_name(r"C:\a\b\"), "b");
    assert_eq!(file_name("C:/a/b"), "b");
    assert_eq!(join_windows(r"C:\a\", "UtilityVM"), r"C:\a\UtilityVM");
    assert_eq!(join_windows(r"C:\a", "UtilityVM"), r"C:\a\UtilityVM");
}
