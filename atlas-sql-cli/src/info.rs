//! `atlas-sql info`: what a store holds.

use std::collections::BTreeMap;

use atlas_datafusion::AtlasStore;
use datafusion::execution::runtime_env::RuntimeEnv;

use crate::exec::CliError;
use atlas_ingest::consistency::Survey;

fn mib(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
    }
}

#[derive(Default)]
struct VarSummary {
    datasets: usize,
    dtypes: Vec<String>,
    dims: Vec<String>,
    shapes: Vec<Vec<usize>>,
    elements: u64,
}

/// A text report of a store: one line per variable.
pub fn report(store: &AtlasStore) -> String {
    let catalog = store.catalog();
    let mut vars: BTreeMap<String, VarSummary> = BTreeMap::new();
    let mut keys: Vec<String> = Vec::new();
    for ds in catalog.datasets() {
        for (k, _) in ds.attributes() {
            if !keys.iter().any(|x| x == k) {
                keys.push(k.to_string());
            }
        }
        for a in ds.arrays() {
            let schema = a.schema();
            let v = vars.entry(a.name().to_string()).or_default();
            v.datasets += 1;
            let dt = atlas_datafusion::dtype_name(&schema.dtype);
            if !v.dtypes.contains(&dt) {
                v.dtypes.push(dt);
            }
            for d in &schema.dims {
                if !v.dims.contains(d) {
                    v.dims.push(d.clone());
                }
            }
            if !v.shapes.contains(&schema.shape) {
                v.shapes.push(schema.shape.clone());
            }
            v.elements += schema.element_count();
        }
    }
    let segments = store.atlas().list_segments();
    let mut seg: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for s in &segments {
        let e = seg.entry(s.variable.as_str()).or_default();
        e.0 += 1;
        e.1 += s.size;
    }
    let total: u64 = segments.iter().map(|s| s.size).sum();
    let mut out = match store.atlas().upstream_format() {
        Some(format) => format!(
            "store {}\n{format}, read-only\n{} datasets, {} variables, {} segments, {} on disk\n",
            store.location(),
            catalog.len(),
            vars.len(),
            segments.len(),
            mib(total),
        ),
        None => format!(
            "store {}\n{} datasets, {} variables, {} segments, {} on disk, generation {}, \
             format version {}\n",
            store.location(),
            catalog.len(),
            vars.len(),
            segments.len(),
            mib(total),
            store.atlas().generation(),
            store.atlas().format_version()
        ),
    };
    if !keys.is_empty() {
        out.push_str(&format!("dataset attributes: {}\n", keys.join(", ")));
    }
    let rows: Vec<[String; 7]> = vars
        .iter()
        .map(|(name, v)| {
            let mut shapes: Vec<String> = v
                .shapes
                .iter()
                .take(3)
                .map(|s| {
                    if s.is_empty() {
                        "scalar".into()
                    } else {
                        s.iter()
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join("×")
                    }
                })
                .collect();
            if v.shapes.len() > 3 {
                shapes.push(format!("+{} more", v.shapes.len() - 3));
            }
            let (n, bytes) = seg.get(name.as_str()).copied().unwrap_or_default();
            [
                name.clone(),
                v.datasets.to_string(),
                v.dtypes.join("|"),
                format!("({})", v.dims.join(", ")),
                shapes.join(", "),
                format!("{} elements", v.elements),
                format!(
                    "{n} segment{} {}",
                    if n == 1 { "" } else { "s" },
                    mib(bytes)
                ),
            ]
        })
        .collect();
    let header = [
        "variable", "datasets", "dtype", "dims", "shapes", "size", "on disk",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    out.push_str(&line(header.to_vec()));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    let disagreements = Survey::of(catalog).report(catalog);
    if !disagreements.is_empty() {
        out.push_str(&format!(
            "the datasets disagree on {} variable{} (SELECT * FROM _conflicts lists every \
             dataset):\n",
            disagreements.len(),
            if disagreements.len() == 1 { "" } else { "s" }
        ));
        for d in disagreements {
            out.push_str(&format!("  - {d}\n"));
        }
    }
    out
}

pub async fn run(location: &str) -> Result<(), CliError> {
    let runtime = RuntimeEnv::default();
    let store = AtlasStore::open(location, &runtime).await?;
    print!("{}", report(&store));
    Ok(())
}
