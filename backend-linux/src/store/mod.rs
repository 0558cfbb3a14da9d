//! berth's local image store: content-addressed blobs, unpacked layers, and an SQLite
//! database of images, layers and tags under one data root (`/var/lib/berth` by default).
//!
//! Layout under the root:
//! - `blobs/sha256/<hex>`: blobs (layer archives as imported, image configs), each written
//!   to a temporary file in the same directory, fsync'd and renamed to its digest, which is
//!   computed from the bytes written, so a blob never sits under a name it does not match;
//! - `layers/<diff id hex>/diff`: each layer unpacked once by [`unpack_layer`] into a
//!   temporary directory that is renamed into place whole, so a crash never leaves half a
//!   layer under its final name;
//! - `manifests/<image id hex>`: the OCI manifest an image was loaded with, if any, so
//!   [`Store::save`] writes it back (an optional copy: no row names it);
//! - `berth.db`: SQLite (WAL, foreign keys on, `user_version` 3) with tables `images`,
//!   `layers`, `image_layers` (bottom first), `tags`, `containers` (the engine's, see
//!   [`containers`]), `networks` and `endpoints` (see [`networks`]), and the view
//!   `layer_users`;
//! - `lock`: a file `flock`ed around every change that unpacks, places or deletes layers,
//!   so two `berth import`s of the same layer at once unpack it once and both succeed.
//!
//! Invariants: files are put in place before the transaction that names them commits, and
//! rows are deleted before the files they name, so a row never names a missing file; a
//! crash leaves at worst unreferenced `.tmp-*` entries, removed by the next [`Store::open`]
//! that finds the store idle.

pub mod containers;
mod db;
mod images;
mod load;
pub mod networks;
mod pull;
mod save;
pub mod tarindex;

pub use load::{ArchiveError, LayerEvent, LoadSummary, NoProgress, Progress, SourceError};
pub use pull::{
    PullSummary, RemoteBlob, RemoteError, RemoteKind, RemoteSource, manifest_media_type,
};
pub use save::ImageParts;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_core::image::{Digest, DigestWriter, EntryRules, Reference, ReferenceError};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use rusqlite::{Connection, TransactionBehavior, params};

use crate::layer::{LayerError, unpack_layer};

/// The data root berth uses when none is given.
pub const DEFAULT_ROOT: &str = "/var/lib/berth";
/// The database's file name under the root.
pub const DB_FILE: &str = "berth.db";
/// The lock file's name under the root.
pub const LOCK_FILE: &str = "lock";
/// Prefix of temporary names under `blobs/sha256/` and `layers/`.
const TMP_PREFIX: &str = ".tmp-";

/// An image's id: the digest of its config blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageId(Digest);

impl ImageId {
    /// The id of the image whose config has this digest.
    pub fn new(config_digest: Digest) -> ImageId {
        ImageId(config_digest)
    }

    /// The config's digest.
    pub fn digest(&self) -> &Digest {
        &self.0
    }

    /// The first 12 hex characters, as `docker images` shows them.
    pub fn short(&self) -> String {
        self.0.hex()[..12].to_owned()
    }
}

impl std::fmt::Display for ImageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One line of `berth images`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// The image's id.
    pub id: ImageId,
    /// Its tags, sorted (none for a dangling image).
    pub tags: Vec<Reference>,
    /// When it was first stored.
    pub created: SystemTime,
    /// The sum of its layers' uncompressed sizes, in bytes.
    pub size: u64,
}

/// What [`Store::remove_image`] removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    /// The tags that pointed at the image.
    pub untagged: Vec<Reference>,
    /// The layers (diff ids) no image used any more, whose directories were deleted.
    pub deleted_layers: Vec<Digest>,
}

/// Why a store operation failed; each variant names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system call failed.
    #[error("image store: {op} {path:?} failed: {source}")]
    Io {
        /// What was being done (`create`, `rename`, …).
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Taking the store's lock failed.
    #[error("image store: locking {path:?} failed: {errno}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        errno: Errno,
    },
    /// A database operation failed.
    #[error("image store database: {what} failed: {source}")]
    Db {
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by another version of berth.
    #[error(
        "image store database {path:?} has schema version {version}, this berth reads {expected}"
    )]
    Schema {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        version: i64,
        /// The version this code reads.
        expected: i64,
    },
    /// A row holds a value berth never writes.
    #[error("image store database: {what} holds {value:?}, not a digest")]
    CorruptRow {
        /// The table and column.
        what: &'static str,
        /// The value found.
        value: String,
    },
    /// A blob whose bytes do not match its name.
    #[error("corrupt blob {path:?}: expected digest {expected}, content has {actual}")]
    CorruptBlob {
        /// The blob's file.
        path: PathBuf,
        /// The digest it is stored under.
        expected: Digest,
        /// The digest of its bytes.
        actual: Digest,
    },
    /// A blob the store does not hold.
    #[error("image store has no blob {digest}")]
    NoBlob {
        /// The digest asked for.
        digest: Digest,
    },
    /// The layer could not be unpacked (the message names the entry and the problem).
    #[error("importing layer: {0}")]
    Layer(#[from] LayerError),
    /// A name that is not a valid reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A reference that cannot be a tag (it pins a digest).
    #[error("cannot tag an image as {reference:?}: a tag cannot pin a digest")]
    NotATag {
        /// The reference.
        reference: String,
    },
    /// No image by that name, id or id prefix.
    #[error("unknown image {name:?}")]
    UnknownImage {
        /// The name asked for.
        name: String,
    },
    /// No such tag.
    #[error("unknown tag {reference:?}")]
    UnknownTag {
        /// The reference asked for.
        reference: String,
    },
    /// An id prefix that more than one image has.
    #[error("image id prefix {prefix:?} is ambiguous: {}", candidates.join(", "))]
    AmbiguousPrefix {
        /// The prefix asked for.
        prefix: String,
        /// The ids that start with it.
        candidates: Vec<String>,
    },
    /// The image is used by containers and removal was not forced.
    #[error("image {id} is in use by {users} container(s) (use force to remove it)")]
    ImageInUse {
        /// The image.
        id: ImageId,
        /// How many containers use it.
        users: usize,
    },
    /// A container name another container has.
    #[error("container name {name:?} is already in use by container {id}")]
    NameInUse {
        /// The name.
        name: String,
        /// The container that has it.
        id: String,
    },
    /// A container name that is not `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
    #[error("invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName {
        /// The name.
        name: String,
    },
    /// No container by that name, id or id prefix.
    #[error("no such container: {name}")]
    UnknownContainer {
        /// The name asked for.
        name: String,
    },
    /// A container id prefix that more than one container has.
    #[error("container id prefix {prefix:?} is ambiguous: {}", candidates.join(", "))]
    AmbiguousContainer {
        /// The prefix asked for.
        prefix: String,
        /// The ids that start with it.
        candidates: Vec<String>,
    },
    /// A network name another network has.
    #[error("network name {name:?} is already in use by network {id}")]
    NetworkNameInUse {
        /// The name.
        name: String,
        /// The network that has it.
        id: String,
    },
    /// No network by that name, id or id prefix.
    #[error("no such network: {name}")]
    UnknownNetwork {
        /// The name asked for.
        name: String,
    },
    /// The network still has endpoints.
    #[error(
        "network {name} has {endpoints} active endpoint(s): disconnect or remove its containers first"
    )]
    NetworkInUse {
        /// The network.
        name: String,
        /// How many endpoints it has.
        endpoints: usize,
    },
    /// The container is already on the network.
    #[error("container {container} is already connected to network {network}")]
    AlreadyConnected {
        /// The container.
        container: String,
        /// The network.
        network: String,
    },
    /// No address could be allocated (the message names the subnet and why).
    #[error("network {network}: {message}")]
    Ipam {
        /// The network.
        network: String,
        /// Why.
        message: String,
    },
    /// The image has several tags and removal by id was not forced.
    #[error("image {id} has several tags ({}); untag them or use force", tags.join(", "))]
    ManyTags {
        /// The image.
        id: ImageId,
        /// Its tags.
        tags: Vec<String>,
    },
    /// An archive or layout that could not be loaded (the source names the file at fault).
    #[error("loading {path:?}")]
    Archive {
        /// The archive or layout.
        path: PathBuf,
        /// What is wrong with it (boxed: large, and rare).
        #[source]
        source: Box<ArchiveError>,
    },
    /// Writing a saved archive to its output failed.
    #[error("writing the image archive failed")]
    Output(#[source] io::Error),
    /// An image that could not be pulled from its registry (the source says why).
    #[error("pulling {reference}")]
    Pull {
        /// The reference, as given.
        reference: String,
        /// What went wrong (boxed: large, and rare).
        #[source]
        source: Box<ArchiveError>,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// A unique name for a temporary file or directory (unique across threads and processes).
fn tmp_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{TMP_PREFIX}{}-{n}-{nanos}", std::process::id())
}

/// The GOARCH name of this machine's architecture.
fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Files put in place by an import that has not committed yet, removed if it fails.
#[derive(Default)]
struct Staged {
    paths: Vec<PathBuf>,
}

impl Staged {
    fn undo(self) {
        for path in self.paths.into_iter().rev() {
            // Best effort: a leftover is an unreferenced file, never a referenced one.
            let _ = remove_tree(&path);
        }
    }
}

/// Removes a file or a directory tree, making directories writable first (a rootless
/// unpack keeps read-only directory modes). A missing path is not an error.
fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    if meta.permissions().mode() & 0o700 != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    }
    for entry in fs::read_dir(path)? {
        remove_tree(&entry?.path())?;
    }
    fs::remove_dir(path)
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err("fsync", dir))
}

/// berth's local image store, open on one data root.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    conn: Connection,
    rules: EntryRules,
    unpacked: u64,
}

impl Store {
    /// Opens the store under `root`, creating its directories and database if needed.
    ///
    /// When no other process holds the store's lock, leftovers of a crashed import
    /// (`.tmp-*` under `blobs/sha256/` and `layers/`) are removed.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let store = Store {
            root: root.to_owned(),
            conn: {
                for dir in [root.join("blobs/sha256"), root.join("layers")] {
                    fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
                }
                db::open(&root.join(DB_FILE))?
            },
            rules: EntryRules {
                rootless: !nix::unistd::geteuid().is_root(),
            },
            unpacked: 0,
        };
        if let Some(_lock) = store.try_lock()? {
            for dir in [store.blob_dir(), store.root.join("layers")] {
                for entry in fs::read_dir(&dir).map_err(io_err("read", &dir))? {
                    let path = entry.map_err(io_err("read", &dir))?.path();
                    let stale = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(TMP_PREFIX));
                    if stale {
                        remove_tree(&path).map_err(io_err("remove", &path))?;
                    }
                }
            }
        }
        Ok(store)
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many layers this handle has unpacked (an import of a known layer unpacks none).
    pub fn layers_unpacked(&self) -> u64 {
        self.unpacked
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    /// Where the blob with this digest is (or would be) stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir().join(digest.hex())
    }

    fn layer_root(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    fn lock_file(&self) -> Result<(File, PathBuf), StoreError> {
        let path = self.root.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        Ok((file, path))
    }

    fn lock(&self) -> Result<Flock<File>, StoreError> {
        let (file, path) = self.lock_file()?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| StoreError::Lock { path, errno })
    }

    fn try_lock(&self) -> Result<Option<Flock<File>>, StoreError> {
        let (file, path) = self.lock_file()?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(lock)),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(StoreError::Lock { path, errno }),
        }
    }

    /// Streams `input` into a temporary blob file, fsync'd; returns its path and digest.
    fn write_temp_blob(&self, mut input: impl Read) -> Result<(PathBuf, Digest), StoreError> {
        let path = self.blob_dir().join(tmp_name());
        let mut file = File::create_new(&path).map_err(io_err("create", &path))?;
        let mut hasher = DigestWriter::new();
        let mut buf = vec![0u8; 64 * 1024];
        let copied = (|| -> io::Result<()> {
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => return file.sync_all(),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])?;
            }
        })();
        if let Err(e) = copied {
            let _ = fs::remove_file(&path);
            return Err(io_err("write", &path)(e));
        }
        Ok((path, hasher.finish()))
    }

    /// Renames a temporary blob to its digest's name (dropping it if that exists already).
    fn place_blob(
        &self,
        tmp: &Path,
        digest: &Digest,
        staged: &mut Staged,
    ) -> Result<(), StoreError> {
        let dest = self.blob_path(digest);
        if dest.exists() {
            fs::remove_file(tmp).map_err(io_err("remove", tmp))?;
            return Ok(());
        }
        fs::rename(tmp, &dest).map_err(io_err("rename", tmp))?;
        staged.paths.push(dest);
        fsync_dir(&self.blob_dir())
    }

    /// The bytes of a blob, checked against its digest.
    pub fn blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NoBlob { digest: *digest });
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(StoreError::CorruptBlob {
                path,
                expected: *digest,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Imports a root file system tar (plain, gzip or zstd) as a one-layer image tagged
    /// `reference`, like `docker import`; the tag's previous image, if any, loses it.
    ///
    /// The layer is unpacked only if the store does not have it yet. Importing the same
    /// archive again gives the same id (the config holds no time). On any error, nothing of
    /// this import is left: no blob, no layer directory, no row.
    pub fn import_rootfs(
        &mut self,
        tar: impl Read,
        reference: &Reference,
    ) -> Result<ImageId, StoreError> {
        if reference.digest().is_some() || reference.tag().is_none() {
            return Err(StoreError::NotATag {
                reference: reference.to_string(),
            });
        }
        let _lock = self.lock()?;
        let mut staged = Staged::default();
        let result = self.import_locked(tar, reference, &mut staged);
        if result.is_err() {
            staged.undo();
        }
        result
    }

    fn import_locked(
        &mut self,
        tar: impl Read,
        reference: &Reference,
        staged: &mut Staged,
    ) -> Result<ImageId, StoreError> {
        let (tmp_blob, blob_digest) = self.write_temp_blob(tar)?;
        staged.paths.push(tmp_blob.clone());
        let known = db::layer_by_blob(&self.conn, &blob_digest)?
            .filter(|(diff_id, _)| self.layer_root(diff_id).join("diff").is_dir());
        let (diff_id, size) = match known {
            Some(layer) => layer,
            None => self.unpack(&tmp_blob, &blob_digest, staged)?,
        };
        self.place_blob(&tmp_blob, &blob_digest, staged)?;

        let config = serde_json::json!({
            "architecture": goarch(),
            "os": "linux",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
            "history": [{ "created_by": "berth import" }],
        })
        .to_string();
        let (tmp_config, config_digest) = self.write_temp_blob(config.as_bytes())?;
        staged.paths.push(tmp_config.clone());
        self.place_blob(&tmp_config, &config_digest, staged)?;
        let id = ImageId(config_digest);

        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let write = db::err("recording the imported image");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&write)?;
        tx.execute(
            "INSERT OR IGNORE INTO layers (diff_id, blob, size) VALUES (?1, ?2, ?3)",
            params![
                diff_id.to_string(),
                blob_digest.to_string(),
                db::size_to_db(size)
            ],
        )
        .map_err(&write)?;
        let new_image = tx
            .execute(
                "INSERT OR IGNORE INTO images (id, config, created) VALUES (?1, ?2, ?3)",
                params![id.to_string(), config, db::size_to_db(created)],
            )
            .map_err(&write)?;
        if new_image == 1 {
            tx.execute(
                "INSERT INTO image_layers (image_id, position, diff_id) VALUES (?1, 0, ?2)",
                params![id.to_string(), diff_id.to_string()],
            )
            .map_err(&write)?;
        }
        tx.execute(
            "INSERT INTO tags (reference, image_id) VALUES (?1, ?2)
             ON CONFLICT (reference) DO UPDATE SET image_id = excluded.image_id",
            params![reference.to_string(), id.to_string()],
        )
        .map_err(&write)?;
        tx.commit().map_err(&write)?;
        Ok(id)
    }

    /// Unpacks the blob at `blob` into a temporary directory and renames it into place;
    /// returns the layer's diff id and uncompressed size.
    fn unpack(
        &mut self,
        blob: &Path,
        digest: &Digest,
        staged: &mut Staged,
    ) -> Result<(Digest, u64), StoreError> {
        let layers = self.root.join("layers");
        let tmp = layers.join(tmp_name());
        let diff = tmp.join("diff");
        fs::create_dir(&tmp).map_err(io_err("create", &tmp))?;
        staged.paths.push(tmp.clone());
        fs::create_dir(&diff).map_err(io_err("create", &diff))?;
        let input = File::open(blob).map_err(io_err("open", blob))?;
        let stats = unpack_layer(
            io::BufReader::new(input),
            None,
            &diff,
            &self.rules,
            Some(digest),
            None,
        )?;
        self.unpacked += 1;
        let dest = self.layer_root(&stats.diff_id);
        if dest.join("diff").is_dir() {
            // Complete (renamed whole) but unrecorded: left by a crash before the commit.
            remove_tree(&tmp).map_err(io_err("remove", &tmp))?;
            return Ok((stats.diff_id, stats.size));
        }
        // A crash leaves the unpacked files in the page cache only: write them out first.
        let dir = File::open(&diff).map_err(io_err("open", &diff))?;
        nix::unistd::syncfs(&dir).map_err(|errno| StoreError::Io {
            op: "syncfs",
            path: diff.clone(),
            source: errno.into(),
        })?;
        fs::rename(&tmp, &dest).map_err(io_err("rename", &tmp))?;
        staged.paths.push(dest);
        fsync_dir(&layers)?;
        Ok((stats.diff_id, stats.size))
    }

    /// Every image, with its tags, creation time and size, sorted by id.
    pub fn images(&self) -> Result<Vec<ImageSummary>, StoreError> {
        let list = db::err("listing images");
        let mut stmt = self
            .conn
            .prepare(
                "SELECT images.id, images.created, COALESCE(SUM(layers.size), 0)
                 FROM images
                 LEFT JOIN image_layers ON image_layers.image_id = images.id
                 LEFT JOIN layers ON layers.diff_id = image_layers.diff_id
                 GROUP BY images.id ORDER BY images.id",
            )
            .map_err(&list)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(&list)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, created, size) = row.map_err(&list)?;
            let id = ImageId(db::digest(&id, "images.id")?);
            let tags = db::tags_of(&self.conn, &id.0)?
                .iter()
                .map(|t| Reference::parse(t))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(ImageSummary {
                id,
                tags,
                created: UNIX_EPOCH + Duration::from_secs(db::size_of(created)),
                size: db::size_of(size),
            });
        }
        Ok(out)
    }

    /// Finds an image by reference (`busybox`, `busybox:1.36`), full id (`sha256:<hex>` or
    /// `<hex>`), or unique id prefix; an ambiguous prefix is an error naming the candidates.
    pub fn resolve(&self, name_or_id_prefix: &str) -> Result<ImageId, StoreError> {
        let unknown = || StoreError::UnknownImage {
            name: name_or_id_prefix.to_owned(),
        };
        let (hex, explicit) = match name_or_id_prefix.strip_prefix("sha256:") {
            Some(hex) => (hex, true),
            None => (name_or_id_prefix, false),
        };
        let is_hex = !hex.is_empty()
            && hex.len() <= 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if is_hex {
            let find = db::err("looking up an image id");
            let mut stmt = self
                .conn
                .prepare("SELECT id FROM images WHERE id LIKE ?1 ORDER BY id")
                .map_err(&find)?;
            let candidates = stmt
                .query_map(params![format!("sha256:{hex}%")], |r| r.get::<_, String>(0))
                .map_err(&find)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(&find)?;
            match candidates.as_slice() {
                [one] => return Ok(ImageId(db::digest(one, "images.id")?)),
                [] => {}
                _ => {
                    return Err(StoreError::AmbiguousPrefix {
                        prefix: name_or_id_prefix.to_owned(),
                        candidates,
                    });
                }
            }
        }
        if explicit || hex.len() == 64 && is_hex {
            return Err(unknown());
        }
        let reference = Reference::parse(name_or_id_prefix)?;
        self.tag_target(&reference)?.ok_or_else(unknown)
    }

    fn tag_target(&self, reference: &Reference) -> Result<Option<ImageId>, StoreError> {
        let target: Option<String> = self
            .conn
            .query_row(
                "SELECT image_id FROM tags WHERE reference = ?1",
                params![reference.to_string()],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(db::err("looking up a tag"))?;
        target
            .map(|t| Ok(ImageId(db::digest(&t, "tags.image_id")?)))
            .transpose()
    }

    /// The directories of an image's layers, bottom first (overlay wants them reversed).
    pub fn layer_dirs(&self, id: &ImageId) -> Result<Vec<PathBuf>, StoreError> {
        if !db::image_exists(&self.conn, &id.0)? {
            return Err(StoreError::UnknownImage {
                name: id.to_string(),
            });
        }
        Ok(db::image_layers(&self.conn, &id.0)?
            .iter()
            .map(|d| self.layer_root(d).join("diff"))
            .collect())
    }

    /// Removes the tag `reference`; returns the image it named (which stays, even untagged).
    pub fn untag(&mut self, reference: &Reference) -> Result<ImageId, StoreError> {
        let write = db::err("removing a tag");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&write)?;
        let target: Option<String> = tx
            .query_row(
                "DELETE FROM tags WHERE reference = ?1 RETURNING image_id",
                params![reference.to_string()],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(&write)?;
        let Some(target) = target else {
            return Err(StoreError::UnknownTag {
                reference: reference.to_string(),
            });
        };
        let id = ImageId(db::digest(&target, "tags.image_id")?);
        tx.commit().map_err(&write)?;
        Ok(id)
    }

    /// Removes an image, its tags, and the layers (directories, blobs, rows) no other image
    /// uses; `users` is how many containers use the image (refused unless `force`), and an
    /// image with several tags is refused unless `force` too.
    pub fn remove_image(
        &mut self,
        id: &ImageId,
        force: bool,
        users: usize,
    ) -> Result<Removal, StoreError> {
        if users > 0 && !force {
            return Err(StoreError::ImageInUse { id: *id, users });
        }
        let _lock = self.lock()?;
        let write = db::err("removing an image");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&write)?;
        if !db::image_exists(&tx, &id.0)? {
            return Err(StoreError::UnknownImage {
                name: id.to_string(),
            });
        }
        let tags = db::tags_of(&tx, &id.0)?;
        if tags.len() > 1 && !force {
            return Err(StoreError::ManyTags { id: *id, tags });
        }
        let layers = db::image_layers(&tx, &id.0)?;
        tx.execute("DELETE FROM images WHERE id = ?1", params![id.to_string()])
            .map_err(&write)?;
        let mut orphans = Vec::new();
        for diff_id in layers {
            let blob: Option<String> = tx
                .query_row(
                    "DELETE FROM layers WHERE diff_id = ?1
                     AND (SELECT users FROM layer_users WHERE diff_id = ?1) = 0
                     RETURNING blob",
                    params![diff_id.to_string()],
                    |r| r.get(0),
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
                .map_err(&write)?;
            if let Some(blob) = blob {
                orphans.push((diff_id, db::digest(&blob, "layers.blob")?));
            }
        }
        tx.commit().map_err(&write)?;

        // The rows are gone: now the files. A crash here leaves only unreferenced files.
        let remove = |path: PathBuf| remove_tree(&path).map_err(io_err("remove", &path));
        remove(self.blob_path(&id.0))?;
        remove(self.manifest_path(id))?;
        let mut deleted_layers = Vec::new();
        for (diff_id, blob) in orphans {
            // Renamed first, so the final name never holds half a layer.
            let dir = self.layer_root(&diff_id);
            let doomed = self.root.join("layers").join(tmp_name());
            match fs::rename(&dir, &doomed) {
                Ok(()) => remove(doomed)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("rename", &dir)(e)),
            }
            remove(self.blob_path(&blob))?;
            deleted_layers.push(diff_id);
        }
        let untagged = tags
            .iter()
            .map(|t| Reference::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Removal {
            untagged,
            deleted_layers,
        })
    }
}
