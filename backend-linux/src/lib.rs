//! berth's Linux backend: probes the host's facts and executes plans with real syscalls.
//!
//! Invariant: it decides how, never what. What to do comes from a plan made by berth-core;
//! what the planner needs to know about this machine comes from [`probe::host_facts`].

#![warn(missing_docs)]

pub mod probe;
