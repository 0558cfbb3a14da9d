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

use crate::e2e_linux_support::{Rootfs, alive, mount_points_under, wait_until};

/// The `berth` binary of this build, built first if needed with `berth-engine` beside it.
pub(crate) fn berth_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_owned();
        // The target dir: <target-dir>/<profile>, or <target-dir>/<triple>/<profile> when
        // built for an explicit target (as .cargo/config.toml asks). Cargo puts a
        // CACHEDIR.TAG in both <target-dir> and <target-dir>/<triple>: take the topmost.
        let mut target_dir = profile_dir.as_path();
        while let Some(up) = target_dir.parent()
            && up.join("CACHEDIR.TAG").exists()
        {
            target_dir = up;
        }
        let mut cargo = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        cargo
            .args(["build", "--quiet", "-p", "berth", "--bins"])
            // JSON for the artifact list; diagnostics still rendered on stderr.
            .args(["--message-format", "json-render-diagnostics"])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit());
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let out = cargo.output().unwrap();
        assert!(out.status.success(), "building berth failed");
        // Where cargo put it, from its own report (not a guess at its layout).
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "berth")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no berth executable")
    })
}

/// One case's world: a busybox bundle, its own `--root`, and the containers to clean up.
pub(crate) struct Env {
    pub(crate) rootfs: Rootfs,
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
        env.config(script, |_| {});
        env
    }

    /// Rewrites the bundle's config: `berth spec`'s default, no terminal, a writable root,
    /// `sh -c script`, then `edit`.
    pub(crate) fn config(&self, script: &str, edit: impl FnOnce(&mut Value)) {
        let mut v: Value =
            serde_json::from_str(&berth_core::spec::default_config_json(None)).unwrap();
        v["process"]["terminal"] = json!(false);
        v["process"]["args"] = json!(["sh", "-c", script]);
        v["root"]["readonly"] = json!(false);
        edit(&mut v);
        std::fs::write(
            self.rootfs.bundle().join("config.json"),
            serde_json::to_vec_pretty(&v).unwrap(),
        )
        .unwrap();
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

    /// `berth ARGS` (global flags first) for a command whose container outlives it
    /// (`create`, `run -d`): its stdout and stderr go to files (a pipe would stay open as
    /// long as the container); returns the exit code, stdout and stderr.
    pub(crate) fn berth_detached_out(&self, args: &[&str]) -> (i32, String, String) {
        let (out, err) = (self.path("out"), self.path("err"));
        let status = Command::new(berth_bin())
            .arg("--root")
            .arg(self.root())
            .args(args)
            .stdin(Stdio::null())
            .env_remove("BERTH_TRACE")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        (
            status.code().unwrap_or(-1),
            std::fs::read_to_string(out).unwrap(),
            std::fs::read_to_string(err).unwrap(),
        )
    }

    /// [`Env::berth_detached_out`] without stdout: the exit code and stderr.
    pub(crate) fn berth_detached(&self, args: &[&str]) -> (i32, String) {
        let (code, _, err) = self.berth_detached_out(args);
        (code, err)
    }

    /// The create plan of `id` (a dry run), registering `id` and its cgroups for cleanup.
    pub(crate) fn track(&self, id: &str) -> Plan {
        self.track_create(id, &["create", "--bundle", &self.bundle(), id])
    }

    /// Like [`Env::track`], for a create command line of its own (`create ARGS... ID`).
    pub(crate) fn track_create(&self, id: &str, create: &[&str]) -> Plan {
        self.ids.borrow_mut().push(id.to_owned());
        let mut args = create.to_vec();
        args.insert(1, "--dry-run=json");
        let plan: Plan = serde_json::from_slice(&ok(&self.berth(&args))).unwrap();
        let leaves = leaf_cgroups(&plan);
        assert!(
            !leaves.is_empty(),
            "this host has cgroups: the plan makes some"
        );
        self.cgroups
            .borrow_mut()
            .extend(leaves.iter().map(|c| PathBuf::from(c.dir().as_str())));
        plan
    }

    /// `berth create ID --bundle B` (the id first, as some callers pass it); returns the
    /// create plan.
    pub(crate) fn create(&self, id: &str) -> Plan {
        let plan = self.track(id);
        let (code, err) = self.berth_detached(&["create", id, "--bundle", &self.bundle()]);
        assert_eq!(code, 0, "create failed: {err}");
        assert_eq!(err, "");
        plan
    }

    /// `create` then `start`; returns the create plan.
    pub(crate) fn create_started(&self, id: &str) -> Plan {
        let plan = self.create(id);
        ok(&self.berth(&["start", id]));
        plan
    }

    /// The cgroup directories of the tracked containers.
    pub(crate) fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.cgroups.borrow().clone()
    }

    pub(crate) fn state(&self, id: &str) -> Value {
        serde_json::from_slice(&ok(&self.berth(&["state", id]))).unwrap()
    }

    pub(crate) fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_owned()
    }

    /// Waits until the container is stopped.
    pub(crate) fn wait_stopped(&self, id: &str) {
        assert!(
            wait_until(10, || self.status(id) == "stopped"),
            "{id} did not stop"
        );
    }

    /// The ids `list -q` shows.
    pub(crate) fn listed(&self) -> Vec<String> {
        text(&ok(&self.berth(&["list", "-q"])))
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Nothing of the tracked containers is left: no state, no cgroup, no mount.
    pub(crate) fn assert_nothing_left(&self) {
        assert_eq!(self.listed(), Vec::<String>::new());
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
            let pid = std::fs::read(self.root().join(id).join("state.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v["pid"].as_i64());
            let _ = Command::new(berth_bin())
                .arg("--root")
                .arg(self.root())
                .args(["delete", "--force", id])
                .env_remove("BERTH_TRACE")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // If delete could not, kill the init this case started (only that pid, and only
            // while it is still the process the record names: alive and in our cgroups).
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok())
                && alive(pid)
                && self.cgroups.borrow().iter().any(|d| {
                    std::fs::read_to_string(d.join("cgroup.procs"))
                        .is_ok_and(|p| p.lines().any(|l| l == pid.to_string()))
                })
            {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
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
