//! `atlas_sql.ingest`: NetCDF files into a store, the ingest of `atlas-sql ingest` (CF
//! decoding, periodic commits, failures reported per file), with progress given to a Python
//! callable.

use std::collections::HashMap;
use std::path::PathBuf;

use atlas_ingest::{IngestOptions, NameFrom, Progress};
use datafusion_python_util::wait_for_future;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Ingests the NetCDF files (or folders of them) `inputs` into the store at `location`, one
/// dataset per file. `progress`, when given, is called after each file with `(files_done,
/// files_total, bytes_done, bytes_total)`. Returns what was done: `ingested`, `bytes`,
/// `skipped`, `failures` (`(path, reason)` pairs), `conflicts` and `seconds`.
#[pyfunction]
#[pyo3(signature = (
    location, inputs, create = true, chunk = None, name_from = "stem", skip_existing = false,
    raw = false, strict = false, jobs = None, flush_every = None, progress = None
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn ingest<'py>(
    py: Python<'py>,
    location: &str,
    inputs: Vec<PathBuf>,
    create: bool,
    chunk: Option<HashMap<String, usize>>,
    name_from: &str,
    skip_existing: bool,
    raw: bool,
    strict: bool,
    jobs: Option<usize>,
    flush_every: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let defaults = IngestOptions::default();
    let chunks = chunk.unwrap_or_default();
    if let Some((dim, _)) = chunks.iter().find(|(_, n)| **n == 0) {
        return Err(PyValueError::new_err(format!(
            "chunk length of {dim:?} must be a positive integer"
        )));
    }
    let options = IngestOptions {
        create,
        chunks,
        name_from: match name_from {
            "stem" => NameFrom::Stem,
            "relpath" => NameFrom::Relpath,
            other => {
                return Err(PyValueError::new_err(format!(
                    "name_from must be 'stem' or 'relpath', not {other:?}"
                )));
            }
        },
        skip_existing,
        raw,
        strict,
        jobs: jobs.unwrap_or(defaults.jobs).max(1),
        flush_every: flush_every.unwrap_or(defaults.flush_every).max(1),
        ..defaults
    };
    // The callback's first error is kept and raised once the ingest has stopped.
    let mut failed: Option<PyErr> = None;
    let mut on_progress = |p: &Progress| {
        let Some(cb) = &progress else { return };
        if failed.is_some() {
            return;
        }
        Python::attach(|py| {
            let args = (p.files_done, p.files_total, p.bytes_done, p.bytes_total);
            if let Err(e) = cb.call1(py, args) {
                failed = Some(e);
            }
        });
    };
    let report = wait_for_future(
        py,
        atlas_ingest::ingest(location, &inputs, &options, &mut on_progress),
    )?;
    if let Some(e) = failed {
        return Err(e);
    }
    let report = report.map_err(|e| match e {
        atlas_ingest::Error::Input(s) => PyValueError::new_err(s),
        other => PyRuntimeError::new_err(other.to_string()),
    })?;
    let out = PyDict::new(py);
    out.set_item("ingested", report.ingested)?;
    out.set_item("bytes", report.bytes)?;
    out.set_item("skipped", report.skipped)?;
    let failures: Vec<(String, String)> = report
        .failures
        .iter()
        .map(|f| (f.path.display().to_string(), f.reason.clone()))
        .collect();
    out.set_item("failures", failures)?;
    out.set_item("conflicts", report.conflicts)?;
    out.set_item("seconds", report.elapsed.as_secs_f64())?;
    Ok(out)
}
