//! Stores written by atlas-rust 0.17, opened read-only. The upstream crate writes every
//! fixture and is the oracle for every answer.

use atlas_store::ndarray::{ArcArray, IxDyn};
use atlas_store::{
    ArrayElement, Atlas, Attr, Bool, DType, Error, FillValue, ReadCounter, StatValue, TimestampNs,
    count_reads,
};
use atlas_upstream_fixtures::{self as fixtures, Flag, upstream};

async fn mixed() -> (tempfile::TempDir, Atlas, upstream::Atlas) {
    let dir = tempfile::tempdir().expect("temp dir");
    fixtures::mixed_017(dir.path()).await.expect("fixture");
    let ours = Atlas::open_path(dir.path())
        .await
        .expect("opens as a store");
    let theirs = upstream::Atlas::open_path(dir.path())
        .await
        .expect("upstream opens it");
    (dir, ours, theirs)
}

/// Both readers' values of one array, compared bit for bit (NaN equals NaN).
async fn same<T, U>(
    ours: &Atlas,
    theirs: &upstream::Atlas,
    ds: &str,
    array: &str,
    region: (Vec<usize>, Vec<usize>),
    bits: impl Fn(&T, &U) -> bool,
) where
    T: ArrayElement + std::fmt::Debug,
    U: ArrayElement + std::fmt::Debug,
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
        .dataset(ds)
        .expect("their dataset")
        .read_array::<U>(array, start, shape)
        .await
        .expect("their read");
    assert_eq!(a.shape(), b.shape(), "{ds}/{array}");
    for (x, y) in a.iter().zip(b.iter()) {
        assert!(bits(x, y), "{ds}/{array}: {x:?} vs {y:?}");
    }
}

#[tokio::test]
async fn an_atlas_rust_017_collection_opens_with_the_datasets_its_footer_keeps_live() {
    let (_dir, ours, theirs) = mixed().await;
    assert_eq!(ours.list_datasets(), fixtures::MIXED_LIVE);
    assert_eq!(ours.list_datasets(), theirs.list_datasets());
    // Deleted through the mask, and never finished: neither is part of the collection,
    // although both have entries in the segments.
    assert!(!ours.dataset_exists("gone") && !ours.dataset_exists("orphan"));
    assert_eq!(
        ours.upstream_format(),
        Some("an atlas-rust 0.17 collection (data.atlas)")
    );
    assert_eq!(ours.list_arrays(), theirs.list_arrays());
}

#[tokio::test]
async fn every_array_reads_as_the_upstream_crate_reads_it() {
    let (_dir, ours, theirs) = mixed().await;
    let whole = || (vec![], vec![]);
    for ds in fixtures::MIXED_LIVE {
        let f32_bits = |a: &f32, b: &f32| a.to_bits() == b.to_bits();
        same::<f32, f32>(&ours, &theirs, ds, "temperature", whole(), f32_bits).await;
        let region = (vec![1, 2], vec![3, 3]);
        same::<f32, f32>(&ours, &theirs, ds, "temperature", region, f32_bits).await;
        same::<f64, f64>(&ours, &theirs, ds, "lat", whole(), |a, b| a == b).await;
        same::<f64, f64>(&ours, &theirs, ds, "lon", whole(), |a, b| a == b).await;
        same::<String, String>(&ours, &theirs, ds, "station", whole(), |a, b| a == b).await;
        same::<TimestampNs, TimestampNs>(&ours, &theirs, ds, "time", whole(), |a, b| a == b).await;
    }
    same::<Bool, Flag>(&ours, &theirs, "jan", "flag", (vec![], vec![]), |a, b| {
        a.0 == b.0
    })
    .await;
    same::<u64, u64>(&ours, &theirs, "jan", "code", (vec![], vec![]), |a, b| {
        a == b
    })
    .await;
    same::<i16, i16>(&ours, &theirs, "jan", "level", (vec![], vec![]), |a, b| {
        a == b
    })
    .await;
}

#[tokio::test]
async fn definitions_and_attributes_come_from_the_segments_converted_to_ours() {
    let (_dir, ours, theirs) = mixed().await;
    let jan = ours.open_dataset("jan").await.expect("jan");
    let t = jan.array_meta("temperature").expect("temperature");
    assert_eq!(t.dtype, DType::Float32);
    assert_eq!(
        (t.dims.clone(), t.shape.clone()),
        (vec!["lat".to_string(), "lon".to_string()], vec![4, 6])
    );
    assert_eq!(t.chunk_shape, vec![2, 3]);
    assert!(matches!(t.fill_value, Some(FillValue::Float(x)) if x.is_nan()));
    let scalar = jan.array_meta("station").expect("station");
    assert!(scalar.shape.is_empty() && scalar.dims.is_empty());
    let layout = theirs
        .dataset("jan")
        .expect("jan")
        .array_layout("lon")
        .await
        .expect("layout");
    let lon = jan.array_meta("lon").expect("lon");
    assert_eq!(lon.chunk_shape, layout.chunk_shape().to_vec());

    let attrs: std::collections::HashMap<String, Attr> = jan.attributes().into_iter().collect();
    assert_eq!(attrs["platform"], Attr::String("float jan".into()));
    assert_eq!(attrs["cycle"], Attr::Int64(1));
    // Beyond i64: kept exactly, as its decimal string.
    assert_eq!(attrs["serial"], Attr::String(u64::MAX.to_string()));
    assert_eq!(attrs["ratio"], Attr::Float64(0.5));
    assert_eq!(attrs["qc"], Attr::Bool(true));
    assert_eq!(attrs["levels"], Attr::Int64List(vec![1, 2, 3]));
    assert_eq!(attrs["key"], Attr::String("dead".into()));
    let names: Vec<String> = jan.attributes().into_iter().map(|(k, _)| k).collect();
    let theirs_names: Vec<String> = theirs
        .dataset("jan")
        .expect("jan")
        .attributes()
        .await
        .expect("their attributes")
        .keys()
        .cloned()
        .collect();
    assert_eq!(names, theirs_names, "the order the writer set them in");
    let array_attrs: std::collections::HashMap<String, Attr> = jan
        .array_attributes("temperature")
        .expect("temperature")
        .into_iter()
        .collect();
    assert_eq!(array_attrs["units"], Attr::String("degC".into()));
    assert_eq!(array_attrs["valid_max"], Attr::Float64(40.5));
}

#[tokio::test]
async fn statistics_count_unwritten_cells_as_nulls_only_when_a_fill_value_makes_them_null() {
    let (_dir, ours, _theirs) = mixed().await;
    let stats = |ds: &'static str| {
        let ours = &ours;
        async move {
            ours.open_dataset(ds)
                .await
                .expect("dataset")
                .array_stats("temperature")
                .await
                .expect("stats")
        }
    };
    // jan: all written, fill NaN; one cell is NaN, so one null.
    let jan = stats("jan").await;
    assert_eq!((jan.row_count, jan.null_count), (24, 1));
    // feb: the second chunk row never written; fill -999, so those 12 cells are nulls.
    let feb = stats("feb").await;
    assert_eq!((feb.row_count, feb.null_count), (24, 12));
    // mar: one chunk of six written, no fill: the other 18 cells read as 0.0, values.
    let mar = stats("mar").await;
    assert_eq!((mar.row_count, mar.null_count), (24, 0));
    assert_eq!(mar.min, Some(StatValue::Float(0.0)));
    assert!(matches!(mar.max, Some(StatValue::Float(x)) if x > 21.0));
    let values = ours
        .open_dataset("mar")
        .await
        .expect("mar")
        .read_array::<f32>("temperature", vec![], vec![])
        .await
        .expect("read")
        .expect("defined");
    assert_eq!(values.iter().filter(|&&v| v == 0.0).count(), 18);
}

#[tokio::test]
async fn a_region_read_decodes_only_the_chunks_it_overlaps() {
    let dir = tempfile::tempdir().expect("temp dir");
    fixtures::mixed_017(dir.path()).await.expect("fixture");
    let fresh = Atlas::open_path(dir.path()).await.expect("open");
    let jan = fresh.open_dataset("jan").await.expect("jan");
    let counter = ReadCounter::new();
    let one = count_reads(
        &counter,
        jan.read_array::<f32>("temperature", vec![2, 3], vec![2, 3]),
    )
    .await
    .expect("read")
    .expect("defined");
    assert_eq!(one.len(), 6);
    // The fixture gives every chunk a block of its own: one chunk of the four, one block.
    assert_eq!(fresh.blocks_decoded(), 1);
    let one_bytes = counter.bytes();
    let all = ReadCounter::new();
    count_reads(&all, jan.read_array::<f32>("temperature", vec![], vec![]))
        .await
        .expect("read")
        .expect("defined");
    assert_eq!(
        fresh.blocks_decoded(),
        4,
        "three more chunks, the first cached"
    );
    // The first block read brought the small segment's bytes with it (one I/O slab), so
    // the whole read needed no request; neither read the whole container.
    let container = std::fs::metadata(dir.path().join("data.atlas"))
        .expect("size")
        .len();
    assert!(
        one_bytes > 0 && one_bytes < container,
        "{one_bytes} of {container}"
    );
    assert_eq!(all.bytes(), 0);
}

#[tokio::test]
async fn prefetch_loads_the_blocks_of_a_region_ahead_of_its_read() {
    let (_dir, ours, _theirs) = mixed().await;
    let wanted = vec![("temperature", "jan", vec![0..2, 0..6])];
    let loaded = ours.prefetch(&wanted).await.expect("prefetch");
    assert_eq!(loaded, 2, "two chunks of the first chunk row");
    let before = ours.blocks_decoded();
    ours.open_dataset("jan")
        .await
        .expect("jan")
        .read_array::<f32>("temperature", vec![0, 0], vec![2, 6])
        .await
        .expect("read");
    assert_eq!(ours.blocks_decoded(), before, "served from the cache");
}

#[tokio::test]
async fn every_write_to_an_upstream_store_is_refused_naming_its_format() {
    let (dir, mut ours, _theirs) = mixed().await;
    let refused = |e: Error| {
        let msg = e.to_string();
        assert!(matches!(e, Error::ReadOnlyFormat { .. }), "{msg}");
        assert!(
            msg.contains("atlas-rust 0.17") && msg.contains(&dir.path().display().to_string()),
            "{msg}"
        );
        msg
    };
    let msg = refused(ours.create_dataset("new").await.expect_err("read-only"));
    assert!(msg.starts_with("cannot create a dataset:"), "{msg}");
    refused(ours.delete_dataset("jan").await.expect_err("read-only"));
    refused(ours.compact().await.expect_err("read-only"));
    refused(ours.vacuum().await.expect_err("read-only"));
    refused(ours.vacuum_plan().await.expect_err("read-only"));
    refused(ours.checkpoint().await.expect_err("read-only"));
    let jan = ours.open_dataset("jan").await.expect("jan");
    refused(
        jan.set_attribute("k", Attr::Int64(1))
            .expect_err("read-only"),
    );
    refused(jan.delete_array("lat").await.expect_err("read-only"));
    refused(
        jan.define_array::<f32>("x", vec!["a".into()], vec![1], None, None)
            .await
            .expect_err("read-only"),
    );
    let v = atlas_store::ndarray::ArrayD::from_elem(IxDyn(&[1]), 1.0f64);
    refused(
        jan.write_array("lat", vec![0], v.view())
            .await
            .expect_err("read-only"),
    );
    ours.flush()
        .await
        .expect("nothing to flush is not an error");
    assert!(!ours.refresh().await.expect("refresh"));
    // Nothing was written: the upstream crate still reads the same collection.
    let again = upstream::Atlas::open_path(dir.path())
        .await
        .expect("still readable");
    assert_eq!(again.list_datasets(), fixtures::MIXED_LIVE);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["data.atlas", "deleted.mask"]);
}

#[tokio::test]
async fn creating_a_store_where_an_upstream_collection_is_fails_and_keeps_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    fixtures::mixed_017(dir.path()).await.expect("fixture");
    let err = Atlas::create_path(dir.path(), atlas_store::StoreConfig::default())
        .await
        .expect_err("a store is there");
    assert!(matches!(err, Error::StoreExists { .. }), "{err}");
    assert_eq!(
        Atlas::open_path(dir.path())
            .await
            .expect("open")
            .list_datasets(),
        fixtures::MIXED_LIVE
    );
}

#[tokio::test]
async fn a_truncated_collection_is_an_error_naming_the_store_never_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    fixtures::mixed_017(dir.path()).await.expect("fixture");
    let path = dir.path().join("data.atlas");
    let bytes = std::fs::read(&path).expect("read");
    for cut in [bytes.len() - 3, bytes.len() / 2, 9] {
        std::fs::write(&path, &bytes[..cut]).expect("truncate");
        let err = Atlas::open_path(dir.path()).await.expect_err("damaged");
        let msg = err.to_string();
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    }
    // A damaged segment inside an intact container: the footer still decodes, the read fails.
    let mut damaged = bytes.clone();
    for b in &mut damaged[16..200] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &damaged).expect("damage");
    if let Ok(atlas) = Atlas::open_path(dir.path()).await {
        for ds in atlas.list_datasets() {
            let view = atlas.open_dataset(&ds).await.expect("dataset");
            for array in view.list_arrays() {
                // Every read either succeeds or errors; none panics.
                let _ = view.read_array::<f32>(&array, vec![], vec![]).await;
            }
        }
    }
}

#[tokio::test]
async fn an_array_of_ours_written_in_part_without_a_fill_counts_its_zeros_as_values() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut atlas = Atlas::create_path(dir.path().join("s"), atlas_store::StoreConfig::default())
        .await
        .expect("create");
    let ds = atlas.create_dataset("d").await.expect("dataset");
    ds.define_array::<i32>("v", vec!["x".into()], vec![10], Some(vec![2]), None)
        .await
        .expect("define");
    let part = atlas_store::ndarray::ArrayD::from_elem(IxDyn(&[2]), 5i32);
    ds.write_array("v", vec![4], part.view())
        .await
        .expect("write");
    atlas.flush().await.expect("flush");
    let atlas = Atlas::open_path(dir.path().join("s")).await.expect("open");
    let stats = atlas
        .open_dataset("d")
        .await
        .expect("d")
        .array_stats("v")
        .await
        .expect("stats");
    assert_eq!((stats.row_count, stats.null_count), (10, 0));
    assert_eq!(
        (stats.min, stats.max),
        (Some(StatValue::Int(0)), Some(StatValue::Int(5)))
    );
}

#[tokio::test]
async fn a_damaged_atlas_rust_010_registry_is_named_as_such_rather_than_called_corrupt() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A 0.10 registry's shape, with a dtype atlas-rust 0.10 does not know.
    let registry = r#"{"version":1,"codec":"Zstd","datasets":{"jan":{"arrays":{"temperature":{"dtype":{"type":"float128"},"shape":[4,8],"chunk_shape":[2,4],"dimension_names":["lat","lon"],"codec":"Zstd"}},"attributes":{"month":1}}}}"#;
    std::fs::write(dir.path().join("atlas.json"), registry).expect("write");
    let err = Atlas::open_path(dir.path())
        .await
        .expect_err("not readable");
    assert!(matches!(err, Error::Upstream { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("atlas-rust 0.10") && msg.contains(&dir.path().display().to_string()),
        "{msg}"
    );
    // A damaged catalog of ours is still called corrupt.
    std::fs::write(
        dir.path().join("atlas.json"),
        r#"{"atlas_catalog":1,"crc32":0,"catalog":{}}"#,
    )
    .expect("write");
    let err = Atlas::open_path(dir.path()).await.expect_err("corrupt");
    assert!(matches!(err, Error::CorruptCatalog { .. }), "{err}");
}
