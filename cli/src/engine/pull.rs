//! `berth pull` and `berth push`: images from and to a registry, printing docker's lines;
//! and the progress bars of `pull`, `push`, `load` and `import`.
//!
//! Output contract: stdout carries docker's lines (for pull: `latest: Pulling from
//! busybox`, one line per layer, `Digest:`, `Status:`, then the reference, only the
//! reference with `-q`; for push: `The push refers to repository [...]`, one line per
//! layer, `TAG: digest: DIGEST size: N`).
//! Progress bars go to stderr, and only when stderr is a terminal: piped or captured, the
//! commands print exactly what they would without them.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Read, Write};

use anyhow::anyhow;
use berth_backend_linux::store::{LayerEvent, Progress, Store};
use berth_core::image::{DEFAULT_TAG, Digest, Reference};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

use crate::Global;
use crate::image::store_error;
use crate::registry::{self, Credentials, Registry, RegistryError};

/// A registry's error as one line: its text, then each cause (as `store_error` does).
fn registry_error(err: RegistryError) -> anyhow::Error {
    if let RegistryError::Store(e) = err {
        return store_error(e);
    }
    let mut line = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
        cause = c.source();
    }
    anyhow!(line)
}

/// Arguments of `pull`.
#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// Print only the image's reference: no layer lines, no progress.
    #[arg(short, long)]
    quiet: bool,
    /// The image: `NAME[:TAG]` (`latest` when none is given) or `NAME@DIGEST`.
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    image: String,
}

/// `berth pull [-q] NAME[:TAG|@DIGEST]`: stores the image, as `docker pull` does.
pub(crate) fn pull(global: &Global, args: &PullArgs) -> anyhow::Result<()> {
    let reference = Reference::parse(&args.image).map_err(|e| anyhow!("pull: {e}"))?;
    let mut store = Store::open(&global.data_root).map_err(store_error)?;
    // Resolved before anything is printed: an unknown tag prints only the error.
    let (mut remote, manifest) = Registry::resolve(&reference, &Credentials::Anonymous)
        .map_err(|e| anyhow!("pulling {}: {:#}", reference.familiar(), registry_error(e)))?;
    let mut out = io::stdout().lock();
    if !args.quiet {
        let what = match reference.digest() {
            Some(digest) => digest.to_string(),
            None => reference.tag().unwrap_or(DEFAULT_TAG).to_owned(),
        };
        // docker's `Pulling from library/busybox`: the repository's path at its registry.
        writeln!(out, "{what}: Pulling from {}", reference.path())?;
        out.flush()?;
    }
    let lines = if args.quiet { Lines::None } else { Lines::Pull };
    let mut layers = LayerProgress::new(lines, !args.quiet);
    let result = store.pull(&reference, &manifest, &mut remote, &mut layers);
    layers.finish();
    let summary = result.map_err(store_error)?;
    if !args.quiet {
        writeln!(out, "Digest: {}", summary.digest)?;
        let status = if summary.up_to_date {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        writeln!(out, "Status: {status} {}", reference.familiar())?;
    }
    writeln!(out, "{reference}")?;
    Ok(out.flush()?)
}

/// Arguments of `push`.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// The image, by the name to push it as: `REGISTRY/NAME[:TAG]`.
    #[arg(value_name = "NAME[:TAG]")]
    image: String,
}

/// `berth push [-q] NAME[:TAG]`: sends the image of that name to its registry, as
/// `docker push` does.
pub(crate) fn push(global: &Global, args: &PushArgs) -> anyhow::Result<()> {
    let reference = Reference::parse(&args.image).map_err(|e| anyhow!("push: {e}"))?;
    let store = Store::open(&global.data_root).map_err(store_error)?;
    let mut out = io::stdout().lock();
    if !args.quiet {
        writeln!(out, "The push refers to repository [{}]", reference.name())?;
        out.flush()?;
    }
    let lines = if args.quiet { Lines::None } else { Lines::Push };
    let mut layers = LayerProgress::new(lines, !args.quiet);
    let result = registry::push(
        &store,
        &args.image,
        &reference,
        &Credentials::Anonymous,
        &mut layers,
    );
    layers.finish();
    let summary =
        result.map_err(|e| anyhow!("pushing {}: {:#}", reference.familiar(), registry_error(e)))?;
    if !args.quiet {
        let tag = reference.tag().unwrap_or(DEFAULT_TAG);
        writeln!(
            out,
            "{tag}: digest: {} size: {}",
            summary.digest, summary.size
        )?;
    }
    Ok(out.flush()?)
}

/// Which lines a [`LayerProgress`] prints on stdout, one per layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lines {
    /// None (`load`, and `-q`).
    None,
    /// `Already exists` / `Pull complete`.
    Pull,
    /// `Layer already exists` / `Pushed`.
    Push,
}

/// The first 12 hex digits of a digest, as docker names layers.
fn short(digest: &Digest) -> String {
    digest.hex()[..12].to_owned()
}

/// What `pull`, `push` and `load` show per layer: docker's lines on stdout (not for
/// `load`) and a bar per layer on stderr when it is a terminal.
pub(crate) struct LayerProgress {
    lines: Lines,
    multi: Option<MultiProgress>,
    bars: HashMap<Digest, ProgressBar>,
}

impl LayerProgress {
    /// `lines`: which line to print per layer (`<id>: Pull complete`); `bars`: draw bars
    /// if stderr is a terminal.
    pub(crate) fn new(lines: Lines, bars: bool) -> LayerProgress {
        let multi = (bars && io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        LayerProgress {
            lines,
            multi,
            bars: HashMap::new(),
        }
    }

    /// Clears what is left of the bars (after a failure, say).
    pub(crate) fn finish(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
        }
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }

    /// Prints the line for a layer that was there already (`done` false) or is done.
    fn line(&self, layer: &Digest, done: bool) {
        let status = match (self.lines, done) {
            (Lines::None, _) => return,
            (Lines::Pull, false) => "Already exists",
            (Lines::Pull, true) => "Pull complete",
            (Lines::Push, false) => "Layer already exists",
            (Lines::Push, true) => "Pushed",
        };
        let print = || {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{}: {status}", short(layer));
            let _ = out.flush();
        };
        match &self.multi {
            Some(multi) => multi.suspend(print),
            None => print(),
        }
    }
}

impl std::fmt::Debug for LayerProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerProgress")
            .field("lines", &self.lines)
            .field("bars", &self.bars.len())
            .finish_non_exhaustive()
    }
}

impl Progress for LayerProgress {
    fn layer(&mut self, layer: &Digest, event: LayerEvent) {
        match event {
            LayerEvent::Exists => self.line(layer, false),
            LayerEvent::Start { size } => {
                if let Some(multi) = &self.multi {
                    let bar = multi.add(layer_bar(size).with_prefix(short(layer)));
                    bar.set_message(if self.lines == Lines::Push {
                        "Pushing"
                    } else {
                        "Downloading"
                    });
                    self.bars.insert(*layer, bar);
                }
            }
            LayerEvent::Read(n) => {
                if let Some(bar) = self.bars.get(layer) {
                    bar.inc(n);
                }
            }
            LayerEvent::Unpacking => {
                if let Some(bar) = self.bars.get(layer) {
                    bar.set_message("Extracting");
                }
            }
            LayerEvent::Done => {
                if let Some(bar) = self.bars.remove(layer) {
                    bar.finish_and_clear();
                }
                self.line(layer, true);
            }
        }
    }
}

/// A bar of bytes (a spinner with a byte count when the size is unknown).
fn layer_bar(size: Option<u64>) -> ProgressBar {
    match size {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{prefix}: {msg:11} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{prefix}: {msg:11} {spinner} {bytes}")
                .expect("a valid template"),
        ),
    }
}

/// `input` behind a byte bar on stderr when it is a terminal (`import`), `input` itself
/// otherwise; `size` is the input's length when known. The bar is cleared when the
/// reader is dropped.
pub(crate) fn with_bar<'a>(input: Box<dyn Read + 'a>, size: Option<u64>) -> Box<dyn Read + 'a> {
    if !io::stderr().is_terminal() {
        return input;
    }
    let bar = layer_bar(size)
        .with_prefix("import")
        .with_message("Reading")
        .with_finish(ProgressFinish::AndClear);
    bar.set_draw_target(ProgressDrawTarget::stderr());
    Box::new(bar.wrap_read(input))
}
