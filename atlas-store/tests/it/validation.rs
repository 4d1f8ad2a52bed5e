//! Bad input gets a clear error and changes nothing.

use std::sync::Arc;

use atlas_store::ndarray::{Array, IxDyn};
use atlas_store::object_store::{ObjectStore, ObjectStoreExt, memory::InMemory, path::Path};
use atlas_store::{Atlas, Error, FillValue, StoreConfig};

use futures::TryStreamExt;

use crate::support::{ramp, snapshot};

async fn store_with_one_array() -> (Arc<InMemory>, Atlas) {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), Path::from("s"), StoreConfig::default())
        .await
        .unwrap();
    let ds = atlas.create_dataset("d").await.unwrap();
    ds.define_array::<f32>(
        "t",
        vec!["x".into(), "y".into()],
        vec![4, 5],
        Some(vec![2, 2]),
        None,
    )
    .await
    .unwrap();
    ds.write_array(
        "t",
        vec![0, 0],
        Array::from_elem(IxDyn(&[4, 5]), 1.0f32).view(),
    )
    .await
    .unwrap();
    atlas.flush().await.unwrap();
    (mem, atlas)
}

#[tokio::test]
async fn bad_names_are_rejected_and_never_touch_the_store() {
    let (mem, mut atlas) = store_with_one_array().await;
    let before = snapshot(&atlas).await;
    for bad in [
        "",
        ".",
        "..",
        "../escape",
        "a/b",
        "_log",
        "bell\u{7}",
        "back\\slash",
    ] {
        let err = atlas.create_dataset(bad).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidName {
                    kind: "dataset",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
        let ds = atlas.open_dataset("d").await.unwrap();
        let err = ds
            .define_array::<f32>(bad, vec![], vec![], None, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { kind: "array", .. }),
            "{bad:?}: {err}"
        );
    }
    atlas.flush().await.unwrap();
    assert_eq!(
        atlas.generation(),
        1,
        "rejected input must not make a commit"
    );
    assert_eq!(snapshot(&atlas).await, before);
    let paths: Vec<String> = futures::TryStreamExt::try_collect::<Vec<_>>(mem.list(None))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .collect();
    assert!(
        paths.iter().all(|p| p.starts_with("s/")),
        "something escaped the store: {paths:?}"
    );
}

#[tokio::test]
async fn bad_definitions_writes_and_reads_are_rejected_and_change_nothing() {
    let (_mem, mut atlas) = store_with_one_array().await;
    let before = snapshot(&atlas).await;
    let ds = atlas.open_dataset("d").await.unwrap();

    let e = ds
        .write_array(
            "t",
            vec![0, 0],
            Array::from_elem(IxDyn(&[4, 5]), 1.0f64).view(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    assert!(ds.read_array::<i32>("t", vec![], vec![]).await.is_err());
    let e = ds
        .write_array(
            "t",
            vec![3, 4],
            Array::from_elem(IxDyn(&[2, 1]), 1.0f32).view(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidArray { .. }) && e.to_string().contains("out of bounds"),
        "{e}"
    );
    let e = ds
        .write_array(
            "t",
            vec![usize::MAX, 0],
            Array::from_elem(IxDyn(&[2, 1]), 1.0f32).view(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArray { .. }), "{e}");
    let e = ds
        .write_array("t", vec![0], ramp(2, 0.0).view())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("dimensions"), "{e}");
    let e = ds
        .read_array::<f32>("t", vec![0, 4], vec![1, 2])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("out of bounds"), "{e}");
    let e = ds
        .write_array("nope", vec![0], ramp(2, 0.0).view())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::ArrayNotFound { .. }) && e.to_string().contains("arrays: t"),
        "{e}"
    );

    let huge = vec![u32::MAX as usize, u32::MAX as usize, u32::MAX as usize];
    let e = ds
        .define_array::<u8>(
            "huge",
            vec!["a".into(), "b".into(), "c".into()],
            huge,
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("more elements"), "{e}");
    let e = ds
        .define_array::<u8>(
            "toolong",
            vec!["a".into()],
            vec![u32::MAX as usize + 1],
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArray { .. }), "{e}");
    let e = ds
        .define_array::<u8>("rank", vec!["a".into()], vec![4], Some(vec![2, 2]), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("rank"), "{e}");
    let e = ds
        .define_array::<u8>("dims", vec![], vec![4], None, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("dimension names"), "{e}");
    let e = ds
        .define_array::<u8>("zero", vec!["a".into()], vec![4], Some(vec![0]), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("extent 0"), "{e}");
    let e = ds
        .define_array::<i32>(
            "fill",
            vec!["a".into()],
            vec![4],
            None,
            Some(FillValue::Float(1.0)),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("fill value"), "{e}");
    let e = ds
        .define_array::<f32>("t", vec!["a".into()], vec![4], None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ArrayExists { .. }), "{e}");
    let e = atlas.create_dataset("d").await.unwrap_err();
    assert!(matches!(e, Error::DatasetExists { .. }), "{e}");
    let e = atlas.open_dataset("missing").await.unwrap_err();
    assert!(e.to_string().contains("\"missing\""), "{e}");

    assert_eq!(ds.list_arrays(), vec!["t"]);
    atlas.flush().await.unwrap();
    assert_eq!(
        atlas.generation(),
        1,
        "rejected input must not make a commit"
    );
    assert_eq!(snapshot(&atlas).await, before);
}

#[tokio::test]
async fn opening_a_missing_or_creating_an_existing_store_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Atlas::open_path(dir.path().join("nowhere"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::StoreNotFound { .. }) && e.to_string().contains("nowhere"),
        "{e}"
    );
    let e = Atlas::open_path(dir.path()).await.unwrap_err();
    assert!(matches!(e, Error::StoreNotFound { .. }), "{e}");
    let mut atlas = Atlas::create_path(dir.path().join("s"), StoreConfig::default())
        .await
        .unwrap();
    atlas.create_dataset("keep").await.unwrap();
    atlas.flush().await.unwrap();
    let e = Atlas::create_path(dir.path().join("s"), StoreConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::StoreExists { .. }), "{e}");
    assert!(
        Atlas::open_path(dir.path().join("s"))
            .await
            .unwrap()
            .dataset_exists("keep")
    );
}

#[tokio::test]
async fn a_corrupted_or_truncated_catalog_or_segment_is_reported_by_path() {
    let (mem, _atlas) = store_with_one_array().await;
    let segment = mem.list(Some(&Path::from("s/t"))).next_meta().await;
    // The catalog is the newest checkpoint plus the log after it: damage to either is named.
    let checkpoint = mem
        .list(Some(&Path::from("s/_checkpoint")))
        .next_meta()
        .await;
    let log = mem
        .list(Some(&Path::from("s/_log")))
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .max_by_key(|m| m.location.to_string())
        .unwrap();
    for root in [checkpoint.location, log.location] {
        let good = mem.get(&root).await.unwrap().bytes().await.unwrap();
        // A flipped byte inside the payload, then a truncation.
        let mut bad = good.to_vec();
        let at = bad.len() - 10;
        bad[at] ^= 0x01;
        mem.put(&root, bad.into()).await.unwrap();
        let e = Atlas::open(mem.clone(), Path::from("s")).await.unwrap_err();
        assert!(
            matches!(e, Error::CorruptCatalog { .. }) && e.to_string().contains(root.as_ref()),
            "{e}"
        );
        mem.put(&root, good.slice(..good.len() / 2).into())
            .await
            .unwrap();
        let e = Atlas::open(mem.clone(), Path::from("s")).await.unwrap_err();
        assert!(matches!(e, Error::CorruptCatalog { .. }), "{e}");
        mem.put(&root, good.into()).await.unwrap();
    }

    // Segment: truncated, then same size with a flipped byte.
    let seg_bytes = mem
        .get(&segment.location)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    mem.put(
        &segment.location,
        seg_bytes.slice(..seg_bytes.len() - 5).into(),
    )
    .await
    .unwrap();
    let atlas = Atlas::open(mem.clone(), Path::from("s")).await.unwrap();
    let e = atlas
        .open_dataset("d")
        .await
        .unwrap()
        .read_array::<f32>("t", vec![], vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::CorruptSegment { .. })
            && e.to_string().contains(segment.location.as_ref()),
        "{e}"
    );
    let mut flipped = seg_bytes.to_vec();
    flipped[seg_bytes.len() / 3] ^= 0xff;
    mem.put(&segment.location, flipped.into()).await.unwrap();
    let atlas = Atlas::open(mem.clone(), Path::from("s")).await.unwrap();
    let e = atlas.verify().await.unwrap_err();
    assert!(
        matches!(e, Error::CorruptSegment { .. }) && e.to_string().contains("CRC"),
        "{e}"
    );
}

trait NextMeta {
    async fn next_meta(self) -> atlas_store::object_store::ObjectMeta;
}

impl NextMeta
    for futures::stream::BoxStream<
        'static,
        atlas_store::object_store::Result<atlas_store::object_store::ObjectMeta>,
    >
{
    async fn next_meta(mut self) -> atlas_store::object_store::ObjectMeta {
        futures::StreamExt::next(&mut self).await.unwrap().unwrap()
    }
}
