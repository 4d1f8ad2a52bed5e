//! Load while writing: SQL sessions query a store while one handle ingests and another compacts
//! it (the workload of `benches/tests/load.rs`, larger), reporting what was answered, what
//! landed and every error by kind.
//!
//! ```text
//! cargo run --release -p atlas-benches --bin load -- [READERS] [BATCHES] [PER_BATCH] [VALUES]
//! ```
//! Defaults: 4 snapshot readers (plus one session reader), 200 commits of 50 datasets, 1,000
//! values per array, a compaction attempt every 200 ms, retention 30 s.

use std::time::Duration;

use atlas_benches::load::{LoadConfig, run};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = LoadConfig {
        readers: arg(1, 4),
        batches: arg(2, 200),
        per_batch: arg(3, 50),
        values: arg(4, 1000),
        pause: Duration::from_millis(10),
        compact_every: Duration::from_millis(200),
        retention: Duration::from_secs(30),
    };
    let dir = tempfile::tempdir()?;
    let r = run(dir.path(), &cfg).await?;
    println!(
        "{} snapshot readers, 1 session reader; writer: {} commits of {} datasets x {} values",
        cfg.readers, cfg.batches, cfg.per_batch, cfg.values
    );
    println!("elapsed                      {:.2?}", r.elapsed);
    println!(
        "snapshot queries answered    {} over {} generations ({:.0} queries/s)",
        r.queries,
        r.generations_read,
        r.queries as f64 / r.elapsed.as_secs_f64()
    );
    println!(
        "snapshot round (open + 3 queries)  p50 {:.1?}  p90 {:.1?}  p99 {:.1?}",
        r.latency(50.0),
        r.latency(90.0),
        r.latency(99.0)
    );
    println!(
        "session statements           {} answered, {} failed",
        r.session_queries, r.session_errors
    );
    println!(
        "commits landed               {} of {} (final generation {}, {} datasets)",
        r.commits, cfg.batches, r.final_generation, r.final_datasets
    );
    println!("compactions committed        {}", r.compactions);
    println!("errors by kind               {:?}", r.errors);
    println!("wrong answers                {}", r.wrong.len());
    for w in r.wrong.iter().take(5) {
        println!("  {w}");
    }
    if !r.wrong.is_empty() || r.errors.contains_key("other") {
        return Err(format!("{:?}", r.error_examples).into());
    }
    Ok(())
}
