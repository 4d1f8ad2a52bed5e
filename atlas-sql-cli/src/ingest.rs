//! `atlas-sql ingest`: NetCDF files (classic, 64-bit offset, CDF5, NetCDF4/HDF5) into a store,
//! one dataset per file, with CF decoding as xarray does it unless `--raw`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use atlas_ingest::{IngestOptions, Progress};
use atlas_store::Codec;
use indicatif::{ProgressBar, ProgressStyle};

use crate::exec::CliError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CodecArg {
    Zstd,
    Lz4,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NameFrom {
    /// The file name without its extension.
    Stem,
    /// The path below the input folder, without extension, `/` turned into `.`.
    Relpath,
}

/// Arguments of `atlas-sql ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// The store (a local directory).
    store: PathBuf,
    /// NetCDF files, or folders searched recursively for *.nc, *.nc4, *.cdf, *.netcdf.
    #[arg(required = true, value_name = "FILE_OR_DIR")]
    inputs: Vec<PathBuf>,
    /// Create the store if it does not exist.
    #[arg(long)]
    create: bool,
    /// Codec of a new store's segments.
    #[arg(long, value_enum, default_value_t = CodecArg::Zstd)]
    codec: CodecArg,
    /// Chunk lengths per dimension, e.g. `time=24,lat=45`; other dimensions are not split.
    #[arg(long, value_name = "DIM=N,...")]
    chunk: Option<String>,
    /// How dataset names are made from file paths.
    #[arg(long, value_enum, default_value_t = NameFrom::Stem)]
    name_from: NameFrom,
    /// Skip files whose dataset already exists instead of reporting them.
    #[arg(long)]
    skip_existing: bool,
    /// Store values as they are in the files: no fill values, scaling or time decoding.
    #[arg(long)]
    raw: bool,
    /// Refuse files whose variables disagree with the store (a type no SQL column holds
    /// together with the store's, or other units): the first one stops the ingest and nothing
    /// is committed. Commits once, at the end.
    #[arg(long)]
    strict: bool,
    /// Files decoded in parallel.
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// No progress bar and no summary.
    #[arg(short, long)]
    quiet: bool,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn parse_chunks(spec: Option<&str>) -> Result<HashMap<String, usize>, CliError> {
    spec.map_or_else(
        || Ok(HashMap::new()),
        |s| atlas_store::parse_chunk_spec(s).map_err(|e| CliError::Usage(format!("--chunk: {e}"))),
    )
}

/// Runs the ingest; exit code 3 when some files were skipped.
pub async fn run(args: IngestArgs) -> Result<ExitCode, CliError> {
    let options = IngestOptions {
        create: args.create,
        codec: match args.codec {
            CodecArg::Zstd => Codec::Zstd,
            CodecArg::Lz4 => Codec::Lz4,
            CodecArg::None => Codec::Uncompressed,
        },
        chunks: parse_chunks(args.chunk.as_deref())?,
        name_from: match args.name_from {
            NameFrom::Stem => atlas_ingest::NameFrom::Stem,
            NameFrom::Relpath => atlas_ingest::NameFrom::Relpath,
        },
        skip_existing: args.skip_existing,
        raw: args.raw,
        strict: args.strict,
        jobs: args.jobs.max(1),
        ..IngestOptions::default()
    };
    let location = args.store.to_string_lossy().into_owned();
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {msg} (ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    let mut on_progress = |p: &Progress| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
        bar.set_message(format!("{}/{} files", p.files_done, p.files_total));
    };
    let ctrl_c = tokio::signal::ctrl_c();
    let report = tokio::select! {
        r = atlas_ingest::ingest(&location, &args.inputs, &options, &mut on_progress) => r,
        _ = ctrl_c => {
            bar.abandon();
            eprintln!(
                "interrupted: the store keeps the files committed by the last flush; \
                 rerun with --skip-existing to continue"
            );
            return Ok(ExitCode::from(130));
        }
    };
    let report = report.map_err(|e| {
        bar.abandon();
        match e {
            atlas_ingest::Error::Input(s) => CliError::Usage(s),
            atlas_ingest::Error::Strict { path, reason } => CliError::Usage(format!(
                "--strict: {}: {reason}; nothing was committed (without --strict the file is \
                 ingested and the conflict reported)",
                path.display()
            )),
            atlas_ingest::Error::Store(e) => CliError::Store(e),
            other => CliError::Usage(other.to_string()),
        }
    })?;
    bar.finish_and_clear();
    let ok = report.ingested;
    if !args.quiet {
        eprintln!(
            "ingested {ok} file{} ({:.1} MiB) into {} in {:.2} s{}",
            if ok == 1 { "" } else { "s" },
            report.bytes as f64 / 1_048_576.0,
            args.store.display(),
            report.elapsed.as_secs_f64(),
            if report.skipped > 0 {
                format!("; skipped {} existing", report.skipped)
            } else {
                String::new()
            }
        );
    }
    for f in &report.failures {
        eprintln!("failed: {}: {}", f.path.display(), f.reason);
    }
    if !report.conflicts.is_empty() {
        eprintln!(
            "warning: the datasets of {} disagree on {} variable{}:",
            args.store.display(),
            report.conflicts.len(),
            if report.conflicts.len() == 1 { "" } else { "s" }
        );
        for l in &report.conflicts {
            eprintln!("  - {l}");
        }
        eprintln!(
            "  every dataset: atlas-sql --store {} -c 'SELECT * FROM _conflicts'; \
             --strict refuses such files",
            args.store.display()
        );
    }
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "{} file{} not ingested",
            report.failures.len(),
            if report.failures.len() == 1 { "" } else { "s" }
        );
        ExitCode::from(3)
    })
}
