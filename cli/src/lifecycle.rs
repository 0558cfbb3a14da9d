//! `berth start`, `state`, `kill`, `delete`, `list`, `pause`, `resume` and `features`:
//! the commands that act on a container `create` left under `--root` (and the one that
//! describes the runtime).
//!
//! Each reads the container's record, derives its status from what the host shows now
//! (berth-core's state machine decides whether the command may go on, with runc's
//! wording), plans the command with berth-core's lifecycle planners, and has the Linux
//! backend carry the plan out. Nothing here touches the host except through a plan;
//! `state` and `list` only read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context;
use berth_backend_linux::state::{RecordError, list_ids, observe, read_record, state_dir};
use berth_backend_linux::{LinuxBackend, Trace};
use berth_core::exec::{Backend, execute, execute_range};
use berth_core::plan::Plan;
use berth_core::planner::lifecycle::{
    plan_delete, plan_forget, plan_kill_in, plan_pause, plan_resume, plan_start, poststop_from,
};
use berth_core::state::{
    Command, ContainerRecord, LifecycleError, OciState, Status, Verdict, check, derive_status,
};

use crate::create::{absolute, exec_failed, host_path, validate_id};
use crate::log::Logger;
use crate::{DeleteArgs, Global, KillArgs, ListArgs, ListFormat};

/// The state root, absolute.
pub(crate) fn root(global: &Global) -> anyhow::Result<PathBuf> {
    absolute(&global.root)
}

/// A container's record and its status now.
pub(crate) fn load(root: &Path, id: &str) -> anyhow::Result<(ContainerRecord, Status)> {
    validate_id(id)?;
    let record = match read_record(root, id) {
        Ok(record) => record,
        Err(RecordError::NotExist) => return Err(LifecycleError::NotExist.into()),
        Err(err) => return Err(err.into()),
    };
    let status = derive_status(&record, &observe(root, &record));
    Ok((record, status))
}

/// The `--trace` file, set once at start-up.
static TRACE: OnceLock<PathBuf> = OnceLock::new();

/// Sets the `--trace` file every backend appends its applied steps to; opens it now, so a
/// path that cannot be written fails before anything is done.
pub(crate) fn set_trace(path: &Path) -> anyhow::Result<()> {
    let path = absolute(path)?;
    Trace::open(&path).with_context(|| format!("opening trace file {}", path.display()))?;
    // Set once, from main, before any backend exists.
    let _ = TRACE.set(path);
    Ok(())
}

/// A Linux backend, tracing to the `--trace` file when one was given.
pub(crate) fn new_backend() -> LinuxBackend {
    let backend = LinuxBackend::new();
    match TRACE.get().map(|p| Trace::open(p)) {
        Some(Ok(trace)) => backend.with_trace(trace),
        // It opened in set_trace; the trace is a diagnostic and never fails a command.
        Some(Err(_)) | None => backend,
    }
}

/// A backend for a plan of a command on an existing container.
pub(crate) fn backend_for(root: &Path, record: &ContainerRecord) -> LinuxBackend {
    new_backend()
        .with_state_dir(state_dir(root, &record.id))
        .with_container(&record.id, &record.bundle)
}

/// `berth start ID`.
pub(crate) fn start(global: &Global, id: &str, log: &mut Logger) -> anyhow::Result<()> {
    let root = root(global)?;
    let (record, status) = load(&root, id)?;
    check(Command::Start, id, status)?;
    let plan = plan_start(&record)?;
    log.debug(&format!("start plan:\n{plan}"));
    let mut backend = backend_for(&root, &record);
    execute(&plan, &mut backend).map_err(exec_failed)?;
    // Returns once init has exec'd the container's process (or died trying).
    backend.finish(&plan)?;
    Ok(())
}

/// `berth state ID`: the OCI state, pretty-printed as runc prints it.
pub(crate) fn state(global: &Global, id: &str) -> anyhow::Result<()> {
    let root = root(global)?;
    let (record, status) = load(&root, id)?;
    let mut state = OciState::of(&record, status);
    // runc's `state` leaves the owner empty (its `list` names it): callers compare outputs.
    state.owner = String::new();
    let text = serde_json::to_string_pretty(&state).context("encoding the state")?;
    print_out(&format!("{text}\n"))
}

/// `berth kill [--all] ID [SIGNAL]`.
pub(crate) fn kill(global: &Global, args: &KillArgs, log: &mut Logger) -> anyhow::Result<()> {
    let root = root(global)?;
    let (record, status) = load(&root, &args.id)?;
    let signal = berth_core::signal::parse_signal(&args.signal)?;
    match check(Command::Kill { all: args.all }, &args.id, status)? {
        Verdict::Nothing => Ok(()),
        Verdict::Proceed => {
            let plan = plan_kill_in(&record, signal, args.all, status)?;
            log.debug(&format!("kill plan:\n{plan}"));
            execute(&plan, &mut backend_for(&root, &record)).map_err(exec_failed)?;
            Ok(())
        }
    }
}

/// `berth delete [--force] ID`.
pub(crate) fn delete(global: &Global, args: &DeleteArgs, log: &mut Logger) -> anyhow::Result<()> {
    let root = root(global)?;
    validate_id(&args.id)?;
    let (record, status) = match load(&root, &args.id) {
        Ok(found) => found,
        Err(err) if is_not_exist(&err) => {
            // As runc: a state directory without a record is what an aborted `create`
            // leaves; it goes, and the container still does not exist.
            let dir = state_dir(&root, &args.id);
            if dir.is_dir() {
                let plan = plan_forget(host_path(&dir)?);
                execute(&plan, &mut new_backend()).map_err(exec_failed)?;
            }
            if args.force {
                return Ok(());
            }
            return Err(err);
        }
        Err(err) => return Err(err),
    };
    check(Command::Delete { force: args.force }, &args.id, status)?;
    let plan = plan_delete(&record, status, args.force)?;
    carry_out_delete(&root, &record, &plan, log)
}

/// Deletes a container that has just stopped (a foreground `run`, as `runc run` does).
pub(crate) fn delete_stopped(root: &Path, id: &str, log: &mut Logger) -> anyhow::Result<()> {
    let (record, status) = load(root, id)?;
    let plan =
        plan_delete(&record, status, false).with_context(|| format!("deleting container {id}"))?;
    carry_out_delete(root, &record, &plan, log)
}

/// Carries out a delete plan: everything up to the poststop hooks as one plan (a failure
/// stops there and leaves the record, so `delete` can be tried again), then each hook, a
/// failing one only a warning (the OCI runtime spec's rule for poststop hooks).
fn carry_out_delete(
    root: &Path,
    record: &ContainerRecord,
    plan: &Plan,
    log: &mut Logger,
) -> anyhow::Result<()> {
    log.debug(&format!("delete plan:\n{plan}"));
    let hooks = poststop_from(plan);
    let mut backend = backend_for(root, record);
    execute_range(plan, 0..hooks, &mut backend).map_err(exec_failed)?;
    for step in &plan.steps[hooks..] {
        if let Err(err) = backend.apply(plan, step) {
            log.warn(&format!("{:#}", anyhow::Error::new(err)));
        }
    }
    Ok(())
}

/// `berth pause ID`: freezes the container's processes (runc: running or created only).
pub(crate) fn pause(global: &Global, id: &str, log: &mut Logger) -> anyhow::Result<()> {
    let root = root(global)?;
    let (record, status) = load(&root, id)?;
    check(Command::Pause, id, status)?;
    let plan = plan_pause(&record)?;
    log.debug(&format!("pause plan:\n{plan}"));
    execute(&plan, &mut backend_for(&root, &record)).map_err(exec_failed)?;
    Ok(())
}

/// `berth resume ID`: thaws a paused container.
pub(crate) fn resume(global: &Global, id: &str, log: &mut Logger) -> anyhow::Result<()> {
    let root = root(global)?;
    let (record, status) = load(&root, id)?;
    check(Command::Resume, id, status)?;
    let plan = plan_resume(&record)?;
    log.debug(&format!("resume plan:\n{plan}"));
    execute(&plan, &mut backend_for(&root, &record)).map_err(exec_failed)?;
    Ok(())
}

/// `berth features`: the runtime-spec Features document, pretty-printed as runc prints it.
pub(crate) fn features() -> anyhow::Result<()> {
    let value = berth_core::features::features(env!("CARGO_PKG_VERSION"));
    let text = serde_json::to_string_pretty(&value).context("encoding the features")?;
    print_out(&format!("{text}\n"))
}

fn is_not_exist(err: &anyhow::Error) -> bool {
    err.downcast_ref::<LifecycleError>() == Some(&LifecycleError::NotExist)
}

/// `berth list`: the containers under the root, as runc lists them. A directory whose
/// record cannot be read is reported on stderr and skipped.
pub(crate) fn list(global: &Global, args: &ListArgs) -> anyhow::Result<()> {
    let root = root(global)?;
    let ids = list_ids(&root).with_context(|| format!("reading {}", root.display()))?;
    let mut states = Vec::new();
    for id in ids {
        match load(&root, &id) {
            Ok((record, status)) => states.push(OciState::of(&record, status)),
            Err(err) => eprintln!("berth: load container {id}: {err:#}"),
        }
    }
    let text = if args.quiet {
        states.iter().map(|s| format!("{}\n", s.id)).collect()
    } else {
        match args.format {
            ListFormat::Table => table(&states),
            // runc encodes its (nil) slice: `null` when there is no container.
            ListFormat::Json if states.is_empty() => "null\n".to_owned(),
            ListFormat::Json => {
                format!("{}\n", serde_json::to_string(&states).context("encoding")?)
            }
        }
    };
    print_out(&text)
}

/// runc's table: Go's tabwriter with a minimum cell width of 12 and a padding of 3; the
/// last column is not padded.
fn table(states: &[OciState]) -> String {
    let mut rows = vec![
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for s in states {
        rows.push(vec![
            s.id.clone(),
            s.pid.to_string(),
            s.status.to_string(),
            s.bundle.clone(),
            s.created.clone(),
            s.owner.clone(),
        ]);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns - 1)
        .map(|c| {
            let widest = rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
            (widest + 3).max(12)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (cell, width) in row.iter().zip(&widths) {
            out.push_str(cell);
            out.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
        out.push_str(&row[columns - 1]);
        out.push('\n');
    }
    out
}

/// Writes a command's result to stdout.
pub(crate) fn print_out(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn st(id: &str, pid: u32, status: Status) -> OciState {
        OciState {
            oci_version: "1.2.1".to_owned(),
            id: id.to_owned(),
            pid,
            status,
            bundle: "/b".to_owned(),
            rootfs: "/b/rootfs".to_owned(),
            created: "2026-01-02T03:04:05.12Z".to_owned(),
            annotations: BTreeMap::new(),
            owner: "root".to_owned(),
        }
    }

    #[test]
    fn table_is_aligned_as_go_tabwriter_aligns_it() {
        assert_eq!(
            table(&[]),
            "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
        );
        let t = table(&[
            st("c1", 4242, Status::Running),
            st("a-much-longer-id", 0, Status::Stopped),
        ]);
        assert_eq!(
            t,
            "ID                 PID         STATUS      BUNDLE      CREATED                   OWNER\n\
             c1                 4242        running     /b          2026-01-02T03:04:05.12Z   root\n\
             a-much-longer-id   0           stopped     /b          2026-01-02T03:04:05.12Z   root\n"
        );
    }
}
