//! Planners for networks, endpoints and sandboxes: runtime steps on the host.
//!
//! Each driver has its planning functions here, chosen by one exhaustive `match` on
//! [`Driver`] per planner: `bridge` plans links, addresses, routes and firewall rules;
//! `none` only a sandbox with `lo` up; `host` nothing (the container stays in the host's
//! network namespace).
//!
//! Invariants:
//! - every step that makes something has an [`crate::plan::undo`], so a failure at any step
//!   of a `create` or `join` plan rolls back to nothing (the executor runs the undos);
//! - every firewall rule lives in berth's table and carries a tag unique in its chain that
//!   names its owner (`net-<id12>-...` for a network, `port-<container12>-...` for a
//!   published port), which is how the teardown planners find it again;
//! - teardown plans (`remove`, `leave`) name only what the matching create made, by name
//!   or tag, so they can be planned from the engine's records alone;
//! - nothing is added to the builder when a planner returns an error.
//!
//! Publishing to `127.0.0.1:PORT` is done in the kernel, not with docker's userland proxy:
//! a DNAT in the `output` chain catches the host's own packets, `route_localnet` on the
//! bridge lets the kernel route a packet with a loopback source out of it, and a
//! masquerade of `127.0.0.0/8` towards the bridge gives the container an address it can
//! answer. No process per port to supervise, every change is a plan step a dry run shows
//! and a rollback undoes (docker itself does this with `--userland-proxy=false`).

use std::net::IpAddr;

use super::{Driver, Endpoint, Network, PortMapping, Sandbox, short};
use crate::plan::{
    FwChain, FwRule, HostPath, IfRef, IpNet, LinkKind, LinkSpec, NetnsRef, Op, PlanBuilder,
};

/// A network operation that cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkPlanError {
    /// An endpoint planned with a network other than its own.
    #[error("endpoint of network {endpoint} planned with network {network}")]
    WrongNetwork {
        /// The endpoint's network id.
        endpoint: String,
        /// The network's id.
        network: String,
    },
    /// An endpoint planned with another container's sandbox.
    #[error("endpoint of container {endpoint} planned with the sandbox of {sandbox}")]
    WrongSandbox {
        /// The endpoint's container.
        endpoint: String,
        /// The sandbox's container.
        sandbox: String,
    },
    /// Ports published on a network that cannot take them.
    #[error("cannot publish {port} on network {network}: {why}")]
    CannotPublish {
        /// The first mapping.
        port: PortMapping,
        /// The network's name.
        network: String,
        /// Why.
        why: &'static str,
    },
    /// A port mapping whose host and container addresses are of different families.
    #[error("cannot publish {port} to {ip}: the addresses are of different families")]
    FamilyMismatch {
        /// The mapping.
        port: PortMapping,
        /// The endpoint's address.
        ip: IpAddr,
    },
    /// The same host address, port and protocol published twice.
    #[error("port {port} is published twice")]
    DuplicatePort {
        /// The mapping.
        port: PortMapping,
    },
}

/// The sysctl that lets the kernel route packets with a loopback source out of `bridge`.
fn route_localnet(bridge: &str) -> HostPath {
    HostPath::new(format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"))
}

/// The sysctl that turns forwarding on.
pub const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The subnet's network as a `/prefix` (`172.18.0.0/16`) and the gateway's address on the
/// bridge (`172.18.0.1/16`).
fn on_subnet(subnet: &IpNet, ip: IpAddr) -> IpNet {
    IpNet {
        addr: ip,
        prefix: subnet.prefix,
    }
}

/// A network's firewall rules in the order they are added: `(chain, rule, tag)`.
fn network_rules(net: &Network) -> Vec<(FwChain, FwRule, String)> {
    let Some(b) = net.bridge_net() else {
        return Vec::new();
    };
    let tag = |what: &str| format!("net-{}-{what}", net.short_id());
    let bridge = b.bridge.clone();
    if net.internal {
        return vec![
            (
                FwChain::Forward,
                FwRule::InternalDropOut {
                    bridge: bridge.clone(),
                },
                tag("internal-out"),
            ),
            (
                FwChain::Forward,
                FwRule::InternalDropIn { bridge },
                tag("internal-in"),
            ),
        ];
    }
    vec![
        (
            FwChain::Postrouting,
            FwRule::Masquerade {
                subnet: b.subnet.clone(),
                bridge: bridge.clone(),
            },
            tag("masq"),
        ),
        (
            FwChain::Postrouting,
            FwRule::MasqueradeLoopback {
                bridge: bridge.clone(),
            },
            tag("masq-lo"),
        ),
        (
            FwChain::Forward,
            FwRule::IsolateFrom {
                bridge: bridge.clone(),
            },
            tag("isolate"),
        ),
        (
            FwChain::Isolation,
            FwRule::IsolateTo { bridge },
            tag("isolate"),
        ),
    ]
}

/// Plans making a network: for a bridge, the bridge with the gateway's address, berth's
/// table and the network's rules (masquerade and isolation, or for `--internal` drops in
/// both directions), the bridge up, and forwarding on; `host` and `none` need nothing.
///
/// Forwarding is switched on last, once the isolation rules are in place, and is never
/// switched off by a later remove (other networks need it; docker does the same); a
/// rollback restores it only if this plan changed it.
pub fn plan_network_create(net: &Network, b: &mut PlanBuilder) {
    let br = match &net.driver {
        Driver::Bridge(br) => br,
        Driver::Host | Driver::None => return,
    };
    let index = b.ifref(&br.bridge);
    b.runtime(Op::LinkAdd {
        netns: NetnsRef::Host,
        spec: LinkSpec {
            name: br.bridge.clone(),
            kind: LinkKind::Bridge,
            mtu: None,
            mac: None,
        },
        index,
    });
    b.runtime(Op::AddrAdd {
        netns: NetnsRef::Host,
        index,
        addr: on_subnet(&br.subnet, br.gateway),
    });
    if !net.internal {
        let made = b.made();
        b.runtime(Op::SysctlSet {
            path: route_localnet(&br.bridge),
            value: "1".to_owned(),
            made,
        });
    }
    let made = b.made();
    b.runtime(Op::FwTableEnsure { made });
    for (chain, rule, tag) in network_rules(net) {
        b.runtime(Op::FwRuleAdd { chain, rule, tag });
    }
    b.runtime(Op::LinkSetUp {
        netns: NetnsRef::Host,
        index,
        up: true,
    });
    if !net.internal {
        let made = b.made();
        b.runtime(Op::SysctlSet {
            path: HostPath::new(IP_FORWARD),
            value: "1".to_owned(),
            made,
        });
    }
}

/// Plans removing a network made by [`plan_network_create`]: its rules (in reverse), then
/// the bridge (its address, routes and per-interface sysctls go with it). berth's table
/// stays, empty when this was the last network (as docker's chains do); forwarding stays on.
/// The engine refuses this while endpoints are attached.
pub fn plan_network_remove(net: &Network, b: &mut PlanBuilder) {
    let br = match &net.driver {
        Driver::Bridge(br) => br,
        Driver::Host | Driver::None => return,
    };
    for (chain, _, tag) in network_rules(net).into_iter().rev() {
        b.runtime(Op::FwRuleDel { chain, tag });
    }
    let index = b.ifref(&br.bridge);
    b.runtime(Op::LinkGet {
        netns: NetnsRef::Host,
        name: br.bridge.clone(),
        index,
    });
    b.runtime(Op::LinkDel {
        netns: NetnsRef::Host,
        index,
    });
    // The last network's rules gone, berth's table goes too.
    b.runtime(Op::FwTablePrune);
}

/// The DNAT rules of a container's published ports, `(chain, rule, tag)` in the order
/// they are added: per mapping, `prerouting` (unless the host address is a loopback one,
/// which no packet from outside the host has) then `output`.
fn port_rules(ep: &Endpoint, ports: &[PortMapping]) -> Vec<(FwChain, FwRule, String)> {
    let mut out = Vec::new();
    for p in ports {
        let host = p
            .host_ip
            .map_or_else(|| "any".to_owned(), |ip| ip.to_string());
        let tag = format!(
            "port-{}-{}-{host}-{}",
            short(&ep.container),
            p.proto,
            p.host_port
        );
        let rule = FwRule::Dnat {
            proto: p.proto,
            host_ip: p.host_ip,
            host_port: p.host_port,
            to_ip: ep.ip,
            to_port: p.container_port,
        };
        if !p.host_ip.is_some_and(|ip| ip.is_loopback()) {
            out.push((FwChain::Prerouting, rule.clone(), tag.clone()));
        }
        out.push((FwChain::Output, rule, tag));
    }
    out
}

fn check_join(
    net: &Network,
    ep: &Endpoint,
    sb: Option<&Sandbox>,
    ports: &[PortMapping],
) -> Result<(), NetworkPlanError> {
    if ep.network != net.id {
        return Err(NetworkPlanError::WrongNetwork {
            endpoint: ep.network.clone(),
            network: net.id.clone(),
        });
    }
    if let Some(sb) = sb
        && sb.container != ep.container
    {
        return Err(NetworkPlanError::WrongSandbox {
            endpoint: ep.container.clone(),
            sandbox: sb.container.clone(),
        });
    }
    let Some(first) = ports.first() else {
        return Ok(());
    };
    let cannot = |why| NetworkPlanError::CannotPublish {
        port: first.clone(),
        network: net.name.clone(),
        why,
    };
    match &net.driver {
        Driver::Host => return Err(cannot("a host-network container's ports are the host's")),
        Driver::None => return Err(cannot("it has no network to publish from")),
        Driver::Bridge(_) if net.internal => {
            return Err(cannot(
                "an --internal network takes no traffic from outside",
            ));
        }
        Driver::Bridge(_) => {}
    }
    for (i, p) in ports.iter().enumerate() {
        if p.host_ip.is_some_and(|h| h.is_ipv4() != ep.ip.is_ipv4()) {
            return Err(NetworkPlanError::FamilyMismatch {
                port: p.clone(),
                ip: ep.ip,
            });
        }
        let same = |q: &PortMapping| {
            q.proto == p.proto && q.host_port == p.host_port && q.host_ip == p.host_ip
        };
        if ports[..i].iter().any(same) {
            return Err(NetworkPlanError::DuplicatePort { port: p.clone() });
        }
    }
    Ok(())
}

/// Plans making a sandbox's namespace with `lo` up (for a sandbox that does not exist yet).
fn sandbox_create(sb: &Sandbox, b: &mut PlanBuilder) {
    let ns = NetnsRef::Path(sb.netns.clone());
    b.runtime(Op::NetnsCreate {
        path: sb.netns.clone(),
    });
    let lo = b.ifref(&format!("{}.lo", short(&sb.container)));
    b.runtime(Op::LinkGet {
        netns: ns.clone(),
        name: "lo".to_owned(),
        index: lo,
    });
    b.runtime(Op::LinkSetUp {
        netns: ns,
        index: lo,
        up: true,
    });
}

/// Plans joining a container's sandbox to a network through an endpoint, publishing
/// `ports`.
///
/// - `host`: nothing (the container keeps the host's namespace).
/// - `none`: the sandbox (namespace file, `lo` up) if it is new.
/// - `bridge`: the sandbox if it is new; the veth made from inside the sandbox, so that
///   its sandbox end is born there as `eth0` with its MAC and its host end is born on the
///   host (nothing is moved between namespaces); the host end on the bridge and up; the
///   address on `eth0`, up; the default route via the gateway when the sandbox is new and
///   the network is not `--internal` (a sandbox's first endpoint gives its default route);
///   then a DNAT per published port.
///
/// The veth is made from the sandbox's side (`ip -n SANDBOX link add eth0 ... peer VETH
/// netns host`) because a [`LinkSpec`]'s MAC is the created link's: that way the sandbox
/// end gets the MAC derived from its address in the same step.
pub fn plan_endpoint_join(
    net: &Network,
    ep: &Endpoint,
    sb: &Sandbox,
    ports: &[PortMapping],
    b: &mut PlanBuilder,
) -> Result<(), NetworkPlanError> {
    check_join(net, ep, Some(sb), ports)?;
    let br = match &net.driver {
        Driver::Host => return Ok(()),
        Driver::None => {
            if !sb.exists {
                sandbox_create(sb, b);
            }
            return Ok(());
        }
        Driver::Bridge(br) => br,
    };
    if !sb.exists {
        sandbox_create(sb, b);
    }
    let ns = NetnsRef::Path(sb.netns.clone());
    let bridge = b.ifref(&br.bridge);
    b.runtime(Op::LinkGet {
        netns: NetnsRef::Host,
        name: br.bridge.clone(),
        index: bridge,
    });
    let inner = b.ifref(&format!("{}.{}", short(&ep.container), ep.ifname));
    b.runtime(Op::LinkAdd {
        netns: ns.clone(),
        spec: LinkSpec {
            name: ep.ifname.clone(),
            kind: LinkKind::Veth {
                peer_name: ep.veth.clone(),
                peer_netns: NetnsRef::Host,
            },
            mtu: None,
            mac: Some(ep.mac.clone()),
        },
        index: inner,
    });
    let veth = b.ifref(&ep.veth);
    b.runtime(Op::LinkGet {
        netns: NetnsRef::Host,
        name: ep.veth.clone(),
        index: veth,
    });
    b.runtime(Op::LinkSetMaster {
        netns: NetnsRef::Host,
        index: veth,
        master: bridge,
    });
    b.runtime(Op::LinkSetUp {
        netns: NetnsRef::Host,
        index: veth,
        up: true,
    });
    b.runtime(Op::AddrAdd {
        netns: ns.clone(),
        index: inner,
        addr: on_subnet(&br.subnet, ep.ip),
    });
    b.runtime(Op::LinkSetUp {
        netns: ns.clone(),
        index: inner,
        up: true,
    });
    if !sb.exists && !net.internal {
        b.runtime(Op::RouteAdd {
            netns: ns,
            dst: None,
            gateway: Some(br.gateway),
            dev: Some(inner),
        });
    }
    for (chain, rule, tag) in port_rules(ep, ports) {
        b.runtime(Op::FwRuleAdd { chain, rule, tag });
    }
    Ok(())
}

/// Plans taking an endpoint out of its sandbox: its DNAT rules (in reverse), then the
/// veth by its host end (the sandbox end, its address and routes go with it).
pub fn plan_endpoint_leave(
    net: &Network,
    ep: &Endpoint,
    ports: &[PortMapping],
    b: &mut PlanBuilder,
) -> Result<(), NetworkPlanError> {
    check_join(net, ep, None, ports)?;
    if net.bridge_net().is_none() {
        return Ok(());
    }
    for (chain, _, tag) in port_rules(ep, ports).into_iter().rev() {
        b.runtime(Op::FwRuleDel { chain, tag });
    }
    let veth: IfRef = b.ifref(&ep.veth);
    b.runtime(Op::LinkGet {
        netns: NetnsRef::Host,
        name: ep.veth.clone(),
        index: veth,
    });
    b.runtime(Op::LinkDel {
        netns: NetnsRef::Host,
        index: veth,
    });
    Ok(())
}

/// Plans removing a sandbox's namespace file (after its endpoints left; a `host`
/// container has none to remove, which the engine knows).
pub fn plan_sandbox_remove(sb: &Sandbox, b: &mut PlanBuilder) {
    b.runtime(Op::NetnsRemove {
        path: sb.netns.clone(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{DEFAULT_NETNS_ROOT, SANDBOX_IFNAME};
    use crate::plan::{Actor, Plan, Proto, undo};
    use proptest::prelude::*;

    const NID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const CID: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    fn web(internal: bool) -> Network {
        let subnet = crate::network::ipam::parse_cidr("172.18.0.0/16").unwrap();
        Network::bridge("web", NID, subnet, None, internal).unwrap()
    }
    fn endpoint(net: &Network) -> Endpoint {
        Endpoint::new(
            net,
            CID,
            "172.18.0.2".parse().unwrap(),
            SANDBOX_IFNAME,
            vec![],
        )
        .unwrap()
    }
    fn sandbox() -> Sandbox {
        Sandbox::new(CID, &HostPath::new(DEFAULT_NETNS_ROOT)).unwrap()
    }
    fn port(s: &str) -> PortMapping {
        crate::network::parse_port_mapping(s).unwrap()
    }
    fn plan(f: impl FnOnce(&mut PlanBuilder)) -> Plan {
        let mut b = PlanBuilder::new();
        f(&mut b);
        let p = b.finish();
        p.check().unwrap();
        p
    }
    fn lines(p: &Plan) -> Vec<String> {
        p.steps.iter().map(|s| p.step_text(s)).collect()
    }

    #[test]
    fn create_internal_has_no_way_out() {
        let p = plan(|b| plan_network_create(&web(true), b));
        let text = p.to_string();
        assert!(!text.contains("masquerade"), "{text}");
        assert!(!text.contains("ip_forward"), "{text}");
        assert!(text.contains("fw add filter/forward drop from br-0123456789ab out !br-0123456789ab [net-0123456789ab-internal-out]"), "{text}");
        assert!(
            text.contains("drop to br-0123456789ab in !br-0123456789ab"),
            "{text}"
        );
        let j = plan(|b| {
            plan_endpoint_join(&web(true), &endpoint(&web(true)), &sandbox(), &[], b).unwrap()
        });
        assert!(!j.to_string().contains("route add"), "{j}");
    }

    #[test]
    fn host_and_none() {
        let host = Network::host(NID).unwrap();
        let none = Network::none(NID).unwrap();
        let ep = |n: &Network| {
            Endpoint::new(n, CID, "10.0.0.2".parse().unwrap(), "eth0", vec![]).unwrap()
        };
        assert!(plan(|b| plan_network_create(&host, b)).steps.is_empty());
        assert!(
            plan(|b| plan_endpoint_join(&host, &ep(&host), &sandbox(), &[], b).unwrap())
                .steps
                .is_empty()
        );
        let n = plan(|b| plan_endpoint_join(&none, &ep(&none), &sandbox(), &[], b).unwrap());
        assert_eq!(
            lines(&n),
            [
                format!("runtime netns-create /run/berth/netns/{CID}"),
                format!("runtime ip -n /run/berth/netns/{CID} link show lo -> $fedcba987654.lo"),
                format!("runtime ip -n /run/berth/netns/{CID} link set $fedcba987654.lo up"),
            ]
        );
        let mut b = PlanBuilder::new();
        let e = plan_endpoint_join(&none, &ep(&none), &sandbox(), &[port("80:80")], &mut b)
            .unwrap_err();
        assert!(e.to_string().contains("80:80/tcp"), "{e}");
        assert!(b.finish().steps.is_empty());
    }

    #[test]
    fn join_errors_plan_nothing() {
        let net = web(false);
        let ep = endpoint(&net);
        let run = |n: &Network, e: &Endpoint, s: &Sandbox, ports: &[PortMapping]| {
            let mut b = PlanBuilder::new();
            let r = plan_endpoint_join(n, e, s, ports, &mut b);
            assert!(b.finish().steps.is_empty());
            r.unwrap_err()
        };
        let other = Network::bridge(
            "db",
            "aaaaaaaaaaaa",
            crate::network::ipam::parse_cidr("172.19.0.0/16").unwrap(),
            None,
            false,
        )
        .unwrap();
        assert!(matches!(
            run(&other, &ep, &sandbox(), &[]),
            NetworkPlanError::WrongNetwork { .. }
        ));
        let sb2 = Sandbox::new("other", &HostPath::new("/x")).unwrap();
        assert!(matches!(
            run(&net, &ep, &sb2, &[]),
            NetworkPlanError::WrongSandbox { .. }
        ));
        assert!(matches!(
            run(&net, &ep, &sandbox(), &[port("8080:80"), port("8080:81")]),
            NetworkPlanError::DuplicatePort { .. }
        ));
        assert!(matches!(
            run(&net, &ep, &sandbox(), &[port("[::1]:8080:80")]),
            NetworkPlanError::FamilyMismatch { .. }
        ));
        let e = run(
            &web(true),
            &endpoint(&web(true)),
            &sandbox(),
            &[port("8080:80")],
        );
        assert!(e.to_string().contains("--internal"), "{e}");
        // Same port, different protocols or addresses: fine.
        let mut b = PlanBuilder::new();
        plan_endpoint_join(
            &net,
            &ep,
            &sandbox(),
            &[
                port("8080:80"),
                port("8080:80/udp"),
                port("127.0.0.1:8080:80"),
            ],
            &mut b,
        )
        .unwrap();
        b.finish().check().unwrap();
    }

    #[test]
    fn second_endpoint_has_no_new_sandbox_or_default_route() {
        let net = web(false);
        let ep = Endpoint::new(&net, CID, "172.18.0.9".parse().unwrap(), "eth1", vec![]).unwrap();
        let mut sb = sandbox();
        sb.exists = true;
        let p = plan(|b| plan_endpoint_join(&net, &ep, &sb, &[], b).unwrap());
        let t = p.to_string();
        assert!(
            !t.contains("netns-create") && !t.contains("route add"),
            "{t}"
        );
        assert!(t.contains("link add eth1 type veth"), "{t}");
    }

    #[test]
    fn published_ports_use_both_chains_unless_loopback() {
        let net = web(false);
        let ep = endpoint(&net);
        let ports = [port("127.0.0.1:18080:80"), port("8443:443/udp")];
        let p = plan(|b| plan_endpoint_join(&net, &ep, &sandbox(), &ports, b).unwrap());
        let fw: Vec<String> = lines(&p)
            .into_iter()
            .filter(|l| l.contains(" fw "))
            .collect();
        assert_eq!(
            fw,
            [
                "runtime fw add nat/output dnat tcp 127.0.0.1:18080 -> 172.18.0.2:80 [port-fedcba987654-tcp-127.0.0.1-18080]",
                "runtime fw add nat/prerouting dnat udp *:8443 -> 172.18.0.2:443 [port-fedcba987654-udp-any-8443]",
                "runtime fw add nat/output dnat udp *:8443 -> 172.18.0.2:443 [port-fedcba987654-udp-any-8443]",
            ]
        );
        let leave = plan(|b| plan_endpoint_leave(&net, &ep, &ports, b).unwrap());
        let dels: Vec<String> = lines(&leave)
            .into_iter()
            .filter(|l| l.contains("fw del"))
            .collect();
        assert_eq!(dels.len(), 3);
        assert!(dels[0].contains("nat/output [port-fedcba987654-udp-any-8443]"));
    }

    fn arb_net() -> impl Strategy<Value = (Network, Endpoint, Vec<PortMapping>, bool)> {
        (
            any::<bool>(),
            prop_oneof![Just(0u8), Just(1), Just(2)],
            proptest::collection::btree_set((1u16..=65535, any::<bool>(), any::<bool>()), 0..4),
            any::<bool>(),
        )
            .prop_map(|(internal, driver, ports, exists)| {
                let net = match driver {
                    0 => web(internal),
                    1 => Network::host(NID).unwrap(),
                    _ => Network::none(NID).unwrap(),
                };
                let ports = if net.bridge_net().is_some() && !internal {
                    ports
                        .into_iter()
                        .map(|(hp, udp, lo)| PortMapping {
                            host_ip: lo.then(|| "127.0.0.1".parse().unwrap()),
                            host_port: hp,
                            container_port: 80,
                            proto: if udp { Proto::Udp } else { Proto::Tcp },
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let ep = Endpoint::new(&net, CID, "172.18.0.2".parse().unwrap(), "eth0", vec![])
                    .unwrap();
                (net, ep, ports, exists)
            })
    }

    proptest! {
        /// Create and join plans check, are deterministic, are runtime-only, every step but
        /// lookups has an undo, and each undo of a rule names a tag unique in its chain;
        /// the teardown plans delete exactly the rules the create plans added.
        #[test]
        fn plans_are_sound((net, ep, ports, exists) in arb_net()) {
            let mut sb = sandbox();
            sb.exists = exists;
            let create = plan(|b| plan_network_create(&net, b));
            let join = plan(|b| plan_endpoint_join(&net, &ep, &sb, &ports, b).unwrap());
            prop_assert_eq!(&join, &plan(|b| plan_endpoint_join(&net, &ep, &sb, &ports, b).unwrap()));
            let mut added = Vec::new();
            for p in [&create, &join] {
                for s in &p.steps {
                    prop_assert_eq!(s.actor, Actor::Runtime);
                    let lookup = matches!(s.op, Op::LinkGet { .. });
                    let restartable = matches!(s.op, Op::LinkSetUp { .. } | Op::LinkSetMaster { .. });
                    prop_assert!(lookup || restartable || undo(s).is_some(), "{}", p.step_text(s));
                    if let Op::FwRuleAdd { chain, tag, .. } = &s.op {
                        prop_assert!(!added.contains(&(*chain, tag.clone())), "tag {} twice", tag);
                        added.push((*chain, tag.clone()));
                    }
                }
            }
            let leave = plan(|b| plan_endpoint_leave(&net, &ep, &ports, b).unwrap());
            let remove = plan(|b| plan_network_remove(&net, b));
            let mut deleted: Vec<(FwChain, String)> = [&leave, &remove]
                .iter()
                .flat_map(|p| p.steps.iter())
                .filter_map(|s| match &s.op {
                    Op::FwRuleDel { chain, tag } => Some((*chain, tag.clone())),
                    _ => None,
                })
                .collect();
            deleted.sort();
            added.sort();
            prop_assert_eq!(deleted, added);
        }
    }
}
