//! `cargo bench -p berth-tests --bench plan_create`: how long planning the largest golden
//! case takes (target: at most 50 µs per plan). A plain timing loop, not a test: it prints
//! the median and the 90th percentile of batches and never fails on speed.

use std::hint::black_box;
use std::time::Instant;

use berth_core::planner::create::plan_create;
use berth_tests::{Case, cases_dir};

fn main() {
    // The largest case: the one whose plan has the most steps.
    let mut best: Option<(usize, String, Case)> = None;
    let dir = cases_dir().join("create");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("cases dir exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    for path in entries {
        let case = Case::load(&path);
        let n = plan_create(&case.request(), &case.host_facts())
            .expect("golden cases plan")
            .steps
            .len();
        if best.as_ref().is_none_or(|(m, _, _)| n > *m) {
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            best = Some((n, name.unwrap_or_default(), case));
        }
    }
    let (steps, name, case) = best.expect("at least one case");
    let request = case.request();
    let host = case.host_facts();

    const BATCH: u32 = 200;
    const BATCHES: usize = 101;
    for _ in 0..BATCH {
        black_box(plan_create(black_box(&request), black_box(&host)).ok());
    }
    let mut per_plan: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..BATCH {
                black_box(plan_create(black_box(&request), black_box(&host)).ok());
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(BATCH)
        })
        .collect();
    per_plan.sort_by(f64::total_cmp);
    let median = per_plan[BATCHES / 2];
    let p90 = per_plan[BATCHES * 9 / 10];
    println!(
        "plan_create on {name} ({steps} steps): median {median:.2} µs, p90 {p90:.2} µs per plan (target <= 50 µs)"
    );
}
