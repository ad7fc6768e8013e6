//! Parsing of the flags containerd passes to a shim (Go `flag` syntax: `-name value`,
//! `-name=value`, `--name value`, boolean `-debug`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// Environment variable naming the shim's state directory when berth (not
/// containerd) starts the shim: `<root>/<id>`.
pub const ENV_STATE_DIR: &str = "BERTH_SHIM_STATE_DIR";
/// Environment variable naming the container's record directory under the data root.
pub const ENV_DATA_DIR: &str = "BERTH_SHIM_DATA_DIR";
/// Environment variable giving the log limit per process, in bytes.
pub const ENV_LOG_MAX: &str = "BERTH_SHIM_LOG_MAX";
/// Environment variable naming libcontainer's state root.
pub const ENV_RUNTIME_ROOT: &str = "BERTH_SHIM_RUNTIME_ROOT";

/// The shim's command line.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub namespace: String,
    pub id: String,
    pub address: String,
    pub publish_binary: String,
    pub bundle: Option<PathBuf>,
    pub socket: Option<String>,
    pub debug: bool,
    pub version: bool,
    pub info: bool,
    pub action: Option<String>,
}

impl Flags {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut f = Flags {
            namespace: "default".into(),
            ..Default::default()
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                if f.action.is_some() {
                    bail!("unexpected argument {arg:?}");
                }
                f.action = Some(arg.clone());
                continue;
            };
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (name, None),
            };
            let mut value = || -> Result<String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it
                        .next()
                        .cloned()
                        .with_context(|| format!("flag -{name} needs a value")),
                }
            };
            match name {
                "namespace" => f.namespace = value()?,
                "id" => f.id = value()?,
                "address" => f.address = value()?,
                "publish-binary" => f.publish_binary = value()?,
                "bundle" => f.bundle = Some(value()?.into()),
                "socket" => f.socket = Some(value()?),
                "debug" => f.debug = inline.as_deref() != Some("false"),
                "v" | "version" => f.version = true,
                "info" => f.info = true,
                _ => bail!("unknown flag -{name}"),
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_containerd_start_line() {
        let f = Flags::parse(&s(&[
            "-namespace",
            "k8s.io",
            "-address",
            "/run/containerd/containerd.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "abc",
            "-debug",
            "start",
        ]))
        .unwrap();
        assert_eq!(f.namespace, "k8s.io");
        assert_eq!(f.id, "abc");
        assert!(f.debug);
        assert_eq!(f.action.as_deref(), Some("start"));
    }

    #[test]
    fn parses_inline_values_and_rejects_unknown() {
        let f = Flags::parse(&s(&["--id=x", "-bundle=/b", "delete"])).unwrap();
        assert_eq!(f.id, "x");
        assert_eq!(f.bundle, Some(PathBuf::from("/b")));
        assert!(Flags::parse(&s(&["-bogus", "1"])).is_err());
        assert!(Flags::parse(&s(&["-id"])).is_err());
    }
}
