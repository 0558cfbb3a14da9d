//! `exec` plans on the fake host: after a fake create and start, the plan checks and the
//! fake carries it out, the new process joining the container's namespaces.

// Test helpers too: a failed unwrap is a failed test (clippy.toml allows it in `#[test]`s).
#![allow(clippy::unwrap_used)]

use berth_core::exec::{execute, execute_range};
use berth_core::plan::{Actor, Op};
use berth_core::planner::create::{plan_create, start_barrier};
use berth_core::planner::exec::{ExecOptions, container_namespaces, plan_exec};
use berth_core::planner::lifecycle::plan_start;
use berth_core::state::ContainerRecord;
use berth_tests::{Case, cases_dir};

#[test]
fn exec_runs_on_the_fake_after_create_and_start() {
    for name in ["minimal", "join_pid_ns", "cgroup_v2_all_resources"] {
        let case = Case::load(&cases_dir().join("create").join(format!("{name}.json")));
        let mut fake = case.fake();
        let request = case.request();
        let plan = plan_create(&request, &case.host_facts()).unwrap();
        let barrier = start_barrier(&plan).unwrap();
        execute_range(&plan, 0..barrier, &mut fake).unwrap();
        let path = format!("{}/{}/state.json", case.state_root, case.id);
        let record: ContainerRecord = serde_json::from_str(&fake.file(&path).unwrap()).unwrap();
        execute(&plan_start(&record).unwrap(), &mut fake).unwrap();

        // The fake's rootfs has the container's own program; exec runs it again.
        let process = request.config.process.clone().unwrap();
        let argv = process.args.clone();
        let exec = plan_exec(&record, &process, &ExecOptions::default()).unwrap();
        exec.check()
            .unwrap_or_else(|e| panic!("{name}: {e}\n{exec}"));
        let text = exec.to_string();
        let namespaces = container_namespaces(&record.plan);
        assert!(!namespaces.is_empty(), "{name}");
        for ns in &namespaces {
            assert!(
                text.contains(&format!("/ns/{} ", ns.proc_name())),
                "{name}: {ns:?} not opened\n{text}"
            );
        }
        // The new process never creates a namespace, mounts or switches root.
        for s in &exec.steps {
            assert!(
                !matches!(
                    s.op,
                    Op::Mount(_) | Op::PivotRoot { .. } | Op::Chroot { .. } | Op::Unshare { .. }
                ),
                "{name}: {}",
                exec.step_text(s)
            );
        }
        let last = exec.steps.last().unwrap();
        assert_eq!(last.actor, Actor::Init);
        assert!(matches!(&last.op, Op::Exec { argv: a, .. } if a == &argv));
        let close = exec
            .steps
            .iter()
            .position(|s| matches!(s.op, Op::CloseFds { .. }))
            .unwrap();
        let chdir = exec
            .steps
            .iter()
            .position(|s| matches!(s.op, Op::Chdir { .. }))
            .unwrap();
        let last_setns = exec
            .steps
            .iter()
            .rposition(|s| s.actor == Actor::Init && matches!(s.op, Op::Setns { .. }))
            .unwrap();
        assert!(last_setns < chdir && close < exec.steps.len() - 1, "{exec}");
        if let Err(e) = execute(&exec, &mut fake) {
            panic!(
                "{name}: the fake refused the exec plan: {e}: {:?}\n{exec}",
                e.source
            );
        }
        assert_eq!(
            &fake.trace()[fake.trace().len() - exec.steps.len()..],
            &exec.steps[..]
        );
    }
}
