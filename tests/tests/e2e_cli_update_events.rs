//! End-to-end through the `berth` binary (root, real kernel, busybox): `update` and
//! `events`, in the same harness style as `e2e_cli.rs`.
//!
//! Every case has its own `--root` in a tempdir and cleans up after itself even when it
//! fails (a guard deletes its containers with `delete --force`).

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_cli_support;
mod e2e_linux_support;

use std::path::Path;
use std::process::{Command, Stdio};

use berth_core::plan::Plan;
use berth_core::planner::lifecycle::{v1_leaf, v2_leaf};
use serde_json::Value;

use e2e_cli_support::*;

fn main() {
    e2e_linux_support::run(&[
        (
            "update_writes_memory_and_pids",
            update_writes_memory_and_pids,
        ),
        (
            "update_refuses_a_stopped_container",
            update_refuses_a_stopped_container,
        ),
        ("events_stats_prints_one_line", events_stats_prints_one_line),
    ]);
}

/// The text of `file` in the leaf cgroup of `controller` (v1), or the one leaf (v2).
fn cgroup_file(plan: &Plan, controller: &str, v1: &str, v2: &str) -> String {
    let path = match v2_leaf(plan) {
        Some(leaf) => Path::new(leaf.dir().as_str()).join(v2),
        None => Path::new(v1_leaf(plan, controller).unwrap().dir().as_str()).join(v1),
    };
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_owned()
}

fn update_writes_memory_and_pids() {
    let env = Env::new("sleep 1000");
    let plan = env.create_started("c1");
    ok(&env.berth(&["update", "--memory", "64M", "c1"]));
    assert_eq!(
        cgroup_file(&plan, "memory", "memory.limit_in_bytes", "memory.max"),
        "67108864"
    );
    ok(&env.berth(&["update", "--pids-limit", "10", "c1"]));
    assert_eq!(cgroup_file(&plan, "pids", "pids.max", "pids.max"), "10");
    // --resources from stdin.
    let mut child = Command::new(berth_bin())
        .arg("--root")
        .arg(env.root())
        .args(["update", "--resources", "-", "c1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        br#"{"pids": {"limit": 20}}"#,
    )
    .unwrap();
    ok(&child.wait_with_output().unwrap());
    assert_eq!(cgroup_file(&plan, "pids", "pids.max", "pids.max"), "20");
    ok(&env.berth(&["delete", "--force", "c1"]));
    env.assert_nothing_left();
}

fn update_refuses_a_stopped_container() {
    let env = Env::new("true");
    env.create_started("c1");
    assert!(e2e_linux_support::wait_until(10, || env.status("c1") == "stopped"));
    assert_eq!(
        fails(&env.berth(&["update", "--pids-limit", "10", "c1"])),
        "berth: container not running"
    );
    assert_eq!(
        fails(&env.berth(&["update", "--pids-limit", "10", "nope"])),
        "berth: container does not exist"
    );
}

fn events_stats_prints_one_line() {
    let env = Env::new("sleep 1000");
    env.create_started("c1");
    let out = text(&ok(&env.berth(&["events", "--stats", "c1"])));
    assert_eq!(out.lines().count(), 1, "one line: {out:?}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], "c1");
    assert!(v["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{v}");
    assert!(
        v["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{v}"
    );
    // Without --stats: lines until the container stops.
    let child = Command::new(berth_bin())
        .arg("--root")
        .arg(env.root())
        .args(["events", "--interval", "100ms", "c1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(350));
    ok(&env.berth(&["kill", "c1", "KILL"]));
    let out = child.wait_with_output().unwrap();
    let lines = text(&ok(&out));
    assert!(lines.lines().count() >= 2, "{lines:?}");
    for line in lines.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["type"], "stats");
    }
}
