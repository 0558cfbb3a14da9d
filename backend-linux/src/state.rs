//! The runtime's state directory and pid file, written atomically.
//!
//! Invariant: a reader sees either the old or the new content of `state.json` and of a pid
//! file, never a half-written one: each is written to a temporary file in the same
//! directory, fsync'd, renamed over the target, and the directory fsync'd.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_core::plan::HostPath;
use nix::errno::Errno;
use serde_json::{Map, Value};

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

/// Writes `content` to `path` atomically: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, content: &[u8]) -> SysResult<()> {
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
        f.sync_all().map_err(io("fsync temp file"))?;
        std::fs::rename(&tmp, path).map_err(io("rename temp file"))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync directory"))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Writes `DIR/state.json`: the OCI state fields berth knows at this step. Keys already in
/// the file that this step does not set (`created`, `annotations`, ... written by the
/// command line) are kept; `created` is set the first time.
pub(crate) fn write_state(
    dir: &HostPath,
    id: &str,
    bundle: &HostPath,
    pid: i32,
    status: &str,
) -> SysResult<()> {
    let path = Path::new(dir.as_str()).join(STATE_FILE);
    let mut state: Map<String, Value> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    state.insert("ociVersion".into(), OCI_VERSION.into());
    state.insert("id".into(), id.into());
    state.insert("status".into(), status.into());
    state.insert("pid".into(), pid.into());
    state.insert("bundle".into(), bundle.as_str().into());
    state
        .entry("created")
        .or_insert_with(|| rfc3339(SystemTime::now()).into());
    let text =
        serde_json::to_vec(&Value::Object(state)).map_err(|_| ("encode state", Errno::EINVAL))?;
    write_atomic(&path, &text)
}

/// A time as RFC 3339 in UTC with nanoseconds (`2024-05-01T12:00:00.123456789Z`), as runc
/// writes `created`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400 + 3661, 5);
        assert_eq!(rfc3339(t), "2000-02-29T01:01:01.000000005Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599);
        assert_eq!(rfc3339(t), "2024-12-31T23:59:59.000000000Z");
    }

    #[test]
    fn state_is_written_atomically_and_keeps_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let sd = HostPath::new(dir.path().join("c1").to_string_lossy());
        create_dir(&sd).unwrap();
        assert_eq!(create_dir(&sd).unwrap_err().1, Errno::EEXIST);
        let bundle = HostPath::new("/b");
        write_state(&sd, "c1", &bundle, 42, "created").unwrap();
        let path = Path::new(sd.as_str()).join(STATE_FILE);
        let mut v: Map<String, Value> =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let created = v["created"].clone();
        v.insert("annotations".into(), serde_json::json!({"a": "b"}));
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        write_state(&sd, "c1", &bundle, 42, "running").unwrap();
        let v: Map<String, Value> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["status"], "running");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["created"], created);
        assert_eq!(v["annotations"]["a"], "b");
        // No temp file is left beside it.
        let names: Vec<_> = std::fs::read_dir(sd.as_str()).unwrap().collect();
        assert_eq!(names.len(), 1);
        remove_dir(&sd).unwrap();
        remove_dir(&sd).unwrap();
        assert!(!Path::new(sd.as_str()).exists());
    }
}
