//! Stores written by atlas-rust 0.10 (a registry and a `data.af` file per variable), opened
//! read-only. atlas-rust 0.10 writes every fixture and is the oracle for every answer.

use atlas_store::ndarray::{ArcArray, IxDyn};
use atlas_store::{
    Atlas, Attr, Bool, DType, Error, FillValue, ReadCounter, StatValue, StoreConfig, TimestampNs,
    count_reads,
};
use atlas_upstream_fixtures::v010::{self as fixtures, Flag, upstream};

async fn mixed(packed: bool) -> (tempfile::TempDir, Atlas, upstream::Atlas) {
    let dir = tempfile::tempdir().expect("temp dir");
    fixtures::mixed_010(dir.path(), packed)
        .await
        .expect("fixture");
    let ours = Atlas::open_path(dir.path())
        .await
        .expect("opens as a store");
    let theirs = upstream::Atlas::open_path(dir.path())
        .await
        .expect("upstream opens it");
    (dir, ours, theirs)
}

/// Every file under `dir` with its bytes, to show a store was not changed.
fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("list") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = p.strip_prefix(dir).expect("inside").display().to_string();
                out.push((name, std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// Both readers' values of one array, compared with `eq`.
async fn same<T, U>(
    ours: &Atlas,
    theirs: &upstream::Atlas,
    ds: &str,
    array: &str,
    region: (Vec<usize>, Vec<usize>),
    eq: impl Fn(&T, &U) -> bool,
) where
    T: atlas_store::ArrayElement + std::fmt::Debug,
    U: upstream::ArrayElement + std::fmt::Debug,
{
    let (start, shape) = region;
    let a: ArcArray<T, IxDyn> = ours
        .open_dataset(ds)
        .await
        .expect("dataset")
        .read_array::<T>(array, start.clone(), shape.clone())
        .await
        .expect("our read")
        .expect("array defined");
    let b: ArcArray<U, IxDyn> = theirs
        .open_dataset(ds)
        .await
        .expect("their dataset")
        .read_array::<U>(array, start, shape)
        .await
        .expect("their read")
        .expect("their array");
    assert_eq!(a.shape(), b.shape(), "{ds}/{array}");
    for (x, y) in a.iter().zip(b.iter()) {
        assert!(eq(x, y), "{ds}/{array}: {x:?} vs {y:?}");
    }
}

#[tokio::test]
async fn an_atlas_rust_010_store_opens_with_the_datasets_its_registry_lists() {
    for packed in [false, true] {
        let (_dir, ours, theirs) = mixed(packed).await;
        assert_eq!(
            ours.list_datasets(),
            fixtures::MIXED_LIVE,
            "packed {packed}"
        );
        assert_eq!(ours.list_datasets(), theirs.list_datasets());
        // Deleted: a tombstone in the files, gone from the registry.
        assert!(!ours.dataset_exists("gone"));
        assert_eq!(
            ours.upstream_format(),
            Some(
                "an atlas-rust 0.10 store (atlas.json and a folder of data.af files per variable)"
            )
        );
        assert_eq!(ours.list_arrays(), theirs.list_arrays());
    }
}

#[tokio::test]
async fn every_array_reads_as_atlas_rust_010_reads_it_delta_layers_included() {
    let (_dir, ours, theirs) = mixed(false).await;
    let whole = || (vec![], vec![]);
    let f32_bits = |a: &f32, b: &f32| a.to_bits() == b.to_bits();
    for ds in fixtures::MIXED_LIVE {
        same::<f32, f32>(&ours, &theirs, ds, "temperature", whole(), f32_bits).await;
        let region = (vec![1, 2], vec![3, 3]);
        same::<f32, f32>(&ours, &theirs, ds, "temperature", region, f32_bits).await;
        if ds == "apr" {
            continue;
        }
        same::<f64, f64>(&ours, &theirs, ds, "lat", whole(), |a, b| a == b).await;
        same::<f64, f64>(&ours, &theirs, ds, "lon", whole(), |a, b| a == b).await;
        same::<String, String>(&ours, &theirs, ds, "station", whole(), |a, b| a == b).await;
        same::<TimestampNs, upstream::TimestampNs>(&ours, &theirs, ds, "time", whole(), |a, b| {
            a.0 == b.0
        })
        .await;
    }
    same::<Bool, Flag>(&ours, &theirs, "jan", "flag", whole(), |a, b| a.0 == b.0).await;
    same::<u64, u64>(&ours, &theirs, "jan", "code", whole(), |a, b| a == b).await;
    same::<i16, i16>(&ours, &theirs, "jan", "level", whole(), |a, b| a == b).await;
    same::<f64, f64>(&ours, &theirs, "jan", "spare", whole(), |a, b| a == b).await;

    // The second session's rows of feb live in a delta layer, and read through it.
    let feb = ours
        .open_dataset("feb")
        .await
        .expect("feb")
        .read_array::<f32>("temperature", vec![3, 5], vec![1, 1])
        .await
        .expect("read")
        .expect("defined");
    assert_eq!(feb[[0, 0]], fixtures::mixed_temperature(1, 3, 5));
    let spare = ours
        .open_dataset("jan")
        .await
        .expect("jan")
        .read_array::<f64>("spare", vec![], vec![])
        .await
        .expect("read")
        .expect("defined");
    assert!(spare.iter().all(|&v| v == 1.5), "never written: the fill");
}

#[tokio::test]
async fn definitions_fill_values_and_attributes_come_from_the_registry_and_its_files() {
    let (_dir, ours, theirs) = mixed(true).await;
    let jan = ours.open_dataset("jan").await.expect("jan");
    let t = jan.array_meta("temperature").expect("temperature");
    assert_eq!(t.dtype, DType::Float32);
    assert_eq!(
        (t.dims.clone(), t.shape.clone(), t.chunk_shape.clone()),
        (
            vec!["lat".to_string(), "lon".to_string()],
            vec![4, 6],
            vec![2, 3]
        )
    );
    assert!(matches!(t.fill_value, Some(FillValue::Float(x)) if x.is_nan()));
    let level = jan.array_meta("level").expect("level");
    assert_eq!(
        (level.dtype, level.fill_value),
        (DType::Int16, Some(FillValue::Int(-1)))
    );
    let station = jan.array_meta("station").expect("station");
    assert!(station.shape.is_empty() && station.dims.is_empty());
    assert_eq!(jan.array_meta("flag").expect("flag").dtype, DType::Bool);

    let attrs: Vec<(String, Attr)> = jan.attributes();
    let theirs_attrs = theirs.open_dataset("jan").await.expect("jan").meta();
    let names: Vec<&String> = attrs.iter().map(|(k, _)| k).collect();
    let theirs_names: Vec<&String> = theirs_attrs.attributes.keys().collect();
    assert_eq!(names, theirs_names, "the order the writer set them in");
    let attrs: std::collections::HashMap<String, Attr> = attrs.into_iter().collect();
    assert_eq!(attrs["platform"], Attr::String("float jan".into()));
    assert_eq!(attrs["cycle"], Attr::Int64(1));
    assert_eq!(attrs["ratio"], Attr::Float64(0.5));
    assert_eq!(attrs["qc"], Attr::Bool(true));
    assert!(matches!(attrs["launched"], Attr::TimestampNanoseconds(t) if t > 0));
    // 0.10 has no attributes on arrays.
    assert!(jan.array_attributes("temperature").expect("t").is_empty());
}

#[tokio::test]
async fn statistics_from_the_upstream_files_count_nulls_as_sql_sees_them() {
    let (_dir, ours, _theirs) = mixed(false).await;
    let stats = |ds: &'static str, array: &'static str| {
        let ours = &ours;
        async move {
            ours.open_dataset(ds)
                .await
                .expect("dataset")
                .array_stats(array)
                .await
                .expect("stats")
        }
    };
    // jan: all written, fill NaN, one NaN: one null.
    let jan = stats("jan", "temperature").await;
    assert_eq!((jan.row_count, jan.null_count), (24, 1));
    // feb: half in the first session, the rest in a delta layer: no nulls, and the maximum
    // comes from the layer.
    let feb = stats("feb", "temperature").await;
    assert_eq!((feb.row_count, feb.null_count), (24, 0));
    assert_eq!(
        feb.max,
        Some(StatValue::Float(f64::from(fixtures::mixed_temperature(
            1, 3, 5
        ))))
    );
    // mar: one chunk of four written, no fill: the other 18 cells read as 0.0, values.
    let mar = stats("mar", "temperature").await;
    assert_eq!((mar.row_count, mar.null_count), (24, 0));
    assert_eq!(mar.min, Some(StatValue::Float(0.0)));
    // level: fill -1, half written: two nulls.
    let level = stats("jan", "level").await;
    assert_eq!((level.row_count, level.null_count), (4, 2));
    assert_eq!(
        (level.min, level.max),
        (Some(StatValue::Int(-300)), Some(StatValue::Int(300)))
    );
}

#[tokio::test]
async fn a_region_read_fetches_only_the_blocks_it_overlaps() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 24 MiB of values: three of atlas-rust 0.10's 8 MiB blocks.
    let n = 3 << 20;
    fixtures::long_010(dir.path(), n).await.expect("fixture");
    let count = |start: usize, len: usize| {
        let dir = dir.path().to_path_buf();
        async move {
            let fresh = Atlas::open_path(&dir).await.expect("open");
            let view = fresh.open_dataset("long").await.expect("long");
            let counter = ReadCounter::new();
            let values = count_reads(
                &counter,
                view.read_array::<f64>("x", vec![start], vec![len]),
            )
            .await
            .expect("read")
            .expect("defined");
            assert_eq!(values[[0]], start as f64);
            assert_eq!(values[[len - 1]], (start + len - 1) as f64);
            counter.bytes()
        }
    };
    let slice = count(n - 1000, 1000).await;
    let whole = count(0, n).await;
    assert!(
        slice > 0 && slice * 2 < whole,
        "a slice in the last block read {slice} bytes, the whole array {whole}"
    );
}

#[tokio::test]
async fn every_write_to_an_atlas_rust_010_store_is_refused_and_nothing_changes() {
    let (dir, mut ours, _theirs) = mixed(false).await;
    let before = files(dir.path());
    let refused = |e: Error| {
        let msg = e.to_string();
        assert!(matches!(e, Error::ReadOnlyFormat { .. }), "{msg}");
        assert!(msg.contains("atlas-rust 0.10"), "{msg}");
    };
    refused(ours.create_dataset("new").await.expect_err("read-only"));
    refused(ours.delete_dataset("jan").await.expect_err("read-only"));
    refused(ours.compact().await.expect_err("read-only"));
    refused(ours.vacuum().await.expect_err("read-only"));
    let jan = ours.open_dataset("jan").await.expect("jan");
    refused(
        jan.set_attribute("k", Attr::Int64(1))
            .expect_err("read-only"),
    );
    let v = atlas_store::ndarray::ArrayD::from_elem(IxDyn(&[1]), 1.0f64);
    refused(
        jan.write_array("lat", vec![0], v.view())
            .await
            .expect_err("read-only"),
    );
    ours.flush().await.expect("nothing to flush");
    // Reads, statistics and a verify leave every file as it was.
    for ds in ours.list_datasets() {
        let view = ours.open_dataset(&ds).await.expect("dataset");
        let _ = view.array_stats("temperature").await;
        view.read_array::<f32>("temperature", vec![], vec![])
            .await
            .expect("read");
    }
    let report = ours.verify_all(|_, _| {}).await.expect("verify");
    assert!(report.damaged.is_empty(), "{:?}", report.damaged);
    assert_eq!(files(dir.path()), before);
}

#[tokio::test]
async fn verify_reads_every_variable_and_names_a_damaged_or_missing_file() {
    let (dir, ours, _theirs) = mixed(false).await;
    let report = ours.verify_all(|_, _| {}).await.expect("verify");
    assert!(report.damaged.is_empty(), "{:?}", report.damaged);
    let variables = ours.list_arrays().len();
    assert_eq!(report.segments_checked, variables);
    drop(ours);

    // lon's file is gone; temperature's is damaged past its header.
    std::fs::remove_file(dir.path().join("lon").join("data.af")).expect("remove");
    let path = dir.path().join("temperature").join("data.af");
    let mut bytes = std::fs::read(&path).expect("read");
    let len = bytes.len();
    for b in &mut bytes[len / 4..len / 2] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).expect("damage");

    // Opening reads the registry, a listing and each file's footer: the damage and the
    // missing file are found by the reads that need them.
    let ours = Atlas::open_path(dir.path()).await.expect("opens");
    let err = ours
        .open_dataset("jan")
        .await
        .expect("jan")
        .read_array::<f64>("lon", vec![], vec![])
        .await
        .expect_err("its file is gone");
    assert!(
        matches!(err, Error::SegmentGone { .. }) && err.to_string().contains("lon/data.af"),
        "{err}"
    );
    let report = ours.verify_all(|_, _| {}).await.expect("verify");
    let damaged: Vec<&str> = report.damaged.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(damaged, ["lon/data.af", "temperature/data.af"]);
    assert_eq!(report.segments_checked, variables);
    let lon = report
        .damaged
        .iter()
        .find(|d| d.key == "lon/data.af")
        .expect("lon");
    assert!(lon.holds.contains(&("jan".to_string(), "lon".to_string())));
}

#[tokio::test]
async fn migrate_copies_an_atlas_rust_010_store_into_ours_exactly() {
    let (dir, source, theirs) = mixed(false).await;
    let out = tempfile::tempdir().expect("temp dir");
    let dst = out.path().join("copy");
    let report = atlas_store::migrate(
        &dir.path().display().to_string(),
        &dst.display().to_string(),
        StoreConfig::default(),
        |_| {},
    )
    .await
    .expect("migrate");
    assert_eq!(report.datasets, fixtures::MIXED_LIVE.len());
    assert!(report.source_format.is_some_and(|f| f.contains("0.10")));
    let mut cells = 0;
    for ds in source.list_datasets() {
        let view = source.open_dataset(&ds).await.expect("dataset");
        for array in view.list_arrays() {
            cells += view.array_meta(&array).expect("defined").element_count();
        }
    }
    assert_eq!(report.cells_verified, cells, "every cell read back");
    let copy = Atlas::open_path(&dst).await.expect("open the copy");
    assert_eq!(copy.upstream_format(), None);
    assert_eq!(copy.list_datasets(), source.list_datasets());
    assert_eq!(
        source.verify_copy(&copy, |_| {}).await.expect("equal"),
        report.cells_verified
    );
    // And against the upstream crate itself.
    for ds in fixtures::MIXED_LIVE {
        same::<f32, f32>(
            &copy,
            &theirs,
            ds,
            "temperature",
            (vec![], vec![]),
            |a, b| a.to_bits() == b.to_bits(),
        )
        .await;
    }
}

#[tokio::test]
async fn statistics_are_used_only_when_current_and_when_the_fill_is_null_in_sql() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let mut theirs = upstream::Atlas::create_path(dir.path(), upstream::StoreConfig::default())
            .await
            .expect("create");
        let mut ds = theirs.create_dataset("d").await.expect("dataset");
        // A fill of another kind than the dtype.
        ds.define_array::<i32>(
            "sst",
            vec!["n".into()],
            vec![8],
            Some(vec![2]),
            Some(upstream::FillValue::Float(-9999.0)),
        )
        .await
        .expect("define");
        let part = atlas_store::ndarray::ArrayD::from_elem(IxDyn(&[2]), 7i32);
        ds.write_array("sst", vec![0], part.view())
            .await
            .expect("write");
        ds.define_array::<f64>("x", vec!["n".into()], vec![8], Some(vec![2]), None)
            .await
            .expect("define");
        let all = atlas_store::ndarray::ArrayD::from_elem(IxDyn(&[8]), 2.5f64);
        ds.write_array("x", vec![0], all.view())
            .await
            .expect("write");
        theirs.flush().await.expect("flush");
    }
    let stats_of = |array: &'static str| {
        let dir = dir.path().to_path_buf();
        async move {
            let ours = Atlas::open_path(&dir).await.expect("open");
            let view = ours.open_dataset("d").await.expect("d");
            let values = view
                .read_array::<f64>(array, vec![], vec![])
                .await
                .map(|a| a.map(|a| a.len()));
            (view.array_stats(array).await, values.ok().flatten())
        }
    };
    // x: current statistics, used.
    let (stats, _) = stats_of("x").await;
    let stats = stats.expect("current statistics");
    assert_eq!((stats.row_count, stats.null_count), (8, 0));

    // sst's Float fill is no NULL for an integer array, so the statistics (which count six
    // nulls) are not used.
    let ours = Atlas::open_path(dir.path()).await.expect("open");
    let view = ours.open_dataset("d").await.expect("d");
    let sst = view
        .read_array::<i32>("sst", vec![], vec![])
        .await
        .expect("reads")
        .expect("defined");
    assert_eq!(sst.len(), 8);
    assert!(view.array_stats("sst").await.is_none());

    // A layer newer than the statistics (a flush that stopped before writing them): the
    // statistics are stale and not used; the values still read.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let layer = dir.path().join("x").join("data.af");
    let bytes = std::fs::read(&layer).expect("read");
    std::fs::write(&layer, bytes).expect("rewrite");
    let (stats, values) = stats_of("x").await;
    assert!(stats.is_none(), "{stats:?}");
    assert_eq!(values, Some(8));
}
