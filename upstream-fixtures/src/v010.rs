//! Stores in the atlas-rust 0.10 layout (a registry and a folder of `data.af` files per
//! variable), written by atlas-rust 0.10 itself.

use std::path::Path;

use atlas_rust_010::{
    ArrayElement, Atlas, Attr, Codec, DType, DatasetView, FillValue, MetaFormat, StoreConfig,
    TimestampNs,
};
use ndarray::{ArrayD, IxDyn};

pub use atlas_rust_010 as upstream;

/// A result of these builders; errors are the upstream crate's.
pub type Result<T> = std::result::Result<T, atlas_rust_010::Error>;

/// A boolean element for atlas-rust 0.10 (its array-format has the dtype but implements its
/// element trait for no Rust type).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flag(pub bool);

impl ArrayElement for Flag {
    const DTYPE: DType = DType::Bool;

    fn encode_chunk(values: &[Self]) -> Vec<u8> {
        values.iter().map(|b| u8::from(b.0)).collect()
    }

    fn decode_chunk(bytes: &[u8]) -> Vec<Self> {
        bytes.iter().map(|&b| Flag(b != 0)).collect()
    }

    fn fill_element(fill: Option<&FillValue>) -> Self {
        match fill {
            Some(FillValue::Bool(b)) => Flag(*b),
            _ => Flag(false),
        }
    }
}

fn dims(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn write<T: ArrayElement>(
    ds: &mut DatasetView,
    array: &str,
    start: Vec<usize>,
    shape: &[usize],
    values: Vec<T>,
) -> Result<()> {
    let data = ArrayD::from_shape_vec(IxDyn(shape), values).expect("fixture shape");
    ds.write_array(array, start, data.view()).await
}

/// The datasets [`mixed_010`] leaves live, in registry order.
pub const MIXED_LIVE: [&str; 4] = ["jan", "feb", "mar", "apr"];

/// The temperature of dataset number `i` at `(r, c)` in [`mixed_010`].
pub fn mixed_temperature(i: usize, r: usize, c: usize) -> f32 {
    10.0 * i as f32 + r as f32 + c as f32 / 10.0
}

/// Writes an atlas-rust 0.10 store into `dir`, its registry as `atlas.json`, or as
/// zstd-compressed msgpack when `packed`:
///
/// - `jan`, `feb`, `mar`: `temperature` f32 `[lat 4, lon 6]` in 2×3 chunks (jan written
///   whole with one NaN, fill NaN; feb its first chunk row, fill -999; mar its first chunk,
///   no fill, so the rest reads as zeros); coordinates `lat` f64 `[4]` and `lon` f64 `[6]`
///   (chunks of 4); a 0-d `station` string and `time` timestamp; dataset attributes of the
///   five kinds 0.10 has;
/// - jan also has `flag` bool `[lat 4]`, `code` u64 `[n 3]`, `level` i16 `[lat 4]` (chunks of
///   2, fill -1, written in part) and `spare` f64 `[n 3]` (fill 1.5, never written);
/// - `gone`: written and flushed, then deleted (a tombstone in every file it used);
/// - then a second session: feb's second chunk row of `temperature` is written (a delta
///   layer, `data.1.af`) and `apr` is added, with `temperature` written whole.
pub async fn mixed_010(dir: &Path, packed: bool) -> Result<()> {
    let config = StoreConfig {
        codec: Codec::Zstd,
        meta_format: if packed {
            MetaFormat::MsgPack
        } else {
            MetaFormat::Json
        },
        meta_compression: if packed {
            Codec::Zstd
        } else {
            Codec::Uncompressed
        },
    };
    let mut atlas = Atlas::create_path(dir, config).await?;
    for (i, name) in ["jan", "feb", "mar", "gone"].into_iter().enumerate() {
        let mut ds = atlas.create_dataset(name).await?;
        let fill = match name {
            "jan" => Some(FillValue::Float(f64::NAN)),
            "feb" => Some(FillValue::Float(-999.0)),
            _ => None,
        };
        ds.define_array::<f32>(
            "temperature",
            dims(&["lat", "lon"]),
            vec![4, 6],
            Some(vec![2, 3]),
            fill,
        )
        .await?;
        let t = |r: usize, c: usize| mixed_temperature(i, r, c);
        match name {
            "feb" => {
                let v = (0..2).flat_map(|r| (0..6).map(move |c| t(r, c))).collect();
                write::<f32>(&mut ds, "temperature", vec![0, 0], &[2, 6], v).await?;
            }
            "mar" => {
                let v = (0..2).flat_map(|r| (0..3).map(move |c| t(r, c))).collect();
                write::<f32>(&mut ds, "temperature", vec![0, 0], &[2, 3], v).await?;
            }
            _ => {
                let mut v: Vec<f32> = (0..4).flat_map(|r| (0..6).map(move |c| t(r, c))).collect();
                v[7] = f32::NAN;
                write::<f32>(&mut ds, "temperature", vec![0, 0], &[4, 6], v).await?;
            }
        }
        ds.define_array::<f64>("lat", dims(&["lat"]), vec![4], None, None)
            .await?;
        write::<f64>(&mut ds, "lat", vec![0], &[4], vec![-10.0, -5.0, 0.0, 5.0]).await?;
        ds.define_array::<f64>("lon", dims(&["lon"]), vec![6], Some(vec![4]), None)
            .await?;
        let lon = (0..6).map(|k| 100.0 + 2.5 * k as f64).collect();
        write::<f64>(&mut ds, "lon", vec![0], &[6], lon).await?;
        ds.define_array::<String>("station", vec![], vec![], None, None)
            .await?;
        write::<String>(&mut ds, "station", vec![], &[], vec![format!("ST-{name}")]).await?;
        ds.define_array::<TimestampNs>("time", vec![], vec![], None, None)
            .await?;
        let when = 1_704_067_200_000_000_000 + i as i64 * 2_678_400_000_000_000;
        write::<TimestampNs>(&mut ds, "time", vec![], &[], vec![TimestampNs(when)]).await?;
        if name == "jan" {
            ds.define_array::<Flag>("flag", dims(&["lat"]), vec![4], None, None)
                .await?;
            let flags = vec![Flag(true), Flag(false), Flag(true), Flag(true)];
            write::<Flag>(&mut ds, "flag", vec![0], &[4], flags).await?;
            ds.define_array::<u64>("code", dims(&["n"]), vec![3], None, None)
                .await?;
            write::<u64>(&mut ds, "code", vec![0], &[3], vec![1, u64::MAX, 7]).await?;
            ds.define_array::<i16>(
                "level",
                dims(&["lat"]),
                vec![4],
                Some(vec![2]),
                Some(FillValue::Int(-1)),
            )
            .await?;
            write::<i16>(&mut ds, "level", vec![2], &[2], vec![300, -300]).await?;
            ds.define_array::<f64>(
                "spare",
                dims(&["n"]),
                vec![3],
                None,
                Some(FillValue::Float(1.5)),
            )
            .await?;
        }
        ds.set_attribute("platform", Attr::String(format!("float {name}")));
        ds.set_attribute("cycle", Attr::Int64(i as i64 + 1));
        ds.set_attribute("ratio", Attr::Float64(0.5));
        ds.set_attribute("qc", Attr::Bool(i % 2 == 0));
        ds.set_attribute(
            "launched",
            Attr::TimestampNanoseconds(when - 86_400_000_000_000),
        );
    }
    atlas.flush().await?;
    atlas.delete_dataset("gone").await?;
    atlas.flush().await?;
    drop(atlas);

    let mut atlas = Atlas::open_path(dir).await?;
    {
        let mut feb = atlas.open_dataset("feb").await?;
        let v = (2..4)
            .flat_map(|r| (0..6).map(move |c| mixed_temperature(1, r, c)))
            .collect();
        write::<f32>(&mut feb, "temperature", vec![2, 0], &[2, 6], v).await?;
    }
    {
        let mut apr = atlas.create_dataset("apr").await?;
        apr.define_array::<f32>(
            "temperature",
            dims(&["lat", "lon"]),
            vec![4, 6],
            Some(vec![2, 3]),
            Some(FillValue::Float(-999.0)),
        )
        .await?;
        let v = (0..4)
            .flat_map(|r| (0..6).map(move |c| mixed_temperature(4, r, c)))
            .collect();
        write::<f32>(&mut apr, "temperature", vec![0, 0], &[4, 6], v).await?;
        apr.set_attribute("platform", Attr::String("float apr".into()));
    }
    atlas.flush().await
}

/// Writes `n` Argo-like profiles into `dir` as an atlas-rust 0.10 store, the same data as
/// [`crate::profiles_017`]: dataset `P{i:05}` has `TEMP` f32 `[N_LEVELS levels]` (chunks of
/// 25 levels, fill 99999), `PRES` f32 `[N_LEVELS]`, and attributes `PLATFORM_NUMBER` (ten
/// platforms) and `CYCLE`. Profile `i` holds temperatures from `i % 30` degrees down.
pub async fn profiles_010(dir: &Path, n: usize, levels: usize) -> Result<()> {
    let mut atlas = Atlas::create_path(dir, StoreConfig::default()).await?;
    for i in 0..n {
        let mut ds = atlas.create_dataset(&format!("P{i:05}")).await?;
        ds.define_array::<f32>(
            "TEMP",
            dims(&["N_LEVELS"]),
            vec![levels],
            Some(vec![levels.clamp(1, 25)]),
            Some(FillValue::Float(99999.0)),
        )
        .await?;
        let top = (i % 30) as f32;
        let temp = (0..levels).map(|k| top - k as f32 * 0.01).collect();
        write::<f32>(&mut ds, "TEMP", vec![0], &[levels], temp).await?;
        ds.define_array::<f32>("PRES", dims(&["N_LEVELS"]), vec![levels], None, None)
            .await?;
        let pres = (0..levels).map(|k| k as f32 * 2.0).collect();
        write::<f32>(&mut ds, "PRES", vec![0], &[levels], pres).await?;
        ds.set_attribute("PLATFORM_NUMBER", Attr::String(format!("69{:05}", i % 10)));
        ds.set_attribute("CYCLE", Attr::Int64(i as i64 / 10));
    }
    atlas.flush().await
}

/// Writes an atlas-rust 0.10 store into `dir` holding one dataset, `long`, with `x` f64
/// `[n n]` in chunks of 65,536 (`x[k] = k`). atlas-rust 0.10 packs chunks into blocks of
/// 8 MiB before compression, so from about a million values on the array spans blocks that a
/// region read can skip.
pub async fn long_010(dir: &Path, n: usize) -> Result<()> {
    let mut atlas = Atlas::create_path(dir, StoreConfig::default()).await?;
    let mut ds = atlas.create_dataset("long").await?;
    ds.define_array::<f64>("x", dims(&["n"]), vec![n], Some(vec![65_536]), None)
        .await?;
    let values = (0..n).map(|k| k as f64).collect();
    write::<f64>(&mut ds, "x", vec![0], &[n], values).await?;
    atlas.flush().await
}
