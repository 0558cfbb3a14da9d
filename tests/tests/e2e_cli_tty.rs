//! End-to-end through the `berth` binary (root, real kernel, busybox): a foreground `run`
//! and `exec` with a terminal and no `--console-socket`, where berth relays the container's
//! pty to its own terminal, as runc does.
//!
//! Each case opens a pty pair of its own, gives it a window size, and runs berth with the
//! pty's slave as its stdin, stdout and stderr (plain stdio: berth needs no controlling
//! terminal; the SIGWINCH a terminal's resize would bring is sent by hand). The case plays
//! the user on the master side. Every case cleans up even when it fails: berth is killed by
//! its pid, and the harness's guard deletes the containers with `delete --force`.

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_cli_support;
mod e2e_linux_support;

use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{Winsize, openpty};
use nix::sys::signal::{Signal, kill};
use nix::sys::termios::{LocalFlags, Termios, tcgetattr};
use nix::unistd::Pid;
use serde_json::{Value, json};

use e2e_cli_support::*;

fn main() {
    e2e_linux_support::run(&[
        (
            "run_gets_the_users_size_and_exit_code",
            run_gets_the_users_size_and_exit_code,
        ),
        (
            "run_relays_an_interactive_shell",
            run_relays_an_interactive_shell,
        ),
        (
            "run_follows_window_size_changes",
            run_follows_window_size_changes,
        ),
        (
            "run_forwards_signals_and_restores_the_terminal",
            run_forwards_signals_and_restores_the_terminal,
        ),
        (
            "run_without_a_terminal_of_its_own",
            run_without_a_terminal_of_its_own,
        ),
        (
            "exec_tty_relays_without_a_console_socket",
            exec_tty_relays_without_a_console_socket,
        ),
    ]);
}

/// How long any one wait of a case may take.
const TIMEOUT: Duration = Duration::from_secs(30);

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// A bundle whose process is `args` with a terminal, and `id` tracked for cleanup (its
/// cgroups come from a dry run of the same config without the terminal: a dry `create` of
/// a terminal needs a console socket).
fn tty_env(id: &str, args: &[&str]) -> Env {
    let env = Env::new("true");
    for applet in ["stty", "tty"] {
        std::os::unix::fs::symlink("busybox", env.path("bundle/rootfs/bin").join(applet)).unwrap();
    }
    env.track(id);
    let path = env.path("bundle/config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["terminal"] = json!(true);
    config["process"]["args"] = json!(args);
    config["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!("PS1=PROMPT> "));
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    env
}

/// The user's side: a pty pair of 33 rows and 101 columns, and berth running on its slave.
struct Session {
    master: OwnedFd,
    slave: OwnedFd,
    /// The slave's settings before berth ran.
    cooked: Termios,
    child: Option<Child>,
    /// Everything read from the master so far.
    out: Vec<u8>,
}

impl Session {
    /// `berth --root ROOT ARGS` with the slave as its stdin, stdout and stderr.
    fn start(env: &Env, args: &[&str]) -> Session {
        let size = Winsize {
            ws_row: 33,
            ws_col: 101,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(&size, None).unwrap();
        let cooked = tcgetattr(&pty.slave).unwrap();
        assert!(
            cooked
                .local_flags
                .contains(LocalFlags::ICANON | LocalFlags::ECHO)
        );
        let stdio = || Stdio::from(pty.slave.try_clone().unwrap());
        let child = Command::new(berth_bin())
            .arg("--root")
            .arg(env.root())
            .args(args)
            .env_remove("BERTH_TRACE")
            .stdin(stdio())
            .stdout(stdio())
            .stderr(stdio())
            .spawn()
            .unwrap();
        Session {
            master: pty.master,
            slave: pty.slave,
            cooked,
            child: Some(child),
            out: Vec::new(),
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.as_ref().unwrap().id()).unwrap())
    }

    fn text(&self) -> String {
        text(&self.out)
    }

    /// Reads what the master has, waiting at most `wait` for the first byte.
    fn pump(&mut self, wait: Duration) -> bool {
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) == 0 {
            return false;
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(&self.master, &mut buf) {
            Ok(n) if n > 0 => {
                self.out.extend_from_slice(&buf[..n]);
                true
            }
            _ => false,
        }
    }

    /// Reads until the output (after byte `from`) contains `needle`.
    fn expect(&mut self, from: usize, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !text(&self.out[from.min(self.out.len())..]).contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the output: {:?}",
                self.text()
            );
            self.pump(Duration::from_millis(100));
        }
    }

    fn write(&self, bytes: &[u8]) {
        let mut done = 0;
        while done < bytes.len() {
            done += nix::unistd::write(&self.master, &bytes[done..]).unwrap();
        }
    }

    /// Waits for berth to exit, reading its output meanwhile and after; returns its exit
    /// code.
    fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                while self.pump(Duration::from_millis(200)) {}
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "berth did not exit; output: {:?}",
                self.text()
            );
            self.pump(Duration::from_millis(50));
        }
    }

    /// The slave's settings now.
    fn termios(&self) -> Termios {
        tcgetattr(&self.slave).unwrap()
    }

    /// Once berth is gone, the user's terminal is as it was before (cooked, echoing).
    fn assert_restored(&self) {
        assert!(self.child.is_none(), "berth still runs");
        assert_eq!(self.termios(), self.cooked, "the terminal was not restored");
    }

    /// While berth runs, the user's terminal is raw.
    fn assert_raw(&self) {
        let now = self.termios();
        assert!(
            !now.local_flags
                .intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG),
            "the terminal is not raw: {now:?}"
        );
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Only this one pid: the guard of the Env deletes the container.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// berth's console socket directories left in the temp dir by berth process `pid`.
fn console_dirs_of(pid: Pid) -> Vec<String> {
    let prefix = format!("berth-console-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

fn run_gets_the_users_size_and_exit_code() {
    let id = unique("tty-size");
    let env = tty_env(&id, &["sh", "-c", "stty size; tty; exit 7"]);
    let mut s = Session::start(&env, &["run", "--bundle", &env.bundle(), &id]);
    let pid = s.pid();
    assert_eq!(s.wait(), 7, "output: {:?}", s.text());
    let out = s.text();
    assert!(out.contains("33 101\r\n"), "{out:?}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    s.assert_restored();
    assert_eq!(console_dirs_of(pid), Vec::<String>::new());
    env.assert_nothing_left();
}

fn run_relays_an_interactive_shell() {
    let id = unique("tty-sh");
    let env = tty_env(&id, &["sh"]);
    let mut s = Session::start(&env, &["run", "--bundle", &env.bundle(), &id]);
    s.expect(0, "PROMPT> ");
    s.assert_raw();
    let mark = s.out.len();
    // The shell's echo shows the quotes; only its output joins the word.
    s.write(b"echo hel\"\"lo\n");
    s.expect(mark, "hello\r\n");
    s.expect(mark, "PROMPT> ");
    s.write(b"exit 3\n");
    assert_eq!(s.wait(), 3, "output: {:?}", s.text());
    s.assert_restored();
    env.assert_nothing_left();
}

fn run_follows_window_size_changes() {
    let id = unique("tty-winch");
    let env = tty_env(&id, &["sh"]);
    let mut s = Session::start(&env, &["run", "--bundle", &env.bundle(), &id]);
    s.expect(0, "PROMPT> ");
    let mark = s.out.len();
    s.write(b"stty size\n");
    s.expect(mark, "33 101\r\n");
    s.expect(mark, "PROMPT> ");
    // The user's terminal is resized; its SIGWINCH is pending before the next line comes.
    berth_backend_linux::set_winsize(&s.slave, 40, 120).unwrap();
    kill(s.pid(), Signal::SIGWINCH).unwrap();
    let mark = s.out.len();
    s.write(b"stty size\n");
    s.expect(mark, "40 120\r\n");
    s.expect(mark, "PROMPT> ");
    s.write(b"exit\n");
    assert_eq!(s.wait(), 0, "output: {:?}", s.text());
    s.assert_restored();
    env.assert_nothing_left();
}

fn run_forwards_signals_and_restores_the_terminal() {
    // SIGTERM sent to berth reaches the container's process.
    let id = unique("tty-term");
    let script = "trap 'exit 9' TERM; echo ready; while true; do sleep 0.1; done";
    let env = tty_env(&id, &["sh", "-c", script]);
    let mut s = Session::start(&env, &["run", "--bundle", &env.bundle(), &id]);
    s.expect(0, "ready");
    s.assert_raw();
    kill(s.pid(), Signal::SIGTERM).unwrap();
    assert_eq!(s.wait(), 9, "output: {:?}", s.text());
    s.assert_restored();
    env.assert_nothing_left();
    drop(s);
    drop(env);

    // ^C typed at the raw terminal is a byte for the container's pty, whose line
    // discipline makes it the container's SIGINT.
    let id = unique("tty-int");
    let script = "trap 'exit 6' INT; echo ready; while true; do sleep 0.1; done";
    let env = tty_env(&id, &["sh", "-c", script]);
    let mut s = Session::start(&env, &["run", "--bundle", &env.bundle(), &id]);
    s.expect(0, "ready");
    s.write(b"\x03");
    assert_eq!(s.wait(), 6, "output: {:?}", s.text());
    s.assert_restored();
    env.assert_nothing_left();
}

fn run_without_a_terminal_of_its_own() {
    // stdin /dev/null, stdout a pipe: nothing to make raw or measure, the relay still runs.
    let id = unique("tty-none");
    let env = tty_env(&id, &["sh", "-c", "tty; exit 2"]);
    let out = env.berth(&["run", "--bundle", &env.bundle(), &id]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("/dev/pts/"), "{out:?}");
    env.assert_nothing_left();
}

fn exec_tty_relays_without_a_console_socket() {
    let id = unique("tty-exec");
    let env = Env::new("exec sleep 1000");
    for applet in ["stty", "tty"] {
        std::os::unix::fs::symlink("busybox", env.path("bundle/rootfs/bin").join(applet)).unwrap();
    }
    env.create_started(&id);
    let mut s = Session::start(
        &env,
        &["exec", "-t", &id, "sh", "-c", "stty size; tty; exit 5"],
    );
    assert_eq!(s.wait(), 5, "output: {:?}", s.text());
    let out = s.text();
    assert!(out.contains("33 101\r\n"), "{out:?}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    s.assert_restored();
    drop(s);

    // The same through `--process` with `terminal: true`, interactively.
    let file = env.path("process.json");
    std::fs::write(
        &file,
        json!({
            "terminal": true,
            "args": ["sh"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin", "PS1=PROMPT> "]
        })
        .to_string(),
    )
    .unwrap();
    let mut s = Session::start(&env, &["exec", "--process", &file.to_string_lossy(), &id]);
    s.expect(0, "PROMPT> ");
    s.assert_raw();
    let mark = s.out.len();
    s.write(b"stty size; echo hel\"\"lo\n");
    s.expect(mark, "33 101\r\n");
    s.expect(mark, "hello\r\n");
    s.write(b"exit 4\n");
    assert_eq!(s.wait(), 4, "output: {:?}", s.text());
    s.assert_restored();
    assert_eq!(env.status(&id), "running");
    ok(&env.berth(&["delete", "--force", &id]));
    env.assert_nothing_left();
}
