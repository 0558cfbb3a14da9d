//! berth's fake backend: carries out a [`Plan`] against an in-memory model of a Linux host,
//! for golden and property tests.
//!
//! The model holds files, directories, symlinks and device nodes; the mount table of every
//! mount namespace; namespaces with their hostname, sysctls, id maps, links, addresses and
//! routes; cgroup v1 and v2 hierarchies with their interface files; and processes with
//! their namespaces, credentials, capabilities and limits. [`FakeHost`] applies each step
//! as the acting process (the runtime, or the init it spawned), refuses what a kernel would
//! refuse (a mount onto a missing directory, `pivot_root` to a non-mount point, a cgroup file
//! the layout lacks, `setns` into nothing, exec before the start barrier), binds handles to
//! deterministic values, records every step it applied, and can fail the n-th call on
//! request, so the very rollback of [`berth_core::exec::execute`] can be checked.
//!
//! Invariants: a step that fails changes nothing (the whole host is restored); the same
//! plan on the same host gives the same bindings, trace and [`HostState`], byte for byte.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cgroup;
mod error;
mod files;
mod fs;
mod model;
mod net;
mod netfw;
mod path;
mod process;
mod world;

use std::collections::BTreeMap;

use berth_core::exec::Backend;
use berth_core::host::{CgroupLayout, HostFacts};
use berth_core::plan::{
    Actor, AnyRef, IpNet, MountFlag, MountFlags, Namespace, NsSource, Op, Plan, Propagation, Step,
    SyncPoint,
};

use berth_core::state::{ContainerRecord, Status};

pub use error::FakeError;
pub use model::HostState;
pub use world::HookRun;

use model::{Fs, FsKind, Id, Model, MountEntry, Node, NodeKind, Ns, NsData, RUNTIME_PID};
use world::{Bound, FdTarget, Made, World};

/// The value a handle got when its op ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// A pid (from 1000 upward).
    Pid(u32),
    /// An fd (from 100 upward).
    Fd(i32),
    /// An ifindex (from 10 upward).
    If(u32),
    /// What an op made: paths as the actor saw them (`mkdir -p`, mount points), cgroup
    /// directories on the host, or enabled controllers.
    Made(Vec<String>),
}

/// An in-memory Linux host that carries out plans (see the crate docs).
#[derive(Clone, Debug)]
pub struct FakeHost {
    world: World,
    trace: Vec<Step>,
    calls: usize,
    fail_at: Option<usize>,
}

fn flags(list: &[MountFlag]) -> MountFlags {
    MountFlags::of(list)
}

impl FakeHost {
    /// A host laid out as `facts` says: `/`, `/proc`, `/sys`, `/dev` (with `null`, `zero`,
    /// ...), `/dev/pts`, `/dev/shm`, `/dev/mqueue`, `/run` (with `/run/berth`), `/tmp`,
    /// `/etc`, and the cgroup hierarchies of `facts.cgroup`; the runtime (pid 1) in the
    /// host's namespaces, root or not as `facts` says.
    pub fn new(facts: &HostFacts) -> Self {
        let mut w = World {
            m: Model::default(),
            bindings: BTreeMap::new(),
            next_pid: 1000,
            next_fd: 100,
            next_if: 10,
            next_id: 1,
            hooks: Vec::new(),
            signals: Vec::new(),
            facts: world::Facts::of(facts),
            host_ns: BTreeMap::new(),
        };
        for kind in Namespace::ALL {
            let data = match kind {
                Namespace::Mount => NsData::Mount {
                    mounts: Vec::new(),
                    root_was: None,
                },
                Namespace::Network => {
                    let mut lo = net::loopback(true);
                    lo.addrs
                        .insert(("127.0.0.1".parse().expect("a literal address"), 8));
                    NsData::Net {
                        links: BTreeMap::from([(1, lo)]),
                        routes: Default::default(),
                        sysctl: BTreeMap::new(),
                    }
                }
                Namespace::Uts => NsData::Uts {
                    hostname: "host".to_owned(),
                    domainname: "(none)".to_owned(),
                },
                Namespace::Ipc => NsData::Ipc {
                    sysctl: BTreeMap::new(),
                },
                Namespace::User => NsData::User {
                    uid_map: None,
                    gid_map: None,
                    setgroups: true,
                },
                Namespace::Cgroup => NsData::Cgroup {
                    roots: BTreeMap::new(),
                },
                Namespace::Pid | Namespace::Time => NsData::Plain,
            };
            let id = w.id();
            w.m.add_ns(
                id,
                Ns {
                    kind,
                    owner: None,
                    data,
                },
            );
            w.host_ns.insert(kind, id);
        }
        let runtime = w.runtime_proc(facts.root_in_init_userns, facts.euid, facts.egid);
        w.m.procs.insert(RUNTIME_PID, runtime);
        let mut host = FakeHost {
            world: w,
            trace: Vec::new(),
            calls: 0,
            fail_at: None,
        };
        host.lay_out(facts);
        host
    }

    fn host_mns(&self) -> Id {
        self.world
            .host_ns
            .get(&Namespace::Mount)
            .copied()
            .unwrap_or(0)
    }

    /// Makes the directories of `p` that are missing, in whatever filesystem shows them,
    /// following symlinks; returns the canonical path.
    #[track_caller]
    fn force_dirs(&mut self, p: &str) -> String {
        let mns = self.host_mns();
        let mut cur = "/".to_owned();
        for c in path::components(p) {
            let next = path::join(&cur, c);
            match self.world.node(mns, &next).map(|(_, n)| n.kind.clone()) {
                Some(NodeKind::Dir) => cur = next,
                Some(NodeKind::Symlink(_)) => {
                    let spot = fs::Spot {
                        mns,
                        jail: "/".to_owned(),
                        path: next.clone(),
                        shown: next.clone(),
                    };
                    match self.world.resolve(&spot, true) {
                        Ok(t) if self.world.node(mns, &t).is_some_and(|(_, n)| n.is_dir()) => {
                            cur = t;
                        }
                        _ => panic!("FakeHost layout: {next} is not a directory"),
                    }
                }
                Some(_) => panic!("FakeHost layout: {next} is not a directory"),
                None => {
                    self.force_node(&next, Node::dir(0o755));
                    cur = next;
                }
            }
        }
        cur
    }

    /// Puts a node at canonical path `p`, whatever filesystem shows it.
    fn force_node(&mut self, p: &str, node: Node) {
        let mns = self.host_mns();
        let Some(e) = self.world.covering_entry(mns, p).cloned() else {
            return;
        };
        let fp = path::join(&e.fs_root, &path::strip(p, &e.target));
        if let Some(fs) = self.world.m.fs_mut(e.fs) {
            fs.nodes.insert(fp, node);
        }
    }

    /// Mounts filesystem `fs` at `target` in the host's mount namespace, shared.
    fn host_mount(&mut self, target: &str, fs: Id, mount_flags: MountFlags, data: &str) {
        let mns = self.host_mns();
        let (fstype, source) = self
            .world
            .m
            .fs
            .get(&fs)
            .map(|f| (f.fstype.clone(), f.source.clone()))
            .unwrap_or_default();
        let mountpoint = if target == "/" {
            None
        } else {
            let t = self.force_dirs(target);
            self.world.node(mns, &t).map(|(id, _)| id)
        };
        let id = self.world.id();
        let peer = self.world.id();
        if let Some(mounts) = self.world.mounts_mut(mns) {
            mounts.push(MountEntry {
                id,
                target: target.to_owned(),
                fs,
                fs_root: "/".to_owned(),
                mountpoint,
                source,
                fstype,
                flags: mount_flags,
                locked: MountFlags::default(),
                propagation: Propagation::Shared,
                peer: Some(peer),
                data: data.to_owned(),
            });
        }
    }

    fn new_fs(&mut self, kind: FsKind, fstype: &str, source: &str, mode: u32) -> Id {
        let mut f = Fs::new(kind.clone(), fstype, source, mode);
        for (p, n) in fs::template(&kind) {
            f.nodes.insert(p.to_owned(), n);
        }
        let id = self.world.id();
        self.world.m.add_fs(id, f);
        id
    }

    fn lay_out(&mut self, facts: &HostFacts) {
        use MountFlag::{Nodev, Noexec, Nosuid, Relatime, Ro};
        let disk = self.new_fs(FsKind::Disk, "ext4", "/dev/sda1", 0o755);
        if let Some(f) = self.world.m.fs_mut(disk) {
            for d in [
                "/bin", "/dev", "/etc", "/proc", "/root", "/run", "/sys", "/usr", "/var",
            ] {
                f.nodes.insert(d.to_owned(), Node::dir(0o755));
            }
            f.nodes.insert("/tmp".to_owned(), Node::dir(0o1777));
            f.nodes.insert("/root".to_owned(), Node::dir(0o700));
        }
        self.host_mount("/", disk, flags(&[Relatime]), "");
        let proc_ = self.new_fs(FsKind::Proc, "proc", "proc", 0o555);
        self.host_mount(
            "/proc",
            proc_,
            flags(&[Nosuid, Nodev, Noexec, Relatime]),
            "",
        );
        let sys = self.new_fs(FsKind::Sysfs, "sysfs", "sysfs", 0o555);
        self.host_mount("/sys", sys, flags(&[Nosuid, Nodev, Noexec, Relatime]), "");
        let dev = self.new_fs(FsKind::Devtmpfs, "devtmpfs", "udev", 0o755);
        self.host_mount("/dev", dev, flags(&[Nosuid, Relatime]), "mode=755");
        let pts = self.new_fs(FsKind::Devpts, "devpts", "devpts", 0o755);
        self.host_mount(
            "/dev/pts",
            pts,
            flags(&[Nosuid, Noexec, Relatime]),
            "gid=5,mode=620,ptmxmode=000",
        );
        let shm = self.new_fs(FsKind::Tmpfs, "tmpfs", "tmpfs", 0o1777);
        self.host_mount("/dev/shm", shm, flags(&[Nosuid, Nodev]), "");
        let mq = self.new_fs(FsKind::Mqueue, "mqueue", "mqueue", 0o1777);
        self.host_mount(
            "/dev/mqueue",
            mq,
            flags(&[Nosuid, Nodev, Noexec, Relatime]),
            "",
        );
        let run = self.new_fs(FsKind::Tmpfs, "tmpfs", "tmpfs", 0o755);
        if let Some(f) = self.world.m.fs_mut(run) {
            f.nodes.insert("/berth".to_owned(), Node::dir(0o711));
        }
        self.host_mount("/run", run, flags(&[Nosuid, Nodev]), "mode=755");
        let cg_flags = flags(&[Nosuid, Nodev, Noexec, Relatime]);
        let hugepages = facts.hugepage_sizes.clone();
        match &facts.cgroup {
            CgroupLayout::V1 {
                hierarchies,
                unified,
            } => {
                let cgroot = self.new_fs(FsKind::Tmpfs, "tmpfs", "tmpfs", 0o755);
                self.host_mount(
                    "/sys/fs/cgroup",
                    cgroot,
                    flags(&[Ro, Nosuid, Nodev, Noexec]),
                    "mode=755",
                );
                let mut by_mount: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (ctrl, mount) in hierarchies {
                    by_mount
                        .entry(path::join("/", mount.as_str()))
                        .or_default()
                        .push(ctrl.clone());
                }
                for (mount, mut ctrls) in by_mount {
                    ctrls.sort();
                    let data = ctrls.join(",");
                    let id = self.new_fs(FsKind::Cgroup1(ctrls), "cgroup", "cgroup", 0o555);
                    if let Some(f) = self.world.m.fs_mut(id) {
                        cgroup::init_root(f, &hugepages, &[], &[]);
                    }
                    self.host_mount(&mount, id, cg_flags, &data);
                }
                if let Some(u) = unified {
                    let id = self.new_fs(FsKind::Cgroup2, "cgroup2", "cgroup2", 0o555);
                    if let Some(f) = self.world.m.fs_mut(id) {
                        cgroup::init_root(f, &hugepages, &[], &[]);
                    }
                    self.host_mount(&path::join("/", u.as_str()), id, cg_flags, "");
                }
            }
            CgroupLayout::V2 {
                mount,
                controllers,
                subtree_control,
            } => {
                let id = self.new_fs(FsKind::Cgroup2, "cgroup2", "cgroup2", 0o555);
                if let Some(f) = self.world.m.fs_mut(id) {
                    cgroup::init_root(f, &hugepages, controllers, subtree_control);
                }
                self.host_mount(&path::join("/", mount.as_str()), id, cg_flags, "");
            }
            CgroupLayout::None => {}
        }
        // The runtime starts in every hierarchy's root.
        let roots: BTreeMap<Id, String> = self
            .world
            .m
            .fs
            .iter()
            .filter(|(_, f)| f.kind.is_cgroup())
            .map(|(id, _)| (*id, "/".to_owned()))
            .collect();
        if let Some(p) = self.world.m.procs.get_mut(&RUNTIME_PID) {
            p.cgroups = roots.clone();
        }
        let cgns = self.world.host_ns.get(&Namespace::Cgroup).copied();
        if let Some(NsData::Cgroup { roots: r }) = cgns
            .and_then(|id| self.world.m.ns_mut(id))
            .map(|n| &mut n.data)
        {
            *r = roots;
        }
    }

    /// Adds a directory (and its missing parents) on the host.
    ///
    /// # Panics
    ///
    /// When a component of `path` exists and is not a directory: the layout is wrong.
    #[track_caller]
    pub fn with_dir(mut self, path: &str) -> Self {
        self.force_dirs(path);
        self
    }

    /// Adds a file with `content` (and its missing parent directories) on the host,
    /// replacing a file that is there.
    ///
    /// # Panics
    ///
    /// When a parent is not a directory or `path` is a directory.
    #[track_caller]
    pub fn with_file(mut self, path: &str, content: &str) -> Self {
        let p = self.leaf(path);
        self.force_node(&p, Node::file(0o644, content));
        self
    }

    /// Adds a symlink `path -> target` (and its missing parent directories) on the host.
    ///
    /// # Panics
    ///
    /// When a parent is not a directory or `path` is a directory.
    #[track_caller]
    pub fn with_symlink(mut self, path: &str, target: &str) -> Self {
        let p = self.leaf(path);
        self.force_node(
            &p,
            Node {
                kind: NodeKind::Symlink(target.to_owned()),
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
        );
        self
    }

    /// The canonical path for a new leaf at `path`: parents made, no directory there.
    #[track_caller]
    fn leaf(&mut self, path: &str) -> String {
        let parent = self.force_dirs(&path::parent(path));
        let p = path::join(&parent, path::name(path));
        let mns = self.host_mns();
        if self.world.node(mns, &p).is_some_and(|(_, n)| n.is_dir()) {
            panic!("FakeHost layout: {path} is a directory");
        }
        p
    }

    /// Adds a namespace file that `setns` by path (and netlink ops naming the path) can
    /// join, as `ip netns add` makes one: an nsfs mount on an empty file. It holds a
    /// namespace of every kind, so it may be joined as any kind (a pid namespace at
    /// `/proc/4242/ns/pid` as well as a network namespace at `/var/run/netns/x`).
    ///
    /// # Panics
    ///
    /// When a parent is not a directory or `path` is a directory.
    #[track_caller]
    pub fn with_netns_file(mut self, path: &str) -> Self {
        let p = self.leaf(path);
        self.force_node(&p, Node::file(0o444, ""));
        let initial = self.world.initial_userns();
        let mut map = BTreeMap::new();
        for kind in Namespace::ALL {
            let data = match kind {
                Namespace::Mount => {
                    // A copy of the host's mount table.
                    let mounts = self.world.mounts(self.host_mns()).to_vec();
                    NsData::Mount {
                        mounts,
                        root_was: None,
                    }
                }
                Namespace::Network => NsData::Net {
                    links: BTreeMap::from([(1, net::loopback(false))]),
                    routes: Default::default(),
                    sysctl: BTreeMap::new(),
                },
                Namespace::Uts => NsData::Uts {
                    hostname: String::new(),
                    domainname: String::new(),
                },
                Namespace::Ipc => NsData::Ipc {
                    sysctl: BTreeMap::new(),
                },
                Namespace::User => {
                    let all = vec![berth_core::plan::IdMapping {
                        container_id: 0,
                        host_id: 0,
                        size: u32::MAX,
                    }];
                    NsData::User {
                        uid_map: Some(all.clone()),
                        gid_map: Some(all),
                        setgroups: true,
                    }
                }
                Namespace::Cgroup => NsData::Cgroup {
                    roots: BTreeMap::new(),
                },
                Namespace::Pid | Namespace::Time => NsData::Plain,
            };
            let id = self.world.id();
            self.world.m.add_ns(
                id,
                Ns {
                    kind,
                    owner: Some(initial),
                    data,
                },
            );
            map.insert(kind, id);
        }
        let mut f = Fs::new(FsKind::Nsfs(map), "nsfs", "nsfs", 0o444);
        f.nodes.insert("/".to_owned(), Node::file(0o444, ""));
        let fs_id = self.world.id();
        self.world.m.add_fs(fs_id, f);
        let mns = self.host_mns();
        let mountpoint = self.world.node(mns, &p).map(|(id, _)| id);
        let id = self.world.id();
        if let Some(mounts) = self.world.mounts_mut(mns) {
            mounts.push(MountEntry {
                id,
                target: p,
                fs: fs_id,
                fs_root: "/".to_owned(),
                mountpoint,
                source: "nsfs".to_owned(),
                fstype: "nsfs".to_owned(),
                flags: MountFlags::default(),
                locked: MountFlags::default(),
                propagation: Propagation::Private,
                peer: None,
                data: String::new(),
            });
        }
        self
    }

    /// Makes the `n`-th call of [`Backend::apply`] (counting from 0, undo calls included)
    /// fail with [`FakeError::Injected`], changing nothing.
    pub fn failing_at(mut self, n: usize) -> Self {
        self.fail_at = Some(n);
        self
    }

    /// A comparable snapshot of everything the host holds (see [`HostState`]).
    pub fn state(&self) -> HostState {
        let mut model = self.world.m.clone();
        model.procs.remove(&RUNTIME_PID);
        HostState { model }
    }

    /// The steps applied so far, forward and undo, in order (failed steps are not).
    pub fn trace(&self) -> &[Step] {
        &self.trace
    }

    /// The trace in the plan's text format, numbered from 0 in order of application: for
    /// a successful run of the whole plan it equals `plan.to_string()`.
    pub fn trace_text(&self, plan: &Plan) -> String {
        self.trace
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{i} {}\n", plan.step_text(s)))
            .collect()
    }

    /// The value handle `r` was bound to, if it was.
    pub fn binding(&self, r: AnyRef) -> Option<Binding> {
        Some(match self.world.bindings.get(&r.index())? {
            Bound::Pid(p) => Binding::Pid(*p),
            Bound::Fd(fd, _) => Binding::Fd(*fd),
            Bound::If(i) => Binding::If(*i),
            Bound::Made(Made::Nodes(n)) => {
                Binding::Made(n.iter().map(|x| x.path.clone()).collect())
            }
            Bound::Made(Made::Cgroups { shown, .. }) => Binding::Made(shown.clone()),
            Bound::Made(Made::Controllers(c)) => Binding::Made(c.clone()),
            Bound::Made(Made::Sysctl(old)) => Binding::Made(
                old.iter()
                    .map(|v| v.clone().unwrap_or_else(|| "(default)".to_owned()))
                    .collect(),
            ),
            Bound::Made(Made::FwTable(made)) => Binding::Made(
                made.then(|| "table inet berth".to_owned())
                    .into_iter()
                    .collect(),
            ),
        })
    }

    /// The hooks run so far, in order.
    pub fn hooks(&self) -> &[HookRun] {
        &self.world.hooks
    }

    /// The signals sent so far by `kill -SIG` and `cgroup-kill` steps, as (pid, signal),
    /// in order (SIGKILL also ends the process).
    pub fn signals(&self) -> &[(u32, i32)] {
        &self.world.signals
    }

    /// The start time of a live process as `/proc/PID/stat` would give it (the fake's
    /// processes start at deterministic times: see [`start_time`]), or `None` when the
    /// process is gone.
    pub fn process_start_time(&self, pid: u32) -> Option<u64> {
        self.world
            .m
            .procs
            .contains_key(&pid)
            .then(|| start_time(pid))
    }

    /// How many times [`Backend::apply`] was called.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// The host path of the file at `path` as the runtime sees it, with its content, if
    /// it is a regular file.
    pub fn file(&self, path: &str) -> Option<String> {
        let mut w = self.world.clone();
        let mns = self.host_mns();
        let spot = fs::Spot {
            mns,
            jail: "/".to_owned(),
            path: path.to_owned(),
            shown: path.to_owned(),
        };
        let p = w.resolve(&spot, true).ok()?;
        match w.node(mns, &p).map(|(_, n)| n.kind.clone()) {
            Some(NodeKind::File(c)) => Some(c),
            _ => None,
        }
    }

    /// True when `path` exists as the runtime sees it (following symlinks).
    pub fn exists(&self, path: &str) -> bool {
        let mut w = self.world.clone();
        let mns = self.host_mns();
        let spot = fs::Spot {
            mns,
            jail: "/".to_owned(),
            path: path.to_owned(),
            shown: path.to_owned(),
        };
        w.resolve(&spot, true)
            .ok()
            .is_some_and(|p| w.node(mns, &p).is_some())
    }
}

/// The start time the fake gives process `pid`: pids are never reused in the fake, so any
/// injective function of the pid names the process as well as the kernel's does.
pub fn start_time(pid: u32) -> u64 {
    1_000_000 + u64::from(pid)
}

/// The time every record of the fake is created at.
pub const CREATED: &str = "1970-01-01T00:00:00.000000000Z";

/// What a `state-write` records: the container's record as the Linux backend writes it,
/// with the fake's deterministic start time, creation time and owner.
struct RecordFields<'a> {
    id: &'a str,
    bundle: &'a berth_core::plan::HostPath,
    rootfs: &'a berth_core::plan::HostPath,
    status: &'a str,
    annotations: &'a BTreeMap<String, String>,
    poststop: &'a [berth_core::plan::HookSpec],
}

/// The `state.json` a `state-write` makes.
fn state_json(
    plan: &Plan,
    w: &RecordFields<'_>,
    pid: u32,
    owner: u32,
) -> Result<String, FakeError> {
    let status = Status::parse(w.status).ok_or_else(|| FakeError::Invalid {
        op: "state-write",
        why: format!("unknown status {:?}", w.status),
    })?;
    let record = ContainerRecord {
        oci_version: "1.2.1".to_owned(),
        id: w.id.to_owned(),
        status,
        pid,
        start_time: start_time(pid),
        bundle: w.bundle.clone(),
        rootfs: w.rootfs.clone(),
        created: CREATED.to_owned(),
        annotations: w.annotations.clone(),
        owner: if owner == 0 {
            "root".to_owned()
        } else {
            format!("#{owner}")
        },
        poststop: w.poststop.to_vec(),
        plan: plan.clone(),
    };
    serde_json::to_string(&record).map_err(|e| FakeError::Invalid {
        op: "state-write",
        why: e.to_string(),
    })
}

/// Carries out one step as its actor. Exhaustive over [`Op`]: a new op does not compile
/// until the fake handles it. Each arm binds its handle (or logs its hook) last, after
/// everything that can fail, so a failed step leaves the bindings alone.
#[deny(clippy::wildcard_enum_match_arm)]
fn apply_step(w: &mut World, plan: &Plan, step: &Step) -> Result<(), FakeError> {
    let actor = w.actor(step.actor)?;
    match &step.op {
        Op::StateCreate { dir } => w.state_create(actor, dir),
        Op::StateRemove { dir } => w.state_remove(actor, dir),
        Op::StateWrite {
            dir,
            id,
            bundle,
            pid,
            status,
            rootfs,
            annotations,
            poststop,
        } => {
            let pid = w.pid_of(plan, *pid)?;
            let owner = w.proc(actor)?.uid;
            let fields = RecordFields {
                id,
                bundle,
                rootfs,
                status,
                annotations,
                poststop,
            };
            let json = state_json(plan, &fields, pid, owner)?;
            w.state_write(actor, dir, &json)
        }
        Op::WritePidFile { path, pid } => {
            let pid = w.pid_of(plan, *pid)?;
            w.write_pid_file(actor, path, pid)
        }
        Op::Unlink { path } => w.unlink(actor, path),
        Op::Spawn { ns, pid } => {
            let child = w.spawn(actor, ns)?;
            w.bind(AnyRef::Pid(*pid), Bound::Pid(child));
            Ok(())
        }
        Op::Kill { pid } => {
            let pid = w.live_pid(plan, *pid, "kill")?;
            w.kill(pid)
        }
        Op::Adopt {
            pid,
            value,
            start_time: recorded,
        } => {
            if !w.m.procs.contains_key(value) || *value == RUNTIME_PID {
                return Err(FakeError::NoProcess {
                    op: "adopt",
                    pid: *value,
                });
            }
            let found = start_time(*value);
            if found != *recorded {
                return Err(FakeError::NotThatProcess {
                    pid: *value,
                    recorded: *recorded,
                    found,
                });
            }
            w.bind(AnyRef::Pid(*pid), Bound::Pid(*value));
            Ok(())
        }
        Op::Recall { pid, value } => {
            w.bind(AnyRef::Pid(*pid), Bound::Pid(*value));
            Ok(())
        }
        Op::SendSignal { pid, signal } => {
            let pid = w.live_pid(plan, *pid, "kill")?;
            deliver(w, &[pid], *signal)
        }
        Op::SignalCgroup { cgroup, signal } => {
            let targets = w.cgroup_kill_targets(actor, cgroup)?;
            deliver(w, &targets, *signal)
        }
        Op::Unshare { ns } => w.unshare(actor, ns),
        Op::Setns { ns, from } => {
            let (id, shown) = match from {
                NsSource::Path(p) => (w.ns_by_path(actor, p, *ns, "setns")?, p.to_string()),
                NsSource::Fd(fd) => {
                    let shown = format!("${}", plan.name_of(AnyRef::Fd(*fd)));
                    match w.fd_of(plan, *fd)? {
                        FdTarget::Ns(id) => (id, shown),
                        FdTarget::Pty | FdTarget::Socket => {
                            return Err(FakeError::NamespaceKind {
                                op: "setns",
                                path: shown,
                                wanted: *ns,
                            });
                        }
                    }
                }
            };
            w.setns(actor, *ns, id, &shown)
        }
        Op::OpenNs { of, ns, fd } => {
            let of = w.live_pid(plan, *of, "open-ns")?;
            let id = w.ns_of(of, *ns)?;
            let n = w.fd();
            w.bind(AnyRef::Fd(*fd), Bound::Fd(n, FdTarget::Ns(id)));
            Ok(())
        }
        Op::OpenOwnNs { ns, fd } => {
            let id = w.ns_of(actor, *ns)?;
            let n = w.fd();
            w.bind(AnyRef::Fd(*fd), Bound::Fd(n, FdTarget::Ns(id)));
            Ok(())
        }
        Op::WriteSetgroups { pid, allow } => {
            let pid = w.live_pid(plan, *pid, "write setgroups")?;
            w.write_setgroups(pid, *allow)
        }
        Op::WriteIdMap {
            pid,
            kind,
            mappings,
        } => {
            let pid = w.live_pid(plan, *pid, "write id map")?;
            w.write_id_map(actor, pid, *kind, mappings)
        }
        Op::Signal(point) => signal(w, step.actor, actor, *point),
        Op::Wait(point) => wait(w, step.actor, actor, *point),
        Op::MkdirAll { path, mode, made } => {
            let m = w.mkdir_all(actor, path, *mode)?;
            w.bind(AnyRef::Made(*made), Bound::Made(m));
            Ok(())
        }
        Op::MkMountPoint { path, source, made } => {
            let m = w.mkmountpoint(actor, path, source.as_ref())?;
            w.bind(AnyRef::Made(*made), Bound::Made(m));
            Ok(())
        }
        Op::RemoveMade { made } => {
            let name = plan.name_of(AnyRef::Made(*made)).to_owned();
            match w.made_of(plan, *made)? {
                Made::Nodes(nodes) => w.remove_made(actor, &nodes),
                Made::Cgroups { fs, dirs, shown } => {
                    for (d, s) in dirs.iter().zip(&shown).rev() {
                        w.cgroup_rmdir("remove-made", fs, d, s)?;
                    }
                    Ok(())
                }
                Made::Controllers(_) => Err(FakeError::MadeKind {
                    op: "remove-made",
                    name,
                    holds: "enabled controllers (undo them with cgroup-disable)",
                }),
                Made::Sysctl(_) | Made::FwTable(_) => Err(FakeError::MadeKind {
                    op: "remove-made",
                    name,
                    holds: "a sysctl value or a firewall table, not made paths",
                }),
            }
        }
        Op::Symlink { target, link } => w.symlink(actor, target, link),
        Op::Mknod {
            path,
            kind,
            major,
            minor,
            mode,
            uid,
            gid,
        } => w.mknod(actor, path, *kind, *major, *minor, *mode, *uid, *gid),
        Op::Chown { path, uid, gid } => w.chown(actor, path, *uid, *gid),
        Op::Mount(m) => w.mount(actor, m),
        Op::Remount { target, flags } => w.remount(actor, target, flags),
        Op::SetPropagation {
            target,
            propagation,
            recursive,
        } => w.set_propagation(actor, target, *propagation, *recursive),
        Op::Umount { target, detach } => w.umount(actor, target, *detach),
        Op::MaskPath { path } => w.mask(actor, path),
        Op::ReadonlyPath { path } => w.readonly(actor, path),
        Op::PivotRoot { new_root } => w.pivot_root(actor, new_root),
        Op::Chroot { new_root } => w.chroot(actor, new_root),
        Op::Chdir { path } => w.chdir(actor, path),
        Op::SetHostname(h) => w.set_uts(actor, h, false),
        Op::SetDomainname(d) => w.set_uts(actor, d, true),
        Op::Sysctl { key, value } => w.sysctl(actor, key, value),
        Op::SetRlimit {
            resource,
            soft,
            hard,
        } => w.set_rlimit(actor, *resource, *soft, *hard),
        Op::OomScoreAdj(v) => w.oom_score_adj(actor, *v),
        Op::Umask(m) => {
            w.proc_mut(actor)?.umask = m & 0o777;
            Ok(())
        }
        Op::CapBounding(keep) => w.cap_bounding(actor, *keep),
        Op::CapSet {
            effective,
            permitted,
            inheritable,
            ambient,
        } => w.cap_set(actor, *effective, *permitted, *inheritable, *ambient),
        Op::Setgroups(groups) => w.setgroups(actor, groups),
        Op::Setgid(g) => w.setgid(actor, *g),
        Op::Setuid(u) => w.setuid(actor, *u),
        Op::NoNewPrivs => {
            w.proc_mut(actor)?.no_new_privs = true;
            Ok(())
        }
        Op::Seccomp(profile) => {
            let summary = format!(
                "default={} rules={} flags={}",
                profile.default_action,
                profile.rules.len(),
                profile.flags.join(",")
            );
            w.seccomp(actor, summary)
        }
        Op::CloseFds { preserve } => {
            w.proc_mut(actor)?.close_fds_above = Some(2 + preserve);
            Ok(())
        }
        Op::SetupConsole {
            master,
            keep_console,
            ..
        } => {
            w.setup_console(actor, !keep_console)?;
            let n = w.fd();
            w.bind(AnyRef::Fd(*master), Bound::Fd(n, FdTarget::Pty));
            Ok(())
        }
        Op::ConnectSocket { path, fd } => {
            w.connect(actor, path)?;
            let n = w.fd();
            w.bind(AnyRef::Fd(*fd), Bound::Fd(n, FdTarget::Socket));
            Ok(())
        }
        Op::SendFd { fd, socket } => {
            w.fd_of(plan, *fd)?;
            match w.fd_of(plan, *socket)? {
                FdTarget::Socket => Ok(()),
                FdTarget::Ns(_) | FdTarget::Pty => Err(FakeError::NotASocket {
                    name: format!("${}", plan.name_of(AnyRef::Fd(*socket))),
                }),
            }
        }
        Op::RunHook {
            kind,
            index,
            hook,
            pid,
        } => {
            let pid = w.pid_of(plan, *pid)?;
            if w.exists_file(actor, &hook.path)?.is_none() {
                return Err(FakeError::HookNotFound {
                    kind: *kind,
                    index: *index,
                    path: hook.path.clone(),
                });
            }
            w.hooks.push(HookRun {
                kind: *kind,
                index: *index,
                path: hook.path.clone(),
                pid,
                by: actor,
            });
            Ok(())
        }
        Op::Exec { argv, env } => {
            if step.actor == Actor::Runtime {
                return Err(FakeError::RuntimeExec);
            }
            // `exec`'s process (spawned by a plan that adopts a running container's init)
            // has no start barrier to pass.
            let barrier = !plan.steps.iter().any(|s| matches!(s.op, Op::Adopt { .. }));
            if barrier && !w.proc(actor)?.passed_start_barrier {
                return Err(FakeError::ExecBeforeStart);
            }
            let argv0 = argv.first().map(String::as_str).unwrap_or("");
            w.find_exec(actor, argv0, env)?;
            w.proc_mut(actor)?.exec = Some(argv.clone());
            Ok(())
        }
        Op::CgroupCreate { cgroup, made } => {
            let m = w.cgroup_create(actor, cgroup)?;
            w.bind(AnyRef::Made(*made), Bound::Made(m));
            Ok(())
        }
        Op::CgroupEnable {
            cgroup,
            controllers,
            made,
        } => {
            let m = w.cgroup_enable(actor, cgroup, controllers)?;
            w.bind(AnyRef::Made(*made), Bound::Made(m));
            Ok(())
        }
        Op::CgroupDisable { cgroup, made } => {
            let name = plan.name_of(AnyRef::Made(*made)).to_owned();
            match w.made_of(plan, *made)? {
                Made::Controllers(c) => w.cgroup_disable(actor, cgroup, &c),
                Made::Nodes(_) | Made::Cgroups { .. } | Made::Sysctl(_) | Made::FwTable(_) => {
                    Err(FakeError::MadeKind {
                        op: "cgroup-disable",
                        name,
                        holds: "made paths, not enabled controllers",
                    })
                }
            }
        }
        Op::CgroupWrite {
            cgroup,
            file,
            value,
        } => w.cgroup_write(actor, cgroup, file, value),
        Op::CgroupAttach { cgroup, pid } => {
            let pid = w.live_pid(plan, *pid, "cgroup-attach")?;
            w.cgroup_attach(actor, cgroup, pid)
        }
        Op::CgroupDevices { cgroup, rules } => w.cgroup_devices(actor, cgroup, rules),
        Op::CgroupRemove { cgroup } => w.cgroup_remove(actor, cgroup),
        Op::LinkAdd { netns, spec, index } => {
            let i = w.link_add(plan, actor, netns, spec)?;
            w.bind(AnyRef::If(*index), Bound::If(i));
            Ok(())
        }
        Op::LinkDel { netns, index } => {
            let i = w.if_of(plan, *index)?;
            w.link_del(plan, actor, netns, i)
        }
        Op::LinkGet { netns, name, index } => {
            let i = w.link_get(plan, actor, netns, name)?;
            w.bind(AnyRef::If(*index), Bound::If(i));
            Ok(())
        }
        Op::LinkSetUp { netns, index, up } => {
            let i = w.if_of(plan, *index)?;
            w.link_set_up(plan, actor, netns, i, *up)
        }
        Op::LinkSetMaster {
            netns,
            index,
            master,
        } => {
            let i = w.if_of(plan, *index)?;
            let m = w.if_of(plan, *master)?;
            w.link_set_master(plan, actor, netns, i, m)
        }
        Op::AddrAdd { netns, index, addr } => addr_op(w, plan, actor, netns, *index, addr, true),
        Op::AddrDel { netns, index, addr } => addr_op(w, plan, actor, netns, *index, addr, false),
        Op::RouteAdd {
            netns,
            dst,
            gateway,
            dev,
        } => {
            let dev = dev.map(|d| w.if_of(plan, d)).transpose()?;
            w.route(plan, actor, netns, dst, *gateway, dev, true)
        }
        Op::RouteDel {
            netns,
            dst,
            gateway,
            dev,
        } => {
            let dev = dev.map(|d| w.if_of(plan, d)).transpose()?;
            w.route(plan, actor, netns, dst, *gateway, dev, false)
        }
        Op::NetnsCreate { path } => w.netns_create(actor, path),
        Op::NetnsRemove { path } => w.netns_remove(actor, path),
        Op::SysctlSet { path, value, made } => {
            let m = w.sysctl_set(actor, path, value)?;
            w.bind(AnyRef::Made(*made), Bound::Made(m));
            Ok(())
        }
        Op::SysctlRestore { path, made } => {
            let old = netfw::sysctl_made(w, plan, *made)?;
            w.sysctl_restore(actor, path, old)
        }
        Op::FwTableEnsure { made } => {
            let m = w.fw_table_ensure(actor)?;
            w.bind(AnyRef::Made(*made), Bound::Made(m));
            Ok(())
        }
        Op::FwTableDelete { made } => {
            let m = netfw::table_made(w, plan, *made)?;
            w.fw_table_delete(actor, m)
        }
        Op::FwTablePrune => w.fw_table_prune(actor),
        Op::FwRuleAdd { chain, rule, tag } => w.fw_rule_add(actor, *chain, rule, tag),
        Op::FwRuleDel { chain, tag } => w.fw_rule_del(actor, *chain, tag),
    }
}

fn addr_op(
    w: &mut World,
    plan: &Plan,
    actor: u32,
    netns: &berth_core::plan::NetnsRef,
    index: berth_core::plan::IfRef,
    addr: &IpNet,
    add: bool,
) -> Result<(), FakeError> {
    let i = w.if_of(plan, index)?;
    w.addr(plan, actor, netns, i, addr, add)
}

/// Sends `signal` to `pids`: logged; SIGKILL ends each (the pid 1 of a pid namespace takes
/// the namespace along). Other signals change nothing the fake models: a container's init
/// ignores what it has no handler for, and the fake runs no handlers.
fn deliver(w: &mut World, pids: &[u32], signal: i32) -> Result<(), FakeError> {
    for &pid in pids {
        if signal == berth_core::signal::SIGKILL {
            // An earlier pid 1 in this list may have taken this one along already.
            if w.m.procs.contains_key(&pid) {
                w.kill(pid)?;
            }
        }
    }
    w.signals.extend(pids.iter().map(|p| (*p, signal)));
    Ok(())
}

/// `signal P`: the other side will find it when it waits.
fn signal(w: &mut World, by: Actor, actor: u32, point: SyncPoint) -> Result<(), FakeError> {
    match by {
        Actor::Runtime => {
            let init = w.init_pid().ok_or(FakeError::NoPeer { point })?;
            w.proc_mut(init)?.pending.insert(point);
        }
        Actor::Init => {
            w.proc_mut(actor)?.sent.insert(point);
        }
    }
    Ok(())
}

/// `wait P`: the other side must have signalled it; init's `wait start` is the barrier.
fn wait(w: &mut World, by: Actor, actor: u32, point: SyncPoint) -> Result<(), FakeError> {
    match by {
        Actor::Init => {
            let p = w.proc_mut(actor)?;
            if !p.pending.remove(&point) {
                return Err(FakeError::NotSignalled { point });
            }
            if point == SyncPoint::Start {
                p.passed_start_barrier = true;
            }
        }
        Actor::Runtime => {
            let init = w.init_pid().ok_or(FakeError::NotSignalled { point })?;
            if !w.proc_mut(init)?.sent.remove(&point) {
                return Err(FakeError::NotSignalled { point });
            }
        }
    }
    Ok(())
}

/// Whether an op can leave a namespace or filesystem that nothing keeps alive (the others
/// only add things that are referenced, or change nodes and files).
fn may_orphan(op: &Op) -> bool {
    matches!(
        op,
        Op::Kill { .. }
            | Op::SendSignal { .. }
            | Op::SignalCgroup { .. }
            | Op::Setns { .. }
            | Op::Unshare { .. }
            | Op::Umount { .. }
            | Op::PivotRoot { .. }
            | Op::Chroot { .. }
            | Op::RemoveMade { .. }
            | Op::Unlink { .. }
            | Op::StateRemove { .. }
            | Op::LinkDel { .. }
            | Op::NetnsRemove { .. }
    )
}

impl Backend for FakeHost {
    type Error = FakeError;

    /// Applies one step as its actor; a refused step changes nothing.
    fn apply(&mut self, plan: &Plan, step: &Step) -> Result<(), FakeError> {
        let call = self.calls;
        self.calls += 1;
        if self.fail_at == Some(call) {
            return Err(FakeError::Injected { call });
        }
        let saved = self.world.snapshot();
        match apply_step(&mut self.world, plan, step) {
            Ok(()) => {
                if may_orphan(&step.op) {
                    self.world.gc();
                }
                self.trace.push(step.clone());
                Ok(())
            }
            Err(e) => {
                self.world.restore(saved);
                Err(e)
            }
        }
    }
}
