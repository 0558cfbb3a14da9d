//! End-to-end through the `berth` binary (root, real kernel, busybox): the container
//! lifecycle as an OCI runtime's caller sees it — `run`, `create`, `start`, `state`, `kill`,
//! `delete`, `list` — with runc's arguments, output, exit codes and error wording.
//!
//! Every case has its own `--root` in a tempdir and cleans up after itself even when it
//! fails (a guard deletes its containers with `delete --force`, which kills only their own
//! init processes, and removes their cgroups and state).

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_cli_support;
mod e2e_linux_support;

use std::process::{Command, Stdio};

use e2e_linux_support::{alive, wait_until};
use serde_json::{Value, json};

use e2e_cli_support::*;

fn main() {
    e2e_linux_support::run(&[
        (
            "run_prints_the_output_and_exits_with_the_code",
            run_prints_the_output_and_exits_with_the_code,
        ),
        (
            "create_start_state_kill_delete_leaves_nothing",
            create_start_state_kill_delete_leaves_nothing,
        ),
        ("pid_file_holds_the_bare_pid", pid_file_holds_the_bare_pid),
        (
            "state_of_an_unknown_container",
            state_of_an_unknown_container,
        ),
        ("start_twice_is_refused", start_twice_is_refused),
        (
            "start_of_a_stopped_container_is_refused",
            start_of_a_stopped_container_is_refused,
        ),
        (
            "delete_of_a_running_container_needs_force",
            delete_of_a_running_container_needs_force,
        ),
        (
            "delete_of_a_created_container_kills_it",
            delete_of_a_created_container_kills_it,
        ),
        (
            "kill_takes_signal_names_and_numbers",
            kill_takes_signal_names_and_numbers,
        ),
        ("kill_all_signals_the_cgroup", kill_all_signals_the_cgroup),
        ("run_detached_returns_at_once", run_detached_returns_at_once),
        ("run_keep_leaves_it_stopped", run_keep_leaves_it_stopped),
        (
            "run_forwards_signals_to_the_container",
            run_forwards_signals_to_the_container,
        ),
        ("root_is_respected", root_is_respected),
        ("list_formats", list_formats),
        (
            "errors_go_to_the_json_log_too",
            errors_go_to_the_json_log_too,
        ),
        ("poststop_hooks_run_at_delete", poststop_hooks_run_at_delete),
        ("exec_prints_the_hostname", exec_prints_the_hostname),
        (
            "exec_joins_the_pid_and_mount_namespaces",
            exec_joins_the_pid_and_mount_namespaces,
        ),
        (
            "exec_propagates_the_exit_code",
            exec_propagates_the_exit_code,
        ),
        (
            "exec_into_unknown_or_stopped_is_refused",
            exec_into_unknown_or_stopped_is_refused,
        ),
        ("exec_with_a_process_file", exec_with_a_process_file),
        ("ps_lists_the_container_pids", ps_lists_the_container_pids),
    ]);
}

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn run_prints_the_output_and_exits_with_the_code() {
    let env = Env::new("echo hello from $(hostname); exit 3");
    let id = unique("c1");
    env.track(&id);
    let out = env.berth(&["run", "--bundle", &env.bundle(), &id]);
    assert_eq!(text(&out.stdout), "hello from berth\n");
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(3));
    // As `runc run`: the exited container is deleted.
    env.assert_nothing_left();
    // Killed by a signal: 128 + N, as a shell reports it.
    env.config("exec sleep 1000", |_| {});
    let dir = env.rootfs.dir.path();
    let mut run = Command::new(berth_bin())
        .arg("--root")
        .arg(env.root())
        .args(["run", "--bundle", &env.bundle(), &id])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("run.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("run.err")).unwrap())
        .spawn()
        .unwrap();
    let running = wait_until(10, || {
        env.berth(&["state", &id]).status.success() && env.status(&id) == "running"
    });
    if !running {
        let _ = run.kill();
    }
    assert!(running, "the foreground run did not start");
    ok(&env.berth(&["kill", &id, "KILL"]));
    let status = run.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(128 + 9),
        "{}",
        std::fs::read_to_string(dir.join("run.err")).unwrap()
    );
    env.assert_nothing_left();
}

fn create_start_state_kill_delete_leaves_nothing() {
    let env = Env::new("echo started > /tmp/started; exec sleep 1000");
    let id = unique("c2");
    env.create(&id);
    let state = env.state(&id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["bundle"], env.bundle());
    assert_eq!(state["rootfs"], env.rootfs.root_str());
    assert_eq!(state["ociVersion"], "1.2.1");
    assert_eq!(state["owner"], "", "runc leaves owner empty for root");
    assert!(state["created"].as_str().unwrap().ends_with('Z'));
    let pid = state["pid"].as_i64().unwrap();
    assert!(alive(i32::try_from(pid).unwrap()));
    assert!(!env.rootfs.root().join("tmp/started").exists(), "not yet");
    ok(&env.berth(&["start", &id]));
    assert_eq!(env.status(&id), "running");
    assert!(
        wait_until(5, || env.rootfs.root().join("tmp/started").exists()),
        "the process ran"
    );
    // The same key order and indentation as runc's `state`.
    let raw = text(&ok(&env.berth(&["state", &id])));
    assert!(
        raw.starts_with("{\n  \"ociVersion\": \"1.2.1\",\n  \"id\": "),
        "{raw}"
    );
    ok(&env.berth(&["kill", &id, "KILL"]));
    env.wait_stopped(&id);
    assert_eq!(env.state(&id)["pid"], 0, "a stopped container shows no pid");
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
    assert_eq!(
        fails(&env.berth(&["delete", &id])),
        "berth: container does not exist"
    );
}

fn pid_file_holds_the_bare_pid() {
    let env = Env::new("exec sleep 1000");
    let id = unique("pidfile");
    env.track(&id);
    let pid_file = env.rootfs.dir.path().join("init.pid");
    let (code, _, err) = env.berth_detached_out(&[
        "create",
        "--bundle",
        &env.bundle(),
        "--pid-file",
        &pid_file.to_string_lossy(),
        &id,
    ]);
    assert_eq!(code, 0, "{err}");
    let content = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(content, env.state(&id)["pid"].to_string(), "{content:?}");
    assert!(content.bytes().all(|b| b.is_ascii_digit()), "{content:?}");
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
}

fn state_of_an_unknown_container() {
    let env = Env::new("true");
    for cmd in ["state", "start", "kill", "delete"] {
        assert_eq!(
            fails(&env.berth(&[cmd, "nope"])),
            "berth: container does not exist",
            "{cmd}"
        );
    }
    // `delete --force` of nothing succeeds, as runc's.
    ok(&env.berth(&["delete", "--force", "nope"]));
    assert_eq!(
        fails(&env.berth(&["state", "../etc"])),
        "berth: invalid container id \"../etc\""
    );
}

fn start_twice_is_refused() {
    let env = Env::new("exec sleep 1000");
    let id = unique("twice");
    env.create_started(&id);
    assert_eq!(
        fails(&env.berth(&["start", &id])),
        "berth: cannot start an already running container"
    );
    ok(&env.berth(&["delete", "--force", &id]));
    env.assert_nothing_left();
}

fn start_of_a_stopped_container_is_refused() {
    let env = Env::new("true");
    let id = unique("stopped");
    env.create_started(&id);
    env.wait_stopped(&id);
    assert_eq!(
        fails(&env.berth(&["start", &id])),
        "berth: cannot start a container that has stopped"
    );
    assert_eq!(
        fails(&env.berth(&["kill", &id])),
        "berth: container not running"
    );
    // runc: `kill --all` of a stopped container does nothing and succeeds.
    ok(&env.berth(&["kill", "--all", &id, "KILL"]));
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
}

fn delete_of_a_running_container_needs_force() {
    let env = Env::new("exec sleep 1000");
    let id = unique("force");
    env.create_started(&id);
    let pid = i32::try_from(env.state(&id)["pid"].as_i64().unwrap()).unwrap();
    assert_eq!(
        fails(&env.berth(&["delete", &id])),
        format!("berth: cannot delete container {id} that is not stopped: running")
    );
    assert_eq!(env.status(&id), "running");
    ok(&env.berth(&["delete", "--force", &id]));
    assert!(!alive(pid), "delete --force killed init");
    env.assert_nothing_left();
}

fn delete_of_a_created_container_kills_it() {
    let env = Env::new("exec sleep 1000");
    let id = unique("created");
    env.create(&id);
    let pid = i32::try_from(env.state(&id)["pid"].as_i64().unwrap()).unwrap();
    ok(&env.berth(&["delete", &id]));
    assert!(!alive(pid));
    env.assert_nothing_left();
}

fn kill_takes_signal_names_and_numbers() {
    let env = Env::new(
        "trap 'echo USR1 >> /tmp/sig' USR1; trap 'echo HUP >> /tmp/sig' HUP; \
         trap 'echo TERM >> /tmp/sig; exit 0' TERM; \
         echo ready > /tmp/ready; while true; do sleep 0.05; done",
    );
    let id = unique("signals");
    env.create_started(&id);
    let sig = env.rootfs.root().join("tmp/sig");
    assert!(wait_until(5, || env
        .rootfs
        .root()
        .join("tmp/ready")
        .exists()));
    let got = |n: usize| {
        wait_until(5, || {
            std::fs::read_to_string(&sig).is_ok_and(|s| s.lines().count() >= n)
        })
    };
    ok(&env.berth(&["kill", &id, "USR1"]));
    assert!(got(1));
    ok(&env.berth(&["kill", &id, "SIGHUP"]));
    assert!(got(2));
    assert_eq!(
        fails(&env.berth(&["kill", &id, "SIGFOO"])),
        "berth: unknown signal \"SIGFOO\""
    );
    ok(&env.berth(&["kill", &id, "15"]));
    assert!(got(3));
    env.wait_stopped(&id);
    assert_eq!(std::fs::read_to_string(&sig).unwrap(), "USR1\nHUP\nTERM\n");
    // The default is TERM.
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
    env.create_started(&id);
    assert!(wait_until(5, || env
        .rootfs
        .root()
        .join("tmp/ready")
        .exists()));
    std::fs::remove_file(&sig).unwrap();
    ok(&env.berth(&["kill", &id]));
    env.wait_stopped(&id);
    assert_eq!(std::fs::read_to_string(&sig).unwrap(), "TERM\n");
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
}

fn kill_all_signals_the_cgroup() {
    // A second process besides init: `kill --all` reaches both.
    let env = Env::new("sleep 1000 & exec sleep 1001");
    let id = unique("all");
    env.create_started(&id);
    let cgroup = env.cgroup_dirs()[0].clone();
    let procs = || {
        std::fs::read_to_string(cgroup.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert!(wait_until(5, || procs() == 2), "two processes");
    ok(&env.berth(&["kill", "--all", &id, "KILL"]));
    assert!(wait_until(5, || procs() == 0), "both are gone");
    env.wait_stopped(&id);
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
}

fn run_detached_returns_at_once() {
    let env = Env::new("exec sleep 1000");
    let id = unique("detached");
    env.track(&id);
    let (code, out, err) = env.berth_detached_out(&["run", "-d", "--bundle", &env.bundle(), &id]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    assert_eq!(env.status(&id), "running");
    ok(&env.berth(&["kill", &id, "KILL"]));
    env.wait_stopped(&id);
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
}

fn run_keep_leaves_it_stopped() {
    let env = Env::new("exit 7");
    let id = unique("keep");
    env.track(&id);
    let out = env.berth(&["run", "--keep", "--bundle", &env.bundle(), &id]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(env.status(&id), "stopped");
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
}

fn root_is_respected() {
    let env = Env::new("exec sleep 1000");
    let id = unique("rooted");
    env.create(&id);
    assert!(env.root().join(&id).join("state.json").exists());
    let other = env.rootfs.dir.path().join("other-root");
    let in_other = |args: &[&str]| {
        Command::new(berth_bin())
            .arg("--root")
            .arg(&other)
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(text(&ok(&in_other(&["list", "-q"]))), "");
    assert_eq!(
        fails(&in_other(&["state", &id])),
        "berth: container does not exist"
    );
    assert_eq!(env.listed(), std::slice::from_ref(&id));
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
}

fn list_formats() {
    let env = Env::new("exec sleep 1000");
    assert_eq!(
        text(&ok(&env.berth(&["list", "--format", "json"]))),
        "null\n"
    );
    let table = text(&ok(&env.berth(&["list"])));
    assert_eq!(
        table,
        "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
    );
    let id = unique("listed");
    env.create(&id);
    let json: Value = serde_json::from_slice(&ok(&env.berth(&["list", "-f", "json"]))).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["id"], id.as_str());
    assert_eq!(json[0]["status"], "created");
    let table = text(&ok(&env.berth(&["list"])));
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let row = lines.next().unwrap();
    assert!(lines.next().is_none());
    // The columns line up: each header word starts where its value does.
    for (word, value) in [
        ("ID", id.clone()),
        ("PID", json[0]["pid"].to_string()),
        ("STATUS", "created".to_owned()),
        ("BUNDLE", env.bundle()),
    ] {
        let at = header.find(word).unwrap();
        assert!(row[at..].starts_with(&value), "{header}\n{row}");
    }
    assert!(
        header.ends_with("OWNER") && row.ends_with("root"),
        "{table}"
    );
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
}

fn errors_go_to_the_json_log_too() {
    let env = Env::new("true");
    let log = env.rootfs.dir.path().join("log.json");
    let out = env.berth(&[
        "--log",
        &log.to_string_lossy(),
        "--log-format",
        "json",
        "state",
        "nope",
    ]);
    assert_eq!(fails(&out), "berth: container does not exist");
    let line: Value = serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], "container does not exist");
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
}

fn poststop_hooks_run_at_delete() {
    let env = Env::new("true");
    let out = env.rootfs.dir.path().join("poststop.json");
    let hook = env.rootfs.dir.path().join("hook.sh");
    std::fs::write(&hook, format!("#!/bin/sh\n/bin/cat > {}\n", out.display())).unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let hook_path = hook.to_string_lossy().into_owned();
    env.config("true", |c| {
        c["hooks"] = json!({ "poststop": [{ "path": hook_path }] });
    });
    let id = unique("hooked");
    env.create_started(&id);
    env.wait_stopped(&id);
    assert!(!out.exists(), "poststop runs at delete, not before");
    ok(&env.berth(&["delete", &id]));
    let state: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["status"], "stopped");
    assert_eq!(state["bundle"], env.bundle());
    env.assert_nothing_left();
}

fn run_forwards_signals_to_the_container() {
    let env = Env::new(
        "trap 'echo got TERM; exit 42' TERM; echo ready > /tmp/ready; \
         while true; do sleep 0.05; done",
    );
    let id = unique("forward");
    env.track(&id);
    let dir = env.rootfs.dir.path();
    let mut run = Command::new(berth_bin())
        .arg("--root")
        .arg(env.root())
        .args(["run", "--bundle", &env.bundle(), &id])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("run.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("run.err")).unwrap())
        .spawn()
        .unwrap();
    let ready = wait_until(10, || env.rootfs.root().join("tmp/ready").exists());
    if !ready {
        let _ = run.kill();
    }
    assert!(ready, "the container did not start");
    // berth blocks the signals it forwards once init has exec'd: let it get there.
    std::thread::sleep(std::time::Duration::from_millis(200));
    // SIGTERM to berth (our child), as a supervisor stops it: the container gets it.
    let berth_pid = run.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &berth_pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = run.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(42),
        "{}",
        std::fs::read_to_string(dir.join("run.err")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("run.out")).unwrap(),
        "got TERM\n"
    );
    env.assert_nothing_left();
}

fn exec_prints_the_hostname() {
    let env = Env::new("exec sleep 1000");
    env.config("exec sleep 1000", |v| v["hostname"] = json!("exec-host"));
    let id = unique("exec-host");
    env.create_started(&id);
    let out = ok(&env.berth(&["exec", &id, "hostname"]));
    assert_eq!(text(&out), "exec-host\n");
    ok(&env.berth(&["delete", "--force", &id]));
    env.assert_nothing_left();
}

fn exec_joins_the_pid_and_mount_namespaces() {
    let env = Env::new("exec sleep 1000");
    let id = unique("exec-ps");
    env.create_started(&id);
    // The container's /proc: its init is pid 1, running `sleep 1000`.
    let out = text(&ok(&env.berth(&["exec", &id, "ps"])));
    let init = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_else(|| panic!("no pid 1 in:\n{out}"));
    assert!(init.contains("sleep 1000"), "{out}");
    // The mount namespace too: the rootfs's own file is at /, and the cwd is the config's.
    std::fs::write(env.rootfs.bundle().join("rootfs/marker"), "in the rootfs").unwrap();
    let out = ok(&env.berth(&["exec", &id, "sh", "-c", "cat /marker; pwd"]));
    assert_eq!(text(&out), "in the rootfs/\n");
    let out = ok(&env.berth(&[
        "exec",
        "--cwd",
        "/tmp",
        "-e",
        "X=42",
        &id,
        "sh",
        "-c",
        "echo $X; pwd",
    ]));
    assert_eq!(text(&out), "42\n/tmp\n");
    // No fd of the runtime reaches the process: only 0, 1, 2 (and the one ls opens).
    let out = text(&ok(&env.berth(&["exec", &id, "ls", "/proc/self/fd"])));
    let fds: Vec<&str> = out.split_whitespace().collect();
    assert!(fds.len() <= 4, "leaked fds: {fds:?}");
    ok(&env.berth(&["delete", "--force", &id]));
    env.assert_nothing_left();
}

fn exec_propagates_the_exit_code() {
    let env = Env::new("exec sleep 1000");
    let id = unique("exec-code");
    env.create_started(&id);
    let out = env.berth(&["exec", &id, "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let out = env.berth(&["exec", "-u", "1000:1000", &id, "id", "-u"]);
    assert_eq!(text(&out.stdout), "1000\n", "{}", text(&out.stderr));
    ok(&env.berth(&["delete", "--force", &id]));
    env.assert_nothing_left();
}

fn exec_into_unknown_or_stopped_is_refused() {
    let env = Env::new("true");
    assert_eq!(
        fails(&env.berth(&["exec", "nope", "true"])),
        "berth: container does not exist"
    );
    let id = unique("exec-stopped");
    env.create_started(&id);
    env.wait_stopped(&id);
    assert_eq!(
        fails(&env.berth(&["exec", &id, "true"])),
        "berth: cannot exec in a stopped container"
    );
    let err = fails(&env.berth(&["exec", "-t", &id, "true"]));
    assert!(err.contains("stopped"), "{err}");
    ok(&env.berth(&["delete", &id]));
    env.assert_nothing_left();
}

fn exec_with_a_process_file() {
    let env = Env::new("exec sleep 1000");
    let id = unique("exec-file");
    env.create_started(&id);
    let file = env.rootfs.dir.path().join("process.json");
    std::fs::write(
        &file,
        json!({
            "args": ["sh", "-c", "echo from file; exit 3"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin:/usr/bin"]
        })
        .to_string(),
    )
    .unwrap();
    let out = env.berth(&["exec", "--process", &file.to_string_lossy(), &id]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from file\n");
    // A detached -t without a console socket is a clear error (a foreground one relays).
    let err = fails(&env.berth(&["exec", "-t", "-d", &id, "true"]));
    assert!(err.contains("--console-socket"), "{err}");
    ok(&env.berth(&["delete", "--force", &id]));
    env.assert_nothing_left();
}

fn ps_lists_the_container_pids() {
    let env = Env::new("exec sleep 1000");
    let id = unique("ps");
    env.create_started(&id);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let pids: Vec<i64> =
        serde_json::from_slice(&ok(&env.berth(&["ps", "--format", "json", &id]))).unwrap();
    assert_eq!(pids, vec![pid]);
    let table = text(&ok(&env.berth(&["ps", &id])));
    let mut lines = table.lines();
    assert!(lines.next().unwrap().contains("PID"), "{table}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert!(rows[0].contains("sleep 1000"), "{table}");
    ok(&env.berth(&["delete", "--force", &id]));
    env.assert_nothing_left();
}
