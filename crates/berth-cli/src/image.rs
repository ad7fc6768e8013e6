//! `berth image import|ls|rm|inspect`, and `berth run IMAGE`: the image's config
//! applied as Docker applies it.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use berth::image::{Image, ImageError, ImageStore, ImportOptions, Reference};
use berth::{ContainerId, CreateOptions};
use clap::{Args, Subcommand};

use crate::cli::{Cli, RunArgs};

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import an OCI image layout (directory or tar) or a `docker save` archive.
    Import {
        /// Name for images the archive names only by a tag (or not at all): REPO
        /// takes the archive's tag, REPO:TAG names the tag as well.
        #[arg(long)]
        name: Option<String>,
        /// The layout directory or archive.
        file: PathBuf,
    },
    /// List images.
    #[command(alias = "list")]
    Ls {
        /// Only ids.
        #[arg(short, long)]
        quiet: bool,
        /// `json`: one object per line.
        #[arg(long)]
        format: Option<String>,
    },
    /// Remove images (a name, or the image when named by id or by its last name).
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show images as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub async fn dispatch(cli: &Cli, args: &ImageArgs) -> u8 {
    let store = ImageStore::new(&cli.data_root);
    match &args.command {
        ImageCommand::Import { name, file } => match import(&store, file, name.clone()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("berth: image import {}: {e:#}", file.display());
                1
            }
        },
        ImageCommand::Ls { quiet, format } => match ls(&store, *quiet, format.as_deref()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("berth: image ls: {e:#}");
                1
            }
        },
        ImageCommand::Rm { names } => {
            let mut code = 0;
            for n in names {
                match store.remove(n) {
                    Ok(r) => {
                        for u in r.untagged {
                            println!("Untagged: {u}");
                        }
                        if let Some(d) = r.deleted {
                            println!("Deleted: {d}");
                        }
                    }
                    Err(e) => {
                        eprintln!("berth: image rm {n}: {e}");
                        code = 1;
                    }
                }
            }
            code
        }
        ImageCommand::Inspect { names } => {
            let mut out = Vec::new();
            let mut code = 0;
            for n in names {
                match store.get(n) {
                    Ok(i) => out.push(inspect_json(&store, &i)),
                    Err(e) => {
                        eprintln!("berth: image inspect {n}: {e}");
                        code = 1;
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            code
        }
    }
}

fn import(store: &ImageStore, file: &std::path::Path, name: Option<String>) -> Result<()> {
    let tty = std::io::stderr().is_terminal();
    let mut bar = |done: u64, total: u64| {
        if tty {
            let width = 30usize;
            let filled = (done.min(total) as f64 / total.max(1) as f64 * width as f64) as usize;
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\rImporting [{}{}] {} / {}",
                "=".repeat(filled),
                " ".repeat(width - filled),
                human(done),
                human(total)
            );
            let _ = err.flush();
        }
    };
    let result = store.import(file, &ImportOptions { name }, &mut bar);
    if tty {
        eprintln!();
    }
    let images = result?;
    for i in images {
        if i.names.is_empty() {
            println!("Loaded image ID: {}", i.id);
        }
        for n in &i.names {
            println!("Loaded image: {n}");
        }
    }
    Ok(())
}

/// `12.3MB`, as Docker shows sizes.
fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", units[u])
    }
}

fn ls(store: &ImageStore, quiet: bool, format: Option<&str>) -> Result<()> {
    let images = store.list()?;
    if quiet {
        for i in &images {
            println!("{}", &i.hex()[..12]);
        }
        return Ok(());
    }
    match format {
        Some("json") => {
            for i in &images {
                println!(
                    "{}",
                    serde_json::json!({
                        "Id": i.id,
                        "RepoTags": i.names,
                        "Created": i.created,
                        "Size": i.size,
                    })
                );
            }
        }
        Some(other) => bail!("--format {other:?}: only json is known"),
        None => {
            let mut rows = vec![[
                "REPOSITORY".to_owned(),
                "TAG".into(),
                "IMAGE ID".into(),
                "CREATED".into(),
                "SIZE".into(),
            ]];
            for i in &images {
                let created = i.created.clone().unwrap_or_default();
                let created = created.get(..19).unwrap_or(&created).replace('T', " ");
                let id = i.hex()[..12].to_owned();
                let names: Vec<(String, String)> = if i.names.is_empty() {
                    vec![("<none>".into(), "<none>".into())]
                } else {
                    i.names
                        .iter()
                        .map(|n| match Reference::parse(n) {
                            Ok(r) => (
                                r.familiar_repository(),
                                r.tag.clone().unwrap_or_else(|| "<none>".into()),
                            ),
                            Err(_) => (n.clone(), "<none>".into()),
                        })
                        .collect()
                };
                for (repo, tag) in names {
                    rows.push([repo, tag, id.clone(), created.clone(), human(i.size)]);
                }
            }
            let widths: Vec<usize> = (0..5)
                .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
                .collect();
            for r in rows {
                let line: Vec<String> = r
                    .iter()
                    .zip(&widths)
                    .map(|(s, w)| format!("{s:<w$}"))
                    .collect();
                println!("{}", line.join("   ").trim_end());
            }
        }
    }
    Ok(())
}

fn inspect_json(store: &ImageStore, i: &Image) -> serde_json::Value {
    let (os, arch) = i.platform.split_once('/').unwrap_or(("linux", ""));
    serde_json::json!({
        "Id": i.id,
        "RepoTags": i.names,
        "Manifest": i.manifest,
        "Created": i.created,
        "Imported": i.imported.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "Size": i.size,
        "Os": os,
        "Architecture": arch,
        "Config": {
            "User": i.config.user,
            "Env": i.config.env,
            "Entrypoint": i.config.entrypoint,
            "Cmd": i.config.cmd,
            "WorkingDir": i.config.working_dir,
        },
        "RootFS": {"Type": "layers", "Layers": i.layers},
        "LayerPaths": store.layers(i).read_only.iter().rev().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "Containers": store.users(&i.id),
    })
}

/// The spec and options of `berth run IMAGE [CMD...]`: the image's Entrypoint,
/// Cmd, Env, WorkingDir and User, overridden by the command and flags given.
pub fn build_run(
    cli: &Cli,
    id: &ContainerId,
    a: &RunArgs,
    image: &[String],
    after_dashdash: Vec<String>,
) -> Result<(oci_spec::runtime::Spec, CreateOptions)> {
    let reference = &image[0];
    let typed = crate::commands::image_and_cmd(image, &after_dashdash);
    if a.rootfs.is_some() || a.bundle.is_some() {
        bail!(
            "parse arguments: an IMAGE ({reference}) and --rootfs or --bundle exclude each other"
        );
    }
    // Docker's form `IMAGE CMD...`, or `IMAGE -- CMD...`.
    // clap keeps a `--` that follows IMAGE among the values.
    let rest = match image.get(1).map(String::as_str) {
        Some("--") => &image[2..],
        _ => &image[1..],
    };
    let mut cmd: Vec<String> = rest.to_vec();
    cmd.extend(after_dashdash);
    let store = ImageStore::new(&cli.data_root);
    let found = store.get(reference).map_err(|e| match e {
        ImageError::NotFound(_) | ImageError::Reference(_) => anyhow!(
            "find image {reference:?}: no such image; to run a command on the default root filesystem, put it after `--`: berth run -- {}",
            typed
        ),
        e => anyhow!("find image {reference:?}: {e}"),
    })?;
    let cfg = &found.config;
    let mut args: Vec<String> = cfg.entrypoint.clone().unwrap_or_default();
    if cmd.is_empty() {
        args.extend(cfg.cmd.clone().unwrap_or_default());
    } else {
        args.extend(cmd);
    }
    if args.is_empty() {
        bail!("find command: the image {reference} has no Entrypoint or Cmd: give a command after the image");
    }
    let mut a = a.clone();
    let mut env = cfg.env.clone().unwrap_or_default();
    env.append(&mut a.env);
    a.env = env;
    if a.workdir.is_none() {
        a.workdir = cfg.working_dir.clone().filter(|w| !w.is_empty());
    }
    if a.user.is_none() {
        a.user = cfg.user.clone().filter(|u| !u.is_empty());
    }
    let (mut spec, mut options) = crate::commands::build_spec(id, &a, args)?;
    options.default_rootfs = false;
    options.layers = Some(store.layers(&found));
    options.image = Some(
        found
            .names
            .iter()
            .find(|n| Reference::parse(reference).is_ok_and(|r| &r.to_string() == *n))
            .cloned()
            .unwrap_or_else(|| found.id.clone()),
    );
    let mut ann = spec.annotations().clone().unwrap_or_default();
    ann.insert(berth::image::IMAGE_ID_ANNOTATION.into(), found.id.clone());
    spec.set_annotations(Some(ann));
    Ok((spec, options))
}
