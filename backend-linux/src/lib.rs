//! berth's Linux backend: probes the host's facts and executes plans with real syscalls.
//!
//! Invariant: it decides how, never what. What to do comes from a plan made by berth-core;
//! what the planner needs to know about this machine comes from [`probe::host_facts`].
//! [`LinuxBackend`] carries a plan out (see [`backend`] for the runtime/init protocol);
//! every `unsafe` block lives in one private module, `sys`.
//!
//! Not implemented here, each a clear [`LinuxError::NotImplemented`]: netlink ops (the
//! engine carries them out with [`net::NetBackend`], which the runtime does not link) and
//! the seccomp `notify` action. cgroup v2 device filtering is an eBPF program ([`bpf`]).

#![warn(missing_docs)]

pub mod probe;

pub mod backend;
pub mod bpf;
mod cgroup;
mod console;
pub mod engine;
pub mod error;
mod fs;
mod hooks;
mod init;
/// Container logs in docker's json-file format: the monitor's writer, `berth logs`' reader.
pub mod jsonlog;
pub mod layer;
pub mod net;
mod ns;
mod ops;
mod process;
mod proto;
mod seccomp;
pub mod selfexe;
pub mod state;
pub mod stats;
pub mod store;
mod sys;

pub use backend::{EXEC_FIFO, LinuxBackend, Trace};
pub use console::{get_winsize, recv_fd, set_winsize};
pub use error::LinuxError;
