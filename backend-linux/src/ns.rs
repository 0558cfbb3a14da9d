//! Namespaces: core's `Namespace` to `CloneFlags`, unshare, setns, namespace fds, id maps.

use std::io::Write;
use std::os::fd::OwnedFd;

use berth_core::plan::{IdMapKind, IdMapping, Namespace, NamespaceSet, NsSource, Plan};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use crate::backend::LinuxBackend;
use crate::error::{AtStep, Call, LinuxError, SysResult};

/// Namespace -> its `CLONE_NEW*` flag: the one translation.
pub(crate) fn clone_flag(ns: Namespace) -> CloneFlags {
    match ns {
        Namespace::User => CloneFlags::CLONE_NEWUSER,
        Namespace::Pid => CloneFlags::CLONE_NEWPID,
        Namespace::Mount => CloneFlags::CLONE_NEWNS,
        Namespace::Network => CloneFlags::CLONE_NEWNET,
        Namespace::Uts => CloneFlags::CLONE_NEWUTS,
        Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
        Namespace::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        Namespace::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// A set of namespaces as clone/unshare flags.
pub(crate) fn clone_flags(set: &NamespaceSet) -> CloneFlags {
    set.0
        .iter()
        .fold(CloneFlags::empty(), |acc, ns| acc | clone_flag(*ns))
}

/// unshare(2).
pub(crate) fn unshare(set: &NamespaceSet) -> SysResult<()> {
    crate::fs::forget_root();
    nix::sched::unshare(clone_flags(set)).call("unshare")
}

/// Opens `/proc/PID/ns/NAME`.
pub(crate) fn open_ns(pid: Pid, ns: Namespace) -> SysResult<OwnedFd> {
    nix::fcntl::open(
        format!("/proc/{pid}/ns/{}", ns.proc_name()).as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .call("open namespace")
}

/// Opens `/proc/self/ns/NAME`: the calling process's own namespace.
pub(crate) fn open_own_ns(ns: Namespace) -> SysResult<OwnedFd> {
    nix::fcntl::open(
        format!("/proc/self/ns/{}", ns.proc_name()).as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .call("open namespace")
}

impl LinuxBackend {
    /// setns(2) into a namespace named by path or by a bound fd.
    pub(crate) fn setns(
        &mut self,
        plan: &Plan,
        ns: Namespace,
        from: &NsSource,
        text: &str,
    ) -> Result<(), LinuxError> {
        let flag = clone_flag(ns);
        crate::fs::forget_root();
        match from {
            NsSource::Path(path) => {
                let fd = nix::fcntl::open(
                    path.as_str(),
                    OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .call("open namespace")
                .at(text)?;
                nix::sched::setns(&fd, flag).call("setns").at(text)
            }
            NsSource::Fd(r) => {
                let fd = self.bound_fd(plan, *r, text)?;
                nix::sched::setns(fd, flag).call("setns").at(text)
            }
        }
    }
}

/// Writes a whole file under /proc in one write(2), as the kernel wants for id maps.
fn write_proc(path: &str, content: &str, call: &'static str) -> SysResult<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| (call, io_errno(&e)))?;
    f.write_all(content.as_bytes())
        .map_err(|e| (call, io_errno(&e)))
}

/// The errno of an I/O error (`EIO` when it has none).
pub(crate) fn io_errno(e: &std::io::Error) -> nix::errno::Errno {
    e.raw_os_error()
        .map_or(nix::errno::Errno::EIO, nix::errno::Errno::from_raw)
}

/// Writes `/proc/PID/setgroups`.
pub(crate) fn write_setgroups(pid: Pid, allow: bool) -> SysResult<()> {
    write_proc(
        &format!("/proc/{pid}/setgroups"),
        if allow { "allow" } else { "deny" },
        "write setgroups",
    )
}

/// Writes `/proc/PID/uid_map` or `gid_map`.
pub(crate) fn write_id_map(pid: Pid, kind: IdMapKind, mappings: &[IdMapping]) -> SysResult<()> {
    let file = match kind {
        IdMapKind::Uid => "uid_map",
        IdMapKind::Gid => "gid_map",
    };
    let text: String = mappings
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect();
    write_proc(&format!("/proc/{pid}/{file}"), &text, "write id map")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_namespace_has_its_own_flag() {
        let mut seen = CloneFlags::empty();
        for ns in Namespace::ALL {
            let f = clone_flag(ns);
            assert_eq!(f.bits().count_ones(), 1, "{ns}");
            assert!(!seen.intersects(f), "{ns}");
            seen |= f;
        }
        let set: NamespaceSet = [Namespace::Pid, Namespace::Mount].into_iter().collect();
        assert_eq!(
            clone_flags(&set),
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS
        );
    }
}
