//! Distributed scaling: a workload's benchmark queries on one process and on 1, 2, 4… local
//! worker processes (gRPC over loopback), medians of `RUNS` each, warm and on fresh workers.
//!
//! ```sh
//! target/release/sql_compare 1000 5 /tmp/cmp profile     # builds /tmp/cmp/profile.atlas + queries
//! target/release/dist_scale /tmp/cmp profile 5 1,2,4
//! ```
//!
//! Every worker is a child process of this binary (`dist_scale --worker`), with its own block
//! cache, as on separate machines; they share this machine's cores and page cache. "first" is
//! the first run on freshly started workers (their caches empty, the OS page cache warm),
//! "warm" the median of the next `RUNS`. Each scan asks for as many tasks as there are workers
//! (`atlas.elements_per_task` set to its values ÷ workers); scans of one unit stay one task.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atlas_datafusion::{AtlasCodec, register_atlas, register_store};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Worker processes, killed on drop.
struct Workers {
    children: Vec<Child>,
    addresses: Vec<String>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_workers(n: usize) -> Res<Workers> {
    let exe = std::env::current_exe()?;
    let mut w = Workers {
        children: Vec::new(),
        addresses: Vec::new(),
    };
    for _ in 0..n {
        let mut child = Command::new(&exe)
            .arg("--worker")
            .stdout(Stdio::piped())
            .spawn()?;
        let out = child.stdout.take().ok_or("worker stdout")?;
        w.children.push(child);
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        let address = line.trim().to_string();
        if address.is_empty() {
            return Err("a worker exited before it listened".into());
        }
        w.addresses.push(address);
    }
    Ok(w)
}

async fn serve_worker() -> Res<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    atlas_distributed::serve(listener, AtlasCodec::new(), std::future::pending()).await?;
    Ok(())
}

fn config() -> SessionConfig {
    SessionConfig::new()
}

async fn session(store: &str, workers: Option<&Workers>, per_task: u64) -> Res<SessionContext> {
    let ctx = match workers {
        None => SessionContext::new_with_config(config()),
        Some(w) => {
            let resolver = atlas_distributed::Workers::parse(&w.addresses.join(","))?;
            let state = atlas_distributed::distribute(
                SessionStateBuilder::new()
                    .with_default_features()
                    .with_config(config()),
                resolver,
                AtlasCodec::new(),
            )
            .build();
            SessionContext::new_with_state(state)
        }
    };
    register_atlas(&ctx);
    ctx.sql(&format!("SET atlas.elements_per_task = {per_task}"))
        .await?;
    register_store(&ctx, "atlas", store).await?;
    Ok(ctx)
}

async fn time(ctx: &SessionContext, sql: &str) -> Res<Duration> {
    let start = Instant::now();
    ctx.sql(sql).await?.collect().await?;
    Ok(start.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// (name, SQL) of `<dir>/<workload>.queries.json`, `{t}` replaced by `atlas.<table>`.
fn queries(dir: &std::path::Path, workload: &str) -> Res<Vec<(String, String)>> {
    let text = std::fs::read_to_string(dir.join(format!("{workload}.queries.json")))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let parquet = json["parquet"].as_str().ok_or("parquet")?;
    // `<workload>.<table>.parquet`
    let table = parquet
        .strip_prefix(&format!("{workload}."))
        .and_then(|s| s.strip_suffix(".parquet"))
        .ok_or("table name")?;
    let mut out = Vec::new();
    for q in json["queries"].as_array().ok_or("queries")? {
        let name = q["name"].as_str().ok_or("name")?.to_string();
        let sql = q["sql"]
            .as_str()
            .ok_or("sql")?
            .replace("{t}", &format!("atlas.{table}"));
        out.push((name, sql));
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--worker") {
        return serve_worker().await;
    }
    let dir = std::path::PathBuf::from(
        args.get(1)
            .ok_or("usage: dist_scale DIR WORKLOAD RUNS 1,2,4")?,
    );
    let workload = args.get(2).map_or("profile", String::as_str);
    let runs: usize = args.get(3).map_or(Ok(5), |s| s.parse())?;
    let counts: Vec<usize> = args
        .get(4)
        .map_or("1,2,4", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let store = dir.join(format!("{workload}.atlas"));
    let store = store.to_str().ok_or("path")?;
    let queries = queries(&dir, workload)?;
    println!(
        "## {workload}: {} queries, median of {runs} warm runs (ms); first = first run on fresh \
         workers",
        queries.len()
    );
    // Rows of the table (values the full scan reads), for the per-task setting.
    let total: u64 = {
        let local = session(store, None, u64::MAX).await?;
        let table = queries[0]
            .1
            .split("FROM ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next());
        let b = local
            .sql(&format!("SELECT count(*) FROM {}", table.ok_or("table")?))
            .await?
            .collect()
            .await?;
        let n = datafusion::arrow::compute::cast(
            b[0].column(0),
            &datafusion::arrow::datatypes::DataType::UInt64,
        )?;
        n.as_any()
            .downcast_ref::<datafusion::arrow::array::UInt64Array>()
            .map_or(0, |a| a.value(0))
    };
    let mut header = String::from("| query | local first | local warm |");
    let mut rule = String::from("|---|---:|---:|");
    for n in &counts {
        header.push_str(&format!(" {n}w first | {n}w warm |"));
        rule.push_str("---:|---:|");
    }
    println!("{header}\n{rule}");
    for (name, sql) in &queries {
        let mut row = format!("| {name} |");
        for n in std::iter::once(0).chain(counts.iter().copied()) {
            // Fresh workers and a fresh coordinator per query: "first" reads the store.
            let workers = if n == 0 {
                None
            } else {
                Some(start_workers(n)?)
            };
            let per_task = (total / n.max(1) as u64).max(1);
            let ctx = session(store, workers.as_ref(), per_task).await?;
            let first = time(&ctx, sql).await?;
            let mut times = Vec::new();
            for _ in 0..runs {
                times.push(time(&ctx, sql).await?);
            }
            row.push_str(&format!(" {:.1} | {:.1} |", ms(first), ms(median(times))));
        }
        println!("{row}");
    }
    Ok(())
}
