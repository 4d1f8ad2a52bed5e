//! One query set over an atlas-rust 0.10 store, an atlas-rust 0.17 collection and the same
//! data in an atlas-sql store, in one process: what reading an upstream store in place costs
//! against our format.
//!
//! ```text
//! cargo run --release -p atlas-benches --bin upstream_compare -- [DATASETS] [LEVELS] [RUNS]
//! ```
//! Defaults: 1000 Argo-like profiles of 1000 levels (`atlas_upstream_fixtures::profiles_017`
//! and `v010::profiles_010`, written by atlas-rust itself), 5 runs. Our copy has the same values, chunks (25 levels),
//! fill value and attributes, written with atlas-store and compacted. Each query runs in a
//! fresh session (open included; the OS page cache warm) and again in one warm session.
//! Ratios are upstream time / atlas-sql time (above 1: atlas-sql is faster). Last, each
//! upstream store is migrated (`atlas_store::migrate`: copied, committed, read back and
//! compared) and timed.

use std::time::{Duration, Instant};

use atlas_store::ndarray::{Array, IxDyn};
use atlas_store::{Atlas, Attr, FillValue, StoreConfig};
use datafusion::physical_plan::collect;
use datafusion::prelude::SessionContext;

type Error = Box<dyn std::error::Error>;

/// The same profiles as `profiles_017`, written with atlas-store.
async fn ours(dir: &std::path::Path, n: usize, levels: usize) -> Result<(), Error> {
    let mut atlas = Atlas::create_path(dir, StoreConfig::default()).await?;
    for i in 0..n {
        let ds = atlas.create_dataset(&format!("P{i:05}")).await?;
        let top = (i % 30) as f32;
        ds.define_array::<f32>(
            "TEMP",
            vec!["N_LEVELS".into()],
            vec![levels],
            Some(vec![levels.clamp(1, 25)]),
            Some(FillValue::Float(99999.0)),
        )
        .await?;
        let temp = Array::from_shape_fn(IxDyn(&[levels]), |ix| top - ix[0] as f32 * 0.01);
        ds.write_array("TEMP", vec![0], temp.view()).await?;
        ds.define_array::<f32>("PRES", vec!["N_LEVELS".into()], vec![levels], None, None)
            .await?;
        let pres = Array::from_shape_fn(IxDyn(&[levels]), |ix| ix[0] as f32 * 2.0);
        ds.write_array("PRES", vec![0], pres.view()).await?;
        ds.set_attribute("PLATFORM_NUMBER", Attr::String(format!("69{:05}", i % 10)))?;
        ds.set_attribute("CYCLE", Attr::Int64(i as i64 / 10))?;
    }
    atlas.flush().await?;
    atlas.set_orphan_retention(Duration::ZERO);
    atlas.compact().await?;
    Ok(())
}

async fn session(location: &str) -> Result<SessionContext, Error> {
    let ctx = SessionContext::new();
    atlas_datafusion::register_store(&ctx, "s", location).await?;
    Ok(ctx)
}

/// Median over `runs`: a fresh session per run (its open timed), or one warm session.
async fn time(location: &str, sql: &str, runs: usize, warm: bool) -> Result<Duration, Error> {
    let shared = session(location).await?;
    if warm {
        shared.sql(sql).await?.collect().await?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let ctx = if warm {
            shared.clone()
        } else {
            session(location).await?
        };
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        collect(plan, ctx.task_ctx()).await?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: usize| -> Result<usize, Error> {
        Ok(args
            .get(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (n, levels, runs) = (arg(0, 1000)?, arg(1, 1000)?, arg(2, 5)?);
    let tmp = tempfile::tempdir()?;
    let old = tmp.path().join("upstream010.atlas");
    let upstream = tmp.path().join("upstream.atlas");
    let native = tmp.path().join("ours.atlas");
    atlas_upstream_fixtures::v010::profiles_010(&old, n, levels).await?;
    atlas_upstream_fixtures::profiles_017(&upstream, n, levels).await?;
    ours(&native, n, levels).await?;
    let (up10, up, us) = (
        old.display().to_string(),
        upstream.display().to_string(),
        native.display().to_string(),
    );
    let mib = |p: &std::path::Path| atlas_benches::tree_bytes(p) as f64 / 1048576.0;
    println!(
        "{n} profiles × {levels} levels; on disk: atlas-rust 0.10 {:.1} MiB, atlas-rust 0.17 \
         {:.1} MiB, atlas-sql {:.1} MiB",
        mib(&old),
        mib(&upstream),
        mib(&native)
    );
    let queries = [
        ("full scan", r#"SELECT avg("TEMP") FROM s."TEMP""#.to_string()),
        (
            "one dataset",
            format!(r#"SELECT max("TEMP") FROM s."TEMP" WHERE dataset = 'P{:05}'"#, n / 2),
        ),
        (
            "value filter",
            r#"SELECT count(*) FROM s."TEMP" WHERE "TEMP" > 28.5"#.to_string(),
        ),
        (
            "first 25 levels",
            r#"SELECT avg("TEMP") FROM s."TEMP" WHERE "N_LEVELS_index" < 25"#.to_string(),
        ),
        (
            "attribute join",
            r#"SELECT count(*) FROM s."TEMP" t JOIN s._datasets d USING (dataset) WHERE d."PLATFORM_NUMBER" = '6900003'"#.to_string(),
        ),
    ];
    println!(
        "| query | session | atlas-rust 0.10 (ms) | atlas-rust 0.17 (ms) | atlas-sql (ms) | \
         0.10 / atlas-sql | 0.17 / atlas-sql |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, sql) in &queries {
        for warm in [false, true] {
            let a10 = time(&up10, sql, runs, warm).await?;
            let a = time(&up, sql, runs, warm).await?;
            let b = time(&us, sql, runs, warm).await?;
            println!(
                "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |",
                if warm { "warm" } else { "fresh" },
                a10.as_secs_f64() * 1e3,
                a.as_secs_f64() * 1e3,
                b.as_secs_f64() * 1e3,
                a10.as_secs_f64() / b.as_secs_f64(),
                a.as_secs_f64() / b.as_secs_f64()
            );
        }
    }
    let open = |location: String| async move {
        let start = Instant::now();
        let atlas = Atlas::open_location(&location).await?;
        Ok::<_, Error>((start.elapsed(), atlas.list_datasets().len()))
    };
    let (a10, _) = open(up10.clone()).await?;
    let (a, _) = open(up.clone()).await?;
    let (b, count) = open(us.clone()).await?;
    println!(
        "open ({count} datasets): atlas-rust 0.10 {:.1} ms, atlas-rust 0.17 {:.1} ms, atlas-sql \
         {:.1} ms",
        a10.as_secs_f64() * 1e3,
        a.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3
    );
    for (version, source) in [("0.10", &up10), ("0.17", &up)] {
        let migrated = tmp.path().join(format!("migrated-{version}.atlas"));
        let start = Instant::now();
        let report = atlas_store::migrate(
            source,
            &migrated.display().to_string(),
            StoreConfig::default(),
            |_| {},
        )
        .await?;
        println!(
            "migrate atlas-rust {version} (copy, commit, read back and compare {} cells): \
             {:.2} s, {:.1} MiB written",
            report.cells_verified,
            start.elapsed().as_secs_f64(),
            mib(&migrated)
        );
    }
    Ok(())
}
