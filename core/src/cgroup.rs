//! `linux.resources` to cgroup v1 or v2 file writes; the layout is an input.
