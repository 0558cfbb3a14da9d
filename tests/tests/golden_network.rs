//! Golden plans of bridge networking (network create, a join publishing
//! `-p 127.0.0.1:18080:80`, teardown), each executed on the fake host, whose trace must be
//! the plan itself; and fault sweeps: a failure at every step leaves the fake host as it was.

#![allow(clippy::unwrap_used)]

use berth_backend_fake::FakeHost;
use berth_core::exec::execute;
use berth_core::network::plan::{
    IP_FORWARD, plan_endpoint_join, plan_endpoint_leave, plan_network_create, plan_network_remove,
    plan_sandbox_remove,
};
use berth_core::network::{
    DEFAULT_NETNS_ROOT, Endpoint, Network, PortMapping, SANDBOX_IFNAME, Sandbox, ipam,
    parse_port_mapping,
};
use berth_core::plan::{HostPath, Op, Plan, PlanBuilder};
use berth_tests::host_preset;

const NET_ID: &str = "5f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff";
const CID: &str = "c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

fn web() -> Network {
    let subnet = ipam::default_subnet(&[ipam::parse_cidr("172.17.0.0/16").unwrap()]).unwrap();
    Network::bridge("web", NET_ID, subnet, None, false).unwrap()
}

fn endpoint(net: &Network) -> Endpoint {
    let b = net.bridge_net().unwrap();
    let ip = ipam::allocate(&b.subnet, b.gateway, &Default::default(), None).unwrap();
    Endpoint::new(net, CID, ip, SANDBOX_IFNAME, vec!["web1".to_owned()]).unwrap()
}

fn sandbox() -> Sandbox {
    Sandbox::new(CID, &HostPath::new(DEFAULT_NETNS_ROOT)).unwrap()
}

fn ports() -> Vec<PortMapping> {
    vec![parse_port_mapping("127.0.0.1:18080:80").unwrap()]
}

fn build(f: impl FnOnce(&mut PlanBuilder)) -> Plan {
    let mut b = PlanBuilder::new();
    f(&mut b);
    let p = b.finish();
    p.check().unwrap();
    p
}

fn create_plan() -> Plan {
    build(|b| plan_network_create(&web(), b))
}

fn join_plan() -> Plan {
    let net = web();
    build(|b| plan_endpoint_join(&net, &endpoint(&net), &sandbox(), &ports(), b).unwrap())
}

fn teardown_plan() -> Plan {
    let net = web();
    build(|b| {
        plan_endpoint_leave(&net, &endpoint(&net), &ports(), b).unwrap();
        plan_sandbox_remove(&sandbox(), b);
        plan_network_remove(&net, b);
    })
}

/// A root host with `/run/berth/netns` (the engine makes it once) on which forwarding is
/// on, as after the first network: teardown leaves it on, and removes berth's table with
/// the last network's rules.
fn host() -> FakeHost {
    let mut fake = FakeHost::new(&host_preset("v2")).with_dir(DEFAULT_NETNS_ROOT);
    let setup = build(|b| {
        let made = b.made();
        b.runtime(Op::SysctlSet {
            path: HostPath::new(IP_FORWARD),
            value: "1".to_owned(),
            made,
        });
    });
    execute(&setup, &mut fake).unwrap();
    fake
}

/// Runs `plan` on `fake`: it must succeed and its trace must be the plan.
fn run(fake: &mut FakeHost, plan: &Plan) {
    let start = fake.trace().len();
    if let Err(e) = execute(plan, fake) {
        panic!(
            "the fake host refused the plan: {e}: {:?}\n{plan}",
            e.source
        );
    }
    let trace: String = fake.trace()[start..]
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{i} {}\n", plan.step_text(s)))
        .collect();
    assert_eq!(trace, plan.to_string());
}

#[test]
fn network_create() {
    let plan = create_plan();
    insta::assert_snapshot!(plan.to_string());
    let mut fake = host();
    run(&mut fake, &plan);
    let state = fake.state().to_string();
    assert!(
        state.contains("nat/postrouting masquerade from 172.18.0.0/16 out !br-5f1e2d3c4b5a"),
        "{state}"
    );
    assert!(
        state.contains("sysctl net.ipv4.conf.br-5f1e2d3c4b5a.route_localnet=\"1\""),
        "{state}"
    );
}

#[test]
fn join_with_published_port() {
    let plan = join_plan();
    insta::assert_snapshot!(plan.to_string());
    let mut fake = host();
    run(&mut fake, &create_plan());
    run(&mut fake, &plan);
    let state = fake.state().to_string();
    assert!(
        state.contains("nat/output dnat tcp 127.0.0.1:18080 -> 172.18.0.2:80"),
        "{state}"
    );
    assert!(state.contains("02:42:ac:12:00:02"), "{state}");
    assert!(
        state.contains("route (None, Some(172.18.0.1), Some("),
        "no default route in the sandbox: {state}"
    );
}

#[test]
fn teardown() {
    let plan = teardown_plan();
    insta::assert_snapshot!(plan.to_string());
    let mut fake = host();
    let before = fake.state();
    run(&mut fake, &create_plan());
    run(&mut fake, &join_plan());
    assert_ne!(fake.state(), before);
    run(&mut fake, &plan);
    let after = fake.state();
    assert!(
        after == before,
        "teardown left a trace:\n--- before\n{before}\n--- after\n{after}"
    );
}

#[test]
fn json_round_trips() {
    for plan in [create_plan(), join_plan(), teardown_plan()] {
        let json = plan.to_json();
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan);
    }
}

/// Fails `plan` at each of its steps on a copy of `fake` and checks the host is as before.
fn sweep(fake: &FakeHost, plan: &Plan) {
    for k in 0..plan.steps.len() {
        let mut f = fake.clone().failing_at(fake.calls() + k);
        let before = f.state();
        let err = execute(plan, &mut f).expect_err("the step was to fail");
        assert_eq!(err.index, k);
        assert!(
            err.rollback.is_empty(),
            "step {k}: rollback failed: {:?}",
            err.rollback
        );
        let after = f.state();
        assert!(
            after == before,
            "failure at step {k} ({}) left a trace:\n--- before\n{before}\n--- after\n{after}",
            plan.step_text(&plan.steps[k])
        );
    }
}

#[test]
fn failure_at_every_step_restores_the_host() {
    // `network create` alone, on a host without berth's table or forwarding.
    let bare = FakeHost::new(&host_preset("v2")).with_dir(DEFAULT_NETNS_ROOT);
    sweep(&bare, &create_plan());
    // A `run -p` on first use of the network: create and join in one plan.
    let net = web();
    let run_p = build(|b| {
        plan_network_create(&net, b);
        plan_endpoint_join(&net, &endpoint(&net), &sandbox(), &ports(), b).unwrap();
    });
    assert!(run_p.steps.len() > 20);
    sweep(&bare, &run_p);
    sweep(&host(), &run_p);
    // A join on an existing network.
    let mut made = host();
    run(&mut made, &create_plan());
    sweep(&made, &join_plan());
}
