//! Stores behind a slow network: an object store that waits on every request, as S3 or a
//! far-away HTTP server does, counting requests and how many run at once.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use async_trait::async_trait;
use atlas_datafusion::atlas_store::object_store::memory::InMemory;
use atlas_datafusion::atlas_store::object_store::path::Path;
use atlas_datafusion::atlas_store::object_store::{
    self, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use atlas_datafusion::atlas_store::{Atlas, StoreConfig};
use atlas_datafusion::register_atlas;
use bytes::Bytes;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use futures::stream::BoxStream;
use ndarray::{Array, IxDyn};

use crate::support::{register, run, sensors};

/// Waits `delay` before every request (reads, listings), counting them and the most in flight.
#[derive(Debug)]
struct Slow {
    inner: Arc<dyn ObjectStore>,
    delay: Duration,
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl Slow {
    fn new(inner: Arc<dyn ObjectStore>, delay: Duration) -> Arc<Slow> {
        Arc::new(Slow {
            inner,
            delay,
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        })
    }

    /// Requests since the last call, and the most that ran at once.
    fn take(&self) -> (u64, u64) {
        (
            self.requests.swap(0, SeqCst),
            self.max_in_flight.swap(0, SeqCst),
        )
    }

    async fn wait(&self) {
        self.requests.fetch_add(1, SeqCst);
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.max_in_flight.fetch_max(now, SeqCst);
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, SeqCst);
    }
}

impl std::fmt::Display for Slow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slow({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Slow {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.wait().await;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        // One request for all the ranges, as a coalescing client makes.
        self.wait().await;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.requests.fetch_add(1, SeqCst);
        let delay = self.delay;
        let inner = self.inner.list(prefix);
        futures::stream::once(async move {
            tokio::time::sleep(delay).await;
            inner
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.wait().await;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

const LATENCY: Duration = Duration::from_millis(20);

/// A session reading `slow://bucket` through `slow`.
fn slow_session(slow: &Arc<Slow>) -> SessionContext {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
    let url = url::Url::parse("slow://bucket").expect("url");
    ctx.register_object_store(&url, Arc::clone(slow) as Arc<dyn ObjectStore>);
    register_atlas(&ctx);
    ctx
}

/// Opening and asking for one dataset costs a fixed number of requests, not one per dataset.
/// Open: list `_checkpoint/`, read the checkpoint, list the log, read its entry while listing
/// `_checkpoint/` again (5). Query: is there a newer commit (a `head` of the next entry beside
/// a listing), the segment's size beside its page checksums, and the whole segment (trailer,
/// footer and blocks in one read, as it is smaller than one I/O slab): 5, in 3 round trips.
#[tokio::test]
async fn a_one_dataset_query_after_open_makes_the_same_few_requests_whatever_the_store_size() {
    let mut seen = Vec::new();
    for n in [20, 400] {
        let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        sensors(Arc::clone(&mem), "st", n, 96, 24).await;
        let slow = Slow::new(mem, LATENCY);
        let ctx = slow_session(&slow);
        register(&ctx, "slow://bucket/st").await;
        let (open, _) = slow.take();
        let r = run(
            &ctx,
            "SELECT avg(temperature) FROM s.temperature WHERE dataset = 's0003'",
        )
        .await;
        assert_eq!(r.rows, vec!["3047.5".to_string()]);
        let (query, _) = slow.take();
        // The scan's own metric, counted by the store under the scan: everything but the
        // newer-commit check, which planning makes.
        assert_eq!(r.metric("requests") as u64, query - 2, "{:?}", r.metrics);
        seen.push((n, open, query));
    }
    let (_, open, query) = seen[0];
    assert!(seen.iter().all(|s| (s.1, s.2) == (open, query)), "{seen:?}");
    assert!(open <= 5, "open made {open} requests");
    // A segment no larger than one I/O slab is read whole with its footer: its block needs no
    // request of its own.
    assert!(query <= 5, "the query made {query} requests");
}

/// `n` datasets with `v(time)` of `len` f64 values that do not compress (so the segment spans
/// many I/O slabs), in chunks of `chunk`.
async fn noisy(store: Arc<dyn ObjectStore>, n: usize, len: usize, chunk: usize) {
    let mut atlas = Atlas::create(store, Path::from("noisy"), StoreConfig::default())
        .await
        .expect("create");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..n {
        let ds = atlas.create_dataset(&format!("d{i:03}")).await.expect("ds");
        ds.define_array::<f64>("v", vec!["time".into()], vec![len], Some(vec![chunk]), None)
            .await
            .expect("define");
        let values: Vec<f64> = (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (x >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect();
        let a = Array::from_shape_vec(IxDyn(&[len]), values).expect("shape");
        ds.write_array("v", vec![0], a.view()).await.expect("write");
    }
    atlas.flush().await.expect("flush");
}

/// A full scan does not wait for one request before sending the next: several are in flight
/// at once, so a 20 ms round trip is paid a few times, not once per block.
#[tokio::test]
async fn a_full_scan_keeps_several_requests_in_flight() {
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    noisy(Arc::clone(&mem), 16, 1 << 17, 1 << 14).await;
    let slow = Slow::new(mem, LATENCY);
    let ctx = slow_session(&slow);
    register(&ctx, "slow://bucket/noisy").await;
    slow.take();
    // An average: counts, minima and maxima would come from the statistics, with no scan.
    let r = run(&ctx, "SELECT avg(v) BETWEEN 0.49 AND 0.51 FROM s.v").await;
    assert_eq!(r.rows, vec!["true".to_string()]);
    let (requests, in_flight) = slow.take();
    assert!(requests >= 8, "{requests} requests for 16 MiB");
    assert!(
        in_flight >= 4,
        "at most {in_flight} of {requests} requests were in flight at once"
    );
}
