//! Filesystem ops: paths resolved inside the container's root, mounts, the root switch.
//!
//! Invariant: a [`Location::InRoot`] or [`Location::Container`] path is resolved with
//! `openat2(RESOLVE_IN_ROOT)` from an fd of its root, so a symlink in the rootfs (`etc -> /`)
//! resolves inside the rootfs and never reaches the host. Ops then act on the resolved fd:
//! `*at` calls on the parent directory, or `/proc/self/fd/N` for mount(2), which follows
//! that magic link to exactly the file the fd holds. [`Location::Host`] paths are taken as
//! they are. Once the root is switched (`pivoted`), `[ROOT]PATH` of that root means `PATH`.
//!
//! What a `mkdir -p`-like op, `mknod` or `ln -s` makes is identified by its [`FileId`], so
//! that its removal (by the runtime, for what init made, seen from the host's mount
//! namespace) removes that very file and never another one found at the same path: in the
//! host's view `[ROOT]/dev/null` may be the image's own node, not the one init made on its
//! tmpfs at `/dev`.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use berth_core::plan::{
    ContainerPath, DeviceKind, HostPath, Location, MountFlag, MountFlags, MountOp, MountSource,
    Propagation,
};
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::mount::{MntFlags, MsFlags, mount as sys_mount, umount2};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, fchmod, fchmodat, fstat, fstatat, makedev, mkdirat, mknodat,
};
use nix::sys::statvfs::{FsFlags, fstatvfs};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, symlinkat, unlinkat};

use crate::error::{Call, SysResult};

/// Which file a path names: its filesystem and inode, as `lstat` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileId {
    /// `st_dev`.
    pub(crate) dev: u64,
    /// `st_ino`.
    pub(crate) ino: u64,
}

impl FileId {
    fn of(st: &nix::sys::stat::FileStat) -> FileId {
        FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

/// One thing a `mkdir -p`-like op made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MadeEntry {
    /// Where it is.
    pub(crate) loc: Location,
    /// A directory (else a file).
    pub(crate) dir: bool,
    /// The file made, so its removal removes nothing else.
    pub(crate) id: FileId,
}

/// The same location as the host's mount namespace names it, for a process whose root is
/// `pivoted`: `PATH` of the switched root is `[ROOT]PATH`, and before a switch the current
/// root is the host's.
pub(crate) fn host_view(loc: &Location, pivoted: Option<&HostPath>) -> Location {
    match (loc, pivoted) {
        (Location::Container(path), Some(root)) => Location::InRoot {
            root: root.clone(),
            path: path.clone(),
        },
        (Location::Container(path), None) => Location::Host(HostPath::new(path.as_str())),
        (other, _) => other.clone(),
    }
}

/// The identity of the file at `loc`, without following a final symlink.
pub(crate) fn file_id(loc: &Location, pivoted: Option<&HostPath>) -> SysResult<FileId> {
    let (parent, name) = open_parent(loc, pivoted)?;
    let st = fstatat(&parent, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW).call("fstatat")?;
    Ok(FileId::of(&st))
}

/// MountFlags -> MsFlags: the one translation of core's flags to mount(2)'s.
pub(crate) fn ms_flags(flags: &MountFlags) -> MsFlags {
    let mut out = MsFlags::empty();
    for f in flags.iter() {
        out |= match f {
            MountFlag::Bind => MsFlags::MS_BIND,
            MountFlag::Rec => MsFlags::MS_REC,
            MountFlag::Ro => MsFlags::MS_RDONLY,
            MountFlag::Nosuid => MsFlags::MS_NOSUID,
            MountFlag::Nodev => MsFlags::MS_NODEV,
            MountFlag::Noexec => MsFlags::MS_NOEXEC,
            MountFlag::Sync => MsFlags::MS_SYNCHRONOUS,
            MountFlag::Dirsync => MsFlags::MS_DIRSYNC,
            MountFlag::Mand => MsFlags::MS_MANDLOCK,
            MountFlag::Noatime => MsFlags::MS_NOATIME,
            MountFlag::Nodiratime => MsFlags::MS_NODIRATIME,
            MountFlag::Relatime => MsFlags::MS_RELATIME,
            MountFlag::Strictatime => MsFlags::MS_STRICTATIME,
            MountFlag::Lazytime => MsFlags::MS_LAZYTIME,
            MountFlag::Silent => MsFlags::MS_SILENT,
            MountFlag::Nosymfollow => MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
            // Not mount(2)'s: `mount` carries it out itself.
            MountFlag::TmpCopyUp => MsFlags::empty(),
        };
    }
    out
}

/// Propagation -> MsFlags.
pub(crate) fn propagation_flags(p: Propagation, recursive: bool) -> MsFlags {
    let base = match p {
        Propagation::Private => MsFlags::MS_PRIVATE,
        Propagation::Shared => MsFlags::MS_SHARED,
        Propagation::Slave => MsFlags::MS_SLAVE,
        Propagation::Unbindable => MsFlags::MS_UNBINDABLE,
    };
    if recursive {
        base | MsFlags::MS_REC
    } else {
        base
    }
}

/// A location split into the root it is resolved in and the path below that root.
enum Base<'a> {
    /// A host path, taken as is.
    Host(&'a str),
    /// A path resolved inside `root`.
    InRoot {
        root: &'a str,
        path: &'a ContainerPath,
    },
}

fn base<'a>(loc: &'a Location, pivoted: Option<&HostPath>) -> Base<'a> {
    match loc {
        Location::Host(h) => Base::Host(h.as_str()),
        Location::InRoot { root, path } if pivoted == Some(root) => {
            Base::InRoot { root: "/", path }
        }
        Location::InRoot { root, path } => Base::InRoot {
            root: root.as_str(),
            path,
        },
        Location::Container(path) => Base::InRoot { root: "/", path },
    }
}

thread_local! {
    /// The root directory last opened by [`open_root`], with its path: a plan resolves
    /// some hundred locations in the same root, and opening it each time was a tenth of
    /// init's syscalls. The fd stands for what the path named when it was opened, so
    /// anything that may change that forgets it ([`forget_root`]): a mount or unmount on a
    /// host path or on a root itself (a [`Target`] that is no location strictly inside a
    /// root), pivot_root, chroot, and a change of mount namespace. Only init caches
    /// ([`cache_roots`]), for the few milliseconds of its setup: a runtime (one day a
    /// daemon) lives long enough to see a rootfs directory replaced under the same path.
    static ROOT: std::cell::RefCell<Option<(String, Rc<OwnedFd>)>> =
        const { std::cell::RefCell::new(None) };
    /// Whether [`open_root`] caches (in init only).
    static CACHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Forgets the root cached by [`open_root`] (see [`ROOT`]).
pub(crate) fn forget_root() {
    ROOT.with(|r| r.borrow_mut().take());
}

/// Makes [`open_root`] cache from now on, starting empty: init calls it first thing.
pub(crate) fn cache_roots() {
    forget_root();
    CACHING.with(|c| c.set(true));
}

fn open_root(root: &str) -> SysResult<Rc<OwnedFd>> {
    if let Some(fd) = ROOT.with(|r| {
        r.borrow()
            .as_ref()
            .filter(|(path, _)| path == root)
            .map(|(_, fd)| Rc::clone(fd))
    }) {
        return Ok(fd);
    }
    let fd = Rc::new(
        nix::fcntl::open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .call("open root")?,
    );
    if CACHING.with(std::cell::Cell::get) {
        ROOT.with(|r| *r.borrow_mut() = Some((root.to_owned(), Rc::clone(&fd))));
    }
    Ok(fd)
}

/// `openat2(root, path, RESOLVE_IN_ROOT)`: `path` resolved with `root` as `/`.
fn open_in_root(root: &OwnedFd, path: &ContainerPath, flags: OFlag) -> SysResult<OwnedFd> {
    let rel = path.as_str().trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, rel, how).call("openat2")
}

/// Opens a location with `flags` (`O_CLOEXEC` is added).
pub(crate) fn open_loc(
    loc: &Location,
    pivoted: Option<&HostPath>,
    flags: OFlag,
) -> SysResult<OwnedFd> {
    match base(loc, pivoted) {
        Base::Host(p) => nix::fcntl::open(p, flags | OFlag::O_CLOEXEC, Mode::empty()).call("open"),
        Base::InRoot { root, path } => open_in_root(&*open_root(root)?, path, flags),
    }
}

/// The location's parent directory (opened, resolved like the location) and its last
/// component. The root itself has no parent: `EINVAL`.
pub(crate) fn open_parent(
    loc: &Location,
    pivoted: Option<&HostPath>,
) -> SysResult<(OwnedFd, String)> {
    match base(loc, pivoted) {
        Base::Host(p) => {
            let path = Path::new(p);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or(("parent of host path", Errno::EINVAL))?;
            let parent = path.parent().unwrap_or(Path::new("/"));
            let fd = nix::fcntl::open(
                parent,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .call("open parent")?;
            Ok((fd, name))
        }
        Base::InRoot { root, path } => {
            let name = path
                .components()
                .last()
                .ok_or(("parent of /", Errno::EINVAL))?
                .to_owned();
            let root = open_root(root)?;
            let parent = open_in_root(&root, &path.parent(), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
            Ok((parent, name))
        }
    }
}

/// The magic-link path of an fd of this process, for calls that take only a path.
pub(crate) fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// The ancestors of a location and itself, outermost first, without the root.
fn prefixes(loc: &Location) -> Vec<Location> {
    match loc {
        Location::Host(h) => {
            let mut out: Vec<Location> = Path::new(h.as_str())
                .ancestors()
                .filter(|p| p.parent().is_some())
                .map(|p| Location::Host(HostPath::new(p.to_string_lossy())))
                .collect();
            out.reverse();
            out
        }
        Location::InRoot { path, .. } | Location::Container(path) => {
            let mut cur = ContainerPath::root();
            let mut out = Vec::new();
            for c in path.components() {
                cur = match cur.join(c) {
                    Ok(p) => p,
                    Err(_) => break,
                };
                out.push(match loc {
                    Location::InRoot { root, .. } => Location::InRoot {
                        root: root.clone(),
                        path: cur.clone(),
                    },
                    _ => Location::Container(cur.clone()),
                });
            }
            out
        }
    }
}

/// `mkdir -p -m MODE`: returns what it made, outermost first. On failure, removes what it
/// made before failing, so the op is all or nothing.
pub(crate) fn mkdir_all(
    loc: &Location,
    mode: u32,
    pivoted: Option<&HostPath>,
) -> SysResult<Vec<MadeEntry>> {
    let mut made = Vec::new();
    let result = mkdir_all_into(loc, mode, pivoted, &mut made);
    if result.is_err() {
        let _ = remove_made(&made, pivoted);
        made.clear();
    }
    result.map(|()| made)
}

fn mkdir_all_into(
    loc: &Location,
    mode: u32,
    pivoted: Option<&HostPath>,
    made: &mut Vec<MadeEntry>,
) -> SysResult<()> {
    let mode = Mode::from_bits_truncate(mode);
    for p in prefixes(loc) {
        match open_loc(&p, pivoted, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(_) => continue,
            Err((_, Errno::ENOENT)) => {}
            Err(e) => return Err(e),
        }
        let (parent, name) = open_parent(&p, pivoted)?;
        match mkdirat(&parent, name.as_str(), mode) {
            Ok(()) => {}
            // Made by someone else meanwhile: fine if it is a directory now.
            Err(Errno::EEXIST) => {
                open_loc(&p, pivoted, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
                continue;
            }
            Err(e) => return Err(("mkdirat", e)),
        }
        // The exact mode, whatever the umask.
        let opened = openat(
            &parent,
            name.as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .call("open made directory")
        .and_then(|dir| fstat(&dir).call("fstat made directory").map(|st| (dir, st)));
        let (dir, st) = match opened {
            Ok(v) => v,
            Err(e) => {
                // Made but not recorded yet: remove it here, or nobody would.
                let _ = unlinkat(&parent, name.as_str(), UnlinkatFlags::RemoveDir);
                return Err(e);
            }
        };
        made.push(MadeEntry {
            loc: p,
            dir: true,
            id: FileId::of(&st),
        });
        nix::sys::stat::fchmod(&dir, mode).call("fchmod")?;
    }
    Ok(())
}

/// Makes a mount point: nothing if it exists; else an empty file when `source` is not a
/// directory, a directory otherwise; parents as `mkdir -p -m 755`.
pub(crate) fn mk_mount_point(
    loc: &Location,
    source: Option<&HostPath>,
    pivoted: Option<&HostPath>,
) -> SysResult<Vec<MadeEntry>> {
    match open_loc(loc, pivoted, OFlag::O_PATH) {
        Ok(_) => return Ok(Vec::new()),
        Err((_, Errno::ENOENT)) => {}
        Err(e) => return Err(e),
    }
    let file = match source {
        Some(s) => !nix::sys::stat::stat(s.as_str())
            .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
            .call("stat mount source")?,
        None => false,
    };
    if !file {
        return mkdir_all(loc, 0o755, pivoted);
    }
    let parent_loc = parent_location(loc);
    let mut made = match parent_loc {
        Some(p) => mkdir_all(&p, 0o755, pivoted)?,
        None => Vec::new(),
    };
    let created = open_parent(loc, pivoted).and_then(|(parent, name)| {
        let file = openat(
            &parent,
            name.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .call("create mount point file")?;
        fstat(&file).call("fstat").inspect_err(|_| {
            let _ = unlinkat(&parent, name.as_str(), UnlinkatFlags::NoRemoveDir);
        })
    });
    match created {
        Ok(st) => {
            made.push(MadeEntry {
                loc: loc.clone(),
                dir: false,
                id: FileId::of(&st),
            });
            Ok(made)
        }
        Err(e) => {
            let _ = remove_made(&made, pivoted);
            Err(e)
        }
    }
}

fn parent_location(loc: &Location) -> Option<Location> {
    match loc {
        Location::Host(h) => Path::new(h.as_str())
            .parent()
            .map(|p| Location::Host(HostPath::new(p.to_string_lossy()))),
        Location::InRoot { root, path } => Some(Location::InRoot {
            root: root.clone(),
            path: path.parent(),
        }),
        Location::Container(path) => Some(Location::Container(path.parent())),
    }
}

/// Removes made entries, innermost first. An entry that is gone, or whose path now names
/// another file than the one made (it was made inside a filesystem this process does not
/// see there), is skipped.
pub(crate) fn remove_made(made: &[MadeEntry], pivoted: Option<&HostPath>) -> SysResult<()> {
    let mut first_err = Ok(());
    for e in made.iter().rev() {
        match remove_if_same(&e.loc, e.id, e.dir, pivoted) {
            Ok(_) => {}
            Err(err) => {
                if first_err.is_ok() {
                    first_err = Err(err);
                }
            }
        }
    }
    first_err
}

/// Removes the file at `loc` (a directory when `dir`) if it is still the file `id`; `false`
/// when there was nothing (or something else) to remove.
pub(crate) fn remove_if_same(
    loc: &Location,
    id: FileId,
    dir: bool,
    pivoted: Option<&HostPath>,
) -> SysResult<bool> {
    let (parent, name) = match open_parent(loc, pivoted) {
        Ok(v) => v,
        // A parent gone, or no longer a directory: the file is not there.
        Err((_, Errno::ENOENT | Errno::ENOTDIR)) => return Ok(false),
        Err(e) => return Err(e),
    };
    match fstatat(&parent, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if FileId::of(&st) == id => {}
        Ok(_) | Err(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(("fstatat", e)),
    }
    let (flag, call) = if dir {
        (UnlinkatFlags::RemoveDir, "rmdir")
    } else {
        (UnlinkatFlags::NoRemoveDir, "unlink")
    };
    match unlinkat(&parent, name.as_str(), flag) {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err((call, e)),
    }
}

/// Removes a file, symlink or node; a missing one is fine.
pub(crate) fn unlink(loc: &Location, pivoted: Option<&HostPath>) -> SysResult<()> {
    let r = open_parent(loc, pivoted).and_then(|(parent, name)| {
        unlinkat(&parent, name.as_str(), UnlinkatFlags::NoRemoveDir).call("unlinkat")
    });
    match r {
        Err((_, Errno::ENOENT)) => Ok(()),
        other => other,
    }
}

/// `ln -s target link`; returns the link's identity.
pub(crate) fn symlink(
    target: &str,
    link: &Location,
    pivoted: Option<&HostPath>,
) -> SysResult<FileId> {
    let (parent, name) = open_parent(link, pivoted)?;
    symlinkat(target, &parent, name.as_str()).call("symlinkat")?;
    match fstatat(&parent, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(FileId::of(&st)),
        Err(e) => {
            let _ = unlinkat(&parent, name.as_str(), UnlinkatFlags::NoRemoveDir);
            Err(("fstatat", e))
        }
    }
}

/// mknod(2), then chown, without following a symlink at the node's place; returns the
/// node's identity.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mknod(
    loc: &Location,
    kind: DeviceKind,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    pivoted: Option<&HostPath>,
) -> SysResult<FileId> {
    let (parent, name) = open_parent(loc, pivoted)?;
    let kind_flag = match kind {
        DeviceKind::Char => SFlag::S_IFCHR,
        DeviceKind::Block => SFlag::S_IFBLK,
        DeviceKind::Fifo => SFlag::S_IFIFO,
    };
    let perm = Mode::from_bits_truncate(mode);
    mknodat(
        &parent,
        name.as_str(),
        kind_flag,
        perm,
        makedev(major, minor),
    )
    .call("mknodat")?;
    let chowned = fchownat(
        &parent,
        name.as_str(),
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .call("fchownat")
    .and_then(|()| {
        // mknod applied the umask; the plan's mode is exact.
        fchmodat(&parent, name.as_str(), perm, FchmodatFlags::FollowSymlink).call("fchmodat")
    })
    .and_then(|()| {
        fstatat(&parent, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .call("fstatat")
            .map(|st| FileId::of(&st))
    });
    if chowned.is_err() {
        let _ = unlinkat(&parent, name.as_str(), UnlinkatFlags::NoRemoveDir);
    }
    chowned
}

/// chown(2) without following a final symlink.
pub(crate) fn chown(
    loc: &Location,
    uid: u32,
    gid: u32,
    pivoted: Option<&HostPath>,
) -> SysResult<()> {
    let (parent, name) = open_parent(loc, pivoted)?;
    fchownat(
        &parent,
        name.as_str(),
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .call("fchownat")
}

/// A mount target: the fd that holds it (kept open while its path is used) and its path.
/// A target on a host path or on a root itself may change what a root path names once
/// mounted on: dropping it (after the mount) forgets the cached root.
struct Target {
    _fd: Option<OwnedFd>,
    path: String,
    forgets_root: bool,
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.forgets_root {
            forget_root();
        }
    }
}

fn target(loc: &Location, pivoted: Option<&HostPath>) -> SysResult<Target> {
    match base(loc, pivoted) {
        Base::Host(p) => Ok(Target {
            _fd: None,
            path: p.to_owned(),
            forgets_root: true,
        }),
        Base::InRoot { path, .. } => {
            let fd = open_loc(loc, pivoted, OFlag::O_PATH)?;
            let path_of_fd = fd_path(&fd);
            Ok(Target {
                _fd: Some(fd),
                path: path_of_fd,
                forgets_root: path.components().next().is_none(),
            })
        }
    }
}

/// mount(2).
pub(crate) fn mount(m: &MountOp, pivoted: Option<&HostPath>) -> SysResult<()> {
    let t = target(&m.target, pivoted)?;
    let flags = ms_flags(&m.flags);
    let data = (!m.data.is_empty()).then_some(m.data.as_str());
    match &m.source {
        MountSource::Bind(host) => sys_mount(
            Some(host.as_str()),
            t.path.as_str(),
            None::<&str>,
            flags | MsFlags::MS_BIND,
            data,
        )
        .call("mount"),
        MountSource::BindLocation(loc) => {
            let src = target(loc, pivoted)?;
            sys_mount(
                Some(src.path.as_str()),
                t.path.as_str(),
                None::<&str>,
                flags | MsFlags::MS_BIND,
                data,
            )
            .call("mount")
        }
        MountSource::Fs { fstype, source } => {
            // tmpcopyup: the directory is read through an fd opened before the mount hides
            // it (as runc's copy from the mount point, done without a staging mount).
            let lower = (fstype == "tmpfs" && m.flags.contains(MountFlag::TmpCopyUp))
                .then(|| open_loc(&m.target, pivoted, DIR_READ))
                .transpose()?;
            sys_mount(
                Some(source.as_str()),
                t.path.as_str(),
                Some(fstype.as_str()),
                flags,
                data,
            )
            .call("mount")?;
            let Some(lower) = lower else {
                return Ok(());
            };
            let copied =
                open_loc(&m.target, pivoted, DIR_READ).and_then(|upper| copy_up(&lower, &upper));
            if copied.is_err() {
                // All or nothing: the failed step leaves no mount behind.
                let _ = umount2(t.path.as_str(), MntFlags::MNT_DETACH);
            }
            copied
        }
    }
}

/// How a directory is opened to be read.
const DIR_READ: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY);

/// runc's `tmpcopyup`: copies what `lower` (the directory a tmpfs was mounted on) holds
/// onto `upper` (the new tmpfs's root), which then takes `lower`'s mode.
fn copy_up(lower: &OwnedFd, upper: &OwnedFd) -> SysResult<()> {
    let st = fstat(lower).call("fstat")?;
    copy_dir_contents(lower, upper)?;
    fchmod(upper, Mode::from_bits_truncate(st.st_mode & 0o7777)).call("fchmod")
}

/// Copies every entry of directory `src` into directory `dst`.
fn copy_dir_contents(src: &OwnedFd, dst: &OwnedFd) -> SysResult<()> {
    let mut dir =
        Dir::openat(src, ".", DIR_READ | OFlag::O_CLOEXEC, Mode::empty()).call("opendir")?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let name = entry.call("readdir")?.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    for name in &names {
        copy_entry(src, dst, name)?;
    }
    Ok(())
}

/// Copies one entry (a directory with its content, a file, a symlink, a node) with its
/// mode and owner; the mode goes last, after the chown that clears set-id bits.
fn copy_entry(src: &OwnedFd, dst: &OwnedFd, name: &CStr) -> SysResult<()> {
    let st = fstatat(src, name, AtFlags::AT_SYMLINK_NOFOLLOW).call("fstatat")?;
    let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let (uid, gid) = (
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    );
    let nofollow = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            mkdirat(dst, name, Mode::from_bits_truncate(0o700)).call("mkdirat")?;
            let from = openat(src, name, DIR_READ | nofollow, Mode::empty()).call("openat")?;
            let to = openat(dst, name, DIR_READ | nofollow, Mode::empty()).call("openat")?;
            copy_dir_contents(&from, &to)?;
            fchown(&to, uid, gid).call("fchown")?;
            fchmod(&to, perm).call("fchmod")
        }
        libc::S_IFREG => {
            let from =
                openat(src, name, OFlag::O_RDONLY | nofollow, Mode::empty()).call("openat")?;
            let create = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | nofollow;
            let to = openat(dst, name, create, Mode::from_bits_truncate(0o600)).call("openat")?;
            let (mut from, mut to) = (std::fs::File::from(from), std::fs::File::from(to));
            std::io::copy(&mut from, &mut to).map_err(|e| ("copy", crate::ns::io_errno(&e)))?;
            fchown(&to, uid, gid).call("fchown")?;
            fchmod(&to, perm).call("fchmod")
        }
        libc::S_IFLNK => {
            let target = readlinkat(src, name).call("readlinkat")?;
            symlinkat(target.as_os_str(), dst, name).call("symlinkat")?;
            fchownat(dst, name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW).call("fchownat")
        }
        kind => {
            // Device nodes, fifos, sockets.
            mknodat(dst, name, SFlag::from_bits_truncate(kind), perm, st.st_rdev)
                .call("mknodat")?;
            fchownat(dst, name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW).call("fchownat")?;
            fchmodat(dst, name, perm, FchmodatFlags::NoFollowSymlink).call("fchmodat")
        }
    }
}

/// The flags a remount must keep: in a user namespace the kernel refuses to clear
/// `nosuid`, `nodev`, `noexec` (and the atime flags) that a mount already has, so a
/// read-only bind remount carries them over, as runc does.
fn locked_flags(fd: &OwnedFd) -> SysResult<MsFlags> {
    let st = fstatvfs(fd).call("fstatvfs")?;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (have, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(have) {
            out |= ms;
        }
    }
    Ok(out)
}

/// Remounts with new flags (`MS_REMOUNT`, `MS_BIND` for a bind remount).
pub(crate) fn remount(
    loc: &Location,
    flags: &MountFlags,
    pivoted: Option<&HostPath>,
) -> SysResult<()> {
    let fd = open_loc(loc, pivoted, OFlag::O_PATH)?;
    let mut ms = ms_flags(flags) | MsFlags::MS_REMOUNT;
    if flags.contains(MountFlag::Bind) {
        ms |= locked_flags(&fd)?;
    }
    sys_mount(
        None::<&str>,
        fd_path(&fd).as_str(),
        None::<&str>,
        ms,
        None::<&str>,
    )
    .call("mount (remount)")
}

/// `mount --make-[r]TYPE`.
pub(crate) fn set_propagation(
    loc: &Location,
    p: Propagation,
    recursive: bool,
    pivoted: Option<&HostPath>,
) -> SysResult<()> {
    let t = target(loc, pivoted)?;
    sys_mount(
        None::<&str>,
        t.path.as_str(),
        None::<&str>,
        propagation_flags(p, recursive),
        None::<&str>,
    )
    .call("mount (propagation)")
}

/// umount2(2); a target that is gone or no longer a mount point is fine (undo).
pub(crate) fn umount(loc: &Location, detach: bool, pivoted: Option<&HostPath>) -> SysResult<()> {
    let t = match target(loc, pivoted) {
        Ok(t) => t,
        Err((_, Errno::ENOENT)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let flags = if detach {
        MntFlags::MNT_DETACH
    } else {
        MntFlags::empty()
    };
    match umount2(t.path.as_str(), flags) {
        Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => Ok(()),
        Err(e) => Err(("umount2", e)),
    }
}

/// Masks a path as runc does: a read-only empty tmpfs over a directory, `/dev/null` bound
/// over anything else; nothing if the path does not exist.
pub(crate) fn mask(loc: &Location, pivoted: Option<&HostPath>) -> SysResult<()> {
    let fd = match open_loc(loc, pivoted, OFlag::O_PATH) {
        Ok(fd) => fd,
        Err((_, Errno::ENOENT)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let st = fstat(&fd).call("fstat")?;
    let path = fd_path(&fd);
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
        sys_mount(
            Some("tmpfs"),
            path.as_str(),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0"),
        )
        .call("mount tmpfs (mask)")
    } else {
        // /dev/null of the same root as the masked path.
        let null = match loc {
            Location::Host(_) => Location::Host(HostPath::new("/dev/null")),
            Location::InRoot { root, .. } => Location::InRoot {
                root: root.clone(),
                path: ContainerPath::parse("/dev/null")
                    .map_err(|_| ("/dev/null", Errno::EINVAL))?,
            },
            Location::Container(_) => Location::Container(
                ContainerPath::parse("/dev/null").map_err(|_| ("/dev/null", Errno::EINVAL))?,
            ),
        };
        let src = target(&null, pivoted)?;
        sys_mount(
            Some(src.path.as_str()),
            path.as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .call("mount /dev/null (mask)")
    }
}

/// Makes a path read-only: binds it onto itself and remounts that read-only; nothing if
/// the path does not exist.
pub(crate) fn readonly(loc: &Location, pivoted: Option<&HostPath>) -> SysResult<()> {
    let fd = match open_loc(loc, pivoted, OFlag::O_PATH) {
        Ok(fd) => fd,
        Err((_, Errno::ENOENT)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let path = fd_path(&fd);
    sys_mount(
        Some(path.as_str()),
        path.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .call("mount (readonly bind)")?;
    // The fd still holds the file under the new mount: reopen to reach the mount itself.
    let fd = open_loc(loc, pivoted, OFlag::O_PATH)?;
    let ms = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_REC
        | locked_flags(&fd)?;
    sys_mount(
        None::<&str>,
        fd_path(&fd).as_str(),
        None::<&str>,
        ms,
        None::<&str>,
    )
    .call("mount (readonly remount)")
}

fn open_dir(path: &str) -> SysResult<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .call("open")
}

/// `pivot_root` as runc does it: `cd new_root; pivot_root . .`, then the old root, now
/// stacked on the new one, is made a slave (so its unmount does not reach the host) and
/// detached; `cd /`.
pub(crate) fn pivot_root(new_root: &HostPath) -> SysResult<()> {
    let old = open_dir("/")?;
    let new = open_dir(new_root.as_str())?;
    nix::unistd::fchdir(&new).call("fchdir new root")?;
    nix::unistd::pivot_root(".", ".").call("pivot_root")?;
    nix::unistd::fchdir(&old).call("fchdir old root")?;
    sys_mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .call("mount --make-rslave old root")?;
    umount2(".", MntFlags::MNT_DETACH).call("umount old root")?;
    forget_root();
    nix::unistd::chdir("/").call("chdir /")
}

/// For `--no-pivot`: `cd new_root; mount --move . /; chroot .; cd /`.
pub(crate) fn chroot(new_root: &HostPath) -> SysResult<()> {
    nix::unistd::chdir(new_root.as_str()).call("chdir new root")?;
    sys_mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).call("mount --move")?;
    nix::unistd::chroot(".").call("chroot")?;
    forget_root();
    nix::unistd::chdir("/").call("chdir /")
}

/// chdir(2) to a directory resolved like any location (never outside the root).
pub(crate) fn chdir(loc: &Location, pivoted: Option<&HostPath>) -> SysResult<()> {
    let fd = open_loc(loc, pivoted, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    nix::unistd::fchdir(&fd).call("fchdir")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(s: &str) -> ContainerPath {
        ContainerPath::parse(s).unwrap()
    }

    #[test]
    fn every_mount_flag_translates_to_its_own_bit() {
        let all = [
            MountFlag::Bind,
            MountFlag::Rec,
            MountFlag::Ro,
            MountFlag::Nosuid,
            MountFlag::Nodev,
            MountFlag::Noexec,
            MountFlag::Sync,
            MountFlag::Dirsync,
            MountFlag::Mand,
            MountFlag::Noatime,
            MountFlag::Nodiratime,
            MountFlag::Relatime,
            MountFlag::Strictatime,
            MountFlag::Lazytime,
            MountFlag::Silent,
            MountFlag::Nosymfollow,
        ];
        let mut seen = MsFlags::empty();
        for f in all {
            let bits = ms_flags(&MountFlags::of(&[f]));
            assert_eq!(bits.bits().count_ones(), 1, "{f:?}");
            assert!(!seen.intersects(bits), "{f:?} shares a bit");
            seen |= bits;
        }
        assert_eq!(
            ms_flags(&MountFlags::of(&[MountFlag::Bind, MountFlag::Ro])),
            MsFlags::MS_BIND | MsFlags::MS_RDONLY
        );
        // runc's extension is berth's to carry out, not the kernel's.
        assert_eq!(
            ms_flags(&MountFlags::of(&[MountFlag::TmpCopyUp])),
            MsFlags::empty()
        );
    }

    #[test]
    fn propagation_is_recursive_only_when_asked() {
        assert_eq!(
            propagation_flags(Propagation::Private, true),
            MsFlags::MS_PRIVATE | MsFlags::MS_REC
        );
        assert_eq!(
            propagation_flags(Propagation::Slave, false),
            MsFlags::MS_SLAVE
        );
    }

    #[test]
    fn a_symlink_to_slash_resolves_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::os::unix::fs::symlink("/", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        let root_h = HostPath::new(root.to_string_lossy());
        let loc = |p: &str| Location::InRoot {
            root: root_h.clone(),
            path: cp(p),
        };
        // etc -> / is the rootfs itself: mkdir -p /etc/x makes rootfs/x, not /x on the host.
        let made = mkdir_all(&loc("/etc/berth-test-x"), 0o700, None).unwrap();
        assert_eq!(made.len(), 1);
        assert!(root.join("berth-test-x").is_dir());
        assert!(!Path::new("/berth-test-x").exists());
        let mode = std::fs::metadata(root.join("berth-test-x")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o700
        );
        // ../../.. stays at the root too.
        let made2 = mkdir_all(&loc("/up/real/a/b"), 0o755, None).unwrap();
        assert_eq!(made2.len(), 2);
        assert!(root.join("real/a/b").is_dir());
        remove_made(&made2, None).unwrap();
        remove_made(&made, None).unwrap();
        assert!(!root.join("real/a").exists());
        assert!(!root.join("berth-test-x").exists());
        assert!(root.join("real").is_dir());
    }

    #[test]
    fn a_file_mount_point_is_a_file_and_an_existing_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(&root).unwrap();
        let src = dir.path().join("src.txt");
        std::fs::write(&src, "x").unwrap();
        let root_h = HostPath::new(root.to_string_lossy());
        let loc = Location::InRoot {
            root: root_h,
            path: cp("/etc/conf/file.txt"),
        };
        let src_h = HostPath::new(src.to_string_lossy());
        let made = mk_mount_point(&loc, Some(&src_h), None).unwrap();
        assert_eq!(made.len(), 3);
        assert!(root.join("etc/conf/file.txt").is_file());
        assert!(mk_mount_point(&loc, Some(&src_h), None).unwrap().is_empty());
        remove_made(&made, None).unwrap();
        assert!(!root.join("etc").exists());
    }

    #[test]
    fn copy_up_copies_a_tree_with_its_modes() {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
        std::fs::create_dir_all(lower.join("sub/deeper")).unwrap();
        std::fs::create_dir(&upper).unwrap();
        std::fs::write(lower.join("file"), "content").unwrap();
        std::fs::write(lower.join("sub/deeper/x"), "x").unwrap();
        std::os::unix::fs::symlink("../file", lower.join("sub/link")).unwrap();
        let mode = |p: &Path, m| std::fs::set_permissions(p, PermissionsExt::from_mode(m));
        mode(&lower.join("file"), 0o640).unwrap();
        mode(&lower.join("sub"), 0o711).unwrap();
        mode(&lower, 0o1777).unwrap();
        nix::unistd::mkfifo(&lower.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let open = |p: &Path| nix::fcntl::open(p, DIR_READ, Mode::empty()).unwrap();
        copy_up(&open(&lower), &open(&upper)).unwrap();
        let mode_of =
            |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(
            std::fs::read_to_string(upper.join("file")).unwrap(),
            "content"
        );
        assert_eq!(
            std::fs::read_to_string(upper.join("sub/deeper/x")).unwrap(),
            "x"
        );
        assert_eq!(
            std::fs::read_link(upper.join("sub/link")).unwrap(),
            Path::new("../file")
        );
        assert!(
            std::fs::symlink_metadata(upper.join("fifo"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        assert_eq!(mode_of(&upper.join("file")), 0o640);
        assert_eq!(mode_of(&upper.join("sub")), 0o711);
        assert_eq!(mode_of(&upper.join("fifo")), 0o600);
        assert_eq!(
            mode_of(&upper),
            0o1777,
            "the root takes the directory's mode"
        );
    }

    #[test]
    fn a_failing_mkdir_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("file"), "").unwrap();
        let r = HostPath::new(root.to_string_lossy());
        let loc = |p: &str| Location::InRoot {
            root: r.clone(),
            path: cp(p),
        };
        // m1 and m1/m2 are made, then the name is too long: both are removed again.
        let long = format!("/m1/m2/{}", "x".repeat(300));
        assert!(mkdir_all(&loc(&long), 0o755, None).is_err());
        assert!(!root.join("m1").exists());
        // A file in the way is an error too.
        assert_eq!(
            mkdir_all(&loc("/file/c"), 0o755, None).unwrap_err().1,
            Errno::ENOTDIR
        );
    }

    #[test]
    fn removal_spares_another_file_at_a_made_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(&root).unwrap();
        let r = HostPath::new(root.to_string_lossy());
        let loc = |p: &str| Location::InRoot {
            root: r.clone(),
            path: cp(p),
        };
        let made = mkdir_all(&loc("/a/b"), 0o755, None).unwrap();
        assert_eq!(made.len(), 2);
        assert_eq!(made[1].id, file_id(&loc("/a/b"), None).unwrap());
        // Someone else's directory now stands at /a/b: it stays, and so does /a, its parent.
        // (Made before ours goes, so it cannot reuse our inode number.)
        std::fs::write(root.join("a/c"), "not ours").unwrap();
        std::fs::remove_dir(root.join("a/b")).unwrap();
        std::fs::rename(root.join("a/c"), root.join("a/b")).unwrap();
        remove_made(&made, None).unwrap_err();
        assert_eq!(
            std::fs::read_to_string(root.join("a/b")).unwrap(),
            "not ours"
        );
        std::fs::remove_file(root.join("a/b")).unwrap();
        // Gone: skipped; the parent, still ours, goes.
        remove_made(&made, None).unwrap();
        assert!(!root.join("a").exists());
        // A node: removed only while it is the one made.
        let id = symlink("x", &loc("/l"), None).unwrap();
        std::os::unix::fs::symlink("y", root.join("l2")).unwrap();
        std::fs::rename(root.join("l2"), root.join("l")).unwrap();
        assert!(!remove_if_same(&loc("/l"), id, false, None).unwrap());
        assert!(root.join("l").symlink_metadata().is_ok());
        let id = file_id(&loc("/l"), None).unwrap();
        assert!(remove_if_same(&loc("/l"), id, false, None).unwrap());
        assert!(!remove_if_same(&loc("/l"), id, false, None).unwrap());
    }

    #[test]
    fn the_host_view_of_a_location_names_the_switched_root() {
        let root = HostPath::new("/b/rootfs");
        let in_root = Location::InRoot {
            root: root.clone(),
            path: cp("/dev/pts"),
        };
        assert_eq!(host_view(&in_root, Some(&root)), in_root);
        assert_eq!(
            host_view(&Location::Container(cp("/dev/pts")), Some(&root)),
            in_root
        );
        assert_eq!(
            host_view(&Location::Container(cp("/run/x")), None),
            Location::Host(HostPath::new("/run/x"))
        );
    }

    #[test]
    fn unlink_and_symlink_stay_in_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("dev")).unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "keep").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("dev/evil")).unwrap();
        let r = HostPath::new(root.to_string_lossy());
        let loc = |p: &str| Location::InRoot {
            root: r.clone(),
            path: cp(p),
        };
        symlink("/proc/self/fd", &loc("/dev/fd"), None).unwrap();
        assert_eq!(
            std::fs::read_link(root.join("dev/fd")).unwrap(),
            Path::new("/proc/self/fd")
        );
        // Unlinking the symlink removes the link, never what it points to.
        unlink(&loc("/dev/evil"), None).unwrap();
        assert!(outside.exists());
        unlink(&loc("/dev/missing"), None).unwrap();
    }
}
