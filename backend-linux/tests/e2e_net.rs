//! End-to-end: the engine's network backend ([`NetBackend`]) on the real kernel, as root.
//!
//! Each test builds a plan by hand, executes it with core's `execute`, checks the result
//! with the system's own tools (`ip`, `ping`, `nsenter`, `nft`), then undoes it and checks
//! that nothing is left. Traffic goes only between the host and namespaces the tests make,
//! on addresses of 198.18.0.0/15 (RFC 2544's benchmarking range, never routed), one /24 per
//! test. Names are unique per run (`bt`/`vt` + 8 hex digits); a guard removes, by name,
//! whatever a failing test left. Tests that touch berth's nftables table take a lock, as
//! the table is one for the whole host.
//!
//! Root only: not being root fails every test (they never skip).

// A test binary: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_backend_linux::net::{NetBackend, NetError};
use berth_core::exec::{Backend, execute, rollback};
use berth_core::plan::{
    FwChain, FwRule, HostPath, IpNet, LinkKind, LinkSpec, NetnsRef, Op, Plan, PlanBuilder, Proto,
};

/// Serialises the tests that touch berth's (host-wide) nftables table.
static FW_LOCK: Mutex<()> = Mutex::new(());

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "end-to-end tests need root (uid 0); they never skip"
    );
}

/// 8 hex digits, different for every call in every run.
fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mixed =
        nanos ^ (std::process::id() << 12) ^ N.fetch_add(1, Ordering::Relaxed).rotate_left(24);
    format!("{mixed:08x}")
}

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"))
}

fn link_exists(name: &str) -> bool {
    run("ip", &["link", "show", "dev", name]).status.success()
}

fn ip_net(s: &str) -> IpNet {
    let (a, p) = s.split_once('/').unwrap();
    IpNet {
        addr: a.parse().unwrap(),
        prefix: p.parse().unwrap(),
    }
}

/// What one test makes, by name; dropping it removes whatever is left (tests that pass
/// leave nothing, which the test itself checks before the guard runs).
struct Names {
    bridge: String,
    veth: String,
    tag: String,
    /// The directory the namespace files go in (`netns-create` makes it a mount point).
    ns_dir: PathBuf,
    netns: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Names {
    fn new() -> Self {
        let id = unique();
        let tmp = tempfile::tempdir().unwrap();
        let ns_dir = tmp.path().join("netns");
        std::fs::create_dir(&ns_dir).unwrap();
        let netns = ns_dir.join(format!("sb-{id}"));
        Names {
            bridge: format!("bt{id}"),
            veth: format!("vt{id}"),
            tag: format!("berth-test:{id}"),
            ns_dir,
            netns,
            _tmp: tmp,
        }
    }

    fn netns_ref(&self) -> NetnsRef {
        NetnsRef::Path(HostPath::new(self.netns.to_str().unwrap()))
    }

    /// Nothing of this test's is left: no link, no namespace file, no rule with its tag.
    fn assert_clean(&self) {
        for l in [&self.bridge, &self.veth] {
            assert!(!link_exists(l), "link {l} is left");
        }
        assert!(!self.netns.exists(), "{} is left", self.netns.display());
        let rules = run("nft", &["-a", "list", "table", "inet", "berth"]);
        let listed = String::from_utf8_lossy(&rules.stdout);
        assert!(
            !listed.contains(&self.tag),
            "a rule tagged {} is left:\n{listed}",
            self.tag
        );
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        for l in [&self.veth, &self.bridge] {
            if link_exists(l) {
                run("ip", &["link", "del", "dev", l]);
            }
        }
        let _ = nix::mount::umount2(&self.netns, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.netns);
        // The directory became a mount point of its own (see `netns-create`).
        let _ = nix::mount::umount2(&self.ns_dir, nix::mount::MntFlags::MNT_DETACH);
        delete_tagged_rules(&self.tag);
    }
}

/// Deletes every rule of berth's table whose comment is `tag` (the guard's cleanup, with
/// `nft` itself rather than the code under test).
fn delete_tagged_rules(tag: &str) {
    let listed = run("nft", &["-a", "list", "table", "inet", "berth"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    let mut chain = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(c) = line.strip_prefix("chain ") {
            // `chain prerouting { # handle 1`
            chain = c.split(' ').next().unwrap_or_default().to_owned();
        } else if line.contains(&format!("comment \"{tag}\""))
            && let Some((_, h)) = line.rsplit_once("# handle ")
        {
            let rule = [
                "delete",
                "rule",
                "inet",
                "berth",
                &chain,
                "handle",
                h.trim(),
            ];
            run("nft", &rule);
        }
    }
}

/// Whether berth's table exists.
fn fw_table_exists() -> bool {
    run("nft", &["list", "table", "inet", "berth"])
        .status
        .success()
}

/// The plan of a sandbox on a bridge, as the engine would make it: the namespace, the
/// bridge with the gateway address, a veth whose peer is made in the namespace as `eth0`,
/// addresses, links up, the default route, a host sysctl; with `fw`, berth's table and a
/// published port.
fn sandbox_plan(n: &Names, net: u8, fw: bool) -> Plan {
    let mut b = PlanBuilder::new();
    let ns = n.netns_ref();
    let br = b.ifref("bridge");
    let veth = b.ifref("veth");
    let eth0 = b.ifref("eth0");
    let lo = b.ifref("lo");
    let gw = format!("198.18.{net}.1");
    b.runtime(Op::NetnsCreate {
        path: HostPath::new(n.netns.to_str().unwrap()),
    });
    b.runtime(Op::LinkAdd {
        netns: NetnsRef::Host,
        spec: LinkSpec {
            name: n.bridge.clone(),
            kind: LinkKind::Bridge,
            mtu: None,
            mac: None,
        },
        index: br,
    });
    b.runtime(Op::AddrAdd {
        netns: NetnsRef::Host,
        index: br,
        addr: ip_net(&format!("{gw}/24")),
    });
    let made = b.made();
    b.runtime(Op::SysctlSet {
        path: HostPath::new(format!(
            "/proc/sys/net/ipv4/conf/{}/route_localnet",
            n.bridge
        )),
        value: "1".to_owned(),
        made,
    });
    b.runtime(Op::LinkSetUp {
        netns: NetnsRef::Host,
        index: br,
        up: true,
    });
    b.runtime(Op::LinkAdd {
        netns: NetnsRef::Host,
        spec: LinkSpec {
            name: n.veth.clone(),
            kind: LinkKind::Veth {
                peer_name: "eth0".to_owned(),
                peer_netns: ns.clone(),
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
    b.runtime(Op::LinkSetUp {
        netns: NetnsRef::Host,
        index: veth,
        up: true,
    });
    b.runtime(Op::LinkGet {
        netns: ns.clone(),
        name: "lo".to_owned(),
        index: lo,
    });
    b.runtime(Op::LinkSetUp {
        netns: ns.clone(),
        index: lo,
        up: true,
    });
    b.runtime(Op::LinkGet {
        netns: ns.clone(),
        name: "eth0".to_owned(),
        index: eth0,
    });
    b.runtime(Op::AddrAdd {
        netns: ns.clone(),
        index: eth0,
        addr: ip_net(&format!("198.18.{net}.2/24")),
    });
    b.runtime(Op::LinkSetUp {
        netns: ns.clone(),
        index: eth0,
        up: true,
    });
    b.runtime(Op::RouteAdd {
        netns: ns,
        dst: None,
        gateway: Some(gw.parse().unwrap()),
        dev: Some(eth0),
    });
    if fw {
        let table = b.made();
        b.runtime(Op::FwTableEnsure { made: table });
        b.runtime(Op::FwRuleAdd {
            chain: FwChain::Prerouting,
            rule: dnat(net),
            tag: n.tag.clone(),
        });
        b.runtime(Op::FwRuleAdd {
            chain: FwChain::Output,
            rule: dnat(net),
            tag: n.tag.clone(),
        });
    }
    let plan = b.finish();
    plan.check().unwrap();
    plan
}

fn dnat(net: u8) -> FwRule {
    FwRule::Dnat {
        proto: Proto::Tcp,
        host_ip: Some("127.0.0.1".parse().unwrap()),
        host_port: 18000 + u16::from(net),
        to_ip: format!("198.18.{net}.2").parse().unwrap(),
        to_port: 80,
    }
}

/// One ping, retried twice (the first may wait for ARP): `prefix` runs it elsewhere.
fn ping(prefix: &[&str], addr: &str) -> bool {
    (0..3).any(|_| {
        let mut argv: Vec<&str> = prefix.to_vec();
        argv.extend(["ping", "-c1", "-W1", addr]);
        run(argv[0], &argv[1..]).status.success()
    })
}

#[test]
fn sandbox_on_a_bridge_pings_both_ways_and_undoes_cleanly() {
    require_root();
    let n = Names::new();
    let plan = sandbox_plan(&n, 1, false);
    let mut backend = NetBackend::new().unwrap();
    if let Err(e) = execute(&plan, &mut backend) {
        panic!("{e}: {:?}; rollback: {:?}", e.source, e.rollback);
    }
    // The backend's trace is the plan, step for step.
    let expected: Vec<String> = plan.steps.iter().map(|s| plan.step_text(s)).collect();
    assert_eq!(backend.trace(), expected.as_slice());

    assert!(link_exists(&n.bridge) && link_exists(&n.veth));
    let ns_arg = format!("--net={}", n.netns.display());
    let inside = ["nsenter", ns_arg.as_str()];
    // The peer was made in the namespace as eth0, with the MTU asked for, addressed.
    let eth0 = run(
        "nsenter",
        &[&ns_arg, "ip", "-o", "addr", "show", "dev", "eth0"],
    );
    let eth0 = String::from_utf8_lossy(&eth0.stdout);
    assert!(eth0.contains("198.18.1.2/24"), "{eth0}");
    let mtu = run(
        "nsenter",
        &[&ns_arg, "ip", "-o", "link", "show", "dev", "eth0"],
    );
    assert!(String::from_utf8_lossy(&mtu.stdout).contains("mtu 1400"));
    let route = run("nsenter", &[&ns_arg, "ip", "route", "show", "default"]);
    let route = String::from_utf8_lossy(&route.stdout);
    assert!(route.contains("default via 198.18.1.1 dev eth0"), "{route}");
    let master = run("ip", &["-o", "link", "show", "dev", &n.veth]);
    assert!(String::from_utf8_lossy(&master.stdout).contains("mtu 1400"));
    assert!(String::from_utf8_lossy(&master.stdout).contains(&format!("master {}", n.bridge)));
    let localnet = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", n.bridge);
    assert_eq!(std::fs::read_to_string(&localnet).unwrap().trim(), "1");
    // Traffic: host -> namespace, namespace -> host, and the namespace's own loopback.
    assert!(ping(&[], "198.18.1.2"), "host cannot ping the sandbox");
    assert!(
        ping(&inside, "198.18.1.1"),
        "the sandbox cannot ping the host"
    );
    assert!(ping(&inside, "127.0.0.1"), "lo is not up in the sandbox");

    let failed = rollback(&plan, 0..plan.steps.len(), &mut backend);
    assert!(failed.is_empty(), "undo failed: {failed:?}");
    n.assert_clean();
    let route = run("ip", &["route", "show", "198.18.1.0/24"]);
    assert!(route.stdout.is_empty(), "a route is left");
}

#[test]
fn a_fault_at_any_step_leaves_nothing() {
    require_root();
    let _fw = FW_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let table_before = fw_table_exists();
    let n = Names::new();
    let plan = sandbox_plan(&n, 2, true);
    for k in 0..plan.steps.len() {
        let mut backend = NetBackend::new().unwrap().fail_at_step(k);
        let err = execute(&plan, &mut backend).unwrap_err();
        assert_eq!(err.index, k);
        assert!(matches!(err.source, NetError::Injected { .. }), "{err}");
        assert!(
            err.rollback.is_empty(),
            "step {k}: rollback failed: {:?}",
            err.rollback
        );
        n.assert_clean();
        assert_eq!(
            fw_table_exists(),
            table_before,
            "step {k}: berth's table changed"
        );
    }
    // Without a fault the same plan goes through, and its undo leaves nothing either.
    let mut backend = NetBackend::new().unwrap();
    execute(&plan, &mut backend).unwrap();
    let listed = run("nft", &["list", "table", "inet", "berth"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(listed.matches(&n.tag).count(), 2, "{listed}");
    let failed = rollback(&plan, 0..plan.steps.len(), &mut backend);
    assert!(failed.is_empty(), "undo failed: {failed:?}");
    n.assert_clean();
    assert_eq!(fw_table_exists(), table_before);
}

#[test]
fn published_port_rules_are_added_found_by_tag_and_deleted() {
    require_root();
    let _fw = FW_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let table_before = fw_table_exists();
    let n = Names::new();
    let mut b = PlanBuilder::new();
    let made = b.made();
    b.runtime(Op::FwTableEnsure { made });
    b.runtime(Op::FwRuleAdd {
        chain: FwChain::Prerouting,
        rule: dnat(3),
        tag: n.tag.clone(),
    });
    b.runtime(Op::FwRuleAdd {
        chain: FwChain::Postrouting,
        rule: FwRule::Masquerade {
            subnet: ip_net("198.18.3.0/24"),
            bridge: n.bridge.clone(),
        },
        tag: n.tag.clone(),
    });
    let plan = b.finish();
    plan.check().unwrap();
    let mut backend = NetBackend::new().unwrap();
    execute(&plan, &mut backend).unwrap();

    let listed = run("nft", &["list", "table", "inet", "berth"]);
    assert!(listed.status.success());
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&format!(
            "ip daddr 127.0.0.1 tcp dport 18003 dnat ip to 198.18.3.2:80 comment \"{}\"",
            n.tag
        )),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("oifname != \"{}\" masquerade", n.bridge)),
        "{listed}"
    );
    for chain in [
        "prerouting",
        "output",
        "postrouting",
        "forward",
        "isolation",
    ] {
        assert!(
            listed.contains(&format!("chain {chain} {{")),
            "no chain {chain}: {listed}"
        );
    }

    // A second rule with the same tag in the same chain is refused.
    let again = Plan {
        steps: vec![plan.steps[1].clone()],
        ..Plan::default()
    };
    let err = backend.apply(&again, &again.steps[0]).unwrap_err();
    assert!(
        matches!(err, NetError::FwTagTaken { ref tag, .. } if *tag == n.tag),
        "{err}"
    );

    // Deleting by tag removes exactly that rule.
    let del = Plan {
        steps: vec![berth_core::plan::Step {
            actor: berth_core::plan::Actor::Runtime,
            op: Op::FwRuleDel {
                chain: FwChain::Prerouting,
                tag: n.tag.clone(),
            },
        }],
        ..Plan::default()
    };
    backend.apply(&del, &del.steps[0]).unwrap();
    let listed = run("nft", &["list", "chain", "inet", "berth", "prerouting"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&n.tag));
    // A second delete finds nothing.
    let err = backend.apply(&del, &del.steps[0]).unwrap_err();
    assert!(matches!(err, NetError::FwNoRule { .. }), "{err}");

    // The undo of the rest: the masquerade rule, then the table if this plan made it.
    let failed = rollback(&plan, 2..3, &mut backend);
    assert!(failed.is_empty(), "{failed:?}");
    let failed = rollback(&plan, 0..1, &mut backend);
    assert!(failed.is_empty(), "{failed:?}");
    n.assert_clean();
    assert_eq!(fw_table_exists(), table_before);
}

#[test]
fn removing_the_namespace_file_ends_the_namespace_and_its_links() {
    require_root();
    let n = Names::new();
    let mut b = PlanBuilder::new();
    let veth = b.ifref("veth");
    let path = HostPath::new(n.netns.to_str().unwrap());
    b.runtime(Op::NetnsCreate { path: path.clone() });
    b.runtime(Op::LinkAdd {
        netns: n.netns_ref(),
        spec: LinkSpec {
            name: "eth0".to_owned(),
            kind: LinkKind::Veth {
                peer_name: n.veth.clone(),
                peer_netns: NetnsRef::Host,
            },
            mtu: None,
            mac: Some("02:42:c6:12:04:02".to_owned()),
        },
        index: veth,
    });
    b.runtime(Op::NetnsRemove { path });
    let plan = b.finish();
    plan.check().unwrap();
    let mut backend = NetBackend::new().unwrap();
    // The veth is made inside the namespace with its peer on the host: run up to the
    // removal and look.
    berth_core::exec::execute_range(&plan, 0..2, &mut backend).unwrap();
    assert!(link_exists(&n.veth), "the peer was not made on the host");
    let ns_arg = format!("--net={}", n.netns.display());
    let eth0 = run(
        "nsenter",
        &[&ns_arg, "ip", "-o", "link", "show", "dev", "eth0"],
    );
    assert!(String::from_utf8_lossy(&eth0.stdout).contains("02:42:c6:12:04:02"));
    // Removing the file (the backend still has a connection into the namespace) ends the
    // namespace: the kernel deletes eth0 with it, and so its host end.
    berth_core::exec::execute_range(&plan, 2..3, &mut backend).unwrap();
    assert!(!n.netns.exists());
    let deadline = Instant::now() + Duration::from_secs(10);
    while link_exists(&n.veth) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!link_exists(&n.veth), "the namespace outlived its file");
    n.assert_clean();
    // Removing it again is not an error (a teardown after a half-done create).
    berth_core::exec::execute_range(&plan, 2..3, &mut backend).unwrap();
}

#[test]
fn a_namespace_fd_handed_over_is_used() {
    require_root();
    let n = Names::new();
    let mut b = PlanBuilder::new();
    let fd = b.fd("sandbox.netns");
    let lo = b.ifref("lo");
    let path = HostPath::new(n.netns.to_str().unwrap());
    let create = Plan {
        steps: vec![berth_core::plan::Step {
            actor: berth_core::plan::Actor::Runtime,
            op: Op::NetnsCreate { path: path.clone() },
        }],
        ..Plan::default()
    };
    b.runtime(Op::LinkGet {
        netns: NetnsRef::Fd(fd),
        name: "lo".to_owned(),
        index: lo,
    });
    b.runtime(Op::LinkSetUp {
        netns: NetnsRef::Fd(fd),
        index: lo,
        up: true,
    });
    let plan = b.finish();
    let mut backend = NetBackend::new().unwrap();
    execute(&create, &mut backend).unwrap();
    // Unbound: a clear error naming the handle.
    let err = execute(&plan, &mut backend).unwrap_err();
    assert!(
        matches!(err.source, NetError::Unbound { ref handle, .. } if handle == "sandbox.netns"),
        "{err}"
    );
    let file = std::fs::File::open(&n.netns).unwrap();
    backend.bind_netns_fd(fd, file.into());
    execute(&plan, &mut backend).unwrap();
    assert!(backend.ifindex(lo).is_some());
    let ns_arg = format!("--net={}", n.netns.display());
    let lo_state = run(
        "nsenter",
        &[&ns_arg, "ip", "-o", "link", "show", "dev", "lo"],
    );
    assert!(String::from_utf8_lossy(&lo_state.stdout).contains("UP"));
    drop(backend);
    let failed = rollback(&create, 0..1, &mut NetBackend::new().unwrap());
    assert!(failed.is_empty(), "{failed:?}");
    n.assert_clean();
}

#[test]
fn a_missing_link_is_named() {
    require_root();
    let n = Names::new();
    let mut b = PlanBuilder::new();
    let index = b.ifref("bridge");
    b.runtime(Op::LinkGet {
        netns: NetnsRef::Host,
        name: n.bridge.clone(),
        index,
    });
    let plan = b.finish();
    let err = execute(&plan, &mut NetBackend::new().unwrap()).unwrap_err();
    assert!(
        matches!(err.source, NetError::NoLink { ref name, .. } if *name == n.bridge),
        "{err}"
    );
}

#[test]
fn other_ops_are_refused() {
    let mut backend = NetBackend::new().unwrap();
    let plan = Plan {
        steps: vec![berth_core::plan::Step {
            actor: berth_core::plan::Actor::Runtime,
            op: Op::Umask(0o22),
        }],
        ..Plan::default()
    };
    let err = backend.apply(&plan, &plan.steps[0]).unwrap_err();
    assert!(matches!(err, NetError::NotNetwork { .. }), "{err}");
    assert!(err.to_string().contains("umask"), "{err}");
}

/// The namespace directory of a test is left as a mount point by `netns-create`; the
/// guard unmounts it. This checks the guard's assumption, so a change in that behaviour
/// shows up here and not as a leaked mount.
#[test]
fn netns_create_makes_its_directory_a_shared_mount_point() {
    require_root();
    let n = Names::new();
    let create = Plan {
        steps: vec![berth_core::plan::Step {
            actor: berth_core::plan::Actor::Runtime,
            op: Op::NetnsCreate {
                path: HostPath::new(n.netns.to_str().unwrap()),
            },
        }],
        ..Plan::default()
    };
    let mut backend = NetBackend::new().unwrap();
    execute(&create, &mut backend).unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = n.ns_dir.to_str().unwrap();
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(dir))
        .unwrap_or_else(|| panic!("{dir} is not a mount point"));
    assert!(line.contains("shared:"), "{line}");
    // A second create at the same path fails and leaves the first namespace alone.
    let err = execute(&create, &mut backend).unwrap_err();
    assert_eq!(err.source.errno(), Some(nix::errno::Errno::EEXIST), "{err}");
    assert!(Path::new(&n.netns).exists());
    let failed = rollback(&create, 0..1, &mut backend);
    assert!(failed.is_empty(), "{failed:?}");
    n.assert_clean();
}

/// The guard itself removes what a failed test would leave: here a link, a namespace and a
/// tagged rule are made and only the guard is dropped.
#[test]
fn the_guard_removes_what_a_failed_test_leaves() {
    require_root();
    let _fw = FW_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let table_before = fw_table_exists();
    let n = Names::new();
    let mut b = PlanBuilder::new();
    let br = b.ifref("bridge");
    let table = b.made();
    b.runtime(Op::NetnsCreate {
        path: HostPath::new(n.netns.to_str().unwrap()),
    });
    b.runtime(Op::LinkAdd {
        netns: NetnsRef::Host,
        spec: LinkSpec {
            name: n.bridge.clone(),
            kind: LinkKind::Bridge,
            mtu: None,
            mac: None,
        },
        index: br,
    });
    b.runtime(Op::FwTableEnsure { made: table });
    b.runtime(Op::FwRuleAdd {
        chain: FwChain::Forward,
        rule: FwRule::IsolateFrom {
            bridge: n.bridge.clone(),
        },
        tag: n.tag.clone(),
    });
    let plan = b.finish();
    let mut backend = NetBackend::new().unwrap();
    execute(&plan, &mut backend).unwrap();
    drop(backend);
    let (netns, tag, ns_dir) = (n.netns.clone(), n.tag.clone(), n.ns_dir.clone());
    let bridge = n.bridge.clone();
    drop(n);
    assert!(!link_exists(&bridge));
    assert!(!netns.exists());
    let listed = run("nft", &["list", "table", "inet", "berth"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&tag));
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(ns_dir.to_str().unwrap()), "{mountinfo}");
    // The guard leaves berth's table (it may be another's); with no rule left, a prune
    // removes it when this test made it (the ensure's own undo needs the backend that
    // ran it, which is gone).
    if !table_before {
        let mut b = PlanBuilder::new();
        b.runtime(Op::FwTablePrune);
        execute(&b.finish(), &mut NetBackend::new().unwrap()).unwrap();
    }
    assert_eq!(fw_table_exists(), table_before);
}
