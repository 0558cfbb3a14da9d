//! The harness shared by the engine's end-to-end test files: an [`Engine`] per case, with
//! its own `--data-root` and `--exec-root` in a tempdir and, if asked, a busybox image; on
//! drop it removes every container and network the case made (`rm -f`, `network rm`).

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::e2e_cli_support::{berth_bin, ok, text};
use crate::e2e_linux_support::Rootfs;

/// One case's engine.
pub(crate) struct Engine {
    /// Its tempdir, holding the roots and a busybox rootfs (`rootfs.root()`).
    pub(crate) rootfs: Rootfs,
}

impl Engine {
    /// An engine with no image yet.
    pub(crate) fn bare() -> Engine {
        Engine {
            rootfs: Rootfs::new(),
        }
    }

    /// An engine with the busybox rootfs imported as `name`; with `all_applets`, every
    /// applet is linked first (the harness's rootfs has a chosen few).
    pub(crate) fn with_busybox(name: &str, all_applets: bool) -> Engine {
        let e = Engine::bare();
        if all_applets {
            let bin = e.rootfs.root().join("bin");
            let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
            for applet in text(&list.stdout).lines() {
                let link = bin.join(applet);
                if applet != "busybox" && !link.exists() {
                    std::os::unix::fs::symlink("busybox", link).unwrap();
                }
            }
        }
        let tar = e.dir().join(format!("{name}.tar"));
        tar_dir(&e.rootfs.root(), &tar);
        ok(&e.run(&["import", tar.to_str().unwrap(), name]));
        e
    }

    /// The case's tempdir.
    pub(crate) fn dir(&self) -> &Path {
        self.rootfs.dir.path()
    }

    /// `--data-root`.
    pub(crate) fn data(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// `berth --data-root D --exec-root E ARGS`, stdin from /dev/null, in `/`.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(berth_bin());
        cmd.arg("--data-root")
            .arg(self.data())
            .arg("--exec-root")
            .arg(self.dir().join("exec"))
            .args(args)
            .current_dir("/")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs berth to its end.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs berth with `input` on its stdin.
    pub(crate) fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    /// The lines a successful command printed.
    pub(crate) fn lines(&self, args: &[&str]) -> Vec<String> {
        text(&ok(&self.run(args)))
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The full ids of every container (`ps -a -q --no-trunc`).
    pub(crate) fn ids(&self) -> Vec<String> {
        self.lines(&["ps", "-a", "-q", "--no-trunc"])
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let out = self.run(&["ps", "-a", "-q", "--no-trunc"]);
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.run(&["rm", "-f", id]);
        }
        let out = self.run(&["network", "ls", "-q"]);
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.run(&["network", "rm", id]);
        }
    }
}

/// `tar -C dir -cf out .`
pub(crate) fn tar_dir(dir: &Path, out: &Path) {
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success(), "tar of {}", dir.display());
}
