//! Crash safety, commit conflicts between handles and processes, orphan cleanup.

use std::sync::Arc;
use std::time::Duration;

use atlas_store::object_store::{ObjectStore, memory::InMemory, path::Path};
use atlas_store::{Atlas, Attr, Error, StoreConfig};
use futures::TryStreamExt;

use crate::support::{TestStore, ramp, ramp_dataset, snapshot, tag};

fn prefix() -> Path {
    Path::from("store")
}

/// Generation 1: datasets `a` and `b`.
async fn base_store() -> Arc<InMemory> {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), prefix(), StoreConfig::default())
        .await
        .unwrap();
    for (name, offset) in [("a", 0.0), ("b", 100.0)] {
        let ds = atlas.create_dataset(name).await.unwrap();
        tag(&ds, "version", "1");
        ds.define_array::<f32>("temp", vec!["z".into()], vec![64], Some(vec![16]), None)
            .await
            .unwrap();
        ds.write_array("temp", vec![0], ramp(64, offset).view())
            .await
            .unwrap();
        ds.define_array::<i64>("time", vec![], vec![], None, None)
            .await
            .unwrap();
    }
    atlas.flush().await.unwrap();
    mem
}

/// The change under test: a partial rewrite of `a`, a new dataset `c`, `b` deleted.
async fn change(atlas: &mut Atlas) -> Result<(), Error> {
    let a = atlas.open_dataset("a").await?;
    a.write_array("temp", vec![10], ramp(4, 1000.0).view())
        .await?;
    a.set_attribute("version", Attr::String("2".into()))?;
    let c = atlas.create_dataset("c").await?;
    c.define_array::<f32>("temp", vec!["z".into()], vec![8], None, None)
        .await?;
    c.write_array("temp", vec![0], ramp(8, -5.0).view()).await?;
    atlas.delete_dataset("b").await?;
    atlas.flush().await
}

async fn segment_files(mem: &InMemory) -> Vec<String> {
    mem.list(Some(&prefix()))
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .filter(|p| p.ends_with(".af"))
        .collect()
}

#[tokio::test]
async fn a_crash_at_any_operation_leaves_the_previous_or_the_new_state() {
    // The two states a reader may see.
    let before = snapshot(&Atlas::open(base_store().await, prefix()).await.unwrap()).await;
    let after = {
        let mem = base_store().await;
        change(&mut Atlas::open(mem.clone(), prefix()).await.unwrap())
            .await
            .unwrap();
        snapshot(&Atlas::open(mem, prefix()).await.unwrap()).await
    };
    assert_ne!(before, after);

    let mut crashes = 0;
    for after_effect in [false, true] {
        for n in 0.. {
            let mem = base_store().await;
            let faulty = TestStore::new(mem.clone());
            let mut atlas = Atlas::open(faulty.clone(), prefix()).await.unwrap();
            faulty.fail_in(n, after_effect);
            let result = change(&mut atlas).await;
            if !faulty.fired() {
                assert!(result.is_ok());
                break;
            }
            crashes += 1;
            let seen = snapshot(&Atlas::open(mem.clone(), prefix()).await.unwrap()).await;
            assert!(
                seen == before || seen == after,
                "fault at op {n} (after effect: {after_effect}) left a torn state:\n{seen}"
            );
            if result.is_ok() {
                assert_eq!(
                    seen, after,
                    "flush reported success at op {n} but did not commit"
                );
            }
            // Nothing is lost on failure: the same handle retries and lands the change.
            faulty.disarm();
            if result.is_err() {
                atlas
                    .flush()
                    .await
                    .unwrap_or_else(|e| panic!("retry after fault at op {n}: {e}"));
            }
            let retried = snapshot(&Atlas::open(mem.clone(), prefix()).await.unwrap()).await;
            assert_eq!(
                retried, after,
                "retry after fault at op {n} (after effect: {after_effect})"
            );

            // Whatever the crash left behind, compaction with no retention leaves only live data.
            atlas.set_orphan_retention(Duration::ZERO);
            atlas.compact().await.unwrap();
            let live: Vec<String> = atlas.list_segments().into_iter().map(|s| s.key).collect();
            let files = segment_files(&mem).await;
            assert_eq!(
                files.len(),
                live.len(),
                "orphans left after compact: {files:?} vs {live:?}"
            );
            assert_eq!(
                snapshot(&Atlas::open(mem, prefix()).await.unwrap()).await,
                after
            );
        }
    }
    assert!(
        crashes > 12,
        "the fault sweep covered only {crashes} operations"
    );
    eprintln!("fault sweep: {crashes} injected faults");
}

#[tokio::test]
async fn orphans_younger_than_the_retention_period_are_kept() {
    let mem = base_store().await;
    let faulty = TestStore::new(mem.clone());
    let mut atlas = Atlas::open(faulty.clone(), prefix()).await.unwrap();
    let ds = atlas.open_dataset("a").await.unwrap();
    ds.write_array("temp", vec![0], ramp(64, 7.0).view())
        .await
        .unwrap();
    // Op 0 writes the segment, op 1 is the commit.
    faulty.fail_in(1, false);
    assert!(atlas.flush().await.is_err());
    faulty.disarm();
    drop(atlas);

    // A crashed writer's segment may be a live writer's spill: the default retention keeps it.
    let mut other = Atlas::open(mem.clone(), prefix()).await.unwrap();
    let orphans_before = segment_files(&mem).await.len() - other.list_segments().len();
    assert!(orphans_before >= 1, "the failed flush left no orphan");
    let report = other.vacuum().await.unwrap();
    assert_eq!(report.orphans_kept, orphans_before);
    assert_eq!(report.segments_removed, 0);

    other.set_orphan_retention(Duration::ZERO);
    let report = other.vacuum().await.unwrap();
    assert_eq!(report.segments_removed, orphans_before);
    assert_eq!(segment_files(&mem).await.len(), other.list_segments().len());
}

#[tokio::test]
async fn a_writer_whose_dataset_another_changed_gets_a_conflict_and_can_retry() {
    let mem = base_store().await;
    let mut first = Atlas::open(mem.clone(), prefix()).await.unwrap();
    let mut second = Atlas::open(mem.clone(), prefix()).await.unwrap();
    let base = first.generation();

    tag(&first.open_dataset("a").await.unwrap(), "by", "first");
    first.flush().await.unwrap();
    tag(&second.open_dataset("a").await.unwrap(), "by", "second");
    second.create_dataset("from_second").await.unwrap();
    let err = second.flush().await.unwrap_err();
    match &err {
        Error::Conflict { base: b, found, .. } => {
            assert_eq!((*b, *found), (base, base + 1));
        }
        other => panic!("expected a conflict, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains(&format!("generation {}", base + 1)), "{text}");
    assert!(text.contains("dataset \"a\""), "{text}");
    // The loser's pending change is intact until it decides what to do.
    assert!(second.dataset_exists("from_second"));
    assert_eq!(
        second.open_dataset("a").await.unwrap().get_attribute("by"),
        Some(Attr::String("second".into()))
    );

    let mut second = Atlas::open(mem.clone(), prefix()).await.unwrap();
    second.create_dataset("from_second").await.unwrap();
    second.flush().await.unwrap();
    let seen = Atlas::open(mem, prefix()).await.unwrap();
    assert!(seen.dataset_exists("from_second"));
    assert_eq!(
        seen.open_dataset("a").await.unwrap().get_attribute("by"),
        Some(Attr::String("first".into()))
    );
}

/// Child process body for the two-process test; does nothing unless the parent set it up.
#[tokio::test]
#[ignore = "run as a child process by two_processes_never_lose_a_commit"]
async fn child_writer() {
    let (Ok(path), Ok(id)) = (
        std::env::var("ATLAS_CHILD_STORE"),
        std::env::var("ATLAS_CHILD_ID"),
    ) else {
        return;
    };
    let mut conflicts = 0;
    for i in 0..8 {
        loop {
            let mut atlas = Atlas::open_path(&path).await.unwrap();
            ramp_dataset(&mut atlas, &format!("w{id}_{i}"), "v", 256, i as f32).await;
            match atlas.flush().await {
                Ok(()) => break,
                Err(Error::Conflict { .. }) => conflicts += 1,
                Err(e) => panic!("writer {id}: {e}"),
            }
        }
    }
    println!("conflicts={conflicts}");
}

#[tokio::test]
async fn two_processes_never_lose_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared");
    let mut atlas = Atlas::create_path(&path, StoreConfig::default())
        .await
        .unwrap();
    atlas.flush().await.unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|id| {
            std::process::Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "durability::child_writer",
                    "--nocapture",
                ])
                .env("ATLAS_CHILD_STORE", &path)
                .env("ATLAS_CHILD_ID", id.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect::<Vec<_>>();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let atlas = Atlas::open_path(&path).await.unwrap();
    let mut names = atlas.list_datasets();
    names.sort();
    assert_eq!(names.len(), 16, "lost commits: {names:?}");
    assert_eq!(atlas.generation(), 16, "one generation per commit");
}

#[tokio::test]
async fn a_crash_before_the_root_catalog_of_a_new_store_is_written_still_opens() {
    let mem = Arc::new(InMemory::new());
    let faulty = TestStore::new(mem.clone());
    // Op 0 lists the prefix, op 1 creates the first log entry, op 2 writes the root copy.
    faulty.fail_in(2, false);
    Atlas::create(faulty.clone(), prefix(), StoreConfig::default())
        .await
        .unwrap();
    assert!(faulty.fired());
    let mut atlas = Atlas::open(mem.clone(), prefix()).await.unwrap();
    assert_eq!(atlas.generation(), 0);
    atlas.create_dataset("after").await.unwrap();
    atlas.flush().await.unwrap();
    assert!(
        Atlas::open(mem.clone(), prefix())
            .await
            .unwrap()
            .dataset_exists("after")
    );
    let e = Atlas::create(mem, prefix(), StoreConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::StoreExists { .. }), "{e}");
}

#[tokio::test]
async fn a_stale_handle_catches_up_before_vacuuming_and_keeps_other_writers_segments() {
    let mem = base_store().await;
    let mut stale = Atlas::open(mem.clone(), prefix()).await.unwrap();
    stale.set_orphan_retention(Duration::ZERO);
    let mut other = Atlas::open(mem.clone(), prefix()).await.unwrap();
    let ds = other.create_dataset("newer").await.unwrap();
    ds.define_array::<f32>("temp", vec!["z".into()], vec![4], None, None)
        .await
        .unwrap();
    ds.write_array("temp", vec![0], ramp(4, 0.0).view())
        .await
        .unwrap();
    other.flush().await.unwrap();
    // With no retention, a handle that did not know `newer` would take its segment for an
    // orphan; the stale handle first moves to the newest commit instead.
    let report = stale.vacuum().await.unwrap();
    assert_eq!(report.segments_removed, 0);
    assert_eq!(stale.generation(), other.generation());
    assert!(stale.dataset_exists("newer"));
    let seen = Atlas::open(mem, prefix()).await.unwrap();
    let v = seen
        .open_dataset("newer")
        .await
        .unwrap()
        .read_array::<f32>("temp", vec![], vec![])
        .await
        .unwrap();
    assert!(v.is_some());
}
