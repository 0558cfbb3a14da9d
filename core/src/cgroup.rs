//! `linux.resources` to cgroup v1 or v2 file writes; the layout is an input.
//!
//! Two entry points: [`resource_writes`] is the pure mapping from OCI resources to interface
//! file writes (used by tests and by `update`), and [`plan_cgroup_setup`] turns a container's
//! `linux.cgroupsPath` and resources into the runtime's cgroup steps for a given
//! [`CgroupLayout`]: create the cgroup(s), enable controllers (v2), write every resource,
//! install device rules, attach the init process.
//!
//! Invariants:
//! - pure: the host's current cgroup state is never read; everything comes from the
//!   arguments, so the same inputs always give the same steps;
//! - all-or-nothing: every check runs before the first step is pushed, so an error leaves
//!   the [`PlanBuilder`] untouched;
//! - writes are ordered so that a kernel accepts them on a freshly created cgroup (memory
//!   limit before memory+swap, CFS period before quota, quota before burst, RT period before
//!   RT runtime), and every write precedes the attach.
//!
//! Values follow runc: a zero memory, CPU or weight value means "unset" and writes nothing;
//! `-1` means unlimited (`-1` on v1, `max` on v2).
//!
//! Mapping gaps that are deliberate (runc does the same): on v2, `memory.kernel`,
//! `memory.kernelTCP`, `memory.swappiness`, `memory.disableOOMKiller` and the blkio leaf
//! weights have no counterpart and are ignored; `memory.useHierarchy` and
//! `memory.checkBeforeUpdate` are ignored on both versions. Nothing is written to the v1
//! freezer at create time: `pause` will plan `freezer.state` (v1) or `cgroup.freeze` (v2).

use std::collections::{BTreeMap, BTreeSet};

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxNetwork,
    LinuxResources,
};

use crate::host::CgroupLayout;
use crate::plan::{CgroupPath, DeviceRule, HostPath, Op, PidRef, PlanBuilder};

/// Which cgroup interface the files are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// cgroup v1: one hierarchy per controller.
    V1,
    /// cgroup v2: the unified hierarchy.
    V2,
}

/// One interface file write: which controller owns the file, the file, and the value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CgroupWrite {
    /// The controller (`memory`, `cpu`, `cpuset`, ...); `cgroup` for v2 core files.
    pub controller: String,
    /// The file in the container's cgroup (`memory.max`).
    pub file: String,
    /// What is written.
    pub value: String,
}

/// A cgroups path or a resource that cannot be planned, naming the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgroupError {
    /// A systemd-style `slice:prefix:name` path without systemd cgroup support.
    #[error("linux.cgroupsPath: {path:?}: systemd cgroup paths need --systemd-cgroup")]
    SystemdPath {
        /// The path as given.
        path: String,
    },
    /// A `..` component, which could escape the hierarchy.
    #[error("linux.cgroupsPath: {path:?}: `..` is not allowed in a cgroup path")]
    DotDot {
        /// The path as given.
        path: String,
    },
    /// A path naming the hierarchy's root cgroup itself.
    #[error("linux.cgroupsPath: {path:?} names the root cgroup")]
    RootCgroup {
        /// The path as given.
        path: String,
    },
    /// A container id that cannot be a single cgroup directory name.
    #[error("container id {id:?} cannot name a cgroup")]
    BadId {
        /// The id.
        id: String,
    },
    /// A resource needs a controller the host does not offer.
    #[error("{at}: {controller} controller not available")]
    ControllerMissing {
        /// JSON path of the resource.
        at: String,
        /// The controller it needs.
        controller: String,
    },
    /// A resource is set but the host has no cgroups at all.
    #[error("{at}: cgroups are not available on this host")]
    NoCgroups {
        /// JSON path of the resource.
        at: String,
    },
    /// A resource that cgroup v2 cannot express.
    #[error("{at}: {what} is not supported on cgroup v2")]
    NotOnV2 {
        /// JSON path of the resource.
        at: String,
        /// What it is (`realtime scheduling`, `net_cls`).
        what: &'static str,
    },
    /// `linux.resources.unified` on a cgroup v1 host.
    #[error("linux.resources.unified: unified resources need cgroup v2")]
    UnifiedOnV1,
    /// A `linux.resources.unified` key that is not a writable interface file name.
    #[error("linux.resources.unified: key {key:?}: {reason}")]
    UnifiedKey {
        /// The key.
        key: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A number outside what the kernel accepts.
    #[error("{at}: {value} is out of range ({range})")]
    OutOfRange {
        /// JSON path of the value.
        at: String,
        /// The value.
        value: String,
        /// What is accepted.
        range: &'static str,
    },
    /// `memory.swap` (memory+swap) below `memory.limit`.
    #[error(
        "linux.resources.memory.swap: {swap} is below memory.limit {limit} (swap is the memory+swap total)"
    )]
    SwapBelowLimit {
        /// memory+swap.
        swap: i64,
        /// memory.
        limit: i64,
    },
    /// `memory.swap` set without a memory limit.
    #[error("linux.resources.memory.swap: {swap} needs a memory.limit")]
    SwapWithoutLimit {
        /// memory+swap.
        swap: i64,
    },
    /// A device rule type other than `a`, `b` or `c`.
    #[error(
        "linux.resources.devices[{index}].type: {kind:?} is not a cgroup device type (a, b or c)"
    )]
    DeviceType {
        /// Index of the rule.
        index: usize,
        /// The type.
        kind: String,
    },
    /// A negative device number other than `-1` (the wildcard).
    #[error("linux.resources.devices[{index}].{field}: {value} is not a device number")]
    DeviceNumber {
        /// Index of the rule.
        index: usize,
        /// `major` or `minor`.
        field: &'static str,
        /// The number.
        value: i64,
    },
    /// Device access letters other than a non-repeating subset of `rwm`.
    #[error("linux.resources.devices[{index}].access: {access:?} is not a subset of \"rwm\"")]
    DeviceAccess {
        /// Index of the rule.
        index: usize,
        /// The access string.
        access: String,
    },
    /// A cpu or memory-node list that is not `0-3,7` style.
    #[error("{at}: {value:?} is not a list like \"0-3,7\"")]
    CpuList {
        /// JSON path of the value.
        at: String,
        /// The value.
        value: String,
    },
    /// A hugepage size not of the form `2MB`.
    #[error(
        "linux.resources.hugepageLimits[{index}].pageSize: {size:?} is not a page size like \"2MB\""
    )]
    HugepageSize {
        /// Index of the limit.
        index: usize,
        /// The size.
        size: String,
    },
    /// An interface or RDMA device name that cannot appear in a cgroup file line.
    #[error("{at}: {name:?} is not a valid name")]
    BadName {
        /// JSON path of the name.
        at: String,
        /// The name.
        name: String,
    },
}

/// The pure mapping, for tests and for `update`: resource -> list of (controller, file, value).
///
/// Writes come in the order they must be applied. On v1, device rules are writes
/// (`devices.deny a`, then one `devices.allow`/`devices.deny` line per rule); on v2 they are
/// not files but an eBPF program ([`Op::CgroupDevices`]), so they are left out here.
/// For `update`, pass the resources merged onto the container's recorded ones (as runc
/// does), since some values depend on others (v2 swap is memory+swap minus memory).
pub fn resource_writes(
    resources: &LinuxResources,
    version: CgroupVersion,
) -> Result<Vec<CgroupWrite>, CgroupError> {
    Ok(map_resources(resources, version, true)?
        .writes
        .into_iter()
        .map(|s| s.write)
        .collect())
}

/// Plans the runtime-side cgroup setup for a container: create its cgroup(s), enable controllers
/// (v2), write every resource. Emits `Actor::Runtime` steps into `b`. Planned before the
/// spawn, so that a rollback kills init (the spawn's undo) before it removes the cgroups;
/// [`plan_cgroup_attach`] moves init in after the spawn.
/// Returns the container's cgroup directories (one per v1 hierarchy, or the one v2 cgroup), which
/// the create planner uses for the cgroup mount inside the container and the state record.
///
/// The cgroup is `berth/<id>` below each hierarchy root when `cgroups_path` is `None` or
/// empty. An absolute `/a/b` is `a/b` below each root; a relative `a/b` is also `a/b` below
/// each root (runc puts a relative path under its own cgroup; berth keeps one rule).
///
/// v1: the cgroup is made in every mounted hierarchy (deduplicated by mount point, named
/// ones such as `name=systemd` included, and the hybrid `unified` mount last), the writes go
/// to the hierarchy of their controller. Returned in that order.
///
/// v2: for each ancestor from the root down to the parent, the controllers the writes need
/// are enabled (`cgroup-enable`; for the root only those not yet in `subtree_control`, and
/// nothing when none is missing). An ancestor below the root is created (`cgroup-create`,
/// a `mkdir -p` that records only what it made) before its controllers are enabled, since
/// `cgroup.subtree_control` can only be written in an existing directory. Then the leaf is
/// created, written and given its device rules.
///
/// With `CgroupLayout::None`, any limit is an error and otherwise nothing is planned.
pub fn plan_cgroup_setup(
    b: &mut PlanBuilder,
    id: &str,
    cgroups_path: Option<&str>,
    resources: Option<&LinuxResources>,
    layout: &CgroupLayout,
) -> Result<Vec<CgroupPath>, CgroupError> {
    let rel = cgroup_rel_path(id, cgroups_path)?;
    match layout {
        CgroupLayout::None => {
            if let Some(r) = resources
                && let Some(at) = first_limit(r)?
            {
                return Err(CgroupError::NoCgroups { at });
            }
            Ok(Vec::new())
        }
        CgroupLayout::V1 {
            hierarchies,
            unified,
        } => plan_v1(b, &rel, resources, hierarchies, unified.as_ref()),
        CgroupLayout::V2 {
            mount,
            controllers,
            subtree_control,
        } => plan_v2(b, &rel, resources, mount, controllers, subtree_control),
    }
}

fn plan_v1(
    b: &mut PlanBuilder,
    rel: &str,
    resources: Option<&LinuxResources>,
    hierarchies: &BTreeMap<String, HostPath>,
    unified: Option<&HostPath>,
) -> Result<Vec<CgroupPath>, CgroupError> {
    b.set_cgroup_version(CgroupVersion::V1);
    let mapped = match resources {
        Some(r) => map_resources(r, CgroupVersion::V1, true)?,
        None => Mapped::default(),
    };
    let at = |mount: &HostPath| CgroupPath {
        mount: mount.clone(),
        path: rel.to_owned(),
    };
    // Check every controller before pushing anything.
    let mut writes = Vec::with_capacity(mapped.writes.len());
    for s in mapped.writes {
        let Some(mount) = hierarchies.get(&s.write.controller) else {
            return Err(CgroupError::ControllerMissing {
                at: s.at,
                controller: s.write.controller,
            });
        };
        writes.push(Op::CgroupWrite {
            cgroup: at(mount),
            file: s.write.file,
            value: s.write.value,
        });
    }
    let mut mounts: Vec<&HostPath> = hierarchies
        .values()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if let Some(u) = unified
        && !mounts.contains(&u)
    {
        mounts.push(u);
    }
    let cgroups: Vec<CgroupPath> = mounts.into_iter().map(at).collect();
    for cgroup in &cgroups {
        let made = b.made();
        b.runtime(Op::CgroupCreate {
            cgroup: cgroup.clone(),
            made,
        });
    }
    for op in writes {
        b.runtime(op);
    }
    Ok(cgroups)
}

fn plan_v2(
    b: &mut PlanBuilder,
    rel: &str,
    resources: Option<&LinuxResources>,
    mount: &HostPath,
    controllers: &[String],
    subtree_control: &[String],
) -> Result<Vec<CgroupPath>, CgroupError> {
    b.set_cgroup_version(CgroupVersion::V2);
    let mapped = match resources {
        Some(r) => map_resources(r, CgroupVersion::V2, true)?,
        None => Mapped::default(),
    };
    for s in &mapped.writes {
        let c = &s.write.controller;
        if c != CORE && !controllers.contains(c) {
            return Err(CgroupError::ControllerMissing {
                at: s.at.clone(),
                controller: c.clone(),
            });
        }
    }
    // Every controller the root offers is enabled down to the container, as runc and
    // crun do: a later `update` or `events --stats` finds the files whatever the config
    // limited at create time.
    let needed: BTreeSet<String> = controllers.iter().cloned().collect();
    let at = |path: &str| CgroupPath {
        mount: mount.clone(),
        path: path.to_owned(),
    };
    if !needed.is_empty() {
        let missing: Vec<String> = needed
            .iter()
            .filter(|c| !subtree_control.contains(c))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let made = b.made();
            b.runtime(Op::CgroupEnable {
                cgroup: at(""),
                controllers: missing,
                made,
            });
        }
        let parts: Vec<&str> = rel.split('/').collect();
        for depth in 1..parts.len() {
            let ancestor = at(&parts[..depth].join("/"));
            let made = b.made();
            b.runtime(Op::CgroupCreate {
                cgroup: ancestor.clone(),
                made,
            });
            let made = b.made();
            b.runtime(Op::CgroupEnable {
                cgroup: ancestor,
                controllers: needed.iter().cloned().collect(),
                made,
            });
        }
    }
    let leaf = at(rel);
    let made = b.made();
    b.runtime(Op::CgroupCreate {
        cgroup: leaf.clone(),
        made,
    });
    for s in mapped.writes {
        b.runtime(Op::CgroupWrite {
            cgroup: leaf.clone(),
            file: s.write.file,
            value: s.write.value,
        });
    }
    if let Some(rules) = mapped.devices {
        b.runtime(Op::CgroupDevices {
            cgroup: leaf.clone(),
            rules,
        });
    }
    Ok(vec![leaf])
}

/// Device rules runc adds after the config's own (libcontainer/specconv's
/// `AllowedDevices`): `mknod` of any node, and the default devices, pts, ptmx and tun.
/// `(type, major, minor, access)`, `-1` for `*`.
const DEFAULT_ALLOWED_DEVICES: [(LinuxDeviceType, i64, i64, &str); 10] = [
    (LinuxDeviceType::C, -1, -1, "m"),
    (LinuxDeviceType::B, -1, -1, "m"),
    (LinuxDeviceType::C, 1, 3, "rwm"),
    (LinuxDeviceType::C, 1, 8, "rwm"),
    (LinuxDeviceType::C, 1, 7, "rwm"),
    (LinuxDeviceType::C, 5, 0, "rwm"),
    (LinuxDeviceType::C, 1, 5, "rwm"),
    (LinuxDeviceType::C, 1, 9, "rwm"),
    (LinuxDeviceType::C, 136, -1, "rwm"),
    (LinuxDeviceType::C, 5, 2, "rwm"),
];

/// The resources with runc's device rules appended to the config's, when the config has
/// device rules at all: runc's default allowed devices, then an `rwm` allow for each of
/// `linux.devices`. A config that only says "deny all" (as `runc spec`'s does) still gets
/// /dev/null and friends, as it does under runc.
pub fn with_default_device_rules(
    resources: &LinuxResources,
    devices: &[crate::config::DeviceConfig],
) -> LinuxResources {
    let Some(rules) = resources.devices().as_ref().filter(|r| !r.is_empty()) else {
        return resources.clone();
    };
    let rule = |typ: LinuxDeviceType, major: i64, minor: i64, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major((major >= 0).then_some(major));
        r.set_minor((minor >= 0).then_some(minor));
        r.set_access(Some(access.to_owned()));
        r
    };
    let mut all = rules.clone();
    all.extend(
        DEFAULT_ALLOWED_DEVICES
            .iter()
            .map(|(t, ma, mi, a)| rule(*t, *ma, *mi, a)),
    );
    for d in devices {
        let typ = match d.kind {
            crate::plan::DeviceKind::Block => LinuxDeviceType::B,
            crate::plan::DeviceKind::Char => LinuxDeviceType::C,
            crate::plan::DeviceKind::Fifo => continue,
        };
        let n = |v: u64| i64::try_from(v).unwrap_or(-1);
        all.push(rule(typ, n(d.major), n(d.minor), "rwm"));
    }
    let mut out = resources.clone();
    out.set_devices(Some(all));
    out
}

/// Moves the init process into each of the container's cgroups (runtime steps), after
/// [`plan_cgroup_setup`] made and wrote them and after the spawn.
pub fn plan_cgroup_attach(b: &mut PlanBuilder, pid: PidRef, cgroups: &[CgroupPath]) {
    for cgroup in cgroups {
        b.runtime(Op::CgroupAttach {
            cgroup: cgroup.clone(),
            pid,
        });
    }
}

/// The cgroup path below each hierarchy root, normalised, without a leading `/`.
fn cgroup_rel_path(id: &str, cgroups_path: Option<&str>) -> Result<String, CgroupError> {
    let raw = match cgroups_path {
        None | Some("") => {
            if id.is_empty() || id == "." || id == ".." || id.contains('/') {
                return Err(CgroupError::BadId { id: id.to_owned() });
            }
            format!("berth/{id}")
        }
        Some(p) => {
            if !p.starts_with('/') && p.split(':').count() == 3 {
                return Err(CgroupError::SystemdPath { path: p.to_owned() });
            }
            p.to_owned()
        }
    };
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(CgroupError::DotDot {
                    path: cgroups_path.unwrap_or_default().to_owned(),
                });
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(CgroupError::RootCgroup {
            path: cgroups_path.unwrap_or_default().to_owned(),
        });
    }
    Ok(parts.join("/"))
}

/// The JSON path of the first resource that would need a cgroup, if any.
fn first_limit(r: &LinuxResources) -> Result<Option<String>, CgroupError> {
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Ok(Some("linux.resources.unified".to_owned()));
    }
    // v1's mapping is the widest (v2 drops some fields, none it adds but `unified`).
    let mapped = map_resources(r, CgroupVersion::V1, false)?;
    Ok(mapped.writes.into_iter().next().map(|s| s.at))
}

/// The controller name used for v2 core interface files (`cgroup.*`), always present.
const CORE: &str = "cgroup";

/// A write and the JSON path of the resource it comes from (for error messages).
#[derive(Debug)]
struct Sourced {
    at: String,
    write: CgroupWrite,
}

/// The mapped resources: file writes in order, and for v2 the device rules.
#[derive(Debug, Default)]
struct Mapped {
    writes: Vec<Sourced>,
    devices: Option<Vec<DeviceRule>>,
}

impl Mapped {
    fn push(&mut self, at: impl Into<String>, controller: &str, file: &str, value: String) {
        self.writes.push(Sourced {
            at: at.into(),
            write: CgroupWrite {
                controller: controller.to_owned(),
                file: file.to_owned(),
                value,
            },
        });
    }
}

fn map_resources(
    r: &LinuxResources,
    v: CgroupVersion,
    with_unified: bool,
) -> Result<Mapped, CgroupError> {
    let mut m = Mapped::default();
    if let Some(mem) = r.memory() {
        memory(&mut m, mem, v)?;
    }
    if let Some(cpu_res) = r.cpu() {
        cpu(&mut m, cpu_res, v)?;
    }
    if let Some(p) = r.pids() {
        let value = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".to_owned()
        };
        m.push("linux.resources.pids.limit", "pids", "pids.max", value);
    }
    if let Some(bio) = r.block_io() {
        block_io(&mut m, bio, v)?;
    }
    hugetlb(&mut m, r, v)?;
    devices(&mut m, r, v)?;
    if let Some(n) = r.network() {
        network(&mut m, n, v)?;
    }
    rdma(&mut m, r)?;
    if with_unified {
        unified(&mut m, r, v)?;
    }
    Ok(m)
}

/// A memory value: `None` and `0` are unset, `-1` unlimited, below that out of range.
fn mem_value(at: &str, v: Option<i64>) -> Result<Option<i64>, CgroupError> {
    match v {
        None | Some(0) => Ok(None),
        Some(x) if x < -1 => Err(CgroupError::OutOfRange {
            at: at.to_owned(),
            value: x.to_string(),
            range: "-1 or a byte count",
        }),
        Some(x) => Ok(Some(x)),
    }
}

/// A v2 number: `-1` is `max`.
fn v2_num(x: i64) -> String {
    if x == -1 {
        "max".to_owned()
    } else {
        x.to_string()
    }
}

fn memory(m: &mut Mapped, mem: &LinuxMemory, v: CgroupVersion) -> Result<(), CgroupError> {
    const AT: &str = "linux.resources.memory";
    let at = |f: &str| format!("{AT}.{f}");
    let limit = mem_value(&at("limit"), mem.limit())?;
    let reservation = mem_value(&at("reservation"), mem.reservation())?;
    let swap = mem_value(&at("swap"), mem.swap())?;
    #[allow(deprecated)] // still configurable on v1 kernels before 5.4
    let kernel = mem_value(&at("kernel"), mem.kernel())?;
    let kernel_tcp = mem_value(&at("kernelTCP"), mem.kernel_tcp())?;
    // OCI's swap is the memory+swap total; as runc: unlimited needs no limit, a number does.
    let swap = match (swap, limit) {
        (Some(-1), _) => Some(-1),
        (Some(s), None | Some(-1)) => return Err(CgroupError::SwapWithoutLimit { swap: s }),
        (Some(s), Some(l)) if s < l => {
            return Err(CgroupError::SwapBelowLimit { swap: s, limit: l });
        }
        (s, _) => s,
    };
    match v {
        CgroupVersion::V1 => {
            // On a fresh cgroup both limits are unlimited: memory first, then memsw >= it.
            if let Some(l) = limit {
                m.push(
                    at("limit"),
                    "memory",
                    "memory.limit_in_bytes",
                    l.to_string(),
                );
            }
            if let Some(s) = swap {
                m.push(
                    at("swap"),
                    "memory",
                    "memory.memsw.limit_in_bytes",
                    s.to_string(),
                );
            }
            if let Some(r) = reservation {
                m.push(
                    at("reservation"),
                    "memory",
                    "memory.soft_limit_in_bytes",
                    r.to_string(),
                );
            }
            if let Some(k) = kernel {
                m.push(
                    at("kernel"),
                    "memory",
                    "memory.kmem.limit_in_bytes",
                    k.to_string(),
                );
            }
            if let Some(k) = kernel_tcp {
                m.push(
                    at("kernelTCP"),
                    "memory",
                    "memory.kmem.tcp.limit_in_bytes",
                    k.to_string(),
                );
            }
            if let Some(s) = mem.swappiness() {
                if s > 100 {
                    return Err(CgroupError::OutOfRange {
                        at: at("swappiness"),
                        value: s.to_string(),
                        range: "0 to 100",
                    });
                }
                m.push(
                    at("swappiness"),
                    "memory",
                    "memory.swappiness",
                    s.to_string(),
                );
            }
            if mem.disable_oom_killer() == Some(true) {
                m.push(
                    at("disableOOMKiller"),
                    "memory",
                    "memory.oom_control",
                    "1".to_owned(),
                );
            }
        }
        CgroupVersion::V2 => {
            if let Some(l) = limit {
                m.push(at("limit"), "memory", "memory.max", v2_num(l));
            }
            // v2's swap is swap alone. As runc: an unlimited memory with no swap setting
            // makes swap unlimited too (what v1 does implicitly).
            let swap_only = match (swap, limit) {
                (Some(-1), _) | (None, Some(-1)) => Some("max".to_owned()),
                (Some(s), Some(l)) => Some((s - l).to_string()),
                _ => None,
            };
            if let Some(s) = swap_only {
                let src = if swap.is_some() { "swap" } else { "limit" };
                m.push(at(src), "memory", "memory.swap.max", s);
            }
            if let Some(r) = reservation {
                m.push(at("reservation"), "memory", "memory.low", v2_num(r));
            }
        }
    }
    Ok(())
}

/// cpu.shares (v1, 2..=262144) to cpu.weight (v2, 1..=10000), as runc converts it.
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// blkio.weight (v1, 10..=1000) to io.weight (v2, 1..=10000), as runc converts it.
pub fn blkio_weight_to_io(weight: u16) -> u64 {
    let w = u64::from(weight.clamp(10, 1000));
    1 + ((w - 10) * 9999) / 990
}

/// Checks a `0-3,7` style list (cpuset.cpus, cpuset.mems).
fn cpu_list(at: &str, value: &str) -> Result<String, CgroupError> {
    let ok = value.split(',').all(|range| {
        let mut ends = range.splitn(2, '-');
        ends.all(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
    });
    if ok {
        Ok(value.to_owned())
    } else {
        Err(CgroupError::CpuList {
            at: at.to_owned(),
            value: value.to_owned(),
        })
    }
}

fn cpu(m: &mut Mapped, c: &LinuxCpu, v: CgroupVersion) -> Result<(), CgroupError> {
    const AT: &str = "linux.resources.cpu";
    let at = |f: &str| format!("{AT}.{f}");
    let shares = c.shares().filter(|&s| s != 0);
    let period = c.period().filter(|&p| p != 0);
    let quota = match c.quota() {
        None | Some(0) => None,
        Some(q) if q < -1 => {
            return Err(CgroupError::OutOfRange {
                at: at("quota"),
                value: q.to_string(),
                range: "-1 or microseconds",
            });
        }
        Some(q) => Some(q),
    };
    let rt_runtime = c.realtime_runtime().filter(|&r| r != 0);
    let rt_period = c.realtime_period().filter(|&p| p != 0);
    match v {
        CgroupVersion::V1 => {
            if let Some(s) = shares {
                m.push(at("shares"), "cpu", "cpu.shares", s.to_string());
            }
            // The period first: the quota is checked against it.
            if let Some(p) = period {
                m.push(at("period"), "cpu", "cpu.cfs_period_us", p.to_string());
            }
            if let Some(q) = quota {
                m.push(at("quota"), "cpu", "cpu.cfs_quota_us", q.to_string());
            }
            // The burst after the quota: the kernel refuses a burst above the quota.
            if let Some(b) = c.burst() {
                m.push(at("burst"), "cpu", "cpu.cfs_burst_us", b.to_string());
            }
            if let Some(i) = c.idle() {
                m.push(at("idle"), "cpu", "cpu.idle", i.to_string());
            }
            // A new cgroup's RT runtime is 0, so any period is accepted first.
            if let Some(p) = rt_period {
                m.push(
                    at("realtimePeriod"),
                    "cpu",
                    "cpu.rt_period_us",
                    p.to_string(),
                );
            }
            if let Some(r) = rt_runtime {
                m.push(
                    at("realtimeRuntime"),
                    "cpu",
                    "cpu.rt_runtime_us",
                    r.to_string(),
                );
            }
        }
        CgroupVersion::V2 => {
            if rt_runtime.is_some() || rt_period.is_some() {
                let f = if rt_runtime.is_some() {
                    "realtimeRuntime"
                } else {
                    "realtimePeriod"
                };
                return Err(CgroupError::NotOnV2 {
                    at: at(f),
                    what: "realtime scheduling",
                });
            }
            if let Some(s) = shares {
                m.push(
                    at("shares"),
                    "cpu",
                    "cpu.weight",
                    shares_to_weight(s).to_string(),
                );
            }
            if quota.is_some() || period.is_some() {
                let mut value = match quota {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".to_owned(),
                };
                if let Some(p) = period {
                    value.push_str(&format!(" {p}"));
                }
                let src = if quota.is_some() { "quota" } else { "period" };
                m.push(at(src), "cpu", "cpu.max", value);
            }
            if let Some(b) = c.burst() {
                m.push(at("burst"), "cpu", "cpu.max.burst", b.to_string());
            }
            if let Some(i) = c.idle() {
                m.push(at("idle"), "cpu", "cpu.idle", i.to_string());
            }
        }
    }
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        let value = cpu_list(&at("cpus"), cpus)?;
        m.push(at("cpus"), "cpuset", "cpuset.cpus", value);
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        let value = cpu_list(&at("mems"), mems)?;
        m.push(at("mems"), "cpuset", "cpuset.mems", value);
    }
    Ok(())
}

/// A blkio weight: `None` and `0` are unset, else 10..=1000.
fn blkio_weight(at: &str, w: Option<u16>) -> Result<Option<u16>, CgroupError> {
    match w {
        None | Some(0) => Ok(None),
        Some(w) if !(10..=1000).contains(&w) => Err(CgroupError::OutOfRange {
            at: at.to_owned(),
            value: w.to_string(),
            range: "10 to 1000",
        }),
        Some(w) => Ok(Some(w)),
    }
}

/// A `major:minor` pair of a block device; negative numbers are refused.
fn block_dev(at: &str, major: i64, minor: i64) -> Result<String, CgroupError> {
    for (field, n) in [("major", major), ("minor", minor)] {
        if n < 0 {
            return Err(CgroupError::OutOfRange {
                at: format!("{at}.{field}"),
                value: n.to_string(),
                range: "0 or more",
            });
        }
    }
    Ok(format!("{major}:{minor}"))
}

fn block_io(m: &mut Mapped, bio: &LinuxBlockIo, v: CgroupVersion) -> Result<(), CgroupError> {
    const AT: &str = "linux.resources.blockIO";
    let at = |f: &str| format!("{AT}.{f}");
    let weight = blkio_weight(&at("weight"), bio.weight())?;
    let leaf_weight = blkio_weight(&at("leafWeight"), bio.leaf_weight())?;
    let mut weight_devices = Vec::new();
    for (i, d) in bio.weight_device().iter().flatten().enumerate() {
        let dat = at(&format!("weightDevice[{i}]"));
        let dev = block_dev(&dat, d.major(), d.minor())?;
        let w = blkio_weight(&format!("{dat}.weight"), d.weight())?;
        let lw = blkio_weight(&format!("{dat}.leafWeight"), d.leaf_weight())?;
        weight_devices.push((dat, dev, w, lw));
    }
    let throttles = [
        (
            "throttleReadBpsDevice",
            bio.throttle_read_bps_device(),
            "read_bps",
            "rbps",
        ),
        (
            "throttleWriteBpsDevice",
            bio.throttle_write_bps_device(),
            "write_bps",
            "wbps",
        ),
        (
            "throttleReadIOPSDevice",
            bio.throttle_read_iops_device(),
            "read_iops",
            "riops",
        ),
        (
            "throttleWriteIOPSDevice",
            bio.throttle_write_iops_device(),
            "write_iops",
            "wiops",
        ),
    ];
    match v {
        CgroupVersion::V1 => {
            if let Some(w) = weight {
                m.push(at("weight"), "blkio", "blkio.weight", w.to_string());
            }
            if let Some(w) = leaf_weight {
                m.push(
                    at("leafWeight"),
                    "blkio",
                    "blkio.leaf_weight",
                    w.to_string(),
                );
            }
            for (dat, dev, w, lw) in weight_devices {
                if let Some(w) = w {
                    m.push(&dat, "blkio", "blkio.weight_device", format!("{dev} {w}"));
                }
                if let Some(lw) = lw {
                    m.push(
                        &dat,
                        "blkio",
                        "blkio.leaf_weight_device",
                        format!("{dev} {lw}"),
                    );
                }
            }
            for (field, list, v1_name, _) in throttles {
                let file = format!("blkio.throttle.{v1_name}_device");
                for (i, t) in list.iter().flatten().enumerate() {
                    let tat = at(&format!("{field}[{i}]"));
                    let dev = block_dev(&tat, t.major(), t.minor())?;
                    m.push(tat, "blkio", &file, format!("{dev} {}", t.rate()));
                }
            }
        }
        CgroupVersion::V2 => {
            // Leaf weights have no v2 counterpart (runc ignores them too).
            if let Some(w) = weight {
                m.push(
                    at("weight"),
                    "io",
                    "io.weight",
                    blkio_weight_to_io(w).to_string(),
                );
            }
            for (dat, dev, w, _) in weight_devices {
                if let Some(w) = w {
                    m.push(
                        dat,
                        "io",
                        "io.weight",
                        format!("{dev} {}", blkio_weight_to_io(w)),
                    );
                }
            }
            // One io.max line per device, its keys in OCI's order, devices in order of
            // first appearance.
            let mut lines: Vec<(String, String, String)> = Vec::new(); // (dev, at, keys)
            for (field, list, _, key) in throttles {
                for (i, t) in list.iter().flatten().enumerate() {
                    let tat = at(&format!("{field}[{i}]"));
                    let dev = block_dev(&tat, t.major(), t.minor())?;
                    let kv = format!("{key}={}", t.rate());
                    match lines.iter_mut().find(|(d, _, _)| *d == dev) {
                        Some((_, _, keys)) => {
                            keys.push(' ');
                            keys.push_str(&kv);
                        }
                        None => lines.push((dev, tat, kv)),
                    }
                }
            }
            for (dev, tat, keys) in lines {
                m.push(tat, "io", "io.max", format!("{dev} {keys}"));
            }
        }
    }
    Ok(())
}

/// Checks a hugepage size such as `2MB`, `64KB`, `1GB`.
fn page_size_ok(size: &str) -> bool {
    ["KB", "MB", "GB"].iter().any(|unit| {
        size.strip_suffix(unit)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
    })
}

fn hugetlb(m: &mut Mapped, r: &LinuxResources, v: CgroupVersion) -> Result<(), CgroupError> {
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let at = format!("linux.resources.hugepageLimits[{i}]");
        let size = h.page_size();
        if !page_size_ok(size) {
            return Err(CgroupError::HugepageSize {
                index: i,
                size: size.clone(),
            });
        }
        if h.limit() < -1 {
            return Err(CgroupError::OutOfRange {
                at: format!("{at}.limit"),
                value: h.limit().to_string(),
                range: "-1 or a byte count",
            });
        }
        let (file, value) = match v {
            CgroupVersion::V1 => (
                format!("hugetlb.{size}.limit_in_bytes"),
                h.limit().to_string(),
            ),
            CgroupVersion::V2 => (format!("hugetlb.{size}.max"), v2_num(h.limit())),
        };
        m.push(at, "hugetlb", &file, value);
    }
    Ok(())
}

/// One OCI device rule as a cgroup rule; a missing type is `a`, missing access `rwm`,
/// a missing or `-1` number the wildcard.
fn device_rule(index: usize, d: &LinuxDeviceCgroup) -> Result<DeviceRule, CgroupError> {
    let kind = match d.typ() {
        None | Some(LinuxDeviceType::A) => 'a',
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::C) => 'c',
        Some(t @ (LinuxDeviceType::U | LinuxDeviceType::P)) => {
            return Err(CgroupError::DeviceType {
                index,
                kind: t.as_str().to_owned(),
            });
        }
    };
    let number = |field: &'static str, n: Option<i64>| match n {
        None | Some(-1) => Ok(None),
        Some(n) if n < 0 => Err(CgroupError::DeviceNumber {
            index,
            field,
            value: n,
        }),
        Some(n) => Ok(Some(n)),
    };
    let major = number("major", d.major())?;
    let minor = number("minor", d.minor())?;
    let access = match d.access().as_deref() {
        None | Some("") => "rwm".to_owned(),
        Some(a) => {
            let mut seen = BTreeSet::new();
            if !a.chars().all(|c| "rwm".contains(c) && seen.insert(c)) {
                return Err(CgroupError::DeviceAccess {
                    index,
                    access: a.to_owned(),
                });
            }
            a.to_owned()
        }
    };
    Ok(DeviceRule {
        allow: d.allow(),
        kind,
        major,
        minor,
        access,
    })
}

fn devices(m: &mut Mapped, r: &LinuxResources, v: CgroupVersion) -> Result<(), CgroupError> {
    let Some(list) = r.devices() else {
        return Ok(());
    };
    let rules = list
        .iter()
        .enumerate()
        .map(|(i, d)| device_rule(i, d))
        .collect::<Result<Vec<_>, _>>()?;
    match v {
        CgroupVersion::V1 => {
            // Start from nothing allowed, then apply the rules in order (later ones win).
            m.push(
                "linux.resources.devices",
                "devices",
                "devices.deny",
                "a".to_owned(),
            );
            for (i, rule) in rules.into_iter().enumerate() {
                let n = |v: Option<i64>| v.map_or_else(|| "*".to_owned(), |v| v.to_string());
                let file = if rule.allow {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                let line = format!(
                    "{} {}:{} {}",
                    rule.kind,
                    n(rule.major),
                    n(rule.minor),
                    rule.access
                );
                m.push(
                    format!("linux.resources.devices[{i}]"),
                    "devices",
                    file,
                    line,
                );
            }
        }
        CgroupVersion::V2 => m.devices = Some(rules),
    }
    Ok(())
}

/// An interface or device name that fits in one `NAME VALUE` line.
fn name_ok(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn network(m: &mut Mapped, n: &LinuxNetwork, v: CgroupVersion) -> Result<(), CgroupError> {
    const AT: &str = "linux.resources.network";
    let class_id = n.class_id().filter(|&c| c != 0);
    let priorities = n.priorities().as_deref().unwrap_or_default();
    if v == CgroupVersion::V2 {
        if class_id.is_some() {
            return Err(CgroupError::NotOnV2 {
                at: format!("{AT}.classID"),
                what: "net_cls",
            });
        }
        if !priorities.is_empty() {
            return Err(CgroupError::NotOnV2 {
                at: format!("{AT}.priorities"),
                what: "net_prio",
            });
        }
        return Ok(());
    }
    if let Some(c) = class_id {
        m.push(
            format!("{AT}.classID"),
            "net_cls",
            "net_cls.classid",
            c.to_string(),
        );
    }
    for (i, p) in priorities.iter().enumerate() {
        let at = format!("{AT}.priorities[{i}]");
        if !name_ok(p.name()) {
            return Err(CgroupError::BadName {
                at: format!("{at}.name"),
                name: p.name().clone(),
            });
        }
        m.push(
            at,
            "net_prio",
            "net_prio.ifpriomap",
            format!("{} {}", p.name(), p.priority()),
        );
    }
    Ok(())
}

fn rdma(m: &mut Mapped, r: &LinuxResources) -> Result<(), CgroupError> {
    let Some(map) = r.rdma() else {
        return Ok(());
    };
    // Sorted by device name: the config's map has no order.
    let sorted: BTreeMap<_, _> = map.iter().collect();
    for (dev, limits) in sorted {
        let at = format!("linux.resources.rdma.{dev}");
        if !name_ok(dev) {
            return Err(CgroupError::BadName {
                at,
                name: dev.clone(),
            });
        }
        let mut keys = Vec::new();
        if let Some(h) = limits.hca_handles() {
            keys.push(format!("hca_handle={h}"));
        }
        if let Some(o) = limits.hca_objects() {
            keys.push(format!("hca_object={o}"));
        }
        if !keys.is_empty() {
            m.push(at, "rdma", "rdma.max", format!("{dev} {}", keys.join(" ")));
        }
    }
    Ok(())
}

/// v2 core files that berth itself manages and a config may not write.
const MANAGED_CORE_FILES: [&str; 6] = [
    "cgroup.procs",
    "cgroup.threads",
    "cgroup.subtree_control",
    "cgroup.type",
    "cgroup.freeze",
    "cgroup.kill",
];

fn unified(m: &mut Mapped, r: &LinuxResources, v: CgroupVersion) -> Result<(), CgroupError> {
    let Some(map) = r.unified().as_ref().filter(|u| !u.is_empty()) else {
        return Ok(());
    };
    if v == CgroupVersion::V1 {
        return Err(CgroupError::UnifiedOnV1);
    }
    // Written last, so they override the mapped values (as runc does); sorted by key.
    let sorted: BTreeMap<_, _> = map.iter().collect();
    for (key, value) in sorted {
        let bad = |reason| CgroupError::UnifiedKey {
            key: key.clone(),
            reason,
        };
        if key.contains('/') || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("not a file name"));
        }
        let Some((controller, rest)) = key.split_once('.') else {
            return Err(bad("not a CONTROLLER.FILE name"));
        };
        if controller.is_empty() || rest.is_empty() {
            return Err(bad("not a CONTROLLER.FILE name"));
        }
        if MANAGED_CORE_FILES.contains(&key.as_str()) {
            return Err(bad("managed by berth"));
        }
        m.push(
            format!("linux.resources.unified[{key:?}]"),
            controller,
            key,
            value.clone(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Namespace, NamespaceSet};
    use serde_json::json;

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    fn triples(ws: &[CgroupWrite]) -> Vec<(&str, &str, &str)> {
        ws.iter()
            .map(|w| (w.controller.as_str(), w.file.as_str(), w.value.as_str()))
            .collect()
    }

    fn files(r: &LinuxResources, v: CgroupVersion) -> Vec<(String, String)> {
        resource_writes(r, v)
            .unwrap()
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(f, v)| ((*f).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn v1_all() -> LinuxResources {
        res(json!({
            "devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": true, "type": "c", "major": 136, "access": "rw"},
                {"allow": false, "type": "b", "major": 8, "minor": -1, "access": "m"}
            ],
            "memory": {"limit": 536870912, "reservation": 268435456, "swap": 1073741824,
                       "kernel": 67108864, "kernelTCP": 16777216, "swappiness": 60,
                       "disableOOMKiller": true},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 10000,
                    "idle": 0, "realtimeRuntime": 950000, "realtimePeriod": 1000000,
                    "cpus": "0-1,3", "mems": "0"},
            "pids": {"limit": 100},
            "blockIO": {
                "weight": 500, "leafWeight": 300,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 600, "leafWeight": 200}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 200}]
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200},
                               {"pageSize": "1GB", "limit": -1}],
            "network": {"classID": 1048577,
                        "priorities": [{"name": "eth0", "priority": 5},
                                       {"name": "lo", "priority": 1}]},
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000},
                     "mlx4_0": {"hcaHandles": 2}}
        }))
    }

    #[test]
    fn v1_every_file() {
        assert_eq!(
            files(&v1_all(), CgroupVersion::V1),
            pairs(&[
                ("memory.limit_in_bytes", "536870912"),
                ("memory.memsw.limit_in_bytes", "1073741824"),
                ("memory.soft_limit_in_bytes", "268435456"),
                ("memory.kmem.limit_in_bytes", "67108864"),
                ("memory.kmem.tcp.limit_in_bytes", "16777216"),
                ("memory.swappiness", "60"),
                ("memory.oom_control", "1"),
                ("cpu.shares", "1024"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "50000"),
                ("cpu.cfs_burst_us", "10000"),
                ("cpu.idle", "0"),
                ("cpu.rt_period_us", "1000000"),
                ("cpu.rt_runtime_us", "950000"),
                ("cpuset.cpus", "0-1,3"),
                ("cpuset.mems", "0"),
                ("pids.max", "100"),
                ("blkio.weight", "500"),
                ("blkio.leaf_weight", "300"),
                ("blkio.weight_device", "8:0 600"),
                ("blkio.leaf_weight_device", "8:0 200"),
                ("blkio.throttle.read_bps_device", "8:0 1048576"),
                ("blkio.throttle.write_bps_device", "8:0 2097152"),
                ("blkio.throttle.read_iops_device", "8:0 100"),
                ("blkio.throttle.write_iops_device", "8:16 200"),
                ("hugetlb.2MB.limit_in_bytes", "209715200"),
                ("hugetlb.1GB.limit_in_bytes", "-1"),
                ("devices.deny", "a"),
                ("devices.deny", "a *:* rwm"),
                ("devices.allow", "c 1:3 rwm"),
                ("devices.allow", "c 136:* rw"),
                ("devices.deny", "b 8:* m"),
                ("net_cls.classid", "1048577"),
                ("net_prio.ifpriomap", "eth0 5"),
                ("net_prio.ifpriomap", "lo 1"),
                ("rdma.max", "mlx4_0 hca_handle=2"),
                ("rdma.max", "mlx5_1 hca_handle=3 hca_object=10000"),
            ])
        );
    }

    #[test]
    fn v1_controllers() {
        let ws = resource_writes(&v1_all(), CgroupVersion::V1).unwrap();
        let t = triples(&ws);
        for (c, f, _) in &t {
            let prefix = f.split('.').next().unwrap();
            assert_eq!(c, &prefix, "{f}");
        }
    }

    fn v2_all() -> LinuxResources {
        res(json!({
            "devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3},
                {"allow": true, "type": "c", "major": 136, "access": "rw"}
            ],
            "memory": {"limit": 536870912, "reservation": 268435456, "swap": 1073741824,
                       "kernel": 67108864, "kernelTCP": 16777216, "swappiness": 60,
                       "disableOOMKiller": true},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 10000,
                    "idle": 1, "cpus": "0-1", "mems": "0"},
            "pids": {"limit": -1},
            "blockIO": {
                "weight": 500, "leafWeight": 300,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 600, "leafWeight": 200}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 200}]
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200},
                               {"pageSize": "1GB", "limit": -1}],
            "rdma": {"mlx5_1": {"hcaObjects": 10000}},
            "unified": {"pids.max": "50", "memory.high": "400000000",
                        "cgroup.max.depth": "3"}
        }))
    }

    #[test]
    fn v2_every_file() {
        assert_eq!(
            files(&v2_all(), CgroupVersion::V2),
            pairs(&[
                ("memory.max", "536870912"),
                ("memory.swap.max", "536870912"),
                ("memory.low", "268435456"),
                ("cpu.weight", "39"),
                ("cpu.max", "50000 100000"),
                ("cpu.max.burst", "10000"),
                ("cpu.idle", "1"),
                ("cpuset.cpus", "0-1"),
                ("cpuset.mems", "0"),
                ("pids.max", "max"),
                ("io.weight", "4950"),
                ("io.weight", "8:0 5960"),
                ("io.max", "8:0 rbps=1048576 wbps=2097152 riops=100"),
                ("io.max", "8:16 wiops=200"),
                ("hugetlb.2MB.max", "209715200"),
                ("hugetlb.1GB.max", "max"),
                ("rdma.max", "mlx5_1 hca_object=10000"),
                ("cgroup.max.depth", "3"),
                ("memory.high", "400000000"),
                ("pids.max", "50"),
            ])
        );
        let ws = resource_writes(&v2_all(), CgroupVersion::V2).unwrap();
        let controllers: Vec<&str> = ws.iter().map(|w| w.controller.as_str()).collect();
        assert_eq!(
            controllers,
            [
                "memory", "memory", "memory", "cpu", "cpu", "cpu", "cpu", "cpuset", "cpuset",
                "pids", "io", "io", "io", "io", "hugetlb", "hugetlb", "rdma", "cgroup", "memory",
                "pids"
            ]
        );
    }

    #[test]
    fn v2_devices_are_rules_not_writes() {
        let m = map_resources(&v2_all(), CgroupVersion::V2, true).unwrap();
        let rules: Vec<String> = m.devices.unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(
            rules,
            ["deny a *:* rwm", "allow c 1:3 rwm", "allow c 136:* rw"]
        );
        assert!(
            m.writes
                .iter()
                .all(|s| !s.write.file.starts_with("devices"))
        );
    }

    #[test]
    fn shares_to_weight_edges() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        // The kernel clamps v1 shares to 2..=262144; so do we.
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
    }

    #[test]
    fn blkio_weight_edges() {
        assert_eq!(blkio_weight_to_io(10), 1);
        assert_eq!(blkio_weight_to_io(500), 4950);
        assert_eq!(blkio_weight_to_io(1000), 10_000);
    }

    #[test]
    fn cpu_max_forms() {
        let cpu_max =
            |cpu: serde_json::Value| files(&res(json!({ "cpu": cpu })), CgroupVersion::V2);
        assert_eq!(
            cpu_max(json!({"quota": -1, "period": 100000})),
            pairs(&[("cpu.max", "max 100000")])
        );
        assert_eq!(
            cpu_max(json!({"quota": 20000})),
            pairs(&[("cpu.max", "20000")])
        );
        assert_eq!(
            cpu_max(json!({"period": 50000})),
            pairs(&[("cpu.max", "max 50000")])
        );
        assert_eq!(cpu_max(json!({"quota": 0, "shares": 0})), pairs(&[]));
    }

    #[test]
    fn pids_zero_and_negative_are_max() {
        for (limit, want) in [(-1, "max"), (0, "max"), (7, "7")] {
            let r = res(json!({"pids": {"limit": limit}}));
            for v in [CgroupVersion::V1, CgroupVersion::V2] {
                assert_eq!(files(&r, v), pairs(&[("pids.max", want)]), "{limit} {v:?}");
            }
        }
    }

    #[test]
    fn swap_mapping() {
        let mem = |m: serde_json::Value, v| resource_writes(&res(json!({ "memory": m })), v);
        let v2 = CgroupVersion::V2;
        let ok = |m, v| {
            mem(m, v)
                .unwrap()
                .into_iter()
                .map(|w| (w.file, w.value))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ok(json!({"limit": -1}), v2),
            pairs(&[("memory.max", "max"), ("memory.swap.max", "max")])
        );
        assert_eq!(
            ok(json!({"limit": 100, "swap": -1}), v2),
            pairs(&[("memory.max", "100"), ("memory.swap.max", "max")])
        );
        assert_eq!(
            ok(json!({"limit": 100, "swap": 100}), v2),
            pairs(&[("memory.max", "100"), ("memory.swap.max", "0")])
        );
        assert_eq!(
            ok(json!({"limit": -1}), CgroupVersion::V1),
            pairs(&[("memory.limit_in_bytes", "-1")])
        );
        assert_eq!(
            ok(json!({"reservation": -1}), v2),
            pairs(&[("memory.low", "max")])
        );
        for v in [CgroupVersion::V1, v2] {
            assert_eq!(
                mem(json!({"swap": 200}), v),
                Err(CgroupError::SwapWithoutLimit { swap: 200 })
            );
            assert_eq!(
                mem(json!({"limit": 300, "swap": 200}), v),
                Err(CgroupError::SwapBelowLimit {
                    swap: 200,
                    limit: 300
                })
            );
            assert_eq!(
                mem(json!({"limit": -5}), v),
                Err(CgroupError::OutOfRange {
                    at: "linux.resources.memory.limit".into(),
                    value: "-5".into(),
                    range: "-1 or a byte count"
                })
            );
        }
        // v1-only knobs are ignored on v2.
        assert_eq!(
            ok(
                json!({"kernel": 1, "kernelTCP": 1, "swappiness": 10, "disableOOMKiller": true}),
                v2
            ),
            pairs(&[])
        );
        let err = mem(json!({"swappiness": 101}), CgroupVersion::V1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.resources.memory.swappiness: 101 is out of range (0 to 100)"
        );
    }

    #[test]
    fn bad_values() {
        let v1 = CgroupVersion::V1;
        let v2 = CgroupVersion::V2;
        let err = |r: serde_json::Value, v| resource_writes(&res(r), v).unwrap_err().to_string();
        assert_eq!(
            err(json!({"devices": [{"allow": true, "type": "u"}]}), v2),
            "linux.resources.devices[0].type: \"u\" is not a cgroup device type (a, b or c)"
        );
        assert_eq!(
            err(json!({"devices": [{}, {"allow": true, "major": -2}]}), v1),
            "linux.resources.devices[1].major: -2 is not a device number"
        );
        assert_eq!(
            err(json!({"devices": [{"allow": true, "access": "rwx"}]}), v1),
            "linux.resources.devices[0].access: \"rwx\" is not a subset of \"rwm\""
        );
        assert_eq!(
            err(json!({"devices": [{"allow": true, "access": "rr"}]}), v1),
            "linux.resources.devices[0].access: \"rr\" is not a subset of \"rwm\""
        );
        assert_eq!(
            err(json!({"cpu": {"cpus": "0-1\n+memory"}}), v1),
            "linux.resources.cpu.cpus: \"0-1\\n+memory\" is not a list like \"0-3,7\""
        );
        assert_eq!(
            err(json!({"cpu": {"mems": "0-"}}), v2),
            "linux.resources.cpu.mems: \"0-\" is not a list like \"0-3,7\""
        );
        assert_eq!(
            err(json!({"cpu": {"realtimeRuntime": 1000}}), v2),
            "linux.resources.cpu.realtimeRuntime: realtime scheduling is not supported on cgroup v2"
        );
        assert_eq!(
            err(json!({"network": {"classID": 5}}), v2),
            "linux.resources.network.classID: net_cls is not supported on cgroup v2"
        );
        assert_eq!(
            err(
                json!({"network": {"priorities": [{"name": "eth 0", "priority": 1}]}}),
                v1
            ),
            "linux.resources.network.priorities[0].name: \"eth 0\" is not a valid name"
        );
        assert_eq!(
            err(
                json!({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}),
                v1
            ),
            "linux.resources.hugepageLimits[0].pageSize: \"2M\" is not a page size like \"2MB\""
        );
        assert_eq!(
            err(
                json!({"hugepageLimits": [{"pageSize": "../2MB", "limit": 1}]}),
                v2
            ),
            "linux.resources.hugepageLimits[0].pageSize: \"../2MB\" is not a page size like \"2MB\""
        );
        assert_eq!(
            err(json!({"blockIO": {"weight": 5}}), v1),
            "linux.resources.blockIO.weight: 5 is out of range (10 to 1000)"
        );
        assert_eq!(
            err(
                json!({"blockIO": {"throttleReadBpsDevice": [{"major": -1, "minor": 0, "rate": 1}]}}),
                v2
            ),
            "linux.resources.blockIO.throttleReadBpsDevice[0].major: -1 is out of range (0 or more)"
        );
        assert_eq!(
            err(json!({"cpu": {"quota": -2}}), v1),
            "linux.resources.cpu.quota: -2 is out of range (-1 or microseconds)"
        );
        assert_eq!(
            err(json!({"unified": {"memory.max": "1"}}), v1),
            "linux.resources.unified: unified resources need cgroup v2"
        );
        for (key, reason) in [
            ("../memory.max", "not a file name"),
            ("memory/max", "not a file name"),
            ("memory", "not a CONTROLLER.FILE name"),
            (".max", "not a CONTROLLER.FILE name"),
            ("cgroup.procs", "managed by berth"),
            ("cgroup.subtree_control", "managed by berth"),
        ] {
            assert_eq!(
                resource_writes(&res(json!({"unified": {key: "1"}})), v2),
                Err(CgroupError::UnifiedKey {
                    key: key.to_owned(),
                    reason
                })
            );
        }
    }

    #[test]
    fn zero_values_write_nothing() {
        let r = res(json!({
            "memory": {"limit": 0, "reservation": 0, "swap": 0, "disableOOMKiller": false},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimeRuntime": 0,
                    "realtimePeriod": 0, "cpus": "", "mems": ""},
            "blockIO": {"weight": 0},
            "network": {"classID": 0},
            "devices": null
        }));
        for v in [CgroupVersion::V1, CgroupVersion::V2] {
            assert_eq!(resource_writes(&r, v), Ok(vec![]), "{v:?}");
        }
    }

    // ---- paths ----

    #[test]
    fn cgroup_paths() {
        assert_eq!(cgroup_rel_path("c1", None).unwrap(), "berth/c1");
        assert_eq!(cgroup_rel_path("c1", Some("")).unwrap(), "berth/c1");
        assert_eq!(cgroup_rel_path("c1", Some("/a/b")).unwrap(), "a/b");
        assert_eq!(cgroup_rel_path("c1", Some("a/b")).unwrap(), "a/b");
        assert_eq!(cgroup_rel_path("c1", Some("//a/./b/")).unwrap(), "a/b");
        assert_eq!(
            cgroup_rel_path("c1", Some("/a/../../etc")),
            Err(CgroupError::DotDot {
                path: "/a/../../etc".into()
            })
        );
        assert_eq!(
            cgroup_rel_path("c1", Some("..")),
            Err(CgroupError::DotDot { path: "..".into() })
        );
        assert_eq!(
            cgroup_rel_path("c1", Some("/")),
            Err(CgroupError::RootCgroup { path: "/".into() })
        );
        assert_eq!(
            cgroup_rel_path("c1", Some("system.slice:berth:c1"))
                .unwrap_err()
                .to_string(),
            "linux.cgroupsPath: \"system.slice:berth:c1\": systemd cgroup paths need --systemd-cgroup"
        );
        // An absolute path may contain colons: it is a plain path.
        assert_eq!(cgroup_rel_path("c1", Some("/a:b:c")).unwrap(), "a:b:c");
        for id in ["", ".", "..", "a/b"] {
            assert_eq!(
                cgroup_rel_path(id, None),
                Err(CgroupError::BadId { id: id.into() })
            );
        }
    }

    // ---- plans ----

    fn v1_layout() -> CgroupLayout {
        let h = |p: &str| HostPath::new(format!("/sys/fs/cgroup/{p}"));
        CgroupLayout::V1 {
            hierarchies: [
                ("cpu", h("cpu,cpuacct")),
                ("cpuacct", h("cpu,cpuacct")),
                ("cpuset", h("cpuset")),
                ("devices", h("devices")),
                ("memory", h("memory")),
                ("name=systemd", h("systemd")),
                ("pids", h("pids")),
            ]
            .into_iter()
            .map(|(c, p)| (c.to_owned(), p))
            .collect(),
            unified: Some(h("unified")),
        }
    }

    fn v2_layout(controllers: &[&str], subtree: &[&str]) -> CgroupLayout {
        CgroupLayout::V2 {
            mount: HostPath::new("/sys/fs/cgroup"),
            controllers: controllers.iter().map(|s| (*s).to_owned()).collect(),
            subtree_control: subtree.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Plans a spawn and the cgroup setup; returns the plan text and the cgroups.
    fn plan(
        cgroups_path: Option<&str>,
        r: Option<&LinuxResources>,
        layout: &CgroupLayout,
    ) -> Result<(String, Vec<CgroupPath>), CgroupError> {
        let mut b = PlanBuilder::new();
        let pid = b.pid("init.pid");
        b.runtime(Op::Spawn {
            ns: [Namespace::Mount].into_iter().collect::<NamespaceSet>(),
            pid,
        });
        let cgroups = plan_cgroup_setup(&mut b, "c1", cgroups_path, r, layout)?;
        plan_cgroup_attach(&mut b, pid, &cgroups);
        let plan = b.finish();
        plan.check().unwrap();
        Ok((plan.to_string(), cgroups))
    }

    #[test]
    fn runc_default_devices_follow_the_config_rules() {
        let r = res(json!({"devices": [{"allow": false, "access": "rwm"}]}));
        let dev = crate::config::DeviceConfig {
            path: crate::plan::ContainerPath::parse("/dev/fuse").unwrap(),
            kind: crate::plan::DeviceKind::Char,
            major: 10,
            minor: 229,
            file_mode: 0o666,
            uid: 0,
            gid: 0,
        };
        let with = with_default_device_rules(&r, &[dev]);
        let lines: Vec<String> = resource_writes(&with, CgroupVersion::V1)
            .unwrap()
            .into_iter()
            .map(|w| format!("{} {}", w.file, w.value))
            .collect();
        assert_eq!(
            lines,
            [
                "devices.deny a",
                "devices.deny a *:* rwm",
                "devices.allow c *:* m",
                "devices.allow b *:* m",
                "devices.allow c 1:3 rwm",
                "devices.allow c 1:8 rwm",
                "devices.allow c 1:7 rwm",
                "devices.allow c 5:0 rwm",
                "devices.allow c 1:5 rwm",
                "devices.allow c 1:9 rwm",
                "devices.allow c 136:* rwm",
                "devices.allow c 5:2 rwm",
                "devices.allow c 10:229 rwm",
            ]
        );
        // No device rules in the config: nothing is added (the cgroup keeps its default).
        let none = res(json!({"pids": {"limit": 5}}));
        assert_eq!(with_default_device_rules(&none, &[]), none);
    }

    #[test]
    fn v1_plan() {
        let r = res(json!({
            "memory": {"limit": 1000000},
            "cpu": {"shares": 512, "cpus": "0"},
            "devices": [{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
        }));
        let (text, cgroups) = plan(None, Some(&r), &v1_layout()).unwrap();
        assert_eq!(
            text,
            "\
0 runtime spawn ns=mnt -> $init.pid
1 runtime cgroup-create /sys/fs/cgroup/cpu,cpuacct/berth/c1 -> $made.1
2 runtime cgroup-create /sys/fs/cgroup/cpuset/berth/c1 -> $made.2
3 runtime cgroup-create /sys/fs/cgroup/devices/berth/c1 -> $made.3
4 runtime cgroup-create /sys/fs/cgroup/memory/berth/c1 -> $made.4
5 runtime cgroup-create /sys/fs/cgroup/pids/berth/c1 -> $made.5
6 runtime cgroup-create /sys/fs/cgroup/systemd/berth/c1 -> $made.6
7 runtime cgroup-create /sys/fs/cgroup/unified/berth/c1 -> $made.7
8 runtime cgroup-write /sys/fs/cgroup/memory/berth/c1/memory.limit_in_bytes \"1000000\"
9 runtime cgroup-write /sys/fs/cgroup/cpu,cpuacct/berth/c1/cpu.shares \"512\"
10 runtime cgroup-write /sys/fs/cgroup/cpuset/berth/c1/cpuset.cpus \"0\"
11 runtime cgroup-write /sys/fs/cgroup/devices/berth/c1/devices.deny \"a\"
12 runtime cgroup-write /sys/fs/cgroup/devices/berth/c1/devices.allow \"c 1:3 rwm\"
13 runtime cgroup-attach /sys/fs/cgroup/cpu,cpuacct/berth/c1 $init.pid
14 runtime cgroup-attach /sys/fs/cgroup/cpuset/berth/c1 $init.pid
15 runtime cgroup-attach /sys/fs/cgroup/devices/berth/c1 $init.pid
16 runtime cgroup-attach /sys/fs/cgroup/memory/berth/c1 $init.pid
17 runtime cgroup-attach /sys/fs/cgroup/pids/berth/c1 $init.pid
18 runtime cgroup-attach /sys/fs/cgroup/systemd/berth/c1 $init.pid
19 runtime cgroup-attach /sys/fs/cgroup/unified/berth/c1 $init.pid
"
        );
        let dirs: Vec<String> = cgroups.iter().map(|c| c.dir().to_string()).collect();
        assert_eq!(dirs.len(), 7);
        assert_eq!(dirs[0], "/sys/fs/cgroup/cpu,cpuacct/berth/c1");
        assert_eq!(dirs[6], "/sys/fs/cgroup/unified/berth/c1");
    }

    #[test]
    fn v1_without_resources_still_creates_and_attaches() {
        let layout = CgroupLayout::V1 {
            hierarchies: [("memory".to_owned(), HostPath::new("/cg/memory"))].into(),
            unified: None,
        };
        let (text, cgroups) = plan(Some("/x/y"), None, &layout).unwrap();
        assert_eq!(
            text,
            "\
0 runtime spawn ns=mnt -> $init.pid
1 runtime cgroup-create /cg/memory/x/y -> $made.1
2 runtime cgroup-attach /cg/memory/x/y $init.pid
"
        );
        assert_eq!(
            cgroups,
            vec![CgroupPath {
                mount: HostPath::new("/cg/memory"),
                path: "x/y".into()
            }]
        );
    }

    #[test]
    fn v1_missing_controller() {
        let r = res(json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}));
        let mut b = PlanBuilder::new();
        let err = plan_cgroup_setup(&mut b, "c1", None, Some(&r), &v1_layout()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.resources.hugepageLimits[0]: hugetlb controller not available"
        );
        // Nothing was pushed.
        assert!(b.finish().steps.is_empty());
        let r = res(json!({"network": {"classID": 1}}));
        assert_eq!(
            plan(None, Some(&r), &v1_layout()).unwrap_err(),
            CgroupError::ControllerMissing {
                at: "linux.resources.network.classID".into(),
                controller: "net_cls".into()
            }
        );
    }

    #[test]
    fn v2_plan_enables_every_offered_controller_down_to_the_parent() {
        let r = res(json!({
            "memory": {"limit": 1000000},
            "pids": {"limit": 10},
            "devices": [{"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]
        }));
        let layout = v2_layout(&["cpu", "io", "memory", "pids"], &["memory"]);
        let (text, cgroups) = plan(Some("/a/b/c"), Some(&r), &layout).unwrap();
        assert_eq!(
            text,
            "\
0 runtime spawn ns=mnt -> $init.pid
1 runtime cgroup-enable /sys/fs/cgroup +cpu +io +pids -> $made.1
2 runtime cgroup-create /sys/fs/cgroup/a -> $made.2
3 runtime cgroup-enable /sys/fs/cgroup/a +cpu +io +memory +pids -> $made.3
4 runtime cgroup-create /sys/fs/cgroup/a/b -> $made.4
5 runtime cgroup-enable /sys/fs/cgroup/a/b +cpu +io +memory +pids -> $made.5
6 runtime cgroup-create /sys/fs/cgroup/a/b/c -> $made.6
7 runtime cgroup-write /sys/fs/cgroup/a/b/c/memory.max \"1000000\"
8 runtime cgroup-write /sys/fs/cgroup/a/b/c/pids.max \"10\"
9 runtime cgroup-devices /sys/fs/cgroup/a/b/c [deny a *:* rwm; allow c 1:3 rw]
10 runtime cgroup-attach /sys/fs/cgroup/a/b/c $init.pid
"
        );
        assert_eq!(
            cgroups,
            vec![CgroupPath {
                mount: HostPath::new("/sys/fs/cgroup"),
                path: "a/b/c".into()
            }]
        );
    }

    #[test]
    fn v2_root_already_enabled_emits_nothing_for_root() {
        let r = res(json!({"memory": {"limit": 1000000}}));
        let layout = v2_layout(&["cpu", "memory"], &["cpu", "memory"]);
        let (text, _) = plan(None, Some(&r), &layout).unwrap();
        assert_eq!(
            text,
            "\
0 runtime spawn ns=mnt -> $init.pid
1 runtime cgroup-create /sys/fs/cgroup/berth -> $made.1
2 runtime cgroup-enable /sys/fs/cgroup/berth +cpu +memory -> $made.2
3 runtime cgroup-create /sys/fs/cgroup/berth/c1 -> $made.3
4 runtime cgroup-write /sys/fs/cgroup/berth/c1/memory.max \"1000000\"
5 runtime cgroup-attach /sys/fs/cgroup/berth/c1 $init.pid
"
        );
    }

    #[test]
    fn v2_without_offered_controllers_enables_nothing() {
        // Devices and core files need no controller: with none offered, no enable anywhere.
        let r = res(json!({
            "devices": [{"allow": true, "access": "rwm"}],
            "unified": {"cgroup.max.descendants": "10"}
        }));
        let layout = v2_layout(&[], &[]);
        let (text, _) = plan(Some("top"), Some(&r), &layout).unwrap();
        assert_eq!(
            text,
            "\
0 runtime spawn ns=mnt -> $init.pid
1 runtime cgroup-create /sys/fs/cgroup/top -> $made.1
2 runtime cgroup-write /sys/fs/cgroup/top/cgroup.max.descendants \"10\"
3 runtime cgroup-devices /sys/fs/cgroup/top [allow a *:* rwm]
4 runtime cgroup-attach /sys/fs/cgroup/top $init.pid
"
        );
        let (text, _) = plan(None, None, &v2_layout(&["memory"], &[])).unwrap();
        assert_eq!(
            text,
            "\
0 runtime spawn ns=mnt -> $init.pid
1 runtime cgroup-enable /sys/fs/cgroup +memory -> $made.1
2 runtime cgroup-create /sys/fs/cgroup/berth -> $made.2
3 runtime cgroup-enable /sys/fs/cgroup/berth +memory -> $made.3
4 runtime cgroup-create /sys/fs/cgroup/berth/c1 -> $made.4
5 runtime cgroup-attach /sys/fs/cgroup/berth/c1 $init.pid
"
        );
    }

    #[test]
    fn v2_missing_controllers() {
        let layout = v2_layout(&["cpu", "memory", "pids"], &[]);
        let cases = [
            (
                json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}),
                "linux.resources.hugepageLimits[0]: hugetlb controller not available",
            ),
            (
                json!({"blockIO": {"weight": 100}}),
                "linux.resources.blockIO.weight: io controller not available",
            ),
            (
                json!({"cpu": {"cpus": "0"}}),
                "linux.resources.cpu.cpus: cpuset controller not available",
            ),
            (
                json!({"unified": {"misc.max": "x 1"}}),
                "linux.resources.unified[\"misc.max\"]: misc controller not available",
            ),
        ];
        for (r, want) in cases {
            let err = plan(None, Some(&res(r)), &layout).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn no_cgroups() {
        let none = CgroupLayout::None;
        assert_eq!(plan(None, None, &none).unwrap().1, vec![]);
        let empty = res(json!({"memory": {}, "cpu": {"shares": 0}}));
        let (text, dirs) = plan(None, Some(&empty), &none).unwrap();
        assert_eq!(text, "0 runtime spawn ns=mnt -> $init.pid\n");
        assert!(dirs.is_empty());
        for (r, at) in [
            (
                json!({"memory": {"limit": 5}}),
                "linux.resources.memory.limit",
            ),
            (
                json!({"devices": [{"allow": false}]}),
                "linux.resources.devices",
            ),
            (
                json!({"unified": {"memory.max": "5"}}),
                "linux.resources.unified",
            ),
            (json!({"pids": {"limit": 0}}), "linux.resources.pids.limit"),
        ] {
            assert_eq!(
                plan(None, Some(&res(r)), &none).unwrap_err(),
                CgroupError::NoCgroups { at: at.into() }
            );
        }
        assert_eq!(
            plan(None, Some(&res(json!({"memory": {"limit": 5}}))), &none)
                .unwrap_err()
                .to_string(),
            "linux.resources.memory.limit: cgroups are not available on this host"
        );
    }

    #[test]
    fn bad_paths_plan_nothing() {
        for layout in [v1_layout(), v2_layout(&["memory"], &[]), CgroupLayout::None] {
            let mut b = PlanBuilder::new();
            for path in ["/a/../..", "slice:prefix:name", "/"] {
                assert!(plan_cgroup_setup(&mut b, "c1", Some(path), None, &layout).is_err());
            }
            assert!(b.finish().steps.is_empty());
        }
    }

    #[test]
    fn deterministic_with_hash_maps() {
        let r = v2_all();
        let a = resource_writes(&r, CgroupVersion::V2).unwrap();
        let r2: LinuxResources = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(a, resource_writes(&r2, CgroupVersion::V2).unwrap());
    }
}
