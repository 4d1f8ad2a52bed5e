//! The store API round-trips every dtype, shape and attribute kind.

use std::sync::Arc;

use atlas_store::ndarray::{Array, IxDyn, arr0};
use atlas_store::object_store::{memory::InMemory, path::Path};
use atlas_store::{
    Atlas, Attr, Bool, Codec, DType, FillValue, MetaFormat, StatValue, StoreConfig, TimestampNs,
};

use crate::support::{ramp, ramp_dataset};

#[tokio::test]
async fn every_dtype_round_trips_through_flush_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut atlas = Atlas::create_path(dir.path().join("s"), StoreConfig::default())
        .await
        .unwrap();
    let ds = atlas.create_dataset("d").await.unwrap();
    macro_rules! put {
        ($name:literal, $t:ty, $vals:expr) => {{
            let vals: Vec<$t> = $vals;
            ds.define_array::<$t>($name, vec!["i".into()], vec![vals.len()], None, None)
                .await
                .unwrap();
            let a = Array::from_shape_vec(IxDyn(&[vals.len()]), vals.clone()).unwrap();
            ds.write_array($name, vec![0], a.view()).await.unwrap();
            vals
        }};
    }
    let b = put!("b", Bool, vec![Bool(true), Bool(false), Bool(true)]);
    let i8s = put!("i8", i8, vec![-128, 0, 127]);
    let i16s = put!("i16", i16, vec![-3, 0, 3]);
    let i32s = put!("i32", i32, vec![i32::MIN, 7, i32::MAX]);
    let i64s = put!("i64", i64, vec![i64::MIN, 0, i64::MAX]);
    let u8s = put!("u8", u8, vec![0, 1, 255]);
    let u16s = put!("u16", u16, vec![0, 1, 65535]);
    let u32s = put!("u32", u32, vec![0, 1, u32::MAX]);
    let u64s = put!("u64", u64, vec![0, 1, u64::MAX]);
    let f32s = put!("f32", f32, vec![-1.5, 0.0, 3.25]);
    let f64s = put!("f64", f64, vec![-1e300, 0.1, 1e300]);
    let ts = put!(
        "ts",
        TimestampNs,
        vec![TimestampNs(0), TimestampNs(1_700_000_000_000_000_000)]
    );
    let s = put!(
        "s",
        String,
        vec!["alpha".into(), "".into(), "ünïcode".into()]
    );
    let bin = put!("bin", Vec<u8>, vec![vec![0, 1], vec![], vec![255]]);
    atlas.flush().await.unwrap();

    let atlas = Atlas::open_path(dir.path().join("s")).await.unwrap();
    let ds = atlas.open_dataset("d").await.unwrap();
    macro_rules! check {
        ($name:literal, $t:ty, $vals:expr) => {{
            let got = ds
                .read_array::<$t>($name, vec![], vec![])
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got.iter().cloned().collect::<Vec<$t>>(), $vals, "{}", $name);
        }};
    }
    check!("b", Bool, b);
    check!("i8", i8, i8s);
    check!("i16", i16, i16s);
    check!("i32", i32, i32s);
    check!("i64", i64, i64s);
    check!("u8", u8, u8s);
    check!("u16", u16, u16s);
    check!("u32", u32, u32s);
    check!("u64", u64, u64s);
    check!("f32", f32, f32s);
    check!("f64", f64, f64s);
    check!("ts", TimestampNs, ts);
    check!("s", String, s);
    check!("bin", Vec<u8>, bin);
    assert_eq!(ds.array_meta("ts").unwrap().dtype, DType::TimestampNs);
}

#[tokio::test]
async fn scalars_and_zero_length_axes_work() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), Path::from("s"), StoreConfig::default())
        .await
        .unwrap();
    let ds = atlas.create_dataset("d").await.unwrap();
    ds.define_array::<f64>("scalar", vec![], vec![], None, None)
        .await
        .unwrap();
    ds.write_array("scalar", vec![], arr0(2.5).into_dyn().view())
        .await
        .unwrap();
    ds.define_array::<f32>(
        "history",
        vec!["n_history".into(), "x".into()],
        vec![0, 3],
        None,
        None,
    )
    .await
    .unwrap();
    atlas.flush().await.unwrap();

    let atlas = Atlas::open(mem, Path::from("s")).await.unwrap();
    let ds = atlas.open_dataset("d").await.unwrap();
    let s = ds
        .read_array::<f64>("scalar", vec![], vec![])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.shape(), &[] as &[usize]);
    assert_eq!(s[IxDyn(&[])], 2.5);
    let h = ds
        .read_array::<f32>("history", vec![], vec![])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.shape(), &[0, 3]);
    assert_eq!(ds.array_stats("scalar").await.unwrap().row_count, 1);
}

#[tokio::test]
async fn writes_are_readable_before_flush_and_stats_follow_the_flush() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), Path::from("s"), StoreConfig::default())
        .await
        .unwrap();
    let ds = atlas.create_dataset("d").await.unwrap();
    ds.define_array::<f32>(
        "t",
        vec!["x".into()],
        vec![10],
        Some(vec![4]),
        Some(FillValue::Float(-999.0)),
    )
    .await
    .unwrap();
    ds.write_array("t", vec![2], ramp(3, 10.0).view())
        .await
        .unwrap();
    let before = ds
        .read_array::<f32>("t", vec![], vec![])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        before.iter().cloned().collect::<Vec<_>>(),
        vec![
            -999.0, -999.0, 10.0, 11.0, 12.0, -999.0, -999.0, -999.0, -999.0, -999.0
        ]
    );
    assert!(
        ds.array_stats("t").await.is_none(),
        "no stats before the first flush"
    );
    atlas.flush().await.unwrap();
    let s = ds.array_stats("t").await.unwrap();
    assert_eq!(
        (s.min, s.max),
        (Some(StatValue::Float(10.0)), Some(StatValue::Float(12.0)))
    );
    assert_eq!((s.null_count, s.row_count), (7, 10));

    // A partial overwrite after the flush reads merged with the flushed bytes, then persists.
    ds.write_array("t", vec![4], ramp(2, 50.0).view())
        .await
        .unwrap();
    let merged: Vec<f32> = ds
        .read_array::<f32>("t", vec![1], vec![5])
        .await
        .unwrap()
        .unwrap()
        .iter()
        .cloned()
        .collect();
    assert_eq!(merged, vec![-999.0, 10.0, 11.0, 50.0, 51.0]);
    atlas.flush().await.unwrap();
    let reopened = Atlas::open(mem, Path::from("s")).await.unwrap();
    let ds2 = reopened.open_dataset("d").await.unwrap();
    let again: Vec<f32> = ds2
        .read_array::<f32>("t", vec![1], vec![5])
        .await
        .unwrap()
        .unwrap()
        .iter()
        .cloned()
        .collect();
    assert_eq!(again, merged);
    let s = ds2.array_stats("t").await.unwrap();
    assert_eq!((s.max, s.null_count), (Some(StatValue::Float(51.0)), 6));
}

#[tokio::test]
async fn attributes_of_every_kind_persist_in_order() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), Path::from("s"), StoreConfig::default())
        .await
        .unwrap();
    let ds = atlas.create_dataset("d").await.unwrap();
    let attrs = vec![
        ("title".to_string(), Attr::String("ERSST".into())),
        ("flag".to_string(), Attr::Bool(true)),
        ("n".to_string(), Attr::Int64(-4)),
        ("scale".to_string(), Attr::Float64(f64::INFINITY)),
        (
            "when".to_string(),
            Attr::TimestampNanoseconds(1_600_000_000_000_000_000),
        ),
        ("levels".to_string(), Attr::Int64List(vec![1, 2, 3])),
        ("range".to_string(), Attr::Float64List(vec![-2.0, 35.5])),
        (
            "names".to_string(),
            Attr::StringList(vec!["a".into(), "b".into()]),
        ),
    ];
    for (k, v) in &attrs {
        ds.set_attribute(k, v.clone()).unwrap();
    }
    ds.define_array::<f32>("sst", vec!["x".into()], vec![2], None, None)
        .await
        .unwrap();
    ds.set_array_attribute("sst", "units", Attr::String("degC".into()))
        .unwrap();
    ds.set_array_attribute("sst", "_FillValue", Attr::Float64(f64::NAN))
        .unwrap();
    atlas.flush().await.unwrap();

    let atlas = Atlas::open(mem, Path::from("s")).await.unwrap();
    let ds = atlas.open_dataset("d").await.unwrap();
    assert_eq!(ds.attributes(), attrs);
    let array_attrs = ds.array_attributes("sst").unwrap();
    assert_eq!(
        array_attrs[0],
        ("units".to_string(), Attr::String("degC".into()))
    );
    assert!(matches!(array_attrs[1].1, Attr::Float64(x) if x.is_nan()));
    assert_eq!(ds.get_attribute("n"), Some(Attr::Int64(-4)));
}

#[tokio::test]
async fn every_catalog_format_and_codec_reopens_without_config() {
    for meta_format in [MetaFormat::Json, MetaFormat::MsgPack] {
        for meta_compression in [Codec::Uncompressed, Codec::Zstd, Codec::Lz4] {
            for codec in [Codec::Zstd, Codec::Lz4, Codec::Uncompressed] {
                let mem = Arc::new(InMemory::new());
                let config = StoreConfig {
                    codec,
                    meta_format,
                    meta_compression,
                    ..Default::default()
                };
                let mut atlas = Atlas::create(mem.clone(), Path::from("s"), config)
                    .await
                    .unwrap();
                let ds = atlas.create_dataset("d").await.unwrap();
                ds.define_array::<f32>("v", vec!["x".into()], vec![100], Some(vec![30]), None)
                    .await
                    .unwrap();
                ds.write_array("v", vec![0], ramp(100, 0.0).view())
                    .await
                    .unwrap();
                atlas.flush().await.unwrap();
                let atlas = Atlas::open(mem, Path::from("s")).await.unwrap();
                let got = atlas
                    .open_dataset("d")
                    .await
                    .unwrap()
                    .read_array::<f32>("v", vec![95], vec![5])
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    got.iter().cloned().collect::<Vec<_>>(),
                    vec![95.0, 96.0, 97.0, 98.0, 99.0],
                    "{meta_format:?}/{meta_compression:?}/{codec:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn listing_keeps_insertion_order_and_sorts_variables() {
    let dir = tempfile::tempdir().unwrap();
    let mut atlas = Atlas::create_path(dir.path().join("a/b/c"), StoreConfig::default())
        .await
        .unwrap();
    for name in ["zeta", "alpha", "mid"] {
        let ds = atlas.create_dataset(name).await.unwrap();
        ds.define_array::<u8>(&format!("v_{name}"), vec![], vec![], None, None)
            .await
            .unwrap();
    }
    assert_eq!(atlas.list_datasets(), vec!["zeta", "alpha", "mid"]);
    assert_eq!(atlas.list_arrays(), vec!["v_alpha", "v_mid", "v_zeta"]);
    assert!(atlas.dataset_exists("mid") && !atlas.dataset_exists("nope"));
    atlas.flush().await.unwrap();
    let atlas = Atlas::open_path(dir.path().join("a/b/c")).await.unwrap();
    assert_eq!(atlas.list_datasets(), vec!["zeta", "alpha", "mid"]);
}

#[tokio::test]
async fn reads_across_datasets_stack_in_request_order() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem, Path::from("s"), StoreConfig::default())
        .await
        .unwrap();
    let mut names = Vec::new();
    for i in 0..5 {
        let name = format!("d{i}");
        ramp_dataset(&mut atlas, &name, "v", 4, 10.0 * i as f32).await;
        names.push(name);
    }
    atlas.create_dataset("other").await.unwrap();
    atlas.flush().await.unwrap();
    names.reverse();
    let stacked = atlas
        .read_array_across_stacked::<f32>("v", &names, vec![1], vec![2])
        .await
        .unwrap();
    assert_eq!(stacked.shape(), &[5, 2]);
    assert_eq!(
        stacked
            .index_axis(atlas_store::ndarray::Axis(0), 0)
            .iter()
            .cloned()
            .collect::<Vec<_>>(),
        vec![41.0, 42.0]
    );
    assert_eq!(
        stacked
            .index_axis(atlas_store::ndarray::Axis(0), 4)
            .iter()
            .cloned()
            .collect::<Vec<_>>(),
        vec![1.0, 2.0]
    );
    let across = atlas
        .read_array_across::<f32>("v", &["d0".into(), "other".into()], vec![], vec![])
        .await
        .unwrap();
    assert!(across[0].is_some() && across[1].is_none());
    let err = atlas
        .read_array_across_stacked::<f32>("v", &["d0".into(), "other".into()], vec![], vec![])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("other"), "{err}");
}

#[tokio::test]
async fn a_prefetch_decodes_each_needed_block_once_and_the_reads_after_it_decode_nothing() {
    let mem = Arc::new(InMemory::new());
    let prefix = Path::from("s");
    let mut atlas = Atlas::create(mem.clone(), prefix.clone(), StoreConfig::default())
        .await
        .unwrap();
    // Four datasets of 200,000 f32 in chunks of 20,000: about 3 MB, a dozen blocks.
    for d in 0..4 {
        let ds = atlas.create_dataset(&format!("d{d}")).await.unwrap();
        ds.define_array::<f32>(
            "v",
            vec!["x".into()],
            vec![200_000],
            Some(vec![20_000]),
            None,
        )
        .await
        .unwrap();
        let a = Array::from_shape_fn(IxDyn(&[200_000]), |i| (i[0] * 7 + d) as f32);
        ds.write_array("v", vec![0], a.view()).await.unwrap();
    }
    atlas.flush().await.unwrap();

    // The first chunk of d0 needs one block.
    let fresh = Atlas::open(mem.clone(), prefix.clone()).await.unwrap();
    let first_chunk: Vec<std::ops::Range<usize>> = std::iter::once(0..10).collect();
    let asked = fresh.prefetch(&[("v", "d0", first_chunk)]).await.unwrap();
    assert_eq!((asked, fresh.blocks_decoded()), (1, 1));

    // Everything: each block decoded once, and the reads that follow decode nothing more.
    let fresh = Atlas::open(mem, prefix).await.unwrap();
    let wanted: Vec<(&str, String, Vec<std::ops::Range<usize>>)> =
        (0..4).map(|d| ("v", format!("d{d}"), Vec::new())).collect();
    let asked = fresh.prefetch(&wanted).await.unwrap();
    assert!(asked > 4, "{asked} blocks");
    assert_eq!(fresh.blocks_decoded(), asked as u64);
    // Asked again, nothing is loaded: every block is cached.
    assert_eq!(fresh.prefetch(&wanted).await.unwrap(), 0);
    for d in 0..4 {
        let v = fresh
            .open_dataset(&format!("d{d}"))
            .await
            .unwrap()
            .read_array::<f32>("v", vec![], vec![])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v[[199_999]], (199_999 * 7 + d) as f32);
    }
    assert_eq!(
        fresh.blocks_decoded(),
        asked as u64,
        "the reads decoded again"
    );
    // Unknown datasets and arrays are skipped, not errors.
    let none: &[(&str, &str, Vec<std::ops::Range<usize>>)] =
        &[("v", "nope", vec![]), ("w", "d0", vec![])];
    assert_eq!(fresh.prefetch(none).await.unwrap(), 0);
}
