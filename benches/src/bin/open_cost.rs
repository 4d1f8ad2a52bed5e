//! Where a cold query's time goes: opening the store, registering it with a session,
//! planning, and running, each timed over fresh sessions (median of the runs).
//!
//! ```text
//! cargo run --release -p atlas-benches --bin open_cost -- STORE [RUNS] [SQL]
//! ```
//! `SQL` names the store's schema `atlas` (default: `SELECT count(*) FROM atlas.temperature`).

use std::time::{Duration, Instant};

use datafusion::physical_plan::collect;
use datafusion::prelude::SessionContext;

type Failure = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let store = args.first().ok_or("usage: open_cost STORE [RUNS] [SQL]")?;
    let runs: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(20);
    let sql = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "SELECT count(*) FROM atlas.temperature".into());
    let mut phases: [Vec<Duration>; 4] = Default::default();
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        let ctx = SessionContext::new();
        let opened = atlas_datafusion::AtlasStore::open(store, &ctx.runtime_env()).await?;
        let t1 = Instant::now();
        atlas_datafusion::register_opened(&ctx, "atlas", opened)?;
        let t2 = Instant::now();
        let plan = ctx.sql(&sql).await?.create_physical_plan().await?;
        let t3 = Instant::now();
        collect(plan, ctx.task_ctx()).await?;
        let t4 = Instant::now();
        for (p, d) in phases.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3]) {
            p.push(d);
        }
    }
    println!("| phase | median ms |\n|---|---:|");
    for (name, p) in ["open", "register", "plan", "run"].iter().zip(&mut phases) {
        p.sort();
        println!("| {name} | {:.3} |", p[p.len() / 2].as_secs_f64() * 1e3);
    }
    Ok(())
}
