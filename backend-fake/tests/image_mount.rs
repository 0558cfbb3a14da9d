//! The overlay rootfs plan of `berth_core::planner::image_mount` on the fake host: it runs
//! and its trace is the plan; the merged directory shows the layers with the topmost
//! winning; a failure at any step, or undoing the whole plan, leaves the host unchanged.

// Test helpers outside #[test] fns unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use berth_backend_fake::FakeHost;
use berth_core::exec::{Backend, execute};
use berth_core::plan::{HostPath, Namespace, Plan, PlanBuilder, undo};
use berth_core::planner::image_mount::plan_rootfs;
use berth_core::{CgroupLayout, HostFacts};

const LAYERS: &str = "/var/lib/berth/layers";
const C: &str = "/var/lib/berth/containers/c1";

fn facts() -> HostFacts {
    let all = || vec!["cpu".to_owned(), "memory".to_owned(), "pids".to_owned()];
    HostFacts {
        cgroup: CgroupLayout::V2 {
            mount: HostPath::new("/sys/fs/cgroup"),
            controllers: all(),
            subtree_control: all(),
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

/// A host with `n` unpacked layers: each has `/etc/layer` naming it and its own file
/// `/lN`; only the layer directories exist under `/var/lib/berth`.
fn host(n: usize) -> FakeHost {
    let mut fake = FakeHost::new(&facts());
    for i in 0..n {
        fake = fake
            .with_file(&format!("{LAYERS}/l{i}/diff/etc/layer"), &format!("l{i}"))
            .with_file(&format!("{LAYERS}/l{i}/diff/l{i}"), "");
    }
    fake
}

fn plan(n: usize) -> Plan {
    let layers: Vec<HostPath> = (0..n)
        .map(|i| HostPath::new(format!("{LAYERS}/l{i}/diff")))
        .collect();
    let mut b = PlanBuilder::new();
    plan_rootfs(
        &layers,
        &HostPath::new(format!("{C}/upper")),
        &HostPath::new(format!("{C}/work")),
        &HostPath::new(format!("{C}/merged")),
        &mut b,
    )
    .unwrap();
    b.finish()
}

#[test]
fn the_plan_runs_and_the_topmost_layer_wins() {
    for n in [1, 3] {
        let plan = plan(n);
        let mut fake = host(n);
        let before = fake.state();
        execute(&plan, &mut fake).unwrap();
        assert_eq!(fake.trace_text(&plan), plan.to_string());
        let merged = format!("{C}/merged");
        assert_eq!(
            fake.file(&format!("{merged}/etc/layer")).as_deref(),
            Some(format!("l{}", n - 1).as_str()),
            "{n} layers"
        );
        for i in 0..n {
            assert!(fake.exists(&format!("{merged}/l{i}")), "{n} layers: l{i}");
        }
        assert!(fake.exists(&format!("{C}/upper")) && fake.exists(&format!("{C}/work")));
        let mounts = fake.state().host_mounts();
        assert_eq!(mounts.len(), before.host_mounts().len() + 1, "{mounts:?}");
    }
}

#[test]
fn undoing_the_whole_plan_restores_the_host() {
    let plan = plan(3);
    let mut fake = host(3);
    let before = fake.state();
    execute(&plan, &mut fake).unwrap();
    for step in plan.steps.iter().rev() {
        let u = undo(step).expect("every step of the rootfs plan has an undo");
        fake.apply(&plan, &u).unwrap();
    }
    assert_eq!(fake.state(), before);
    assert!(!fake.exists("/var/lib/berth/containers"));
    assert!(fake.exists(&format!("{LAYERS}/l2/diff/etc/layer")));
}

#[test]
fn failure_at_every_step_restores_the_host() {
    for n in [1, 3] {
        let plan = plan(n);
        for k in 0..plan.steps.len() {
            let mut fake = host(n).failing_at(k);
            let before = fake.state();
            let e = execute(&plan, &mut fake).expect_err("step k was to fail");
            assert_eq!(e.index, k);
            assert!(e.rollback.is_empty(), "k={k}: {:?}", e.rollback);
            assert!(
                fake.state() == before,
                "{n} layers: failing at step {k} ({}) changed the host",
                plan.step_text(&plan.steps[k])
            );
        }
    }
}

#[test]
fn a_missing_layer_is_refused_and_nothing_is_left() {
    let plan = plan(3);
    // Layer 1 was never unpacked.
    let mut fake = FakeHost::new(&facts())
        .with_dir(&format!("{LAYERS}/l0/diff"))
        .with_dir(&format!("{LAYERS}/l2/diff"));
    let before = fake.state();
    let e = execute(&plan, &mut fake).unwrap_err();
    assert_eq!(e.index, 3, "the mount fails: {}", e.source);
    assert!(e.source.to_string().contains("l1"), "{}", e.source);
    assert!(e.rollback.is_empty(), "{:?}", e.rollback);
    assert!(fake.state() == before);
}
