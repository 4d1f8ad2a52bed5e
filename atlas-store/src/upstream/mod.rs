//! Stores written by the original ATLAS crate, `atlas-rust`, opened read-only: 0.17
//! collections (`v017.rs`) and 0.10 stores (`v010.rs`).
//!
//! `atlas-rust` 0.17 writes a collection as one file, `data.atlas`: every variable's segment (a
//! complete array-format 0.15 file, the format of our own segments) back to back, then a
//! footer naming the datasets and where each segment sits, and an optional `deleted.mask` of
//! hidden datasets. [`open`] recognises such a store when no catalog of ours is there, reads
//! its footer and mask through the upstream crate, opens each segment as a byte range of
//! `data.atlas` ([`range::RangeStore`]) through the handle's own block cache, and builds the
//! same in-memory catalog an atlas-sql store has. Everything above the catalog (tables,
//! metadata tables, pushdowns, prefetch, exact statistics) then works unchanged, and every
//! write is refused ([`crate::Error::ReadOnlyFormat`]).
//!
//! An atlas-rust 0.10 store keeps its values in array-format 0.10 files, which our reader
//! cannot decode: its catalog is built the same way from the upstream crate's registry and
//! files, and its reads go through a [`RegionSource`], the upstream crate's own read path.
//!
//! `docs/architecture.md` ("Upstream stores") says why 0.17 reads bypass the upstream crate's
//! own read path and 0.10 reads do not.

pub(crate) mod range;
#[cfg(feature = "upstream")]
mod v010;
#[cfg(feature = "upstream")]
mod v017;

use std::any::Any;
use std::sync::Arc;

use array_format::DType;
use object_store::{ObjectStore, ObjectStoreExt, path::Path};

use crate::atlas::Atlas;
use crate::error::{Error, Result};

/// The file an atlas-rust 0.17 collection keeps everything in.
pub(crate) const DATA_FILE: &str = "data.atlas";

/// A store format this build reads but never writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// atlas-rust 0.17 (container version 8).
    Collection017,
    /// atlas-rust 0.10 (a registry and a folder of array-format 0.10 files per variable).
    #[cfg_attr(not(feature = "upstream"), allow(dead_code))]
    Store010,
}

impl Format {
    /// How messages name the format.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Format::Collection017 => "an atlas-rust 0.17 collection (data.atlas)",
            Format::Store010 => FORMAT_010,
        }
    }
}

/// Reads regions of arrays whose bytes our segment reader cannot decode.
#[async_trait::async_trait]
pub(crate) trait RegionSource: Send + Sync {
    /// The region `start`/`shape` (checked against the definition: one entry per axis) of
    /// `array` of `dataset`, whose dtype is `dtype`, as an `ArcArray<T, IxDyn>` of the element
    /// type `T` atlas-store uses for `dtype`, boxed.
    async fn read(
        &self,
        dataset: &str,
        array: &str,
        dtype: &DType,
        start: Vec<usize>,
        shape: Vec<usize>,
    ) -> Result<Box<dyn Any + Send>>;
}

/// What a read-only store remembers about where it came from.
#[derive(Clone)]
pub(crate) struct Upstream {
    pub format: Format,
    pub location: String,
    /// Where its values are read from when our segment reader cannot read them.
    pub source: Option<Arc<dyn RegionSource>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("format", &self.format)
            .field("location", &self.location)
            .field("source", &self.source.as_ref().map(|_| "upstream reader"))
            .finish()
    }
}

impl Upstream {
    /// The error for `op` (a verb phrase: "create a dataset") on this store.
    pub(crate) fn refuse(&self, op: &str) -> Error {
        Error::ReadOnlyFormat {
            location: self.location.clone(),
            format: self.format.describe(),
            op: op.to_string(),
        }
    }
}

/// How messages name the atlas-rust 0.10 layout.
pub(crate) const FORMAT_010: &str =
    "an atlas-rust 0.10 store (atlas.json and a folder of data.af files per variable)";

/// Whether the catalog file at `prefix` looks like an atlas-rust 0.10 registry: `atlas.json`
/// holding a JSON object with `version`, `codec` and `datasets` (ours wraps its catalog in an
/// `atlas_catalog` envelope). Asked only once the file failed to decode as ours.
pub(crate) async fn is_010(store: &dyn ObjectStore, prefix: &Path) -> bool {
    let path = prefix.clone().join("atlas.json");
    let Ok(got) = store.get(&path).await else {
        return false;
    };
    let Ok(bytes) = got.bytes().await else {
        return false;
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(map)) => {
            ["version", "codec", "datasets"]
                .iter()
                .all(|k| map.contains_key(*k))
                && !map.contains_key("atlas_catalog")
        }
        _ => false,
    }
}

/// Whether an upstream store is at `prefix` (one `head`).
pub(crate) async fn exists(store: &dyn ObjectStore, prefix: &Path) -> Result<bool> {
    let data = prefix.clone().join(DATA_FILE);
    match store.head(&data).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(Error::store(&data, e)),
    }
}

/// Opens the store at `prefix` (named `location` in messages) when it is an upstream store;
/// `Ok(None)` when it is not one. Costs one `head` when it is not.
pub(crate) async fn open(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    location: String,
) -> Result<Option<Atlas>> {
    if !exists(&**store, prefix).await? {
        return Ok(None);
    }
    open_collection(store, prefix, location).await.map(Some)
}

#[cfg(feature = "upstream")]
async fn open_collection(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    location: String,
) -> Result<Atlas> {
    v017::open(Arc::clone(store), prefix.clone(), location).await
}

#[cfg(not(feature = "upstream"))]
async fn open_collection(
    _store: &Arc<dyn ObjectStore>,
    _prefix: &Path,
    location: String,
) -> Result<Atlas> {
    Err(without_feature(location, Format::Collection017.describe()))
}

/// The error for a store in `format`, which only the `upstream` feature reads.
#[cfg(not(feature = "upstream"))]
fn without_feature(location: String, format: &str) -> Error {
    Error::Location {
        location,
        reason: format!(
            "it holds {format}, and this build of atlas-store was made without the \
             `upstream` feature that reads it"
        ),
    }
}

/// Opens the store at `prefix` (named `location` in messages) when it is an atlas-rust 0.10
/// store; `Ok(None)` when it is not one. Asked only once its root file failed to decode as a
/// catalog of ours (the two share file names).
#[cfg(feature = "upstream")]
pub(crate) async fn open_010(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    location: String,
) -> Result<Option<Atlas>> {
    v010::open(store, prefix, location).await
}

#[cfg(not(feature = "upstream"))]
pub(crate) async fn open_010(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    location: String,
) -> Result<Option<Atlas>> {
    if is_010(&**store, prefix).await {
        return Err(without_feature(location, FORMAT_010));
    }
    Ok(None)
}
