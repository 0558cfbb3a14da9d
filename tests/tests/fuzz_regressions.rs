//! Replays every saved fuzz input under `fuzz/regressions/<target>/` through the same entry
//! point the fuzz target calls, so a crash once found stays fixed without a fuzzer.

#![allow(clippy::unwrap_used)]

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut n = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    for path in files {
        let data = std::fs::read(&path).unwrap();
        run(&data);
        n += 1;
    }
    n
}

#[test]
fn config_to_plan() {
    replay("config_to_plan", berth_core::fuzz::config_to_plan);
}

#[test]
fn mount_options() {
    replay("mount_options", berth_core::fuzz::mount_options);
}

#[test]
fn mountinfo() {
    replay("mountinfo", berth_core::fuzz::mountinfo);
}

#[test]
fn passwd_group() {
    replay("passwd_group", berth_core::fuzz::passwd_group);
}

#[test]
fn image_manifest() {
    replay("image_manifest", berth_core::fuzz::image_manifest);
}

#[test]
fn golden_configs_go_through_the_config_target() {
    // The fuzz entry point accepts every golden config without tripping its oracles.
    let dir = berth_tests::cases_dir().join("create");
    for entry in std::fs::read_dir(dir).unwrap() {
        let case = berth_tests::Case::load(&entry.unwrap().path());
        berth_core::fuzz::config_to_plan(case.config.to_string().as_bytes());
    }
}
