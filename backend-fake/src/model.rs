//! The in-memory host: filesystems, mount namespaces, other namespaces, processes.
//!
//! The model follows the kernel's shape where it matters for what a plan can get wrong:
//! a filesystem instance (superblock) holds nodes; a mount namespace holds a stack of mounts,
//! each showing one directory of one filesystem at a target path; a later mount on a path or
//! on one of its ancestors hides what was there. Paths created under a mount belong to its
//! filesystem, so a tmpfs takes them away when its last mount goes. Everything is kept in
//! `BTreeMap`s, so iteration, snapshots and their text are deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use berth_core::plan::{
    CapSets, DeviceKind, IdMapping, MountFlags, Namespace, Propagation, Rlimit, SyncPoint,
};

/// Ids of filesystems, namespaces, mounts and peer groups (one counter for all).
pub(crate) type Id = u32;

/// The pid of the runtime (berth itself) in the fake.
pub(crate) const RUNTIME_PID: u32 = 1;

/// What a filesystem node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// A directory.
    Dir,
    /// A regular file with its content.
    File(String),
    /// A symbolic link with its target.
    Symlink(String),
    /// A device node or fifo.
    Device {
        kind: DeviceKind,
        major: u64,
        minor: u64,
    },
}

/// A filesystem node: what it is, its permission bits and its owner (host ids).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl Node {
    pub(crate) fn dir(mode: u32) -> Node {
        Node {
            kind: NodeKind::Dir,
            mode,
            uid: 0,
            gid: 0,
        }
    }
    pub(crate) fn file(mode: u32, content: &str) -> Node {
        Node {
            kind: NodeKind::File(content.to_owned()),
            mode,
            uid: 0,
            gid: 0,
        }
    }
    pub(crate) fn chardev(mode: u32, major: u64, minor: u64) -> Node {
        Node {
            kind: NodeKind::Device {
                kind: DeviceKind::Char,
                major,
                minor,
            },
            mode,
            uid: 0,
            gid: 0,
        }
    }
    pub(crate) fn is_dir(&self) -> bool {
        self.kind == NodeKind::Dir
    }
}

/// What kind of filesystem an instance is; decides what may be made in it and how long it
/// lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FsKind {
    /// The host's disk: lives for ever.
    Disk,
    Tmpfs,
    Proc,
    Sysfs,
    Devtmpfs,
    Devpts,
    Mqueue,
    /// A cgroup v1 hierarchy with its controllers (sorted).
    Cgroup1(Vec<String>),
    /// The cgroup v2 hierarchy.
    Cgroup2,
    /// A namespace file: one namespace per kind (a file made by the test builder can be
    /// joined as any kind), or the one kind bound from `/proc/PID/ns/KIND`.
    Nsfs(BTreeMap<Namespace, Id>),
    /// A pty slave bound onto `/dev/console`.
    Pty,
    Overlay,
    Other,
}

impl FsKind {
    /// Whether the instance outlives its last mount.
    pub(crate) fn persistent(&self) -> bool {
        matches!(self, FsKind::Disk | FsKind::Cgroup1(_) | FsKind::Cgroup2)
    }
    /// Whether ordinary files and directories can be made in it.
    pub(crate) fn creatable(&self) -> bool {
        matches!(
            self,
            FsKind::Disk | FsKind::Tmpfs | FsKind::Devtmpfs | FsKind::Overlay | FsKind::Other
        )
    }
    pub(crate) fn is_cgroup(&self) -> bool {
        matches!(self, FsKind::Cgroup1(_) | FsKind::Cgroup2)
    }
}

/// A filesystem instance. Node keys are absolute paths inside the instance (`/` is its
/// root, always present).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fs {
    pub(crate) kind: FsKind,
    pub(crate) fstype: String,
    pub(crate) source: String,
    pub(crate) nodes: BTreeMap<String, Node>,
    /// cgroup v2 device programs, by cgroup directory.
    pub(crate) bpf: BTreeMap<String, Vec<String>>,
}

impl Fs {
    pub(crate) fn new(kind: FsKind, fstype: &str, source: &str, root_mode: u32) -> Fs {
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_owned(), Node::dir(root_mode));
        Fs {
            kind,
            fstype: fstype.to_owned(),
            source: source.to_owned(),
            nodes,
            bpf: BTreeMap::new(),
        }
    }

    /// True when the directory `path` has no entries.
    pub(crate) fn is_empty_dir(&self, path: &str) -> bool {
        self.children(path).next().is_none()
    }

    /// The direct and indirect entries below `path`, in order.
    pub(crate) fn children<'a>(
        &'a self,
        path: &str,
    ) -> impl Iterator<Item = (&'a String, &'a Node)> + 'a {
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.as_str() != "/")
    }

    /// The direct entries of `path`.
    pub(crate) fn direct_children(&self, path: &str) -> Vec<String> {
        let depth = crate::path::depth(path) + 1;
        self.children(path)
            .filter(|(k, _)| crate::path::depth(k) == depth)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// One mount in a mount namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub(crate) id: Id,
    /// Where it shows, as a canonical path in the namespace.
    pub(crate) target: String,
    pub(crate) fs: Id,
    /// The directory (or file) of the filesystem it shows.
    pub(crate) fs_root: String,
    /// The node it sits on, if any (`/` sits on nothing).
    pub(crate) mountpoint: Option<(Id, String)>,
    /// The source as mountinfo would show it.
    pub(crate) source: String,
    pub(crate) fstype: String,
    /// Per-mount flags (never `bind`/`rec`).
    pub(crate) flags: MountFlags,
    /// Flags locked by a copy into a less privileged mount namespace.
    pub(crate) locked: MountFlags,
    pub(crate) propagation: Propagation,
    /// The peer group (shared) or master group (slave).
    pub(crate) peer: Option<Id>,
    pub(crate) data: String,
}

/// A network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) up: bool,
    pub(crate) master: Option<u32>,
    pub(crate) mtu: u32,
    pub(crate) mac: Option<String>,
    /// The other end of a veth: its namespace and ifindex.
    pub(crate) peer: Option<(Id, u32)>,
    pub(crate) addrs: BTreeSet<(IpAddr, u8)>,
}

/// A route: destination (`None` = default), gateway, output ifindex.
pub(crate) type Route = (Option<(IpAddr, u8)>, Option<IpAddr>, Option<u32>);

/// What a namespace holds, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NsData {
    Mount {
        mounts: Vec<MountEntry>,
        /// The root this namespace switched into (pivot_root/chroot): the host path as the
        /// plan gave it, and its canonical path at the time.
        root_was: Option<(String, String)>,
    },
    Net {
        links: BTreeMap<u32, Link>,
        routes: BTreeSet<Route>,
        sysctl: BTreeMap<String, String>,
    },
    Uts {
        hostname: String,
        domainname: String,
    },
    Ipc {
        sysctl: BTreeMap<String, String>,
    },
    User {
        uid_map: Option<Vec<IdMapping>>,
        gid_map: Option<Vec<IdMapping>>,
        /// `/proc/PID/setgroups`: `allow` (true) or `deny`.
        setgroups: bool,
    },
    Cgroup {
        /// The namespace's root per hierarchy (filesystem id -> cgroup directory).
        roots: BTreeMap<Id, String>,
    },
    /// Pid and time namespaces: nothing the fake tracks besides their identity.
    Plain,
}

/// A namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ns {
    pub(crate) kind: Namespace,
    /// The user namespace that owns it (for a user namespace: its parent); `None` for the
    /// initial user namespace.
    pub(crate) owner: Option<Id>,
    pub(crate) data: NsData,
}

/// A live process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Proc {
    pub(crate) ns: BTreeMap<Namespace, Id>,
    pub(crate) pid_for_children: Id,
    pub(crate) time_for_children: Id,
    /// The host path of its root: `/`, or the root it switched into.
    pub(crate) root: String,
    /// Its working directory, in its mount namespace.
    pub(crate) cwd: String,
    /// Host (kernel) ids.
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) groups: Vec<u32>,
    pub(crate) caps: CapSets,
    pub(crate) no_new_privs: bool,
    pub(crate) seccomp: Vec<String>,
    pub(crate) rlimits: BTreeMap<Rlimit, (u64, u64)>,
    pub(crate) oom_score_adj: i32,
    pub(crate) umask: u32,
    /// Its cgroup per hierarchy (filesystem id -> cgroup directory).
    pub(crate) cgroups: BTreeMap<Id, String>,
    /// Sync points the runtime signalled and it has not yet waited for.
    pub(crate) pending: BTreeSet<SyncPoint>,
    /// Sync points it signalled and the runtime has not yet waited for.
    pub(crate) sent: BTreeSet<SyncPoint>,
    pub(crate) passed_start_barrier: bool,
    /// argv of its exec, once it exec'd.
    pub(crate) exec: Option<Vec<String>>,
    pub(crate) console: bool,
    pub(crate) close_fds_above: Option<u32>,
    /// True when it is pid 1 of its pid namespace: killing it kills the namespace.
    pub(crate) pid_ns_leader: bool,
}

/// Everything the host holds. Filesystems and namespaces are shared copy-on-write
/// (`Arc::make_mut`), so a snapshot before each step copies only what the step changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Model {
    pub(crate) fs: BTreeMap<Id, Arc<Fs>>,
    pub(crate) ns: BTreeMap<Id, Arc<Ns>>,
    pub(crate) procs: BTreeMap<u32, Proc>,
    /// berth's nftables table, by network namespace.
    pub(crate) fw: BTreeMap<Id, crate::netfw::FwTable>,
}

impl Model {
    /// A filesystem, for writing.
    pub(crate) fn fs_mut(&mut self, id: Id) -> Option<&mut Fs> {
        self.fs.get_mut(&id).map(Arc::make_mut)
    }
    /// A namespace, for writing.
    pub(crate) fn ns_mut(&mut self, id: Id) -> Option<&mut Ns> {
        self.ns.get_mut(&id).map(Arc::make_mut)
    }
    /// Adds a filesystem.
    pub(crate) fn add_fs(&mut self, id: Id, fs: Fs) {
        self.fs.insert(id, Arc::new(fs));
    }
    /// Adds a namespace.
    pub(crate) fn add_ns(&mut self, id: Id, ns: Ns) {
        self.ns.insert(id, Arc::new(ns));
    }
}

/// A comparable snapshot of everything the fake host holds.
///
/// Files, directories, symlinks and device nodes with their modes and owners; the mount
/// table of every live mount namespace; every namespace with what it holds (hostname,
/// sysctls, id maps, links, addresses, routes); cgroup directories with their files and
/// device programs; every live process but the runtime with its attributes. The runtime's
/// own attributes are left out: they end with the berth process. Handle bindings, counters
/// and the trace are not host state either. Two snapshots are equal iff the hosts are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostState {
    pub(crate) model: Model,
}

impl HostState {
    /// The pids of the live processes other than the runtime.
    pub fn processes(&self) -> Vec<u32> {
        self.model.procs.keys().copied().collect()
    }

    /// The host mount namespace's table, one `TARGET FSTYPE SOURCE FLAGS` line per mount.
    pub fn host_mounts(&self) -> Vec<String> {
        // The host's mount namespace is the first one made.
        let host = self.model.ns.values().find_map(|n| match &n.data {
            NsData::Mount { mounts, .. } => Some(mounts),
            _ => None,
        });
        host.map(|mounts| {
            mounts
                .iter()
                .map(|m| format!("{} {} {} {}", m.target, m.fstype, m.source, m.flags))
                .collect()
        })
        .unwrap_or_default()
    }

    /// The number of live namespaces.
    pub fn namespace_count(&self) -> usize {
        self.model.ns.len()
    }
}

fn ns_name(kind: Namespace, id: Id) -> String {
    format!("{kind}:{id}")
}

impl fmt::Display for HostState {
    /// A line-per-fact dump, for diffs in failing tests.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.model;
        for (id, fs) in &m.fs {
            writeln!(f, "fs {id} {} {} {:?}", fs.fstype, fs.source, fs.kind)?;
            for (path, node) in &fs.nodes {
                let what = match &node.kind {
                    NodeKind::Dir => "dir".to_owned(),
                    NodeKind::File(c) => format!("file {c:?}"),
                    NodeKind::Symlink(t) => format!("symlink -> {t}"),
                    NodeKind::Device { kind, major, minor } => format!("{kind} {major}:{minor}"),
                };
                writeln!(
                    f,
                    "  {path} {what} {:o} {}:{}",
                    node.mode, node.uid, node.gid
                )?;
            }
            for (cg, rules) in &fs.bpf {
                writeln!(f, "  bpf {cg} [{}]", rules.join("; "))?;
            }
        }
        for (id, ns) in &m.ns {
            let owner = ns.owner.map_or_else(|| "-".to_owned(), |o| o.to_string());
            write!(f, "ns {} owner={owner}", ns_name(ns.kind, *id))?;
            match &ns.data {
                NsData::Mount { mounts, root_was } => {
                    writeln!(f, " root_was={root_was:?}")?;
                    for e in mounts {
                        writeln!(
                            f,
                            "  mount {} {} {} fs={}:{} on={:?} {} locked={} {}{} data={:?}",
                            e.id,
                            e.target,
                            e.fstype,
                            e.fs,
                            e.fs_root,
                            e.mountpoint,
                            e.flags,
                            e.locked,
                            e.propagation,
                            e.peer.map_or_else(String::new, |p| format!(":{p}")),
                            e.data
                        )?;
                    }
                }
                NsData::Net {
                    links,
                    routes,
                    sysctl,
                } => {
                    writeln!(f)?;
                    for (index, l) in links {
                        writeln!(f, "  link {index} {l:?}")?;
                    }
                    for r in routes {
                        writeln!(f, "  route {r:?}")?;
                    }
                    for (k, v) in sysctl {
                        writeln!(f, "  sysctl {k}={v:?}")?;
                    }
                }
                NsData::Ipc { sysctl } => {
                    writeln!(f)?;
                    for (k, v) in sysctl {
                        writeln!(f, "  sysctl {k}={v:?}")?;
                    }
                }
                other => writeln!(f, " {other:?}")?,
            }
        }
        for (pid, p) in &m.procs {
            writeln!(f, "proc {pid} {p:?}")?;
        }
        for line in crate::netfw::fw_text(&m.fw) {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}
