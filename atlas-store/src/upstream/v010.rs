//! atlas-rust 0.10 stores: a registry (`atlas.json`, or `atlas.msgpack`, either of them
//! possibly zstd- or lz4-compressed) naming every dataset with its array definitions and
//! attributes, and per variable a folder holding `data.af` (an array-format 0.10 file with an
//! entry per dataset), its delta layers `data.N.af` and its statistics `data.stats`.
//!
//! array-format 0.10 is not the format of our segments, so the upstream crate reads the
//! values: the catalog is built from its registry (definitions, attributes) and from each
//! variable's file (fill values, statistics), and [`Reader`] serves region reads through its
//! `read_array`, which decodes only the blocks a region overlaps and resolves delta layers
//! and tombstones as atlas-rust does. Each variable is one "segment" of the catalog, keyed
//! `<variable>/data.af`, sized with its layers and statistics.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use array_format::{DType, FillValue, StatValue, TimestampNs};
use atlas_rust_010 as upstream;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use ndarray::{ArcArray, IxDyn};
use object_store::{GetOptions, GetResult, ObjectStore, path::Path};

use super::{Format, RegionSource, Upstream};
use crate::atlas::Atlas;
use crate::catalog::{ArrayEntry, Dataset, Interner, SegmentEntry, Settings, Snapshot};
use crate::config::{Codec, MetaFormat};
use crate::element::Bool;
use crate::error::{Error, Result};
use crate::schema::{ArraySchema, Attr, StatRepr, StatsRepr, widen_to_zero};
use crate::segment::SegmentCache;

const FORMAT: Format = Format::Store010;

/// The registry file names atlas-rust 0.10 writes, in the order it prefers them.
const REGISTRY_FILES: [&str; 6] = [
    "atlas.json",
    "atlas.json.zst",
    "atlas.json.lz4",
    "atlas.msgpack",
    "atlas.msgpack.zst",
    "atlas.msgpack.lz4",
];

/// The catalog key of `variable`'s file, also its path under the store's prefix.
fn segment_key(variable: &str) -> String {
    format!("{variable}/data.af")
}

/// An upstream error with what was being done when it happened.
#[derive(Debug)]
struct Context {
    what: String,
    source: upstream::Error,
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for Context {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A store the upstream crate reads through, which refuses every write: atlas-rust creates a
/// variable's file when it opens one that is missing, and a read-only store must not.
#[derive(Debug)]
struct ReadOnlyStore {
    inner: Arc<dyn ObjectStore>,
}

impl std::fmt::Display for ReadOnlyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "read-only {}", self.inner)
    }
}

fn refused(location: &Path) -> object_store::Error {
    object_store::Error::NotImplemented {
        operation: format!("changing {location} in a store opened read-only"),
        implementer: "atlas-store".to_string(),
    }
}

/// Every write, delete, copy and rename is refused; reads and listings pass through.
#[async_trait::async_trait]
impl ObjectStore for ReadOnlyStore {
    async fn put_opts(
        &self,
        location: &Path,
        _payload: object_store::PutPayload,
        _opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        Err(refused(location))
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        Err(refused(location))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations.map(|l| l.and_then(|l| Err(refused(&l)))).boxed()
    }

    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        _from: &Path,
        to: &Path,
        _options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        Err(refused(to))
    }
}

/// A boolean element for the upstream reader (array-format has the dtype but implements its
/// element trait for no Rust type).
#[derive(Debug, Clone, Copy)]
struct Flag(bool);

impl upstream::ArrayElement for Flag {
    const DTYPE: upstream::DType = upstream::DType::Bool;

    fn encode_chunk(values: &[Self]) -> Vec<u8> {
        values.iter().map(|b| u8::from(b.0)).collect()
    }

    fn decode_chunk(bytes: &[u8]) -> Vec<Self> {
        bytes.iter().map(|&b| Flag(b != 0)).collect()
    }

    fn fill_element(fill: Option<&upstream::FillValue>) -> Self {
        match fill {
            Some(upstream::FillValue::Bool(b)) => Flag(*b),
            _ => Flag(false),
        }
    }
}

/// Reads regions of an atlas-rust 0.10 store through the upstream crate.
pub(crate) struct Reader {
    atlas: upstream::Atlas,
    location: String,
    /// Variables the registry names whose `data.af` is not in the store.
    missing: HashSet<String>,
    /// `(dataset, array)` whose definition could not be read from its file at open, with why:
    /// their reads fail, the rest of the store reads.
    broken: HashMap<(String, String), String>,
    prefix: Path,
}

impl Reader {
    fn error(&self, what: String, source: upstream::Error) -> Error {
        Error::Upstream {
            location: self.location.clone(),
            format: FORMAT.describe(),
            source: Box::new(Context { what, source }),
        }
    }

    async fn typed<U: upstream::ArrayElement>(
        &self,
        dataset: &str,
        array: &str,
        start: Vec<usize>,
        shape: Vec<usize>,
    ) -> Result<ArcArray<U, IxDyn>> {
        let what = || format!("reading {dataset}/{array}");
        let view = self
            .atlas
            .open_dataset(dataset)
            .await
            .map_err(|e| self.error(what(), e))?;
        let wanted = shape.clone();
        let read = unpanicked(view.read_array::<U>(array, start, shape))
            .await
            .map_err(|reason| self.damaged(dataset, array, reason))?
            .map_err(|e| self.error(what(), e))?
            .ok_or_else(|| Error::ArrayNotFound {
                dataset: dataset.to_string(),
                array: array.to_string(),
                known: view.list_arrays().join(", "),
            })?;
        // atlas-rust clamps a region to the shape its file records, which a registry written
        // apart from its files can contradict.
        if !wanted.is_empty() && read.shape() != wanted.as_slice() {
            return Err(self.damaged(
                dataset,
                array,
                format!(
                    "the file holds shape {:?} where the registry's definition asks for {wanted:?}",
                    read.shape()
                ),
            ));
        }
        Ok(read)
    }

    /// The error for a file whose contents are wrong for `dataset`/`array`.
    fn damaged(&self, dataset: &str, array: &str, reason: String) -> Error {
        let path = crate::segment::object_path(&self.prefix, &segment_key(array));
        Error::CorruptSegment {
            path: path.to_string(),
            reason: format!("dataset {dataset:?}, array {array:?}: {reason}"),
            source: None,
        }
    }
}

#[async_trait::async_trait]
impl RegionSource for Reader {
    async fn read(
        &self,
        dataset: &str,
        array: &str,
        dtype: &DType,
        start: Vec<usize>,
        shape: Vec<usize>,
    ) -> Result<Box<dyn Any + Send>> {
        if self.missing.contains(array) {
            let path = crate::segment::object_path(&self.prefix, &segment_key(array));
            return Err(Error::SegmentGone {
                path: path.to_string(),
                source: object_store::Error::NotFound {
                    path: path.to_string(),
                    source: "the store's registry names this variable but its file is missing"
                        .into(),
                },
            });
        }
        if let Some(reason) = self.broken.get(&(dataset.to_string(), array.to_string())) {
            return Err(self.damaged(dataset, array, reason.clone()));
        }
        macro_rules! same {
            ($t:ty) => {
                Box::new(self.typed::<$t>(dataset, array, start, shape).await?)
                    as Box<dyn Any + Send>
            };
        }
        Ok(match dtype {
            DType::Int8 => same!(i8),
            DType::Int16 => same!(i16),
            DType::Int32 => same!(i32),
            DType::Int64 => same!(i64),
            DType::UInt8 => same!(u8),
            DType::UInt16 => same!(u16),
            DType::UInt32 => same!(u32),
            DType::UInt64 => same!(u64),
            DType::Float32 => same!(f32),
            DType::Float64 => same!(f64),
            DType::String => same!(String),
            DType::Binary => same!(Vec<u8>),
            DType::TimestampNs => {
                let a = self
                    .typed::<upstream::TimestampNs>(dataset, array, start, shape)
                    .await?;
                Box::new(a.mapv(|t| TimestampNs(t.0)).into_shared())
            }
            DType::Bool => {
                let a = self.typed::<Flag>(dataset, array, start, shape).await?;
                Box::new(a.mapv(|b| Bool(b.0)).into_shared())
            }
            other => {
                return Err(Error::invalid(
                    dataset,
                    array,
                    format!("dtype {other:?} cannot be read from {}", FORMAT.describe()),
                ));
            }
        })
    }
}

/// Runs `fut` (a call into atlas-rust 0.10), turning a panic (which damaged bytes can cause
/// in its decoder) into an error saying so.
async fn unpanicked<F: std::future::Future>(fut: F) -> std::result::Result<F::Output, String> {
    std::panic::AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|panic| {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            format!("the upstream reader failed on the file's bytes ({why})")
        })
}

/// What one variable's folder holds.
#[derive(Debug, Default)]
struct Files {
    /// Bytes of its `data.af`, delta layers and statistics.
    size: u64,
    has_data: bool,
    newest_layer: Option<std::time::SystemTime>,
    stats_written: Option<std::time::SystemTime>,
}

/// Opens the atlas-rust 0.10 store at `prefix` (named `location` in messages); `Ok(None)`
/// when no such store is there (or its registry is not one the upstream crate reads).
pub(super) async fn open(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    location: String,
) -> Result<Option<Atlas>> {
    let counted = crate::io::CountingStore::wrap(Arc::clone(store));
    // Every object of the store (one listing): whether a registry is at the root, and each
    // variable folder's files, by the folder's path as object_store encodes it (a name with
    // `[` or `%` is escaped there).
    let listed: Vec<object_store::ObjectMeta> = counted
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(|e| Error::store(prefix, e))?;
    let has_registry = listed.iter().any(|m| {
        m.location.prefix_match(prefix).is_some_and(|mut rest| {
            rest.next()
                .is_some_and(|f| REGISTRY_FILES.contains(&f.as_ref()))
                && rest.next().is_none()
        })
    });
    if !has_registry {
        return Ok(None);
    }
    let read_only: Arc<dyn ObjectStore> = Arc::new(ReadOnlyStore {
        inner: Arc::clone(&counted),
    });
    let atlas = match upstream::Atlas::open(read_only, prefix.clone()).await {
        Ok(a) => a,
        // Not a registry of 0.10 (the caller reports its own error), or a damaged one.
        Err(e) => {
            if super::is_010(&**store, prefix).await {
                return Err(Error::Upstream {
                    location,
                    format: FORMAT.describe(),
                    source: Box::new(e),
                });
            }
            return Ok(None);
        }
    };

    let mut folders: HashMap<Path, Files> = HashMap::new();
    for meta in &listed {
        let parts: Vec<_> = meta.location.parts().collect();
        let Some((file, dir)) = parts.split_last() else {
            continue;
        };
        let folder = folders.entry(dir.iter().cloned().collect()).or_default();
        let file = file.as_ref();
        let is_layer = file == "data.af"
            || file
                .strip_prefix("data.")
                .and_then(|f| f.strip_suffix(".af"))
                .is_some_and(|n| n.parse::<u64>().is_ok());
        if is_layer {
            folder.size += meta.size;
            folder.has_data |= file == "data.af";
            folder.newest_layer = folder.newest_layer.max(Some(meta.last_modified.into()));
        } else if file == "data.stats" {
            folder.size += meta.size;
            folder.stats_written = Some(meta.last_modified.into());
        }
    }
    let folder_of = |variable: &str| folders.get(&prefix.clone().join(variable));

    let reader = Reader {
        atlas,
        location: location.clone(),
        missing: HashSet::new(),
        broken: HashMap::new(),
        prefix: prefix.clone(),
    };
    let mut interner = Interner::default();
    let mut snap = Snapshot::empty(Settings {
        codec: Codec::Zstd,
        meta_format: MetaFormat::Json,
        meta_compression: Codec::Uncompressed,
    });
    let mut missing = HashSet::new();
    let mut broken = HashMap::new();
    let mut variables = HashSet::new();
    let names = reader.atlas.list_datasets();
    for (seq, name) in names.iter().enumerate() {
        let view = reader
            .atlas
            .open_dataset(name)
            .await
            .map_err(|e| reader.error(format!("opening dataset {name}"), e))?;
        let meta = view.meta();
        let mut arrays = Vec::with_capacity(meta.arrays.len());
        for (array, def) in &meta.arrays {
            let key = segment_key(array);
            let damaged = |reason: String| Error::CorruptSegment {
                path: crate::segment::object_path(prefix, &key).to_string(),
                reason: format!("dataset {name:?}, array {array:?}: {reason}"),
                source: None,
            };
            // List dtypes have no SQL mapping (and no atlas-sql store holds them): such an
            // array is left out, the rest of its dataset is there.
            let Some(dtype) = convert_dtype(&def.dtype) else {
                continue;
            };
            let rank = def.shape.len();
            let dims = if def.dimension_names.len() == rank {
                def.dimension_names.clone()
            } else {
                (0..rank).map(|i| format!("dim{i}")).collect()
            };
            if def.chunk_shape.len() != rank {
                return Err(damaged(format!(
                    "chunk shape {:?} does not match shape {:?}",
                    def.chunk_shape, def.shape
                )));
            }
            let files = folder_of(array);
            let on_disk = files.is_some_and(|f| f.has_data);
            // atlas-rust writes a flush's layer, then the statistics: statistics older than
            // the newest layer missed that flush.
            let stats_current = files
                .is_some_and(|f| f.stats_written.is_some() && f.stats_written >= f.newest_layer);
            let (fill_value, stats) = if !on_disk {
                missing.insert(array.clone());
                (None, None)
            } else {
                match unpanicked(view.array_fill_value(array)).await {
                    Ok(Ok(fill)) => {
                        let stats = if stats_current {
                            unpanicked(view.array_stats(array)).await.ok().flatten()
                        } else {
                            None
                        };
                        (fill.map(convert_fill), stats)
                    }
                    // The store could not be reached: not the file's fault.
                    Ok(Err(upstream::Error::ObjectStore(e))) => {
                        return Err(Error::store(prefix, e));
                    }
                    // A damaged file: its reads fail naming it, and verify reports it.
                    Ok(Err(e)) => {
                        let reason = format!("its definition does not read: {e}");
                        broken.insert((name.clone(), array.clone()), reason);
                        (None, None)
                    }
                    Err(reason) => {
                        broken.insert((name.clone(), array.clone()), reason);
                        (None, None)
                    }
                }
            };
            let schema = ArraySchema {
                dtype,
                dims,
                chunk_shape: def
                    .chunk_shape
                    .iter()
                    .zip(&def.shape)
                    .map(|(&c, &n)| c.clamp(1, n.max(1)))
                    .collect(),
                shape: def.shape.clone(),
                fill_value,
            };
            crate::catalog::columns::check_schema(&schema).map_err(damaged)?;
            let stats = stats.and_then(|s| convert_stats(&s, &schema));
            let empty = schema.shape.contains(&0);
            variables.insert(array.clone());
            arrays.push(ArrayEntry {
                name: interner.name(array),
                schema: interner.schema(schema),
                attributes: interner.attrs_from(Vec::new()),
                segment: (!empty).then(|| interner.name(&key)),
                stats,
            });
        }
        let attributes: Vec<(String, Attr)> = meta
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), convert_attr(v)))
            .collect();
        let ds = Dataset {
            seq: seq as u64,
            attributes: interner.attrs_from(attributes),
            arrays,
        };
        let name = interner.name(name);
        snap.put_dataset(name, Arc::new(ds));
    }
    for variable in &variables {
        let key = segment_key(variable);
        let entry = SegmentEntry {
            variable: interner.name(variable),
            size: folder_of(variable).map_or(0, |f| f.size),
            crc32: 0,
            sums: None,
        };
        snap.segments.insert(
            interner.name(&key),
            crate::catalog::snapshot::LiveSegment { entry, refs: 0 },
        );
    }
    snap.recount(&location)?;
    let snap = snap.fold();
    let reader = Reader {
        missing,
        broken,
        ..reader
    };
    let upstream = Upstream {
        format: FORMAT,
        location,
        source: Some(Arc::new(reader)),
    };
    let segments = SegmentCache::new(Arc::clone(&counted), prefix.clone());
    Ok(Some(Atlas::from_upstream(
        counted,
        prefix.clone(),
        snap,
        interner,
        segments,
        upstream,
    )))
}

/// Whether cells equal to `fill` read as NULL in SQL for an array of `dtype`
/// (`atlas-datafusion`'s conversion; atlas-rust 0.10's statistics count the same as nulls).
fn null_fill(dtype: &DType, fill: &FillValue) -> bool {
    match dtype {
        DType::Int8
        | DType::Int16
        | DType::Int32
        | DType::Int64
        | DType::UInt8
        | DType::UInt16
        | DType::UInt32
        | DType::UInt64 => matches!(fill, FillValue::Int(_) | FillValue::UInt(_)),
        DType::Float32 | DType::Float64 => matches!(fill, FillValue::Float(_)),
        DType::TimestampNs => matches!(fill, FillValue::TimestampNs(_) | FillValue::Int(_)),
        DType::Bool => matches!(fill, FillValue::Bool(_)),
        _ => false,
    }
}

fn convert_dtype(d: &upstream::DType) -> Option<DType> {
    use upstream::DType as U;
    Some(match d {
        U::Bool => DType::Bool,
        U::Int8 => DType::Int8,
        U::Int16 => DType::Int16,
        U::Int32 => DType::Int32,
        U::Int64 => DType::Int64,
        U::UInt8 => DType::UInt8,
        U::UInt16 => DType::UInt16,
        U::UInt32 => DType::UInt32,
        U::UInt64 => DType::UInt64,
        U::Float32 => DType::Float32,
        U::Float64 => DType::Float64,
        U::String => DType::String,
        U::Binary => DType::Binary,
        U::TimestampNs => DType::TimestampNs,
        _ => return None,
    })
}

fn convert_fill(f: upstream::FillValue) -> FillValue {
    use upstream::FillValue as U;
    match f {
        U::Bool(b) => FillValue::Bool(b),
        U::Int(i) => FillValue::Int(i),
        U::UInt(u) => FillValue::UInt(u),
        U::Float(x) => FillValue::Float(x),
        U::String(s) => FillValue::String(s),
        U::TimestampNs(t) => FillValue::TimestampNs(t),
    }
}

fn convert_attr(a: &upstream::Attr) -> Attr {
    match a {
        upstream::Attr::Bool(b) => Attr::Bool(*b),
        upstream::Attr::TimestampNanoseconds(t) => Attr::TimestampNanoseconds(*t),
        upstream::Attr::String(s) => Attr::String(s.clone()),
        upstream::Attr::Int64(i) => Attr::Int64(*i),
        upstream::Attr::Float64(x) => Attr::Float64(*x),
    }
}

fn convert_stat(v: &upstream::StatValue) -> StatValue {
    match v {
        upstream::StatValue::Int(x) => StatValue::Int(*x),
        upstream::StatValue::UInt(x) => StatValue::UInt(*x),
        upstream::StatValue::Float(x) => StatValue::Float(*x),
        upstream::StatValue::Bytes(x) => StatValue::Bytes(x.clone()),
        upstream::StatValue::TimestampNs(x) => StatValue::TimestampNs(*x),
    }
}

/// The statistics of one array as SQL sees it, from those atlas-rust 0.10 computed at its
/// last flush of the array (over every chunk written, delta layers resolved).
///
/// 0.10 counts as null every cell equal to the fill value and every cell of a chunk never
/// written. With a fill value that is SQL's view too. Without one an unwritten cell reads as
/// the dtype's zero, a value: those cells leave the null count and the zero joins min and max.
/// Strings and binaries read as empty where never written whatever their fill value, so their
/// statistics are not used. Statistics that do not cover the array's cells (a stale file) are
/// not used either.
fn convert_stats(s: &upstream::ArrayStats, schema: &ArraySchema) -> Option<StatsRepr> {
    if matches!(schema.dtype, DType::String | DType::Binary) {
        return None;
    }
    // A fill value of another kind than the dtype's is not NULL in SQL, but 0.10 counts the
    // unwritten cells it fills as nulls.
    if let Some(fill) = &schema.fill_value
        && !null_fill(&schema.dtype, fill)
    {
        return None;
    }
    if s.row_count != schema.element_count() || s.null_count > s.row_count {
        return None;
    }
    let mut repr = StatsRepr {
        min: s.min.as_ref().map(|v| StatRepr::from(convert_stat(v))),
        max: s.max.as_ref().map(|v| StatRepr::from(convert_stat(v))),
        null_count: s.null_count,
        row_count: s.row_count,
    };
    if schema.fill_value.is_none() {
        let unwritten = std::mem::take(&mut repr.null_count);
        if unwritten > 0 && !widen_to_zero(&mut repr, &schema.dtype) {
            return None;
        }
    }
    Some(repr)
}
