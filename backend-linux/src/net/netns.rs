//! Network namespaces: persisted ones (`ip netns add`/`del`), and netlink connections
//! opened from inside one.
//!
//! Invariant: the calling thread never leaves its own network namespace. Whatever must
//! happen inside another one (unshare a new namespace, open a netlink socket in it) runs on
//! a short-lived thread that enters it and exits; a netlink socket belongs for life to the
//! namespace it was created in, so the socket can then be used from any thread.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use super::error::{Fail, SysCall};

/// An rtnetlink connection: requests go through `handle`; `task` drives the socket on the
/// backend's runtime. The socket keeps its namespace alive until the task ends.
pub(crate) struct Conn {
    /// Where requests are sent.
    pub(crate) handle: rtnetlink::Handle,
    /// The connection's task (aborted and awaited when the connection is dropped).
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

/// Opens a namespace file (`/run/berth/netns/X`, `/proc/thread-self/ns/net`) for setns or
/// `IFLA_NET_NS_FD`.
pub(crate) fn open_ns_file(path: &Path) -> Result<File, Fail> {
    // std opens with O_CLOEXEC.
    File::open(path).map_err(|e| Fail::Sys("open netns", io_errno(&e)))
}

/// The errno of an I/O error (EIO when it has none, which std's file calls always have).
pub(crate) fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// Opens an rtnetlink connection inside the network namespace `ns` and starts its task on
/// `rt`.
///
/// The socket is created on a thread that enters `ns` with setns(2) and then exits; the
/// caller's thread stays where it is.
pub(crate) fn connect_in(rt: &tokio::runtime::Runtime, ns: impl AsFd + Send) -> Result<Conn, Fail> {
    let handle = rt.handle().clone();
    let made = std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).sys("setns")?;
            // The socket registers with the runtime's reactor: enter its context.
            let _entered = handle.enter();
            rtnetlink::new_connection()
                .map(|(conn, handle, _messages)| (conn, handle))
                .map_err(|e| Fail::Sys("socket(AF_NETLINK)", io_errno(&e)))
        })
        .join()
    });
    let (conn, handle) = match made {
        Ok(r) => r?,
        // The thread does not panic (no unwrap, no indexing); should it, report EIO.
        Err(_) => return Err(Fail::Sys("netns thread", Errno::EIO)),
    };
    let task = rt.spawn(conn);
    Ok(Conn { handle, task })
}

/// `ip netns add`: a new network namespace, persisted by bind-mounting its nsfs file on
/// `path` (an empty file made here; the namespace lives until `path` is unmounted).
///
/// The parent directory must exist. As iproute2 does for `/run/netns`, it is made a shared
/// mount point of its own (bind-mounted on itself first if it is not a mount point), so
/// that the namespace's mount propagates to mount namespaces made later, and so does its
/// unmount: a copy of the mount in another mount namespace would otherwise keep the
/// namespace alive after [`netns_remove`]. That stays: it is the directory's setup, not
/// this namespace's.
pub(crate) fn netns_create(path: &Path) -> Result<(), Fail> {
    let Some(dir) = path.parent() else {
        return Err(Fail::Sys("netns path has no parent", Errno::EINVAL));
    };
    make_shared_mount_point(dir)?;
    // O_EXCL: an existing file is someone else's namespace (or another file): never ours.
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(path)
        .map_err(|e| Fail::Sys("create netns file", io_errno(&e)))?;
    let mounted = std::thread::scope(|s| {
        s.spawn(|| {
            // unshare(CLONE_NEWNET) moves only this thread (a namespace is per task); it
            // exits right after, leaving the namespace held by the bind mount alone.
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).sys("unshare(CLONE_NEWNET)")?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .sys("mount --bind /proc/thread-self/ns/net")
        })
        .join()
    });
    let result = match mounted {
        Ok(r) => r,
        Err(_) => Err(Fail::Sys("netns thread", Errno::EIO)),
    };
    if result.is_err() {
        // The file is ours (O_EXCL above) and nothing is mounted on it.
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Makes `dir` a shared mount point, bind-mounting it on itself first when it is not a
/// mount point (iproute2's `netns_add` does the same for `/run/netns`).
fn make_shared_mount_point(dir: &Path) -> Result<(), Fail> {
    let shared = || {
        nix::mount::mount(
            None::<&str>,
            dir,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        // EINVAL: not a mount point.
        Err(Errno::EINVAL) => {
            nix::mount::mount(
                Some(dir),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .sys("mount --rbind netns dir on itself")?;
            shared().sys("mount --make-rshared netns dir")
        }
        Err(e) => Err(Fail::Sys("mount --make-rshared netns dir", e)),
    }
}

/// `ip netns del`: unmounts the namespace file (lazily) and removes it. A path that is not
/// mounted or not there is skipped, so removing twice, or after a half-done create, works.
pub(crate) fn netns_remove(path: &Path) -> Result<(), Fail> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point; ENOENT: no such file.
        Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {}
        Err(e) => return Err(Fail::Sys("umount2(MNT_DETACH)", e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Fail::Sys("unlink netns file", io_errno(&e))),
    }
}
