//! Catalog version 2: commits write their changes only, `open` reads one checkpoint plus the
//! tail, disjoint writers both land, version-1 stores open and upgrade.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use atlas_store::object_store::{ObjectStore, ObjectStoreExt, memory::InMemory, path::Path};
use atlas_store::{Atlas, Attr, Error, StoreConfig};
use futures::TryStreamExt;

use crate::support::{TestStore, ramp, ramp_dataset, snapshot, tag};

fn prefix() -> Path {
    Path::from("store")
}

/// Adds `n` datasets `<tag>_<i>` (one 24-value array and two attributes each) and flushes.
async fn add_batch(atlas: &mut Atlas, tag_: &str, n: usize) {
    for i in 0..n {
        let ds = ramp_dataset(atlas, &format!("{tag_}_{i:05}"), "temp", 24, i as f32).await;
        tag(&ds, "platform", &format!("{tag_}{i}"));
        ds.set_array_attribute("temp", "units", Attr::String("degC".into()))
            .unwrap();
    }
    atlas.flush().await.unwrap();
}

fn bytes_put_under(journal: &[(&str, String, u64)], dir: &str) -> u64 {
    journal
        .iter()
        .filter(|(op, p, _)| *op == "put" && p.contains(dir))
        .map(|(_, _, b)| b)
        .sum()
}

async fn objects_under(store: &dyn ObjectStore, dir: &str) -> Vec<String> {
    let mut names: Vec<String> = store
        .list(Some(&prefix().join(dir)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    names.sort();
    names
}

/// Opens the store in `mem`; the handle and the paths of the objects the open read.
async fn open_counting_gets(mem: &Arc<InMemory>) -> (Atlas, Vec<String>) {
    let counted = TestStore::new(mem.clone());
    let atlas = Atlas::open(counted.clone(), prefix()).await.unwrap();
    let gets = counted
        .take_journal()
        .into_iter()
        .filter(|(op, _, _)| *op == "get")
        .map(|(_, p, _)| p)
        .collect();
    (atlas, gets)
}

#[tokio::test]
async fn a_commit_writes_bytes_in_proportion_to_its_changes_not_to_the_store() {
    let mem = Arc::new(InMemory::new());
    let counted = TestStore::new(mem.clone());
    let mut atlas = Atlas::create(counted.clone(), prefix(), StoreConfig::default())
        .await
        .unwrap();
    // Checkpoints are measured apart: here only the log entries count.
    atlas.set_checkpoint_interval(u64::MAX);
    add_batch(&mut atlas, "first", 50).await;
    counted.take_journal();
    add_batch(&mut atlas, "small", 10).await;
    let small_early = bytes_put_under(&counted.take_journal(), "_log/");
    for b in 0..8 {
        add_batch(&mut atlas, &format!("bulk{b}"), 250).await;
    }
    counted.take_journal();
    add_batch(&mut atlas, "late", 10).await;
    let small_late = bytes_put_under(&counted.take_journal(), "_log/");
    assert!(small_early > 0);
    assert!(
        small_late <= small_early + small_early / 4,
        "a 10-dataset commit wrote {small_early} log bytes into a store of 50 datasets and \
         {small_late} into one of 2,060"
    );
}

#[tokio::test]
async fn open_reads_one_checkpoint_plus_the_log_after_it() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), prefix(), StoreConfig::default())
        .await
        .unwrap();
    atlas.set_orphan_retention(Duration::ZERO);
    for b in 0..5 {
        add_batch(&mut atlas, &format!("b{b}"), 20).await;
    }
    let checkpointed = atlas.checkpoint().await.unwrap();
    for b in 5..8 {
        add_batch(&mut atlas, &format!("b{b}"), 20).await;
    }
    let expected = snapshot(&atlas).await;

    let (reopened, gets) = open_counting_gets(&mem).await;
    let checkpoints: Vec<&String> = gets.iter().filter(|p| p.contains("_checkpoint/")).collect();
    let logs: Vec<&String> = gets.iter().filter(|p| p.contains("_log/")).collect();
    assert_eq!(
        checkpoints,
        vec![&format!("store/_checkpoint/{checkpointed:020}.atl")]
    );
    assert_eq!(logs.len(), 3, "tail entries read: {logs:?}");
    assert_eq!(reopened.generation(), checkpointed + 3);
    assert_eq!(snapshot(&reopened).await, expected);
    // The checkpoint covered the log before it; with no retention, clean-up removed it but
    // for the checkpointed generation's own entry.
    let log = objects_under(&*mem, "_log").await;
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(
        log[0].ends_with(&format!("{checkpointed:020}.atl")),
        "{log:?}"
    );
}

#[tokio::test]
async fn after_a_compaction_open_reads_its_checkpoint_and_replays_no_log_entry() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), prefix(), StoreConfig::default())
        .await
        .unwrap();
    for b in 0..4 {
        add_batch(&mut atlas, &format!("b{b}"), 20).await;
    }
    let before = atlas.write_stats().checkpoints;
    let report = atlas.compact().await.unwrap();
    assert!(!report.variables_rewritten.is_empty(), "{report:?}");
    assert_eq!(atlas.write_stats().checkpoints, before + 1);
    let expected = snapshot(&atlas).await;

    let (reopened, gets) = open_counting_gets(&mem).await;
    let generation = atlas.generation();
    assert_eq!(reopened.generation(), generation);
    assert!(
        gets.contains(&format!("store/_checkpoint/{generation:020}.atl")),
        "{gets:?}"
    );
    assert!(
        gets.iter().all(|p| !p.contains("_log/")),
        "no log entry is replayed: {gets:?}"
    );
    assert_eq!(snapshot(&reopened).await, expected);
}

#[tokio::test]
async fn two_writers_that_changed_different_datasets_both_land() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), prefix(), StoreConfig::default())
        .await
        .unwrap();
    add_batch(&mut atlas, "base", 3).await;
    let mut first = Atlas::open(mem.clone(), prefix()).await.unwrap();
    let mut second = Atlas::open(mem.clone(), prefix()).await.unwrap();
    let base = first.generation();

    add_batch(&mut first, "first", 4).await;
    tag(
        &first.open_dataset("base_00000").await.unwrap(),
        "by",
        "first",
    );
    first.flush().await.unwrap();
    // The second writer missed two commits; neither touched what it changes.
    add_batch(&mut second, "second", 4).await;
    tag(
        &second.open_dataset("base_00001").await.unwrap(),
        "by",
        "second",
    );
    second.delete_dataset("base_00002").await.unwrap();
    second.flush().await.unwrap();
    assert_eq!(second.generation(), base + 4);

    let seen = Atlas::open(mem, prefix()).await.unwrap();
    assert_eq!(seen.list_datasets().len(), 3 + 4 + 4 - 1);
    for (ds, by) in [("base_00000", "first"), ("base_00001", "second")] {
        assert_eq!(
            seen.open_dataset(ds).await.unwrap().get_attribute("by"),
            Some(Attr::String(by.into()))
        );
    }
    assert!(!seen.dataset_exists("base_00002"));
    let v = seen
        .open_dataset("second_00003")
        .await
        .unwrap()
        .read_array::<f32>("temp", vec![], vec![])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v, ramp(24, 3.0).into_shared());
    // What the second writer sees is what a fresh reader sees.
    assert_eq!(snapshot(&second).await, snapshot(&seen).await);
}

#[tokio::test]
async fn a_writer_based_before_a_newer_checkpoint_gets_a_conflict_not_a_lost_commit() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), prefix(), StoreConfig::default())
        .await
        .unwrap();
    add_batch(&mut atlas, "base", 2).await;
    let mut stale = Atlas::open(mem.clone(), prefix()).await.unwrap();
    atlas.set_orphan_retention(Duration::ZERO);
    add_batch(&mut atlas, "newer", 2).await;
    add_batch(&mut atlas, "newest", 2).await;
    atlas.checkpoint().await.unwrap();
    // The log entry the stale writer would race for is gone, and the one after it it would
    // rebase from: it must not re-create it.
    ramp_dataset(&mut stale, "stale_00000", "temp", 24, 0.0).await;
    let e = stale.flush().await;
    let e = match e {
        Err(e) => e,
        Ok(()) => panic!("a stale writer committed behind a checkpoint"),
    };
    assert!(matches!(e, Error::Conflict { .. }), "{e}");
    assert!(stale.dataset_exists("stale_00000"), "pending work was lost");
    let seen = Atlas::open(mem, prefix()).await.unwrap();
    assert!(!seen.dataset_exists("stale_00000"));
    assert!(seen.dataset_exists("newer_00001"));
}

/// The change under test for the checkpoint sweep.
async fn change(atlas: &mut Atlas) -> Result<(), Error> {
    let a = atlas.open_dataset("base_00000").await?;
    a.write_array("temp", vec![3], ramp(4, 1000.0).view())
        .await?;
    a.set_attribute("version", Attr::String("2".into()))?;
    let c = atlas.create_dataset("c").await?;
    c.define_array::<f32>("temp", vec!["z".into()], vec![8], None, None)
        .await?;
    c.write_array("temp", vec![0], ramp(8, -5.0).view()).await?;
    atlas.delete_dataset("base_00001").await?;
    atlas.flush().await
}

async fn checkpointed_store() -> Arc<InMemory> {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), prefix(), StoreConfig::default())
        .await
        .unwrap();
    atlas.set_orphan_retention(Duration::ZERO);
    add_batch(&mut atlas, "base", 3).await;
    atlas.checkpoint().await.unwrap();
    add_batch(&mut atlas, "more", 2).await;
    mem
}

#[tokio::test]
async fn a_crash_at_any_operation_of_a_commit_checkpoint_or_clean_up_leaves_the_old_or_new_state() {
    let before = snapshot(
        &Atlas::open(checkpointed_store().await, prefix())
            .await
            .unwrap(),
    )
    .await;
    let after = {
        let mem = checkpointed_store().await;
        change(&mut Atlas::open(mem.clone(), prefix()).await.unwrap())
            .await
            .unwrap();
        snapshot(&Atlas::open(mem, prefix()).await.unwrap()).await
    };
    assert_ne!(before, after);
    let mut crashes = 0;
    let mut checkpoint_ops = 0;
    for after_effect in [false, true] {
        for n in 0.. {
            let mem = checkpointed_store().await;
            let faulty = TestStore::new(mem.clone());
            let mut atlas = Atlas::open(faulty.clone(), prefix()).await.unwrap();
            // Every commit checkpoints and cleans up at once.
            atlas.set_checkpoint_interval(1);
            atlas.set_orphan_retention(Duration::ZERO);
            faulty.take_journal();
            faulty.fail_in(n, after_effect);
            let result = change(&mut atlas).await;
            if !faulty.fired() {
                assert!(result.is_ok());
                let journal = faulty.take_journal();
                assert!(
                    bytes_put_under(&journal, "_checkpoint/") > 0,
                    "the change did not checkpoint"
                );
                break;
            }
            if faulty
                .take_journal()
                .iter()
                .any(|(_, p, _)| p.contains("_checkpoint/"))
            {
                checkpoint_ops += 1;
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
                "retry after fault at op {n} ({after_effect})"
            );
            // A later checkpoint still works on whatever the fault left.
            atlas.checkpoint().await.unwrap();
            assert_eq!(
                snapshot(&Atlas::open(mem, prefix()).await.unwrap()).await,
                after
            );
        }
    }
    assert!(crashes > 10, "the sweep covered only {crashes} operations");
    assert!(
        checkpoint_ops > 0,
        "no fault landed in the checkpoint or clean-up"
    );
}

fn copy_dir(from: &FsPath, to: &FsPath) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn golden_v1() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1")
}

fn root_names(dir: &FsPath) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("atlas."))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_version_1_store_is_upgraded_by_its_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    copy_dir(&golden_v1(), &path);
    let before = snapshot(&Atlas::open_path(&path).await.unwrap()).await;

    let mut atlas = Atlas::open_path(&path).await.unwrap();
    let ds = ramp_dataset(&mut atlas, "profile_c", "TEMP", 6, 1.0).await;
    ds.set_attribute("platform", Attr::String("new".into()))
        .unwrap();
    atlas.flush().await.unwrap();
    assert_eq!(atlas.write_stats().checkpoints, 1);
    assert!(
        path.join("_checkpoint")
            .join(format!("{:020}.atl", 3))
            .exists()
    );
    let marker = std::fs::read_to_string(path.join("atlas.json")).unwrap();
    assert!(marker.starts_with("{\"atlas_catalog\":4"), "{marker}");

    let reopened = Atlas::open_path(&path).await.unwrap();
    assert_eq!(reopened.generation(), 3);
    let seen = snapshot(&reopened).await;
    assert!(seen.starts_with(&before), "old contents changed:\n{seen}");
    assert!(seen.contains("dataset profile_c"));
}

#[tokio::test]
async fn a_checkpoint_upgrades_a_version_1_store_without_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    copy_dir(&golden_v1(), &path);
    // A version-1 store written with MessagePack keeps its catalog as atlas.msgpack.zst; the
    // golden one uses JSON, so the marker replaces it in place.
    let before = snapshot(&Atlas::open_path(&path).await.unwrap()).await;
    let mut atlas = Atlas::open_path(&path).await.unwrap();
    assert_eq!(atlas.checkpoint().await.unwrap(), 2);
    assert_eq!(atlas.write_stats().commits, 0);
    assert_eq!(root_names(&path), vec!["atlas.json"]);
    let reopened = Atlas::open_path(&path).await.unwrap();
    assert_eq!(reopened.generation(), 2);
    assert_eq!(snapshot(&reopened).await, before);
    assert_eq!(
        reopened.verify().await.unwrap(),
        reopened.list_segments().len()
    );
}

#[tokio::test]
async fn a_damaged_checkpoint_is_an_error_naming_it() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), prefix(), StoreConfig::default())
        .await
        .unwrap();
    add_batch(&mut atlas, "a", 3).await;
    let g = atlas.checkpoint().await.unwrap();
    let path = prefix()
        .join("_checkpoint")
        .join(format!("{g:020}.atl").as_str());
    let mut bytes = mem
        .get(&path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    mem.put(&path, bytes.into()).await.unwrap();
    let e = Atlas::open(mem, prefix()).await.unwrap_err();
    assert!(matches!(e, Error::CorruptCatalog { .. }), "{e}");
    assert!(e.to_string().contains(&path.to_string()), "{e}");
}

/// Every object of the store, as bytes.
async fn all_objects(store: &dyn ObjectStore) -> Vec<(Path, bytes::Bytes)> {
    let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
    let mut out = Vec::new();
    for m in metas {
        let b = store.get(&m.location).await.unwrap().bytes().await.unwrap();
        out.push((m.location, b));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

async fn describe_text(store: Arc<dyn ObjectStore>) -> Result<String, String> {
    match Atlas::open(store, prefix()).await {
        Ok(a) => Ok(format!("{} {:?}", a.generation(), a.describe())),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn damaged_catalog_objects_fail_to_open_or_read_back_exactly() {
    let mem = Arc::new(InMemory::new());
    let mut atlas = Atlas::create(mem.clone(), prefix(), StoreConfig::default())
        .await
        .unwrap();
    atlas.set_orphan_retention(Duration::ZERO);
    atlas.set_checkpoint_interval(3);
    for b in 0..4 {
        add_batch(&mut atlas, &format!("b{b}"), 4).await;
    }
    // A tail after the checkpoint: a deletion, then one more batch.
    atlas.set_checkpoint_interval(u64::MAX);
    atlas.delete_dataset("b1_00002").await.unwrap();
    atlas.flush().await.unwrap();
    let before_last = describe_text(mem.clone()).await.unwrap();
    add_batch(&mut atlas, "last", 2).await;
    let truth = describe_text(mem.clone()).await.unwrap();
    let objects = all_objects(&*mem).await;
    let catalog: Vec<usize> = (0..objects.len())
        .filter(|&i| {
            let p = objects[i].0.as_ref();
            p.contains("/_log/") || p.contains("/_checkpoint/") || p.ends_with("atlas.json")
        })
        .collect();
    let newest_log = catalog
        .iter()
        .copied()
        .filter(|&i| objects[i].0.as_ref().contains("/_log/"))
        .max_by(|&a, &b| objects[a].0.cmp(&objects[b].0))
        .unwrap();
    assert!(
        catalog
            .iter()
            .any(|&i| objects[i].0.as_ref().contains("/_checkpoint/"))
    );
    // Seeded: the same damages on every run.
    let mut rng = crate::support::Lcg(0x9e37_79b9_7f4a_7c15);
    let mut next = move |n: usize| rng.below(n);
    let (mut detected, mut unaffected, mut rolled_back) = (0, 0, 0);
    const TRIALS: usize = 400;
    for trial in 0..TRIALS {
        let victim = catalog[next(catalog.len())];
        let bytes = objects[victim].1.to_vec();
        let len = bytes.len();
        let (kind, damaged) = match next(5) {
            0 => {
                let mut b = bytes;
                let bit = next(len * 8);
                b[bit / 8] ^= 1 << (bit % 8);
                ("bit flip", Some(b))
            }
            1 => ("truncation", Some(bytes[..next(len)].to_vec())),
            2 => {
                let mut b = bytes;
                let at = next(len);
                let end = (at + 1 + next(64)).min(len);
                b[at..end].iter_mut().for_each(|v| *v = 0);
                ("zeroed range", Some(b))
            }
            3 => {
                let mut b = bytes;
                let at = next(len);
                let end = (at + 1 + next(64)).min(len);
                for v in &mut b[at..end] {
                    *v = next(256) as u8;
                }
                ("garbage", Some(b))
            }
            _ => ("deletion", None),
        };
        let copy = Arc::new(InMemory::new());
        for (i, (p, b)) in objects.iter().enumerate() {
            let b = match (i == victim, &damaged) {
                (false, _) => b.clone(),
                (true, Some(d)) => bytes::Bytes::from(d.clone()),
                (true, None) => continue,
            };
            copy.put(p, b.into()).await.unwrap();
        }
        let what = format!("trial {trial}: {kind} of {}", objects[victim].0);
        let opened = tokio::spawn(describe_text(copy)).await;
        match opened {
            Err(join) => panic!("{what}: open panicked ({join})"),
            Ok(Err(_)) => detected += 1,
            Ok(Ok(got)) if got == truth => unaffected += 1,
            // Without the newest log entry the store is the commit before it, which is what a
            // store whose last commit never landed looks like; nothing can tell them apart.
            Ok(Ok(got)) if kind == "deletion" && victim == newest_log && got == before_last => {
                rolled_back += 1
            }
            Ok(Ok(got)) => panic!("{what}: opened as a different state:\n{got}\nnot\n{truth}"),
        }
    }
    eprintln!(
        "{TRIALS} trials: {detected} detected, {unaffected} unaffected, {rolled_back} rolled back \
         to the commit before (the newest log entry deleted)"
    );
    assert_eq!(detected + unaffected + rolled_back, TRIALS);
    assert!(detected > TRIALS / 2, "{detected} of {TRIALS} detected");
}

#[tokio::test]
async fn a_clean_handle_refreshes_to_other_writers_commits() {
    let mem = Arc::new(InMemory::new());
    let counted = TestStore::new(mem.clone());
    let mut writer = Atlas::create(mem.clone(), prefix(), StoreConfig::default())
        .await
        .unwrap();
    writer.set_orphan_retention(Duration::ZERO);
    add_batch(&mut writer, "a", 2).await;
    let mut reader = Atlas::open(counted.clone(), prefix()).await.unwrap();
    // Nothing new: one read, of the next generation's entry (plus one listing of
    // `_checkpoint/`, which the journal does not record), nothing else.
    counted.take_journal();
    assert!(!reader.refresh().await.unwrap());
    let journal = counted.take_journal();
    assert_eq!(journal.len(), 1, "{journal:?}");
    assert!(journal[0].0 == "get" && journal[0].1.ends_with("_log/00000000000000000002.atl"));
    add_batch(&mut writer, "b", 2).await;
    assert!(reader.refresh().await.unwrap());
    assert!(reader.dataset_exists("b_00001"));
    assert_eq!(reader.generation(), writer.generation());
    // Behind a checkpoint whose clean-up removed the log the reader would have read.
    add_batch(&mut writer, "c", 2).await;
    writer.checkpoint().await.unwrap();
    assert_eq!(
        objects_under(&*mem, "_log").await,
        vec![format!("store/_log/{:020}.atl", writer.generation())]
    );
    assert!(reader.refresh().await.unwrap());
    assert!(reader.dataset_exists("c_00000"));
    // A handle with unflushed changes stays where it is.
    add_batch(&mut writer, "d", 1).await;
    reader.create_dataset("mine").await.unwrap();
    assert!(!reader.refresh().await.unwrap());
    assert!(!reader.dataset_exists("d_00000") && reader.dataset_exists("mine"));
}

/// A store whose reads go through a [`TestStore`] (to replay stale listings), with no automatic
/// checkpoints, zero retention, and `batches` commits of two datasets.
async fn racing_store(batches: usize) -> (Arc<InMemory>, Arc<TestStore>, Atlas) {
    let mem = Arc::new(InMemory::new());
    let store = TestStore::new(mem.clone());
    let mut atlas = Atlas::create(store.clone(), prefix(), StoreConfig::default())
        .await
        .unwrap();
    atlas.set_checkpoint_interval(u64::MAX);
    atlas.set_orphan_retention(Duration::ZERO);
    for b in 0..batches {
        add_batch(&mut atlas, &format!("b{b}"), 2).await;
    }
    (mem, store, atlas)
}

/// An open whose listing of `_checkpoint/` raced a checkpoint and its clean-up (it saw the old
/// checkpoint, which it could still read, and then a log already cleaned up behind the new one)
/// must not return the old state: under zero retention that was an empty generation 0.
#[tokio::test]
async fn an_open_that_raced_a_checkpoint_and_its_clean_up_returns_the_newest_state() {
    let (mem, store, mut atlas) = racing_store(4).await;
    let checkpoints = prefix().join("_checkpoint");
    // The opener's view of `_checkpoint/`: only generation 0's.
    store.freeze_listing(&checkpoints).await;
    let newest = atlas.checkpoint().await.unwrap();
    assert_eq!(newest, 4);
    assert_eq!(objects_under(&*mem, "_checkpoint").await.len(), 1);

    store.replay_stale();
    let opened = Atlas::open(store.clone(), prefix()).await.unwrap();
    assert!(store.stale_served(), "the stale listing was not used");
    assert_eq!(opened.generation(), 4);
    assert_eq!(snapshot(&opened).await, snapshot(&atlas).await);
}

/// A writer still based before a checkpoint whose check for newer checkpoints raced it (its
/// listing of `_checkpoint/` predates the checkpoint) must not write the checkpointed
/// generation again after the clean-up: its commit lands after the checkpoint or fails, and a
/// commit that reports success is in the store. Clean-up keeps the log entry of the
/// checkpointed generation for this.
#[tokio::test]
async fn a_writer_that_raced_a_checkpoint_either_lands_after_it_or_fails_never_silently_lost() {
    let (mem, store, mut atlas) = racing_store(3).await;
    let mut behind = Atlas::open(store.clone(), prefix()).await.unwrap();
    behind.set_checkpoint_interval(u64::MAX);
    add_batch(&mut atlas, "last", 1).await;
    store.freeze_listing(&prefix().join("_checkpoint")).await;
    assert_eq!(atlas.checkpoint().await.unwrap(), 4);
    let logs = objects_under(&*mem, "_log").await;
    assert_eq!(
        logs,
        vec!["store/_log/00000000000000000004.atl".to_string()]
    );

    store.replay_stale();
    ramp_dataset(&mut behind, "late", "temp", 4, 0.0).await;
    let outcome = behind.flush().await;
    assert!(store.stale_served(), "the stale listing was not used");
    let reopened = Atlas::open(mem.clone(), prefix()).await.unwrap();
    match outcome {
        Ok(()) => {
            assert!(
                reopened.dataset_exists("late"),
                "a reported commit was lost"
            );
            assert!(reopened.generation() > 4);
            assert!(reopened.dataset_exists("last_00000"));
        }
        Err(e) => {
            assert!(matches!(e, Error::Conflict { .. }), "{e}");
            assert_eq!(reopened.generation(), 4);
        }
    }
}
