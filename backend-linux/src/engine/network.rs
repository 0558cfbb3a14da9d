//! The engine's networks, in libnetwork's model: networks (bridges with a subnet),
//! endpoints (a veth and an address from the network's IPAM), sandboxes (a container's
//! persisted network namespace and resolver files).
//!
//! What changes on the host is planned by [`berth_core::network::plan`] and carried out
//! by [`NetBackend`]; rows live in the store (`networks`, `endpoints`), addresses are
//! allocated in the transaction that records the endpoint.
//!
//! Name resolution: each container on a bridge network gets an `/etc/hosts` (a file in
//! its directory, bind-mounted) listing every container on its networks by name, short id
//! and alias; the files are rewritten in place whenever an endpoint comes or goes. berth
//! chose this over docker's embedded DNS server: no resolver process to keep alive per
//! container, nothing listening, and nothing that could forward a query off the machine;
//! names a container learns later appear without a restart because the file is rewritten
//! in place (the bind mount follows the inode). `/etc/resolv.conf` is the host's without
//! loopback nameservers.
//!
//! Invariant: a failed join leaves nothing (the plan's rollback undoes the host's part,
//! the endpoint row is deleted); teardown (`rm`, `network rm`) goes on past steps whose
//! object is already gone, so whatever a crash left is removed.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use berth_core::exec::{Backend, execute};
use berth_core::network::ipam;
use berth_core::network::plan::{
    plan_endpoint_join, plan_endpoint_leave, plan_network_create, plan_network_remove,
    plan_sandbox_remove,
};
use berth_core::network::{Endpoint, HostsEntry, Network, PortMapping, ResolvConf, Sandbox};
use berth_core::plan::{HostPath, IpNet, Plan, PlanBuilder};

use super::{DEFAULT_EXEC_ROOT, Engine, EngineError, io_err, new_id, now_secs};
use crate::net::NetBackend;
use crate::store::networks::{EndpointRow, NetworkRow};

/// What a container brings to a join: its id and name, its hostname, `--ip`,
/// `--network-alias` and `-p`.
#[derive(Clone, Copy, Debug)]
pub struct Join<'a> {
    /// The container's id.
    pub id: &'a str,
    /// Its name (its first name on the network).
    pub name: &'a str,
    /// Its hostname.
    pub hostname: &'a str,
    /// `--ip`.
    pub ip: Option<IpAddr>,
    /// `--network-alias`.
    pub aliases: &'a [String],
    /// `-p`.
    pub ports: &'a [PortMapping],
}

/// Where sandboxes' namespace files are bound with the default exec root.
pub const NETNS_ROOT: &str = "/run/berth/netns";
/// The default network's name.
pub const DEFAULT_NETWORK: &str = "bridge";

fn plan_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Plan(e.to_string())
}

/// The host's IPv4 routes (`/proc/net/route`), for picking subnets that collide with none.
fn host_routes() -> Vec<IpNet> {
    let text = fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dst = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel prints the address's bytes as a native (little-endian) integer.
            let addr = Ipv4Addr::from(dst.to_le_bytes());
            let prefix = u8::try_from(mask.count_ones()).ok()?;
            Some(IpNet {
                addr: IpAddr::V4(addr),
                prefix,
            })
        })
        .collect()
}

impl Engine {
    /// Where sandboxes' namespace files are bound: `/run/berth/netns`, or `netns/` under a
    /// non-default exec root (tests, parallel engines).
    pub fn netns_root(&self) -> PathBuf {
        if self.exec_root == Path::new(DEFAULT_EXEC_ROOT) {
            PathBuf::from(NETNS_ROOT)
        } else {
            self.exec_root.join("netns")
        }
    }

    fn net_backend() -> Result<NetBackend, EngineError> {
        NetBackend::new().map_err(|e| EngineError::Plan(format!("netlink: {e}")))
    }

    /// Carries out a network plan (rolled back on failure).
    fn execute_net(&self, plan: &Plan) -> Result<(), EngineError> {
        let mut backend = Self::net_backend()?;
        execute(plan, &mut backend).map_err(plan_err)
    }

    /// Carries out every step of a teardown plan, going on past failures (the object may
    /// be gone already: a crash, an earlier partial teardown).
    fn execute_teardown(&self, plan: &Plan) {
        if let Ok(mut backend) = Self::net_backend() {
            for step in &plan.steps {
                let _ = backend.apply(plan, step);
            }
        }
    }

    fn parse_network(row: &NetworkRow) -> Result<Network, EngineError> {
        serde_json::from_str(&row.spec).map_err(|source| EngineError::Settings {
            id: row.id.clone(),
            source,
        })
    }

    /// `berth network create`: records the network (its name checked first), then makes
    /// its bridge and rules; on failure nothing is left.
    pub fn network_create(
        &self,
        name: &str,
        subnet: Option<IpNet>,
        gateway: Option<IpAddr>,
        internal: bool,
    ) -> Result<NetworkRow, EngineError> {
        let mut store = self.store()?;
        // berth's own networks' subnets. A given subnet may not overlap any of them (as
        // docker's "Pool overlaps with other one on this address space"): two bridges with
        // one subnet would route it to whichever came last. (Host routes are the user's
        // business when they choose a subnet; the default pools avoid them.)
        // (A network of the same name is left out: that is "name in use", from the store.)
        let mut ours = Vec::new();
        for row in store.networks()?.into_iter().filter(|r| r.name != name) {
            if let Some(b) = Self::parse_network(&row)?.bridge_net() {
                ours.push((row.name, b.subnet.clone()));
            }
        }
        let subnet = match subnet {
            Some(s) => {
                if let Some((other, theirs)) = ours.iter().find(|(_, t)| ipam::overlaps(&s, t)) {
                    return Err(EngineError::SubnetOverlap {
                        name: name.to_owned(),
                        subnet: s.to_string(),
                        other: other.clone(),
                        theirs: theirs.to_string(),
                    });
                }
                s
            }
            None => {
                let mut taken = host_routes();
                taken.extend(ours.into_iter().map(|(_, subnet)| subnet));
                ipam::default_subnet(&taken).map_err(plan_err)?
            }
        };
        let id = new_id()?;
        let net = Network::bridge(name, &id, subnet, gateway, internal).map_err(plan_err)?;
        let row = NetworkRow {
            id: id.clone(),
            name: name.to_owned(),
            created: now_secs(),
            spec: serde_json::to_string(&net).map_err(|source| EngineError::Settings {
                id: id.clone(),
                source,
            })?,
        };
        store.add_network(&row)?;
        let mut b = PlanBuilder::new();
        plan_network_create(&net, &mut b);
        if let Err(e) = self.execute_net(&b.finish()) {
            let _ = store.remove_network(&id);
            return Err(e);
        }
        Ok(row)
    }

    /// The plan `network create` would carry out (for `--dry-run`).
    pub fn network_create_plan(&self, net: &Network) -> Plan {
        let mut b = PlanBuilder::new();
        plan_network_create(net, &mut b);
        b.finish()
    }

    /// The network `key` names, making the default `bridge` network on first use.
    pub fn network_for_run(&self, key: &str) -> Result<(NetworkRow, Network), EngineError> {
        let store = self.store()?;
        let row = match store.network(key) {
            Ok(row) => row,
            Err(crate::store::StoreError::UnknownNetwork { .. }) if key == DEFAULT_NETWORK => {
                drop(store);
                match self.network_create(DEFAULT_NETWORK, None, None, false) {
                    Ok(row) => row,
                    // Made by a concurrent `berth run` meanwhile.
                    Err(EngineError::Store(crate::store::StoreError::NetworkNameInUse {
                        ..
                    })) => self.store()?.network(key)?,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let net = Self::parse_network(&row)?;
        Ok((row, net))
    }

    /// The network part of `berth run --dry-run --network NAME`: the network's creation
    /// when it does not exist yet (the default `bridge`), then the container's join with
    /// the address IPAM would give it now; nothing is recorded or changed.
    pub(crate) fn network_dry_run(
        &self,
        store: &crate::store::Store,
        name: &str,
        id: &str,
        req: &super::NewContainer,
    ) -> Result<String, EngineError> {
        let mut text = String::new();
        let (net, taken) = match store.network(name) {
            Ok(row) => {
                let taken: BTreeSet<IpAddr> = store
                    .endpoints(Some(&row.id), None)?
                    .into_iter()
                    .map(|e| e.ip)
                    .collect();
                (Self::parse_network(&row)?, taken)
            }
            Err(crate::store::StoreError::UnknownNetwork { .. }) if name == DEFAULT_NETWORK => {
                let mut taken = host_routes();
                for row in store.networks()? {
                    if let Some(b) = Self::parse_network(&row)?.bridge_net() {
                        taken.push(b.subnet.clone());
                    }
                }
                let subnet = ipam::default_subnet(&taken).map_err(plan_err)?;
                let net = Network::bridge(name, &"0".repeat(64), subnet, None, false)
                    .map_err(plan_err)?;
                text.push_str(&format!(
                    "# 0. the network {name} (made on first use)\n{}",
                    self.network_create_plan(&net)
                ));
                (net, BTreeSet::new())
            }
            Err(e) => return Err(e.into()),
        };
        let Some(bridge) = net.bridge_net() else {
            return Ok(text);
        };
        let ip =
            ipam::allocate(&bridge.subnet, bridge.gateway, &taken, req.ip).map_err(plan_err)?;
        let ep = Endpoint::new(&net, id, ip, "eth0", req.aliases.clone()).map_err(plan_err)?;
        let sb = Sandbox::new(id, &self.netns_host_path()).map_err(plan_err)?;
        let mut b = PlanBuilder::new();
        plan_endpoint_join(&net, &ep, &sb, &req.ports, &mut b).map_err(plan_err)?;
        text.push_str(&format!(
            "# 0. the container's sandbox and endpoint on {} ({ip})\n{}",
            net.name,
            b.finish()
        ));
        Ok(text)
    }

    /// `berth network rm`: refused while containers are attached.
    pub fn network_remove(&self, key: &str) -> Result<NetworkRow, EngineError> {
        let mut store = self.store()?;
        let row = store.network(key)?;
        let eps = store.endpoints(Some(&row.id), None)?;
        if !eps.is_empty() {
            return Err(crate::store::StoreError::NetworkInUse {
                name: row.name.clone(),
                endpoints: eps.len(),
            }
            .into());
        }
        let net = Self::parse_network(&row)?;
        let mut b = PlanBuilder::new();
        plan_network_remove(&net, &mut b);
        self.execute_teardown(&b.finish());
        store.remove_network(&row.id)?;
        Ok(row)
    }

    /// Joins container `id` (its directory prepared) to network `net`: allocates its
    /// address, makes the sandbox when it is new, the veth, the address, the routes and
    /// the published ports; then rewrites the hosts files of the network's containers.
    pub fn join(&self, net: &Network, j: &Join<'_>) -> Result<EndpointRow, EngineError> {
        let Join {
            id,
            name,
            hostname,
            ip,
            aliases,
            ports,
        } = *j;
        let Some(bridge) = net.bridge_net() else {
            return Err(EngineError::Plan(format!(
                "network {} is not a bridge network",
                net.name
            )));
        };
        let root = self.netns_root();
        fs::create_dir_all(&root).map_err(io_err("create", &root))?;
        let mut store = self.store()?;
        let ifname = format!("eth{}", store.endpoints(None, Some(id))?.len());
        let (subnet, gateway) = (bridge.subnet.clone(), bridge.gateway);
        let mut aliases_all = aliases.to_vec();
        if !aliases_all.iter().any(|a| a == name) {
            aliases_all.insert(0, name.to_owned());
        }
        let row = store.add_endpoint(
            &net.id,
            id,
            &|taken: &BTreeSet<IpAddr>| {
                ipam::allocate(&subnet, gateway, taken, ip).map_err(|e| e.to_string())
            },
            &|ip| {
                let ep = Endpoint::new(net, id, ip, &ifname, aliases_all.clone())
                    .map_err(|e| e.to_string())?;
                serde_json::to_string(&ep).map_err(|e| e.to_string())
            },
        )?;
        let result = (|| {
            let ep: Endpoint = serde_json::from_str(&row.spec).map_err(plan_err)?;
            let mut sb = Sandbox::new(id, &self.netns_host_path()).map_err(plan_err)?;
            sb.exists = Path::new(sb.netns.as_str()).exists();
            sb.hostname = hostname.to_owned();
            let mut b = PlanBuilder::new();
            plan_endpoint_join(net, &ep, &sb, ports, &mut b).map_err(plan_err)?;
            self.execute_net(&b.finish())
        })();
        if let Err(e) = result {
            let _ = store.remove_endpoint(&net.id, id);
            return Err(e);
        }
        drop(store);
        self.refresh_hosts(&net.id)?;
        Ok(row)
    }

    fn netns_host_path(&self) -> HostPath {
        HostPath::new(self.netns_root().to_string_lossy().into_owned())
    }

    /// The sandbox's namespace file of container `id`.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.netns_root().join(id)
    }

    /// Removes container `id` from every network (its ports unpublished, its veths
    /// deleted, its addresses released) and removes its sandbox; goes on past failures.
    pub fn leave_all(&self, id: &str, ports: &[PortMapping]) -> Result<(), EngineError> {
        let mut store = self.store()?;
        let eps = store.endpoints(None, Some(id))?;
        let mut touched = Vec::new();
        for row in eps {
            if let Ok(net_row) = store.network(&row.network_id)
                && let Ok(net) = Self::parse_network(&net_row)
                && let Ok(ep) = serde_json::from_str::<Endpoint>(&row.spec)
            {
                let mut b = PlanBuilder::new();
                if plan_endpoint_leave(&net, &ep, ports, &mut b).is_ok() {
                    self.execute_teardown(&b.finish());
                }
            }
            store.remove_endpoint(&row.network_id, id)?;
            touched.push(row.network_id);
        }
        if self.netns_path(id).exists()
            && let Ok(sb) = Sandbox::new(id, &self.netns_host_path())
        {
            let mut b = PlanBuilder::new();
            plan_sandbox_remove(&sb, &mut b);
            self.execute_teardown(&b.finish());
        }
        drop(store);
        for net in touched {
            self.refresh_hosts(&net)?;
        }
        Ok(())
    }

    /// `network disconnect`: container `id` leaves network `network_id` (its published
    /// ports with it, when they were on that network).
    pub fn leave(&self, id: &str, network_id: &str) -> Result<(), EngineError> {
        let mut store = self.store()?;
        let row = store
            .endpoints(Some(network_id), Some(id))?
            .into_iter()
            .next()
            .ok_or_else(|| {
                EngineError::Plan(format!("container {id} is not connected to that network"))
            })?;
        let net = Self::parse_network(&store.network(network_id)?)?;
        let ports = store
            .container(id)
            .ok()
            .and_then(|c| Engine::settings(&c).ok())
            .filter(|s| s.networks.first() == Some(&net.name))
            .map(|s| s.ports)
            .unwrap_or_default();
        let ep: Endpoint = serde_json::from_str(&row.spec).map_err(plan_err)?;
        let mut b = PlanBuilder::new();
        plan_endpoint_leave(&net, &ep, &ports, &mut b).map_err(plan_err)?;
        self.execute_net(&b.finish())?;
        store.remove_endpoint(network_id, id)?;
        drop(store);
        self.refresh_hosts(network_id)
    }

    /// Rewrites, in place, the `hosts` file of every container on network `network_id`:
    /// docker's fixed lines, then every container of its networks by address.
    pub fn refresh_hosts(&self, network_id: &str) -> Result<(), EngineError> {
        let store = self.store()?;
        let members: BTreeSet<String> = store
            .endpoints(Some(network_id), None)?
            .into_iter()
            .map(|e| e.container_id)
            .collect();
        for cid in members {
            // The peers of `cid`: the containers of every network it is on.
            let mut entries: Vec<HostsEntry> = Vec::new();
            let nets: BTreeSet<String> = store
                .endpoints(None, Some(&cid))?
                .into_iter()
                .map(|e| e.network_id)
                .collect();
            for net in nets {
                for e in store.endpoints(Some(&net), None)? {
                    let Ok(ep) = serde_json::from_str::<Endpoint>(&e.spec) else {
                        continue;
                    };
                    let mut names = ep.aliases.clone();
                    names.push(e.container_id[..12.min(e.container_id.len())].to_owned());
                    if !entries.iter().any(|x| x.ip == e.ip) {
                        entries.push(HostsEntry { ip: e.ip, names });
                    }
                }
            }
            let mut sb = match Sandbox::new(&cid, &self.netns_host_path()) {
                Ok(sb) => sb,
                Err(_) => continue,
            };
            if let Ok(c) = store.container(&cid)
                && let Ok(settings) = Engine::settings(&c)
            {
                entries.extend(settings.extra_hosts);
            }
            sb.hosts = entries;
            let path = self.container_dir(&cid).join("hosts");
            if path.exists() {
                // In place (no rename): the container's bind mount follows this inode.
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(io_err("open", &path))?;
                f.write_all(sb.hosts_file().as_bytes())
                    .map_err(io_err("write", &path))?;
            }
        }
        Ok(())
    }

    /// Writes a container's resolver files (`hosts`, `resolv.conf`, `hostname`) into its
    /// directory (its config bind-mounts them).
    pub fn resolver_files(
        &self,
        dir: &Path,
        hostname: &str,
        extra_hosts: &[HostsEntry],
    ) -> Result<(), EngineError> {
        let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let resolv = ResolvConf::from_host(&host, &[]);
        let mut sb = Sandbox::new(&"0".repeat(12), &self.netns_host_path()).map_err(plan_err)?;
        sb.hostname = hostname.to_owned();
        sb.hosts = extra_hosts.to_vec();
        let files = [
            ("hosts", sb.hosts_file()),
            ("resolv.conf", resolv.text()),
            ("hostname", format!("{hostname}\n")),
        ];
        for (file, text) in files {
            let path = dir.join(file);
            fs::write(&path, text).map_err(io_err("write", &path))?;
        }
        Ok(())
    }

    /// Every network row with its parsed model.
    pub fn networks(&self) -> Result<Vec<(NetworkRow, Network)>, EngineError> {
        let store = self.store()?;
        store
            .networks()?
            .into_iter()
            .map(|row| Self::parse_network(&row).map(|n| (row, n)))
            .collect()
    }
}

/// `IpNet` parsed from `--subnet` text.
pub fn parse_subnet(text: &str) -> Result<IpNet, EngineError> {
    ipam::parse_cidr(text).map_err(plan_err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn routes_parse_as_the_kernel_writes_them() {
        // /proc/net/route: 0012A8C0 is 192.168.18.0, 00FFFFFF is /24 (little endian).
        let dst = u32::from_str_radix("0012A8C0", 16).unwrap_or(0);
        let addr = std::net::Ipv4Addr::from(dst.to_le_bytes());
        assert_eq!(addr, std::net::Ipv4Addr::new(192, 168, 18, 0));
        assert_eq!(
            u32::from_str_radix("00FFFFFF", 16)
                .unwrap_or(0)
                .count_ones(),
            24
        );
    }
}
