//! NetCDF files into an ATLAS store: one dataset per file, with CF decoding as xarray does it
//! (scale and offset, fill and missing values, times to timestamps) unless `raw`. Behind
//! `atlas-sql ingest` and the Python package's `atlas_sql.ingest`.
//!
//! Reads classic, 64-bit offset, CDF5 and NetCDF4/HDF5 files with a pure-Rust reader. Files
//! are decoded in parallel and written in order; the store is committed every
//! [`IngestOptions::flush_every`] files (all at once under `strict`), so an interrupted ingest
//! keeps what the last commit holds and can be resumed with `skip_existing`.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod consistency;
mod decode;
mod time;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atlas_store::{Atlas, Codec, MetaFormat, StoreConfig};
use futures::StreamExt;

use crate::consistency::Survey;
use crate::decode::{decode_file, strict_check, write_file};

/// Files between two commits by default: what a crash or an interrupt can lose at most. Each
/// commit writes what changed since the last, so commits are kept few.
pub const FLUSH_EVERY: usize = 500;

/// Everything that can stop an ingest as a whole. A file that cannot be read or written is not
/// an error of the ingest: it is reported in [`IngestReport::failures`] and the others go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a missing path, two files that would be one dataset, no store without
    /// `create`, a bad option.
    #[error("{0}")]
    Input(String),
    /// Under `strict`, a file disagrees with the store; nothing was committed.
    #[error(
        "strict: {path}: {reason}; nothing was committed (without strict the file is ingested \
         and the conflict reported)"
    )]
    Strict {
        /// The file.
        path: PathBuf,
        /// How it disagrees.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] atlas_store::Error),
}

/// A `Result` of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How dataset names are made from file paths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NameFrom {
    /// The file name without its extension.
    #[default]
    Stem,
    /// The path below the input folder, without extension, `/` turned into `.`.
    Relpath,
}

/// What an ingest does.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Create the store when nothing is at its location yet.
    pub create: bool,
    /// Codec of a new store's segments.
    pub codec: Codec,
    /// Chunk lengths per dimension; other dimensions are split only when an array exceeds
    /// [`atlas_store::CHUNK_ELEMENTS`].
    pub chunks: HashMap<String, usize>,
    /// How dataset names are made.
    pub name_from: NameFrom,
    /// Skip files whose dataset exists instead of reporting them.
    pub skip_existing: bool,
    /// Store values as the files hold them: no fill values, scaling or time decoding.
    pub raw: bool,
    /// Refuse the first file whose variables disagree with the store (a type no SQL column
    /// holds together with the store's, or other units); commit once, at the end.
    pub strict: bool,
    /// Files decoded in parallel.
    pub jobs: usize,
    /// Files between two commits.
    pub flush_every: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            create: false,
            codec: Codec::Zstd,
            chunks: HashMap::new(),
            name_from: NameFrom::Stem,
            skip_existing: false,
            raw: false,
            strict: false,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            flush_every: FLUSH_EVERY,
        }
    }
}

/// How far an ingest is, given to the progress callback after each file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Files handled (ingested or failed).
    pub files_done: usize,
    /// Files to handle.
    pub files_total: usize,
    /// Bytes of the files handled.
    pub bytes_done: u64,
    /// Bytes of all the files.
    pub bytes_total: u64,
}

/// A file that was not ingested, and why.
#[derive(Debug, Clone)]
pub struct FileFailure {
    /// The file.
    pub path: PathBuf,
    /// Why (the reader's or the store's message).
    pub reason: String,
}

/// What an ingest did.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    /// Files ingested.
    pub ingested: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Files skipped because their dataset existed (`skip_existing`).
    pub skipped: usize,
    /// Files not ingested.
    pub failures: Vec<FileFailure>,
    /// What the store's datasets disagree on after the ingest (see [`consistency`]), one line
    /// per variable; empty when they agree.
    pub conflicts: Vec<String>,
    /// How long it took.
    pub elapsed: Duration,
}

fn is_netcdf(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("nc" | "nc4" | "cdf" | "netcdf")
    )
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_netcdf(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// The NetCDF files of `inputs` (files, or folders searched recursively for `*.nc`, `*.nc4`,
/// `*.cdf`, `*.netcdf`), each with the dataset name it becomes.
pub fn collect(inputs: &[PathBuf], name_from: NameFrom) -> Result<Vec<(String, PathBuf)>> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for input in inputs {
        let mut files = Vec::new();
        let base = if input.is_dir() {
            walk(input, &mut files)
                .map_err(|e| Error::Input(format!("cannot list {}: {e}", input.display())))?;
            input.clone()
        } else if input.exists() {
            files.push(input.clone());
            input.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            return Err(Error::Input(format!(
                "no such file or folder: {}",
                input.display()
            )));
        };
        for file in files {
            let name = match name_from {
                NameFrom::Stem => file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                NameFrom::Relpath => {
                    let rel = file.strip_prefix(&base).unwrap_or(&file).with_extension("");
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(".")
                }
            };
            let name = if name.starts_with('_') {
                format!("d{name}")
            } else {
                name
            };
            if let Some(first) = seen.get(&name) {
                return Err(Error::Input(format!(
                    "{} and {} would both be dataset {name:?}; name datasets by relative path \
                     (--name-from relpath)",
                    first.display(),
                    file.display()
                )));
            }
            seen.insert(name.clone(), file.clone());
            out.push((name, file));
        }
    }
    Ok(out)
}

/// Whether nothing is at `location` yet: a missing or empty folder, or a URL prefix with no
/// objects under it.
async fn vacant(location: &str) -> Result<bool> {
    if !atlas_store::location::is_url(location) {
        return Ok(atlas_store::location::is_vacant_dir(location));
    }
    let (store, prefix) = atlas_store::location::resolve(location)?;
    Ok(atlas_store::location::is_vacant(store.as_ref(), &prefix).await?)
}

/// Opens the store at `location`, or creates it there when nothing is there and `create`.
async fn open_or_create(location: &str, options: &IngestOptions) -> Result<Atlas> {
    let vacant = vacant(location).await?;
    match Atlas::open_location(location).await {
        Ok(atlas) => Ok(atlas),
        Err(atlas_store::Error::StoreNotFound { .. }) if vacant && options.create => {
            // NetCDF files carry many attributes per variable: a compact, compressed catalog
            // keeps every commit small (JSON of 2,080 Argo profiles is 96 MB, MessagePack +
            // zstd a few).
            let config = StoreConfig {
                codec: options.codec,
                meta_format: MetaFormat::MsgPack,
                meta_compression: Codec::Zstd,
                ..StoreConfig::default()
            };
            Ok(Atlas::create_location(location, config).await?)
        }
        Err(atlas_store::Error::StoreNotFound { .. }) if vacant => Err(Error::Input(format!(
            "no ATLAS store at {location}; create one (--create, or create=True)"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Ingests the NetCDF files of `inputs` (see [`collect`]) into the store at `location` (a path
/// or URL), calling `progress` after each file.
///
/// Files that cannot be read or written are reported in the result, never half-written; the
/// others go on. Dropping the future (an interrupt) keeps what the last commit holds.
pub async fn ingest(
    location: &str,
    inputs: &[PathBuf],
    options: &IngestOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<IngestReport> {
    let start = Instant::now();
    let files = collect(inputs, options.name_from)?;
    let mut atlas = open_or_create(location, options).await?;
    let mut report = IngestReport::default();
    let mut todo = Vec::new();
    for (name, path) in files {
        if atlas.dataset_exists(&name) {
            if options.skip_existing {
                report.skipped += 1;
            } else {
                report.failures.push(FileFailure {
                    reason: format!(
                        "dataset {name:?} already exists (--skip-existing, skip_existing=True \
                         in Python, skips such files)"
                    ),
                    path,
                });
            }
        } else {
            todo.push((name, path));
        }
    }
    let mut state = Progress {
        files_total: todo.len(),
        bytes_total: todo
            .iter()
            .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum(),
        ..Progress::default()
    };
    let raw = options.raw;
    let mut decoded = futures::stream::iter(todo.into_iter().map(|(name, path)| {
        let p = path.clone();
        async move {
            let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            let r = tokio::task::spawn_blocking(move || decode_file(&p, raw))
                .await
                .unwrap_or_else(|e| Err(format!("the reader failed: {e}")));
            (name, path, size, r)
        }
    }))
    .buffered(options.jobs.max(1));
    // Under `strict`, what the store and the files written so far hold, to check each file
    // against before it is written.
    let mut survey = options.strict.then(|| Survey::of(&atlas.catalog()));
    let mut since_flush = 0usize;
    progress(&state);
    while let Some((name, path, size, result)) = decoded.next().await {
        state.files_done += 1;
        state.bytes_done += size;
        match result {
            Err(reason) => report.failures.push(FileFailure { path, reason }),
            Ok(file) => {
                if let Err(reason) = strict_check(survey.as_mut(), &name, &file) {
                    return Err(Error::Strict { path, reason });
                }
                match write_file(&mut atlas, &name, file, &options.chunks).await {
                    Ok(()) => {
                        report.ingested += 1;
                        report.bytes += size;
                        since_flush += 1;
                    }
                    Err(e) => {
                        // Drop what was written of this file, so the store never holds half
                        // of it.
                        if atlas.dataset_exists(&name) {
                            let _ = atlas.delete_dataset(&name).await;
                        }
                        report.failures.push(FileFailure {
                            path,
                            reason: e.to_string(),
                        });
                    }
                }
            }
        }
        progress(&state);
        if since_flush >= options.flush_every.max(1) && !options.strict {
            atlas.flush().await?;
            since_flush = 0;
        }
    }
    atlas.flush().await?;
    if report.ingested > 0 {
        let catalog = atlas.catalog();
        report.conflicts = Survey::of(&catalog).report(&catalog);
    }
    report.elapsed = start.elapsed();
    Ok(report)
}
