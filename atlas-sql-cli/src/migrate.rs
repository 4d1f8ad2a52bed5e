//! `atlas-sql migrate SRC DST`: a store (an atlas-rust one, or one of ours) copied into a new
//! atlas-sql store, every array checked equal before success is reported.

use std::io::IsTerminal;
use std::process::ExitCode;

use atlas_store::{Atlas, Codec, CopyPhase, CopyProgress, StoreConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::exec::CliError;
use crate::ingest::CodecArg;
use crate::maintain::{DAMAGED, plural, size};

/// Arguments of `atlas-sql migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The store to copy: an atlas-rust 0.17 collection (data.atlas) or an atlas-sql store; a
    /// path or URL. Only read.
    src: String,
    /// Where to create the atlas-sql store: a path or URL where nothing is yet.
    dst: String,
    /// Codec of the new store's segments.
    #[arg(long, value_enum, default_value_t = CodecArg::Zstd)]
    codec: CodecArg,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

fn bar(quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(0);
    b.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {msg} {wide_bar} {human_pos}/{human_len} cells (ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

fn show(bar: &ProgressBar, p: &CopyProgress) {
    let phase = match p.phase {
        CopyPhase::Copying => "copying",
        CopyPhase::Committing => "committing",
        CopyPhase::Verifying => "verifying",
    };
    bar.set_length(p.cells_total);
    bar.set_position(p.cells_done);
    bar.set_message(format!(
        "{phase} {}/{} datasets",
        p.datasets_done, p.datasets_total
    ));
}

/// Runs the migration: exit 0 when the copy is verified, [`DAMAGED`] when it differs from the
/// source, 1 on other errors, 130 when interrupted; on failure what was written at the
/// destination is removed.
pub async fn run(args: MigrateArgs) -> Result<ExitCode, CliError> {
    let config = StoreConfig {
        codec: match args.codec {
            CodecArg::Zstd => Codec::Zstd,
            CodecArg::Lz4 => Codec::Lz4,
            CodecArg::None => Codec::Uncompressed,
        },
        ..StoreConfig::default()
    };
    let local = !atlas_store::location::is_url(&args.dst);
    // Known before anything runs, so that an interrupt removes only what this run made.
    let existed = local && std::path::Path::new(&args.dst).exists();
    let vacant = !local || atlas_store::location::is_vacant_dir(&args.dst);
    let bar = bar(args.quiet);
    // `None` until the copy starts: errors before it (the source, the destination) wrote
    // nothing.
    let mut phase = None;
    let copied = tokio::select! {
        r = atlas_store::migrate(&args.src, &args.dst, config, |p| {
            phase = Some(p.phase);
            show(&bar, p);
        }) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    bar.finish_and_clear();
    let report = match copied {
        None => {
            if vacant {
                atlas_store::discard_partial_store(&args.dst, existed).await;
            }
            eprintln!(
                "interrupted: nothing was migrated, and {} holds no copy",
                args.dst
            );
            return Ok(ExitCode::from(130));
        }
        Some(Err(e)) => {
            eprintln!("error: {e}");
            let Some(phase) = phase else {
                return Ok(ExitCode::from(1));
            };
            let verifying = phase == CopyPhase::Verifying;
            eprintln!(
                "{}; what was written at {} was removed",
                if verifying {
                    "the copy could not be verified"
                } else {
                    "nothing was migrated"
                },
                args.dst
            );
            return Ok(ExitCode::from(if verifying { DAMAGED } else { 1 }));
        }
        Some(Ok(r)) => r,
    };
    let written = Atlas::open_location(&args.dst).await?;
    let segments = written.list_segments();
    let bytes: u64 = segments.iter().map(|s| s.size).sum();
    let unwritten = if report.arrays_unwritten > 0 {
        format!(
            " ({} defined but never written, copied as definitions)",
            report.arrays_unwritten
        )
    } else {
        String::new()
    };
    println!(
        "migrated {} ({}{unwritten}, {} cells) from {} ({}) to {}: every array read back and \
         equal to the source",
        plural(report.datasets, "dataset", "datasets"),
        plural(report.arrays, "array", "arrays"),
        report.cells,
        args.src,
        report.source_format.unwrap_or("an atlas-sql store"),
        args.dst,
    );
    println!(
        "{}: generation {}, {}, {}",
        args.dst,
        report.generation,
        plural(segments.len(), "segment", "segments"),
        size(bytes),
    );
    Ok(ExitCode::SUCCESS)
}
