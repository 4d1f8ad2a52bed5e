//! Stores written by atlas-rust 0.17, queried with SQL: the same tables, metadata tables and
//! pushdowns as an atlas-sql store, read-only. The upstream crate writes each fixture and
//! gives the expected answers.

use atlas_upstream_fixtures::{self as fixtures, upstream};
use datafusion::prelude::SessionContext;

use crate::support::{error_of, register, run, sorted};

const N: usize = 60;
const LEVELS: usize = 100;

async fn profiles() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    fixtures::profiles_017(dir.path(), N, LEVELS)
        .await
        .expect("fixture");
    let location = dir.path().display().to_string();
    (dir, location)
}

/// A session with the store at `location` registered as schema `s`.
pub(crate) async fn session(location: &str) -> SessionContext {
    let ctx = SessionContext::new();
    atlas_datafusion::register_atlas(&ctx);
    register(&ctx, location).await;
    ctx
}

#[tokio::test]
async fn every_profile_answers_as_the_upstream_crate_reads_it() {
    let (_dir, location) = profiles().await;
    let ctx = session(&location).await;
    let got = sorted(
        &ctx,
        r#"SELECT dataset, count("TEMP"), min("TEMP"), max("TEMP"), count(*) FROM s."TEMP" GROUP BY dataset"#,
    )
    .await;
    let theirs = upstream::Atlas::open_path(&location)
        .await
        .expect("upstream");
    let mut expected = Vec::new();
    for name in theirs.list_datasets() {
        let t = theirs
            .dataset(&name)
            .expect("dataset")
            .read_array::<f32>("TEMP", vec![], vec![])
            .await
            .expect("read");
        let min = t.iter().copied().fold(f32::INFINITY, f32::min);
        let max = t.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        expected.push(format!("{name}|{}|{min:?}|{max:?}|{}", t.len(), t.len()));
    }
    expected.sort();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn dataset_index_and_value_filters_prune_an_upstream_store_as_ours() {
    let (_dir, location) = profiles().await;
    let ctx = session(&location).await;
    let r = run(
        &ctx,
        r#"SELECT "TEMP" FROM s."TEMP" WHERE dataset = 'P00007'"#,
    )
    .await;
    assert_eq!(r.rows.len(), LEVELS);
    assert_eq!(r.metric("datasets_pruned"), N - 1);
    assert_eq!(r.metric("chunks_read"), LEVELS / 25);

    let r = run(
        &ctx,
        r#"SELECT "TEMP" FROM s."TEMP" WHERE "N_LEVELS_index" < 25"#,
    )
    .await;
    assert_eq!(r.rows.len(), N * 25);
    assert_eq!(r.metric("chunks_read"), N);
    assert_eq!(r.metric("chunks_pruned"), N * 3);

    // Only profiles 29 and 59 start above 28.5 degrees: the statistics in the segments
    // prune the rest before any of their bytes are read.
    let r = run(
        &ctx,
        r#"SELECT dataset, "TEMP" FROM s."TEMP" WHERE "TEMP" > 28.5"#,
    )
    .await;
    assert_eq!(r.rows.len(), 2 * 50);
    assert_eq!(r.metric("datasets_pruned_by_stats"), N - 2);

    // Counts come from the catalog: no array bytes.
    let r = run(&ctx, r#"SELECT count(*) FROM s."TEMP""#).await;
    assert_eq!(r.rows, vec![(N * LEVELS).to_string()]);
    assert_eq!(r.metric("bytes_read"), 0);
}

#[tokio::test]
async fn dataset_attributes_of_an_upstream_store_are_the_datasets_table() {
    let (_dir, location) = profiles().await;
    let ctx = session(&location).await;
    let rows = sorted(
        &ctx,
        r#"SELECT dataset, "PLATFORM_NUMBER" FROM s._datasets WHERE "CYCLE" = 3"#,
    )
    .await;
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[0], "P00030|6900000");
    let joined = run(
        &ctx,
        r#"SELECT count(*) FROM s."TEMP" t JOIN s._datasets d USING (dataset) WHERE d."PLATFORM_NUMBER" = '6900003'"#,
    )
    .await;
    assert_eq!(joined.rows, vec![(N / 10 * LEVELS).to_string()]);
}

#[tokio::test]
async fn table_functions_and_external_tables_open_upstream_stores() {
    let (_dir, location) = profiles().await;
    let ctx = SessionContext::new();
    atlas_datafusion::register_atlas(&ctx);
    let r = run(
        &ctx,
        &format!(
            r#"SELECT count(*) FROM atlas_scan('{location}', 'PRES') WHERE "N_LEVELS_index" = 0"#
        ),
    )
    .await;
    assert_eq!(r.rows, vec![N.to_string()]);
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE temps STORED AS ATLAS LOCATION '{location}' OPTIONS ('variable' 'TEMP')"
    ))
    .await
    .expect("create external table");
    let r = run(&ctx, r#"SELECT max("TEMP") FROM temps"#).await;
    assert_eq!(r.rows, vec!["29.0"]);
}

#[tokio::test]
async fn writing_into_an_upstream_store_from_sql_is_refused_naming_its_format() {
    let (dir, location) = profiles().await;
    let ctx = session(&location).await;
    let msg = error_of(
        &ctx,
        r#"INSERT INTO s."TEMP" (dataset, "N_LEVELS_index", "TEMP") VALUES ('new', 0, 1.5)"#,
    )
    .await;
    assert!(msg.contains("atlas-rust 0.17"), "{msg}");
    let theirs = upstream::Atlas::open_path(dir.path())
        .await
        .expect("intact");
    assert_eq!(theirs.dataset_count(), N);
}

#[tokio::test]
async fn counts_of_a_partly_written_upstream_array_follow_its_fill_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    fixtures::mixed_017(dir.path()).await.expect("fixture");
    let ctx = session(&dir.path().display().to_string()).await;
    // feb: half never written, fill -999, so NULL; mar: five sixths never written and no
    // fill, so zeros. The exact statistics and the values agree.
    let rows = sorted(
        &ctx,
        "SELECT dataset, count(temperature), count(*), sum(CASE WHEN temperature = 0 THEN 1 ELSE 0 END) FROM s.temperature GROUP BY dataset",
    )
    .await;
    assert_eq!(rows, vec!["feb|12|24|0", "jan|23|24|1", "mar|24|24|18"]);
    let rows = sorted(
        &ctx,
        "SELECT dataset, lat, lon, temperature FROM s.temperature WHERE lat_index = 3 AND lon_index = 5",
    )
    .await;
    assert_eq!(
        rows,
        vec![
            "feb|5.0|112.5|NULL",
            "jan|5.0|112.5|3.5",
            "mar|5.0|112.5|0.0"
        ]
    );
    let rows = sorted(
        &ctx,
        "SELECT dataset, station, time FROM s.station JOIN s.time USING (dataset)",
    )
    .await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], "feb|ST-feb|2024-02-01T00:00:00");
}
