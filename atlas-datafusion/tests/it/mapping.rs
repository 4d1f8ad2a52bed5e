//! The table mapping: columns, types, NULLs, metadata tables, and the errors of bad stores.

use std::sync::Arc;

use atlas_datafusion::atlas_store::object_store::ObjectStore;
use atlas_datafusion::atlas_store::object_store::path::Path;
use atlas_datafusion::atlas_store::{Atlas, Attr, FillValue, StoreConfig};
use datafusion::prelude::SessionContext;
use ndarray::{Array, IxDyn};

use crate::support::{error_of, memory_session, register, run};

async fn new_store(store: Arc<dyn ObjectStore>, prefix: &str) -> Atlas {
    Atlas::create(store, Path::from(prefix), StoreConfig::default())
        .await
        .unwrap()
}

async fn columns(ctx: &SessionContext, table: &str) -> Vec<String> {
    let df = ctx.table(table).await.unwrap();
    df.schema()
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect()
}

#[tokio::test]
async fn columns_are_dataset_positions_coordinates_then_the_widened_value() {
    let (ctx, store) = memory_session(2);
    let mut atlas = new_store(store, "m").await;
    let a = atlas.create_dataset("a").await.unwrap();
    a.define_array::<f32>(
        "temp",
        vec!["time".into(), "depth".into()],
        vec![2, 3],
        None,
        None,
    )
    .await
    .unwrap();
    a.define_array::<f64>("depth", vec!["depth".into()], vec![3], None, None)
        .await
        .unwrap();
    let b = atlas.create_dataset("b").await.unwrap();
    b.define_array::<f64>(
        "temp",
        vec!["depth".into(), "station".into()],
        vec![2, 2],
        None,
        None,
    )
    .await
    .unwrap();
    atlas.flush().await.unwrap();
    register(&ctx, "memory:///m").await;
    assert_eq!(
        columns(&ctx, "s.temp").await,
        vec![
            "dataset:Dictionary(UInt32, Utf8)",
            "time_index:UInt64",
            "depth_index:UInt64",
            "station_index:UInt64",
            "depth:Float64",
            "temp:Float64",
        ]
    );
    // A self-named variable is its own coordinate.
    assert_eq!(
        columns(&ctx, "s.depth").await,
        vec![
            "dataset:Dictionary(UInt32, Utf8)",
            "depth_index:UInt64",
            "depth:Float64"
        ]
    );
    // Dims a dataset lacks, and coordinates it lacks, are NULL.
    let r = run(&ctx, "SELECT dataset, time_index, station_index, depth FROM s.temp ORDER BY dataset, depth_index, station_index, time_index").await;
    assert_eq!(r.rows.len(), 10);
    assert_eq!(r.rows[0], "a|0|NULL|0.0");
    assert_eq!(r.rows[6], "b|NULL|0|NULL");
}

#[tokio::test]
async fn cells_equal_to_the_fill_value_read_as_null_and_unwritten_arrays_are_all_fill() {
    let (ctx, store) = memory_session(1);
    let mut atlas = new_store(store, "f").await;
    let a = atlas.create_dataset("a").await.unwrap();
    a.define_array::<i16>(
        "q",
        vec!["x".into()],
        vec![4],
        None,
        Some(FillValue::Int(-9)),
    )
    .await
    .unwrap();
    let v = Array::from_shape_vec(IxDyn(&[4]), vec![1i16, -9, 3, -9]).unwrap();
    a.write_array("q", vec![0], v.view()).await.unwrap();
    let b = atlas.create_dataset("b").await.unwrap();
    b.define_array::<i16>(
        "q",
        vec!["x".into()],
        vec![2],
        None,
        Some(FillValue::Int(-9)),
    )
    .await
    .unwrap();
    atlas.flush().await.unwrap();
    register(&ctx, "memory:///f").await;
    let r = run(
        &ctx,
        "SELECT dataset, x_index, q FROM s.q ORDER BY dataset, x_index",
    )
    .await;
    assert_eq!(
        r.rows,
        vec![
            "a|0|1", "a|1|NULL", "a|2|3", "a|3|NULL", "b|0|NULL", "b|1|NULL"
        ]
    );
    let r = run(&ctx, "SELECT count(q), count(*) FROM s.q").await;
    assert_eq!(r.rows, vec!["2|6"]);
}

#[tokio::test]
async fn column_name_collisions_are_reported_not_shadowed() {
    let (ctx, store) = memory_session(1);
    let mut atlas = new_store(store, "clash").await;
    let a = atlas.create_dataset("a").await.unwrap();
    a.define_array::<f64>("time_index", vec!["time".into()], vec![1], None, None)
        .await
        .unwrap();
    a.define_array::<f64>("dataset", vec!["x".into()], vec![1], None, None)
        .await
        .unwrap();
    atlas.flush().await.unwrap();
    register(&ctx, "memory:///clash").await;
    let err = error_of(&ctx, "SELECT * FROM s.time_index").await;
    assert!(err.contains("two columns named \"time_index\""), "{err}");
    let err = error_of(&ctx, "SELECT * FROM s.dataset").await;
    assert!(err.contains("two columns named \"dataset\""), "{err}");
}

#[tokio::test]
async fn metadata_tables_describe_datasets_arrays_and_attributes() {
    let (ctx, store) = memory_session(1);
    let mut atlas = new_store(store, "meta").await;
    for (i, name) in ["argo_1", "argo_2"].iter().enumerate() {
        let ds = atlas.create_dataset(name).await.unwrap();
        ds.set_attribute("platform", Attr::String(format!("float {i}")))
            .unwrap();
        ds.set_attribute("cycle", Attr::Int64(i as i64 + 10))
            .unwrap();
        if i == 1 {
            ds.set_attribute("depths", Attr::Float64List(vec![1.5, 2.5]))
                .unwrap();
        }
        ds.define_array::<f32>(
            "pres",
            vec!["level".into()],
            vec![3],
            None,
            Some(FillValue::Float(99999.0)),
        )
        .await
        .unwrap();
        let v = Array::from_shape_vec(IxDyn(&[3]), vec![5.0f32, 10.0 + i as f32, 99999.0]).unwrap();
        ds.write_array("pres", vec![0], v.view()).await.unwrap();
        ds.set_array_attribute("pres", "units", Attr::String("dbar".into()))
            .unwrap();
    }
    atlas.flush().await.unwrap();
    register(&ctx, "memory:///meta").await;
    assert_eq!(
        columns(&ctx, "s._datasets").await,
        vec![
            "dataset:Dictionary(UInt32, Utf8)",
            "platform:Utf8",
            "cycle:Int64",
            "depths:List(Float64)",
        ]
    );
    let r = run(
        &ctx,
        "SELECT dataset, cycle, depths FROM s._datasets WHERE cycle > 10",
    )
    .await;
    assert_eq!(r.rows, vec!["argo_2|11|[1.5, 2.5]"]);
    let r = run(
        &ctx,
        "SELECT dataset, array, dtype, dims, shape, chunk_shape, fill_value, min, max, null_count, row_count FROM s._arrays ORDER BY dataset",
    )
    .await;
    assert_eq!(
        r.rows,
        vec![
            "argo_1|pres|float32|[level]|[3]|[3]|99999|5|10|1|3",
            "argo_2|pres|float32|[level]|[3]|[3]|99999|5|11|1|3",
        ]
    );
    let r = run(
        &ctx,
        "SELECT dataset, array, key, value, int_value FROM s._attributes WHERE key IN ('cycle', 'units') ORDER BY dataset, key",
    )
    .await;
    assert_eq!(
        r.rows,
        vec![
            "argo_1|NULL|cycle|10|10",
            "argo_1|pres|units|dbar|NULL",
            "argo_2|NULL|cycle|11|11",
            "argo_2|pres|units|dbar|NULL",
        ]
    );
}

#[tokio::test]
async fn an_empty_store_has_only_the_metadata_tables() {
    let (ctx, store) = memory_session(1);
    new_store(store, "empty").await;
    register(&ctx, "memory:///empty").await;
    let r = run(&ctx, "SELECT count(*) FROM s._datasets").await;
    assert_eq!(r.rows, vec!["0"]);
    let r = run(&ctx, "SELECT count(*) FROM s._arrays").await;
    assert_eq!(r.rows, vec!["0"]);
    let err = error_of(&ctx, "SELECT * FROM s.temperature").await;
    assert!(err.contains("s.temperature"), "{err}");
}
