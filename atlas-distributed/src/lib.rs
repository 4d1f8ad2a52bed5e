//! # atlas-distributed
//!
//! atlas-sql on [datafusion-distributed](https://github.com/datafusion-contrib/datafusion-distributed):
//! one coordinator plans a query as usual, splits every ATLAS scan into tasks balanced by the
//! elements they read, and ships each task's plan to a worker. Workers open the store
//! themselves (local path or object store) and read only their task's units of work; the
//! coordinator sends plans, never array bytes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use datafusion::execution::SessionStateBuilder;
//! use datafusion::prelude::{SessionConfig, SessionContext};
//!
//! // Each worker: `atlas-sql serve-worker --listen 0.0.0.0:50051`, or in Rust
//! // `atlas_distributed::serve(listener, AtlasCodec::new(), shutdown)`.
//! let workers = atlas_distributed::Workers::parse("10.0.0.5:50051,10.0.0.6:50051")?;
//! let state = atlas_distributed::distribute(
//!     SessionStateBuilder::new()
//!         .with_default_features()
//!         .with_config(SessionConfig::new()),
//!     workers,
//!     atlas_datafusion::AtlasCodec::new(),
//! )
//! .build();
//! let ctx = SessionContext::new_with_state(state);
//! atlas_datafusion::register_atlas(&ctx);
//! atlas_datafusion::register_store(&ctx, "argo", "s3://bucket/argo.atlas").await?;
//! ctx.sql("SELECT avg(temperature) FROM argo.temperature").await?.show().await?;
//! # Ok(())
//! # }
//! ```
//!
//! `docs/distributed.md` says how to deploy workers against an object store.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::future::Future;
use std::sync::Arc;

use atlas_datafusion::{AtlasCodec, AtlasOptions, AtlasSource};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_distributed::{
    DesiredTaskCountEvent, DesiredTaskCountEventResponse, DistributedExt, DistributedLeafExec,
    ScaleUpLeafNodeEvent, ScaleUpLeafNodeEventResponse, SessionStateBuilderExt, Worker,
    WorkerQueryContext, WorkerResolver,
};
use url::Url;

pub use datafusion_distributed;

/// What can go wrong setting up workers or a distributed session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A worker address that is not `host:port` or a URL.
    #[error("worker address {address:?}: {reason} (give host:port or http://host:port)")]
    Address {
        /// The address as given.
        address: String,
        /// Why it was refused.
        reason: String,
    },
    /// An empty list of workers.
    #[error("no worker addresses given (give host:port,host:port,…)")]
    NoWorkers,
    /// The worker could not listen on its address.
    #[error("worker cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The worker's gRPC server stopped with an error.
    #[error("worker on {address} stopped: {source}")]
    Serve {
        /// The address it served on.
        address: String,
        /// What the server reported.
        #[source]
        source: tonic::transport::Error,
    },
}

/// A fixed list of workers, one URL each (the coordinator spreads tasks over them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workers {
    urls: Vec<Url>,
}

impl Workers {
    /// Parses `host:port,host:port,…` (or `http://host:port` URLs), as `--workers` takes.
    pub fn parse(list: &str) -> Result<Self, Error> {
        let mut urls = Vec::new();
        for address in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let text = if address.contains("://") {
                address.to_string()
            } else {
                format!("http://{address}")
            };
            let bad = |reason: String| Error::Address {
                address: address.to_string(),
                reason,
            };
            let url = Url::parse(&text).map_err(|e| bad(e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad(format!(
                    "scheme {:?} is not http or https",
                    url.scheme()
                )));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(bad("no host".into()));
            }
            if !address.contains("://") && url.port().is_none() {
                return Err(bad("no port".into()));
            }
            urls.push(url);
        }
        if urls.is_empty() {
            return Err(Error::NoWorkers);
        }
        Ok(Workers { urls })
    }

    /// The workers' URLs.
    pub fn urls(&self) -> &[Url] {
        &self.urls
    }
}

impl WorkerResolver for Workers {
    fn get_urls(&self) -> DfResult<Vec<Url>> {
        Ok(self.urls.clone())
    }
}

/// `builder` as a distributed coordinator over `workers`: DataFusion-distributed's planner,
/// the ATLAS codec, and the handlers that split each ATLAS scan into tasks (one task per
/// `atlas.elements_per_task` values the scan reads, at most one per worker, balanced by
/// element count). Give the builder its config (`with_config`) before this call.
pub fn distribute(
    builder: SessionStateBuilder,
    workers: impl WorkerResolver + 'static,
    codec: AtlasCodec,
) -> SessionStateBuilder {
    builder
        .with_distributed_worker_resolver(workers)
        .with_distributed_planner()
        .with_distributed_user_codec(codec)
        .with_distributed_desired_task_count_handler(desired_task_count)
        .with_distributed_scale_up_leaf_node_handler(scale_up_leaf_node)
}

fn atlas_source(plan: &Arc<dyn ExecutionPlan>) -> Option<&AtlasSource> {
    plan.downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<AtlasSource>()
}

/// How many tasks an ATLAS scan asks for: one per `atlas.elements_per_task` values it reads.
fn desired_task_count(
    event: DesiredTaskCountEvent,
) -> Option<DfResult<DesiredTaskCountEventResponse>> {
    let source = atlas_source(event.plan)?;
    let per_task = AtlasOptions::elements_per_task_of(event.session_config.options()).max(1);
    let units: usize = source.units_per_partition().iter().sum();
    let tasks = source.elements().div_ceil(per_task).max(1) as usize;
    Some(Ok(DesiredTaskCountEventResponse::desired(
        tasks.min(units.max(1)),
    )))
}

/// Splits an ATLAS scan into `task_count` scans sharing no unit of work.
fn scale_up_leaf_node(
    event: ScaleUpLeafNodeEvent,
) -> Option<DfResult<ScaleUpLeafNodeEventResponse>> {
    let source = atlas_source(event.plan)?;
    if event.task_count <= 1 {
        return Some(Ok(ScaleUpLeafNodeEventResponse::new(Arc::clone(
            event.plan,
        ))));
    }
    let variants = source
        .split_into_tasks(event.task_count)
        .into_iter()
        .map(|s| DataSourceExec::from_data_source(s) as Arc<dyn ExecutionPlan>);
    Some(
        DistributedLeafExec::try_new(Arc::clone(event.plan), variants)
            .map(|leaf| ScaleUpLeafNodeEventResponse::new(Arc::new(leaf))),
    )
}

/// A worker that decodes ATLAS scans with `codec` (give it the stores the worker serves with
/// [`AtlasCodec::with_store`] to skip the first query's open).
pub fn worker(codec: AtlasCodec) -> Worker {
    Worker::from_session_builder(move |ctx: WorkerQueryContext| {
        let codec = codec.clone();
        async move { Ok::<_, DataFusionError>(ctx.builder.with_distributed_user_codec(codec).build()) }
    })
}

/// Serves a worker on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    codec: AtlasCodec,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let incoming = futures::stream::unfold(listener, |listener| async move {
        let next = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((next, listener))
    });
    tonic::transport::Server::builder()
        .add_service(worker(codec).into_worker_server())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|source| Error::Serve { address, source })
}

/// Binds `address` (`host:port`) and serves a worker there until `shutdown` completes.
pub async fn serve_on(
    address: &str,
    codec: AtlasCodec,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| Error::Listen {
            address: address.to_string(),
            source,
        })?;
    serve(listener, codec, shutdown).await
}
