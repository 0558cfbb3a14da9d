//! `berth stats`: CPU, memory and pids of containers from their cgroups, as docker's
//! `stats` shows them.
//!
//! The numbers are read here, in the engine, from the runtime's record of each container
//! (its create plan names its leaf cgroups, [`StatFiles::of`]) with the runtime's own
//! reader, [`read_stats`]; running `berth events --stats` once per container per second
//! would cost a process each time and put a process start between the container's CPU
//! reading and the host's, which the CPU percentage compares. docker's formulas:
//!
//! - CPU % = Δ container CPU time / Δ host CPU time (`/proc/stat`, all CPUs) × online
//!   CPUs × 100, between two samples a second apart: `--no-stream` samples twice, as
//!   docker's daemon does for it, so it takes about a second.
//! - MEM USAGE = usage − inactive file cache (`total_inactive_file` of cgroup v1's
//!   `memory.stat`, `inactive_file` on v2); LIMIT = the cgroup's limit, or the host's
//!   memory when that is lower (no limit); MEM % = usage / limit × 100.
//! - PIDS = `pids.current`.
//!
//! A container that is not running shows zeros, as docker shows it.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use berth_backend_linux::state::read_record;
use berth_backend_linux::stats::read_stats;
use berth_backend_linux::store::containers::{ContainerRecord, ContainerState};
use berth_core::stats::{StatFiles, parse_keyed};
use clap::Args;

use crate::Global;
use crate::container::PsFormat;
use crate::image::store_error;

/// Arguments of `stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Show every container (running ones only by default).
    #[arg(short, long)]
    all: bool,
    /// Print one sample and exit (it takes a second: CPU % needs two readings).
    #[arg(long)]
    no_stream: bool,
    /// Full ids.
    #[arg(long)]
    no_trunc: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PsFormat::Table)]
    format: PsFormat,
    /// The containers (every running one by default).
    #[arg(value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// The host's CPU time in nanoseconds (every CPU, idle included) and its online CPUs, as
/// docker reads `/proc/stat`: the first 7 fields of the `cpu` line, in clock ticks of
/// 1/100 s (docker takes 100 as the tick rate too).
fn parse_proc_stat(text: &str) -> Option<(u64, u32)> {
    let first = text.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: u64 = first
        .split_whitespace()
        .skip(1)
        .take(7)
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    let cpus = text
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    Some((
        ticks.saturating_mul(1_000_000_000 / 100),
        u32::try_from(cpus).unwrap_or(u32::MAX),
    ))
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn parse_mem_total(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// One reading of a container.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sample {
    /// The container's CPU time, ns.
    cpu: u64,
    /// The host's CPU time when it was read, ns.
    system: u64,
    /// Online CPUs.
    cpus: u32,
    /// Memory usage without the inactive file cache.
    memory: u64,
    /// The memory limit (at most the host's memory).
    limit: u64,
    /// Processes.
    pids: u64,
}

/// docker's `calculateCPUPercentUnix`.
fn cpu_percent(prev: &Sample, now: &Sample) -> f64 {
    let cpu = now.cpu as f64 - prev.cpu as f64;
    let system = now.system as f64 - prev.system as f64;
    if system > 0.0 && cpu > 0.0 {
        cpu / system * f64::from(now.cpus) * 100.0
    } else {
        0.0
    }
}

/// docker's `calculateMemUsageUnixNoCache`: usage less the inactive file cache.
fn memory_without_cache(usage: u64, inactive_file: Option<u64>) -> u64 {
    match inactive_file {
        Some(i) if i < usage => usage - i,
        _ => usage,
    }
}

/// The limit docker shows: the host's memory when the cgroup's is higher (unlimited).
fn shown_limit(limit: u64, host: Option<u64>) -> u64 {
    match host {
        Some(h) if h > 0 && limit > h => h,
        _ => limit,
    }
}

fn memory_percent(usage: u64, limit: u64) -> f64 {
    if limit == 0 {
        0.0
    } else {
        usage as f64 / limit as f64 * 100.0
    }
}

/// Go's `%.4g` of a value below 10000 and not negative: 4 significant digits, trailing
/// zeros dropped.
fn four_digits(v: f64) -> String {
    if v == 0.0 {
        return "0".to_owned();
    }
    let exponent = v.abs().log10().floor() as i32;
    let decimals = usize::try_from(3 - exponent).unwrap_or(0);
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    s
}

/// docker's `units.BytesSize`: binary units, 4 significant digits (`1.977MiB`, `64MiB`).
fn bytes_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    format!("{}{}", four_digits(size), UNITS[unit])
}

/// What the host says once per round: its CPU time and CPUs, its memory.
#[derive(Clone, Copy, Debug)]
struct HostNow {
    system: u64,
    cpus: u32,
    memory: Option<u64>,
}

fn host_now() -> anyhow::Result<HostNow> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let (system, cpus) =
        parse_proc_stat(&stat).ok_or_else(|| anyhow!("/proc/stat has no `cpu` line"))?;
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_mem_total(&t));
    Ok(HostNow {
        system,
        cpus,
        memory,
    })
}

/// A running container's reading; `None` when it has no record or cgroup (it is not
/// running, or just stopped).
fn sample(runtime_root: &Path, id: &str, host: &HostNow) -> Option<Sample> {
    let record = read_record(runtime_root, id).ok()?;
    let files = StatFiles::of(&record.plan)?;
    let stats = read_stats(&files).ok()?;
    let (dir, key) = match &files {
        StatFiles::V1 { memory, .. } => (memory.as_ref(), "total_inactive_file"),
        StatFiles::V2(dir) => (Some(dir), "inactive_file"),
    };
    let inactive = dir
        .and_then(|d| std::fs::read_to_string(Path::new(d.as_str()).join("memory.stat")).ok())
        .and_then(|t| parse_keyed(&t, key));
    let usage = &stats.memory.usage;
    Some(Sample {
        cpu: stats.cpu.usage.total,
        system: host.system,
        cpus: host.cpus,
        memory: memory_without_cache(usage.usage, inactive),
        limit: shown_limit(usage.limit, host.memory),
        pids: stats.pids.current,
    })
}

/// The containers of one round, and whether each runs.
fn targets(
    g: &Global,
    args: &StatsArgs,
    first: bool,
) -> anyhow::Result<Vec<(ContainerRecord, bool)>> {
    let store = g.engine.store().map_err(|e| anyhow!(e))?;
    let rows = if args.containers.is_empty() {
        store.containers().map_err(store_error)?
    } else {
        let mut rows = Vec::new();
        for name in &args.containers {
            match store.container(name) {
                Ok(c) => rows.push(c),
                // Later rounds leave out a container removed meanwhile.
                Err(e) if first => return Err(store_error(e)),
                Err(_) => {}
            }
        }
        rows
    };
    drop(store);
    Ok(rows
        .into_iter()
        .map(|c| {
            let running = matches!(
                g.engine.observed_state(&c),
                ContainerState::Running | ContainerState::Paused
            );
            (c, running)
        })
        .filter(|(_, running)| *running || args.all || !args.containers.is_empty())
        .collect())
}

/// One row as docker's formatter shows it.
struct Row {
    id: String,
    container: String,
    name: String,
    cpu: String,
    mem_usage: String,
    mem_perc: String,
    pids: String,
}

fn row(
    args: &StatsArgs,
    c: &ContainerRecord,
    given: Option<&str>,
    prev: Option<&Sample>,
    now: Option<&Sample>,
) -> Row {
    let id = if args.no_trunc {
        c.id.clone()
    } else {
        c.short_id().to_owned()
    };
    let now = now.copied().unwrap_or_default();
    let cpu = prev.map_or(0.0, |p| cpu_percent(p, &now));
    Row {
        container: given.map_or_else(|| id.clone(), str::to_owned),
        id,
        name: c.name.clone(),
        cpu: format!("{cpu:.2}%"),
        mem_usage: format!("{} / {}", bytes_size(now.memory), bytes_size(now.limit)),
        mem_perc: format!("{:.2}%", memory_percent(now.memory, now.limit)),
        pids: now.pids.to_string(),
    }
}

fn table(rows: &[Row]) -> String {
    let mut cells = vec![[
        "CONTAINER ID".to_owned(),
        "NAME".to_owned(),
        "CPU %".to_owned(),
        "MEM USAGE / LIMIT".to_owned(),
        "MEM %".to_owned(),
        "PIDS".to_owned(),
    ]];
    for r in rows {
        cells.push([
            r.id.clone(),
            r.name.clone(),
            r.cpu.clone(),
            r.mem_usage.clone(),
            r.mem_perc.clone(),
            r.pids.clone(),
        ]);
    }
    let mut widths = [0usize; 6];
    for line in &cells {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &cells {
        for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
            out.push_str(cell);
            if i + 1 < line.len() {
                out.push_str(&" ".repeat(w - cell.chars().count() + 3));
            }
        }
        out.push('\n');
    }
    out
}

fn json_lines(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        let line = serde_json::json!({
            "Container": r.container,
            "ID": r.id,
            "Name": r.name,
            "CPUPerc": r.cpu,
            "MemUsage": r.mem_usage,
            "MemPerc": r.mem_perc,
            "PIDs": r.pids,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// `berth stats`: a table (or JSON lines) every second until interrupted; once with
/// `--no-stream`. On a terminal each table replaces the last.
pub(crate) fn stats(g: &Global, args: &StatsArgs) -> anyhow::Result<()> {
    let runtime_root = g.engine.runtime_root();
    let clear = !args.no_stream && io::stdout().is_terminal();
    let mut prev: HashMap<String, Sample> = HashMap::new();
    let mut round = 0u64;
    loop {
        let list = targets(g, args, round == 0)?;
        let host = host_now()?;
        let now: HashMap<String, Sample> = list
            .iter()
            .filter(|(_, running)| *running)
            .filter_map(|(c, _)| sample(&runtime_root, &c.id, &host).map(|s| (c.id.clone(), s)))
            .collect();
        // The first round only primes the CPU readings.
        if round > 0 {
            let given = |c: &ContainerRecord| {
                args.containers
                    .iter()
                    .find(|n| **n == c.name || c.id.starts_with(n.as_str()))
                    .map(String::as_str)
            };
            let rows: Vec<Row> = list
                .iter()
                .map(|(c, _)| row(args, c, given(c), prev.get(&c.id), now.get(&c.id)))
                .collect();
            let mut text = match args.format {
                PsFormat::Table => table(&rows),
                PsFormat::Json => json_lines(&rows),
            };
            if clear {
                text.insert_str(0, "\x1b[2J\x1b[H");
            }
            let mut out = io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => {}
                // `berth stats | head`: the reader has gone.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            if args.no_stream {
                return Ok(());
            }
        }
        prev = now;
        round += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_reads_as_docker_reads_it() {
        let text = "cpu  100 20 30 400 5 6 7 8 0 0\ncpu0 50 10 15 200 2 3 3 4 0 0\n\
                    cpu1 50 10 15 200 3 3 4 4 0 0\nintr 1 2 3\nctxt 5\n";
        // 100+20+30+400+5+6+7 = 568 ticks of 10 ms; steal and guests left out.
        assert_eq!(parse_proc_stat(text), Some((5_680_000_000, 2)));
        assert_eq!(parse_proc_stat("intr 1\n"), None);
        assert_eq!(parse_proc_stat("cpu  1 x 3\n"), None);
        assert_eq!(
            parse_mem_total("MemTotal:        8041488 kB\nMemFree: 1 kB\n"),
            Some(8041488 * 1024)
        );
    }

    #[test]
    fn cpu_percent_is_dockers() {
        let prev = Sample {
            cpu: 1_000_000_000,
            system: 10_000_000_000,
            cpus: 2,
            ..Sample::default()
        };
        // Half a CPU second while the host's two CPUs ran 2 s: 25% of the host, 50% of
        // one CPU, which is what docker prints.
        let now = Sample {
            cpu: 1_500_000_000,
            system: 12_000_000_000,
            cpus: 2,
            ..Sample::default()
        };
        assert!((cpu_percent(&prev, &now) - 50.0).abs() < 1e-9);
        // No time passed, or a counter went back: 0.
        assert_eq!(cpu_percent(&now, &now), 0.0);
        assert_eq!(cpu_percent(&now, &prev), 0.0);
    }

    #[test]
    fn memory_is_shown_as_docker_shows_it() {
        assert_eq!(memory_without_cache(1000, Some(300)), 700);
        assert_eq!(memory_without_cache(1000, Some(3000)), 1000);
        assert_eq!(memory_without_cache(1000, None), 1000);
        assert_eq!(shown_limit(u64::MAX, Some(8 << 30)), 8 << 30);
        assert_eq!(shown_limit(64 << 20, Some(8 << 30)), 64 << 20);
        assert_eq!(shown_limit(64 << 20, None), 64 << 20);
        assert_eq!(memory_percent(16 << 20, 64 << 20), 25.0);
        assert_eq!(memory_percent(1, 0), 0.0);
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(1000), "1000B");
        assert_eq!(bytes_size(64 << 20), "64MiB");
        assert_eq!(bytes_size(2_073_000), "1.977MiB");
        assert_eq!(bytes_size(1536), "1.5KiB");
        assert_eq!(bytes_size(8_041_488 * 1024), "7.669GiB");
        assert_eq!(four_digits(1023.99), "1024");
        assert_eq!(four_digits(12.3456), "12.35");
    }
}
