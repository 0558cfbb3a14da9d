//! Signal numbers and names, as `kill(1)` and runc's `kill` spell them.
//!
//! Pure: a table of the Linux signal numbers shared by x86, arm, riscv, powerpc and s390
//! (the generic numbering; alpha, mips and sparc number some differently and are not
//! supported by berth). Plans carry the number; their text shows the name.

/// The standard signals by name, without `SIG` (`SIGIOT`, `SIGCLD` and `SIGPOLL` are
/// aliases, parsed but never printed).
const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
    ("IOT", 6),
    ("CLD", 17),
    ("POLL", 29),
];

/// SIGKILL.
pub const SIGKILL: i32 = 9;
/// SIGTERM, `kill`'s default.
pub const SIGTERM: i32 = 15;
/// The highest signal number Linux has (`SIGRTMAX`).
pub const MAX: i32 = 64;
/// The first real-time signal glibc leaves to programs (`SIGRTMIN`).
const RTMIN: i32 = 34;

/// A signal argument that names no signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal {0:?}")]
pub struct UnknownSignal(pub String);

/// Parses a signal as runc's `kill` does: a number, or a name with or without `SIG`, in
/// any case (`9`, `KILL`, `SIGKILL`, `sigterm`); also `RTMIN`, `RTMIN+N` and `RTMAX-N`.
pub fn parse_signal(text: &str) -> Result<i32, UnknownSignal> {
    let unknown = || UnknownSignal(text.to_owned());
    if let Ok(n) = text.parse::<i32>() {
        return if (0..=MAX).contains(&n) {
            Ok(n)
        } else {
            Err(unknown())
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Ok(n);
    }
    let offset = |rest: &str| -> Option<i32> {
        if rest.is_empty() {
            return Some(0);
        }
        rest.parse::<i32>()
            .ok()
            .filter(|n| (0..=MAX - RTMIN).contains(n))
    };
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        offset(rest.strip_prefix('+').unwrap_or(rest)).map(|o| RTMIN + o)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        offset(rest.strip_prefix('-').unwrap_or(rest)).map(|o| MAX - o)
    } else {
        None
    };
    n.filter(|n| (RTMIN..=MAX).contains(n)).ok_or_else(unknown)
}

/// The name of a signal without `SIG` (`TERM`, `RTMIN+2`), or its number as text when it
/// has none (`0`, `32`).
pub fn signal_name(signal: i32) -> String {
    if let Some((name, _)) = NAMES.iter().find(|(_, n)| *n == signal) {
        return (*name).to_owned();
    }
    match signal {
        RTMIN => "RTMIN".to_owned(),
        n if n > RTMIN && n <= MAX => format!("RTMIN+{}", n - RTMIN),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_prefixes() {
        for (text, n) in [
            ("9", 9),
            ("KILL", 9),
            ("SIGKILL", 9),
            ("kill", 9),
            ("SigTerm", 15),
            ("TERM", 15),
            ("hup", 1),
            ("USR1", 10),
            ("SIGWINCH", 28),
            ("IOT", 6),
            ("0", 0),
            ("64", 64),
            ("RTMIN", 34),
            ("SIGRTMIN+3", 37),
            ("RTMAX", 64),
            ("RTMAX-1", 63),
        ] {
            assert_eq!(parse_signal(text), Ok(n), "{text}");
        }
        for bad in [
            "", "SIG", "FOO", "SIGFOO", "-1", "65", "1.5", "RTMIN+31", "K ILL",
        ] {
            assert_eq!(
                parse_signal(bad),
                Err(UnknownSignal(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_number_round_trips_through_its_name() {
        for n in 1..=MAX {
            let name = signal_name(n);
            if n == 32 || n == 33 {
                // glibc keeps these two for itself: no name.
                assert_eq!(name, n.to_string());
                continue;
            }
            assert_eq!(parse_signal(&name), Ok(n), "{n} {name}");
        }
        assert_eq!(signal_name(15), "TERM");
        assert_eq!(signal_name(6), "ABRT");
        assert_eq!(signal_name(36), "RTMIN+2");
    }
}
