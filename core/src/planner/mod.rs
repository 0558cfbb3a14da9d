//! Planners: pure functions from a request and host facts to a [`crate::plan::Plan`].

pub mod create;
pub mod exec;
pub mod image_mount;
pub mod lifecycle;
