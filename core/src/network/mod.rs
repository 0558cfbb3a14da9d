//! Networking in libnetwork's Container Network Model: networks, endpoints, sandboxes.
//!
//! - A [`Network`] is named, has an id, and a [`Driver`]. A bridge network is a Linux bridge
//!   with a subnet and a gateway address on the bridge.
//! - An [`Endpoint`] joins one container to one network: a veth pair, one end on the
//!   bridge, the other (`eth0`) in the container's sandbox, with an address from the
//!   network's IPAM ([`ipam`]) and a MAC derived from that address.
//! - A [`Sandbox`] is a container's network namespace, persisted as a file under a root
//!   (`/run/berth/netns/ID`), with what the container's resolver files say.
//!
//! Drivers are an enum with per-driver planning functions in [`plan`] (not a trait object):
//! a driver's whole job is to emit plan steps, the set of drivers is closed and small, and
//! an exhaustive `match` makes the compiler list every place a new driver (macvlan, ipvlan:
//! a variant carrying its parent interface and mode) has to be handled.
//!
//! Invariant: everything here is pure and deterministic. Names a kernel will see (the
//! bridge, the veth) are derived from ids (a hash for the veth), never from randomness, so
//! the same request always gives the same plan and a later teardown can name them again.

pub mod ipam;
pub mod plan;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::plan::{HostPath, IpNet, Proto};

pub use ipam::IpamError;

/// The name of the default network, made on first use.
pub const DEFAULT_NETWORK: &str = "bridge";

/// The bridge of the default network (docker's is `docker0`).
pub const DEFAULT_BRIDGE: &str = "berth0";

/// Where sandboxes' namespace files live by default.
pub const DEFAULT_NETNS_ROOT: &str = "/run/berth/netns";

/// The interface a container's first endpoint gets in its sandbox.
pub const SANDBOX_IFNAME: &str = "eth0";

/// The longest interface name Linux takes (`IFNAMSIZ` less the NUL).
pub const MAX_IFNAME: usize = 15;

/// A network, an endpoint, a sandbox or a port mapping that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// A network name docker would refuse.
    #[error("network name {0:?}: must start with a letter or digit and hold only [a-zA-Z0-9_.-]")]
    BadName(String),
    /// A network id that is not at least 12 lowercase hex digits.
    #[error("network id {0:?}: expected at least 12 lowercase hex digits")]
    BadNetworkId(String),
    /// A container id that cannot name a file or an interface safely.
    #[error("container id {0:?}: must start with a letter or digit and hold only [a-zA-Z0-9_.-]")]
    BadContainerId(String),
    /// An interface name Linux refuses.
    #[error("interface name {0:?}: must have 1 to 15 characters, none of them '/', ':' or space")]
    BadIfname(String),
    /// IPv6 bridge networks are not planned yet.
    #[error("subnet {0}: IPv6 networks are not supported yet")]
    Ipv6Unsupported(IpNet),
    /// A subnet or address problem (see [`IpamError`]).
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// A `-p` value that does not parse.
    #[error("port mapping {input:?}: {why}")]
    BadPort {
        /// The value as given.
        input: String,
        /// What is wrong with it.
        why: String,
    },
    /// An `--add-host` value that does not parse.
    #[error("extra host {input:?}: expected NAME:IP")]
    BadExtraHost {
        /// The value as given.
        input: String,
    },
}

/// Whether `s` is a name docker accepts for networks and containers: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || "_.-".contains(x))
}

/// Whether Linux takes `s` as an interface name.
pub fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_IFNAME
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// How a network is realised.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// A Linux bridge with a subnet; containers get a veth on it.
    Bridge(BridgeNet),
    /// The host's own network namespace: nothing to plan, nothing isolated.
    Host,
    /// A sandbox with only `lo`.
    None,
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Driver::Bridge(_) => "bridge",
            Driver::Host => "host",
            Driver::None => "null",
        })
    }
}

/// What a bridge network is made of.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BridgeNet {
    /// The subnet, its address the network address (`172.18.0.0/16`).
    pub subnet: IpNet,
    /// The gateway: the bridge's own address in the subnet.
    pub gateway: IpAddr,
    /// The bridge interface (`br-<first 12 of id>`, `berth0` for the default network).
    pub bridge: String,
}

/// A network (libnetwork's `network`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Network {
    /// Its name (`bridge`, `web`).
    pub name: String,
    /// Its id: lowercase hex, at least 12 digits (the engine makes 64).
    pub id: String,
    /// How it is realised.
    pub driver: Driver,
    /// `--internal`: no route out of it, no masquerade, nothing published into it.
    pub internal: bool,
}

impl Network {
    /// A bridge network on `subnet` (its network address, as `--subnet` or
    /// [`ipam::default_subnet`] gives it), with `gateway` or, when `None`, the subnet's
    /// first host address.
    pub fn bridge(
        name: &str,
        id: &str,
        subnet: IpNet,
        gateway: Option<IpAddr>,
        internal: bool,
    ) -> Result<Network, NetworkError> {
        check_name(name)?;
        check_network_id(id)?;
        if subnet.addr.is_ipv6() {
            return Err(NetworkError::Ipv6Unsupported(subnet));
        }
        let subnet = ipam::check_subnet(&subnet)?;
        let gateway = match gateway {
            Some(g) => {
                ipam::check_host_address(&subnet, g)?;
                g
            }
            None => ipam::first_host(&subnet)?,
        };
        Ok(Network {
            name: name.to_owned(),
            id: id.to_owned(),
            driver: Driver::Bridge(BridgeNet {
                subnet,
                gateway,
                bridge: bridge_name(name, id),
            }),
            internal,
        })
    }

    /// The `host` network.
    pub fn host(id: &str) -> Result<Network, NetworkError> {
        check_network_id(id)?;
        Ok(Network {
            name: "host".to_owned(),
            id: id.to_owned(),
            driver: Driver::Host,
            internal: false,
        })
    }

    /// The `none` network.
    pub fn none(id: &str) -> Result<Network, NetworkError> {
        check_network_id(id)?;
        Ok(Network {
            name: "none".to_owned(),
            id: id.to_owned(),
            driver: Driver::None,
            internal: false,
        })
    }

    /// The first 12 digits of the id, as docker shows it.
    pub fn short_id(&self) -> &str {
        short(&self.id)
    }

    /// The bridge part, for a bridge network.
    pub fn bridge_net(&self) -> Option<&BridgeNet> {
        match &self.driver {
            Driver::Bridge(b) => Some(b),
            Driver::Host | Driver::None => None,
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn check_name(name: &str) -> Result<(), NetworkError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(NetworkError::BadName(name.to_owned()))
    }
}

fn check_network_id(id: &str) -> Result<(), NetworkError> {
    if id.len() >= 12 && id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(NetworkError::BadNetworkId(id.to_owned()))
    }
}

fn check_container_id(id: &str) -> Result<(), NetworkError> {
    if valid_name(id) {
        Ok(())
    } else {
        Err(NetworkError::BadContainerId(id.to_owned()))
    }
}

/// The bridge of a network: `berth0` for the default network, else `br-` and the first 12
/// digits of its id (as docker's `br-<id>`).
pub fn bridge_name(name: &str, id: &str) -> String {
    if name == DEFAULT_NETWORK {
        DEFAULT_BRIDGE.to_owned()
    } else {
        format!("br-{}", short(id))
    }
}

/// The host end of an endpoint's veth: `veth` and 7 hex digits of the sha256 of the
/// network and container ids (docker takes 7 random digits; a hash lets teardown name it
/// again and keeps plans deterministic).
pub fn veth_name(network_id: &str, container_id: &str) -> String {
    let sum = Sha256::digest(format!("{network_id}/{container_id}").as_bytes());
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("veth{}", &hex[..7])
}

/// The MAC address docker derives from an IPv4 address: `02:42` and its four bytes (a
/// locally administered unicast address; a reused address gets the same MAC, so a peer's
/// stale ARP entry is still right). For IPv6, `02:42` and its last four bytes.
pub fn mac_from_ip(ip: IpAddr) -> String {
    let b: [u8; 4] = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

/// A container's attachment to a network (libnetwork's `endpoint`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// The network's id.
    pub network: String,
    /// The container's id.
    pub container: String,
    /// The host end of the veth ([`veth_name`]).
    pub veth: String,
    /// The interface in the sandbox (`eth0`, then `eth1`, ...).
    pub ifname: String,
    /// Its address in the network's subnet.
    pub ip: IpAddr,
    /// Its MAC ([`mac_from_ip`]).
    pub mac: String,
    /// `--network-alias`: more names it answers to on the network.
    pub aliases: Vec<String>,
}

impl Endpoint {
    /// An endpoint of `container` on bridge network `network` at `ip` (as IPAM gave it),
    /// named `ifname` in the sandbox.
    pub fn new(
        network: &Network,
        container: &str,
        ip: IpAddr,
        ifname: &str,
        aliases: Vec<String>,
    ) -> Result<Endpoint, NetworkError> {
        check_container_id(container)?;
        if !valid_ifname(ifname) {
            return Err(NetworkError::BadIfname(ifname.to_owned()));
        }
        if let Some(b) = network.bridge_net() {
            ipam::check_host_address(&b.subnet, ip)?;
            if ip == b.gateway {
                return Err(IpamError::Reserved {
                    ip,
                    subnet: b.subnet.clone(),
                    what: "gateway",
                }
                .into());
            }
        }
        for a in &aliases {
            check_name(a)?;
        }
        Ok(Endpoint {
            network: network.id.clone(),
            container: container.to_owned(),
            veth: veth_name(&network.id, container),
            ifname: ifname.to_owned(),
            ip,
            mac: mac_from_ip(ip),
            aliases,
        })
    }
}

/// One line of `/etc/hosts`: an address and its names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostsEntry {
    /// The address.
    pub ip: IpAddr,
    /// Its names, canonical first.
    pub names: Vec<String>,
}

/// Parses `--add-host NAME:IP` (an IPv6 address may be bracketed: `h:[::1]`).
pub fn parse_extra_host(input: &str) -> Result<HostsEntry, NetworkError> {
    let bad = || NetworkError::BadExtraHost {
        input: input.to_owned(),
    };
    let (name, ip) = input.split_once(':').ok_or_else(bad)?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    if !valid_name(name) {
        return Err(bad());
    }
    Ok(HostsEntry {
        ip,
        names: vec![name.to_owned()],
    })
}

/// What a container's `/etc/resolv.conf` says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResolvConf {
    /// `nameserver` lines.
    pub nameservers: Vec<IpAddr>,
    /// The `search` domains.
    pub search: Vec<String>,
    /// The `options`.
    pub options: Vec<String>,
}

impl ResolvConf {
    /// A container's resolv.conf derived from the host's text, as docker does: loopback
    /// nameservers are dropped (they would be the container's own loopback); when none is
    /// left, `fallback` is used (docker's is Google's public DNS; the engine decides).
    pub fn from_host(host: &str, fallback: &[IpAddr]) -> ResolvConf {
        let mut r = ResolvConf::default();
        for line in host.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // A zone suffix (`fe80::1%eth0`) names a host interface: drop it too.
                    if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok())
                        && !ip.is_loopback()
                    {
                        r.nameservers.push(ip);
                    }
                }
                Some("search") | Some("domain") => {
                    r.search = words.map(str::to_owned).collect();
                }
                Some("options") => r.options.extend(words.map(str::to_owned)),
                _ => {}
            }
        }
        if r.nameservers.is_empty() {
            r.nameservers = fallback.to_vec();
        }
        r
    }

    /// The file's text.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.nameservers {
            s.push_str(&format!("nameserver {n}\n"));
        }
        if !self.search.is_empty() {
            s.push_str(&format!("search {}\n", self.search.join(" ")));
        }
        if !self.options.is_empty() {
            s.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        s
    }
}

/// A container's network namespace and what its resolver files say (libnetwork's
/// `sandbox`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sandbox {
    /// The container's id.
    pub container: String,
    /// Its namespace file (`ROOT/ID`).
    pub netns: HostPath,
    /// Whether the namespace file exists already (an earlier join made it); a join to a
    /// new sandbox makes it first and gives it the default route.
    pub exists: bool,
    /// `--hostname`.
    pub hostname: String,
    /// The domain name, if any.
    pub domain: Option<String>,
    /// `/etc/hosts` lines after the fixed localhost ones: the container's own address and
    /// names, `--add-host` entries, peers by name.
    pub hosts: Vec<HostsEntry>,
    /// `/etc/resolv.conf`.
    pub resolv: ResolvConf,
}

impl Sandbox {
    /// A new sandbox of `container`, its namespace file under `root`, its hostname the
    /// first 12 characters of the id (as docker's default).
    pub fn new(container: &str, root: &HostPath) -> Result<Sandbox, NetworkError> {
        check_container_id(container)?;
        Ok(Sandbox {
            container: container.to_owned(),
            netns: root.join(container),
            exists: false,
            hostname: short(container).to_owned(),
            domain: None,
            hosts: Vec::new(),
            resolv: ResolvConf::default(),
        })
    }

    /// The text of the container's `/etc/hosts`: docker's fixed lines, then [`Self::hosts`].
    pub fn hosts_file(&self) -> String {
        let mut s = String::from(
            "127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             ff00::0\tip6-mcastprefix\n\
             ff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n",
        );
        for e in &self.hosts {
            s.push_str(&format!("{}\t{}\n", e.ip, e.names.join(" ")));
        }
        s
    }
}

/// A published port (`-p [HOSTIP:]HOSTPORT:CPORT[/tcp|udp]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address; `None` is every address of the host.
    pub host_ip: Option<IpAddr>,
    /// The host port.
    pub host_port: u16,
    /// The container's port.
    pub container_port: u16,
    /// The protocol.
    pub proto: Proto,
}

impl fmt::Display for PortMapping {
    /// docker's form: `127.0.0.1:18080:80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(a)) => write!(f, "[{a}]:")?,
            Some(a) => write!(f, "{a}:")?,
            None => {}
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port, self.container_port, self.proto
        )
    }
}

fn parse_port(input: &str, what: &str, s: &str) -> Result<u16, NetworkError> {
    let bad = |why: String| NetworkError::BadPort {
        input: input.to_owned(),
        why,
    };
    if s.contains('-') {
        return Err(bad(format!(
            "{what} {s:?}: port ranges are not supported yet"
        )));
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad(format!("{what} {s:?} is not a port (1-65535)"))),
        Ok(p) => Ok(p),
    }
}

/// Parses docker's `-p [HOSTIP:]HOSTPORT:CPORT[/tcp|udp]`. A host address may be IPv4 or
/// bracketed IPv6 (`[::1]:8080:80`); `0.0.0.0` and `[::]` mean every address.
///
/// `-p CPORT` alone (a random host port) is refused for now: choosing a free port needs
/// the host (the backend must probe and hold it), and this parser is pure.
pub fn parse_port_mapping(input: &str) -> Result<PortMapping, NetworkError> {
    let bad = |why: &str| NetworkError::BadPort {
        input: input.to_owned(),
        why: why.to_owned(),
    };
    let (spec, proto) = match input.rsplit_once('/') {
        Some((s, "tcp")) => (s, Proto::Tcp),
        Some((s, "udp")) => (s, Proto::Udp),
        Some((_, p)) => {
            return Err(bad(&format!(
                "unknown protocol {p:?} (expected tcp or udp)"
            )));
        }
        None => (input, Proto::Tcp),
    };
    let (host_ip, rest) = if let Some(r) = spec.strip_prefix('[') {
        let (ip, rest) = r
            .split_once("]:")
            .ok_or_else(|| bad("an IPv6 host address is written [ADDR]:HOSTPORT:CPORT"))?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| bad(&format!("{ip:?} is not an IPv6 address")))?;
        (Some(IpAddr::V6(ip)), rest)
    } else {
        match spec.split(':').collect::<Vec<_>>().as_slice() {
            [ip, hp, cp] => {
                let ip: Ipv4Addr = ip
                    .parse()
                    .map_err(|_| bad(&format!("{ip:?} is not an IPv4 address")))?;
                (
                    Some(IpAddr::V4(ip)),
                    &spec[spec.len() - hp.len() - cp.len() - 1..],
                )
            }
            [_, _] => (None, spec),
            [_] => {
                return Err(bad(
                    "a host port is needed (HOSTPORT:CPORT): random host ports are not supported yet",
                ));
            }
            _ => return Err(bad("expected [HOSTIP:]HOSTPORT:CPORT[/tcp|udp]")),
        }
    };
    let (hp, cp) = rest
        .split_once(':')
        .ok_or_else(|| bad("expected [HOSTIP:]HOSTPORT:CPORT[/tcp|udp]"))?;
    if cp.contains(':') {
        return Err(bad("expected [HOSTIP:]HOSTPORT:CPORT[/tcp|udp]"));
    }
    let host_port = parse_port(input, "host port", hp)?;
    let container_port = parse_port(input, "container port", cp)?;
    let host_ip = host_ip.filter(|ip| !ip.is_unspecified());
    Ok(PortMapping {
        host_ip,
        host_port,
        container_port,
        proto,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn net(s: &str) -> IpNet {
        let (a, p) = s.split_once('/').unwrap();
        IpNet {
            addr: a.parse().unwrap(),
            prefix: p.parse().unwrap(),
        }
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks() {
        let n = Network::bridge("web", NID, net("172.18.0.0/16"), None, false).unwrap();
        let b = n.bridge_net().unwrap();
        assert_eq!(b.bridge, "br-0123456789ab");
        assert_eq!(b.gateway, ip("172.18.0.1"));
        let d = Network::bridge("bridge", NID, net("172.17.0.0/16"), None, false).unwrap();
        assert_eq!(d.bridge_net().unwrap().bridge, "berth0");
        assert_eq!(d.driver.to_string(), "bridge");
        assert_eq!(
            Network::bridge("-x", NID, net("172.18.0.0/16"), None, false),
            Err(NetworkError::BadName("-x".to_owned()))
        );
        assert_eq!(
            Network::bridge("web", "0123", net("172.18.0.0/16"), None, false),
            Err(NetworkError::BadNetworkId("0123".to_owned()))
        );
        let e = Network::bridge(
            "web",
            NID,
            net("172.18.0.0/16"),
            Some(ip("10.0.0.1")),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("10.0.0.1"), "{e}");
        assert!(matches!(
            Network::bridge("web", NID, net("fd00::/64"), None, false),
            Err(NetworkError::Ipv6Unsupported(_))
        ));
        assert_eq!(Network::none(NID).unwrap().driver, Driver::None);
        assert_eq!(Network::host(NID).unwrap().bridge_net(), None);
    }

    #[test]
    fn endpoints() {
        let n = Network::bridge("web", NID, net("172.18.0.0/16"), None, false).unwrap();
        let e = Endpoint::new(&n, "c1", ip("172.18.0.2"), "eth0", vec!["db".to_owned()]).unwrap();
        assert_eq!(e.mac, "02:42:ac:12:00:02");
        assert!(
            e.veth.starts_with("veth") && e.veth.len() == 11,
            "{}",
            e.veth
        );
        assert!(valid_ifname(&e.veth));
        assert_eq!(e.veth, veth_name(NID, "c1"));
        assert_ne!(veth_name(NID, "c1"), veth_name(NID, "c2"));
        let gw = Endpoint::new(&n, "c1", ip("172.18.0.1"), "eth0", vec![]).unwrap_err();
        assert!(gw.to_string().contains("gateway"), "{gw}");
        let out = Endpoint::new(&n, "c1", ip("10.0.0.2"), "eth0", vec![]).unwrap_err();
        assert!(out.to_string().contains("10.0.0.2"), "{out}");
        assert_eq!(
            Endpoint::new(&n, "../x", ip("172.18.0.2"), "eth0", vec![]),
            Err(NetworkError::BadContainerId("../x".to_owned()))
        );
        assert_eq!(
            Endpoint::new(&n, "c1", ip("172.18.0.2"), "a-very-long-ifname", vec![]),
            Err(NetworkError::BadIfname("a-very-long-ifname".to_owned()))
        );
        assert_eq!(mac_from_ip(ip("10.88.255.1")), "02:42:0a:58:ff:01");
    }

    #[test]
    fn sandboxes() {
        let root = HostPath::new(DEFAULT_NETNS_ROOT);
        let mut s = Sandbox::new("abcdef0123456789", &root).unwrap();
        assert_eq!(s.netns.as_str(), "/run/berth/netns/abcdef0123456789");
        assert_eq!(s.hostname, "abcdef012345");
        assert!(Sandbox::new("a/b", &root).is_err());
        s.hosts.push(HostsEntry {
            ip: ip("172.18.0.2"),
            names: vec!["web".to_owned(), "abcdef012345".to_owned()],
        });
        s.hosts.push(parse_extra_host("db:10.0.0.5").unwrap());
        let h = s.hosts_file();
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"), "{h}");
        assert!(
            h.ends_with("172.18.0.2\tweb abcdef012345\n10.0.0.5\tdb\n"),
            "{h}"
        );
        assert_eq!(parse_extra_host("v6:[::1]").unwrap().ip, ip("::1"));
        for bad in ["nocolon", "x:notip", ":1.2.3.4"] {
            assert_eq!(
                parse_extra_host(bad),
                Err(NetworkError::BadExtraHost {
                    input: bad.to_owned()
                })
            );
        }
    }

    #[test]
    fn resolv_conf() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2 # lan\n\
                    nameserver ::1\nsearch example.com lan\noptions edns0 trust-ad\n";
        let r = ResolvConf::from_host(host, &[ip("192.0.2.53")]);
        assert_eq!(r.nameservers, vec![ip("10.0.0.2")]);
        assert_eq!(
            r.text(),
            "nameserver 10.0.0.2\nsearch example.com lan\noptions edns0 trust-ad\n"
        );
        let only_loopback = ResolvConf::from_host("nameserver 127.0.0.53\n", &[ip("192.0.2.53")]);
        assert_eq!(only_loopback.nameservers, vec![ip("192.0.2.53")]);
        assert_eq!(ResolvConf::from_host("", &[]).text(), "");
    }

    #[test]
    fn port_mappings() {
        let p = |s: &str| parse_port_mapping(s);
        assert_eq!(
            p("127.0.0.1:18080:80").unwrap(),
            PortMapping {
                host_ip: Some(ip("127.0.0.1")),
                host_port: 18080,
                container_port: 80,
                proto: Proto::Tcp
            }
        );
        assert_eq!(p("8080:80/udp").unwrap().to_string(), "8080:80/udp");
        assert_eq!(p("0.0.0.0:8080:80").unwrap().host_ip, None);
        assert_eq!(
            p("[::1]:8080:80/tcp").unwrap().to_string(),
            "[::1]:8080:80/tcp"
        );
        assert_eq!(p("[::]:8080:80").unwrap().host_ip, None);
        let err = |s: &str| p(s).unwrap_err().to_string();
        assert!(err("80").contains("random host ports"), "{}", err("80"));
        assert!(err("80").contains("\"80\""));
        assert!(err("8080:80/sctp").contains("unknown protocol \"sctp\""));
        assert!(err("8080:0").contains("container port \"0\""));
        assert!(err("70000:80").contains("host port \"70000\""));
        assert!(err("8000-8010:80").contains("ranges"));
        assert!(err("x.y:8080:80").contains("\"x.y\" is not an IPv4 address"));
        assert!(err("[::1:8080:80").contains("[ADDR]"));
        assert!(err("[zz]:8080:80").contains("IPv6"));
        assert!(err("1:2:3:4").contains("expected"));
        assert!(err("[::1]:1:2:3").contains("expected"));
        assert!(err("").contains("\"\""));
    }
}
