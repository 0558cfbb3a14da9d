//! The value types that ops carry: paths, namespaces, flags, capability sets, handles.
//!
//! Every type here is plain data with a stable text form (used by `--dry-run` and the goldens)
//! and a stable JSON form (used by `--dry-run=json`). None of them names a nix or libc type:
//! backend-linux owns the one translation to syscall arguments.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Declares a handle newtype: a symbolic name for a value that exists only at run time.
macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $sigil:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u16);

        impl $name {
            /// The index of this handle in [`crate::plan::Plan::names`].
            pub fn index(self) -> usize {
                usize::from(self.0)
            }
        }
    };
}

handle!(
    /// A process id known only once [`crate::plan::Op::Spawn`] has run (`$init.pid`).
    PidRef,
    "pid"
);
handle!(
    /// A file descriptor known only at run time: a namespace fd, a pty master.
    FdRef,
    "fd"
);
handle!(
    /// A network interface index known only once the link exists.
    IfRef,
    "if"
);
handle!(
    /// What an op actually changed, known only at run time: the directories `mkdir -p` made,
    /// the controllers a `cgroup.subtree_control` write enabled. Its undo reverts exactly that.
    MadeRef,
    "made"
);

/// Any handle, for checking and naming.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnyRef {
    /// A process id.
    Pid(PidRef),
    /// A file descriptor.
    Fd(FdRef),
    /// An interface index.
    If(IfRef),
    /// A record of changes.
    Made(MadeRef),
}

impl AnyRef {
    /// The index of the handle in [`crate::plan::Plan::names`].
    pub fn index(self) -> usize {
        match self {
            AnyRef::Pid(r) => r.index(),
            AnyRef::Fd(r) => r.index(),
            AnyRef::If(r) => r.index(),
            AnyRef::Made(r) => r.index(),
        }
    }
}

/// An absolute path on the host, in the mount namespace of the step's actor.
///
/// Shared text (`Arc<str>`): a plan names the same few paths (the rootfs, a cgroup mount)
/// in many of its steps, and a clone is then a reference count, not an allocation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPath(Arc<str>);

impl Serialize for HostPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HostPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(HostPath(String::deserialize(d)?.into()))
    }
}

impl HostPath {
    /// Wraps a host path; the caller vouches that it is absolute.
    pub fn new(path: impl Into<String>) -> Self {
        HostPath(path.into().into())
    }
    /// Joins a relative component (no leading `/` is added twice).
    pub fn join(&self, rel: &str) -> HostPath {
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() {
            return self.clone();
        }
        let mut out = String::with_capacity(self.0.len() + 1 + rel.len());
        out.push_str(&self.0);
        if !self.0.ends_with('/') {
            out.push('/');
        }
        out.push_str(rel);
        HostPath(out.into())
    }
    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute, normalised path inside the container: it starts with `/`, has no `.` or `..`
/// components, no empty components and no trailing `/` (except the root itself).
///
/// Only [`ContainerPath::parse`] builds one, so holding a `ContainerPath` proves it cannot
/// name anything outside the container's root by its text alone (symlinks are the backend's
/// business: it resolves inside the root).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerPath(Arc<str>);

impl Serialize for ContainerPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Why a text is not a [`ContainerPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerPathError {
    /// The path does not start with `/`.
    #[error("path {0:?} is not absolute")]
    Relative(String),
    /// The path has a `..` component.
    #[error("path {0:?} contains \"..\"")]
    DotDot(String),
    /// The path has a NUL byte.
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
}

impl ContainerPath {
    /// The container's root, `/`.
    pub fn root() -> Self {
        ContainerPath("/".into())
    }

    /// Parses an absolute container path, normalising `//` and `.`; `..` is refused outright
    /// (runc would clean it lexically, which hides a config that tries to escape).
    pub fn parse(text: &str) -> Result<Self, ContainerPathError> {
        if text.contains('\0') {
            return Err(ContainerPathError::Nul(text.to_owned()));
        }
        if !text.starts_with('/') {
            return Err(ContainerPathError::Relative(text.to_owned()));
        }
        let mut out = String::with_capacity(text.len());
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(ContainerPathError::DotDot(text.to_owned())),
                p => {
                    out.push('/');
                    out.push_str(p);
                }
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        Ok(ContainerPath(out.into()))
    }

    /// The path as text, starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Appends one or more components given as an already-valid relative path.
    pub fn join(&self, rel: &str) -> Result<Self, ContainerPathError> {
        Self::parse(&format!("{}/{}", self.0, rel))
    }

    /// The components, outermost first (`/a/b` gives `a`, `b`).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The parent directory (`/` is its own parent).
    pub fn parent(&self) -> ContainerPath {
        match self.0.rfind('/') {
            Some(0) | None => ContainerPath::root(),
            Some(i) => ContainerPath(self.0[..i].into()),
        }
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &ContainerPath) -> bool {
        &*other.0 == "/"
            || self.0 == other.0
            || (self.0.starts_with(&*other.0)
                && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

impl<'de> Deserialize<'de> for ContainerPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ContainerPath::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ContainerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a filesystem op acts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// An absolute host path (in the actor's mount namespace), taken as it is.
    Host(HostPath),
    /// A path inside a root that is not yet `/`: the backend resolves `path` under `root`
    /// without ever leaving it (symlinks are resolved as if `root` were `/`).
    /// Printed `[ROOT]PATH`.
    InRoot {
        /// The host path of the container's root filesystem.
        root: HostPath,
        /// The path inside it.
        path: ContainerPath,
    },
    /// A path in the container once its root is `/` (after pivot_root or chroot).
    Container(ContainerPath),
}

impl Location {
    /// The container path this location names, if it names one.
    pub fn container_path(&self) -> Option<&ContainerPath> {
        match self {
            Location::Host(_) => None,
            Location::InRoot { path, .. } | Location::Container(path) => Some(path),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Host(p) => write!(f, "{p}"),
            Location::InRoot { root, path } => write!(f, "[{root}]{path}"),
            Location::Container(p) => write!(f, "{p}"),
        }
    }
}

/// A Linux namespace kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    /// CLONE_NEWUSER. Ordered first: it must be entered before the others.
    User,
    /// CLONE_NEWPID.
    Pid,
    /// CLONE_NEWNS.
    Mount,
    /// CLONE_NEWNET.
    Network,
    /// CLONE_NEWUTS.
    Uts,
    /// CLONE_NEWIPC.
    Ipc,
    /// CLONE_NEWCGROUP.
    Cgroup,
    /// CLONE_NEWTIME.
    Time,
}

impl Namespace {
    /// Every namespace kind, in entry order.
    pub const ALL: [Namespace; 8] = [
        Namespace::User,
        Namespace::Pid,
        Namespace::Mount,
        Namespace::Network,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Cgroup,
        Namespace::Time,
    ];

    /// The short name used in text (`mount`, `net`, ...) and in `/proc/PID/ns/NAME`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Pid => "pid",
            Namespace::Mount => "mnt",
            Namespace::Network => "net",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Cgroup => "cgroup",
            Namespace::Time => "time",
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.proc_name())
    }
}

/// A set of namespace kinds, ordered as [`Namespace::ALL`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NamespaceSet(pub BTreeSet<Namespace>);

impl NamespaceSet {
    /// True when no namespace is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// True when `ns` is in the set.
    pub fn contains(&self, ns: Namespace) -> bool {
        self.0.contains(&ns)
    }
}

impl FromIterator<Namespace> for NamespaceSet {
    fn from_iter<T: IntoIterator<Item = Namespace>>(iter: T) -> Self {
        NamespaceSet(iter.into_iter().collect())
    }
}

impl fmt::Display for NamespaceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.0.iter().map(|n| n.proc_name()).collect();
        f.write_str(&names.join(","))
    }
}

/// Where `setns` finds the namespace to join.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NsSource {
    /// A path such as `/var/run/netns/x` or `/proc/123/ns/net`.
    Path(HostPath),
    /// An fd opened earlier by [`crate::plan::Op::OpenNs`].
    Fd(FdRef),
}

/// A mount flag that `mount(2)` takes (propagation is separate: [`Propagation`]), or
/// runc's `tmpcopyup` extension, which a backend carries out itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountFlag {
    /// MS_BIND.
    Bind,
    /// MS_REC (with bind: rbind).
    Rec,
    /// MS_RDONLY.
    Ro,
    /// MS_NOSUID.
    Nosuid,
    /// MS_NODEV.
    Nodev,
    /// MS_NOEXEC.
    Noexec,
    /// MS_SYNCHRONOUS.
    Sync,
    /// MS_DIRSYNC.
    Dirsync,
    /// MS_MANDLOCK.
    Mand,
    /// MS_NOATIME.
    Noatime,
    /// MS_NODIRATIME.
    Nodiratime,
    /// MS_RELATIME.
    Relatime,
    /// MS_STRICTATIME.
    Strictatime,
    /// MS_LAZYTIME.
    Lazytime,
    /// MS_SILENT.
    Silent,
    /// MS_NOSYMFOLLOW.
    Nosymfollow,
    /// runc's `tmpcopyup`, not a `mount(2)` flag: a new tmpfs gets a copy of what the
    /// directory it is mounted on held (files, directories, symlinks, with their modes and
    /// owners) and that directory's mode. No effect on other mounts (as in runc), nor on a
    /// remount. podman asks for it on `--tmpfs` and `--read-only`'s `/tmp`, `/run`.
    #[serde(rename = "tmpcopyup")]
    TmpCopyUp,
}

impl MountFlag {
    /// The fstab name of the flag.
    pub fn name(self) -> &'static str {
        match self {
            MountFlag::Bind => "bind",
            MountFlag::Rec => "rec",
            MountFlag::Ro => "ro",
            MountFlag::Nosuid => "nosuid",
            MountFlag::Nodev => "nodev",
            MountFlag::Noexec => "noexec",
            MountFlag::Sync => "sync",
            MountFlag::Dirsync => "dirsync",
            MountFlag::Mand => "mand",
            MountFlag::Noatime => "noatime",
            MountFlag::Nodiratime => "nodiratime",
            MountFlag::Relatime => "relatime",
            MountFlag::Strictatime => "strictatime",
            MountFlag::Lazytime => "lazytime",
            MountFlag::Silent => "silent",
            MountFlag::Nosymfollow => "nosymfollow",
            MountFlag::TmpCopyUp => "tmpcopyup",
        }
    }
}

/// A set of mount flags, printed fstab-style (`bind,rec,ro`), `defaults` when empty.
///
/// A bit mask, as the kernel keeps them: flags are on every mount op of every plan, and a
/// set that allocates would cost more than the rest of the op. Its JSON form is the list
/// of flag names, in [`MountFlag`]'s order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MountFlags(u32);

impl MountFlags {
    /// Every flag, in order.
    const ALL: [MountFlag; 17] = [
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
        MountFlag::TmpCopyUp,
    ];

    fn bit(flag: MountFlag) -> u32 {
        1 << (flag as u32)
    }
    /// Builds a set from flags.
    pub fn of(flags: &[MountFlag]) -> Self {
        flags.iter().copied().collect()
    }
    /// True when `flag` is set.
    pub fn contains(&self, flag: MountFlag) -> bool {
        self.0 & Self::bit(flag) != 0
    }
    /// Sets `flag`.
    pub fn insert(&mut self, flag: MountFlag) {
        self.0 |= Self::bit(flag);
    }
    /// Clears `flag`.
    pub fn remove(&mut self, flag: MountFlag) {
        self.0 &= !Self::bit(flag);
    }
    /// True when no flag is set.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    /// The flags set, in [`MountFlag`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = MountFlag> + '_ {
        Self::ALL.into_iter().filter(|f| self.contains(*f))
    }
}

impl FromIterator<MountFlag> for MountFlags {
    fn from_iter<T: IntoIterator<Item = MountFlag>>(iter: T) -> Self {
        let mut s = MountFlags::default();
        for f in iter {
            s.insert(f);
        }
        s
    }
}

impl Serialize for MountFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for MountFlags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<MountFlag>::deserialize(d)?.into_iter().collect())
    }
}

impl fmt::Display for MountFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("defaults");
        }
        for (i, flag) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(flag.name())?;
        }
        Ok(())
    }
}

/// Mount propagation type (`mount --make-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Propagation {
    /// MS_PRIVATE.
    Private,
    /// MS_SHARED.
    Shared,
    /// MS_SLAVE.
    Slave,
    /// MS_UNBINDABLE.
    Unbindable,
}

impl fmt::Display for Propagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Propagation::Private => "private",
            Propagation::Shared => "shared",
            Propagation::Slave => "slave",
            Propagation::Unbindable => "unbindable",
        })
    }
}

/// What a mount attaches: a filesystem type and its source.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountSource {
    /// A bind mount of a host path (recursive when the flags have `rec`).
    Bind(HostPath),
    /// A bind mount of a path inside the same root (e.g. a /dev node onto /dev/console).
    BindLocation(Location),
    /// A new filesystem instance: `fstype` with a device or label `source`
    /// (`proc`, `sysfs`, `tmpfs`, `devpts`, `mqueue`, `cgroup`, `cgroup2`, `overlay`, ...).
    Fs {
        /// Filesystem type, as `mount -t` takes it.
        fstype: String,
        /// The source string (`proc`, `tmpfs`, `overlay`, a device path).
        source: String,
    },
}

impl fmt::Display for MountSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountSource::Bind(p) => write!(f, "bind {p}"),
            MountSource::BindLocation(l) => write!(f, "bind {l}"),
            MountSource::Fs { fstype, source } => write!(f, "-t {fstype} {source}"),
        }
    }
}

/// One `mount(2)` call.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MountOp {
    /// What is mounted.
    pub source: MountSource,
    /// Where it is mounted.
    pub target: Location,
    /// Flags for the initial mount. For bind mounts, flags other than `bind`/`rec` need a
    /// remount to take effect; the planner plans that remount as its own op.
    pub flags: MountFlags,
    /// Filesystem-specific data (`mode=755,size=65536k`), empty for none.
    pub data: String,
}

/// Which id map file an op writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdMapKind {
    /// `/proc/PID/uid_map`.
    Uid,
    /// `/proc/PID/gid_map`.
    Gid,
}

/// One line of a uid or gid map: `container_id host_id size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdMapping {
    /// First id inside the namespace.
    pub container_id: u32,
    /// First id outside it.
    pub host_id: u32,
    /// How many ids.
    pub size: u32,
}

/// A device node kind for `mknod(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// Character device (`c`, also `u`).
    Char,
    /// Block device (`b`).
    Block,
    /// FIFO (`p`).
    Fifo,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Char => "c",
            DeviceKind::Block => "b",
            DeviceKind::Fifo => "p",
        })
    }
}

/// A capability number (`CAP_CHOWN` is 0). Only the parser builds one, from a known name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capability(u8);

/// Capability names indexed by number (linux/capability.h).
pub const CAPABILITY_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

impl Capability {
    /// Looks a capability up by name, with or without the `CAP_` prefix, any case.
    pub fn from_name(name: &str) -> Option<Capability> {
        let upper = name.to_ascii_uppercase();
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        CAPABILITY_NAMES
            .iter()
            .position(|n| *n == full)
            .and_then(|i| u8::try_from(i).ok())
            .map(Capability)
    }
    /// The kernel's number for this capability.
    pub fn number(self) -> u8 {
        self.0
    }
    /// The canonical name (`CAP_CHOWN`).
    pub fn name(self) -> &'static str {
        CAPABILITY_NAMES[usize::from(self.0)]
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of capabilities as the kernel keeps it: a 64-bit mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CapSet(pub u64);

impl CapSet {
    /// Adds a capability.
    pub fn insert(&mut self, cap: Capability) {
        self.0 |= 1u64 << cap.0;
    }
    /// True when `cap` is in the set.
    pub fn contains(self, cap: Capability) -> bool {
        self.0 & (1u64 << cap.0) != 0
    }
    /// The capabilities in the set, lowest number first.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        (0u8..64)
            .filter(move |i| self.0 & (1u64 << i) != 0)
            .map(Capability)
    }
    /// True when every capability in `self` is in `other`.
    pub fn is_subset(self, other: CapSet) -> bool {
        self.0 & !other.0 == 0
    }
}

impl FromIterator<Capability> for CapSet {
    fn from_iter<T: IntoIterator<Item = Capability>>(iter: T) -> Self {
        let mut s = CapSet::default();
        for c in iter {
            s.insert(c);
        }
        s
    }
}

impl fmt::Display for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        let names: Vec<&str> = self
            .iter()
            .map(|c| c.name().trim_start_matches("CAP_"))
            .collect();
        f.write_str(&names.join(",").to_ascii_lowercase())
    }
}

impl Serialize for CapSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let names: Vec<&str> = self.iter().map(Capability::name).collect();
        names.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CapSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names
            .iter()
            .map(|n| {
                Capability::from_name(n)
                    .ok_or_else(|| serde::de::Error::custom(format!("unknown capability {n:?}")))
            })
            .collect()
    }
}

/// The five capability sets of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CapSets {
    /// The bounding set.
    pub bounding: CapSet,
    /// The effective set.
    pub effective: CapSet,
    /// The inheritable set.
    pub inheritable: CapSet,
    /// The permitted set.
    pub permitted: CapSet,
    /// The ambient set.
    pub ambient: CapSet,
}

/// A resource limit kind (`RLIMIT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Rlimit {
    /// RLIMIT_AS.
    RlimitAs,
    /// RLIMIT_CORE.
    RlimitCore,
    /// RLIMIT_CPU.
    RlimitCpu,
    /// RLIMIT_DATA.
    RlimitData,
    /// RLIMIT_FSIZE.
    RlimitFsize,
    /// RLIMIT_LOCKS.
    RlimitLocks,
    /// RLIMIT_MEMLOCK.
    RlimitMemlock,
    /// RLIMIT_MSGQUEUE.
    RlimitMsgqueue,
    /// RLIMIT_NICE.
    RlimitNice,
    /// RLIMIT_NOFILE.
    RlimitNofile,
    /// RLIMIT_NPROC.
    RlimitNproc,
    /// RLIMIT_RSS.
    RlimitRss,
    /// RLIMIT_RTPRIO.
    RlimitRtprio,
    /// RLIMIT_RTTIME.
    RlimitRttime,
    /// RLIMIT_SIGPENDING.
    RlimitSigpending,
    /// RLIMIT_STACK.
    RlimitStack,
}

impl Rlimit {
    /// Every kind, with its OCI name.
    pub const ALL: [(Rlimit, &'static str); 16] = [
        (Rlimit::RlimitAs, "RLIMIT_AS"),
        (Rlimit::RlimitCore, "RLIMIT_CORE"),
        (Rlimit::RlimitCpu, "RLIMIT_CPU"),
        (Rlimit::RlimitData, "RLIMIT_DATA"),
        (Rlimit::RlimitFsize, "RLIMIT_FSIZE"),
        (Rlimit::RlimitLocks, "RLIMIT_LOCKS"),
        (Rlimit::RlimitMemlock, "RLIMIT_MEMLOCK"),
        (Rlimit::RlimitMsgqueue, "RLIMIT_MSGQUEUE"),
        (Rlimit::RlimitNice, "RLIMIT_NICE"),
        (Rlimit::RlimitNofile, "RLIMIT_NOFILE"),
        (Rlimit::RlimitNproc, "RLIMIT_NPROC"),
        (Rlimit::RlimitRss, "RLIMIT_RSS"),
        (Rlimit::RlimitRtprio, "RLIMIT_RTPRIO"),
        (Rlimit::RlimitRttime, "RLIMIT_RTTIME"),
        (Rlimit::RlimitSigpending, "RLIMIT_SIGPENDING"),
        (Rlimit::RlimitStack, "RLIMIT_STACK"),
    ];
    /// Looks a kind up by its OCI name (`RLIMIT_NOFILE`).
    pub fn from_name(name: &str) -> Option<Rlimit> {
        Rlimit::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(r, _)| *r)
    }
    /// The OCI name.
    pub fn name(self) -> &'static str {
        Rlimit::ALL
            .iter()
            .find(|(r, _)| *r == self)
            .map(|(_, n)| *n)
            .unwrap_or("RLIMIT_?")
    }
}

/// Where a host and init process meet. A `signal P` by one actor is always followed by a
/// `wait P` of the other: it is the only way control passes between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncPoint {
    /// runtime -> init: id maps written and cgroups joined; init may go on.
    Configured,
    /// init -> runtime: every namespace exists; runtime hooks may run.
    NamespacesReady,
    /// runtime -> init: the prestart and createRuntime hooks ran.
    RuntimeHooksDone,
    /// init -> runtime: the container is set up and waits at the start barrier.
    Created,
    /// runtime -> init: the start barrier. `create` stops before the step that signals it;
    /// `start` carries it out.
    Start,
}

impl fmt::Display for SyncPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncPoint::Configured => "configured",
            SyncPoint::NamespacesReady => "namespaces-ready",
            SyncPoint::RuntimeHooksDone => "runtime-hooks-done",
            SyncPoint::Created => "created",
            SyncPoint::Start => "start",
        })
    }
}

/// Which OCI hook list a hook comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HookKind {
    /// `hooks.prestart` (deprecated; runtime namespace, before pivot).
    Prestart,
    /// `hooks.createRuntime` (runtime namespace, before pivot).
    CreateRuntime,
    /// `hooks.createContainer` (container namespace, before pivot).
    CreateContainer,
    /// `hooks.startContainer` (container namespace, just before exec).
    StartContainer,
    /// `hooks.poststart` (runtime namespace, after exec, before `start` returns).
    Poststart,
    /// `hooks.poststop` (runtime namespace, on delete).
    Poststop,
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        })
    }
}

/// One hook to run: an executable on the host (or in the container for container hooks).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HookSpec {
    /// Absolute path of the executable.
    pub path: String,
    /// argv, including argv\[0\].
    pub args: Vec<String>,
    /// Environment, `K=V`.
    pub env: Vec<String>,
    /// Seconds before the hook is killed and counts as failed.
    pub timeout: Option<u32>,
}

/// A cgroup directory: the hierarchy's mount point on the host and the path below it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CgroupPath {
    /// The mount point of the hierarchy (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup`).
    pub mount: HostPath,
    /// The path below it, without a leading `/` (`berth/c1`); empty for the root.
    pub path: String,
}

impl CgroupPath {
    /// The directory on the host.
    pub fn dir(&self) -> HostPath {
        self.mount.join(&self.path)
    }
}

impl fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dir())
    }
}

/// One device cgroup rule (v1 `devices.allow`/`devices.deny` line; v2 eBPF program entry).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceRule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// `a` (all), `c` or `b`.
    pub kind: char,
    /// Major number; `None` is `*`.
    pub major: Option<i64>,
    /// Minor number; `None` is `*`.
    pub minor: Option<i64>,
    /// Access letters out of `rwm`.
    pub access: String,
}

impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |v: Option<i64>| v.map_or_else(|| "*".to_owned(), |v| v.to_string());
        write!(
            f,
            "{} {} {}:{} {}",
            if self.allow { "allow" } else { "deny" },
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

/// A seccomp action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeccompAction {
    /// SCMP_ACT_KILL / KILL_THREAD.
    KillThread,
    /// SCMP_ACT_KILL_PROCESS.
    KillProcess,
    /// SCMP_ACT_TRAP.
    Trap,
    /// SCMP_ACT_ERRNO(n).
    Errno(u32),
    /// SCMP_ACT_TRACE(n).
    Trace(u32),
    /// SCMP_ACT_ALLOW.
    Allow,
    /// SCMP_ACT_LOG.
    Log,
    /// SCMP_ACT_NOTIFY.
    Notify,
}

impl fmt::Display for SeccompAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeccompAction::KillThread => f.write_str("kill"),
            SeccompAction::KillProcess => f.write_str("kill-process"),
            SeccompAction::Trap => f.write_str("trap"),
            SeccompAction::Errno(n) => write!(f, "errno({n})"),
            SeccompAction::Trace(n) => write!(f, "trace({n})"),
            SeccompAction::Allow => f.write_str("allow"),
            SeccompAction::Log => f.write_str("log"),
            SeccompAction::Notify => f.write_str("notify"),
        }
    }
}

/// A comparison in a seccomp argument condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeccompCmp {
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `==`.
    Eq,
    /// `>=`.
    Ge,
    /// `>`.
    Gt,
    /// `(arg & value) == value_two`.
    MaskedEq,
}

/// A condition on one syscall argument.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SeccompArg {
    /// Argument index, 0..6.
    pub index: u8,
    /// The value compared.
    pub value: u64,
    /// The second value (mask result for `masked_eq`).
    pub value_two: u64,
    /// The comparison.
    pub op: SeccompCmp,
}

/// A rule: these syscalls (with these argument conditions) take this action.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SeccompRule {
    /// Syscall names.
    pub names: Vec<String>,
    /// The action.
    pub action: SeccompAction,
    /// Conditions, all of which must hold.
    pub args: Vec<SeccompArg>,
}

/// A whole seccomp filter, as the spec describes it; the backend compiles it to BPF.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SeccompProfile {
    /// The action for syscalls no rule matches.
    pub default_action: SeccompAction,
    /// Architectures (`SCMP_ARCH_X86_64`, ...).
    pub architectures: Vec<String>,
    /// Filter flags (`SECCOMP_FILTER_FLAG_LOG`, ...).
    pub flags: Vec<String>,
    /// The rules, in order.
    pub rules: Vec<SeccompRule>,
    /// The unix socket a `notify` action's listener fd is sent to.
    pub listener_path: Option<String>,
}

/// An IP network in CIDR form (`10.88.0.2/16`), kept as text plus its parsed parts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IpNet {
    /// The address (`10.88.0.2`, `fd00::2`).
    pub addr: std::net::IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Which network namespace a netlink op talks to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetnsRef {
    /// The runtime's own (the host's).
    Host,
    /// A namespace file (`/run/berth/netns/SANDBOX`).
    Path(HostPath),
    /// An fd opened by [`crate::plan::Op::OpenNs`].
    Fd(FdRef),
}

/// A link to create, in rtnetlink's terms.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// A bridge.
    Bridge,
    /// A veth pair; the peer is made in `peer_netns` under `peer_name`.
    Veth {
        /// The peer's name.
        peer_name: String,
        /// Where the peer is made.
        peer_netns: NetnsRef,
    },
    /// A dummy interface.
    Dummy,
}

/// A link to create.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinkSpec {
    /// The interface name.
    pub name: String,
    /// What kind of link.
    pub kind: LinkKind,
    /// MTU, if not the default.
    pub mtu: Option<u32>,
    /// MAC address `aa:bb:..`, if not random.
    pub mac: Option<String>,
}
