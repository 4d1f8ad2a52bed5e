//! Helpers: stores built in memory or on disk, queries with the scan's metrics, result text.

use std::collections::BTreeMap;
use std::sync::Arc;

use atlas_datafusion::atlas_store::object_store::ObjectStore;
use atlas_datafusion::atlas_store::object_store::memory::InMemory;
use atlas_datafusion::atlas_store::object_store::path::Path;
use atlas_datafusion::atlas_store::{Atlas, StoreConfig};
use atlas_datafusion::{AtlasStore, atlas_scans, register_atlas, register_opened, scan_metrics};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};
use ndarray::{Array, IxDyn};
use url::Url;

/// A fresh in-memory object store registered with a new session as `memory://`.
pub fn memory_session(partitions: usize) -> (SessionContext, Arc<dyn ObjectStore>) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    (session_on(partitions, &store), store)
}

/// A new session with `store` registered as `memory://` (nothing of an earlier session's
/// handles or caches).
pub fn session_on(partitions: usize, store: &Arc<dyn ObjectStore>) -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_batch_size(1024);
    let ctx = SessionContext::new_with_config(config);
    let url = Url::parse("memory://").expect("url");
    ctx.register_object_store(&url, Arc::clone(store));
    register_atlas(&ctx);
    ctx
}

/// [`session_on`] as a distributed coordinator whose scans `workers` run.
pub fn distributed_session_on(
    partitions: usize,
    store: &Arc<dyn ObjectStore>,
    workers: atlas_distributed::Workers,
) -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_batch_size(1024);
    let state = atlas_distributed::distribute(
        datafusion::execution::SessionStateBuilder::new()
            .with_default_features()
            .with_config(config),
        workers,
        atlas_datafusion::AtlasCodec::new(),
    )
    .build();
    let ctx = SessionContext::new_with_state(state);
    let url = Url::parse("memory://").expect("url");
    ctx.register_object_store(&url, Arc::clone(store));
    register_atlas(&ctx);
    ctx
}

/// A `sensors`-like store: `n` datasets `s0000…`, each with `temperature(time)` f64 of `len`
/// values `i * 1000 + t` (so dataset `i` spans `[1000 i, 1000 i + len)`), a `time` coordinate
/// (seconds as f64), chunked by `chunk`.
pub async fn sensors(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    n: usize,
    len: usize,
    chunk: usize,
) -> Atlas {
    let mut atlas = Atlas::create(store, Path::from(prefix), StoreConfig::default())
        .await
        .expect("create");
    for i in 0..n {
        let ds = atlas
            .create_dataset(&format!("s{i:04}"))
            .await
            .expect("dataset");
        ds.set_attribute(
            "platform",
            atlas_datafusion::atlas_store::Attr::String(if i % 4 == 0 {
                "glider".into()
            } else {
                "mooring".into()
            }),
        )
        .expect("attr");
        ds.set_attribute(
            "index",
            atlas_datafusion::atlas_store::Attr::Int64(i as i64),
        )
        .expect("attr");
        ds.define_array::<f64>(
            "temperature",
            vec!["time".into()],
            vec![len],
            Some(vec![chunk]),
            None,
        )
        .await
        .expect("define");
        let v = Array::from_shape_fn(IxDyn(&[len]), |ix| (i * 1000 + ix[0]) as f64);
        ds.write_array("temperature", vec![0], v.view())
            .await
            .expect("write");
        ds.define_array::<f64>(
            "time",
            vec!["time".into()],
            vec![len],
            Some(vec![chunk]),
            None,
        )
        .await
        .expect("define");
        let t = Array::from_shape_fn(IxDyn(&[len]), |ix| ix[0] as f64 * 60.0);
        ds.write_array("time", vec![0], t.view())
            .await
            .expect("write");
    }
    atlas.flush().await.expect("flush");
    atlas
}

/// Opens the store at `location` and registers it as schema `s` of `ctx`.
pub async fn register(ctx: &SessionContext, location: &str) -> Arc<AtlasStore> {
    register_as(ctx, "s", location).await
}

/// Opens the store at `location` and registers it as schema `schema` of `ctx`.
pub async fn register_as(ctx: &SessionContext, schema: &str, location: &str) -> Arc<AtlasStore> {
    let store = AtlasStore::open(location, &ctx.runtime_env())
        .await
        .unwrap_or_else(|e| panic!("open {location}: {e}"));
    register_opened(ctx, schema, Arc::clone(&store)).expect("register");
    store
}

/// What a query returned and what its ATLAS scans reported.
#[derive(Debug)]
pub struct Run {
    pub rows: Vec<String>,
    pub metrics: BTreeMap<String, usize>,
    pub scans: usize,
    pub scan_partitions: Vec<usize>,
    pub plan: Arc<dyn ExecutionPlan>,
}

impl Run {
    pub fn metric(&self, name: &str) -> usize {
        self.metrics.get(name).copied().unwrap_or(0)
    }
}

/// The physical plan of a run, as `EXPLAIN` indents it.
pub fn plan_text(r: &Run) -> String {
    datafusion::physical_plan::displayable(r.plan.as_ref())
        .indent(true)
        .to_string()
}

/// Rows as text, one line each, cells joined by `|`.
pub fn rows_text(batches: &[RecordBatch]) -> Vec<String> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in batches {
        let fmts: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).expect("formatter"))
            .collect();
        for r in 0..b.num_rows() {
            rows.push(
                fmts.iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    rows
}

/// Runs `sql`, returning its rows and the summed metrics of every ATLAS scan in the plan.
pub async fn run(ctx: &SessionContext, sql: &str) -> Run {
    let df = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let plan = df
        .create_physical_plan()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batches = collect(Arc::clone(&plan), ctx.task_ctx())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let scans = atlas_scans(&plan);
    let metrics = scan_metrics(&plan);
    Run {
        rows: rows_text(&batches),
        metrics,
        scans: scans.len(),
        scan_partitions: scans
            .iter()
            .map(|s| s.properties().output_partitioning().partition_count())
            .collect(),
        plan,
    }
}

/// The rows of `sql`, sorted (for comparing results whose order SQL leaves open).
pub async fn sorted(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let mut rows = run(ctx, sql).await.rows;
    rows.sort();
    rows
}

/// An error message of a query that must fail.
pub async fn error_of(ctx: &SessionContext, sql: &str) -> String {
    match ctx.sql(sql).await {
        Err(e) => e.to_string(),
        Ok(df) => match df.collect().await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{sql} succeeded"),
        },
    }
}
