//! A seeded corruption sweep through SQL: a small store ingested from real NetCDF files is
//! damaged one object at a time (bit flips, truncation, zeroed ranges, garbage, deletion), and a
//! fixed query set that reads every variable runs on each copy. Every outcome must be the
//! original answers or a clean error: the test fails on any panic, hang or different answer.
//! The same files are swept in a zstd store and an uncompressed one. With the page checksums
//! switched off (reads going straight to array-format), this sweep finds 67 wrong answers, all
//! in the uncompressed store; with them, none.

mod common;

use common::shared_data;

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::util::pretty::pretty_format_batches;
use atlas_datafusion::atlas_store::object_store::local::LocalFileSystem;
use atlas_datafusion::atlas_store::object_store::memory::InMemory;
use atlas_datafusion::atlas_store::object_store::path::Path;
use atlas_datafusion::atlas_store::object_store::{ObjectStore, ObjectStoreExt};
use atlas_datafusion::atlas_store::{Atlas, Codec, StoreConfig};
use atlas_datafusion::{AtlasStore, register_opened};
use bytes::Bytes;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::TryStreamExt;

/// Every query reads data, not only statistics: sums over values and coordinates, a value
/// filter the statistics prune, a slice of single cells, and the dataset attributes.
const QUERIES: &[&str] = &[
    "SELECT count(*), count(sst), sum(CAST(sst AS DOUBLE)), min(sst), max(sst) FROM e.sst",
    "SELECT dataset, count(ssta), sum(CAST(ssta AS DOUBLE) * lat) FROM e.ssta \
     WHERE lat BETWEEN -30 AND 30 AND lon_index < 90 GROUP BY dataset ORDER BY dataset",
    "SELECT dataset, time, count(*) FROM e.sst WHERE sst > 29.5 GROUP BY dataset, time \
     ORDER BY dataset",
    "SELECT 'lat', count(*), sum(lat) FROM e.lat UNION ALL SELECT 'lon', count(*), sum(lon) \
     FROM e.lon UNION ALL SELECT 'lev', count(*), sum(lev) FROM e.lev ORDER BY 1",
    "SELECT dataset, time_index, time FROM e.time ORDER BY dataset",
    "SELECT dataset, title, time_coverage_start, geospatial_lat_min FROM e._datasets \
     ORDER BY dataset",
    "SELECT lon_index, sst FROM e.sst WHERE dataset = 'ersst.v5.200002' AND lat_index = 44 \
     ORDER BY lon_index",
];

/// The answer to each query, or its error.
async fn answers(objects: Arc<InMemory>) -> Result<Vec<Result<String, String>>, String> {
    let atlas = Atlas::open(objects, Path::from("s"))
        .await
        .map_err(|e| e.to_string())?;
    // One partition: float sums add in one order, so equal data gives equal answers.
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    register_opened(&ctx, "e", AtlasStore::from_atlas(atlas, "e")).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for q in QUERIES {
        let got = match ctx.sql(q).await {
            Ok(df) => df.collect().await,
            Err(e) => Err(e),
        };
        out.push(
            got.map_err(|e| e.to_string())
                .and_then(|b| pretty_format_batches(&b).map_err(|e| e.to_string()))
                .map(|t| t.to_string()),
        );
    }
    Ok(out)
}

/// Every object of the store at `dir`, under the prefix `s`.
async fn load(dir: &FsPath) -> Vec<(Path, Bytes)> {
    let fs = LocalFileSystem::new_with_prefix(dir).unwrap();
    let metas: Vec<_> = fs.list(None).try_collect().await.unwrap();
    let mut out = Vec::new();
    for m in metas {
        let bytes = fs.get(&m.location).await.unwrap().bytes().await.unwrap();
        out.push((Path::parse(format!("s/{}", m.location)).unwrap(), bytes));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

async fn copy_of(
    objects: &[(Path, Bytes)],
    victim: usize,
    damaged: &Option<Vec<u8>>,
) -> Arc<InMemory> {
    let copy = Arc::new(InMemory::new());
    for (i, (p, b)) in objects.iter().enumerate() {
        let b = match (i == victim, damaged) {
            (false, _) => b.clone(),
            (true, Some(d)) => Bytes::from(d.clone()),
            (true, None) => continue,
        };
        copy.put(p, b.into()).await.unwrap();
    }
    copy
}

#[test]
fn damaged_store_objects_give_the_original_answers_or_a_clean_error_through_sql() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = ["200001", "200002", "200003"]
        .iter()
        .map(|m| data.join(format!("ersst/ersst.v5.{m}.nc")))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The same files twice: in a store of the default codec (zstd) and in an uncompressed one,
    // where no decompressor stands between a flipped bit and the answer.
    let mut stores = Vec::new();
    for codec in [Codec::Zstd, Codec::Uncompressed] {
        let store = dir.path().join(format!("{codec:?}.atlas"));
        let config = StoreConfig {
            codec,
            ..StoreConfig::default()
        };
        rt.block_on(Atlas::create_path(&store, config)).unwrap();
        assert_cmd::Command::cargo_bin("atlas-sql")
            .unwrap()
            .arg("ingest")
            .arg(&store)
            .args(&files)
            .assert()
            .success();
        stores.push(store);
    }

    rt.block_on(async {
        let mut all = Vec::new();
        for store in &stores {
            let objects = load(store).await;
            let truth = answers(copy_of(&objects, usize::MAX, &None).await)
                .await
                .unwrap();
            for (q, a) in QUERIES.iter().zip(&truth) {
                assert!(a.is_ok(), "{q}: {a:?}");
            }
            all.push((objects, truth));
        }
        assert_eq!(all[0].1, all[1].1, "both codecs answer alike");
        let truth = all[0].1.clone();
        let segments = |objects: &[(Path, Bytes)]| -> Vec<usize> {
            (0..objects.len())
                .filter(|&i| objects[i].0.as_ref().ends_with(".af"))
                .collect()
        };
        assert!(segments(&all[0].0).len() >= 6, "one segment per variable");

        // A small linear congruential generator: the same damages on every run.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((x >> 33) % n.max(1) as u64) as usize
        };
        const TRIALS: usize = 500;
        let (mut detected, mut unaffected) = (0usize, 0usize);
        let mut wrong = Vec::new();
        let mut hits_on_segments = 0usize;
        let mut tasks = tokio::task::JoinSet::new();
        for trial in 0..TRIALS {
            // Trials alternate between the stores; half of each store's damage a segment
            // (where the values are), half any object.
            let objects = &all[trial % 2].0;
            let victim = if trial % 4 < 2 {
                let segments = segments(objects);
                segments[next(segments.len())]
            } else {
                next(objects.len())
            };
            let bytes = objects[victim].1.to_vec();
            let len = bytes.len().max(1);
            let (kind, damaged) = match next(5) {
                0 => {
                    let mut b = bytes;
                    for _ in 0..=next(3) {
                        let bit = next(len * 8);
                        if let Some(v) = b.get_mut(bit / 8) {
                            *v ^= 1 << (bit % 8);
                        }
                    }
                    ("bit flips", Some(b))
                }
                1 => ("truncation", Some(bytes[..next(bytes.len())].to_vec())),
                2 => {
                    let mut b = bytes;
                    let at = next(len).min(b.len());
                    let end = (at + 1 + next(4096)).min(b.len());
                    b[at..end].iter_mut().for_each(|v| *v = 0);
                    ("zeroed range", Some(b))
                }
                3 => {
                    let mut b = bytes;
                    let at = next(len).min(b.len());
                    let end = (at + 1 + next(256)).min(b.len());
                    for v in &mut b[at..end] {
                        *v = next(256) as u8;
                    }
                    ("garbage", Some(b))
                }
                _ => ("deletion", None),
            };
            if objects[victim].0.as_ref().ends_with(".af") {
                hits_on_segments += 1;
            }
            let what = format!(
                "trial {trial}: {kind} of {} in the {} store",
                objects[victim].0,
                ["zstd", "uncompressed"][trial % 2]
            );
            let copy = copy_of(objects, victim, &damaged).await;
            tasks.spawn(async move {
                let run = tokio::time::timeout(Duration::from_secs(60), answers(copy)).await;
                (what, run)
            });
            // Two trials at a time, one per core.
            while tasks.len() >= 2 {
                let done = tasks.join_next().await.unwrap();
                classify(done, &truth, &mut detected, &mut unaffected, &mut wrong);
            }
        }
        while let Some(done) = tasks.join_next().await {
            classify(done, &truth, &mut detected, &mut unaffected, &mut wrong);
        }
        eprintln!(
            "{TRIALS} trials ({hits_on_segments} on segments): {detected} detected, \
             {unaffected} unaffected, {} wrong, 0 panics",
            wrong.len()
        );
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        assert_eq!(detected + unaffected, TRIALS);
        assert!(detected > TRIALS / 2, "{detected} of {TRIALS} detected");
    });
}

type Outcome = (
    String,
    Result<Result<Vec<Result<String, String>>, String>, tokio::time::error::Elapsed>,
);

fn classify(
    done: Result<Outcome, tokio::task::JoinError>,
    truth: &[Result<String, String>],
    detected: &mut usize,
    unaffected: &mut usize,
    wrong: &mut Vec<String>,
) {
    let (what, run) = match done {
        Ok(d) => d,
        Err(join) => panic!("a trial panicked: {join}"),
    };
    match run {
        Err(_) => panic!("{what}: no answer within 60 s (a hang)"),
        Ok(Err(_)) => *detected += 1,
        Ok(Ok(got)) => {
            let mut errored = false;
            for ((q, g), t) in QUERIES.iter().zip(&got).zip(truth) {
                match g {
                    Err(_) => errored = true,
                    Ok(g) if Some(g) != t.as_ref().ok() => {
                        wrong.push(format!("{what}: {q} answered\n{g}\nnot\n{t:?}"));
                    }
                    Ok(_) => {}
                }
            }
            if errored {
                *detected += 1;
            } else {
                *unaffected += 1;
            }
        }
    }
}
