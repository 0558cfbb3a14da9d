//! Diagnostics: `--log FILE`, `--log-format text|json`, `--debug`, as runc writes them.
//!
//! Invariant: nothing here writes to stdout, and the log file is opened (created) only when
//! the first line is written to it, so a quiet `--dry-run` touches no file.
//! JSON lines carry `level`, `msg` and `time` (RFC 3339, UTC), which is what containerd's
//! shim parses out of a runtime's log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::ValueEnum;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// `time="..." level=debug msg="..."`.
    Text,
    /// `{"level":"debug","msg":"...","time":"..."}`.
    Json,
}

/// Where the log goes now.
#[derive(Debug)]
enum Sink {
    /// stderr (no `--log`, or the file could not be opened).
    Stderr,
    /// `--log FILE`, not opened yet.
    Pending(PathBuf),
    /// `--log FILE`, opened for appending.
    File(File),
}

/// The log of one berth invocation.
#[derive(Debug)]
pub(crate) struct Logger {
    sink: Sink,
    format: LogFormat,
    debug: bool,
}

impl Logger {
    /// A logger writing to `path` (stderr when `None`); debug lines only when `debug`.
    pub(crate) fn new(path: Option<PathBuf>, format: LogFormat, debug: bool) -> Self {
        let sink = match path {
            Some(path) => Sink::Pending(path),
            None => Sink::Stderr,
        };
        Logger {
            sink,
            format,
            debug,
        }
    }

    /// Logs a debug message (dropped without `--debug`).
    pub(crate) fn debug(&mut self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }

    /// Logs a warning (always: to `--log`, else to stderr).
    pub(crate) fn warn(&mut self, msg: &str) {
        self.write("warning", msg);
    }

    /// Logs an error to the `--log` file; without one, does nothing (the caller prints
    /// the error on stderr itself, once).
    pub(crate) fn error_to_file(&mut self, msg: &str) {
        if !matches!(self.sink, Sink::Stderr) {
            self.write("error", msg);
        }
    }

    fn write(&mut self, level: &str, msg: &str) {
        let line = format_line(self.format, level, msg, SystemTime::now());
        if let Sink::Pending(path) = &self.sink {
            let opened = OpenOptions::new().create(true).append(true).open(path);
            self.sink = match opened {
                Ok(file) => Sink::File(file),
                Err(err) => {
                    eprintln!(
                        "berth: opening log {}: {err} (logging to stderr)",
                        path.display()
                    );
                    Sink::Stderr
                }
            };
        }
        // A log line that cannot be written has nowhere else to go.
        let _ = match &mut self.sink {
            Sink::File(file) => file.write_all(line.as_bytes()),
            Sink::Stderr | Sink::Pending(_) => std::io::stderr().write_all(line.as_bytes()),
        };
    }
}

/// One log line, with its newline.
fn format_line(format: LogFormat, level: &str, msg: &str, now: SystemTime) -> String {
    let time = rfc3339(now);
    match format {
        LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}\n"),
        LogFormat::Json => {
            let value = serde_json::json!({ "level": level, "msg": msg, "time": time });
            format!("{value}\n")
        }
    }
}

/// `2024-05-01T12:00:00.123456789Z`.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    berth_core::jsonlog::Timestamp::from_epoch(d).format_fixed()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_709_210_096, 5);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.000000005Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(rfc3339(t), "2099-12-31T23:59:59.000000000Z");
    }

    #[test]
    fn json_lines_have_level_msg_time() {
        let line = format_line(LogFormat::Json, "error", "a \"b\"", UNIX_EPOCH);
        assert_eq!(
            line,
            "{\"level\":\"error\",\"msg\":\"a \\\"b\\\"\",\"time\":\"1970-01-01T00:00:00.000000000Z\"}\n"
        );
    }

    #[test]
    fn text_lines_quote_the_message() {
        let line = format_line(LogFormat::Text, "debug", "x y", UNIX_EPOCH);
        assert_eq!(
            line,
            "time=\"1970-01-01T00:00:00.000000000Z\" level=debug msg=\"x y\"\n"
        );
    }

    #[test]
    fn log_file_is_created_only_when_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.json");
        let mut logger = Logger::new(Some(path.clone()), LogFormat::Json, false);
        logger.debug("dropped without --debug");
        assert!(!path.exists());
        logger.error_to_file("boom");
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom");
    }
}
