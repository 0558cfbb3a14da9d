//! The `berth` binary end to end, unprivileged: `spec`, `create --dry-run`, `run --dry-run`,
//! and the error contract (one line on stderr, exit status 1, nothing on stdout).

// Test helpers too: a failed unwrap is a failed test (clippy.toml allows it in `#[test]`s).
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_core::plan::Plan;
use tempfile::TempDir;

/// Runs berth with `args` in `cwd`.
fn berth_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the berth binary runs")
}

fn berth(args: &[&str]) -> Output {
    berth_in(Path::new("/"), args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Asserts success and an empty stderr; returns stdout.
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "berth failed: {:?}\nstderr: {}",
        out.status,
        stderr(out)
    );
    assert_eq!(
        stderr(out),
        "",
        "a successful command prints no diagnostics"
    );
    stdout(out)
}

/// Asserts exit status 1, nothing on stdout, and exactly one line on stderr; returns it
/// without its newline.
fn fails(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(out));
    assert_eq!(stdout(out), "", "diagnostics never go to stdout");
    let err = stderr(out);
    assert!(err.ends_with('\n'), "{err:?}");
    assert_eq!(err.lines().count(), 1, "the error is one line: {err:?}");
    err.trim_end().to_owned()
}

/// A bundle made by `berth spec`: `config.json`, and a `rootfs` with an `/etc/passwd`.
struct Bundle {
    dir: TempDir,
}

impl Bundle {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("rootfs/etc")).unwrap();
        fs::write(
            dir.path().join("rootfs/etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .unwrap();
        ok(&berth(&["spec", "--bundle", path_str(dir.path())]));
        Bundle { dir }
    }

    fn path(&self) -> &str {
        path_str(self.dir.path())
    }

    /// A `--root` inside the tempdir that does not exist.
    fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Every path under the bundle, to see that a dry run added nothing.
    fn listing(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                out.push(path.clone());
                if path.is_dir() && !path.is_symlink() {
                    walk(&path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out.sort();
        out
    }

    /// Changes config.json.
    fn edit_config(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.dir.path().join("config.json");
        let mut config = read_json(&path);
        edit(&mut config);
        fs::write(&path, config.to_string()).unwrap();
    }

    /// `create --dry-run[=format] --console-socket ... --bundle B ID` (the default spec
    /// has a terminal, which a detached container gets over a console socket).
    fn dry_run(&self, format: &str, id: &str) -> Output {
        let root = self.state_root();
        berth(&[
            "--root",
            path_str(&root),
            "create",
            format,
            "--console-socket",
            "/run/console.sock",
            "--bundle",
            self.path(),
            id,
        ])
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// Our effective uid, from `/proc/self/status` (`Uid: real effective saved fs`).
fn euid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn spec_writes_a_config_that_create_dry_run_accepts() {
    let bundle = Bundle::new();
    let config = read_json(&bundle.dir.path().join("config.json"));
    assert_eq!(config["root"]["path"], "rootfs");
    let before = bundle.listing();
    let plan = ok(&bundle.dry_run("--dry-run", "c1"));
    assert!(
        plan.starts_with("0 runtime state-create"),
        "unexpected plan:\n{plan}"
    );
    assert!(plan.ends_with('\n'));
    // Touch nothing: no state directory, nothing new in the bundle.
    assert!(
        !bundle.state_root().exists(),
        "a dry run made the state root"
    );
    assert_eq!(bundle.listing(), before);
}

#[test]
fn spec_refuses_to_overwrite_a_config() {
    let bundle = Bundle::new();
    let config = bundle.dir.path().join("config.json");
    fs::write(&config, "{}").unwrap();
    let err = fails(&berth(&["spec", "--bundle", bundle.path()]));
    assert_eq!(
        err,
        format!("berth: File {} exists. Remove it first", config.display())
    );
    assert_eq!(fs::read_to_string(&config).unwrap(), "{}");
}

#[test]
fn spec_in_the_current_directory_speaks_like_runc() {
    let dir = tempfile::tempdir().unwrap();
    ok(&berth_in(dir.path(), &["spec"]));
    assert!(dir.path().join("config.json").is_file());
    let err = fails(&berth_in(dir.path(), &["spec"]));
    assert_eq!(err, "berth: File config.json exists. Remove it first");
}

#[test]
fn spec_rootless_maps_root_to_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    ok(&berth(&[
        "spec",
        "--rootless",
        "--bundle",
        path_str(dir.path()),
    ]));
    let config = read_json(&dir.path().join("config.json"));
    let uid_map = &config["linux"]["uidMappings"];
    assert_eq!(uid_map[0]["containerID"], 0, "{config}");
    assert_eq!(uid_map[0]["hostID"], euid(), "{config}");
    let namespaces = config["linux"]["namespaces"].as_array().unwrap();
    assert!(
        namespaces.iter().any(|ns| ns["type"] == "user"),
        "a rootless config has a user namespace: {config}"
    );
}

#[test]
fn spec_into_a_missing_bundle_fails() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = fails(&berth(&["spec", "--bundle", path_str(&missing)]));
    assert!(
        err.starts_with(&format!(
            "berth: creating {}/config.json: ",
            missing.display()
        )),
        "{err}"
    );
}

#[test]
fn dry_run_json_round_trips() {
    let bundle = Bundle::new();
    let json = ok(&bundle.dry_run("--dry-run=json", "c1"));
    let plan: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(
        format!("{}\n", plan.to_json()),
        json,
        "JSON is byte-identical"
    );
    plan.check().unwrap();
    let back: Plan = serde_json::from_str(&plan.to_json()).unwrap();
    assert_eq!(back, plan);
    // The JSON and the text are the same plan.
    let text = ok(&bundle.dry_run("--dry-run=text", "c1"));
    assert_eq!(plan.to_string(), text);
    assert!(!bundle.state_root().exists());
}

#[test]
fn id_may_come_before_the_flags() {
    let bundle = Bundle::new();
    let flags_first = ok(&bundle.dry_run("--dry-run", "c1"));
    let root = bundle.state_root();
    let id_first = ok(&berth(&[
        "--root",
        path_str(&root),
        "create",
        "c1",
        "--bundle",
        bundle.path(),
        "--console-socket",
        "/run/console.sock",
        "--dry-run",
    ]));
    assert_eq!(id_first, flags_first);
}

#[test]
fn dry_run_does_not_swallow_the_id() {
    // `--dry-run c1` must not read `c1` as the format.
    let bundle = Bundle::new();
    let root = bundle.state_root();
    let out = ok(&berth(&[
        "--root",
        path_str(&root),
        "create",
        "--bundle",
        bundle.path(),
        "--console-socket",
        "/run/console.sock",
        "--dry-run",
        "c1",
    ]));
    assert!(out.starts_with("0 runtime state-create"), "{out}");
}

#[test]
fn dry_run_names_the_id_and_bundle_in_the_plan() {
    let bundle = Bundle::new();
    let plan = ok(&bundle.dry_run("--dry-run", "web.1"));
    assert!(plan.contains("web.1"), "{plan}");
    assert!(plan.contains(bundle.path()), "{plan}");
    let other = ok(&bundle.dry_run("--dry-run", "web.2"));
    assert_ne!(plan, other);
}

#[test]
fn relative_bundle_is_made_absolute() {
    let bundle = Bundle::new();
    let root = bundle.state_root();
    let args = |b: &str| {
        vec![
            "--root".to_owned(),
            path_str(&root).to_owned(),
            "create".to_owned(),
            "--dry-run".to_owned(),
            "--console-socket".to_owned(),
            "/run/console.sock".to_owned(),
            "--bundle".to_owned(),
            b.to_owned(),
            "c1".to_owned(),
        ]
    };
    let absolute = ok(&berth(
        &args(bundle.path())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ));
    let parent = bundle.dir.path().parent().unwrap();
    let name = bundle.dir.path().file_name().unwrap().to_str().unwrap();
    let relative = format!("./{name}/../{name}");
    let from_parent = ok(&berth_in(
        parent,
        &args(&relative)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ));
    assert_eq!(from_parent, absolute);
    let default_bundle = ok(&berth_in(
        bundle.dir.path(),
        &[
            "--root",
            path_str(&root),
            "create",
            "--dry-run",
            "--console-socket",
            "/run/console.sock",
            "c1",
        ],
    ));
    assert_eq!(default_bundle, absolute);
}

#[test]
fn run_dry_run_prints_the_plan() {
    let bundle = Bundle::new();
    let root = bundle.state_root();
    let detached = ok(&berth(&[
        "--root",
        path_str(&root),
        "run",
        "-d",
        "--dry-run=json",
        "--console-socket",
        "/run/console.sock",
        "--bundle",
        bundle.path(),
        "c1",
    ]));
    let parsed: Plan = serde_json::from_str(&detached).unwrap();
    assert!(parsed.to_string().starts_with("0 runtime state-create"));
    // Without a terminal, a foreground run needs no console socket.
    bundle.edit_config(|c| c["process"]["terminal"] = false.into());
    let plan = ok(&berth(&[
        "--root",
        path_str(&root),
        "run",
        "--dry-run",
        "--bundle",
        bundle.path(),
        "c1",
    ]));
    assert!(plan.starts_with("0 runtime state-create"), "{plan}");
    assert!(!root.exists());
}

#[test]
fn detached_terminal_needs_a_console_socket() {
    let bundle = Bundle::new();
    for command in [&["create"][..], &["run", "-d"][..]] {
        let mut args = command.to_vec();
        args.extend(["--dry-run", "--bundle", bundle.path(), "c1"]);
        let err = fails(&berth(&args));
        assert!(err.starts_with("berth: "), "{err}");
        assert!(err.contains("console socket"), "{err}");
    }
}

#[test]
fn foreground_terminal_plans_berths_own_console_socket() {
    // A foreground run with a terminal and no --console-socket: berth receives the pty on
    // a socket of its own; a dry run names it and makes nothing.
    let bundle = Bundle::new();
    let root = bundle.state_root();
    let plan = ok(&berth(&[
        "--root",
        path_str(&root),
        "run",
        "--dry-run",
        "--bundle",
        bundle.path(),
        "c1",
    ]));
    let connect = plan
        .lines()
        .find(|l| l.contains("runtime connect "))
        .unwrap_or_else(|| panic!("no connect step:\n{plan}"));
    let socket = connect
        .split_whitespace()
        .nth(3)
        .unwrap_or_else(|| panic!("{connect}"));
    assert!(socket.ends_with("/console.sock"), "{connect}");
    assert!(socket.contains("/berth-console-"), "{connect}");
    assert!(!Path::new(socket).parent().unwrap().exists(), "{connect}");
    assert!(
        plan.contains("init send-fd $console.master $console.socket"),
        "{plan}"
    );
    assert!(!root.exists());
}

#[test]
fn console_socket_needs_a_terminal() {
    let bundle = Bundle::new();
    bundle.edit_config(|c| c["process"]["terminal"] = false.into());
    let err = fails(&bundle.dry_run("--dry-run", "c1"));
    assert_eq!(
        err,
        "berth: cannot use console socket if berth will not allocate tty"
    );
}

#[test]
fn missing_config_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(&berth(&[
        "create",
        "--dry-run",
        "--bundle",
        path_str(dir.path()),
        "c1",
    ]));
    let prefix = format!("berth: reading {}/config.json: ", dir.path().display());
    assert!(err.starts_with(&prefix), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
}

#[test]
fn invalid_config_names_the_json_path() {
    let bundle = Bundle::new();
    let path = bundle.dir.path().join("config.json");
    bundle.edit_config(|c| c["linux"]["namespaces"][2]["type"] = "foo".into());
    let err = fails(&bundle.dry_run("--dry-run", "c1"));
    assert_eq!(
        err,
        format!(
            "berth: {}: linux.namespaces[2].type: unknown namespace \"foo\"",
            path.display()
        )
    );
    // Without --dry-run, the config is refused before anything happens.
    let root = bundle.state_root();
    let out = berth(&[
        "--root",
        path_str(&root),
        "create",
        "--bundle",
        bundle.path(),
        "c1",
    ]);
    assert!(fails(&out).contains("linux.namespaces[2].type"));
    assert!(!root.exists());
}

#[test]
fn invalid_ids_are_refused() {
    let bundle = Bundle::new();
    for id in ["a/b", "..", ".", "a b", "-"] {
        // `-` is valid for runc; the others are not.
        let out = bundle.dry_run("--dry-run", id);
        if id == "-" {
            ok(&out);
            continue;
        }
        let err = fails(&out);
        assert_eq!(err, format!("berth: invalid container id {id:?}"));
    }
    assert!(!bundle.state_root().exists());
}

#[test]
fn version_goes_to_stdout() {
    let out = ok(&berth(&["--version"]));
    // The spec version is the one `berth spec` writes.
    let dir = tempfile::tempdir().unwrap();
    ok(&berth(&["spec", "--bundle", path_str(dir.path())]));
    let oci_version = read_json(&dir.path().join("config.json"))["ociVersion"].clone();
    let expected = format!(
        "berth version {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        oci_version.as_str().unwrap()
    );
    assert_eq!(out, expected);
    assert_eq!(ok(&berth(&["-v"])), expected);
}

#[test]
fn usage_errors_fail_on_stderr() {
    let out = berth(&["create", "--no-such-flag", "c1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("--no-such-flag"), "{}", stderr(&out));
    // Global flags come before the command, as in runc.
    let out = berth(&["create", "--root", "/tmp/x", "--dry-run", "c1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    let out = berth(&["create", "--dry-run=yaml", "c1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("yaml"));
}

#[test]
fn errors_also_go_to_the_json_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let err = fails(&berth(&[
        "--log",
        path_str(&log),
        "--log-format",
        "json",
        "create",
        "--dry-run",
        "--bundle",
        path_str(dir.path()),
        "c1",
    ]));
    let text = fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(format!("berth: {}", line["msg"].as_str().unwrap()), err);
    assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
}

#[test]
fn debug_goes_to_stderr_not_stdout() {
    let bundle = Bundle::new();
    let root = bundle.state_root();
    let out = berth(&[
        "--debug",
        "--root",
        path_str(&root),
        "create",
        "--dry-run=json",
        "--console-socket",
        "/run/console.sock",
        "--bundle",
        bundle.path(),
        "c1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // stdout is only the plan, so it still parses.
    let _: Plan = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(stderr(&out).contains("level=debug"), "{}", stderr(&out));
}

#[test]
fn dry_run_works_unprivileged() {
    // The acceptance: `runuser -u nobody -- berth create --dry-run ...` prints the
    // plan and leaves no state directory. As root we drop to nobody; otherwise we already
    // are unprivileged. The binary and bundle are copied into a world-readable tempdir so
    // that nobody can reach them.
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("berth");
    fs::copy(env!("CARGO_BIN_EXE_berth"), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let bundle = dir.path().join("bundle");
    fs::create_dir_all(bundle.join("rootfs/etc")).unwrap();
    fs::write(
        bundle.join("rootfs/etc/passwd"),
        "root:x:0:0::/root:/bin/sh\n",
    )
    .unwrap();
    ok(&berth(&["spec", "--bundle", path_str(&bundle)]));
    for p in [&bundle, &bundle.join("rootfs"), &bundle.join("rootfs/etc")] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    for p in [bundle.join("config.json"), bundle.join("rootfs/etc/passwd")] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let state = dir.path().join("state");
    let args = [
        "--root",
        path_str(&state),
        "create",
        "--dry-run",
        "--console-socket",
        "/run/console.sock",
        "--bundle",
        path_str(&bundle),
        "c1",
    ];
    let out = if euid() == 0 {
        Command::new("runuser")
            .args(["-u", "nobody", "--", path_str(&bin)])
            .args(args)
            .current_dir("/")
            .output()
            .expect("runuser runs")
    } else {
        Command::new(&bin)
            .args(args)
            .current_dir("/")
            .output()
            .unwrap()
    };
    let plan = ok(&out);
    assert!(plan.starts_with("0 runtime state-create"), "{plan}");
    assert!(!state.exists());
}

#[test]
fn create_without_dry_run_refuses_a_bad_id_before_anything() {
    let bundle = Bundle::new();
    let root = bundle.state_root();
    let err = fails(&berth(&[
        "--root",
        path_str(&root),
        "create",
        "--bundle",
        bundle.path(),
        "../escape",
    ]));
    assert_eq!(err, "berth: invalid container id \"../escape\"");
    assert!(!root.exists());
}

/// Whether the ELF file at `path` asks for a program interpreter (`PT_INTERP`): a
/// dynamically linked executable does, a static (or static-pie) one does not.
fn has_interpreter(path: &str) -> bool {
    let elf = fs::read(path).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "{path} is not an ELF file");
    assert_eq!(elf[4], 2, "{path} is not a 64-bit ELF file");
    assert_eq!(elf[5], 1, "{path} is not little-endian");
    let word = |at: usize, n: usize| {
        elf[at..at + n]
            .iter()
            .rev()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b))
    };
    let (phoff, phentsize, phnum) = (word(0x20, 8), word(0x36, 2), word(0x3a, 2));
    (0..phnum).any(|i| {
        let at = usize::try_from(phoff + i * phentsize).unwrap();
        word(at, 4) == 3 // PT_INTERP
    })
}

/// berth's binaries are static (.cargo/config.toml): BENCHMARKS.md's peak RSS and start
/// times depend on it. A `RUSTFLAGS` in the environment replaces the config's flags, and
/// the build would then quietly come out dynamic; this says so instead.
#[test]
fn the_binaries_are_static() {
    for bin in [
        env!("CARGO_BIN_EXE_berth"),
        env!("CARGO_BIN_EXE_berth-engine"),
    ] {
        assert!(
            !has_interpreter(bin),
            "{bin} is dynamically linked: was RUSTFLAGS set (it replaces .cargo/config.toml's \
             crt-static)?"
        );
    }
    // And the check itself tells a dynamic executable.
    let dynamic = ["/bin/sh", "/usr/bin/env"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    assert!(has_interpreter(dynamic), "{dynamic} reads as static");
}
