//! Facts about the host that a plan depends on, probed once by the backend and passed in.
//!
//! Because they are an input, a golden test can plan the same config for a cgroup v1 host
//! and a cgroup v2 host without either being the machine it runs on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::HostPath;

/// How cgroups are mounted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "version")]
pub enum CgroupLayout {
    /// cgroup v1 (legacy or hybrid): one hierarchy per controller (or group of controllers).
    V1 {
        /// Controller name (`memory`, `cpu`, `cpuacct`, `name=systemd`) to the mount point
        /// of its hierarchy. Co-mounted controllers map to the same mount point.
        hierarchies: BTreeMap<String, HostPath>,
        /// The cgroup2 mount of a hybrid host, if any (no controllers on it).
        unified: Option<HostPath>,
    },
    /// cgroup v2: one unified hierarchy.
    V2 {
        /// Its mount point (`/sys/fs/cgroup`).
        mount: HostPath,
        /// Controllers the root offers (`cgroup.controllers`).
        controllers: Vec<String>,
        /// Controllers enabled for the root's children (`cgroup.subtree_control`).
        subtree_control: Vec<String>,
    },
    /// No cgroups available (planning any resource is an error).
    None,
}

/// Everything a planner may need to know about the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// How cgroups are mounted.
    pub cgroup: CgroupLayout,
    /// True when the runtime runs as root in the initial user namespace.
    pub root_in_init_userns: bool,
    /// Our effective uid and gid on the host (rootless maps to them).
    pub euid: u32,
    /// Our effective gid on the host.
    pub egid: u32,
    /// Namespace kinds the kernel offers (`/proc/self/ns/*`).
    pub namespaces: Vec<crate::plan::Namespace>,
    /// Whether the kernel has `clone3` with `CLONE_INTO_CGROUP`.
    pub clone_into_cgroup: bool,
    /// Whether the kernel offers seccomp filters.
    pub seccomp: bool,
    /// Hugepage sizes the kernel offers (`2MB`, `1GB`), for hugetlb limits.
    pub hugepage_sizes: Vec<String>,
}
