//! `berth cp`: copying files and directories out of a container and into it, as docker's
//! `cp` does, on running and stopped containers alike.
//!
//! A copy is a walk of the source tree that hands each entry (directory, file, symbolic
//! link, device node, fifo) to a sink: a directory that the entries are made in, or a tar
//! stream (`-` as the destination); a tar stream read from stdin (`-` as the source) feeds
//! the same directory sink. Names follow docker's rules ([`place`]): a directory is copied
//! into an existing directory, or becomes a destination that does not exist yet; `DIR/.`
//! copies its contents; a file replaces a file; a destination's final symbolic link is
//! followed, a source's is copied as a link (unless `-L`).
//!
//! Invariants. Every path inside the container is resolved with
//! `openat2(RESOLVE_IN_ROOT)` from an fd of the container's root, so neither `..` nor a
//! symbolic link (`/etc -> /`, `x -> /etc/../../../../host`) ever leads out of the root
//! file system. Below the resolved source, the walk opens each entry by name relative to
//! its directory's fd with `O_NOFOLLOW`; the directory sink opens each parent with
//! `openat2` (`RESOLVE_IN_ROOT` in the container, `RESOLVE_BENEATH` on the host) and makes
//! each entry with an `*at` call that does not follow a final symbolic link. A stopped
//! container's overlay is mounted for the copy (the plan of
//! [`berth_core::planner::image_mount::plan_rootfs`]) and detached after it, on error too;
//! a mount that was there before (the running container's) is used and left alone.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::mount::{MntFlags, umount2};
use nix::sys::stat::{
    FchmodatFlags, FileStat, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, fstat, fstatat,
    futimens, makedev, mkdirat, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};

use super::{Engine, EngineError};
use crate::store::containers::ContainerRecord;

/// How many symbolic links a destination may go through before the copy gives up.
const MAX_LINKS: usize = 40;

/// Why a copy failed; each variant names the offending path (`CONTAINER:PATH` inside a
/// container).
#[derive(Debug, thiserror::Error)]
pub enum CpError {
    /// The engine refused (unknown container, bad settings, the overlay mount failed).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The source does not exist.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The path.
        path: String,
    },
    /// A path that must be a directory (it ends with `/`, or has entries below it) is not.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// A directory cannot replace an existing file.
    #[error("cannot copy directory {src} to {dest}: it exists and is not a directory")]
    CannotCopyDir {
        /// The source.
        src: String,
        /// The destination.
        dest: String,
    },
    /// The destination ends with `/` but does not exist, and the source is a file.
    #[error("destination directory {path} does not exist")]
    NoSuchDirectory {
        /// The destination.
        path: String,
    },
    /// A tar stream is extracted only into an existing directory.
    #[error("destination {path} must be a directory")]
    MustBeDirectory {
        /// The destination.
        path: String,
    },
    /// An existing directory would be replaced by a file, link or node.
    #[error("cannot overwrite directory {path} with a non-directory")]
    OverwriteDir {
        /// The directory.
        path: String,
    },
    /// An existing file, link or node would be replaced by a directory.
    #[error("cannot overwrite non-directory {path} with a directory")]
    OverwriteNonDir {
        /// The path.
        path: String,
    },
    /// The container's root file system is read-only (`--read-only`).
    #[error("container {name}: its root file system is read-only")]
    ReadOnly {
        /// The container's name.
        name: String,
    },
    /// Too many symbolic links on the way to the destination.
    #[error("{path}: too many levels of symbolic links")]
    Loop {
        /// The path.
        path: String,
    },
    /// An entry of a tar stream that berth does not extract.
    #[error("archive entry {name:?}: {why}")]
    BadEntry {
        /// The entry's name.
        name: String,
        /// Why.
        why: &'static str,
    },
    /// A system call failed.
    #[error("{call} {path}")]
    Sys {
        /// The call.
        call: &'static str,
        /// The path it was made for.
        path: String,
        /// Why.
        #[source]
        errno: Errno,
    },
    /// Reading or writing data failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path (or stream).
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn sys(call: &'static str, path: impl Into<String>) -> impl FnOnce(Errno) -> CpError {
    let path = path.into();
    move |errno| CpError::Sys { call, path, errno }
}

fn io_err(op: &'static str, path: impl Into<String>) -> impl FnOnce(io::Error) -> CpError {
    let path = path.into();
    move |source| CpError::Io { op, path, source }
}

/// What a copy keeps beside contents and modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// `-L`: a source that is a symbolic link is copied as its target.
    pub follow_link: bool,
    /// `-a`: files keep their source's owner (by default what is copied into a container
    /// is owned by root, and what is copied out by the user running berth).
    pub archive: bool,
}

/// The host's end of a copy out of a container.
pub enum HostDest<'a> {
    /// A file or directory on the host.
    Path(&'a Path),
    /// `-`: a tar stream of the source.
    Tar(&'a mut dyn Write),
}

impl std::fmt::Debug for HostDest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostDest::Path(p) => f.debug_tuple("Path").field(p).finish(),
            HostDest::Tar(_) => f.write_str("Tar"),
        }
    }
}

/// The host's end of a copy into a container.
pub enum HostSource<'a> {
    /// A file or directory on the host.
    Path(&'a Path),
    /// `-`: a tar stream to extract into the destination directory.
    Tar(&'a mut dyn Read),
}

impl std::fmt::Debug for HostSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostSource::Path(p) => f.debug_tuple("Path").field(p).finish(),
            HostSource::Tar(_) => f.write_str("Tar"),
        }
    }
}

/// How a path given by the user ends, which changes what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trailing {
    /// A plain path.
    None,
    /// `PATH/`: must be a directory (a final symbolic link is followed).
    Slash,
    /// `PATH/.` (or `.`): the directory's contents rather than the directory.
    SlashDot,
}

impl Trailing {
    /// How `path` ends.
    pub fn of(path: &str) -> Trailing {
        if path == "." || path.ends_with("/.") {
            Trailing::SlashDot
        } else if path.ends_with('/') && path != "/" {
            Trailing::Slash
        } else {
            Trailing::None
        }
    }
}

/// `path` cleaned lexically as Go's `filepath.Clean` does (docker cleans container paths
/// so): no `.`, no empty component, `..` taken back against the previous component (and
/// dropped at the root of an absolute path).
pub fn clean(path: &Path) -> PathBuf {
    let mut out: Vec<&OsStr> = Vec::new();
    let absolute = path.has_root();
    let mut ups = 0usize;
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                if out.pop().is_none() && !absolute {
                    ups += 1;
                }
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    let mut p = PathBuf::from(if absolute { "/" } else { "" });
    for _ in 0..ups {
        p.push("..");
    }
    for n in out {
        p.push(n);
    }
    if p.as_os_str().is_empty() {
        p.push(".");
    }
    p
}

/// A path inside a container as the user wrote it (`PATH` of `CONTAINER:PATH`): absolute
/// and cleaned (the leading `/` is optional, as docker's), and how it ended.
pub fn container_path(path: &str) -> (PathBuf, Trailing) {
    (clean(&Path::new("/").join(path)), Trailing::of(path))
}

/// The name a copied source takes: its last component, or `.` for its contents (`DIR/.`,
/// the root).
pub fn source_name(clean: &Path, trailing: Trailing) -> OsString {
    match (trailing, clean.file_name()) {
        (Trailing::SlashDot, _) | (_, None) => OsString::from("."),
        (_, Some(n)) => n.to_owned(),
    }
}

/// What the destination is, once its symbolic links are followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// An existing directory.
    Dir,
    /// An existing file (or node).
    NonDir,
    /// Nothing, in an existing directory.
    Absent,
}

/// Where the copy goes: the top entry `top` (and what is below it) is made in directory
/// `dir`; `top` is `.` when the source's contents are merged into `dir` itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The directory the top entry is made in.
    pub dir: PathBuf,
    /// The top entry's name in it.
    pub top: OsString,
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        Some(_) => PathBuf::from("."),
        None => path.to_owned(),
    }
}

/// docker's `PrepareArchiveCopy`: where a source (a directory or not, named `name`) goes
/// for a destination `dest` (resolved) that was `found`; `asserts_dir` when the user's
/// destination ended with `/` or `/.`. `shown` names the source and destination in errors.
pub fn place(
    src_is_dir: bool,
    name: &OsStr,
    dest: &Path,
    asserts_dir: bool,
    found: Found,
    shown: (&str, &str),
) -> Result<Placement, CpError> {
    let renamed = || Placement {
        dir: parent_of(dest),
        top: dest
            .file_name()
            .map_or_else(|| OsString::from("."), OsStr::to_owned),
    };
    match found {
        Found::Dir => Ok(Placement {
            dir: dest.to_owned(),
            top: name.to_owned(),
        }),
        Found::NonDir if src_is_dir => Err(CpError::CannotCopyDir {
            src: shown.0.to_owned(),
            dest: shown.1.to_owned(),
        }),
        Found::NonDir => Ok(renamed()),
        Found::Absent if src_is_dir => Ok(renamed()),
        Found::Absent if asserts_dir => Err(CpError::NoSuchDirectory {
            path: shown.1.to_owned(),
        }),
        Found::Absent => Ok(renamed()),
    }
}

/// A tar entry's name as a relative path below the extraction directory (`.` for the
/// directory itself): a leading `/` and `.` components dropped; `..` refused.
pub fn archive_path(name: &Path) -> Result<PathBuf, CpError> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(CpError::BadEntry {
                    name: name.display().to_string(),
                    why: "a path in the archive may not contain `..`",
                });
            }
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    Ok(out)
}

/// A child's relative name below `rel` (`.` stands for the top itself).
fn child(rel: &Path, name: &OsStr) -> PathBuf {
    if rel == Path::new(".") {
        PathBuf::from(name)
    } else {
        rel.join(name)
    }
}

/// What a copied entry carries beside its contents.
#[derive(Clone, Copy, Debug)]
struct Meta {
    /// `S_IFMT` bits.
    kind: u32,
    /// Permission bits with set-id and sticky.
    perm: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    size: u64,
    rdev: u64,
}

impl Meta {
    fn of(st: &FileStat) -> Meta {
        Meta {
            kind: st.st_mode & libc::S_IFMT,
            perm: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            size: u64::try_from(st.st_size).unwrap_or(0),
            rdev: st.st_rdev,
        }
    }

    fn time(&self) -> TimeSpec {
        TimeSpec::new(self.mtime.0, self.mtime.1)
    }
}

/// An entry's contents.
enum Body<'a> {
    Dir,
    File(&'a mut dyn Read),
    Symlink(OsString),
    /// A hard link to an entry made before (relative to the extraction directory).
    HardLink(PathBuf),
    /// A device node or fifo.
    Node,
}

/// Where entries go.
trait Sink {
    /// Makes one entry at `rel` (relative to the placement's directory).
    fn put(&mut self, rel: &Path, meta: &Meta, body: Body<'_>) -> Result<(), CpError>;
    /// Completes the copy (directory times, the tar's end).
    fn finish(&mut self) -> Result<(), CpError>;
}

/// Who owns what a directory sink makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// The source's owner (`-a`).
    Source,
    /// root (docker's default inside a container).
    Root,
    /// Whoever runs berth (docker's default on the host): no chown.
    Invoker,
}

/// Makes entries in a directory: `prefix` (relative to `root`, resolved with `resolve`).
struct DirSink<'a> {
    root: &'a OwnedFd,
    prefix: PathBuf,
    resolve: ResolveFlag,
    owner: Owner,
    /// Messages name entries as `label` + `shown` joined with the entry.
    label: String,
    shown: PathBuf,
    /// Directories made or merged, for their times once their contents are in.
    dirs: Vec<(PathBuf, TimeSpec)>,
}

fn rel_str(p: &Path) -> &Path {
    let s = p.strip_prefix("/").unwrap_or(p);
    if s.as_os_str().is_empty() {
        Path::new(".")
    } else {
        s
    }
}

impl DirSink<'_> {
    fn shown(&self, rel: &Path) -> String {
        let p = if rel == Path::new(".") {
            self.shown.clone()
        } else {
            self.shown.join(rel)
        };
        format!("{}{}", self.label, p.display())
    }

    fn open(&self, rel: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
        let full = if rel == Path::new(".") {
            self.prefix.clone()
        } else {
            self.prefix.join(rel)
        };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(self.resolve | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(self.root, rel_str(&full), how)
    }

    fn ids(&self, meta: &Meta) -> Option<(Uid, Gid)> {
        match self.owner {
            Owner::Source => Some((Uid::from_raw(meta.uid), Gid::from_raw(meta.gid))),
            Owner::Root => Some((Uid::from_raw(0), Gid::from_raw(0))),
            Owner::Invoker => None,
        }
    }
}

impl Sink for DirSink<'_> {
    fn put(&mut self, rel: &Path, meta: &Meta, body: Body<'_>) -> Result<(), CpError> {
        let shown = self.shown(rel);
        let Some(name) = rel.file_name().filter(|_| rel != Path::new(".")) else {
            // The destination directory itself (`SRC/.` into it): it stays as it is.
            return match body {
                Body::Dir => Ok(()),
                _ => Err(CpError::OverwriteDir { path: shown }),
            };
        };
        let parent_rel = rel.parent().map_or(Path::new("."), |p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        });
        let parent = self
            .open(parent_rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(|e| match e {
                Errno::ENOTDIR => CpError::NotADirectory {
                    path: self.shown(parent_rel),
                },
                e => sys("open", self.shown(parent_rel))(e),
            })?;
        let is_dir = matches!(body, Body::Dir);
        match fstatat(&parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                if !is_dir {
                    return Err(CpError::OverwriteDir { path: shown });
                }
            }
            Ok(_) if is_dir => return Err(CpError::OverwriteNonDir { path: shown }),
            Ok(_) => unlinkat(&parent, name, UnlinkatFlags::NoRemoveDir)
                .map_err(sys("unlink", shown.clone()))?,
            Err(Errno::ENOENT) => {
                if is_dir {
                    mkdirat(&parent, name, Mode::from_bits_truncate(0o700))
                        .map_err(sys("mkdir", shown.clone()))?;
                }
            }
            Err(e) => return Err(sys("stat", shown)(e)),
        }
        let ids = self.ids(meta);
        let perm = Mode::from_bits_truncate(meta.perm);
        let nofollow = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match body {
            Body::Dir => {
                let fd = openat(
                    &parent,
                    name,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | nofollow,
                    Mode::empty(),
                )
                .map_err(sys("open", shown.clone()))?;
                if let Some((u, g)) = ids {
                    fchown(&fd, Some(u), Some(g)).map_err(sys("chown", shown.clone()))?;
                }
                fchmod(&fd, perm).map_err(sys("chmod", shown))?;
                self.dirs.push((rel.to_owned(), meta.time()));
            }
            Body::File(data) => {
                let fd = openat(
                    &parent,
                    name,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | nofollow,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(sys("create", shown.clone()))?;
                let mut file = File::from(fd);
                io::copy(data, &mut file).map_err(io_err("write", shown.clone()))?;
                if let Some((u, g)) = ids {
                    fchown(&file, Some(u), Some(g)).map_err(sys("chown", shown.clone()))?;
                }
                // After the chown, which clears set-id bits.
                fchmod(&file, perm).map_err(sys("chmod", shown.clone()))?;
                futimens(&file, &meta.time(), &meta.time()).map_err(sys("utimens", shown))?;
            }
            Body::Symlink(target) => {
                symlinkat(target.as_os_str(), &parent, name)
                    .map_err(sys("symlink", shown.clone()))?;
                if let Some((u, g)) = ids {
                    fchownat(
                        &parent,
                        name,
                        Some(u),
                        Some(g),
                        AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .map_err(sys("chown", shown.clone()))?;
                }
                let t = meta.time();
                utimensat(&parent, name, &t, &t, UtimensatFlags::NoFollowSymlink)
                    .map_err(sys("utimens", shown))?;
            }
            Body::HardLink(target) => {
                let target_shown = self.shown(&target);
                let from = self
                    .open(&target, OFlag::O_PATH | OFlag::O_NOFOLLOW)
                    .map_err(sys("open", target_shown))?;
                linkat(&from, "", &parent, name, AtFlags::AT_EMPTY_PATH)
                    .map_err(sys("link", shown))?;
            }
            Body::Node => {
                mknodat(
                    &parent,
                    name,
                    SFlag::from_bits_truncate(meta.kind),
                    perm,
                    meta.rdev,
                )
                .map_err(sys("mknod", shown.clone()))?;
                if let Some((u, g)) = ids {
                    fchownat(
                        &parent,
                        name,
                        Some(u),
                        Some(g),
                        AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .map_err(sys("chown", shown.clone()))?;
                }
                // The node was just made here and is no symbolic link: following is moot.
                fchmodat(&parent, name, perm, FchmodatFlags::FollowSymlink)
                    .map_err(sys("chmod", shown.clone()))?;
                let t = meta.time();
                utimensat(&parent, name, &t, &t, UtimensatFlags::NoFollowSymlink)
                    .map_err(sys("utimens", shown))?;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), CpError> {
        // Deepest first: making a child changed its parent's time.
        for (rel, t) in std::mem::take(&mut self.dirs).into_iter().rev() {
            let fd = self
                .open(
                    &rel,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                )
                .map_err(sys("open", self.shown(&rel)))?;
            futimens(&fd, &t, &t).map_err(sys("utimens", self.shown(&rel)))?;
        }
        Ok(())
    }
}

/// Reads exactly `size` bytes: `inner`'s, then zeros if it ended early (a file that
/// shrank while it was copied must not corrupt the tar stream).
struct Exact<R> {
    inner: io::Take<R>,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Writes entries as a tar stream, named as they come (relative paths).
struct TarSink<'a> {
    tar: tar::Builder<&'a mut dyn Write>,
}

impl Sink for TarSink<'_> {
    fn put(&mut self, rel: &Path, meta: &Meta, body: Body<'_>) -> Result<(), CpError> {
        let mut h = tar::Header::new_gnu();
        h.set_mode(meta.perm);
        h.set_uid(u64::from(meta.uid));
        h.set_gid(u64::from(meta.gid));
        h.set_mtime(u64::try_from(meta.mtime.0).unwrap_or(0));
        h.set_size(0);
        let failed = io_err("write the tar stream at", rel.display().to_string());
        let name = if rel == Path::new(".") {
            PathBuf::from("./")
        } else {
            rel.to_owned()
        };
        match body {
            Body::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                self.tar.append_data(&mut h, &name, io::empty())
            }
            Body::File(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(meta.size);
                let exact = Exact {
                    inner: data.take(meta.size),
                    left: meta.size,
                };
                self.tar.append_data(&mut h, &name, exact)
            }
            Body::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                self.tar.append_link(&mut h, &name, target)
            }
            Body::HardLink(target) => {
                h.set_entry_type(tar::EntryType::Link);
                self.tar.append_link(&mut h, &name, target)
            }
            Body::Node => {
                h.set_entry_type(match meta.kind {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                let major = u32::try_from(nix::sys::stat::major(meta.rdev)).unwrap_or(0);
                let minor = u32::try_from(nix::sys::stat::minor(meta.rdev)).unwrap_or(0);
                h.set_device_major(major)
                    .and_then(|()| h.set_device_minor(minor))
                    .and_then(|()| self.tar.append_data(&mut h, &name, io::empty()))
            }
        }
        .map_err(failed)
    }

    fn finish(&mut self) -> Result<(), CpError> {
        self.tar
            .finish()
            .and_then(|()| self.tar.get_mut().flush())
            .map_err(io_err("finish", "the tar stream"))
    }
}

/// Reopens an `O_PATH` fd for reading (through its `/proc/self/fd` magic link, which
/// names exactly the file the fd holds).
fn reopen(fd: &OwnedFd, shown: &str) -> Result<File, CpError> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    nix::fcntl::open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
    .map_err(sys("open", shown))
}

/// Walks the tree at `node` (opened `O_PATH`; a symbolic link itself when it is one),
/// handing each entry to `sink` as `rel`. `shown` names `node` in errors.
fn walk(node: &OwnedFd, shown: &str, rel: &Path, sink: &mut dyn Sink) -> Result<(), CpError> {
    let st = fstat(node).map_err(sys("stat", shown))?;
    let meta = Meta::of(&st);
    match meta.kind {
        libc::S_IFDIR => {
            sink.put(rel, &meta, Body::Dir)?;
            let dirfd = openat(
                node,
                ".",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(sys("open", shown))?;
            let mut dir = nix::dir::Dir::from_fd(dirfd).map_err(sys("read", shown))?;
            let mut names = Vec::new();
            for entry in dir.iter() {
                let entry = entry.map_err(sys("read", shown))?;
                let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_owned();
                if name != "." && name != ".." {
                    names.push(name);
                }
            }
            drop(dir);
            names.sort();
            for name in names {
                let child_shown = format!("{}/{}", shown.trim_end_matches('/'), name.display());
                let fd = openat(
                    node,
                    name.as_os_str(),
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(sys("open", child_shown.clone()))?;
                walk(&fd, &child_shown, &child(rel, &name), sink)?;
            }
            Ok(())
        }
        libc::S_IFREG => {
            let mut file = reopen(node, shown)?;
            sink.put(rel, &meta, Body::File(&mut file))
        }
        libc::S_IFLNK => {
            let target = nix::fcntl::readlinkat(node, "").map_err(sys("readlink", shown))?;
            sink.put(rel, &meta, Body::Symlink(target))
        }
        libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => sink.put(rel, &meta, Body::Node),
        // Sockets: tar has no form for them (docker leaves them out too).
        _ => Ok(()),
    }
}

/// Extracts a tar stream into `sink`.
fn untar(input: &mut dyn Read, sink: &mut dyn Sink) -> Result<(), CpError> {
    let stream = "the tar stream";
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries().map_err(io_err("read", stream))? {
        let mut entry = entry.map_err(io_err("read", stream))?;
        let raw = entry.path().map_err(io_err("read", stream))?.into_owned();
        let rel = archive_path(&raw)?;
        let bad = |why| CpError::BadEntry {
            name: raw.display().to_string(),
            why,
        };
        let h = entry.header();
        let num = |v: io::Result<u64>| v.map_err(|_| bad("a header field is not a number"));
        let kind = h.entry_type();
        let dev = |v: io::Result<Option<u32>>| {
            v.map(|d| u64::from(d.unwrap_or(0)))
                .map_err(|_| bad("a header field is not a number"))
        };
        let meta = Meta {
            kind: match kind {
                tar::EntryType::Char => libc::S_IFCHR,
                tar::EntryType::Block => libc::S_IFBLK,
                tar::EntryType::Fifo => libc::S_IFIFO,
                _ => 0,
            },
            perm: u32::try_from(num(h.mode().map(u64::from))? & 0o7777).unwrap_or(0o644),
            uid: u32::try_from(num(h.uid())?).map_err(|_| bad("its uid is out of range"))?,
            gid: u32::try_from(num(h.gid())?).map_err(|_| bad("its gid is out of range"))?,
            mtime: (i64::try_from(num(h.mtime())?).unwrap_or(0), 0),
            size: num(h.size())?,
            // Only devices' headers carry numbers there (others may leave the fields blank).
            rdev: if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
                makedev(dev(h.device_major())?, dev(h.device_minor())?)
            } else {
                0
            },
        };
        match kind {
            tar::EntryType::Directory => sink.put(&rel, &meta, Body::Dir)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                sink.put(&rel, &meta, Body::File(&mut entry))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(io_err("read", stream))?
                    .ok_or_else(|| bad("a symbolic link without a target"))?
                    .into_owned();
                sink.put(&rel, &meta, Body::Symlink(target.into_os_string()))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(io_err("read", stream))?
                    .ok_or_else(|| bad("a hard link without a target"))?;
                let target = archive_path(&target)?;
                sink.put(&rel, &meta, Body::HardLink(target))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                sink.put(&rel, &meta, Body::Node)?;
            }
            // Extended headers the reader has already applied.
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            _ => return Err(bad("berth does not extract entries of this type")),
        }
    }
    sink.finish()
}

/// A host source, opened.
enum Source<'a> {
    /// A file or directory (`O_PATH`), as the user named it, and the name it takes.
    Tree {
        node: OwnedFd,
        given: String,
        is_dir: bool,
        name: OsString,
    },
    /// A tar stream.
    Tar(&'a mut dyn Read),
}

/// What a path is, without following a final symbolic link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    Symlink,
    Other,
}

/// Looks paths up for the destination's resolution: in the container's root, or on
/// the host.
trait Lookup {
    /// The path's kind; `None` when it does not exist.
    fn kind(&self, path: &Path) -> Result<Option<Kind>, CpError>;
    /// A symbolic link's target.
    fn readlink(&self, path: &Path) -> Result<PathBuf, CpError>;
    /// Fails unless `path` (its links followed) is an existing directory.
    fn check_dir(&self, path: &Path) -> Result<(), CpError>;
    /// `path` as messages name it.
    fn shown(&self, path: &Path) -> String;
}

/// Paths in a container's root file system (`fd`), named `label` + path.
struct InRoot<'a> {
    fd: &'a OwnedFd,
    label: &'a str,
}

impl InRoot<'_> {
    fn open(&self, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(self.fd, rel_str(path), how)
    }

    /// Opens a source path `O_PATH`, following its final link when `follow`.
    fn open_source(&self, path: &Path, follow: bool) -> Result<OwnedFd, CpError> {
        let flags = if follow {
            OFlag::O_PATH
        } else {
            OFlag::O_PATH | OFlag::O_NOFOLLOW
        };
        self.open(path, flags)
            .map_err(|e| source_error(e, self.shown(path)))
    }
}

fn source_error(e: Errno, shown: String) -> CpError {
    match e {
        Errno::ENOENT => CpError::NotFound { path: shown },
        Errno::ENOTDIR => CpError::NotADirectory { path: shown },
        Errno::ELOOP => CpError::Loop { path: shown },
        e => sys("open", shown)(e),
    }
}

fn kind_of(st: &FileStat) -> Kind {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    }
}

impl Lookup for InRoot<'_> {
    fn kind(&self, path: &Path) -> Result<Option<Kind>, CpError> {
        match self.open(path, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
            Ok(fd) => Ok(Some(kind_of(
                &fstat(&fd).map_err(sys("stat", self.shown(path)))?,
            ))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(source_error(e, self.shown(path))),
        }
    }

    fn readlink(&self, path: &Path) -> Result<PathBuf, CpError> {
        let fd = self
            .open(path, OFlag::O_PATH | OFlag::O_NOFOLLOW)
            .map_err(|e| source_error(e, self.shown(path)))?;
        nix::fcntl::readlinkat(&fd, "")
            .map(PathBuf::from)
            .map_err(sys("readlink", self.shown(path)))
    }

    fn check_dir(&self, path: &Path) -> Result<(), CpError> {
        self.open(path, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map(drop)
            .map_err(|e| source_error(e, self.shown(path)))
    }

    fn shown(&self, path: &Path) -> String {
        format!("{}{}", self.label, path.display())
    }
}

/// Paths on the host.
struct OnHost;

impl Lookup for OnHost {
    fn kind(&self, path: &Path) -> Result<Option<Kind>, CpError> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => Ok(Some(Kind::Symlink)),
            Ok(m) if m.is_dir() => Ok(Some(Kind::Dir)),
            Ok(_) => Ok(Some(Kind::Other)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => match e.raw_os_error() {
                Some(n) => Err(source_error(Errno::from_raw(n), self.shown(path))),
                None => Err(io_err("stat", self.shown(path))(e)),
            },
        }
    }

    fn readlink(&self, path: &Path) -> Result<PathBuf, CpError> {
        std::fs::read_link(path).map_err(io_err("readlink", self.shown(path)))
    }

    fn check_dir(&self, path: &Path) -> Result<(), CpError> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(CpError::NotADirectory {
                path: self.shown(path),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(CpError::NoSuchDirectory {
                path: self.shown(path),
            }),
            Err(e) => Err(io_err("stat", self.shown(path))(e)),
        }
    }

    fn shown(&self, path: &Path) -> String {
        path.display().to_string()
    }
}

/// docker's `CopyInfoDestinationPath`: the destination with its final symbolic links
/// followed (a link to nowhere is where the copy goes), and what is there. A destination
/// that does not exist needs an existing parent directory.
fn resolve_dest(
    lookup: &dyn Lookup,
    path: &Path,
    lexical: bool,
) -> Result<(PathBuf, Found), CpError> {
    let mut p = path.to_owned();
    for _ in 0..MAX_LINKS {
        match lookup.kind(&p)? {
            Some(Kind::Dir) => return Ok((p, Found::Dir)),
            Some(Kind::Other) => return Ok((p, Found::NonDir)),
            Some(Kind::Symlink) => {
                let target = lookup.readlink(&p)?;
                let next = if target.is_absolute() {
                    target
                } else {
                    parent_of(&p).join(target)
                };
                p = if lexical { clean(&next) } else { next };
            }
            None => {
                lookup.check_dir(&parent_of(&p)).map_err(|e| match e {
                    CpError::NotFound { path } => CpError::NoSuchDirectory { path },
                    e => e,
                })?;
                return Ok((p, Found::Absent));
            }
        }
    }
    Err(CpError::Loop {
        path: lookup.shown(path),
    })
}

/// A host path as the user wrote it, without a trailing `/` or `/.`.
fn host_path(path: &Path) -> PathBuf {
    let bytes = path.as_os_str().as_bytes();
    let mut end = bytes.len();
    loop {
        let b = &bytes[..end];
        if b.ends_with(b"/.") {
            end -= 2;
        } else if b.len() > 1 && b.ends_with(b"/") {
            end -= 1;
        } else {
            break;
        }
    }
    match &bytes[..end] {
        b"" if bytes.starts_with(b"/") => PathBuf::from("/"),
        b"" => PathBuf::from("."),
        b => PathBuf::from(OsStr::from_bytes(b)),
    }
}

/// The current mount id of the file `fd` holds (`mnt_id` of `/proc/self/fdinfo`).
fn mount_id(fd: &OwnedFd) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}

fn open_dir(path: &Path) -> Result<OwnedFd, CpError> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("open", path.display().to_string()))
}

/// A container's root file system, open for a copy; the overlay berth mounted for it,
/// detached when this is dropped.
#[derive(Debug)]
pub struct OpenRootfs {
    fd: OwnedFd,
    mounted: Option<(PathBuf, u64)>,
}

impl OpenRootfs {
    /// Whether berth mounted the overlay for this copy (the container was not running).
    pub fn mounted_here(&self) -> bool {
        self.mounted.is_some()
    }
}

impl Drop for OpenRootfs {
    fn drop(&mut self) {
        let Some((target, id)) = &self.mounted else {
            return;
        };
        // Detach only the mount made here: a container started meanwhile has its own.
        let now = nix::fcntl::open(
            target,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .and_then(|fd| mount_id(&fd));
        if now == Some(*id) {
            let _ = umount2(target, MntFlags::MNT_DETACH);
        }
    }
}

impl Engine {
    /// Opens container `c`'s root file system: the overlay its monitor mounted while it
    /// runs, or else one mounted here (the plan of `plan_rootfs`) until the result drops.
    pub fn open_rootfs(&self, c: &ContainerRecord) -> Result<OpenRootfs, CpError> {
        let dir = self.container_dir(&c.id);
        let target = dir.join("rootfs");
        let dir_fd = open_dir(&dir)?;
        if let Ok(fd) = open_dir(&target)
            && mount_id(&fd) != mount_id(&dir_fd)
        {
            return Ok(OpenRootfs { fd, mounted: None });
        }
        let settings = Engine::settings(c)?;
        self.mount_rootfs(&c.id, &settings.layers)?;
        let fd = match open_dir(&target) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = umount2(&target, MntFlags::MNT_DETACH);
                return Err(e);
            }
        };
        let mounted = mount_id(&fd).map(|id| (target.clone(), id));
        if mounted.is_none() {
            let _ = umount2(&target, MntFlags::MNT_DETACH);
            return Err(CpError::Sys {
                call: "read the mount id of",
                path: target.display().to_string(),
                errno: Errno::EIO,
            });
        }
        Ok(OpenRootfs { fd, mounted })
    }

    /// `berth cp CONTAINER:SRC DEST`: copies `src` (a path in container `c`) to the host.
    pub fn copy_out(
        &self,
        c: &ContainerRecord,
        src: &str,
        dest: HostDest<'_>,
        opts: CopyOptions,
    ) -> Result<(), CpError> {
        let rootfs = self.open_rootfs(c)?;
        let label = format!("{}:", c.name);
        let root = InRoot {
            fd: &rootfs.fd,
            label: &label,
        };
        let (clean_src, trailing) = container_path(src);
        let follow = opts.follow_link || trailing != Trailing::None;
        let node = root.open_source(&clean_src, follow)?;
        let src_shown = root.shown(&clean_src);
        let st = fstat(&node).map_err(sys("stat", src_shown.clone()))?;
        let src_is_dir = kind_of(&st) == Kind::Dir;
        if trailing != Trailing::None && !src_is_dir {
            return Err(CpError::NotADirectory { path: src_shown });
        }
        let name = source_name(&clean_src, trailing);
        match dest {
            HostDest::Tar(out) => {
                let mut sink = TarSink {
                    tar: tar::Builder::new(out),
                };
                walk(&node, &src_shown, Path::new(&name), &mut sink)?;
                sink.finish()
            }
            HostDest::Path(path) => {
                let given = path.to_string_lossy();
                let asserts_dir = Trailing::of(&given) != Trailing::None;
                let (resolved, found) = resolve_dest(&OnHost, &host_path(path), false)?;
                let placement = place(
                    src_is_dir,
                    &name,
                    &resolved,
                    asserts_dir,
                    found,
                    (&src_shown, &given),
                )?;
                let dir_fd = nix::fcntl::open(
                    &placement.dir,
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(sys("open", placement.dir.display().to_string()))?;
                let mut sink = DirSink {
                    root: &dir_fd,
                    prefix: PathBuf::new(),
                    resolve: ResolveFlag::RESOLVE_BENEATH,
                    owner: if opts.archive {
                        Owner::Source
                    } else {
                        Owner::Invoker
                    },
                    label: String::new(),
                    shown: placement.dir.clone(),
                    dirs: Vec::new(),
                };
                walk(&node, &src_shown, Path::new(&placement.top), &mut sink)?;
                sink.finish()
            }
        }
    }

    /// `berth cp SRC CONTAINER:DEST`: copies `src` from the host into container `c` at
    /// `dest` (a path in it). Refused when the container's root is read-only.
    pub fn copy_in(
        &self,
        c: &ContainerRecord,
        src: HostSource<'_>,
        dest: &str,
        opts: CopyOptions,
    ) -> Result<(), CpError> {
        if self.read_only(c) {
            return Err(CpError::ReadOnly {
                name: c.name.clone(),
            });
        }
        // The host source first: a missing one fails before any mount.
        let source = match src {
            HostSource::Tar(input) => Source::Tar(input),
            HostSource::Path(path) => {
                let given = path.to_string_lossy().into_owned();
                let trailing = Trailing::of(&given);
                let follow = opts.follow_link || trailing != Trailing::None;
                let flags = if follow {
                    OFlag::O_PATH
                } else {
                    OFlag::O_PATH | OFlag::O_NOFOLLOW
                };
                let node = nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty())
                    .map_err(|e| source_error(e, given.clone()))?;
                let st = fstat(&node).map_err(sys("stat", given.clone()))?;
                let is_dir = kind_of(&st) == Kind::Dir;
                if trailing != Trailing::None && !is_dir {
                    return Err(CpError::NotADirectory { path: given });
                }
                let name = source_name(&clean(&host_path(path)), trailing);
                Source::Tree {
                    node,
                    given,
                    is_dir,
                    name,
                }
            }
        };
        let rootfs = self.open_rootfs(c)?;
        let label = format!("{}:", c.name);
        let root = InRoot {
            fd: &rootfs.fd,
            label: &label,
        };
        let (clean_dest, trailing) = container_path(dest);
        let (resolved, found) = resolve_dest(&root, &clean_dest, true)?;
        let dest_shown = root.shown(&clean_dest);
        let owner = if opts.archive {
            Owner::Source
        } else {
            Owner::Root
        };
        let sink = |dir: &Path| DirSink {
            root: &rootfs.fd,
            prefix: rel_str(dir).to_owned(),
            resolve: ResolveFlag::RESOLVE_IN_ROOT,
            owner,
            label: label.clone(),
            shown: dir.to_owned(),
            dirs: Vec::new(),
        };
        match source {
            Source::Tree {
                node,
                given,
                is_dir,
                name,
            } => {
                let placement = place(
                    is_dir,
                    &name,
                    &resolved,
                    trailing != Trailing::None,
                    found,
                    (&given, &dest_shown),
                )?;
                let mut sink = sink(&placement.dir);
                walk(&node, &given, Path::new(&placement.top), &mut sink)?;
                sink.finish()
            }
            Source::Tar(input) => {
                if found != Found::Dir {
                    return Err(CpError::MustBeDirectory { path: dest_shown });
                }
                untar(input, &mut sink(&resolved))
            }
        }
    }

    /// Whether container `c`'s `config.json` makes its root read-only.
    fn read_only(&self, c: &ContainerRecord) -> bool {
        std::fs::read(self.container_dir(&c.id).join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["root"]["readonly"] == true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_clean_like_go_and_keep_their_ending() {
        let p = |s: &str| container_path(s);
        assert_eq!(
            p("/etc/passwd"),
            (PathBuf::from("/etc/passwd"), Trailing::None)
        );
        assert_eq!(
            p("etc/passwd"),
            (PathBuf::from("/etc/passwd"), Trailing::None)
        );
        assert_eq!(p("/etc/"), (PathBuf::from("/etc"), Trailing::Slash));
        assert_eq!(p("/etc/."), (PathBuf::from("/etc"), Trailing::SlashDot));
        assert_eq!(p("/"), (PathBuf::from("/"), Trailing::None));
        assert_eq!(p(""), (PathBuf::from("/"), Trailing::None));
        assert_eq!(
            p("/etc/../../../x//y/./z"),
            (PathBuf::from("/x/y/z"), Trailing::None)
        );
        assert_eq!(clean(Path::new("a/../../b")), PathBuf::from("../b"));
        assert_eq!(clean(Path::new("a/..")), PathBuf::from("."));
    }

    #[test]
    fn sources_are_named_by_their_last_component_or_dot() {
        let name = |s: &str| {
            let (c, t) = container_path(s);
            source_name(&c, t)
        };
        assert_eq!(name("/etc/passwd"), "passwd");
        assert_eq!(name("/etc/"), "etc");
        assert_eq!(name("/etc/."), ".");
        assert_eq!(name("/"), ".");
        assert_eq!(host_path(Path::new("dir/.")), PathBuf::from("dir"));
        assert_eq!(host_path(Path::new("dir//")), PathBuf::from("dir"));
        assert_eq!(host_path(Path::new("./")), PathBuf::from("."));
        assert_eq!(host_path(Path::new("/")), PathBuf::from("/"));
        assert_eq!(host_path(Path::new("/.")), PathBuf::from("/"));
    }

    fn placed(src_is_dir: bool, name: &str, dest: &str, asserts: bool, found: Found) -> String {
        match place(
            src_is_dir,
            OsStr::new(name),
            Path::new(dest),
            asserts,
            found,
            ("S", "D"),
        ) {
            Ok(p) => format!("{}|{}", p.dir.display(), p.top.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn placement_follows_dockers_rules() {
        // A file into an existing directory keeps its name.
        assert_eq!(placed(false, "f", "/d", false, Found::Dir), "/d|f");
        // A file onto a file, or to a new name, takes the destination's name.
        assert_eq!(placed(false, "f", "/d/g", false, Found::NonDir), "/d|g");
        assert_eq!(placed(false, "f", "/d/new", false, Found::Absent), "/d|new");
        assert_eq!(placed(false, "f", "new", false, Found::Absent), ".|new");
        // `new/` must exist for a file.
        assert_eq!(
            placed(false, "f", "/d/new", true, Found::Absent),
            "destination directory D does not exist"
        );
        // A directory goes into an existing directory, or becomes the new one.
        assert_eq!(placed(true, "src", "/d", false, Found::Dir), "/d|src");
        assert_eq!(placed(true, "src", "/d/new", true, Found::Absent), "/d|new");
        // Its contents (`src/.`) merge into an existing directory.
        assert_eq!(placed(true, ".", "/d", false, Found::Dir), "/d|.");
        assert_eq!(placed(true, ".", "/d/new", false, Found::Absent), "/d|new");
        assert_eq!(
            placed(true, "src", "/d/f", false, Found::NonDir),
            "cannot copy directory S to D: it exists and is not a directory"
        );
    }

    #[test]
    fn archive_names_stay_below_the_destination() {
        assert_eq!(
            archive_path(Path::new("./a/b")).unwrap(),
            PathBuf::from("a/b")
        );
        assert_eq!(archive_path(Path::new("/a")).unwrap(), PathBuf::from("a"));
        assert_eq!(archive_path(Path::new("./")).unwrap(), PathBuf::from("."));
        assert!(matches!(
            archive_path(Path::new("a/../../etc/passwd")),
            Err(CpError::BadEntry { .. })
        ));
        assert_eq!(child(Path::new("."), OsStr::new("x")), PathBuf::from("x"));
        assert_eq!(child(Path::new("d"), OsStr::new("x")), PathBuf::from("d/x"));
    }

    #[test]
    fn exact_pads_a_short_reader_with_zeros() {
        let data: &[u8] = b"abc";
        let mut r = Exact {
            inner: data.take(5),
            left: 5,
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc\0\0");
    }
}
