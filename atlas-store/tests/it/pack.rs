//! Packs: small arrays of many datasets in one array of a segment (docs/format.md §5.2).

use std::sync::Arc;

use atlas_store::ndarray::{Array, IxDyn};
use atlas_store::object_store::memory::InMemory;
use atlas_store::object_store::path::Path;
use atlas_store::{Atlas, FillValue, StatValue, StoreConfig};

const DATASETS: usize = 1000;

fn readings(d: usize) -> Vec<f32> {
    (0..24).map(|i| (d * 31 + i * 7) as f32 * 0.25).collect()
}

/// A 2 x 3 i16 array with the fill value -1 in cell (1, 2) of every tenth dataset.
fn flags(d: usize) -> Vec<i16> {
    (0..6)
        .map(|i| {
            if d.is_multiple_of(10) && i == 5 {
                -1
            } else {
                (d % 300) as i16 + i as i16
            }
        })
        .collect()
}

async fn sensors(mem: Arc<InMemory>, prefix: Path) -> Atlas {
    let mut atlas = Atlas::create(mem, prefix, StoreConfig::default())
        .await
        .unwrap();
    for d in 0..DATASETS {
        let ds = atlas.create_dataset(&format!("s{d:04}")).await.unwrap();
        ds.define_array::<f32>("v", vec!["time".into()], vec![24], None, None)
            .await
            .unwrap();
        let v = Array::from_shape_vec(IxDyn(&[24]), readings(d)).unwrap();
        ds.write_array("v", vec![0], v.view()).await.unwrap();
        ds.define_array::<i16>(
            "n",
            vec!["a".into(), "b".into()],
            vec![2, 3],
            None,
            Some(FillValue::Int(-1)),
        )
        .await
        .unwrap();
        let n = Array::from_shape_vec(IxDyn(&[2, 3]), flags(d)).unwrap();
        ds.write_array("n", vec![0, 0], n.view()).await.unwrap();
    }
    // One large array of the same variable stays an array of its own.
    let big = atlas.create_dataset("big").await.unwrap();
    big.define_array::<f32>(
        "v",
        vec!["time".into()],
        vec![50_000],
        Some(vec![10_000]),
        None,
    )
    .await
    .unwrap();
    let v = Array::from_shape_fn(IxDyn(&[50_000]), |i| i[0] as f32);
    big.write_array("v", vec![0], v.view()).await.unwrap();
    atlas.flush().await.unwrap();
    atlas
}

fn segment_bytes(atlas: &Atlas, variable: &str) -> u64 {
    atlas
        .list_segments()
        .iter()
        .filter(|s| s.variable == variable)
        .map(|s| s.size)
        .sum()
}

#[tokio::test]
async fn small_arrays_of_a_thousand_datasets_share_a_pack_and_read_back_exactly() {
    let mem = Arc::new(InMemory::new());
    let prefix = Path::from("s");
    let atlas = sensors(mem.clone(), prefix.clone()).await;
    // Unpacked, each array cost some 250 bytes of footer; packed, its name and an offset.
    let n_bytes = segment_bytes(&atlas, "n");
    assert!(
        n_bytes < (DATASETS as u64) * 40,
        "{n_bytes} bytes for {DATASETS} arrays of 12 bytes"
    );

    let fresh = Atlas::open(mem, prefix).await.unwrap();
    for d in [0, 1, 10, 499, 999] {
        let ds = fresh.open_dataset(&format!("s{d:04}")).await.unwrap();
        let v = ds
            .read_array::<f32>("v", vec![], vec![])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            v.iter().copied().collect::<Vec<_>>(),
            readings(d),
            "s{d:04}"
        );
        let n = ds
            .read_array::<i16>("n", vec![1, 1], vec![1, 2])
            .await
            .unwrap()
            .unwrap();
        let want = flags(d);
        assert_eq!(
            n.iter().copied().collect::<Vec<_>>(),
            vec![want[4], want[5]]
        );
        let stats = ds.array_stats("n").await.unwrap();
        let nulls = u64::from(d.is_multiple_of(10));
        let max = if d.is_multiple_of(10) {
            want[4]
        } else {
            want[5]
        };
        assert_eq!(
            (stats.min, stats.max, stats.null_count, stats.row_count),
            (
                Some(StatValue::Int(i64::from(want[0]))),
                Some(StatValue::Int(i64::from(max))),
                nulls,
                6
            ),
            "s{d:04}"
        );
    }
    let big = fresh.open_dataset("big").await.unwrap();
    let v = big
        .read_array::<f32>("v", vec![49_990], vec![10])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v[[9]], 49_999.0);
}

#[tokio::test]
async fn encoded_reads_of_every_packed_dataset_decode_only_the_packs_blocks() {
    let mem = Arc::new(InMemory::new());
    let prefix = Path::from("s");
    sensors(mem.clone(), prefix.clone()).await;
    let fresh = Atlas::open(mem, prefix).await.unwrap();
    let mut names: Vec<String> = (0..DATASETS).map(|d| format!("s{d:04}")).collect();
    names.push("big".into());
    names.push("nope".into());
    let got = fresh.read_encoded("v", &names).await.unwrap();
    for (d, bytes) in got.iter().take(DATASETS).enumerate() {
        let bytes = bytes
            .as_ref()
            .unwrap_or_else(|| panic!("s{d:04} not served"));
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(values, readings(d), "s{d:04}");
    }
    // Several chunks, and no such dataset: left to `read_array`.
    assert!(got[DATASETS].is_none() && got[DATASETS + 1].is_none());
    // 96 KB of values in one pack: one or two blocks, not a thousand array reads.
    let decoded = fresh.blocks_decoded();
    assert!((1..=2).contains(&decoded), "{decoded} blocks decoded");
}

#[tokio::test]
async fn rewriting_part_of_a_packed_array_keeps_its_neighbours_and_compaction_repacks_them() {
    let mem = Arc::new(InMemory::new());
    let prefix = Path::from("s");
    let mut atlas = sensors(mem.clone(), prefix.clone()).await;
    let ds = atlas.open_dataset("s0005").await.unwrap();
    let patch = Array::from_shape_vec(IxDyn(&[1, 2]), vec![-1i16, 700]).unwrap();
    ds.write_array("n", vec![0, 1], patch.view()).await.unwrap();
    atlas.flush().await.unwrap();
    let check = |atlas: Atlas| async move {
        for d in [4, 5, 6] {
            let ds = atlas.open_dataset(&format!("s{d:04}")).await.unwrap();
            let n = ds
                .read_array::<i16>("n", vec![], vec![])
                .await
                .unwrap()
                .unwrap();
            let mut want = flags(d);
            if d == 5 {
                want[1] = -1;
                want[2] = 700;
            }
            assert_eq!(n.iter().copied().collect::<Vec<_>>(), want, "s{d:04}");
        }
        let stats = atlas
            .open_dataset("s0005")
            .await
            .unwrap()
            .array_stats("n")
            .await
            .unwrap();
        assert_eq!(
            (stats.max, stats.null_count),
            (Some(StatValue::Int(700)), 1)
        );
    };
    check(Atlas::open(mem.clone(), prefix.clone()).await.unwrap()).await;

    let before = segment_bytes(&atlas, "n");
    let report = atlas.compact().await.unwrap();
    assert!(
        report.variables_rewritten.contains(&"n".to_string()),
        "{report:?}"
    );
    assert_eq!(
        atlas
            .list_segments()
            .iter()
            .filter(|s| s.variable == "n")
            .count(),
        1
    );
    assert!(segment_bytes(&atlas, "n") <= before + 64);
    check(Atlas::open(mem, prefix).await.unwrap()).await;
}
