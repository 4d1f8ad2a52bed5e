//! Segments per flush, deletion at flush, and compaction.

use std::sync::Arc;

use atlas_store::object_store::{ObjectStore, memory::InMemory, path::Path};
use atlas_store::{Atlas, StoreConfig};
use futures::TryStreamExt;

use crate::support::{ramp, ramp_dataset};

async fn af_files(mem: &InMemory) -> (usize, u64) {
    let metas: Vec<_> = mem.list(None).try_collect().await.unwrap();
    let segs: Vec<_> = metas
        .iter()
        .filter(|m| m.location.as_ref().ends_with(".af"))
        .collect();
    (segs.len(), segs.iter().map(|m| m.size).sum())
}

#[tokio::test]
async fn a_flush_writes_one_segment_per_touched_variable_whatever_the_dataset_count() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), Path::from("s"), StoreConfig::default())
        .await
        .unwrap();
    for i in 0..1000 {
        let ds = atlas
            .create_dataset(&format!("station_{i:04}"))
            .await
            .unwrap();
        ds.define_array::<f32>("temperature", vec!["time".into()], vec![24], None, None)
            .await
            .unwrap();
        ds.write_array("temperature", vec![0], ramp(24, i as f32).view())
            .await
            .unwrap();
        ds.define_array::<i64>("time", vec!["time".into()], vec![24], None, None)
            .await
            .unwrap();
        let t =
            atlas_store::ndarray::Array::from_shape_fn(atlas_store::ndarray::IxDyn(&[24]), |i| {
                i[0] as i64
            });
        ds.write_array("time", vec![0], t.view()).await.unwrap();
    }
    atlas.flush().await.unwrap();
    assert_eq!(af_files(&mem).await.0, 2);
    assert_eq!(atlas.write_stats().segments_written, 2);

    // Touch one variable of ten datasets: one more segment, for that variable only.
    for i in 0..10 {
        let ds = atlas
            .open_dataset(&format!("station_{i:04}"))
            .await
            .unwrap();
        ds.write_array("temperature", vec![0], ramp(1, -1.0).view())
            .await
            .unwrap();
    }
    atlas.flush().await.unwrap();
    assert_eq!(af_files(&mem).await.0, 3);
    let segs = atlas.list_segments();
    assert_eq!(
        segs.iter().filter(|s| s.variable == "temperature").count(),
        2
    );
    let ds = atlas.open_dataset("station_0003").await.unwrap();
    let v = ds
        .read_array::<f32>("temperature", vec![0], vec![2])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        v.iter().cloned().collect::<Vec<_>>(),
        vec![-1.0, 4.0],
        "copy-forward kept the rest"
    );
}

#[tokio::test]
async fn deletes_take_effect_at_flush_and_compact_reclaims_their_bytes() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), Path::from("s"), StoreConfig::default())
        .await
        .unwrap();
    for i in 0..20 {
        let ds = atlas.create_dataset(&format!("d{i}")).await.unwrap();
        ds.define_array::<f64>("v", vec!["x".into()], vec![4096], Some(vec![1024]), None)
            .await
            .unwrap();
        let data =
            atlas_store::ndarray::Array::from_shape_fn(atlas_store::ndarray::IxDyn(&[4096]), |j| {
                ((j[0] * 7919 + i) % 10007) as f64
            });
        ds.write_array("v", vec![0], data.view()).await.unwrap();
        ds.define_array::<f64>("w", vec!["x".into()], vec![16], None, None)
            .await
            .unwrap();
        ds.write_array(
            "w",
            vec![0],
            data.slice_axis(
                atlas_store::ndarray::Axis(0),
                atlas_store::ndarray::Slice::from(0..16usize),
            ),
        )
        .await
        .unwrap();
        // A second flush per few datasets leaves the variable spread over several segments.
        if i % 5 == 2 {
            atlas.flush().await.unwrap();
        }
    }
    atlas.flush().await.unwrap();

    for i in 0..15 {
        atlas.delete_dataset(&format!("d{i}")).await.unwrap();
    }
    atlas
        .open_dataset("d15")
        .await
        .unwrap()
        .delete_array("w")
        .await
        .unwrap();
    // Deleted at once for this handle, but the store still holds them until the flush.
    assert!(!atlas.dataset_exists("d0"));
    assert!(
        Atlas::open(mem.clone(), Path::from("s"))
            .await
            .unwrap()
            .dataset_exists("d0")
    );
    atlas.flush().await.unwrap();
    let reopened = Atlas::open(mem.clone(), Path::from("s")).await.unwrap();
    assert_eq!(
        reopened.list_datasets(),
        vec!["d15", "d16", "d17", "d18", "d19"]
    );
    assert_eq!(
        reopened.open_dataset("d15").await.unwrap().list_arrays(),
        vec!["v"]
    );

    let (files_before, bytes_before) = af_files(&mem).await;
    // With no retention, what compaction retires goes at once.
    atlas.set_orphan_retention(std::time::Duration::ZERO);
    let report = atlas.compact().await.unwrap();
    let (files_after, bytes_after) = af_files(&mem).await;
    assert_eq!(
        files_after, 2,
        "one segment per variable after compact (was {files_before})"
    );
    assert!(
        bytes_after * 2 < bytes_before,
        "bytes on disk {bytes_before} -> {bytes_after}"
    );
    assert_eq!(report.variables_rewritten, vec!["v", "w"]);
    assert!(report.bytes_removed > 0);
    let compacted = Atlas::open(mem.clone(), Path::from("s")).await.unwrap();
    let got = compacted
        .open_dataset("d19")
        .await
        .unwrap()
        .read_array::<f64>("v", vec![4000], vec![3])
        .await
        .unwrap()
        .unwrap();
    let want: Vec<f64> = (4000..4003)
        .map(|j| ((j * 7919 + 19) % 10007) as f64)
        .collect();
    assert_eq!(got.iter().cloned().collect::<Vec<_>>(), want);
    assert_eq!(compacted.verify().await.unwrap(), 2);
}

#[tokio::test]
async fn a_reader_whose_segment_was_compacted_away_gets_a_retriable_error() {
    let (mem, mut writer) = two_segment_store().await;
    let reader = Atlas::open(mem.clone(), Path::from("s")).await.unwrap();
    // No retention: the segments the reader planned on are removed at once.
    writer.set_orphan_retention(std::time::Duration::ZERO);
    writer.compact().await.unwrap();
    let err = read_d0(&reader).await.unwrap_err();
    assert!(
        matches!(err, atlas_store::Error::SegmentGone { .. }),
        "{err}"
    );
    let fresh = Atlas::open(mem, Path::from("s")).await.unwrap();
    assert!(read_d0(&fresh).await.is_ok());
}

/// A store of two datasets `d0`, `d1` with an 8-value `v`, flushed one at a time (so `v` sits
/// in two segments), and the writer that made it.
async fn two_segment_store() -> (Arc<InMemory>, Atlas) {
    let mem = Arc::new(InMemory::new());
    let mut writer = Atlas::create(mem.clone(), Path::from("s"), StoreConfig::default())
        .await
        .unwrap();
    for i in 0..2 {
        ramp_dataset(&mut writer, &format!("d{i}"), "v", 8, 0.0).await;
        writer.flush().await.unwrap();
    }
    (mem, writer)
}

async fn read_d0(atlas: &Atlas) -> atlas_store::Result<Option<Vec<f32>>> {
    let a = atlas
        .open_dataset("d0")
        .await?
        .read_array::<f32>("v", vec![], vec![])
        .await?;
    Ok(a.map(|a| a.iter().copied().collect()))
}

#[tokio::test]
async fn compaction_keeps_what_it_retires_for_the_retention_period() {
    let (mem, mut writer) = two_segment_store().await;
    let reader = Atlas::open(mem.clone(), Path::from("s")).await.unwrap();
    let idle = Atlas::open(mem.clone(), Path::from("s")).await.unwrap();
    let retention = std::time::Duration::from_millis(300);
    writer.set_orphan_retention(retention);
    let report = writer.compact().await.unwrap();
    assert_eq!(report.variables_rewritten, vec!["v"]);
    // The two segments compaction replaced are retired, not removed.
    assert_eq!((report.segments_removed, report.retired_kept), (0, 2));
    assert_eq!(af_files(&mem).await.0, 3);
    // A reader still on the generation before the compaction keeps reading.
    let before = read_d0(&reader).await.unwrap();
    // Within the retention a vacuum keeps them too (and does not take them for orphans).
    let report = writer.vacuum().await.unwrap();
    assert_eq!((report.segments_removed, report.retired_kept), (0, 2));
    assert_eq!(read_d0(&reader).await.unwrap(), before);
    tokio::time::sleep(retention + std::time::Duration::from_millis(100)).await;
    // Past it, they go; a reader still on the old generation that had not opened them yet gets
    // a retriable error, never other data.
    let report = writer.vacuum().await.unwrap();
    assert_eq!((report.segments_removed, report.retired_kept), (2, 0));
    assert_eq!(af_files(&mem).await.0, 1);
    // Their page checksums went with them.
    let metas: Vec<_> = mem.list(None).try_collect().await.unwrap();
    let sidecars = metas
        .iter()
        .filter(|m| m.location.as_ref().ends_with(".af.sums"));
    assert_eq!(sidecars.count(), 1);
    let err = read_d0(&idle).await.unwrap_err();
    assert!(
        matches!(err, atlas_store::Error::SegmentGone { .. }),
        "{err}"
    );
    let fresh = Atlas::open(mem, Path::from("s")).await.unwrap();
    assert_eq!(read_d0(&fresh).await.unwrap(), before);
}

#[tokio::test]
async fn variables_with_non_ascii_names_compact_and_vacuum_cleanly() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), Path::from("s"), StoreConfig::default())
        .await
        .unwrap();
    for i in 0..3 {
        ramp_dataset(
            &mut atlas,
            &format!("d{i}"),
            "température [°C]",
            8,
            i as f32,
        )
        .await;
        atlas.flush().await.unwrap();
    }
    assert_eq!(af_files(&mem).await.0, 3);
    atlas.set_orphan_retention(std::time::Duration::ZERO);
    let report = atlas.compact().await.unwrap();
    assert_eq!(report.variables_rewritten, vec!["température [°C]"]);
    assert_eq!((report.segments_removed, report.orphans_kept), (3, 0));
    assert_eq!(af_files(&mem).await.0, 1);
    let report = atlas.vacuum().await.unwrap();
    assert_eq!(
        report.segments_removed, 0,
        "the live segment is not an orphan"
    );
    let reopened = Atlas::open(mem, Path::from("s")).await.unwrap();
    let v = reopened
        .open_dataset("d2")
        .await
        .unwrap()
        .read_array::<f32>("température [°C]", vec![7], vec![1])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v[[0]], 9.0);
}
