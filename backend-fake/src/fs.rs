//! Paths and mounts: resolving a [`Location`] as the acting process sees it, making and
//! removing nodes, and the mount-table ops (mount, remount, propagation, umount, mask,
//! readonly, pivot_root, chroot).
//!
//! Invariant of the resolver: a path resolved inside a root (`[ROOT]PATH`) never leaves
//! it. `..` stops at the root and an absolute symlink restarts at the root, as if the root
//! were `/` (what `openat2(RESOLVE_IN_ROOT)` and filepath-securejoin do), so a rootfs with
//! `etc -> /` cannot make an op touch the host's `/etc`.

use std::collections::{BTreeMap, VecDeque};

use berth_core::plan::{
    HostPath, Location, MountFlag, MountFlags, MountOp, MountSource, Namespace, Propagation,
};

use crate::FakeError;
use crate::model::{Fs, FsKind, Id, MountEntry, Node, NodeKind, NsData};
use crate::path;
use crate::world::{MadeNode, World, cap};

/// Symlinks followed in one resolution before ELOOP (the kernel's limit).
const MAX_SYMLINKS: usize = 40;

/// A path to resolve: in which mount namespace, inside which root, and how to show it.
#[derive(Clone, Debug)]
pub(crate) struct Spot {
    pub(crate) mns: Id,
    /// The canonical path of the root that resolution stays in (`/` for host paths).
    pub(crate) jail: String,
    /// The path inside the jail, not yet resolved.
    pub(crate) path: String,
    /// How the plan names it, for messages.
    pub(crate) shown: String,
}

/// How [`World::walk`] makes missing directories.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mk {
    pub(crate) op: &'static str,
    pub(crate) mode: u32,
    /// Make the last component too (`mkdir -p`), or only its parents.
    pub(crate) last: bool,
}

/// Which mounts of a table nothing later hides.
pub(crate) fn visible(mounts: &[MountEntry]) -> Vec<bool> {
    (0..mounts.len())
        .map(|i| {
            !mounts[i + 1..]
                .iter()
                .any(|later| path::under(&mounts[i].target, &later.target))
        })
        .collect()
}

/// The mount that shows `p`: the latest one whose target is `p` or above it. (Any earlier
/// one on that chain of targets is hidden by it, and nothing later hides it.)
pub(crate) fn covering(mounts: &[MountEntry], p: &str) -> Option<usize> {
    mounts.iter().rposition(|e| path::under(p, &e.target))
}

/// The visible mount whose target is `p`.
pub(crate) fn mount_at(mounts: &[MountEntry], p: &str) -> Option<usize> {
    covering(mounts, p).filter(|i| mounts[*i].target == p)
}

/// The filesystem path that a mount shows at namespace path `p`.
fn fs_path(e: &MountEntry, p: &str) -> String {
    path::join(&e.fs_root, &path::strip(p, &e.target))
}

/// The path of `/proc/PID/ns/KIND` or `/proc/self/ns/KIND`, parsed.
pub(crate) fn proc_ns_path(p: &str) -> Option<(Option<u32>, Namespace)> {
    let parts: Vec<&str> = path::components(p).collect();
    let [proc_, who, ns, kind] = parts.as_slice() else {
        return None;
    };
    if *proc_ != "proc" || *ns != "ns" {
        return None;
    }
    let kind = Namespace::ALL
        .into_iter()
        .find(|k| k.proc_name() == *kind)?;
    match *who {
        "self" | "thread-self" => Some((None, kind)),
        n => n.parse().ok().map(|pid| (Some(pid), kind)),
    }
}

/// The root mode from tmpfs-style data (`mode=755`), default 1777.
fn mode_from_data(data: &str) -> u32 {
    data.split(',')
        .find_map(|o| o.strip_prefix("mode="))
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .unwrap_or(0o1777)
}

/// The nodes a fresh instance of a virtual filesystem starts with.
pub(crate) fn template(kind: &FsKind) -> Vec<(&'static str, Node)> {
    let d = || Node::dir(0o555);
    let f = |m| Node::file(m, "");
    match kind {
        FsKind::Proc => vec![
            ("/acpi", d()),
            ("/asound", d()),
            ("/bus", d()),
            ("/fs", d()),
            ("/irq", d()),
            ("/scsi", d()),
            ("/sys", d()),
            ("/sys/fs", d()),
            ("/sys/kernel", d()),
            ("/sys/net", d()),
            ("/sys/vm", d()),
            ("/cpuinfo", f(0o444)),
            ("/kcore", f(0o400)),
            ("/keys", f(0o444)),
            ("/latency_stats", f(0o644)),
            ("/loadavg", f(0o444)),
            ("/meminfo", f(0o444)),
            ("/sched_debug", f(0o444)),
            ("/stat", f(0o444)),
            ("/sysrq-trigger", f(0o200)),
            ("/timer_list", f(0o444)),
            ("/uptime", f(0o444)),
        ],
        FsKind::Sysfs => vec![
            ("/block", d()),
            ("/bus", d()),
            ("/class", d()),
            ("/class/net", d()),
            ("/devices", d()),
            ("/devices/virtual", d()),
            ("/devices/virtual/powercap", d()),
            ("/firmware", d()),
            ("/fs", d()),
            ("/fs/cgroup", d()),
            ("/kernel", d()),
            ("/module", d()),
        ],
        FsKind::Devpts => vec![("/ptmx", Node::chardev(0o000, 5, 2))],
        FsKind::Devtmpfs => vec![
            ("/console", Node::chardev(0o600, 5, 1)),
            ("/full", Node::chardev(0o666, 1, 7)),
            ("/mqueue", Node::dir(0o755)),
            ("/null", Node::chardev(0o666, 1, 3)),
            ("/ptmx", Node::chardev(0o666, 5, 2)),
            ("/pts", Node::dir(0o755)),
            ("/random", Node::chardev(0o666, 1, 8)),
            ("/shm", Node::dir(0o1777)),
            ("/tty", Node::chardev(0o666, 5, 0)),
            ("/urandom", Node::chardev(0o666, 1, 9)),
            ("/zero", Node::chardev(0o666, 1, 5)),
        ],
        _ => Vec::new(),
    }
}

impl World {
    // ---- lookups ----

    /// The mount table of a mount namespace (empty if it is none).
    pub(crate) fn mounts(&self, mns: Id) -> &[MountEntry] {
        match self.m.ns.get(&mns).map(|n| &n.data) {
            Some(NsData::Mount { mounts, .. }) => mounts,
            _ => &[],
        }
    }

    pub(crate) fn mounts_mut(&mut self, mns: Id) -> Option<&mut Vec<MountEntry>> {
        match self.m.ns_mut(mns).map(|n| &mut n.data) {
            Some(NsData::Mount { mounts, .. }) => Some(mounts),
            _ => None,
        }
    }

    /// The root switch a mount namespace made, if any: the host path as the plan gave it
    /// (normalised) and its canonical path then.
    pub(crate) fn root_switch(&self, mns: Id) -> Option<(String, String)> {
        match self.m.ns.get(&mns).map(|n| &n.data) {
            Some(NsData::Mount { root_was, .. }) => root_was.clone(),
            _ => None,
        }
    }

    /// The host path (as the plan gave it) of the root a mount namespace switched into.
    pub(crate) fn root_was(&self, mns: Id) -> Option<String> {
        self.root_switch(mns).map(|(given, _)| given)
    }

    /// The mount that shows canonical path `p` in `mns`.
    pub(crate) fn covering_entry(&self, mns: Id, p: &str) -> Option<&MountEntry> {
        let mounts = self.mounts(mns);
        covering(mounts, p).map(|i| &mounts[i])
    }

    /// The node at canonical path `p` in `mns`, with its identity.
    pub(crate) fn node(&self, mns: Id, p: &str) -> Option<((Id, String), &Node)> {
        let e = self.covering_entry(mns, p)?;
        let fp = fs_path(e, p);
        let node = self.m.fs.get(&e.fs)?.nodes.get(&fp)?;
        Some(((e.fs, fp), node))
    }

    // ---- locations ----

    /// Where a host path is, as `pid` sees it.
    pub(crate) fn spot_host(&self, pid: u32, p: &HostPath) -> Result<Spot, FakeError> {
        let mns = self.ns_of(pid, Namespace::Mount)?;
        let text = p.as_str();
        let path = if text.starts_with('/') {
            text.to_owned()
        } else {
            format!("{}/{text}", self.proc(pid)?.cwd)
        };
        Ok(Spot {
            mns,
            jail: "/".to_owned(),
            path,
            shown: text.to_owned(),
        })
    }

    /// Where a location is, as `pid` sees it. `[ROOT]PATH` resolves inside `ROOT`; once
    /// the actor's mount namespace switched its root into `ROOT`, it is `PATH` itself.
    pub(crate) fn spot(&mut self, pid: u32, loc: &Location) -> Result<Spot, FakeError> {
        let mns = self.ns_of(pid, Namespace::Mount)?;
        let shown = loc.to_string();
        match loc {
            Location::Host(p) => {
                let mut s = self.spot_host(pid, p)?;
                s.shown = shown;
                Ok(s)
            }
            Location::Container(p) => Ok(Spot {
                mns,
                jail: "/".to_owned(),
                path: p.as_str().to_owned(),
                shown,
            }),
            Location::InRoot { root, path } => {
                let switched = self
                    .root_was(mns)
                    .is_some_and(|r| r == path::join("/", root.as_str()));
                if switched {
                    return Ok(Spot {
                        mns,
                        jail: "/".to_owned(),
                        path: path.as_str().to_owned(),
                        shown,
                    });
                }
                let rs = self.spot_host(pid, root)?;
                let jail = self.walk(&rs, true, None, &mut Vec::new())?;
                match self.node(mns, &jail) {
                    Some((_, n)) if n.is_dir() => {}
                    Some(_) => {
                        return Err(FakeError::NotDir {
                            op: "root",
                            path: root.to_string(),
                        });
                    }
                    None => {
                        return Err(FakeError::Missing {
                            op: "root",
                            path: root.to_string(),
                        });
                    }
                }
                Ok(Spot {
                    mns,
                    jail,
                    path: path.as_str().to_owned(),
                    shown,
                })
            }
        }
    }

    /// Resolves a spot to a canonical path in its mount namespace, following symlinks
    /// inside the jail (the last one only when `follow_last`). A missing last component is
    /// not an error (the caller checks); a missing inner one is, unless `mk` makes it.
    pub(crate) fn walk(
        &mut self,
        spot: &Spot,
        follow_last: bool,
        mk: Option<(Mk, u32)>,
        made: &mut Vec<MadeNode>,
    ) -> Result<String, FakeError> {
        let mut cur: Vec<String> = Vec::new();
        let mut queue: VecDeque<String> = path::components(&spot.path).map(str::to_owned).collect();
        let mut hops = 0;
        let op = mk.map_or("resolve", |(m, _)| m.op);
        while let Some(c) = queue.pop_front() {
            if c == "." {
                continue;
            }
            if c == ".." {
                cur.pop();
                continue;
            }
            let last = queue.is_empty();
            cur.push(c);
            let full = path::join(&spot.jail, &cur.join("/"));
            let kind = self.node(spot.mns, &full).map(|(_, n)| n.kind.clone());
            match kind {
                None => match mk {
                    Some((m, pid)) if !last || m.last => {
                        let made_node =
                            self.create(m.op, pid, spot.mns, &full, NodeKind::Dir, m.mode)?;
                        made.push(made_node);
                    }
                    _ if last => {}
                    _ => return Err(FakeError::Missing { op, path: full }),
                },
                Some(NodeKind::Symlink(target)) if !last || follow_last => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(FakeError::Loop { path: full });
                    }
                    cur.pop();
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    for comp in path::components(&target).rev() {
                        queue.push_front(comp.to_owned());
                    }
                }
                Some(NodeKind::Dir) => {}
                Some(_) if !last => return Err(FakeError::NotDir { op, path: full }),
                Some(_) => {}
            }
        }
        Ok(path::join(&spot.jail, &cur.join("/")))
    }

    /// Resolves a spot for lookup only.
    pub(crate) fn resolve(&mut self, spot: &Spot, follow_last: bool) -> Result<String, FakeError> {
        self.walk(spot, follow_last, None, &mut Vec::new())
    }

    // ---- making and removing nodes ----

    /// Makes one node at canonical path `p` (its parent exists) as `pid` would: owned by
    /// its ids, `mode` less its umask.
    pub(crate) fn create(
        &mut self,
        op: &'static str,
        pid: u32,
        mns: Id,
        p: &str,
        kind: NodeKind,
        mode: u32,
    ) -> Result<MadeNode, FakeError> {
        let (uid, gid) = self.fs_ids(op, pid)?;
        let umask = self.proc(pid)?.umask;
        let mode = if matches!(kind, NodeKind::Symlink(_)) {
            0o777
        } else {
            mode & !umask
        };
        self.create_as(
            op,
            mns,
            p,
            Node {
                kind,
                mode,
                uid,
                gid,
            },
        )
    }

    /// Makes one node with exactly the given attributes.
    pub(crate) fn create_as(
        &mut self,
        op: &'static str,
        mns: Id,
        p: &str,
        node: Node,
    ) -> Result<MadeNode, FakeError> {
        let e = self
            .covering_entry(mns, p)
            .ok_or_else(|| FakeError::Missing {
                op,
                path: p.to_owned(),
            })?
            .clone();
        let fp = fs_path(&e, p);
        let root_was = self.root_was(mns);
        let fs = self.m.fs_mut(e.fs).ok_or_else(|| FakeError::Missing {
            op,
            path: p.to_owned(),
        })?;
        if !fs.kind.creatable() {
            return Err(FakeError::NotCreatable {
                op,
                path: p.to_owned(),
                fstype: fs.fstype.clone(),
            });
        }
        if e.flags.contains(MountFlag::Ro) {
            return Err(FakeError::ReadOnly {
                op,
                path: p.to_owned(),
            });
        }
        match fs.nodes.get(&path::parent(&fp)) {
            Some(n) if n.is_dir() => {}
            Some(_) => {
                return Err(FakeError::NotDir {
                    op,
                    path: path::parent(p),
                });
            }
            None => {
                return Err(FakeError::Missing {
                    op,
                    path: path::parent(p),
                });
            }
        }
        if fs.nodes.contains_key(&fp) {
            return Err(FakeError::Exists {
                op,
                path: p.to_owned(),
            });
        }
        fs.nodes.insert(fp.clone(), node);
        Ok(MadeNode {
            path: p.to_owned(),
            root_was,
            id: (e.fs, fp),
        })
    }

    /// Detaches the mounts (and what is mounted below them) that sit on node `id` in
    /// mount namespaces other than `mns`, as the kernel does when a node that is a mount
    /// point elsewhere is removed (since Linux 3.18).
    fn detach_elsewhere(&mut self, mns: Id, id: &(Id, String)) {
        let on_it = |e: &MountEntry| e.mountpoint.as_ref() == Some(id);
        let affected: Vec<Id> = self
            .m
            .ns
            .iter()
            .filter(|(ns_id, n)| {
                **ns_id != mns
                    && matches!(&n.data, NsData::Mount { mounts, .. } if mounts.iter().any(on_it))
            })
            .map(|(ns_id, _)| *ns_id)
            .collect();
        for ns_id in affected {
            if let Some(NsData::Mount { mounts, .. }) = self.m.ns_mut(ns_id).map(|n| &mut n.data) {
                while let Some(i) = mounts.iter().position(on_it) {
                    let t = mounts[i].target.clone();
                    let mut idx = 0;
                    mounts.retain(|e| {
                        let keep = idx < i || (idx > i && !path::strictly_under(&e.target, &t));
                        idx += 1;
                        keep
                    });
                }
            }
        }
    }

    /// Removes the node at canonical path `p` (a file, symlink, device or empty
    /// directory), as `rmdir`/`unlink` would.
    pub(crate) fn remove_node(
        &mut self,
        op: &'static str,
        mns: Id,
        p: &str,
        allow_dir: bool,
        expect: Option<&(Id, String)>,
    ) -> Result<(), FakeError> {
        if mount_at(self.mounts(mns), p).is_some() {
            return Err(FakeError::Busy {
                op,
                path: p.to_owned(),
                why: "it is a mount point".to_owned(),
            });
        }
        let Some((id, node)) = self.node(mns, p) else {
            return Err(FakeError::Missing {
                op,
                path: p.to_owned(),
            });
        };
        if expect.is_some_and(|want| *want != id) {
            return Err(FakeError::Missing {
                op,
                path: p.to_owned(),
            });
        }
        let is_dir = node.is_dir();
        if is_dir && !allow_dir {
            return Err(FakeError::IsDir {
                op,
                path: p.to_owned(),
            });
        }
        if self
            .mounts(mns)
            .iter()
            .any(|e| e.mountpoint.as_ref() == Some(&id))
        {
            return Err(FakeError::Busy {
                op,
                path: p.to_owned(),
                why: "a mount sits on it".to_owned(),
            });
        }
        let e = self
            .covering_entry(mns, p)
            .ok_or_else(|| FakeError::Missing {
                op,
                path: p.to_owned(),
            })?;
        if e.flags.contains(MountFlag::Ro) {
            return Err(FakeError::ReadOnly {
                op,
                path: p.to_owned(),
            });
        }
        let fs = self.m.fs_mut(id.0).ok_or_else(|| FakeError::Missing {
            op,
            path: p.to_owned(),
        })?;
        if !fs.kind.creatable() {
            return Err(FakeError::NotCreatable {
                op,
                path: p.to_owned(),
                fstype: fs.fstype.clone(),
            });
        }
        if is_dir && !fs.is_empty_dir(&id.1) {
            return Err(FakeError::NotEmpty {
                op,
                path: p.to_owned(),
            });
        }
        fs.nodes.remove(&id.1);
        self.detach_elsewhere(mns, &id);
        Ok(())
    }

    /// Where a made node is now, as the actor sees it: the path it was made at, moved
    /// under `/` if its namespace switched its root since.
    pub(crate) fn made_path(&self, mns: Id, n: &MadeNode) -> Option<String> {
        let now = self.root_switch(mns);
        if now.as_ref().map(|(given, _)| given) == n.root_was.as_ref() {
            return Some(n.path.clone());
        }
        match (&n.root_was, now) {
            (None, Some((_, canonical))) => {
                path::under(&n.path, &canonical).then(|| path::rebase(&n.path, &canonical, "/"))
            }
            _ => None,
        }
    }

    // ---- mounts ----

    /// Refuses a new mount under `parent` when `parent` is shared with a mount in another
    /// live mount namespace: the mount would show up there too.
    fn check_propagation(
        &self,
        op: &'static str,
        mns: Id,
        parent: &MountEntry,
        target: &str,
    ) -> Result<(), FakeError> {
        if parent.propagation != Propagation::Shared {
            return Ok(());
        }
        let Some(group) = parent.peer else {
            return Ok(());
        };
        for (id, n) in &self.m.ns {
            if *id == mns {
                continue;
            }
            if let NsData::Mount { mounts, .. } = &n.data
                && mounts
                    .iter()
                    .any(|e| e.propagation == Propagation::Shared && e.peer == Some(group))
            {
                return Err(FakeError::Propagates {
                    op,
                    target: target.to_owned(),
                    parent: parent.target.clone(),
                    ns: *id,
                });
            }
        }
        Ok(())
    }

    /// A new mount's propagation: shared in a new peer group under a shared parent (as
    /// the kernel does), else private.
    fn new_propagation(&mut self, parent: &MountEntry) -> (Propagation, Option<Id>) {
        if parent.propagation == Propagation::Shared {
            (Propagation::Shared, Some(self.id()))
        } else {
            (Propagation::Private, None)
        }
    }

    /// Resolves a mount target: it must exist.
    fn mount_target(&mut self, pid: u32, target: &Location) -> Result<(Spot, String), FakeError> {
        let spot = self.spot(pid, target)?;
        let missing = || FakeError::MountTargetMissing {
            target: target.to_string(),
        };
        let t = match self.resolve(&spot, true) {
            Ok(t) => t,
            Err(FakeError::Missing { .. }) => return Err(missing()),
            Err(e) => return Err(e),
        };
        if self.node(spot.mns, &t).is_none() {
            return Err(missing());
        }
        Ok((spot, t))
    }

    /// The mount entries a bind of canonical source `s` onto canonical target `t` adds:
    /// the bind itself, then (recursive) copies of the mounts below the source.
    fn bind_entries(
        &mut self,
        mns: Id,
        s: &str,
        t: &str,
        recursive: bool,
        parent: &MountEntry,
        mountpoint: (Id, String),
    ) -> Result<Vec<MountEntry>, FakeError> {
        let mounts = self.mounts(mns).to_vec();
        let vis = visible(&mounts);
        let src_i = covering(&mounts, s).ok_or_else(|| FakeError::Missing {
            op: "mount source",
            path: s.to_owned(),
        })?;
        let src = mounts[src_i].clone();
        let (propagation, peer) = self.new_propagation(parent);
        let mut out = vec![MountEntry {
            id: self.id(),
            target: t.to_owned(),
            fs: src.fs,
            fs_root: fs_path(&src, s),
            mountpoint: Some(mountpoint),
            source: src.source.clone(),
            fstype: src.fstype.clone(),
            flags: src.flags,
            locked: src.locked,
            propagation,
            peer,
            data: src.data.clone(),
        }];
        if recursive {
            for (i, e) in mounts.iter().enumerate() {
                if i != src_i && vis[i] && path::strictly_under(&e.target, s) {
                    let mut copy = e.clone();
                    copy.id = self.id();
                    copy.target = path::rebase(&e.target, s, t);
                    copy.propagation = Propagation::Private;
                    copy.peer = None;
                    out.push(copy);
                }
            }
        }
        Ok(out)
    }

    /// A new filesystem instance for `mount -t FSTYPE`, or the shared one it stands for
    /// (cgroup hierarchies), with the root it shows.
    fn fs_instance(
        &mut self,
        pid: u32,
        fstype: &str,
        source: &str,
        data: &str,
    ) -> Result<(Id, String), FakeError> {
        let op = "mount";
        let own = |w: &World, k| w.ns_of(pid, k);
        // FS_USERNS_MOUNT filesystems need CAP_SYS_ADMIN over the namespace they belong
        // to; the others over the initial user namespace.
        let (kind, gate) = match fstype {
            "proc" => (FsKind::Proc, own(self, Namespace::Pid)?),
            "sysfs" => (FsKind::Sysfs, own(self, Namespace::Network)?),
            "mqueue" => (FsKind::Mqueue, own(self, Namespace::Ipc)?),
            "tmpfs" => (FsKind::Tmpfs, own(self, Namespace::User)?),
            "devpts" => (FsKind::Devpts, own(self, Namespace::User)?),
            "overlay" => (FsKind::Overlay, own(self, Namespace::User)?),
            "devtmpfs" => (FsKind::Devtmpfs, self.initial_userns()),
            "cgroup" | "cgroup2" => {
                let cgns = own(self, Namespace::Cgroup)?;
                self.need_cap(op, pid, cap::SYS_ADMIN, cgns)?;
                let want: Option<Vec<String>> = (fstype == "cgroup").then(|| {
                    let mut v: Vec<String> = data
                        .split(',')
                        .filter(|o| {
                            !o.is_empty()
                                && !matches!(
                                    *o,
                                    "ro" | "rw"
                                        | "none"
                                        | "nosuid"
                                        | "nodev"
                                        | "noexec"
                                        | "xattr"
                                        | "noprefix"
                                        | "clone_children"
                                )
                        })
                        .map(str::to_owned)
                        .collect();
                    v.sort();
                    v
                });
                let found = self.m.fs.iter().find(|(_, f)| match (&f.kind, &want) {
                    (FsKind::Cgroup2, None) => true,
                    (FsKind::Cgroup1(ctrls), Some(w)) => ctrls == w,
                    _ => false,
                });
                let Some((id, _)) = found else {
                    return Err(FakeError::NoHierarchy {
                        fstype: fstype.to_owned(),
                        data: data.to_owned(),
                    });
                };
                let id = *id;
                let root = match self.m.ns.get(&cgns).map(|n| &n.data) {
                    Some(NsData::Cgroup { roots }) => {
                        roots.get(&id).cloned().unwrap_or_else(|| "/".to_owned())
                    }
                    _ => "/".to_owned(),
                };
                return Ok((id, root));
            }
            _ => (FsKind::Other, self.initial_userns()),
        };
        self.need_cap(op, pid, cap::SYS_ADMIN, gate)?;
        let mode = match kind {
            FsKind::Tmpfs | FsKind::Overlay | FsKind::Other => mode_from_data(data),
            _ => 0o755,
        };
        let mut fs = Fs::new(kind.clone(), fstype, source, mode);
        for (p, n) in template(&kind) {
            fs.nodes.insert(p.to_owned(), n);
        }
        if kind == FsKind::Overlay {
            self.overlay_layers(pid, data, &mut fs)?;
        }
        let id = self.id();
        self.m.add_fs(id, fs);
        Ok((id, "/".to_owned()))
    }

    /// Fills an overlay instance with a copy of its layers, lowest first (a snapshot:
    /// later writes stay in the instance).
    fn overlay_layers(&mut self, pid: u32, data: &str, fs: &mut Fs) -> Result<(), FakeError> {
        let mut layers: Vec<String> = Vec::new();
        for opt in data.split(',') {
            if let Some(l) = opt.strip_prefix("lowerdir=") {
                layers.extend(l.split(':').rev().map(str::to_owned));
            }
        }
        for opt in data.split(',') {
            if let Some(u) = opt.strip_prefix("upperdir=") {
                layers.push(u.to_owned());
            }
        }
        for layer in layers {
            let spot = self.spot_host(pid, &HostPath::new(layer.clone()))?;
            let p = self.resolve(&spot, true)?;
            let Some(((fsid, fp), _)) = self.node(spot.mns, &p) else {
                return Err(FakeError::Missing {
                    op: "mount -t overlay",
                    path: layer,
                });
            };
            let nodes: BTreeMap<String, Node> = self
                .m
                .fs
                .get(&fsid)
                .map(|src| {
                    src.children(&fp)
                        .map(|(k, n)| (path::rebase(k, &fp, "/"), n.clone()))
                        .collect()
                })
                .unwrap_or_default();
            fs.nodes.extend(nodes);
        }
        Ok(())
    }

    /// `mount(2)`.
    pub(crate) fn mount(&mut self, pid: u32, m: &MountOp) -> Result<(), FakeError> {
        let op = "mount";
        let (spot, t) = self.mount_target(pid, &m.target)?;
        let mns = spot.mns;
        self.need_cap(op, pid, cap::SYS_ADMIN, mns)?;
        let (tid, target_dir) = match self.node(mns, &t) {
            Some((id, n)) => (id, n.is_dir()),
            None => {
                return Err(FakeError::MountTargetMissing {
                    target: m.target.to_string(),
                });
            }
        };
        let parent =
            self.covering_entry(mns, &t)
                .cloned()
                .ok_or_else(|| FakeError::MountTargetMissing {
                    target: m.target.to_string(),
                })?;
        self.check_propagation(op, mns, &parent, &t)?;
        let entries = match &m.source {
            MountSource::Bind(h) => {
                let src = self.spot_host(pid, h)?;
                self.bind_op(pid, m, src, h.to_string(), &t, target_dir, &parent, tid)?
            }
            MountSource::BindLocation(l) => {
                let src = self.spot(pid, l)?;
                self.bind_op(pid, m, src, l.to_string(), &t, target_dir, &parent, tid)?
            }
            MountSource::Fs { fstype, source } => {
                if !target_dir {
                    return Err(FakeError::FsOnFile {
                        fstype: fstype.clone(),
                        target: m.target.to_string(),
                    });
                }
                let (fs, fs_root) = self.fs_instance(pid, fstype, source, &m.data)?;
                let mut flags = m.flags;
                flags.remove(MountFlag::Bind);
                flags.remove(MountFlag::Rec);
                let (propagation, peer) = self.new_propagation(&parent);
                vec![MountEntry {
                    id: self.id(),
                    target: t.clone(),
                    fs,
                    fs_root,
                    mountpoint: Some(tid),
                    source: source.clone(),
                    fstype: fstype.clone(),
                    flags,
                    locked: MountFlags::default(),
                    propagation,
                    peer,
                    data: m.data.clone(),
                }]
            }
        };
        let mounts = self.mounts_mut(mns).ok_or(FakeError::NamespaceGone {
            op,
            what: format!("mount namespace {mns}"),
        })?;
        mounts.extend(entries);
        Ok(())
    }

    /// The entries of a bind mount from `src` onto canonical target `t`.
    #[allow(clippy::too_many_arguments)]
    fn bind_op(
        &mut self,
        pid: u32,
        m: &MountOp,
        src: Spot,
        shown: String,
        t: &str,
        target_dir: bool,
        parent: &MountEntry,
        tid: (Id, String),
    ) -> Result<Vec<MountEntry>, FakeError> {
        if let Some(entry) = self.nsfs_bind(pid, &src.path, t, target_dir, parent, &tid, &shown)? {
            return Ok(vec![entry]);
        }
        let missing = || FakeError::Missing {
            op: "mount source",
            path: shown.clone(),
        };
        let s = match self.resolve(&src, true) {
            Ok(s) => s,
            Err(FakeError::Missing { .. }) => return Err(missing()),
            Err(e) => return Err(e),
        };
        let source_dir = self.node(src.mns, &s).ok_or_else(missing)?.1.is_dir();
        if source_dir != target_dir {
            return Err(FakeError::BindKind {
                from: shown,
                target: m.target.to_string(),
            });
        }
        self.bind_entries(
            src.mns,
            &s,
            t,
            m.flags.contains(MountFlag::Rec),
            parent,
            tid,
        )
    }

    /// A bind of `/proc/PID/ns/KIND` (or of a namespace file) onto a file: the target
    /// becomes a namespace file that keeps the namespace alive.
    #[allow(clippy::too_many_arguments)]
    fn nsfs_bind(
        &mut self,
        pid: u32,
        source: &str,
        t: &str,
        target_dir: bool,
        parent: &MountEntry,
        tid: &(Id, String),
        shown: &str,
    ) -> Result<Option<MountEntry>, FakeError> {
        let Some((who, kind)) = proc_ns_path(source) else {
            return Ok(None);
        };
        let of = match who {
            None => pid,
            Some(p) if self.m.procs.contains_key(&p) => p,
            Some(_) => return Ok(None),
        };
        if target_dir {
            return Err(FakeError::BindKind {
                from: shown.to_owned(),
                target: t.to_owned(),
            });
        }
        let ns = self.ns_of(of, kind)?;
        let mut fs = Fs::new(
            FsKind::Nsfs(BTreeMap::from([(kind, ns)])),
            "nsfs",
            "nsfs",
            0o444,
        );
        fs.nodes.insert("/".to_owned(), Node::file(0o444, ""));
        let id = self.id();
        self.m.add_fs(id, fs);
        let (propagation, peer) = self.new_propagation(parent);
        Ok(Some(MountEntry {
            id: self.id(),
            target: t.to_owned(),
            fs: id,
            fs_root: "/".to_owned(),
            mountpoint: Some(tid.clone()),
            source: "nsfs".to_owned(),
            fstype: "nsfs".to_owned(),
            flags: MountFlags::default(),
            locked: MountFlags::default(),
            propagation,
            peer,
            data: String::new(),
        }))
    }

    /// Resolves an op's mount point: it must be the target of a visible mount.
    fn mount_point(
        &mut self,
        op: &'static str,
        pid: u32,
        target: &Location,
    ) -> Result<(Id, usize), FakeError> {
        let spot = self.spot(pid, target)?;
        let not_mp = || FakeError::NotMountPoint {
            op,
            path: target.to_string(),
        };
        let t = match self.resolve(&spot, true) {
            Ok(t) => t,
            Err(FakeError::Missing { .. }) => return Err(not_mp()),
            Err(e) => return Err(e),
        };
        let i = mount_at(self.mounts(spot.mns), &t).ok_or_else(not_mp)?;
        Ok((spot.mns, i))
    }

    /// `mount -o remount`: the flags replace the mount's, but flags the kernel locked
    /// (copied from a more privileged mount namespace) are kept, as runc keeps them.
    pub(crate) fn remount(
        &mut self,
        pid: u32,
        target: &Location,
        flags: &MountFlags,
    ) -> Result<(), FakeError> {
        let op = "remount";
        let (mns, i) = self.mount_point(op, pid, target)?;
        self.need_cap(op, pid, cap::SYS_ADMIN, mns)?;
        let mounts = self.mounts_mut(mns).ok_or(FakeError::NamespaceGone {
            op,
            what: format!("mount namespace {mns}"),
        })?;
        let e = &mut mounts[i];
        let mut new = *flags;
        new.remove(MountFlag::Bind);
        new.remove(MountFlag::Rec);
        for f in e.locked.iter() {
            new.insert(f);
        }
        e.flags = new;
        Ok(())
    }

    /// `mount --make-[r]TYPE`.
    pub(crate) fn set_propagation(
        &mut self,
        pid: u32,
        target: &Location,
        propagation: Propagation,
        recursive: bool,
    ) -> Result<(), FakeError> {
        let op = "mount --make";
        let (mns, i) = self.mount_point(op, pid, target)?;
        self.need_cap(op, pid, cap::SYS_ADMIN, mns)?;
        let t = self.mounts(mns)[i].target.clone();
        let count = self.mounts(mns).len();
        let idxs: Vec<usize> = (i..count)
            .filter(|j| {
                *j == i || (recursive && path::strictly_under(&self.mounts(mns)[*j].target, &t))
            })
            .collect();
        let mut fresh = Vec::new();
        for _ in &idxs {
            fresh.push(self.id());
        }
        let mounts = self.mounts_mut(mns).ok_or(FakeError::NamespaceGone {
            op,
            what: format!("mount namespace {mns}"),
        })?;
        for (j, new_group) in idxs.into_iter().zip(fresh) {
            let e = &mut mounts[j];
            match propagation {
                Propagation::Shared => {
                    if e.propagation != Propagation::Shared {
                        e.propagation = Propagation::Shared;
                        e.peer = Some(new_group);
                    }
                }
                Propagation::Slave => {
                    if e.propagation == Propagation::Shared {
                        e.propagation = Propagation::Slave;
                    }
                }
                Propagation::Private | Propagation::Unbindable => {
                    e.propagation = propagation;
                    e.peer = None;
                }
            }
        }
        Ok(())
    }

    /// `umount2(2)`; a lazy umount takes the mounts below along.
    pub(crate) fn umount(
        &mut self,
        pid: u32,
        target: &Location,
        detach: bool,
    ) -> Result<(), FakeError> {
        let op = "umount";
        let (mns, i) = self.mount_point(op, pid, target)?;
        self.need_cap(op, pid, cap::SYS_ADMIN, mns)?;
        let mounts = self.mounts_mut(mns).ok_or(FakeError::NamespaceGone {
            op,
            what: format!("mount namespace {mns}"),
        })?;
        let t = mounts[i].target.clone();
        let below: Vec<usize> = (i + 1..mounts.len())
            .filter(|j| path::strictly_under(&mounts[*j].target, &t))
            .collect();
        if !detach && !below.is_empty() {
            return Err(FakeError::Busy {
                op,
                path: target.to_string(),
                why: format!("{} mounts below it", below.len()),
            });
        }
        let mut idx = 0;
        mounts.retain(|_| {
            let keep = idx != i && !below.contains(&idx);
            idx += 1;
            keep
        });
        Ok(())
    }

    /// runc's masked path: a read-only tmpfs over a directory, `/dev/null` over a file,
    /// nothing when it does not exist.
    pub(crate) fn mask(&mut self, pid: u32, loc: &Location) -> Result<(), FakeError> {
        let op = "mask";
        let spot = self.spot(pid, loc)?;
        let t = match self.resolve(&spot, true) {
            Ok(t) => t,
            Err(FakeError::Missing { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some((tid, node)) = self.node(spot.mns, &t).map(|(id, n)| (id, n.clone())) else {
            return Ok(());
        };
        self.need_cap(op, pid, cap::SYS_ADMIN, spot.mns)?;
        let parent = self.covering_entry(spot.mns, &t).cloned().ok_or_else(|| {
            FakeError::MountTargetMissing {
                target: loc.to_string(),
            }
        })?;
        self.check_propagation(op, spot.mns, &parent, &t)?;
        let entries = if node.is_dir() {
            let (fs, fs_root) = self.fs_instance(pid, "tmpfs", "tmpfs", "")?;
            let (propagation, peer) = self.new_propagation(&parent);
            vec![MountEntry {
                id: self.id(),
                target: t,
                fs,
                fs_root,
                mountpoint: Some(tid),
                source: "tmpfs".to_owned(),
                fstype: "tmpfs".to_owned(),
                flags: MountFlags::of(&[MountFlag::Ro]),
                locked: MountFlags::default(),
                propagation,
                peer,
                data: String::new(),
            }]
        } else {
            let null = Spot {
                mns: spot.mns,
                jail: "/".to_owned(),
                path: "/dev/null".to_owned(),
                shown: "/dev/null".to_owned(),
            };
            let s = self.resolve(&null, true)?;
            match self.node(spot.mns, &s) {
                Some((_, n)) if !n.is_dir() => {}
                _ => {
                    return Err(FakeError::Missing {
                        op,
                        path: "/dev/null".to_owned(),
                    });
                }
            }
            self.bind_entries(spot.mns, &s, &t, false, &parent, tid)?
        };
        if let Some(mounts) = self.mounts_mut(spot.mns) {
            mounts.extend(entries);
        }
        Ok(())
    }

    /// runc's readonly path: bind it onto itself and remount read-only; nothing when it
    /// does not exist.
    pub(crate) fn readonly(&mut self, pid: u32, loc: &Location) -> Result<(), FakeError> {
        let op = "readonly";
        let spot = self.spot(pid, loc)?;
        let t = match self.resolve(&spot, true) {
            Ok(t) => t,
            Err(FakeError::Missing { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some(tid) = self.node(spot.mns, &t).map(|(id, _)| id) else {
            return Ok(());
        };
        self.need_cap(op, pid, cap::SYS_ADMIN, spot.mns)?;
        let parent = self.covering_entry(spot.mns, &t).cloned().ok_or_else(|| {
            FakeError::MountTargetMissing {
                target: loc.to_string(),
            }
        })?;
        self.check_propagation(op, spot.mns, &parent, &t)?;
        let mut entries = self.bind_entries(spot.mns, &t, &t, true, &parent, tid)?;
        if let Some(first) = entries.first_mut() {
            first.flags.insert(MountFlag::Ro);
        }
        if let Some(mounts) = self.mounts_mut(spot.mns) {
            mounts.extend(entries);
        }
        Ok(())
    }

    /// The checks pivot_root and chroot share; returns the mount namespace, the new root's
    /// canonical path and its mount's index.
    fn root_switch_checks(
        &mut self,
        op: &'static str,
        pid: u32,
        new_root: &HostPath,
    ) -> Result<(Id, String, usize), FakeError> {
        let mns = self.ns_of(pid, Namespace::Mount)?;
        if Some(&mns) == self.host_ns.get(&Namespace::Mount) {
            return Err(FakeError::HostRootSwitch { op });
        }
        self.need_cap(op, pid, cap::SYS_ADMIN, mns)?;
        let spot = self.spot_host(pid, new_root)?;
        let not_mp = || FakeError::NotMountPoint {
            op,
            path: new_root.to_string(),
        };
        let r = match self.resolve(&spot, true) {
            Ok(r) => r,
            Err(FakeError::Missing { .. }) => return Err(not_mp()),
            Err(e) => return Err(e),
        };
        let mounts = self.mounts(mns);
        let i = mount_at(mounts, &r).ok_or_else(not_mp)?;
        if r == "/" {
            return Err(FakeError::Busy {
                op,
                path: new_root.to_string(),
                why: "it is the current root".to_owned(),
            });
        }
        // The new root's parent mount and the current root must not be shared.
        let below = covering(&mounts[..i], &r).map(|j| &mounts[j]);
        let root = mount_at(mounts, "/").map(|j| &mounts[j]);
        for m in [below, root].into_iter().flatten() {
            if m.propagation == Propagation::Shared {
                return Err(FakeError::SharedMount {
                    op,
                    path: m.target.clone(),
                });
            }
        }
        Ok((mns, r, i))
    }

    /// After a root switch into canonical `r`: every process of the namespace is rooted
    /// there, and `[ROOT]PATH` locations are container paths from now on.
    fn after_root_switch(&mut self, pid: u32, mns: Id, new_root: &HostPath, r: &str) {
        let given = path::join("/", new_root.as_str());
        if let Some(NsData::Mount { root_was, .. }) = self.m.ns_mut(mns).map(|n| &mut n.data) {
            *root_was = Some((given.clone(), r.to_owned()));
        }
        for (p, proc_) in &mut self.m.procs {
            if proc_.ns.get(&Namespace::Mount) == Some(&mns) {
                proc_.root = given.clone();
                proc_.cwd = if *p == pid || !path::under(&proc_.cwd, r) {
                    "/".to_owned()
                } else {
                    path::rebase(&proc_.cwd, r, "/")
                };
            }
        }
    }

    /// `pivot_root . .; umount -l .`: the new root's mount tree becomes the namespace's
    /// whole table, the old root is detached.
    pub(crate) fn pivot_root(&mut self, pid: u32, new_root: &HostPath) -> Result<(), FakeError> {
        let op = "pivot_root";
        let (mns, r, i) = self.root_switch_checks(op, pid, new_root)?;
        let mounts = self.mounts_mut(mns).ok_or(FakeError::NamespaceGone {
            op,
            what: format!("mount namespace {mns}"),
        })?;
        let kept: Vec<MountEntry> = mounts
            .iter()
            .enumerate()
            .filter(|(j, e)| *j >= i && path::under(&e.target, &r))
            .map(|(_, e)| {
                let mut e = e.clone();
                e.target = path::rebase(&e.target, &r, "/");
                e
            })
            .collect();
        *mounts = kept;
        if let Some(root) = mounts.first_mut() {
            root.mountpoint = None;
        }
        self.after_root_switch(pid, mns, new_root, &r);
        Ok(())
    }

    /// `mount --move . /; chroot .`: the new root's mount tree moves over `/`, hiding the
    /// old root (which stays in the table, below).
    pub(crate) fn chroot(&mut self, pid: u32, new_root: &HostPath) -> Result<(), FakeError> {
        let op = "chroot";
        let (mns, r, i) = self.root_switch_checks(op, pid, new_root)?;
        self.need_cap(op, pid, cap::SYS_CHROOT, self.ns_of(pid, Namespace::User)?)?;
        let mounts = self.mounts_mut(mns).ok_or(FakeError::NamespaceGone {
            op,
            what: format!("mount namespace {mns}"),
        })?;
        let mut moved = Vec::new();
        let mut idx = 0;
        mounts.retain(|e| {
            let take = idx >= i && path::under(&e.target, &r);
            idx += 1;
            if take {
                let mut e = e.clone();
                e.target = path::rebase(&e.target, &r, "/");
                moved.push(e);
            }
            !take
        });
        mounts.extend(moved);
        self.after_root_switch(pid, mns, new_root, &r);
        Ok(())
    }
}
