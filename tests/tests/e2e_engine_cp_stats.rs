//! End-to-end through `berth stats` and `berth cp` (root, real kernel, a busybox image
//! made here): stats of running containers (name, memory, limit, pids, CPU, JSON), copies
//! out of and into running, stopped and never-started containers (files, directories,
//! `DIR/.`, tar streams on stdout and stdin, modes and owners), symbolic links that try to
//! leave the container's root, clear errors, and no mount left behind.
//!
//! Every case has its own `--data-root` and `--exec-root` in a tempdir; a guard removes
//! every container the case made (`berth rm -f`).

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_cli_support;
mod e2e_engine_support;
mod e2e_linux_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use e2e_cli_support::{fails, ok, text};
use e2e_engine_support::Engine;
use e2e_linux_support::{mount_points_under, wait_until};

fn main() {
    e2e_linux_support::run(&[
        (
            "stats_no_stream_shows_usage_and_limit",
            stats_no_stream_shows_usage_and_limit,
        ),
        ("stats_sees_a_busy_container", stats_sees_a_busy_container),
        (
            "cp_out_of_a_running_container",
            cp_out_of_a_running_container,
        ),
        ("cp_into_a_running_container", cp_into_a_running_container),
        (
            "cp_with_a_stopped_container_leaves_no_mount",
            cp_with_a_stopped_container_leaves_no_mount,
        ),
        (
            "symlinks_never_leave_the_rootfs",
            symlinks_never_leave_the_rootfs,
        ),
        ("cp_errors_are_clear", cp_errors_are_clear),
    ]);
}

/// An engine with the harness's busybox imported as `busybox`, and a scratch directory
/// on the host for the copies.
fn engine() -> Engine {
    let e = Engine::with_busybox("busybox", false);
    std::fs::create_dir(e.host()).unwrap();
    e
}

impl Engine {
    /// A scratch directory on the host for the copies.
    fn host(&self) -> PathBuf {
        self.dir().join("host")
    }

    fn host_str(&self, name: &str) -> String {
        self.host().join(name).to_string_lossy().into_owned()
    }

    /// `berth run -d --name NAME [flags] busybox sh -c SCRIPT`, once the script has
    /// created `/tmp/ready`.
    fn detached(&self, name: &str, flags: &[&str], script: &str) {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(flags);
        let script = format!("{script}; touch /tmp/ready; while true; do sleep 1; done");
        args.extend(["busybox", "sh", "-c", &script]);
        ok(&self.run(&args));
        assert!(
            wait_until(10, || self
                .run(&["exec", name, "test", "-e", "/tmp/ready"])
                .status
                .success()),
            "{name} did not get ready"
        );
    }

    /// `berth exec NAME CMD...`'s stdout.
    fn exec(&self, name: &str, cmd: &[&str]) -> String {
        let mut args = vec!["exec", name];
        args.extend_from_slice(cmd);
        text(&ok(&self.run(&args)))
    }

    fn mounts(&self) -> Vec<String> {
        mount_points_under(&self.data().to_string_lossy())
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The row of `name` in a stats table, split into its columns (two or more spaces apart).
fn stats_row(table: &str, name: &str) -> Vec<String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("CONTAINER ID")
            && header.contains("NAME")
            && header.contains("CPU %")
            && header.contains("MEM USAGE / LIMIT")
            && header.contains("MEM %")
            && header.ends_with("PIDS"),
        "{table}"
    );
    let line = lines
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in\n{table}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A docker size (`1.5MiB`) in bytes.
fn size(text: &str) -> f64 {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap();
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().unwrap();
    let shift = ["B", "KiB", "MiB", "GiB", "TiB"]
        .iter()
        .position(|u| *u == unit)
        .unwrap_or_else(|| panic!("unit of {text}"));
    n * (1u64 << (10 * shift)) as f64
}

fn stats_no_stream_shows_usage_and_limit() {
    let e = engine();
    e.detached(
        "s1",
        &["--memory", "64m"],
        "x=$(head -c 100000 /bin/busybox | wc -c)",
    );
    e.detached("s2", &[], "true");
    let table = text(&ok(&e.run(&["stats", "--no-stream", "s1"])));
    assert_eq!(table.lines().count(), 2, "{table}");
    let row = stats_row(&table, "s1");
    assert_eq!(row.len(), 6, "{row:?}");
    let id = text(&ok(&e.run(&["ps", "-q", "--no-trunc", "--all"])));
    assert!(id.lines().any(|l| l.starts_with(&row[0])), "{row:?} {id}");
    assert!(row[2].ends_with('%'), "{row:?}");
    let (usage, limit) = row[3].split_once(" / ").unwrap();
    assert!(size(usage) > 0.0, "{row:?}");
    assert_eq!(limit, "64MiB", "{row:?}");
    assert!(row[4].ends_with('%'), "{row:?}");
    let pids: u64 = row[5].parse().unwrap();
    assert!(pids >= 1, "{row:?}");

    // Without names: every running container; s2 has no limit, so the host's memory.
    let table = text(&ok(&e.run(&["stats", "--no-stream"])));
    assert_eq!(table.lines().count(), 3, "{table}");
    let row = stats_row(&table, "s2");
    let host = read(Path::new("/proc/meminfo"));
    let kib: f64 = host
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let limit = size(row[3].split_once(" / ").unwrap().1);
    assert!((limit / (kib * 1024.0) - 1.0).abs() < 0.001, "{row:?}");

    // JSON lines with docker's keys.
    let out = text(&ok(&e.run(&[
        "stats",
        "--no-stream",
        "--format",
        "json",
        "s1",
        "s2",
    ])));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    let s1 = &lines[0];
    assert_eq!(s1["Name"], "s1", "{out}");
    assert_eq!(s1["Container"], "s1", "{out}");
    assert!(
        s1["MemUsage"].as_str().unwrap().ends_with(" / 64MiB"),
        "{out}"
    );
    let pids: u64 = s1["PIDs"].as_str().unwrap().parse().unwrap();
    assert!(pids >= 1, "{out}");
    assert!(s1["CPUPerc"].as_str().unwrap().ends_with('%'), "{out}");
    assert!(s1["MemPerc"].as_str().unwrap().ends_with('%'), "{out}");

    // A stopped container, named, shows zeros.
    ok(&e.run(&["stop", "-t", "1", "s2"]));
    let table = text(&ok(&e.run(&["stats", "--no-stream", "s2"])));
    let row = stats_row(&table, "s2");
    assert_eq!(row[2..], ["0.00%", "0B / 0B", "0.00%", "0"], "{table}");
}

fn stats_sees_a_busy_container() {
    let e = engine();
    ok(&e.run(&[
        "run",
        "-d",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]));
    // Streaming, not on a terminal: successive tables, no escape codes.
    let mut child = e
        .command(&["stats", "busy"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3500));
    child.kill().unwrap();
    let out = text(&child.wait_with_output().unwrap().stdout);
    assert!(!out.contains('\x1b'), "{out:?}");
    let tables: Vec<&str> = out
        .split("CONTAINER ID")
        .filter(|t| !t.is_empty())
        .collect();
    assert!(tables.len() >= 2, "{out}");
    let mut cpus = Vec::new();
    for t in &tables {
        let row = stats_row(&format!("CONTAINER ID{t}"), "busy");
        cpus.push(row[2].trim_end_matches('%').parse::<f64>().unwrap());
    }
    // A shell spinning has most of a CPU even on a busy two-CPU machine.
    assert!(cpus.iter().all(|c| *c > 10.0), "{cpus:?}\n{out}");
}

fn cp_out_of_a_running_container() {
    let e = engine();
    e.detached(
        "w",
        &[],
        "echo hello > /data.txt; busybox chmod 640 /data.txt; mkdir -p /d/sub; echo y > /d/sub/y; \
         busybox ln -s sub/y /d/link",
    );
    // A file to a new name, and into an existing directory.
    ok(&e.run(&["cp", "w:/data.txt", &e.host_str("out.txt")]));
    assert_eq!(read(&e.host().join("out.txt")), "hello\n");
    let mode = std::fs::metadata(e.host().join("out.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640);
    ok(&e.run(&["cp", "w:data.txt", &format!("{}/", e.host().display())]));
    assert_eq!(read(&e.host().join("data.txt")), "hello\n");
    // A directory becomes a new one, goes into an existing one, or merges with `/.`.
    ok(&e.run(&["cp", "w:/d", &e.host_str("dcopy")]));
    assert_eq!(read(&e.host().join("dcopy/sub/y")), "y\n");
    let link = std::fs::read_link(e.host().join("dcopy/link")).unwrap();
    assert_eq!(link, Path::new("sub/y"));
    std::fs::create_dir(e.host().join("into")).unwrap();
    ok(&e.run(&["cp", "w:/d", &e.host_str("into")]));
    assert_eq!(read(&e.host().join("into/d/sub/y")), "y\n");
    std::fs::create_dir(e.host().join("merge")).unwrap();
    ok(&e.run(&["cp", "w:/d/.", &e.host_str("merge")]));
    assert_eq!(read(&e.host().join("merge/sub/y")), "y\n");
    // A tar stream on stdout.
    let tar = ok(&e.run(&["cp", "w:/d", "-"]));
    let tar_file = e.host().join("d.tar");
    std::fs::write(&tar_file, &tar).unwrap();
    let listed = Command::new("tar")
        .arg("-tvf")
        .arg(&tar_file)
        .output()
        .unwrap();
    let listed = text(&ok(&listed));
    for entry in ["d/", "d/sub/", "d/sub/y", "d/link -> sub/y"] {
        assert!(listed.contains(entry), "{entry} not in\n{listed}");
    }
    let y = Command::new("tar")
        .arg("-xOf")
        .arg(&tar_file)
        .arg("d/sub/y")
        .output()
        .unwrap();
    assert_eq!(text(&ok(&y)), "y\n");
}

fn cp_into_a_running_container() {
    let e = engine();
    e.detached("w", &[], "mkdir /into");
    let f = e.host().join("f.txt");
    std::fs::write(&f, "from the host\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o751)).unwrap();
    std::os::unix::fs::chown(&f, Some(1234), Some(4321)).unwrap();
    ok(&e.run(&["cp", f.to_str().unwrap(), "w:/into/"]));
    assert_eq!(e.exec("w", &["cat", "/into/f.txt"]), "from the host\n");
    // docker's owner: root; the mode as it was.
    assert_eq!(
        e.exec("w", &["stat", "-c", "%a %u:%g", "/into/f.txt"]),
        "751 0:0\n"
    );
    // `-a` keeps the owner.
    ok(&e.run(&["cp", "-a", f.to_str().unwrap(), "w:/into/kept.txt"]));
    assert_eq!(
        e.exec("w", &["stat", "-c", "%a %u:%g", "/into/kept.txt"]),
        "751 1234:4321\n"
    );
    // A directory, to a new name.
    std::fs::create_dir_all(e.host().join("tree/sub")).unwrap();
    std::fs::write(e.host().join("tree/sub/leaf"), "leaf\n").unwrap();
    ok(&e.run(&["cp", &e.host_str("tree"), "w:/newtree"]));
    assert_eq!(e.exec("w", &["cat", "/newtree/sub/leaf"]), "leaf\n");
    // A file replaces a file.
    ok(&e.run(&["cp", f.to_str().unwrap(), "w:/newtree/sub/leaf"]));
    assert_eq!(
        e.exec("w", &["cat", "/newtree/sub/leaf"]),
        "from the host\n"
    );
    // A tar stream on stdin, into an existing directory.
    let tar = Command::new("tar")
        .arg("-C")
        .arg(e.host())
        .args(["-cf", "-", "tree"])
        .output()
        .unwrap();
    let tar = ok(&tar);
    ok(&e.run_with_input(&["cp", "-", "w:/into"], &tar));
    assert_eq!(e.exec("w", &["cat", "/into/tree/sub/leaf"]), "leaf\n");
    let err = fails(&e.run_with_input(&["cp", "-", "w:/into/f.txt"], &tar));
    assert!(err.contains("must be a directory"), "{err}");
}

fn cp_with_a_stopped_container_leaves_no_mount() {
    let e = engine();
    let out = e.run(&[
        "run",
        "--name",
        "st",
        "busybox",
        "sh",
        "-c",
        "echo saved > /saved.txt",
    ]);
    ok(&out);
    assert_eq!(e.mounts(), Vec::<String>::new());
    ok(&e.run(&["cp", "st:/saved.txt", &e.host_str("saved.txt")]));
    assert_eq!(read(&e.host().join("saved.txt")), "saved\n");
    assert_eq!(e.mounts(), Vec::<String>::new(), "cp out left a mount");
    std::fs::write(e.host().join("new.txt"), "new\n").unwrap();
    ok(&e.run(&["cp", &e.host_str("new.txt"), "st:/"]));
    assert_eq!(e.mounts(), Vec::<String>::new(), "cp in left a mount");
    // The file is in the container's own layer: it is there when it runs again.
    ok(&e.run(&["start", "st"]));
    ok(&e.run(&["wait", "st"]));
    ok(&e.run(&["cp", "st:/new.txt", &e.host_str("back.txt")]));
    assert_eq!(read(&e.host().join("back.txt")), "new\n");
    // A failed copy unmounts too.
    let err = fails(&e.run(&["cp", "st:/nonexistent", &e.host_str("x")]));
    assert!(err.contains("no such file"), "{err}");
    assert_eq!(e.mounts(), Vec::<String>::new(), "a failed cp left a mount");
    // A container never started: its overlay did not exist yet.
    ok(&e.run(&["create", "--name", "cr", "busybox", "true"]));
    ok(&e.run(&["cp", &e.host_str("new.txt"), "cr:/etc/"]));
    ok(&e.run(&["cp", "cr:/etc/new.txt", &e.host_str("cr.txt")]));
    assert_eq!(read(&e.host().join("cr.txt")), "new\n");
    ok(&e.run(&["cp", "cr:/etc/passwd", &e.host_str("passwd")]));
    assert!(read(&e.host().join("passwd")).starts_with("root:x:0:0"));
    assert_eq!(e.mounts(), Vec::<String>::new());
}

fn symlinks_never_leave_the_rootfs() {
    let e = engine();
    // A directory on the host, and one at the same path in the container.
    let outside = e.host().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), "HOST\n").unwrap();
    let o = outside.to_str().unwrap();
    e.detached(
        "w",
        &[],
        &format!(
            "mkdir -p {o} && echo CONTAINER > {o}/secret && \
             busybox ln -s /etc/../../../../{o} /esc && busybox ln -s /etc/../../../../{o}/secret /esc-file \
             && busybox ln -s ../../../../.. /etc/up"
        ),
    );
    let copied = |src: &str, flags: &[&str]| {
        let dest = e.host_str("copied");
        let _ = std::fs::remove_file(&dest);
        let mut args = vec!["cp"];
        args.extend_from_slice(flags);
        args.extend([src, &dest]);
        ok(&e.run(&args));
        read(Path::new(&dest))
    };
    // Through a directory link, a followed final link, `..`, and a relative link upwards.
    assert_eq!(copied("w:/esc/secret", &[]), "CONTAINER\n");
    assert_eq!(copied("w:/esc-file", &["-L"]), "CONTAINER\n");
    assert_eq!(
        copied(&format!("w:/../../../..{o}/secret"), &[]),
        "CONTAINER\n"
    );
    assert_eq!(copied(&format!("w:/etc/up{o}/secret"), &[]), "CONTAINER\n");
    // Without -L the link itself is copied.
    let dest = e.host().join("link-itself");
    ok(&e.run(&["cp", "w:/esc-file", dest.to_str().unwrap()]));
    assert_eq!(
        std::fs::read_link(&dest).unwrap(),
        PathBuf::from(format!("/etc/../../../../{o}/secret"))
    );
    // Copies in land inside too: through a directory link and a final link.
    std::fs::write(e.host().join("plant"), "planted\n").unwrap();
    ok(&e.run(&["cp", &e.host_str("plant"), "w:/esc/planted"]));
    ok(&e.run(&["cp", &e.host_str("plant"), "w:/esc-file"]));
    assert!(!outside.join("planted").exists(), "cp wrote to the host");
    assert_eq!(
        read(&outside.join("secret")),
        "HOST\n",
        "cp wrote to the host"
    );
    assert_eq!(e.exec("w", &["cat", &format!("{o}/planted")]), "planted\n");
    assert_eq!(e.exec("w", &["cat", &format!("{o}/secret")]), "planted\n");
    // A tar stream from stdin cannot climb out either.
    let tar = Command::new("tar")
        .arg("-C")
        .arg(e.host())
        .args([
            "-P",
            "-cf",
            "-",
            "--transform",
            "s,^plant$,../../../../tmp/evil,",
            "plant",
        ])
        .output()
        .unwrap();
    let err = fails(&e.run_with_input(&["cp", "-", "w:/"], &ok(&tar)));
    assert!(err.contains(".."), "{err}");
    // And the same when the container is stopped (the overlay mounted by cp).
    ok(&e.run(&["stop", "-t", "1", "w"]));
    assert_eq!(copied("w:/esc/secret", &[]), "planted\n");
    assert_eq!(e.mounts(), Vec::<String>::new());
}

fn cp_errors_are_clear() {
    let e = engine();
    e.detached("w", &[], "echo f > /file");
    let err = fails(&e.run(&["cp", "w:/nonexistent", &e.host_str("x")]));
    assert_eq!(err, "berth: w:/nonexistent: no such file or directory");
    let err = fails(&e.run(&["cp", "nosuch:/a", &e.host_str("x")]));
    assert!(err.contains("no such container: nosuch"), "{err}");
    let err = fails(&e.run(&["cp", &e.host_str("a"), &e.host_str("b")]));
    assert!(err.contains("CONTAINER:PATH"), "{err}");
    let err = fails(&e.run(&["cp", "w:/a", "w:/b"]));
    assert!(err.contains("between containers"), "{err}");
    let err = fails(&e.run(&["cp", "w:/file", &format!("{}/", e.host_str("nodir"))]));
    assert!(err.contains("does not exist"), "{err}");
    let err = fails(&e.run(&["cp", "w:/file/", &e.host_str("x")]));
    assert!(err.contains("not a directory"), "{err}");
    std::fs::write(e.host().join("plain"), "p").unwrap();
    let err = fails(&e.run(&["cp", "w:/etc", &e.host_str("plain")]));
    assert!(err.contains("cannot copy directory"), "{err}");
    let err = fails(&e.run(&["cp", &e.host_str("missing"), "w:/"]));
    assert!(err.contains("no such file or directory"), "{err}");
    // --read-only: nothing is copied in.
    e.detached("ro", &["--read-only", "--tmpfs", "/tmp"], "true");
    let err = fails(&e.run(&["cp", &e.host_str("plain"), "ro:/"]));
    assert!(err.contains("read-only"), "{err}");
    assert!(
        !e.run(&["exec", "ro", "test", "-e", "/plain"])
            .status
            .success()
    );
    // Unknown containers for stats fail too.
    let err = fails(&e.run(&["stats", "--no-stream", "nosuch"]));
    assert!(err.contains("no such container: nosuch"), "{err}");
}
