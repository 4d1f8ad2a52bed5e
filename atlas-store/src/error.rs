//! The one error type of the store.

use array_format::DType;

/// Everything that can go wrong in `atlas-store`.
///
/// Messages name the dataset, array or object path involved so a user can act on them. Sources
/// from `object_store` and `array-format` are kept, not flattened into strings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A dataset or array name breaks the naming rules.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// `"dataset"` or `"array"`.
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No dataset of that name.
    #[error("dataset {name:?} not found in the store")]
    DatasetNotFound {
        /// The missing dataset.
        name: String,
    },
    /// `create_dataset` with a name already in use.
    #[error("dataset {name:?} already exists")]
    DatasetExists {
        /// The existing dataset.
        name: String,
    },
    /// The dataset does not define that array.
    #[error("dataset {dataset:?} has no array {array:?} (arrays: {known})")]
    ArrayNotFound {
        /// The dataset searched.
        dataset: String,
        /// The missing array.
        array: String,
        /// The arrays the dataset does have, comma separated.
        known: String,
    },
    /// `define_array` with a name the dataset already uses.
    #[error("dataset {dataset:?} already has an array {array:?}")]
    ArrayExists {
        /// The dataset.
        dataset: String,
        /// The existing array.
        array: String,
    },
    /// A read or write used a Rust type that does not match the array's dtype.
    #[error("array {dataset}/{array} holds {expected:?}, but {actual:?} was used")]
    DTypeMismatch {
        /// The dataset.
        dataset: String,
        /// The array.
        array: String,
        /// The dtype the array was defined with.
        expected: DType,
        /// The dtype of the Rust type used.
        actual: DType,
    },
    /// A definition, write or read that the array's shape cannot take: wrong rank, out of bounds,
    /// element count overflow, a chunk shape of the wrong rank, a fill value of the wrong type.
    #[error("array {dataset}/{array}: {reason}")]
    InvalidArray {
        /// The dataset.
        dataset: String,
        /// The array.
        array: String,
        /// What is wrong, with the numbers involved.
        reason: String,
    },
    /// A store location that cannot be used: an unknown URL scheme, a cloud scheme in a build
    /// without the `cloud` feature, or a client that cannot be configured (missing region…).
    #[error("cannot use store location {location:?}: {reason}")]
    Location {
        /// The location as given.
        location: String,
        /// Why, and what would work.
        reason: String,
    },
    /// `open` found no catalog.
    #[error("no ATLAS store at {location}: no catalog (atlas.json, _checkpoint/, _log/) found")]
    StoreNotFound {
        /// Where the store was looked for.
        location: String,
    },
    /// `create` found a catalog already there; creating never wipes a store.
    #[error("an ATLAS store already exists at {location}; open it instead of creating it")]
    StoreExists {
        /// The location of the existing store.
        location: String,
    },
    /// The catalog (or a commit-log entry) fails its checksum or does not decode.
    #[error("catalog {path} is corrupt: {reason}")]
    CorruptCatalog {
        /// Object path of the catalog file.
        path: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The catalog was written by a newer format version.
    #[error(
        "catalog {path} has format version {found}; this build reads up to version {supported}"
    )]
    UnsupportedVersion {
        /// Object path of the catalog file.
        path: String,
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A segment file is truncated, fails its checksum, or does not decode.
    #[error("segment {path} is corrupt: {reason}")]
    CorruptSegment {
        /// Object path of the segment.
        path: String,
        /// Why it was rejected.
        reason: String,
        /// The decoder's error, when there is one.
        #[source]
        source: Option<array_format::Error>,
    },
    /// A segment named by the catalog no longer exists, e.g. a concurrent `compact` removed it.
    /// Reopening the store and retrying reads the current catalog.
    #[error(
        "segment {path} is gone (removed by a concurrent compact?); reopen the store and retry"
    )]
    SegmentGone {
        /// Object path of the segment.
        path: String,
        /// The store's not-found error.
        #[source]
        source: object_store::Error,
    },
    /// Another writer's commit overlaps this handle's changes (it changed the same dataset, or
    /// cannot be checked). Commits that touched other datasets do not conflict: a flush commits
    /// on top of them. This handle's pending changes are kept; reopen the store, redo the
    /// changes and flush again.
    #[error(
        "commit conflict: this handle is at generation {base}, but generation {found} was \
         committed by another writer{detail}; reopen the store and retry"
    )]
    Conflict {
        /// The generation this handle last saw.
        base: u64,
        /// The generation another writer committed.
        found: u64,
        /// What overlapped, e.g. ` and changed dataset "a" too` (empty when unknown).
        detail: String,
    },
    /// A write, or an operation that rewrites the store, on a store in a format this build
    /// reads but never writes (a store made by `atlas-rust`).
    #[error("cannot {op}: {location} is {format}, which atlas-sql reads but does not write")]
    ReadOnlyFormat {
        /// Where the store is.
        location: String,
        /// The format, as a phrase ("an atlas-rust 0.17 collection (data.atlas)").
        format: &'static str,
        /// What was refused ("create a dataset", "compact").
        op: String,
    },
    /// A store in a format this build recognises but cannot read.
    #[error("{location} is {format}, which this build of atlas-sql does not read yet")]
    UnsupportedFormat {
        /// Where the store is.
        location: String,
        /// The format, as a phrase.
        format: &'static str,
    },
    /// A store made by `atlas-rust` that the upstream reader rejects (a damaged footer or mask).
    #[error("{location} holds {format} that cannot be read: {source}")]
    Upstream {
        /// Where the store is.
        location: String,
        /// The format, as a phrase.
        format: &'static str,
        /// The upstream crate's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A copy ([`crate::Atlas::copy_into`]) read back differs from its source.
    #[error("the copy of dataset {dataset:?}{} differs from the source: {reason}", if array.is_empty() { String::new() } else { format!(" array {array:?}") })]
    CopyMismatch {
        /// The dataset.
        dataset: String,
        /// The array (empty when the dataset itself differs).
        array: String,
        /// What differs.
        reason: String,
    },
    /// An object store operation failed.
    #[error("object store error at {path}: {source}")]
    ObjectStore {
        /// Object path involved.
        path: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// array-format failed while reading or writing an array.
    #[error("{context}: {source}")]
    Format {
        /// What was being done, with names.
        context: String,
        /// The array-format error.
        #[source]
        source: array_format::Error,
    },
    /// A local filesystem operation failed (`create_path`/`open_path`).
    #[error("I/O error at {path}: {source}")]
    Io {
        /// The local path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The catalog could not be encoded.
    #[error("cannot encode the catalog: {0}")]
    Encode(String),
    /// A bug in atlas-store, never bad input.
    #[error("internal error (a bug in atlas-store): {0}")]
    Internal(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn store(path: impl ToString, source: object_store::Error) -> Self {
        Error::ObjectStore {
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn format(context: impl Into<String>, source: array_format::Error) -> Self {
        Error::Format {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(dataset: &str, array: &str, reason: impl Into<String>) -> Self {
        Error::InvalidArray {
            dataset: dataset.to_string(),
            array: array.to_string(),
            reason: reason.into(),
        }
    }
}
