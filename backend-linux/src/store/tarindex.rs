//! Random access into a tar archive: an index of its files, made in one pass, and a
//! [`BlobSource`] over it, so core's [`load_images`](berth_core::image::load_images) can
//! read an image archive's files in whatever order its JSON names them.
//!
//! Invariants: every indexed file lies whole inside the archive (an archive cut short is
//! refused when indexed, naming the entry it cuts), the archive ends with its end-of-archive
//! block, and every name is an [`ArchivePath`] (a `..` that climbs out, an absolute or a
//! non-UTF-8 name refuses the archive). Links (symbolic, as `docker save` writes for a layer
//! it saved already, and hard) are followed inside the archive only, a bounded number of
//! times. Nothing here writes anything: the index is a map in memory.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};

use berth_core::image::{ArchivePath, BlobSource, PathProblem};

/// The most entries an archive may have (an image archive has a few per layer).
pub const MAX_ENTRIES: usize = 1 << 20;
/// How many links in a row a lookup follows before calling it a loop.
pub const MAX_LINK_DEPTH: usize = 16;

/// Where one name of the archive leads.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Slot {
    /// A regular file: its content's offset in the archive, and its size.
    File { offset: u64, size: u64 },
    /// A symbolic or hard link to another name of the archive.
    Link { target: ArchivePath },
}

/// Why an archive cannot be indexed, or a file of it read.
#[derive(Debug, thiserror::Error)]
pub enum TarIndexError {
    /// Reading the archive failed, or it is not a tar (a bad header checksum, …).
    #[error("archive: reading failed {}", where_(after))]
    Read {
        /// The last entry indexed, if any.
        after: Option<String>,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An entry whose name or link target is not UTF-8.
    #[error("archive entry {path:?}: name or link target is not UTF-8")]
    NotUtf8 {
        /// The name, lossily decoded.
        path: String,
    },
    /// An entry name that could leave the archive (absolute, `..` climbing out, …).
    #[error("archive entry {path:?}: {problem}")]
    BadPath {
        /// The name.
        path: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// A link whose target could leave the archive.
    #[error("archive entry {path:?}: link target {target:?}: {problem}")]
    BadLink {
        /// The link's name.
        path: String,
        /// Its target.
        target: String,
        /// What is wrong with the target.
        problem: PathProblem,
    },
    /// An entry of a type an image archive never holds (GNU sparse files, …).
    #[error("archive entry {path:?}: unsupported tar entry type {kind:?}")]
    EntryType {
        /// The entry's name.
        path: String,
        /// The type byte.
        kind: char,
    },
    /// The archive ends inside an entry's content.
    #[error("archive entry {path:?}: the archive ends after {available} of its {size} bytes")]
    Truncated {
        /// The entry's name.
        path: String,
        /// The bytes the archive has of it.
        available: u64,
        /// The bytes its header promises.
        size: u64,
    },
    /// The archive ends without its end-of-archive block: it was cut short.
    #[error("archive ends without an end-of-archive block {}", where_(after))]
    NoEnd {
        /// The last entry indexed, if any.
        after: Option<String>,
    },
    /// More entries than [`MAX_ENTRIES`].
    #[error("archive has more than {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: usize,
    },
    /// Links followed more than [`MAX_LINK_DEPTH`] times in a row.
    #[error("{path}: links nested deeper than {limit} (a loop?)")]
    LinkDepth {
        /// The name looked up.
        path: ArchivePath,
        /// The limit.
        limit: usize,
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
    /// Reading an indexed file failed.
    #[error("{path}: reading failed")]
    ReadEntry {
        /// The file.
        path: ArchivePath,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Where in the archive a problem is: after which entry.
fn where_(after: &Option<String>) -> String {
    match after {
        Some(entry) => format!("after entry {entry:?}"),
        None => "before its first entry".to_owned(),
    }
}

/// The files of one tar archive by name: where each one's content is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TarIndex {
    slots: HashMap<ArchivePath, Slot>,
}

const BLOCK: u64 = 512;

fn round_up(n: u64) -> Option<u64> {
    n.checked_add(BLOCK - 1).map(|n| n & !(BLOCK - 1))
}

impl TarIndex {
    /// Indexes the tar archive `reader` holds from its start; refuses an archive cut short
    /// or with a name that could leave it. A later entry of the same name wins, as in tar.
    pub fn build<R: Read + Seek>(reader: &mut R) -> Result<TarIndex, TarIndexError> {
        let read_err = |after: &Option<String>| {
            let after = after.clone();
            move |source| TarIndexError::Read { after, source }
        };
        let none = None;
        let len = reader.seek(SeekFrom::End(0)).map_err(read_err(&none))?;
        reader.seek(SeekFrom::Start(0)).map_err(read_err(&none))?;
        let mut slots = HashMap::new();
        let mut last: Option<String> = None;
        // Where the header after the last entry is: the end-of-archive block.
        let mut end = 0u64;
        let mut archive = tar::Archive::new(&mut *reader);
        for entry in archive.entries_with_seek().map_err(read_err(&none))? {
            let entry = entry.map_err(read_err(&last))?;
            if slots.len() >= MAX_ENTRIES {
                return Err(TarIndexError::TooManyEntries { limit: MAX_ENTRIES });
            }
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8(raw).map_err(|e| TarIndexError::NotUtf8 {
                path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            })?;
            let offset = entry.raw_file_position();
            let size = entry.size();
            let too_long = || TarIndexError::Truncated {
                path: name.clone(),
                available: len.saturating_sub(offset),
                size,
            };
            let content_end = offset.checked_add(size).ok_or_else(too_long)?;
            if content_end > len {
                return Err(too_long());
            }
            end = round_up(content_end).ok_or_else(too_long)?;
            let path = ArchivePath::parse(&name).map_err(|problem| TarIndexError::BadPath {
                path: name.clone(),
                problem,
            })?;
            let slot = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    Some(Slot::File { offset, size })
                }
                kind @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    let target = String::from_utf8(target)
                        .map_err(|_| TarIndexError::NotUtf8 { path: name.clone() })?;
                    // A symlink is relative to its directory; a hard link to the archive.
                    let joined = match (kind, path.parent()) {
                        (tar::EntryType::Symlink, Some(dir)) if !dir.is_root() => {
                            format!("{}/{target}", dir.as_str())
                        }
                        _ => target.clone(),
                    };
                    let target =
                        ArchivePath::parse(&joined).map_err(|problem| TarIndexError::BadLink {
                            path: name.clone(),
                            target,
                            problem,
                        })?;
                    Some(Slot::Link { target })
                }
                tar::EntryType::Directory
                | tar::EntryType::Char
                | tar::EntryType::Block
                | tar::EntryType::Fifo
                | tar::EntryType::XGlobalHeader => None,
                other => {
                    return Err(TarIndexError::EntryType {
                        path: name,
                        kind: char::from(other.as_byte()),
                    });
                }
            };
            match slot {
                Some(slot) => slots.insert(path, slot),
                // A directory or device replaces a file of the same name, as tar does.
                None => slots.remove(&path),
            };
            last = Some(name);
        }
        let mut block = [0u8; BLOCK as usize];
        reader.seek(SeekFrom::Start(end)).map_err(read_err(&last))?;
        let mut got = 0;
        while got < block.len() {
            match reader.read(&mut block[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(&last)(e)),
            }
        }
        if got < block.len() || block.iter().any(|&b| b != 0) {
            return Err(TarIndexError::NoEnd { after: last });
        }
        Ok(TarIndex { slots })
    }

    /// How many names the archive has (files and links).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the archive has no file.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The names, in no particular order.
    pub fn paths(&self) -> impl Iterator<Item = &ArchivePath> {
        self.slots.keys()
    }

    /// Where the file at `path` is: (offset of its content, size), links followed;
    /// `None` if there is no such file.
    pub fn lookup(&self, path: &ArchivePath) -> Result<Option<(u64, u64)>, TarIndexError> {
        let mut at = path;
        for _ in 0..=MAX_LINK_DEPTH {
            match self.slots.get(at) {
                None => return Ok(None),
                Some(Slot::File { offset, size }) => return Ok(Some((*offset, *size))),
                Some(Slot::Link { target }) => at = target,
            }
        }
        Err(TarIndexError::LinkDepth {
            path: path.clone(),
            limit: MAX_LINK_DEPTH,
        })
    }
}

/// A tar archive with its index: a [`BlobSource`], and readers of single files.
#[derive(Debug)]
pub struct TarSource<R> {
    reader: R,
    index: TarIndex,
}

impl<R: Read + Seek> TarSource<R> {
    /// Indexes the archive `reader` holds (see [`TarIndex::build`]).
    pub fn new(mut reader: R) -> Result<TarSource<R>, TarIndexError> {
        let index = TarIndex::build(&mut reader)?;
        Ok(TarSource { reader, index })
    }

    /// The archive's index.
    pub fn index(&self) -> &TarIndex {
        &self.index
    }

    /// A reader of the file at `path` and its size; `None` if there is no such file.
    pub fn open(
        &mut self,
        path: &ArchivePath,
    ) -> Result<Option<(io::Take<&mut R>, u64)>, TarIndexError> {
        let Some((offset, size)) = self.index.lookup(path)? else {
            return Ok(None);
        };
        self.reader
            .seek(SeekFrom::Start(offset))
            .map_err(|source| TarIndexError::ReadEntry {
                path: path.clone(),
                source,
            })?;
        Ok(Some(((&mut self.reader).take(size), size)))
    }
}

impl<R: Read + Seek> BlobSource for TarSource<R> {
    type Error = TarIndexError;

    fn read(&mut self, path: &ArchivePath, limit: u64) -> Result<Option<Vec<u8>>, Self::Error> {
        let Some((mut reader, size)) = self.open(path)? else {
            return Ok(None);
        };
        if size > limit {
            return Err(TarIndexError::TooLarge {
                path: path.clone(),
                size,
                limit,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        reader
            .read_to_end(&mut bytes)
            .map_err(|source| TarIndexError::ReadEntry {
                path: path.clone(),
                source,
            })?;
        if bytes.len() as u64 != size {
            return Err(TarIndexError::ReadEntry {
                path: path.clone(),
                source: io::ErrorKind::UnexpectedEof.into(),
            });
        }
        Ok(Some(bytes))
    }
}

/// The fuzz target `image_archive`: untrusted bytes as an image archive tar, indexed in
/// memory and read by core's loader. It must never panic; every indexed file must lie
/// inside the bytes, and every image read must have the id of its config.
pub fn fuzz_image_archive(data: &[u8]) {
    use berth_core::image::{Digest, Platform, load_images};
    let Ok(mut source) = TarSource::new(io::Cursor::new(data)) else {
        return;
    };
    let paths: Vec<ArchivePath> = source.index().paths().cloned().collect();
    for path in &paths {
        if let Ok(Some((offset, size))) = source.index().lookup(path) {
            let end = offset.checked_add(size).expect("checked when indexed");
            assert!(end <= data.len() as u64, "{path}: {offset}+{size}");
        }
    }
    let Ok(archive) = load_images(&mut source, &Platform::linux("amd64")) else {
        return;
    };
    for image in archive.images {
        assert_eq!(image.id, Digest::of(&image.config_bytes));
        for layer in &image.layers {
            // A layer may be missing; one that is there reads whole.
            if let Ok(Some((mut reader, size))) = source.open(&layer.path) {
                let n = io::copy(&mut reader, &mut io::sink()).expect("in memory");
                assert_eq!(n, size, "{}", layer.path);
            }
        }
    }
}
