//! `berth run`'s OCI config: an image's config and the run options in, `config.json` out.
//!
//! [`build_run_config`] does what docker's daemon does when it turns an image and the flags
//! of `docker run` into the OCI spec it hands to runc: it merges the image's `Env`,
//! `Entrypoint`, `Cmd`, `WorkingDir` and `User` with the flags, adds docker's defaults
//! (`PATH` when the image has none, `HOSTNAME`, `TERM=xterm` with a terminal, docker's 14
//! default capabilities, runc's masked and read-only paths, `/dev/shm`, `/dev/mqueue`, a
//! read-only sysfs) and turns the resource flags into `linux.resources`.
//!
//! Invariants: every option is checked here, and every error names the offending value;
//! the result always passes [`crate::spec::parse_config`] (a property test holds it to
//! that). The module is pure: user *names* are not looked up here. A `-u` or image `User`
//! that names a user or group leaves [`RunConfig::user`] to be resolved by the caller
//! against the rootfs's `/etc/passwd` and `/etc/group` ([`crate::user::resolve_user`]);
//! [`RunConfig::config_json`] refuses to give the config out before that.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::plan::{CAPABILITY_NAMES, Capability, ContainerPath};
use crate::user::ResolvedUser;

/// `PATH` that docker adds when the image sets none (`oci.DefaultPathEnv`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// docker's default capabilities (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths masked in a non-privileged container (runc's `spec`; the list of berth's own
/// [`crate::spec::default_config_json`]).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only in a non-privileged container (runc's `spec` and docker's list).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// docker's default `/dev/shm` size (`--shm-size`), 64 MiB.
const SHM_SIZE: u64 = 64 << 20;
/// docker's smallest `--memory` (`linuxMinMemory`), 6 MiB.
pub const MIN_MEMORY: u64 = 6 << 20;
/// The CFS period `--cpus` is expressed in, in microseconds.
pub const CPU_PERIOD: u64 = 100_000;
/// The longest hostname the kernel takes (`__NEW_UTS_LEN`).
const MAX_HOSTNAME: usize = 64;

/// `--network`: which network namespace the container gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// `none`: a new network namespace with only a loopback link.
    #[default]
    None,
    /// `host`: the host's network namespace (no namespace entry in the config).
    Host,
}

/// The options of `berth run` that shape the OCI config; the CLI fills it in.
///
/// Strings are taken as the user typed them and checked by [`build_run_config`], so its
/// errors can name them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// The container's id (`[A-Za-z0-9_.-]+`): its cgroup is `berth/<id>`, and its first 12
    /// characters are the default hostname, as in docker.
    pub id: String,
    /// `--name`: kept by the engine, not in the config (docker keeps it out too).
    pub name: Option<String>,
    /// `--hostname`; the default is the first 12 characters of `id`.
    pub hostname: Option<String>,
    /// The root filesystem (`root.path`): absolute, or relative to the bundle.
    pub rootfs: String,
    /// `--env-file` lines then `-e` values, in that order, each `KEY=VALUE`. The caller has
    /// already read the files, dropped their comments and blank lines, and replaced a bare
    /// `KEY` by `KEY=VALUE` from its own environment (or dropped it).
    pub env: Vec<String>,
    /// `--entrypoint`: `Some(vec![])` (`--entrypoint ""`) clears the image's; either way the
    /// image's `Cmd` is dropped unless `cmd` is given, as docker does.
    pub entrypoint: Option<Vec<String>>,
    /// `CMD...` after the image name; empty keeps the image's `Cmd`.
    pub cmd: Vec<String>,
    /// `-w`: the working directory, absolute.
    pub workdir: Option<String>,
    /// `-u USER[:GROUP]`: names or numeric ids.
    pub user: Option<String>,
    /// `-t`: a terminal.
    pub tty: bool,
    /// `--memory`: docker size text (`512m`, `1g`, `1048576`); `0` is no limit.
    pub memory: Option<String>,
    /// `--cpus`: a decimal number of CPUs (`1.5`); `0` is no limit.
    pub cpus: Option<String>,
    /// `--pids-limit`: at most this many tasks; `0` or negative is no limit.
    pub pids_limit: Option<i64>,
    /// `--read-only`: the root filesystem is mounted read-only.
    pub read_only: bool,
    /// `--cap-add`: names with or without `CAP_`, any case, or `ALL`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`: names with or without `CAP_`, any case, or `ALL`.
    pub cap_drop: Vec<String>,
    /// `--privileged`: every capability, no masked or read-only paths, writable sysfs and
    /// cgroupfs, every device allowed by the device cgroup.
    pub privileged: bool,
    /// `-v SRC:DST[:MODE]`: bind mounts; `SRC` absolute, `MODE` a comma list of `ro`, `rw`
    /// and a propagation (`rprivate`, the default, `private`, `rshared`, ...).
    pub volumes: Vec<String>,
    /// `--tmpfs DST[:OPTIONS]`.
    pub tmpfs: Vec<String>,
    /// `--network`.
    pub network: NetworkMode,
}

/// A run option that cannot be turned into a config, naming the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunConfigError {
    /// The container id has a character outside `[A-Za-z0-9_.-]`, or is empty, `.` or `..`.
    #[error("invalid container id {0:?} (expected [A-Za-z0-9_.-]+)")]
    BadId(String),
    /// A hostname that is empty, too long, or has a character the kernel would keep but
    /// no resolver would accept.
    #[error("invalid hostname {0:?} (1 to 64 characters of [A-Za-z0-9.-])")]
    BadHostname(String),
    /// An environment entry without `=`, with an empty key, or with a NUL byte.
    #[error("invalid environment entry {0:?} (expected KEY=VALUE)")]
    BadEnv(String),
    /// Neither the options nor the image name a command.
    #[error("no command specified: the image has no Entrypoint or Cmd and none was given")]
    NoCommand,
    /// A command word with a NUL byte.
    #[error("command word {0:?} contains a NUL byte")]
    BadCommand(String),
    /// A working directory that is not an absolute, clean path.
    #[error("working directory {0:?} must be an absolute path without `..`")]
    BadWorkdir(String),
    /// A `USER[:GROUP]` spec with an empty part or a number out of range.
    #[error("invalid user {0:?} (expected USER[:GROUP], names or ids)")]
    BadUser(String),
    /// A memory size docker would not take.
    #[error("invalid memory size {0:?} (expected a number with an optional b, k, m, g, t or p)")]
    BadMemory(String),
    /// A memory limit below docker's minimum of 6 MiB.
    #[error("memory limit {value:?} is {bytes} bytes; the minimum is 6MB (6291456 bytes)")]
    MemoryTooLow {
        /// The text given.
        value: String,
        /// What it comes to.
        bytes: u64,
    },
    /// A `--cpus` value that is not a non-negative decimal with at most 9 decimals.
    #[error("invalid --cpus {0:?} (expected a decimal number such as 1.5)")]
    BadCpus(String),
    /// A `--cpus` value below 0.01 (a CFS quota under 1000 µs).
    #[error("--cpus {0:?} is below the minimum of 0.01")]
    CpusTooLow(String),
    /// A capability name the kernel does not have.
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    /// A `-v` whose source is not absolute: a named volume, not supported yet.
    #[error("volume {0:?}: named volumes are not supported yet; give an absolute host path")]
    NamedVolume(String),
    /// A `-v` that is not `SRC:DST[:MODE]`.
    #[error("invalid volume {0:?} (expected /HOST/PATH:/CONTAINER/PATH[:ro])")]
    BadVolume(String),
    /// A `-v` mode word other than `ro`, `rw` or a propagation.
    #[error("volume {volume:?}: unknown mode {mode:?} (expected ro, rw or a propagation)")]
    BadVolumeMode {
        /// The whole `-v` value.
        volume: String,
        /// The mode word.
        mode: String,
    },
    /// A mount destination that is not an absolute, clean path, or is `/`.
    #[error("mount destination {0:?} must be an absolute path without `..`, other than /")]
    BadDestination(String),
    /// A `--tmpfs` option that mount(8) would not take.
    #[error("--tmpfs {value:?}: invalid option {option:?}")]
    BadTmpfsOption {
        /// The whole `--tmpfs` value.
        value: String,
        /// The option.
        option: String,
    },
    /// Two `-v`/`--tmpfs` mounts on the same destination.
    #[error("duplicate mount point {0:?}")]
    DuplicateMount(String),
    /// `--hostname` with `--network host`, which docker refuses too.
    #[error("conflicting options: --hostname {0:?} and --network host")]
    HostnameWithHostNetwork(String),
    /// The image's `StopSignal` names no signal.
    #[error("image StopSignal {0:?} names no signal")]
    BadStopSignal(String),
    /// [`RunConfig::config_json`] was called without resolving a user name.
    #[error("user {0:?} must be resolved from the rootfs's /etc/passwd before use")]
    UserNotResolved(String),
}

/// The result of [`build_run_config`]: the OCI config and what the engine keeps beside it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// `config.json`, with `process.user` set to `0:0` while [`RunConfig::user`] is pending.
    spec: Value,
    /// The `USER[:GROUP]` still to resolve against the rootfs (`None`: root, or ids given
    /// as numbers, already in the spec).
    pub user: Option<String>,
    /// The signal `berth stop` sends (image `StopSignal`, default `SIGTERM`).
    pub stop_signal: i32,
    /// Image `ExposedPorts` (`80/tcp`), sorted: for the engine's records.
    pub exposed_ports: Vec<String>,
    /// Image `Volumes` (anonymous volumes, not mounted yet), sorted.
    pub volumes: Vec<String>,
    /// Image `Labels`.
    pub labels: BTreeMap<String, String>,
    /// `--name`, as given.
    pub name: Option<String>,
}

impl RunConfig {
    /// The config as JSON; `user` must be the resolution of [`RunConfig::user`] when that is
    /// pending (`process.user` and `additionalGids` then come from it), and is ignored
    /// otherwise.
    pub fn config_json(&self, user: Option<&ResolvedUser>) -> Result<Value, RunConfigError> {
        let mut spec = self.spec.clone();
        if let Some(pending) = &self.user {
            let u = user.ok_or_else(|| RunConfigError::UserNotResolved(pending.clone()))?;
            let mut obj = json!({"uid": u.uid, "gid": u.gid});
            if !u.additional_gids.is_empty() {
                obj["additionalGids"] = json!(u.additional_gids);
            }
            spec["process"]["user"] = obj;
        }
        Ok(spec)
    }
}

/// Builds the OCI config for `berth run` from the image's config and the options.
pub fn build_run_config(
    image: Option<&oci_spec::image::Config>,
    opts: &RunOptions,
) -> Result<RunConfig, RunConfigError> {
    check_id(&opts.id)?;
    let host_net = opts.network == NetworkMode::Host;
    let hostname = match (&opts.hostname, host_net) {
        (Some(h), true) => return Err(RunConfigError::HostnameWithHostNetwork(h.clone())),
        (Some(h), false) => Some(check_hostname(h)?),
        (None, true) => None,
        (None, false) => Some(opts.id.chars().take(12).collect::<String>()),
    };

    let img = |f: fn(&oci_spec::image::Config) -> Option<Vec<String>>| image.and_then(f);
    let args = command(
        img(|c| c.entrypoint().clone()),
        img(|c| c.cmd().clone()),
        opts,
    )?;
    let env = environment(
        img(|c| c.env().clone()).unwrap_or_default(),
        &opts.env,
        hostname.as_deref(),
        opts.tty,
    )?;
    let cwd = match opts
        .workdir
        .clone()
        .or_else(|| image.and_then(|c| c.working_dir().clone()))
    {
        Some(w) if !w.is_empty() => ContainerPath::parse(&w)
            .map_err(|_| RunConfigError::BadWorkdir(w.clone()))?
            .as_str()
            .to_owned(),
        _ => "/".to_owned(),
    };
    let user_text = opts
        .user
        .clone()
        .or_else(|| image.and_then(|c| c.user().clone()))
        .filter(|u| !u.is_empty());
    let (ids, pending) = match user_text {
        None => ((0, 0), None),
        Some(u) => match parse_user(&u)? {
            Some(ids) => (ids, None),
            None => ((0, 0), Some(u)),
        },
    };
    let caps = capabilities(opts)?;
    let mut resources = serde_json::Map::new();
    resources.insert(
        "devices".into(),
        json!([{"allow": opts.privileged, "access": "rwm"}]),
    );
    if let Some(m) = &opts.memory {
        let bytes = parse_memory(m)?;
        if bytes > 0 {
            if bytes < MIN_MEMORY {
                return Err(RunConfigError::MemoryTooLow {
                    value: m.clone(),
                    bytes,
                });
            }
            resources.insert("memory".into(), json!({"limit": bytes}));
        }
    }
    if let Some(c) = &opts.cpus {
        let quota = parse_cpus(c)?;
        if quota > 0 {
            resources.insert("cpu".into(), json!({"quota": quota, "period": CPU_PERIOD}));
        }
    }
    if let Some(n) = opts.pids_limit {
        resources.insert("pids".into(), json!({"limit": if n > 0 { n } else { -1 }}));
    }

    let mut namespaces = vec![json!({"type": "pid"}), json!({"type": "ipc"})];
    if !host_net {
        namespaces.push(json!({"type": "network"}));
        namespaces.push(json!({"type": "uts"}));
    }
    namespaces.push(json!({"type": "mount"}));
    namespaces.push(json!({"type": "cgroup"}));

    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": format!("berth/{}", opts.id),
        "resources": Value::Object(resources),
    });
    if !opts.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }

    let mut spec = json!({
        "ociVersion": "1.2.0",
        "root": {"path": opts.rootfs, "readonly": opts.read_only},
        "process": {
            "terminal": opts.tty,
            "user": {"uid": ids.0, "gid": ids.1},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": false,
        },
        "mounts": mounts(opts)?,
        "linux": linux,
    });
    if let Some(h) = hostname {
        spec["hostname"] = json!(h);
    }

    let stop_signal = match image.and_then(|c| c.stop_signal().clone()) {
        Some(s) if !s.is_empty() => {
            crate::signal::parse_signal(&s).map_err(|_| RunConfigError::BadStopSignal(s))?
        }
        _ => 15,
    };
    let sorted = |v: Option<Vec<String>>| {
        let mut v = v.unwrap_or_default();
        v.sort();
        v.dedup();
        v
    };
    Ok(RunConfig {
        spec,
        user: pending,
        stop_signal,
        exposed_ports: sorted(image.and_then(|c| c.exposed_ports().clone())),
        volumes: sorted(image.and_then(|c| c.volumes().clone())),
        labels: image
            .and_then(|c| c.labels().clone())
            .map(|l| l.into_iter().collect())
            .unwrap_or_default(),
        name: opts.name.clone(),
    })
}

fn check_id(id: &str) -> Result<(), RunConfigError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RunConfigError::BadId(id.to_owned()))
    }
}

fn check_hostname(h: &str) -> Result<String, RunConfigError> {
    let ok = !h.is_empty()
        && h.len() <= MAX_HOSTNAME
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
    if ok {
        Ok(h.to_owned())
    } else {
        Err(RunConfigError::BadHostname(h.to_owned()))
    }
}

/// `process.args`, as docker: `--entrypoint` replaces the image's and drops its `Cmd`;
/// `CMD...` replaces the `Cmd`.
fn command(
    image_entrypoint: Option<Vec<String>>,
    image_cmd: Option<Vec<String>>,
    opts: &RunOptions,
) -> Result<Vec<String>, RunConfigError> {
    let (entrypoint, default_cmd) = match &opts.entrypoint {
        Some(e) => (e.clone(), Vec::new()),
        None => (
            image_entrypoint.unwrap_or_default(),
            image_cmd.unwrap_or_default(),
        ),
    };
    let cmd = if opts.cmd.is_empty() {
        default_cmd
    } else {
        opts.cmd.clone()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if let Some(bad) = args.iter().find(|a| a.contains('\0')) {
        return Err(RunConfigError::BadCommand(bad.clone()));
    }
    match args.first() {
        Some(first) if !first.is_empty() => Ok(args),
        _ => Err(RunConfigError::NoCommand),
    }
}

fn env_key(entry: &str) -> Result<&str, RunConfigError> {
    match entry.split_once('=') {
        Some((k, _)) if !k.is_empty() && !entry.contains('\0') => Ok(k),
        _ => Err(RunConfigError::BadEnv(entry.to_owned())),
    }
}

/// Replaces the entry with the same key in place, or appends (docker's
/// `ReplaceOrAppendEnvValues`).
fn replace_or_append(env: &mut Vec<String>, entry: String) -> Result<(), RunConfigError> {
    let key = env_key(&entry)?.to_owned();
    match env
        .iter_mut()
        .find(|e| e.split_once('=').is_some_and(|(k, _)| k == key))
    {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
    Ok(())
}

/// `process.env`, as docker builds it: the user's entries, then the image's that they do
/// not override; laid over `PATH`, `HOSTNAME` and (with a terminal) `TERM=xterm`.
fn environment(
    image: Vec<String>,
    user: &[String],
    hostname: Option<&str>,
    tty: bool,
) -> Result<Vec<String>, RunConfigError> {
    let mut config_env: Vec<String> = Vec::new();
    for e in user {
        replace_or_append(&mut config_env, e.clone())?;
    }
    for e in image {
        let key = env_key(&e)?;
        if !config_env
            .iter()
            .any(|c| c.split_once('=').is_some_and(|(k, _)| k == key))
        {
            config_env.push(e);
        }
    }
    let mut env = vec![format!("PATH={DEFAULT_PATH}")];
    if let Some(h) = hostname {
        env.push(format!("HOSTNAME={h}"));
    }
    if tty {
        env.push("TERM=xterm".to_owned());
    }
    for e in config_env {
        replace_or_append(&mut env, e)?;
    }
    Ok(env)
}

/// `USER[:GROUP]`: `Some(ids)` when both parts are numbers (a missing group is 0), `None`
/// when a name needs looking up.
fn parse_user(spec: &str) -> Result<Option<(u32, u32)>, RunConfigError> {
    let bad = || RunConfigError::BadUser(spec.to_owned());
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if u.is_empty() || g.is_some_and(|g| g.is_empty() || g.contains(':')) || spec.contains('\0') {
        return Err(bad());
    }
    let num = |s: &str| -> Result<Option<u32>, RunConfigError> {
        if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().map(Some).map_err(|_| bad())
        } else {
            Ok(None)
        }
    };
    let uid = num(u)?;
    let gid = match g {
        Some(g) => num(g)?,
        None => Some(0),
    };
    Ok(uid.zip(gid))
}

/// Splits `DIGITS[.DIGITS]` into its integer part and its fraction scaled to `10^scale`,
/// or `None` for anything else (or more than `scale` decimals).
fn decimal(text: &str, scale: u32) -> Option<(u128, u128)> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (text.contains('.') && frac.is_empty()) {
        return None;
    }
    let frac_len = u32::try_from(frac.len()).ok().filter(|l| *l <= scale)?;
    let int: u128 = int.parse().ok()?;
    let f: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    Some((int, f * 10u128.pow(scale - frac_len)))
}

/// Parses a docker size (`units.RAMInBytes`): a decimal number, an optional space, an
/// optional unit `b`, `k`, `m`, `g`, `t` or `p` (binary multiples, any case), optionally
/// followed by `i` and/or `b` (`512m`, `1.5g`, `100MiB`, `1024`).
pub fn parse_memory(text: &str) -> Result<u64, RunConfigError> {
    let bad = || RunConfigError::BadMemory(text.to_owned());
    let lower = text.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let unit = unit.strip_prefix(' ').unwrap_or(unit);
    let (shift, rest) = match unit.chars().next() {
        Some('k') => (10, &unit[1..]),
        Some('m') => (20, &unit[1..]),
        Some('g') => (30, &unit[1..]),
        Some('t') => (40, &unit[1..]),
        Some('p') => (50, &unit[1..]),
        _ => (0, unit),
    };
    let rest = rest.strip_prefix('i').unwrap_or(rest);
    if !(rest.is_empty() || rest == "b") {
        return Err(bad());
    }
    // Up to 9 decimals are kept; docker's float math keeps about as many.
    let (int, frac) = decimal(number, 9).ok_or_else(bad)?;
    let mult = 1u128 << shift;
    let bytes = int
        .checked_mul(mult)
        .and_then(|b| b.checked_add(frac * mult / 1_000_000_000))
        .ok_or_else(bad)?;
    u64::try_from(bytes)
        .ok()
        .filter(|b| i64::try_from(*b).is_ok())
        .ok_or_else(bad)
}

/// Parses `--cpus` into a CFS quota per [`CPU_PERIOD`] (0: no limit), exactly as docker's
/// `NanoCPUs`: at most 9 decimals.
pub fn parse_cpus(text: &str) -> Result<u64, RunConfigError> {
    let bad = || RunConfigError::BadCpus(text.to_owned());
    let (int, frac) = decimal(text, 9).ok_or_else(bad)?;
    let nanos = int
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac))
        .ok_or_else(bad)?;
    if nanos == 0 {
        return Ok(0);
    }
    if nanos < 10_000_000 {
        return Err(RunConfigError::CpusTooLow(text.to_owned()));
    }
    let quota = nanos * u128::from(CPU_PERIOD) / 1_000_000_000;
    u64::try_from(quota)
        .ok()
        .filter(|q| i64::try_from(*q).is_ok())
        .ok_or_else(bad)
}

/// One `--cap-add`/`--cap-drop` word: `ALL` (`None`) or a capability.
fn cap_word(word: &str) -> Result<Option<Capability>, RunConfigError> {
    if word.eq_ignore_ascii_case("ALL") {
        return Ok(None);
    }
    Capability::from_name(word)
        .map(Some)
        .ok_or_else(|| RunConfigError::UnknownCapability(word.to_owned()))
}

/// The capability list, as moby's `caps.TweakCapabilities`: privileged gets all; `ALL` in
/// `--cap-add` is all but the drops; `ALL` in `--cap-drop` is only the adds; else the
/// defaults less the drops plus the adds. Sorted by number.
fn capabilities(opts: &RunOptions) -> Result<Vec<&'static str>, RunConfigError> {
    let adds = opts
        .cap_add
        .iter()
        .map(|w| cap_word(w))
        .collect::<Result<Vec<_>, _>>()?;
    let drops = opts
        .cap_drop
        .iter()
        .map(|w| cap_word(w))
        .collect::<Result<Vec<_>, _>>()?;
    let all = || {
        CAPABILITY_NAMES
            .iter()
            .filter_map(|n| Capability::from_name(n))
    };
    let mut set: Vec<Capability> = if opts.privileged {
        all().collect()
    } else if adds.contains(&None) {
        all().filter(|c| !drops.contains(&Some(*c))).collect()
    } else if drops.contains(&None) {
        adds.iter().flatten().copied().collect()
    } else {
        DEFAULT_CAPABILITIES
            .iter()
            .filter_map(|n| Capability::from_name(n))
            .filter(|c| !drops.contains(&Some(*c)))
            .chain(adds.iter().flatten().copied())
            .collect()
    };
    set.sort();
    set.dedup();
    Ok(set.into_iter().map(Capability::name).collect())
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": typ, "source": source, "options": options})
}

/// A user mount's destination, normalised.
fn destination(dest: &str) -> Result<ContainerPath, RunConfigError> {
    match ContainerPath::parse(dest) {
        Ok(p) if p != ContainerPath::root() => Ok(p),
        _ => Err(RunConfigError::BadDestination(dest.to_owned())),
    }
}

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// One `-v SRC:DST[:MODE]` as docker's bind mount: `rbind`, `ro` if asked, a propagation.
fn bind_volume(v: &str) -> Result<(ContainerPath, Value), RunConfigError> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [src, dst] => (*src, *dst, ""),
        [src, dst, mode] => (*src, *dst, *mode),
        [one] if !one.is_empty() => return Err(RunConfigError::NamedVolume(v.to_owned())),
        _ => return Err(RunConfigError::BadVolume(v.to_owned())),
    };
    if src.is_empty() || dst.is_empty() || v.contains('\0') {
        return Err(RunConfigError::BadVolume(v.to_owned()));
    }
    if !src.starts_with('/') {
        return Err(RunConfigError::NamedVolume(v.to_owned()));
    }
    let dst = destination(dst)?;
    let mut ro = false;
    let mut propagation = "rprivate";
    for word in mode.split(',').filter(|w| !w.is_empty()) {
        match word {
            "ro" => ro = true,
            "rw" => ro = false,
            p if PROPAGATIONS.contains(&p) => propagation = p,
            _ => {
                return Err(RunConfigError::BadVolumeMode {
                    volume: v.to_owned(),
                    mode: word.to_owned(),
                });
            }
        }
    }
    let mut options = vec!["rbind"];
    if ro {
        options.push("ro");
    }
    options.push(propagation);
    let m = mount(dst.as_str(), "bind", src, &options);
    Ok((dst, m))
}

/// One `--tmpfs DST[:OPTIONS]`: docker's `noexec,nosuid,nodev,rprivate` then the given
/// options, merged so that a later flag wins over its opposite and a later `key=` over an
/// earlier one (docker's `MergeTmpfsOptions`).
fn tmpfs_mount(t: &str) -> Result<(ContainerPath, Value), RunConfigError> {
    let (dst, opts) = t.split_once(':').unwrap_or((t, ""));
    let dst = destination(dst)?;
    let bad = |o: &str| RunConfigError::BadTmpfsOption {
        value: t.to_owned(),
        option: o.to_owned(),
    };
    let opposite = |o: &str| -> Option<String> {
        const PAIRS: [(&str, &str); 6] = [
            ("exec", "noexec"),
            ("suid", "nosuid"),
            ("dev", "nodev"),
            ("rw", "ro"),
            ("atime", "noatime"),
            ("diratime", "nodiratime"),
        ];
        PAIRS.iter().find_map(|(a, b)| {
            if o == *a {
                Some((*b).to_owned())
            } else if o == *b {
                Some((*a).to_owned())
            } else {
                None
            }
        })
    };
    let mut merged: Vec<String> = Vec::new();
    let words = ["noexec", "nosuid", "nodev", "rprivate"]
        .into_iter()
        .chain(opts.split(','))
        .filter(|w| !w.is_empty());
    for w in words {
        if w.contains('\0') || w.contains('"') {
            return Err(bad(w));
        }
        crate::mountopt::parse_mount_options(&[w.to_owned()]).map_err(|_| bad(w))?;
        let same = |o: &String| -> bool {
            if let Some((k, _)) = w.split_once('=') {
                o.split_once('=').is_some_and(|(ok, _)| ok == k)
            } else if PROPAGATIONS.contains(&w) {
                PROPAGATIONS.contains(&o.as_str())
            } else {
                o == w || opposite(w).as_deref() == Some(o.as_str())
            }
        };
        merged.retain(|o| !same(o));
        merged.push(w.to_owned());
    }
    let options: Vec<&str> = merged.iter().map(String::as_str).collect();
    let m = mount(dst.as_str(), "tmpfs", "tmpfs", &options);
    Ok((dst, m))
}

/// docker's default mounts, less those a user mount replaces, then the user mounts, parents
/// before children.
fn mounts(opts: &RunOptions) -> Result<Vec<Value>, RunConfigError> {
    let mut user: Vec<(ContainerPath, Value)> = Vec::new();
    for v in &opts.volumes {
        user.push(bind_volume(v)?);
    }
    for t in &opts.tmpfs {
        user.push(tmpfs_mount(t)?);
    }
    for (i, (d, _)) in user.iter().enumerate() {
        if user[..i].iter().any(|(e, _)| e == d) {
            return Err(RunConfigError::DuplicateMount(d.as_str().to_owned()));
        }
    }
    let rw = if opts.privileged { "rw" } else { "ro" };
    let shm_size = format!("size={SHM_SIZE}");
    let defaults = [
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", rw]),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", rw],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        ),
    ];
    let mut out: Vec<Value> = defaults
        .into_iter()
        .filter(|m| {
            !user
                .iter()
                .any(|(d, _)| m["destination"].as_str() == Some(d.as_str()))
        })
        .collect();
    user.sort_by_key(|(d, _)| d.components().count());
    out.extend(user.into_iter().map(|(_, m)| m));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::HostPath;
    use proptest::prelude::*;

    fn opts() -> RunOptions {
        RunOptions {
            id: "0123456789abcdef".into(),
            rootfs: "/var/lib/berth/containers/0123456789abcdef/merged".into(),
            ..RunOptions::default()
        }
    }

    fn image(v: Value) -> oci_spec::image::Config {
        serde_json::from_value(v).unwrap()
    }

    fn busybox() -> oci_spec::image::Config {
        image(json!({"Env": ["PATH=/bin:/usr/bin"], "Cmd": ["sh"]}))
    }

    /// Builds, resolves a pending user as uid 1000, and checks berth's parser takes it.
    fn build(img: Option<&oci_spec::image::Config>, o: &RunOptions) -> Value {
        let rc = build_run_config(img, o).unwrap();
        let user = ResolvedUser {
            uid: 1000,
            gid: 1000,
            home: Some("/home/u".into()),
            additional_gids: vec![27],
        };
        let v = rc.config_json(Some(&user)).unwrap();
        let text = serde_json::to_string(&v).unwrap();
        crate::spec::parse_config(&text, &HostPath::new("/bundle"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        v
    }

    fn pretty(v: Value) -> String {
        serde_json::to_string_pretty(&v).unwrap()
    }

    fn error(img: Option<&oci_spec::image::Config>, o: &RunOptions) -> RunConfigError {
        build_run_config(img, o).unwrap_err()
    }

    fn strs(v: &Value) -> Vec<&str> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect()
    }

    #[test]
    fn golden_minimal() {
        insta::assert_snapshot!(pretty(build(Some(&busybox()), &opts())));
    }

    #[test]
    fn golden_tty_user_workdir_env() {
        let img = image(json!({
            "Env": ["PATH=/usr/bin", "LANG=C.UTF-8", "FOO=image"],
            "Entrypoint": ["/docker-entrypoint.sh"],
            "Cmd": ["nginx", "-g", "daemon off;"],
            "WorkingDir": "/srv",
            "User": "nginx",
            "ExposedPorts": {"80/tcp": {}},
            "StopSignal": "SIGQUIT",
        }));
        let o = RunOptions {
            tty: true,
            env: vec!["FOO=user".into(), "BAR=1".into()],
            hostname: Some("web".into()),
            name: Some("web".into()),
            ..opts()
        };
        let rc = build_run_config(Some(&img), &o).unwrap();
        assert_eq!(rc.user.as_deref(), Some("nginx"));
        assert_eq!(rc.stop_signal, 3);
        assert_eq!(rc.exposed_ports, ["80/tcp"]);
        insta::assert_snapshot!(pretty(build(Some(&img), &o)));
    }

    #[test]
    fn golden_resources_and_caps() {
        let o = RunOptions {
            memory: Some("512m".into()),
            cpus: Some("1.5".into()),
            pids_limit: Some(100),
            cap_add: vec!["net_admin".into()],
            cap_drop: vec!["CAP_MKNOD".into(), "net_raw".into()],
            read_only: true,
            ..opts()
        };
        insta::assert_snapshot!(pretty(build(Some(&busybox()), &o)));
    }

    #[test]
    fn golden_privileged_host_network() {
        let o = RunOptions {
            privileged: true,
            network: NetworkMode::Host,
            ..opts()
        };
        insta::assert_snapshot!(pretty(build(Some(&busybox()), &o)));
    }

    #[test]
    fn golden_mounts() {
        let o = RunOptions {
            volumes: vec![
                "/srv/data/sub:/data/sub:ro".into(),
                "/srv/data:/data".into(),
                "/run/x.sock:/var/run/x.sock:ro,rshared".into(),
            ],
            tmpfs: vec!["/run:exec,size=64m".into(), "/dev/shm:size=1g".into()],
            ..opts()
        };
        insta::assert_snapshot!(pretty(build(Some(&busybox()), &o)));
    }

    #[test]
    fn golden_entrypoint_override_no_image() {
        let o = RunOptions {
            entrypoint: Some(vec!["/bin/echo".into()]),
            cmd: vec!["hi".into()],
            user: Some("1000:100".into()),
            workdir: Some("/tmp/../work/".into()),
            ..opts()
        };
        // `..` is refused, as ContainerPath refuses it; a clean path is kept.
        assert_eq!(
            error(None, &o),
            RunConfigError::BadWorkdir("/tmp/../work/".into())
        );
        let o = RunOptions {
            workdir: Some("/work/".into()),
            ..o
        };
        insta::assert_snapshot!(pretty(build(None, &o)));
    }

    #[test]
    fn entrypoint_and_cmd_as_docker() {
        let img = image(json!({"Entrypoint": ["/e"], "Cmd": ["c1", "c2"]}));
        let args = |o: &RunOptions| build(Some(&img), o)["process"]["args"].clone();
        assert_eq!(args(&opts()), json!(["/e", "c1", "c2"]));
        let o = RunOptions {
            cmd: vec!["x".into()],
            ..opts()
        };
        assert_eq!(args(&o), json!(["/e", "x"]));
        let o = RunOptions {
            entrypoint: Some(vec!["/f".into()]),
            ..opts()
        };
        assert_eq!(
            args(&o),
            json!(["/f"]),
            "--entrypoint drops the image's Cmd"
        );
        let o = RunOptions {
            entrypoint: Some(vec![]),
            cmd: vec!["ls".into()],
            ..opts()
        };
        assert_eq!(args(&o), json!(["ls"]));
        let o = RunOptions {
            entrypoint: Some(vec![]),
            ..opts()
        };
        assert_eq!(error(Some(&img), &o), RunConfigError::NoCommand);
        assert_eq!(error(None, &opts()), RunConfigError::NoCommand);
        let o = RunOptions {
            cmd: vec!["a\0b".into()],
            ..opts()
        };
        assert_eq!(error(None, &o), RunConfigError::BadCommand("a\0b".into()));
    }

    #[test]
    fn environment_defaults_and_overrides() {
        let env = |img: Option<&oci_spec::image::Config>, o: &RunOptions| {
            build(img, o)["process"]["env"].clone()
        };
        assert_eq!(
            env(
                None,
                &RunOptions {
                    cmd: vec!["sh".into()],
                    ..opts()
                }
            ),
            json!([format!("PATH={DEFAULT_PATH}"), "HOSTNAME=0123456789ab"])
        );
        let img = image(json!({"Env": ["A=1", "PATH=/p", "B=2"], "Cmd": ["sh"]}));
        let o = RunOptions {
            env: vec![
                "B=3".into(),
                "HOSTNAME=mine".into(),
                "C=x=y".into(),
                "B=4".into(),
            ],
            tty: true,
            ..opts()
        };
        assert_eq!(
            env(Some(&img), &o),
            json!([
                "PATH=/p",
                "HOSTNAME=mine",
                "TERM=xterm",
                "B=4",
                "C=x=y",
                "A=1"
            ])
        );
        for bad in ["NOEQUALS", "=v", "K=a\0b"] {
            let o = RunOptions {
                env: vec![bad.into()],
                ..opts()
            };
            assert_eq!(
                error(Some(&busybox()), &o),
                RunConfigError::BadEnv(bad.into())
            );
        }
    }

    #[test]
    fn hostname_and_network() {
        let v = build(Some(&busybox()), &opts());
        assert_eq!(v["hostname"], "0123456789ab");
        let types = |v: &Value| -> Vec<String> {
            v["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["type"].as_str().unwrap().to_owned())
                .collect()
        };
        assert!(types(&v).contains(&"network".to_owned()));
        let o = RunOptions {
            network: NetworkMode::Host,
            ..opts()
        };
        let v = build(Some(&busybox()), &o);
        assert!(!types(&v).contains(&"network".to_owned()));
        assert!(v.get("hostname").is_none());
        let o = RunOptions {
            network: NetworkMode::Host,
            hostname: Some("h".into()),
            ..opts()
        };
        assert_eq!(
            error(Some(&busybox()), &o),
            RunConfigError::HostnameWithHostNetwork("h".into())
        );
        for bad in ["", "a b", &"x".repeat(65)] {
            let o = RunOptions {
                hostname: Some(bad.to_owned()),
                ..opts()
            };
            assert_eq!(
                error(Some(&busybox()), &o),
                RunConfigError::BadHostname(bad.to_owned())
            );
        }
        for bad in ["", ".", "..", "a/b", "a b"] {
            let o = RunOptions {
                id: bad.into(),
                ..opts()
            };
            assert_eq!(
                error(Some(&busybox()), &o),
                RunConfigError::BadId(bad.into())
            );
        }
        assert_eq!(v["linux"]["cgroupsPath"], "berth/0123456789abcdef");
    }

    #[test]
    fn users() {
        let user = |u: &str| {
            let o = RunOptions {
                user: Some(u.into()),
                ..opts()
            };
            build_run_config(Some(&busybox()), &o)
        };
        let rc = user("1000").unwrap();
        assert_eq!(rc.user, None);
        assert_eq!(
            rc.config_json(None).unwrap()["process"]["user"],
            json!({"uid": 1000, "gid": 0})
        );
        let rc = user("5:6").unwrap();
        assert_eq!(
            rc.config_json(None).unwrap()["process"]["user"],
            json!({"uid": 5, "gid": 6})
        );
        for named in ["alice", "alice:staff", "1000:staff", "alice:10"] {
            let rc = user(named).unwrap();
            assert_eq!(rc.user.as_deref(), Some(named));
            assert_eq!(
                rc.config_json(None).unwrap_err(),
                RunConfigError::UserNotResolved(named.into())
            );
        }
        // A resolution from the rootfs's files fills the ids in.
        let passwd = crate::user::parse_passwd("alice:x:1000:1000::/home/alice:/bin/sh").unwrap();
        let group = crate::user::parse_group("staff:x:50:alice").unwrap();
        let rc = user("alice").unwrap();
        let resolved = crate::user::resolve_user("alice", &passwd, &group).unwrap();
        assert_eq!(
            rc.config_json(Some(&resolved)).unwrap()["process"]["user"],
            json!({"uid": 1000, "gid": 1000, "additionalGids": [50]})
        );
        for bad in [":", "a:", ":b", "a:b:c", "99999999999"] {
            assert_eq!(user(bad).unwrap_err(), RunConfigError::BadUser(bad.into()));
        }
        // -u "" falls back to the image's user, then root.
        let img = image(json!({"Cmd": ["sh"], "User": "7"}));
        let o = RunOptions {
            user: Some(String::new()),
            ..opts()
        };
        assert_eq!(build(Some(&img), &o)["process"]["user"]["uid"], 0);
        assert_eq!(build(Some(&img), &opts())["process"]["user"]["uid"], 7);
    }

    #[test]
    fn workdir() {
        let img = image(json!({"Cmd": ["sh"], "WorkingDir": "/app"}));
        assert_eq!(build(Some(&img), &opts())["process"]["cwd"], "/app");
        let o = RunOptions {
            workdir: Some("/x//y".into()),
            ..opts()
        };
        assert_eq!(build(Some(&img), &o)["process"]["cwd"], "/x/y");
        for bad in ["rel", "/a/../b"] {
            let o = RunOptions {
                workdir: Some(bad.into()),
                ..opts()
            };
            assert_eq!(
                error(Some(&img), &o),
                RunConfigError::BadWorkdir(bad.into())
            );
        }
        let img = image(json!({"Cmd": ["sh"], "WorkingDir": "relative"}));
        assert_eq!(
            error(Some(&img), &opts()),
            RunConfigError::BadWorkdir("relative".into())
        );
    }

    #[test]
    fn memory_sizes() {
        let cases = [
            ("1024", 1024),
            ("512m", 512 << 20),
            ("512M", 512 << 20),
            ("512mb", 512 << 20),
            ("512MiB", 512 << 20),
            ("1g", 1 << 30),
            ("1.5g", 3 << 29),
            ("2 GB", 2 << 30),
            ("10k", 10240),
            ("7b", 7),
            ("1t", 1 << 40),
            ("1p", 1 << 50),
            ("0", 0),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_memory(text), Ok(bytes), "{text}");
        }
        for bad in [
            "", "m", "-1m", "1x", "1mm", "1.m", ".5m", "1..2g", "1  m", "9999999p", "1gbb",
        ] {
            assert_eq!(
                parse_memory(bad),
                Err(RunConfigError::BadMemory(bad.into())),
                "{bad}"
            );
        }
        let o = RunOptions {
            memory: Some("4m".into()),
            ..opts()
        };
        assert_eq!(
            error(Some(&busybox()), &o),
            RunConfigError::MemoryTooLow {
                value: "4m".into(),
                bytes: 4 << 20
            }
        );
        let o = RunOptions {
            memory: Some("0".into()),
            ..opts()
        };
        assert!(build(Some(&busybox()), &o)["linux"]["resources"]["memory"].is_null());
        let o = RunOptions {
            memory: Some("1g".into()),
            ..opts()
        };
        assert_eq!(
            build(Some(&busybox()), &o)["linux"]["resources"]["memory"],
            json!({"limit": 1u64 << 30})
        );
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1.5"), Ok(150_000));
        assert_eq!(parse_cpus("0.01"), Ok(1000));
        assert_eq!(parse_cpus("2"), Ok(200_000));
        assert_eq!(parse_cpus("0"), Ok(0));
        assert_eq!(
            parse_cpus("0.000000001"),
            Err(RunConfigError::CpusTooLow("0.000000001".into()))
        );
        for bad in [
            "",
            "-1",
            "1.5.2",
            "a",
            "1.0000000001",
            "1e3",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse_cpus(bad),
                Err(RunConfigError::BadCpus(bad.into())),
                "{bad}"
            );
        }
        let o = RunOptions {
            cpus: Some("0.5".into()),
            ..opts()
        };
        assert_eq!(
            build(Some(&busybox()), &o)["linux"]["resources"]["cpu"],
            json!({"quota": 50_000, "period": 100_000})
        );
        let o = RunOptions {
            cpus: Some("0.001".into()),
            ..opts()
        };
        assert_eq!(
            error(Some(&busybox()), &o),
            RunConfigError::CpusTooLow("0.001".into())
        );
    }

    #[test]
    fn pids_limit() {
        let pids = |n| {
            let o = RunOptions {
                pids_limit: Some(n),
                ..opts()
            };
            build(Some(&busybox()), &o)["linux"]["resources"]["pids"].clone()
        };
        assert_eq!(pids(10), json!({"limit": 10}));
        assert_eq!(pids(0), json!({"limit": -1}));
        assert_eq!(pids(-5), json!({"limit": -1}));
    }

    #[test]
    fn read_only_root() {
        let o = RunOptions {
            read_only: true,
            ..opts()
        };
        assert_eq!(build(Some(&busybox()), &o)["root"]["readonly"], true);
        assert_eq!(build(Some(&busybox()), &opts())["root"]["readonly"], false);
    }

    fn caps_of(o: &RunOptions) -> Vec<String> {
        let v = build(Some(&busybox()), o);
        let c = &v["process"]["capabilities"];
        assert_eq!(c["bounding"], c["effective"]);
        assert_eq!(c["bounding"], c["permitted"]);
        strs(&c["bounding"])
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn capabilities_as_docker() {
        let mut default: Vec<String> = DEFAULT_CAPABILITIES.map(str::to_owned).to_vec();
        default.sort_by_key(|n| Capability::from_name(n).unwrap());
        assert_eq!(caps_of(&opts()), default);
        let with = |add: &[&str], drop: &[&str]| {
            caps_of(&RunOptions {
                cap_add: add.iter().map(|s| (*s).to_owned()).collect(),
                cap_drop: drop.iter().map(|s| (*s).to_owned()).collect(),
                ..opts()
            })
        };
        let c = with(&["sys_admin"], &["chown"]);
        assert!(c.contains(&"CAP_SYS_ADMIN".to_owned()));
        assert!(!c.contains(&"CAP_CHOWN".to_owned()));
        assert_eq!(c.len(), 14);
        assert_eq!(with(&["ALL"], &[]).len(), CAPABILITY_NAMES.len());
        assert_eq!(with(&["all"], &["kill"]).len(), CAPABILITY_NAMES.len() - 1);
        assert_eq!(
            with(&["NET_ADMIN", "kill"], &["ALL"]),
            ["CAP_KILL", "CAP_NET_ADMIN"]
        );
        assert!(with(&[], &["ALL"]).is_empty());
        // Added and dropped: the add wins, as in moby (drops first, then adds).
        assert!(with(&["chown"], &["chown"]).contains(&"CAP_CHOWN".to_owned()));
        let o = RunOptions {
            cap_add: vec!["CAP_NOPE".into()],
            ..opts()
        };
        assert_eq!(
            error(Some(&busybox()), &o),
            RunConfigError::UnknownCapability("CAP_NOPE".into())
        );
        let o = RunOptions {
            cap_drop: vec!["bogus".into()],
            ..opts()
        };
        assert_eq!(
            error(Some(&busybox()), &o),
            RunConfigError::UnknownCapability("bogus".into())
        );
    }

    #[test]
    fn privileged() {
        let o = RunOptions {
            privileged: true,
            cap_drop: vec!["ALL".into()],
            ..opts()
        };
        assert_eq!(caps_of(&o).len(), CAPABILITY_NAMES.len());
        let v = build(Some(&busybox()), &o);
        assert!(v["linux"].get("maskedPaths").is_none());
        assert!(v["linux"].get("readonlyPaths").is_none());
        assert_eq!(
            v["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        let sys = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys")
            .unwrap();
        assert!(strs(&sys["options"]).contains(&"rw"));
        let v = build(Some(&busybox()), &opts());
        assert_eq!(strs(&v["linux"]["maskedPaths"]), MASKED_PATHS);
        assert_eq!(strs(&v["linux"]["readonlyPaths"]), READONLY_PATHS);
        assert_eq!(
            v["linux"]["resources"]["devices"],
            json!([{"allow": false, "access": "rwm"}])
        );
    }

    fn mounts_of(o: &RunOptions) -> Vec<Value> {
        build(Some(&busybox()), o)["mounts"]
            .as_array()
            .unwrap()
            .clone()
    }

    #[test]
    fn volumes() {
        let m = |v: &str| {
            mounts_of(&RunOptions {
                volumes: vec![v.into()],
                ..opts()
            })
            .last()
            .unwrap()
            .clone()
        };
        assert_eq!(
            m("/h:/c"),
            json!({"destination": "/c", "type": "bind", "source": "/h", "options": ["rbind", "rprivate"]})
        );
        assert_eq!(
            m("/h:/c/:ro")["options"],
            json!(["rbind", "ro", "rprivate"])
        );
        assert_eq!(m("/h:/c/")["destination"], "/c");
        assert_eq!(m("/h:/c:rw,slave")["options"], json!(["rbind", "slave"]));
        let err = |v: &str| {
            error(
                Some(&busybox()),
                &RunOptions {
                    volumes: vec![v.into()],
                    ..opts()
                },
            )
        };
        assert_eq!(
            err("data:/c"),
            RunConfigError::NamedVolume("data:/c".into())
        );
        assert_eq!(err("./d:/c"), RunConfigError::NamedVolume("./d:/c".into()));
        assert_eq!(err("/anon"), RunConfigError::NamedVolume("/anon".into()));
        for bad in ["", "/a:", ":/b", "/a:/b:ro:x"] {
            assert_eq!(err(bad), RunConfigError::BadVolume(bad.into()), "{bad}");
        }
        assert_eq!(err("/a:rel"), RunConfigError::BadDestination("rel".into()));
        assert_eq!(err("/a:/"), RunConfigError::BadDestination("/".into()));
        assert_eq!(
            err("/a:/x/../y"),
            RunConfigError::BadDestination("/x/../y".into())
        );
        assert_eq!(
            err("/a:/b:z"),
            RunConfigError::BadVolumeMode {
                volume: "/a:/b:z".into(),
                mode: "z".into()
            }
        );
        let o = RunOptions {
            volumes: vec!["/a:/d".into(), "/b:/d/".into()],
            ..opts()
        };
        assert_eq!(
            error(Some(&busybox()), &o),
            RunConfigError::DuplicateMount("/d".into())
        );
        let o = RunOptions {
            volumes: vec!["/a:/d".into()],
            tmpfs: vec!["/d".into()],
            ..opts()
        };
        assert_eq!(
            error(Some(&busybox()), &o),
            RunConfigError::DuplicateMount("/d".into())
        );
    }

    #[test]
    fn tmpfs() {
        let m = |t: &str| {
            mounts_of(&RunOptions {
                tmpfs: vec![t.into()],
                ..opts()
            })
            .last()
            .unwrap()
            .clone()
        };
        assert_eq!(
            m("/t"),
            json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                   "options": ["noexec", "nosuid", "nodev", "rprivate"]})
        );
        assert_eq!(
            m("/t:exec,size=1m,mode=700,size=2m,shared")["options"],
            json!(["nosuid", "nodev", "exec", "mode=700", "size=2m", "shared"])
        );
        let err = |t: &str| {
            error(
                Some(&busybox()),
                &RunOptions {
                    tmpfs: vec![t.into()],
                    ..opts()
                },
            )
        };
        assert_eq!(err("rel"), RunConfigError::BadDestination("rel".into()));
        assert_eq!(
            err("/t:bogus"),
            RunConfigError::BadTmpfsOption {
                value: "/t:bogus".into(),
                option: "bogus".into()
            }
        );
        // A user mount on /dev/shm replaces docker's default one.
        let ms = mounts_of(&RunOptions {
            tmpfs: vec!["/dev/shm".into()],
            ..opts()
        });
        let shm: Vec<_> = ms
            .iter()
            .filter(|m| m["destination"] == "/dev/shm")
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0]["source"], "tmpfs");
    }

    #[test]
    fn image_metadata() {
        let img = image(json!({
            "Cmd": ["sh"],
            "ExposedPorts": {"443/tcp": {}, "80/tcp": {}},
            "Volumes": {"/data": {}},
            "Labels": {"a": "1"},
            "StopSignal": "RTMIN+3",
        }));
        let rc = build_run_config(Some(&img), &opts()).unwrap();
        assert_eq!(rc.exposed_ports, ["443/tcp", "80/tcp"]);
        assert_eq!(rc.volumes, ["/data"]);
        assert_eq!(rc.labels, BTreeMap::from([("a".into(), "1".into())]));
        assert_eq!(rc.stop_signal, 37);
        let img = image(json!({"Cmd": ["sh"], "StopSignal": "SIGNOPE"}));
        assert_eq!(
            error(Some(&img), &opts()),
            RunConfigError::BadStopSignal("SIGNOPE".into())
        );
        assert_eq!(
            build_run_config(Some(&busybox()), &opts())
                .unwrap()
                .stop_signal,
            15
        );
        let img = image(json!({"Cmd": ["sh"], "Env": ["bad"]}));
        assert_eq!(
            error(Some(&img), &opts()),
            RunConfigError::BadEnv("bad".into())
        );
    }

    fn arb_options() -> impl Strategy<Value = RunOptions> {
        let cap = prop::sample::select(vec![
            "ALL",
            "all",
            "chown",
            "CAP_SYS_ADMIN",
            "net_raw",
            "KILL",
            "bpf",
            "setuid",
        ]);
        let caps = prop::collection::vec(cap.prop_map(str::to_owned), 0..4);
        let mode = prop::sample::select(vec!["", ":ro", ":rw", ":ro,rshared", ":slave"]);
        let volume = ("[a-z]{1,4}", mode);
        let tmp_opt = prop::sample::select(vec!["", ":size=1m", ":exec,mode=700", ":ro,noexec"]);
        let tmpfs = tmp_opt;
        let unit = prop::sample::select(vec!["m", "g", "MiB", "mb"]);
        (
            (
                any::<bool>(),
                prop::option::of("[a-z][a-z0-9-]{0,20}"),
                prop::collection::vec("[A-Z_]{1,5}=[a-z ]{0,5}", 0..4),
                prop::option::of(prop::collection::vec("/bin/[a-z]{1,5}", 0..2)),
                prop::collection::vec("[a-z0-9 -]{1,6}", 0..3),
                prop::option::of("/[a-z]{1,5}(/[a-z]{1,5})?"),
                prop::option::of(prop::sample::select(vec![
                    "0",
                    "1000",
                    "1000:1000",
                    "65534:0",
                    "alice",
                    "bob:staff",
                ])),
            ),
            (
                any::<bool>(),
                prop::option::of((6u32..4096, unit).prop_map(|(n, u)| format!("{n}{u}"))),
                prop::option::of((0u32..64, 0u32..100).prop_map(|(i, f)| format!("{i}.{f:02}"))),
                prop::option::of(-2i64..100_000),
                any::<bool>(),
                caps.clone(),
                caps,
                any::<bool>(),
            ),
            (
                prop::collection::btree_map("[a-z]{1,4}", volume, 0..3),
                prop::collection::btree_map("[a-z]{1,4}", tmpfs, 0..3),
                any::<bool>(),
            ),
        )
            .prop_map(
                |(
                    (tty, hostname, env, entrypoint, cmd, workdir, user),
                    (read_only, memory, cpus, pids_limit, privileged, cap_add, cap_drop, host),
                    (volumes, tmpfs, always_cmd),
                )| {
                    let mut cmd = cmd;
                    if always_cmd || entrypoint.as_ref().is_some_and(Vec::is_empty) {
                        cmd.insert(0, "/bin/sh".to_owned());
                    }
                    RunOptions {
                        tty,
                        hostname: if host { None } else { hostname },
                        env,
                        entrypoint,
                        cmd,
                        workdir,
                        user: user.map(str::to_owned),
                        read_only,
                        memory,
                        cpus,
                        pids_limit,
                        privileged,
                        cap_add,
                        cap_drop,
                        volumes: volumes
                            .into_iter()
                            .map(|(d, (s, m))| format!("/src/{s}:/mnt/v/{d}{m}"))
                            .collect(),
                        tmpfs: tmpfs
                            .into_iter()
                            .map(|(d, o)| format!("/mnt/t/{d}{o}"))
                            .collect(),
                        network: if host {
                            NetworkMode::Host
                        } else {
                            NetworkMode::None
                        },
                        ..opts()
                    }
                },
            )
    }

    fn host_v2() -> crate::HostFacts {
        let all = || vec!["cpu".to_owned(), "memory".to_owned(), "pids".to_owned()];
        crate::HostFacts {
            cgroup: crate::CgroupLayout::V2 {
                mount: HostPath::new("/sys/fs/cgroup"),
                controllers: all(),
                subtree_control: all(),
            },
            root_in_init_userns: true,
            euid: 0,
            egid: 0,
            namespaces: crate::plan::Namespace::ALL.to_vec(),
            clone_into_cgroup: false,
            seccomp: true,
            hugepage_sizes: Vec::new(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            max_shrink_iters: 2048,
            ..ProptestConfig::default()
        })]

        #[test]
        fn valid_options_give_a_config_berth_accepts(o in arb_options(), with_image in any::<bool>()) {
            let img = busybox();
            let img = with_image.then_some(&img);
            let rc = build_run_config(img, &o);
            // The only refusal left is a zero-to-tiny --cpus or a missing command.
            let rc = match rc {
                Err(RunConfigError::CpusTooLow(_) | RunConfigError::NoCommand) => return Ok(()),
                other => other.unwrap(),
            };
            let resolved = ResolvedUser { uid: 1, gid: 2, home: None, additional_gids: vec![3] };
            let v = rc.config_json(Some(&resolved)).unwrap();
            let text = serde_json::to_string(&v).unwrap();
            let parsed = crate::spec::parse_config(&text, &HostPath::new("/bundle"));
            let config = match parsed {
                Ok(c) => c,
                Err(e) => return Err(TestCaseError::fail(format!("{e}\n{text}"))),
            };
            // berth's create planner takes it too, on a cgroup v2 host as root.
            let req = crate::config::CreateRequest {
                id: o.id.clone(),
                bundle: HostPath::new("/bundle"),
                state_root: HostPath::new("/run/berth"),
                config,
                // -t: the engine hands the runtime a console socket.
                options: crate::config::CreateOptions {
                    console_socket: o.tty.then(|| HostPath::new("/run/berth/console.sock")),
                    ..crate::config::CreateOptions::default()
                },
                home: None,
            };
            let plan = crate::planner::create::plan_create(&req, &host_v2());
            prop_assert!(plan.is_ok(), "{:?}\n{}", plan.err(), text);
            prop_assert_eq!(build_run_config(img, &o), build_run_config(img, &o));
        }
    }
}
