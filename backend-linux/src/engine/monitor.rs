//! The monitor: one process per running container, berth's engine binary in that role.
//!
//! It outlives the `berth run` that started it (a new session, so the terminal's hangup
//! does not reach it), and is the container's subreaper: the runtime's `create` exits and
//! the container's init becomes the monitor's child, so the monitor reaps it and learns
//! its exit status. It holds the container's stdout and stderr (pipes, or a pty master for
//! `-t`) and writes them to `container.log` in docker's json-file format.
//!
//! Protocol with the engine (the monitor's stdout, one line each): `started PID` once the
//! container runs, or `error MESSAGE` when it could not be started; later `exited CODE`
//! when it exited and was cleaned up. A missing reader is not an error (the detached
//! `berth run -d` has exited by then).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};
use std::time::Duration;

use berth_core::jsonlog::{LineSplitter, Stream};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, umount2};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{Engine, EngineError, Settings, io_err, now_secs};
use crate::jsonlog::{LogWriter, now};
use crate::store::containers::{ContainerRecord, ContainerState, StateChange};

/// The monitor's pid file in a container's directory: `PID START_TIME`.
const PID_FILE: &str = "monitor.pid";
/// The json-file log in a container's directory.
pub const LOG_FILE: &str = "container.log";
/// Where an attached `berth run -t` writes its terminal's size (`ROWS COLS`) when it
/// changes; the monitor applies it to the pty.
pub const WINSIZE_FILE: &str = "winsize";

/// A started monitor, seen from the engine.
#[derive(Debug)]
pub struct Monitor {
    child: Child,
    out: io::BufReader<ChildStdout>,
    /// The container's init pid.
    pub pid: i32,
}

fn read_line(r: &mut impl io::BufRead) -> Option<String> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(n) if n > 0 => Some(line.trim_end().to_owned()),
        _ => None,
    }
}

impl Monitor {
    /// Spawns a monitor for container `c` and waits for its first report.
    pub fn spawn(engine: &Engine, c: &ContainerRecord) -> Result<Monitor, EngineError> {
        let settings = Engine::settings(c)?;
        let dir = engine.container_dir(&c.id);
        let log = dir.join("monitor.log");
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io_err("open", &log))?;
        let mut child = std::process::Command::new(&engine.engine)
            .arg("--data-root")
            .arg(&engine.data_root)
            .arg("--exec-root")
            .arg(&engine.exec_root)
            .arg("monitor")
            .arg(&c.id)
            .stdin(if settings.interactive {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(io_err("run", &engine.engine))?;
        let Some(stdout) = child.stdout.take() else {
            return Err(EngineError::Start {
                id: c.id.clone(),
                message: "the monitor has no stdout".to_owned(),
            });
        };
        let mut out = io::BufReader::new(stdout);
        let first = read_line(&mut out);
        match first.as_deref().and_then(|l| l.split_once(' ')) {
            Some(("started", pid)) => Ok(Monitor {
                child,
                out,
                pid: pid.parse().unwrap_or(0),
            }),
            Some(("error", message)) => {
                let _ = child.wait();
                Err(EngineError::Start {
                    id: c.id.clone(),
                    message: message.to_owned(),
                })
            }
            _ => {
                let _ = child.wait();
                let tail = fs::read_to_string(&log).unwrap_or_default();
                Err(EngineError::Start {
                    id: c.id.clone(),
                    message: format!(
                        "the monitor exited without starting it ({}): {}",
                        log.display(),
                        tail.lines().last().unwrap_or("")
                    ),
                })
            }
        }
    }

    /// Waits for the container's exit; its exit code, or `None` when the monitor died
    /// without reporting one. The monitor holds a `--rm` container until [`Monitor::close`]
    /// (so its log can still be read).
    pub fn exit_code(&mut self) -> Option<i32> {
        read_line(&mut self.out)
            .and_then(|l| l.strip_prefix("exited ").and_then(|c| c.parse().ok()))
    }

    /// Lets the monitor go (it removes a `--rm` container now) and waits for it to end.
    pub fn close(self) {
        let Monitor { mut child, out, .. } = self;
        drop(out);
        let _ = child.wait();
    }

    /// Leaves the monitor running on its own (`run -d`).
    pub fn detach(self) {}
}

/// `PID START_TIME` of the monitor recorded in `dir`, if that process still runs.
fn recorded_monitor(dir: &Path) -> Option<Pid> {
    let text = fs::read_to_string(dir.join(PID_FILE)).ok()?;
    let (pid, start) = text.trim().split_once(' ')?;
    let pid: u32 = pid.parse().ok()?;
    let start: u64 = start.parse().ok()?;
    let stat = crate::state::proc_stat(pid)?;
    (stat.start_time == start && !stat.is_dead()).then(|| Pid::from_raw(pid as i32))
}

/// Whether the monitor recorded in container directory `dir` still runs.
pub fn alive(dir: &Path) -> bool {
    recorded_monitor(dir).is_some()
}

/// Kills the monitor recorded in `dir` and its process group (the runtime commands it
/// runs), if it still runs (`rm -f` while a start is under way, or of a container whose
/// monitor hangs), and waits up to a second for it to go.
pub fn kill_monitor(dir: &Path) {
    if let Some(pid) = recorded_monitor(dir) {
        // The monitor leads its own session and process group (setsid).
        let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
        let _ = kill(pid, Signal::SIGKILL);
        for _ in 0..100 {
            if recorded_monitor(dir).is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Detaches the overlay mounted on `dir/rootfs`, if any.
pub fn unmount_rootfs(dir: &Path) -> Result<(), EngineError> {
    let target = dir.join("rootfs");
    loop {
        match umount2(&target, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(Errno::EINVAL | Errno::ENOENT) => return Ok(()),
            Err(errno) => {
                return Err(EngineError::Io {
                    op: "umount",
                    path: target,
                    source: errno.into(),
                });
            }
        }
    }
}

fn state_change(state: ContainerState) -> StateChange {
    StateChange {
        state,
        pid: None,
        exit_code: None,
        started: None,
        finished: None,
    }
}

/// Writes one protocol line to the engine (stdout); a gone reader is fine.
fn report(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The monitor role: runs container `id` to its end. Returns the process's exit status
/// (0 when the container ran, whatever its exit code; 1 when it could not be started).
pub fn run(engine: &Engine, id: &str) -> u8 {
    let _ = nix::unistd::setsid();
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let store = match engine.store() {
        Ok(s) => s,
        Err(e) => {
            report(&format!("error {e}"));
            return 1;
        }
    };
    let c = match store.container(id) {
        Ok(c) => c,
        Err(e) => {
            report(&format!("error {e}"));
            return 1;
        }
    };
    drop(store);
    let dir = engine.container_dir(&c.id);
    let me = std::process::id();
    if let Some(stat) = crate::state::proc_stat(me) {
        let _ = fs::write(dir.join(PID_FILE), format!("{me} {}", stat.start_time));
    }
    let code = match start_container(engine, &c, &dir) {
        Ok(running) => {
            report(&format!("started {}", running.pid));
            let code = running.pump();
            finish(engine, &c, &dir, Some(code), true);
            0
        }
        Err(err) => {
            eprintln!("berth monitor: {err}");
            report(&format!("error {err}"));
            finish(engine, &c, &dir, None, false);
            1
        }
    };
    let _ = fs::remove_file(dir.join(PID_FILE));
    code
}

/// A started container and what the monitor holds of it.
struct Running {
    pid: i32,
    /// stdout and stderr pipes (or the pty master, as stdout).
    outputs: Vec<(OwnedFd, Stream, LineSplitter)>,
    /// For `-i -t`: the monitor's stdin goes to the pty master.
    stdin_to: Option<OwnedFd>,
    /// For `-t`: the pty master, and the file (`winsize` in the container's directory)
    /// through which an attached `berth run -t` passes its terminal's new size, with the
    /// modification time last applied.
    resize: Option<(OwnedFd, PathBuf, Option<std::time::SystemTime>)>,
    log: Option<LogWriter>,
}

fn start_container(
    engine: &Engine,
    c: &ContainerRecord,
    dir: &Path,
) -> Result<Running, EngineError> {
    let settings: Settings = Engine::settings(c)?;
    // Whatever a crash left mounted there goes first.
    unmount_rootfs(dir)?;
    engine.mount_rootfs(&c.id, &settings.layers)?;
    let log_path = dir.join(LOG_FILE);
    let log = LogWriter::open(&log_path, settings.log_max_size, settings.log_max_files)
        .map_err(io_err("open", &log_path))?;
    let pid_file = dir.join("init.pid");
    let _ = fs::remove_file(&pid_file);
    let bundle = dir.to_string_lossy().into_owned();
    let pid_arg = pid_file.to_string_lossy().into_owned();
    let mut outputs = Vec::new();
    let mut stdin_to = None;
    let mut resize = None;
    let result = if settings.tty {
        let sock_path = engine.exec_root.join(format!("c-{}.sock", &c.id[..12]));
        let _ = fs::remove_file(&sock_path);
        fs::create_dir_all(&engine.exec_root).map_err(io_err("create", &engine.exec_root))?;
        let listener = UnixListener::bind(&sock_path).map_err(io_err("bind", &sock_path))?;
        let sock_arg = sock_path.to_string_lossy().into_owned();
        let status = engine
            .runtime_command(&[
                "create",
                "--bundle",
                &bundle,
                "--pid-file",
                &pid_arg,
                "--console-socket",
                &sock_arg,
                &c.id,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        let _ = fs::remove_file(&sock_path);
        let result = runtime_result("create", status);
        if result.is_ok() {
            listener
                .set_nonblocking(true)
                .map_err(io_err("accept", &sock_path))?;
            let (conn, _) = listener.accept().map_err(io_err("accept", &sock_path))?;
            let master = crate::recv_fd(&conn).map_err(|e| EngineError::Io {
                op: "receive the pty master on",
                path: sock_path.clone(),
                source: e.into(),
            })?;
            if settings.interactive {
                stdin_to = Some(master.try_clone().map_err(io_err("dup", &sock_path))?);
            }
            resize = Some((
                master.try_clone().map_err(io_err("dup", &sock_path))?,
                dir.join(WINSIZE_FILE),
                None,
            ));
            outputs.push((master, Stream::Stdout, LineSplitter::new(Stream::Stdout)));
        }
        result
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let mut cmd =
            engine.runtime_command(&["create", "--bundle", &bundle, "--pid-file", &pid_arg, &c.id]);
        cmd.stdin(if settings.interactive {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w));
        let status = cmd.status();
        drop(cmd);
        outputs.push((out_r, Stream::Stdout, LineSplitter::new(Stream::Stdout)));
        outputs.push((err_r, Stream::Stderr, LineSplitter::new(Stream::Stderr)));
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => {
                // The runtime's error went to the container's stderr: read it back.
                let mut text = String::new();
                if let Some((fd, _, _)) = outputs.pop() {
                    let _ = File::from(fd).read_to_string(&mut text);
                }
                Err(EngineError::Runtime {
                    command: "create".to_owned(),
                    message: if text.trim().is_empty() {
                        format!("exited with {s}")
                    } else {
                        text.trim().trim_start_matches("berth: ").to_owned()
                    },
                })
            }
            Err(e) => Err(io_err("run", &engine.runtime)(e)),
        }
    };
    result?;
    let pid: i32 = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| EngineError::Runtime {
            command: "create".to_owned(),
            message: format!("no pid in {}", pid_file.display()),
        })?;
    engine.runtime_ok(&["start", &c.id])?;
    let mut store = engine.store()?;
    store.set_container_state(
        &c.id,
        &StateChange {
            state: ContainerState::Running,
            pid: Some(pid),
            exit_code: None,
            started: Some(now_secs()),
            finished: None,
        },
    )?;
    Ok(Running {
        pid,
        outputs,
        stdin_to,
        resize,
        log: Some(log),
    })
}

fn runtime_result(command: &str, out: io::Result<std::process::Output>) -> Result<(), EngineError> {
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(EngineError::Runtime {
            command: command.to_owned(),
            message: String::from_utf8_lossy(&o.stderr)
                .trim()
                .trim_start_matches("berth: ")
                .to_owned(),
        }),
        Err(source) => Err(EngineError::Io {
            op: "run the runtime for",
            path: PathBuf::from(command),
            source,
        }),
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), EngineError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| EngineError::Io {
        op: "pipe",
        path: PathBuf::from("(pipe)"),
        source: e.into(),
    })
}

impl Running {
    /// Sets the pty's size when the `winsize` file (`ROWS COLS`) changed since last time.
    fn apply_resize(&mut self) {
        let Some((master, path, last)) = &mut self.resize else {
            return;
        };
        let Ok(modified) = fs::metadata(&*path).and_then(|m| m.modified()) else {
            return;
        };
        if *last == Some(modified) {
            return;
        }
        *last = Some(modified);
        let text = fs::read_to_string(&*path).unwrap_or_default();
        let mut words = text.split_whitespace().map(str::parse::<u16>);
        if let (Some(Ok(rows)), Some(Ok(cols))) = (words.next(), words.next()) {
            let _ = crate::set_winsize(&*master, rows, cols);
        }
    }

    /// Copies the container's output to the log until it exits; its exit code (128+N
    /// when killed by signal N, as docker reports).
    fn pump(mut self) -> i32 {
        let init = Pid::from_raw(self.pid);
        let mut code = None;
        let mut buf = vec![0u8; 32 * 1024];
        let stdin = io::stdin();
        let mut stdin_open = self.stdin_to.is_some();
        let tty = self.resize.is_some();
        loop {
            if self.outputs.is_empty() {
                break;
            }
            let mut fds: Vec<PollFd<'_>> = self
                .outputs
                .iter()
                .map(|(fd, _, _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
                .collect();
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            let timeout = match (code.is_some(), self.resize.is_some()) {
                (true, _) => 50u16,
                // A terminal's size changes are looked for five times a second.
                (false, true) => 200,
                (false, false) => 500,
            };
            let ready = poll(&mut fds, PollTimeout::from(timeout)).unwrap_or(0);
            let revents: Vec<PollFlags> = fds
                .iter()
                .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                .collect();
            drop(fds);
            if ready == 0 && code.is_some() {
                // The container exited and its outputs went quiet: what is left belongs
                // to processes it left behind (docker stops reading here too).
                break;
            }
            let mut closed = Vec::new();
            for (i, (fd, _stream, splitter)) in self.outputs.iter_mut().enumerate() {
                let Some(ev) = revents.get(i) else { continue };
                if ev.is_empty() {
                    continue;
                }
                match nix::unistd::read(&*fd, &mut buf) {
                    Ok(0) | Err(Errno::EIO) => closed.push(i),
                    Ok(n) => {
                        let time = now();
                        let mut lines = splitter.push(&buf[..n], time);
                        // A terminal's output goes out as it comes (a prompt has no
                        // newline); pipes' output is cut into lines, as docker does.
                        if tty && let Some(rest) = splitter.finish(time) {
                            lines.push(rest);
                        }
                        for line in lines {
                            if let Some(log) = &mut self.log {
                                let _ = log.write(&line);
                            }
                        }
                    }
                    Err(Errno::EINTR | Errno::EAGAIN) => {}
                    Err(_) => closed.push(i),
                }
            }
            if stdin_open
                && let Some(ev) = revents.get(self.outputs.len())
                && !ev.is_empty()
            {
                match nix::unistd::read(stdin.as_fd(), &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        if let Some(master) = &self.stdin_to {
                            let _ = write_all(master.as_fd(), &buf[..n]);
                        }
                    }
                }
            }
            for i in closed.into_iter().rev() {
                let (_, _, mut splitter) = self.outputs.remove(i);
                if let Some(line) = splitter.finish(now())
                    && let Some(log) = &mut self.log
                {
                    let _ = log.write(&line);
                }
            }
            self.apply_resize();
            if code.is_none() {
                code = reap(init, false);
            }
        }
        for (_, _, mut splitter) in self.outputs.drain(..) {
            if let Some(line) = splitter.finish(now())
                && let Some(log) = &mut self.log
            {
                let _ = log.write(&line);
            }
        }
        match code {
            Some(code) => code,
            None => reap(init, true).unwrap_or(255),
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reaps the monitor's children; the exit code of `init` once it has exited (blocking
/// for it when `block`).
fn reap(init: Pid, block: bool) -> Option<i32> {
    loop {
        let flags = if block {
            None
        } else {
            Some(WaitPidFlag::WNOHANG)
        };
        match waitpid(Pid::from_raw(-1), flags) {
            Ok(WaitStatus::Exited(pid, status)) if pid == init => return Some(status),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == init => {
                return Some(128 + signal as i32);
            }
            Ok(WaitStatus::StillAlive) => return None,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            // No children left: init was reaped by someone else, or never was ours.
            Err(_) => return None,
        }
    }
}

/// Waits (at most a minute) until the engine reading the monitor's reports has gone: a
/// foreground `berth run --rm` reads the log to its end before the container goes.
fn wait_for_reader_to_go() {
    let out = io::stdout();
    let mut fds = [PollFd::new(out.as_fd(), PollFlags::empty())];
    // POLLERR (or POLLHUP) comes back once the pipe's read end is closed.
    let _ = poll(&mut fds, PollTimeout::from(60_000u16));
}

/// After the container's end (or a failed start): the runtime's state, the mount, the
/// row's state, the `exited` report when `report_exit`; with `--rm`, then everything.
fn finish(engine: &Engine, c: &ContainerRecord, dir: &Path, code: Option<i32>, report_exit: bool) {
    if engine.runtime_root().join(&c.id).exists() {
        let _ = engine.runtime_ok(&["delete", "--force", &c.id]);
    }
    if let Err(e) = unmount_rootfs(dir) {
        eprintln!("berth monitor: {e}");
    }
    let auto_remove = Engine::settings(c).is_ok_and(|s| s.auto_remove);
    let Ok(mut store) = engine.store() else {
        return;
    };
    let change = match code {
        Some(code) => StateChange {
            state: ContainerState::Exited,
            pid: None,
            exit_code: Some(code),
            started: None,
            finished: Some(now_secs()),
        },
        None => state_change(ContainerState::Created),
    };
    if let Err(e) = store.set_container_state(&c.id, &change) {
        eprintln!("berth monitor: {e}");
    }
    if report_exit {
        report(&format!("exited {}", code.unwrap_or(255)));
        if auto_remove {
            wait_for_reader_to_go();
        }
    }
    if auto_remove {
        let _ = fs::remove_file(dir.join(PID_FILE));
        if let Err(e) = engine.cleanup(&mut store, c) {
            eprintln!("berth monitor: removing the container: {e}");
        }
    }
}
