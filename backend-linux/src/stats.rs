//! Reading a container's cgroup stat files for `events` (reads only: no plan, no side
//! effect). The text is parsed by berth-core's [`berth_core::stats`].

use std::path::Path;

use berth_core::plan::HostPath;
use berth_core::stats::{StatFiles, StatTexts, Stats, StatsError, oom_kills};

/// The text of `dir/file`, `None` when it cannot be read (absent controller, gone cgroup).
fn read(dir: &HostPath, file: &str) -> Option<String> {
    std::fs::read_to_string(Path::new(dir.as_str()).join(file)).ok()
}

/// Reads a container's stats from its cgroup files.
pub fn read_stats(files: &StatFiles) -> Result<Stats, StatsError> {
    match files {
        StatFiles::V1 {
            cpuacct,
            memory,
            pids,
        } => {
            let at = |d: &Option<HostPath>, f: &str| d.as_ref().and_then(|d| read(d, f));
            let texts = StatTexts {
                cpu: at(cpuacct, "cpuacct.usage"),
                memory_usage: at(memory, "memory.usage_in_bytes"),
                memory_limit: at(memory, "memory.limit_in_bytes"),
                memory_max: at(memory, "memory.max_usage_in_bytes"),
                pids_current: at(pids, "pids.current"),
            };
            Stats::parse(&texts, false)
        }
        StatFiles::V2(dir) => {
            let texts = StatTexts {
                cpu: read(dir, "cpu.stat"),
                memory_usage: read(dir, "memory.current"),
                memory_limit: read(dir, "memory.max"),
                memory_max: None,
                pids_current: read(dir, "pids.current"),
            };
            Stats::parse(&texts, true)
        }
    }
}

/// The container's OOM-kill count (v1 `memory.oom_control`, v2 `memory.events`), `None`
/// when it cannot be read.
pub fn read_oom_kills(files: &StatFiles) -> Option<u64> {
    let text = match files {
        StatFiles::V1 { memory, .. } => read(memory.as_ref()?, "memory.oom_control")?,
        StatFiles::V2(dir) => read(dir, "memory.events")?,
    };
    oom_kills(&text)
}
