//! `berth-engine`: berth's docker-style commands (images, containers made from them).
//!
//! Users type `berth run IMAGE`, `berth ps`, `berth logs web`: the `berth` runtime binary
//! sees an engine command and executes this binary beside it with the same arguments (see
//! `dispatch` in the runtime's main). The split keeps the runtime small and its start
//! cheap: the image store, SQLite and the engine's code are linked here only.
//!
//! Output contract as the runtime's: stdout carries only results (ids, tables, JSON,
//! container output); a failure is one line on stderr, `berth: ...`. Exit status is 0 on
//! success, the container's own code for `run` and `exec`, 125 when berth itself failed
//! (docker's convention), 1 for other failures.

#![forbid(unsafe_code)]

mod container;
mod cp;
mod image;
mod network;
mod pull;
mod registry;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use berth_backend_linux::engine::{DEFAULT_EXEC_ROOT, Engine};
use berth_backend_linux::store::DEFAULT_ROOT;
use clap::{Parser, Subcommand};

/// berth's engine: images, and containers made from them, like docker.
#[derive(Debug, Parser)]
#[command(name = "berth", arg_required_else_help = true)]
struct Cli {
    /// Where images and containers are kept.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_ROOT, global = true)]
    data_root: PathBuf,
    /// Where the engine keeps run-time state (the runtime's --root is under it).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_EXEC_ROOT, global = true)]
    exec_root: PathBuf,
    /// The command.
    #[command(subcommand)]
    command: Command,
}

/// The engine's commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Import a root file system tarball (plain, gzip or zstd) as an image, like
    /// `docker import`.
    Import(image::ImportArgs),
    /// List the images.
    Images(image::ImagesArgs),
    /// Remove images.
    Rmi(image::RmiArgs),
    /// Load images from a `docker save` archive or an OCI image layout.
    Load(image::LoadArgs),
    /// Save images to a tar archive (both `docker save` and OCI layout).
    Save(image::SaveArgs),
    /// Give an image another tag.
    Tag(image::TagArgs),
    /// Pull an image from a registry.
    Pull(pull::PullArgs),
    /// Push an image to a registry.
    Push(pull::PushArgs),
    /// Image commands (`image ls`, `inspect`, `prune`, `rm`).
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Create a container from an image and start it.
    Run(container::RunArgs),
    /// Create a container from an image (it does not run yet).
    Create(container::CreateArgs),
    /// Start stopped containers.
    Start(container::StartArgs),
    /// List containers.
    Ps(container::PsArgs),
    /// Print a container's logs.
    Logs(container::LogsArgs),
    /// Follow a running container's output until it exits.
    Attach(container::AttachArgs),
    /// Run a command in a running container.
    Exec(container::ExecArgs),
    /// Stop containers: the stop signal, then SIGKILL after a timeout.
    Stop(container::StopArgs),
    /// Stop and start containers again.
    Restart(container::StopArgs),
    /// Send a signal to containers.
    Kill(container::KillArgs),
    /// Wait for containers to exit and print their exit codes.
    Wait(container::NamesArgs),
    /// Remove containers.
    Rm(container::RmArgs),
    /// Freeze every process of containers.
    Pause(container::NamesArgs),
    /// Thaw paused containers.
    Unpause(container::NamesArgs),
    /// Print containers (or images) as JSON.
    Inspect(container::InspectArgs),
    /// Rename a container.
    Rename(container::RenameArgs),
    /// Show containers' CPU, memory and pids usage (every second until interrupted).
    Stats(stats::StatsArgs),
    /// Copy files and directories between a container and the host.
    Cp(cp::CpArgs),
    /// Network commands (`network create`, `ls`, `inspect`, `rm`, `connect`, ...).
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Container commands (`container prune`, `container ls`).
    #[command(subcommand)]
    Container(container::ContainerCommand),
    /// The monitor of a container (run by the engine itself).
    #[command(hide = true)]
    Monitor(container::MonitorArgs),
}

/// What every command needs: the engine over the chosen roots.
#[derive(Debug)]
pub(crate) struct Global {
    /// `--data-root`.
    pub(crate) data_root: PathBuf,
    /// The engine.
    pub(crate) engine: Engine,
}

/// The runtime binary (`berth`) and this binary, found beside each other.
fn binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    let me = std::env::current_exe()?;
    let runtime = me.with_file_name("berth");
    Ok((runtime, me))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { 125 } else { 0 };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    let (runtime, me) = match binaries() {
        Ok(b) => b,
        Err(err) => {
            eprintln!("berth: cannot find its own binary: {err}");
            return ExitCode::from(125);
        }
    };
    let global = Global {
        data_root: cli.data_root.clone(),
        engine: Engine {
            data_root: cli.data_root,
            exec_root: cli.exec_root,
            runtime,
            engine: me,
        },
    };
    // docker's convention: `run` and `create` fail with 125 when berth itself failed.
    let run_like = matches!(cli.command, Command::Run(_) | Command::Create(_));
    let result = match cli.command {
        Command::Import(args) => image::import(&global, &args).map(|()| 0),
        Command::Images(args) => image::images(&global, &args).map(|()| 0),
        Command::Rmi(args) => image::rmi(&global, &args).map(|()| 0),
        Command::Load(args) => image::load(&global, &args).map(|()| 0),
        Command::Save(args) => image::save(&global, &args).map(|()| 0),
        Command::Tag(args) => image::tag(&global, &args).map(|()| 0),
        Command::Pull(args) => pull::pull(&global, &args).map(|()| 0),
        Command::Push(args) => pull::push(&global, &args).map(|()| 0),
        Command::Image(cmd) => image::image_command(&global, cmd).map(|()| 0),
        Command::Run(args) => container::run(&global, &args),
        Command::Create(args) => container::create(&global, &args).map(|()| 0),
        Command::Start(args) => container::start(&global, &args),
        Command::Ps(args) => container::ps(&global, &args).map(|()| 0),
        Command::Logs(args) => container::logs(&global, &args).map(|()| 0),
        Command::Attach(args) => container::attach(&global, &args),
        Command::Exec(args) => container::exec(&global, &args),
        Command::Stop(args) => container::stop(&global, &args, false).map(|()| 0),
        Command::Restart(args) => container::stop(&global, &args, true).map(|()| 0),
        Command::Kill(args) => container::kill(&global, &args).map(|()| 0),
        Command::Wait(args) => container::wait(&global, &args).map(|()| 0),
        Command::Rm(args) => container::rm(&global, &args).map(|()| 0),
        Command::Pause(args) => container::pause(&global, &args, true).map(|()| 0),
        Command::Unpause(args) => container::pause(&global, &args, false).map(|()| 0),
        Command::Inspect(args) => container::inspect(&global, &args).map(|()| 0),
        Command::Rename(args) => container::rename(&global, &args).map(|()| 0),
        Command::Stats(args) => stats::stats(&global, &args).map(|()| 0),
        Command::Cp(args) => cp::cp(&global, &args).map(|()| 0),
        Command::Network(cmd) => network::network(&global, cmd).map(|()| 0),
        Command::Container(cmd) => container::container_command(&global, cmd).map(|()| 0),
        Command::Monitor(args) => Ok(i32::from(berth_backend_linux::engine::monitor::run(
            &global.engine,
            &args.id,
        ))),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
        Err(err) => {
            eprintln!("berth: {err:#}");
            ExitCode::from(if run_like { 125 } else { 1 })
        }
    }
}
