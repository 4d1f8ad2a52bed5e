//! A tour of the SQL layer: builds a small demo store of ocean profiles (or opens `DIR` if it
//! already holds one), registers it, and runs one query per pushdown, printing each result and
//! the `AtlasScan` line of its `EXPLAIN ANALYZE`.
//!
//! ```text
//! cargo run --example sql_tour -p atlas-datafusion [DIR]
//! ```

use atlas_datafusion::atlas_store::ndarray::{Array, IxDyn};
use atlas_datafusion::atlas_store::{Atlas, Attr, FillValue, StoreConfig};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;

const PROFILES: usize = 200;
const DEPTH: usize = 40;
const TIME: usize = 24;

async fn build(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut atlas = Atlas::create_path(path, StoreConfig::default()).await?;
    for i in 0..PROFILES {
        let ds = atlas.create_dataset(&format!("float_{i:04}")).await?;
        let basin = ["atlantic", "pacific", "indian", "southern"][i % 4];
        ds.set_attribute("basin", Attr::String(basin.into()))?;
        ds.set_attribute("wmo", Attr::Int64(5_900_000 + i as i64))?;
        ds.define_array::<f64>("depth", vec!["depth".into()], vec![DEPTH], None, None)
            .await?;
        let d = Array::from_shape_fn(IxDyn(&[DEPTH]), |ix| ix[0] as f64 * 25.0);
        ds.write_array("depth", vec![0], d.view()).await?;
        ds.define_array::<f32>(
            "temperature",
            vec!["time".into(), "depth".into()],
            vec![TIME, DEPTH],
            Some(vec![6, 10]),
            Some(FillValue::Float(99999.0)),
        )
        .await?;
        // Warmer basins further down the list; the deepest level is missing now and then.
        let surface = 4.0 + (i % 50) as f32 * 0.5;
        let t = Array::from_shape_fn(IxDyn(&[TIME, DEPTH]), |ix| {
            if ix[1] == DEPTH - 1 && (ix[0] + i) % 7 == 0 {
                99999.0
            } else {
                surface - ix[1] as f32 * 0.1 + ix[0] as f32 * 0.01
            }
        });
        ds.write_array("temperature", vec![0, 0], t.view()).await?;
        ds.set_array_attribute("temperature", "units", Attr::String("degC".into()))?;
    }
    atlas.flush().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("demo.atlas"));
    if !path.exists() {
        build(&path).await?;
        println!("built {PROFILES} profiles in {}", path.display());
    }
    let ctx = SessionContext::new();
    atlas_datafusion::register_atlas(&ctx);
    atlas_datafusion::register_store(&ctx, "ocean", path.to_str().ok_or("path")?).await?;

    let queries = [
        (
            "projection: no value column, no array bytes",
            "SELECT count(DISTINCT dataset) AS profiles FROM ocean.temperature",
        ),
        (
            "dataset pruning (exact)",
            "SELECT avg(temperature) AS mean FROM ocean.temperature WHERE dataset IN ('float_0007', 'float_0150')",
        ),
        (
            "index ranges: only overlapping chunks",
            "SELECT avg(temperature) AS mean FROM ocean.temperature WHERE time_index < 6 AND depth_index < 10",
        ),
        (
            "coordinate ranges",
            "SELECT max(temperature) AS warmest FROM ocean.temperature WHERE depth BETWEEN 100 AND 200",
        ),
        (
            "value statistics",
            "SELECT dataset, max(temperature) AS warmest FROM ocean.temperature WHERE temperature > 28 GROUP BY dataset ORDER BY warmest DESC LIMIT 3",
        ),
        (
            "limit",
            "SELECT dataset, time_index, depth_index, temperature FROM ocean.temperature LIMIT 3",
        ),
        (
            "join on dataset attributes (dynamic filter)",
            "SELECT d.basin, round(avg(t.temperature), 2) AS mean FROM ocean._datasets d JOIN ocean.temperature t ON t.dataset = d.dataset WHERE d.wmo < 5900010 GROUP BY d.basin ORDER BY d.basin",
        ),
        (
            "statistics answer count/min/max",
            "SELECT count(*) AS cells, count(temperature) AS values, min(temperature), max(temperature) FROM ocean.temperature",
        ),
    ];
    for (what, sql) in queries {
        println!("\n-- {what}\n{sql};");
        let batches = ctx.sql(sql).await?.collect().await?;
        println!("{}", pretty_format_batches(&batches)?);
        let explain = ctx
            .sql(&format!("EXPLAIN ANALYZE {sql}"))
            .await?
            .collect()
            .await?;
        let text = pretty_format_batches(&explain)?.to_string();
        let scans: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("AtlasScan"))
            .map(|l| l.trim_matches(|c: char| c == '|' || c.is_whitespace()))
            .collect();
        if scans.is_empty() {
            println!("EXPLAIN ANALYZE: no scan ran; statistics answered the query");
        }
        for s in scans {
            println!("EXPLAIN ANALYZE: {s}");
        }
    }
    Ok(())
}
