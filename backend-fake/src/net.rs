//! Netlink: links, addresses and routes per network namespace.
//!
//! A veth pair is two links, one per end's namespace, that know each other: deleting
//! either end (or the death of either end's namespace) removes both. ifindexes come from
//! one counter starting at 10, except each new namespace's `lo`, which is 1.

use std::net::IpAddr;

use berth_core::plan::{IpNet, LinkKind, LinkSpec, Namespace, NetnsRef, Plan};

use crate::FakeError;
use crate::model::{Id, Link, NsData, Route};
use crate::world::{FdTarget, World, cap};

/// The interface names the kernel refuses (IFNAMSIZ and `/`, whitespace).
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// True when `addr` lies in the network `net/prefix`.
fn contains(net: IpAddr, prefix: u8, addr: IpAddr) -> bool {
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let shift = 32u32.saturating_sub(u32::from(prefix));
            let mask = if shift >= 32 { 0 } else { u32::MAX << shift };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let shift = 128u32.saturating_sub(u32::from(prefix));
            let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// A fresh namespace's loopback.
pub(crate) fn loopback(up: bool) -> Link {
    Link {
        name: "lo".to_owned(),
        kind: "loopback".to_owned(),
        up,
        master: None,
        mtu: 65536,
        mac: None,
        peer: None,
        addrs: Default::default(),
    }
}

impl World {
    /// The network namespace a netlink op talks to, with its name for messages.
    pub(crate) fn netns(
        &mut self,
        plan: &Plan,
        pid: u32,
        r: &NetnsRef,
        op: &'static str,
    ) -> Result<Id, FakeError> {
        let id = match r {
            NetnsRef::Host => self.ns_of(pid, Namespace::Network)?,
            NetnsRef::Path(p) => self.ns_by_path(pid, p, Namespace::Network, op)?,
            NetnsRef::Fd(fd) => match self.fd_of(plan, *fd)? {
                FdTarget::Ns(id) => id,
                FdTarget::Pty | FdTarget::Socket => {
                    return Err(FakeError::NamespaceKind {
                        op,
                        path: format!("${}", plan.name_of(berth_core::plan::AnyRef::Fd(*fd))),
                        wanted: Namespace::Network,
                    });
                }
            },
        };
        match self.m.ns.get(&id) {
            Some(n) if n.kind == Namespace::Network => {}
            Some(_) => {
                return Err(FakeError::NamespaceKind {
                    op,
                    path: self.ns_text(id),
                    wanted: Namespace::Network,
                });
            }
            None => {
                return Err(FakeError::NamespaceGone {
                    op,
                    what: format!("net namespace {id}"),
                });
            }
        }
        self.need_cap(op, pid, cap::NET_ADMIN, id)?;
        Ok(id)
    }

    fn net(
        &mut self,
        ns: Id,
    ) -> Option<(
        &mut std::collections::BTreeMap<u32, Link>,
        &mut std::collections::BTreeSet<Route>,
    )> {
        match self.m.ns_mut(ns).map(|n| &mut n.data) {
            Some(NsData::Net { links, routes, .. }) => Some((links, routes)),
            _ => None,
        }
    }

    fn no_link(&self, op: &'static str, link: String, ns: Id) -> FakeError {
        FakeError::NoLink {
            op,
            link,
            netns: self.ns_text(ns),
        }
    }

    fn has_name(&mut self, ns: Id, name: &str) -> bool {
        self.net(ns)
            .is_some_and(|(links, _)| links.values().any(|l| l.name == name))
    }

    /// `ip link add`; returns the new link's ifindex.
    pub(crate) fn link_add(
        &mut self,
        plan: &Plan,
        pid: u32,
        netns: &NetnsRef,
        spec: &LinkSpec,
    ) -> Result<u32, FakeError> {
        let op = "link add";
        let ns = self.netns(plan, pid, netns, op)?;
        let names: Vec<&str> = match &spec.kind {
            LinkKind::Veth { peer_name, .. } => vec![&spec.name, peer_name],
            _ => vec![&spec.name],
        };
        for n in &names {
            if !valid_ifname(n) {
                return Err(FakeError::Invalid {
                    op,
                    why: format!("bad interface name {n:?}"),
                });
            }
        }
        if self.has_name(ns, &spec.name) {
            return Err(FakeError::Exists {
                op,
                path: format!("{} in {}", spec.name, self.ns_text(ns)),
            });
        }
        let mtu = spec.mtu.unwrap_or(1500);
        let mut link = Link {
            name: spec.name.clone(),
            kind: String::new(),
            up: false,
            master: None,
            mtu,
            mac: spec.mac.clone(),
            peer: None,
            addrs: Default::default(),
        };
        let index = self.ifindex();
        match &spec.kind {
            LinkKind::Bridge => link.kind = "bridge".to_owned(),
            LinkKind::Dummy => link.kind = "dummy".to_owned(),
            LinkKind::Veth {
                peer_name,
                peer_netns,
            } => {
                link.kind = "veth".to_owned();
                let pns = self.netns(plan, pid, peer_netns, op)?;
                if self.has_name(pns, peer_name) || (pns == ns && *peer_name == spec.name) {
                    return Err(FakeError::Exists {
                        op,
                        path: format!("{peer_name} in {}", self.ns_text(pns)),
                    });
                }
                let pindex = self.ifindex();
                link.peer = Some((pns, pindex));
                let peer = Link {
                    name: peer_name.clone(),
                    kind: "veth".to_owned(),
                    up: false,
                    master: None,
                    mtu,
                    mac: None,
                    peer: Some((ns, index)),
                    addrs: Default::default(),
                };
                if let Some((links, _)) = self.net(pns) {
                    links.insert(pindex, peer);
                }
            }
        }
        if let Some((links, _)) = self.net(ns) {
            links.insert(index, link);
        }
        Ok(index)
    }

    /// Removes one link and what hangs on it (routes via it, ports' master).
    fn drop_link(&mut self, ns: Id, index: u32) -> Option<Link> {
        let (links, routes) = self.net(ns)?;
        let link = links.remove(&index)?;
        routes.retain(|r| r.2 != Some(index));
        for l in links.values_mut() {
            if l.master == Some(index) {
                l.master = None;
            }
        }
        // Its `net.*.conf.NAME.*` sysctls go with it.
        if let Some(NsData::Net { sysctl, .. }) = self.m.ns_mut(ns).map(|n| &mut n.data) {
            sysctl.retain(|k, _| {
                let c: Vec<&str> = k.splitn(5, '.').collect();
                !(c.get(2) == Some(&"conf") && c.get(3) == Some(&link.name.as_str()))
            });
        }
        Some(link)
    }

    /// `ip link del`: a veth goes with its peer.
    pub(crate) fn link_del(
        &mut self,
        plan: &Plan,
        pid: u32,
        netns: &NetnsRef,
        index: u32,
    ) -> Result<(), FakeError> {
        let op = "link del";
        let ns = self.netns(plan, pid, netns, op)?;
        let link = self
            .drop_link(ns, index)
            .ok_or_else(|| self.no_link(op, index.to_string(), ns))?;
        if let Some((pns, pindex)) = link.peer {
            self.drop_link(pns, pindex);
        }
        Ok(())
    }

    /// `ip link show NAME`: its ifindex.
    pub(crate) fn link_get(
        &mut self,
        plan: &Plan,
        pid: u32,
        netns: &NetnsRef,
        name: &str,
    ) -> Result<u32, FakeError> {
        let op = "link show";
        let ns = self.netns(plan, pid, netns, op)?;
        let found = self
            .net(ns)
            .and_then(|(links, _)| links.iter().find(|(_, l)| l.name == name).map(|(i, _)| *i));
        found.ok_or_else(|| self.no_link(op, name.to_owned(), ns))
    }

    fn link_mut(&mut self, op: &'static str, ns: Id, index: u32) -> Result<&mut Link, FakeError> {
        let err = self.no_link(op, index.to_string(), ns);
        self.net(ns)
            .and_then(|(links, _)| links.get_mut(&index))
            .ok_or(err)
    }

    /// `ip link set up|down`.
    pub(crate) fn link_set_up(
        &mut self,
        plan: &Plan,
        pid: u32,
        netns: &NetnsRef,
        index: u32,
        up: bool,
    ) -> Result<(), FakeError> {
        let op = "link set";
        let ns = self.netns(plan, pid, netns, op)?;
        self.link_mut(op, ns, index)?.up = up;
        Ok(())
    }

    /// `ip link set master`.
    pub(crate) fn link_set_master(
        &mut self,
        plan: &Plan,
        pid: u32,
        netns: &NetnsRef,
        index: u32,
        master: u32,
    ) -> Result<(), FakeError> {
        let op = "link set master";
        let ns = self.netns(plan, pid, netns, op)?;
        let kind = self.link_mut(op, ns, master)?.kind.clone();
        if kind != "bridge" {
            return Err(FakeError::Invalid {
                op,
                why: format!("link {master} is a {kind}, not a bridge"),
            });
        }
        if index == master {
            return Err(FakeError::Invalid {
                op,
                why: "a bridge cannot be its own port".to_owned(),
            });
        }
        self.link_mut(op, ns, index)?.master = Some(master);
        Ok(())
    }

    /// `ip addr add|del`.
    pub(crate) fn addr(
        &mut self,
        plan: &Plan,
        pid: u32,
        netns: &NetnsRef,
        index: u32,
        addr: &IpNet,
        add: bool,
    ) -> Result<(), FakeError> {
        let op = if add { "addr add" } else { "addr del" };
        let ns = self.netns(plan, pid, netns, op)?;
        let max = if addr.addr.is_ipv4() { 32 } else { 128 };
        if addr.prefix > max {
            return Err(FakeError::Invalid {
                op,
                why: format!("prefix of {addr}"),
            });
        }
        let link = self.link_mut(op, ns, index)?;
        let key = (addr.addr, addr.prefix);
        if add {
            if !link.addrs.insert(key) {
                return Err(FakeError::Exists {
                    op,
                    path: format!("{addr} on {}", link.name),
                });
            }
        } else if !link.addrs.remove(&key) {
            return Err(FakeError::Missing {
                op,
                path: format!("{addr} on {}", link.name),
            });
        }
        Ok(())
    }

    /// `ip route add|del`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn route(
        &mut self,
        plan: &Plan,
        pid: u32,
        netns: &NetnsRef,
        dst: &Option<IpNet>,
        gateway: Option<IpAddr>,
        dev: Option<u32>,
        add: bool,
    ) -> Result<(), FakeError> {
        let op = if add { "route add" } else { "route del" };
        let ns = self.netns(plan, pid, netns, op)?;
        let shown = dst
            .as_ref()
            .map_or_else(|| "default".to_owned(), ToString::to_string);
        if let Some(d) = dev {
            self.link_mut(op, ns, d)?;
        }
        let route: Route = (dst.as_ref().map(|d| (d.addr, d.prefix)), gateway, dev);
        let Some((links, routes)) = self.net(ns) else {
            return Err(FakeError::NamespaceGone {
                op,
                what: format!("net namespace {ns}"),
            });
        };
        if !add {
            if !routes.remove(&route) {
                return Err(FakeError::Missing { op, path: shown });
            }
            return Ok(());
        }
        if dev.is_none() && gateway.is_none() {
            return Err(FakeError::Invalid {
                op,
                why: format!("route {shown} has neither a device nor a gateway"),
            });
        }
        if let Some(gw) = gateway {
            // The kernel wants the gateway on a connected network of an up link.
            let reachable = links.iter().any(|(i, l)| {
                l.up && dev.is_none_or(|d| d == *i)
                    && l.addrs.iter().any(|(net, p)| contains(*net, *p, gw))
            });
            if !reachable {
                return Err(FakeError::Invalid {
                    op,
                    why: format!("gateway {gw} is not on a connected network of an up link"),
                });
            }
        }
        if !routes.insert(route) {
            return Err(FakeError::Exists { op, path: shown });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(contains(a("10.88.0.0"), 16, a("10.88.3.4")));
        assert!(!contains(a("10.88.0.0"), 16, a("10.89.0.1")));
        assert!(contains(a("0.0.0.0"), 0, a("1.2.3.4")));
        assert!(contains(a("fd00::"), 64, a("fd00::1")));
        assert!(!contains(a("fd00::"), 64, a("10.0.0.1")));
        assert!(valid_ifname("eth0"));
        assert!(!valid_ifname("a/b"));
        assert!(!valid_ifname("0123456789abcdef"));
    }
}
