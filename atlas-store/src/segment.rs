//! Segments: immutable array-format files, one per (variable, flush), holding that variable for
//! every dataset the flush touched, keyed by dataset name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use array_format::{
    ArrayFile, ArrayWriter, BlockCache, Lz4Codec, NoCompression, ReadConfig, WriterConfig,
    ZstdCodec,
};
use futures::TryStreamExt;
use object_store::{
    GetOptions, GetResult, MultipartUpload, ObjectStore, ObjectStoreExt, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, UploadPart, path::Path,
};

use crate::catalog::SegmentEntry;
use crate::config::Codec;
use crate::error::{Error, Result};
use crate::lock;
use crate::pack::{Packs, Slot};
use crate::sums::{PageHasher, Sums, VerifiedStore};

/// Decoded-block budget shared by every segment a handle opens.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// Raw I/O budget shared by every segment a handle opens.
const IO_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Block budget of a verify of a segment without checksums (its blocks are decoded, not kept).
const VERIFY_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Block loads a prefetch keeps in flight.
pub(crate) const PREFETCH_CONCURRENCY: usize = 8;

/// Whether the chunk at grid coordinate `coord` overlaps `region` (empty: the whole array).
pub(crate) fn chunk_overlaps(
    coord: &[u32],
    chunk_shape: &[usize],
    region: &[std::ops::Range<usize>],
) -> bool {
    if region.is_empty() {
        return true;
    }
    coord
        .iter()
        .zip(chunk_shape)
        .zip(region)
        .all(|((&c, &extent), r)| {
            let start = c as usize * extent.max(1);
            start < r.end && r.start < start + extent.max(1)
        })
}

/// Key of a new segment: `<variable>/<generation>-<id>.af`.
pub(crate) fn new_key(variable: &str, generation: u64) -> String {
    format!("{variable}/{generation:06}-{}.af", crate::catalog::new_id())
}

/// Object path of a segment key under `prefix`.
pub(crate) fn object_path(prefix: &Path, key: &str) -> Path {
    let (variable, file) = key.rsplit_once('/').unwrap_or(("", key));
    prefix.clone().join(variable).join(file)
}

/// Whether an object path is a segment file: `<variable>/<file>.af` directly under `prefix`.
pub(crate) fn is_segment(prefix: &Path, path: &Path) -> bool {
    let Some(parts) = path.prefix_match(prefix) else {
        return false;
    };
    let parts: Vec<_> = parts.collect();
    matches!(parts.as_slice(), [var, file]
        if !var.as_ref().starts_with('_') && file.as_ref().ends_with(".af"))
}

/// Raw bytes packed into one compressed block. array-format's default (8 MiB) puts a whole
/// small segment in one block, so reading one dataset's chunk would decompress every dataset's;
/// 256 KiB keeps selective reads selective while blocks stay large enough to compress well.
pub(crate) const BLOCK_TARGET_SIZE: usize = 256 * 1024;

/// Checks that a temporary file can be made, which array-format's writer needs for its blocks
/// (and panics without).
pub(crate) fn check_temp_dir() -> Result<()> {
    tempfile::tempfile().map(drop).map_err(|e| Error::Io {
        path: std::env::temp_dir().display().to_string(),
        source: std::io::Error::new(
            e.kind(),
            format!("cannot create a temporary file to write a segment: {e}"),
        ),
    })
}

pub(crate) fn new_writer(codec: Codec) -> ArrayWriter {
    fn config<C: array_format::CompressionCodec>(codec: C) -> WriterConfig<C> {
        WriterConfig {
            codec,
            block_target_size: BLOCK_TARGET_SIZE,
        }
    }
    match codec {
        Codec::Zstd => ArrayWriter::new(config(ZstdCodec { level: 3 })),
        Codec::Lz4 => ArrayWriter::new(config(Lz4Codec)),
        Codec::Uncompressed => ArrayWriter::new(config(NoCompression)),
    }
}

/// Opened segments of one handle, sharing one block cache.
pub(crate) struct SegmentCache {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    files: Mutex<HashMap<String, Opened>>,
    /// One gate per segment being opened, so concurrent opens of it make its requests once.
    opening: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    blocks: Arc<BlockCache>,
    /// Segments that are byte ranges of a larger object (an atlas-rust collection's
    /// `data.atlas`), by key; empty for an atlas-sql store.
    ranges: HashMap<String, SegmentRange>,
}

/// Where a segment that is part of a larger object sits in it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentRange {
    /// The object holding it.
    pub container: Path,
    /// Its first byte in `container`.
    pub offset: u64,
    /// Its length.
    pub len: u64,
}

/// An opened segment: its array-format file and the index of its packs.
#[derive(Debug)]
pub(crate) struct Segment {
    file: ArrayFile,
    /// Where the packed datasets' values sit (`crate::pack`).
    pub packs: Packs,
}

impl std::ops::Deref for Segment {
    type Target = ArrayFile;
    fn deref(&self) -> &ArrayFile {
        &self.file
    }
}

impl Segment {
    /// How many datasets' arrays the segment holds, packed or not.
    pub(crate) fn datasets(&self) -> usize {
        let own = self
            .file
            .arrays()
            .iter()
            .filter(|a| !crate::pack::is_pack(&a.name))
            .count();
        own + self.packs.len()
    }

    /// Indexes the packs of `file`, opened as segment `path`.
    fn new(path: &Path, file: ArrayFile) -> Result<Segment> {
        let packs = Packs::read(&file).map_err(|why| Error::CorruptSegment {
            path: path.to_string(),
            reason: format!("its pack index: {why}"),
            source: None,
        })?;
        Ok(Segment { file, packs })
    }
}

/// One opened segment and the store its reads are checked through (none for a range of a
/// container, which has no page checksums).
struct Opened {
    file: Arc<Segment>,
    verified: Option<Arc<VerifiedStore>>,
}

/// Writes the page-checksum sidecar of the segment at `segment`; returns the CRC-32 of its
/// bytes, which the catalog records.
pub(crate) async fn write_sums(
    store: &dyn ObjectStore,
    segment: &Path,
    sums: &Sums,
) -> Result<u32> {
    let (bytes, crc) = sums.encode();
    let path = crate::sums::sidecar_path(segment);
    store
        .put(&path, bytes.into())
        .await
        .map_err(|e| Error::store(&path, e))?;
    Ok(crc)
}

impl std::fmt::Debug for SegmentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentCache").finish_non_exhaustive()
    }
}

/// Reads the region `start`/`shape` (whole-array extents, resolved) of `dataset`'s array,
/// of shape `array_shape`, from `file`: its own array-format array, or its slot in a pack. The
/// caller has checked the layout (`SegmentCache::check_layout`).
pub(crate) async fn read_region<T: array_format::ArrayElement>(
    file: &Segment,
    dataset: &str,
    array_shape: &[usize],
    start: Vec<usize>,
    shape: Vec<usize>,
) -> std::result::Result<ndarray::ArcArray<T, ndarray::IxDyn>, array_format::Error> {
    if file.array(dataset).is_some() {
        return file.read_array::<T>(dataset, start, shape).await;
    }
    let Some(slot) = file.packs.get(dataset) else {
        return Err(array_format::Error::ArrayNotFound {
            name: dataset.to_string(),
        });
    };
    let values = file
        .read_array::<T>(
            &slot.array,
            vec![slot.start as usize],
            vec![(slot.end - slot.start) as usize],
        )
        .await?;
    let whole = values
        .into_shape_with_order(ndarray::IxDyn(array_shape))
        .map_err(|e| array_format::Error::InvalidFooter(format!("{dataset:?} in its pack: {e}")))?;
    if start.iter().all(|&s| s == 0) && shape.as_slice() == array_shape {
        return Ok(whole);
    }
    Ok(whole
        .slice_each_axis(|ax| {
            let a = ax.axis.index();
            ndarray::Slice::from(start[a]..start[a] + shape[a])
        })
        .to_shared())
}

/// The blocks holding `region` (empty: the whole array) of `dataset`'s array in `file`.
pub(crate) fn blocks_of(
    file: &Segment,
    dataset: &str,
    chunk_shape: &[usize],
    region: &[std::ops::Range<usize>],
    ids: &mut std::collections::BTreeSet<u32>,
) {
    if let Some(info) = file.array(dataset) {
        for c in info.chunk_entries() {
            if chunk_overlaps(&c.coord, chunk_shape, region) {
                ids.insert(c.address.block_id.0);
            }
        }
        return;
    }
    // A packed array is small: its whole slot, whatever the region.
    let Some(slot) = file.packs.get(dataset) else {
        return;
    };
    let Some(pack) = file.array(&slot.array) else {
        return;
    };
    let chunks = slot.chunks(pack);
    for c in pack.chunk_entries() {
        if chunks.contains(&u64::from(c.coord.first().copied().unwrap_or(0))) {
            ids.insert(c.address.block_id.0);
        }
    }
}

/// The encoded values of packed `slot` in `file`: a slice of one chunk's decoded bytes, or the
/// parts of two or more chunks joined. `held` keeps the chunk read last (consecutive slots
/// mostly share it). `None`: a chunk the slot needs is missing from the pack.
pub(crate) async fn slot_bytes(
    file: &Segment,
    slot: &Slot,
    elem: usize,
    held: &mut Option<(String, u64, bytes::Bytes)>,
) -> std::result::Result<Option<bytes::Bytes>, array_format::Error> {
    let Some(pack) = file.array(&slot.array) else {
        return Ok(None);
    };
    let chunks = slot.chunks(pack);
    let c = slot.chunk_len(pack);
    let single = chunks.start() == chunks.end();
    let mut joined: Vec<u8> = Vec::new();
    for idx in chunks {
        let chunk = match held {
            Some((name, j, b)) if *name == slot.array && *j == idx => b.clone(),
            _ => {
                let Some(b) = file.chunk_bytes(pack, &[idx as u32]).await? else {
                    return Ok(None);
                };
                *held = Some((slot.array.clone(), idx, b.clone()));
                b
            }
        };
        let base = idx * c;
        let lo = ((slot.start.max(base) - base) as usize) * elem;
        let hi = (((slot.end.min(base + c) - base) as usize) * elem).min(chunk.len());
        if single {
            return Ok(Some(chunk.slice(lo.min(hi)..hi)));
        }
        joined.extend_from_slice(&chunk[lo.min(hi)..hi]);
    }
    Ok(Some(bytes::Bytes::from(joined)))
}

impl SegmentCache {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        SegmentCache {
            store,
            prefix,
            files: Mutex::new(HashMap::new()),
            opening: Mutex::new(HashMap::new()),
            blocks: Arc::new(BlockCache::new(CACHE_BYTES, IO_CACHE_BYTES)),
            ranges: HashMap::new(),
        }
    }

    /// A cache whose segments `ranges` are byte ranges of larger objects.
    #[cfg_attr(not(feature = "upstream"), allow(dead_code))]
    pub(crate) fn with_ranges(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        ranges: HashMap<String, SegmentRange>,
    ) -> Self {
        SegmentCache {
            ranges,
            ..Self::new(store, prefix)
        }
    }

    /// Where segment `key` sits when it is a range of a larger object.
    #[cfg_attr(not(feature = "upstream"), allow(dead_code))]
    pub(crate) fn range(&self, key: &str) -> Option<&SegmentRange> {
        self.ranges.get(key)
    }

    /// Opens segment `key`, a range of a larger object, over `cache`: one or two reads of
    /// its footer. Its object path is that of the segment, not of the container.
    async fn open_view(
        &self,
        key: &str,
        range: &SegmentRange,
        cache: Arc<BlockCache>,
    ) -> std::result::Result<ArrayFile, array_format::Error> {
        let path = object_path(&self.prefix, key);
        let view = crate::upstream::range::RangeStore::new(
            Arc::clone(&self.store),
            range.container.clone(),
            path.clone(),
            range.offset,
            range.len,
        );
        let config = ReadConfig {
            cache: Some(cache),
            ..ReadConfig::default()
        };
        ArrayFile::open(Arc::new(view), path, config).await
    }

    /// Opens segment `key`, a range of a larger object, into this handle's cache.
    async fn open_range(&self, key: &str, range: &SegmentRange) -> Result<Arc<Segment>> {
        let file = match self.open_view(key, range, Arc::clone(&self.blocks)).await {
            Ok(f) => Arc::new(Segment::new(&object_path(&self.prefix, key), f)?),
            Err(e) => return Err(self.read_error(key, "reading the footer".into(), e).await),
        };
        let opened = Opened {
            file: Arc::clone(&file),
            verified: None,
        };
        lock(&self.files).insert(key.to_string(), opened);
        Ok(file)
    }

    /// Opens segment `key`, checking its size against the catalog's record and setting up the
    /// page checks of every later read: one `head`, one read of the page checksums and one of
    /// the footer per segment per handle (a segment written before page checksums is read in
    /// full once instead, to check its CRC-32 and take its page checksums); later calls hit
    /// the cache.
    ///
    /// Concurrent opens of one segment (a scan's read-ahead and its reads, two partitions)
    /// wait for the first instead of each making the same requests.
    pub(crate) async fn open(
        &self,
        key: &str,
        entry: Option<&SegmentEntry>,
    ) -> Result<Arc<Segment>> {
        if let Some(f) = lock(&self.files).get(key) {
            return Ok(Arc::clone(&f.file));
        }
        let gate = Arc::clone(lock(&self.opening).entry(key.to_string()).or_default());
        let opened = {
            let _first = gate.lock().await;
            let cached = lock(&self.files).get(key).map(|f| Arc::clone(&f.file));
            match cached {
                Some(file) => Ok(file),
                None => self.open_uncached(key, entry).await,
            }
        };
        // The last one through forgets the gate (the map holds one reference, `gate` another).
        let mut opening = lock(&self.opening);
        if opening.get(key).is_some_and(|g| Arc::strong_count(g) <= 2) {
            opening.remove(key);
        }
        opened
    }

    async fn open_uncached(&self, key: &str, entry: Option<&SegmentEntry>) -> Result<Arc<Segment>> {
        if let Some(range) = self.ranges.get(key) {
            return self.open_range(key, range).await;
        }
        let path = object_path(&self.prefix, key);
        let Some(entry) = entry else {
            return Err(Error::CorruptSegment {
                path: path.to_string(),
                reason: "no catalog row lists it, so it cannot be checked".into(),
                source: None,
            });
        };
        // The size check and the page checksums are independent requests: both in flight.
        let checked_head = async {
            let meta = match self.store.head(&path).await {
                Ok(m) => m,
                Err(e @ object_store::Error::NotFound { .. }) => {
                    return Err(Error::SegmentGone {
                        path: path.to_string(),
                        source: e,
                    });
                }
                Err(e) => return Err(Error::store(&path, e)),
            };
            if meta.size != entry.size {
                return Err(Error::CorruptSegment {
                    path: path.to_string(),
                    reason: format!(
                        "{} bytes on disk, but the catalog records {} (truncated or overwritten)",
                        meta.size, entry.size
                    ),
                    source: None,
                });
            }
            Ok(meta)
        };
        let (meta, sums) = match entry.sums {
            Some(crc) => {
                let (meta, sums) = futures::join!(checked_head, self.sums(&path, crc, entry.size));
                (meta?, sums?)
            }
            // Written before page checksums: one full read checks the segment's CRC-32 and
            // yields page checksums, so this handle's reads are checked all the same.
            None => {
                let meta = checked_head.await?;
                let found = self.digest(&path).await?;
                (meta, check_digest(&path, entry, None, found)?)
            }
        };
        let config = ReadConfig {
            cache: Some(Arc::clone(&self.blocks)),
            ..ReadConfig::default()
        };
        let verified = Arc::new(VerifiedStore::new(
            Arc::clone(&self.store),
            path.clone(),
            sums,
            meta,
        ));
        let through = Arc::clone(&verified) as Arc<dyn ObjectStore>;
        let opened = ArrayFile::open(through, path.clone(), config).await;
        if opened.is_ok()
            && let Some(whole) = verified.held_whole()
        {
            self.blocks.seed_slab(path.as_ref(), 0, whole).await;
        }
        verified.forget_tail();
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                if let Some(d) = verified.damage() {
                    return Err(Error::CorruptSegment {
                        path: path.to_string(),
                        reason: format!("reading the footer: {d}"),
                        source: Some(e),
                    });
                }
                // A segment removed since the `head` above is gone, not corrupt.
                return Err(self.read_error(key, "reading the footer".into(), e).await);
            }
        };
        let file = Arc::new(Segment::new(&path, file)?);
        let opened = Opened {
            file: Arc::clone(&file),
            verified: Some(verified),
        };
        lock(&self.files).insert(key.to_string(), opened);
        Ok(file)
    }

    /// Reads and checks the page-checksum sidecar of the segment at `path` against the CRC-32
    /// the catalog records for it.
    async fn sums(&self, path: &Path, crc: u32, size: u64) -> Result<Sums> {
        let sidecar = crate::sums::sidecar_path(path);
        let corrupt = |reason: String| Error::CorruptSegment {
            path: path.to_string(),
            reason,
            source: None,
        };
        let bytes = match self.store.get(&sidecar).await {
            Ok(r) => r.bytes().await.map_err(|e| Error::store(&sidecar, e))?,
            Err(object_store::Error::NotFound { .. }) => {
                // Clean-up removes a segment before its sidecar: both gone is a segment gone.
                if let Err(gone @ object_store::Error::NotFound { .. }) =
                    self.store.head(path).await
                {
                    return Err(Error::SegmentGone {
                        path: path.to_string(),
                        source: gone,
                    });
                }
                return Err(corrupt(format!(
                    "its page checksums ({sidecar}) are missing"
                )));
            }
            Err(e) => return Err(Error::store(&sidecar, e)),
        };
        let (sums, found) = Sums::decode(&bytes)
            .map_err(|why| corrupt(format!("its page checksums ({sidecar}): {why}")))?;
        if found != crc {
            return Err(corrupt(format!(
                "its page checksums ({sidecar}) are not the ones the catalog records"
            )));
        }
        if sums.size() != size {
            return Err(corrupt(format!(
                "its page checksums ({sidecar}) cover {} bytes, but the catalog records {size}",
                sums.size()
            )));
        }
        Ok(sums)
    }

    /// Checks that the footer of segment `key` lays out `dataset`'s array as the catalog's
    /// `schema` says (dtype, shape, chunk shape, every written chunk inside the grid) before
    /// array-format indexes by it: a footer damaged in a way its own decoding accepts must give
    /// an error, not a panic or a misplaced chunk.
    pub(crate) fn check_layout(
        &self,
        key: &str,
        file: &Segment,
        dataset: &str,
        schema: &crate::schema::ArraySchema,
    ) -> Result<()> {
        let corrupt = |reason: String| Error::CorruptSegment {
            path: object_path(&self.prefix, key).to_string(),
            reason,
            source: None,
        };
        let Some(info) = file.array(dataset) else {
            let slot = file
                .packs
                .get(dataset)
                .ok_or_else(|| corrupt(format!("it holds no array for dataset {dataset:?}")))?;
            let pack = file.array(&slot.array).ok_or_else(|| {
                corrupt(format!(
                    "its pack index names a pack {:?} it lacks",
                    slot.array
                ))
            })?;
            let n: u64 = schema.shape.iter().map(|&x| x as u64).product();
            if pack.dtype != schema.dtype || slot.end - slot.start != n {
                return Err(corrupt(format!(
                    "its pack holds {} {:?} values of {dataset:?}, but the catalog says {:?} {:?}",
                    slot.end - slot.start,
                    pack.dtype,
                    schema.dtype,
                    schema.shape
                )));
            }
            return Ok(());
        };
        let same_extents = |a: &[u32], b: &[usize]| {
            a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| x as usize == y)
        };
        // A chunk longer than its axis (which array-format allows) is that axis in the
        // catalog: one chunk either way.
        let clamped: Vec<u32> = info
            .chunk_shape
            .iter()
            .zip(&info.shape)
            .map(|(&c, &n)| c.min(n.max(1)))
            .collect();
        if info.dtype != schema.dtype
            || !same_extents(&info.shape, &schema.shape)
            || !same_extents(&clamped, &schema.chunk_shape)
        {
            return Err(corrupt(format!(
                "its footer lays out {dataset:?} as {:?} {:?} in chunks of {:?}, but the catalog \
                 says {:?} {:?} in chunks of {:?}",
                info.dtype,
                info.shape,
                info.chunk_shape,
                schema.dtype,
                schema.shape,
                schema.chunk_shape
            )));
        }
        for coord in info.written_chunks() {
            let inside = coord.len() == schema.shape.len()
                && coord
                    .iter()
                    .zip(schema.shape.iter().zip(&schema.chunk_shape))
                    .all(|(&c, (&len, &chunk))| (c as u64) * (chunk as u64) < len.max(1) as u64);
            if !inside {
                return Err(corrupt(format!(
                    "its footer lists chunk {coord:?} of {dataset:?}, outside its {:?} grid",
                    schema.shape
                )));
            }
        }
        Ok(())
    }

    /// Blocks decoded by every segment of this cache.
    pub(crate) fn blocks_decoded(&self) -> u64 {
        self.blocks.blocks_decoded()
    }

    /// Forgets opened segments (after `compact` removed some).
    pub(crate) fn clear(&self) {
        lock(&self.files).clear();
    }

    /// Maps an error reading array data from segment `key` to the most useful store error.
    pub(crate) async fn read_error(
        &self,
        key: &str,
        context: String,
        e: array_format::Error,
    ) -> Error {
        let path = object_path(&self.prefix, key);
        let damage = lock(&self.files)
            .get(key)
            .and_then(|f| f.verified.as_ref().and_then(|v| v.damage()));
        if let Some(d) = damage {
            return Error::CorruptSegment {
                path: path.to_string(),
                reason: format!("{context}: {d}"),
                source: Some(e),
            };
        }
        match e {
            array_format::Error::Storage(_) | array_format::Error::Io(_) => {
                // A range of a container is gone when the container is.
                let object = self.ranges.get(key).map_or(&path, |r| &r.container);
                if let Err(gone @ object_store::Error::NotFound { .. }) =
                    self.store.head(object).await
                {
                    lock(&self.files).remove(key);
                    return Error::SegmentGone {
                        path: path.to_string(),
                        source: gone,
                    };
                }
                // The store's error may wrap a decoding one (a block cache's load): name the
                // segment either way.
                Error::format(format!("{context} from {path}"), e)
            }
            array_format::Error::Codec(_)
            | array_format::Error::BlockOutOfRange { .. }
            | array_format::Error::InvalidFooter(_)
            | array_format::Error::Serialization(_) => Error::CorruptSegment {
                path: path.to_string(),
                reason: format!("{context}: the data does not decode"),
                source: Some(e),
            },
            other => Error::format(format!("{context} from {path}"), other),
        }
    }
}

impl SegmentCache {
    /// Reads segment `key` in full (streamed, never held in memory) and checks its size and
    /// CRC-32 against `entry`, and its page checksums when it has them; a mismatch names the
    /// first damaged byte range.
    pub(crate) async fn verify(&self, key: &str, entry: &SegmentEntry) -> Result<()> {
        if let Some(range) = self.ranges.get(key) {
            return self.verify_range(key, range).await;
        }
        let path = object_path(&self.prefix, key);
        let sums = match entry.sums {
            Some(crc) => Some(self.sums(&path, crc, entry.size).await?),
            None => None,
        };
        let found = self.digest(&path).await?;
        check_digest(&path, entry, sums.as_ref(), found).map(|_| ())
    }

    /// Checks segment `key`, a range of a larger object with no checksums, the only way it
    /// can be: its footer and every block it lists are read afresh (not from this handle's
    /// cache) and decoded.
    async fn verify_range(&self, key: &str, range: &SegmentRange) -> Result<()> {
        let path = object_path(&self.prefix, key);
        let corrupt = |what: &str, e: array_format::Error| Error::CorruptSegment {
            path: path.to_string(),
            reason: format!("{what}: {e}"),
            source: Some(e),
        };
        let fresh = Arc::new(BlockCache::new(VERIFY_CACHE_BYTES, VERIFY_CACHE_BYTES));
        let file = self
            .open_view(key, range, fresh)
            .await
            .map_err(|e| corrupt("reading the footer", e))?;
        let mut ids: Vec<u32> = file
            .arrays()
            .iter()
            .flat_map(|a| a.chunk_entries().iter().map(|c| c.address.block_id.0))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let ids: Vec<array_format::address::BlockId> = ids
            .into_iter()
            .map(array_format::address::BlockId)
            .collect();
        file.prefetch_blocks(&ids, PREFETCH_CONCURRENCY)
            .await
            .map_err(|e| corrupt("decoding its blocks", e))?;
        Ok(())
    }

    /// Size, CRC-32 and page checksums of the segment at `path`, streamed (never held whole).
    async fn digest(&self, path: &Path) -> Result<(u64, u32, Sums)> {
        let mut stream = match self.store.get(path).await {
            Ok(r) => r.into_stream(),
            Err(e @ object_store::Error::NotFound { .. }) => {
                return Err(Error::SegmentGone {
                    path: path.to_string(),
                    source: e,
                });
            }
            Err(e) => return Err(Error::store(path, e)),
        };
        let mut pages = PageHasher::default();
        while let Some(chunk) = stream.try_next().await.map_err(|e| Error::store(path, e))? {
            pages.update(&chunk);
        }
        Ok(pages.finish())
    }
}

/// Compares what a full read of a segment found with its catalog row (and page checksums);
/// returns the page checksums taken from the read.
fn check_digest(
    path: &Path,
    entry: &SegmentEntry,
    sums: Option<&Sums>,
    (size, crc, pages): (u64, u32, Sums),
) -> Result<Sums> {
    if size == entry.size && crc == entry.crc32 {
        return Ok(pages);
    }
    let mut reason = format!(
        "{size} bytes with CRC-32 {crc:08x}, but the catalog records {} bytes with {:08x}",
        entry.size, entry.crc32
    );
    if let Some(d) = sums.and_then(|s| s.first_difference(&pages)) {
        reason = format!("{reason}; {d}");
    }
    Err(Error::CorruptSegment {
        path: path.to_string(),
        reason,
        source: None,
    })
}

/// Passes writes through to a store while computing the size, CRC-32 and page checksums of
/// the bytes, so a segment's checksums cost no read-back. Meant for writing one object.
pub(crate) struct HashingStore {
    inner: Arc<dyn ObjectStore>,
    digest: Arc<Mutex<PageHasher>>,
}

impl std::fmt::Debug for HashingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HashingStore({:?})", self.inner)
    }
}

impl std::fmt::Display for HashingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HashingStore({})", self.inner)
    }
}

impl HashingStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> Self {
        HashingStore {
            inner,
            digest: Arc::default(),
        }
    }

    /// Size, CRC-32 and page checksums of the bytes written so far.
    pub(crate) fn digest(&self) -> (u64, u32, Sums) {
        lock(&self.digest).finish()
    }
}

fn absorb(digest: &Mutex<PageHasher>, payload: &PutPayload) {
    let mut d = lock(digest);
    for chunk in payload {
        d.update(chunk);
    }
}

/// A multipart upload whose parts are hashed in the order they are handed over.
#[derive(Debug)]
struct HashingUpload {
    inner: Box<dyn MultipartUpload>,
    digest: Arc<Mutex<PageHasher>>,
}

#[async_trait::async_trait]
impl MultipartUpload for HashingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        absorb(&self.digest, &data);
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

crate::io::object_store_wrapper!(HashingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        absorb(&self.digest, &payload);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(HashingUpload {
            inner,
            digest: Arc::clone(&self.digest),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

});

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    /// Segments written before page checksums (a catalog row with a size and CRC-32 but no
    /// sidecar), damaged, then read the way the store reads them: every read is the original
    /// values or an error, never a panic or other values. Fed these bytes unchecked,
    /// array-format's decoder panics on some (an out-of-range chunk coordinate, a footer size
    /// past the file, a block past the file end).
    #[tokio::test]
    async fn damaged_segments_written_before_page_checksums_read_exactly_or_fail_never_panic() {
        let mut rng = crate::testing::Lcg(0x0dd_b1a5_e5ba_d5ee);
        let mut next = move |n: usize| rng.below(n);
        let (mut refused, mut read) = (0, 0);
        for case in 0..400 {
            let codec = [Codec::Zstd, Codec::Lz4, Codec::Uncompressed][case % 3];
            let mut w = new_writer(codec);
            let arrays = 1 + next(3);
            let mut schemas = Vec::new();
            for a in 0..arrays {
                let rank = 1 + next(3);
                let shape: Vec<usize> = (0..rank).map(|_| 1 + next(30)).collect();
                let chunks: Vec<usize> = shape.iter().map(|&n| 1 + next(n)).collect();
                let dims: Vec<String> = (0..rank).map(|d| format!("d{d}")).collect();
                let name = format!("a{a}");
                w.define_array::<f32>(
                    &name,
                    dims.clone(),
                    shape.clone(),
                    Some(chunks.clone()),
                    None,
                )
                .unwrap();
                schemas.push(crate::schema::ArraySchema {
                    dtype: array_format::DType::Float32,
                    dims,
                    shape: shape.clone(),
                    chunk_shape: chunks,
                    fill_value: None,
                });
                let n: usize = shape.iter().product();
                let data = ndarray::Array::from_shape_vec(
                    ndarray::IxDyn(&shape),
                    (0..n).map(|i| i as f32).collect(),
                )
                .unwrap();
                w.write_array(&name, vec![0; rank], data.view()).unwrap();
            }
            let mem = Arc::new(InMemory::new());
            let path = Path::from("v/seg.af");
            w.finish(mem.clone(), path.clone()).await.unwrap();
            let mut bytes = mem
                .get(&path)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec();
            let entry = SegmentEntry {
                variable: "v".into(),
                size: bytes.len() as u64,
                crc32: crc32fast::hash(&bytes),
                sums: None,
            };
            let len = bytes.len();
            match next(4) {
                0 => {
                    for _ in 0..=next(4) {
                        let bit = next(len * 8);
                        bytes[bit / 8] ^= 1 << (bit % 8);
                    }
                }
                1 => bytes.truncate(next(len)),
                2 => {
                    let at = next(len);
                    let end = (at + 1 + next(256)).min(len);
                    bytes[at..end].iter_mut().for_each(|b| *b = 0);
                }
                _ => {
                    let at = next(len);
                    let end = (at + 1 + next(64)).min(len);
                    for b in &mut bytes[at..end] {
                        *b = next(256) as u8;
                    }
                }
            }
            mem.put(&path, bytes.into()).await.unwrap();
            let outcome = tokio::spawn(async move {
                let cache = SegmentCache::new(mem, Path::default());
                let file = cache.open("v/seg.af", Some(&entry)).await?;
                for (a, schema) in schemas.iter().enumerate() {
                    let name = format!("a{a}");
                    cache.check_layout("v/seg.af", &file, &name, schema)?;
                    match file.read_array::<f32>(&name, vec![], vec![]).await {
                        Err(e) => return Err(cache.read_error("v/seg.af", name, e).await),
                        Ok(v) if v.iter().enumerate().any(|(i, &x)| x != i as f32) => {
                            panic!("{name} read back other values");
                        }
                        Ok(_) => {}
                    }
                }
                Ok::<_, Error>(())
            })
            .await;
            match outcome {
                Err(e) => panic!("case {case} ({codec:?}): the decoder panicked: {e}"),
                Ok(Err(_)) => refused += 1,
                Ok(Ok(())) => read += 1,
            }
        }
        assert!(
            refused > 0 && read + refused == 400,
            "{refused} refused, {read} read"
        );
    }
}
