//! berth's engine: docker-style containers made from images, on top of the runtime.
//!
//! The engine is to berth's runtime what docker is to runc. It keeps images and containers
//! in the [`Store`], writes each container's bundle (an OCI `config.json` made by
//! [`berth_core::runconfig`] from the image and the `berth run` flags), and leaves the
//! container to a **monitor** process ([`monitor`], berth's engine binary in that role, as
//! conmon is podman's): the monitor mounts the overlay root file system (a plan from
//! [`berth_core::planner::image_mount`]), drives the runtime binary (`berth create`,
//! `start`, `delete`), holds the container's stdout and stderr and writes them to a
//! json-file log, reaps it as a subreaper, records its exit, and honours `--rm`.
//!
//! Layout: `<data root>/containers/<id>/` holds `config.json`, `rootfs/` (the overlay
//! mount point), `upper/`, `work/`, `container.log` and `monitor.log`; the runtime keeps
//! its state under `<exec root>/runtime` (its `--root`), apart from containers made with
//! the runtime directly.
//!
//! Invariant: every container has a row before anything of it exists on the host, and the
//! row goes last, so whatever a crash leaves is found from the rows and [`Engine::remove`]
//! (`berth rm -f`) cleans it: runtime state, mount, directories, row.

pub mod cp;
pub mod monitor;
pub mod network;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_core::config::{CreateOptions, CreateRequest};
use berth_core::exec::execute;
use berth_core::network::{HostsEntry, PortMapping};
use berth_core::plan::{HostPath, Plan, PlanBuilder};
use berth_core::planner::image_mount::plan_rootfs;
use berth_core::runconfig::{RunConfigError, RunOptions, build_run_config};
use berth_core::user::{ResolvedUser, UserError, parse_group, parse_passwd, resolve_user};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

use crate::store::containers::{ContainerRecord, ContainerState, StateChange, valid_name};
use crate::store::{ImageId, Store, StoreError};

/// The exec root the engine uses when none is given.
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth-engine";

/// Why an engine operation failed; each variant names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store refused (unknown image or container, name in use, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The flags cannot make a config.
    #[error(transparent)]
    RunConfig(#[from] RunConfigError),
    /// `-u` names a user or group the image does not have.
    #[error("image {image}: {source}")]
    User {
        /// The image.
        image: String,
        /// Why.
        #[source]
        source: UserError,
    },
    /// The image's config blob is not an image config.
    #[error("image {image}: its config is not valid JSON of an image config: {source}")]
    ImageConfig {
        /// The image.
        image: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A file system call failed.
    #[error("{op} {path:?} failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The runtime binary failed.
    #[error("runtime: berth {command} failed: {message}")]
    Runtime {
        /// The runtime command (`create`, `kill`, ...).
        command: String,
        /// What it said on stderr, or how it ended.
        message: String,
    },
    /// The monitor did not report a started container.
    #[error("container {id}: {message}")]
    Start {
        /// The container.
        id: String,
        /// What the monitor reported.
        message: String,
    },
    /// The operation needs the container stopped.
    #[error(
        "container {name} is {state}: stop it first, or force the removal (berth rm -f {name})"
    )]
    Running {
        /// Its name.
        name: String,
        /// Its state.
        state: ContainerState,
    },
    /// The operation needs the container running.
    #[error("container {name} is not running")]
    NotRunning {
        /// Its name.
        name: String,
    },
    /// The container's settings row is not what the engine writes.
    #[error("container {id}: its settings are not valid: {source}")]
    Settings {
        /// The container.
        id: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A plan could not be made (the message names why).
    #[error("planning: {0}")]
    Plan(String),
    /// `network create --subnet` with a subnet one of berth's networks already covers.
    #[error("network {name}: subnet {subnet} overlaps network {other}'s subnet {theirs}")]
    SubnetOverlap {
        /// The network being made.
        name: String,
        /// Its subnet.
        subnet: String,
        /// The network already there.
        other: String,
        /// That network's subnet.
        theirs: String,
    },
    /// The container did not exit in time after SIGKILL.
    #[error("container {name} did not exit within {seconds} s of SIGKILL")]
    StopTimeout {
        /// Its name.
        name: String,
        /// How long berth waited.
        seconds: u64,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> EngineError + 'a {
    move |source| EngineError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// What the engine keeps of a container beside its config (the `settings` column).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The container's command line (`process.args`), for `berth ps`.
    pub args: Vec<String>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `-i`: stdin stays open (the monitor passes its own stdin).
    pub interactive: bool,
    /// `-t`.
    pub tty: bool,
    /// The signal `berth stop` sends first.
    pub stop_signal: i32,
    /// The image's layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    /// Rotate the log at this size (bytes).
    pub log_max_size: Option<u64>,
    /// The bridge networks it joined (names), in order.
    #[serde(default)]
    pub networks: Vec<String>,
    /// `-p`: its published ports.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// `--add-host`: lines of its `/etc/hosts`.
    #[serde(default)]
    pub extra_hosts: Vec<HostsEntry>,
    /// Keep this many log files.
    pub log_max_files: u32,
}

/// What `berth run` (or `create`) asks for.
#[derive(Clone, Debug, Default)]
pub struct NewContainer {
    /// The image, as the user named it.
    pub image: String,
    /// The run options (the id is filled in by the engine).
    pub options: RunOptions,
    /// `--rm`.
    pub auto_remove: bool,
    /// `-i`.
    pub interactive: bool,
    /// `--log-opt max-size=`: rotate the log at this many bytes.
    pub log_max_size: Option<u64>,
    /// `--log-opt max-file=`: keep this many log files (at least 1).
    pub log_max_files: u32,
    /// With `-t`: the pty's first size (rows, columns), the user's terminal's.
    pub console_size: Option<(u16, u16)>,
    /// `--network NAME` of a bridge network (`none` and `host` are in the options).
    pub network: Option<String>,
    /// `--ip`.
    pub ip: Option<IpAddr>,
    /// `--network-alias`.
    pub aliases: Vec<String>,
    /// `-p`.
    pub ports: Vec<PortMapping>,
    /// `--add-host`.
    pub extra_hosts: Vec<HostsEntry>,
}

/// A container's config and settings, before anything of it exists.
struct Prepared {
    id: String,
    image: ImageId,
    config: serde_json::Value,
    settings: Settings,
}

/// The engine over one data root and exec root, driving one runtime binary.
#[derive(Clone, Debug)]
pub struct Engine {
    /// `--data-root`: the store and the containers' directories.
    pub data_root: PathBuf,
    /// `--exec-root`: the runtime's state root lives here.
    pub exec_root: PathBuf,
    /// The runtime binary (berth's own `berth`).
    pub runtime: PathBuf,
    /// The engine binary (for the monitor role).
    pub engine: PathBuf,
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A new container id: 32 random bytes as 64 hex digits.
pub(crate) fn new_id() -> Result<String, EngineError> {
    let path = Path::new("/dev/urandom");
    let mut bytes = [0u8; 32];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io_err("read", path))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

const ADJECTIVES: [&str; 16] = [
    "brave", "calm", "eager", "fond", "gentle", "happy", "keen", "lucid", "merry", "nimble",
    "proud", "quiet", "sharp", "stoic", "tender", "witty",
];
const NAMES: [&str; 16] = [
    "babbage", "curie", "darwin", "euler", "fermat", "gauss", "hopper", "kepler", "lovelace",
    "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak",
];

/// A docker-style generated name (`adjective_scientist`), from the id's bytes, with a
/// number after it on the `attempt`-th try.
fn generated_name(id: &str, attempt: u32) -> String {
    let byte = |i: usize| usize::from_str_radix(id.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0);
    let base = format!("{}_{}", ADJECTIVES[byte(0) % 16], NAMES[byte(2) % 16]);
    if attempt == 0 {
        base
    } else {
        format!("{base}{attempt}")
    }
}

/// The topmost layer's copy of `path` (relative), as the overlay would show it (a whiteout
/// or an opaque directory above hides the file; berth reads only regular files here).
fn read_from_layers(layers: &[PathBuf], path: &str) -> Option<String> {
    for layer in layers.iter().rev() {
        let file = layer.join(path);
        match fs::symlink_metadata(&file) {
            Ok(m) if m.is_file() => return fs::read_to_string(&file).ok(),
            Ok(_) => return None,
            Err(_) => continue,
        }
    }
    None
}

impl Engine {
    /// The runtime's state root (its `--root`).
    pub fn runtime_root(&self) -> PathBuf {
        self.exec_root.join("runtime")
    }

    /// Container `id`'s directory (its bundle).
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.data_root.join("containers").join(id)
    }

    /// Opens the store.
    pub fn store(&self) -> Result<Store, EngineError> {
        Ok(Store::open(&self.data_root)?)
    }

    /// A container's settings.
    pub fn settings(c: &ContainerRecord) -> Result<Settings, EngineError> {
        serde_json::from_str(&c.settings).map_err(|source| EngineError::Settings {
            id: c.id.clone(),
            source,
        })
    }

    /// Runs the runtime binary with `args` (after `--root`), its stdio as given; fails
    /// with what it printed when it exits non-zero.
    pub fn runtime_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.runtime);
        cmd.arg("--root").arg(self.runtime_root()).args(args);
        cmd
    }

    /// Runs a runtime command to completion, capturing its stderr for the error.
    pub fn runtime_ok(&self, args: &[&str]) -> Result<String, EngineError> {
        let out = self
            .runtime_command(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io_err("run", &self.runtime))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let text = String::from_utf8_lossy(&out.stderr);
            Err(EngineError::Runtime {
                command: args.first().copied().unwrap_or("").to_owned(),
                message: text
                    .trim()
                    .trim_start_matches("berth: ")
                    .to_owned()
                    .chars()
                    .take(2000)
                    .collect(),
            })
        }
    }

    /// Makes a container from an image: a row (its name checked), its directory, its
    /// `config.json`. Nothing runs yet ([`Engine::start`] hands it to a monitor). On
    /// failure nothing is left.
    pub fn create(&self, req: &NewContainer) -> Result<ContainerRecord, EngineError> {
        let mut store = self.store()?;
        let Prepared {
            id,
            image,
            config,
            settings,
        } = self.prepare(&store, req)?;
        let mut record = ContainerRecord {
            id: id.clone(),
            name: String::new(),
            image,
            image_ref: req.image.clone(),
            created: now_secs(),
            state: ContainerState::Created,
            pid: None,
            exit_code: None,
            started: None,
            finished: None,
            settings: serde_json::to_string(&settings).map_err(|source| EngineError::Settings {
                id: id.clone(),
                source,
            })?,
        };
        match &req.options.name {
            Some(name) => {
                record.name = name.clone();
                store.add_container(&record)?;
            }
            None => {
                let mut attempt = 0;
                loop {
                    record.name = generated_name(&id, attempt);
                    match store.add_container(&record) {
                        Ok(()) => break,
                        Err(StoreError::NameInUse { .. }) if attempt < 1000 => attempt += 1,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        drop(store);
        let result = self.setup(&record, req, config);
        if let Err(err) = result {
            if let Ok(mut store) = self.store() {
                let _ = self.cleanup(&mut store, &record);
            }
            return Err(err);
        }
        Ok(record)
    }

    /// Writes the bundle of a recorded container and, for a bridge network, its resolver
    /// files and its endpoint (which makes its sandbox).
    fn setup(
        &self,
        record: &ContainerRecord,
        req: &NewContainer,
        mut config: serde_json::Value,
    ) -> Result<(), EngineError> {
        let id = &record.id;
        let dir = self.container_dir(id);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let network = match &req.network {
            Some(name) => Some(self.network_for_run(name)?),
            None => None,
        };
        if req.network.is_none() && !req.ports.is_empty() {
            return Err(EngineError::Plan(
                "-p needs a bridge network (--network bridge or a network's name)".to_owned(),
            ));
        }
        if let Some((_, net)) = &network {
            let hostname = config["hostname"].as_str().unwrap_or(&id[..12]).to_owned();
            self.resolver_files(&dir, &hostname, &req.extra_hosts)?;
            self.network_config(&mut config, id);
            self.write_bundle(id, &config)?;
            self.join(
                net,
                &network::Join {
                    id,
                    name: &record.name,
                    hostname: &hostname,
                    ip: req.ip,
                    aliases: &req.aliases,
                    ports: &req.ports,
                },
            )?;
            return Ok(());
        }
        self.write_bundle(id, &config)
    }

    /// Points a config at container `id`'s sandbox (its network namespace file) and
    /// bind-mounts its resolver files (`hosts`, `resolv.conf`, `hostname` in its
    /// directory, see [`Engine::resolver_files`]).
    fn network_config(&self, config: &mut serde_json::Value, id: &str) {
        let dir = self.container_dir(id);
        if let Some(list) = config["mounts"].as_array_mut() {
            for (file, dest) in [
                ("hosts", "/etc/hosts"),
                ("resolv.conf", "/etc/resolv.conf"),
                ("hostname", "/etc/hostname"),
            ] {
                list.push(serde_json::json!({
                    "destination": dest,
                    "type": "bind",
                    "source": dir.join(file),
                    "options": ["rbind", "rprivate"],
                }));
            }
        }
        let netns = self.netns_path(id);
        if let Some(namespaces) = config["linux"]["namespaces"].as_array_mut() {
            for ns in namespaces.iter_mut() {
                if ns["type"] == "network" {
                    ns["path"] = serde_json::json!(netns);
                }
            }
        }
    }

    /// What `berth run --dry-run` prints: the overlay mount plan, the generated
    /// `config.json`, and the runtime's create plan, changing nothing on the host.
    pub fn dry_run(&self, req: &NewContainer) -> Result<String, EngineError> {
        let store = self.store()?;
        let mut p = self.prepare(&store, req)?;
        if req.network.is_some() {
            self.network_config(&mut p.config, &p.id);
        }
        let dir = self.container_dir(&p.id);
        let host = |path: &Path| HostPath::new(path.to_string_lossy().into_owned());
        let overlay = self.rootfs_plan(&p.id, &p.settings.layers)?;
        let text =
            serde_json::to_string_pretty(&p.config).map_err(|source| EngineError::Settings {
                id: p.id.clone(),
                source,
            })?;
        let config = berth_core::spec::parse_config(&text, &host(&dir))
            .map_err(|e| EngineError::Plan(format!("the generated config.json: {e}")))?;
        let facts = crate::probe::host_facts()
            .map_err(|e| EngineError::Plan(format!("probing the host: {e}")))?;
        let request = CreateRequest {
            id: p.id.clone(),
            bundle: host(&dir),
            state_root: host(&self.runtime_root()),
            config,
            options: CreateOptions {
                pid_file: Some(host(&dir.join("init.pid"))),
                ..CreateOptions::default()
            },
            home: None,
        };
        let create = berth_core::planner::create::plan_create(&request, &facts)
            .map_err(|e| EngineError::Plan(e.to_string()))?;
        let network = match &req.network {
            Some(name) => self.network_dry_run(&store, name, &p.id, req)?,
            None => String::new(),
        };
        Ok(format!(
            "{network}{}",
            self.dry_run_text(&overlay, &dir, &text, &p.id, &create)
        ))
    }

    fn dry_run_text(
        &self,
        overlay: &berth_core::plan::Plan,
        dir: &Path,
        text: &str,
        id: &str,
        create: &berth_core::plan::Plan,
    ) -> String {
        let p_id = id;
        format!(
            "# 1. the container's root file system (berth, before the runtime)\n{overlay}\
             # 2. {}/config.json\n{text}\n\
             # 3. the runtime: berth create --bundle {} {}\n{create}",
            dir.display(),
            dir.display(),
            p_id
        )
    }

    /// Resolves the image and turns the request into a config and settings (no change).
    fn prepare(&self, store: &Store, req: &NewContainer) -> Result<Prepared, EngineError> {
        let image = store.resolve(&req.image)?;
        let config_blob = store.blob(image.digest())?;
        let image_config: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(&config_blob).map_err(|source| EngineError::ImageConfig {
                image: req.image.clone(),
                source,
            })?;
        let layers = store.layer_dirs(&image)?;
        let id = new_id()?;
        let mut options = req.options.clone();
        options.id = id.clone();
        options.rootfs = "rootfs".to_owned();
        let run = build_run_config(image_config.config().as_ref(), &options)?;
        let user = match &run.user {
            None => None,
            Some(spec) => Some(self.resolve_user(&req.image, &layers, spec)?),
        };
        let mut config = run.config_json(user.as_ref())?;
        if let (true, Some((rows, cols))) = (req.options.tty, req.console_size) {
            config["process"]["consoleSize"] = serde_json::json!({"height": rows, "width": cols});
        }
        let args = config["process"]["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let settings = Settings {
            args,
            auto_remove: req.auto_remove,
            interactive: req.interactive,
            tty: req.options.tty,
            stop_signal: run.stop_signal,
            layers,
            log_max_size: req.log_max_size,
            log_max_files: req.log_max_files.max(1),
            networks: req.network.iter().cloned().collect(),
            ports: req.ports.clone(),
            extra_hosts: req.extra_hosts.clone(),
        };
        Ok(Prepared {
            id,
            image,
            config,
            settings,
        })
    }

    /// Resolves `-u USER[:GROUP]` against the image's `/etc/passwd` and `/etc/group`.
    pub fn resolve_user(
        &self,
        image: &str,
        layers: &[PathBuf],
        spec: &str,
    ) -> Result<ResolvedUser, EngineError> {
        let user_err = |source| EngineError::User {
            image: image.to_owned(),
            source,
        };
        let passwd = parse_passwd(&read_from_layers(layers, "etc/passwd").unwrap_or_default())
            .map_err(user_err)?;
        let group = parse_group(&read_from_layers(layers, "etc/group").unwrap_or_default())
            .map_err(user_err)?;
        resolve_user(spec, &passwd, &group).map_err(user_err)
    }

    fn write_bundle(&self, id: &str, config: &serde_json::Value) -> Result<(), EngineError> {
        let dir = self.container_dir(id);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let path = dir.join("config.json");
        let text = serde_json::to_vec_pretty(config).map_err(|source| EngineError::Settings {
            id: id.to_owned(),
            source,
        })?;
        fs::write(&path, text).map_err(io_err("write", &path))
    }

    /// Starts container `c` under a new monitor and waits until the monitor reports it
    /// started (or failed). Returns the monitor's child handle (its stdout carries the
    /// exit report) and the container's pid.
    pub fn start(&self, c: &ContainerRecord) -> Result<monitor::Monitor, EngineError> {
        if matches!(c.state, ContainerState::Running | ContainerState::Paused) {
            return Err(EngineError::Running {
                name: c.name.clone(),
                state: c.state,
            });
        }
        monitor::Monitor::spawn(self, c)
    }

    /// The runtime's view of container `id`: its OCI status (`created`, `running`,
    /// `paused`, `stopped`), or `None` when the runtime has no such container.
    pub fn runtime_status(&self, id: &str) -> Option<String> {
        let out = self
            .runtime_command(&["state", id])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        state["status"].as_str().map(str::to_owned)
    }

    /// The container's state as shown to the user: the row, corrected by the runtime when
    /// a crash left the row behind (a `running` row whose container is gone shows as
    /// exited with an unknown code).
    pub fn observed_state(&self, c: &ContainerRecord) -> ContainerState {
        match c.state {
            ContainerState::Running | ContainerState::Paused => {
                match self.runtime_status(&c.id).as_deref() {
                    Some("running") => ContainerState::Running,
                    Some("paused") => ContainerState::Paused,
                    _ => ContainerState::Exited,
                }
            }
            other => other,
        }
    }

    /// Sends `signal` to a running container's init.
    pub fn kill(&self, c: &ContainerRecord, signal: &str) -> Result<(), EngineError> {
        if !matches!(
            self.observed_state(c),
            ContainerState::Running | ContainerState::Paused
        ) {
            return Err(EngineError::NotRunning {
                name: c.name.clone(),
            });
        }
        self.runtime_ok(&["kill", &c.id, signal]).map(drop)
    }

    /// Waits until container `id`'s row says it is no longer running (the monitor
    /// records the exit), for at most `timeout`; the final row.
    pub fn wait_exit(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<ContainerRecord>, EngineError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut pause = Duration::from_millis(5);
        loop {
            let store = self.store()?;
            let c = match store.container(id) {
                Ok(c) => c,
                // Removed (--rm): it exited.
                Err(StoreError::UnknownContainer { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            drop(store);
            let running = matches!(c.state, ContainerState::Running | ContainerState::Paused);
            if !running {
                return Ok(Some(c));
            }
            if self.observed_state(&c) == ContainerState::Exited && !self.monitor_alive(&c) {
                // Its monitor is gone: it may have recorded the exit since `c` was read
                // (then the row read now has it), or it died without (a crash).
                return match self.store()?.container(id) {
                    Ok(now) => Ok(Some(now)),
                    Err(StoreError::UnknownContainer { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                };
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Some(c));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Whether container `c`'s monitor still runs (its pid file names a live monitor).
    pub fn monitor_alive(&self, c: &ContainerRecord) -> bool {
        monitor::alive(&self.container_dir(&c.id))
    }

    /// `berth stop`: the stop signal, then SIGKILL after `timeout`; returns when the
    /// container has exited.
    pub fn stop(&self, c: &ContainerRecord, timeout: Duration) -> Result<(), EngineError> {
        if !matches!(
            self.observed_state(c),
            ContainerState::Running | ContainerState::Paused
        ) {
            return Ok(());
        }
        let settings = Self::settings(c)?;
        if c.state == ContainerState::Paused {
            let _ = self.runtime_ok(&["resume", &c.id]);
        }
        let _ = self.runtime_ok(&["kill", &c.id, &settings.stop_signal.to_string()]);
        if let Some(after) = self.wait_exit(&c.id, Some(timeout))?
            && matches!(
                after.state,
                ContainerState::Running | ContainerState::Paused
            )
        {
            let _ = self.runtime_ok(&["kill", &c.id, "KILL"]);
            let grace = Duration::from_secs(10);
            if let Some(after) = self.wait_exit(&c.id, Some(grace))?
                && matches!(
                    after.state,
                    ContainerState::Running | ContainerState::Paused
                )
                && self.observed_state(&after) != ContainerState::Exited
            {
                return Err(EngineError::StopTimeout {
                    name: c.name.clone(),
                    seconds: grace.as_secs(),
                });
            }
        }
        Ok(())
    }

    /// `berth rm`: refuses a running container unless `force` (then kills it); removes the
    /// runtime's state, the mount, the directory and the row, whatever a crash left.
    pub fn remove(&self, c: &ContainerRecord, force: bool) -> Result<(), EngineError> {
        let state = self.observed_state(c);
        if matches!(state, ContainerState::Running | ContainerState::Paused) {
            if !force {
                return Err(EngineError::Running {
                    name: c.name.clone(),
                    state,
                });
            }
            let _ = self.runtime_ok(&["kill", &c.id, "KILL"]);
            self.wait_exit(&c.id, Some(Duration::from_secs(10)))?;
        }
        let mut store = self.store()?;
        match store.container(&c.id) {
            Ok(now) => self.cleanup(&mut store, &now),
            // The monitor removed it (--rm) meanwhile.
            Err(StoreError::UnknownContainer { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes everything of container `c`: runtime state (forced), the overlay mount,
    /// its directory, then its row.
    fn cleanup(&self, store: &mut Store, c: &ContainerRecord) -> Result<(), EngineError> {
        let _ = store.set_container_state(
            &c.id,
            &StateChange {
                state: ContainerState::Removing,
                pid: None,
                exit_code: None,
                started: None,
                finished: None,
            },
        );
        monitor::kill_monitor(&self.container_dir(&c.id));
        if self.runtime_root().join(&c.id).exists() {
            // A process killed just now may still hold its cgroup for a moment (EBUSY).
            let mut attempt = 0;
            while let Err(err) = self.runtime_ok(&["delete", "--force", &c.id]) {
                attempt += 1;
                if attempt == 20 {
                    return Err(err);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let ports = Self::settings(c).map(|s| s.ports).unwrap_or_default();
        self.leave_all(&c.id, &ports)?;
        let dir = self.container_dir(&c.id);
        monitor::unmount_rootfs(&dir)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(EngineError::Io {
                    op: "remove",
                    path: dir,
                    source,
                });
            }
        }
        store.remove_container(&c.id)?;
        Ok(())
    }

    /// The plan that mounts container `id`'s overlay root file system on its `rootfs/`
    /// (core's [`plan_rootfs`]: `layers` below, bottom first; its own upper and work).
    pub fn rootfs_plan(&self, id: &str, layers: &[PathBuf]) -> Result<Plan, EngineError> {
        let dir = self.container_dir(id);
        let host = |p: &Path| HostPath::new(p.to_string_lossy().into_owned());
        let layers: Vec<HostPath> = layers.iter().map(|p| host(p)).collect();
        let mut b = PlanBuilder::new();
        plan_rootfs(
            &layers,
            &host(&dir.join("upper")),
            &host(&dir.join("work")),
            &host(&dir.join("rootfs")),
            &mut b,
        )
        .map_err(|e| EngineError::Plan(e.to_string()))?;
        Ok(b.finish())
    }

    /// Carries out [`Engine::rootfs_plan`] (rolled back on failure).
    pub fn mount_rootfs(&self, id: &str, layers: &[PathBuf]) -> Result<(), EngineError> {
        let plan = self.rootfs_plan(id, layers)?;
        execute(&plan, &mut crate::LinuxBackend::new()).map_err(|e| EngineError::Io {
            op: "mount the overlay rootfs",
            path: self.container_dir(id).join("rootfs"),
            source: io::Error::other(e.to_string()),
        })
    }

    /// Renames container `c`.
    pub fn rename(&self, c: &ContainerRecord, name: &str) -> Result<(), EngineError> {
        if !valid_name(name) {
            return Err(StoreError::BadName {
                name: name.to_owned(),
            }
            .into());
        }
        self.store()?.rename_container(&c.id, name)?;
        Ok(())
    }
}
