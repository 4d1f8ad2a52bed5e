//! The peer-comparison harness for SQL: builds DESIGN.md's workloads (`sensors`, `profile`,
//! `gridded`) as ATLAS stores, exports the queried variable of each to Parquet (long format,
//! zstd) with DataFusion's own `COPY`, then runs the five benchmark queries on both in one
//! process, cold and warm, and prints medians, ratios, and the ATLAS scan's metrics.
//!
//! ```text
//! cargo run --release -p atlas-benches --bin sql_compare -- [DATASETS] [RUNS] [DIR] [WORKLOADS] [CODEC]
//! ```
//! Defaults: 1000 datasets (`gridded` takes a twentieth), 5 runs, a temporary directory, all
//! three workloads (comma separated), the store's default codec (`zstd`; `lz4`, `none`). `DIR` keeps the files and the queries
//! (`<workload>.queries.json`), so `benches/peers/peers.py` runs DuckDB on the same Parquet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_store::ndarray::{Array, Dimension, IxDyn};
use atlas_store::{Atlas, Codec, StoreConfig};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

/// One of DESIGN.md's three workloads.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Workload {
    /// 3 variables on (time=24), one chunk each.
    Sensors,
    /// 2 variables on (depth=50, time=168), chunks (25, 42).
    Profile,
    /// 3 variables on (lon=100, lat=100, time=48), chunks (50, 50, 24); a twentieth of the
    /// datasets of the others.
    Gridded,
    /// Argo-style profiles: `temp`, `psal` and `pres` on (n_prof=2, n_levels=500), one chunk
    /// per profile, queried together as a grid table (and as joins of the variables' tables).
    Argo,
}

const ARGO: [usize; 2] = [2, 500];
const PROFILE: [usize; 2] = [50, 168];
const GRID: [usize; 3] = [100, 100, 48];

impl Workload {
    fn parse(name: &str) -> Result<Workload, String> {
        match name {
            "sensors" => Ok(Workload::Sensors),
            "profile" => Ok(Workload::Profile),
            "gridded" => Ok(Workload::Gridded),
            "argo" => Ok(Workload::Argo),
            other => Err(format!(
                "unknown workload {other:?} (sensors, profile, gridded, argo)"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Workload::Sensors => "sensors",
            Workload::Profile => "profile",
            Workload::Gridded => "gridded",
            Workload::Argo => "argo",
        }
    }

    /// The ATLAS table the queries read (and the one exported to Parquet).
    fn table(self) -> &'static str {
        match self {
            Workload::Argo => "grid_n_prof_n_levels",
            other => other.variable(),
        }
    }

    /// The variable the queries ask about (and the one exported to Parquet).
    fn variable(self) -> &'static str {
        match self {
            Workload::Sensors | Workload::Profile => "temperature",
            Workload::Gridded => "sst",
            Workload::Argo => "temp",
        }
    }

    fn datasets(self, n: usize) -> usize {
        match self {
            Workload::Gridded => (n / 20).max(1),
            _ => n,
        }
    }

    fn dims(self) -> (&'static [&'static str], &'static [usize], Vec<usize>) {
        match self {
            Workload::Sensors => (&["time"], &[24], vec![24]),
            Workload::Profile => (&["depth", "time"], &PROFILE, vec![25, 42]),
            Workload::Gridded => (&["lon", "lat", "time"], &GRID, vec![50, 50, 24]),
            Workload::Argo => (&["n_prof", "n_levels"], &ARGO, vec![1, 500]),
        }
    }

    /// The five benchmark queries, `{t}` standing for the table.
    fn queries(self, datasets: usize) -> Vec<(&'static str, String)> {
        let v = self.variable();
        if self == Workload::Argo {
            let one = format!("a{:05}", datasets / 2);
            return vec![
                (
                    "3 variables, filter on one",
                    "SELECT count(*), avg(temp), avg(psal) FROM {t} WHERE pres < 100".into(),
                ),
                (
                    "3 variables, one profile",
                    format!(
                        "SELECT avg(temp), avg(psal), avg(pres) FROM {{t}} WHERE dataset = '{one}'"
                    ),
                ),
                (
                    "3 variables, full scan",
                    "SELECT avg(temp), avg(psal), avg(pres) FROM {t}".into(),
                ),
            ];
        }
        let (dims, shape, _) = self.dims();
        let one = format!("{}{:05}", &self.name()[..1], datasets / 2);
        let quarter = dims
            .iter()
            .zip(shape)
            .map(|(d, n)| format!("{d}_index < {}", n / 4))
            .collect::<Vec<_>>()
            .join(" AND ");
        // Each threshold matches a few percent of the datasets (values drift with the dataset
        // number), so statistics can skip the rest.
        let threshold = match self {
            Workload::Sensors => "39.5",
            Workload::Profile => "33.5",
            Workload::Gridded => "26.5",
            Workload::Argo => "0",
        };
        vec![
            ("full scan", format!("SELECT avg({v}) FROM {{t}}")),
            (
                "one dataset",
                format!("SELECT avg({v}) FROM {{t}} WHERE dataset = '{one}'"),
            ),
            (
                "quarter slice",
                format!("SELECT avg({v}) FROM {{t}} WHERE {quarter}"),
            ),
            (
                "value filter",
                format!("SELECT count(*) FROM {{t}} WHERE {v} > {threshold}"),
            ),
            (
                "count/min/max",
                format!("SELECT count(*), min({v}), max({v}) FROM {{t}}"),
            ),
        ]
    }

    /// The values of variable `var` (number `k`) of dataset `i` at position `ix`.
    fn value(self, i: usize, k: usize, ix: &[usize]) -> f32 {
        let k = k as f32 * 30.0;
        match self {
            Workload::Sensors => (i % 100) as f32 * 0.3 + k + 10.0 + ix[0] as f32 * 0.05,
            Workload::Profile => {
                (i % 100) as f32 * 0.3 + k + 4.0 - ix[0] as f32 * 0.08
                    + ((ix[1] * 7 + i) % 13) as f32 * 0.01
            }
            Workload::Argo if k == 2.0 * 30.0 => ix[1] as f32 * 2.0,
            Workload::Argo => {
                (i % 100) as f32 * 0.2 + k + 20.0 - ix[1] as f32 * 0.03 + ix[0] as f32 * 0.1
            }
            Workload::Gridded => {
                (i % 50) as f32 * 0.5
                    + k
                    + ix[0] as f32 * 0.01
                    + ix[1] as f32 * 0.02
                    + ((ix[2] * 7 + i) % 13) as f32 * 0.001
            }
        }
    }

    fn variables(self) -> &'static [&'static str] {
        match self {
            Workload::Sensors => &["temperature", "humidity", "pressure"],
            Workload::Profile => &["temperature", "salinity"],
            Workload::Gridded => &["sst", "u", "v"],
            Workload::Argo => &["temp", "psal", "pres"],
        }
    }

    async fn build(
        self,
        path: &std::path::Path,
        datasets: usize,
        codec: Codec,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let config = StoreConfig {
            codec,
            ..StoreConfig::default()
        };
        let mut atlas = Atlas::create_path(path, config).await?;
        let (dims, shape, chunks) = self.dims();
        let prefix = &self.name()[..1];
        let flush_every = match self {
            Workload::Gridded => 10,
            _ => 200,
        };
        for i in 0..datasets {
            let ds = atlas.create_dataset(&format!("{prefix}{i:05}")).await?;
            ds.set_attribute(
                "platform",
                atlas_store::Attr::String(if i % 10 == 0 { "glider" } else { "float" }.into()),
            )?;
            // Coordinates: depth in 20 m steps, hourly times running on across datasets,
            // a 1° grid.
            // Argo's dimensions have no coordinate arrays.
            let coordinates = if self == Workload::Argo {
                0
            } else {
                dims.len()
            };
            for (d, (dim, n)) in dims.iter().zip(shape).enumerate().take(coordinates) {
                ds.define_array::<f64>(dim, vec![dim.to_string()], vec![*n], None, None)
                    .await?;
                let c = Array::from_shape_fn(IxDyn(&[*n]), |ix| match *dim {
                    "time" => (i * n + ix[0]) as f64 * 3600.0,
                    "depth" => ix[0] as f64 * 20.0,
                    _ => ix[0] as f64 - if d == 0 { 180.0 } else { 90.0 },
                });
                ds.write_array(dim, vec![0], c.view()).await?;
            }
            for (k, name) in self.variables().iter().enumerate() {
                ds.define_array::<f32>(
                    name,
                    dims.iter().map(|d| d.to_string()).collect(),
                    shape.to_vec(),
                    Some(chunks.clone()),
                    None,
                )
                .await?;
                let a = Array::from_shape_fn(IxDyn(shape), |ix| self.value(i, k, ix.slice()));
                ds.write_array(name, vec![0; shape.len()], a.view()).await?;
            }
            if i % flush_every == flush_every - 1 {
                atlas.flush().await?;
            }
        }
        // The store measured is what compaction leaves once its retention has passed.
        atlas.set_orphan_retention(std::time::Duration::ZERO);
        atlas.compact().await?;
        Ok(())
    }
}

/// What a query reads: the ATLAS store as schema `atlas` (`grid_joins`: whether the session
/// plans joins on the whole grid as grid scans, the default), or the Parquet file as `pq`.
#[derive(Clone, Copy)]
enum Source<'a> {
    Atlas { store: &'a str, grid_joins: bool },
    Parquet(&'a str),
}

/// A fresh session per run, so neither engine reuses caches (ATLAS's decoded blocks,
/// DataFusion's Parquet metadata) across runs; the OS page cache stays warm for both. The
/// session opens only `source`, so a cold time holds one engine's open, not both.
async fn session(source: Source<'_>) -> Result<SessionContext, Box<dyn std::error::Error>> {
    let ctx = SessionContext::new();
    match source {
        Source::Atlas { store, grid_joins } => {
            atlas_datafusion::register_store(&ctx, "atlas", store).await?;
            if !grid_joins {
                ctx.sql("SET atlas.grid_joins = false").await?;
            }
        }
        Source::Parquet(parquet) => {
            ctx.register_parquet("pq", parquet, ParquetReadOptions::default())
                .await?;
        }
    }
    Ok(ctx)
}

/// Median time over `runs` runs, the plan of the first run, and the row count. `warm`: one
/// session for every run (caches kept, the first run not timed); else a fresh session per run,
/// its set-up timed with the query.
async fn time_query(
    source: Source<'_>,
    sql: &str,
    runs: usize,
    warm: bool,
) -> Result<(Duration, Arc<dyn ExecutionPlan>, usize), Box<dyn std::error::Error>> {
    let mut times = Vec::new();
    let mut first = None;
    let mut rows = 0;
    let shared = session(source).await?;
    if warm {
        shared.sql(sql).await?.collect().await?;
    }
    for _ in 0..runs {
        let start = Instant::now();
        let ctx = if warm {
            shared.clone()
        } else {
            session(source).await?
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
    let workloads = args
        .get(3)
        .map_or("sensors,profile,gridded", String::as_str)
        .split(',')
        .map(Workload::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let codec = match args.get(4).map_or("zstd", String::as_str) {
        "zstd" => Codec::Zstd,
        "lz4" => Codec::Lz4,
        "none" => Codec::Uncompressed,
        other => return Err(format!("unknown codec {other:?} (zstd, lz4, none)").into()),
    };
    std::fs::create_dir_all(&dir)?;
    for w in workloads {
        compare(w, &dir, w.datasets(datasets), runs, codec).await?;
    }
    Ok(())
}

/// Builds workload `w` (unless `dir` has it), exports its variable to Parquet, prints both
/// engines' times, cold and warm, and writes the queries to `<workload>.queries.json` so the
/// other peers (`benches/peers/`) run the very same SQL on the same Parquet file.
async fn compare(
    w: Workload,
    dir: &std::path::Path,
    datasets: usize,
    runs: usize,
    codec: Codec,
) -> Result<(), Box<dyn std::error::Error>> {
    let name = w.name();
    let var = w.table();
    let store = match codec {
        Codec::Zstd => dir.join(format!("{name}.atlas")),
        other => dir.join(format!("{name}.{other:?}.atlas").to_lowercase()),
    };
    let parquet = dir.join(format!("{name}.{var}.parquet"));
    println!("\n## {name} x {datasets}");
    if !store.exists() {
        let start = Instant::now();
        w.build(&store, datasets, codec).await?;
        println!("built {datasets} datasets in {:.2?}", start.elapsed());
    }
    let ctx = SessionContext::new();
    atlas_datafusion::register_store(&ctx, "atlas", store.to_str().ok_or("path")?).await?;
    if !parquet.exists() {
        let start = Instant::now();
        ctx.sql(&format!(
            "COPY (SELECT * FROM atlas.{var}) TO '{}' STORED AS PARQUET OPTIONS ('format.compression' 'zstd(3)')",
            parquet.display()
        ))
        .await?
        .collect()
        .await?;
        println!("exported Parquet in {:.2?}", start.elapsed());
    }
    let atlas_bytes: u64 = if w == Workload::Argo {
        w.variables()
            .iter()
            .map(|v| atlas_benches::tree_bytes(&store.join(v)))
            .sum()
    } else {
        atlas_benches::tree_bytes(&store.join(var))
    };
    let pq_bytes = std::fs::metadata(&parquet)?.len();
    println!(
        "{var} on disk: ATLAS {:.2} MiB, Parquet {:.2} MiB (ratio {:.2})",
        atlas_bytes as f64 / 1048576.0,
        pq_bytes as f64 / 1048576.0,
        atlas_bytes as f64 / pq_bytes as f64
    );
    let queries = w.queries(datasets);
    let json: Vec<String> = queries
        .iter()
        .map(|(n, q)| format!("{{\"name\": \"{n}\", \"sql\": \"{q}\"}}"))
        .collect();
    std::fs::write(
        dir.join(format!("{name}.queries.json")),
        format!(
            "{{\"parquet\": \"{}\", \"queries\": [{}]}}\n",
            parquet.file_name().and_then(|f| f.to_str()).ok_or("path")?,
            json.join(", ")
        ),
    )?;
    let store = store.to_str().ok_or("path")?;
    let atlas = |grid_joins| Source::Atlas { store, grid_joins };
    let parquet = Source::Parquet(parquet.to_str().ok_or("path")?);
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
        for (qname, q) in &queries {
            let (ta, plan, rows_a) = time_query(
                atlas(true),
                &q.replace("{t}", &format!("atlas.{var}")),
                runs,
                warm,
            )
            .await?;
            let (tp, _, rows_p) = time_query(parquet, &q.replace("{t}", "pq"), runs, warm).await?;
            assert_eq!(rows_a, rows_p, "{qname}");
            println!(
                "| {qname} | {:.2} | {:.2} | {:.2} | {} |",
                ta.as_secs_f64() * 1e3,
                tp.as_secs_f64() * 1e3,
                tp.as_secs_f64() / ta.as_secs_f64(),
                scan_metrics(&plan)
            );
            if w == Workload::Argo {
                // The same question as users write it without grid tables: joins of the
                // variables' own tables on dataset and both indexes.
                let on = |a: &str, b: &str| {
                    format!(
                        "{a}.dataset = {b}.dataset AND {a}.n_prof_index = {b}.n_prof_index \
                         AND {a}.n_levels_index = {b}.n_levels_index"
                    )
                };
                let joined = format!(
                    "(SELECT t.dataset, t.temp, s.psal, p.pres FROM atlas.temp t \
                     JOIN atlas.psal s ON {} JOIN atlas.pres p ON {})",
                    on("t", "s"),
                    on("t", "p")
                );
                for (rule, how) in [(true, "planned as a grid scan"), (false, "hash joins")] {
                    let (tj, _, rows_j) =
                        time_query(atlas(rule), &q.replace("{t}", &joined), runs, warm).await?;
                    assert_eq!(rows_j, rows_p, "{qname} (join plan)");
                    println!(
                        "| {qname}, as joins ({how}) | {:.2} | {:.2} | {:.2} | |",
                        tj.as_secs_f64() * 1e3,
                        tp.as_secs_f64() * 1e3,
                        tp.as_secs_f64() / tj.as_secs_f64(),
                    );
                }
            }
        }
    }
    Ok(())
}
