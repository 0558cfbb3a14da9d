//! The harness of the real-client tests: containerd and podman driving berth (and runc,
//! side by side) as their OCI runtime.
//!
//! - [`Containerd`]: a containerd of our own, on a private socket with private root and
//!   state dirs under a tempdir, with a namespace of its own; a busybox image imported from
//!   an OCI image archive built here (no registry). Stopped by pid when dropped.
//! - [`Podman`]: podman with private `--root`, `--runroot` and `--tmpdir`, cgroupfs, a
//!   cgroup parent of its own, and a busybox image imported from a rootfs tarball.
//! - [`runtimes`]: berth, then runc when installed (under CI it must be), and
//!   [`same_for_all`], which runs a case with each and asserts that they all saw the same.
//!
//! Invariant: whatever a test made goes when its guard drops, also when the test fails:
//! containers, tasks and images (through the client), then by force what is left: the
//! client's helper processes that name our tempdir or socket (by pid), the processes in our
//! cgroups, the cgroups, the mounts below the tempdir, the tempdir.

#![allow(dead_code)]

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::e2e_cli_support::berth_bin;
use crate::e2e_linux_support::{Rootfs, mount_points_under, wait_until};

/// Under CI (`CI=true`) nothing may be left out: a missing tool fails the test.
pub(crate) fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The path of `name` in `PATH`, if it is there.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The path of a tool the test cannot do without; fails the test when it is missing.
pub(crate) fn require(name: &str, package: &str) -> PathBuf {
    which(name).unwrap_or_else(|| {
        panic!("{name} is missing: apt-get install {package} (.ci/run installs it)")
    })
}

/// A number unique in this process, for names.
pub(crate) fn unique() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Output as text.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What a command did, in one line for messages.
pub(crate) fn show(out: &Output) -> String {
    format!(
        "{:?}, stdout {:?}, stderr {:?}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Asserts success; returns stdout.
pub(crate) fn ok(what: &str, out: &Output) -> String {
    assert!(out.status.success(), "{what} failed: {}", show(out));
    text(&out.stdout)
}

/// An OCI runtime under test.
#[derive(Clone, Debug)]
pub(crate) struct Runtime {
    /// `berth` or `runc`.
    pub(crate) name: &'static str,
    /// Its binary.
    pub(crate) bin: PathBuf,
}

/// berth, then runc when it is installed (under CI it must be: every case is compared).
pub(crate) fn runtimes() -> Vec<Runtime> {
    let mut out = vec![Runtime {
        name: "berth",
        bin: berth_bin().to_owned(),
    }];
    match which("runc") {
        Some(bin) => out.push(Runtime { name: "runc", bin }),
        None if under_ci() => panic!("runc is missing: apt-get install runc (.ci/run does)"),
        None => eprintln!("    runc is not installed: berth's results are not compared"),
    }
    out
}

/// What one runtime made a client show: labelled values, in the order observed.
pub(crate) type Observed = Vec<(String, String)>;

/// Runs `case` with every runtime (berth first) and asserts that each observed the same
/// as berth, naming every label that differs; prints each run's time. Returns berth's
/// observations, for the caller to check against what is expected.
pub(crate) fn same_for_all(what: &str, mut case: impl FnMut(&Runtime) -> Observed) -> Observed {
    let mut seen: Vec<(&'static str, Observed)> = Vec::new();
    for rt in runtimes() {
        let t0 = Instant::now();
        let observed = case(&rt);
        eprintln!("    {what}: {} took {:.2?}", rt.name, t0.elapsed());
        seen.push((rt.name, observed));
    }
    let (_, berth) = &seen[0];
    for (name, other) in &seen[1..] {
        if berth != other {
            let mut diff = String::new();
            let labels: Vec<&String> = berth.iter().chain(other.iter()).map(|(l, _)| l).collect();
            let mut done = Vec::new();
            for label in labels {
                if done.contains(&label) {
                    continue;
                }
                done.push(label);
                let b = lookup(berth, label);
                let o = lookup(other, label);
                if b != o {
                    diff.push_str(&format!("\n  {label}: berth {b:?}, {name} {o:?}"));
                }
            }
            panic!("{what}: berth and {name} differ:{diff}");
        }
    }
    seen.swap_remove(0).1
}

fn lookup<'a>(observed: &'a Observed, label: &str) -> Option<&'a str> {
    observed
        .iter()
        .find(|(l, _)| l == label)
        .map(|(_, v)| v.as_str())
}

/// The value observed under `label` (the test fails when there is none).
pub(crate) fn get<'a>(observed: &'a Observed, label: &str) -> &'a str {
    lookup(observed, label).unwrap_or_else(|| panic!("nothing observed as {label:?}"))
}

/// The exit code of a command, as text (`signal` when it had none).
pub(crate) fn code(out: &Output) -> String {
    out.status
        .code()
        .map_or_else(|| "signal".to_owned(), |c| c.to_string())
}

// ---------------------------------------------------------------------------------------
// The image.

/// The OCI name of this machine's architecture (busybox-static is the host's).
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The sha256 of a file, hex.
fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    let out = ok("sha256sum", &out);
    out.split_whitespace().next().unwrap().to_owned()
}

/// Writes `bytes` as a blob of an OCI layout; returns its digest and size.
fn blob_bytes(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let tmp = layout.join("blob.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    let digest = sha256_file(&tmp);
    std::fs::rename(&tmp, layout.join("blobs/sha256").join(&digest)).unwrap();
    (format!("sha256:{digest}"), bytes.len())
}

/// The busybox rootfs of the e2e tests, plus `/srv/greeting` and `/srv/sub/link` (what a
/// tmpfs with `tmpcopyup` must show), as a tarball of owner root.
pub(crate) fn busybox_tarball(dir: &Path) -> PathBuf {
    let rootfs = Rootfs::new();
    let root = rootfs.root();
    std::fs::create_dir_all(root.join("srv/sub")).unwrap();
    std::fs::write(root.join("srv/greeting"), "copied up\n").unwrap();
    std::os::unix::fs::symlink("../greeting", root.join("srv/sub/link")).unwrap();
    for d in ["var/tmp", "run"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let tar = dir.join("rootfs.tar");
    let out = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    ok("tar", &out);
    tar
}

/// An OCI image archive (`oci-layout`, `index.json`, blobs) of the busybox rootfs, named
/// `name`: what `ctr image import` takes.
pub(crate) fn busybox_oci_archive(dir: &Path, name: &str) -> PathBuf {
    let layer = busybox_tarball(dir);
    let layout = dir.join("oci");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let layer_digest = format!("sha256:{}", sha256_file(&layer));
    let layer_size = std::fs::metadata(&layer).unwrap().len();
    std::fs::rename(
        &layer,
        layout
            .join("blobs/sha256")
            .join(layer_digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    let config = serde_json::json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": { "Env": ["PATH=/bin"], "Cmd": ["sh"] },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    });
    let (config_digest, config_size) = blob_bytes(&layout, config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer_size,
        }],
    });
    let (manifest_digest, manifest_size) = blob_bytes(&layout, manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": { "org.opencontainers.image.ref.name": name },
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let archive = dir.join("image.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .output()
        .unwrap();
    ok("tar", &out);
    std::fs::remove_dir_all(&layout).unwrap();
    archive
}

// ---------------------------------------------------------------------------------------
// Forced cleanup.

/// Sends `signal` to one pid.
fn kill_pid(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Kills (by pid) every process whose command line contains `needle`, except us.
pub(crate) fn kill_processes_naming(needle: &str) {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            kill_pid(pid, "KILL");
        }
    }
}

/// The mount points of the cgroup hierarchies (v1 and v2).
fn cgroup_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let point = pre.split(' ').nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(point))
        })
        .collect()
}

/// The cgroup directories `rel` names in every hierarchy, and those below them, deepest
/// first.
pub(crate) fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
        out.push(dir.to_owned());
    }
    let mut out = Vec::new();
    for mount in cgroup_mounts() {
        let dir = mount.join(rel.trim_start_matches('/'));
        if dir.is_dir() {
            walk(&dir, &mut out);
        }
    }
    out
}

/// Kills what runs in the cgroups under `rel` (thawing frozen ones first) and removes
/// the cgroups.
pub(crate) fn remove_cgroup_tree(rel: &str) {
    let dirs = cgroup_dirs(rel);
    for d in &dirs {
        if d.join("freezer.state").exists() {
            let _ = std::fs::write(d.join("freezer.state"), "THAWED");
        }
        if d.join("cgroup.freeze").exists() {
            let _ = std::fs::write(d.join("cgroup.freeze"), "0");
        }
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            kill_pid(pid, "KILL");
        }
    }
    for d in &dirs {
        for _ in 0..200 {
            if !d.exists() || std::fs::remove_dir(d).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Lazily unmounts everything mounted at or below `dir`, deepest first.
pub(crate) fn unmount_below(dir: &Path) {
    let prefix = dir.to_string_lossy().into_owned();
    let mut mounts = mount_points_under(&prefix);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = Command::new("umount").args(["-l", &m]).status();
    }
}

// ---------------------------------------------------------------------------------------
// containerd.

/// A containerd of our own: private socket, root and state; a namespace of its own.
pub(crate) struct Containerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The namespace this test uses (also the parent cgroup of its containers).
    pub(crate) namespace: String,
    /// The imported busybox image.
    pub(crate) image: String,
}

impl Containerd {
    /// Starts containerd, waits until it answers, imports the busybox image.
    pub(crate) fn start() -> Containerd {
        let bin = require("containerd", "containerd");
        require("ctr", "containerd");
        require("containerd-shim-runc-v2", "containerd");
        let dir = tempfile::Builder::new()
            .prefix("berth-ctd-")
            .tempdir()
            .unwrap();
        let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        // No CRI (a Kubernetes front end we do not use), nothing on a TCP port or in the
        // system's default directories.
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
            root = p("root"),
            state = p("state"),
            sock = p("containerd.sock"),
            opt = p("opt"),
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new(bin)
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd {
            dir,
            child: Some(child),
            namespace: format!("berthtest-{}", unique()),
            image: "berthtest/busybox:latest".to_owned(),
        };
        let up = wait_until(20, || c.ctr(&["version"]).status.success());
        assert!(up, "containerd did not come up: {}", c.log_tail());
        let archive = busybox_oci_archive(c.dir.path(), &c.image);
        ok(
            "ctr image import",
            &c.ctr(&["image", "import", &archive.to_string_lossy()]),
        );
        c
    }

    /// The socket.
    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// A directory of this test's (for runtime roots).
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `ctr -a SOCKET -n NAMESPACE ARGS`, output captured, no stdin.
    pub(crate) fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).output().unwrap()
    }

    /// The `ctr` command line, for callers that need more control.
    pub(crate) fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a")
            .arg(self.socket())
            .args(["-n", &self.namespace])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// The flags of `ctr run` that make it use `rt`, with a runtime root of the test's.
    pub(crate) fn runtime_flags(&self, rt: &Runtime) -> Vec<String> {
        vec![
            "--runc-binary".to_owned(),
            rt.bin.to_string_lossy().into_owned(),
            "--runc-root".to_owned(),
            self.runtime_root(rt).to_string_lossy().into_owned(),
        ]
    }

    /// `--runc-root` of `rt`: the shim adds the namespace below it.
    pub(crate) fn runtime_root(&self, rt: &Runtime) -> PathBuf {
        self.path(&format!("{}-root", rt.name))
    }

    /// The containers `rt` still has state for (in this namespace).
    pub(crate) fn runtime_state_left(&self, rt: &Runtime) -> Vec<String> {
        let dir = self.runtime_root(rt).join(&self.namespace);
        let mut ids: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// The last warnings and errors in containerd's log.
    pub(crate) fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("level=info") && !l.contains("level=debug"))
            .collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Removes every task, container and image of our namespace, then the namespace.
    fn clean_namespace(&self) {
        let ids = |args: &[&str]| -> Vec<String> {
            text(&self.ctr(args).stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        };
        for id in ids(&["task", "ls", "-q"]) {
            let _ = self.ctr(&["task", "resume", &id]);
            let _ = self.ctr(&["task", "kill", "-a", "-s", "KILL", &id]);
            let _ = self.ctr(&["task", "delete", "-f", &id]);
        }
        for id in ids(&["container", "ls", "-q"]) {
            let _ = self.ctr(&["container", "rm", &id]);
        }
        for image in ids(&["image", "ls", "-q"]) {
            let _ = self.ctr(&["image", "rm", &image]);
        }
        let _ = self
            .ctr_cmd(&[])
            .args(["namespace", "rm", &self.namespace])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        if failing {
            eprintln!("    containerd's log (tail):\n{}", self.log_tail());
        }
        self.clean_namespace();
        if let Some(mut child) = self.child.take() {
            kill_pid(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Shims outlive containerd; each names our socket on its command line.
        kill_processes_naming(&self.socket().to_string_lossy());
        remove_cgroup_tree(&self.namespace);
        unmount_below(self.dir.path());
    }
}

// ---------------------------------------------------------------------------------------
// podman.

/// podman with a store, run root, tmpdir and cgroup parent of its own.
pub(crate) struct Podman {
    dir: tempfile::TempDir,
    /// The parent cgroup of every container (and conmon) of this test.
    pub(crate) cgroup_parent: String,
    /// The imported busybox image.
    pub(crate) image: String,
}

impl Podman {
    /// A fresh store with the busybox image, and one runtime wrapper per runtime.
    pub(crate) fn new() -> Podman {
        require("podman", "podman");
        require("conmon", "conmon");
        let dir = tempfile::Builder::new()
            .prefix("berth-pm-")
            .tempdir()
            .unwrap();
        let p = Podman {
            dir,
            cgroup_parent: format!("/berthtest-pm-{}", unique()),
            image: "localhost/berthtest/busybox:latest".to_owned(),
        };
        for rt in runtimes() {
            p.write_wrapper(&rt);
        }
        let tar = busybox_tarball(p.dir.path());
        ok(
            "podman import",
            &p.podman_as(None, &["import", "-q", &tar.to_string_lossy(), &p.image]),
        );
        p
    }

    /// podman passes the runtime no `--root` (and `--runtime-flag` is lost on the
    /// `container cleanup` that podman runs when a container exits), so each runtime is a
    /// script that gives it a state root of this test's and logs its arguments.
    fn write_wrapper(&self, rt: &Runtime) {
        let script = format!(
            "#!/bin/sh\necho \"$*\" >> '{log}'\nexec '{bin}' --root '{root}' \"$@\"\n",
            log = self.argv_log(rt).display(),
            bin = rt.bin.display(),
            root = self.state_root(rt).display(),
        );
        let path = self.wrapper(rt);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, script).unwrap();
        let mut perm = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&path, perm).unwrap();
    }

    /// The runtime script podman is given for `rt`.
    pub(crate) fn wrapper(&self, rt: &Runtime) -> PathBuf {
        self.dir.path().join("runtimes").join(rt.name)
    }

    /// The state root of `rt` (its `--root`).
    pub(crate) fn state_root(&self, rt: &Runtime) -> PathBuf {
        self.dir.path().join(format!("{}-state", rt.name))
    }

    /// Every command line podman ran `rt` with.
    pub(crate) fn argv_log(&self, rt: &Runtime) -> PathBuf {
        self.dir.path().join(format!("{}-argv.log", rt.name))
    }

    /// The containers `rt` still has state for.
    pub(crate) fn runtime_state_left(&self, rt: &Runtime) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.state_root(rt))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// podman's global flags: private dirs, cgroupfs, and `rt` as the runtime.
    fn global_flags(&self, rt: Option<&Runtime>) -> Vec<String> {
        let d = |name: &str| self.dir.path().join(name).to_string_lossy().into_owned();
        let mut flags = vec![
            "--root".to_owned(),
            d("root"),
            "--runroot".to_owned(),
            d("runroot"),
            "--tmpdir".to_owned(),
            d("tmp"),
            "--storage-driver".to_owned(),
            "overlay".to_owned(),
            "--cgroup-manager".to_owned(),
            "cgroupfs".to_owned(),
            "--events-backend".to_owned(),
            "file".to_owned(),
        ];
        if let Some(rt) = rt {
            flags.push("--runtime".to_owned());
            flags.push(self.wrapper(rt).to_string_lossy().into_owned());
        }
        flags
    }

    /// The flags every `run`/`create` of the tests takes: no network, our cgroup parent,
    /// and open-file and process limits no higher than ours (podman asks for 1048576 of
    /// each as root, which needs CAP_SYS_RESOURCE, and this machine's root has not got it).
    pub(crate) fn run_flags(&self) -> Vec<String> {
        [
            "--network",
            "none",
            "--cgroup-parent",
            &self.cgroup_parent,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// The podman command line with `rt` as the runtime.
    pub(crate) fn cmd(&self, rt: &Runtime, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.args(self.global_flags(Some(rt)))
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// `podman ARGS` with `rt` as the runtime, output captured.
    pub(crate) fn podman(&self, rt: &Runtime, args: &[&str]) -> Output {
        self.podman_as(Some(rt), args)
    }

    fn podman_as(&self, rt: Option<&Runtime>, args: &[&str]) -> Output {
        Command::new("podman")
            .args(self.global_flags(rt))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `podman run [run flags] EXTRA IMAGE CMD...` with `rt`.
    pub(crate) fn run(&self, rt: &Runtime, extra: &[&str], cmd: &[&str]) -> Output {
        let mut args: Vec<String> = vec!["run".to_owned()];
        args.extend(self.run_flags());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.push(self.image.clone());
        args.extend(cmd.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.podman(rt, &args)
    }

    /// The command line with the run flags, for `run -it` under tmux.
    pub(crate) fn shell_line(&self, rt: &Runtime, args: &[&str]) -> String {
        let mut words: Vec<String> = vec!["podman".to_owned()];
        words.extend(self.global_flags(Some(rt)));
        words.extend(args.iter().map(|s| (*s).to_owned()));
        words
            .iter()
            .map(|w| sh_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What podman ran the runtime with, for failure messages.
    pub(crate) fn argv_of(&self, rt: &Runtime) -> String {
        std::fs::read_to_string(self.argv_log(rt)).unwrap_or_default()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for rt in runtimes() {
                eprintln!(
                    "    podman ran {} with:\n{}",
                    rt.name,
                    self.argv_of(&rt).trim_end()
                );
            }
        }
        // Each container is removed with the runtime it was made with.
        let _ = self
            .podman_as(None, &["rm", "-a", "-f", "-t", "0"])
            .status
            .success();
        let _ = self.podman_as(None, &["rmi", "-a", "-f"]);
        // conmon (and a stray runtime) name our tempdir on their command lines.
        kill_processes_naming(&self.dir.path().to_string_lossy());
        remove_cgroup_tree(&self.cgroup_parent);
        unmount_below(self.dir.path());
    }
}

/// Quotes a word for sh.
pub(crate) fn sh_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&c))
    {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

// ---------------------------------------------------------------------------------------
// tmux.

/// A tmux server of our own (`-L NAME`), killed when dropped.
pub(crate) struct Tmux {
    socket: String,
}

impl Tmux {
    /// A server with one 120x30 session running `shell_line`, then a note of its exit code
    /// (and a pause, so the pane can still be read).
    pub(crate) fn start(shell_line: &str) -> Tmux {
        require("tmux", "tmux");
        let t = Tmux {
            socket: format!("berthtest-{}", unique()),
        };
        let line = format!("{shell_line}; echo EXITED=$?; sleep 60");
        let out = Command::new("tmux")
            .args(["-L", &t.socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-s", "t", "-x", "120", "-y", "30", &line])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        ok("tmux new-session", &out);
        t
    }

    /// Types `keys` and Enter.
    pub(crate) fn send_line(&self, keys: &str) {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "t", "-l", keys])
            .output()
            .unwrap();
        ok("tmux send-keys", &out);
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "t", "Enter"])
            .output()
            .unwrap();
        ok("tmux send-keys", &out);
    }

    /// Resizes the window (and its one pane) to `cols` x `rows`.
    pub(crate) fn resize(&self, cols: u16, rows: u16) {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "resize-window", "-t", "t"])
            .args(["-x", &cols.to_string(), "-y", &rows.to_string()])
            .output()
            .unwrap();
        ok("tmux resize-window", &out);
    }

    /// The pane's text.
    pub(crate) fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        text(&out.stdout)
    }

    /// Waits until the pane shows `needle` (at most `secs`); returns the screen.
    pub(crate) fn wait_for(&self, needle: &str, secs: u64) -> Result<String, String> {
        let mut screen = String::new();
        let seen = wait_until(secs, || {
            screen = self.screen();
            screen.contains(needle)
        });
        if seen { Ok(screen) } else { Err(screen) }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}
