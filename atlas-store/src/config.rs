//! Store configuration: codecs and catalog format (persisted), budgets (per handle).

use std::collections::HashMap;
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

impl std::str::FromStr for Codec {
    type Err = String;

    /// `zstd`, `lz4`, or `none` (also `uncompressed`), in any case.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "zstd" => Ok(Codec::Zstd),
            "lz4" => Ok(Codec::Lz4),
            "none" | "uncompressed" => Ok(Codec::Uncompressed),
            _ => Err(format!("expected zstd, lz4 or none, not {s:?}")),
        }
    }
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

/// Elements above which [`chunk_shape`] splits an array that has no explicit chunk lengths.
pub const CHUNK_ELEMENTS: usize = 1 << 20;

/// Parses chunk lengths per dimension, `DIM=N,DIM=N`, as `--chunk` and the SQL option `chunk`
/// take them. The error says which part is wrong.
pub fn parse_chunk_spec(spec: &str) -> std::result::Result<HashMap<String, usize>, String> {
    let mut out = HashMap::new();
    for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let (dim, n) = part
            .split_once('=')
            .ok_or_else(|| format!("expected DIM=N,...; {part:?} has no '='"))?;
        let n: usize = n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{dim}={n}: the length must be a positive integer"))?;
        out.insert(dim.trim().to_string(), n);
    }
    Ok(out)
}

/// The chunk shape of a new array: `chunks` lengths where given for a dimension; otherwise an
/// array of up to [`CHUNK_ELEMENTS`] elements is one chunk, and a larger one is split along its
/// leading dimensions. `None` for a 0-d array.
pub fn chunk_shape(
    dims: &[String],
    shape: &[usize],
    chunks: &HashMap<String, usize>,
) -> Option<Vec<usize>> {
    if shape.is_empty() {
        return None;
    }
    let mut out: Vec<usize> = dims
        .iter()
        .zip(shape)
        .map(|(d, &n)| chunks.get(d).map_or(n, |&c| c.min(n.max(1))).max(1))
        .collect();
    if !dims.iter().any(|d| chunks.contains_key(d)) {
        for axis in 0..out.len() {
            let total: usize = out.iter().product();
            if total <= CHUNK_ELEMENTS {
                break;
            }
            let rest: usize = out[axis + 1..].iter().product::<usize>().max(1);
            out[axis] = (CHUNK_ELEMENTS / rest).max(1).min(out[axis]);
        }
    }
    Some(out)
}
