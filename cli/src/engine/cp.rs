//! `berth cp`: docker's `cp` between a container and the host, over
//! [`berth_backend_linux::engine::cp`].
//!
//! `CONTAINER:PATH` names a path in a container; anything else is a host path, and so is
//! an argument that starts with `/` or `.` before its first `:` (`./a:b` is the host file
//! `a:b`), as docker reads them. `-` is a tar stream on stdout (as the destination) or
//! stdin (as the source).

use std::io::{self, Write};
use std::path::Path;

use anyhow::bail;
use berth_backend_linux::engine::EngineError;
use berth_backend_linux::engine::cp::{CopyOptions, CpError, HostDest, HostSource};
use clap::Args;

use crate::Global;
use crate::image::store_error;

/// Arguments of `cp`.
#[derive(Debug, Args)]
pub(crate) struct CpArgs {
    /// Follow a symbolic link given as the source (copy its target, under its name).
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// Archive mode: keep the source's owner (uid:gid).
    #[arg(short, long)]
    archive: bool,
    /// Print nothing on success (berth never does; accepted as docker's flag).
    #[arg(short, long)]
    quiet: bool,
    /// `CONTAINER:SRC_PATH`, a host path, or `-` (a tar stream on stdin).
    #[arg(value_name = "SRC")]
    src: String,
    /// `CONTAINER:DEST_PATH`, a host path, or `-` (a tar stream on stdout).
    #[arg(value_name = "DEST")]
    dest: String,
}

/// One side of `cp`: a container and a path in it, or a host path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End<'a> {
    /// `CONTAINER:PATH`.
    Container(&'a str, &'a str),
    /// A host path (or `-`).
    Host(&'a str),
}

/// docker's `splitCpArg`: `CONTAINER:PATH`, unless the argument is an absolute path, has
/// no `:`, or has an empty or `.`-led part before it (an explicit host path).
fn split_arg(arg: &str) -> End<'_> {
    if arg.starts_with('/') {
        return End::Host(arg);
    }
    match arg.split_once(':') {
        Some((container, path)) if !container.is_empty() && !container.starts_with('.') => {
            End::Container(container, path)
        }
        _ => End::Host(arg),
    }
}

/// A copy error as one line: the store's own wording for an unknown container.
fn cp_error(err: CpError) -> anyhow::Error {
    match err {
        CpError::Engine(EngineError::Store(e)) => store_error(e),
        other => crate::image::one_line(&other),
    }
}

/// `berth cp SRC DEST`.
pub(crate) fn cp(g: &Global, args: &CpArgs) -> anyhow::Result<()> {
    let opts = CopyOptions {
        follow_link: args.follow_link,
        archive: args.archive,
    };
    let lookup = |name: &str| {
        g.engine
            .store()
            .map_err(|e| cp_error(e.into()))?
            .container(name)
            .map_err(store_error)
    };
    match (split_arg(&args.src), split_arg(&args.dest)) {
        (End::Container(..), End::Container(..)) => {
            bail!("copying between containers is not supported")
        }
        (End::Host(_), End::Host(_)) => {
            bail!("one of SRC and DEST must be CONTAINER:PATH (a host path on both sides)")
        }
        (End::Container(name, path), End::Host(dest)) => {
            let c = lookup(name)?;
            if dest == "-" {
                let stdout = io::stdout();
                let mut out = io::BufWriter::new(stdout.lock());
                g.engine
                    .copy_out(&c, path, HostDest::Tar(&mut out), opts)
                    .map_err(cp_error)?;
                out.flush()?;
                Ok(())
            } else {
                g.engine
                    .copy_out(&c, path, HostDest::Path(Path::new(dest)), opts)
                    .map_err(cp_error)
            }
        }
        (End::Host(src), End::Container(name, path)) => {
            let c = lookup(name)?;
            if src == "-" {
                let stdin = io::stdin();
                let mut input = stdin.lock();
                g.engine
                    .copy_in(&c, HostSource::Tar(&mut input), path, opts)
                    .map_err(cp_error)
            } else {
                g.engine
                    .copy_in(&c, HostSource::Path(Path::new(src)), path, opts)
                    .map_err(cp_error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_as_docker_splits_them() {
        assert_eq!(
            split_arg("web:/etc/hosts"),
            End::Container("web", "/etc/hosts")
        );
        assert_eq!(split_arg("web:etc"), End::Container("web", "etc"));
        assert_eq!(split_arg("web:"), End::Container("web", ""));
        assert_eq!(split_arg("web:/a:b"), End::Container("web", "/a:b"));
        assert_eq!(split_arg("/tmp/a:b"), End::Host("/tmp/a:b"));
        assert_eq!(split_arg("./a:b"), End::Host("./a:b"));
        assert_eq!(split_arg("../a:b"), End::Host("../a:b"));
        assert_eq!(split_arg(":b"), End::Host(":b"));
        assert_eq!(split_arg("file.txt"), End::Host("file.txt"));
        assert_eq!(split_arg("-"), End::Host("-"));
    }
}
