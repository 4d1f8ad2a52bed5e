//! Page checksums: every byte read from a segment is checked before array-format decodes it.
//!
//! array-format keeps no checksums, so a flipped bit in an uncompressed block (or one a codec
//! happens to accept) would read back as a wrong number. When a segment is written, the CRC-32
//! of each [`PAGE`] bytes is taken from the bytes as they stream out (no read-back) and stored
//! beside it in `<segment>.sums`; the catalog records the checksum that sidecar ends with, so
//! neither can be swapped or lost unnoticed. Reads go through a [`VerifiedStore`], which widens each range
//! to whole pages, checks them, and hands array-format only the bytes it asked for. The
//! footer is read the same way, so it is covered too.
//!
//! Sidecar layout (little-endian): `b"ATLSUMS1"`, page size `u32`, segment size `u64`, page
//! count `u32`, one CRC-32 `u32` per page, then the CRC-32 of everything before it.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use object_store::{GetOptions, GetRange, GetResult, GetResultPayload, ObjectStore, path::Path};

use crate::lock;

/// Bytes covered by one checksum. Small enough that widening a read to whole pages costs
/// little (array-format reads 1 MiB slabs, a multiple of it), large enough that the sidecar
/// is 1/8192 of the segment.
pub(crate) const PAGE: u32 = 32 * 1024;

const MAGIC: &[u8; 8] = b"ATLSUMS1";
const HEADER: usize = 8 + 4 + 8 + 4;

/// Object path of the sidecar of the segment at `segment`.
pub(crate) fn sidecar_path(segment: &Path) -> Path {
    // The segment's path is already encoded; parsing keeps it as it is.
    let raw = format!("{segment}.sums");
    Path::parse(&raw).unwrap_or_else(|_| Path::from(raw))
}

/// The segment a sidecar path belongs to, when `path` is one.
pub(crate) fn segment_of(path: &Path) -> Option<Path> {
    path.as_ref()
        .strip_suffix(".sums")
        .filter(|s| s.ends_with(".af"))
        .and_then(|s| Path::parse(s).ok())
}

/// CRC-32 of each page of a byte stream, fed in any pieces, and of the whole stream (combined
/// from the pages', so every byte is hashed once).
#[derive(Default)]
pub(crate) struct PageHasher {
    page: crc32fast::Hasher,
    whole: crc32fast::Hasher,
    fill: usize,
    size: u64,
    crcs: Vec<u32>,
}

impl std::fmt::Debug for PageHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageHasher")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl PageHasher {
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;
        while !data.is_empty() {
            let take = (PAGE as usize - self.fill).min(data.len());
            self.page.update(&data[..take]);
            self.fill += take;
            if self.fill == PAGE as usize {
                let page = std::mem::take(&mut self.page);
                self.whole.combine(&page);
                self.crcs.push(page.finalize());
                self.fill = 0;
            }
            data = &data[take..];
        }
    }

    /// Size, CRC-32 and page checksums of everything fed so far.
    pub(crate) fn finish(&self) -> (u64, u32, Sums) {
        let mut crcs = self.crcs.clone();
        let mut whole = self.whole.clone();
        if self.fill > 0 {
            whole.combine(&self.page);
            crcs.push(self.page.clone().finalize());
        }
        let sums = Sums {
            page: PAGE,
            size: self.size,
            crcs,
        };
        (self.size, whole.finalize(), sums)
    }
}

/// The page checksums of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sums {
    page: u32,
    size: u64,
    crcs: Vec<u32>,
}

impl Sums {
    /// Size of the segment the checksums cover.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The sidecar's bytes and their checksum (the catalog records it: the CRC of the whole
    /// sidecar, its own CRC included, is the same constant for every sidecar).
    pub(crate) fn encode(&self) -> (Vec<u8>, u32) {
        let mut out = Vec::with_capacity(HEADER + 4 * self.crcs.len() + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.page.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&(self.crcs.len() as u32).to_le_bytes());
        for c in &self.crcs {
            out.extend_from_slice(&c.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        (out, crc)
    }

    /// Reads a sidecar, checking its own checksum and that its counts agree; returns it with
    /// that checksum.
    pub(crate) fn decode(bytes: &[u8]) -> Result<(Sums, u32), String> {
        if bytes.len() < HEADER + 4 || &bytes[..8] != MAGIC {
            return Err("not a page-checksum file".into());
        }
        let body = &bytes[..bytes.len() - 4];
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let crc = word(bytes.len() - 4);
        if crc32fast::hash(body) != crc {
            return Err("its own checksum does not match".into());
        }
        let page = word(8);
        let size = u64::from(word(12)) | (u64::from(word(16)) << 32);
        let count = word(20) as usize;
        if page == 0 || body.len() != HEADER + 4 * count {
            return Err(format!("{} bytes for {count} pages", bytes.len()));
        }
        if size.div_ceil(u64::from(page)) != count as u64 {
            return Err(format!(
                "{count} pages of {page} bytes cannot cover {size} bytes"
            ));
        }
        let crcs = (0..count).map(|i| word(HEADER + 4 * i)).collect();
        Ok((Sums { page, size, crcs }, crc))
    }

    /// The first page where `found` (taken from the bytes now on disk) differs.
    pub(crate) fn first_difference(&self, found: &Sums) -> Option<Damage> {
        let page = u64::from(self.page);
        let n = (0..self.crcs.len()).find(|&i| found.crcs.get(i) != Some(&self.crcs[i]))?;
        let at = n as u64 * page;
        Some(Damage {
            page: n as u64,
            pages: self.crcs.len() as u64,
            bytes: at..(at + page).min(self.size),
        })
    }

    /// `range` widened to whole pages (clipped to the segment).
    fn widen(&self, range: &Range<u64>) -> Range<u64> {
        let page = u64::from(self.page);
        let start = range.start / page * page;
        let end = range.end.div_ceil(page).saturating_mul(page).min(self.size);
        start..end.max(start)
    }

    /// The last page of `bytes` (read from page-aligned offset `start`) that fails its check.
    fn last_failure(&self, start: u64, bytes: &[u8]) -> Option<Damage> {
        let page = u64::from(self.page);
        let first = start / page;
        let pieces = bytes.chunks(self.page as usize).enumerate().rev();
        pieces.into_iter().find_map(|(i, piece)| {
            let n = first + i as u64;
            (self.crcs.get(n as usize).copied() != Some(crc32fast::hash(piece))).then(|| {
                let at = n * page;
                Damage {
                    page: n,
                    pages: self.crcs.len() as u64,
                    bytes: at..at + piece.len() as u64,
                }
            })
        })
    }

    /// Checks `bytes`, read from page-aligned offset `start`; the first page that fails.
    fn check(&self, start: u64, bytes: &[u8]) -> Result<(), Damage> {
        let page = u64::from(self.page);
        let first = start / page;
        for (i, piece) in bytes.chunks(self.page as usize).enumerate() {
            let n = first + i as u64;
            let expected = self.crcs.get(n as usize).copied();
            if expected != Some(crc32fast::hash(piece)) {
                let at = n * page;
                return Err(Damage {
                    page: n,
                    pages: self.crcs.len() as u64,
                    bytes: at..at + piece.len() as u64,
                });
            }
        }
        Ok(())
    }
}

/// A page whose bytes fail their checksum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bytes {}..{} (page {} of {}) fail their checksum", bytes.start, bytes.end, page + 1, pages)]
pub(crate) struct Damage {
    page: u64,
    pages: u64,
    bytes: Range<u64>,
}

/// Reads one segment through its page checksums; everything else passes to `inner`.
pub(crate) struct VerifiedStore {
    inner: Arc<dyn ObjectStore>,
    path: Path,
    sums: Sums,
    /// The segment's metadata from the `head` that opened it: array-format's own `head` is
    /// answered from it, without a request.
    meta: object_store::ObjectMeta,
    /// The first damage found, for the error the reader reports.
    damage: Mutex<Option<Damage>>,
    /// Checked bytes from an offset to the end of the segment: the first read that reaches the
    /// end (array-format's trailer) takes up to [`TAIL_HINT`] bytes, so the footer read after
    /// it needs no request, as parquet's footer size hint does. Dropped once the segment is
    /// open ([`VerifiedStore::forget_tail`]).
    tail: Mutex<Tail>,
}

#[derive(Debug, Default)]
enum Tail {
    #[default]
    Untried,
    Held(u64, Bytes),
    Done,
}

/// How much of a segment's end its first read of the trailer takes.
const TAIL_HINT: u64 = 256 * 1024;

impl std::fmt::Debug for VerifiedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifiedStore({})", self.path)
    }
}

impl std::fmt::Display for VerifiedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifiedStore({})", self.path)
    }
}

impl VerifiedStore {
    pub(crate) fn new(
        inner: Arc<dyn ObjectStore>,
        path: Path,
        sums: Sums,
        meta: object_store::ObjectMeta,
    ) -> Self {
        VerifiedStore {
            inner,
            path,
            sums,
            meta,
            damage: Mutex::new(None),
            tail: Mutex::new(Tail::Untried),
        }
    }

    /// The whole segment, checked, when the first read of its end took all of it.
    pub(crate) fn held_whole(&self) -> Option<Bytes> {
        match &*lock(&self.tail) {
            Tail::Held(0, bytes) if bytes.len() as u64 == self.sums.size => Some(bytes.clone()),
            _ => None,
        }
    }

    /// Drops the bytes kept from the first read of the segment's end.
    pub(crate) fn forget_tail(&self) {
        *lock(&self.tail) = Tail::Done;
    }

    /// The first damaged page a read of this segment met, if any.
    pub(crate) fn damage(&self) -> Option<Damage> {
        lock(&self.damage).clone()
    }

    async fn verified_get(&self, options: GetOptions) -> object_store::Result<GetResult> {
        let size = self.sums.size;
        let wanted = match &options.range {
            None => 0..size,
            Some(GetRange::Bounded(r)) => r.clone(),
            Some(GetRange::Offset(o)) => *o..size,
            Some(GetRange::Suffix(n)) => size.saturating_sub(*n)..size,
        };
        if wanted.start > wanted.end || wanted.end > size {
            // Out of range for the size the catalog recorded: let the store say so.
            return self.inner.get_opts(&self.path, options).await;
        }
        let from_tail = match &*lock(&self.tail) {
            Tail::Held(start, bytes) if wanted.start >= *start => {
                Some(bytes.slice((wanted.start - start) as usize..(wanted.end - start) as usize))
            }
            _ => None,
        };
        if let Some(piece) = from_tail {
            return Ok(self.result(piece, wanted));
        }
        let speculate = wanted.end == size && matches!(*lock(&self.tail), Tail::Untried);
        if speculate {
            return self.tail_get(wanted, options).await;
        }
        let widened = self.sums.widen(&wanted);
        let opts = GetOptions {
            range: Some(GetRange::Bounded(widened.clone())),
            ..options
        };
        let result = self.inner.get_opts(&self.path, opts).await?;
        let (meta, attributes) = (result.meta.clone(), result.attributes.clone());
        let bytes = result.bytes().await?;
        let damage = if bytes.len() as u64 != widened.end - widened.start {
            Some(Damage {
                page: widened.start / u64::from(self.sums.page),
                pages: self.sums.crcs.len() as u64,
                bytes: widened.clone(),
            })
        } else {
            self.sums.check(widened.start, &bytes).err()
        };
        if let Some(d) = damage {
            lock(&self.damage).get_or_insert_with(|| d.clone());
            return Err(object_store::Error::Generic {
                store: "atlas",
                source: Box::new(d),
            });
        }
        let from = (wanted.start - widened.start) as usize;
        let to = (wanted.end - widened.start) as usize;
        let piece: Bytes = bytes.slice(from..to);
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async { Ok(piece) }).boxed()),
            meta,
            range: wanted,
            attributes,
        })
    }

    fn result(&self, piece: Bytes, wanted: Range<u64>) -> GetResult {
        GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async { Ok(piece) }).boxed()),
            meta: self.meta.clone(),
            range: wanted,
            attributes: Default::default(),
        }
    }

    /// Reads `wanted` (which ends at the segment's end) with up to [`TAIL_HINT`] bytes before
    /// it, keeping the checked bytes after the last damaged page for the next reads. Damage
    /// before `wanted` is left to the reads that need those pages.
    async fn tail_get(
        &self,
        wanted: Range<u64>,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let size = self.sums.size;
        // A segment no larger than one I/O slab is read whole: its first block read would load
        // that slab anyway ([`VerifiedStore::held_whole`] seeds it).
        let from = if size <= array_format::BlockCache::IO_SLAB_SIZE {
            0
        } else {
            size.saturating_sub(TAIL_HINT)
        };
        let widened = self.sums.widen(&(from.min(wanted.start)..size));
        let opts = GetOptions {
            range: Some(GetRange::Bounded(widened.clone())),
            ..options
        };
        let bytes = self.inner.get_opts(&self.path, opts).await?.bytes().await?;
        let fail = |d: Damage| {
            lock(&self.damage).get_or_insert_with(|| d.clone());
            object_store::Error::Generic {
                store: "atlas",
                source: Box::new(d),
            }
        };
        if bytes.len() as u64 != widened.end - widened.start {
            *lock(&self.tail) = Tail::Done;
            return Err(fail(Damage {
                page: widened.start / u64::from(self.sums.page),
                pages: self.sums.crcs.len() as u64,
                bytes: widened,
            }));
        }
        let good_from = match self.sums.last_failure(widened.start, &bytes) {
            Some(d) if d.bytes.end > wanted.start => {
                *lock(&self.tail) = Tail::Done;
                return Err(fail(d));
            }
            Some(d) => d.bytes.end,
            None => widened.start,
        };
        let held = bytes.slice((good_from - widened.start) as usize..);
        let piece =
            held.slice((wanted.start - good_from) as usize..(wanted.end - good_from) as usize);
        let mut tail = lock(&self.tail);
        if matches!(*tail, Tail::Untried) {
            *tail = Tail::Held(good_from, held);
        }
        Ok(self.result(piece, wanted))
    }
}

crate::io::object_store_reader!(VerifiedStore {
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if *location != self.path {
            return self.inner.get_opts(location, options).await;
        }
        if options.head {
            return Ok(GetResult {
                payload: GetResultPayload::Stream(futures::stream::empty().boxed()),
                meta: self.meta.clone(),
                range: 0..0,
                attributes: Default::default(),
            });
        }
        self.verified_get(options).await
    }
});

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    fn sums_of(data: &[u8], pieces: usize) -> Sums {
        let mut h = PageHasher::default();
        for piece in data.chunks(pieces.max(1)) {
            h.update(piece);
        }
        let (size, crc, sums) = h.finish();
        assert_eq!((size, crc), (data.len() as u64, crc32fast::hash(data)));
        sums
    }

    #[test]
    fn page_sums_do_not_depend_on_how_the_bytes_were_fed() {
        let data: Vec<u8> = (0..3 * PAGE as usize + 100)
            .map(|i| (i * 7) as u8)
            .collect();
        let whole = sums_of(&data, data.len());
        assert_eq!(whole.crcs.len(), 4);
        for pieces in [1, 1000, PAGE as usize, PAGE as usize + 1] {
            assert_eq!(sums_of(&data, pieces), whole, "fed in pieces of {pieces}");
        }
        let (bytes, crc) = whole.encode();
        assert_eq!(Sums::decode(&bytes), Ok((whole, crc)));
    }

    #[test]
    fn a_damaged_sidecar_does_not_decode() {
        let data = vec![1u8; 2 * PAGE as usize];
        let (bytes, _) = sums_of(&data, 100).encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(Sums::decode(&bad).is_err(), "flip at {i}");
        }
        for len in 0..bytes.len() {
            assert!(Sums::decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
    }

    #[tokio::test]
    async fn every_range_read_is_checked_and_a_flipped_byte_is_named() {
        let data: Vec<u8> = (0..5 * PAGE as usize / 2)
            .map(|i| (i % 251) as u8)
            .collect();
        let sums = sums_of(&data, 4096);
        let inner = Arc::new(InMemory::new());
        let path = Path::from("v/seg.af");
        inner.put(&path, data.clone().into()).await.unwrap();
        let meta = inner.head(&path).await.unwrap();
        let verified = |inner: Arc<InMemory>| {
            VerifiedStore::new(inner, path.clone(), sums.clone(), meta.clone())
        };
        let store = verified(Arc::clone(&inner));
        for r in [0..1, 5..PAGE as u64 + 3, 70_000..81_920, 81_900..81_920] {
            let got = store.get_range(&path, r.clone()).await.unwrap();
            assert_eq!(&got[..], &data[r.start as usize..r.end as usize], "{r:?}");
        }
        assert_eq!(store.head(&path).await.unwrap().size, data.len() as u64);

        let mut bad = data.clone();
        bad[PAGE as usize + 10] ^= 1;
        inner.put(&path, bad.into()).await.unwrap();
        let store = verified(inner);
        // A read of page 1 alone is fine; one that touches page 2 is refused.
        assert!(store.get_range(&path, 0..100).await.is_ok());
        let err = store.get_range(&path, 40_000..40_001).await.unwrap_err();
        assert!(err.to_string().contains("page 2 of 3"), "{err}");
        assert_eq!(
            store.damage().map(|d| d.bytes),
            Some(u64::from(PAGE)..2 * u64::from(PAGE))
        );
    }
}
