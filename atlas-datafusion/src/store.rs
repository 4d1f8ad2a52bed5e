//! An opened store as the SQL layer sees it: a read handle plus a catalog snapshot.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use atlas_store::object_store::ObjectStore;
use atlas_store::object_store::path::Path;
use atlas_store::{Atlas, CatalogView};
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use url::Url;

use crate::error::{Error, Result};
use crate::tables::{TableInfo, TableKind, store_tables};

/// An ATLAS store opened for SQL: the handle reads go through and the handle's catalog snapshot
/// as of the moment it was opened (shared with the handle, not copied; tables describe the
/// store as of that moment).
#[derive(Debug)]
pub struct AtlasStore {
    pub(crate) atlas: Atlas,
    pub(crate) location: String,
    pub(crate) catalog: CatalogView,
    /// Distinct variable names, computed once: the schema looks tables up on every query.
    variables: BTreeSet<String>,
    /// Every dataset name, the dictionary behind every `dataset` column.
    pub(crate) dictionary: ArrayRef,
    /// The variable and grid tables, worked out when first asked for.
    tables: OnceLock<Vec<TableInfo>>,
    /// Layouts of joins planned as grid scans, by variables: a statement repeated in a
    /// session plans without walking the catalog again.
    joined: std::sync::Mutex<std::collections::HashMap<Vec<String>, Arc<crate::layout::Layout>>>,
    /// Layouts of the tables of plans decoded from other processes, by (name, variables,
    /// complete).
    layouts: std::sync::Mutex<LayoutCache>,
}

type LayoutCache =
    std::collections::HashMap<(String, Vec<String>, bool), Arc<crate::layout::Layout>>;

/// Splits a store location into a URL: `scheme://…` as is, anything else as a local path.
pub(crate) fn location_url(location: &str) -> Result<Url> {
    let bad = |reason: String| Error::Location {
        location: location.to_string(),
        reason,
    };
    if atlas_store::location::is_url(location) {
        return Url::parse(location).map_err(|e| bad(e.to_string()));
    }
    let path = std::path::absolute(location).map_err(|e| bad(e.to_string()))?;
    if !path.is_dir() {
        return Err(Error::store(
            location,
            atlas_store::Error::StoreNotFound {
                location: location.to_string(),
            },
        ));
    }
    Url::from_directory_path(&path).map_err(|()| bad("not an absolute path".into()))
}

/// The object store `location` lives in and the store's prefix there: the client `runtime`
/// has registered for its bucket or host if any (`memory://`, a test double, a client with
/// custom credentials), otherwise one built from the environment (`AWS_*`, `GOOGLE_*`,
/// `AZURE_*`), which is then registered so later opens and queries share it.
pub(crate) fn object_store_of(
    location: &str,
    runtime: &RuntimeEnv,
) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let bad = |reason: String| Error::Location {
        location: location.to_string(),
        reason,
    };
    let url = location_url(location)?;
    let root =
        ObjectStoreUrl::parse(&url[..url::Position::BeforePath]).map_err(|e| bad(e.to_string()))?;
    if let Ok(store) = runtime.object_store(&root) {
        let prefix = match atlas_store::object_store::ObjectStoreScheme::parse(&url) {
            Ok((_, path)) => path,
            Err(_) => Path::from_url_path(url.path()).map_err(|e| bad(e.to_string()))?,
        };
        return Ok((store, prefix));
    }
    let (store, prefix) = atlas_store::location::resolve(location).map_err(|e| match e {
        atlas_store::Error::Location { reason, .. } => bad(reason),
        other => Error::store(location, other),
    })?;
    runtime.register_object_store(root.as_ref(), Arc::clone(&store));
    Ok((store, prefix))
}

impl AtlasStore {
    /// Opens the store at `location`: a local path, or a URL (`s3://bucket/path`, `gs://…`,
    /// `az://…`, `http(s)://…`, `file://…`, `memory://…`). A URL uses the object store `runtime`
    /// has registered for it, or one configured from the environment (then registered).
    pub async fn open(location: &str, runtime: &RuntimeEnv) -> Result<Arc<AtlasStore>> {
        let (store, prefix) = object_store_of(location, runtime)?;
        let atlas = Atlas::open(store, prefix)
            .await
            .map_err(|e| match e {
                atlas_store::Error::StoreNotFound { .. } => atlas_store::Error::StoreNotFound {
                    location: location.to_string(),
                },
                other => other,
            })
            .map_err(|e| Error::store(location, e))?;
        Ok(Self::from_atlas(atlas, location))
    }

    /// Wraps a handle the caller already holds. Its unflushed changes are visible to SQL.
    pub fn from_atlas(atlas: Atlas, location: &str) -> Arc<AtlasStore> {
        let catalog = atlas.catalog();
        let dictionary: ArrayRef = Arc::new(StringArray::from_iter_values(
            catalog.datasets().map(|d| d.name()),
        ));
        let mut variables: BTreeSet<String> = BTreeSet::new();
        for d in catalog.datasets() {
            for a in d.arrays() {
                if !variables.contains(a.name()) {
                    variables.insert(a.name().to_string());
                }
            }
        }
        Arc::new(AtlasStore {
            atlas,
            location: location.to_string(),
            variables,
            catalog,
            dictionary,
            tables: OnceLock::new(),
            joined: Default::default(),
            layouts: Default::default(),
        })
    }

    /// Where the store is.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Distinct variable names, sorted.
    pub fn variables(&self) -> Vec<String> {
        self.variables.iter().cloned().collect()
    }

    /// Whether some dataset has variable `name`.
    pub fn has_variable(&self, name: &str) -> bool {
        self.variables.contains(name)
    }

    /// The store's variable and grid tables (metadata tables aside), worked out from the
    /// catalog once per handle.
    pub fn tables(&self) -> &[TableInfo] {
        self.tables.get_or_init(|| store_tables(&self.catalog))
    }

    /// The layout of the join of `variables` on their grid (built by `build` once per handle).
    pub(crate) fn joined_layout(
        &self,
        variables: &[String],
        build: impl FnOnce() -> Result<crate::layout::Layout>,
    ) -> Result<Arc<crate::layout::Layout>> {
        let lock = || self.joined.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = lock().get(variables) {
            return Ok(Arc::clone(l));
        }
        let layout = Arc::new(build()?);
        lock().insert(variables.to_vec(), Arc::clone(&layout));
        Ok(layout)
    }

    /// The layout of table `name` of `variables` (only the datasets holding every variable
    /// when `complete`), built from this handle's catalog once per handle.
    pub(crate) fn layout_of(
        &self,
        name: &str,
        variables: &[String],
        complete: bool,
    ) -> Result<Arc<crate::layout::Layout>> {
        let key = (name.to_string(), variables.to_vec(), complete);
        let lock = || self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = lock().get(&key) {
            return Ok(Arc::clone(l));
        }
        let mut layout =
            crate::layout::Layout::build_grid(&self.location, name, variables, &self.catalog)?;
        if complete {
            layout.retain_complete();
        }
        let layout = Arc::new(layout);
        lock().insert(key, Arc::clone(&layout));
        Ok(layout)
    }

    /// The grid table named `name`, if the store has one.
    pub fn grid(&self, name: &str) -> Option<&TableInfo> {
        if self.has_variable(name) {
            return None;
        }
        self.tables()
            .iter()
            .find(|t| t.kind == TableKind::Grid && t.name == name)
    }

    /// The catalog snapshot the tables describe.
    pub fn catalog(&self) -> &CatalogView {
        &self.catalog
    }

    /// The store handle.
    pub fn atlas(&self) -> &Atlas {
        &self.atlas
    }
}
