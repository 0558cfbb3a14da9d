//! Unpacking one image layer into an empty directory, in the form overlayfs reads.
//!
//! [`unpack_layer`] streams a layer blob once: the bytes as stored are hashed (the blob's
//! digest), decompressed (gzip, zstd, or a plain tar, told by the caller or found by magic
//! bytes), hashed again (the diff id), and read as a tar. Each header becomes a
//! [`TarEntry`] that core's [`LayerChecker`] turns into an [`Entry`] decision, which this
//! module carries out under the destination: whiteouts become 0:0 character devices and
//! opaque markers the xattr the rules name. A later entry at the same path replaces the
//! earlier one, as tar does (a directory over a directory only updates its metadata).
//!
//! Invariants: nothing is ever written outside the destination. Every parent directory is
//! opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS)`
//! from an fd of the destination, and every file is made with an `*at` call on that parent
//! that does not follow a final symlink (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, or calls
//! that never follow one). A layer that fails in any way (a refused entry, a read error,
//! a truncated archive, a digest that does not match) leaves the destination empty.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_core::image::{
    ArchivePath, Compression, DeviceKind, Digest, DigestError, DigestWriter, Entry, EntryError,
    EntryKind, EntryRules, LayerChecker, OPAQUE_VALUE, TarEntry,
};
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, fstatat, futimens, makedev,
    mkdirat, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};

use crate::sys;

/// What one unpacked layer was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpackStats {
    /// The digest of the blob as read (compressed).
    pub digest: Digest,
    /// The blob's size as read.
    pub compressed_size: u64,
    /// The digest of the uncompressed tar (the diff id).
    pub diff_id: Digest,
    /// The size of the uncompressed tar.
    pub size: u64,
    /// The compression the blob had.
    pub compression: Compression,
    /// How many tar entries were read (PAX and GNU long-name headers not counted).
    pub entries: u64,
}

/// Why a layer could not be unpacked; the destination was emptied again.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The destination could not be opened or read.
    #[error("layer destination {dest:?}: {call} failed")]
    Dest {
        /// The destination.
        dest: PathBuf,
        /// The call.
        call: &'static str,
        /// Why.
        #[source]
        errno: Errno,
    },
    /// The destination already holds files.
    #[error("layer destination {dest:?} is not empty")]
    DestNotEmpty {
        /// The destination.
        dest: PathBuf,
    },
    /// A compression berth does not read.
    #[error("layer compressed with {compression:?}: not supported (gzip, zstd or plain tar)")]
    Compression {
        /// The compression found.
        compression: Compression,
    },
    /// The rules refuse an entry (the message names it).
    #[error(transparent)]
    Refused(#[from] EntryError),
    /// An entry whose name or link target is not UTF-8.
    #[error("layer entry {path:?}: name or link target is not UTF-8")]
    NotUtf8 {
        /// The name, lossily decoded.
        path: String,
    },
    /// An entry of a type layers do not use (GNU sparse files, volume labels, …).
    #[error("layer entry {path:?}: unsupported tar entry type {kind:?}")]
    EntryType {
        /// The entry's path.
        path: String,
        /// The type byte.
        kind: char,
    },
    /// A header field (owner, mtime, device number) that does not parse.
    #[error("layer entry {path:?}: invalid header field {field}")]
    Header {
        /// The entry's path.
        path: String,
        /// The field.
        field: &'static str,
    },
    /// A system call on an entry failed.
    #[error("layer entry {path:?}: {call} failed")]
    Sys {
        /// The entry's path in the layer.
        path: String,
        /// The call.
        call: &'static str,
        /// Why.
        #[source]
        errno: Errno,
    },
    /// Writing a file's content failed.
    #[error("layer entry {path:?}: writing its content failed")]
    Write {
        /// The entry's path.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The archive ends inside a file's content.
    #[error("layer entry {path:?}: the archive ends after {written} of its {size} bytes")]
    Truncated {
        /// The entry's path.
        path: String,
        /// Bytes there were.
        written: u64,
        /// Bytes the header promised.
        size: u64,
    },
    /// Reading (or decompressing) the archive failed; `after` is the last entry read.
    #[error("layer: reading the archive failed after entry {after:?}")]
    Read {
        /// The last entry read whole, if any.
        after: Option<String>,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The tar ends without its end-of-archive block: it was cut short.
    #[error("layer: the archive ends without an end-of-archive block after entry {after:?}")]
    NoEnd {
        /// The last entry read, if any.
        after: Option<String>,
    },
    /// The blob as read does not have the expected digest.
    #[error("layer blob does not match its digest")]
    Digest(#[source] DigestError),
    /// The uncompressed tar does not have the expected diff id.
    #[error("uncompressed layer does not match its diff id")]
    DiffId(#[source] DigestError),
    /// Unpacking failed, and so did emptying the destination afterwards.
    #[error("{first}; emptying {dest:?} afterwards failed too: {cleanup}")]
    Cleanup {
        /// The first failure.
        first: Box<LayerError>,
        /// The destination.
        dest: PathBuf,
        /// The failure to empty it.
        cleanup: Box<LayerError>,
    },
}

type LayerResult<T> = Result<T, LayerError>;

/// Attaches an entry's path and the call's name to a nix result.
trait AtPath<T> {
    fn at(self, path: &str, call: &'static str) -> LayerResult<T>;
}

impl<T> AtPath<T> for nix::Result<T> {
    fn at(self, path: &str, call: &'static str) -> LayerResult<T> {
        self.map_err(|errno| LayerError::Sys {
            path: path.to_owned(),
            call,
            errno,
        })
    }
}

/// Unpacks one layer blob read from `input` into `dest`, an existing empty directory.
///
/// `compression` is what the media type says; `None` detects it by magic bytes. The blob is
/// checked against `expect_digest` and its uncompressed tar against `expect_diff_id` when
/// given. On any error `dest` is emptied again and the error names the entry and the
/// problem.
pub fn unpack_layer(
    input: impl Read,
    compression: Option<Compression>,
    dest: &Path,
    rules: &EntryRules,
    expect_digest: Option<&Digest>,
    expect_diff_id: Option<&Digest>,
) -> Result<UnpackStats, LayerError> {
    let dest_err = |call| {
        move |errno| LayerError::Dest {
            dest: dest.to_owned(),
            call,
            errno,
        }
    };
    let root = nix::fcntl::open(
        dest,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(dest_err("open"))?;
    if !list_dir(root.as_fd())
        .map_err(dest_err("readdir"))?
        .is_empty()
    {
        return Err(LayerError::DestNotEmpty {
            dest: dest.to_owned(),
        });
    }
    let unpacked = unpack_into(
        root.as_fd(),
        input,
        compression,
        rules,
        expect_digest,
        expect_diff_id,
    );
    match unpacked {
        Ok(stats) => Ok(stats),
        Err(first) => match empty_dir(root.as_fd()) {
            Ok(()) => Err(first),
            Err(cleanup) => Err(LayerError::Cleanup {
                first: Box::new(first),
                dest: dest.to_owned(),
                cleanup: Box::new(cleanup),
            }),
        },
    }
}

/// A reader that hashes what it reads, and counts the zero bytes it ended on.
struct Hashing<'a, R> {
    inner: R,
    hasher: &'a RefCell<DigestWriter>,
    zero_run: u64,
}

impl<'a, R: Read> Hashing<'a, R> {
    fn new(inner: R, hasher: &'a RefCell<DigestWriter>) -> Self {
        Hashing {
            inner,
            hasher,
            zero_run: 0,
        }
    }
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let data = &buf[..n];
        self.hasher.borrow_mut().update(data);
        match data.iter().rposition(|&b| b != 0) {
            Some(last) => self.zero_run = (n - last - 1) as u64,
            None => self.zero_run = self.zero_run.saturating_add(n as u64),
        }
        Ok(n)
    }
}

/// A zstd stream of one or more frames (skippable frames skipped), decoded by ruzstd.
pub(crate) struct ZstdFrames<R: BufRead> {
    source: R,
    decoder: ruzstd::decoding::FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    pub(crate) fn new(source: R) -> Self {
        ZstdFrames {
            source,
            decoder: ruzstd::decoding::FrameDecoder::new(),
            in_frame: false,
        }
    }
}

fn zstd_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::BlockDecodingStrategy;
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                let d = &mut self.decoder;
                while d.can_collect() < buf.len() && !d.is_finished() {
                    let more = buf.len() - d.can_collect();
                    d.decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBytes(more))
                        .map_err(zstd_error)?;
                }
                let n = d.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                if d.is_finished() && d.can_collect() == 0 {
                    self.in_frame = false;
                }
                continue;
            }
            if self.source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.decoder.reset(&mut self.source) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let want = u64::from(length);
                    let skipped = io::copy(&mut (&mut self.source).take(want), &mut io::sink())?;
                    if skipped != want {
                        return Err(zstd_error("stream ends inside a skippable frame"));
                    }
                }
                Err(e) => return Err(zstd_error(e)),
            }
        }
    }
}

/// Metadata applied to directories once every entry is written (their mtime would change
/// as entries are added, and a read-only mode would stop a rootless unpack).
struct DirMeta {
    path: ArchivePath,
    mode: u32,
    mtime: TimeSpec,
}

fn unpack_into(
    root: BorrowedFd<'_>,
    input: impl Read,
    compression: Option<Compression>,
    rules: &EntryRules,
    expect_digest: Option<&Digest>,
    expect_diff_id: Option<&Digest>,
) -> LayerResult<UnpackStats> {
    let read_err = |after: Option<String>| move |source| LayerError::Read { after, source };
    let blob_hash = RefCell::new(DigestWriter::new());
    let tar_hash = RefCell::new(DigestWriter::new());
    let mut raw = Hashing::new(input, &blob_hash);
    let mut head = [0u8; 6];
    let mut got = 0;
    while got < head.len() {
        match raw.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_err(None)(e)),
        }
    }
    let compression = compression.unwrap_or_else(|| Compression::detect(&head[..got]));
    let stream = io::Cursor::new(head[..got].to_vec()).chain(&mut raw);
    let decoded: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(stream),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::Zstd => Box::new(ZstdFrames::new(BufReader::new(stream))),
        Compression::Bzip2 | Compression::Xz => {
            return Err(LayerError::Compression { compression });
        }
    };
    let mut archive = tar::Archive::new(Hashing::new(decoded, &tar_hash));
    let mut checker = LayerChecker::new(*rules);
    let mut dirs = Vec::new();
    let mut last: Option<String> = None;
    let mut count = 0u64;
    for entry in archive.entries().map_err(read_err(None))? {
        let mut entry = entry.map_err(read_err(last.clone()))?;
        let (tar_entry, mtime) = describe(&mut entry)?;
        if let Some(tar_entry) = tar_entry {
            let decision = checker.check(&tar_entry)?;
            apply(root, &decision, &mut entry, mtime, &mut dirs)?;
            last = Some(tar_entry.path);
        }
        count += 1;
    }
    let mut tail = archive.into_inner();
    if tail.zero_run < 512 {
        return Err(LayerError::NoEnd { after: last });
    }
    // Whatever follows the end-of-archive block is part of both digests.
    io::copy(&mut tail, &mut io::sink()).map_err(read_err(last.clone()))?;
    drop(tail);
    io::copy(&mut raw, &mut io::sink()).map_err(read_err(last.clone()))?;
    let tar = tar_hash.into_inner();
    let blob = blob_hash.into_inner();
    let (size, compressed_size) = (tar.written(), blob.written());
    let (diff_id, digest) = (tar.finish(), blob.finish());
    if let Some(expected) = expect_digest {
        expected.check(digest).map_err(LayerError::Digest)?;
    }
    if let Some(expected) = expect_diff_id {
        expected.check(diff_id).map_err(LayerError::DiffId)?;
    }
    // Children before parents: a parent's final mode may forbid reaching them.
    for dir in dirs.iter().rev() {
        let path = dir.path.as_str();
        let (parent, name) = open_parent(root, &dir.path, false)?;
        let mode = Mode::from_bits_truncate(dir.mode);
        fchmodat(&parent, name.as_str(), mode, FchmodatFlags::NoFollowSymlink).or_else(|e| {
            // Linux's fchmodat refuses AT_SYMLINK_NOFOLLOW without fchmodat2; the
            // path is a directory we made (checked by `open_dir`), so follow it.
            if e == Errno::EOPNOTSUPP || e == Errno::ENOTSUP || e == Errno::EINVAL {
                let fd = open_dir(&parent, &name, OFlag::O_RDONLY).at(path, "open")?;
                fchmod(&fd, mode).at(path, "fchmod")
            } else {
                Err(e).at(path, "fchmodat")
            }
        })?;
        utimensat(
            &parent,
            name.as_str(),
            &dir.mtime,
            &dir.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .at(path, "utimensat")?;
    }
    Ok(UnpackStats {
        digest,
        compressed_size,
        diff_id,
        size,
        compression,
        entries: count,
    })
}

/// A header as core's [`TarEntry`] and its mtime; `None` for a PAX global header.
fn describe<R: Read>(entry: &mut tar::Entry<'_, R>) -> LayerResult<(Option<TarEntry>, TimeSpec)> {
    let path_bytes = entry.path_bytes().into_owned();
    let path = String::from_utf8(path_bytes).map_err(|e| LayerError::NotUtf8 {
        path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })?;
    let mut pax: HashMap<String, String> = HashMap::new();
    if let Some(extensions) = entry.pax_extensions().map_err(|source| LayerError::Read {
        after: Some(path.clone()),
        source,
    })? {
        for ext in extensions.flatten() {
            if let (Ok(key), Ok(value)) = (ext.key(), ext.value())
                && matches!(key, "uid" | "gid" | "mtime")
            {
                pax.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    let header = entry.header();
    let bad = |field: &'static str| LayerError::Header {
        path: path.clone(),
        field,
    };
    let kind = match header.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
        tar::EntryType::Directory => EntryKind::Dir,
        tar::EntryType::Symlink => EntryKind::Symlink,
        tar::EntryType::Link => EntryKind::Hardlink,
        tar::EntryType::Char => EntryKind::Char,
        tar::EntryType::Block => EntryKind::Block,
        tar::EntryType::Fifo => EntryKind::Fifo,
        tar::EntryType::XGlobalHeader => return Ok((None, TimeSpec::new(0, 0))),
        other => {
            return Err(LayerError::EntryType {
                path,
                kind: char::from(other.as_byte()),
            });
        }
    };
    let number = |key: &str, field: &'static str, header_value: io::Result<u64>| match pax.get(key)
    {
        Some(v) => v.parse::<u64>().map_err(|_| bad(field)),
        None => header_value.map_err(|_| bad(field)),
    };
    let uid = number("uid", "uid", header.uid())?;
    let gid = number("gid", "gid", header.gid())?;
    let mtime = match pax.get("mtime") {
        Some(v) => parse_pax_time(v).ok_or(LayerError::Header {
            path: path.clone(),
            field: "mtime",
        })?,
        None => {
            let secs = header.mtime().map_err(|_| bad("mtime"))?;
            TimeSpec::new(i64::try_from(secs).map_err(|_| bad("mtime"))?, 0)
        }
    };
    let mode = header.mode().map_err(|_| bad("mode"))?;
    let (dev_major, dev_minor) = if matches!(kind, EntryKind::Char | EntryKind::Block) {
        (
            header
                .device_major()
                .map_err(|_| bad("devmajor"))?
                .unwrap_or(0),
            header
                .device_minor()
                .map_err(|_| bad("devminor"))?
                .unwrap_or(0),
        )
    } else {
        (0, 0)
    };
    let link = match entry.link_name_bytes() {
        Some(bytes) => Some(
            String::from_utf8(bytes.into_owned())
                .map_err(|_| LayerError::NotUtf8 { path: path.clone() })?,
        ),
        None => None,
    };
    let size = entry.size();
    Ok((
        Some(TarEntry {
            path,
            kind,
            mode,
            uid,
            gid,
            link,
            size,
            dev_major,
            dev_minor,
        }),
        mtime,
    ))
}

/// A PAX time (`1700000000.5`, possibly negative) as a [`TimeSpec`].
fn parse_pax_time(value: &str) -> Option<TimeSpec> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: i64 = digits.parse().ok()?;
    let nanos = if value.starts_with('-') {
        -nanos
    } else {
        nanos
    };
    Some(TimeSpec::new(secs, nanos))
}

/// Opens `name` in `parent` as a directory, never through a symlink.
fn open_dir(parent: &impl AsFd, name: &str, flags: OFlag) -> nix::Result<OwnedFd> {
    openat(
        parent,
        name,
        flags | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The parent directory of `path` (opened `O_PATH`, resolved inside `root`) and the last
/// component; with `create`, missing parents are made (mode 0755, owned by the caller),
/// as docker does for layers that omit them. The root itself is `(root, ".")`.
fn open_parent(
    root: BorrowedFd<'_>,
    path: &ArchivePath,
    create: bool,
) -> LayerResult<(OwnedFd, String)> {
    let p = path.as_str();
    let name = path.file_name().unwrap_or(".").to_owned();
    let parent = path.parent().unwrap_or_default();
    let rel = if parent.is_root() {
        "."
    } else {
        parent.as_str()
    };
    let how = || {
        OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(
                ResolveFlag::RESOLVE_IN_ROOT
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS
                    | ResolveFlag::RESOLVE_NO_SYMLINKS,
            )
    };
    match openat2(root, rel, how()) {
        Ok(fd) => Ok((fd, name)),
        Err(Errno::ENOENT) if create => {
            let mut cur = openat2(root, ".", how()).at(p, "openat2")?;
            for component in parent.components() {
                match mkdirat(&cur, component, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e).at(p, "mkdirat"),
                }
                cur = openat2(&cur, component, how()).at(p, "openat2")?;
            }
            Ok((cur, name))
        }
        Err(e) => Err(e).at(p, "openat2"),
    }
}

/// Removes whatever is at `name` in `parent` (a directory with its content), so that a
/// later entry replaces it; forgets the deferred metadata of directories removed.
fn clear(
    parent: &OwnedFd,
    name: &str,
    path: &ArchivePath,
    dirs: &mut Vec<DirMeta>,
) -> LayerResult<()> {
    let p = path.as_str();
    match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e).at(p, "fstatat"),
        Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {
            remove_tree(parent.as_fd(), name, p)?;
            let prefix = format!("{p}/");
            dirs.retain(|d| d.path != *path && !d.path.as_str().starts_with(&prefix));
            Ok(())
        }
        Ok(_) => unlinkat(parent, name, UnlinkatFlags::NoRemoveDir).at(p, "unlinkat"),
    }
}

fn is_dir(parent: &OwnedFd, name: &str) -> nix::Result<Option<bool>> {
    match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(
            SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR,
        )),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn owner(uid: u32, gid: u32) -> (Option<Uid>, Option<Gid>) {
    (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
}

/// Carries out one decision under `root`.
fn apply<R: Read>(
    root: BorrowedFd<'_>,
    decision: &Entry,
    content: &mut R,
    mtime: TimeSpec,
    dirs: &mut Vec<DirMeta>,
) -> LayerResult<()> {
    let nofollow = AtFlags::AT_SYMLINK_NOFOLLOW;
    match decision {
        Entry::Skip { .. } => Ok(()),
        Entry::Dir {
            path,
            mode,
            uid,
            gid,
        } => {
            let p = path.as_str();
            let (parent, name) = open_parent(root, path, true)?;
            match is_dir(&parent, &name).at(p, "fstatat")? {
                Some(true) => {}
                Some(false) => {
                    clear(&parent, &name, path, dirs)?;
                    mkdirat(&parent, name.as_str(), Mode::from_bits_truncate(0o700))
                        .at(p, "mkdirat")?;
                }
                None => mkdirat(&parent, name.as_str(), Mode::from_bits_truncate(0o700))
                    .at(p, "mkdirat")?,
            }
            let (u, g) = owner(*uid, *gid);
            fchownat(&parent, name.as_str(), u, g, nofollow).at(p, "fchownat")?;
            // A directory listed again: only its last entry's metadata counts.
            dirs.retain(|d| d.path != *path);
            dirs.push(DirMeta {
                path: path.clone(),
                mode: *mode,
                mtime,
            });
            Ok(())
        }
        Entry::File {
            path,
            mode,
            uid,
            gid,
            size,
        } => {
            let p = path.as_str();
            let (parent, name) = open_parent(root, path, true)?;
            clear(&parent, &name, path, dirs)?;
            let fd = openat(
                &parent,
                name.as_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .at(p, "openat")?;
            let mut file = File::from(fd);
            let written = copy_content(content, &mut file, *size, p)?;
            if written != *size {
                return Err(LayerError::Truncated {
                    path: p.to_owned(),
                    written,
                    size: *size,
                });
            }
            let (u, g) = owner(*uid, *gid);
            // chown before chmod: chown clears the set-id bits.
            fchown(&file, u, g).at(p, "fchown")?;
            fchmod(&file, Mode::from_bits_truncate(*mode)).at(p, "fchmod")?;
            futimens(&file, &mtime, &mtime).at(p, "futimens")
        }
        Entry::Symlink {
            path,
            target,
            uid,
            gid,
        } => {
            let p = path.as_str();
            let (parent, name) = open_parent(root, path, true)?;
            clear(&parent, &name, path, dirs)?;
            symlinkat(target.as_str(), &parent, name.as_str()).at(p, "symlinkat")?;
            let (u, g) = owner(*uid, *gid);
            fchownat(&parent, name.as_str(), u, g, nofollow).at(p, "fchownat")?;
            utimensat(
                &parent,
                name.as_str(),
                &mtime,
                &mtime,
                UtimensatFlags::NoFollowSymlink,
            )
            .at(p, "utimensat")
        }
        Entry::Hardlink { path, target } => {
            let p = path.as_str();
            if path == target {
                return Ok(());
            }
            let (tparent, tname) = open_parent(root, target, false)?;
            let (parent, name) = open_parent(root, path, true)?;
            clear(&parent, &name, path, dirs)?;
            linkat(
                &tparent,
                tname.as_str(),
                &parent,
                name.as_str(),
                AtFlags::empty(),
            )
            .at(p, "linkat")
        }
        Entry::Device {
            path,
            kind,
            major,
            minor,
            mode,
            uid,
            gid,
        } => {
            let sflag = match kind {
                DeviceKind::Char => SFlag::S_IFCHR,
                DeviceKind::Block => SFlag::S_IFBLK,
            };
            let dev = makedev(u64::from(*major), u64::from(*minor));
            make_node(root, path, sflag, dev, *mode, (*uid, *gid), mtime, dirs)
        }
        Entry::Fifo {
            path,
            mode,
            uid,
            gid,
        } => make_node(
            root,
            path,
            SFlag::S_IFIFO,
            0,
            *mode,
            (*uid, *gid),
            mtime,
            dirs,
        ),
        Entry::Whiteout { path } => {
            let p = path.as_str();
            let (parent, name) = open_parent(root, path, true)?;
            clear(&parent, &name, path, dirs)?;
            mknodat(&parent, name.as_str(), SFlag::S_IFCHR, Mode::empty(), 0).at(p, "mknodat")
        }
        Entry::Opaque { dir, xattr } => {
            let p = dir.as_str();
            let xattr = CString::new(*xattr).map_err(|_| LayerError::Sys {
                path: p.to_owned(),
                call: "fsetxattr",
                errno: Errno::EINVAL,
            })?;
            let fd = if dir.is_root() {
                openat(
                    root,
                    ".",
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .at(p, "openat")?
            } else {
                let (parent, name) = open_parent(root, dir, true)?;
                if is_dir(&parent, &name).at(p, "fstatat")?.is_none() {
                    mkdirat(&parent, name.as_str(), Mode::from_bits_truncate(0o755))
                        .at(p, "mkdirat")?;
                }
                open_dir(&parent, &name, OFlag::O_RDONLY).at(p, "openat")?
            };
            sys::fsetxattr(fd.as_fd(), &xattr, OPAQUE_VALUE).at(p, "fsetxattr")
        }
    }
}

/// Makes a device node or fifo with its owner, mode and mtime.
#[allow(clippy::too_many_arguments)]
fn make_node(
    root: BorrowedFd<'_>,
    path: &ArchivePath,
    kind: SFlag,
    dev: u64,
    mode: u32,
    (uid, gid): (u32, u32),
    mtime: TimeSpec,
    dirs: &mut Vec<DirMeta>,
) -> LayerResult<()> {
    let p = path.as_str();
    let (parent, name) = open_parent(root, path, true)?;
    clear(&parent, &name, path, dirs)?;
    let perm = Mode::from_bits_truncate(mode);
    mknodat(&parent, name.as_str(), kind, perm, dev).at(p, "mknodat")?;
    let (u, g) = owner(uid, gid);
    fchownat(&parent, name.as_str(), u, g, AtFlags::AT_SYMLINK_NOFOLLOW).at(p, "fchownat")?;
    // The node was just made by us and is no symlink: following is harmless, and needed
    // (plain fchmodat has no working AT_SYMLINK_NOFOLLOW); it undoes the umask.
    fchmodat(&parent, name.as_str(), perm, FchmodatFlags::FollowSymlink).at(p, "fchmodat")?;
    utimensat(
        &parent,
        name.as_str(),
        &mtime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .at(p, "utimensat")
}

/// Copies up to `size` bytes of an entry's content; read errors are the archive's.
fn copy_content<R: Read>(from: &mut R, to: &mut File, size: u64, path: &str) -> LayerResult<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    while written < size {
        let want = usize::try_from((size - written).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = match from.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(LayerError::Read {
                    after: Some(path.to_owned()),
                    source,
                });
            }
        };
        to.write_all(&buf[..n])
            .map_err(|source| LayerError::Write {
                path: path.to_owned(),
                source,
            })?;
        written += n as u64;
    }
    Ok(written)
}

/// The names in directory `dir` (without `.` and `..`), read from a fresh open of it.
fn list_dir(dir: BorrowedFd<'_>) -> nix::Result<Vec<CString>> {
    let fd = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut listing = Dir::from_fd(fd)?;
    let mut names = Vec::new();
    for entry in listing.iter() {
        let name = entry?.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Removes `name` in `parent` and, if it is a directory, everything in it, without
/// following symlinks (`path` names it in errors).
fn remove_tree(parent: BorrowedFd<'_>, name: &str, path: &str) -> LayerResult<()> {
    let is_dir = match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e).at(path, "fstatat"),
    };
    if !is_dir {
        return unlinkat(parent, name, UnlinkatFlags::NoRemoveDir).at(path, "unlinkat");
    }
    // A directory left read-only (or unsearchable) must be opened and emptied.
    let _ = fchmodat(
        parent,
        name,
        Mode::from_bits_truncate(0o700),
        FchmodatFlags::FollowSymlink,
    );
    let dir = open_dir(&parent, name, OFlag::O_RDONLY).at(path, "openat")?;
    empty_dir_named(dir.as_fd(), path)?;
    unlinkat(parent, name, UnlinkatFlags::RemoveDir).at(path, "unlinkat")
}

fn empty_dir_named(dir: BorrowedFd<'_>, path: &str) -> LayerResult<()> {
    for child in list_dir(dir).at(path, "readdir")? {
        let child = child.to_string_lossy().into_owned();
        let child_path = if path.is_empty() {
            child.clone()
        } else {
            format!("{path}/{child}")
        };
        remove_tree(dir, &child, &child_path)?;
    }
    Ok(())
}

/// Removes everything in `dir`, leaving it empty.
fn empty_dir(dir: BorrowedFd<'_>) -> LayerResult<()> {
    empty_dir_named(dir, "")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use berth_core::image::{OPAQUE_USER_XATTR, OPAQUE_XATTR};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// One entry of a test archive.
    enum T<'a> {
        Dir(&'a str, u32),
        File(&'a str, u32, &'a [u8]),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
        Char(&'a str, u32, u32),
        Fifo(&'a str),
    }

    const MTIME: u64 = 1_600_000_000;

    fn me() -> (u64, u64) {
        (
            u64::from(nix::unistd::geteuid().as_raw()),
            u64::from(nix::unistd::getegid().as_raw()),
        )
    }

    /// A tar of `entries`, owned by `owner`; names are written raw (`../x` included).
    fn tar_of(entries: &[T<'_>], owner: (u64, u64)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(owner.0);
            h.set_gid(owner.1);
            h.set_mtime(MTIME);
            h.set_size(0);
            let (name, data): (&str, &[u8]) = match e {
                T::Dir(p, mode) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    (p, b"")
                }
                T::File(p, mode, data) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(data.len() as u64);
                    (p, data)
                }
                T::Symlink(p, target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_link_name_literal(target).unwrap();
                    (p, b"")
                }
                T::Hardlink(p, target) => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_mode(0o644);
                    h.set_link_name_literal(target).unwrap();
                    (p, b"")
                }
                T::Char(p, major, minor) => {
                    h.set_entry_type(tar::EntryType::Char);
                    h.set_mode(0o620);
                    h.set_device_major(*major).unwrap();
                    h.set_device_minor(*minor).unwrap();
                    (p, b"")
                }
                T::Fifo(p) => {
                    h.set_entry_type(tar::EntryType::Fifo);
                    h.set_mode(0o600);
                    (p, b"")
                }
            };
            let raw = &mut h.as_old_mut().name;
            raw.fill(0);
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    struct Dirs {
        _base: tempfile::TempDir,
        dest: PathBuf,
        sentinel: PathBuf,
    }

    fn dirs() -> Dirs {
        let base = tempfile::tempdir().unwrap();
        let dest = base.path().join("dest");
        let sentinel = base.path().join("sentinel");
        std::fs::create_dir(&dest).unwrap();
        std::fs::create_dir(&sentinel).unwrap();
        std::fs::write(sentinel.join("keep"), b"keep").unwrap();
        Dirs {
            _base: base,
            dest,
            sentinel,
        }
    }

    fn unpack(tar: &[u8], d: &Dirs, rules: EntryRules) -> Result<UnpackStats, LayerError> {
        unpack_layer(tar, None, &d.dest, &rules, None, None)
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn assert_untouched(d: &Dirs) {
        assert_eq!(listing(&d.dest), Vec::<String>::new(), "dest not emptied");
        assert_eq!(listing(&d.sentinel), vec!["keep".to_owned()]);
        assert_eq!(std::fs::read(d.sentinel.join("keep")).unwrap(), b"keep");
    }

    const ROOTLESS: EntryRules = EntryRules { rootless: true };
    const ROOT: EntryRules = EntryRules { rootless: false };

    fn sample() -> Vec<T<'static>> {
        vec![
            T::Dir("./", 0o755),
            T::Dir("etc/", 0o755),
            T::File("etc/passwd", 0o640, b"root:x:0:0\n"),
            T::Symlink("etc/link", "passwd"),
            T::Hardlink("etc/hard", "etc/passwd"),
            T::File("usr/bin/tool", 0o4755, b"#!/bin/sh\n"),
            T::Dir("ro/", 0o555),
            T::File("ro/inside", 0o600, b"x"),
            T::Fifo("run/fifo"),
        ]
    }

    fn check_sample(dest: &Path, owner: (u64, u64)) {
        let passwd = dest.join("etc/passwd");
        assert_eq!(std::fs::read(&passwd).unwrap(), b"root:x:0:0\n");
        let m = std::fs::symlink_metadata(&passwd).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o640);
        assert_eq!((u64::from(m.uid()), u64::from(m.gid())), owner);
        assert_eq!(m.mtime(), MTIME as i64);
        assert_eq!(m.nlink(), 2);
        let hard = std::fs::symlink_metadata(dest.join("etc/hard")).unwrap();
        assert_eq!(hard.ino(), m.ino());
        let link = std::fs::symlink_metadata(dest.join("etc/link")).unwrap();
        assert!(link.file_type().is_symlink());
        assert_eq!(
            std::fs::read_link(dest.join("etc/link")).unwrap(),
            Path::new("passwd")
        );
        assert_eq!(link.mtime(), MTIME as i64);
        let tool = std::fs::symlink_metadata(dest.join("usr/bin/tool")).unwrap();
        assert_eq!(tool.mode() & 0o7777, 0o4755, "set-uid kept after chown");
        let implicit = std::fs::symlink_metadata(dest.join("usr/bin")).unwrap();
        assert_eq!(implicit.mode() & 0o7777, 0o755);
        let ro = std::fs::symlink_metadata(dest.join("ro")).unwrap();
        assert_eq!(ro.mode() & 0o7777, 0o555);
        assert_eq!(ro.mtime(), MTIME as i64);
        assert_eq!(std::fs::read(dest.join("ro/inside")).unwrap(), b"x");
        let fifo = std::fs::symlink_metadata(dest.join("run/fifo")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()));
        assert_eq!(fifo.mode() & 0o7777, 0o600);
        let etc = std::fs::symlink_metadata(dest.join("etc")).unwrap();
        assert_eq!(etc.mtime(), MTIME as i64, "dir mtime set after its entries");
    }

    #[test]
    fn files_dirs_links_round_trip_as_self() {
        let d = dirs();
        let tar = tar_of(&sample(), me());
        let stats = unpack(&tar, &d, ROOTLESS).unwrap();
        check_sample(&d.dest, me());
        assert_eq!(stats.compression, Compression::None);
        assert_eq!(stats.digest, Digest::of(&tar));
        assert_eq!(stats.diff_id, Digest::of(&tar));
        assert_eq!(stats.size, tar.len() as u64);
        assert_eq!(stats.entries, 9);
    }

    #[test]
    #[cfg_attr(
        not(feature = "e2e"),
        ignore = "needs root: --features berth-backend-linux/e2e"
    )]
    fn owners_devices_whiteouts_and_opaque_dirs_as_root() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "needs root; it never skips"
        );
        let d = dirs();
        let mut entries = sample();
        entries.extend([
            T::Char("dev/null", 1, 3),
            T::File("gone-before", 0o644, b""),
            T::File(".wh.gone", 0o644, b""),
            T::Dir("opq/", 0o700),
            T::File("opq/.wh..wh..opq", 0o644, b""),
            T::File("fresh/.wh..wh..opq", 0o644, b""),
            T::File(".wh.gone-before", 0o644, b""),
            T::File(".wh..wh.plnk/1", 0o644, b"aufs"),
        ]);
        let tar = tar_of(&entries, (1000, 2000));
        unpack(&tar, &d, ROOT).unwrap();
        check_sample(&d.dest, (1000, 2000));
        let null = std::fs::symlink_metadata(d.dest.join("dev/null")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &null.file_type()
        ));
        assert_eq!(null.rdev(), makedev(1, 3));
        assert_eq!(null.uid(), 1000);
        for whiteout in ["gone", "gone-before"] {
            let m = std::fs::symlink_metadata(d.dest.join(whiteout)).unwrap();
            assert!(std::os::unix::fs::FileTypeExt::is_char_device(
                &m.file_type()
            ));
            assert_eq!(m.rdev(), 0, "{whiteout}: a 0:0 device");
        }
        for dir in ["opq", "fresh"] {
            let fd = File::open(d.dest.join(dir)).unwrap();
            let name = CString::new(OPAQUE_XATTR).unwrap();
            assert_eq!(sys::fgetxattr(fd.as_fd(), &name).unwrap(), OPAQUE_VALUE);
            assert!(
                listing(&d.dest.join(dir)).is_empty(),
                "{dir}: no marker file"
            );
        }
        assert!(
            !d.dest.join(".wh..wh.plnk").exists(),
            "aufs metadata skipped"
        );
        assert!(!d.dest.join(".wh.gone").exists());
    }

    #[test]
    fn rootless_opaque_uses_the_user_xattr() {
        let d = dirs();
        let tar = tar_of(
            &[T::Dir("a/", 0o755), T::File("a/.wh..wh..opq", 0o644, b"")],
            me(),
        );
        unpack(&tar, &d, ROOTLESS).unwrap();
        let fd = File::open(d.dest.join("a")).unwrap();
        let name = CString::new(OPAQUE_USER_XATTR).unwrap();
        assert_eq!(sys::fgetxattr(fd.as_fd(), &name).unwrap(), OPAQUE_VALUE);
    }

    #[test]
    fn gzip_and_zstd_are_detected_and_verified() {
        let tar = tar_of(&sample(), me());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = ruzstd::encoding::compress_to_vec(
            &tar[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        // Two frames back to back, with a skippable frame between: one stream.
        let (a, b) = tar.split_at(1000);
        let mut multi =
            ruzstd::encoding::compress_to_vec(a, ruzstd::encoding::CompressionLevel::Fastest);
        multi.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
        multi.extend_from_slice(&3u32.to_le_bytes());
        multi.extend_from_slice(b"abc");
        multi.extend(ruzstd::encoding::compress_to_vec(
            b,
            ruzstd::encoding::CompressionLevel::Uncompressed,
        ));
        for (blob, compression) in [
            (&gz, Compression::Gzip),
            (&zst, Compression::Zstd),
            (&multi, Compression::Zstd),
        ] {
            for given in [None, Some(compression)] {
                let d = dirs();
                let stats = unpack_layer(
                    &blob[..],
                    given,
                    &d.dest,
                    &ROOTLESS,
                    Some(&Digest::of(blob)),
                    Some(&Digest::of(&tar)),
                )
                .unwrap();
                check_sample(&d.dest, me());
                assert_eq!(stats.compression, compression);
                assert_eq!(stats.compressed_size, blob.len() as u64);
                assert_eq!(stats.diff_id, Digest::of(&tar));
            }
        }
    }

    #[test]
    fn escaping_entries_are_refused_and_nothing_is_left() {
        let owner = me();
        let cases: Vec<(Vec<T<'_>>, &str)> = vec![
            (
                vec![T::File("ok", 0o644, b"x"), T::File("../x", 0o644, b"x")],
                "../x",
            ),
            (
                vec![T::File("ok", 0o644, b"x"), T::File("/abs", 0o644, b"x")],
                "/abs",
            ),
            (
                vec![
                    T::Symlink("link", "/"),
                    T::File("link/etc/passwd", 0o644, b"x"),
                ],
                "link/etc/passwd",
            ),
            (
                vec![
                    T::Symlink("up", "../sentinel"),
                    T::File("up/keep", 0o644, b"evil"),
                ],
                "up/keep",
            ),
            (
                vec![
                    T::File("ok", 0o644, b"x"),
                    T::Hardlink("h", "../sentinel/keep"),
                ],
                "h",
            ),
            (
                vec![T::Symlink("s", "../sentinel"), T::Hardlink("h", "s/keep")],
                "s/keep",
            ),
            (
                vec![T::File("ok", 0o644, b"x"), T::Char("dev/sda", 8, 0)],
                "dev/sda",
            ),
        ];
        for (entries, named) in cases {
            let d = dirs();
            let err = unpack(&tar_of(&entries, owner), &d, ROOTLESS).unwrap_err();
            assert!(matches!(err, LayerError::Refused(_)), "{err:?}");
            assert!(err.to_string().contains(named), "{named}: {err}");
            assert_untouched(&d);
        }
    }

    #[test]
    fn wrong_digests_leave_dest_empty() {
        let tar = tar_of(&sample(), me());
        let wrong = Digest::of(b"something else");
        let d = dirs();
        let err = unpack_layer(&tar[..], None, &d.dest, &ROOTLESS, Some(&wrong), None).unwrap_err();
        assert!(
            matches!(err, LayerError::Digest(DigestError::Mismatch { .. })),
            "{err:?}"
        );
        assert_untouched(&d);
        let err = unpack_layer(&tar[..], None, &d.dest, &ROOTLESS, None, Some(&wrong)).unwrap_err();
        assert!(
            matches!(err, LayerError::DiffId(DigestError::Mismatch { .. })),
            "{err:?}"
        );
        assert_untouched(&d);
        // The right ones pass.
        let ok = Digest::of(&tar);
        unpack_layer(&tar[..], None, &d.dest, &ROOTLESS, Some(&ok), Some(&ok)).unwrap();
    }

    #[test]
    fn truncated_archives_leave_dest_empty() {
        let tar = tar_of(
            &[
                T::File("a", 0o644, &[7u8; 3000]),
                T::File("b", 0o644, &[8u8; 100]),
            ],
            me(),
        );
        // Inside a's content, inside b's header, at the end of b's content (no end block).
        for cut in [512 + 1000, 512 + 3072 + 100, 512 + 3072 + 512 + 512] {
            let d = dirs();
            let err = unpack(&tar[..cut], &d, ROOTLESS).unwrap_err();
            assert!(
                matches!(
                    err,
                    LayerError::Truncated { .. }
                        | LayerError::Read { .. }
                        | LayerError::NoEnd { .. }
                ),
                "cut at {cut}: {err:?}"
            );
            assert_untouched(&d);
        }
        let d = dirs();
        match unpack(&tar[..512 + 1000], &d, ROOTLESS).unwrap_err() {
            LayerError::Truncated {
                path,
                written,
                size,
            } => {
                assert_eq!((path.as_str(), written, size), ("a", 1000, 3000));
            }
            other => panic!("{other:?}"),
        }
        // A truncated gzip stream is an error too.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let d = dirs();
        assert!(unpack(&gz[..gz.len() - 10], &d, ROOTLESS).is_err());
        assert_untouched(&d);
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let d = dirs();
        let tar = tar_of(
            &[
                T::File("x", 0o644, b"first"),
                T::File("x", 0o600, b"second"),
                T::Dir("d/", 0o700),
                T::File("d/inner", 0o644, b"i"),
                T::File("d", 0o644, b"now a file"),
                T::File("s", 0o644, b"file"),
                T::Symlink("s", "x"),
                T::Dir("k/", 0o700),
                T::Dir("k/", 0o750),
            ],
            me(),
        );
        unpack(&tar, &d, ROOTLESS).unwrap();
        assert_eq!(std::fs::read(d.dest.join("x")).unwrap(), b"second");
        let x = std::fs::metadata(d.dest.join("x")).unwrap();
        assert_eq!(x.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(d.dest.join("d")).unwrap(), b"now a file");
        assert_eq!(
            std::fs::read_link(d.dest.join("s")).unwrap(),
            Path::new("x")
        );
        let k = std::fs::metadata(d.dest.join("k")).unwrap();
        assert_eq!(k.permissions().mode() & 0o777, 0o750);
    }

    #[test]
    fn a_non_empty_dest_is_refused_and_kept() {
        let d = dirs();
        std::fs::write(d.dest.join("mine"), b"mine").unwrap();
        let err = unpack(&tar_of(&sample(), me()), &d, ROOTLESS).unwrap_err();
        assert!(matches!(err, LayerError::DestNotEmpty { .. }), "{err:?}");
        assert_eq!(std::fs::read(d.dest.join("mine")).unwrap(), b"mine");
    }

    #[test]
    fn pax_times_parse() {
        assert_eq!(parse_pax_time("12"), Some(TimeSpec::new(12, 0)));
        assert_eq!(parse_pax_time("12.5"), Some(TimeSpec::new(12, 500_000_000)));
        assert_eq!(parse_pax_time("x"), None);
        assert_eq!(parse_pax_time("1.2x"), None);
    }
}
