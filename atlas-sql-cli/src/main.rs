//! `atlas-sql`: query ATLAS stores with SQL, ingest NetCDF files into them, inspect them, and run
//! a demo.
//!
//! Exit codes: 0 success; 1 an error (message on stderr); 2 bad usage; 3 an ingest that finished
//! but skipped files it could not read; 4 `verify` found a missing or damaged segment.

mod demo;
mod exec;
mod info;
mod ingest;
mod maintain;
mod migrate;
mod repl;
mod session;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::exec::{Format, Printer};

#[derive(Debug, Parser)]
#[command(
    name = "atlas-sql",
    version,
    about = "Query collections of NetCDF-like datasets in ATLAS stores with SQL",
    args_conflicts_with_subcommands = true,
    after_help = "With no -c/-f, starts an interactive shell (\\? for help).\n\
                  Examples:\n  atlas-sql demo\n  atlas-sql ingest ocean.atlas data/*.nc --create\n  \
                  atlas-sql --store ocean.atlas -c 'SELECT count(*) FROM temperature'"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    query: QueryArgs,
}

/// Options of query mode.
#[derive(Debug, Args)]
struct QueryArgs {
    /// A store to query, as PATH_OR_URL or NAME=PATH_OR_URL; registered as a schema named after
    /// its directory (or NAME). The first is also the default schema.
    #[arg(long = "store", value_name = "[NAME=]PATH_OR_URL")]
    stores: Vec<String>,
    /// SQL to run (repeatable); several statements may be separated by `;`.
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    commands: Vec<String>,
    /// A file of SQL statements to run (repeatable).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Output format of query results.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Print how long each statement took (to stderr).
    #[arg(long)]
    timing: bool,
    /// No banner, no row counts.
    #[arg(short, long)]
    quiet: bool,
    /// Run queries distributed: each ATLAS scan split into tasks for these workers
    /// (`atlas-sql serve-worker`), which read the store themselves.
    #[arg(long, value_name = "HOST:PORT,…")]
    workers: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ingest NetCDF files (classic, 64-bit offset, NetCDF4/HDF5) into a store, one dataset per
    /// file.
    Ingest(ingest::IngestArgs),
    /// Build a demo store (synthetic ocean profiles and gridded fields) and run showcase queries.
    Demo {
        /// Where to build the store [default: atlas-sql-demo in the system temp directory].
        dir: Option<PathBuf>,
    },
    /// Describe a store: datasets, variables with dims and dtypes, segments and sizes.
    Info {
        /// The store, a path or URL.
        store: String,
    },
    /// Upgrade a store written by an earlier version to the current catalog format (a
    /// checkpoint of its current state; nothing else is rewritten). Safe to run on a store
    /// that is already current: it then only writes a fresh checkpoint.
    Upgrade {
        /// The store directory.
        store: PathBuf,
    },
    /// Merge each variable's segments into one and drop the bytes of deleted data.
    Compact {
        /// The store (a local directory).
        store: PathBuf,
        /// How long removed segments stay for readers of older generations (e.g. 15m, 1h, 0).
        #[arg(long, value_parser = maintain::parse_duration, value_name = "DURATION")]
        retention: Option<std::time::Duration>,
    },
    /// Remove segment files no commit needs: retired by compact or deletes, or left by a
    /// crashed writer, once older than the retention.
    Vacuum {
        /// The store (a local directory).
        store: PathBuf,
        /// Keep what is younger than this (default 1h; 0 removes at once, which readers of
        /// older generations and writers on other machines may not survive).
        #[arg(long, value_parser = maintain::parse_duration, value_name = "DURATION")]
        retention: Option<std::time::Duration>,
        /// Show what would be removed and remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Read every segment in full and check it against the catalog; exit code 4 when any is
    /// missing or damaged.
    Verify {
        /// The store (a local directory).
        store: PathBuf,
    },
    /// Copy a store (an atlas-rust 0.17 collection, or an atlas-sql store) into a new atlas-sql
    /// store, streaming with bounded memory, and check every array of the copy equal to the
    /// source before reporting success; exit code 4 when it differs.
    Migrate(migrate::MigrateArgs),
    /// Serve as a worker of distributed queries (`atlas-sql --workers …` on the coordinator):
    /// runs the tasks it is sent, reading the stores they name itself, until Ctrl-C.
    ServeWorker(worker::WorkerArgs),
    /// Delete datasets, by name or by a SQL LIKE pattern, in one commit.
    Delete {
        /// The store (a local directory).
        store: PathBuf,
        /// Dataset names.
        datasets: Vec<String>,
        /// Also every dataset whose name matches this SQL LIKE pattern (`%`, `_`).
        #[arg(long, value_name = "PATTERN")]
        like: Option<String>,
        /// Show what would be deleted and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::Ingest(args)) => ingest::run(args).await,
            Some(Command::Demo { dir }) => demo::run(dir).await.map(|()| ExitCode::SUCCESS),
            Some(Command::Info { store }) => info::run(&store).await.map(|()| ExitCode::SUCCESS),
            Some(Command::Upgrade { store }) => upgrade(&store).await,
            Some(Command::Compact { store, retention }) => {
                maintain::compact(&store, retention).await
            }
            Some(Command::Vacuum {
                store,
                retention,
                dry_run,
            }) => maintain::vacuum(&store, retention, dry_run).await,
            Some(Command::Verify { store }) => maintain::verify(&store).await,
            Some(Command::Migrate(args)) => migrate::run(args).await,
            Some(Command::ServeWorker(args)) => worker::run(args).await,
            Some(Command::Delete {
                store,
                datasets,
                like,
                dry_run,
            }) => maintain::delete(&store, &datasets, like.as_deref(), dry_run).await,
            None => query(cli.query).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(exec::CliError::Reported(_)) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn upgrade(path: &std::path::Path) -> Result<ExitCode, exec::CliError> {
    let mut atlas =
        atlas_datafusion::atlas_store::Atlas::open_location(&path.to_string_lossy()).await?;
    let before = atlas.format_version();
    let generation = atlas.checkpoint().await?;
    let after = atlas.format_version();
    if before == after {
        println!(
            "{}: already at format version {after}; wrote a checkpoint of generation {generation}",
            path.display()
        );
    } else {
        println!(
            "{}: upgraded from format version {before} to {after} (checkpoint of generation \
             {generation})",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn query(args: QueryArgs) -> Result<ExitCode, exec::CliError> {
    let (ctx, _) = session::build(&args.stores, args.workers.as_deref()).await?;
    let mut printer = Printer::new(args.format, args.timing, args.quiet);
    if args.commands.is_empty() && args.files.is_empty() {
        repl::run(&ctx, &mut printer).await?;
        return Ok(ExitCode::SUCCESS);
    }
    for sql in &args.commands {
        exec::run_sql(&ctx, sql, &mut printer).await?;
    }
    for file in &args.files {
        let sql = std::fs::read_to_string(file).map_err(|e| {
            exec::CliError::Usage(format!("cannot read SQL file {}: {e}", file.display()))
        })?;
        exec::run_sql(&ctx, &sql, &mut printer).await?;
    }
    Ok(ExitCode::SUCCESS)
}
