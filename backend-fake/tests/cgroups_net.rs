//! Cgroup trees (v2 controllers appear and go with `cgroup.subtree_control`; v1 files per
//! hierarchy) and netlink (veth pairs across namespaces, addresses, routes), each with a
//! rollback sweep.

// Test helpers outside #[test] fns unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

mod common;

use berth_backend_fake::{Binding, FakeError, FakeHost};
use berth_core::exec::execute;
use berth_core::plan::{
    Actor, AnyRef, CgroupPath, DeviceRule, IpNet, LinkKind, LinkSpec, Namespace, NetnsRef, Op,
    Plan, PlanBuilder, SyncPoint,
};
use common::*;

/// Failing each step in turn leaves the host as it was, with no rollback error.
fn sweep(plan: &Plan, make: impl Fn() -> FakeHost) {
    for k in 0..plan.steps.len() {
        let mut fake = make().failing_at(k);
        let before = fake.state();
        let e = execute(plan, &mut fake).unwrap_err();
        assert!(e.rollback.is_empty(), "k={k}: {:?}", e.rollback);
        assert!(
            fake.state() == before,
            "k={k} ({})",
            plan.step_text(&plan.steps[k])
        );
    }
}

fn v2_plan() -> Plan {
    let mut b = PlanBuilder::new();
    let root = b.made();
    b.runtime(Op::CgroupEnable {
        cgroup: cg(""),
        controllers: vec!["memory".to_owned(), "io".to_owned(), "pids".to_owned()],
        made: root,
    });
    let made = b.made();
    b.runtime(Op::CgroupCreate {
        cgroup: cg("berth"),
        made,
    });
    let enabled = b.made();
    b.runtime(Op::CgroupEnable {
        cgroup: cg("berth"),
        controllers: vec!["pids".to_owned(), "memory".to_owned(), "io".to_owned()],
        made: enabled,
    });
    let made = b.made();
    b.runtime(Op::CgroupCreate {
        cgroup: cg("berth/c1"),
        made,
    });
    for (file, value) in [
        ("memory.max", "67108864"),
        ("pids.max", "64"),
        ("io.weight", "100"),
    ] {
        b.runtime(Op::CgroupWrite {
            cgroup: cg("berth/c1"),
            file: file.to_owned(),
            value: value.to_owned(),
        });
    }
    b.runtime(Op::CgroupDevices {
        cgroup: cg("berth/c1"),
        rules: vec![DeviceRule {
            allow: false,
            kind: 'a',
            major: None,
            minor: None,
            access: "rwm".to_owned(),
        }],
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
    b.finish()
}

#[test]
fn v2_controllers_come_and_go_with_subtree_control() {
    let plan = v2_plan();
    let mut fake = host(&v2());
    run(&plan, &mut fake);
    assert_eq!(
        fake.file("/sys/fs/cgroup/berth/cgroup.subtree_control")
            .as_deref(),
        Some("io memory pids")
    );
    // The root enabled cpu and memory, and the plan io and pids; berth enabled io,
    // memory and pids for c1.
    assert_eq!(
        fake.file("/sys/fs/cgroup/cgroup.subtree_control")
            .as_deref(),
        Some("cpu io memory pids")
    );
    assert_eq!(
        fake.file("/sys/fs/cgroup/berth/cgroup.controllers")
            .as_deref(),
        Some("cpu io memory pids")
    );
    assert_eq!(
        fake.file("/sys/fs/cgroup/berth/c1/cgroup.controllers")
            .as_deref(),
        Some("io memory pids")
    );
    assert_eq!(
        fake.file("/sys/fs/cgroup/berth/c1/pids.max").as_deref(),
        Some("64")
    );
    assert!(fake.file("/sys/fs/cgroup/berth/c1/cpu.max").is_none());
    // memory was on at the root already: only io and pids are that enable's to undo.
    assert_eq!(
        fake.binding(AnyRef::Made(berth_core::plan::MadeRef(0))),
        Some(Binding::Made(vec!["io".to_owned(), "pids".to_owned()]))
    );
    sweep(&plan, || host(&v2()));
}

#[test]
fn v2_rules_on_internal_processes_and_disabling() {
    let mut plan = v2_plan();
    // A process in berth/c1 makes enabling controllers for c1's children EBUSY.
    let mut b = PlanBuilder::new();
    for n in &plan.names {
        b.pid(n);
    }
    let made = b.made();
    plan.names = b.finish().names;
    plan.steps.push(berth_core::Step {
        actor: Actor::Runtime,
        op: Op::CgroupEnable {
            cgroup: cg("berth/c1"),
            controllers: vec!["pids".to_owned()],
            made,
        },
    });
    let mut fake = host(&v2());
    let e = execute(&plan, &mut fake).unwrap_err();
    assert!(
        e.source.to_string().contains("no internal processes"),
        "{}",
        e.source
    );

    // Disabling a controller a child still enables is EBUSY.
    let mut b = PlanBuilder::new();
    let a = b.made();
    b.runtime(Op::CgroupCreate {
        cgroup: cg("x"),
        made: a,
    });
    let e1 = b.made();
    b.runtime(Op::CgroupEnable {
        cgroup: cg("x"),
        controllers: vec!["memory".to_owned()],
        made: e1,
    });
    let c = b.made();
    b.runtime(Op::CgroupCreate {
        cgroup: cg("x/y"),
        made: c,
    });
    let e2 = b.made();
    b.runtime(Op::CgroupEnable {
        cgroup: cg("x/y"),
        controllers: vec!["memory".to_owned()],
        made: e2,
    });
    b.runtime(Op::CgroupDisable {
        cgroup: cg("x"),
        made: e1,
    });
    let mut fake = host(&v2());
    let e = execute(&b.finish(), &mut fake).unwrap_err();
    assert!(
        matches!(
            &e.source,
            FakeError::Busy {
                op: "cgroup-disable",
                ..
            }
        ),
        "{}",
        e.source
    );
    assert!(e.rollback.is_empty());
}

#[test]
fn v1_hierarchies_have_their_own_files() {
    let mut b = PlanBuilder::new();
    let memory = CgroupPath {
        mount: hp("/sys/fs/cgroup/memory"),
        path: "berth/c1".to_owned(),
    };
    let cpu = CgroupPath {
        mount: hp("/sys/fs/cgroup/cpu,cpuacct"),
        path: "berth/c1".to_owned(),
    };
    for c in [&memory, &cpu] {
        let made = b.made();
        b.runtime(Op::CgroupCreate {
            cgroup: c.clone(),
            made,
        });
    }
    b.runtime(Op::CgroupWrite {
        cgroup: cpu.clone(),
        file: "cpuacct.usage_percpu".to_owned(),
        value: "0".to_owned(),
    });
    let mut fake = host(&v1());
    let e = execute(&b.finish(), &mut fake).unwrap_err();
    assert_eq!(
        e.source,
        FakeError::CgroupReadOnlyFile {
            path: "/sys/fs/cgroup/cpu,cpuacct/berth/c1/cpuacct.usage_percpu".to_owned()
        }
    );
    let mut b = PlanBuilder::new();
    let made = b.made();
    b.runtime(Op::CgroupCreate {
        cgroup: memory.clone(),
        made,
    });
    for (f, v) in [
        ("memory.limit_in_bytes", "1048576"),
        ("memory.swappiness", "0"),
    ] {
        b.runtime(Op::CgroupWrite {
            cgroup: memory.clone(),
            file: f.to_owned(),
            value: v.to_owned(),
        });
    }
    let made = b.made();
    b.runtime(Op::CgroupCreate {
        cgroup: CgroupPath {
            mount: hp("/sys/fs/cgroup/hugetlb"),
            path: "berth/c1".to_owned(),
        },
        made,
    });
    b.runtime(Op::CgroupWrite {
        cgroup: CgroupPath {
            mount: hp("/sys/fs/cgroup/hugetlb"),
            path: "berth/c1".to_owned(),
        },
        file: "hugetlb.2MB.limit_in_bytes".to_owned(),
        value: "0".to_owned(),
    });
    let made = b.made();
    b.runtime(Op::CgroupEnable {
        cgroup: memory,
        controllers: vec!["memory".to_owned()],
        made,
    });
    let plan = b.finish();
    let mut fake = host(&v1());
    let e = execute(&plan, &mut fake).unwrap_err();
    assert!(matches!(e.source, FakeError::NotV2 { .. }), "{}", e.source);
    let plan = Plan {
        steps: plan.steps[..plan.steps.len() - 1].to_vec(),
        ..plan.clone()
    };
    let mut fake = host(&v1());
    run(&plan, &mut fake);
    assert_eq!(
        fake.file("/sys/fs/cgroup/hugetlb/berth/c1/hugetlb.2MB.limit_in_bytes")
            .as_deref(),
        Some("0")
    );
    sweep(&plan, || host(&v1()));
}

fn addr(s: &str) -> IpNet {
    let (a, p) = s.split_once('/').unwrap();
    IpNet {
        addr: a.parse().unwrap(),
        prefix: p.parse().unwrap(),
    }
}

/// A bridge on the host, a veth from it into init's network namespace, addresses and a
/// default route inside.
fn net_plan() -> Plan {
    let mut b = PlanBuilder::new();
    let pid = b.pid("init.pid");
    b.runtime(Op::Spawn {
        ns: ns(&[Namespace::Network, Namespace::Mount]),
        pid,
    });
    let netns = b.fd("init.netns");
    b.runtime(Op::OpenNs {
        of: pid,
        ns: Namespace::Network,
        fd: netns,
    });
    let inner = NetnsRef::Fd(netns);
    let br = b.ifref("br");
    b.runtime(Op::LinkAdd {
        netns: NetnsRef::Host,
        spec: LinkSpec {
            name: "berth0".to_owned(),
            kind: LinkKind::Bridge,
            mtu: None,
            mac: None,
        },
        index: br,
    });
    let veth = b.ifref("veth");
    b.runtime(Op::LinkAdd {
        netns: NetnsRef::Host,
        spec: LinkSpec {
            name: "veth0".to_owned(),
            kind: LinkKind::Veth {
                peer_name: "eth0".to_owned(),
                peer_netns: inner.clone(),
            },
            mtu: Some(1400),
            mac: None,
        },
        index: veth,
    });
    b.runtime(Op::LinkSetMaster {
        netns: NetnsRef::Host,
        index: veth,
        master: br,
    });
    let eth0 = b.ifref("eth0");
    b.runtime(Op::LinkGet {
        netns: inner.clone(),
        name: "eth0".to_owned(),
        index: eth0,
    });
    let lo = b.ifref("lo");
    b.runtime(Op::LinkGet {
        netns: inner.clone(),
        name: "lo".to_owned(),
        index: lo,
    });
    for i in [lo, eth0] {
        b.runtime(Op::LinkSetUp {
            netns: inner.clone(),
            index: i,
            up: true,
        });
    }
    b.runtime(Op::AddrAdd {
        netns: inner.clone(),
        index: eth0,
        addr: addr("10.88.0.2/16"),
    });
    b.runtime(Op::RouteAdd {
        netns: inner,
        dst: None,
        gateway: Some("10.88.0.1".parse().unwrap()),
        dev: Some(eth0),
    });
    b.finish()
}

#[test]
fn veth_pairs_addresses_and_routes() {
    let plan = net_plan();
    let mut fake = host(&v2());
    run(&plan, &mut fake);
    let ifs: Vec<Option<Binding>> = (2..6)
        .map(|i| fake.binding(AnyRef::If(berth_core::plan::IfRef(i))))
        .collect();
    // Deterministic ifindexes from 10; each namespace's lo is 1.
    assert_eq!(
        ifs,
        [
            Some(Binding::If(10)),
            Some(Binding::If(11)),
            Some(Binding::If(12)),
            Some(Binding::If(1))
        ]
    );
    let state = fake.state().to_string();
    assert!(state.contains("name: \"eth0\""), "{state}");
    sweep(&plan, || host(&v2()));

    // A gateway off every connected network is refused, as the kernel does.
    let mut bad = plan.clone();
    if let Some(Op::RouteAdd { gateway, .. }) = bad.steps.last_mut().map(|s| &mut s.op) {
        *gateway = Some("192.168.1.1".parse().unwrap());
    }
    let mut fake = host(&v2());
    let e = execute(&bad, &mut fake).unwrap_err();
    assert!(
        e.source.to_string().contains("not on a connected network"),
        "{}",
        e.source
    );

    // When init dies its namespace goes, and the veth pair with it.
    let mut b = PlanBuilder::new();
    for n in &plan.names {
        b.pid(n);
    }
    let mut kill = plan.clone();
    kill.steps.push(berth_core::Step {
        actor: Actor::Runtime,
        op: Op::Kill {
            pid: berth_core::plan::PidRef(0),
        },
    });
    let mut fake = host(&v2());
    let before = fake.state();
    run(&kill, &mut fake);
    let after = fake.state().to_string();
    assert!(!after.contains("veth0"), "{after}");
    assert!(after.contains("berth0"));
    assert_ne!(fake.state(), before);
}

#[test]
fn setns_by_an_fd_and_the_runtime_steps_back() {
    let mut b = PlanBuilder::new();
    let own = b.fd("runtime.net");
    b.runtime(Op::OpenOwnNs {
        ns: Namespace::Network,
        fd: own,
    });
    b.runtime(Op::Setns {
        ns: Namespace::Network,
        from: berth_core::plan::NsSource::Path(hp("/var/run/netns/n1")),
    });
    let pid = b.pid("init.pid");
    b.runtime(Op::Spawn {
        ns: ns(&[Namespace::Mount, Namespace::Pid]),
        pid,
    });
    b.runtime(Op::Setns {
        ns: Namespace::Network,
        from: berth_core::plan::NsSource::Fd(own),
    });
    // Back home, a link the runtime adds lands in the host's namespace, not in n1.
    let d0 = b.ifref("d0");
    b.runtime(Op::LinkAdd {
        netns: NetnsRef::Host,
        spec: LinkSpec {
            name: "d0".to_owned(),
            kind: LinkKind::Dummy,
            mtu: None,
            mac: None,
        },
        index: d0,
    });
    b.handoff(Actor::Runtime, SyncPoint::Configured);
    let plan = b.finish();
    plan.check().unwrap();
    let mut fake = host(&v2());
    run(&plan, &mut fake);
    sweep(&plan, || host(&v2()));
    let mut b = PlanBuilder::new();
    let i = b.ifref("d0");
    b.runtime(Op::LinkGet {
        netns: NetnsRef::Path(hp("/var/run/netns/n1")),
        name: "d0".to_owned(),
        index: i,
    });
    let e = execute(&b.finish(), &mut fake).unwrap_err();
    assert!(matches!(e.source, FakeError::NoLink { .. }), "{}", e.source);
}
