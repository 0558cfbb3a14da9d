//! Host sysctls (`/proc/sys/net/ipv4/ip_forward`, a bridge's `route_localnet`): read the
//! value, write the new one, write the old one back on undo.
//!
//! A path is opened beneath `/proc/sys` (openat2 `RESOLVE_BENEATH`), so a plan cannot name
//! a file elsewhere through it. `/proc/sys/net` shows the network namespace of the thread
//! that opens it: the backend's calling thread, the host's.

use std::os::fd::OwnedFd;

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

use super::error::{Fail, SysCall};

/// The part of `path` below `/proc/sys/`, or `None` when it is not below it.
pub(crate) fn relative(path: &str) -> Option<&str> {
    let rel = path.strip_prefix("/proc/sys/")?;
    (!rel.is_empty()
        && !rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".."))
    .then_some(rel)
}

fn open(rel: &str, flags: OFlag) -> Result<OwnedFd, Fail> {
    let base = nix::fcntl::open(
        "/proc/sys",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .sys("open /proc/sys")?;
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(&base, rel, how).sys("open sysctl")
}

/// The current value, without its trailing newline.
pub(crate) fn read(rel: &str) -> Result<String, Fail> {
    let fd = open(rel, OFlag::O_RDONLY)?;
    let mut buf = vec![0u8; 4096];
    let n = nix::unistd::read(&fd, &mut buf).sys("read sysctl")?;
    buf.truncate(n);
    Ok(String::from_utf8_lossy(&buf)
        .trim_end_matches('\n')
        .to_owned())
}

/// Writes `value`.
pub(crate) fn write(rel: &str, value: &str) -> Result<(), Fail> {
    let fd = open(rel, OFlag::O_WRONLY)?;
    nix::unistd::write(&fd, value.as_bytes())
        .sys("write sysctl")
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_below_proc_sys() {
        assert_eq!(
            relative("/proc/sys/net/ipv4/ip_forward"),
            Some("net/ipv4/ip_forward")
        );
        assert_eq!(
            relative("/proc/sys/net/ipv4/conf/br-1.2/route_localnet"),
            Some("net/ipv4/conf/br-1.2/route_localnet")
        );
        for bad in [
            "/proc/sys/",
            "/proc/sys",
            "/etc/passwd",
            "/proc/sys/../self/environ",
            "/proc/sys/net//x",
            "/proc/sysx/a",
        ] {
            assert_eq!(relative(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_a_sysctl() {
        let v = read("net/ipv4/ip_forward").unwrap();
        assert!(v == "0" || v == "1", "{v:?}");
    }
}
