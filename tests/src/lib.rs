//! Shared fixtures for berth's golden, property and end-to-end tests.
//!
//! A case file (`cases/<planner>/<name>.json`) holds a request (id, bundle, options, the raw
//! `config.json`), a host preset, and what the fake host must hold besides the defaults
//! (bind sources, hook binaries, namespace files). Paths are fixed, never a tempdir, so
//! snapshots are stable.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_backend_fake::FakeHost;
use berth_core::config::{CreateOptions, CreateRequest};
use berth_core::host::{CgroupLayout, HostFacts};
use berth_core::plan::{HostPath, Namespace};
use serde::Deserialize;

/// What the fake host holds besides [`base_fake`]'s defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeSetup {
    /// Directories to make.
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Files to make, with their content.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Namespace files that `setns` by path may join.
    #[serde(default)]
    pub ns_files: Vec<String>,
}

/// One golden case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows.
    pub note: String,
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: String,
    /// `--root`.
    pub state_root: String,
    /// Host preset: `v1` (hybrid, as the CI machine) or `v2`.
    pub host: String,
    /// Command-line options.
    pub options: CreateOptions,
    /// The fake host's extra contents.
    pub fake: FakeSetup,
    /// `HOME` from the rootfs's passwd.
    #[serde(default)]
    pub home: Option<String>,
    /// The raw config.json.
    pub config: serde_json::Value,
}

/// Where the case files live.
pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases")
}

impl Case {
    /// Reads a case file.
    pub fn load(path: &Path) -> Case {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
    }

    /// The host facts of the case's preset.
    pub fn host_facts(&self) -> HostFacts {
        host_preset(&self.host)
    }

    /// Parses the config and builds the request, as the CLI would.
    pub fn request(&self) -> CreateRequest {
        let bundle = HostPath::new(self.bundle.clone());
        let text = self.config.to_string();
        let config = berth_core::spec::parse_config(&text, &bundle)
            .unwrap_or_else(|e| panic!("case config is invalid: {e}"));
        CreateRequest {
            id: self.id.clone(),
            bundle,
            state_root: HostPath::new(self.state_root.clone()),
            config,
            options: self.options.clone(),
            home: self.home.clone(),
        }
    }

    /// A fake host laid out for this case.
    pub fn fake(&self) -> FakeHost {
        let mut fake = base_fake(&self.host_facts(), &self.bundle);
        for d in &self.fake.dirs {
            fake = fake.with_dir(d);
        }
        for (f, content) in &self.fake.files {
            fake = fake.with_file(f, content);
        }
        for n in &self.fake.ns_files {
            fake = fake.with_netns_file(n);
        }
        fake
    }
}

/// A fake host with a small busybox-like rootfs at `BUNDLE/rootfs` and `/run/berth`.
pub fn base_fake(facts: &HostFacts, bundle: &str) -> FakeHost {
    let root = format!("{bundle}/rootfs");
    let mut fake = FakeHost::new(facts)
        .with_dir("/run/berth")
        .with_dir(&format!("{root}/bin"))
        .with_dir(&format!("{root}/etc"))
        .with_dir(&format!("{root}/tmp"))
        .with_dir(&format!("{root}/home/app"))
        .with_file(&format!("{root}/bin/busybox"), "ELF")
        .with_file(
            &format!("{root}/etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        );
    for tool in ["sh", "echo", "cat"] {
        fake = fake.with_symlink(&format!("{root}/bin/{tool}"), "busybox");
    }
    fake
}

/// Host facts by preset name: `v1` is a cgroup v1 hybrid host like the CI machine, `v2` a
/// unified host with every controller offered and none yet enabled below the root.
pub fn host_preset(name: &str) -> HostFacts {
    let cgroup = match name {
        "v1" => {
            let mut h = BTreeMap::new();
            for (ctrl, dir) in [
                ("blkio", "blkio"),
                ("cpu", "cpu"),
                ("cpuacct", "cpuacct"),
                ("cpuset", "cpuset"),
                ("devices", "devices"),
                ("freezer", "freezer"),
                ("hugetlb", "hugetlb"),
                ("memory", "memory"),
                ("name=systemd", "systemd"),
                ("net_cls", "net_cls,net_prio"),
                ("net_prio", "net_cls,net_prio"),
                ("pids", "pids"),
            ] {
                h.insert(
                    ctrl.to_owned(),
                    HostPath::new(format!("/sys/fs/cgroup/{dir}")),
                );
            }
            CgroupLayout::V1 {
                hierarchies: h,
                unified: Some(HostPath::new("/sys/fs/cgroup/unified")),
            }
        }
        "v2" => CgroupLayout::V2 {
            mount: HostPath::new("/sys/fs/cgroup"),
            controllers: [
                "cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc",
            ]
            .map(String::from)
            .to_vec(),
            subtree_control: ["cpu", "memory", "pids"].map(String::from).to_vec(),
        },
        other => panic!("unknown host preset {other:?}"),
    };
    HostFacts {
        cgroup,
        root_in_init_userns: true,
        euid: 0,
        egid: 0,
        namespaces: Namespace::ALL.to_vec(),
        clone_into_cgroup: name == "v2",
        seccomp: true,
        hugepage_sizes: vec!["2MB".to_owned(), "1GB".to_owned()],
    }
}
