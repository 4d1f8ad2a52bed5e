//! A handle on one dataset: its arrays and attributes.

use std::sync::Arc;

use array_format::{ArrayElement, ArrayStats, DType, FillValue};
use ndarray::{ArcArray, ArrayView, IxDyn};

use crate::atlas::{Inner, array_entry, check_bounds, check_dtype, committed_stats, lock};
use crate::catalog::ArrayEntry;
use crate::error::{Error, Result};
use crate::pending::TypedPatch;
use crate::schema::{ArraySchema, Attr, dtype_name, validate_name};

/// A handle on one dataset of an [`crate::Atlas`]. Cheap to clone; changes made through it
/// belong to the store handle it came from and are stored at that handle's next flush.
#[derive(Clone)]
pub struct DatasetView {
    inner: Arc<Inner>,
    name: String,
}

impl std::fmt::Debug for DatasetView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetView")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl DatasetView {
    pub(crate) fn new(inner: Arc<Inner>, name: String) -> Self {
        DatasetView { inner, name }
    }

    /// The dataset's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dataset's arrays, in definition order.
    pub fn list_arrays(&self) -> Vec<String> {
        let st = lock(&self.inner.state);
        st.working
            .dataset(&self.name)
            .map(|d| d.arrays().map(|a| a.name().to_string()).collect())
            .unwrap_or_default()
    }

    /// Defines an array of element type `T`.
    ///
    /// `dims` names each axis; `chunk_shape` tiles the array (`None`: one chunk); `fill` is the
    /// value of cells never written, which also counts as null in statistics and SQL.
    pub async fn define_array<T: ArrayElement>(
        &self,
        name: &str,
        dims: Vec<String>,
        shape: Vec<usize>,
        chunk_shape: Option<Vec<usize>>,
        fill: Option<FillValue>,
    ) -> Result<()> {
        self.inner.writable("define an array")?;
        validate_name("array", name)?;
        let schema = self.check_definition::<T>(name, dims, shape, chunk_shape, fill)?;
        let mut st = lock(&self.inner.state);
        let st = &mut *st;
        let entry = ArrayEntry {
            name: st.interner.name(name),
            schema: st.interner.schema(schema),
            attributes: st.interner.empty_attrs(),
            segment: None,
            stats: None,
        };
        let ds = st
            .dataset_mut(&self.name)
            .ok_or_else(|| Error::DatasetNotFound {
                name: self.name.clone(),
            })?;
        if ds.array(name).is_some() {
            return Err(Error::ArrayExists {
                dataset: self.name.clone(),
                array: name.to_string(),
            });
        }
        ds.arrays.push(entry);
        st.touch(&self.name);
        Ok(())
    }

    fn check_definition<T: ArrayElement>(
        &self,
        name: &str,
        dims: Vec<String>,
        shape: Vec<usize>,
        chunk_shape: Option<Vec<usize>>,
        fill: Option<FillValue>,
    ) -> Result<ArraySchema> {
        let bad = |reason: String| Error::invalid(&self.name, name, reason);
        if dtype_name(&T::DTYPE).is_none() {
            return Err(bad(format!("dtype {:?} is not supported", T::DTYPE)));
        }
        if dims.len() != shape.len() {
            return Err(bad(format!(
                "{} dimension names for a shape of rank {}",
                dims.len(),
                shape.len()
            )));
        }
        if let Some(axis) = shape.iter().position(|&n| n > u32::MAX as usize) {
            return Err(bad(format!(
                "axis {axis} has length {}, more than the maximum {}",
                shape[axis],
                u32::MAX
            )));
        }
        let count = shape
            .iter()
            .try_fold(1u64, |acc, &n| acc.checked_mul(n as u64));
        if count.is_none_or(|c| c > isize::MAX as u64) {
            return Err(bad(format!(
                "shape {shape:?} has more elements than can be addressed"
            )));
        }
        let chunk_shape = match chunk_shape {
            None => shape.iter().map(|&n| n.max(1)).collect(),
            Some(c) if c.len() != shape.len() => {
                return Err(bad(format!(
                    "chunk shape {c:?} has rank {}, but the shape {shape:?} has rank {}",
                    c.len(),
                    shape.len()
                )));
            }
            Some(c) => {
                if let Some(axis) = c.iter().zip(&shape).position(|(&c, &n)| c == 0 && n > 0) {
                    return Err(bad(format!(
                        "chunk shape {c:?} has extent 0 on axis {axis}"
                    )));
                }
                c.iter()
                    .zip(&shape)
                    .map(|(&c, &n)| c.clamp(1, n.max(1)))
                    .collect()
            }
        };
        if let Some(f) = &fill {
            let ok = matches!(
                (&T::DTYPE, f),
                (DType::Bool, FillValue::Bool(_))
                    | (
                        DType::Int8 | DType::Int16 | DType::Int32 | DType::Int64,
                        FillValue::Int(_)
                    )
                    | (
                        DType::UInt8 | DType::UInt16 | DType::UInt32 | DType::UInt64,
                        FillValue::UInt(_)
                    )
                    | (DType::Float32 | DType::Float64, FillValue::Float(_))
                    | (DType::String, FillValue::String(_))
                    | (DType::TimestampNs, FillValue::TimestampNs(_))
            );
            if !ok {
                return Err(bad(format!(
                    "fill value {f:?} does not fit dtype {:?}",
                    T::DTYPE
                )));
            }
        }
        Ok(ArraySchema {
            dtype: T::DTYPE,
            dims,
            shape,
            chunk_shape,
            fill_value: fill,
        })
    }

    /// Writes `data` into array `name` with its origin at `start`. Visible to reads at once;
    /// stored at the next flush. Bad input (unknown array, wrong type, out of bounds) is
    /// rejected and changes nothing.
    pub async fn write_array<T: ArrayElement>(
        &self,
        name: &str,
        start: Vec<usize>,
        data: ArrayView<'_, T, IxDyn>,
    ) -> Result<()> {
        self.inner.writable("write an array")?;
        // Checked under the gate, so no spill or flush runs between the check and the write.
        let _gate = self.inner.gate.lock().await;
        let schema = {
            let st = lock(&self.inner.state);
            Arc::clone(array_entry(&st, &self.name, name)?.schema())
        };
        check_dtype::<T>(&self.name, name, &schema)?;
        if start.len() != schema.shape.len() || data.ndim() != schema.shape.len() {
            return Err(Error::invalid(
                &self.name,
                name,
                format!(
                    "the array has {} dimensions, but start has {} and the data {}",
                    schema.shape.len(),
                    start.len(),
                    data.ndim()
                ),
            ));
        }
        check_bounds(
            &self.name,
            name,
            &schema.shape,
            &start,
            data.shape(),
            "write",
        )?;
        if data.is_empty() {
            return Ok(());
        }
        let patch = Arc::new(TypedPatch::new(start, data));
        self.inner.add_patch(&self.name, name, patch).await
    }

    /// Reads a region of array `name`; empty `start` and `shape` read it whole. `None` when the
    /// dataset has no such array. Includes writes not yet flushed.
    pub async fn read_array<T: ArrayElement>(
        &self,
        name: &str,
        start: Vec<usize>,
        shape: Vec<usize>,
    ) -> Result<Option<ArcArray<T, IxDyn>>> {
        self.inner.read_region(&self.name, name, start, shape).await
    }

    /// Deletes array `name`; the store drops it at the next flush.
    pub async fn delete_array(&self, name: &str) -> Result<()> {
        self.inner.writable("delete an array")?;
        let mut st = lock(&self.inner.state);
        array_entry(&st, &self.name, name)?;
        if let Some(d) = st.dataset_mut(&self.name) {
            d.arrays.retain(|a| &*a.name != name);
        }
        st.drop_pending(&(self.name.clone(), name.to_string()));
        st.touch(&self.name);
        Ok(())
    }

    /// The definition of array `name`, from the catalog (no I/O).
    pub fn array_meta(&self, name: &str) -> Option<ArraySchema> {
        let st = lock(&self.inner.state);
        array_entry(&st, &self.name, name)
            .ok()
            .map(|a| (**a.schema()).clone())
    }

    /// Statistics of array `name` as of the last flush (min, max, null count — fill-valued or
    /// never-written cells — and row count), from the catalog. `None` before the first flush
    /// that wrote data to it.
    pub async fn array_stats(&self, name: &str) -> Option<ArrayStats> {
        committed_stats(&lock(&self.inner.state), &self.name, name)
    }

    /// Sets a dataset attribute.
    pub fn set_attribute(&self, key: &str, value: Attr) -> Result<()> {
        self.inner.writable("set an attribute")?;
        let mut st = lock(&self.inner.state);
        let (key, value) = (st.interner.name(key), st.interner.value(value));
        let ds = st
            .dataset_mut(&self.name)
            .ok_or_else(|| Error::DatasetNotFound {
                name: self.name.clone(),
            })?;
        // Copied on write: the set may be shared with other datasets.
        Arc::make_mut(&mut ds.attributes).insert(key, value);
        st.touch(&self.name);
        Ok(())
    }

    /// A dataset attribute.
    pub fn get_attribute(&self, key: &str) -> Option<Attr> {
        let st = lock(&self.inner.state);
        st.working
            .dataset(&self.name)?
            .attributes()
            .get(key)
            .cloned()
    }

    /// All dataset attributes, in the order they were first set.
    pub fn attributes(&self) -> Vec<(String, Attr)> {
        let st = lock(&self.inner.state);
        st.working
            .dataset(&self.name)
            .map(|d| {
                d.attributes()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sets an attribute of array `array`.
    pub fn set_array_attribute(&self, array: &str, key: &str, value: Attr) -> Result<()> {
        self.inner.writable("set an attribute")?;
        let mut st = lock(&self.inner.state);
        array_entry(&st, &self.name, array)?;
        let (key, value) = (st.interner.name(key), st.interner.value(value));
        if let Some(a) = st.dataset_mut(&self.name).and_then(|d| d.array_mut(array)) {
            Arc::make_mut(&mut a.attributes).insert(key, value);
        }
        st.touch(&self.name);
        Ok(())
    }

    /// All attributes of array `array`, in the order they were first set.
    pub fn array_attributes(&self, array: &str) -> Result<Vec<(String, Attr)>> {
        let st = lock(&self.inner.state);
        Ok(array_entry(&st, &self.name, array)?
            .attributes()
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect())
    }
}
