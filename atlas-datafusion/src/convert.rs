//! Store values to Arrow: typed reads, fill values to NULLs, statistics to scalars.

use std::sync::Arc;

use atlas_store::{ArrayElement, Bool, DType, DatasetView, FillValue, StatValue, TimestampNs};
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, PrimitiveArray, StringArray,
    TimestampNanosecondArray,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::common::ScalarValue;

use crate::error::{Error, Result};

/// Nulls where `is_fill` holds, or `None` when nothing matches (no null buffer at all).
fn fill_nulls<T>(values: &[T], is_fill: impl Fn(&T) -> bool) -> Option<NullBuffer> {
    if !values.iter().any(&is_fill) {
        return None;
    }
    Some(NullBuffer::new(BooleanBuffer::from_iter(
        values.iter().map(|v| !is_fill(v)),
    )))
}

/// An element type the SQL layer can turn into an Arrow array.
trait ToArrow: ArrayElement + Clone {
    fn to_arrow(values: Vec<Self>, fill: Option<&FillValue>) -> ArrayRef;
}

fn primitive<A: ArrowPrimitiveType>(
    values: Vec<A::Native>,
    is_fill: Option<impl Fn(&A::Native) -> bool>,
) -> ArrayRef {
    let nulls = is_fill.and_then(|f| fill_nulls(&values, f));
    Arc::new(PrimitiveArray::<A>::new(values.into(), nulls))
}

macro_rules! int_to_arrow {
    ($t:ty, $a:ty) => {
        impl ToArrow for $t {
            fn to_arrow(values: Vec<Self>, fill: Option<&FillValue>) -> ArrayRef {
                let f: Option<$t> = match fill {
                    Some(FillValue::Int(v)) => Some(*v as $t),
                    Some(FillValue::UInt(v)) => Some(*v as $t),
                    _ => None,
                };
                primitive::<$a>(values, f.map(|f| move |v: &$t| *v == f))
            }
        }
    };
}

int_to_arrow!(i8, Int8Type);
int_to_arrow!(i16, Int16Type);
int_to_arrow!(i32, Int32Type);
int_to_arrow!(i64, Int64Type);
int_to_arrow!(u8, UInt8Type);
int_to_arrow!(u16, UInt16Type);
int_to_arrow!(u32, UInt32Type);
int_to_arrow!(u64, UInt64Type);

macro_rules! float_to_arrow {
    ($t:ty, $a:ty) => {
        impl ToArrow for $t {
            fn to_arrow(values: Vec<Self>, fill: Option<&FillValue>) -> ArrayRef {
                let f: Option<$t> = match fill {
                    Some(FillValue::Float(v)) => Some(*v as $t),
                    _ => None,
                };
                primitive::<$a>(
                    values,
                    f.map(|f| move |v: &$t| if f.is_nan() { v.is_nan() } else { *v == f }),
                )
            }
        }
    };
}

float_to_arrow!(f32, Float32Type);
float_to_arrow!(f64, Float64Type);

impl ToArrow for TimestampNs {
    fn to_arrow(values: Vec<Self>, fill: Option<&FillValue>) -> ArrayRef {
        let f = match fill {
            Some(FillValue::TimestampNs(v) | FillValue::Int(v)) => Some(*v),
            _ => None,
        };
        let raw: Vec<i64> = values.into_iter().map(|t| t.0).collect();
        let nulls = f.and_then(|f| fill_nulls(&raw, |v| *v == f));
        Arc::new(TimestampNanosecondArray::new(raw.into(), nulls))
    }
}

impl ToArrow for Bool {
    fn to_arrow(values: Vec<Self>, fill: Option<&FillValue>) -> ArrayRef {
        let f = match fill {
            Some(FillValue::Bool(b)) => Some(*b),
            _ => None,
        };
        let nulls = f.and_then(|f| fill_nulls(&values, |v| v.0 == f));
        let bits = BooleanBuffer::from_iter(values.iter().map(|v| v.0));
        Arc::new(BooleanArray::new(bits, nulls))
    }
}

impl ToArrow for String {
    fn to_arrow(values: Vec<Self>, fill: Option<&FillValue>) -> ArrayRef {
        let f = match fill {
            Some(FillValue::String(s)) => Some(s.as_str()),
            _ => None,
        };
        Arc::new(StringArray::from_iter(
            values
                .iter()
                .map(|v| (Some(v.as_str()) != f).then_some(v.as_str())),
        ))
    }
}

impl ToArrow for Vec<u8> {
    fn to_arrow(values: Vec<Self>, fill: Option<&FillValue>) -> ArrayRef {
        let f = match fill {
            Some(FillValue::String(s)) => Some(s.as_bytes()),
            _ => None,
        };
        Arc::new(BinaryArray::from_iter(
            values
                .iter()
                .map(|v| (Some(v.as_slice()) != f).then_some(v.as_slice())),
        ))
    }
}

async fn read_typed<T: ToArrow>(
    view: &DatasetView,
    array: &str,
    start: Vec<usize>,
    shape: Vec<usize>,
    fill: Option<&FillValue>,
) -> atlas_store::Result<ArrayRef> {
    let arr = view
        .read_array::<T>(array, start, shape)
        .await?
        .ok_or_else(|| atlas_store::Error::ArrayNotFound {
            dataset: view.name().to_string(),
            array: array.to_string(),
            known: view.list_arrays().join(", "),
        })?;
    // The region comes back freshly assembled and uniquely held: take its buffer as it is
    // rather than copying it (the Arrow array then wraps that same allocation).
    let n = arr.len();
    let owned = arr.into_owned();
    let values: Vec<T> = if owned.is_standard_layout() {
        // Contiguous from the offset on.
        match owned.into_raw_vec_and_offset() {
            (v, Some(0) | None) if v.len() == n => v,
            (v, off) => {
                let o = off.unwrap_or(0);
                v.get(o..o + n).map(<[T]>::to_vec).ok_or_else(|| {
                    atlas_store::Error::Internal(format!(
                        "a region of {n} values came back in a buffer of {}",
                        v.len()
                    ))
                })?
            }
        }
    } else {
        owned.iter().cloned().collect()
    };
    Ok(T::to_arrow(values, fill))
}

/// Reads the region `start`/`shape` of `array` in row-major order as an Arrow array of type
/// `target`, with NULL where a cell equals the fill value.
pub async fn read_region(
    view: &DatasetView,
    array: &str,
    dtype: &DType,
    start: Vec<usize>,
    shape: Vec<usize>,
    fill: Option<&FillValue>,
    target: &DataType,
) -> Result<ArrayRef, ReadError> {
    let native = match dtype {
        DType::Bool => read_typed::<Bool>(view, array, start, shape, fill).await,
        DType::Int8 => read_typed::<i8>(view, array, start, shape, fill).await,
        DType::Int16 => read_typed::<i16>(view, array, start, shape, fill).await,
        DType::Int32 => read_typed::<i32>(view, array, start, shape, fill).await,
        DType::Int64 => read_typed::<i64>(view, array, start, shape, fill).await,
        DType::UInt8 => read_typed::<u8>(view, array, start, shape, fill).await,
        DType::UInt16 => read_typed::<u16>(view, array, start, shape, fill).await,
        DType::UInt32 => read_typed::<u32>(view, array, start, shape, fill).await,
        DType::UInt64 => read_typed::<u64>(view, array, start, shape, fill).await,
        DType::Float32 => read_typed::<f32>(view, array, start, shape, fill).await,
        DType::Float64 => read_typed::<f64>(view, array, start, shape, fill).await,
        DType::String => read_typed::<String>(view, array, start, shape, fill).await,
        DType::Binary => read_typed::<Vec<u8>>(view, array, start, shape, fill).await,
        DType::TimestampNs => read_typed::<TimestampNs>(view, array, start, shape, fill).await,
        other => {
            return Err(ReadError::Sql(Error::UnsupportedType {
                variable: array.to_string(),
                dataset: view.name().to_string(),
                dtype: format!("{other:?}"),
            }));
        }
    }
    .map_err(ReadError::Store)?;
    if native.data_type() == target {
        Ok(native)
    } else {
        Ok(cast(&native, target).map_err(|e| ReadError::Sql(e.into()))?)
    }
}

/// Why a read failed: the store, or the mapping to SQL.
#[derive(Debug)]
pub enum ReadError {
    /// The store failed.
    Store(atlas_store::Error),
    /// The SQL mapping failed.
    Sql(Error),
}

/// Bytes one element of `dtype` takes once decoded (a guess for strings).
pub fn element_bytes(dtype: &DType) -> usize {
    match dtype {
        DType::Bool | DType::Int8 | DType::UInt8 => 1,
        DType::Int16 | DType::UInt16 => 2,
        DType::Int32 | DType::UInt32 | DType::Float32 => 4,
        DType::Int64 | DType::UInt64 | DType::Float64 | DType::TimestampNs => 8,
        _ => 24,
    }
}

/// A statistic of an array of `dtype` as a scalar of the column's type `target`.
pub fn stat_scalar(v: &StatValue, dtype: &DType, target: &DataType) -> Option<ScalarValue> {
    let native = match (v, dtype) {
        (StatValue::UInt(b), DType::Bool) => ScalarValue::Boolean(Some(*b != 0)),
        (StatValue::Int(i), _) => ScalarValue::Int64(Some(*i)),
        (StatValue::UInt(u), _) => ScalarValue::UInt64(Some(*u)),
        (StatValue::Float(f), _) => ScalarValue::Float64(Some(*f)),
        (StatValue::Bytes(b), DType::String) => {
            ScalarValue::Utf8(Some(String::from_utf8(b.clone()).ok()?))
        }
        (StatValue::Bytes(b), _) => ScalarValue::Binary(Some(b.clone())),
        (StatValue::TimestampNs(t), _) => ScalarValue::TimestampNanosecond(Some(*t), None),
    };
    if &native.data_type() == target {
        return Some(native);
    }
    // The common narrowings, without arrow's one-element-array cast (planning runs this twice
    // per dataset and variable). Statistics of an array fit its type; anything else casts.
    macro_rules! narrow {
        ($v:expr, $t:ty, $variant:ident) => {
            <$t>::try_from(*$v)
                .ok()
                .map(|x| ScalarValue::$variant(Some(x)))
        };
    }
    let narrowed = match (&native, target) {
        (ScalarValue::Int64(Some(i)), DataType::Timestamp(TimeUnit::Nanosecond, None)) => {
            Some(ScalarValue::TimestampNanosecond(Some(*i), None))
        }
        (ScalarValue::Float64(Some(f)), DataType::Float32) if (*f as f32) as f64 == *f => {
            Some(ScalarValue::Float32(Some(*f as f32)))
        }
        (ScalarValue::Int64(Some(i)), DataType::Int32) => narrow!(i, i32, Int32),
        (ScalarValue::Int64(Some(i)), DataType::Int16) => narrow!(i, i16, Int16),
        (ScalarValue::Int64(Some(i)), DataType::Int8) => narrow!(i, i8, Int8),
        (ScalarValue::UInt64(Some(u)), DataType::UInt32) => narrow!(u, u32, UInt32),
        (ScalarValue::UInt64(Some(u)), DataType::UInt16) => narrow!(u, u16, UInt16),
        (ScalarValue::UInt64(Some(u)), DataType::UInt8) => narrow!(u, u8, UInt8),
        _ => None,
    };
    narrowed.or_else(|| native.cast_to(target).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowed_statistics_equal_what_arrows_cast_gives() {
        let cases: Vec<(StatValue, DType, DataType)> = vec![
            (StatValue::Float(1.5), DType::Float32, DataType::Float32),
            (StatValue::Float(0.1), DType::Float32, DataType::Float32),
            (StatValue::Float(-3.4e38), DType::Float32, DataType::Float32),
            (
                StatValue::Float(f64::NAN),
                DType::Float32,
                DataType::Float32,
            ),
            (StatValue::Int(-7), DType::Int32, DataType::Int32),
            (StatValue::Int(i64::MAX), DType::Int64, DataType::Int32),
            (StatValue::Int(-129), DType::Int16, DataType::Int8),
            (StatValue::Int(300), DType::Int16, DataType::Int16),
            (StatValue::UInt(70_000), DType::UInt32, DataType::UInt16),
            (StatValue::UInt(255), DType::UInt8, DataType::UInt8),
            (StatValue::UInt(9), DType::UInt32, DataType::UInt32),
            (
                StatValue::Int(5),
                DType::Int64,
                DataType::Timestamp(TimeUnit::Nanosecond, None),
            ),
        ];
        for (v, dtype, target) in cases {
            let native = match v {
                StatValue::Int(i) => ScalarValue::Int64(Some(i)),
                StatValue::UInt(u) => ScalarValue::UInt64(Some(u)),
                StatValue::Float(f) => ScalarValue::Float64(Some(f)),
                _ => unreachable!(),
            };
            let by_arrow = native.cast_to(&target).ok();
            let ours = stat_scalar(&v, &dtype, &target);
            // NaN is not equal to itself: compare the text.
            assert_eq!(
                format!("{ours:?}"),
                format!("{by_arrow:?}"),
                "{v:?} as {target}"
            );
        }
    }
}
