//! The container lifecycle: its statuses, the record a `create` persists, how a status is
//! derived from what the host shows now, and which command each status allows.
//!
//! Pure, like the rest of core: the backend observes the host ([`Observed`]: is the
//! recorded init still that process, is the start fifo still there) and reads the clock;
//! this module decides. The error messages are runc's, word for word, because the callers
//! of an OCI runtime (containerd's shim, podman's conmon) match on them.
//!
//! Invariant: a status is never stored as the truth. As in runc, it is derived each time
//! from the record and the host: a process that is gone (or a zombie, or a new process
//! under a reused pid) means `stopped`, whatever the record says.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::plan::{HookSpec, HostPath, Plan};

/// A container's status, as the OCI runtime spec names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `create` is under way (the record exists, init has not reached the start barrier).
    Creating,
    /// Init waits at the start barrier.
    Created,
    /// Init has exec'd the container's process, which is alive.
    Running,
    /// The container's processes are frozen.
    Paused,
    /// The container's process has exited.
    Stopped,
}

impl Status {
    /// The status as the OCI state spells it (`created`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }

    /// Parses a status as the OCI state spells it.
    pub fn parse(text: &str) -> Option<Status> {
        [
            Status::Creating,
            Status::Created,
            Status::Running,
            Status::Paused,
            Status::Stopped,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `create` persists in `ROOT/ID/state.json`: enough for `start`, `state`, `kill` and
/// `delete` to work from another process, long after `create` exited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    /// The runtime-spec version of the state.
    pub oci_version: String,
    /// The container's id.
    pub id: String,
    /// The status at the time of writing (`created`); see [`derive_status`] for the truth.
    pub status: Status,
    /// Init's pid, as the runtime's pid namespace sees it.
    pub pid: u32,
    /// Init's start time (field 22 of `/proc/PID/stat`, clock ticks after boot): with the
    /// pid it names the process, so a reused pid is never taken for it.
    pub start_time: u64,
    /// The bundle directory.
    pub bundle: HostPath,
    /// The root filesystem.
    pub rootfs: HostPath,
    /// When the record was first written (RFC 3339, UTC).
    pub created: String,
    /// The config's annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The user who created the container (the name of the runtime's euid, or `#UID`).
    pub owner: String,
    /// The config's poststop hooks, which `delete` runs.
    #[serde(default)]
    pub poststop: Vec<HookSpec>,
    /// The create plan, as it was executed.
    pub plan: Plan,
}

/// What `/proc/PID/stat` says about a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// The state letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Field 22: when it started, in clock ticks after boot.
    pub start_time: u64,
}

impl ProcStat {
    /// True for a process that has exited and waits to be reaped, or is being removed.
    pub fn is_dead(self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the content of `/proc/PID/stat`; `None` when it is not in that format. The
/// command name (field 2) may hold spaces and parentheses, so the fields are counted from
/// its last `)`.
pub fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    // Field 3 is the state; field 22 is 19 fields later.
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// What the backend sees on the host now, for one recorded container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    /// `/proc/PID/stat` of the recorded pid, if the pid exists.
    pub init: Option<ProcStat>,
    /// Whether the start fifo (`exec.fifo`) is still in the state directory.
    pub exec_fifo: bool,
    /// Whether the container's cgroup is frozen (its freezer reads frozen).
    pub frozen: bool,
}

/// The status of a recorded container now, by runc's rules: init gone, dead or another
/// process (a different start time) means stopped; else frozen means paused; else a
/// start fifo still waiting means created (creating, if the record says so); else running.
pub fn derive_status(record: &ContainerRecord, seen: &Observed) -> Status {
    let alive = seen
        .init
        .is_some_and(|p| !p.is_dead() && p.start_time == record.start_time);
    if !alive {
        return Status::Stopped;
    }
    if seen.frozen {
        return Status::Paused;
    }
    if record.status == Status::Creating {
        return Status::Creating;
    }
    if seen.exec_fifo {
        Status::Created
    } else {
        Status::Running
    }
}

/// A command of the runtime that acts on an existing container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `start`.
    Start,
    /// `state`.
    State,
    /// `kill`; `all` is `--all`.
    Kill {
        /// `--all`.
        all: bool,
    },
    /// `delete`; `force` is `--force`.
    Delete {
        /// `--force`.
        force: bool,
    },
    /// `exec`.
    Exec,
    /// `pause`.
    Pause,
    /// `resume`.
    Resume,
}

/// What a command allowed in a status is to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Plan and carry the command out.
    Proceed,
    /// Succeed without doing anything (`kill --all` of a stopped container, as runc).
    Nothing,
}

/// Why a lifecycle command cannot go on. The messages are runc's (callers match on them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// No record under the state root.
    #[error("container does not exist")]
    NotExist,
    /// A signal, pause or exec for a container whose process is gone.
    #[error("container not running")]
    NotRunning,
    /// `start` of a running container.
    #[error("cannot start an already running container")]
    AlreadyRunning,
    /// `start` of a stopped container.
    #[error("cannot start a container that has stopped")]
    HasStopped,
    /// `start` in another status (creating, paused).
    #[error("cannot start a container in the {status} state")]
    CannotStart {
        /// The status.
        status: Status,
    },
    /// `delete` without `--force` of a running or paused container.
    #[error("cannot delete container {id} that is not stopped: {status}")]
    NotStopped {
        /// The container.
        id: String,
        /// Its status.
        status: Status,
    },
    /// `exec` into a stopped container.
    #[error("cannot exec in a stopped container")]
    ExecStopped,
    /// `exec` into a paused container.
    #[error("cannot exec in a paused container")]
    ExecPaused,
    /// `pause` of a paused container.
    #[error("container paused")]
    Paused,
    /// `resume` of a container that is not paused.
    #[error("container not paused")]
    NotPaused,
    /// `pause` or `resume` of a container that has no freezer cgroup.
    #[error("container {id}: cannot pause or resume a container without a freezer cgroup")]
    NoFreezer {
        /// The container.
        id: String,
    },
    /// The record's plan has no start barrier (it was not made by `plan_create`).
    #[error("container {id}: the recorded plan has no start barrier")]
    NoStartBarrier {
        /// The container.
        id: String,
    },
    /// The record's plan spawns no init process.
    #[error("container {id}: the recorded plan spawns no init process")]
    NoInit {
        /// The container.
        id: String,
    },
}

/// Whether `command` may act on container `id` in `status`, by runc's rules.
pub fn check(command: Command, id: &str, status: Status) -> Result<Verdict, LifecycleError> {
    use Status::{Created, Creating, Paused, Running, Stopped};
    match (command, status) {
        (Command::State, _) => Ok(Verdict::Proceed),
        (Command::Start, Created) => Ok(Verdict::Proceed),
        (Command::Start, Running) => Err(LifecycleError::AlreadyRunning),
        (Command::Start, Stopped) => Err(LifecycleError::HasStopped),
        (Command::Start, status @ (Creating | Paused)) => {
            Err(LifecycleError::CannotStart { status })
        }
        (Command::Kill { all: true }, Stopped) => Ok(Verdict::Nothing),
        (Command::Kill { all: false }, Stopped) => Err(LifecycleError::NotRunning),
        (Command::Kill { .. }, Creating | Created | Running | Paused) => Ok(Verdict::Proceed),
        (Command::Delete { .. }, Stopped | Creating | Created) => Ok(Verdict::Proceed),
        (Command::Delete { force: true }, Running | Paused) => Ok(Verdict::Proceed),
        (Command::Delete { force: false }, status @ (Running | Paused)) => {
            Err(LifecycleError::NotStopped {
                id: id.to_owned(),
                status,
            })
        }
        (Command::Exec, Stopped) => Err(LifecycleError::ExecStopped),
        (Command::Exec, Paused) => Err(LifecycleError::ExecPaused),
        (Command::Exec, Creating | Created | Running) => Ok(Verdict::Proceed),
        (Command::Pause, Running | Created) => Ok(Verdict::Proceed),
        // runc's Pause: anything but running or created is "container not running".
        (Command::Pause, Creating | Paused | Stopped) => Err(LifecycleError::NotRunning),
        (Command::Resume, Paused) => Ok(Verdict::Proceed),
        (Command::Resume, Creating | Created | Running | Stopped) => Err(LifecycleError::NotPaused),
    }
}

/// The OCI state of a container, as `state` prints it and `list --format json` lists it
/// (runc's field order; `annotations` left out when empty, as runc does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciState {
    /// `ociVersion`.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// `id`.
    pub id: String,
    /// `pid`: init's pid; 0 once stopped (the pid may belong to another process by then).
    pub pid: u32,
    /// `status`.
    pub status: Status,
    /// `bundle`.
    pub bundle: String,
    /// `rootfs`.
    pub rootfs: String,
    /// `created`.
    pub created: String,
    /// `annotations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `owner`.
    pub owner: String,
}

impl OciState {
    /// The state of `record` in `status`.
    pub fn of(record: &ContainerRecord, status: Status) -> OciState {
        OciState {
            oci_version: record.oci_version.clone(),
            id: record.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                record.pid
            },
            status,
            bundle: record.bundle.as_str().to_owned(),
            rootfs: record.rootfs.as_str().to_owned(),
            created: record.created.clone(),
            annotations: record.annotations.clone(),
            owner: record.owner.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: Status) -> ContainerRecord {
        ContainerRecord {
            oci_version: "1.2.1".to_owned(),
            id: "c1".to_owned(),
            status,
            pid: 4242,
            start_time: 777,
            bundle: HostPath::new("/b"),
            rootfs: HostPath::new("/b/rootfs"),
            created: "2026-01-02T03:04:05.000000006Z".to_owned(),
            annotations: BTreeMap::new(),
            owner: "root".to_owned(),
            poststop: Vec::new(),
            plan: Plan::default(),
        }
    }

    fn seen(state: char, start_time: u64, exec_fifo: bool) -> Observed {
        Observed {
            init: Some(ProcStat { state, start_time }),
            exec_fifo,
            frozen: false,
        }
    }

    #[test]
    fn proc_stat_fields_are_counted_from_the_last_paren() {
        let line = "4242 (sh) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 777 1234 5 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            parse_proc_stat(line),
            Some(ProcStat {
                state: 'S',
                start_time: 777
            })
        );
        // A command name with spaces and parentheses does not shift the fields.
        let odd = "7 (a) (b c) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99 20 21";
        assert_eq!(
            parse_proc_stat(odd),
            Some(ProcStat {
                state: 'Z',
                start_time: 99
            })
        );
        assert_eq!(parse_proc_stat(""), None);
        assert_eq!(parse_proc_stat("1 (x) S 1 2"), None);
        assert_eq!(
            parse_proc_stat("1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 y"),
            None
        );
    }

    #[test]
    fn status_is_derived_as_runc_does() {
        let r = record(Status::Created);
        assert_eq!(derive_status(&r, &seen('S', 777, true)), Status::Created);
        assert_eq!(derive_status(&r, &seen('S', 777, false)), Status::Running);
        assert_eq!(derive_status(&r, &seen('R', 777, false)), Status::Running);
        // Gone, a zombie, or a reused pid: stopped, fifo or not.
        let gone = Observed {
            init: None,
            exec_fifo: true,
            frozen: false,
        };
        assert_eq!(derive_status(&r, &gone), Status::Stopped);
        assert_eq!(derive_status(&r, &seen('Z', 777, true)), Status::Stopped);
        assert_eq!(derive_status(&r, &seen('X', 777, false)), Status::Stopped);
        assert_eq!(derive_status(&r, &seen('S', 778, true)), Status::Stopped);
        let frozen = Observed {
            frozen: true,
            ..seen('S', 777, false)
        };
        assert_eq!(derive_status(&r, &frozen), Status::Paused);
        let creating = record(Status::Creating);
        assert_eq!(
            derive_status(&creating, &seen('S', 777, true)),
            Status::Creating
        );
        assert_eq!(
            derive_status(&creating, &seen('Z', 777, true)),
            Status::Stopped
        );
    }

    #[test]
    fn commands_by_status_with_runc_wording() {
        use Status::*;
        let msg = |c, s| check(c, "c1", s).unwrap_err().to_string();
        assert_eq!(check(Command::Start, "c1", Created), Ok(Verdict::Proceed));
        assert_eq!(
            msg(Command::Start, Running),
            "cannot start an already running container"
        );
        assert_eq!(
            msg(Command::Start, Stopped),
            "cannot start a container that has stopped"
        );
        assert_eq!(
            msg(Command::Start, Paused),
            "cannot start a container in the paused state"
        );
        assert_eq!(
            msg(Command::Start, Creating),
            "cannot start a container in the creating state"
        );
        for s in [Creating, Created, Running, Paused, Stopped] {
            assert_eq!(check(Command::State, "c1", s), Ok(Verdict::Proceed));
        }
        for s in [Creating, Created, Running, Paused] {
            for all in [false, true] {
                assert_eq!(check(Command::Kill { all }, "c1", s), Ok(Verdict::Proceed));
            }
        }
        assert_eq!(
            msg(Command::Kill { all: false }, Stopped),
            "container not running"
        );
        assert_eq!(
            check(Command::Kill { all: true }, "c1", Stopped),
            Ok(Verdict::Nothing)
        );
        for s in [Stopped, Created, Creating] {
            for force in [false, true] {
                assert_eq!(
                    check(Command::Delete { force }, "c1", s),
                    Ok(Verdict::Proceed)
                );
            }
        }
        assert_eq!(
            msg(Command::Delete { force: false }, Running),
            "cannot delete container c1 that is not stopped: running"
        );
        assert_eq!(
            msg(Command::Delete { force: false }, Paused),
            "cannot delete container c1 that is not stopped: paused"
        );
        assert_eq!(
            check(Command::Delete { force: true }, "c1", Running),
            Ok(Verdict::Proceed)
        );
        assert_eq!(
            msg(Command::Exec, Stopped),
            "cannot exec in a stopped container"
        );
        assert_eq!(
            msg(Command::Exec, Paused),
            "cannot exec in a paused container"
        );
        assert_eq!(msg(Command::Pause, Stopped), "container not running");
        assert_eq!(msg(Command::Pause, Paused), "container not running");
        assert_eq!(msg(Command::Resume, Running), "container not paused");
        assert_eq!(check(Command::Resume, "c1", Paused), Ok(Verdict::Proceed));
        assert_eq!(
            LifecycleError::NotExist.to_string(),
            "container does not exist"
        );
    }

    #[test]
    fn oci_state_hides_the_pid_of_a_stopped_container() {
        let mut r = record(Status::Created);
        let running = OciState::of(&r, Status::Running);
        assert_eq!(running.pid, 4242);
        let json = serde_json::to_string_pretty(&running).unwrap();
        assert_eq!(
            json,
            r#"{
  "ociVersion": "1.2.1",
  "id": "c1",
  "pid": 4242,
  "status": "running",
  "bundle": "/b",
  "rootfs": "/b/rootfs",
  "created": "2026-01-02T03:04:05.000000006Z",
  "owner": "root"
}"#
        );
        assert_eq!(OciState::of(&r, Status::Stopped).pid, 0);
        r.annotations.insert("k".to_owned(), "v".to_owned());
        let json = serde_json::to_value(OciState::of(&r, Status::Created)).unwrap();
        assert_eq!(json["annotations"]["k"], "v");
        assert_eq!(json["status"], "created");
    }

    #[test]
    fn record_round_trips_and_statuses_parse() {
        let r = record(Status::Created);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"startTime\":777"), "{json}");
        assert!(json.contains("\"status\":\"created\""), "{json}");
        let back: ContainerRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        for s in ["creating", "created", "running", "paused", "stopped"] {
            assert_eq!(Status::parse(s).map(Status::as_str), Some(s));
        }
        assert_eq!(Status::parse("exited"), None);
    }
}
