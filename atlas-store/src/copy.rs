//! Copying a store's datasets into another store, then checking the copy: what `atlas-sql
//! migrate` runs to turn an atlas-rust store into an atlas-sql one.
//!
//! Arrays are copied in tiles whose edges fall on the source's chunk edges and whose size is
//! bounded ([`COPY_TILE_ELEMENTS`]), so memory stays bounded by a tile, the source's block
//! cache and the destination's pending budget (past which written data spills to segment
//! files), whatever the size of the store. The destination commits once, at the end: a copy
//! that fails leaves it as it was. The check then reads every array of the destination back
//! through a fresh handle (from its files, not from this process's memory) and compares it
//! bit for bit with the source, with every definition and attribute.

use std::sync::Arc;

use array_format::ArrayElement;

use futures::StreamExt;
use object_store::ObjectStoreExt;

use crate::atlas::{Atlas, lock};
use crate::config::StoreConfig;
use crate::dataset::DatasetView;
use crate::error::{Error, Result};
use crate::location::{is_url, is_vacant, is_vacant_dir, resolve};
use crate::schema::ArraySchema;

/// Cells read and written at a time when copying an array (at least one chunk, whatever its
/// size). 4 Mi cells are 16 MiB of `f32`.
pub const COPY_TILE_ELEMENTS: usize = 1 << 22;

/// What a copy is doing, passed to the progress callback of [`Atlas::copy_into`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyPhase {
    /// Reading the source and writing the destination.
    Copying,
    /// Committing the destination.
    Committing,
    /// Reading the destination back and comparing it with the source.
    Verifying,
}

/// Progress of [`Atlas::copy_into`]: where it is, in datasets and in cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyProgress {
    /// The phase.
    pub phase: CopyPhase,
    /// Datasets done in this phase.
    pub datasets_done: usize,
    /// Datasets to copy.
    pub datasets_total: usize,
    /// Cells done in this phase.
    pub cells_done: u64,
    /// Cells of all arrays to copy.
    pub cells_total: u64,
}

/// What [`Atlas::copy_into`] copied and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyReport {
    /// Datasets copied.
    pub datasets: usize,
    /// Arrays copied (definitions, attributes and values).
    pub arrays: usize,
    /// Arrays defined in the source but never written, copied as definitions only (they read
    /// as their fill value, as in the source).
    pub arrays_unwritten: usize,
    /// Cells copied.
    pub cells: u64,
    /// Cells read back from the destination and found equal to the source's.
    pub cells_verified: u64,
    /// The destination's generation after the commit.
    pub generation: u64,
    /// The source's format when it is not an atlas-sql store, as a phrase ("an atlas-rust
    /// 0.17 collection (data.atlas)").
    pub source_format: Option<&'static str>,
}

/// The tiles of an array: `(start, shape)` pairs covering it, each a whole number of chunks
/// along every axis (or reaching the array's end), of at most `limit` cells unless one chunk
/// is larger. In row-major order; none for an array with an empty axis; one (empty start and
/// shape) for a 0-d array.
pub(crate) fn tiles(
    shape: &[usize],
    chunk: &[usize],
    limit: usize,
) -> Vec<(Vec<usize>, Vec<usize>)> {
    if shape.contains(&0) {
        return Vec::new();
    }
    let mut tile: Vec<usize> = shape.to_vec();
    // Shrink from the outermost axis in, to chunk multiples, until the tile fits.
    for axis in 0..shape.len() {
        let cells: usize = tile.iter().product();
        if cells <= limit {
            break;
        }
        let others = cells / tile[axis];
        let step = chunk.get(axis).copied().unwrap_or(1).max(1);
        let fits = (limit / others.max(1)) / step * step;
        tile[axis] = fits.max(step).min(shape[axis]);
    }
    let counts: Vec<usize> = shape
        .iter()
        .zip(&tile)
        .map(|(&n, &t)| n.div_ceil(t))
        .collect();
    let total: usize = counts.iter().product();
    let mut out = Vec::with_capacity(total);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..total {
        let start: Vec<usize> = index.iter().zip(&tile).map(|(&i, &t)| i * t).collect();
        let extent: Vec<usize> = start
            .iter()
            .zip(shape.iter().zip(&tile))
            .map(|(&s, (&n, &t))| t.min(n - s))
            .collect();
        out.push((start, extent));
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < counts[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// Runs `$body` with `$t` bound to the element type of `$dtype`.
macro_rules! by_dtype {
    ($dtype:expr, $dataset:expr, $array:expr, $t:ident => $body:expr) => {
        match &$dtype {
            $crate::DType::Bool => {
                type $t = $crate::Bool;
                $body
            }
            $crate::DType::Int8 => {
                type $t = i8;
                $body
            }
            $crate::DType::Int16 => {
                type $t = i16;
                $body
            }
            $crate::DType::Int32 => {
                type $t = i32;
                $body
            }
            $crate::DType::Int64 => {
                type $t = i64;
                $body
            }
            $crate::DType::UInt8 => {
                type $t = u8;
                $body
            }
            $crate::DType::UInt16 => {
                type $t = u16;
                $body
            }
            $crate::DType::UInt32 => {
                type $t = u32;
                $body
            }
            $crate::DType::UInt64 => {
                type $t = u64;
                $body
            }
            $crate::DType::Float32 => {
                type $t = f32;
                $body
            }
            $crate::DType::Float64 => {
                type $t = f64;
                $body
            }
            $crate::DType::String => {
                type $t = String;
                $body
            }
            $crate::DType::Binary => {
                type $t = Vec<u8>;
                $body
            }
            $crate::DType::TimestampNs => {
                type $t = $crate::TimestampNs;
                $body
            }
            other => Err($crate::error::Error::invalid(
                $dataset,
                $array,
                format!("dtype {other:?} cannot be copied"),
            )),
        }
    };
}
pub(crate) use by_dtype;

/// The bytes of a region as array-format encodes them: equal bytes are equal values, NaNs
/// and signed zeros included.
fn encoded<T: ArrayElement>(region: &ndarray::ArcArray<T, ndarray::IxDyn>) -> Vec<u8> {
    match region.as_slice() {
        Some(s) => T::encode_chunk(s),
        None => T::encode_chunk(&region.iter().cloned().collect::<Vec<T>>()),
    }
}

/// Equality of definitions and attributes by their debug form, in which NaN equals NaN (a NaN
/// fill value or `_FillValue` attribute is common, and `==` would call it changed).
fn same<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

async fn read_tile<T: ArrayElement>(
    ds: &DatasetView,
    name: &str,
    start: &[usize],
    shape: &[usize],
) -> Result<ndarray::ArcArray<T, ndarray::IxDyn>> {
    ds.read_array::<T>(name, start.to_vec(), shape.to_vec())
        .await?
        .ok_or_else(|| Error::ArrayNotFound {
            dataset: ds.name().to_string(),
            array: name.to_string(),
            known: ds.list_arrays().join(", "),
        })
}

/// Defines array `name` in `to` as `schema` says, then, when `values`, copies its values
/// from `from` tile by tile, calling `done` with the cells of each tile.
async fn copy_array<T: ArrayElement>(
    from: &DatasetView,
    to: &DatasetView,
    name: &str,
    schema: &ArraySchema,
    values: bool,
    mut done: impl FnMut(u64),
) -> Result<()> {
    to.define_array::<T>(
        name,
        schema.dims.clone(),
        schema.shape.clone(),
        Some(schema.chunk_shape.clone()),
        schema.fill_value.clone(),
    )
    .await?;
    if !values {
        return Ok(());
    }
    for (start, shape) in tiles(&schema.shape, &schema.chunk_shape, COPY_TILE_ELEMENTS) {
        let region = read_tile::<T>(from, name, &start, &shape).await?;
        to.write_array(name, start, region.view()).await?;
        done(shape.iter().product::<usize>() as u64);
    }
    Ok(())
}

async fn compare_array<T: ArrayElement>(
    from: &DatasetView,
    to: &DatasetView,
    name: &str,
    schema: &ArraySchema,
    mut done: impl FnMut(u64),
) -> Result<()> {
    for (start, shape) in tiles(&schema.shape, &schema.chunk_shape, COPY_TILE_ELEMENTS) {
        let a = read_tile::<T>(from, name, &start, &shape).await?;
        let b = read_tile::<T>(to, name, &start, &shape).await?;
        if encoded(&a) != encoded(&b) {
            return Err(Error::CopyMismatch {
                dataset: from.name().to_string(),
                array: name.to_string(),
                reason: format!("the values at {start:?} (shape {shape:?}) differ"),
            });
        }
        done(shape.iter().product::<usize>() as u64);
    }
    Ok(())
}

impl Atlas {
    /// Cells of every array of every dataset.
    fn cell_count(&self) -> u64 {
        let st = lock(&self.inner.state);
        st.working
            .iter()
            .flat_map(|(_, d)| d.arrays().map(|a| a.schema().element_count()))
            .sum()
    }

    /// Copies every dataset of this store into `dst` (definitions, chunk shapes, fill values,
    /// attributes and values), commits `dst` once, then reads the copy back through a fresh
    /// handle and checks it equals this store bit for bit. `progress` is called after each
    /// tile of cells.
    ///
    /// Memory stays bounded (see the module notes) and this store is only read, so it may be
    /// read-only (an atlas-rust store). Fails before writing anything when `dst` is read-only
    /// or already has a dataset of one of the names; on any error `dst` keeps its last
    /// commit (the segments written so far stay as unreferenced files that `vacuum`
    /// removes), and [`Error::CopyMismatch`] names the first array whose copy differs.
    pub async fn copy_into(
        &self,
        dst: &mut Atlas,
        mut progress: impl FnMut(&CopyProgress),
    ) -> Result<CopyReport> {
        dst.inner.writable("copy datasets into it")?;
        let names = self.list_datasets();
        if let Some(taken) = names.iter().find(|n| dst.dataset_exists(n)) {
            return Err(Error::DatasetExists {
                name: taken.clone(),
            });
        }
        let cells_total = self.cell_count();
        let mut at = CopyProgress {
            phase: CopyPhase::Copying,
            datasets_done: 0,
            datasets_total: names.len(),
            cells_done: 0,
            cells_total,
        };
        progress(&at);
        let mut report = CopyReport {
            source_format: self.upstream_format(),
            ..CopyReport::default()
        };
        for name in &names {
            let from = self.open_dataset(name).await?;
            let to = dst.create_dataset(name).await?;
            for (key, value) in from.attributes() {
                to.set_attribute(&key, value)?;
            }
            for array in from.list_arrays() {
                let schema = from.array_meta(&array).ok_or_else(|| {
                    Error::Internal(format!("{name:?} lists array {array:?} but has none"))
                })?;
                let written = self.inner.has_data(name, &array);
                by_dtype!(schema.dtype, name, &array, T => {
                    copy_array::<T>(&from, &to, &array, &schema, written, |n| {
                        at.cells_done += n;
                        progress(&at);
                    })
                    .await
                })?;
                if written {
                    report.cells += schema.element_count();
                } else {
                    report.arrays_unwritten += 1;
                    at.cells_done += schema.element_count();
                }
                for (key, value) in from.array_attributes(&array)? {
                    to.set_array_attribute(&array, &key, value)?;
                }
                report.arrays += 1;
            }
            report.datasets += 1;
            at.datasets_done += 1;
            progress(&at);
        }
        at.phase = CopyPhase::Committing;
        progress(&at);
        dst.flush().await?;
        report.generation = dst.generation();

        let copy = Atlas::open(Arc::clone(&dst.inner.store), dst.inner.prefix.clone()).await?;
        report.cells_verified = self.verify_copy(&copy, progress).await?;
        Ok(report)
    }

    /// Checks that `copy` holds every dataset of this store, equal to it: the same arrays in
    /// the same order, definitions, dataset and array attributes, and values bit for bit (NaN
    /// payloads and signed zeros included), read tile by tile as [`Atlas::copy_into`] writes
    /// them. `copy` may hold other datasets too. Returns the cells compared; the first
    /// difference is an [`Error::CopyMismatch`] naming the dataset and array.
    pub async fn verify_copy(
        &self,
        copy: &Atlas,
        mut progress: impl FnMut(&CopyProgress),
    ) -> Result<u64> {
        let names = self.list_datasets();
        let cells_total = self.cell_count();
        let mut at = CopyProgress {
            phase: CopyPhase::Verifying,
            datasets_done: 0,
            datasets_total: names.len(),
            cells_done: 0,
            cells_total,
        };
        progress(&at);
        for name in &names {
            let mismatch = |reason: String| Error::CopyMismatch {
                dataset: name.clone(),
                array: String::new(),
                reason,
            };
            if !copy.dataset_exists(name) {
                return Err(mismatch("the copy has no such dataset".into()));
            }
            let from = self.open_dataset(name).await?;
            let to = copy.open_dataset(name).await?;
            if !same(&from.attributes(), &to.attributes()) {
                return Err(mismatch("the dataset attributes differ".into()));
            }
            if from.list_arrays() != to.list_arrays() {
                return Err(mismatch(format!(
                    "the arrays differ: {:?} became {:?}",
                    from.list_arrays(),
                    to.list_arrays()
                )));
            }
            for array in from.list_arrays() {
                let Some(schema) = from.array_meta(&array) else {
                    continue;
                };
                let differs = |reason: &str| Error::CopyMismatch {
                    dataset: name.clone(),
                    array: array.clone(),
                    reason: reason.to_string(),
                };
                if !same(&to.array_meta(&array), &Some(schema.clone())) {
                    return Err(differs(
                        "the definitions (dtype, dims, shape, chunks, fill) differ",
                    ));
                }
                if !same(
                    &from.array_attributes(&array)?,
                    &to.array_attributes(&array)?,
                ) {
                    return Err(differs("the array attributes differ"));
                }
                by_dtype!(schema.dtype, name, &array, T => {
                    compare_array::<T>(&from, &to, &array, &schema, |n| {
                        at.cells_done += n;
                        progress(&at);
                    })
                    .await
                })?;
            }
            at.datasets_done += 1;
            progress(&at);
        }
        Ok(at.cells_done)
    }
}

/// Copies the store at `src` (a path or URL; an atlas-rust store or an atlas-sql one) into a
/// new atlas-sql store created at `dst` with `config`, then checks the copy as
/// [`Atlas::copy_into`] does. `dst` must be empty or missing: a migration never writes over
/// data. When anything fails after `dst` was created, what was written there is removed
/// (best effort: a local folder that existed stays, empty) and the error is returned.
pub async fn migrate(
    src: &str,
    dst: &str,
    config: StoreConfig,
    progress: impl FnMut(&CopyProgress),
) -> Result<CopyReport> {
    let source = Atlas::open_location(src).await?;
    let remote = is_url(dst);
    let vacant = if remote {
        let (store, prefix) = resolve(dst)?;
        is_vacant(&*store, &prefix).await?
    } else {
        is_vacant_dir(dst)
    };
    if !vacant {
        return Err(Error::Location {
            location: dst.to_string(),
            reason: "it is not empty; a migration creates a new store, so name a location \
                     where nothing is yet"
                .into(),
        });
    }
    let existed = !remote && std::path::Path::new(dst).exists();
    let mut target = Atlas::create_location(dst, config).await?;
    let copied = source.copy_into(&mut target, progress).await;
    drop(target);
    if copied.is_err() {
        discard_partial_store(dst, existed).await;
    }
    copied
}

/// Removes what a failed migration wrote at `dst`, which was empty before it (best effort).
pub async fn discard_partial_store(dst: &str, existed: bool) {
    if !is_url(dst) {
        if std::fs::remove_dir_all(dst).is_ok() && existed {
            let _ = std::fs::create_dir(dst);
        }
        return;
    }
    let Ok((store, prefix)) = resolve(dst) else {
        return;
    };
    let listed: Vec<_> = store.list(Some(&prefix)).collect().await;
    for meta in listed.into_iter().flatten() {
        let _ = store.delete(&meta.location).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(shape: &[usize], chunk: &[usize], limit: usize) -> Vec<(Vec<usize>, Vec<usize>)> {
        let t = tiles(shape, chunk, limit);
        let cells: usize = t.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert_eq!(
            cells,
            shape.iter().product::<usize>(),
            "tiles cover the array once"
        );
        for (start, extent) in &t {
            for axis in 0..shape.len() {
                assert_eq!(start[axis] % chunk[axis], 0, "tiles start on chunk edges");
                assert!(start[axis] + extent[axis] <= shape[axis]);
            }
        }
        t
    }

    #[test]
    fn a_small_array_is_one_tile() {
        assert_eq!(
            covered(&[100, 7], &[10, 7], 1000),
            vec![(vec![0, 0], vec![100, 7])]
        );
    }

    #[test]
    fn a_large_array_splits_on_chunk_edges_from_the_outer_axis_in() {
        let t = covered(&[100, 50, 40], &[7, 10, 40], 4000);
        assert!(t.iter().all(|(_, s)| s.iter().product::<usize>() <= 4000));
        // 7 rows of 50 × 40 are 14,000 cells: the second axis shrinks to one chunk too.
        assert_eq!(t[0], (vec![0, 0, 0], vec![7, 10, 40]));
        assert_eq!(t.len(), 15 * 5);
        assert_eq!(t.last(), Some(&(vec![98, 40, 0], vec![2, 10, 40])));
    }

    #[test]
    fn a_chunk_larger_than_the_limit_is_one_tile_per_chunk() {
        let t = covered(&[30, 30], &[10, 30], 50);
        assert_eq!(t.len(), 3);
        assert!(t.iter().all(|(_, s)| s == &vec![10, 30]));
    }

    #[test]
    fn empty_and_scalar_arrays_have_no_tiles_and_one_tile() {
        assert!(tiles(&[0, 5], &[1, 5], 10).is_empty());
        assert_eq!(tiles(&[], &[], 10), vec![(vec![], vec![])]);
    }
}
