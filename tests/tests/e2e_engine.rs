//! End-to-end through `berth`'s engine commands (root, real kernel, busybox image made
//! here): `import`/`load`, `run` (foreground, `-d`, `--rm`), `logs`, `exec`, `stop`, `rm`,
//! `ps`, names, crash recovery and concurrency.
//!
//! Every case has its own `--data-root` and `--exec-root` in a tempdir; a guard removes
//! every container the case made (`berth rm -f`), then checks nothing is mounted there.

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_cli_support;
mod e2e_clients_support;
mod e2e_engine_support;
mod e2e_linux_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e_cli_support::{ok, text};
use e2e_engine_support::{Engine, tar_dir};
use e2e_linux_support::{mount_points_under, wait_until};

fn main() {
    e2e_linux_support::run(&[
        (
            "run_rm_prints_and_leaves_nothing",
            run_rm_prints_and_leaves_nothing,
        ),
        (
            "foreground_run_exits_with_the_code",
            foreground_run_exits_with_the_code,
        ),
        (
            "detached_web_logs_exec_stop_rm",
            detached_web_logs_exec_stop_rm,
        ),
        ("names_are_unique_and_resolve", names_are_unique_and_resolve),
        ("bad_input_is_refused_cleanly", bad_input_is_refused_cleanly),
        (
            "kill_9_during_run_then_rm_f_cleans",
            kill_9_during_run_then_rm_f_cleans,
        ),
        ("twenty_concurrent_runs", twenty_concurrent_runs),
        ("restart_and_wait", restart_and_wait),
        ("load_then_run_and_whiteouts", load_then_run_and_whiteouts),
        ("save_load_round_trip", save_load_round_trip),
        (
            "dry_run_shows_the_three_parts",
            dry_run_shows_the_three_parts,
        ),
        (
            "logs_follow_tail_timestamps_attach",
            logs_follow_tail_timestamps_attach,
        ),
        ("rmi_refuses_an_image_in_use", rmi_refuses_an_image_in_use),
        ("run_it_follows_the_terminal", run_it_follows_the_terminal),
    ]);
}

/// An engine with the harness's busybox imported as `busybox`.
fn engine() -> Engine {
    Engine::with_busybox("busybox", false)
}

impl Engine {
    /// What is left of containers on the host: mounts under the data root, container
    /// directories, cgroups named after them.
    fn leftovers(&self, ids: &[String]) -> Vec<String> {
        let mut left = mount_points_under(&self.data().to_string_lossy());
        if let Ok(entries) = std::fs::read_dir(self.data().join("containers")) {
            left.extend(entries.map(|e| e.unwrap().path().display().to_string()));
        }
        for id in ids {
            for base in [
                "/sys/fs/cgroup/memory/berth",
                "/sys/fs/cgroup/pids/berth",
                "/sys/fs/cgroup/unified/berth",
                "/sys/fs/cgroup/berth",
            ] {
                let p = Path::new(base).join(id);
                if p.exists() {
                    left.push(p.display().to_string());
                }
            }
        }
        left
    }
}

/// The stderr of a failed command, checking its exit status: 125 when berth itself failed
/// on `run`/`create` (docker's convention), 1 for other commands.
fn fails_with(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.starts_with("berth: ") && err.ends_with('\n'), "{err}");
    err
}

fn fails(out: &Output) -> String {
    fails_with(out, 1)
}

fn run_fails(out: &Output) -> String {
    fails_with(out, 125)
}

fn run_rm_prints_and_leaves_nothing() {
    let e = engine();
    let out = e.run(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(text(&ok(&out)), "hi\n");
    assert!(e.ids().is_empty(), "--rm left a row: {:?}", e.ids());
    assert_eq!(e.leftovers(&[]), Vec::<String>::new());
}

fn foreground_run_exits_with_the_code() {
    let e = engine();
    let out = e.run(&[
        "run",
        "--name",
        "three",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(text(&out.stdout), "out\n");
    assert!(text(&out.stderr).contains("err\n"), "{out:?}");
    let ps = text(&ok(&e.run(&["ps", "-a"])));
    assert!(ps.contains("Exited (3)"), "{ps}");
    assert!(ps.contains("three"), "{ps}");
    let logs = e.run(&["logs", "three"]);
    assert!(logs.status.success(), "{logs:?}");
    assert_eq!(text(&logs.stdout), "out\n");
    assert_eq!(text(&logs.stderr), "err\n");
    ok(&e.run(&["rm", "three"]));
    assert_eq!(e.leftovers(&[]), Vec::<String>::new());
}

fn detached_web_logs_exec_stop_rm() {
    let e = engine();
    let out = e.run(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "while true; do echo tick; sleep 1; done",
    ]);
    let id = text(&ok(&out)).trim().to_owned();
    assert_eq!(id.len(), 64, "{id}");
    assert!(
        wait_until(10, || text(&e.run(&["logs", "web"]).stdout)
            .contains("tick")),
        "no tick in the logs"
    );
    let ps = text(&ok(&e.run(&["exec", "web", "ps"])));
    let pid1 = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_else(|| panic!("no pid 1 in {ps}"));
    assert!(pid1.contains("while true"), "pid 1 is not the loop: {ps}");
    let listed = text(&ok(&e.run(&["ps"])));
    assert!(listed.contains("web") && listed.contains("Up"), "{listed}");
    // The loop ignores nothing: SIGTERM to a pid 1 shell without a handler is ignored, so
    // stop falls back to SIGKILL after -t.
    let started = Instant::now();
    ok(&e.run(&["stop", "-t", "2", "web"]));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    let ps = text(&ok(&e.run(&["ps", "-a"])));
    assert!(ps.contains("Exited (137)"), "{ps}");
    assert!(!text(&ok(&e.run(&["ps"]))).contains("web"));
    ok(&e.run(&["rm", "web"]));
    assert!(e.ids().is_empty());
    assert_eq!(e.leftovers(&[id]), Vec::<String>::new());
}

fn names_are_unique_and_resolve() {
    let e = engine();
    let id =
        text(&ok(&e.run(&[
            "run", "-d", "--name", "one", "busybox", "sleep", "30",
        ])))
        .trim()
        .to_owned();
    let err = run_fails(&e.run(&["run", "-d", "--name", "one", "busybox", "true"]));
    assert!(err.contains("\"one\" is already in use"), "{err}");
    assert_eq!(
        e.ids(),
        vec![id.clone()],
        "the refused run left a container"
    );
    // By name, full id, unique prefix.
    for key in ["one", id.as_str(), &id[..8]] {
        let out = ok(&e.run(&["inspect", key]));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["Id"], id.as_str(), "{key}");
        assert_eq!(v[0]["State"]["Running"], true);
    }
    let err = fails(&e.run(&["rm", "one"]));
    assert!(err.contains("stop it first"), "{err}");
    ok(&e.run(&["rename", "one", "two"]));
    ok(&e.run(&["rm", "-f", "two"]));
    assert!(e.ids().is_empty());
    assert_eq!(e.leftovers(&[id]), Vec::<String>::new());
}

fn bad_input_is_refused_cleanly() {
    let e = engine();
    let err = run_fails(&e.run(&["run", "--rm", "nosuchimage", "true"]));
    assert!(err.contains("nosuchimage"), "{err}");
    let out = e.run(&["run", "--rm", "--memory", "lots", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("lots"), "{out:?}");
    let err = run_fails(&e.run(&["run", "--name", "bad name", "busybox", "true"]));
    assert!(err.contains("bad name"), "{err}");
    let err = fails(&e.run(&["logs", "nosuch"]));
    assert!(err.contains("no such container: nosuch"), "{err}");
    // One line, each cause once.
    let err = run_fails(&e.run(&["run", "--rm", "-u", "ghost", "busybox", "true"]));
    assert_eq!(err.matches("ghost").count(), 1, "{err}");
    let err = run_fails(&e.run(&["run", "--rm", "busybox", "/no/such/program"]));
    assert!(err.contains("/no/such/program"), "{err}");
    assert!(e.ids().is_empty(), "{:?}", e.ids());
    assert_eq!(e.leftovers(&[]), Vec::<String>::new());
}

fn kill_9_during_run_then_rm_f_cleans() {
    let e = engine();
    // Kill the `berth run` at several points of its way; each time `ps -a` must answer
    // and `rm -f` must leave nothing.
    for delay_ms in [0u64, 5, 20, 60, 200] {
        let mut child = e
            .command(&["run", "--name", "crash", "busybox", "sleep", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let ps = e.run(&["ps", "-a"]);
        ok(&ps);
        let ids = e.ids();
        for id in &ids {
            ok(&e.run(&["rm", "-f", id]));
        }
        assert!(e.ids().is_empty(), "after {delay_ms} ms");
        assert_eq!(
            e.leftovers(&ids),
            Vec::<String>::new(),
            "after {delay_ms} ms"
        );
    }
}

fn twenty_concurrent_runs() {
    let e = engine();
    let children: Vec<_> = (0..20)
        .map(|i| {
            e.command(&[
                "run",
                "-d",
                "--name",
                &format!("c{i}"),
                "busybox",
                "sleep",
                "30",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        ids.push(text(&ok(&out)).trim().to_owned());
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 20);
    let running = text(&ok(&e.run(&["ps", "-q"]))).lines().count();
    assert_eq!(running, 20);
    let layers = std::fs::read_dir(e.data().join("layers")).unwrap().count();
    assert_eq!(layers, 1, "the layer was unpacked more than once");
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    ok(&e.run(&args));
    assert_eq!(e.leftovers(&ids), Vec::<String>::new());
}

fn restart_and_wait() {
    let e = engine();
    ok(&e.run(&[
        "run",
        "-d",
        "--name",
        "r",
        "busybox",
        "sh",
        "-c",
        "echo go; sleep 0.3; exit 7",
    ]));
    assert_eq!(text(&ok(&e.run(&["wait", "r"]))), "7\n");
    ok(&e.run(&["start", "r"]));
    assert_eq!(text(&ok(&e.run(&["wait", "r"]))), "7\n");
    assert_eq!(text(&ok(&e.run(&["logs", "r"]))), "go\ngo\n");
    ok(&e.run(&["rm", "r"]));
    assert_eq!(e.leftovers(&[]), Vec::<String>::new());
}

/// A `docker save` archive of a two-layer image `layered:latest`: busybox with `/etc/gone`,
/// `/opq/old` and `/keep` below; above, a whiteout of `/etc/gone`, an opaque `/opq` with
/// `/opq/new`, and `/added`.
fn layered_archive(e: &Engine) -> PathBuf {
    let work = e.dir().join("layered");
    let l1 = work.join("l1");
    let l2 = work.join("l2");
    let archive = work.join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(e.rootfs.root())
        .arg(&l1)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(l1.join("etc/gone"), "gone").unwrap();
    std::fs::create_dir_all(l1.join("opq")).unwrap();
    std::fs::write(l1.join("opq/old"), "old").unwrap();
    std::fs::write(l1.join("keep"), "keep").unwrap();
    std::fs::create_dir_all(l2.join("etc")).unwrap();
    std::fs::create_dir_all(l2.join("opq")).unwrap();
    std::fs::write(l2.join("etc/.wh.gone"), "").unwrap();
    std::fs::write(l2.join("opq/.wh..wh..opq"), "").unwrap();
    std::fs::write(l2.join("opq/new"), "new").unwrap();
    std::fs::write(l2.join("added"), "added").unwrap();
    let mut diff_ids = Vec::new();
    let mut layers = Vec::new();
    for (name, dir) in [("l1", &l1), ("l2", &l2)] {
        std::fs::create_dir_all(archive.join(name)).unwrap();
        let tar = archive.join(name).join("layer.tar");
        tar_dir(dir, &tar);
        let bytes = std::fs::read(&tar).unwrap();
        diff_ids.push(berth_core::image::Digest::of(&bytes).to_string());
        layers.push(format!("{name}/layer.tar"));
    }
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_name = format!(
        "{}.json",
        berth_core::image::Digest::of(config.as_bytes()).hex()
    );
    std::fs::write(archive.join(&config_name), &config).unwrap();
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": ["layered:latest"],
        "Layers": layers,
    }]);
    std::fs::write(archive.join("manifest.json"), manifest.to_string()).unwrap();
    let out = work.join("layered.tar");
    tar_dir(&archive, &out);
    out
}

fn load_then_run_and_whiteouts() {
    let e = engine();
    let archive = layered_archive(&e);
    let out = ok(&e.run(&["load", "-i", archive.to_str().unwrap()]));
    assert_eq!(text(&out), "Loaded image: layered:latest\n");
    let out = e.run(&["run", "--rm", "layered", "echo", "hi"]);
    assert_eq!(text(&ok(&out)), "hi\n");
    // As in docker: the whiteout hides the lower file, the opaque directory hides the
    // lower directory's entries, the rest of both layers shows.
    let script = "ls /etc/gone 2>&1; ls /opq; cat /keep /added";
    let out = e.run(&["run", "--rm", "layered", "sh", "-c", script]);
    assert_eq!(
        text(&ok(&out)),
        "ls: /etc/gone: No such file or directory\nnew\nkeepadded"
    );
    // A change in one container stays in its upper directory.
    let out = e.run(&[
        "run",
        "--rm",
        "layered",
        "sh",
        "-c",
        "rm /keep && echo x > /opq/new",
    ]);
    ok(&out);
    let out = e.run(&["run", "--rm", "layered", "cat", "/keep", "/opq/new"]);
    assert_eq!(text(&ok(&out)), "keepnew");
    assert!(e.ids().is_empty());
    assert_eq!(e.leftovers(&[]), Vec::<String>::new());
}

fn save_load_round_trip() {
    let e = engine();
    let saved = e.dir().join("saved.tar");
    ok(&e.run(&["save", "-o", saved.to_str().unwrap(), "busybox"]));
    let other = engine();
    let out = ok(&other.run(&["load", "-i", saved.to_str().unwrap()]));
    assert_eq!(text(&out), "Loaded image: busybox:latest\n");
    let ids = |e: &Engine| text(&ok(&e.run(&["images", "-q"])));
    let id = |e: &Engine| {
        let v: serde_json::Value =
            serde_json::from_slice(&ok(&e.run(&["image", "inspect", "busybox"]))).unwrap();
        v[0]["Id"].as_str().unwrap().to_owned()
    };
    // The tag moved to the loaded image: the same id as the saved one.
    assert_eq!(id(&e), id(&other));
    let out = other.run(&["run", "--rm", "busybox", "echo", "again"]);
    assert_eq!(text(&ok(&out)), "again\n");
    // A truncated archive is refused, and nothing is added.
    let bytes = std::fs::read(&saved).unwrap();
    let cut = e.dir().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let third = engine();
    let before = ids(&third);
    let out = third.run(&["load", "-i", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).contains("cut.tar"), "{out:?}");
    assert_eq!(ids(&third), before);
}

fn dry_run_shows_the_three_parts() {
    let e = engine();
    let out = ok(&e.run(&[
        "run",
        "--dry-run",
        "--memory",
        "64m",
        "busybox",
        "echo",
        "hi",
    ]));
    let plan = text(&out);
    let overlay = plan.find("mount").unwrap_or_else(|| panic!("{plan}"));
    let config = plan
        .find("\"ociVersion\"")
        .unwrap_or_else(|| panic!("{plan}"));
    let create = plan
        .find("# 3. the runtime")
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(overlay < config && config < create, "{plan}");
    assert!(plan.contains("lowerdir="), "{plan}");
    assert!(plan.contains("67108864"), "the memory limit: {plan}");
    // Nothing was made: no container, no directory, no mount.
    assert!(e.ids().is_empty());
    assert_eq!(e.leftovers(&[]), Vec::<String>::new());
}

fn logs_follow_tail_timestamps_attach() {
    let e = engine();
    let script = "for i in 1 2 3 4 5 6; do echo n$i; sleep 0.3; done; exit 4";
    ok(&e.run(&["run", "-d", "--name", "f", "busybox", "sh", "-c", script]));
    // attach follows from now until the exit, and exits with the container's code.
    let attach = e
        .command(&["attach", "f"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // logs -f from the start follows to the end too.
    let follow = e.run(&["logs", "-f", "f"]);
    assert_eq!(text(&ok(&follow)), "n1\nn2\nn3\nn4\nn5\nn6\n");
    let attached = attach.wait_with_output().unwrap();
    assert_eq!(attached.status.code(), Some(4), "{attached:?}");
    let seen = text(&attached.stdout);
    assert!(seen.ends_with("n6\n"), "{seen}");
    let tail = e.run(&["logs", "--tail", "2", "f"]);
    assert_eq!(text(&ok(&tail)), "n5\nn6\n");
    let stamped = text(&ok(&e.run(&["logs", "-t", "--tail", "1", "f"])));
    let (time, line) = stamped.split_once(' ').unwrap();
    assert_eq!(line, "n6\n");
    assert!(time.ends_with('Z') && time.len() == 30, "{stamped}");
    ok(&e.run(&["rm", "f"]));
    assert_eq!(e.leftovers(&[]), Vec::<String>::new());
}

fn rmi_refuses_an_image_in_use() {
    let e = engine();
    ok(&e.run(&["create", "--name", "user", "busybox", "true"]));
    let err = fails(&e.run(&["rmi", "busybox"]));
    assert!(err.contains("in use by 1 container"), "{err}");
    // -f only untags it: the container keeps its layers.
    let out = ok(&e.run(&["rmi", "-f", "busybox"]));
    assert_eq!(text(&out), "Untagged: busybox:latest\n");
    assert_eq!(text(&ok(&e.run(&["images", "-q"]))).lines().count(), 1);
    ok(&e.run(&["start", "user"]));
    assert_eq!(text(&ok(&e.run(&["wait", "user"]))), "0\n");
    ok(&e.run(&["rm", "user"]));
    // Unused and untagged now: prune removes it and its layer.
    let out = text(&ok(&e.run(&["image", "prune"])));
    assert!(
        out.starts_with("Deleted Images:\ndeleted: sha256:"),
        "{out}"
    );
    assert_eq!(text(&ok(&e.run(&["images", "-q"]))), "");
    assert_eq!(
        std::fs::read_dir(e.data().join("layers")).unwrap().count(),
        0
    );
}

fn run_it_follows_the_terminal() {
    let e = engine();
    // `run -it` in a 120x30 tmux pane: raw mode, the pane's size, then a resize followed.
    let cmd = e.command(&["run", "-it", "--rm", "busybox", "sh"]);
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let tmux = e2e_clients_support::Tmux::start(&line);
    tmux.wait_for("/ #", 20).unwrap();
    tmux.send_line("stty size");
    tmux.wait_for("30 120", 10).unwrap();
    tmux.resize(100, 40);
    // The engine looks at its terminal whenever it polls the log (10 times a second).
    assert!(wait_until(10, || {
        tmux.send_line("stty size");
        std::thread::sleep(Duration::from_millis(300));
        tmux.screen().contains("40 100")
    }));
    tmux.send_line("exit 3");
    tmux.wait_for("EXITED=3", 10).unwrap();
    assert!(e.ids().is_empty(), "--rm left {:?}", e.ids());
}
