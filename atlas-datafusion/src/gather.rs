//! One Arrow column from the encoded values of many datasets' regions.
//!
//! The store hands out a dataset's values as array-format encodes them (little-endian, one
//! after another, row-major) straight from its decoded blocks
//! ([`atlas_store::Atlas::read_encoded`]). A [`Column`] copies the part of each region the scan
//! reads into one Arrow buffer, so a batch of a thousand sensors is one buffer built by a
//! thousand `memcpy`s, with NULLs where a value equals its dataset's fill value. Regions read
//! another way (several chunks, pending writes, another type) join as Arrow arrays.

use std::ops::Range;

use atlas_store::{DType, FillValue};
use datafusion::arrow::array::{ArrayData, ArrayRef, make_array, new_null_array};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer, MutableBuffer, NullBuffer};
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;

/// Bytes per value of the dtypes served encoded, when their Arrow type is `column` (no cast
/// needed); `None` otherwise.
pub(crate) fn encoded_width(dtype: &DType, column: &DataType) -> Option<usize> {
    crate::layout::arrow_type(dtype)
        .filter(|t| t == column && t.is_primitive())
        .and_then(|t| t.primitive_width())
}

/// Copies `region` (one range per axis; empty for a 0-d array) of an array of `shape` whose
/// encoded values are `src` into `out`, row-major.
pub(crate) fn copy_region(
    src: &[u8],
    elem: usize,
    shape: &[usize],
    region: &[Range<usize>],
    out: &mut MutableBuffer,
) {
    let whole = region.len() == shape.len()
        && region
            .iter()
            .zip(shape)
            .all(|(r, &n)| r.start == 0 && r.end == n);
    if whole || shape.is_empty() {
        out.extend_from_slice(src);
        return;
    }
    let nd = shape.len();
    // Row-major strides in elements.
    let mut strides = vec![1usize; nd];
    for a in (0..nd - 1).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    if region.iter().any(|r| r.is_empty()) {
        return;
    }
    let run = region[nd - 1].len() * elem;
    let mut index: Vec<usize> = region.iter().map(|r| r.start).collect();
    loop {
        let at: usize = index
            .iter()
            .zip(&strides)
            .map(|(i, s)| i * s)
            .sum::<usize>()
            * elem;
        out.extend_from_slice(&src[at..at + run]);
        // Next row: odometer over every axis but the last.
        let mut a = nd - 1;
        loop {
            if a == 0 {
                return;
            }
            a -= 1;
            index[a] += 1;
            if index[a] < region[a].end {
                break;
            }
            index[a] = region[a].start;
        }
    }
}

/// Whether each of the encoded values `bytes` of `dtype` equals `fill` (NaN equals a NaN
/// fill): what reads as NULL. `None` when none does.
fn fill_hits(bytes: &[u8], dtype: &DType, fill: &FillValue) -> Option<Vec<bool>> {
    macro_rules! ints {
        ($t:ty) => {{
            let f: $t = match fill {
                FillValue::Int(v) => *v as $t,
                FillValue::UInt(v) => *v as $t,
                FillValue::TimestampNs(v) => *v as $t,
                _ => return None,
            };
            let w = std::mem::size_of::<$t>();
            let hit = |c: &[u8]| <$t>::from_le_bytes(c.try_into().unwrap_or_default()) == f;
            if !bytes.chunks_exact(w).any(hit) {
                return None;
            }
            Some(bytes.chunks_exact(w).map(hit).collect())
        }};
    }
    macro_rules! floats {
        ($t:ty) => {{
            let f = match fill {
                FillValue::Float(v) => *v as $t,
                _ => return None,
            };
            let w = std::mem::size_of::<$t>();
            let hit = |c: &[u8]| {
                let v = <$t>::from_le_bytes(c.try_into().unwrap_or_default());
                if f.is_nan() { v.is_nan() } else { v == f }
            };
            if !bytes.chunks_exact(w).any(hit) {
                return None;
            }
            Some(bytes.chunks_exact(w).map(hit).collect())
        }};
    }
    match dtype {
        DType::Int8 => ints!(i8),
        DType::Int16 => ints!(i16),
        DType::Int32 => ints!(i32),
        DType::Int64 | DType::TimestampNs => ints!(i64),
        DType::UInt8 => ints!(u8),
        DType::UInt16 => ints!(u16),
        DType::UInt32 => ints!(u32),
        DType::UInt64 => ints!(u64),
        DType::Float32 => floats!(f32),
        DType::Float64 => floats!(f64),
        _ => None,
    }
}

/// A column being assembled from pieces of many datasets.
pub(crate) struct Column {
    ty: DataType,
    /// Encoded values since the last finished piece.
    buf: MutableBuffer,
    /// Values in `buf`.
    len: usize,
    /// Validity of `buf`'s values, once one of them is NULL.
    valid: Option<Vec<bool>>,
    pieces: Vec<ArrayRef>,
}

impl Column {
    /// An empty column of type `ty`, for about `rows` rows.
    pub(crate) fn new(ty: &DataType, rows: usize, elem: usize) -> Column {
        Column {
            ty: ty.clone(),
            buf: MutableBuffer::with_capacity(rows * elem),
            len: 0,
            valid: None,
            pieces: Vec::new(),
        }
    }

    /// Appends `region` of an array of `shape` and `dtype` whose encoded values are `src`,
    /// NULL where a value equals `fill`.
    pub(crate) fn push_encoded(
        &mut self,
        src: &[u8],
        dtype: &DType,
        elem: usize,
        shape: &[usize],
        region: &[Range<usize>],
        fill: Option<&FillValue>,
    ) {
        let from = self.buf.len();
        copy_region(src, elem, shape, region, &mut self.buf);
        let added = (self.buf.len() - from) / elem;
        let hits = fill.and_then(|f| fill_hits(&self.buf.as_slice()[from..], dtype, f));
        let before = self.len;
        match hits {
            Some(h) => self
                .valid
                .get_or_insert_with(|| vec![true; before])
                .extend(h.iter().map(|&hit| !hit)),
            None => {
                if let Some(v) = &mut self.valid {
                    v.extend(std::iter::repeat_n(true, added));
                }
            }
        }
        self.len += added;
    }

    /// Appends `n` NULLs.
    pub(crate) fn push_nulls(&mut self, n: usize) -> Result<()> {
        self.push_array(new_null_array(&self.ty, n))
    }

    /// Appends an array of the column's type.
    pub(crate) fn push_array(&mut self, a: ArrayRef) -> Result<()> {
        self.seal()?;
        self.pieces.push(a);
        Ok(())
    }

    /// Turns the values in `buf` into a piece.
    fn seal(&mut self) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let buf = std::mem::replace(&mut self.buf, MutableBuffer::new(0));
        let nulls = self
            .valid
            .take()
            .map(|v| NullBuffer::new(BooleanBuffer::from(v)));
        let data = ArrayData::builder(self.ty.clone())
            .len(self.len)
            .add_buffer(Buffer::from(buf))
            .nulls(nulls)
            .build()?;
        self.pieces.push(make_array(data));
        self.len = 0;
        Ok(())
    }

    /// The whole column.
    pub(crate) fn finish(mut self) -> Result<ArrayRef> {
        self.seal()?;
        match self.pieces.len() {
            0 => Ok(new_null_array(&self.ty, 0)),
            1 => Ok(self
                .pieces
                .pop()
                .unwrap_or_else(|| new_null_array(&self.ty, 0))),
            _ => {
                let parts: Vec<&dyn datafusion::arrow::array::Array> =
                    self.pieces.iter().map(|a| a.as_ref()).collect();
                Ok(concat(&parts)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_region_takes_the_rows_of_a_box_in_row_major_order() {
        // A 3 x 4 array of u16 values 0..12.
        let src: Vec<u8> = (0u16..12).flat_map(|v| v.to_le_bytes()).collect();
        let mut out = MutableBuffer::new(0);
        copy_region(&src, 2, &[3, 4], &[1..3, 1..3], &mut out);
        let got: Vec<u16> = out
            .as_slice()
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(got, vec![5, 6, 9, 10]);
        let mut whole = MutableBuffer::new(0);
        copy_region(&src, 2, &[3, 4], &[0..3, 0..4], &mut whole);
        assert_eq!(whole.as_slice(), &src[..]);
        let mut empty = MutableBuffer::new(0);
        copy_region(&src, 2, &[3, 4], &[1..1, 0..4], &mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn a_column_of_encoded_pieces_is_null_exactly_where_a_value_is_its_datasets_fill() {
        let a: Vec<u8> = [1.0f32, -9.0, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let b: Vec<u8> = [f32::NAN, 5.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut col = Column::new(&DataType::Float32, 5, 4);
        col.push_encoded(
            &a,
            &DType::Float32,
            4,
            &[3],
            std::slice::from_ref(&(0..3)),
            Some(&FillValue::Float(-9.0)),
        );
        col.push_encoded(
            &b,
            &DType::Float32,
            4,
            &[2],
            std::slice::from_ref(&(0..2)),
            Some(&FillValue::Float(f64::NAN)),
        );
        col.push_nulls(1).unwrap();
        let out = col.finish().unwrap();
        let f = out
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Float32Array>()
            .unwrap();
        let seen: Vec<Option<f32>> = f.iter().collect();
        assert_eq!(
            seen,
            vec![Some(1.0), None, Some(3.0), None, Some(5.0), None]
        );
    }
}
