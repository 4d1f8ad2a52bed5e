//! Planning metadata without per-dataset I/O, and parallel reads across datasets.

use std::sync::Arc;
use std::time::Duration;

use atlas_store::object_store::{memory::InMemory, path::Path};
use atlas_store::{Atlas, FillValue, StatValue, StoreConfig};

use crate::support::{TestStore, ramp, ramp_dataset};

#[tokio::test]
async fn shapes_dims_fills_and_stats_of_every_array_need_no_io_after_open() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), Path::from("s"), StoreConfig::default())
        .await
        .unwrap();
    for i in 0..200 {
        let ds = atlas.create_dataset(&format!("profile_{i}")).await.unwrap();
        let levels = 10 + i % 7;
        ds.define_array::<f32>(
            "temp",
            vec!["level".into()],
            vec![levels],
            None,
            Some(FillValue::Float(99999.0)),
        )
        .await
        .unwrap();
        ds.write_array("temp", vec![0], ramp(levels - 1, i as f32).view())
            .await
            .unwrap();
        ds.define_array::<f64>("pres", vec!["level".into()], vec![levels], None, None)
            .await
            .unwrap();
    }
    atlas.flush().await.unwrap();

    let counted = TestStore::new(mem);
    let atlas = Atlas::open(counted.clone(), Path::from("s")).await.unwrap();
    let after_open = counted.ops();
    // List and read the newest checkpoint, list the log after it, read its one entry while
    // listing the checkpoints again (no newer one came meanwhile): five operations whatever the
    // number of datasets.
    assert!(after_open <= 5, "open took {after_open} operations");
    for (i, name) in atlas.list_datasets().iter().enumerate() {
        let ds = atlas.open_dataset(name).await.unwrap();
        let meta = ds.array_meta("temp").unwrap();
        assert_eq!(meta.shape, vec![10 + i % 7]);
        assert_eq!(meta.dims, vec!["level"]);
        assert_eq!(meta.fill_value, Some(FillValue::Float(99999.0)));
        let stats = ds.array_stats("temp").await.unwrap();
        assert_eq!(stats.min, Some(StatValue::Float(i as f64)));
        assert_eq!(stats.null_count, 1, "the unwritten last level is a null");
        assert!(ds.array_stats("pres").await.is_none(), "never written");
    }
    assert_eq!(
        counted.ops(),
        after_open,
        "metadata of 200 datasets cost I/O"
    );
}

#[tokio::test]
async fn reads_across_datasets_run_in_parallel_up_to_the_cpu_count() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), Path::from("s"), StoreConfig::default())
        .await
        .unwrap();
    let mut names = Vec::new();
    for i in 0..8 {
        let name = format!("d{i}");
        ramp_dataset(&mut atlas, &name, "v", 16, i as f32).await;
        atlas.flush().await.unwrap(); // one segment each, so each read is its own I/O
        names.push(name);
    }
    let slow = TestStore::new(mem);
    slow.set_read_delay(Duration::from_millis(40));
    let atlas = Atlas::open(slow.clone(), Path::from("s")).await.unwrap();
    let parts = atlas
        .read_array_across::<f32>("v", &names, vec![0], vec![1])
        .await
        .unwrap();
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p.as_ref().unwrap()[[0]], i as f32);
    }
    let cpus = std::thread::available_parallelism().unwrap().get() as u64;
    // Opening a segment sends its size check and its page checksums together: two requests
    // per read at most.
    let peak = slow.max_in_flight();
    assert!(
        peak <= 2 * cpus,
        "{peak} requests in flight for reads on {cpus} CPUs"
    );
    if cpus >= 2 {
        assert!(peak >= 2, "reads ran one at a time");
    }
}
