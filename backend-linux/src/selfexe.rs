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
//! The defence: before anything reaches a container, berth makes sure the executable it
//! runs from cannot be written through any path a container could reach, re-executing
//! itself if need be. It is already so when it runs from a read-only mount (berth
//! installed on a read-only /usr, or a copy of ours). Otherwise, as crun does, it bind
//! mounts its binary read-only onto a scratch file, opens it, detaches the mount and
//! re-executes from it: `/proc/<pid>/exe` is then a file on a read-only mount that is in
//! no mount namespace at all, and opening it for writing fails (`EROFS`). Where it may not
//! mount (no CAP_SYS_ADMIN), it falls back to runc's way: a copy in a memfd sealed against
//! writing, growing and shrinking, whose seals cannot be removed. Either costs a few
//! syscalls and one `execve`, and only the commands that put a process into a container
//! pay it.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SealFlag, fcntl, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::stat::Mode;
use nix::sys::statvfs::{FsFlags, fstatvfs};

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

/// Whether `file` is on a read-only mount.
fn on_read_only_mount(file: &File) -> bool {
    fstatvfs(file).is_ok_and(|st| st.flags().contains(FsFlags::ST_RDONLY))
}

/// Whether no container can write to the executable this process runs from (what
/// [`ensure_sealed_exe`] makes sure of): a sealed memfd, or a file on a read-only mount.
pub fn running_sealed() -> bool {
    File::open("/proc/self/exe").is_ok_and(|f| is_sealed(&f) || on_read_only_mount(&f))
}

/// Makes sure no container can write to the executable this process runs from: returns at
/// once if that is so already (see [`running_sealed`]); otherwise re-executes berth, with
/// the same arguments and environment, from a read-only bind mount of its binary made on a
/// scratch file in `scratch_dir` if it exists, else in the temp directory (and detached at
/// once), or, where it may not mount, from a sealed memfd copy. On success it does not
/// return.
///
/// Call it first thing in every command that puts a process into a container, while berth
/// is still single-threaded and has done nothing that an `execve` would lose.
pub fn ensure_sealed_exe(scratch_dir: &Path) -> Result<(), SelfExeError> {
    let exe = File::open("/proc/self/exe").map_err(io("open /proc/self/exe"))?;
    if is_sealed(&exe) || on_read_only_mount(&exe) {
        return Ok(());
    }
    let target = match read_only_bind(Path::new("/proc/self/exe"), scratch_dir) {
        Ok(fd) => fd,
        Err(_) => sealed_copy(exe)?,
    };
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
    // After fexecve, /proc/self/exe is the read-only or sealed file, so the new image
    // finds itself protected and goes on: there is no second re-execution. (Close-on-exec
    // is fine: berth is an ELF binary, not a script the kernel would reopen.)
    let Err(e) = nix::unistd::fexecve(target.as_fd(), &args, &env);
    Err(errno("fexecve the protected binary")(e))
}

/// crun's way: binds `source` (`/proc/self/exe`) read-only onto a new scratch file, opens
/// it (`O_PATH`), then detaches the mount and removes the file, leaving the fd the only way
/// to the read-only mount.
fn read_only_bind(source: &Path, scratch_dir: &Path) -> Result<OwnedFd, SelfExeError> {
    // Nothing is made for the scratch file: a --root that does not exist yet (a command
    // about to fail on bad input must leave nothing) gives way to the temp directory.
    let temp;
    let scratch_dir = if scratch_dir.is_dir() {
        scratch_dir
    } else {
        temp = std::env::temp_dir();
        &temp
    };
    let path = scratch_dir.join(format!(".berth-exe-{}", std::process::id()));
    File::options()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io("create the scratch file"))?;
    let bound = mount(
        Some(source),
        &path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(errno("bind mount the binary"));
    let opened = bound.and_then(|()| {
        mount(
            None::<&str>,
            &path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(errno("remount the binary read-only"))?;
        open(&path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(errno("open the read-only binary"))
    });
    let _ = umount2(&path, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(&path);
    opened
}

/// runc's way: a copy of the binary in a memfd, sealed.
fn sealed_copy(mut exe: File) -> Result<OwnedFd, SelfExeError> {
    let copy = memfd_create(
        c"berth",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(errno("memfd_create"))?;
    let mut copy = File::from(copy);
    // std's copy uses copy_file_range/sendfile between two files: no user-space buffer.
    std::io::copy(&mut exe, &mut copy).map_err(io("copy the binary into a memfd"))?;
    fcntl(copy.as_fd(), FcntlArg::F_ADD_SEALS(seals())).map_err(errno("seal the memfd"))?;
    Ok(copy.into())
}

fn cstring(s: OsString) -> Result<CString, SelfExeError> {
    CString::new(s.into_vec()).map_err(|e| SelfExeError::Io {
        call: "argument or environment string",
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn reopen_for_writing(fd: &OwnedFd) -> std::io::Result<File> {
        use std::os::fd::AsRawFd;
        File::options()
            .append(true)
            .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
    }

    #[test]
    fn the_memfd_copy_is_sealed_and_cannot_be_written() {
        let exe = File::open("/proc/self/exe").unwrap();
        let len = exe.metadata().unwrap().len();
        let copy = sealed_copy(exe).unwrap();
        let file = File::from(copy.try_clone().unwrap());
        assert!(is_sealed(&file));
        assert_eq!(file.metadata().unwrap().len(), len);
        let mut w = reopen_for_writing(&copy).unwrap();
        let e = w.write_all(b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
    }

    #[test]
    fn the_read_only_bind_cannot_be_written_and_leaves_nothing() {
        if !nix::unistd::geteuid().is_root() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI runs the unit tests as root"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // Not the running test binary, which is busy (ETXTBSY) whatever its mount.
        let source = tempfile::NamedTempFile::new().unwrap();
        let fd = read_only_bind(source.path(), dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let path = dir.path().to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&path), "the bind mount is detached");
        let file = File::open(format!("/proc/self/fd/{}", {
            use std::os::fd::AsRawFd;
            fd.as_raw_fd()
        }))
        .unwrap();
        assert!(on_read_only_mount(&file));
        let e = reopen_for_writing(&fd).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    }
}
