//! Container logs in docker's `json-file` format: one JSON object per line,
//! `{"log":"hi\n","stream":"stdout","time":"2026-11-27T23:59:01.123456789Z"}`.
//!
//! The pure half: timestamps (given, never read from a clock), the record codec and the
//! [`LineSplitter`] that cuts a pipe's bytes into messages. The files are the Linux
//! backend's (`berth_backend_linux::jsonlog`).
//!
//! Invariant: [`encode`] writes byte for byte what docker's `jsonlog.JSONLogs.MarshalJSONBuf`
//! writes (Go's string escaping, invalid UTF-8 as one `\ufffd` per byte, RFC 3339 time with
//! trailing zeros of the fraction trimmed), so docker's tools read berth's logs and back.
//! As in docker, a message is partial exactly when its text does not end in `\n`.

use std::fmt::Write as _;

/// A record that is not a json-file log line, or a timestamp that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonLogError {
    /// Not a JSON object with a string `log` and `stream` and a `time`.
    #[error("not a json-file log record ({reason}): {record:?}")]
    NotARecord {
        /// Why the JSON decoder refused it.
        reason: String,
        /// The start of the record (at most 80 characters).
        record: String,
    },
    /// A `stream` other than `stdout` and `stderr`.
    #[error("unknown log stream {stream:?}")]
    UnknownStream {
        /// The stream's name.
        stream: String,
    },
    /// A `time` that is not an RFC 3339 timestamp.
    #[error("{text:?} is not an RFC 3339 timestamp")]
    BadTime {
        /// The text.
        text: String,
    },
}

/// A point in time: seconds and nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z (negative before it).
    pub secs: i64,
    /// Nanoseconds past `secs`, below 1 000 000 000.
    pub nanos: u32,
}

const NANOS_PER_SEC: u32 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

impl Timestamp {
    /// The time `since_epoch` after 1970-01-01T00:00:00Z (the caller reads the clock).
    pub fn from_epoch(since_epoch: std::time::Duration) -> Self {
        Timestamp {
            secs: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
            nanos: since_epoch.subsec_nanos(),
        }
    }

    /// RFC 3339 to the second, as docker prints times (`2026-11-27T23:59:01Z`).
    pub fn format_secs(&self) -> String {
        let (mut s, _) = self.civil();
        s.push('Z');
        s
    }

    /// RFC 3339 with the fraction's trailing zeros trimmed (Go's `time.RFC3339Nano`, what
    /// json-file stores): `2026-11-27T23:59:01.1234Z`, `2026-11-27T23:59:01Z`.
    pub fn format_nano(&self) -> String {
        let (mut s, nanos) = self.civil();
        if nanos != 0 {
            let digits = format!("{nanos:09}");
            s.push('.');
            s.push_str(digits.trim_end_matches('0'));
        }
        s.push('Z');
        s
    }

    /// RFC 3339 with always nine fraction digits (docker's `RFC3339NanoFixed`, the prefix
    /// `docker logs -t` prints): `2026-11-27T23:59:01.123400000Z`.
    pub fn format_fixed(&self) -> String {
        let (mut s, nanos) = self.civil();
        let _ = write!(s, ".{nanos:09}Z");
        s
    }

    /// `YYYY-MM-DDTHH:MM:SS` in UTC and the nanoseconds; years outside 0..=9999 are written
    /// as Go's `Format` writes them (a sign, more digits), which docker itself refuses.
    fn civil(&self) -> (String, u32) {
        let secs = self
            .secs
            .saturating_add(i64::from(self.nanos / NANOS_PER_SEC));
        let nanos = self.nanos % NANOS_PER_SEC;
        let days = secs.div_euclid(SECS_PER_DAY);
        let rem = secs.rem_euclid(SECS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let year = if y < 0 {
            format!("-{:04}", y.unsigned_abs())
        } else {
            format!("{y:04}")
        };
        let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
        (
            format!("{year}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}"),
            nanos,
        )
    }

    /// Parses an RFC 3339 timestamp as Go's `time.Time` JSON decoder does: a four-digit
    /// year, an optional fraction of 1 to 9 digits, and `Z` or a `+hh:mm`/`-hh:mm` offset.
    pub fn parse(text: &str) -> Result<Self, JsonLogError> {
        parse_rfc3339(text.as_bytes()).ok_or_else(|| JsonLogError::BadTime {
            text: text.to_owned(),
        })
    }
}

impl std::fmt::Display for Timestamp {
    /// Writes [`Timestamp::format_nano`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.format_nano())
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) to days since 1970-01-01; Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = y - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn parse_rfc3339(t: &[u8]) -> Option<Timestamp> {
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = t.get(range)?;
        digits.iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let sep = |i: usize, c: u8| (t.get(i) == Some(&c)).then_some(());
    let year = i64::from(num(0..4)?);
    sep(4, b'-')?;
    let month = num(5..7)?;
    sep(7, b'-')?;
    let day = num(8..10)?;
    sep(10, b'T')?;
    let (hour, min) = (num(11..13)?, num(14..16)?);
    sep(13, b':')?;
    sep(16, b':')?;
    let sec = num(17..19)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0;
    if t.get(i) == Some(&b'.') {
        let digits = t[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        nanos = num(i + 1..i + 1 + digits)? * 10u32.pow(9 - digits as u32);
        i += 1 + digits;
    }
    let offset = match t.get(i..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * SECS_PER_DAY
        + i64::from(hour * 3600 + min * 60 + sec)
        - offset;
    Some(Timestamp { secs, nanos })
}

/// Which of the container's output pipes a message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// File descriptor 1.
    Stdout,
    /// File descriptor 2.
    Stderr,
}

impl Stream {
    /// The name json-file stores: `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One log message: a line with its `\n`, or a piece of a longer line without one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The pipe it came from.
    pub stream: Stream,
    /// The text as the container wrote it, `\n` included when the line is complete.
    pub bytes: Vec<u8>,
    /// When the monitor read it.
    pub time: Timestamp,
    /// True when `bytes` is not a whole line (does not end in `\n`): a piece of a line
    /// longer than [`LineSplitter::MAX_MESSAGE`], or the last, unterminated output.
    pub partial: bool,
}

/// The record of `line`: `{"log":...,"stream":...,"time":...}` and a newline, as docker
/// writes it. `log` is left out when empty (Go's `omitempty`); `bytes` are written as
/// they are (json-file has no partial flag: `partial` is the missing `\n`).
pub fn encode(line: &LogLine) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.bytes.len() + 64);
    out.push(b'{');
    if !line.bytes.is_empty() {
        out.extend_from_slice(b"\"log\":");
        write_go_string(&mut out, &line.bytes);
        out.push(b',');
    }
    out.extend_from_slice(b"\"stream\":\"");
    out.extend_from_slice(line.stream.as_str().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    out.extend_from_slice(line.time.format_nano().as_bytes());
    out.extend_from_slice(b"\"}\n");
    out
}

/// Writes `s` as a JSON string the way docker's `ffjsonWriteJSONBytesAsString` does:
/// `"`, `\` escaped; `\n`, `\r` short; other controls and `<`, `>`, `&` as `\u00XX`;
/// U+2028 and U+2029 escaped; each byte of invalid UTF-8 as `\ufffd`.
fn write_go_string(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' | '\\' => out.extend_from_slice(&[b'\\', c as u8]),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\u{0}'..='\u{1f}' | '<' | '>' | '&' => {
                    let b = c as u8;
                    out.extend_from_slice(b"\\u00");
                    out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
                }
                '\u{2028}' => out.extend_from_slice(b"\\u2028"),
                '\u{2029}' => out.extend_from_slice(b"\\u2029"),
                _ => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        // Go's utf8.DecodeRune reports an invalid sequence one byte at a time.
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

#[derive(serde::Deserialize)]
struct Record {
    #[serde(default)]
    log: String,
    #[serde(default)]
    stream: String,
    time: String,
}

/// Parses one record (its trailing newline optional); `attrs` and unknown keys are
/// ignored, a missing `log` is empty.
pub fn decode(record: &[u8]) -> Result<LogLine, JsonLogError> {
    let r: Record = serde_json::from_slice(record).map_err(|e| JsonLogError::NotARecord {
        reason: e.to_string(),
        record: String::from_utf8_lossy(record).chars().take(80).collect(),
    })?;
    let stream = match r.stream.as_str() {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return Err(JsonLogError::UnknownStream { stream: r.stream }),
    };
    Ok(LogLine {
        stream,
        partial: !r.log.ends_with('\n'),
        bytes: r.log.into_bytes(),
        time: Timestamp::parse(&r.time)?,
    })
}

/// Cuts one pipe's output into messages as docker's log copier does: each line (with its
/// `\n`) is one message, and a line that does not fit in [`Self::MAX_MESSAGE`] bytes is
/// cut into partial messages of that size. The result does not depend on how the bytes
/// were chunked, and the messages' bytes concatenated are the input.
#[derive(Clone, Debug)]
pub struct LineSplitter {
    stream: Stream,
    pending: Vec<u8>,
}

impl LineSplitter {
    /// The most bytes in one message, `\n` included (docker's copier buffer, 16 KiB).
    pub const MAX_MESSAGE: usize = 16 * 1024;

    /// A splitter for the output of `stream`.
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
        }
    }

    /// Takes the next bytes read from the pipe; returns the messages they complete, all
    /// stamped `time`.
    pub fn push(&mut self, chunk: &[u8], time: Timestamp) -> Vec<LogLine> {
        self.pending.extend_from_slice(chunk);
        let mut lines = Vec::new();
        let mut start = 0;
        loop {
            let rest = &self.pending[start..];
            let window = &rest[..rest.len().min(Self::MAX_MESSAGE)];
            let (len, partial) = match window.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, false),
                None if window.len() == Self::MAX_MESSAGE => (window.len(), true),
                None => break,
            };
            lines.push(self.line(&rest[..len], time, partial));
            start += len;
        }
        self.pending.drain(..start);
        lines
    }

    /// The pipe reached end of file: what is left (output without a final `\n`) as a last,
    /// partial message, if any.
    pub fn finish(&mut self, time: Timestamp) -> Option<LogLine> {
        let rest = std::mem::take(&mut self.pending);
        (!rest.is_empty()).then_some(LogLine {
            stream: self.stream,
            bytes: rest,
            time,
            partial: true,
        })
    }

    fn line(&self, bytes: &[u8], time: Timestamp, partial: bool) -> LogLine {
        LogLine {
            stream: self.stream,
            bytes: bytes.to_vec(),
            time,
            partial,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(secs: i64, nanos: u32) -> Timestamp {
        Timestamp { secs, nanos }
    }

    fn line(bytes: &[u8]) -> LogLine {
        LogLine {
            stream: Stream::Stdout,
            bytes: bytes.to_vec(),
            time: ts(0, 0),
            partial: !bytes.ends_with(b"\n"),
        }
    }

    fn log_field(bytes: &[u8]) -> String {
        let rec = String::from_utf8(encode(&line(bytes))).unwrap();
        let rest = rec.strip_prefix("{\"log\":").unwrap();
        let end = rest.find(",\"stream\"").unwrap();
        rest[..end].to_owned()
    }

    #[test]
    fn timestamps_format_as_go_rfc3339nano() {
        // 2026-11-27T23:59:01Z
        let t = ts(1_795_823_941, 123_456_789);
        assert_eq!(t.format_nano(), "2026-11-27T23:59:01.123456789Z");
        assert_eq!(t.format_fixed(), "2026-11-27T23:59:01.123456789Z");
        let t = ts(1_795_823_941, 120_000_000);
        assert_eq!(t.format_nano(), "2026-11-27T23:59:01.12Z");
        assert_eq!(t.format_fixed(), "2026-11-27T23:59:01.120000000Z");
        assert_eq!(ts(1_795_823_941, 0).to_string(), "2026-11-27T23:59:01Z");
        assert_eq!(ts(0, 1).format_nano(), "1970-01-01T00:00:00.000000001Z");
        // docker's own test: the zero time.Time.
        assert_eq!(ts(-62_135_596_800, 0).format_nano(), "0001-01-01T00:00:00Z");
        assert_eq!(ts(-1, 0).format_nano(), "1969-12-31T23:59:59Z");
        assert_eq!(ts(951_782_400, 0).format_nano(), "2000-02-29T00:00:00Z");
        assert_eq!(ts(0, 1_500_000_000).format_nano(), "1970-01-01T00:00:01.5Z");
    }

    #[test]
    fn timestamps_parse() {
        let t = ts(1_795_823_941, 123_456_789);
        assert_eq!(Timestamp::parse("2026-11-27T23:59:01.123456789Z"), Ok(t));
        assert_eq!(
            Timestamp::parse("2026-11-28T01:59:01.123456789+02:00"),
            Ok(t)
        );
        assert_eq!(
            Timestamp::parse("2026-11-27T23:59:01.1Z"),
            Ok(ts(t.secs, 100_000_000))
        );
        assert_eq!(
            Timestamp::parse("0001-01-01T00:00:00Z"),
            Ok(ts(-62_135_596_800, 0))
        );
        for bad in [
            "",
            "2026-11-27",
            "2026-11-27T23:59:01",
            "2026-11-27T23:59:01.Z",
            "2026-11-27T23:59:01.1234567890Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T23:59:60Z",
            "2026-11-27 23:59:01Z",
            "2026-11-27T23:59:01Zjunk",
            "2026-11-27T23:59:01+2:00",
            "+026-11-27T23:59:01Z",
        ] {
            assert_eq!(
                Timestamp::parse(bad),
                Err(JsonLogError::BadTime { text: bad.into() }),
                "{bad}"
            );
        }
    }

    #[test]
    fn records_are_docker_bytes() {
        let l = LogLine {
            stream: Stream::Stderr,
            bytes: b"hello\n".to_vec(),
            time: ts(1_795_823_941, 123_456_789),
            partial: false,
        };
        assert_eq!(
            encode(&l),
            b"{\"log\":\"hello\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-27T23:59:01.123456789Z\"}\n"
        );
        let empty = LogLine { bytes: vec![], ..l };
        assert_eq!(
            encode(&empty),
            b"{\"stream\":\"stderr\",\"time\":\"2026-11-27T23:59:01.123456789Z\"}\n"
        );
    }

    #[test]
    fn strings_escape_as_docker_does() {
        // The cases of docker's jsonlogbytes_test.go.
        assert_eq!(
            log_field(br#""A log line with \\""#),
            r#""\"A log line with \\\\\"""#
        );
        assert_eq!(log_field(b"A log line with \r"), r#""A log line with \r""#);
        assert_eq!(
            log_field(b"A log line with & < >"),
            r#""A log line with \u0026 \u003c \u003e""#
        );
        let utf8 = "A log line with utf8 : 🚀 ψ ω β";
        assert_eq!(log_field(utf8.as_bytes()), format!("\"{utf8}\""));
        assert_eq!(
            log_field("\u{2028} \u{2029}".as_bytes()),
            r#""\u2028 \u2029""#
        );
        assert_eq!(log_field(&[0xaf]), r#""\ufffd""#);
        assert_eq!(log_field(&[0x7f]), "\"\x7f\"");
        // Other controls go long; each byte of a bad sequence is one U+FFFD, as in Go.
        assert_eq!(log_field(b"\t\x00\x1b\n"), r#""\u0009\u0000\u001b\n""#);
        assert_eq!(log_field(&[b'a', 0xe2, 0x82, b'b']), r#""a\ufffd\ufffdb""#);
        assert_eq!(log_field(&[0xed, 0xa0, 0x80]), r#""\ufffd\ufffd\ufffd""#);
        assert_eq!(log_field("\u{fffd}".as_bytes()), "\"\u{fffd}\"");
    }

    #[test]
    fn decode_reads_docker_records() {
        let rec = br#"{"log":"a\u003cb\ufffd\n","stream":"stdout","attrs":{"tag":"x"},"time":"2017-09-01T01:01:01.000000001Z"}"#;
        let l = decode(rec).unwrap();
        assert_eq!(l.stream, Stream::Stdout);
        assert_eq!(l.bytes, "a<b\u{fffd}\n".as_bytes());
        assert_eq!(l.time, ts(1_504_227_661, 1));
        assert!(!l.partial);
        let l = decode(b"{\"stream\":\"stderr\",\"time\":\"2017-09-01T01:01:01Z\"}\n").unwrap();
        assert_eq!((l.bytes.len(), l.partial), (0, true));
    }

    #[test]
    fn decode_refuses_bad_records() {
        assert!(matches!(
            decode(b"{\"log\":"),
            Err(JsonLogError::NotARecord { .. })
        ));
        assert!(matches!(
            decode(b"{\"log\":\"x\"}"),
            Err(JsonLogError::NotARecord { .. })
        ));
        assert_eq!(
            decode(br#"{"log":"x","stream":"stdin","time":"2017-09-01T01:01:01Z"}"#),
            Err(JsonLogError::UnknownStream {
                stream: "stdin".into()
            })
        );
        assert_eq!(
            decode(br#"{"log":"x","stream":"stdout","time":"yesterday"}"#),
            Err(JsonLogError::BadTime {
                text: "yesterday".into()
            })
        );
    }

    #[test]
    fn splitter_cuts_lines_and_long_lines() {
        let t = ts(5, 0);
        let mut s = LineSplitter::new(Stream::Stderr);
        assert_eq!(s.push(b"ab", t), vec![]);
        let out = s.push(b"c\nd\n\ne", t);
        let texts: Vec<_> = out.iter().map(|l| (l.bytes.clone(), l.partial)).collect();
        assert_eq!(
            texts,
            vec![
                (b"abc\n".to_vec(), false),
                (b"d\n".to_vec(), false),
                (b"\n".to_vec(), false)
            ]
        );
        assert!(
            out.iter()
                .all(|l| l.stream == Stream::Stderr && l.time == t)
        );
        let last = s.finish(t).unwrap();
        assert_eq!((last.bytes, last.partial), (b"e".to_vec(), true));
        assert_eq!(s.finish(t), None);

        // docker: 16383 bytes and a newline fit one message; one more byte does not.
        let max = LineSplitter::MAX_MESSAGE;
        let mut s = LineSplitter::new(Stream::Stdout);
        let mut fits = vec![b'x'; max - 1];
        fits.push(b'\n');
        assert_eq!(
            s.push(&fits, t),
            vec![LogLine {
                time: t,
                ..line(&fits)
            }]
        );
        let mut long = vec![b'y'; max];
        long.push(b'\n');
        let out = s.push(&long, t);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].bytes.len(), out[0].partial), (max, true));
        assert_eq!(
            (out[1].bytes.as_slice(), out[1].partial),
            (&b"\n"[..], false)
        );
    }

    fn arb_time() -> impl Strategy<Value = Timestamp> {
        // Years 0000 to 9999, what RFC 3339 (and docker) can write.
        (-62_167_219_200i64..=253_402_300_799, 0u32..NANOS_PER_SEC)
            .prop_map(|(secs, nanos)| Timestamp { secs, nanos })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            max_shrink_iters: 2048,
            ..ProptestConfig::default()
        })]

        #[test]
        fn encode_decode_round_trip(text in any::<String>(), stderr in any::<bool>(), time in arb_time()) {
            let l = LogLine {
                stream: if stderr { Stream::Stderr } else { Stream::Stdout },
                partial: !text.ends_with('\n'),
                bytes: text.into_bytes(),
                time,
            };
            let rec = encode(&l);
            prop_assert_eq!(rec.iter().filter(|&&b| b == b'\n').count(), 1, "{:?}", rec);
            prop_assert_eq!(decode(&rec), Ok(l));
        }

        #[test]
        fn time_round_trips(time in arb_time()) {
            prop_assert_eq!(Timestamp::parse(&time.format_nano()), Ok(time));
            prop_assert_eq!(Timestamp::parse(&time.format_fixed()), Ok(time));
        }

        #[test]
        fn any_bytes_encode_to_json(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            // Oracle: Go's decoder steps one byte past each invalid sequence start.
            let mut want = Vec::new();
            let mut rest = &bytes[..];
            while let Err(e) = std::str::from_utf8(rest) {
                want.extend_from_slice(&rest[..e.valid_up_to()]);
                let bad = e.error_len().unwrap_or(rest.len() - e.valid_up_to());
                want.extend("\u{fffd}".repeat(bad).bytes());
                rest = &rest[e.valid_up_to() + bad..];
            }
            want.extend_from_slice(rest);
            let rec = encode(&line(&bytes));
            prop_assert_eq!(decode(&rec).map(|l| l.bytes), Ok(want));
        }

        #[test]
        fn splitting_keeps_bytes_whatever_the_chunks(
            runs in proptest::collection::vec((0usize..20_000, any::<bool>()), 0..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            // Runs of bytes other than `\n` (some longer than a message), each maybe ended.
            let mut text = Vec::new();
            for (len, newline) in runs {
                text.extend((0..len).map(|i| (i % 251) as u8 | 0x80));
                if newline {
                    text.push(b'\n');
                }
            }
            let t = ts(1, 0);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(text.len() + 1)).collect();
            cuts.sort_unstable();
            let mut s = LineSplitter::new(Stream::Stdout);
            let mut out = Vec::new();
            let mut at = 0;
            for cut in cuts.into_iter().chain([text.len()]) {
                out.extend(s.push(&text[at..cut], t));
                at = cut;
            }
            out.extend(s.finish(t));
            let mut whole = LineSplitter::new(Stream::Stdout);
            let mut once = whole.push(&text, t);
            once.extend(whole.finish(t));
            prop_assert_eq!(&out, &once);
            let joined: Vec<u8> = out.iter().flat_map(|l| l.bytes.iter().copied()).collect();
            prop_assert_eq!(joined, text);
            for l in &out {
                prop_assert!(!l.bytes.is_empty() && l.bytes.len() <= LineSplitter::MAX_MESSAGE);
                prop_assert_eq!(l.partial, !l.bytes.ends_with(b"\n"));
                prop_assert!(!l.bytes[..l.bytes.len() - 1].contains(&b'\n'));
            }
        }
    }
}
