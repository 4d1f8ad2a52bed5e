//! `atlas-sql demo`: builds a realistic demo store and runs showcase queries, printing each
//! result, its time, and the scan metrics that explain it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::util::pretty::pretty_format_batches;
use atlas_store::{Atlas, Attr, FillValue, StoreConfig, TimestampNs};
use datafusion::physical_plan::{ExecutionPlan, collect};
use ndarray::{Array, IxDyn};

use crate::exec::CliError;

/// Profiles: floats sampling temperature and salinity on depth levels over time.
const FLOATS: usize = 400;
const LEVELS: usize = 60;
const CYCLES: usize = 36;
/// Monthly sea-surface temperature grids.
const MONTHS: usize = 24;
const LAT: usize = 90;
const LON: usize = 180;
const MONTH_NS: i64 = 30 * 86_400_000_000_000;
const T0: i64 = 1_577_836_800_000_000_000; // 2020-01-01

/// A small deterministic generator, so every demo store is the same.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32) / (1u64 << 24) as f32
    }
}

async fn build(path: &std::path::Path) -> Result<(), CliError> {
    let mut atlas = Atlas::create_path(path, StoreConfig::default()).await?;
    let mut rng = Lcg(42);
    let basins = ["atlantic", "pacific", "indian", "southern", "arctic"];
    for i in 0..FLOATS {
        let ds = atlas
            .create_dataset(&format!("float_{:04}", 1000 + i))
            .await?;
        let basin = basins[i % basins.len()];
        let lat = -60.0 + (i as f64 * 7.3) % 120.0;
        ds.set_attribute("basin", Attr::String(basin.into()))?;
        ds.set_attribute("wmo", Attr::Int64(6_900_000 + i as i64))?;
        ds.set_attribute("latitude", Attr::Float64(lat))?;
        ds.set_attribute(
            "platform",
            Attr::String(if i % 8 == 0 { "glider" } else { "float" }.into()),
        )?;
        ds.define_array::<f64>("depth", vec!["depth".into()], vec![LEVELS], None, None)
            .await?;
        let depth = Array::from_shape_fn(IxDyn(&[LEVELS]), |ix| (ix[0] as f64).powf(1.6) * 5.0);
        ds.write_array("depth", vec![0], depth.view()).await?;
        ds.set_array_attribute("depth", "units", Attr::String("m".into()))?;
        ds.define_array::<TimestampNs>("time", vec!["time".into()], vec![CYCLES], None, None)
            .await?;
        let start = T0 + (i as i64 % 12) * MONTH_NS / 3;
        let time = Array::from_shape_fn(IxDyn(&[CYCLES]), |ix| {
            TimestampNs(start + ix[0] as i64 * MONTH_NS / 3)
        });
        ds.write_array("time", vec![0], time.view()).await?;
        let surface = 28.0 - (lat.abs() as f32) * 0.35;
        let temp = Array::from_shape_fn(IxDyn(&[CYCLES, LEVELS]), |ix| {
            let z = (ix[1] as f32).powf(1.6) * 5.0;
            let v = 2.0 + (surface - 2.0) * (-z / 400.0).exp() + rng.next() * 0.2;
            // A few deep levels are missing, as in real profiles.
            if ix[1] > LEVELS - 4 && (ix[0] + i) % 5 == 0 {
                99999.0
            } else {
                v
            }
        });
        for (name, units, data) in [
            ("temperature", "degree_Celsius", temp.clone()),
            (
                "salinity",
                "psu",
                temp.mapv(|t| if t == 99999.0 { t } else { 34.0 + t * 0.05 }),
            ),
        ] {
            ds.define_array::<f32>(
                name,
                vec!["time".into(), "depth".into()],
                vec![CYCLES, LEVELS],
                Some(vec![12, 20]),
                Some(FillValue::Float(99999.0)),
            )
            .await?;
            ds.write_array(name, vec![0, 0], data.view()).await?;
            ds.set_array_attribute(name, "units", Attr::String(units.into()))?;
        }
    }
    for m in 0..MONTHS {
        let ds = atlas
            .create_dataset(&format!("sst_{}_{:02}", 2020 + m / 12, m % 12 + 1))
            .await?;
        ds.set_attribute("product", Attr::String("demo SST".into()))?;
        ds.set_attribute(
            "month",
            Attr::TimestampNanoseconds(T0 + m as i64 * MONTH_NS),
        )?;
        ds.define_array::<f64>("lat", vec!["lat".into()], vec![LAT], None, None)
            .await?;
        let lat = Array::from_shape_fn(IxDyn(&[LAT]), |ix| 89.0 - ix[0] as f64 * 2.0);
        ds.write_array("lat", vec![0], lat.view()).await?;
        ds.define_array::<f64>("lon", vec!["lon".into()], vec![LON], None, None)
            .await?;
        let lon = Array::from_shape_fn(IxDyn(&[LON]), |ix| ix[0] as f64 * 2.0);
        ds.write_array("lon", vec![0], lon.view()).await?;
        let season = ((m % 12) as f32 / 12.0 * std::f32::consts::TAU).sin() * 1.5;
        let sst = Array::from_shape_fn(IxDyn(&[LAT, LON]), |ix| {
            let la = 89.0 - ix[0] as f32 * 2.0;
            // Land (a block of cells) has no value.
            if (30..60).contains(&ix[1]) && (20..50).contains(&ix[0]) {
                -999.0
            } else {
                28.0 * (la.to_radians().cos()).powi(2) - 1.0
                    + season * la.signum()
                    + rng.next() * 0.3
            }
        });
        ds.define_array::<f32>(
            "sst",
            vec!["lat".into(), "lon".into()],
            vec![LAT, LON],
            Some(vec![30, 60]),
            Some(FillValue::Float(-999.0)),
        )
        .await?;
        ds.write_array("sst", vec![0, 0], sst.view()).await?;
        ds.set_array_attribute("sst", "units", Attr::String("degree_C".into()))?;
    }
    atlas.flush().await?;
    Ok(())
}

/// The ATLAS scan counters of a plan that ran, as `name=value` text.
pub fn scan_metrics(plan: &Arc<dyn ExecutionPlan>) -> String {
    let parts: Vec<String> = atlas_datafusion::scan_metrics(plan)
        .into_iter()
        .filter(|(n, v)| {
            (n.starts_with("datasets") || n.starts_with("chunks") || n == "bytes_read") && *v > 0
        })
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    if atlas_datafusion::atlas_scans(plan).is_empty() {
        "no array read: statistics answered".to_string()
    } else {
        parts.join(" ")
    }
}

const QUERIES: &[(&str, &str)] = &[
    (
        "Warmest surface readings, one query across every float",
        "SELECT dataset, max(temperature) AS warmest FROM temperature WHERE depth < 10 \
         GROUP BY dataset ORDER BY warmest DESC LIMIT 5",
    ),
    (
        "One float's profile: only its chunks are read",
        "SELECT depth_index, round(depth, 1) AS depth, temperature FROM temperature \
         WHERE dataset = 'float_1007' AND time_index = 0 AND depth_index < 5 ORDER BY depth_index",
    ),
    (
        "Statistics skip floats that cannot be that warm",
        "SELECT count(DISTINCT dataset) AS floats FROM temperature WHERE temperature > 25",
    ),
    (
        "Join dataset attributes: only Arctic floats are scanned",
        "SELECT d.basin, count(*) AS readings, round(avg(t.salinity), 3) AS mean_salinity \
         FROM _datasets d JOIN salinity t ON t.dataset = d.dataset \
         WHERE d.basin = 'arctic' GROUP BY d.basin",
    ),
    (
        "Temperature and salinity in one grid table: one scan, no join",
        "SELECT dataset, round(avg(temperature), 2) AS mean_temp, round(avg(salinity), 3) AS mean_sal \
         FROM grid_time_depth WHERE depth < 50 AND salinity > 34 GROUP BY dataset ORDER BY dataset LIMIT 3",
    ),
    (
        "A coordinate box on gridded fields",
        "SELECT dataset, round(avg(sst), 2) AS mean_sst FROM sst \
         WHERE lat BETWEEN -10 AND 10 AND lon BETWEEN 180 AND 240 GROUP BY dataset ORDER BY dataset LIMIT 4",
    ),
    (
        "COUNT/MIN/MAX come from metadata",
        "SELECT count(*) AS cells, count(sst) AS ocean_cells, min(sst), max(sst) FROM sst",
    ),
];

pub async fn run(dir: Option<PathBuf>) -> Result<(), CliError> {
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("atlas-sql-demo"));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        println!("Using the demo store at {}", dir.display());
    } else {
        let start = Instant::now();
        build(&dir).await?;
        println!(
            "Built a demo store at {} in {:.2} s:\n  {FLOATS} float profiles (temperature, salinity: time={CYCLES} × depth={LEVELS}, fill 99999)\n  {MONTHS} monthly SST grids (sst: lat={LAT} × lon={LON}, land = fill)",
            dir.display(),
            start.elapsed().as_secs_f64()
        );
    }
    let location = dir
        .to_str()
        .ok_or_else(|| CliError::Usage("the demo path is not UTF-8".into()))?;
    let (ctx, stores) = crate::session::build(&[format!("demo={location}")], None).await?;
    for store in &stores {
        print!("\n{}", crate::info::report(store));
    }
    for (title, sql) in QUERIES {
        println!("\n-- {title}\n{sql};");
        let start = Instant::now();
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await?;
        let elapsed = start.elapsed();
        println!("{}", pretty_format_batches(&batches)?);
        println!(
            "{:.1} ms; {}",
            elapsed.as_secs_f64() * 1e3,
            scan_metrics(&plan)
        );
    }
    println!("\nQuery it yourself:\n  atlas-sql --store {location}");
    println!(
        "  atlas-sql --store {location} -c \"EXPLAIN ANALYZE SELECT avg(temperature) FROM temperature WHERE dataset = 'float_1003'\""
    );
    Ok(())
}
