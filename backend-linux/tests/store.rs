//! The image store against a real file system: import, list, resolve, remove, reopen,
//! concurrent imports and failed imports. Archives are built in memory, owned by the
//! current user, so these tests need no root.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_backend_linux::store::{DB_FILE, ImageId, Store, StoreError};
use berth_core::image::{Digest, Reference};

fn me() -> (u64, u64) {
    (
        u64::from(nix::unistd::geteuid().as_raw()),
        u64::from(nix::unistd::getegid().as_raw()),
    )
}

/// A rootfs tar with `bin/` and `bin/hello` holding `content`.
fn rootfs(content: &[u8]) -> Vec<u8> {
    let (uid, gid) = me();
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_uid(uid);
    dir.set_gid(gid);
    dir.set_mtime(1_600_000_000);
    dir.set_size(0);
    b.append_data(&mut dir, "bin/", &[][..]).unwrap();
    let mut file = tar::Header::new_gnu();
    file.set_entry_type(tar::EntryType::Regular);
    file.set_mode(0o755);
    file.set_uid(uid);
    file.set_gid(gid);
    file.set_mtime(1_600_000_000);
    file.set_size(content.len() as u64);
    b.append_data(&mut file, "bin/hello", content).unwrap();
    b.into_inner().unwrap()
}

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    out.sort();
    out
}

/// Row counts of images, layers, image_layers, tags, read straight from the database.
fn rows(root: &Path) -> [i64; 4] {
    let conn = rusqlite::Connection::open(root.join(DB_FILE)).unwrap();
    ["images", "layers", "image_layers", "tags"].map(|t| {
        conn.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    })
}

#[test]
fn import_lists_resolves_and_reimports_without_unpacking() {
    let root = tempfile::tempdir().unwrap();
    let mut store = Store::open(root.path()).unwrap();
    let tar = rootfs(b"hello");
    let id = store.import_rootfs(&tar[..], &r("busybox")).unwrap();

    let images = store.images().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].id, id);
    assert_eq!(images[0].tags, vec![r("busybox:latest")]);
    assert_eq!(images[0].size, tar.len() as u64);

    let dirs = store.layer_dirs(&id).unwrap();
    assert_eq!(dirs.len(), 1);
    let diff_id = Digest::of(&tar);
    assert_eq!(
        dirs[0],
        root.path().join("layers").join(diff_id.hex()).join("diff")
    );
    assert_eq!(std::fs::read(dirs[0].join("bin/hello")).unwrap(), b"hello");
    let inode = std::fs::metadata(&dirs[0]).unwrap().ino();
    assert_eq!(store.layers_unpacked(), 1);

    // The config is a blob, the image id its digest, and it names the layer.
    let config = store.blob(id.digest()).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(json["rootfs"]["diff_ids"][0], diff_id.to_string());
    assert_eq!(json["os"], "linux");
    assert!(store.blob_path(&diff_id).is_file());

    // Same rootfs, another tag: same id, the layer directory is not made again.
    let again = store.import_rootfs(&tar[..], &r("other:v1")).unwrap();
    assert_eq!(again, id);
    assert_eq!(std::fs::metadata(&dirs[0]).unwrap().ino(), inode);
    assert_eq!(store.layers_unpacked(), 1);
    assert_eq!(names(&root.path().join("layers")), vec![diff_id.hex()]);
    let images = store.images().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(
        images[0].tags,
        vec![r("busybox:latest"), r("docker.io/library/other:v1")]
    );

    // Resolve by tag, full id, bare hex, prefix.
    assert_eq!(store.resolve("busybox").unwrap(), id);
    assert_eq!(store.resolve("busybox:latest").unwrap(), id);
    assert_eq!(store.resolve("other:v1").unwrap(), id);
    assert_eq!(store.resolve(&id.to_string()).unwrap(), id);
    assert_eq!(store.resolve(&id.digest().hex()).unwrap(), id);
    assert_eq!(store.resolve(&id.short()).unwrap(), id);
    assert_eq!(
        store
            .resolve(&format!("sha256:{}", &id.short()[..4]))
            .unwrap(),
        id
    );
    let err = store.resolve("nothere").unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownImage { ref name } if name == "nothere"),
        "{err}"
    );
    assert!(err.to_string().contains("\"nothere\""), "{err}");
}

#[test]
fn a_tag_moves_to_the_new_image() {
    let root = tempfile::tempdir().unwrap();
    let mut store = Store::open(root.path()).unwrap();
    let first = store.import_rootfs(&rootfs(b"1")[..], &r("app")).unwrap();
    let second = store.import_rootfs(&rootfs(b"2")[..], &r("app")).unwrap();
    assert_ne!(first, second);
    assert_eq!(store.resolve("app").unwrap(), second);
    let images = store.images().unwrap();
    let dangling = images.iter().find(|i| i.id == first).unwrap();
    assert!(dangling.tags.is_empty());
    assert_eq!(rows(root.path()), [2, 2, 2, 1]);
}

#[test]
fn ambiguous_prefix_names_the_candidates() {
    let root = tempfile::tempdir().unwrap();
    let mut store = Store::open(root.path()).unwrap();
    // 17 images: two must share their first hex digit.
    let mut ids: Vec<ImageId> = Vec::new();
    for n in 0..17u8 {
        ids.push(
            store
                .import_rootfs(&rootfs(&[n])[..], &r(&format!("img{n}")))
                .unwrap(),
        );
    }
    let first_hex = |id: &ImageId| id.digest().hex()[..1].to_owned();
    let clash = ids
        .iter()
        .find(|a| ids.iter().filter(|b| first_hex(a) == first_hex(b)).count() > 1)
        .unwrap();
    let prefix = first_hex(clash);
    match store.resolve(&prefix).unwrap_err() {
        StoreError::AmbiguousPrefix {
            prefix: p,
            candidates,
        } => {
            assert_eq!(p, prefix);
            assert!(candidates.len() > 1);
            assert!(candidates.contains(&clash.to_string()), "{candidates:?}");
            assert!(
                candidates
                    .iter()
                    .all(|c| c.starts_with(&format!("sha256:{prefix}")))
            );
        }
        other => panic!("{other:?}"),
    }
    // A longer prefix is unique again.
    assert_eq!(store.resolve(&clash.digest().hex()[..20]).unwrap(), *clash);
}

#[test]
fn concurrent_imports_of_one_layer_both_succeed_with_one_layer_dir() {
    let root = tempfile::tempdir().unwrap();
    Store::open(root.path()).unwrap();
    let tar = rootfs(&[7u8; 200_000]);
    let done: Vec<(ImageId, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let (root, tar) = (root.path(), &tar);
                s.spawn(move || {
                    let mut store = Store::open(root).unwrap();
                    let id = store
                        .import_rootfs(&tar[..], &r(&format!("same{n}")))
                        .unwrap();
                    (id, store.layers_unpacked())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(done.iter().all(|(id, _)| *id == done[0].0), "{done:?}");
    // Unpacked once among the four.
    assert_eq!(done.iter().map(|(_, n)| n).sum::<u64>(), 1, "{done:?}");
    assert_eq!(
        names(&root.path().join("layers")),
        vec![Digest::of(&tar).hex()]
    );
    // Layer blob and config blob, no temporary left.
    assert_eq!(names(&root.path().join("blobs/sha256")).len(), 2);
    assert_eq!(rows(root.path()), [1, 1, 1, 4]);
}

#[test]
fn truncated_import_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let mut store = Store::open(root.path()).unwrap();
    let tar = rootfs(&[1u8; 5000]);
    let err = store
        .import_rootfs(&tar[..512 + 2000], &r("cut"))
        .unwrap_err();
    assert!(matches!(err, StoreError::Layer(_)), "{err:?}");
    assert!(names(&root.path().join("blobs/sha256")).is_empty());
    assert!(names(&root.path().join("layers")).is_empty());
    assert_eq!(rows(root.path()), [0, 0, 0, 0]);
    assert!(store.images().unwrap().is_empty());
    assert!(matches!(
        store.resolve("cut"),
        Err(StoreError::UnknownImage { .. })
    ));
    // A path-traversal entry is refused the same way.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(1);
    h.set_mode(0o644);
    let evil = b"../evil";
    h.as_old_mut().name[..evil.len()].copy_from_slice(evil);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let evil_tar = b.into_inner().unwrap();
    assert!(store.import_rootfs(&evil_tar[..], &r("evil")).is_err());
    assert!(!root.path().join("evil").exists());
    assert!(names(&root.path().join("blobs/sha256")).is_empty());
    assert!(names(&root.path().join("layers")).is_empty());
    assert_eq!(rows(root.path()), [0, 0, 0, 0]);
}

#[test]
fn remove_image_removes_unused_layers_rows_and_blobs() {
    let root = tempfile::tempdir().unwrap();
    let mut store = Store::open(root.path()).unwrap();
    let keep = store
        .import_rootfs(&rootfs(b"keep")[..], &r("keep"))
        .unwrap();
    let gone = store
        .import_rootfs(&rootfs(b"gone")[..], &r("gone"))
        .unwrap();
    store
        .import_rootfs(&rootfs(b"gone")[..], &r("gone:two"))
        .unwrap();
    let gone_dir = store.layer_dirs(&gone).unwrap().remove(0);
    let gone_layer = Digest::of(&rootfs(b"gone"));

    // In use, or several tags: refused without force, nothing changed.
    assert!(matches!(
        store.remove_image(&gone, false, 1),
        Err(StoreError::ImageInUse { users: 1, .. })
    ));
    let err = store.remove_image(&gone, false, 0).unwrap_err();
    assert!(matches!(err, StoreError::ManyTags { .. }), "{err:?}");
    assert!(
        err.to_string().contains("docker.io/library/gone:two"),
        "{err}"
    );
    assert!(gone_dir.is_dir());

    // Untag one; then it goes without force.
    assert_eq!(store.untag(&r("gone:two")).unwrap(), gone);
    assert!(matches!(
        store.untag(&r("gone:two")),
        Err(StoreError::UnknownTag { .. })
    ));
    let removal = store.remove_image(&gone, false, 0).unwrap();
    assert_eq!(removal.untagged, vec![r("gone")]);
    assert_eq!(removal.deleted_layers, vec![gone_layer]);
    assert!(!gone_dir.exists());
    assert!(!root.path().join("layers").join(gone_layer.hex()).exists());
    assert!(!store.blob_path(&gone_layer).exists());
    assert!(!store.blob_path(gone.digest()).exists());
    assert_eq!(rows(root.path()), [1, 1, 1, 1]);
    assert!(matches!(
        store.layer_dirs(&gone),
        Err(StoreError::UnknownImage { .. })
    ));
    assert!(matches!(
        store.remove_image(&gone, true, 0),
        Err(StoreError::UnknownImage { .. })
    ));

    // Forced removal of an image in use works too.
    store.remove_image(&keep, true, 3).unwrap();
    assert_eq!(rows(root.path()), [0, 0, 0, 0]);
    assert!(names(&root.path().join("layers")).is_empty());
    assert!(names(&root.path().join("blobs/sha256")).is_empty());
}

#[test]
fn reopened_store_keeps_its_data_and_drops_leftovers() {
    let root = tempfile::tempdir().unwrap();
    let tar = rootfs(b"persist");
    let id = {
        let mut store = Store::open(root.path()).unwrap();
        store.import_rootfs(&tar[..], &r("persist:1")).unwrap()
    };
    // What a crash mid-import leaves.
    std::fs::write(root.path().join("blobs/sha256/.tmp-crash"), b"half").unwrap();
    std::fs::create_dir_all(root.path().join("layers/.tmp-crash/diff/x")).unwrap();

    let store = Store::open(root.path()).unwrap();
    let images = store.images().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].id, id);
    assert_eq!(images[0].tags, vec![r("persist:1")]);
    assert_eq!(store.resolve("persist:1").unwrap(), id);
    let dirs = store.layer_dirs(&id).unwrap();
    assert_eq!(
        std::fs::read(dirs[0].join("bin/hello")).unwrap(),
        b"persist"
    );
    assert_eq!(
        names(&root.path().join("layers")),
        vec![Digest::of(&tar).hex()]
    );
    assert_eq!(names(&root.path().join("blobs/sha256")).len(), 2);
    let conn = rusqlite::Connection::open(root.path().join(DB_FILE)).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_corrupt_blob_is_reported_with_both_digests() {
    let root = tempfile::tempdir().unwrap();
    let mut store = Store::open(root.path()).unwrap();
    let id = store.import_rootfs(&rootfs(b"c")[..], &r("c")).unwrap();
    std::fs::write(store.blob_path(id.digest()), b"tampered").unwrap();
    match store.blob(id.digest()).unwrap_err() {
        StoreError::CorruptBlob {
            expected, actual, ..
        } => {
            assert_eq!(expected, *id.digest());
            assert_eq!(actual, Digest::of(b"tampered"));
        }
        other => panic!("{other:?}"),
    }
    let missing = Digest::of(b"never stored");
    assert!(matches!(
        store.blob(&missing),
        Err(StoreError::NoBlob { .. })
    ));
}

#[test]
fn a_digest_reference_cannot_be_a_tag() {
    let root = tempfile::tempdir().unwrap();
    let mut store = Store::open(root.path()).unwrap();
    let pinned = r(&format!("app@{}", Digest::of(b"x")));
    let err = store.import_rootfs(&rootfs(b"x")[..], &pinned).unwrap_err();
    assert!(matches!(err, StoreError::NotATag { .. }), "{err:?}");
    assert_eq!(rows(root.path()), [0, 0, 0, 0]);
}
