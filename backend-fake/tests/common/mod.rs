//! Helpers shared by the fake host's tests: host facts, a host with a small rootfs, and
//! hand-built plans.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

use berth_backend_fake::{FakeError, FakeHost};
use berth_core::exec::{Backend, execute};
use berth_core::host::{CgroupLayout, HostFacts};
use berth_core::plan::{
    Actor, CgroupPath, ContainerPath, DeviceKind, HookKind, HookSpec, HostPath, Location,
    MountFlag, MountFlags, MountOp, MountSource, Namespace, NamespaceSet, Op, PidRef, Plan,
    PlanBuilder, Propagation, SyncPoint,
};

pub const ROOT: &str = "/b/rootfs";

pub fn cp(p: &str) -> ContainerPath {
    ContainerPath::parse(p).unwrap()
}

pub fn hp(p: &str) -> HostPath {
    HostPath::new(p)
}

pub fn in_root(p: &str) -> Location {
    Location::InRoot {
        root: hp(ROOT),
        path: cp(p),
    }
}

pub fn ns(kinds: &[Namespace]) -> NamespaceSet {
    kinds.iter().copied().collect()
}

pub fn v2() -> HostFacts {
    HostFacts {
        cgroup: CgroupLayout::V2 {
            mount: hp("/sys/fs/cgroup"),
            controllers: ["cpuset", "cpu", "io", "memory", "hugetlb", "pids"]
                .map(String::from)
                .to_vec(),
            subtree_control: ["memory", "cpu"].map(String::from).to_vec(),
        },
        root_in_init_userns: true,
        euid: 0,
        egid: 0,
        namespaces: Namespace::ALL.to_vec(),
        clone_into_cgroup: true,
        seccomp: true,
        hugepage_sizes: vec!["2MB".to_owned()],
    }
}

pub fn v1() -> HostFacts {
    let mut h = BTreeMap::new();
    for (c, d) in [
        ("cpu", "cpu,cpuacct"),
        ("cpuacct", "cpu,cpuacct"),
        ("cpuset", "cpuset"),
        ("memory", "memory"),
        ("pids", "pids"),
        ("devices", "devices"),
        ("hugetlb", "hugetlb"),
    ] {
        h.insert(c.to_owned(), hp(&format!("/sys/fs/cgroup/{d}")));
    }
    HostFacts {
        cgroup: CgroupLayout::V1 {
            hierarchies: h,
            unified: Some(hp("/sys/fs/cgroup/unified")),
        },
        ..v2()
    }
}

pub fn host(facts: &HostFacts) -> FakeHost {
    FakeHost::new(facts)
        .with_dir(&format!("{ROOT}/etc"))
        .with_dir(&format!("{ROOT}/tmp"))
        .with_file(&format!("{ROOT}/bin/busybox"), "ELF")
        .with_symlink(&format!("{ROOT}/bin/sh"), "busybox")
        .with_file("/usr/libexec/hook", "#!/bin/sh\n")
        .with_file("/run/console.sock", "")
        .with_netns_file("/var/run/netns/n1")
}

pub fn fs_mount(fstype: &str, target: Location, fl: &[MountFlag], data: &str) -> Op {
    Op::Mount(MountOp {
        source: MountSource::Fs {
            fstype: fstype.to_owned(),
            source: fstype.to_owned(),
        },
        target,
        flags: MountFlags::of(fl),
        data: data.to_owned(),
    })
}

pub fn bind(source: &str, target: Location, rec: bool) -> Op {
    let mut f = vec![MountFlag::Bind];
    if rec {
        f.push(MountFlag::Rec);
    }
    Op::Mount(MountOp {
        source: MountSource::Bind(hp(source)),
        target,
        flags: MountFlags::of(&f),
        data: String::new(),
    })
}

pub fn cg(path: &str) -> CgroupPath {
    CgroupPath {
        mount: hp("/sys/fs/cgroup"),
        path: path.to_owned(),
    }
}

/// Everything up to init's namespaces: state dir, cgroup, clone, attach, handoff.
pub fn prologue(b: &mut PlanBuilder, kinds: &[Namespace]) -> PidRef {
    b.runtime(Op::StateCreate {
        dir: hp("/run/berth/c1"),
    });
    let made = b.made();
    b.runtime(Op::CgroupCreate {
        cgroup: cg("berth/c1"),
        made,
    });
    let pid = b.pid("init.pid");
    b.runtime(Op::Spawn { ns: ns(kinds), pid });
    b.runtime(Op::CgroupAttach {
        cgroup: cg("berth/c1"),
        pid,
    });
    b.handoff(Actor::Runtime, SyncPoint::Configured);
    pid
}

/// The root filesystem: propagation, self-bind, /proc, /dev with a node and a link.
pub fn rootfs(b: &mut PlanBuilder) {
    b.init(Op::SetPropagation {
        target: Location::Host(hp("/")),
        propagation: Propagation::Slave,
        recursive: true,
    });
    b.init(bind(ROOT, in_root("/"), true));
    for (dir, fstype, data) in [("/proc", "proc", ""), ("/dev", "tmpfs", "mode=755")] {
        let made = b.made();
        b.init(Op::MkMountPoint {
            path: in_root(dir),
            source: None,
            made,
        });
        b.init(fs_mount(fstype, in_root(dir), &[MountFlag::Nosuid], data));
    }
    b.init(Op::Mknod {
        path: in_root("/dev/null"),
        kind: DeviceKind::Char,
        major: 1,
        minor: 3,
        mode: 0o666,
        uid: 0,
        gid: 0,
    });
    b.init(Op::Symlink {
        target: "/proc/self/fd".to_owned(),
        link: in_root("/dev/fd"),
    });
    let made = b.made();
    b.init(Op::MkdirAll {
        path: in_root("/home/app"),
        mode: 0o755,
        made,
    });
}

/// After the root switch up to exec and the runtime's last steps; `drop` makes init give
/// up root before exec.
pub fn epilogue(b: &mut PlanBuilder, pid: PidRef, drop: bool) {
    b.init(Op::SetHostname("c1".to_owned()));
    b.init(Op::MaskPath {
        path: Location::Container(cp("/proc/kcore")),
    });
    b.init(Op::ReadonlyPath {
        path: Location::Container(cp("/proc/sys")),
    });
    b.init(Op::Chdir {
        path: Location::Container(cp("/home/app")),
    });
    if drop {
        b.init(Op::Setgid(1000));
        b.init(Op::Setuid(1000));
    }
    b.init(Op::NoNewPrivs);
    b.handoff(Actor::Init, SyncPoint::Created);
    b.runtime(Op::WritePidFile {
        path: hp("/run/c1.pid"),
        pid,
    });
    b.runtime(Op::StateWrite {
        dir: hp("/run/berth/c1"),
        id: "c1".to_owned(),
        bundle: hp("/b"),
        pid,
        status: "created".to_owned(),
        rootfs: hp("/b/rootfs"),
        annotations: Default::default(),
        poststop: Vec::new(),
    });
    b.handoff(Actor::Runtime, SyncPoint::Start);
    b.init(Op::Exec {
        argv: vec!["sh".to_owned()],
        env: vec!["PATH=/bin".to_owned()],
    });
    b.runtime(Op::RunHook {
        kind: HookKind::Poststart,
        index: 0,
        hook: hook("/usr/libexec/hook"),
        pid,
    });
}

pub fn hook(path: &str) -> HookSpec {
    HookSpec {
        path: path.to_owned(),
        args: vec![path.to_owned()],
        env: Vec::new(),
        timeout: None,
    }
}

pub const KINDS: [Namespace; 5] = [
    Namespace::Mount,
    Namespace::Pid,
    Namespace::Network,
    Namespace::Uts,
    Namespace::Ipc,
];

pub fn minimal_plan() -> Plan {
    plan_v2(true)
}

pub fn plan_v2(drop: bool) -> Plan {
    let mut b = PlanBuilder::new();
    let pid = prologue(&mut b, &KINDS);
    rootfs(&mut b);
    b.init(Op::PivotRoot { new_root: hp(ROOT) });
    epilogue(&mut b, pid, drop);
    let plan = b.finish();
    plan.check().unwrap();
    plan
}

/// Runs `plan` on `fake`, which must succeed.
pub fn run(plan: &Plan, fake: &mut FakeHost) {
    if let Err(e) = execute(plan, fake) {
        panic!("{e}: {} (rollback: {:?})\n{plan}", e.source, e.rollback);
    }
}

/// The error of the step at `index` of `plan` (which must fail there).
pub fn refusal(plan: &Plan, fake: &mut FakeHost) -> (usize, FakeError) {
    let e = execute(plan, fake).expect_err("the plan was to be refused");
    assert!(e.rollback.is_empty(), "rollback errors: {:?}", e.rollback);
    (e.index, e.source)
}

/// Applies steps one by one (no rollback), returning the first error.
pub fn apply_all(plan: &Plan, fake: &mut FakeHost) -> Result<(), (usize, FakeError)> {
    for (i, s) in plan.steps.iter().enumerate() {
        fake.apply(plan, s).map_err(|e| (i, e))?;
    }
    Ok(())
}
