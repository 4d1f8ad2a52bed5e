//! `Atlas::copy_into` and `Atlas::verify_copy`: a store, upstream or ours, copied into a new
//! atlas-sql store in one commit, with bounded memory, and checked equal afterwards.

use std::sync::Arc;

use atlas_store::object_store::memory::InMemory;
use atlas_store::object_store::path::Path;
use atlas_store::{Atlas, Attr, CopyPhase, Error, StoreConfig};
use atlas_upstream_fixtures as fixtures;

use crate::support::{TestStore, ramp_dataset, snapshot, tag};

fn prefix() -> Path {
    Path::from("copy")
}

async fn empty() -> (Arc<InMemory>, Atlas) {
    let mem = Arc::new(InMemory::new());
    let atlas = Atlas::create(mem.clone(), prefix(), StoreConfig::default())
        .await
        .expect("created");
    (mem, atlas)
}

/// Every array's statistics, as text (NaN prints as NaN, so equal text is equal stats).
async fn stats_of(atlas: &Atlas) -> String {
    let mut out = String::new();
    for name in atlas.list_datasets() {
        let ds = atlas.open_dataset(&name).await.expect("dataset");
        for array in ds.list_arrays() {
            out.push_str(&format!(
                "{name}/{array} {:?}\n",
                ds.array_stats(&array).await
            ));
        }
    }
    out
}

#[tokio::test]
async fn an_atlas_rust_017_collection_copies_into_a_store_equal_to_it_in_values_and_statistics() {
    let dir = tempfile::tempdir().expect("temp dir");
    fixtures::mixed_017(dir.path()).await.expect("fixture");
    let source = Atlas::open_path(dir.path()).await.expect("opens");
    let (mem, mut dst) = empty().await;
    let mut phases = Vec::new();
    let report = source
        .copy_into(&mut dst, |p| {
            if phases.last() != Some(&p.phase) {
                phases.push(p.phase);
            }
        })
        .await
        .expect("copied and verified");
    assert_eq!(
        phases,
        [
            CopyPhase::Copying,
            CopyPhase::Committing,
            CopyPhase::Verifying
        ]
    );
    assert_eq!(report.datasets, fixtures::MIXED_LIVE.len());
    assert_eq!(report.cells_verified, report.cells);
    assert_eq!(
        dst.write_stats().commits,
        1,
        "one commit for the whole copy"
    );

    let copy = Atlas::open(mem.clone(), prefix()).await.expect("reopens");
    assert_eq!(
        copy.upstream_format(),
        None,
        "the copy is an atlas-sql store"
    );
    assert_eq!(copy.list_datasets(), fixtures::MIXED_LIVE);
    // Values, definitions (chunks, fills) and attributes, through an independent reader.
    assert_eq!(snapshot_all(&copy).await, snapshot_all(&source).await);
    // The statistics the scan prunes with are the source's: fill-valued cells still count
    // as nulls, unwritten cells without a fill still count as the zeros they read as.
    assert_eq!(stats_of(&copy).await, stats_of(&source).await);
    // The check compares bit for bit: run again, on the committed copy.
    assert_eq!(
        source.verify_copy(&copy, |_| {}).await.expect("equal"),
        report.cells
    );
}

/// Every dataset's attributes, array definitions, array attributes and values, as text, for
/// any dtype (`support::snapshot` reads only some).
async fn snapshot_all(atlas: &Atlas) -> String {
    use atlas_store::{Bool, DType, TimestampNs};
    let mut out = String::new();
    for name in atlas.list_datasets() {
        let ds = atlas.open_dataset(&name).await.expect("dataset");
        out.push_str(&format!("{name} {:?}\n", ds.attributes()));
        for array in ds.list_arrays() {
            let meta = ds.array_meta(&array).expect("defined");
            macro_rules! read {
                ($t:ty) => {
                    format!(
                        "{:?}",
                        ds.read_array::<$t>(&array, vec![], vec![])
                            .await
                            .expect("read")
                            .expect("defined")
                    )
                };
            }
            let values = match meta.dtype {
                DType::Bool => read!(Bool),
                DType::Int16 => read!(i16),
                DType::Int64 => read!(i64),
                DType::UInt64 => read!(u64),
                DType::Float32 => read!(f32),
                DType::Float64 => read!(f64),
                DType::String => read!(String),
                DType::TimestampNs => read!(TimestampNs),
                other => panic!("the fixture has no {other:?} array"),
            };
            out.push_str(&format!(
                "  {array} {meta:?} {:?}\n    = {values}\n",
                ds.array_attributes(&array).expect("attributes")
            ));
        }
    }
    out
}

#[tokio::test]
async fn a_copy_spills_within_the_destinations_budget_instead_of_holding_the_store() {
    let (_mem, mut source) = empty().await;
    for i in 0..20 {
        let ds = ramp_dataset(&mut source, &format!("d{i:02}"), "v", 200_000, i as f32).await;
        tag(&ds, "n", &i.to_string());
    }
    source.flush().await.expect("flushed");
    let (_dst_mem, mut dst) = empty().await;
    let budget = 1 << 20;
    dst.set_pending_budget(budget);
    source
        .copy_into(&mut dst, |_| {})
        .await
        .expect("copied and verified");
    let stats = dst.write_stats();
    // 16 MB of values went through, but never more than the budget plus one dataset's array
    // (800 kB) were held at once.
    assert!(stats.spills > 0, "{stats:?}");
    assert!(
        stats.peak_pending_bytes <= budget + 800_000,
        "held {} bytes at once",
        stats.peak_pending_bytes
    );
}

#[tokio::test]
async fn a_copy_that_fails_midway_leaves_the_destination_without_any_of_it() {
    let (_mem, mut source) = empty().await;
    for i in 0..4 {
        ramp_dataset(&mut source, &format!("d{i}"), "v", 1000, 0.0).await;
    }
    source.flush().await.expect("flushed");
    let mut failures = 0;
    for n in 0.. {
        let mem = Arc::new(InMemory::new());
        Atlas::create(mem.clone(), prefix(), StoreConfig::default())
            .await
            .expect("created");
        let faulty = TestStore::new(mem.clone());
        let mut dst = Atlas::open(faulty.clone(), prefix()).await.expect("opens");
        dst.set_pending_budget(4096); // spill, so that there are writes before the commit
        faulty.fail_in(n, false);
        let result = source.copy_into(&mut dst, |_| {}).await;
        if !faulty.fired() {
            result.expect("no fault, no error");
            break;
        }
        let after = Atlas::open(mem.clone(), prefix()).await.expect("reopens");
        if result.is_err() {
            failures += 1;
            // Either the commit landed (the fault hit the check afterwards) or nothing did.
            let seen = after.list_datasets().len();
            assert!(seen == 0 || seen == 4, "fault at op {n}: {seen} datasets");
        }
    }
    assert!(failures > 3, "the faults hit only {failures} operations");
}

#[tokio::test]
async fn a_copy_is_refused_before_any_write_when_a_name_is_taken_or_the_target_is_read_only() {
    let (_mem, mut source) = empty().await;
    ramp_dataset(&mut source, "a", "v", 10, 0.0).await;
    ramp_dataset(&mut source, "b", "v", 10, 0.0).await;
    source.flush().await.expect("flushed");
    let (mem, mut dst) = empty().await;
    ramp_dataset(&mut dst, "b", "w", 3, 0.0).await;
    dst.flush().await.expect("flushed");
    let before = snapshot(&dst).await;
    let err = source.copy_into(&mut dst, |_| {}).await.unwrap_err();
    assert!(
        matches!(&err, Error::DatasetExists { name } if name == "b"),
        "{err}"
    );
    assert_eq!(
        snapshot(&Atlas::open(mem, prefix()).await.expect("reopens")).await,
        before
    );

    let dir = tempfile::tempdir().expect("temp dir");
    fixtures::mixed_017(dir.path()).await.expect("fixture");
    let mut upstream = Atlas::open_path(dir.path()).await.expect("opens");
    let err = source.copy_into(&mut upstream, |_| {}).await.unwrap_err();
    assert!(matches!(err, Error::ReadOnlyFormat { .. }), "{err}");
}

#[tokio::test]
async fn verify_copy_names_the_dataset_and_array_that_differ() {
    let (_mem, mut source) = empty().await;
    let ds = ramp_dataset(&mut source, "a", "v", 100, 0.0).await;
    tag(&ds, "site", "north");
    ds.define_array::<f64>("w", vec!["x".into()], vec![100], Some(vec![10]), None)
        .await
        .expect("defined");
    source.flush().await.expect("flushed");
    let (mem, mut dst) = empty().await;
    source.copy_into(&mut dst, |_| {}).await.expect("copied");

    // One cell changed in the copy, in the last tile.
    let mut changed = Atlas::open(mem.clone(), prefix()).await.expect("reopens");
    let a = changed.open_dataset("a").await.expect("a");
    let one = atlas_store::ndarray::Array::from_elem(atlas_store::ndarray::IxDyn(&[1]), -1.0f32);
    a.write_array("v", vec![99], one.view())
        .await
        .expect("written");
    changed.flush().await.expect("flushed");
    let err = source.verify_copy(&changed, |_| {}).await.unwrap_err();
    assert!(
        matches!(&err, Error::CopyMismatch { dataset, array, .. } if dataset == "a" && array == "v"),
        "{err}"
    );

    // An attribute changed: named by dataset.
    a.write_array("v", vec![99], crate::support::ramp(1, 99.0).view())
        .await
        .expect("restored");
    a.set_attribute("site", Attr::String("south".into()))
        .expect("set");
    changed.flush().await.expect("flushed");
    let err = source.verify_copy(&changed, |_| {}).await.unwrap_err();
    assert!(
        matches!(&err, Error::CopyMismatch { dataset, array, reason } if dataset == "a" && array.is_empty() && reason.contains("attributes")),
        "{err}"
    );
    assert!(err.to_string().contains("\"a\""), "{err}");
}
