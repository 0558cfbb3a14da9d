//! Links, addresses and routes: core's netlink ops as rtnetlink requests.
//!
//! Each function sends one request (plus, for a link add, a lookup of the new ifindex) on a
//! connection opened in the op's namespace; nothing here decides what to do.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;

use berth_core::plan::{IpNet, LinkKind, LinkSpec};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkMessage};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{
    AddressMessageBuilder, Handle, LinkBridge, LinkDummy, LinkMessageBuilder, LinkUnspec, LinkVeth,
    RouteMessageBuilder,
};

use super::error::{Fail, NlCall};

/// `ip link add`: creates the link; for a veth whose peer goes to another namespace,
/// `peer_ns` is that namespace's fd (`IFLA_NET_NS_FD` on the peer), so the peer is made
/// there directly and never appears in the link's own namespace. A veth's MTU is both
/// ends'; its MAC address is the named end's only. Returns nothing: the caller looks the
/// new ifindex up by name.
pub(crate) async fn link_add(
    handle: &Handle,
    spec: &LinkSpec,
    peer_ns: Option<RawFd>,
) -> Result<(), Fail> {
    let mac = spec.mac.as_deref().map(parse_mac).transpose()?;
    let message = match &spec.kind {
        LinkKind::Bridge => finish(LinkMessageBuilder::<LinkBridge>::new(&spec.name), spec, mac),
        LinkKind::Dummy => finish(LinkMessageBuilder::<LinkDummy>::new(&spec.name), spec, mac),
        LinkKind::Veth { peer_name, .. } => {
            let mut peer = LinkMessageBuilder::<LinkUnspec>::new().name(peer_name.clone());
            if let Some(fd) = peer_ns {
                peer = peer.setns_by_fd(fd);
            }
            // One MTU for the pair: ends that differ drop what the larger one sends.
            if let Some(mtu) = spec.mtu {
                peer = peer.mtu(mtu);
            }
            let builder = LinkMessageBuilder::<LinkVeth>::new(&spec.name, peer_name)
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())));
            finish(builder, spec, mac)
        }
    };
    // `add` sends NLM_F_CREATE | NLM_F_EXCL: an existing link of that name is EEXIST, never
    // taken over.
    handle.link().add(message).execute().await.nl("RTM_NEWLINK")
}

/// The attributes common to every kind: MTU and MAC address.
fn finish<T>(mut b: LinkMessageBuilder<T>, spec: &LinkSpec, mac: Option<Vec<u8>>) -> LinkMessage {
    if let Some(mtu) = spec.mtu {
        b = b.mtu(mtu);
    }
    if let Some(mac) = mac {
        b = b.address(mac);
    }
    b.build()
}

/// `aa:bb:cc:dd:ee:ff` as six bytes.
pub(crate) fn parse_mac(text: &str) -> Result<Vec<u8>, Fail> {
    let bad = || Fail::BadMac(text.to_owned());
    let bytes: Vec<u8> = text
        .split(':')
        .map(|h| {
            if h.len() == 2 {
                u8::from_str_radix(h, 16).map_err(|_| bad())
            } else {
                Err(bad())
            }
        })
        .collect::<Result<_, _>>()?;
    if bytes.len() == 6 {
        Ok(bytes)
    } else {
        Err(bad())
    }
}

/// `ip link show NAME`: the ifindex of the link named `name`.
pub(crate) async fn link_index(handle: &Handle, name: &str) -> Result<u32, Fail> {
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(Some(m)) => Ok(m.header.index),
        Ok(None) => Err(Fail::NoLink(name.to_owned())),
        Err(rtnetlink::Error::NetlinkError(m))
            if m.code.map(|c| -c.get()) == Some(libc::ENODEV) =>
        {
            Err(Fail::NoLink(name.to_owned()))
        }
        Err(e) => Err(Fail::Netlink("RTM_GETLINK", e)),
    }
}

/// `ip link del`.
pub(crate) async fn link_del(handle: &Handle, index: u32) -> Result<(), Fail> {
    handle.link().del(index).execute().await.nl("RTM_DELLINK")
}

/// `ip link del NAME`: for a link just made whose index could not be learned.
pub(crate) async fn link_del_by_name(handle: &Handle, name: &str) -> Result<(), Fail> {
    handle
        .link()
        .del_with_message(LinkUnspec::new_with_name(name).build())
        .execute()
        .await
        .nl("RTM_DELLINK")
}

/// `ip link set up|down`.
pub(crate) async fn link_set_up(handle: &Handle, index: u32, up: bool) -> Result<(), Fail> {
    let b = LinkUnspec::new_with_index(index);
    let b = if up { b.up() } else { b.down() };
    handle
        .link()
        .set(b.build())
        .execute()
        .await
        .nl("RTM_NEWLINK (set up/down)")
}

/// `ip link set master`.
pub(crate) async fn link_set_master(handle: &Handle, index: u32, master: u32) -> Result<(), Fail> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).controller(master).build())
        .execute()
        .await
        .nl("RTM_NEWLINK (set master)")
}

/// `ip addr add`.
pub(crate) async fn addr_add(handle: &Handle, index: u32, addr: &IpNet) -> Result<(), Fail> {
    handle
        .address()
        .add(index, addr.addr, addr.prefix)
        .execute()
        .await
        .nl("RTM_NEWADDR")
}

/// `ip addr del`.
pub(crate) async fn addr_del(handle: &Handle, index: u32, addr: &IpNet) -> Result<(), Fail> {
    let message = match addr.addr {
        IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(a, addr.prefix)
            .build(),
        IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(a, addr.prefix)
            .build(),
    };
    handle
        .address()
        .del(message)
        .execute()
        .await
        .nl("RTM_DELADDR")
}

/// A route as `ip route add|del` would send it: `dst` `None` is the default route (of the
/// gateway's family; IPv4 when there is no gateway either), and a route without a gateway
/// has link scope (what `ip route` sets for a directly connected destination).
pub(crate) fn route_message(
    dst: Option<&IpNet>,
    gateway: Option<IpAddr>,
    dev: Option<u32>,
) -> Result<rtnetlink::packet_route::route::RouteMessage, Fail> {
    let (dst_addr, prefix) = match (dst, gateway) {
        (Some(d), _) => (d.addr, d.prefix),
        (None, Some(IpAddr::V6(_))) => (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        (None, _) => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
    };
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst_addr, prefix)
        .map_err(|e| Fail::BadRoute(e.to_string()))?;
    match gateway {
        Some(g) => {
            if g.is_ipv4() != dst_addr.is_ipv4() {
                return Err(Fail::BadRoute(format!(
                    "destination {dst_addr}, gateway {g}"
                )));
            }
            b = b.gateway(g).map_err(|e| Fail::BadRoute(e.to_string()))?;
        }
        None => b = b.scope(RouteScope::Link),
    }
    if let Some(dev) = dev {
        b = b.output_interface(dev);
    }
    Ok(b.build())
}

/// `ip route add`.
pub(crate) async fn route_add(
    handle: &Handle,
    message: rtnetlink::packet_route::route::RouteMessage,
) -> Result<(), Fail> {
    handle
        .route()
        .add(message)
        .execute()
        .await
        .nl("RTM_NEWROUTE")
}

/// `ip route del`.
pub(crate) async fn route_del(
    handle: &Handle,
    message: rtnetlink::packet_route::route::RouteMessage,
) -> Result<(), Fail> {
    handle
        .route()
        .del(message)
        .execute()
        .await
        .nl("RTM_DELROUTE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_six_hex_bytes_only() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:02").unwrap(),
            vec![2, 0x42, 0xac, 0x11, 0, 2]
        );
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "2:42:ac:11:00:02",
            "zz:42:ac:11:00:02",
        ] {
            assert!(
                matches!(parse_mac(bad), Err(Fail::BadMac(m)) if m == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn route_families_must_agree() {
        let v4 = IpNet {
            addr: "10.0.0.0".parse().unwrap(),
            prefix: 24,
        };
        assert!(route_message(Some(&v4), Some("10.0.0.1".parse().unwrap()), None).is_ok());
        assert!(matches!(
            route_message(Some(&v4), Some("fd00::1".parse().unwrap()), Some(3)),
            Err(Fail::BadRoute(_))
        ));
        let default6 = route_message(None, Some("fd00::1".parse().unwrap()), None).unwrap();
        assert_eq!(default6.header.destination_prefix_length, 0);
        assert_eq!(
            default6.header.address_family,
            rtnetlink::packet_route::AddressFamily::Inet6
        );
        let link = route_message(Some(&v4), None, Some(3)).unwrap();
        assert_eq!(link.header.scope, RouteScope::Link);
    }
}
