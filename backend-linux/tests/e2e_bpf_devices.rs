//! End-to-end: cgroup v2 device filtering with berth's eBPF program, on the real kernel.
//!
//! Makes a cgroup in the v2 hierarchy (on a hybrid host, its `unified` mount), attaches
//! device rules with a `cgroup-devices` step, moves a helper process (this binary, run with
//! `--helper`) into the cgroup and has it open and mknod device files; then replaces the
//! rules with a second step and checks that the new ones apply and one program is left.
//!
//! Root only: with the `e2e` feature, not being root fails the test (it never skips);
//! without the feature the test is reported ignored, as a libtest `#[ignore]` would be.
//! Our own harness (`harness = false`), so that the same binary can be the helper.

// A test binary: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use berth_backend_linux::LinuxBackend;
use berth_backend_linux::bpf::{PROG_NAME, attached_device_programs};
use berth_core::execute;
use berth_core::plan::{CgroupPath, DeviceRule, HostPath, Op, PlanBuilder};

const NAME: &str = "cgroup_v2_device_rules_apply_and_are_replaced";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--helper") {
        helper(&args[1..]);
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected = filters.iter().all(|f| NAME.contains(f.as_str()));
    let n = usize::from(selected);
    println!("\nrunning {n} test{}", if n == 1 { "" } else { "s" });
    let (passed, failed, ignored) = if !selected {
        (0, 0, 0)
    } else if !cfg!(feature = "e2e") {
        println!("test {NAME} ... ignored, needs root: --features berth-backend-linux/e2e");
        (0, 0, 1)
    } else if !nix::unistd::geteuid().is_root() {
        eprintln!("{NAME}: end-to-end tests need root (uid 0); they never skip");
        println!("test {NAME} ... FAILED");
        (0, 1, 0)
    } else if std::panic::catch_unwind(device_rules_apply_and_are_replaced).is_ok() {
        println!("test {NAME} ... ok");
        (1, 0, 0)
    } else {
        println!("test {NAME} ... FAILED");
        (0, 1, 0)
    };
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; {ignored} ignored; 0 measured; {} \
         filtered out\n",
        if failed == 0 { "ok" } else { "FAILED" },
        usize::from(!selected)
    );
    if failed != 0 {
        std::process::exit(101);
    }
}

/// The helper: waits for a line on stdin (sent once it is in the cgroup), then carries out
/// each action and prints `ok` or the errno's number, one line each. Actions:
/// `open-r:PATH`, `open-rw:PATH`, `mknod-c:PATH:MAJOR:MINOR`.
fn helper(actions: &[String]) {
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    for action in actions {
        let (verb, rest) = action.split_once(':').unwrap();
        let result = match verb {
            "open-r" => std::fs::File::open(rest).map(drop),
            "open-rw" => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(rest)
                .map(drop),
            "mknod-c" => {
                let mut parts = rest.split(':');
                let path = parts.next().unwrap();
                let major: u64 = parts.next().unwrap().parse().unwrap();
                let minor: u64 = parts.next().unwrap().parse().unwrap();
                nix::sys::stat::mknod(
                    path,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::from_bits_truncate(0o600),
                    nix::sys::stat::makedev(major, minor),
                )
                .map_err(std::io::Error::from)
            }
            _ => panic!("unknown action {action:?}"),
        };
        match result {
            Ok(()) => println!("ok"),
            Err(e) => println!("{}", e.raw_os_error().unwrap_or(-1)),
        }
    }
}

/// The cgroup v2 mount point (`/sys/fs/cgroup/unified` on a hybrid host).
fn v2_mount() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split_whitespace().next() == Some("cgroup2") {
            return PathBuf::from(left.split_whitespace().nth(4).unwrap());
        }
    }
    panic!("no cgroup2 mount in /proc/self/mountinfo")
}

/// A cgroup of the test and the helpers in it: killed and removed on drop, also when
/// the test fails.
struct Guard {
    dir: PathBuf,
    children: Vec<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.dir.exists() && std::fs::remove_dir(&self.dir).is_err() {
            if Instant::now() > deadline {
                eprintln!("could not remove {}", self.dir.display());
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Guard {
    /// Starts the helper with `actions`, moves it into the cgroup, lets it go and returns
    /// its answers.
    fn run_helper(&mut self, actions: &[String]) -> Vec<String> {
        let child = Command::new(std::env::current_exe().unwrap())
            .arg("--helper")
            .args(actions)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        let child = self.children.last_mut().unwrap();
        let mut stdin: ChildStdin = child.stdin.take().unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
        let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l == pid.to_string()),
            "helper {pid} not in the cgroup: {procs:?}"
        );
        stdin.write_all(b"go\n").unwrap();
        drop(stdin);
        let answers: Vec<String> = BufReader::new(stdout).lines().map(Result::unwrap).collect();
        let status = child.wait().unwrap();
        assert!(status.success(), "helper: {status}");
        assert_eq!(answers.len(), actions.len(), "{answers:?}");
        answers
    }

    /// Applies `rules` to the cgroup with a one-step plan.
    fn apply(&self, mount: &Path, name: &str, rules: Vec<DeviceRule>) {
        let mut b = PlanBuilder::new();
        b.runtime(Op::CgroupDevices {
            cgroup: CgroupPath {
                mount: HostPath::new(mount.to_string_lossy()),
                path: name.to_owned(),
            },
            rules,
        });
        let plan = b.finish();
        execute(&plan, &mut LinuxBackend::new()).unwrap();
    }

    /// The ids of the device programs attached, each checked to be berth's.
    fn programs(&self) -> Vec<u32> {
        let programs = attached_device_programs(&self.dir).unwrap();
        for p in &programs {
            assert_eq!(p.name, PROG_NAME, "{programs:?}");
        }
        programs.iter().map(|p| p.id).collect()
    }
}

fn rule(allow: bool, kind: char, major: Option<i64>, minor: Option<i64>, a: &str) -> DeviceRule {
    DeviceRule {
        allow,
        kind,
        major,
        minor,
        access: a.to_owned(),
    }
}

/// What the planner gives a container with runc's default config (its deny-all, then
/// runc's `AllowedDevices`), and a last rule denying /dev/zero.
fn runc_defaults_without_zero() -> Vec<DeviceRule> {
    let mut rules = vec![
        rule(false, 'a', None, None, "rwm"),
        rule(true, 'c', None, None, "m"),
        rule(true, 'b', None, None, "m"),
    ];
    for (major, minor) in [(1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9)] {
        rules.push(rule(true, 'c', Some(major), Some(minor), "rwm"));
    }
    rules.push(rule(true, 'c', Some(136), None, "rwm"));
    rules.push(rule(true, 'c', Some(5), Some(2), "rwm"));
    rules.push(rule(false, 'c', Some(1), Some(5), "rwm"));
    rules
}

fn device_rules_apply_and_are_replaced() {
    let mount = v2_mount();
    let name = format!("berth-e2e-bpf-{}", std::process::id());
    let dir = mount.join(&name);
    std::fs::create_dir(&dir).unwrap();
    let mut guard = Guard {
        dir,
        children: Vec::new(),
    };
    let nodes = tempfile::tempdir().unwrap();
    let node = |n: &str| nodes.path().join(n).to_string_lossy().into_owned();
    let eperm = nix::errno::Errno::EPERM as i32;
    let eperm = eperm.to_string();
    assert_eq!(
        guard.programs(),
        Vec::<u32>::new(),
        "a new cgroup has no program"
    );

    // Before any rule: everything goes.
    let actions = vec!["open-r:/dev/zero".to_owned()];
    assert_eq!(guard.run_helper(&actions), ["ok"]);

    // runc's defaults, /dev/zero denied.
    guard.apply(&mount, &name, runc_defaults_without_zero());
    let first = guard.programs();
    assert_eq!(first.len(), 1, "{first:?}");
    let actions = vec![
        "open-rw:/dev/null".to_owned(),
        "open-r:/dev/zero".to_owned(),
        "open-rw:/dev/full".to_owned(),
        "open-r:/dev/kmsg".to_owned(),
        format!("mknod-c:{}:1:3", node("null1")),
        format!("open-rw:{}", node("null1")),
        format!("mknod-c:{}:1:1", node("mem1")),
        format!("open-r:{}", node("mem1")),
    ];
    let want = ["ok", &eperm, "ok", &eperm, "ok", "ok", "ok", &eperm];
    assert_eq!(guard.run_helper(&actions), want, "{actions:?}");

    // Replaced: /dev/zero read-only, /dev/null read and write without mknod, nothing else.
    guard.apply(
        &mount,
        &name,
        vec![
            rule(true, 'c', Some(1), Some(5), "r"),
            rule(true, 'c', Some(1), Some(3), "rw"),
        ],
    );
    let second = guard.programs();
    assert_eq!(
        second.len(),
        1,
        "one program after the replacement: {second:?}"
    );
    assert_ne!(second, first, "the program was replaced");
    let actions = vec![
        "open-rw:/dev/null".to_owned(),
        "open-r:/dev/zero".to_owned(),
        "open-rw:/dev/zero".to_owned(),
        "open-rw:/dev/full".to_owned(),
        format!("mknod-c:{}:1:3", node("null2")),
        format!("open-rw:{}", node("null1")),
    ];
    let want = ["ok", "ok", &eperm, &eperm, &eperm, "ok"];
    assert_eq!(guard.run_helper(&actions), want, "{actions:?}");

    // A third replacement still leaves one program, and denies /dev/zero again.
    guard.apply(&mount, &name, vec![rule(true, 'c', Some(1), Some(3), "rw")]);
    assert_eq!(guard.programs().len(), 1);
    let actions = vec!["open-r:/dev/zero".to_owned()];
    assert_eq!(guard.run_helper(&actions), [eperm.as_str()]);
}
