//! berth's pure core: an OCI config and host facts in, a typed plan of operations out.
//!
//! Invariant: nothing in this crate performs I/O, reads the clock, the environment or a
//! random source, or makes a syscall. Every function is a pure function of its arguments,
//! so the same request and facts always give the same plan.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bpf;
pub mod cgroup;
pub mod config;
pub mod exec;
pub mod features;
pub mod fuzz;
pub mod host;
pub mod image;
pub mod jsonlog;
pub mod mountopt;
pub mod network;
pub mod plan;
pub mod planner;
pub mod runconfig;
pub mod signal;
pub mod spec;
pub mod state;
pub mod stats;
pub mod user;

pub use exec::{Backend, ExecError, execute};
pub use host::{CgroupLayout, HostFacts};
pub use plan::{Actor, Op, Plan, Step};
