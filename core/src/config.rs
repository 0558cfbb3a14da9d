//! A validated container configuration: what `config.json` says, in core's own types.
//!
//! Only [`crate::spec::parse_config`] builds a [`Config`] from user input, so holding one
//! means every path is a [`ContainerPath`], every capability and rlimit is known, every
//! mount option was understood, and the namespaces are consistent. Planners take a
//! `Config` and never see raw JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::{
    CapSets, ContainerPath, DeviceKind, HookSpec, HostPath, IdMapping, MountFlags, Namespace,
    Propagation, Rlimit, SeccompProfile,
};

/// A whole validated config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// `ociVersion`.
    pub oci_version: String,
    /// `root`.
    pub root: RootConfig,
    /// `hostname`.
    pub hostname: Option<String>,
    /// `domainname`.
    pub domainname: Option<String>,
    /// `mounts`, in order.
    pub mounts: Vec<MountConfig>,
    /// `process`; `None` only for configs that are never started (a `create` still needs it).
    pub process: Option<ProcessConfig>,
    /// `hooks`.
    pub hooks: HooksConfig,
    /// `annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `linux`.
    pub linux: LinuxConfig,
}

/// `root`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootConfig {
    /// The root filesystem on the host, made absolute against the bundle.
    pub path: HostPath,
    /// `root.readonly`.
    pub readonly: bool,
}

/// What a mount attaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    /// A bind mount (`type: bind`, or options `bind`/`rbind`) of a host path, made absolute
    /// against the bundle; `recursive` for `rbind`.
    Bind {
        /// The host path.
        source: HostPath,
        /// `rbind`.
        recursive: bool,
    },
    /// A filesystem instance.
    Fs {
        /// `type` (`proc`, `tmpfs`, `cgroup`, ...).
        fstype: String,
        /// `source` (`proc`, `tmpfs`, a device), `none` when absent.
        source: String,
    },
}

/// One entry of `mounts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountConfig {
    /// `destination`.
    pub destination: ContainerPath,
    /// What is mounted.
    pub kind: MountKind,
    /// Flags set by the options (`ro`, `nosuid`, ...), without `bind`/`rec`.
    pub flags: MountFlags,
    /// Propagation changes in order of the options (`rprivate` is `(Private, true)`).
    pub propagation: Vec<(Propagation, bool)>,
    /// Options passed on as filesystem data (`mode=755`, `size=65536k`, `newinstance`).
    pub data: Vec<String>,
}

/// `process.user`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserConfig {
    /// `uid`.
    pub uid: u32,
    /// `gid`.
    pub gid: u32,
    /// `umask`.
    pub umask: Option<u32>,
    /// `additionalGids`.
    pub additional_gids: Vec<u32>,
}

/// `process`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessConfig {
    /// `terminal`.
    pub terminal: bool,
    /// `consoleSize` as (height, width).
    pub console_size: Option<(u32, u32)>,
    /// `user`.
    pub user: UserConfig,
    /// `args` (at least one).
    pub args: Vec<String>,
    /// `env`, `K=V`.
    pub env: Vec<String>,
    /// `cwd`.
    pub cwd: ContainerPath,
    /// `capabilities`; `None` when the config has none (all sets empty).
    pub capabilities: Option<CapSets>,
    /// `rlimits` as (kind, soft, hard).
    pub rlimits: Vec<(Rlimit, u64, u64)>,
    /// `noNewPrivileges`.
    pub no_new_privileges: bool,
    /// `oomScoreAdj`.
    pub oom_score_adj: Option<i32>,
    /// `apparmorProfile` (recorded; applying it needs AppArmor on the host).
    pub apparmor_profile: Option<String>,
    /// `selinuxLabel` (recorded; applying it needs SELinux on the host).
    pub selinux_label: Option<String>,
}

/// `hooks`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HooksConfig {
    /// `prestart`.
    pub prestart: Vec<HookSpec>,
    /// `createRuntime`.
    pub create_runtime: Vec<HookSpec>,
    /// `createContainer`.
    pub create_container: Vec<HookSpec>,
    /// `startContainer`.
    pub start_container: Vec<HookSpec>,
    /// `poststart`.
    pub poststart: Vec<HookSpec>,
    /// `poststop`.
    pub poststop: Vec<HookSpec>,
}

/// One entry of `linux.namespaces`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceConfig {
    /// `type`.
    pub ns: Namespace,
    /// `path`: join this namespace instead of making a new one.
    pub path: Option<HostPath>,
}

/// One entry of `linux.devices`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// `path`.
    pub path: ContainerPath,
    /// `type`.
    pub kind: DeviceKind,
    /// `major`.
    pub major: u64,
    /// `minor`.
    pub minor: u64,
    /// `fileMode` (permission bits), 0o666 when absent.
    pub file_mode: u32,
    /// `uid`, 0 when absent.
    pub uid: u32,
    /// `gid`, 0 when absent.
    pub gid: u32,
}

/// `linux`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinuxConfig {
    /// `namespaces`, in config order, no kind twice.
    pub namespaces: Vec<NamespaceConfig>,
    /// `uidMappings`.
    pub uid_mappings: Vec<IdMapping>,
    /// `gidMappings`.
    pub gid_mappings: Vec<IdMapping>,
    /// `devices`.
    pub devices: Vec<DeviceConfig>,
    /// `cgroupsPath`, as given (`/berth/c1`, or `slice:prefix:name` for systemd).
    pub cgroups_path: Option<String>,
    /// `resources`, range-checked.
    pub resources: Option<oci_spec::runtime::LinuxResources>,
    /// `rootfsPropagation`.
    pub rootfs_propagation: Option<(Propagation, bool)>,
    /// `maskedPaths`.
    pub masked_paths: Vec<ContainerPath>,
    /// `readonlyPaths`.
    pub readonly_paths: Vec<ContainerPath>,
    /// `sysctl`.
    pub sysctl: BTreeMap<String, String>,
    /// `seccomp`.
    pub seccomp: Option<SeccompProfile>,
    /// `mountLabel`.
    pub mount_label: Option<String>,
}

impl Config {
    /// The namespace entry of kind `ns`, if the config has one.
    pub fn namespace(&self, ns: Namespace) -> Option<&NamespaceConfig> {
        self.linux.namespaces.iter().find(|n| n.ns == ns)
    }
}

/// Options of `create`/`run` that are not in config.json.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateOptions {
    /// `--no-pivot`: chroot instead of pivot_root.
    pub no_pivot: bool,
    /// `--pid-file`, absolute.
    pub pid_file: Option<HostPath>,
    /// `--console-socket`, absolute.
    pub console_socket: Option<HostPath>,
    /// `--preserve-fds`.
    pub preserve_fds: u32,
    /// `--no-new-keyring`.
    pub no_new_keyring: bool,
}

/// Everything `plan_create` needs besides the host facts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateRequest {
    /// The container id (validated: `[A-Za-z0-9_.-]+`, not `.` or `..`).
    pub id: String,
    /// The bundle directory, absolute.
    pub bundle: HostPath,
    /// The runtime's state root (`--root`, default `/run/berth`).
    pub state_root: HostPath,
    /// The validated config.
    pub config: Config,
    /// Command-line options.
    pub options: CreateOptions,
    /// `HOME` of the process's uid from the rootfs's `/etc/passwd` (looked up by the caller
    /// with [`crate::user::parse_passwd`]); used when `process.env` sets no `HOME`.
    pub home: Option<String>,
}
