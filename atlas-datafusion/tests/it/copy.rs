//! `COPY (query) TO '<store>' STORED AS ATLAS` and `INSERT INTO` an ATLAS table: rows written
//! back as a store read the same through SQL, with the memory the write holds counted.

use std::sync::Arc;

use atlas_datafusion::atlas_store::Atlas;
use atlas_datafusion::atlas_store::object_store::ObjectStore;
use atlas_datafusion::atlas_store::object_store::memory::InMemory;
use atlas_datafusion::atlas_store::object_store::path::Path;
use atlas_datafusion::register_atlas;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::TryStreamExt;
use url::Url;

use crate::support::{error_of, memory_session, register_as, run, sensors, sorted};

/// A session over the generated grid store as schema `s` (see `grid.rs`).
async fn grid_session(partitions: usize) -> (SessionContext, Arc<dyn ObjectStore>) {
    let (ctx, store) = memory_session(partitions);
    crate::grid::build(Arc::clone(&store), "grid.atlas").await;
    register_as(&ctx, "s", "memory:///grid.atlas").await;
    (ctx, store)
}

/// The one-row count a write returns.
async fn written(ctx: &SessionContext, sql: &str) -> String {
    run(ctx, sql).await.rows.join("|")
}

async fn objects(store: &Arc<dyn ObjectStore>, prefix: &str) -> usize {
    store
        .list(Some(&Path::from(prefix)))
        .try_collect::<Vec<_>>()
        .await
        .expect("list")
        .len()
}

#[tokio::test]
async fn every_variable_table_copied_to_a_new_store_reads_back_the_same() {
    let (ctx, _) = grid_session(3).await;
    for table in ["temp", "sal", "pres", "qc", "wind", "lat", "time", "depth"] {
        let target = format!("memory:///copy_{table}.atlas");
        let count = written(
            &ctx,
            &format!("COPY (SELECT * FROM s.\"{table}\") TO '{target}' STORED AS ATLAS"),
        )
        .await;
        let source = sorted(&ctx, &format!("SELECT * FROM s.\"{table}\"")).await;
        assert_eq!(count, source.len().to_string(), "{table}: rows written");
        let schema = format!("c_{table}");
        register_as(&ctx, &schema, &target).await;
        let copy = sorted(&ctx, &format!("SELECT * FROM {schema}.\"{table}\"")).await;
        assert_eq!(copy, source, "{table}");
    }
}

#[tokio::test]
async fn a_grid_table_copied_keeps_every_variable_and_the_datasets_that_lack_one() {
    let (ctx, _) = grid_session(2).await;
    run(
        &ctx,
        "COPY (SELECT * FROM s.\"grid_time_depth\") TO 'memory:///g.atlas' STORED AS ATLAS",
    )
    .await;
    register_as(&ctx, "g", "memory:///g.atlas").await;
    for table in ["grid_time_depth", "temp", "sal", "pres"] {
        let source = sorted(&ctx, &format!("SELECT * FROM s.\"{table}\"")).await;
        let copy = sorted(&ctx, &format!("SELECT * FROM g.\"{table}\"")).await;
        assert_eq!(copy, source, "{table}");
    }
    // A dataset without `pres` in the source has no `pres` array in the copy either.
    let arrays = |schema: &str| {
        format!("SELECT dataset, array, shape FROM {schema}._arrays WHERE array = 'pres'")
    };
    assert_eq!(
        sorted(&ctx, &arrays("g")).await,
        sorted(&ctx, &arrays("s")).await
    );
}

#[tokio::test]
async fn a_filtered_copy_shrinks_shapes_to_the_largest_index_kept_unless_a_shape_is_given() {
    let (ctx, _) = grid_session(1).await;
    run(
        &ctx,
        "COPY (SELECT dataset, time_index, depth_index, temp FROM s.temp WHERE depth_index < 2) \
         TO 'memory:///small.atlas' STORED AS ATLAS",
    )
    .await;
    run(
        &ctx,
        "COPY (SELECT dataset, time_index, depth_index, temp FROM s.temp WHERE depth_index < 2) \
         TO 'memory:///wide.atlas' STORED AS ATLAS OPTIONS ('shape.temp' '4,10')",
    )
    .await;
    register_as(&ctx, "small", "memory:///small.atlas").await;
    register_as(&ctx, "wide", "memory:///wide.atlas").await;
    let shapes = |schema: &str| format!("SELECT DISTINCT shape[2] FROM {schema}._arrays");
    assert_eq!(sorted(&ctx, &shapes("small")).await, ["2"]);
    assert_eq!(sorted(&ctx, &shapes("wide")).await, ["10"]);
    // The positions beyond the rows are NULL.
    let kept = "SELECT count(temp) FROM s.temp WHERE dataset = 'd00' AND depth_index < 2";
    let kept = run(&ctx, kept).await.rows[0].clone();
    let extra = run(
        &ctx,
        "SELECT count(*), count(temp) FROM wide.temp WHERE dataset = 'd00'",
    )
    .await;
    assert_eq!(extra.rows, [format!("40|{kept}")]);
}

#[tokio::test]
async fn a_value_repeated_along_a_dimension_is_written_once_with_dims_given() {
    let (ctx, _) = grid_session(2).await;
    run(
        &ctx,
        "COPY (SELECT t.dataset, t.time_index, t.depth_index, t.temp, q.qc \
               FROM s.temp t JOIN s.qc q USING (dataset, time_index)) \
         TO 'memory:///joined.atlas' STORED AS ATLAS OPTIONS ('dims.qc' 'time')",
    )
    .await;
    register_as(&ctx, "j", "memory:///joined.atlas").await;
    let qc = |schema: &str| {
        format!(
            "SELECT dataset, time_index, qc FROM {schema}.qc \
             WHERE dataset IN (SELECT DISTINCT dataset FROM s.temp)"
        )
    };
    assert_eq!(sorted(&ctx, &qc("j")).await, sorted(&ctx, &qc("s")).await);
    assert_eq!(
        run(
            &ctx,
            "SELECT DISTINCT dims FROM j._arrays WHERE array = 'qc'"
        )
        .await
        .rows,
        ["[time]"]
    );
    // Without the option, qc is written over both dimensions.
    let e = error_of(
        &ctx,
        "COPY (SELECT t.dataset, t.time_index, t.depth_index, q.qc, q.qc + CAST(t.depth_index AS INT) AS bad \
               FROM s.temp t JOIN s.qc q USING (dataset, time_index)) \
         TO 'memory:///bad.atlas' STORED AS ATLAS OPTIONS ('dims.bad' 'time')",
    )
    .await;
    assert!(
        e.contains("cannot write dataset") && e.contains("disagree"),
        "{e}"
    );
}

#[tokio::test]
async fn dataset_attributes_selected_from_datasets_are_kept() {
    let (ctx, store) = memory_session(2);
    sensors(Arc::clone(&store), "sensors.atlas", 6, 5, 5).await;
    register_as(&ctx, "s", "memory:///sensors.atlas").await;
    run(
        &ctx,
        "COPY (SELECT t.*, d.platform FROM s.temperature t JOIN s._datasets d USING (dataset) \
               WHERE d.platform = 'glider') \
         TO 'memory:///gliders.atlas' STORED AS ATLAS",
    )
    .await;
    register_as(&ctx, "g", "memory:///gliders.atlas").await;
    assert_eq!(
        sorted(&ctx, "SELECT * FROM g._datasets").await,
        ["s0000|glider", "s0004|glider"]
    );
    assert_eq!(
        sorted(&ctx, "SELECT * FROM g.temperature").await,
        sorted(
            &ctx,
            "SELECT * FROM s.temperature WHERE dataset IN ('s0000', 's0004')"
        )
        .await
    );
    // `_datasets` alone: datasets with attributes and no arrays.
    run(
        &ctx,
        "COPY (SELECT * FROM s._datasets) TO 'memory:///attrs.atlas' STORED AS ATLAS",
    )
    .await;
    register_as(&ctx, "a", "memory:///attrs.atlas").await;
    assert_eq!(
        sorted(&ctx, "SELECT * FROM a._datasets").await,
        sorted(&ctx, "SELECT * FROM s._datasets").await
    );
    assert_eq!(
        run(&ctx, "SELECT count(*) FROM a._arrays").await.rows,
        ["0"]
    );
}

/// A session whose memory pool holds `pool` bytes, with DataFusion's sort allowed to spill.
fn small_pool_session(pool: usize) -> (SessionContext, Arc<dyn ObjectStore>) {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(pool)))
        .build_arc()
        .expect("runtime");
    // One partition: DataFusion's merge of several sorted partitions asks for memory the
    // sorters may still hold, which makes a tight pool fail by timing, not by our sink.
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(4096);
    config.options_mut().execution.sort_spill_reservation_bytes = 1 << 20;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    ctx.register_object_store(&Url::parse("memory://").expect("url"), Arc::clone(&store));
    register_atlas(&ctx);
    (ctx, store)
}

fn metric(plan: &Arc<dyn ExecutionPlan>, name: &str) -> usize {
    let mut total = plan.metrics().map_or(0, |m| match name {
        "spill_count" => m.spill_count().unwrap_or(0),
        _ => m.sum_by_name(name).map_or(0, |v| v.as_usize()),
    });
    for child in plan.children() {
        total += metric(child, name);
    }
    total
}

#[tokio::test]
async fn a_copy_larger_than_the_memory_pool_holds_one_dataset_at_a_time() {
    const POOL: usize = 16 << 20;
    let (ctx, store) = small_pool_session(POOL);
    // 120 datasets × 20,000 rows: about 70 MB of rows, four times the pool.
    sensors(Arc::clone(&store), "big.atlas", 120, 20_000, 4096).await;
    register_as(&ctx, "s", "memory:///big.atlas").await;
    let df = ctx
        .sql("COPY (SELECT * FROM s.temperature) TO 'memory:///big_copy.atlas' STORED AS ATLAS")
        .await
        .expect("plan");
    let plan = df.create_physical_plan().await.expect("physical plan");
    let text = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    assert!(
        text.contains("AtlasSinkExec: new store memory:///big_copy.atlas"),
        "{text}"
    );
    let batches = collect(Arc::clone(&plan), ctx.task_ctx())
        .await
        .expect("copy");
    assert_eq!(
        crate::support::rows_text(&batches),
        [(120 * 20_000).to_string()]
    );
    let peak = metric(&plan, "peak_reserved_bytes");
    assert!(peak > 0 && peak <= POOL, "peak {peak}");
    assert!(
        metric(&plan, "spill_count") > 0,
        "the sort must have spilled: {text}"
    );
    assert_eq!(metric(&plan, "datasets_written"), 120);
    register_as(&ctx, "c", "memory:///big_copy.atlas").await;
    let summary = "SELECT dataset, count(*), sum(temperature), max(time) FROM {} GROUP BY dataset";
    assert_eq!(
        sorted(&ctx, &summary.replace("{}", "c.temperature")).await,
        sorted(&ctx, &summary.replace("{}", "s.temperature")).await
    );
}

#[tokio::test]
async fn a_failed_copy_leaves_nothing_behind() {
    let (ctx, store) = grid_session(2).await;
    // d03's rows of `temp` appear twice with different values.
    let e = error_of(
        &ctx,
        "COPY (SELECT * FROM s.temp UNION ALL \
               SELECT dataset, time_index, depth_index, time, depth, temp + 1 FROM s.temp \
               WHERE dataset = 'd03') \
         TO 'memory:///broken.atlas' STORED AS ATLAS",
    )
    .await;
    assert!(
        e.contains("cannot write dataset \"d03\"")
            && e.contains("time_index=0, depth_index=0")
            && e.contains("disagree"),
        "{e}"
    );
    assert_eq!(objects(&store, "broken.atlas").await, 0);
    assert!(
        Atlas::open(Arc::clone(&store), Path::from("broken.atlas"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn bad_rows_and_targets_are_refused_with_what_is_wrong() {
    let (ctx, _) = grid_session(1).await;
    let cases = [
        (
            "COPY (SELECT temp FROM s.temp) TO 'memory:///x1.atlas' STORED AS ATLAS",
            "needs a column `dataset`",
        ),
        (
            "COPY (SELECT dataset, CAST(time_index AS BIGINT) - 5 AS time_index, temp FROM s.temp) \
             TO 'memory:///x2.atlas' STORED AS ATLAS",
            "indexes start at 0",
        ),
        (
            "COPY (SELECT dataset, arrow_cast(temp, 'Decimal128(10, 2)') AS t FROM s.temp) \
             TO 'memory:///x3.atlas' STORED AS ATLAS",
            "column \"t\" has type Decimal128(10, 2)",
        ),
        (
            "COPY (SELECT * FROM s.temp) TO 'memory:///grid.atlas' STORED AS ATLAS",
            "writes a new store, and memory:///grid.atlas is not empty",
        ),
        (
            "COPY (SELECT * FROM s.temp) TO 'memory:///x4.atlas' STORED AS ATLAS \
             OPTIONS ('colour' 'red')",
            "unknown ATLAS option \"colour\"",
        ),
        (
            "COPY (SELECT * FROM s.temp) TO 'memory:///x5.atlas' STORED AS ATLAS \
             OPTIONS ('shape.temp' '2,2')",
            "outside its shape [2, 2]",
        ),
    ];
    for (sql, want) in cases {
        let e = error_of(&ctx, sql).await;
        assert!(e.contains(want), "{sql}: {e}");
    }
}

#[tokio::test]
async fn insert_into_a_variable_table_adds_datasets_and_refuses_arrays_that_exist() {
    let (ctx, store) = memory_session(2);
    sensors(Arc::clone(&store), "ins.atlas", 3, 4, 4).await;
    atlas_datafusion::register_store(&ctx, "s", "memory:///ins.atlas")
        .await
        .expect("register");
    let count = written(
        &ctx,
        "INSERT INTO s.temperature (dataset, time_index, temperature) \
         VALUES ('new', 0, 1.5), ('new', 2, 2.5)",
    )
    .await;
    assert_eq!(count, "2");
    assert_eq!(
        sorted(&ctx, "SELECT * FROM s.temperature WHERE dataset = 'new'").await,
        ["new|0|NULL|1.5", "new|1|NULL|NULL", "new|2|NULL|2.5"]
    );
    assert_eq!(
        run(&ctx, "SELECT count(*) FROM s._datasets").await.rows,
        ["4"]
    );
    // An array a dataset has is not overwritten; nothing of the statement is committed.
    let e = error_of(
        &ctx,
        "INSERT INTO s.temperature (dataset, time_index, temperature) \
         VALUES ('newer', 0, 1.0), ('s0001', 0, 9.0)",
    )
    .await;
    assert!(e.contains("s0001") && e.contains("temperature"), "{e}");
    assert_eq!(
        run(&ctx, "SELECT count(*) FROM s._datasets").await.rows,
        ["4"]
    );
    let e = error_of(
        &ctx,
        "INSERT OVERWRITE s.temperature SELECT * FROM s.temperature",
    )
    .await;
    assert!(e.contains("not supported"), "{e}");
}

#[tokio::test]
async fn explain_shows_the_sink_and_the_sort_by_dataset() {
    let (ctx, _) = grid_session(2).await;
    let r = run(
        &ctx,
        "EXPLAIN COPY (SELECT * FROM s.temp) TO 'memory:///e.atlas' STORED AS ATLAS",
    )
    .await;
    let text = r.rows.join("\n");
    assert!(
        text.contains("AtlasSinkExec: new store memory:///e.atlas, arrays=[time, depth, temp]"),
        "{text}"
    );
    assert!(text.contains("SortExec: expr=[dataset@0 ASC"), "{text}");
}

#[tokio::test]
async fn a_sink_whose_input_was_repartitioned_after_planning_still_writes_every_row_once() {
    // What a planner that cannot see the sink's requirements (DataFusion's Python bindings,
    // across the FFI) does: put a round-robin repartition between the sink and its sort.
    use datafusion::physical_plan::Partitioning;
    use datafusion::physical_plan::repartition::RepartitionExec;
    let (ctx, _) = grid_session(2).await;
    let plan = ctx
        .sql("COPY (SELECT * FROM s.temp) TO 'memory:///rr.atlas' STORED AS ATLAS")
        .await
        .expect("plan")
        .create_physical_plan()
        .await
        .expect("physical plan");
    let child = Arc::clone(plan.children()[0]);
    let shuffled: Arc<dyn ExecutionPlan> = Arc::new(
        RepartitionExec::try_new(child, Partitioning::RoundRobinBatch(3)).expect("repartition"),
    );
    let plan = replace_children_if_necessary(plan, vec![shuffled]).expect("new children");
    let batches = collect(plan, ctx.task_ctx()).await.expect("copy");
    let source = sorted(&ctx, "SELECT * FROM s.temp").await;
    assert_eq!(
        crate::support::rows_text(&batches),
        [source.len().to_string()]
    );
    register_as(&ctx, "rr", "memory:///rr.atlas").await;
    assert_eq!(sorted(&ctx, "SELECT * FROM rr.temp").await, source);
}

#[tokio::test]
async fn a_variable_of_different_ranks_across_datasets_copies_as_its_table_shows() {
    use atlas_datafusion::atlas_store::StoreConfig;
    use ndarray::{Array, IxDyn};
    let (ctx, store) = memory_session(2);
    let mut atlas = Atlas::create(
        Arc::clone(&store),
        Path::from("ranks.atlas"),
        StoreConfig::default(),
    )
    .await
    .expect("create");
    let flat = atlas.create_dataset("flat").await.expect("dataset");
    flat.define_array::<f64>("temp", vec!["depth".into()], vec![3], None, None)
        .await
        .expect("define");
    let v = Array::from_shape_vec(IxDyn(&[3]), vec![1.0, 2.0, 3.0]).expect("shape");
    flat.write_array("temp", vec![0], v.view())
        .await
        .expect("write");
    let grid = atlas.create_dataset("grid").await.expect("dataset");
    grid.define_array::<f64>(
        "temp",
        vec!["time".into(), "depth".into()],
        vec![2, 3],
        None,
        None,
    )
    .await
    .expect("define");
    let v = Array::from_shape_fn(IxDyn(&[2, 3]), |ix| (ix[0] * 10 + ix[1]) as f64);
    grid.write_array("temp", vec![0, 0], v.view())
        .await
        .expect("write");
    atlas.flush().await.expect("flush");
    register_as(&ctx, "s", "memory:///ranks.atlas").await;
    run(
        &ctx,
        "COPY (SELECT * FROM s.temp) TO 'memory:///ranks_copy.atlas' STORED AS ATLAS",
    )
    .await;
    register_as(&ctx, "c", "memory:///ranks_copy.atlas").await;
    assert_eq!(
        sorted(&ctx, "SELECT * FROM c.temp").await,
        sorted(&ctx, "SELECT * FROM s.temp").await
    );
    // The lower rank is kept. Axes follow the index columns, which list `depth` first (the
    // first dataset's dimension), so `grid` comes back transposed with the same rows.
    let dims = "SELECT dataset, dims, shape FROM {}._arrays ORDER BY dataset";
    assert_eq!(
        run(&ctx, &dims.replace("{}", "c")).await.rows,
        ["flat|[depth]|[3]", "grid|[depth, time]|[3, 2]"]
    );
}

#[tokio::test]
async fn insert_into_an_existing_dataset_keeps_its_dimension_lengths_and_checks_its_coordinates() {
    let (ctx, _) = grid_session(2).await;
    let sal_before = run(
        &ctx,
        "SELECT count(sal) FROM s.grid_time_depth WHERE dataset = 'd05'",
    )
    .await;
    // d05 has no temp: one value makes a temp of d05's own (time, depth) lengths.
    run(
        &ctx,
        "INSERT INTO s.temp (dataset, time_index, depth_index, temp) VALUES ('d05', 0, 0, 1.0)",
    )
    .await;
    let shapes =
        "SELECT array, shape FROM s._arrays WHERE dataset = 'd05' AND array IN ('temp', 'sal')";
    assert_eq!(sorted(&ctx, shapes).await, ["sal|[4, 7]", "temp|[4, 7]"]);
    let sal_after = run(
        &ctx,
        "SELECT count(sal) FROM s.grid_time_depth WHERE dataset = 'd05'",
    )
    .await;
    assert_eq!(sal_after.rows, sal_before.rows);
    // A row beyond d05's dimensions is refused.
    let e = error_of(
        &ctx,
        "INSERT INTO s.wind (dataset, time_index, wind) VALUES ('d05', 9, 1.0)",
    )
    .await;
    assert!(
        e.contains("d05") && e.contains("the dataset's time is 4 long"),
        "{e}"
    );
    // The coordinate the dataset has may come along when it agrees with the store.
    run(
        &ctx,
        "INSERT INTO s.wind (dataset, time_index, time, wind) \
         SELECT dataset, time_index, time, 0.5 FROM s.qc WHERE dataset = 'd01'",
    )
    .await;
    assert_eq!(
        run(&ctx, "SELECT count(wind) FROM s.wind WHERE dataset = 'd01'")
            .await
            .rows,
        run(&ctx, "SELECT count(*) FROM s.time WHERE dataset = 'd01'")
            .await
            .rows
    );
    let e = error_of(
        &ctx,
        "INSERT INTO s.wind (dataset, time_index, time, wind) \
         SELECT dataset, time_index, time + 1, 0.5 FROM s.qc WHERE dataset = 'd03'",
    )
    .await;
    assert!(
        e.contains("already has \"time\"") && e.contains("d03"),
        "{e}"
    );
}

#[tokio::test]
async fn values_and_positions_a_store_cannot_hold_are_errors_naming_them_not_nulls_or_crashes() {
    let (ctx, _) = grid_session(1).await;
    let cases = [
        (
            "COPY (SELECT dataset, CAST(time_index AS BIGINT) + 4294967296 AS time_index, temp \
             FROM s.temp) TO 'memory:///h1.atlas' STORED AS ATLAS",
            "an axis holds at most 4294967295 positions",
        ),
        (
            "COPY (SELECT * FROM s.temp) TO 'memory:///h2.atlas' STORED AS ATLAS \
             OPTIONS ('shape.temp' '4294967295,4294967295')",
            "too large to hold",
        ),
        (
            "COPY (SELECT dataset, CAST('9999-12-31' AS DATE) AS until FROM s.lat) \
             TO 'memory:///m1.atlas' STORED AS ATLAS",
            "column \"until\"",
        ),
        (
            "COPY (SELECT * FROM s.temp) TO 'memory:///l4.atlas' STORED AS ATLAS \
             OPTIONS ('chunk' 'tmie=2')",
            "names dimension \"tmie\"",
        ),
    ];
    for (sql, want) in cases {
        let e = error_of(&ctx, sql).await;
        assert!(e.contains(want), "{sql}: {e}");
    }
}

#[tokio::test]
async fn a_failed_copy_to_a_local_path_removes_the_store_and_keeps_an_empty_folder_it_found() {
    let (ctx, _) = grid_session(1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = "SELECT * FROM s.temp UNION ALL \
               SELECT dataset, time_index, depth_index, time, depth, temp + 1 FROM s.temp";
    let fresh = dir.path().join("fresh.atlas");
    let e = error_of(
        &ctx,
        &format!("COPY ({bad}) TO '{}' STORED AS ATLAS", fresh.display()),
    )
    .await;
    assert!(e.contains("disagree"), "{e}");
    assert!(!fresh.exists());
    let empty = dir.path().join("empty.atlas");
    std::fs::create_dir(&empty).expect("mkdir");
    error_of(
        &ctx,
        &format!("COPY ({bad}) TO '{}' STORED AS ATLAS", empty.display()),
    )
    .await;
    assert!(empty.is_dir());
    assert_eq!(std::fs::read_dir(&empty).expect("list").count(), 0);
}

#[tokio::test]
async fn a_cancelled_copy_leaves_no_store() {
    let (ctx, store) = memory_session(1);
    sensors(Arc::clone(&store), "big.atlas", 60, 20_000, 4096).await;
    register_as(&ctx, "s", "memory:///big.atlas").await;
    let df = ctx
        .sql("COPY (SELECT * FROM s.temperature) TO 'memory:///cancelled.atlas' STORED AS ATLAS")
        .await
        .expect("plan");
    let copy = tokio::spawn(df.collect());
    // Cancelled once it has made the store, while it reads and sorts its input.
    let mut made = false;
    for _ in 0..500 {
        if objects(&store, "cancelled.atlas").await > 0 {
            made = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(made, "the copy never made its store");
    copy.abort();
    assert!(
        copy.await.is_err_and(|e| e.is_cancelled()),
        "the copy finished before it was cancelled"
    );
    for _ in 0..100 {
        if objects(&store, "cancelled.atlas").await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(objects(&store, "cancelled.atlas").await, 0);
}
