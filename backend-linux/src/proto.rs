//! The messages the runtime and init exchange over their socketpair.
//!
//! Both processes hold the same plan (init is a copy of the runtime), so a message never
//! carries a step: only a sync point, a step index, an errno, a short text, and what init
//! made on disk ([`Msg::Report`]), which the runtime removes in a rollback. The socket is `SOCK_SEQPACKET`: one `send` is one message, boundaries are
//! kept, and a closed peer reads as end of file.
//!
//! # Wire format
//!
//! A message is one packet of at most [`MSG_MAX`] bytes: a tag byte, then the variant's
//! fields in order, integers little-endian, a text as a `u32` length and its bytes:
//!
//! | tag | message   | fields                                                        |
//! |-----|-----------|---------------------------------------------------------------|
//! | 1   | `Pid`     | `i32` pid                                                     |
//! | 2   | `Go`      | text: the sync point's name                                   |
//! | 3   | `Abort`   |                                                               |
//! | 4   | `Signal`  | text: the sync point's name                                   |
//! | 5   | `Failed`  | `u32` step index, `i32` errno (0: none), text detail          |
//! | 6   | `Aborted` |                                                               |
//! | 7   | `Report`  | `u32` count, then per item: `u8` 0, `u32` handle, `u32` count, entries (a made-list's), or `u8` 1, `u32` step index, `u64` dev, `u64` ino (a node) |
//!
//! A made entry is `u8` 1 for a directory (0 a file), `u64` dev, `u64` ino, a location.
//! A location is `u8` 0 and a text (a host path), `u8` 1 and two texts (`[ROOT]PATH`), or
//! `u8` 2 and a text (a path in the current root; init sends the host's view instead).
//! A report too long for one packet goes as several, a made-list split over several items
//! for the same handle; the receiver appends them ([`report_messages`] packs and splits).

use std::os::fd::{AsRawFd, OwnedFd};

use berth_core::plan::{ContainerPath, HostPath, Location, SyncPoint};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv, send};

use crate::fs::{FileId, MadeEntry};

/// The largest packet either side sends or accepts (well below the socket's send buffer).
pub(crate) const MSG_MAX: usize = 32 * 1024;

/// Room for a failure's text.
const DETAIL_MAX: usize = 1024;

/// A message between the runtime and init.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Msg {
    /// runtime -> init, once, right after the clone: init's pid as the runtime sees it.
    Pid(i32),
    /// runtime -> init: the runtime signalled this sync point; init's `wait` returns.
    Go(SyncPoint),
    /// runtime -> init: a runtime step failed; init exits (undoing nothing).
    Abort,
    /// init -> runtime: init signalled this sync point.
    Signal(SyncPoint),
    /// init -> runtime: init's step `index` failed; init exits (undoing nothing).
    Failed {
        /// The failing step's index in the plan.
        index: u32,
        /// The errno, 0 for none.
        errno: i32,
        /// What failed, without the step (`mount failed`), cut to fit.
        detail: String,
    },
    /// init -> runtime: init read an abort and exits.
    Aborted,
    /// init -> runtime, before its next message of the above: what init made since its
    /// previous message, as the host's mount namespace names it.
    Report(Vec<Made>),
}

/// One item of a [`Msg::Report`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Made {
    /// Entries init made for a made-list handle, outermost first; appended to the runtime's
    /// binding of that handle.
    List {
        /// The handle's number.
        handle: u32,
        /// What was made.
        entries: Vec<MadeEntry>,
    },
    /// The file init's `mknod` or `ln -s` step `step` made.
    Node {
        /// The step's index in the plan.
        step: u32,
        /// The file it made.
        id: FileId,
    },
}

/// Appends fields to a packet.
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn text(&mut self, s: &str) {
        self.u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(s.as_bytes());
    }
    fn location(&mut self, loc: &Location) {
        match loc {
            Location::Host(h) => {
                self.u8(0);
                self.text(h.as_str());
            }
            Location::InRoot { root, path } => {
                self.u8(1);
                self.text(root.as_str());
                self.text(path.as_str());
            }
            // Init sends the host's view (`fs::host_view`), so this is not on the wire in
            // practice; it round-trips all the same.
            Location::Container(path) => {
                self.u8(2);
                self.text(path.as_str());
            }
        }
    }
    fn entry(&mut self, e: &MadeEntry) {
        self.u8(u8::from(e.dir));
        self.u64(e.id.dev);
        self.u64(e.id.ino);
        self.location(&e.loc);
    }
    fn item(&mut self, m: &Made) {
        match m {
            Made::List { handle, entries } => {
                self.u8(0);
                self.u32(*handle);
                self.u32(u32::try_from(entries.len()).unwrap_or(u32::MAX));
                for e in entries {
                    self.entry(e);
                }
            }
            Made::Node { step, id } => {
                self.u8(1);
                self.u32(*step);
                self.u64(id.dev);
                self.u64(id.ino);
            }
        }
    }
}

/// Reads fields from a packet; `None` past its end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn text(&mut self) -> Option<String> {
        let n = usize::try_from(self.u32()?).ok()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn point(&mut self) -> Option<SyncPoint> {
        // The text name is also the serde name: the format needs no list of the points.
        serde_json::from_value(serde_json::Value::String(self.text()?)).ok()
    }
    fn location(&mut self) -> Option<Location> {
        match self.u8()? {
            0 => Some(Location::Host(HostPath::new(self.text()?))),
            1 => {
                let root = HostPath::new(self.text()?);
                let path = ContainerPath::parse(&self.text()?).ok()?;
                Some(Location::InRoot { root, path })
            }
            2 => Some(Location::Container(
                ContainerPath::parse(&self.text()?).ok()?,
            )),
            _ => None,
        }
    }
    fn entry(&mut self) -> Option<MadeEntry> {
        let dir = match self.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let id = FileId {
            dev: self.u64()?,
            ino: self.u64()?,
        };
        Some(MadeEntry {
            loc: self.location()?,
            dir,
            id,
        })
    }
    /// A count of items that take at least `min` bytes each, checked against what is left,
    /// so a bad count cannot make the reader allocate.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = usize::try_from(self.u32()?).ok()?;
        (n <= self.0.len() / min).then_some(n)
    }
    fn item(&mut self) -> Option<Made> {
        Some(match self.u8()? {
            0 => {
                let handle = self.u32()?;
                let n = self.count(ENTRY_MIN)?;
                let entries = (0..n).map(|_| self.entry()).collect::<Option<Vec<_>>>()?;
                Made::List { handle, entries }
            }
            1 => Made::Node {
                step: self.u32()?,
                id: FileId {
                    dev: self.u64()?,
                    ino: self.u64()?,
                },
            },
            _ => return None,
        })
    }
}

/// The fewest bytes a made entry takes (a file, two ids, a host location with no text).
const ENTRY_MIN: usize = 1 + 8 + 8 + 1 + 4;
/// The fewest bytes a report item takes (a node).
const ITEM_MIN: usize = 1 + 4 + 8 + 8;

/// `text` cut to at most `max` bytes, on a char boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut n = text.len().min(max);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    &text[..n]
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64));
        match self {
            Msg::Pid(pid) => {
                w.u8(1);
                w.i32(*pid);
            }
            Msg::Go(p) => {
                w.u8(2);
                w.text(&p.to_string());
            }
            Msg::Abort => w.u8(3),
            Msg::Signal(p) => {
                w.u8(4);
                w.text(&p.to_string());
            }
            Msg::Failed {
                index,
                errno,
                detail,
            } => {
                w.u8(5);
                w.u32(*index);
                w.i32(*errno);
                w.text(cut(detail, DETAIL_MAX));
            }
            Msg::Aborted => w.u8(6),
            Msg::Report(items) => {
                w.u8(7);
                w.u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
                for m in items {
                    w.item(m);
                }
            }
        }
        w.0
    }

    fn decode(b: &[u8]) -> Option<Msg> {
        let mut r = Reader(b);
        let msg = match r.u8()? {
            1 => Msg::Pid(r.i32()?),
            2 => Msg::Go(r.point()?),
            3 => Msg::Abort,
            4 => Msg::Signal(r.point()?),
            5 => Msg::Failed {
                index: r.u32()?,
                errno: r.i32()?,
                detail: r.text()?,
            },
            6 => Msg::Aborted,
            7 => {
                let n = r.count(ITEM_MIN)?;
                Msg::Report((0..n).map(|_| r.item()).collect::<Option<Vec<_>>>()?)
            }
            _ => return None,
        };
        // Trailing bytes: not a message of ours.
        r.0.is_empty().then_some(msg)
    }
}

/// `items` as [`Msg::Report`]s of at most [`MSG_MAX`] bytes each, in order: one message
/// unless they do not fit, a long made-list split into several items for its handle; none
/// for no items.
pub(crate) fn report_messages(items: Vec<Made>) -> Vec<Msg> {
    // Tag and count; a list item's own header: kind, handle, count.
    const HEADER: usize = 5;
    const LIST_HEADER: usize = 9;
    let mut out = Vec::new();
    let mut report: Vec<Made> = Vec::new();
    let mut size = HEADER;
    let mut flush = |report: &mut Vec<Made>, size: &mut usize| {
        if !report.is_empty() {
            out.push(Msg::Report(std::mem::take(report)));
        }
        *size = HEADER;
    };
    for item in items {
        match item {
            Made::Node { .. } => {
                if size + ITEM_MIN > MSG_MAX {
                    flush(&mut report, &mut size);
                }
                size += ITEM_MIN;
                report.push(item);
            }
            Made::List { handle, entries } => {
                if size + LIST_HEADER > MSG_MAX {
                    flush(&mut report, &mut size);
                }
                size += LIST_HEADER;
                let mut part: Vec<MadeEntry> = Vec::new();
                for e in entries {
                    let mut w = Writer(Vec::new());
                    w.entry(&e);
                    let n = w.0.len();
                    // Does not fit, and this message holds more than this list's header:
                    // close it. (An entry too long for any message goes alone; sending it
                    // fails.)
                    if size + n > MSG_MAX && size > HEADER + LIST_HEADER {
                        if !part.is_empty() {
                            report.push(Made::List {
                                handle,
                                entries: std::mem::take(&mut part),
                            });
                        }
                        flush(&mut report, &mut size);
                        size += LIST_HEADER;
                    }
                    size += n;
                    part.push(e);
                }
                report.push(Made::List {
                    handle,
                    entries: part,
                });
            }
        }
    }
    flush(&mut report, &mut size);
    out
}

/// Sends one message; a closed peer is `EPIPE` (no SIGPIPE), a message larger than
/// [`MSG_MAX`] (one made entry whose paths are that long) `EMSGSIZE`.
pub(crate) fn send_msg(sock: &OwnedFd, msg: &Msg) -> nix::Result<()> {
    let buf = msg.encode();
    if buf.len() > MSG_MAX {
        return Err(Errno::EMSGSIZE);
    }
    loop {
        match send(sock.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(()),
        }
    }
}

/// What [`recv_msg`] read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// A message.
    Msg(Msg),
    /// The peer closed its end (exited, exec'd, or dropped the socket).
    Eof,
    /// Bytes that are no message of ours.
    Garbage,
}

/// Receives one message, blocking.
pub(crate) fn recv_msg(sock: &OwnedFd) -> nix::Result<Received> {
    let mut buf = vec![0u8; MSG_MAX];
    let n = loop {
        // MSG_TRUNC: the packet's real length, so a longer one is seen, not cut.
        match recv(sock.as_raw_fd(), &mut buf, MsgFlags::MSG_TRUNC) {
            Err(Errno::EINTR) => continue,
            // A peer that exits with unread data resets the connection: same as a close.
            Err(Errno::ECONNRESET) => return Ok(Received::Eof),
            Err(e) => return Err(e),
            Ok(n) => break n,
        }
    };
    if n == 0 {
        return Ok(Received::Eof);
    }
    if n > buf.len() {
        return Ok(Received::Garbage);
    }
    Ok(Msg::decode(&buf[..n]).map_or(Received::Garbage, Received::Msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64, root: &str, path: &str) -> MadeEntry {
        MadeEntry {
            loc: Location::InRoot {
                root: HostPath::new(root),
                path: ContainerPath::parse(path).unwrap(),
            },
            dir: i.is_multiple_of(2),
            id: FileId { dev: 7, ino: i },
        }
    }

    #[test]
    fn every_message_round_trips() {
        let msgs = [
            Msg::Pid(4242),
            Msg::Go(SyncPoint::Start),
            Msg::Abort,
            Msg::Signal(SyncPoint::NamespacesReady),
            Msg::Failed {
                index: 17,
                errno: 2,
                detail: "mount failed".to_owned(),
            },
            Msg::Aborted,
            Msg::Report(vec![
                Made::List {
                    handle: 3,
                    entries: vec![
                        entry(1, "/b/rootfs", "/proc"),
                        MadeEntry {
                            loc: Location::Host(HostPath::new("/run/x")),
                            dir: true,
                            id: FileId {
                                dev: u64::MAX,
                                ino: 0,
                            },
                        },
                        MadeEntry {
                            loc: Location::Container(ContainerPath::parse("/dev/pts").unwrap()),
                            dir: true,
                            id: FileId { dev: 1, ino: 1 },
                        },
                    ],
                },
                Made::List {
                    handle: 0,
                    entries: Vec::new(),
                },
                Made::Node {
                    step: 99,
                    id: FileId { dev: 1, ino: 2 },
                },
            ]),
            Msg::Report(Vec::new()),
        ];
        for m in msgs {
            assert_eq!(Msg::decode(&m.encode()), Some(m));
        }
        for p in [SyncPoint::Configured, SyncPoint::Created, SyncPoint::Start] {
            assert_eq!(Msg::decode(&Msg::Go(p).encode()), Some(Msg::Go(p)));
            assert_eq!(Msg::decode(&Msg::Signal(p).encode()), Some(Msg::Signal(p)));
        }
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let detail = "é".repeat(3000);
        let Some(Msg::Failed { detail: got, .. }) = Msg::decode(
            &Msg::Failed {
                index: 1,
                errno: 0,
                detail,
            }
            .encode(),
        ) else {
            panic!("did not decode");
        };
        assert_eq!(got.len(), DETAIL_MAX);
        assert!(got.chars().all(|c| c == 'é'));
    }

    #[test]
    fn short_long_or_unknown_bytes_are_not_messages() {
        assert_eq!(Msg::decode(&[]), None);
        assert_eq!(Msg::decode(&[1, 2, 3]), None);
        assert_eq!(Msg::decode(&[99]), None);
        let mut trailing = Msg::Abort.encode();
        trailing.push(0);
        assert_eq!(Msg::decode(&trailing), None);
        // A count far beyond the bytes present.
        let mut b = vec![7u8];
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Msg::decode(&b), None);
        // A container path that core would not build.
        let mut w = Writer(vec![7]);
        w.u32(1);
        w.u8(0);
        w.u32(1);
        w.u32(1);
        w.u8(1);
        w.u64(1);
        w.u64(1);
        w.u8(1);
        w.text("/b/rootfs");
        w.text("../etc");
        assert_eq!(Msg::decode(&w.0), None);
    }

    #[test]
    fn a_long_report_is_split_and_appends_back_whole() {
        let long = format!("/{}", "d".repeat(200));
        let list = |handle: u32, n: u64| Made::List {
            handle,
            entries: (0..n)
                .map(|i| entry(i, "/some/root", &format!("{long}/{i}")))
                .collect(),
        };
        let node = |step| Made::Node {
            step,
            id: FileId { dev: 1, ino: 2 },
        };
        let items = vec![node(1), list(5, 1000), node(2), list(6, 3), list(7, 0)];
        let msgs = report_messages(items.clone());
        assert!(msgs.len() > 1, "{}", msgs.len());
        // Reassembled as the runtime does: lists of a handle appended, in order.
        let mut lists: Vec<(u32, Vec<MadeEntry>)> = Vec::new();
        let mut nodes = Vec::new();
        for m in &msgs {
            let bytes = m.encode();
            assert!(bytes.len() <= MSG_MAX);
            let Some(Msg::Report(got)) = Msg::decode(&bytes) else {
                panic!("did not decode");
            };
            assert!(!got.is_empty());
            for item in got {
                match item {
                    Made::List { handle, entries } => match lists.last_mut() {
                        Some((h, all)) if *h == handle => all.extend(entries),
                        _ => lists.push((handle, entries)),
                    },
                    Made::Node { step, .. } => nodes.push(step),
                }
            }
        }
        let want: Vec<(u32, Vec<MadeEntry>)> = items
            .iter()
            .filter_map(|m| match m {
                Made::List { handle, entries } => Some((*handle, entries.clone())),
                Made::Node { .. } => None,
            })
            .collect();
        assert_eq!(lists, want);
        assert_eq!(nodes, [1, 2]);
        // Small reports are one message; none is none.
        assert_eq!(report_messages(vec![node(1), list(2, 3)]).len(), 1);
        assert!(report_messages(Vec::new()).is_empty());
    }

    #[test]
    fn a_closed_peer_reads_as_eof() {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let made = Msg::Report(vec![Made::List {
            handle: 1,
            entries: vec![entry(2, "/r", "/x")],
        }]);
        send_msg(&a, &made).unwrap();
        send_msg(&a, &Msg::Go(SyncPoint::Configured)).unwrap();
        assert_eq!(recv_msg(&b).unwrap(), Received::Msg(made));
        assert_eq!(
            recv_msg(&b).unwrap(),
            Received::Msg(Msg::Go(SyncPoint::Configured))
        );
        drop(a);
        assert_eq!(recv_msg(&b).unwrap(), Received::Eof);
        assert_eq!(send_msg(&b, &Msg::Aborted), Err(Errno::EPIPE));
    }
}
