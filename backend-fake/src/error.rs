//! What the fake host refuses, and why.
//!
//! Every variant names a step that a real Linux host would refuse too (or, for
//! [`FakeError::Injected`], a failure a test asked for), with the offending value, so a
//! golden test that trips over one reads like the kernel's answer.

use berth_core::plan::{HookKind, Namespace, SyncPoint};

/// Why the fake host refused a step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FakeError {
    /// The test asked for this call of `apply` to fail ([`crate::FakeHost::failing_at`]).
    #[error("injected failure at call {call}")]
    Injected {
        /// The call's number, counting from 0.
        call: usize,
    },
    /// A handle is read before any step bound it.
    #[error("${name} used before it is bound")]
    Unbound {
        /// The handle's name.
        name: String,
    },
    /// A handle holds a value of another kind than the op needs.
    #[error("${name} is not {expected}")]
    WrongBinding {
        /// The handle's name.
        name: String,
        /// What the op needs.
        expected: &'static str,
    },
    /// An init step while no spawned process is alive.
    #[error("init acts before spawn: no live init process")]
    NoInit,
    /// An init step after init's exec.
    #[error("init (pid {pid}) acts after exec")]
    AfterExec {
        /// The init process.
        pid: u32,
    },
    /// Exec before init passed `wait start`.
    #[error("exec before the start barrier")]
    ExecBeforeStart,
    /// Exec by the runtime.
    #[error("exec by the runtime would replace berth itself")]
    RuntimeExec,
    /// The executable is not in the container.
    #[error("exec: {name:?}: executable file not found")]
    ExecNotFound {
        /// `argv[0]`.
        name: String,
    },
    /// An op names a process that is not alive.
    #[error("{op}: process {pid} is not alive")]
    NoProcess {
        /// The op.
        op: &'static str,
        /// The pid.
        pid: u32,
    },
    /// A signal with nobody to receive it.
    #[error("signal {point}: no init process to signal")]
    NoPeer {
        /// The sync point.
        point: SyncPoint,
    },
    /// A wait for a sync point the other side never signalled.
    #[error("wait {point}: never signalled")]
    NotSignalled {
        /// The sync point.
        point: SyncPoint,
    },
    /// A path that must exist does not.
    #[error("{op}: {path} does not exist")]
    Missing {
        /// The op.
        op: &'static str,
        /// The path.
        path: String,
    },
    /// A mount target that does not exist.
    #[error("mount target {target} does not exist")]
    MountTargetMissing {
        /// The target as the plan names it.
        target: String,
    },
    /// A path that must not exist does.
    #[error("{op}: {path} exists")]
    Exists {
        /// The op.
        op: &'static str,
        /// The path.
        path: String,
    },
    /// `state-create` of a container id that is taken.
    #[error("state dir {dir} exists")]
    StateExists {
        /// The state directory.
        dir: String,
    },
    /// A path component or target that must be a directory is not.
    #[error("{op}: {path} is not a directory")]
    NotDir {
        /// The op.
        op: &'static str,
        /// The path.
        path: String,
    },
    /// A path that must not be a directory is one.
    #[error("{op}: {path} is a directory")]
    IsDir {
        /// The op.
        op: &'static str,
        /// The path.
        path: String,
    },
    /// A directory to remove still has entries.
    #[error("{op}: {path} is not empty")]
    NotEmpty {
        /// The op.
        op: &'static str,
        /// The path.
        path: String,
    },
    /// EBUSY: something still uses the path.
    #[error("{op}: {path} is busy: {why}")]
    Busy {
        /// The op.
        op: &'static str,
        /// The path.
        path: String,
        /// What uses it.
        why: String,
    },
    /// EROFS.
    #[error("{op}: {path} is on a read-only mount")]
    ReadOnly {
        /// The op.
        op: &'static str,
        /// The path.
        path: String,
    },
    /// A node cannot be made in this kind of filesystem (proc, sysfs, cgroup, ...).
    #[error("{op}: cannot create {path} in a {fstype} filesystem")]
    NotCreatable {
        /// The op.
        op: &'static str,
        /// The path.
        path: String,
        /// The filesystem type there.
        fstype: String,
    },
    /// ELOOP.
    #[error("too many levels of symbolic links at {path}")]
    Loop {
        /// Where resolution gave up.
        path: String,
    },
    /// An op that needs a mount point got another path.
    #[error("{op}: {path} is not a mount point")]
    NotMountPoint {
        /// The op.
        op: &'static str,
        /// The path.
        path: String,
    },
    /// EPERM for want of a capability over a namespace.
    #[error("{op}: operation not permitted: needs {cap} over {ns}")]
    NoCapability {
        /// The op.
        op: &'static str,
        /// The capability needed.
        cap: &'static str,
        /// The namespace it is needed over (`net namespace 12`).
        ns: String,
    },
    /// EPERM for another reason.
    #[error("{op}: operation not permitted: {why}")]
    NotPermitted {
        /// The op.
        op: &'static str,
        /// Why.
        why: String,
    },
    /// `adopt` found another process under the recorded pid (the pid was reused).
    #[error(
        "adopt: process {pid} is not the recorded one (started at {found}, recorded {recorded})"
    )]
    NotThatProcess {
        /// The pid.
        pid: u32,
        /// The recorded start time.
        recorded: u64,
        /// The start time of the process that has the pid now.
        found: u64,
    },
    /// EINVAL: an argument the kernel rejects.
    #[error("{op}: invalid argument: {why}")]
    Invalid {
        /// The op.
        op: &'static str,
        /// What is wrong.
        why: String,
    },
    /// `setns` by a path that is no namespace file.
    #[error("setns: no namespace at {path}")]
    NoNamespace {
        /// The path.
        path: String,
    },
    /// `send-fd` over an fd that is not a connected socket.
    #[error("send-fd: {name} is not a connected socket")]
    NotASocket {
        /// The handle's name.
        name: String,
    },
    /// A namespace of another kind than asked for.
    #[error("{op}: {path} is not a {wanted} namespace")]
    NamespaceKind {
        /// The op.
        op: &'static str,
        /// Where the namespace came from.
        path: String,
        /// The kind asked for.
        wanted: Namespace,
    },
    /// A namespace that no process or file keeps alive any more.
    #[error("{op}: {what} is gone")]
    NamespaceGone {
        /// The op.
        op: &'static str,
        /// The namespace (`net namespace 12`).
        what: String,
    },
    /// A namespace kind the host's kernel does not offer.
    #[error("the kernel has no {ns} namespace")]
    NamespaceUnsupported {
        /// The kind.
        ns: Namespace,
    },
    /// A mount whose parent is shared with another mount namespace: it would propagate.
    #[error(
        "{op} {target}: the parent mount {parent} is shared with mount namespace {ns}; \
         make it private or slave first"
    )]
    Propagates {
        /// The op.
        op: &'static str,
        /// The new mount's target.
        target: String,
        /// The shared parent mount's target.
        parent: String,
        /// The other mount namespace.
        ns: u32,
    },
    /// pivot_root or a move from a shared mount (EINVAL).
    #[error("{op}: {path} is a shared mount")]
    SharedMount {
        /// The op.
        op: &'static str,
        /// The shared mount's target.
        path: String,
    },
    /// A root switch in the host's own mount namespace.
    #[error("{op}: refusing to switch the root of the host's mount namespace")]
    HostRootSwitch {
        /// The op.
        op: &'static str,
    },
    /// A bind mount between a directory and a non-directory.
    #[error("bind {from} onto {target}: one is a directory and the other is not")]
    BindKind {
        /// The source.
        from: String,
        /// The target.
        target: String,
    },
    /// A filesystem mounted onto a non-directory.
    #[error("mount -t {fstype} onto {target}: not a directory")]
    FsOnFile {
        /// The filesystem type.
        fstype: String,
        /// The target.
        target: String,
    },
    /// A cgroup mount for which the host has no hierarchy.
    #[error("mount -t {fstype} data={data:?}: no such cgroup hierarchy on this host")]
    NoHierarchy {
        /// `cgroup` or `cgroup2`.
        fstype: String,
        /// The mount data naming the controllers.
        data: String,
    },
    /// A cgroup op on a path outside any cgroup filesystem.
    #[error("{op}: {path} is not in a cgroup hierarchy")]
    NotCgroup {
        /// The op.
        op: &'static str,
        /// The path.
        path: String,
    },
    /// A cgroup directory that does not exist.
    #[error("{op}: cgroup {path} does not exist")]
    NoCgroup {
        /// The op.
        op: &'static str,
        /// The cgroup directory.
        path: String,
    },
    /// A cgroup interface file the layout does not have.
    #[error("cgroup file {path} does not exist in this layout")]
    CgroupFileMissing {
        /// The file.
        path: String,
    },
    /// `cgroup-create` of a cgroup that exists.
    #[error("cgroup-create {path}: exists")]
    CgroupExists {
        /// The cgroup directory.
        path: String,
    },
    /// A cgroup file that only a dedicated op may write.
    #[error("cgroup-write {path}: write it with {instead}")]
    CgroupUseOp {
        /// The file.
        path: String,
        /// The op to use.
        instead: &'static str,
    },
    /// A read-only cgroup file.
    #[error("cgroup-write {path}: the file is read-only")]
    CgroupReadOnlyFile {
        /// The file.
        path: String,
    },
    /// A controller the cgroup does not offer.
    #[error(
        "{op} {path}: controller {controller} is not available (cgroup.controllers: {available:?})"
    )]
    ControllerUnavailable {
        /// The op.
        op: &'static str,
        /// The cgroup directory.
        path: String,
        /// The controller.
        controller: String,
        /// What `cgroup.controllers` offers.
        available: String,
    },
    /// A v2-only cgroup op on a v1 hierarchy.
    #[error("{op} {path}: not a cgroup v2 hierarchy")]
    NotV2 {
        /// The op.
        op: &'static str,
        /// The cgroup directory.
        path: String,
    },
    /// A hook whose executable is missing.
    #[error("hook {kind}[{index}] {path} not found")]
    HookNotFound {
        /// Its list.
        kind: HookKind,
        /// Its index in the list.
        index: usize,
        /// Its path.
        path: String,
    },
    /// A sysctl that is not namespaced: writing it would change the host.
    #[error("sysctl {key} is not namespaced: it would change the host")]
    SysctlNotNamespaced {
        /// The key.
        key: String,
    },
    /// A link that does not exist.
    #[error("{op}: no link {link} in {netns}")]
    NoLink {
        /// The op.
        op: &'static str,
        /// The link (name or index).
        link: String,
        /// The network namespace.
        netns: String,
    },
    /// A `remove-made` or `cgroup-disable` given a handle of another op.
    #[error("{op}: ${name} holds {holds}")]
    MadeKind {
        /// The op.
        op: &'static str,
        /// The handle.
        name: String,
        /// What it holds instead.
        holds: &'static str,
    },
    /// The kernel lacks a feature the step needs.
    #[error("{op}: the kernel does not support {feature}")]
    Unsupported {
        /// The op.
        op: &'static str,
        /// The feature.
        feature: &'static str,
    },
}
