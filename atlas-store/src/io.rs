//! Counting what a piece of work reads from the object store and decodes.
//!
//! A query engine wants to say how many bytes *this* scan read, while other scans share the same
//! store handle. [`count_reads`] runs a future with a [`ReadCounter`] in scope; every read the
//! store makes while polling that future adds to it. Reads served from the block cache add no
//! bytes: the byte and request counts measure storage traffic. The same scope counts, where
//! array-format does the work, the blocks fetched and decoded (cache misses) and the chunks
//! taken out of decoded blocks (cache hits included).

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use object_store::{GetOptions, GetResult, ObjectStore, path::Path};

/// Bytes and requests read from the object store, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct ReadCounter {
    inner: Arc<Counts>,
    work: array_format::ReadWork,
}

/// What a [`ReadCounter`] counted, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Bytes read from the object store.
    pub bytes: u64,
    /// Object-store read requests (`get`, range and multi-range reads).
    pub requests: u64,
    /// Blocks read from storage and decoded (block-cache misses).
    pub blocks_fetched: u64,
    /// Chunks whose encoded values were taken out of a decoded block, cached blocks included
    /// (chunks never written, read as fill values, are not counted).
    pub chunks_decoded: u64,
    /// Time spent waiting for storage to return fetched blocks, summed over loads that ran at
    /// the same time.
    pub fetch_time: std::time::Duration,
    /// Time spent decompressing fetched blocks, summed over the threads that did it.
    pub decode_time: std::time::Duration,
}

impl ReadCounts {
    /// What was counted after `earlier`, a snapshot of the same counter.
    pub fn since(&self, earlier: &ReadCounts) -> ReadCounts {
        ReadCounts {
            bytes: self.bytes.saturating_sub(earlier.bytes),
            requests: self.requests.saturating_sub(earlier.requests),
            blocks_fetched: self.blocks_fetched.saturating_sub(earlier.blocks_fetched),
            chunks_decoded: self.chunks_decoded.saturating_sub(earlier.chunks_decoded),
            fetch_time: self.fetch_time.saturating_sub(earlier.fetch_time),
            decode_time: self.decode_time.saturating_sub(earlier.decode_time),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    bytes: AtomicU64,
    requests: AtomicU64,
}

impl ReadCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// Read requests (`get`, range and multi-range reads) so far.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Everything counted so far.
    pub fn counts(&self) -> ReadCounts {
        ReadCounts {
            bytes: self.bytes(),
            requests: self.requests(),
            blocks_fetched: self.work.blocks_fetched(),
            chunks_decoded: self.work.chunks_decoded(),
            fetch_time: self.work.fetch_time(),
            decode_time: self.work.decode_time(),
        }
    }

    fn add(&self, bytes: u64) {
        self.inner.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// `impl ObjectStore` for a wrapper holding `inner: Arc<dyn ObjectStore>`: the methods given
/// (how it reads or writes) plus listing, deleting and copying passed straight to `inner`.
/// Shared by [`CountingStore`], `HashingStore` (`segment.rs`) and `VerifiedStore`
/// (`sums.rs`). The impl is built here, not in the caller, so `async_trait` sees the forwarded
/// async methods.
macro_rules! object_store_wrapper {
    ($ty:ty { $($methods:tt)* }) => {
        #[async_trait::async_trait]
        impl object_store::ObjectStore for $ty {
            $($methods)*

            fn delete_stream(
                &self,
                locations: futures::stream::BoxStream<
                    'static,
                    object_store::Result<object_store::path::Path>,
                >,
            ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>
            {
                self.inner.delete_stream(locations)
            }

            fn list(
                &self,
                prefix: Option<&object_store::path::Path>,
            ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
            {
                self.inner.list(prefix)
            }

            async fn list_with_delimiter(
                &self,
                prefix: Option<&object_store::path::Path>,
            ) -> object_store::Result<object_store::ListResult> {
                self.inner.list_with_delimiter(prefix).await
            }

            async fn copy_opts(
                &self,
                from: &object_store::path::Path,
                to: &object_store::path::Path,
                options: object_store::CopyOptions,
            ) -> object_store::Result<()> {
                self.inner.copy_opts(from, to, options).await
            }
        }
    };
}
pub(crate) use object_store_wrapper;

/// [`object_store_wrapper`] for a wrapper that only changes reads: writes pass to `inner` too.
macro_rules! object_store_reader {
    ($ty:ty { $($methods:tt)* }) => {
        $crate::io::object_store_wrapper!($ty {
            async fn put_opts(
                &self,
                location: &object_store::path::Path,
                payload: object_store::PutPayload,
                opts: object_store::PutOptions,
            ) -> object_store::Result<object_store::PutResult> {
                self.inner.put_opts(location, payload, opts).await
            }

            async fn put_multipart_opts(
                &self,
                location: &object_store::path::Path,
                opts: object_store::PutMultipartOptions,
            ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
                self.inner.put_multipart_opts(location, opts).await
            }

            $($methods)*
        });
    };
}
pub(crate) use object_store_reader;

tokio::task_local! {
    static COUNTER: ReadCounter;
}

/// Runs `fut`, adding to `counter` every object-store read the store makes, and every block it
/// fetches and chunk it decodes, while polling it.
pub async fn count_reads<F: Future>(counter: &ReadCounter, fut: F) -> F::Output {
    let work = array_format::count_work(&counter.work, fut);
    COUNTER.scope(counter.clone(), work).await
}

fn record(bytes: u64) {
    let _ = COUNTER.try_with(|c| c.add(bytes));
}

/// Wraps the store every handle reads through, attributing reads to the counter in scope.
#[derive(Debug)]
pub(crate) struct CountingStore {
    inner: Arc<dyn ObjectStore>,
}

impl CountingStore {
    pub(crate) fn wrap(inner: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        Arc::new(CountingStore { inner })
    }
}

impl std::fmt::Display for CountingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.inner, f)
    }
}

object_store_reader!(CountingStore {
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let head = options.head;
        let result = self.inner.get_opts(location, options).await?;
        record(if head {
            0
        } else {
            result.range.end - result.range.start
        });
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let out = self.inner.get_ranges(location, ranges).await?;
        record(out.iter().map(|b| b.len() as u64).sum());
        Ok(out)
    }

});
