//! End-to-end reliability through the `berth` binary (root, real kernel, busybox): 50
//! containers created, started and deleted in parallel leave no state, mount, cgroup,
//! process or fd behind, and `kill -9` of `berth create` 1-40 ms after it starts, then
//! `delete --force`, leaves no state, process, cgroup or mount behind either.

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_cli_support;
mod e2e_linux_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use e2e_cli_support::{berth_bin, ok, text};
use e2e_linux_support::{Rootfs, wait_until};
use serde_json::{Value, json};

fn main() {
    e2e_linux_support::run(&[
        (
            "fifty_parallel_containers_leave_nothing",
            fifty_parallel_containers_leave_nothing,
        ),
        (
            "kill_9_during_create_then_delete_force_leaves_nothing",
            kill_9_during_create_then_delete_force_leaves_nothing,
        ),
    ]);
}

/// A busybox bundle running `script`, with its own `--root`, cleaned up on drop. (Not
/// `e2e_cli_support::Env`: this one is shared by the threads of the parallel case.)
struct Env {
    rootfs: Rootfs,
    ids: std::sync::Mutex<Vec<String>>,
}

impl Env {
    fn new(script: &str) -> Env {
        let env = Env {
            rootfs: Rootfs::new(),
            ids: Default::default(),
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

    fn prefix(&self) -> String {
        self.rootfs.dir.path().to_string_lossy().into_owned()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        c.arg("--root")
            .arg(self.root())
            .args(args)
            .stdin(Stdio::null())
            .env_remove("BERTH_TRACE");
        c
    }

    /// `berth --root ROOT ARGS`, its output captured.
    fn berth(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `create` whose container outlives berth: output to null, returns the exit code.
    fn create(&self, id: &str) -> Option<i32> {
        self.command(&["create", "--bundle", &self.bundle(), id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .code()
    }

    fn track(&self, id: &str) {
        self.ids.lock().unwrap().push(id.to_owned());
    }

    fn status(&self, id: &str) -> String {
        let state: Value = serde_json::from_slice(&ok(&self.berth(&["state", id]))).unwrap();
        state["status"].as_str().unwrap().to_owned()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.ids.lock().unwrap().iter() {
            let _ = self
                .command(&["delete", "--force", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            for dir in cgroup_dirs_of(id) {
                kill_cgroup_members(&dir);
                for _ in 0..100 {
                    if !dir.exists() || std::fs::remove_dir(&dir).is_ok() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        let _ = std::fs::remove_dir_all(self.root());
    }
}

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// Every existing `berth/ID` cgroup directory, in every hierarchy under /sys/fs/cgroup.
fn cgroup_dirs_of(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    let mut candidates = vec![base.join("berth").join(id)];
    if let Ok(entries) = std::fs::read_dir(base) {
        for e in entries.flatten() {
            candidates.push(e.path().join("berth").join(id));
        }
    }
    for c in candidates {
        if c.is_dir() {
            found.push(c);
        }
    }
    found
}

/// SIGKILLs the processes of one container cgroup (only its own members).
fn kill_cgroup_members(dir: &Path) {
    for pid in pids_in(dir) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

fn pids_in(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Live processes whose cgroup (any hierarchy) is the container's `berth/ID`.
fn processes_in_cgroup_of(id: &str) -> Vec<u32> {
    let suffix = format!("/berth/{id}");
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cg) = std::fs::read_to_string(e.path().join("cgroup")) else {
            continue;
        };
        if cg
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .any(|p| p == suffix || p.starts_with(&format!("{suffix}/")))
        {
            pids.push(pid);
        }
    }
    pids
}

/// The mountinfo lines whose mount point lies below `prefix`.
fn mounts_mentioning(prefix: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.contains(prefix)))
        .map(str::to_owned)
        .collect()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn fifty_parallel_containers_leave_nothing() {
    const N: usize = 50;
    let env = Env::new("exit 0");
    let prefix = env.prefix();
    let ids: Vec<String> = (0..N).map(|i| unique(&format!("par{i}"))).collect();
    for id in &ids {
        env.track(id);
    }
    let mounts_before = mounts_mentioning(&prefix);
    let fds_before = open_fds();
    std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let env = &env;
                s.spawn(move || {
                    assert_eq!(env.create(id), Some(0), "create {id}");
                    ok(&env.berth(&["start", id]));
                    assert!(
                        wait_until(30, || env.status(id) == "stopped"),
                        "{id} never stopped"
                    );
                    ok(&env.berth(&["delete", id]));
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    assert_eq!(open_fds(), fds_before, "the test process's fds changed");
    assert_eq!(mounts_mentioning(&prefix), mounts_before, "mounts are left");
    assert_eq!(text(&ok(&env.berth(&["list", "-q"]))), "");
    for id in &ids {
        assert!(!env.root().join(id).exists(), "state of {id} is left");
        assert_eq!(cgroup_dirs_of(id), Vec::<PathBuf>::new(), "cgroups of {id}");
        assert_eq!(
            processes_in_cgroup_of(id),
            Vec::<u32>::new(),
            "procs of {id}"
        );
    }
}

fn kill_9_during_create_then_delete_force_leaves_nothing() {
    let env = Env::new("sleep 1000");
    let prefix = env.prefix();
    let mounts_before = mounts_mentioning(&prefix);
    for delay in [1u64, 3, 5, 10, 20, 40] {
        let id = unique(&format!("k9-{delay}"));
        env.track(&id);
        let mut child = env
            .command(&["create", "--bundle", &env.bundle(), &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        // Kill sends SIGKILL; a create that already finished is fine too.
        let _ = child.kill();
        child.wait().unwrap();
        let out = env.berth(&["delete", "--force", &id]);
        if !out.status.success() {
            let err = text(&out.stderr);
            assert!(
                err.contains("does not exist"),
                "delete --force {id} after kill at {delay}ms failed: {err}"
            );
        }
        assert!(
            !env.root().join(&id).exists(),
            "state of {id} is left (kill at {delay}ms)"
        );
        assert!(
            wait_until(5, || processes_in_cgroup_of(&id).is_empty()),
            "processes of {id} are left (kill at {delay}ms): {:?}",
            processes_in_cgroup_of(&id)
        );
        assert_eq!(
            cgroup_dirs_of(&id),
            Vec::<PathBuf>::new(),
            "cgroups of {id} are left (kill at {delay}ms)"
        );
        assert_eq!(
            mounts_mentioning(&prefix),
            mounts_before,
            "mounts are left (kill at {delay}ms)"
        );
    }
    assert_eq!(text(&ok(&env.berth(&["list", "-q"]))), "");
}
