//! The command line, as `../shared/CLI.md` fixes it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// berth: run and manage containers.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, disable_help_subcommand = true)]
pub struct Cli {
    /// Runtime state root.
    #[arg(long, global = true, env = "BERTH_ROOT", default_value = "/run/berth")]
    pub root: PathBuf,
    /// Data root: records, logs, images, checkpoints.
    #[arg(
        long,
        global = true,
        env = "BERTH_DATA_ROOT",
        default_value = "/var/lib/berth"
    )]
    pub data_root: PathBuf,
    /// Log level of diagnostics on stderr.
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,
    /// Shorthand for --log-level debug.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Log kept per process, on disk (64m, 1g); past it the oldest output goes.
    #[arg(long, global = true, default_value = "100m")]
    pub log_max: String,
    /// The criu binary for checkpoints (default: criu on PATH).
    #[arg(long, global = true, env = "BERTH_CRIU")]
    pub criu: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and start a container, attached unless -d.
    Run(Box<RunArgs>),
    /// Create a container without starting it (run's options); prints its id.
    Create(Box<RunArgs>),
    /// Start created containers; attached (-a/-i), exit with the container's status.
    Start {
        /// Stream stdout and stderr, and exit with the container's status.
        #[arg(short, long)]
        attach: bool,
        /// Attach stdin too (a container created with -i); implies -a.
        #[arg(short, long)]
        interactive: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List containers.
    Ps(PsArgs),
    /// Show containers as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Run another process in a running container.
    Exec(Box<ExecArgs>),
    /// Send a signal to a container's init (or one of its processes).
    Kill {
        /// Signal name or number.
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        /// Signal this process of the container instead of init.
        #[arg(long)]
        process_id: Option<String>,
        name: String,
    },
    /// Stop containers: SIGTERM, then SIGKILL after a grace period.
    Stop {
        /// Seconds to wait before SIGKILL (default: the container's --stop-timeout,
        /// else 10).
        #[arg(short, long)]
        time: Option<u64>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Restart containers: stop (as `stop` does), then start again.
    Restart {
        /// Seconds to wait before SIGKILL (default: the container's --stop-timeout,
        /// else 10).
        #[arg(short, long)]
        time: Option<u64>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Freeze every process of containers.
    Pause {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Thaw paused containers.
    Resume {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show containers' resource use, live.
    Stats(crate::observe::StatsArgs),
    /// Show the processes of a container.
    Top { name: String },
    /// Change resource limits of a running container.
    Update(crate::observe::UpdateArgs),
    /// Show a container's output.
    Logs(crate::logs::LogsArgs),
    /// Show events as they happen.
    Events(crate::logs::EventsArgs),
    /// Manage checkpoints: create, ls, rm.
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Manage images: import, ls, rm, inspect.
    Image(crate::image::ImageArgs),
    /// Print the default config.json.
    Spec,
    /// Print version information.
    Version,
    /// Show what this host supports: cgroups, overlayfs, seccomp, user
    /// namespaces, criu.
    Info,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers, not just running ones.
    #[arg(short, long)]
    pub all: bool,
    /// Only ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// `json`: one object per line.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the id.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open and forward it.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Name (the id) of the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Root filesystem directory.
    #[arg(long, conflicts_with = "bundle")]
    pub rootfs: Option<PathBuf>,
    /// An OCI bundle to run as is.
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Environment variables K=V.
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Files of K=V lines.
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// Working directory.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// USER[:GROUP], names or numeric ids.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Hostname.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Bind mounts SRC:DST[:ro|rw].
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// tmpfs mounts.
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Memory limit (64m, 1g).
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Memory plus swap limit (-1: unlimited).
    #[arg(long)]
    pub memory_swap: Option<String>,
    /// CPUs (0.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Relative CPU weight.
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// CPUs to run on (0-1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of tasks.
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// none, host, or a network namespace path.
    #[arg(long)]
    pub network: Option<String>,
    /// Seconds `stop` waits before SIGKILL.
    #[arg(long)]
    pub stop_timeout: Option<u64>,
    /// Bring the container back from this checkpoint instead of starting CMD.
    #[arg(long)]
    pub checkpoint: Option<String>,
    /// Where the checkpoint is (default: the new container's own checkpoints).
    #[arg(long, requires = "checkpoint")]
    pub checkpoint_dir: Option<PathBuf>,
    /// IMAGE and/or `-- CMD [ARG...]`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep stdin open and forward it.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Environment variables K=V, added to the container's.
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Working directory (must exist).
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// USER[:GROUP], names or numeric ids.
    #[arg(short, long)]
    pub user: Option<String>,
    /// The process's id within the container (default: a random one).
    #[arg(long)]
    pub process_id: Option<String>,
    /// The container.
    pub name: String,
    /// `-- CMD [ARG...]`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Checkpoint a running container with CRIU (it stops unless --leave-running).
    Create {
        /// Leave the container running after the checkpoint.
        #[arg(long)]
        leave_running: bool,
        /// Where to write it (default: under the data root, per container).
        #[arg(long)]
        checkpoint_dir: Option<PathBuf>,
        name: String,
        checkpoint: String,
    },
    /// List a container's checkpoints.
    Ls {
        /// Where they are (default: under the data root, per container).
        #[arg(long)]
        checkpoint_dir: Option<PathBuf>,
        name: String,
    },
    /// Remove a checkpoint.
    Rm {
        /// Where it is (default: under the data root, per container).
        #[arg(long)]
        checkpoint_dir: Option<PathBuf>,
        name: String,
        checkpoint: String,
    },
}
