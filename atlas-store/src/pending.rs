//! Writes not yet flushed: each `write_array` call is kept as a typed patch over the array's
//! current bytes (a segment, or nothing), so reads see them before `flush`.

use std::any::Any;
use std::sync::Arc;

use array_format::{ArrayElement, ArrayWriter};
use ndarray::{ArrayD, ArrayViewD, Slice};

use crate::schema::ArraySchema;

/// One pending write, type-erased so arrays of every dtype sit in one map.
pub(crate) trait Patch: Any + Send + Sync {
    /// Origin of the written region.
    fn start(&self) -> &[usize];
    /// Extent of the written region.
    fn shape(&self) -> &[usize];
    /// Memory held by this patch, counted against the pending budget.
    fn nbytes(&self) -> usize;
    /// Defines the array in `writer` under `name`, with this patch's element type.
    fn define_in(
        &self,
        writer: &mut ArrayWriter,
        name: &str,
        schema: &ArraySchema,
    ) -> array_format::Result<()>;
    /// Writes the patch into `writer`'s array `name`.
    fn write_to(&self, writer: &mut ArrayWriter, name: &str) -> array_format::Result<()>;
}

pub(crate) struct TypedPatch<T> {
    start: Vec<usize>,
    data: ArrayD<T>,
    nbytes: usize,
}

impl<T: ArrayElement> TypedPatch<T> {
    pub(crate) fn new(start: Vec<usize>, data: ArrayViewD<'_, T>) -> Self {
        let data = data.to_owned();
        let nbytes = match T::DTYPE.element_size() {
            Some(size) => size * data.len(),
            // Variable-length values: count their encoded size.
            None => data
                .as_slice()
                .map(|s| T::encode_chunk(s).len())
                .unwrap_or(0)
                .max(data.len() * std::mem::size_of::<T>()),
        };
        TypedPatch {
            start,
            data,
            nbytes,
        }
    }
}

impl<T: ArrayElement> Patch for TypedPatch<T> {
    fn start(&self) -> &[usize] {
        &self.start
    }

    fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    fn nbytes(&self) -> usize {
        self.nbytes
    }

    fn define_in(
        &self,
        writer: &mut ArrayWriter,
        name: &str,
        schema: &ArraySchema,
    ) -> array_format::Result<()> {
        writer.define_array::<T>(
            name,
            schema.dims.clone(),
            schema.shape.clone(),
            Some(schema.chunk_shape.clone()),
            schema.fill_value.clone(),
        )
    }

    fn write_to(&self, writer: &mut ArrayWriter, name: &str) -> array_format::Result<()> {
        writer.write_array(name, self.start.clone(), self.data.view())
    }
}

/// Whether `patch` overwrites every cell of an array of `shape`.
pub(crate) fn covers_all(patch: &dyn Patch, shape: &[usize]) -> bool {
    patch.start().iter().all(|&s| s == 0) && patch.shape() == shape
}

/// The writes that still matter for an array of `shape`: those from the last whole-array
/// overwrite on, and whether the bytes under them (the base segment) still matter.
pub(crate) fn live<'a>(
    patches: &'a [Arc<dyn Patch>],
    shape: &[usize],
) -> (&'a [Arc<dyn Patch>], bool) {
    match patches.iter().rposition(|p| covers_all(&**p, shape)) {
        Some(from) => (&patches[from..], false),
        None => (patches, true),
    }
}

/// Copies the part of `patch` that overlaps `out` (whose origin is `out_start`) into `out`.
/// Returns `false` when `patch` is not of element type `T` (a bug: dtypes are checked before).
pub(crate) fn apply<T: ArrayElement>(
    out: &mut ArrayD<T>,
    out_start: &[usize],
    patch: &dyn Patch,
) -> bool {
    let Some(typed) = (patch as &dyn Any).downcast_ref::<TypedPatch<T>>() else {
        return false;
    };
    let ndim = out.ndim();
    let mut out_ranges = Vec::with_capacity(ndim);
    let mut src_ranges = Vec::with_capacity(ndim);
    let axes = out_start
        .iter()
        .zip(out.shape())
        .zip(typed.start.iter().zip(typed.data.shape()));
    for ((&o, &on), (&p, &pn)) in axes {
        let (lo, hi) = (o.max(p), (o + on).min(p + pn));
        if lo >= hi {
            return true;
        }
        out_ranges.push((lo - o, hi - o));
        src_ranges.push((lo - p, hi - p));
    }
    let slice = |r: &[(usize, usize)], ax: usize| {
        let (lo, hi) = r[ax];
        Slice::from(lo as isize..hi as isize)
    };
    let src = typed
        .data
        .slice_each_axis(|d| slice(&src_ranges, d.axis.index()));
    out.slice_each_axis_mut(|d| slice(&out_ranges, d.axis.index()))
        .assign(&src);
    true
}

#[cfg(test)]
mod tests {
    use ndarray::{Array, IxDyn};

    use super::*;

    #[test]
    fn overlapping_patch_lands_in_the_read_window() {
        let data = Array::from_shape_vec(IxDyn(&[2, 2]), vec![1, 2, 3, 4]).unwrap();
        let patch = TypedPatch::new(vec![1, 1], data.view());
        // Read window rows 0..3, cols 2..4 of a larger array.
        let mut out = ArrayD::<i32>::zeros(IxDyn(&[3, 2]));
        assert!(apply(&mut out, &[0, 2], &patch));
        assert_eq!(out.into_raw_vec_and_offset().0, vec![0, 0, 2, 0, 4, 0]);
    }

    #[test]
    fn patch_of_another_type_is_refused() {
        let data = Array::from_elem(IxDyn(&[2]), 1.0f32);
        let patch = TypedPatch::new(vec![0], data.view());
        let mut out = ArrayD::<f64>::zeros(IxDyn(&[2]));
        assert!(!apply(&mut out, &[0], &patch));
    }

    #[test]
    fn scalar_patch_applies() {
        let data = Array::from_elem(IxDyn(&[]), 7u8);
        let patch = TypedPatch::new(vec![], data.view());
        let mut out = ArrayD::<u8>::zeros(IxDyn(&[]));
        assert!(apply(&mut out, &[], &patch));
        assert_eq!(out[IxDyn(&[])], 7);
        assert!(covers_all(&patch, &[]));
    }
}
