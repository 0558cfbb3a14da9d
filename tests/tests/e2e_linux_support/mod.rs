//! Shared pieces of the end-to-end tests: a tiny single-threaded harness, a busybox rootfs
//! built in a tempdir, and guards that undo what a test made even when it fails.
//!
//! The harness is ours (`harness = false`) because libtest runs each test on a thread of
//! its own, and berth clones its init only from a single-threaded process.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One test case.
pub(crate) type Case = (&'static str, fn());

/// Runs the cases whose name contains every filter argument; prints libtest-style lines;
/// exits non-zero when one failed. Not being root fails every case: these tests never skip.
pub(crate) fn run(cases: &[Case]) {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<&Case> = cases
        .iter()
        .filter(|(name, _)| filters.iter().all(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let root = nix_geteuid_is_root();
    let mut failed = Vec::new();
    for (name, f) in &selected {
        let result = if root {
            std::panic::catch_unwind(f)
        } else {
            eprintln!("{name}: end-to-end tests need root (uid 0); they never skip");
            Err(Box::new("not root") as Box<dyn std::any::Any + Send>)
        };
        match result {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    let passed = selected.len() - failed.len();
    println!();
    if !failed.is_empty() {
        println!("failures:");
        for name in &failed {
            println!("    {name}");
        }
        println!();
    }
    println!(
        "test result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {} filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        cases.len() - selected.len()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}

fn nix_geteuid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|v| v.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// busybox applets linked in the test rootfs.
const APPLETS: &[&str] = &[
    "sh",
    "echo",
    "cat",
    "ps",
    "hostname",
    "domainname",
    "ls",
    "id",
    "sleep",
    "true",
    "false",
    "test",
    "grep",
    "readlink",
    "stat",
    "touch",
    "mkdir",
    "env",
    "pwd",
    "head",
    "mount",
    "umask",
    "ulimit",
    "wc",
    "tr",
];

/// A directory with a busybox-static root filesystem, removed on drop.
pub(crate) struct Rootfs {
    pub(crate) dir: tempfile::TempDir,
}

impl Rootfs {
    /// Builds `TMP/bundle/rootfs` with busybox and its applet links.
    pub(crate) fn new() -> Rootfs {
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "/bin/busybox is missing: apt-get install busybox-static"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("bundle/rootfs");
        for d in ["bin", "proc", "dev", "sys", "tmp", "etc", "root"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        for a in APPLETS {
            symlink("busybox", root.join("bin").join(a)).unwrap();
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        Rootfs { dir }
    }

    /// The rootfs directory.
    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().join("bundle/rootfs")
    }

    /// The bundle directory.
    pub(crate) fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    /// A fresh state root for berth (`--root`).
    pub(crate) fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The rootfs as text.
    pub(crate) fn root_str(&self) -> String {
        self.root().to_string_lossy().into_owned()
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        // Whatever a failed test left mounted below the tempdir goes first, deepest first,
        // or removing the tempdir would descend into (and empty) a bind-mounted source.
        let prefix = self.dir.path().to_string_lossy().into_owned();
        let mut mounts = mount_points_under(&prefix);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = std::process::Command::new("umount")
                .args(["-l", &m])
                .status();
        }
    }
}

/// Mount points (from our mountinfo) at or below `prefix`.
pub(crate) fn mount_points_under(prefix: &str) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(str::to_owned)
        .collect()
}

/// Kills a pid on drop (only this one pid) and reaps it if it is our child.
pub(crate) struct KillOnDrop(pub Option<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Removes a directory tree on drop (state dirs, cgroups are rmdir'd by their own guard).
pub(crate) struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A pipe whose write end is handed to init as its stdout; `read_all` collects what came.
pub(crate) struct Capture {
    reader: std::io::PipeReader,
}

impl Capture {
    /// A new pipe: the reader stays here, the writer goes to the backend.
    pub(crate) fn new() -> (Capture, std::os::fd::OwnedFd) {
        let (reader, writer) = std::io::pipe().unwrap();
        (Capture { reader }, writer.into())
    }

    /// Reads until every writer is closed.
    pub(crate) fn read_all(mut self) -> String {
        let mut s = String::new();
        self.reader.read_to_string(&mut s).unwrap();
        s
    }
}

/// Waits until `cond` holds, for at most `secs` seconds.
pub(crate) fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Whether a pid is alive and not a zombie.
pub(crate) fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st != "Z"))
        })
        .unwrap_or(false)
}
