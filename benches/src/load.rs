//! Load while writing: SQL sessions query a store while one handle ingests and another
//! compacts it. Shared by the load test (`benches/tests/load.rs`) and the `load` benchmark.
//!
//! The writer adds datasets in batches, one commit per batch, with known values, so what every
//! generation holds follows from the writer's log alone: the number of datasets `n` its commits
//! up to that generation added (compaction commits move data, never change it). A snapshot
//! reader opens the store, notes the generation it opened, registers that generation's tables
//! and queries them through SQL; each answer is checked against the answer `n` datasets must
//! give. A session reader keeps one SQL session over the store (a schema that follows new
//! commits) and asks, in one statement, how many datasets three of its tables hold: the three
//! must agree (one generation per statement), never go back, and end at the total.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use atlas_datafusion::{AtlasStore, register_store, store_table};
use atlas_store::ndarray::{Array, IxDyn};
use atlas_store::{Atlas, Error, StoreConfig};
use datafusion::prelude::SessionContext;

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Snapshot readers running at once.
    pub readers: usize,
    /// Commits the writer makes.
    pub batches: usize,
    /// Datasets each commit adds.
    pub per_batch: usize,
    /// Values of each dataset's arrays.
    pub values: usize,
    /// Pause between the writer's commits.
    pub pause: Duration,
    /// Pause between the compactor's attempts.
    pub compact_every: Duration,
    /// How long compaction keeps what it retires (readers of older generations need it).
    pub retention: Duration,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Snapshot-reader queries answered and checked against their generation.
    pub queries: u64,
    /// Distinct generations the snapshot readers read.
    pub generations_read: usize,
    /// Queries of the session reader (which follows new commits) that answered.
    pub session_queries: u64,
    /// Queries of the session reader that failed (counted in `errors` too).
    pub session_errors: u64,
    /// Writer commits that landed (each must be visible at the end).
    pub commits: u64,
    /// Compactions that committed a rewrite.
    pub compactions: u64,
    /// Errors, by kind: `conflict` and `segment gone` are the documented retriable ones.
    pub errors: BTreeMap<&'static str, u64>,
    /// The generation of every snapshot query that failed.
    pub failed_generations: Vec<u64>,
    /// The first message of each kind of error.
    pub error_examples: BTreeMap<&'static str, String>,
    /// Answers that differ from what their generation holds (must stay empty).
    pub wrong: Vec<String>,
    /// Latency of each snapshot-reader round: open the store, then its three queries.
    pub latencies: Vec<Duration>,
    /// The generation the store ended at.
    pub final_generation: u64,
    /// Datasets in the store at the end.
    pub final_datasets: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl LoadReport {
    fn error(&mut self, message: &str) {
        let k = kind(message);
        *self.errors.entry(k).or_default() += 1;
        self.error_examples
            .entry(k)
            .or_insert_with(|| message.to_string());
    }

    /// Latency percentile `p` (0–100) of the snapshot-reader rounds.
    pub fn latency(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        let i = ((l.len() as f64 - 1.0) * p / 100.0).round() as usize;
        l.get(i).copied().unwrap_or_default()
    }
}

/// One snapshot-reader round: the generation it opened, each query's answer, its latency.
type Round = (u64, Vec<Result<String, String>>, Duration);

/// The queries of a snapshot reader: they read every variable and the metadata table.
const QUERIES: [&str; 3] = [
    "SELECT count(DISTINCT dataset), count(*), sum(v) FROM v",
    "SELECT count(*), sum(CAST(w AS BIGINT)) FROM w",
    "SELECT count(*) FROM _datasets",
];

/// The session reader's statement: three tables of one store.
const SESSION_QUERY: &str = "SELECT (SELECT count(DISTINCT dataset) FROM s.v) AS v, \
     (SELECT count(DISTINCT dataset) FROM s.w) AS w, (SELECT count(*) FROM s._datasets) AS d";

/// What the snapshot queries answer when the store holds the first `n` datasets (`n > 0`).
fn expected(n: usize, values: usize) -> [Vec<f64>; 3] {
    let (n64, k) = (n as u64, values as u64);
    // v = d * 1000 + i: integers, so the f64 sum is exact in any order.
    let sum_v: u64 = (0..n64).map(|d| d * 1000 * k + k * (k - 1) / 2).sum();
    // w = d + i.
    let sum_w: u64 = (0..n64).map(|d| d * k + k * (k - 1) / 2).sum();
    [
        vec![n as f64, (n64 * k) as f64, sum_v as f64],
        vec![(n64 * k) as f64, sum_w as f64],
        vec![n as f64],
    ]
}

/// Whether a comma-separated row of numbers is `want`, exactly.
fn same(got: &str, want: &[f64]) -> bool {
    let cells: Vec<Option<f64>> = got.split(',').map(|c| c.trim().parse().ok()).collect();
    cells.len() == want.len() && cells.iter().zip(want).all(|(g, w)| *g == Some(*w))
}

fn kind(message: &str) -> &'static str {
    if message.contains("is gone") {
        "segment gone (retriable)"
    } else if message.contains("commit conflict") {
        "conflict (retriable)"
    } else {
        "other"
    }
}

/// One row of a one-row result as comma-separated text (`NULL` for nulls).
async fn one_row(ctx: &SessionContext, sql: &str) -> Result<String, String> {
    let batches = ctx
        .sql(sql)
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let batch = batches.iter().find(|b| b.num_rows() > 0).ok_or("no rows")?;
    let mut cells = Vec::new();
    for col in batch.columns() {
        let cell = if col.is_null(0) {
            "NULL".to_string()
        } else {
            datafusion::arrow::util::display::array_value_to_string(col, 0)
                .map_err(|e| e.to_string())?
        };
        cells.push(cell);
    }
    Ok(cells.join(","))
}

fn dataset_name(d: usize) -> String {
    format!("ds_{d:06}")
}

async fn add_dataset(atlas: &mut Atlas, d: usize, values: usize) -> atlas_store::Result<()> {
    let ds = atlas.create_dataset(&dataset_name(d)).await?;
    ds.define_array::<f64>("v", vec!["i".into()], vec![values], None, None)
        .await?;
    let v = Array::from_shape_fn(IxDyn(&[values]), |i| (d * 1000 + i[0]) as f64);
    ds.write_array("v", vec![0], v.view()).await?;
    ds.define_array::<i32>("w", vec!["i".into()], vec![values], None, None)
        .await?;
    let w = Array::from_shape_fn(IxDyn(&[values]), |i| (d + i[0]) as i32);
    ds.write_array("w", vec![0], w.view()).await?;
    Ok(())
}

/// Runs the load on a new store at `dir`.
pub async fn run(dir: &Path, cfg: &LoadConfig) -> atlas_store::Result<LoadReport> {
    let start = Instant::now();
    let store = dir.join("load.atlas");
    let mut writer = Atlas::create_path(&store, StoreConfig::default()).await?;
    writer.set_orphan_retention(cfg.retention);
    // Checkpoints (and the log clean-up after them) happen during the run too.
    writer.set_checkpoint_interval(5);
    let done = Arc::new(AtomicBool::new(false));
    let location = store.to_string_lossy().into_owned();
    let mut report = LoadReport::default();
    let mut commits: Vec<(u64, usize)> = Vec::new();
    let mut next = 0usize;
    // The first batch lands before anyone reads, so every generation read has the tables.
    for _ in 0..cfg.per_batch {
        add_dataset(&mut writer, next, cfg.values).await?;
        next += 1;
    }
    writer.flush().await?;
    commits.push((writer.generation(), next));
    report.commits += 1;

    // Snapshot readers: each query on a store opened at a known generation.
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..cfg.readers {
        let (store, done) = (store.clone(), Arc::clone(&done));
        readers.spawn(async move {
            let mut seen: Vec<Round> = Vec::new();
            let mut errors: Vec<String> = Vec::new();
            loop {
                let last = done.load(Ordering::SeqCst);
                let t = Instant::now();
                match Atlas::open_path(&store).await {
                    Ok(atlas) => {
                        let generation = atlas.generation();
                        let ctx = SessionContext::new();
                        let opened = AtlasStore::from_atlas(atlas, "s");
                        for name in ["v", "w", "_datasets"] {
                            let registered = store_table(&opened, name)
                                .and_then(|t| ctx.register_table(name, t));
                            if let Err(e) = registered {
                                errors.push(e.to_string());
                            }
                        }
                        let mut answers = Vec::new();
                        for q in QUERIES {
                            answers.push(one_row(&ctx, q).await);
                        }
                        seen.push((generation, answers, t.elapsed()));
                    }
                    Err(e) => errors.push(e.to_string()),
                }
                if last {
                    return (seen, errors);
                }
            }
        });
    }

    // A session reader: one session for the whole run, following new commits.
    let session = {
        let done = Arc::clone(&done);
        let location = location.clone();
        tokio::spawn(async move {
            let ctx = SessionContext::new();
            let mut counts = Vec::new();
            let mut errors = Vec::new();
            if let Err(e) = register_store(&ctx, "s", &location).await {
                errors.push(e.to_string());
                return (counts, errors);
            }
            loop {
                let last = done.load(Ordering::SeqCst);
                match one_row(&ctx, SESSION_QUERY).await {
                    Ok(row) => counts.push(row),
                    Err(e) => errors.push(e),
                }
                if last {
                    return (counts, errors);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    // The compactor: a second handle, reopened for every attempt.
    let compactor = {
        let (store, done, cfg) = (store.clone(), Arc::clone(&done), cfg.clone());
        tokio::spawn(async move {
            let (mut landed, mut errors) = (0u64, Vec::new());
            while !done.load(Ordering::SeqCst) {
                tokio::time::sleep(cfg.compact_every).await;
                let mut handle = match Atlas::open_path(&store).await {
                    Ok(h) => h,
                    Err(e) => {
                        errors.push(e.to_string());
                        continue;
                    }
                };
                handle.set_orphan_retention(cfg.retention);
                match handle.compact().await {
                    Ok(r) if !r.variables_rewritten.is_empty() => landed += 1,
                    Ok(_) => {}
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (landed, errors)
        })
    };

    // The writer: one commit per batch; the datasets each generation holds follow.
    for _ in 1..cfg.batches {
        tokio::time::sleep(cfg.pause).await;
        for _ in 0..cfg.per_batch {
            add_dataset(&mut writer, next, cfg.values).await?;
            next += 1;
        }
        // A compaction may commit first: the flush commits on top of it, or says conflict.
        let mut tries = 0;
        loop {
            match writer.flush().await {
                Ok(()) => break,
                Err(e @ Error::Conflict { .. }) if tries < 10 => {
                    report.error(&e.to_string());
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
        commits.push((writer.generation(), next));
        report.commits += 1;
    }
    done.store(true, Ordering::SeqCst);

    let (landed, compact_errors) = compactor.await.unwrap_or_default();
    report.compactions = landed;
    for e in compact_errors {
        report.error(&e);
    }
    let (counts, session_errors) = session.await.unwrap_or_default();
    report.session_errors = session_errors.len() as u64;
    report.session_queries = counts.len() as u64;
    for e in session_errors {
        report.error(&e);
    }
    let mut seen_by_session = Vec::new();
    for row in &counts {
        let cells: Vec<&str> = row.split(',').collect();
        if cells.len() != 3 || cells.iter().any(|c| *c != cells[0]) {
            report.wrong.push(format!(
                "one statement saw different generations of its tables: v,w,_datasets = {row}"
            ));
        }
        seen_by_session.push(cells[0].parse::<usize>().unwrap_or(usize::MAX));
    }
    if seen_by_session.windows(2).any(|w| w[1] < w[0]) {
        report.wrong.push(format!(
            "the session's dataset count went back: {seen_by_session:?}"
        ));
    }
    if seen_by_session.last() != Some(&next) {
        report.wrong.push(format!(
            "the session ended seeing {:?} datasets, not {next}",
            seen_by_session.last()
        ));
    }

    // Datasets at generation g: those of the writer's last commit at or before g.
    let held = |g: u64| -> usize {
        commits
            .iter()
            .take_while(|(c, _)| *c <= g)
            .last()
            .map_or(0, |(_, n)| *n)
    };
    let mut generations = std::collections::BTreeSet::new();
    while let Some(r) = readers.join_next().await {
        let Ok((seen, errors)) = r else {
            report.wrong.push("a reader panicked".into());
            continue;
        };
        for e in errors {
            report.error(&e);
        }
        for (generation, answers, latency) in seen {
            generations.insert(generation);
            let want = expected(held(generation), cfg.values);
            for ((q, got), want) in QUERIES.iter().zip(&answers).zip(&want) {
                match got {
                    Ok(got) if same(got, want) => {}
                    Ok(got) => report.wrong.push(format!(
                        "generation {generation}: {q} answered {got}, not {want:?}"
                    )),
                    Err(e) => {
                        report.error(e);
                        report.failed_generations.push(generation);
                    }
                }
            }
            report.queries += answers.len() as u64;
            report.latencies.push(latency);
        }
    }
    report.generations_read = generations.len();

    let last = Atlas::open_path(&store).await?;
    report.final_generation = last.generation();
    report.final_datasets = last.list_datasets().len();
    if report.final_datasets != next {
        report.wrong.push(format!(
            "the store ended with {} datasets, not the {next} committed",
            report.final_datasets
        ));
    }
    report.elapsed = start.elapsed();
    Ok(report)
}
