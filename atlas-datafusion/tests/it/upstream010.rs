//! Stores written by atlas-rust 0.10, queried with SQL: the same tables, metadata tables and
//! pushdowns as an atlas-sql store, read-only. atlas-rust 0.10 writes each fixture and gives
//! the expected answers.

use atlas_upstream_fixtures::v010::{self as fixtures, upstream};

use crate::support::{error_of, run, sorted};
use crate::upstream::session;

const N: usize = 60;
const LEVELS: usize = 100;

async fn profiles() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    fixtures::profiles_010(dir.path(), N, LEVELS)
        .await
        .expect("fixture");
    let location = dir.path().display().to_string();
    (dir, location)
}

#[tokio::test]
async fn every_profile_of_a_010_store_answers_as_atlas_rust_010_reads_it() {
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
            .open_dataset(&name)
            .await
            .expect("dataset")
            .read_array::<f32>("TEMP", vec![], vec![])
            .await
            .expect("read")
            .expect("defined");
        let min = t.iter().copied().fold(f32::INFINITY, f32::min);
        let max = t.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        expected.push(format!("{name}|{}|{min:?}|{max:?}|{}", t.len(), t.len()));
    }
    expected.sort();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn dataset_index_and_value_filters_prune_a_010_store_as_ours() {
    let (_dir, location) = profiles().await;
    let ctx = session(&location).await;
    let full = run(&ctx, r#"SELECT "TEMP" FROM s."TEMP""#).await;
    assert_eq!(full.rows.len(), N * LEVELS);

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

    // Only profiles 29 and 59 start above 28.5 degrees: the statistics atlas-rust 0.10 keeps
    // beside each file prune the rest.
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
async fn dataset_attributes_of_a_010_store_are_the_datasets_table() {
    let (_dir, location) = profiles().await;
    let ctx = session(&location).await;
    let rows = sorted(
        &ctx,
        r#"SELECT dataset, "PLATFORM_NUMBER" FROM s._datasets WHERE "CYCLE" = 3"#,
    )
    .await;
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[0], "P00030|6900000");
}

#[tokio::test]
async fn counts_and_values_of_a_010_store_follow_fill_values_and_delta_layers() {
    let dir = tempfile::tempdir().expect("temp dir");
    fixtures::mixed_010(dir.path(), false)
        .await
        .expect("fixture");
    let location = dir.path().display().to_string();
    let ctx = session(&location).await;
    // feb: written in two sessions, so nothing is NULL; mar: five sixths never written and
    // no fill, so zeros; jan: one NaN, its fill.
    let rows = sorted(
        &ctx,
        "SELECT dataset, count(temperature), count(*), sum(CASE WHEN temperature = 0 THEN 1 ELSE 0 END) FROM s.temperature GROUP BY dataset",
    )
    .await;
    assert_eq!(
        rows,
        vec!["apr|24|24|0", "feb|24|24|0", "jan|23|24|1", "mar|24|24|18"]
    );
    let rows = sorted(
        &ctx,
        "SELECT dataset, lat, lon, temperature FROM s.temperature WHERE lat_index = 3 AND lon_index = 5 AND dataset <> 'apr'",
    )
    .await;
    assert_eq!(
        rows,
        vec![
            "feb|5.0|112.5|13.5",
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
    let msg = error_of(
        &ctx,
        "INSERT INTO s.lat (dataset, lat_index, lat) VALUES ('new', 0, 1.5)",
    )
    .await;
    assert!(msg.contains("atlas-rust 0.10"), "{msg}");
}
