//! cgroup v2 device filtering: loads the program berth-core compiles from the device rules
//! and attaches it to the cgroup, replacing the one a previous `cgroup-devices` attached.
//!
//! Invariant: the cgroup is never without a filter from berth once it had one. The new
//! program is attached (`BPF_F_ALLOW_MULTI`) before the old ones are detached; while both
//! are attached the kernel allows only what both allow. berth's programs are told from
//! others attached to the same cgroup (systemd's, say) by their name, [`PROG_NAME`]; the
//! others are left alone.
//!
//! No undo: removing the cgroup (the undo of its creation) releases what is attached to it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use berth_core::bpf::compile_device_filter;
use berth_core::plan::{CgroupPath, DeviceRule};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{AtStep, Call, LinuxError, SysResult};

/// The name berth gives its device programs (`bpf_prog_info.name`, at most 15 bytes).
pub const PROG_NAME: &str = "berth_devices";

/// `BPF_PROG_TYPE_CGROUP_DEVICE`.
const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE`, the attach type.
const ATTACH_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI`: programs attached to one cgroup all run; all must allow.
const F_ALLOW_MULTI: u32 = 2;
/// The program calls no helper at all, so no GPL-only one: any license will do.
const LICENSE: &std::ffi::CStr = c"Apache-2.0";
/// The verifier's log of a refused program: its size (the kernel refuses logs over
/// `u32::MAX >> 2` bytes, and truncates with `ENOSPC` past the size given).
const LOG_SIZE: usize = 1 << 20;
/// How much of the log, from its end (where the verifier says what it refused), goes into
/// the error.
const LOG_SHOWN: usize = 8 << 10;

/// A program attached to a cgroup as its device filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedProgram {
    /// The program's id (`bpftool prog show id N`).
    pub id: u32,
    /// The program's name; berth's is [`PROG_NAME`].
    pub name: String,
}

/// Opens a cgroup directory as the target of `bpf(2)` attach commands.
fn open_dir(dir: &Path) -> SysResult<OwnedFd> {
    nix::fcntl::open(
        dir,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .call("open cgroup directory")
}

/// The device programs attached to the cgroup `cgroup` itself, with an fd of each (to
/// detach it by).
fn attached(cgroup: &OwnedFd) -> SysResult<Vec<(AttachedProgram, OwnedFd)>> {
    let ids = crate::sys::bpf_prog_query(cgroup.as_fd(), ATTACH_CGROUP_DEVICE)
        .call("bpf(BPF_PROG_QUERY)")?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let fd = match crate::sys::bpf_prog_get_fd_by_id(id) {
            Ok(fd) => fd,
            // Detached and freed since the query.
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(("bpf(BPF_PROG_GET_FD_BY_ID)", e)),
        };
        let name = crate::sys::bpf_prog_name(fd.as_fd()).call("bpf(BPF_OBJ_GET_INFO_BY_FD)")?;
        out.push((AttachedProgram { id, name }, fd));
    }
    Ok(out)
}

/// The device programs attached to the cgroup directory `dir` itself (not those its
/// parents pass down), in the order they run.
pub fn attached_device_programs(dir: &Path) -> Result<Vec<AttachedProgram>, LinuxError> {
    let step = format!("device programs of {}", dir.display());
    let fd = open_dir(dir).at(&step)?;
    Ok(attached(&fd)
        .at(&step)?
        .into_iter()
        .map(|(p, _)| p)
        .collect())
}

/// Loads `program` (encoded instructions); on refusal, loads it again with a log buffer
/// to report what the verifier said.
fn load(program: &[u8], step: &str) -> Result<OwnedFd, LinuxError> {
    let load = |log: Option<&mut [u8]>| {
        crate::sys::bpf_prog_load(PROG_TYPE_CGROUP_DEVICE, program, LICENSE, PROG_NAME, log)
    };
    let errno = match load(None) {
        Ok(fd) => return Ok(fd),
        Err(errno) => errno,
    };
    let mut buf = vec![0u8; LOG_SIZE];
    // A second refusal is expected (`ENOSPC` only says the log was cut short); should the
    // first have been a passing failure, the program is loaded now.
    if let Ok(fd) = load(Some(&mut buf)) {
        return Ok(fd);
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let text = String::from_utf8_lossy(&buf[..end]);
    let text = text.trim_end();
    let log = match text.len().checked_sub(LOG_SHOWN) {
        Some(cut) => {
            let start = (cut..text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len());
            format!("[...]{}", &text[start..])
        }
        None if text.is_empty() => "(empty)".to_owned(),
        None => text.to_owned(),
    };
    Err(LinuxError::BpfLoad {
        step: step.to_owned(),
        log,
        errno,
    })
}

/// `cgroup-devices`: compiles `rules`, loads the program, attaches it to `cgroup`, then
/// detaches the device programs of berth that were attached before.
///
/// If detaching an old program fails, the new one stays attached with it: the cgroup is
/// then filtered by both (stricter, never looser), and the error says so.
pub(crate) fn apply(
    cgroup: &CgroupPath,
    rules: &[DeviceRule],
    step: &str,
) -> Result<(), LinuxError> {
    let program = compile_device_filter(rules).map_err(|source| LinuxError::DeviceRules {
        step: step.to_owned(),
        source,
    })?;
    let dir = open_dir(Path::new(cgroup.dir().as_str())).at(step)?;
    let old: Vec<OwnedFd> = attached(&dir)
        .at(step)?
        .into_iter()
        .filter(|(p, _)| p.name == PROG_NAME)
        .map(|(_, fd)| fd)
        .collect();
    let prog = load(&program.to_bytes(), step)?;
    crate::sys::bpf_prog_attach(
        dir.as_fd(),
        prog.as_fd(),
        ATTACH_CGROUP_DEVICE,
        F_ALLOW_MULTI,
    )
    .call("bpf(BPF_PROG_ATTACH)")
    .at(step)?;
    for fd in old {
        match crate::sys::bpf_prog_detach(dir.as_fd(), fd.as_fd(), ATTACH_CGROUP_DEVICE) {
            // ENOENT: someone detached it meanwhile.
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(("bpf(BPF_PROG_DETACH) of the previous program", e)).at(step),
        }
    }
    // The kernel holds the attached program; our fd of it is no longer needed.
    drop(prog);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::bpf::Insn;

    #[test]
    #[cfg_attr(
        not(feature = "e2e"),
        ignore = "needs root: --features berth-backend-linux/e2e"
    )]
    fn a_refused_program_reports_the_verifier_log() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "needs root; it never skips"
        );
        // `exit` with nothing in r0.
        let exit = Insn {
            code: 0x95,
            dst: 0,
            src: 0,
            off: 0,
            imm: 0,
        };
        let err = load(&exit.to_bytes(), "cgroup-devices x").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("cgroup-devices x: bpf(BPF_PROG_LOAD) failed"),
            "{text}"
        );
        assert!(text.contains("R0 !read_ok"), "{text}");
        assert_eq!(err.errno(), Some(Errno::EACCES));
    }

    #[test]
    #[cfg_attr(
        not(feature = "e2e"),
        ignore = "needs root: --features berth-backend-linux/e2e"
    )]
    fn the_verifier_accepts_compiled_programs() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "needs root; it never skips"
        );
        let rule = |allow, kind, major, minor, access: &str| DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: access.to_owned(),
        };
        for rules in [
            vec![],
            vec![rule(true, 'a', None, None, "rwm")],
            vec![
                rule(false, 'a', None, None, "rwm"),
                rule(true, 'c', None, None, "m"),
                rule(true, 'b', Some(8), None, "r"),
                rule(true, 'c', Some(0x8000_0000), Some(u32::MAX.into()), "rw"),
                rule(false, 'c', Some(1), Some(5), "w"),
                rule(true, 'c', Some(1), Some(3), ""),
            ],
        ] {
            let program = compile_device_filter(&rules).unwrap();
            if let Err(e) = load(&program.to_bytes(), "test") {
                panic!("{e}\n{program}");
            }
        }
    }
}
