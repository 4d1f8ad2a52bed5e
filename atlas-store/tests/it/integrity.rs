//! Every byte read from a segment is checked: damage gives an error naming the file and the
//! array, never a wrong number.

use std::sync::Arc;

use atlas_store::object_store::{ObjectStore, ObjectStoreExt, memory::InMemory, path::Path};
use atlas_store::{Atlas, Codec, Error, StoreConfig};
use futures::TryStreamExt;

use crate::support::{Lcg, ramp_dataset};

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

/// Defines and writes `name` as a random-shaped, randomly chunked array of `T` made by `value`.
async fn random_array<T: atlas_store::ArrayElement + Clone>(
    atlas: &mut Atlas,
    rng: &mut Lcg,
    name: &str,
    value: impl Fn(usize) -> T,
) {
    let rank = 1 + rng.below(3);
    let shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(40)).collect();
    let chunks: Vec<usize> = shape.iter().map(|&n| 1 + rng.below(n)).collect();
    let dims = (0..rank).map(|d| format!("d{d}")).collect();
    let ds = atlas.create_dataset(name).await.unwrap();
    ds.define_array::<T>("v", dims, shape.clone(), Some(chunks), None)
        .await
        .unwrap();
    let n: usize = shape.iter().product();
    let data = atlas_store::ndarray::Array::from_shape_vec(
        atlas_store::ndarray::IxDyn(&shape),
        (0..n).map(value).collect(),
    )
    .unwrap();
    ds.write_array("v", vec![0; rank], data.view())
        .await
        .unwrap();
}

/// What reading every array gives: its values as text, or `None` on an error.
async fn read_all(mem: Arc<InMemory>, names: Vec<(String, u8)>) -> Vec<Option<String>> {
    let Ok(atlas) = Atlas::open(mem, Path::from("s")).await else {
        return vec![None; names.len()];
    };
    let mut out = Vec::new();
    for (name, kind) in &names {
        let Ok(ds) = atlas.open_dataset(name).await else {
            out.push(None);
            continue;
        };
        let text = match kind {
            0 => ds.read_array::<f32>("v", vec![], vec![]).await.map(|a| {
                format!(
                    "{:?}",
                    a.map(|a| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                )
            }),
            1 => ds
                .read_array::<i16>("v", vec![], vec![])
                .await
                .map(|a| format!("{a:?}")),
            _ => ds.read_array::<f64>("v", vec![], vec![]).await.map(|a| {
                format!(
                    "{:?}",
                    a.map(|a| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                )
            }),
        };
        out.push(text.ok());
    }
    out
}

#[tokio::test]
async fn random_segments_with_random_damage_read_back_exactly_or_fail_never_panic() {
    let mut rng = Lcg(0x51_7cc1_b727_220a);
    let (mut detected, mut exact) = (0usize, 0usize);
    const CASES: usize = 120;
    for case in 0..CASES {
        let mem = Arc::new(InMemory::new());
        let codec = [Codec::Zstd, Codec::Lz4, Codec::Uncompressed][case % 3];
        let config = StoreConfig {
            codec,
            ..StoreConfig::default()
        };
        let mut atlas = Atlas::create(mem.clone(), Path::from("s"), config)
            .await
            .unwrap();
        let mut names = Vec::new();
        for i in 0..1 + rng.below(4) {
            let name = format!("ds{i}");
            let kind = rng.below(3) as u8;
            let seed = rng.below(1000);
            match kind {
                0 => {
                    random_array(&mut atlas, &mut rng, &name, |j| (j * 7 + seed) as f32 * 0.5).await
                }
                1 => {
                    random_array(&mut atlas, &mut rng, &name, |j| {
                        ((j * 31 + seed) % 30_000) as i16
                    })
                    .await
                }
                _ => random_array(&mut atlas, &mut rng, &name, |j| (j + seed) as f64 / 3.0).await,
            }
            names.push((name, kind));
        }
        atlas.flush().await.unwrap();
        let truth = read_all(mem.clone(), names.clone()).await;
        assert!(truth.iter().all(Option::is_some), "case {case} reads back");

        let metas: Vec<_> = mem.list(None).try_collect().await.unwrap();
        let segment = metas
            .iter()
            .map(|m| m.location.clone())
            .find(|p| p.as_ref().ends_with(".af"))
            .unwrap();
        let mut bytes = mem
            .get(&segment)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        let len = bytes.len();
        match rng.below(3) {
            0 => {
                for _ in 0..=rng.below(4) {
                    let bit = rng.below(len * 8);
                    bytes[bit / 8] ^= 1 << (bit % 8);
                }
            }
            1 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(512)).min(len);
                bytes[at..end].iter_mut().for_each(|b| *b = 0);
            }
            _ => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(64)).min(len);
                for b in &mut bytes[at..end] {
                    *b = rng.below(256) as u8;
                }
            }
        }
        mem.put(&segment, bytes.into()).await.unwrap();
        let got = tokio::spawn(read_all(mem, names.clone())).await;
        let got = got.unwrap_or_else(|e| panic!("case {case}: a read panicked: {e}"));
        for (i, g) in got.iter().enumerate() {
            match g {
                None => detected += 1,
                Some(v) if Some(v) == truth[i].as_ref() => exact += 1,
                Some(_) => panic!(
                    "case {case} ({codec:?}): {} read back different values",
                    names[i].0
                ),
            }
        }
    }
    eprintln!("{CASES} damaged segments: {detected} reads refused, {exact} exact, 0 wrong");
    assert!(detected > 0);
}
