// atlas-sql: this module is an addition (see VENDORED.md).
//! Counting, per task, the work the read path does: blocks fetched from storage and decoded,
//! chunks taken out of decoded blocks, and the time spent waiting for storage and decoding.
//!
//! A query engine wants to report what *one* scan cost while other scans share the same files
//! and [`BlockCache`](crate::BlockCache). [`count_work`] runs a future with a [`ReadWork`] in
//! scope; every block load and chunk read made while polling it adds to that counter, where the
//! work happens. A block another task is already loading is counted once, by the task that
//! loads it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Blocks fetched and chunks decoded, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct ReadWork {
    inner: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    blocks_fetched: AtomicU64,
    chunks_decoded: AtomicU64,
    fetch_nanos: AtomicU64,
    decode_nanos: AtomicU64,
}

impl ReadWork {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Blocks read from storage and decompressed (block-cache misses) so far.
    pub fn blocks_fetched(&self) -> u64 {
        self.inner.blocks_fetched.load(Ordering::Relaxed)
    }

    /// Chunks whose bytes were taken out of a decoded block so far (cached blocks included;
    /// chunks never written, served as fill values, are not counted).
    pub fn chunks_decoded(&self) -> u64 {
        self.inner.chunks_decoded.load(Ordering::Relaxed)
    }

    /// Time spent waiting for the storage reads of fetched blocks, summed over loads that ran
    /// at the same time.
    pub fn fetch_time(&self) -> Duration {
        Duration::from_nanos(self.inner.fetch_nanos.load(Ordering::Relaxed))
    }

    /// Time spent decompressing fetched blocks, summed over the threads that did it.
    pub fn decode_time(&self) -> Duration {
        Duration::from_nanos(self.inner.decode_nanos.load(Ordering::Relaxed))
    }
}

tokio::task_local! {
    static WORK: ReadWork;
}

/// Runs `fut`, adding to `work` every block fetched and chunk decoded while polling it.
pub async fn count_work<F: Future>(work: &ReadWork, fut: F) -> F::Output {
    WORK.scope(work.clone(), fut).await
}

/// One block fetched, after `fetch` waiting for storage and `decode` decompressing it.
pub(crate) fn block_fetched(fetch: Duration, decode: Duration) {
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let _ = WORK.try_with(|w| {
        w.inner.blocks_fetched.fetch_add(1, Ordering::Relaxed);
        w.inner.fetch_nanos.fetch_add(nanos(fetch), Ordering::Relaxed);
        w.inner.decode_nanos.fetch_add(nanos(decode), Ordering::Relaxed);
    });
}

pub(crate) fn chunk_decoded() {
    let _ = WORK.try_with(|w| w.inner.chunks_decoded.fetch_add(1, Ordering::Relaxed));
}
