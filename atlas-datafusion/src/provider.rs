//! Entry points: a schema per store, `CREATE EXTERNAL TABLE … STORED AS ATLAS`, table functions,
//! and one-line registration helpers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::{
    SchemaProvider, Session, TableFunctionArgs, TableFunctionImpl, TableProvider,
    TableProviderFactory,
};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::context::SessionContext;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{CreateExternalTable, Expr};

use crate::error::Error;
use crate::layout::Layout;
use crate::layout::TypeConflicts;
use crate::meta::{
    METADATA_TABLES, arrays_table, attributes_table, conflicts_table, datasets_table, tables_table,
};
use crate::options::AtlasOptions;
use crate::snapshot::{MetaTable, OneGenerationPerStore};
use crate::store::AtlasStore;
use crate::table::AtlasTable;

/// The table `name` of `store`: a variable, or one of the metadata tables.
pub fn store_table(store: &Arc<AtlasStore>, name: &str) -> Result<Arc<dyn TableProvider>> {
    Ok(match name {
        "_datasets" => Arc::new(MetaTable::new(store, "_datasets", datasets_table(store)?)),
        "_arrays" => Arc::new(MetaTable::new(store, "_arrays", arrays_table(store)?)),
        "_attributes" => Arc::new(MetaTable::new(
            store,
            "_attributes",
            attributes_table(store)?,
        )),
        "_conflicts" => Arc::new(MetaTable::new(store, "_conflicts", conflicts_table(store)?)),
        "_tables" => Arc::new(MetaTable::new(store, "_tables", tables_table(store)?)),
        name => Arc::new(variable_table(store, name)?),
    })
}

/// [`store_table`] with the table's own `type_conflicts` policy, which wins over the session's
/// (for hosts whose sessions lack the `atlas.*` options, such as DataFusion's Python bindings).
/// Metadata tables have no policy.
pub fn policy_table(
    store: &Arc<AtlasStore>,
    name: &str,
    policy: TypeConflicts,
) -> Result<Arc<dyn TableProvider>> {
    if METADATA_TABLES.contains(&name) {
        return store_table(store, name);
    }
    Ok(Arc::new(
        variable_table(store, name)?.with_type_conflicts(policy),
    ))
}

/// The table of variable `name`, or the grid table `name`.
fn variable_table(store: &Arc<AtlasStore>, name: &str) -> Result<AtlasTable> {
    match store.grid(name) {
        Some(grid) => grid_table(store, name, &grid.variables),
        None => {
            let layout = Layout::build(&store.location, name, &store.catalog)?;
            Ok(AtlasTable::new(Arc::clone(store), layout))
        }
    }
}

/// Table `name` of `variables` on their shared grid: one row per grid position of every dataset
/// holding any of them, one value column each (one variable: that variable's table). Variables
/// of different dimensions, unknown or named twice are errors naming them.
pub fn grid_table(store: &Arc<AtlasStore>, name: &str, variables: &[String]) -> Result<AtlasTable> {
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = variables.iter().find(|v| !seen.insert(v.as_str())) {
        return Err(Error::Usage(format!("table {name:?} names variable {twice:?} twice")).into());
    }
    let layout = Layout::build_grid(&store.location, name, variables, &store.catalog)?;
    Ok(AtlasTable::new(Arc::clone(store), layout))
}

/// A schema holding one table per variable of a store, one grid table per group of variables
/// sharing their dimensions, and the metadata tables (`_datasets`, `_arrays`, `_attributes`,
/// `_conflicts`, `_tables`). Each table lookup (once per table a query names) first checks whether the
/// store has newer commits (one read and one listing when it has none) and, if so, moves to
/// a fresh handle on the newest one; queries already planned keep reading the state they
/// planned on.
#[derive(Debug)]
pub struct AtlasSchemaProvider {
    store: Mutex<Arc<AtlasStore>>,
    /// The `type_conflicts` policy of every table of the schema, over the session's.
    policy: Option<TypeConflicts>,
    tables: Mutex<HashMap<String, Arc<dyn TableProvider>>>,
    /// Tables and views created in this schema by the session (`CREATE EXTERNAL TABLE`,
    /// `CREATE VIEW`); they live as long as the session and are never written to the store.
    session_tables: Mutex<HashMap<String, Arc<dyn TableProvider>>>,
}

impl AtlasSchemaProvider {
    /// A schema over an opened store.
    pub fn new(store: Arc<AtlasStore>) -> Self {
        AtlasSchemaProvider {
            store: Mutex::new(store),
            policy: None,
            tables: Mutex::new(HashMap::new()),
            session_tables: Mutex::new(HashMap::new()),
        }
    }

    /// The same schema with one `type_conflicts` policy for all its tables, over the session's
    /// `atlas.type_conflicts` (for hosts whose sessions lack the `atlas.*` options).
    pub fn with_type_conflicts(mut self, policy: TypeConflicts) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The schema's own `type_conflicts` policy, if it has one.
    pub fn type_conflicts(&self) -> Option<TypeConflicts> {
        self.policy
    }

    /// The store behind the schema, as of the last table lookup.
    pub fn store(&self) -> Arc<AtlasStore> {
        Arc::clone(&lock(&self.store))
    }

    /// Moves to the newest commit of the store, if there is a newer one than the schema's.
    async fn refresh(&self) -> std::result::Result<(), Error> {
        let current = self.store();
        let newer = current
            .atlas
            .reopen_if_newer()
            .await
            .map_err(|e| Error::store(&current.location, e))?;
        if let Some(atlas) = newer {
            let next = AtlasStore::from_atlas(atlas, &current.location);
            let mut store = lock(&self.store);
            if Arc::ptr_eq(&store, &current) {
                *store = next;
                lock(&self.tables).clear();
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SchemaProvider for AtlasSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .store()
            .tables()
            .iter()
            .map(|t| t.name.clone())
            .collect();
        names.extend(METADATA_TABLES.iter().map(|s| s.to_string()));
        names.extend(lock(&self.session_tables).keys().cloned());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(t) = lock(&self.session_tables).get(name) {
            return Ok(Some(Arc::clone(t)));
        }
        self.refresh().await?;
        if !self.store_has(name) {
            return Ok(None);
        }
        if let Some(t) = lock(&self.tables).get(name) {
            return Ok(Some(Arc::clone(t)));
        }
        let t = match self.policy {
            Some(p) => policy_table(&self.store(), name, p)?,
            None => store_table(&self.store(), name)?,
        };
        lock(&self.tables).insert(name.to_string(), Arc::clone(&t));
        Ok(Some(t))
    }

    fn table_exist(&self, name: &str) -> bool {
        lock(&self.session_tables).contains_key(name) || self.store_has(name)
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        if self.store_has(&name) {
            return Err(DataFusionError::Plan(format!(
                "{name:?} is a table of ATLAS store {}; choose another name",
                self.store().location
            )));
        }
        Ok(lock(&self.session_tables).insert(name, table))
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(lock(&self.session_tables).remove(name))
    }
}

impl AtlasSchemaProvider {
    fn store_has(&self, name: &str) -> bool {
        let store = self.store();
        METADATA_TABLES.contains(&name) || store.has_variable(name) || store.grid(name).is_some()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens the store at `location` (a path or a URL the session knows) and registers it as schema
/// `schema` of the session's default catalog: `SELECT * FROM <schema>.temperature`.
pub async fn register_store(
    ctx: &SessionContext,
    schema: &str,
    location: &str,
) -> Result<Arc<AtlasSchemaProvider>> {
    let store = AtlasStore::open(location, &ctx.runtime_env()).await?;
    register_opened(ctx, schema, store)
}

/// Registers an already opened store as schema `schema` of the session's default catalog, and
/// adds the analyzer rule [`OneGenerationPerStore`] to the session.
pub fn register_opened(
    ctx: &SessionContext,
    schema: &str,
    store: Arc<AtlasStore>,
) -> Result<Arc<AtlasSchemaProvider>> {
    let catalog_name = ctx
        .state()
        .config()
        .options()
        .catalog
        .default_catalog
        .clone();
    let catalog = ctx.catalog(&catalog_name).ok_or_else(|| {
        DataFusionError::Plan(format!("the session has no catalog {catalog_name:?}"))
    })?;
    let provider = Arc::new(AtlasSchemaProvider::new(store));
    catalog.register_schema(schema, Arc::clone(&provider) as Arc<dyn SchemaProvider>)?;
    OneGenerationPerStore::register(ctx);
    crate::GridJoins::register(ctx);
    AtlasOptions::register(ctx);
    Ok(provider)
}

/// Teaches a session the ATLAS SQL surface: `CREATE EXTERNAL TABLE … STORED AS ATLAS`, the
/// table functions `atlas_scan(store, variable)` and `atlas_datasets(store)`, and the analyzer
/// rule [`OneGenerationPerStore`] (one generation of each store per statement).
pub fn register_atlas(ctx: &SessionContext) {
    OneGenerationPerStore::register(ctx);
    crate::GridJoins::register(ctx);
    AtlasOptions::register(ctx);
    ctx.state_ref()
        .write()
        .table_factories_mut()
        .insert("ATLAS".to_string(), Arc::new(AtlasTableFactory));
    // Cannot fail with `overwrite`.
    let _ = ctx
        .state_ref()
        .write()
        .register_file_format(Arc::new(crate::AtlasFormatFactory), true);
    let opened = OpenedStores::default();
    ctx.register_udtf(
        "atlas_scan",
        Arc::new(AtlasScanFunction {
            opened: opened.clone(),
        }),
    );
    ctx.register_udtf("atlas_datasets", Arc::new(AtlasDatasetsFunction { opened }));
}

/// The stores the table functions of one session opened, by location: a later call reuses the
/// handle (and its segment cache) unless the store has newer commits, which costs one read and
/// one listing to find out.
#[derive(Debug, Default, Clone)]
pub struct OpenedStores(Arc<Mutex<HashMap<String, Arc<AtlasStore>>>>);

impl OpenedStores {
    /// The handle opened for `location`, if any.
    pub fn cached(&self, location: &str) -> Option<Arc<AtlasStore>> {
        lock(&self.0).get(location).cloned()
    }

    fn get(&self, location: &str, runtime: &Arc<RuntimeEnv>) -> Result<Arc<AtlasStore>> {
        let cached = lock(&self.0).get(location).cloned();
        let store = match cached {
            Some(store) => {
                let newer = block_on(location, async {
                    store
                        .atlas
                        .reopen_if_newer()
                        .await
                        .map_err(|e| Error::store(location, e).into())
                })?;
                match newer {
                    Some(atlas) => AtlasStore::from_atlas(atlas, location),
                    None => return Ok(store),
                }
            }
            None => block_on(location, async {
                AtlasStore::open(location, runtime)
                    .await
                    .map_err(DataFusionError::from)
            })?,
        };
        lock(&self.0).insert(location.to_string(), Arc::clone(&store));
        Ok(store)
    }
}

/// `CREATE EXTERNAL TABLE t STORED AS ATLAS LOCATION '<store>' OPTIONS ('variable' '<name>')`.
#[derive(Debug, Default)]
pub struct AtlasTableFactory;

#[async_trait]
impl TableProviderFactory for AtlasTableFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let location = match cmd.locations.as_slice() {
            [one] => one.as_str(),
            other => {
                return Err(Error::Usage(format!(
                    "STORED AS ATLAS takes one LOCATION (the store), got {}",
                    other.len()
                ))
                .into());
            }
        };
        let store = AtlasStore::open(location, state.runtime_env()).await?;
        let option = |key: &str| {
            cmd.options
                .get(key)
                .or_else(|| cmd.options.get(&format!("format.{key}")))
        };
        let policy = option("type_conflicts")
            .map(|p| p.parse::<TypeConflicts>())
            .transpose()?;
        let table = match (option("variable"), option("variables")) {
            (Some(_), Some(_)) => {
                return Err(Error::Usage(format!(
                    "CREATE EXTERNAL TABLE {} STORED AS ATLAS takes 'variable' (one variable or \
                     grid table) or 'variables' (a comma-separated list), not both",
                    cmd.name
                ))
                .into());
            }
            (Some(name), None) => variable_table(&store, name)?,
            (None, Some(list)) => {
                let variables: Vec<String> = list
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect();
                if variables.is_empty() {
                    return Err(Error::Usage(format!(
                        "CREATE EXTERNAL TABLE {}: OPTIONS ('variables' …) lists no variable",
                        cmd.name
                    ))
                    .into());
                }
                grid_table(&store, &cmd.name.to_string(), &variables)?
            }
            (None, None) => {
                return Err(Error::Usage(format!(
                    "CREATE EXTERNAL TABLE {} STORED AS ATLAS needs OPTIONS ('variable' '<name>') \
                     or OPTIONS ('variables' '<a>,<b>,…'); {} has: {}",
                    cmd.name,
                    location,
                    store
                        .tables()
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .into());
            }
        };
        Ok(Arc::new(match policy {
            Some(p) => table.with_type_conflicts(p),
            None => table,
        }))
    }
}

fn string_arg(args: &[Expr], i: usize, function: &str, what: &str) -> Result<String> {
    match args.get(i) {
        Some(Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        )) => Ok(s.clone()),
        _ => Err(Error::Usage(format!(
            "{function} expects a string literal {what} as argument {}",
            i + 1
        ))
        .into()),
    }
}

/// Runs store I/O from synchronous code (table functions are planned synchronously) on a
/// thread of its own, so it works under any runtime.
pub(crate) fn block_on<T: Send>(
    location: &str,
    work: impl std::future::Future<Output = Result<T>> + Send,
) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            rt.block_on(work)
        })
        .join()
        .map_err(|_| DataFusionError::Internal(format!("opening {location} panicked")))?
    })
}

/// `atlas_scan('<store>', '<variable>')`: the table of one variable (or a grid or metadata table
/// by name); `atlas_scan('<store>', '<a>', '<b>', …)`: the grid table of those variables.
#[derive(Debug, Default)]
pub struct AtlasScanFunction {
    /// Stores opened by this session's table functions.
    pub opened: OpenedStores,
}

impl TableFunctionImpl for AtlasScanFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.len() < 2 {
            return Err(Error::Usage(format!(
                "atlas_scan takes a store and one or more variables (store, variable, …), got {} \
                 argument{}",
                exprs.len(),
                if exprs.len() == 1 { "" } else { "s" }
            ))
            .into());
        }
        let location = string_arg(exprs, 0, "atlas_scan", "store location")?;
        let variables = (1..exprs.len())
            .map(|i| string_arg(exprs, i, "atlas_scan", "variable name"))
            .collect::<Result<Vec<_>>>()?;
        let store = self.opened.get(&location, args.session().runtime_env())?;
        match variables.as_slice() {
            [one] => store_table(&store, one),
            many => Ok(Arc::new(grid_table(&store, &many.join(", "), many)?)),
        }
    }
}

/// `atlas_datasets('<store>')`: the `_datasets` table of a store.
#[derive(Debug, Default)]
pub struct AtlasDatasetsFunction {
    /// Stores opened by this session's table functions.
    pub opened: OpenedStores,
}

impl TableFunctionImpl for AtlasDatasetsFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.len() != 1 {
            return Err(Error::Usage(format!(
                "atlas_datasets takes 1 argument (store), got {}",
                exprs.len()
            ))
            .into());
        }
        let location = string_arg(exprs, 0, "atlas_datasets", "store location")?;
        let store = self.opened.get(&location, args.session().runtime_env())?;
        store_table(&store, "_datasets")
    }
}
