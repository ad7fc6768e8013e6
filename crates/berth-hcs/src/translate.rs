//! Pure translation of an OCI runtime spec plus [`CreateOptions`] into the HCS
//! documents that create a container: schema 1 ([`to_v1`], vmcompute.dll) and
//! schema 2 ([`to_v2`], computecore.dll).
//!
//! Nothing here touches the host: the host's processor count comes in as
//! [`HostInfo`] and layer lookups through a [`LayerResolver`].

use std::io;

use oci_spec::runtime::Spec;
use serde::Deserialize;

use crate::documents::{v1, v2};
use crate::options::{
    CreateOptions, HostInfo, Isolation, LayerOptions, LayerResolver, DEFAULT_OWNER,
};

/// The error of translating a spec into an HCS document, named for the step.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// No layer option, or one without paths.
    #[error("no layer option or paths were supplied to the runtime")]
    Layers,
    /// Probing a layer for its utility VM failed other than with not-found.
    #[error("cannot probe utility VM image {path}")]
    UtilityVmProbe {
        /// The path probed.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Hyper-V isolation, and no layer has a utility VM.
    #[error("utility VM image could not be found")]
    UtilityVm,
    /// A layer's GUID could not be resolved.
    #[error("cannot resolve the GUID of layer {layer}")]
    LayerId {
        /// The layer folder.
        layer: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Process isolation without a scratch volume in the spec's root path.
    #[error("process isolation needs the scratch volume path (\\\\?\\Volume{{GUID}}) as the spec's root path")]
    VolumePath,
    /// Something schema 2 cannot express yet.
    #[error("{what} is not supported with HCS schema 2 yet")]
    Unsupported {
        /// What.
        what: &'static str,
    },
    /// Schema 2 attaches endpoints through a namespace, and none was given.
    #[error("network endpoints need a network namespace with HCS schema 2")]
    NetworkNamespace,
}

/// Resource limits common to both schemas, after the reference's rules.
#[derive(Debug, Default, PartialEq, Eq)]
struct Limits {
    processor_count: u32,
    processor_weight: u64,
    processor_maximum: u32,
    memory_mb: u64,
    storage_iops: u64,
    storage_bps: u64,
    sandbox_size: u64,
}

/// `windows.resources` of the spec. oci-spec 0.10 declares copy getters on these
/// types without deriving them, so the values are read back through serde.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Resources {
    memory: Option<MemoryResources>,
    cpu: Option<CpuResources>,
    storage: Option<StorageResources>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct MemoryResources {
    limit: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct CpuResources {
    count: Option<u64>,
    shares: Option<u16>,
    maximum: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct StorageResources {
    iops: Option<u64>,
    bps: Option<u64>,
    sandbox_size: Option<u64>,
}

fn resources(spec: &Spec) -> Resources {
    let Some(res) = spec.windows().as_ref().and_then(|w| w.resources()) else {
        return Resources::default();
    };
    serde_json::to_value(res)
        .and_then(serde_json::from_value)
        .unwrap_or_else(|e| {
            // Both sides are plain numbers; this cannot fail short of a serde bug.
            tracing::warn!(error = %e, "cannot read windows.resources of the spec");
            Resources::default()
        })
}

fn limits(spec: &Spec, opts: &CreateOptions, host: &HostInfo) -> Limits {
    let res = resources(spec);
    let mut l = Limits::default();
    let cpu = res.cpu.unwrap_or_default();
    if let Some(count) = cpu.count {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        l.processor_count = if host.processor_count > 0 && count > host.processor_count {
            tracing::warn!(
                requested = count,
                host = host.processor_count,
                "CPU count clamped to the host's processor count"
            );
            host.processor_count
        } else {
            count
        };
    }
    if let Some(shares) = cpu.shares {
        l.processor_weight = u64::from(shares);
    }
    // OCI's `maximum` is already per cent × 100; an engine that speaks per cent
    // passes it in the options, and it is scaled as the reference did.
    match (cpu.maximum, opts.cpu_percent) {
        (Some(max), _) => l.processor_maximum = u32::from(max).min(10_000),
        (None, Some(pct)) if pct > 0 => l.processor_maximum = pct.min(100) * 100,
        _ => {}
    }
    if let Some(limit) = res.memory.and_then(|m| m.limit) {
        l.memory_mb = limit / 1024 / 1024;
    }
    if let Some(st) = res.storage {
        l.storage_bps = st.bps.unwrap_or(0);
        l.storage_iops = st.iops.unwrap_or(0);
        l.sandbox_size = st.sandbox_size.unwrap_or(0);
    }
    l
}

fn layer_options(opts: &CreateOptions) -> Result<&LayerOptions, TranslateError> {
    match &opts.layers {
        Some(l) if !l.paths.is_empty() => Ok(l),
        _ => Err(TranslateError::Layers),
    }
}

/// Windows `filepath.Join(path, name)` for a layer folder.
fn join_windows(path: &str, name: &str) -> String {
    let base = path.trim_end_matches(['\\', '/']);
    format!("{base}\\{name}")
}

/// The last component of a Windows path.
fn file_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches(['\\', '/']);
    trimmed.rsplit(['\\', '/']).next().unwrap_or(trimmed)
}

/// The utility VM image: the given path, else the first layer (top-most first)
/// that has a `UtilityVM` folder.
fn utility_vm(
    explicit: Option<&str>,
    layers: &LayerOptions,
    resolver: &dyn LayerResolver,
) -> Result<String, TranslateError> {
    if let Some(p) = explicit.filter(|p| !p.is_empty()) {
        return Ok(p.to_owned());
    }
    for layer in &layers.paths {
        let path = join_windows(layer, "UtilityVM");
        match resolver.utility_vm_exists(&path) {
            Ok(true) => return Ok(path),
            Ok(false) => {}
            Err(source) => return Err(TranslateError::UtilityVmProbe { path, source }),
        }
    }
    Err(TranslateError::UtilityVm)
}

/// `(GUID, path)` of each layer, top-most first.
fn resolve_layers(
    layers: &LayerOptions,
    resolver: &dyn LayerResolver,
) -> Result<Vec<(String, String)>, TranslateError> {
    layers
        .paths
        .iter()
        .map(|path| {
            resolver
                .layer_guid(file_name(path))
                .map(|id| (id, path.clone()))
                .map_err(|source| TranslateError::LayerId {
                    layer: path.clone(),
                    source,
                })
        })
        .collect()
}

/// `(host path, container path, read-only)` of each mount.
fn mounts(spec: &Spec) -> Vec<(String, String, bool)> {
    spec.mounts()
        .iter()
        .flatten()
        .map(|m| {
            let source = m
                .source()
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let read_only = m
                .options()
                .iter()
                .flatten()
                .any(|o| o.eq_ignore_ascii_case("ro"));
            (
                source,
                m.destination().to_string_lossy().into_owned(),
                read_only,
            )
        })
        .collect()
}

fn volume_path(spec: &Spec) -> Result<String, TranslateError> {
    spec.root()
        .as_ref()
        .map(|r| r.path().to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .ok_or(TranslateError::VolumePath)
}

fn owner(opts: &CreateOptions) -> String {
    opts.owner
        .clone()
        .unwrap_or_else(|| DEFAULT_OWNER.to_owned())
}

/// The schema 1 `ContainerConfig` for container `id` (vmcompute.dll).
pub fn to_v1(
    id: &str,
    spec: &Spec,
    opts: &CreateOptions,
    resolver: &dyn LayerResolver,
    host: &HostInfo,
) -> Result<v1::ContainerConfig, TranslateError> {
    let layers = layer_options(opts)?;
    let l = limits(spec, opts, host);
    let mut cfg = v1::ContainerConfig {
        system_type: v1::SYSTEM_TYPE_CONTAINER.to_owned(),
        name: id.to_owned(),
        owner: owner(opts),
        ignore_flushes_during_boot: opts.ignore_flushes_during_boot,
        host_name: spec.hostname().clone().unwrap_or_default(),
        processor_count: l.processor_count,
        processor_weight: l.processor_weight,
        processor_maximum: i64::from(l.processor_maximum),
        memory_maximum_in_mb: i64::try_from(l.memory_mb).unwrap_or(i64::MAX),
        storage_bandwidth_maximum: l.storage_bps,
        storage_iops_maximum: l.storage_iops,
        storage_sandbox_size: l.sandbox_size,
        servicing: opts.servicing,
        endpoint_list: opts.network.endpoints.clone(),
        allow_unqualified_dns_query: opts.network.allow_unqualified_dns_query,
        dns_search_list: opts.network.dns_search_list.join(","),
        network_shared_container_name: opts.network.shared_container.clone().unwrap_or_default(),
        credentials: opts.credentials.clone().unwrap_or_default(),
        layer_folder_path: layers.folder.clone(),
        ..Default::default()
    };
    match &opts.isolation {
        Isolation::HyperV {
            sandbox_path,
            utility_vm_path,
        } => {
            cfg.hv_partition = true;
            cfg.sandbox_path = sandbox_path.clone();
            cfg.hv_runtime = Some(v1::HvRuntime {
                image_path: utility_vm(utility_vm_path.as_deref(), layers, resolver)?,
                skip_template: false,
            });
        }
        Isolation::Process => cfg.volume_path = volume_path(spec)?,
    }
    cfg.layers = resolve_layers(layers, resolver)?
        .into_iter()
        .map(|(id, path)| v1::Layer { id, path })
        .collect();
    cfg.mapped_directories = mounts(spec)
        .into_iter()
        .map(|(host_path, container_path, read_only)| v1::MappedDir {
            host_path,
            container_path,
            read_only,
            ..Default::default()
        })
        .collect();
    Ok(cfg)
}

/// The schema 2 `ComputeSystem` document (computecore.dll) for a process-isolated
/// container. Hyper-V isolation, servicing and credential specs need machinery
/// berth does not drive under schema 2 yet and fail with
/// [`TranslateError::Unsupported`]; the flush hint has no schema 2 equivalent and
/// is dropped.
pub fn to_v2(
    spec: &Spec,
    opts: &CreateOptions,
    resolver: &dyn LayerResolver,
    host: &HostInfo,
) -> Result<v2::ComputeSystem, TranslateError> {
    let layers = layer_options(opts)?;
    if matches!(opts.isolation, Isolation::HyperV { .. }) {
        return Err(TranslateError::Unsupported {
            what: "Hyper-V isolation (berth does not create utility VMs)",
        });
    }
    if opts.servicing {
        return Err(TranslateError::Unsupported {
            what: "a servicing container",
        });
    }
    if opts.credentials.as_deref().is_some_and(|c| !c.is_empty()) {
        return Err(TranslateError::Unsupported {
            what: "a credential spec (it needs a Container Credential Guard instance)",
        });
    }
    let net = &opts.network;
    if !net.endpoints.is_empty() && net.namespace.as_deref().is_none_or(str::is_empty) {
        return Err(TranslateError::NetworkNamespace);
    }
    let l = limits(spec, opts, host);
    let saturate = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);

    let storage = v2::Storage {
        layers: resolve_layers(layers, resolver)?
            .into_iter()
            .map(|(id, path)| v2::Layer { id, path })
            .collect(),
        path: volume_path(spec)?,
        qos: (l.storage_iops != 0 || l.storage_bps != 0).then(|| v2::StorageQoS {
            iops_maximum: saturate(l.storage_iops),
            bandwidth_maximum: saturate(l.storage_bps),
        }),
    };
    let hostname = spec.hostname().clone().unwrap_or_default();
    let processor = v2::Processor {
        count: l.processor_count,
        maximum: l.processor_maximum,
        weight: saturate(l.processor_weight),
    };
    let networking = v2::Networking {
        allow_unqualified_dns_query: net.allow_unqualified_dns_query,
        dns_search_list: net.dns_search_list.join(","),
        network_shared_container_name: net.shared_container.clone().unwrap_or_default(),
        namespace: net.namespace.clone().unwrap_or_default(),
    };
    let container = v2::Container {
        guest_os: (!hostname.is_empty()).then_some(v2::GuestOs {
            host_name: hostname,
        }),
        storage: Some(storage),
        mapped_directories: mounts(spec)
            .into_iter()
            .map(
                |(host_path, container_path, read_only)| v2::MappedDirectory {
                    host_path,
                    container_path,
                    read_only,
                },
            )
            .collect(),
        memory: (l.memory_mb != 0).then_some(v2::Memory {
            size_in_mb: l.memory_mb,
        }),
        processor: (processor != v2::Processor::default()).then_some(processor),
        networking: (networking != v2::Networking::default()).then_some(networking),
    };
    Ok(v2::ComputeSystem {
        owner: owner(opts),
        schema_version: v2::SCHEMA_VERSION,
        container: Some(container),
        // Containers outlive the engine (berth restores them), so a closed
        // handle must not take the container down.
        should_terminate_on_last_handle_closed: false,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests;
