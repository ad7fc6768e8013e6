//! What the engine tells berth about a Windows container beyond its OCI spec, and
//! what translation needs to know about the host.

use std::collections::HashMap;
use std::io;

use oci_spec::runtime::Spec;
use serde::Deserialize;

/// The `Owner` berth writes into HCS documents unless told otherwise.
pub const DEFAULT_OWNER: &str = "berth";

/// Options for creating a Windows container (the reference's create options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// `Owner` of the compute system; [`DEFAULT_OWNER`] when `None`.
    pub owner: Option<String>,
    /// The image layers; required.
    pub layers: Option<LayerOptions>,
    /// Process or Hyper-V isolation.
    pub isolation: Isolation,
    /// Run a servicing (update) container to completion.
    pub servicing: bool,
    /// Ask HCS to ignore flushes while the container boots.
    pub ignore_flushes_during_boot: bool,
    /// Networking.
    pub network: NetworkOptions,
    /// A credential spec, passed to HCS as given.
    pub credentials: Option<String>,
    /// A CPU cap in per cent (1..=100), for engines that still speak per cent;
    /// used only when the spec has no `windows.resources.cpu.maximum`.
    pub cpu_percent: Option<u32>,
}

impl CreateOptions {
    /// Options taken from the spec's own `windows` section, as containerd passes
    /// them: `layerFolders` (top-most first, the scratch folder last), `hyperv`,
    /// `network`, `servicing`, `ignoreFlushesDuringBoot` and `credentialSpec`.
    /// The Hyper-V sandbox path is not in the OCI spec and is left empty.
    pub fn from_spec(spec: &Spec) -> Self {
        let Some(w) = spec.windows() else {
            return Self::default();
        };
        // oci-spec 0.10 lacks some of these getters (and spells `utilityVMPath` as
        // `utilityVmPath`); read the section back through serde.
        let w: WindowsSection = serde_json::to_value(w)
            .and_then(serde_json::from_value)
            .unwrap_or_default();
        let layers = w.layer_folders.and_then(|mut folders| {
            let folder = folders.pop()?;
            Some(LayerOptions {
                paths: folders,
                folder,
            })
        });
        let isolation = match w.hyperv {
            Some(h) => Isolation::HyperV {
                sandbox_path: String::new(),
                utility_vm_path: h.utility_vm_path.filter(|p| !p.is_empty()),
            },
            None => Isolation::Process,
        };
        let net = w.network.unwrap_or_default();
        Self {
            owner: None,
            layers,
            isolation,
            servicing: w.servicing.unwrap_or(false),
            ignore_flushes_during_boot: w.ignore_flushes_during_boot.unwrap_or(false),
            network: NetworkOptions {
                endpoints: net.endpoint_list.unwrap_or_default(),
                namespace: net.network_namespace.filter(|n| !n.is_empty()),
                allow_unqualified_dns_query: net.allow_unqualified_dns_query.unwrap_or(false),
                dns_search_list: net.dns_search_list.unwrap_or_default(),
                shared_container: net.network_shared_container_name.filter(|n| !n.is_empty()),
            },
            credentials: w
                .credential_spec
                .filter(|c| !c.is_empty())
                .and_then(|c| serde_json::to_string(&c).ok()),
            cpu_percent: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct WindowsSection {
    layer_folders: Option<Vec<String>>,
    credential_spec: Option<HashMap<String, serde_json::Value>>,
    servicing: Option<bool>,
    ignore_flushes_during_boot: Option<bool>,
    hyperv: Option<HyperVSection>,
    network: Option<NetworkSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct HyperVSection {
    #[serde(alias = "utilityVMPath")]
    utility_vm_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct NetworkSection {
    endpoint_list: Option<Vec<String>>,
    #[serde(rename = "allowUnqualifiedDNSQuery")]
    allow_unqualified_dns_query: Option<bool>,
    #[serde(rename = "DNSSearchList")]
    dns_search_list: Option<Vec<String>>,
    network_shared_container_name: Option<String>,
    network_namespace: Option<String>,
}

/// The image layers of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerOptions {
    /// Read-only layer folders, top-most first.
    pub paths: Vec<String>,
    /// The writable layer folder (may be empty for Hyper-V isolation).
    pub folder: String,
}

/// How the container is isolated from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Windows Server container: shares the host kernel.
    #[default]
    Process,
    /// Hyper-V container: runs in a utility VM.
    HyperV {
        /// Folder of unmounted sandboxes (`%root%\windowsfilter`).
        sandbox_path: String,
        /// The utility VM image; searched for in the layers when `None`.
        utility_vm_path: Option<String>,
    },
}

/// Networking of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkOptions {
    /// HNS endpoint ids to attach (schema 1).
    pub endpoints: Vec<String>,
    /// The HNS namespace GUID the endpoints live in (schema 2).
    pub namespace: Option<String>,
    /// Resolve unqualified DNS names.
    pub allow_unqualified_dns_query: bool,
    /// DNS suffixes to search.
    pub dns_search_list: Vec<String>,
    /// Share the network stack of this container.
    pub shared_container: Option<String>,
}

/// What translation needs to know about the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostInfo {
    /// Logical processors of the host; CPU counts are clamped to it.
    pub processor_count: u32,
}

impl HostInfo {
    /// The running host's processor count (at least 1).
    pub fn detect() -> Self {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            processor_count: u32::try_from(n).unwrap_or(u32::MAX),
        }
    }
}

/// Layer lookups that need the host: GUIDs (vmcompute's NameToGuid on Windows)
/// and the utility VM image. Tests pass a fake.
pub trait LayerResolver {
    /// The GUID HCS uses for the layer whose folder is named `folder_name`,
    /// in canonical lower-case `8-4-4-4-12` form.
    fn layer_guid(&self, folder_name: &str) -> io::Result<String>;

    /// Whether `path` (a layer's `UtilityVM` folder) exists. A not-found error
    /// must be `Ok(false)`; any other error is returned as is.
    fn utility_vm_exists(&self, path: &str) -> io::Result<bool> {
        match std::fs::metadata(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn options_from_the_spec_windows_section() {
        let spec: Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "windows": {
                "layerFolders": ["C:\\l\\top", "C:\\l\\base", "C:\\scratch"],
                "hyperv": { "utilityVmPath": "C:\\uvm" },
                "network": {
                    "endpointList": ["e1"], "allowUnqualifiedDNSQuery": true,
                    "DNSSearchList": ["a"], "networkSharedContainerName": "other",
                    "networkNamespace": "ns",
                },
                "servicing": true,
                "ignoreFlushesDuringBoot": true,
                "credentialSpec": { "CmsPlugins": ["ActiveDirectory"] },
            },
        }))
        .unwrap();
        let o = CreateOptions::from_spec(&spec);
        assert_eq!(
            o.layers,
            Some(LayerOptions {
                paths: vec!["C:\\l\\top".into(), "C:\\l\\base".into()],
                folder: "C:\\scratch".into(),
            })
        );
        assert_eq!(
            o.isolation,
            Isolation::HyperV {
                sandbox_path: String::new(),
                utility_vm_path: Some("C:\\uvm".into())
            }
        );
        assert!(o.servicing && o.ignore_flushes_during_boot);
        assert!(o.network.allow_unqualified_dns_query);
        assert_eq!(o.network.dns_search_list, ["a"]);
        assert_eq!(o.network.endpoints, ["e1"]);
        assert_eq!(o.network.namespace.as_deref(), Some("ns"));
        assert_eq!(o.network.shared_container.as_deref(), Some("other"));
        assert_eq!(
            o.credentials.as_deref(),
            Some(r#"{"CmsPlugins":["ActiveDirectory"]}"#)
        );
        assert_eq!(
            CreateOptions::from_spec(
                &serde_json::from_value(json!({"ociVersion": "1.0.2"})).unwrap()
            ),
            CreateOptions::default()
        );
    }
}
