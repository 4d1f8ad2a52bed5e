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
use crate::sums::{PageHasher, Sums, VerifiedStore};

/// Decoded-block budget shared by every segment a handle opens.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// Raw I/O budget shared by every segment a handle opens.
const IO_CACHE_BYTES: u64 = 64 * 1024 * 1024;

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
    blocks: Arc<BlockCache>,
}

/// One opened segment and the store its reads are checked through.
struct Opened {
    file: Arc<ArrayFile>,
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

impl SegmentCache {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        SegmentCache {
            store,
            prefix,
            files: Mutex::new(HashMap::new()),
            blocks: Arc::new(BlockCache::new(CACHE_BYTES, IO_CACHE_BYTES)),
        }
    }

    /// Opens segment `key`, checking its size against the catalog's record. One `head` and one
    /// footer read per segment per handle; later calls hit the cache.
    pub(crate) async fn open(
        &self,
        key: &str,
        entry: Option<&SegmentEntry>,
    ) -> Result<Arc<ArrayFile>> {
        if let Some(f) = lock(&self.files).get(key) {
            return Ok(Arc::clone(&f.file));
        }
        let path = object_path(&self.prefix, key);
        let sums = match entry.and_then(|e| Some((e.sums?, e.size))) {
            Some((crc, size)) => Some(self.sums(&path, crc, size).await?),
            None => None,
        };
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
        if let Some(entry) = entry
            && meta.size != entry.size
        {
            return Err(Error::CorruptSegment {
                path: path.to_string(),
                reason: format!(
                    "{} bytes on disk, but the catalog records {} (truncated or overwritten)",
                    meta.size, entry.size
                ),
                source: None,
            });
        }
        let config = ReadConfig {
            cache: Some(Arc::clone(&self.blocks)),
            ..ReadConfig::default()
        };
        let verified =
            sums.map(|s| Arc::new(VerifiedStore::new(Arc::clone(&self.store), path.clone(), s)));
        let through = match &verified {
            Some(v) => Arc::clone(v) as Arc<dyn ObjectStore>,
            None => Arc::clone(&self.store),
        };
        let file = ArrayFile::open(through, path.clone(), config)
            .await
            .map_err(|e| Error::CorruptSegment {
                path: path.to_string(),
                reason: match verified.as_ref().and_then(|v| v.damage()) {
                    Some(d) => format!("reading the footer: {d}"),
                    None => "the footer does not decode".into(),
                },
                source: Some(e),
            })?;
        let file = Arc::new(file);
        let opened = Opened {
            file: Arc::clone(&file),
            verified,
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
            .and_then(|f| f.verified.as_ref()?.damage());
        if let Some(d) = damage {
            return Error::CorruptSegment {
                path: path.to_string(),
                reason: format!("{context}: {d}"),
                source: Some(e),
            };
        }
        match e {
            array_format::Error::Storage(_) | array_format::Error::Io(_) => {
                if let Err(gone @ object_store::Error::NotFound { .. }) =
                    self.store.head(&path).await
                {
                    lock(&self.files).remove(key);
                    return Error::SegmentGone {
                        path: path.to_string(),
                        source: gone,
                    };
                }
                Error::format(context, e)
            }
            array_format::Error::Codec(_)
            | array_format::Error::BlockOutOfRange { .. }
            | array_format::Error::InvalidFooter(_)
            | array_format::Error::Serialization(_) => Error::CorruptSegment {
                path: path.to_string(),
                reason: format!("{context}: the data does not decode"),
                source: Some(e),
            },
            other => Error::format(context, other),
        }
    }
}

impl SegmentCache {
    /// Reads segment `key` in full (streamed, never held in memory) and checks its size and
    /// CRC-32 against `entry`, and its page checksums when it has them; a mismatch names the
    /// first damaged byte range.
    pub(crate) async fn verify(&self, key: &str, entry: &SegmentEntry) -> Result<()> {
        let path = object_path(&self.prefix, key);
        let sums = match entry.sums {
            Some(crc) => Some(self.sums(&path, crc, entry.size).await?),
            None => None,
        };
        let mut stream = match self.store.get(&path).await {
            Ok(r) => r.into_stream(),
            Err(e @ object_store::Error::NotFound { .. }) => {
                return Err(Error::SegmentGone {
                    path: path.to_string(),
                    source: e,
                });
            }
            Err(e) => return Err(Error::store(&path, e)),
        };
        let mut hasher = crc32fast::Hasher::new();
        let mut pages = PageHasher::default();
        let mut size = 0u64;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| Error::store(&path, e))?
        {
            size += chunk.len() as u64;
            hasher.update(&chunk);
            pages.update(&chunk);
        }
        let crc = hasher.finalize();
        if size == entry.size && crc == entry.crc32 {
            return Ok(());
        }
        let mut reason = format!(
            "{size} bytes with CRC-32 {crc:08x}, but the catalog records {} bytes with {:08x}",
            entry.size, entry.crc32
        );
        if let Some(d) = sums.and_then(|s| s.first_difference(&pages.finish())) {
            reason = format!("{reason}; {d}");
        }
        Err(Error::CorruptSegment {
            path: path.to_string(),
            reason,
            source: None,
        })
    }
}

/// Size, CRC-32 and page checksums of everything written through a [`HashingStore`].
#[derive(Default)]
struct Digest {
    size: u64,
    hasher: crc32fast::Hasher,
    pages: PageHasher,
}

/// Passes writes through to a store while computing the size and CRC-32 of the bytes, so a
/// segment's checksum costs no read-back. Meant for writing one object.
pub(crate) struct HashingStore {
    inner: Arc<dyn ObjectStore>,
    digest: Arc<Mutex<Digest>>,
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digest")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
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
        let d = lock(&self.digest);
        (d.size, d.hasher.clone().finalize(), d.pages.finish())
    }
}

fn absorb(digest: &Mutex<Digest>, payload: &PutPayload) {
    let mut d = lock(digest);
    for chunk in payload {
        d.size += chunk.len() as u64;
        d.hasher.update(chunk);
        d.pages.update(chunk);
    }
}

/// A multipart upload whose parts are hashed in the order they are handed over.
#[derive(Debug)]
struct HashingUpload {
    inner: Box<dyn MultipartUpload>,
    digest: Arc<Mutex<Digest>>,
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
