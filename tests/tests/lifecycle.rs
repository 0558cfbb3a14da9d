//! Golden lifecycle plans (`start`, `kill`, `delete`) and whole lifecycles on the fake host.
//!
//! A container is created on the fake host from a create case; its record is what the fake's
//! `state-write` left in `state.json`, exactly as `berth start` would read it. The plans the
//! lifecycle planners make from that record are snapshotted, and a whole
//! create → start → kill → delete must leave the fake host as it was.

// Test helpers too: a failed unwrap is a failed test (clippy.toml allows it in `#[test]`s).
#![allow(clippy::unwrap_used)]

use berth_backend_fake::FakeHost;
use berth_core::exec::{execute, execute_range};
use berth_core::plan::{Op, Plan};
use berth_core::planner::create::{plan_create, start_barrier};
use berth_core::planner::lifecycle::{plan_delete, plan_kill, plan_start};
use berth_core::signal::{SIGKILL, SIGTERM};
use berth_core::state::{
    Command, ContainerRecord, Observed, ProcStat, Status, Verdict, check, derive_status,
};
use berth_tests::{Case, cases_dir};

/// Create cases whose lifecycle is snapshotted: the default config (v1), poststop hooks,
/// a shared pid namespace (delete kills what is left in the cgroup), and cgroup v2.
const CASES: &[&str] = &[
    "minimal",
    "every_hook_kind",
    "join_pid_ns",
    "cgroup_v2_all_resources",
];

fn case(name: &str) -> Case {
    Case::load(&cases_dir().join("create").join(format!("{name}.json")))
}

/// Applies `plan` on `fake` and checks that the fake applied exactly its steps.
fn run(fake: &mut FakeHost, plan: &Plan, what: &str) {
    plan.check()
        .unwrap_or_else(|e| panic!("{what}: the plan does not check: {e}\n{plan}"));
    let before = fake.trace().len();
    if let Err(e) = execute(plan, fake) {
        panic!(
            "{what}: the fake refused the plan: {e}: {:?}\n{plan}",
            e.source
        );
    }
    assert_eq!(&fake.trace()[before..], &plan.steps[..], "{what}");
}

/// Creates the case's container on `fake` (up to the start barrier) and reads its record
/// back from the fake's `state.json`.
fn create(case: &Case, fake: &mut FakeHost) -> ContainerRecord {
    let request = case.request();
    let plan = plan_create(&request, &case.host_facts()).unwrap();
    let barrier = start_barrier(&plan).unwrap();
    if let Err(e) = execute_range(&plan, 0..barrier, fake) {
        panic!("create {}: {e}: {:?}", case.id, e.source);
    }
    let path = format!("{}/{}/state.json", case.state_root, case.id);
    let text = fake.file(&path).unwrap_or_else(|| panic!("no {path}"));
    let record: ContainerRecord = serde_json::from_str(&text).unwrap();
    assert_eq!(record.plan, plan, "the record holds the create plan");
    assert_eq!(record.id, case.id);
    assert_eq!(record.status, Status::Created);
    record
}

/// The status of the recorded container on the fake host. The fake has no start fifo: the
/// caller says whether `start` ran.
fn status(fake: &FakeHost, record: &ContainerRecord, started: bool) -> Status {
    let seen = Observed {
        init: fake
            .process_start_time(record.pid)
            .map(|start_time| ProcStat {
                state: 'S',
                start_time,
            }),
        exec_fifo: !started,
        frozen: false,
    };
    derive_status(record, &seen)
}

/// create → start → kill → delete on `fake`, each command allowed by the state machine.
fn lifecycle(case: &Case, fake: &mut FakeHost, signal: i32) {
    let record = create(case, fake);
    assert_eq!(status(fake, &record, false), Status::Created);
    assert_eq!(
        check(Command::Start, &record.id, Status::Created),
        Ok(Verdict::Proceed)
    );
    run(fake, &plan_start(&record).unwrap(), "start");
    assert_eq!(status(fake, &record, true), Status::Running);
    run(fake, &plan_kill(&record, signal, false).unwrap(), "kill");
    let now = status(fake, &record, true);
    assert_eq!(now, Status::Stopped, "SIGKILL ends the container");
    assert_eq!(
        check(Command::Delete { force: false }, &record.id, now),
        Ok(Verdict::Proceed)
    );
    run(fake, &plan_delete(&record, now, false).unwrap(), "delete");
}

#[test]
fn lifecycle_plans() {
    for name in CASES {
        let case = case(name);
        let mut fake = case.fake();
        let record = create(&case, &mut fake);
        let mut text = String::new();
        let mut section = |title: &str, plan: &Plan| {
            plan.check()
                .unwrap_or_else(|e| panic!("{name} {title}: {e}\n{plan}"));
            text.push_str(&format!("# {title}\n{plan}"));
        };
        section("start", &plan_start(&record).unwrap());
        section("kill", &plan_kill(&record, SIGTERM, false).unwrap());
        section(
            "kill --all ID KILL",
            &plan_kill(&record, SIGKILL, true).unwrap(),
        );
        section(
            "delete (created)",
            &plan_delete(&record, Status::Created, false).unwrap(),
        );
        section(
            "delete --force (running)",
            &plan_delete(&record, Status::Running, true).unwrap(),
        );
        section(
            "delete (stopped)",
            &plan_delete(&record, Status::Stopped, false).unwrap(),
        );
        insta::with_settings!({ description => case.note.clone(), omit_expression => true }, {
            insta::assert_snapshot!(format!("lifecycle@{name}"), text);
        });
    }
}

#[test]
fn a_whole_lifecycle_on_the_fake_leaves_the_host_as_it_was() {
    // A cgroupsPath of one level: the container's cgroups have no parent that outlives it,
    // so the host after `delete` is the host before `create`, exactly. The rootfs has its
    // mount points, as an image does: like runc, berth leaves the ones it had to make.
    let mut case = case("minimal");
    case.config["linux"]["cgroupsPath"] = serde_json::json!("/lifecycle-c1");
    let mut fake = case
        .fake()
        .with_dir("/b/rootfs/dev")
        .with_dir("/b/rootfs/proc")
        .with_dir("/b/rootfs/sys");
    let pristine = fake.state();
    lifecycle(&case, &mut fake, SIGKILL);
    assert_eq!(fake.state(), pristine);
    assert_eq!(
        fake.signals().iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [SIGKILL]
    );
}

#[test]
fn a_second_lifecycle_leaves_the_host_as_the_first_did() {
    // With the default `berth/ID` cgroups (and v2's enabled controllers), the shared parent
    // stays, as runc leaves it; what one container made goes with it.
    for name in CASES {
        let case = case(name);
        let mut fake = case.fake();
        let pristine = fake.state();
        lifecycle(&case, &mut fake, SIGKILL);
        let after_first = fake.state();
        assert!(
            after_first.processes().is_empty(),
            "{name}: a process is left"
        );
        assert_eq!(
            after_first.host_mounts(),
            pristine.host_mounts(),
            "{name}: a mount is left"
        );
        assert!(
            !fake.exists(&format!("{}/{}", case.state_root, case.id)),
            "{name}: the state directory is left"
        );
        let plan = plan_create(&case.request(), &case.host_facts()).unwrap();
        for s in &plan.steps {
            if let Op::CgroupAttach { cgroup, .. } = &s.op {
                assert!(
                    !fake.exists(cgroup.dir().as_str()),
                    "{name}: cgroup {cgroup} is left"
                );
            }
        }
        lifecycle(&case, &mut fake, SIGKILL);
        assert_eq!(fake.state(), after_first, "{name}");
    }
}

#[test]
fn poststop_hooks_run_at_delete_with_the_recorded_pid() {
    let case = case("every_hook_kind");
    let mut fake = case.fake();
    lifecycle(&case, &mut fake, SIGKILL);
    let poststop: Vec<_> = fake
        .hooks()
        .iter()
        .filter(|h| h.kind == berth_core::plan::HookKind::Poststop)
        .collect();
    assert_eq!(poststop.len(), 1, "{:?}", fake.hooks());
    assert_eq!(poststop[0].path, "/usr/libexec/hooks/poststop");
}

#[test]
fn delete_of_a_created_container_kills_it_first() {
    let case = case("minimal");
    let mut fake = case.fake();
    let record = create(&case, &mut fake);
    let plan = plan_delete(&record, Status::Created, false).unwrap();
    run(&mut fake, &plan, "delete");
    assert!(fake.state().processes().is_empty());
    assert!(!fake.exists("/run/berth/c1"));
}

#[test]
fn adopt_refuses_a_reused_pid() {
    let case = case("minimal");
    let mut fake = case.fake();
    let mut record = create(&case, &mut fake);
    record.start_time += 1;
    let err = execute(&plan_kill(&record, SIGTERM, false).unwrap(), &mut fake).unwrap_err();
    assert!(
        err.source.to_string().contains("is not the recorded one"),
        "{}",
        err.source
    );
    assert!(fake.signals().is_empty(), "nothing was signalled");
}

#[test]
fn a_term_is_delivered_and_changes_nothing_on_the_fake() {
    let case = case("minimal");
    let mut fake = case.fake();
    let record = create(&case, &mut fake);
    run(&mut fake, &plan_start(&record).unwrap(), "start");
    let before = fake.state();
    run(
        &mut fake,
        &plan_kill(&record, SIGTERM, false).unwrap(),
        "kill",
    );
    assert_eq!(fake.signals(), [(record.pid, SIGTERM)]);
    assert_eq!(fake.state(), before);
    // --all reaches every process of the cgroup: here, init alone.
    run(
        &mut fake,
        &plan_kill(&record, SIGKILL, true).unwrap(),
        "kill --all",
    );
    assert_eq!(fake.signals()[1], (record.pid, SIGKILL));
    assert_eq!(status(&fake, &record, true), Status::Stopped);
}
