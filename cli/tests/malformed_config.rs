//! Malformed configs through the CLI: each one makes `berth create` exit 1 with one line on
//! stderr that names the config file, the JSON path of the problem and the bad value, and
//! leaves no state behind.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::process::Command;

use serde_json::{Value, json};

/// Writes `config` as `BUNDLE/config.json`, runs `berth --root STATE create --bundle BUNDLE
/// c1` (for real, not a dry run: a bad config must fail before anything is done), and returns
/// the one error line with the bundle path replaced by `B`.
fn create_error(config: &Value) -> String {
    let bundle = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let root = state.path().join("berth");
    fs::create_dir_all(bundle.path().join("rootfs")).unwrap();
    fs::write(bundle.path().join("config.json"), config.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .args(["create", "--bundle"])
        .arg(bundle.path())
        .arg("c1")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "diagnostics never go to stdout");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(!root.exists(), "a bad config leaves no state directory");
    let entries: Vec<_> = fs::read_dir(bundle.path()).unwrap().collect();
    assert_eq!(entries.len(), 2, "nothing is written into the bundle");
    stderr
        .trim_end()
        .replace(&bundle.path().display().to_string(), "B")
}

/// `berth spec`'s default config (rootful), changed by `f`.
fn config(f: impl FnOnce(&mut Value)) -> Value {
    let mut v: Value = serde_json::from_str(&berth_core::spec::default_config_json(None)).unwrap();
    v["process"]["terminal"] = json!(false);
    f(&mut v);
    v
}

fn check(f: impl FnOnce(&mut Value), want: &str) {
    assert_eq!(
        create_error(&config(f)),
        format!("berth: B/config.json: {want}")
    );
}

#[test]
fn unknown_namespace() {
    check(
        |v| v["linux"]["namespaces"][2]["type"] = json!("foo"),
        "linux.namespaces[2].type: unknown namespace \"foo\"",
    );
}

#[test]
fn duplicate_namespace() {
    check(
        |v| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "pid"}))
        },
        "linux.namespaces[6]: duplicate namespace \"pid\"",
    );
}

#[test]
fn relative_mount_destination() {
    check(
        |v| v["mounts"][1]["destination"] = json!("dev"),
        "mounts[1].destination: path \"dev\" is not absolute",
    );
}

#[test]
fn escaping_mount_destination() {
    check(
        |v| v["mounts"][0]["destination"] = json!("/proc/../../etc"),
        "mounts[0].destination: path \"/proc/../../etc\" contains \"..\"",
    );
}

#[test]
fn unknown_mount_option() {
    check(
        |v| v["mounts"][3]["options"][1] = json!("noexce"),
        "mounts[3].options[1]: unknown mount option \"noexce\"",
    );
}

#[test]
fn missing_root_path() {
    check(
        |v| {
            v["root"].as_object_mut().unwrap().remove("path");
        },
        "root.path: missing",
    );
}

#[test]
fn missing_root() {
    check(
        |v| {
            v.as_object_mut().unwrap().remove("root");
        },
        "root: missing",
    );
}

#[test]
fn uid_mapping_of_size_zero() {
    check(
        |v| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 0}]);
            v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        },
        "linux.uidMappings[0].size: must be at least 1",
    );
}

#[test]
fn overlapping_uid_mappings() {
    check(
        |v| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            v["linux"]["uidMappings"] = json!([
                {"containerID": 0, "hostID": 1000, "size": 10},
                {"containerID": 5, "hostID": 5000, "size": 10}]);
            v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        },
        "linux.uidMappings[1]: container ids overlap linux.uidMappings[0]",
    );
}

#[test]
fn mappings_without_a_user_namespace() {
    check(
        |v| v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]),
        "linux.uidMappings: id mappings need a user namespace",
    );
}

#[test]
fn unknown_capability() {
    check(
        |v| v["process"]["capabilities"]["bounding"][2] = json!("CAP_FOO"),
        "process.capabilities.bounding[2]: unknown capability \"CAP_FOO\"",
    );
}

#[test]
fn unknown_rlimit() {
    check(
        |v| v["process"]["rlimits"][0]["type"] = json!("RLIMIT_BOGUS"),
        "process.rlimits[0].type: unknown rlimit \"RLIMIT_BOGUS\"",
    );
}

#[test]
fn negative_memory_limit() {
    check(
        |v| v["linux"]["resources"]["memory"] = json!({"limit": -5}),
        "linux.resources.memory.limit: must be -1 (unlimited), 0 (unset) or at least 4096 bytes, got -5",
    );
}

#[test]
fn absurd_cpu_shares() {
    check(
        |v| v["linux"]["resources"]["cpu"] = json!({"shares": 1_000_000}),
        "linux.resources.cpu.shares: must be 0 (unset) or between 2 and 262144, got 1000000",
    );
}

#[test]
fn hostname_without_uts_namespace() {
    check(
        |v| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "uts");
        },
        "hostname: setting a hostname needs a uts namespace",
    );
}

#[test]
fn unsupported_oci_version() {
    check(
        |v| v["ociVersion"] = json!("2.0.0"),
        "ociVersion: unsupported version \"2.0.0\"",
    );
}

#[test]
fn wrong_type() {
    check(
        |v| v["process"]["args"] = json!("sh -c true"),
        "process.args: expected an array, found string \"sh -c true\"",
    );
}

#[test]
fn not_json_at_all() {
    let bundle = tempfile::tempdir().unwrap();
    fs::create_dir_all(bundle.path().join("rootfs")).unwrap();
    fs::write(
        bundle.path().join("config.json"),
        "{\n  \"ociVersion\": \"1.2.0\",\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "--root",
            "/nonexistent/berth",
            "create",
            "--dry-run",
            "--bundle",
        ])
        .arg(bundle.path())
        .arg("c1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr)
        .unwrap()
        .replace(&bundle.path().display().to_string(), "B");
    assert_eq!(
        err,
        "berth: B/config.json: .: invalid JSON: EOF while parsing a value at line 3 column 0\n"
    );
}

#[test]
fn empty_args() {
    check(
        |v| v["process"]["args"] = json!([]),
        "process.args: must not be empty",
    );
}

#[test]
fn relative_cwd() {
    check(
        |v| v["process"]["cwd"] = json!("home"),
        "process.cwd: path \"home\" is not absolute",
    );
}

#[test]
fn sysctl_needing_a_network_namespace() {
    check(
        |v| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "network");
            v["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        },
        "linux.sysctl[\"net.ipv4.ip_forward\"]: needs a network namespace",
    );
}

#[test]
fn device_outside_dev() {
    check(
        |v| {
            v["linux"]["devices"] =
                json!([{"path": "/etc/fuse", "type": "c", "major": 10, "minor": 229}])
        },
        "linux.devices[0].path: \"/etc/fuse\" is not under /dev",
    );
}

#[test]
fn the_error_reaches_the_json_log_too() {
    let bundle = tempfile::tempdir().unwrap();
    let log = bundle.path().join("log.json");
    fs::create_dir_all(bundle.path().join("rootfs")).unwrap();
    let cfg = config(|v| v["linux"]["namespaces"][0]["type"] = json!("foo"));
    fs::write(bundle.path().join("config.json"), cfg.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "create", "--bundle"])
        .arg(bundle.path())
        .arg("c1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let line = fs::read_to_string(&log).unwrap();
    let v: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(v["level"], "error");
    assert!(
        v["msg"]
            .as_str()
            .unwrap()
            .ends_with("linux.namespaces[0].type: unknown namespace \"foo\""),
        "{v}"
    );
}
