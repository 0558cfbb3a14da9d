//! cgroupfs: create, write, attach, enable controllers, remove.
//!
//! The plan names every directory and file; this module only knows cgroupfs's quirks: a
//! new v1 cpuset cgroup starts with empty `cpuset.cpus`/`cpuset.mems` and refuses tasks
//! until they are set (so they are copied from the parent, as runc does), and `rmdir` of a
//! cgroup whose last task is still exiting fails with `EBUSY` for a moment.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_core::plan::CgroupPath;
use nix::errno::Errno;
use nix::unistd::Pid;

use crate::error::SysResult;
use crate::ns::io_errno;

fn io(call: &'static str) -> impl Fn(std::io::Error) -> (&'static str, Errno) {
    move |e| (call, io_errno(&e))
}

/// Writes a cgroup file in one write(2) (no create, no truncate: cgroupfs files exist).
fn write_file(path: &Path, value: &str, call: &'static str) -> SysResult<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(call))?;
    f.write_all(value.as_bytes()).map_err(io(call))
}

/// Makes the cgroup directory and its missing parents; returns those it made, outermost
/// first. On failure, removes what it made.
pub(crate) fn create(cg: &CgroupPath) -> SysResult<Vec<PathBuf>> {
    let mount = PathBuf::from(cg.mount.as_str());
    let mut made = Vec::new();
    let mut cur = mount;
    for part in cg.path.split('/').filter(|p| !p.is_empty()) {
        let parent = cur.clone();
        cur.push(part);
        match std::fs::create_dir(&cur) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                let _ = remove_dirs(&made);
                return Err(("mkdir cgroup", io_errno(&e)));
            }
        }
        made.push(cur.clone());
        if let Err(e) = inherit_cpuset(&parent, &cur) {
            let _ = remove_dirs(&made);
            return Err(e);
        }
    }
    Ok(made)
}

/// In a v1 cpuset hierarchy, fills a new cgroup's empty `cpuset.cpus` and `cpuset.mems`
/// from its parent's.
fn inherit_cpuset(parent: &Path, dir: &Path) -> SysResult<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(file);
        let Ok(current) = std::fs::read_to_string(&own) else {
            // Not a cpuset hierarchy (or v2, where empty means "inherit").
            continue;
        };
        if !current.trim().is_empty() || dir.join("cgroup.controllers").exists() {
            continue;
        }
        let from = std::fs::read_to_string(parent.join(file)).map_err(io("read parent cpuset"))?;
        write_file(&own, from.trim(), "write cpuset")?;
    }
    Ok(())
}

/// Removes cgroup directories, innermost first; missing ones are fine.
pub(crate) fn remove_dirs(dirs: &[PathBuf]) -> SysResult<()> {
    for d in dirs.iter().rev() {
        rmdir(d)?;
    }
    Ok(())
}

/// rmdir of a cgroup, retrying `EBUSY` for a while (a killed task takes a moment to leave).
fn rmdir(dir: &Path) -> SysResult<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match std::fs::remove_dir(dir).map_err(|e| io_errno(&e)) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(("rmdir cgroup", e)),
        }
    }
}

/// Removes a cgroup directory and the cgroups below it, deepest first (what the container
/// made inside its own cgroup goes with it, as in runc's destroy); a missing one is fine.
pub(crate) fn remove(cg: &CgroupPath) -> SysResult<()> {
    let dir = PathBuf::from(cg.dir().as_str());
    let mut dirs = Vec::new();
    walk(&dir, &mut dirs)?;
    // `walk` lists parents before children.
    for d in dirs.iter().rev() {
        rmdir(d)?;
    }
    Ok(())
}

/// Lists `dir` and every directory below it, parents first; nothing when `dir` is gone.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> SysResult<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(("read cgroup directory", io_errno(&e))),
    };
    out.push(dir.to_owned());
    for entry in entries {
        let entry = entry.map_err(io("read cgroup directory"))?;
        // cgroupfs has only directories (cgroups) and files; file_type does not follow.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&entry.path(), out)?;
        }
    }
    Ok(())
}

/// Sends `signal` to every process in the cgroup and the cgroups below it. A process that
/// exits meanwhile is skipped; one that forks meanwhile may escape (freezing first, as
/// runc does for SIGKILL, comes with `pause`).
pub(crate) fn signal_all(cg: &CgroupPath, signal: i32) -> SysResult<()> {
    let mut dirs = Vec::new();
    walk(Path::new(cg.dir().as_str()), &mut dirs)?;
    if dirs.is_empty() {
        return Err(("open cgroup", Errno::ENOENT));
    }
    for d in dirs {
        let procs = match std::fs::read_to_string(d.join("cgroup.procs")) {
            Ok(text) => text,
            // Removed meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(("read cgroup.procs", io_errno(&e))),
        };
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            match crate::sys::kill_any(Pid::from_raw(pid), signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => return Err(("kill", e)),
            }
        }
    }
    Ok(())
}

/// Writes an interface file.
pub(crate) fn write(cg: &CgroupPath, file: &str, value: &str) -> SysResult<()> {
    if file.contains('/') {
        return Err(("cgroup file name", Errno::EINVAL));
    }
    let dir_path = cg.dir();
    let dir = Path::new(dir_path.as_str());
    write_file(&dir.join(file), value, "write cgroup file")?;
    match (file, value) {
        ("freezer.state", "FROZEN") => settle_freeze(dir, file, "FROZEN", "THAWED"),
        ("cgroup.freeze", "1") => settle_freeze(dir, "cgroup.events", "frozen 1", "0"),
        _ => Ok(()),
    }
}

/// How long a freeze may take before it is given up (and the cgroup thawed).
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits until a freeze has taken effect: v1's `freezer.state` goes FREEZING → FROZEN
/// (rewritten now and then, as runc does, since a task that forks meanwhile can hold it
/// in FREEZING), v2's `cgroup.events` shows `frozen 1`. On timeout the cgroup is thawed
/// (`thaw` to the freeze file) and `EBUSY` returned, so a failed pause leaves it running.
fn settle_freeze(dir: &Path, watch: &str, done: &str, thaw: &str) -> SysResult<()> {
    let v1 = watch == "freezer.state";
    let start = Instant::now();
    let mut round = 0u32;
    loop {
        let now = std::fs::read_to_string(dir.join(watch)).map_err(io("read freezer state"))?;
        let frozen = if v1 {
            now.trim() == done
        } else {
            now.lines().any(|l| l.trim() == done)
        };
        if frozen {
            return Ok(());
        }
        if start.elapsed() > FREEZE_TIMEOUT {
            let file = if v1 { "freezer.state" } else { "cgroup.freeze" };
            let _ = write_file(&dir.join(file), thaw, "thaw cgroup");
            return Err(("wait for the cgroup to freeze", Errno::EBUSY));
        }
        round += 1;
        if v1 && round.is_multiple_of(10) {
            write_file(&dir.join(watch), done, "write cgroup file")?;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Moves a process into the cgroup.
pub(crate) fn attach(cg: &CgroupPath, pid: Pid) -> SysResult<()> {
    write_file(
        &Path::new(cg.dir().as_str()).join("cgroup.procs"),
        &pid.as_raw().to_string(),
        "write cgroup.procs",
    )
}

/// Enables controllers for the cgroup's children; returns those not enabled before.
pub(crate) fn enable(cg: &CgroupPath, controllers: &[String]) -> SysResult<Vec<String>> {
    let file = Path::new(cg.dir().as_str()).join("cgroup.subtree_control");
    let before = std::fs::read_to_string(&file).map_err(io("read cgroup.subtree_control"))?;
    let on: Vec<&str> = before.split_whitespace().collect();
    let new: Vec<String> = controllers
        .iter()
        .filter(|c| !on.contains(&c.as_str()))
        .cloned()
        .collect();
    if new.is_empty() {
        return Ok(new);
    }
    let line: Vec<String> = new.iter().map(|c| format!("+{c}")).collect();
    write_file(&file, &line.join(" "), "write cgroup.subtree_control")?;
    Ok(new)
}

/// Disables controllers an enable turned on.
pub(crate) fn disable(cg: &CgroupPath, controllers: &[String]) -> SysResult<()> {
    if controllers.is_empty() {
        return Ok(());
    }
    let file = Path::new(cg.dir().as_str()).join("cgroup.subtree_control");
    let line: Vec<String> = controllers.iter().map(|c| format!("-{c}")).collect();
    match write_file(&file, &line.join(" "), "write cgroup.subtree_control") {
        Err((_, Errno::ENOENT)) => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::plan::HostPath;

    #[test]
    fn create_makes_missing_parents_and_remove_undoes_it() {
        // A plain directory stands in for a hierarchy: mkdir/rmdir behave the same.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("berth")).unwrap();
        let cg = CgroupPath {
            mount: HostPath::new(dir.path().to_string_lossy()),
            path: "berth/a/b".to_owned(),
        };
        let made = create(&cg).unwrap();
        assert_eq!(
            made,
            vec![dir.path().join("berth/a"), dir.path().join("berth/a/b")]
        );
        remove_dirs(&made).unwrap();
        assert!(!dir.path().join("berth/a").exists());
        assert!(dir.path().join("berth").exists());
        assert!(write(&cg, "../x", "1").is_err());
    }

    #[test]
    fn an_empty_cpuset_is_copied_from_the_parent() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path();
        std::fs::write(parent.join("cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(parent.join("cpuset.mems"), "0\n").unwrap();
        let child = parent.join("c");
        std::fs::create_dir(&child).unwrap();
        std::fs::write(child.join("cpuset.cpus"), "").unwrap();
        std::fs::write(child.join("cpuset.mems"), "\n").unwrap();
        inherit_cpuset(parent, &child).unwrap();
        assert_eq!(
            std::fs::read_to_string(child.join("cpuset.cpus")).unwrap(),
            "0-1"
        );
        assert_eq!(
            std::fs::read_to_string(child.join("cpuset.mems")).unwrap(),
            "0"
        );
    }
}
