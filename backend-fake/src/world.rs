//! The fake host's whole mutable state, and the helpers every op shares: handle bindings,
//! the acting process, capabilities over namespaces, id mapping, and the collection of
//! namespaces and filesystems nothing keeps alive.
//!
//! Invariant: after every op that can orphan something, [`World::gc`] has run, so every
//! namespace in the model is kept alive by a process, a namespace file, a host pin or a
//! live namespace it owns, and every non-persistent filesystem is shown by a mount of a
//! live mount namespace.

use std::collections::{BTreeMap, BTreeSet};

use berth_core::host::HostFacts;
use berth_core::plan::{
    Actor, AnyRef, CAPABILITY_NAMES, CapSet, CapSets, FdRef, HookKind, IdMapping, IfRef, MadeRef,
    Namespace, PidRef, Plan,
};

use crate::FakeError;
use crate::model::{Id, Model, NsData, Proc, RUNTIME_PID};

/// Capability numbers the fake checks (linux/capability.h).
pub(crate) mod cap {
    pub(crate) const CHOWN: u8 = 0;
    pub(crate) const SETGID: u8 = 6;
    pub(crate) const SETUID: u8 = 7;
    pub(crate) const SETPCAP: u8 = 8;
    pub(crate) const NET_ADMIN: u8 = 12;
    pub(crate) const SYS_CHROOT: u8 = 18;
    pub(crate) const SYS_ADMIN: u8 = 21;
    pub(crate) const SYS_RESOURCE: u8 = 24;
    pub(crate) const MKNOD: u8 = 27;
}

/// Every capability the kernel knows.
pub(crate) fn full_caps() -> CapSet {
    let n = CAPABILITY_NAMES.len();
    CapSet(if n >= 64 { u64::MAX } else { (1u64 << n) - 1 })
}

/// The capability sets of a process that just entered a new user namespace.
pub(crate) fn userns_caps() -> CapSets {
    CapSets {
        bounding: full_caps(),
        effective: full_caps(),
        inheritable: CapSet(0),
        permitted: full_caps(),
        ambient: CapSet(0),
    }
}

/// The name of a capability number, for messages.
pub(crate) fn cap_name(n: u8) -> &'static str {
    CAPABILITY_NAMES
        .get(usize::from(n))
        .copied()
        .unwrap_or("CAP_?")
}

/// What an fd handle holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FdTarget {
    /// A namespace.
    Ns(Id),
    /// A pty master.
    Pty,
    /// A connected unix socket.
    Socket,
}

/// A node a `mkdir -p`-like op made: where the actor saw it, and which node it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MadeNode {
    /// Its canonical path in the actor's mount namespace when it was made.
    pub(crate) path: String,
    /// The namespace's root switch at that time (`None` before any).
    pub(crate) root_was: Option<String>,
    /// The node: filesystem and path in it.
    pub(crate) id: (Id, String),
}

/// What a `made` handle holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Made {
    /// Files and directories, outermost first.
    Nodes(Vec<MadeNode>),
    /// Cgroup directories of one hierarchy, outermost first: their paths in the
    /// hierarchy's filesystem, and as the op named them on the host.
    Cgroups {
        fs: Id,
        dirs: Vec<String>,
        shown: Vec<String>,
    },
    /// Controllers newly enabled in a `cgroup.subtree_control`.
    Controllers(Vec<String>),
    /// What a `sysctl-set` replaced: `None` when it changed nothing, else the old value
    /// (`None`: the key had its default).
    Sysctl(Option<Option<String>>),
    /// Whether a `fw ensure-table` made the table.
    FwTable(bool),
}

/// The value a handle is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Bound {
    Pid(u32),
    Fd(i32, FdTarget),
    If(u32),
    Made(Made),
}

/// A hook the fake ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookRun {
    /// Its list.
    pub kind: HookKind,
    /// Its index in the list.
    pub index: usize,
    /// Its executable.
    pub path: String,
    /// The init pid named in the state it was given.
    pub pid: u32,
    /// The process that ran it (the runtime's or init's namespaces).
    pub by: u32,
}

/// Facts the fake keeps from [`HostFacts`].
#[derive(Clone, Debug)]
pub(crate) struct Facts {
    pub(crate) namespaces: BTreeSet<Namespace>,
    pub(crate) seccomp: bool,
    pub(crate) hugepages: Vec<String>,
}

impl Facts {
    pub(crate) fn of(h: &HostFacts) -> Facts {
        Facts {
            namespaces: h.namespaces.iter().copied().collect(),
            seccomp: h.seccomp,
            hugepages: h.hugepage_sizes.clone(),
        }
    }
}

/// The whole mutable state: the host model plus what is not host state.
#[derive(Clone, Debug)]
pub(crate) struct World {
    pub(crate) m: Model,
    pub(crate) bindings: BTreeMap<usize, Bound>,
    pub(crate) next_pid: u32,
    pub(crate) next_fd: i32,
    pub(crate) next_if: u32,
    pub(crate) next_id: Id,
    pub(crate) hooks: Vec<HookRun>,
    /// Signals sent by `kill` and `cgroup-kill`: (pid, signal), in order.
    pub(crate) signals: Vec<(u32, i32)>,
    pub(crate) facts: Facts,
    /// The host's namespaces, pinned for ever (the host's own init holds them).
    pub(crate) host_ns: BTreeMap<Namespace, Id>,
}

/// What a failed step must leave as it was: the model and the counters. (Bindings and the
/// hook log change only as the last act of a step that succeeded.)
#[derive(Debug)]
pub(crate) struct Snapshot {
    m: Model,
    counters: (u32, i32, u32, Id),
}

impl World {
    /// Saves what a failed step must not change.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            m: self.m.clone(),
            counters: (self.next_pid, self.next_fd, self.next_if, self.next_id),
        }
    }

    /// Puts back a [`World::snapshot`].
    pub(crate) fn restore(&mut self, s: Snapshot) {
        self.m = s.m;
        (self.next_pid, self.next_fd, self.next_if, self.next_id) = s.counters;
    }

    /// A fresh id for a filesystem, namespace, mount or peer group.
    pub(crate) fn id(&mut self) -> Id {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ---- handles ----

    fn bound(&self, plan: &Plan, r: AnyRef) -> Result<&Bound, FakeError> {
        self.bindings
            .get(&r.index())
            .ok_or_else(|| FakeError::Unbound {
                name: plan.name_of(r).to_owned(),
            })
    }

    /// Binds a handle. A handle bound again (by another plan run on the same host: plans
    /// number their handles from 0) takes the new value; within one plan,
    /// [`Plan::check`] refuses a second binding.
    pub(crate) fn bind(&mut self, r: AnyRef, v: Bound) {
        self.bindings.insert(r.index(), v);
    }

    fn wrong(plan: &Plan, r: AnyRef, expected: &'static str) -> FakeError {
        FakeError::WrongBinding {
            name: plan.name_of(r).to_owned(),
            expected,
        }
    }

    /// The pid a pid handle holds.
    pub(crate) fn pid_of(&self, plan: &Plan, r: PidRef) -> Result<u32, FakeError> {
        match self.bound(plan, AnyRef::Pid(r))? {
            Bound::Pid(p) => Ok(*p),
            _ => Err(Self::wrong(plan, AnyRef::Pid(r), "a pid")),
        }
    }

    /// The pid a pid handle holds, which must be alive.
    pub(crate) fn live_pid(
        &self,
        plan: &Plan,
        r: PidRef,
        op: &'static str,
    ) -> Result<u32, FakeError> {
        let pid = self.pid_of(plan, r)?;
        if self.m.procs.contains_key(&pid) {
            Ok(pid)
        } else {
            Err(FakeError::NoProcess { op, pid })
        }
    }

    /// What an fd handle holds.
    pub(crate) fn fd_of(&self, plan: &Plan, r: FdRef) -> Result<FdTarget, FakeError> {
        match self.bound(plan, AnyRef::Fd(r))? {
            Bound::Fd(_, t) => Ok(t.clone()),
            _ => Err(Self::wrong(plan, AnyRef::Fd(r), "an fd")),
        }
    }

    /// The ifindex an interface handle holds.
    pub(crate) fn if_of(&self, plan: &Plan, r: IfRef) -> Result<u32, FakeError> {
        match self.bound(plan, AnyRef::If(r))? {
            Bound::If(i) => Ok(*i),
            _ => Err(Self::wrong(plan, AnyRef::If(r), "an ifindex")),
        }
    }

    /// What a made handle holds.
    pub(crate) fn made_of(&self, plan: &Plan, r: MadeRef) -> Result<Made, FakeError> {
        match self.bound(plan, AnyRef::Made(r))? {
            Bound::Made(m) => Ok(m.clone()),
            _ => Err(Self::wrong(plan, AnyRef::Made(r), "a record of changes")),
        }
    }

    /// A fresh fd number.
    pub(crate) fn fd(&mut self) -> i32 {
        let fd = self.next_fd;
        self.next_fd += 1;
        fd
    }

    /// A fresh ifindex.
    pub(crate) fn ifindex(&mut self) -> u32 {
        let i = self.next_if;
        self.next_if += 1;
        i
    }

    // ---- processes ----

    /// The most recently spawned live process other than the runtime.
    pub(crate) fn init_pid(&self) -> Option<u32> {
        self.m
            .procs
            .keys()
            .copied()
            .filter(|p| *p != RUNTIME_PID)
            .max()
    }

    /// The process that performs a step by `actor`.
    pub(crate) fn actor(&self, actor: Actor) -> Result<u32, FakeError> {
        match actor {
            Actor::Runtime => Ok(RUNTIME_PID),
            Actor::Init => {
                let pid = self.init_pid().ok_or(FakeError::NoInit)?;
                if self.proc(pid).is_ok_and(|p| p.exec.is_some()) {
                    return Err(FakeError::AfterExec { pid });
                }
                Ok(pid)
            }
        }
    }

    pub(crate) fn proc(&self, pid: u32) -> Result<&Proc, FakeError> {
        self.m
            .procs
            .get(&pid)
            .ok_or(FakeError::NoProcess { op: "step", pid })
    }

    pub(crate) fn proc_mut(&mut self, pid: u32) -> Result<&mut Proc, FakeError> {
        self.m
            .procs
            .get_mut(&pid)
            .ok_or(FakeError::NoProcess { op: "step", pid })
    }

    /// The namespace of `kind` that `pid` is in.
    pub(crate) fn ns_of(&self, pid: u32, kind: Namespace) -> Result<Id, FakeError> {
        let p = self.proc(pid)?;
        Ok(p.ns
            .get(&kind)
            .copied()
            .unwrap_or_else(|| self.host_ns.get(&kind).copied().unwrap_or(0)))
    }

    /// `net namespace 12`, for messages.
    pub(crate) fn ns_text(&self, id: Id) -> String {
        match self.m.ns.get(&id) {
            Some(n) => format!("{} namespace {id}", n.kind),
            None => format!("namespace {id}"),
        }
    }

    // ---- user namespaces and capabilities ----

    /// The user namespace whose capabilities govern `ns`: a user namespace itself, else
    /// its owner.
    fn governing_userns(&self, ns: Id) -> Id {
        let initial = self.host_ns.get(&Namespace::User).copied().unwrap_or(0);
        match self.m.ns.get(&ns) {
            Some(n) if n.kind == Namespace::User => ns,
            Some(n) => n.owner.unwrap_or(initial),
            None => initial,
        }
    }

    /// True when user namespace `a` is `u` or one of its ancestors.
    pub(crate) fn userns_contains(&self, a: Id, mut u: Id) -> bool {
        loop {
            if u == a {
                return true;
            }
            match self.m.ns.get(&u).and_then(|n| n.owner) {
                Some(parent) => u = parent,
                None => return false,
            }
        }
    }

    /// True when `pid` has capability `c` over namespace `ns`: `c` is effective and its
    /// user namespace is the one governing `ns` or an ancestor of it.
    pub(crate) fn capable(&self, pid: u32, c: u8, ns: Id) -> bool {
        let Ok(p) = self.proc(pid) else {
            return false;
        };
        if p.caps.effective.0 & (1u64 << c) == 0 {
            return false;
        }
        let own = p.ns.get(&Namespace::User).copied().unwrap_or(0);
        self.userns_contains(own, self.governing_userns(ns))
    }

    /// [`World::capable`], or the EPERM naming what is missing.
    pub(crate) fn need_cap(
        &self,
        op: &'static str,
        pid: u32,
        c: u8,
        ns: Id,
    ) -> Result<(), FakeError> {
        if self.capable(pid, c, ns) {
            Ok(())
        } else {
            Err(FakeError::NoCapability {
                op,
                cap: cap_name(c),
                ns: self.ns_text(ns),
            })
        }
    }

    /// The initial user namespace.
    pub(crate) fn initial_userns(&self) -> Id {
        self.host_ns.get(&Namespace::User).copied().unwrap_or(0)
    }

    fn id_map(&self, userns: Id, gid: bool) -> Option<&[IdMapping]> {
        match self.m.ns.get(&userns).map(|n| &n.data) {
            Some(NsData::User {
                uid_map, gid_map, ..
            }) => {
                let m = if gid { gid_map } else { uid_map };
                m.as_deref()
            }
            _ => None,
        }
    }

    /// The host id of id `id` of user namespace `userns` (`None` when unmapped).
    pub(crate) fn to_host_id(&self, userns: Id, id: u32, gid: bool) -> Option<u32> {
        let mut ns = userns;
        let mut id = id;
        loop {
            let parent = self.m.ns.get(&ns)?.owner;
            let Some(parent) = parent else {
                return Some(id);
            };
            let map = self.id_map(ns, gid)?;
            let line = map.iter().find(|m| {
                id >= m.container_id
                    && u64::from(id) < u64::from(m.container_id) + u64::from(m.size)
            })?;
            id = line.host_id + (id - line.container_id);
            ns = parent;
        }
    }

    /// The id that host id `host` has in user namespace `userns` (`None` when unmapped).
    pub(crate) fn in_userns(&self, userns: Id, host: u32, gid: bool) -> Option<u32> {
        let mut chain = Vec::new();
        let mut ns = userns;
        while let Some(n) = self.m.ns.get(&ns) {
            match n.owner {
                Some(parent) => {
                    chain.push(ns);
                    ns = parent;
                }
                None => break,
            }
        }
        let mut id = host;
        for ns in chain.into_iter().rev() {
            let map = self.id_map(ns, gid)?;
            let line = map.iter().find(|m| {
                id >= m.host_id && u64::from(id) < u64::from(m.host_id) + u64::from(m.size)
            })?;
            id = line.container_id + (id - line.host_id);
        }
        Some(id)
    }

    /// The host uid and gid that files made by `pid` get; EOVERFLOW when its ids have no
    /// mapping in its user namespace.
    pub(crate) fn fs_ids(&self, op: &'static str, pid: u32) -> Result<(u32, u32), FakeError> {
        let p = self.proc(pid)?;
        let userns = self.ns_of(pid, Namespace::User)?;
        let (uid, gid) = (p.uid, p.gid);
        if self.in_userns(userns, uid, false).is_none()
            || self.in_userns(userns, gid, true).is_none()
        {
            return Err(FakeError::NotPermitted {
                op,
                why: format!(
                    "ids {uid}:{gid} have no mapping in user namespace {userns} (EOVERFLOW)"
                ),
            });
        }
        Ok((uid, gid))
    }

    // ---- lifetime ----

    /// Drops namespaces and filesystems nothing keeps alive, and what dies with them
    /// (the mounts of a mount namespace, the veth ends whose peer's namespace died).
    pub(crate) fn gc(&mut self) {
        let mut live_ns: BTreeSet<Id> = self.host_ns.values().copied().collect();
        for p in self.m.procs.values() {
            live_ns.extend(p.ns.values().copied());
            live_ns.insert(p.pid_for_children);
            live_ns.insert(p.time_for_children);
        }
        let mut live_fs: BTreeSet<Id> = BTreeSet::new();
        loop {
            let before = (live_ns.len(), live_fs.len());
            for id in &live_ns {
                if let Some(NsData::Mount { mounts, .. }) = self.m.ns.get(id).map(|n| &n.data) {
                    live_fs.extend(mounts.iter().map(|e| e.fs));
                }
            }
            for (id, fs) in &self.m.fs {
                if fs.kind.persistent() {
                    live_fs.insert(*id);
                }
                if let crate::model::FsKind::Nsfs(map) = &fs.kind
                    && live_fs.contains(id)
                {
                    live_ns.extend(map.values().copied());
                }
            }
            let owners: Vec<Id> = live_ns
                .iter()
                .filter_map(|id| self.m.ns.get(id).and_then(|n| n.owner))
                .collect();
            live_ns.extend(owners);
            if (live_ns.len(), live_fs.len()) == before {
                break;
            }
        }
        self.m.ns.retain(|id, _| live_ns.contains(id));
        self.m.fw.retain(|id, _| live_ns.contains(id));
        self.m.fs.retain(|id, _| live_fs.contains(id));
        // A veth pair dies with either end's namespace.
        let live: BTreeSet<Id> = self.m.ns.keys().copied().collect();
        let orphaned = |l: &crate::model::Link| l.peer.is_some_and(|(ns, _)| !live.contains(&ns));
        let affected: Vec<Id> = self
            .m
            .ns
            .iter()
            .filter(|(_, n)| matches!(&n.data, NsData::Net { links, .. } if links.values().any(orphaned)))
            .map(|(id, _)| *id)
            .collect();
        for id in affected {
            if let Some(NsData::Net { links, routes, .. }) = self.m.ns_mut(id).map(|n| &mut n.data)
            {
                let dead: Vec<u32> = links
                    .iter()
                    .filter(|(_, l)| orphaned(l))
                    .map(|(i, _)| *i)
                    .collect();
                for i in &dead {
                    links.remove(i);
                }
                routes.retain(|r| r.2.is_none_or(|d| !dead.contains(&d)));
                for l in links.values_mut() {
                    if l.master.is_some_and(|m| dead.contains(&m)) {
                        l.master = None;
                    }
                }
            }
        }
    }
}
