//! `plan_create`: the plan for an OCI `create` (and, through the start barrier, `start`).
