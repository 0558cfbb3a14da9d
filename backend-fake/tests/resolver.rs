//! `[ROOT]PATH` resolves inside ROOT as if ROOT were `/`: `..` stops at ROOT, absolute
//! symlinks restart at ROOT. A rootfs with `etc -> /` can never make an op touch the
//! host's `/etc`.

// Test helpers outside #[test] fns unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

mod common;

use berth_backend_fake::{Binding, FakeError, FakeHost};
use berth_core::exec::execute;
use berth_core::plan::{AnyRef, Location, Op, Plan, PlanBuilder};
use common::*;
use proptest::prelude::*;

/// A rootfs full of symlinks that point out of it.
fn hostile() -> FakeHost {
    host(&v2())
        .with_symlink(&format!("{ROOT}/etc2"), "/")
        .with_symlink(&format!("{ROOT}/up"), "../../..")
        .with_symlink(&format!("{ROOT}/abs"), "/etc/passwd")
        .with_symlink(&format!("{ROOT}/loop"), "loop")
        .with_symlink(&format!("{ROOT}/dangling"), "/nonexistent/dir")
        .with_symlink(&format!("{ROOT}/tmp/deep"), "../../../../../tmp")
        .with_file("/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
}

/// One runtime step on `fake`; its result and, for a made handle, what it made.
fn one(
    fake: &mut FakeHost,
    op: impl FnOnce(&mut PlanBuilder) -> Op,
) -> (Result<(), FakeError>, Plan) {
    let mut b = PlanBuilder::new();
    let op = op(&mut b);
    b.runtime(op);
    let plan = b.finish();
    let r = execute(&plan, fake).map_err(|e| e.source);
    (r, plan)
}

fn made_paths(fake: &FakeHost, plan: &Plan) -> Vec<String> {
    let made = plan
        .steps
        .iter()
        .find_map(|s| match &s.op {
            Op::MkdirAll { made, .. } | Op::MkMountPoint { made, .. } => Some(*made),
            _ => None,
        })
        .unwrap();
    match fake.binding(AnyRef::Made(made)) {
        Some(Binding::Made(p)) => p,
        other => panic!("{other:?}"),
    }
}

fn mkdir(path: &str) -> impl FnOnce(&mut PlanBuilder) -> Op {
    let path = in_root(path);
    move |b| Op::MkdirAll {
        path,
        mode: 0o755,
        made: b.made(),
    }
}

#[test]
fn symlinks_to_the_host_root_stay_in_the_root() {
    let mut fake = hostile();
    let (r, plan) = one(&mut fake, mkdir("/etc2/x"));
    r.unwrap();
    assert_eq!(made_paths(&fake, &plan), ["/b/rootfs/x"]);
    assert!(!fake.exists("/x"));

    let (r, plan) = one(&mut fake, mkdir("/up/y"));
    r.unwrap();
    assert_eq!(made_paths(&fake, &plan), ["/b/rootfs/y"]);

    let (r, plan) = one(&mut fake, mkdir("/tmp/deep/z"));
    r.unwrap();
    assert_eq!(made_paths(&fake, &plan), ["/b/rootfs/tmp/z"]);
    assert!(!fake.exists("/tmp/z"));

    // A dangling symlink is followed inside the root, as securejoin's MkdirAll does.
    let (r, plan) = one(&mut fake, mkdir("/dangling"));
    r.unwrap();
    assert_eq!(
        made_paths(&fake, &plan),
        ["/b/rootfs/nonexistent", "/b/rootfs/nonexistent/dir"]
    );
    assert!(!fake.exists("/nonexistent"));
}

#[test]
fn files_and_mount_points_behind_symlinks() {
    let mut fake = hostile();
    // /abs -> /etc/passwd resolves to ROOT/etc/passwd, which does not exist: a file
    // mount point is made there, not on the host's passwd.
    let (r, plan) = one(&mut fake, |b| Op::MkMountPoint {
        path: in_root("/abs"),
        source: Some(hp("/etc/passwd")),
        made: b.made(),
    });
    r.unwrap();
    assert_eq!(made_paths(&fake, &plan), ["/b/rootfs/etc/passwd"]);
    assert_eq!(
        fake.file("/etc/passwd").as_deref(),
        Some("root:x:0:0::/root:/bin/sh\n")
    );
    assert_eq!(fake.file("/b/rootfs/etc/passwd").as_deref(), Some(""));

    let (r, _) = one(&mut fake, |_| Op::Symlink {
        target: "/proc/self/fd".to_owned(),
        link: in_root("/etc2/fd"),
    });
    r.unwrap();
    assert!(fake.exists("/b/rootfs/tmp") && !fake.exists("/fd"));

    let (r, _) = one(&mut fake, mkdir("/loop/x"));
    assert!(matches!(r, Err(FakeError::Loop { .. })), "{r:?}");
}

#[test]
fn a_container_path_after_pivot_is_the_container_root() {
    // After the root switch, `[ROOT]PATH` is `PATH` in the new root; the host's paths
    // are out of sight.
    let plan = minimal_plan();
    let mut fake = host(&v2());
    run(&plan, &mut fake);
    assert!(fake.exists("/b/rootfs/home/app"));
}

/// The host's nodes outside the root, as the state dump lists them.
fn outside_root(fake: &FakeHost) -> Vec<String> {
    fake.state()
        .to_string()
        .lines()
        .filter(|l| l.starts_with("  /") && !l.starts_with(&format!("  {ROOT}")))
        .map(str::to_owned)
        .collect()
}

fn arb_component() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "x", "d1", "d2", "etc"])
}

fn arb_dir() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["d1", "d2"])
}

fn arb_link() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "x"])
}

fn arb_target() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/",
        "..",
        "../..",
        "../../..",
        "/etc",
        "a",
        "/a/b",
        "../../../etc",
        ".",
        "b/..",
        "/x",
        "../a/../..",
        "/d1/../..",
        "d2/a",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever symlinks the rootfs holds, `mkdir -p [ROOT]PATH` makes nothing outside it.
    #[test]
    fn resolution_in_the_root_never_escapes(
        links in prop::collection::vec(
            (prop::collection::vec(arb_dir(), 0..3), arb_link(), arb_target()), 0..8),
        path in prop::collection::vec(arb_component(), 1..5),
    ) {
        let mut fake = host(&v2());
        // Directories are named d1/d2, links a/b/x: a directory never runs through a link.
        for (dir, name, target) in &links {
            let dir = format!("{ROOT}/{}", dir.join("/"));
            fake = fake.with_dir(&dir).with_symlink(&format!("{dir}/{name}"), target);
        }
        let before = outside_root(&fake);
        let p = format!("/{}", path.join("/"));
        let (r, plan) = one(&mut fake, mkdir(&p));
        if r.is_ok() {
            for m in made_paths(&fake, &plan) {
                prop_assert!(m.starts_with(&format!("{ROOT}/")), "made {m} for {p}");
            }
        }
        prop_assert_eq!(outside_root(&fake), before);
        let _ = Location::Host(hp("/"));
    }
}
