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
//! few small messages (module `proto` has their wire format):
//!
//! | plan step                 | runtime does                             | init does                                |
//! |---------------------------|------------------------------------------|------------------------------------------|
//! | runtime `spawn`           | clone; sends `Pid(pid)`                  | reads `Pid`, runs its steps              |
//! | runtime `signal P`        | sends `Go(P)`                            | `wait P` returns                         |
//! | init `signal P`           | `wait P` returns, taking in the reports  | sends a `Report` if it made any, `Signal(P)` |
//! | init step k fails         | `wait` returns [`LinuxError::InInit`]    | sends its `Report`, `Failed(k)`; exits   |
//! | runtime step fails        | rollback: applies every undo (all its own), in reverse; first lets a running init reach its next stop, taking in its `Report` | (waits, or reaches its stop) |
//! | runtime `kill` (undo of `spawn`) | sends `Abort` if init waits; SIGKILL; reaps | sends `Aborted`; exits, undoing nothing |
//! | init `exec`               | next runtime step waits for end of file  | sends its `Report`; execve closes its (CLOEXEC) socket |
//!
//! Init never undoes anything ([`berth_core::plan::undo`] makes every undo a runtime step):
//! its mounts live in its own mount namespace and die with it when the runtime kills it;
//! what it made on disk the runtime removes from the host's view. For that the runtime must
//! know what init made, which only init's process bound: before each message init sends,
//! it reports what it made since its previous one, in one `Report` message (several when
//! it is long): the entries of each made-list handle it bound (`mkmountpoint`, `mkdir -p`;
//! items for one handle append) and the file of each `mknod` or `ln -s` step whose undo
//! the runtime performs. Locations go as the host's mount namespace names them:
//! `[ROOT]PATH` as is (before init's root switch that is the same directory in both views;
//! the runtime resolves it inside ROOT, as init did), a path made after the switch as
//! `[ROOT]PATH` of the root it switched to. Every
//! entry carries the made file's identity (device and inode): the runtime's `remove-made`
//! and `unlink` remove a path only while it is still that file, and skip it when it is gone
//! or is another file (a path init made inside a filesystem only its own namespace had,
//! such as the tmpfs on `/dev`, may name the image's own file in the host's view). The
//! runtime does so even past init's exec (a failing poststart hook): nothing of init is
//! needed for it. Since Linux 3.18 a directory that is a mount point only in another mount
//! namespace can be removed (it is detached there), so this works while init still lives.
//! Made-lists init binds after its last message to a runtime that still listens (none in
//! a planned `create`: init's last steps before `exec` make nothing) are not reported.
//!
//! If the runtime dies, init reads end of file: before the start barrier that is an abort;
//! at the barrier it is `create` having finished.
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
//! ran (and init's, as init reported them, in the runtime too), an fd where it was opened.
//! Init starts with a copy of the runtime's table, so an fd the runtime bound before the
//! spawn (`connect` of the console socket) is init's as well; once init is cloned, the
//! runtime closes its copies of the fds no later runtime step uses. Every fd is opened
//! close-on-exec, so none reaches the container's process.
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
use crate::fs::FileId;
use crate::proto::{Made, Msg, Received, recv_msg, send_msg};
use crate::sys::{self, Forked};

/// The name of the start-barrier fifo in the state directory.
pub const EXEC_FIFO: &str = "exec.fifo";

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
    Made(MadeList),
}

/// What a `mkdir -p`-like op made, to be removed by its undo.
#[derive(Debug, Default)]
pub(crate) struct MadeList {
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
    /// Exited (its failure, or an abort) or about to.
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
    /// Made-list handles bound since init's last message to the runtime.
    pub(crate) pending_made: Vec<usize>,
    /// Files its `mknod`/`ln -s` steps made since its last message: step index, identity.
    pub(crate) pending_nodes: Vec<(usize, FileId)>,
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
    /// In the runtime: the files init's `mknod`/`ln -s` steps made, as init reported them
    /// (step index, identity).
    pub(crate) init_nodes: Vec<(usize, FileId)>,
    /// The container's id and bundle, for the state hooks read, when the plan writes no
    /// state (`start`, `delete`).
    pub(crate) container: Option<(String, HostPath)>,
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
            init_nodes: Vec::new(),
            container: None,
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

    /// Tells the backend which container a plan that writes no state acts on (`start`,
    /// `delete`), for the state its hooks read on stdin.
    pub fn with_container(mut self, id: &str, bundle: &HostPath) -> Self {
        self.container = Some((id.to_owned(), bundle.clone()));
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

    /// Like [`LinuxBackend::wait_exit`], forwarding the signals this process receives
    /// meanwhile to the container's process, as `runc run` does in the foreground: a
    /// supervisor's SIGTERM to berth reaches the container, which decides what it means.
    /// Signals that report a fault of berth itself (SEGV, BUS, ...) are not forwarded, nor
    /// SIGCHLD, by which the wait learns of the exit. The signal mask is restored after.
    pub fn wait_exit_forwarding(&mut self, plan: &Plan) -> Result<i32, LinuxError> {
        use nix::sys::signal::{SigSet, SigmaskHow};
        use nix::sys::wait::WaitPidFlag;

        self.finish(plan)?;
        let Some(link) = self.link.as_mut() else {
            return Err(LinuxError::Protocol {
                step: "wait".to_owned(),
                got: "no init process".to_owned(),
            });
        };
        link.sock = None;
        let pid = link.pid;
        let sys = |call, errno| LinuxError::Sys {
            step: "wait".to_owned(),
            call,
            errno,
        };
        let mut set = SigSet::empty();
        for sig in FORWARDED {
            set.add(sig);
        }
        set.add(Signal::SIGCHLD);
        // Blocked, they queue up for sigwait instead of acting on berth. The container's
        // process is not affected: it has its own mask since the clone.
        let old = set
            .thread_swap_mask(SigmaskHow::SIG_BLOCK)
            .map_err(|e| sys("sigprocmask", e))?;
        let result = loop {
            // First the exit, then the wait: a SIGCHLD that came before the block is gone.
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => break Ok(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => break Ok(128 + sig as i32),
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => break Err(sys("waitpid", errno)),
            }
            match set.wait() {
                Ok(Signal::SIGCHLD) | Err(Errno::EINTR) => {}
                // The container may be exiting: a signal it no longer gets is no error.
                Ok(sig) => {
                    let _ = kill(pid, sig);
                }
                Err(errno) => break Err(sys("sigwait", errno)),
            }
        };
        if let Some(link) = self.link.as_mut().filter(|_| result.is_ok()) {
            link.state = InitState::Gone;
        }
        let restored = old.thread_set_mask().map_err(|e| sys("sigprocmask", e));
        let code = result?;
        restored?;
        Ok(code)
    }

    /// The pid of the process this backend spawned (the container's init, or an exec'd
    /// process), as this process's pid namespace sees it; `None` before the spawn. A caller
    /// that waits for it itself (`run` relaying a terminal) reaps it with `waitpid`.
    pub fn process_pid(&self) -> Option<i32> {
        self.link.as_ref().map(|l| l.pid.as_raw())
    }

    /// The signals a foreground `run` or `exec` passes on to the container's process
    /// ([`LinuxBackend::wait_exit_forwarding`] forwards them all; a terminal relay turns
    /// SIGWINCH into a resize instead).
    pub fn forwarded_signals() -> &'static [Signal] {
        &FORWARDED
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
    ) -> Result<MadeList, LinuxError> {
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
        if init_running && !matches!(step.op, Op::Wait(_)) {
            // Only init's exec hands control back without a signal (Plan::check).
            if index.is_some() {
                self.await_exec(plan, &text)?;
            } else {
                self.settle_init(plan, &text);
            }
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
                // The preliminary record learns init's pid (see `state-create`).
                if plan
                    .steps
                    .iter()
                    .any(|s| matches!(s.op, Op::StateCreate { .. }))
                {
                    let init = self.bound_pid(plan, *pid, &text)?;
                    crate::state::write_preliminary(plan, Some(init.as_raw())).at(&text)?;
                }
                self.trace_line(index, &text);
                Ok(())
            }
            Op::Kill { pid } => {
                self.kill(plan, *pid, &text)?;
                self.trace_line(index, &text);
                Ok(())
            }
            Op::Unlink { path } if index.is_none() => {
                let origin = init_node_steps(plan, step);
                if origin.is_empty() {
                    self.run_op(plan, step, &text)?;
                } else {
                    self.unlink_init_node(path, &origin).at(&text)?;
                }
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

    /// An init step seen by the runtime: init carries it out itself.
    fn note_init_step(&mut self) -> Result<(), LinuxError> {
        Ok(())
    }

    /// The undo of init's `mknod`/`ln -s` steps `origin` (one, in a sane plan): removes
    /// the file init reported making at `path`, if the path still names it; nothing when
    /// init reported none (its step did not run, or init died before it could say).
    fn unlink_init_node(
        &self,
        path: &berth_core::plan::Location,
        origin: &[usize],
    ) -> crate::error::SysResult<()> {
        let ids = self
            .init_nodes
            .iter()
            .filter(|(step, _)| origin.contains(step))
            .map(|(_, id)| *id);
        for id in ids {
            if crate::fs::remove_if_same(path, id, false, None)? {
                break;
            }
        }
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
                self.drop_fds_init_took(plan, spawn_index + 1);
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

    /// After the clone: closes the runtime's copies of the bound fds that no runtime step
    /// from `from` on uses (init has its own; the console socket's listener must see the
    /// connection end when init's copy goes).
    fn drop_fds_init_took(&mut self, plan: &Plan, from: usize) {
        let used: Vec<usize> = plan.steps[from.min(plan.steps.len())..]
            .iter()
            .filter(|s| s.actor == Actor::Runtime)
            .flat_map(|s| s.op.uses())
            .filter_map(|r| match r {
                AnyRef::Fd(fd) => Some(fd.index()),
                _ => None,
            })
            .collect();
        for (i, slot) in self.bound.iter_mut().enumerate() {
            if matches!(slot, Some(Bound::Fd(_))) && !used.contains(&i) {
                *slot = None;
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
                Op::Spawn { pid, .. } | Op::Adopt { pid, .. } => Some(pid),
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

    /// Receives init's next message that is not a report of what it made; those it takes
    /// into the handle table on the way.
    fn recv_from_init(&mut self, plan: &Plan, text: &str) -> Result<Received, LinuxError> {
        loop {
            let Some(sock) = self.link.as_ref().and_then(|l| l.sock.as_ref()) else {
                return Err(LinuxError::Protocol {
                    step: text.to_owned(),
                    got: "no channel to init in this process".to_owned(),
                });
            };
            match recv_msg(sock).call("recv").at(text)? {
                Received::Msg(Msg::Report(items)) => {
                    for item in items {
                        self.take_init_report(plan, item, text)?;
                    }
                }
                other => return Ok(other),
            }
        }
    }

    /// Takes in one item of init's report: entries appended to its made-list (which one
    /// of init's `mkdir -p`-like steps must bind), or the file of its `mknod`/`ln -s` step.
    fn take_init_report(&mut self, plan: &Plan, item: Made, text: &str) -> Result<(), LinuxError> {
        let protocol = |got: String| LinuxError::Protocol {
            step: text.to_owned(),
            got,
        };
        match item {
            Made::Node { step, id } => {
                let index = usize::try_from(step).ok().filter(|i| {
                    plan.steps.get(*i).is_some_and(|s| {
                        s.actor == Actor::Init
                            && matches!(s.op, Op::Mknod { .. } | Op::Symlink { .. })
                    })
                });
                let Some(index) = index else {
                    return Err(protocol(format!(
                        "a node made by step {step}, not init's mknod or ln -s"
                    )));
                };
                self.init_nodes.push((index, id));
            }
            Made::List { handle, entries } => {
                let index = usize::try_from(handle)
                    .ok()
                    .filter(|h| made_by_init(plan, *h));
                let Some(index) = index else {
                    return Err(protocol(format!(
                        "a made-list for handle {handle}, which no init step binds"
                    )));
                };
                match self.bound.get_mut(index) {
                    Some(Some(Bound::Made(m))) => m.paths.extend(entries),
                    _ => self.bind(
                        index,
                        Bound::Made(MadeList {
                            paths: entries,
                            ..MadeList::default()
                        }),
                    ),
                }
            }
        }
        Ok(())
    }

    /// The runtime's `wait P`: blocks until init signals P or reports its failure.
    fn wait_for_init(
        &mut self,
        plan: &Plan,
        point: SyncPoint,
        text: &str,
    ) -> Result<(), LinuxError> {
        self.link_for(plan, text)?;
        let got = self.recv_from_init(plan, text)?;
        let link = self.link_for(plan, text)?;
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
        if link.sock.is_some() {
            let got = self.recv_from_init(plan, text)?;
            let Some(link) = self.link.as_mut() else {
                return Ok(());
            };
            match got {
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

    /// In a rollback while init is still carrying out its steps (a runtime `wait` failed
    /// before init reached its signal): lets it reach its next stop (a signal, its exec, or
    /// its end) and takes in what it reports having made, so that the undos that follow
    /// know all of it.
    fn settle_init(&mut self, plan: &Plan, text: &str) {
        loop {
            let Some(link) = self.link.as_ref() else {
                return;
            };
            if link.state != InitState::Running {
                return;
            }
            if link.sock.is_none() {
                let _ = self.await_exec(plan, text);
                return;
            }
            let got = self.recv_from_init(plan, text);
            let Some(link) = self.link.as_mut() else {
                return;
            };
            match got {
                Ok(Received::Msg(Msg::Signal(_))) => link.state = InitState::Waiting,
                Ok(Received::Eof) => {
                    link.state = InitState::Execd;
                    link.sock = None;
                }
                Ok(Received::Msg(_) | Received::Garbage) | Err(_) => link.state = InitState::Gone,
            }
        }
    }

    /// `kill -KILL PID` and wait until it is gone (reaped). For init still waiting at a sync point, an `Abort`
    /// first, so that it ends by itself if it can (it undoes nothing: see the module docs);
    /// the SIGKILL follows at once either way, and with init its mount namespace goes.
    fn kill(&mut self, plan: &Plan, r: PidRef, text: &str) -> Result<(), LinuxError> {
        let pid = self.bound_pid(plan, r, text)?;
        let ours = self.link.as_ref().is_some_and(|l| l.pid == pid);
        if let Some(link) = self.link.as_mut().filter(|_| ours) {
            if link.state == InitState::Waiting
                && let Some(sock) = link.sock.as_ref()
            {
                // Best effort: SIGKILL ends init whether or not it read this.
                let _ = send_msg(sock, &Msg::Abort);
            }
            link.state = InitState::Gone;
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

/// The signals a foreground `run` passes on to the container (every catchable one but
/// those that report a fault of berth itself, SIGCHLD, and SIGPIPE, which berth's own
/// writes would raise while it is blocked).
const FORWARDED: [Signal; 19] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGTERM,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGURG,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGWINCH,
    Signal::SIGIO,
    Signal::SIGPWR,
];

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
            // A zombie whose parent does not reap it (a container's init after `create`
            // exited is reparented, maybe to an init that never reaps) is gone all the same.
            _ if u32::try_from(pid.as_raw())
                .ok()
                .and_then(crate::state::proc_stat)
                .is_none_or(|s| s.is_dead()) =>
            {
                return Ok(());
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    Err(("wait for exit", Errno::ETIMEDOUT))
}

/// Whether made-list handle `index` is bound by one of init's steps.
pub(crate) fn made_by_init(plan: &Plan, index: usize) -> bool {
    plan.steps.iter().any(|s| {
        s.actor == Actor::Init
            && matches!(
                &s.op,
                Op::MkdirAll { made, .. } | Op::MkMountPoint { made, .. } if made.index() == index
            )
    })
}

/// The indices of init's `mknod`/`ln -s` steps whose undo is `undo_step`.
fn init_node_steps(plan: &Plan, undo_step: &Step) -> Vec<usize> {
    plan.steps
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.actor == Actor::Init
                && matches!(s.op, Op::Mknod { .. } | Op::Symlink { .. })
                && berth_core::plan::undo(s).as_ref() == Some(undo_step)
        })
        .map(|(i, _)| i)
        .collect()
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
