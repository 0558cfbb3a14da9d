//! `berth spec`: writes a default `config.json` into a bundle, as `runc spec` does.
//!
//! Invariant: an existing config.json is never overwritten (the file is created with
//! `O_EXCL`, so not even a race can clobber one).

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};

use anyhow::{Context, bail};

use crate::SpecArgs;
use crate::log::Logger;

/// Runs `berth spec`.
pub(crate) fn spec(args: &SpecArgs, log: &mut Logger) -> anyhow::Result<()> {
    let rootless = args.rootless.then(berth_backend_linux::probe::ids);
    let text = berth_core::spec::default_config_json(rootless);
    let path = args.bundle.join("config.json");
    // runc names the file as the user would: `config.json` in the current directory.
    let shown = if args.bundle.as_os_str() == "." {
        "config.json".into()
    } else {
        path.display().to_string()
    };
    log.debug(&format!("writing {shown}"));
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            bail!("File {shown} exists. Remove it first")
        }
        Err(e) => return Err(e).with_context(|| format!("creating {shown}")),
    };
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {shown}"))?;
    Ok(())
}
