//! Cgroup hierarchies: v1 (one per controller group, each directory with its controllers'
//! interface files) and v2 (one tree, each directory with the files of the controllers its
//! parent enables in `cgroup.subtree_control`).
//!
//! Cgroups are directories and files of a cgroup filesystem instance, reached through the
//! actor's mounts, so a container's read-only view of its cgroup is read-only here too.
//! Membership lives with the processes ([`crate::model::Proc::cgroups`]): a cgroup with a
//! live member cannot be removed.

use berth_core::plan::{CgroupPath, DeviceRule, MountFlag};

use crate::FakeError;
use crate::model::{Fs, FsKind, Id, Node, NodeKind};
use crate::path;
use crate::world::{Made, World};

/// The order in which the kernel lists v2 controllers.
const V2_ORDER: [&str; 8] = [
    "cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc",
];

/// Sorts controllers as the kernel prints them; unknown ones last, by name.
pub(crate) fn canonical(mut ctrls: Vec<String>) -> Vec<String> {
    ctrls.sort_by_key(|c| {
        (
            V2_ORDER
                .iter()
                .position(|o| o == c)
                .unwrap_or(V2_ORDER.len()),
            c.clone(),
        )
    });
    ctrls.dedup();
    ctrls
}

/// The interface files a v1 controller adds to every cgroup of its hierarchy.
pub(crate) fn v1_files(controller: &str, hugepages: &[String]) -> Vec<String> {
    let list: &[&str] = match controller {
        "memory" => &[
            "memory.limit_in_bytes",
            "memory.soft_limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.memsw.usage_in_bytes",
            "memory.memsw.max_usage_in_bytes",
            "memory.kmem.limit_in_bytes",
            "memory.kmem.usage_in_bytes",
            "memory.kmem.tcp.limit_in_bytes",
            "memory.kmem.tcp.usage_in_bytes",
            "memory.swappiness",
            "memory.oom_control",
            "memory.usage_in_bytes",
            "memory.max_usage_in_bytes",
            "memory.failcnt",
            "memory.stat",
            "memory.use_hierarchy",
            "memory.force_empty",
            "memory.move_charge_at_immigrate",
            "memory.pressure_level",
        ],
        "cpu" => &[
            "cpu.shares",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
            "cpu.cfs_burst_us",
            "cpu.rt_period_us",
            "cpu.rt_runtime_us",
            "cpu.idle",
            "cpu.stat",
        ],
        "cpuacct" => &[
            "cpuacct.usage",
            "cpuacct.usage_percpu",
            "cpuacct.usage_all",
            "cpuacct.stat",
        ],
        "cpuset" => &[
            "cpuset.cpus",
            "cpuset.mems",
            "cpuset.effective_cpus",
            "cpuset.effective_mems",
            "cpuset.cpu_exclusive",
            "cpuset.mem_exclusive",
            "cpuset.mem_hardwall",
            "cpuset.memory_migrate",
            "cpuset.memory_pressure",
            "cpuset.memory_spread_page",
            "cpuset.memory_spread_slab",
            "cpuset.sched_load_balance",
            "cpuset.sched_relax_domain_level",
        ],
        "pids" => &["pids.max", "pids.current", "pids.events"],
        "blkio" => &[
            "blkio.weight",
            "blkio.weight_device",
            "blkio.leaf_weight",
            "blkio.leaf_weight_device",
            "blkio.bfq.weight",
            "blkio.bfq.weight_device",
            "blkio.throttle.read_bps_device",
            "blkio.throttle.write_bps_device",
            "blkio.throttle.read_iops_device",
            "blkio.throttle.write_iops_device",
            "blkio.throttle.io_service_bytes",
            "blkio.throttle.io_serviced",
            "blkio.reset_stats",
        ],
        "devices" => &["devices.allow", "devices.deny", "devices.list"],
        "net_cls" => &["net_cls.classid"],
        "net_prio" => &["net_prio.ifpriomap", "net_prio.prioidx"],
        "freezer" => &[
            "freezer.state",
            "freezer.self_freezing",
            "freezer.parent_freezing",
        ],
        "rdma" => &["rdma.max", "rdma.current"],
        "hugetlb" => {
            return hugepages
                .iter()
                .flat_map(|size| {
                    [
                        "limit_in_bytes",
                        "usage_in_bytes",
                        "max_usage_in_bytes",
                        "failcnt",
                        "rsvd.limit_in_bytes",
                        "rsvd.usage_in_bytes",
                        "rsvd.max_usage_in_bytes",
                        "rsvd.failcnt",
                    ]
                    .map(|f| format!("hugetlb.{size}.{f}"))
                })
                .collect();
        }
        _ => &[],
    };
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The interface files every v1 cgroup has.
const V1_CORE: [&str; 4] = [
    "cgroup.procs",
    "cgroup.clone_children",
    "notify_on_release",
    "tasks",
];

/// The interface files a v2 controller adds to a (non-root) cgroup whose parent enables
/// it.
pub(crate) fn v2_files(controller: &str, hugepages: &[String]) -> Vec<String> {
    let list: &[&str] = match controller {
        "memory" => &[
            "memory.current",
            "memory.min",
            "memory.low",
            "memory.high",
            "memory.max",
            "memory.peak",
            "memory.oom.group",
            "memory.events",
            "memory.events.local",
            "memory.stat",
            "memory.swap.current",
            "memory.swap.high",
            "memory.swap.max",
            "memory.swap.peak",
            "memory.swap.events",
            "memory.zswap.current",
            "memory.zswap.max",
        ],
        "cpu" => &[
            "cpu.max",
            "cpu.max.burst",
            "cpu.weight",
            "cpu.weight.nice",
            "cpu.idle",
            "cpu.uclamp.min",
            "cpu.uclamp.max",
        ],
        "cpuset" => &[
            "cpuset.cpus",
            "cpuset.mems",
            "cpuset.cpus.effective",
            "cpuset.mems.effective",
            "cpuset.cpus.partition",
        ],
        "io" => &[
            "io.max",
            "io.weight",
            "io.bfq.weight",
            "io.latency",
            "io.stat",
        ],
        "pids" => &["pids.max", "pids.current", "pids.events", "pids.peak"],
        "rdma" => &["rdma.max", "rdma.current"],
        "misc" => &["misc.max", "misc.current", "misc.events"],
        "hugetlb" => {
            return hugepages
                .iter()
                .flat_map(|size| {
                    [
                        "max",
                        "current",
                        "events",
                        "events.local",
                        "rsvd.max",
                        "rsvd.current",
                    ]
                    .map(|f| format!("hugetlb.{size}.{f}"))
                })
                .collect();
        }
        _ => &[],
    };
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The core files of a v2 cgroup (`root` has fewer).
fn v2_core(root: bool) -> Vec<&'static str> {
    let mut v = vec![
        "cgroup.controllers",
        "cgroup.max.depth",
        "cgroup.max.descendants",
        "cgroup.procs",
        "cgroup.stat",
        "cgroup.subtree_control",
        "cgroup.threads",
        "cpu.pressure",
        "cpu.stat",
        "io.pressure",
        "memory.pressure",
    ];
    if !root {
        v.extend([
            "cgroup.events",
            "cgroup.freeze",
            "cgroup.kill",
            "cgroup.type",
        ]);
    }
    v
}

/// Files no one may write.
fn read_only_file(name: &str) -> bool {
    [
        ".current",
        ".stat",
        ".events",
        ".events.local",
        ".effective",
        ".peak",
        "usage_in_bytes",
        "usage_percpu",
        "usage_all",
        "cpuacct.usage",
        "devices.list",
        "cgroup.controllers",
        "effective_cpus",
        "effective_mems",
        "io_service_bytes",
        "io_serviced",
        "prioidx",
        "failcnt",
        "_freezing",
        ".pressure_level",
        "memory_pressure",
    ]
    .iter()
    .any(|s| name.ends_with(s))
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn file_text(fs: &Fs, p: &str) -> String {
    match fs.nodes.get(p).map(|n| &n.kind) {
        Some(NodeKind::File(c)) => c.clone(),
        _ => String::new(),
    }
}

fn set_file(fs: &mut Fs, p: &str, content: &str) {
    fs.nodes.insert(p.to_owned(), Node::file(0o644, content));
}

/// Lays out the root of a hierarchy. `controllers`/`subtree` are v2's root files.
pub(crate) fn init_root(
    fs: &mut Fs,
    hugepages: &[String],
    controllers: &[String],
    subtree: &[String],
) {
    match fs.kind.clone() {
        FsKind::Cgroup1(ctrls) => {
            for f in V1_CORE {
                set_file(fs, &path::join("/", f), "");
            }
            set_file(fs, "/release_agent", "");
            set_file(fs, "/cgroup.sane_behavior", "0");
            for c in &ctrls {
                for f in v1_files(c, hugepages) {
                    // The root has no freezer state of its own.
                    if f != "freezer.state" {
                        set_file(fs, &path::join("/", &f), "");
                    }
                }
            }
            if ctrls.iter().any(|c| c == "cpuset") {
                set_file(fs, "/cpuset.cpus", "0-1");
                set_file(fs, "/cpuset.mems", "0");
            }
        }
        FsKind::Cgroup2 => {
            for f in v2_core(true) {
                set_file(fs, &path::join("/", f), "");
            }
            set_file(
                fs,
                "/cgroup.controllers",
                &canonical(controllers.to_vec()).join(" "),
            );
            set_file(
                fs,
                "/cgroup.subtree_control",
                &canonical(subtree.to_vec()).join(" "),
            );
            if controllers.iter().any(|c| c == "cpuset") {
                set_file(fs, "/cpuset.cpus.effective", "0-1");
                set_file(fs, "/cpuset.mems.effective", "0");
            }
        }
        _ => {}
    }
}

/// Makes cgroup directory `dir` (its parent exists) with its interface files.
fn make_cgroup(fs: &mut Fs, dir: &str, hugepages: &[String]) {
    let parent = path::parent(dir);
    fs.nodes.insert(dir.to_owned(), Node::dir(0o755));
    match fs.kind.clone() {
        FsKind::Cgroup1(ctrls) => {
            for f in V1_CORE {
                set_file(fs, &path::join(dir, f), "");
            }
            for c in &ctrls {
                for f in v1_files(c, hugepages) {
                    set_file(fs, &path::join(dir, &f), "");
                }
            }
            if ctrls.iter().any(|c| c == "cpuset") {
                // As runc does for a new cpuset cgroup (an empty one refuses tasks).
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let v = file_text(fs, &path::join(&parent, f));
                    set_file(fs, &path::join(dir, f), &v);
                }
            }
        }
        FsKind::Cgroup2 => {
            for f in v2_core(false) {
                set_file(fs, &path::join(dir, f), "");
            }
            set_file(fs, &path::join(dir, "cgroup.type"), "domain");
            let enabled = words(&file_text(
                fs,
                &path::join(&parent, "cgroup.subtree_control"),
            ));
            set_file(
                fs,
                &path::join(dir, "cgroup.controllers"),
                &enabled.join(" "),
            );
            for c in &enabled {
                for f in v2_files(c, hugepages) {
                    set_file(fs, &path::join(dir, &f), "");
                }
            }
        }
        _ => {}
    }
}

/// A cgroup directory as an op names it.
#[derive(Debug)]
struct CgDir {
    fs: Id,
    /// The directory in the hierarchy's filesystem.
    dir: String,
    /// The filesystem path of the op's mount point (`CgroupPath::mount`).
    base: String,
    /// The mount it is reached through is read-only.
    ro: bool,
}

impl World {
    /// Finds `cg` through the actor's mounts.
    fn cgroup_dir(
        &mut self,
        op: &'static str,
        pid: u32,
        cg: &CgroupPath,
    ) -> Result<CgDir, FakeError> {
        let not_cg = || FakeError::NotCgroup {
            op,
            path: cg.mount.to_string(),
        };
        if path::components(&cg.path).any(|c| c == "." || c == "..") {
            return Err(FakeError::Invalid {
                op,
                why: format!("cgroup path {:?} has . or ..", cg.path),
            });
        }
        let spot = self.spot_host(pid, &cg.mount)?;
        let m = match self.resolve(&spot, true) {
            Ok(m) => m,
            Err(FakeError::Missing { .. }) => return Err(not_cg()),
            Err(e) => return Err(e),
        };
        self.node(spot.mns, &m).ok_or_else(not_cg)?;
        let e = self.covering_entry(spot.mns, &m).ok_or_else(not_cg)?;
        let fs = self.m.fs.get(&e.fs).ok_or_else(not_cg)?;
        if !fs.kind.is_cgroup() {
            return Err(not_cg());
        }
        let base = path::join(&e.fs_root, &path::strip(&m, &e.target));
        Ok(CgDir {
            fs: e.fs,
            dir: path::join(&base, &cg.path),
            base,
            ro: e.flags.contains(MountFlag::Ro),
        })
    }

    fn cgroup_fs(&mut self, id: Id) -> Result<&mut Fs, FakeError> {
        self.m.fs_mut(id).ok_or(FakeError::NamespaceGone {
            op: "cgroup",
            what: format!("cgroup hierarchy {id}"),
        })
    }

    /// Checks that a cgroup directory exists.
    fn existing(&self, op: &'static str, d: &CgDir, shown: &str) -> Result<(), FakeError> {
        match self.m.fs.get(&d.fs).and_then(|f| f.nodes.get(&d.dir)) {
            Some(n) if n.is_dir() => Ok(()),
            _ => Err(FakeError::NoCgroup {
                op,
                path: shown.to_owned(),
            }),
        }
    }

    /// The live processes in cgroup `dir` of hierarchy `fs`.
    fn members(&self, fs: Id, dir: &str) -> Vec<u32> {
        self.m
            .procs
            .iter()
            .filter(|(_, p)| p.cgroups.get(&fs).is_some_and(|d| d == dir))
            .map(|(pid, _)| *pid)
            .collect()
    }

    /// `cgroup-kill`: the live processes in `cg` and below it, which the signal reaches.
    pub(crate) fn cgroup_kill_targets(
        &mut self,
        pid: u32,
        cg: &CgroupPath,
    ) -> Result<Vec<u32>, FakeError> {
        let op = "cgroup-kill";
        let d = self.cgroup_dir(op, pid, cg)?;
        self.existing(op, &d, &cg.to_string())?;
        Ok(self
            .m
            .procs
            .iter()
            .filter(|(_, p)| p.cgroups.get(&d.fs).is_some_and(|x| path::under(x, &d.dir)))
            .map(|(pid, _)| *pid)
            .collect())
    }

    /// `mkdir -p` of a cgroup, as the kernel's cgroupfs and the Linux backend do it: an
    /// existing directory is joined, not an error (a second container under `berth/` on
    /// v2 creates the shared parent again); only what is new is recorded as made.
    pub(crate) fn cgroup_create(&mut self, pid: u32, cg: &CgroupPath) -> Result<Made, FakeError> {
        let op = "cgroup-create";
        let d = self.cgroup_dir(op, pid, cg)?;
        let shown = cg.to_string();
        let hugepages = self.facts.hugepages.clone();
        if d.ro {
            return Err(FakeError::ReadOnly { op, path: shown });
        }
        let fs = self.cgroup_fs(d.fs)?;
        let mut made = Vec::new();
        let mut cur = "/".to_owned();
        for c in path::components(&d.dir) {
            cur = path::join(&cur, c);
            match fs.nodes.get(&cur) {
                Some(n) if n.is_dir() => {}
                Some(_) => return Err(FakeError::NotDir { op, path: shown }),
                None => {
                    make_cgroup(fs, &cur, &hugepages);
                    made.push(cur.clone());
                }
            }
        }
        let shown = made
            .iter()
            .map(|m| path::rebase(m, &d.base, cg.mount.as_str()))
            .collect();
        Ok(Made::Cgroups {
            fs: d.fs,
            dirs: made,
            shown,
        })
    }

    /// `rmdir` of one cgroup directory: no live member, no child cgroup.
    pub(crate) fn cgroup_rmdir(
        &mut self,
        op: &'static str,
        fs_id: Id,
        dir: &str,
        shown: &str,
    ) -> Result<(), FakeError> {
        if dir == "/" {
            return Err(FakeError::Busy {
                op,
                path: shown.to_owned(),
                why: "it is the hierarchy's root".to_owned(),
            });
        }
        let members = self.members(fs_id, dir);
        if !members.is_empty() {
            return Err(FakeError::Busy {
                op,
                path: shown.to_owned(),
                why: format!("processes {members:?} are in it"),
            });
        }
        let fs = self.cgroup_fs(fs_id)?;
        match fs.nodes.get(dir) {
            Some(n) if n.is_dir() => {}
            _ => {
                return Err(FakeError::NoCgroup {
                    op,
                    path: shown.to_owned(),
                });
            }
        }
        let children: Vec<String> = fs
            .direct_children(dir)
            .into_iter()
            .filter(|c| fs.nodes.get(c).is_some_and(Node::is_dir))
            .collect();
        if let Some(child) = children.first() {
            return Err(FakeError::Busy {
                op,
                path: shown.to_owned(),
                why: format!("it has a child cgroup {}", path::name(child)),
            });
        }
        let files: Vec<String> = fs.children(dir).map(|(k, _)| k.clone()).collect();
        for f in files {
            fs.nodes.remove(&f);
        }
        fs.nodes.remove(dir);
        fs.bpf.remove(dir);
        Ok(())
    }

    /// `cgroup-remove`.
    pub(crate) fn cgroup_remove(&mut self, pid: u32, cg: &CgroupPath) -> Result<(), FakeError> {
        let op = "cgroup-remove";
        let d = self.cgroup_dir(op, pid, cg)?;
        let shown = cg.to_string();
        self.existing(op, &d, &shown)?;
        if d.ro {
            return Err(FakeError::ReadOnly { op, path: shown });
        }
        // The cgroups below it go first, deepest first (as runc's destroy).
        let mut below: Vec<String> = self
            .m
            .fs
            .get(&d.fs)
            .map(|f| {
                f.nodes
                    .iter()
                    .filter(|(p, n)| n.is_dir() && path::strictly_under(p, &d.dir))
                    .map(|(p, _)| p.clone())
                    .collect()
            })
            .unwrap_or_default();
        below.sort_by_key(|p| std::cmp::Reverse(path::components(p).count()));
        for dir in below {
            let child = format!("{shown}{}", &dir[d.dir.len()..]);
            self.cgroup_rmdir(op, d.fs, &dir, &child)?;
        }
        self.cgroup_rmdir(op, d.fs, &d.dir, &shown)
    }

    /// `cgroup-write`: the file must exist in this layout and be writable.
    pub(crate) fn cgroup_write(
        &mut self,
        pid: u32,
        cg: &CgroupPath,
        file: &str,
        value: &str,
    ) -> Result<(), FakeError> {
        let op = "cgroup-write";
        let d = self.cgroup_dir(op, pid, cg)?;
        let shown = format!("{cg}/{file}");
        self.existing(op, &d, &cg.to_string())?;
        let instead = match file {
            "cgroup.procs" | "tasks" | "cgroup.threads" => Some("cgroup-attach"),
            "cgroup.subtree_control" => Some("cgroup-enable"),
            _ => None,
        };
        if let Some(instead) = instead {
            return Err(FakeError::CgroupUseOp {
                path: shown,
                instead,
            });
        }
        let fp = path::join(&d.dir, file);
        let fs = self.cgroup_fs(d.fs)?;
        match fs.nodes.get(&fp).map(|n| &n.kind) {
            Some(NodeKind::File(_)) if !file.contains('/') => {}
            _ => return Err(FakeError::CgroupFileMissing { path: shown }),
        }
        if read_only_file(file) {
            return Err(FakeError::CgroupReadOnlyFile { path: shown });
        }
        if d.ro {
            return Err(FakeError::ReadOnly { op, path: shown });
        }
        // devices.allow/deny take one rule per write: keep them all.
        let content = if matches!(file, "devices.allow" | "devices.deny") {
            let old = file_text(fs, &fp);
            if old.is_empty() {
                value.to_owned()
            } else {
                format!("{old}\n{value}")
            }
        } else {
            value.to_owned()
        };
        set_file(fs, &fp, &content);
        Ok(())
    }

    /// `cgroup-attach`.
    pub(crate) fn cgroup_attach(
        &mut self,
        pid: u32,
        cg: &CgroupPath,
        target: u32,
    ) -> Result<(), FakeError> {
        let op = "cgroup-attach";
        let d = self.cgroup_dir(op, pid, cg)?;
        let shown = cg.to_string();
        self.existing(op, &d, &shown)?;
        if d.ro {
            return Err(FakeError::ReadOnly { op, path: shown });
        }
        let fs = self.cgroup_fs(d.fs)?;
        if fs.kind == FsKind::Cgroup2 && d.dir != "/" {
            let subtree = file_text(fs, &path::join(&d.dir, "cgroup.subtree_control"));
            if !subtree.trim().is_empty() {
                return Err(FakeError::Busy {
                    op,
                    path: shown,
                    why: format!(
                        "it enables controllers for children ({subtree}): no internal processes"
                    ),
                });
            }
        }
        self.proc_mut(target)?.cgroups.insert(d.fs, d.dir);
        Ok(())
    }

    /// Adds or removes controller `c`'s files in the direct children of `dir`.
    fn children_controller(fs: &mut Fs, dir: &str, c: &str, on: bool, hugepages: &[String]) {
        let children: Vec<String> = fs
            .direct_children(dir)
            .into_iter()
            .filter(|k| fs.nodes.get(k).is_some_and(Node::is_dir))
            .collect();
        for child in children {
            let cfile = path::join(&child, "cgroup.controllers");
            let mut ctrls = words(&file_text(fs, &cfile));
            ctrls.retain(|x| x != c);
            if on {
                ctrls.push(c.to_owned());
            }
            set_file(fs, &cfile, &canonical(ctrls).join(" "));
            for f in v2_files(c, hugepages) {
                let fp = path::join(&child, &f);
                if on {
                    set_file(fs, &fp, "");
                } else {
                    fs.nodes.remove(&fp);
                }
            }
        }
    }

    /// `cgroup-enable`: the controllers newly enabled.
    pub(crate) fn cgroup_enable(
        &mut self,
        pid: u32,
        cg: &CgroupPath,
        controllers: &[String],
    ) -> Result<Made, FakeError> {
        let op = "cgroup-enable";
        let d = self.cgroup_dir(op, pid, cg)?;
        let shown = cg.to_string();
        self.existing(op, &d, &shown)?;
        if d.ro {
            return Err(FakeError::ReadOnly { op, path: shown });
        }
        let members = self.members(d.fs, &d.dir);
        let hugepages = self.facts.hugepages.clone();
        let fs = self.cgroup_fs(d.fs)?;
        if fs.kind != FsKind::Cgroup2 {
            return Err(FakeError::NotV2 { op, path: shown });
        }
        let available = file_text(fs, &path::join(&d.dir, "cgroup.controllers"));
        let offered = words(&available);
        for c in controllers {
            if !offered.contains(c) {
                return Err(FakeError::ControllerUnavailable {
                    op,
                    path: shown,
                    controller: c.clone(),
                    available,
                });
            }
        }
        if d.dir != "/" && !members.is_empty() {
            return Err(FakeError::Busy {
                op,
                path: shown,
                why: format!("processes {members:?} are in it: no internal processes"),
            });
        }
        let sc = path::join(&d.dir, "cgroup.subtree_control");
        let mut enabled = words(&file_text(fs, &sc));
        let mut newly = Vec::new();
        for c in controllers {
            if !enabled.contains(c) && !newly.contains(c) {
                newly.push(c.clone());
            }
        }
        enabled.extend(newly.iter().cloned());
        set_file(fs, &sc, &canonical(enabled).join(" "));
        for c in &newly {
            Self::children_controller(fs, &d.dir, c, true, &hugepages);
        }
        Ok(Made::Controllers(newly))
    }

    /// `cgroup-disable`: turns off exactly what an enable turned on.
    pub(crate) fn cgroup_disable(
        &mut self,
        pid: u32,
        cg: &CgroupPath,
        controllers: &[String],
    ) -> Result<(), FakeError> {
        let op = "cgroup-disable";
        let d = self.cgroup_dir(op, pid, cg)?;
        let shown = cg.to_string();
        self.existing(op, &d, &shown)?;
        if d.ro {
            return Err(FakeError::ReadOnly { op, path: shown });
        }
        let hugepages = self.facts.hugepages.clone();
        let fs = self.cgroup_fs(d.fs)?;
        if fs.kind != FsKind::Cgroup2 {
            return Err(FakeError::NotV2 { op, path: shown });
        }
        for child in fs.direct_children(&d.dir) {
            let sub = words(&file_text(
                fs,
                &path::join(&child, "cgroup.subtree_control"),
            ));
            if let Some(c) = controllers.iter().find(|c| sub.contains(c)) {
                return Err(FakeError::Busy {
                    op,
                    path: shown,
                    why: format!("child {} still enables {c}", path::name(&child)),
                });
            }
        }
        let sc = path::join(&d.dir, "cgroup.subtree_control");
        let mut enabled = words(&file_text(fs, &sc));
        enabled.retain(|c| !controllers.contains(c));
        set_file(fs, &sc, &canonical(enabled).join(" "));
        for c in controllers {
            Self::children_controller(fs, &d.dir, c, false, &hugepages);
        }
        Ok(())
    }

    /// `cgroup-devices`: attach (replace) a v2 device program.
    pub(crate) fn cgroup_devices(
        &mut self,
        pid: u32,
        cg: &CgroupPath,
        rules: &[DeviceRule],
    ) -> Result<(), FakeError> {
        let op = "cgroup-devices";
        let d = self.cgroup_dir(op, pid, cg)?;
        let shown = cg.to_string();
        self.existing(op, &d, &shown)?;
        let fs = self.cgroup_fs(d.fs)?;
        if fs.kind != FsKind::Cgroup2 {
            return Err(FakeError::NotV2 { op, path: shown });
        }
        fs.bpf
            .insert(d.dir, rules.iter().map(ToString::to_string).collect());
        Ok(())
    }
}
