//! Differential suite: every query gives the same rows over an ATLAS store as DataFusion gives
//! over the same data materialised as in-memory Arrow tables in long format.
//!
//! The reference tables are built here from the generator's own values, not read back through
//! the SQL layer, so a mapping bug shows up as a difference.

use std::sync::Arc;

use atlas_datafusion::atlas_store::object_store::path::Path;
use atlas_datafusion::atlas_store::{Atlas, Bool, FillValue, StoreConfig, TimestampNs};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use ndarray::{Array, IxDyn};

use atlas_datafusion::AtlasCodec;
use atlas_datafusion::atlas_store::object_store::ObjectStore;
use atlas_datafusion::atlas_store::object_store::memory::InMemory;

use crate::support::{distributed_session_on, memory_session, register, rows_text};

const DATASETS: usize = 12;
const T0: i64 = 1_700_000_000_000_000_000;
const HOUR: i64 = 3_600_000_000_000;

/// The long-format reference: one table per variable, as rows of scalars.
#[derive(Default)]
struct Reference {
    tables: Vec<(String, Vec<Field>, Vec<Vec<ScalarValue>>)>,
}

impl Reference {
    fn table(&mut self, name: &str, fields: Vec<Field>) -> usize {
        self.tables.push((name.to_string(), fields, Vec::new()));
        self.tables.len() - 1
    }

    fn row(&mut self, t: usize, row: Vec<ScalarValue>) {
        self.tables[t].2.push(row);
    }

    fn register(&self, ctx: &SessionContext) {
        let schema = Arc::new(MemorySchemaProvider::new());
        for (name, fields, rows) in &self.tables {
            let schema_ref = Arc::new(Schema::new(fields.clone()));
            let columns = (0..fields.len())
                .map(|c| {
                    if rows.is_empty() {
                        datafusion::arrow::array::new_empty_array(fields[c].data_type())
                    } else {
                        ScalarValue::iter_to_array(rows.iter().map(|r| r[c].clone())).unwrap()
                    }
                })
                .collect();
            let batch = RecordBatch::try_new(Arc::clone(&schema_ref), columns).unwrap();
            let table = MemTable::try_new(schema_ref, vec![vec![batch]]).unwrap();
            schema
                .register_table(name.clone(), Arc::new(table))
                .unwrap();
        }
        ctx.catalog("datafusion")
            .unwrap()
            .register_schema("r", schema)
            .unwrap();
    }
}

fn ds_name(i: usize) -> String {
    format!("d{i:02}")
}

fn u(v: usize) -> ScalarValue {
    ScalarValue::UInt64(Some(v as u64))
}

fn dataset_field() -> Field {
    Field::new("dataset", DataType::Utf8, false)
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, None)
}

/// Builds the generated store and its reference. Covers: f32 and f64 widened to f64, i32 and u16
/// widened to i32, ragged shapes, several chunkings, float/int/string fill values, NaN values,
/// coordinates ascending, descending and missing, timestamps, booleans, strings, 0-d scalars,
/// a zero-length axis, and a dataset lacking a dimension.
async fn build(atlas: &mut Atlas) -> Reference {
    let mut r = Reference::default();
    let temp = r.table(
        "temp",
        vec![
            dataset_field(),
            Field::new("time_index", DataType::UInt64, true),
            Field::new("depth_index", DataType::UInt64, true),
            Field::new("time", ts(), true),
            Field::new("depth", DataType::Float64, true),
            Field::new("temp", DataType::Float64, true),
        ],
    );
    let count = r.table(
        "count",
        vec![
            dataset_field(),
            Field::new("time_index", DataType::UInt64, true),
            Field::new("time", ts(), true),
            Field::new("count", DataType::Int32, true),
        ],
    );
    let label = r.table(
        "label",
        vec![
            dataset_field(),
            Field::new("station_index", DataType::UInt64, true),
            Field::new("label", DataType::Utf8, true),
        ],
    );
    let flag = r.table(
        "flag",
        vec![
            dataset_field(),
            Field::new("time_index", DataType::UInt64, true),
            Field::new("time", ts(), true),
            Field::new("flag", DataType::Boolean, true),
        ],
    );
    let scalar = r.table(
        "scalar",
        vec![
            dataset_field(),
            Field::new("scalar", DataType::Float64, true),
        ],
    );
    let depth_t = r.table(
        "depth",
        vec![
            dataset_field(),
            Field::new("depth_index", DataType::UInt64, true),
            Field::new("depth", DataType::Float64, true),
        ],
    );
    let time_t = r.table(
        "time",
        vec![
            dataset_field(),
            Field::new("time_index", DataType::UInt64, true),
            Field::new("time", ts(), true),
        ],
    );

    for i in 0..DATASETS {
        let name = ds_name(i);
        let ds = atlas.create_dataset(&name).await.unwrap();
        let nt = if i == 7 { 0 } else { 3 + i % 4 };
        let nd = 5 + (i * 7) % 6;
        let s = |v: &str| ScalarValue::Utf8(Some(v.to_string()));

        // Coordinates: depth ascending (even), descending (odd), missing (i % 4 == 3).
        let depths: Vec<f64> = (0..nd)
            .map(|d| {
                let k = if i % 2 == 0 { d } else { nd - 1 - d };
                k as f64 * 10.0 + (i % 3) as f64
            })
            .collect();
        let has_depth = i % 4 != 3;
        if has_depth {
            ds.define_array::<f64>("depth", vec!["depth".into()], vec![nd], Some(vec![4]), None)
                .await
                .unwrap();
            let a = Array::from_shape_vec(IxDyn(&[nd]), depths.clone()).unwrap();
            ds.write_array("depth", vec![0], a.view()).await.unwrap();
            for (d, v) in depths.iter().enumerate() {
                r.row(
                    depth_t,
                    vec![s(&name), u(d), ScalarValue::Float64(Some(*v))],
                );
            }
        }
        let times: Vec<i64> = (0..nt)
            .map(|t| T0 + (i as i64 * 24 + t as i64) * HOUR)
            .collect();
        let has_time = i != 5;
        if has_time {
            ds.define_array::<TimestampNs>("time", vec!["time".into()], vec![nt], None, None)
                .await
                .unwrap();
            let a = Array::from_shape_vec(
                IxDyn(&[nt]),
                times.iter().map(|t| TimestampNs(*t)).collect(),
            )
            .unwrap();
            ds.write_array("time", vec![0], a.view()).await.unwrap();
            for (t, v) in times.iter().enumerate() {
                r.row(
                    time_t,
                    vec![
                        s(&name),
                        u(t),
                        ScalarValue::TimestampNanosecond(Some(*v), None),
                    ],
                );
            }
        }
        let time_at = |t: usize| ScalarValue::TimestampNanosecond(has_time.then(|| times[t]), None);
        let depth_at = |d: usize| ScalarValue::Float64(has_depth.then(|| depths[d]));

        // temp(time, depth): f32 on every third dataset, else f64; fill -999 on even datasets.
        let fill = (i % 2 == 0).then_some(-999.0);
        let chunk = if i % 2 == 0 {
            vec![2, 3]
        } else {
            vec![nt.max(1), nd]
        };
        let value = |t: usize, d: usize| -> f64 {
            if fill.is_some() && (t + d + i).is_multiple_of(5) {
                -999.0
            } else if i == 4 && t == 1 && d == 1 {
                f64::NAN
            } else {
                (i * 100 + t * 10 + d) as f64 + 0.5
            }
        };
        if i % 3 == 0 {
            ds.define_array::<f32>(
                "temp",
                vec!["time".into(), "depth".into()],
                vec![nt, nd],
                Some(chunk.clone()),
                fill.map(FillValue::Float),
            )
            .await
            .unwrap();
            let a = Array::from_shape_fn(IxDyn(&[nt, nd]), |ix| value(ix[0], ix[1]) as f32);
            ds.write_array("temp", vec![0, 0], a.view()).await.unwrap();
        } else {
            ds.define_array::<f64>(
                "temp",
                vec!["time".into(), "depth".into()],
                vec![nt, nd],
                Some(chunk.clone()),
                fill.map(FillValue::Float),
            )
            .await
            .unwrap();
            let a = Array::from_shape_fn(IxDyn(&[nt, nd]), |ix| value(ix[0], ix[1]));
            ds.write_array("temp", vec![0, 0], a.view()).await.unwrap();
        }
        for t in 0..nt {
            for d in 0..nd {
                let v = value(t, d);
                let v = if fill == Some(v) { None } else { Some(v) };
                r.row(
                    temp,
                    vec![
                        s(&name),
                        u(t),
                        u(d),
                        time_at(t),
                        depth_at(d),
                        ScalarValue::Float64(v),
                    ],
                );
            }
        }

        // count(time): i32 with fill -1 on even datasets, u16 without fill on odd ones.
        if i % 2 == 0 {
            ds.define_array::<i32>(
                "count",
                vec!["time".into()],
                vec![nt],
                None,
                Some(FillValue::Int(-1)),
            )
            .await
            .unwrap();
            let vals: Vec<i32> = (0..nt)
                .map(|t| if t % 3 == 2 { -1 } else { (i * 7 + t) as i32 })
                .collect();
            ds.write_array(
                "count",
                vec![0],
                Array::from_shape_vec(IxDyn(&[nt]), vals.clone())
                    .unwrap()
                    .view(),
            )
            .await
            .unwrap();
            for (t, v) in vals.iter().enumerate() {
                r.row(
                    count,
                    vec![
                        s(&name),
                        u(t),
                        time_at(t),
                        ScalarValue::Int32((*v != -1).then_some(*v)),
                    ],
                );
            }
        } else {
            ds.define_array::<u16>("count", vec!["time".into()], vec![nt], None, None)
                .await
                .unwrap();
            let vals: Vec<u16> = (0..nt).map(|t| (i * 7 + t) as u16).collect();
            ds.write_array(
                "count",
                vec![0],
                Array::from_shape_vec(IxDyn(&[nt]), vals.clone())
                    .unwrap()
                    .view(),
            )
            .await
            .unwrap();
            for (t, v) in vals.iter().enumerate() {
                r.row(
                    count,
                    vec![
                        s(&name),
                        u(t),
                        time_at(t),
                        ScalarValue::Int32(Some(i32::from(*v))),
                    ],
                );
            }
        }

        // label(station): strings, "" is the fill value.
        if i % 3 != 2 {
            let labels: Vec<String> = (0..2)
                .map(|k| {
                    if (i + k) % 4 == 0 {
                        String::new()
                    } else {
                        format!("st-{i}-{k}")
                    }
                })
                .collect();
            ds.define_array::<String>(
                "label",
                vec!["station".into()],
                vec![2],
                None,
                Some(FillValue::String(String::new())),
            )
            .await
            .unwrap();
            ds.write_array(
                "label",
                vec![0],
                Array::from_shape_vec(IxDyn(&[2]), labels.clone())
                    .unwrap()
                    .view(),
            )
            .await
            .unwrap();
            for (k, l) in labels.iter().enumerate() {
                r.row(
                    label,
                    vec![
                        s(&name),
                        u(k),
                        ScalarValue::Utf8((!l.is_empty()).then(|| l.clone())),
                    ],
                );
            }
        }

        // flag(time): booleans.
        ds.define_array::<Bool>("flag", vec!["time".into()], vec![nt], None, None)
            .await
            .unwrap();
        let flags: Vec<Bool> = (0..nt).map(|t| Bool((t + i) % 2 == 0)).collect();
        ds.write_array(
            "flag",
            vec![0],
            Array::from_shape_vec(IxDyn(&[nt]), flags.clone())
                .unwrap()
                .view(),
        )
        .await
        .unwrap();
        for (t, f) in flags.iter().enumerate() {
            r.row(
                flag,
                vec![s(&name), u(t), time_at(t), ScalarValue::Boolean(Some(f.0))],
            );
        }

        // scalar: a 0-d value on every other dataset.
        if i % 2 == 1 {
            ds.define_array::<f64>("scalar", vec![], vec![], None, None)
                .await
                .unwrap();
            let a = Array::from_shape_vec(IxDyn(&[]), vec![i as f64 / 4.0]).unwrap();
            ds.write_array("scalar", vec![], a.view()).await.unwrap();
            r.row(
                scalar,
                vec![s(&name), ScalarValue::Float64(Some(i as f64 / 4.0))],
            );
        }
    }
    atlas.flush().await.unwrap();
    r
}

const QUERIES: &[&str] = &[
    "SELECT * FROM {s}.temp",
    "SELECT * FROM {s}.temp WHERE dataset = 'd03'",
    "SELECT * FROM {s}.temp WHERE dataset IN ('d01', 'd04') AND depth_index BETWEEN 1 AND 3",
    "SELECT * FROM {s}.temp WHERE dataset NOT IN ('d01', 'd04') AND time_index >= 2",
    "SELECT * FROM {s}.temp WHERE dataset LIKE 'd1%' OR dataset = 'd02'",
    "SELECT * FROM {s}.temp WHERE depth > 20 AND depth <= 40",
    "SELECT * FROM {s}.temp WHERE depth IS NULL",
    "SELECT * FROM {s}.temp WHERE depth_index = 4 AND time_index < 2",
    "SELECT * FROM {s}.temp WHERE depth_index > 2.5",
    "SELECT * FROM {s}.temp WHERE depth_index % 2 = 1",
    // Literals far outside any index: empty or full ranges, never an overflow.
    "SELECT * FROM {s}.temp WHERE time_index = 1e20",
    "SELECT * FROM {s}.temp WHERE time_index = 18446744073709551615",
    "SELECT * FROM {s}.temp WHERE time_index <= 1e300 AND depth_index > -1e300",
    "SELECT * FROM {s}.temp WHERE depth_index BETWEEN -1e20 AND 1e20",
    "SELECT * FROM {s}.temp WHERE time >= TIMESTAMP '2023-11-16 00:00:00'",
    "SELECT * FROM {s}.temp WHERE temp > 500",
    "SELECT * FROM {s}.temp WHERE temp BETWEEN 100 AND 310",
    "SELECT * FROM {s}.temp WHERE temp IS NULL",
    "SELECT * FROM {s}.temp WHERE isnan(temp)",
    "SELECT * FROM {s}.temp WHERE temp > 1e9",
    "SELECT * FROM {s}.temp WHERE temp IS NOT NULL AND dataset LIKE 'd0%'",
    "SELECT dataset, depth_index FROM {s}.temp WHERE time_index = 1",
    "SELECT dataset, count(*), count(temp), min(temp), max(temp) FROM {s}.temp GROUP BY dataset",
    "SELECT count(*), count(temp), min(temp), max(temp) FROM {s}.temp",
    "SELECT count(*) FROM {s}.temp WHERE dataset = 'd07'",
    "SELECT round(sum(temp), 3) FROM {s}.temp WHERE NOT isnan(temp)",
    "SELECT * FROM {s}.count",
    "SELECT * FROM {s}.count WHERE count < 20",
    "SELECT count(*), min(count), max(count), sum(count) FROM {s}.count",
    "SELECT * FROM {s}.count WHERE count IS NULL",
    "SELECT * FROM {s}.label",
    "SELECT * FROM {s}.label WHERE label LIKE 'st-1%'",
    "SELECT * FROM {s}.label WHERE label IS NULL",
    "SELECT min(label), max(label) FROM {s}.label",
    "SELECT * FROM {s}.flag WHERE flag",
    "SELECT count(*), min(flag), max(flag) FROM {s}.flag",
    "SELECT * FROM {s}.scalar",
    "SELECT * FROM {s}.scalar WHERE scalar > 1",
    "SELECT * FROM {s}.depth WHERE depth < 15",
    "SELECT * FROM {s}.time WHERE time > TIMESTAMP '2023-11-17 00:00:00'",
    "SELECT max(time), min(time) FROM {s}.time",
    "SELECT t.dataset, t.time, t.temp FROM {s}.temp t JOIN {s}.count c \
     ON t.dataset = c.dataset AND t.time_index = c.time_index WHERE c.count > 30 AND t.depth_index = 0",
    "SELECT count(*) FROM (SELECT dataset, time_index FROM {s}.temp LIMIT 50)",
];

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut r = rows_text(&batches);
    r.sort();
    r
}

async fn check(partitions: usize) {
    let (ctx, store) = memory_session(partitions);
    let mut atlas = Atlas::create(store, Path::from("gen"), StoreConfig::default())
        .await
        .unwrap();
    let reference = build(&mut atlas).await;
    reference.register(&ctx);
    register(&ctx, "memory:///gen").await;
    for q in QUERIES {
        let ours = rows(&ctx, &q.replace("{s}", "s")).await;
        let theirs = rows(&ctx, &q.replace("{s}", "r")).await;
        assert_eq!(ours, theirs, "{q} (target_partitions={partitions})");
    }
}

/// The suite on a coordinator whose scans three loopback workers run (gRPC over TCP), each
/// scan split into as many tasks as there are workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_query_matches_when_three_workers_run_the_scans() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addresses: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let workers = atlas_distributed::Workers::parse(&addresses.join(",")).unwrap();
    let ctx = distributed_session_on(2, &store, workers);
    ctx.sql("SET atlas.elements_per_task = 1").await.unwrap();
    let mut atlas = Atlas::create(
        Arc::clone(&store),
        Path::from("gen"),
        StoreConfig::default(),
    )
    .await
    .unwrap();
    let reference = build(&mut atlas).await;
    reference.register(&ctx);
    let handle = register(&ctx, "memory:///gen").await;
    // The workers share the coordinator's in-memory object store through the handle (a store
    // on disk or in an object store they would open themselves).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for listener in listeners {
        let mut stopped = stopped.clone();
        let codec = AtlasCodec::new().with_store(Arc::clone(&handle));
        tokio::spawn(atlas_distributed::serve(listener, codec, async move {
            let _ = stopped.changed().await;
        }));
    }
    let mut split = 0;
    for q in QUERIES {
        let sql = q.replace("{s}", "s");
        let plan = ctx
            .sql(&sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let text =
            atlas_distributed::datafusion_distributed::display_plan_ascii(plan.as_ref(), false);
        split += usize::from(text.contains("DistributedLeafExec"));
        let ours = rows(&ctx, &sql).await;
        let theirs = rows(&ctx, &q.replace("{s}", "r")).await;
        assert_eq!(ours, theirs, "{q} (distributed)");
    }
    // Most scans were split across workers (the rest read too little for more than one task).
    assert!(
        split * 2 > QUERIES.len(),
        "{split} of {} plans split",
        QUERIES.len()
    );
    let _ = stop.send(true);
}

#[tokio::test]
async fn every_query_matches_datafusion_over_the_same_data_in_memory() {
    check(1).await;
}

#[tokio::test]
async fn every_query_matches_with_work_split_across_partitions() {
    check(3).await;
}
