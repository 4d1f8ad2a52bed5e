//! Test doubles: an `ObjectStore` wrapper that counts operations, injects a fault at the n-th
//! one, delays reads and tracks how many run at once.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use async_trait::async_trait;
use atlas_store::ndarray::{Array, IxDyn};
use atlas_store::object_store::path::Path;
use atlas_store::object_store::{
    self, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use atlas_store::{Atlas, Attr, DatasetView};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

const NEVER: u64 = u64::MAX;

/// Wraps a store; every call counts as one operation.
#[derive(Debug)]
pub struct TestStore {
    inner: Arc<dyn ObjectStore>,
    ops: AtomicU64,
    fail_at: AtomicU64,
    /// Perform the failing write, then report an error (a crash after the effect).
    fail_after_effect: AtomicBool,
    fired: AtomicBool,
    delay_ms: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    /// Reads and writes made: (`"get"` or `"put"`, path, bytes put).
    journal: std::sync::Mutex<Vec<(&'static str, String, u64)>>,
    /// A folder's listing as it once was, served by the next `list` of that folder (a listing
    /// that raced a clean-up); its objects stay readable while the stale listing is pending.
    frozen: std::sync::Mutex<Option<Frozen>>,
}

#[derive(Debug)]
struct Frozen {
    folder: Path,
    listing: Vec<ObjectMeta>,
    bytes: std::collections::HashMap<Path, Bytes>,
    served: bool,
}

impl fmt::Display for TestStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TestStore({})", self.inner)
    }
}

impl TestStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(TestStore {
            inner,
            ops: AtomicU64::new(0),
            fail_at: AtomicU64::new(NEVER),
            fail_after_effect: AtomicBool::new(false),
            fired: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            journal: Default::default(),
            frozen: Default::default(),
        })
    }

    /// Records `folder`'s listing and objects as they are now; after [`TestStore::replay_stale`]
    /// the next listing of that folder returns them, and reads of them succeed even if they were
    /// deleted since, as when a listing raced a concurrent clean-up.
    pub async fn freeze_listing(&self, folder: &Path) {
        let listing: Vec<ObjectMeta> =
            futures::TryStreamExt::try_collect(self.inner.list(Some(folder)))
                .await
                .unwrap();
        let mut bytes = std::collections::HashMap::new();
        for m in &listing {
            let b = self
                .inner
                .get_opts(&m.location, GetOptions::default())
                .await
                .unwrap();
            bytes.insert(m.location.clone(), b.bytes().await.unwrap());
        }
        *self.frozen.lock().unwrap() = Some(Frozen {
            folder: folder.clone(),
            listing,
            bytes,
            served: true,
        });
    }

    /// Arms the frozen listing for the next `list` of its folder.
    pub fn replay_stale(&self) {
        if let Some(f) = self.frozen.lock().unwrap().as_mut() {
            f.served = false;
        }
    }

    /// Whether the armed stale listing was served.
    pub fn stale_served(&self) -> bool {
        self.frozen
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|f| f.served)
    }

    fn stale_listing(&self, prefix: Option<&Path>) -> Option<Vec<ObjectMeta>> {
        let mut frozen = self.frozen.lock().unwrap();
        let f = frozen.as_mut()?;
        (!f.served && prefix == Some(&f.folder)).then(|| {
            f.served = true;
            f.listing.clone()
        })
    }

    fn ghost(&self, location: &Path) -> Option<Bytes> {
        let frozen = self.frozen.lock().unwrap();
        frozen.as_ref()?.bytes.get(location).cloned()
    }

    /// Takes the reads and writes made since the last call.
    pub fn take_journal(&self) -> Vec<(&'static str, String, u64)> {
        std::mem::take(&mut *self.journal.lock().unwrap())
    }

    fn record(&self, op: &'static str, path: &Path, bytes: u64) {
        self.journal
            .lock()
            .unwrap()
            .push((op, path.to_string(), bytes));
    }

    pub fn ops(&self) -> u64 {
        self.ops.load(SeqCst)
    }

    /// Fails the `n`-th operation from now (0 = the next one).
    pub fn fail_in(&self, n: u64, after_effect: bool) {
        self.fired.store(false, SeqCst);
        self.fail_after_effect.store(after_effect, SeqCst);
        self.fail_at.store(self.ops() + n, SeqCst);
    }

    pub fn disarm(&self) {
        self.fail_at.store(NEVER, SeqCst);
    }

    pub fn fired(&self) -> bool {
        self.fired.load(SeqCst)
    }

    pub fn set_read_delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, SeqCst);
    }

    pub fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(SeqCst)
    }

    /// Counts one operation: `Err` to fail before any effect, `Ok(true)` to fail after it.
    fn op(&self, effectful: bool) -> object_store::Result<bool> {
        let n = self.ops.fetch_add(1, SeqCst);
        if n != self.fail_at.load(SeqCst) {
            return Ok(false);
        }
        self.fired.store(true, SeqCst);
        if effectful && self.fail_after_effect.load(SeqCst) {
            Ok(true)
        } else {
            Err(fault())
        }
    }
}

fn fault() -> object_store::Error {
    object_store::Error::Generic {
        store: "test",
        source: "injected fault".into(),
    }
}

#[async_trait]
impl ObjectStore for TestStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let fail_after = self.op(true)?;
        self.record("put", location, payload.content_length() as u64);
        let r = self.inner.put_opts(location, payload, opts).await?;
        if fail_after { Err(fault()) } else { Ok(r) }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.op(false)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.op(false)?;
        self.record("get", location, 0);
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.max_in_flight.fetch_max(now, SeqCst);
        let delay = self.delay_ms.load(SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let mut r = self.inner.get_opts(location, options.clone()).await;
        let ghost = match &r {
            Err(object_store::Error::NotFound { .. }) => self.ghost(location),
            _ => None,
        };
        if let Some(b) = ghost {
            drop(r);
            let mem = object_store::memory::InMemory::new();
            mem.put_opts(location, b.into(), PutOptions::default())
                .await?;
            r = mem.get_opts(location, options).await;
        }
        self.in_flight.fetch_sub(1, SeqCst);
        r
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            let opts = GetOptions {
                range: Some(r.clone().into()),
                ..Default::default()
            };
            out.push(self.get_opts(location, opts).await?.bytes().await?);
        }
        Ok(out)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        match self.op(true) {
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            Ok(false) => self.inner.delete_stream(locations),
            Ok(true) => self
                .inner
                .delete_stream(locations)
                .map(|r| r.and_then(|_| Err(fault())))
                .boxed(),
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.op(false) {
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            Ok(_) => match self.stale_listing(prefix) {
                Some(stale) => futures::stream::iter(stale.into_iter().map(Ok)).boxed(),
                None => self.inner.list(prefix),
            },
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.op(false)?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let fail_after = self.op(true)?;
        self.inner.copy_opts(from, to, options).await?;
        if fail_after { Err(fault()) } else { Ok(()) }
    }
}

/// A `[n]` f32 array 0, 1, 2, … plus `offset`.
pub fn ramp(n: usize, offset: f32) -> Array<f32, IxDyn> {
    Array::from_shape_fn(IxDyn(&[n]), |i| i[0] as f32 + offset)
}

/// Everything a reader can see in a store, as text, for equality checks.
pub async fn snapshot(atlas: &Atlas) -> String {
    let mut out = String::new();
    for name in atlas.list_datasets() {
        let ds = atlas
            .open_dataset(&name)
            .await
            .expect("listed dataset opens");
        out.push_str(&format!("dataset {name} {:?}\n", ds.attributes()));
        for array in ds.list_arrays() {
            out.push_str(&format!("  {array} {:?}\n", ds.array_meta(&array)));
            out.push_str(&format!("    = {}\n", read_any(&ds, &array).await));
        }
    }
    out
}

/// Reads an array of any dtype the tests use, as text.
pub async fn read_any(ds: &DatasetView, array: &str) -> String {
    use atlas_store::DType;
    let meta = ds.array_meta(array).expect("array exists");
    macro_rules! read {
        ($t:ty) => {
            format!(
                "{:?}",
                ds.read_array::<$t>(array, vec![], vec![])
                    .await
                    .expect("read succeeds")
                    .expect("array exists")
                    .iter()
                    .collect::<Vec<_>>()
            )
        };
    }
    match meta.dtype {
        DType::Float32 => read!(f32),
        DType::Float64 => read!(f64),
        DType::Int64 => read!(i64),
        DType::Int32 => read!(i32),
        DType::UInt8 => read!(u8),
        DType::String => read!(String),
        DType::TimestampNs => read!(atlas_store::TimestampNs),
        other => panic!("test snapshot does not read {other:?}"),
    }
}

/// Sets a string attribute, panicking on error (test helper).
pub fn tag(ds: &DatasetView, key: &str, value: &str) {
    ds.set_attribute(key, Attr::String(value.into()))
        .expect("attribute set");
}

/// Creates dataset `name` with one `[n]` f32 array `array` on dim `x`, written with
/// [`ramp`]`(n, offset)`.
pub async fn ramp_dataset(
    atlas: &mut Atlas,
    name: &str,
    array: &str,
    n: usize,
    offset: f32,
) -> DatasetView {
    let ds = atlas.create_dataset(name).await.expect("dataset created");
    ds.define_array::<f32>(array, vec!["x".into()], vec![n], None, None)
        .await
        .expect("array defined");
    ds.write_array(array, vec![0], ramp(n, offset).view())
        .await
        .expect("array written");
    ds
}

/// A small linear congruential generator: seeded tests draw the same cases on every run.
pub struct Lcg(pub u64);

impl Lcg {
    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n.max(1) as u64) as usize
    }
}
