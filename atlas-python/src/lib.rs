//! `atlas_sql._internal`: ATLAS stores exported to DataFusion's Python bindings through
//! DataFusion's FFI (`datafusion-ffi` 55, the major `datafusion` 55.x on PyPI is built with).
//!
//! A [`Store`] is a schema provider (`__datafusion_schema_provider__`): every variable a table,
//! plus the metadata tables. A [`Table`] is one variable's table provider
//! (`__datafusion_table_provider__`). Both keep the pushdowns of the Rust surface: projection,
//! dataset, index, coordinate and value filters, limit and exact statistics. The Python package
//! (`python/atlas_sql`) adds `register`, `table`, `atlas_scan`, `to_xarray` and the version check.

#![warn(missing_docs)]

mod ingest;
mod maintain;
mod runtime;

use std::sync::Arc;

use atlas_datafusion::{
    AtlasSchemaProvider, AtlasStore, AtlasTableFactory, TypeConflicts, store_table,
};
use datafusion::catalog::TableProvider;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion_ffi::schema_provider::FFI_SchemaProvider;
use datafusion_ffi::table_provider::FFI_TableProvider;
use datafusion_ffi::table_provider_factory::FFI_TableProviderFactory;
use datafusion_python_util::{
    ffi_logical_codec_from_pycapsule, get_tokio_runtime, wait_for_future,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

fn sql_err(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

fn policy(type_conflicts: Option<&str>) -> PyResult<Option<TypeConflicts>> {
    type_conflicts
        .map(|p| {
            p.parse::<TypeConflicts>()
                .map_err(|e| PyValueError::new_err(e.to_string()))
        })
        .transpose()
}

/// An opened ATLAS store: register it as a schema (`ctx.catalog().register_schema(name,
/// store)`), or take one variable's table with [`Store::table`].
#[pyclass(name = "Store", module = "atlas_sql._internal", frozen)]
#[derive(Debug)]
struct Store {
    store: Arc<AtlasStore>,
    provider: Arc<AtlasSchemaProvider>,
}

/// One variable's table (or a metadata table) of a store, for `ctx.register_table(name, t)`.
#[pyclass(name = "Table", module = "atlas_sql._internal", frozen)]
#[derive(Debug)]
struct Table {
    provider: Arc<dyn TableProvider>,
    variable: String,
}

/// Opens the store at `location`: a local path or a `file://`, `s3://`, `gs://`, `az://` or
/// `http(s)://` URL, its client configured from the environment.
#[pyfunction]
#[pyo3(signature = (location, type_conflicts = None))]
fn open_store(py: Python<'_>, location: &str, type_conflicts: Option<&str>) -> PyResult<Store> {
    let policy = policy(type_conflicts)?;
    let runtime = RuntimeEnv::default();
    let store = wait_for_future(py, AtlasStore::open(location, &runtime))?.map_err(sql_err)?;
    let provider = AtlasSchemaProvider::new(Arc::clone(&store));
    let provider = match policy {
        Some(p) => provider.with_type_conflicts(p),
        None => provider,
    };
    Ok(Store {
        store,
        provider: Arc::new(provider),
    })
}

#[pymethods]
impl Store {
    /// Where the store is.
    #[getter]
    fn location(&self) -> &str {
        self.store.location()
    }

    /// The variables (one table each), sorted.
    fn variables(&self) -> Vec<String> {
        self.store.variables()
    }

    /// The table of `variable` (or of a metadata table such as `_datasets`).
    #[pyo3(signature = (variable, type_conflicts = None))]
    fn table(&self, variable: &str, type_conflicts: Option<&str>) -> PyResult<Table> {
        let policy = policy(type_conflicts)?.or(self.provider.type_conflicts());
        let provider = match policy {
            Some(p) => atlas_datafusion::policy_table(&self.store, variable, p),
            None => store_table(&self.store, variable),
        }
        .map_err(sql_err)?;
        Ok(Table {
            provider,
            variable: variable.to_string(),
        })
    }

    /// The table of several variables on their shared grid (columns in the order given).
    #[pyo3(signature = (variables, type_conflicts = None))]
    fn grid(&self, variables: Vec<String>, type_conflicts: Option<&str>) -> PyResult<Table> {
        let policy = policy(type_conflicts)?.or(self.provider.type_conflicts());
        let name = variables.join(", ");
        let table =
            atlas_datafusion::grid_table(&self.store, &name, &variables).map_err(sql_err)?;
        let table = match policy {
            Some(p) => table.with_type_conflicts(p),
            None => table,
        };
        Ok(Table {
            provider: Arc::new(table),
            variable: name,
        })
    }

    /// The schema provider as DataFusion's FFI capsule (called by `register_schema`).
    fn __datafusion_schema_provider__<'py>(
        &self,
        py: Python<'py>,
        session: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let codec = ffi_logical_codec_from_pycapsule(session, None)?;
        let provider = Arc::new(runtime::Schema(
            Arc::clone(&self.provider) as Arc<dyn datafusion::catalog::SchemaProvider>
        )) as Arc<dyn datafusion::catalog::SchemaProvider>;
        let ffi = FFI_SchemaProvider::new_with_ffi_codec(
            provider,
            Some(get_tokio_runtime().handle().clone()),
            codec,
        );
        PyCapsule::new_with_value(py, ffi, c"datafusion_schema_provider")
    }

    fn __repr__(&self) -> String {
        format!(
            "atlas_sql.Store({:?}, {} datasets, {} variables)",
            self.store.location(),
            self.store.catalog().len(),
            self.store.variables().len()
        )
    }
}

#[pymethods]
impl Table {
    /// The variable (or metadata table) this table shows.
    #[getter]
    fn variable(&self) -> &str {
        &self.variable
    }

    /// The table provider as DataFusion's FFI capsule (called by `register_table`).
    fn __datafusion_table_provider__<'py>(
        &self,
        py: Python<'py>,
        session: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let codec = ffi_logical_codec_from_pycapsule(session, None)?;
        let ffi = FFI_TableProvider::new_with_ffi_codec(
            Arc::clone(&self.provider),
            true,
            Some(get_tokio_runtime().handle().clone()),
            codec,
        );
        PyCapsule::new_with_value(py, ffi, c"datafusion_table_provider")
    }

    fn __repr__(&self) -> String {
        format!("atlas_sql.Table({:?})", self.variable)
    }
}

/// The factory behind `CREATE EXTERNAL TABLE … STORED AS ATLAS`, for
/// `ctx.register_table_factory("ATLAS", factory)`.
#[pyclass(name = "TableFactory", module = "atlas_sql._internal", frozen)]
#[derive(Debug, Default)]
struct TableFactory;

#[pymethods]
impl TableFactory {
    #[new]
    fn new() -> Self {
        TableFactory
    }

    /// The factory as DataFusion's FFI capsule (called by `register_table_factory`).
    fn __datafusion_table_provider_factory__<'py>(
        &self,
        py: Python<'py>,
        codec: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let codec = ffi_logical_codec_from_pycapsule(codec, None)?;
        let ffi = FFI_TableProviderFactory::new_with_ffi_codec(
            Arc::new(runtime::Factory(Arc::new(AtlasTableFactory))),
            Some(get_tokio_runtime().handle().clone()),
            codec,
        );
        PyCapsule::new_with_value(py, ffi, c"datafusion_table_provider_factory")
    }
}

/// A table whose `INSERT INTO` writes a new store at `location`: the rows' columns mapped as
/// `COPY … STORED AS ATLAS` maps them. `schema` is the rows' Arrow schema as an IPC message
/// (`pyarrow.Schema.serialize()`), `options` the `COPY` options (`shape.<column>` …).
#[pyfunction]
fn new_store(
    location: &str,
    schema: &[u8],
    options: std::collections::HashMap<String, String>,
) -> PyResult<Table> {
    let schema = datafusion::arrow::ipc::convert::try_schema_from_ipc_buffer(schema)
        .map_err(|e| PyValueError::new_err(format!("not an Arrow schema message: {e}")))?;
    let provider = atlas_datafusion::new_store_table(location, Arc::new(schema), &options)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(Table {
        provider,
        variable: location.to_string(),
    })
}

/// The DataFusion FFI major version this module was built against.
#[pyfunction]
fn ffi_version() -> u64 {
    datafusion_ffi::version()
}

/// The module.
#[pymodule]
fn _internal(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Store>()?;
    m.add_class::<Table>()?;
    m.add_class::<TableFactory>()?;
    m.add_function(wrap_pyfunction!(open_store, m)?)?;
    m.add_function(wrap_pyfunction!(ffi_version, m)?)?;
    m.add_function(wrap_pyfunction!(new_store, m)?)?;
    m.add_function(wrap_pyfunction!(ingest::ingest, m)?)?;
    m.add_function(wrap_pyfunction!(maintain::compact, m)?)?;
    m.add_function(wrap_pyfunction!(maintain::vacuum, m)?)?;
    m.add_function(wrap_pyfunction!(maintain::verify, m)?)?;
    m.add_function(wrap_pyfunction!(maintain::delete, m)?)?;
    m.add_function(wrap_pyfunction!(maintain::datasets, m)?)?;
    m.add_function(wrap_pyfunction!(maintain::migrate, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
