//! The plan: an ordered list of typed operations, each carried out by one actor.
//!
//! Invariants (checked by [`Plan::check`]):
//! - every handle is bound by exactly one step, before any step uses it;
//! - control passes between the runtime and init only through a `signal P` of one actor
//!   immediately followed by `wait P` of the other, so the plan can be executed by two
//!   processes running concurrently with the same effect as running it in order;
//! - after init's `exec`, init has no further steps.
//!
//! [`undo`] is pure: it maps an op that creates something to the op that removes it.

mod fw;
mod types;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use fw::*;
pub use types::*;

/// Who performs a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The berth process on the host.
    Runtime,
    /// The container's init process, after clone and before exec.
    Init,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Actor::Runtime => "runtime",
            Actor::Init => "init",
        })
    }
}

/// One typed operation. Ops are named after the syscall or shell verb they stand for, so a
/// dry run reads like a script.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    // ---- state of the runtime ----
    /// Make the container's state directory; fails if it exists (the id is taken).
    StateCreate {
        /// `ROOT/ID`.
        dir: HostPath,
    },
    /// Remove a state directory and what is in it.
    StateRemove {
        /// `ROOT/ID`.
        dir: HostPath,
    },
    /// Write `state.json` (atomically: temp, fsync, rename) with the bound init pid.
    StateWrite {
        /// `ROOT/ID`.
        dir: HostPath,
        /// The container's id.
        id: String,
        /// The bundle directory.
        bundle: HostPath,
        /// The init process.
        pid: PidRef,
        /// The status recorded (`created`, `running`, ...).
        status: String,
        /// The root filesystem on the host (the OCI state's `rootfs`).
        rootfs: HostPath,
        /// The config's annotations (the OCI state's `annotations`).
        #[serde(default)]
        annotations: BTreeMap<String, String>,
        /// The config's poststop hooks: `delete` runs them, long after this plan is done.
        #[serde(default)]
        poststop: Vec<HookSpec>,
    },
    /// Write the init pid, bare, to a file (atomically).
    WritePidFile {
        /// The file.
        path: HostPath,
        /// The pid written.
        pid: PidRef,
    },
    /// Remove a file; a missing one is skipped (see [`undo`]).
    Unlink {
        /// The file.
        path: Location,
    },

    // ---- processes and namespaces ----
    /// clone(2) the init process into new namespaces; binds `pid`.
    Spawn {
        /// Namespaces created by the clone.
        ns: NamespaceSet,
        /// Bound to the child's pid (as the runtime sees it).
        pid: PidRef,
    },
    /// Kill a process with SIGKILL and wait until it is gone: reaped when it is our child,
    /// else exited (a zombie nobody reaps counts as gone). The undo of `spawn`, and how
    /// `delete` ends a container's init.
    Kill {
        /// The process.
        pid: PidRef,
    },
    /// Bind a handle to a process recorded earlier (a container's init, from its state),
    /// after checking it is still that process: alive, not a zombie, and started at
    /// `start_time` (field 22 of `/proc/PID/stat`), so a reused pid is never taken for it.
    /// Fails, naming the pid, when the process is gone or is another one.
    Adopt {
        /// Bound to the process.
        pid: PidRef,
        /// The recorded pid (as the runtime's pid namespace sees it).
        value: u32,
        /// The recorded start time, in clock ticks after boot.
        start_time: u64,
    },
    /// Bind a handle to a recorded pid without touching or checking the process: for the
    /// state that hooks read once the process is gone (`delete` of a stopped container).
    Recall {
        /// Bound to the recorded pid.
        pid: PidRef,
        /// The recorded pid.
        value: u32,
    },
    /// kill(2): send a signal to a process (`berth kill`).
    SendSignal {
        /// The process.
        pid: PidRef,
        /// The signal number.
        signal: i32,
    },
    /// Send a signal to every process in a cgroup and its descendants (`berth kill --all`,
    /// and what `delete` kills when the container shares the host's pid namespace).
    SignalCgroup {
        /// The cgroup.
        cgroup: CgroupPath,
        /// The signal number.
        signal: i32,
    },
    /// unshare(2) new namespaces in the calling process.
    Unshare {
        /// Namespaces created.
        ns: NamespaceSet,
    },
    /// setns(2) into an existing namespace.
    Setns {
        /// Which kind.
        ns: Namespace,
        /// Where it is.
        from: NsSource,
    },
    /// Open `/proc/PID/ns/NS`; binds `fd`.
    OpenNs {
        /// The process whose namespace is opened.
        of: PidRef,
        /// Which namespace.
        ns: Namespace,
        /// Bound to the opened fd.
        fd: FdRef,
    },
    /// Open `/proc/self/ns/NS` of the acting process; binds `fd`. The runtime keeps its own
    /// namespace this way before it enters a container's, to step back out after the clone.
    OpenOwnNs {
        /// Which namespace.
        ns: Namespace,
        /// Bound to the opened fd.
        fd: FdRef,
    },
    /// Write `/proc/PID/setgroups` (`deny` is needed before an unprivileged gid map).
    WriteSetgroups {
        /// The process.
        pid: PidRef,
        /// `allow` (true) or `deny`.
        allow: bool,
    },
    /// Write `/proc/PID/uid_map` or `gid_map`.
    WriteIdMap {
        /// The process.
        pid: PidRef,
        /// Which map.
        kind: IdMapKind,
        /// Its lines.
        mappings: Vec<IdMapping>,
    },
    /// Signal a sync point to the other actor.
    Signal(SyncPoint),
    /// Wait for the other actor to signal a sync point.
    Wait(SyncPoint),

    // ---- filesystem ----
    /// `mkdir -p`; binds `made` to the directories it actually created.
    MkdirAll {
        /// The directory.
        path: Location,
        /// Mode of created directories.
        mode: u32,
        /// Bound to what was created.
        made: MadeRef,
    },
    /// Make a mount point for `source`: a directory, or an empty file when `source` is not
    /// a directory (as runc does for file bind mounts); parents as `mkdir -p`. Binds `made`.
    MkMountPoint {
        /// The mount point.
        path: Location,
        /// The host path to be bind mounted there, whose kind decides file or directory.
        source: Option<HostPath>,
        /// Bound to what was created.
        made: MadeRef,
    },
    /// Remove what a `mkdir -p`-like op made, deepest first (`rmdir`/`unlink`); a path that
    /// no longer exists in the actor's view is skipped (it was inside a filesystem that only
    /// a dead mount namespace had).
    RemoveMade {
        /// What the op made.
        made: MadeRef,
    },
    /// `ln -s target link`.
    Symlink {
        /// The link's content.
        target: String,
        /// Where the link is made.
        link: Location,
    },
    /// mknod(2), then chown to `uid:gid`.
    Mknod {
        /// The node.
        path: Location,
        /// Kind.
        kind: DeviceKind,
        /// Major number.
        major: u64,
        /// Minor number.
        minor: u64,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// chown(2) a path the plan itself made.
    Chown {
        /// The path.
        path: Location,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// mount(2).
    Mount(MountOp),
    /// Remount a mount point with new flags (`MS_REMOUNT`, with `MS_BIND` for bind mounts).
    Remount {
        /// The mount point.
        target: Location,
        /// The new flags (`bind` included for a bind remount).
        flags: MountFlags,
    },
    /// Change propagation (`mount --make-[r]TYPE`).
    SetPropagation {
        /// The mount point.
        target: Location,
        /// The new type.
        propagation: Propagation,
        /// Applies to the whole subtree.
        recursive: bool,
    },
    /// umount2(2) (`MNT_DETACH` when `detach`).
    Umount {
        /// The mount point.
        target: Location,
        /// Lazy unmount.
        detach: bool,
    },
    /// Mask a path as runc does: a read-only tmpfs over a directory, `/dev/null` bound over a
    /// file; nothing if it does not exist.
    MaskPath {
        /// The path.
        path: Location,
    },
    /// Make a path read-only: bind it onto itself and remount read-only; nothing if it does
    /// not exist.
    ReadonlyPath {
        /// The path.
        path: Location,
    },
    /// pivot_root into `new_root`: `chdir new_root; pivot_root . .; umount -l .; chdir /`
    /// (the old root is stacked under the new one and detached).
    PivotRoot {
        /// The new root, a mount point.
        new_root: HostPath,
    },
    /// For `--no-pivot`: `chdir new_root; mount --move . /; chroot .; chdir /`.
    Chroot {
        /// The new root, a mount point.
        new_root: HostPath,
    },
    /// chdir(2).
    Chdir {
        /// The directory.
        path: Location,
    },

    // ---- process setup inside the container ----
    /// sethostname(2).
    SetHostname(String),
    /// setdomainname(2).
    SetDomainname(String),
    /// Write `/proc/sys/KEY` (dots become slashes).
    Sysctl {
        /// `net.ipv4.ip_forward`.
        key: String,
        /// The value.
        value: String,
    },
    /// setrlimit(2).
    SetRlimit {
        /// Which limit.
        resource: Rlimit,
        /// Soft limit.
        soft: u64,
        /// Hard limit.
        hard: u64,
    },
    /// Write `/proc/self/oom_score_adj`.
    OomScoreAdj(i32),
    /// umask(2).
    Umask(u32),
    /// Drop every capability not in the set from the bounding set (PR_CAPBSET_DROP).
    CapBounding(CapSet),
    /// capset(2) for effective, permitted, inheritable; then the ambient set.
    CapSet {
        /// Effective.
        effective: CapSet,
        /// Permitted.
        permitted: CapSet,
        /// Inheritable.
        inheritable: CapSet,
        /// Ambient.
        ambient: CapSet,
    },
    /// setgroups(2).
    Setgroups(Vec<u32>),
    /// setgid(2).
    Setgid(u32),
    /// setuid(2), keeping capabilities (PR_SET_KEEPCAPS) for the `cap-set` that follows.
    Setuid(u32),
    /// prctl(PR_SET_NO_NEW_PRIVS).
    NoNewPrivs,
    /// Load a seccomp filter.
    Seccomp(SeccompProfile),
    /// Mark every fd above `2 + preserve` close-on-exec (CVE-2024-21626: nothing leaks).
    CloseFds {
        /// `--preserve-fds`: fds 3..3+N are passed on.
        preserve: u32,
    },
    /// Make a pty in the container's devpts: the slave becomes stdio and the controlling
    /// terminal and is bound onto `/dev/console` (unless `keep_console`); binds `master`.
    SetupConsole {
        /// Bound to the pty master.
        master: FdRef,
        /// Leave the container's `/dev/console` as it is: an exec'd process's pty is its
        /// own (runc binds a pty there only for the container's init).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        keep_console: bool,
        /// `process.consoleSize` as (rows, columns): the pty's window size from the start,
        /// before the container's process runs (as runc's init sets it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<(u16, u16)>,
    },
    /// Connect to a unix stream socket (the console socket); binds `fd`. The runtime does it
    /// before the clone, so init inherits the connection and can use it after its root
    /// switch, when the socket's path is out of its reach (as runc passes the socket's fd).
    ConnectSocket {
        /// The socket's path.
        path: HostPath,
        /// Bound to the connected socket.
        fd: FdRef,
    },
    /// Send an fd over a connected unix socket with SCM_RIGHTS (the pty master).
    SendFd {
        /// The fd sent.
        fd: FdRef,
        /// The connected socket.
        socket: FdRef,
    },
    /// Run an OCI hook with the container's state on stdin.
    RunHook {
        /// Which list it is from.
        kind: HookKind,
        /// Its index in that list.
        index: usize,
        /// The hook.
        hook: HookSpec,
        /// The init process named in the state.
        pid: PidRef,
    },
    /// execve(2) the container's process (looked up in `PATH` from `env` when not absolute).
    Exec {
        /// argv.
        argv: Vec<String>,
        /// The environment.
        env: Vec<String>,
    },

    // ---- cgroups ----
    /// Make a cgroup directory and its missing parents; binds `made`.
    CgroupCreate {
        /// The cgroup.
        cgroup: CgroupPath,
        /// Bound to the directories created.
        made: MadeRef,
    },
    /// Enable controllers for a cgroup's children (`+memory` to `cgroup.subtree_control`);
    /// binds `made` to the controllers this write newly enabled.
    CgroupEnable {
        /// The parent cgroup.
        cgroup: CgroupPath,
        /// Controllers to enable.
        controllers: Vec<String>,
        /// Bound to the controllers that were not enabled before.
        made: MadeRef,
    },
    /// Disable the controllers a `cgroup-enable` turned on (its undo).
    CgroupDisable {
        /// The parent cgroup.
        cgroup: CgroupPath,
        /// What the enable turned on.
        made: MadeRef,
    },
    /// Write a cgroup interface file.
    CgroupWrite {
        /// The cgroup.
        cgroup: CgroupPath,
        /// The file (`memory.max`).
        file: String,
        /// The value.
        value: String,
    },
    /// Move a process into a cgroup (`cgroup.procs`).
    CgroupAttach {
        /// The cgroup.
        cgroup: CgroupPath,
        /// The process.
        pid: PidRef,
    },
    /// Attach a device-access eBPF program to a v2 cgroup (v2's `devices` controller).
    CgroupDevices {
        /// The cgroup.
        cgroup: CgroupPath,
        /// Rules, later ones winning, default deny.
        rules: Vec<DeviceRule>,
    },
    /// Remove a cgroup directory and the cgroups below it, deepest first (rmdir).
    CgroupRemove {
        /// The cgroup.
        cgroup: CgroupPath,
    },

    // ---- netlink ----
    /// Create a link; binds `index`.
    LinkAdd {
        /// Namespace of the link.
        netns: NetnsRef,
        /// The link.
        spec: LinkSpec,
        /// Bound to its ifindex.
        index: IfRef,
    },
    /// Delete a link.
    LinkDel {
        /// Namespace of the link.
        netns: NetnsRef,
        /// The link.
        index: IfRef,
    },
    /// Look a link up by name; binds `index`.
    LinkGet {
        /// Namespace of the link.
        netns: NetnsRef,
        /// Its name.
        name: String,
        /// Bound to its ifindex.
        index: IfRef,
    },
    /// Set a link up or down.
    LinkSetUp {
        /// Namespace of the link.
        netns: NetnsRef,
        /// The link.
        index: IfRef,
        /// Up (true) or down.
        up: bool,
    },
    /// Attach a link to a bridge.
    LinkSetMaster {
        /// Namespace of both links.
        netns: NetnsRef,
        /// The port.
        index: IfRef,
        /// The bridge.
        master: IfRef,
    },
    /// Add an address to a link.
    AddrAdd {
        /// Namespace of the link.
        netns: NetnsRef,
        /// The link.
        index: IfRef,
        /// The address.
        addr: IpNet,
    },
    /// Remove an address from a link.
    AddrDel {
        /// Namespace of the link.
        netns: NetnsRef,
        /// The link.
        index: IfRef,
        /// The address.
        addr: IpNet,
    },
    /// Add a route.
    RouteAdd {
        /// Namespace of the route.
        netns: NetnsRef,
        /// Destination; `None` is the default route.
        dst: Option<IpNet>,
        /// Gateway.
        gateway: Option<std::net::IpAddr>,
        /// Output link.
        dev: Option<IfRef>,
    },
    /// Delete a route.
    RouteDel {
        /// Namespace of the route.
        netns: NetnsRef,
        /// Destination; `None` is the default route.
        dst: Option<IpNet>,
        /// Gateway.
        gateway: Option<std::net::IpAddr>,
        /// Output link.
        dev: Option<IfRef>,
    },

    // ---- network namespaces, host sysctls, firewall ----
    /// Make a persistent network namespace at `path` (as `ip netns add` does, by path): an
    /// empty file (its parent must exist), a new network namespace (with `lo` down), and
    /// the namespace's nsfs file bind-mounted on it. Fails if `path` exists.
    NetnsCreate {
        /// The namespace file (`/run/berth/netns/ID`).
        path: HostPath,
    },
    /// Unmount a namespace file made by `netns-create` (lazily) and remove it; the
    /// namespace ends with its last user, taking its links along (a veth's host end too).
    NetnsRemove {
        /// The namespace file.
        path: HostPath,
    },
    /// Write a sysctl file of the runtime's namespaces (`/proc/sys/...`); binds `made` to
    /// the value it replaced when that differed (nothing to restore otherwise).
    SysctlSet {
        /// The file (`/proc/sys/net/ipv4/ip_forward`).
        path: HostPath,
        /// The value written.
        value: String,
        /// Bound to the replaced value, if the write changed it.
        made: MadeRef,
    },
    /// Write back the value a `sysctl-set` replaced, if it replaced one (its undo).
    SysctlRestore {
        /// The file.
        path: HostPath,
        /// What the `sysctl-set` bound.
        made: MadeRef,
    },
    /// Make berth's nftables table with its chains ([`FW_TABLE_NFT`]) if it is missing;
    /// binds `made` to whether this op made it.
    FwTableEnsure {
        /// Bound to whether the table was made here.
        made: MadeRef,
    },
    /// Delete berth's nftables table if the `fw ensure-table` that bound `made` made it
    /// (its undo); fails if a rule is still in it.
    FwTableDelete {
        /// What the ensure bound.
        made: MadeRef,
    },
    /// Delete berth's nftables table if no rule is left in it (no table: nothing to do);
    /// the last network's removal ends with it, so `nft list ruleset` shows nothing of
    /// berth. No undo: any later `fw ensure-table` makes the table again.
    FwTablePrune,
    /// Append a rule to a chain of berth's table, with `tag` as its comment. Fails if a
    /// rule of the chain already carries the tag.
    FwRuleAdd {
        /// The chain.
        chain: FwChain,
        /// The rule.
        rule: FwRule,
        /// Its comment, unique in the chain: how `fw del` finds it.
        tag: String,
    },
    /// Delete the rule of a chain of berth's table that carries `tag`; fails if none does.
    FwRuleDel {
        /// The chain.
        chain: FwChain,
        /// The rule's comment.
        tag: String,
    },
}

impl Op {
    /// The handles this op binds.
    pub fn binds(&self) -> Vec<AnyRef> {
        match self {
            Op::Spawn { pid, .. } | Op::Adopt { pid, .. } | Op::Recall { pid, .. } => {
                vec![AnyRef::Pid(*pid)]
            }
            Op::OpenNs { fd, .. } | Op::OpenOwnNs { fd, .. } | Op::ConnectSocket { fd, .. } => {
                vec![AnyRef::Fd(*fd)]
            }
            Op::SetupConsole { master, .. } => vec![AnyRef::Fd(*master)],
            Op::MkdirAll { made, .. }
            | Op::MkMountPoint { made, .. }
            | Op::CgroupCreate { made, .. }
            | Op::CgroupEnable { made, .. }
            | Op::SysctlSet { made, .. }
            | Op::FwTableEnsure { made } => vec![AnyRef::Made(*made)],
            Op::LinkAdd { index, .. } | Op::LinkGet { index, .. } => vec![AnyRef::If(*index)],
            _ => Vec::new(),
        }
    }

    /// The handles this op reads.
    pub fn uses(&self) -> Vec<AnyRef> {
        let ns_fd = |n: &NetnsRef| match n {
            NetnsRef::Fd(fd) => vec![AnyRef::Fd(*fd)],
            _ => Vec::new(),
        };
        match self {
            Op::StateWrite { pid, .. }
            | Op::WritePidFile { pid, .. }
            | Op::Kill { pid }
            | Op::SendSignal { pid, .. }
            | Op::WriteSetgroups { pid, .. }
            | Op::WriteIdMap { pid, .. }
            | Op::RunHook { pid, .. }
            | Op::CgroupAttach { pid, .. }
            | Op::OpenNs { of: pid, .. } => vec![AnyRef::Pid(*pid)],
            Op::Setns {
                from: NsSource::Fd(fd),
                ..
            } => vec![AnyRef::Fd(*fd)],
            Op::SendFd { fd, socket } => vec![AnyRef::Fd(*fd), AnyRef::Fd(*socket)],
            Op::RemoveMade { made }
            | Op::CgroupDisable { made, .. }
            | Op::SysctlRestore { made, .. }
            | Op::FwTableDelete { made } => vec![AnyRef::Made(*made)],
            Op::LinkAdd { netns, spec, .. } => {
                let mut v = ns_fd(netns);
                if let LinkKind::Veth { peer_netns, .. } = &spec.kind {
                    v.extend(ns_fd(peer_netns));
                }
                v
            }
            Op::LinkGet { netns, .. } => ns_fd(netns),
            Op::LinkDel { netns, index }
            | Op::LinkSetUp { netns, index, .. }
            | Op::AddrAdd { netns, index, .. }
            | Op::AddrDel { netns, index, .. } => {
                let mut v = ns_fd(netns);
                v.push(AnyRef::If(*index));
                v
            }
            Op::LinkSetMaster {
                netns,
                index,
                master,
            } => {
                let mut v = ns_fd(netns);
                v.push(AnyRef::If(*index));
                v.push(AnyRef::If(*master));
                v
            }
            Op::RouteAdd { netns, dev, .. } | Op::RouteDel { netns, dev, .. } => {
                let mut v = ns_fd(netns);
                v.extend(dev.map(AnyRef::If));
                v
            }
            _ => Vec::new(),
        }
    }
}

/// The step that removes what `step` created, or `None` when nothing it made outlives the
/// container's own namespaces and processes.
///
/// Init's undos are the runtime's: init may have dropped its privileges or exec'd by the
/// time a later step fails, so it cannot be asked to undo anything. Its mounts need no undo:
/// they live in its own mount namespace (the planner requires a new one), which dies with it
/// when the runtime kills it (the spawn's undo). What it made on disk, the runtime removes
/// from the host's view, where nothing is mounted over those paths (since Linux 3.18 a
/// directory that is a mount point only in another namespace can be removed); what init made
/// inside a filesystem only it had mounted is gone already, so those removals tolerate a
/// missing path.
pub fn undo(step: &Step) -> Option<Step> {
    let init = step.actor == Actor::Init;
    let op = match &step.op {
        Op::StateCreate { dir } => Op::StateRemove { dir: dir.clone() },
        Op::WritePidFile { path, .. } => Op::Unlink {
            path: Location::Host(path.clone()),
        },
        Op::Spawn { pid, .. } => Op::Kill { pid: *pid },
        Op::MkdirAll { made, .. } | Op::MkMountPoint { made, .. } => Op::RemoveMade { made: *made },
        Op::CgroupCreate { made, .. } => Op::RemoveMade { made: *made },
        Op::CgroupEnable { cgroup, made, .. } => Op::CgroupDisable {
            cgroup: cgroup.clone(),
            made: *made,
        },
        Op::Symlink { link, .. } if !init || matches!(link, Location::InRoot { .. }) => {
            Op::Unlink { path: link.clone() }
        }
        Op::Mknod { path, .. } if !init || matches!(path, Location::InRoot { .. }) => {
            Op::Unlink { path: path.clone() }
        }
        Op::Mount(m) if !init => Op::Umount {
            target: m.target.clone(),
            detach: true,
        },
        Op::LinkAdd { netns, index, .. } => Op::LinkDel {
            netns: netns.clone(),
            index: *index,
        },
        Op::AddrAdd {
            netns, index, addr, ..
        } => Op::AddrDel {
            netns: netns.clone(),
            index: *index,
            addr: addr.clone(),
        },
        Op::RouteAdd {
            netns,
            dst,
            gateway,
            dev,
        } => Op::RouteDel {
            netns: netns.clone(),
            dst: dst.clone(),
            gateway: *gateway,
            dev: *dev,
        },
        Op::NetnsCreate { path } => Op::NetnsRemove { path: path.clone() },
        Op::SysctlSet { path, made, .. } => Op::SysctlRestore {
            path: path.clone(),
            made: *made,
        },
        Op::FwTableEnsure { made } => Op::FwTableDelete { made: *made },
        Op::FwRuleAdd { chain, tag, .. } => Op::FwRuleDel {
            chain: *chain,
            tag: tag.clone(),
        },
        _ => return None,
    };
    Some(Step {
        actor: Actor::Runtime,
        op,
    })
}

/// One step: an op and who performs it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Step {
    /// Who performs it.
    pub actor: Actor,
    /// What is done.
    pub op: Op,
}

/// A whole plan: the steps in order, and the names of its handles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Handle names, indexed by handle number (`init.pid`), printed with a `$`.
    pub names: Vec<String>,
    /// The cgroup interface the plan's cgroups were planned for (`None`: no cgroups, or a
    /// plan recorded before berth wrote this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_version: Option<crate::cgroup::CgroupVersion>,
}

/// A plan that breaks one of [`Plan`]'s invariants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// A handle has no name in [`Plan::names`].
    #[error("step {step}: handle #{index} has no name")]
    UnnamedRef {
        /// The step.
        step: usize,
        /// The handle number.
        index: usize,
    },
    /// A handle is used before any step binds it.
    #[error("step {step}: ${name} is used before it is bound")]
    UnboundRef {
        /// The step.
        step: usize,
        /// The handle.
        name: String,
    },
    /// A handle is bound twice.
    #[error("step {step}: ${name} is bound a second time")]
    BoundTwice {
        /// The step.
        step: usize,
        /// The handle.
        name: String,
    },
    /// The same handle number is used with two different kinds.
    #[error("step {step}: ${name} is used as two kinds of handle")]
    KindMismatch {
        /// The step.
        step: usize,
        /// The handle.
        name: String,
    },
    /// Control passes from one actor to the other without a signal/wait pair.
    #[error("step {step}: {to} acts after {from} without a signal/wait between them")]
    UnsyncedSwitch {
        /// The step.
        step: usize,
        /// The actor that acted before.
        from: Actor,
        /// The actor that acts now.
        to: Actor,
    },
    /// A `signal` is not followed by the matching `wait` of the other actor.
    #[error("step {step}: signal {point} is not followed by the other actor's wait {point}")]
    UnmatchedSignal {
        /// The step.
        step: usize,
        /// The sync point.
        point: SyncPoint,
    },
    /// A `wait` is not preceded by the matching `signal` of the other actor.
    #[error("step {step}: wait {point} does not follow the other actor's signal {point}")]
    UnmatchedWait {
        /// The step.
        step: usize,
        /// The sync point.
        point: SyncPoint,
    },
    /// Init has a step after its `exec`.
    #[error("step {step}: init acts after exec")]
    AfterExec {
        /// The step.
        step: usize,
    },
    /// An init step comes before the init process exists.
    #[error("step {step}: init acts before spawn")]
    BeforeSpawn {
        /// The step.
        step: usize,
    },
}

impl Plan {
    /// The name of a handle, for text output.
    pub fn name_of(&self, r: AnyRef) -> &str {
        self.names.get(r.index()).map_or("?", String::as_str)
    }

    /// Checks the invariants in the module docs.
    pub fn check(&self) -> Result<(), CheckError> {
        #[derive(PartialEq, Clone, Copy)]
        enum Kind {
            Pid,
            Fd,
            If,
            Made,
        }
        let kind = |r: AnyRef| match r {
            AnyRef::Pid(_) => Kind::Pid,
            AnyRef::Fd(_) => Kind::Fd,
            AnyRef::If(_) => Kind::If,
            AnyRef::Made(_) => Kind::Made,
        };
        let mut bound: Vec<Option<Kind>> = vec![None; self.names.len()];
        let mut last_actor: Option<Actor> = None;
        let mut spawned = false;
        let mut exec_done = false;
        for (i, step) in self.steps.iter().enumerate() {
            for r in step.op.uses() {
                let name = || self.name_of(r).to_owned();
                match bound.get(r.index()) {
                    None => {
                        return Err(CheckError::UnnamedRef {
                            step: i,
                            index: r.index(),
                        });
                    }
                    Some(None) => {
                        return Err(CheckError::UnboundRef {
                            step: i,
                            name: name(),
                        });
                    }
                    Some(Some(k)) if *k != kind(r) => {
                        return Err(CheckError::KindMismatch {
                            step: i,
                            name: name(),
                        });
                    }
                    Some(Some(_)) => {}
                }
            }
            for r in step.op.binds() {
                match bound.get_mut(r.index()) {
                    None => {
                        return Err(CheckError::UnnamedRef {
                            step: i,
                            index: r.index(),
                        });
                    }
                    Some(Some(_)) => {
                        return Err(CheckError::BoundTwice {
                            step: i,
                            name: self.name_of(r).to_owned(),
                        });
                    }
                    Some(slot) => *slot = Some(kind(r)),
                }
            }
            if step.actor == Actor::Init {
                if !spawned {
                    return Err(CheckError::BeforeSpawn { step: i });
                }
                if exec_done {
                    return Err(CheckError::AfterExec { step: i });
                }
            }
            match &step.op {
                Op::Signal(p) => {
                    let next = self.steps.get(i + 1);
                    let ok = next.is_some_and(|n| n.op == Op::Wait(*p) && n.actor != step.actor);
                    if !ok {
                        return Err(CheckError::UnmatchedSignal { step: i, point: *p });
                    }
                }
                Op::Wait(p) => {
                    let prev = i.checked_sub(1).and_then(|j| self.steps.get(j));
                    let ok = prev.is_some_and(|n| n.op == Op::Signal(*p) && n.actor != step.actor);
                    if !ok {
                        return Err(CheckError::UnmatchedWait { step: i, point: *p });
                    }
                }
                _ => {
                    if let Some(from) = last_actor {
                        // After init's exec the runtime goes on by itself: exec is the
                        // last thing init does, and the runtime learns of it when init's
                        // close-on-exec sync fd closes.
                        if from != step.actor && !(from == Actor::Init && exec_done) {
                            return Err(CheckError::UnsyncedSwitch {
                                step: i,
                                from,
                                to: step.actor,
                            });
                        }
                    }
                }
            }
            // An adopted init (`start` of a created container) is as good as a spawned one:
            // its steps after the start barrier follow.
            if matches!(step.op, Op::Spawn { .. } | Op::Adopt { .. }) {
                spawned = true;
            }
            if step.actor == Actor::Init && matches!(step.op, Op::Exec { .. }) {
                exec_done = true;
            }
            last_actor = Some(step.actor);
        }
        Ok(())
    }

    /// The plan as JSON (`--dry-run=json`).
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Renders one step the way [`Plan`]'s `Display` does, without its number.
    pub fn step_text(&self, step: &Step) -> String {
        format!(
            "{} {}",
            step.actor,
            OpText {
                plan: self,
                op: &step.op
            }
        )
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "{i} {}", self.step_text(step))?;
        }
        Ok(())
    }
}

/// An op printed with its plan's handle names.
struct OpText<'a> {
    plan: &'a Plan,
    op: &'a Op,
}

fn join_ids(ids: &[u32]) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn quote_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                w.clone()
            } else {
                format!("{w:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for OpText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.plan;
        let r = |a: AnyRef| format!("${}", p.name_of(a));
        let pid = |x: PidRef| r(AnyRef::Pid(x));
        let fd = |x: FdRef| r(AnyRef::Fd(x));
        let ifr = |x: IfRef| r(AnyRef::If(x));
        let made = |x: MadeRef| r(AnyRef::Made(x));
        let netns = |n: &NetnsRef| match n {
            NetnsRef::Host => "host".to_owned(),
            NetnsRef::Path(h) => h.to_string(),
            NetnsRef::Fd(x) => fd(*x),
        };
        let route = |dst: &Option<IpNet>, gw: &Option<std::net::IpAddr>, dev: &Option<IfRef>| {
            let mut s = dst
                .as_ref()
                .map_or_else(|| "default".to_owned(), ToString::to_string);
            if let Some(g) = gw {
                s.push_str(&format!(" via {g}"));
            }
            if let Some(d) = dev {
                s.push_str(&format!(" dev {}", ifr(*d)));
            }
            s
        };
        match self.op {
            Op::StateCreate { dir } => write!(f, "state-create {dir}"),
            Op::StateRemove { dir } => write!(f, "state-remove {dir}"),
            Op::StateWrite {
                dir,
                id,
                bundle,
                pid: p2,
                status,
                ..
            } => write!(
                f,
                "state-write {dir} id={id} bundle={bundle} pid={} status={status}",
                pid(*p2)
            ),
            Op::WritePidFile { path, pid: p2 } => {
                write!(f, "write-pid-file {path} {}", pid(*p2))
            }
            Op::Unlink { path } => write!(f, "unlink {path}"),
            Op::Spawn { ns, pid: p2 } => write!(f, "spawn ns={ns} -> {}", pid(*p2)),
            Op::Kill { pid: p2 } => write!(f, "kill -KILL {} && wait", pid(*p2)),
            Op::Adopt {
                pid: p2,
                value,
                start_time,
            } => write!(f, "adopt {value} start-time={start_time} -> {}", pid(*p2)),
            Op::Recall { pid: p2, value } => write!(f, "recall {value} -> {}", pid(*p2)),
            Op::SendSignal { pid: p2, signal } => {
                write!(
                    f,
                    "kill -{} {}",
                    crate::signal::signal_name(*signal),
                    pid(*p2)
                )
            }
            Op::SignalCgroup { cgroup, signal } => write!(
                f,
                "cgroup-kill -{} {cgroup}",
                crate::signal::signal_name(*signal)
            ),
            Op::Unshare { ns } => write!(f, "unshare {ns}"),
            Op::Setns { ns, from } => match from {
                NsSource::Path(h) => write!(f, "setns {ns} {h}"),
                NsSource::Fd(x) => write!(f, "setns {ns} {}", fd(*x)),
            },
            Op::OpenNs { of, ns, fd: x } => {
                write!(f, "open-ns /proc/{}/ns/{ns} -> {}", pid(*of), fd(*x))
            }
            Op::OpenOwnNs { ns, fd: x } => write!(f, "open-ns /proc/self/ns/{ns} -> {}", fd(*x)),
            Op::WriteSetgroups { pid: p2, allow } => write!(
                f,
                "write /proc/{}/setgroups {}",
                pid(*p2),
                if *allow { "allow" } else { "deny" }
            ),
            Op::WriteIdMap {
                pid: p2,
                kind,
                mappings,
            } => {
                let file = match kind {
                    IdMapKind::Uid => "uid_map",
                    IdMapKind::Gid => "gid_map",
                };
                let lines: Vec<String> = mappings
                    .iter()
                    .map(|m| format!("{} {} {}", m.container_id, m.host_id, m.size))
                    .collect();
                write!(f, "write /proc/{}/{file} {:?}", pid(*p2), lines.join("\n"))
            }
            Op::Signal(pt) => write!(f, "signal {pt}"),
            Op::Wait(pt) => write!(f, "wait {pt}"),
            Op::MkdirAll {
                path,
                mode,
                made: m,
            } => write!(f, "mkdir -p -m {mode:o} {path} -> {}", made(*m)),
            Op::MkMountPoint {
                path,
                source,
                made: m,
            } => match source {
                Some(s) => write!(f, "mkmountpoint {path} like {s} -> {}", made(*m)),
                None => write!(f, "mkmountpoint {path} -> {}", made(*m)),
            },
            Op::RemoveMade { made: m } => write!(f, "remove-made {}", made(*m)),
            Op::Symlink { target, link } => write!(f, "ln -s {target} {link}"),
            Op::Mknod {
                path,
                kind,
                major,
                minor,
                mode,
                uid,
                gid,
            } => write!(
                f,
                "mknod -m {mode:o} {path} {kind} {major} {minor} owner={uid}:{gid}"
            ),
            Op::Chown { path, uid, gid } => write!(f, "chown {uid}:{gid} {path}"),
            Op::Mount(m) => {
                write!(f, "mount {} {} -o {}", m.source, m.target, m.flags)?;
                if !m.data.is_empty() {
                    write!(f, " data={}", m.data)?;
                }
                Ok(())
            }
            Op::Remount { target, flags } => write!(f, "remount {target} -o {flags}"),
            Op::SetPropagation {
                target,
                propagation,
                recursive,
            } => write!(
                f,
                "mount --make-{}{propagation} {target}",
                if *recursive { "r" } else { "" }
            ),
            Op::Umount { target, detach } => {
                write!(f, "umount{} {target}", if *detach { " -l" } else { "" })
            }
            Op::MaskPath { path } => write!(f, "mask {path}"),
            Op::ReadonlyPath { path } => write!(f, "readonly {path}"),
            Op::PivotRoot { new_root } => write!(f, "pivot-root {new_root}"),
            Op::Chroot { new_root } => write!(f, "chroot {new_root}"),
            Op::Chdir { path } => write!(f, "cd {path}"),
            Op::SetHostname(h) => write!(f, "hostname {h:?}"),
            Op::SetDomainname(d) => write!(f, "domainname {d:?}"),
            Op::Sysctl { key, value } => write!(f, "sysctl {key}={value:?}"),
            Op::SetRlimit {
                resource,
                soft,
                hard,
            } => write!(f, "setrlimit {} soft={soft} hard={hard}", resource.name()),
            Op::OomScoreAdj(v) => write!(f, "oom-score-adj {v}"),
            Op::Umask(m) => write!(f, "umask {m:04o}"),
            Op::CapBounding(s) => write!(f, "cap-bounding {s}"),
            Op::CapSet {
                effective,
                permitted,
                inheritable,
                ambient,
            } => write!(
                f,
                "cap-set effective={effective} permitted={permitted} inheritable={inheritable} ambient={ambient}"
            ),
            Op::Setgroups(g) => write!(f, "setgroups {}", join_ids(g)),
            Op::Setgid(g) => write!(f, "setgid {g}"),
            Op::Setuid(u) => write!(f, "setuid {u}"),
            Op::NoNewPrivs => f.write_str("no-new-privs"),
            Op::Seccomp(s) => {
                let syscalls: usize = s.rules.iter().map(|r| r.names.len()).sum();
                write!(
                    f,
                    "seccomp default={} arch={} rules={} syscalls={}",
                    s.default_action,
                    if s.architectures.is_empty() {
                        "native".to_owned()
                    } else {
                        s.architectures.join(",")
                    },
                    s.rules.len(),
                    syscalls
                )?;
                if !s.flags.is_empty() {
                    write!(f, " flags={}", s.flags.join(","))?;
                }
                Ok(())
            }
            Op::CloseFds { preserve } => write!(f, "close-fds above {}", 2 + preserve),
            Op::SetupConsole {
                master,
                size,
                keep_console,
            } => {
                write!(f, "setup-console")?;
                if !keep_console {
                    write!(f, " /dev/console")?;
                }
                if let Some((rows, cols)) = size {
                    write!(f, " rows={rows} cols={cols}")?;
                }
                write!(f, " -> {}", fd(*master))
            }
            Op::ConnectSocket { path, fd: x } => write!(f, "connect {path} -> {}", fd(*x)),
            Op::SendFd { fd: x, socket } => write!(f, "send-fd {} {}", fd(*x), fd(*socket)),
            Op::RunHook {
                kind,
                index,
                hook,
                pid: p2,
            } => {
                write!(f, "hook {kind}[{index}] {}", quote_words(&hook.args))?;
                if hook.args.first() != Some(&hook.path) {
                    write!(f, " path={}", hook.path)?;
                }
                if let Some(t) = hook.timeout {
                    write!(f, " timeout={t}s")?;
                }
                write!(f, " pid={}", pid(*p2))
            }
            Op::Exec { argv, env } => {
                write!(f, "exec {}", quote_words(argv))?;
                if !env.is_empty() {
                    write!(f, " env={}", quote_words(env))?;
                }
                Ok(())
            }
            Op::CgroupCreate { cgroup, made: m } => {
                write!(f, "cgroup-create {cgroup} -> {}", made(*m))
            }
            Op::CgroupEnable {
                cgroup,
                controllers,
                made: m,
            } => write!(
                f,
                "cgroup-enable {cgroup} +{} -> {}",
                controllers.join(" +"),
                made(*m)
            ),
            Op::CgroupDisable { cgroup, made: m } => {
                write!(f, "cgroup-disable {cgroup} {}", made(*m))
            }
            Op::CgroupWrite {
                cgroup,
                file,
                value,
            } => write!(f, "cgroup-write {cgroup}/{file} {value:?}"),
            Op::CgroupAttach { cgroup, pid: p2 } => {
                write!(f, "cgroup-attach {cgroup} {}", pid(*p2))
            }
            Op::CgroupDevices { cgroup, rules } => {
                let rules: Vec<String> = rules.iter().map(ToString::to_string).collect();
                write!(f, "cgroup-devices {cgroup} [{}]", rules.join("; "))
            }
            Op::CgroupRemove { cgroup } => write!(f, "cgroup-remove {cgroup}"),
            Op::LinkAdd {
                netns: n,
                spec,
                index,
            } => {
                write!(f, "ip -n {} link add {}", netns(n), spec.name)?;
                match &spec.kind {
                    LinkKind::Bridge => f.write_str(" type bridge")?,
                    LinkKind::Dummy => f.write_str(" type dummy")?,
                    LinkKind::Veth {
                        peer_name,
                        peer_netns,
                    } => write!(f, " type veth peer {peer_name} netns {}", netns(peer_netns))?,
                }
                if let Some(m) = spec.mtu {
                    write!(f, " mtu {m}")?;
                }
                if let Some(m) = &spec.mac {
                    write!(f, " address {m}")?;
                }
                write!(f, " -> {}", ifr(*index))
            }
            Op::LinkDel { netns: n, index } => {
                write!(f, "ip -n {} link del {}", netns(n), ifr(*index))
            }
            Op::LinkGet {
                netns: n,
                name,
                index,
            } => write!(f, "ip -n {} link show {name} -> {}", netns(n), ifr(*index)),
            Op::LinkSetUp {
                netns: n,
                index,
                up,
            } => write!(
                f,
                "ip -n {} link set {} {}",
                netns(n),
                ifr(*index),
                if *up { "up" } else { "down" }
            ),
            Op::LinkSetMaster {
                netns: n,
                index,
                master,
            } => write!(
                f,
                "ip -n {} link set {} master {}",
                netns(n),
                ifr(*index),
                ifr(*master)
            ),
            Op::AddrAdd {
                netns: n,
                index,
                addr,
            } => write!(f, "ip -n {} addr add {addr} dev {}", netns(n), ifr(*index)),
            Op::AddrDel {
                netns: n,
                index,
                addr,
            } => write!(f, "ip -n {} addr del {addr} dev {}", netns(n), ifr(*index)),
            Op::RouteAdd {
                netns: n,
                dst,
                gateway,
                dev,
            } => write!(
                f,
                "ip -n {} route add {}",
                netns(n),
                route(dst, gateway, dev)
            ),
            Op::RouteDel {
                netns: n,
                dst,
                gateway,
                dev,
            } => write!(
                f,
                "ip -n {} route del {}",
                netns(n),
                route(dst, gateway, dev)
            ),
            Op::NetnsCreate { path } => write!(f, "netns-create {path}"),
            Op::NetnsRemove { path } => write!(f, "netns-remove {path}"),
            Op::SysctlSet {
                path,
                value,
                made: m,
            } => write!(f, "sysctl-set {path} {value:?} -> {}", made(*m)),
            Op::SysctlRestore { path, made: m } => {
                write!(f, "sysctl-restore {path} {}", made(*m))
            }
            Op::FwTableEnsure { made: m } => {
                write!(f, "fw ensure-table {FW_TABLE} -> {}", made(*m))
            }
            Op::FwTableDelete { made: m } => write!(f, "fw delete-table {}", made(*m)),
            Op::FwTablePrune => write!(f, "fw prune-table {FW_TABLE}"),
            Op::FwRuleAdd { chain, rule, tag } => write!(f, "fw add {chain} {rule} [{tag}]"),
            Op::FwRuleDel { chain, tag } => write!(f, "fw del {chain} [{tag}]"),
        }
    }
}

/// Allocates handles while a planner builds a plan.
#[derive(Debug, Default)]
pub struct PlanBuilder {
    plan: Plan,
}

impl PlanBuilder {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }
    /// Records which cgroup interface the plan's cgroups are planned for.
    pub fn set_cgroup_version(&mut self, version: crate::cgroup::CgroupVersion) {
        self.plan.cgroup_version = Some(version);
    }
    fn next(&mut self, name: String) -> u16 {
        let id = u16::try_from(self.plan.names.len()).unwrap_or(u16::MAX);
        self.plan.names.push(name);
        id
    }
    /// A new pid handle named `name`.
    pub fn pid(&mut self, name: &str) -> PidRef {
        PidRef(self.next(name.to_owned()))
    }
    /// A new fd handle named `name`.
    pub fn fd(&mut self, name: &str) -> FdRef {
        FdRef(self.next(name.to_owned()))
    }
    /// A new ifindex handle named `name`.
    pub fn ifref(&mut self, name: &str) -> IfRef {
        IfRef(self.next(name.to_owned()))
    }
    /// A new change-record handle, named `made.N` by its position.
    pub fn made(&mut self) -> MadeRef {
        let n = self.plan.names.len();
        MadeRef(self.next(format!("made.{n}")))
    }
    /// Appends a step.
    pub fn push(&mut self, actor: Actor, op: Op) {
        self.plan.steps.push(Step { actor, op });
    }
    /// Appends a runtime step.
    pub fn runtime(&mut self, op: Op) {
        self.push(Actor::Runtime, op);
    }
    /// Appends an init step.
    pub fn init(&mut self, op: Op) {
        self.push(Actor::Init, op);
    }
    /// Passes control from `from` to the other actor through `point`.
    pub fn handoff(&mut self, from: Actor, point: SyncPoint) {
        let to = match from {
            Actor::Runtime => Actor::Init,
            Actor::Init => Actor::Runtime,
        };
        self.push(from, Op::Signal(point));
        self.push(to, Op::Wait(point));
    }
    /// The actor of the last step, if any.
    pub fn last_actor(&self) -> Option<Actor> {
        self.plan.steps.last().map(|s| s.actor)
    }
    /// The plan built so far.
    pub fn finish(self) -> Plan {
        self.plan
    }
}
