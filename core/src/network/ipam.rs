//! IP address management: which address an endpoint gets, which subnet a network gets.
//!
//! The engine keeps allocations in its database (one transaction per change, so two
//! concurrent `berth run`s cannot take the same row); this module only decides, from the
//! subnet and the set of addresses already taken, which address comes next.
//!
//! Policy: the **lowest free address** first (docker hands out addresses sequentially
//! after the last one, to delay reuse; that needs a persisted cursor, and reuse is safe
//! here: the MAC is derived from the address, so a peer's stale ARP entry is still right).
//! Never handed out: the network address, the gateway, and (IPv4) the broadcast address.
//!
//! Default pools, as docker's: `172.17.0.0/16` to `172.31.0.0/16`, then `192.168.0.0/20`
//! to `192.168.240.0/20`; the first that overlaps no subnet given as taken (berth's
//! networks, and the host's routes, which the backend probes) is chosen. The default
//! network `bridge` is made first, so it gets `172.17.0.0/16` on a host that has no
//! route there.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::plan::IpNet;

/// An address or subnet IPAM cannot give out or take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// CIDR text that does not parse.
    #[error("subnet {input:?}: expected ADDRESS/PREFIX, like 172.18.0.0/16")]
    BadCidr {
        /// The text as given.
        input: String,
    },
    /// A prefix longer than the address.
    #[error("subnet {0}: the prefix is longer than the address")]
    BadPrefix(IpNet),
    /// A subnet with host bits set (`172.18.0.1/16`).
    #[error("subnet {given}: host bits are set (did you mean {network}?)")]
    HostBitsSet {
        /// The subnet as given.
        given: IpNet,
        /// Its network.
        network: IpNet,
    },
    /// A subnet too small for a gateway and one endpoint.
    #[error("subnet {0} is too small: a network needs room for a gateway and an endpoint")]
    TooSmall(IpNet),
    /// An address outside the subnet.
    #[error("address {ip} is not in subnet {subnet}")]
    OutOfSubnet {
        /// The address.
        ip: IpAddr,
        /// The subnet.
        subnet: IpNet,
    },
    /// The network address, the gateway or the broadcast address.
    #[error("address {ip} is the {what} of {subnet}")]
    Reserved {
        /// The address.
        ip: IpAddr,
        /// The subnet.
        subnet: IpNet,
        /// `network address`, `gateway` or `broadcast address`.
        what: &'static str,
    },
    /// A requested address that is taken.
    #[error("address {ip} in {subnet} is already in use")]
    InUse {
        /// The address.
        ip: IpAddr,
        /// The subnet.
        subnet: IpNet,
    },
    /// Every address is taken.
    #[error("subnet {0} is full: no free address left")]
    Full(IpNet),
    /// Every default pool overlaps a taken subnet.
    #[error("no free subnet left in the default pools (172.17-31.0.0/16, 192.168.0.0/20 steps)")]
    PoolsExhausted,
}

/// `(value, bits)` of an address: the integer and 32 or 128.
fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

fn from_bits(v: u128, v4: bool) -> IpAddr {
    if v4 {
        // The value came from an IPv4 address and stayed in its subnet.
        IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX)))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// The host-part mask of a prefix in an address of `width` bits.
fn host_mask(prefix: u8, width: u8) -> u128 {
    let host = u32::from(width.saturating_sub(prefix));
    if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    }
}

/// Parses `ADDRESS/PREFIX` (`--subnet`); the result is checked by [`check_subnet`].
pub fn parse_cidr(input: &str) -> Result<IpNet, IpamError> {
    let bad = || IpamError::BadCidr {
        input: input.to_owned(),
    };
    let (a, p) = input.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = a.parse().map_err(|_| bad())?;
    if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let prefix: u8 = p.parse().map_err(|_| bad())?;
    check_subnet(&IpNet { addr, prefix })
}

/// The subnet, checked: a prefix the address can have, no host bits, and room for a
/// gateway and one endpoint (IPv4: at most /30; IPv6: at most /126).
pub fn check_subnet(net: &IpNet) -> Result<IpNet, IpamError> {
    let (v, width) = bits(net.addr);
    if net.prefix > width {
        return Err(IpamError::BadPrefix(net.clone()));
    }
    let mask = host_mask(net.prefix, width);
    if v & mask != 0 {
        return Err(IpamError::HostBitsSet {
            given: net.clone(),
            network: IpNet {
                addr: from_bits(v & !mask, width == 32),
                prefix: net.prefix,
            },
        });
    }
    if net.prefix > width - 2 {
        return Err(IpamError::TooSmall(net.clone()));
    }
    Ok(net.clone())
}

/// Whether `ip` is in `net` (an address of the other family never is).
pub fn contains(net: &IpNet, ip: IpAddr) -> bool {
    let (n, w) = bits(net.addr);
    let (a, wa) = bits(ip);
    w == wa && net.prefix <= w && (n & !host_mask(net.prefix, w)) == (a & !host_mask(net.prefix, w))
}

/// Whether two subnets share an address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    let shorter = if a.prefix <= b.prefix { a } else { b };
    let other = if a.prefix <= b.prefix { b } else { a };
    contains(shorter, other.addr)
}

/// The first (lowest) and last host addresses of a checked subnet: IPv4 leaves out the
/// network and broadcast addresses, IPv6 the network (subnet-router anycast) address.
fn host_range(net: &IpNet) -> (u128, u128) {
    let (v, w) = bits(net.addr);
    let mask = host_mask(net.prefix, w);
    let net_addr = v & !mask;
    let last = net_addr | mask;
    (net_addr + 1, if w == 32 { last - 1 } else { last })
}

/// The subnet's first host address: the default gateway.
pub fn first_host(net: &IpNet) -> Result<IpAddr, IpamError> {
    let net = check_subnet(net)?;
    Ok(from_bits(host_range(&net).0, net.addr.is_ipv4()))
}

/// Checks that `ip` is an address of `net` an endpoint or gateway may have: inside, and not
/// the network or broadcast address.
pub fn check_host_address(net: &IpNet, ip: IpAddr) -> Result<(), IpamError> {
    if !contains(net, ip) {
        return Err(IpamError::OutOfSubnet {
            ip,
            subnet: net.clone(),
        });
    }
    let (first, last) = host_range(net);
    let (v, _) = bits(ip);
    if v < first {
        return Err(IpamError::Reserved {
            ip,
            subnet: net.clone(),
            what: "network address",
        });
    }
    if v > last {
        return Err(IpamError::Reserved {
            ip,
            subnet: net.clone(),
            what: "broadcast address",
        });
    }
    Ok(())
}

/// Picks an endpoint's address in `subnet`: `request` (`--ip`) when it is a free host
/// address, else the lowest address that is neither `gateway` nor in `taken`.
pub fn allocate(
    subnet: &IpNet,
    gateway: IpAddr,
    taken: &BTreeSet<IpAddr>,
    request: Option<IpAddr>,
) -> Result<IpAddr, IpamError> {
    let subnet = check_subnet(subnet)?;
    if let Some(ip) = request {
        check_host_address(&subnet, ip)?;
        if ip == gateway {
            return Err(IpamError::Reserved {
                ip,
                subnet,
                what: "gateway",
            });
        }
        if taken.contains(&ip) {
            return Err(IpamError::InUse { ip, subnet });
        }
        return Ok(ip);
    }
    let v4 = subnet.addr.is_ipv4();
    let (first, last) = host_range(&subnet);
    // Walk the taken addresses in order from `first`: the first gap is the answer, so the
    // loop runs at most |taken| + 2 times whatever the subnet's size.
    let mut used: Vec<u128> = taken
        .iter()
        .copied()
        .chain([gateway])
        .filter(|ip| contains(&subnet, *ip))
        .map(|ip| bits(ip).0)
        .filter(|v| (first..=last).contains(v))
        .collect();
    used.sort_unstable();
    used.dedup();
    let mut next = first;
    for u in used {
        if u > next {
            break;
        }
        if u == next {
            if next == last {
                return Err(IpamError::Full(subnet));
            }
            next += 1;
        }
    }
    Ok(from_bits(next, v4))
}

/// An address pool over one subnet: the allocator with the taken set kept in memory (what
/// the engine's table holds), for callers and tests that allocate and release in turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    subnet: IpNet,
    gateway: IpAddr,
    taken: BTreeSet<IpAddr>,
}

impl Pool {
    /// An empty pool; the gateway is never handed out.
    pub fn new(subnet: &IpNet, gateway: IpAddr) -> Result<Pool, IpamError> {
        let subnet = check_subnet(subnet)?;
        check_host_address(&subnet, gateway)?;
        Ok(Pool {
            subnet,
            gateway,
            taken: BTreeSet::new(),
        })
    }

    /// Takes an address (see [`allocate`]).
    pub fn allocate(&mut self, request: Option<IpAddr>) -> Result<IpAddr, IpamError> {
        let ip = allocate(&self.subnet, self.gateway, &self.taken, request)?;
        self.taken.insert(ip);
        Ok(ip)
    }

    /// Gives an address back; false if it was not taken.
    pub fn release(&mut self, ip: IpAddr) -> bool {
        self.taken.remove(&ip)
    }

    /// The addresses taken.
    pub fn taken(&self) -> &BTreeSet<IpAddr> {
        &self.taken
    }
}

/// docker's default pools in order: the `/16`s of 172.17-31, then the `/20`s of
/// 192.168.0.0/16.
pub fn default_pools() -> impl Iterator<Item = IpNet> {
    let big = (17u8..=31).map(|b| IpNet {
        addr: IpAddr::V4(Ipv4Addr::new(172, b, 0, 0)),
        prefix: 16,
    });
    let small = (0u8..16).map(|i| IpNet {
        addr: IpAddr::V4(Ipv4Addr::new(192, 168, i * 16, 0)),
        prefix: 20,
    });
    big.chain(small)
}

/// The first default pool that overlaps none of `taken`: berth's own networks and the
/// host's routes. Default routes (prefix 0) are ignored: they overlap everything.
pub fn default_subnet(taken: &[IpNet]) -> Result<IpNet, IpamError> {
    default_pools()
        .find(|p| !taken.iter().any(|t| t.prefix > 0 && overlaps(p, t)))
        .ok_or(IpamError::PoolsExhausted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        parse_cidr(s).unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs() {
        assert_eq!(net("172.18.0.0/16").prefix, 16);
        assert_eq!(
            parse_cidr("172.18.0.1/16"),
            Err(IpamError::HostBitsSet {
                given: IpNet {
                    addr: ip("172.18.0.1"),
                    prefix: 16
                },
                network: net("172.18.0.0/16"),
            })
        );
        for bad in [
            "172.18.0.0",
            "x/16",
            "172.18.0.0/",
            "172.18.0.0/+1",
            "1.2.3.4/999",
        ] {
            assert_eq!(
                parse_cidr(bad),
                Err(IpamError::BadCidr {
                    input: bad.to_owned()
                }),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_cidr("10.0.0.0/33"),
            Err(IpamError::BadPrefix(_))
        ));
        assert!(matches!(
            parse_cidr("10.0.0.0/31"),
            Err(IpamError::TooSmall(_))
        ));
        let e = parse_cidr("10.0.0.4/31").unwrap_err().to_string();
        assert!(e.contains("10.0.0.4/31"), "{e}");
        assert!(contains(&net("10.0.0.0/8"), ip("10.255.0.1")));
        assert!(!contains(&net("10.0.0.0/8"), ip("11.0.0.1")));
        assert!(!contains(&net("10.0.0.0/8"), ip("::1")));
        assert!(overlaps(&net("172.16.0.0/12"), &net("172.18.0.0/16")));
        assert!(overlaps(&net("172.18.0.0/16"), &net("172.16.0.0/12")));
        assert!(!overlaps(&net("172.18.0.0/16"), &net("172.19.0.0/16")));
    }

    #[test]
    fn allocation() {
        let s = net("10.0.0.0/29"); // hosts .1 .. .6
        let gw = ip("10.0.0.1");
        let mut p = Pool::new(&s, gw).unwrap();
        let got: Vec<IpAddr> = (0..5).map(|_| p.allocate(None).unwrap()).collect();
        assert_eq!(
            got,
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"].map(ip)
        );
        assert_eq!(p.allocate(None), Err(IpamError::Full(s.clone())));
        assert!(
            p.allocate(None)
                .unwrap_err()
                .to_string()
                .contains("10.0.0.0/29")
        );
        assert!(p.release(ip("10.0.0.4")));
        assert!(!p.release(ip("10.0.0.4")));
        assert_eq!(p.allocate(None), Ok(ip("10.0.0.4")));
        // --ip
        let mut q = Pool::new(&s, gw).unwrap();
        assert_eq!(q.allocate(Some(ip("10.0.0.5"))), Ok(ip("10.0.0.5")));
        assert_eq!(
            q.allocate(Some(ip("10.0.0.5"))),
            Err(IpamError::InUse {
                ip: ip("10.0.0.5"),
                subnet: s.clone()
            })
        );
        for (bad, what) in [
            ("10.0.0.0", "network address"),
            ("10.0.0.7", "broadcast address"),
            ("10.0.0.1", "gateway"),
        ] {
            assert_eq!(
                q.allocate(Some(ip(bad))),
                Err(IpamError::Reserved {
                    ip: ip(bad),
                    subnet: s.clone(),
                    what
                })
            );
        }
        assert!(matches!(
            q.allocate(Some(ip("10.0.1.2"))),
            Err(IpamError::OutOfSubnet { .. })
        ));
        // A gateway in the middle is skipped.
        let mut r = Pool::new(&s, ip("10.0.0.3")).unwrap();
        let got: Vec<IpAddr> = (0..3).map(|_| r.allocate(None).unwrap()).collect();
        assert_eq!(got, ["10.0.0.1", "10.0.0.2", "10.0.0.4"].map(ip));
        // Large subnets answer at once.
        let big = net("10.0.0.0/8");
        assert_eq!(
            allocate(&big, ip("10.0.0.1"), &BTreeSet::new(), None),
            Ok(ip("10.0.0.2"))
        );
        let v6 = net("fd00::/126"); // ::1 ::2 ::3
        let mut p6 = Pool::new(&v6, ip("fd00::1")).unwrap();
        assert_eq!(p6.allocate(None), Ok(ip("fd00::2")));
        assert_eq!(p6.allocate(None), Ok(ip("fd00::3")));
        assert_eq!(p6.allocate(None), Err(IpamError::Full(v6)));
    }

    #[test]
    fn default_subnets() {
        assert_eq!(default_subnet(&[]), Ok(net("172.17.0.0/16")));
        let routes = [
            net("0.0.0.0/0"),
            net("172.17.0.0/16"),
            net("172.18.5.0/24"),
            net("10.0.0.0/8"),
        ];
        assert_eq!(default_subnet(&routes), Ok(net("172.19.0.0/16")));
        assert_eq!(
            default_subnet(&[net("172.16.0.0/12")]),
            Ok(net("192.168.0.0/20"))
        );
        assert_eq!(
            default_subnet(&[net("172.16.0.0/12"), net("192.168.1.0/24")]),
            Ok(net("192.168.16.0/20"))
        );
        assert_eq!(
            default_subnet(&[net("172.16.0.0/12"), net("192.168.0.0/16")]),
            Err(IpamError::PoolsExhausted)
        );
        assert_eq!(default_pools().count(), 15 + 16);
    }

    fn small_subnet() -> impl Strategy<Value = (IpNet, IpAddr)> {
        (24u8..=30, any::<u32>(), any::<u32>()).prop_map(|(prefix, base, g)| {
            let host = 32 - u32::from(prefix);
            let mask = (1u32 << host) - 1;
            let n = base & !mask;
            let gw = n + 1 + g % (mask - 1);
            (
                IpNet {
                    addr: IpAddr::V4(Ipv4Addr::from(n)),
                    prefix,
                },
                IpAddr::V4(Ipv4Addr::from(gw)),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            max_shrink_iters: 2048,
            ..ProptestConfig::default()
        })]

        /// Allocating and releasing in any order: never the same address twice while it
        /// is held, never the network, gateway or broadcast address, exhaustion exactly
        /// when every host address but the gateway is held, and a released address is
        /// the next one given back when it is the lowest free.
        #[test]
        fn allocator(
            (subnet, gw) in small_subnet(),
            ops in proptest::collection::vec((any::<bool>(), any::<u8>()), 0..300),
        ) {
            let mut pool = Pool::new(&subnet, gw).unwrap();
            let (n, _) = bits(subnet.addr);
            let size = 1u128 << (32 - subnet.prefix);
            let usable = usize::try_from(size - 3).unwrap();
            let mut held: Vec<IpAddr> = Vec::new();
            for (alloc, pick) in ops {
                if alloc || held.is_empty() {
                    match pool.allocate(None) {
                        Ok(ip) => {
                            prop_assert!(!held.contains(&ip), "{ip} given twice");
                            prop_assert!(contains(&subnet, ip));
                            let (v, _) = bits(ip);
                            prop_assert!(v != n && v != n + size - 1 && ip != gw, "{ip} reserved");
                            held.push(ip);
                        }
                        Err(e) => {
                            prop_assert_eq!(e, IpamError::Full(subnet.clone()));
                            prop_assert_eq!(held.len(), usable);
                        }
                    }
                } else {
                    let ip = held.swap_remove(usize::from(pick) % held.len());
                    prop_assert!(pool.release(ip));
                    // Lowest free first: nothing below it is free, so it comes back.
                    let lower_free = (host_range(&subnet).0..bits(ip).0)
                        .map(|v| from_bits(v, true))
                        .any(|a| a != gw && !held.contains(&a));
                    if !lower_free {
                        prop_assert_eq!(pool.allocate(None), Ok(ip));
                        held.push(ip);
                    }
                }
                prop_assert_eq!(pool.taken().len(), held.len());
            }
        }

        /// The chosen default subnet overlaps nothing taken, and is the first pool that
        /// does not.
        #[test]
        fn default_subnet_avoids_taken(
            taken in proptest::collection::vec((any::<u32>(), 8u8..=28), 0..12),
        ) {
            let taken: Vec<IpNet> = taken
                .into_iter()
                .map(|(a, p)| {
                    let mask = (1u32 << (32 - u32::from(p))) - 1;
                    IpNet { addr: IpAddr::V4(Ipv4Addr::from(a & !mask)), prefix: p }
                })
                .collect();
            match default_subnet(&taken) {
                Ok(s) => {
                    prop_assert!(!taken.iter().any(|t| overlaps(&s, t)));
                    for earlier in default_pools().take_while(|p| *p != s) {
                        prop_assert!(taken.iter().any(|t| overlaps(&earlier, t)));
                    }
                }
                Err(_) => {
                    for p in default_pools() {
                        prop_assert!(taken.iter().any(|t| overlaps(&p, t)));
                    }
                }
            }
        }
    }
}
