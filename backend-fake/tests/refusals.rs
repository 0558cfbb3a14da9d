//! Each impossible step is refused with its reason, and the steps before it are rolled
//! back without errors.

// Test helpers outside #[test] fns unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

mod common;

use berth_backend_fake::{FakeError, FakeHost};
use berth_core::exec::{Backend, execute};
use berth_core::plan::{
    Actor, CapSet, CgroupPath, DeviceKind, HookKind, IdMapKind, IdMapping, Location, MountFlag,
    MountFlags, Namespace, NsSource, Op, PidRef, Plan, PlanBuilder, Propagation, SyncPoint,
};
use common::*;

/// Runs `plan`, which must be refused at its last step; returns the error.
fn refused(plan: &Plan, facts: &berth_core::HostFacts) -> FakeError {
    refused_on(plan, host(facts))
}

fn refused_on(plan: &Plan, mut fake: FakeHost) -> FakeError {
    let before = fake.state();
    let e = execute(plan, &mut fake).expect_err("the plan was to be refused");
    assert_eq!(
        e.index,
        plan.steps.len() - 1,
        "refused early: {e}: {}",
        e.source
    );
    assert!(e.rollback.is_empty(), "rollback errors: {:?}", e.rollback);
    assert!(fake.state() == before, "the refusal left the host changed");
    e.source
}

/// A plan with init spawned in `kinds` and handed control.
fn spawned(kinds: &[Namespace]) -> (PlanBuilder, PidRef) {
    let mut b = PlanBuilder::new();
    let pid = b.pid("init.pid");
    b.runtime(Op::Spawn { ns: ns(kinds), pid });
    b.handoff(Actor::Runtime, SyncPoint::Configured);
    (b, pid)
}

/// `spawned` plus rslave and the rootfs bound onto itself.
fn with_root() -> (PlanBuilder, PidRef) {
    let (mut b, pid) = spawned(&KINDS);
    b.init(Op::SetPropagation {
        target: Location::Host(hp("/")),
        propagation: Propagation::Private,
        recursive: true,
    });
    b.init(bind(ROOT, in_root("/"), true));
    (b, pid)
}

#[test]
fn mount_onto_a_missing_directory() {
    let (mut b, _) = with_root();
    b.init(fs_mount("proc", in_root("/proc"), &[], ""));
    let e = refused(&b.finish(), &v2());
    assert_eq!(
        e.to_string(),
        "mount target [/b/rootfs]/proc does not exist"
    );
}

#[test]
fn pivot_root_to_a_non_mount_point() {
    let (mut b, _) = spawned(&KINDS);
    b.init(Op::SetPropagation {
        target: Location::Host(hp("/")),
        propagation: Propagation::Slave,
        recursive: true,
    });
    b.init(Op::PivotRoot { new_root: hp(ROOT) });
    let e = refused(&b.finish(), &v2());
    assert_eq!(e.to_string(), "pivot_root: /b/rootfs is not a mount point");
}

#[test]
fn pivot_root_under_a_shared_root_and_in_the_host_namespace() {
    // Without making / private or slave first, the root is still shared.
    let (mut b, _) = spawned(&KINDS);
    b.init(bind(ROOT, in_root("/"), true));
    let e = refused(&b.finish(), &v2());
    assert!(matches!(e, FakeError::Propagates { .. }), "{e}");
    let (mut b, _) = spawned(&[Namespace::Pid]);
    b.init(Op::PivotRoot { new_root: hp(ROOT) });
    let e = refused(&b.finish(), &v2());
    assert_eq!(e, FakeError::HostRootSwitch { op: "pivot_root" });
}

#[test]
fn cgroup_file_the_layout_lacks() {
    let mut b = PlanBuilder::new();
    let memory = CgroupPath {
        mount: hp("/sys/fs/cgroup/memory"),
        path: "berth/c1".to_owned(),
    };
    let made = b.made();
    b.runtime(Op::CgroupCreate {
        cgroup: memory.clone(),
        made,
    });
    b.runtime(Op::CgroupWrite {
        cgroup: memory,
        file: "memory.max".to_owned(),
        value: "1M".to_owned(),
    });
    let e = refused(&b.finish(), &v1());
    assert_eq!(
        e.to_string(),
        "cgroup file /sys/fs/cgroup/memory/berth/c1/memory.max does not exist in this layout"
    );
    // On v2, a controller's files appear only when the parent enables it.
    let mut b = PlanBuilder::new();
    let made = b.made();
    b.runtime(Op::CgroupCreate {
        cgroup: cg("berth/c1"),
        made,
    });
    b.runtime(Op::CgroupWrite {
        cgroup: cg("berth/c1"),
        file: "pids.max".to_owned(),
        value: "10".to_owned(),
    });
    let e = refused(&b.finish(), &v2());
    assert!(matches!(e, FakeError::CgroupFileMissing { .. }), "{e}");
}

#[test]
fn setns_into_nothing() {
    let (mut b, _) = spawned(&KINDS);
    b.init(Op::Setns {
        ns: Namespace::Network,
        from: NsSource::Path(hp("/var/run/netns/x")),
    });
    let e = refused(&b.finish(), &v2());
    assert_eq!(e.to_string(), "setns: no namespace at /var/run/netns/x");
    // A namespace file joins; /proc/PID/ns of a live process too.
    let (mut b, pid) = spawned(&KINDS);
    b.init(Op::Setns {
        ns: Namespace::Network,
        from: NsSource::Path(hp("/var/run/netns/n1")),
    });
    let fd = b.fd("init.net");
    b.handoff(Actor::Init, SyncPoint::NamespacesReady);
    b.runtime(Op::OpenNs {
        of: pid,
        ns: Namespace::Network,
        fd,
    });
    b.runtime(Op::Setns {
        ns: Namespace::Uts,
        from: NsSource::Fd(fd),
    });
    let e = refused(&b.finish(), &v2());
    assert!(matches!(e, FakeError::NamespaceKind { .. }), "{e}");
}

#[test]
fn exec_before_the_start_barrier() {
    let (mut b, _) = spawned(&KINDS);
    b.init(Op::Exec {
        argv: vec!["/bin/true".to_owned()],
        env: Vec::new(),
    });
    let e = refused(&b.finish(), &v2());
    assert_eq!(e.to_string(), "exec before the start barrier");
}

#[test]
fn exec_of_a_missing_binary() {
    let (mut b, _) = with_root();
    b.init(Op::PivotRoot { new_root: hp(ROOT) });
    b.handoff(Actor::Init, SyncPoint::Created);
    b.handoff(Actor::Runtime, SyncPoint::Start);
    b.init(Op::Exec {
        argv: vec!["bash".to_owned()],
        env: vec!["PATH=/usr/bin:/bin".to_owned()],
    });
    let e = refused(&b.finish(), &v2());
    assert_eq!(e.to_string(), "exec: \"bash\": executable file not found");
}

#[test]
fn a_handle_used_before_it_is_bound() {
    let mut b = PlanBuilder::new();
    let pid = b.pid("init.pid");
    b.runtime(Op::CgroupAttach {
        cgroup: cg(""),
        pid,
    });
    let plan = b.finish();
    let mut fake = host(&v2());
    let e = fake.apply(&plan, &plan.steps[0]).unwrap_err();
    assert_eq!(e.to_string(), "$init.pid used before it is bound");
}

#[test]
fn state_dir_of_a_taken_id() {
    let mut b = PlanBuilder::new();
    b.runtime(Op::StateCreate {
        dir: hp("/run/berth/c1"),
    });
    let plan = b.finish();
    let e = refused_on(&plan, host(&v2()).with_dir("/run/berth/c1"));
    assert_eq!(e.to_string(), "state dir /run/berth/c1 exists");
    // The state root itself must exist.
    let mut b = PlanBuilder::new();
    b.runtime(Op::StateCreate {
        dir: hp("/nowhere/c1"),
    });
    let e = refused(&b.finish(), &v2());
    assert!(matches!(e, FakeError::Missing { .. }), "{e}");
}

#[test]
fn mknod_over_an_existing_node() {
    let mut b = PlanBuilder::new();
    b.runtime(Op::Mknod {
        path: Location::Host(hp("/x")),
        kind: DeviceKind::Char,
        major: 1,
        minor: 3,
        mode: 0o666,
        uid: 0,
        gid: 0,
    });
    let e = refused_on(&b.finish(), host(&v2()).with_file("/x", ""));
    assert_eq!(e.to_string(), "mknod: /x exists");
}

#[test]
fn cgroup_create_of_an_existing_cgroup_joins_it() {
    // Not a refusal: cgroup-create is `mkdir -p`, as on Linux (a second container under
    // `berth/` on v2 creates the shared parent again). The second one made nothing, so a
    // failure after it removes only what the first made.
    let mut b = PlanBuilder::new();
    for _ in 0..2 {
        let made = b.made();
        b.runtime(Op::CgroupCreate {
            cgroup: cg("berth/c1"),
            made,
        });
    }
    b.runtime(Op::CgroupWrite {
        cgroup: cg("berth/c1"),
        file: "no.such.file".to_owned(),
        value: "1".to_owned(),
    });
    let e = refused(&b.finish(), &v2());
    assert!(matches!(e, FakeError::CgroupFileMissing { .. }), "{e}");
}

#[test]
fn init_before_spawn_and_after_exec() {
    let mut b = PlanBuilder::new();
    b.init(Op::NoNewPrivs);
    let plan = b.finish();
    let mut fake = host(&v2());
    assert_eq!(fake.apply(&plan, &plan.steps[0]), Err(FakeError::NoInit));
    let (mut b, _) = spawned(&KINDS);
    b.handoff(Actor::Init, SyncPoint::Created);
    b.handoff(Actor::Runtime, SyncPoint::Start);
    b.init(Op::Exec {
        argv: vec!["/b/rootfs/bin/busybox".to_owned()],
        env: Vec::new(),
    });
    b.init(Op::NoNewPrivs);
    let e = refused(&b.finish(), &v2());
    assert_eq!(e, FakeError::AfterExec { pid: 1000 });
}

#[test]
fn a_hook_that_is_not_there() {
    let (mut b, pid) = spawned(&KINDS);
    b.handoff(Actor::Init, SyncPoint::NamespacesReady);
    b.runtime(Op::RunHook {
        kind: HookKind::Prestart,
        index: 0,
        hook: hook("/usr/libexec/missing"),
        pid,
    });
    let e = refused(&b.finish(), &v2());
    assert_eq!(
        e.to_string(),
        "hook prestart[0] /usr/libexec/missing not found"
    );
}

#[test]
fn umount_of_a_non_mount_point_and_busy_removals() {
    let (mut b, _) = with_root();
    b.init(Op::Umount {
        target: in_root("/etc"),
        detach: false,
    });
    let e = refused(&b.finish(), &v2());
    assert_eq!(
        e.to_string(),
        "umount: [/b/rootfs]/etc is not a mount point"
    );

    // remove-made of a directory someone filled meanwhile.
    let mut b = PlanBuilder::new();
    let made = b.made();
    b.runtime(Op::MkdirAll {
        path: Location::Host(hp("/srv/a")),
        mode: 0o755,
        made,
    });
    b.runtime(Op::Symlink {
        target: "x".to_owned(),
        link: Location::Host(hp("/srv/a/l")),
    });
    b.runtime(Op::RemoveMade { made });
    let e = refused(&b.finish(), &v2());
    assert_eq!(e.to_string(), "remove-made: /srv/a is not empty");
}

#[test]
fn cgroup_with_a_live_member_and_controllers_not_offered() {
    let mut b = PlanBuilder::new();
    let made = b.made();
    b.runtime(Op::CgroupCreate {
        cgroup: cg("berth/c1"),
        made,
    });
    let pid = b.pid("init.pid");
    b.runtime(Op::Spawn {
        ns: ns(&KINDS),
        pid,
    });
    b.runtime(Op::CgroupAttach {
        cgroup: cg("berth/c1"),
        pid,
    });
    b.runtime(Op::CgroupRemove {
        cgroup: cg("berth/c1"),
    });
    let e = refused(&b.finish(), &v2());
    assert!(
        e.to_string()
            .starts_with("cgroup-remove: /sys/fs/cgroup/berth/c1 is busy: processes [1000]"),
        "{e}"
    );
    let mut b = PlanBuilder::new();
    let made = b.made();
    b.runtime(Op::CgroupEnable {
        cgroup: cg(""),
        controllers: vec!["rdma".to_owned()],
        made,
    });
    let e = refused(&b.finish(), &v2());
    assert!(matches!(e, FakeError::ControllerUnavailable { .. }), "{e}");
}

#[test]
fn a_mount_that_would_propagate_to_the_host() {
    let (mut b, _) = spawned(&KINDS);
    let made = b.made();
    b.init(Op::MkdirAll {
        path: Location::Host(hp("/mnt/x")),
        mode: 0o755,
        made,
    });
    b.init(fs_mount("tmpfs", Location::Host(hp("/mnt/x")), &[], ""));
    let e = refused(&b.finish(), &v2());
    assert!(
        e.to_string()
            .starts_with("mount /mnt/x: the parent mount / is shared"),
        "{e}"
    );
}

#[test]
fn console_without_devpts_and_send_fd_over_a_non_socket() {
    let (mut b, _) = with_root();
    b.init(Op::PivotRoot { new_root: hp(ROOT) });
    let master = b.fd("console.master");
    b.init(Op::SetupConsole {
        master,
        keep_console: false,
        size: None,
    });
    let e = refused(&b.finish(), &v2());
    assert_eq!(
        e.to_string(),
        "setup-console: /dev/pts (devpts) is not a mount point"
    );
    let (mut b, _) = with_root();
    for (dir, fstype) in [("/dev", "tmpfs"), ("/dev/pts", "devpts")] {
        let made = b.made();
        b.init(Op::MkMountPoint {
            path: in_root(dir),
            source: None,
            made,
        });
        b.init(fs_mount(fstype, in_root(dir), &[], ""));
    }
    b.init(Op::PivotRoot { new_root: hp(ROOT) });
    let master = b.fd("console.master");
    b.init(Op::SetupConsole {
        master,
        keep_console: false,
        size: None,
    });
    // Only a connected socket can carry the master.
    b.init(Op::SendFd {
        fd: master,
        socket: master,
    });
    let e = refused(&b.finish(), &v2());
    assert_eq!(
        e.to_string(),
        "send-fd: $console.master is not a connected socket"
    );
}

#[test]
fn connecting_to_a_missing_socket() {
    let mut b = PlanBuilder::new();
    let fd = b.fd("console.socket");
    b.runtime(Op::ConnectSocket {
        path: hp("/run/none.sock"),
        fd,
    });
    let e = refused(&b.finish(), &v2());
    assert_eq!(e.to_string(), "connect: /run/none.sock does not exist");
}

#[test]
fn read_only_mounts_and_sysctls() {
    let (mut b, _) = with_root();
    b.init(Op::Remount {
        target: in_root("/"),
        flags: MountFlags::of(&[MountFlag::Bind, MountFlag::Ro]),
    });
    let made = b.made();
    b.init(Op::MkdirAll {
        path: in_root("/data"),
        mode: 0o755,
        made,
    });
    let e = refused(&b.finish(), &v2());
    assert_eq!(
        e.to_string(),
        "mkdir -p: /b/rootfs/data is on a read-only mount"
    );

    let (mut b, _) = spawned(&KINDS);
    b.init(Op::Sysctl {
        key: "kernel.panic".to_owned(),
        value: "1".to_owned(),
    });
    let e = refused(&b.finish(), &v2());
    assert_eq!(
        e.to_string(),
        "sysctl kernel.panic is not namespaced: it would change the host"
    );

    let (mut b, _) = spawned(&KINDS);
    b.init(Op::Sysctl {
        key: "net.ipv4.ip_forward".to_owned(),
        value: "1".to_owned(),
    });
    b.init(Op::Sysctl {
        key: "kernel.shmmax".to_owned(),
        value: "1".to_owned(),
    });
    b.init(Op::SetPropagation {
        target: Location::Host(hp("/")),
        propagation: Propagation::Private,
        recursive: true,
    });
    b.init(Op::ReadonlyPath {
        path: Location::Host(hp("/proc/sys")),
    });
    b.init(Op::Sysctl {
        key: "net.ipv4.ip_forward".to_owned(),
        value: "0".to_owned(),
    });
    let e = refused(&b.finish(), &v2());
    assert_eq!(
        e.to_string(),
        "sysctl: /proc/sys/net/ipv4/ip_forward is on a read-only mount"
    );
}

#[test]
fn privileges_once_dropped_are_gone() {
    let (mut b, _) = spawned(&KINDS);
    b.init(Op::CapSet {
        effective: CapSet(0),
        permitted: CapSet(1),
        inheritable: CapSet(0),
        ambient: CapSet(0),
    });
    b.init(Op::CapSet {
        effective: CapSet(3),
        permitted: CapSet(3),
        inheritable: CapSet(0),
        ambient: CapSet(0),
    });
    let e = refused(&b.finish(), &v2());
    assert!(
        matches!(e, FakeError::NotPermitted { op: "cap-set", .. }),
        "{e}"
    );

    // Without no_new_privs, a filter needs CAP_SYS_ADMIN, gone after setuid.
    let (mut b, _) = spawned(&KINDS);
    b.init(Op::Setuid(1000));
    b.init(Op::Seccomp(berth_core::plan::SeccompProfile {
        default_action: berth_core::plan::SeccompAction::Allow,
        architectures: Vec::new(),
        flags: Vec::new(),
        rules: Vec::new(),
        listener_path: None,
    }));
    let e = refused(&b.finish(), &v2());
    assert!(
        matches!(e, FakeError::NotPermitted { op: "seccomp", .. }),
        "{e}"
    );

    // Raising a hard limit needs CAP_SYS_RESOURCE.
    let (mut b, _) = spawned(&KINDS);
    b.init(Op::Setuid(1000));
    b.init(Op::SetRlimit {
        resource: berth_core::plan::Rlimit::RlimitNofile,
        soft: 1024,
        hard: 1 << 30,
    });
    let e = refused(&b.finish(), &v2());
    assert!(
        matches!(
            e,
            FakeError::NotPermitted {
                op: "setrlimit",
                ..
            }
        ),
        "{e}"
    );
}

fn idmap(c: u32, h: u32, size: u32) -> IdMapping {
    IdMapping {
        container_id: c,
        host_id: h,
        size,
    }
}

/// The runtime spawns init in a new user namespace and writes `maps`.
fn with_maps(maps: &[(IdMapKind, Vec<IdMapping>)], setgroups_deny: bool) -> (PlanBuilder, PidRef) {
    let mut b = PlanBuilder::new();
    let pid = b.pid("init.pid");
    b.runtime(Op::Spawn {
        ns: ns(&[Namespace::User, Namespace::Mount]),
        pid,
    });
    if setgroups_deny {
        b.runtime(Op::WriteSetgroups { pid, allow: false });
    }
    for (kind, mappings) in maps {
        b.runtime(Op::WriteIdMap {
            pid,
            kind: *kind,
            mappings: mappings.clone(),
        });
    }
    (b, pid)
}

#[test]
fn id_maps_are_written_once_and_checked() {
    let (b, _) = with_maps(
        &[
            (IdMapKind::Uid, vec![idmap(0, 100_000, 65536)]),
            (IdMapKind::Uid, vec![idmap(0, 200_000, 65536)]),
        ],
        false,
    );
    let e = refused(&b.finish(), &v2());
    assert!(e.to_string().contains("already written"), "{e}");

    let (b, _) = with_maps(
        &[(IdMapKind::Gid, vec![idmap(0, 1000, 10), idmap(5, 2000, 10)])],
        false,
    );
    let e = refused(&b.finish(), &v2());
    assert!(matches!(e, FakeError::Invalid { .. }), "{e}");

    // A rootless runtime may map only its own id, and a gid map needs setgroups deny.
    let mut rootless = v2();
    rootless.root_in_init_userns = false;
    rootless.euid = 1000;
    rootless.egid = 1000;
    let own = |k| (k, vec![idmap(0, 1000, 1)]);
    let (b, _) = with_maps(&[own(IdMapKind::Uid), own(IdMapKind::Gid)], false);
    let e = refused(&b.finish(), &rootless);
    assert!(e.to_string().contains("setgroups deny"), "{e}");
    let (b, _) = with_maps(&[(IdMapKind::Uid, vec![idmap(0, 100_000, 65536)])], false);
    let e = refused(&b.finish(), &rootless);
    assert!(e.to_string().contains("only map its own id"), "{e}");
    let (b, _) = with_maps(&[own(IdMapKind::Uid), own(IdMapKind::Gid)], true);
    let mut fake = host(&rootless);
    run(&b.finish(), &mut fake);
}

#[test]
fn an_unmapped_init_cannot_make_files() {
    // Init keeps the runtime's host uid 0, which the map does not cover, until it
    // becomes root of its user namespace (setuid 0, as runc's nsexec does).
    let maps = [
        (IdMapKind::Uid, vec![idmap(0, 100_000, 65536)]),
        (IdMapKind::Gid, vec![idmap(0, 100_000, 65536)]),
    ];
    let plan = |become_root: bool| {
        let (mut b, _) = with_maps(&maps, false);
        b.handoff(Actor::Runtime, SyncPoint::Configured);
        if become_root {
            b.init(Op::Setgid(0));
            b.init(Op::Setuid(0));
        }
        let made = b.made();
        b.init(Op::MkdirAll {
            path: in_root("/x"),
            mode: 0o755,
            made,
        });
        b.finish()
    };
    let e = refused(&plan(false), &v2());
    assert!(e.to_string().contains("EOVERFLOW"), "{e}");
    let mut fake = host(&v2());
    run(&plan(true), &mut fake);
    let state = fake.state().to_string();
    assert!(
        state.contains("  /b/rootfs/x dir 755 100000:100000"),
        "{state}"
    );
}

#[test]
fn wait_for_what_was_never_signalled() {
    let (mut b, _) = spawned(&KINDS);
    b.init(Op::Wait(SyncPoint::Start));
    let plan = b.finish();
    let mut fake = host(&v2());
    let r = execute(&plan, &mut fake);
    assert_eq!(
        r.unwrap_err().source,
        FakeError::NotSignalled {
            point: SyncPoint::Start
        }
    );
}
