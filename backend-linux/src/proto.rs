//! The few fixed-size messages the runtime and init exchange over their socketpair.
//!
//! Both processes hold the same plan (init is a copy of the runtime), so a message never
//! carries a step: only a sync point, a step index, an errno and a short text. The socket
//! is `SOCK_SEQPACKET`: one `send` is one message, and a closed peer reads as end of file.

use std::os::fd::{AsRawFd, OwnedFd};

use berth_core::plan::SyncPoint;
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv, send};

/// Size of every message on the wire.
pub(crate) const MSG_LEN: usize = 256;
/// Room for text in a message: what is left after the header and the sync point.
const TEXT_MAX: usize = MSG_LEN - 16 - 32;

/// Room for a sync point's name (`runtime-hooks-done`).
const POINT_MAX: usize = 32;

/// A sync point on the wire: its text name, which is also its serde name, so the message
/// format needs no list of the points.
fn put_point(b: &mut [u8; MSG_LEN], p: SyncPoint) {
    let name = p.to_string();
    let n = name.len().min(POINT_MAX);
    b[16 + TEXT_MAX..16 + TEXT_MAX + n].copy_from_slice(&name.as_bytes()[..n]);
}

fn get_point(b: &[u8]) -> Option<SyncPoint> {
    let field = &b[16 + TEXT_MAX..16 + TEXT_MAX + POINT_MAX];
    let end = field.iter().position(|c| *c == 0).unwrap_or(POINT_MAX);
    let name = std::str::from_utf8(&field[..end]).ok()?;
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

/// A message between the runtime and init.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Msg {
    /// runtime -> init, once, right after the clone: init's pid as the runtime sees it.
    Pid(i32),
    /// runtime -> init: the runtime signalled this sync point; init's `wait` returns.
    Go(SyncPoint),
    /// runtime -> init: a runtime step failed; init undoes its steps and exits.
    Abort,
    /// init -> runtime: init signalled this sync point.
    Signal(SyncPoint),
    /// init -> runtime: init's step `index` failed; init undid its steps and exits.
    Failed {
        /// The failing step's index in the plan.
        index: u32,
        /// The errno, 0 for none.
        errno: i32,
        /// What failed, without the step (`mount failed`), cut to fit.
        detail: String,
    },
    /// init -> runtime: init has undone its steps after an abort and exits.
    Aborted,
}

impl Msg {
    fn encode(&self) -> [u8; MSG_LEN] {
        let mut b = [0u8; MSG_LEN];
        let (tag, point, index, value, text): (u8, Option<SyncPoint>, u32, i32, &str) = match self {
            Msg::Pid(pid) => (1, None, 0, *pid, ""),
            Msg::Go(p) => (2, Some(*p), 0, 0, ""),
            Msg::Abort => (3, None, 0, 0, ""),
            Msg::Signal(p) => (4, Some(*p), 0, 0, ""),
            Msg::Failed {
                index,
                errno,
                detail,
            } => (5, None, *index, *errno, detail.as_str()),
            Msg::Aborted => (6, None, 0, 0, ""),
        };
        b[0] = tag;
        if let Some(p) = point {
            put_point(&mut b, p);
        }
        b[4..8].copy_from_slice(&index.to_le_bytes());
        b[8..12].copy_from_slice(&value.to_le_bytes());
        let mut cut = text.len().min(TEXT_MAX);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let len = u16::try_from(cut).unwrap_or(0);
        b[12..14].copy_from_slice(&len.to_le_bytes());
        b[16..16 + cut].copy_from_slice(&text.as_bytes()[..cut]);
        b
    }

    fn decode(b: &[u8]) -> Option<Msg> {
        if b.len() != MSG_LEN {
            return None;
        }
        let index = u32::from_le_bytes(b[4..8].try_into().ok()?);
        let value = i32::from_le_bytes(b[8..12].try_into().ok()?);
        let len = usize::from(u16::from_le_bytes(b[12..14].try_into().ok()?)).min(TEXT_MAX);
        let point = || get_point(b);
        Some(match b[0] {
            1 => Msg::Pid(value),
            2 => Msg::Go(point()?),
            3 => Msg::Abort,
            4 => Msg::Signal(point()?),
            5 => Msg::Failed {
                index,
                errno: value,
                detail: String::from_utf8_lossy(&b[16..16 + len]).into_owned(),
            },
            6 => Msg::Aborted,
            _ => return None,
        })
    }
}

/// Sends one message; a closed peer is `EPIPE` (no SIGPIPE).
pub(crate) fn send_msg(sock: &OwnedFd, msg: &Msg) -> nix::Result<()> {
    let buf = msg.encode();
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
    let mut buf = [0u8; MSG_LEN];
    let n = loop {
        match recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()) {
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
    Ok(Msg::decode(&buf[..n]).map_or(Received::Garbage, Received::Msg))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let detail = "é".repeat(300);
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
        assert_eq!(got.len(), TEXT_MAX);
        assert!(got.chars().all(|c| c == 'é'));
    }

    #[test]
    fn short_or_unknown_bytes_are_not_messages() {
        assert_eq!(Msg::decode(&[1, 2, 3]), None);
        let mut b = [0u8; MSG_LEN];
        b[0] = 99;
        assert_eq!(Msg::decode(&b), None);
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
        send_msg(&a, &Msg::Go(SyncPoint::Configured)).unwrap();
        assert_eq!(
            recv_msg(&b).unwrap(),
            Received::Msg(Msg::Go(SyncPoint::Configured))
        );
        drop(a);
        assert_eq!(recv_msg(&b).unwrap(), Received::Eof);
        assert_eq!(send_msg(&b, &Msg::Aborted), Err(Errno::EPIPE));
    }
}
