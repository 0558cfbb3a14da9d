//! The engine's registry client: the OCI distribution API through the oci-client crate, on
//! a current-thread tokio runtime this synchronous code drives call by call.
//!
//! [`Registry::resolve`] fetches the manifest a reference names; the [`Registry`] then
//! serves the store's pull ([`RemoteSource`]): manifests from `/v2/<name>/manifests/<digest>`,
//! blobs from `/v2/<name>/blobs/<digest>`, layers streamed. The store checks every byte
//! against its digest, so nothing here is trusted. [`push`] sends a stored image: the blobs
//! the registry lacks, then the manifest under the tag.
//!
//! It lives in the engine binary, never in the store's crate, so that the runtime binary
//! links no HTTP or TLS code. Registries on loopback (`localhost`, 127.0.0.0/8, `[::1]`)
//! are spoken to in plain HTTP, as docker does by default; every other one over HTTPS
//! (rustls with ring, the system's roots).

use std::future::poll_fn;
use std::io::{self, Read};
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use berth_backend_linux::store::{
    LayerEvent, Progress, RemoteBlob, RemoteError, RemoteKind, RemoteSource, Store, StoreError,
    manifest_media_type,
};
use berth_core::image::{DEFAULT_TAG, Digest, MAX_JSON_SIZE, Reference, media_type};
use futures_util::Stream;
use oci_client::client::{ClientConfig, ClientProtocol, SizedStream};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use tokio::runtime::Runtime;

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a registry may stay silent in the middle of a response.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// The manifest media types a pull accepts (docker schema 1 is not among them).
const ACCEPTED: &[&str] = &[
    media_type::OCI_INDEX,
    media_type::OCI_MANIFEST,
    media_type::DOCKER_LIST,
    media_type::DOCKER_MANIFEST,
];

/// Who the engine says it is to a registry.
#[derive(Clone, Default)]
pub(crate) enum Credentials {
    /// Nobody (a registry that asks for a token gets an anonymous one).
    #[default]
    Anonymous,
    /// HTTP basic authentication, or the credentials of a token request.
    #[allow(dead_code)]
    // Not reachable from the CLI until there is a credential store (`berth login`).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A bearer token, sent as it is.
    #[allow(dead_code)]
    // Not reachable from the CLI until there is a credential store (`berth login`).
    Bearer {
        /// The token.
        token: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never a secret in a log line.
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username:?}, ***)"),
            Credentials::Bearer { .. } => f.write_str("Bearer(***)"),
        }
    }
}

/// Why a registry could not give (or take) what a pull (or push) needs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegistryError {
    /// The runtime the client runs on could not be made.
    #[error("starting the registry client's runtime failed")]
    Runtime(#[source] io::Error),
    /// The HTTP client could not be set up.
    #[error("setting up the registry client failed")]
    Client(#[source] OciDistributionError),
    /// The registry could not be reached, or refused the credentials.
    #[error("contacting registry {registry} failed")]
    Connect {
        /// The registry (`host[:port]`).
        registry: String,
        /// Why.
        #[source]
        source: OciDistributionError,
    },
    /// The registry has no manifest by that tag or digest (or no such repository).
    #[error("the registry has no manifest {name} in {repository}")]
    NotFound {
        /// The tag or digest.
        name: String,
        /// The repository.
        repository: String,
        /// The registry's answer.
        #[source]
        source: OciDistributionError,
    },
    /// Fetching a manifest failed.
    #[error("fetching manifest {name} failed")]
    Manifest {
        /// The tag or digest.
        name: String,
        /// Why.
        #[source]
        source: OciDistributionError,
    },
    /// Fetching a blob failed.
    #[error("fetching blob {digest} failed")]
    Blob {
        /// The blob.
        digest: Digest,
        /// Why.
        #[source]
        source: OciDistributionError,
    },
    /// Reading a blob's bytes failed midway.
    #[error("reading blob {digest} failed")]
    Read {
        /// The blob.
        digest: Digest,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A manifest or config larger than berth reads.
    #[error("{digest}: more than the {limit} bytes allowed")]
    TooLarge {
        /// The manifest or blob.
        digest: String,
        /// The limit.
        limit: u64,
    },
    /// Uploading a blob failed.
    #[error("uploading blob {digest} failed")]
    Upload {
        /// The blob.
        digest: Digest,
        /// Why.
        #[source]
        source: OciDistributionError,
    },
    /// Uploading the manifest failed.
    #[error("uploading the manifest as {name} failed")]
    PushManifest {
        /// The tag.
        name: String,
        /// Why.
        #[source]
        source: OciDistributionError,
    },
    /// A manifest whose media type cannot be an HTTP header value.
    #[error("manifest media type {media_type:?} is not a valid Content-Type")]
    MediaType {
        /// The media type.
        media_type: String,
    },
    /// The image to push is not in the store, or its blobs cannot be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether the registry said it has no such thing (rather than failing to say).
fn not_found(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::BlobUnknown
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        _ => false,
    }
}

/// Whether a registry host is on loopback, where docker speaks plain HTTP by default.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A runtime, and a client of `registry`: plain HTTP on loopback, HTTPS elsewhere.
fn connect(registry: &str) -> Result<(Runtime, Client), RegistryError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RegistryError::Runtime)?;
    // reqwest is built without a default crypto provider: ring's, once per process (a
    // second install finds it there, which is fine).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let protocol = if is_loopback(registry) {
        ClientProtocol::HttpsExcept(vec![registry.to_owned()])
    } else {
        ClientProtocol::Https
    };
    let config = ClientConfig {
        protocol,
        // The store picks the platform's manifest from an index, as for `load`.
        platform_resolver: None,
        // A blob goes up in one request (the store has it whole), not in chunks.
        use_monolithic_push: true,
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        ..ClientConfig::default()
    };
    let client = Client::try_from(config).map_err(RegistryError::Client)?;
    Ok((runtime, client))
}

/// oci-client's form of the credentials.
fn registry_auth(credentials: &Credentials) -> RegistryAuth {
    match credentials {
        Credentials::Anonymous => RegistryAuth::Anonymous,
        Credentials::Basic { username, password } => {
            RegistryAuth::Basic(username.clone(), password.clone())
        }
        Credentials::Bearer { token } => RegistryAuth::Bearer(token.clone()),
    }
}

/// The registry's reference to `digest` in `reference`'s repository.
fn remote_ref(reference: &Reference, digest: &str) -> oci_client::Reference {
    oci_client::Reference::with_digest(
        reference.domain().to_owned(),
        reference.path().to_owned(),
        digest.to_owned(),
    )
}

/// The registry's reference to `reference`'s tag (`latest` when it has none).
fn tag_ref(reference: &Reference) -> (oci_client::Reference, String) {
    let tag = reference.tag().unwrap_or(DEFAULT_TAG).to_owned();
    let remote = oci_client::Reference::with_tag(
        reference.domain().to_owned(),
        reference.path().to_owned(),
        tag.clone(),
    );
    (remote, tag)
}

/// A connection to the registry of one reference, authenticated.
pub(crate) struct Registry {
    reference: Reference,
    runtime: Runtime,
    client: Client,
    auth: RegistryAuth,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("reference", &self.reference)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Connects to the registry of `reference` as `credentials` (for `operation`).
    fn connect(
        reference: &Reference,
        credentials: &Credentials,
        operation: RegistryOperation,
    ) -> Result<Registry, RegistryError> {
        let registry = reference.domain().to_owned();
        let (runtime, client) = connect(&registry)?;
        let auth = registry_auth(credentials);
        let (remote, _) = tag_ref(reference);
        // The token handshake, if the registry asks for one; also the first contact.
        runtime
            .block_on(client.auth(&remote, &auth, operation))
            .map_err(|source| RegistryError::Connect { registry, source })?;
        Ok(Registry {
            reference: reference.clone(),
            runtime,
            client,
            auth,
        })
    }

    /// Asks the registry of `reference` for the manifest it names (by tag, or by digest
    /// when it pins one); returns the connection and the manifest's bytes.
    pub(crate) fn resolve(
        reference: &Reference,
        credentials: &Credentials,
    ) -> Result<(Registry, Vec<u8>), RegistryError> {
        let registry = Registry::connect(reference, credentials, RegistryOperation::Pull)?;
        let (remote, name) = match reference.digest() {
            Some(digest) => (
                remote_ref(reference, &digest.to_string()),
                digest.to_string(),
            ),
            None => tag_ref(reference),
        };
        let (bytes, _) = registry
            .runtime
            .block_on(
                registry
                    .client
                    .pull_manifest_raw(&remote, &registry.auth, ACCEPTED),
            )
            .map_err(|source| {
                if not_found(&source) {
                    RegistryError::NotFound {
                        name: name.clone(),
                        repository: reference.name(),
                        source,
                    }
                } else {
                    RegistryError::Manifest {
                        name: name.clone(),
                        source,
                    }
                }
            })?;
        if bytes.len() as u64 > MAX_JSON_SIZE {
            return Err(RegistryError::TooLarge {
                digest: name,
                limit: MAX_JSON_SIZE,
            });
        }
        Ok((registry, bytes.to_vec()))
    }
}

impl RemoteSource for Registry {
    fn fetch(
        &mut self,
        digest: &Digest,
        kind: RemoteKind,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let text = digest.to_string();
        let remote = remote_ref(&self.reference, &text);
        if kind == RemoteKind::Manifest {
            let fetched = self
                .runtime
                .block_on(self.client.pull_manifest_raw(&remote, &self.auth, ACCEPTED));
            return match fetched {
                Ok((bytes, _)) if bytes.len() as u64 > limit => Err(RegistryError::TooLarge {
                    digest: text,
                    limit,
                }
                .into()),
                Ok((bytes, _)) => Ok(Some(bytes.to_vec())),
                Err(e) if not_found(&e) => Ok(None),
                Err(source) => Err(RegistryError::Manifest { name: text, source }.into()),
            };
        }
        let Some((reader, _)) = self.open(digest)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        reader
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|source| RegistryError::Read {
                digest: *digest,
                source,
            })?;
        if bytes.len() as u64 > limit {
            return Err(RegistryError::TooLarge {
                digest: text,
                limit,
            }
            .into());
        }
        Ok(Some(bytes))
    }

    fn open(&mut self, digest: &Digest) -> Result<RemoteBlob<'_>, RemoteError> {
        let text = digest.to_string();
        let remote = remote_ref(&self.reference, &text);
        let stream = match self
            .runtime
            .block_on(self.client.pull_blob_stream(&remote, text.as_str()))
        {
            Ok(stream) => stream,
            Err(e) if not_found(&e) => return Ok(None),
            Err(source) => {
                return Err(RegistryError::Blob {
                    digest: *digest,
                    source,
                }
                .into());
            }
        };
        let size = stream.content_length;
        let reader = BlobReader {
            runtime: &self.runtime,
            stream,
            chunk: bytes::Bytes::new(),
            digest: *digest,
            done: false,
        };
        Ok(Some((Box::new(reader), size)))
    }
}

/// A blob's bytes as they arrive, read synchronously off the runtime.
struct BlobReader<'a> {
    runtime: &'a Runtime,
    stream: SizedStream,
    chunk: bytes::Bytes,
    digest: Digest,
    done: bool,
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if self.done {
                return Ok(0);
            }
            let stream = &mut self.stream;
            match self
                .runtime
                .block_on(poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)))
            {
                None => self.done = true,
                Some(Ok(chunk)) => self.chunk = chunk,
                // oci-client checks the digest too, and fails the last read if it does not
                // match. The store checks it itself, over the same bytes, and names the
                // blob and both digests: so here the stream just ends.
                Some(Err(e)) if is_digest_mismatch(&e) => self.done = true,
                Some(Err(source)) => {
                    return Err(io::Error::other(RegistryError::Read {
                        digest: self.digest,
                        source,
                    }));
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

/// Whether a stream error is oci-client's digest check failing.
fn is_digest_mismatch(err: &io::Error) -> bool {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<DigestError>())
        .is_some_and(|e| matches!(e, DigestError::VerificationError { .. }))
}

/// What [`push`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PushSummary {
    /// The digest of the manifest pushed: the image's digest at the registry.
    pub(crate) digest: Digest,
    /// The manifest's size in bytes.
    pub(crate) size: usize,
}

/// Sends image `image` (a tag, id or id prefix) to the registry of `target` under its
/// tag, like `docker push`: the blobs the registry lacks (each read back from the store
/// and checked against its digest first), then the manifest. `progress` hears of each
/// layer.
pub(crate) fn push(
    store: &Store,
    image: &str,
    target: &Reference,
    credentials: &Credentials,
    progress: &mut dyn Progress,
) -> Result<PushSummary, RegistryError> {
    let parts = store.image_parts(image)?;
    let registry = Registry::connect(target, credentials, RegistryOperation::Push)?;
    let (remote, tag) = tag_ref(target);
    let config_blob = (*parts.id.digest(), parts.config.len() as u64);
    for (i, (digest, size)) in parts.layers.iter().chain([&config_blob]).enumerate() {
        let is_layer = i < parts.layers.len();
        let text = digest.to_string();
        let exists = registry
            .runtime
            .block_on(registry.client.blob_exists(&remote, &text))
            .map_err(|source| RegistryError::Blob {
                digest: *digest,
                source,
            })?;
        if exists {
            if is_layer {
                progress.layer(digest, LayerEvent::Exists);
            }
            continue;
        }
        let bytes = if is_layer {
            progress.layer(digest, LayerEvent::Start { size: Some(*size) });
            store.blob(digest)?
        } else {
            parts.config.clone()
        };
        registry
            .runtime
            .block_on(registry.client.push_blob(&remote, bytes, &text))
            .map_err(|source| RegistryError::Upload {
                digest: *digest,
                source,
            })?;
        if is_layer {
            progress.layer(digest, LayerEvent::Read(*size));
            progress.layer(digest, LayerEvent::Done);
        }
    }
    let media_type = manifest_media_type(&parts.manifest);
    let content_type = http::HeaderValue::from_str(&media_type)
        .map_err(|_| RegistryError::MediaType { media_type })?;
    registry
        .runtime
        .block_on(
            registry
                .client
                .push_manifest_raw(&remote, parts.manifest.clone(), content_type),
        )
        .map_err(|source| RegistryError::PushManifest { name: tag, source })?;
    Ok(PushSummary {
        digest: Digest::of(&parts.manifest),
        size: parts.manifest.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries() {
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:5000",
            "128.0.0.1",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    #[test]
    fn credentials_never_show_secrets() {
        let basic = Credentials::Basic {
            username: "me".into(),
            password: "secret".into(),
        };
        let bearer = Credentials::Bearer {
            token: "secret".into(),
        };
        assert_eq!(format!("{basic:?}"), "Basic(\"me\", ***)");
        assert!(!format!("{bearer:?}").contains("secret"));
    }
}
