//! Container statistics for `events`: the parsing of cgroup interface files' text and the
//! JSON lines runc's `events` prints.
//!
//! Reading stats is no side effect, so it is no plan: the Linux backend reads the files
//! ([`StatFiles`] says which), and the pure functions here turn their text into [`Stats`]
//! and [`Stats`] into an event line. Invariant: a value absent or unreadable is left out
//! (zero in the line), never guessed.

use serde::Serialize;

use crate::plan::{HostPath, Plan};
use crate::planner::lifecycle::{v1_leaf, v2_leaf};

/// A cgroup file's text that does not hold what it should.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    /// Not a number (nor `max`).
    #[error("{text:?} is not a cgroup value")]
    NotANumber {
        /// The text.
        text: String,
    },
}

/// Parses a single-value file (`memory.current`, `pids.current`); `max` is `u64::MAX`.
pub fn parse_value(text: &str) -> Result<u64, StatsError> {
    let t = text.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse().map_err(|_| StatsError::NotANumber {
        text: text.to_owned(),
    })
}

/// The value of `key` in a flat keyed file (`cpu.stat`, `memory.events`,
/// `memory.oom_control`: `key value` per line); `None` when absent or not a number.
pub fn parse_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(key))
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}

/// Where a container's stats are read: the files of its leaf cgroups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatFiles {
    /// cgroup v1: the directory of each controller's leaf, when it has one.
    V1 {
        /// The `cpuacct` leaf (`cpuacct.usage`).
        cpuacct: Option<HostPath>,
        /// The `memory` leaf (`memory.usage_in_bytes`, `memory.limit_in_bytes`,
        /// `memory.max_usage_in_bytes`, `memory.oom_control`).
        memory: Option<HostPath>,
        /// The `pids` leaf (`pids.current`).
        pids: Option<HostPath>,
    },
    /// cgroup v2: the one leaf (`cpu.stat`, `memory.current`, `memory.max`,
    /// `memory.events`, `pids.current`).
    V2(HostPath),
}

impl StatFiles {
    /// The stat files of a create plan's leaf cgroups; `None` without cgroups.
    pub fn of(plan: &Plan) -> Option<StatFiles> {
        if let Some(leaf) = v2_leaf(plan) {
            return Some(StatFiles::V2(leaf.dir()));
        }
        let dir = |c: &str| v1_leaf(plan, c).map(|l| l.dir());
        let files = StatFiles::V1 {
            cpuacct: dir("cpuacct"),
            memory: dir("memory"),
            pids: dir("pids"),
        };
        match &files {
            StatFiles::V1 {
                cpuacct: None,
                memory: None,
                pids: None,
            } => None,
            _ => Some(files),
        }
    }
}

/// CPU usage, as runc's `cpu.usage`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuUsage {
    /// Total CPU time consumed, in nanoseconds.
    pub total: u64,
}

/// CPU stats, as runc's `cpu`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    /// Usage.
    pub usage: CpuUsage,
}

/// One memory counter set, as runc's `memory.usage`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEntry {
    /// The limit in bytes (`u64::MAX` when unlimited).
    pub limit: u64,
    /// Current usage in bytes.
    pub usage: u64,
    /// Peak usage in bytes (v1 only; 0 on v2).
    pub max: u64,
}

/// Memory stats, as runc's `memory`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    /// Usage.
    pub usage: MemoryEntry,
}

/// Pids stats, as runc's `pids`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    /// Processes in the cgroup now.
    pub current: u64,
}

/// A container's stats: runc's `events` `data` object (the parts berth reads).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// CPU.
    pub cpu: CpuStats,
    /// Memory.
    pub memory: MemoryStats,
    /// Pids.
    pub pids: PidsStats,
}

/// The text of the files stats are made from (`None`: absent or unreadable).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatTexts {
    /// v1 `cpuacct.usage` (ns) or v2 `cpu.stat`.
    pub cpu: Option<String>,
    /// v1 `memory.usage_in_bytes` or v2 `memory.current`.
    pub memory_usage: Option<String>,
    /// v1 `memory.limit_in_bytes` or v2 `memory.max`.
    pub memory_limit: Option<String>,
    /// v1 `memory.max_usage_in_bytes` (v2 has none).
    pub memory_max: Option<String>,
    /// `pids.current`.
    pub pids_current: Option<String>,
}

impl Stats {
    /// Stats from the files' text; `v2` says how `cpu` reads (`cpu.stat`'s `usage_usec`,
    /// else `cpuacct.usage` nanoseconds). An unparsable value is an error.
    pub fn parse(t: &StatTexts, v2: bool) -> Result<Stats, StatsError> {
        let value = |s: &Option<String>| s.as_deref().map(parse_value).transpose();
        let total = match &t.cpu {
            Some(text) if v2 => parse_keyed(text, "usage_usec")
                .map(|us| us.saturating_mul(1000))
                .ok_or_else(|| StatsError::NotANumber { text: text.clone() })?,
            Some(text) => parse_value(text)?,
            None => 0,
        };
        Ok(Stats {
            cpu: CpuStats {
                usage: CpuUsage { total },
            },
            memory: MemoryStats {
                usage: MemoryEntry {
                    limit: value(&t.memory_limit)?.unwrap_or_default(),
                    usage: value(&t.memory_usage)?.unwrap_or_default(),
                    max: value(&t.memory_max)?.unwrap_or_default(),
                },
            },
            pids: PidsStats {
                current: value(&t.pids_current)?.unwrap_or_default(),
            },
        })
    }
}

/// The OOM-kill count in v1 `memory.oom_control` or v2 `memory.events` (`oom_kill N`).
pub fn oom_kills(text: &str) -> Option<u64> {
    parse_keyed(text, "oom_kill")
}

/// runc's `{"type":"stats","id":ID,"data":{...}}` line (without its newline).
pub fn stats_event(id: &str, stats: &Stats) -> String {
    serde_json::json!({"type": "stats", "id": id, "data": stats}).to_string()
}

/// runc's `{"type":"oom","id":ID}` line (without its newline).
pub fn oom_event(id: &str) -> String {
    serde_json::json!({"type": "oom", "id": id}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_keyed_files_parse() {
        assert_eq!(parse_value("67108864\n"), Ok(67108864));
        assert_eq!(parse_value("max\n"), Ok(u64::MAX));
        assert_eq!(
            parse_value("lots"),
            Err(StatsError::NotANumber {
                text: "lots".to_owned()
            })
        );
        let stat = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n";
        assert_eq!(parse_keyed(stat, "usage_usec"), Some(1500));
        assert_eq!(parse_keyed(stat, "usage"), None);
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"),
            Some(3)
        );
        assert_eq!(
            oom_kills("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n"),
            Some(1)
        );
    }

    #[test]
    fn v1_and_v2_stats_and_their_lines() {
        let v1 = StatTexts {
            cpu: Some("123456\n".to_owned()),
            memory_usage: Some("4096\n".to_owned()),
            memory_limit: Some("67108864\n".to_owned()),
            memory_max: Some("8192\n".to_owned()),
            pids_current: Some("2\n".to_owned()),
        };
        let s = Stats::parse(&v1, false).unwrap();
        assert_eq!(
            stats_event("c1", &s),
            r#"{"data":{"cpu":{"usage":{"total":123456}},"memory":{"usage":{"limit":67108864,"max":8192,"usage":4096}},"pids":{"current":2}},"id":"c1","type":"stats"}"#
        );
        let v2 = StatTexts {
            cpu: Some("usage_usec 7\n".to_owned()),
            memory_usage: Some("4096\n".to_owned()),
            memory_limit: Some("max\n".to_owned()),
            memory_max: None,
            pids_current: Some("1\n".to_owned()),
        };
        let s = Stats::parse(&v2, true).unwrap();
        assert_eq!(s.cpu.usage.total, 7000);
        assert_eq!(s.memory.usage.limit, u64::MAX);
        assert_eq!(s.memory.usage.max, 0);
        assert_eq!(s.pids.current, 1);
        assert!(Stats::parse(&StatTexts::default(), true).unwrap() == Stats::default());
        assert!(
            Stats::parse(
                &StatTexts {
                    pids_current: Some("x".to_owned()),
                    ..StatTexts::default()
                },
                false
            )
            .is_err()
        );
        assert_eq!(oom_event("c1"), r#"{"id":"c1","type":"oom"}"#);
    }
}
