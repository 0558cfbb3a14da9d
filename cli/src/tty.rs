//! A terminal for a foreground `run` or `exec` without `--console-socket`, as runc gives
//! one: berth is its own console socket's listener, receives the container's pty master,
//! puts the user's terminal in raw mode, copies its stdin to the master and the master to
//! its stdout, resizes the container's pty when its own terminal is resized (SIGWINCH),
//! forwards the other signals it gets to the container's process, and returns that
//! process's exit code.
//!
//! The console socket lives in a private directory (mode 0700, made with `mkdir`, which
//! fails rather than follow anything already there) under the temp dir, not under
//! `--root`, where `list` would take it for a container; it goes once the master came.
//!
//! Invariant: the user's terminal is restored on every way out of [`relay`] (its return, an
//! error): while it is raw, every signal berth would act on is blocked and read from a
//! signalfd instead, so none ends berth meanwhile (SIGKILL alone can). The window size the
//! container's pty starts with is the user's terminal's, set by init before the process
//! runs (`process.consoleSize`, see [`size_console`]).

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use berth_backend_linux::LinuxBackend;
use berth_core::config::Config;
use berth_core::plan::Plan;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How long berth waits for the master on a connection init has made.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// How long berth goes on copying the master's output once the process has exited (a
/// process it left behind may hold the pty and write on).
const DRAIN_FOR: Duration = Duration::from_secs(1);

/// berth's own console socket: where init sends the pty master of a foreground terminal.
#[derive(Debug)]
pub(crate) struct ConsoleSocket {
    /// The socket's path, `DIR/console.sock`.
    path: PathBuf,
    /// The private directory made for it, removed on drop; `None` for a dry run.
    dir: Option<PathBuf>,
    /// The listener; `None` for a dry run.
    listener: Option<UnixListener>,
}

impl ConsoleSocket {
    /// Makes a private directory under the temp dir and listens on a socket in it.
    pub(crate) fn bind() -> anyhow::Result<ConsoleSocket> {
        let base = std::env::temp_dir();
        let mut attempt = 0;
        let dir = loop {
            let dir = base.join(dir_name(attempt));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break dir,
                // Someone else's directory (or our earlier try's): another name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => {
                    attempt += 1;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("making {}", dir.display()));
                }
            }
        };
        let path = dir.join("console.sock");
        let mut socket = ConsoleSocket {
            path,
            dir: Some(dir),
            listener: None,
        };
        let listener = UnixListener::bind(&socket.path)
            .with_context(|| format!("listening on {}", socket.path.display()))?;
        socket.listener = Some(listener);
        Ok(socket)
    }

    /// The socket a dry run's plan names: nothing is made.
    pub(crate) fn planned() -> ConsoleSocket {
        ConsoleSocket {
            path: std::env::temp_dir()
                .join(format!("berth-console-{}", std::process::id()))
                .join("console.sock"),
            dir: None,
            listener: None,
        }
    }

    /// The socket's path, for `CreateOptions::console_socket`.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master init sent: the connection was made by the runtime before the clone
    /// (a plan step), so it is waiting to be accepted once the plan has run.
    fn receive(&self) -> anyhow::Result<OwnedFd> {
        let listener = self
            .listener
            .as_ref()
            .ok_or_else(|| anyhow!("no console socket to receive the terminal on"))?;
        listener
            .set_nonblocking(true)
            .context("console socket: setting O_NONBLOCK")?;
        let (stream, _) = listener
            .accept()
            .context("console socket: the container never connected")?;
        stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_read_timeout(Some(RECV_TIMEOUT)))
            .context("console socket: setting a timeout")?;
        berth_backend_linux::recv_fd(&stream).context("receiving the container's pty master")
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        self.listener = None;
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_file(&self.path);
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// `berth-console-PID-NANOS[-N]`: unique among berth processes and their retries.
fn dir_name(attempt: u32) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("berth-console-{}-{nanos}-{attempt}", std::process::id())
}

/// One of berth's standard streams.
#[derive(Debug)]
enum StdStream {
    In(std::io::Stdin),
    Out(std::io::Stdout),
    Err(std::io::Stderr),
}

impl AsFd for StdStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            StdStream::In(s) => s.as_fd(),
            StdStream::Out(s) => s.as_fd(),
            StdStream::Err(s) => s.as_fd(),
        }
    }
}

/// The user's terminal: berth's stdin if it is a terminal, else its stdout, else its
/// stderr (runc looks at all three, as any of them may be redirected).
fn host_terminal() -> Option<StdStream> {
    [
        StdStream::In(std::io::stdin()),
        StdStream::Out(std::io::stdout()),
        StdStream::Err(std::io::stderr()),
    ]
    .into_iter()
    .find(|s| nix::unistd::isatty(s).unwrap_or(false))
}

/// The user's terminal's window size (rows, columns), if there is a terminal and it has a
/// size.
fn host_size() -> Option<(u16, u16)> {
    let size = berth_backend_linux::get_winsize(host_terminal()?).ok()?;
    (size.0 > 0 && size.1 > 0).then_some(size)
}

/// Gives the container's pty the user's terminal's size from the start (before the process
/// runs: init sets `process.consoleSize`); a config without a terminal is left alone, and so
/// is its own `consoleSize` when berth has no terminal to measure.
pub(crate) fn size_console(config: &mut Config) {
    if let Some(process) = config.process.as_mut().filter(|p| p.terminal)
        && let Some((rows, cols)) = host_size()
    {
        process.console_size = Some((u32::from(rows), u32::from(cols)));
    }
}

/// Relays the container's terminal to berth's stdio until the container's process exits;
/// returns its exit code (`128 + N` when signal N killed it). `plan` has been executed by
/// `backend`, which spawned the process and connected to `socket`.
pub(crate) fn relay(
    socket: ConsoleSocket,
    backend: &mut LinuxBackend,
    plan: &Plan,
) -> anyhow::Result<i32> {
    // Past init's exec: the master was sent before it, or the exec failed and this says so.
    backend.finish(plan)?;
    let pid = backend
        .process_pid()
        .map(Pid::from_raw)
        .ok_or_else(|| anyhow!("no container process to relay a terminal for"))?;
    let result = relay_to(socket, pid);
    // A process berth can no longer relay goes rather than run on with nobody at its
    // terminal; only while it is unreaped (alive, or a zombie), so its pid is still its own.
    if result.is_err()
        && matches!(
            waitpid(pid, Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::StillAlive)
        )
    {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    }
    result
}

/// [`relay`] once the process runs: receives the master and copies until `pid` exits.
fn relay_to(socket: ConsoleSocket, pid: Pid) -> anyhow::Result<i32> {
    let master = socket.receive()?;
    drop(socket);
    let flags = fcntl(&master, FcntlArg::F_GETFL).context("fcntl(F_GETFL) on the pty master")?;
    fcntl(
        &master,
        FcntlArg::F_SETFL(OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK),
    )
    .context("making the pty master non-blocking")?;
    let terminal = host_terminal();
    let host = terminal.as_ref().map(AsFd::as_fd);
    // The terminal may have been resized since the plan took its size.
    if let Some(tty) = host {
        resize(tty, &master);
    }
    // Dropped in reverse: the terminal is restored while signals are still blocked.
    let signals = BlockedSignals::block().context("blocking signals for the terminal relay")?;
    let _raw = match host {
        Some(tty) => Some(RawMode::enter(tty).context("putting the terminal in raw mode")?),
        None => None,
    };
    let stdin = std::io::stdin();
    Relay {
        master: &master,
        stdin: Some(stdin.as_fd()),
        pending: Vec::new(),
        output: true,
        host,
        pid,
    }
    .run(&signals)
}

/// Copies the user's terminal's size to the container's pty (best effort: a terminal that
/// went away keeps its last size).
fn resize(host: BorrowedFd<'_>, master: &OwnedFd) {
    if let Ok((rows, cols)) = berth_backend_linux::get_winsize(host) {
        let _ = berth_backend_linux::set_winsize(master, rows, cols);
    }
}

/// The user's terminal in raw mode; restored to what it was on drop.
struct RawMode<'a> {
    /// The terminal.
    tty: BorrowedFd<'a>,
    /// Its settings before.
    saved: Termios,
}

impl<'a> RawMode<'a> {
    /// Saves the terminal's settings and makes it raw (`cfmakeraw`, as runc's `SetRaw`):
    /// keys go to the container's pty as they are typed, ^C included, and its line
    /// discipline does the echo and the signals.
    fn enter(tty: BorrowedFd<'a>) -> nix::Result<RawMode<'a>> {
        let saved = tcgetattr(tty)?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(tty, SetArg::TCSANOW, &raw)?;
        Ok(RawMode { tty, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        // TCSADRAIN: what berth wrote is shown as it was meant to be before cooking resumes.
        if tcsetattr(self.tty, SetArg::TCSADRAIN, &self.saved).is_err() {
            let _ = tcsetattr(self.tty, SetArg::TCSANOW, &self.saved);
        }
    }
}

/// The forwarded signals and SIGCHLD, blocked and read from a signalfd; the mask is
/// restored on drop, after the signals that came meanwhile were taken (the process they
/// were for is gone).
struct BlockedSignals {
    /// Reads the blocked signals.
    fd: SignalFd,
    /// The mask before.
    old: SigSet,
}

impl BlockedSignals {
    fn block() -> nix::Result<BlockedSignals> {
        let mut set = SigSet::empty();
        for sig in LinuxBackend::forwarded_signals() {
            set.add(*sig);
        }
        set.add(Signal::SIGCHLD);
        let old = set.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
        match SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => Ok(BlockedSignals { fd, old }),
            Err(e) => {
                let _ = old.thread_set_mask();
                Err(e)
            }
        }
    }

    /// The next blocked signal that came, if any.
    fn next(&self) -> nix::Result<Option<Signal>> {
        loop {
            let Some(info) = self.fd.read_signal()? else {
                return Ok(None);
            };
            let number = i32::try_from(info.ssi_signo).unwrap_or(0);
            if let Ok(sig) = Signal::try_from(number) {
                return Ok(Some(sig));
            }
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        while let Ok(Some(_)) = self.next() {}
        let _ = self.old.thread_set_mask();
    }
}

/// The copy loop's state.
struct Relay<'a> {
    /// The container's pty master (non-blocking).
    master: &'a OwnedFd,
    /// berth's stdin, until it ends.
    stdin: Option<BorrowedFd<'a>>,
    /// Input read from stdin that the master did not take yet.
    pending: Vec<u8>,
    /// Whether berth's stdout still takes output.
    output: bool,
    /// The user's terminal, whose size the container's pty follows.
    host: Option<BorrowedFd<'a>>,
    /// The container's process.
    pid: Pid,
}

/// What happened to the master's side of the copy.
#[derive(Debug, PartialEq, Eq)]
enum MasterRead {
    /// Bytes came and were passed on.
    Data,
    /// Nothing to read now.
    Empty,
    /// The pty's other side is closed (EIO) for good.
    Closed,
}

impl Relay<'_> {
    /// Copies until the process exits; returns its exit code.
    fn run(mut self, signals: &BlockedSignals) -> anyhow::Result<i32> {
        let mut master_open = true;
        loop {
            // The exit first: a SIGCHLD that came before the block is not in the signalfd.
            if let Some(code) = self.reaped()? {
                self.drain();
                return Ok(code);
            }
            let mut master_events = PollFlags::POLLIN;
            if !self.pending.is_empty() {
                master_events |= PollFlags::POLLOUT;
            }
            // Input is read only when the master can take it: a container that does not
            // read leaves it in berth's stdin, not in a growing buffer.
            let stdin = self
                .stdin
                .filter(|_| master_open && self.pending.is_empty());
            let mut fds = vec![PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN)];
            let master_at = master_open.then(|| {
                fds.push(PollFd::new(self.master.as_fd(), master_events));
                fds.len() - 1
            });
            let stdin_at = stdin.map(|fd| {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                fds.len() - 1
            });
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll"),
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            let ready_at = |at: Option<usize>| at.is_some_and(|i| ready[i]);
            if ready[0] {
                while let Some(sig) = signals.next().context("reading signals")? {
                    self.on_signal(sig);
                }
            }
            if ready_at(master_at) {
                if self.copy_out() == MasterRead::Closed {
                    master_open = false;
                    self.pending.clear();
                }
                if master_open && !self.pending.is_empty() {
                    master_open = self.write_input();
                }
            }
            if ready_at(stdin_at) {
                self.read_input();
                if !self.pending.is_empty() {
                    master_open = self.write_input();
                }
            }
        }
    }

    /// The process's exit code, once it has exited (and is reaped).
    fn reaped(&self) -> anyhow::Result<Option<i32>> {
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(Some(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Some(128 + sig as i32)),
                Ok(_) => return Ok(None),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e).context("waitpid"),
            }
        }
    }

    /// As runc: SIGWINCH resizes the container's pty; SIGCHLD only wakes the loop (the
    /// exit is checked each round); every other signal goes to the container's process.
    fn on_signal(&self, sig: Signal) {
        match sig {
            Signal::SIGWINCH => {
                if let Some(tty) = self.host {
                    resize(tty, self.master);
                }
            }
            Signal::SIGCHLD => {}
            // The process may be exiting: a signal it no longer gets is no error.
            _ => {
                let _ = kill(self.pid, sig);
            }
        }
    }

    /// One read of the master, written to stdout.
    fn copy_out(&mut self) -> MasterRead {
        let mut buf = [0u8; 16 * 1024];
        match nix::unistd::read(self.master, &mut buf) {
            Ok(0) | Err(Errno::EIO) => MasterRead::Closed,
            Ok(n) => {
                self.output(&buf[..n]);
                MasterRead::Data
            }
            Err(Errno::EAGAIN | Errno::EINTR) => MasterRead::Empty,
            Err(_) => MasterRead::Closed,
        }
    }

    /// Writes to stdout; once that fails (the reader went away), output is dropped so the
    /// container never blocks on a full pty.
    fn output(&mut self, bytes: &[u8]) {
        if self.output {
            let mut out = std::io::stdout().lock();
            self.output = out.write_all(bytes).and_then(|()| out.flush()).is_ok();
        }
    }

    /// One read of stdin into `pending`; its end (or a hung-up terminal) ends the input.
    fn read_input(&mut self) {
        let Some(stdin) = self.stdin else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        match nix::unistd::read(stdin, &mut buf) {
            Ok(0) => self.stdin = None,
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => self.stdin = None,
        }
    }

    /// Writes what it can of `pending` to the master; false when the pty is gone.
    fn write_input(&mut self) -> bool {
        while !self.pending.is_empty() {
            match nix::unistd::write(self.master, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return true,
                Err(_) => {
                    self.pending.clear();
                    return false;
                }
            }
        }
        true
    }

    /// After the exit: what the process wrote before it is still in the pty; copies it
    /// until the pty is empty or closed (for at most [`DRAIN_FOR`]).
    fn drain(&mut self) {
        let deadline = Instant::now() + DRAIN_FOR;
        while Instant::now() < deadline && self.copy_out() == MasterRead::Data {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_dir_is_private_and_removed() {
        let socket = ConsoleSocket::bind().unwrap();
        let dir = socket.path().parent().unwrap().to_owned();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&dir).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
        assert!(socket.path().exists());
        drop(socket);
        assert!(!dir.exists());
    }

    #[test]
    fn a_dry_run_makes_nothing() {
        let socket = ConsoleSocket::planned();
        assert!(!socket.path().parent().unwrap().exists());
        assert!(socket.path().ends_with("console.sock"));
    }

    #[test]
    fn the_master_comes_over_the_socket() {
        let socket = ConsoleSocket::bind().unwrap();
        let client = std::os::unix::net::UnixStream::connect(socket.path()).unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = OwnedFd::from(a);
        let iov = [std::io::IoSlice::new(b"/dev/ptmx")];
        let fds = [std::os::fd::AsRawFd::as_raw_fd(&fd)];
        nix::sys::socket::sendmsg::<()>(
            std::os::fd::AsRawFd::as_raw_fd(&client),
            &iov,
            &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
            nix::sys::socket::MsgFlags::empty(),
            None,
        )
        .unwrap();
        let got = socket.receive().unwrap();
        let a = std::fs::metadata(format!("/proc/self/fd/{}", fds[0])).unwrap();
        let b = std::fs::metadata(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&got)
        ))
        .unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&a),
            std::os::unix::fs::MetadataExt::ino(&b)
        );
    }

    #[test]
    fn nothing_connected_is_an_error_not_a_hang() {
        let socket = ConsoleSocket::bind().unwrap();
        let err = socket.receive().unwrap_err();
        assert!(format!("{err:#}").contains("never connected"), "{err:#}");
    }
}
