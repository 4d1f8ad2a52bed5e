//! Stores written by the original ATLAS crate, `atlas-rust`, opened read-only.
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
//! `docs/architecture.md` ("Upstream stores") says why the reads bypass the upstream crate's
//! own read path.

pub(crate) mod range;
#[cfg(feature = "upstream")]
mod v017;

use std::sync::Arc;

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
}

impl Format {
    /// How messages name the format.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Format::Collection017 => "an atlas-rust 0.17 collection (data.atlas)",
        }
    }
}

/// What a read-only store remembers about where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub format: Format,
    pub location: String,
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

/// How messages name the atlas-rust 0.10 layout, which this build recognises but does not read.
pub(crate) const FORMAT_010: &str =
    "an atlas-rust 0.10 store (atlas.json and a folder of data.af files per variable)";

/// Whether the catalog file at `prefix` is an atlas-rust 0.10 registry: `atlas.json` holding
/// a JSON object with `version`, `codec` and `datasets` (ours wraps its catalog in an
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
    Err(Error::Location {
        location,
        reason: format!(
            "it holds {}, and this build of atlas-store was made without the `upstream` \
             feature that reads it",
            Format::Collection017.describe()
        ),
    })
}
