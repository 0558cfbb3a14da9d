//! `berth pull`, the store's side: an image from a [`RemoteSource`] (a registry, reached by
//! the engine's own client) stored through the very path of `berth load`.
//!
//! The remote is read as if it were an OCI layout holding one manifest, the one the
//! reference names: its `index.json` is made here, naming that manifest (and the
//! reference, so the image gets its tag; a pull by digest tags nothing), and its
//! `blobs/sha256/<hex>` are asked of the remote, as manifests for the manifests an index
//! names, as blobs otherwise. Core's reader then picks the manifest for this platform and
//! checks every manifest and config against its digest; each layer the store lacks is
//! streamed into a temporary blob while its digest is computed, checked, unpacked once,
//! its diff id checked; one transaction records the image and its tag.
//!
//! Invariant: as a load, a pull is all or nothing. On any error (the remote's, a digest, a
//! layer) every file it put in place is removed and no row is written.
//!
//! The registry client itself lives in the engine binary, so that the runtime binary,
//! which links this crate, links no HTTP stack.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use berth_core::image::{
    ANNOTATION_IMAGE_NAME, ArchivePath, Digest, INDEX_FILE, MAX_JSON_SIZE, Reference,
    digest_of_path, media_type,
};
use serde_json::{Value, json};

use super::load::{ArchiveError, Opened, Origin, Progress, Source, SourceError};
use super::{ImageId, Staged, Store, StoreError, db};

/// A remote's own error, whatever its client (it names what failed).
pub type RemoteError = Box<dyn std::error::Error + Send + Sync>;

/// What the store asks a remote for: a manifest (or index), or a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteKind {
    /// A manifest or an index (a registry's `/v2/<name>/manifests/<digest>`).
    Manifest,
    /// A config or a layer (a registry's `/v2/<name>/blobs/<digest>`).
    Blob,
}

/// Where a pull fetches an image's manifests and blobs from; the engine implements it
/// over a registry. The store checks every byte it gets against its digest itself.
pub trait RemoteSource {
    /// The bytes of manifest or blob `digest`; `None` if the remote has no such thing.
    /// More than `limit` bytes is an error (the remote need not read them all to say so).
    fn fetch(
        &mut self,
        digest: &Digest,
        kind: RemoteKind,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError>;

    /// A reader of blob `digest` (a layer, possibly large), and its size when the remote
    /// says it; `None` if the remote has no such blob.
    fn open(&mut self, digest: &Digest) -> Result<RemoteBlob<'_>, RemoteError>;
}

/// A reader of a remote blob and its size when known, or `None`: no such blob.
pub type RemoteBlob<'a> = Option<(Box<dyn Read + 'a>, Option<u64>)>;

/// A remote seen as an OCI layout of one image: what `Source::Remote` reads.
pub(super) struct RemoteLayout<'a> {
    /// The made-up `index.json`.
    index: Vec<u8>,
    /// Manifests fetched so far, by digest.
    manifests: HashMap<Digest, Vec<u8>>,
    /// The manifests the fetched indexes name: fetched as manifests, not blobs.
    children: HashSet<Digest>,
    remote: &'a mut dyn RemoteSource,
}

impl std::fmt::Debug for RemoteLayout<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteLayout")
            .field("manifests", &self.manifests.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl RemoteLayout<'_> {
    /// Keeps a fetched manifest, and notes the manifests it names if it is an index.
    fn keep(&mut self, digest: Digest, bytes: Vec<u8>) -> Vec<u8> {
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let Some(list) = value.get("manifests").and_then(Value::as_array) {
            self.children.extend(
                list.iter()
                    .filter_map(|m| m.get("digest").and_then(Value::as_str))
                    .filter_map(|d| Digest::parse(d).ok()),
            );
        }
        self.manifests.insert(digest, bytes.clone());
        bytes
    }

    /// The bytes of the layout's file at `path`, at most `limit` of them.
    pub(super) fn read(
        &mut self,
        path: &ArchivePath,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        if path.as_str() == INDEX_FILE {
            return Ok(Some(self.index.clone()));
        }
        let Some(digest) = blob_digest(path) else {
            return Ok(None);
        };
        if let Some(bytes) = self.manifests.get(&digest) {
            return Ok(Some(bytes.clone()));
        }
        if self.children.contains(&digest) {
            let fetched = self
                .remote
                .fetch(&digest, RemoteKind::Manifest, limit)
                .map_err(SourceError::Remote)?;
            return Ok(fetched.map(|bytes| self.keep(digest, bytes)));
        }
        self.remote
            .fetch(&digest, RemoteKind::Blob, limit)
            .map_err(SourceError::Remote)
    }

    /// A reader of the layout's blob at `path`, and its size when known.
    pub(super) fn open(&mut self, path: &ArchivePath) -> Result<Opened<'_>, SourceError> {
        let Some(digest) = blob_digest(path) else {
            return Ok(None);
        };
        self.remote.open(&digest).map_err(SourceError::Remote)
    }
}

/// The digest a path of the made-up layout names (`blobs/sha256/<hex>` only).
fn blob_digest(path: &ArchivePath) -> Option<Digest> {
    path.as_str()
        .starts_with("blobs/sha256/")
        .then(|| digest_of_path(path))
        .flatten()
}

/// The media type of a manifest's bytes: its `mediaType`, or what its shape says (an
/// index has `manifests`).
pub fn manifest_media_type(bytes: &[u8]) -> String {
    let value: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    match value.get("mediaType").and_then(Value::as_str) {
        Some(mt) => mt.to_owned(),
        None if value.get("manifests").is_some() => media_type::OCI_INDEX.to_owned(),
        // Not JSON at all: core's reader says what is wrong with it.
        None => media_type::OCI_MANIFEST.to_owned(),
    }
}

/// What [`Store::pull`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullSummary {
    /// The image's id.
    pub id: ImageId,
    /// The digest of the manifest (or, for a multi-platform image, the index) the
    /// reference names: what `docker pull` prints as `Digest:`.
    pub digest: Digest,
    /// The tag now pointing at the image (none for a pull by digest).
    pub tag: Option<Reference>,
    /// How many layers were downloaded (and unpacked): the others were in the store.
    pub layers_fetched: u64,
    /// Nothing changed: the image was there already (under that tag, for a tag).
    pub up_to_date: bool,
}

impl Store {
    /// Stores the image `reference` names, like `docker pull`: `manifest` is what the
    /// registry gave for the reference, `remote` gives the rest. From an index, the
    /// manifest for this machine's platform (`linux/<arch>`) is taken. The image is tagged
    /// with the reference (untagged when it pins a digest). Layers the store has are not
    /// fetched; the others are, each digest-checked as it arrives, then unpacked once. On
    /// any error nothing of this pull is left: no blob, no layer directory, no row.
    pub fn pull(
        &mut self,
        reference: &Reference,
        manifest: &[u8],
        remote: &mut dyn RemoteSource,
        progress: &mut dyn Progress,
    ) -> Result<PullSummary, StoreError> {
        let pull_err = |source| StoreError::Pull {
            reference: reference.familiar(),
            source: Box::new(source),
        };
        if manifest.len() as u64 > MAX_JSON_SIZE {
            return Err(pull_err(ArchiveError::ManifestSize {
                size: manifest.len() as u64,
                limit: MAX_JSON_SIZE,
            }));
        }
        // By digest, the digest asked for: core checks the bytes against it.
        let digest = reference
            .digest()
            .copied()
            .unwrap_or_else(|| Digest::of(manifest));
        let mut descriptor = json!({
            "mediaType": manifest_media_type(manifest),
            "digest": digest.to_string(),
            "size": manifest.len(),
        });
        if reference.digest().is_none() {
            // The name `load` tags an image with.
            descriptor["annotations"] = json!({ ANNOTATION_IMAGE_NAME: reference.to_string() });
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": [descriptor],
        });
        let mut layout = RemoteLayout {
            index: serde_json::to_vec(&index).expect("a JSON value serializes"),
            manifests: HashMap::new(),
            children: HashSet::new(),
            remote,
        };
        layout.keep(digest, manifest.to_vec());

        let _lock = self.lock()?;
        let tagged_before = match reference.digest() {
            None => self.tag_target(reference)?,
            Some(_) => None,
        };
        let ids_before = self.image_ids()?;
        let unpacked_before = self.unpacked;
        let mut source = Source::Remote(layout);
        let mut staged = Staged::default();
        let loaded = match self.load_locked(
            &mut source,
            Origin::Remote(reference),
            &mut staged,
            progress,
        ) {
            Ok(loaded) => loaded,
            Err(e) => {
                staged.undo();
                return Err(e);
            }
        };
        let summary = loaded
            .into_iter()
            .next()
            .expect("core's reader gives an image or an error");
        let layers_fetched = self.unpacked - unpacked_before;
        let id = summary.id;
        let tag = summary.tags.into_iter().next();
        let up_to_date = layers_fetched == 0
            && match &tag {
                Some(_) => tagged_before == Some(id),
                None => ids_before.contains(&id.to_string()),
            };
        Ok(PullSummary {
            id,
            digest,
            tag,
            layers_fetched,
            up_to_date,
        })
    }

    /// The ids of every image.
    fn image_ids(&self) -> Result<HashSet<String>, StoreError> {
        let list = db::err("listing images");
        let mut stmt = self.conn.prepare("SELECT id FROM images").map_err(&list)?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(&list)?
            .collect::<Result<HashSet<_>, _>>()
            .map_err(&list)?;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_bytes() {
        assert_eq!(
            manifest_media_type(br#"{"mediaType":"x","manifests":[]}"#),
            "x"
        );
        assert_eq!(
            manifest_media_type(br#"{"schemaVersion":2,"manifests":[]}"#),
            media_type::OCI_INDEX
        );
        assert_eq!(
            manifest_media_type(br#"{"schemaVersion":2,"layers":[]}"#),
            media_type::OCI_MANIFEST
        );
        assert_eq!(manifest_media_type(b"not json"), media_type::OCI_MANIFEST);
    }

    #[test]
    fn only_blob_paths_name_digests() {
        let hex = "a".repeat(64);
        let p = ArchivePath::parse(&format!("blobs/sha256/{hex}")).unwrap();
        assert_eq!(blob_digest(&p), Digest::from_hex(&hex));
        let p = ArchivePath::parse(&format!("{hex}.json")).unwrap();
        assert_eq!(blob_digest(&p), None);
        assert_eq!(
            blob_digest(&ArchivePath::parse("index.json").unwrap()),
            None
        );
    }
}
