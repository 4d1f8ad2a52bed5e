//! `atlas-sql serve-worker`: a worker of distributed queries.

use std::process::ExitCode;

use atlas_datafusion::{AtlasCodec, AtlasStore};
use datafusion::execution::runtime_env::RuntimeEnv;

use crate::exec::CliError;

/// Options of `serve-worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Address to listen on (`0.0.0.0:PORT` to accept other machines).
    #[arg(long, default_value = "127.0.0.1:50051", value_name = "HOST:PORT")]
    listen: String,
    /// A store to open before serving (repeatable; path or URL, as the coordinator names it),
    /// so the first query does not wait for the open. Stores not named here are opened when a
    /// query first reads them.
    #[arg(long = "store", value_name = "PATH_OR_URL")]
    stores: Vec<String>,
}

/// Serves until Ctrl-C (or SIGTERM).
pub async fn run(args: WorkerArgs) -> Result<ExitCode, CliError> {
    let mut codec = AtlasCodec::new();
    let runtime = RuntimeEnv::default();
    for location in &args.stores {
        let store = AtlasStore::open(location, &runtime).await?;
        eprintln!(
            "opened {location}: {} datasets, generation {}",
            store.catalog().len(),
            store.catalog().generation()
        );
        codec = codec.with_store(store);
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| args.listen.clone());
    eprintln!("atlas-sql worker listening on {address} (Ctrl-C stops it)");
    atlas_distributed::serve(listener, codec, shutdown_signal())
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    eprintln!("atlas-sql worker on {address} stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
