//! The engine's network backend: carries out the network ops of a plan (links, addresses,
//! routes, persisted network namespaces, host sysctls, berth's nftables table) on Linux.
//!
//! [`NetBackend`] is the executor the engine (`berth-engine`) gives core's
//! [`execute`](berth_core::exec::execute) for network plans; the runtime's
//! [`crate::LinuxBackend`] never reaches this module, so the `berth` binary does not carry
//! netlink or tokio.
//!
//! Invariants:
//! - the calling thread never changes its network namespace: whatever must happen inside
//!   another one runs on a short-lived thread (module `netns`);
//! - one rtnetlink connection per namespace, opened from inside it, driven on a
//!   current-thread tokio runtime that only runs while a step is being carried out;
//! - a namespace's connection is closed before its file is removed, so berth never keeps a
//!   removed namespace (and the links in it) alive.

mod error;
mod fw;
mod link;
mod netns;
mod sysctl;

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use berth_core::exec::Backend;
use berth_core::plan::{
    Actor, AnyRef, FdRef, HostPath, IfRef, LinkKind, MadeRef, NetnsRef, Op, Plan, Step,
};

use error::Fail;
pub use error::NetError;
use netns::Conn;

/// What an op that binds a change record changed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Made {
    /// `fw ensure-table`: whether it made the table.
    Table(bool),
    /// `sysctl-set`: the value it replaced, if it changed it.
    Sysctl(Option<String>),
}

/// Which namespace a connection talks to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum NsKey {
    /// The namespace the backend was made in.
    Host,
    /// A namespace file.
    Path(HostPath),
    /// A namespace fd handed over by [`NetBackend::bind_netns_fd`] (by handle number).
    Fd(u16),
}

/// Carries out network ops: netlink (links, addresses, routes), persisted network
/// namespaces, host sysctls, berth's nftables table. Any other op, and any step of the
/// init actor, is a [`NetError::NotNetwork`].
///
/// "The host" ([`NetnsRef::Host`]) is the network namespace of the thread that made the
/// backend. Make one per plan (or per undo) and drop it after: its connections into
/// namespaces stay open while it lives (a `netns-remove` closes that namespace's own).
/// Its runtime is its own, so it must not be used from inside another tokio runtime.
#[derive(Debug)]
pub struct NetBackend {
    rt: tokio::runtime::Runtime,
    /// `/proc/thread-self/ns/net` of the thread that made the backend.
    host_ns: File,
    conns: HashMap<NsKey, Conn>,
    /// Bound ifindexes, by handle number.
    links: HashMap<u16, u32>,
    /// Namespace fds handed over by the caller, by handle number.
    ns_fds: HashMap<u16, OwnedFd>,
    /// Change records, by handle number.
    made: HashMap<u16, Made>,
    fail_at: Option<usize>,
    trace: Vec<String>,
}

impl NetBackend {
    /// A backend for the network namespace of the calling thread.
    pub fn new() -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let host_ns = File::open("/proc/thread-self/ns/net")?;
        Ok(NetBackend {
            rt,
            host_ns,
            conns: HashMap::new(),
            links: HashMap::new(),
            ns_fds: HashMap::new(),
            made: HashMap::new(),
            fail_at: None,
            trace: Vec::new(),
        })
    }

    /// Test-only: step `k` of the plan fails before doing anything.
    #[cfg(feature = "fault-injection")]
    pub fn fail_at_step(mut self, k: usize) -> Self {
        self.fail_at = Some(k);
        self
    }

    /// Binds a network namespace fd to `handle`, for ops naming [`NetnsRef::Fd`] (the fd
    /// comes from whoever ran the plan's `open-ns`).
    pub fn bind_netns_fd(&mut self, handle: FdRef, fd: OwnedFd) {
        self.drop_conn(&NsKey::Fd(handle.0));
        self.ns_fds.insert(handle.0, fd);
    }

    /// The ifindex bound to `handle`, once a `link add` or `link show` step has run.
    pub fn ifindex(&self, handle: IfRef) -> Option<u32> {
        self.links.get(&handle.0).copied()
    }

    /// The text of every step applied (undos included), in order, as [`Plan`]'s `Display`
    /// writes a step without its number.
    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    /// Closes a namespace's connection: its task is aborted and awaited, so the socket
    /// (which holds the namespace) is closed when this returns.
    fn drop_conn(&mut self, key: &NsKey) {
        if let Some(conn) = self.conns.remove(key) {
            conn.task.abort();
            // A cancelled task reports a JoinError; that is the expected outcome.
            let _ = self.rt.block_on(conn.task);
        }
    }

    /// The connection to `ns`, opened on first use.
    fn handle(
        &mut self,
        plan: &Plan,
        ns: &NetnsRef,
        step: &str,
    ) -> Result<rtnetlink::Handle, NetError> {
        let key = match ns {
            NetnsRef::Host => NsKey::Host,
            NetnsRef::Path(p) => NsKey::Path(p.clone()),
            NetnsRef::Fd(r) => NsKey::Fd(r.0),
        };
        if let Some(c) = self.conns.get(&key) {
            return Ok(c.handle.clone());
        }
        let conn = match ns {
            NetnsRef::Host => netns::connect_in(&self.rt, self.host_ns.as_fd()),
            NetnsRef::Path(p) => netns::open_ns_file(Path::new(p.as_str()))
                .and_then(|f| netns::connect_in(&self.rt, f.as_fd())),
            NetnsRef::Fd(r) => {
                let fd = self.ns_fd(plan, *r, step)?;
                netns::connect_in(&self.rt, fd.as_fd())
            }
        }
        .map_err(|f| f.at(step))?;
        let handle = conn.handle.clone();
        self.conns.insert(key, conn);
        Ok(handle)
    }

    fn ns_fd(&self, plan: &Plan, r: FdRef, step: &str) -> Result<&OwnedFd, NetError> {
        self.ns_fds.get(&r.0).ok_or_else(|| NetError::Unbound {
            step: step.to_owned(),
            handle: plan.name_of(AnyRef::Fd(r)).to_owned(),
        })
    }

    fn take_made(&mut self, plan: &Plan, r: MadeRef, step: &str) -> Result<Made, NetError> {
        self.made.remove(&r.0).ok_or_else(|| NetError::Unbound {
            step: step.to_owned(),
            handle: plan.name_of(AnyRef::Made(r)).to_owned(),
        })
    }

    fn link(&self, plan: &Plan, r: IfRef, step: &str) -> Result<u32, NetError> {
        self.ifindex(r).ok_or_else(|| NetError::Unbound {
            step: step.to_owned(),
            handle: plan.name_of(AnyRef::If(r)).to_owned(),
        })
    }

    /// Runs one netlink request on the runtime and names the step of its failure.
    fn run<T>(
        &self,
        step: &str,
        request: impl std::future::Future<Output = Result<T, Fail>>,
    ) -> Result<T, NetError> {
        self.rt.block_on(request).map_err(|f| f.at(step))
    }

    /// Carries out one network op.
    #[deny(clippy::wildcard_enum_match_arm)]
    fn apply_op(&mut self, plan: &Plan, op: &Op, text: &str) -> Result<(), NetError> {
        let not_network = || NetError::NotNetwork {
            step: text.to_owned(),
        };
        match op {
            Op::LinkAdd { netns, spec, index } => {
                let h = self.handle(plan, netns, text)?;
                // The peer's namespace, as an fd the kernel reads (IFLA_NET_NS_FD), when it is
                // not the link's own. Opened here, kept open until the request is answered.
                let peer_file;
                let peer_fd = match &spec.kind {
                    LinkKind::Veth { peer_netns, .. } if peer_netns != netns => match peer_netns {
                        NetnsRef::Host => Some(self.host_ns.as_raw_fd()),
                        NetnsRef::Path(p) => {
                            peer_file = netns::open_ns_file(Path::new(p.as_str()))
                                .map_err(|f| f.at(text))?;
                            Some(peer_file.as_raw_fd())
                        }
                        NetnsRef::Fd(r) => Some(self.ns_fd(plan, *r, text)?.as_raw_fd()),
                    },
                    LinkKind::Veth { .. } | LinkKind::Bridge | LinkKind::Dummy => None,
                };
                self.run(text, link::link_add(&h, spec, peer_fd))?;
                let found = match self.run(text, link::link_index(&h, &spec.name)) {
                    Ok(found) => found,
                    Err(e) => {
                        // The step fails, so its undo will not run: remove the link here
                        // (by name, as its index is what could not be learned).
                        let _ = self.run(text, link::link_del_by_name(&h, &spec.name));
                        return Err(e);
                    }
                };
                self.links.insert(index.0, found);
                Ok(())
            }
            Op::LinkGet { netns, name, index } => {
                let h = self.handle(plan, netns, text)?;
                let found = self.run(text, link::link_index(&h, name))?;
                self.links.insert(index.0, found);
                Ok(())
            }
            Op::LinkDel { netns, index } => {
                let h = self.handle(plan, netns, text)?;
                let i = self.link(plan, *index, text)?;
                self.run(text, link::link_del(&h, i))
            }
            Op::LinkSetUp { netns, index, up } => {
                let h = self.handle(plan, netns, text)?;
                let i = self.link(plan, *index, text)?;
                self.run(text, link::link_set_up(&h, i, *up))
            }
            Op::LinkSetMaster {
                netns,
                index,
                master,
            } => {
                let h = self.handle(plan, netns, text)?;
                let i = self.link(plan, *index, text)?;
                let m = self.link(plan, *master, text)?;
                self.run(text, link::link_set_master(&h, i, m))
            }
            Op::AddrAdd { netns, index, addr } => {
                let h = self.handle(plan, netns, text)?;
                let i = self.link(plan, *index, text)?;
                self.run(text, link::addr_add(&h, i, addr))
            }
            Op::AddrDel { netns, index, addr } => {
                let h = self.handle(plan, netns, text)?;
                let i = self.link(plan, *index, text)?;
                self.run(text, link::addr_del(&h, i, addr))
            }
            Op::RouteAdd {
                netns,
                dst,
                gateway,
                dev,
            }
            | Op::RouteDel {
                netns,
                dst,
                gateway,
                dev,
            } => {
                let h = self.handle(plan, netns, text)?;
                let dev = dev.map(|d| self.link(plan, d, text)).transpose()?;
                let message =
                    link::route_message(dst.as_ref(), *gateway, dev).map_err(|f| f.at(text))?;
                if matches!(op, Op::RouteAdd { .. }) {
                    self.run(text, link::route_add(&h, message))
                } else {
                    self.run(text, link::route_del(&h, message))
                }
            }
            Op::NetnsCreate { path } => {
                // A connection cached under this path would be to an earlier namespace.
                self.drop_conn(&NsKey::Path(path.clone()));
                netns::netns_create(Path::new(path.as_str())).map_err(|f| f.at(text))
            }
            Op::NetnsRemove { path } => {
                // Our socket in the namespace would keep it (and its links) alive.
                self.drop_conn(&NsKey::Path(path.clone()));
                netns::netns_remove(Path::new(path.as_str())).map_err(|f| f.at(text))
            }
            Op::SysctlSet { path, value, made } => {
                let rel = sysctl_rel(path, text)?;
                let old = sysctl::read(rel).map_err(|f| f.at(text))?;
                let replaced = if old == *value {
                    None
                } else {
                    sysctl::write(rel, value).map_err(|f| f.at(text))?;
                    Some(old)
                };
                self.made.insert(made.0, Made::Sysctl(replaced));
                Ok(())
            }
            Op::SysctlRestore { path, made } => {
                let rel = sysctl_rel(path, text)?;
                match self.take_made(plan, *made, text)? {
                    Made::Sysctl(Some(old)) => sysctl::write(rel, &old).map_err(|f| f.at(text)),
                    Made::Sysctl(None) | Made::Table(_) => Ok(()),
                }
            }
            Op::FwTableEnsure { made } => {
                let made_here = fw::ensure_table(text)?;
                self.made.insert(made.0, Made::Table(made_here));
                Ok(())
            }
            Op::FwTableDelete { made } => match self.take_made(plan, *made, text)? {
                Made::Table(true) => fw::delete_table(text),
                Made::Table(false) | Made::Sysctl(_) => Ok(()),
            },
            Op::FwTablePrune => fw::prune_table(text),
            Op::FwRuleAdd { chain, rule, tag } => fw::add_rule(text, *chain, rule, tag),
            Op::FwRuleDel { chain, tag } => fw::del_rule(text, *chain, tag),
            Op::StateCreate { .. }
            | Op::StateRemove { .. }
            | Op::StateWrite { .. }
            | Op::WritePidFile { .. }
            | Op::Unlink { .. }
            | Op::Spawn { .. }
            | Op::Kill { .. }
            | Op::Adopt { .. }
            | Op::Recall { .. }
            | Op::SendSignal { .. }
            | Op::SignalCgroup { .. }
            | Op::Unshare { .. }
            | Op::Setns { .. }
            | Op::OpenNs { .. }
            | Op::OpenOwnNs { .. }
            | Op::WriteSetgroups { .. }
            | Op::WriteIdMap { .. }
            | Op::Signal(_)
            | Op::Wait(_)
            | Op::MkdirAll { .. }
            | Op::MkMountPoint { .. }
            | Op::RemoveMade { .. }
            | Op::Symlink { .. }
            | Op::Mknod { .. }
            | Op::Chown { .. }
            | Op::Mount(_)
            | Op::Remount { .. }
            | Op::SetPropagation { .. }
            | Op::Umount { .. }
            | Op::MaskPath { .. }
            | Op::ReadonlyPath { .. }
            | Op::PivotRoot { .. }
            | Op::Chroot { .. }
            | Op::Chdir { .. }
            | Op::SetHostname(_)
            | Op::SetDomainname(_)
            | Op::Sysctl { .. }
            | Op::SetRlimit { .. }
            | Op::OomScoreAdj(_)
            | Op::Umask(_)
            | Op::CapBounding(_)
            | Op::CapSet { .. }
            | Op::Setgroups(_)
            | Op::Setgid(_)
            | Op::Setuid(_)
            | Op::NoNewPrivs
            | Op::Seccomp(_)
            | Op::CloseFds { .. }
            | Op::SetupConsole { .. }
            | Op::ConnectSocket { .. }
            | Op::SendFd { .. }
            | Op::RunHook { .. }
            | Op::Exec { .. }
            | Op::CgroupCreate { .. }
            | Op::CgroupEnable { .. }
            | Op::CgroupDisable { .. }
            | Op::CgroupWrite { .. }
            | Op::CgroupAttach { .. }
            | Op::CgroupDevices { .. }
            | Op::CgroupRemove { .. } => Err(not_network()),
        }
    }
}

/// The part of a sysctl path below `/proc/sys/`.
fn sysctl_rel<'a>(path: &'a HostPath, step: &str) -> Result<&'a str, NetError> {
    sysctl::relative(path.as_str()).ok_or_else(|| NetError::BadSysctl {
        step: step.to_owned(),
        path: path.to_string(),
    })
}

impl Backend for NetBackend {
    type Error = NetError;

    fn apply(&mut self, plan: &Plan, step: &Step) -> Result<(), NetError> {
        let text = plan.step_text(step);
        if step.actor != Actor::Runtime {
            return Err(NetError::NotNetwork { step: text });
        }
        // A step of the plan itself (not an undo made up by the rollback) is found by
        // address: execute passes references into `plan.steps`.
        let index = plan.steps.iter().position(|s| std::ptr::eq(s, step));
        if index.is_some() && index == self.fail_at {
            return Err(NetError::Injected { step: text });
        }
        self.apply_op(plan, &step.op, &text)?;
        self.trace.push(text);
        Ok(())
    }
}
