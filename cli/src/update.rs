//! `berth update` and `berth events`: change a running container's cgroup limits (a plan,
//! as every side effect) and report its cgroup stats as runc's JSON lines (reads only).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use berth_backend_linux::stats::{read_oom_kills, read_stats};
use berth_core::exec::execute;
use berth_core::planner::lifecycle::plan_update;
use berth_core::state::{LifecycleError, Status};
use berth_core::stats::{StatFiles, oom_event, stats_event};
use oci_spec::runtime::LinuxResources;
use serde_json::{Value, json};

use crate::create::exec_failed;
use crate::lifecycle::{backend_for, load, root};
use crate::log::Logger;
use crate::{EventsArgs, Global, UpdateArgs};

/// Parses a size as runc's flags take it (docker's `RAMInBytes`): a number with an
/// optional binary unit `k`, `m`, `g`, `t`, `p` (any case, optionally followed by `b` or
/// `ib`); `-1` means unlimited.
pub(crate) fn parse_size(text: &str) -> anyhow::Result<i64> {
    let bad = || anyhow::anyhow!("invalid size: {text:?}");
    let t = text.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim_start();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

/// Parses an interval as Go's durations read (`5s`, `100ms`, `1m`, `1h`, `1.5s`).
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let bad = || anyhow::anyhow!("invalid duration: {text:?}");
    let t = text.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(end);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ns" => number / 1e9,
        "us" | "µs" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(bad)
}

/// The resources `update` asks for: `--resources` (a file, or `-` for stdin), then each
/// flag set over it.
fn requested(args: &UpdateArgs) -> anyhow::Result<LinuxResources> {
    let mut v: Value = match &args.resources {
        None => json!({}),
        Some(p) => {
            let text = if p == Path::new("-") {
                std::io::read_to_string(std::io::stdin()).context("reading resources from stdin")?
            } else {
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading resources {}", p.display()))?
            };
            serde_json::from_str(&text).context("parsing resources")?
        }
    };
    if !v.is_object() {
        anyhow::bail!("parsing resources: not a JSON object");
    }
    let mut set = |section: &str, key: &str, value: Value| {
        if !v[section].is_object() {
            v[section] = json!({});
        }
        v[section][key] = value;
    };
    for (flag, key) in [
        (&args.memory, "limit"),
        (&args.memory_reservation, "reservation"),
        (&args.memory_swap, "swap"),
    ] {
        if let Some(s) = flag {
            set("memory", key, json!(parse_size(s)?));
        }
    }
    if let Some(n) = args.cpu_shares {
        set("cpu", "shares", json!(n));
    }
    if let Some(n) = args.cpu_quota {
        set("cpu", "quota", json!(n));
    }
    if let Some(n) = args.cpu_period {
        set("cpu", "period", json!(n));
    }
    if let Some(s) = &args.cpuset_cpus {
        set("cpu", "cpus", json!(s));
    }
    if let Some(s) = &args.cpuset_mems {
        set("cpu", "mems", json!(s));
    }
    if let Some(n) = args.pids_limit {
        set("pids", "limit", json!(n));
    }
    if let Some(n) = args.blkio_weight {
        set("blockIO", "weight", json!(n));
    }
    serde_json::from_value(v).context("parsing resources")
}

/// `berth update [--resources FILE|-] [flags] ID`.
pub(crate) fn update(global: &Global, args: &UpdateArgs, log: &mut Logger) -> anyhow::Result<()> {
    let root = root(global)?;
    let (record, status) = load(&root, &args.id)?;
    if status == Status::Stopped {
        return Err(LifecycleError::NotRunning.into());
    }
    let resources = requested(args)?;
    let plan = plan_update(&record, &resources)?;
    log.debug(&format!("update plan:\n{plan}"));
    execute(&plan, &mut backend_for(&root, &record)).map_err(exec_failed)?;
    Ok(())
}

/// Prints one line on stdout, flushed (a reader follows the lines as they come).
fn print_line(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

/// `berth events [--stats] [--interval D] ID`.
pub(crate) fn events(global: &Global, args: &EventsArgs) -> anyhow::Result<()> {
    let root = root(global)?;
    let interval = parse_duration(&args.interval)?;
    let (record, status) = load(&root, &args.id)?;
    if status == Status::Stopped {
        anyhow::bail!("container with id {} is not running", args.id);
    }
    let files = StatFiles::of(&record.plan)
        .ok_or_else(|| anyhow::anyhow!("container {}: it has no cgroup to read", args.id))?;
    if args.stats {
        let stats = read_stats(&files)?;
        return print_line(&stats_event(&args.id, &stats));
    }
    let mut ooms = read_oom_kills(&files);
    loop {
        let stats = read_stats(&files)?;
        print_line(&stats_event(&args.id, &stats))?;
        // Check for OOM kills often within the interval, and the status likewise.
        let step = interval.min(Duration::from_millis(200));
        let mut waited = Duration::ZERO;
        while waited < interval {
            std::thread::sleep(step);
            waited += step;
            let now = read_oom_kills(&files);
            if let (Some(before), Some(after)) = (ooms, now)
                && after > before
            {
                print_line(&oom_event(&args.id))?;
            }
            if now.is_some() {
                ooms = now;
            }
            match load(&root, &args.id) {
                Ok((_, Status::Stopped)) | Err(_) => return Ok(()),
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_runc_flags() {
        assert_eq!(parse_size("64M").unwrap(), 67108864);
        assert_eq!(parse_size("64m").unwrap(), 67108864);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("512kb").unwrap(), 512 * 1024);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("12q").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn durations_parse_as_go_durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
