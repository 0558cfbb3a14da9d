//! End-to-end `berth pull` and `berth push` (root, real kernel) against Debian's `docker-registry`, started
//! by each case on 127.0.0.1 with a port of its own and its storage in a tempdir, and
//! killed (by pid) when the case ends, also when it fails.
//!
//! Images get into the registry by plain HTTP requests of the distribution API, made here
//! with a tiny std::net client (monolithic blob uploads, then the manifest), never with
//! berth. The only traffic is to the registry's port on 127.0.0.1.

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_cli_support;
mod e2e_engine_support;
mod e2e_linux_support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use berth_core::image::Digest;
use e2e_cli_support::{ok, text};
use e2e_engine_support::{Engine, tar_dir};
use e2e_linux_support::wait_until;
use serde_json::{Value, json};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

fn main() {
    e2e_linux_support::run(&[
        (
            "pull_run_pull_again_and_by_digest",
            pull_run_pull_again_and_by_digest,
        ),
        (
            "unknown_tag_fails_and_leaves_nothing",
            unknown_tag_fails_and_leaves_nothing,
        ),
        (
            "corrupt_blob_fails_and_leaves_nothing",
            corrupt_blob_fails_and_leaves_nothing,
        ),
        ("index_picks_this_platform", index_picks_this_platform),
        ("push_then_pull_elsewhere", push_then_pull_elsewhere),
    ]);
}

/// A `docker-registry` on 127.0.0.1, killed on drop.
struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let bin = Path::new("/usr/bin/docker-registry");
        assert!(
            bin.exists(),
            "/usr/bin/docker-registry is missing: apt-get install docker-registry"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .unwrap();
        // A free port: bound by us first, then handed to the registry.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Registry { child, port, dir };
        assert!(
            wait_until(20, || TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "the registry did not listen on {port}: {}",
            registry.log()
        );
        registry
    }

    /// `127.0.0.1:PORT`.
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// One HTTP/1.1 request; returns the status, the headers (names lower case), the body.
    fn http(
        &self,
        method: &str,
        target: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            self.host(),
            body.len()
        );
        // The registry answers an OCI manifest only to a client that accepts it.
        head.push_str(&format!("Accept: {OCI_MANIFEST}, {OCI_INDEX}\r\n"));
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(body).unwrap();
        let mut response = Vec::new();
        conn.read_to_end(&mut response).unwrap();
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP response head");
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        (
            status.parse().unwrap(),
            headers,
            response[split + 4..].to_vec(),
        )
    }

    /// Uploads a blob in one piece (POST, then PUT with its digest); returns the digest.
    fn push_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::of(bytes);
        let (status, headers, body) =
            self.http("POST", &format!("/v2/{repo}/blobs/uploads/"), None, b"");
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
        let location = headers
            .iter()
            .find(|(k, _)| k == "location")
            .map(|(_, v)| v.clone())
            .unwrap();
        let path = location
            .strip_prefix(&format!("http://{}", self.host()))
            .unwrap_or(&location);
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, _, body) = self.http(
            "PUT",
            &format!("{path}{sep}digest={digest}"),
            Some("application/octet-stream"),
            bytes,
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        digest
    }

    /// Puts a manifest (or index) under a tag or its digest; returns its digest.
    fn push_manifest(&self, repo: &str, reference: &str, media_type: &str, doc: &Value) -> Digest {
        let bytes = serde_json::to_vec(doc).unwrap();
        let (status, _, body) = self.http(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            Some(media_type),
            &bytes,
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        Digest::of(&bytes)
    }

    /// Pushes a one-config image whose layers are `layers` (media type, bytes, diff id);
    /// returns (manifest digest, config digest = image id, manifest size).
    fn push_image(
        &self,
        repo: &str,
        tag: &str,
        architecture: &str,
        layers: &[(&str, &[u8], Digest)],
    ) -> (Digest, Digest, usize) {
        let config = serde_json::to_vec(&json!({
            "architecture": architecture,
            "os": "linux",
            "config": { "Cmd": ["sh"], "Env": ["PATH=/bin"] },
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.2.to_string()).collect::<Vec<_>>(),
            },
        }))
        .unwrap();
        let config_digest = self.push_blob(repo, &config);
        let descriptors: Vec<Value> = layers
            .iter()
            .map(|(media_type, bytes, _)| {
                let digest = self.push_blob(repo, bytes);
                json!({ "mediaType": media_type, "digest": digest.to_string(), "size": bytes.len() })
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": config_digest.to_string(),
                "size": config.len(),
            },
            "layers": descriptors,
        });
        let size = serde_json::to_vec(&manifest).unwrap().len();
        let digest = self.push_manifest(repo, tag, OCI_MANIFEST, &manifest);
        (digest, config_digest, size)
    }

    /// The file the registry keeps a blob's bytes in.
    fn blob_data(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(&hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Only our own child, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This machine's architecture as GOARCH names it.
fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl Engine {
    /// The busybox rootfs as a gzip'd layer: (bytes, diff id).
    fn busybox_layer(&self) -> (Vec<u8>, Digest) {
        let tar = self.dir().join("busybox.tar");
        tar_dir(&self.rootfs.root(), &tar);
        let plain = std::fs::read(&tar).unwrap();
        let gz = Command::new("gzip")
            .args(["-n", "-c"])
            .arg(&tar)
            .output()
            .unwrap();
        assert!(gz.status.success());
        (gz.stdout, Digest::of(&plain))
    }

    /// A small uncompressed layer holding `/name` with `content`.
    fn file_layer(&self, name: &str, content: &str) -> Vec<u8> {
        let src = self.dir().join(format!("layer-{name}"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join(name), content).unwrap();
        let out = Command::new("tar")
            .arg("-C")
            .arg(&src)
            .args(["-cf", "-", name])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    }

    /// What the store holds: blob and layer names (temporary ones too), kept manifests,
    /// and the image table.
    fn store_state(&self) -> (BTreeSet<String>, String) {
        let mut files = BTreeSet::new();
        for sub in ["blobs/sha256", "layers", "manifests"] {
            if let Ok(entries) = std::fs::read_dir(self.data().join(sub)) {
                files
                    .extend(entries.map(|e| format!("{sub}/{}", e.unwrap().file_name().display())));
            }
        }
        (files, text(&ok(&self.run(&["images"]))))
    }

    /// The image id `image inspect` gives.
    fn image_id(&self, name: &str) -> String {
        let v: Value = serde_json::from_slice(&ok(&self.run(&["image", "inspect", name]))).unwrap();
        v[0]["Id"].as_str().unwrap().to_owned()
    }
}

fn pull_run_pull_again_and_by_digest() {
    let registry = Registry::start();
    let e = Engine::bare();
    let (layer, diff_id) = e.busybox_layer();
    let (manifest, config, _) = registry.push_image(
        "busybox",
        "latest",
        goarch(),
        &[(LAYER_GZIP, &layer, diff_id)],
    );
    let name = format!("{}/busybox:latest", registry.host());
    let layer_id = &Digest::of(&layer).hex()[..12];

    let out = text(&ok(&e.run(&["pull", &name])));
    assert_eq!(
        out,
        format!(
            "latest: Pulling from busybox\n{layer_id}: Pull complete\nDigest: {manifest}\n\
             Status: Downloaded newer image for {name}\n{name}\n"
        )
    );
    assert_eq!(e.image_id(&name), config.to_string());
    let short = format!("{}/busybox", registry.host());
    let out = e.run(&["run", "--rm", &short, "echo", "hi"]);
    assert_eq!(text(&ok(&out)), "hi\n");

    // Again: nothing downloaded, nothing unpacked (the layer directory is the same inode).
    let layer_dir = e.data().join("layers").join(diff_id.hex());
    let inode = std::fs::metadata(&layer_dir).unwrap().ino();
    let before = e.store_state();
    let out = text(&ok(&e.run(&["pull", &short])));
    assert_eq!(
        out,
        format!(
            "latest: Pulling from busybox\n{layer_id}: Already exists\nDigest: {manifest}\n\
             Status: Image is up to date for {name}\n{name}\n"
        )
    );
    assert_eq!(std::fs::metadata(&layer_dir).unwrap().ino(), inode);
    assert_eq!(e.store_state(), before);

    // By digest, in the same store: up to date; in a new one: downloaded, untagged.
    let by_digest = format!("{}/busybox@{manifest}", registry.host());
    let out = text(&ok(&e.run(&["pull", "-q", &by_digest])));
    assert_eq!(out, format!("{by_digest}\n"));
    let out = text(&ok(&e.run(&["pull", &by_digest])));
    assert!(out.contains("Status: Image is up to date for"), "{out}");
    let other = Engine::bare();
    let out = text(&ok(&other.run(&["pull", &by_digest])));
    assert_eq!(
        out,
        format!(
            "{manifest}: Pulling from busybox\n{layer_id}: Pull complete\nDigest: {manifest}\n\
             Status: Downloaded newer image for {by_digest}\n{by_digest}\n"
        )
    );
    let images = text(&ok(&other.run(&["images"])));
    let row = images.lines().nth(1).unwrap();
    assert!(
        row.starts_with("<none>") && row.contains(&config.hex()[..12]),
        "{images}"
    );
    let out = other.run(&["run", "--rm", &config.hex()[..12], "echo", "by digest"]);
    assert_eq!(text(&ok(&out)), "by digest\n");
}

/// The exit status is 1, stdout is empty, stderr is one `berth: ` line; returns it.
fn fails(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(text(&out.stdout), "", "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.starts_with("berth: ") && err.lines().count() == 1,
        "{err}"
    );
    err
}

fn unknown_tag_fails_and_leaves_nothing() {
    let registry = Registry::start();
    let e = Engine::bare();
    let (layer, diff_id) = e.busybox_layer();
    registry.push_image(
        "busybox",
        "latest",
        goarch(),
        &[(LAYER_GZIP, &layer, diff_id)],
    );
    ok(&e.run(&["images"]));
    let before = e.store_state();
    let name = format!("{}/busybox:nope", registry.host());
    let err = fails(&e.run(&["pull", &name]));
    assert!(
        err.contains(&format!("pulling {name}")) && err.contains("manifest unknown"),
        "{err}"
    );
    let err = fails(&e.run(&["pull", &format!("{}/nosuch", registry.host())]));
    assert!(err.contains("nosuch"), "{err}");
    assert_eq!(e.store_state(), before);
    // A registry that is not there: a clear error too, and nothing written.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = fails(&e.run(&["pull", &format!("127.0.0.1:{closed}/busybox")]));
    assert!(err.contains(&format!("127.0.0.1:{closed}")), "{err}");
    assert_eq!(e.store_state(), before);
}

fn corrupt_blob_fails_and_leaves_nothing() {
    let registry = Registry::start();
    let e = Engine::bare();
    let (layer, diff_id) = e.busybox_layer();
    registry.push_image(
        "busybox",
        "latest",
        goarch(),
        &[(LAYER_GZIP, &layer, diff_id)],
    );
    ok(&e.run(&["pull", &format!("{}/busybox", registry.host())]));

    // A second image: busybox's layer (which the store has) and a new one, corrupted in
    // the registry's storage after the push (same length, other bytes).
    let extra = e.file_layer("extra", &"x".repeat(4096));
    let extra_digest = Digest::of(&extra);
    registry.push_image(
        "bad",
        "latest",
        goarch(),
        &[
            (LAYER_GZIP, &layer, diff_id),
            (LAYER_TAR, &extra, extra_digest),
        ],
    );
    let data = registry.blob_data(&extra_digest);
    let mut bytes = std::fs::read(&data).unwrap();
    assert_eq!(bytes, extra);
    bytes[1000..1004].copy_from_slice(b"YYYY");
    std::fs::write(&data, &bytes).unwrap();

    let before = e.store_state();
    let name = format!("{}/bad:latest", registry.host());
    let out = e.run(&["pull", &name]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!("berth: pulling {name}: ")),
        "{err}"
    );
    assert!(
        err.contains("corrupt layer blob") && err.contains(&extra_digest.to_string()),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(e.store_state(), before);
    let err = fails(&e.run(&["image", "inspect", &name]));
    assert!(err.contains("bad"), "{err}");
}

fn index_picks_this_platform() {
    let registry = Registry::start();
    let e = Engine::bare();
    let (layer, diff_id) = e.busybox_layer();
    let other_arch = if goarch() == "s390x" {
        "arm64"
    } else {
        "s390x"
    };
    // Pushed by digest: only the index gets a tag.
    let (native, native_config, native_size) = registry.push_image(
        "multi",
        "native",
        goarch(),
        &[(LAYER_GZIP, &layer, diff_id)],
    );
    let (foreign, _, foreign_size) = registry.push_image(
        "multi",
        "foreign",
        other_arch,
        &[(LAYER_GZIP, &layer, diff_id)],
    );
    // The foreign manifest first: a pull that took the first entry would get it.
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST, "digest": foreign.to_string(), "size": foreign_size,
                "platform": { "architecture": other_arch, "os": "linux" },
            },
            {
                "mediaType": OCI_MANIFEST, "digest": native.to_string(), "size": native_size,
                "platform": { "architecture": goarch(), "os": "linux" },
            },
        ],
    });
    let index_digest = registry.push_manifest("multi", "latest", OCI_INDEX, &index);
    let name = format!("{}/multi:latest", registry.host());
    let out = text(&ok(&e.run(&["pull", &name])));
    assert!(out.contains(&format!("Digest: {index_digest}\n")), "{out}");
    assert_eq!(e.image_id(&name), native_config.to_string());
    let out = e.run(&["run", "--rm", &name, "echo", "native"]);
    assert_eq!(text(&ok(&out)), "native\n");
}

fn push_then_pull_elsewhere() {
    let registry = Registry::start();
    let e = Engine::bare();
    let tar = e.dir().join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(e.rootfs.root())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let name = format!("{}/pushed:v1", registry.host());
    ok(&e.run(&["import", tar.to_str().unwrap(), &name]));
    let id = e.image_id(&name);
    let out = text(&ok(&e.run(&["push", &name])));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("The push refers to repository [{}/pushed]", registry.host())
    );
    assert!(lines[1].ends_with(": Pushed"), "{out}");
    let digest = lines[2]
        .strip_prefix("v1: digest: ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{out}"));
    // The registry serves that manifest under the tag, and it names the image's config.
    let (status, _, body) = registry.http("GET", "/v2/pushed/manifests/v1", None, b"");
    assert_eq!(status, 200);
    assert_eq!(Digest::of(&body).to_string(), digest);
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["config"]["digest"], id.as_str());
    // Again: every blob is there already.
    let out = text(&ok(&e.run(&["push", &name])));
    assert!(out.contains(": Layer already exists\n"), "{out}");
    assert!(
        out.ends_with(&format!("v1: digest: {digest} size: {}\n", body.len())),
        "{out}"
    );
    // Another store pulls it and runs it.
    let other = Engine::bare();
    let out = text(&ok(&other.run(&["pull", &name])));
    assert!(out.contains(&format!("Digest: {digest}\n")), "{out}");
    assert_eq!(other.image_id(&name), id);
    let out = other.run(&["run", "--rm", &name, "echo", "pushed"]);
    assert_eq!(text(&ok(&out)), "pushed\n");
}
