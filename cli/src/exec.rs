//! `berth exec` and `berth ps`: a new process in a running container, and the list of a
//! container's processes.
//!
//! `exec` builds the process from `--process FILE` (a runtime-spec `process` object) or
//! from runc's human flags over the container's own `process`, validates it as part of the
//! container's config, plans it with berth-core's `plan_exec`, and has the Linux backend
//! carry it out; in the foreground it waits and exits with the process's code.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use berth_core::exec::execute;
use berth_core::planner::exec::{ExecOptions, plan_exec};
use berth_core::planner::lifecycle::leaf_cgroups;
use berth_core::state::{Command, ContainerRecord, check};

use crate::create::{exec_failed, home_of, host_path};
use crate::lifecycle::{backend_for, load, print_out, root};
use crate::log::Logger;
use crate::{ExecArgs, Global, PsArgs, PsFormat};

/// The container's config with its `process` replaced by `process`, parsed and validated.
fn config_with(
    record: &ContainerRecord,
    process: serde_json::Value,
) -> anyhow::Result<berth_core::config::Config> {
    let path = Path::new(record.bundle.as_str()).join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut config: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    config["process"] = process;
    berth_core::spec::parse_config(&config.to_string(), &record.bundle)
        .context("invalid exec process")
}

/// The `process` object of the exec: `--process FILE`, or the container's own with the
/// human flags applied.
fn process_json(record: &ContainerRecord, args: &ExecArgs) -> anyhow::Result<serde_json::Value> {
    if let Some(file) = &args.process {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        return serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()));
    }
    if args.command.is_empty() {
        bail!("exec: no command given (CMD... or --process FILE)");
    }
    let path = Path::new(record.bundle.as_str()).join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut p = config["process"].clone();
    if !p.is_object() {
        p = serde_json::json!({"user": {"uid": 0, "gid": 0}, "cwd": "/"});
    }
    p["args"] = serde_json::json!(args.command);
    p["terminal"] = serde_json::json!(args.tty);
    let mut env: Vec<serde_json::Value> = p["env"].as_array().cloned().unwrap_or_default();
    for e in &args.env {
        if !e.contains('=') {
            bail!("exec: --env {e:?} is not K=V");
        }
        env.push(serde_json::json!(e));
    }
    p["env"] = serde_json::Value::Array(env);
    if let Some(cwd) = &args.cwd {
        p["cwd"] = serde_json::json!(cwd);
    }
    if let Some(user) = &args.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        let uid: u32 = uid
            .parse()
            .with_context(|| format!("exec: --user {user:?}: not UID[:GID]"))?;
        let gid: u32 = match gid {
            Some(g) => g
                .parse()
                .with_context(|| format!("exec: --user {user:?}: not UID[:GID]"))?,
            None => 0,
        };
        p["user"] = serde_json::json!({"uid": uid, "gid": gid});
    }
    Ok(p)
}

/// `berth exec`: returns the exit code (0 when detached).
pub(crate) fn exec(global: &Global, args: &ExecArgs, log: &mut Logger) -> anyhow::Result<u8> {
    let root = root(global)?;
    let (record, status) = load(&root, &args.id)?;
    check(Command::Exec, &args.id, status)?;
    let mut config = config_with(&record, process_json(&record, args)?)?;
    // A foreground terminal without --console-socket: berth takes the pty itself (a
    // detached one is the planner's to refuse).
    let terminal = config.process.as_ref().is_some_and(|p| p.terminal);
    let console = if terminal && !args.detach && args.console_socket.is_none() {
        crate::tty::size_console(&mut config);
        Some(crate::tty::ConsoleSocket::bind()?)
    } else {
        None
    };
    let Some(process) = config.process.as_ref() else {
        bail!("exec: no process");
    };
    let options = ExecOptions {
        pid_file: args.pid_file.as_deref().map(host_path).transpose()?,
        console_socket: match &console {
            Some(own) => Some(host_path(own.path())?),
            None => args.console_socket.as_deref().map(host_path).transpose()?,
        },
        preserve_fds: args.preserve_fds,
        home: home_of(&config, log),
    };
    let plan = plan_exec(&record, process, &options)?;
    log.debug(&format!("exec plan:\n{plan}"));
    let mut backend = backend_for(&root, &record);
    execute(&plan, &mut backend).map_err(exec_failed)?;
    if args.detach {
        backend.finish(&plan)?;
        return Ok(0);
    }
    let code = match console {
        Some(console) => crate::tty::relay(console, &mut backend, &plan)?,
        None => backend.wait_exit_forwarding(&plan)?,
    };
    Ok(u8::try_from(code).unwrap_or(255))
}

/// The pids in a cgroup directory and the ones below it.
fn pids_in(dir: &Path, out: &mut Vec<u32>) -> std::io::Result<()> {
    let text = std::fs::read_to_string(dir.join("cgroup.procs"))?;
    out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            pids_in(&entry.path(), out)?;
        }
    }
    Ok(())
}

/// `berth ps [--format table|json] ID`.
pub(crate) fn ps(global: &Global, args: &PsArgs) -> anyhow::Result<()> {
    let root = root(global)?;
    let (record, _) = load(&root, &args.id)?;
    let mut pids = Vec::new();
    if let Some(cgroup) = leaf_cgroups(&record.plan).first() {
        let dir = PathBuf::from(cgroup.dir().as_str());
        pids_in(&dir, &mut pids).with_context(|| format!("reading {}", dir.display()))?;
    }
    pids.sort_unstable();
    pids.dedup();
    match args.format {
        PsFormat::Json => print_out(&format!("{}\n", serde_json::to_string(&pids)?)),
        PsFormat::Table => {
            let out = std::process::Command::new("ps")
                .arg("-ef")
                .output()
                .context("running ps -ef")?;
            if !out.status.success() {
                bail!("ps -ef: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let column = header
                .split_whitespace()
                .position(|c| c == "PID")
                .context("ps -ef: no PID column")?;
            let mut table = format!("{header}\n");
            for line in lines {
                let pid = line
                    .split_whitespace()
                    .nth(column)
                    .and_then(|p| p.parse::<u32>().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    table.push_str(line);
                    table.push('\n');
                }
            }
            print_out(&table)
        }
    }
}
