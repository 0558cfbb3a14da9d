//! Planners for the commands that act on a created container: `start`, `kill`, `delete`,
//! `pause` and `resume`.
//!
//! Each is a pure function of the persisted [`ContainerRecord`] (and, for `delete`, the
//! status derived now): what a command will do to the host is a plan, printed and checked
//! like `create`'s. Values known from the record are literal fields: the init's pid and
//! start time go into an `adopt` step, which binds `$init.pid` only after checking that
//! the pid still names that very process (a reused pid is never signalled).
//!
//! Invariants: every plan passes [`Plan::check`]; nothing here decides whether a command
//! is allowed in a status (that is [`crate::state::check`]), except that `delete` plans a
//! kill only for a container whose init may still run.

use crate::plan::{
    Actor, CgroupPath, HookKind, HostPath, Namespace, Op, PidRef, Plan, PlanBuilder, Step,
};
use crate::planner::create::start_barrier;
use crate::signal::SIGKILL;
use crate::state::{ContainerRecord, LifecycleError, Status};

/// The init's pid handle of the record's plan (bound there by `spawn`).
fn init_ref(record: &ContainerRecord) -> Result<PidRef, LifecycleError> {
    record
        .plan
        .steps
        .iter()
        .find_map(|s| match s.op {
            Op::Spawn { pid, .. } => Some(pid),
            _ => None,
        })
        .ok_or_else(|| LifecycleError::NoInit {
            id: record.id.clone(),
        })
}

/// The `adopt` step for the record's init.
fn adopt(record: &ContainerRecord, pid: PidRef) -> Op {
    Op::Adopt {
        pid,
        value: record.pid,
        start_time: record.start_time,
    }
}

/// The container's own (leaf) cgroups: those its init was attached to, in plan order.
/// Their parents may be shared with other containers (`berth/`), so, as runc, only these
/// are removed.
pub fn leaf_cgroups(plan: &Plan) -> Vec<CgroupPath> {
    let mut out: Vec<CgroupPath> = Vec::new();
    for s in &plan.steps {
        if let Op::CgroupAttach { cgroup, .. } = &s.op
            && !out.contains(cgroup)
        {
            out.push(cgroup.clone());
        }
    }
    out
}

/// Whether the init got a pid namespace of its own (then killing it kills every process
/// of the container; otherwise some may outlive it, as runc notes).
fn private_pid_ns(plan: &Plan) -> bool {
    plan.steps.iter().any(|s| match &s.op {
        Op::Spawn { ns, .. } => ns.contains(Namespace::Pid),
        _ => false,
    })
}

/// Where a container's processes are frozen: a cgroup, the interface file, and the values
/// that freeze and thaw it (v1 `freezer.state` FROZEN/THAWED, v2 `cgroup.freeze` 1/0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Freezer {
    /// The container's cgroup that holds the file.
    pub cgroup: CgroupPath,
    /// The interface file.
    pub file: &'static str,
    /// What the file holds (and is written) when frozen.
    pub frozen: &'static str,
    /// What is written to thaw.
    pub thawed: &'static str,
}

/// The freezer of a create plan, found from its leaf cgroups alone (so it needs no host
/// facts, and `pause`, `resume`, `delete` and the status all agree): a v1 leaf whose
/// hierarchy mount is named for `freezer` (`/sys/fs/cgroup/freezer`, or a co-mount such as
/// `freezer,devices`), else the v2 leaf: the one given a device program (a v2-only op),
/// or a hybrid's `unified` one. `None` for a container without cgroups.
pub fn freezer(plan: &Plan) -> Option<Freezer> {
    let leaves = leaf_cgroups(plan);
    let base = |c: &CgroupPath| {
        c.mount
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    if let Some(cgroup) = leaves
        .iter()
        .find(|c| base(c).split(',').any(|w| w == "freezer"))
    {
        return Some(Freezer {
            cgroup: cgroup.clone(),
            file: "freezer.state",
            frozen: "FROZEN",
            thawed: "THAWED",
        });
    }
    let v2 = leaves.iter().find(|c| {
        planned_for_v2(plan)
            || base(c) == "unified"
            || plan
                .steps
                .iter()
                .any(|s| matches!(&s.op, Op::CgroupDevices { cgroup, .. } if cgroup == *c))
    })?;
    Some(Freezer {
        cgroup: v2.clone(),
        file: "cgroup.freeze",
        frozen: "1",
        thawed: "0",
    })
}

/// The write that freezes (`frozen`) or thaws the container.
fn freeze_write(f: &Freezer, frozen: bool) -> Op {
    Op::CgroupWrite {
        cgroup: f.cgroup.clone(),
        file: f.file.to_owned(),
        value: if frozen { f.frozen } else { f.thawed }.to_owned(),
    }
}

/// The record's freezer, or runc-like refusal for a container without one.
fn record_freezer(record: &ContainerRecord) -> Result<Freezer, LifecycleError> {
    freezer(&record.plan).ok_or_else(|| LifecycleError::NoFreezer {
        id: record.id.clone(),
    })
}

/// Plans `pause`: write the freezer's frozen value (the backend returns once the kernel
/// reports the cgroup frozen, as runc waits out v1's FREEZING).
pub fn plan_pause(record: &ContainerRecord) -> Result<Plan, LifecycleError> {
    let f = record_freezer(record)?;
    let mut b = PlanBuilder::new();
    b.runtime(freeze_write(&f, true));
    Ok(b.finish())
}

/// Plans `resume`: write the freezer's thawed value.
pub fn plan_resume(record: &ContainerRecord) -> Result<Plan, LifecycleError> {
    let f = record_freezer(record)?;
    let mut b = PlanBuilder::new();
    b.runtime(freeze_write(&f, false));
    Ok(b.finish())
}

/// The state directory the record's plan made (`ROOT/ID`).
fn state_dir(record: &ContainerRecord) -> Option<HostPath> {
    record.plan.steps.iter().find_map(|s| match &s.op {
        Op::StateCreate { dir } | Op::StateWrite { dir, .. } => Some(dir.clone()),
        _ => None,
    })
}

/// Plans `start`: `adopt` the recorded init, then the record's plan from its start barrier
/// on (`signal start`, init's `wait start`, the startContainer hooks, `exec`, the poststart
/// hooks), with the record's handle names, so the suffix reads as it did in `create`'s
/// dry run.
pub fn plan_start(record: &ContainerRecord) -> Result<Plan, LifecycleError> {
    let pid = init_ref(record)?;
    let barrier = start_barrier(&record.plan).ok_or_else(|| LifecycleError::NoStartBarrier {
        id: record.id.clone(),
    })?;
    let mut steps = vec![Step {
        actor: Actor::Runtime,
        op: adopt(record, pid),
    }];
    steps.extend(record.plan.steps[barrier..].iter().cloned());
    Ok(Plan {
        steps,
        names: record.plan.names.clone(),
        cgroup_version: record.plan.cgroup_version,
    })
}

/// Plans `kill`: `adopt` the recorded init, then send it `signal`; with `all`, send it to
/// every process in the container's cgroup instead (runc's `kill --all`). A container
/// without cgroups has only its init to signal.
pub fn plan_kill(record: &ContainerRecord, signal: i32, all: bool) -> Result<Plan, LifecycleError> {
    init_ref(record)?;
    let mut b = PlanBuilder::new();
    let pid = b.pid("init.pid");
    b.runtime(adopt(record, pid));
    match leaf_cgroups(&record.plan)
        .into_iter()
        .next()
        .filter(|_| all)
    {
        Some(cgroup) => b.runtime(Op::SignalCgroup { cgroup, signal }),
        None => b.runtime(Op::SendSignal { pid, signal }),
    }
    Ok(b.finish())
}

/// Plans `kill` of a container in `status`: [`plan_kill`], and, as runc, a paused
/// container sent `KILL` is thawed after the signal, so that its processes can die.
pub fn plan_kill_in(
    record: &ContainerRecord,
    signal: i32,
    all: bool,
    status: Status,
) -> Result<Plan, LifecycleError> {
    let mut plan = plan_kill(record, signal, all)?;
    if status == Status::Paused
        && signal == SIGKILL
        && let Some(f) = freezer(&record.plan)
    {
        plan.steps.push(Step {
            actor: Actor::Runtime,
            op: freeze_write(&f, false),
        });
    }
    Ok(plan)
}

/// Plans `delete` of a container in `status` (derived now): a container whose init may
/// still run (created, or running/paused with `force`) has it adopted and killed first;
/// then, as runc's destroy: what is left in its cgroup is killed when it shared a pid
/// namespace, its leaf cgroups are removed, its state directory is removed, and last its
/// poststop hooks run (the OCI spec makes their failures warnings, so the caller may carry
/// them out one by one).
pub fn plan_delete(
    record: &ContainerRecord,
    status: Status,
    force: bool,
) -> Result<Plan, LifecycleError> {
    let kill_init = match status {
        Status::Stopped => false,
        Status::Creating | Status::Created => true,
        Status::Running | Status::Paused if force => true,
        Status::Running | Status::Paused => {
            return Err(LifecycleError::NotStopped {
                id: record.id.clone(),
                status,
            });
        }
    };
    init_ref(record)?;
    let mut b = PlanBuilder::new();
    let pid = b.pid("init.pid");
    if kill_init {
        b.runtime(adopt(record, pid));
        // A frozen process does not die until thawed (v1 never lets it).
        if status == Status::Paused
            && let Some(f) = freezer(&record.plan)
        {
            b.runtime(freeze_write(&f, false));
        }
        b.runtime(Op::Kill { pid });
    } else if !record.poststop.is_empty() {
        // Only the hooks' state needs the pid of a process that is gone.
        b.runtime(Op::Recall {
            pid,
            value: record.pid,
        });
    }
    let leaves = leaf_cgroups(&record.plan);
    if !private_pid_ns(&record.plan)
        && let Some(cgroup) = leaves.first()
    {
        b.runtime(Op::SignalCgroup {
            cgroup: cgroup.clone(),
            signal: SIGKILL,
        });
    }
    for cgroup in leaves {
        b.runtime(Op::CgroupRemove { cgroup });
    }
    if let Some(dir) = state_dir(record) {
        b.runtime(Op::StateRemove { dir });
    }
    for (index, hook) in record.poststop.iter().enumerate() {
        b.runtime(Op::RunHook {
            kind: HookKind::Poststop,
            index,
            hook: hook.clone(),
            pid,
        });
    }
    Ok(b.finish())
}

/// Plans the removal of a state directory that holds no record (what an aborted `create`
/// leaves; runc's `delete` removes it too).
pub fn plan_forget(dir: HostPath) -> Plan {
    let mut b = PlanBuilder::new();
    b.runtime(Op::StateRemove { dir });
    b.finish()
}

/// The index of the first poststop hook of a delete plan (its length when it has none):
/// the steps from there on are the hooks, whose failures are warnings.
pub fn poststop_from(plan: &Plan) -> usize {
    plan.steps
        .iter()
        .position(|s| {
            matches!(
                s.op,
                Op::RunHook {
                    kind: HookKind::Poststop,
                    ..
                }
            )
        })
        .unwrap_or(plan.steps.len())
}

/// Why `update` cannot be planned for a container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// A resource that maps to no cgroup file (out of range, unsupported).
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    /// The container has no cgroup at all.
    #[error("container {id}: it has no cgroup to update")]
    NoCgroup {
        /// The container.
        id: String,
    },
    /// A write whose controller has no hierarchy among the container's cgroups (v1).
    #[error("container {id}: no {controller} cgroup for {file}")]
    NoController {
        /// The container.
        id: String,
        /// The controller.
        controller: String,
        /// The file to write.
        file: String,
    },
}

/// The last component of a cgroup's mount point (`memory`, `cpu,cpuacct`, `unified`).
fn mount_base(c: &CgroupPath) -> &str {
    c.mount.as_str().rsplit('/').next().unwrap_or_default()
}

/// Whether the plan says it was planned for cgroup v2.
fn planned_for_v2(plan: &Plan) -> bool {
    plan.cgroup_version == Some(crate::cgroup::CgroupVersion::V2)
}

/// The single leaf cgroup of a pure cgroup v2 container: its only leaf, when the plan was
/// planned for v2 (or, in a plan recorded without that, given a device program, a v2-only
/// op, or named `unified`). `None` on v1 (or hybrid) and without cgroups.
pub fn v2_leaf(plan: &Plan) -> Option<CgroupPath> {
    match leaf_cgroups(plan).as_slice() {
        [only]
            if planned_for_v2(plan)
                || mount_base(only) == "unified"
                || plan.steps.iter().any(
                    |s| matches!(&s.op, Op::CgroupDevices { cgroup, .. } if cgroup == only),
                ) =>
        {
            Some(only.clone())
        }
        _ => None,
    }
}

/// The v1 leaf cgroup of a controller: the leaf whose hierarchy mount is named for it
/// (co-mounts such as `cpu,cpuacct` included).
pub fn v1_leaf(plan: &Plan, controller: &str) -> Option<CgroupPath> {
    leaf_cgroups(plan).into_iter().find(|c| {
        mount_base(c)
            .split(',')
            .any(|n| n == controller || n.strip_prefix("name=") == Some(controller))
    })
}

/// Plans `update`: one `cgroup-write` per file [`crate::cgroup::resource_writes`] maps
/// `resources` to, on the container's leaf cgroups: every write on the [`v2_leaf`] of a
/// v2 container, else each on the [`v1_leaf`] of its controller. Whether the container may
/// be updated now is the caller's to check.
pub fn plan_update(
    record: &ContainerRecord,
    resources: &oci_spec::runtime::LinuxResources,
) -> Result<Plan, UpdateError> {
    if leaf_cgroups(&record.plan).is_empty() {
        return Err(UpdateError::NoCgroup {
            id: record.id.clone(),
        });
    }
    let v2 = v2_leaf(&record.plan);
    let version = if v2.is_some() {
        crate::cgroup::CgroupVersion::V2
    } else {
        crate::cgroup::CgroupVersion::V1
    };
    let mut b = PlanBuilder::new();
    for w in crate::cgroup::resource_writes(resources, version)? {
        let cgroup = match &v2 {
            Some(leaf) => leaf.clone(),
            None => {
                v1_leaf(&record.plan, &w.controller).ok_or_else(|| UpdateError::NoController {
                    id: record.id.clone(),
                    controller: w.controller.clone(),
                    file: w.file.clone(),
                })?
            }
        };
        b.runtime(Op::CgroupWrite {
            cgroup,
            file: w.file,
            value: w.value,
        });
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{CreateOptions, CreateRequest};
    use crate::host::{CgroupLayout, HostFacts};
    use crate::plan::HookSpec;
    use crate::planner::create::plan_create;

    fn host() -> HostFacts {
        let mut h = BTreeMap::new();
        for c in ["devices", "pids"] {
            h.insert(c.to_owned(), HostPath::new(format!("/sys/fs/cgroup/{c}")));
        }
        HostFacts {
            cgroup: CgroupLayout::V1 {
                hierarchies: h,
                unified: None,
            },
            root_in_init_userns: true,
            euid: 0,
            egid: 0,
            namespaces: Namespace::ALL.to_vec(),
            clone_into_cgroup: false,
            seccomp: true,
            hugepage_sizes: Vec::new(),
        }
    }

    fn record_with(edit: impl FnOnce(&mut serde_json::Value)) -> ContainerRecord {
        let mut config: serde_json::Value =
            serde_json::from_str(&crate::spec::default_config_json(None)).unwrap();
        config["process"]["terminal"] = serde_json::json!(false);
        edit(&mut config);
        let bundle = HostPath::new("/b");
        let request = CreateRequest {
            id: "c1".to_owned(),
            bundle: bundle.clone(),
            state_root: HostPath::new("/run/berth"),
            config: crate::spec::parse_config(&config.to_string(), &bundle).unwrap(),
            options: CreateOptions::default(),
            home: None,
        };
        let plan = plan_create(&request, &host()).unwrap();
        ContainerRecord {
            oci_version: "1.2.1".to_owned(),
            id: "c1".to_owned(),
            status: Status::Created,
            pid: 4242,
            start_time: 777,
            bundle,
            rootfs: HostPath::new("/b/rootfs"),
            created: "2026-01-02T03:04:05Z".to_owned(),
            annotations: BTreeMap::new(),
            owner: "root".to_owned(),
            poststop: request.config.hooks.poststop.clone(),
            plan,
        }
    }

    fn record() -> ContainerRecord {
        record_with(|_| {})
    }

    fn texts(p: &Plan) -> Vec<String> {
        p.steps.iter().map(|s| p.step_text(s)).collect()
    }

    #[test]
    fn start_is_the_suffix_from_the_barrier_after_an_adopt() {
        let r = record();
        let p = plan_start(&r).unwrap();
        p.check().unwrap();
        let barrier = start_barrier(&r.plan).unwrap();
        assert_eq!(&p.steps[1..], &r.plan.steps[barrier..]);
        assert_eq!(
            texts(&p)[..3],
            [
                "runtime adopt 4242 start-time=777 -> $init.pid",
                "runtime signal start",
                "init wait start",
            ]
        );
        assert!(matches!(p.steps.last().unwrap().op, Op::Exec { .. }));
    }

    #[test]
    fn start_needs_a_barrier_and_an_init() {
        let mut r = record();
        r.plan
            .steps
            .retain(|s| s.op != Op::Signal(crate::plan::SyncPoint::Start));
        assert_eq!(
            plan_start(&r),
            Err(LifecycleError::NoStartBarrier {
                id: "c1".to_owned()
            })
        );
        r.plan.steps.retain(|s| !matches!(s.op, Op::Spawn { .. }));
        assert_eq!(
            plan_start(&r),
            Err(LifecycleError::NoInit {
                id: "c1".to_owned()
            })
        );
        assert_eq!(
            plan_kill(&r, 15, false),
            Err(LifecycleError::NoInit {
                id: "c1".to_owned()
            })
        );
    }

    #[test]
    fn kill_adopts_then_signals_init_or_the_cgroup() {
        let r = record();
        let p = plan_kill(&r, 15, false).unwrap();
        p.check().unwrap();
        assert_eq!(
            texts(&p),
            [
                "runtime adopt 4242 start-time=777 -> $init.pid",
                "runtime kill -TERM $init.pid",
            ]
        );
        let p = plan_kill(&r, 9, true).unwrap();
        p.check().unwrap();
        assert_eq!(
            texts(&p)[1],
            "runtime cgroup-kill -KILL /sys/fs/cgroup/devices/berth/c1"
        );
        // Without cgroups there is only init to signal.
        let mut bare = r.clone();
        bare.plan
            .steps
            .retain(|s| !matches!(s.op, Op::CgroupAttach { .. }));
        let p = plan_kill(&bare, 10, true).unwrap();
        assert_eq!(texts(&p)[1], "runtime kill -USR1 $init.pid");
    }

    #[test]
    fn delete_of_a_stopped_container_removes_leaves_and_state() {
        let r = record();
        let p = plan_delete(&r, Status::Stopped, false).unwrap();
        p.check().unwrap();
        assert_eq!(
            texts(&p),
            [
                "runtime cgroup-remove /sys/fs/cgroup/devices/berth/c1",
                "runtime cgroup-remove /sys/fs/cgroup/pids/berth/c1",
                "runtime state-remove /run/berth/c1",
            ]
        );
        assert_eq!(poststop_from(&p), p.steps.len());
    }

    #[test]
    fn delete_kills_a_created_or_forced_container_first() {
        let r = record();
        for (status, force) in [
            (Status::Created, false),
            (Status::Creating, false),
            (Status::Running, true),
            (Status::Paused, true),
        ] {
            let p = plan_delete(&r, status, force).unwrap();
            p.check().unwrap();
            assert_eq!(
                texts(&p)[..2],
                [
                    "runtime adopt 4242 start-time=777 -> $init.pid",
                    "runtime kill -KILL $init.pid && wait",
                ],
                "{status}"
            );
            assert_eq!(p.steps.len(), 5);
        }
        for status in [Status::Running, Status::Paused] {
            assert_eq!(
                plan_delete(&r, status, false),
                Err(LifecycleError::NotStopped {
                    id: "c1".to_owned(),
                    status
                })
            );
        }
    }

    #[test]
    fn delete_runs_poststop_hooks_last_and_kills_leftovers_of_a_shared_pid_ns() {
        let r = record_with(|c| {
            c["hooks"] = serde_json::json!({
                "poststop": [{"path": "/bin/true"}, {"path": "/bin/echo", "args": ["echo", "bye"]}]
            });
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != "pid");
        });
        assert_eq!(
            r.poststop,
            vec![
                HookSpec {
                    path: "/bin/true".to_owned(),
                    args: vec!["/bin/true".to_owned()],
                    env: Vec::new(),
                    timeout: None
                },
                HookSpec {
                    path: "/bin/echo".to_owned(),
                    args: vec!["echo".to_owned(), "bye".to_owned()],
                    env: Vec::new(),
                    timeout: None
                },
            ]
        );
        let p = plan_delete(&r, Status::Stopped, false).unwrap();
        p.check().unwrap();
        let t = texts(&p);
        assert_eq!(t[0], "runtime recall 4242 -> $init.pid");
        assert_eq!(
            t[1],
            "runtime cgroup-kill -KILL /sys/fs/cgroup/devices/berth/c1"
        );
        assert_eq!(poststop_from(&p), 5);
        assert!(
            t[5].starts_with("runtime hook poststop[0] /bin/true"),
            "{}",
            t[5]
        );
        assert!(
            t[6].starts_with("runtime hook poststop[1] echo bye"),
            "{}",
            t[6]
        );
    }

    fn freezer_host() -> HostFacts {
        let mut h = host();
        if let CgroupLayout::V1 { hierarchies, .. } = &mut h.cgroup {
            hierarchies.insert(
                "freezer".to_owned(),
                HostPath::new("/sys/fs/cgroup/freezer"),
            );
        }
        h
    }

    fn record_on(host: &HostFacts) -> ContainerRecord {
        let mut r = record();
        let bundle = HostPath::new("/b");
        let mut config: serde_json::Value =
            serde_json::from_str(&crate::spec::default_config_json(None)).unwrap();
        config["process"]["terminal"] = serde_json::json!(false);
        let request = CreateRequest {
            id: "c1".to_owned(),
            bundle: bundle.clone(),
            state_root: HostPath::new("/run/berth"),
            config: crate::spec::parse_config(&config.to_string(), &bundle).unwrap(),
            options: CreateOptions::default(),
            home: None,
        };
        r.plan = plan_create(&request, host).unwrap();
        r
    }

    #[test]
    fn pause_and_resume_write_the_v1_freezer() {
        let r = record_on(&freezer_host());
        let p = plan_pause(&r).unwrap();
        p.check().unwrap();
        assert_eq!(
            texts(&p),
            ["runtime cgroup-write /sys/fs/cgroup/freezer/berth/c1/freezer.state \"FROZEN\""]
        );
        let p = plan_resume(&r).unwrap();
        assert_eq!(
            texts(&p),
            ["runtime cgroup-write /sys/fs/cgroup/freezer/berth/c1/freezer.state \"THAWED\""]
        );
    }

    /// A v2 container whose config has no device rules (so no device program in its
    /// plan) is still known as v2: its plan says so.
    #[test]
    fn a_v2_container_without_device_rules_is_v2() {
        let mut h = host();
        h.cgroup = CgroupLayout::V2 {
            mount: HostPath::new("/sys/fs/cgroup"),
            controllers: vec!["pids".to_owned(), "memory".to_owned()],
            subtree_control: vec!["pids".to_owned(), "memory".to_owned()],
        };
        let mut r = record_on(&h);
        let mut config: serde_json::Value =
            serde_json::from_str(&crate::spec::default_config_json(None)).unwrap();
        config["process"]["terminal"] = serde_json::json!(false);
        config["linux"]["resources"] = serde_json::json!({"pids": {"limit": 10}});
        let bundle = HostPath::new("/b");
        let request = CreateRequest {
            id: "c1".to_owned(),
            bundle: bundle.clone(),
            state_root: HostPath::new("/run/berth"),
            config: crate::spec::parse_config(&config.to_string(), &bundle).unwrap(),
            options: CreateOptions::default(),
            home: None,
        };
        r.plan = plan_create(&request, &h).unwrap();
        assert!(
            !r.plan
                .steps
                .iter()
                .any(|s| matches!(s.op, Op::CgroupDevices { .. })),
            "no device program"
        );
        assert_eq!(
            texts(&plan_pause(&r).unwrap()),
            ["runtime cgroup-write /sys/fs/cgroup/berth/c1/cgroup.freeze \"1\""]
        );
        assert_eq!(
            v2_leaf(&r.plan).map(|c| c.dir().as_str().to_owned()),
            Some("/sys/fs/cgroup/berth/c1".to_owned())
        );
        // The same plan recorded without the field (an older berth) and without device
        // rules is not recognised: the field is what tells.
        r.plan.cgroup_version = None;
        assert_eq!(v2_leaf(&r.plan), None);
    }

    #[test]
    fn pause_and_resume_write_cgroup_freeze_on_v2() {
        let mut h = host();
        h.cgroup = CgroupLayout::V2 {
            mount: HostPath::new("/sys/fs/cgroup"),
            controllers: vec!["pids".to_owned(), "memory".to_owned()],
            subtree_control: vec!["pids".to_owned(), "memory".to_owned()],
        };
        let r = record_on(&h);
        assert_eq!(
            texts(&plan_pause(&r).unwrap()),
            ["runtime cgroup-write /sys/fs/cgroup/berth/c1/cgroup.freeze \"1\""]
        );
        assert_eq!(
            texts(&plan_resume(&r).unwrap()),
            ["runtime cgroup-write /sys/fs/cgroup/berth/c1/cgroup.freeze \"0\""]
        );
    }

    #[test]
    fn pause_needs_a_freezer() {
        // devices and pids only: no freezer, no v2 cgroup.
        let r = record();
        assert_eq!(freezer(&r.plan), None);
        let want = Err(LifecycleError::NoFreezer {
            id: "c1".to_owned(),
        });
        assert_eq!(plan_pause(&r), want);
        assert_eq!(plan_resume(&r), want);
        // Without one, a paused container is deleted as before.
        let p = plan_delete(&r, Status::Paused, true).unwrap();
        assert_eq!(texts(&p)[1], "runtime kill -KILL $init.pid && wait");
    }

    #[test]
    fn a_paused_container_is_thawed_to_be_killed() {
        let r = record_on(&freezer_host());
        let thaw = "runtime cgroup-write /sys/fs/cgroup/freezer/berth/c1/freezer.state \"THAWED\"";
        let p = plan_delete(&r, Status::Paused, true).unwrap();
        p.check().unwrap();
        assert_eq!(
            texts(&p)[..3],
            [
                "runtime adopt 4242 start-time=777 -> $init.pid",
                thaw,
                "runtime kill -KILL $init.pid && wait",
            ]
        );
        let p = plan_delete(&r, Status::Running, true).unwrap();
        assert!(!texts(&p).contains(&thaw.to_owned()));
        let p = plan_kill_in(&r, SIGKILL, false, Status::Paused).unwrap();
        p.check().unwrap();
        assert_eq!(
            texts(&p),
            [
                "runtime adopt 4242 start-time=777 -> $init.pid",
                "runtime kill -KILL $init.pid",
                thaw,
            ]
        );
        // Any other signal, or a container not paused: no thaw.
        assert_eq!(
            plan_kill_in(&r, 15, false, Status::Paused)
                .unwrap()
                .steps
                .len(),
            2
        );
        assert_eq!(
            plan_kill_in(&r, SIGKILL, false, Status::Running)
                .unwrap()
                .steps
                .len(),
            2
        );
    }

    #[test]
    fn leaf_cgroups_are_the_attached_ones() {
        let r = record();
        assert_eq!(
            leaf_cgroups(&r.plan)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "/sys/fs/cgroup/devices/berth/c1",
                "/sys/fs/cgroup/pids/berth/c1"
            ]
        );
    }
    fn resources(v: serde_json::Value) -> oci_spec::runtime::LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    fn memory_host() -> HostFacts {
        let mut h = host();
        if let CgroupLayout::V1 { hierarchies, .. } = &mut h.cgroup {
            hierarchies.insert("memory".to_owned(), HostPath::new("/sys/fs/cgroup/memory"));
            hierarchies.insert(
                "cpu".to_owned(),
                HostPath::new("/sys/fs/cgroup/cpu,cpuacct"),
            );
        }
        h
    }

    #[test]
    fn update_writes_each_file_in_its_v1_hierarchy() {
        let r = record_on(&memory_host());
        let p = plan_update(
            &r,
            &resources(serde_json::json!({
                "memory": {"limit": 67108864},
                "cpu": {"shares": 512},
                "pids": {"limit": 10}
            })),
        )
        .unwrap();
        p.check().unwrap();
        assert_eq!(
            texts(&p),
            [
                "runtime cgroup-write /sys/fs/cgroup/memory/berth/c1/memory.limit_in_bytes \"67108864\"",
                "runtime cgroup-write /sys/fs/cgroup/cpu,cpuacct/berth/c1/cpu.shares \"512\"",
                "runtime cgroup-write /sys/fs/cgroup/pids/berth/c1/pids.max \"10\"",
            ]
        );
    }

    #[test]
    fn update_writes_the_single_v2_leaf() {
        let mut h = host();
        h.cgroup = CgroupLayout::V2 {
            mount: HostPath::new("/sys/fs/cgroup"),
            controllers: ["cpu", "memory", "pids"].map(str::to_owned).to_vec(),
            subtree_control: ["cpu", "memory", "pids"].map(str::to_owned).to_vec(),
        };
        let r = record_on(&h);
        let p = plan_update(
            &r,
            &resources(serde_json::json!({"memory": {"limit": 67108864}, "pids": {"limit": 10}})),
        )
        .unwrap();
        assert_eq!(
            texts(&p),
            [
                "runtime cgroup-write /sys/fs/cgroup/berth/c1/memory.max \"67108864\"",
                "runtime cgroup-write /sys/fs/cgroup/berth/c1/pids.max \"10\"",
            ]
        );
    }

    #[test]
    fn update_refuses_what_has_no_cgroup() {
        // devices and pids only: no memory hierarchy.
        let r = record();
        assert_eq!(
            plan_update(
                &r,
                &resources(serde_json::json!({"memory": {"limit": 1048576}}))
            ),
            Err(UpdateError::NoController {
                id: "c1".to_owned(),
                controller: "memory".to_owned(),
                file: "memory.limit_in_bytes".to_owned(),
            })
        );
        let mut r = record();
        r.plan
            .steps
            .retain(|s| !matches!(s.op, Op::CgroupAttach { .. }));
        assert_eq!(
            plan_update(&r, &resources(serde_json::json!({"pids": {"limit": 1}}))),
            Err(UpdateError::NoCgroup {
                id: "c1".to_owned()
            })
        );
        // Nothing asked, nothing planned.
        assert!(
            plan_update(&record(), &resources(serde_json::json!({})))
                .unwrap()
                .steps
                .is_empty()
        );
    }
}
