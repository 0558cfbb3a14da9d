//! Planners for the commands that act on a created container: `start`, `kill`, `delete`.
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
        // TODO(issue 3): a paused container is thawed before the kill once pause exists.
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
}
