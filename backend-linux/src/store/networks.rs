//! The engine's networks and endpoints, as rows of the store's database (tables
//! `networks` and `endpoints`).
//!
//! A network row holds the network as core's model serialises it (`spec`); an endpoint
//! row is one container's attachment to one network, and its address is the network's
//! IPAM allocation.
//!
//! Invariant: an address is handed out at most once per network. The allocation reads the
//! taken addresses and inserts the new endpoint in one IMMEDIATE transaction (one writer
//! at a time), and `UNIQUE (network_id, ip)` backs it up, so concurrent `berth run`s never
//! get the same address. Releasing is deleting the row.

use std::collections::BTreeSet;
use std::net::IpAddr;

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Store, StoreError, db};

/// One network row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkRow {
    /// Its id (64 hex digits).
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// When it was created (seconds since the epoch).
    pub created: u64,
    /// The network as JSON (core's `network::Network`).
    pub spec: String,
}

/// One endpoint row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointRow {
    /// The network.
    pub network_id: String,
    /// The container.
    pub container_id: String,
    /// Its address.
    pub ip: IpAddr,
    /// The endpoint as JSON (core's `network::Endpoint`).
    pub spec: String,
}

fn network_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, i64, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_network((id, name, created, spec): (String, String, i64, String)) -> NetworkRow {
    NetworkRow {
        id,
        name,
        created: db::size_of(created),
        spec,
    }
}

fn endpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_endpoint(
    (network_id, container_id, ip, spec): (String, String, String, String),
) -> Result<EndpointRow, StoreError> {
    let ip = ip.parse().map_err(|_| StoreError::CorruptRow {
        what: "endpoints.ip",
        value: ip.clone(),
    })?;
    Ok(EndpointRow {
        network_id,
        container_id,
        ip,
        spec,
    })
}

impl Store {
    /// Records a new network; fails with [`StoreError::NetworkNameInUse`] when the name is
    /// taken.
    pub fn add_network(&mut self, row: &NetworkRow) -> Result<(), StoreError> {
        let write = db::err("recording a network");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&write)?;
        let holder: Option<String> = tx
            .query_row(
                "SELECT id FROM networks WHERE name = ?1",
                params![row.name],
                |r| r.get(0),
            )
            .optional()
            .map_err(&write)?;
        if let Some(id) = holder {
            return Err(StoreError::NetworkNameInUse {
                name: row.name.clone(),
                id,
            });
        }
        tx.execute(
            "INSERT INTO networks (id, name, created, spec) VALUES (?1, ?2, ?3, ?4)",
            params![row.id, row.name, db::size_to_db(row.created), row.spec],
        )
        .map_err(&write)?;
        tx.commit().map_err(&write)
    }

    /// The network named `key`: a full id, a name, or a unique id prefix.
    pub fn network(&self, key: &str) -> Result<NetworkRow, StoreError> {
        let find = db::err("looking up a network");
        for column in ["id", "name"] {
            let row = self
                .conn
                .query_row(
                    &format!("SELECT id, name, created, spec FROM networks WHERE {column} = ?1"),
                    params![key],
                    network_row,
                )
                .optional()
                .map_err(&find)?;
            if let Some(row) = row {
                return Ok(to_network(row));
            }
        }
        if !key.is_empty() && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            let mut stmt = self
                .conn
                .prepare("SELECT id, name, created, spec FROM networks WHERE id LIKE ?1")
                .map_err(&find)?;
            let mut rows = stmt
                .query_map(params![format!("{key}%")], network_row)
                .map_err(&find)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(&find)?;
            if rows.len() == 1 {
                return Ok(to_network(rows.remove(0)));
            }
        }
        Err(StoreError::UnknownNetwork {
            name: key.to_owned(),
        })
    }

    /// Every network, by name.
    pub fn networks(&self) -> Result<Vec<NetworkRow>, StoreError> {
        let list = db::err("listing networks");
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, created, spec FROM networks ORDER BY name")
            .map_err(&list)?;
        let rows = stmt
            .query_map([], network_row)
            .map_err(&list)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&list)?;
        Ok(rows.into_iter().map(to_network).collect())
    }

    /// Deletes a network row; refused while it has endpoints.
    pub fn remove_network(&mut self, id: &str) -> Result<(), StoreError> {
        let write = db::err("removing a network");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&write)?;
        let (name, endpoints): (String, i64) = tx
            .query_row(
                "SELECT name, (SELECT COUNT(*) FROM endpoints WHERE network_id = ?1)
                 FROM networks WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(&write)?
            .ok_or_else(|| StoreError::UnknownNetwork {
                name: id.to_owned(),
            })?;
        if endpoints > 0 {
            return Err(StoreError::NetworkInUse {
                name,
                endpoints: usize::try_from(endpoints).unwrap_or(usize::MAX),
            });
        }
        tx.execute("DELETE FROM networks WHERE id = ?1", params![id])
            .map_err(&write)?;
        tx.commit().map_err(&write)
    }

    /// Allocates an address on network `network_id` for `container_id` and records the
    /// endpoint, in one transaction: `allocate` gets the addresses taken and picks one
    /// (core's IPAM), `spec` makes the endpoint's JSON from it.
    pub fn add_endpoint(
        &mut self,
        network_id: &str,
        container_id: &str,
        allocate: &dyn Fn(&BTreeSet<IpAddr>) -> Result<IpAddr, String>,
        spec: &dyn Fn(IpAddr) -> Result<String, String>,
    ) -> Result<EndpointRow, StoreError> {
        let write = db::err("recording an endpoint");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&write)?;
        let name: String = tx
            .query_row(
                "SELECT name FROM networks WHERE id = ?1",
                params![network_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(&write)?
            .ok_or_else(|| StoreError::UnknownNetwork {
                name: network_id.to_owned(),
            })?;
        let connected: Option<String> = tx
            .query_row(
                "SELECT ip FROM endpoints WHERE network_id = ?1 AND container_id = ?2",
                params![network_id, container_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(&write)?;
        if connected.is_some() {
            return Err(StoreError::AlreadyConnected {
                container: container_id.to_owned(),
                network: name,
            });
        }
        let mut taken = BTreeSet::new();
        {
            let mut stmt = tx
                .prepare("SELECT ip FROM endpoints WHERE network_id = ?1")
                .map_err(&write)?;
            let ips = stmt
                .query_map(params![network_id], |r| r.get::<_, String>(0))
                .map_err(&write)?;
            for ip in ips {
                let ip = ip.map_err(&write)?;
                taken.insert(ip.parse().map_err(|_| StoreError::CorruptRow {
                    what: "endpoints.ip",
                    value: ip.clone(),
                })?);
            }
        }
        let ipam = |message| StoreError::Ipam {
            network: name.clone(),
            message,
        };
        let ip = allocate(&taken).map_err(ipam)?;
        let spec = spec(ip).map_err(ipam)?;
        tx.execute(
            "INSERT INTO endpoints (network_id, container_id, ip, spec) VALUES (?1, ?2, ?3, ?4)",
            params![network_id, container_id, ip.to_string(), spec],
        )
        .map_err(&write)?;
        tx.commit().map_err(&write)?;
        Ok(EndpointRow {
            network_id: network_id.to_owned(),
            container_id: container_id.to_owned(),
            ip,
            spec,
        })
    }

    /// The endpoints of a network (`Some`) or of a container (`None` network, `Some`
    /// container), or all.
    pub fn endpoints(
        &self,
        network_id: Option<&str>,
        container_id: Option<&str>,
    ) -> Result<Vec<EndpointRow>, StoreError> {
        let list = db::err("listing endpoints");
        let mut stmt = self
            .conn
            .prepare(
                "SELECT network_id, container_id, ip, spec FROM endpoints
                 WHERE (?1 IS NULL OR network_id = ?1) AND (?2 IS NULL OR container_id = ?2)
                 ORDER BY network_id, ip",
            )
            .map_err(&list)?;
        let rows = stmt
            .query_map(params![network_id, container_id], endpoint_row)
            .map_err(&list)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&list)?;
        rows.into_iter().map(to_endpoint).collect()
    }

    /// Deletes an endpoint (releasing its address); whether there was one.
    pub fn remove_endpoint(
        &mut self,
        network_id: &str,
        container_id: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM endpoints WHERE network_id = ?1 AND container_id = ?2",
                params![network_id, container_id],
            )
            .map_err(db::err("removing an endpoint"))?;
        Ok(n > 0)
    }
}
