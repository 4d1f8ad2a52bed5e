//! Stores written by the original ATLAS crate (`atlas-rust`), made with that crate itself, for
//! the tests that read them: the upstream crate is both their writer and the oracle the tests
//! compare against.
//!
//! [`mixed_017`] covers the awkward parts of the 0.17 format (every dtype, fills and no fill,
//! chunks at the edges, 0-d arrays, attributes of every kind, a dataset deleted through the
//! mask, one whose writer never finished); [`profiles_017`] is a collection of many
//! Argo-like profiles for pruning and benchmarks. [`v010`] has the same for atlas-rust 0.10.

#![warn(missing_docs)]

pub mod v010;

use std::path::Path;

use array_format::{ArrayElement, DType, FillValue, TimestampNs};
use atlas_rust_017::{Atlas, AtlasWriter, Attr, DatasetWriter, WriterConfig};
use ndarray::{ArrayD, IxDyn};

pub use atlas_rust_017 as upstream;

/// A result of these builders; errors are the upstream crate's.
pub type Result<T> = std::result::Result<T, atlas_rust_017::Error>;

/// A boolean element: array-format has the dtype but implements its element trait for no
/// Rust type.
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

/// Blocks small enough that every chunk of these fixtures gets a block of its own, so tests
/// can count the chunks a read decodes.
const SMALL_BLOCKS: usize = 1;

fn config() -> WriterConfig {
    WriterConfig {
        block_target_size: SMALL_BLOCKS,
        ..WriterConfig::default()
    }
}

fn dims(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn write<T: ArrayElement>(
    ds: &mut DatasetWriter,
    array: &str,
    start: Vec<usize>,
    shape: &[usize],
    values: Vec<T>,
) -> Result<()> {
    let data = ArrayD::from_shape_vec(IxDyn(shape), values).expect("fixture shape");
    ds.write_array(array, start, data.view()).await
}

/// The datasets [`mixed_017`] leaves live, in order.
pub const MIXED_LIVE: [&str; 3] = ["jan", "feb", "mar"];

/// Writes an atlas-rust 0.17 collection into `dir`:
///
/// - `jan`, `feb`, `mar`: `temperature` f32 `[lat 4, lon 6]` in 2×3 chunks with array
///   attributes (jan written whole, fill NaN; feb only its first chunk row, fill -999;
///   mar only its first chunk, no fill, so the rest reads as zeros), coordinates `lat`
///   f64 `[4]` and `lon` f64 `[6]`, a 0-d `station` string and `time` timestamp, and
///   dataset attributes of every kind (a u64 beyond i64, an f32, a list, binary);
/// - jan also has `flag` bool `[4]`, `code` u64 `[3]` and `level` i16 `[lat 4]` (fill -1,
///   written in part);
/// - `gone`: finished, then deleted through the mask;
/// - `orphan`: its writer wrote `temperature` but never finished, so the collection does
///   not hold it.
pub async fn mixed_017(dir: &Path) -> Result<()> {
    let w = AtlasWriter::create_path(dir, config()).await?;
    for (i, name) in ["jan", "feb", "mar", "gone"].into_iter().enumerate() {
        let mut ds = w.add_dataset(name).await?;
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
        let t = |r: usize, c: usize| 10.0 * i as f32 + r as f32 + c as f32 / 10.0;
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
        ds.set_array_attribute("temperature", "units", Attr::String("degC".into()))?;
        ds.set_array_attribute("temperature", "valid_max", Attr::Float32(40.5))?;
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
        }
        ds.set_attribute("platform", Attr::String(format!("float {name}")));
        ds.set_attribute("cycle", Attr::Int32(i as i32 + 1));
        ds.set_attribute("serial", Attr::UInt64(u64::MAX - i as u64));
        ds.set_attribute("ratio", Attr::Float32(0.5));
        ds.set_attribute("qc", Attr::Bool(i % 2 == 0));
        ds.set_attribute("levels", Attr::Int16List(vec![1, 2, 3]));
        ds.set_attribute("key", Attr::Binary(vec![0xde, 0xad]));
        ds.finish().await?;
    }
    {
        let mut orphan = w.add_dataset("orphan").await?;
        orphan
            .define_array::<f32>("temperature", dims(&["lat", "lon"]), vec![4, 6], None, None)
            .await?;
        write::<f32>(
            &mut orphan,
            "temperature",
            vec![0, 0],
            &[4, 6],
            vec![99.0; 24],
        )
        .await?;
        // Dropped without finish: its entries are in the segment, the footer lacks it.
    }
    w.finish().await?;
    Atlas::open_path(dir).await?.delete_dataset("gone").await?;
    Ok(())
}

/// Writes `n` Argo-like profiles into `dir` as an atlas-rust 0.17 collection: dataset
/// `P{i:05}` has `TEMP` f32 `[N_LEVELS levels]` (chunks of 25 levels, fill 99999),
/// `PRES` f32 `[N_LEVELS]`, and attributes `PLATFORM_NUMBER` (ten platforms) and `CYCLE`.
/// Profile `i` holds temperatures from `i % 30` degrees down, so value filters prune.
pub async fn profiles_017(dir: &Path, n: usize, levels: usize) -> Result<()> {
    let w = AtlasWriter::create_path(dir, WriterConfig::default()).await?;
    for i in 0..n {
        let mut ds = w.add_dataset(&format!("P{i:05}")).await?;
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
        ds.finish().await?;
    }
    w.finish().await
}
