//! End-to-end through the `berth` binary (root, real kernel, busybox): `pause`, `resume`,
//! `features` and `--trace`, in the same harness style as `e2e_cli.rs`.
//!
//! Every case has its own `--root` in a tempdir and cleans up after itself even when it
//! fails (a guard deletes its containers with `delete --force`, which thaws and kills only
//! their own init processes, and removes their cgroups and state).

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_cli_support;
mod e2e_linux_support;

use std::path::Path;

use berth_core::planner::lifecycle::{Freezer, freezer};
use e2e_linux_support::wait_until;
use serde_json::{Value, json};

use e2e_cli_support::*;

fn main() {
    e2e_linux_support::run(&[
        (
            "trace_equals_the_dry_run_up_to_the_barrier",
            trace_equals_the_dry_run_up_to_the_barrier,
        ),
        ("trace_of_start_and_kill", trace_of_start_and_kill),
        (
            "pause_freezes_and_resume_thaws",
            pause_freezes_and_resume_thaws,
        ),
        (
            "pause_and_resume_refuse_as_runc",
            pause_and_resume_refuse_as_runc,
        ),
        (
            "delete_force_of_a_paused_container_leaves_nothing",
            delete_force_of_a_paused_container_leaves_nothing,
        ),
        (
            "kill_of_a_paused_container_stops_it",
            kill_of_a_paused_container_stops_it,
        ),
        ("features_prints_the_document", features_prints_the_document),
    ]);
}

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// What the container's freezer file reads now.
fn freezer_reads(f: &Freezer) -> String {
    std::fs::read_to_string(Path::new(f.cgroup.dir().as_str()).join(f.file))
        .unwrap()
        .trim()
        .to_owned()
}

fn trace_equals_the_dry_run_up_to_the_barrier() {
    let env = Env::new("echo traced");
    let id = unique("trace");
    env.track(&id);
    let dry = text(&ok(&env.berth(&[
        "create",
        "--dry-run",
        "--bundle",
        &env.bundle(),
        &id,
    ])));
    let barrier = dry
        .lines()
        .position(|l| l.ends_with(" runtime signal start"))
        .expect("the plan has a start barrier");
    let trace = env.path("trace");
    let trace_arg = trace.to_string_lossy().into_owned();
    let (code, err) = env.berth_detached(&[
        "--trace",
        &trace_arg,
        "create",
        "--bundle",
        &env.bundle(),
        &id,
    ]);
    assert_eq!(code, 0, "create failed: {err}");
    assert_eq!(env.status(&id), "created");
    let traced = std::fs::read_to_string(&trace).unwrap();
    let expected: String = dry
        .lines()
        .take(barrier)
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(barrier > 10, "a real plan: {dry}");
    assert_eq!(traced, expected);
}

fn trace_of_start_and_kill() {
    let env = Env::new("sleep 1000");
    let id = unique("trace-start");
    let plan = env.track(&id);
    let barrier = plan
        .steps
        .iter()
        .position(|s| s.op == berth_core::plan::Op::Signal(berth_core::plan::SyncPoint::Start))
        .unwrap();
    let trace = env.path("trace-start");
    let trace_arg = trace.to_string_lossy().into_owned();
    let (code, err) = env.berth_detached(&[
        "--trace",
        &trace_arg,
        "create",
        "--bundle",
        &env.bundle(),
        &id,
    ]);
    assert_eq!(code, 0, "create failed: {err}");
    let created = std::fs::read_to_string(&trace).unwrap();
    ok(&env.berth(&["--trace", &trace_arg, "start", &id]));
    let traced = std::fs::read_to_string(&trace).unwrap();
    let started: Vec<&str> = traced[created.len()..].lines().collect();
    // The created trace is the plan up to the barrier (see the dry-run case). Then `start`
    // traces its own plan (adopt, signal), and the waiting init, which inherited the trace
    // at create, its steps of the create plan, numbered there.
    assert_eq!(created.lines().count(), barrier, "{created}");
    assert_eq!(started.len(), 4, "{traced}");
    assert!(started[0].starts_with("0 runtime adopt "), "{traced}");
    assert_eq!(started[1], "1 runtime signal start", "{traced}");
    assert_eq!(started[2], format!("{} init wait start", barrier + 1));
    let exec = &plan.steps[barrier + 2];
    assert!(matches!(exec.op, berth_core::plan::Op::Exec { .. }));
    assert_eq!(
        started[3],
        format!("{} {}", barrier + 2, plan.step_text(exec))
    );
    ok(&env.berth(&["--trace", &trace_arg, "kill", &id, "KILL"]));
    assert!(wait_until(10, || env.status(&id) == "stopped"));
    let traced = std::fs::read_to_string(&trace).unwrap();
    assert!(
        traced.ends_with("1 runtime kill -KILL $init.pid\n"),
        "{traced}"
    );
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
}

fn pause_freezes_and_resume_thaws() {
    let env = Env::new("sleep 1000");
    let id = unique("pause");
    let plan = env.create_started(&id);
    let f = freezer(&plan).expect("this host has a freezer");
    assert_eq!(env.status(&id), "running");
    ok(&env.berth(&["pause", &id]));
    assert_eq!(env.status(&id), "paused");
    assert_eq!(freezer_reads(&f), f.frozen);
    let listed = text(&ok(&env.berth(&["list", "--format", "json"])));
    assert!(listed.contains("\"status\":\"paused\""), "{listed}");
    ok(&env.berth(&["resume", &id]));
    assert_eq!(env.status(&id), "running");
    assert_ne!(freezer_reads(&f), f.frozen);
    ok(&env.berth(&["kill", &id, "KILL"]));
    assert!(wait_until(10, || env.status(&id) == "stopped"));
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
}

fn pause_and_resume_refuse_as_runc() {
    let env = Env::new("sleep 1000");
    let id = unique("refuse");
    assert_eq!(
        fails(&env.berth(&["pause", &id])),
        "berth: container does not exist"
    );
    env.create_started(&id);
    assert_eq!(
        fails(&env.berth(&["resume", &id])),
        "berth: container not paused"
    );
    ok(&env.berth(&["pause", &id]));
    assert_eq!(
        fails(&env.berth(&["pause", &id])),
        "berth: container not running"
    );
    assert!(
        fails(&env.berth(&["delete", &id])).contains("that is not stopped: paused"),
        "delete without --force"
    );
    ok(&env.berth(&["resume", &id]));
    ok(&env.berth(&["delete", "--force", &id]));
    env.assert_nothing_left();
}

fn delete_force_of_a_paused_container_leaves_nothing() {
    let env = Env::new("sleep 1000");
    let id = unique("del-paused");
    env.create_started(&id);
    ok(&env.berth(&["pause", &id]));
    assert_eq!(env.status(&id), "paused");
    ok(&env.berth(&["delete", "--force", &id]));
    env.assert_nothing_left();
}

fn kill_of_a_paused_container_stops_it() {
    let env = Env::new("sleep 1000");
    let id = unique("kill-paused");
    env.create_started(&id);
    ok(&env.berth(&["pause", &id]));
    // As runc: KILL of a paused container thaws it, so its processes die.
    ok(&env.berth(&["kill", &id, "KILL"]));
    assert!(
        wait_until(10, || env.status(&id) == "stopped"),
        "a killed paused container stops"
    );
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
}

fn features_prints_the_document() {
    let env = Env::new("true");
    let out = ok(&env.berth(&["features"]));
    let f: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert!(f["ociVersionMax"].as_str().unwrap().starts_with("1.2."));
    assert!(
        f["mountOptions"]
            .as_array()
            .unwrap()
            .contains(&json!("rbind"))
    );
    assert!(
        f["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("CAP_SYS_ADMIN"))
    );
    assert_eq!(f["linux"]["cgroup"]["v1"], true);
    assert_eq!(f["linux"]["cgroup"]["systemd"], false);
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert_eq!(f["linux"]["apparmor"]["enabled"], false);
    assert_eq!(f["linux"]["selinux"]["enabled"], false);
}
