//! The runtime's state directory, its record, and the pid file, written atomically; and
//! reading them back for `start`, `state`, `kill`, `delete` and `list`.
//!
//! Invariant: a reader sees either the old or the new content of `state.json` and of a pid
//! file, never a half-written one: each is written to a temporary file in the same
//! directory and renamed over the target. The record of a created container and the pid
//! file are fsync'd before the rename, so a crash of the machine leaves the old or the new
//! content, never an empty or torn file. The preliminary records of a create in progress
//! are not: they only serve a `delete --force` after berth itself was killed, when the page
//! cache holds them, and a machine that crashed took the container down with it.
//! (The directory is not fsync'd: after a crash the rename may be lost, which leaves the
//! old, whole content.)

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_core::plan::{HookSpec, HostPath, Plan};
use berth_core::state::{ContainerRecord, Observed, ProcStat, Status};
use nix::errno::Errno;

use crate::error::SysResult;
use crate::ns::io_errno;

/// The state file in a container's state directory.
pub const STATE_FILE: &str = "state.json";
/// The OCI runtime-spec version berth's state follows.
const OCI_VERSION: &str = "1.2.1";

fn io(call: &'static str) -> impl Fn(std::io::Error) -> (&'static str, Errno) {
    move |e| (call, io_errno(&e))
}

/// Makes the state directory (its parents too); fails with `EEXIST` when it exists.
pub(crate) fn create_dir(dir: &HostPath) -> SysResult<()> {
    let path = Path::new(dir.as_str());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("mkdir state root"))?;
    }
    std::fs::DirBuilder::new()
        .mode(0o711)
        .create(path)
        .map_err(io("mkdir state dir"))
}

/// Removes the state directory and what is in it; a missing one is fine.
pub(crate) fn remove_dir(dir: &HostPath) -> SysResult<()> {
    match std::fs::remove_dir_all(dir.as_str()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.map_err(io("rm -r state dir")),
    }
}

/// Writes `content` to `path` atomically: temp file, fsync when `durable`, rename.
pub(crate) fn write_atomic(path: &Path, content: &[u8], durable: bool) -> SysResult<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or(("write file", Errno::EINVAL))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io("create temp file"))?;
        f.write_all(content).map_err(io("write temp file"))?;
        if durable {
            f.sync_data().map_err(io("fsync temp file"))?;
        }
        std::fs::rename(&tmp, path).map_err(io("rename temp file"))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// What a `state-write` step records besides the plan and the pid.
#[derive(Debug)]
pub(crate) struct StateFields<'a> {
    pub(crate) id: &'a str,
    pub(crate) bundle: &'a HostPath,
    pub(crate) rootfs: &'a HostPath,
    pub(crate) status: &'a str,
    pub(crate) annotations: &'a BTreeMap<String, String>,
    pub(crate) poststop: &'a [HookSpec],
}

/// Writes `DIR/state.json`: the container's [`ContainerRecord`], with the plan being
/// executed, init's pid and start time (read from `/proc` now), the owner (our euid's name)
/// and the creation time, which is the clock's now the first time and kept after that.
pub(crate) fn write_state(
    dir: &HostPath,
    plan: &Plan,
    fields: &StateFields<'_>,
    pid: i32,
) -> SysResult<()> {
    let status = Status::parse(fields.status).ok_or(("state status", Errno::EINVAL))?;
    let raw = u32::try_from(pid).map_err(|_| ("state pid", Errno::EINVAL))?;
    let stat = proc_stat(raw).ok_or(("read /proc/PID/stat", Errno::ESRCH))?;
    write_record(dir, plan, fields, status, raw, stat.start_time, true)
}

/// Writes a preliminary record (status `creating`) of a create plan, from its `state-write`
/// step, so that `delete --force` finds the cgroups and the init of a `create` that was
/// killed before that step: `pid` is init's once spawned, else none, recorded as pid 0,
/// which names no process (the container reads `stopped`). A plan without a `state-write`
/// step writes nothing.
pub(crate) fn write_preliminary(plan: &Plan, pid: Option<i32>) -> SysResult<()> {
    let Some(berth_core::plan::Op::StateWrite {
        dir,
        id,
        bundle,
        rootfs,
        annotations,
        poststop,
        ..
    }) = plan
        .steps
        .iter()
        .map(|s| &s.op)
        .find(|op| matches!(op, berth_core::plan::Op::StateWrite { .. }))
    else {
        return Ok(());
    };
    let fields = StateFields {
        id,
        bundle,
        rootfs,
        status: Status::Creating.as_str(),
        annotations,
        poststop,
    };
    let (raw, start_time) = match pid {
        Some(pid) => {
            let raw = u32::try_from(pid).map_err(|_| ("state pid", Errno::EINVAL))?;
            let stat = proc_stat(raw).ok_or(("read /proc/PID/stat", Errno::ESRCH))?;
            (raw, stat.start_time)
        }
        None => (0, 0),
    };
    write_record(dir, plan, &fields, Status::Creating, raw, start_time, false)
}

/// Writes `DIR/state.json` with the given status, pid and start time (fsync'd when
/// `durable`).
fn write_record(
    dir: &HostPath,
    plan: &Plan,
    fields: &StateFields<'_>,
    status: Status,
    raw: u32,
    start_time: u64,
    durable: bool,
) -> SysResult<()> {
    let path = Path::new(dir.as_str()).join(STATE_FILE);
    // Only `created` is read back: a record carries the whole plan, and parsing all of it
    // into a JSON tree on each of a create's record writes was most of berth's heap.
    #[derive(serde::Deserialize)]
    struct Created {
        created: String,
    }
    let created = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Created>(&b).ok())
        .map_or_else(|| rfc3339_nano(SystemTime::now()), |c| c.created);
    let record = ContainerRecord {
        oci_version: OCI_VERSION.to_owned(),
        id: fields.id.to_owned(),
        status,
        pid: raw,
        start_time,
        bundle: fields.bundle.clone(),
        rootfs: fields.rootfs.clone(),
        created,
        annotations: fields.annotations.clone(),
        owner: user_name(nix::unistd::geteuid().as_raw()),
        poststop: fields.poststop.to_vec(),
        plan: plan.clone(),
    };
    let text = serde_json::to_vec(&record).map_err(|_| ("encode state", Errno::EINVAL))?;
    write_atomic(&path, &text, durable)
}

/// The name of a user on the host (`/etc/passwd`), or `#UID` when it has none, as runc
/// names a container's owner.
fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| berth_core::user::parse_passwd(&text).ok())
        .and_then(|users| users.into_iter().find(|u| u.uid == uid).map(|u| u.name))
        .unwrap_or_else(|| format!("#{uid}"))
}

/// `/proc/PID/stat` of a process, if the pid exists (a zombie's too).
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    berth_core::state::parse_proc_stat(&text)
}

/// Why a container's record cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No state directory, or no `state.json` in it (runc's wording).
    #[error("container does not exist")]
    NotExist,
    /// The state file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not a record berth wrote.
    #[error("{path} is not a berth container record")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// The state directory of container `id` under the state root.
pub fn state_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Reads the record of container `id` under the state root.
pub fn read_record(root: &Path, id: &str) -> Result<ContainerRecord, RecordError> {
    let path = state_dir(root, id).join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(RecordError::NotExist),
        Err(source) => return Err(RecordError::Read { path, source }),
    };
    serde_json::from_slice(&bytes).map_err(|source| RecordError::Corrupt { path, source })
}

/// What the host shows now of a recorded container: its init's `/proc/PID/stat`, whether
/// the start fifo still waits in its state directory, and whether its freezer is frozen.
pub fn observe(root: &Path, record: &ContainerRecord) -> Observed {
    let fifo = state_dir(root, &record.id).join(crate::backend::EXEC_FIFO);
    Observed {
        init: proc_stat(record.pid),
        exec_fifo: std::fs::symlink_metadata(fifo).is_ok(),
        frozen: frozen(record),
    }
}

/// Whether the container's freezer (found from its plan, as `pause` finds it) reads frozen.
fn frozen(record: &ContainerRecord) -> bool {
    berth_core::planner::lifecycle::freezer(&record.plan).is_some_and(|f| {
        std::fs::read_to_string(Path::new(f.cgroup.dir().as_str()).join(f.file))
            .is_ok_and(|now| now.trim() == f.frozen)
    })
}

/// The ids of the containers under the state root (its directories), sorted; none when
/// the root does not exist.
pub fn list_ids(root: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Some(name) = entry.file_name().to_str()
        {
            ids.push(name.to_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

/// A time as Go's `time.RFC3339Nano` prints it in UTC (trailing zeros of the fraction
/// dropped: `2024-05-01T12:00:00.12Z`), which is how runc's `state` and `list` show
/// `created`.
pub(crate) fn rfc3339_nano(t: SystemTime) -> String {
    let full = rfc3339(t);
    let Some((head, frac)) = full.strip_suffix('Z').and_then(|s| s.split_once('.')) else {
        return full;
    };
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{head}Z")
    } else {
        format!("{head}.{frac}Z")
    }
}

/// A time as RFC 3339 in UTC with nanoseconds (`2024-05-01T12:00:00.123456789Z`), as runc
/// writes `created`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    berth_core::jsonlog::Timestamp::from_epoch(d).format_fixed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_nano_drops_trailing_zeros_as_go_does() {
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(0, 120_000_000);
        assert_eq!(rfc3339_nano(t), "1970-01-01T00:00:00.12Z");
        let t = UNIX_EPOCH + Duration::new(0, 100);
        assert_eq!(rfc3339_nano(t), "1970-01-01T00:00:00.0000001Z");
    }

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400 + 3661, 5);
        assert_eq!(rfc3339(t), "2000-02-29T01:01:01.000000005Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599);
        assert_eq!(rfc3339(t), "2024-12-31T23:59:59.000000000Z");
    }

    #[test]
    fn record_is_written_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let sd = HostPath::new(root.join("c1").to_string_lossy());
        create_dir(&sd).unwrap();
        assert_eq!(create_dir(&sd).unwrap_err().1, Errno::EEXIST);
        assert!(matches!(
            read_record(root, "c1"),
            Err(RecordError::NotExist)
        ));
        let bundle = HostPath::new("/b");
        let rootfs = HostPath::new("/b/rootfs");
        let annotations = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let fields = |status| StateFields {
            id: "c1",
            bundle: &bundle,
            rootfs: &rootfs,
            status,
            annotations: &annotations,
            poststop: &[],
        };
        let me = i32::try_from(std::process::id()).unwrap();
        let plan = Plan::default();
        write_state(&sd, &plan, &fields("created"), me).unwrap();
        let first = read_record(root, "c1").unwrap();
        assert_eq!(first.status, Status::Created);
        assert_eq!(first.pid, std::process::id());
        assert_eq!(
            Some(first.start_time),
            proc_stat(std::process::id()).map(|s| s.start_time)
        );
        assert_eq!(first.annotations, annotations);
        assert_eq!(first.rootfs, rootfs);
        assert!(first.created.ends_with('Z'), "{}", first.created);
        write_state(&sd, &plan, &fields("running"), me).unwrap();
        let second = read_record(root, "c1").unwrap();
        assert_eq!(second.status, Status::Running);
        assert_eq!(second.created, first.created, "created is kept");
        assert_eq!(
            write_state(&sd, &plan, &fields("exited"), me)
                .unwrap_err()
                .1,
            Errno::EINVAL
        );
        // No temp file is left beside it.
        let names: Vec<_> = std::fs::read_dir(sd.as_str()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(list_ids(root).unwrap(), ["c1"]);
        let seen = observe(root, &second);
        assert!(!seen.exec_fifo);
        assert_eq!(
            berth_core::state::derive_status(&second, &seen),
            Status::Running
        );
        std::fs::write(Path::new(sd.as_str()).join(STATE_FILE), "{").unwrap();
        assert!(matches!(
            read_record(root, "c1"),
            Err(RecordError::Corrupt { .. })
        ));
        remove_dir(&sd).unwrap();
        remove_dir(&sd).unwrap();
        assert!(!Path::new(sd.as_str()).exists());
        assert!(list_ids(root).unwrap().is_empty());
        assert!(list_ids(&root.join("missing")).unwrap().is_empty());
    }

    #[test]
    fn proc_stat_of_ourselves_and_of_nobody() {
        let me = proc_stat(std::process::id()).unwrap();
        assert!(!me.is_dead());
        assert!(me.start_time > 0);
        assert_eq!(proc_stat(u32::MAX), None);
    }
}
