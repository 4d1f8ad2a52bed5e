//! Grid tables: several variables of one grid in one table, read in lockstep.
//!
//! The store is generated with ragged shapes, variables missing from some datasets, fill
//! values, coordinates present and missing, and chunkings that differ between the variables of
//! one dataset. Every grid-table query must equal the same query over the full outer join of
//! the variables' own tables (themselves checked against a reference in `differential.rs`).

use std::sync::Arc;

use atlas_datafusion::atlas_store::object_store::ObjectStore;
use atlas_datafusion::atlas_store::object_store::path::Path;
use atlas_datafusion::atlas_store::{Atlas, FillValue, StoreConfig};
use datafusion::prelude::SessionContext;
use ndarray::{Array, IxDyn};

use crate::support::{error_of, memory_session, plan_text, register, run, sorted};

const DATASETS: usize = 16;

/// Builds the store at `memory:///<prefix>`: `temp`, `sal` and `pres` on `(time, depth)`,
/// `qc` and `wind` on `(time)`, 0-d `lat` and `lon`, and coordinates `time` and `depth`.
pub(crate) async fn build(store: Arc<dyn ObjectStore>, prefix: &str) -> Atlas {
    let mut atlas = Atlas::create(store, Path::from(prefix), StoreConfig::default())
        .await
        .unwrap();
    for i in 0..DATASETS {
        let ds = atlas.create_dataset(&format!("d{i:02}")).await.unwrap();
        let nt = 2 + i % 3;
        let nd = 3 + (i * 5) % 7;
        let dims = vec!["time".to_string(), "depth".to_string()];
        if i % 4 != 3 {
            ds.define_array::<f64>("depth", vec!["depth".into()], vec![nd], None, None)
                .await
                .unwrap();
            let d = Array::from_shape_fn(IxDyn(&[nd]), |ix| ix[0] as f64 * 10.0 + i as f64);
            ds.write_array("depth", vec![0], d.view()).await.unwrap();
        }
        ds.define_array::<i64>("time", vec!["time".into()], vec![nt], None, None)
            .await
            .unwrap();
        let t = Array::from_shape_fn(IxDyn(&[nt]), |ix| (i * 100 + ix[0]) as i64);
        ds.write_array("time", vec![0], t.view()).await.unwrap();

        // temp: every dataset but d05, f64, fill -999 on even datasets, chunks 2×2.
        if i != 5 {
            let fill = (i % 2 == 0).then_some(-999.0);
            ds.define_array::<f64>(
                "temp",
                dims.clone(),
                vec![nt, nd],
                Some(vec![2, 2]),
                fill.map(FillValue::Float),
            )
            .await
            .unwrap();
            let a = Array::from_shape_fn(IxDyn(&[nt, nd]), |ix| {
                if fill.is_some() && (ix[0] + ix[1]).is_multiple_of(4) {
                    -999.0
                } else {
                    (i * 100 + ix[0] * 10 + ix[1]) as f64
                }
            });
            ds.write_array("temp", vec![0, 0], a.view()).await.unwrap();
        }
        // sal: f32 on two thirds of the datasets, chunked by whole rows.
        if i % 3 != 1 {
            ds.define_array::<f32>("sal", dims.clone(), vec![nt, nd], Some(vec![1, nd]), None)
                .await
                .unwrap();
            let a = Array::from_shape_fn(IxDyn(&[nt, nd]), |ix| {
                (i * 1000 + ix[0] * 100 + ix[1]) as f32 / 4.0
            });
            ds.write_array("sal", vec![0, 0], a.view()).await.unwrap();
        }
        // pres: i32 on every other dataset, one chunk.
        if i % 2 == 1 {
            ds.define_array::<i32>("pres", dims.clone(), vec![nt, nd], None, None)
                .await
                .unwrap();
            let a = Array::from_shape_fn(IxDyn(&[nt, nd]), |ix| (ix[1] * 5 + i) as i32);
            ds.write_array("pres", vec![0, 0], a.view()).await.unwrap();
        }
        // qc and wind on (time).
        ds.define_array::<i32>("qc", vec!["time".into()], vec![nt], None, None)
            .await
            .unwrap();
        let q = Array::from_shape_fn(IxDyn(&[nt]), |ix| ((i + ix[0]) % 3) as i32);
        ds.write_array("qc", vec![0], q.view()).await.unwrap();
        if i % 2 == 0 {
            ds.define_array::<f64>("wind", vec!["time".into()], vec![nt], None, None)
                .await
                .unwrap();
            let w = Array::from_shape_fn(IxDyn(&[nt]), |ix| (i + ix[0]) as f64 / 2.0);
            ds.write_array("wind", vec![0], w.view()).await.unwrap();
        }
        // 0-d scalars.
        for (name, v) in [("lat", i as f64), ("lon", -(i as f64))] {
            ds.define_array::<f64>(name, vec![], vec![], None, None)
                .await
                .unwrap();
            let a = Array::from_shape_vec(IxDyn(&[]), vec![v]).unwrap();
            ds.write_array(name, vec![], a.view()).await.unwrap();
        }
    }
    atlas.flush().await.unwrap();
    atlas
}

async fn session(partitions: usize) -> SessionContext {
    let (ctx, store) = memory_session(partitions);
    build(store, "grid.atlas").await;
    register(&ctx, "memory:///grid.atlas").await;
    ctx
}

/// The full outer join of `temp`, `sal` and `pres` on dataset and both indexes: what the grid
/// table must equal.
const JOINED: &str = "CREATE VIEW joined AS
    SELECT COALESCE(tp.dataset, p.dataset) AS dataset,
           COALESCE(tp.time_index, p.time_index) AS time_index,
           COALESCE(tp.depth_index, p.depth_index) AS depth_index,
           COALESCE(tp.time, p.time) AS time,
           COALESCE(tp.depth, p.depth) AS depth,
           tp.pres_dummy, tp.sal, tp.temp, p.pres
    FROM (SELECT COALESCE(t.dataset, s.dataset) AS dataset,
                 COALESCE(t.time_index, s.time_index) AS time_index,
                 COALESCE(t.depth_index, s.depth_index) AS depth_index,
                 COALESCE(t.time, s.time) AS time,
                 COALESCE(t.depth, s.depth) AS depth,
                 NULL AS pres_dummy, s.sal, t.temp
          FROM s.temp t FULL JOIN s.sal s
            ON t.dataset = s.dataset AND t.time_index = s.time_index
           AND t.depth_index = s.depth_index) tp
    FULL JOIN s.pres p
      ON tp.dataset = p.dataset AND tp.time_index = p.time_index
     AND tp.depth_index = p.depth_index";

const QUERIES: &[&str] = &[
    "SELECT dataset, time_index, depth_index, time, depth, pres, sal, temp FROM {t}",
    "SELECT dataset, depth_index, temp, sal FROM {t} WHERE dataset = 'd03'",
    "SELECT dataset, time_index, depth_index, sal FROM {t} WHERE dataset = 'd05'",
    "SELECT dataset, time_index, depth_index, temp, sal FROM {t} WHERE temp > 500 AND sal < 2500",
    "SELECT dataset, time_index, depth_index, temp FROM {t} WHERE sal IS NULL",
    "SELECT dataset, time_index, depth_index, pres FROM {t} WHERE pres >= 20",
    "SELECT dataset, depth, temp, pres FROM {t} WHERE depth_index BETWEEN 1 AND 3 AND dataset LIKE 'd1%'",
    "SELECT dataset, depth_index, sal FROM {t} WHERE depth > 25 AND time_index = 1",
    "SELECT dataset, count(*), count(temp), count(sal), count(pres), sum(pres) FROM {t} GROUP BY dataset",
    "SELECT count(*), min(sal), max(temp), min(pres), max(depth) FROM {t}",
    "SELECT dataset, time_index, depth_index FROM {t} WHERE temp IS NULL AND sal IS NOT NULL",
    "SELECT count(*) FROM (SELECT dataset FROM {t} WHERE time_index < 2 LIMIT 17)",
];

async fn grid_equals_join(partitions: usize) {
    let ctx = session(partitions).await;
    ctx.sql(JOINED).await.unwrap();
    for q in QUERIES {
        let grid = sorted(&ctx, &q.replace("{t}", "s.grid_time_depth")).await;
        let join = sorted(&ctx, &q.replace("{t}", "joined")).await;
        assert_eq!(grid, join, "{q}");
        assert!(
            !grid.is_empty(),
            "{q} returned nothing: the check proves little"
        );
    }
}

#[tokio::test]
async fn grid_table_queries_equal_the_full_outer_join_of_its_variable_tables() {
    grid_equals_join(1).await;
}

#[tokio::test]
async fn grid_table_queries_equal_the_join_with_work_split_across_partitions() {
    grid_equals_join(3).await;
}

#[tokio::test]
async fn the_store_lists_one_grid_table_per_group_of_variables_sharing_dims() {
    let ctx = session(1).await;
    let rows = sorted(
        &ctx,
        "SELECT \"table\", kind, variables, dims FROM s._tables WHERE kind = 'grid'",
    )
    .await;
    assert_eq!(
        rows,
        vec![
            "grid_scalars|grid|[lat, lon]|[]",
            "grid_time_depth|grid|[pres, sal, temp]|[time, depth]",
            "grid_time|grid|[qc, wind]|[time]",
        ]
    );
    // Every variable keeps its own table, coordinates included.
    let vars = sorted(
        &ctx,
        "SELECT \"table\" FROM s._tables WHERE kind = 'variable'",
    )
    .await;
    assert_eq!(
        vars,
        vec![
            "depth", "lat", "lon", "pres", "qc", "sal", "temp", "time", "wind"
        ]
    );
    // The schema lists them (what \d and information_schema show).
    let mut listed: Vec<String> = ctx
        .catalog("datafusion")
        .and_then(|c| c.schema("s"))
        .expect("schema s")
        .table_names()
        .into_iter()
        .filter(|t| t.starts_with("grid"))
        .collect();
    listed.sort();
    assert_eq!(listed, vec!["grid_scalars", "grid_time", "grid_time_depth"]);
    let cols = run(&ctx, "SELECT * FROM s.grid_time_depth LIMIT 1").await;
    let schema = cols.plan.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        vec![
            "dataset",
            "time_index",
            "depth_index",
            "time",
            "depth",
            "pres",
            "sal",
            "temp"
        ]
    );
}

#[tokio::test]
async fn a_grid_scan_is_one_scan_of_all_its_variables_never_a_join() {
    let ctx = session(2).await;
    let r = run(&ctx, "SELECT temp, sal, pres FROM s.grid_time_depth").await;
    assert_eq!(r.scans, 1);
    let text = plan_text(&r);
    assert!(text.contains("variables=[pres, sal, temp]"), "plan: {text}");
    assert!(!text.contains("Join"), "plan: {text}");
}

#[tokio::test]
async fn a_grid_scan_reads_only_the_variables_a_query_names() {
    let ctx = session(1).await;
    let all = run(&ctx, "SELECT * FROM s.grid_time_depth").await;
    let temp_only = run(&ctx, "SELECT dataset, temp FROM s.grid_time_depth").await;
    let temp_table = run(&ctx, "SELECT dataset, temp FROM s.temp").await;
    // The chunks decoded for `temp` alone are those of temp's own table; all three variables
    // read more, and every chunk of the table is either read or pruned.
    assert_eq!(
        temp_only.metric("chunks_read"),
        temp_table.metric("chunks_read")
    );
    assert!(all.metric("chunks_read") > temp_only.metric("chunks_read"));
    assert_eq!(
        all.metric("chunks_read"),
        temp_only.metric("chunks_read") + temp_only.metric("chunks_pruned")
    );
    assert!(all.metric("bytes_read") > temp_only.metric("bytes_read"));
    // Datasets lacking temp still have rows, NULL in temp.
    assert_eq!(temp_only.rows.len(), all.rows.len());
    assert!(temp_only.rows.iter().any(|r| r.starts_with("d05|NULL")));
}

#[tokio::test]
async fn a_grid_scan_skips_a_dataset_when_a_predicate_on_any_variable_cannot_match() {
    let ctx = session(1).await;
    // sal is at most (i * 1000 + 499) / 4: only d15 reaches 3700 (and d14 lacks sal... d13
    // holds none: i % 3 == 1). Datasets without sal are NULL there and cannot match either.
    let r = run(
        &ctx,
        "SELECT dataset, temp FROM s.grid_time_depth WHERE sal > 3700 AND temp IS NOT NULL",
    )
    .await;
    let datasets: std::collections::BTreeSet<&str> = r
        .rows
        .iter()
        .map(|x| x.split('|').next().unwrap())
        .collect();
    assert_eq!(datasets.into_iter().collect::<Vec<_>>(), vec!["d15"]);
    assert_eq!(r.metric("datasets_scanned"), 1);
    assert_eq!(r.metric("datasets_pruned_by_stats"), DATASETS - 1);
    // A predicate on pres prunes the datasets that lack pres (even ones).
    let p = run(
        &ctx,
        "SELECT count(*) FROM s.grid_time_depth WHERE pres >= 0",
    )
    .await;
    assert_eq!(p.metric("datasets_pruned_by_stats"), DATASETS / 2);
}

#[tokio::test]
async fn atlas_scan_and_create_external_table_name_the_variables_of_a_grid() {
    let ctx = session(1).await;
    let want = sorted(
        &ctx,
        "SELECT dataset, time_index, depth_index, sal, temp FROM s.grid_time_depth",
    )
    .await;
    let scan = sorted(
        &ctx,
        "SELECT dataset, time_index, depth_index, sal, temp \
         FROM atlas_scan('memory:///grid.atlas', 'sal', 'temp')",
    )
    .await;
    assert_eq!(scan, want);
    ctx.sql(
        "CREATE EXTERNAL TABLE st STORED AS ATLAS LOCATION 'memory:///grid.atlas' \
         OPTIONS ('variables' 'sal, temp')",
    )
    .await
    .unwrap();
    let table = sorted(
        &ctx,
        "SELECT dataset, time_index, depth_index, sal, temp FROM st",
    )
    .await;
    assert_eq!(table, want);
    // The columns come in the order the variables are named.
    let r = run(&ctx, "SELECT * FROM st LIMIT 1").await;
    let schema = r.plan.schema();
    let last: Vec<&str> = schema
        .fields()
        .iter()
        .rev()
        .take(2)
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(last, vec!["temp", "sal"]);
}

#[tokio::test]
async fn variables_of_different_dims_or_unknown_names_are_refused_with_their_names() {
    let ctx = session(1).await;
    let e = error_of(
        &ctx,
        "SELECT * FROM atlas_scan('memory:///grid.atlas', 'temp', 'qc')",
    )
    .await;
    assert!(
        e.contains("\"temp\" has dims (time, depth) but \"qc\" has (time)"),
        "{e}"
    );
    let e = error_of(
        &ctx,
        "SELECT * FROM atlas_scan('memory:///grid.atlas', 'temp', 'salt')",
    )
    .await;
    assert!(e.contains("no variable \"salt\""), "{e}");
    let e = error_of(
        &ctx,
        "SELECT * FROM atlas_scan('memory:///grid.atlas', 'temp', 'temp')",
    )
    .await;
    assert!(e.contains("names variable \"temp\" twice"), "{e}");
    let e = error_of(
        &ctx,
        "CREATE EXTERNAL TABLE x STORED AS ATLAS LOCATION 'memory:///grid.atlas'",
    )
    .await;
    assert!(
        e.contains("'variables'") && e.contains("grid_time_depth"),
        "{e}"
    );
}

#[tokio::test]
async fn a_variable_off_its_datasets_grid_is_null_there_or_excluded_by_policy() {
    let (ctx, store) = memory_session(1);
    let mut atlas = Atlas::create(store, Path::from("shape.atlas"), StoreConfig::default())
        .await
        .unwrap();
    for (name, sal_len) in [("a", 3), ("b", 4)] {
        let ds = atlas.create_dataset(name).await.unwrap();
        ds.define_array::<f64>("temp", vec!["z".into()], vec![3], None, None)
            .await
            .unwrap();
        let a = Array::from_shape_vec(IxDyn(&[3]), vec![1.0, 2.0, 3.0]).unwrap();
        ds.write_array("temp", vec![0], a.view()).await.unwrap();
        ds.define_array::<f64>("sal", vec!["z".into()], vec![sal_len], None, None)
            .await
            .unwrap();
        let s = Array::from_shape_fn(IxDyn(&[sal_len]), |ix| 10.0 + ix[0] as f64);
        ds.write_array("sal", vec![0], s.view()).await.unwrap();
    }
    atlas.flush().await.unwrap();
    register(&ctx, "memory:///shape.atlas").await;
    let rows = sorted(&ctx, "SELECT dataset, z_index, temp, sal FROM s.grid_z").await;
    assert_eq!(
        rows,
        vec![
            "a|0|1.0|10.0",
            "a|1|2.0|11.0",
            "a|2|3.0|12.0",
            // b's grid is its first variable's (sal, in column order): temp is off it.
            "b|0|NULL|10.0",
            "b|1|NULL|11.0",
            "b|2|NULL|12.0",
            "b|3|NULL|13.0",
        ]
    );
    let listed = sorted(&ctx, "SELECT * FROM s._conflicts").await;
    assert_eq!(listed, vec!["grid_z|temp|shape|b|(z) 3|(z) 4"]);
    ctx.sql("SET atlas.type_conflicts = 'exclude'")
        .await
        .unwrap();
    let rows = sorted(
        &ctx,
        "SELECT dataset, count(*) FROM s.grid_z GROUP BY dataset",
    )
    .await;
    assert_eq!(rows, vec!["a|3"]);
    ctx.sql("SET atlas.type_conflicts = 'error'").await.unwrap();
    let e = error_of(&ctx, "SELECT * FROM s.grid_z").await;
    assert!(
        e.contains("dataset \"b\" has (z) 3") && e.contains("(z) 4"),
        "{e}"
    );
}

/// Joins of variable tables: the rule's positive cases (a grid scan) and negative ones (the
/// join stays).
const JOINS: &[(&str, bool)] = &[
    (
        "SELECT t.dataset, t.time_index, t.depth_index, t.depth, t.temp, s.sal \
         FROM s.temp t JOIN s.sal s ON t.dataset = s.dataset \
         AND t.time_index = s.time_index AND t.depth_index = s.depth_index",
        true,
    ),
    (
        "SELECT t.dataset, t.depth_index, t.temp, s.sal FROM s.temp t JOIN s.sal s \
         ON t.dataset = s.dataset AND t.time_index = s.time_index \
         AND t.depth_index = s.depth_index WHERE s.sal > 1000 AND t.depth > 20",
        true,
    ),
    (
        "SELECT t.dataset, t.time_index, t.depth_index, temp, sal, pres \
         FROM s.temp t JOIN s.sal USING (dataset, time_index, depth_index) \
         JOIN s.pres p ON t.dataset = p.dataset AND t.time_index = p.time_index \
         AND t.depth_index = p.depth_index WHERE pres < 30",
        true,
    ),
    (
        "SELECT t.dataset, count(*), avg(t.temp), max(p.pres) FROM s.temp t \
         JOIN s.pres p ON t.dataset = p.dataset AND t.time_index = p.time_index \
         AND t.depth_index = p.depth_index WHERE t.dataset LIKE 'd1%' GROUP BY t.dataset",
        true,
    ),
    (
        "SELECT q.dataset, q.time_index, q.qc, w.wind FROM s.qc q JOIN s.wind w \
         ON q.dataset = w.dataset AND q.time_index = w.time_index AND q.qc < w.wind",
        true,
    ),
    // Not the whole grid: a real join.
    (
        "SELECT t.dataset, t.time_index, t.depth_index, s.depth_index, t.temp, s.sal \
         FROM s.temp t JOIN s.sal s ON t.dataset = s.dataset AND t.time_index = s.time_index \
         WHERE t.depth_index = 0",
        false,
    ),
    // The same variable twice.
    (
        "SELECT a.dataset, a.temp, b.temp FROM s.temp a JOIN s.temp b ON a.dataset = b.dataset \
         AND a.time_index = b.time_index AND a.depth_index = b.depth_index",
        false,
    ),
    // An outer join keeps rows the grid scan of both would not.
    (
        "SELECT t.dataset, t.time_index, t.depth_index, t.temp, s.sal FROM s.temp t \
         LEFT JOIN s.sal s ON t.dataset = s.dataset AND t.time_index = s.time_index \
         AND t.depth_index = s.depth_index",
        false,
    ),
];

#[tokio::test]
async fn joins_of_variable_tables_on_their_whole_grid_become_one_grid_scan() {
    for partitions in [1, 3] {
        let ctx = session(partitions).await;
        for (q, rewritten) in JOINS {
            let on = run(&ctx, q).await;
            let text = plan_text(&on);
            if *rewritten {
                assert_eq!(on.scans, 1, "{q}\n{text}");
                assert!(text.contains("(a join on their grid)"), "{q}\n{text}");
                assert!(!text.contains("Join"), "{q}\n{text}");
            } else {
                assert!(text.contains("Join"), "{q}\n{text}");
            }
            ctx.sql("SET atlas.grid_joins = false").await.unwrap();
            let off = run(&ctx, q).await;
            ctx.sql("SET atlas.grid_joins = true").await.unwrap();
            assert!(off.scans >= 2, "{q}: the rule was off");
            let (mut a, mut b) = (on.rows, off.rows);
            a.sort();
            b.sort();
            assert!(
                !a.is_empty(),
                "{q} returned nothing: the check proves little"
            );
            assert_eq!(a, b, "{q}");
        }
    }
}

#[tokio::test]
async fn explain_shows_the_join_planned_as_a_grid_scan() {
    let ctx = session(1).await;
    let r = run(
        &ctx,
        "EXPLAIN SELECT t.temp, s.sal FROM s.temp t JOIN s.sal s ON t.dataset = s.dataset \
         AND t.time_index = s.time_index AND t.depth_index = s.depth_index",
    )
    .await;
    let text = r.rows.join("\n");
    assert!(
        text.contains("AtlasScan: variables=[temp, sal] (a join on their grid)"),
        "{text}"
    );
    assert!(!text.contains("HashJoinExec"), "{text}");
}

#[tokio::test]
async fn a_join_with_a_grid_table_of_several_variables_stays_a_join() {
    // A grid table keeps datasets lacking some of its variables (odd datasets lack `wind`);
    // its join with another variable keeps them too, which a grid scan over the datasets
    // holding every variable would not.
    let ctx = session(1).await;
    let q = "SELECT g.dataset, g.time_index, g.qc, g.wind, t.time \
             FROM s.grid_time g JOIN s.time t ON g.dataset = t.dataset \
             AND g.time_index = t.time_index";
    let on = run(&ctx, q).await;
    let text = plan_text(&on);
    assert!(text.contains("Join"), "{text}");
    assert!(
        on.rows.iter().any(|r| r.starts_with("d01|")),
        "{:?}",
        on.rows
    );
    ctx.sql("SET atlas.grid_joins = false").await.unwrap();
    let off = run(&ctx, q).await;
    let (mut a, mut b) = (on.rows, off.rows);
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[tokio::test]
async fn a_grid_scan_of_variables_chunked_differently_decodes_each_chunk_once() {
    // Large enough to be split into several units: units must align to both chunkings (7 and
    // 5 rows), or a chunk spanning two units is read, and counted, twice.
    let (ctx, store) = memory_session(2);
    let mut atlas = Atlas::create(store, Path::from("chunks.atlas"), StoreConfig::default())
        .await
        .unwrap();
    let (rows, cols) = (3000, 300);
    let ds = atlas.create_dataset("big").await.unwrap();
    for (name, chunk) in [("temp", 7), ("sal", 5)] {
        ds.define_array::<f32>(
            name,
            vec!["t".into(), "z".into()],
            vec![rows, cols],
            Some(vec![chunk, cols]),
            None,
        )
        .await
        .unwrap();
        let a = Array::from_shape_fn(IxDyn(&[rows, cols]), |ix| (ix[0] * cols + ix[1]) as f32);
        ds.write_array(name, vec![0, 0], a.view()).await.unwrap();
    }
    atlas.flush().await.unwrap();
    register(&ctx, "memory:///chunks.atlas").await;
    let grid = run(&ctx, "SELECT count(*), sum(temp - sal) FROM s.grid_t_z").await;
    assert_eq!(grid.rows, vec![format!("{}|0.0", rows * cols)]);
    let units: usize = {
        let text = plan_text(&grid);
        let at = text.find("units=").expect("units in the plan") + 6;
        text[at..].split(',').next().unwrap().parse().unwrap()
    };
    assert!(units > 1, "one unit proves nothing: {units}");
    let temp = run(&ctx, "SELECT sum(temp) FROM s.temp").await;
    let sal = run(&ctx, "SELECT sum(sal) FROM s.sal").await;
    let want = rows.div_ceil(7) + rows.div_ceil(5);
    assert_eq!(temp.metric("chunks_read") + sal.metric("chunks_read"), want);
    assert_eq!(grid.metric("chunks_read"), want);
    assert_eq!(grid.metric("chunks_pruned"), 0);
}
