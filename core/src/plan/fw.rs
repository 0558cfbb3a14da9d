//! Firewall values for the plan: berth's own nftables table, its chains, and typed rules.
//!
//! Every rule berth adds lives in one table, `table inet berth`, so berth never edits a
//! rule it did not make and `nft delete table inet berth` removes all of it. The table has
//! four base chains (all with policy accept: berth only adds address translation and
//! drops, it never decides what the host otherwise forwards) and one regular chain:
//!
//! | chain         | kind                                    | holds                          |
//! |---------------|-----------------------------------------|--------------------------------|
//! | `prerouting`  | nat, hook prerouting, priority dstnat   | DNAT of published ports        |
//! | `output`      | nat, hook output, priority -100         | DNAT of locally sent packets   |
//! | `postrouting` | nat, hook postrouting, priority srcnat  | masquerade                     |
//! | `forward`     | filter, hook forward, priority filter   | isolation jumps, internal drop |
//! | `isolation`   | regular chain                           | `oifname BRIDGE drop` per net  |
//!
//! Isolation is docker's two-stage scheme: a packet that enters from a berth bridge and
//! leaves by another interface jumps to `isolation`, which drops it if that interface is
//! any berth bridge. Each network adds only rules that name its own bridge, so removing a
//! network removes exactly its rules.
//!
//! Every rule carries a tag (its nft comment), unique in its chain; that is how a later
//! `fw del` finds it. [`FwRule::to_nft`] and [`FW_TABLE_NFT`] give the exact nft syntax,
//! which pins down what each rule means.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::IpNet;

/// The family and name of berth's nftables table.
pub const FW_TABLE: &str = "inet berth";

/// berth's table with its chains, as an `nft -f` script; adding it when it exists changes
/// nothing.
pub const FW_TABLE_NFT: &str = "table inet berth {
\tchain prerouting { type nat hook prerouting priority dstnat; policy accept; }
\tchain output { type nat hook output priority -100; policy accept; }
\tchain postrouting { type nat hook postrouting priority srcnat; policy accept; }
\tchain forward { type filter hook forward priority filter; policy accept; }
\tchain isolation { }
}
";

/// A transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// A chain of berth's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FwChain {
    /// nat, hook prerouting: packets arriving from other hosts and from containers.
    Prerouting,
    /// nat, hook output: packets the host itself sends (to `127.0.0.1:PORT`).
    Output,
    /// nat, hook postrouting: masquerade.
    Postrouting,
    /// filter, hook forward: isolation and `--internal`.
    Forward,
    /// A regular chain `forward` jumps to: drops into any berth bridge.
    Isolation,
}

impl FwChain {
    /// The chain's name in the table (`prerouting`).
    pub fn nft_name(self) -> &'static str {
        match self {
            FwChain::Prerouting => "prerouting",
            FwChain::Output => "output",
            FwChain::Postrouting => "postrouting",
            FwChain::Forward => "forward",
            FwChain::Isolation => "isolation",
        }
    }
}

impl fmt::Display for FwChain {
    /// `nat/prerouting`, `filter/forward`: the kind of chain, then its name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            FwChain::Prerouting | FwChain::Output | FwChain::Postrouting => "nat",
            FwChain::Forward | FwChain::Isolation => "filter",
        };
        write!(f, "{kind}/{}", self.nft_name())
    }
}

/// One nftables rule, typed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FwRule {
    /// A published port: packets to `host_ip:host_port` (any local address when `None`)
    /// go to `to_ip:to_port`.
    Dnat {
        /// The protocol.
        proto: Proto,
        /// The host address; `None` is every local address.
        host_ip: Option<IpAddr>,
        /// The host port.
        host_port: u16,
        /// The container's address.
        to_ip: IpAddr,
        /// The container's port.
        to_port: u16,
    },
    /// Outbound traffic from a network's subnet to anything but its own bridge takes the
    /// host's address.
    Masquerade {
        /// The network's subnet.
        subnet: IpNet,
        /// The network's bridge.
        bridge: String,
    },
    /// Packets from the host's loopback addresses that a DNAT in `output` sent to the
    /// bridge take the bridge's address, so the container can answer (with
    /// `route_localnet` on the bridge, the kernel routes them there at all).
    MasqueradeLoopback {
        /// The bridge.
        bridge: String,
    },
    /// In `forward`: a packet from the bridge to another interface jumps to `isolation`.
    IsolateFrom {
        /// The bridge.
        bridge: String,
    },
    /// In `isolation`: a packet to the bridge (from another berth bridge) is dropped.
    IsolateTo {
        /// The bridge.
        bridge: String,
    },
    /// `--internal`: a packet from the bridge to any other interface is dropped.
    InternalDropOut {
        /// The bridge.
        bridge: String,
    },
    /// `--internal`: a packet from any other interface to the bridge is dropped.
    InternalDropIn {
        /// The bridge.
        bridge: String,
    },
}

/// An nft string literal (names are checked by the planners; quoting keeps any name inert).
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace(['"', '\\'], ""))
}

impl FwRule {
    /// The rule in nft syntax, without its comment (`ip daddr 127.0.0.1 tcp dport 18080
    /// dnat ip to 172.18.0.2:80`).
    pub fn to_nft(&self) -> String {
        match self {
            FwRule::Dnat {
                proto,
                host_ip,
                host_port,
                to_ip,
                to_port,
            } => {
                let to = match to_ip {
                    IpAddr::V4(a) => format!("ip to {a}:{to_port}"),
                    IpAddr::V6(a) => format!("ip6 to [{a}]:{to_port}"),
                };
                let dst = match host_ip {
                    Some(IpAddr::V4(a)) => format!("ip daddr {a}"),
                    Some(IpAddr::V6(a)) => format!("ip6 daddr {a}"),
                    None => "fib daddr type local".to_owned(),
                };
                format!("{dst} {proto} dport {host_port} dnat {to}")
            }
            FwRule::Masquerade { subnet, bridge } => {
                let fam = if subnet.addr.is_ipv4() { "ip" } else { "ip6" };
                format!("{fam} saddr {subnet} oifname != {} masquerade", q(bridge))
            }
            FwRule::MasqueradeLoopback { bridge } => {
                format!("ip saddr 127.0.0.0/8 oifname {} masquerade", q(bridge))
            }
            FwRule::IsolateFrom { bridge } => {
                format!("iifname {b} oifname != {b} jump isolation", b = q(bridge))
            }
            FwRule::IsolateTo { bridge } => format!("oifname {} drop", q(bridge)),
            FwRule::InternalDropOut { bridge } => {
                format!("iifname {b} oifname != {b} drop", b = q(bridge))
            }
            FwRule::InternalDropIn { bridge } => {
                format!("oifname {b} iifname != {b} drop", b = q(bridge))
            }
        }
    }
}

impl fmt::Display for FwRule {
    /// The plan's text: `dnat tcp 127.0.0.1:18080 -> 172.18.0.2:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FwRule::Dnat {
                proto,
                host_ip,
                host_port,
                to_ip,
                to_port,
            } => {
                let host = match host_ip {
                    Some(IpAddr::V6(a)) => format!("[{a}]"),
                    Some(a) => a.to_string(),
                    None => "*".to_owned(),
                };
                let to = match to_ip {
                    IpAddr::V6(a) => format!("[{a}]"),
                    a => a.to_string(),
                };
                write!(f, "dnat {proto} {host}:{host_port} -> {to}:{to_port}")
            }
            FwRule::Masquerade { subnet, bridge } => {
                write!(f, "masquerade from {subnet} out !{bridge}")
            }
            FwRule::MasqueradeLoopback { bridge } => {
                write!(f, "masquerade from 127.0.0.0/8 out {bridge}")
            }
            FwRule::IsolateFrom { bridge } => write!(f, "isolate from {bridge}"),
            FwRule::IsolateTo { bridge } => write!(f, "drop to {bridge}"),
            FwRule::InternalDropOut { bridge } => write!(f, "drop from {bridge} out !{bridge}"),
            FwRule::InternalDropIn { bridge } => write!(f, "drop to {bridge} in !{bridge}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nft_and_text() {
        let dnat = FwRule::Dnat {
            proto: Proto::Tcp,
            host_ip: Some(ip("127.0.0.1")),
            host_port: 18080,
            to_ip: ip("172.18.0.2"),
            to_port: 80,
        };
        assert_eq!(
            dnat.to_nft(),
            "ip daddr 127.0.0.1 tcp dport 18080 dnat ip to 172.18.0.2:80"
        );
        assert_eq!(
            dnat.to_string(),
            "dnat tcp 127.0.0.1:18080 -> 172.18.0.2:80"
        );
        let any = FwRule::Dnat {
            proto: Proto::Udp,
            host_ip: None,
            host_port: 53,
            to_ip: ip("fd00::2"),
            to_port: 5353,
        };
        assert_eq!(
            any.to_nft(),
            "fib daddr type local udp dport 53 dnat ip6 to [fd00::2]:5353"
        );
        assert_eq!(any.to_string(), "dnat udp *:53 -> [fd00::2]:5353");
        let m = FwRule::Masquerade {
            subnet: IpNet {
                addr: ip("172.18.0.0"),
                prefix: 16,
            },
            bridge: "br-0123".to_owned(),
        };
        assert_eq!(
            m.to_nft(),
            "ip saddr 172.18.0.0/16 oifname != \"br-0123\" masquerade"
        );
        assert_eq!(
            FwRule::IsolateFrom {
                bridge: "b\"x".to_owned()
            }
            .to_nft(),
            "iifname \"bx\" oifname != \"bx\" jump isolation"
        );
        assert_eq!(FwChain::Output.to_string(), "nat/output");
        assert_eq!(FwChain::Isolation.to_string(), "filter/isolation");
        assert!(FW_TABLE_NFT.starts_with(&format!("table {FW_TABLE} {{")));
    }
}
