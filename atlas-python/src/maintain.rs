//! Store maintenance from Python: `compact`, `vacuum` (with a dry run), `verify` and
//! `delete`, the operations of `atlas-sql compact|vacuum|verify|delete`, returning what they
//! did as plain Python values.

use std::time::Duration;

use atlas_datafusion::atlas_store::{Atlas, CompactReport};
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

/// The names of the datasets of the store at `location`, in store order.
#[pyfunction]
pub(crate) fn datasets(py: Python<'_>, location: &str) -> PyResult<Vec<String>> {
    wait_for_future(py, async {
        let atlas = open(location, None).await?;
        Ok::<_, String>(atlas.list_datasets())
    })?
    .map_err(sql_err)
}
