//! How the catalog scales: ingest `sensors`-shaped datasets in commits of a fixed size, then
//! open the store in a fresh process and query one dataset.
//!
//! ```text
//! cargo run --release -p atlas-benches --bin catalog_scale -- [DATASETS] [PER_COMMIT] [DIR]
//! ```
//! Defaults: 100,000 datasets in commits of 10,000, in a temporary directory. Each dataset has
//! 6 attributes (one unique, five repeated), a `time` coordinate and three variables on it
//! (24 values each), each array with 4 attributes repeated across datasets. Log clean-up runs
//! with no retention, so "metadata on disk" is what a store settles at. The open is measured in
//! a child process (`catalog_scale --open DIR DATASET`), so its resident memory is the open
//! store's alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atlas_benches::{dir_bytes, rss_kib};
use atlas_store::ndarray::{Array, IxDyn};
use atlas_store::{Atlas, Attr, StoreConfig, TimestampNs};

const VALUES: usize = 24;
const VARIABLES: [&str; 3] = ["temperature", "humidity", "pressure"];

fn metadata_bytes(store: &Path) -> (u64, u64) {
    let marker = std::fs::metadata(store.join("atlas.json")).map_or(0, |m| m.len());
    (
        dir_bytes(&store.join("_log")) + marker,
        dir_bytes(&store.join("_checkpoint")),
    )
}

fn dataset_name(i: usize) -> String {
    format!("sensor_{i:07}")
}

async fn add_dataset(atlas: &mut Atlas, i: usize) -> atlas_store::Result<()> {
    let ds = atlas.create_dataset(&dataset_name(i)).await?;
    ds.set_attribute("station_id", Attr::String(format!("ST{i:07}")))?;
    ds.set_attribute("institution", Attr::String("Atlas Ocean Lab".into()))?;
    ds.set_attribute("source", Attr::String("moored buoy".into()))?;
    ds.set_attribute("Conventions", Attr::String("CF-1.8".into()))?;
    ds.set_attribute("sampling_minutes", Attr::Int64(60))?;
    ds.set_attribute("network", Attr::String("fleet-a".into()))?;
    ds.define_array::<TimestampNs>("time", vec!["time".into()], vec![VALUES], None, None)
        .await?;
    let t0 = 1_700_000_000_000_000_000i64 + i as i64 * 3_600_000_000_000;
    let time = Array::from_shape_fn(IxDyn(&[VALUES]), |t| {
        TimestampNs(t0 + t[0] as i64 * 3_600_000_000_000)
    });
    ds.write_array("time", vec![0], time.view()).await?;
    for (v, name) in VARIABLES.iter().enumerate() {
        ds.define_array::<f64>(name, vec!["time".into()], vec![VALUES], None, None)
            .await?;
        for (k, val) in [
            ("units", format!("unit_{v}")),
            ("long_name", format!("sensor {name}")),
            ("standard_name", name.to_string()),
            ("coverage_content_type", "physicalMeasurement".to_string()),
        ] {
            ds.set_array_attribute(name, k, Attr::String(val))?;
        }
        let data = Array::from_shape_fn(IxDyn(&[VALUES]), |t| {
            ((i * 31 + v * 7 + t[0]) % 1000) as f64 / 10.0
        });
        ds.write_array(name, vec![0], data.view()).await?;
    }
    Ok(())
}

async fn ingest(
    path: &Path,
    datasets: usize,
    per_commit: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut atlas = Atlas::create_path(path, StoreConfig::default()).await?;
    atlas.set_orphan_retention(Duration::ZERO);
    let mut commits: Vec<(Duration, u64, bool)> = Vec::new();
    let start = Instant::now();
    let mut done = 0;
    while done < datasets {
        let n = per_commit.min(datasets - done);
        for i in done..done + n {
            add_dataset(&mut atlas, i).await?;
        }
        let checkpoints_before = atlas.write_stats().checkpoints;
        let t = Instant::now();
        atlas.flush().await?;
        let took = t.elapsed();
        let checkpointed = atlas.write_stats().checkpoints > checkpoints_before;
        // The log entry this commit wrote (clean-up may have removed older ones meanwhile).
        let newest = std::fs::read_dir(path.join("_log"))?
            .filter_map(|e| e.ok())
            .max_by_key(|e| e.file_name())
            .and_then(|e| e.metadata().ok())
            .map_or(0, |m| m.len());
        done += n;
        commits.push((took, newest, checkpointed));
        eprintln!(
            // A checkpointing commit's own entry is cleaned up at once (zero retention).
            "commit {:>4}: {done:>8} datasets, flush {:>8.1} ms, log entry {:>9} B{}",
            commits.len(),
            took.as_secs_f64() * 1e3,
            newest,
            if checkpointed { " + checkpoint" } else { "" }
        );
    }
    let total = start.elapsed();
    let (log, checkpoint) = metadata_bytes(path);
    let (_, peak) = rss_kib();
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    // Commits that wrote no checkpoint: the cost of a commit itself.
    let plain: Vec<f64> = commits.iter().filter(|c| !c.2).map(|c| ms(&c.0)).collect();
    let checkpointing: Vec<f64> = commits.iter().filter(|c| c.2).map(|c| ms(&c.0)).collect();
    let (first, last) = (
        plain.first().copied().unwrap_or(0.0),
        plain.last().copied().unwrap_or(0.0),
    );
    let mut sorted = plain.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    // Amortised: every commit, checkpoints included, over the first and the last tenth.
    let tenth = (commits.len() / 10).max(1);
    let mean =
        |c: &[(Duration, u64, bool)]| c.iter().map(|c| ms(&c.0)).sum::<f64>() / c.len() as f64;
    let (early, late) = (
        mean(&commits[..tenth]),
        mean(&commits[commits.len() - tenth..]),
    );
    println!(
        "ingest: datasets={datasets} per_commit={per_commit} commits={} total={:.1}s \
         plain commits: first={first:.1}ms last={last:.1}ms median={median:.1}ms; \
         checkpoint commits: {} (first={:.1}ms last={:.1}ms); \
         amortised per commit: first tenth={early:.1}ms last tenth={late:.1}ms; \
         first_log_entry={}B; metadata_on_disk: log+marker={}B checkpoints={}B peak_rss={:.0}MiB",
        commits.len(),
        total.as_secs_f64(),
        checkpointing.len(),
        checkpointing.first().copied().unwrap_or(0.0),
        checkpointing.last().copied().unwrap_or(0.0),
        commits[0].1,
        log,
        checkpoint,
        peak as f64 / 1024.0
    );
    Ok(())
}

async fn open(path: &Path, dataset: &str) -> Result<(), Box<dyn std::error::Error>> {
    let (before, _) = rss_kib();
    let t = Instant::now();
    let atlas = Atlas::open_path(path).await?;
    let opened = t.elapsed();
    let (after, _) = rss_kib();
    let t = Instant::now();
    let ds = atlas.open_dataset(dataset).await?;
    let values = ds
        .read_array::<f64>("temperature", vec![], vec![])
        .await?
        .ok_or("no temperature")?;
    let read = t.elapsed();
    let datasets = atlas.list_datasets().len();
    let entries = datasets * (VARIABLES.len() + 1);
    let names: usize = atlas.list_datasets().iter().map(|n| n.len()).sum();
    let resident = (after.saturating_sub(before)) * 1024;
    println!(
        "open: datasets={datasets} open={:.1}ms rss_after_open={:.0}MiB \
         (+{:.0}MiB: {:.0} B per (dataset, array) entry, names {:.1} B per entry) \
         one_dataset_read={:.2}ms sum={}",
        opened.as_secs_f64() * 1e3,
        after as f64 / 1024.0,
        resident as f64 / (1 << 20) as f64,
        resident as f64 / entries as f64,
        names as f64 / entries as f64,
        read.as_secs_f64() * 1e3,
        values.sum()
    );
    // The same question through SQL, in the same fresh process.
    let t = Instant::now();
    let ctx = datafusion::prelude::SessionContext::new();
    atlas_datafusion::register_store(&ctx, "s", &path.display().to_string()).await?;
    let batches = ctx
        .sql(&format!(
            "SELECT sum(temperature) FROM s.temperature WHERE dataset = '{dataset}'"
        ))
        .await?
        .collect()
        .await?;
    println!(
        "sql: register+one_dataset_query={:.1}ms rows={}",
        t.elapsed().as_secs_f64() * 1e3,
        batches.iter().map(|b| b.num_rows()).sum::<usize>()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--open") {
        let path = PathBuf::from(args.get(1).ok_or("--open DIR DATASET")?);
        let dataset = args.get(2).ok_or("--open DIR DATASET")?;
        return open(&path, dataset).await;
    }
    let datasets: usize = args.first().map_or(Ok(100_000), |a| a.parse())?;
    let per_commit: usize = args.get(1).map_or(Ok(10_000), |a| a.parse())?;
    let temp = tempfile::tempdir()?;
    let path = args
        .get(2)
        .map_or_else(|| temp.path().join("s"), PathBuf::from);
    ingest(&path, datasets, per_commit).await?;
    let status = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--open".into(),
            path.display().to_string(),
            dataset_name(datasets / 2),
        ])
        .status()?;
    if !status.success() {
        return Err(format!("the open run failed: {status}").into());
    }
    Ok(())
}
