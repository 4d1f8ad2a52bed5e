//! Heterogeneous stores: datasets whose types no widening reconciles keep a table queryable,
//! under each `atlas.type_conflicts` policy, and are listed in `_conflicts`.

use std::sync::Arc;

use atlas_datafusion::atlas_store::object_store::ObjectStore;
use atlas_datafusion::atlas_store::object_store::path::Path;
use atlas_datafusion::atlas_store::{ArrayElement, Atlas, StoreConfig, TimestampNs};
use datafusion::prelude::SessionContext;
use ndarray::{Array, IxDyn};

use crate::support::{error_of, memory_session, register, run};

async fn new_store(store: Arc<dyn ObjectStore>, prefix: &str) -> Atlas {
    Atlas::create(store, Path::from(prefix), StoreConfig::default())
        .await
        .unwrap()
}

/// `SET atlas.type_conflicts = '<policy>'` in `ctx`.
async fn set_policy(ctx: &SessionContext, policy: &str) {
    let sql = format!("SET atlas.type_conflicts = '{policy}'");
    ctx.sql(&sql).await.unwrap().collect().await.unwrap();
}

/// Adds a 1-D array `name(dim)` holding `values` to dataset `dataset` (created if new).
async fn put<T: ArrayElement + Clone>(
    atlas: &mut Atlas,
    dataset: &str,
    name: &str,
    dim: &str,
    values: Vec<T>,
) {
    let ds = if atlas.dataset_exists(dataset) {
        atlas.open_dataset(dataset).await.unwrap()
    } else {
        atlas.create_dataset(dataset).await.unwrap()
    };
    let n = values.len();
    ds.define_array::<T>(name, vec![dim.into()], vec![n], None, None)
        .await
        .unwrap();
    let a = Array::from_shape_vec(IxDyn(&[n]), values).unwrap();
    ds.write_array(name, vec![0], a.view()).await.unwrap();
}

/// Three datasets with `v` as float32 (values 1..=3 scaled by the dataset) and one, `odd`,
/// with `v` as strings.
async fn mixed_values(ctx: &SessionContext, store: Arc<dyn ObjectStore>) {
    let mut atlas = new_store(store, "mix").await;
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let k = (i + 1) as f32;
        put::<f32>(&mut atlas, name, "v", "x", vec![k, 2.0 * k, 3.0 * k]).await;
    }
    put::<String>(
        &mut atlas,
        "odd",
        "v",
        "x",
        vec!["n/a".into(), "1.5".into()],
    )
    .await;
    atlas.flush().await.unwrap();
    register(ctx, "memory:///mix").await;
}

#[tokio::test]
async fn a_value_no_type_holds_takes_the_majority_type_and_is_null_for_the_rest() {
    let (ctx, store) = memory_session(2);
    mixed_values(&ctx, store).await;
    let df = ctx.table("s.v").await.unwrap();
    assert_eq!(
        df.schema().field_with_name(None, "v").unwrap().data_type(),
        &datafusion::arrow::datatypes::DataType::Float32
    );
    let r = run(
        &ctx,
        "SELECT dataset, count(*), count(v), max(v) FROM s.v GROUP BY dataset ORDER BY dataset",
    )
    .await;
    assert_eq!(
        r.rows,
        vec!["a|3|3|3.0", "b|3|3|6.0", "c|3|3|9.0", "odd|2|0|NULL"]
    );
    // The string array is never read: three datasets of one chunk each.
    assert_eq!(r.metric("chunks_read"), 3);
    assert_eq!(r.metric("datasets_scanned"), 4);
    let r = run(&ctx, "SELECT * FROM s._conflicts").await;
    assert_eq!(r.rows, vec!["v|v|value|odd|Utf8|Float32"]);
}

#[tokio::test]
async fn a_dataset_whose_value_is_null_by_conflict_is_pruned_by_value_predicates() {
    let (ctx, store) = memory_session(1);
    mixed_values(&ctx, store).await;
    let r = run(&ctx, "SELECT dataset, v FROM s.v WHERE v > 8").await;
    assert_eq!(r.rows, vec!["c|9.0"]);
    // `a` and `b` by their maxima, `odd` because its column is all NULL.
    assert_eq!(r.metric("datasets_pruned_by_stats"), 3);
    assert_eq!(r.metric("datasets_scanned"), 1);
}

#[tokio::test]
async fn exclude_leaves_out_the_datasets_that_do_not_fit_and_counts_them() {
    let (ctx, store) = memory_session(2);
    mixed_values(&ctx, store).await;
    set_policy(&ctx, "exclude").await;
    let r = run(&ctx, "SELECT count(*), count(DISTINCT dataset) FROM s.v").await;
    assert_eq!(r.rows, vec!["9|3"]);
    let r = run(&ctx, "SELECT dataset FROM s.v WHERE dataset = 'odd'").await;
    assert!(r.rows.is_empty(), "{:?}", r.rows);
    assert_eq!(r.metric("datasets_excluded_by_type"), 1);
    let r = run(
        &ctx,
        "SELECT dataset, v FROM s.v WHERE dataset = 'a' AND v > 2",
    )
    .await;
    assert_eq!(r.rows, vec!["a|3.0"]);
    assert_eq!(
        r.metric("datasets_excluded_by_type"),
        0,
        "pruned by name first"
    );
    let r = run(&ctx, "SELECT sum(v) FROM s.v").await;
    assert_eq!(r.rows, vec!["36.0"]);
    assert_eq!(r.metric("datasets_excluded_by_type"), 1);
    // The listing does not depend on the policy.
    let r = run(&ctx, "SELECT dataset FROM s._conflicts").await;
    assert_eq!(r.rows, vec!["odd"]);
}

#[tokio::test]
async fn error_names_the_table_column_and_a_dataset_and_points_at_conflicts() {
    let (ctx, store) = memory_session(1);
    mixed_values(&ctx, store).await;
    set_policy(&ctx, "error").await;
    let err = error_of(&ctx, "SELECT * FROM s.v").await;
    assert!(
        err.contains("table \"v\"")
            && err.contains("1 dataset does not fit column \"v\" (Float32)")
            && err.contains("\"odd\" has Utf8")
            && err.contains("_conflicts"),
        "{err}"
    );
    let state = ctx.state();
    let options = state.config().options();
    let entry = options
        .entries()
        .into_iter()
        .find(|e| e.key == "atlas.type_conflicts")
        .expect("listed among the session's options");
    assert_eq!(entry.value.as_deref(), Some("error"));
    let err = error_of(&ctx, "SET atlas.type_conflicts = 'drop'").await;
    assert!(err.contains("'null', 'exclude' or 'error'"), "{err}");
    let err = error_of(&ctx, "SET atlas.no_such_option = 1").await;
    assert!(err.contains("atlas.type_conflicts"), "{err}");
}

#[tokio::test]
async fn a_timestamp_coordinate_that_is_float_in_one_dataset_is_null_only_there() {
    let (ctx, store) = memory_session(2);
    let mut atlas = new_store(store, "time").await;
    for (i, name) in ["p1", "p2"].iter().enumerate() {
        put::<f64>(
            &mut atlas,
            name,
            "temp",
            "time",
            vec![10.0 + i as f64, 11.0],
        )
        .await;
        let t = (i as i64) * 86_400_000_000_000;
        put::<TimestampNs>(
            &mut atlas,
            name,
            "time",
            "time",
            vec![TimestampNs(t), TimestampNs(t + 3_600_000_000_000)],
        )
        .await;
    }
    // Undecoded times: days as plain numbers.
    put::<f64>(&mut atlas, "raw", "temp", "time", vec![20.0, 21.0]).await;
    put::<f64>(&mut atlas, "raw", "time", "time", vec![0.5, 1.5]).await;
    atlas.flush().await.unwrap();
    register(&ctx, "memory:///time").await;
    let r = run(
        &ctx,
        "SELECT dataset, time_index, time, temp FROM s.temp ORDER BY dataset, time_index",
    )
    .await;
    assert_eq!(
        r.rows,
        vec![
            "p1|0|1970-01-01T00:00:00|10.0",
            "p1|1|1970-01-01T01:00:00|11.0",
            "p2|0|1970-01-02T00:00:00|11.0",
            "p2|1|1970-01-02T01:00:00|11.0",
            "raw|0|NULL|20.0",
            "raw|1|NULL|21.0",
        ]
    );
    // A coordinate range skips the dataset whose coordinate is NULL, and reads nothing of it.
    let r = run(
        &ctx,
        "SELECT dataset, temp FROM s.temp WHERE time >= TIMESTAMP '1970-01-02T00:00:00'",
    )
    .await;
    assert_eq!(r.rows, vec!["p2|11.0", "p2|11.0"]);
    let r = run(
        &ctx,
        "SELECT \"table\", \"column\", kind, dataset, dataset_type, table_type FROM s._conflicts \
         ORDER BY \"table\"",
    )
    .await;
    assert_eq!(
        r.rows,
        vec![
            "temp|time|coordinate|raw|Float64|Timestamp(ns)",
            "time|time|value|raw|Float64|Timestamp(ns)",
        ]
    );
    set_policy(&ctx, "exclude").await;
    let r = run(&ctx, "SELECT DISTINCT dataset FROM s.temp ORDER BY dataset").await;
    assert_eq!(r.rows, vec!["p1", "p2"]);
}

#[tokio::test]
async fn int_and_float_coordinates_widen_to_float64_without_a_conflict() {
    let (ctx, store) = memory_session(1);
    let mut atlas = new_store(store, "depth").await;
    put::<f32>(&mut atlas, "a", "t", "depth", vec![1.0, 2.0]).await;
    put::<i32>(&mut atlas, "a", "depth", "depth", vec![5, 10]).await;
    put::<f32>(&mut atlas, "b", "t", "depth", vec![3.0]).await;
    put::<f32>(&mut atlas, "b", "depth", "depth", vec![7.5]).await;
    atlas.flush().await.unwrap();
    register(&ctx, "memory:///depth").await;
    let r = run(
        &ctx,
        "SELECT arrow_typeof(depth), depth, t FROM s.t ORDER BY depth",
    )
    .await;
    assert_eq!(
        r.rows,
        vec!["Float64|5.0|1.0", "Float64|7.5|3.0", "Float64|10.0|2.0"]
    );
    let r = run(&ctx, "SELECT count(*) FROM s._conflicts").await;
    assert_eq!(r.rows, vec!["0"]);
}

#[tokio::test]
async fn unsigned_and_signed_64_bit_integers_keep_the_majority() {
    let (ctx, store) = memory_session(1);
    let mut atlas = new_store(store, "ints").await;
    put::<u64>(&mut atlas, "a", "n", "x", vec![u64::MAX]).await;
    put::<u64>(&mut atlas, "b", "n", "x", vec![7]).await;
    put::<i64>(&mut atlas, "c", "n", "x", vec![-1]).await;
    atlas.flush().await.unwrap();
    register(&ctx, "memory:///ints").await;
    let r = run(&ctx, "SELECT dataset, n FROM s.n ORDER BY dataset").await;
    assert_eq!(r.rows, vec!["a|18446744073709551615", "b|7", "c|NULL"]);
    let r = run(
        &ctx,
        "SELECT dataset, dataset_type, table_type FROM s._conflicts",
    )
    .await;
    assert_eq!(r.rows, vec!["c|Int64|UInt64"]);
}

#[tokio::test]
async fn a_variable_one_dimensional_here_and_two_dimensional_there_is_one_table() {
    let (ctx, store) = memory_session(1);
    let mut atlas = new_store(store, "dims").await;
    put::<f64>(&mut atlas, "one", "temp", "level", vec![1.0, 2.0]).await;
    let ds = atlas.create_dataset("two").await.unwrap();
    ds.define_array::<f64>(
        "temp",
        vec!["prof".into(), "level".into()],
        vec![2, 2],
        None,
        None,
    )
    .await
    .unwrap();
    let a = Array::from_shape_vec(IxDyn(&[2, 2]), vec![3.0, 4.0, 5.0, 6.0]).unwrap();
    ds.write_array("temp", vec![0, 0], a.view()).await.unwrap();
    atlas.flush().await.unwrap();
    register(&ctx, "memory:///dims").await;
    let r = run(
        &ctx,
        "SELECT dataset, level_index, prof_index, temp FROM s.temp \
         ORDER BY dataset, prof_index, level_index",
    )
    .await;
    assert_eq!(
        r.rows,
        vec![
            "one|0|NULL|1.0",
            "one|1|NULL|2.0",
            "two|0|0|3.0",
            "two|1|0|4.0",
            "two|0|1|5.0",
            "two|1|1|6.0",
        ]
    );
    let r = run(&ctx, "SELECT count(*) FROM s._conflicts").await;
    assert_eq!(r.rows, vec!["0"]);
}

#[tokio::test]
async fn every_entry_point_applies_the_policy_and_a_table_can_fix_its_own() {
    let (ctx, store) = memory_session(1);
    mixed_values(&ctx, store).await;
    // atlas_scan follows the session option.
    let r = run(
        &ctx,
        "SELECT count(*) FROM atlas_scan('memory:///mix', 'v')",
    )
    .await;
    assert_eq!(r.rows, vec!["11"]);
    set_policy(&ctx, "error").await;
    let err = error_of(
        &ctx,
        "SELECT count(v) FROM atlas_scan('memory:///mix', 'v')",
    )
    .await;
    assert!(err.contains("atlas.type_conflicts is 'error'"), "{err}");
    // A table's own option wins over the session's.
    ctx.sql(
        "CREATE EXTERNAL TABLE fitting STORED AS ATLAS LOCATION 'memory:///mix' \
         OPTIONS ('variable' 'v', 'type_conflicts' 'exclude')",
    )
    .await
    .unwrap();
    let r = run(&ctx, "SELECT count(*), count(v) FROM fitting").await;
    assert_eq!(r.rows, vec!["9|9"]);
    let err = error_of(
        &ctx,
        "CREATE EXTERNAL TABLE bad STORED AS ATLAS LOCATION 'memory:///mix' \
         OPTIONS ('variable' 'v', 'type_conflicts' 'maybe')",
    )
    .await;
    assert!(err.contains("'null', 'exclude' or 'error'"), "{err}");
}
