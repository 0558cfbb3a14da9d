//! The container commands, docker's: `run`, `create`, `start`, `ps`, `logs`, `exec`,
//! `stop`, `restart`, `kill`, `wait`, `rm`, `pause`, `unpause`, `inspect`, `rename`,
//! `container prune`, over [`berth_backend_linux::engine`].

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use berth_backend_linux::engine::monitor::{LOG_FILE, WINSIZE_FILE};
use berth_backend_linux::engine::{Engine, EngineError, NewContainer};
use berth_backend_linux::jsonlog::{ReadOptions, read_logs, write_plain};
use berth_backend_linux::store::StoreError;
use berth_backend_linux::store::containers::{ContainerRecord, ContainerState, StateChange};
use berth_core::runconfig::{NetworkMode, RunOptions};
use clap::{Args, Subcommand, ValueEnum};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use crate::Global;
use crate::image::{one_line, rfc3339, store_error};

/// Arguments of `create` (and of `run`, which adds `-d`).
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Keep stdin open (the container reads berth's stdin).
    #[arg(short, long)]
    interactive: bool,
    /// Give the container a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// The container's name (unique).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Set an environment variable (`KEY=VALUE`, or `KEY` to pass berth's own).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read environment variables from a file (`KEY=VALUE` lines; `#` comments).
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Bind mount a host path: `/HOST:/CONTAINER[:ro]`.
    #[arg(short, long = "volume", value_name = "SRC:DST[:MODE]")]
    volume: Vec<String>,
    /// Mount a tmpfs: `/CONTAINER[:OPTIONS]`.
    #[arg(long, value_name = "DST[:OPTIONS]")]
    tmpfs: Vec<String>,
    /// The working directory in the container.
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// The user: `USER[:GROUP]`, names or ids.
    #[arg(short, long, value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// The container's hostname.
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// Override the image's entrypoint (`""` clears it).
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    /// Memory limit (`512m`, `1g`).
    #[arg(short, long, value_name = "SIZE")]
    memory: Option<String>,
    /// CPUs (`1.5`).
    #[arg(long, value_name = "N")]
    cpus: Option<String>,
    /// At most this many processes.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Mount the root file system read-only.
    #[arg(long)]
    read_only: bool,
    /// Add a capability.
    #[arg(long, value_name = "CAP")]
    cap_add: Vec<String>,
    /// Drop a capability.
    #[arg(long, value_name = "CAP")]
    cap_drop: Vec<String>,
    /// Every capability and device, no masked paths.
    #[arg(long)]
    privileged: bool,
    /// Logging options: `max-size=SIZE` (rotate at, `10m`), `max-file=N` (files kept).
    #[arg(long, value_name = "KEY=VALUE")]
    log_opt: Vec<String>,
    /// `none` (a network namespace with loopback only), `host`, `bridge` (the default
    /// network, made on first use) or a network's name.
    #[arg(long, value_name = "NETWORK", default_value = "none")]
    network: String,
    /// The container's address on its network.
    #[arg(long, value_name = "IP")]
    ip: Option<std::net::IpAddr>,
    /// Another name the container answers to on its network.
    #[arg(long, value_name = "ALIAS")]
    network_alias: Vec<String>,
    /// Publish a port: `[HOSTIP:]HOSTPORT:CPORT[/tcp|udp]`.
    #[arg(short, long = "publish", value_name = "PORTS")]
    publish: Vec<String>,
    /// Add a line to /etc/hosts: `NAME:IP`.
    #[arg(long, value_name = "NAME:IP")]
    add_host: Vec<String>,
    /// The image.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// The command and its arguments (the image's by default).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
}

/// Arguments of `run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Run in the background and print the container's id.
    #[arg(short, long)]
    detach: bool,
    /// Print the overlay mount plan, the generated config.json and the runtime's create
    /// plan; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The container.
    #[command(flatten)]
    create: CreateArgs,
}

/// Containers named by name, id or unique id prefix.
#[derive(Debug, Args)]
pub(crate) struct NamesArgs {
    /// The containers.
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

/// Arguments of `start`.
#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    /// The containers.
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

/// Arguments of `stop` and `restart`.
#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// Seconds to wait after the stop signal before SIGKILL.
    #[arg(short, long = "time", value_name = "SECONDS", default_value_t = 10)]
    time: u64,
    /// The containers.
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

/// Arguments of `kill`.
#[derive(Debug, Args)]
pub(crate) struct KillArgs {
    /// The signal (name or number).
    #[arg(short, long, value_name = "SIGNAL", default_value = "KILL")]
    signal: String,
    /// The containers.
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

/// Arguments of `rm`.
#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// Kill and remove running containers.
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes too (berth makes none yet).
    #[arg(short, long)]
    volumes: bool,
    /// The containers.
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

/// How `ps` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PsFormat {
    /// Aligned columns.
    Table,
    /// One JSON object per line.
    Json,
}

/// Arguments of `ps`.
#[derive(Debug, Args)]
pub(crate) struct PsArgs {
    /// Show every container (running ones only by default).
    #[arg(short, long)]
    all: bool,
    /// Print only ids.
    #[arg(short, long)]
    quiet: bool,
    /// Full ids and commands.
    #[arg(long)]
    no_trunc: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PsFormat::Table)]
    format: PsFormat,
}

/// Arguments of `logs`.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// Follow the log until the container stops.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines (`all` for every line).
    #[arg(short = 'n', long, value_name = "N", default_value = "all")]
    tail: String,
    /// Prefix each line with its time.
    #[arg(short, long)]
    timestamps: bool,
    /// The container.
    #[arg(value_name = "CONTAINER")]
    container: String,
}

/// Arguments of `exec`.
#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// Run in the background.
    #[arg(short, long)]
    detach: bool,
    /// Keep stdin open.
    #[arg(short, long)]
    interactive: bool,
    /// Give the process a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Set an environment variable.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// The working directory.
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// The user: `USER[:GROUP]`.
    #[arg(short, long, value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// The container.
    #[arg(value_name = "CONTAINER")]
    container: String,
    /// The command and its arguments.
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
}

/// Arguments of `attach`.
#[derive(Debug, Args)]
pub(crate) struct AttachArgs {
    /// The container.
    #[arg(value_name = "CONTAINER")]
    container: String,
}

/// Arguments of `inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Containers or images.
    #[arg(value_name = "NAME", required = true)]
    names: Vec<String>,
}

/// Arguments of `rename`.
#[derive(Debug, Args)]
pub(crate) struct RenameArgs {
    /// The container.
    #[arg(value_name = "CONTAINER")]
    container: String,
    /// Its new name.
    #[arg(value_name = "NEW_NAME")]
    name: String,
}

/// Arguments of the hidden `monitor` role.
#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    /// The container's id.
    pub(crate) id: String,
}

/// `berth container ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ContainerCommand {
    /// Remove every stopped container.
    Prune,
    /// List containers (as `ps`).
    Ls(PsArgs),
}

/// Marks an error of berth itself (not of the container) for the exit status.
fn engine_error(err: EngineError) -> anyhow::Error {
    match err {
        EngineError::Store(e) => store_error(e),
        other => one_line(&other),
    }
}

fn lookup(g: &Global, name: &str) -> anyhow::Result<ContainerRecord> {
    g.engine
        .store()
        .map_err(engine_error)?
        .container(name)
        .map_err(store_error)
}

/// `KEY=VALUE` lines of an env file; `KEY` alone takes berth's own value, as docker.
fn env_entries(args: &CreateArgs) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut take = |entry: &str| {
        if entry.contains('=') {
            out.push(entry.to_owned());
        } else if let Ok(value) = std::env::var(entry) {
            out.push(format!("{entry}={value}"));
        }
    };
    for file in &args.env_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--env-file {}", file.display()))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            take(line);
        }
    }
    for entry in &args.env {
        take(entry);
    }
    Ok(out)
}

fn new_container(args: &CreateArgs) -> anyhow::Result<NewContainer> {
    let (network, bridge) = match args.network.as_str() {
        "none" => (NetworkMode::None, None),
        "host" => (NetworkMode::Host, None),
        name => (NetworkMode::None, Some(name.to_owned())),
    };
    if bridge.is_none() && (args.ip.is_some() || !args.network_alias.is_empty()) {
        bail!("--ip and --network-alias need a bridge network (--network bridge or a name)");
    }
    let ports = args
        .publish
        .iter()
        .map(|p| berth_core::network::parse_port_mapping(p).map_err(|e| anyhow!("-p: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let extra_hosts = args
        .add_host
        .iter()
        .map(|h| berth_core::network::parse_extra_host(h).map_err(|e| anyhow!("--add-host: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = RunOptions {
        id: String::new(),
        name: args.name.clone(),
        hostname: args.hostname.clone(),
        rootfs: String::new(),
        env: env_entries(args)?,
        entrypoint: args.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                Vec::new()
            } else {
                vec![e.clone()]
            }
        }),
        cmd: args.command.clone(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        tty: args.tty,
        memory: args.memory.clone(),
        cpus: args.cpus.clone(),
        pids_limit: args.pids_limit,
        read_only: args.read_only,
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        privileged: args.privileged,
        volumes: args.volume.clone(),
        tmpfs: args.tmpfs.clone(),
        network,
    };
    let mut log_max_size = None;
    let mut log_max_files = 1;
    for opt in &args.log_opt {
        match opt.split_once('=') {
            Some(("max-size", v)) => {
                log_max_size = Some(
                    berth_core::runconfig::parse_memory(v)
                        .map_err(|_| anyhow!("--log-opt {opt:?}: invalid size {v:?}"))?,
                );
            }
            Some(("max-file", v)) => {
                log_max_files = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| anyhow!("--log-opt {opt:?}: expected a number >= 1"))?;
            }
            _ => bail!("--log-opt {opt:?}: berth knows max-size=SIZE and max-file=N"),
        }
    }
    Ok(NewContainer {
        image: args.image.clone(),
        options,
        auto_remove: args.rm,
        interactive: args.interactive,
        log_max_size,
        log_max_files,
        console_size: if args.tty {
            berth_backend_linux::get_winsize(io::stdout()).ok()
        } else {
            None
        },
        network: bridge,
        ip: args.ip,
        aliases: args.network_alias.clone(),
        ports,
        extra_hosts,
    })
}

/// `berth create`: prints the new container's id.
pub(crate) fn create(g: &Global, args: &CreateArgs) -> anyhow::Result<()> {
    let c = g
        .engine
        .create(&new_container(args)?)
        .map_err(engine_error)?;
    println!("{}", c.id);
    Ok(())
}

/// `berth run`: with `-d`, prints the id once the container runs; otherwise streams its
/// output and exits with its exit code.
pub(crate) fn run(g: &Global, args: &RunArgs) -> anyhow::Result<i32> {
    let engine = &g.engine;
    let req = new_container(&args.create)?;
    if args.dry_run {
        print!("{}", engine.dry_run(&req).map_err(engine_error)?);
        return Ok(0);
    }
    let c = engine.create(&req).map_err(engine_error)?;
    let mut monitor = match engine.start(&c) {
        Ok(m) => m,
        Err(err) => {
            if args.create.rm {
                let _ = engine.remove(&c, true);
            }
            return Err(engine_error(err));
        }
    };
    if args.detach {
        monitor.detach();
        println!("{}", c.id);
        return Ok(0);
    }
    let done = Arc::new(AtomicBool::new(false));
    let waiter = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let code = monitor.exit_code();
            done.store(true, Ordering::SeqCst);
            (code, monitor)
        })
    };
    let log = engine.container_dir(&c.id).join(LOG_FILE);
    // With -t, the terminal's size follows along: a change goes to the monitor through
    // the container's `winsize` file (looked at whenever the log is polled).
    let winsize = engine.container_dir(&c.id).join(WINSIZE_FILE);
    let last = std::cell::Cell::new(None);
    let stop = || {
        if args.create.tty
            && let Ok(size) = berth_backend_linux::get_winsize(io::stdout())
            && last.get() != Some(size)
        {
            last.set(Some(size));
            let _ = std::fs::write(&winsize, format!("{} {}\n", size.0, size.1));
        }
        done.load(Ordering::SeqCst)
    };
    // `-it` on a terminal: keys go to the container's pty as typed (^C included); its
    // line discipline echoes them.
    let raw = (args.create.tty && args.create.interactive)
        .then(|| RawMode::enter(io::stdin()).ok())
        .flatten();
    let result = follow_log(&log, None, false, true, &stop);
    drop(raw);
    let (code, monitor) = waiter
        .join()
        .map_err(|_| anyhow!("the thread waiting for the monitor panicked"))?;
    monitor.close();
    result?;
    code.ok_or_else(|| {
        anyhow!(
            "container {}: its monitor ended without an exit code",
            c.name
        )
    })
}

/// The user's terminal in raw mode (`cfmakeraw`, as runc's `SetRaw`); restored on drop.
struct RawMode {
    tty: io::Stdin,
    saved: Termios,
}

impl RawMode {
    fn enter(tty: io::Stdin) -> nix::Result<RawMode> {
        let saved = tcgetattr(&tty)?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&tty, SetArg::TCSANOW, &raw)?;
        Ok(RawMode { tty, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(&self.tty, SetArg::TCSADRAIN, &self.saved);
    }
}

/// Copies a container's log to stdout and stderr; `raw` (an attached `run` or `attach`)
/// passes each piece on at once, a prompt without a newline too.
fn follow_log(
    log: &std::path::Path,
    tail: Option<usize>,
    timestamps: bool,
    raw: bool,
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let stderr = io::stderr();
    let opts = ReadOptions {
        tail,
        follow: true,
        stop_following: stop,
        raw,
    };
    read_logs(log, &opts, &mut |line| {
        let (mut out, mut err) = (stdout.lock(), stderr.lock());
        write_plain(line, timestamps, &mut out, &mut err)?;
        if raw {
            out.flush()?;
        }
        Ok(())
    })
    .with_context(|| format!("reading {}", log.display()))
}

/// `berth start`: starts each container under a new monitor; prints its name.
pub(crate) fn start(g: &Global, args: &StartArgs) -> anyhow::Result<i32> {
    for name in &args.containers {
        let c = lookup(g, name)?;
        let monitor = g.engine.start(&c).map_err(engine_error)?;
        monitor.detach();
        println!("{name}");
    }
    Ok(0)
}

/// docker's `units.HumanDuration`.
fn human_duration(secs: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match secs {
        0 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        s if s < 60 => plural(s, "second"),
        s if s / 60 == 1 => "About a minute".to_owned(),
        s if s < 3600 => plural(s / 60, "minute"),
        s if s / 3600 == 1 => "About an hour".to_owned(),
        s if s < 48 * 3600 => plural(s / 3600, "hour"),
        s if s < 7 * 2 * 86_400 => plural(s / 86_400, "day"),
        s if s < 30 * 3 * 86_400 => plural(s / (7 * 86_400), "week"),
        s if s < 365 * 2 * 86_400 => plural(s / (30 * 86_400), "month"),
        s => plural(s / (365 * 86_400), "year"),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What `ps` shows of one container.
struct Shown {
    c: ContainerRecord,
    state: ContainerState,
}

impl Shown {
    fn status(&self) -> String {
        let ago = |t: Option<u64>| human_duration(now().saturating_sub(t.unwrap_or(0)));
        match self.state {
            ContainerState::Running => format!("Up {}", ago(self.c.started)),
            ContainerState::Paused => format!("Up {} (Paused)", ago(self.c.started)),
            ContainerState::Created => "Created".to_owned(),
            ContainerState::Removing => "Removal In Progress".to_owned(),
            ContainerState::Exited => match (self.c.state, self.c.exit_code) {
                // The row says running: a crash left it, and the runtime has no process.
                (ContainerState::Running | ContainerState::Paused, _) => {
                    "Exited (unknown): its monitor is gone".to_owned()
                }
                (_, Some(code)) => format!("Exited ({code}) {} ago", ago(self.c.finished)),
                (_, None) => "Exited".to_owned(),
            },
        }
    }

    fn command(&self, full: bool) -> String {
        let settings = Engine::settings(&self.c).ok();
        let text = settings.map(|s| s.args.join(" ")).unwrap_or_default();
        if full || text.chars().count() <= 20 {
            format!("\"{text}\"")
        } else {
            format!("\"{}…\"", text.chars().take(19).collect::<String>())
        }
    }
}

fn shown(g: &Global, all: bool) -> anyhow::Result<Vec<Shown>> {
    let store = g.engine.store().map_err(engine_error)?;
    let rows = store.containers().map_err(store_error)?;
    drop(store);
    Ok(rows
        .into_iter()
        .map(|c| Shown {
            state: g.engine.observed_state(&c),
            c,
        })
        .filter(|s| all || matches!(s.state, ContainerState::Running | ContainerState::Paused))
        .collect())
}

/// `berth ps`.
pub(crate) fn ps(g: &Global, args: &PsArgs) -> anyhow::Result<()> {
    let list = shown(g, args.all)?;
    let mut out = io::stdout().lock();
    let id = |s: &Shown| {
        if args.no_trunc {
            s.c.id.clone()
        } else {
            s.c.short_id().to_owned()
        }
    };
    if args.quiet {
        for s in &list {
            writeln!(out, "{}", id(s))?;
        }
        return Ok(out.flush()?);
    }
    match args.format {
        PsFormat::Json => {
            for s in &list {
                let created = SystemTime::UNIX_EPOCH + Duration::from_secs(s.c.created);
                let line = serde_json::json!({
                    "ID": id(s),
                    "Image": s.c.image_ref,
                    "Command": s.command(true),
                    "CreatedAt": rfc3339(created),
                    "Status": s.status(),
                    "State": s.state.as_str(),
                    "Names": s.c.name,
                });
                writeln!(out, "{line}")?;
            }
        }
        PsFormat::Table => {
            let mut table = vec![[
                "CONTAINER ID".to_owned(),
                "IMAGE".to_owned(),
                "COMMAND".to_owned(),
                "CREATED".to_owned(),
                "STATUS".to_owned(),
                "NAMES".to_owned(),
            ]];
            for s in &list {
                table.push([
                    id(s),
                    s.c.image_ref.clone(),
                    s.command(args.no_trunc),
                    format!("{} ago", human_duration(now().saturating_sub(s.c.created))),
                    s.status(),
                    s.c.name.clone(),
                ]);
            }
            let mut widths = [0usize; 6];
            for row in &table {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            for row in &table {
                let mut line = String::new();
                for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                    if i + 1 == row.len() {
                        line.push_str(cell);
                    } else {
                        let pad = w - cell.chars().count() + 3;
                        line.push_str(cell);
                        line.push_str(&" ".repeat(pad));
                    }
                }
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(out.flush()?)
}

/// `berth logs`.
pub(crate) fn logs(g: &Global, args: &LogsArgs) -> anyhow::Result<()> {
    let c = lookup(g, &args.container)?;
    let tail = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse::<usize>()
                .map_err(|_| anyhow!("--tail {n:?}: expected a number or `all`"))?,
        ),
    };
    let log = g.engine.container_dir(&c.id).join(LOG_FILE);
    if !log.exists() {
        return Ok(());
    }
    let engine = &g.engine;
    let id = c.id.clone();
    let follow = args.follow;
    let stop = move || {
        !follow
            || engine
                .store()
                .ok()
                .and_then(|s| s.container(&id).ok())
                .is_none_or(|c| {
                    !matches!(c.state, ContainerState::Running | ContainerState::Paused)
                        || engine.observed_state(&c) == ContainerState::Exited
                })
    };
    follow_log(&log, tail, args.timestamps, false, &stop)
}

/// `berth attach`: the running container's output from now on, until it exits; exits
/// with its exit code. Its stdin is the one it was started with (`run -i`): berth does
/// not forward a new one.
pub(crate) fn attach(g: &Global, args: &AttachArgs) -> anyhow::Result<i32> {
    let c = lookup(g, &args.container)?;
    if !matches!(
        g.engine.observed_state(&c),
        ContainerState::Running | ContainerState::Paused
    ) {
        bail!(
            "container {} is not running: you cannot attach to a stopped container",
            c.name
        );
    }
    let log = g.engine.container_dir(&c.id).join(LOG_FILE);
    let engine = &g.engine;
    let id = c.id.clone();
    let stop = || {
        engine
            .store()
            .ok()
            .and_then(|s| s.container(&id).ok())
            .is_none_or(|c| !matches!(c.state, ContainerState::Running | ContainerState::Paused))
    };
    follow_log(&log, Some(0), false, true, &stop)?;
    let after = engine.wait_exit(&c.id, None).map_err(engine_error)?;
    Ok(after.and_then(|c| c.exit_code).unwrap_or(0))
}

/// `berth exec`: the runtime's `exec` in the container; its exit code.
pub(crate) fn exec(g: &Global, args: &ExecArgs) -> anyhow::Result<i32> {
    let c = lookup(g, &args.container)?;
    if g.engine.observed_state(&c) != ContainerState::Running {
        bail!("container {} is not running", c.name);
    }
    let mut runtime_args: Vec<String> = vec!["exec".to_owned()];
    if args.tty {
        runtime_args.push("--tty".to_owned());
    }
    if args.detach {
        runtime_args.push("--detach".to_owned());
    }
    for e in &args.env {
        runtime_args.push("--env".to_owned());
        runtime_args.push(e.clone());
    }
    if let Some(w) = &args.workdir {
        runtime_args.push("--cwd".to_owned());
        runtime_args.push(w.clone());
    }
    if let Some(u) = &args.user {
        let settings = Engine::settings(&c).map_err(engine_error)?;
        let user = g
            .engine
            .resolve_user(&c.image_ref, &settings.layers, u)
            .map_err(engine_error)?;
        runtime_args.push("--user".to_owned());
        runtime_args.push(format!("{}:{}", user.uid, user.gid));
    }
    runtime_args.push(c.id.clone());
    runtime_args.extend(args.command.iter().cloned());
    let refs: Vec<&str> = runtime_args.iter().map(String::as_str).collect();
    let mut cmd = g.engine.runtime_command(&refs);
    if !args.interactive {
        cmd.stdin(std::process::Stdio::null());
    }
    let status = cmd.status().context("running the runtime's exec")?;
    Ok(status.code().unwrap_or(125))
}

/// `berth stop` (or `restart` when `restart`).
pub(crate) fn stop(g: &Global, args: &StopArgs, restart: bool) -> anyhow::Result<()> {
    for name in &args.containers {
        let c = lookup(g, name)?;
        g.engine
            .stop(&c, Duration::from_secs(args.time))
            .map_err(engine_error)?;
        if restart {
            let c = lookup(g, name)?;
            g.engine.start(&c).map_err(engine_error)?.detach();
        }
        println!("{name}");
    }
    Ok(())
}

/// `berth kill`.
pub(crate) fn kill(g: &Global, args: &KillArgs) -> anyhow::Result<()> {
    let signal = args.signal.trim_start_matches("SIG");
    for name in &args.containers {
        let c = lookup(g, name)?;
        g.engine.kill(&c, signal).map_err(engine_error)?;
        println!("{name}");
    }
    Ok(())
}

/// `berth wait`: prints each container's exit code once it has exited.
pub(crate) fn wait(g: &Global, args: &NamesArgs) -> anyhow::Result<()> {
    for name in &args.containers {
        let c = lookup(g, name)?;
        let after = g.engine.wait_exit(&c.id, None).map_err(engine_error)?;
        let code = after.and_then(|c| c.exit_code).unwrap_or(0);
        println!("{code}");
    }
    Ok(())
}

/// `berth rm`.
pub(crate) fn rm(g: &Global, args: &RmArgs) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for name in &args.containers {
        let result =
            lookup(g, name).and_then(|c| g.engine.remove(&c, args.force).map_err(engine_error));
        match result {
            Ok(()) => println!("{name}"),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(failures.join("; ")))
    }
}

/// `berth pause` / `unpause`.
pub(crate) fn pause(g: &Global, args: &NamesArgs, freeze: bool) -> anyhow::Result<()> {
    for name in &args.containers {
        let c = lookup(g, name)?;
        let (command, state) = if freeze {
            ("pause", ContainerState::Paused)
        } else {
            ("resume", ContainerState::Running)
        };
        g.engine
            .runtime_ok(&[command, &c.id])
            .map_err(engine_error)?;
        let mut store = g.engine.store().map_err(engine_error)?;
        store
            .set_container_state(
                &c.id,
                &StateChange {
                    state,
                    pid: c.pid,
                    exit_code: None,
                    started: None,
                    finished: None,
                },
            )
            .map_err(store_error)?;
        println!("{name}");
    }
    Ok(())
}

fn container_json(g: &Global, c: &ContainerRecord) -> serde_json::Value {
    let settings = Engine::settings(c).ok();
    let state = g.engine.observed_state(c);
    let time = |t: Option<u64>| {
        t.map(|s| rfc3339(UNIX_EPOCH + Duration::from_secs(s)))
            .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_owned())
    };
    let dir = g.engine.container_dir(&c.id);
    let args = settings
        .as_ref()
        .map(|s| s.args.clone())
        .unwrap_or_default();
    let lower: Vec<String> = settings
        .as_ref()
        .map(|s| {
            s.layers
                .iter()
                .rev()
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "Id": c.id,
        "Created": time(Some(c.created)),
        "Path": args.first().cloned().unwrap_or_default(),
        "Args": args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": state.as_str(),
            "Running": matches!(state, ContainerState::Running | ContainerState::Paused),
            "Paused": state == ContainerState::Paused,
            "Pid": if matches!(state, ContainerState::Running | ContainerState::Paused) { c.pid.unwrap_or(0) } else { 0 },
            "ExitCode": c.exit_code.unwrap_or(0),
            "StartedAt": time(c.started),
            "FinishedAt": time(c.finished),
        },
        "Image": c.image.to_string(),
        "Name": format!("/{}", c.name),
        "LogPath": dir.join(LOG_FILE),
        "HostConfig": { "AutoRemove": settings.as_ref().is_some_and(|s| s.auto_remove) },
        "Config": {
            "Image": c.image_ref,
            "Tty": settings.as_ref().is_some_and(|s| s.tty),
            "OpenStdin": settings.as_ref().is_some_and(|s| s.interactive),
        },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": lower.join(":"),
                "UpperDir": dir.join("upper"),
                "WorkDir": dir.join("work"),
                "MergedDir": dir.join("rootfs"),
            },
        },
    })
}

/// `berth inspect`: containers first, then images, as a JSON array.
pub(crate) fn inspect(g: &Global, args: &InspectArgs) -> anyhow::Result<()> {
    let store = g.engine.store().map_err(engine_error)?;
    let mut out = Vec::new();
    for name in &args.names {
        match store.container(name) {
            Ok(c) => out.push(container_json(g, &c)),
            Err(StoreError::UnknownContainer { .. }) => {
                let id = store
                    .resolve(name)
                    .map_err(|_| anyhow!("no such container or image: {name}"))?;
                out.push(store.inspect(&id).map_err(store_error)?);
            }
            Err(e) => return Err(store_error(e)),
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// `berth rename`.
pub(crate) fn rename(g: &Global, args: &RenameArgs) -> anyhow::Result<()> {
    let c = lookup(g, &args.container)?;
    g.engine.rename(&c, &args.name).map_err(engine_error)
}

/// `berth container ...`.
pub(crate) fn container_command(g: &Global, cmd: ContainerCommand) -> anyhow::Result<()> {
    match cmd {
        ContainerCommand::Ls(args) => ps(g, &args),
        ContainerCommand::Prune => {
            let list = shown(g, true)?;
            println!("Deleted Containers:");
            for s in list {
                if matches!(s.state, ContainerState::Exited | ContainerState::Created) {
                    g.engine.remove(&s.c, false).map_err(engine_error)?;
                    println!("{}", s.c.id);
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_read_as_docker_prints_them() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(61), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3700), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
        assert_eq!(human_duration(3 * 86_400), "3 days");
    }
}
