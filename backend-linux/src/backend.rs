//! [`LinuxBackend`]: the runtime's side of executing a plan, and the handle table.
//!
//! # Two processes, one plan
//!
//! core's [`berth_core::exec::execute`] drives the runtime: it calls [`LinuxBackend::apply`]
//! for every step in order. Runtime steps are carried out here. `spawn` clone(2)s the init
//! process: a copy of this process (no exec of berth), which holds the same plan in memory
//! and carries out the init steps that follow the spawn by itself, in order
//! (module `init`). So `apply` of an init step in the runtime only notes it; the two
//! processes meet only at the plan's sync points, over a `SOCK_SEQPACKET` socketpair with a
//! few fixed-size messages (module `proto`):
//!
//! | plan step                | runtime does                           | init does                   |
//! |--------------------------|----------------------------------------|-----------------------------|
//! | runtime `spawn`          | clone; sends `Pid(pid)`                | reads `Pid`, runs its steps |
//! | runtime `signal P`       | sends `Go(P)`                          | `wait P` returns            |
//! | init `signal P`          | `wait P` returns                       | sends `Signal(P)`           |
//! | init step k fails        | `wait` returns [`LinuxError::InInit`]  | undoes its steps, sends `Failed(k)`, exits |
//! | runtime step fails       | rollback: its first undo step sends `Abort` and waits | undoes its steps, sends `Aborted`, exits |
//! | init `exec`              | next runtime step waits for end of file | execve: its CLOEXEC socket closes |
//!
//! After the abort (or init's own failure) the runtime's undo steps of init's steps are
//! no-ops, and the undo of `spawn` (`kill`) reaps the exited init. Past init's `exec` nobody
//! is left to undo init's steps: its namespaces die with the container's process, but the
//! mount points it made in the rootfs stay (as with runc). If the runtime dies, init reads
//! end of file: before the start barrier that is an abort; at the barrier it is `create`
//! having finished.
//!
//! # The start barrier
//!
//! `create` executes the steps before the runtime's `signal start` and exits; init stays
//! blocked in `wait start`. The later `start` is another process, so that wait cannot be on
//! the socketpair. As runc does, the runtime makes a fifo `STATE_DIR/exec.fifo` before the
//! clone and opens it for reading (non-blocking); init inherits that fd and, at
//! `wait start`, polls it (and the socket, for an `Abort` while the runtime is still
//! there). `signal start` — in `start`, or later in the same process for `run` — opens the
//! fifo for writing (`ENXIO` when no reader is left: init is gone), writes one byte and
//! unlinks it, so a second `start` finds no fifo. When init execs, its read end closes
//! (CLOEXEC), which the writer sees as `POLLERR`: that is how a `start` without the socket
//! learns that init went past its last step.
//!
//! # Handles
//!
//! Handles are bound in a table indexed by handle number, in the process whose step bound
//! them: `$init.pid` in the runtime (the pid as the host sees it), a made-list where the op
//! ran, an fd where it was opened. Init starts with a copy of the runtime's table.
//!
//! # Trace
//!
//! With a [`Trace`], every applied step's line (`N TEXT`, as `--dry-run` numbers it; undo
//! steps as `undo TEXT`) is appended by the process that applied it. Control alternates
//! only at sync points, and a `signal` is traced before it is sent, a `wait` after it
//! returns and `exec` just before the execve, so the lines come in the plan's order.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_core::exec::Backend;
use berth_core::plan::{
    Actor, AnyRef, FdRef, HostPath, MadeRef, Op, PidRef, Plan, Step, SyncPoint,
};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::error::{AtStep, Call, LinuxError};
use crate::proto::{Msg, Received, recv_msg, send_msg};
use crate::sys::{self, Forked};

/// The name of the start-barrier fifo in the state directory.
pub const EXEC_FIFO: &str = "exec.fifo";

/// How long the runtime waits for init to undo its steps after an abort before killing it.
const ABORT_GRACE: Duration = Duration::from_secs(10);

/// An append-only file that receives the line of every applied step.
#[derive(Debug)]
pub struct Trace {
    file: File,
}

impl Trace {
    /// Opens (creating) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Trace> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)?;
        Ok(Trace { file })
    }

    /// Appends one line with a single write(2), so lines of two processes never mix.
    fn line(&mut self, index: Option<usize>, text: &str) {
        let line = match index {
            Some(i) => format!("{i} {text}\n"),
            None => format!("undo {text}\n"),
        };
        // The trace is a diagnostic: a full disk must not fail the container.
        let _ = self.file.write_all(line.as_bytes());
    }
}

/// A value bound to a handle in this process.
#[derive(Debug)]
pub(crate) enum Bound {
    /// A process id, as this process's pid namespace sees it.
    Pid(Pid),
    /// An open fd.
    Fd(OwnedFd),
    /// What an op made.
    Made(Made),
}

/// What a `mkdir -p`-like op made, to be removed by its undo.
#[derive(Debug, Default)]
pub(crate) struct Made {
    /// Files and directories made, outermost first.
    pub(crate) paths: Vec<crate::fs::MadeEntry>,
    /// Cgroup directories made, outermost first.
    pub(crate) cgroup_dirs: Vec<PathBuf>,
    /// Controllers a `cgroup.subtree_control` write enabled.
    pub(crate) controllers: Vec<String>,
}

/// Where the init process is, as the runtime knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InitState {
    /// Blocked in a `wait`: control is with the runtime.
    Waiting,
    /// Carrying out its steps: control is with init.
    Running,
    /// Past its `exec`: the container's process.
    Execd,
    /// Exited after undoing its steps (a failure or an abort).
    Gone,
}

/// The runtime's link to the init process.
#[derive(Debug)]
pub(crate) struct InitLink {
    pub(crate) pid: Pid,
    /// Our end of the socketpair; `None` in a later process (`start`).
    pub(crate) sock: Option<OwnedFd>,
    pub(crate) state: InitState,
}

/// Which process this backend value lives in.
#[derive(Debug)]
pub(crate) enum Role {
    /// The berth process on the host.
    Runtime,
    /// The container's init process (a clone of the runtime).
    Init(InitSide),
}

/// What init holds to talk to the runtime.
#[derive(Debug)]
pub(crate) struct InitSide {
    /// Its end of the socketpair; `None` once the runtime is gone (after `create`).
    pub(crate) sock: Option<OwnedFd>,
    /// The start-barrier fifo, read end.
    pub(crate) fifo: Option<OwnedFd>,
    /// Its own pid as the runtime sees it (for hook state).
    pub(crate) host_pid: i32,
}

/// Executes plans with real syscalls. See the module docs for the protocol.
#[derive(Debug)]
pub struct LinuxBackend {
    pub(crate) bound: Vec<Option<Bound>>,
    pub(crate) trace: Option<Trace>,
    pub(crate) stdio: [Option<OwnedFd>; 3],
    pub(crate) fail_at: Option<usize>,
    pub(crate) link: Option<InitLink>,
    pub(crate) role: Role,
    /// The root that `pivot-root`/`chroot` switched to: `[ROOT]PATH` then means `PATH`.
    pub(crate) pivoted: Option<HostPath>,
    /// The state directory this backend made or was told of.
    pub(crate) state_dir: Option<PathBuf>,
    /// The start fifo's write end, once `signal start` opened it.
    pub(crate) start_fifo: Option<OwnedFd>,
    /// Host sockets init connected to before its root switch, for its `send-fd` steps.
    pub(crate) preconnected: Vec<(HostPath, std::os::unix::net::UnixStream)>,
}

impl Default for LinuxBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl LinuxBackend {
    /// A backend with no trace, inherited stdio and no handle bound.
    pub fn new() -> Self {
        LinuxBackend {
            bound: Vec::new(),
            trace: None,
            stdio: [None, None, None],
            fail_at: None,
            link: None,
            role: Role::Runtime,
            pivoted: None,
            state_dir: None,
            start_fifo: None,
            preconnected: Vec::new(),
        }
    }

    /// Appends every applied step's line to `trace`.
    pub fn with_trace(mut self, trace: Trace) -> Self {
        self.trace = Some(trace);
        self
    }

    /// Gives init these fds as its stdin, stdout and stderr (`None`: inherit the
    /// runtime's). The runtime closes its copies once init is cloned.
    pub fn with_stdio(
        mut self,
        stdin: Option<OwnedFd>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    ) -> Self {
        self.stdio = [stdin, stdout, stderr];
        self
    }

    /// Test-only: step `k` of the plan fails (in whichever process carries it out) before
    /// doing anything.
    #[cfg(feature = "fault-injection")]
    pub fn fail_at_step(mut self, k: usize) -> Self {
        self.fail_at = Some(k);
        self
    }

    /// Binds `pid` to a pid handle, for a process that did not run the spawn itself
    /// (`start` binds `$init.pid` from the state file).
    pub fn bind_pid(&mut self, handle: PidRef, pid: i32) {
        self.bind(handle.index(), Bound::Pid(Pid::from_raw(pid)));
    }

    /// The pid bound to `handle` in this process, if any.
    pub fn pid(&self, handle: PidRef) -> Option<i32> {
        match self.bound.get(handle.index()) {
            Some(Some(Bound::Pid(p))) => Some(p.as_raw()),
            _ => None,
        }
    }

    /// Tells the backend where the container's state directory is, for a process that did
    /// not create it (`start` finds the exec fifo there). `state-create` sets it too.
    pub fn with_state_dir(mut self, dir: PathBuf) -> Self {
        self.state_dir = Some(dir);
        self
    }

    /// Waits until init has gone past its last step (its `exec`), when the plan ended while
    /// init was still running. A no-op otherwise.
    pub fn finish(&mut self, plan: &Plan) -> Result<(), LinuxError> {
        if self
            .link
            .as_ref()
            .is_some_and(|l| l.state == InitState::Running)
        {
            self.await_exec(plan, "finish")?;
        }
        Ok(())
    }

    /// Waits for the container's process (the spawned init) to exit and returns its exit
    /// code, `128 + N` when signal N killed it, as a shell reports it.
    pub fn wait_exit(&mut self, plan: &Plan) -> Result<i32, LinuxError> {
        self.finish(plan)?;
        let Some(link) = self.link.as_mut() else {
            return Err(LinuxError::Protocol {
                step: "wait".to_owned(),
                got: "no init process".to_owned(),
            });
        };
        link.sock = None;
        loop {
            match waitpid(link.pid, None) {
                Ok(WaitStatus::Exited(_, code)) => {
                    link.state = InitState::Gone;
                    return Ok(code);
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    link.state = InitState::Gone;
                    return Ok(128 + sig as i32);
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(LinuxError::Sys {
                        step: "wait".to_owned(),
                        call: "waitpid",
                        errno,
                    });
                }
            }
        }
    }

    pub(crate) fn bind(&mut self, index: usize, value: Bound) {
        if self.bound.len() <= index {
            self.bound.resize_with(index + 1, || None);
        }
        self.bound[index] = Some(value);
    }

    pub(crate) fn bound_pid(&self, plan: &Plan, r: PidRef, step: &str) -> Result<Pid, LinuxError> {
        match self.bound.get(r.index()) {
            Some(Some(Bound::Pid(p))) => Ok(*p),
            _ => Err(unbound(plan, AnyRef::Pid(r), step)),
        }
    }

    pub(crate) fn bound_fd(
        &self,
        plan: &Plan,
        r: FdRef,
        step: &str,
    ) -> Result<&OwnedFd, LinuxError> {
        match self.bound.get(r.index()) {
            Some(Some(Bound::Fd(fd))) => Ok(fd),
            _ => Err(unbound(plan, AnyRef::Fd(r), step)),
        }
    }

    /// Takes a made-list out of the table (its undo consumes it).
    pub(crate) fn take_made(
        &mut self,
        plan: &Plan,
        r: MadeRef,
        step: &str,
    ) -> Result<Made, LinuxError> {
        match self.bound.get_mut(r.index()) {
            Some(slot @ Some(Bound::Made(_))) => match slot.take() {
                Some(Bound::Made(m)) => Ok(m),
                _ => Err(unbound(plan, AnyRef::Made(r), step)),
            },
            _ => Err(unbound(plan, AnyRef::Made(r), step)),
        }
    }

    pub(crate) fn trace_line(&mut self, index: Option<usize>, text: &str) {
        if let Some(t) = self.trace.as_mut() {
            t.line(index, text);
        }
    }

    pub(crate) fn check_fault(&self, index: Option<usize>, text: &str) -> Result<(), LinuxError> {
        if index.is_some() && index == self.fail_at {
            return Err(LinuxError::Injected {
                step: text.to_owned(),
            });
        }
        Ok(())
    }

    /// A runtime step.
    fn runtime_step(
        &mut self,
        plan: &Plan,
        step: &Step,
        index: Option<usize>,
    ) -> Result<(), LinuxError> {
        let text = plan.step_text(step);
        let init_running = self
            .link
            .as_ref()
            .is_some_and(|l| l.state == InitState::Running);
        if init_running && index.is_some() && !matches!(step.op, Op::Wait(_)) {
            // Only init's exec hands control back without a signal (Plan::check).
            self.await_exec(plan, &text)?;
        }
        self.check_fault(index, &text)?;
        match &step.op {
            Op::Signal(point) => {
                self.trace_line(index, &text);
                self.signal_init(plan, *point, &text)
            }
            Op::Wait(point) => {
                self.wait_for_init(plan, *point, &text)?;
                self.trace_line(index, &text);
                Ok(())
            }
            Op::Spawn { ns, pid } => {
                let Some(spawn_index) = index else {
                    return Err(LinuxError::Protocol {
                        step: text,
                        got: "spawn outside the plan".to_owned(),
                    });
                };
                self.spawn(plan, spawn_index, ns, *pid, &text)?;
                self.trace_line(index, &text);
                Ok(())
            }
            Op::Kill { pid } => {
                self.kill(plan, *pid, &text)?;
                self.trace_line(index, &text);
                Ok(())
            }
            _ => {
                self.run_op(plan, step, &text)?;
                self.trace_line(index, &text);
                Ok(())
            }
        }
    }

    /// An init step seen by the runtime: init carries it out itself (or, in a rollback,
    /// undid it already when it was aborted).
    fn note_init_step(&mut self) -> Result<(), LinuxError> {
        Ok(())
    }

    fn spawn(
        &mut self,
        plan: &Plan,
        spawn_index: usize,
        ns: &berth_core::plan::NamespaceSet,
        pid_ref: PidRef,
        text: &str,
    ) -> Result<(), LinuxError> {
        let threads = sys::thread_count().map_err(|source| LinuxError::Io {
            step: text.to_owned(),
            what: "reading /proc/self/status",
            source,
        })?;
        if threads != 1 {
            return Err(LinuxError::Threaded {
                step: text.to_owned(),
                threads,
            });
        }
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .call("socketpair")
        .at(text)?;
        let fifo = self.make_start_fifo(plan, text)?;
        let flags = crate::ns::clone_flags(ns);
        match sys::clone_fork(flags).call("clone3").at(text)? {
            Forked::Child => {
                drop(ours);
                self.become_init(plan, spawn_index + 1, theirs, fifo)
            }
            Forked::Parent(pid) => {
                drop(theirs);
                drop(fifo);
                self.stdio = [None, None, None];
                self.bind(pid_ref.index(), Bound::Pid(pid));
                let sent = send_msg(&ours, &Msg::Pid(pid.as_raw()));
                self.link = Some(InitLink {
                    pid,
                    sock: Some(ours),
                    state: InitState::Waiting,
                });
                sent.call("send").at(text)
            }
        }
    }

    /// Makes and opens the start fifo when init will wait at the start barrier and the
    /// state directory exists.
    fn make_start_fifo(&self, plan: &Plan, text: &str) -> Result<Option<OwnedFd>, LinuxError> {
        let waits_for_start = plan
            .steps
            .iter()
            .any(|s| s.actor == Actor::Init && s.op == Op::Wait(SyncPoint::Start));
        let Some(dir) = self.state_dir.as_ref().filter(|_| waits_for_start) else {
            return Ok(None);
        };
        let path = dir.join(EXEC_FIFO);
        nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o622))
            .call("mkfifo")
            .at(text)?;
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &path,
            Mode::from_bits_truncate(0o622),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .call("chmod")
        .at(text)?;
        let fd = nix::fcntl::open(
            &path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .call("open exec.fifo")
        .at(text)?;
        Ok(Some(fd))
    }

    /// The link to init; `start` builds one from the bound pid of the plan's spawn.
    fn link_for(&mut self, plan: &Plan, text: &str) -> Result<&mut InitLink, LinuxError> {
        if self.link.is_none() {
            let pid_ref = plan.steps.iter().find_map(|s| match s.op {
                Op::Spawn { pid, .. } => Some(pid),
                _ => None,
            });
            let pid = match pid_ref {
                Some(r) => self.bound_pid(plan, r, text)?,
                None => {
                    return Err(LinuxError::Protocol {
                        step: text.to_owned(),
                        got: "a plan without spawn".to_owned(),
                    });
                }
            };
            self.link = Some(InitLink {
                pid,
                sock: None,
                state: InitState::Waiting,
            });
        }
        Ok(self.link.as_mut().expect("set just above"))
    }

    /// The runtime's `signal P`.
    fn signal_init(&mut self, plan: &Plan, point: SyncPoint, text: &str) -> Result<(), LinuxError> {
        let fifo = self
            .state_dir
            .clone()
            .or_else(|| plan_state_dir(plan))
            .map(|d| d.join(EXEC_FIFO));
        let use_fifo = point == SyncPoint::Start && fifo.as_ref().is_some_and(|f| f.exists());
        if use_fifo {
            let path = fifo.expect("checked by use_fifo");
            let fd = match nix::fcntl::open(
                &path,
                OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::ENXIO | Errno::ENOENT) => {
                    return Err(LinuxError::NotAtBarrier {
                        step: text.to_owned(),
                    });
                }
                Err(e) => return Err(e).call("open exec.fifo").at(text),
            };
            let link = self.link_for(plan, text)?;
            nix::unistd::write(&fd, b"0")
                .call("write exec.fifo")
                .at(text)?;
            link.state = InitState::Running;
            // A second `start` must find no fifo.
            let _ = std::fs::remove_file(&path);
            self.start_fifo = Some(fd);
            return Ok(());
        }
        let link = self.link_for(plan, text)?;
        let Some(sock) = link.sock.as_ref() else {
            return Err(LinuxError::NotAtBarrier {
                step: text.to_owned(),
            });
        };
        match send_msg(sock, &Msg::Go(point)) {
            Ok(()) => {
                link.state = InitState::Running;
                Ok(())
            }
            Err(Errno::EPIPE | Errno::ECONNRESET) => {
                link.state = InitState::Gone;
                Err(LinuxError::InitExited {
                    step: text.to_owned(),
                })
            }
            Err(e) => Err(e).call("send").at(text),
        }
    }

    /// The runtime's `wait P`: blocks until init signals P or reports its failure.
    fn wait_for_init(
        &mut self,
        plan: &Plan,
        point: SyncPoint,
        text: &str,
    ) -> Result<(), LinuxError> {
        let link = self.link_for(plan, text)?;
        let Some(sock) = link.sock.as_ref() else {
            return Err(LinuxError::Protocol {
                step: text.to_owned(),
                got: "no channel to init in this process".to_owned(),
            });
        };
        let got = recv_msg(sock).call("recv").at(text)?;
        match got {
            Received::Msg(Msg::Signal(p)) if p == point => {
                link.state = InitState::Waiting;
                Ok(())
            }
            Received::Msg(Msg::Failed {
                index,
                errno,
                detail,
            }) => {
                link.state = InitState::Gone;
                Err(init_failure(plan, index, errno, detail))
            }
            Received::Eof => {
                link.state = InitState::Gone;
                Err(LinuxError::InitExited {
                    step: text.to_owned(),
                })
            }
            other => Err(LinuxError::Protocol {
                step: text.to_owned(),
                got: format!("{other:?}"),
            }),
        }
    }

    /// Waits until init has exec'd (or died trying): end of file on the socket, or, in a
    /// process without it, the start fifo's reader gone.
    pub(crate) fn await_exec(&mut self, plan: &Plan, text: &str) -> Result<(), LinuxError> {
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        if let Some(sock) = link.sock.as_ref() {
            match recv_msg(sock).call("recv").at(text)? {
                Received::Eof => {
                    link.state = InitState::Execd;
                    link.sock = None;
                    Ok(())
                }
                Received::Msg(Msg::Failed {
                    index,
                    errno,
                    detail,
                }) => {
                    link.state = InitState::Gone;
                    Err(init_failure(plan, index, errno, detail))
                }
                other => Err(LinuxError::Protocol {
                    step: text.to_owned(),
                    got: format!("{other:?}"),
                }),
            }
        } else {
            if let Some(fifo) = self.start_fifo.take() {
                let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::empty())];
                loop {
                    match poll(&mut fds, PollTimeout::NONE) {
                        Err(Errno::EINTR) => continue,
                        Err(e) => return Err(e).call("poll exec.fifo").at(text),
                        Ok(_) => break,
                    }
                }
            }
            link.state = InitState::Execd;
            Ok(())
        }
    }

    /// In a rollback while init waits: tell it to undo its steps, and wait until it has.
    fn abort_init(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if !matches!(link.state, InitState::Waiting | InitState::Running) {
            return;
        }
        link.state = InitState::Gone;
        let Some(sock) = link.sock.as_ref() else {
            return;
        };
        if send_msg(sock, &Msg::Abort).is_err() {
            return;
        }
        let deadline = Instant::now() + ABORT_GRACE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            if ms == 0 {
                return;
            }
            let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => continue,
                Err(Errno::EINTR) => continue,
                Err(_) => return,
                Ok(_) => {}
            }
            // A running init may first finish a `signal`; it reads the abort at its next
            // `wait`.
            match recv_msg(sock) {
                Ok(Received::Msg(Msg::Aborted | Msg::Failed { .. }) | Received::Eof) | Err(_) => {
                    return;
                }
                Ok(_) => continue,
            }
        }
    }

    /// `kill -KILL PID` and reap it; for init, first let it undo its own steps.
    fn kill(&mut self, plan: &Plan, r: PidRef, text: &str) -> Result<(), LinuxError> {
        let pid = self.bound_pid(plan, r, text)?;
        let ours = self.link.as_ref().is_some_and(|l| l.pid == pid);
        if ours {
            self.abort_init();
        }
        match kill(pid, Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => return Err(e).call("kill").at(text),
        }
        reap(pid).at(text)?;
        if ours {
            self.link = None;
        }
        Ok(())
    }
}

/// Waits for a killed process to be gone: waitpid when it is our child, else until the
/// kernel no longer knows it (its parent reaps it).
fn reap(pid: Pid) -> crate::error::SysResult<()> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => return Ok(()),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => break,
            Err(e) => return Err(("waitpid", e)),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match kill(pid, None) {
            Err(Errno::ESRCH) => return Ok(()),
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    Err(("wait for exit", Errno::ETIMEDOUT))
}

/// The state directory a plan names (its `state-create`, else its first `state-write`).
fn plan_state_dir(plan: &Plan) -> Option<PathBuf> {
    plan.steps.iter().find_map(|s| match &s.op {
        Op::StateCreate { dir } | Op::StateWrite { dir, .. } => Some(PathBuf::from(dir.as_str())),
        _ => None,
    })
}

/// The error for init's report that its step `index` failed.
fn init_failure(plan: &Plan, index: u32, errno: i32, detail: String) -> LinuxError {
    let step = usize::try_from(index)
        .ok()
        .and_then(|i| plan.steps.get(i))
        .map_or_else(|| format!("init step {index}"), |s| plan.step_text(s));
    LinuxError::InInit {
        step,
        detail,
        errno: (errno != 0).then(|| Errno::from_raw(errno)),
    }
}

fn unbound(plan: &Plan, r: AnyRef, step: &str) -> LinuxError {
    LinuxError::Unbound {
        step: step.to_owned(),
        handle: plan.name_of(r).to_owned(),
    }
}

impl Backend for LinuxBackend {
    type Error = LinuxError;

    fn apply(&mut self, plan: &Plan, step: &Step) -> Result<(), LinuxError> {
        // A step of the plan itself (not an undo made up by the rollback) is found by
        // address: execute passes references into `plan.steps`.
        let index = plan.steps.iter().position(|s| std::ptr::eq(s, step));
        if index.is_none() && matches!(self.role, Role::Runtime) {
            // The first undo of a rollback: init undoes its own steps first, and exits.
            self.abort_init();
        }
        match (&self.role, step.actor) {
            (Role::Runtime, Actor::Runtime) => self.runtime_step(plan, step, index),
            (Role::Runtime, Actor::Init) => self.note_init_step(),
            // The init process runs its own loop (crate::init) and never calls apply.
            (Role::Init(_), _) => Err(LinuxError::Protocol {
                step: plan.step_text(step),
                got: "apply called in the init process".to_owned(),
            }),
        }
    }
}
