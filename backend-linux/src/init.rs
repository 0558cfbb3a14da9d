//! The init process's side: after the clone, init runs its own steps of the plan, in order.
//!
//! Init is a copy of the runtime (same memory, same plan, a copy of the handle table), so
//! it needs nothing from the runtime but the go-ahead at each `wait`. It skips the runtime's
//! steps: [`berth_core::plan::Plan::check`] guarantees that between two init steps the
//! runtime acts only after an init `signal` and before a runtime `signal` that init waits
//! for. When one of its steps fails, or the runtime sends `Abort` (or dies), init reports
//! and `_exit`s; it never returns into the runtime's code, and it undoes nothing: its mounts
//! die with its mount namespace, and what it made on disk the runtime removes, from the
//! reports init sends before each of its messages (see [`crate::backend`]).

use std::os::fd::{AsFd, OwnedFd};
use std::panic::AssertUnwindSafe;

use berth_core::plan::{Actor, Op, Plan, Step, SyncPoint, undo};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::backend::{Bound, InitSide, LinuxBackend, Role};
use crate::error::LinuxError;
use crate::proto::{Made, Msg, Received, recv_msg, report_messages, send_msg};

/// Why init stops before its last step.
enum Stop {
    /// One of its steps failed.
    Failed(LinuxError),
    /// The runtime asked it to (or is gone).
    Abort,
}

impl LinuxBackend {
    /// Turns this copy of the runtime into init: runs the init steps from `from` on, then
    /// exits. Never returns.
    pub(crate) fn become_init(
        &mut self,
        plan: &Plan,
        from: usize,
        sock: OwnedFd,
        fifo: Option<OwnedFd>,
    ) -> ! {
        // Init resolves a hundred locations in one root within milliseconds: cache it.
        crate::fs::cache_roots();
        self.link = None;
        self.start_fifo = None;
        self.role = Role::Init(InitSide {
            sock: Some(sock),
            fifo,
            host_pid: 0,
            pending_made: Vec::new(),
            pending_nodes: Vec::new(),
        });
        let code = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.take_stdio();
            self.init_main(plan, from)
        }))
        .unwrap_or(255);
        crate::sys::exit_now(code)
    }

    fn take_stdio(&mut self) {
        let [stdin, stdout, stderr] = std::mem::take(&mut self.stdio);
        // Failing to dup2 onto 0-2 leaves the inherited stdio: nothing better to do before
        // the runtime can be told, and the container's output then goes to the runtime's.
        if let Some(fd) = stdin {
            let _ = nix::unistd::dup2_stdin(fd);
        }
        if let Some(fd) = stdout {
            let _ = nix::unistd::dup2_stdout(fd);
        }
        if let Some(fd) = stderr {
            let _ = nix::unistd::dup2_stderr(fd);
        }
    }

    fn side(&mut self) -> Option<&mut InitSide> {
        match &mut self.role {
            Role::Init(side) => Some(side),
            Role::Runtime => None,
        }
    }

    fn init_main(&mut self, plan: &Plan, from: usize) -> i32 {
        let first = match self.side().and_then(|s| s.sock.as_ref()) {
            Some(sock) => recv_msg(sock),
            None => return 1,
        };
        match first {
            Ok(Received::Msg(Msg::Pid(pid))) => {
                if let Some(side) = self.side() {
                    side.host_pid = pid;
                }
            }
            // The runtime died before it could tell us anything: nothing done, nothing to undo.
            _ => return 1,
        }
        for (index, step) in plan.steps.iter().enumerate().skip(from) {
            if step.actor != Actor::Init {
                continue;
            }
            match self.init_step(plan, index, step) {
                Ok(()) => {}
                Err(Stop::Abort) => {
                    self.send_aborted();
                    return 1;
                }
                Err(Stop::Failed(err)) => {
                    self.report(index, &err);
                    return 1;
                }
            }
        }
        // Init ran out of steps without an exec (a plan made by hand): its namespaces stay
        // while the runtime may still use them, until it is done (end of file) or aborts.
        if self.flush_made().is_err() {
            return 1;
        }
        loop {
            let got = match self.side().and_then(|s| s.sock.as_ref()) {
                Some(sock) => recv_msg(sock),
                None => return 0,
            };
            match got {
                Ok(Received::Msg(Msg::Abort)) => {
                    self.send_aborted();
                    return 1;
                }
                Ok(Received::Msg(_) | Received::Garbage) => continue,
                Ok(Received::Eof) | Err(_) => return 0,
            }
        }
    }

    /// Tells the runtime (if it still listens) what init made, then that it aborts.
    fn send_aborted(&mut self) {
        if self.flush_made().is_ok()
            && let Some(sock) = self.side().and_then(|s| s.sock.as_ref())
        {
            let _ = send_msg(sock, &Msg::Aborted);
        }
    }

    /// Notes what a step just made, for the next report to the runtime.
    fn note_made(&mut self, index: usize, step: &Step) {
        let pivoted = self.pivoted.clone();
        let made = match &step.op {
            Op::MkdirAll { made, .. } | Op::MkMountPoint { made, .. } => Some(made.index()),
            _ => None,
        };
        // Only what the runtime will undo: a node whose undo is the runtime's unlink.
        let node = match &step.op {
            Op::Mknod { path: loc, .. } | Op::Symlink { link: loc, .. } if undo(step).is_some() => {
                crate::fs::file_id(loc, pivoted.as_ref()).ok()
            }
            _ => None,
        };
        if let Some(side) = self.side() {
            side.pending_made.extend(made);
            side.pending_nodes.extend(node.map(|id| (index, id)));
        }
    }

    /// Sends the runtime what init made since its last message: every made-list bound
    /// since, in the host's view, and every node. Nothing when the runtime is gone.
    fn flush_made(&mut self) -> nix::Result<()> {
        let pivoted = self.pivoted.clone();
        let Role::Init(side) = &mut self.role else {
            return Ok(());
        };
        let made = std::mem::take(&mut side.pending_made);
        let nodes = std::mem::take(&mut side.pending_nodes);
        let Some(sock) = side.sock.as_ref() else {
            return Ok(());
        };
        let mut items = Vec::new();
        for handle in made {
            let entries: Vec<crate::fs::MadeEntry> = match self.bound.get(handle) {
                Some(Some(Bound::Made(m))) => m
                    .paths
                    .iter()
                    .map(|e| crate::fs::MadeEntry {
                        loc: crate::fs::host_view(&e.loc, pivoted.as_ref()),
                        ..e.clone()
                    })
                    .collect(),
                _ => continue,
            };
            // An empty list is the same as none to the runtime: nothing to remove.
            if entries.is_empty() {
                continue;
            }
            let handle = u32::try_from(handle).map_err(|_| nix::errno::Errno::EOVERFLOW)?;
            items.push(Made::List { handle, entries });
        }
        for (step, id) in nodes {
            let step = u32::try_from(step).map_err(|_| nix::errno::Errno::EOVERFLOW)?;
            items.push(Made::Node { step, id });
        }
        for msg in report_messages(items) {
            send_msg(sock, &msg)?;
        }
        Ok(())
    }

    fn init_step(&mut self, plan: &Plan, index: usize, step: &Step) -> Result<(), Stop> {
        let text = plan.step_text(step);
        match &step.op {
            Op::Wait(point) => {
                self.init_wait(*point, &text)?;
                self.check_fault(Some(index), &text).map_err(Stop::Failed)?;
                self.trace_line(Some(index), &text);
                Ok(())
            }
            Op::Signal(point) => {
                self.check_fault(Some(index), &text).map_err(Stop::Failed)?;
                if *point == SyncPoint::Created {
                    // runc's rule: a program that is not there fails `create`, which clients
                    // report as such (podman: exit 127), not the container after `start`.
                    check_program(plan, index).map_err(Stop::Failed)?;
                }
                self.trace_line(Some(index), &text);
                self.flush_made().map_err(|_| Stop::Abort)?;
                let Some(sock) = self.side().and_then(|s| s.sock.as_ref()) else {
                    return Err(Stop::Abort);
                };
                send_msg(sock, &Msg::Signal(*point)).map_err(|_| Stop::Abort)
            }
            Op::Exec { argv, env } => {
                self.check_fault(Some(index), &text).map_err(Stop::Failed)?;
                // What init made since its last signal (nothing, in a planned create) goes
                // while a runtime may still listen.
                self.flush_made().map_err(|_| Stop::Abort)?;
                self.trace_line(Some(index), &text);
                // Only returns on failure.
                Err(Stop::Failed(crate::process::exec(argv, env, &text)))
            }
            _ => {
                self.check_fault(Some(index), &text).map_err(Stop::Failed)?;
                self.run_op(plan, step, &text).map_err(Stop::Failed)?;
                self.note_made(index, step);
                self.trace_line(Some(index), &text);
                Ok(())
            }
        }
    }

    /// Init's `wait P`: a `Go(P)` on the socket; for the start barrier, a byte on the fifo.
    fn init_wait(&mut self, point: SyncPoint, text: &str) -> Result<(), Stop> {
        let protocol = |got: String| {
            Stop::Failed(LinuxError::Protocol {
                step: text.to_owned(),
                got,
            })
        };
        let has_fifo = self.side().is_some_and(|s| s.fifo.is_some());
        if point == SyncPoint::Start && has_fifo {
            return self.wait_start(text);
        }
        let Some(sock) = self.side().and_then(|s| s.sock.as_ref()) else {
            return Err(Stop::Abort);
        };
        match recv_msg(sock) {
            Ok(Received::Msg(Msg::Go(p))) if p == point => Ok(()),
            Ok(Received::Msg(Msg::Abort) | Received::Eof) => Err(Stop::Abort),
            Ok(other) => Err(protocol(format!("{other:?}"))),
            Err(errno) => Err(Stop::Failed(LinuxError::Sys {
                step: text.to_owned(),
                call: "recv",
                errno,
            })),
        }
    }

    /// Blocks at the start barrier until a `start` writes to the fifo. The runtime closing
    /// the socket here is `create` exiting, not an abort; an explicit `Abort` still is.
    fn wait_start(&mut self, text: &str) -> Result<(), Stop> {
        let sys = |call: &'static str, errno: Errno| {
            Stop::Failed(LinuxError::Sys {
                step: text.to_owned(),
                call,
                errno,
            })
        };
        loop {
            let Some(side) = self.side() else {
                return Err(Stop::Abort);
            };
            let Some(fifo) = side.fifo.as_ref() else {
                return Err(Stop::Abort);
            };
            let mut fds = vec![PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
            if let Some(sock) = side.sock.as_ref() {
                fds.push(PollFd::new(sock.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(sys("poll", e)),
                Ok(_) => {}
            }
            let fifo_ready = fds[0].any().unwrap_or(false);
            let sock_ready = fds.get(1).is_some_and(|f| f.any().unwrap_or(false));
            if fifo_ready {
                let mut byte = [0u8; 1];
                match nix::unistd::read(fifo, &mut byte) {
                    Ok(1) => return Ok(()),
                    Err(Errno::EAGAIN | Errno::EINTR) => continue,
                    // A writer that left without writing: a `start` killed half-way.
                    Ok(_) => return Err(Stop::Abort),
                    Err(e) => return Err(sys("read exec.fifo", e)),
                }
            }
            if sock_ready {
                let got = side.sock.as_ref().map(recv_msg);
                match got {
                    Some(Ok(Received::Msg(Msg::Abort))) => return Err(Stop::Abort),
                    // `create` is done and gone: wait for `start` alone.
                    Some(Ok(Received::Eof)) | Some(Err(_)) => side.sock = None,
                    _ => {}
                }
            }
        }
    }

    /// Tells the runtime that step `index` failed; with no runtime left (after `create`),
    /// says it on stderr, the container's, as runc's init does.
    fn report(&mut self, index: usize, err: &LinuxError) {
        let msg = Msg::Failed {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            errno: err.errno().map_or(0, |e| e as i32),
            detail: err.detail(),
        };
        let sent = self.flush_made().is_ok()
            && self
                .side()
                .and_then(|s| s.sock.as_ref())
                .is_some_and(|sock| send_msg(sock, &msg).is_ok());
        if !sent {
            eprintln!("berth: init: {err}");
        }
    }
}

/// Checks that the program of init's `exec` after step `from` can be found and run, as
/// execve will look for it (see [`crate::process::find_program`]).
fn check_program(plan: &Plan, from: usize) -> Result<(), LinuxError> {
    let exec = plan.steps.iter().skip(from + 1).find_map(|s| match &s.op {
        Op::Exec { argv, env } if s.actor == Actor::Init => Some((s, argv, env)),
        _ => None,
    });
    match exec {
        Some((step, argv, env)) => {
            crate::process::find_program(argv, env, &plan.step_text(step)).map(drop)
        }
        None => Ok(()),
    }
}
