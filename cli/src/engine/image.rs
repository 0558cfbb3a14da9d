//! The image commands, docker's: `import`, `images`, `rmi`, over the image store under
//! `--data-root` (`berth_backend_linux::store`).
//!
//! As everywhere in berth's CLI, stdout carries only results (ids, the image table) and a
//! failure is one line on stderr.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use berth_backend_linux::store::{ImageId, ImageSummary, Store, StoreError};
use berth_core::image::Reference;
use clap::{Args, ValueEnum};

use crate::Global;

/// Arguments of `import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// A root file system tarball (plain, gzip or zstd), or `-` for stdin.
    #[arg(value_name = "FILE|-")]
    file: PathBuf,
    /// The image's name and tag (`latest` when none is given).
    #[arg(value_name = "NAME[:TAG]")]
    name: String,
}

/// How `images` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ImagesFormat {
    /// Aligned columns: REPOSITORY TAG IMAGE ID CREATED SIZE.
    Table,
    /// One JSON object per line and tag, as `docker images --format json`.
    Json,
}

/// Arguments of `images`.
#[derive(Debug, Args)]
pub(crate) struct ImagesArgs {
    /// Print only the short image ids, one per image.
    #[arg(short, long)]
    quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ImagesFormat::Table)]
    format: ImagesFormat,
}

/// Arguments of `rmi`.
#[derive(Debug, Args)]
pub(crate) struct RmiArgs {
    /// Remove an image with several tags when named by id, and one in use.
    #[arg(short, long)]
    force: bool,
    /// The images: a tag (`busybox`, `busybox:1.36`), an id, or a unique id prefix.
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<String>,
}

/// An error of the store as one message: its text, then each cause its text does not
/// already hold (the store's messages include some of their causes, not all).
pub(crate) fn store_error(err: StoreError) -> anyhow::Error {
    if let StoreError::UnknownImage { name } = &err {
        return anyhow!("no such image: {name}");
    }
    one_line(&err)
}

/// An error as one line: its text, then each cause its text does not already hold (some
/// messages include their cause, not all).
pub(crate) fn one_line(err: &dyn std::error::Error) -> anyhow::Error {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
        cause = c.source();
    }
    anyhow!(line)
}

fn open_store(global: &Global) -> anyhow::Result<Store> {
    Store::open(&global.data_root).map_err(store_error)
}

/// `berth import FILE|- NAME[:TAG]`: imports a root file system as a one-layer image and
/// prints its id.
pub(crate) fn import(global: &Global, args: &ImportArgs) -> anyhow::Result<()> {
    let reference = Reference::parse(&args.name).map_err(|e| anyhow!("import: {e}"))?;
    let shown = args.file.display();
    let input: Box<dyn Read> = if args.file.as_os_str() == "-" {
        crate::pull::with_bar(Box::new(io::stdin().lock()), None)
    } else {
        let file = File::open(&args.file).with_context(|| format!("import: {shown}"))?;
        let size = file
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        crate::pull::with_bar(Box::new(BufReader::new(file)), size)
    };
    let mut store = open_store(global)?;
    let id = store
        .import_rootfs(input, &reference)
        .map_err(|e| anyhow!("import: {shown}: {:#}", store_error(e)))?;
    println!("{id}");
    Ok(())
}

/// One row of `berth images`: an image under one of its tags, or untagged.
struct Row<'a> {
    image: &'a ImageSummary,
    repository: String,
    tag: String,
}

/// The repository and tag columns of a reference, in docker's short form.
fn columns(reference: &Reference) -> (String, String) {
    let familiar = reference.familiar();
    match reference.tag() {
        Some(tag) => {
            let repository = familiar
                .strip_suffix(&format!(":{tag}"))
                .unwrap_or(&familiar)
                .to_owned();
            (repository, tag.to_owned())
        }
        None => (familiar, "<none>".to_owned()),
    }
}

/// `berth images [-q] [--format table|json]`: lists the images, newest first.
pub(crate) fn images(global: &Global, args: &ImagesArgs) -> anyhow::Result<()> {
    let store = open_store(global)?;
    let mut list = store.images().map_err(store_error)?;
    list.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    let mut out = io::stdout().lock();
    if args.quiet {
        for image in &list {
            writeln!(out, "{}", image.id.short())?;
        }
        return Ok(out.flush()?);
    }
    let mut rows = Vec::new();
    for image in &list {
        if image.tags.is_empty() {
            rows.push(Row {
                image,
                repository: "<none>".to_owned(),
                tag: "<none>".to_owned(),
            });
        }
        for reference in &image.tags {
            let (repository, tag) = columns(reference);
            rows.push(Row {
                image,
                repository,
                tag,
            });
        }
    }
    match args.format {
        ImagesFormat::Json => {
            for row in &rows {
                let line = serde_json::json!({
                    "ID": row.image.id.short(),
                    "Repository": row.repository,
                    "Tag": row.tag,
                    "CreatedAt": rfc3339(row.image.created),
                    "Size": human_size(row.image.size),
                });
                writeln!(out, "{line}")?;
            }
        }
        ImagesFormat::Table => {
            let mut table = vec![[
                "REPOSITORY".to_owned(),
                "TAG".to_owned(),
                "IMAGE ID".to_owned(),
                "CREATED".to_owned(),
                "SIZE".to_owned(),
            ]];
            table.extend(rows.iter().map(|row| {
                [
                    row.repository.clone(),
                    row.tag.clone(),
                    row.image.id.short(),
                    rfc3339(row.image.created),
                    human_size(row.image.size),
                ]
            }));
            let mut widths = [0usize; 5];
            for line in &table {
                for (w, cell) in widths.iter_mut().zip(line) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            for line in &table {
                let mut text = String::new();
                for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
                    if i + 1 == line.len() {
                        text.push_str(cell);
                    } else {
                        text.push_str(&format!("{cell:<w$}   "));
                    }
                }
                writeln!(out, "{text}")?;
            }
        }
    }
    Ok(out.flush()?)
}

/// What `rmi` found an argument to name.
enum Target {
    /// A tag: untag it, and remove the image if no tag is left.
    Tag(Reference, ImageId),
    /// An id or id prefix: remove the image (and its tags).
    Id(ImageId),
}

/// Resolves an `rmi` argument as docker does: a tag first, then an id or id prefix.
fn target(store: &Store, name: &str) -> Result<Target, StoreError> {
    if let Ok(reference) = Reference::parse(name)
        && reference.digest().is_none()
    {
        // The full form names a tag only, never an id prefix.
        match store.resolve(&reference.to_string()) {
            Ok(id) => return Ok(Target::Tag(reference, id)),
            Err(StoreError::UnknownImage { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    store.resolve(name).map(Target::Id)
}

/// Removes what `name` names, printing docker's `Untagged:` and `Deleted:` lines.
fn remove_one(
    store: &mut Store,
    name: &str,
    force: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let target = target(store, name).map_err(store_error)?;
    let id = match &target {
        Target::Tag(_, id) | Target::Id(id) => *id,
    };
    let users = store.container_users(&id).map_err(store_error)?;
    let tags: Vec<Reference> = store
        .images()
        .map_err(store_error)?
        .into_iter()
        .find(|image| image.id == id)
        .map(|image| image.tags)
        .unwrap_or_default();
    if let Target::Tag(reference, _) = &target
        && (tags.len() > 1 || users > 0 && force)
    {
        // Another tag keeps the image; or containers use it and -f only untags (docker).
        store.untag(reference).map_err(store_error)?;
        writeln!(out, "Untagged: {}", reference.familiar())?;
        return Ok(());
    }
    if users > 0 {
        if !force {
            return Err(store_error(StoreError::ImageInUse { id, users }));
        }
        // As docker: a forced removal of an image containers use only untags it; its
        // layers stay while containers use them.
        for reference in &tags {
            store.untag(reference).map_err(store_error)?;
            writeln!(out, "Untagged: {}", reference.familiar())?;
        }
        return Ok(());
    }
    let removal = store.remove_image(&id, force, users).map_err(store_error)?;
    for reference in &removal.untagged {
        writeln!(out, "Untagged: {}", reference.familiar())?;
    }
    writeln!(out, "Deleted: {id}")?;
    Ok(())
}

/// `berth rmi [-f] IMAGE...`: removes each image, going on past failures as docker does;
/// the failures make one line (joined by `; `) and exit status 1.
pub(crate) fn rmi(global: &Global, args: &RmiArgs) -> anyhow::Result<()> {
    let mut store = open_store(global)?;
    let mut out = io::stdout().lock();
    let mut failures = Vec::new();
    for name in &args.images {
        if let Err(err) = remove_one(&mut store, name, args.force, &mut out) {
            failures.push(format!("{err:#}"));
        }
    }
    out.flush()?;
    let failures: Vec<String> = failures
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    match failures.as_slice() {
        [] => Ok(()),
        _ => Err(anyhow!(failures.join("; "))),
    }
}

/// Arguments of `load`.
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// A `docker save` archive or an OCI image layout (a directory, or a tar of one;
    /// plain, gzip or zstd).
    #[arg(short, long, value_name = "ARCHIVE")]
    input: PathBuf,
    /// Print only the loaded images' ids.
    #[arg(short, long)]
    quiet: bool,
}

/// `berth load -i ARCHIVE`: prints `Loaded image: NAME` per tag (or `Loaded image ID:`).
pub(crate) fn load(global: &Global, args: &LoadArgs) -> anyhow::Result<()> {
    let mut store = open_store(global)?;
    let shown = args.input.display();
    let mut bars = crate::pull::LayerProgress::new(crate::pull::Lines::None, !args.quiet);
    let loaded = store.load_with_progress(&args.input, &mut bars);
    bars.finish();
    let loaded = loaded.map_err(|e| anyhow!("load: {shown}: {:#}", store_error(e)))?;
    let mut out = io::stdout().lock();
    for image in &loaded {
        if args.quiet {
            writeln!(out, "{}", image.id)?;
        } else if image.tags.is_empty() {
            writeln!(out, "Loaded image ID: {}", image.id)?;
        } else {
            for tag in &image.tags {
                writeln!(out, "Loaded image: {}", tag.familiar())?;
            }
        }
    }
    Ok(out.flush()?)
}

/// Arguments of `save`.
#[derive(Debug, Args)]
pub(crate) struct SaveArgs {
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The images: tags, ids or id prefixes.
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<String>,
}

/// `berth save [-o FILE] IMAGE...`: a tar that is both a `docker save` archive and an OCI
/// image layout. Written to a temporary file beside FILE and renamed, so a failed save
/// leaves no half archive.
pub(crate) fn save(global: &Global, args: &SaveArgs) -> anyhow::Result<()> {
    let store = open_store(global)?;
    let names: Vec<&str> = args.images.iter().map(String::as_str).collect();
    match &args.output {
        Some(path) => {
            let tmp = path.with_file_name(format!(
                ".{}.berth-save-{}",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                std::process::id()
            ));
            let file = File::create(&tmp).with_context(|| format!("save: {}", tmp.display()))?;
            let mut writer = io::BufWriter::new(file);
            let result = store
                .save(&names, &mut writer)
                .map_err(store_error)
                .and_then(|()| writer.flush().map_err(anyhow::Error::from))
                .and_then(|()| std::fs::rename(&tmp, path).map_err(anyhow::Error::from));
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result.with_context(|| format!("save: {}", path.display()))
        }
        None => {
            if io::IsTerminal::is_terminal(&io::stdout()) {
                return Err(anyhow!(
                    "save: refusing to write an archive to a terminal; use -o FILE or a pipe"
                ));
            }
            let mut out = io::BufWriter::new(io::stdout().lock());
            store.save(&names, &mut out).map_err(store_error)?;
            Ok(out.flush()?)
        }
    }
}

/// Arguments of `tag`.
#[derive(Debug, Args)]
pub(crate) struct TagArgs {
    /// The image: a tag, id or id prefix.
    #[arg(value_name = "SOURCE")]
    source: String,
    /// The new tag.
    #[arg(value_name = "TARGET")]
    target: String,
}

/// `berth tag SOURCE TARGET`.
pub(crate) fn tag(global: &Global, args: &TagArgs) -> anyhow::Result<()> {
    let target = Reference::parse(&args.target).map_err(|e| anyhow!("tag: {e}"))?;
    let mut store = open_store(global)?;
    store.tag(&args.source, &target).map_err(store_error)?;
    Ok(())
}

/// `berth image ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ImageCommand {
    /// List images (as `images`).
    Ls(ImagesArgs),
    /// Print images as JSON.
    Inspect {
        /// The images.
        #[arg(value_name = "IMAGE", required = true)]
        images: Vec<String>,
    },
    /// Remove dangling images (untagged, unused), or with -a every unused image.
    Prune {
        /// Every image no container uses, tagged or not.
        #[arg(short, long)]
        all: bool,
    },
    /// Remove images (as `rmi`).
    Rm(RmiArgs),
}

/// `berth image ...`.
pub(crate) fn image_command(global: &Global, cmd: ImageCommand) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::Ls(args) => images(global, &args),
        ImageCommand::Rm(args) => rmi(global, &args),
        ImageCommand::Inspect { images } => {
            let store = open_store(global)?;
            let mut out = Vec::new();
            for name in &images {
                let id = store.resolve(name).map_err(store_error)?;
                out.push(store.inspect(&id).map_err(store_error)?);
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        ImageCommand::Prune { all } => {
            let mut store = open_store(global)?;
            let containers = store.containers().map_err(store_error)?;
            let in_use = |id: &ImageId| containers.iter().any(|c| c.image == *id);
            let removed = store.prune(&in_use, all).map_err(store_error)?;
            let mut out = io::stdout().lock();
            writeln!(out, "Deleted Images:")?;
            for id in removed {
                writeln!(out, "deleted: {id}")?;
            }
            Ok(out.flush()?)
        }
    }
}

/// A size as docker prints it: decimal units, three significant digits (`4.26MB`).
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    // Display only: the precision lost converting to f64 does not show in 3 digits.
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 999.5 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = if unit == 0 || value >= 99.95 {
        0
    } else if value >= 9.995 {
        1
    } else {
        2
    };
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{text}{}", UNITS[unit])
}

/// A time as RFC 3339 in UTC, to the second (`2026-11-27T23:14:08Z`).
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    berth_core::jsonlog::Timestamp::from_epoch(since).format_secs()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn sizes_read_as_docker_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1234), "1.23kB");
        assert_eq!(human_size(12_345), "12.3kB");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(999_999), "1MB");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_080_448);
        assert_eq!(rfc3339(t), "2026-11-30T23:14:08Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn columns_use_the_short_name() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(columns(&r), ("busybox".to_owned(), "latest".to_owned()));
        let r = Reference::parse("localhost:5000/team/app:v1").unwrap();
        assert_eq!(
            columns(&r),
            ("localhost:5000/team/app".to_owned(), "v1".to_owned())
        );
    }
}
