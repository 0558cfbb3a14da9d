//! Every `unsafe` block of berth: the system calls nix has no safe wrapper for.
//!
//! nix's safe wrappers are used everywhere else; this module wraps `clone3`, `capset`, the
//! capability `prctl`s, `setdomainname`, `close_range`, the pty ioctls, the seccomp
//! filter load and the `bpf(2)` commands of cgroup device programs. Each wrapper is safe
//! to call: its `// SAFETY:` comment names the invariant that makes the raw call sound.
//! Raw fds returned by the kernel become [`OwnedFd`] at once.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// What [`clone_fork`] returns in each of the two processes.
#[derive(Debug)]
pub(crate) enum Forked {
    /// In the caller: the child's pid, as the caller's pid namespace sees it.
    Parent(Pid),
    /// In the child.
    Child,
}

/// `struct clone_args` of `linux/sched.h` (version 0, 64 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// Counts the threads of this process (`Threads:` of `/proc/self/status`).
pub(crate) fn thread_count() -> std::io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1))
}

/// clone(2) like fork(2), into the new namespaces in `flags`: the child runs on a copy of
/// the caller's stack and memory and returns [`Forked::Child`]; SIGCHLD is sent to the
/// parent when it exits.
///
/// The caller must be single-threaded: [`crate::backend`] checks [`thread_count`] first.
pub(crate) fn clone_fork(flags: CloneFlags) -> nix::Result<Forked> {
    // Only namespace flags pass: CLONE_VM, CLONE_THREAD, CLONE_SETTLS and friends would make
    // the child share memory or need a stack, which this fork-like call does not give.
    let ns_only = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWCGROUP;
    let mut bits = u64::try_from((flags & ns_only).bits()).unwrap_or(0);
    if flags.bits() & libc::CLONE_NEWTIME != 0 {
        bits |= u64::try_from(libc::CLONE_NEWTIME).unwrap_or(0);
    }
    let args = CloneArgs {
        flags: bits,
        exit_signal: u64::try_from(libc::SIGCHLD).unwrap_or(17),
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid, fully initialised `clone_args` whose size is passed along;
    // it asks for no shared memory, no stack and no TLS change, so the child gets a private
    // copy-on-write copy of this address space and resumes here, as after fork(2). That
    // copy is sound because this process has a single thread (the caller checked
    // `thread_count() == 1`; berth spawns no thread before its init): no other thread can
    // hold a lock (malloc's, stdout's) that would stay locked forever in the child. glibc's
    // cached thread id in the child's TCB stays the parent's; glibc >= 2.34 `raise` and
    // `abort` ask the kernel (`gettid`) instead, and Rust's std never reads the cache, so
    // the stale value is never used. The child never returns into code that assumes it is
    // the parent: `crate::init` ends it with `_exit`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(
            i32::try_from(pid).map_err(|_| Errno::EOVERFLOW)?,
        ))),
    }
}

/// _exit(2): ends the process at once, without atexit handlers or stdio flushes (init is a
/// copy of the runtime: flushing the runtime's buffers twice would duplicate its output).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an int and does not return; it touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Restores the default action of SIGPIPE, which Rust's runtime ignores and execve would
/// pass on: the container's process must die of a broken pipe as any process does.
pub(crate) fn default_sigpipe() -> nix::Result<()> {
    // SAFETY: SIG_DFL installs no handler, so no code of ours can run in signal context.
    unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    }
    .map(drop)
}

/// kill(2) with any signal number, real-time ones included (nix's `Signal` has only the
/// standard ones); 0 checks that the process exists.
pub(crate) fn kill_any(pid: Pid, signal: i32) -> nix::Result<()> {
    // SAFETY: kill takes two integers and touches no memory of ours; a bad signal number
    // or pid is reported as EINVAL or ESRCH.
    let r = unsafe { libc::kill(pid.as_raw(), signal) };
    Errno::result(r).map(drop)
}

/// setdomainname(2).
pub(crate) fn setdomainname(name: &[u8]) -> nix::Result<()> {
    // SAFETY: the pointer and length describe `name`, which outlives the call; the kernel
    // only reads that many bytes.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(ret).map(drop)
}

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_V3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// capset(2) of the calling thread: the three sets as 64-bit masks.
pub(crate) fn capset(effective: u64, permitted: u64, inheritable: u64) -> nix::Result<()> {
    let word = |v: u64, i: u32| u32::try_from((v >> (32 * i)) & 0xffff_ffff).unwrap_or(0);
    let data = [0u32, 1].map(|i| CapData {
        effective: word(effective, i),
        permitted: word(permitted, i),
        inheritable: word(inheritable, i),
    });
    let header = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    // SAFETY: `header` is a valid v3 header for the calling thread (pid 0), and `data` is
    // the two-element array that version 3 reads; both live across the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    Errno::result(ret).map(drop)
}

/// prctl(2) with integer arguments only.
fn prctl(option: libc::c_int, a: libc::c_ulong, b: libc::c_ulong) -> nix::Result<libc::c_int> {
    // SAFETY: every option passed here (`PR_CAPBSET_*`, `PR_CAP_AMBIENT`) takes plain
    // integers, no pointers; the unused arguments are zero as the man page requires.
    let ret = unsafe { libc::prctl(option, a, b, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    Errno::result(ret)
}

/// Drops `cap` from the bounding set (PR_CAPBSET_DROP).
pub(crate) fn capbset_drop(cap: u32) -> nix::Result<()> {
    prctl(libc::PR_CAPBSET_DROP, cap.into(), 0).map(drop)
}

/// Whether `cap` is in the bounding set (PR_CAPBSET_READ); `EINVAL` for an unknown cap.
pub(crate) fn capbset_read(cap: u32) -> nix::Result<bool> {
    prctl(libc::PR_CAPBSET_READ, cap.into(), 0).map(|v| v == 1)
}

/// Empties the ambient set.
pub(crate) fn ambient_clear_all() -> nix::Result<()> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    )
    .map(drop)
}

/// Raises `cap` in the ambient set.
pub(crate) fn ambient_raise(cap: u32) -> nix::Result<()> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
        cap.into(),
    )
    .map(drop)
}

/// Marks every fd from `first` up close-on-exec (close_range(2) with CLOSE_RANGE_CLOEXEC).
pub(crate) fn cloexec_from(first: u32) -> nix::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing; it only sets a flag on
    // fds of this process, so no `OwnedFd` anywhere is invalidated.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(ret).map(drop)
}

/// Unlocks the pty `master` and opens its peer (TIOCSPTLCK, TIOCGPTPEER); returns the
/// peer and its number (`/dev/pts/N`).
pub(crate) fn pty_peer(master: &OwnedFd) -> nix::Result<(OwnedFd, u32)> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which points at `unlock`.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    Errno::result(ret)?;
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer, which points at
    // `number`.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) };
    Errno::result(ret)?;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags as its integer argument and returns a new
    // fd (or -1); it reads no memory of ours.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    let fd = Errno::result(fd)?;
    // SAFETY: the kernel just returned `fd` as a new open file; nothing else owns it.
    let peer = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((peer, number))
}

/// Makes `tty` the controlling terminal of this process (TIOCSCTTY); it must be a session
/// leader without one.
pub(crate) fn set_controlling_tty(tty: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal) and reads no memory.
    let ret = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(ret).map(drop)
}

/// Sets a terminal's window size (TIOCSWINSZ).
pub(crate) fn set_winsize(tty: BorrowedFd<'_>, rows: u16, cols: u16) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `struct winsize` through the pointer, which points at
    // `ws`.
    let ret = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    Errno::result(ret).map(drop)
}

/// A terminal's window size (TIOCGWINSZ) as (rows, columns).
pub(crate) fn get_winsize(tty: BorrowedFd<'_>) -> nix::Result<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` through the pointer, which points at
    // `ws`, a live and writable value of that type.
    let ret = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    Errno::result(ret).map(|_| (ws.ws_row, ws.ws_col))
}

/// Takes ownership of fds that arrived in an SCM_RIGHTS message.
pub(crate) fn owned_from_scm_rights(fds: Vec<std::os::fd::RawFd>) -> Vec<OwnedFd> {
    fds.into_iter()
        // SAFETY: the kernel installed each of these fds in this process when it delivered
        // the SCM_RIGHTS message; nothing else holds them yet, so each gets one owner here.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect()
}

/// The size every `union bpf_attr` this module passes has: larger than the kernel's union
/// (about 150 bytes in Linux 6.x) and zero past the fields set, so a field the kernel
/// writes back (some commands write fields newer than the ones read) lands in memory of
/// ours, and the kernel's check that bytes past its own union are zero passes.
const BPF_ATTR_SIZE: usize = 512;

/// `bpf(2)` commands (`enum bpf_cmd`).
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_PROG_QUERY: libc::c_int = 16;

/// `union bpf_attr` as a zeroed, 8-byte aligned buffer with typed field writes.
#[repr(C, align(8))]
struct BpfAttr([u8; BPF_ATTR_SIZE]);

impl BpfAttr {
    fn new() -> Self {
        BpfAttr([0; BPF_ATTR_SIZE])
    }
    fn set_u32(&mut self, at: usize, v: u32) {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn set_u64(&mut self, at: usize, v: u64) {
        self.0[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    }
    fn u32_at(&self, at: usize) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.0[at..at + 4]);
        u32::from_ne_bytes(b)
    }
}

/// A user pointer as `bpf_attr`'s `__aligned_u64` holds it.
fn user_ptr<T>(p: *const T) -> u64 {
    p as usize as u64
}

/// A file descriptor as `bpf_attr`'s `__u32` holds it (fds are never negative).
fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

/// bpf(2) with `attr`, the whole buffer passed as the attribute.
///
/// # Safety
///
/// Every pointer that `cmd` reads from `attr` must point at memory that is valid for the
/// length `attr` gives with it, for reads or (where `cmd` writes through it) writes, for
/// the duration of the call.
unsafe fn bpf(cmd: libc::c_int, attr: &mut BpfAttr) -> nix::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable buffer of the size passed; what its pointer
    // fields point at is the caller's promise.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            libc::c_uint::try_from(BPF_ATTR_SIZE).unwrap_or(0),
        )
    };
    Errno::result(ret)
}

/// An fd that bpf(2) just returned, owned.
fn owned_fd(ret: libc::c_long) -> nix::Result<OwnedFd> {
    let fd = libc::c_int::try_from(ret).map_err(|_| Errno::EOVERFLOW)?;
    // SAFETY: the kernel just returned `fd` as a new open file (bpf(2) returns a new fd
    // for the commands that reach here); nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// bpf(BPF_PROG_LOAD): loads a program of `prog_type` from its encoded instructions
/// (8 bytes each), named `name` (at most 15 of `[A-Za-z0-9_.]`). With `log`, the verifier
/// writes its level-1 log there (at least 128 bytes, or the kernel says `EINVAL`).
pub(crate) fn bpf_prog_load(
    prog_type: u32,
    insns: &[u8],
    license: &std::ffi::CStr,
    name: &str,
    log: Option<&mut [u8]>,
) -> nix::Result<OwnedFd> {
    if !insns.len().is_multiple_of(8) || name.len() > 15 {
        return Err(Errno::EINVAL);
    }
    let count = u32::try_from(insns.len() / 8).map_err(|_| Errno::E2BIG)?;
    let mut attr = BpfAttr::new();
    attr.set_u32(0, prog_type);
    attr.set_u32(4, count);
    attr.set_u64(8, user_ptr(insns.as_ptr()));
    attr.set_u64(16, user_ptr(license.as_ptr()));
    if let Some(log) = log {
        attr.set_u32(24, 1); // log_level
        attr.set_u32(28, u32::try_from(log.len()).map_err(|_| Errno::E2BIG)?);
        attr.set_u64(32, user_ptr(log.as_mut_ptr()));
    }
    // prog_name: char[16], NUL-terminated (the buffer is zeroed).
    attr.0[48..48 + name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `insns` is `count * 8` readable bytes, `license` a NUL-terminated string,
    // and `log` (when set) `log.len()` writable bytes, all borrowed for the whole call;
    // no other pointer is set.
    let ret = unsafe { bpf(BPF_PROG_LOAD, &mut attr) }?;
    owned_fd(ret)
}

/// bpf(BPF_PROG_ATTACH): attaches `prog` to the cgroup `target` as `attach_type`.
pub(crate) fn bpf_prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> nix::Result<()> {
    let mut attr = BpfAttr::new();
    attr.set_u32(0, fd_u32(target));
    attr.set_u32(4, fd_u32(prog));
    attr.set_u32(8, attach_type);
    attr.set_u32(12, flags);
    // SAFETY: this command's attribute holds fds and integers only, no pointer.
    unsafe { bpf(BPF_PROG_ATTACH, &mut attr) }.map(drop)
}

/// bpf(BPF_PROG_DETACH): detaches `prog` from the cgroup `target`.
pub(crate) fn bpf_prog_detach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
) -> nix::Result<()> {
    let mut attr = BpfAttr::new();
    attr.set_u32(0, fd_u32(target));
    attr.set_u32(4, fd_u32(prog));
    attr.set_u32(8, attach_type);
    // SAFETY: this command's attribute holds fds and integers only, no pointer.
    unsafe { bpf(BPF_PROG_DETACH, &mut attr) }.map(drop)
}

/// bpf(BPF_PROG_QUERY): the ids of the programs attached to the cgroup `target` itself
/// (not inherited from its parents) as `attach_type`.
pub(crate) fn bpf_prog_query(target: BorrowedFd<'_>, attach_type: u32) -> nix::Result<Vec<u32>> {
    let mut ids: Vec<u32> = Vec::new();
    loop {
        let mut attr = BpfAttr::new();
        attr.set_u32(0, fd_u32(target));
        attr.set_u32(4, attach_type);
        if !ids.is_empty() {
            attr.set_u64(16, user_ptr(ids.as_mut_ptr()));
        }
        let room = u32::try_from(ids.len()).map_err(|_| Errno::E2BIG)?;
        attr.set_u32(24, room); // prog_cnt: room on the way in, the count on the way out
        // SAFETY: `prog_ids` is either unset (null, with a count of 0, which the kernel
        // does not write through) or points at `ids`, `room` writable u32s that live
        // across the call.
        let result = unsafe { bpf(BPF_PROG_QUERY, &mut attr) };
        let count = usize::try_from(attr.u32_at(24)).map_err(|_| Errno::EOVERFLOW)?;
        match result {
            Ok(_) if count <= ids.len() => {
                ids.truncate(count);
                return Ok(ids);
            }
            // Asked with no room, or more were attached meanwhile: ask again with room.
            Ok(_) | Err(Errno::ENOSPC) => ids = vec![0; count + 4],
            Err(e) => return Err(e),
        }
    }
}

/// bpf(BPF_PROG_GET_FD_BY_ID): opens the loaded program with id `id` (needs
/// CAP_SYS_ADMIN).
pub(crate) fn bpf_prog_get_fd_by_id(id: u32) -> nix::Result<OwnedFd> {
    let mut attr = BpfAttr::new();
    attr.set_u32(0, id);
    // SAFETY: this command's attribute holds integers only, no pointer.
    let ret = unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }?;
    owned_fd(ret)
}

/// bpf(BPF_OBJ_GET_INFO_BY_FD) of a program: its name (`bpf_prog_info.name`).
pub(crate) fn bpf_prog_name(prog: BorrowedFd<'_>) -> nix::Result<String> {
    // `struct bpf_prog_info` up to and including `char name[16]` at offset 64; the
    // kernel writes no more than the length asked for.
    const NAME_AT: usize = 64;
    const INFO_LEN: usize = NAME_AT + 16;
    let mut info = [0u64; INFO_LEN / 8];
    let mut attr = BpfAttr::new();
    attr.set_u32(0, fd_u32(prog));
    attr.set_u32(4, u32::try_from(INFO_LEN).unwrap_or(0));
    attr.set_u64(8, user_ptr(info.as_mut_ptr()));
    // SAFETY: `info` is INFO_LEN writable bytes (8-byte aligned, as the kernel's struct
    // is), the length passed; its own pointer fields are zero with zero lengths, so the
    // kernel writes nowhere else.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    let bytes: Vec<u8> = info.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let name = &bytes[NAME_AT..INFO_LEN];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// fsetxattr(2): sets the extended attribute `name` of the open file `fd` to `value`
/// (used for overlayfs's opaque-directory marker; nix has no xattr calls).
pub(crate) fn fsetxattr(
    fd: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    value: &[u8],
) -> nix::Result<()> {
    // SAFETY: `name` is NUL-terminated, `value` is `value.len()` readable bytes; the
    // kernel only reads them during the call.
    let ret = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// fgetxattr(2): the value of the extended attribute `name` of the open file `fd`
/// (at most 4 KiB).
#[cfg(test)]
pub(crate) fn fgetxattr(fd: BorrowedFd<'_>, name: &std::ffi::CStr) -> nix::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `name` is NUL-terminated and `buf` is `buf.len()` writable bytes; the kernel
    // writes at most that many and returns how many.
    let ret = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let len = usize::try_from(Errno::result(ret)?).map_err(|_| Errno::EINVAL)?;
    buf.truncate(len);
    Ok(buf)
}
