//! Rules for the entries of a layer tar: which to write, in what form, and which to refuse.
//!
//! The backend parses each tar header into a [`TarEntry`] and asks a [`LayerChecker`] what to
//! do with it; the answer is an [`Entry`] decision, or an [`EntryError`] that rejects the
//! whole layer. Each layer is unpacked into its own directory, in overlay form:
//! - a whiteout `DIR/.wh.NAME` becomes [`Entry::Whiteout`] of `DIR/NAME` (a 0:0 character
//!   device, overlayfs's whiteout);
//! - `DIR/.wh..wh..opq` becomes [`Entry::Opaque`] of `DIR` (the xattr
//!   `trusted.overlay.opaque=y`, or `user.overlay.opaque=y` when rootless, as overlayfs
//!   then runs with `userxattr`);
//! - aufs metadata (`.wh..wh.*` other than the opaque marker) is skipped, as docker does.
//!
//! Invariant: every path in a decision is an [`ArchivePath`], so joined to the layer's
//! directory it stays inside it; no entry is placed under a symlink made earlier in the same
//! layer (the backend would follow it out); a hard link's target is inside the layer and not
//! under such a symlink either; device nodes are refused when rootless.

use std::collections::BTreeSet;
use std::fmt;

use super::path::{ArchivePath, MAX_PATH_LEN, PathProblem};

/// The prefix of a whiteout's file name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The prefix of aufs metadata names (skipped).
pub const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
/// The file name that marks its directory opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to find an opaque directory.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The same xattr when overlayfs is mounted with `userxattr` (rootless).
pub const OPAQUE_USER_XATTR: &str = "user.overlay.opaque";
/// The value of the opaque xattr.
pub const OPAQUE_VALUE: &[u8] = b"y";

/// The type of a tar entry, as its header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file (`0` or `\0`, also `7`, contiguous).
    File,
    /// A directory (`5`).
    Dir,
    /// A symbolic link (`2`).
    Symlink,
    /// A hard link to an earlier entry (`1`).
    Hardlink,
    /// A character device (`3`).
    Char,
    /// A block device (`4`).
    Block,
    /// A named pipe (`6`).
    Fifo,
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryKind::File => "file",
            EntryKind::Dir => "directory",
            EntryKind::Symlink => "symlink",
            EntryKind::Hardlink => "hard link",
            EntryKind::Char => "character device",
            EntryKind::Block => "block device",
            EntryKind::Fifo => "fifo",
        })
    }
}

/// One tar header, already parsed by the backend (PAX long names applied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TarEntry {
    /// The entry's name as written in the archive.
    pub path: String,
    /// Its type.
    pub kind: EntryKind,
    /// Its mode; only the permission bits (`0o7777`) are kept.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// The link target of a symlink or hard link.
    pub link: Option<String>,
    /// The size of a file's content.
    pub size: u64,
    /// Device major number (devices only).
    pub dev_major: u32,
    /// Device minor number (devices only).
    pub dev_minor: u32,
}

/// A device node's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// A character device.
    Char,
    /// A block device.
    Block,
}

/// What the backend does with one tar entry, inside the layer's own directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Write a regular file of `size` bytes (the entry's content).
    File {
        /// Where.
        path: ArchivePath,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Content length.
        size: u64,
    },
    /// Make a directory (or set the metadata of one already made).
    Dir {
        /// Where.
        path: ArchivePath,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// Make a symlink; its target is not interpreted (it resolves inside the container).
    Symlink {
        /// Where.
        path: ArchivePath,
        /// What it points to, verbatim.
        target: String,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// Make a hard link to an entry written earlier in this layer.
    Hardlink {
        /// Where.
        path: ArchivePath,
        /// The earlier entry, inside this layer.
        target: ArchivePath,
    },
    /// Make a device node (never when rootless).
    Device {
        /// Where.
        path: ArchivePath,
        /// Character or block.
        kind: DeviceKind,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// Make a named pipe.
    Fifo {
        /// Where.
        path: ArchivePath,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// `path` is deleted by this layer: in overlay form, a 0:0 character device at `path`
    /// (when layers are flattened into one tree instead, remove `path`).
    Whiteout {
        /// The path it deletes.
        path: ArchivePath,
    },
    /// `dir` hides the content of lower layers: make it if absent, and set `xattr` to
    /// [`OPAQUE_VALUE`] on it (when flattening, empty what lower layers put there).
    Opaque {
        /// The opaque directory (the root when the marker is at the top).
        dir: ArchivePath,
        /// [`OPAQUE_XATTR`], or [`OPAQUE_USER_XATTR`] when rootless.
        xattr: &'static str,
    },
    /// Write nothing.
    Skip {
        /// The normalised path.
        path: ArchivePath,
        /// Why.
        reason: SkipReason,
    },
}

/// Why an entry is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The layer's root directory (`./`): the backend made it.
    Root,
    /// aufs metadata (`.wh..wh.*`), meaningless to overlayfs.
    AufsMetadata,
}

/// A tar entry that makes the whole layer unacceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The entry's path is refused.
    #[error("layer entry {path:?}: {problem}")]
    Path {
        /// The path as written in the archive.
        path: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// A symlink or hard link without a target.
    #[error("layer entry {path:?}: {kind} without a link target")]
    NoLinkTarget {
        /// The entry's path.
        path: String,
        /// Its kind.
        kind: EntryKind,
    },
    /// A symlink target that is empty, holds a NUL, or is too long.
    #[error("layer entry {path:?}: invalid symlink target {target:?}")]
    SymlinkTarget {
        /// The entry's path.
        path: String,
        /// The target.
        target: String,
    },
    /// A hard link whose target is outside the layer (or otherwise invalid).
    #[error("layer entry {path:?}: hard link target {target:?}: {problem}")]
    HardlinkTarget {
        /// The entry's path.
        path: String,
        /// The target as written.
        target: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// A hard link to the layer's root.
    #[error("layer entry {path:?}: hard link to the layer root")]
    HardlinkToRoot {
        /// The entry's path.
        path: String,
    },
    /// An entry (or a hard link's target) under a symlink made earlier in this layer.
    #[error("layer entry {path:?}: goes through symlink {symlink:?} made by this layer")]
    UnderSymlink {
        /// The entry's path (or hard link target).
        path: String,
        /// The symlink on the way.
        symlink: String,
    },
    /// A device node in a layer unpacked without privilege.
    #[error("layer entry {path:?}: {kind} {major}:{minor} refused when rootless")]
    Device {
        /// The entry's path.
        path: String,
        /// Character or block.
        kind: EntryKind,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A whiteout whose name is empty, `.` or `..`, or that has entries below it.
    #[error("layer entry {path:?}: invalid whiteout")]
    Whiteout {
        /// The entry's path.
        path: String,
    },
    /// The layer root given as something other than a directory.
    #[error("layer entry {path:?}: the layer root must be a directory, not a {kind}")]
    RootNotDir {
        /// The entry's path.
        path: String,
        /// Its kind.
        kind: EntryKind,
    },
    /// A uid or gid that is not a valid id (`u32`, and not `u32::MAX`).
    #[error("layer entry {path:?}: invalid owner {uid}:{gid}")]
    Owner {
        /// The entry's path.
        path: String,
        /// The uid.
        uid: u64,
        /// The gid.
        gid: u64,
    },
}

/// How layers are being unpacked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryRules {
    /// Unpacking without privilege (in a user namespace): device nodes are refused and the
    /// opaque xattr is `user.overlay.opaque`.
    pub rootless: bool,
}

impl EntryRules {
    /// The xattr that marks a directory opaque under these rules.
    pub fn opaque_xattr(&self) -> &'static str {
        if self.rootless {
            OPAQUE_USER_XATTR
        } else {
            OPAQUE_XATTR
        }
    }
}

/// Decides, entry by entry, what to do with one layer; remembers the layer's symlinks.
///
/// Feed it every entry of one layer in archive order; use a new one for the next layer.
#[derive(Clone, Debug, Default)]
pub struct LayerChecker {
    rules: EntryRules,
    symlinks: BTreeSet<String>,
}

impl LayerChecker {
    /// A checker for one layer, under `rules`.
    pub fn new(rules: EntryRules) -> LayerChecker {
        LayerChecker {
            rules,
            symlinks: BTreeSet::new(),
        }
    }

    /// Decides what to do with `entry`, or refuses it (and with it the layer).
    pub fn check(&mut self, entry: &TarEntry) -> Result<Entry, EntryError> {
        let decision = classify_entry(entry, &self.rules)?;
        let (placed, link_target) = match &decision {
            Entry::File { path, .. }
            | Entry::Dir { path, .. }
            | Entry::Symlink { path, .. }
            | Entry::Device { path, .. }
            | Entry::Fifo { path, .. }
            | Entry::Whiteout { path } => (Some(path), None),
            Entry::Hardlink { path, target } => (Some(path), Some(target)),
            Entry::Opaque { dir, .. } => (Some(dir), None),
            Entry::Skip { .. } => (None, None),
        };
        if let Some(path) = placed {
            self.refuse_under_symlink(path, false)?;
            // An opaque marker sits *in* its dir: that dir must not be a symlink either.
            if matches!(decision, Entry::Opaque { .. }) {
                self.refuse_under_symlink(path, true)?;
            }
        }
        if let Some(target) = link_target {
            self.refuse_under_symlink(target, false)?;
        }
        if let Some(path) = placed
            && !matches!(decision, Entry::Opaque { .. })
        {
            // The entry replaces whatever was at its path, a symlink included.
            self.symlinks.remove(path.as_str());
            if matches!(decision, Entry::Symlink { .. }) {
                self.symlinks.insert(path.as_str().to_owned());
            }
        }
        Ok(decision)
    }

    fn refuse_under_symlink(&self, path: &ArchivePath, itself: bool) -> Result<(), EntryError> {
        let hit = path
            .ancestors()
            .chain(itself.then_some(path.as_str()))
            .find(|a| self.symlinks.contains(*a));
        match hit {
            Some(symlink) => Err(EntryError::UnderSymlink {
                path: path.to_string(),
                symlink: symlink.to_owned(),
            }),
            None => Ok(()),
        }
    }
}

/// Decides what to do with one entry on its own (no memory of earlier entries; prefer
/// [`LayerChecker`], which also refuses entries under the layer's symlinks).
pub fn classify_entry(entry: &TarEntry, rules: &EntryRules) -> Result<Entry, EntryError> {
    let raw = || entry.path.clone();
    let path = ArchivePath::parse(&entry.path).map_err(|problem| EntryError::Path {
        path: raw(),
        problem,
    })?;
    let (Ok(uid), Ok(gid)) = (u32::try_from(entry.uid), u32::try_from(entry.gid)) else {
        return Err(owner(entry));
    };
    if uid == u32::MAX || gid == u32::MAX {
        return Err(owner(entry));
    }
    let mode = entry.mode & 0o7777;

    let Some(name) = path.file_name().map(str::to_owned) else {
        return if entry.kind == EntryKind::Dir {
            Ok(Entry::Skip {
                path,
                reason: SkipReason::Root,
            })
        } else {
            Err(EntryError::RootNotDir {
                path: raw(),
                kind: entry.kind,
            })
        };
    };
    // Whiteout names are only meaningful as the last component.
    let mut parents = path.components();
    parents.next_back();
    let mut aufs = name.starts_with(WHITEOUT_META_PREFIX) && name != OPAQUE_MARKER;
    for component in parents {
        if component.starts_with(WHITEOUT_META_PREFIX) {
            aufs = true;
        } else if component.starts_with(WHITEOUT_PREFIX) {
            return Err(EntryError::Whiteout { path: raw() });
        }
    }
    if aufs {
        return Ok(Entry::Skip {
            path,
            reason: SkipReason::AufsMetadata,
        });
    }
    let parent = path.parent().unwrap_or_default();
    if name == OPAQUE_MARKER {
        return Ok(Entry::Opaque {
            dir: parent,
            xattr: rules.opaque_xattr(),
        });
    }
    if let Some(deleted) = name.strip_prefix(WHITEOUT_PREFIX) {
        let path = parent
            .join(deleted)
            .map_err(|_| EntryError::Whiteout { path: raw() })?;
        return Ok(Entry::Whiteout { path });
    }

    let link = || {
        entry.link.clone().ok_or_else(|| EntryError::NoLinkTarget {
            path: raw(),
            kind: entry.kind,
        })
    };
    Ok(match entry.kind {
        EntryKind::File => Entry::File {
            path,
            mode,
            uid,
            gid,
            size: entry.size,
        },
        EntryKind::Dir => Entry::Dir {
            path,
            mode,
            uid,
            gid,
        },
        EntryKind::Symlink => {
            let target = link()?;
            if target.is_empty() || target.contains('\0') || target.len() > MAX_PATH_LEN {
                return Err(EntryError::SymlinkTarget {
                    path: raw(),
                    target,
                });
            }
            Entry::Symlink {
                path,
                target,
                uid,
                gid,
            }
        }
        EntryKind::Hardlink => {
            let written = link()?;
            let target =
                ArchivePath::parse(&written).map_err(|problem| EntryError::HardlinkTarget {
                    path: raw(),
                    target: written.clone(),
                    problem,
                })?;
            if target.is_root() {
                return Err(EntryError::HardlinkToRoot { path: raw() });
            }
            Entry::Hardlink { path, target }
        }
        // A 0:0 character device is already a whiteout in overlay form.
        EntryKind::Char if entry.dev_major == 0 && entry.dev_minor == 0 => Entry::Whiteout { path },
        EntryKind::Char | EntryKind::Block if rules.rootless => {
            return Err(EntryError::Device {
                path: raw(),
                kind: entry.kind,
                major: entry.dev_major,
                minor: entry.dev_minor,
            });
        }
        EntryKind::Char | EntryKind::Block => Entry::Device {
            path,
            kind: if entry.kind == EntryKind::Char {
                DeviceKind::Char
            } else {
                DeviceKind::Block
            },
            major: entry.dev_major,
            minor: entry.dev_minor,
            mode,
            uid,
            gid,
        },
        EntryKind::Fifo => Entry::Fifo {
            path,
            mode,
            uid,
            gid,
        },
    })
}

fn owner(entry: &TarEntry) -> EntryError {
    EntryError::Owner {
        path: entry.path.clone(),
        uid: entry.uid,
        gid: entry.gid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, kind: EntryKind) -> TarEntry {
        TarEntry {
            path: path.to_owned(),
            kind,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            link: None,
            size: 0,
            dev_major: 0,
            dev_minor: 0,
        }
    }

    fn link(path: &str, kind: EntryKind, target: &str) -> TarEntry {
        TarEntry {
            link: Some(target.to_owned()),
            ..e(path, kind)
        }
    }

    fn ap(s: &str) -> ArchivePath {
        ArchivePath::parse(s).unwrap()
    }

    const ROOT: EntryRules = EntryRules { rootless: false };
    const ROOTLESS: EntryRules = EntryRules { rootless: true };

    #[test]
    fn plain_entries() {
        assert_eq!(
            classify_entry(
                &TarEntry {
                    size: 5,
                    uid: 1000,
                    gid: 100,
                    ..e("./etc/hostname", EntryKind::File)
                },
                &ROOT
            ),
            Ok(Entry::File {
                path: ap("etc/hostname"),
                mode: 0o644,
                uid: 1000,
                gid: 100,
                size: 5
            })
        );
        assert_eq!(
            classify_entry(&e("etc/", EntryKind::Dir), &ROOT),
            Ok(Entry::Dir {
                path: ap("etc"),
                mode: 0o644,
                uid: 0,
                gid: 0
            })
        );
        assert_eq!(
            classify_entry(&link("bin/sh", EntryKind::Symlink, "/bin/busybox"), &ROOT),
            Ok(Entry::Symlink {
                path: ap("bin/sh"),
                target: "/bin/busybox".into(),
                uid: 0,
                gid: 0
            })
        );
        assert_eq!(
            classify_entry(&link("bin/ls", EntryKind::Hardlink, "./bin/busybox"), &ROOT),
            Ok(Entry::Hardlink {
                path: ap("bin/ls"),
                target: ap("bin/busybox")
            })
        );
        assert_eq!(
            classify_entry(&e("run/p", EntryKind::Fifo), &ROOTLESS),
            Ok(Entry::Fifo {
                path: ap("run/p"),
                mode: 0o644,
                uid: 0,
                gid: 0
            })
        );
    }

    #[test]
    fn bad_paths_are_refused() {
        for (path, problem) in [
            ("", PathProblem::Empty),
            ("/etc/passwd", PathProblem::Absolute),
            ("../escape", PathProblem::Escapes),
            ("a/../../escape", PathProblem::Escapes),
            ("a\0b", PathProblem::Nul),
        ] {
            assert_eq!(
                classify_entry(&e(path, EntryKind::File), &ROOT),
                Err(EntryError::Path {
                    path: path.into(),
                    problem
                }),
                "{path:?}"
            );
        }
        // A `..` that stays inside is resolved.
        assert!(matches!(
            classify_entry(&e("a/../b", EntryKind::File), &ROOT),
            Ok(Entry::File { path, .. }) if path == ap("b")
        ));
    }

    #[test]
    fn root_entry() {
        assert_eq!(
            classify_entry(&e("./", EntryKind::Dir), &ROOT),
            Ok(Entry::Skip {
                path: ArchivePath::root(),
                reason: SkipReason::Root
            })
        );
        assert_eq!(
            classify_entry(&e(".", EntryKind::File), &ROOT),
            Err(EntryError::RootNotDir {
                path: ".".into(),
                kind: EntryKind::File
            })
        );
    }

    #[test]
    fn whiteouts() {
        assert_eq!(
            classify_entry(&e("etc/.wh.passwd", EntryKind::File), &ROOT),
            Ok(Entry::Whiteout {
                path: ap("etc/passwd")
            })
        );
        assert_eq!(
            classify_entry(&e(".wh.tmp", EntryKind::File), &ROOTLESS),
            Ok(Entry::Whiteout { path: ap("tmp") })
        );
        for bad in ["a/.wh.", "a/.wh..", "a/.wh...", ".wh.x/y"] {
            assert_eq!(
                classify_entry(&e(bad, EntryKind::File), &ROOT),
                Err(EntryError::Whiteout { path: bad.into() }),
                "{bad}"
            );
        }
        // Overlay-form whiteouts already in the tar stay whiteouts, rootless too.
        assert_eq!(
            classify_entry(&e("gone", EntryKind::Char), &ROOTLESS),
            Ok(Entry::Whiteout { path: ap("gone") })
        );
    }

    #[test]
    fn opaque_dirs() {
        assert_eq!(
            classify_entry(&e("var/cache/.wh..wh..opq", EntryKind::File), &ROOT),
            Ok(Entry::Opaque {
                dir: ap("var/cache"),
                xattr: "trusted.overlay.opaque"
            })
        );
        assert_eq!(
            classify_entry(&e(".wh..wh..opq", EntryKind::File), &ROOTLESS),
            Ok(Entry::Opaque {
                dir: ArchivePath::root(),
                xattr: "user.overlay.opaque"
            })
        );
    }

    #[test]
    fn aufs_metadata_is_skipped() {
        for path in [".wh..wh.aufs", ".wh..wh.plnk/123.456", "a/.wh..wh.orph"] {
            assert!(
                matches!(
                    classify_entry(&e(path, EntryKind::File), &ROOT),
                    Ok(Entry::Skip {
                        reason: SkipReason::AufsMetadata,
                        ..
                    })
                ),
                "{path}"
            );
        }
    }

    #[test]
    fn devices() {
        let null = TarEntry {
            dev_major: 1,
            dev_minor: 3,
            ..e("dev/null", EntryKind::Char)
        };
        assert_eq!(
            classify_entry(&null, &ROOT),
            Ok(Entry::Device {
                path: ap("dev/null"),
                kind: DeviceKind::Char,
                major: 1,
                minor: 3,
                mode: 0o644,
                uid: 0,
                gid: 0
            })
        );
        assert_eq!(
            classify_entry(&null, &ROOTLESS),
            Err(EntryError::Device {
                path: "dev/null".into(),
                kind: EntryKind::Char,
                major: 1,
                minor: 3
            })
        );
        let sda = TarEntry {
            dev_major: 8,
            ..e("dev/sda", EntryKind::Block)
        };
        assert!(matches!(
            classify_entry(&sda, &ROOTLESS),
            Err(EntryError::Device { .. })
        ));
        assert!(matches!(
            classify_entry(&sda, &ROOT),
            Ok(Entry::Device {
                kind: DeviceKind::Block,
                ..
            })
        ));
    }

    #[test]
    fn links() {
        assert_eq!(
            classify_entry(&link("x", EntryKind::Hardlink, "../../etc/shadow"), &ROOT),
            Err(EntryError::HardlinkTarget {
                path: "x".into(),
                target: "../../etc/shadow".into(),
                problem: PathProblem::Escapes
            })
        );
        assert!(matches!(
            classify_entry(&link("x", EntryKind::Hardlink, "/etc/shadow"), &ROOT),
            Err(EntryError::HardlinkTarget {
                problem: PathProblem::Absolute,
                ..
            })
        ));
        assert_eq!(
            classify_entry(&link("x", EntryKind::Hardlink, "./"), &ROOT),
            Err(EntryError::HardlinkToRoot { path: "x".into() })
        );
        assert_eq!(
            classify_entry(&e("x", EntryKind::Symlink), &ROOT),
            Err(EntryError::NoLinkTarget {
                path: "x".into(),
                kind: EntryKind::Symlink
            })
        );
        assert!(matches!(
            classify_entry(&link("x", EntryKind::Symlink, ""), &ROOT),
            Err(EntryError::SymlinkTarget { .. })
        ));
        // A symlink may point anywhere: it resolves inside the container.
        assert!(classify_entry(&link("x", EntryKind::Symlink, "../../../etc"), &ROOT).is_ok());
    }

    #[test]
    fn owners() {
        let big = TarEntry {
            uid: 1 << 32,
            ..e("f", EntryKind::File)
        };
        assert_eq!(
            classify_entry(&big, &ROOT),
            Err(EntryError::Owner {
                path: "f".into(),
                uid: 1 << 32,
                gid: 0
            })
        );
        let minus_one = TarEntry {
            gid: u64::from(u32::MAX),
            ..e("f", EntryKind::File)
        };
        assert!(matches!(
            classify_entry(&minus_one, &ROOT),
            Err(EntryError::Owner { .. })
        ));
    }

    #[test]
    fn nothing_goes_through_a_symlink_of_the_layer() {
        let mut c = LayerChecker::new(ROOT);
        c.check(&link("etc", EntryKind::Symlink, "/host/etc"))
            .unwrap();
        assert_eq!(
            c.check(&e("etc/passwd", EntryKind::File)),
            Err(EntryError::UnderSymlink {
                path: "etc/passwd".into(),
                symlink: "etc".into()
            })
        );
        assert!(matches!(
            c.check(&e("etc/.wh..wh..opq", EntryKind::File)),
            Err(EntryError::UnderSymlink { .. })
        ));
        assert!(matches!(
            c.check(&e("etc/.wh.x", EntryKind::File)),
            Err(EntryError::UnderSymlink { .. })
        ));
        assert!(matches!(
            c.check(&link("x", EntryKind::Hardlink, "etc/shadow")),
            Err(EntryError::UnderSymlink { .. })
        ));
        // A hard link to the symlink itself is harmless (links the symlink).
        assert!(c.check(&link("x", EntryKind::Hardlink, "etc")).is_ok());
        // Replacing the symlink by a directory makes the path usable again.
        c.check(&e("etc", EntryKind::Dir)).unwrap();
        assert!(c.check(&e("etc/passwd", EntryKind::File)).is_ok());
        // A fresh checker (next layer) knows nothing of this layer's symlinks.
        let mut next = LayerChecker::new(ROOT);
        assert!(next.check(&e("etc/passwd", EntryKind::File)).is_ok());
    }
}
