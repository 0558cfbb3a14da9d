//! Entry points for the fuzz targets in `fuzz/` and for the plain test that replays their
//! saved crash inputs (`fuzz/regressions/`). Each takes untrusted bytes and must never
//! panic; where an oracle exists it asserts it (a plan that parses must check and round-trip).

use std::collections::BTreeMap;

use crate::config::{CreateOptions, CreateRequest};
use crate::host::{CgroupLayout, HostFacts};
use crate::plan::{HostPath, Namespace, Plan};

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

fn facts(v2: bool) -> HostFacts {
    let cgroup = if v2 {
        CgroupLayout::V2 {
            mount: HostPath::new("/sys/fs/cgroup"),
            controllers: ["cpuset", "cpu", "io", "memory", "hugetlb", "pids"]
                .map(String::from)
                .to_vec(),
            subtree_control: Vec::new(),
        }
    } else {
        let hierarchies: BTreeMap<String, HostPath> = [
            "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory",
            "net_cls", "net_prio", "pids",
        ]
        .iter()
        .map(|c| {
            (
                (*c).to_owned(),
                HostPath::new(format!("/sys/fs/cgroup/{c}")),
            )
        })
        .collect();
        CgroupLayout::V1 {
            hierarchies,
            unified: None,
        }
    };
    HostFacts {
        cgroup,
        root_in_init_userns: true,
        euid: 0,
        egid: 0,
        namespaces: Namespace::ALL.to_vec(),
        clone_into_cgroup: v2,
        seccomp: true,
        hugepage_sizes: vec!["2MB".to_owned()],
    }
}

/// config.json bytes → validated config → a plan for a v1 and a v2 host. A plan that is
/// made must pass [`Plan::check`] and survive a JSON round trip.
pub fn config_to_plan(data: &[u8]) {
    let Some(json) = text(data) else { return };
    let bundle = HostPath::new("/b");
    let Ok(config) = crate::spec::parse_config(json, &bundle) else {
        return;
    };
    for v2 in [false, true] {
        let request = CreateRequest {
            id: "fuzz".to_owned(),
            bundle: bundle.clone(),
            state_root: HostPath::new("/run/berth"),
            config: config.clone(),
            options: CreateOptions {
                console_socket: Some(HostPath::new("/run/c.sock")),
                ..CreateOptions::default()
            },
            home: None,
        };
        if let Ok(plan) = crate::planner::create::plan_create(&request, &facts(v2)) {
            assert_eq!(plan.check(), Ok(()), "{plan}");
            let back: Plan = serde_json::from_str(&plan.to_json()).expect("plan JSON parses back");
            assert_eq!(back, plan);
        }
    }
}

/// Mount option bytes, comma separated.
pub fn mount_options(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let options: Vec<String> = t.split(',').map(str::to_owned).collect();
    let _ = crate::mountopt::parse_mount_options(&options);
}

/// `/proc/self/mountinfo` bytes.
pub fn mountinfo(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = crate::mountopt::parse_mountinfo(t);
}

/// `/etc/passwd` and `/etc/group` bytes (the same text read as both), then a lookup.
pub fn passwd_group(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let passwd = crate::user::parse_passwd(t).unwrap_or_default();
    let group = crate::user::parse_group(t).unwrap_or_default();
    if let Some(first) = t.lines().next() {
        let _ = crate::user::resolve_user(first, &passwd, &group);
    }
}
