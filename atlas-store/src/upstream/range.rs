//! One byte range of an object, seen as an object of its own.
//!
//! An atlas-rust 0.17 collection keeps every variable's segment inside one file,
//! `data.atlas`. A segment is a complete array-format file, and array-format opens a file
//! through an [`ObjectStore`] and a path. [`RangeStore`] shows array-format the segment's
//! bytes under a name of its own, translating each read into a read of the container, so
//! every segment reads through this handle's block cache and counted store like ours do.
//!
//! Reads past the segment's end are clamped to it, so a damaged chunk address can never read
//! the next segment's bytes; every write, copy and delete is refused (the formats it serves are
//! read-only here).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::{
    GetOptions, GetRange, GetResult, GetResultPayload, ObjectMeta, ObjectStore, path::Path,
};

/// Presents `container[offset..offset + len]` as the object `name`.
#[derive(Debug)]
pub(crate) struct RangeStore {
    inner: Arc<dyn ObjectStore>,
    container: Path,
    name: Path,
    offset: u64,
    len: u64,
}

impl RangeStore {
    pub(crate) fn new(
        inner: Arc<dyn ObjectStore>,
        container: Path,
        name: Path,
        offset: u64,
        len: u64,
    ) -> Self {
        RangeStore {
            inner,
            container,
            name,
            offset,
            len,
        }
    }

    /// `range` of the segment, in segment coordinates, clamped to its end.
    fn resolve(&self, range: Option<&GetRange>) -> object_store::Result<Range<u64>> {
        let len = self.len;
        let local = match range {
            None => 0..len,
            Some(GetRange::Bounded(r)) => r.start..r.end.min(len),
            Some(GetRange::Offset(o)) => *o..len,
            Some(GetRange::Suffix(n)) => len.saturating_sub(*n)..len,
        };
        if local.start > local.end || local.start > len {
            return Err(object_store::Error::Generic {
                store: "RangeStore",
                source: format!(
                    "range {}..{} starts past the end of {} ({len} bytes at {} of {})",
                    local.start, local.end, self.name, self.offset, self.container
                )
                .into(),
            });
        }
        Ok(local)
    }

    fn absolute(&self, local: &Range<u64>) -> Range<u64> {
        self.offset.saturating_add(local.start)..self.offset.saturating_add(local.end)
    }

    /// The segment's metadata; the container has no per-segment time, so it is the epoch.
    fn meta(&self) -> ObjectMeta {
        ObjectMeta {
            location: self.name.clone(),
            last_modified: Default::default(),
            size: self.len,
            e_tag: None,
            version: None,
        }
    }

    fn not_found(&self, location: &Path) -> object_store::Error {
        object_store::Error::NotFound {
            path: location.to_string(),
            source: format!("only {} is readable here", self.name).into(),
        }
    }
}

fn read_only(op: &str) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!("{op}: this store is read-only").into(),
    }
}

impl std::fmt::Display for RangeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}[{}..{}]",
            self.container,
            self.offset,
            self.offset.saturating_add(self.len)
        )
    }
}

#[async_trait::async_trait]
impl ObjectStore for RangeStore {
    async fn put_opts(
        &self,
        _location: &Path,
        _payload: object_store::PutPayload,
        _opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        Err(read_only("put"))
    }

    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        Err(read_only("put"))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if *location != self.name {
            return Err(self.not_found(location));
        }
        let local = self.resolve(options.range.as_ref())?;
        if options.head {
            return Ok(GetResult {
                payload: GetResultPayload::Stream(futures::stream::empty().boxed()),
                meta: self.meta(),
                range: local,
                attributes: Default::default(),
            });
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(self.absolute(&local))),
            ..options
        };
        let result = self.inner.get_opts(&self.container, opts).await?;
        let meta = ObjectMeta {
            last_modified: result.meta.last_modified,
            ..self.meta()
        };
        let attributes = result.attributes.clone();
        let bytes = result.bytes().await?;
        if bytes.len() as u64 != local.end - local.start {
            return Err(object_store::Error::Generic {
                store: "RangeStore",
                source: format!(
                    "{} returned {} bytes for {} bytes of {} (the file is shorter than its footer says)",
                    self.container,
                    bytes.len(),
                    local.end - local.start,
                    self.name
                )
                .into(),
            });
        }
        Ok(GetResult {
            payload: GetResultPayload::Stream(
                futures::stream::once(async move { Ok::<Bytes, object_store::Error>(bytes) })
                    .boxed(),
            ),
            meta,
            range: local,
            attributes,
        })
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        if *location != self.name {
            return Err(self.not_found(location));
        }
        let mut absolute = Vec::with_capacity(ranges.len());
        for r in ranges {
            let local = self.resolve(Some(&GetRange::Bounded(r.clone())))?;
            absolute.push(self.absolute(&local));
        }
        // One call, so the container's store can coalesce neighbouring ranges.
        self.inner.get_ranges(&self.container, &absolute).await
    }

    /// Nothing to list: the range is one object, and nothing sits beside it.
    fn list(&self, _prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        futures::stream::empty().boxed()
    }

    async fn list_with_delimiter(
        &self,
        _prefix: Option<&Path>,
    ) -> object_store::Result<object_store::ListResult> {
        Ok(object_store::ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations.map(|_| Err(read_only("delete"))).boxed()
    }

    async fn copy_opts(
        &self,
        _from: &Path,
        _to: &Path,
        _options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        Err(read_only("copy"))
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn a_range_reads_as_its_own_object_and_never_past_its_end() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let data: Vec<u8> = (0..100u8).collect();
        inner
            .put(&Path::from("data.atlas"), data.into())
            .await
            .expect("put");
        let seg = RangeStore::new(
            Arc::clone(&inner),
            Path::from("data.atlas"),
            Path::from("seg.af"),
            10,
            20,
        );
        let name = Path::from("seg.af");
        assert_eq!(seg.head(&name).await.expect("head").size, 20);
        let all = seg
            .get(&name)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(&all[..], &(10..30u8).collect::<Vec<_>>()[..]);
        let tail = seg.get_range(&name, 15..40).await.expect("clamped");
        assert_eq!(&tail[..], &(25..30u8).collect::<Vec<_>>()[..]);
        let parts = seg
            .get_ranges(&name, &[0..2, 18..25])
            .await
            .expect("ranges");
        assert_eq!(&parts[0][..], &[10, 11]);
        assert_eq!(&parts[1][..], &[28, 29]);
        assert!(seg.get_range(&name, 25..30).await.is_err());
        assert!(seg.get(&Path::from("data.atlas")).await.is_err());
        assert!(seg.put(&name, vec![1u8].into()).await.is_err());
    }
}
