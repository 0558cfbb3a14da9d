//! [`ArchivePath`]: a relative path inside a layer tar, an image archive or an OCI layout,
//! normalised and checked so that joining it to a directory can never leave that directory.

use std::fmt;

/// The longest path the kernel takes, without its NUL (`PATH_MAX` - 1).
pub const MAX_PATH_LEN: usize = 4095;
/// The longest file name the kernel takes (`NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// A normalised relative path: no leading `/`, no `.` or `..`, no empty component, no NUL.
///
/// The empty path is the root of the archive or layer; it displays as `.`.
/// Only [`ArchivePath::parse`] and [`ArchivePath::join`] build one.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArchivePath(String);

/// Why a path in an archive or layer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    /// The empty string.
    #[error("empty path")]
    Empty,
    /// A NUL byte.
    #[error("contains a NUL byte")]
    Nul,
    /// Starts with `/`.
    #[error("absolute path")]
    Absolute,
    /// A `..` that climbs above the root.
    #[error("`..` climbs out of the root")]
    Escapes,
    /// A component longer than [`MAX_NAME_LEN`].
    #[error("a component is longer than 255 bytes")]
    NameTooLong,
    /// Longer than [`MAX_PATH_LEN`].
    #[error("longer than 4095 bytes")]
    TooLong,
    /// Given to [`ArchivePath::join`]: not one component (empty, `.`, `..`, or holds `/`).
    #[error("not a single path component")]
    NotAComponent,
}

impl ArchivePath {
    /// The root (the empty path).
    pub fn root() -> ArchivePath {
        ArchivePath(String::new())
    }

    /// Normalises `raw` (drops `.`, empty components and a trailing `/`; resolves `..`
    /// lexically) and refuses it if it is empty, absolute, holds a NUL, climbs out, or is
    /// too long. `./` and `.` give the root.
    pub fn parse(raw: &str) -> Result<ArchivePath, PathProblem> {
        if raw.is_empty() {
            return Err(PathProblem::Empty);
        }
        if raw.contains('\0') {
            return Err(PathProblem::Nul);
        }
        if raw.starts_with('/') {
            return Err(PathProblem::Absolute);
        }
        if raw.len() > MAX_PATH_LEN {
            return Err(PathProblem::TooLong);
        }
        let mut parts: Vec<&str> = Vec::new();
        for component in raw.split('/') {
            match component {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(PathProblem::Escapes);
                    }
                }
                name if name.len() > MAX_NAME_LEN => return Err(PathProblem::NameTooLong),
                name => parts.push(name),
            }
        }
        Ok(ArchivePath(parts.join("/")))
    }

    /// The path as text, `""` for the root.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The components, first to last (none for the root).
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The last component, `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.components().last()
    }

    /// The path without its last component, `None` for the root.
    pub fn parent(&self) -> Option<ArchivePath> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.rsplit_once('/') {
            Some((parent, _)) => ArchivePath(parent.to_owned()),
            None => ArchivePath::root(),
        })
    }

    /// Every proper ancestor except the root, nearest the root first (`a`, `a/b` for `a/b/c`).
    pub fn ancestors(&self) -> impl Iterator<Item = &str> {
        self.0.match_indices('/').map(|(i, _)| &self.0[..i])
    }

    /// This path with `name` (one component) appended, if `name` is a valid component.
    pub fn join(&self, name: &str) -> Result<ArchivePath, PathProblem> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(PathProblem::NotAComponent);
        }
        if name.contains('\0') {
            return Err(PathProblem::Nul);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(PathProblem::NameTooLong);
        }
        let joined = if self.is_root() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.0)
        };
        if joined.len() > MAX_PATH_LEN {
            return Err(PathProblem::TooLong);
        }
        Ok(ArchivePath(joined))
    }
}

impl fmt::Display for ArchivePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            f.write_str(".")
        } else {
            f.write_str(&self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<String, PathProblem> {
        ArchivePath::parse(s).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn normalises() {
        assert_eq!(p("bin/sh"), Ok("bin/sh".into()));
        assert_eq!(p("./bin//sh/"), Ok("bin/sh".into()));
        assert_eq!(p("a/./b/../c"), Ok("a/c".into()));
        assert_eq!(p("./"), Ok(String::new()));
        assert_eq!(p("."), Ok(String::new()));
        assert_eq!(p("a/.."), Ok(String::new()));
        assert_eq!(ArchivePath::root().to_string(), ".");
    }

    #[test]
    fn refuses() {
        assert_eq!(p(""), Err(PathProblem::Empty));
        assert_eq!(p("/etc/passwd"), Err(PathProblem::Absolute));
        assert_eq!(p("../x"), Err(PathProblem::Escapes));
        assert_eq!(p("a/../../x"), Err(PathProblem::Escapes));
        assert_eq!(p("./.."), Err(PathProblem::Escapes));
        assert_eq!(p("a\0b"), Err(PathProblem::Nul));
        assert_eq!(p(&"n".repeat(256)), Err(PathProblem::NameTooLong));
        assert_eq!(p(&"n".repeat(255)).map(|s| s.len()), Ok(255));
        assert_eq!(p(&"a/".repeat(2048)), Err(PathProblem::TooLong));
    }

    #[test]
    fn parts() {
        let a = ArchivePath::parse("a/b/c").unwrap();
        assert_eq!(a.file_name(), Some("c"));
        assert_eq!(a.parent().unwrap().as_str(), "a/b");
        assert_eq!(a.ancestors().collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(
            ArchivePath::parse("a").unwrap().parent(),
            Some(ArchivePath::root())
        );
        assert_eq!(ArchivePath::root().parent(), None);
        assert_eq!(ArchivePath::root().file_name(), None);
        assert_eq!(ArchivePath::root().join("x").unwrap().as_str(), "x");
        assert_eq!(a.join(".."), Err(PathProblem::NotAComponent));
        assert_eq!(a.join("x/y"), Err(PathProblem::NotAComponent));
    }
}
