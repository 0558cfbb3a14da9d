//! The one driver loop: apply steps in order; on failure, undo what was done, in reverse.
//!
//! Pure control flow over the [`Backend`] trait, so the fake backend exercises the very
//! rollback path the Linux backend takes.

use crate::plan::{Plan, Step, undo};

/// Carries out one step: decides how, never what.
pub trait Backend {
    /// What a failed step reports.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Applies one step.
    fn apply(&mut self, plan: &Plan, step: &Step) -> Result<(), Self::Error>;
}

/// A step failed; the steps before it were rolled back.
#[derive(Debug, thiserror::Error)]
#[error("step {index} ({text}) failed")]
pub struct ExecError<E: std::error::Error + 'static> {
    /// The failing step's index.
    pub index: usize,
    /// The failing step's text.
    pub text: String,
    /// The failing step (boxed: errors travel by value and a step is large).
    pub step: Box<Step>,
    /// Why it failed.
    #[source]
    pub source: E,
    /// Undo steps that failed in turn, with their errors (rollback goes on past them).
    pub rollback: Vec<(Step, E)>,
}

/// Applies `plan` with `backend`. On the first failure, applies the undo of every earlier
/// step in reverse order, going on past undo failures and collecting them.
pub fn execute<B: Backend>(plan: &Plan, backend: &mut B) -> Result<(), ExecError<B::Error>> {
    execute_range(plan, 0..plan.steps.len(), backend)
}

/// Like [`execute`], for the steps in `range` only (`create` stops before the start
/// barrier; `start` carries out the rest). A failure rolls back the steps of the range.
pub fn execute_range<B: Backend>(
    plan: &Plan,
    range: std::ops::Range<usize>,
    backend: &mut B,
) -> Result<(), ExecError<B::Error>> {
    let start = range.start;
    for index in range {
        let Some(step) = plan.steps.get(index) else {
            break;
        };
        if let Err(source) = backend.apply(plan, step) {
            let rollback = rollback(plan, start..index, backend);
            return Err(ExecError {
                index,
                text: plan.step_text(step),
                step: Box::new(step.clone()),
                source,
                rollback,
            });
        }
    }
    Ok(())
}

/// Applies the undo of every step in `done`, last first; returns the undos that failed.
pub fn rollback<B: Backend>(
    plan: &Plan,
    done: std::ops::Range<usize>,
    backend: &mut B,
) -> Vec<(Step, B::Error)> {
    plan.steps[done]
        .iter()
        .rev()
        .filter_map(undo)
        .filter_map(|u| backend.apply(plan, &u).err().map(|e| (u, e)))
        .collect()
}
