//! Process attributes: names, sysctls, limits, capabilities, identity, fds, and exec.

use std::ffi::CString;
use std::os::fd::OwnedFd;

use berth_core::plan::{CapSet, Rlimit};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::resource::Resource;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

use crate::error::{Call, LinuxError, SysResult};
use crate::ns::io_errno;
use crate::sys;

/// sethostname(2).
pub(crate) fn sethostname(name: &str) -> SysResult<()> {
    nix::unistd::sethostname(name).call("sethostname")
}

/// setdomainname(2).
pub(crate) fn setdomainname(name: &str) -> SysResult<()> {
    sys::setdomainname(name.as_bytes()).call("setdomainname")
}

/// Writes `/proc/sys/KEY` (dots become slashes), resolved beneath `/proc/sys` so a key
/// cannot name a file elsewhere.
pub(crate) fn sysctl(key: &str, value: &str) -> SysResult<()> {
    let base = nix::fcntl::open(
        "/proc/sys",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .call("open /proc/sys")?;
    let rel = key.replace('.', "/");
    let how = OpenHow::new()
        .flags(OFlag::O_WRONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd: OwnedFd = openat2(&base, rel.as_str(), how).call("open sysctl")?;
    nix::unistd::write(&fd, value.as_bytes())
        .call("write sysctl")
        .map(drop)
}

/// Rlimit -> nix Resource: the one translation.
pub(crate) fn resource(r: Rlimit) -> Resource {
    match r {
        Rlimit::RlimitAs => Resource::RLIMIT_AS,
        Rlimit::RlimitCore => Resource::RLIMIT_CORE,
        Rlimit::RlimitCpu => Resource::RLIMIT_CPU,
        Rlimit::RlimitData => Resource::RLIMIT_DATA,
        Rlimit::RlimitFsize => Resource::RLIMIT_FSIZE,
        Rlimit::RlimitLocks => Resource::RLIMIT_LOCKS,
        Rlimit::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        Rlimit::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        Rlimit::RlimitNice => Resource::RLIMIT_NICE,
        Rlimit::RlimitNofile => Resource::RLIMIT_NOFILE,
        Rlimit::RlimitNproc => Resource::RLIMIT_NPROC,
        Rlimit::RlimitRss => Resource::RLIMIT_RSS,
        Rlimit::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        Rlimit::RlimitRttime => Resource::RLIMIT_RTTIME,
        Rlimit::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        Rlimit::RlimitStack => Resource::RLIMIT_STACK,
    }
}

/// setrlimit(2); `u64::MAX` is `RLIM_INFINITY`.
pub(crate) fn setrlimit(r: Rlimit, soft: u64, hard: u64) -> SysResult<()> {
    nix::sys::resource::setrlimit(resource(r), soft, hard).call("setrlimit")
}

/// Writes `/proc/self/oom_score_adj`.
pub(crate) fn oom_score_adj(v: i32) -> SysResult<()> {
    std::fs::write("/proc/self/oom_score_adj", v.to_string())
        .map_err(|e| ("write oom_score_adj", io_errno(&e)))
}

/// umask(2).
pub(crate) fn umask(m: u32) {
    nix::sys::stat::umask(Mode::from_bits_truncate(m));
}

/// The highest capability number the kernel knows.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops every capability not in `keep` from the bounding set.
pub(crate) fn cap_bounding(keep: CapSet) -> SysResult<()> {
    for cap in 0..=last_cap().min(63) {
        if keep.0 & (1u64 << cap) != 0 {
            continue;
        }
        match sys::capbset_read(cap) {
            Ok(false) | Err(Errno::EINVAL) => continue,
            Ok(true) => {}
            Err(e) => return Err(("prctl(PR_CAPBSET_READ)", e)),
        }
        sys::capbset_drop(cap).call("prctl(PR_CAPBSET_DROP)")?;
    }
    Ok(())
}

/// capset(2) of effective, permitted and inheritable, then the ambient set (cleared, then
/// each raised).
pub(crate) fn capset(
    effective: CapSet,
    permitted: CapSet,
    inheritable: CapSet,
    ambient: CapSet,
) -> SysResult<()> {
    sys::capset(effective.0, permitted.0, inheritable.0).call("capset")?;
    sys::ambient_clear_all().call("prctl(PR_CAP_AMBIENT_CLEAR_ALL)")?;
    for cap in ambient.iter() {
        match sys::ambient_raise(u32::from(cap.number())) {
            // The kernel raises an ambient capability only when it is permitted and
            // inheritable; runc's own default config asks for ambient capabilities without
            // inheritable ones, and runc goes on with a warning. berth goes on too: the
            // capability is simply not ambient.
            Ok(()) | Err(Errno::EPERM) => {}
            Err(e) => return Err(("prctl(PR_CAP_AMBIENT_RAISE)", e)),
        }
    }
    Ok(())
}

/// Which of `effective` and `permitted` this process does not hold in its own permitted
/// set (`CapPrm` of /proc/self/status), if any: why a capset of them fails with `EPERM`.
pub(crate) fn caps_not_held(effective: CapSet, permitted: CapSet) -> Option<CapSet> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let held = status
        .lines()
        .find_map(|l| l.strip_prefix("CapPrm:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())?;
    let missing = (effective.0 | permitted.0) & !held;
    (missing != 0).then_some(CapSet(missing))
}

/// setgroups(2).
pub(crate) fn setgroups(groups: &[u32]) -> SysResult<()> {
    let gids: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&gids).call("setgroups")
}

/// setgid(2) (real, effective and saved).
pub(crate) fn setgid(gid: u32) -> SysResult<()> {
    let g = Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g).call("setresgid")
}

/// setuid(2) (real, effective and saved), keeping the permitted capabilities for the
/// `cap-set` that follows (PR_SET_KEEPCAPS around the call).
pub(crate) fn setuid(uid: u32) -> SysResult<()> {
    nix::sys::prctl::set_keepcaps(true).call("prctl(PR_SET_KEEPCAPS)")?;
    let u = Uid::from_raw(uid);
    let r = nix::unistd::setresuid(u, u, u).call("setresuid");
    nix::sys::prctl::set_keepcaps(false).call("prctl(PR_SET_KEEPCAPS)")?;
    r
}

/// prctl(PR_SET_NO_NEW_PRIVS).
pub(crate) fn no_new_privs() -> SysResult<()> {
    nix::sys::prctl::set_no_new_privs().call("prctl(PR_SET_NO_NEW_PRIVS)")
}

/// Marks every fd above `2 + preserve` close-on-exec.
pub(crate) fn close_fds(preserve: u32) -> SysResult<()> {
    sys::cloexec_from(3u32.saturating_add(preserve)).call("close_range")
}

/// The `PATH` when the environment has none (runc's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Finds argv\[0\] as execvp would, in `PATH` from `env`.
pub(crate) fn lookup(name: &str, env: &[String]) -> Option<String> {
    if name.contains('/') {
        return Some(name.to_owned());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':').find_map(|dir| {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = format!("{dir}/{name}");
        let meta = std::fs::metadata(&candidate).ok()?;
        let exec = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0;
        (meta.is_file() && exec).then_some(candidate)
    })
}

/// The path execve will run for `argv` (argv\[0\] looked up in `PATH` from `env` when it
/// has no `/`), checked as runc checks it before the start barrier: it exists, and is a
/// file with an execute bit. `text` names the exec step in the error.
pub(crate) fn find_program(
    argv: &[String],
    env: &[String],
    text: &str,
) -> Result<String, LinuxError> {
    let not_found = |name: &str| LinuxError::NotFound {
        step: text.to_owned(),
        name: name.to_owned(),
    };
    let name = argv.first().ok_or_else(|| not_found(""))?;
    let path = lookup(name, env).ok_or_else(|| not_found(name))?;
    let no_program = |errno| LinuxError::NoProgram {
        step: text.to_owned(),
        name: path.clone(),
        errno,
    };
    let st = nix::sys::stat::stat(path.as_str()).map_err(no_program)?;
    let is_file = st.st_mode & libc::S_IFMT == libc::S_IFREG;
    if !is_file || st.st_mode & 0o111 == 0 {
        return Err(no_program(Errno::EACCES));
    }
    Ok(path)
}

/// execve(2) the container's process; returns only on failure.
pub(crate) fn exec(argv: &[String], env: &[String], text: &str) -> LinuxError {
    let nul = |what| LinuxError::Nul {
        step: text.to_owned(),
        what,
    };
    let path = match find_program(argv, env, text) {
        Ok(path) => path,
        Err(err) => return err,
    };
    let Ok(path) = CString::new(path) else {
        return nul("the executable path");
    };
    let Ok(args) = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return nul("argv");
    };
    let Ok(envs) = env
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return nul("env");
    };
    if let Err(errno) = sys::default_sigpipe() {
        return LinuxError::Sys {
            step: text.to_owned(),
            call: "signal(SIGPIPE, SIG_DFL)",
            errno,
        };
    }
    let errno = match nix::unistd::execve(&path, &args, &envs) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    LinuxError::Sys {
        step: text.to_owned(),
        call: "execve",
        errno,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rlimit_has_its_own_resource() {
        let mut seen = std::collections::BTreeSet::new();
        for (r, _) in Rlimit::ALL {
            assert!(seen.insert(resource(r) as i64), "{r:?}");
        }
    }

    #[test]
    fn lookup_follows_path_and_keeps_slashes() {
        let env = vec!["PATH=/nonexistent:/bin".to_owned()];
        assert_eq!(lookup("sh", &env).as_deref(), Some("/bin/sh"));
        assert_eq!(lookup("./x", &env).as_deref(), Some("./x"));
        assert_eq!(lookup("no-such-program-berth", &env), None);
    }
}
