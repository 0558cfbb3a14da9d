//! The fake host against hand-built plans: a minimal create runs and its trace is the
//! plan; each impossible step is refused with its reason; a failure at any step leaves the
//! host as it was; the in-root resolver never leaves the root.

// Test helpers outside #[test] fns unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

mod common;

use berth_backend_fake::{Binding, FakeError, FakeHost};
use berth_core::exec::{Backend, execute};
use berth_core::plan::{Actor, AnyRef, CgroupPath, Op, PidRef, Plan, PlanBuilder, Step, SyncPoint};
use common::*;

#[test]
fn minimal_create_runs_and_its_trace_is_the_plan() {
    let plan = minimal_plan();
    let mut fake = host(&v2());
    let before = fake.state();
    run(&plan, &mut fake);
    assert_eq!(fake.trace_text(&plan), plan.to_string());
    assert_eq!(fake.trace().len(), plan.steps.len());
    // Handles got deterministic values.
    assert_eq!(
        fake.binding(AnyRef::Pid(PidRef(1))),
        Some(Binding::Pid(1000))
    );
    let after = fake.state();
    assert_eq!(after.processes(), vec![1000]);
    // The container's mounts live in its own mount namespace, not the host's.
    assert_eq!(after.host_mounts(), before.host_mounts());
    assert_eq!(fake.file("/run/c1.pid").as_deref(), Some("1000"));
    let state = fake.file("/run/berth/c1/state.json").unwrap();
    assert!(state.contains("\"pid\":1000") && state.contains("\"status\":\"created\""));
    // Mount points made inside the rootfs are on the host's disk.
    assert!(fake.exists("/b/rootfs/proc") && fake.exists("/b/rootfs/home/app"));
    // ... but what was made in the container's /dev tmpfs is not.
    assert!(!fake.exists("/b/rootfs/dev/null"));
    assert_eq!(fake.hooks().len(), 1);
    assert_eq!(fake.hooks()[0].pid, 1000);
    // Killing init takes its namespaces and their mounts along.
    let kill = Step {
        actor: Actor::Runtime,
        op: Op::Kill { pid: PidRef(1) },
    };
    fake.apply(&plan, &kill).unwrap();
    assert_eq!(fake.state().processes(), Vec::<u32>::new());
    assert_eq!(fake.state().namespace_count(), before.namespace_count());
}

#[test]
fn same_plan_same_host_same_everything() {
    let plan = plan_v1();
    let (mut a, mut b) = (host(&v1()), host(&v1()));
    run(&plan, &mut a);
    run(&plan, &mut b);
    assert_eq!(a.state(), b.state());
    assert_eq!(a.state().to_string(), b.state().to_string());
    assert_eq!(a.trace(), b.trace());
}

/// The minimal plan on a v1 host: one cgroup per hierarchy.
fn plan_v1() -> Plan {
    let mut b = PlanBuilder::new();
    b.runtime(Op::StateCreate {
        dir: hp("/run/berth/c1"),
    });
    let dirs = [
        "cpu,cpuacct",
        "cpuset",
        "memory",
        "pids",
        "devices",
        "hugetlb",
    ];
    for d in dirs {
        let made = b.made();
        b.runtime(Op::CgroupCreate {
            cgroup: CgroupPath {
                mount: hp(&format!("/sys/fs/cgroup/{d}")),
                path: "berth/c1".to_owned(),
            },
            made,
        });
    }
    b.runtime(Op::CgroupWrite {
        cgroup: CgroupPath {
            mount: hp("/sys/fs/cgroup/memory"),
            path: "berth/c1".to_owned(),
        },
        file: "memory.limit_in_bytes".to_owned(),
        value: "67108864".to_owned(),
    });
    let pid = b.pid("init.pid");
    b.runtime(Op::Spawn {
        ns: ns(&KINDS),
        pid,
    });
    for d in dirs {
        b.runtime(Op::CgroupAttach {
            cgroup: CgroupPath {
                mount: hp(&format!("/sys/fs/cgroup/{d}")),
                path: "berth/c1".to_owned(),
            },
            pid,
        });
    }
    b.handoff(Actor::Runtime, SyncPoint::Configured);
    rootfs(&mut b);
    b.init(Op::PivotRoot { new_root: hp(ROOT) });
    epilogue(&mut b, pid, false);
    b.finish()
}

#[test]
fn v1_create_runs() {
    let plan = plan_v1();
    let mut fake = host(&v1());
    run(&plan, &mut fake);
    assert_eq!(fake.trace_text(&plan), plan.to_string());
    assert_eq!(
        fake.file("/sys/fs/cgroup/memory/berth/c1/memory.limit_in_bytes")
            .as_deref(),
        Some("67108864")
    );
    // A new cpuset cgroup starts with its parent's cpus and mems.
    assert_eq!(
        fake.file("/sys/fs/cgroup/cpuset/berth/c1/cpuset.cpus")
            .as_deref(),
        Some("0-1")
    );
}

/// The index of init's exec.
fn exec_index(plan: &Plan) -> usize {
    plan.steps
        .iter()
        .position(|s| matches!(s.op, Op::Exec { .. }))
        .unwrap()
}

/// For every k up to init's exec, failing call k rolls back to exactly the state before,
/// without errors. (After exec, init can undo nothing: see
/// `init_cannot_undo_anything_after_exec`.)
fn sweep(plan: &Plan, make: impl Fn() -> FakeHost) {
    for k in 0..=exec_index(plan) {
        let mut fake = make().failing_at(k);
        let before = fake.state();
        let e = execute(plan, &mut fake).expect_err("step k was to fail");
        assert_eq!(e.index, k);
        assert_eq!(e.source, FakeError::Injected { call: k });
        assert!(
            e.rollback.is_empty(),
            "k={k} ({}): rollback errors {:?}",
            plan.step_text(&plan.steps[k]),
            e.rollback
        );
        let after = fake.state();
        assert!(
            after == before,
            "k={k} ({}) changed the host:\n--- before\n{before}\n--- after\n{after}",
            plan.step_text(&plan.steps[k])
        );
    }
}

#[test]
fn failure_at_every_step_restores_the_host() {
    sweep(&plan_v2(false), || host(&v2()));
    sweep(&plan_v1(), || host(&v1()));
}

/// After exec, init is the container's process and cannot undo anything; core's `undo`
/// gives every undo to the runtime, so a failing poststart hook still rolls back fully:
/// init is killed (its mounts die with its namespace) and its mount points are removed
/// from the host's view.
#[test]
fn a_failure_after_exec_rolls_back_through_the_runtime() {
    let plan = plan_v2(false);
    let mut fake = host(&v2()).failing_at(exec_index(&plan) + 1);
    let before = fake.state();
    let e = execute(&plan, &mut fake).unwrap_err();
    assert!(matches!(e.step.op, Op::RunHook { .. }));
    assert!(e.rollback.is_empty(), "{:?}", e.rollback);
    assert_eq!(fake.state().processes(), Vec::<u32>::new());
    assert!(!fake.exists("/run/berth/c1"));
    assert!(!fake.exists("/b/rootfs/proc"));
    assert_eq!(fake.state(), before);
}

/// After `setuid` init has no CAP_SYS_ADMIN left, but it is never asked to unmount: the
/// runtime kills it and removes its mount points.
#[test]
fn a_failure_after_init_dropped_privileges_rolls_back_through_the_runtime() {
    let plan = plan_v2(true);
    let k = plan
        .steps
        .iter()
        .position(|s| s.op == Op::NoNewPrivs)
        .unwrap();
    let mut fake = host(&v2()).failing_at(k);
    let before = fake.state();
    let e = execute(&plan, &mut fake).unwrap_err();
    assert!(e.rollback.is_empty(), "{:?}", e.rollback);
    assert!(!fake.exists("/b/rootfs/proc"));
    assert_eq!(fake.state(), before);
}

#[test]
fn an_injected_failure_counts_undo_calls_too() {
    let plan = minimal_plan();
    // Step 5 (init's wait) fails: the undos of steps 2, 1, 0 are calls 6, 7, 8.
    let mut fake = host(&v2()).failing_at(5);
    let e = execute(&plan, &mut fake).unwrap_err();
    assert_eq!((e.index, fake.calls()), (5, 9));
    // A plan whose step 2 is refused; failing call 3 is the first undo (of step 1).
    let mut b = PlanBuilder::new();
    b.runtime(Op::StateCreate {
        dir: hp("/run/berth/c1"),
    });
    let made = b.made();
    b.runtime(Op::CgroupCreate {
        cgroup: cg("berth/c1"),
        made,
    });
    b.runtime(Op::StateCreate {
        dir: hp("/run/berth/c1"),
    });
    let plan = b.finish();
    let mut fake = host(&v2()).failing_at(3);
    let before = fake.state();
    let e = execute(&plan, &mut fake).unwrap_err();
    assert_eq!(e.index, 2);
    assert_eq!(
        e.source,
        FakeError::StateExists {
            dir: "/run/berth/c1".to_owned()
        }
    );
    assert_eq!(e.rollback.len(), 1);
    assert_eq!(e.rollback[0].1, FakeError::Injected { call: 3 });
    assert!(matches!(e.rollback[0].0.op, Op::RemoveMade { .. }));
    // The failed undo left its cgroup behind; the state dir's undo still ran.
    assert_ne!(fake.state(), before);
    assert!(fake.exists("/sys/fs/cgroup/berth/c1"));
    assert!(!fake.exists("/run/berth/c1"));
}
