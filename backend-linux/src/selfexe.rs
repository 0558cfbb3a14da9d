//! Protection of the berth binary against a container (CVE-2019-5736).
//!
//! berth's init is a clone of the runtime, so until its final `execve` every process berth
//! puts into a container — init, and the child of `exec` — has berth's binary as
//! `/proc/<pid>/exe`. And that `execve` itself resolves `/proc/self/exe` to berth's binary if
//! the container's entry point is a symlink to it or a `#!/proc/self/exe` script: the kernel
//! then runs berth's code inside the container, as the container's process. Either way a
//! process in the container can open the binary through `/proc/<pid>/exe`, wait until berth
//! is no longer running, and write to it — and the next `berth` run on the host is the
//! container's code.
//!
//! The defence (runc's, and crun's): before anything reaches a container, berth re-executes
//! itself from a sealed memfd copy of its binary. Then `/proc/<pid>/exe` of every such
//! process is the memfd, which no one can write (`F_SEAL_WRITE`), shrink or grow, and whose
//! seals cannot be removed (`F_SEAL_SEAL`); the host's file is never reachable from the
//! container. It costs one copy of the binary (in the kernel, page cache to memory) and one
//! `execve`, only for the commands that put a process into a container.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

/// Why berth could not run from a sealed copy of itself.
#[derive(Debug, thiserror::Error)]
pub enum SelfExeError {
    /// A step of making the copy failed.
    #[error("protecting the berth binary (CVE-2019-5736): {call}: {source}")]
    Io {
        /// What failed.
        call: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

fn io(call: &'static str) -> impl Fn(std::io::Error) -> SelfExeError {
    move |source| SelfExeError::Io { call, source }
}

fn errno(call: &'static str) -> impl Fn(Errno) -> SelfExeError {
    move |e| SelfExeError::Io {
        call,
        source: std::io::Error::from(e),
    }
}

/// The seals that make a memfd immutable.
fn seals() -> SealFlag {
    SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE
}

/// Whether `file` is a memfd that carries every seal of [`seals`].
fn is_sealed(file: &File) -> bool {
    fcntl(file, FcntlArg::F_GET_SEALS)
        .ok()
        .and_then(SealFlag::from_bits)
        .is_some_and(|s| s.contains(seals()))
}

/// Whether this process runs from a sealed memfd (what [`ensure_sealed_exe`] makes sure of).
pub fn running_sealed() -> bool {
    File::open("/proc/self/exe").is_ok_and(|f| is_sealed(&f))
}

/// Makes sure this process runs from a sealed memfd copy of its binary: returns at once if
/// it does; otherwise copies the binary into a new memfd, seals it and re-executes it with
/// the same arguments and environment (so on success it does not return).
///
/// Call it first thing in every command that puts a process into a container, while berth
/// is still single-threaded and has done nothing that an `execve` would lose.
pub fn ensure_sealed_exe() -> Result<(), SelfExeError> {
    let exe = File::open("/proc/self/exe").map_err(io("open /proc/self/exe"))?;
    if is_sealed(&exe) {
        return Ok(());
    }
    let copy = memfd_create(
        c"berth",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(errno("memfd_create"))?;
    let mut copy = File::from(copy);
    let mut exe = exe;
    // std's copy uses copy_file_range/sendfile between two files: no user-space buffer.
    std::io::copy(&mut exe, &mut copy).map_err(io("copy the binary into a memfd"))?;
    fcntl(copy.as_fd(), FcntlArg::F_ADD_SEALS(seals())).map_err(errno("seal the memfd"))?;
    let args = std::env::args_os()
        .map(cstring)
        .collect::<Result<Vec<_>, _>>()?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstring(kv)
        })
        .collect::<Result<_, _>>()?;
    // MFD_CLOEXEC is fine: berth is an ELF binary, not a script the kernel would reopen.
    // After fexecve, /proc/self/exe is this memfd, so the copy finds itself sealed and
    // goes on: there is no second re-execution.
    let Err(e) = nix::unistd::fexecve(copy.as_fd(), &args, &env);
    Err(errno("fexecve the sealed copy")(e))
}

fn cstring(s: OsString) -> Result<CString, SelfExeError> {
    CString::new(s.into_vec()).map_err(|e| SelfExeError::Io {
        call: "argument or environment string",
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })
}
