//! The harness shared by the `berth` binary's end-to-end test files: an [`Env`] per case
//! (its own `--root` and bundle in a tempdir, a guard that deletes its containers) and
//! helpers that run the binary and check its exit status and output.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use berth_core::plan::Plan;
use berth_core::planner::lifecycle::leaf_cgroups;
use serde_json::{Value, json};

use crate::e2e_linux_support::{Rootfs, mount_points_under};

/// The `berth` binary of this build, built first if needed (as `e2e_cli.rs` finds it).
pub(crate) fn berth_bin() -> &'static Path {
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
pub(crate) struct Env {
    rootfs: Rootfs,
    ids: std::cell::RefCell<Vec<String>>,
    cgroups: std::cell::RefCell<Vec<PathBuf>>,
}

impl Env {
    /// A bundle whose process runs `script` with busybox's sh (no terminal, writable root).
    pub(crate) fn new(script: &str) -> Env {
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

    pub(crate) fn root(&self) -> PathBuf {
        self.rootfs.state_root()
    }

    pub(crate) fn bundle(&self) -> String {
        self.rootfs.bundle().to_string_lossy().into_owned()
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.rootfs.dir.path().join(name)
    }

    /// `berth --root ROOT ARGS`, its output captured.
    pub(crate) fn berth(&self, args: &[&str]) -> Output {
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
    pub(crate) fn berth_detached(&self, args: &[&str]) -> (i32, String) {
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
    pub(crate) fn track(&self, id: &str) -> Plan {
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

    /// Like [`Env::track`], for a create command line of its own (`create ARGS... ID`).
    pub(crate) fn track_create(&self, id: &str, create: &[&str]) -> Plan {
        self.ids.borrow_mut().push(id.to_owned());
        let mut args = create.to_vec();
        args.insert(1, "--dry-run=json");
        let plan: Plan = serde_json::from_slice(&ok(&self.berth(&args))).unwrap();
        self.cgroups.borrow_mut().extend(
            leaf_cgroups(&plan)
                .iter()
                .map(|c| PathBuf::from(c.dir().as_str())),
        );
        plan
    }

    /// `create` then `start`; returns the create plan.
    pub(crate) fn create_started(&self, id: &str) -> Plan {
        let plan = self.track(id);
        let (code, err) = self.berth_detached(&["create", "--bundle", &self.bundle(), id]);
        assert_eq!(code, 0, "create failed: {err}");
        ok(&self.berth(&["start", id]));
        plan
    }

    pub(crate) fn status(&self, id: &str) -> String {
        let state: Value = serde_json::from_slice(&ok(&self.berth(&["state", id]))).unwrap();
        state["status"].as_str().unwrap().to_owned()
    }

    /// Nothing of the tracked containers is left: no state, no cgroup, no mount.
    pub(crate) fn assert_nothing_left(&self) {
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

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success and an empty stderr; returns stdout.
pub(crate) fn ok(out: &Output) -> Vec<u8> {
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
pub(crate) fn fails(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "diagnostics never go to stdout");
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    err.trim_end().to_owned()
}
