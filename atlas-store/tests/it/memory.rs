//! Bounded memory while ingesting.

use std::sync::Arc;

use atlas_store::object_store::{memory::InMemory, path::Path};
use atlas_store::{Atlas, StoreConfig};

use crate::support::ramp;

#[tokio::test]
async fn ingest_far_past_the_budget_spills_and_keeps_pending_bytes_near_it() {
    const BUDGET: usize = 1 << 20;
    const N: usize = 128 * 1024; // one write: 512 KiB of f32
    let mem = Arc::new(InMemory::new());
    let config = StoreConfig {
        pending_budget: BUDGET,
        ..Default::default()
    };
    let mut atlas = Atlas::create(mem.clone(), Path::from("s"), config)
        .await
        .unwrap();
    for i in 0..64 {
        let ds = atlas.create_dataset(&format!("d{i}")).await.unwrap();
        ds.define_array::<f32>("v", vec!["x".into()], vec![N], Some(vec![N / 4]), None)
            .await
            .unwrap();
        ds.write_array("v", vec![0], ramp(N, i as f32).view())
            .await
            .unwrap();
    }
    let stats = atlas.write_stats();
    // 32 MiB written against a 1 MiB budget.
    assert!(stats.spills >= 20, "only {} spills", stats.spills);
    assert!(
        stats.peak_pending_bytes <= BUDGET + N * 4,
        "peak {} bytes",
        stats.peak_pending_bytes
    );
    assert_eq!(stats.commits, 0, "spilling commits nothing");

    // Spilled data is readable before the flush, and invisible to other handles.
    let ds = atlas.open_dataset("d3").await.unwrap();
    let v = ds
        .read_array::<f32>("v", vec![N - 1], vec![1])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v[[0]], (N - 1) as f32 + 3.0);
    assert!(
        Atlas::open(mem.clone(), Path::from("s"))
            .await
            .unwrap()
            .list_datasets()
            .is_empty()
    );

    atlas.flush().await.unwrap();
    let reopened = Atlas::open(mem, Path::from("s")).await.unwrap();
    assert_eq!(reopened.list_datasets().len(), 64);
    let names = reopened.list_datasets();
    let all = reopened
        .read_array_across_stacked::<f32>("v", &names, vec![0], vec![2])
        .await
        .unwrap();
    for i in 0..64 {
        assert_eq!(
            all.index_axis(atlas_store::ndarray::Axis(0), i)
                .iter()
                .cloned()
                .collect::<Vec<_>>(),
            vec![i as f32, i as f32 + 1.0]
        );
    }
}
