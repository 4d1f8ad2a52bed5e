//! Every way in: schema registration, CREATE EXTERNAL TABLE, table functions, local paths and
//! `memory://`, and the errors of bad locations.

use datafusion::prelude::SessionContext;

use crate::support::{error_of, memory_session, run, sensors};

/// An object store over a local folder.
fn local_store(
    dir: &std::path::Path,
) -> std::sync::Arc<dyn atlas_datafusion::atlas_store::object_store::ObjectStore> {
    std::sync::Arc::new(
        atlas_datafusion::atlas_store::object_store::local::LocalFileSystem::new_with_prefix(dir)
            .unwrap(),
    )
}

#[tokio::test]
async fn a_store_on_local_disk_registers_as_a_schema_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = local_store(dir.path());
    sensors(store, "store", 3, 10, 5).await;

    let ctx = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_information_schema(true),
    );
    atlas_datafusion::register_atlas(&ctx);
    atlas_datafusion::register_store(&ctx, "ocean", path.to_str().unwrap())
        .await
        .unwrap();
    let r = run(
        &ctx,
        "SELECT count(*), max(temperature) FROM ocean.temperature",
    )
    .await;
    assert_eq!(r.rows, vec!["30|2009.0"]);
    let r = run(&ctx, "SHOW TABLES").await;
    for t in ["temperature", "time", "_datasets", "_arrays", "_attributes"] {
        assert!(
            r.rows
                .iter()
                .any(|row| row.contains(&format!("ocean|{t}|"))),
            "{t}: {:?}",
            r.rows
        );
    }

    // CREATE EXTERNAL TABLE and the table functions reach the same data.
    let location = path.to_str().unwrap();
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE temps STORED AS ATLAS LOCATION '{location}' OPTIONS ('variable' 'temperature')"
    ))
    .await
    .unwrap();
    let r = run(&ctx, "SELECT count(*) FROM temps WHERE dataset = 's0001'").await;
    assert_eq!(r.rows, vec!["10"]);
    let r = run(&ctx, &format!("SELECT max(temperature) FROM atlas_scan('{location}', 'temperature') WHERE time_index < 5")).await;
    assert_eq!(r.rows, vec!["2004.0"]);
    let r = run(
        &ctx,
        &format!("SELECT dataset, platform FROM atlas_datasets('{location}') ORDER BY dataset"),
    )
    .await;
    assert_eq!(
        r.rows,
        vec!["s0000|glider", "s0001|mooring", "s0002|mooring"]
    );
    let url = format!("file://{location}");
    let r = run(
        &ctx,
        &format!("SELECT count(*) FROM atlas_scan('{url}', 'time')"),
    )
    .await;
    assert_eq!(r.rows, vec!["30"]);
}

#[tokio::test]
async fn a_session_sees_commits_made_after_it_registered_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let mut writer = sensors(store, "store", 2, 10, 5).await;
    let ctx = SessionContext::new();
    let path = dir.path().join("store");
    let schema = atlas_datafusion::register_store(&ctx, "s", path.to_str().unwrap())
        .await
        .unwrap();
    let count = "SELECT count(*) FROM s._datasets";
    assert_eq!(run(&ctx, count).await.rows, vec!["2"]);
    let before = schema.store();
    // Another handle commits a dataset with a new variable.
    let ds = writer.create_dataset("late").await.unwrap();
    ds.define_array::<f64>("salinity", vec!["obs".into()], vec![3], None, None)
        .await
        .unwrap();
    ds.write_array(
        "salinity",
        vec![0],
        ndarray::arr1(&[35.0, 35.5, 36.0]).into_dyn().view(),
    )
    .await
    .unwrap();
    writer.flush().await.unwrap();
    // The next query of the same session sees it, in the metadata and as a table.
    assert_eq!(run(&ctx, count).await.rows, vec!["3"]);
    let r = run(
        &ctx,
        "SELECT dataset, max(salinity) FROM s.salinity GROUP BY dataset",
    )
    .await;
    assert_eq!(r.rows, vec!["late|36.0"]);
    // A handle planned before keeps its own state.
    assert!(!before.has_variable("salinity"));
    assert!(schema.store().has_variable("salinity"));
}

#[tokio::test]
async fn table_functions_reuse_the_store_they_opened_until_it_has_newer_commits() {
    use atlas_datafusion::{AtlasDatasetsFunction, OpenedStores};
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let mut writer = sensors(store, "store", 2, 10, 5).await;
    let location = dir.path().join("store").to_str().unwrap().to_string();
    let ctx = SessionContext::new();
    let opened = OpenedStores::default();
    ctx.register_udtf(
        "atlas_datasets",
        std::sync::Arc::new(AtlasDatasetsFunction {
            opened: opened.clone(),
        }),
    );
    let count = format!("SELECT count(*) FROM atlas_datasets('{location}')");
    assert_eq!(run(&ctx, &count).await.rows, vec!["2"]);
    let first = opened.cached(&location).unwrap();
    assert_eq!(run(&ctx, &count).await.rows, vec!["2"]);
    assert!(std::sync::Arc::ptr_eq(
        &first,
        &opened.cached(&location).unwrap()
    ));
    writer.create_dataset("late").await.unwrap();
    writer.flush().await.unwrap();
    assert_eq!(run(&ctx, &count).await.rows, vec!["3"]);
    assert!(!std::sync::Arc::ptr_eq(
        &first,
        &opened.cached(&location).unwrap()
    ));
}

#[tokio::test]
async fn memory_urls_work_for_every_entry_point() {
    let (ctx, store) = memory_session(2);
    sensors(store, "mem", 4, 8, 4).await;
    atlas_datafusion::register_store(&ctx, "m", "memory:///mem")
        .await
        .unwrap();
    assert_eq!(
        run(&ctx, "SELECT count(*) FROM m.temperature").await.rows,
        vec!["32"]
    );
    ctx.sql("CREATE EXTERNAL TABLE t STORED AS ATLAS LOCATION 'memory:///mem' OPTIONS ('variable' 'time')")
        .await
        .unwrap();
    assert_eq!(run(&ctx, "SELECT count(*) FROM t").await.rows, vec!["32"]);
    let r = run(&ctx, "SELECT sum(temperature) FROM atlas_scan('memory:///mem', 'temperature') WHERE dataset = 's0002'").await;
    assert_eq!(r.rows, vec!["16028.0"]);
    assert_eq!(r.metric("datasets_pruned"), 3);
}

#[tokio::test]
async fn bad_locations_and_variables_are_errors_that_name_them() {
    let (ctx, store) = memory_session(1);
    sensors(store, "mem", 2, 4, 4).await;
    let err = atlas_datafusion::register_store(&ctx, "x", "/no/such/store")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/no/such/store"), "{err}");
    let err = error_of(
        &ctx,
        "SELECT * FROM atlas_scan('memory:///mem', 'salinity')",
    )
    .await;
    assert!(
        err.contains("salinity") && err.contains("temperature, time"),
        "{err}"
    );
    let err = error_of(
        &ctx,
        "SELECT * FROM atlas_scan('memory:///nothing', 'temperature')",
    )
    .await;
    assert!(err.contains("memory:///nothing"), "{err}");
    let err = error_of(&ctx, "SELECT * FROM atlas_scan('memory:///mem')").await;
    assert!(err.contains("one or more variables"), "{err}");
    let err = error_of(
        &ctx,
        "CREATE EXTERNAL TABLE t STORED AS ATLAS LOCATION 'memory:///mem'",
    )
    .await;
    assert!(
        err.contains("'variable'") && err.contains("temperature"),
        "{err}"
    );
}

#[tokio::test]
async fn a_corrupted_segment_is_an_error_naming_it_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    sensors(store, "store", 3, 10, 5).await;
    let seg_dir = dir.path().join("store").join("temperature");
    for entry in std::fs::read_dir(&seg_dir).unwrap() {
        let p = entry.unwrap().path();
        let len = std::fs::metadata(&p).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(len / 2).unwrap();
    }
    let ctx = SessionContext::new();
    atlas_datafusion::register_store(&ctx, "s", dir.path().join("store").to_str().unwrap())
        .await
        .unwrap();
    let err = error_of(
        &ctx,
        "SELECT max(temperature) FROM s.temperature WHERE temperature > 0",
    )
    .await;
    assert!(
        err.contains("temperature/") && err.contains("s000"),
        "{err}"
    );
    // Queries that need no array bytes still work.
    let r = run(&ctx, "SELECT count(*) FROM s.time").await;
    assert_eq!(r.rows, vec!["30"]);
}

/// Adds dataset `name` with `temperature` of `len` values of type `T` to the store at `dir`.
async fn add_temperature<T: atlas_datafusion::atlas_store::ArrayElement + From<u8>>(
    dir: &std::path::Path,
    name: &str,
    len: usize,
) {
    use atlas_datafusion::atlas_store::Atlas;
    use atlas_datafusion::atlas_store::ndarray::{Array, IxDyn};
    let mut atlas = Atlas::open_path(dir.join("store")).await.unwrap();
    let ds = atlas.create_dataset(name).await.unwrap();
    ds.define_array::<T>("temperature", vec!["time".into()], vec![len], None, None)
        .await
        .unwrap();
    let v = Array::from_shape_fn(IxDyn(&[len]), |_| T::from(7));
    ds.write_array("temperature", vec![0], v.view())
        .await
        .unwrap();
    atlas.flush().await.unwrap();
}

#[tokio::test]
async fn the_tables_of_one_statement_read_one_generation_even_when_looked_up_across_a_commit() {
    use atlas_datafusion::{AtlasStore, store_table};
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("store");
    let location = location.to_str().unwrap();
    sensors(local_store(dir.path()), "store", 2, 10, 5).await;
    let ctx = SessionContext::new();
    atlas_datafusion::register_atlas(&ctx);
    // Two lookups of one statement with a commit between them: the first table is from
    // generation 1, the second from generation 2 (as a schema that refreshes per lookup, or two
    // table-function calls, would hand out).
    let before = AtlasStore::open(location, &ctx.runtime_env())
        .await
        .unwrap();
    add_temperature::<f64>(dir.path(), "s9999", 4).await;
    let after = AtlasStore::open(location, &ctx.runtime_env())
        .await
        .unwrap();
    assert!(after.atlas().generation() > before.atlas().generation());
    ctx.register_table("t_before", store_table(&before, "temperature").unwrap())
        .unwrap();
    ctx.register_table("d_after", store_table(&after, "_datasets").unwrap())
        .unwrap();
    ctx.register_table("t_after", store_table(&after, "temperature").unwrap())
        .unwrap();
    let r = run(
        &ctx,
        "SELECT (SELECT count(*) FROM t_before) AS a, (SELECT count(*) FROM t_after) AS b, \
         (SELECT count(*) FROM d_after) AS c",
    )
    .await;
    // Both read generation 2: 2 x 10 values plus the new 4, and 3 datasets.
    assert_eq!(r.rows, vec!["24|24|3"]);
    // Alone, the older table still reads its own generation.
    let r = run(&ctx, "SELECT count(*) FROM t_before").await;
    assert_eq!(r.rows, vec!["20"]);

    // A commit that changes the table's columns (temperature widens from f32 to f64) cannot
    // be moved across: the statement is refused, to be run again.
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("store");
    let location = location.to_str().unwrap();
    atlas_datafusion::atlas_store::Atlas::create_path(dir.path().join("store"), Default::default())
        .await
        .unwrap();
    add_temperature::<f32>(dir.path(), "a", 3).await;
    let before = AtlasStore::open(location, &ctx.runtime_env())
        .await
        .unwrap();
    add_temperature::<f64>(dir.path(), "b", 3).await;
    let after = AtlasStore::open(location, &ctx.runtime_env())
        .await
        .unwrap();
    ctx.register_table("f_before", store_table(&before, "temperature").unwrap())
        .unwrap();
    ctx.register_table("f_after", store_table(&after, "temperature").unwrap())
        .unwrap();
    let err = error_of(
        &ctx,
        "SELECT (SELECT count(*) FROM f_before) AS a, (SELECT count(*) FROM f_after) AS b",
    )
    .await;
    assert!(
        err.contains("changed its columns; run the statement again"),
        "{err}"
    );
}
