//! The network commands, docker's: `network create`, `ls`, `inspect`, `rm`, `connect`,
//! `disconnect`, `prune`, over [`berth_backend_linux::engine::network`].

use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::anyhow;
use berth_backend_linux::engine::network::{DEFAULT_NETWORK, Join, parse_subnet};
use berth_core::network::{Driver, Endpoint};
use clap::{Args, Subcommand};

use crate::Global;
use crate::image::{rfc3339, store_error};

/// `berth network ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum NetworkCommand {
    /// Create a bridge network.
    Create(CreateArgs),
    /// List networks.
    Ls {
        /// Print only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print networks as JSON.
    Inspect {
        /// The networks.
        #[arg(value_name = "NETWORK", required = true)]
        networks: Vec<String>,
    },
    /// Remove networks (refused while containers are attached).
    Rm {
        /// The networks.
        #[arg(value_name = "NETWORK", required = true)]
        networks: Vec<String>,
    },
    /// Connect a container to a network.
    Connect(ConnectArgs),
    /// Disconnect a container from a network.
    Disconnect {
        /// The network.
        network: String,
        /// The container.
        container: String,
    },
    /// Remove every network no container uses (not the default `bridge`).
    Prune,
}

/// Arguments of `network create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The driver (only `bridge`).
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    /// The subnet in CIDR form (the next free default pool when not given).
    #[arg(long, value_name = "CIDR")]
    subnet: Option<String>,
    /// The gateway (the subnet's first address when not given).
    #[arg(long, value_name = "IP")]
    gateway: Option<std::net::IpAddr>,
    /// No route out of the network.
    #[arg(long)]
    internal: bool,
    /// The network's name.
    name: String,
}

/// Arguments of `network connect`.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The container's address on the network.
    #[arg(long, value_name = "IP")]
    ip: Option<std::net::IpAddr>,
    /// Another name of the container on the network.
    #[arg(long, value_name = "ALIAS")]
    alias: Vec<String>,
    /// The network.
    network: String,
    /// The container.
    container: String,
}

fn engine_err(e: berth_backend_linux::engine::EngineError) -> anyhow::Error {
    match e {
        berth_backend_linux::engine::EngineError::Store(s) => store_error(s),
        other => crate::image::one_line(&other),
    }
}

/// `berth network ...`.
pub(crate) fn network(g: &Global, cmd: NetworkCommand) -> anyhow::Result<()> {
    let engine = &g.engine;
    let mut out = io::stdout().lock();
    match cmd {
        NetworkCommand::Create(args) => {
            if args.driver != "bridge" {
                return Err(anyhow!(
                    "network create: driver {:?}: berth has `bridge` (host and none are built in)",
                    args.driver
                ));
            }
            let subnet = args
                .subnet
                .as_deref()
                .map(parse_subnet)
                .transpose()
                .map_err(engine_err)?;
            let row = engine
                .network_create(&args.name, subnet, args.gateway, args.internal)
                .map_err(engine_err)?;
            writeln!(out, "{}", row.id)?;
        }
        NetworkCommand::Ls { quiet } => {
            let nets = engine.networks().map_err(engine_err)?;
            if !quiet {
                writeln!(
                    out,
                    "{:<14}{:<20}{:<10}{:<20}SCOPE",
                    "NETWORK ID", "NAME", "DRIVER", "SUBNET"
                )?;
            }
            for (row, net) in nets {
                if quiet {
                    writeln!(out, "{}", &row.id[..12])?;
                    continue;
                }
                let subnet = net
                    .bridge_net()
                    .map(|b| b.subnet.to_string())
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{:<14}{:<20}{:<10}{:<20}local",
                    &row.id[..12],
                    row.name,
                    net.driver.to_string(),
                    subnet
                )?;
            }
        }
        NetworkCommand::Inspect { networks } => {
            let store = engine.store().map_err(engine_err)?;
            let mut list = Vec::new();
            for key in &networks {
                let row = store.network(key).map_err(store_error)?;
                let net: berth_core::network::Network = serde_json::from_str(&row.spec)?;
                let mut containers = serde_json::Map::new();
                for ep in store.endpoints(Some(&row.id), None).map_err(store_error)? {
                    let spec: Endpoint = serde_json::from_str(&ep.spec)?;
                    let name = store
                        .container(&ep.container_id)
                        .map(|c| c.name)
                        .unwrap_or_default();
                    let prefix = net.bridge_net().map_or(32, |b| b.subnet.prefix);
                    containers.insert(
                        ep.container_id.clone(),
                        serde_json::json!({
                            "Name": name,
                            "EndpointID": spec.veth,
                            "MacAddress": spec.mac,
                            "IPv4Address": format!("{}/{}", ep.ip, prefix),
                        }),
                    );
                }
                let (subnet, gateway, bridge) = match &net.driver {
                    Driver::Bridge(b) => (
                        b.subnet.to_string(),
                        b.gateway.to_string(),
                        b.bridge.clone(),
                    ),
                    _ => (String::new(), String::new(), String::new()),
                };
                list.push(serde_json::json!({
                    "Name": row.name,
                    "Id": row.id,
                    "Created": rfc3339(UNIX_EPOCH + Duration::from_secs(row.created)),
                    "Driver": net.driver.to_string(),
                    "Internal": net.internal,
                    "IPAM": {"Driver": "default", "Config": [{"Subnet": subnet, "Gateway": gateway}]},
                    "Options": {"com.docker.network.bridge.name": bridge},
                    "Containers": containers,
                }));
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        }
        NetworkCommand::Rm { networks } => {
            for key in &networks {
                engine.network_remove(key).map_err(engine_err)?;
                writeln!(out, "{key}")?;
            }
        }
        NetworkCommand::Connect(args) => {
            let store = engine.store().map_err(engine_err)?;
            let c = store.container(&args.container).map_err(store_error)?;
            drop(store);
            let (_, net) = engine.network_for_run(&args.network).map_err(engine_err)?;
            let hostname = c.id[..12].to_owned();
            let join = Join {
                id: &c.id,
                name: &c.name,
                hostname: &hostname,
                ip: args.ip,
                aliases: &args.alias,
                ports: &[],
            };
            engine.join(&net, &join).map_err(engine_err)?;
        }
        NetworkCommand::Disconnect { network, container } => {
            let store = engine.store().map_err(engine_err)?;
            let c = store.container(&container).map_err(store_error)?;
            let row = store.network(&network).map_err(store_error)?;
            drop(store);
            engine.leave(&c.id, &row.id).map_err(engine_err)?;
        }
        NetworkCommand::Prune => {
            writeln!(out, "Deleted Networks:")?;
            let store = engine.store().map_err(engine_err)?;
            let rows = store.networks().map_err(store_error)?;
            let mut unused = Vec::new();
            for row in rows {
                if row.name != DEFAULT_NETWORK
                    && store
                        .endpoints(Some(&row.id), None)
                        .map_err(store_error)?
                        .is_empty()
                {
                    unused.push(row.name);
                }
            }
            drop(store);
            for name in unused {
                engine.network_remove(&name).map_err(engine_err)?;
                writeln!(out, "{name}")?;
            }
        }
    }
    Ok(out.flush()?)
}
