//! fstab-style mount options and `/proc/self/mountinfo` parsing.
//!
//! Both parsers read untrusted text (a config's `mounts[].options`, a mountinfo file) and
//! never panic: every malformed input is a typed error naming where it is.
//!
//! Mount options follow runc's table of flags (`ro`, `nosuid`, `rbind`, `rprivate`, ...),
//! with one difference: runc hands any word it does not know to the filesystem as data,
//! while berth refuses a bare word it does not know (so `nosiud` is a config error, not a
//! mount that silently keeps setuid). `key=value` options and the short list of bare data
//! words in [`DATA_WORDS`] go to the filesystem as data.

use serde::{Deserialize, Serialize};

use crate::plan::{MountFlag, MountFlags, Propagation};

/// Bare words (without `=`) that are passed on to the filesystem as data.
///
/// - devpts: `newinstance`;
/// - ext2/3/4, xfs, btrfs: `acl`, `noacl`, `user_xattr`, `nouser_xattr`, `discard`,
///   `nodiscard`, `barrier`, `nobarrier`, `nouuid`;
/// - tmpfs: `inode32`, `inode64`, `noswap`, `quota`, `usrquota`, `grpquota`;
/// - overlay: `userxattr`, `volatile`;
/// - cgroup2: `nsdelegate`, `memory_localevents`, `memory_recursiveprot`, `favordynmods`;
/// - cgroup (v1): the controller names (`cpu`, `cpuacct`, `memory`, ...) and `none`;
/// - fuse: `allow_other`, `default_permissions`.
pub const DATA_WORDS: &[&str] = &[
    "newinstance",
    "acl",
    "noacl",
    "user_xattr",
    "nouser_xattr",
    "discard",
    "nodiscard",
    "barrier",
    "nobarrier",
    "nouuid",
    "inode32",
    "inode64",
    "noswap",
    "quota",
    "usrquota",
    "grpquota",
    "userxattr",
    "volatile",
    "nsdelegate",
    "memory_localevents",
    "memory_recursiveprot",
    "favordynmods",
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "pids",
    "hugetlb",
    "rdma",
    "misc",
    "none",
    "allow_other",
    "default_permissions",
];

/// Every option word that sets or clears a flag, binds, or changes propagation (not data):
/// what `berth features` lists as `mountOptions`. A test checks that the parser knows each.
pub const OPTION_WORDS: &[&str] = &[
    "defaults",
    "bind",
    "rbind",
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "sync",
    "async",
    "dirsync",
    "mand",
    "nomand",
    "noatime",
    "atime",
    "nodiratime",
    "diratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "silent",
    "loud",
    "nosymfollow",
    "symfollow",
    "tmpcopyup",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// Options runc knows that berth refuses, with the reason given in the error.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("rro", "recursive mount attributes are not supported"),
    ("rrw", "recursive mount attributes are not supported"),
    ("rnosuid", "recursive mount attributes are not supported"),
    ("rsuid", "recursive mount attributes are not supported"),
    ("rnodev", "recursive mount attributes are not supported"),
    ("rdev", "recursive mount attributes are not supported"),
    ("rnoexec", "recursive mount attributes are not supported"),
    ("rexec", "recursive mount attributes are not supported"),
    (
        "rnodiratime",
        "recursive mount attributes are not supported",
    ),
    ("rdiratime", "recursive mount attributes are not supported"),
    ("rrelatime", "recursive mount attributes are not supported"),
    (
        "rnorelatime",
        "recursive mount attributes are not supported",
    ),
    ("rnoatime", "recursive mount attributes are not supported"),
    ("ratime", "recursive mount attributes are not supported"),
    (
        "rstrictatime",
        "recursive mount attributes are not supported",
    ),
    (
        "rnostrictatime",
        "recursive mount attributes are not supported",
    ),
    (
        "rnosymfollow",
        "recursive mount attributes are not supported",
    ),
    ("rsymfollow", "recursive mount attributes are not supported"),
    ("idmap", "id-mapped mounts are not supported"),
    ("ridmap", "id-mapped mounts are not supported"),
    ("remount", "remount is not a mount option in a config"),
    ("iversion", "iversion is not supported"),
    ("noiversion", "noiversion is not supported"),
];

/// The meaning of one mount option, after parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Word {
    /// No effect (`defaults`).
    Nothing,
    /// `bind`.
    Bind,
    /// `rbind`.
    Rbind,
    /// Sets a flag (`ro`).
    Set(MountFlag),
    /// Clears a flag (`rw` clears `ro`).
    Clear(MountFlag),
    /// A propagation change.
    Propagate(Propagation, bool),
}

/// Looks up a word that is not data.
fn word(option: &str) -> Option<Word> {
    use MountFlag as F;
    let w = match option {
        "defaults" => Word::Nothing,
        "bind" => Word::Bind,
        "rbind" => Word::Rbind,
        "ro" => Word::Set(F::Ro),
        "rw" => Word::Clear(F::Ro),
        "nosuid" => Word::Set(F::Nosuid),
        "suid" => Word::Clear(F::Nosuid),
        "nodev" => Word::Set(F::Nodev),
        "dev" => Word::Clear(F::Nodev),
        "noexec" => Word::Set(F::Noexec),
        "exec" => Word::Clear(F::Noexec),
        "sync" => Word::Set(F::Sync),
        "async" => Word::Clear(F::Sync),
        "dirsync" => Word::Set(F::Dirsync),
        "mand" => Word::Set(F::Mand),
        "nomand" => Word::Clear(F::Mand),
        "noatime" => Word::Set(F::Noatime),
        "atime" => Word::Clear(F::Noatime),
        "nodiratime" => Word::Set(F::Nodiratime),
        "diratime" => Word::Clear(F::Nodiratime),
        "relatime" => Word::Set(F::Relatime),
        "norelatime" => Word::Clear(F::Relatime),
        "strictatime" => Word::Set(F::Strictatime),
        "nostrictatime" => Word::Clear(F::Strictatime),
        "lazytime" => Word::Set(F::Lazytime),
        "nolazytime" => Word::Clear(F::Lazytime),
        "silent" => Word::Set(F::Silent),
        "loud" => Word::Clear(F::Silent),
        "nosymfollow" => Word::Set(F::Nosymfollow),
        "symfollow" => Word::Clear(F::Nosymfollow),
        "tmpcopyup" => Word::Set(F::TmpCopyUp),
        "private" => Word::Propagate(Propagation::Private, false),
        "rprivate" => Word::Propagate(Propagation::Private, true),
        "shared" => Word::Propagate(Propagation::Shared, false),
        "rshared" => Word::Propagate(Propagation::Shared, true),
        "slave" => Word::Propagate(Propagation::Slave, false),
        "rslave" => Word::Propagate(Propagation::Slave, true),
        "unbindable" => Word::Propagate(Propagation::Unbindable, false),
        "runbindable" => Word::Propagate(Propagation::Unbindable, true),
        _ => return None,
    };
    Some(w)
}

/// Parses a propagation word (`rprivate` is `(Private, true)`), as `rootfsPropagation` takes it.
pub fn parse_propagation(word_text: &str) -> Option<(Propagation, bool)> {
    match word(word_text) {
        Some(Word::Propagate(p, recursive)) => Some((p, recursive)),
        _ => None,
    }
}

/// What a list of mount options asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountOptions {
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `rbind` was given.
    pub recursive: bool,
    /// Flags set, in effect after all options (a later `rw` undoes an earlier `ro`);
    /// never contains `bind` or `rec`.
    pub flags: MountFlags,
    /// Flags explicitly cleared (`rw` clears `ro`, `suid` clears `nosuid`, ...), in effect
    /// after all options (a later `ro` undoes an earlier `rw`).
    pub clear: MountFlags,
    /// Propagation changes, in the order given; the bool is "recursive".
    pub propagation: Vec<(Propagation, bool)>,
    /// Options for the filesystem: every `key=value` and the words of [`DATA_WORDS`], in order.
    pub data: Vec<String>,
}

/// A mount option that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountOptError {
    /// A bare word that is neither a flag, a propagation nor a known data word.
    #[error("unknown mount option {option:?}")]
    Unknown {
        /// Index of the string in the option list that holds it.
        index: usize,
        /// The option.
        option: String,
    },
    /// An option runc knows that berth does not carry out.
    #[error("unsupported mount option {option:?}: {reason}")]
    Unsupported {
        /// Index of the string in the option list that holds it.
        index: usize,
        /// The option.
        option: String,
        /// Why.
        reason: &'static str,
    },
    /// A `"` opened in an option is never closed.
    #[error("unterminated quote in mount option {option:?}")]
    UnterminatedQuote {
        /// Index of the string in the option list.
        index: usize,
        /// The whole string.
        option: String,
    },
}

impl MountOptError {
    /// Index of the string in the option list that holds the bad option.
    pub fn index(&self) -> usize {
        match self {
            MountOptError::Unknown { index, .. }
            | MountOptError::Unsupported { index, .. }
            | MountOptError::UnterminatedQuote { index, .. } => *index,
        }
    }
}

/// Splits one option string on `,` outside double quotes (`context="a,b"` stays whole).
fn split_options(text: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    parts.push(&text[start..]);
    Some(parts)
}

/// Parses fstab-style options as OCI mounts give them: one option per string
/// (`["bind", "ro"]`), or comma-joined (`["bind,ro"]`), or a mix. Empty options are skipped.
///
/// Errors carry the index of the string that holds the bad option. The recursive mount
/// attributes of runc (`rro`, `rnosuid`, ...), `idmap` and `remount` are refused as
/// [`MountOptError::Unsupported`]; runc's `tmpcopyup` is [`MountFlag::TmpCopyUp`].
pub fn parse_mount_options(options: &[String]) -> Result<MountOptions, MountOptError> {
    let mut out = MountOptions::default();
    for (index, text) in options.iter().enumerate() {
        let parts = split_options(text).ok_or_else(|| MountOptError::UnterminatedQuote {
            index,
            option: text.clone(),
        })?;
        for option in parts {
            if option.is_empty() {
                continue;
            }
            if let Some(w) = word(option) {
                match w {
                    Word::Nothing => {}
                    Word::Bind => out.bind = true,
                    Word::Rbind => {
                        out.bind = true;
                        out.recursive = true;
                    }
                    Word::Set(flag) => {
                        out.flags.insert(flag);
                        out.clear.remove(flag);
                    }
                    Word::Clear(flag) => {
                        out.flags.remove(flag);
                        out.clear.insert(flag);
                    }
                    Word::Propagate(p, recursive) => out.propagation.push((p, recursive)),
                }
                continue;
            }
            if let Some((_, reason)) = UNSUPPORTED.iter().find(|(name, _)| *name == option) {
                return Err(MountOptError::Unsupported {
                    index,
                    option: option.to_owned(),
                    reason,
                });
            }
            let is_data = match option.split_once('=') {
                Some((key, _)) => !key.is_empty(),
                None => DATA_WORDS.contains(&option),
            };
            if !is_data {
                return Err(MountOptError::Unknown {
                    index,
                    option: option.to_owned(),
                });
            }
            out.data.push(option.to_owned());
        }
    }
    Ok(out)
}

/// One line of `/proc/self/mountinfo` (see proc(5)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountInfo {
    /// Mount id (field 1).
    pub id: u32,
    /// Parent mount id (field 2).
    pub parent: u32,
    /// Device major number (field 3).
    pub major: u32,
    /// Device minor number (field 3).
    pub minor: u32,
    /// The root of the mount within its filesystem (field 4), unescaped.
    pub root: String,
    /// Mount point relative to the reader's root (field 5), unescaped.
    pub mount_point: String,
    /// Per-mount options (field 6): `rw`, `nosuid`, `relatime`, ...
    pub mount_options: Vec<String>,
    /// `shared:N`: the peer group this mount is in.
    pub shared: Option<u32>,
    /// `master:N`: the peer group this mount receives propagation from (it is a slave).
    pub master: Option<u32>,
    /// `propagate_from:N`: the closest dominant peer group visible to the reader.
    pub propagate_from: Option<u32>,
    /// `unbindable`.
    pub unbindable: bool,
    /// Filesystem type (`ext4`, `fuse.sshfs`), unescaped.
    pub fstype: String,
    /// Mount source (a device, `proc`, `none`), unescaped.
    pub source: String,
    /// Per-superblock options, unescaped.
    pub super_options: Vec<String>,
}

impl MountInfo {
    /// The per-mount flags among [`MountInfo::mount_options`] (`ro`, `nosuid`, ...);
    /// `rw` and words that are not flags are left out.
    pub fn mount_flags(&self) -> MountFlags {
        let mut flags = MountFlags::default();
        for option in &self.mount_options {
            if let Some(Word::Set(flag)) = word(option) {
                flags.insert(flag);
            }
        }
        flags
    }
}

/// A mountinfo line that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountInfoError {
    /// Fewer fields before the `-` separator than the format needs.
    #[error("mountinfo line {line}: expected at least 6 fields before \"-\", found {found}")]
    TooFewFields {
        /// 1-based line number.
        line: usize,
        /// How many were found.
        found: usize,
    },
    /// No `-` field ends the optional fields.
    #[error("mountinfo line {line}: no \"-\" separator")]
    NoSeparator {
        /// 1-based line number.
        line: usize,
    },
    /// After `-`, not exactly fstype, source and super options.
    #[error("mountinfo line {line}: expected 3 fields after \"-\", found {found}")]
    BadTail {
        /// 1-based line number.
        line: usize,
        /// How many were found.
        found: usize,
    },
    /// A numeric field is not a number.
    #[error("mountinfo line {line}: bad {field} {value:?}")]
    BadNumber {
        /// 1-based line number.
        line: usize,
        /// Which field (`mount id`, `major:minor`, ...).
        field: &'static str,
        /// Its text.
        value: String,
    },
    /// An optional field is neither `shared:N`, `master:N`, `propagate_from:N` nor `unbindable`
    /// in a form we understand (a known tag with a bad number).
    #[error("mountinfo line {line}: bad optional field {value:?}")]
    BadOptional {
        /// 1-based line number.
        line: usize,
        /// Its text.
        value: String,
    },
    /// An escaped field does not decode to UTF-8.
    #[error("mountinfo line {line}: {field} {value:?} is not UTF-8 once unescaped")]
    BadEscape {
        /// 1-based line number.
        line: usize,
        /// Which field.
        field: &'static str,
        /// Its text.
        value: String,
    },
}

/// Undoes the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134`
/// backslash, or any other `\ooo`); a `\` not followed by three octal digits stays as it is.
fn unescape(text: &str) -> Option<String> {
    if !text.contains('\\') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = bytes.get(i + 1..i + 4).and_then(octal3)
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Three octal digits as one byte, if they fit.
fn octal3(digits: &[u8]) -> Option<u8> {
    let mut v: u32 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        v = v * 8 + u32::from(d - b'0');
    }
    u8::try_from(v).ok()
}

/// Parses `/proc/self/mountinfo` text. Blank lines are skipped; unknown optional tags
/// (a later kernel may add some) are ignored.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountInfo>, MountInfoError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        if raw.trim().is_empty() {
            continue;
        }
        out.push(parse_mountinfo_line(line, raw)?);
    }
    Ok(out)
}

/// Parses one non-blank mountinfo line.
fn parse_mountinfo_line(line: usize, raw: &str) -> Result<MountInfo, MountInfoError> {
    let fields: Vec<&str> = raw.split_ascii_whitespace().collect();
    let sep = fields
        .iter()
        .position(|f| *f == "-")
        .ok_or(MountInfoError::NoSeparator { line })?;
    if sep < 6 {
        return Err(MountInfoError::TooFewFields { line, found: sep });
    }
    let tail = &fields[sep + 1..];
    if tail.len() != 3 {
        return Err(MountInfoError::BadTail {
            line,
            found: tail.len(),
        });
    }
    let number = |field: &'static str, value: &str| {
        value.parse::<u32>().map_err(|_| MountInfoError::BadNumber {
            line,
            field,
            value: value.to_owned(),
        })
    };
    let text = |field: &'static str, value: &str| {
        unescape(value).ok_or_else(|| MountInfoError::BadEscape {
            line,
            field,
            value: value.to_owned(),
        })
    };
    let id = number("mount id", fields[0])?;
    let parent = number("parent id", fields[1])?;
    let (major, minor) = fields[2]
        .split_once(':')
        .ok_or_else(|| MountInfoError::BadNumber {
            line,
            field: "major:minor",
            value: fields[2].to_owned(),
        })?;
    let major = number("major", major)?;
    let minor = number("minor", minor)?;
    let root = text("root", fields[3])?;
    let mount_point = text("mount point", fields[4])?;
    let mount_options = fields[5].split(',').map(str::to_owned).collect();
    let mut info = MountInfo {
        id,
        parent,
        major,
        minor,
        root,
        mount_point,
        mount_options,
        shared: None,
        master: None,
        propagate_from: None,
        unbindable: false,
        fstype: text("fstype", tail[0])?,
        source: text("source", tail[1])?,
        super_options: tail[2]
            .split(',')
            .map(|o| text("super options", o))
            .collect::<Result<_, _>>()?,
    };
    for &optional in &fields[6..sep] {
        let bad = || MountInfoError::BadOptional {
            line,
            value: optional.to_owned(),
        };
        if optional == "unbindable" {
            info.unbindable = true;
            continue;
        }
        let Some((tag, value)) = optional.split_once(':') else {
            continue;
        };
        let slot = match tag {
            "shared" => &mut info.shared,
            "master" => &mut info.master,
            "propagate_from" => &mut info.propagate_from,
            _ => continue,
        };
        *slot = Some(value.parse::<u32>().map_err(|_| bad())?);
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MountFlag as F;

    fn opts(list: &[&str]) -> Result<MountOptions, MountOptError> {
        let owned: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        parse_mount_options(&owned)
    }

    #[test]
    fn option_words_are_the_words_the_parser_knows() {
        for w in OPTION_WORDS {
            assert!(word(w).is_some(), "{w}");
        }
        // And no other bare flag word parses (checked on the words `word` matches).
        let known = [
            "defaults",
            "bind",
            "rbind",
            "ro",
            "runbindable",
            "nosymfollow",
        ];
        assert!(known.iter().all(|k| OPTION_WORDS.contains(k)));
    }

    #[test]
    fn separate_strings() {
        let o = opts(&["bind", "ro", "nosuid", "rprivate"]).unwrap();
        assert!(o.bind);
        assert!(!o.recursive);
        assert_eq!(o.flags, MountFlags::of(&[F::Ro, F::Nosuid]));
        assert!(o.clear.is_empty());
        assert_eq!(o.propagation, vec![(Propagation::Private, true)]);
        assert!(o.data.is_empty());
    }

    #[test]
    fn comma_joined_string_is_the_same() {
        assert_eq!(
            opts(&["bind,ro,nosuid,rprivate"]).unwrap(),
            opts(&["bind", "ro", "nosuid", "rprivate"]).unwrap()
        );
    }

    #[test]
    fn rbind_is_bind_and_recursive() {
        let o = opts(&["rbind"]).unwrap();
        assert!(o.bind && o.recursive);
        assert!(o.flags.is_empty());
    }

    #[test]
    fn runc_spec_devpts_options() {
        let o = opts(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ])
        .unwrap();
        assert_eq!(o.flags, MountFlags::of(&[F::Nosuid, F::Noexec]));
        assert_eq!(
            o.data,
            ["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
        );
        assert!(!o.bind);
    }

    #[test]
    fn clearing_words_clear_and_record() {
        let o = opts(&[
            "ro",
            "rw",
            "suid",
            "dev",
            "exec",
            "atime",
            "diratime",
            "norelatime",
            "nostrictatime",
            "async",
            "nolazytime",
            "nomand",
            "symfollow",
        ])
        .unwrap();
        assert!(o.flags.is_empty());
        assert_eq!(
            o.clear,
            MountFlags::of(&[
                F::Ro,
                F::Nosuid,
                F::Nodev,
                F::Noexec,
                F::Noatime,
                F::Nodiratime,
                F::Relatime,
                F::Strictatime,
                F::Sync,
                F::Lazytime,
                F::Mand,
                F::Nosymfollow,
            ])
        );
    }

    #[test]
    fn tmpcopyup_is_a_flag() {
        let o = opts(&["rw,nosuid", "tmpcopyup"]).unwrap();
        assert_eq!(o.flags, MountFlags::of(&[F::Nosuid, F::TmpCopyUp]));
        assert!(o.data.is_empty());
        assert_eq!(o.flags.to_string(), "nosuid,tmpcopyup");
        let json = serde_json::to_string(&o.flags).unwrap();
        assert_eq!(json, r#"["nosuid","tmpcopyup"]"#);
        assert_eq!(serde_json::from_str::<MountFlags>(&json).unwrap(), o.flags);
    }

    #[test]
    fn last_word_wins() {
        let o = opts(&["rw", "ro"]).unwrap();
        assert_eq!(o.flags, MountFlags::of(&[F::Ro]));
        assert!(o.clear.is_empty());
    }

    #[test]
    fn every_set_flag() {
        let o = opts(&[
            "sync",
            "dirsync",
            "mand",
            "noatime",
            "nodiratime",
            "relatime",
            "strictatime",
            "lazytime",
            "silent",
            "nosymfollow",
            "nodev",
        ])
        .unwrap();
        assert_eq!(o.flags.iter().count(), 11);
        assert!(o.flags.contains(F::Silent));
        let o = opts(&["silent", "loud"]).unwrap();
        assert_eq!(o.clear, MountFlags::of(&[F::Silent]));
    }

    #[test]
    fn defaults_and_empty_are_nothing() {
        assert_eq!(
            opts(&["defaults", "", "ro,,"]).unwrap(),
            opts(&["ro"]).unwrap()
        );
        assert_eq!(opts(&[]).unwrap(), MountOptions::default());
    }

    #[test]
    fn propagations_in_order() {
        let o = opts(&[
            "shared,rslave",
            "unbindable",
            "runbindable",
            "private",
            "rshared",
        ])
        .unwrap();
        assert_eq!(
            o.propagation,
            vec![
                (Propagation::Shared, false),
                (Propagation::Slave, true),
                (Propagation::Unbindable, false),
                (Propagation::Unbindable, true),
                (Propagation::Private, false),
                (Propagation::Shared, true),
            ]
        );
    }

    #[test]
    fn key_values_and_data_words_are_data() {
        let o = opts(&["mode=755", "size=65536k", "user_xattr", "acl", "x-gvfs=a=b"]).unwrap();
        assert_eq!(
            o.data,
            ["mode=755", "size=65536k", "user_xattr", "acl", "x-gvfs=a=b"]
        );
    }

    #[test]
    fn quoted_commas_stay_together() {
        let o = opts(&[r#"ro,context="system_u:object_r:x:s0:c1,c2",nosuid"#]).unwrap();
        assert_eq!(o.data, [r#"context="system_u:object_r:x:s0:c1,c2""#]);
        assert_eq!(o.flags, MountFlags::of(&[F::Ro, F::Nosuid]));
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let err = opts(&["ro", r#"context="a,b"#]).unwrap_err();
        assert_eq!(
            err,
            MountOptError::UnterminatedQuote {
                index: 1,
                option: r#"context="a,b"#.into()
            }
        );
        assert_eq!(err.index(), 1);
    }

    #[test]
    fn unknown_word_names_index_and_option() {
        let err = opts(&["ro", "foo"]).unwrap_err();
        assert_eq!(
            err,
            MountOptError::Unknown {
                index: 1,
                option: "foo".into()
            }
        );
        assert_eq!(err.to_string(), r#"unknown mount option "foo""#);
        let err = opts(&["ro,nosiud"]).unwrap_err();
        assert_eq!(err.index(), 0);
        assert_eq!(err.to_string(), r#"unknown mount option "nosiud""#);
    }

    #[test]
    fn empty_key_is_unknown() {
        let err = opts(&["=5"]).unwrap_err();
        assert_eq!(err.to_string(), r#"unknown mount option "=5""#);
    }

    #[test]
    fn recursive_attributes_are_unsupported() {
        let err = opts(&["rbind", "rro"]).unwrap_err();
        assert_eq!(err.index(), 1);
        assert_eq!(
            err.to_string(),
            r#"unsupported mount option "rro": recursive mount attributes are not supported"#
        );
        for o in ["rnosuid", "rnodev", "rnoexec", "idmap", "remount"] {
            assert!(
                matches!(opts(&[o]), Err(MountOptError::Unsupported { .. })),
                "{o}"
            );
        }
    }

    #[test]
    fn propagation_words() {
        assert_eq!(
            parse_propagation("rslave"),
            Some((Propagation::Slave, true))
        );
        assert_eq!(
            parse_propagation("private"),
            Some((Propagation::Private, false))
        );
        assert_eq!(parse_propagation("ro"), None);
        assert_eq!(parse_propagation("foo"), None);
    }

    const SAMPLE: &str = "\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
28 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
40 28 0:35 / /mnt/with\\040space\\011tab ro,nosuid shared:3 master:2 propagate_from:1 unbindable - fuse.sshfs user@host:/a\\134b rw,user_id=0

41 28 0:36 / /run/user/1000 rw,nosuid,nodev,relatime - tmpfs tmpfs rw,size=1620700k,mode=700
";

    #[test]
    fn mountinfo_sample() {
        let m = parse_mountinfo(SAMPLE).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(
            m[0],
            MountInfo {
                id: 22,
                parent: 28,
                major: 0,
                minor: 21,
                root: "/".into(),
                mount_point: "/sys".into(),
                mount_options: ["rw", "nosuid", "nodev", "noexec", "relatime"]
                    .map(String::from)
                    .to_vec(),
                shared: Some(7),
                master: None,
                propagate_from: None,
                unbindable: false,
                fstype: "sysfs".into(),
                source: "sysfs".into(),
                super_options: vec!["rw".into()],
            }
        );
        assert_eq!(
            m[0].mount_flags(),
            MountFlags::of(&[F::Nosuid, F::Nodev, F::Noexec, F::Relatime])
        );
        assert_eq!(m[2].root, "/mnt1");
        assert_eq!(m[2].master, Some(1));
        assert_eq!(m[2].shared, None);
        let odd = &m[3];
        assert_eq!(odd.mount_point, "/mnt/with space\ttab");
        assert_eq!(odd.source, "user@host:/a\\b");
        assert_eq!(odd.fstype, "fuse.sshfs");
        assert_eq!(
            (odd.shared, odd.master, odd.propagate_from, odd.unbindable),
            (Some(3), Some(2), Some(1), true)
        );
        assert_eq!(odd.mount_flags(), MountFlags::of(&[F::Ro, F::Nosuid]));
        assert_eq!(m[4].super_options, ["rw", "size=1620700k", "mode=700"]);
    }

    #[test]
    fn mountinfo_newline_escape_and_unknown_tags() {
        let m = parse_mountinfo("1 0 0:1 / /a\\012b rw future:9 - tmpfs none rw\n").unwrap();
        assert_eq!(m[0].mount_point, "/a\nb");
        assert_eq!(m[0].shared, None);
    }

    #[test]
    fn mountinfo_lone_backslash_kept() {
        let m = parse_mountinfo("1 0 0:1 / /a\\9 rw - tmpfs none rw\n").unwrap();
        assert_eq!(m[0].mount_point, "/a\\9");
    }

    #[test]
    fn mountinfo_errors_name_the_line() {
        let e = parse_mountinfo("\n1 0 0:1 / / rw tmpfs none rw\n").unwrap_err();
        assert_eq!(e, MountInfoError::NoSeparator { line: 2 });
        assert_eq!(e.to_string(), "mountinfo line 2: no \"-\" separator");

        let e = parse_mountinfo("1 0 0:1 / - tmpfs none rw").unwrap_err();
        assert_eq!(
            e.to_string(),
            "mountinfo line 1: expected at least 6 fields before \"-\", found 4"
        );

        let e = parse_mountinfo("1 0 0:1 / / rw - tmpfs none").unwrap_err();
        assert_eq!(
            e.to_string(),
            "mountinfo line 1: expected 3 fields after \"-\", found 2"
        );

        let e = parse_mountinfo("x 0 0:1 / / rw - tmpfs none rw").unwrap_err();
        assert_eq!(e.to_string(), "mountinfo line 1: bad mount id \"x\"");

        let e = parse_mountinfo("1 0 01 / / rw - tmpfs none rw").unwrap_err();
        assert_eq!(e.to_string(), "mountinfo line 1: bad major:minor \"01\"");

        let e = parse_mountinfo("1 0 0:1 / / rw shared:x - tmpfs none rw").unwrap_err();
        assert_eq!(
            e.to_string(),
            "mountinfo line 1: bad optional field \"shared:x\""
        );

        let e = parse_mountinfo("1 0 0:1 / /\\377 rw - tmpfs none rw").unwrap_err();
        assert_eq!(
            e.to_string(),
            "mountinfo line 1: mount point \"/\\\\377\" is not UTF-8 once unescaped"
        );
    }

    #[test]
    fn mountinfo_empty_text() {
        assert_eq!(parse_mountinfo("").unwrap(), vec![]);
        assert_eq!(parse_mountinfo("\n \n").unwrap(), vec![]);
    }

    proptest::proptest! {
        #[test]
        fn mount_options_never_panic(list in proptest::collection::vec(".{0,20}", 0..6)) {
            let _ = parse_mount_options(&list);
        }

        #[test]
        fn mountinfo_never_panics(text in "[0-9a-z:/ \\\\\\-\n,]{0,200}") {
            let _ = parse_mountinfo(&text);
        }
    }
}
