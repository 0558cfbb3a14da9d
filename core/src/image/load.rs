//! Reading images out of an OCI image layout or a `docker save` archive.
//!
//! The backend opens the archive (a directory, or a tar it indexes) and lends it as a
//! [`BlobSource`]: a function from a path inside it to the bytes there. [`load_images`] then
//! decides everything else, purely:
//! - the format: `index.json` (an OCI layout, also written by `docker save` since docker 25)
//!   is preferred; `manifest.json` (docker's own format) is the fallback;
//! - which manifest of a multi-platform index fits the wanted [`Platform`];
//! - every JSON file it reads is refused if malformed, with the file and the JSON path of
//!   the problem; every blob it reads is checked against its digest and size;
//! - the layers, bottom first, each with the digest the backend must verify while reading
//!   it (the blob's, when known, and always the uncompressed `diff_id` from the config,
//!   whose count must match the layers').
//!
//! Layers are never read here: they can be large, so the backend streams each through a
//! [`DigestWriter`](super::DigestWriter) as it unpacks it.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::digest::{Digest, DigestError};
use super::path::{ArchivePath, PathProblem};
use super::reference::{Reference, ReferenceError};

/// The most bytes of one JSON file (index, manifest, config) a loader reads.
pub const MAX_JSON_SIZE: u64 = 8 << 20;
/// How deep image indexes may nest below `index.json`.
pub const MAX_INDEX_DEPTH: usize = 4;

/// `oci-layout`'s name.
pub const OCI_LAYOUT_FILE: &str = "oci-layout";
/// An OCI layout's index.
pub const INDEX_FILE: &str = "index.json";
/// A `docker save` archive's manifest.
pub const DOCKER_MANIFEST_FILE: &str = "manifest.json";
/// The image layout version berth reads.
pub const OCI_LAYOUT_VERSION: &str = "1.0.0";

/// Annotation with a full image name (containerd, docker 25+).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// Annotation with an OCI layout's reference name (often just a tag).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// OCI and docker media types berth understands.
pub mod media_type {
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// OCI layer, uncompressed.
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    /// OCI layer, gzip.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// OCI layer, zstd.
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// OCI non-distributable layer, uncompressed.
    pub const OCI_LAYER_ND: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    /// OCI non-distributable layer, gzip.
    pub const OCI_LAYER_ND_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    /// OCI non-distributable layer, zstd.
    pub const OCI_LAYER_ND_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
    /// Docker manifest list (v2 schema 2).
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image manifest (v2 schema 2).
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker layer, uncompressed.
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// Docker layer, gzip.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker foreign layer, gzip.
    pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
}

/// Reads files out of an image archive or layout; supplied by the backend.
pub trait BlobSource {
    /// The backend's error (I/O, a truncated tar, …).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The bytes of the file at `path`, `None` if there is no such file. A file larger than
    /// `limit` bytes is an error (the source need not read it to say so).
    fn read(&mut self, path: &ArchivePath, limit: u64) -> Result<Option<Vec<u8>>, Self::Error>;
}

/// An in-memory [`BlobSource`]: a list of (path, bytes). For tests and small archives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemorySource {
    /// The files, by normalised path.
    pub files: std::collections::BTreeMap<ArchivePath, Vec<u8>>,
}

impl MemorySource {
    /// Adds (or replaces) a file; `path` is normalised and must be valid.
    pub fn insert(&mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Result<(), PathProblem> {
        self.files.insert(ArchivePath::parse(path)?, bytes.into());
        Ok(())
    }
}

impl BlobSource for MemorySource {
    type Error = std::convert::Infallible;

    fn read(&mut self, path: &ArchivePath, _limit: u64) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.files.get(path).cloned())
    }
}

/// The os, architecture and variant wanted from a multi-platform index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// Go's `GOOS` (`linux`).
    pub os: String,
    /// Go's `GOARCH` (`amd64`, `arm64`).
    pub architecture: String,
    /// The CPU variant (`v8`), or `None` for any.
    pub variant: Option<String>,
}

impl Platform {
    /// `linux` on `architecture`, any variant.
    pub fn linux(architecture: &str) -> Platform {
        Platform {
            os: "linux".to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
        }
    }

    fn matches(&self, p: &oci_spec::image::Platform) -> bool {
        p.os().to_string() == self.os
            && p.architecture().to_string() == self.architecture
            && match (&self.variant, p.variant()) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Which format an archive was read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// An OCI image layout (`index.json`).
    OciLayout,
    /// A `docker save` archive (`manifest.json`).
    DockerSave,
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// bzip2 (found by magic only; no media type names it).
    Bzip2,
    /// xz (found by magic only).
    Xz,
}

impl Compression {
    /// The compression its first bytes show (docker's magic numbers); a plain tar otherwise.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    /// The compression a layer media type names, `None` if it is not a layer type.
    pub fn of_media_type(media_type: &str) -> Option<Compression> {
        use media_type::*;
        match media_type {
            OCI_LAYER | OCI_LAYER_ND | DOCKER_LAYER => Some(Compression::None),
            OCI_LAYER_GZIP | OCI_LAYER_ND_GZIP | DOCKER_LAYER_GZIP | DOCKER_FOREIGN_LAYER_GZIP => {
                Some(Compression::Gzip)
            }
            OCI_LAYER_ZSTD | OCI_LAYER_ND_ZSTD => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// One layer to unpack: where it is, and what it must hash to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerBlob {
    /// Its file in the archive.
    pub path: ArchivePath,
    /// The digest of the blob as stored (compressed), when the format records it.
    pub digest: Option<Digest>,
    /// Its size as stored, when the format records it.
    pub size: Option<u64>,
    /// The digest of the uncompressed tar, from the config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// The compression its media type names; `None` when there is no media type (docker
    /// archives): the backend then detects it from the magic bytes.
    pub compression: Option<Compression>,
}

/// One image found in an archive.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedImage {
    /// The image id: the digest of its config.
    pub id: Digest,
    /// The digest of its manifest (OCI layouts only).
    pub manifest: Option<Digest>,
    /// The config, parsed.
    pub config: ImageConfiguration,
    /// The config as stored (its digest is [`LoadedImage::id`]); kept verbatim.
    pub config_bytes: Vec<u8>,
    /// The layers, bottom first.
    pub layers: Vec<LayerBlob>,
    /// The names it came with (`RepoTags`, or the `io.containerd.image.name` annotation).
    pub names: Vec<Reference>,
    /// An OCI layout's `org.opencontainers.image.ref.name`, verbatim (often a bare tag).
    pub ref_name: Option<String>,
}

/// The images of one archive.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageArchive {
    /// The format it was read as.
    pub format: ArchiveFormat,
    /// Its images, in the order of its index or manifest.
    pub images: Vec<LoadedImage>,
}

/// An archive that cannot be loaded; each variant names the file (and JSON path) at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError<E: std::error::Error + 'static> {
    /// The blob source failed.
    #[error("{file}: cannot read")]
    Read {
        /// The file being read.
        file: ArchivePath,
        /// The backend's error.
        #[source]
        source: E,
    },
    /// Neither `index.json` nor `manifest.json`.
    #[error("neither index.json nor manifest.json: not an image archive")]
    NotAnArchive,
    /// A file the archive refers to is not there.
    #[error("{file}: missing (referred to by {by})")]
    Missing {
        /// The missing file.
        file: ArchivePath,
        /// The file that refers to it.
        by: ArchivePath,
    },
    /// A JSON file larger than [`MAX_JSON_SIZE`].
    #[error("{file}: {size} bytes, more than the {limit} allowed")]
    TooLarge {
        /// The file.
        file: ArchivePath,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Malformed JSON, or JSON of the wrong shape.
    #[error("{file}: {path}: {problem}")]
    Json {
        /// The file.
        file: ArchivePath,
        /// The JSON path of the problem (`manifests[0].digest`), `.` for the whole.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// A digest in the JSON that berth cannot use (not sha256).
    #[error("{file}: {path}: {source}")]
    BadDigest {
        /// The file.
        file: ArchivePath,
        /// The JSON path of the digest.
        path: String,
        /// Why.
        #[source]
        source: DigestError,
    },
    /// A blob whose content does not match its digest.
    #[error("{file}: corrupt: {source}")]
    Corrupt {
        /// The blob.
        file: ArchivePath,
        /// Expected and actual digests.
        #[source]
        source: DigestError,
    },
    /// A blob whose size is not the one its descriptor gives.
    #[error("{file}: {actual} bytes, its descriptor says {expected}")]
    Size {
        /// The blob.
        file: ArchivePath,
        /// The descriptor's size.
        expected: u64,
        /// The blob's size.
        actual: u64,
    },
    /// A path in the JSON that could leave the archive.
    #[error("{file}: {path}: path {value:?}: {problem}")]
    BadPath {
        /// The file.
        file: ArchivePath,
        /// The JSON path of the value.
        path: String,
        /// The value.
        value: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// An image name that is not a valid reference.
    #[error("{file}: {path}: {source}")]
    BadName {
        /// The file.
        file: ArchivePath,
        /// The JSON path of the name.
        path: String,
        /// Why (boxed: a reference error is large, and rare).
        #[source]
        source: Box<ReferenceError>,
    },
    /// A media type berth does not handle there.
    #[error("{file}: {path}: unsupported media type {media_type:?}")]
    MediaType {
        /// The file.
        file: ArchivePath,
        /// The JSON path of the media type.
        path: String,
        /// The media type.
        media_type: String,
    },
    /// `oci-layout` names another layout version.
    #[error("oci-layout: unsupported imageLayoutVersion {version:?} (expected 1.0.0)")]
    LayoutVersion {
        /// The version found.
        version: String,
    },
    /// `rootfs.type` is not `layers`.
    #[error("{file}: rootfs.type: expected \"layers\", found {found:?}")]
    RootfsType {
        /// The config.
        file: ArchivePath,
        /// The type found.
        found: String,
    },
    /// The config's `rootfs.diff_ids` and the manifest's layers differ in number.
    #[error("{file}: rootfs.diff_ids has {diff_ids} entries, the manifest has {layers} layers")]
    DiffIdCount {
        /// The config.
        file: ArchivePath,
        /// How many diff ids.
        diff_ids: usize,
        /// How many layers.
        layers: usize,
    },
    /// An uncompressed layer whose digest is not its diff id.
    #[error("{file}: layers[{index}]: uncompressed layer {digest} has diff id {diff_id}")]
    DiffIdMismatch {
        /// The manifest.
        file: ArchivePath,
        /// The layer's index.
        index: usize,
        /// The layer's digest.
        digest: Digest,
        /// Its diff id in the config.
        diff_id: Digest,
    },
    /// An index or manifest list with no image for the wanted platform.
    #[error("{file}: no image for platform {platform}")]
    NoPlatform {
        /// The index.
        file: ArchivePath,
        /// The platform wanted.
        platform: String,
    },
    /// Indexes nested deeper than [`MAX_INDEX_DEPTH`].
    #[error("{file}: image indexes nested too deep")]
    TooDeep {
        /// The innermost index reached.
        file: ArchivePath,
    },
    /// An archive that lists no image.
    #[error("{file}: lists no image")]
    Empty {
        /// The index or manifest.
        file: ArchivePath,
    },
}

impl<E: std::error::Error + PartialEq + 'static> PartialEq for LoadError<E> {
    fn eq(&self, other: &Self) -> bool {
        // Compared by message and source: enough for tests, and no derive bound trouble.
        self.to_string() == other.to_string()
            && std::error::Error::source(self).map(ToString::to_string)
                == std::error::Error::source(other).map(ToString::to_string)
    }
}

/// Reads every image of an archive or layout: `index.json` if there is one, else
/// `manifest.json`. From a multi-platform index, the manifest for `platform` is taken.
pub fn load_images<S: BlobSource>(
    source: &mut S,
    platform: &Platform,
) -> Result<ImageArchive, LoadError<S::Error>> {
    let mut loader = Loader { source, platform };
    let index = ArchivePath::parse(INDEX_FILE).expect("a constant valid path");
    if let Some(bytes) = loader.read(&index)? {
        return loader.oci_layout(&index, &bytes);
    }
    let manifest = ArchivePath::parse(DOCKER_MANIFEST_FILE).expect("a constant valid path");
    if let Some(bytes) = loader.read(&manifest)? {
        return loader.docker_save(&manifest, &bytes);
    }
    Err(LoadError::NotAnArchive)
}

/// Parses an OCI image index (as in `index.json`), naming `file` in errors.
pub fn parse_index<E: std::error::Error>(
    file: &ArchivePath,
    bytes: &[u8],
) -> Result<ImageIndex, LoadError<E>> {
    let index: ImageIndex = parse_json(file, bytes)?;
    if let Some(mt) = index.media_type() {
        let mt = mt.to_string();
        if mt != media_type::OCI_INDEX && mt != media_type::DOCKER_LIST {
            return Err(LoadError::MediaType {
                file: file.clone(),
                path: "mediaType".to_owned(),
                media_type: mt,
            });
        }
    }
    Ok(index)
}

/// Parses an image manifest (OCI, or docker v2 schema 2), naming `file` in errors.
pub fn parse_manifest<E: std::error::Error>(
    file: &ArchivePath,
    bytes: &[u8],
) -> Result<ImageManifest, LoadError<E>> {
    let manifest: ImageManifest = parse_json(file, bytes)?;
    if let Some(mt) = manifest.media_type() {
        let mt = mt.to_string();
        if mt != media_type::OCI_MANIFEST && mt != media_type::DOCKER_MANIFEST {
            return Err(LoadError::MediaType {
                file: file.clone(),
                path: "mediaType".to_owned(),
                media_type: mt,
            });
        }
    }
    let cmt = manifest.config().media_type().to_string();
    if cmt != media_type::OCI_CONFIG && cmt != media_type::DOCKER_CONFIG {
        return Err(LoadError::MediaType {
            file: file.clone(),
            path: "config.mediaType".to_owned(),
            media_type: cmt,
        });
    }
    for (i, layer) in manifest.layers().iter().enumerate() {
        let mt = layer.media_type().to_string();
        if Compression::of_media_type(&mt).is_none() {
            return Err(LoadError::MediaType {
                file: file.clone(),
                path: format!("layers[{i}].mediaType"),
                media_type: mt,
            });
        }
    }
    Ok(manifest)
}

/// Parses an image config (OCI or docker) and its `rootfs.diff_ids`, bottom layer first.
pub fn parse_config<E: std::error::Error>(
    file: &ArchivePath,
    bytes: &[u8],
) -> Result<(ImageConfiguration, Vec<Digest>), LoadError<E>> {
    let config: ImageConfiguration = parse_json(file, bytes)?;
    if config.rootfs().typ() != "layers" {
        return Err(LoadError::RootfsType {
            file: file.clone(),
            found: config.rootfs().typ().clone(),
        });
    }
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Digest::parse(d).map_err(|source| LoadError::BadDigest {
                file: file.clone(),
                path: format!("rootfs.diff_ids[{i}]"),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((config, diff_ids))
}

/// One entry of docker's `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerManifestEntry {
    /// The config's file in the archive (`<hex>.json` or `blobs/sha256/<hex>`).
    pub config: String,
    /// The names it was saved under (`busybox:latest`); `null` when saved by id.
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// The layers' files, bottom first (`<id>/layer.tar` or `blobs/sha256/<hex>`).
    pub layers: Vec<String>,
}

/// Parses docker's `manifest.json`, naming `file` in errors.
pub fn parse_docker_manifest<E: std::error::Error>(
    file: &ArchivePath,
    bytes: &[u8],
) -> Result<Vec<DockerManifestEntry>, LoadError<E>> {
    parse_json(file, bytes)
}

/// Deserializes `bytes` as JSON into `T`, errors naming `file` and the JSON path.
fn parse_json<T: DeserializeOwned, E: std::error::Error>(
    file: &ArchivePath,
    bytes: &[u8],
) -> Result<T, LoadError<E>> {
    let json_error = |path: String, problem: String| LoadError::Json {
        file: file.clone(),
        path,
        problem,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        json_error(path, e.into_inner().to_string())
    })?;
    de.end()
        .map_err(|e| json_error(".".to_owned(), e.to_string()))?;
    Ok(value)
}

/// The path of a blob in an OCI layout.
pub fn blob_path(digest: &Digest) -> ArchivePath {
    ArchivePath::parse(&format!("blobs/sha256/{}", digest.hex()))
        .expect("64 hex characters make a valid path")
}

/// The digest a blob's path names: `blobs/sha256/<hex>` or docker's `<hex>.json`.
pub fn digest_of_path(path: &ArchivePath) -> Option<Digest> {
    let name = path.file_name()?;
    if let Some(parent) = path.parent()
        && parent.as_str() == "blobs/sha256"
    {
        return Digest::from_hex(name);
    }
    name.strip_suffix(".json")
        .filter(|_| path.parent().is_some_and(|p| p.is_root()))
        .and_then(Digest::from_hex)
}

struct Loader<'a, S> {
    source: &'a mut S,
    platform: &'a Platform,
}

impl<S: BlobSource> Loader<'_, S> {
    fn read(&mut self, file: &ArchivePath) -> Result<Option<Vec<u8>>, LoadError<S::Error>> {
        let bytes = self
            .source
            .read(file, MAX_JSON_SIZE)
            .map_err(|source| LoadError::Read {
                file: file.clone(),
                source,
            })?;
        if let Some(b) = &bytes
            && b.len() as u64 > MAX_JSON_SIZE
        {
            return Err(LoadError::TooLarge {
                file: file.clone(),
                size: b.len() as u64,
                limit: MAX_JSON_SIZE,
            });
        }
        Ok(bytes)
    }

    fn require(
        &mut self,
        file: &ArchivePath,
        by: &ArchivePath,
    ) -> Result<Vec<u8>, LoadError<S::Error>> {
        self.read(file)?.ok_or_else(|| LoadError::Missing {
            file: file.clone(),
            by: by.clone(),
        })
    }

    /// Reads the blob a descriptor names and checks its digest and size.
    fn blob(
        &mut self,
        descriptor: &Descriptor,
        by: &ArchivePath,
        json_path: &str,
    ) -> Result<(Digest, ArchivePath, Vec<u8>), LoadError<S::Error>> {
        let digest = descriptor_digest(descriptor, by, json_path)?;
        let file = blob_path(&digest);
        let bytes = self.require(&file, by)?;
        if bytes.len() as u64 != descriptor.size() {
            return Err(LoadError::Size {
                file,
                expected: descriptor.size(),
                actual: bytes.len() as u64,
            });
        }
        digest.verify(&bytes).map_err(|source| LoadError::Corrupt {
            file: file.clone(),
            source,
        })?;
        Ok((digest, file, bytes))
    }

    fn oci_layout(
        &mut self,
        index_file: &ArchivePath,
        bytes: &[u8],
    ) -> Result<ImageArchive, LoadError<S::Error>> {
        let layout_file = ArchivePath::parse(OCI_LAYOUT_FILE).expect("a constant valid path");
        // Required by the spec, but absent from some hand-made layouts: checked when present.
        if let Some(layout) = self.read(&layout_file)? {
            let layout: oci_spec::image::OciLayout = parse_json(&layout_file, &layout)?;
            if layout.image_layout_version() != OCI_LAYOUT_VERSION {
                return Err(LoadError::LayoutVersion {
                    version: layout.image_layout_version().clone(),
                });
            }
        }
        let index = parse_index(index_file, bytes)?;
        let mut images = Vec::new();
        for (i, descriptor) in index.manifests().iter().enumerate() {
            let json_path = format!("manifests[{i}]");
            if let Some(p) = descriptor.platform()
                && !self.platform.matches(p)
            {
                continue;
            }
            let Some(mut image) = self.descriptor(descriptor, index_file, &json_path, 0)? else {
                continue;
            };
            let annotations = descriptor.annotations().as_ref();
            if let Some(name) = annotations.and_then(|a| a.get(ANNOTATION_IMAGE_NAME)) {
                let name = Reference::parse(name).map_err(|source| LoadError::BadName {
                    file: index_file.clone(),
                    path: format!("{json_path}.annotations.{ANNOTATION_IMAGE_NAME}"),
                    source: Box::new(source),
                })?;
                image.names.push(name);
            }
            image.ref_name = annotations
                .and_then(|a| a.get(ANNOTATION_REF_NAME))
                .cloned();
            images.push(image);
        }
        if images.is_empty() {
            return Err(if index.manifests().is_empty() {
                LoadError::Empty {
                    file: index_file.clone(),
                }
            } else {
                LoadError::NoPlatform {
                    file: index_file.clone(),
                    platform: self.platform.to_string(),
                }
            });
        }
        Ok(ImageArchive {
            format: ArchiveFormat::OciLayout,
            images,
        })
    }

    /// Follows a descriptor to an image: a manifest directly, an index to the first of its
    /// manifests for the platform. `None` for an index with none for the platform.
    fn descriptor(
        &mut self,
        descriptor: &Descriptor,
        by: &ArchivePath,
        json_path: &str,
        depth: usize,
    ) -> Result<Option<LoadedImage>, LoadError<S::Error>> {
        let (digest, file, bytes) = self.blob(descriptor, by, json_path)?;
        let mt = descriptor.media_type().to_string();
        let is_index = match mt.as_str() {
            media_type::OCI_INDEX | media_type::DOCKER_LIST => true,
            media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST => false,
            _ => {
                return Err(LoadError::MediaType {
                    file: by.clone(),
                    path: format!("{json_path}.mediaType"),
                    media_type: mt,
                });
            }
        };
        if !is_index {
            return self.oci_image(digest, &file, &bytes).map(Some);
        }
        if depth + 1 >= MAX_INDEX_DEPTH {
            return Err(LoadError::TooDeep { file });
        }
        let index = parse_index(&file, &bytes)?;
        for (i, child) in index.manifests().iter().enumerate() {
            if child
                .platform()
                .as_ref()
                .is_some_and(|p| !self.platform.matches(p))
            {
                continue;
            }
            if let Some(image) =
                self.descriptor(child, &file, &format!("manifests[{i}]"), depth + 1)?
            {
                return Ok(Some(image));
            }
        }
        Ok(None)
    }

    fn oci_image(
        &mut self,
        manifest_digest: Digest,
        file: &ArchivePath,
        bytes: &[u8],
    ) -> Result<LoadedImage, LoadError<S::Error>> {
        let manifest = parse_manifest(file, bytes)?;
        let (id, config_file, config_bytes) = self.blob(manifest.config(), file, "config")?;
        let (config, diff_ids) = parse_config(&config_file, &config_bytes)?;
        if diff_ids.len() != manifest.layers().len() {
            return Err(LoadError::DiffIdCount {
                file: config_file,
                diff_ids: diff_ids.len(),
                layers: manifest.layers().len(),
            });
        }
        let mut layers = Vec::with_capacity(diff_ids.len());
        for (i, (layer, diff_id)) in manifest.layers().iter().zip(diff_ids).enumerate() {
            let digest = descriptor_digest(layer, file, &format!("layers[{i}]"))?;
            let compression = Compression::of_media_type(layer.media_type().as_ref());
            if compression == Some(Compression::None) && digest != diff_id {
                return Err(LoadError::DiffIdMismatch {
                    file: file.clone(),
                    index: i,
                    digest,
                    diff_id,
                });
            }
            layers.push(LayerBlob {
                path: blob_path(&digest),
                digest: Some(digest),
                size: Some(layer.size()),
                diff_id,
                compression,
            });
        }
        Ok(LoadedImage {
            id,
            manifest: Some(manifest_digest),
            config,
            config_bytes,
            layers,
            names: Vec::new(),
            ref_name: None,
        })
    }

    fn docker_save(
        &mut self,
        file: &ArchivePath,
        bytes: &[u8],
    ) -> Result<ImageArchive, LoadError<S::Error>> {
        let entries = parse_docker_manifest(file, bytes)?;
        if entries.is_empty() {
            return Err(LoadError::Empty { file: file.clone() });
        }
        let path_in = |value: &str, json_path: String| {
            ArchivePath::parse(value).map_err(|problem| LoadError::BadPath {
                file: file.clone(),
                path: json_path,
                value: value.to_owned(),
                problem,
            })
        };
        let mut images = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let config_file = path_in(&entry.config, format!("[{i}].Config"))?;
            let config_bytes = self.require(&config_file, file)?;
            let id = Digest::of(&config_bytes);
            if let Some(named) = digest_of_path(&config_file) {
                named.check(id).map_err(|source| LoadError::Corrupt {
                    file: config_file.clone(),
                    source,
                })?;
            }
            let (config, diff_ids) = parse_config(&config_file, &config_bytes)?;
            if diff_ids.len() != entry.layers.len() {
                return Err(LoadError::DiffIdCount {
                    file: config_file,
                    diff_ids: diff_ids.len(),
                    layers: entry.layers.len(),
                });
            }
            let mut layers = Vec::with_capacity(diff_ids.len());
            for (j, (layer, diff_id)) in entry.layers.iter().zip(diff_ids).enumerate() {
                let path = path_in(layer, format!("[{i}].Layers[{j}]"))?;
                layers.push(LayerBlob {
                    digest: digest_of_path(&path),
                    path,
                    size: None,
                    diff_id,
                    compression: None,
                });
            }
            let names = entry
                .repo_tags
                .iter()
                .flatten()
                .enumerate()
                .map(|(j, tag)| {
                    Reference::parse(tag).map_err(|source| LoadError::BadName {
                        file: file.clone(),
                        path: format!("[{i}].RepoTags[{j}]"),
                        source: Box::new(source),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            images.push(LoadedImage {
                id,
                manifest: None,
                config,
                config_bytes,
                layers,
                names,
                ref_name: None,
            });
        }
        Ok(ImageArchive {
            format: ArchiveFormat::DockerSave,
            images,
        })
    }
}

/// A descriptor's digest as berth's [`Digest`] (sha256 only).
fn descriptor_digest<E: std::error::Error>(
    descriptor: &Descriptor,
    file: &ArchivePath,
    json_path: &str,
) -> Result<Digest, LoadError<E>> {
    Digest::parse(descriptor.digest().as_ref()).map_err(|source| LoadError::BadDigest {
        file: file.clone(),
        path: format!("{json_path}.digest"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::convert::Infallible;

    type Error = LoadError<Infallible>;

    fn ap(s: &str) -> ArchivePath {
        ArchivePath::parse(s).unwrap()
    }

    /// Builds archives in memory.
    #[derive(Default)]
    struct Fixture {
        src: MemorySource,
    }

    impl Fixture {
        /// Stores `bytes` as a blob; returns its descriptor as JSON.
        fn blob(&mut self, media_type: &str, bytes: &[u8]) -> serde_json::Value {
            let d = Digest::of(bytes);
            self.src.insert(blob_path(&d).as_str(), bytes).unwrap();
            json!({"mediaType": media_type, "digest": d.to_string(), "size": bytes.len()})
        }

        fn config(layers: &[&[u8]]) -> Vec<u8> {
            let diff_ids: Vec<String> = layers.iter().map(|l| Digest::of(l).to_string()).collect();
            serde_json::to_vec(&json!({
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"], "ExposedPorts": {"80/tcp": {}}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "container_config": {"Hostname": "x"}
            }))
            .unwrap()
        }

        /// Stores an image (config + uncompressed layers + manifest); returns the manifest
        /// descriptor.
        fn image(&mut self, layers: &[&[u8]]) -> serde_json::Value {
            let config = self.blob(media_type::OCI_CONFIG, &Self::config(layers));
            let layers: Vec<_> = layers
                .iter()
                .map(|l| self.blob(media_type::OCI_LAYER, l))
                .collect();
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": media_type::OCI_MANIFEST,
                "config": config,
                "layers": layers,
            });
            self.blob(
                media_type::OCI_MANIFEST,
                &serde_json::to_vec(&manifest).unwrap(),
            )
        }

        fn index(&mut self, manifests: Vec<serde_json::Value>) {
            self.src
                .insert("oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#)
                .unwrap();
            let index = json!({"schemaVersion": 2, "manifests": manifests});
            self.src
                .insert("index.json", serde_json::to_vec(&index).unwrap())
                .unwrap();
        }

        fn load(&mut self) -> Result<ImageArchive, Error> {
            load_images(&mut self.src, &Platform::linux("amd64"))
        }
    }

    fn named(mut d: serde_json::Value, name: &str) -> serde_json::Value {
        d["annotations"] = json!({
            ANNOTATION_IMAGE_NAME: name,
            ANNOTATION_REF_NAME: "latest",
        });
        d
    }

    #[test]
    fn oci_layout() {
        let mut f = Fixture::default();
        let m = f.image(&[b"bottom", b"top"]);
        f.index(vec![named(m.clone(), "docker.io/library/busybox:latest")]);
        let archive = f.load().unwrap();
        assert_eq!(archive.format, ArchiveFormat::OciLayout);
        let [image] = &archive.images[..] else {
            panic!("{archive:?}")
        };
        assert_eq!(image.id, Digest::of(&Fixture::config(&[b"bottom", b"top"])));
        assert_eq!(image.id, Digest::of(&image.config_bytes));
        assert_eq!(
            image.manifest.map(|d| d.to_string()).as_deref(),
            m["digest"].as_str()
        );
        let diffs: Vec<Digest> = image.layers.iter().map(|l| l.diff_id).collect();
        assert_eq!(diffs, [Digest::of(b"bottom"), Digest::of(b"top")]);
        assert_eq!(image.layers[0].digest, Some(Digest::of(b"bottom")));
        assert_eq!(image.layers[0].path, blob_path(&Digest::of(b"bottom")));
        assert_eq!(image.layers[0].size, Some(6));
        assert_eq!(image.layers[0].compression, Some(Compression::None));
        assert_eq!(
            image.names,
            [Reference::parse("busybox").unwrap()],
            "{:?}",
            image.names
        );
        assert_eq!(image.ref_name.as_deref(), Some("latest"));
        let cmd = image.config.config().as_ref().and_then(|c| c.cmd().clone());
        assert_eq!(cmd, Some(vec!["sh".to_owned()]));
    }

    #[test]
    fn docker_save_legacy() {
        let mut f = Fixture::default();
        let config = Fixture::config(&[b"l0", b"l1"]);
        let id = Digest::of(&config);
        f.src
            .insert(&format!("{}.json", id.hex()), config.clone())
            .unwrap();
        f.src.insert("aaa/layer.tar", b"l0".to_vec()).unwrap();
        f.src.insert("bbb/layer.tar", b"l1".to_vec()).unwrap();
        let manifest = json!([{
            "Config": format!("{}.json", id.hex()),
            "RepoTags": ["busybox:1.36", "localhost:5000/b:x"],
            "Layers": ["aaa/layer.tar", "bbb/layer.tar"],
        }]);
        f.src
            .insert("manifest.json", serde_json::to_vec(&manifest).unwrap())
            .unwrap();
        let archive = f.load().unwrap();
        assert_eq!(archive.format, ArchiveFormat::DockerSave);
        let image = &archive.images[0];
        assert_eq!(image.id, id);
        assert_eq!(image.manifest, None);
        assert_eq!(
            image.layers,
            [
                LayerBlob {
                    path: ap("aaa/layer.tar"),
                    digest: None,
                    size: None,
                    diff_id: Digest::of(b"l0"),
                    compression: None,
                },
                LayerBlob {
                    path: ap("bbb/layer.tar"),
                    digest: None,
                    size: None,
                    diff_id: Digest::of(b"l1"),
                    compression: None,
                },
            ]
        );
        let names: Vec<String> = image.names.iter().map(Reference::familiar).collect();
        assert_eq!(names, ["busybox:1.36", "localhost:5000/b:x"]);

        // A config whose file name is not its digest is corrupt.
        f.src
            .insert(&format!("{}.json", id.hex()), b"{}".to_vec())
            .unwrap();
        assert!(matches!(
            f.load(),
            Err(LoadError::Corrupt { file, .. }) if file.as_str() == format!("{}.json", id.hex())
        ));
    }

    #[test]
    fn index_json_is_preferred_over_manifest_json() {
        let mut f = Fixture::default();
        let m = f.image(&[b"x"]);
        f.index(vec![m]);
        f.src.insert("manifest.json", b"not json".to_vec()).unwrap();
        assert_eq!(f.load().unwrap().format, ArchiveFormat::OciLayout);
    }

    #[test]
    fn not_an_archive() {
        assert_eq!(Fixture::default().load(), Err(LoadError::NotAnArchive));
    }

    #[test]
    fn malformed_json_names_file_and_path() {
        let mut f = Fixture::default();
        let mut m = f.image(&[b"x"]);
        m["size"] = json!("big");
        f.index(vec![m]);
        let Err(LoadError::Json {
            file,
            path,
            problem,
        }) = f.load()
        else {
            panic!()
        };
        assert_eq!(
            (file.as_str(), path.as_str()),
            ("index.json", "manifests[0].size")
        );
        assert!(problem.contains("invalid type"), "{problem}");

        let mut f = Fixture::default();
        f.src
            .insert("index.json", b"{\"schemaVersion\": 2,".to_vec())
            .unwrap();
        assert!(matches!(f.load(), Err(LoadError::Json { .. })));
        f.src
            .insert(
                "index.json",
                b"{\"schemaVersion\":2,\"manifests\":[]} x".to_vec(),
            )
            .unwrap();
        assert!(matches!(f.load(), Err(LoadError::Json { path, .. }) if path == "."));
        f.src
            .insert(
                "index.json",
                b"{\"schemaVersion\":2,\"manifests\":[]}".to_vec(),
            )
            .unwrap();
        assert_eq!(
            f.load(),
            Err(LoadError::Empty {
                file: ap("index.json")
            })
        );
    }

    #[test]
    fn corrupt_and_truncated_blobs() {
        let mut f = Fixture::default();
        let m = f.image(&[b"x"]);
        f.index(vec![m.clone()]);
        let file = ap(&format!(
            "blobs/sha256/{}",
            m["digest"].as_str().unwrap().trim_start_matches("sha256:")
        ));
        let good = f.src.files[&file].clone();
        let mut bad = good.clone();
        bad[0] = b'[';
        f.src.files.insert(file.clone(), bad);
        assert!(matches!(
            f.load(),
            Err(LoadError::Corrupt { file: f2, source: DigestError::Mismatch { .. } }) if f2 == file
        ));
        f.src.files.insert(file.clone(), good[1..].to_vec());
        assert_eq!(
            f.load(),
            Err(LoadError::Size {
                file: file.clone(),
                expected: good.len() as u64,
                actual: good.len() as u64 - 1
            })
        );
        f.src.files.remove(&file);
        assert_eq!(
            f.load(),
            Err(LoadError::Missing {
                file,
                by: ap("index.json")
            })
        );
    }

    #[test]
    fn diff_ids_must_match_layers() {
        let mut f = Fixture::default();
        let config = f.blob(media_type::OCI_CONFIG, &Fixture::config(&[b"a"]));
        let l1 = f.blob(media_type::OCI_LAYER_GZIP, b"gz1");
        let l2 = f.blob(media_type::OCI_LAYER_GZIP, b"gz2");
        let manifest = json!({"schemaVersion": 2, "config": config, "layers": [l1, l2]});
        let m = f.blob(
            media_type::OCI_MANIFEST,
            &serde_json::to_vec(&manifest).unwrap(),
        );
        f.index(vec![m]);
        assert!(matches!(
            f.load(),
            Err(LoadError::DiffIdCount {
                diff_ids: 1,
                layers: 2,
                ..
            })
        ));
    }

    #[test]
    fn uncompressed_layer_digest_is_its_diff_id() {
        let mut f = Fixture::default();
        let config = f.blob(media_type::OCI_CONFIG, &Fixture::config(&[b"a"]));
        let layer = f.blob(media_type::OCI_LAYER, b"not a");
        let manifest = json!({"schemaVersion": 2, "config": config, "layers": [layer]});
        let m = f.blob(
            media_type::OCI_MANIFEST,
            &serde_json::to_vec(&manifest).unwrap(),
        );
        f.index(vec![m]);
        assert!(matches!(
            f.load(),
            Err(LoadError::DiffIdMismatch { index: 0, .. })
        ));
    }

    #[test]
    fn unknown_media_types_are_refused() {
        let mut f = Fixture::default();
        let config = f.blob(media_type::OCI_CONFIG, &Fixture::config(&[b"a"]));
        let layer = f.blob(
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
            b"a",
        );
        let manifest = json!({"schemaVersion": 2, "config": config, "layers": [layer]});
        let m = f.blob(
            media_type::OCI_MANIFEST,
            &serde_json::to_vec(&manifest).unwrap(),
        );
        f.index(vec![m]);
        assert!(matches!(
            f.load(),
            Err(LoadError::MediaType { path, .. }) if path == "layers[0].mediaType"
        ));
    }

    #[test]
    fn multi_platform_index_picks_the_platform() {
        let mut f = Fixture::default();
        let mut arm = f.image(&[b"arm"]);
        arm["platform"] = json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
        let mut amd = f.image(&[b"amd"]);
        amd["platform"] = json!({"architecture": "amd64", "os": "linux"});
        let mut att = f.image(&[b"att"]);
        att["platform"] = json!({"architecture": "unknown", "os": "unknown"});
        let list = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": [att, arm, amd],
        });
        let list = f.blob(media_type::OCI_INDEX, &serde_json::to_vec(&list).unwrap());
        f.index(vec![named(list, "localhost:5000/multi:1")]);
        let archive = f.load().unwrap();
        let [image] = &archive.images[..] else {
            panic!("{archive:?}")
        };
        assert_eq!(image.layers[0].diff_id, Digest::of(b"amd"));
        assert_eq!(image.names[0].to_string(), "localhost:5000/multi:1");
        let arm64 = load_images(&mut f.src, &Platform::linux("arm64")).unwrap();
        assert_eq!(arm64.images[0].layers[0].diff_id, Digest::of(b"arm"));
        assert_eq!(
            load_images(&mut f.src, &Platform::linux("s390x")),
            Err(LoadError::NoPlatform {
                file: ap("index.json"),
                platform: "linux/s390x".into()
            })
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let mut f = Fixture::default();
        let mut d = f.image(&[b"x"]);
        for _ in 0..MAX_INDEX_DEPTH {
            let list = json!({"schemaVersion": 2, "manifests": [d]});
            d = f.blob(media_type::OCI_INDEX, &serde_json::to_vec(&list).unwrap());
        }
        f.index(vec![d]);
        assert!(matches!(f.load(), Err(LoadError::TooDeep { .. })));
    }

    #[test]
    fn docker_paths_and_names_are_checked() {
        let mut f = Fixture::default();
        let manifest = json!([{"Config": "../../etc/shadow", "RepoTags": null, "Layers": []}]);
        f.src
            .insert("manifest.json", serde_json::to_vec(&manifest).unwrap())
            .unwrap();
        assert_eq!(
            f.load(),
            Err(LoadError::BadPath {
                file: ap("manifest.json"),
                path: "[0].Config".into(),
                value: "../../etc/shadow".into(),
                problem: PathProblem::Escapes
            })
        );
        let config = Fixture::config(&[]);
        f.src.insert("c.json", config).unwrap();
        let manifest = json!([{"Config": "c.json", "RepoTags": ["Bad:tag"], "Layers": []}]);
        f.src
            .insert("manifest.json", serde_json::to_vec(&manifest).unwrap())
            .unwrap();
        assert!(matches!(
            f.load(),
            Err(LoadError::BadName { path, .. }) if path == "[0].RepoTags[0]"
        ));
        let manifest = json!([{"Config": "c.json", "Layers": ["/abs/layer.tar"]}]);
        f.src
            .insert("manifest.json", serde_json::to_vec(&manifest).unwrap())
            .unwrap();
        assert!(matches!(f.load(), Err(LoadError::DiffIdCount { .. })));
        let manifest = json!([{"Config": "c.json", "Layers": []}]);
        f.src
            .insert("manifest.json", serde_json::to_vec(&manifest).unwrap())
            .unwrap();
        let image = &f.load().unwrap().images[0];
        assert!(image.layers.is_empty() && image.names.is_empty());
    }

    #[test]
    fn config_rootfs_is_checked() {
        let file = ap("c.json");
        let bad_type =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"x","diff_ids":[]}}"#;
        assert_eq!(
            parse_config::<Infallible>(&file, bad_type).map(|_| ()),
            Err(LoadError::RootfsType {
                file: file.clone(),
                found: "x".into()
            })
        );
        let bad_id = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha512:00"]}}"#;
        assert!(matches!(
            parse_config::<Infallible>(&file, bad_id),
            Err(LoadError::BadDigest { path, .. }) if path == "rootfs.diff_ids[0]"
        ));
        let missing = br#"{"architecture":"amd64","os":"linux"}"#;
        assert!(matches!(
            parse_config::<Infallible>(&file, missing),
            Err(LoadError::Json { problem, .. }) if problem.contains("rootfs")
        ));
    }

    #[test]
    fn layout_version_is_checked() {
        let mut f = Fixture::default();
        let m = f.image(&[b"x"]);
        f.index(vec![m]);
        f.src
            .insert("oci-layout", r#"{"imageLayoutVersion":"2.0.0"}"#)
            .unwrap();
        assert_eq!(
            f.load(),
            Err(LoadError::LayoutVersion {
                version: "2.0.0".into()
            })
        );
    }

    #[test]
    fn compression_by_magic_and_media_type() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(Compression::detect(b"\xfd7zXZ\x00\x00"), Compression::Xz);
        assert_eq!(Compression::detect(b"etc/passwd\0"), Compression::None);
        assert_eq!(Compression::detect(b""), Compression::None);
        assert_eq!(
            Compression::of_media_type(media_type::DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::of_media_type(media_type::OCI_LAYER_ZSTD),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::of_media_type(media_type::OCI_CONFIG), None);
    }

    #[test]
    fn digest_of_path_reads_blob_and_config_names() {
        let d = Digest::of(b"x");
        assert_eq!(digest_of_path(&blob_path(&d)), Some(d));
        assert_eq!(digest_of_path(&ap(&format!("{}.json", d.hex()))), Some(d));
        assert_eq!(digest_of_path(&ap(&format!("a/{}.json", d.hex()))), None);
        assert_eq!(digest_of_path(&ap("abc/layer.tar")), None);
    }

    #[test]
    fn docker_v2_schema2_manifest_parses() {
        let file = ap("m");
        let d = Digest::of(b"x");
        let m = json!({
            "schemaVersion": 2,
            "mediaType": media_type::DOCKER_MANIFEST,
            "config": {"mediaType": media_type::DOCKER_CONFIG, "size": 1, "digest": d.to_string()},
            "layers": [{"mediaType": media_type::DOCKER_LAYER_GZIP, "size": 1, "digest": d.to_string()}],
        });
        let parsed = parse_manifest::<Infallible>(&file, &serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(parsed.layers().len(), 1);
        let mut wrong = m.clone();
        wrong["mediaType"] = json!("application/vnd.oci.artifact.manifest.v1+json");
        assert!(matches!(
            parse_manifest::<Infallible>(&file, &serde_json::to_vec(&wrong).unwrap()),
            Err(LoadError::MediaType { path, .. }) if path == "mediaType"
        ));
    }
}
