//! Runs the sqllogictest files in `tests/slt/` against stores built here: `edge` (edge cases)
//! and `empty` (a store with no datasets).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use atlas_datafusion::atlas_store::object_store::ObjectStore;
use atlas_datafusion::atlas_store::object_store::memory::InMemory;
use atlas_datafusion::atlas_store::object_store::path::Path;
use atlas_datafusion::atlas_store::{Atlas, Attr, FillValue, StoreConfig, TimestampNs};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use ndarray::{Array, IxDyn};
use sqllogictest::{DBOutput, DefaultColumnType};

struct Db {
    ctx: SessionContext,
}

#[async_trait]
impl sqllogictest::AsyncDB for Db {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DataFusionError> {
        let df = self.ctx.sql(sql).await?;
        let width = df.schema().fields().len();
        let batches = df.collect().await?;
        if width == 0 {
            return Ok(DBOutput::StatementComplete(0));
        }
        let opts = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for b in &batches {
            let fmts = b
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
                .collect::<Result<Vec<_>, _>>()?;
            for r in 0..b.num_rows() {
                rows.push(
                    fmts.iter()
                        .map(|f| {
                            let s = f.value(r).to_string();
                            if s.is_empty() {
                                "(empty)".to_string()
                            } else {
                                s
                            }
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; width],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "atlas-datafusion"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

async fn edge_store(store: Arc<dyn ObjectStore>) {
    let mut atlas = Atlas::create(store, Path::from("edge"), StoreConfig::default())
        .await
        .unwrap();
    // A dataset with a zero-length axis next to a normal one.
    let a = atlas.create_dataset("normal").await.unwrap();
    a.set_attribute("kind", Attr::String("profile".into()))
        .unwrap();
    a.set_attribute(
        "started",
        Attr::TimestampNanoseconds(1_600_000_000_000_000_000),
    )
    .unwrap();
    a.define_array::<f64>(
        "temp",
        vec!["depth".into()],
        vec![4],
        Some(vec![2]),
        Some(FillValue::Float(f64::NAN)),
    )
    .await
    .unwrap();
    let v = Array::from_shape_vec(IxDyn(&[4]), vec![10.5, f64::NAN, 8.25, -1.0]).unwrap();
    a.write_array("temp", vec![0], v.view()).await.unwrap();
    a.define_array::<f32>("level", vec!["depth".into()], vec![4], None, None)
        .await
        .unwrap();
    let v = Array::from_shape_vec(IxDyn(&[4]), vec![f32::NAN, 1.0, f32::INFINITY, -0.0]).unwrap();
    a.write_array("level", vec![0], v.view()).await.unwrap();
    a.define_array::<f64>("depth", vec!["depth".into()], vec![4], None, None)
        .await
        .unwrap();
    let v = Array::from_shape_vec(IxDyn(&[4]), vec![0.0, 5.0, 10.0, 20.0]).unwrap();
    a.write_array("depth", vec![0], v.view()).await.unwrap();
    a.define_array::<String>(
        "station",
        vec!["obs".into()],
        vec![3],
        None,
        Some(FillValue::String("?".into())),
    )
    .await
    .unwrap();
    let v = Array::from_shape_vec(
        IxDyn(&[3]),
        vec!["Ørsted".to_string(), "?".into(), "".into()],
    )
    .unwrap();
    a.write_array("station", vec![0], v.view()).await.unwrap();
    a.define_array::<TimestampNs>("observed", vec!["obs".into()], vec![3], None, None)
        .await
        .unwrap();
    let v = Array::from_shape_vec(
        IxDyn(&[3]),
        vec![
            TimestampNs(0),
            TimestampNs(1_600_000_000_000_000_000),
            TimestampNs(-86_400_000_000_000),
        ],
    )
    .unwrap();
    a.write_array("observed", vec![0], v.view()).await.unwrap();
    a.define_array::<i64>("answer", vec![], vec![], None, None)
        .await
        .unwrap();
    a.write_array(
        "answer",
        vec![],
        Array::from_shape_vec(IxDyn(&[]), vec![42i64])
            .unwrap()
            .view(),
    )
    .await
    .unwrap();

    let z = atlas.create_dataset("zero").await.unwrap();
    z.define_array::<f64>(
        "temp",
        vec!["depth".into()],
        vec![0],
        None,
        Some(FillValue::Float(f64::NAN)),
    )
    .await
    .unwrap();
    z.define_array::<i64>("answer", vec![], vec![], None, None)
        .await
        .unwrap();
    z.write_array(
        "answer",
        vec![],
        Array::from_shape_vec(IxDyn(&[]), vec![7i64])
            .unwrap()
            .view(),
    )
    .await
    .unwrap();
    atlas.flush().await.unwrap();
}

async fn session() -> SessionContext {
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(2)
            .with_information_schema(true),
    );
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    ctx.register_object_store(&url::Url::parse("memory://").unwrap(), Arc::clone(&store));
    edge_store(Arc::clone(&store)).await;
    Atlas::create(
        Arc::clone(&store),
        Path::from("empty"),
        StoreConfig::default(),
    )
    .await
    .unwrap();
    atlas_datafusion::register_atlas(&ctx);
    atlas_datafusion::register_store(&ctx, "edge", "memory:///edge")
        .await
        .unwrap();
    atlas_datafusion::register_store(&ctx, "empty", "memory:///empty")
        .await
        .unwrap();
    ctx
}

#[tokio::test]
async fn sqllogictest_files_pass() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let mut runner = sqllogictest::Runner::new(|| async {
            Ok(Db {
                ctx: session().await,
            })
        });
        runner
            .run_file_async(&file)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}
