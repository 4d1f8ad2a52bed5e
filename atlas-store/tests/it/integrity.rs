//! Every byte read from a segment is checked: damage gives an error naming the file and the
//! array, never a wrong number.

use std::sync::Arc;

use atlas_store::object_store::{ObjectStore, ObjectStoreExt, memory::InMemory, path::Path};
use atlas_store::{Atlas, Codec, Error, StoreConfig};
use futures::TryStreamExt;

use crate::support::ramp_dataset;

const N: usize = 20_000;

/// One uncompressed segment holding `d0/v` and `d1/v` (80 KB of f32 each, ramps from
/// `offset`), and its path.
async fn uncompressed_store(offset: f32) -> (Arc<InMemory>, Path) {
    let mem = Arc::new(InMemory::new());
    let config = StoreConfig {
        codec: Codec::Uncompressed,
        ..StoreConfig::default()
    };
    let mut atlas = Atlas::create(mem.clone(), Path::from("s"), config)
        .await
        .unwrap();
    ramp_dataset(&mut atlas, "d0", "v", N, offset).await;
    ramp_dataset(&mut atlas, "d1", "v", N, offset + 1.0).await;
    atlas.flush().await.unwrap();
    let metas: Vec<_> = mem.list(None).try_collect().await.unwrap();
    let segment = metas
        .into_iter()
        .map(|m| m.location)
        .find(|p| p.as_ref().ends_with(".af"))
        .unwrap();
    (mem, segment)
}

async fn rewrite(mem: &InMemory, path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = mem.get(path).await.unwrap().bytes().await.unwrap().to_vec();
    f(&mut bytes);
    mem.put(path, bytes.into()).await.unwrap();
}

/// The error reading `dataset` gives (empty when it reads).
async fn read_err(mem: &Arc<InMemory>, dataset: &str) -> String {
    read(mem, dataset)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

async fn read(mem: &Arc<InMemory>, dataset: &str) -> atlas_store::Result<Vec<f32>> {
    let atlas = Atlas::open(mem.clone(), Path::from("s")).await?;
    let a = atlas
        .open_dataset(dataset)
        .await?
        .read_array::<f32>("v", vec![], vec![])
        .await?
        .unwrap();
    Ok(a.iter().copied().collect())
}

#[tokio::test]
async fn a_flipped_bit_in_an_uncompressed_block_fails_the_read_naming_segment_and_array() {
    let (mem, segment) = uncompressed_store(0.0).await;
    let good = read(&mem, "d0").await.unwrap();
    // Byte 1000 is inside d0's values: without page checksums this read back as another number.
    rewrite(&mem, &segment, |b| b[1000] ^= 0x04).await;
    let Err(err) = read(&mem, "d0").await else {
        panic!("a flipped bit read back without an error");
    };
    let msg = err.to_string();
    assert!(matches!(err, Error::CorruptSegment { .. }), "{msg}");
    assert!(msg.contains(segment.as_ref()), "names the file: {msg}");
    assert!(msg.contains("d0/v"), "names the array: {msg}");
    assert!(
        msg.contains("bytes 0..32768 (page 1 of"),
        "names the range: {msg}"
    );
    // `verify` finds the same range by reading the file in full.
    let atlas = Atlas::open(mem.clone(), Path::from("s")).await.unwrap();
    let err = atlas.verify().await.unwrap_err().to_string();
    assert!(err.contains("bytes 0..32768 (page 1 of"), "{err}");
    // Undo the flip: the same store reads exactly again.
    rewrite(&mem, &segment, |b| b[1000] ^= 0x04).await;
    assert!(read(&mem, "d0").await.ok() == Some(good));
}

#[tokio::test]
async fn damage_in_pages_a_read_does_not_touch_leaves_it_exact() {
    let (mem, segment) = uncompressed_store(0.0).await;
    let d1 = read(&mem, "d1").await.unwrap();
    rewrite(&mem, &segment, |b| b[1000] ^= 0x04).await;
    // d1's values start past the damaged first page, and array-format reads d1 alone.
    let got = read(&mem, "d1").await;
    match got {
        Ok(v) => assert!(v == d1, "d1 read back different values"),
        // A read that shares the damaged page (the 1 MiB read slab) is refused, not wrong.
        Err(e) => assert!(matches!(e, Error::CorruptSegment { .. }), "{e}"),
    }
}

#[tokio::test]
async fn a_missing_or_foreign_page_checksum_file_is_an_error_not_an_unchecked_read() {
    let (mem, segment) = uncompressed_store(0.0).await;
    let sidecar = Path::parse(format!("{segment}.sums")).unwrap();
    let original = mem.get(&sidecar).await.unwrap().bytes().await.unwrap();

    // Deleted: reads stop instead of going on unchecked.
    mem.delete(&sidecar).await.unwrap();
    let err = read_err(&mem, "d0").await;
    assert!(
        err.contains("page checksums") && err.contains("missing"),
        "{err}"
    );

    // Replaced by a well-formed sidecar of other bytes: the catalog's CRC of it tells.
    let (other, other_segment) = uncompressed_store(5.0).await;
    let foreign = other
        .get(&Path::parse(format!("{other_segment}.sums")).unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    mem.put(&sidecar, foreign.into()).await.unwrap();
    let err = read_err(&mem, "d0").await;
    assert!(err.contains("not the ones the catalog records"), "{err}");

    // Truncated.
    mem.put(&sidecar, original.slice(..original.len() - 1).into())
        .await
        .unwrap();
    assert!(!read_err(&mem, "d0").await.is_empty());

    mem.put(&sidecar, original.into()).await.unwrap();
    assert!(read(&mem, "d0").await.is_ok());
}
