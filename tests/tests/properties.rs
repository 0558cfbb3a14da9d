//! Properties of `plan_create` over generated configs and host facts (after pubgrub's
//! `tests/proptest.rs`): determinism, `check()`, where mounts may go, what may follow exec,
//! pivot_root's place, rollback at every step, JSON round trips.

#![allow(clippy::unwrap_used)]

use berth_backend_fake::FakeHost;
use berth_core::config::{CreateOptions, CreateRequest};
use berth_core::exec::execute;
use berth_core::host::HostFacts;
use berth_core::plan::{HostPath, Location, MountSource, Op, Plan};
use berth_core::planner::create::plan_create;
use berth_tests::{base_fake, host_preset};
use proptest::prelude::*;
use proptest::sample::{Index, subsequence};
use serde_json::{Value, json};

const BUNDLE: &str = "/b";
const ROOTFS: &str = "/b/rootfs";

fn config() -> ProptestConfig {
    // As pubgrub: fail fast in CI, shrink thoroughly on a developer's machine.
    let ci = std::env::var_os("CI").is_some();
    ProptestConfig {
        cases: if ci { 96 } else { 64 },
        max_shrink_iters: if ci { 0 } else { 2048 },
        ..ProptestConfig::default()
    }
}

/// A generated request: the config JSON, options, and the host it is planned for.
#[derive(Debug, Clone)]
struct Input {
    config: Value,
    options: CreateOptions,
    host: HostFacts,
}

impl Input {
    fn request(&self) -> CreateRequest {
        let bundle = HostPath::new(BUNDLE);
        let config = berth_core::spec::parse_config(&self.config.to_string(), &bundle)
            .unwrap_or_else(|e| panic!("generated config is invalid: {e}\n{}", self.config));
        CreateRequest {
            id: "p1".to_owned(),
            bundle,
            state_root: HostPath::new("/run/berth"),
            config,
            options: self.options.clone(),
            home: None,
        }
    }

    fn fake(&self) -> FakeHost {
        base_fake(&self.host, BUNDLE)
            .with_dir("/srv/a")
            .with_dir("/srv/b")
            .with_file("/srv/f.conf", "x\n")
            .with_file("/run/console.sock", "")
            .with_file("/hooks/h", "#!/bin/sh\n")
            // startContainer hooks run after the root switch: they live in the rootfs.
            .with_file("/b/rootfs/hooks/h", "#!/bin/sh\n")
            .with_netns_file("/var/run/netns/n1")
    }
}

fn arb_mount() -> impl Strategy<Value = Value> {
    let dest = prop::sample::select(vec!["/data", "/mnt/x", "/etc/app.conf", "/opt/y/z", "/tmp"]);
    let opts = subsequence(
        vec!["ro", "nosuid", "nodev", "noexec", "rprivate", "rslave"],
        0..4,
    );
    (0..3usize, dest, opts).prop_map(|(kind, dest, opts)| {
        let opts: Vec<&str> = opts;
        match kind {
            0 => json!({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                        "options": opts.iter().chain(["size=1m"].iter()).collect::<Vec<_>>()}),
            1 => {
                let src = if dest == "/etc/app.conf" {
                    "/srv/f.conf"
                } else {
                    "/srv/a"
                };
                json!({"destination": dest, "type": "bind", "source": src,
                       "options": opts.iter().chain(["rbind"].iter()).collect::<Vec<_>>()})
            }
            _ => json!({"destination": dest, "type": "bind", "source": "/srv/b",
                        "options": ["bind"]}),
        }
    })
}

fn arb_input() -> impl Strategy<Value = Input> {
    let optional_ns = subsequence(vec!["pid", "network", "ipc", "uts", "cgroup"], 0..=5);
    (
        optional_ns,
        any::<bool>(),                           // user namespace
        any::<bool>(),                           // join the netns by path
        prop::collection::vec(arb_mount(), 0..3),
        any::<bool>(),                           // readonly root
        any::<bool>(),                           // terminal
        any::<bool>(),                           // no_pivot
        prop::sample::select(vec!["v1", "v2"]),
        any::<bool>(),                           // resources
        (any::<bool>(), any::<bool>(), any::<bool>()), // hooks, seccomp, masked
    )
        .prop_map(
            |(ns, userns, join_net, extra, ro, terminal, no_pivot, host, res, (hooks, sec, masked))| {
                let mut namespaces: Vec<Value> = vec![json!({"type": "mount"})];
                for n in &ns {
                    if *n == "network" && join_net {
                        namespaces.push(json!({"type": "network", "path": "/var/run/netns/n1"}));
                    } else {
                        namespaces.push(json!({"type": n}));
                    }
                }
                let mut linux = json!({ "namespaces": namespaces });
                if userns {
                    // proc and mqueue in a user namespace need their own pid and ipc
                    // namespaces (the planner refuses them otherwise, as the kernel would).
                    for n in ["pid", "ipc"] {
                        if !ns.contains(&n) {
                            linux["namespaces"].as_array_mut().unwrap().push(json!({"type": n}));
                        }
                    }
                    linux["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
                    linux["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                    linux["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                }
                if res {
                    linux["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 64},
                        "cpu": {"shares": 256, "quota": 20000, "period": 100000},
                        "devices": [{"allow": false, "access": "rwm"}]});
                }
                if sec {
                    linux["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_ERRNO"}]});
                }
                if masked {
                    linux["maskedPaths"] = json!(["/proc/kcore", "/sys/firmware"]);
                    linux["readonlyPaths"] = json!(["/proc/sys"]);
                }
                let mut mounts = vec![
                    json!({"destination": "/proc", "type": "proc", "source": "proc"}),
                    json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
                    json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                           "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
                ];
                let mut seen = std::collections::BTreeSet::new();
                for m in extra {
                    if seen.insert(m["destination"].as_str().unwrap_or("").to_owned()) {
                        mounts.push(m);
                    }
                }
                let mut config = json!({
                    "ociVersion": "1.2.0",
                    "root": {"path": "rootfs", "readonly": ro},
                    "process": {"terminal": terminal, "user": {"uid": 0, "gid": 0},
                                "args": ["sh"], "cwd": "/", "env": ["PATH=/bin"],
                                "noNewPrivileges": true},
                    "mounts": mounts,
                    "linux": linux,
                });
                if ns.contains(&"uts") {
                    config["hostname"] = json!("gen");
                }
                if hooks {
                    let h = json!([{"path": "/hooks/h"}]);
                    config["hooks"] = json!({"prestart": h, "createRuntime": h,
                        "createContainer": h, "startContainer": h, "poststart": h});
                }
                let mut facts = host_preset(host);
                facts.clone_into_cgroup = false;
                Input {
                    config,
                    options: CreateOptions {
                        no_pivot,
                        console_socket: terminal.then(|| HostPath::new("/run/console.sock")),
                        ..CreateOptions::default()
                    },
                    host: facts,
                }
            },
        )
}

fn plan(input: &Input) -> Plan {
    plan_create(&input.request(), &input.host).unwrap_or_else(|e| panic!("planning failed: {e}"))
}

fn exec_index(plan: &Plan) -> usize {
    plan.steps
        .iter()
        .position(|s| matches!(s.op, Op::Exec { .. }))
        .expect("a create plan ends in exec")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn plan_is_deterministic(input in arb_input()) {
        prop_assert_eq!(plan(&input), plan(&input));
    }

    #[test]
    fn plan_checks(input in arb_input()) {
        let p = plan(&input);
        prop_assert!(p.check().is_ok(), "{:?}\n{}", p.check(), p);
    }

    #[test]
    fn mount_targets_stay_in_the_rootfs(input in arb_input()) {
        let p = plan(&input);
        let pivot = p.steps.iter().position(|s| matches!(s.op, Op::PivotRoot { .. } | Op::Chroot { .. }));
        for (i, s) in p.steps.iter().enumerate() {
            let target = match &s.op {
                Op::Mount(m) => &m.target,
                Op::Remount { target, .. } | Op::SetPropagation { target, .. } => target,
                Op::MkMountPoint { path, .. } | Op::MkdirAll { path, .. } => path,
                _ => continue,
            };
            match target {
                Location::InRoot { root, .. } => prop_assert_eq!(root.as_str(), ROOTFS),
                Location::Container(_) => prop_assert!(pivot.is_some_and(|k| k < i), "step {}: container path before the root switch", i),
                // The only host locations allowed: making the host's / a slave (inside the
                // new mount ns) and bind-mounting the rootfs onto itself.
                Location::Host(h) => prop_assert!(h.as_str() == "/" || h.as_str() == ROOTFS, "step {}: host target {}", i, h),
            }
            if let Op::Mount(m) = &s.op
                && let MountSource::BindLocation(Location::Host(h)) = &m.source
            {
                prop_assert!(h.as_str().starts_with("/"), "{}", h);
            }
        }
    }

    #[test]
    fn no_cgroup_write_or_mount_after_exec(input in arb_input()) {
        let p = plan(&input);
        let exec = exec_index(&p);
        prop_assert!(!p.steps[exec..].iter().any(|t| matches!(t.op,
            Op::CgroupWrite { .. } | Op::CgroupCreate { .. } | Op::CgroupAttach { .. }
            | Op::Mount(_) | Op::Remount { .. } | Op::MaskPath { .. } | Op::ReadonlyPath { .. })), "{}", p);
    }

    #[test]
    fn root_switch_follows_rootfs_mounts_and_precedes_exec(input in arb_input()) {
        let p = plan(&input);
        let switch = p.steps.iter().position(|s| matches!(s.op, Op::PivotRoot { .. } | Op::Chroot { .. }));
        let Some(switch) = switch else { return Err(TestCaseError::fail(format!("no root switch in\n{p}"))); };
        let last_inroot_mount = p.steps.iter().rposition(|s| matches!(&s.op,
            Op::Mount(m) if matches!(m.target, Location::InRoot { .. })));
        prop_assert!(last_inroot_mount.is_none_or(|m| m < switch), "{}", p);
        prop_assert!(switch < exec_index(&p), "{}", p);
        prop_assert_eq!(matches!(p.steps[switch].op, Op::Chroot { .. }), input.options.no_pivot);
    }

    #[test]
    fn failure_at_any_step_restores_host(input in arb_input(), k in any::<Index>()) {
        let p = plan(&input);
        let k = k.index(p.steps.len());
        let mut fake = input.fake().failing_at(k);
        let before = fake.state();
        let result = execute(&p, &mut fake);
        prop_assert!(result.is_err(), "step {} was to fail", k);
        let err = result.unwrap_err();
        prop_assert!(err.rollback.is_empty(), "rollback errors: {:?}", err.rollback);
        prop_assert!(fake.state() == before, "failing at step {} ({}) changed the host", k, p.step_text(&p.steps[k]));
    }

    #[test]
    fn the_fake_runs_exactly_the_plan(input in arb_input()) {
        let p = plan(&input);
        let mut fake = input.fake();
        let r = execute(&p, &mut fake);
        prop_assert!(r.is_ok(), "{:?}\n{}", r.err().map(|e| format!("{e}: {}", e.source)), p);
        prop_assert_eq!(fake.trace_text(&p), p.to_string());
    }

    #[test]
    fn json_round_trips(input in arb_input()) {
        let p = plan(&input);
        let json = p.to_json();
        let back: Plan = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &p);
        prop_assert_eq!(back.to_json(), json);
    }
}
