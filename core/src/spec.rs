//! OCI `config.json` in, a validated [`crate::config::Config`] out.
//!
//! The text is untrusted: [`parse_config`] never panics, and every problem is a
//! [`SpecError`] naming the JSON path of the offending value (`linux.namespaces[2].type`)
//! and what is wrong with it, in one line.
//!
//! Parsing goes in three steps: the text becomes a `serde_json::Value` (a syntax error is
//! reported at path `.` with its line and column); `process.capabilities` is taken out and
//! read by hand (so an unknown capability is reported with its index, which oci-spec's
//! `HashSet` would lose); the rest is deserialized into `oci_spec::runtime::Spec` through
//! `serde_path_to_error`, whose messages are rewritten to be short. Then the typed spec is
//! validated and converted, each check naming its path.
//!
//! Bounds on `linux.resources` (a value outside them is an error, never clamped):
//! - `memory.limit`, `reservation`, `swap`, `kernel`, `kernelTCP`: `-1` (unlimited) or at
//!   least 4096 bytes; `swap` (memory+swap) not below `limit`; `swappiness` at most 100;
//! - `cpu.shares` 2..=262144; `cpu.quota` `-1` or at least 1000 µs; `cpu.period`
//!   1000..=1000000 µs; `cpu.realtimeRuntime` at least -1; `cpu.idle` 0 or 1;
//!   `cpu.cpus` and `cpu.mems` lists such as `0-3,7` (or empty);
//! - `pids.limit` `-1` or positive;
//! - `blockIO` weights (and leaf weights, also per device) 10..=1000; device numbers
//!   not negative;
//! - `hugepageLimits`: page size `<N>KB|MB|GB`, limit not negative;
//! - `devices` (cgroup rules): type `a`, `b` or `c`, access letters of `rwm`, numbers
//!   `-1` (any) or more;
//! - `unified`: keys are plain cgroup file names (no `/`, not starting with `.`).

use std::collections::BTreeMap;

use oci_spec::runtime::{
    Hook, LinuxBlockIo, LinuxCpu, LinuxDeviceType, LinuxIdMapping, LinuxMemory, LinuxNamespaceType,
    LinuxResources, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator, Spec,
};
use serde::Serialize;
use serde_json::Value;

use crate::config::{
    Config, DeviceConfig, HooksConfig, LinuxConfig, MountConfig, MountKind, NamespaceConfig,
    ProcessConfig, RootConfig, UserConfig,
};
use crate::mountopt::{parse_mount_options, parse_propagation};
use crate::plan::{
    CapSet, CapSets, Capability, ContainerPath, DeviceKind, HookSpec, HostPath, IdMapping,
    Namespace, Rlimit, SeccompAction, SeccompArg, SeccompCmp, SeccompProfile, SeccompRule,
};

/// A config that cannot be used, with the JSON path of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct SpecError {
    /// JSON path of the offending value (`linux.namespaces[2].type`), `.` for the whole.
    pub path: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Builds a [`SpecError`].
fn err(path: impl Into<String>, problem: impl Into<String>) -> SpecError {
    SpecError {
        path: path.into(),
        problem: problem.into(),
    }
}

/// The most id-map lines the kernel accepts (since Linux 4.15).
const MAX_ID_MAPPINGS: usize = 340;

/// The longest hostname or domain name the kernel takes (`__NEW_UTS_LEN`).
const MAX_UTS_NAME: usize = 64;

/// Parses and validates `config.json` text; `bundle` makes relative paths absolute.
pub fn parse_config(json: &str, bundle: &HostPath) -> Result<Config, SpecError> {
    let mut value: Value =
        serde_json::from_str(json).map_err(|e| err(".", format!("invalid JSON: {e}")))?;
    let capabilities = value
        .get_mut("process")
        .and_then(Value::as_object_mut)
        .and_then(|p| p.remove("capabilities"));
    if !value.is_object() {
        return Err(err(
            ".",
            format!("expected an object, found {}", describe(&value)),
        ));
    }
    let spec: Spec = serde_path_to_error::deserialize(value).map_err(from_serde)?;
    Checker { bundle }.config(&spec, capabilities)
}

/// Turns a deserialization error into a short [`SpecError`] at its JSON path.
fn from_serde(e: serde_path_to_error::Error<serde_json::Error>) -> SpecError {
    let path = e.path().to_string();
    let shape: Vec<String> = e
        .path()
        .iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Seq { .. } => None,
            other => Some(other.to_string()),
        })
        .collect();
    let message = e.into_inner().to_string();
    rewrite(path, &shape.join("."), &message)
}

/// Rewrites one serde message; `shape` is the path without indices (`linux.namespaces.type`).
fn rewrite(path: String, shape: &str, message: &str) -> SpecError {
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        let path = if path == "." {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return err(path, "missing");
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some(end) = rest.rfind("`, expected")
    {
        let what = match shape {
            "linux.namespaces.type" => "namespace",
            "process.rlimits.type" => "rlimit",
            "linux.devices.type" | "linux.resources.devices.type" => "device type",
            "linux.seccomp.defaultAction" | "linux.seccomp.syscalls.action" => "seccomp action",
            "linux.seccomp.architectures" => "seccomp architecture",
            "linux.seccomp.flags" => "seccomp flag",
            "linux.seccomp.syscalls.args.op" => "seccomp operator",
            _ => "value",
        };
        return err(path, format!("unknown {what} {:?}", &rest[..end]));
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((found, expected)) = message
            .strip_prefix(prefix)
            .and_then(|r| r.rsplit_once(", expected "))
        {
            return err(
                path,
                format!(
                    "expected {}, found {}",
                    expected_text(expected),
                    found_text(found)
                ),
            );
        }
    }
    err(path, message)
}

/// serde's name of an expected type, in JSON words.
fn expected_text(expected: &str) -> String {
    let text = match expected {
        "u8" => "an integer from 0 to 255",
        "u16" => "an integer from 0 to 65535",
        "u32" => "an integer from 0 to 4294967295",
        "u64" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer",
        "a sequence" => "an array",
        "a map" => "an object",
        "string or map" => "a string",
        "path string" => "a string",
        other if other.starts_with("struct ") => "an object",
        other => other,
    };
    text.to_owned()
}

/// serde's description of an unexpected value, in JSON words.
fn found_text(found: &str) -> String {
    match found {
        "map" => "an object".to_owned(),
        "sequence" => "an array".to_owned(),
        "unit value" => "null".to_owned(),
        other => {
            for prefix in ["integer ", "floating point ", "boolean "] {
                if let Some(v) = other
                    .strip_prefix(prefix)
                    .and_then(|v| v.strip_prefix('`'))
                    .and_then(|v| v.strip_suffix('`'))
                {
                    return v.to_owned();
                }
            }
            other.to_owned()
        }
    }
}

/// A JSON value described for an error message.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// The JSON name of a unit enum value (`SCMP_ARCH_X86_64`), as serde writes it.
fn enum_name<T: Serialize + std::fmt::Debug>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => format!("{v:?}"),
    }
}

/// The OCI name of a namespace kind (`network`, `mount`).
fn oci_namespace_name(ns: Namespace) -> &'static str {
    match ns {
        Namespace::User => "user",
        Namespace::Pid => "pid",
        Namespace::Mount => "mount",
        Namespace::Network => "network",
        Namespace::Uts => "uts",
        Namespace::Ipc => "ipc",
        Namespace::Cgroup => "cgroup",
        Namespace::Time => "time",
    }
}

/// oci-spec's namespace kind in core's terms.
fn namespace_of(t: LinuxNamespaceType) -> Namespace {
    match t {
        LinuxNamespaceType::Mount => Namespace::Mount,
        LinuxNamespaceType::Cgroup => Namespace::Cgroup,
        LinuxNamespaceType::Uts => Namespace::Uts,
        LinuxNamespaceType::Ipc => Namespace::Ipc,
        LinuxNamespaceType::User => Namespace::User,
        LinuxNamespaceType::Pid => Namespace::Pid,
        LinuxNamespaceType::Network => Namespace::Network,
        LinuxNamespaceType::Time => Namespace::Time,
    }
}

/// True for `MAJOR.MINOR.PATCH[-pre][+build]` with major 1 and minor 0, 1 or 2.
fn supported_version(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    parts.len() == 3
        && parts.iter().all(|p| number(p))
        && parts[0] == "1"
        && matches!(parts[1], "0" | "1" | "2")
}

/// A path inside the container, or the error at `path`.
fn container_path(text: &str, path: &str) -> Result<ContainerPath, SpecError> {
    ContainerPath::parse(text).map_err(|e| err(path, e.to_string()))
}

/// Refuses a NUL byte, which no syscall path argument can carry.
fn no_nul(text: &str, path: &str) -> Result<(), SpecError> {
    if text.contains('\0') {
        return Err(err(path, format!("path {text:?} contains a NUL byte")));
    }
    Ok(())
}

/// An absolute host path, or the error at `path`.
fn absolute_host_path(text: &str, path: &str) -> Result<HostPath, SpecError> {
    no_nul(text, path)?;
    if !text.starts_with('/') {
        return Err(err(path, format!("path {text:?} is not absolute")));
    }
    Ok(HostPath::new(text))
}

/// Checks one `KEY=VALUE` environment entry.
fn env_entry(entry: &str, path: &str) -> Result<(), SpecError> {
    if entry.contains('\0') {
        return Err(err(path, "contains a NUL byte"));
    }
    match entry.split_once('=') {
        Some((key, _)) if !key.is_empty() => Ok(()),
        _ => Err(err(path, format!("{entry:?} is not of the form KEY=VALUE"))),
    }
}

/// Checks a cpuset list such as `0-3,7` (an empty list is allowed).
fn cpuset_list(text: &str) -> bool {
    if text.is_empty() {
        return true;
    }
    text.split(',').all(|part| {
        let number = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                s.parse::<u32>().ok()
            }
        };
        match part.split_once('-') {
            Some((a, b)) => matches!((number(a), number(b)), (Some(a), Some(b)) if a <= b),
            None => number(part).is_some(),
        }
    })
}

/// Sysctls the ipc namespace owns, besides `fs.mqueue.*` (runc's list).
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// A sysctl name: `a.b.c` or `a/b/c`, without empty, `.` or `..` components.
fn sysctl_name_ok(key: &str) -> bool {
    !key.is_empty()
        && !key.contains(|c: char| c == '\0' || c.is_whitespace())
        && key.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part.split('.').all(|p| !p.is_empty())
        })
}

/// Validation and conversion of a deserialized spec.
struct Checker<'a> {
    /// The bundle directory, for relative paths.
    bundle: &'a HostPath,
}

impl Checker<'_> {
    /// A host path from the config: absolute as it is, relative against the bundle.
    fn bundle_path(&self, text: &str, path: &str) -> Result<HostPath, SpecError> {
        no_nul(text, path)?;
        if text.starts_with('/') {
            Ok(HostPath::new(text))
        } else {
            Ok(self.bundle.join(text))
        }
    }

    /// The whole config.
    fn config(&self, spec: &Spec, capabilities: Option<Value>) -> Result<Config, SpecError> {
        let version = spec.version();
        if version.is_empty() {
            return Err(err("ociVersion", "missing"));
        }
        if !supported_version(version) {
            return Err(err(
                "ociVersion",
                format!("unsupported version {version:?}"),
            ));
        }
        let root = self.root(spec)?;
        let oci_linux = spec.linux().as_ref();
        let namespaces = self.namespaces(oci_linux)?;
        let has = |ns: Namespace| present(&namespaces, ns);
        let (uid_mappings, gid_mappings) = id_mappings(oci_linux, &namespaces)?;

        let process = match spec.process() {
            Some(p) => Some(process(p, capabilities, &uid_mappings, &gid_mappings)?),
            None => None,
        };
        let hostname = uts_name(spec.hostname().as_deref(), "hostname", has(Namespace::Uts))?;
        let domainname = uts_name(
            spec.domainname().as_deref(),
            "domainname",
            has(Namespace::Uts),
        )?;
        let mounts = self.mounts(spec)?;
        let hooks = hooks(spec)?;
        let has_mount_ns = has(Namespace::Mount);
        let annotations: BTreeMap<String, String> = spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();

        let mut linux = LinuxConfig {
            namespaces,
            uid_mappings,
            gid_mappings,
            ..LinuxConfig::default()
        };
        if let Some(l) = oci_linux {
            self.linux_rest(
                l,
                &mut linux,
                hostname.is_some(),
                domainname.is_some(),
                has_mount_ns,
            )?;
        }
        Ok(Config {
            oci_version: version.clone(),
            root,
            hostname,
            domainname,
            mounts,
            process,
            hooks,
            annotations,
            linux,
        })
    }

    /// The parts of `linux` not needed by the other sections.
    fn linux_rest(
        &self,
        l: &oci_spec::runtime::Linux,
        linux: &mut LinuxConfig,
        hostname_set: bool,
        domainname_set: bool,
        has_mount_ns: bool,
    ) -> Result<(), SpecError> {
        linux.devices = devices(l.devices().as_deref().unwrap_or_default())?;
        linux.cgroups_path = match l.cgroups_path() {
            Some(p) => cgroups_path(&p.to_string_lossy())?,
            None => None,
        };
        if let Some(r) = l.resources() {
            resources(r)?;
            linux.resources = Some(r.clone());
        }
        linux.rootfs_propagation = match l.rootfs_propagation().as_deref() {
            None | Some("") => None,
            Some(p) => Some(parse_propagation(p).ok_or_else(|| {
                err(
                    "linux.rootfsPropagation",
                    format!("unknown propagation {p:?}"),
                )
            })?),
        };
        linux.masked_paths = path_list(
            l.masked_paths().as_deref().unwrap_or_default(),
            "linux.maskedPaths",
            has_mount_ns,
            "masking paths needs a mount namespace",
        )?;
        linux.readonly_paths = path_list(
            l.readonly_paths().as_deref().unwrap_or_default(),
            "linux.readonlyPaths",
            has_mount_ns,
            "read-only paths need a mount namespace",
        )?;
        if let Some(sysctl) = l.sysctl() {
            linux.sysctl = sysctls(sysctl, &linux.namespaces, hostname_set, domainname_set)?;
        }
        if let Some(s) = l.seccomp() {
            linux.seccomp = Some(seccomp(s)?);
        }
        linux.mount_label = l.mount_label().clone().filter(|s| !s.is_empty());
        Ok(())
    }

    /// `root`.
    fn root(&self, spec: &Spec) -> Result<RootConfig, SpecError> {
        let root = spec.root().as_ref().ok_or_else(|| err("root", "missing"))?;
        let path = root.path().to_string_lossy();
        if path.is_empty() {
            return Err(err("root.path", "missing"));
        }
        Ok(RootConfig {
            path: self.bundle_path(&path, "root.path")?,
            readonly: root.readonly().unwrap_or(false),
        })
    }

    /// `linux.namespaces`.
    fn namespaces(
        &self,
        linux: Option<&oci_spec::runtime::Linux>,
    ) -> Result<Vec<NamespaceConfig>, SpecError> {
        let mut out: Vec<NamespaceConfig> = Vec::new();
        let list = linux.and_then(|l| l.namespaces().as_ref());
        for (i, ns) in list.into_iter().flatten().enumerate() {
            let kind = namespace_of(ns.typ());
            if out.iter().any(|n| n.ns == kind) {
                return Err(err(
                    format!("linux.namespaces[{i}]"),
                    format!("duplicate namespace {:?}", oci_namespace_name(kind)),
                ));
            }
            let path = match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => Some(absolute_host_path(
                    &p.to_string_lossy(),
                    &format!("linux.namespaces[{i}].path"),
                )?),
                _ => None,
            };
            out.push(NamespaceConfig { ns: kind, path });
        }
        Ok(out)
    }

    /// `mounts`.
    fn mounts(&self, spec: &Spec) -> Result<Vec<MountConfig>, SpecError> {
        let mut out = Vec::new();
        for (i, m) in spec.mounts().iter().flatten().enumerate() {
            let at = |field: &str| format!("mounts[{i}].{field}");
            let destination =
                container_path(&m.destination().to_string_lossy(), &at("destination"))?;
            let options = parse_mount_options(m.options().as_deref().unwrap_or_default())
                .map_err(|e| err(format!("mounts[{i}].options[{}]", e.index()), e.to_string()))?;
            if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
                let field = if m.uid_mappings().is_some() {
                    "uidMappings"
                } else {
                    "gidMappings"
                };
                return Err(err(at(field), "id-mapped mounts are not supported"));
            }
            let fstype = m.typ().clone().filter(|t| !t.is_empty());
            let source = m
                .source()
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty());
            let kind = if options.bind || fstype.as_deref() == Some("bind") {
                let source = source.ok_or_else(|| err(at("source"), "missing"))?;
                MountKind::Bind {
                    source: self.bundle_path(&source, &at("source"))?,
                    recursive: options.recursive,
                }
            } else {
                let fstype = fstype.unwrap_or_else(|| "none".to_owned());
                if let Some(s) = &source {
                    no_nul(s, &at("source"))?;
                }
                MountKind::Fs {
                    source: source.unwrap_or_else(|| fstype.clone()),
                    fstype,
                }
            };
            out.push(MountConfig {
                destination,
                kind,
                flags: options.flags,
                propagation: options.propagation,
                data: options.data,
            });
        }
        Ok(out)
    }
}

/// True when `linux.namespaces` has an entry of kind `ns` (new or joined).
fn present(namespaces: &[NamespaceConfig], ns: Namespace) -> bool {
    namespaces.iter().any(|n| n.ns == ns)
}

/// `hostname` or `domainname`: empty is none; needs a uts namespace entry (runc's rule:
/// new or joined by path).
fn uts_name(value: Option<&str>, field: &str, has_uts: bool) -> Result<Option<String>, SpecError> {
    let Some(name) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if name.contains('\0') {
        return Err(err(field, "contains a NUL byte"));
    }
    if name.len() > MAX_UTS_NAME {
        return Err(err(field, format!("longer than {MAX_UTS_NAME} bytes")));
    }
    if !has_uts {
        return Err(err(
            field,
            format!("setting a {field} needs a uts namespace"),
        ));
    }
    Ok(Some(name.to_owned()))
}

/// `linux.uidMappings` and `linux.gidMappings`, checked against the user namespace entry.
fn id_mappings(
    linux: Option<&oci_spec::runtime::Linux>,
    namespaces: &[NamespaceConfig],
) -> Result<(Vec<IdMapping>, Vec<IdMapping>), SpecError> {
    let uid = mapping_list(
        linux.and_then(|l| l.uid_mappings().as_deref()),
        "linux.uidMappings",
    )?;
    let gid = mapping_list(
        linux.and_then(|l| l.gid_mappings().as_deref()),
        "linux.gidMappings",
    )?;
    match namespaces.iter().find(|n| n.ns == Namespace::User) {
        None => {
            if !uid.is_empty() {
                return Err(err(
                    "linux.uidMappings",
                    "id mappings need a user namespace",
                ));
            }
            if !gid.is_empty() {
                return Err(err(
                    "linux.gidMappings",
                    "id mappings need a user namespace",
                ));
            }
        }
        Some(NamespaceConfig { path: None, .. }) => {
            if uid.is_empty() {
                return Err(err(
                    "linux.uidMappings",
                    "a new user namespace needs uid mappings",
                ));
            }
            if gid.is_empty() {
                return Err(err(
                    "linux.gidMappings",
                    "a new user namespace needs gid mappings",
                ));
            }
        }
        Some(_) => {}
    }
    Ok((uid, gid))
}

/// One mapping list: sizes at least 1, no overflow, no overlap inside or outside.
fn mapping_list(list: Option<&[LinuxIdMapping]>, field: &str) -> Result<Vec<IdMapping>, SpecError> {
    let list = list.unwrap_or_default();
    if list.len() > MAX_ID_MAPPINGS {
        return Err(err(
            field,
            format!(
                "too many mappings ({}), the kernel takes at most {MAX_ID_MAPPINGS}",
                list.len()
            ),
        ));
    }
    let mut out: Vec<IdMapping> = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let mapping = IdMapping {
            container_id: m.container_id(),
            host_id: m.host_id(),
            size: m.size(),
        };
        if mapping.size == 0 {
            return Err(err(format!("{field}[{i}].size"), "must be at least 1"));
        }
        let end = |start: u32| u64::from(start) + u64::from(mapping.size);
        let limit = u64::from(u32::MAX) + 1;
        if end(mapping.container_id) > limit {
            return Err(err(
                format!("{field}[{i}]"),
                "container id range goes past 4294967295",
            ));
        }
        if end(mapping.host_id) > limit {
            return Err(err(
                format!("{field}[{i}]"),
                "host id range goes past 4294967295",
            ));
        }
        let overlaps = |a: u32, b: u32, size_b: u32| {
            u64::from(a) < u64::from(b) + u64::from(size_b) && u64::from(b) < end(a)
        };
        for (j, other) in out.iter().enumerate() {
            if overlaps(mapping.container_id, other.container_id, other.size) {
                return Err(err(
                    format!("{field}[{i}]"),
                    format!("container ids overlap {field}[{j}]"),
                ));
            }
            if overlaps(mapping.host_id, other.host_id, other.size) {
                return Err(err(
                    format!("{field}[{i}]"),
                    format!("host ids overlap {field}[{j}]"),
                ));
            }
        }
        out.push(mapping);
    }
    Ok(out)
}

/// True when `id` falls in one of the mappings' container ranges.
fn mapped(id: u32, mappings: &[IdMapping]) -> bool {
    mappings.iter().any(|m| {
        u64::from(id) >= u64::from(m.container_id)
            && u64::from(id) < u64::from(m.container_id) + u64::from(m.size)
    })
}

/// `process`.
fn process(
    p: &oci_spec::runtime::Process,
    capabilities: Option<Value>,
    uid_mappings: &[IdMapping],
    gid_mappings: &[IdMapping],
) -> Result<ProcessConfig, SpecError> {
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(err("process.args", "must not be empty"));
    }
    for (i, a) in args.iter().enumerate() {
        if a.contains('\0') {
            return Err(err(format!("process.args[{i}]"), "contains a NUL byte"));
        }
    }
    if args[0].is_empty() {
        return Err(err("process.args[0]", "must not be empty"));
    }
    let env = p.env().clone().unwrap_or_default();
    for (i, e) in env.iter().enumerate() {
        env_entry(e, &format!("process.env[{i}]"))?;
    }
    let cwd = container_path(&p.cwd().to_string_lossy(), "process.cwd")?;

    let u = p.user();
    if let Some(mask) = u.umask()
        && mask > 0o777
    {
        return Err(err(
            "process.user.umask",
            format!("must be at most 0o777, got {mask:#o}"),
        ));
    }
    let additional_gids = u.additional_gids().clone().unwrap_or_default();
    if !uid_mappings.is_empty() && !mapped(u.uid(), uid_mappings) {
        return Err(err(
            "process.user.uid",
            format!("{} is not mapped in linux.uidMappings", u.uid()),
        ));
    }
    if !gid_mappings.is_empty() {
        if !mapped(u.gid(), gid_mappings) {
            return Err(err(
                "process.user.gid",
                format!("{} is not mapped in linux.gidMappings", u.gid()),
            ));
        }
        for (i, g) in additional_gids.iter().enumerate() {
            if !mapped(*g, gid_mappings) {
                return Err(err(
                    format!("process.user.additionalGids[{i}]"),
                    format!("{g} is not mapped in linux.gidMappings"),
                ));
            }
        }
    }
    let user = UserConfig {
        uid: u.uid(),
        gid: u.gid(),
        umask: u.umask(),
        additional_gids,
    };

    let console_size = match p.console_size() {
        Some(b) => {
            let side = |v: u64, field: &str| {
                u32::try_from(v)
                    .ok()
                    .filter(|v| *v <= u32::from(u16::MAX))
                    .ok_or_else(|| {
                        err(
                            format!("process.consoleSize.{field}"),
                            format!("must be at most 65535, got {v}"),
                        )
                    })
            };
            Some((side(b.height(), "height")?, side(b.width(), "width")?))
        }
        None => None,
    };

    let mut rlimits: Vec<(Rlimit, u64, u64)> = Vec::new();
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        let name = enum_name(&r.typ());
        let kind = Rlimit::from_name(&name).ok_or_else(|| {
            err(
                format!("process.rlimits[{i}].type"),
                format!("unknown rlimit {name:?}"),
            )
        })?;
        if rlimits.iter().any(|(k, _, _)| *k == kind) {
            return Err(err(
                format!("process.rlimits[{i}].type"),
                format!("duplicate rlimit {name:?}"),
            ));
        }
        if r.soft() > r.hard() {
            return Err(err(
                format!("process.rlimits[{i}]"),
                format!("soft limit {} is above hard limit {}", r.soft(), r.hard()),
            ));
        }
        rlimits.push((kind, r.soft(), r.hard()));
    }

    if let Some(adj) = p.oom_score_adj()
        && !(-1000..=1000).contains(&adj)
    {
        return Err(err(
            "process.oomScoreAdj",
            format!("must be between -1000 and 1000, got {adj}"),
        ));
    }

    Ok(ProcessConfig {
        terminal: p.terminal().unwrap_or(false),
        console_size,
        user,
        args,
        env,
        cwd,
        capabilities: capability_sets(capabilities)?,
        rlimits,
        no_new_privileges: p.no_new_privileges().unwrap_or(false),
        oom_score_adj: p.oom_score_adj(),
        apparmor_profile: p.apparmor_profile().clone().filter(|s| !s.is_empty()),
        selinux_label: p.selinux_label().clone().filter(|s| !s.is_empty()),
    })
}

/// `process.capabilities`, read from JSON by hand so errors keep their index.
fn capability_sets(value: Option<Value>) -> Result<Option<CapSets>, SpecError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(err(
                "process.capabilities",
                format!("expected an object, found {}", describe(&other)),
            ));
        }
    };
    let set = |name: &str| -> Result<CapSet, SpecError> {
        let path = format!("process.capabilities.{name}");
        match map.get(name) {
            None | Some(Value::Null) => Ok(CapSet::default()),
            Some(Value::Array(items)) => {
                let mut set = CapSet::default();
                for (i, item) in items.iter().enumerate() {
                    let Value::String(cap) = item else {
                        return Err(err(
                            format!("{path}[{i}]"),
                            format!("expected a string, found {}", describe(item)),
                        ));
                    };
                    let cap = Capability::from_name(cap).ok_or_else(|| {
                        err(
                            format!("{path}[{i}]"),
                            format!("unknown capability {cap:?}"),
                        )
                    })?;
                    set.insert(cap);
                }
                Ok(set)
            }
            Some(other) => Err(err(
                path,
                format!("expected an array, found {}", describe(other)),
            )),
        }
    };
    Ok(Some(CapSets {
        bounding: set("bounding")?,
        effective: set("effective")?,
        inheritable: set("inheritable")?,
        permitted: set("permitted")?,
        ambient: set("ambient")?,
    }))
}

/// `hooks`.
fn hooks(spec: &Spec) -> Result<HooksConfig, SpecError> {
    let Some(h) = spec.hooks() else {
        return Ok(HooksConfig::default());
    };
    let list = |hooks: &Option<Vec<Hook>>, name: &str| -> Result<Vec<HookSpec>, SpecError> {
        hooks
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, hook)| hook_spec(hook, &format!("hooks.{name}[{i}]")))
            .collect()
    };
    #[allow(deprecated)]
    let prestart = list(h.prestart(), "prestart")?;
    Ok(HooksConfig {
        prestart,
        create_runtime: list(h.create_runtime(), "createRuntime")?,
        create_container: list(h.create_container(), "createContainer")?,
        start_container: list(h.start_container(), "startContainer")?,
        poststart: list(h.poststart(), "poststart")?,
        poststop: list(h.poststop(), "poststop")?,
    })
}

/// One hook; `args` defaults to `[path]`, as Go's `exec.Cmd` (and so runc) does.
fn hook_spec(hook: &Hook, at: &str) -> Result<HookSpec, SpecError> {
    let path = absolute_host_path(&hook.path().to_string_lossy(), &format!("{at}.path"))?;
    let mut args = hook.args().clone().unwrap_or_default();
    for (i, a) in args.iter().enumerate() {
        if a.contains('\0') {
            return Err(err(format!("{at}.args[{i}]"), "contains a NUL byte"));
        }
    }
    if args.is_empty() {
        args.push(path.as_str().to_owned());
    }
    let env = hook.env().clone().unwrap_or_default();
    for (i, e) in env.iter().enumerate() {
        env_entry(e, &format!("{at}.env[{i}]"))?;
    }
    let timeout = match hook.timeout() {
        None => None,
        Some(t) => Some(u32::try_from(t).ok().filter(|t| *t > 0).ok_or_else(|| {
            err(
                format!("{at}.timeout"),
                format!("must be between 1 and 4294967295 seconds, got {t}"),
            )
        })?),
    };
    Ok(HookSpec {
        path: path.as_str().to_owned(),
        args,
        env,
        timeout,
    })
}

/// `linux.devices`.
fn devices(list: &[oci_spec::runtime::LinuxDevice]) -> Result<Vec<DeviceConfig>, SpecError> {
    let dev = ContainerPath::parse("/dev").expect("\"/dev\" is a valid container path");
    let mut out: Vec<DeviceConfig> = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let at = |field: &str| format!("linux.devices[{i}].{field}");
        let path = container_path(&d.path().to_string_lossy(), &at("path"))?;
        if path == dev || !path.starts_with(&dev) {
            return Err(err(
                at("path"),
                format!("{:?} is not under /dev", path.as_str()),
            ));
        }
        if out.iter().any(|o| o.path == path) {
            return Err(err(
                at("path"),
                format!("duplicate device {:?}", path.as_str()),
            ));
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::P => DeviceKind::Fifo,
            LinuxDeviceType::A => {
                return Err(err(
                    at("type"),
                    "\"a\" is not a device node type (expected c, b, u or p)",
                ));
            }
        };
        let number = |v: i64, field: &str| {
            u64::try_from(v).map_err(|_| err(at(field), format!("must not be negative, got {v}")))
        };
        out.push(DeviceConfig {
            path,
            kind,
            major: number(d.major(), "major")?,
            minor: number(d.minor(), "minor")?,
            // Only the permission bits: some callers pass st_mode with the type bits.
            file_mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    Ok(out)
}

/// `linux.cgroupsPath`: no NUL, no `..` component; empty is none.
fn cgroups_path(text: &str) -> Result<Option<String>, SpecError> {
    if text.is_empty() {
        return Ok(None);
    }
    no_nul(text, "linux.cgroupsPath")?;
    if text.split(['/', ':']).any(|c| c == "..") {
        return Err(err(
            "linux.cgroupsPath",
            format!("path {text:?} contains \"..\""),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// `linux.maskedPaths` or `linux.readonlyPaths`.
fn path_list(
    list: &[String],
    field: &str,
    has_mount_ns: bool,
    needs_ns: &str,
) -> Result<Vec<ContainerPath>, SpecError> {
    if !list.is_empty() && !has_mount_ns {
        return Err(err(field, needs_ns));
    }
    list.iter()
        .enumerate()
        .map(|(i, p)| container_path(p, &format!("{field}[{i}]")))
        .collect()
}

/// `linux.sysctl`, with runc's rules for which namespace owns which key. Keys are checked
/// in sorted order, so the first error is always the same one.
fn sysctls(
    map: &std::collections::HashMap<String, String>,
    namespaces: &[NamespaceConfig],
    hostname_set: bool,
    domainname_set: bool,
) -> Result<BTreeMap<String, String>, SpecError> {
    let sorted: BTreeMap<&String, &String> = map.iter().collect();
    let mut out = BTreeMap::new();
    for (key, value) in sorted {
        let at = format!("linux.sysctl[{key:?}]");
        if !sysctl_name_ok(key) {
            return Err(err(at, "not a valid sysctl name"));
        }
        if value.contains('\0') {
            return Err(err(at, "value contains a NUL byte"));
        }
        let name = key.replace('/', ".");
        let needs = |ns: Namespace, what: &str| {
            if present(namespaces, ns) {
                Ok(())
            } else {
                Err(err(at.clone(), format!("needs {what} namespace")))
            }
        };
        if IPC_SYSCTLS.contains(&name.as_str()) || name.starts_with("fs.mqueue.") {
            needs(Namespace::Ipc, "an ipc")?;
        } else if name.starts_with("net.") {
            needs(Namespace::Network, "a network")?;
        } else if name == "kernel.hostname" {
            if hostname_set {
                return Err(err(at, "conflicts with hostname"));
            }
            needs(Namespace::Uts, "a uts")?;
        } else if name == "kernel.domainname" {
            if domainname_set {
                return Err(err(at, "conflicts with domainname"));
            }
            needs(Namespace::Uts, "a uts")?;
        } else {
            return Err(err(at, "not namespaced, a container cannot set it"));
        }
        out.insert(key.clone(), value.clone());
    }
    Ok(out)
}

/// The highest errno a seccomp return value can carry (`SECCOMP_RET_DATA` is 16 bits).
const MAX_SECCOMP_ERRNO: u32 = 0xffff;

/// A seccomp action with its errno or trace value (EPERM, 1, when not given).
fn seccomp_action(action: LinuxSeccompAction, ret: Option<u32>) -> SeccompAction {
    let ret = ret.unwrap_or(1);
    match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActErrno => SeccompAction::Errno(ret),
        LinuxSeccompAction::ScmpActNotify => SeccompAction::Notify,
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(ret),
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
    }
}

/// Checks an errno value against the 16 bits a seccomp return value has for it.
fn errno_ret(ret: Option<u32>, path: &str) -> Result<Option<u32>, SpecError> {
    match ret {
        Some(r) if r > MAX_SECCOMP_ERRNO => Err(err(
            path,
            format!("must be at most {MAX_SECCOMP_ERRNO}, got {r}"),
        )),
        other => Ok(other),
    }
}

/// `linux.seccomp`.
fn seccomp(s: &LinuxSeccomp) -> Result<SeccompProfile, SpecError> {
    let default_ret = errno_ret(s.default_errno_ret(), "linux.seccomp.defaultErrnoRet")?;
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(err(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action",
        ));
    }
    let listener_path = match s.listener_path() {
        Some(p) if !p.as_os_str().is_empty() => Some(
            absolute_host_path(&p.to_string_lossy(), "linux.seccomp.listenerPath")?
                .as_str()
                .to_owned(),
        ),
        _ => None,
    };
    let mut rules = Vec::new();
    for (i, call) in s.syscalls().iter().flatten().enumerate() {
        let at = format!("linux.seccomp.syscalls[{i}]");
        if call.names().is_empty() {
            return Err(err(format!("{at}.names"), "must not be empty"));
        }
        for (j, name) in call.names().iter().enumerate() {
            if name.is_empty() || name.contains('\0') {
                return Err(err(
                    format!("{at}.names[{j}]"),
                    format!("invalid syscall name {name:?}"),
                ));
            }
        }
        let ret = errno_ret(call.errno_ret(), &format!("{at}.errnoRet"))?;
        if call.action() == LinuxSeccompAction::ScmpActNotify && listener_path.is_none() {
            return Err(err(
                format!("{at}.action"),
                "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath",
            ));
        }
        let mut args = Vec::new();
        for (k, a) in call.args().iter().flatten().enumerate() {
            let index = u8::try_from(a.index())
                .ok()
                .filter(|i| *i < 6)
                .ok_or_else(|| {
                    err(
                        format!("{at}.args[{k}].index"),
                        format!("must be below 6, got {}", a.index()),
                    )
                })?;
            args.push(SeccompArg {
                index,
                value: a.value(),
                value_two: a.value_two().unwrap_or(0),
                op: match a.op() {
                    LinuxSeccompOperator::ScmpCmpNe => SeccompCmp::Ne,
                    LinuxSeccompOperator::ScmpCmpLt => SeccompCmp::Lt,
                    LinuxSeccompOperator::ScmpCmpLe => SeccompCmp::Le,
                    LinuxSeccompOperator::ScmpCmpEq => SeccompCmp::Eq,
                    LinuxSeccompOperator::ScmpCmpGe => SeccompCmp::Ge,
                    LinuxSeccompOperator::ScmpCmpGt => SeccompCmp::Gt,
                    LinuxSeccompOperator::ScmpCmpMaskedEq => SeccompCmp::MaskedEq,
                },
            });
        }
        rules.push(SeccompRule {
            names: call.names().clone(),
            action: seccomp_action(call.action(), ret),
            args,
        });
    }
    Ok(SeccompProfile {
        default_action: seccomp_action(s.default_action(), default_ret),
        architectures: s.architectures().iter().flatten().map(enum_name).collect(),
        flags: s.flags().iter().flatten().map(enum_name).collect(),
        rules,
        listener_path,
    })
}

/// Range checks on `linux.resources` (bounds in the module docs).
fn resources(r: &LinuxResources) -> Result<(), SpecError> {
    const AT: &str = "linux.resources";
    for (i, d) in r.devices().iter().flatten().enumerate() {
        let at = |f: &str| format!("{AT}.devices[{i}].{f}");
        if let Some(t) = d.typ()
            && !matches!(
                t,
                LinuxDeviceType::A | LinuxDeviceType::B | LinuxDeviceType::C
            )
        {
            return Err(err(
                at("type"),
                format!(
                    "{:?} is not a cgroup device type (expected a, b or c)",
                    t.as_str()
                ),
            ));
        }
        for (field, v) in [("major", d.major()), ("minor", d.minor())] {
            if let Some(v) = v
                && v < -1
            {
                return Err(err(at(field), format!("must be -1 (any) or more, got {v}")));
            }
        }
        if let Some(access) = d.access()
            && !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
        {
            return Err(err(
                at("access"),
                format!("invalid access {access:?} (expected letters of \"rwm\")"),
            ));
        }
    }
    if let Some(m) = r.memory() {
        memory(m)?;
    }
    if let Some(c) = r.cpu() {
        cpu(c)?;
    }
    if let Some(p) = r.pids() {
        let limit = p.limit();
        // 0 means "not set", as runc and docker send it.
        if limit < -1 {
            return Err(err(
                format!("{AT}.pids.limit"),
                format!("must be -1 (unlimited), 0 (unset) or positive, got {limit}"),
            ));
        }
    }
    if let Some(b) = r.block_io() {
        block_io(b)?;
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let at = |f: &str| format!("{AT}.hugepageLimits[{i}].{f}");
        let size = h.page_size();
        let digits = size
            .strip_suffix("KB")
            .or_else(|| size.strip_suffix("MB"))
            .or_else(|| size.strip_suffix("GB"));
        if !digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())) {
            return Err(err(
                at("pageSize"),
                format!("invalid page size {size:?} (expected e.g. \"2MB\")"),
            ));
        }
        if h.limit() < 0 {
            return Err(err(
                at("limit"),
                format!("must not be negative, got {}", h.limit()),
            ));
        }
    }
    if let Some(unified) = r.unified() {
        let sorted: BTreeMap<&String, &String> = unified.iter().collect();
        for (key, value) in sorted {
            if key.is_empty() || key.starts_with('.') || key.contains(['/', '\0']) {
                return Err(err(
                    format!("{AT}.unified[{key:?}]"),
                    "not a cgroup file name",
                ));
            }
            if value.contains('\0') {
                return Err(err(
                    format!("{AT}.unified[{key:?}]"),
                    "value contains a NUL byte",
                ));
            }
        }
    }
    Ok(())
}

/// `linux.resources.memory`.
fn memory(m: &LinuxMemory) -> Result<(), SpecError> {
    let bytes = |v: Option<i64>, field: &str| match v {
        Some(v) if v != -1 && v != 0 && v < 4096 => Err(err(
            format!("linux.resources.memory.{field}"),
            format!("must be -1 (unlimited), 0 (unset) or at least 4096 bytes, got {v}"),
        )),
        _ => Ok(()),
    };
    bytes(m.limit(), "limit")?;
    bytes(m.reservation(), "reservation")?;
    bytes(m.swap(), "swap")?;
    bytes(m.kernel(), "kernel")?;
    bytes(m.kernel_tcp(), "kernelTCP")?;
    if let (Some(limit), Some(swap)) = (m.limit(), m.swap())
        && limit > 0
        && swap > 0
        && swap < limit
    {
        return Err(err(
            "linux.resources.memory.swap",
            format!("memory+swap limit {swap} is below the memory limit {limit}"),
        ));
    }
    if let Some(s) = m.swappiness()
        && s > 100
    {
        return Err(err(
            "linux.resources.memory.swappiness",
            format!("must be at most 100, got {s}"),
        ));
    }
    Ok(())
}

/// `linux.resources.cpu`.
fn cpu(c: &LinuxCpu) -> Result<(), SpecError> {
    let at = |f: &str| format!("linux.resources.cpu.{f}");
    if let Some(s) = c.shares()
        && s != 0
        && !(2..=262_144).contains(&s)
    {
        return Err(err(
            at("shares"),
            format!("must be 0 (unset) or between 2 and 262144, got {s}"),
        ));
    }
    if let Some(q) = c.quota()
        && q != -1
        && q != 0
        && q < 1000
    {
        return Err(err(
            at("quota"),
            format!("must be -1 (unlimited), 0 (unset) or at least 1000 microseconds, got {q}"),
        ));
    }
    if let Some(p) = c.period()
        && p != 0
        && !(1000..=1_000_000).contains(&p)
    {
        return Err(err(
            at("period"),
            format!("must be 0 (unset) or between 1000 and 1000000 microseconds, got {p}"),
        ));
    }
    if let Some(r) = c.realtime_runtime()
        && r < -1
    {
        return Err(err(
            at("realtimeRuntime"),
            format!("must be -1 (unlimited) or more, got {r}"),
        ));
    }
    if let Some(i) = c.idle()
        && !(0..=1).contains(&i)
    {
        return Err(err(at("idle"), format!("must be 0 or 1, got {i}")));
    }
    for (field, list) in [("cpus", c.cpus()), ("mems", c.mems())] {
        if let Some(list) = list
            && !cpuset_list(list)
        {
            return Err(err(
                at(field),
                format!("invalid list {list:?} (expected e.g. \"0-3,7\")"),
            ));
        }
    }
    Ok(())
}

/// `linux.resources.blockIO`.
fn block_io(b: &LinuxBlockIo) -> Result<(), SpecError> {
    const AT: &str = "linux.resources.blockIO";
    let weight = |w: Option<u16>, path: String| match w {
        Some(w) if w != 0 && !(10..=1000).contains(&w) => Err(err(
            path,
            format!("must be 0 (unset) or between 10 and 1000, got {w}"),
        )),
        _ => Ok(()),
    };
    let device = |v: i64, path: String| {
        if v < 0 {
            Err(err(path, format!("must not be negative, got {v}")))
        } else {
            Ok(())
        }
    };
    weight(b.weight(), format!("{AT}.weight"))?;
    weight(b.leaf_weight(), format!("{AT}.leafWeight"))?;
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        let at = |f: &str| format!("{AT}.weightDevice[{i}].{f}");
        device(d.major(), at("major"))?;
        device(d.minor(), at("minor"))?;
        weight(d.weight(), at("weight"))?;
        weight(d.leaf_weight(), at("leafWeight"))?;
    }
    for (name, list) in [
        ("throttleReadBpsDevice", b.throttle_read_bps_device()),
        ("throttleWriteBpsDevice", b.throttle_write_bps_device()),
        ("throttleReadIOPSDevice", b.throttle_read_iops_device()),
        ("throttleWriteIOPSDevice", b.throttle_write_iops_device()),
    ] {
        for (i, d) in list.iter().flatten().enumerate() {
            device(d.major(), format!("{AT}.{name}[{i}].major"))?;
            device(d.minor(), format!("{AT}.{name}[{i}].minor"))?;
        }
    }
    Ok(())
}

/// JSON whose objects keep their keys in the order written (serde_json's `Value` sorts
/// them), so `berth spec` prints fields in runc's order.
enum Json {
    /// An object, keys in order.
    Obj(Vec<(&'static str, Json)>),
    /// An array.
    Arr(Vec<Json>),
    /// A scalar or an array of scalars.
    Val(Value),
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Json::Obj(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Json::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Val(v) => v.serialize(s),
        }
    }
}

/// A JSON scalar or scalar array.
fn val(v: impl Into<Value>) -> Json {
    Json::Val(v.into())
}

/// An array of strings.
fn strs(items: &[&str]) -> Json {
    val(items.iter().map(|s| Value::from(*s)).collect::<Vec<_>>())
}

/// A mount entry in runc's field order.
fn mount_json(destination: &str, fstype: &str, source: &str, options: &[&str]) -> Json {
    let mut fields = vec![
        ("destination", val(destination)),
        ("type", val(fstype)),
        ("source", val(source)),
    ];
    if !options.is_empty() {
        fields.push(("options", strs(options)));
    }
    Json::Obj(fields)
}

/// The `config.json` that `berth spec` writes: runc's `runc spec` example (hostname
/// `berth`). With `rootless: Some((uid, gid))`, as `runc spec --rootless`: no network
/// namespace, a user namespace mapping container root to `uid`/`gid`, `/sys` bind-mounted
/// instead of a new sysfs, no cgroup mount, no `gid=` mount options and no resources.
pub fn default_config_json(rootless: Option<(u32, u32)>) -> String {
    let caps = || strs(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let devpts: &[&str] = if rootless.is_some() {
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
        ]
    } else {
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]
    };
    let mut mounts = vec![
        mount_json("/proc", "proc", "proc", &[]),
        mount_json(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount_json("/dev/pts", "devpts", "devpts", devpts),
        mount_json(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount_json(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
    ];
    let ns = |kind: &str| Json::Obj(vec![("type", val(kind))]);
    let mut namespaces = vec![ns("pid")];
    if rootless.is_some() {
        mounts.push(mount_json(
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        ));
    } else {
        mounts.push(mount_json(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ));
        mounts.push(mount_json(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ));
        namespaces.push(ns("network"));
    }
    for kind in ["ipc", "uts", "mount", "cgroup"] {
        namespaces.push(ns(kind));
    }
    let mut linux = Vec::new();
    match rootless {
        Some((uid, gid)) => {
            namespaces.push(ns("user"));
            let map = |host: u32| {
                Json::Arr(vec![Json::Obj(vec![
                    ("containerID", val(0)),
                    ("hostID", val(host)),
                    ("size", val(1)),
                ])])
            };
            linux.push(("uidMappings", map(uid)));
            linux.push(("gidMappings", map(gid)));
        }
        None => {
            linux.push((
                "resources",
                Json::Obj(vec![(
                    "devices",
                    Json::Arr(vec![Json::Obj(vec![
                        ("allow", val(false)),
                        ("access", val("rwm")),
                    ])]),
                )]),
            ));
        }
    }
    linux.push(("namespaces", Json::Arr(namespaces)));
    linux.push((
        "maskedPaths",
        strs(&[
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
            "/sys/devices/virtual/powercap",
        ]),
    ));
    linux.push((
        "readonlyPaths",
        strs(&[
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ]),
    ));
    let process = Json::Obj(vec![
        ("terminal", val(true)),
        ("user", Json::Obj(vec![("uid", val(0)), ("gid", val(0))])),
        ("args", strs(&["sh"])),
        (
            "env",
            strs(&[
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ]),
        ),
        ("cwd", val("/")),
        (
            "capabilities",
            Json::Obj(vec![
                ("bounding", caps()),
                ("effective", caps()),
                ("permitted", caps()),
                ("ambient", caps()),
            ]),
        ),
        (
            "rlimits",
            Json::Arr(vec![Json::Obj(vec![
                ("type", val("RLIMIT_NOFILE")),
                ("hard", val(1024)),
                ("soft", val(1024)),
            ])]),
        ),
        ("noNewPrivileges", val(true)),
    ]);
    let config = Json::Obj(vec![
        ("ociVersion", val("1.2.0")),
        ("process", process),
        (
            "root",
            Json::Obj(vec![("path", val("rootfs")), ("readonly", val(true))]),
        ),
        ("hostname", val("berth")),
        ("mounts", Json::Arr(mounts)),
        ("linux", Json::Obj(linux)),
    ]);
    let mut text = serde_json::to_string_pretty(&config)
        .expect("a tree of string-keyed objects and JSON values always serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{MountFlag, MountFlags, Propagation};
    use serde_json::json;

    fn bundle() -> HostPath {
        HostPath::new("/b")
    }

    /// The default config, changed by `f`, parsed.
    fn with(f: impl FnOnce(&mut Value)) -> Result<Config, SpecError> {
        let mut v: Value = serde_json::from_str(&default_config_json(None)).unwrap();
        f(&mut v);
        parse_config(&v.to_string(), &bundle())
    }

    /// The error text for the default config changed by `f`.
    fn error(f: impl FnOnce(&mut Value)) -> String {
        match with(f) {
            Ok(_) => panic!("config was accepted"),
            Err(e) => e.to_string(),
        }
    }

    /// `process.execCPUAffinity` is checked by third_party/oci-spec's hand-written CPU-list
    /// check (berth's patch, which replaced a regex): lists pass, anything else is refused
    /// at its path.
    #[test]
    fn exec_cpu_affinity_is_a_cpu_list() {
        for ok in ["0", "0-3", "0-3,7", "4-6,8,10-11"] {
            let r =
                with(|v| v["process"]["execCPUAffinity"] = json!({ "initial": ok, "final": ok }));
            assert!(r.is_ok(), "{ok}: {r:?}");
        }
        for bad in [
            "", "0-3,,7", "4-6.,8", "1-2-3", "-1", "1-", ",1", "a", "\u{0663}",
        ] {
            let e = error(|v| v["process"]["execCPUAffinity"] = json!({ "final": bad }));
            assert!(
                e.starts_with("process.execCPUAffinity.final: "),
                "{bad:?}: {e}"
            );
            assert!(e.contains("Invalid execCPUAffinity format"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn default_config_parses() {
        let c = parse_config(&default_config_json(None), &bundle()).unwrap();
        assert_eq!(c.oci_version, "1.2.0");
        assert_eq!(
            c.root,
            RootConfig {
                path: HostPath::new("/b/rootfs"),
                readonly: true
            }
        );
        assert_eq!(c.hostname.as_deref(), Some("berth"));
        assert_eq!(c.mounts.len(), 7);
        assert_eq!(
            c.mounts[1],
            MountConfig {
                destination: ContainerPath::parse("/dev").unwrap(),
                kind: MountKind::Fs {
                    fstype: "tmpfs".into(),
                    source: "tmpfs".into()
                },
                flags: MountFlags::of(&[MountFlag::Nosuid, MountFlag::Strictatime]),
                propagation: vec![],
                data: vec!["mode=755".into(), "size=65536k".into()],
            }
        );
        let p = c.process.as_ref().unwrap();
        assert!(p.terminal);
        assert!(p.no_new_privileges);
        assert_eq!(p.args, ["sh"]);
        assert_eq!(p.cwd, ContainerPath::root());
        assert_eq!(p.rlimits, vec![(Rlimit::RlimitNofile, 1024, 1024)]);
        let caps = p.capabilities.unwrap();
        let expected: CapSet = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            .iter()
            .map(|n| Capability::from_name(n).unwrap())
            .collect();
        assert_eq!(caps.bounding, expected);
        assert_eq!(caps.effective, expected);
        assert_eq!(caps.permitted, expected);
        assert_eq!(caps.ambient, expected);
        assert_eq!(caps.inheritable, CapSet::default());
        let kinds: Vec<Namespace> = c.linux.namespaces.iter().map(|n| n.ns).collect();
        assert_eq!(
            kinds,
            [
                Namespace::Pid,
                Namespace::Network,
                Namespace::Ipc,
                Namespace::Uts,
                Namespace::Mount,
                Namespace::Cgroup
            ]
        );
        assert!(c.linux.namespaces.iter().all(|n| n.path.is_none()));
        assert_eq!(c.linux.masked_paths.len(), 11);
        assert_eq!(c.linux.readonly_paths.len(), 5);
        assert!(c.linux.resources.is_some());
        assert!(c.linux.uid_mappings.is_empty());
    }

    #[test]
    fn default_config_matches_runc_layout() {
        let text = default_config_json(None);
        let order: Vec<usize> = [
            "\"ociVersion\"",
            "\"process\"",
            "\"root\"",
            "\"hostname\"",
            "\"mounts\"",
            "\"linux\"",
        ]
        .iter()
        .map(|k| text.find(k).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.ends_with("}\n"));
        assert!(text.contains("\"gid=5\""));
    }

    #[test]
    fn rootless_default_config() {
        let text = default_config_json(Some((1000, 1001)));
        let c = parse_config(&text, &bundle()).unwrap();
        let kinds: Vec<Namespace> = c.linux.namespaces.iter().map(|n| n.ns).collect();
        assert_eq!(
            kinds,
            [
                Namespace::Pid,
                Namespace::Ipc,
                Namespace::Uts,
                Namespace::Mount,
                Namespace::Cgroup,
                Namespace::User
            ]
        );
        assert_eq!(
            c.linux.uid_mappings,
            vec![IdMapping {
                container_id: 0,
                host_id: 1000,
                size: 1
            }]
        );
        assert_eq!(c.linux.gid_mappings[0].host_id, 1001);
        assert!(c.linux.resources.is_none());
        assert!(!text.contains("gid=5"));
        assert!(!text.contains("/sys/fs/cgroup"));
        let sys = c
            .mounts
            .iter()
            .find(|m| m.destination.as_str() == "/sys")
            .unwrap();
        assert_eq!(
            sys.kind,
            MountKind::Bind {
                source: HostPath::new("/sys"),
                recursive: true
            }
        );
        assert_eq!(
            sys.flags,
            MountFlags::of(&[
                MountFlag::Nosuid,
                MountFlag::Noexec,
                MountFlag::Nodev,
                MountFlag::Ro
            ])
        );
    }

    #[test]
    fn invalid_json_names_line_and_column() {
        let e = parse_config("{\n  \"ociVersion\": \n}", &bundle()).unwrap_err();
        assert_eq!(e.path, ".");
        assert_eq!(
            e.to_string(),
            ".: invalid JSON: expected value at line 3 column 1"
        );
    }

    #[test]
    fn not_an_object() {
        let e = parse_config("[1]", &bundle()).unwrap_err();
        assert_eq!(e.to_string(), ".: expected an object, found an array");
    }

    #[test]
    fn wrong_type_names_path() {
        assert_eq!(
            error(|v| v["ociVersion"] = json!(5)),
            "ociVersion: expected a string, found 5"
        );
        assert_eq!(
            error(|v| v["process"]["user"]["uid"] = json!(-1)),
            "process.user.uid: expected an integer from 0 to 4294967295, found -1"
        );
        assert_eq!(
            error(|v| v["process"]["terminal"] = json!("yes")),
            "process.terminal: expected a boolean, found string \"yes\""
        );
        assert_eq!(
            error(|v| v["mounts"] = json!({})),
            "mounts: expected an array, found an object"
        );
        assert_eq!(
            error(|v| v["linux"]["resources"]["memory"] = json!({"limit": 1.5})),
            "linux.resources.memory.limit: expected an integer, found 1.5"
        );
    }

    #[test]
    fn missing_required_field() {
        assert_eq!(
            error(|v| {
                v["process"].as_object_mut().unwrap().remove("cwd");
            }),
            "process.cwd: missing"
        );
        assert_eq!(
            error(|v| {
                v["mounts"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("destination");
            }),
            "mounts[0].destination: missing"
        );
    }

    #[test]
    fn odd_shapes_have_short_messages() {
        assert_eq!(
            error(|v| v["linux"]["namespaces"][0]["type"] = json!(5)),
            "linux.namespaces[0].type: expected a string, found 5"
        );
        assert_eq!(
            error(|v| v["linux"]["namespaces"][0] = json!({})),
            "linux.namespaces[0].type: missing"
        );
        assert_eq!(
            error(|v| v["process"]["user"] = Value::Null),
            "process.user: expected an object, found null"
        );
        assert_eq!(
            error(|v| v["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 5000000000u64, "size": 1}])),
            "linux.uidMappings[0].hostID: expected an integer from 0 to 4294967295, found 5000000000"
        );
        assert_eq!(
            error(|v| v["annotations"] = json!({"a": 1})),
            "annotations.a: expected a string, found 1"
        );
    }

    #[test]
    fn unknown_namespace() {
        assert_eq!(
            error(|v| v["linux"]["namespaces"][2]["type"] = json!("foo")),
            "linux.namespaces[2].type: unknown namespace \"foo\""
        );
    }

    #[test]
    fn duplicate_namespace() {
        assert_eq!(
            error(|v| v["linux"]["namespaces"][3] = json!({"type": "pid"})),
            "linux.namespaces[3]: duplicate namespace \"pid\""
        );
    }

    #[test]
    fn namespace_path_must_be_absolute() {
        assert_eq!(
            error(|v| v["linux"]["namespaces"][1]["path"] = json!("netns/x")),
            "linux.namespaces[1].path: path \"netns/x\" is not absolute"
        );
    }

    #[test]
    fn joined_namespace_keeps_path() {
        let c = with(|v| v["linux"]["namespaces"][1]["path"] = json!("/var/run/netns/x")).unwrap();
        assert_eq!(
            c.namespace(Namespace::Network).unwrap().path,
            Some(HostPath::new("/var/run/netns/x"))
        );
        // An empty path means a new namespace, as in runc.
        let c = with(|v| v["linux"]["namespaces"][1]["path"] = json!("")).unwrap();
        assert_eq!(c.namespace(Namespace::Network).unwrap().path, None);
    }

    #[test]
    fn relative_mount_destination() {
        assert_eq!(
            error(|v| v["mounts"][2]["destination"] = json!("dev/pts")),
            "mounts[2].destination: path \"dev/pts\" is not absolute"
        );
    }

    #[test]
    fn mount_destination_with_dotdot() {
        assert_eq!(
            error(|v| v["mounts"][1]["destination"] = json!("/dev/../../etc")),
            "mounts[1].destination: path \"/dev/../../etc\" contains \"..\""
        );
    }

    #[test]
    fn unknown_mount_option() {
        assert_eq!(
            error(|v| v["mounts"][4]["options"][1] = json!("foo")),
            "mounts[4].options[1]: unknown mount option \"foo\""
        );
    }

    #[test]
    fn unsupported_mount_option() {
        assert_eq!(
            error(|v| v["mounts"][0]["options"] = json!(["rro"])),
            "mounts[0].options[0]: unsupported mount option \"rro\": recursive mount attributes are not supported"
        );
    }

    #[test]
    fn bind_mounts() {
        let c = with(|v| {
            let mounts = v["mounts"].as_array_mut().unwrap();
            mounts.push(
                json!({"destination": "/data", "type": "bind", "source": "data",
                               "options": ["ro", "rprivate"]}),
            );
            mounts.push(json!({"destination": "/opt", "source": "/srv/opt",
                               "options": ["rbind", "nosuid"]}));
            mounts.push(json!({"destination": "/t", "type": "tmpfs"}));
            mounts.push(json!({"destination": "/n"}));
        })
        .unwrap();
        let n = c.mounts.len();
        assert_eq!(
            c.mounts[n - 4].kind,
            MountKind::Bind {
                source: HostPath::new("/b/data"),
                recursive: false
            }
        );
        assert_eq!(c.mounts[n - 4].flags, MountFlags::of(&[MountFlag::Ro]));
        assert_eq!(
            c.mounts[n - 4].propagation,
            vec![(Propagation::Private, true)]
        );
        assert_eq!(
            c.mounts[n - 3].kind,
            MountKind::Bind {
                source: HostPath::new("/srv/opt"),
                recursive: true
            }
        );
        assert_eq!(c.mounts[n - 3].flags, MountFlags::of(&[MountFlag::Nosuid]));
        assert_eq!(
            c.mounts[n - 2].kind,
            MountKind::Fs {
                fstype: "tmpfs".into(),
                source: "tmpfs".into()
            }
        );
        assert_eq!(
            c.mounts[n - 1].kind,
            MountKind::Fs {
                fstype: "none".into(),
                source: "none".into()
            }
        );
    }

    #[test]
    fn bind_mount_needs_source() {
        assert_eq!(
            error(|v| v["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": "/x", "type": "bind"}))),
            "mounts[7].source: missing"
        );
    }

    #[test]
    fn idmapped_mounts_are_refused() {
        assert_eq!(
            error(|v| v["mounts"][0]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 1, "size": 1}])),
            "mounts[0].uidMappings: id-mapped mounts are not supported"
        );
    }

    #[test]
    fn missing_root() {
        assert_eq!(
            error(|v| {
                v.as_object_mut().unwrap().remove("root");
            }),
            "root: missing"
        );
        assert_eq!(
            error(|v| {
                v["root"].as_object_mut().unwrap().remove("path");
            }),
            "root.path: missing"
        );
        assert_eq!(
            error(|v| v["root"]["path"] = json!("")),
            "root.path: missing"
        );
    }

    #[test]
    fn root_path_absolute_and_relative() {
        let c = with(|v| v["root"]["path"] = json!("/srv/rootfs")).unwrap();
        assert_eq!(c.root.path, HostPath::new("/srv/rootfs"));
        let c = with(|v| v["root"]["path"] = json!("sub/rootfs")).unwrap();
        assert_eq!(c.root.path, HostPath::new("/b/sub/rootfs"));
        let c = with(|v| {
            v["root"].as_object_mut().unwrap().remove("readonly");
        })
        .unwrap();
        assert!(!c.root.readonly);
    }

    /// The default config with a user namespace and these mappings.
    fn userns(uid: Value, gid: Value) -> impl FnOnce(&mut Value) {
        move |v: &mut Value| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            v["linux"]["uidMappings"] = uid;
            v["linux"]["gidMappings"] = gid;
        }
    }

    fn one_to_one() -> Value {
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}])
    }

    #[test]
    fn user_namespace_mappings() {
        let c = with(userns(one_to_one(), one_to_one())).unwrap();
        assert_eq!(
            c.linux.uid_mappings,
            vec![IdMapping {
                container_id: 0,
                host_id: 100_000,
                size: 65536
            }]
        );
    }

    #[test]
    fn mapping_size_zero() {
        assert_eq!(
            error(userns(
                json!([{"containerID": 0, "hostID": 1000, "size": 0}]),
                one_to_one()
            )),
            "linux.uidMappings[0].size: must be at least 1"
        );
    }

    #[test]
    fn overlapping_mappings() {
        assert_eq!(
            error(userns(
                json!([
                    {"containerID": 0, "hostID": 1000, "size": 10},
                    {"containerID": 5, "hostID": 5000, "size": 10}
                ]),
                one_to_one()
            )),
            "linux.uidMappings[1]: container ids overlap linux.uidMappings[0]"
        );
        assert_eq!(
            error(userns(
                one_to_one(),
                json!([
                    {"containerID": 0, "hostID": 1000, "size": 10},
                    {"containerID": 10, "hostID": 1009, "size": 1}
                ])
            )),
            "linux.gidMappings[1]: host ids overlap linux.gidMappings[0]"
        );
    }

    #[test]
    fn mapping_range_overflow() {
        assert_eq!(
            error(userns(
                json!([{"containerID": 4294967295u32, "hostID": 0, "size": 2}]),
                one_to_one()
            )),
            "linux.uidMappings[0]: container id range goes past 4294967295"
        );
    }

    #[test]
    fn mappings_without_user_namespace() {
        assert_eq!(
            error(|v| v["linux"]["uidMappings"] = one_to_one()),
            "linux.uidMappings: id mappings need a user namespace"
        );
    }

    #[test]
    fn user_namespace_without_mappings() {
        assert_eq!(
            error(userns(json!([]), one_to_one())),
            "linux.uidMappings: a new user namespace needs uid mappings"
        );
        assert_eq!(
            error(userns(one_to_one(), Value::Null)),
            "linux.gidMappings: a new user namespace needs gid mappings"
        );
    }

    #[test]
    fn joined_user_namespace_needs_no_mappings() {
        let c = with(|v| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user", "path": "/proc/1/ns/user"}));
        })
        .unwrap();
        assert!(c.linux.uid_mappings.is_empty());
    }

    #[test]
    fn process_user_must_be_mapped() {
        let e = error(|v| {
            userns(one_to_one(), one_to_one())(v);
            v["process"]["user"]["uid"] = json!(70000);
        });
        assert_eq!(
            e,
            "process.user.uid: 70000 is not mapped in linux.uidMappings"
        );
        let e = error(|v| {
            userns(one_to_one(), one_to_one())(v);
            v["process"]["user"]["additionalGids"] = json!([1, 65536]);
        });
        assert_eq!(
            e,
            "process.user.additionalGids[1]: 65536 is not mapped in linux.gidMappings"
        );
    }

    #[test]
    fn unknown_capability() {
        assert_eq!(
            error(|v| v["process"]["capabilities"]["bounding"][2] = json!("CAP_FOO")),
            "process.capabilities.bounding[2]: unknown capability \"CAP_FOO\""
        );
    }

    #[test]
    fn capability_wrong_types() {
        assert_eq!(
            error(|v| v["process"]["capabilities"]["effective"][0] = json!(3)),
            "process.capabilities.effective[0]: expected a string, found 3"
        );
        assert_eq!(
            error(|v| v["process"]["capabilities"]["ambient"] = json!("CAP_KILL")),
            "process.capabilities.ambient: expected an array, found string \"CAP_KILL\""
        );
        assert_eq!(
            error(|v| v["process"]["capabilities"] = json!(["CAP_KILL"])),
            "process.capabilities: expected an object, found an array"
        );
    }

    #[test]
    fn capabilities_absent_is_none() {
        let c = with(|v| {
            v["process"].as_object_mut().unwrap().remove("capabilities");
        })
        .unwrap();
        assert_eq!(c.process.unwrap().capabilities, None);
        let c = with(|v| v["process"]["capabilities"] = json!({})).unwrap();
        assert_eq!(c.process.unwrap().capabilities, Some(CapSets::default()));
    }

    #[test]
    fn unknown_rlimit() {
        assert_eq!(
            error(|v| v["process"]["rlimits"][0]["type"] = json!("RLIMIT_FOO")),
            "process.rlimits[0].type: unknown rlimit \"RLIMIT_FOO\""
        );
    }

    #[test]
    fn duplicate_rlimit() {
        assert_eq!(
            error(|v| v["process"]["rlimits"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}))),
            "process.rlimits[1].type: duplicate rlimit \"RLIMIT_NOFILE\""
        );
    }

    #[test]
    fn rlimit_soft_above_hard() {
        assert_eq!(
            error(|v| v["process"]["rlimits"][0]["soft"] = json!(2048)),
            "process.rlimits[0]: soft limit 2048 is above hard limit 1024"
        );
    }

    /// Sets `linux.resources.<group>.<field>`.
    fn resource(group: &'static str, field: &'static str, value: Value) -> impl FnOnce(&mut Value) {
        move |v: &mut Value| v["linux"]["resources"][group] = json!({ field: value })
    }

    #[test]
    fn zero_resource_values_mean_unset_as_in_runc() {
        // docker and containerd send 0 for "not set"; refusing it would break them.
        with(|v| {
            v["linux"]["resources"] = json!({
                "memory": {"limit": 0, "reservation": 0, "swap": 0},
                "cpu": {"shares": 0, "quota": 0, "period": 0},
                "pids": {"limit": 0},
                "blockIO": {"weight": 0}
            })
        })
        .unwrap();
    }

    #[test]
    fn memory_bounds() {
        assert_eq!(
            error(resource("memory", "limit", json!(-5))),
            "linux.resources.memory.limit: must be -1 (unlimited), 0 (unset) or at least 4096 bytes, got -5"
        );
        assert_eq!(
            error(resource("memory", "limit", json!(100))),
            "linux.resources.memory.limit: must be -1 (unlimited), 0 (unset) or at least 4096 bytes, got 100"
        );
        assert_eq!(
            error(resource("memory", "reservation", json!(100))),
            "linux.resources.memory.reservation: must be -1 (unlimited), 0 (unset) or at least 4096 bytes, got 100"
        );
        assert_eq!(
            error(resource("memory", "swappiness", json!(101))),
            "linux.resources.memory.swappiness: must be at most 100, got 101"
        );
        assert_eq!(
            error(|v| v["linux"]["resources"]["memory"] = json!({"limit": 1048576, "swap": 65536})),
            "linux.resources.memory.swap: memory+swap limit 65536 is below the memory limit 1048576"
        );
        assert!(
            with(|v| v["linux"]["resources"]["memory"] =
                json!({"limit": 1048576, "swap": -1, "reservation": 4096}))
            .is_ok()
        );
    }

    #[test]
    fn cpu_bounds() {
        assert_eq!(
            error(resource("cpu", "shares", json!(1))),
            "linux.resources.cpu.shares: must be 0 (unset) or between 2 and 262144, got 1"
        );
        assert_eq!(
            error(resource("cpu", "quota", json!(500))),
            "linux.resources.cpu.quota: must be -1 (unlimited), 0 (unset) or at least 1000 microseconds, got 500"
        );
        assert_eq!(
            error(resource("cpu", "period", json!(999))),
            "linux.resources.cpu.period: must be 0 (unset) or between 1000 and 1000000 microseconds, got 999"
        );
        assert_eq!(
            error(resource("cpu", "period", json!(1_000_001))),
            "linux.resources.cpu.period: must be 0 (unset) or between 1000 and 1000000 microseconds, got 1000001"
        );
        assert_eq!(
            error(resource("cpu", "idle", json!(2))),
            "linux.resources.cpu.idle: must be 0 or 1, got 2"
        );
        assert_eq!(
            error(resource("cpu", "realtimeRuntime", json!(-2))),
            "linux.resources.cpu.realtimeRuntime: must be -1 (unlimited) or more, got -2"
        );
        assert!(with(|v| v["linux"]["resources"]["cpu"] =
            json!({"shares": 1024, "quota": -1, "period": 100000, "cpus": "0-3,7", "mems": "0"}))
        .is_ok());
    }

    #[test]
    fn cpuset_syntax() {
        assert_eq!(
            error(resource("cpu", "cpus", json!("0-"))),
            "linux.resources.cpu.cpus: invalid list \"0-\" (expected e.g. \"0-3,7\")"
        );
        assert_eq!(
            error(resource("cpu", "mems", json!("3-1"))),
            "linux.resources.cpu.mems: invalid list \"3-1\" (expected e.g. \"0-3,7\")"
        );
        for good in ["", "0", "0-3,7", "1,2,3", "0-0"] {
            assert!(cpuset_list(good), "{good}");
        }
        for bad in ["a", "1,,2", "-1", "1-2-3", " 1", "1,", "+1"] {
            assert!(!cpuset_list(bad), "{bad}");
        }
    }

    #[test]
    fn pids_bounds() {
        assert_eq!(
            error(resource("pids", "limit", json!(-3))),
            "linux.resources.pids.limit: must be -1 (unlimited), 0 (unset) or positive, got -3"
        );
        assert_eq!(
            error(resource("pids", "limit", json!(-2))),
            "linux.resources.pids.limit: must be -1 (unlimited), 0 (unset) or positive, got -2"
        );
        assert!(with(resource("pids", "limit", json!(-1))).is_ok());
    }

    #[test]
    fn blkio_bounds() {
        assert_eq!(
            error(resource("blockIO", "weight", json!(5))),
            "linux.resources.blockIO.weight: must be 0 (unset) or between 10 and 1000, got 5"
        );
        assert_eq!(
            error(resource(
                "blockIO",
                "weightDevice",
                json!([{"major": 8, "minor": 0, "weight": 2000}])
            )),
            "linux.resources.blockIO.weightDevice[0].weight: must be 0 (unset) or between 10 and 1000, got 2000"
        );
        assert_eq!(
            error(resource(
                "blockIO",
                "throttleReadBpsDevice",
                json!([{"major": -8, "minor": 0, "rate": 1}])
            )),
            "linux.resources.blockIO.throttleReadBpsDevice[0].major: must not be negative, got -8"
        );
    }

    #[test]
    fn hugepage_and_device_rules() {
        assert_eq!(
            error(|v| v["linux"]["resources"]["hugepageLimits"] =
                json!([{"pageSize": "2M", "limit": 1}])),
            "linux.resources.hugepageLimits[0].pageSize: invalid page size \"2M\" (expected e.g. \"2MB\")"
        );
        assert_eq!(
            error(|v| v["linux"]["resources"]["devices"][0]["access"] = json!("rwx")),
            "linux.resources.devices[0].access: invalid access \"rwx\" (expected letters of \"rwm\")"
        );
        assert_eq!(
            error(|v| v["linux"]["resources"]["devices"][0]["type"] = json!("p")),
            "linux.resources.devices[0].type: \"p\" is not a cgroup device type (expected a, b or c)"
        );
        assert_eq!(
            error(|v| v["linux"]["resources"]["devices"][0]["type"] = json!("z")),
            "linux.resources.devices[0].type: unknown device type \"z\""
        );
    }

    #[test]
    fn unified_keys() {
        assert_eq!(
            error(|v| v["linux"]["resources"]["unified"] = json!({"../escape": "1"})),
            "linux.resources.unified[\"../escape\"]: not a cgroup file name"
        );
        assert!(
            with(|v| v["linux"]["resources"]["unified"] = json!({"memory.high": "1G"})).is_ok()
        );
    }

    #[test]
    fn hostname_without_uts_namespace() {
        let no_uts = |v: &mut Value| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "uts");
        };
        assert_eq!(
            error(no_uts),
            "hostname: setting a hostname needs a uts namespace"
        );
        assert_eq!(
            error(|v| {
                no_uts(v);
                v.as_object_mut().unwrap().remove("hostname");
                v["domainname"] = json!("example.org");
            }),
            "domainname: setting a domainname needs a uts namespace"
        );
        // An empty hostname is no hostname.
        let c = with(|v| {
            no_uts(v);
            v["hostname"] = json!("");
        })
        .unwrap();
        assert_eq!(c.hostname, None);
    }

    #[test]
    fn hostname_too_long() {
        assert_eq!(
            error(|v| v["hostname"] = json!("h".repeat(65))),
            "hostname: longer than 64 bytes"
        );
    }

    #[test]
    fn oci_versions() {
        assert_eq!(
            error(|v| v["ociVersion"] = json!("2.0.0")),
            "ociVersion: unsupported version \"2.0.0\""
        );
        assert_eq!(
            error(|v| v["ociVersion"] = json!("1.3")),
            "ociVersion: unsupported version \"1.3\""
        );
        assert_eq!(
            error(|v| {
                v.as_object_mut().unwrap().remove("ociVersion");
            }),
            "ociVersion: missing"
        );
        for ok in [
            "1.0.0",
            "1.0.2-dev",
            "1.1.0",
            "1.2.0",
            "1.2.1",
            "1.2.0-rc.1+x",
        ] {
            assert!(with(|v| v["ociVersion"] = json!(ok)).is_ok(), "{ok}");
        }
        for bad in ["1.3.0", "0.9.0", "1.a.0", "1..0", "v1.0.0", "1.0.0.0"] {
            assert!(with(|v| v["ociVersion"] = json!(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn process_args() {
        assert_eq!(
            error(|v| v["process"]["args"] = json!([])),
            "process.args: must not be empty"
        );
        assert_eq!(
            error(|v| {
                v["process"].as_object_mut().unwrap().remove("args");
            }),
            "process.args: must not be empty"
        );
        assert_eq!(
            error(|v| v["process"]["args"] = json!([""])),
            "process.args[0]: must not be empty"
        );
    }

    #[test]
    fn process_without_process() {
        let c = with(|v| {
            v.as_object_mut().unwrap().remove("process");
        })
        .unwrap();
        assert!(c.process.is_none());
    }

    #[test]
    fn relative_cwd() {
        assert_eq!(
            error(|v| v["process"]["cwd"] = json!("home")),
            "process.cwd: path \"home\" is not absolute"
        );
    }

    #[test]
    fn env_entries() {
        assert_eq!(
            error(|v| v["process"]["env"][1] = json!("NOEQUALS")),
            "process.env[1]: \"NOEQUALS\" is not of the form KEY=VALUE"
        );
        assert_eq!(
            error(|v| v["process"]["env"][0] = json!("=x")),
            "process.env[0]: \"=x\" is not of the form KEY=VALUE"
        );
    }

    #[test]
    fn process_odds_and_ends() {
        assert_eq!(
            error(|v| v["process"]["oomScoreAdj"] = json!(1001)),
            "process.oomScoreAdj: must be between -1000 and 1000, got 1001"
        );
        assert_eq!(
            error(|v| v["process"]["user"]["umask"] = json!(0o1000)),
            "process.user.umask: must be at most 0o777, got 0o1000"
        );
        assert_eq!(
            error(|v| v["process"]["consoleSize"] = json!({"height": 70000, "width": 80})),
            "process.consoleSize.height: must be at most 65535, got 70000"
        );
        let c = with(|v| {
            v["process"]["consoleSize"] = json!({"height": 24, "width": 80});
            v["process"]["oomScoreAdj"] = json!(-500);
            v["process"]["user"] = json!({"uid": 1, "gid": 2, "umask": 18, "additionalGids": [3]});
        })
        .unwrap();
        let p = c.process.unwrap();
        assert_eq!(p.console_size, Some((24, 80)));
        assert_eq!(p.oom_score_adj, Some(-500));
        assert_eq!(
            p.user,
            UserConfig {
                uid: 1,
                gid: 2,
                umask: Some(18),
                additional_gids: vec![3]
            }
        );
    }

    #[test]
    fn sysctl_rules() {
        let set =
            |key: &'static str| move |v: &mut Value| v["linux"]["sysctl"] = json!({ key: "1" });
        let drop_ns = |kind: &'static str| {
            move |v: &mut Value| {
                v["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|n| n["type"] != kind);
            }
        };
        assert_eq!(
            error(|v| {
                drop_ns("ipc")(v);
                set("kernel.shmmax")(v);
            }),
            "linux.sysctl[\"kernel.shmmax\"]: needs an ipc namespace"
        );
        assert_eq!(
            error(|v| {
                drop_ns("ipc")(v);
                set("fs.mqueue.msg_max")(v);
            }),
            "linux.sysctl[\"fs.mqueue.msg_max\"]: needs an ipc namespace"
        );
        assert_eq!(
            error(|v| {
                drop_ns("network")(v);
                set("net.ipv4.ip_forward")(v);
            }),
            "linux.sysctl[\"net.ipv4.ip_forward\"]: needs a network namespace"
        );
        assert_eq!(
            error(set("vm.swappiness")),
            "linux.sysctl[\"vm.swappiness\"]: not namespaced, a container cannot set it"
        );
        assert_eq!(
            error(set("kernel.hostname")),
            "linux.sysctl[\"kernel.hostname\"]: conflicts with hostname"
        );
        assert_eq!(
            error(set("net..x")),
            "linux.sysctl[\"net..x\"]: not a valid sysctl name"
        );
        assert_eq!(
            error(set("net/ipv4/../../vm/x")),
            "linux.sysctl[\"net/ipv4/../../vm/x\"]: not a valid sysctl name"
        );
        let c = with(|v| {
            v["linux"]["sysctl"] = json!({
                "net.ipv4.ip_forward": "1",
                "net/ipv4/conf/eth0.100/forwarding": "1",
                "kernel.shm_rmid_forced": "1",
            });
        })
        .unwrap();
        assert_eq!(c.linux.sysctl.len(), 3);
        assert_eq!(c.linux.sysctl["net.ipv4.ip_forward"], "1");
    }

    #[test]
    fn devices() {
        let dev = |d: Value| move |v: &mut Value| v["linux"]["devices"] = json!([d]);
        assert_eq!(
            error(dev(
                json!({"path": "/etc/fuse", "type": "c", "major": 10, "minor": 229})
            )),
            "linux.devices[0].path: \"/etc/fuse\" is not under /dev"
        );
        assert_eq!(
            error(dev(
                json!({"path": "/dev", "type": "c", "major": 10, "minor": 229})
            )),
            "linux.devices[0].path: \"/dev\" is not under /dev"
        );
        assert_eq!(
            error(dev(
                json!({"path": "/dev/fuse", "type": "x", "major": 10, "minor": 229})
            )),
            "linux.devices[0].type: unknown device type \"x\""
        );
        assert_eq!(
            error(dev(
                json!({"path": "/dev/fuse", "type": "a", "major": 10, "minor": 229})
            )),
            "linux.devices[0].type: \"a\" is not a device node type (expected c, b, u or p)"
        );
        assert_eq!(
            error(dev(
                json!({"path": "/dev/fuse", "type": "c", "major": -1, "minor": 229})
            )),
            "linux.devices[0].major: must not be negative, got -1"
        );
        assert_eq!(
            error(|v| v["linux"]["devices"] = json!([
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                {"path": "/dev//fuse", "type": "c", "major": 10, "minor": 229}
            ])),
            "linux.devices[1].path: duplicate device \"/dev/fuse\""
        );
        let c = with(|v| {
            v["linux"]["devices"] = json!([
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 8630},
                {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "uid": 5, "gid": 6},
                {"path": "/dev/fifo", "type": "p"},
                {"path": "/dev/u", "type": "u", "major": 1, "minor": 3}
            ])
        })
        .unwrap();
        let d = &c.linux.devices;
        assert_eq!(
            d[0],
            DeviceConfig {
                path: ContainerPath::parse("/dev/fuse").unwrap(),
                kind: DeviceKind::Char,
                major: 10,
                minor: 229,
                file_mode: 0o666,
                uid: 0,
                gid: 0
            }
        );
        assert_eq!((d[1].kind, d[1].uid, d[1].gid), (DeviceKind::Block, 5, 6));
        assert_eq!(d[2].kind, DeviceKind::Fifo);
        assert_eq!(d[3].kind, DeviceKind::Char);
        assert_eq!(d[2].file_mode, 0o666);
    }

    fn seccomp_config(s: Value) -> impl FnOnce(&mut Value) {
        move |v: &mut Value| v["linux"]["seccomp"] = s
    }

    #[test]
    fn seccomp_profile() {
        let c = with(seccomp_config(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 3, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["kill"], "action": "SCMP_ACT_KILL"}
            ]
        })))
        .unwrap();
        let s = c.linux.seccomp.unwrap();
        assert_eq!(s.default_action, SeccompAction::Errno(1));
        assert_eq!(s.architectures, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]);
        assert_eq!(s.flags, ["SECCOMP_FILTER_FLAG_LOG"]);
        assert_eq!(s.rules.len(), 4);
        assert_eq!(s.rules[0].names, ["read", "write"]);
        assert_eq!(s.rules[0].action, SeccompAction::Allow);
        assert_eq!(
            s.rules[1].args,
            vec![
                SeccompArg {
                    index: 0,
                    value: 8,
                    value_two: 0,
                    op: SeccompCmp::Eq
                },
                SeccompArg {
                    index: 1,
                    value: 3,
                    value_two: 1,
                    op: SeccompCmp::MaskedEq
                }
            ]
        );
        assert_eq!(s.rules[2].action, SeccompAction::Errno(38));
        assert_eq!(s.rules[3].action, SeccompAction::KillThread);
        assert_eq!(s.listener_path, None);
    }

    #[test]
    fn seccomp_errors() {
        assert_eq!(
            error(seccomp_config(json!({"defaultAction": "SCMP_ACT_FOO"}))),
            "linux.seccomp.defaultAction: unknown seccomp action \"SCMP_ACT_FOO\""
        );
        assert_eq!(
            error(seccomp_config(json!({"defaultAction": "SCMP_ACT_ALLOW",
                                        "architectures": ["SCMP_ARCH_VAX"]}))),
            "linux.seccomp.architectures[0]: unknown seccomp architecture \"SCMP_ARCH_VAX\""
        );
        assert_eq!(
            error(seccomp_config(json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                              "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}))),
            "linux.seccomp.syscalls[0].args[0].op: unknown seccomp operator \"SCMP_CMP_LIKE\""
        );
        assert_eq!(
            error(seccomp_config(json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                              "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}))),
            "linux.seccomp.syscalls[0].args[0].index: must be below 6, got 6"
        );
        assert_eq!(
            error(seccomp_config(json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2147418112}]}))),
            "linux.seccomp.syscalls[0].errnoRet: must be at most 65535, got 2147418112"
        );
        assert_eq!(
            error(seccomp_config(json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}))),
            "linux.seccomp.syscalls[0].names: must not be empty"
        );
        assert_eq!(
            error(seccomp_config(json!({"defaultAction": "SCMP_ACT_NOTIFY"}))),
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"
        );
        assert_eq!(
            error(seccomp_config(json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["x"], "action": "SCMP_ACT_NOTIFY"}]}))),
            "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"
        );
        assert_eq!(
            error(seccomp_config(json!({"defaultAction": "SCMP_ACT_ALLOW",
                "listenerPath": "sock"}))),
            "linux.seccomp.listenerPath: path \"sock\" is not absolute"
        );
        assert_eq!(
            error(seccomp_config(json!({"defaultAction": "SCMP_ACT_ALLOW",
                "flags": ["SECCOMP_FILTER_FLAG_X"]}))),
            "linux.seccomp.flags[0]: unknown seccomp flag \"SECCOMP_FILTER_FLAG_X\""
        );
    }

    #[test]
    fn hooks_converted() {
        let c = with(|v| {
            v["hooks"] = json!({
                "prestart": [{"path": "/bin/pre"}],
                "createRuntime": [{"path": "/bin/cr", "args": ["cr", "-x"], "env": ["A=1"], "timeout": 5}],
                "poststop": [{"path": "/bin/ps"}]
            });
        })
        .unwrap();
        assert_eq!(
            c.hooks.prestart,
            vec![HookSpec {
                path: "/bin/pre".into(),
                args: vec!["/bin/pre".into()],
                env: vec![],
                timeout: None
            }]
        );
        assert_eq!(
            c.hooks.create_runtime[0],
            HookSpec {
                path: "/bin/cr".into(),
                args: vec!["cr".into(), "-x".into()],
                env: vec!["A=1".into()],
                timeout: Some(5)
            }
        );
        assert_eq!(c.hooks.poststop.len(), 1);
        assert!(c.hooks.start_container.is_empty());
    }

    #[test]
    fn hook_errors() {
        assert_eq!(
            error(|v| v["hooks"] = json!({"poststart": [{"path": "bin/x"}]})),
            "hooks.poststart[0].path: path \"bin/x\" is not absolute"
        );
        assert_eq!(
            error(|v| v["hooks"] = json!({"createContainer": [{"path": "/x", "timeout": 0}]})),
            "hooks.createContainer[0].timeout: must be between 1 and 4294967295 seconds, got 0"
        );
    }

    #[test]
    fn masked_and_readonly_paths() {
        assert_eq!(
            error(|v| v["linux"]["maskedPaths"][1] = json!("proc/kcore")),
            "linux.maskedPaths[1]: path \"proc/kcore\" is not absolute"
        );
        assert_eq!(
            error(|v| v["linux"]["readonlyPaths"][0] = json!("/proc/../etc")),
            "linux.readonlyPaths[0]: path \"/proc/../etc\" contains \"..\""
        );
        assert_eq!(
            error(|v| v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "mount")),
            "linux.maskedPaths: masking paths needs a mount namespace"
        );
    }

    #[test]
    fn rootfs_propagation_and_cgroups_path() {
        let c = with(|v| {
            v["linux"]["rootfsPropagation"] = json!("rslave");
            v["linux"]["cgroupsPath"] = json!("/berth/c1");
        })
        .unwrap();
        assert_eq!(c.linux.rootfs_propagation, Some((Propagation::Slave, true)));
        assert_eq!(c.linux.cgroups_path.as_deref(), Some("/berth/c1"));
        assert_eq!(
            error(|v| v["linux"]["rootfsPropagation"] = json!("sideways")),
            "linux.rootfsPropagation: unknown propagation \"sideways\""
        );
        assert_eq!(
            error(|v| v["linux"]["cgroupsPath"] = json!("/a/../../b")),
            "linux.cgroupsPath: path \"/a/../../b\" contains \"..\""
        );
    }

    #[test]
    fn annotations_and_no_linux() {
        let c = with(|v| {
            v["annotations"] = json!({"b": "2", "a": "1"});
            v.as_object_mut().unwrap().remove("linux");
            v.as_object_mut().unwrap().remove("hostname");
        })
        .unwrap();
        assert_eq!(c.annotations.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(c.linux, LinuxConfig::default());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = "[".repeat(10_000);
        let e = parse_config(&text, &bundle()).unwrap_err();
        assert_eq!(e.path, ".");
        assert!(
            e.problem
                .starts_with("invalid JSON: recursion limit exceeded"),
            "{e}"
        );
    }

    /// Places in the default config where the fuzz test below puts arbitrary values.
    const POINTERS: &[&str] = &[
        "",
        "/ociVersion",
        "/process",
        "/process/args",
        "/process/user",
        "/process/user/uid",
        "/process/cwd",
        "/process/env/0",
        "/process/capabilities",
        "/process/capabilities/bounding",
        "/process/capabilities/bounding/0",
        "/process/rlimits/0",
        "/process/rlimits/0/type",
        "/process/rlimits/0/soft",
        "/process/consoleSize",
        "/root",
        "/root/path",
        "/hostname",
        "/mounts",
        "/mounts/1",
        "/mounts/1/options",
        "/mounts/1/options/0",
        "/mounts/1/type",
        "/mounts/1/source",
        "/mounts/1/destination",
        "/linux",
        "/linux/namespaces",
        "/linux/namespaces/0",
        "/linux/namespaces/0/type",
        "/linux/namespaces/0/path",
        "/linux/uidMappings",
        "/linux/uidMappings/0/size",
        "/linux/resources",
        "/linux/resources/devices/0",
        "/linux/maskedPaths",
        "/linux/maskedPaths/0",
    ];

    /// Arbitrary small JSON values, with strings that look like config values.
    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "[a-zA-Z0-9_/.=:, -]{0,12}".prop_map(Value::from),
            proptest::sample::select(vec![
                "pid",
                "user",
                "bind",
                "rbind",
                "ro",
                "/dev/x",
                "..",
                "CAP_KILL",
                "RLIMIT_CPU",
                "c",
                "a",
                "SCMP_ACT_ERRNO",
                "rslave",
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(
                    proptest::sample::select(vec![
                        "type",
                        "path",
                        "destination",
                        "options",
                        "source",
                        "size",
                        "hostID",
                        "containerID",
                        "limit",
                        "bounding",
                        "uid",
                        "gid",
                        "args",
                        "cwd",
                        "user",
                    ]),
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = parse_config(&text, &bundle());
        }

        #[test]
        fn values_anywhere_never_panic(
            at in proptest::sample::select(POINTERS),
            value in arb_json(),
            rootless in proptest::bool::ANY,
        ) {
            let text = default_config_json(rootless.then_some((1000, 1000)));
            let mut v: Value = serde_json::from_str(&text).unwrap();
            if let Some(slot) = v.pointer_mut(at) {
                *slot = value;
            }
            let _ = parse_config(&v.to_string(), &bundle());
        }

        #[test]
        fn mutated_default_never_panics(pos in 0usize..3000, byte in 0u8..128) {
            let mut text = default_config_json(None).into_bytes();
            if let Some(b) = text.get_mut(pos) {
                *b = byte;
            }
            if let Ok(text) = String::from_utf8(text) {
                let _ = parse_config(&text, &bundle());
            }
        }
    }
}
