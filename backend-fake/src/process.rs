//! Processes and namespaces: clone, kill, unshare, setns, id maps, and the attributes a
//! process sets on itself before exec (identity, capabilities, limits).
//!
//! Ownership follows user_namespaces(7): a namespace is owned by the user namespace its
//! creator was in (a user namespace made in the same clone or unshare owns the others),
//! and privileged ops need the capability over the owner. A process entering a new user
//! namespace gets every capability in it.

use std::collections::{BTreeMap, BTreeSet};

use berth_core::plan::{
    CapSet, HostPath, IdMapKind, IdMapping, MountFlags, Namespace, NamespaceSet, Propagation,
    Rlimit,
};

use crate::FakeError;
use crate::fs::proc_ns_path;
use crate::model::{FsKind, Id, MountEntry, Ns, NsData, Proc, RUNTIME_PID};
use crate::net::loopback;
use crate::path;
use crate::world::{World, cap, full_caps, userns_caps};

/// The flags a copy into a less privileged mount namespace locks.
fn lockable(flags: &MountFlags) -> MountFlags {
    use berth_core::plan::MountFlag as F;
    flags
        .iter()
        .filter(|f| matches!(f, F::Ro | F::Nosuid | F::Nodev | F::Noexec))
        .collect()
}

/// The default limits of the runtime (a login session's).
pub(crate) fn default_rlimits() -> BTreeMap<Rlimit, (u64, u64)> {
    let inf = u64::MAX;
    Rlimit::ALL
        .iter()
        .map(|(r, _)| {
            let v = match r {
                Rlimit::RlimitNofile => (1024, 524_288),
                Rlimit::RlimitStack => (8 << 20, inf),
                Rlimit::RlimitCore => (0, inf),
                Rlimit::RlimitMemlock => (8 << 20, 8 << 20),
                Rlimit::RlimitMsgqueue => (819_200, 819_200),
                Rlimit::RlimitNproc | Rlimit::RlimitSigpending => (63_000, 63_000),
                Rlimit::RlimitNice | Rlimit::RlimitRtprio => (0, 0),
                _ => (inf, inf),
            };
            (*r, v)
        })
        .collect()
}

impl World {
    /// A new namespace of `kind` owned by `owner`, its contents taken from `from`'s
    /// current ones where the kernel copies them.
    fn new_ns(&mut self, kind: Namespace, owner: Id, from: &Proc) -> Id {
        let data = match kind {
            Namespace::Mount => {
                let src = from.ns.get(&Namespace::Mount).copied().unwrap_or(0);
                let src_owner = self.m.ns.get(&src).and_then(|n| n.owner);
                let less_privileged = src_owner != Some(owner)
                    && !(src_owner.is_none() && owner == self.initial_userns());
                let (mounts, root_was) = match self.m.ns.get(&src).map(|n| &n.data) {
                    Some(NsData::Mount { mounts, root_was }) => (mounts.clone(), root_was.clone()),
                    _ => (Vec::new(), None),
                };
                let mut copies: Vec<MountEntry> = Vec::new();
                for e in mounts {
                    let mut c = e;
                    c.id = self.id();
                    if less_privileged {
                        // CL_UNPRIVILEGED: flags lock, shared mounts become slaves.
                        let lock = lockable(&c.flags);
                        for f in lock.iter() {
                            c.locked.insert(f);
                        }
                        if c.propagation == Propagation::Shared {
                            c.propagation = Propagation::Slave;
                        }
                    }
                    copies.push(c);
                }
                NsData::Mount {
                    mounts: copies,
                    root_was,
                }
            }
            Namespace::Network => NsData::Net {
                links: BTreeMap::from([(1, loopback(false))]),
                routes: BTreeSet::new(),
                sysctl: BTreeMap::new(),
            },
            Namespace::Uts => match from
                .ns
                .get(&Namespace::Uts)
                .and_then(|id| self.m.ns.get(id))
                .map(|n| &n.data)
            {
                Some(NsData::Uts {
                    hostname,
                    domainname,
                }) => NsData::Uts {
                    hostname: hostname.clone(),
                    domainname: domainname.clone(),
                },
                _ => NsData::Uts {
                    hostname: String::new(),
                    domainname: String::new(),
                },
            },
            Namespace::Ipc => NsData::Ipc {
                sysctl: BTreeMap::new(),
            },
            Namespace::User => {
                let parent_allows = match from
                    .ns
                    .get(&Namespace::User)
                    .and_then(|id| self.m.ns.get(id))
                    .map(|n| &n.data)
                {
                    Some(NsData::User { setgroups, .. }) => *setgroups,
                    _ => true,
                };
                NsData::User {
                    uid_map: None,
                    gid_map: None,
                    setgroups: parent_allows,
                }
            }
            Namespace::Cgroup => NsData::Cgroup {
                roots: from.cgroups.clone(),
            },
            Namespace::Pid | Namespace::Time => NsData::Plain,
        };
        let id = self.id();
        self.m.add_ns(
            id,
            Ns {
                kind,
                owner: Some(owner),
                data,
            },
        );
        id
    }

    fn check_supported(&self, ns: &NamespaceSet) -> Result<(), FakeError> {
        for n in &ns.0 {
            if !self.facts.namespaces.contains(n) {
                return Err(FakeError::NamespaceUnsupported { ns: *n });
            }
        }
        Ok(())
    }

    /// Makes the namespaces of `ns` for process `p` (a clone's child or an unsharing
    /// process): the user namespace first, owning the rest.
    fn make_namespaces(
        &mut self,
        op: &'static str,
        actor: u32,
        p: &mut Proc,
        ns: &NamespaceSet,
        clone: bool,
    ) -> Result<(), FakeError> {
        self.check_supported(ns)?;
        let own_user = self.ns_of(actor, Namespace::User)?;
        if !ns.is_empty() && !ns.contains(Namespace::User) {
            self.need_cap(op, actor, cap::SYS_ADMIN, own_user)?;
        }
        let mut owner = own_user;
        if ns.contains(Namespace::User) {
            let snapshot = p.clone();
            owner = self.new_ns(Namespace::User, own_user, &snapshot);
            p.ns.insert(Namespace::User, owner);
            p.caps = userns_caps();
        }
        for kind in &ns.0 {
            if *kind == Namespace::User {
                continue;
            }
            let snapshot = p.clone();
            let id = self.new_ns(*kind, owner, &snapshot);
            match kind {
                // unshare(2) of these affects children only; a clone's child is in them.
                Namespace::Pid if !clone => p.pid_for_children = id,
                Namespace::Time if !clone => p.time_for_children = id,
                Namespace::Pid => {
                    p.ns.insert(*kind, id);
                    p.pid_for_children = id;
                }
                Namespace::Time => {
                    p.ns.insert(*kind, id);
                    p.time_for_children = id;
                }
                _ => {
                    p.ns.insert(*kind, id);
                }
            }
        }
        Ok(())
    }

    /// `clone(2)`: a child of `actor` in new namespaces `ns`, the rest inherited.
    pub(crate) fn spawn(&mut self, actor: u32, ns: &NamespaceSet) -> Result<u32, FakeError> {
        let parent = self.proc(actor)?.clone();
        let mut child = parent.clone();
        child.ns.insert(Namespace::Pid, parent.pid_for_children);
        child.ns.insert(Namespace::Time, parent.time_for_children);
        child.pending.clear();
        child.sent.clear();
        child.passed_start_barrier = false;
        child.exec = None;
        child.console = false;
        child.close_fds_above = None;
        self.make_namespaces("spawn", actor, &mut child, ns, true)?;
        let pid_ns = child.ns.get(&Namespace::Pid).copied().unwrap_or(0);
        child.pid_for_children = pid_ns;
        if let Some(t) = child.ns.get(&Namespace::Time) {
            child.time_for_children = *t;
        }
        let pinned = self.host_ns.values().any(|h| *h == pid_ns)
            || self.m.fs.values().any(|f| match &f.kind {
                FsKind::Nsfs(map) => map.values().any(|v| *v == pid_ns),
                _ => false,
            });
        child.pid_ns_leader = !pinned
            && !self
                .m
                .procs
                .values()
                .any(|p| p.ns.get(&Namespace::Pid) == Some(&pid_ns));
        let pid = self.next_pid;
        self.next_pid += 1;
        self.m.procs.insert(pid, child);
        Ok(pid)
    }

    /// SIGKILL and reap; the pid 1 of a pid namespace takes the namespace along.
    pub(crate) fn kill(&mut self, pid: u32) -> Result<(), FakeError> {
        let p = self
            .m
            .procs
            .remove(&pid)
            .ok_or(FakeError::NoProcess { op: "kill", pid })?;
        if p.pid_ns_leader {
            let ns = p.ns.get(&Namespace::Pid).copied();
            self.m.procs.retain(|q, other| {
                *q == RUNTIME_PID || other.ns.get(&Namespace::Pid).copied() != ns
            });
        }
        Ok(())
    }

    /// `unshare(2)`.
    pub(crate) fn unshare(&mut self, actor: u32, ns: &NamespaceSet) -> Result<(), FakeError> {
        let mut p = self.proc(actor)?.clone();
        self.make_namespaces("unshare", actor, &mut p, ns, false)?;
        self.m.procs.insert(actor, p);
        Ok(())
    }

    /// The namespace a path names: `/proc/PID/ns/KIND` of a live process, or a namespace
    /// file (a mount of nsfs).
    pub(crate) fn ns_by_path(
        &mut self,
        pid: u32,
        p: &HostPath,
        kind: Namespace,
        op: &'static str,
    ) -> Result<Id, FakeError> {
        let wrong = || FakeError::NamespaceKind {
            op,
            path: p.to_string(),
            wanted: kind,
        };
        if let Some((who, k)) = proc_ns_path(p.as_str()) {
            let of = match who {
                None => Some(pid),
                Some(q) if self.m.procs.contains_key(&q) => Some(q),
                Some(_) => None,
            };
            if let Some(of) = of {
                if k != kind {
                    return Err(wrong());
                }
                return self.ns_of(of, kind);
            }
        }
        let none = || FakeError::NoNamespace {
            path: p.to_string(),
        };
        let spot = self.spot_host(pid, p)?;
        let t = match self.resolve(&spot, true) {
            Ok(t) => t,
            Err(FakeError::Missing { .. }) => return Err(none()),
            Err(e) => return Err(e),
        };
        let e = self.covering_entry(spot.mns, &t).ok_or_else(none)?;
        if e.target != t {
            return Err(none());
        }
        match self.m.fs.get(&e.fs).map(|f| &f.kind) {
            Some(FsKind::Nsfs(map)) => map.get(&kind).copied().ok_or_else(wrong),
            _ => Err(none()),
        }
    }

    /// `setns(2)`.
    pub(crate) fn setns(
        &mut self,
        actor: u32,
        kind: Namespace,
        id: Id,
        shown: &str,
    ) -> Result<(), FakeError> {
        let op = "setns";
        match self.m.ns.get(&id) {
            Some(n) if n.kind == kind => {}
            Some(_) => {
                return Err(FakeError::NamespaceKind {
                    op,
                    path: shown.to_owned(),
                    wanted: kind,
                });
            }
            None => {
                return Err(FakeError::NamespaceGone {
                    op,
                    what: format!("{kind} namespace {id}"),
                });
            }
        }
        self.need_cap(op, actor, cap::SYS_ADMIN, id)?;
        if kind != Namespace::User {
            let own = self.ns_of(actor, Namespace::User)?;
            self.need_cap(op, actor, cap::SYS_ADMIN, own)?;
        }
        let root = match self.m.ns.get(&id).map(|n| &n.data) {
            Some(NsData::Mount { root_was, .. }) => root_was
                .as_ref()
                .map_or_else(|| "/".to_owned(), |(g, _)| g.clone()),
            _ => String::new(),
        };
        let p = self.proc_mut(actor)?;
        match kind {
            Namespace::Pid => p.pid_for_children = id,
            Namespace::Time => {
                p.ns.insert(kind, id);
                p.time_for_children = id;
            }
            Namespace::User => {
                p.ns.insert(kind, id);
                p.caps = userns_caps();
            }
            Namespace::Mount => {
                p.ns.insert(kind, id);
                p.root = root;
                p.cwd = "/".to_owned();
            }
            _ => {
                p.ns.insert(kind, id);
            }
        }
        Ok(())
    }

    fn user_ns_data(&mut self, op: &'static str, target: u32) -> Result<Id, FakeError> {
        let u = self.ns_of(target, Namespace::User)?;
        if u == self.initial_userns() {
            return Err(FakeError::NotPermitted {
                op,
                why: format!("process {target} is in the initial user namespace"),
            });
        }
        Ok(u)
    }

    /// `/proc/PID/setgroups`.
    pub(crate) fn write_setgroups(&mut self, target: u32, allow: bool) -> Result<(), FakeError> {
        let op = "write setgroups";
        let u = self.user_ns_data(op, target)?;
        match self.m.ns_mut(u).map(|n| &mut n.data) {
            Some(NsData::User {
                gid_map, setgroups, ..
            }) => {
                if gid_map.is_some() {
                    return Err(FakeError::NotPermitted {
                        op,
                        why: "gid_map is already written".to_owned(),
                    });
                }
                *setgroups = allow;
                Ok(())
            }
            _ => Err(FakeError::NamespaceGone {
                op,
                what: format!("user namespace {u}"),
            }),
        }
    }

    /// `/proc/PID/uid_map` or `gid_map`: once, valid lines, and either a privileged
    /// writer or the single own-id line an unprivileged one may write.
    pub(crate) fn write_id_map(
        &mut self,
        actor: u32,
        target: u32,
        kind: IdMapKind,
        mappings: &[IdMapping],
    ) -> Result<(), FakeError> {
        let gid = kind == IdMapKind::Gid;
        let op = if gid {
            "write gid_map"
        } else {
            "write uid_map"
        };
        let u = self.user_ns_data(op, target)?;
        if mappings.is_empty() || mappings.len() > 340 {
            return Err(FakeError::Invalid {
                op,
                why: format!("{} lines", mappings.len()),
            });
        }
        let end = |start: u32, size: u32| u64::from(start) + u64::from(size);
        for (i, a) in mappings.iter().enumerate() {
            if a.size == 0 {
                return Err(FakeError::Invalid {
                    op,
                    why: "a line of size 0".to_owned(),
                });
            }
            for b in &mappings[i + 1..] {
                let overlap =
                    |x: u32, y: u32| u64::from(x) < end(y, b.size) && u64::from(y) < end(x, a.size);
                if overlap(a.container_id, b.container_id) || overlap(a.host_id, b.host_id) {
                    return Err(FakeError::Invalid {
                        op,
                        why: "overlapping lines".to_owned(),
                    });
                }
            }
        }
        let parent = self
            .m
            .ns
            .get(&u)
            .and_then(|n| n.owner)
            .unwrap_or_else(|| self.initial_userns());
        let c = if gid { cap::SETGID } else { cap::SETUID };
        if !self.capable(actor, c, parent) {
            // An unprivileged writer may map its own id, once, size 1.
            let a = self.proc(actor)?;
            let own = if gid { a.gid } else { a.uid };
            let own_in_parent = self.in_userns(parent, own, gid);
            let single = matches!(mappings, [m] if m.size == 1 && Some(m.host_id) == own_in_parent);
            if !single {
                return Err(FakeError::NotPermitted {
                    op,
                    why: format!("an unprivileged writer may only map its own id {own}"),
                });
            }
            if gid
                && let Some(NsData::User { setgroups, .. }) = self.m.ns.get(&u).map(|n| &n.data)
                && *setgroups
            {
                return Err(FakeError::NotPermitted {
                    op,
                    why: "an unprivileged gid_map needs setgroups deny first".to_owned(),
                });
            }
        }
        match self.m.ns_mut(u).map(|n| &mut n.data) {
            Some(NsData::User {
                uid_map, gid_map, ..
            }) => {
                let slot = if gid { gid_map } else { uid_map };
                if slot.is_some() {
                    return Err(FakeError::NotPermitted {
                        op,
                        why: format!("the map of user namespace {u} is already written"),
                    });
                }
                *slot = Some(mappings.to_vec());
                Ok(())
            }
            _ => Err(FakeError::NamespaceGone {
                op,
                what: format!("user namespace {u}"),
            }),
        }
    }

    /// The id `id` of the actor's user namespace on the host, or EINVAL.
    fn map_id(&self, op: &'static str, actor: u32, id: u32, gid: bool) -> Result<u32, FakeError> {
        let u = self.ns_of(actor, Namespace::User)?;
        self.to_host_id(u, id, gid)
            .ok_or_else(|| FakeError::Invalid {
                op,
                why: format!(
                    "{} {id} has no mapping in user namespace {u}",
                    if gid { "gid" } else { "uid" }
                ),
            })
    }

    /// `setgroups(2)`.
    pub(crate) fn setgroups(&mut self, actor: u32, groups: &[u32]) -> Result<(), FakeError> {
        let op = "setgroups";
        let u = self.ns_of(actor, Namespace::User)?;
        if let Some(NsData::User {
            setgroups, gid_map, ..
        }) = self.m.ns.get(&u).map(|n| &n.data)
        {
            // Outside the initial user namespace, setgroups needs a gid map and `allow`.
            let initial = u == self.initial_userns();
            if !initial && (!*setgroups || gid_map.is_none()) {
                return Err(FakeError::NotPermitted {
                    op,
                    why: format!("setgroups is denied in user namespace {u}"),
                });
            }
        }
        self.need_cap(op, actor, cap::SETGID, u)?;
        let mapped = groups
            .iter()
            .map(|g| self.map_id(op, actor, *g, true))
            .collect::<Result<Vec<u32>, _>>()?;
        self.proc_mut(actor)?.groups = mapped;
        Ok(())
    }

    /// `setgid(2)`.
    pub(crate) fn setgid(&mut self, actor: u32, gid: u32) -> Result<(), FakeError> {
        let op = "setgid";
        let host = self.map_id(op, actor, gid, true)?;
        if host != self.proc(actor)?.gid {
            let u = self.ns_of(actor, Namespace::User)?;
            self.need_cap(op, actor, cap::SETGID, u)?;
        }
        self.proc_mut(actor)?.gid = host;
        Ok(())
    }

    /// `setuid(2)` with PR_SET_KEEPCAPS: leaving uid 0 clears the effective and ambient
    /// sets and keeps the permitted one.
    pub(crate) fn setuid(&mut self, actor: u32, uid: u32) -> Result<(), FakeError> {
        let op = "setuid";
        let host = self.map_id(op, actor, uid, false)?;
        let u = self.ns_of(actor, Namespace::User)?;
        let old = self.proc(actor)?.uid;
        if host != old {
            self.need_cap(op, actor, cap::SETUID, u)?;
        }
        let was_root = self.in_userns(u, old, false) == Some(0);
        let p = self.proc_mut(actor)?;
        p.uid = host;
        if was_root && uid != 0 {
            p.caps.effective = CapSet(0);
            p.caps.ambient = CapSet(0);
        }
        Ok(())
    }

    /// PR_CAPBSET_DROP of everything not in `keep`.
    pub(crate) fn cap_bounding(&mut self, actor: u32, keep: CapSet) -> Result<(), FakeError> {
        let op = "cap-bounding";
        let p = self.proc(actor)?;
        let new = CapSet(p.caps.bounding.0 & keep.0);
        if new != p.caps.bounding && p.caps.effective.0 & (1u64 << cap::SETPCAP) == 0 {
            return Err(FakeError::NotPermitted {
                op,
                why: "dropping from the bounding set needs CAP_SETPCAP".to_owned(),
            });
        }
        self.proc_mut(actor)?.caps.bounding = new;
        Ok(())
    }

    /// capset(2), then the ambient set. As runc, ambient capabilities the kernel refuses
    /// (not both permitted and inheritable) are left out, not an error.
    pub(crate) fn cap_set(
        &mut self,
        actor: u32,
        effective: CapSet,
        permitted: CapSet,
        inheritable: CapSet,
        ambient: CapSet,
    ) -> Result<(), FakeError> {
        let op = "cap-set";
        let p = self.proc(actor)?;
        let old = p.caps;
        let deny = |why: String| FakeError::NotPermitted { op, why };
        if !permitted.is_subset(old.permitted) {
            return Err(deny(format!(
                "permitted {permitted} is not within the current permitted {}",
                old.permitted
            )));
        }
        if !effective.is_subset(permitted) {
            return Err(deny(format!(
                "effective {effective} is not within permitted {permitted}"
            )));
        }
        let setpcap = old.effective.0 & (1u64 << cap::SETPCAP) != 0;
        let inh_limit = if setpcap {
            CapSet(old.inheritable.0 | old.bounding.0)
        } else {
            CapSet(old.inheritable.0 | old.permitted.0)
        };
        if !inheritable.is_subset(inh_limit)
            || !inheritable.is_subset(CapSet(old.inheritable.0 | old.bounding.0))
        {
            return Err(deny(format!(
                "inheritable {inheritable} is not within {inh_limit}"
            )));
        }
        let p = self.proc_mut(actor)?;
        p.caps.effective = effective;
        p.caps.permitted = permitted;
        p.caps.inheritable = inheritable;
        p.caps.ambient = CapSet(ambient.0 & permitted.0 & inheritable.0);
        Ok(())
    }

    /// setrlimit(2): raising a hard limit needs CAP_SYS_RESOURCE in the initial user
    /// namespace.
    pub(crate) fn set_rlimit(
        &mut self,
        actor: u32,
        resource: Rlimit,
        soft: u64,
        hard: u64,
    ) -> Result<(), FakeError> {
        let op = "setrlimit";
        if soft > hard {
            return Err(FakeError::Invalid {
                op,
                why: format!("{}: soft {soft} above hard {hard}", resource.name()),
            });
        }
        let old_hard = self
            .proc(actor)?
            .rlimits
            .get(&resource)
            .map_or(u64::MAX, |l| l.1);
        if hard > old_hard {
            let initial = self.initial_userns();
            if !self.capable(actor, cap::SYS_RESOURCE, initial) {
                return Err(FakeError::NotPermitted {
                    op,
                    why: format!(
                        "raising the hard {} from {old_hard} to {hard} needs CAP_SYS_RESOURCE",
                        resource.name()
                    ),
                });
            }
        }
        self.proc_mut(actor)?.rlimits.insert(resource, (soft, hard));
        Ok(())
    }

    /// `/proc/self/oom_score_adj`: lowering it needs CAP_SYS_RESOURCE.
    pub(crate) fn oom_score_adj(&mut self, actor: u32, v: i32) -> Result<(), FakeError> {
        let op = "oom-score-adj";
        if !(-1000..=1000).contains(&v) {
            return Err(FakeError::Invalid {
                op,
                why: format!("{v} is out of -1000..1000"),
            });
        }
        if v < self.proc(actor)?.oom_score_adj {
            let initial = self.initial_userns();
            if !self.capable(actor, cap::SYS_RESOURCE, initial) {
                return Err(FakeError::NotPermitted {
                    op,
                    why: format!("lowering it to {v} needs CAP_SYS_RESOURCE"),
                });
            }
        }
        self.proc_mut(actor)?.oom_score_adj = v;
        Ok(())
    }

    /// seccomp(2): needs no_new_privs or CAP_SYS_ADMIN.
    pub(crate) fn seccomp(&mut self, actor: u32, summary: String) -> Result<(), FakeError> {
        let op = "seccomp";
        if !self.facts.seccomp {
            return Err(FakeError::Unsupported {
                op,
                feature: "seccomp filters",
            });
        }
        let u = self.ns_of(actor, Namespace::User)?;
        if !self.proc(actor)?.no_new_privs && !self.capable(actor, cap::SYS_ADMIN, u) {
            return Err(FakeError::NotPermitted {
                op,
                why: "loading a filter needs no_new_privs or CAP_SYS_ADMIN".to_owned(),
            });
        }
        self.proc_mut(actor)?.seccomp.push(summary);
        Ok(())
    }

    /// The namespace that holds a namespaced sysctl.
    fn sysctl_ns(&self, actor: u32, key: &str) -> Result<Option<Id>, FakeError> {
        let ipc = [
            "kernel.msgmax",
            "kernel.msgmnb",
            "kernel.msgmni",
            "kernel.sem",
            "kernel.shmall",
            "kernel.shmmax",
            "kernel.shmmni",
            "kernel.shm_rmid_forced",
        ];
        Ok(if key.starts_with("net.") {
            Some(self.ns_of(actor, Namespace::Network)?)
        } else if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
            Some(self.ns_of(actor, Namespace::Ipc)?)
        } else if key == "kernel.hostname" || key == "kernel.domainname" {
            Some(self.ns_of(actor, Namespace::Uts)?)
        } else {
            None
        })
    }

    /// A write to `/proc/sys/KEY`, through the actor's `/proc`.
    pub(crate) fn sysctl(&mut self, actor: u32, key: &str, value: &str) -> Result<(), FakeError> {
        let op = "sysctl";
        if key.is_empty() || key.contains('/') || key.split('.').any(|c| c.is_empty() || c == "..")
        {
            return Err(FakeError::Invalid {
                op,
                why: format!("bad key {key:?}"),
            });
        }
        let file = format!("/proc/sys/{}", key.replace('.', "/"));
        let mns = self.ns_of(actor, Namespace::Mount)?;
        let spot = crate::fs::Spot {
            mns,
            jail: "/".to_owned(),
            path: "/proc/sys".to_owned(),
            shown: "/proc/sys".to_owned(),
        };
        let missing = || FakeError::Missing {
            op,
            path: "/proc/sys".to_owned(),
        };
        let dir = match self.resolve(&spot, true) {
            Ok(d) => d,
            Err(FakeError::Missing { .. }) => return Err(missing()),
            Err(e) => return Err(e),
        };
        self.node(mns, &dir).ok_or_else(missing)?;
        let e = self.covering_entry(mns, &dir).ok_or_else(missing)?;
        if self.m.fs.get(&e.fs).map(|f| &f.kind) != Some(&FsKind::Proc) {
            return Err(FakeError::NotPermitted {
                op,
                why: format!(
                    "/proc/sys is not procfs ({}), so {file} is not there",
                    e.fstype
                ),
            });
        }
        if e.flags.contains(berth_core::plan::MountFlag::Ro) {
            return Err(FakeError::ReadOnly { op, path: file });
        }
        let Some(ns) = self.sysctl_ns(actor, key)? else {
            return Err(FakeError::SysctlNotNamespaced {
                key: key.to_owned(),
            });
        };
        // /proc/sys files belong to root of the namespace's owner.
        let owner_userns = self
            .m
            .ns
            .get(&ns)
            .and_then(|n| n.owner)
            .unwrap_or_else(|| self.initial_userns());
        let own = self.ns_of(actor, Namespace::User)?;
        let uid = self.proc(actor)?.uid;
        if !self.userns_contains(own, owner_userns)
            || self.in_userns(owner_userns, uid, false) != Some(0)
        {
            return Err(FakeError::NotPermitted {
                op,
                why: format!("{file} belongs to root of {}", self.ns_text(owner_userns)),
            });
        }
        match self.m.ns_mut(ns).map(|n| &mut n.data) {
            Some(NsData::Net { sysctl, .. } | NsData::Ipc { sysctl }) => {
                sysctl.insert(key.to_owned(), value.to_owned());
            }
            Some(NsData::Uts {
                hostname,
                domainname,
            }) => {
                if key == "kernel.hostname" {
                    *hostname = value.to_owned();
                } else {
                    *domainname = value.to_owned();
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// sethostname(2) (`domain` false) or setdomainname(2).
    pub(crate) fn set_uts(
        &mut self,
        actor: u32,
        name: &str,
        domain: bool,
    ) -> Result<(), FakeError> {
        let op = if domain { "domainname" } else { "hostname" };
        if name.len() > 64 {
            return Err(FakeError::Invalid {
                op,
                why: format!("{name:?} is longer than 64 bytes"),
            });
        }
        let uts = self.ns_of(actor, Namespace::Uts)?;
        self.need_cap(op, actor, cap::SYS_ADMIN, uts)?;
        if let Some(NsData::Uts {
            hostname,
            domainname,
        }) = self.m.ns_mut(uts).map(|n| &mut n.data)
        {
            if domain {
                *domainname = name.to_owned();
            } else {
                *hostname = name.to_owned();
            }
        }
        Ok(())
    }

    /// The runtime process at start: root (or the user) in every host namespace.
    pub(crate) fn runtime_proc(&self, root: bool, euid: u32, egid: u32) -> Proc {
        let caps = if root {
            berth_core::plan::CapSets {
                bounding: full_caps(),
                effective: full_caps(),
                inheritable: CapSet(0),
                permitted: full_caps(),
                ambient: CapSet(0),
            }
        } else {
            berth_core::plan::CapSets {
                bounding: full_caps(),
                ..Default::default()
            }
        };
        let ns: BTreeMap<Namespace, Id> = self.host_ns.clone();
        let pid_ns = ns.get(&Namespace::Pid).copied().unwrap_or(0);
        let time_ns = ns.get(&Namespace::Time).copied().unwrap_or(0);
        Proc {
            ns,
            pid_for_children: pid_ns,
            time_for_children: time_ns,
            root: "/".to_owned(),
            cwd: "/".to_owned(),
            uid: euid,
            gid: egid,
            groups: Vec::new(),
            caps,
            no_new_privs: false,
            seccomp: Vec::new(),
            rlimits: default_rlimits(),
            oom_score_adj: 0,
            umask: 0o022,
            cgroups: BTreeMap::new(),
            pending: BTreeSet::new(),
            sent: BTreeSet::new(),
            passed_start_barrier: false,
            exec: None,
            console: false,
            close_fds_above: None,
            pid_ns_leader: false,
        }
    }

    /// The chown(2) ids `uid:gid` of the actor's user namespace on the host.
    pub(crate) fn chown_ids(
        &self,
        op: &'static str,
        actor: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(u32, u32), FakeError> {
        Ok((
            self.map_id(op, actor, uid, false)?,
            self.map_id(op, actor, gid, true)?,
        ))
    }

    /// The canonical path of `p` as the actor sees it, if a non-directory is there, and
    /// whether its mount is `noexec` (for hooks, exec and sockets).
    pub(crate) fn exists_file(
        &mut self,
        actor: u32,
        p: &str,
    ) -> Result<Option<(String, bool)>, FakeError> {
        let spot = self.spot_host(actor, &HostPath::new(p))?;
        let t = match self.resolve(&spot, true) {
            Ok(t) => t,
            Err(FakeError::Missing { .. } | FakeError::NotDir { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let noexec = self
            .covering_entry(spot.mns, &t)
            .is_some_and(|e| e.flags.contains(berth_core::plan::MountFlag::Noexec));
        Ok(match self.node(spot.mns, &t) {
            Some((_, n)) if !n.is_dir() => Some((t, noexec)),
            _ => None,
        })
    }

    /// Finds `argv[0]` as execve(2) after a `$PATH` search would.
    pub(crate) fn find_exec(
        &mut self,
        actor: u32,
        argv0: &str,
        env: &[String],
    ) -> Result<String, FakeError> {
        let not_found = || FakeError::ExecNotFound {
            name: argv0.to_owned(),
        };
        if argv0.is_empty() {
            return Err(not_found());
        }
        let candidates: Vec<String> = if argv0.contains('/') {
            vec![argv0.to_owned()]
        } else {
            let path_var = env
                .iter()
                .rev()
                .find_map(|e| e.strip_prefix("PATH="))
                .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
            path_var
                .split(':')
                .filter(|d| d.starts_with('/'))
                .map(|d| path::join(d, argv0))
                .collect()
        };
        for c in candidates {
            if let Some((t, noexec)) = self.exists_file(actor, &c)? {
                if noexec {
                    return Err(FakeError::NotPermitted {
                        op: "exec",
                        why: format!("{t} is on a noexec mount"),
                    });
                }
                return Ok(t);
            }
        }
        Err(not_found())
    }
}
