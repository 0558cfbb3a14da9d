//! `Store::load`, `save`, `tag`, `inspect` and `prune` against a real file system: docker
//! save archives, OCI layouts (directory and tar, plain or compressed), compressed layers,
//! whiteouts, and malformed archives (corrupt blob, truncated tar, `../` in a layer), each
//! of which must leave the store exactly as it was. Archives are built in memory, owned by
//! the current user; only the overlay test needs root (feature `e2e`).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_backend_linux::store::tarindex::fuzz_image_archive;
use berth_backend_linux::store::{DB_FILE, ImageId, LoadSummary, Store, StoreError};
use berth_core::image::{Digest, Reference};
use serde_json::{Value, json};

const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

fn me() -> (u64, u64) {
    (
        u64::from(nix::unistd::geteuid().as_raw()),
        u64::from(nix::unistd::getegid().as_raw()),
    )
}

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let (uid, gid) = me();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(1_600_000_000);
    h.set_size(size);
    h
}

/// A layer tar: paths ending in `/` are directories, the rest files with that content.
fn layer(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let kind = if path.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        };
        b.append_data(&mut header(kind, data.len() as u64), path, *data)
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

/// An image config naming these diff ids.
fn config(diff_ids: &[Digest], cmd: &str) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(Digest::to_string).collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "author": "berth tests",
        "config": {"Cmd": [cmd], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ids},
    }))
    .unwrap()
}

/// One layer as an archive stores it: the blob, its diff id, its media type.
struct Layer {
    blob: Vec<u8>,
    diff_id: Digest,
    media_type: &'static str,
}

impl Layer {
    fn plain(tar: &[u8]) -> Layer {
        Layer {
            blob: tar.to_vec(),
            diff_id: Digest::of(tar),
            media_type: OCI_LAYER,
        }
    }

    fn gzip(tar: &[u8]) -> Layer {
        Layer {
            blob: gzip(tar),
            diff_id: Digest::of(tar),
            media_type: OCI_LAYER_GZIP,
        }
    }

    fn zstd(tar: &[u8]) -> Layer {
        Layer {
            blob: zstd(tar),
            diff_id: Digest::of(tar),
            media_type: OCI_LAYER_ZSTD,
        }
    }
}

/// An archive's files, written out as a tar or a directory.
#[derive(Default)]
struct Archive {
    files: BTreeMap<String, Vec<u8>>,
    /// (link, target) symlinks, tar only.
    links: Vec<(String, String)>,
    index: Vec<Value>,
}

impl Archive {
    fn blob(&mut self, bytes: &[u8]) -> Value {
        let d = Digest::of(bytes);
        self.files
            .insert(format!("blobs/sha256/{}", d.hex()), bytes.to_vec());
        json!({"digest": d.to_string(), "size": bytes.len()})
    }

    /// Adds an OCI image; returns (image id, manifest digest).
    fn oci_image(&mut self, layers: &[Layer], annotations: Value) -> (Digest, Digest) {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id).collect();
        let config = config(&diff_ids, "sh");
        let mut c = self.blob(&config);
        c["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
        let descriptors: Vec<Value> = layers
            .iter()
            .map(|l| {
                let mut d = self.blob(&l.blob);
                d["mediaType"] = json!(l.media_type);
                d
            })
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": c,
            "layers": descriptors,
        }))
        .unwrap();
        let mut m = self.blob(&manifest);
        m["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
        if !annotations.is_null() {
            m["annotations"] = annotations;
        }
        self.index.push(m);
        self.files.insert(
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        );
        let index = json!({"schemaVersion": 2, "manifests": self.index});
        self.files
            .insert("index.json".into(), serde_json::to_vec(&index).unwrap());
        (Digest::of(&config), Digest::of(&manifest))
    }

    /// Adds an image in docker's legacy `docker save` layout (`<id>.json`,
    /// `<dir>/layer.tar`, a layer two images share saved once).
    fn docker_image(&mut self, layers: &[&[u8]], tags: &[&str]) -> Digest {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| Digest::of(l)).collect();
        let config = config(&diff_ids, "sh");
        let id = Digest::of(&config);
        self.files.insert(format!("{}.json", id.hex()), config);
        let mut paths = Vec::new();
        for (diff_id, l) in diff_ids.iter().zip(layers) {
            let path = format!("{}/layer.tar", &diff_id.hex()[..16]);
            self.files.insert(path.clone(), l.to_vec());
            paths.push(path);
        }
        let mut manifest: Vec<Value> = self
            .files
            .get("manifest.json")
            .map(|m| serde_json::from_slice(m).unwrap())
            .unwrap_or_default();
        manifest.push(json!({
            "Config": format!("{}.json", id.hex()),
            "RepoTags": if tags.is_empty() { Value::Null } else { json!(tags) },
            "Layers": paths,
        }));
        self.files.insert(
            "manifest.json".into(),
            serde_json::to_vec(&manifest).unwrap(),
        );
        id
    }

    fn tar(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in &self.files {
            b.append_data(
                &mut header(tar::EntryType::Regular, data.len() as u64),
                path,
                &data[..],
            )
            .unwrap();
        }
        for (path, target) in &self.links {
            let mut h = header(tar::EntryType::Symlink, 0);
            b.append_link(&mut h, path, target).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn write_dir(&self, dir: &Path) {
        for (path, data) in &self.files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
    }
}

/// Every path under the store root (but the database and lock), and the row counts of
/// images, layers, image_layers and tags: what "the store is unchanged" compares.
fn snapshot(root: &Path) -> (Vec<String>, [i64; 4]) {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if rel.starts_with(DB_FILE) || rel == "lock" {
                continue;
            }
            out.push(rel);
            if p.symlink_metadata().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, root, &mut files);
    files.sort();
    let conn = rusqlite::Connection::open(root.join(DB_FILE)).unwrap();
    let rows = ["images", "layers", "image_layers", "tags"].map(|t| {
        conn.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    });
    (files, rows)
}

/// The error and all its sources, `: `-joined (as the CLI prints it).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

struct Env {
    dir: tempfile::TempDir,
    store: Store,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        Env { dir, store }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Loads `bytes` as a file, expecting failure; checks the store did not change.
    fn load_fails(&mut self, name: &str, bytes: &[u8]) -> String {
        let before = snapshot(&self.root());
        let path = self.file(name, bytes);
        let err = self.store.load(&path).unwrap_err();
        assert!(matches!(err, StoreError::Archive { .. }), "{err:?}");
        assert_eq!(snapshot(&self.root()), before, "{}", chain(&err));
        chain(&err)
    }
}

fn ids(loaded: &[LoadSummary]) -> Vec<ImageId> {
    loaded.iter().map(|l| l.id).collect()
}

#[test]
fn docker_save_archive_loads_with_tags_and_shared_layers() {
    let mut env = Env::new();
    let base = layer(&[("bin/", b""), ("bin/sh", b"shell")]);
    let app = layer(&[("app/", b""), ("app/run", b"run")]);
    let mut a = Archive::default();
    let first = a.docker_image(&[&base], &["busybox:1.36", "localhost:5000/b:x"]);
    // The second image shares the base layer: a symlink to the first's layer.tar.
    let second = a.docker_image(&[&base, &app], &[]);
    let path = env.file("save.tar", &a.tar());
    let loaded = env.store.load(&path).unwrap();
    assert_eq!(ids(&loaded), [ImageId::new(first), ImageId::new(second)]);
    assert_eq!(loaded[0].tags, [r("busybox:1.36"), r("localhost:5000/b:x")]);
    assert!(loaded[1].tags.is_empty());
    assert_eq!(env.store.layers_unpacked(), 2);
    assert_eq!(env.store.resolve("busybox:1.36").unwrap(), loaded[0].id);
    let dirs = env.store.layer_dirs(&loaded[1].id).unwrap();
    assert_eq!(std::fs::read(dirs[0].join("bin/sh")).unwrap(), b"shell");
    assert_eq!(std::fs::read(dirs[1].join("app/run")).unwrap(), b"run");
    // Config and layer blobs are kept; rows: 2 images, 2 layers, 3 image_layers, 2 tags.
    assert_eq!(
        env.store.blob(&first).unwrap(),
        a.files[&format!("{}.json", first.hex())]
    );
    assert!(env.store.blob_path(&Digest::of(&app)).is_file());
    assert_eq!(snapshot(&env.root()).1, [2, 2, 3, 2]);

    // Loading again unpacks nothing and changes nothing.
    let before = snapshot(&env.root());
    assert_eq!(ids(&env.store.load(&path).unwrap()), ids(&loaded));
    assert_eq!(env.store.layers_unpacked(), 2);
    assert_eq!(snapshot(&env.root()), before);
}

#[test]
fn docker_save_symlinked_layer_is_followed() {
    let mut env = Env::new();
    let base = layer(&[("a", b"1")]);
    let mut a = Archive::default();
    a.files.insert("aaa/layer.tar".into(), base.clone());
    a.links
        .push(("bbb/layer.tar".into(), "../aaa/layer.tar".into()));
    let cfg = config(&[Digest::of(&base)], "sh");
    let id = Digest::of(&cfg);
    a.files.insert(format!("{}.json", id.hex()), cfg);
    let manifest = json!([{"Config": format!("{}.json", id.hex()), "RepoTags": ["x:1"], "Layers": ["bbb/layer.tar"]}]);
    a.files.insert(
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    );
    let loaded = env.store.load(&env.file("l.tar", &a.tar())).unwrap();
    assert_eq!(ids(&loaded), [ImageId::new(id)]);

    // A link out of the archive is refused.
    a.links[0].1 = "../../etc/passwd".into();
    let err = env.load_fails("escape.tar", &a.tar());
    assert!(
        err.contains("bbb/layer.tar") && err.contains("climbs out"),
        "{err}"
    );
}

#[test]
fn oci_layout_as_directory_and_as_tar_and_compressed_tar() {
    let bottom = layer(&[("etc/", b""), ("etc/os-release", b"berth")]);
    let top = layer(&[("usr/", b""), ("usr/top", b"top")]);
    let mut a = Archive::default();
    let (id, _) = a.oci_image(
        &[Layer::plain(&bottom), Layer::gzip(&top)],
        json!({
            "io.containerd.image.name": "docker.io/library/alpine:3.20",
            "org.opencontainers.image.ref.name": "3.20",
        }),
    );
    // Only a ref.name that is a whole name tags the image.
    let (named_by_ref, _) = a.oci_image(
        &[Layer::zstd(&top)],
        json!({"org.opencontainers.image.ref.name": "localhost:5000/only/ref:v2"}),
    );
    let (bare, _) = a.oci_image(
        &[Layer::plain(&bottom)],
        json!({"org.opencontainers.image.ref.name": "latest"}),
    );
    assert_ne!(named_by_ref, bare);
    let expect_tags = [
        vec![r("alpine:3.20")],
        vec![r("localhost:5000/only/ref:v2")],
        vec![],
    ];

    let tar = a.tar();
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("dir", Vec::new()),
        ("layout.tar", tar.clone()),
        ("layout.tar.gz", gzip(&tar)),
        ("layout.tar.zst", zstd(&tar)),
    ];
    for (name, bytes) in inputs {
        let mut env = Env::new();
        let path = if name == "dir" {
            let p = env.dir.path().join("layout");
            a.write_dir(&p);
            p
        } else {
            env.file(name, &bytes)
        };
        let loaded = env.store.load(&path).unwrap();
        assert_eq!(
            ids(&loaded),
            [id, named_by_ref, bare].map(ImageId::new),
            "{name}"
        );
        let tags: Vec<Vec<Reference>> = loaded.iter().map(|l| l.tags.clone()).collect();
        assert_eq!(tags, expect_tags, "{name}");
        // The gzip and the zstd blob of `top` unpack to one layer: unpacked once.
        assert_eq!(env.store.layers_unpacked(), 2, "{name}");
        let dirs = env.store.layer_dirs(&loaded[0].id).unwrap();
        assert_eq!(
            std::fs::read(dirs[1].join("usr/top")).unwrap(),
            b"top",
            "{name}"
        );
        assert_eq!(
            env.store.layer_dirs(&loaded[1].id).unwrap(),
            dirs[1..],
            "{name}"
        );
        // The layer blob is kept as it came (gzip), under its own digest.
        assert!(
            env.store.blob_path(&Digest::of(&gzip(&top))).is_file(),
            "{name}"
        );
        // No temporary file is left (the decompressed archive was unlinked at once).
        assert!(
            !snapshot(&env.root()).0.iter().any(|p| p.contains(".tmp-")),
            "{name}"
        );
    }
}

#[test]
fn whiteouts_and_opaque_dirs_take_overlay_form() {
    let mut env = Env::new();
    let lower = layer(&[
        ("etc/", b""),
        ("etc/keep", b"k"),
        ("etc/gone", b"g"),
        ("opq/", b""),
        ("opq/old", b"o"),
    ]);
    let upper = layer(&[
        ("etc/", b""),
        ("etc/.wh.gone", b""),
        ("opq/", b""),
        ("opq/.wh..wh..opq", b""),
        ("opq/new", b"n"),
    ]);
    let mut a = Archive::default();
    let (id, _) = a.oci_image(
        &[Layer::gzip(&lower), Layer::plain(&upper)],
        json!({"io.containerd.image.name": "wh:1"}),
    );
    env.store.load(&env.file("wh.tar", &a.tar())).unwrap();
    let dirs = env.store.layer_dirs(&ImageId::new(id)).unwrap();
    let wh = std::fs::symlink_metadata(dirs[1].join("etc/gone")).unwrap();
    assert!(wh.file_type().is_char_device(), "{wh:?}");
    assert_eq!((wh.rdev(), wh.uid(), wh.gid()), (0, 0, 0));
    assert!(!dirs[1].join("etc/.wh.gone").exists());
    assert!(!dirs[1].join("etc/keep").exists());
    assert!(!dirs[1].join("opq/.wh..wh..opq").exists());
    assert_eq!(std::fs::read(dirs[1].join("opq/new")).unwrap(), b"n");
    assert_eq!(std::fs::read(dirs[0].join("opq/old")).unwrap(), b"o");
    // (The opaque xattr itself is checked by the unit test in store/load.rs, and by the
    // overlay test below, which needs root.)
}

/// Mounts the loaded image's layers as overlayfs does for a container, and looks: the
/// whited-out file is gone, the opaque directory hides the lower one's entries.
#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "needs root: --features e2e")]
fn whiteouts_behave_as_in_docker_under_overlayfs() {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    let mut env = Env::new();
    let lower = layer(&[
        ("etc/", b""),
        ("etc/keep", b"k"),
        ("etc/gone", b"g"),
        ("opq/", b""),
        ("opq/old", b"o"),
    ]);
    let upper = layer(&[
        ("etc/.wh.gone", b""),
        ("opq/", b""),
        ("opq/.wh..wh..opq", b""),
        ("opq/new", b"n"),
    ]);
    let mut a = Archive::default();
    let (id, _) = a.oci_image(&[Layer::plain(&lower), Layer::plain(&upper)], Value::Null);
    env.store.load(&env.file("wh.tar", &a.tar())).unwrap();
    let dirs = env.store.layer_dirs(&ImageId::new(id)).unwrap();
    let target = env.dir.path().join("merged");
    std::fs::create_dir(&target).unwrap();
    let opts = format!("lowerdir={}:{}", dirs[1].display(), dirs[0].display());
    mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )
    .unwrap();
    /// Unmounts even when an assertion fails first.
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = umount2(self.0, MntFlags::MNT_DETACH);
        }
    }
    let _unmount = Unmount(&target);
    let mut seen: Vec<String> = ["etc", "opq"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(target.join(d))
                .unwrap()
                .map(move |e| format!("{d}/{}", e.unwrap().file_name().to_string_lossy()))
        })
        .collect();
    seen.sort();
    assert_eq!(seen, ["etc/keep", "opq/new"]);
}

#[test]
fn a_corrupt_blob_names_the_blob_and_leaves_the_store_unchanged() {
    let mut env = Env::new();
    // Something in the store already, which must stay as it is.
    let mut ok = Archive::default();
    ok.oci_image(
        &[Layer::plain(&layer(&[("x", b"x")]))],
        json!({"io.containerd.image.name": "keep:1"}),
    );
    env.store.load(&env.file("ok.tar", &ok.tar())).unwrap();

    let good = layer(&[("a", b"fine")]);
    let bad = layer(&[("b", b"flipped")]);
    let mut a = Archive::default();
    a.oci_image(
        &[Layer::gzip(&good), Layer::plain(&bad)],
        json!({"io.containerd.image.name": "bad:1"}),
    );
    // Same size, other bytes: the second layer no longer matches its digest.
    let name = format!("blobs/sha256/{}", Digest::of(&bad).hex());
    let blob = a.files.get_mut(&name).unwrap();
    let at = blob.iter().position(|&b| b == b'f').unwrap();
    blob[at] = b'F';
    let err = env.load_fails("corrupt.tar", &a.tar());
    assert!(err.contains(&name) && err.contains("corrupt"), "{err}");
    assert!(err.contains(&Digest::of(&bad).to_string()), "{err}");
    assert_eq!(env.store.resolve("bad:1").ok(), None);

    // A corrupt config: core names it.
    let mut a = Archive::default();
    let (id, _) = a.oci_image(&[Layer::plain(&good)], Value::Null);
    let name = format!("blobs/sha256/{}", id.hex());
    a.files.get_mut(&name).unwrap()[0] = b' ';
    let err = env.load_fails("corrupt-config.tar", &a.tar());
    assert!(err.contains(&name), "{err}");

    // A layer whose diff id is wrong (a docker archive records no blob digest).
    let mut a = Archive::default();
    a.docker_image(&[&good], &["diff:1"]);
    let layer_path = a
        .files
        .keys()
        .find(|k| k.ends_with("layer.tar"))
        .unwrap()
        .clone();
    a.files.insert(layer_path.clone(), bad.clone());
    let err = env.load_fails("diffid.tar", &a.tar());
    assert!(
        err.contains(&layer_path) && err.contains("diff id"),
        "{err}"
    );

    // A layer that is not there.
    a.files.remove(&layer_path);
    let err = env.load_fails("missing.tar", &a.tar());
    assert!(
        err.contains(&layer_path) && err.contains("missing"),
        "{err}"
    );

    // In an empty store, the archive's first image is whole and its second is not: the
    // first is not kept either (nor the `manifests/` directory made for it).
    let mut fresh = Env::new();
    let mut a = Archive::default();
    a.oci_image(
        &[Layer::plain(&good)],
        json!({"io.containerd.image.name": "first:1"}),
    );
    let second = gzip(&bad);
    a.oci_image(&[Layer::gzip(&bad)], Value::Null);
    let name = format!("blobs/sha256/{}", Digest::of(&second).hex());
    *a.files.get_mut(&name).unwrap().last_mut().unwrap() ^= 1;
    let err = fresh.load_fails("second-bad.tar", &a.tar());
    assert!(err.contains(&name), "{err}");
    assert_eq!(
        snapshot(&fresh.root()).0,
        ["blobs", "blobs/sha256", "layers"]
    );
}

#[test]
fn truncated_archives_and_layers_are_refused() {
    let mut env = Env::new();
    let big = vec![b'z'; 5000];
    let l = layer(&[("big", &big), ("small", b"s")]);
    let mut a = Archive::default();
    a.docker_image(&[&l], &["trunc:1"]);
    let tar = a.tar();
    let cuts = [100, 700, tar.len() / 2, tar.len() - 1024, tar.len() - 1025];
    for cut in cuts {
        let err = env.load_fails(&format!("cut-{cut}.tar"), &tar[..cut]);
        assert!(
            err.contains("archive") || err.contains("missing"),
            "cut at {cut}: {err}"
        );
    }
    // The end-of-archive block missing: "cut short" is said.
    let err = env.load_fails("noend.tar", &tar[..tar.len() - 1024]);
    assert!(err.contains("end-of-archive"), "{err}");
    // A gzip archive cut short.
    let gz = gzip(&tar);
    let err = env.load_fails("cut.tar.gz", &gz[..gz.len() / 2]);
    assert!(
        err.contains("decompressing") || err.contains("archive"),
        "{err}"
    );

    // The outer archive whole, a layer in it cut short.
    let mut a = Archive::default();
    a.docker_image(&[&l], &["trunc:2"]);
    let path = a
        .files
        .keys()
        .find(|k| k.ends_with("layer.tar"))
        .unwrap()
        .clone();
    a.files.insert(path.clone(), l[..2000].to_vec());
    let err = env.load_fails("cut-layer.tar", &a.tar());
    assert!(err.contains(&path), "{err}");
}

/// A layer tar with one entry whose name is written raw (the tar crate refuses `..`).
fn raw_layer(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header(tar::EntryType::Directory, 0), "ok/", &[][..])
        .unwrap();
    let mut h = header(tar::EntryType::Regular, data.len() as u64);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn a_layer_path_leaving_the_layer_is_refused_and_nothing_is_written() {
    let mut env = Env::new();
    for (n, name) in ["../escape", "ok/../../escape", "/abs-escape"]
        .iter()
        .enumerate()
    {
        let l = raw_layer(name, b"pwned");
        let mut a = Archive::default();
        a.oci_image(
            &[Layer::plain(&layer(&[("fine", b"1")])), Layer::gzip(&l)],
            json!({"io.containerd.image.name": "evil:1"}),
        );
        let err = env.load_fails(&format!("evil-{n}.tar"), &a.tar());
        assert!(err.contains(name) || err.contains("escape"), "{err}");
        assert_eq!(env.store.resolve("evil:1").ok(), None);
    }
    // Nowhere under the test directory (the store's parent) is an `escape` file.
    fn find(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().contains("escape")
                && p.extension().is_none_or(|x| x != "tar")
            {
                out.push(p.clone());
            }
            if p.symlink_metadata().unwrap().is_dir() {
                out.extend(find(&p));
            }
        }
        out
    }
    assert_eq!(find(env.dir.path()), Vec::<PathBuf>::new());
    assert!(!Path::new("/escape").exists() && !Path::new("/abs-escape").exists());
}

#[test]
fn save_then_load_gives_the_same_images() {
    let mut env = Env::new();
    let imported = env
        .store
        .import_rootfs(&layer(&[("hello", b"hi")])[..], &r("imported:1"))
        .unwrap();
    let bottom = layer(&[("bin/", b""), ("bin/sh", b"sh")]);
    let top = layer(&[("etc/", b""), ("etc/.wh.motd", b""), ("etc/issue", b"x")]);
    let mut a = Archive::default();
    let (oci, manifest) = a.oci_image(
        &[Layer::gzip(&bottom), Layer::zstd(&top)],
        json!({"io.containerd.image.name": "docker.io/team/app:v1"}),
    );
    let mut d = Archive::default();
    let dangling = d.docker_image(&[&bottom], &[]);
    env.store.load(&env.file("oci.tar", &a.tar())).unwrap();
    env.store.load(&env.file("d.tar", &d.tar())).unwrap();
    env.store.tag("team/app:v1", &r("app:also")).unwrap();

    let mut out = Vec::new();
    env.store
        .save(
            &[
                "imported:1",
                "team/app:v1",
                "app:also",
                &dangling.hex()[..12],
            ],
            &mut out,
        )
        .unwrap();
    // Deterministic.
    let mut again = Vec::new();
    env.store
        .save(
            &[
                "imported:1",
                "team/app:v1",
                "app:also",
                &dangling.hex()[..12],
            ],
            &mut again,
        )
        .unwrap();
    assert!(out == again);

    // Both formats are there: manifest.json (docker) and index.json (OCI) with the
    // manifest the image was loaded with, byte for byte.
    let mut files = BTreeMap::new();
    let mut ar = tar::Archive::new(&out[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
        files.insert(path, bytes);
    }
    let m: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(m.as_array().unwrap().len(), 3, "{m}");
    assert_eq!(m[0]["RepoTags"], json!(["imported:1"]));
    assert_eq!(m[1]["RepoTags"], json!(["team/app:v1", "app:also"]));
    assert_eq!(m[2]["RepoTags"], Value::Null);
    assert_eq!(m[1]["Config"], json!(format!("blobs/sha256/{}", oci.hex())));
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let digests: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests.len(), 4, "{index}");
    assert_eq!(digests[1], manifest.to_string());
    assert_eq!(digests[1], digests[2]);
    assert!(files.contains_key("oci-layout"));

    // Into a second store: the same ids, tags and layer contents.
    let mut other = Env::new();
    let loaded = other.store.load(&other.file("saved.tar", &out)).unwrap();
    assert_eq!(
        ids(&loaded),
        [imported, ImageId::new(oci), ImageId::new(dangling)]
    );
    assert_eq!(loaded[1].tags, [r("app:also"), r("team/app:v1")]);
    assert!(loaded[2].tags.is_empty());
    let dirs = other.store.layer_dirs(&ImageId::new(oci)).unwrap();
    assert_eq!(std::fs::read(dirs[1].join("etc/issue")).unwrap(), b"x");
    assert!(
        std::fs::symlink_metadata(dirs[1].join("etc/motd"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
    // As a docker archive only (index.json dropped), the ids are the same too.
    let mut docker_only = tar::Builder::new(Vec::new());
    for (path, bytes) in files.iter().filter(|(p, _)| *p != "index.json") {
        let kind = if path.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        };
        docker_only
            .append_data(&mut header(kind, bytes.len() as u64), path, &bytes[..])
            .unwrap();
    }
    let mut third = Env::new();
    let path = third.file("docker.tar", &docker_only.into_inner().unwrap());
    assert_eq!(ids(&third.store.load(&path).unwrap()), ids(&loaded));

    // An unknown name is an error before anything is written.
    let mut sink = Vec::new();
    let err = env.store.save(&["nothere:1"], &mut sink).unwrap_err();
    assert!(matches!(err, StoreError::UnknownImage { .. }), "{err}");
    assert!(sink.is_empty());
}

#[test]
fn tag_points_a_new_name_at_an_image() {
    let mut env = Env::new();
    let one = env
        .store
        .import_rootfs(&layer(&[("1", b"1")])[..], &r("one"))
        .unwrap();
    let two = env
        .store
        .import_rootfs(&layer(&[("2", b"2")])[..], &r("two"))
        .unwrap();
    assert_eq!(env.store.tag(&one.short(), &r("alias:1")).unwrap(), one);
    assert_eq!(env.store.resolve("alias:1").unwrap(), one);
    // A tag moves.
    assert_eq!(env.store.tag("two", &r("alias:1")).unwrap(), two);
    assert_eq!(env.store.resolve("alias:1").unwrap(), two);
    let err = env
        .store
        .tag("one", &r(&format!("x@{}", one.digest())))
        .unwrap_err();
    assert!(matches!(err, StoreError::NotATag { .. }), "{err}");
    let err = env.store.tag("nothere", &r("y:1")).unwrap_err();
    assert!(matches!(err, StoreError::UnknownImage { .. }), "{err}");
    assert_eq!(snapshot(&env.root()).1, [2, 2, 2, 3]);
}

#[test]
fn inspect_shows_the_image_as_docker_does() {
    let mut env = Env::new();
    let l1 = layer(&[("a", b"12345")]);
    let l2 = layer(&[("b", b"6")]);
    let mut a = Archive::default();
    let (id, _) = a.oci_image(
        &[Layer::gzip(&l1), Layer::plain(&l2)],
        json!({"io.containerd.image.name": "inspect/me:1"}),
    );
    env.store.load(&env.file("i.tar", &a.tar())).unwrap();
    let v = env.store.inspect(&ImageId::new(id)).unwrap();
    assert_eq!(v["Id"], json!(id.to_string()));
    assert_eq!(v["RepoTags"], json!(["inspect/me:1"]));
    assert_eq!(v["Created"], json!("2024-01-02T03:04:05Z"));
    assert_eq!(v["Author"], json!("berth tests"));
    assert_eq!(v["Size"], json!(l1.len() + l2.len()));
    assert_eq!(
        (v["Architecture"].as_str(), v["Os"].as_str()),
        (Some("amd64"), Some("linux"))
    );
    assert_eq!(v["Config"]["Cmd"], json!(["sh"]));
    assert_eq!(v["RootFS"]["Type"], json!("layers"));
    assert_eq!(
        v["RootFS"]["Layers"],
        json!([Digest::of(&l1).to_string(), Digest::of(&l2).to_string()])
    );
    // An imported image has no `created` in its config: the time it was stored.
    let imported = env.store.import_rootfs(&l2[..], &r("imp")).unwrap();
    let v = env.store.inspect(&imported).unwrap();
    let created = v["Created"].as_str().unwrap();
    assert!(
        created.starts_with("20") && created.ends_with('Z'),
        "{created}"
    );
    let missing = ImageId::new(Digest::of(b"none"));
    assert!(matches!(
        env.store.inspect(&missing),
        Err(StoreError::UnknownImage { .. })
    ));
}

#[test]
fn prune_removes_dangling_images_then_unused_layers() {
    let mut env = Env::new();
    let shared = layer(&[("shared", b"s")]);
    let only_old = layer(&[("old", b"o")]);
    let only_used = layer(&[("used", b"u")]);
    let mut a = Archive::default();
    let old = a.docker_image(&[&shared, &only_old], &[]);
    let tagged = a.docker_image(&[&shared], &["tagged:1"]);
    let used = a.docker_image(&[&only_used], &[]);
    env.store.load(&env.file("p.tar", &a.tar())).unwrap();
    // A layer directory no row names, as a crash between rename and commit leaves.
    let stray = env.root().join("layers").join(Digest::of(b"stray").hex());
    std::fs::create_dir_all(stray.join("diff")).unwrap();
    let in_use = |id: &ImageId| *id == ImageId::new(used);

    let removed = env.store.prune(&in_use, false).unwrap();
    assert_eq!(removed, [ImageId::new(old)]);
    assert!(!stray.exists());
    let layers = env.root().join("layers");
    assert!(!layers.join(Digest::of(&only_old).hex()).exists());
    assert!(!env.store.blob_path(&Digest::of(&only_old)).exists());
    assert!(!env.store.blob_path(&old).exists());
    assert!(layers.join(Digest::of(&shared).hex()).is_dir());
    assert_eq!(snapshot(&env.root()).1, [2, 2, 2, 1]);

    // -a: every image no container uses, tagged or not.
    let removed = env.store.prune(&in_use, true).unwrap();
    assert_eq!(removed, [ImageId::new(tagged)]);
    assert!(!layers.join(Digest::of(&shared).hex()).exists());
    assert!(layers.join(Digest::of(&only_used).hex()).is_dir());
    assert_eq!(snapshot(&env.root()).1, [1, 1, 1, 0]);
    assert_eq!(env.store.prune(&in_use, true).unwrap(), []);
    assert_eq!(
        env.store.prune(&|_| false, true).unwrap(),
        [ImageId::new(used)]
    );
    assert_eq!(snapshot(&env.root()).1, [0, 0, 0, 0]);
    assert_eq!(std::fs::read_dir(&layers).unwrap().count(), 0);
}

#[test]
fn fuzz_entry_point_takes_archives_and_garbage() {
    let mut a = Archive::default();
    a.oci_image(&[Layer::gzip(&layer(&[("f", b"1")]))], Value::Null);
    a.docker_image(&[&layer(&[("g", b"2")])], &["x:1"]);
    let tar = a.tar();
    fuzz_image_archive(&tar);
    for cut in [0, 1, 511, 512, 513, tar.len() / 3, tar.len() - 1] {
        fuzz_image_archive(&tar[..cut]);
    }
    // Saved crash inputs stay fixed.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/image_archive");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
            fuzz_image_archive(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "no inputs under {}", dir.display());
}

#[test]
fn an_archive_is_loaded_from_a_pipe_too() {
    let mut env = Env::new();
    let mut a = Archive::default();
    let (id, _) = a.oci_image(
        &[Layer::gzip(&layer(&[("p", b"pipe")]))],
        json!({"io.containerd.image.name": "piped:1"}),
    );
    let fifo = env.dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let bytes = gzip(&a.tar());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, bytes).unwrap())
    };
    let loaded = env.store.load(&fifo).unwrap();
    writer.join().unwrap();
    assert_eq!(ids(&loaded), [ImageId::new(id)]);
    assert_eq!(loaded[0].tags, [r("piped:1")]);
    assert!(!snapshot(&env.root()).0.iter().any(|p| p.contains(".tmp-")));
}
