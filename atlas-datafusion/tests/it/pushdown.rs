//! The scan contract, item by item, proven through the scan's metrics.

use std::sync::Arc;

use atlas_datafusion::AtlasStore;
use atlas_datafusion::atlas_store::object_store::ObjectStore;
use atlas_datafusion::atlas_store::object_store::path::Path;
use atlas_datafusion::atlas_store::{Atlas, StoreConfig};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use ndarray::{Array, IxDyn};

use crate::support::{memory_session, plan_text, register, run, sensors, session_on};

const N: usize = 40;
const LEN: usize = 96;
const CHUNK: usize = 24;

async fn sensor_session(partitions: usize) -> SessionContext {
    let (ctx, store) = memory_session(partitions);
    sensors(store, "sensors", N, LEN, CHUNK).await;
    register(&ctx, "memory:///sensors").await;
    ctx
}

#[tokio::test]
async fn a_query_needing_no_value_column_reads_no_array_bytes() {
    let ctx = sensor_session(2).await;
    let r = run(&ctx, "SELECT dataset, time_index FROM s.temperature").await;
    assert_eq!(r.rows.len(), N * LEN);
    assert_eq!(r.metric("bytes_read"), 0);
    assert_eq!(r.metric("chunks_read"), 0);
    assert_eq!(r.metric("chunks_decoded"), 0, "the store decoded nothing");
    let r = run(&ctx, "SELECT count(DISTINCT dataset) FROM s.temperature").await;
    assert_eq!(r.rows, vec![N.to_string()]);
    assert_eq!(r.metric("bytes_read"), 0);

    let r = run(&ctx, "SELECT temperature FROM s.temperature").await;
    assert!(r.metric("bytes_read") > 0, "{:?}", r.metrics);
    assert_eq!(r.metric("chunks_read"), N * LEN / CHUNK);
}

#[tokio::test]
async fn dataset_predicates_prune_datasets_exactly() {
    let ctx = sensor_session(2).await;
    let cases = [
        ("dataset = 's0003'", 1),
        ("dataset IN ('s0001', 's0002', 's0039')", 3),
        ("dataset != 's0003'", N - 1),
        ("dataset NOT IN ('s0001', 's0002')", N - 2),
        ("dataset LIKE 's001%'", 10),
        ("dataset = 'nope'", 0),
    ];
    for (pred, kept) in cases {
        let sql = format!("SELECT dataset, temperature FROM s.temperature WHERE {pred}");
        let r = run(&ctx, &sql).await;
        assert_eq!(r.rows.len(), kept * LEN, "{pred}");
        assert_eq!(r.metric("datasets_pruned"), N - kept, "{pred}");
        assert_eq!(r.metric("chunks_read"), kept * LEN / CHUNK, "{pred}");
        let plan = plan_text(&r);
        assert!(
            !plan.contains("FilterExec"),
            "{pred} is exact, yet:\n{plan}"
        );
    }
}

#[tokio::test]
async fn index_ranges_read_only_overlapping_chunks() {
    let ctx = sensor_session(2).await;
    // The first quarter: one chunk of four per dataset.
    let r = run(
        &ctx,
        "SELECT temperature FROM s.temperature WHERE time_index < 24",
    )
    .await;
    assert_eq!(r.rows.len(), N * 24);
    assert_eq!(r.metric("chunks_read"), N);
    assert_eq!(r.metric("chunks_pruned"), N * 3);
    assert!(
        !plan_text(&r).contains("FilterExec"),
        "index ranges are exact"
    );
    // A range straddling a chunk boundary reads the two chunks it touches.
    let r = run(
        &ctx,
        "SELECT temperature FROM s.temperature WHERE time_index BETWEEN 20 AND 30 AND dataset = 's0000'",
    )
    .await;
    assert_eq!(r.rows.len(), 11);
    assert_eq!(r.metric("chunks_read"), 2);
    let r = run(
        &ctx,
        "SELECT temperature FROM s.temperature WHERE time_index = 95",
    )
    .await;
    assert_eq!(r.rows.len(), N);
    assert_eq!(r.metric("chunks_read"), N);
    let r = run(
        &ctx,
        "SELECT temperature FROM s.temperature WHERE time_index > 1000",
    )
    .await;
    assert!(r.rows.is_empty());
    assert_eq!(r.metric("chunks_read"), 0);
}

#[tokio::test]
async fn coordinate_ranges_read_only_overlapping_chunks() {
    let ctx = sensor_session(2).await;
    // time = 60 * index; [600, 1200) is indexes 10..20, inside chunk 0.
    let r = run(
        &ctx,
        "SELECT dataset, time, temperature FROM s.temperature WHERE time >= 600 AND time < 1200",
    )
    .await;
    assert_eq!(r.rows.len(), N * 10);
    assert_eq!(r.metric("chunks_read"), N);
    assert!(r.rows.iter().all(|row| {
        let t: f64 = row.split('|').nth(1).unwrap().parse().unwrap();
        (600.0..1200.0).contains(&t)
    }));
    // Coordinates below every dataset's range prune every dataset by statistics.
    let r = run(&ctx, "SELECT temperature FROM s.temperature WHERE time < 0").await;
    assert!(r.rows.is_empty());
    assert_eq!(r.metric("datasets_pruned_by_stats"), N);
    assert_eq!(r.metric("bytes_read"), 0);
}

/// A store whose `depth` coordinate runs downwards in one dataset and upwards in the other, with
/// a NaN depth in the middle of the descending one.
async fn depth_store(
    ctx: &SessionContext,
    store: Arc<dyn atlas_datafusion::atlas_store::object_store::ObjectStore>,
) {
    let mut atlas = Atlas::create(store, Path::from("depth"), StoreConfig::default())
        .await
        .unwrap();
    for (name, depths) in [
        ("up", (0..40).map(|i| i as f64 * 10.0).collect::<Vec<_>>()),
        (
            "down",
            (0..40)
                .map(|i| {
                    if i == 20 {
                        f64::NAN
                    } else {
                        (39 - i) as f64 * 10.0
                    }
                })
                .collect(),
        ),
    ] {
        let ds = atlas.create_dataset(name).await.unwrap();
        ds.define_array::<f64>(
            "depth",
            vec!["depth".into()],
            vec![40],
            Some(vec![10]),
            None,
        )
        .await
        .unwrap();
        ds.write_array(
            "depth",
            vec![0],
            Array::from_shape_vec(IxDyn(&[40]), depths).unwrap().view(),
        )
        .await
        .unwrap();
        ds.define_array::<f32>(
            "salinity",
            vec!["depth".into()],
            vec![40],
            Some(vec![10]),
            None,
        )
        .await
        .unwrap();
        let s = Array::from_shape_fn(IxDyn(&[40]), |ix| 35.0 + ix[0] as f32 / 100.0);
        ds.write_array("salinity", vec![0], s.view()).await.unwrap();
    }
    atlas.flush().await.unwrap();
    register(ctx, "memory:///depth").await;
}

#[tokio::test]
async fn descending_coordinates_narrow_to_the_right_chunks_and_nan_never_matches() {
    let (ctx, store) = memory_session(1);
    depth_store(&ctx, store).await;
    // depth in [100, 150]: indexes 10..=15 going up (chunk 1); 24..=29 going down (chunk 2).
    let r = run(
        &ctx,
        "SELECT dataset, depth_index, depth FROM s.salinity WHERE depth BETWEEN 100 AND 150 ORDER BY dataset, depth_index",
    )
    .await;
    assert_eq!(r.rows.len(), 12, "{:?}", r.rows);
    assert_eq!(r.rows[0], "down|24|150.0");
    assert_eq!(r.rows[6], "up|10|100.0");
    assert_eq!(r.metric("chunks_read"), 0, "no value column projected");
    let r = run(
        &ctx,
        "SELECT salinity FROM s.salinity WHERE depth BETWEEN 100 AND 150",
    )
    .await;
    assert_eq!(r.metric("chunks_read"), 2);
    assert_eq!(r.metric("chunks_pruned"), 6);
    // The NaN depth sits inside the descending run yet matches no bounded range...
    let r = run(
        &ctx,
        "SELECT depth_index FROM s.salinity WHERE depth BETWEEN 0 AND 1e9 AND dataset = 'down'",
    )
    .await;
    assert_eq!(r.rows.len(), 39);
    assert!(!r.rows.contains(&"20".to_string()));
    // ...and where DataFusion orders NaN above every number, the pushdown agrees with it.
    let r = run(
        &ctx,
        "SELECT depth_index FROM s.salinity WHERE depth > 1000",
    )
    .await;
    assert_eq!(r.rows, vec!["20"]);
    let r = run(
        &ctx,
        "SELECT depth_index FROM s.salinity WHERE isnan(depth)",
    )
    .await;
    assert_eq!(r.rows, vec!["20"]);
}

#[tokio::test]
async fn value_predicates_skip_datasets_by_statistics() {
    let ctx = sensor_session(2).await;
    // Dataset i holds [1000 i, 1000 i + 96): only datasets 30..40 can hold values > 29_999.
    let r = run(
        &ctx,
        "SELECT dataset FROM s.temperature WHERE temperature > 29999",
    )
    .await;
    assert_eq!(r.rows.len(), 10 * LEN);
    assert_eq!(r.metric("datasets_pruned_by_stats"), 30);
    assert_eq!(r.metric("chunks_read"), 10 * LEN / CHUNK);
    let r = run(
        &ctx,
        "SELECT count(*) FROM s.temperature WHERE temperature BETWEEN 5000 AND 5010",
    )
    .await;
    assert_eq!(r.rows, vec!["11"]);
    assert_eq!(r.metric("datasets_pruned_by_stats"), N - 1);
    // No fill value: no NULL can exist, so IS NULL prunes everything.
    let r = run(
        &ctx,
        "SELECT dataset FROM s.temperature WHERE temperature IS NULL",
    )
    .await;
    assert!(r.rows.is_empty());
    assert_eq!(r.metric("datasets_pruned_by_stats"), N, "{}", plan_text(&r));
    assert_eq!(r.metric("bytes_read"), 0);
    // Counting them needs no scan at all: the exact null counts answer it.
    let r = run(
        &ctx,
        "SELECT count(*) FROM s.temperature WHERE temperature IS NULL",
    )
    .await;
    assert_eq!(r.rows, vec!["0"]);
    assert_eq!(r.scans, 0, "{}", plan_text(&r));
}

#[tokio::test]
async fn limit_stops_reading_early() {
    let ctx = sensor_session(1).await;
    let r = run(&ctx, "SELECT temperature FROM s.temperature LIMIT 10").await;
    assert_eq!(r.rows.len(), 10);
    assert_eq!(r.metric("chunks_read"), 1, "{:?}", r.metrics);
    assert!(plan_text(&r).contains("fetch=10"), "{}", plan_text(&r));
    let r = run(
        &ctx,
        "SELECT temperature FROM s.temperature WHERE dataset = 's0007' LIMIT 30",
    )
    .await;
    assert_eq!(r.rows.len(), 30);
    assert_eq!(r.metric("chunks_read"), 2);
}

#[tokio::test]
async fn count_min_max_without_filters_are_answered_from_statistics() {
    let ctx = sensor_session(2).await;
    let r = run(
        &ctx,
        "SELECT count(*), min(temperature), max(temperature) FROM s.temperature",
    )
    .await;
    assert_eq!(
        r.rows,
        vec![format!("{}|0.0|{}.0", N * LEN, (N - 1) * 1000 + LEN - 1)]
    );
    assert_eq!(r.scans, 0, "no scan should run:\n{}", plan_text(&r));
    // With an exact dataset filter the statistics still answer.
    let r = run(
        &ctx,
        "SELECT count(*) FROM s.temperature WHERE dataset = 's0002'",
    )
    .await;
    assert_eq!(r.rows, vec![LEN.to_string()]);
    assert_eq!(r.scans, 0, "{}", plan_text(&r));
}

#[tokio::test]
async fn work_is_split_across_target_partitions_by_element_count() {
    let ctx = sensor_session(4).await;
    let r = run(&ctx, "SELECT sum(temperature) FROM s.temperature").await;
    let plan = plan_text(&r);
    assert!(plan.contains("units=40"), "{plan}");
    assert_eq!(r.scan_partitions, vec![4]);
    let ctx1 = sensor_session(1).await;
    let r1 = run(&ctx1, "SELECT sum(temperature) FROM s.temperature").await;
    assert_eq!(r.rows, r1.rows);
}

#[tokio::test]
async fn memory_stays_bounded_under_a_small_pool() {
    // 64 datasets x 65,536 f64 = 32 MiB of values, under an 8 MiB pool.
    let pool_limit = 8 * 1024 * 1024;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(pool_limit)))
        .build_arc()
        .unwrap();
    let config = SessionConfig::new().with_target_partitions(2);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let store: Arc<dyn atlas_datafusion::atlas_store::object_store::ObjectStore> =
        Arc::new(atlas_datafusion::atlas_store::object_store::memory::InMemory::new());
    ctx.register_object_store(&url::Url::parse("memory://").unwrap(), Arc::clone(&store));
    sensors(Arc::clone(&store), "big", 64, 65_536, 8192).await;
    register(&ctx, "memory:///big").await;
    let r = run(
        &ctx,
        "SELECT count(temperature), max(temperature) FROM s.temperature WHERE temperature >= 0",
    )
    .await;
    assert_eq!(
        r.rows,
        vec![format!("{}|{}.0", 64 * 65_536, 63 * 1000 + 65_535)]
    );
    assert!(r.metric("chunks_read") == 64 * 8);

    // The scan accounts its buffers in the pool: a pool smaller than one unit refuses it.
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(1024)))
        .build_arc()
        .unwrap();
    let tiny = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
    tiny.register_object_store(&url::Url::parse("memory://").unwrap(), store);
    register(&tiny, "memory:///big").await;
    let err = crate::support::error_of(
        &tiny,
        "SELECT max(temperature) FROM s.temperature WHERE temperature >= 0",
    )
    .await;
    assert!(err.contains("AtlasScan"), "{err}");
}

#[tokio::test]
async fn a_join_from_datasets_filtered_on_an_attribute_prunes_the_variable_scan() {
    let ctx = sensor_session(2).await;
    let r = run(
        &ctx,
        "SELECT t.dataset, max(t.temperature) FROM s._datasets d JOIN s.temperature t \
         ON t.dataset = d.dataset WHERE d.platform = 'glider' GROUP BY t.dataset",
    )
    .await;
    assert_eq!(r.rows.len(), N / 4);
    assert_eq!(
        r.metric("datasets_pruned_by_dynamic_filter"),
        N - N / 4,
        "{:?}\n{}",
        r.metrics,
        plan_text(&r)
    );
    assert_eq!(r.metric("chunks_read"), N / 4 * LEN / CHUNK);
}

#[tokio::test]
async fn explain_analyze_shows_the_scan_metrics() {
    let ctx = sensor_session(2).await;
    let r = run(
        &ctx,
        "EXPLAIN ANALYZE SELECT temperature FROM s.temperature WHERE dataset = 's0001' AND time_index < 24",
    )
    .await;
    let text = r.rows.join("\n");
    assert!(text.contains("AtlasScan: variable=temperature"), "{text}");
    assert!(text.contains("datasets_pruned=39"), "{text}");
    assert!(text.contains("chunks_read=1"), "{text}");
}

#[tokio::test]
async fn a_full_scan_decodes_each_block_once_and_one_dataset_decodes_only_its_own() {
    // Two partitions prefetch ahead of their reads; the store counts every block it decodes.
    // 40 datasets of 20,000 f64 (and a time coordinate): about 50 blocks of 256 KiB.
    const BIG: usize = 20_000;
    let (ctx, store) = memory_session(2);
    sensors(store, "sensors", N, BIG, BIG / 4).await;
    let opened = register(&ctx, "memory:///sensors").await;
    let r = run(
        &ctx,
        "SELECT sum(temperature), sum(time) FROM s.temperature",
    )
    .await;
    assert_eq!(r.metric("chunks_read"), N * 4);
    let whole = opened.atlas().blocks_decoded();
    assert!(whole > 20, "{whole} blocks");
    // Every block is now cached: the same scan again decodes nothing, and bytes_read says so.
    let r = run(
        &ctx,
        "SELECT sum(temperature), sum(time) FROM s.temperature",
    )
    .await;
    assert_eq!(opened.atlas().blocks_decoded(), whole);
    assert_eq!(r.metric("bytes_read"), 0);

    // A fresh handle asked for one dataset decodes only the blocks holding it.
    let (ctx, store) = memory_session(2);
    sensors(store, "sensors", N, BIG, BIG / 4).await;
    let opened = register(&ctx, "memory:///sensors").await;
    let r = run(
        &ctx,
        "SELECT sum(temperature) FROM s.temperature WHERE dataset = 's0003'",
    )
    .await;
    assert_eq!(r.metric("chunks_read"), 4);
    let one = opened.atlas().blocks_decoded();
    assert!(
        (1..=2).contains(&one),
        "{one} blocks for one dataset, {whole} for all"
    );
}

/// A new session with a handle of its own on `store` (nothing cached), registered as `s`.
async fn fresh_handle(store: &Arc<dyn ObjectStore>) -> (SessionContext, Arc<AtlasStore>) {
    let ctx = session_on(2, store);
    let opened = register(&ctx, "memory:///sensors").await;
    (ctx, opened)
}

#[tokio::test]
async fn pushed_filters_fetch_and_decode_only_their_chunks_as_the_store_counts_them() {
    // 40 datasets of 20,000 f64 in four chunks each (too big to pack), and a `time`
    // coordinate alike. Every query runs on a fresh handle, so each block it needs is fetched.
    const BIG: usize = 20_000;
    let (_, store) = memory_session(2);
    sensors(Arc::clone(&store), "sensors", N, BIG, BIG / 4).await;

    let (ctx, opened) = fresh_handle(&store).await;
    let full = run(&ctx, "SELECT sum(temperature) FROM s.temperature").await;
    assert_eq!(full.metric("chunks_decoded"), N * 4, "{:?}", full.metrics);
    let blocks = full.metric("blocks_fetched");
    assert!(blocks > 20, "{:?}", full.metrics);
    // Every block the handle decoded (the read-ahead's included) is the scan's, and the time
    // spent decompressing them (zstd) is measured apart from the time waiting for storage.
    assert_eq!(blocks as u64, opened.atlas().blocks_decoded());
    assert!(full.metric("decode_time") > 0, "{:?}", full.metrics);
    // Warm, the same scan fetches nothing and still decodes every chunk.
    let warm = run(&ctx, "SELECT sum(temperature) FROM s.temperature").await;
    assert_eq!(warm.metric("blocks_fetched"), 0, "{:?}", warm.metrics);
    assert_eq!(warm.metric("chunks_decoded"), N * 4);
    // (DataFusion reports a zero time summed by name as 1 ns.)
    for time in ["fetch_time", "decode_time"] {
        assert!(warm.metric(time) <= 1, "{time}: {:?}", warm.metrics);
    }

    let cases = [
        ("dataset = 's0003'", 4),
        ("dataset IN ('s0001', 's0017')", 8),
        ("time_index < 5000", N),
        ("time_index BETWEEN 4990 AND 5010 AND dataset = 's0000'", 2),
        ("dataset = 's0005' AND time_index >= 15000", 1),
        ("temperature < 1000", 4),
        ("temperature > 1000000", 0),
    ];
    for (pred, chunks) in cases {
        let (ctx, _) = fresh_handle(&store).await;
        let sql = format!("SELECT sum(temperature) FROM s.temperature WHERE {pred}");
        let r = run(&ctx, &sql).await;
        assert_eq!(
            r.metric("chunks_decoded"),
            chunks,
            "{pred}: {:?}",
            r.metrics
        );
        assert_eq!(r.metric("chunks_read"), chunks, "{pred}: the plan agrees");
        let fetched = r.metric("blocks_fetched");
        assert!(
            fetched <= chunks.min(blocks) && (chunks == 0) == (fetched == 0),
            "{pred}: {fetched} blocks for {chunks} chunks, {blocks} for all"
        );
    }

    // A limit stops each of the two partitions after the chunk that fills it.
    let (ctx, _) = fresh_handle(&store).await;
    let r = run(&ctx, "SELECT temperature FROM s.temperature LIMIT 10").await;
    assert_eq!(r.rows.len(), 10);
    assert!(r.metric("chunks_decoded") <= 2, "{:?}", r.metrics);
    assert!(
        (1..=2).contains(&r.metric("blocks_fetched")),
        "{:?}",
        r.metrics
    );
}
