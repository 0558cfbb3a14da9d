//! `berth load -i`: the images of a `docker save` archive or an OCI image layout (a
//! directory, or a tar of one; the tar itself plain, gzip or zstd) into the store.
//!
//! Core's [`load_images`] reads the archive's JSON through a [`BlobSource`] (an index of
//! the tar, or the directory opened beneath its root) and says which images there are and
//! what each layer must hash to. Here each layer the store lacks is copied into a blob
//! (its digest checked against its descriptor's), unpacked once into `layers/<diff id>`
//! (its diff id checked against the config's), and the config (and an OCI manifest, under
//! `manifests/<image id hex>`, so `save` can write it back) kept; then one transaction
//! records every image, layer and tag.
//!
//! Invariant: a load is all or nothing. On any error every file it put in place is removed
//! and no row is written, so the store is as it was. `berth pull` goes through the same
//! path (see `pull.rs`): a registry is one more `Source`, so the same checks hold.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_core::image::{
    ArchivePath, BlobSource, Compression, Digest, DigestError, LayerBlob, LoadError, LoadedImage,
    MAX_JSON_SIZE, Platform, Reference, blob_path, load_images,
};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::pull::{RemoteError, RemoteLayout};
use super::tarindex::{TarIndexError, TarSource};
use super::{ImageId, Staged, Store, StoreError, db, goarch, io_err, tmp_name};
use crate::layer::{LayerError, ZstdFrames};

/// The directory under the root that keeps OCI manifests, one file per image id.
const MANIFEST_DIR: &str = "manifests";

/// One image [`Store::load`] stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadSummary {
    /// Its id.
    pub id: ImageId,
    /// The tags the archive gave it, now pointing at it (none: it was loaded untagged).
    pub tags: Vec<Reference>,
}

/// What one layer of a load or pull is doing, as [`Progress`] is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerEvent {
    /// The store has the layer already: nothing of it is read.
    Exists,
    /// Reading (downloading) its blob starts; its size, when known.
    Start {
        /// The blob's size in bytes.
        size: Option<u64>,
    },
    /// So many more bytes of its blob were read.
    Read(u64),
    /// Its blob is read and its digest checked; unpacking starts.
    Unpacking,
    /// Unpacked, its diff id checked.
    Done,
}

/// Told what each layer of a load or pull does, as it happens (the CLI draws progress
/// bars from it). A layer is named by its blob's digest, or by its diff id where the
/// archive does not give the blob's.
pub trait Progress {
    /// Layer `layer` reports `event`.
    fn layer(&mut self, layer: &Digest, event: LayerEvent);
}

/// A [`Progress`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn layer(&mut self, _layer: &Digest, _event: LayerEvent) {}
}

/// A reader that tells [`Progress`] how many bytes went through it.
struct Counting<'a, R> {
    inner: R,
    layer: Digest,
    progress: &'a mut dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.progress.layer(&self.layer, LayerEvent::Read(n as u64));
        }
        Ok(n)
    }
}

/// Where the images of a load come from, as errors name it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Origin<'a> {
    /// An archive or layout on disk.
    File(&'a Path),
    /// A remote (`berth pull`), by the reference pulled.
    Remote(&'a Reference),
}

impl Origin<'_> {
    /// `source`, said of this origin.
    fn err(self, source: ArchiveError) -> StoreError {
        match self {
            Origin::File(path) => StoreError::Archive {
                path: path.to_owned(),
                source: Box::new(source),
            },
            Origin::Remote(reference) => StoreError::Pull {
                reference: reference.familiar(),
                source: Box::new(source),
            },
        }
    }
}

/// Why a file of an archive or layout could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file of a tar archive.
    #[error(transparent)]
    Tar(#[from] TarIndexError),
    /// A file of a layout directory.
    #[error("{path}: {call} failed")]
    Dir {
        /// The file, inside the directory.
        path: ArchivePath,
        /// The call that failed.
        call: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file larger than the reader allows.
    #[error("{path}: {size} bytes, more than the {limit} allowed")]
    TooLarge {
        /// The file.
        path: ArchivePath,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A manifest or blob of a remote (a registry): the remote's error names it.
    #[error(transparent)]
    Remote(RemoteError),
}

/// Why an archive or layout could not be loaded; each variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An archive compressed in a way berth does not read.
    #[error("archive compressed with {compression:?}: not supported (gzip, zstd or plain tar)")]
    Compression {
        /// The compression its magic bytes show.
        compression: Compression,
    },
    /// Decompressing the archive into a temporary file failed.
    #[error("decompressing the archive failed")]
    Decompress(#[source] io::Error),
    /// The archive is not a tar, or is cut short, or names a path that could leave it.
    #[error(transparent)]
    Index(TarIndexError),
    /// Core's reader refused the archive's JSON or one of its blobs (the message names it).
    #[error(transparent)]
    Images(#[from] LoadError<SourceError>),
    /// A layer the manifest names is not in the archive.
    #[error("{file}: missing (a layer of image {image})")]
    MissingLayer {
        /// The layer's file.
        file: ArchivePath,
        /// The image that needs it.
        image: Digest,
    },
    /// A layer file whose size is not its descriptor's.
    #[error("{file}: {actual} bytes, its descriptor says {expected}")]
    LayerSize {
        /// The layer's file.
        file: ArchivePath,
        /// The descriptor's size.
        expected: u64,
        /// The file's size.
        actual: u64,
    },
    /// A layer blob whose content does not match its digest.
    #[error("{file}: corrupt layer blob")]
    LayerDigest {
        /// The layer's file.
        file: ArchivePath,
        /// Expected and actual digests.
        #[source]
        source: DigestError,
    },
    /// A layer whose uncompressed tar does not have the diff id the config gives.
    #[error("{file}: uncompressed layer does not match the config's diff id")]
    DiffId {
        /// The layer's file.
        file: ArchivePath,
        /// Expected and actual digests.
        #[source]
        source: DigestError,
    },
    /// A layer that could not be unpacked (a refused entry, a truncated tar, …).
    #[error("{file}: unpacking the layer failed")]
    Layer {
        /// The layer's file.
        file: ArchivePath,
        /// Why (it names the entry).
        #[source]
        source: LayerError,
    },
    /// Reading a file of the archive failed.
    #[error("{file}: reading failed")]
    Read {
        /// The file.
        file: ArchivePath,
        /// Why.
        #[source]
        source: SourceError,
    },
    /// An image config that is not UTF-8 text (the database keeps configs as text).
    #[error("config of image {image}: not UTF-8")]
    ConfigText {
        /// The image.
        image: Digest,
    },
    /// The remote (a registry) failed: its error says how.
    #[error(transparent)]
    Remote(RemoteError),
    /// A pulled manifest larger than berth reads.
    #[error("the manifest: {size} bytes, more than the {limit} allowed")]
    ManifestSize {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

/// An OCI layout directory, read beneath its root (symlinks may not leave it).
#[derive(Debug)]
pub(super) struct DirSource {
    root: OwnedFd,
}

impl DirSource {
    fn open(&self, path: &ArchivePath) -> Result<Option<(File, u64)>, SourceError> {
        let fail = |call: &'static str| {
            move |source: io::Error| SourceError::Dir {
                path: path.clone(),
                call,
                source,
            }
        };
        // O_NONBLOCK: a FIFO where a blob should be must not hang the load.
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = match openat2(&self.root, path.as_str(), how) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
            Err(errno) => return Err(fail("openat2")(errno.into())),
        };
        let file = File::from(fd);
        let meta = file.metadata().map_err(fail("fstat"))?;
        if !meta.is_file() {
            return Ok(None);
        }
        Ok(Some((file, meta.len())))
    }
}

/// A reader of one file of an archive, and its size when known.
pub(super) type Opened<'a> = Option<(Box<dyn Read + 'a>, Option<u64>)>;

/// Where an archive's files come from.
#[derive(Debug)]
pub(super) enum Source<'a> {
    /// An OCI layout directory.
    Dir(DirSource),
    /// A tar archive, indexed.
    Tar(TarSource<File>),
    /// A remote, seen as an OCI layout of one image (see `pull.rs`).
    Remote(RemoteLayout<'a>),
}

impl Source<'_> {
    /// A reader of the file at `path`, and its size; `None` if there is none.
    fn open(&mut self, path: &ArchivePath) -> Result<Opened<'_>, SourceError> {
        Ok(match self {
            Source::Dir(dir) => dir.open(path)?.map(|(file, size)| {
                // Never more than it had when opened, should it grow meanwhile.
                (Box::new(file.take(size)) as Box<dyn Read>, Some(size))
            }),
            Source::Tar(tar) => tar
                .open(path)?
                .map(|(reader, size)| (Box::new(reader) as Box<dyn Read>, Some(size))),
            Source::Remote(remote) => remote.open(path)?,
        })
    }
}

impl BlobSource for Source<'_> {
    type Error = SourceError;

    fn read(&mut self, path: &ArchivePath, limit: u64) -> Result<Option<Vec<u8>>, SourceError> {
        match self {
            Source::Tar(tar) => return Ok(tar.read(path, limit)?),
            Source::Remote(remote) => return remote.read(path, limit),
            Source::Dir(_) => {}
        }
        let Some((mut reader, Some(size))) = self.open(path)? else {
            return Ok(None);
        };
        if size > limit {
            return Err(SourceError::TooLarge {
                path: path.clone(),
                size,
                limit,
            });
        }
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|source| SourceError::Dir {
                path: path.clone(),
                call: "read",
                source,
            })?;
        Ok(Some(bytes))
    }
}

/// The tags a loaded image gets: its names (`RepoTags`, `io.containerd.image.name`), or
/// else an `org.opencontainers.image.ref.name` that is a whole name (it holds a `:` or a
/// `/`; a bare `latest` names no repository). Names pinning a digest are not tags.
fn tags_for(image: &LoadedImage) -> Vec<Reference> {
    let is_tag = |r: &Reference| r.digest().is_none() && r.tag().is_some();
    let mut tags: Vec<Reference> = image.names.iter().filter(|r| is_tag(r)).cloned().collect();
    if tags.is_empty()
        && let Some(name) = &image.ref_name
        && (name.contains(':') || name.contains('/'))
        && let Ok(reference) = Reference::parse(name)
        && is_tag(&reference)
    {
        tags.push(reference);
    }
    tags.sort();
    tags.dedup();
    tags
}

impl Store {
    /// Loads every image of a `docker save` archive or an OCI image layout at `path`, like
    /// `docker load -i`; returns the images stored, in archive order, each with its tags.
    ///
    /// `path` is a layout directory, or a tar (plain, gzip or zstd) of either format;
    /// `index.json` is preferred, `manifest.json` the fallback. Layers (plain, gzip or zstd,
    /// told by their magic bytes) the store lacks are unpacked once, digests checked while
    /// reading. A tag the archive names moves to the loaded image. On any error nothing of
    /// this load is left: no blob, no layer directory, no row.
    pub fn load(&mut self, path: &Path) -> Result<Vec<LoadSummary>, StoreError> {
        self.load_with_progress(path, &mut NoProgress)
    }

    /// [`Store::load`], telling `progress` what each layer does.
    pub fn load_with_progress(
        &mut self,
        path: &Path,
        progress: &mut dyn Progress,
    ) -> Result<Vec<LoadSummary>, StoreError> {
        let _lock = self.lock()?;
        let mut source = self.open_source(path)?;
        let mut staged = Staged::default();
        let result = self.load_locked(&mut source, Origin::File(path), &mut staged, progress);
        if result.is_err() {
            staged.undo();
        }
        result
    }

    /// Where the OCI manifest an image was loaded with is kept (if it was).
    pub(super) fn manifest_path(&self, id: &ImageId) -> PathBuf {
        self.root.join(MANIFEST_DIR).join(id.0.hex())
    }

    /// Opens the archive or layout at `path` for reading: a directory beneath its root, a
    /// tar by index. A compressed tar is decompressed first, and a stream that is not a
    /// regular file (a pipe, `/dev/stdin`) copied first, into a temporary file of the
    /// store's own (unlinked at once, so even a crash leaves nothing of it).
    fn open_source(&self, path: &Path) -> Result<Source<'static>, StoreError> {
        let archive = |source| StoreError::Archive {
            path: path.to_owned(),
            source: Box::new(source),
        };
        let meta = fs::metadata(path).map_err(io_err("stat", path))?;
        if meta.is_dir() {
            let root = nix::fcntl::open(
                path,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|errno| io_err("open", path)(errno.into()))?;
            return Ok(Source::Dir(DirSource { root }));
        }
        let mut file = File::open(path).map_err(io_err("open", path))?;
        if !meta.is_file() {
            let (mut copy, tmp) = self.unlinked_temp()?;
            io::copy(&mut file, &mut copy).map_err(io_err("copy", path))?;
            copy.seek(SeekFrom::Start(0))
                .map_err(io_err("seek", &tmp))?;
            file = copy;
        }
        let mut head = [0u8; 6];
        let mut got = 0;
        while got < head.len() {
            match file.read_at(&mut head[got..], got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("read", path)(e)),
            }
        }
        let mut decoded: Box<dyn Read> = match Compression::detect(&head[..got]) {
            Compression::None => {
                let tar = TarSource::new(file).map_err(|e| archive(ArchiveError::Index(e)))?;
                return Ok(Source::Tar(tar));
            }
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
            Compression::Zstd => Box::new(ZstdFrames::new(BufReader::new(file))),
            compression @ (Compression::Bzip2 | Compression::Xz) => {
                return Err(archive(ArchiveError::Compression { compression }));
            }
        };
        // A tar needs random access: decompress it into a file, then index that.
        let (mut plain, tmp) = self.unlinked_temp()?;
        io::copy(&mut decoded, &mut plain).map_err(|e| archive(ArchiveError::Decompress(e)))?;
        plain
            .seek(SeekFrom::Start(0))
            .map_err(io_err("seek", &tmp))?;
        let tar = TarSource::new(plain).map_err(|e| archive(ArchiveError::Index(e)))?;
        Ok(Source::Tar(tar))
    }

    /// A new temporary file under the store's root, open for reading and writing, its
    /// name already removed; the name is returned for error messages only.
    fn unlinked_temp(&self) -> Result<(File, PathBuf), StoreError> {
        let tmp = self.blob_dir().join(tmp_name());
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        fs::remove_file(&tmp).map_err(io_err("remove", &tmp))?;
        Ok((file, tmp))
    }

    /// Stores the images `source` holds (the store's lock held); on error, what it put in
    /// place is in `staged`, for the caller to undo.
    pub(super) fn load_locked(
        &mut self,
        source: &mut Source<'_>,
        origin: Origin<'_>,
        staged: &mut Staged,
        progress: &mut dyn Progress,
    ) -> Result<Vec<LoadSummary>, StoreError> {
        let archive_err = |source| origin.err(source);
        let archive = load_images(source, &Platform::linux(goarch())).map_err(|e| match e {
            // A remote's own failure is said as such, not as a file of the layout.
            LoadError::Read {
                source: SourceError::Remote(e),
                ..
            } => archive_err(ArchiveError::Remote(e)),
            e => archive_err(ArchiveError::Images(e)),
        })?;

        // Each layer once, even when several images (or tags) share it.
        let mut layers: HashMap<Digest, (Digest, u64)> = HashMap::new();
        for image in &archive.images {
            for layer in &image.layers {
                if layers.contains_key(&layer.diff_id) {
                    continue;
                }
                let shown = layer.digest.unwrap_or(layer.diff_id);
                let stored = match self.known_layer(&layer.diff_id)? {
                    Some(known) => {
                        progress.layer(&shown, LayerEvent::Exists);
                        known
                    }
                    None => self.load_layer(source, image, layer, origin, staged, progress)?,
                };
                layers.insert(layer.diff_id, stored);
            }
            let (tmp, digest) = self.write_temp_blob(&image.config_bytes[..])?;
            staged.paths.push(tmp.clone());
            self.place_blob(&tmp, &digest, staged)?;
            if let Some(manifest) = &image.manifest {
                self.keep_manifest(source, &ImageId(image.id), manifest, origin, staged)?;
            }
        }

        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let write = db::err("recording the loaded images");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&write)?;
        let mut summaries: Vec<LoadSummary> = Vec::new();
        for image in &archive.images {
            let id = ImageId(image.id);
            let config = std::str::from_utf8(&image.config_bytes)
                .map_err(|_| archive_err(ArchiveError::ConfigText { image: image.id }))?;
            for layer in &image.layers {
                let (blob, size) = layers
                    .get(&layer.diff_id)
                    .expect("every layer was stored above");
                tx.execute(
                    "INSERT OR IGNORE INTO layers (diff_id, blob, size) VALUES (?1, ?2, ?3)",
                    params![
                        layer.diff_id.to_string(),
                        blob.to_string(),
                        db::size_to_db(*size)
                    ],
                )
                .map_err(&write)?;
            }
            let new_image = tx
                .execute(
                    "INSERT OR IGNORE INTO images (id, config, created) VALUES (?1, ?2, ?3)",
                    params![id.to_string(), config, db::size_to_db(created)],
                )
                .map_err(&write)?;
            if new_image == 1 {
                for (position, layer) in image.layers.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO image_layers (image_id, position, diff_id)
                         VALUES (?1, ?2, ?3)",
                        params![
                            id.to_string(),
                            db::size_to_db(position as u64),
                            layer.diff_id.to_string()
                        ],
                    )
                    .map_err(&write)?;
                }
            }
            let tags = tags_for(image);
            for tag in &tags {
                tx.execute(
                    "INSERT INTO tags (reference, image_id) VALUES (?1, ?2)
                     ON CONFLICT (reference) DO UPDATE SET image_id = excluded.image_id",
                    params![tag.to_string(), id.to_string()],
                )
                .map_err(&write)?;
            }
            // One summary per image, even when the archive lists it once per tag.
            match summaries.iter_mut().find(|s| s.id == id) {
                Some(summary) => {
                    summary.tags.extend(tags);
                    summary.tags.sort();
                    summary.tags.dedup();
                }
                None => summaries.push(LoadSummary { id, tags }),
            }
        }
        tx.commit().map_err(&write)?;
        Ok(summaries)
    }

    /// The blob and size of a layer the store has (row and directory), by diff id.
    fn known_layer(&self, diff_id: &Digest) -> Result<Option<(Digest, u64)>, StoreError> {
        let row: Option<(String, i64)> = self
            .conn
            .query_row(
                "SELECT blob, size FROM layers WHERE diff_id = ?1",
                params![diff_id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db::err("looking up a layer"))?;
        let Some((blob, size)) = row else {
            return Ok(None);
        };
        if !self.layer_root(diff_id).join("diff").is_dir() {
            return Ok(None);
        }
        Ok(Some((db::digest(&blob, "layers.blob")?, db::size_of(size))))
    }

    /// Copies one layer out of the archive into a blob (checking its digest and size),
    /// unpacks it (checking its diff id) and puts both in place; returns (blob, size).
    fn load_layer(
        &mut self,
        source: &mut Source<'_>,
        image: &LoadedImage,
        layer: &LayerBlob,
        origin: Origin<'_>,
        staged: &mut Staged,
        progress: &mut dyn Progress,
    ) -> Result<(Digest, u64), StoreError> {
        let file = &layer.path;
        let shown = layer.digest.unwrap_or(layer.diff_id);
        let archive_err = |source| origin.err(source);
        let opened = source.open(file).map_err(|source| {
            archive_err(ArchiveError::Read {
                file: file.clone(),
                source,
            })
        })?;
        let Some((reader, actual)) = opened else {
            return Err(archive_err(ArchiveError::MissingLayer {
                file: file.clone(),
                image: image.id,
            }));
        };
        if let (Some(expected), Some(actual)) = (layer.size, actual)
            && expected != actual
        {
            return Err(archive_err(ArchiveError::LayerSize {
                file: file.clone(),
                expected,
                actual,
            }));
        }
        progress.layer(
            &shown,
            LayerEvent::Start {
                size: actual.or(layer.size),
            },
        );
        // A stream of unknown length is cut one byte past the descriptor's size: a longer
        // blob cannot match its digest anyway, and must not fill the disk first.
        let limit = layer.size.map_or(u64::MAX, |s| s.saturating_add(1));
        let counted = Counting {
            inner: reader.take(limit),
            layer: shown,
            progress: &mut *progress,
        };
        let (tmp, blob) = self.write_temp_blob(counted)?;
        staged.paths.push(tmp.clone());
        if let Some(expected) = &layer.digest {
            expected.check(blob).map_err(|source| {
                archive_err(ArchiveError::LayerDigest {
                    file: file.clone(),
                    source,
                })
            })?;
        }
        progress.layer(&shown, LayerEvent::Unpacking);
        let (diff_id, size) = match self.unpack(&tmp, &blob, staged) {
            Ok(unpacked) => unpacked,
            Err(StoreError::Layer(source)) => {
                return Err(archive_err(ArchiveError::Layer {
                    file: file.clone(),
                    source,
                }));
            }
            Err(e) => return Err(e),
        };
        layer.diff_id.check(diff_id).map_err(|source| {
            archive_err(ArchiveError::DiffId {
                file: file.clone(),
                source,
            })
        })?;
        self.place_blob(&tmp, &blob, staged)?;
        progress.layer(&shown, LayerEvent::Done);
        Ok((blob, size))
    }

    /// Keeps the OCI manifest an image came with (unless one is kept already), so `save`
    /// can write it back and the image keeps its manifest digest.
    fn keep_manifest(
        &self,
        source: &mut Source<'_>,
        id: &ImageId,
        manifest: &Digest,
        origin: Origin<'_>,
        staged: &mut Staged,
    ) -> Result<(), StoreError> {
        let dest = self.manifest_path(id);
        if dest.is_file() {
            return Ok(());
        }
        let file = blob_path(manifest);
        let read_err = |source| {
            origin.err(ArchiveError::Read {
                file: file.clone(),
                source,
            })
        };
        // Core read and checked it already; read again, and check again.
        let Some(bytes) = source.read(&file, MAX_JSON_SIZE).map_err(read_err)? else {
            return Ok(());
        };
        if Digest::of(&bytes) != *manifest {
            return Ok(());
        }
        let dir = self.root.join(MANIFEST_DIR);
        match fs::create_dir(&dir) {
            // Made by this load: removed again if it fails.
            Ok(()) => staged.paths.push(dir.clone()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create", &dir)(e)),
        }
        let (tmp, _) = self.write_temp_blob(&bytes[..])?;
        staged.paths.push(tmp.clone());
        fs::rename(&tmp, &dest).map_err(io_err("rename", &tmp))?;
        staged.paths.push(dest);
        super::fsync_dir(&dir)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::ffi::CString;
    use std::os::fd::AsFd;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    use super::*;
    use crate::sys;

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(u64::from(nix::unistd::geteuid().as_raw()));
        h.set_gid(u64::from(nix::unistd::getegid().as_raw()));
        h.set_mtime(1_600_000_000);
        h.set_size(size);
        h
    }

    fn layer(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            b.append_data(&mut header(*kind, data.len() as u64), path, *data)
                .unwrap();
        }
        b.into_inner().unwrap()
    }

    /// The opaque marker becomes the xattr the store's rules name (which only a unit test
    /// can read: the xattr call is private to the crate).
    #[test]
    fn opaque_marker_becomes_the_xattr() {
        use tar::EntryType::{Directory, Regular};
        let lower = layer(&[
            ("etc/", Directory, b""),
            ("etc/keep", Regular, b"k"),
            ("etc/gone", Regular, b"g"),
        ]);
        let upper = layer(&[
            ("etc/", Directory, b""),
            ("etc/.wh.gone", Regular, b""),
            ("etc/.wh..wh..opq", Regular, b""),
            ("etc/new", Regular, b"n"),
        ]);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": goarch(), "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [
                Digest::of(&lower).to_string(), Digest::of(&upper).to_string()]},
        }))
        .unwrap();
        let id = Digest::of(&config);
        let manifest = serde_json::json!([{
            "Config": format!("{}.json", id.hex()),
            "RepoTags": ["unit:test"],
            "Layers": ["a/layer.tar", "b/layer.tar"],
        }]);
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in [
            (format!("{}.json", id.hex()), config),
            ("a/layer.tar".to_owned(), lower),
            ("b/layer.tar".to_owned(), upper),
            (
                "manifest.json".to_owned(),
                serde_json::to_vec(&manifest).unwrap(),
            ),
        ] {
            b.append_data(
                &mut header(tar::EntryType::Regular, data.len() as u64),
                path,
                &data[..],
            )
            .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar");
        fs::write(&archive, b.into_inner().unwrap()).unwrap();
        let mut store = Store::open(&dir.path().join("store")).unwrap();
        let loaded = store.load(&archive).unwrap();
        assert_eq!(loaded[0].id, ImageId(id));
        let dirs = store.layer_dirs(&loaded[0].id).unwrap();
        let etc = File::open(dirs[1].join("etc")).unwrap();
        let name = CString::new(store.rules.opaque_xattr()).unwrap();
        assert_eq!(sys::fgetxattr(etc.as_fd(), &name).unwrap(), b"y");
        let wh = fs::symlink_metadata(dirs[1].join("etc/gone")).unwrap();
        assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
        assert!(fs::symlink_metadata(dirs[1].join("etc/.wh..wh..opq")).is_err());
        let lower_etc = File::open(dirs[0].join("etc")).unwrap();
        assert!(sys::fgetxattr(lower_etc.as_fd(), &name).is_err());
    }
}
