//! `berth create` and `berth run`: read the bundle, probe the host, plan, then print or
//! execute.
//!
//! Invariant: everything before [`carry_out`] only reads (the bundle, the rootfs's
//! `/etc/passwd`, `/proc`, `/sys`), so `--dry-run` touches nothing on the host and works as
//! an unprivileged user. [`carry_out`] is the one place where a plan meets the host. (The
//! one exception, not in a dry run: the private console socket a foreground terminal
//! needs, listening before the plan that names it; see `tty`.)

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use berth_backend_linux::LinuxError;
use berth_core::config::{Config, CreateOptions, CreateRequest};
use berth_core::exec::{ExecError, execute, execute_range};
use berth_core::plan::{HostPath, Plan};
use berth_core::planner::create::start_barrier;

use crate::log::Logger;
use crate::{CreateArgs, DryRun, Global};

/// Which command is planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `berth create`: stop at the start barrier.
    Create,
    /// `berth run`: create, start and (unless `detach`) wait for the container, then
    /// delete it (unless `keep`), as `runc run` does.
    Run {
        /// `-d`: return once the container has started.
        detach: bool,
        /// `--keep`: leave the exited container for `delete`.
        keep: bool,
    },
}

/// Runs `berth create` or `berth run`; returns the exit code berth ends with (the
/// container's, for a foreground `run`).
pub(crate) fn create(
    global: &Global,
    args: &CreateArgs,
    mode: Mode,
    log: &mut Logger,
) -> anyhow::Result<u8> {
    validate_id(&args.id)?;
    let bundle = absolute(&args.bundle)?;
    let config_path = bundle.join("config.json");
    let text = fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let mut config = berth_core::spec::parse_config(&text, &host_path(&bundle)?)
        .with_context(|| config_path.display().to_string())?;
    // A foreground terminal without --console-socket: berth takes the pty itself.
    let console = match (check_console(&config, args, mode)?, args.dry_run) {
        (false, _) => None,
        (true, Some(_)) => Some(crate::tty::ConsoleSocket::planned()),
        (true, None) => Some(crate::tty::ConsoleSocket::bind()?),
    };
    if console.is_some() {
        crate::tty::size_console(&mut config);
    }
    if global.systemd_cgroup {
        systemd_cgroup_driver()?;
    }
    let home = home_of(&config, log);
    let facts = berth_backend_linux::probe::host_facts().context("probing the host")?;
    log.debug(&format!("host facts: {facts:?}"));
    let request = CreateRequest {
        id: args.id.clone(),
        bundle: host_path(&bundle)?,
        state_root: host_path(&absolute(&global.root)?)?,
        config,
        options: CreateOptions {
            no_pivot: args.no_pivot,
            pid_file: args
                .pid_file
                .as_deref()
                .map(absolute_host_path)
                .transpose()?,
            console_socket: match &console {
                Some(own) => Some(host_path(own.path())?),
                None => args
                    .console_socket
                    .as_deref()
                    .map(absolute_host_path)
                    .transpose()?,
            },
            preserve_fds: args.preserve_fds,
            no_new_keyring: args.no_new_keyring,
        },
        home,
    };
    let plan = berth_core::planner::create::plan_create(&request, &facts)
        .with_context(|| format!("planning container {}", args.id))?;
    log.debug(&format!("planned {} steps", plan.steps.len()));
    match args.dry_run {
        Some(format) => print_plan(&plan, format).map(|()| 0),
        None => carry_out(&plan, &request, mode, console, log),
    }
}

/// Prints a plan on stdout (`--dry-run`).
fn print_plan(plan: &Plan, format: DryRun) -> anyhow::Result<()> {
    let text = match format {
        DryRun::Text => plan.to_string(),
        DryRun::Json => format!("{}\n", plan.to_json()),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing the plan to stdout")
}

/// Executes a create (or run) plan on this host: `create` stops before the start barrier
/// and leaves init waiting there; `run` carries out the whole plan, then, in the
/// foreground, waits for the container's process (relaying its terminal when berth is
/// its `console`), deletes the container (unless `--keep`) and returns its exit code.
fn carry_out(
    plan: &Plan,
    request: &CreateRequest,
    mode: Mode,
    console: Option<crate::tty::ConsoleSocket>,
    log: &mut Logger,
) -> anyhow::Result<u8> {
    let root = Path::new(request.state_root.as_str());
    if berth_backend_linux::state::state_dir(root, &request.id).exists() {
        bail!("container with given ID already exists");
    }
    let mut backend = crate::lifecycle::new_backend();
    match mode {
        Mode::Create => {
            let barrier = start_barrier(plan)
                .ok_or_else(|| anyhow!("the create plan has no start barrier"))?;
            execute_range(plan, 0..barrier, &mut backend).map_err(exec_failed)?;
            Ok(0)
        }
        Mode::Run { detach, keep } => {
            execute(plan, &mut backend).map_err(exec_failed)?;
            if detach {
                backend.finish(plan)?;
                return Ok(0);
            }
            let code = match console {
                Some(console) => crate::tty::relay(console, &mut backend, plan)?,
                None => backend.wait_exit_forwarding(plan)?,
            };
            drop(backend);
            if !keep {
                crate::lifecycle::delete_stopped(root, &request.id, log)?;
            }
            // An exit code is 0..=255 and 128 + a signal number is at most 192.
            Ok(u8::try_from(code).unwrap_or(u8::MAX))
        }
    }
}

/// The error of a plan that failed (and was rolled back): the failing step's error, and
/// the undo steps that failed in turn, if any, all on one line.
pub(crate) fn exec_failed(err: ExecError<LinuxError>) -> anyhow::Error {
    if err.rollback.is_empty() {
        return anyhow::Error::new(err.source);
    }
    let undo: Vec<String> = err.rollback.iter().map(|(_, e)| e.to_string()).collect();
    anyhow!(
        "{:#}; rolling back failed too: {}",
        anyhow::Error::new(err.source),
        undo.join("; ")
    )
}

/// runc's rule: ASCII letters, digits and `_ + - .`, and not `.` or `..` (the id names a
/// directory under `--root`).
pub(crate) fn validate_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_+-.".contains(&c));
    if !ok {
        bail!("invalid container id {id:?}");
    }
    Ok(())
}

/// runc's rule: a console socket only makes sense for a container with a terminal. (The
/// converse, a detached terminal without a socket, is the planner's to refuse.) Returns
/// whether berth receives the terminal itself: a foreground `run` with a terminal and no
/// `--console-socket`, which berth relays to its own stdio (module `tty`), as runc does.
fn check_console(config: &Config, args: &CreateArgs, mode: Mode) -> anyhow::Result<bool> {
    let terminal = config.process.as_ref().is_some_and(|p| p.terminal);
    if !terminal && args.console_socket.is_some() {
        bail!("cannot use console socket if berth will not allocate tty");
    }
    let foreground = matches!(mode, Mode::Run { detach: false, .. });
    Ok(terminal && foreground && args.console_socket.is_none())
}

/// `--systemd-cgroup`: needs a running systemd (what `sd_booted` checks).
fn systemd_cgroup_driver() -> anyhow::Result<()> {
    if !Path::new("/run/systemd/system").is_dir() {
        bail!("--systemd-cgroup: systemd is not running (no /run/systemd/system)");
    }
    // TODO(issue 3): plan cgroups through systemd's D-Bus API.
    bail!("--systemd-cgroup is not supported yet (issue 3)")
}

/// `HOME` of the process's uid from the rootfs's `/etc/passwd`, if it has one; a missing or
/// unusable passwd is not an error (the planner falls back to `/`), only a debug line.
pub(crate) fn home_of(config: &Config, log: &mut Logger) -> Option<String> {
    let uid = config.process.as_ref()?.user.uid;
    let rootfs = Path::new(config.root.path.as_str());
    let text = match berth_backend_linux::probe::read_rootfs_file(rootfs, "/etc/passwd") {
        Ok(Some(text)) => text,
        Ok(None) => {
            log.debug(&format!("{}: no /etc/passwd", rootfs.display()));
            return None;
        }
        Err(err) => {
            log.debug(&format!("{:#}", anyhow::Error::new(err)));
            return None;
        }
    };
    match berth_core::user::parse_passwd(&text) {
        Ok(users) => {
            let home = users.into_iter().find(|u| u.uid == uid).map(|u| u.home);
            if home.is_none() {
                log.debug(&format!("{}/etc/passwd: no uid {uid}", rootfs.display()));
            }
            home
        }
        Err(err) => {
            log.debug(&format!("{}/etc/passwd: {err}", rootfs.display()));
            None
        }
    }
}

/// Makes `path` absolute against the current directory and removes `.` and `..`
/// lexically, as runc's `filepath.Abs` does (no symlink is resolved).
pub(crate) fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    let abs =
        std::path::absolute(path).with_context(|| format!("making {} absolute", path.display()))?;
    let mut clean = PathBuf::from("/");
    for component in abs.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::ParentDir => {
                clean.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(clean)
}

/// A path as a [`HostPath`]; plans are text, so the path must be UTF-8.
pub(crate) fn host_path(path: &Path) -> anyhow::Result<HostPath> {
    let text = path
        .to_str()
        .ok_or_else(|| anyhow!("path {} is not UTF-8", path.display()))?;
    Ok(HostPath::new(text))
}

fn absolute_host_path(path: &Path) -> anyhow::Result<HostPath> {
    host_path(&absolute(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc() {
        for ok in ["c1", "a.b", "A_b-c+d", "..a", "x.."] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "a,b", "a\n"] {
            let err = validate_id(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid container id"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn absolute_cleans_lexically() {
        assert_eq!(
            absolute(Path::new("/a/./b/../c/")).unwrap(),
            Path::new("/a/c")
        );
        assert_eq!(absolute(Path::new("/../..")).unwrap(), Path::new("/"));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute(Path::new(".")).unwrap(), cwd);
        assert_eq!(absolute(Path::new("x/../y")).unwrap(), cwd.join("y"));
    }
}
