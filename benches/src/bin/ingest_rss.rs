//! Ingest a synthetic workload into a fresh store and report time, segments, write counters and
//! the process's peak resident memory.
//!
//! ```text
//! cargo run --release -p atlas-benches --bin ingest_rss -- [DATASETS] [VALUES_PER_DATASET] [BUDGET_MIB]
//! ```
//! Defaults: 1000 datasets × 3 variables × 24 values (the `sensors` workload), 256 MiB budget.

use atlas_store::ndarray::{Array, IxDyn};
use atlas_store::{Atlas, StoreConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>())
        .collect::<Result<_, _>>()?;
    let datasets = args.first().copied().unwrap_or(1000);
    let values = args.get(1).copied().unwrap_or(24);
    let budget_mib = args.get(2).copied().unwrap_or(256);
    let dir = tempfile::tempdir()?;
    let config = StoreConfig {
        pending_budget: budget_mib << 20,
        ..Default::default()
    };
    let mut atlas = Atlas::create_path(dir.path().join("s"), config).await?;
    let start = std::time::Instant::now();
    for i in 0..datasets {
        let ds = atlas.create_dataset(&format!("d{i:06}")).await?;
        for (v, name) in ["temperature", "humidity", "pressure"].iter().enumerate() {
            ds.define_array::<f64>(name, vec!["time".into()], vec![values], None, None)
                .await?;
            let data = Array::from_shape_fn(IxDyn(&[values]), |t| {
                ((i * 31 + v * 7 + t[0]) % 1000) as f64
            });
            ds.write_array(name, vec![0], data.view()).await?;
        }
    }
    let written = start.elapsed();
    atlas.flush().await?;
    let total = start.elapsed();
    let stats = atlas.write_stats();
    let input_mib = (datasets * values * 3 * 8) as f64 / (1 << 20) as f64;
    println!(
        "datasets={datasets} values={values} input={input_mib:.1}MiB budget={budget_mib}MiB \
         write={written:.2?} write+flush={total:.2?} segments_written={} segment_bytes={} \
         spills={} peak_pending={:.1}MiB commits={} peak_rss={:.0}MiB",
        stats.segments_written,
        stats.segment_bytes_written,
        stats.spills,
        stats.peak_pending_bytes as f64 / (1 << 20) as f64,
        stats.commits,
        atlas_benches::rss_kib().1 as f64 / 1024.0
    );
    Ok(())
}
