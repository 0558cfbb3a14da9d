//! Image references as docker writes them: `busybox`, `busybox:1.36`,
//! `localhost:5000/team/app:v1`, `name@sha256:…`, `name:tag@sha256:…`.
//!
//! [`Reference::parse`] follows the grammar of docker's `distribution/reference` package and
//! normalises as `docker pull` does: a name without a registry is on `docker.io`, a single
//! name there is under `library/`, `index.docker.io` is `docker.io`, and a reference with
//! neither tag nor digest gets the tag `latest`. [`Reference`]'s `Display` prints the
//! normalised form, which parses back to the same value; [`Reference::familiar`] prints the
//! short form docker shows (`busybox:latest`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::digest::{Digest, DigestError};

/// The registry of names that name none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The namespace of single names on [`DEFAULT_DOMAIN`].
pub const OFFICIAL_NAMESPACE: &str = "library";
/// The tag of a reference that names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// The longest repository name (`domain/path`) docker accepts.
pub const MAX_REPOSITORY_LEN: usize = 255;
/// The longest tag docker accepts.
pub const MAX_TAG_LEN: usize = 128;

/// A normalised image reference: registry, repository path, and a tag, a digest, or both.
///
/// Only [`Reference::parse`] builds one, so it always holds a valid, normalised reference.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// A reference that cannot be parsed; each variant names the reference and its bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The empty string.
    #[error("image reference is empty")]
    Empty,
    /// The part after `@` is not a digest.
    #[error("image reference {reference:?}: {source}")]
    Digest {
        /// The whole reference.
        reference: String,
        /// Why the digest is bad.
        #[source]
        source: DigestError,
    },
    /// A tag with a character outside `[A-Za-z0-9_.-]`, a leading `.` or `-`, or too long.
    #[error(
        "image reference {reference:?}: invalid tag {tag:?} (expected [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})"
    )]
    Tag {
        /// The whole reference.
        reference: String,
        /// The offending tag.
        tag: String,
    },
    /// A registry host or port that is not valid.
    #[error("image reference {reference:?}: invalid registry {domain:?}")]
    Domain {
        /// The whole reference.
        reference: String,
        /// The offending registry (`host[:port]`).
        domain: String,
    },
    /// A repository name with upper-case letters.
    #[error("image reference {reference:?}: repository name {name:?} must be lowercase")]
    Uppercase {
        /// The whole reference.
        reference: String,
        /// The offending repository name.
        name: String,
    },
    /// A path component that is empty or not `[a-z0-9]+` joined by `.`, `_`, `__` or `-`s.
    #[error(
        "image reference {reference:?}: invalid path component {component:?} (expected lowercase letters and digits, joined by '.', '_', '__' or '-')"
    )]
    Component {
        /// The whole reference.
        reference: String,
        /// The offending component.
        component: String,
    },
    /// A repository name longer than [`MAX_REPOSITORY_LEN`].
    #[error("image reference {reference:?}: repository name is {len} characters, at most 255")]
    TooLong {
        /// The whole reference.
        reference: String,
        /// Its repository name's length.
        len: usize,
    },
    /// A bare 64-hex name, which docker refuses as it reads like an image id.
    #[error("image reference {reference:?}: a 64-character hex name reads as an image id")]
    ImageId {
        /// The whole reference.
        reference: String,
    },
}

impl Reference {
    /// Parses and normalises a reference such as `busybox` or `localhost:5000/app:v1@sha256:…`.
    pub fn parse(reference: &str) -> Result<Reference, ReferenceError> {
        let whole = || reference.to_owned();
        if reference.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                let digest = Digest::parse(digest).map_err(|source| ReferenceError::Digest {
                    reference: whole(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (reference, None),
        };
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
                let tag = &rest[colon + 1..];
                if !valid_tag(tag) {
                    return Err(ReferenceError::Tag {
                        reference: whole(),
                        tag: tag.to_owned(),
                    });
                }
                (&rest[..colon], Some(tag.to_owned()))
            }
            _ => (rest, None),
        };
        let (domain, remainder) = split_domain(name);
        if let Some(domain) = domain
            && !valid_domain(domain)
        {
            return Err(ReferenceError::Domain {
                reference: whole(),
                domain: domain.to_owned(),
            });
        }
        if remainder.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                reference: whole(),
                name: remainder.to_owned(),
            });
        }
        if let Some(bad) = remainder.split('/').find(|c| !valid_component(c)) {
            return Err(ReferenceError::Component {
                reference: whole(),
                component: bad.to_owned(),
            });
        }
        if domain.is_none() && Digest::from_hex(remainder).is_some() {
            return Err(ReferenceError::ImageId { reference: whole() });
        }
        let domain = match domain {
            None | Some("index.docker.io") => DEFAULT_DOMAIN,
            Some(d) => d,
        };
        let path = if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
            format!("{OFFICIAL_NAMESPACE}/{remainder}")
        } else {
            remainder.to_owned()
        };
        let len = domain.len() + 1 + path.len();
        if len > MAX_REPOSITORY_LEN {
            return Err(ReferenceError::TooLong {
                reference: whole(),
                len,
            });
        }
        let tag = match (tag, digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (tag, _) => tag,
        };
        Ok(Reference {
            domain: domain.to_owned(),
            path,
            tag,
            digest,
        })
    }

    /// The registry, `host[:port]` (`docker.io` when the reference named none).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path on the registry (`library/busybox`, `team/app`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any (`latest` when the reference named neither tag nor digest).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The repository name with its registry, without tag or digest (`docker.io/library/busybox`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short form docker shows: no `docker.io/`, no `library/` (`busybox:latest`).
    ///
    /// It parses back to the same reference (unlike docker's for `docker.io/a.b/c`).
    pub fn familiar(&self) -> String {
        let short = match self.path.strip_prefix("library/") {
            Some(single) if !single.contains('/') => single,
            _ => &self.path,
        };
        // `docker.io/a.b/c` must keep its registry: `a.b/c` would read `a.b` as one.
        let mut out = if self.domain == DEFAULT_DOMAIN && split_domain(short).0.is_none() {
            short.to_owned()
        } else {
            self.name()
        };
        self.push_suffix(&mut out);
        out
    }

    fn push_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
    }
}

/// Splits `name` into its registry, if its first component names one, and the rest.
///
/// As docker: the first component is a registry if it holds a `.` or `:`, is `localhost`,
/// or has an upper-case letter (path components cannot).
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// `host[:port]`, host a DNS name, IPv4 address, or `[IPv6]`.
fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(v6) = domain.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return false;
        };
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = domain.starts_with('[')
        || host.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        });
    port_ok && host_ok
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or one or more `-`.
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        match &component[start..i] {
            "." | "_" | "__" => {}
            sep if sep.bytes().all(|b| b == b'-') => {}
            _ => return false,
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    bytes.len() <= MAX_TAG_LEN
        && bytes.first().is_some_and(|&b| word(b))
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.push_suffix(&mut out);
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn parts(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r = Reference::parse(s).unwrap();
        (
            r.domain().to_owned(),
            r.path().to_owned(),
            r.tag().map(str::to_owned),
            r.digest().map(ToString::to_string),
        )
    }

    fn o(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn normalises_like_docker() {
        let d = format!("sha256:{HEX}");
        assert_eq!(
            parts("busybox"),
            (
                "docker.io".into(),
                "library/busybox".into(),
                o("latest"),
                None
            )
        );
        assert_eq!(
            parts("busybox:1.36"),
            (
                "docker.io".into(),
                "library/busybox".into(),
                o("1.36"),
                None
            )
        );
        assert_eq!(
            parts("localhost:5000/team/app:v1"),
            ("localhost:5000".into(), "team/app".into(), o("v1"), None)
        );
        assert_eq!(
            parts(&format!("busybox@{d}")),
            ("docker.io".into(), "library/busybox".into(), None, o(&d))
        );
        assert_eq!(
            parts(&format!("busybox:1@{d}")),
            ("docker.io".into(), "library/busybox".into(), o("1"), o(&d))
        );
        assert_eq!(
            parts("index.docker.io/nginx"),
            (
                "docker.io".into(),
                "library/nginx".into(),
                o("latest"),
                None
            )
        );
        assert_eq!(
            parts("team/app"),
            ("docker.io".into(), "team/app".into(), o("latest"), None)
        );
        assert_eq!(
            parts("localhost/app"),
            ("localhost".into(), "app".into(), o("latest"), None)
        );
        assert_eq!(
            parts("127.0.0.1:5000/busybox:latest"),
            ("127.0.0.1:5000".into(), "busybox".into(), o("latest"), None)
        );
        assert_eq!(
            parts("[::1]:5000/a/b-c__d.e"),
            ("[::1]:5000".into(), "a/b-c__d.e".into(), o("latest"), None)
        );
        assert_eq!(
            parts("Registry.Example/x"),
            ("Registry.Example".into(), "x".into(), o("latest"), None)
        );
    }

    #[test]
    fn display_and_familiar() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.name(), "docker.io/library/busybox");
        let r = Reference::parse("localhost:5000/team/app:v1").unwrap();
        assert_eq!(r.to_string(), "localhost:5000/team/app:v1");
        assert_eq!(r.familiar(), "localhost:5000/team/app:v1");
        let r = Reference::parse("docker.io/library/a/b").unwrap();
        assert_eq!(r.familiar(), "library/a/b:latest");
        let r = Reference::parse("docker.io/a.b/c").unwrap();
        assert_eq!(r.familiar(), "docker.io/a.b/c:latest");
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
    }

    #[test]
    fn errors_name_the_bad_part() {
        assert_eq!(Reference::parse(""), Err(ReferenceError::Empty));
        assert_eq!(
            Reference::parse("Busybox"),
            Err(ReferenceError::Uppercase {
                reference: "Busybox".into(),
                name: "Busybox".into()
            })
        );
        assert_eq!(
            Reference::parse("a/b_-c"),
            Err(ReferenceError::Component {
                reference: "a/b_-c".into(),
                component: "b_-c".into()
            })
        );
        assert_eq!(
            Reference::parse("a//b"),
            Err(ReferenceError::Component {
                reference: "a//b".into(),
                component: String::new()
            })
        );
        assert_eq!(
            Reference::parse("a:.x"),
            Err(ReferenceError::Tag {
                reference: "a:.x".into(),
                tag: ".x".into()
            })
        );
        assert!(matches!(
            Reference::parse(&format!("a:{}", "t".repeat(129))),
            Err(ReferenceError::Tag { .. })
        ));
        assert!(Reference::parse(&format!("a:{}", "t".repeat(128))).is_ok());
        assert_eq!(
            Reference::parse("bad_host.io:50x/a"),
            Err(ReferenceError::Domain {
                reference: "bad_host.io:50x/a".into(),
                domain: "bad_host.io:50x".into()
            })
        );
        assert!(matches!(
            Reference::parse("a@sha256:zz"),
            Err(ReferenceError::Digest { .. })
        ));
        assert_eq!(
            Reference::parse(HEX),
            Err(ReferenceError::ImageId {
                reference: HEX.into()
            })
        );
        assert!(matches!(
            Reference::parse(&format!("x.io/{}", "a".repeat(260))),
            Err(ReferenceError::TooLong { len: 265, .. })
        ));
        assert!(matches!(
            Reference::parse("a:b:c"),
            Err(ReferenceError::Component { .. })
        ));
        assert!(matches!(
            Reference::parse("a:"),
            Err(ReferenceError::Tag { .. })
        ));
        let e = Reference::parse("x/Y").unwrap_err();
        assert!(e.to_string().contains("\"x/Y\""), "{e}");
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,4}((\\.|_|__|-{1,2})[a-z0-9]{1,4}){0,2}"
    }

    fn domain() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            Just(Some("docker.io".to_owned())),
            Just(Some("index.docker.io".to_owned())),
            Just(Some("localhost".to_owned())),
            "[a-z0-9]{1,5}\\.[a-z]{2,3}(:[0-9]{1,5})?".prop_map(Some),
            "localhost:[0-9]{1,5}".prop_map(Some),
            "\\[[0-9a-f]{0,4}:[0-9a-f:]{0,6}\\](:[0-9]{1,4})?".prop_map(Some),
        ]
    }

    fn reference() -> impl Strategy<Value = String> {
        (
            domain(),
            prop::collection::vec(component(), 1..4),
            prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            prop::option::of("[0-9a-f]{64}"),
        )
            .prop_map(|(domain, path, tag, digest)| {
                // Without a registry, a first component with a `.` would read as one.
                let domain = domain.or_else(|| path[0].contains('.').then(|| "x.io".to_owned()));
                let mut s = domain.map(|d| format!("{d}/")).unwrap_or_default();
                s.push_str(&path.join("/"));
                if let Some(tag) = tag {
                    s.push(':');
                    s.push_str(&tag);
                }
                if let Some(digest) = digest {
                    s.push_str("@sha256:");
                    s.push_str(&digest);
                }
                s
            })
    }

    proptest! {
        #[test]
        fn display_round_trips(s in reference()) {
            let r = Reference::parse(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(Reference::parse(&r.to_string()), Ok(r.clone()));
            prop_assert_eq!(Reference::parse(&r.familiar()), Ok(r.clone()));
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            if let Ok(r) = Reference::parse(&s) {
                prop_assert_eq!(Reference::parse(&r.to_string()), Ok(r));
            }
        }
    }
}
