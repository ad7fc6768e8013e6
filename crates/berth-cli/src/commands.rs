//! One function per verb; each maps its outcome to the exit codes of CLI.md.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use berth::{
    Client, Config, ContainerId, ContainerStatus, CreateOptions, ErrorKind, ProcessId, StdioRequest,
};
use berth_types::OPEN_STDIN_ANNOTATION;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::{Cli, Command, ExecArgs, PsArgs, RunArgs};
use crate::{names, output, term};

/// Exit code of berth's own failures before the process ran.
const EXIT_BERTH: u8 = 125;

pub(crate) fn shim_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_SHIM") {
        return PathBuf::from(p);
    }
    const NAME: &str = "containerd-shim-berth-v1";
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        if dir.join(NAME).is_file() {
            return dir.join(NAME);
        }
    }
    PathBuf::from(NAME)
}

fn client(cli: &Cli) -> Client {
    let config = Config {
        root: cli.root.clone(),
        data_root: cli.data_root.clone(),
        shim_binary: shim_binary(),
        log_max: berth::spec::parse::parse_bytes(&cli.log_max)
            .ok()
            .map(|b| b as u64),
        criu: cli.criu.clone(),
    };
    Client::new(config, |_: &berth::Event| {})
}

/// `berth: <verb> <id>: <step>: <cause>` on stderr.
pub(crate) fn report(verb: &str, id: &str, e: &dyn std::fmt::Display) {
    if id.is_empty() {
        eprintln!("berth: {verb}: {e}");
    } else {
        eprintln!("berth: {verb} {id}: {e}");
    }
}

pub(crate) fn report_berth(verb: &str, e: &berth::Error) {
    eprintln!("berth: {verb} {}: {}: {}", e.id, e.step, e.message);
}

pub async fn dispatch(cli: Cli) -> u8 {
    if let Err(e) = berth::spec::parse::parse_bytes(&cli.log_max) {
        eprintln!("berth: --log-max {:?}: {e}", cli.log_max);
        return EXIT_BERTH;
    }
    let c = client(&cli);
    match &cli.command {
        Command::Run(args) => run(&cli, &c, args).await,
        Command::Create(args) => create(&cli, &c, args).await,
        Command::Start {
            attach,
            interactive,
            names,
        } => start(&cli, &c, *attach, *interactive, names).await,
        Command::Image(args) => crate::image::dispatch(&cli, args).await,
        Command::Checkpoint(cmd) => crate::checkpoint::dispatch(&cli, &c, cmd).await,
        Command::Ps(args) => exit_of("ps", "", ps(&c, args).await),
        Command::Inspect { names } => {
            let mut out = Vec::new();
            let mut code = 0;
            for name in names {
                match inspect_one(&cli, &c, name).await {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        report_any("inspect", name, &e);
                        code = 1;
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            code
        }
        Command::Exec(args) => exec(&cli, &c, args).await,
        Command::Kill {
            signal,
            process_id,
            name,
        } => exit_of(
            "kill",
            name,
            kill(&cli, &c, name, signal, process_id.as_deref()).await,
        ),
        Command::Stop { time, names } => {
            let mut code = 0;
            for name in names {
                match stop(&cli, &c, name, *time).await {
                    Ok(()) => println!("{name}"),
                    Err(e) => {
                        report_any("stop", name, &e);
                        code = 1;
                    }
                }
            }
            code
        }
        Command::Restart { time, names } => {
            let mut code = 0;
            for name in names {
                match stop(&cli, &c, name, *time).await {
                    // Prints the name once it runs again, as Docker's does.
                    Ok(()) => {
                        code = code
                            .max(start(&cli, &c, false, false, std::slice::from_ref(name)).await)
                    }
                    Err(e) => {
                        report_any("restart", name, &e);
                        code = 1;
                    }
                }
            }
            code
        }
        Command::Rm { force, names } => {
            let mut code = 0;
            for name in names {
                match rm(&cli, &c, name, *force).await {
                    Ok(()) => println!("{name}"),
                    Err(e) => {
                        report_any("rm", name, &e);
                        code = 1;
                    }
                }
            }
            code
        }
        Command::Pause { names } => crate::observe::freezer(&cli, &c, names, true).await,
        Command::Resume { names } => crate::observe::freezer(&cli, &c, names, false).await,
        Command::Stats(args) => crate::observe::stats(&cli, &c, args).await,
        Command::Top { name } => crate::observe::top(&cli, &c, name).await,
        Command::Update(args) => crate::observe::update(&cli, &c, args).await,
        Command::Spec => match crate::commands::default_spec() {
            Ok(s) => {
                println!("{s}");
                0
            }
            Err(e) => {
                report("spec", "", &format!("{e:#}"));
                1
            }
        },
        Command::Logs(args) => exit_of(
            "logs",
            &args.name,
            crate::logs::logs(&cli.data_root, &c, args).await,
        ),
        Command::Events(args) => exit_of(
            "events",
            "",
            crate::logs::events(&cli.root, &cli.data_root, args).await,
        ),
        Command::Version => {
            println!("berth version {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::Info => crate::info::print(&cli),
    }
}

/// Reports `e` as `berth: <verb> <id>: <step>: <cause>`, taking the step and the
/// cause from berth's error when that is what it is (its own text would repeat
/// the verb and the id).
pub(crate) fn report_any(verb: &str, id: &str, e: &anyhow::Error) {
    match e.downcast_ref::<berth::Error>() {
        Some(be) => report_berth(verb, be),
        None => report(verb, id, &format!("{e:#}")),
    }
}

fn exit_of(verb: &str, id: &str, r: Result<()>) -> u8 {
    match r {
        Ok(()) => 0,
        // `berth logs x | head`: the reader went away; end as a Unix tool does.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            141
        }
        Err(e) => {
            report_any(verb, id, &e);
            1
        }
    }
}

fn random_id() -> String {
    let mut buf = [0u8; 6];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The default config.json that `berth spec` prints.
pub fn default_spec() -> Result<String> {
    // A template, as `runc spec` prints: no id of its own, so no cgroup path (the
    // one a bundle runs under is set by `run` from its id) and a relative root.
    let opts = berth::spec::SpecOptions {
        id: "berth".into(),
        args: vec!["sh".into()],
        ..Default::default()
    };
    let mut spec = berth::spec::build(&opts)?;
    if let Some(mut linux) = spec.linux().clone() {
        linux.set_cgroups_path(None);
        spec.set_linux(Some(linux));
    }
    Ok(serde_json::to_string_pretty(&spec)?)
}

pub(crate) fn build_spec(
    id: &ContainerId,
    a: &RunArgs,
    cmd: Vec<String>,
) -> Result<(oci_spec::runtime::Spec, CreateOptions)> {
    use berth::spec::parse;
    let mut options = CreateOptions {
        user: a.user.clone(),
        ..Default::default()
    };
    if let Some(bundle) = &a.bundle {
        let path = bundle.join("config.json");
        // Read and parse here rather than with `Spec::load`, whose errors drop the cause.
        let bytes =
            std::fs::read(&path).map_err(|e| anyhow!("load bundle: {}: {e}", path.display()))?;
        let mut spec: oci_spec::runtime::Spec = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow!("load bundle: {}: {e}", path.display()))?;
        if let Some(mut linux) = spec.linux().clone() {
            if linux.cgroups_path().is_none() {
                linux.set_cgroups_path(Some(Path::new("/berth").join(id.as_str())));
                spec.set_linux(Some(linux));
            }
        }
        if !cmd.is_empty() {
            let mut process = spec.process().clone().unwrap_or_default();
            process.set_args(Some(cmd));
            spec.set_process(Some(process));
        }
        // Absolute: `start` (and the shim) may run from another directory.
        options.bundle_dir = Some(std::path::absolute(bundle).unwrap_or_else(|_| bundle.clone()));
        return Ok((spec, options));
    }
    if cmd.is_empty() {
        bail!("parse arguments: no command given: use `berth run [OPTIONS] -- CMD [ARG...]`");
    }
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(
            parse::read_env_file(f).with_context(|| format!("read env file {}", f.display()))?,
        );
    }
    for e in &a.env {
        env.push(parse::parse_env(e).context("parse -e")?);
    }
    let mut opts = berth::spec::SpecOptions {
        id: id.to_string(),
        args: cmd,
        env,
        hostname: a.hostname.clone().unwrap_or_default(),
        terminal: a.tty,
        readonly_rootfs: a.read_only,
        ..Default::default()
    };
    if let Some(w) = &a.workdir {
        opts.cwd = PathBuf::from(w);
    }
    for v in &a.volume {
        opts.volumes
            .push(parse::parse_volume(v).context("parse -v")?);
    }
    for t in &a.tmpfs {
        opts.tmpfs
            .push(parse::parse_tmpfs(t).context("parse --tmpfs")?);
    }
    let r = &mut opts.resources;
    if let Some(m) = &a.memory {
        r.memory = Some(parse::parse_bytes(m).context("parse --memory")?);
    }
    if let Some(m) = &a.memory_swap {
        r.memory_swap = Some(parse::parse_memory_swap(m).context("parse --memory-swap")?);
    }
    if let Some(c) = &a.cpus {
        let (quota, period) = parse::parse_cpus(c).context("parse --cpus")?;
        r.cpu_quota = Some(quota);
        r.cpu_period = Some(period);
    }
    r.cpu_shares = a.cpu_shares;
    r.cpuset_cpus = a.cpuset_cpus.clone();
    r.pids_limit = a.pids_limit;
    opts.network = match a.network.as_deref() {
        None | Some("none") => berth::spec::Network::Private,
        Some("host") => berth::spec::Network::Host,
        Some(p) if p.starts_with('/') => berth::spec::Network::Path(PathBuf::from(p)),
        Some(other) => bail!("parse --network: {other:?} is not none, host or a namespace path"),
    };
    match &a.rootfs {
        Some(r) => opts.rootfs = std::path::absolute(r).unwrap_or_else(|_| r.clone()),
        None => options.default_rootfs = true,
    }
    let spec = berth::spec::build(&opts)?;
    Ok((spec, options))
}

/// What `run` and `create` make of their arguments: the id, the spec and the
/// options. A problem is reported (as `verb`) and answered with `Err(())`.
async fn prepare(
    cli: &Cli,
    a: &RunArgs,
    verb: &str,
) -> std::result::Result<(ContainerId, oci_spec::runtime::Spec, CreateOptions), ()> {
    let name = a.name.clone().unwrap_or_else(random_id);
    let id = match ContainerId::new(&name) {
        Ok(id) => id,
        Err(e) => {
            report(verb, "", &format!("invalid name: {e}"));
            return Err(());
        }
    };
    // Nothing is made yet: errors name the container as the user did (a random
    // id would name one that never existed).
    let shown = a.name.as_deref().unwrap_or("");
    // clap swallows the `--`; find it in the raw arguments to split IMAGE from CMD.
    let after_dashdash: Vec<String> = std::env::args().skip_while(|x| x != "--").skip(1).collect();
    let split = a.command.len().saturating_sub(after_dashdash.len());
    let (image, command) = if !after_dashdash.is_empty() && a.command[split..] == after_dashdash[..]
    {
        (a.command[..split].to_vec(), after_dashdash)
    } else {
        (a.command.clone(), Vec::new())
    };
    if let Some(first) = image.first().filter(|f| f.starts_with('-')) {
        // `command` takes hyphen values so `-- CMD -x` works; a flag before any
        // IMAGE or `--` is one that clap did not know. (No name: the random id
        // would mean nothing to the user.)
        report(
            verb,
            shown,
            &format!("parse arguments: unknown flag: {first}"),
        );
        return Err(());
    }
    if let Some(cp) = &a.checkpoint {
        let problem = if let Err(e) = ContainerId::new(cp) {
            Some(format!("invalid checkpoint name {cp:?}: {e}"))
        } else if a.name.is_none() && a.checkpoint_dir.is_none() {
            Some(
                "--checkpoint needs --name (whose checkpoints to look in) or --checkpoint-dir"
                    .into(),
            )
        } else if !command.is_empty() {
            Some("a restore runs the checkpointed processes on: give no command after --".into())
        } else {
            None
        };
        if let Some(problem) = problem {
            report(verb, shown, &problem);
            return Err(());
        }
    }
    let checkpoint = a.checkpoint.as_ref().map(|name| {
        let dir = a
            .checkpoint_dir
            .clone()
            .unwrap_or_else(|| crate::checkpoint::default_dir(&cli.data_root, &id))
            .join(name);
        // The shim works in another directory.
        std::path::absolute(&dir).unwrap_or(dir)
    });
    // A restore needs no command: the checkpointed one is what runs on, so a
    // missing or incomplete checkpoint is the error (not "no command given").
    if let Some(cp) = checkpoint.as_ref().filter(|_| command.is_empty()) {
        if let Err(e) = berth::check_checkpoint(cp) {
            report(verb, shown, &format!("read checkpoint: {e}"));
            return Err(());
        }
    }
    // A checkpoint of an image's container comes back on that image's root.
    let image = match &checkpoint {
        Some(cp) if image.is_empty() => crate::checkpoint::image_of(cp).into_iter().collect(),
        _ => image,
    };
    let command = match &checkpoint {
        Some(cp) => crate::checkpoint::args_of(cp),
        None => command,
    };
    let built = match image.first() {
        Some(_) => crate::image::build_run(cli, &id, a, &image, command),
        None => build_spec(&id, a, command),
    };
    let built = built.map(|(spec, options)| {
        (
            spec,
            CreateOptions {
                checkpoint,
                ..options
            },
        )
    });
    let (mut spec, options) = match built {
        Ok(s) => s,
        Err(e) => {
            // The spec's own refusals (-w, --memory, ...) name their step here;
            // other failures (bundle, image) name theirs already.
            let step = if e.downcast_ref::<berth::spec::SpecError>().is_some() {
                "check options: "
            } else {
                ""
            };
            report(verb, shown, &format!("{step}{e:#}"));
            return Err(());
        }
    };
    let cpu = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.cpu().clone());
    if let Some(cpu) = cpu {
        if let Err(why) =
            berth::spec::check_host_cpus(cpu.quota(), cpu.period(), cpu.cpus().as_deref())
        {
            report(verb, shown, &format!("check options: {why}"));
            return Err(());
        }
    }
    // A restore's UTS namespace is the checkpoint's: its hostname too, unless
    // --hostname says otherwise.
    if let Some(h) = options
        .checkpoint
        .as_deref()
        .filter(|_| a.hostname.is_none())
        .and_then(crate::checkpoint::hostname_of)
    {
        spec.set_hostname(Some(h));
    }
    if let Some(t) = a.stop_timeout {
        let mut ann = spec.annotations().clone().unwrap_or_default();
        ann.insert(STOP_TIMEOUT_ANNOTATION.to_owned(), t.to_string());
        spec.set_annotations(Some(ann));
    }
    if a.tty {
        set_console_size(&mut spec);
    }
    Ok((id, spec, options))
}

/// The refusal of `-it` when this terminal is not one.
const NOT_A_TTY: &str =
    "attach terminal: the input device is not a TTY (drop -t, or run from a terminal)";

async fn run(cli: &Cli, c: &Client, a: &RunArgs) -> u8 {
    let Ok((id, mut spec, options)) = prepare(cli, a, "run").await else {
        return EXIT_BERTH;
    };
    if a.rm {
        // Detached, or attached and this berth is killed before the exit: the
        // shim removes it once the exit is recorded.
        remove_on_exit(cli, &id, &mut spec);
    }
    if a.interactive && a.detach {
        // Docker's open stdin: it stays open with nobody attached.
        let mut ann = spec.annotations().clone().unwrap_or_default();
        ann.insert(OPEN_STDIN_ANNOTATION.to_owned(), "true".to_owned());
        spec.set_annotations(Some(ann));
    }
    if a.tty && a.interactive && !a.detach && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        report("run", id.as_str(), &NOT_A_TTY);
        return EXIT_BERTH;
    }
    let stdio = StdioRequest {
        stdin: a.interactive && !a.detach,
        stdout: !a.detach,
        stderr: !a.detach,
        terminal: a.tty,
    };
    let created = match c.create(&id, &spec, &options, stdio).await {
        Ok(c) => c,
        Err(e) => {
            report_berth("run", &e);
            return e.exit_code() as u8;
        }
    };
    if a.detach {
        println!("{id}");
        return 0;
    }
    let code = attach(c, &id, &ProcessId::init(), created.io, a.tty).await;
    if a.rm {
        match c.delete(&id).await {
            // Its exit command was first (it took this berth for gone).
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => report_berth("run", &e),
            Ok(_) => {}
        }
    }
    code.clamp(0, 255) as u8
}

/// Has the shim remove `id` once it exits with nobody attached (`run -d --rm`, a
/// detached `start` of `create --rm`): it runs `berth rm` with these roots.
fn remove_on_exit(cli: &Cli, id: &ContainerId, spec: &mut oci_spec::runtime::Spec) {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("berth"));
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let argv = [
        exe,
        "--root".into(),
        abs(&cli.root),
        "--data-root".into(),
        abs(&cli.data_root),
        "rm".into(),
        id.as_str().into(),
    ]
    .map(|p| p.to_string_lossy().into_owned());
    let mut ann = spec.annotations().clone().unwrap_or_default();
    ann.insert(
        berth_types::EXIT_COMMAND_ANNOTATION.to_owned(),
        serde_json::to_string(&argv).unwrap_or_default(),
    );
    spec.set_annotations(Some(ann));
}

/// Spec annotation that keeps `create --rm` for `start` (`create -i` is kept as
/// [`OPEN_STDIN_ANNOTATION`], which the shim honours too).
const AUTO_REMOVE_ANNOTATION: &str = "org.berth.auto-remove";

/// `berth create`: a container with everything `run` would give it, defined but
/// not started (nothing runs, nothing is mounted); prints its id.
async fn create(cli: &Cli, c: &Client, a: &RunArgs) -> u8 {
    if a.detach {
        report(
            "create",
            "",
            &"-d does not apply: create starts nothing (berth start does)",
        );
        return 1;
    }
    let Ok((id, mut spec, options)) = prepare(cli, a, "create").await else {
        return 1;
    };
    if a.rm {
        remove_on_exit(cli, &id, &mut spec);
    }
    let mut ann = spec.annotations().clone().unwrap_or_default();
    for (on, key) in [
        (a.interactive, OPEN_STDIN_ANNOTATION),
        (a.rm, AUTO_REMOVE_ANNOTATION),
    ] {
        if on {
            ann.insert(key.to_owned(), "true".to_owned());
        }
    }
    if !ann.is_empty() {
        spec.set_annotations(Some(ann));
    }
    match c.define(&id, &spec, &options).await {
        Ok(()) => {
            println!("{id}");
            0
        }
        Err(e) => {
            report_berth("create", &e);
            1
        }
    }
}

/// `berth start`: starts created containers, and exited ones again. Attached
/// (`-a`, or `-i` for stdin too) it streams the one container's output and exits
/// with its status, as `run` does; else it prints each name. A running container
/// is left alone.
async fn start(cli: &Cli, c: &Client, attach_out: bool, interactive: bool, names: &[String]) -> u8 {
    let attached = attach_out || interactive;
    if attached && names.len() > 1 {
        report("start", "", &"-a and -i attach to one container: name one");
        return 1;
    }
    let mut code = 0;
    for name in names {
        let id = match names::resolve(&cli.data_root, name) {
            Ok(id) => id,
            Err(e) => {
                report("start", name, &format!("{e:#}"));
                code = 1;
                continue;
            }
        };
        let spec = record_spec(cli, &id);
        let flag = |key: &str| {
            spec.as_ref()
                .and_then(|s| s.annotations().as_ref()?.get(key).cloned())
                .is_some_and(|v| v == "true")
        };
        let tty = spec
            .as_ref()
            .and_then(|s| s.process().as_ref()?.terminal())
            .unwrap_or(false);
        let stdin = interactive && flag(OPEN_STDIN_ANNOTATION);
        let status = c.state(&id).await.map(|i| i.status);
        match status {
            Ok(ContainerStatus::Paused) => {
                report(
                    "start",
                    id.as_str(),
                    &"check state: the container is paused: resume it instead",
                );
                code = 1;
                continue;
            }
            Ok(ContainerStatus::Running) if !attached => {
                println!("{name}");
                continue;
            }
            Ok(ContainerStatus::Running) => {
                report(
                    "start",
                    id.as_str(),
                    &"check state: the container is running already (see berth logs -f)",
                );
                return 1;
            }
            _ => {}
        }
        if tty && stdin && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            report("start", id.as_str(), &NOT_A_TTY);
            return EXIT_BERTH;
        }
        let stdio = StdioRequest {
            stdin,
            stdout: attached,
            stderr: attached,
            terminal: tty,
        };
        let started = match c.start(&id, stdio).await {
            Ok(s) => s,
            Err(e)
                if !attached
                    && e.kind == ErrorKind::FailedPrecondition
                    // Another start's doing, whatever this one saw first (a look
                    // taken while another start reruns it can find it half made).
                    && e.step == "check state" =>
            {
                // Another start got there first (or is under way): once it is
                // done, a running container is what this start asked for.
                if started_by_another(c, &id).await {
                    println!("{name}");
                } else {
                    report_berth("start", &e);
                    code = 1;
                }
                continue;
            }
            Err(e) => {
                report_berth("start", &e);
                if attached {
                    return e.exit_code() as u8;
                }
                code = 1;
                continue;
            }
        };
        if !attached {
            println!("{name}");
            continue;
        }
        let status = attach(c, &id, &ProcessId::init(), started.io, tty).await;
        if flag(AUTO_REMOVE_ANNOTATION) {
            match c.delete(&id).await {
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => report_berth("start", &e),
                Ok(_) => {}
            }
        }
        return status.clamp(0, 255) as u8;
    }
    code
}

/// Whether `id`, which another `start` took, ran: waits (30 s at most) for that
/// start to end, then says whether it left the container anything but created.
async fn started_by_another(c: &Client, id: &ContainerId) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match c.state(id).await.map(|i| i.status) {
            // Unknown or unreadable for a moment while another start tears the
            // last run down: look again.
            Ok(ContainerStatus::Created | ContainerStatus::Unknown) | Err(_)
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Exited) => {
                return true
            }
            _ => return false,
        }
    }
}

pub(crate) fn image_and_cmd(image: &[String], cmd: &[String]) -> String {
    image
        .iter()
        .chain(cmd)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Streams a process's stdio to and from this terminal until it exits, and returns
/// its exit code. With a terminal: raw mode (always restored), SIGWINCH becomes a
/// resize, Ctrl-C is a byte. Without: SIGINT, SIGTERM, ... are forwarded.
async fn attach(
    c: &Client,
    id: &ContainerId,
    process: &ProcessId,
    mut io: berth::ProcessIo,
    tty: bool,
) -> i32 {
    // Raw mode (Ctrl-C is a byte for the container) only when this terminal's
    // input goes to the container (-it), as Docker does; else signals are forwarded.
    let raw = if tty && io.stdin.is_some() {
        term::RawMode::enable(std::io::stdin().as_fd())
    } else {
        None
    };
    let out = io
        .stdout
        .take()
        .map(|r| tokio::spawn(pump(r, tokio::io::stdout())));
    let err = io
        .stderr
        .take()
        .map(|r| tokio::spawn(pump(r, tokio::io::stderr())));
    if let Some(mut w) = io.stdin.take() {
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let _ = tokio::io::copy(&mut stdin, &mut w).await;
            // Dropping the writer closes the FIFO: the process sees EOF.
        });
    }
    // Listening for window changes before the size is read: a change between
    // the two is then seen, never lost.
    let mut winch = if tty {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()
    } else {
        None
    };
    if tty {
        if let Some((w, h)) = term::size(std::io::stdin()) {
            let _ = c.resize(id, process, w.into(), h.into()).await;
        }
    }
    let waited = {
        let wait = c.wait(id, process);
        tokio::pin!(wait);
        let mut signals = if raw.is_some() {
            Vec::new()
        } else {
            forwarded_signals()
        };
        loop {
            tokio::select! {
                r = &mut wait => break r,
                Some(sig) = next_signal(&mut signals) => {
                    let _ = if process.is_init() { c.signal(id, sig).await } else { c.signal_process(id, process, sig).await };
                }
                Some(()) = async { match winch.as_mut() { Some(w) => w.recv().await, None => std::future::pending().await } } => {
                    if let Some((w, h)) = term::size(std::io::stdin()) {
                        let _ = c.resize(id, process, w.into(), h.into()).await;
                    }
                }
            }
        }
    };
    for t in [out, err].into_iter().flatten() {
        let _ = t.await;
    }
    drop(raw);
    match waited {
        Ok(exit) => exit.code,
        Err(e) => {
            // The process ran; its exit is unknown (its shim is gone): 255, never
            // 125, which says the process never ran.
            report_berth(if process.is_init() { "run" } else { "exec" }, &e);
            255
        }
    }
}

fn set_console_size(spec: &mut oci_spec::runtime::Spec) {
    if let (Some(mut p), Some((w, h))) = (spec.process().clone(), term::size(std::io::stdin())) {
        if let Ok(size) = oci_spec::runtime::BoxBuilder::default()
            .width(w as u64)
            .height(h as u64)
            .build()
        {
            p.set_console_size(Some(size));
            spec.set_process(Some(p));
        }
    }
}

async fn exec(cli: &Cli, c: &Client, a: &ExecArgs) -> u8 {
    let id = match names::resolve(&cli.data_root, &a.name) {
        Ok(id) => id,
        Err(e) => {
            report("exec", &a.name, &format!("{e:#}"));
            return EXIT_BERTH;
        }
    };
    let process_id = match &a.process_id {
        Some(p) => ProcessId::new(p.clone()).map_err(|e| anyhow!("parse --process-id: {e}")),
        None => ProcessId::new(format!("exec-{}", random_id())).map_err(|e| anyhow!("{e}")),
    };
    let built = process_id.and_then(|pid| exec_process(cli, &id, a).map(|p| (pid, p)));
    let (process_id, process) = match built {
        Ok(x) => x,
        Err(e) => {
            // No bundle to read: say why, in the container's terms.
            let why = match c.state(&id).await.map(|i| (i.status, i.pid)) {
                Ok((ContainerStatus::Created, None)) => {
                    "check state: the container is created but not started (start it first)".into()
                }
                Ok((ContainerStatus::Exited, _)) => {
                    "check state: the container is not running".into()
                }
                _ => format!("{e:#}"),
            };
            report("exec", id.as_str(), &why);
            return EXIT_BERTH;
        }
    };
    if a.tty && a.interactive && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        report(
            "exec",
            id.as_str(),
            &"attach terminal: the input device is not a TTY (drop -t, or run from a terminal)",
        );
        return EXIT_BERTH;
    }
    let stdio = StdioRequest {
        stdin: a.interactive && !a.detach,
        stdout: !a.detach,
        stderr: !a.detach,
        terminal: a.tty,
    };
    let created = match c.exec(&id, &process_id, &process, stdio).await {
        Ok(c) => c,
        Err(e) => {
            report_berth("exec", &e);
            return e.exit_code() as u8;
        }
    };
    if a.detach {
        return 0;
    }
    attach(c, &id, &process_id, created.io, a.tty)
        .await
        .clamp(0, 255) as u8
}

/// The process `berth exec` runs: the container's user, cwd and env unless the
/// flags say otherwise.
fn exec_process(cli: &Cli, id: &ContainerId, a: &ExecArgs) -> Result<oci_spec::runtime::Process> {
    let bundle = cli
        .root
        .join(id.as_str())
        .join("bundle")
        .join("config.json");
    let spec =
        oci_spec::runtime::Spec::load(&bundle).map_err(|e| anyhow!("read container spec: {e}"))?;
    let init = spec.process().clone().unwrap_or_default();
    let mut p = oci_spec::runtime::Process::default();
    p.set_args(Some(a.command.clone()));
    p.set_user(init.user().clone());
    p.set_cwd(PathBuf::new());
    p.set_env(None);
    p.set_capabilities(None);
    p.set_rlimits(None);
    p.set_no_new_privileges(None);
    if let Some(w) = &a.workdir {
        p.set_cwd(PathBuf::from(w));
    }
    if !a.env.is_empty() {
        let mut env = init.env().clone().unwrap_or_default();
        for e in &a.env {
            let e = berth::spec::parse::parse_env(e).context("parse -e")?;
            let key = e.split('=').next().unwrap_or_default().to_owned();
            env.retain(|x| x.split('=').next() != Some(key.as_str()));
            env.push(e);
        }
        p.set_env(Some(env));
    }
    if let Some(u) = &a.user {
        let root = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_default();
        let (uid, gid, gids) = berth::spec::user::resolve(&root, u).context("resolve user")?;
        let mut user = p.user().clone();
        user.set_uid(uid);
        user.set_gid(gid);
        user.set_additional_gids((!gids.is_empty()).then_some(gids));
        p.set_user(user);
        // HOME is the exec user's, unless `-e HOME=` (or the container's own
        // explicit HOME) says otherwise: init's default HOME was init's user's.
        let mut env = p
            .env()
            .clone()
            .or_else(|| init.env().clone())
            .unwrap_or_default();
        let home = |e: &String| e.strip_prefix("HOME=").map(str::to_owned);
        let given = a.env.iter().any(|e| e == "HOME" || e.starts_with("HOME="));
        let init_default = berth::spec::user::home(&root, init.user().uid());
        let inherited = env.iter().find_map(home);
        if !given && inherited.as_ref().is_none_or(|h| *h == init_default) {
            env.retain(|e| home(e).is_none());
            env.push(format!("HOME={}", berth::spec::user::home(&root, uid)));
            p.set_env(Some(env));
        }
    }
    if a.tty {
        if let Some((w, h)) = term::size(std::io::stdin()) {
            if let Ok(size) = oci_spec::runtime::BoxBuilder::default()
                .width(w as u64)
                .height(h as u64)
                .build()
            {
                p.set_console_size(Some(size));
            }
        }
    }
    Ok(p)
}

async fn pump(mut r: tokio::net::unix::pipe::Receiver, mut w: impl tokio::io::AsyncWrite + Unpin) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                let _ = w.flush().await;
            }
        }
    }
}

type Signals = Vec<(i32, tokio::signal::unix::Signal)>;

fn forwarded_signals() -> Signals {
    use tokio::signal::unix::{signal, SignalKind};
    [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ]
    .into_iter()
    .filter_map(|s| signal(SignalKind::from_raw(s)).ok().map(|h| (s, h)))
    .collect()
}

async fn next_signal(signals: &mut Signals) -> Option<i32> {
    if signals.is_empty() {
        return std::future::pending().await;
    }
    let futs = signals.iter_mut().map(|(n, s)| {
        let n = *n;
        Box::pin(async move { s.recv().await.map(|_| n) })
    });
    futures_select_all(futs).await
}

async fn futures_select_all<F: std::future::Future<Output = Option<i32>> + Unpin>(
    futs: impl Iterator<Item = F>,
) -> Option<i32> {
    let mut futs: Vec<F> = futs.collect();
    std::future::poll_fn(move |cx| {
        for f in futs.iter_mut() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn ps(c: &Client, a: &PsArgs) -> Result<()> {
    let list = c.list().await?;
    let now = chrono::Utc::now();
    let shown: Vec<_> = list
        .iter()
        .filter(|i| a.all || matches!(i.status, ContainerStatus::Running | ContainerStatus::Paused))
        .collect();
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for i in shown {
            writeln!(out, "{}", i.id)?;
        }
    } else if a.format.as_deref() == Some("json") {
        for i in shown {
            writeln!(out, "{}", output::ps_json(i))?;
        }
    } else if let Some(f) = &a.format {
        bail!("unknown format {f:?}: use json");
    } else {
        writeln!(
            out,
            "{:<14}{:<20}{:<16}{:<24}{:<27}STATUS",
            "ID", "NAME", "IMAGE", "COMMAND", "CREATED"
        )?;
        for i in shown {
            let mut cmd = output::command_line(i);
            if cmd.chars().count() > 21 {
                cmd = format!("{}…", cmd.chars().take(20).collect::<String>());
            }
            let id12: String = i.id.as_str().chars().take(12).collect();
            // A value wider than its column still gets a space after it.
            let col = |s: &str, w: usize| {
                if s.chars().count() < w {
                    format!("{s:<w$}")
                } else {
                    format!("{s} ")
                }
            };
            writeln!(
                out,
                "{}{}{}{}{}{}",
                col(&id12, 14),
                col(i.id.as_str(), 20),
                col(i.image.as_deref().unwrap_or("-"), 16),
                col(&format!("\"{cmd}\""), 24),
                col(&format!("{} ago", output::ago(now, i.created)), 27),
                output::status_line(i, now)
            )?;
        }
    }
    Ok(())
}

/// The spec `id` runs with, from its record. The record holds it under "spec";
/// `Spec::load` of the record itself succeeds too (every field of Spec is
/// optional) but yields an empty spec, so the record's "spec" comes first.
fn record_spec(cli: &Cli, id: &ContainerId) -> Option<oci_spec::runtime::Spec> {
    let path = cli
        .data_root
        .join("containers")
        .join(id.as_str())
        .join("config.json");
    (|| {
        let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        serde_json::from_value::<oci_spec::runtime::Spec>(rec.get("spec")?.clone()).ok()
    })()
    .or_else(|| oci_spec::runtime::Spec::load(&path).ok())
}

async fn inspect_one(cli: &Cli, c: &Client, name: &str) -> Result<serde_json::Value> {
    let id = names::resolve(&cli.data_root, name)?;
    let info = c.state(&id).await?;
    let spec = record_spec(cli, &id);
    let mut value = output::inspect(&info, spec.as_ref());
    if let Some(procs) = value.get_mut("Processes").and_then(|p| p.as_array_mut()) {
        procs.extend(output::exec_processes(
            &c.events(&id),
            &cli.root.join(id.as_str()),
        ));
    }
    Ok(value)
}

async fn kill(
    cli: &Cli,
    c: &Client,
    name: &str,
    signal: &str,
    process_id: Option<&str>,
) -> Result<()> {
    let id = names::resolve(&cli.data_root, name)?;
    let sig = berth::spec::parse::parse_signal(signal).context("parse signal")?;
    match process_id {
        Some(p) => {
            let p = ProcessId::new(p).map_err(|e| anyhow!("parse --process-id: {e}"))?;
            c.signal_process(&id, &p, sig).await?;
        }
        None => c.signal(&id, sig).await?,
    }
    // As Docker's: the name of what was signalled.
    println!("{name}");
    Ok(())
}

/// The spec annotation that carries `run --stop-timeout`.
const STOP_TIMEOUT_ANNOTATION: &str = "org.berth.stop-timeout";

/// `run --stop-timeout` of `id`, from its record, if it was given.
fn stop_timeout_of(cli: &Cli, id: &ContainerId) -> Option<u64> {
    record_spec(cli, id)?
        .annotations()
        .as_ref()?
        .get(STOP_TIMEOUT_ANNOTATION)?
        .parse()
        .ok()
}

/// Stops `name`: SIGTERM, then SIGKILL after `grace` (`-t`), else the container's
/// `--stop-timeout`, else 10 s.
async fn stop(cli: &Cli, c: &Client, name: &str, grace: Option<u64>) -> Result<()> {
    let id = names::resolve(&cli.data_root, name)?;
    let grace = Duration::from_secs(grace.or_else(|| stop_timeout_of(cli, &id)).unwrap_or(10));
    let info = c.state(&id).await?;
    let started = info.pid.is_some();
    if !matches!(
        info.status,
        ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Created
    ) || !started
    {
        // Exited, or created and never started: nothing runs to stop.
        return Ok(());
    }
    match c.signal(&id, libc::SIGTERM).await {
        Ok(()) => {}
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            // It ended (or another berth restarted it) meanwhile: nothing of
            // this stop's is left to do.
            let now = c.state(&id).await.map(|i| i.status);
            if !matches!(now, Ok(ContainerStatus::Running | ContainerStatus::Paused)) {
                return Ok(());
            }
            return Err(e.into());
        }
    }
    let init = ProcessId::init();
    if tokio::time::timeout(grace, c.wait(&id, &init))
        .await
        .is_err()
    {
        match c.signal(&id, libc::SIGKILL).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        c.wait(&id, &init).await?;
    }
    Ok(())
}

async fn rm(cli: &Cli, c: &Client, name: &str, force: bool) -> Result<()> {
    let id = match names::resolve(&cli.data_root, name) {
        Ok(id) => id,
        Err(e) => {
            // A create killed before it wrote a record has no name to find, but
            // may have left a shim behind: listing cleans such leftovers up.
            let _ = c.list().await;
            return Err(e);
        }
    };
    let info = match c.state(&id).await {
        // Its record was there a moment ago: what a killed create left, removed
        // just now by looking at it (or another rm's work). Gone is what rm wants.
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
        r => r?,
    };
    if matches!(
        info.status,
        ContainerStatus::Running | ContainerStatus::Paused
    ) {
        if !force {
            bail!("remove: the container is running: stop it first, or use rm -f");
        }
        kill_and_wait(c, &id).await?;
    }
    // Started meanwhile (a `start` or `restart` that was under way, as many as
    // there are): -f ends each run it finds, until the delete wins.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match c.delete(&id).await {
            // Removed meanwhile by its own exit command (`run -d --rm`).
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
            Err(e)
                if force
                    && e.kind == ErrorKind::FailedPrecondition
                    && tokio::time::Instant::now() < deadline =>
            {
                kill_and_wait(c, &id).await?;
            }
            r => return r.map(drop).map_err(Into::into),
        }
    }
}

/// SIGKILL to every process of `id`, then its exit.
async fn kill_and_wait(c: &Client, id: &ContainerId) -> Result<()> {
    match c.signal(id, libc::SIGKILL).await {
        Ok(()) => {}
        Err(e) if e.kind == ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    c.wait(id, &ProcessId::init()).await?;
    Ok(())
}
