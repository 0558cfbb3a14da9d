//! `plan_create`: the plan for an OCI `create` (and, through the start barrier, `start`).
//!
//! The plan is a pure function of the [`CreateRequest`] and the [`HostFacts`]: the same
//! inputs give the same steps, byte for byte. It follows runc's order of work:
//!
//! 1. runtime: state directory, clone of init into its namespaces, id maps, cgroups;
//! 2. init: namespaces joined by path and the rest unshared (id maps written by the runtime
//!    in between), the cgroup namespace last, so its root is the container's cgroup;
//! 3. init: the root filesystem (mounts, devices, `/dev` symlinks), with the prestart and
//!    createRuntime hooks run by the runtime and the createContainer hooks by init, then
//!    pivot_root (or chroot);
//! 4. init: console, read-only remounts, hostname, sysctl, readonly and masked paths,
//!    process attributes, then identity and privileges (runc's `finalizeNamespace` order);
//! 5. the start barrier ([`start_barrier`]): `create` stops before it, `start` carries out
//!    the rest (startContainer hooks, exec, poststart hooks).
//!
//! Invariants: every mount target lies in the root filesystem (`[ROOT]PATH` before the
//! root switch, a container path after it; the only host targets are `/` for propagation
//! and the rootfs's bind onto itself); nothing is mounted and no cgroup is written after
//! exec; every op that outlives the container's namespaces has an undo in
//! [`crate::plan::undo`].

use std::collections::BTreeSet;

use crate::config::{Config, CreateRequest, DeviceConfig, MountConfig, MountKind, ProcessConfig};
use crate::host::{CgroupLayout, HostFacts};
use crate::plan::{
    Actor, CgroupPath, ContainerPath, DeviceKind, FdRef, HookKind, HookSpec, HostPath, IdMapKind,
    Location, MountFlag, MountFlags, MountOp, MountSource, Namespace, NamespaceSet, NsSource, Op,
    PidRef, Plan, PlanBuilder, Propagation, SyncPoint,
};

/// Why a valid config still cannot be planned for this request and host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The config has no `process`, and `create` needs one.
    #[error("process: a container needs a process to create")]
    NoProcess,
    /// The config asks for no new mount namespace (none, or one joined by path).
    #[error("linux.namespaces: a new mount namespace is required (joined: {joined:?})")]
    NoMountNamespace {
        /// The path of the joined mount namespace, if one was joined.
        joined: Option<HostPath>,
    },
    /// A new pid or time namespace together with a joined user namespace: the namespace
    /// would have to be made from inside the joined user namespace and would then hold only
    /// init's children, which needs a second fork.
    #[error(
        "linux.namespaces: a new {ns} namespace with a joined user namespace is not supported (it needs a second fork)"
    )]
    NewNamespaceInJoinedUserns {
        /// The new namespace's kind.
        ns: Namespace,
    },
    /// A filesystem whose new instance needs CAP_SYS_ADMIN over a namespace the container's
    /// user namespace does not own (proc over the pid namespace, mqueue over the ipc one).
    #[error(
        "mounts[{index}]: a new {fstype} in a user namespace needs a new {ns} namespace too (the kernel refuses it otherwise)"
    )]
    NeedsOwnNamespace {
        /// The mount's index in `mounts`.
        index: usize,
        /// Its filesystem type.
        fstype: String,
        /// The namespace it needs.
        ns: Namespace,
    },
    /// A namespace kind the kernel does not offer.
    #[error("linux.namespaces: namespace {ns} is not supported by the kernel")]
    UnsupportedNamespace {
        /// The kind.
        ns: Namespace,
    },
    /// `process.terminal` without `--console-socket`: nobody would receive the pty.
    #[error(
        "cannot allocate a tty if berth will detach without setting the console socket (--console-socket)"
    )]
    TerminalWithoutConsoleSocket,
    /// A mount onto `/` would shadow the root filesystem.
    #[error("mounts[{index}].destination: {destination} would shadow the root filesystem")]
    MountOnRoot {
        /// The mount's index in `mounts`.
        index: usize,
        /// Its destination.
        destination: ContainerPath,
    },
    /// A `cgroup` mount on a host without cgroups.
    #[error("mounts[{index}]: cgroup mount at {destination} but the host has no cgroups")]
    CgroupMountWithoutCgroups {
        /// The mount's index in `mounts`.
        index: usize,
        /// Its destination.
        destination: ContainerPath,
    },
    /// A cgroup v1 hierarchy whose mount point gives no usable directory name.
    #[error("cgroup hierarchy mounted at {mount} has no usable directory name")]
    BadCgroupMountpoint {
        /// The hierarchy's mount point.
        mount: HostPath,
    },
    /// `additionalGids` when the runtime cannot call setgroups (rootless).
    #[error(
        "process.user.additionalGids: cannot set additional groups {gids:?} in a rootless container"
    )]
    AdditionalGidsRootless {
        /// The requested groups.
        gids: Vec<u32>,
    },
    /// A `uid=`/`gid=` mount option names an id that the new user namespace does not map
    /// (the kernel answers `EINVAL`; `runc spec --rootless` drops devpts's `gid=5`).
    #[error(
        "mounts[{index}]: option {option}: id {id} is not mapped in the container's user namespace (linux.{mappings})"
    )]
    UnmappedMountId {
        /// The mount's index.
        index: usize,
        /// The option (`gid=5`).
        option: String,
        /// The id.
        id: u32,
        /// `uidMappings` or `gidMappings`.
        mappings: &'static str,
    },
    /// `linux.seccomp` on a kernel without seccomp filters.
    #[error("linux.seccomp: the kernel does not support seccomp filters")]
    SeccompUnsupported,
    /// Setting up the cgroups failed.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
}

/// The index of the start barrier (the runtime's `signal start`): `create` executes the
/// steps before it, `start` executes it and everything after it.
pub fn start_barrier(plan: &Plan) -> Option<usize> {
    plan.steps
        .iter()
        .position(|s| s.actor == Actor::Runtime && s.op == Op::Signal(SyncPoint::Start))
}

/// Plans an OCI `create` of `req` on a host described by `host`, through `start`.
pub fn plan_create(req: &CreateRequest, host: &HostFacts) -> Result<Plan, PlanError> {
    let cfg = &req.config;
    let process = cfg.process.as_ref().ok_or(PlanError::NoProcess)?;
    let ns = Namespaces::of(cfg, host)?;
    preflight(req, process, &ns, host)?;
    let mut p = Planner {
        b: PlanBuilder::new(),
        req,
        cfg,
        process,
        host,
        ns,
        root: cfg.root.path.clone(),
        state_dir: req.state_root.join(&req.id),
        deferred_ro: Vec::new(),
        cgroups: Vec::new(),
        console_socket: None,
    };
    let pid = p.runtime_setup()?;
    p.init_namespaces();
    p.rootfs(pid)?;
    p.after_root_switch();
    p.identity();
    p.finish(pid);
    Ok(p.b.finish())
}

/// Checks what validation could not know: the request's options, the host's abilities.
fn preflight(
    req: &CreateRequest,
    process: &ProcessConfig,
    ns: &Namespaces,
    host: &HostFacts,
) -> Result<(), PlanError> {
    if process.terminal && req.options.console_socket.is_none() {
        return Err(PlanError::TerminalWithoutConsoleSocket);
    }
    if !ns.new.contains(Namespace::Mount) {
        return Err(PlanError::NoMountNamespace {
            joined: ns
                .joined
                .iter()
                .find(|(n, _)| *n == Namespace::Mount)
                .map(|(_, p)| p.clone()),
        });
    }
    for (index, m) in req.config.mounts.iter().enumerate() {
        if m.destination == ContainerPath::root() {
            return Err(PlanError::MountOnRoot {
                index,
                destination: m.destination.clone(),
            });
        }
    }
    if ns.new.contains(Namespace::User) {
        check_mount_ids(&req.config)?;
    }
    if !can_setgroups(host) && !process.user.additional_gids.is_empty() {
        return Err(PlanError::AdditionalGidsRootless {
            gids: process.user.additional_gids.clone(),
        });
    }
    if req.config.linux.seccomp.is_some() && !host.seccomp {
        return Err(PlanError::SeccompUnsupported);
    }
    Ok(())
}

/// In a new user namespace, every `uid=N`/`gid=N` filesystem option (devpts's `gid=5`,
/// tmpfs's `uid=`) must name an id the namespace maps.
fn check_mount_ids(config: &Config) -> Result<(), PlanError> {
    let mapped = |maps: &[crate::plan::IdMapping], id: u32| {
        maps.iter()
            .any(|m| id >= m.container_id && id - m.container_id < m.size)
    };
    for (index, m) in config.mounts.iter().enumerate() {
        for option in &m.data {
            let (maps, mappings, value) = if let Some(v) = option.strip_prefix("uid=") {
                (&config.linux.uid_mappings, "uidMappings", v)
            } else if let Some(v) = option.strip_prefix("gid=") {
                (&config.linux.gid_mappings, "gidMappings", v)
            } else {
                continue;
            };
            if let Ok(id) = value.parse::<u32>()
                && !mapped(maps, id)
            {
                return Err(PlanError::UnmappedMountId {
                    index,
                    option: option.clone(),
                    id,
                    mappings,
                });
            }
        }
    }
    Ok(())
}

/// Whether init may call setgroups(2): not when the runtime is rootless (its user
/// namespace denies setgroups, as runc's `RootlessEUID` check).
fn can_setgroups(host: &HostFacts) -> bool {
    host.root_in_init_userns
}

/// Which namespaces are made, joined, and by whom.
#[derive(Debug)]
struct Namespaces {
    /// Every namespace made new.
    new: NamespaceSet,
    /// Namespaces joined by path, in config order.
    joined: Vec<(Namespace, HostPath)>,
    /// Namespaces the runtime enters before the clone, so that init is born in them, and
    /// leaves again after it (through an fd of its own namespace opened first).
    runtime_joins: Vec<(Namespace, HostPath)>,
    /// Namespaces init joins by path (only with a joined user namespace: the user
    /// namespace first, then config order).
    init_joins: Vec<(Namespace, HostPath)>,
    /// Namespaces the clone makes.
    clone: NamespaceSet,
    /// Namespaces init unshares after its joins (without cgroup).
    unshare: NamespaceSet,
}

impl Namespaces {
    fn of(cfg: &Config, host: &HostFacts) -> Result<Self, PlanError> {
        let mut new = BTreeSet::new();
        let mut joined = Vec::new();
        for n in &cfg.linux.namespaces {
            if !host.namespaces.contains(&n.ns) {
                return Err(PlanError::UnsupportedNamespace { ns: n.ns });
            }
            match &n.path {
                Some(path) => joined.push((n.ns, path.clone())),
                None => {
                    new.insert(n.ns);
                }
            }
        }
        let user_joined = joined.iter().any(|(n, _)| *n == Namespace::User);
        let (runtime_joins, init_joins, clone, unshare) = if user_joined {
            // Init enters the user namespace first, then joins and makes the rest from
            // inside it, so that what it makes is owned by that user namespace. A new pid
            // or time namespace made that way would only hold init's children: it needs a
            // second fork, which berth does not do.
            if let Some(ns) = new
                .iter()
                .copied()
                .find(|n| matches!(n, Namespace::Pid | Namespace::Time))
            {
                return Err(PlanError::NewNamespaceInJoinedUserns { ns });
            }
            // setns(2) to a pid namespace only affects children: the runtime does it.
            let runtime_joins: Vec<(Namespace, HostPath)> = joined
                .iter()
                .filter(|(n, _)| *n == Namespace::Pid)
                .cloned()
                .collect();
            let mut init_joins: Vec<(Namespace, HostPath)> = joined
                .iter()
                .filter(|(n, _)| *n == Namespace::User)
                .cloned()
                .collect();
            init_joins.extend(
                joined
                    .iter()
                    .filter(|(n, _)| !matches!(n, Namespace::User | Namespace::Pid))
                    .cloned(),
            );
            let unshare = new
                .iter()
                .copied()
                .filter(|n| *n != Namespace::Cgroup)
                .collect();
            (runtime_joins, init_joins, BTreeSet::new(), unshare)
        } else {
            // The runtime enters every joined namespace, clones (init inherits them and
            // gets its new ones, a new user namespace owning them all), and steps back.
            // The cgroup namespace is unshared by init once it is in its cgroup.
            let clone = new
                .iter()
                .copied()
                .filter(|n| *n != Namespace::Cgroup)
                .collect();
            (joined.clone(), Vec::new(), clone, BTreeSet::new())
        };
        Ok(Namespaces {
            new: NamespaceSet(new),
            joined,
            runtime_joins,
            init_joins,
            clone: NamespaceSet(clone),
            unshare: NamespaceSet(unshare),
        })
    }

    /// True when the container has a user namespace, new or joined.
    fn has_user(&self) -> bool {
        self.new.contains(Namespace::User) || self.joined.iter().any(|(n, _)| *n == Namespace::User)
    }
}

/// What a `/dev` mount means for device setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DevMount {
    /// No mount at `/dev`: only `linux.devices` are made, in the rootfs's own `/dev`.
    None,
    /// A tmpfs at `/dev`: the default devices and symlinks go there too.
    Ours,
    /// A bind mount at `/dev`: no device is made (it would land on the bound directory, as
    /// runc's `needsSetupDev`).
    Bound,
    /// Another filesystem at `/dev`: only `linux.devices` are made.
    Other,
}

/// The planner's state while it builds one plan.
struct Planner<'a> {
    b: PlanBuilder,
    req: &'a CreateRequest,
    cfg: &'a Config,
    process: &'a ProcessConfig,
    host: &'a HostFacts,
    ns: Namespaces,
    root: HostPath,
    state_dir: HostPath,
    /// Mounts whose `ro` waits until the console and devices are in place (tmpfs and
    /// `/dev`, as runc's `finalizeRootfs`), with their full flags.
    deferred_ro: Vec<(ContainerPath, MountFlags)>,
    /// The container's cgroup directories, one per v1 hierarchy or one for v2.
    cgroups: Vec<CgroupPath>,
    /// The console socket, connected by the runtime before the clone.
    console_socket: Option<FdRef>,
}

/// runc's default devices: `(name, major, minor)`, all character devices, mode 0666.
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// The `HOME` used when neither the config nor the passwd file gives one.
const DEFAULT_HOME: &str = "/";

fn cpath(text: &str) -> ContainerPath {
    ContainerPath::parse(text).expect("literal container paths in the planner are valid")
}

impl Planner<'_> {
    fn in_root(&self, path: &ContainerPath) -> Location {
        Location::InRoot {
            root: self.root.clone(),
            path: path.clone(),
        }
    }

    fn run_hooks(&mut self, actor: Actor, kind: HookKind, hooks: &[HookSpec], pid: PidRef) {
        for (index, hook) in hooks.iter().enumerate() {
            self.b.push(
                actor,
                Op::RunHook {
                    kind,
                    index,
                    hook: hook.clone(),
                    pid,
                },
            );
        }
    }

    /// Writes the id maps of `pid`'s new user namespace (runtime steps).
    fn write_id_maps(&mut self, pid: PidRef) {
        self.b.runtime(Op::WriteIdMap {
            pid,
            kind: IdMapKind::Uid,
            mappings: self.cfg.linux.uid_mappings.clone(),
        });
        if !self.host.root_in_init_userns {
            // An unprivileged gid map needs setgroups denied first (user_namespaces(7)).
            self.b.runtime(Op::WriteSetgroups { pid, allow: false });
        }
        self.b.runtime(Op::WriteIdMap {
            pid,
            kind: IdMapKind::Gid,
            mappings: self.cfg.linux.gid_mappings.clone(),
        });
    }

    /// Steps 1-7: state directory, clone, id maps, cgroups; hands over to init.
    fn runtime_setup(&mut self) -> Result<PidRef, PlanError> {
        self.b.runtime(Op::StateCreate {
            dir: self.state_dir.clone(),
        });
        // The cgroups are made and written before the clone, so that a rollback kills init
        // (the clone's undo) before it removes them: a cgroup with a live member cannot go.
        let linux = &self.cfg.linux;
        let resources = linux
            .resources
            .as_ref()
            .map(|r| crate::cgroup::with_default_device_rules(r, &linux.devices));
        self.cgroups = crate::cgroup::plan_cgroup_setup(
            &mut self.b,
            &self.req.id,
            linux.cgroups_path.as_deref(),
            resources.as_ref(),
            &self.host.cgroup,
        )?;
        if self.process.terminal
            && let Some(path) = &self.req.options.console_socket
        {
            // Connected here, inherited by init: after its root switch the path is out of
            // its reach (runc hands init the socket's fd the same way).
            let fd = self.b.fd("console.socket");
            self.b.runtime(Op::ConnectSocket {
                path: path.clone(),
                fd,
            });
            self.console_socket = Some(fd);
        }
        let mut own = Vec::new();
        for (ns, path) in self.ns.runtime_joins.clone() {
            let fd = self.b.fd(&format!("runtime.{}", ns.proc_name()));
            self.b.runtime(Op::OpenOwnNs { ns, fd });
            self.b.runtime(Op::Setns {
                ns,
                from: NsSource::Path(path),
            });
            own.push((ns, fd));
        }
        let pid = self.b.pid("init.pid");
        self.b.runtime(Op::Spawn {
            ns: self.ns.clone.clone(),
            pid,
        });
        for (ns, fd) in own {
            self.b.runtime(Op::Setns {
                ns,
                from: NsSource::Fd(fd),
            });
        }
        if self.ns.clone.contains(Namespace::User) {
            self.write_id_maps(pid);
        }
        let cgroups = self.cgroups.clone();
        crate::cgroup::plan_cgroup_attach(&mut self.b, pid, &cgroups);
        self.b.handoff(Actor::Runtime, SyncPoint::Configured);
        Ok(pid)
    }

    /// In a user namespace init still has the host's ids, which may be unmapped there
    /// (files it makes would fail with EOVERFLOW): it becomes the namespace's root first,
    /// as runc's nsexec does, when root is mapped.
    fn become_userns_root(&mut self) {
        let maps =
            |m: &[crate::plan::IdMapping]| m.iter().any(|r| r.container_id == 0 && r.size > 0);
        let joined = self
            .ns
            .init_joins
            .iter()
            .any(|(n, _)| *n == Namespace::User);
        // A joined namespace's maps are not in the config: assume root is mapped, as runc.
        if joined || maps(&self.cfg.linux.gid_mappings) {
            self.b.init(Op::Setgid(0));
        }
        if joined || maps(&self.cfg.linux.uid_mappings) {
            self.b.init(Op::Setuid(0));
        }
    }

    /// Steps 8-9: init joins and unshares the rest of its namespaces.
    fn init_namespaces(&mut self) {
        if self.ns.clone.contains(Namespace::User) {
            self.become_userns_root();
        }
        for (ns, path) in self.ns.init_joins.clone() {
            self.b.init(Op::Setns {
                ns,
                from: NsSource::Path(path),
            });
            if ns == Namespace::User {
                self.become_userns_root();
            }
        }
        if !self.ns.unshare.is_empty() {
            self.b.init(Op::Unshare {
                ns: self.ns.unshare.clone(),
            });
        }
        if self.ns.new.contains(Namespace::Cgroup) {
            // After the runtime attached init to its cgroup: the namespace's root is the
            // container's cgroup.
            self.b.init(Op::Unshare {
                ns: NamespaceSet::from_iter([Namespace::Cgroup]),
            });
        }
    }
}

impl Planner<'_> {
    /// Step 11 (and 10): the root filesystem, runtime hooks, createContainer hooks, and
    /// the root switch.
    fn rootfs(&mut self, pid: PidRef) -> Result<(), PlanError> {
        let (propagation, recursive) = self
            .cfg
            .linux
            .rootfs_propagation
            .unwrap_or((Propagation::Slave, true));
        // Inside the new mount namespace: keep mounts from flowing back to the host.
        self.b.init(Op::SetPropagation {
            target: Location::Host(HostPath::new("/")),
            propagation,
            recursive,
        });
        // pivot_root needs the new root to be a mount point.
        self.b.init(Op::Mount(MountOp {
            source: MountSource::Bind(self.root.clone()),
            target: Location::Host(self.root.clone()),
            flags: MountFlags::of(&[MountFlag::Bind, MountFlag::Rec]),
            data: String::new(),
        }));
        let mut dev = DevMount::None;
        for (index, m) in self.cfg.mounts.iter().enumerate() {
            if m.destination.as_str() == "/dev" {
                dev = match &m.kind {
                    MountKind::Bind { .. } => DevMount::Bound,
                    MountKind::Fs { fstype, .. } if fstype == "tmpfs" => DevMount::Ours,
                    MountKind::Fs { .. } => DevMount::Other,
                };
            }
            self.mount(index, m)?;
        }
        self.devices(dev);
        let hooks = &self.cfg.hooks;
        if !hooks.prestart.is_empty() || !hooks.create_runtime.is_empty() {
            // As runc: after the mounts, before the root switch, so that hooks see the
            // container's mounts and can still reach the rootfs by its host path.
            self.b.handoff(Actor::Init, SyncPoint::NamespacesReady);
            self.run_hooks(Actor::Runtime, HookKind::Prestart, &hooks.prestart, pid);
            self.run_hooks(
                Actor::Runtime,
                HookKind::CreateRuntime,
                &hooks.create_runtime,
                pid,
            );
            self.b.handoff(Actor::Runtime, SyncPoint::RuntimeHooksDone);
        }
        self.run_hooks(
            Actor::Init,
            HookKind::CreateContainer,
            &hooks.create_container,
            pid,
        );
        let cwd = &self.process.cwd;
        if *cwd != ContainerPath::root() {
            let made = self.b.made();
            self.b.init(Op::MkdirAll {
                path: self.in_root(cwd),
                mode: 0o755,
                made,
            });
        }
        let new_root = self.root.clone();
        self.b.init(if self.req.options.no_pivot {
            Op::Chroot { new_root }
        } else {
            Op::PivotRoot { new_root }
        });
        Ok(())
    }

    fn mkmountpoint(&mut self, path: Location, source: Option<HostPath>) {
        let made = self.b.made();
        self.b.init(Op::MkMountPoint { path, source, made });
    }

    /// A bind mount, with the remount that applies its flags (bind mounts ignore flags on
    /// the first mount; runc remounts the same way).
    fn bind(&mut self, source: HostPath, target: Location, recursive: bool, flags: &MountFlags) {
        let mut bind = MountFlags::of(&[MountFlag::Bind]);
        if recursive {
            bind.insert(MountFlag::Rec);
        }
        self.b.init(Op::Mount(MountOp {
            source: MountSource::Bind(source),
            target: target.clone(),
            flags: bind,
            data: String::new(),
        }));
        if !flags.is_empty() {
            let mut all = *flags;
            all.insert(MountFlag::Bind);
            self.b.init(Op::Remount { target, flags: all });
        }
    }

    /// Step 11c: one entry of `mounts`.
    fn mount(&mut self, index: usize, m: &MountConfig) -> Result<(), PlanError> {
        let target = self.in_root(&m.destination);
        match &m.kind {
            MountKind::Bind { source, recursive } => {
                self.mkmountpoint(target.clone(), Some(source.clone()));
                self.bind(source.clone(), target.clone(), *recursive, &m.flags);
            }
            MountKind::Fs { fstype, .. } if fstype == "cgroup" || fstype == "cgroup2" => {
                self.mkmountpoint(target.clone(), None);
                self.cgroup_mount(index, m)?;
            }
            MountKind::Fs { fstype, .. }
                if fstype == "sysfs"
                    && self.ns.has_user()
                    && !self.ns.new.contains(Namespace::Network) =>
            {
                // A new sysfs needs CAP_SYS_ADMIN over the user namespace owning the network
                // namespace, which is not the container's here: bind the host's /sys
                // instead, as runc does.
                let sys = HostPath::new("/sys");
                self.mkmountpoint(target.clone(), Some(sys.clone()));
                self.bind(sys, target.clone(), true, &m.flags);
            }
            MountKind::Fs { fstype, source } => {
                let owner = match fstype.as_str() {
                    "proc" => Some(Namespace::Pid),
                    "mqueue" => Some(Namespace::Ipc),
                    _ => None,
                };
                // Only the host's own namespace is known to be out of reach; a joined one
                // may well be owned by the container's user namespace.
                if let Some(ns) = owner
                    && self.ns.has_user()
                    && self.cfg.namespace(ns).is_none()
                {
                    return Err(PlanError::NeedsOwnNamespace {
                        index,
                        fstype: fstype.clone(),
                        ns,
                    });
                }
                self.mkmountpoint(target.clone(), None);
                let mut flags = m.flags;
                if flags.contains(MountFlag::Ro)
                    && (fstype == "tmpfs" || m.destination.as_str() == "/dev")
                {
                    // Mounted writable, made read-only once devices, nested mount points
                    // and the console are in place (runc's finalizeRootfs).
                    flags.remove(MountFlag::Ro);
                    self.deferred_ro.push((m.destination.clone(), m.flags));
                }
                self.b.init(Op::Mount(MountOp {
                    source: MountSource::Fs {
                        fstype: fstype.clone(),
                        source: source.clone(),
                    },
                    target: target.clone(),
                    flags,
                    data: m.data.join(","),
                }));
            }
        }
        for (propagation, recursive) in &m.propagation {
            self.b.init(Op::SetPropagation {
                target: target.clone(),
                propagation: *propagation,
                recursive: *recursive,
            });
        }
        Ok(())
    }

    /// The container's view of its cgroups at a `cgroup` mount's destination.
    fn cgroup_mount(&mut self, index: usize, m: &MountConfig) -> Result<(), PlanError> {
        let target = self.in_root(&m.destination);
        let no_cgroups = || PlanError::CgroupMountWithoutCgroups {
            index,
            destination: m.destination.clone(),
        };
        match &self.host.cgroup {
            CgroupLayout::None => Err(no_cgroups()),
            CgroupLayout::V2 { .. } => {
                if self.ns.new.contains(Namespace::Cgroup) {
                    // In its own cgroup namespace the fresh cgroup2 mount's root is the
                    // container's cgroup.
                    self.b.init(Op::Mount(MountOp {
                        source: MountSource::Fs {
                            fstype: "cgroup2".to_owned(),
                            source: "cgroup2".to_owned(),
                        },
                        target,
                        flags: m.flags,
                        data: m.data.join(","),
                    }));
                } else {
                    let dir = self.cgroups.first().ok_or_else(no_cgroups)?.dir();
                    self.bind(dir, target, false, &m.flags);
                }
                Ok(())
            }
            CgroupLayout::V1 { .. } => {
                // runc's mountCgroupV1: a tmpfs with one bind per hierarchy.
                let hardening = [MountFlag::Nosuid, MountFlag::Nodev, MountFlag::Noexec];
                self.b.init(Op::Mount(MountOp {
                    source: MountSource::Fs {
                        fstype: "tmpfs".to_owned(),
                        source: "tmpfs".to_owned(),
                    },
                    target: target.clone(),
                    flags: MountFlags::of(&hardening),
                    data: "mode=755".to_owned(),
                }));
                let mut sub_flags = MountFlags::of(&hardening);
                if m.flags.contains(MountFlag::Ro) {
                    sub_flags.insert(MountFlag::Ro);
                }
                let mut seen = BTreeSet::new();
                for cg in self.cgroups.clone() {
                    if !seen.insert(cg.mount.clone()) {
                        continue;
                    }
                    let name = hierarchy_name(&cg)?;
                    let sub =
                        m.destination
                            .join(name)
                            .map_err(|_| PlanError::BadCgroupMountpoint {
                                mount: cg.mount.clone(),
                            })?;
                    let dir = cg.dir();
                    self.mkmountpoint(self.in_root(&sub), Some(dir.clone()));
                    self.bind(dir, self.in_root(&sub), true, &sub_flags);
                    if name.contains(',') {
                        // Co-mounted controllers (`cpu,cpuacct`) are also reachable by
                        // each controller's name, as runc does.
                        for part in name.split(',').filter(|p| !p.is_empty()) {
                            let link = m.destination.join(part).map_err(|_| {
                                PlanError::BadCgroupMountpoint {
                                    mount: cg.mount.clone(),
                                }
                            })?;
                            self.b.init(Op::Symlink {
                                target: name.to_owned(),
                                link: self.in_root(&link),
                            });
                        }
                    }
                }
                if m.flags.contains(MountFlag::Ro) {
                    self.b.init(Op::Remount {
                        target,
                        flags: MountFlags::of(&[
                            MountFlag::Ro,
                            MountFlag::Nosuid,
                            MountFlag::Nodev,
                            MountFlag::Noexec,
                        ]),
                    });
                }
                Ok(())
            }
        }
    }

    /// Step 11d: device nodes and `/dev` symlinks.
    fn devices(&mut self, dev: DevMount) {
        if dev == DevMount::Bound {
            return;
        }
        let mut devices: Vec<DeviceConfig> = Vec::new();
        if dev == DevMount::Ours {
            for (name, major, minor) in DEFAULT_DEVICES {
                let path = cpath(name);
                // A device of the config with the same path replaces the default one.
                if self.cfg.linux.devices.iter().any(|d| d.path == path) {
                    continue;
                }
                devices.push(DeviceConfig {
                    path,
                    kind: DeviceKind::Char,
                    major,
                    minor,
                    file_mode: 0o666,
                    uid: 0,
                    gid: 0,
                });
            }
        }
        devices.extend(self.cfg.linux.devices.iter().cloned());
        // With a devpts mount, /dev/ptmx is the link to its ptmx: runc's setupPtmx removes
        // a node the config made there (podman --privileged lists the host's /dev/ptmx).
        let ptmx_link = dev == DevMount::Ours
            && self
                .cfg
                .mounts
                .iter()
                .any(|m| m.destination.as_str() == "/dev/pts");
        if ptmx_link {
            devices.retain(|d| d.path.as_str() != "/dev/ptmx");
        }
        // mknod needs CAP_MKNOD in the initial user namespace; in any user namespace runc
        // binds the host's node instead.
        let mknod = self.host.root_in_init_userns && !self.ns.has_user();
        for d in &devices {
            let target = self.in_root(&d.path);
            if mknod {
                let parent = d.path.parent();
                let parent_exists = parent == ContainerPath::root()
                    || (dev == DevMount::Ours && parent == cpath("/dev"));
                if !parent_exists {
                    self.mkmountpoint(self.in_root(&parent), None);
                }
                self.b.init(Op::Mknod {
                    path: target,
                    kind: d.kind,
                    major: d.major,
                    minor: d.minor,
                    mode: d.file_mode,
                    uid: d.uid,
                    gid: d.gid,
                });
            } else {
                let source = HostPath::new(d.path.as_str());
                self.mkmountpoint(target.clone(), Some(source.clone()));
                self.b.init(Op::Mount(MountOp {
                    source: MountSource::Bind(source),
                    target,
                    flags: MountFlags::of(&[MountFlag::Bind]),
                    data: String::new(),
                }));
            }
        }
        if dev != DevMount::Ours {
            return;
        }
        let mut links = vec![
            ("/proc/self/fd", "/dev/fd"),
            ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"),
        ];
        if ptmx_link {
            links.push(("pts/ptmx", "/dev/ptmx"));
        }
        links.push(("/proc/kcore", "/dev/core"));
        for (target, link) in links {
            self.b.init(Op::Symlink {
                target: target.to_owned(),
                link: self.in_root(&cpath(link)),
            });
        }
    }

    /// Steps 12-13: console, read-only remounts, hostname, sysctl, readonly and masked
    /// paths, in runc's order (the console first: it needs a writable `/dev`).
    fn after_root_switch(&mut self) {
        if self.process.terminal {
            let master = self.b.fd("console.master");
            self.b.init(Op::SetupConsole {
                master,
                keep_console: false,
                size: console_size(self.process),
            });
            if let Some(socket) = self.console_socket {
                self.b.init(Op::SendFd { fd: master, socket });
            }
        }
        for (path, flags) in std::mem::take(&mut self.deferred_ro) {
            self.b.init(Op::Remount {
                target: Location::Container(path),
                flags,
            });
        }
        if self.cfg.root.readonly {
            self.b.init(Op::Remount {
                target: Location::Container(ContainerPath::root()),
                flags: MountFlags::of(&[MountFlag::Bind, MountFlag::Ro]),
            });
        }
        if let Some(h) = &self.cfg.hostname {
            self.b.init(Op::SetHostname(h.clone()));
        }
        if let Some(d) = &self.cfg.domainname {
            self.b.init(Op::SetDomainname(d.clone()));
        }
        let linux = &self.cfg.linux;
        for (key, value) in &linux.sysctl {
            self.b.init(Op::Sysctl {
                key: key.clone(),
                value: value.clone(),
            });
        }
        for path in &linux.readonly_paths {
            self.b.init(Op::ReadonlyPath {
                path: Location::Container(path.clone()),
            });
        }
        for path in &linux.masked_paths {
            self.b.init(Op::MaskPath {
                path: Location::Container(path.clone()),
            });
        }
    }

    /// Steps 14-15: process attributes, then identity and privileges in runc's
    /// `finalizeNamespace` order.
    fn identity(&mut self) {
        plan_identity(
            &mut self.b,
            self.process,
            self.cfg.linux.seccomp.as_ref(),
            can_setgroups(self.host),
            self.req.options.preserve_fds,
        );
    }

    /// Steps 16-20: created, the start barrier, exec, poststart hooks.
    fn finish(&mut self, pid: PidRef) {
        self.b.handoff(Actor::Init, SyncPoint::Created);
        if let Some(path) = &self.req.options.pid_file {
            self.b.runtime(Op::WritePidFile {
                path: path.clone(),
                pid,
            });
        }
        self.b.runtime(Op::StateWrite {
            dir: self.state_dir.clone(),
            id: self.req.id.clone(),
            bundle: self.req.bundle.clone(),
            pid,
            status: "created".to_owned(),
            rootfs: self.cfg.root.path.clone(),
            annotations: self.cfg.annotations.clone(),
            poststop: self.cfg.hooks.poststop.clone(),
        });
        self.b.handoff(Actor::Runtime, SyncPoint::Start);
        let hooks = &self.cfg.hooks;
        self.run_hooks(
            Actor::Init,
            HookKind::StartContainer,
            &hooks.start_container,
            pid,
        );
        plan_exec_step(
            &mut self.b,
            self.process,
            self.cfg.linux.seccomp.as_ref(),
            exec_env(&self.process.env, self.req.home.as_deref()),
        );
        self.run_hooks(Actor::Runtime, HookKind::Poststart, &hooks.poststart, pid);
    }
}

/// Plans a process's attributes, then its identity and privileges, in runc's
/// `finalizeNamespace` order (init steps): oom score, rlimits, umask, close-on-exec of the
/// runtime's fds, `cd` to the cwd, bounding set, groups, gid, uid, capabilities,
/// no_new_privs. `create` and `exec` share it. With no_new_privs the seccomp filter is
/// not here but in [`plan_exec_step`], as close to the `execve` as possible.
pub(crate) fn plan_identity(
    b: &mut PlanBuilder,
    p: &ProcessConfig,
    seccomp: Option<&crate::plan::SeccompProfile>,
    setgroups: bool,
    preserve_fds: u32,
) {
    if let Some(adj) = p.oom_score_adj {
        b.init(Op::OomScoreAdj(adj));
    }
    for (resource, soft, hard) in &p.rlimits {
        b.init(Op::SetRlimit {
            resource: *resource,
            soft: *soft,
            hard: *hard,
        });
    }
    if let Some(mask) = p.user.umask {
        b.init(Op::Umask(mask));
    }
    b.init(Op::CloseFds {
        preserve: preserve_fds,
    });
    // As runc, chdir while still root: a cwd the process's user may not search can
    // still be entered (the process keeps it across setuid).
    b.init(Op::Chdir {
        path: Location::Container(p.cwd.clone()),
    });
    if let Some(caps) = &p.capabilities {
        b.init(Op::CapBounding(caps.bounding));
    }
    if let Some(profile) = seccomp.filter(|_| !p.no_new_privileges) {
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it before
        // the capabilities are dropped.
        b.init(Op::Seccomp(profile.clone()));
    }
    if setgroups {
        b.init(Op::Setgroups(p.user.additional_gids.clone()));
    }
    b.init(Op::Setgid(p.user.gid));
    b.init(Op::Setuid(p.user.uid));
    if let Some(caps) = &p.capabilities {
        b.init(Op::CapSet {
            effective: caps.effective,
            permitted: caps.permitted,
            inheritable: caps.inheritable,
            ambient: caps.ambient,
        });
    }
    if p.no_new_privileges {
        b.init(Op::NoNewPrivs);
    }
}

/// Plans the process's `execve`, preceded, with no_new_privs, by its seccomp filter: as
/// runc does, the filter is loaded as late as possible — after the start barrier and the
/// startContainer hooks — so a profile need not allow the syscalls of berth's own setup
/// and synchronisation (sendmsg, poll, open of the exec fifo, clone of hooks).
pub(crate) fn plan_exec_step(
    b: &mut PlanBuilder,
    p: &ProcessConfig,
    seccomp: Option<&crate::plan::SeccompProfile>,
    env: Vec<String>,
) {
    if let Some(profile) = seccomp.filter(|_| p.no_new_privileges) {
        b.init(Op::Seccomp(profile.clone()));
    }
    b.init(Op::Exec {
        argv: p.args.clone(),
        env,
    });
}

/// `process.consoleSize` as the pty's (rows, columns); the parser keeps each side within
/// `u16`, so nothing is cut.
pub(crate) fn console_size(process: &ProcessConfig) -> Option<(u16, u16)> {
    let (rows, cols) = process.console_size?;
    Some((u16::try_from(rows).ok()?, u16::try_from(cols).ok()?))
}

/// The process's environment: `process.env`, with `HOME` added when it has none (from the
/// passwd file, else `/`), as runc. `PATH` is not added (runc does not either).
pub(crate) fn exec_env(env: &[String], home: Option<&str>) -> Vec<String> {
    let mut out = env.to_vec();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        out.push(format!("HOME={}", home.unwrap_or(DEFAULT_HOME)));
    }
    out
}

/// The directory name under which a v1 hierarchy appears in the container: the basename
/// of its host mount point (`memory`, `cpu,cpuacct`, `systemd`).
fn hierarchy_name(cg: &CgroupPath) -> Result<&str, PlanError> {
    match cg.mount.as_str().trim_end_matches('/').rsplit('/').next() {
        Some(name) if !name.is_empty() && name != "." && name != ".." => Ok(name),
        _ => Err(PlanError::BadCgroupMountpoint {
            mount: cg.mount.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{
        CreateOptions, HooksConfig, LinuxConfig, NamespaceConfig, RootConfig, UserConfig,
    };
    use crate::plan::{
        CapSet, CapSets, Capability, HookSpec, IdMapping, SeccompAction, SeccompProfile, undo,
    };

    const ROOTFS: &str = "/b/rootfs";

    fn cp(s: &str) -> ContainerPath {
        ContainerPath::parse(s).unwrap()
    }

    fn new_ns(kinds: &[Namespace]) -> Vec<NamespaceConfig> {
        kinds
            .iter()
            .map(|&ns| NamespaceConfig { ns, path: None })
            .collect()
    }

    fn fs_mount(
        dest: &str,
        fstype: &str,
        source: &str,
        flags: &[MountFlag],
        data: &[&str],
    ) -> MountConfig {
        MountConfig {
            destination: cp(dest),
            kind: MountKind::Fs {
                fstype: fstype.to_owned(),
                source: source.to_owned(),
            },
            flags: MountFlags::of(flags),
            propagation: Vec::new(),
            data: data.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    /// The smallest config worth creating: /proc, a tmpfs /dev, five new namespaces.
    fn minimal_config() -> Config {
        Config {
            oci_version: "1.2.0".to_owned(),
            root: RootConfig {
                path: HostPath::new(ROOTFS),
                readonly: false,
            },
            hostname: None,
            domainname: None,
            mounts: vec![
                fs_mount("/proc", "proc", "proc", &[], &[]),
                fs_mount(
                    "/dev",
                    "tmpfs",
                    "tmpfs",
                    &[MountFlag::Nosuid, MountFlag::Strictatime],
                    &["mode=755", "size=65536k"],
                ),
            ],
            process: Some(ProcessConfig {
                terminal: false,
                console_size: None,
                user: UserConfig::default(),
                args: vec!["sh".to_owned()],
                env: vec!["PATH=/bin".to_owned()],
                cwd: ContainerPath::root(),
                capabilities: None,
                rlimits: Vec::new(),
                no_new_privileges: false,
                oom_score_adj: None,
                apparmor_profile: None,
                selinux_label: None,
            }),
            hooks: HooksConfig::default(),
            annotations: BTreeMap::new(),
            linux: LinuxConfig {
                namespaces: new_ns(&[
                    Namespace::Pid,
                    Namespace::Mount,
                    Namespace::Network,
                    Namespace::Ipc,
                    Namespace::Uts,
                ]),
                ..LinuxConfig::default()
            },
        }
    }

    fn request(config: Config) -> CreateRequest {
        CreateRequest {
            id: "c1".to_owned(),
            bundle: HostPath::new("/b"),
            state_root: HostPath::new("/run/berth"),
            config,
            options: CreateOptions::default(),
            home: None,
        }
    }

    fn host_v2() -> HostFacts {
        HostFacts {
            cgroup: CgroupLayout::V2 {
                mount: HostPath::new("/sys/fs/cgroup"),
                controllers: vec!["cpu".to_owned(), "memory".to_owned(), "pids".to_owned()],
                subtree_control: vec!["cpu".to_owned(), "memory".to_owned(), "pids".to_owned()],
            },
            root_in_init_userns: true,
            euid: 0,
            egid: 0,
            namespaces: Namespace::ALL.to_vec(),
            clone_into_cgroup: false,
            seccomp: true,
            hugepage_sizes: vec!["2MB".to_owned()],
        }
    }

    fn host_v1() -> HostFacts {
        let mut hierarchies = BTreeMap::new();
        for (ctrl, dir) in [
            ("cpu", "cpu,cpuacct"),
            ("cpuacct", "cpu,cpuacct"),
            ("memory", "memory"),
            ("name=systemd", "systemd"),
        ] {
            hierarchies.insert(
                ctrl.to_owned(),
                HostPath::new(format!("/sys/fs/cgroup/{dir}")),
            );
        }
        HostFacts {
            cgroup: CgroupLayout::V1 {
                hierarchies,
                unified: None,
            },
            ..host_v2()
        }
    }

    fn rootless(mut host: HostFacts) -> HostFacts {
        host.root_in_init_userns = false;
        host.euid = 1000;
        host.egid = 1000;
        host
    }

    fn plan(req: &CreateRequest, host: &HostFacts) -> Plan {
        let p = plan_create(req, host).unwrap();
        invariants(&p);
        p
    }

    fn process(cfg: &mut Config) -> &mut ProcessConfig {
        cfg.process.as_mut().unwrap()
    }

    fn with_userns(cfg: &mut Config) {
        cfg.linux.namespaces.push(NamespaceConfig {
            ns: Namespace::User,
            path: None,
        });
        let m = IdMapping {
            container_id: 0,
            host_id: 100_000,
            size: 65536,
        };
        cfg.linux.uid_mappings = vec![m];
        cfg.linux.gid_mappings = vec![m];
    }

    fn join(cfg: &mut Config, ns: Namespace, path: &str) {
        cfg.linux.namespaces.retain(|n| n.ns != ns);
        cfg.linux.namespaces.push(NamespaceConfig {
            ns,
            path: Some(HostPath::new(path)),
        });
    }

    fn hook(name: &str) -> HookSpec {
        HookSpec {
            path: format!("/hooks/{name}"),
            args: vec![format!("/hooks/{name}")],
            env: Vec::new(),
            timeout: None,
        }
    }

    /// The steps' texts, with `$made.N` written `$made` (its number depends on how many
    /// handles the cgroup planner allocated).
    fn lines(p: &Plan) -> Vec<String> {
        p.steps
            .iter()
            .map(|s| {
                let text = p.step_text(s);
                match text.find("$made.") {
                    Some(i) => format!("{}$made", &text[..i]),
                    None => text,
                }
            })
            .collect()
    }

    /// The position of the first step whose text is `text`.
    fn pos(p: &Plan, text: &str) -> usize {
        lines(p)
            .iter()
            .position(|l| l == text)
            .unwrap_or_else(|| panic!("no step {text:?} in\n{p}"))
    }

    /// The position of the first step matching `f`.
    fn find(p: &Plan, f: impl Fn(&Op) -> bool) -> Option<usize> {
        p.steps.iter().position(|s| f(&s.op))
    }

    /// The properties every create plan keeps (the proptest helper checks them too).
    fn invariants(p: &Plan) {
        p.check().unwrap_or_else(|e| panic!("{e}\n{p}"));
        let switch = find(p, |o| matches!(o, Op::PivotRoot { .. } | Op::Chroot { .. }))
            .expect("a root switch");
        let exec = find(p, |o| matches!(o, Op::Exec { .. })).expect("an exec");
        assert!(switch < exec, "{p}");
        let barrier = start_barrier(p).expect("a start barrier");
        assert!(barrier < exec, "{p}");
        for (i, s) in p.steps.iter().enumerate() {
            let target = match &s.op {
                Op::Mount(m) => Some(&m.target),
                Op::Remount { target, .. } | Op::SetPropagation { target, .. } => Some(target),
                Op::MkMountPoint { path, .. }
                | Op::MkdirAll { path, .. }
                | Op::Mknod { path, .. }
                | Op::MaskPath { path }
                | Op::ReadonlyPath { path } => Some(path),
                Op::Symlink { link, .. } => Some(link),
                _ => None,
            };
            match target {
                Some(Location::InRoot { root, .. }) => {
                    assert_eq!(root.as_str(), ROOTFS, "step {i}\n{p}");
                    assert!(i < switch, "step {i}: rootfs path after the switch\n{p}");
                }
                Some(Location::Container(_)) => assert!(i > switch, "step {i}\n{p}"),
                Some(Location::Host(h)) => {
                    assert!(h.as_str() == "/" || h.as_str() == ROOTFS, "step {i}\n{p}");
                    assert!(i < switch, "step {i}\n{p}");
                }
                None => {}
            }
            if i > exec {
                assert!(
                    !matches!(
                        s.op,
                        Op::CgroupWrite { .. }
                            | Op::CgroupCreate { .. }
                            | Op::CgroupAttach { .. }
                            | Op::Mount(_)
                            | Op::Remount { .. }
                    ),
                    "step {i} after exec\n{p}"
                );
            }
            // Whatever has no undo must die with the container's processes and
            // namespaces, or be removed with the state directory or the cgroup.
            // Init's mounts and nodes made after its root switch live in its own mount
            // namespace, which dies with it.
            let init_local = s.actor == Actor::Init
                && matches!(s.op, Op::Mount(_) | Op::Mknod { .. } | Op::Symlink { .. });
            if undo(s).is_none() && !init_local {
                assert!(
                    matches!(
                        s.op,
                        Op::Setns { .. }
                            | Op::OpenOwnNs { .. }
                            | Op::ConnectSocket { .. }
                            | Op::Unshare { .. }
                            | Op::WriteIdMap { .. }
                            | Op::WriteSetgroups { .. }
                            | Op::Signal(_)
                            | Op::Wait(_)
                            | Op::CgroupWrite { .. }
                            | Op::CgroupAttach { .. }
                            | Op::CgroupDevices { .. }
                            | Op::Remount { .. }
                            | Op::SetPropagation { .. }
                            | Op::RunHook { .. }
                            | Op::PivotRoot { .. }
                            | Op::Chroot { .. }
                            | Op::Chdir { .. }
                            | Op::SetHostname(_)
                            | Op::SetDomainname(_)
                            | Op::Sysctl { .. }
                            | Op::MaskPath { .. }
                            | Op::ReadonlyPath { .. }
                            | Op::SetupConsole { .. }
                            | Op::SendFd { .. }
                            | Op::OomScoreAdj(_)
                            | Op::SetRlimit { .. }
                            | Op::Umask(_)
                            | Op::CloseFds { .. }
                            | Op::CapBounding(_)
                            | Op::CapSet { .. }
                            | Op::Seccomp(_)
                            | Op::Setgroups(_)
                            | Op::Setgid(_)
                            | Op::Setuid(_)
                            | Op::NoNewPrivs
                            | Op::StateWrite { .. }
                            | Op::Exec { .. }
                    ),
                    "step {i} cannot be undone: {}",
                    p.step_text(s)
                );
            }
        }
    }

    #[test]
    fn minimal_plan_text() {
        let p = plan(&request(minimal_config()), &host_v2());
        let want = "\
0 runtime state-create /run/berth/c1
1 runtime cgroup-create /sys/fs/cgroup/berth -> $made.0
2 runtime cgroup-enable /sys/fs/cgroup/berth +cpu +memory +pids -> $made.1
3 runtime cgroup-create /sys/fs/cgroup/berth/c1 -> $made.2
4 runtime spawn ns=pid,mnt,net,uts,ipc -> $init.pid
5 runtime cgroup-attach /sys/fs/cgroup/berth/c1 $init.pid
6 runtime signal configured
7 init wait configured
8 init mount --make-rslave /
9 init mount bind /b/rootfs /b/rootfs -o bind,rec
10 init mkmountpoint [/b/rootfs]/proc -> $made.4
11 init mount -t proc proc [/b/rootfs]/proc -o defaults
12 init mkmountpoint [/b/rootfs]/dev -> $made.5
13 init mount -t tmpfs tmpfs [/b/rootfs]/dev -o nosuid,strictatime data=mode=755,size=65536k
14 init mknod -m 666 [/b/rootfs]/dev/null c 1 3 owner=0:0
15 init mknod -m 666 [/b/rootfs]/dev/zero c 1 5 owner=0:0
16 init mknod -m 666 [/b/rootfs]/dev/full c 1 7 owner=0:0
17 init mknod -m 666 [/b/rootfs]/dev/random c 1 8 owner=0:0
18 init mknod -m 666 [/b/rootfs]/dev/urandom c 1 9 owner=0:0
19 init mknod -m 666 [/b/rootfs]/dev/tty c 5 0 owner=0:0
20 init ln -s /proc/self/fd [/b/rootfs]/dev/fd
21 init ln -s /proc/self/fd/0 [/b/rootfs]/dev/stdin
22 init ln -s /proc/self/fd/1 [/b/rootfs]/dev/stdout
23 init ln -s /proc/self/fd/2 [/b/rootfs]/dev/stderr
24 init ln -s /proc/kcore [/b/rootfs]/dev/core
25 init pivot-root /b/rootfs
26 init close-fds above 2
27 init cd /
28 init setgroups none
29 init setgid 0
30 init setuid 0
31 init signal created
32 runtime wait created
33 runtime state-write /run/berth/c1 id=c1 bundle=/b pid=$init.pid status=created
34 runtime signal start
35 init wait start
36 init exec sh env=PATH=/bin HOME=/
";
        assert_eq!(p.to_string(), want, "\n{p}");
        assert_eq!(start_barrier(&p), Some(34));
    }

    #[test]
    fn plans_are_deterministic() {
        let mut cfg = minimal_config();
        with_userns(&mut cfg);
        join(&mut cfg, Namespace::Network, "/var/run/netns/n1");
        let req = request(cfg);
        assert_eq!(plan_create(&req, &host_v1()), plan_create(&req, &host_v1()));
        assert_eq!(
            plan_create(&req, &host_v2()).unwrap().to_string(),
            plan_create(&req, &host_v2()).unwrap().to_string()
        );
    }

    #[test]
    fn new_userns_maps_are_written_right_after_the_clone() {
        let mut cfg = minimal_config();
        with_userns(&mut cfg);
        let p = plan(&request(cfg), &host_v2());
        let spawn = pos(&p, "runtime spawn ns=user,pid,mnt,net,uts,ipc -> $init.pid");
        let l = lines(&p);
        assert_eq!(
            l[spawn + 1],
            "runtime write /proc/$init.pid/uid_map \"0 100000 65536\""
        );
        assert_eq!(
            l[spawn + 2],
            "runtime write /proc/$init.pid/gid_map \"0 100000 65536\""
        );
        assert!(spawn + 2 < pos(&p, "runtime signal configured"));
        // Root on the host: setgroups stays allowed and init sets its groups.
        assert!(find(&p, |o| matches!(o, Op::WriteSetgroups { .. })).is_none());
        assert!(find(&p, |o| matches!(o, Op::Setgroups(_))).is_some());
        // In a user namespace, devices are bound from the host, never made.
        assert!(find(&p, |o| matches!(o, Op::Mknod { .. })).is_none(), "{p}");
        let mp = pos(
            &p,
            "init mkmountpoint [/b/rootfs]/dev/null like /dev/null -> $made",
        );
        assert_eq!(
            lines(&p)[mp + 1],
            "init mount bind /dev/null [/b/rootfs]/dev/null -o bind"
        );
    }

    #[test]
    fn rootless_userns_denies_setgroups_and_skips_them() {
        let mut cfg = minimal_config();
        with_userns(&mut cfg);
        let p = plan(&request(cfg.clone()), &rootless(host_v2()));
        let uid = find(&p, |o| {
            matches!(
                o,
                Op::WriteIdMap {
                    kind: IdMapKind::Uid,
                    ..
                }
            )
        })
        .unwrap();
        let deny = pos(&p, "runtime write /proc/$init.pid/setgroups deny");
        let gid = find(&p, |o| {
            matches!(
                o,
                Op::WriteIdMap {
                    kind: IdMapKind::Gid,
                    ..
                }
            )
        })
        .unwrap();
        assert!(uid < deny && deny < gid, "{p}");
        assert!(find(&p, |o| matches!(o, Op::Setgroups(_))).is_none(), "{p}");
        process(&mut cfg).user.additional_gids = vec![10, 20];
        assert_eq!(
            plan_create(&request(cfg), &rootless(host_v2())),
            Err(PlanError::AdditionalGidsRootless { gids: vec![10, 20] })
        );
    }

    #[test]
    fn joined_netns_with_a_new_userns_is_entered_by_the_runtime_around_the_clone() {
        let mut cfg = minimal_config();
        with_userns(&mut cfg);
        join(&mut cfg, Namespace::Network, "/var/run/netns/n1");
        let p = plan(&request(cfg), &host_v2());
        let l = lines(&p);
        let spawn = pos(&p, "runtime spawn ns=user,pid,mnt,uts,ipc -> $init.pid");
        let want = [
            "runtime open-ns /proc/self/ns/net -> $runtime.net",
            "runtime setns net /var/run/netns/n1",
            "runtime spawn ns=user,pid,mnt,uts,ipc -> $init.pid",
            "runtime setns net $runtime.net",
            "runtime write /proc/$init.pid/uid_map \"0 100000 65536\"",
            "runtime write /proc/$init.pid/gid_map \"0 100000 65536\"",
        ];
        assert_eq!(&l[spawn - 2..spawn + 4], &want[..], "\n{p}");
        // Init becomes root of its new user namespace before anything else.
        let wait = pos(&p, "init wait configured");
        assert_eq!(
            l[wait + 1..wait + 3],
            ["init setgid 0", "init setuid 0"],
            "{p}"
        );
        assert!(
            !l.iter()
                .any(|s| s.starts_with("init setns") || s.starts_with("init unshare")),
            "{p}"
        );
    }

    #[test]
    fn sysfs_is_bound_from_the_host_in_a_userns_without_its_own_netns() {
        let mut cfg = minimal_config();
        with_userns(&mut cfg);
        cfg.mounts
            .push(fs_mount("/sys", "sysfs", "sysfs", &[MountFlag::Ro], &[]));
        let p = plan(&request(cfg.clone()), &host_v2());
        assert!(
            lines(&p)
                .iter()
                .any(|l| l.starts_with("init mount -t sysfs")),
            "{p}"
        );
        join(&mut cfg, Namespace::Network, "/var/run/netns/n1");
        let p = plan(&request(cfg), &host_v2());
        assert!(
            !lines(&p)
                .iter()
                .any(|l| l.starts_with("init mount -t sysfs")),
            "{p}"
        );
        pos(&p, "init mount bind /sys [/b/rootfs]/sys -o bind,rec");
        pos(&p, "init remount [/b/rootfs]/sys -o bind,ro");
    }

    #[test]
    fn proc_and_mqueue_in_a_userns_need_their_own_namespaces() {
        let mut cfg = minimal_config();
        with_userns(&mut cfg);
        cfg.linux.namespaces.retain(|n| n.ns != Namespace::Pid);
        let index = cfg
            .mounts
            .iter()
            .position(|m| m.destination.as_str() == "/proc")
            .unwrap();
        assert_eq!(
            plan_create(&request(cfg.clone()), &host_v2()),
            Err(PlanError::NeedsOwnNamespace {
                index,
                fstype: "proc".into(),
                ns: Namespace::Pid
            })
        );
        let mut cfg = minimal_config();
        with_userns(&mut cfg);
        cfg.linux.namespaces.retain(|n| n.ns != Namespace::Ipc);
        cfg.mounts
            .push(fs_mount("/dev/mqueue", "mqueue", "mqueue", &[], &[]));
        let index = cfg.mounts.len() - 1;
        assert_eq!(
            plan_create(&request(cfg), &host_v2()),
            Err(PlanError::NeedsOwnNamespace {
                index,
                fstype: "mqueue".into(),
                ns: Namespace::Ipc
            })
        );
    }

    #[test]
    fn joined_userns_is_entered_by_init_before_other_joins() {
        let mut cfg = minimal_config();
        cfg.linux.namespaces.retain(|n| n.ns != Namespace::Pid);
        join(&mut cfg, Namespace::Pid, "/proc/42/ns/pid");
        join(&mut cfg, Namespace::Network, "/var/run/netns/n1");
        join(&mut cfg, Namespace::User, "/proc/42/ns/user");
        let p = plan(&request(cfg), &host_v2());
        assert_eq!(
            lines(&p)[pos(&p, "runtime spawn ns=none -> $init.pid")],
            "runtime spawn ns=none -> $init.pid"
        );
        let user = pos(&p, "init setns user /proc/42/ns/user");
        let net = pos(&p, "init setns net /var/run/netns/n1");
        assert_eq!(net, user + 3, "{p}");
        assert_eq!(
            lines(&p)[user + 1..net],
            ["init setgid 0", "init setuid 0"],
            "{p}"
        );
        assert_eq!(lines(&p)[net + 1], "init unshare mnt,uts,ipc");
        assert!(find(&p, |o| matches!(o, Op::WriteIdMap { .. })).is_none());
        // A joined user namespace is a user namespace: devices are bound, not made.
        assert!(find(&p, |o| matches!(o, Op::Mknod { .. })).is_none(), "{p}");
    }

    #[test]
    fn a_new_pid_ns_in_a_joined_userns_is_refused() {
        let mut cfg = minimal_config();
        join(&mut cfg, Namespace::User, "/proc/42/ns/user");
        assert_eq!(
            plan_create(&request(cfg), &host_v2()),
            Err(PlanError::NewNamespaceInJoinedUserns { ns: Namespace::Pid })
        );
    }

    #[test]
    fn joined_pid_ns_is_entered_by_the_runtime_around_the_clone() {
        let mut cfg = minimal_config();
        join(&mut cfg, Namespace::Pid, "/proc/4242/ns/pid");
        let p = plan(&request(cfg), &host_v2());
        let spawn = pos(&p, "runtime spawn ns=mnt,net,uts,ipc -> $init.pid");
        let l = lines(&p);
        assert_eq!(
            l[spawn - 2],
            "runtime open-ns /proc/self/ns/pid -> $runtime.pid"
        );
        assert_eq!(l[spawn - 1], "runtime setns pid /proc/4242/ns/pid");
        assert_eq!(l[spawn + 1], "runtime setns pid $runtime.pid");
        assert!(!l.iter().any(|s| s.starts_with("init setns")), "{p}");
    }

    #[test]
    fn joined_time_ns_is_entered_by_the_runtime_around_the_clone() {
        let mut cfg = minimal_config();
        join(&mut cfg, Namespace::Time, "/proc/7/ns/time");
        let p = plan(&request(cfg), &host_v2());
        let spawn = pos(&p, "runtime spawn ns=pid,mnt,net,uts,ipc -> $init.pid");
        let l = lines(&p);
        assert_eq!(l[spawn - 1], "runtime setns time /proc/7/ns/time");
        assert_eq!(l[spawn + 1], "runtime setns time $runtime.time");
    }

    #[test]
    fn new_cgroup_ns_is_unshared_by_init_after_the_cgroup_join() {
        let mut cfg = minimal_config();
        cfg.linux.namespaces.push(NamespaceConfig {
            ns: Namespace::Cgroup,
            path: None,
        });
        let p = plan(&request(cfg), &host_v2());
        let spawn = pos(&p, "runtime spawn ns=pid,mnt,net,uts,ipc -> $init.pid");
        let attach = find(&p, |o| matches!(o, Op::CgroupAttach { .. })).unwrap();
        let unshare = pos(&p, "init unshare cgroup");
        assert!(spawn < attach && attach < unshare, "{p}");
        assert_eq!(lines(&p)[unshare - 1], "init wait configured");
    }

    #[test]
    fn console_size_sizes_the_pty_before_the_process_runs() {
        let mut cfg = minimal_config();
        process(&mut cfg).terminal = true;
        process(&mut cfg).console_size = Some((33, 101));
        let mut req = request(cfg);
        req.options.console_socket = Some(HostPath::new("/s"));
        let p = plan(&req, &host_v2());
        pos(
            &p,
            "init setup-console /dev/console rows=33 cols=101 -> $console.master",
        );
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), p);
    }

    #[test]
    fn no_pivot_chroots() {
        let mut req = request(minimal_config());
        req.options.no_pivot = true;
        let p = plan(&req, &host_v2());
        pos(&p, "init chroot /b/rootfs");
        assert!(find(&p, |o| matches!(o, Op::PivotRoot { .. })).is_none());
    }

    #[test]
    fn terminal_sends_the_console_master() {
        let mut cfg = minimal_config();
        process(&mut cfg).terminal = true;
        assert_eq!(
            plan_create(&request(cfg.clone()), &host_v2()),
            Err(PlanError::TerminalWithoutConsoleSocket)
        );
        cfg.root.readonly = true;
        let mut req = request(cfg);
        req.options.console_socket = Some(HostPath::new("/run/console.sock"));
        let p = plan(&req, &host_v2());
        let pivot = pos(&p, "init pivot-root /b/rootfs");
        let console = pos(&p, "init setup-console /dev/console -> $console.master");
        let send = pos(&p, "init send-fd $console.master $console.socket");
        let ro = pos(&p, "init remount / -o bind,ro");
        assert!(pivot < console && console + 1 == send && send < ro, "{p}");
        // The socket is connected by the runtime before the clone: init inherits it.
        let connect = pos(&p, "runtime connect /run/console.sock -> $console.socket");
        assert!(
            connect < find(&p, |o| matches!(o, Op::Spawn { .. })).unwrap(),
            "{p}"
        );
    }

    #[test]
    fn hooks_run_where_runc_runs_them() {
        let mut cfg = minimal_config();
        cfg.hooks = HooksConfig {
            prestart: vec![hook("pre")],
            create_runtime: vec![hook("cr"), hook("cr2")],
            create_container: vec![hook("cc")],
            start_container: vec![hook("sc")],
            poststart: vec![hook("ps")],
            poststop: vec![hook("stop")],
        };
        let p = plan(&request(cfg), &host_v2());
        let l = lines(&p);
        let last_mount = l.iter().rposition(|s| s.contains("[/b/rootfs]")).unwrap();
        let ready = pos(&p, "init signal namespaces-ready");
        let pre = pos(&p, "runtime hook prestart[0] /hooks/pre pid=$init.pid");
        assert_eq!(
            l[pre + 1],
            "runtime hook createRuntime[0] /hooks/cr pid=$init.pid"
        );
        assert_eq!(
            l[pre + 2],
            "runtime hook createRuntime[1] /hooks/cr2 pid=$init.pid"
        );
        assert_eq!(l[pre + 3], "runtime signal runtime-hooks-done");
        let cc = pos(&p, "init hook createContainer[0] /hooks/cc pid=$init.pid");
        let pivot = pos(&p, "init pivot-root /b/rootfs");
        let start = pos(&p, "init wait start");
        let sc = pos(&p, "init hook startContainer[0] /hooks/sc pid=$init.pid");
        let exec = pos(&p, "init exec sh env=PATH=/bin HOME=/");
        let ps = pos(&p, "runtime hook poststart[0] /hooks/ps pid=$init.pid");
        assert!(last_mount < ready && ready + 1 < pre, "{p}");
        assert!(pre + 4 < cc && cc < pivot, "{p}");
        assert!(start < sc && sc + 1 == exec && exec + 1 == ps, "{p}");
        assert_eq!(ps, p.steps.len() - 1);
        assert!(!l.iter().any(|s| s.contains("poststop")), "{p}");
    }

    #[test]
    fn readonly_rootfs_is_remounted_after_the_switch() {
        let mut cfg = minimal_config();
        cfg.root.readonly = true;
        let p = plan(&request(cfg), &host_v2());
        let pivot = pos(&p, "init pivot-root /b/rootfs");
        let ro = pos(&p, "init remount / -o bind,ro");
        let exec = find(&p, |o| matches!(o, Op::Exec { .. })).unwrap();
        assert!(pivot < ro && ro < exec);
    }

    #[test]
    fn masked_readonly_paths_sysctl_and_names_follow_the_switch() {
        let mut cfg = minimal_config();
        cfg.hostname = Some("box".to_owned());
        cfg.domainname = Some("example.org".to_owned());
        cfg.linux
            .sysctl
            .insert("net.ipv4.ip_forward".to_owned(), "1".to_owned());
        cfg.linux
            .sysctl
            .insert("kernel.msgmax".to_owned(), "8192".to_owned());
        cfg.linux.masked_paths = vec![cp("/proc/kcore")];
        cfg.linux.readonly_paths = vec![cp("/proc/sys")];
        let p = plan(&request(cfg), &host_v2());
        let pivot = pos(&p, "init pivot-root /b/rootfs");
        let order = [
            "init hostname \"box\"",
            "init domainname \"example.org\"",
            "init sysctl kernel.msgmax=\"8192\"",
            "init sysctl net.ipv4.ip_forward=\"1\"",
            "init readonly /proc/sys",
            "init mask /proc/kcore",
        ];
        let at: Vec<usize> = order.iter().map(|t| pos(&p, t)).collect();
        assert!(pivot < at[0], "{p}");
        assert!(at.windows(2).all(|w| w[0] + 1 == w[1]), "{p}");
    }

    #[test]
    fn devices_are_made_when_root_on_the_host() {
        let mut cfg = minimal_config();
        let dev = |path: &str, major| DeviceConfig {
            path: cp(path),
            kind: DeviceKind::Char,
            major,
            minor: 200,
            file_mode: 0o600,
            uid: 5,
            gid: 6,
        };
        // One replaces a default device, one needs its directory.
        cfg.linux.devices = vec![dev("/dev/null", 1), dev("/dev/net/tun", 10)];
        let p = plan(&request(cfg), &host_v2());
        let l = lines(&p);
        assert!(!l.iter().any(|s| s.contains("/dev/null c 1 3")), "{p}");
        pos(
            &p,
            "init mknod -m 600 [/b/rootfs]/dev/null c 1 200 owner=5:6",
        );
        let dir = pos(&p, "init mkmountpoint [/b/rootfs]/dev/net -> $made");
        assert_eq!(
            l[dir + 1],
            "init mknod -m 600 [/b/rootfs]/dev/net/tun c 10 200 owner=5:6"
        );
    }

    #[test]
    fn devices_in_a_userns_are_bound_from_the_host() {
        let mut cfg = minimal_config();
        with_userns(&mut cfg);
        cfg.linux.devices = vec![DeviceConfig {
            path: cp("/dev/fuse"),
            kind: DeviceKind::Char,
            major: 10,
            minor: 229,
            file_mode: 0o666,
            uid: 0,
            gid: 0,
        }];
        let p = plan(&request(cfg), &rootless(host_v2()));
        assert!(find(&p, |o| matches!(o, Op::Mknod { .. })).is_none(), "{p}");
        for name in ["null", "zero", "full", "random", "urandom", "tty", "fuse"] {
            let mp = lines(&p)
                .iter()
                .position(|l| {
                    l.starts_with(&format!(
                        "init mkmountpoint [/b/rootfs]/dev/{name} like /dev/{name} "
                    ))
                })
                .unwrap_or_else(|| panic!("no mount point for {name}\n{p}"));
            assert_eq!(
                lines(&p)[mp + 1],
                format!("init mount bind /dev/{name} [/b/rootfs]/dev/{name} -o bind")
            );
        }
    }

    #[test]
    fn no_dev_tmpfs_means_no_default_devices_and_a_bound_dev_means_none() {
        let mut cfg = minimal_config();
        cfg.mounts.retain(|m| m.destination.as_str() != "/dev");
        cfg.linux.devices = vec![DeviceConfig {
            path: cp("/dev/fuse"),
            kind: DeviceKind::Char,
            major: 10,
            minor: 229,
            file_mode: 0o666,
            uid: 0,
            gid: 0,
        }];
        let p = plan(&request(cfg.clone()), &host_v2());
        let made: Vec<String> = lines(&p)
            .into_iter()
            .filter(|l| l.contains("mknod") || l.contains("ln -s"))
            .collect();
        assert_eq!(
            made,
            ["init mknod -m 666 [/b/rootfs]/dev/fuse c 10 229 owner=0:0"]
        );
        cfg.mounts.push(MountConfig {
            destination: cp("/dev"),
            kind: MountKind::Bind {
                source: HostPath::new("/dev"),
                recursive: true,
            },
            flags: MountFlags::default(),
            propagation: Vec::new(),
            data: Vec::new(),
        });
        let p = plan(&request(cfg), &host_v2());
        assert!(find(&p, |o| matches!(o, Op::Mknod { .. } | Op::Symlink { .. })).is_none());
    }

    #[test]
    fn ptmx_link_only_with_a_devpts_mount() {
        let mut cfg = minimal_config();
        cfg.mounts.push(fs_mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[MountFlag::Nosuid, MountFlag::Noexec],
            &["newinstance", "ptmxmode=0666"],
        ));
        let p = plan(&request(cfg), &host_v2());
        let pts = pos(
            &p,
            "init mount -t devpts devpts [/b/rootfs]/dev/pts -o nosuid,noexec data=newinstance,ptmxmode=0666",
        );
        assert!(pts < pos(&p, "init ln -s pts/ptmx [/b/rootfs]/dev/ptmx"));
    }

    #[test]
    fn a_ptmx_device_gives_way_to_the_link() {
        // podman --privileged lists every host device, /dev/ptmx too.
        let mut cfg = minimal_config();
        cfg.mounts.push(fs_mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[MountFlag::Nosuid, MountFlag::Noexec],
            &["newinstance", "ptmxmode=0666"],
        ));
        cfg.linux.devices = vec![DeviceConfig {
            path: cp("/dev/ptmx"),
            kind: DeviceKind::Char,
            major: 5,
            minor: 2,
            file_mode: 0o666,
            uid: 0,
            gid: 0,
        }];
        let p = plan(&request(cfg.clone()), &host_v2());
        assert!(!lines(&p).iter().any(|l| l.contains("c 5 2")), "{p}");
        pos(&p, "init ln -s pts/ptmx [/b/rootfs]/dev/ptmx");
        // Without devpts there is no link, and the node is made.
        cfg.mounts.retain(|m| m.destination.as_str() != "/dev/pts");
        let p = plan(&request(cfg), &host_v2());
        pos(&p, "init mknod -m 666 [/b/rootfs]/dev/ptmx c 5 2 owner=0:0");
    }

    #[test]
    fn bind_mounts_get_their_flags_by_remount_then_propagation() {
        let mut cfg = minimal_config();
        cfg.mounts.push(MountConfig {
            destination: cp("/data"),
            kind: MountKind::Bind {
                source: HostPath::new("/srv/a"),
                recursive: true,
            },
            flags: MountFlags::of(&[MountFlag::Ro, MountFlag::Nosuid]),
            propagation: vec![(Propagation::Private, true)],
            data: Vec::new(),
        });
        let p = plan(&request(cfg), &host_v2());
        let mp = pos(
            &p,
            "init mkmountpoint [/b/rootfs]/data like /srv/a -> $made",
        );
        let l = lines(&p);
        assert_eq!(
            l[mp + 1],
            "init mount bind /srv/a [/b/rootfs]/data -o bind,rec"
        );
        assert_eq!(l[mp + 2], "init remount [/b/rootfs]/data -o bind,ro,nosuid");
        assert_eq!(l[mp + 3], "init mount --make-rprivate [/b/rootfs]/data");
    }

    #[test]
    fn readonly_tmpfs_is_made_readonly_after_the_console() {
        let mut cfg = minimal_config();
        cfg.mounts[1].flags.insert(MountFlag::Ro);
        process(&mut cfg).terminal = true;
        let mut req = request(cfg);
        req.options.console_socket = Some(HostPath::new("/s"));
        let p = plan(&req, &host_v2());
        pos(
            &p,
            "init mount -t tmpfs tmpfs [/b/rootfs]/dev -o nosuid,strictatime data=mode=755,size=65536k",
        );
        let console = pos(&p, "init setup-console /dev/console -> $console.master");
        let ro = pos(&p, "init remount /dev -o ro,nosuid,strictatime");
        assert!(console < ro, "{p}");
    }

    #[test]
    fn cgroup_mount_v1_binds_each_hierarchy() {
        let mut cfg = minimal_config();
        cfg.mounts.push(fs_mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &[
                MountFlag::Nosuid,
                MountFlag::Noexec,
                MountFlag::Nodev,
                MountFlag::Ro,
            ],
            &[],
        ));
        let p = plan(&request(cfg), &host_v1());
        let l = lines(&p);
        let tmpfs = pos(
            &p,
            "init mount -t tmpfs tmpfs [/b/rootfs]/sys/fs/cgroup -o nosuid,nodev,noexec data=mode=755",
        );
        let want = [
            "init mkmountpoint [/b/rootfs]/sys/fs/cgroup/cpu,cpuacct like /sys/fs/cgroup/cpu,cpuacct/berth/c1 -> $made",
            "init mount bind /sys/fs/cgroup/cpu,cpuacct/berth/c1 [/b/rootfs]/sys/fs/cgroup/cpu,cpuacct -o bind,rec",
            "init remount [/b/rootfs]/sys/fs/cgroup/cpu,cpuacct -o bind,ro,nosuid,nodev,noexec",
            "init ln -s cpu,cpuacct [/b/rootfs]/sys/fs/cgroup/cpu",
            "init ln -s cpu,cpuacct [/b/rootfs]/sys/fs/cgroup/cpuacct",
            "init mkmountpoint [/b/rootfs]/sys/fs/cgroup/memory like /sys/fs/cgroup/memory/berth/c1 -> $made",
            "init mount bind /sys/fs/cgroup/memory/berth/c1 [/b/rootfs]/sys/fs/cgroup/memory -o bind,rec",
            "init remount [/b/rootfs]/sys/fs/cgroup/memory -o bind,ro,nosuid,nodev,noexec",
            "init mkmountpoint [/b/rootfs]/sys/fs/cgroup/systemd like /sys/fs/cgroup/systemd/berth/c1 -> $made",
            "init mount bind /sys/fs/cgroup/systemd/berth/c1 [/b/rootfs]/sys/fs/cgroup/systemd -o bind,rec",
            "init remount [/b/rootfs]/sys/fs/cgroup/systemd -o bind,ro,nosuid,nodev,noexec",
            "init remount [/b/rootfs]/sys/fs/cgroup -o ro,nosuid,nodev,noexec",
        ];
        assert_eq!(&l[tmpfs + 1..tmpfs + 1 + want.len()], &want[..], "\n{p}");
    }

    #[test]
    fn cgroup_mount_v2_mounts_cgroup2_in_a_cgroup_ns_else_binds() {
        let mut cfg = minimal_config();
        cfg.mounts.push(fs_mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &[MountFlag::Nosuid, MountFlag::Ro],
            &[],
        ));
        let p = plan(&request(cfg.clone()), &host_v2());
        let mp = pos(&p, "init mkmountpoint [/b/rootfs]/sys/fs/cgroup -> $made");
        let l = lines(&p);
        assert_eq!(
            l[mp + 1],
            "init mount bind /sys/fs/cgroup/berth/c1 [/b/rootfs]/sys/fs/cgroup -o bind"
        );
        assert_eq!(
            l[mp + 2],
            "init remount [/b/rootfs]/sys/fs/cgroup -o bind,ro,nosuid"
        );
        cfg.linux.namespaces.push(NamespaceConfig {
            ns: Namespace::Cgroup,
            path: None,
        });
        let p = plan(&request(cfg.clone()), &host_v2());
        pos(
            &p,
            "init mount -t cgroup2 cgroup2 [/b/rootfs]/sys/fs/cgroup -o ro,nosuid",
        );
        let none = HostFacts {
            cgroup: CgroupLayout::None,
            ..host_v2()
        };
        assert_eq!(
            plan_create(&request(cfg), &none),
            Err(PlanError::CgroupMountWithoutCgroups {
                index: 2,
                destination: cp("/sys/fs/cgroup"),
            })
        );
    }

    #[test]
    fn identity_follows_runc_order() {
        let mut cfg = minimal_config();
        let caps: CapSet = [Capability::from_name("CAP_KILL").unwrap()]
            .into_iter()
            .collect();
        let p = process(&mut cfg);
        p.capabilities = Some(CapSets {
            bounding: caps,
            effective: caps,
            inheritable: CapSet::default(),
            permitted: caps,
            ambient: CapSet::default(),
        });
        p.user = UserConfig {
            uid: 1000,
            gid: 1000,
            umask: Some(0o022),
            additional_gids: vec![10],
        };
        p.cwd = cp("/home/app");
        p.oom_score_adj = Some(-500);
        p.rlimits = vec![(crate::plan::Rlimit::RlimitNofile, 1024, 2048)];
        cfg.linux.seccomp = Some(SeccompProfile {
            default_action: SeccompAction::Allow,
            architectures: Vec::new(),
            flags: Vec::new(),
            rules: Vec::new(),
            listener_path: None,
        });
        let p = plan(&request(cfg.clone()), &host_v2());
        let want = [
            "init oom-score-adj -500",
            "init setrlimit RLIMIT_NOFILE soft=1024 hard=2048",
            "init umask 0022",
            "init close-fds above 2",
            "init cd /home/app",
            "init cap-bounding kill",
            "init seccomp default=allow arch=native rules=0 syscalls=0",
            "init setgroups 10",
            "init setgid 1000",
            "init setuid 1000",
            "init cap-set effective=kill permitted=kill inheritable=none ambient=none",
            "init signal created",
        ];
        let first = pos(&p, want[0]);
        assert_eq!(&lines(&p)[first..first + want.len()], &want[..], "\n{p}");
        pos(&p, "init mkdir -p -m 755 [/b/rootfs]/home/app -> $made");
        // With no_new_privs the filter comes last, as close to the execve as runc puts
        // it: after the start barrier and the startContainer hooks.
        process(&mut cfg).no_new_privileges = true;
        cfg.hooks.start_container = vec![HookSpec {
            path: "/bin/hook".to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            timeout: None,
        }];
        let p = plan(&request(cfg.clone()), &host_v2());
        let l = lines(&p);
        let created = pos(&p, "init signal created");
        assert_eq!(l[created - 1], "init no-new-privs");
        let seccomp = pos(
            &p,
            "init seccomp default=allow arch=native rules=0 syscalls=0",
        );
        assert!(seccomp > pos(&p, "init wait start"), "\n{p}");
        let hook = l
            .iter()
            .position(|s| s.starts_with("init hook startContainer"))
            .unwrap();
        assert!(seccomp > hook, "\n{p}");
        assert!(l[seccomp + 1].starts_with("init exec "), "\n{p}");
        assert_eq!(l.iter().filter(|s| s.contains("seccomp")).count(), 1);
        let no_seccomp = HostFacts {
            seccomp: false,
            ..host_v2()
        };
        assert_eq!(
            plan_create(&request(cfg), &no_seccomp),
            Err(PlanError::SeccompUnsupported)
        );
    }

    #[test]
    fn state_pid_file_and_env() {
        let mut cfg = minimal_config();
        process(&mut cfg).env.push("HOME=/root".to_owned());
        let mut req = request(cfg.clone());
        req.options.pid_file = Some(HostPath::new("/run/c1.pid"));
        req.options.preserve_fds = 2;
        let p = plan(&req, &host_v2());
        let l = lines(&p);
        let pidfile = pos(&p, "runtime write-pid-file /run/c1.pid $init.pid");
        assert!(l[pidfile + 1].starts_with("runtime state-write /run/berth/c1 "));
        assert_eq!(start_barrier(&p), Some(pidfile + 2));
        pos(&p, "init close-fds above 4");
        pos(&p, "init exec sh env=PATH=/bin HOME=/root");
        let mut req = request(cfg);
        process(&mut req.config)
            .env
            .retain(|e| !e.starts_with("HOME="));
        req.home = Some("/home/app".to_owned());
        pos(
            &plan(&req, &host_v2()),
            "init exec sh env=PATH=/bin HOME=/home/app",
        );
    }

    #[test]
    fn what_planning_refuses() {
        let mut cfg = minimal_config();
        cfg.linux.namespaces.retain(|n| n.ns != Namespace::Mount);
        assert_eq!(
            plan_create(&request(cfg.clone()), &host_v2()),
            Err(PlanError::NoMountNamespace { joined: None })
        );
        join(&mut cfg, Namespace::Mount, "/proc/1/ns/mnt");
        assert_eq!(
            plan_create(&request(cfg), &host_v2()),
            Err(PlanError::NoMountNamespace {
                joined: Some(HostPath::new("/proc/1/ns/mnt"))
            })
        );

        let mut cfg = minimal_config();
        cfg.mounts.push(fs_mount("/", "tmpfs", "tmpfs", &[], &[]));
        assert_eq!(
            plan_create(&request(cfg), &host_v2()),
            Err(PlanError::MountOnRoot {
                index: 2,
                destination: ContainerPath::root()
            })
        );

        let mut cfg = minimal_config();
        cfg.process = None;
        assert_eq!(
            plan_create(&request(cfg), &host_v2()),
            Err(PlanError::NoProcess)
        );

        // In a new user namespace, a gid= option must name a mapped gid.
        let mut cfg = minimal_config();
        with_userns(&mut cfg);
        cfg.mounts.push(fs_mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[],
            &["newinstance", "gid=5"],
        ));
        let index = cfg.mounts.len() - 1;
        let ok = plan_create(&request(cfg.clone()), &host_v2());
        let mapped = cfg
            .linux
            .gid_mappings
            .iter()
            .any(|m| 5 >= m.container_id && 5 - m.container_id < m.size);
        if mapped {
            assert!(ok.is_ok(), "{ok:?}");
            cfg.linux.gid_mappings = vec![crate::plan::IdMapping {
                container_id: 0,
                host_id: 1000,
                size: 1,
            }];
        }
        assert_eq!(
            plan_create(&request(cfg), &host_v2()),
            Err(PlanError::UnmappedMountId {
                index,
                option: "gid=5".to_owned(),
                id: 5,
                mappings: "gidMappings",
            })
        );

        let mut old_kernel = host_v2();
        old_kernel.namespaces.retain(|n| *n != Namespace::Time);
        let mut cfg = minimal_config();
        cfg.linux.namespaces.push(NamespaceConfig {
            ns: Namespace::Time,
            path: None,
        });
        let err = plan_create(&request(cfg), &old_kernel).unwrap_err();
        assert_eq!(
            err,
            PlanError::UnsupportedNamespace {
                ns: Namespace::Time
            }
        );
        assert_eq!(
            err.to_string(),
            "linux.namespaces: namespace time is not supported by the kernel"
        );
        assert!(
            PlanError::TerminalWithoutConsoleSocket
                .to_string()
                .starts_with(
                    "cannot allocate a tty if berth will detach without setting the console socket"
                )
        );
    }

    #[test]
    fn everything_at_once_keeps_the_invariants() {
        for host in [host_v1(), host_v2(), rootless(host_v2())] {
            for no_pivot in [false, true] {
                let mut cfg = minimal_config();
                with_userns(&mut cfg);
                join(&mut cfg, Namespace::Network, "/var/run/netns/n1");
                cfg.linux.namespaces.push(NamespaceConfig {
                    ns: Namespace::Cgroup,
                    path: None,
                });
                cfg.root.readonly = true;
                cfg.mounts.push(fs_mount(
                    "/sys/fs/cgroup",
                    "cgroup",
                    "cgroup",
                    &[MountFlag::Ro],
                    &[],
                ));
                cfg.hooks.prestart = vec![hook("a")];
                cfg.hooks.create_container = vec![hook("b")];
                cfg.hooks.poststart = vec![hook("c")];
                cfg.linux.masked_paths = vec![cp("/proc/kcore")];
                process(&mut cfg).terminal = true;
                let mut req = request(cfg);
                req.options.no_pivot = no_pivot;
                req.options.console_socket = Some(HostPath::new("/s"));
                plan(&req, &host);
            }
        }
    }
}
