//! Store configuration: codecs and catalog format (persisted), budgets (per handle).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Compression of segment blocks or of the catalog file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// Zstandard, level 3.
    #[default]
    Zstd,
    /// LZ4 block compression.
    Lz4,
    /// No compression.
    Uncompressed,
}

/// Encoding of the catalog file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaFormat {
    /// JSON: readable, the default.
    #[default]
    Json,
    /// MessagePack: smaller and faster for stores with many datasets.
    #[serde(rename = "msgpack")]
    MsgPack,
}

/// Default budget of not-yet-flushed array bytes held in memory before they spill.
pub const DEFAULT_PENDING_BUDGET: usize = 256 * 1024 * 1024;

/// Default age below which an unreferenced segment is never removed (it may be a live writer's
/// spill about to be committed).
pub const DEFAULT_ORPHAN_RETENTION: Duration = Duration::from_secs(3600);

/// How a store is created. The codecs and catalog format are recorded in the catalog, so opening
/// a store needs no configuration; the budgets apply to the handle that holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Compression of array data in segments.
    pub codec: Codec,
    /// Encoding of the catalog.
    pub meta_format: MetaFormat,
    /// Compression of the catalog file.
    pub meta_compression: Codec,
    /// Pending (written, not yet flushed) array bytes held in memory before they spill to
    /// uncommitted segments. Can be changed later with [`crate::Atlas::set_pending_budget`].
    pub pending_budget: usize,
    /// Unreferenced segments younger than this are left alone by `compact`/`vacuum`.
    pub orphan_retention: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            codec: Codec::Zstd,
            meta_format: MetaFormat::Json,
            meta_compression: Codec::Uncompressed,
            pending_budget: DEFAULT_PENDING_BUDGET,
            orphan_retention: DEFAULT_ORPHAN_RETENTION,
        }
    }
}

impl MetaFormat {
    /// The catalog file extension for this format and compression, e.g. `json` or `msgpack.zst`.
    pub(crate) fn extension(self, compression: Codec) -> &'static str {
        match (self, compression) {
            (MetaFormat::Json, Codec::Uncompressed) => "json",
            (MetaFormat::Json, Codec::Zstd) => "json.zst",
            (MetaFormat::Json, Codec::Lz4) => "json.lz4",
            (MetaFormat::MsgPack, Codec::Uncompressed) => "msgpack",
            (MetaFormat::MsgPack, Codec::Zstd) => "msgpack.zst",
            (MetaFormat::MsgPack, Codec::Lz4) => "msgpack.lz4",
        }
    }

    /// The format and compression of a catalog file extension.
    pub(crate) fn from_extension(ext: &str) -> Option<(MetaFormat, Codec)> {
        [MetaFormat::Json, MetaFormat::MsgPack]
            .into_iter()
            .flat_map(|f| [Codec::Uncompressed, Codec::Zstd, Codec::Lz4].map(|c| (f, c)))
            .find(|(f, c)| f.extension(*c) == ext)
    }
}
