//! Golden plans: every case under `cases/create/` is planned, snapshotted, and executed on
//! the fake host, whose trace must be the plan itself, step for step.

use berth_core::exec::execute;
use berth_core::planner::create::plan_create;
use berth_tests::{Case, cases_dir};

#[test]
fn create() {
    insta::glob!(cases_dir(), "create/*.json", |path| {
        let case = Case::load(path);
        let host = case.host_facts();
        let plan = plan_create(&case.request(), &host)
            .unwrap_or_else(|e| panic!("{}: planning failed: {e}", path.display()));
        plan.check()
            .unwrap_or_else(|e| panic!("{}: plan does not check: {e}", path.display()));
        insta::with_settings!({ description => case.note.clone(), omit_expression => true }, {
            insta::assert_snapshot!(plan.to_string());
        });
        let mut fake = case.fake();
        if let Err(e) = execute(&plan, &mut fake) {
            panic!(
                "{}: the fake host refused the plan: {e}: {:?}",
                path.display(),
                e.source
            );
        }
        assert_eq!(
            fake.trace_text(&plan),
            plan.to_string(),
            "{}",
            path.display()
        );
    });
}

#[test]
fn json_round_trips_for_every_case() {
    insta::glob!(cases_dir(), "create/*.json", |path| {
        let case = Case::load(path);
        let plan = plan_create(&case.request(), &case.host_facts()).unwrap();
        let json = plan.to_json();
        let back: berth_core::Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan);
        assert_eq!(back.to_json(), json);
    });
}

#[test]
fn failure_at_every_step_of_every_case_restores_the_host() {
    insta::glob!(cases_dir(), "create/*.json", |path| {
        let case = Case::load(path);
        let plan = plan_create(&case.request(), &case.host_facts()).unwrap();
        for k in 0..plan.steps.len() {
            let mut fake = case.fake().failing_at(k);
            let before = fake.state();
            let err = execute(&plan, &mut fake);
            assert!(err.is_err(), "{}: step {k} was to fail", path.display());
            let err = err.unwrap_err();
            assert!(
                err.rollback.is_empty(),
                "{}: k={k}: rollback errors {:?}",
                path.display(),
                err.rollback
            );
            assert_eq!(
                fake.state(),
                before,
                "{}: failing at step {k} ({}) left the host changed",
                path.display(),
                plan.step_text(&plan.steps[k])
            );
        }
    });
}
