//! Host facts, probed once from `/proc` and `/sys`: the planner's view of this machine.
//!
//! Invariant: probing only reads. It creates, writes and mounts nothing, changes no process
//! attribute, and needs no privilege, so `berth create --dry-run` can call it as `nobody`.
//! The functions that turn file text into facts are pure and private to this module, so
//! the tests below cover every shape of host (v1, hybrid, v2, none) on any machine.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;

use berth_core::host::{CgroupLayout, HostFacts};
use berth_core::plan::{HostPath, Namespace};
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

/// The mountinfo of the probing process.
const MOUNTINFO: &str = "/proc/self/mountinfo";
/// Where the kernel lists our namespaces.
const NS_DIR: &str = "/proc/self/ns";
/// Our uid map: `0 0 4294967295` in the initial user namespace.
const UID_MAP: &str = "/proc/self/uid_map";
/// Has a `Seccomp:` line when the kernel was built with seccomp.
const STATUS: &str = "/proc/self/status";
/// One `hugepages-<size>kB` directory per hugepage size.
const HUGEPAGES_DIR: &str = "/sys/kernel/mm/hugepages";
/// Where a cgroup v2 host mounts its unified hierarchy.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Files read inside the rootfs are cut off here: `/etc/passwd` is far smaller.
const ROOTFS_FILE_LIMIT: u64 = 16 << 20;

/// A host fact that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A file under `/proc` or `/sys` could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `/proc/self/mountinfo` did not parse.
    #[error("parsing {MOUNTINFO}")]
    Mountinfo {
        /// Why.
        #[source]
        source: berth_core::mountopt::MountInfoError,
    },
    /// A file inside a rootfs could not be opened.
    #[error("opening {path} inside {rootfs}")]
    RootfsOpen {
        /// The rootfs on the host.
        rootfs: String,
        /// The path inside it.
        path: String,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// A path inside a rootfs is not a regular file.
    #[error("{path} inside {rootfs} is not a regular file")]
    RootfsNotFile {
        /// The rootfs on the host.
        rootfs: String,
        /// The path inside it.
        path: String,
    },
}

fn read(path: &str) -> Result<String, ProbeError> {
    fs::read_to_string(path).map_err(|source| ProbeError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Like [`read`], but a missing file is `None` (an old kernel without the feature).
fn read_optional(path: &str) -> Result<Option<String>, ProbeError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ProbeError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Names in a directory; a missing directory has none.
fn dir_names(path: &str) -> Result<Vec<String>, ProbeError> {
    let err = |source| ProbeError::Read {
        path: path.to_owned(),
        source,
    };
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        names.push(
            entry
                .map_err(err)?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    Ok(names)
}

/// Our effective uid and gid (what `berth spec --rootless` maps the container's root to).
pub fn ids() -> (u32, u32) {
    (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

/// Probes this host: cgroup layout, user namespace, namespaces, kernel features.
pub fn host_facts() -> Result<HostFacts, ProbeError> {
    let mountinfo = read(MOUNTINFO)?;
    let mounts = berth_core::mountopt::parse_mountinfo(&mountinfo)
        .map_err(|source| ProbeError::Mountinfo { source })?;
    let found = find_cgroup_mounts(mounts.iter().map(|m| CgroupMountLine {
        fstype: &m.fstype,
        mount_point: &m.mount_point,
        super_options: &m.super_options,
    }));
    let cgroup = match found.layout_kind() {
        LayoutKind::V1 => CgroupLayout::V1 {
            hierarchies: found.v1,
            unified: found.v2.into_iter().next().map(HostPath::new),
        },
        LayoutKind::V2(mount) => {
            let controllers = read(&format!("{mount}/cgroup.controllers"))?;
            let subtree = read(&format!("{mount}/cgroup.subtree_control"))?;
            CgroupLayout::V2 {
                mount: HostPath::new(mount),
                controllers: words(&controllers),
                subtree_control: words(&subtree),
            }
        }
        LayoutKind::None => CgroupLayout::None,
    };
    let (euid, egid) = ids();
    let uid_map = read_optional(UID_MAP)?;
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let clone_into_cgroup = matches!(cgroup, CgroupLayout::V2 { .. })
        && kernel_version(&release).is_some_and(|v| v >= (5, 7));
    let namespaces = namespaces_from(&dir_names(NS_DIR)?);
    let seccomp = has_seccomp(&read(STATUS)?);
    let hugepage_sizes = hugepage_sizes(&dir_names(HUGEPAGES_DIR)?);
    Ok(HostFacts {
        cgroup,
        root_in_init_userns: root_in_init_userns(euid, uid_map.as_deref()),
        euid,
        egid,
        namespaces,
        clone_into_cgroup,
        seccomp,
        hugepage_sizes,
    })
}

/// Reads a regular file inside a rootfs, resolving `path` as if `rootfs` were `/`.
///
/// Symlinks in the rootfs (`etc -> /`) cannot lead out of it (`openat2` with
/// `RESOLVE_IN_ROOT`), fifos do not block, and at most 16 MiB are read. A missing file is
/// `Ok(None)`.
pub fn read_rootfs_file(rootfs: &Path, path: &str) -> Result<Option<String>, ProbeError> {
    let open_err = |source| ProbeError::RootfsOpen {
        rootfs: rootfs.display().to_string(),
        path: path.to_owned(),
        source,
    };
    let read_err = |source| ProbeError::Read {
        path: format!("{}/{}", rootfs.display(), path.trim_start_matches('/')),
        source,
    };
    let root = match fs::File::open(rootfs) {
        Ok(root) => root,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(root.as_fd(), path, how) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(open_err(e)),
    };
    let file = fs::File::from(fd);
    if !file.metadata().map_err(read_err)?.is_file() {
        return Err(ProbeError::RootfsNotFile {
            rootfs: rootfs.display().to_string(),
            path: path.to_owned(),
        });
    }
    let mut text = String::new();
    file.take(ROOTFS_FILE_LIMIT)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    Ok(Some(text))
}

/// The fields of one mountinfo line that cgroup detection looks at.
#[derive(Clone, Copy, Debug)]
struct CgroupMountLine<'a> {
    /// Filesystem type (`cgroup`, `cgroup2`, ...).
    fstype: &'a str,
    /// Where it is mounted.
    mount_point: &'a str,
    /// Per-superblock options (`rw`, `cpu`, `cpuacct`).
    super_options: &'a [String],
}

/// The cgroup mounts of a host, before deciding its layout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct CgroupMounts {
    /// v1 controller (or `name=systemd`) to the first mount point of its hierarchy.
    v1: BTreeMap<String, HostPath>,
    /// cgroup2 mount points, in mountinfo order.
    v2: Vec<String>,
}

/// Which layout a set of cgroup mounts makes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LayoutKind {
    /// Some v1 hierarchy exists (legacy or hybrid).
    V1,
    /// Only cgroup2, mounted here.
    V2(String),
    /// No cgroup mount at all.
    None,
}

impl CgroupMounts {
    fn layout_kind(&self) -> LayoutKind {
        if !self.v1.is_empty() {
            return LayoutKind::V1;
        }
        // Prefer the standard mount point; else the first cgroup2 mount there is.
        match self
            .v2
            .iter()
            .find(|m| *m == CGROUP_ROOT)
            .or(self.v2.first())
        {
            Some(mount) => LayoutKind::V2(mount.clone()),
            None => LayoutKind::None,
        }
    }
}

/// v1 controllers the kernel knows, as they appear among a `cgroup` mount's super options.
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// The controllers (and `name=` hierarchy names) among a v1 mount's super options;
/// the other options (`rw`, `xattr`, `release_agent=...`, `clone_children`) are not.
fn v1_controllers(super_options: &[String]) -> Vec<String> {
    super_options
        .iter()
        .filter(|o| V1_CONTROLLERS.contains(&o.as_str()) || o.starts_with("name="))
        .cloned()
        .collect()
}

/// Collects the cgroup mounts among mountinfo lines.
fn find_cgroup_mounts<'a>(lines: impl IntoIterator<Item = CgroupMountLine<'a>>) -> CgroupMounts {
    let mut found = CgroupMounts::default();
    for line in lines {
        match line.fstype {
            "cgroup" => {
                for controller in v1_controllers(line.super_options) {
                    // A hierarchy mounted twice (a bind mount): the first mount wins.
                    found
                        .v1
                        .entry(controller)
                        .or_insert_with(|| HostPath::new(line.mount_point));
                }
            }
            "cgroup2" if !found.v2.iter().any(|m| m == line.mount_point) => {
                found.v2.push(line.mount_point.to_owned());
            }
            _ => {}
        }
    }
    found
}

/// `cgroup.controllers` or `cgroup.subtree_control` text to a list.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// True for euid 0 whose uid map covers all ids one to one: the initial user namespace.
fn root_in_init_userns(euid: u32, uid_map: Option<&str>) -> bool {
    if euid != 0 {
        return false;
    }
    match uid_map {
        // A kernel without user namespaces has no uid_map: there is only the initial one.
        None => true,
        Some(map) => {
            let lines: Vec<Vec<&str>> = map
                .lines()
                .map(|l| l.split_whitespace().collect())
                .filter(|l: &Vec<&str>| !l.is_empty())
                .collect();
            lines == [vec!["0", "0", "4294967295"]]
        }
    }
}

/// `6.18.44-fc` to `(6, 18)`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Namespace kinds among `/proc/self/ns` entry names, in [`Namespace::ALL`] order.
fn namespaces_from(entries: &[String]) -> Vec<Namespace> {
    Namespace::ALL
        .into_iter()
        .filter(|ns| entries.iter().any(|e| e == ns.proc_name()))
        .collect()
}

/// True when `/proc/self/status` has a `Seccomp:` line (the kernel has seccomp).
fn has_seccomp(status: &str) -> bool {
    status.lines().any(|l| l.starts_with("Seccomp:"))
}

/// `hugepages-2048kB` to its size in kB.
fn hugepage_kb(dir_name: &str) -> Option<u64> {
    dir_name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()
}

/// A size in kB as the hugetlb controller names it: `2MB`, `1GB`, `64KB`.
fn hugepage_name(kb: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    let mut unit = 0;
    let mut size = kb;
    while size >= 1024 && size.is_multiple_of(1024) && unit + 1 < UNITS.len() {
        size /= 1024;
        unit += 1;
    }
    format!("{size}{}", UNITS[unit])
}

/// Hugepage sizes among `/sys/kernel/mm/hugepages` entry names, smallest first.
fn hugepage_sizes(entries: &[String]) -> Vec<String> {
    let mut kbs: Vec<u64> = entries.iter().filter_map(|e| hugepage_kb(e)).collect();
    kbs.sort_unstable();
    kbs.dedup();
    kbs.into_iter().map(hugepage_name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Super options as mountinfo's parser gives them.
    fn opts(text: &str) -> Vec<String> {
        text.split(',').map(str::to_owned).collect()
    }

    /// Cgroup detection over (fstype, mount point, super options) triples.
    fn find(lines: &[(&str, &str, &str)]) -> CgroupMounts {
        let options: Vec<Vec<String>> = lines.iter().map(|l| opts(l.2)).collect();
        find_cgroup_mounts(lines.iter().zip(&options).map(|(l, o)| CgroupMountLine {
            fstype: l.0,
            mount_point: l.1,
            super_options: o,
        }))
    }

    #[test]
    fn mountinfo_text_to_layout() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let mounts = berth_core::mountopt::parse_mountinfo(text).unwrap();
        let found = find_cgroup_mounts(mounts.iter().map(|m| CgroupMountLine {
            fstype: &m.fstype,
            mount_point: &m.mount_point,
            super_options: &m.super_options,
        }));
        assert_eq!(found.layout_kind(), LayoutKind::V1);
        assert_eq!(found.v1["cpu"], HostPath::new("/sys/fs/cgroup/cpu"));
        assert_eq!(
            found.v1["name=systemd"],
            HostPath::new("/sys/fs/cgroup/systemd")
        );
        assert_eq!(found.v2, ["/sys/fs/cgroup/unified"]);
    }

    #[test]
    fn v1_controllers_skip_other_options() {
        assert_eq!(v1_controllers(&opts("rw,cpu,cpuacct")), ["cpu", "cpuacct"]);
        assert_eq!(
            v1_controllers(&opts("rw,xattr,release_agent=/x,name=systemd")),
            ["name=systemd"]
        );
        assert_eq!(
            v1_controllers(&opts("rw,clone_children,cpuset")),
            ["cpuset"]
        );
        assert!(v1_controllers(&opts("rw")).is_empty());
    }

    #[test]
    fn hybrid_host_is_v1_with_unified() {
        let found = find(&[
            ("tmpfs", "/sys/fs/cgroup", "rw,mode=755"),
            ("cgroup", "/sys/fs/cgroup/cpu,cpuacct", "rw,cpu,cpuacct"),
            ("cgroup", "/sys/fs/cgroup/memory", "rw,memory"),
            ("cgroup", "/sys/fs/cgroup/systemd", "rw,xattr,name=systemd"),
            ("cgroup2", "/sys/fs/cgroup/unified", "rw,nsdelegate"),
        ]);
        assert_eq!(found.layout_kind(), LayoutKind::V1);
        let keys: Vec<&str> = found.v1.keys().map(String::as_str).collect();
        assert_eq!(keys, ["cpu", "cpuacct", "memory", "name=systemd"]);
        assert_eq!(found.v1["cpu"], HostPath::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(found.v1["cpu"], found.v1["cpuacct"]);
        assert_eq!(found.v2, ["/sys/fs/cgroup/unified"]);
    }

    #[test]
    fn first_mount_of_a_hierarchy_wins() {
        let found = find(&[
            ("cgroup", "/sys/fs/cgroup/memory", "rw,memory"),
            ("cgroup", "/var/lib/x/memory", "rw,memory"),
        ]);
        assert_eq!(found.v1["memory"], HostPath::new("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn unified_host_is_v2_at_sys_fs_cgroup() {
        let found = find(&[
            ("cgroup2", "/other", "rw"),
            (
                "cgroup2",
                "/sys/fs/cgroup",
                "rw,nsdelegate,memory_recursiveprot",
            ),
        ]);
        assert_eq!(found.layout_kind(), LayoutKind::V2("/sys/fs/cgroup".into()));
        let found = find(&[("cgroup2", "/elsewhere", "rw")]);
        assert_eq!(found.layout_kind(), LayoutKind::V2("/elsewhere".into()));
    }

    #[test]
    fn no_cgroup_mount_is_none() {
        let found = find(&[("proc", "/proc", "rw"), ("ext4", "/", "rw")]);
        assert_eq!(found.layout_kind(), LayoutKind::None);
    }

    #[test]
    fn controller_files_split_on_whitespace() {
        assert_eq!(
            words("cpuset cpu io memory pids\n"),
            ["cpuset", "cpu", "io", "memory", "pids"]
        );
        assert!(words("\n").is_empty());
    }

    #[test]
    fn init_userns_needs_root_and_the_identity_map() {
        let full = "         0          0 4294967295\n";
        assert!(root_in_init_userns(0, Some(full)));
        assert!(!root_in_init_userns(1000, Some(full)));
        assert!(!root_in_init_userns(0, Some("0 1000 1\n")));
        assert!(!root_in_init_userns(0, Some("0 0 65536\n")));
        assert!(!root_in_init_userns(0, Some("0 0 4294967295\n1 1 1\n")));
        assert!(root_in_init_userns(0, None));
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(kernel_version("5.7.0"), Some((5, 7)));
        assert_eq!(kernel_version("4.19-rc1"), Some((4, 19)));
        assert_eq!(kernel_version("5"), None);
        assert_eq!(kernel_version("garbage"), None);
        assert!(kernel_version("5.6.19").is_some_and(|v| v < (5, 7)));
        assert!(kernel_version("10.0.0").is_some_and(|v| v >= (5, 7)));
    }

    #[test]
    fn namespaces_from_proc_entries() {
        let entries: Vec<String> = [
            "cgroup",
            "ipc",
            "mnt",
            "net",
            "pid",
            "pid_for_children",
            "time_for_children",
            "user",
            "uts",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            namespaces_from(&entries),
            [
                Namespace::User,
                Namespace::Pid,
                Namespace::Mount,
                Namespace::Network,
                Namespace::Uts,
                Namespace::Ipc,
                Namespace::Cgroup,
            ]
        );
    }

    #[test]
    fn seccomp_line() {
        assert!(has_seccomp(
            "Name:\tcat\nSeccomp:\t0\nSeccomp_filters:\t0\n"
        ));
        assert!(!has_seccomp("Name:\tcat\nNoNewPrivs:\t0\n"));
    }

    #[test]
    fn hugepage_names() {
        let entries: Vec<String> = [
            "hugepages-1048576kB",
            "hugepages-2048kB",
            "other",
            "hugepages-64kB",
        ]
        .map(String::from)
        .into();
        assert_eq!(hugepage_sizes(&entries), ["64KB", "2MB", "1GB"]);
        assert_eq!(hugepage_name(32 * 1024), "32MB");
        assert_eq!(hugepage_name(16 * 1024 * 1024), "16GB");
        assert_eq!(hugepage_name(1536), "1536KB");
        assert_eq!(hugepage_kb("hugepages-xkB"), None);
    }

    #[test]
    fn rootfs_file_stays_inside_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::write(dir.path().join("secret"), "host\n").unwrap();
        // An absolute symlink resolves against the rootfs, not the host.
        std::os::unix::fs::symlink("/../../secret", root.join("escape")).unwrap();
        assert_eq!(
            read_rootfs_file(&root, "/etc/passwd").unwrap().as_deref(),
            Some("root:x:0:0::/root:/bin/sh\n")
        );
        assert_eq!(read_rootfs_file(&root, "/escape").unwrap(), None);
        assert_eq!(read_rootfs_file(&root, "/etc/group").unwrap(), None);
        assert!(matches!(
            read_rootfs_file(&root, "/etc"),
            Err(ProbeError::RootfsNotFile { .. })
        ));
        assert_eq!(
            read_rootfs_file(&dir.path().join("none"), "/etc/passwd").unwrap(),
            None
        );
    }

    #[test]
    fn probing_this_host_works() {
        // Whatever this machine is, probing must succeed and be self-consistent.
        let facts = host_facts().unwrap();
        assert_eq!((facts.euid, facts.egid), ids());
        assert!(facts.namespaces.contains(&Namespace::Mount));
        if facts.clone_into_cgroup {
            assert!(matches!(facts.cgroup, CgroupLayout::V2 { .. }));
        }
    }
}
