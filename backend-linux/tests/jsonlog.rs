//! Container log files against a real file system: rotation, `--tail` across rotated
//! files, following (with a rotation while following), partial lines joined on read,
//! and docker's plain output. No root needed.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_backend_linux::jsonlog::{
    LogReadError, LogWriter, ReadOptions, now, read_logs, write_plain,
};
use berth_core::jsonlog::{LineSplitter, LogLine, Stream, Timestamp, encode};

fn line(stream: Stream, text: &str, secs: i64) -> LogLine {
    LogLine {
        stream,
        bytes: text.as_bytes().to_vec(),
        time: Timestamp { secs, nanos: 0 },
        partial: !text.ends_with('\n'),
    }
}

fn numbered(i: usize) -> LogLine {
    line(Stream::Stdout, &format!("line {i:03}\n"), i as i64)
}

fn log_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("container-json.log")
}

fn rotated(path: &Path, k: u32) -> PathBuf {
    PathBuf::from(format!("{}.{k}", path.display()))
}

fn never() -> bool {
    false
}

/// All lines `read_logs` passes on, without following.
fn read_all(path: &Path, tail: Option<usize>) -> Result<Vec<LogLine>, LogReadError> {
    let mut got = Vec::new();
    let opts = ReadOptions {
        tail,
        follow: false,
        stop_following: &never,
        raw: false,
    };
    read_logs(path, &opts, &mut |l: &LogLine| {
        got.push(l.clone());
        Ok(())
    })?;
    Ok(got)
}

#[test]
fn writes_docker_records_and_reads_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut w = LogWriter::open(&path, None, 1).unwrap();
    let lines = [
        line(Stream::Stdout, "hello\n", 1),
        line(Stream::Stderr, "oops <&>\n", 2),
    ];
    for l in &lines {
        w.write(l).unwrap();
    }
    let file = std::fs::read(&path).unwrap();
    assert_eq!(file, [encode(&lines[0]), encode(&lines[1])].concat());
    assert!(
        file.starts_with(br#"{"log":"hello\n","stream":"stdout","time":"1970-01-01T00:00:01Z"}"#)
    );
    assert_eq!(read_all(&path, None).unwrap(), lines);
    // Mode 0640 (less what the umask takes away).
    let mode = std::fs::metadata(&path).unwrap().mode();
    assert_eq!(mode & 0o777 & !0o640, 0, "{mode:o}");
}

#[test]
fn rotates_at_max_size_keeping_max_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let record = encode(&numbered(0)).len() as u64;
    // Room for 3 records: the 4th write rotates first.
    let max = 3 * record;
    let mut w = LogWriter::open(&path, Some(max), 3).unwrap();
    for i in 0..20 {
        w.write(&numbered(i)).unwrap();
    }
    // 20 records, 3 per file: 18 rotated out (6 files), the last file holds 18 and 19.
    let records = |r: std::ops::Range<usize>| r.map(|i| encode(&numbered(i))).collect::<Vec<_>>();
    assert_eq!(std::fs::read(&path).unwrap(), records(18..20).concat());
    assert_eq!(
        std::fs::read(rotated(&path, 1)).unwrap(),
        records(15..18).concat()
    );
    assert_eq!(
        std::fs::read(rotated(&path, 2)).unwrap(),
        records(12..15).concat()
    );
    assert!(!rotated(&path, 3).exists());
    for p in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
        assert!(std::fs::metadata(&p).unwrap().len() <= max, "{p:?}");
    }
    // All of it, oldest file first.
    let all = read_all(&path, None).unwrap();
    assert_eq!(all, (12..20).map(numbered).collect::<Vec<_>>());

    // Reopened, the writer knows the file's size and goes on rotating.
    drop(w);
    let mut w = LogWriter::open(&path, Some(max), 3).unwrap();
    w.write(&numbered(20)).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), records(18..21).concat());
    w.write(&numbered(21)).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), records(21..22).concat());
    assert_eq!(
        std::fs::read(rotated(&path, 1)).unwrap(),
        records(18..21).concat()
    );
}

#[test]
fn max_files_one_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let record = encode(&numbered(0)).len() as u64;
    let mut w = LogWriter::open(&path, Some(2 * record), 1).unwrap();
    for i in 0..5 {
        w.write(&numbered(i)).unwrap();
    }
    assert_eq!(read_all(&path, None).unwrap(), vec![numbered(4)]);
    assert!(!rotated(&path, 1).exists());
}

#[test]
fn tail_counts_across_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let record = encode(&numbered(0)).len() as u64;
    let mut w = LogWriter::open(&path, Some(4 * record), 3).unwrap();
    for i in 0..10 {
        w.write(&numbered(i)).unwrap();
    }
    // Files: .2 = 0..4, .1 = 4..8, current = 8, 9.
    assert_eq!(read_all(&path, None).unwrap().len(), 10);
    let tail = |n| read_all(&path, Some(n)).unwrap();
    assert_eq!(tail(5), (5..10).map(numbered).collect::<Vec<_>>());
    assert_eq!(tail(1), vec![numbered(9)]);
    assert_eq!(tail(0), vec![]);
    assert_eq!(tail(100), (0..10).map(numbered).collect::<Vec<_>>());
}

#[test]
fn partial_messages_are_joined_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut w = LogWriter::open(&path, None, 1).unwrap();
    let long: Vec<u8> = (0..40_000).map(|i| b'a' + (i % 26) as u8).collect();
    let mut out = LineSplitter::new(Stream::Stdout);
    let mut err = LineSplitter::new(Stream::Stderr);
    let t = |secs| Timestamp { secs, nanos: 0 };
    // stdout: the long line in pieces, a stderr line in between, then a short line and
    // output without a final newline.
    for l in out.push(&long[..20_000], t(1)) {
        w.write(&l).unwrap();
    }
    for l in err.push(b"meanwhile\n", t(2)) {
        w.write(&l).unwrap();
    }
    let mut rest = long[20_000..].to_vec();
    rest.extend_from_slice(b"\nshort\nno newline");
    for l in out.push(&rest, t(3)) {
        w.write(&l).unwrap();
    }
    w.write(&out.finish(t(4)).unwrap()).unwrap();
    assert!(err.finish(t(4)).is_none());
    // On disk: 16 KiB pieces, as docker writes them.
    let records = std::fs::read(&path).unwrap();
    assert_eq!(records.iter().filter(|&&b| b == b'\n').count(), 6);

    let mut whole = long.clone();
    whole.push(b'\n');
    let got = read_all(&path, None).unwrap();
    let want = vec![
        LogLine {
            stream: Stream::Stderr,
            bytes: b"meanwhile\n".to_vec(),
            time: t(2),
            partial: false,
        },
        LogLine {
            stream: Stream::Stdout,
            bytes: whole,
            time: t(1),
            partial: false,
        },
        line(Stream::Stdout, "short\n", 3),
        line(Stream::Stdout, "no newline", 4),
    ];
    assert_eq!(got, want);
    assert_eq!(read_all(&path, Some(3)).unwrap(), want[1..]);
}

#[test]
fn follow_picks_up_new_lines_and_a_rotation_until_told_to_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let record = encode(&numbered(0)).len() as u64;
    let mut w = LogWriter::open(&path, Some(6 * record), 3).unwrap();
    for i in 0..3 {
        w.write(&numbered(i)).unwrap();
    }
    let done = AtomicBool::new(false);
    let stop = || done.load(Ordering::SeqCst);
    let seen = AtomicUsize::new(0);
    let mut got = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            // Not before the reader has the tail: else the tail would be other lines.
            while seen.load(Ordering::SeqCst) < 2 {
                std::thread::sleep(Duration::from_millis(5));
            }
            // 3..12: one rotation (before 6), well apart from the reader's polls.
            for i in 3..12 {
                std::thread::sleep(Duration::from_millis(30));
                w.write(&numbered(i)).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        });
        let opts = ReadOptions {
            tail: Some(2),
            follow: true,
            stop_following: &stop,
            raw: false,
        };
        read_logs(&path, &opts, &mut |l: &LogLine| {
            got.push(l.clone());
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    });
    assert!(rotated(&path, 1).exists());
    assert_eq!(got, (1..12).map(numbered).collect::<Vec<_>>());
}

#[test]
fn follow_waits_at_the_end_until_told_to_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut w = LogWriter::open(&path, None, 1).unwrap();
    w.write(&numbered(0)).unwrap();
    let start = Instant::now();
    let stop = || start.elapsed() > Duration::from_millis(300);
    let opts = ReadOptions {
        tail: None,
        follow: true,
        stop_following: &stop,
        raw: false,
    };
    let mut got = Vec::new();
    read_logs(&path, &opts, &mut |l: &LogLine| {
        got.push(l.clone());
        Ok(())
    })
    .unwrap();
    assert!(start.elapsed() > Duration::from_millis(300));
    assert_eq!(got, vec![numbered(0)]);
}

#[test]
fn a_torn_last_record_is_cut_when_the_writer_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut torn = encode(&numbered(0));
    torn.extend_from_slice(br#"{"log":"line 0"#);
    std::fs::write(&path, &torn).unwrap();
    // A reader takes the torn record for one being written: it is not a line yet.
    assert_eq!(read_all(&path, None).unwrap(), vec![numbered(0)]);
    let mut w = LogWriter::open(&path, None, 1).unwrap();
    w.write(&numbered(1)).unwrap();
    assert_eq!(
        read_all(&path, None).unwrap(),
        vec![numbered(0), numbered(1)]
    );
}

#[test]
fn a_bad_record_is_an_error_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut bytes = encode(&numbered(0));
    bytes.extend_from_slice(b"not json\n");
    std::fs::write(&path, &bytes).unwrap();
    match read_all(&path, None) {
        Err(LogReadError::Record { path: p, line, .. }) => assert_eq!((p, line), (path, 2)),
        other => panic!("{other:?}"),
    }
    let missing = dir.path().join("nothing.log");
    assert!(matches!(
        read_all(&missing, None),
        Err(LogReadError::Io { .. })
    ));
}

#[test]
fn plain_output_is_docker_logs() {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let t = Timestamp {
        secs: 1_795_823_941,
        nanos: 120_000_000,
    };
    let a = LogLine {
        time: t,
        ..line(Stream::Stdout, "a\n", 0)
    };
    let b = LogLine {
        time: t,
        ..line(Stream::Stderr, "b\n", 0)
    };
    write_plain(&a, false, &mut out, &mut err).unwrap();
    write_plain(&b, false, &mut out, &mut err).unwrap();
    write_plain(&a, true, &mut out, &mut err).unwrap();
    assert_eq!(out, b"a\n2026-11-27T23:59:01.120000000Z a\n");
    assert_eq!(err, b"b\n");
}

#[test]
fn now_is_the_clock() {
    let t = now();
    // After 2024-01-01, before 2200.
    assert!(t.secs > 1_704_067_200 && t.secs < 7_258_118_400, "{t:?}");
    assert!(t.nanos < 1_000_000_000);
}
