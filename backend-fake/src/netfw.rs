//! Persistent network namespaces, host sysctls written by path, and berth's nftables table.
//!
//! `netns-create` makes what `ip netns add` makes: an empty file with a new network
//! namespace's nsfs bind-mounted on it; `netns-remove` unmounts and unlinks it, and the
//! namespace (with the links in it, and the host end of their veths) goes once nothing
//! else holds it. The firewall is modelled per network namespace as berth's table: absent,
//! or its chains with their `(tag, rule)` lists, in order.

use std::collections::BTreeMap;

use berth_core::plan::{FwChain, FwRule, HostPath, Location, Namespace, Plan};

use crate::FakeError;
use crate::model::{FsKind, MountEntry, Node, NodeKind, Ns, NsData};
use crate::world::{Made, World, cap};

/// berth's table in one network namespace: each chain's rules, `(tag, rule)` in order.
pub(crate) type FwTable = BTreeMap<FwChain, Vec<(String, FwRule)>>;

const CHAINS: [FwChain; 5] = [
    FwChain::Prerouting,
    FwChain::Output,
    FwChain::Postrouting,
    FwChain::Forward,
    FwChain::Isolation,
];

/// The sysctl key of a `/proc/sys/...` path (`net.ipv4.ip_forward`).
fn sysctl_key(op: &'static str, path: &HostPath) -> Result<String, FakeError> {
    let rest = path
        .as_str()
        .strip_prefix("/proc/sys/")
        .filter(|r| !r.is_empty() && r.split('/').all(|c| !c.is_empty() && c != ".."))
        .ok_or_else(|| FakeError::Invalid {
            op,
            why: format!("{path} is not a file under /proc/sys"),
        })?;
    Ok(rest.replace('/', "."))
}

impl World {
    /// `netns-create PATH`.
    pub(crate) fn netns_create(&mut self, actor: u32, path: &HostPath) -> Result<(), FakeError> {
        let op = "netns-create";
        let userns = self.ns_of(actor, Namespace::User)?;
        self.need_cap(op, actor, cap::SYS_ADMIN, userns)?;
        let spot = self.spot(actor, &Location::Host(path.clone()))?;
        let t = match self.resolve(&spot, false) {
            Ok(t) => t,
            Err(FakeError::Missing { path, .. }) => return Err(FakeError::Missing { op, path }),
            Err(e) => return Err(e),
        };
        if self.node(spot.mns, &t).is_some() {
            return Err(FakeError::Exists {
                op,
                path: path.to_string(),
            });
        }
        self.create(
            op,
            actor,
            spot.mns,
            &t,
            NodeKind::File(String::new()),
            0o444,
        )?;
        let tid = self.node(spot.mns, &t).map(|(id, _)| id);
        let ns = self.id();
        self.m.add_ns(
            ns,
            Ns {
                kind: Namespace::Network,
                owner: Some(userns),
                data: NsData::Net {
                    links: BTreeMap::from([(1, crate::net::loopback(false))]),
                    routes: Default::default(),
                    sysctl: BTreeMap::new(),
                },
            },
        );
        let mut f = crate::model::Fs::new(
            FsKind::Nsfs(BTreeMap::from([(Namespace::Network, ns)])),
            "nsfs",
            "nsfs",
            0o444,
        );
        f.nodes.insert("/".to_owned(), Node::file(0o444, ""));
        let fs = self.id();
        self.m.add_fs(fs, f);
        let id = self.id();
        let mounts = self.mounts_mut(spot.mns).ok_or(FakeError::NamespaceGone {
            op,
            what: format!("mount namespace {}", spot.mns),
        })?;
        mounts.push(MountEntry {
            id,
            target: t,
            fs,
            fs_root: "/".to_owned(),
            mountpoint: tid,
            source: "nsfs".to_owned(),
            fstype: "nsfs".to_owned(),
            flags: Default::default(),
            locked: Default::default(),
            propagation: berth_core::plan::Propagation::Private,
            peer: None,
            data: String::new(),
        });
        Ok(())
    }

    /// `netns-remove PATH`: it must be a namespace file.
    pub(crate) fn netns_remove(&mut self, actor: u32, path: &HostPath) -> Result<(), FakeError> {
        let op = "netns-remove";
        self.ns_by_path(actor, path, Namespace::Network, op)?;
        let loc = Location::Host(path.clone());
        self.umount(actor, &loc, true)?;
        let spot = self.spot(actor, &loc)?;
        let t = self.resolve(&spot, false)?;
        self.remove_node(op, spot.mns, &t, false, None)
    }

    /// `sysctl-set PATH VALUE`: in the actor's network namespace (the files berth writes
    /// by path are `net.*`); a per-interface file needs the interface. Returns what to
    /// restore: `Some(old)` when the value changed (`old` `None`: it was the default).
    pub(crate) fn sysctl_set(
        &mut self,
        actor: u32,
        path: &HostPath,
        value: &str,
    ) -> Result<Made, FakeError> {
        let op = "sysctl-set";
        let key = sysctl_key(op, path)?;
        let Some(rest) = key.strip_prefix("net.") else {
            return Err(FakeError::SysctlNotNamespaced { key });
        };
        let ns = self.ns_of(actor, Namespace::Network)?;
        self.need_cap(op, actor, cap::NET_ADMIN, ns)?;
        let Some(NsData::Net { links, sysctl, .. }) = self.m.ns_mut(ns).map(|n| &mut n.data) else {
            return Err(FakeError::NamespaceGone {
                op,
                what: format!("net namespace {ns}"),
            });
        };
        // net.ipv4.conf.IFNAME.X exists only while the interface does.
        let parts: Vec<&str> = rest.splitn(4, '.').collect();
        if let [_, "conf", ifname, _] = parts.as_slice()
            && !["all", "default"].contains(ifname)
            && !links.values().any(|l| l.name == *ifname)
        {
            return Err(FakeError::Missing {
                op,
                path: path.to_string(),
            });
        }
        let old = sysctl.insert(key, value.to_owned());
        Ok(Made::Sysctl((old.as_deref() != Some(value)).then_some(old)))
    }

    /// `sysctl-restore PATH`: puts back what the set replaced.
    pub(crate) fn sysctl_restore(
        &mut self,
        actor: u32,
        path: &HostPath,
        old: Option<Option<String>>,
    ) -> Result<(), FakeError> {
        let op = "sysctl-restore";
        let key = sysctl_key(op, path)?;
        let Some(old) = old else {
            return Ok(());
        };
        let ns = self.ns_of(actor, Namespace::Network)?;
        self.need_cap(op, actor, cap::NET_ADMIN, ns)?;
        if let Some(NsData::Net { sysctl, .. }) = self.m.ns_mut(ns).map(|n| &mut n.data) {
            match old {
                Some(v) => sysctl.insert(key, v),
                None => sysctl.remove(&key),
            };
        }
        Ok(())
    }

    fn fw_ns(&self, op: &'static str, actor: u32) -> Result<u32, FakeError> {
        let ns = self.ns_of(actor, Namespace::Network)?;
        self.need_cap(op, actor, cap::NET_ADMIN, ns)?;
        Ok(ns)
    }

    /// `fw ensure-table`: whether it made the table.
    pub(crate) fn fw_table_ensure(&mut self, actor: u32) -> Result<Made, FakeError> {
        let ns = self.fw_ns("fw ensure-table", actor)?;
        if self.m.fw.contains_key(&ns) {
            return Ok(Made::FwTable(false));
        }
        let table = CHAINS.iter().map(|c| (*c, Vec::new())).collect();
        self.m.fw.insert(ns, table);
        Ok(Made::FwTable(true))
    }

    /// `fw delete-table`: only a table the ensure made, and only when it has no rules.
    pub(crate) fn fw_table_delete(&mut self, actor: u32, made: bool) -> Result<(), FakeError> {
        let op = "fw delete-table";
        let ns = self.fw_ns(op, actor)?;
        if !made {
            return Ok(());
        }
        let table = self.m.fw.get(&ns).ok_or(FakeError::Missing {
            op,
            path: "table inet berth".to_owned(),
        })?;
        if table.values().any(|rules| !rules.is_empty()) {
            return Err(FakeError::NotEmpty {
                op,
                path: "table inet berth".to_owned(),
            });
        }
        self.m.fw.remove(&ns);
        Ok(())
    }

    /// `fw prune-table`: the table goes when it has no rule left.
    pub(crate) fn fw_table_prune(&mut self, actor: u32) -> Result<(), FakeError> {
        let ns = self.fw_ns("fw prune-table", actor)?;
        if self
            .m
            .fw
            .get(&ns)
            .is_some_and(|table| table.values().all(|rules| rules.is_empty()))
        {
            self.m.fw.remove(&ns);
        }
        Ok(())
    }

    fn fw_chain(
        &mut self,
        op: &'static str,
        actor: u32,
        chain: FwChain,
    ) -> Result<&mut Vec<(String, FwRule)>, FakeError> {
        let ns = self.fw_ns(op, actor)?;
        self.m
            .fw
            .get_mut(&ns)
            .and_then(|t| t.get_mut(&chain))
            .ok_or(FakeError::Missing {
                op,
                path: format!("table inet berth chain {chain}"),
            })
    }

    /// `fw add CHAIN RULE [TAG]`.
    pub(crate) fn fw_rule_add(
        &mut self,
        actor: u32,
        chain: FwChain,
        rule: &FwRule,
        tag: &str,
    ) -> Result<(), FakeError> {
        let op = "fw add";
        if tag.is_empty() || tag.len() > 128 {
            return Err(FakeError::Invalid {
                op,
                why: format!("comment {tag:?} must have 1 to 128 bytes"),
            });
        }
        let rules = self.fw_chain(op, actor, chain)?;
        if rules.iter().any(|(t, _)| t == tag) {
            return Err(FakeError::Exists {
                op,
                path: format!("rule [{tag}] in {chain}"),
            });
        }
        rules.push((tag.to_owned(), rule.clone()));
        Ok(())
    }

    /// `fw del CHAIN [TAG]`.
    pub(crate) fn fw_rule_del(
        &mut self,
        actor: u32,
        chain: FwChain,
        tag: &str,
    ) -> Result<(), FakeError> {
        let op = "fw del";
        let rules = self.fw_chain(op, actor, chain)?;
        let i = rules
            .iter()
            .position(|(t, _)| t == tag)
            .ok_or(FakeError::Missing {
                op,
                path: format!("rule [{tag}] in {chain}"),
            })?;
        rules.remove(i);
        Ok(())
    }
}

/// The firewall lines of [`crate::HostState`]'s text.
pub(crate) fn fw_text(fw: &BTreeMap<u32, FwTable>) -> Vec<String> {
    let mut out = Vec::new();
    for (ns, table) in fw {
        out.push(format!("fw net:{ns} table inet berth"));
        for (chain, rules) in table {
            for (tag, rule) in rules {
                out.push(format!("  {chain} {rule} [{tag}]"));
            }
        }
    }
    out
}

/// Resolves a `sysctl-restore`'s handle.
pub(crate) fn sysctl_made(
    w: &World,
    plan: &Plan,
    made: berth_core::plan::MadeRef,
) -> Result<Option<Option<String>>, FakeError> {
    match w.made_of(plan, made)? {
        Made::Sysctl(old) => Ok(old),
        _ => Err(FakeError::MadeKind {
            op: "sysctl-restore",
            name: plan
                .name_of(berth_core::plan::AnyRef::Made(made))
                .to_owned(),
            holds: "something other than a replaced sysctl value",
        }),
    }
}

/// Resolves a `fw delete-table`'s handle.
pub(crate) fn table_made(
    w: &World,
    plan: &Plan,
    made: berth_core::plan::MadeRef,
) -> Result<bool, FakeError> {
    match w.made_of(plan, made)? {
        Made::FwTable(m) => Ok(m),
        _ => Err(FakeError::MadeKind {
            op: "fw delete-table",
            name: plan
                .name_of(berth_core::plan::AnyRef::Made(made))
                .to_owned(),
            holds: "something other than an ensured table",
        }),
    }
}
