//! `berth save`: images out of the store as one tar that is both a `docker save` archive
//! (`manifest.json`) and an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`),
//! as docker 25 and later write it, so `docker load`, `skopeo` and `berth load` all read it.
//!
//! Blobs are written as stored (a layer stays compressed if it came so), each checked
//! against its digest as it is copied. An image keeps the OCI manifest it was loaded with
//! when that manifest still describes the stored blobs; otherwise one is made from them.
//! The archive is deterministic: the same images and names give the same bytes.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use berth_core::image::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, ArchivePath, Compression, DOCKER_MANIFEST_FILE,
    Digest, DigestWriter, INDEX_FILE, OCI_LAYOUT_FILE, OCI_LAYOUT_VERSION, Reference, media_type,
    parse_manifest,
};
use rusqlite::params;
use serde_json::{Value, json};

use super::{ImageId, Store, StoreError, db, io_err};

/// What pushing an image sends: its config, its layers' blobs, its manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageParts {
    /// The image's id (its config's digest).
    pub id: ImageId,
    /// The config's bytes.
    pub config: Vec<u8>,
    /// The layers' blobs as stored (digest, size), bottom first; [`Store::blob`] reads one.
    pub layers: Vec<(Digest, u64)>,
    /// The manifest: the one the image came with if it still names these blobs, else one
    /// made as `save` makes it.
    pub manifest: Vec<u8>,
}

/// A blob to copy into the archive from the store.
struct Blob {
    digest: Digest,
    path: PathBuf,
    file: File,
    size: u64,
}

/// One image to write: its names, config, layers (bottom first) and manifest.
struct Saved {
    id: ImageId,
    tags: Vec<Reference>,
    config: Vec<u8>,
    layers: Vec<Blob>,
    manifest: Vec<u8>,
}

/// The output, remembering its own failure (to tell it from a failure to read a blob).
struct Sink<W> {
    inner: W,
    error: Option<io::Error>,
}

impl<W> Sink<W> {
    /// Keeps the output's error; the archive writer gets a copy.
    fn keep(&mut self, e: io::Error) -> io::Error {
        let copy = io::Error::new(e.kind(), e.to_string());
        self.error = Some(e);
        copy
    }
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.keep(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.keep(e))
    }
}

/// A reader that hashes and counts what it reads.
struct Hashing<R> {
    inner: R,
    hasher: DigestWriter,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The layer media type for a blob compressed as `compression`.
fn layer_media_type(compression: Compression) -> &'static str {
    match compression {
        Compression::Gzip => media_type::OCI_LAYER_GZIP,
        Compression::Zstd => media_type::OCI_LAYER_ZSTD,
        // bzip2 and xz layers are never stored: unpacking refuses them.
        Compression::None | Compression::Bzip2 | Compression::Xz => media_type::OCI_LAYER,
    }
}

fn blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

impl Store {
    /// Writes the images `names` name (tags, ids or id prefixes, as [`Store::resolve`]
    /// takes them) to `out` as a tar that is both a `docker save` archive and an OCI image
    /// layout, like `docker save`. An image named by a tag is saved with that tag; one
    /// named by id without one. Loading the archive gives back the same image ids.
    pub fn save(&self, names: &[&str], out: impl Write) -> Result<(), StoreError> {
        let mut wanted: Vec<(ImageId, Vec<Reference>)> = Vec::new();
        for name in names {
            let id = self.resolve(name)?;
            let tag = match Reference::parse(name) {
                Ok(r) if r.digest().is_none() && self.tag_target(&r)? == Some(id) => Some(r),
                _ => None,
            };
            match wanted.iter_mut().find(|(w, _)| *w == id) {
                Some((_, tags)) => tags.extend(tag.filter(|t| !tags.contains(t))),
                None => wanted.push((id, tag.into_iter().collect())),
            }
        }
        // Every blob is opened before anything is written: a concurrent `rmi` can no
        // longer take it away (an open file outlives its name).
        let images = wanted
            .into_iter()
            .map(|(id, tags)| self.saved(id, tags))
            .collect::<Result<Vec<_>, _>>()?;
        let mut sink = Sink {
            inner: out,
            error: None,
        };
        match write_archive(&images, &mut sink) {
            Ok(()) => sink.flush().map_err(StoreError::Output),
            Err(Failure::Io(e)) => Err(match sink.error.take() {
                Some(write) => StoreError::Output(write),
                None => StoreError::Io {
                    op: "read",
                    path: self.blob_dir(),
                    source: e,
                },
            }),
            Err(Failure::Store(e)) => Err(e),
        }
    }

    /// What pushing image `name` (a tag, id or id prefix) sends to a registry.
    pub fn image_parts(&self, name: &str) -> Result<ImageParts, StoreError> {
        let id = self.resolve(name)?;
        let saved = self.saved(id, Vec::new())?;
        Ok(ImageParts {
            id,
            config: saved.config,
            layers: saved.layers.iter().map(|b| (b.digest, b.size)).collect(),
            manifest: saved.manifest,
        })
    }

    /// Gathers what saving one image writes.
    fn saved(&self, id: ImageId, tags: Vec<Reference>) -> Result<Saved, StoreError> {
        let config = self.blob(&id.0)?;
        let mut layers = Vec::new();
        let mut media_types = Vec::new();
        for diff_id in db::image_layers(&self.conn, &id.0)? {
            let blob: String = self
                .conn
                .query_row(
                    "SELECT blob FROM layers WHERE diff_id = ?1",
                    params![diff_id.to_string()],
                    |r| r.get(0),
                )
                .map_err(db::err("looking up a layer"))?;
            let digest = db::digest(&blob, "layers.blob")?;
            let path = self.blob_path(&digest);
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(StoreError::NoBlob { digest });
                }
                Err(e) => return Err(io_err("open", &path)(e)),
            };
            let size = file.metadata().map_err(io_err("stat", &path))?.len();
            let mut head = [0u8; 6];
            let got = file.read_at(&mut head, 0).map_err(io_err("read", &path))?;
            media_types.push(layer_media_type(Compression::detect(&head[..got])));
            layers.push(Blob {
                digest,
                path,
                file,
                size,
            });
        }
        let manifest = match self.kept_manifest(&id, config.len() as u64, &layers, &media_types) {
            Some(kept) => kept,
            None => {
                let descriptors: Vec<Value> = layers
                    .iter()
                    .zip(&media_types)
                    .map(|(l, mt)| {
                        json!({"mediaType": mt, "digest": l.digest.to_string(), "size": l.size})
                    })
                    .collect();
                serde_json::to_vec(&json!({
                    "schemaVersion": 2,
                    "mediaType": media_type::OCI_MANIFEST,
                    "config": {
                        "mediaType": media_type::OCI_CONFIG,
                        "digest": id.to_string(),
                        "size": config.len(),
                    },
                    "layers": descriptors,
                }))
                .expect("a JSON value serializes")
            }
        };
        Ok(Saved {
            id,
            tags,
            config,
            layers,
            manifest,
        })
    }

    /// The manifest the image was loaded with, if it still names exactly these blobs.
    fn kept_manifest(
        &self,
        id: &ImageId,
        config_size: u64,
        layers: &[Blob],
        media_types: &[&str],
    ) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.manifest_path(id)).ok()?;
        let manifest = parse_manifest::<Infallible>(&ArchivePath::root(), &bytes).ok()?;
        let same_config = Digest::parse(manifest.config().digest().as_ref()).ok() == Some(id.0)
            && manifest.config().size() == config_size;
        let same_layers = manifest.layers().len() == layers.len()
            && manifest
                .layers()
                .iter()
                .zip(layers.iter().zip(media_types))
                .all(|(d, (blob, mt))| {
                    Digest::parse(d.digest().as_ref()).ok() == Some(blob.digest)
                        && d.size() == blob.size
                        && Compression::of_media_type(d.media_type().as_ref())
                            == Compression::of_media_type(mt)
                });
        (same_config && same_layers).then_some(bytes)
    }
}

/// Why writing the archive stopped.
enum Failure {
    Io(io::Error),
    Store(StoreError),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

fn write_archive<W: Write>(images: &[Saved], out: &mut W) -> Result<(), Failure> {
    let mut tar = tar::Builder::new(out);
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    let mut index = Vec::new();
    let mut manifest_json = Vec::new();
    for dir in ["blobs/", "blobs/sha256/"] {
        tar.append_data(&mut header(tar::EntryType::Directory, 0), dir, io::empty())?;
    }
    let mut small = |tar: &mut tar::Builder<&mut W>, bytes: &[u8]| -> io::Result<Digest> {
        let digest = Digest::of(bytes);
        if written.insert(digest) {
            tar.append_data(
                &mut header(tar::EntryType::Regular, bytes.len() as u64),
                blob_name(&digest),
                bytes,
            )?;
        }
        Ok(digest)
    };
    let mut layer_files: Vec<&Blob> = Vec::new();
    for image in images {
        small(&mut tar, &image.config)?;
        let manifest = small(&mut tar, &image.manifest)?;
        layer_files.extend(&image.layers);
        let descriptor = |annotations: Option<Value>| {
            let mut d = json!({
                "mediaType": media_type::OCI_MANIFEST,
                "digest": manifest.to_string(),
                "size": image.manifest.len(),
            });
            if let Some(a) = annotations {
                d["annotations"] = a;
            }
            d
        };
        if image.tags.is_empty() {
            index.push(descriptor(None));
        }
        for tag in &image.tags {
            index.push(descriptor(Some(json!({
                ANNOTATION_IMAGE_NAME: tag.to_string(),
                ANNOTATION_REF_NAME: tag.tag().unwrap_or_default(),
            }))));
        }
        let repo_tags: Option<Vec<String>> =
            (!image.tags.is_empty()).then(|| image.tags.iter().map(Reference::familiar).collect());
        manifest_json.push(json!({
            "Config": blob_name(&image.id.0),
            "RepoTags": repo_tags,
            "Layers": image.layers.iter().map(|l| blob_name(&l.digest)).collect::<Vec<_>>(),
        }));
    }
    for blob in layer_files {
        if !written.insert(blob.digest) {
            continue;
        }
        let mut reader = Hashing {
            inner: (&blob.file).take(blob.size),
            hasher: DigestWriter::new(),
        };
        tar.append_data(
            &mut header(tar::EntryType::Regular, blob.size),
            blob_name(&blob.digest),
            &mut reader,
        )?;
        let copied = reader.hasher.written();
        let actual = reader.hasher.finish();
        if copied != blob.size || actual != blob.digest {
            return Err(Failure::Store(StoreError::CorruptBlob {
                path: blob.path.clone(),
                expected: blob.digest,
                actual,
            }));
        }
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": index,
    });
    let layout = json!({ "imageLayoutVersion": OCI_LAYOUT_VERSION });
    for (name, value) in [
        (INDEX_FILE, index),
        (DOCKER_MANIFEST_FILE, Value::Array(manifest_json)),
        (OCI_LAYOUT_FILE, layout),
    ] {
        let bytes = serde_json::to_vec(&value).expect("a JSON value serializes");
        tar.append_data(
            &mut header(tar::EntryType::Regular, bytes.len() as u64),
            name,
            &bytes[..],
        )?;
    }
    tar.into_inner()?;
    Ok(())
}
