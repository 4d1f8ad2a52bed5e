//! Store benchmarks: flushing many small datasets (the `sensors` workload of DESIGN.md: 1,000
//! datasets, 3 variables on time=24) and reading one variable across all of them.
//!
//! `cargo bench -p atlas-benches --bench store`

use std::sync::Arc;

use atlas_store::ndarray::{Array, IxDyn};
use atlas_store::object_store::{memory::InMemory, path::Path};
use atlas_store::{Atlas, StoreConfig};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const DATASETS: usize = 1000;
const VARS: [&str; 3] = ["temperature", "humidity", "pressure"];

async fn sensors(dir: &std::path::Path) -> Atlas {
    let mut atlas = Atlas::create_path(dir, StoreConfig::default())
        .await
        .expect("create");
    fill(&mut atlas).await;
    atlas
}

async fn fill(atlas: &mut Atlas) {
    for i in 0..DATASETS {
        let ds = atlas
            .create_dataset(&format!("sensor_{i:04}"))
            .await
            .expect("dataset");
        for (v, name) in VARS.iter().enumerate() {
            ds.define_array::<f64>(name, vec!["time".into()], vec![24], None, None)
                .await
                .expect("define");
            let data = Array::from_shape_fn(IxDyn(&[24]), |t| (i * 31 + v * 7 + t[0]) as f64 * 0.1);
            ds.write_array(name, vec![0], data.view())
                .await
                .expect("write");
        }
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    c.bench_function("flush_1000_sensor_datasets_local_fs", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let atlas = rt.block_on(sensors(&dir.path().join("s")));
                (dir, atlas)
            },
            |(dir, mut atlas)| {
                rt.block_on(atlas.flush()).expect("flush");
                dir
            },
            BatchSize::PerIteration,
        )
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let names = rt.block_on(async {
        let mut atlas = sensors(&dir.path().join("s")).await;
        atlas.flush().await.expect("flush");
        atlas.list_datasets()
    });
    c.bench_function("read_one_variable_across_1000_datasets", |b| {
        b.iter(|| {
            rt.block_on(async {
                let atlas = Atlas::open_path(dir.path().join("s")).await.expect("open");
                atlas
                    .read_array_across_stacked::<f64>("temperature", &names, vec![], vec![])
                    .await
                    .expect("read")
            })
        })
    });
    c.bench_function("flush_1000_sensor_datasets_in_memory", |b| {
        b.iter_batched(
            || {
                rt.block_on(async {
                    let mut atlas = Atlas::create(
                        Arc::new(InMemory::new()),
                        Path::from("s"),
                        StoreConfig::default(),
                    )
                    .await
                    .expect("create");
                    fill(&mut atlas).await;
                    atlas
                })
            },
            |mut atlas| rt.block_on(atlas.flush()).expect("flush"),
            BatchSize::PerIteration,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
