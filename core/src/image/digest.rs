//! Content digests (`sha256:<64 lowercase hex>`) and their computation.
//!
//! Hashing is pure computation, so it lives in core: [`Digest::of`] for bytes in memory and
//! [`DigestWriter`] for a stream (a layer is hashed as it is copied, never held whole).
//! Only sha256 is accepted for now; any other algorithm is an error naming the value.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// The only algorithm berth accepts, as written before the `:` of a digest.
pub const SHA256: &str = "sha256";

/// A content digest: sha256 of some bytes, written `sha256:<64 lowercase hex>`.
///
/// Holds the 32 bytes of the sum; always printed as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    sum: [u8; 32],
}

/// A digest string that cannot be used, or bytes that do not match their digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("digest {value:?}: expected `sha256:<64 hex>`")]
    NoAlgorithm {
        /// The offending string.
        value: String,
    },
    /// An algorithm other than sha256.
    #[error("digest {value:?}: unsupported algorithm {algorithm:?} (only sha256)")]
    Algorithm {
        /// The offending string.
        value: String,
        /// The algorithm it names.
        algorithm: String,
    },
    /// The hex part is not 64 lowercase hex characters.
    #[error("digest {value:?}: expected 64 lowercase hex characters after `sha256:`")]
    Hex {
        /// The offending string.
        value: String,
    },
    /// Content whose digest is not the one expected.
    #[error("content has digest {actual}, expected {expected}")]
    Mismatch {
        /// The digest the content should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
}

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`.
    pub fn parse(value: &str) -> Result<Digest, DigestError> {
        let Some((algorithm, hex)) = value.split_once(':') else {
            return Err(DigestError::NoAlgorithm {
                value: value.to_owned(),
            });
        };
        if algorithm != SHA256 {
            return Err(DigestError::Algorithm {
                value: value.to_owned(),
                algorithm: algorithm.to_owned(),
            });
        }
        Digest::from_hex(hex).ok_or_else(|| DigestError::Hex {
            value: value.to_owned(),
        })
    }

    /// Builds a digest from its 64 lowercase hex characters (no `sha256:`), if they are that.
    pub fn from_hex(hex: &str) -> Option<Digest> {
        let bytes: &[u8; 64] = hex.as_bytes().try_into().ok()?;
        let nibble = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let mut sum = [0u8; 32];
        for (out, pair) in sum.iter_mut().zip(bytes.chunks_exact(2)) {
            *out = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Digest { sum })
    }

    /// The sha256 digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        let mut writer = DigestWriter::new();
        writer.update(data);
        writer.finish()
    }

    /// The 64 lowercase hex characters, without `sha256:`.
    pub fn hex(&self) -> String {
        let mut hex = String::with_capacity(64);
        for byte in self.sum {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        hex
    }

    /// The 32 bytes of the sum.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.sum
    }

    /// Checks that `data` has this digest.
    pub fn verify(&self, data: &[u8]) -> Result<(), DigestError> {
        self.check(Digest::of(data))
    }

    /// Checks that `actual` (computed by the caller, e.g. with a [`DigestWriter`]) is this one.
    pub fn check(&self, actual: Digest) -> Result<(), DigestError> {
        if actual == *self {
            Ok(())
        } else {
            Err(DigestError::Mismatch {
                expected: *self,
                actual,
            })
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHA256}:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Computes a [`Digest`] incrementally: write the bytes through it, then [`finish`](Self::finish).
///
/// Implements [`std::io::Write`] (writes never fail), so a backend can `io::copy` a stream
/// into it, or tee a stream through it while unpacking.
#[derive(Clone, Default)]
pub struct DigestWriter {
    hasher: Sha256,
    written: u64,
}

impl fmt::Debug for DigestWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestWriter")
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl DigestWriter {
    /// A writer that has seen no bytes yet.
    pub fn new() -> DigestWriter {
        DigestWriter::default()
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.written = self.written.saturating_add(data.len() as u64);
    }

    /// How many bytes it has seen.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The digest of all bytes seen.
    pub fn finish(self) -> Digest {
        Digest {
            sum: self.hasher.finalize().into(),
        }
    }

    /// Finishes and checks the bytes seen against `expected`.
    pub fn verify(self, expected: &Digest) -> Result<(), DigestError> {
        expected.check(self.finish())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl std::io::Write for DigestWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_vectors() {
        assert_eq!(Digest::of(b"").to_string(), EMPTY);
        assert_eq!(Digest::of(b"abc").to_string(), ABC);
    }

    #[test]
    fn writer_matches_one_shot() {
        let mut w = DigestWriter::new();
        w.write_all(b"a").unwrap();
        w.write_all(b"bc").unwrap();
        assert_eq!(w.written(), 3);
        assert_eq!(w.clone().finish().to_string(), ABC);
        assert_eq!(w.verify(&Digest::parse(ABC).unwrap()), Ok(()));
    }

    #[test]
    fn parse_round_trips() {
        let d = Digest::parse(ABC).unwrap();
        assert_eq!(d.to_string(), ABC);
        assert_eq!(d.hex(), &ABC[7..]);
        assert_eq!(Digest::from_hex(&d.hex()), Some(d));
        assert_eq!(d.as_bytes()[0], 0xba);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn parse_errors_name_the_value() {
        assert_eq!(
            Digest::parse("abc"),
            Err(DigestError::NoAlgorithm {
                value: "abc".into()
            })
        );
        let e = Digest::parse("sha512:00").unwrap_err();
        assert_eq!(
            e,
            DigestError::Algorithm {
                value: "sha512:00".into(),
                algorithm: "sha512".into()
            }
        );
        assert!(e.to_string().contains("sha512:00"), "{e}");
        let upper = ABC.to_uppercase().replace("SHA256", "sha256");
        assert_eq!(
            Digest::parse(&upper),
            Err(DigestError::Hex {
                value: upper.clone()
            })
        );
        assert!(matches!(
            Digest::parse("sha256:abc"),
            Err(DigestError::Hex { .. })
        ));
        assert!(matches!(
            Digest::parse(&format!("{ABC}0")),
            Err(DigestError::Hex { .. })
        ));
    }

    #[test]
    fn verify_reports_both_digests() {
        let d = Digest::parse(ABC).unwrap();
        assert_eq!(d.verify(b"abc"), Ok(()));
        assert_eq!(
            d.verify(b""),
            Err(DigestError::Mismatch {
                expected: d,
                actual: Digest::parse(EMPTY).unwrap()
            })
        );
    }
}
