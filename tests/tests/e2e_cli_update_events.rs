//! End-to-end through the `berth` binary (root, real kernel, busybox): `update` and
//! `events`, in the same harness style as `e2e_cli.rs`.
//!
//! Every case has its own `--root` in a tempdir and cleans up after itself even when it
//! fails (a guard deletes its containers with `delete --force`).

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_linux_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use berth_core::plan::Plan;
use berth_core::planner::lifecycle::{leaf_cgroups, v1_leaf, v2_leaf};
use e2e_linux_support::{Rootfs, mount_points_under};
use serde_json::{Value, json};

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

/// The `berth` binary of this build, built first if needed (as `e2e_cli.rs` finds it).
fn berth_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_owned();
        let target_dir = profile_dir.parent().unwrap();
        let mut cargo = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        cargo
            .args(["build", "--quiet", "-p", "berth", "--bin", "berth"])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let status = cargo.status().unwrap();
        assert!(status.success(), "building berth failed");
        profile_dir.join("berth")
    })
}

/// One case's world: a busybox bundle, its own `--root`, and the containers to clean up.
struct Env {
    rootfs: Rootfs,
    ids: std::cell::RefCell<Vec<String>>,
    cgroups: std::cell::RefCell<Vec<PathBuf>>,
}

impl Env {
    /// A bundle whose process runs `script` with busybox's sh (no terminal, writable root).
    fn new(script: &str) -> Env {
        let env = Env {
            rootfs: Rootfs::new(),
            ids: Default::default(),
            cgroups: Default::default(),
        };
        let mut v: Value =
            serde_json::from_str(&berth_core::spec::default_config_json(None)).unwrap();
        v["process"]["terminal"] = json!(false);
        v["process"]["args"] = json!(["sh", "-c", script]);
        v["root"]["readonly"] = json!(false);
        std::fs::write(
            env.rootfs.bundle().join("config.json"),
            serde_json::to_vec_pretty(&v).unwrap(),
        )
        .unwrap();
        env
    }

    fn root(&self) -> PathBuf {
        self.rootfs.state_root()
    }

    fn bundle(&self) -> String {
        self.rootfs.bundle().to_string_lossy().into_owned()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.rootfs.dir.path().join(name)
    }

    /// `berth --root ROOT ARGS`, its output captured.
    fn berth(&self, args: &[&str]) -> Output {
        Command::new(berth_bin())
            .arg("--root")
            .arg(self.root())
            .args(args)
            .stdin(Stdio::null())
            .env_remove("BERTH_TRACE")
            .output()
            .unwrap()
    }

    /// `berth ARGS` (global flags first) for a command whose container outlives it: its
    /// stdout and stderr go to files; returns the exit code and stderr.
    fn berth_detached(&self, args: &[&str]) -> (i32, String) {
        let err = self.path("err");
        let status = Command::new(berth_bin())
            .arg("--root")
            .arg(self.root())
            .args(args)
            .stdin(Stdio::null())
            .env_remove("BERTH_TRACE")
            .stdout(std::fs::File::create(self.path("out")).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        (
            status.code().unwrap_or(-1),
            std::fs::read_to_string(err).unwrap(),
        )
    }

    /// The create plan of `id` (a dry run), registering `id` and its cgroups for cleanup.
    fn track(&self, id: &str) -> Plan {
        self.ids.borrow_mut().push(id.to_owned());
        let plan = self.berth(&["create", "--dry-run=json", "--bundle", &self.bundle(), id]);
        let plan: Plan = serde_json::from_slice(&ok(&plan)).unwrap();
        self.cgroups.borrow_mut().extend(
            leaf_cgroups(&plan)
                .iter()
                .map(|c| PathBuf::from(c.dir().as_str())),
        );
        plan
    }

    /// `create` then `start`; returns the create plan.
    fn create_started(&self, id: &str) -> Plan {
        let plan = self.track(id);
        let (code, err) = self.berth_detached(&["create", "--bundle", &self.bundle(), id]);
        assert_eq!(code, 0, "create failed: {err}");
        ok(&self.berth(&["start", id]));
        plan
    }

    fn status(&self, id: &str) -> String {
        let state: Value = serde_json::from_slice(&ok(&self.berth(&["state", id]))).unwrap();
        state["status"].as_str().unwrap().to_owned()
    }

    /// Nothing of the tracked containers is left: no state, no cgroup, no mount.
    fn assert_nothing_left(&self) {
        assert_eq!(text(&ok(&self.berth(&["list", "-q"]))), "");
        for id in self.ids.borrow().iter() {
            assert!(!self.root().join(id).exists(), "state of {id} is left");
        }
        for d in self.cgroups.borrow().iter() {
            assert!(!d.exists(), "cgroup {} is left", d.display());
        }
        let prefix = self.rootfs.dir.path().to_string_lossy().into_owned();
        assert_eq!(mount_points_under(&prefix), Vec::<String>::new());
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = Command::new(berth_bin())
                .arg("--root")
                .arg(self.root())
                .args(["delete", "--force", id])
                .env_remove("BERTH_TRACE")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for d in self.cgroups.borrow().iter() {
            for _ in 0..100 {
                if !d.exists() || std::fs::remove_dir(d).is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        let _ = std::fs::remove_dir_all(self.root());
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success and an empty stderr; returns stdout.
fn ok(out: &Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "berth failed: {:?}: {}",
        out.status,
        text(&out.stderr)
    );
    assert_eq!(text(&out.stderr), "", "no diagnostics on success");
    out.stdout.clone()
}

/// Asserts exit status 1, nothing on stdout and one line on stderr; returns it.
fn fails(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "diagnostics never go to stdout");
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    err.trim_end().to_owned()
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
