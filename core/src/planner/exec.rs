//! `plan_exec`: the plan for `berth exec`, a new process in a running container.
//!
//! Pure, like every planner: a function of the persisted [`ContainerRecord`] (whose create
//! plan says which namespaces the container has, which cgroups it is in, its seccomp
//! profile and whether it may call setgroups) and the process to run. Shape, as runc's
//! `setns` path:
//!
//! 1. runtime: `adopt` the container's init (a reused pid is never joined); open each of
//!    init's namespaces (`/proc/$init.pid/ns/X`) before the clone, so the new process
//!    inherits the fds; join init's pid and time namespaces around the clone (they apply to
//!    children only) and step back out; attach the new process to the container's cgroups;
//!    hand over;
//! 2. the new process (actor `init`): `setns` the user namespace first, then the mount
//!    namespace (which sets its root and cwd to the container's root), then the rest by fd,
//!    the cgroup namespace after the cgroup attach; the console when asked; then the same
//!    attributes, identity and privileges as `create`'s init (`cd` to the cwd among them),
//!    and `exec`. No mount, no root switch.
//!
//! Invariants: every plan passes [`Plan::check`]; the exec'd process gets no fd of the
//! runtime (a `close-fds` step, every runtime fd being close-on-exec).

use crate::config::ProcessConfig;
use crate::plan::{
    Actor, HostPath, Namespace, NamespaceSet, NsSource, Op, Plan, PlanBuilder, SeccompProfile,
    SyncPoint,
};
use crate::planner::create::{console_size, exec_env, plan_exec_step, plan_identity};
use crate::planner::lifecycle::leaf_cgroups;
use crate::state::{ContainerRecord, LifecycleError};

/// What `exec` takes besides the process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// `--pid-file`, absolute: receives the new process's pid.
    pub pid_file: Option<HostPath>,
    /// `--console-socket`, absolute: receives the pty master of a terminal process.
    pub console_socket: Option<HostPath>,
    /// `--preserve-fds`: fds 3..3+N are passed on.
    pub preserve_fds: u32,
    /// The `HOME` for a process whose env has none (from the container's passwd file).
    pub home: Option<String>,
}

/// Why an `exec` cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecPlanError {
    /// The record is not usable (it names no init).
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// `terminal` without `--console-socket`: nobody would receive the pty.
    #[error(
        "cannot allocate a tty if berth will detach without setting the console socket (--console-socket)"
    )]
    TerminalWithoutConsoleSocket,
}

/// The namespaces the container's init has of its own or joined (not the host's): those
/// its create plan cloned, unshared, or joined by path, in entry order.
pub fn container_namespaces(plan: &Plan) -> Vec<Namespace> {
    let mut set = Vec::new();
    for s in &plan.steps {
        match &s.op {
            Op::Spawn { ns, .. } | Op::Unshare { ns } => {
                set.extend(Namespace::ALL.into_iter().filter(|n| ns.contains(*n)));
            }
            Op::Setns {
                ns,
                from: NsSource::Path(_),
            } => set.push(*ns),
            _ => {}
        }
    }
    Namespace::ALL
        .into_iter()
        .filter(|n| set.contains(n))
        .collect()
}

/// The seccomp profile the create plan loaded, if any.
fn seccomp_of(plan: &Plan) -> Option<&SeccompProfile> {
    plan.steps.iter().rev().find_map(|s| match &s.op {
        Op::Seccomp(profile) => Some(profile),
        _ => None,
    })
}

/// Plans `exec` of `process` in the container of `record` (whose status the caller has
/// checked: running).
pub fn plan_exec(
    record: &ContainerRecord,
    process: &ProcessConfig,
    options: &ExecOptions,
) -> Result<Plan, ExecPlanError> {
    if !record
        .plan
        .steps
        .iter()
        .any(|s| matches!(s.op, Op::Spawn { .. }))
    {
        return Err(LifecycleError::NoInit {
            id: record.id.clone(),
        }
        .into());
    }
    if process.terminal && options.console_socket.is_none() {
        return Err(ExecPlanError::TerminalWithoutConsoleSocket);
    }
    let mut b = PlanBuilder::new();
    let init = b.pid("init.pid");
    b.runtime(Op::Adopt {
        pid: init,
        value: record.pid,
        start_time: record.start_time,
    });
    let namespaces = container_namespaces(&record.plan);
    let mut fds = Vec::new();
    for ns in &namespaces {
        let fd = b.fd(&format!("init.{}ns", ns.proc_name()));
        b.runtime(Op::OpenNs {
            of: init,
            ns: *ns,
            fd,
        });
        fds.push((*ns, fd));
    }
    let console_socket = match (&options.console_socket, process.terminal) {
        (Some(path), true) => {
            let fd = b.fd("console.socket");
            b.runtime(Op::ConnectSocket {
                path: path.clone(),
                fd,
            });
            Some(fd)
        }
        _ => None,
    };
    // Pid and time namespaces apply to children: the runtime enters them for the clone.
    let around: Vec<_> = fds
        .iter()
        .filter(|(ns, _)| matches!(ns, Namespace::Pid | Namespace::Time))
        .copied()
        .collect();
    let mut own = Vec::new();
    for (ns, fd) in &around {
        let back = b.fd(&format!("runtime.{}ns", ns.proc_name()));
        b.runtime(Op::OpenOwnNs { ns: *ns, fd: back });
        b.runtime(Op::Setns {
            ns: *ns,
            from: NsSource::Fd(*fd),
        });
        own.push((*ns, back));
    }
    let pid = b.pid("exec.pid");
    b.runtime(Op::Spawn {
        ns: NamespaceSet::default(),
        pid,
    });
    for (ns, back) in own {
        b.runtime(Op::Setns {
            ns,
            from: NsSource::Fd(back),
        });
    }
    for cgroup in leaf_cgroups(&record.plan) {
        b.runtime(Op::CgroupAttach { cgroup, pid });
    }
    if let Some(path) = &options.pid_file {
        b.runtime(Op::WritePidFile {
            path: path.clone(),
            pid,
        });
    }
    b.handoff(Actor::Runtime, SyncPoint::Configured);
    // User first (it gives the rights over the others), mount next (root and cwd become
    // the container's), the cgroup namespace after the attach above.
    for (ns, fd) in &fds {
        if !matches!(ns, Namespace::Pid | Namespace::Time) {
            b.init(Op::Setns {
                ns: *ns,
                from: NsSource::Fd(*fd),
            });
        }
    }
    if process.terminal {
        let master = b.fd("console.master");
        b.init(Op::SetupConsole {
            master,
            keep_console: true,
            size: console_size(process),
        });
        if let Some(socket) = console_socket {
            b.init(Op::SendFd { fd: master, socket });
        }
    }
    let setgroups = record
        .plan
        .steps
        .iter()
        .any(|s| matches!(s.op, Op::Setgroups(_)));
    plan_identity(
        &mut b,
        process,
        seccomp_of(&record.plan),
        setgroups,
        options.preserve_fds,
    );
    plan_exec_step(
        &mut b,
        process,
        seccomp_of(&record.plan),
        exec_env(&process.env, options.home.as_deref()),
    );
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{CreateOptions, CreateRequest};
    use crate::host::{CgroupLayout, HostFacts};
    use crate::planner::create::plan_create;
    use crate::state::Status;

    fn record() -> ContainerRecord {
        let mut h = BTreeMap::new();
        for c in ["devices", "pids"] {
            h.insert(c.to_owned(), HostPath::new(format!("/sys/fs/cgroup/{c}")));
        }
        let host = HostFacts {
            cgroup: CgroupLayout::V1 {
                hierarchies: h,
                unified: None,
            },
            root_in_init_userns: true,
            euid: 0,
            egid: 0,
            namespaces: Namespace::ALL.to_vec(),
            clone_into_cgroup: false,
            seccomp: true,
            hugepage_sizes: Vec::new(),
        };
        let mut config: serde_json::Value =
            serde_json::from_str(&crate::spec::default_config_json(None)).unwrap();
        config["process"]["terminal"] = serde_json::json!(false);
        let bundle = HostPath::new("/b");
        let request = CreateRequest {
            id: "c1".to_owned(),
            bundle: bundle.clone(),
            state_root: HostPath::new("/run/berth"),
            config: crate::spec::parse_config(&config.to_string(), &bundle).unwrap(),
            options: CreateOptions::default(),
            home: None,
        };
        ContainerRecord {
            oci_version: "1.2.1".to_owned(),
            id: "c1".to_owned(),
            status: Status::Created,
            pid: 4242,
            start_time: 777,
            bundle,
            rootfs: HostPath::new("/b/rootfs"),
            created: "2026-01-02T03:04:05Z".to_owned(),
            annotations: BTreeMap::new(),
            owner: "root".to_owned(),
            poststop: Vec::new(),
            plan: plan_create(&request, &host).unwrap(),
        }
    }

    fn process(r: &ContainerRecord, terminal: bool) -> ProcessConfig {
        let mut p = crate::spec::parse_config(&crate::spec::default_config_json(None), &r.bundle)
            .unwrap()
            .process
            .unwrap();
        p.terminal = terminal;
        p.args = vec!["hostname".to_owned()];
        p
    }

    #[test]
    fn exec_joins_init_namespaces_around_the_clone_and_execs() {
        let r = record();
        let p = plan_exec(&r, &process(&r, false), &ExecOptions::default()).unwrap();
        p.check().unwrap();
        let t: Vec<String> = p.steps.iter().map(|s| p.step_text(s)).collect();
        assert_eq!(t[0], "runtime adopt 4242 start-time=777 -> $init.pid");
        assert_eq!(
            t[1],
            "runtime open-ns /proc/$init.pid/ns/pid -> $init.pidns"
        );
        let spawn = t.iter().position(|l| l.contains("spawn ns=none")).unwrap();
        assert_eq!(t[spawn - 1], "runtime setns pid $init.pidns");
        assert_eq!(t[spawn + 1], "runtime setns pid $runtime.pidns");
        assert!(t[spawn + 2].starts_with("runtime cgroup-attach /sys/fs/cgroup/devices/berth/c1"));
        let mnt = t
            .iter()
            .position(|l| l == "init setns mnt $init.mntns")
            .unwrap();
        let chdir = t.iter().position(|l| l.starts_with("init cd /")).unwrap();
        assert!(mnt < chdir);
        assert!(t.iter().any(|l| l.starts_with("init close-fds")));
        assert!(t.last().unwrap().starts_with("init exec hostname"));
        assert!(!p.steps.iter().any(|s| matches!(
            s.op,
            Op::Mount(_) | Op::PivotRoot { .. } | Op::Unshare { .. }
        )));
    }

    #[test]
    fn exec_refuses_a_tty_without_socket_and_a_record_without_init() {
        let mut r = record();
        assert_eq!(
            plan_exec(&r, &process(&r, true), &ExecOptions::default()),
            Err(ExecPlanError::TerminalWithoutConsoleSocket)
        );
        let with_socket = ExecOptions {
            console_socket: Some(HostPath::new("/tmp/sock")),
            ..ExecOptions::default()
        };
        let p = plan_exec(&r, &process(&r, true), &with_socket).unwrap();
        p.check().unwrap();
        assert!(p.steps.iter().any(|s| matches!(s.op, Op::SendFd { .. })));
        // The exec'd process's pty is its own: the container's /dev/console stays.
        assert!(
            p.to_string()
                .contains("init setup-console -> $console.master\n"),
            "{p}"
        );
        r.plan.steps.retain(|s| !matches!(s.op, Op::Spawn { .. }));
        assert_eq!(
            plan_exec(&r, &process(&r, false), &ExecOptions::default()),
            Err(ExecPlanError::Lifecycle(LifecycleError::NoInit {
                id: "c1".to_owned()
            }))
        );
    }
}
