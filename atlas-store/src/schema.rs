//! What the catalog records about arrays and datasets: schemas, attributes, statistics, and
//! their serde forms (array-format's own types are rkyv-only).

use array_format::{ArrayStats, DType, FillValue, StatValue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A typed attribute of a dataset or an array. NetCDF attributes are often vectors, hence the
/// list variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attr {
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int64(i64),
    /// A 64-bit float (NaN and infinities are kept).
    Float64(#[serde(with = "lossless_f64")] f64),
    /// A UTF-8 string.
    String(String),
    /// Nanoseconds since the Unix epoch, UTC.
    TimestampNanoseconds(i64),
    /// A list of signed 64-bit integers.
    Int64List(Vec<i64>),
    /// A list of 64-bit floats.
    Float64List(#[serde(with = "lossless_f64_vec")] Vec<f64>),
    /// A list of strings.
    StringList(Vec<String>),
}

/// The definition of one array of one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArraySchema {
    /// Element type.
    #[serde(with = "dtype_serde")]
    pub dtype: DType,
    /// Dimension names, one per axis.
    pub dims: Vec<String>,
    /// Length of each axis.
    pub shape: Vec<usize>,
    /// Chunk extent of each axis (equal to `shape` for a single-chunk array).
    pub chunk_shape: Vec<usize>,
    /// Value of cells never written; cells equal to it count as nulls.
    #[serde(with = "fill_serde")]
    pub fill_value: Option<FillValue>,
}

impl ArraySchema {
    /// Number of elements (the product of the shape; 1 for a 0-d scalar).
    pub fn element_count(&self) -> u64 {
        self.shape.iter().map(|&s| s as u64).product()
    }
}

/// The value a cell of `dtype` reads as when it was never written and the array has no fill
/// value (`None` for dtypes without statistics).
pub(crate) fn zero_of(dtype: &DType) -> Option<StatValue> {
    Some(match dtype {
        DType::Int8 | DType::Int16 | DType::Int32 | DType::Int64 => StatValue::Int(0),
        DType::UInt8 | DType::UInt16 | DType::UInt32 | DType::UInt64 | DType::Bool => {
            StatValue::UInt(0)
        }
        DType::Float32 | DType::Float64 => StatValue::Float(0.0),
        DType::String | DType::Binary => StatValue::Bytes(Vec::new()),
        DType::TimestampNs => StatValue::TimestampNs(0),
        _ => return None,
    })
}

/// Whether `a <= b` for two bounds of one dtype (`None` for bounds of different kinds).
fn stat_le(a: &StatValue, b: &StatValue) -> Option<bool> {
    Some(match (a, b) {
        (StatValue::Int(a), StatValue::Int(b)) => a <= b,
        (StatValue::UInt(a), StatValue::UInt(b)) => a <= b,
        (StatValue::Float(a), StatValue::Float(b)) => a.total_cmp(b).is_le(),
        (StatValue::Bytes(a), StatValue::Bytes(b)) => a <= b,
        (StatValue::TimestampNs(a), StatValue::TimestampNs(b)) => a <= b,
        _ => return None,
    })
}

/// The statistics of one array of a segment, as SQL sees the array.
///
/// array-format counts every cell of a chunk never written as a null, fill value or not. With
/// a fill value that is right (the cell reads as the fill, which SQL shows as NULL). Without
/// one the cell reads as the dtype's zero, a value: so those cells are taken out of the null
/// count and the zero is put inside min and max. Without this, exact `count(col)` answers and
/// value pruning would be wrong for arrays written only in part.
pub(crate) fn segment_stats(info: &array_format::reader::ArrayInfo) -> Option<StatsRepr> {
    let stats = info.stats.as_ref()?;
    let mut repr = stats_to_repr(stats);
    if info.fill_value.is_some() {
        return Some(repr);
    }
    let written: u64 = info
        .chunk_entries()
        .iter()
        .map(|c| {
            c.coord
                .iter()
                .zip(info.shape.iter().zip(&info.chunk_shape))
                .map(|(&i, (&len, &chunk))| {
                    let start = u64::from(i).saturating_mul(u64::from(chunk));
                    u64::from(chunk).min(u64::from(len).saturating_sub(start))
                })
                .fold(1u64, u64::saturating_mul)
        })
        .fold(0u64, u64::saturating_add);
    let unwritten = repr.row_count.saturating_sub(written);
    repr.null_count = repr.null_count.saturating_sub(unwritten);
    if unwritten > 0 {
        widen_to_zero(&mut repr, &info.dtype);
    }
    Some(repr)
}

/// Puts the zero of `dtype` (what a never-written cell of an array without a fill value reads
/// as) inside `repr`'s min and max. Returns `false`, leaving `repr` as it was, for dtypes
/// without statistics.
pub(crate) fn widen_to_zero(repr: &mut StatsRepr, dtype: &DType) -> bool {
    let Some(zero) = zero_of(dtype) else {
        return false;
    };
    let min = repr.min.take().map(StatValue::from);
    let max = repr.max.take().map(StatValue::from);
    let lower = match min {
        Some(m) if stat_le(&m, &zero) == Some(true) => m,
        _ => zero.clone(),
    };
    let upper = match max {
        Some(m) if stat_le(&zero, &m) == Some(true) => m,
        _ => zero,
    };
    repr.min = Some(lower.into());
    repr.max = Some(upper.into());
    true
}

/// Statistics of one array as of the last flush, as the catalog keeps them.
pub(crate) fn stats_to_repr(s: &ArrayStats) -> StatsRepr {
    StatsRepr {
        min: s.min.clone().map(StatRepr::from),
        max: s.max.clone().map(StatRepr::from),
        null_count: s.null_count,
        row_count: s.row_count,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatsRepr {
    pub min: Option<StatRepr>,
    pub max: Option<StatRepr>,
    pub null_count: u64,
    pub row_count: u64,
}

impl StatsRepr {
    pub(crate) fn to_stats(&self, name: &str) -> ArrayStats {
        ArrayStats {
            name: name.to_string(),
            min: self.min.clone().map(StatValue::from),
            max: self.max.clone().map(StatValue::from),
            null_count: self.null_count,
            row_count: self.row_count,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StatRepr {
    Int(i64),
    #[serde(rename = "uint")]
    UInt(u64),
    Float(#[serde(with = "lossless_f64")] f64),
    Bytes(Vec<u8>),
    TimestampNs(i64),
}

impl From<StatValue> for StatRepr {
    fn from(v: StatValue) -> Self {
        match v {
            StatValue::Int(x) => StatRepr::Int(x),
            StatValue::UInt(x) => StatRepr::UInt(x),
            StatValue::Float(x) => StatRepr::Float(x),
            StatValue::Bytes(x) => StatRepr::Bytes(x),
            StatValue::TimestampNs(x) => StatRepr::TimestampNs(x),
        }
    }
}

impl From<StatRepr> for StatValue {
    fn from(v: StatRepr) -> Self {
        match v {
            StatRepr::Int(x) => StatValue::Int(x),
            StatRepr::UInt(x) => StatValue::UInt(x),
            StatRepr::Float(x) => StatValue::Float(x),
            StatRepr::Bytes(x) => StatValue::Bytes(x),
            StatRepr::TimestampNs(x) => StatValue::TimestampNs(x),
        }
    }
}

/// The catalog name of a dtype.
pub(crate) fn dtype_name(d: &DType) -> Option<&'static str> {
    Some(match d {
        DType::Bool => "bool",
        DType::Int8 => "int8",
        DType::Int16 => "int16",
        DType::Int32 => "int32",
        DType::Int64 => "int64",
        DType::UInt8 => "uint8",
        DType::UInt16 => "uint16",
        DType::UInt32 => "uint32",
        DType::UInt64 => "uint64",
        DType::Float32 => "float32",
        DType::Float64 => "float64",
        DType::String => "string",
        DType::Binary => "binary",
        DType::TimestampNs => "timestamp_ns",
        _ => return None,
    })
}

fn dtype_from_name(s: &str) -> Option<DType> {
    Some(match s {
        "bool" => DType::Bool,
        "int8" => DType::Int8,
        "int16" => DType::Int16,
        "int32" => DType::Int32,
        "int64" => DType::Int64,
        "uint8" => DType::UInt8,
        "uint16" => DType::UInt16,
        "uint32" => DType::UInt32,
        "uint64" => DType::UInt64,
        "float32" => DType::Float32,
        "float64" => DType::Float64,
        "string" => DType::String,
        "binary" => DType::Binary,
        "timestamp_ns" => DType::TimestampNs,
        _ => return None,
    })
}

mod dtype_serde {
    use super::*;

    pub fn serialize<S: Serializer>(d: &DType, s: S) -> Result<S::Ok, S::Error> {
        let name = dtype_name(d)
            .ok_or_else(|| serde::ser::Error::custom(format!("dtype {d:?} is not supported")))?;
        s.serialize_str(name)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DType, D::Error> {
        let s = String::deserialize(d)?;
        dtype_from_name(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown dtype {s:?}")))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FillRepr {
    Bool(bool),
    Int(i64),
    #[serde(rename = "uint")]
    UInt(u64),
    Float(#[serde(with = "lossless_f64")] f64),
    String(String),
    TimestampNs(i64),
}

mod fill_serde {
    use super::*;

    pub fn serialize<S: Serializer>(f: &Option<FillValue>, s: S) -> Result<S::Ok, S::Error> {
        let repr = f.as_ref().map(|f| match f {
            FillValue::Bool(x) => FillRepr::Bool(*x),
            FillValue::Int(x) => FillRepr::Int(*x),
            FillValue::UInt(x) => FillRepr::UInt(*x),
            FillValue::Float(x) => FillRepr::Float(*x),
            FillValue::String(x) => FillRepr::String(x.clone()),
            FillValue::TimestampNs(x) => FillRepr::TimestampNs(*x),
        });
        repr.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FillValue>, D::Error> {
        Ok(Option::<FillRepr>::deserialize(d)?.map(|r| match r {
            FillRepr::Bool(x) => FillValue::Bool(x),
            FillRepr::Int(x) => FillValue::Int(x),
            FillRepr::UInt(x) => FillValue::UInt(x),
            FillRepr::Float(x) => FillValue::Float(x),
            FillRepr::String(x) => FillValue::String(x),
            FillRepr::TimestampNs(x) => FillValue::TimestampNs(x),
        }))
    }
}

/// Finite floats as numbers; NaN and infinities as the strings `"NaN"`, `"inf"`, `"-inf"`
/// (JSON has no literal for them, and NetCDF fill values are often NaN).
pub(crate) mod lossless_f64 {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub(crate) enum NumOrText {
        Num(f64),
        Text(String),
    }

    impl NumOrText {
        pub(crate) fn value<E: serde::de::Error>(self) -> Result<f64, E> {
            match self {
                NumOrText::Num(x) => Ok(x),
                NumOrText::Text(t) => match t.as_str() {
                    "NaN" => Ok(f64::NAN),
                    "inf" => Ok(f64::INFINITY),
                    "-inf" => Ok(f64::NEG_INFINITY),
                    other => Err(E::custom(format!("not a float: {other:?}"))),
                },
            }
        }
    }

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else if x.is_nan() {
            s.serialize_str("NaN")
        } else if *x > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        NumOrText::deserialize(d)?.value()
    }
}

mod lossless_f64_vec {
    use serde::ser::SerializeSeq;

    use super::*;

    struct Item(f64);
    impl Serialize for Item {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            lossless_f64::serialize(&self.0, s)
        }
    }

    pub fn serialize<S: Serializer>(xs: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(xs.len()))?;
        for x in xs {
            seq.serialize_element(&Item(*x))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<lossless_f64::NumOrText>::deserialize(d)?
            .into_iter()
            .map(|v| v.value())
            .collect()
    }
}

/// Checks a dataset or array name: non-empty, at most 255 bytes, no `/` or `\`, not `.`/`..`,
/// no leading `_` (reserved for the store's own files and SQL metadata tables), no control
/// characters. Array names become directory names, so a valid name can never escape the store.
pub(crate) fn validate_name(kind: &'static str, name: &str) -> crate::Result<()> {
    let reason = if name.is_empty() {
        Some("names must not be empty")
    } else if name.len() > 255 {
        Some("names must be at most 255 bytes")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not names")
    } else if name.contains('/') || name.contains('\\') {
        Some("names must not contain '/' or '\\'")
    } else if name.starts_with('_') {
        Some("a leading '_' is reserved for the store's own files")
    } else if name.chars().any(char::is_control) {
        Some("names must not contain control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(crate::Error::InvalidName {
            kind,
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_the_store_are_rejected() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "_log",
            "a\\b",
            "tab\there",
            "nul\0",
        ] {
            assert!(validate_name("array", bad).is_err(), "{bad:?} accepted");
        }
        for good in ["temperature", "TEMP_ADJUSTED", "sst.anom", "ünïcode", "a b"] {
            assert!(validate_name("array", good).is_ok(), "{good:?} rejected");
        }
    }

    #[test]
    fn non_finite_floats_survive_json() {
        let attrs = vec![
            Attr::Float64(f64::NAN),
            Attr::Float64List(vec![1.5, f64::INFINITY, f64::NEG_INFINITY, 0.1]),
        ];
        let json = serde_json::to_string(&attrs).unwrap();
        let back: Vec<Attr> = serde_json::from_str(&json).unwrap();
        assert!(matches!(back[0], Attr::Float64(x) if x.is_nan()));
        assert_eq!(back[1], attrs[1]);
    }

    #[test]
    fn dtype_names_round_trip() {
        for d in [
            DType::Bool,
            DType::UInt64,
            DType::Float32,
            DType::TimestampNs,
            DType::Binary,
        ] {
            assert_eq!(dtype_from_name(dtype_name(&d).unwrap()), Some(d));
        }
    }
}
