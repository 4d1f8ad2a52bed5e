//! Queries run by loopback workers (real gRPC over TCP on this machine) give the answers of a
//! local session, and each worker reads only the units of work of its task.

use std::collections::BTreeMap;
use std::sync::Arc;

use atlas_datafusion::atlas_store::{Atlas, StoreConfig};
use atlas_datafusion::{AtlasCodec, register_atlas, register_store, scan_metrics};
use atlas_distributed::datafusion_distributed::{
    DISTRIBUTED_DATAFUSION_TASK_ID_LABEL, DistributedMetricsFormat, display_plan_ascii,
    rewrite_distributed_plan_with_metrics,
};
use atlas_distributed::{Workers, distribute};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_plan::metrics::MetricValue;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};
use ndarray::{Array, IxDyn};
use tokio::sync::oneshot;

const DATASETS: usize = 40;
const DEPTH: usize = 20;
const TIME: usize = 30;

/// A profile store: `DATASETS` datasets `p00000…`, each `temperature(depth, time)` f32 chunked
/// by (10, 30) with a `depth` coordinate, values drifting with the dataset number.
async fn profile_store(dir: &std::path::Path) -> String {
    let location = dir.join("profile.atlas");
    let mut atlas = Atlas::create_path(&location, StoreConfig::default())
        .await
        .expect("create");
    for i in 0..DATASETS {
        let ds = atlas
            .create_dataset(&format!("p{i:05}"))
            .await
            .expect("dataset");
        ds.define_array::<f32>(
            "temperature",
            vec!["depth".into(), "time".into()],
            vec![DEPTH, TIME],
            Some(vec![10, TIME]),
            None,
        )
        .await
        .expect("define");
        let v = Array::from_shape_fn(IxDyn(&[DEPTH, TIME]), |ix| {
            (i % 10) as f32 * 0.5 + 4.0 - ix[0] as f32 * 0.1 + ix[1] as f32 * 0.01
        });
        ds.write_array("temperature", vec![0, 0], v.view())
            .await
            .expect("write");
        ds.define_array::<f64>("depth", vec!["depth".into()], vec![DEPTH], None, None)
            .await
            .expect("define");
        let d = Array::from_shape_fn(IxDyn(&[DEPTH]), |ix| ix[0] as f64 * 5.0);
        ds.write_array("depth", vec![0], d.view())
            .await
            .expect("write");
    }
    atlas.flush().await.expect("flush");
    location.to_string_lossy().into_owned()
}

/// Workers serving on loopback ports until dropped.
struct Cluster {
    workers: Workers,
    stop: Vec<oneshot::Sender<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in self.stop.drain(..) {
            let _ = s.send(());
        }
    }
}

/// `n` workers, each with a codec of its own (each opens the store itself).
async fn cluster(n: usize) -> Cluster {
    let mut addresses = Vec::new();
    let mut stop = Vec::new();
    for _ in 0..n {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        addresses.push(listener.local_addr().expect("address").to_string());
        let (tx, rx) = oneshot::channel::<()>();
        stop.push(tx);
        tokio::spawn(atlas_distributed::serve(
            listener,
            AtlasCodec::new(),
            async {
                let _ = rx.await;
            },
        ));
    }
    Cluster {
        workers: Workers::parse(&addresses.join(",")).expect("workers"),
        stop,
    }
}

fn config(partitions: usize) -> SessionConfig {
    SessionConfig::new()
        .with_target_partitions(partitions)
        .with_batch_size(1024)
}

async fn local_session(location: &str) -> SessionContext {
    let ctx = SessionContext::new_with_config(config(2));
    register_atlas(&ctx);
    register_store(&ctx, "s", location).await.expect("register");
    ctx
}

/// A coordinator over `workers`; `elements_per_task` small enough splits every scan.
async fn distributed_session(
    location: &str,
    workers: &Workers,
    elements_per_task: u64,
) -> SessionContext {
    let state = distribute(
        SessionStateBuilder::new()
            .with_default_features()
            .with_config(config(2)),
        workers.clone(),
        AtlasCodec::new(),
    )
    .build();
    let ctx = SessionContext::new_with_state(state);
    register_atlas(&ctx);
    ctx.sql(&format!(
        "SET atlas.elements_per_task = {elements_per_task}"
    ))
    .await
    .expect("set");
    register_store(&ctx, "s", location).await.expect("register");
    ctx
}

fn rows_text(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let formatters: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for r in 0..b.num_rows() {
            let cells: Vec<String> = formatters.iter().map(|f| f.value(r).to_string()).collect();
            out.push(cells.join("|"));
        }
    }
    out.sort();
    out
}

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows_text(&batches)
}

/// The benchmark's five profile queries (benches/src/bin/sql_compare.rs) and more shapes:
/// grouping, ordering with a limit, coordinate and index filters, a self-join.
const QUERIES: &[&str] = &[
    "SELECT avg(temperature) FROM s.temperature",
    "SELECT avg(temperature) FROM s.temperature WHERE dataset = 'p00020'",
    "SELECT avg(temperature) FROM s.temperature WHERE depth_index < 5 AND time_index < 7",
    "SELECT count(*) FROM s.temperature WHERE temperature > 7.5",
    "SELECT count(*), min(temperature), max(temperature) FROM s.temperature",
    "SELECT dataset, count(*), round(avg(temperature), 4) FROM s.temperature GROUP BY dataset",
    "SELECT dataset, depth_index, time_index, temperature FROM s.temperature \
     ORDER BY temperature DESC, dataset, depth_index, time_index LIMIT 7",
    "SELECT dataset, depth, temperature FROM s.temperature WHERE depth >= 80 AND time_index = 3",
    "SELECT count(*) FROM (SELECT dataset, time_index FROM s.temperature LIMIT 50)",
    "SELECT a.dataset, a.depth_index, a.temperature - b.temperature FROM s.temperature a \
     JOIN s.temperature b ON a.dataset = b.dataset AND a.depth_index = b.depth_index \
     AND a.time_index = b.time_index WHERE a.dataset IN ('p00001', 'p00031') AND a.time_index = 0",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn benchmark_queries_give_the_same_rows_on_three_workers_as_in_one_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = profile_store(dir.path()).await;
    let cluster = cluster(3).await;
    let local = local_session(&location).await;
    let distributed = distributed_session(&location, &cluster.workers, 1).await;
    for q in QUERIES {
        let theirs = rows(&local, q).await;
        let ours = rows(&distributed, q).await;
        assert!(!theirs.is_empty(), "{q}: no rows");
        assert_eq!(ours, theirs, "{q}");
    }
    // The full scan was split: its plan has a stage of three tasks around the scan.
    let plan = distributed
        .sql(QUERIES[0])
        .await
        .expect("sql")
        .create_physical_plan()
        .await
        .expect("plan");
    let text = display_plan_ascii(plan.as_ref(), false);
    assert!(text.contains("DistributedLeafExec"), "{text}");
    assert!(text.contains("tasks=3"), "{text}");
}

/// Per task, the sum of each ATLAS scan metric in a plan rewritten with per-task metrics.
fn per_task(plan: &Arc<dyn ExecutionPlan>, name: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut stack = vec![Arc::clone(plan)];
    while let Some(p) = stack.pop() {
        if p.name() == "DistributedLeafExec"
            && let Some(m) = p.metrics()
        {
            for metric in m.iter() {
                if metric.value().name() != name {
                    continue;
                }
                // The coordinator's own copy of the scan (no task label) never ran.
                let Some(task) = metric
                    .labels()
                    .iter()
                    .find(|l| l.name() == DISTRIBUTED_DATAFUSION_TASK_ID_LABEL)
                    .map(|l| l.value().to_string())
                else {
                    continue;
                };
                let v = match metric.value() {
                    MetricValue::Count { count, .. } => count.value(),
                    other => other.as_usize(),
                };
                *out.entry(task).or_insert(0) += v;
            }
        }
        stack.extend(p.children().into_iter().cloned());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_worker_reads_only_the_units_of_its_task() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = profile_store(dir.path()).await;
    let cluster = cluster(2).await;
    let distributed = distributed_session(&location, &cluster.workers, 1).await;
    let plan = distributed
        .sql("SELECT avg(temperature) FROM s.temperature")
        .await
        .expect("sql")
        .create_physical_plan()
        .await
        .expect("plan");
    collect(Arc::clone(&plan), distributed.task_ctx())
        .await
        .expect("run");
    let plan = rewrite_distributed_plan_with_metrics(plan, DistributedMetricsFormat::PerTask)
        .await
        .expect("metrics");
    let text = display_plan_ascii(plan.as_ref(), true);
    let datasets = per_task(&plan, "datasets_scanned");
    let planned = per_task(&plan, "chunks_read");
    let decoded = per_task(&plan, "chunks_decoded");
    let bytes = per_task(&plan, "bytes_read");
    // The same scan in one process, on a fresh handle.
    let local = local_session(&location).await;
    let run = local
        .sql("SELECT avg(temperature) FROM s.temperature")
        .await
        .expect("sql")
        .create_physical_plan()
        .await
        .expect("plan");
    collect(Arc::clone(&run), local.task_ctx())
        .await
        .expect("run");
    let whole = scan_metrics(&run);
    // Two tasks read, each half of the 40 datasets (equal sizes), together each one once.
    assert_eq!(datasets.len(), 2, "{datasets:?}\n{text}");
    assert!(
        datasets.values().all(|&d| d == DATASETS / 2),
        "{datasets:?}\n{text}"
    );
    assert_eq!(whole["datasets_scanned"], DATASETS);
    // Each task planned and read the chunks of its own datasets only (two chunks each)...
    assert!(
        planned.values().all(|&c| c == DATASETS),
        "{planned:?}\n{text}"
    );
    assert_eq!(planned.values().sum::<usize>(), whole["chunks_read"]);
    // ...and the store decoded them in the worker: together what one process decodes, give or
    // take a block of packed small arrays two tasks' datasets share.
    let decoded_total: usize = decoded.values().sum();
    assert!(decoded.values().all(|&c| c > 0), "{decoded:?}");
    assert!(
        decoded_total >= whole["chunks_decoded"] && decoded_total <= whole["chunks_decoded"] + 2,
        "{decoded:?} vs {}",
        whole["chunks_decoded"]
    );
    // The workers read the bytes from the store themselves (the coordinator sends no array
    // bytes: what it sent is the plan, a few KB).
    assert!(bytes.values().all(|&b| b > 0), "{bytes:?}");
    assert!(text.contains("plan_bytes_sent"), "{text}");
}

/// Adds dataset `name` to the store at `location` (a commit of its own).
async fn add_dataset(location: &str, name: &str) {
    let mut atlas = Atlas::open_path(location).await.expect("open");
    let ds = atlas.create_dataset(name).await.expect("dataset");
    ds.define_array::<f32>(
        "temperature",
        vec!["depth".into(), "time".into()],
        vec![DEPTH, TIME],
        Some(vec![10, TIME]),
        None,
    )
    .await
    .expect("define");
    let v = Array::from_elem(IxDyn(&[DEPTH, TIME]), 100.0f32);
    ds.write_array("temperature", vec![0, 0], v.view())
        .await
        .expect("write");
    atlas.flush().await.expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_follow_new_commits_and_refuse_a_plan_of_a_generation_they_cannot_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = profile_store(dir.path()).await;
    let first = cluster(2).await;
    let ctx = distributed_session(&location, &first.workers, 1).await;
    let count = "SELECT count(*), max(temperature) FROM s.temperature WHERE temperature >= 0";
    let before = rows(&ctx, count).await;
    assert_eq!(before, vec![format!("{}|8.79", DATASETS * DEPTH * TIME)]);

    // A commit between two queries: the next plan is of the new generation, and the workers,
    // holding the old one, move to it.
    add_dataset(&location, "p99999").await;
    let after = rows(&ctx, count).await;
    assert_eq!(
        after,
        vec![format!("{}|100.0", (DATASETS + 1) * DEPTH * TIME)]
    );

    // A worker still holding the planned generation serves it after a newer commit (its
    // handle reads that generation's segments)...
    let plan = ctx
        .sql(count)
        .await
        .expect("sql")
        .create_physical_plan()
        .await
        .expect("plan");
    add_dataset(&location, "p99998").await;
    let held = collect(plan, ctx.task_ctx()).await.expect("run");
    assert_eq!(
        rows_text(&held),
        vec![format!("{}|100.0", (DATASETS + 1) * DEPTH * TIME)]
    );

    // ...but fresh workers can only open the newest one, and say so instead of answering from
    // another generation than the plan's.
    let fresh = cluster(2).await;
    let ctx = distributed_session(&location, &fresh.workers, 1).await;
    let plan = ctx
        .sql(count)
        .await
        .expect("sql")
        .create_physical_plan()
        .await
        .expect("plan");
    add_dataset(&location, "p99997").await;
    let err = collect(plan, ctx.task_ctx())
        .await
        .expect_err("a plan of an older generation")
        .to_string();
    assert!(err.contains("planned at generation"), "{err}");
    assert!(err.contains(&location), "{err}");
}

#[test]
fn worker_lists_parse_and_bad_addresses_are_named() {
    let w = Workers::parse("10.0.0.5:50051, worker-2:7000,http://h:1").expect("parse");
    let urls: Vec<&str> = w.urls().iter().map(|u| u.as_str()).collect();
    assert_eq!(
        urls,
        [
            "http://10.0.0.5:50051/",
            "http://worker-2:7000/",
            "http://h:1/"
        ]
    );
    let err = Workers::parse("10.0.0.5").expect_err("no port").to_string();
    assert!(
        err.contains("\"10.0.0.5\"") && err.contains("no port"),
        "{err}"
    );
    let err = Workers::parse("ftp://h:1").expect_err("scheme").to_string();
    assert!(err.contains("ftp"), "{err}");
    let err = Workers::parse(" , ").expect_err("empty").to_string();
    assert!(err.contains("no worker"), "{err}");
}
