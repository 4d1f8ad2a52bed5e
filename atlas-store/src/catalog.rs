//! The catalog: the one file that says what the store holds, and the commit protocol around it.
//!
//! Every commit writes the whole catalog for generation `g` to `_log/<g>.<ext>` with a
//! create-if-absent put: that put is the commit point, and the writer that loses the race for a
//! generation gets [`Error::Conflict`]. A copy then goes to `atlas.<ext>` at the root, which is
//! where `open` starts; it then probes `_log/<g+1>`, `_log/<g+2>`, … so a crash between the two
//! puts loses nothing. See `docs/format.md` for the bytes.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use indexmap::IndexMap;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, path::Path};
use serde::{Deserialize, Serialize};

use crate::config::{Codec, MetaFormat};
use crate::error::{Error, Result};
use crate::schema::{ArraySchema, Attr, StatsRepr};

/// The catalog format version this build writes and the newest it reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Folder of per-generation commit objects.
pub(crate) const LOG_DIR: &str = "_log";

const MSGPACK_MAGIC: &[u8; 8] = b"ATLASCAT";

/// Everything the store holds, as of one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Catalog {
    pub format_version: u32,
    pub generation: u64,
    /// Random id of the commit that wrote this generation; lets a writer recognise its own
    /// commit after an error that hid success.
    pub commit_id: String,
    pub codec: Codec,
    pub meta_format: MetaFormat,
    pub meta_compression: Codec,
    /// Datasets in insertion order.
    pub datasets: IndexMap<String, DatasetEntry>,
    /// Segments the datasets reference, by key `<variable>/<file>`.
    pub segments: BTreeMap<String, SegmentEntry>,
    /// Segments that were referenced once and no longer are, with the generation that dropped
    /// them; `compact`/`vacuum` delete them.
    #[serde(default)]
    pub retired: BTreeMap<String, u64>,
}

/// One dataset: its attributes and arrays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DatasetEntry {
    #[serde(default)]
    pub attributes: IndexMap<String, Attr>,
    #[serde(default)]
    pub arrays: IndexMap<String, ArrayEntry>,
}

/// One array of one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ArrayEntry {
    pub schema: ArraySchema,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub attributes: IndexMap<String, Attr>,
    /// Segment holding the array's bytes (keyed by dataset name inside it); `None` until data is
    /// written, in which case every cell reads as the fill value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Statistics of the bytes in `segment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<StatsRepr>,
}

/// One segment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SegmentEntry {
    pub variable: String,
    pub size: u64,
    pub crc32: u32,
}

impl Catalog {
    pub(crate) fn empty(codec: Codec, meta_format: MetaFormat, meta_compression: Codec) -> Self {
        Catalog {
            format_version: FORMAT_VERSION,
            generation: 0,
            commit_id: new_id(),
            codec,
            meta_format,
            meta_compression,
            datasets: IndexMap::new(),
            segments: BTreeMap::new(),
            retired: BTreeMap::new(),
        }
    }

    pub(crate) fn extension(&self) -> &'static str {
        self.meta_format.extension(self.meta_compression)
    }

    /// Keys of the segments some array references.
    pub(crate) fn referenced_segments(&self) -> std::collections::BTreeSet<String> {
        self.datasets
            .values()
            .flat_map(|d| d.arrays.values())
            .filter_map(|a| a.segment.clone())
            .collect()
    }
}

/// A random 16-hex-digit id, unique across processes in practice.
pub(crate) fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    format!("{:016x}", h.finish())
}

pub(crate) fn root_path(prefix: &Path, ext: &str) -> Path {
    prefix.clone().join(format!("atlas.{ext}").as_str())
}

pub(crate) fn log_path(prefix: &Path, generation: u64, ext: &str) -> Path {
    prefix
        .clone()
        .join(LOG_DIR)
        .join(format!("{generation:020}.{ext}").as_str())
}

/// Encodes a catalog: an envelope carrying the format version and a CRC-32 of the payload,
/// then the configured compression.
pub(crate) fn encode(cat: &Catalog) -> Result<Vec<u8>> {
    let body = match cat.meta_format {
        MetaFormat::Json => {
            let payload = serde_json::to_string(cat).map_err(|e| Error::Encode(e.to_string()))?;
            let crc = crc32fast::hash(payload.as_bytes());
            format!(
                "{{\"atlas_catalog\":{FORMAT_VERSION},\"crc32\":{crc},\"catalog\":{payload}}}\n"
            )
            .into_bytes()
        }
        MetaFormat::MsgPack => {
            let payload = rmp_serde::to_vec_named(cat).map_err(|e| Error::Encode(e.to_string()))?;
            let mut out = Vec::with_capacity(payload.len() + 16);
            out.extend_from_slice(MSGPACK_MAGIC);
            out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            out.extend_from_slice(&payload);
            out
        }
    };
    Ok(match cat.meta_compression {
        Codec::Uncompressed => body,
        Codec::Zstd => zstd::bulk::compress(&body, 3).map_err(|e| Error::Encode(e.to_string()))?,
        Codec::Lz4 => lz4_flex::compress_prepend_size(&body),
    })
}

#[derive(Deserialize)]
struct JsonEnvelope<'a> {
    atlas_catalog: u32,
    crc32: u32,
    #[serde(borrow)]
    catalog: &'a serde_json::value::RawValue,
}

/// Decodes and checks a catalog read from `path`.
pub(crate) fn decode(path: &Path, bytes: &[u8], ext: &str) -> Result<Catalog> {
    let corrupt = |reason: String| Error::CorruptCatalog {
        path: path.to_string(),
        reason,
    };
    let (format, compression) = MetaFormat::from_extension(ext)
        .ok_or_else(|| corrupt(format!("unknown catalog extension {ext:?}")))?;
    let body = match compression {
        Codec::Uncompressed => bytes.to_vec(),
        Codec::Zstd => zstd::stream::decode_all(bytes)
            .map_err(|e| corrupt(format!("zstd decompression failed: {e}")))?,
        Codec::Lz4 => lz4_flex::decompress_size_prepended(bytes)
            .map_err(|e| corrupt(format!("lz4 decompression failed: {e}")))?,
    };
    let check_version = |found: u32| {
        if found > FORMAT_VERSION {
            Err(Error::UnsupportedVersion {
                path: path.to_string(),
                found,
                supported: FORMAT_VERSION,
            })
        } else {
            Ok(())
        }
    };
    let cat: Catalog = match format {
        MetaFormat::Json => {
            let env: JsonEnvelope<'_> = serde_json::from_slice(&body)
                .map_err(|e| corrupt(format!("not a catalog envelope: {e}")))?;
            check_version(env.atlas_catalog)?;
            let payload = env.catalog.get();
            let crc = crc32fast::hash(payload.as_bytes());
            if crc != env.crc32 {
                return Err(corrupt(format!(
                    "checksum mismatch (stored {:08x}, computed {crc:08x})",
                    env.crc32
                )));
            }
            serde_json::from_str(payload).map_err(|e| corrupt(format!("bad catalog: {e}")))?
        }
        MetaFormat::MsgPack => {
            if body.len() < 16 || &body[..8] != MSGPACK_MAGIC {
                return Err(corrupt("missing ATLASCAT header".into()));
            }
            let word =
                |i: usize| u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
            check_version(word(8))?;
            let stored = word(12);
            let payload = &body[16..];
            let crc = crc32fast::hash(payload);
            if crc != stored {
                return Err(corrupt(format!(
                    "checksum mismatch (stored {stored:08x}, computed {crc:08x})"
                )));
            }
            rmp_serde::from_slice(payload).map_err(|e| corrupt(format!("bad catalog: {e}")))?
        }
    };
    check_version(cat.format_version)?;
    Ok(cat)
}

/// Reads an object, `None` when it does not exist.
async fn get_opt(store: &dyn ObjectStore, path: &Path) -> Result<Option<bytes::Bytes>> {
    match store.get(path).await {
        Ok(r) => Ok(Some(r.bytes().await.map_err(|e| Error::store(path, e))?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::store(path, e)),
    }
}

/// Reads the log entry of `generation`, `None` when it was never committed.
pub(crate) async fn read_log(
    store: &dyn ObjectStore,
    prefix: &Path,
    generation: u64,
    ext: &str,
) -> Result<Option<Catalog>> {
    let path = log_path(prefix, generation, ext);
    match get_opt(store, &path).await? {
        Some(bytes) => decode(&path, &bytes, ext).map(Some),
        None => Ok(None),
    }
}

/// Finds the root catalog file's extension, `None` when there is no store at `prefix`.
pub(crate) async fn find_root(store: &dyn ObjectStore, prefix: &Path) -> Result<Option<String>> {
    let listing = store
        .list_with_delimiter(Some(prefix))
        .await
        .map_err(|e| Error::store(prefix, e))?;
    let mut found: Vec<String> = listing
        .objects
        .iter()
        .filter_map(|o| o.location.filename())
        .filter_map(|f| f.strip_prefix("atlas."))
        .filter(|ext| MetaFormat::from_extension(ext).is_some())
        .map(str::to_string)
        .collect();
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(Error::CorruptCatalog {
            path: prefix.to_string(),
            reason: format!("several catalogs found: atlas.{}", found.join(", atlas.")),
        }),
    }
}

/// Loads the newest committed catalog: the root copy, then any newer log entries. A store whose
/// root copy was never written (a crash during `create`) is read from its log.
pub(crate) async fn load_latest(store: &dyn ObjectStore, prefix: &Path) -> Result<Catalog> {
    let not_found = || Error::StoreNotFound {
        location: display_location(prefix),
    };
    let mut cat = match find_root(store, prefix).await? {
        Some(ext) => {
            let root = root_path(prefix, &ext);
            let bytes = get_opt(store, &root).await?.ok_or_else(not_found)?;
            decode(&root, &bytes, &ext)?
        }
        None => {
            let log_dir = prefix.clone().join(LOG_DIR);
            let entries: Vec<object_store::ObjectMeta> = store
                .list(Some(&log_dir))
                .try_collect()
                .await
                .map_err(|e| Error::store(&log_dir, e))?;
            let newest = entries
                .iter()
                .filter_map(|m| {
                    let name = m.location.filename()?;
                    let (generation, ext) = name.split_once('.')?;
                    MetaFormat::from_extension(ext)?;
                    Some((generation.parse::<u64>().ok()?, ext.to_string()))
                })
                .max();
            let (generation, ext) = newest.ok_or_else(not_found)?;
            read_log(store, prefix, generation, &ext)
                .await?
                .ok_or_else(not_found)?
        }
    };
    let ext = cat.extension();
    loop {
        let next = log_path(prefix, cat.generation + 1, ext);
        match get_opt(store, &next).await? {
            Some(bytes) => cat = decode(&next, &bytes, ext)?,
            None => return Ok(cat),
        }
    }
}

/// Commits `cat` (whose generation is one past the writer's base). Returns
/// [`Error::Conflict`] when another writer committed that generation first.
pub(crate) async fn commit(store: &dyn ObjectStore, prefix: &Path, cat: &Catalog) -> Result<()> {
    let ext = cat.extension();
    let bytes = bytes::Bytes::from(encode(cat)?);
    let log = log_path(prefix, cat.generation, ext);
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(&log, bytes.clone().into(), opts).await {
        Ok(_) => {}
        Err(object_store::Error::AlreadyExists { .. }) => {
            // An earlier attempt may have succeeded behind an error; then the entry is ours.
            let ours = read_log(store, prefix, cat.generation, ext)
                .await
                .ok()
                .flatten()
                .is_some_and(|c| c.commit_id == cat.commit_id);
            if !ours {
                return Err(Error::Conflict {
                    base: cat.generation.saturating_sub(1),
                    found: cat.generation,
                });
            }
        }
        Err(e) => return Err(Error::store(&log, e)),
    }
    // The log entry is the commit; the root copy only saves `open` a probe per generation, and
    // `open` finds the entry if this put fails, so a failure here is not a failed commit.
    let _ = store.put(&root_path(prefix, ext), bytes.into()).await;
    Ok(())
}

/// Lists every object under `prefix` (for vacuum and size reports).
pub(crate) async fn list_all(
    store: &dyn ObjectStore,
    prefix: &Path,
) -> Result<Vec<object_store::ObjectMeta>> {
    let p = (!prefix.as_ref().is_empty()).then_some(prefix);
    store
        .list(p)
        .try_collect()
        .await
        .map_err(|e| Error::store(prefix, e))
}

pub(crate) fn display_location(prefix: &Path) -> String {
    if prefix.as_ref().is_empty() {
        "the store root".to_string()
    } else {
        prefix.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(format: MetaFormat, compression: Codec) -> Catalog {
        let mut c = Catalog::empty(Codec::Zstd, format, compression);
        c.generation = 7;
        c.datasets.insert("a".into(), DatasetEntry::default());
        c
    }

    #[test]
    fn every_catalog_encoding_round_trips() {
        for f in [MetaFormat::Json, MetaFormat::MsgPack] {
            for z in [Codec::Uncompressed, Codec::Zstd, Codec::Lz4] {
                let c = sample(f, z);
                let bytes = encode(&c).unwrap();
                let back = decode(&Path::from("x"), &bytes, c.extension()).unwrap();
                assert_eq!(back, c, "{f:?}/{z:?}");
            }
        }
    }

    #[test]
    fn flipped_byte_fails_the_checksum() {
        for f in [MetaFormat::Json, MetaFormat::MsgPack] {
            let c = sample(f, Codec::Uncompressed);
            let mut bytes = encode(&c).unwrap();
            // Flip a byte inside the dataset name, keeping the document well-formed.
            let pos = bytes.len() - bytes.iter().rev().position(|&b| b == b'a').unwrap() - 1;
            bytes[pos] = b'b';
            let err = decode(&Path::from("x"), &bytes, c.extension()).unwrap_err();
            assert!(matches!(err, Error::CorruptCatalog { .. }), "{f:?}: {err}");
        }
    }

    #[test]
    fn truncated_catalog_is_reported_corrupt() {
        for z in [Codec::Uncompressed, Codec::Zstd, Codec::Lz4] {
            let c = sample(MetaFormat::Json, z);
            let bytes = encode(&c).unwrap();
            let err =
                decode(&Path::from("x"), &bytes[..bytes.len() / 2], c.extension()).unwrap_err();
            assert!(matches!(err, Error::CorruptCatalog { .. }), "{z:?}: {err}");
        }
    }

    #[test]
    fn newer_format_version_is_refused_by_name() {
        let c = sample(MetaFormat::Json, Codec::Uncompressed);
        let text = String::from_utf8(encode(&c).unwrap()).unwrap();
        let text = text.replacen("\"atlas_catalog\":1", "\"atlas_catalog\":9", 1);
        let err = decode(&Path::from("x"), text.as_bytes(), "json").unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedVersion { found: 9, .. }),
            "{err}"
        );
    }
}
