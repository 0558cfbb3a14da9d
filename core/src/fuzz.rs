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

/// Image archive bytes: read as `index.json`, as `manifest.json`, as a manifest and as a
/// config; each line also as an image reference and as a layer entry. A loaded image's id
/// is its config's digest and its layers match its diff ids; a reference that parses
/// round-trips; an entry that is accepted has a normalised path.
pub fn image_manifest(data: &[u8]) {
    use crate::image::{
        ArchivePath, Digest, Entry, EntryKind, EntryRules, LayerChecker, MemorySource, Platform,
        Reference, TarEntry, load_images, parse_config, parse_docker_manifest, parse_index,
        parse_manifest,
    };
    use std::convert::Infallible;

    let file = ArchivePath::root();
    let _ = parse_index::<Infallible>(&file, data);
    let _ = parse_manifest::<Infallible>(&file, data);
    let _ = parse_config::<Infallible>(&file, data);
    let _ = parse_docker_manifest::<Infallible>(&file, data);
    for name in ["index.json", "manifest.json"] {
        let mut src = MemorySource::default();
        src.insert(name, data).expect("a constant valid path");
        // The data is also a blob, so an index may point at itself or at a config.
        src.insert(&format!("blobs/sha256/{}", Digest::of(data).hex()), data)
            .expect("a valid blob path");
        if let Ok(archive) = load_images(&mut src, &Platform::linux("amd64")) {
            for image in archive.images {
                assert_eq!(image.id, Digest::of(&image.config_bytes));
                assert_eq!(image.layers.len(), image.config.rootfs().diff_ids().len());
            }
        }
    }

    let Some(t) = text(data) else { return };
    let lines: Vec<&str> = t.lines().collect();
    let kinds = [
        EntryKind::File,
        EntryKind::Dir,
        EntryKind::Symlink,
        EntryKind::Hardlink,
        EntryKind::Char,
        EntryKind::Block,
        EntryKind::Fifo,
    ];
    for rootless in [false, true] {
        let mut checker = LayerChecker::new(EntryRules { rootless });
        for (i, line) in lines.iter().enumerate() {
            if let Ok(r) = Reference::parse(line) {
                assert_eq!(Reference::parse(&r.to_string()), Ok(r.clone()), "{line:?}");
            }
            let entry = TarEntry {
                path: (*line).to_owned(),
                kind: kinds[i % kinds.len()],
                mode: u32::try_from(line.len()).unwrap_or(u32::MAX),
                uid: u64::try_from(i).unwrap_or(u64::MAX),
                gid: 0,
                link: lines.get(i + 1).map(|l| (*l).to_owned()),
                size: 0,
                dev_major: u32::from(i % 3 == 1),
                dev_minor: 0,
            };
            let path = match checker.check(&entry) {
                Ok(Entry::Opaque { dir, .. }) => dir,
                Ok(
                    Entry::File { path, .. }
                    | Entry::Dir { path, .. }
                    | Entry::Symlink { path, .. }
                    | Entry::Hardlink { path, .. }
                    | Entry::Device { path, .. }
                    | Entry::Fifo { path, .. }
                    | Entry::Whiteout { path }
                    | Entry::Skip { path, .. },
                ) => path,
                Err(_) => continue,
            };
            if !path.is_root() {
                assert_eq!(ArchivePath::parse(path.as_str()).as_ref(), Ok(&path));
                assert!(!path.components().any(|c| c == ".." || c == "."), "{path}");
            }
            if rootless {
                assert!(!matches!(checker.check(&entry), Ok(Entry::Device { .. })));
            }
        }
    }
}
