//! Store maintenance from Python: `compact`, `vacuum` (with a dry run), `verify` and
//! `delete`, the operations of `atlas-sql compact|vacuum|verify|delete`, returning what they
//! did as plain Python values.

use std::time::Duration;

use atlas_datafusion::atlas_store::{
    Atlas, Codec, CompactReport, CopyPhase, CopyProgress, StoreConfig,
};
use datafusion_python_util::wait_for_future;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::sql_err;

async fn open(location: &str, retention: Option<Duration>) -> Result<Atlas, String> {
    let atlas = Atlas::open_location(location)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(r) = retention {
        atlas.set_orphan_retention(r);
    }
    Ok(atlas)
}

fn retention_of(seconds: Option<f64>) -> PyResult<Option<Duration>> {
    seconds
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                PyValueError::new_err(format!(
                    "retention must be a non-negative number of seconds, not {s}"
                ))
            })
        })
        .transpose()
}

/// What a clean-up removed and kept, as `compact` and `vacuum` return it.
fn removed<'py>(py: Python<'py>, report: &CompactReport) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("segments_removed", report.segments_removed)?;
    out.set_item("bytes_removed", report.bytes_removed)?;
    out.set_item("retired_kept", report.retired_kept)?;
    out.set_item("orphans_kept", report.orphans_kept)?;
    Ok(out)
}

/// Merges each variable's segments into one and removes what the store no longer needs
/// (older than `retention` seconds, default the store's). Returns what it did.
#[pyfunction]
#[pyo3(signature = (location, retention = None))]
pub(crate) fn compact<'py>(
    py: Python<'py>,
    location: &str,
    retention: Option<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let retention = retention_of(retention)?;
    let report = wait_for_future(py, async {
        let mut atlas = open(location, retention).await?;
        atlas.compact().await.map_err(|e| e.to_string())
    })?
    .map_err(sql_err)?;
    let out = removed(py, &report)?;
    out.set_item("variables_rewritten", report.variables_rewritten)?;
    Ok(out)
}

/// Removes segments no commit needs any more (older than `retention` seconds). With
/// `dry_run`, removes nothing and lists what it would remove.
#[pyfunction]
#[pyo3(signature = (location, retention = None, dry_run = false))]
pub(crate) fn vacuum<'py>(
    py: Python<'py>,
    location: &str,
    retention: Option<f64>,
    dry_run: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let retention = retention_of(retention)?;
    if dry_run {
        let plan = wait_for_future(py, async {
            let atlas = open(location, retention).await?;
            atlas.vacuum_plan().await.map_err(|e| e.to_string())
        })?
        .map_err(sql_err)?;
        let out = PyDict::new(py);
        out.set_item("retired", plan.retired)?;
        out.set_item("orphans", plan.orphans)?;
        out.set_item("retired_kept", plan.retired_kept)?;
        out.set_item("orphans_kept", plan.orphans_kept)?;
        return Ok(out);
    }
    let report = wait_for_future(py, async {
        let mut atlas = open(location, retention).await?;
        atlas.vacuum().await.map_err(|e| e.to_string())
    })?
    .map_err(sql_err)?;
    removed(py, &report)
}

/// Reads and checks every segment; returns the counts and every damaged or missing segment
/// with its error and the (dataset, array) pairs it holds.
#[pyfunction]
pub(crate) fn verify<'py>(py: Python<'py>, location: &str) -> PyResult<Bound<'py, PyDict>> {
    let report = wait_for_future(py, async {
        let atlas = open(location, None).await?;
        atlas.verify_all(|_, _| {}).await.map_err(|e| e.to_string())
    })?
    .map_err(sql_err)?;
    let out = PyDict::new(py);
    out.set_item("segments_checked", report.segments_checked)?;
    out.set_item("bytes_checked", report.bytes_checked)?;
    let damaged = report
        .damaged
        .into_iter()
        .map(|d| {
            let item = PyDict::new(py);
            item.set_item("segment", d.key)?;
            item.set_item("error", d.error.to_string())?;
            item.set_item("holds", d.holds)?;
            Ok(item)
        })
        .collect::<PyResult<Vec<_>>>()?;
    out.set_item("damaged", damaged)?;
    Ok(out)
}

/// Deletes datasets `names` in one commit (all or none); with `dry_run`, only checks they
/// exist. Returns the names.
#[pyfunction]
#[pyo3(signature = (location, names, dry_run = false))]
pub(crate) fn delete(
    py: Python<'_>,
    location: &str,
    names: Vec<String>,
    dry_run: bool,
) -> PyResult<Vec<String>> {
    wait_for_future(py, async {
        let mut atlas = open(location, None).await?;
        if let Some(missing) = names.iter().find(|n| !atlas.dataset_exists(n)) {
            return Err(format!("no dataset {missing:?} in {location}"));
        }
        if dry_run {
            return Ok(names);
        }
        for n in &names {
            atlas.delete_dataset(n).await.map_err(|e| e.to_string())?;
        }
        atlas.flush().await.map_err(|e| e.to_string())?;
        Ok(names)
    })?
    .map_err(sql_err)
}

/// Copies the store at `src` (an atlas-rust 0.17 collection or an atlas-sql store) into a new
/// atlas-sql store at `dst`, then reads the copy back and checks every array equal to the
/// source. `progress`, when given, is called with `(phase, datasets_done, datasets_total,
/// cells_done, cells_total)`, `phase` one of `"copying"`, `"committing"`, `"verifying"`. On
/// failure what was written at `dst` is removed.
#[pyfunction]
#[pyo3(signature = (src, dst, codec = "zstd", progress = None))]
pub(crate) fn migrate<'py>(
    py: Python<'py>,
    src: &str,
    dst: &str,
    codec: &str,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let config = StoreConfig {
        codec: codec
            .parse::<Codec>()
            .map_err(|e| PyValueError::new_err(format!("codec: {e}")))?,
        ..StoreConfig::default()
    };
    // The callback's first error is kept and raised once the copy has stopped.
    let mut failed: Option<PyErr> = None;
    let on_progress = |p: &CopyProgress| {
        let Some(cb) = &progress else { return };
        if failed.is_some() {
            return;
        }
        let phase = match p.phase {
            CopyPhase::Copying => "copying",
            CopyPhase::Committing => "committing",
            CopyPhase::Verifying => "verifying",
        };
        Python::attach(|py| {
            let args = (
                phase,
                p.datasets_done,
                p.datasets_total,
                p.cells_done,
                p.cells_total,
            );
            if let Err(e) = cb.call1(py, args) {
                failed = Some(e);
            }
        });
    };
    let report = wait_for_future(
        py,
        atlas_datafusion::atlas_store::migrate(src, dst, config, on_progress),
    )?;
    if let Some(e) = failed {
        return Err(e);
    }
    let report = report.map_err(|e| sql_err(e.to_string()))?;
    let out = PyDict::new(py);
    out.set_item("datasets", report.datasets)?;
    out.set_item("arrays", report.arrays)?;
    out.set_item("arrays_unwritten", report.arrays_unwritten)?;
    out.set_item("cells", report.cells)?;
    out.set_item("cells_verified", report.cells_verified)?;
    out.set_item("generation", report.generation)?;
    out.set_item("source_format", report.source_format)?;
    Ok(out)
}

/// The names of the datasets of the store at `location`, in store order.
#[pyfunction]
pub(crate) fn datasets(py: Python<'_>, location: &str) -> PyResult<Vec<String>> {
    wait_for_future(py, async {
        let atlas = open(location, None).await?;
        Ok::<_, String>(atlas.list_datasets())
    })?
    .map_err(sql_err)
}
