//! The trace-equals-dry-run check for every golden fixture (`cases/create/*.json`) that can
//! run on this machine: the fixture's config.json becomes a real busybox bundle (its host
//! paths — bind sources, hook binaries, namespace files, the console socket — replaced by
//! ones the test makes), `berth create --dry-run` prints the plan, `berth --trace F create`
//! executes it, and the trace must be the plan, line for line, up to the start barrier.
//! Then the container is started, must exit 0, and is deleted, leaving nothing behind.
//!
//! A fixture that cannot run here must say why in [`cannot_run_here`]; a new fixture that
//! is in neither list fails the test, so none is skipped by accident.

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_cli_support;
mod e2e_linux_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_tests::{Case, cases_dir};
use e2e_linux_support::{KillOnDrop, wait_until};
use serde_json::json;

use e2e_cli_support::*;

fn main() {
    e2e_linux_support::run(&[(
        "trace_equals_the_dry_run_for_every_fixture",
        trace_equals_the_dry_run_for_every_fixture,
    )]);
}

/// Fixtures that cannot run on this machine, and why.
fn cannot_run_here(name: &str) -> Option<&'static str> {
    match name {
        "cgroup_v2_all_resources" if !unified_host() => {
            Some("a cgroup v2 host (this one is v1 hybrid); e2e_cgroup_v2 runs v2 in a qemu guest")
        }
        _ => None,
    }
}

/// Whether /sys/fs/cgroup is a cgroup v2 mount.
fn unified_host() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn trace_equals_the_dry_run_for_every_fixture() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(cases_dir().join("create"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 17, "fixtures: {paths:?}");
    let mut ran = 0;
    for path in &paths {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if let Some(why) = cannot_run_here(&name) {
            println!("  {name}: cannot run here: needs {why}");
            continue;
        }
        let started = std::time::Instant::now();
        run_fixture(&name, &Case::load(path));
        println!("  {name}: trace == dry run ({:?})", started.elapsed());
        ran += 1;
    }
    assert!(ran >= 16, "only {ran} fixtures ran");
}

/// What a fixture needs on the host, made for real, and undone on drop.
struct HostSide {
    /// Replacements of the fixture's fixed paths by real ones, longest first.
    subst: Vec<(String, String)>,
    /// Processes holding namespaces the fixture joins.
    _holders: Vec<Holder>,
    /// The console socket's listener, kept open while the container is created.
    _console: Option<std::os::unix::net::UnixListener>,
}

/// A process in new namespaces (`unshare FLAGS`) that sleeps; returns the pid whose
/// `/proc/PID/ns/*` are the new namespaces, and the processes to kill at the end.
fn namespace_holder(flags: &[&str]) -> (i32, Holder) {
    let child = Command::new("unshare")
        .args(flags)
        .args(["sleep", "1000"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let unshare_pid = child.id() as i32;
    let mut holder = Holder {
        inner: KillOnDrop(None),
        unshare: child,
    };
    if !flags.contains(&"--fork") {
        return (unshare_pid, holder);
    }
    // With --fork, the sleep is unshare's child, and the first process of the namespace.
    let children = format!("/proc/{unshare_pid}/task/{unshare_pid}/children");
    let mut pid = 0;
    assert!(
        wait_until(5, || {
            pid = std::fs::read_to_string(&children)
                .unwrap_or_default()
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            pid != 0
        }),
        "unshare {flags:?} made no child"
    );
    holder.inner = KillOnDrop(Some(pid));
    (pid, holder)
}

/// An `unshare ... sleep` holding namespaces: on drop its sleep (when forked) is killed
/// by pid, then unshare itself is killed and reaped.
struct Holder {
    inner: KillOnDrop,
    unshare: std::process::Child,
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(std::mem::replace(&mut self.inner, KillOnDrop(None)));
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

impl HostSide {
    fn new(case: &Case, env: &Env, rootfs: &Path) -> HostSide {
        let mut subst = Vec::new();
        let mut holders = Vec::new();
        let host = env.path("host");
        let real = |p: &str| format!("{}{p}", host.display());
        for d in &case.fake.dirs {
            std::fs::create_dir_all(real(d)).unwrap();
            subst.push((d.clone(), real(d)));
        }
        let mut console = None;
        for (f, content) in &case.fake.files {
            let is_console = case
                .options
                .console_socket
                .as_ref()
                .is_some_and(|s| s.as_str() == f);
            std::fs::create_dir_all(Path::new(&real(f)).parent().unwrap()).unwrap();
            if is_console {
                console = Some(std::os::unix::net::UnixListener::bind(real(f)).unwrap());
            } else if content.starts_with("#!") {
                // A hook binary: on the host, and in the rootfs at the same (replaced)
                // path for the hooks that run after the root switch.
                let script = "#!/bin/sh\nexit 0\n";
                for at in [
                    PathBuf::from(real(f)),
                    rootfs.join(real(f).trim_start_matches('/')),
                ] {
                    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
                    std::fs::write(&at, script).unwrap();
                    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o755)).unwrap();
                }
            } else {
                std::fs::write(real(f), content).unwrap();
            }
            subst.push((f.clone(), real(f)));
        }
        for ns_file in &case.fake.ns_files {
            let (flags, proc_name): (&[&str], &str) = if ns_file.ends_with("/ns/pid") {
                (&["--pid", "--fork"], "pid")
            } else {
                // /var/run/netns/NAME: a network namespace, as `ip netns add` would make.
                (&["--net"], "net")
            };
            let (pid, holder) = namespace_holder(flags);
            holders.push(holder);
            subst.push((ns_file.clone(), format!("/proc/{pid}/ns/{proc_name}")));
        }
        subst.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        HostSide {
            subst,
            _holders: holders,
            _console: console,
        }
    }

    fn replace(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (from, to) in &self.subst {
            out = out.replace(&format!("\"{from}\""), &format!("\"{to}\""));
        }
        out
    }
}

/// The fixture's rootfs needs beyond busybox: the users, groups and home its process
/// names, and the files its device and mount lists expect.
fn prepare_rootfs(case: &Case, rootfs: &Path) {
    if let Some(home) = &case.home {
        std::fs::create_dir_all(rootfs.join(home.trim_start_matches('/'))).unwrap();
        std::fs::write(
            rootfs.join("etc/passwd"),
            format!(
                "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::{home}:/bin/sh\n\
                 nobody:x:65534:65534:nobody:/:/bin/false\n"
            ),
        )
        .unwrap();
        std::fs::write(
            rootfs.join("etc/group"),
            "root:x:0:\napp:x:1000:\nextra:x:1001:app\nnogroup:x:65534:\n",
        )
        .unwrap();
    }
}

/// Whether this host has a v1 hierarchy (or v2 controller) that provides `file` for a
/// cgroup, e.g. `hugetlb` / `blkio.bfq.weight`: looked up under /sys/fs/cgroup.
fn cgroup_file_exists(hierarchy: &str, file: &str) -> bool {
    Path::new("/sys/fs/cgroup")
        .join(hierarchy)
        .join(file)
        .exists()
}

/// The `major:minor` of a real (non-loop) block device of this machine.
fn a_block_device() -> (i64, i64) {
    let mut devs: Vec<PathBuf> = std::fs::read_dir("/sys/block")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("loop"))
        .collect();
    devs.sort();
    let dev = std::fs::read_to_string(devs[0].join("dev")).unwrap();
    let (major, minor) = dev.trim().split_once(':').unwrap();
    (major.parse().unwrap(), minor.parse().unwrap())
}

/// Drops the resources this machine's kernel cannot enforce (a hugetlb or net_cls hierarchy
/// that is not mounted, blkio weights without a weight-capable I/O scheduler) and points
/// device throttles at a block device that exists; returns a note for each change.
fn adapt_to_host(config: &mut serde_json::Value) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(res) = config
        .get_mut("linux")
        .and_then(|l| l.get_mut("resources"))
        .and_then(|r| r.as_object_mut())
    else {
        return notes;
    };
    if unified_host() {
        return notes;
    }
    if res.contains_key("hugepageLimits") && !cgroup_file_exists("hugetlb", "") {
        res.remove("hugepageLimits");
        notes.push("without hugepageLimits: no hugetlb hierarchy is mounted here".into());
    }
    if res.contains_key("network") && !cgroup_file_exists("net_cls", "") {
        res.remove("network");
        notes.push(
            "without network (classID, priorities): no net_cls/net_prio hierarchy here".into(),
        );
    }
    if let Some(bio) = res.get_mut("blockIO").and_then(|b| b.as_object_mut()) {
        let weights = cgroup_file_exists("blkio", "blkio.weight")
            || cgroup_file_exists("blkio", "blkio.bfq.weight");
        if !weights {
            for k in ["weight", "leafWeight", "weightDevice"] {
                if bio.remove(k).is_some() {
                    notes.push(format!("without blockIO.{k}: no blkio weight file here"));
                }
            }
        }
        let (major, minor) = a_block_device();
        for (k, list) in bio.iter_mut() {
            for dev in list.as_array_mut().into_iter().flatten() {
                dev["major"] = json!(major);
                dev["minor"] = json!(minor);
            }
            if k.starts_with("throttle") {
                notes.push(format!(
                    "blockIO.{k} on {major}:{minor}, a block device of this machine"
                ));
            }
        }
    }
    notes
}

fn run_fixture(name: &str, case: &Case) {
    let env = Env::new("true");
    let rootfs = PathBuf::from(env.bundle()).join("rootfs");
    prepare_rootfs(case, &rootfs);
    let host = HostSide::new(case, &env, &rootfs);
    let mut config = case.config.clone();
    config["root"]["path"] = json!("rootfs");
    // The process must exit 0 and by itself in busybox: keep the fixture's args if they do.
    config["process"]["args"] = json!(["sh", "-c", "exit 0"]);
    for note in adapt_to_host(&mut config) {
        println!("  {name}: {note}");
    }
    let config = host.replace(&serde_json::to_string_pretty(&config).unwrap());
    std::fs::write(Path::new(&env.bundle()).join("config.json"), &config).unwrap();

    let id = format!("fx-{}-{}", name.replace('_', "-"), std::process::id());
    let mut flags: Vec<String> = Vec::new();
    if case.options.no_pivot {
        flags.push("--no-pivot".into());
    }
    if let Some(sock) = &case.options.console_socket {
        flags.push("--console-socket".into());
        flags.push(
            host.replace(&format!("\"{}\"", sock.as_str()))
                .trim_matches('"')
                .to_owned(),
        );
    }
    let mut create = vec!["create".to_owned(), "--bundle".into(), env.bundle()];
    create.extend(flags);
    create.push(id.clone());
    let create: Vec<&str> = create.iter().map(String::as_str).collect();

    env.track_create(&id, &create);
    let mut dry_args = create.clone();
    dry_args.insert(1, "--dry-run");
    let dry = text(&ok(&env.berth(&dry_args)));
    let barrier = dry
        .lines()
        .position(|l| l.ends_with(" runtime signal start"))
        .unwrap_or_else(|| panic!("{name}: the plan has no start barrier:\n{dry}"));
    let trace = env.path("trace");
    let trace_arg = trace.to_string_lossy().into_owned();
    let mut real = vec!["--trace", &trace_arg];
    real.extend(&create);
    let (code, err) = env.berth_detached(&real);
    assert_eq!(code, 0, "{name}: create failed: {err}");
    let traced = std::fs::read_to_string(&trace).unwrap();
    let expected: String = dry
        .lines()
        .take(barrier)
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(traced, expected, "{name}: the trace is not the dry run");

    ok(&env.berth(&["start", &id]));
    assert!(
        wait_until(10, || env.status(&id) == "stopped"),
        "{name}: the container did not stop"
    );
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
}
