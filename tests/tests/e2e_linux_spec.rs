//! End-to-end: `plan_create` of real configs, executed by the Linux backend.
//!
//! Each case writes a config (starting from `berth spec`'s default), plans it against this
//! host's probed facts, runs `create` and `start` as two backends, and checks from inside
//! the container (a busybox script) and from outside (state, cgroups, namespaces) that the
//! plan happened. Every case removes its cgroups, state and processes, also on failure.

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_linux_support;

use std::path::{Path, PathBuf};

use berth_backend_linux::{LinuxBackend, Trace};
use berth_core::config::{CreateOptions, CreateRequest};
use berth_core::exec::{execute, execute_range};
use berth_core::plan::{Actor, HostPath, Op, Plan, SyncPoint};
use berth_core::planner::create::{plan_create, start_barrier};
use e2e_linux_support::{Capture, KillOnDrop, RemoveOnDrop, Rootfs};
use serde_json::{Value, json};

fn main() {
    e2e_linux_support::run(&[
        ("default_spec_runs_for_real", default_spec_runs_for_real),
        ("trace_equals_dry_run", trace_equals_dry_run),
        (
            "rollback_at_every_step_leaves_no_trace",
            rollback_at_every_step_leaves_no_trace,
        ),
        (
            "rollback_with_a_terminal_and_a_read_only_rootfs",
            rollback_with_a_terminal_and_a_read_only_rootfs,
        ),
        ("user_and_rlimits_and_env", user_and_rlimits_and_env),
        (
            "a_symlink_out_of_the_rootfs_stays_inside",
            a_symlink_out_of_the_rootfs_stays_inside,
        ),
        ("seccomp_denies_mkdir", seccomp_denies_mkdir),
        ("hooks_get_the_state_on_stdin", hooks_get_the_state_on_stdin),
        (
            "a_hook_timeout_fails_create_and_rolls_back",
            a_hook_timeout_fails_create_and_rolls_back,
        ),
        (
            "terminal_goes_to_the_console_socket",
            terminal_goes_to_the_console_socket,
        ),
        ("user_namespace_maps_root", user_namespace_maps_root),
        (
            "joins_a_network_namespace_by_path",
            joins_a_network_namespace_by_path,
        ),
        ("no_pivot_uses_chroot", no_pivot_uses_chroot),
        ("memory_limit_is_written", memory_limit_is_written),
    ]);
}

/// A container id no other test run uses.
fn unique_id(name: &str) -> String {
    format!("e2e-{name}-{}", std::process::id())
}

/// The default `berth spec` config with `args`, no terminal, and `edit` applied.
fn config(args: &[&str], edit: impl FnOnce(&mut Value)) -> Value {
    let mut v: Value = serde_json::from_str(&berth_core::spec::default_config_json(None)).unwrap();
    v["process"]["terminal"] = json!(false);
    v["process"]["args"] = json!(args);
    edit(&mut v);
    v
}

/// Plans `config` for the bundle of `rootfs`.
fn plan(rootfs: &Rootfs, id: &str, config: &Value) -> (Plan, CreateRequest) {
    plan_with(rootfs, id, config, CreateOptions::default())
}

/// Plans `config` with command-line options.
fn plan_with(
    rootfs: &Rootfs,
    id: &str,
    config: &Value,
    options: CreateOptions,
) -> (Plan, CreateRequest) {
    let bundle = HostPath::new(rootfs.bundle().to_string_lossy());
    std::fs::write(
        rootfs.bundle().join("config.json"),
        serde_json::to_vec_pretty(config).unwrap(),
    )
    .unwrap();
    let cfg = berth_core::spec::parse_config(&config.to_string(), &bundle).unwrap();
    let request = CreateRequest {
        id: id.to_owned(),
        bundle,
        state_root: HostPath::new(rootfs.state_root().to_string_lossy()),
        config: cfg,
        options,
        home: None,
    };
    let facts = berth_backend_linux::probe::host_facts().unwrap();
    let plan = plan_create(&request, &facts).unwrap();
    plan.check().unwrap();
    (plan, request)
}

/// Removes the container's cgroup directories (and `berth/` where this guard saw none).
struct CgroupGuard {
    dirs: Vec<PathBuf>,
}

impl CgroupGuard {
    fn new(plan: &Plan) -> CgroupGuard {
        let mut dirs = Vec::new();
        for s in &plan.steps {
            if let Op::CgroupCreate { cgroup, .. } = &s.op {
                // Every missing level, outermost first, as the op would make them.
                let mut cur = PathBuf::from(cgroup.mount.as_str());
                for part in cgroup.path.split('/') {
                    cur.push(part);
                    if !cur.exists() {
                        dirs.push(cur.clone());
                    }
                }
            }
        }
        CgroupGuard { dirs }
    }

    fn left(&self) -> Vec<&PathBuf> {
        self.dirs.iter().filter(|d| d.exists()).collect()
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            for _ in 0..100 {
                if !d.exists() || std::fs::remove_dir(d).is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// What a run of a container gave.
struct Ran {
    stdout: String,
    code: i32,
    created_state: Value,
    /// `/proc/PID/cgroup` of init while it waited at the start barrier.
    cgroup_at_barrier: String,
}

/// `create` (up to the barrier) with one backend, `start` with another, then waits.
fn create_start_wait(rootfs: &Rootfs, id: &str, plan: &Plan, trace: Option<&Path>) -> Ran {
    create_start_wait_with(rootfs, id, plan, trace, |_| {})
}

/// Like [`create_start_wait`], calling `at_barrier(pid)` while init waits to be started.
fn create_start_wait_with(
    rootfs: &Rootfs,
    id: &str,
    plan: &Plan,
    trace: Option<&Path>,
    at_barrier: impl FnOnce(i32),
) -> Ran {
    let barrier = start_barrier(plan).unwrap();
    let pid_ref = plan
        .steps
        .iter()
        .find_map(|s| match s.op {
            Op::Spawn { pid, .. } => Some(pid),
            _ => None,
        })
        .unwrap();
    let (out, writer) = Capture::new();
    let mut create = LinuxBackend::new().with_stdio(None, Some(writer), None);
    if let Some(t) = trace {
        create = create.with_trace(Trace::open(t).unwrap());
    }
    let result = execute_range(plan, 0..barrier, &mut create);
    let mut guard = KillOnDrop(create.pid(pid_ref));
    if let Err(e) = &result {
        panic!("create failed: {e}: {:?}", std::error::Error::source(e));
    }
    let pid = create.pid(pid_ref).unwrap();
    drop(create);
    let state_path = rootfs.state_root().join(id).join("state.json");
    let created_state: Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    let cgroup_at_barrier = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    at_barrier(pid);
    let mut start = LinuxBackend::new();
    if let Some(t) = trace {
        start = start.with_trace(Trace::open(t).unwrap());
    }
    start.bind_pid(pid_ref, pid);
    execute_range(plan, barrier..plan.steps.len(), &mut start).unwrap();
    let code = start.wait_exit(plan).unwrap();
    guard.0 = None;
    drop(start);
    Ran {
        stdout: out.read_all(),
        code,
        created_state,
        cgroup_at_barrier,
    }
}

fn default_spec_runs_for_real() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let id = unique_id("default");
    let script = "hostname; echo pid=$$; \
        grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; \
        touch /x 2>/dev/null && echo root-rw || echo root-ro; \
        touch /proc/sys/kernel/x 2>/dev/null && echo sys-rw || echo sys-ro; \
        wc -c < /proc/timer_list; ls /sys/firmware | wc -l; echo $(ls /dev); \
        cat /proc/self/cgroup | grep -c :/$; exit 7";
    let cfg = config(&["sh", "-c", script], |_| {});
    let (plan, _) = plan(&rootfs, &id, &cfg);
    let cgroups = CgroupGuard::new(&plan);
    let ran = create_start_wait(&rootfs, &id, &plan, None);
    assert_eq!(ran.code, 7, "{}", ran.stdout);
    assert_eq!(ran.created_state["status"], "created");
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines[0], "berth", "{}", ran.stdout);
    assert_eq!(lines[1], "pid=1");
    // kill, net_bind_service, audit_write: bits 5, 10, 29.
    assert_eq!(lines[2], "CapEff:\t0000000020000420");
    assert_eq!(lines[3], "NoNewPrivs:\t1");
    assert_eq!(lines[4], "root-ro");
    assert_eq!(lines[5], "sys-ro");
    // Masked: a file (/dev/null bound over it) and a directory (an empty tmpfs). This
    // kernel has no /proc/kcore; these two have content on the host.
    assert!(
        !std::fs::read_to_string("/proc/timer_list")
            .unwrap()
            .is_empty()
    );
    assert!(std::fs::read_dir("/sys/firmware").unwrap().next().is_some());
    assert_eq!(lines[6].trim(), "0", "/proc/timer_list is masked");
    assert_eq!(lines[7].trim(), "0", "/sys/firmware is masked");
    let devs: Vec<&str> = lines[8].split_whitespace().collect();
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx",
    ] {
        assert!(
            ran.stdout.contains(d),
            "/dev/{d} missing: {devs:?} {}",
            ran.stdout
        );
    }
    // Inside its cgroup namespace, init sees its cgroups as roots; from the host, they are
    // berth/ID in every hierarchy.
    let roots: usize = lines.last().unwrap().trim().parse().unwrap();
    let host_view = ran.cgroup_at_barrier.lines().count();
    assert_eq!(roots, host_view, "{}", ran.stdout);
    for line in ran.cgroup_at_barrier.lines() {
        assert!(line.ends_with(&format!("/berth/{id}")), "{line}");
    }
    // The container's cgroups exist until delete; the guard removes them.
    assert!(!cgroups.left().is_empty());
}

fn trace_equals_dry_run() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let id = unique_id("trace");
    let cfg = config(&["true"], |_| {});
    let (plan, _) = plan(&rootfs, &id, &cfg);
    let _cgroups = CgroupGuard::new(&plan);
    let trace = rootfs.dir.path().join("trace");
    let ran = create_start_wait(&rootfs, &id, &plan, Some(&trace));
    assert_eq!(ran.code, 0);
    assert_eq!(std::fs::read_to_string(&trace).unwrap(), plan.to_string());
}

fn rollback_at_every_step_leaves_no_trace() {
    // A writable rootfs: the read-only one is the terminal sweep's.
    sweep("sweep", false, |v| v["root"]["readonly"] = json!(false));
}

fn rollback_with_a_terminal_and_a_read_only_rootfs() {
    sweep("sweeptty", true, |v| {
        v["root"]["readonly"] = json!(true);
        v["process"]["terminal"] = json!(true);
    });
}

/// Runs the whole plan of `edit`ed config (`run`: create and start in one process) once
/// for every step k, failing at k, and checks that nothing is left: no process, mount,
/// cgroup, state directory or file in the bundle, also for k after init dropped its
/// privileges and after its exec. With `terminal`, a console socket listens, and every
/// connection to it must be closed by then (no copy of it is left open anywhere).
fn sweep(name: &str, terminal: bool, edit: impl FnOnce(&mut Value)) {
    use std::io::Read;
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    std::fs::create_dir_all(rootfs.state_root()).unwrap();
    // Mount points init must make in the rootfs itself (no /proc, /sys; /mnt/a/b and a
    // file for binds), which the runtime removes; and paths init makes on its own tmpfs at
    // /dev that in the host's view name the image's own files, which must stay.
    let root = rootfs.root();
    std::fs::remove_dir(root.join("proc")).unwrap();
    std::fs::remove_dir(root.join("sys")).unwrap();
    std::fs::create_dir(root.join("dev/pts")).unwrap();
    std::fs::write(root.join("dev/null"), "the image's own").unwrap();
    std::os::unix::fs::symlink("/proc/self/fd", root.join("dev/fd")).unwrap();
    let source = rootfs.dir.path().join("source");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("file"), "x").unwrap();
    let id = unique_id(name);
    let socket = rootfs.dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    let cfg = config(&["true"], |v| {
        // A step after exec: failing there, the runtime still removes what init made.
        v["hooks"] = json!({"poststart": [{"path": "/bin/true", "args": ["true"]}]});
        let mounts = v["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/mnt/a/b", "type": "bind",
            "source": source.to_string_lossy(), "options": ["rbind", "ro"]}));
        mounts.push(json!({"destination": "/data/file", "type": "bind",
            "source": source.join("file").to_string_lossy(), "options": ["bind"]}));
        edit(v);
    });
    let options = CreateOptions {
        console_socket: terminal.then(|| HostPath::new(socket.to_string_lossy())),
        ..CreateOptions::default()
    };
    let (plan, _) = plan_with(&rootfs, &id, &cfg, options);
    assert_eq!(
        plan.steps
            .iter()
            .any(|s| matches!(s.op, Op::ConnectSocket { .. })),
        terminal,
        "{plan}"
    );
    let cgroups = CgroupGuard::new(&plan);
    let pid_ref = plan
        .steps
        .iter()
        .find_map(|s| match s.op {
            Op::Spawn { pid, .. } => Some(pid),
            _ => None,
        })
        .unwrap();
    let exec = plan
        .steps
        .iter()
        .position(|s| matches!(s.op, Op::Exec { .. }))
        .unwrap();
    let setuid = plan
        .steps
        .iter()
        .rposition(|s| matches!(s.op, Op::Setuid(_)))
        .unwrap();
    assert!(setuid < exec && exec + 1 < plan.steps.len(), "{plan}");
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    let files_before = walk(rootfs.dir.path());
    let mut connections = 0;
    for k in 0..plan.steps.len() {
        let (_out, writer) = Capture::new();
        let mut backend = LinuxBackend::new()
            .fail_at_step(k)
            .with_stdio(None, Some(writer), None);
        let result = execute(&plan, &mut backend);
        let _guard = KillOnDrop(backend.pid(pid_ref));
        let err = match result {
            Err(e) => e,
            Ok(()) => panic!("step {k} did not fail"),
        };
        let reported = match &err.source {
            berth_backend_linux::LinuxError::InInit { step, .. } => step.clone(),
            other => other.step().to_owned(),
        };
        assert_eq!(reported, plan.step_text(&plan.steps[k]), "step {k}");
        assert!(err.rollback.is_empty(), "step {k}: {:?}", err.rollback);
        if let Some(p) = backend.pid(pid_ref) {
            assert!(!e2e_linux_support::alive(p), "step {k}: init {p} alive");
        }
        drop(backend);
        assert!(cgroups.left().is_empty(), "step {k}: {:?}", cgroups.left());
        assert_eq!(walk(rootfs.dir.path()), files_before, "step {k}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .count();
        assert_eq!(mounts, mounts_before, "step {k}");
        // Every connection made is closed at both ends of the container's side.
        while let Ok((mut conn, _)) = listener.accept() {
            connections += 1;
            conn.set_nonblocking(false).unwrap();
            conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut rest = Vec::new();
            assert!(
                conn.read_to_end(&mut rest).is_ok(),
                "step {k}: the console socket is still open somewhere"
            );
        }
    }
    if terminal {
        let connect = plan
            .steps
            .iter()
            .position(|s| matches!(s.op, Op::ConnectSocket { .. }))
            .unwrap();
        assert_eq!(connections, plan.steps.len() - connect - 1);
    }
    // The sweep had something to remove: without a fault, init makes these in the rootfs.
    let (_out, writer) = Capture::new();
    let mut backend = LinuxBackend::new().with_stdio(None, Some(writer), None);
    let result = execute(&plan, &mut backend);
    let mut guard = KillOnDrop(backend.pid(pid_ref));
    result.unwrap();
    assert_eq!(backend.wait_exit(&plan).unwrap(), 0);
    guard.0 = None;
    for made in ["proc", "sys", "mnt/a/b", "data/file"] {
        assert!(root.join(made).exists(), "{made}");
    }
    assert_eq!(
        std::fs::read_to_string(root.join("dev/null")).unwrap(),
        "the image's own"
    );
}

fn user_and_rlimits_and_env() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let id = unique_id("user");
    let cfg = config(
        &[
            "sh",
            "-c",
            "id -u; id -g; id -G; ulimit -n; echo $FOO; pwd; umask",
        ],
        |v| {
            v["process"]["user"] =
                json!({"uid": 65534, "gid": 65534, "additionalGids": [5, 7], "umask": 63});
            v["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
            v["process"]["cwd"] = json!("/tmp");
            v["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 77, "hard": 88}]);
        },
    );
    let (plan, _) = plan(&rootfs, &id, &cfg);
    let _cgroups = CgroupGuard::new(&plan);
    let ran = create_start_wait(&rootfs, &id, &plan, None);
    assert_eq!(ran.code, 0, "{}", ran.stdout);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "65534",
            "65534",
            "65534 5 7",
            "77",
            "bar baz",
            "/tmp",
            "0077"
        ]
    );
}

fn a_symlink_out_of_the_rootfs_stays_inside() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    // rootfs/etc -> / : a mount on /etc/berth-e2e must land in the rootfs, not on the host.
    std::fs::remove_dir_all(rootfs.root().join("etc")).unwrap();
    std::os::unix::fs::symlink("/", rootfs.root().join("etc")).unwrap();
    let id = unique_id("symlink");
    let cfg = config(&["sh", "-c", "ls /berth-e2e-target"], |v| {
        let mounts = v["mounts"].as_array_mut().unwrap();
        mounts.push(json!({
            "destination": "/etc/berth-e2e-target",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid"]
        }));
    });
    let (plan, _) = plan(&rootfs, &id, &cfg);
    let _cgroups = CgroupGuard::new(&plan);
    let ran = create_start_wait(&rootfs, &id, &plan, None);
    assert_eq!(ran.code, 0, "{}", ran.stdout);
    assert!(
        !Path::new("/berth-e2e-target").exists(),
        "the host's / was touched"
    );
    assert!(rootfs.root().join("berth-e2e-target").is_dir());
}

/// Every path below `p`, sorted.
fn walk(p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let path = e.path();
            out.push(path.strip_prefix(p).unwrap().to_string_lossy().into_owned());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

fn seccomp_denies_mkdir() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let id = unique_id("seccomp");
    let cfg = config(
        &[
            "sh",
            "-c",
            "mkdir /tmp/x 2>/dev/null; echo rc=$?; grep ^Seccomp: /proc/self/status",
        ],
        |v| {
            v["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
            });
        },
    );
    let (plan, _) = plan(&rootfs, &id, &cfg);
    let _cgroups = CgroupGuard::new(&plan);
    let ran = create_start_wait(&rootfs, &id, &plan, None);
    assert_eq!(ran.code, 0, "{}", ran.stdout);
    assert_eq!(ran.stdout, "rc=1\nSeccomp:\t2\n");
}

fn hooks_get_the_state_on_stdin() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let id = unique_id("hooks");
    let out = rootfs.dir.path().join("hook-out");
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}.{name}", out.display())]});
    let cfg = config(&["true"], |v| {
        v["hooks"] = json!({
            "createRuntime": [hook("createRuntime")],
            "prestart": [hook("prestart")],
        });
    });
    let (plan, _) = plan(&rootfs, &id, &cfg);
    let _cgroups = CgroupGuard::new(&plan);
    let mut init_pid = 0;
    let ran = create_start_wait_with(&rootfs, &id, &plan, None, |p| init_pid = p);
    assert_eq!(ran.code, 0);
    for name in ["createRuntime", "prestart"] {
        let text = std::fs::read_to_string(format!("{}.{name}", out.display())).unwrap();
        let state: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(state["id"], id.as_str(), "{name}");
        assert_eq!(state["status"], "creating", "{name}");
        assert_eq!(state["pid"], init_pid, "{name}");
        assert_eq!(state["bundle"], rootfs.bundle().to_string_lossy().as_ref());
    }
}

fn a_hook_timeout_fails_create_and_rolls_back() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    std::fs::create_dir_all(rootfs.state_root()).unwrap();
    let id = unique_id("hooktimeout");
    let cfg = config(&["true"], |v| {
        v["hooks"] = json!({
            "createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}],
        });
    });
    let (plan, _) = plan(&rootfs, &id, &cfg);
    let cgroups = CgroupGuard::new(&plan);
    let barrier = start_barrier(&plan).unwrap();
    let started = std::time::Instant::now();
    let mut backend = LinuxBackend::new();
    let err = execute_range(&plan, 0..barrier, &mut backend).unwrap_err();
    let pid = plan.steps.iter().find_map(|s| match s.op {
        Op::Spawn { pid, .. } => Some(pid),
        _ => None,
    });
    let _guard = KillOnDrop(pid.and_then(|p| backend.pid(p)));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        matches!(
            err.source,
            berth_backend_linux::LinuxError::HookTimeout { seconds: 1, .. }
        ),
        "{err:?}"
    );
    assert!(err.rollback.is_empty(), "{:?}", err.rollback);
    assert!(cgroups.left().is_empty(), "{:?}", cgroups.left());
    assert!(!rootfs.state_root().join(&id).exists());
    if let Some(p) = pid.and_then(|p| backend.pid(p)) {
        assert!(!e2e_linux_support::alive(p));
    }
}

fn terminal_goes_to_the_console_socket() {
    use std::io::Read;
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let id = unique_id("tty");
    let socket = rootfs.dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let cfg = config(
        &["sh", "-c", "test -t 0 && test -t 1 && echo tty-ok; tty"],
        |v| {
            v["process"]["terminal"] = json!(true);
        },
    );
    let options = CreateOptions {
        console_socket: Some(HostPath::new(socket.to_string_lossy())),
        ..CreateOptions::default()
    };
    let (plan, _) = plan_with(&rootfs, &id, &cfg, options);
    let _cgroups = CgroupGuard::new(&plan);
    let mut master = None;
    let ran = create_start_wait_with(&rootfs, &id, &plan, None, |_| {
        // The connection and the fd wait in the socket's queue: create never blocks on us.
        let (conn, _) = listener.accept().unwrap();
        master = Some(berth_backend_linux::recv_fd(&conn).unwrap());
    });
    assert_eq!(ran.code, 0);
    let mut master = std::fs::File::from(master.unwrap());
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the last holder of the pty's peer is gone: then the master reads EIO.
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let out = String::from_utf8_lossy(&out);
    assert_eq!(out, "tty-ok\r\n/dev/pts/0\r\n");
}

fn user_namespace_maps_root() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let id = unique_id("userns");
    let cfg = config(
        &[
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; cat /proc/self/gid_map",
        ],
        |v| {
            let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
            ns.push(json!({"type": "user"}));
            v["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            v["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        },
    );
    let (plan, _) = plan(&rootfs, &id, &cfg);
    // The planner makes init the namespace's root once the maps are written (as runc's
    // nsexec does); else it keeps host uid 0, unmapped there, and cannot create files.
    let wait = plan
        .steps
        .iter()
        .position(|s| s.actor == Actor::Init && s.op == Op::Wait(SyncPoint::Configured))
        .unwrap();
    assert_eq!(plan.steps[wait + 1].op, Op::Setgid(0), "{plan}");
    assert_eq!(plan.steps[wait + 2].op, Op::Setuid(0), "{plan}");
    let _cgroups = CgroupGuard::new(&plan);
    let mut host_uid = String::new();
    let ran = create_start_wait_with(&rootfs, &id, &plan, None, |pid| {
        host_uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .unwrap()
            .to_owned();
    });
    assert_eq!(ran.code, 0, "{}", ran.stdout);
    let words: Vec<&str> = ran.stdout.split_whitespace().collect();
    assert_eq!(words, ["0", "0", "100000", "65536", "0", "100000", "65536"]);
    assert!(host_uid.contains("100000"), "{host_uid}");
}

fn joins_a_network_namespace_by_path() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let id = unique_id("netns");
    let nsfile = rootfs.dir.path().join("netns");
    std::fs::write(&nsfile, "").unwrap();
    let made = std::process::Command::new("unshare")
        .arg(format!("--net={}", nsfile.display()))
        .arg("true")
        .status()
        .unwrap();
    assert!(made.success());
    // Rootfs's drop unmounts it (it lies in the tempdir).
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&nsfile).unwrap());
    let cfg = config(&["sh", "-c", "readlink /proc/self/ns/net"], |v| {
        for ns in v["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!(nsfile.to_string_lossy());
            }
        }
    });
    let (plan, _) = plan(&rootfs, &id, &cfg);
    assert!(plan.steps.iter().any(|s| matches!(s.op, Op::Setns { .. })));
    let _cgroups = CgroupGuard::new(&plan);
    let ran = create_start_wait(&rootfs, &id, &plan, None);
    assert_eq!(ran.code, 0, "{}", ran.stdout);
    assert_eq!(ran.stdout, format!("net:[{ino}]\n"));
}

fn no_pivot_uses_chroot() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let id = unique_id("nopivot");
    let cfg = config(&["sh", "-c", "ls /bin/busybox && hostname"], |_| {});
    let options = CreateOptions {
        no_pivot: true,
        ..CreateOptions::default()
    };
    let (plan, _) = plan_with(&rootfs, &id, &cfg, options);
    assert!(plan.steps.iter().any(|s| matches!(s.op, Op::Chroot { .. })));
    let _cgroups = CgroupGuard::new(&plan);
    let ran = create_start_wait(&rootfs, &id, &plan, None);
    assert_eq!(ran.code, 0, "{}", ran.stdout);
    assert_eq!(ran.stdout, "/bin/busybox\nberth\n");
}

fn memory_limit_is_written() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let id = unique_id("memory");
    let cfg = config(&["true"], |v| {
        v["linux"]["resources"]["memory"] = json!({"limit": 67108864});
        v["linux"]["resources"]["pids"] = json!({"limit": 42});
    });
    let (plan, _) = plan(&rootfs, &id, &cfg);
    let _cgroups = CgroupGuard::new(&plan);
    let mut seen = (String::new(), String::new());
    let ran = create_start_wait_with(&rootfs, &id, &plan, None, |_| {
        let dir = |c: &str| format!("/sys/fs/cgroup/{c}/berth/{id}");
        seen.0 =
            std::fs::read_to_string(format!("{}/memory.limit_in_bytes", dir("memory"))).unwrap();
        seen.1 = std::fs::read_to_string(format!("{}/pids.max", dir("pids"))).unwrap();
    });
    assert_eq!(ran.code, 0);
    assert_eq!(seen.0.trim(), "67108864");
    assert_eq!(seen.1.trim(), "42");
}
