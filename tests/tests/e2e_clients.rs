//! End-to-end through the clients people already run: containerd (`ctr`, through
//! containerd-shim-runc-v2) and podman (through conmon) drive berth as their OCI runtime,
//! in place of runc. Every case runs with berth and then with runc (when installed; under
//! CI it must be) and asserts that both made the client show the same, so a difference is
//! a visible difference; then it checks what berth's run showed against what is expected.
//!
//! Each test starts its own containerd (private socket, root and state, a namespace of
//! its own) or podman store (private root, run root, tmpdir and cgroup parent) and builds
//! its busybox image locally; guards remove what it made also when it fails (see
//! `e2e_clients_support`).

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_cli_support;
mod e2e_clients_support;
mod e2e_linux_support;

use std::time::Instant;

use e2e_clients_support::{
    Containerd, Observed, Podman, Runtime, Tmux, cgroup_dirs, code, get, same_for_all, sh_quote,
    show, text, unique,
};
use e2e_linux_support::wait_until;

fn main() {
    let t0 = Instant::now();
    e2e_linux_support::run(&[
        (
            "ctr_run_output_and_exit_codes",
            ctr_run_output_and_exit_codes,
        ),
        ("ctr_detached_task_lifecycle", ctr_detached_task_lifecycle),
        ("ctr_run_tty_through_tmux", ctr_run_tty_through_tmux),
        (
            "podman_run_output_and_exit_codes",
            podman_run_output_and_exit_codes,
        ),
        (
            "podman_detached_exec_pause_stop_rm",
            podman_detached_exec_pause_stop_rm,
        ),
        ("podman_run_options", podman_run_options),
        (
            "podman_read_only_and_tmpfs_copy_up",
            podman_read_only_and_tmpfs_copy_up,
        ),
        ("podman_run_it_through_tmux", podman_run_it_through_tmux),
    ]);
    eprintln!("e2e_clients: {:.1?} in all", t0.elapsed());
}

/// Records `value` under `label`.
fn note(o: &mut Observed, label: &str, value: impl Into<String>) {
    o.push((label.to_owned(), value.into()));
}

/// Prints how long a test's setup took.
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let t = f();
    eprintln!("    {what}: {:.2?}", t0.elapsed());
    t
}

// ---------------------------------------------------------------------------------------
// containerd.

/// `ctr run [--rm|-d] RUNTIME-FLAGS EXTRA IMAGE ID CMD...`.
fn ctr_run(
    ctd: &Containerd,
    rt: &Runtime,
    mode: &str,
    extra: &[&str],
    id: &str,
    cmd: &[&str],
) -> std::process::Output {
    let flags = ctd.runtime_flags(rt);
    let mut args: Vec<&str> = vec!["run", mode];
    args.extend(flags.iter().map(String::as_str));
    args.extend(extra);
    args.push(&ctd.image);
    args.push(id);
    args.extend(cmd);
    ctd.ctr(&args)
}

/// The cgroups (in any hierarchy) of a container of `ctd`'s namespace.
fn ctr_cgroups(ctd: &Containerd, id: &str) -> usize {
    cgroup_dirs(&format!("{}/{id}", ctd.namespace)).len()
}

fn ctr_run_output_and_exit_codes() {
    let ctd = timed("containerd up, image imported", Containerd::start);
    let seen = same_for_all("ctr run --rm", |rt| {
        let mut o = Observed::new();
        let name = |what: &str| format!("{what}-{}-{}", rt.name, unique());

        let id = name("hello");
        let out = ctr_run(&ctd, rt, "--rm", &[], &id, &["echo", "hello"]);
        note(&mut o, "echo: stdout", text(&out.stdout));
        note(&mut o, "echo: code", code(&out));
        note(
            &mut o,
            "echo: cgroups left",
            ctr_cgroups(&ctd, &id).to_string(),
        );

        let out = ctr_run(
            &ctd,
            rt,
            "--rm",
            &[],
            &name("exit"),
            &["sh", "-c", "exit 7"],
        );
        note(&mut o, "exit 7: code", code(&out));

        let out = ctr_run(
            &ctd,
            rt,
            "--rm",
            &["--env", "GREETING=from env"],
            &name("env"),
            &["sh", "-c", "echo $GREETING"],
        );
        note(&mut o, "env: stdout", text(&out.stdout));

        // runc checks the program at `create`: the shim reports a failed create (from
        // the runtime's --log) and no task ever runs.
        let id = name("missing");
        let out = ctr_run(&ctd, rt, "--rm", &[], &id, &["/nonexistent"]);
        let err = text(&out.stderr);
        note(&mut o, "missing program: code", code(&out));
        note(
            &mut o,
            "missing program: a failed create",
            err.contains("OCI runtime create failed").to_string(),
        );
        note(
            &mut o,
            "missing program: the error names it",
            err.contains("/nonexistent").to_string(),
        );
        note(&mut o, "missing program: stdout", text(&out.stdout));
        let _ = ctd.ctr(&["container", "rm", &id]);

        note(
            &mut o,
            "runtime state left",
            ctd.runtime_state_left(rt).join(","),
        );
        o
    });
    assert_eq!(get(&seen, "echo: stdout"), "hello\n");
    assert_eq!(get(&seen, "echo: code"), "0");
    assert_eq!(get(&seen, "echo: cgroups left"), "0");
    assert_eq!(get(&seen, "exit 7: code"), "7");
    assert_eq!(get(&seen, "env: stdout"), "from env\n");
    assert_eq!(get(&seen, "missing program: a failed create"), "true");
    assert_eq!(get(&seen, "missing program: the error names it"), "true");
    assert_eq!(get(&seen, "runtime state left"), "");
}

/// The status `ctr task ls` shows for `id`.
fn task_status(ctd: &Containerd, id: &str) -> String {
    let out = ctd.ctr(&["task", "ls"]);
    text(&out.stdout)
        .lines()
        .find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&id)).then(|| cols.get(2).unwrap_or(&"").to_string())
        })
        .unwrap_or_else(|| "absent".to_owned())
}

/// The pid `ctr task ls` shows for `id`.
fn task_pid(ctd: &Containerd, id: &str) -> u32 {
    let out = ctd.ctr(&["task", "ls"]);
    text(&out.stdout)
        .lines()
        .find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&id)).then(|| cols.get(1)?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no task {id}: {}", show(&out)))
}

/// A file of a process's cgroup: `(v1 controller, v1 file, v2 file)`.
fn cgroup_file_of(pid: u32, controller: &str, v1: &str, v2: &str) -> String {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        if ctrls.split(',').any(|c| c == controller) {
            let file = format!("/sys/fs/cgroup/{controller}{path}/{v1}");
            return std::fs::read_to_string(&file)
                .unwrap_or_else(|e| format!("{file}: {e}"))
                .trim()
                .to_owned();
        }
    }
    let path = cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/");
    let file = format!("/sys/fs/cgroup{path}/{v2}");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| format!("{file}: {e}"))
        .trim()
        .to_owned()
}

fn ctr_detached_task_lifecycle() {
    let ctd = timed("containerd up, image imported", Containerd::start);
    let seen = same_for_all("ctr task lifecycle", |rt| {
        let mut o = Observed::new();
        let id = format!("task-{}-{}", rt.name, unique());
        // TERM ends it with 42: a trap, as pid 1 ignores signals it has no handler for.
        let script = "trap 'exit 42' TERM; while true; do sleep 1; done";
        let out = ctr_run(
            &ctd,
            rt,
            "-d",
            &["--memory-limit", "67108864"],
            &id,
            &["sh", "-c", script],
        );
        note(&mut o, "run -d: code", code(&out));
        note(&mut o, "run -d: status", task_status(&ctd, &id));
        let pid = task_pid(&ctd, &id);

        let out = ctd.ctr(&[
            "task",
            "exec",
            "--exec-id",
            "e1",
            &id,
            "sh",
            "-c",
            "echo in; exit 3",
        ]);
        note(&mut o, "exec: stdout", text(&out.stdout));
        note(&mut o, "exec: code", code(&out));
        let out = ctd.ctr(&["task", "exec", "--exec-id", "e2", &id, "/nonexistent"]);
        note(&mut o, "exec of a missing program: code", code(&out));
        note(
            &mut o,
            "exec of a missing program: a failed exec",
            text(&out.stderr)
                .contains("OCI runtime exec failed")
                .to_string(),
        );

        let out = ctd.ctr(&["task", "ps", &id]);
        let pids: Vec<String> = text(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        note(&mut o, "ps: code", code(&out));
        note(
            &mut o,
            "ps: lists the init pid",
            pids.contains(&pid.to_string()).to_string(),
        );

        note(
            &mut o,
            "memory limit in the cgroup",
            cgroup_file_of(pid, "memory", "memory.limit_in_bytes", "memory.max"),
        );

        let out = ctd.ctr(&["task", "pause", &id]);
        note(&mut o, "pause: code", code(&out));
        note(&mut o, "pause: status", task_status(&ctd, &id));
        note(
            &mut o,
            "pause: freezer",
            cgroup_file_of(pid, "freezer", "freezer.state", "cgroup.freeze"),
        );
        let out = ctd.ctr(&["task", "resume", &id]);
        note(&mut o, "resume: code", code(&out));
        note(&mut o, "resume: status", task_status(&ctd, &id));
        note(
            &mut o,
            "resume: freezer",
            cgroup_file_of(pid, "freezer", "freezer.state", "cgroup.freeze"),
        );

        let out = ctd.ctr(&["task", "kill", &id]);
        note(&mut o, "kill: code", code(&out));
        let stopped = wait_until(10, || task_status(&ctd, &id) == "STOPPED");
        note(&mut o, "kill: stopped", stopped.to_string());
        let out = ctd.ctr(&["task", "delete", &id]);
        let err = text(&out.stderr);
        let exit = err
            .split("exit code ")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .unwrap_or("0");
        note(&mut o, "delete: code", code(&out));
        note(&mut o, "delete: exit code of the task", exit);
        note(&mut o, "delete: status", task_status(&ctd, &id));
        let out = ctd.ctr(&["container", "rm", &id]);
        note(&mut o, "container rm: code", code(&out));
        note(&mut o, "cgroups left", ctr_cgroups(&ctd, &id).to_string());
        note(
            &mut o,
            "runtime state left",
            ctd.runtime_state_left(rt).join(","),
        );
        o
    });
    for (label, want) in [
        ("run -d: code", "0"),
        ("run -d: status", "RUNNING"),
        ("exec: stdout", "in\n"),
        ("exec: code", "3"),
        ("exec of a missing program: a failed exec", "true"),
        ("ps: lists the init pid", "true"),
        ("memory limit in the cgroup", "67108864"),
        ("pause: status", "PAUSED"),
        ("resume: status", "RUNNING"),
        ("kill: stopped", "true"),
        ("delete: code", "0"),
        ("delete: exit code of the task", "42"),
        ("delete: status", "absent"),
        ("cgroups left", "0"),
        ("runtime state left", ""),
    ] {
        assert_eq!(get(&seen, label), want, "{label}");
    }
    assert!(
        ["FROZEN", "1"].contains(&get(&seen, "pause: freezer")),
        "{seen:?}"
    );
    assert!(
        ["THAWED", "0"].contains(&get(&seen, "resume: freezer")),
        "{seen:?}"
    );
}

/// Drives an interactive shell in tmux: the prompt, an echoed command and its output, the
/// terminal's name, and the exit code that comes back.
fn drive_shell(tmux: &Tmux, prompt: &str, o: &mut Observed) {
    let shown = |r: Result<String, String>| r.is_ok().to_string();
    let screen = tmux.wait_for(prompt.trim_end(), 20);
    if let Err(s) = &screen {
        eprintln!("    no prompt; the screen:\n{s}");
    }
    note(o, "prompt shown", shown(screen));
    tmux.send_line("echo abc$((40+2)); busybox tty");
    note(
        o,
        "input echoed",
        shown(tmux.wait_for("echo abc$((40+2)); busybox tty", 10)),
    );
    note(o, "output shown", shown(tmux.wait_for("\nabc42", 10)));
    note(
        o,
        "a pty is the terminal",
        shown(tmux.wait_for("/dev/pts/", 10)),
    );
    tmux.send_line("exit 3");
    let end = tmux.wait_for("EXITED=", 20);
    let screen = end.clone().unwrap_or_else(|s| s);
    let code = screen
        .split("EXITED=")
        .nth(1)
        .and_then(|s| s.lines().next())
        .unwrap_or("none")
        .trim()
        .to_owned();
    if end.is_err() {
        eprintln!("    no exit; the screen:\n{screen}");
    }
    note(o, "exit code", code);
}

fn ctr_run_tty_through_tmux() {
    let ctd = timed("containerd up, image imported", Containerd::start);
    let seen = same_for_all("ctr run -t", |rt| {
        let mut o = Observed::new();
        let id = format!("tty-{}-{}", rt.name, unique());
        let mut words: Vec<String> = vec!["ctr".to_owned(), "-a".to_owned()];
        words.push(ctd.socket().to_string_lossy().into_owned());
        words.extend(["-n".to_owned(), ctd.namespace.clone()]);
        words.extend(["run", "-t", "--rm"].map(str::to_owned));
        words.extend(ctd.runtime_flags(rt));
        words.extend(["--env", "PS1=ctr# "].map(str::to_owned));
        words.extend([ctd.image.clone(), id, "sh".to_owned()]);
        let line: Vec<String> = words.iter().map(|w| sh_quote(w)).collect();
        let tmux = Tmux::start(&line.join(" "));
        drive_shell(&tmux, "ctr# ", &mut o);
        note(
            &mut o,
            "runtime state left",
            ctd.runtime_state_left(rt).join(","),
        );
        o
    });
    for (label, want) in [
        ("prompt shown", "true"),
        ("input echoed", "true"),
        ("output shown", "true"),
        ("a pty is the terminal", "true"),
        ("exit code", "3"),
        ("runtime state left", ""),
    ] {
        assert_eq!(get(&seen, label), want, "{label}");
    }
}

// ---------------------------------------------------------------------------------------
// podman.

fn podman_run_output_and_exit_codes() {
    let pm = timed("podman store, image imported", Podman::new);
    let seen = same_for_all("podman run --rm", |rt| {
        let mut o = Observed::new();
        let out = pm.run(rt, &["--rm"], &["echo", "hi"]);
        note(&mut o, "echo: stdout", text(&out.stdout));
        note(&mut o, "echo: code", code(&out));
        let out = pm.run(
            rt,
            &["--rm"],
            &["sh", "-c", "echo out; echo err >&2; exit 5"],
        );
        note(&mut o, "exit 5: stdout", text(&out.stdout));
        note(&mut o, "exit 5: stderr", text(&out.stderr));
        note(&mut o, "exit 5: code", code(&out));
        // podman maps a runtime's "no such file or directory" to 127, as docker does.
        let out = pm.run(rt, &["--rm"], &["/nonexistent"]);
        note(&mut o, "missing program: code", code(&out));
        note(&mut o, "missing program: stdout", text(&out.stdout));
        let out = pm.podman(rt, &["ps", "-a", "-q"]);
        note(&mut o, "containers left", text(&out.stdout));
        note(
            &mut o,
            "runtime state left",
            pm.runtime_state_left(rt).join(","),
        );
        o
    });
    for (label, want) in [
        ("echo: stdout", "hi\n"),
        ("echo: code", "0"),
        ("exit 5: stdout", "out\n"),
        ("exit 5: stderr", "err\n"),
        ("exit 5: code", "5"),
        ("missing program: code", "127"),
        ("containers left", ""),
        ("runtime state left", ""),
    ] {
        assert_eq!(get(&seen, label), want, "{label}");
    }
}

/// `podman inspect --format FORMAT NAME`, trimmed.
fn inspect(pm: &Podman, rt: &Runtime, name: &str, format: &str) -> String {
    let out = pm.podman(rt, &["inspect", "--format", format, name]);
    text(&out.stdout).trim().to_owned()
}

fn podman_detached_exec_pause_stop_rm() {
    let pm = timed("podman store, image imported", Podman::new);
    let seen = same_for_all("podman run -d, exec, pause, stop, rm", |rt| {
        let mut o = Observed::new();
        let name = format!("det-{}-{}", rt.name, unique());
        let out = pm.run(rt, &["-d", "--name", &name], &["sleep", "1000"]);
        note(&mut o, "run -d: code", code(&out));
        note(
            &mut o,
            "run -d: prints the id",
            (text(&out.stdout).trim().len() == 64).to_string(),
        );
        note(
            &mut o,
            "run -d: status",
            inspect(&pm, rt, &name, "{{.State.Status}}"),
        );

        let out = pm.podman(rt, &["exec", &name, "sh", "-c", "echo in $PWD; exit 4"]);
        note(&mut o, "exec: stdout", text(&out.stdout));
        note(&mut o, "exec: code", code(&out));
        let out = pm.podman(
            rt,
            &["exec", "-u", "65534", "-w", "/tmp", &name, "id", "-u"],
        );
        note(&mut o, "exec -u -w: stdout", text(&out.stdout));
        let out = pm.podman(rt, &["exec", &name, "/nonexistent"]);
        note(&mut o, "exec of a missing program: code", code(&out));

        let out = pm.podman(rt, &["pause", &name]);
        note(&mut o, "pause: code", code(&out));
        note(
            &mut o,
            "pause: status",
            inspect(&pm, rt, &name, "{{.State.Status}}"),
        );
        let out = pm.podman(rt, &["unpause", &name]);
        note(&mut o, "unpause: code", code(&out));
        note(
            &mut o,
            "unpause: status",
            inspect(&pm, rt, &name, "{{.State.Status}}"),
        );

        // sleep as pid 1 ignores TERM: stop ends it with KILL after the timeout.
        let out = pm.podman(rt, &["stop", "-t", "1", &name]);
        note(&mut o, "stop: code", code(&out));
        note(
            &mut o,
            "stop: status",
            inspect(&pm, rt, &name, "{{.State.Status}}"),
        );
        note(
            &mut o,
            "stop: exit code",
            inspect(&pm, rt, &name, "{{.State.ExitCode}}"),
        );

        // A stopped container starts again: the runtime gets create and start for the same id.
        let out = pm.podman(rt, &["start", &name]);
        note(&mut o, "start again: code", code(&out));
        note(
            &mut o,
            "start again: status",
            inspect(&pm, rt, &name, "{{.State.Status}}"),
        );

        let out = pm.podman(rt, &["rm", "-f", "-t", "0", &name]);
        note(&mut o, "rm -f: code", code(&out));
        let out = pm.podman(rt, &["ps", "-a", "-q"]);
        note(&mut o, "containers left", text(&out.stdout));
        note(
            &mut o,
            "runtime state left",
            pm.runtime_state_left(rt).join(","),
        );
        o
    });
    for (label, want) in [
        ("run -d: code", "0"),
        ("run -d: prints the id", "true"),
        ("run -d: status", "running"),
        ("exec: stdout", "in /\n"),
        ("exec: code", "4"),
        ("exec -u -w: stdout", "65534\n"),
        ("exec of a missing program: code", "127"),
        ("pause: status", "paused"),
        ("unpause: status", "running"),
        ("stop: code", "0"),
        ("stop: status", "exited"),
        ("stop: exit code", "137"),
        ("start again: code", "0"),
        ("start again: status", "running"),
        ("rm -f: code", "0"),
        ("containers left", ""),
        ("runtime state left", ""),
    ] {
        assert_eq!(get(&seen, label), want, "{label}");
    }
}

/// The script of `podman_run_options`: one line per thing it looks at.
const OPTIONS_SCRIPT: &str = r#"
echo "env FOO=$FOO"
echo "cwd $(pwd)"
echo "id $(id)"
grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status | tr '\t' ' '
echo "memory $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"
echo "pids $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"
touch /written 2>/dev/null && echo "root writable" || echo "root read-only"
"#;

fn podman_run_options() {
    let pm = timed("podman store, image imported", Podman::new);
    let seen = same_for_all(
        "podman run -e -w -u --memory --pids-limit --read-only --cap-drop",
        |rt| {
            let mut o = Observed::new();
            let out = pm.run(
                rt,
                &[
                    "--rm",
                    "-e",
                    "FOO=bar baz",
                    "-w",
                    "/srv",
                    "-u",
                    "65534:65534",
                    "--memory",
                    "64m",
                    "--pids-limit",
                    "50",
                    "--read-only",
                    "--cap-drop",
                    "all",
                ],
                &["sh", "-c", OPTIONS_SCRIPT],
            );
            note(&mut o, "code", code(&out));
            note(&mut o, "stderr", text(&out.stderr));
            for line in text(&out.stdout).lines() {
                let (key, value) = line.split_once(' ').unwrap_or((line, ""));
                note(&mut o, key, value);
            }
            // Only the named capability goes.
            let out = pm.run(
                rt,
                &["--rm", "--cap-drop", "chown"],
                &[
                    "sh",
                    "-c",
                    "touch /f; chown 65534 /f && echo chowned || echo refused",
                ],
            );
            note(&mut o, "cap-drop chown", text(&out.stdout).trim());
            // A user namespace: podman writes the maps through the runtime's config.
            let out = pm.run(
                rt,
                &[
                    "--rm",
                    "--uidmap",
                    "0:100000:65536",
                    "--gidmap",
                    "0:100000:65536",
                ],
                &[
                    "sh",
                    "-c",
                    "tr -s ' ' < /proc/self/uid_map; id -u; touch /f && echo wrote",
                ],
            );
            note(&mut o, "userns: code", code(&out));
            note(&mut o, "userns: stdout", text(&out.stdout));
            o
        },
    );
    for (label, want) in [
        ("code", "0"),
        ("stderr", ""),
        ("env", "FOO=bar baz"),
        ("cwd", "/srv"),
        (
            "id",
            "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)",
        ),
        ("CapEff:", "0000000000000000"),
        ("CapPrm:", "0000000000000000"),
        ("CapBnd:", "0000000000000000"),
        ("memory", "67108864"),
        ("pids", "50"),
        ("root", "read-only"),
        ("cap-drop chown", "refused"),
        ("userns: code", "0"),
        ("userns: stdout", " 0 100000 65536\n0\nwrote\n"),
    ] {
        assert_eq!(get(&seen, label), want, "{label}");
    }
}

/// The script of `podman_read_only_and_tmpfs_copy_up`.
const COPY_UP_SCRIPT: &str = r#"
echo "greeting $(cat /srv/greeting)"
echo "link $(readlink /srv/sub/link) $(cat /srv/sub/link)"
echo "srv-fs $(grep ' /srv ' /proc/mounts | cut -d' ' -f3)"
touch /srv/new && echo "srv writable"
touch /tmp/new && echo "tmp writable"
touch /written 2>/dev/null && echo "root writable" || echo "root read-only"
echo "modes $(stat -c %a /srv /srv/sub /srv/greeting /tmp /run | tr "\n" " ")"
"#;

fn podman_read_only_and_tmpfs_copy_up() {
    let pm = timed("podman store, image imported", Podman::new);
    // podman's --tmpfs and --read-only's /tmp, /var/tmp and /run are tmpfs mounts with
    // `tmpcopyup`: what the image has at the mount point is copied onto the tmpfs.
    let seen = same_for_all("podman run --read-only --tmpfs", |rt| {
        let mut o = Observed::new();
        let out = pm.run(
            rt,
            &["--rm", "--read-only", "--tmpfs", "/srv"],
            &["sh", "-c", COPY_UP_SCRIPT],
        );
        note(&mut o, "code", code(&out));
        note(&mut o, "stderr", text(&out.stderr));
        for line in text(&out.stdout).lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            note(&mut o, key, value);
        }
        o
    });
    for (label, want) in [
        ("code", "0"),
        ("stderr", ""),
        ("greeting", "copied up"),
        ("link", "../greeting copied up"),
        ("srv-fs", "tmpfs"),
        ("srv", "writable"),
        ("tmp", "writable"),
        ("root", "read-only"),
    ] {
        assert_eq!(get(&seen, label), want, "{label}");
    }
}

fn podman_run_it_through_tmux() {
    let pm = timed("podman store, image imported", Podman::new);
    let seen = same_for_all("podman run -it", |rt| {
        let mut o = Observed::new();
        let mut args: Vec<String> = vec!["run".to_owned(), "-it".to_owned(), "--rm".to_owned()];
        args.extend(pm.run_flags());
        args.extend(["-e", "PS1=pm# "].map(str::to_owned));
        args.extend([pm.image.clone(), "sh".to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let tmux = Tmux::start(&pm.shell_line(rt, &args));
        drive_shell(&tmux, "pm# ", &mut o);
        drop(tmux);
        let out = pm.podman(rt, &["ps", "-a", "-q"]);
        note(&mut o, "containers left", text(&out.stdout));
        o
    });
    for (label, want) in [
        ("prompt shown", "true"),
        ("input echoed", "true"),
        ("output shown", "true"),
        ("a pty is the terminal", "true"),
        ("exit code", "3"),
        ("containers left", ""),
    ] {
        assert_eq!(get(&seen, label), want, "{label}");
    }
}
