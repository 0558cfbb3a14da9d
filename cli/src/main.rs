//! The `berth` binary: runc's command line over berth's planner and backends.
//!
//! Thin by design: it parses arguments, reads the files a command names, probes the host,
//! and hands a request to berth-core; what happens to the host is decided there. Output
//! contract (shims rely on it): stdout carries only a command's result (a plan, a config);
//! every diagnostic goes to stderr or to `--log`, and every failure is one line on stderr
//! (`berth: ...`) with exit status 1.

#![forbid(unsafe_code)]

mod create;
mod exec;
mod lifecycle;
mod log;
mod spec;
mod tty;
mod update;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::log::{LogFormat, Logger};

/// A container runtime whose every side effect can be read before it happens.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    disable_version_flag = true,
    arg_required_else_help = true,
    after_help = ENGINE_HELP
)]
struct Cli {
    /// Print berth's version and the runtime-spec version it implements.
    #[arg(short = 'v', long)]
    version: bool,
    /// Root directory for the state of containers.
    #[arg(long, value_name = "DIR", default_value = "/run/berth")]
    root: PathBuf,
    /// Write diagnostics to FILE (appended) instead of stderr.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Format of diagnostics.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Also log debug messages.
    #[arg(long)]
    debug: bool,
    /// Use systemd to manage cgroups (cgroupsPath `slice:prefix:name`).
    #[arg(long)]
    systemd_cgroup: bool,
    /// Append every step actually applied to FILE, in the plan's text format.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    command: Option<Command>,
}

/// berth's commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Write a default config.json into a bundle, like `runc spec`.
    Spec(SpecArgs),
    /// Create a container: everything up to the start barrier.
    Create(CreateArgs),
    /// Create and start a container; without -d, wait for it, delete it and exit with its
    /// exit code. With process.terminal and no --console-socket, berth relays the
    /// container's terminal to its own (put in raw mode, resized with it).
    Run(RunArgs),
    /// Start a created container: its process runs.
    Start(IdArg),
    /// Print the OCI state of a container as JSON.
    State(IdArg),
    /// Send a signal to a container's init process (default: TERM).
    Kill(KillArgs),
    /// Delete a container and what it holds (cgroups, state); it must be stopped, or
    /// created, unless --force.
    Delete(DeleteArgs),
    /// List the containers under --root.
    List(ListArgs),
    /// Freeze every process of a running container.
    Pause(IdArg),
    /// Thaw a paused container.
    Resume(IdArg),
    /// Print the runtime-spec Features document: what this runtime supports.
    Features,
    /// Run a new process in a running container.
    Exec(ExecArgs),
    /// List the processes of a container.
    Ps(PsArgs),
    /// Change the cgroup limits of a running container.
    Update(UpdateArgs),
    /// Print a container's cgroup stats (and OOM events) as JSON lines.
    Events(EventsArgs),
}

/// Arguments of `update`.
#[derive(Debug, Args)]
struct UpdateArgs {
    /// A runtime-spec LinuxResources JSON file, or `-` for stdin.
    #[arg(short, long, value_name = "FILE")]
    resources: Option<PathBuf>,
    /// Memory limit (in bytes, or with a unit: 64M).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long, value_name = "N")]
    cpu_shares: Option<u64>,
    /// CPU CFS quota in microseconds per period (-1: unlimited).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds.
    #[arg(long, value_name = "N")]
    cpu_period: Option<u64>,
    /// CPUs the container may use (0-3, 0,1).
    #[arg(long, value_name = "LIST")]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use (0-3, 0,1).
    #[arg(long, value_name = "LIST")]
    cpuset_mems: Option<String>,
    /// Maximum number of processes (-1: unlimited).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Block IO weight (10-1000).
    #[arg(long, value_name = "N")]
    blkio_weight: Option<u16>,
    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
}

/// Arguments of `events`.
#[derive(Debug, Args)]
struct EventsArgs {
    /// Print one stats line and exit.
    #[arg(long)]
    stats: bool,
    /// How often to print stats (a Go duration: 5s, 100ms).
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    interval: String,
    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
}

/// A command's only argument: the container id.
#[derive(Debug, Args)]
struct IdArg {
    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
}

/// Arguments of `kill`.
#[derive(Debug, Args)]
struct KillArgs {
    /// Send the signal to every process in the container's cgroup, not only its init.
    #[arg(short, long)]
    all: bool,
    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
    /// The signal: a number, or a name with or without SIG (KILL, SIGTERM).
    #[arg(value_name = "SIGNAL", default_value = "TERM")]
    signal: String,
}

/// Arguments of `delete`.
#[derive(Debug, Args)]
struct DeleteArgs {
    /// Kill a running container (SIGKILL) and delete it.
    #[arg(short, long)]
    force: bool,
    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
}

/// How `list` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ListFormat {
    /// Aligned columns: ID PID STATUS BUNDLE CREATED OWNER.
    Table,
    /// A JSON array of OCI states.
    Json,
}

/// Arguments of `list`.
#[derive(Debug, Args)]
struct ListArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
    /// Print only the container ids.
    #[arg(short, long)]
    quiet: bool,
}

/// Arguments of `exec`.
#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
struct ExecArgs {
    /// A runtime-spec `process` JSON file (instead of CMD and the flags below).
    #[arg(short, long, value_name = "FILE")]
    process: Option<PathBuf>,
    /// Return once the process has started, without waiting for it.
    #[arg(short, long)]
    detach: bool,
    /// Write the new process's pid to FILE.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Send the pty master of a terminal process to this AF_UNIX socket.
    #[arg(long, value_name = "SOCKET")]
    console_socket: Option<PathBuf>,
    /// Pass N extra fds (from fd 3 on) to the process.
    #[arg(long, value_name = "N", default_value_t = 0)]
    preserve_fds: u32,
    /// Allocate a pseudo-TTY: berth relays it to its own terminal, or sends it to
    /// --console-socket (which a detached exec needs).
    #[arg(short, long)]
    tty: bool,
    /// Set an environment variable K=V (repeatable).
    #[arg(short, long, value_name = "K=V")]
    env: Vec<String>,
    /// The working directory in the container.
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,
    /// The user, `UID[:GID]`.
    #[arg(short, long, value_name = "UID[:GID]")]
    user: Option<String>,
    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
    /// The command and its arguments.
    #[arg(value_name = "CMD", allow_hyphen_values = true)]
    command: Vec<String>,
}

/// How `ps` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PsFormat {
    /// `ps -ef`'s lines of the container's processes.
    Table,
    /// A JSON array of pids.
    Json,
}

/// Arguments of `ps`.
#[derive(Debug, Args)]
struct PsArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = PsFormat::Table)]
    format: PsFormat,
    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
}

/// Arguments of `spec`.
#[derive(Debug, Args)]
struct SpecArgs {
    /// The bundle directory to write config.json into.
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    bundle: PathBuf,
    /// A config for a rootless container (maps the container's root to the caller).
    #[arg(long)]
    rootless: bool,
}

/// How `--dry-run` prints the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DryRun {
    /// One step per line.
    Text,
    /// The plan as JSON, which parses back into the same plan.
    Json,
}

/// Arguments shared by `create` and `run`.
#[derive(Debug, Args)]
struct CreateArgs {
    /// The container id.
    #[arg(value_name = "ID")]
    id: String,
    /// The bundle directory (holds config.json).
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    bundle: PathBuf,
    /// Write the container's init pid to FILE.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Send the pty master of a terminal container to this AF_UNIX socket.
    #[arg(long, value_name = "SOCKET")]
    console_socket: Option<PathBuf>,
    /// Use chroot instead of pivot_root (for a rootfs on a ramdisk).
    #[arg(long)]
    no_pivot: bool,
    /// Do not give the container its own session keyring.
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass N extra fds (from fd 3 on) to the container.
    #[arg(long, value_name = "N", default_value_t = 0)]
    preserve_fds: u32,
    /// Print the plan instead of carrying it out, and touch nothing on the host.
    #[arg(
        long,
        value_name = "FORMAT",
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "text"
    )]
    dry_run: Option<DryRun>,
}

/// Arguments of `run`.
#[derive(Debug, Args)]
struct RunArgs {
    /// Everything `create` takes.
    #[command(flatten)]
    create: CreateArgs,
    /// Return once the container has started, without waiting for it.
    #[arg(short, long)]
    detach: bool,
    /// Do not delete the container after it exits (a foreground run only).
    #[arg(long)]
    keep: bool,
}

/// Global flags every command sees.
#[derive(Debug)]
struct Global {
    /// `--root`.
    root: PathBuf,
    /// `--systemd-cgroup`.
    systemd_cgroup: bool,
}

/// The runtime-spec version berth writes into a new config (`berth spec`'s `ociVersion`).
fn spec_version() -> String {
    let config = berth_core::spec::default_config_json(None);
    serde_json::from_str::<serde_json::Value>(&config)
        .ok()
        .and_then(|v| v["ociVersion"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Whether the command puts a process into a container, so berth must first run from a
/// sealed copy of itself (see `berth_backend_linux::selfexe`).
fn puts_a_process_into_a_container(cli: &Cli) -> bool {
    match &cli.command {
        Some(Command::Create(args)) => args.dry_run.is_none(),
        Some(Command::Run(args)) => args.create.dry_run.is_none(),
        Some(Command::Exec(_)) => true,
        _ => false,
    }
}

/// Where `berth --help` points at the engine's commands.
const ENGINE_HELP: &str = "The commands above are the OCI runtime's (runc's command line). \
berth is also an engine, like docker: `berth run IMAGE`, `ps`, `logs`, `exec`, `stop`, `rm`, \
`images`, `import`, `load`, `pull`, `network`, ... are carried out by `berth-engine`, \
installed beside berth; `berth-engine --help` lists them.";

/// Runtime options before the command that take a value.
const RUNTIME_GLOBALS_WITH_VALUE: [&str; 4] = ["--root", "--log", "--log-format", "--trace"];
/// Runtime options before the command without a value.
const RUNTIME_GLOBAL_FLAGS: [&str; 6] = [
    "--debug",
    "--systemd-cgroup",
    "-v",
    "--version",
    "-h",
    "--help",
];
/// The engine's options (`berth-engine`), all with a value.
const ENGINE_GLOBALS: [&str; 2] = ["--data-root", "--exec-root"];
/// Commands only the engine has.
const ENGINE_COMMANDS: [&str; 22] = [
    "import",
    "load",
    "save",
    "pull",
    "images",
    "tag",
    "rmi",
    "image",
    "logs",
    "attach",
    "stop",
    "restart",
    "wait",
    "rm",
    "inspect",
    "stats",
    "cp",
    "rename",
    "container",
    "network",
    "unpause",
    "monitor",
];

/// Whether the arguments name an engine command, which `berth-engine` carries out.
///
/// The runtime's command line is runc's and the engine's is docker's; they share a few
/// command names (`run`, `create`, `start`, `kill`, `exec`, `ps`, `pause`). Such a command
/// is the runtime's when a runtime option comes before it, when `run`/`create` name a
/// bundle (`--bundle`, `-b`, or a `config.json` in the current directory, as runc reads
/// it), or when one of its arguments is a container under the runtime's default root;
/// otherwise it is the engine's (`berth run busybox`, `berth ps`, `berth exec web ps`).
fn is_engine_command(args: &[String]) -> bool {
    let root = std::path::Path::new(DEFAULT_ROOT);
    // A runtime container is a directory with its record (not `..`, and not the engine's
    // own directories there, such as `netns`).
    routes_to_engine(args, std::path::Path::new("config.json").exists(), &|id| {
        !id.contains('/')
            && id != "."
            && id != ".."
            && root
                .join(id)
                .join(berth_backend_linux::state::STATE_FILE)
                .is_file()
    })
}

/// [`is_engine_command`] given what it looks at on the host: whether the current
/// directory holds a `config.json`, and whether a name is a container under the runtime's
/// default root.
fn routes_to_engine(
    args: &[String],
    bundle_here: bool,
    runtime_has: &dyn Fn(&str) -> bool,
) -> bool {
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let flag = arg.split('=').next().unwrap_or(arg);
        if ENGINE_GLOBALS.contains(&flag) {
            return true;
        }
        if RUNTIME_GLOBAL_FLAGS.contains(&flag) || RUNTIME_GLOBALS_WITH_VALUE.contains(&flag) {
            return false;
        }
        if arg.starts_with('-') {
            i += 1;
            continue;
        }
        let rest = &args[i + 1..];
        return match arg.as_str() {
            a if ENGINE_COMMANDS.contains(&a) => true,
            "run" | "create" => !bundle_here && engine_run_flags_only(rest),
            "start" | "kill" | "exec" | "ps" | "pause" => !rest
                .iter()
                .any(|r| !r.starts_with('-') && !r.is_empty() && runtime_has(r)),
            _ => false,
        };
    }
    false
}

/// Flags of the engine's `run`/`create` that take a value.
const ENGINE_RUN_VALUE_FLAGS: [&str; 29] = [
    "--name",
    "-e",
    "--env",
    "--env-file",
    "-v",
    "--volume",
    "--tmpfs",
    "-w",
    "--workdir",
    "-u",
    "--user",
    "--hostname",
    "--entrypoint",
    "-m",
    "--memory",
    "--cpus",
    "--pids-limit",
    "--cap-add",
    "--cap-drop",
    "--network",
    "--ip",
    "--network-alias",
    "-p",
    "--publish",
    "--add-host",
    "--log-opt",
    "--data-root",
    "--exec-root",
    "--log-driver",
];
/// Flags of the engine's `run`/`create` without a value (`-dit` style bundles are split).
const ENGINE_RUN_BOOL_FLAGS: [&str; 12] = [
    "-d",
    "--detach",
    "-i",
    "--interactive",
    "-t",
    "--tty",
    "--rm",
    "--read-only",
    "--privileged",
    "--dry-run",
    "-h",
    "--help",
];

/// Whether the flags before the first operand of `run`/`create` are all the engine's
/// (`run -d --name web busybox ...`): any other flag (`--bundle`, `--pid-file`,
/// `--console-socket`, `--dry-run=json`, or one neither knows) makes it the runtime's.
fn engine_run_flags_only(rest: &[String]) -> bool {
    let mut i = 0;
    while let Some(arg) = rest.get(i) {
        if !arg.starts_with('-') || arg == "-" {
            return true;
        }
        if arg == "--" {
            return true;
        }
        let (flag, has_value) = match arg.split_once('=') {
            Some((f, _)) => (f, true),
            None => (arg.as_str(), false),
        };
        if ENGINE_RUN_VALUE_FLAGS.contains(&flag) {
            i += if has_value { 1 } else { 2 };
            continue;
        }
        if !has_value && ENGINE_RUN_BOOL_FLAGS.contains(&flag) {
            i += 1;
            continue;
        }
        // Short flags bundled (`-dit`, `-it`).
        if !flag.starts_with("--")
            && !has_value
            && flag.len() > 2
            && flag[1..].chars().all(|c| matches!(c, 'd' | 'i' | 't'))
        {
            i += 1;
            continue;
        }
        return false;
    }
    // No operand: `berth run` alone is a usage error either way; runc's wording.
    false
}

/// The runtime's default state root.
const DEFAULT_ROOT: &str = "/run/berth";

/// Executes `berth-engine` (beside this binary) with the same arguments.
fn exec_engine(raw: &[std::ffi::OsString], args: &[String]) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let engine = match std::env::current_exe() {
        Ok(me) => me.with_file_name("berth-engine"),
        Err(err) => {
            eprintln!("berth: cannot find its own binary: {err}");
            return ExitCode::from(125);
        }
    };
    let err = std::process::Command::new(&engine)
        .arg0("berth")
        .args(raw)
        .exec();
    eprintln!(
        "berth: {:?} is an engine command, and the engine {} cannot run: {err}",
        args.iter()
            .find(|a| !a.starts_with('-'))
            .map_or("", |a| a.as_str()),
        engine.display()
    );
    ExitCode::from(125)
}

fn main() -> ExitCode {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let args: Vec<String> = raw
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if is_engine_command(&args) {
        return exec_engine(&raw, &args);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout and succeed; usage errors fail like any other.
            let code = if err.use_stderr() { 1 } else { 0 };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    let mut logger = Logger::new(cli.log.clone(), cli.log_format, cli.debug);
    if puts_a_process_into_a_container(&cli)
        && let Err(err) = berth_backend_linux::selfexe::ensure_sealed_exe(&cli.root)
    {
        logger.error_to_file(&err.to_string());
        eprintln!("berth: {err}");
        return ExitCode::FAILURE;
    }
    // `--trace FILE`, or the BERTH_TRACE environment variable.
    let trace = cli
        .trace
        .clone()
        .or_else(|| std::env::var_os("BERTH_TRACE").map(PathBuf::from));
    if let Some(path) = &trace
        && let Err(err) = lifecycle::set_trace(path)
    {
        eprintln!("berth: {err:#}");
        return ExitCode::FAILURE;
    }
    let global = Global {
        root: cli.root,
        systemd_cgroup: cli.systemd_cgroup,
    };
    let result = match cli.command {
        _ if cli.version => {
            println!(
                "berth version {}\nspec: {}",
                env!("CARGO_PKG_VERSION"),
                spec_version()
            );
            Ok(())
        }
        None => Err(anyhow::anyhow!("no command given (see berth --help)")),
        Some(Command::Spec(args)) => spec::spec(&args, &mut logger),
        Some(Command::Create(args)) => {
            create::create(&global, &args, create::Mode::Create, &mut logger).map(drop)
        }
        Some(Command::Run(args)) => {
            let mode = create::Mode::Run {
                detach: args.detach,
                keep: args.keep,
            };
            match create::create(&global, &args.create, mode, &mut logger) {
                // The container's exit code is berth's.
                Ok(code) => return ExitCode::from(code),
                Err(err) => Err(err),
            }
        }
        Some(Command::Start(args)) => lifecycle::start(&global, &args.id, &mut logger),
        Some(Command::State(args)) => lifecycle::state(&global, &args.id),
        Some(Command::Kill(args)) => lifecycle::kill(&global, &args, &mut logger),
        Some(Command::Delete(args)) => lifecycle::delete(&global, &args, &mut logger),
        Some(Command::List(args)) => lifecycle::list(&global, &args),
        Some(Command::Pause(args)) => lifecycle::pause(&global, &args.id, &mut logger),
        Some(Command::Resume(args)) => lifecycle::resume(&global, &args.id, &mut logger),
        Some(Command::Features) => lifecycle::features(),
        Some(Command::Exec(args)) => match exec::exec(&global, &args, &mut logger) {
            // The process's exit code is berth's.
            Ok(code) => return ExitCode::from(code),
            Err(err) => Err(err),
        },
        Some(Command::Ps(args)) => exec::ps(&global, &args),
        Some(Command::Update(args)) => update::update(&global, &args, &mut logger),
        Some(Command::Events(args)) => update::events(&global, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let line = format!("{err:#}");
            // As runc: a shim reads the error from `--log`; a person reads it on stderr.
            logger.error_to_file(&line);
            eprintln!("berth: {line}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::routes_to_engine;

    fn engine(line: &str, bundle_here: bool) -> bool {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        routes_to_engine(&args, bundle_here, &|id| id == "rt1")
    }

    #[test]
    fn engine_commands_go_to_the_engine() {
        for line in [
            "run busybox echo hi",
            "run -d --name web busybox",
            "run --rm -it busybox sh",
            "create busybox",
            "ps",
            "ps -a",
            "logs web",
            "exec web ps",
            "kill -s TERM web",
            "start web",
            "pause web",
            "images",
            "import x.tar busybox",
            "rm -f web",
            "network create web",
            "run -dit --name w -p 8080:80 --network web busybox sh",
            "run --rm -e A=1 --env=B=2 busybox env",
            "--data-root /d run busybox",
            "--data-root=/d ps",
        ] {
            assert!(engine(line, false), "{line}");
        }
    }

    #[test]
    fn runtime_commands_stay_in_the_runtime() {
        for line in [
            "",
            "--version",
            "spec",
            "state x",
            "delete --force x",
            "list",
            "--root /r run c1",
            "--root=/r ps c1",
            "--log /l --log-format json create --bundle /b c1",
            "run --bundle /b c1",
            "run -b /b c1",
            "create --bundle=/b c1",
            "start rt1",
            "kill rt1 KILL",
            "exec -t rt1 sh",
            "ps rt1",
            "pause rt1",
            "features",
            "resume rt1",
            "create --no-such-flag c1",
            "create --root /tmp/x --dry-run c1",
            "create --dry-run=yaml c1",
            "run --pid-file /p c1",
            "run -d --console-socket /s c1",
        ] {
            assert!(!engine(line, false), "{line}");
        }
        // runc reads ./config.json when no bundle is named.
        assert!(!engine("run c1", true));
    }
}
