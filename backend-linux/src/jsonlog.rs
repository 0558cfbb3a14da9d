//! Container log files in docker's `json-file` format: [`LogWriter`](crate::jsonlog::LogWriter)
//! (the monitor's side: append, rotate at `max-size` keeping `max-file` files) and
//! [`read_logs`](crate::jsonlog::read_logs) (`berth logs`: rotated files oldest first,
//! `--tail`, `-f`). Records are made and parsed by [`berth_core::jsonlog`].
//!
//! Invariant: a log file holds whole records only. The writer appends one record with one
//! `write`, cuts a record a failed write left behind, and on open cuts a torn last record
//! (a crash mid-write), so a reader never meets a half line except the one being written.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_core::jsonlog::{JsonLogError, LogLine, Stream, Timestamp, decode, encode};

/// How often a follower looks for new records and for a rotation.
const POLL: Duration = Duration::from_millis(100);
/// The longest record a reader accepts (a 16 KiB message escapes to at most ~100 KiB).
const MAX_RECORD: usize = 1 << 20;
/// The longest line a reader builds by joining partial messages; longer ones are cut.
const MAX_JOINED: usize = 1 << 20;

/// The time now, from the system clock.
pub fn now() -> Timestamp {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp {
            secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_nanos(),
        },
        // A clock set before 1970: count back.
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).map_or(i64::MIN, |s| -s);
            match d.subsec_nanos() {
                0 => Timestamp { secs, nanos: 0 },
                n => Timestamp {
                    secs: secs.saturating_sub(1),
                    nanos: 1_000_000_000 - n,
                },
            }
        }
    }
}

/// `path.k`: the k-th newest rotated file.
fn rotated(path: &Path, k: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{k}"));
    PathBuf::from(name)
}

fn ignore_not_found(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Appends records to a container's log file, rotating it as docker's json-file does.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_files: u32,
}

impl LogWriter {
    /// Opens (creating, mode 0640) the log at `path` for appending. With `max_size`, a
    /// file that has reached it is rotated before the next write: `path` becomes
    /// `path.1`, `path.1` becomes `path.2`, … keeping `max_files` files in all (docker's
    /// `max-size` and `max-file`; 0 counts as 1, which starts `path` afresh).
    pub fn open(path: &Path, max_size: Option<u64>, max_files: u32) -> io::Result<Self> {
        let file = open_append(path)?;
        let size = cut_torn_record(&file)?;
        Ok(Self {
            path: path.to_owned(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
        })
    }

    /// Appends the record of `line`, rotating first when the file is full.
    pub fn write(&mut self, line: &LogLine) -> io::Result<()> {
        if self.max_size.is_some_and(|max| self.size >= max) {
            self.rotate()?;
        }
        let record = encode(line);
        if let Err(e) = self.file.write_all(&record) {
            // Leave whole records only; if this fails too, the reader reports the line.
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        self.size += record.len() as u64;
        Ok(())
    }

    /// docker's `LogFile.rotate`: drop the oldest, shift the others up, start a new file.
    /// A reader still holding the old file reads on to its end (it is renamed or
    /// unlinked, never truncated).
    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files < 2 {
            ignore_not_found(std::fs::remove_file(&self.path))?;
        } else {
            let last = rotated(&self.path, self.max_files - 1);
            ignore_not_found(std::fs::remove_file(last))?;
            for k in (2..self.max_files).rev() {
                let from = rotated(&self.path, k - 1);
                ignore_not_found(std::fs::rename(from, rotated(&self.path, k)))?;
            }
            ignore_not_found(std::fs::rename(&self.path, rotated(&self.path, 1)))?;
        }
        self.file = open_append(&self.path)?;
        // As docker: truncate anyway, in case the rename did not happen.
        self.file.set_len(0)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Cuts the file after its last `\n` (a record torn by a crash); returns the new size.
fn cut_torn_record(file: &File) -> io::Result<u64> {
    const BLOCK: u64 = 8192;
    let len = file.metadata()?.len();
    let mut buf = [0; BLOCK as usize];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end != len {
        file.set_len(end)?;
    }
    Ok(end)
}

/// What [`read_logs`] reads and when it stops.
pub struct ReadOptions<'a> {
    /// Only the last N lines of what is already written (`--tail N`); `None` for all.
    pub tail: Option<usize>,
    /// Go on printing what is written next (`-f`).
    pub follow: bool,
    /// Asked while following, before each look at the file: once it says true (the
    /// container has exited and its monitor closed the log), the rest is read and
    /// [`read_logs`] returns.
    pub stop_following: &'a dyn Fn() -> bool,
    /// Pass partial messages on as they come instead of joining them into lines: what an
    /// attached terminal needs (a shell's prompt has no newline).
    pub raw: bool,
}

impl std::fmt::Debug for ReadOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOptions")
            .field("tail", &self.tail)
            .field("follow", &self.follow)
            .finish_non_exhaustive()
    }
}

/// Why a container's logs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogReadError {
    /// A log file could not be opened or read.
    #[error("reading {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A line of a log file is not a json-file record.
    #[error("{path}:{line}: bad log record")]
    Record {
        /// The file.
        path: PathBuf,
        /// Its line number, from 1.
        line: u64,
        /// Why.
        #[source]
        source: JsonLogError,
    },
    /// A line of a log file is too long to be a record.
    #[error("{path}:{line}: log record longer than {MAX_RECORD} bytes")]
    TooLong {
        /// The file.
        path: PathBuf,
        /// Its line number, from 1.
        line: u64,
    },
    /// The consumer of the lines failed (e.g. stdout was closed).
    #[error("writing the logs out")]
    Output(#[source] io::Error),
}

type Emit<'e> = dyn FnMut(LogLine) -> Result<(), LogReadError> + 'e;

/// Reads the logs at `path` (and its rotated files `path.N` … `path.1` first) and passes
/// each line to `out`, oldest first. Partial messages are joined back into their line
/// (one per stream; the line keeps the time of its first piece) and `tail` counts joined
/// lines. Following, a rotation is noticed when `path` names another file: the old one is
/// read to its end, then the new one from its start (two rotations within one poll of
/// ~100 ms lose the file in between).
pub fn read_logs(
    path: &Path,
    opts: &ReadOptions,
    out: &mut dyn FnMut(&LogLine) -> io::Result<()>,
) -> Result<(), LogReadError> {
    // The current file first: if a rotation comes in between, we see its old self twice
    // (and skip it) rather than miss it.
    let mut current = Source::open(path)?;
    let mut older: Vec<Source> = Vec::new();
    for k in 1.. {
        match Source::open(&rotated(path, k)) {
            Ok(s) => {
                if s.id != current.id && older.iter().all(|o| o.id != s.id) {
                    older.push(s);
                }
            }
            Err(LogReadError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                break;
            }
            Err(e) => return Err(e),
        }
    }

    let mut joiner = Joiner {
        raw: opts.raw,
        ..Joiner::default()
    };
    let mut last = VecDeque::new();
    {
        let mut history = |line: LogLine| match opts.tail {
            None => out(&line).map_err(LogReadError::Output),
            Some(n) => {
                if last.len() == n {
                    last.pop_front();
                }
                if n > 0 {
                    last.push_back(line);
                }
                Ok(())
            }
        };
        for source in older.iter_mut().rev() {
            source.drain(&mut joiner, &mut history)?;
        }
        current.drain(&mut joiner, &mut history)?;
        if !opts.follow {
            joiner.flush(&mut history)?;
        }
    }
    for line in last {
        out(&line).map_err(LogReadError::Output)?;
    }
    if !opts.follow {
        return Ok(());
    }

    let mut live = |line: LogLine| out(&line).map_err(LogReadError::Output);
    loop {
        // Asked before reading: what was written before it said stop is read below.
        let stop = (opts.stop_following)();
        current.drain(&mut joiner, &mut live)?;
        if let Some(next) = current.successor(path)? {
            current.drain(&mut joiner, &mut live)?;
            current = next;
            continue;
        }
        if stop {
            return joiner.flush(&mut live);
        }
        std::thread::sleep(POLL);
    }
}

/// One open log file being read.
struct Source {
    path: PathBuf,
    file: File,
    /// (device, inode): which file this is, whatever its name now.
    id: (u64, u64),
    /// Bytes read after the last complete record.
    pending: Vec<u8>,
    /// Records read so far.
    line: u64,
}

impl Source {
    fn open(path: &Path) -> Result<Self, LogReadError> {
        let io_err = |source| LogReadError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        Ok(Self {
            path: path.to_owned(),
            file,
            id: (meta.dev(), meta.ino()),
            pending: Vec::new(),
            line: 0,
        })
    }

    /// Reads to the end of the file, passing each complete record on. An unterminated
    /// last record stays pending: its writer is still at it.
    fn drain(&mut self, joiner: &mut Joiner, emit: &mut Emit) -> Result<(), LogReadError> {
        loop {
            // Straight into `pending`, after the incomplete record it may hold.
            match (&mut self.file)
                .take(64 * 1024)
                .read_to_end(&mut self.pending)
            {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(source) => {
                    return Err(LogReadError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
            let mut start = 0;
            while let Some(i) = self.pending[start..].iter().position(|&b| b == b'\n') {
                let record = &self.pending[start..start + i];
                start += i + 1;
                self.line += 1;
                let line = decode(record).map_err(|source| LogReadError::Record {
                    path: self.path.clone(),
                    line: self.line,
                    source,
                })?;
                joiner.push(line, emit)?;
            }
            self.pending.drain(..start);
            if self.pending.len() > MAX_RECORD {
                return Err(LogReadError::TooLong {
                    path: self.path.clone(),
                    line: self.line + 1,
                });
            }
        }
    }

    /// The file now at `path` when it is not this one (the log was rotated).
    fn successor(&self, path: &Path) -> Result<Option<Source>, LogReadError> {
        let moved = match std::fs::metadata(path) {
            Ok(meta) => (meta.dev(), meta.ino()) != self.id,
            // Between a max-file 1 rotation's unlink and create.
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(LogReadError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        if !moved {
            return Ok(None);
        }
        match Source::open(path) {
            Ok(next) => Ok(Some(next)),
            Err(LogReadError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Joins partial messages back into lines, one line in the making per stream.
#[derive(Default)]
struct Joiner {
    stdout: Option<LogLine>,
    stderr: Option<LogLine>,
    /// Pieces go on unjoined.
    raw: bool,
}

impl Joiner {
    fn push(&mut self, piece: LogLine, emit: &mut Emit) -> Result<(), LogReadError> {
        if self.raw {
            return emit(piece);
        }
        let slot = match piece.stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        let line = match slot.take() {
            Some(mut head) => {
                head.bytes.extend_from_slice(&piece.bytes);
                head.partial = piece.partial;
                head
            }
            None => piece,
        };
        if line.partial && line.bytes.len() < MAX_JOINED {
            *slot = Some(line);
            Ok(())
        } else {
            emit(line)
        }
    }

    /// Passes on the lines left unfinished (output that ended without a newline).
    fn flush(&mut self, emit: &mut Emit) -> Result<(), LogReadError> {
        let mut rest: Vec<LogLine> = [self.stdout.take(), self.stderr.take()]
            .into_iter()
            .flatten()
            .collect();
        rest.sort_by_key(|l| l.time);
        rest.into_iter().try_for_each(emit)
    }
}

/// Writes `line` as `docker logs` does: its bytes to `stdout` or `stderr` after its
/// stream, preceded with `-t` by its time (nine fraction digits) and a space.
pub fn write_plain(
    line: &LogLine,
    timestamps: bool,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> io::Result<()> {
    let put = |w: &mut dyn Write| {
        if timestamps {
            w.write_all(format!("{} ", line.time.format_fixed()).as_bytes())?;
        }
        w.write_all(&line.bytes)
    };
    match line.stream {
        Stream::Stdout => put(stdout),
        Stream::Stderr => put(stderr),
    }
}
