//! The pure image model: digests, references, image archives and layouts, layer entries.
//!
//! What an engine needs to know about images before it touches a disk:
//! - [`Digest`]: `sha256:<hex>` content addresses, computed with [`Digest::of`] or a
//!   streaming [`DigestWriter`];
//! - [`Reference`]: `busybox`, `localhost:5000/team/app:v1@sha256:…`, parsed and normalised
//!   as docker does;
//! - [`load_images`]: the images of an OCI layout or a `docker save` archive, read through a
//!   [`BlobSource`] the backend supplies, every blob read checked against its digest, layers
//!   bottom first with the digests the backend must check while streaming them;
//! - [`LayerChecker`]: what to do with each entry of a layer tar (overlay-form whiteouts,
//!   opaque directories, refusal of paths that leave the layer, of device nodes when rootless,
//!   of entries under the layer's own symlinks).
//!
//! Invariant: like all of core, nothing here performs I/O; the backend reads and writes, and
//! asks this module what the bytes mean and what to do with them.

mod digest;
mod entry;
mod load;
mod path;
mod reference;

pub use digest::{Digest, DigestError, DigestWriter, SHA256};
pub use entry::{
    DeviceKind, Entry, EntryError, EntryKind, EntryRules, LayerChecker, OPAQUE_MARKER,
    OPAQUE_USER_XATTR, OPAQUE_VALUE, OPAQUE_XATTR, SkipReason, TarEntry, WHITEOUT_META_PREFIX,
    WHITEOUT_PREFIX, classify_entry,
};
pub use load::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, ArchiveFormat, BlobSource, Compression,
    DOCKER_MANIFEST_FILE, DockerManifestEntry, INDEX_FILE, ImageArchive, LayerBlob, LoadError,
    LoadedImage, MAX_INDEX_DEPTH, MAX_JSON_SIZE, MemorySource, OCI_LAYOUT_FILE, OCI_LAYOUT_VERSION,
    Platform, blob_path, digest_of_path, load_images, media_type, parse_config,
    parse_docker_manifest, parse_index, parse_manifest,
};
pub use path::{ArchivePath, MAX_NAME_LEN, MAX_PATH_LEN, PathProblem};
pub use reference::{
    DEFAULT_DOMAIN, DEFAULT_TAG, MAX_REPOSITORY_LEN, MAX_TAG_LEN, OFFICIAL_NAMESPACE, Reference,
    ReferenceError,
};
