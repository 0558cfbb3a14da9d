//! One op, carried out in the calling process: the dispatch from [`Op`] to the module that
//! knows how.
//!
//! The match is exhaustive without a wildcard, so a new op does not compile until this
//! backend says what it does with it.

use berth_core::plan::{Op, Plan, Step};

use crate::backend::{Bound, LinuxBackend, MadeList, Role, made_by_init};
use crate::error::{AtStep, Call, LinuxError};

impl LinuxBackend {
    /// Carries out `step` in this process. Sync ops, spawn, kill and exec are the
    /// callers' business (runtime and init handle them differently).
    #[deny(clippy::wildcard_enum_match_arm)]
    pub(crate) fn run_op(
        &mut self,
        plan: &Plan,
        step: &Step,
        text: &str,
    ) -> Result<(), LinuxError> {
        let not_here = |got: &str| LinuxError::Protocol {
            step: text.to_owned(),
            got: got.to_owned(),
        };
        let netlink = || LinuxError::NotImplemented {
            step: text.to_owned(),
            what: "a network op in the runtime (the engine carries network plans out with net::NetBackend)",
        };
        let pivoted = self.pivoted.clone();
        let pivoted = pivoted.as_ref();
        match &step.op {
            Op::Signal(_) | Op::Wait(_) | Op::Spawn { .. } | Op::Kill { .. } | Op::Exec { .. } => {
                Err(not_here(
                    "a sync, spawn, kill or exec step in the op dispatch",
                ))
            }
            Op::StateCreate { dir } => {
                crate::state::create_dir(dir).at(text)?;
                self.state_dir = Some(dir.as_str().into());
                // A record from the start: a `create` killed at any later step is found
                // by `delete --force`, which removes its cgroups (and, once spawned, init).
                crate::state::write_preliminary(plan, None).at(text)?;
                Ok(())
            }
            Op::StateRemove { dir } => crate::state::remove_dir(dir).at(text),
            Op::StateWrite {
                dir,
                id,
                bundle,
                pid,
                status,
                rootfs,
                annotations,
                poststop,
            } => {
                let pid = self.bound_pid(plan, *pid, text)?;
                let fields = crate::state::StateFields {
                    id,
                    bundle,
                    rootfs,
                    status,
                    annotations,
                    poststop,
                };
                crate::state::write_state(dir, plan, &fields, pid.as_raw()).at(text)
            }
            Op::Adopt {
                pid,
                value,
                start_time,
            } => {
                let gone = || LinuxError::ProcessGone {
                    step: text.to_owned(),
                    pid: *value,
                };
                let raw = i32::try_from(*value).map_err(|_| gone())?;
                match crate::state::proc_stat(*value) {
                    None => Err(gone()),
                    Some(stat) if stat.is_dead() => Err(gone()),
                    Some(stat) if stat.start_time != *start_time => {
                        Err(LinuxError::NotThatProcess {
                            step: text.to_owned(),
                            pid: *value,
                            recorded: *start_time,
                            found: stat.start_time,
                        })
                    }
                    Some(_) => {
                        self.bind(pid.index(), Bound::Pid(nix::unistd::Pid::from_raw(raw)));
                        Ok(())
                    }
                }
            }
            Op::Recall { pid, value } => {
                let raw = i32::try_from(*value).map_err(|_| LinuxError::ProcessGone {
                    step: text.to_owned(),
                    pid: *value,
                })?;
                self.bind(pid.index(), Bound::Pid(nix::unistd::Pid::from_raw(raw)));
                Ok(())
            }
            Op::SendSignal { pid, signal } => {
                let pid = self.bound_pid(plan, *pid, text)?;
                crate::sys::kill_any(pid, *signal).call("kill").at(text)
            }
            Op::SignalCgroup { cgroup, signal } => {
                crate::cgroup::signal_all(cgroup, *signal).at(text)
            }
            Op::WritePidFile { path, pid } => {
                let pid = self.bound_pid(plan, *pid, text)?;
                // Not fsync'd, as runc's: whoever asked for it reads it at once.
                crate::state::write_atomic(
                    std::path::Path::new(path.as_str()),
                    pid.as_raw().to_string().as_bytes(),
                    false,
                )
                .at(text)
            }
            Op::Unlink { path } => crate::fs::unlink(path, pivoted).at(text),
            Op::Unshare { ns } => crate::ns::unshare(ns).at(text),
            Op::Setns { ns, from } => self.setns(plan, *ns, from, text),
            Op::OpenNs { of, ns, fd } => {
                let pid = self.bound_pid(plan, *of, text)?;
                let opened = crate::ns::open_ns(pid, *ns).at(text)?;
                self.bind(fd.index(), Bound::Fd(opened));
                Ok(())
            }
            Op::OpenOwnNs { ns, fd } => {
                let opened = crate::ns::open_own_ns(*ns).at(text)?;
                self.bind(fd.index(), Bound::Fd(opened));
                Ok(())
            }
            Op::WriteSetgroups { pid, allow } => {
                let pid = self.bound_pid(plan, *pid, text)?;
                crate::ns::write_setgroups(pid, *allow).at(text)
            }
            Op::WriteIdMap {
                pid,
                kind,
                mappings,
            } => {
                let pid = self.bound_pid(plan, *pid, text)?;
                crate::ns::write_id_map(pid, *kind, mappings).at(text)
            }
            Op::MkdirAll { path, mode, made } => {
                let paths = crate::fs::mkdir_all(path, *mode, pivoted).at(text)?;
                self.bind(
                    made.index(),
                    Bound::Made(MadeList {
                        paths,
                        ..MadeList::default()
                    }),
                );
                Ok(())
            }
            Op::MkMountPoint { path, source, made } => {
                let paths = crate::fs::mk_mount_point(path, source.as_ref(), pivoted).at(text)?;
                self.bind(
                    made.index(),
                    Bound::Made(MadeList {
                        paths,
                        ..MadeList::default()
                    }),
                );
                Ok(())
            }
            Op::RemoveMade { made: r } => {
                let made = match self.take_made(plan, *r, text) {
                    Ok(made) => made,
                    // Init's made-list, never reported: init did not get to say what it
                    // made (it died first), so nothing is known to be its.
                    Err(_) if made_by_init(plan, r.index()) => return Ok(()),
                    Err(e) => return Err(e),
                };
                crate::fs::remove_made(&made.paths, pivoted).at(text)?;
                crate::cgroup::remove_dirs(&made.cgroup_dirs).at(text)
            }
            Op::Symlink { target, link } => {
                crate::fs::symlink(target, link, pivoted).at(text).map(drop)
            }
            Op::Mknod {
                path,
                kind,
                major,
                minor,
                mode,
                uid,
                gid,
            } => crate::fs::mknod(path, *kind, *major, *minor, *mode, *uid, *gid, pivoted)
                .at(text)
                .map(drop),
            Op::Chown { path, uid, gid } => crate::fs::chown(path, *uid, *gid, pivoted).at(text),
            Op::Mount(m) => crate::fs::mount(m, pivoted).at(text),
            Op::Remount { target, flags } => crate::fs::remount(target, flags, pivoted).at(text),
            Op::SetPropagation {
                target,
                propagation,
                recursive,
            } => crate::fs::set_propagation(target, *propagation, *recursive, pivoted).at(text),
            Op::Umount { target, detach } => crate::fs::umount(target, *detach, pivoted).at(text),
            Op::MaskPath { path } => crate::fs::mask(path, pivoted).at(text),
            Op::ReadonlyPath { path } => crate::fs::readonly(path, pivoted).at(text),
            Op::PivotRoot { new_root } => {
                crate::fs::pivot_root(new_root).at(text)?;
                self.pivoted = Some(new_root.clone());
                Ok(())
            }
            Op::Chroot { new_root } => {
                crate::fs::chroot(new_root).at(text)?;
                self.pivoted = Some(new_root.clone());
                Ok(())
            }
            Op::Chdir { path } => crate::fs::chdir(path, pivoted).at(text),
            Op::SetHostname(name) => crate::process::sethostname(name).at(text),
            Op::SetDomainname(name) => crate::process::setdomainname(name).at(text),
            Op::Sysctl { key, value } => crate::process::sysctl(key, value).at(text),
            Op::SetRlimit {
                resource,
                soft,
                hard,
            } => crate::process::setrlimit(*resource, *soft, *hard).at(text),
            Op::OomScoreAdj(v) => crate::process::oom_score_adj(*v).at(text),
            Op::Umask(m) => {
                crate::process::umask(*m);
                Ok(())
            }
            Op::CapBounding(set) => crate::process::cap_bounding(*set).at(text),
            Op::CapSet {
                effective,
                permitted,
                inheritable,
                ambient,
            } => crate::process::capset(*effective, *permitted, *inheritable, *ambient)
                .at(text)
                .map_err(
                    |e| match crate::process::caps_not_held(*effective, *permitted) {
                        Some(missing) if e.errno() == Some(nix::errno::Errno::EPERM) => {
                            LinuxError::CapsNotHeld {
                                step: text.to_owned(),
                                missing: missing.to_string(),
                            }
                        }
                        _ => e,
                    },
                ),
            Op::Setgroups(groups) => crate::process::setgroups(groups).at(text),
            Op::Setgid(gid) => crate::process::setgid(*gid).at(text),
            Op::Setuid(uid) => crate::process::setuid(*uid).at(text),
            Op::NoNewPrivs => crate::process::no_new_privs().at(text),
            Op::Seccomp(profile) => crate::seccomp::load(profile, text),
            Op::CloseFds { preserve } => crate::process::close_fds(*preserve).at(text),
            Op::SetupConsole {
                master,
                size,
                keep_console,
            } => {
                let fd = crate::console::setup_console(pivoted, *size, !keep_console).at(text)?;
                self.bind(master.index(), Bound::Fd(fd));
                Ok(())
            }
            Op::ConnectSocket { path, fd } => {
                let stream = crate::console::connect(path).at(text)?;
                self.bind(fd.index(), Bound::Fd(stream.into()));
                Ok(())
            }
            Op::SendFd { fd, socket } => {
                let sent = self.bound_fd(plan, *fd, text)?;
                let socket = self.bound_fd(plan, *socket, text)?;
                crate::console::send_fd(sent, socket).at(text)
            }
            Op::RunHook {
                kind,
                index: _,
                hook,
                pid,
            } => {
                let pid = match &self.role {
                    Role::Init(side) => side.host_pid,
                    Role::Runtime => self.bound_pid(plan, *pid, text)?.as_raw(),
                };
                crate::hooks::run(plan, *kind, hook, pid, self.container.as_ref(), text)
            }
            Op::CgroupCreate { cgroup, made } => {
                let dirs = crate::cgroup::create(cgroup).at(text)?;
                self.bind(
                    made.index(),
                    Bound::Made(MadeList {
                        cgroup_dirs: dirs,
                        ..MadeList::default()
                    }),
                );
                Ok(())
            }
            Op::CgroupEnable {
                cgroup,
                controllers,
                made,
            } => {
                let enabled = crate::cgroup::enable(cgroup, controllers).at(text)?;
                self.bind(
                    made.index(),
                    Bound::Made(MadeList {
                        controllers: enabled,
                        ..MadeList::default()
                    }),
                );
                Ok(())
            }
            Op::CgroupDisable { cgroup, made } => {
                let made = self.take_made(plan, *made, text)?;
                crate::cgroup::disable(cgroup, &made.controllers).at(text)
            }
            Op::CgroupWrite {
                cgroup,
                file,
                value,
            } => crate::cgroup::write(cgroup, file, value).at(text),
            Op::CgroupAttach { cgroup, pid } => {
                let pid = self.bound_pid(plan, *pid, text)?;
                crate::cgroup::attach(cgroup, pid).at(text)
            }
            Op::CgroupDevices { cgroup, rules } => crate::bpf::apply(cgroup, rules, text),
            Op::CgroupRemove { cgroup } => crate::cgroup::remove(cgroup).at(text),
            Op::LinkAdd { .. }
            | Op::LinkDel { .. }
            | Op::LinkGet { .. }
            | Op::LinkSetUp { .. }
            | Op::LinkSetMaster { .. }
            | Op::AddrAdd { .. }
            | Op::AddrDel { .. }
            | Op::RouteAdd { .. }
            | Op::RouteDel { .. }
            | Op::NetnsCreate { .. }
            | Op::NetnsRemove { .. }
            | Op::SysctlSet { .. }
            | Op::SysctlRestore { .. }
            | Op::FwTableEnsure { .. }
            | Op::FwTableDelete { .. }
            | Op::FwTablePrune
            | Op::FwRuleAdd { .. }
            | Op::FwRuleDel { .. } => Err(netlink()),
        }
    }
}
