//! The peer-comparison harness for SQL: builds the `profile` workload (DESIGN.md) as an ATLAS
//! store, exports the same table to Parquet (long format, zstd) with DataFusion's own `COPY`,
//! then runs each benchmark query on both in one process and prints medians, ratios, and the
//! ATLAS scan's metrics.
//!
//! ```text
//! cargo run --release -p atlas-benches --bin sql_compare -- [DATASETS] [RUNS] [DIR]
//! ```
//! Defaults: 1000 datasets, 5 runs, a temporary directory. `DIR` keeps the files, so other
//! engines (DuckDB) can be pointed at the same Parquet file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_store::ndarray::{Array, IxDyn};
use atlas_store::{Atlas, StoreConfig};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

const DEPTH: usize = 50;
const TIME: usize = 168;

fn dir_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            let p = e.path();
            total += if p.is_dir() {
                dir_size(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            };
        }
    }
    total
}

async fn build(path: &std::path::Path, datasets: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut atlas = Atlas::create_path(path, StoreConfig::default()).await?;
    for i in 0..datasets {
        let ds = atlas.create_dataset(&format!("p{i:05}")).await?;
        ds.set_attribute(
            "platform",
            atlas_store::Attr::String(if i % 10 == 0 { "glider" } else { "float" }.into()),
        )?;
        ds.define_array::<f64>("depth", vec!["depth".into()], vec![DEPTH], None, None)
            .await?;
        let d = Array::from_shape_fn(IxDyn(&[DEPTH]), |ix| ix[0] as f64 * 20.0);
        ds.write_array("depth", vec![0], d.view()).await?;
        ds.define_array::<f64>("time", vec!["time".into()], vec![TIME], None, None)
            .await?;
        let t = Array::from_shape_fn(IxDyn(&[TIME]), |ix| (i * TIME + ix[0]) as f64 * 3600.0);
        ds.write_array("time", vec![0], t.view()).await?;
        for (v, name) in ["temperature", "salinity"].iter().enumerate() {
            ds.define_array::<f32>(
                name,
                vec!["depth".into(), "time".into()],
                vec![DEPTH, TIME],
                Some(vec![25, 42]),
                None,
            )
            .await?;
            // Surface-warm profiles whose level drifts with the dataset number, so a value
            // filter can skip most datasets by statistics.
            let base = (i % 100) as f32 * 0.3 + v as f32 * 30.0;
            let a = Array::from_shape_fn(IxDyn(&[DEPTH, TIME]), |ix| {
                base + 4.0 - ix[0] as f32 * 0.08 + ((ix[1] * 7 + i) % 13) as f32 * 0.01
            });
            ds.write_array(name, vec![0, 0], a.view()).await?;
        }
        if i % 200 == 199 {
            atlas.flush().await?;
        }
    }
    // The store measured is what compaction leaves once its retention has passed.
    atlas.set_orphan_retention(std::time::Duration::ZERO);
    atlas.compact().await?;
    Ok(())
}

/// A fresh session per run, so neither engine reuses caches (ATLAS's decoded blocks,
/// DataFusion's Parquet metadata) across runs; the OS page cache stays warm for both.
async fn session(store: &str, parquet: &str) -> Result<SessionContext, Box<dyn std::error::Error>> {
    let ctx = SessionContext::new();
    atlas_datafusion::register_store(&ctx, "atlas", store).await?;
    ctx.register_parquet("pq", parquet, ParquetReadOptions::default())
        .await?;
    Ok(ctx)
}

/// Median time over `runs` runs, the plan of the first run, and the row count. `warm`: one
/// session for every run (caches kept, the first run not timed); else a fresh session per run,
/// its set-up timed with the query.
async fn time_query(
    paths: (&str, &str),
    sql: &str,
    runs: usize,
    warm: bool,
) -> Result<(Duration, Arc<dyn ExecutionPlan>, usize), Box<dyn std::error::Error>> {
    let mut times = Vec::new();
    let mut first = None;
    let mut rows = 0;
    let shared = session(paths.0, paths.1).await?;
    if warm {
        shared.sql(sql).await?.collect().await?;
    }
    for _ in 0..runs {
        let start = Instant::now();
        let ctx = if warm {
            shared.clone()
        } else {
            session(paths.0, paths.1).await?
        };
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await?;
        times.push(start.elapsed());
        rows = batches.iter().map(|b| b.num_rows()).sum();
        first.get_or_insert(plan);
    }
    times.sort();
    Ok((times[times.len() / 2], first.ok_or("no run")?, rows))
}

fn scan_metrics(plan: &Arc<dyn ExecutionPlan>) -> String {
    if atlas_datafusion::atlas_scans(plan).is_empty() {
        return "no scan ran (answered from statistics)".into();
    }
    atlas_datafusion::scan_metrics(plan)
        .into_iter()
        .filter(|(n, _)| n.starts_with("datasets") || n.starts_with("chunks") || n == "bytes_read")
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let datasets: usize = args.first().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let runs: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let tmp = tempfile::tempdir()?;
    let dir = args
        .get(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let store = dir.join("profile.atlas");
    let parquet = dir.join("temperature.parquet");
    if !store.exists() {
        let start = Instant::now();
        build(&store, datasets).await?;
        println!(
            "built {datasets} datasets x {DEPTH}x{TIME} in {:.2?}",
            start.elapsed()
        );
    }
    let ctx = SessionContext::new();
    atlas_datafusion::register_store(&ctx, "atlas", store.to_str().ok_or("path")?).await?;
    if !parquet.exists() {
        let start = Instant::now();
        ctx.sql(&format!(
            "COPY (SELECT * FROM atlas.temperature) TO '{}' STORED AS PARQUET OPTIONS ('format.compression' 'zstd(3)')",
            parquet.display()
        ))
        .await?
        .collect()
        .await?;
        println!("exported Parquet in {:.2?}", start.elapsed());
    }
    ctx.register_parquet(
        "pq",
        parquet.to_str().ok_or("path")?,
        ParquetReadOptions::default(),
    )
    .await?;
    let atlas_bytes = dir_size(&store.join("temperature"));
    let pq_bytes = std::fs::metadata(&parquet)?.len();
    println!(
        "temperature on disk: ATLAS {:.1} MiB, Parquet {:.1} MiB (ratio {:.2})",
        atlas_bytes as f64 / 1048576.0,
        pq_bytes as f64 / 1048576.0,
        atlas_bytes as f64 / pq_bytes as f64
    );
    let last = format!("p{:05}", datasets / 2);
    let queries = [
        ("full scan", "SELECT avg(temperature) FROM {t}".to_string()),
        (
            "one dataset",
            format!("SELECT avg(temperature) FROM {{t}} WHERE dataset = '{last}'"),
        ),
        (
            "quarter slice",
            format!(
                "SELECT avg(temperature) FROM {{t}} WHERE depth_index < {} AND time_index < {}",
                DEPTH / 4,
                TIME / 4
            ),
        ),
        (
            "value filter",
            "SELECT count(*) FROM {t} WHERE temperature > 33.5".to_string(),
        ),
        (
            "count/min/max",
            "SELECT count(*), min(temperature), max(temperature) FROM {t}".to_string(),
        ),
    ];
    let paths = (
        store.to_str().ok_or("path")?,
        parquet.to_str().ok_or("path")?,
    );
    for warm in [false, true] {
        println!(
            "\n{}",
            if warm {
                "Warm: one session for all runs (decoded-block and metadata caches kept)"
            } else {
                "Cold: a fresh session per run, opening the store / Parquet file is timed"
            }
        );
        println!(
            "| query | ATLAS ms | DataFusion+Parquet ms | Parquet/ATLAS | ATLAS scan metrics (first run) |"
        );
        println!("|---|---:|---:|---:|---|");
        for (name, q) in &queries {
            let (ta, plan, rows_a) =
                time_query(paths, &q.replace("{t}", "atlas.temperature"), runs, warm).await?;
            let (tp, _, rows_p) = time_query(paths, &q.replace("{t}", "pq"), runs, warm).await?;
            assert_eq!(rows_a, rows_p, "{name}");
            println!(
                "| {name} | {:.2} | {:.2} | {:.2} | {} |",
                ta.as_secs_f64() * 1e3,
                tp.as_secs_f64() * 1e3,
                tp.as_secs_f64() / ta.as_secs_f64(),
                scan_metrics(&plan)
            );
        }
    }
    Ok(())
}
