//! The image commands end to end, unprivileged: `import`, `images`, `rmi` on a store under
//! a temporary `--data-root`.

// Test helpers too: a failed unwrap is a failed test (clippy.toml allows it in `#[test]`s).
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// A data root and the berth commands run on it.
struct Engine {
    root: TempDir,
}

impl Engine {
    fn new() -> Self {
        Engine {
            root: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.arg("--data-root")
            .arg(self.root.path().join("data"))
            .arg("--exec-root")
            .arg(self.root.path().join("exec"))
            .args(args)
            .current_dir("/");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the berth binary runs")
    }

    /// Runs berth with `stdin` as its standard input.
    fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Writes `bytes` as a file in the temporary directory; returns its path.
    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.root.path().join(name);
        fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    }
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

/// Asserts exit status 1, nothing on stdout, and exactly one line on stderr; returns it.
fn fails(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(out));
    assert_eq!(stdout(out), "", "diagnostics never go to stdout");
    let err = stderr(out);
    assert!(err.ends_with('\n'), "{err:?}");
    assert_eq!(err.lines().count(), 1, "the error is one line: {err:?}");
    err.trim_end().to_owned()
}

/// A tiny root file system as a tar, owned by the caller (so a rootless unpack can chown).
fn rootfs_tar(content: &[u8]) -> Vec<u8> {
    let uid = u64::from(nix::unistd::getuid().as_raw());
    let gid = u64::from(nix::unistd::getgid().as_raw());
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_uid(uid);
    dir.set_gid(gid);
    dir.set_size(0);
    dir.set_mtime(1_700_000_000);
    builder.append_data(&mut dir, "etc/", &[][..]).unwrap();
    let mut file = tar::Header::new_gnu();
    file.set_entry_type(tar::EntryType::Regular);
    file.set_mode(0o644);
    file.set_uid(uid);
    file.set_gid(gid);
    file.set_size(content.len() as u64);
    file.set_mtime(1_700_000_000);
    builder
        .append_data(&mut file, "etc/hostname", content)
        .unwrap();
    builder.into_inner().unwrap()
}

/// Asserts `out` is one line, an image id; returns it.
fn image_id(out: &str) -> String {
    let id = out.strip_suffix('\n').unwrap_or_else(|| panic!("{out:?}"));
    let hex = id
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("{id:?}"));
    assert_eq!(hex.len(), 64, "{id:?}");
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{id:?}");
    id.to_owned()
}

/// The rows of `berth images` (without the header), split on runs of spaces.
fn table(engine: &Engine) -> Vec<Vec<String>> {
    let out = ok(&engine.run(&["images"]));
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    let columns: Vec<&str> = header.split("   ").filter(|c| !c.is_empty()).collect();
    let columns: Vec<&str> = columns.iter().map(|c| c.trim()).collect();
    assert_eq!(
        columns,
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        "{header:?}"
    );
    lines
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn import_lists_and_removes_an_image() {
    let engine = Engine::new();
    let tar = engine.file("rootfs.tar", &rootfs_tar(b"box\n"));
    let id = image_id(&ok(&engine.run(&["import", &tar, "mybox:1.0"])));
    let short = &id["sha256:".len().."sha256:".len() + 12];

    let rows = table(&engine);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row[0..3], ["mybox", "1.0", short], "{row:?}");
    assert!(row[3].ends_with('Z') && row[3].contains('T'), "{row:?}");
    assert!(row[4].ends_with('B'), "{row:?}");
    assert_eq!(ok(&engine.run(&["images", "-q"])), format!("{short}\n"));

    let json = ok(&engine.run(&["images", "--format", "json"]));
    let value: serde_json::Value = serde_json::from_str(json.trim_end()).unwrap();
    assert_eq!(value["Repository"], "mybox");
    assert_eq!(value["Tag"], "1.0");
    assert_eq!(value["ID"], short);

    // The same archive again: the same image.
    let again = image_id(&ok(&engine.run(&["import", &tar, "mybox:1.0"])));
    assert_eq!(again, id);
    assert_eq!(table(&engine).len(), 1);

    let removed = ok(&engine.run(&["rmi", "mybox:1.0"]));
    assert_eq!(removed, format!("Untagged: mybox:1.0\nDeleted: {id}\n"));
    assert!(table(&engine).is_empty());
    assert_eq!(ok(&engine.run(&["images", "-q"])), "");
}

#[test]
fn import_reads_stdin_and_defaults_to_latest() {
    let engine = Engine::new();
    let tar = rootfs_tar(b"stdin\n");
    let id = image_id(&ok(&engine.run_with_stdin(&["import", "-", "web"], &tar)));
    let rows = table(&engine);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0..2], ["web", "latest"]);
    // A second tag on the same image: removing one tag keeps the image.
    let path = engine.file("rootfs.tar", &tar);
    assert_eq!(image_id(&ok(&engine.run(&["import", &path, "web:v2"]))), id);
    assert_eq!(ok(&engine.run(&["rmi", "web"])), "Untagged: web:latest\n");
    assert_eq!(table(&engine).len(), 1);
    // By id prefix: the last tag goes with the image.
    let prefix = &id["sha256:".len().."sha256:".len() + 8];
    assert_eq!(
        ok(&engine.run(&["rmi", prefix])),
        format!("Untagged: web:v2\nDeleted: {id}\n")
    );
    assert!(table(&engine).is_empty());
}

#[test]
fn rmi_of_an_unknown_image_fails_in_one_line() {
    let engine = Engine::new();
    let err = fails(&engine.run(&["rmi", "foo"]));
    assert_eq!(err, "berth: no such image: foo");
}

#[test]
fn a_truncated_tar_imports_nothing() {
    let engine = Engine::new();
    let whole = rootfs_tar(&[b'x'; 4000]);
    // Cut in the middle of etc/hostname's data.
    let tar = engine.file("cut.tar", &whole[..2048]);
    let err = fails(&engine.run(&["import", &tar, "cut"]));
    assert!(err.starts_with(&format!("berth: import: {tar}: ")), "{err}");
    assert!(table(&engine).is_empty());
    assert!(
        fs::read_dir(engine.root.path().join("data/layers"))
            .unwrap()
            .next()
            .is_none(),
        "no layer left behind"
    );
}

#[test]
fn import_of_a_missing_file_names_it() {
    let engine = Engine::new();
    let missing = engine.root.path().join("nope.tar");
    let missing = missing.to_str().unwrap();
    let err = fails(&engine.run(&["import", missing, "x"]));
    assert!(
        err.starts_with(&format!("berth: import: {missing}: ")),
        "{err}"
    );
    assert!(!Path::new(missing).exists());
}
