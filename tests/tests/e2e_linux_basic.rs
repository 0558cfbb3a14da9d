//! End-to-end: the Linux backend executes plans for real (root, real kernel, busybox).
//!
//! These plans are made by hand, step by step, to pin the executor itself: the clone into
//! namespaces, the runtime/init protocol, the start barrier across two backends (as
//! `create` and `start` are two processes), exec and exit codes, state and pid files, the
//! trace, and rollback when either side fails. Each case cleans up after itself.

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_linux_support;

use std::path::Path;

use berth_backend_linux::error::Errno;
use berth_backend_linux::{LinuxBackend, LinuxError, Trace};
use berth_core::exec::{execute, execute_range};
use berth_core::plan::{
    Actor, ContainerPath, HostPath, Location, Namespace, NamespaceSet, Op, PidRef, Plan,
    PlanBuilder, SyncPoint,
};
use e2e_linux_support::{Capture, KillOnDrop, RemoveOnDrop, Rootfs, alive, wait_until};

fn main() {
    e2e_linux_support::run(&[
        (
            "run_prints_hello_and_returns_the_exit_code",
            run_prints_hello_and_returns_the_exit_code,
        ),
        (
            "create_then_start_from_a_second_backend",
            create_then_start_from_a_second_backend,
        ),
        (
            "init_failure_names_the_init_step_and_rolls_back",
            init_failure_names_the_init_step_and_rolls_back,
        ),
        (
            "runtime_failure_aborts_init_and_rolls_back",
            runtime_failure_aborts_init_and_rolls_back,
        ),
        (
            "fault_at_every_step_leaves_nothing",
            fault_at_every_step_leaves_nothing,
        ),
        ("init_is_in_new_namespaces", init_is_in_new_namespaces),
    ]);
}

fn h(p: &Path) -> HostPath {
    HostPath::new(p.to_string_lossy())
}

fn cp(p: &str) -> ContainerPath {
    ContainerPath::parse(p).unwrap()
}

/// What a hand-made lifecycle plan needs.
struct Lifecycle<'a> {
    rootfs: &'a Rootfs,
    id: &'a str,
    /// Adds init steps between `wait configured` and `signal created`.
    init_setup: Box<dyn FnOnce(&mut PlanBuilder) + 'a>,
    /// The command init execs, with the rootfs's busybox.
    script: &'a str,
}

/// `state-create, spawn, pid file, state creating, ⇄ configured, [init setup], ⇄ created,
/// state created, ⇄ start, exec, state running` — the shape of `plan_create`'s plans.
fn lifecycle(l: Lifecycle<'_>) -> (Plan, PidRef) {
    let state = l.rootfs.state_root().join(l.id);
    let mut b = PlanBuilder::new();
    let pid = b.pid("init.pid");
    b.runtime(Op::StateCreate { dir: h(&state) });
    b.runtime(Op::Spawn {
        ns: [
            Namespace::Pid,
            Namespace::Mount,
            Namespace::Uts,
            Namespace::Ipc,
        ]
        .into_iter()
        .collect(),
        pid,
    });
    b.runtime(Op::WritePidFile {
        path: h(&state.join("pid")),
        pid,
    });
    let write = |status: &str| Op::StateWrite {
        dir: h(&state),
        id: l.id.to_owned(),
        bundle: h(&l.rootfs.bundle()),
        pid,
        status: status.to_owned(),
        rootfs: h(&l.rootfs.root()),
        annotations: Default::default(),
        poststop: Vec::new(),
    };
    b.runtime(write("creating"));
    b.handoff(Actor::Runtime, SyncPoint::Configured);
    (l.init_setup)(&mut b);
    b.handoff(Actor::Init, SyncPoint::Created);
    b.runtime(write("created"));
    b.handoff(Actor::Runtime, SyncPoint::Start);
    b.init(Op::Exec {
        argv: vec![
            l.rootfs
                .root()
                .join("bin/busybox")
                .to_string_lossy()
                .into_owned(),
            "sh".to_owned(),
            "-c".to_owned(),
            l.script.to_owned(),
        ],
        env: vec!["PATH=/bin".to_owned()],
    });
    b.runtime(write("running"));
    let plan = b.finish();
    plan.check().unwrap();
    (plan, pid)
}

fn read_state(rootfs: &Rootfs, id: &str) -> serde_json::Value {
    let path = rootfs.state_root().join(id).join("state.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn run_prints_hello_and_returns_the_exit_code() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let (plan, pid_ref) = lifecycle(Lifecycle {
        rootfs: &rootfs,
        id: "c1",
        init_setup: Box::new(|_| {}),
        script: "echo hello; exit 3",
    });
    let trace_path = rootfs.dir.path().join("trace");
    let (out, writer) = Capture::new();
    let mut backend = LinuxBackend::new()
        .with_trace(Trace::open(&trace_path).unwrap())
        .with_stdio(None, Some(writer), None);
    let result = execute(&plan, &mut backend);
    let mut guard = KillOnDrop(backend.pid(pid_ref));
    result.unwrap();
    let pid = backend.pid(pid_ref).unwrap();
    assert_eq!(backend.wait_exit(&plan).unwrap(), 3);
    guard.0 = None;
    drop(backend);
    assert_eq!(out.read_all(), "hello\n");
    let pid_file = std::fs::read_to_string(rootfs.state_root().join("c1/pid")).unwrap();
    assert_eq!(pid_file, pid.to_string());
    let state = read_state(&rootfs, "c1");
    assert_eq!(state["status"], "running");
    assert_eq!(state["pid"], pid);
    assert_eq!(state["id"], "c1");
    // Both processes traced their own steps, in the plan's order: the trace is the plan.
    assert_eq!(
        std::fs::read_to_string(&trace_path).unwrap(),
        plan.to_string()
    );
}

fn create_then_start_from_a_second_backend() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let (plan, pid_ref) = lifecycle(Lifecycle {
        rootfs: &rootfs,
        id: "c2",
        init_setup: Box::new(|_| {}),
        script: "echo started",
    });
    let barrier = berth_core::planner::create::start_barrier(&plan).unwrap();
    let trace_path = rootfs.dir.path().join("trace");
    let (out, writer) = Capture::new();
    // `create`: everything before the barrier; then the backend (and its socket) is gone.
    let mut create = LinuxBackend::new()
        .with_trace(Trace::open(&trace_path).unwrap())
        .with_stdio(None, Some(writer), None);
    let created = execute_range(&plan, 0..barrier, &mut create);
    let guard = KillOnDrop(create.pid(pid_ref));
    created.unwrap();
    let pid = create.pid(pid_ref).unwrap();
    drop(create);
    assert_eq!(read_state(&rootfs, "c2")["status"], "created");
    let fifo = rootfs
        .state_root()
        .join("c2")
        .join(berth_backend_linux::EXEC_FIFO);
    assert!(fifo.exists());
    // Init waits at the barrier, with no runtime left.
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(alive(pid));
    // `start`: a fresh backend that knows only the pid, from the state file.
    let mut start = LinuxBackend::new().with_trace(Trace::open(&trace_path).unwrap());
    start.bind_pid(pid_ref, pid);
    execute_range(&plan, barrier..plan.steps.len(), &mut start).unwrap();
    assert_eq!(read_state(&rootfs, "c2")["status"], "running");
    assert!(!fifo.exists(), "start removes the fifo");
    // A second start finds nobody at the barrier.
    let mut again = LinuxBackend::new();
    again.bind_pid(pid_ref, pid);
    let err = execute_range(&plan, barrier..barrier + 1, &mut again).unwrap_err();
    assert!(
        matches!(err.source, LinuxError::NotAtBarrier { .. }),
        "{err:?}"
    );
    assert_eq!(start.wait_exit(&plan).unwrap(), 0);
    drop(guard);
    assert_eq!(out.read_all(), "started\n");
    assert_eq!(
        std::fs::read_to_string(&trace_path).unwrap(),
        plan.to_string()
    );
}

fn init_failure_names_the_init_step_and_rolls_back() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let root = h(&rootfs.root());
    let in_root = |p: &str| Location::InRoot {
        root: root.clone(),
        path: cp(p),
    };
    let (plan, pid_ref) = lifecycle(Lifecycle {
        rootfs: &rootfs,
        id: "c3",
        init_setup: Box::new(|b| {
            let made = b.made();
            b.init(Op::MkdirAll {
                path: in_root("/made/a/b"),
                mode: 0o755,
                made,
            });
            b.init(Op::Chdir {
                path: in_root("/no/such/dir"),
            });
        }),
        script: "true",
    });
    let mut backend = LinuxBackend::new();
    let err = execute(&plan, &mut backend).unwrap_err();
    let _guard = KillOnDrop(backend.pid(pid_ref));
    // The runtime's wait failed; its source names init's step and the call.
    let LinuxError::InInit {
        step,
        detail,
        errno,
    } = &err.source
    else {
        panic!("{err:?}");
    };
    assert!(step.starts_with("init cd ["), "{step}");
    assert!(step.ends_with("/no/such/dir"), "{step}");
    assert_eq!(detail, "openat2 failed");
    assert_eq!(*errno, Some(Errno::ENOENT));
    assert!(err.rollback.is_empty(), "{:?}", err.rollback);
    // The runtime removed what init made (init undoes nothing), killed init and removed
    // the state dir.
    assert!(!rootfs.root().join("made").exists());
    assert!(!rootfs.state_root().join("c3").exists());
    assert!(backend.pid(pid_ref).is_some_and(|p| !alive(p)));
}

fn runtime_failure_aborts_init_and_rolls_back() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let root = h(&rootfs.root());
    let mut b = PlanBuilder::new();
    let pid = b.pid("init.pid");
    let made = b.made();
    let state = rootfs.state_root().join("c4");
    b.runtime(Op::StateCreate { dir: h(&state) });
    b.runtime(Op::Spawn {
        ns: [Namespace::Pid, Namespace::Mount].into_iter().collect(),
        pid,
    });
    b.handoff(Actor::Runtime, SyncPoint::Configured);
    b.init(Op::MkdirAll {
        path: Location::InRoot {
            root,
            path: cp("/made/x"),
        },
        mode: 0o755,
        made,
    });
    b.handoff(Actor::Init, SyncPoint::Created);
    // Fails: no such directory for the pid file.
    b.runtime(Op::WritePidFile {
        path: HostPath::new("/nonexistent-berth-dir/pid"),
        pid,
    });
    let plan = b.finish();
    plan.check().unwrap();
    let mut backend = LinuxBackend::new();
    let err = execute(&plan, &mut backend).unwrap_err();
    let _guard = KillOnDrop(backend.pid(pid));
    assert_eq!(err.index, plan.steps.len() - 1, "{err:?}");
    assert!(err.rollback.is_empty(), "{:?}", err.rollback);
    let p = backend.pid(pid).unwrap();
    assert!(!alive(p), "init was killed and reaped");
    assert!(
        !rootfs.root().join("made").exists(),
        "the runtime removed init's mkdir"
    );
    assert!(!state.exists());
}

fn fault_at_every_step_leaves_nothing() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let root = h(&rootfs.root());
    let (plan, pid_ref) = lifecycle(Lifecycle {
        rootfs: &rootfs,
        id: "c5",
        init_setup: Box::new(|b| {
            let made = b.made();
            b.init(Op::MkdirAll {
                path: Location::InRoot {
                    root,
                    path: cp("/made/deep/dir"),
                },
                mode: 0o700,
                made,
            });
        }),
        script: "exit 0",
    });
    // berth's --root exists before any container; the state dir inside it must go.
    std::fs::create_dir_all(rootfs.state_root()).unwrap();
    let entries = |p: &Path| -> Vec<String> {
        let mut v: Vec<String> = walk(p);
        v.sort();
        v
    };
    let before = entries(rootfs.dir.path());
    let exec = plan
        .steps
        .iter()
        .position(|s| matches!(s.op, Op::Exec { .. }))
        .unwrap();
    assert!(
        exec + 1 < plan.steps.len(),
        "the sweep covers a step past exec"
    );
    for k in 0..plan.steps.len() {
        let (_out, writer) = Capture::new();
        let mut backend = LinuxBackend::new()
            .fail_at_step(k)
            .with_stdio(None, Some(writer), None);
        let result = execute(&plan, &mut backend);
        let guard = KillOnDrop(backend.pid(pid_ref));
        let err = match result {
            Err(e) => e,
            Ok(()) => panic!("step {k} did not fail"),
        };
        assert!(err.rollback.is_empty(), "step {k}: {:?}", err.rollback);
        if let Some(p) = backend.pid(pid_ref) {
            // Failing after exec (the last state write) kills the container's process.
            assert!(
                wait_until(5, || !alive(p)),
                "step {k}: init {p} still alive"
            );
        }
        drop(guard);
        // Also past exec (the last state write fails): the runtime removes what init made.
        assert_eq!(
            entries(rootfs.dir.path()),
            before,
            "step {k} left something"
        );
        // The failing step is the one asked for (an init step fails in init, and the
        // runtime's wait reports it).
        let failed_text = plan.step_text(&plan.steps[k]);
        let reported = match &err.source {
            LinuxError::InInit { step, .. } => step.clone(),
            other => other.step().to_owned(),
        };
        assert_eq!(reported, failed_text, "step {k}");
    }
}

/// Every path below `p` (files and directories), relative.
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
    out
}

fn init_is_in_new_namespaces() {
    let rootfs = Rootfs::new();
    let _state = RemoveOnDrop(rootfs.state_root());
    let mut b = PlanBuilder::new();
    let pid = b.pid("init.pid");
    b.runtime(Op::Spawn {
        ns: NamespaceSet::from_iter([
            Namespace::Pid,
            Namespace::Mount,
            Namespace::Uts,
            Namespace::Ipc,
            Namespace::Network,
            Namespace::Cgroup,
        ]),
        pid,
    });
    b.handoff(Actor::Runtime, SyncPoint::Configured);
    b.init(Op::SetHostname("berth-e2e".to_owned()));
    b.init(Op::Exec {
        argv: vec![
            rootfs
                .root()
                .join("bin/busybox")
                .to_string_lossy()
                .into_owned(),
            "sh".to_owned(),
            "-c".to_owned(),
            "echo $$; hostname".to_owned(),
        ],
        env: vec![],
    });
    let plan = b.finish();
    plan.check().unwrap();
    let (out, writer) = Capture::new();
    let mut backend = LinuxBackend::new().with_stdio(None, Some(writer), None);
    let result = execute(&plan, &mut backend);
    let _guard = KillOnDrop(backend.pid(pid));
    result.unwrap();
    let host_pid = backend.pid(pid).unwrap();
    for ns in ["pid", "mnt", "uts", "ipc", "net", "cgroup"] {
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        // Read while init runs; it may already have exited, then there is nothing to read.
        if let Ok(theirs) = std::fs::read_link(format!("/proc/{host_pid}/ns/{ns}")) {
            assert_ne!(ours, theirs, "{ns}");
        }
    }
    assert_eq!(backend.wait_exit(&plan).unwrap(), 0);
    drop(backend);
    // pid 1 in its own pid namespace; the hostname is its own.
    assert_eq!(out.read_all(), "1\nberth-e2e\n");
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim(),
        "berth-e2e"
    );
}
