//! End-to-end security regressions through the `berth` binary (root, real kernel,
//! busybox): the berth binary cannot be overwritten from a container (CVE-2019-5736), no
//! file descriptor of the runtime leaks into a container, and a container's working
//! directory is never outside its rootfs (CVE-2024-21626).
//!
//! Every case has its own `--root` in a tempdir and cleans up after itself even when it
//! fails (a guard deletes its containers with `delete --force`).

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_cli_support;
mod e2e_linux_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_core::plan::CAPABILITY_NAMES;
use e2e_linux_support::wait_until;
use serde_json::{Value, json};

use e2e_cli_support::*;

fn main() {
    e2e_linux_support::run(&[
        (
            "a_container_cannot_overwrite_the_berth_binary",
            a_container_cannot_overwrite_the_berth_binary,
        ),
        (
            "no_fd_of_the_runtime_leaks_into_the_container",
            no_fd_of_the_runtime_leaks_into_the_container,
        ),
        (
            "preserve_fds_passes_exactly_the_asked_fds",
            preserve_fds_passes_exactly_the_asked_fds,
        ),
        (
            "no_fd_of_the_runtime_leaks_into_an_exec",
            no_fd_of_the_runtime_leaks_into_an_exec,
        ),
        (
            "a_cwd_through_a_leaked_fd_is_refused",
            a_cwd_through_a_leaked_fd_is_refused,
        ),
        (
            "a_cwd_symlink_stays_inside_the_rootfs",
            a_cwd_symlink_stays_inside_the_rootfs,
        ),
        (
            "a_capability_berth_lacks_is_named",
            a_capability_berth_lacks_is_named,
        ),
    ]);
}

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// Reads the bundle's config.json, lets `edit` change it, writes it back.
fn edit_config(env: &Env, edit: impl FnOnce(&mut Value)) {
    let path = Path::new(&env.bundle()).join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// Waits up to `secs` for `path` to exist; panics naming it if it does not.
fn wait_for_file(path: &Path, secs: u64) {
    assert!(
        wait_until(secs, || path.exists()),
        "{} did not appear within {secs} s",
        path.display()
    );
}

/// The init pid of a created or running container, from `berth state`.
fn init_pid(env: &Env, id: &str) -> i64 {
    let state: Value = serde_json::from_slice(&ok(&env.berth(&["state", id]))).unwrap();
    state["pid"].as_i64().unwrap()
}

/// CVE-2019-5736. A privileged container (every capability, so the kernel's ptrace access
/// check lets it open another root process's `/proc/PID/exe`) holds an fd to the
/// executable of a second container's init while that init waits at the start barrier —
/// init is a clone of berth, so that executable is berth's. The second container is then
/// deleted, so nothing runs the executable any more (no ETXTBSY), and the first writes
/// through its fd. berth runs from a detached read-only bind mount of itself (or a sealed
/// memfd copy), so the write must be refused and the binary on disk stay as it was. The binary used is a copy in the test's
/// tempdir, so a regression corrupts only that copy.
fn a_container_cannot_overwrite_the_berth_binary() {
    let shared = tempfile::tempdir().unwrap();
    let shared_dir = shared.path().to_str().unwrap().to_owned();
    let env = Env::new(
        "while [ ! -e /shared/go ]; do sleep 0.02; done; \
         for p in /proc/[0-9]*; do \
           l=$(readlink $p/exe); \
           case \"$l\" in /bin/busybox|'') ;; *) exec 3<$p/exe; echo \"$l\" > /shared/link; break;; esac; \
         done; \
         echo done > /shared/opened; \
         while [ ! -e /shared/gone ]; do sleep 0.02; done; \
         if echo pwned >> /proc/self/fd/3; then echo wrote; else echo refused; fi > /shared/r.tmp; \
         busybox mv /shared/r.tmp /shared/result; \
         sleep 100",
    );
    let all_caps = host_bounding_caps();
    edit_config(&env, |v| {
        for set in ["bounding", "effective", "permitted", "inheritable"] {
            v["process"]["capabilities"][set] = json!(all_caps);
        }
        v["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/shared", "type": "bind", "source": shared_dir,
            "options": ["rbind", "rw"]
        }));
    });
    let copy = env.path("berth-copy");
    std::fs::copy(berth_bin(), &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let c1 = unique("cve5736-holder");
    env.create_started(&c1);
    let c1_pid = init_pid(&env, &c1);

    // The second container joins the first one's pid namespace, so its init is visible
    // there, and is created (not started) by the copy of berth.
    let bundle2 = env.path("bundle2");
    std::fs::create_dir(&bundle2).unwrap();
    let mut v: Value = serde_json::from_slice(
        &std::fs::read(Path::new(&env.bundle()).join("config.json")).unwrap(),
    )
    .unwrap();
    v["root"]["path"] = json!(format!("{}/rootfs", env.bundle()));
    v["process"]["args"] = json!(["true"]);
    v["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/shared");
    for ns in v["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "pid" {
            ns["path"] = json!(format!("/proc/{c1_pid}/ns/pid"));
        }
    }
    std::fs::write(bundle2.join("config.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    let c2 = unique("cve5736-target");
    env.track(&c2);
    let status = Command::new(&copy)
        .arg("--root")
        .arg(env.root())
        .args(["create", "--bundle", bundle2.to_str().unwrap(), &c2])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "create of {c2} by the copy failed");

    std::fs::write(shared.path().join("go"), "").unwrap();
    wait_for_file(&shared.path().join("opened"), 10);
    let link = std::fs::read_to_string(shared.path().join("link"))
        .unwrap_or_else(|_| panic!("the container found no berth process to open"));
    assert!(
        !link.starts_with(copy.to_str().unwrap()),
        "init's executable, seen from a container, is the binary on the host: {link:?}"
    );
    ok(&env.berth(&["delete", "--force", &c2]));
    std::fs::write(shared.path().join("gone"), "").unwrap();
    wait_for_file(&shared.path().join("result"), 10);
    let result = std::fs::read_to_string(shared.path().join("result")).unwrap();
    assert_eq!(
        result.trim(),
        "refused",
        "the container wrote to berth's executable"
    );
    assert!(
        std::fs::read(&copy).unwrap() == before,
        "the berth binary on the host changed"
    );
    ok(&env.berth(&["delete", "--force", &c1]));
    env.assert_nothing_left();
}

/// The names of the capabilities in this process's bounding set (a sandbox may lack some;
/// asking for one of those would fail the capset).
fn host_bounding_caps() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    let bits = u64::from_str_radix(hex, 16).unwrap();
    CAPABILITY_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits >> i & 1 == 1)
        .map(|(_, name)| *name)
        .collect()
}

/// The fd numbers open in the container's shell, one per line of `ls /proc/$$/fd`.
const LIST_FDS: &str = "ls /proc/$$/fd; true";

/// Runs `berth run` from a bash that first opens `extra` (bash redirections such as
/// `7</etc/hostname`, inherited without close-on-exec); returns stdout.
fn run_with_open_fds(env: &Env, extra: &str, args: &[&str]) -> String {
    let mut cmd = format!("exec {extra}; exec \"$0\" --root \"$1\"");
    for i in 0..args.len() {
        cmd.push_str(&format!(" \"${}\"", i + 2));
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(&cmd)
        .arg(berth_bin())
        .arg(env.root())
        .args(args)
        .stdin(Stdio::null())
        .env_remove("BERTH_TRACE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn fds(listing: &str) -> Vec<String> {
    listing.split_whitespace().map(str::to_owned).collect()
}

/// fds the caller left open (a file, a directory, a socket of its own) and every fd berth
/// opens itself (state directory, sync socket, exec fifo, cgroup files) are closed before
/// the container's process starts: it sees 0, 1 and 2 only.
fn no_fd_of_the_runtime_leaks_into_the_container() {
    let env = Env::new(LIST_FDS);
    let id = unique("fdleak");
    env.track(&id);
    let out = run_with_open_fds(
        &env,
        "7</etc/hostname 8</ 9<>/dev/null",
        &["run", "--bundle", &env.bundle(), &id],
    );
    assert_eq!(fds(&out), ["0", "1", "2"], "fds in the container: {out}");
    env.assert_nothing_left();
}

/// `--preserve-fds 2` passes fds 3 and 4 as they are, and nothing above.
fn preserve_fds_passes_exactly_the_asked_fds() {
    let env = Env::new("ls /proc/$$/fd; cat <&3; cat <&4; true");
    std::fs::write(env.path("three"), "from fd 3\n").unwrap();
    std::fs::write(env.path("four"), "from fd 4\n").unwrap();
    let id = unique("preserve");
    env.track(&id);
    let redirs = format!(
        "3<{} 4<{} 5</etc/hostname",
        env.path("three").display(),
        env.path("four").display()
    );
    let out = run_with_open_fds(
        &env,
        &redirs,
        &["run", "--preserve-fds", "2", "--bundle", &env.bundle(), &id],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["0", "1", "2", "3", "4", "from fd 3", "from fd 4"],
        "output: {out}"
    );
    env.assert_nothing_left();
}

/// An exec'd process, too, sees only 0, 1 and 2, whatever the caller had open.
fn no_fd_of_the_runtime_leaks_into_an_exec() {
    let env = Env::new("sleep 100");
    let id = unique("fdleak-exec");
    env.create_started(&id);
    let out = run_with_open_fds(
        &env,
        "7</etc/hostname 8</",
        &["exec", &id, "sh", "-c", LIST_FDS],
    );
    assert_eq!(fds(&out), ["0", "1", "2"], "fds in the exec: {out}");
    ok(&env.berth(&["delete", "--force", &id]));
    env.assert_nothing_left();
}

/// CVE-2024-21626: a `cwd` of `/proc/self/fd/N` would, with a leaked fd N of a host
/// directory, put the process's working directory outside the rootfs. berth resolves the
/// cwd inside the rootfs without following magic links, so every such cwd is refused,
/// whichever fds the caller had open, and nothing is left behind.
fn a_cwd_through_a_leaked_fd_is_refused() {
    let env = Env::new("pwd");
    for n in 3..=9 {
        edit_config(&env, |v| {
            v["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"))
        });
        let id = unique(&format!("cwd-fd{n}"));
        env.track(&id);
        let out = Command::new("bash")
            .arg("-c")
            .arg("exec 7</ 8</etc 9</sys/fs/cgroup; exec \"$@\"")
            .arg("bash")
            .arg(berth_bin())
            .arg("--root")
            .arg(env.root())
            .args(["run", "--bundle", &env.bundle(), &id])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "cwd /proc/self/fd/{n} was accepted; the container printed {:?}",
            text(&out.stdout)
        );
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("/proc/self/fd/{n}")),
            "the error names the cwd: {err}"
        );
        assert_eq!(text(&out.stdout), "");
    }
    env.assert_nothing_left();
}

/// A cwd that is a symlink climbing out of the rootfs (`/up -> ../../../..`) resolves
/// inside it, as if the rootfs were `/`: the process starts in the container's `/`.
fn a_cwd_symlink_stays_inside_the_rootfs() {
    let env = Env::new("pwd; ls /proc/self/cwd/ | grep -c busybox-marker");
    let rootfs = PathBuf::from(env.bundle()).join("rootfs");
    std::os::unix::fs::symlink("../../../../../../..", rootfs.join("up")).unwrap();
    std::fs::write(rootfs.join("busybox-marker"), "").unwrap();
    edit_config(&env, |v| v["process"]["cwd"] = json!("/up"));
    let id = unique("cwd-symlink");
    env.track(&id);
    let out = ok(&env.berth(&["run", "--bundle", &env.bundle(), &id]));
    let out = text(&out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.get(1), Some(&"1"), "cwd is the container's /: {out}");
    env.assert_nothing_left();
}

/// A capability the runtime itself does not hold cannot be granted: the error names it
/// instead of a bare EPERM, and nothing is left. (berth runs under `setpriv` with
/// CAP_SYS_NICE out of its bounding set, so root's permitted set lacks it.)
fn a_capability_berth_lacks_is_named() {
    let env = Env::new("true");
    edit_config(&env, |v| {
        for set in ["bounding", "effective", "permitted"] {
            v["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_NICE"));
        }
    });
    let id = unique("capnice");
    env.track(&id);
    let out = Command::new("setpriv")
        .args(["--bounding-set", "-sys_nice", "--"])
        .arg(berth_bin())
        .arg("--root")
        .arg(env.root())
        .args(["run", "--bundle", &env.bundle(), &id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = fails(&out);
    assert!(
        err.contains("capset failed: sys_nice not in berth's own permitted set"),
        "{err}"
    );
    env.assert_nothing_left();
}
