//! Rows to a store: how a query's columns map onto datasets, arrays and attributes, and the
//! assembly of one dataset's rows into arrays. Behind `COPY … TO … STORED AS ATLAS` and
//! `INSERT INTO` an ATLAS table (`sink.rs` is the DataFusion side).
//!
//! A row names its dataset (`dataset`) and its position (`<dim>_index` columns). A column named
//! like a dimension is that dimension's coordinate, 1-d; every other column is an array over all
//! the dimensions (or those `dims.<column>` lists), and a column marked as a dataset attribute
//! (the attribute columns of `_datasets`, or those `attributes` lists) becomes an attribute. An
//! array's shape is one more than the largest index its rows hold in each dimension, unless
//! `shape.<column>` gives it. NULLs and positions no row holds become the fill value, chosen
//! among values the array does not hold so they read back as NULL.

use std::collections::HashMap;

use atlas_store::ndarray::{ArrayD, IxDyn};
use atlas_store::{ArrayElement, Attr, Bool, Codec, DType, DatasetView, FillValue, TimestampNs};
use datafusion::arrow::array::{Array, ArrayRef, ArrowPrimitiveType, AsArray, Int64Array};
use datafusion::arrow::compute::{CastOptions, cast, cast_with_options, partition};
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Schema,
    TimestampNanosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;

use crate::error::{Error, Result};

/// Field metadata key marking a column as a dataset attribute; its value is the attribute's
/// key. The attribute columns of `_datasets` carry it, so `COPY` of a query that selects them
/// keeps the attributes.
pub const DATASET_ATTRIBUTE: &str = "atlas.dataset_attribute";

/// What the `OPTIONS` of a write say.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteOptions {
    /// `shape.<column>`: an array's shape, instead of the one its indexes imply.
    shapes: Vec<(String, Vec<usize>)>,
    /// `dims.<column>`: the dimensions an array spans, instead of all of them.
    dims: Vec<(String, Vec<String>)>,
    /// `chunk`: chunk lengths per dimension.
    pub(crate) chunks: HashMap<String, usize>,
    /// `codec`: the new store's codec.
    pub(crate) codec: Option<Codec>,
    /// `attributes`: columns written as dataset attributes.
    attributes: Vec<String>,
}

/// The names of a comma-separated option value.
fn names(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .collect()
}

/// The options a write takes, for error messages.
const KNOWN_OPTIONS: &str = "shape.<column>, dims.<column>, chunk, codec, attributes";

impl WriteOptions {
    /// Parses `OPTIONS` as the SQL planner hands them over: keys lowercased, those without a
    /// dot prefixed `format.`. Options of `execution.…` are DataFusion's, not ours.
    pub(crate) fn parse(options: &HashMap<String, String>) -> Result<WriteOptions> {
        let mut out = WriteOptions::default();
        let mut keys: Vec<&String> = options.keys().collect();
        keys.sort();
        for key in keys {
            let value = options[key].trim();
            // `shape.x` and `dims.x` keep their own prefix; bare keys get `format.`.
            let name = key.strip_prefix("format.").unwrap_or(key);
            if name.starts_with("execution.") {
                continue;
            }
            let bad = |why: String| Error::Usage(format!("ATLAS option {name:?}: {why}"));
            if let Some(column) = name.strip_prefix("shape.") {
                let shape = if value.is_empty() {
                    Vec::new()
                } else {
                    value
                        .split(',')
                        .map(|n| n.trim().parse::<usize>())
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(|_| {
                            bad(format!("expected lengths such as '3,100', not {value:?}"))
                        })?
                };
                out.shapes.push((column.to_string(), shape));
            } else if let Some(column) = name.strip_prefix("dims.") {
                out.dims.push((column.to_string(), names(value)));
            } else if name == "chunk" {
                out.chunks = atlas_store::parse_chunk_spec(value).map_err(bad)?;
            } else if name == "codec" {
                out.codec = Some(value.parse::<Codec>().map_err(bad)?);
            } else if name == "attributes" {
                out.attributes = names(value);
            } else {
                return Err(Error::Usage(format!(
                    "unknown ATLAS option {name:?} (known: {KNOWN_OPTIONS})"
                )));
            }
        }
        Ok(out)
    }
}

/// One array the rows fill.
#[derive(Debug, Clone)]
pub(crate) struct ArraySpec {
    pub(crate) name: String,
    column: usize,
    dtype: DType,
    /// Positions in [`RowLayout::dims`] of the array's axes, in order.
    axes: Vec<usize>,
    shape: Option<Vec<usize>>,
}

/// How a schema's columns map onto a store.
#[derive(Debug, Clone)]
pub(crate) struct RowLayout {
    pub(crate) dataset: usize,
    /// Dimension names, in column order, and their index columns.
    dims: Vec<(String, usize)>,
    pub(crate) arrays: Vec<ArraySpec>,
    /// Dataset attributes: key and column.
    attributes: Vec<(String, usize)>,
}

/// The store dtype a column of Arrow type `t` is written as.
fn dtype_of(t: &DataType) -> Option<DType> {
    Some(match t {
        DataType::Int8 => DType::Int8,
        DataType::Int16 => DType::Int16,
        DataType::Int32 => DType::Int32,
        DataType::Int64 => DType::Int64,
        DataType::UInt8 => DType::UInt8,
        DataType::UInt16 => DType::UInt16,
        DataType::UInt32 => DType::UInt32,
        DataType::UInt64 => DType::UInt64,
        DataType::Float16 | DataType::Float32 => DType::Float32,
        DataType::Float64 => DType::Float64,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DType::String,
        DataType::Dictionary(_, v) if dtype_of(v) == Some(DType::String) => DType::String,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => DType::TimestampNs,
        DataType::Boolean => DType::Bool,
        _ => return None,
    })
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        || matches!(t, DataType::Dictionary(_, v) if is_string(v))
}

/// The column an option names: the one spelled so, else the only one equal ignoring case (the
/// SQL planner lowercases option keys).
fn column_named<'a>(schema: &'a Schema, name: &str, option: &str) -> Result<&'a Field> {
    let found: Vec<&Field> = schema
        .fields()
        .iter()
        .filter(|f| f.name().eq_ignore_ascii_case(name))
        .map(|f| f.as_ref())
        .collect();
    // SQL lowercases option keys: a key with capitals was given as spelled (Python).
    let spelled = name.chars().any(char::is_uppercase);
    if let Some(f) = found.iter().find(|f| spelled && f.name() == name) {
        return Ok(f);
    }
    match found[..] {
        [f] => Ok(f),
        [] => Err(Error::Usage(format!(
            "ATLAS option {option:?} names column {name:?}, which the query does not have"
        ))),
        _ => Err(Error::Usage(format!(
            "ATLAS option {option:?}: columns {} differ only in case; rename all but one",
            found
                .iter()
                .map(|f| format!("{:?}", f.name()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

impl RowLayout {
    /// Maps `schema` onto datasets, arrays and attributes, or says why it cannot be written.
    pub(crate) fn new(schema: &Schema, options: &WriteOptions) -> Result<RowLayout> {
        let usage = |s: String| Error::Usage(s);
        let dataset = schema.index_of("dataset").map_err(|_| {
            usage(
                "writing to an ATLAS store needs a column `dataset` naming each row's dataset"
                    .into(),
            )
        })?;
        if !is_string(schema.field(dataset).data_type()) {
            return Err(usage(format!(
                "column `dataset` must be a string, not {}",
                schema.field(dataset).data_type()
            )));
        }
        let mut attribute_columns: Vec<(String, usize)> = Vec::new();
        for name in &options.attributes {
            let f = column_named(schema, name, "attributes")?;
            attribute_columns.push((f.name().clone(), schema.index_of(f.name())?));
        }
        for (i, f) in schema.fields().iter().enumerate() {
            if let Some(key) = f.metadata().get(DATASET_ATTRIBUTE)
                && !attribute_columns.iter().any(|(_, c)| *c == i)
            {
                attribute_columns.push((key.clone(), i));
            }
        }
        let mut dims: Vec<(String, usize)> = Vec::new();
        for (i, f) in schema.fields().iter().enumerate() {
            let Some(dim) = f.name().strip_suffix("_index") else {
                continue;
            };
            if dim.is_empty() || attribute_columns.iter().any(|(_, c)| *c == i) {
                continue;
            }
            if !f.data_type().is_integer() {
                return Err(usage(format!(
                    "column {:?} is named as the index of dimension {dim:?} but holds {}, \
                     not integers; rename or CAST it",
                    f.name(),
                    f.data_type()
                )));
            }
            dims.push((dim.to_string(), i));
        }
        let mut arrays: Vec<ArraySpec> = Vec::new();
        for (i, f) in schema.fields().iter().enumerate() {
            if i == dataset
                || dims.iter().any(|(_, c)| *c == i)
                || attribute_columns.iter().any(|(_, c)| *c == i)
            {
                continue;
            }
            let dtype = dtype_of(f.data_type()).ok_or_else(|| {
                usage(format!(
                    "column {:?} has type {}, which an ATLAS array cannot hold; CAST it \
                     to a number, string, boolean or timestamp",
                    f.name(),
                    f.data_type()
                ))
            })?;
            let axes = match dims.iter().position(|(d, _)| d == f.name()) {
                Some(axis) => vec![axis],
                None => (0..dims.len()).collect(),
            };
            arrays.push(ArraySpec {
                name: f.name().clone(),
                column: i,
                dtype,
                axes,
                shape: None,
            });
        }
        let array_of = |name: &str, option: &str, arrays: &[ArraySpec]| -> Result<usize> {
            let f = column_named(schema, name, option)?;
            arrays
                .iter()
                .position(|a| a.name == *f.name())
                .ok_or_else(|| {
                    usage(format!(
                        "ATLAS option {option:?}: column {:?} is not an array column",
                        f.name()
                    ))
                })
        };
        for (column, names) in &options.dims {
            let option = format!("dims.{column}");
            let a = array_of(column, &option, &arrays)?;
            let mut axes = Vec::new();
            for d in names {
                let axis = dims.iter().position(|(n, _)| n == d).ok_or_else(|| {
                    usage(format!(
                        "ATLAS option {option:?}: no column {d}_index gives dimension {d:?}"
                    ))
                })?;
                if axes.contains(&axis) {
                    return Err(usage(format!(
                        "ATLAS option {option:?} lists dimension {d:?} twice"
                    )));
                }
                axes.push(axis);
            }
            arrays[a].axes = axes;
        }
        for (column, shape) in &options.shapes {
            let option = format!("shape.{column}");
            let a = array_of(column, &option, &arrays)?;
            if shape.len() != arrays[a].axes.len() {
                return Err(usage(format!(
                    "ATLAS option {option:?} gives {} lengths, but {:?} spans {} dimensions",
                    shape.len(),
                    arrays[a].name,
                    arrays[a].axes.len()
                )));
            }
            arrays[a].shape = Some(shape.clone());
        }
        if let Some(d) = options
            .chunks
            .keys()
            .find(|d| !dims.iter().any(|(n, _)| n == *d))
        {
            return Err(usage(format!(
                "ATLAS option \"chunk\" names dimension {d:?}, which no {d}_index column gives \
                 (dimensions: {})",
                dims.iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(RowLayout {
            dataset,
            dims: dims.into_iter().collect(),
            arrays,
            attributes: attribute_columns,
        })
    }

    /// Names of the dataset attribute columns' keys.
    #[cfg(test)]
    fn attribute_keys(&self) -> Vec<&str> {
        self.attributes.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Runs of consecutive rows of one dataset in `batch`, each with its dataset's name. Arrow's
/// `partition` finds them on the column as it is (a dictionary's keys), so only one name per
/// run is turned into a string. NULL names are refused.
pub(crate) fn dataset_runs(
    batch: &RecordBatch,
    layout: &RowLayout,
) -> Result<Vec<(String, std::ops::Range<usize>)>> {
    let column = batch.column(layout.dataset);
    if column.null_count() > 0 {
        return Err(Error::Usage(
            "a row to write has a NULL dataset; every row must name its dataset".into(),
        ));
    }
    partition(std::slice::from_ref(column))?
        .ranges()
        .into_iter()
        .map(|run| {
            let name = cast(&column.slice(run.start, 1), &DataType::Utf8)?;
            Ok((name.as_string::<i32>().value(0).to_string(), run))
        })
        .collect()
}

/// How one dataset's rows become arrays: its index columns, which dimensions it has, and each
/// array's axes and shape. Worked out before anything is allocated, so its size can be checked
/// and reserved first.
pub(crate) struct DatasetPlan {
    index: Index,
    /// Per array of the layout: its axes (into the layout's dims) and shape, or `None` when every
    /// row leaves it NULL (the dataset does not get it).
    arrays: Vec<Option<(Vec<usize>, Vec<usize>)>>,
    /// What assembling the arrays allocates, at most.
    pub(crate) bytes: usize,
}

/// The index columns of every run as `Int64`, with each dimension's largest index and whether
/// the dataset has the dimension at all.
struct Index {
    /// Per run, per dimension (`None` where the dataset lacks the dimension).
    columns: Vec<Vec<Option<Int64Array>>>,
    max: Vec<Option<i64>>,
    /// Dimensions whose index is NULL in every row: the dataset's arrays lack them (a table
    /// shows a variable of lower rank in some datasets that way).
    absent: Vec<bool>,
}

/// Casts `column` to `to`, refusing values the type cannot hold instead of making them NULL.
fn cast_exact(column: &ArrayRef, to: &DataType, dataset: &str, name: &str) -> Result<ArrayRef> {
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    cast_with_options(column, to, &options).map_err(|e| Error::Write {
        dataset: dataset.to_string(),
        reason: format!("column {name:?}: {e}"),
    })
}

fn index_columns(layout: &RowLayout, dataset: &str, runs: &[RecordBatch]) -> Result<Index> {
    let n = layout.dims.len();
    let mut max: Vec<Option<i64>> = vec![None; n];
    let mut nulls = vec![0usize; n];
    let rows: usize = runs.iter().map(|r| r.num_rows()).sum();
    for run in runs {
        for (axis, (_, c)) in layout.dims.iter().enumerate() {
            nulls[axis] += run.column(*c).null_count();
        }
    }
    let absent: Vec<bool> = nulls.iter().map(|&k| k == rows && rows > 0).collect();
    let mut columns = Vec::with_capacity(runs.len());
    for run in runs {
        let mut cols = Vec::with_capacity(n);
        for (axis, (dim, c)) in layout.dims.iter().enumerate() {
            if absent[axis] {
                cols.push(None);
                continue;
            }
            if nulls[axis] > 0 {
                return Err(Error::Write {
                    dataset: dataset.to_string(),
                    reason: format!(
                        "{} of its rows have a NULL {dim}_index and {} do not; a dataset has \
                         the dimension or lacks it",
                        nulls[axis],
                        rows - nulls[axis]
                    ),
                });
            }
            let col = cast_exact(
                run.column(*c),
                &DataType::Int64,
                dataset,
                &format!("{dim}_index"),
            )?;
            let col = col.as_primitive::<Int64Type>().clone();
            if let Some(m) = datafusion::arrow::compute::min(&col)
                && m < 0
            {
                return Err(Error::Write {
                    dataset: dataset.to_string(),
                    reason: format!("a row has {dim}_index {m}; indexes start at 0"),
                });
            }
            let m = datafusion::arrow::compute::max(&col);
            if let Some(m) = m
                && m > u32::MAX as i64
            {
                return Err(Error::Write {
                    dataset: dataset.to_string(),
                    reason: format!(
                        "a row has {dim}_index {m}; an axis holds at most {} positions",
                        u32::MAX
                    ),
                });
            }
            max[axis] = max[axis].max(m);
            cols.push(Some(col));
        }
        columns.push(cols);
    }
    Ok(Index {
        columns,
        max,
        absent,
    })
}

/// Bytes one cell of `dtype` takes while assembling (value and state).
fn cell_bytes(dtype: &DType) -> usize {
    1 + match dtype {
        DType::String => std::mem::size_of::<String>(),
        DType::Int8 | DType::UInt8 | DType::Bool => 1,
        DType::Int16 | DType::UInt16 => 2,
        DType::Int32 | DType::UInt32 | DType::Float32 => 4,
        _ => 8,
    }
}

/// Works out how the rows of dataset `name` (`runs`) become arrays. `lengths` are the lengths
/// of the dimensions the dataset already has (`INSERT INTO` an existing dataset): an array over
/// them takes those lengths, and rows beyond them are refused.
pub(crate) fn plan_dataset(
    layout: &RowLayout,
    name: &str,
    runs: &[RecordBatch],
    lengths: &HashMap<String, usize>,
) -> Result<DatasetPlan> {
    let index = index_columns(layout, name, runs)?;
    let rows: usize = runs.iter().map(|r| r.num_rows()).sum();
    let fail = |reason: String| Error::Write {
        dataset: name.to_string(),
        reason,
    };
    let mut bytes = 0usize;
    let mut arrays = Vec::with_capacity(layout.arrays.len());
    for a in &layout.arrays {
        let nulls: usize = runs.iter().map(|r| r.column(a.column).null_count()).sum();
        if nulls == rows {
            arrays.push(None);
            continue;
        }
        let axes: Vec<usize> = a
            .axes
            .iter()
            .copied()
            .filter(|&x| !index.absent[x])
            .collect();
        let shape: Vec<usize> = match &a.shape {
            Some(s) if s.len() == axes.len() => s.clone(),
            Some(s) => {
                return Err(fail(format!(
                    "shape.{} gives {} lengths, but its rows place {:?} on {} dimensions",
                    a.name,
                    s.len(),
                    a.name,
                    axes.len()
                )));
            }
            None => axes
                .iter()
                .map(|&x| {
                    let dim = &layout.dims[x].0;
                    let rows_need = index.max[x].map_or(0, |m| m as usize + 1);
                    match lengths.get(dim) {
                        Some(&n) => n.max(rows_need),
                        None => rows_need,
                    }
                })
                .collect(),
        };
        for (&x, &n) in axes.iter().zip(&shape) {
            let dim = &layout.dims[x].0;
            if n > u32::MAX as usize {
                return Err(fail(format!(
                    "{:?} would be {n} long on {dim}; an axis holds at most {}",
                    a.name,
                    u32::MAX
                )));
            }
            if let Some(&have) = lengths.get(dim)
                && n != have
            {
                return Err(fail(format!(
                    "{:?} would be {n} long on {dim}, but the dataset's {dim} is {have} long",
                    a.name
                )));
            }
            if let Some(m) = index.max[x]
                && m as usize >= n
            {
                return Err(fail(format!(
                    "a row of {:?} has {dim}_index {m}, outside its shape {shape:?}",
                    a.name
                )));
            }
        }
        let cell = cell_bytes(&a.dtype);
        let size = shape
            .iter()
            .try_fold(1usize, |acc, &n| acc.checked_mul(n))
            .and_then(|cells| cells.checked_mul(cell))
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| {
                fail(format!(
                    "{:?} of shape {shape:?} is too large to hold",
                    a.name
                ))
            })?;
        bytes = bytes.saturating_add(size);
        if a.dtype == DType::String {
            // The strings' own bytes, as the rows hold them.
            for run in runs {
                bytes = bytes.saturating_add(run.column(a.column).get_array_memory_size());
            }
        }
        arrays.push(Some((axes, shape)));
    }
    Ok(DatasetPlan {
        index,
        arrays,
        bytes,
    })
}

/// What `write_dataset` did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Written {
    pub(crate) arrays: usize,
    pub(crate) cells: usize,
}

/// Writes the rows of one dataset (`runs`, every row naming it) into `ds` as `plan` says: each
/// array assembled at its shape, then the attributes. An array every row leaves NULL is not
/// written: the dataset does not have it. An array the dataset already has (`INSERT INTO`) is
/// left as it is when the rows agree with it, and refused when they do not.
pub(crate) async fn write_dataset(
    location: &str,
    ds: &DatasetView,
    layout: &RowLayout,
    runs: &[RecordBatch],
    plan: &DatasetPlan,
    chunks: &HashMap<String, usize>,
) -> Result<Written> {
    let name = ds.name().to_string();
    let mut written = Written::default();
    for (a, planned) in layout.arrays.iter().zip(&plan.arrays) {
        let Some((axes, shape)) = planned else {
            continue;
        };
        let dims: Vec<String> = axes.iter().map(|&x| layout.dims[x].0.clone()).collect();
        let place = Place {
            dataset: &name,
            array: &a.name,
            dims: &dims,
            shape,
        };
        let positions = place.positions(runs, &plan.index, axes);
        let mut columns = Vec::with_capacity(runs.len());
        for r in runs {
            columns.push(r.column(a.column));
        }
        let target = Target {
            location,
            ds,
            array: a,
            dims: dims.clone(),
            chunks,
        };
        macro_rules! put {
            ($t:ty) => {{
                let assembled = assemble::<$t>(&place, &columns, &positions)?;
                target.write(assembled).await?
            }};
        }
        let wrote = match a.dtype {
            DType::Int8 => put!(i8),
            DType::Int16 => put!(i16),
            DType::Int32 => put!(i32),
            DType::Int64 => put!(i64),
            DType::UInt8 => put!(u8),
            DType::UInt16 => put!(u16),
            DType::UInt32 => put!(u32),
            DType::UInt64 => put!(u64),
            DType::Float32 => put!(f32),
            DType::Float64 => put!(f64),
            DType::String => put!(String),
            DType::TimestampNs => put!(TimestampNs),
            DType::Bool => put!(Bool),
            _ => {
                return Err(Error::Usage(format!(
                    "array {:?}: dtype {:?} cannot be written",
                    a.name, a.dtype
                )));
            }
        };
        if wrote {
            written.arrays += 1;
            written.cells += shape.iter().product::<usize>();
        }
    }
    for (key, column) in &layout.attributes {
        if let Some(value) = attribute(&name, key, runs, *column)? {
            ds.set_attribute(key, value)
                .map_err(|e| Error::store(location, e))?;
        }
    }
    Ok(written)
}

/// One array of one dataset being written.
struct Target<'a> {
    location: &'a str,
    ds: &'a DatasetView,
    array: &'a ArraySpec,
    dims: Vec<String>,
    chunks: &'a HashMap<String, usize>,
}

impl Target<'_> {
    /// Defines and writes the array, or checks it against the one the dataset has; `false`
    /// when it was there already and agrees.
    async fn write<T: Cell>(self, assembled: Assembled<T>) -> Result<bool> {
        let at = |e| Error::store(self.location, e);
        let name = &self.array.name;
        if let Some(existing) = self.ds.array_meta(name) {
            return self.agrees(existing, assembled).await.map(|()| false);
        }
        let shape = assembled.data.shape().to_vec();
        let chunk = atlas_store::chunk_shape(&self.dims, &shape, self.chunks);
        self.ds
            .define_array::<T>(
                name,
                self.dims.clone(),
                shape.clone(),
                chunk,
                assembled.fill,
            )
            .await
            .map_err(at)?;
        self.ds
            .write_array(name, vec![0; shape.len()], assembled.data.view())
            .await
            .map_err(at)?;
        Ok(true)
    }

    /// Whether the rows hold what the dataset's array `existing` holds where they have values.
    async fn agrees<T: Cell>(
        &self,
        existing: atlas_store::ArraySchema,
        assembled: Assembled<T>,
    ) -> Result<()> {
        let dataset = self.ds.name();
        let name = &self.array.name;
        let refuse = |why: String| Error::Write {
            dataset: dataset.to_string(),
            reason: format!(
                "it already has {name:?}, and {why}; INSERT adds datasets and arrays, it does \
                 not change them"
            ),
        };
        if existing.dims != self.dims || existing.shape != assembled.data.shape() {
            return Err(refuse(format!(
                "the rows give it dims {:?} and shape {:?}, not {:?} and {:?}",
                self.dims,
                assembled.data.shape(),
                existing.dims,
                existing.shape
            )));
        }
        let stored = self
            .ds
            .read_array::<T>(name, vec![], vec![])
            .await
            .map_err(|e| refuse(format!("its values cannot be read as the rows' type ({e})")))?
            .ok_or_else(|| refuse("it could not be read".into()))?;
        let fill = existing.fill_value.as_ref();
        for ((new, old), state) in assembled
            .data
            .iter()
            .zip(stored.iter())
            .zip(&assembled.state)
        {
            if *state == VALUE && (!new.same(old) || fill.is_some_and(|f| old.fill_value() == *f)) {
                return Err(refuse(format!(
                    "a row holds {new:?} where it holds {old:?}"
                )));
            }
        }
        Ok(())
    }
}

/// Where one array's rows go.
struct Place<'a> {
    dataset: &'a str,
    array: &'a str,
    dims: &'a [String],
    shape: &'a [usize],
}

impl Place<'_> {
    /// Row-major offsets of every row of every run in the array (whose shape
    /// [`plan_dataset`] checked holds every row).
    fn positions(&self, runs: &[RecordBatch], index: &Index, axes: &[usize]) -> Vec<Vec<usize>> {
        let mut strides = vec![1usize; axes.len()];
        for i in (0..axes.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.shape[i + 1];
        }
        let mut out = Vec::with_capacity(runs.len());
        for (r, run) in runs.iter().enumerate() {
            let mut offsets = vec![0usize; run.num_rows()];
            for (k, &axis) in axes.iter().enumerate() {
                let Some(col) = &index.columns[r][axis] else {
                    continue;
                };
                let stride = strides[k];
                for (o, &i) in offsets.iter_mut().zip(col.values().iter()) {
                    *o += i as usize * stride;
                }
            }
            out.push(offsets);
        }
        out
    }

    /// The position at row-major `offset`, for messages.
    fn describe(&self, mut offset: usize) -> String {
        let mut idx = vec![0usize; self.shape.len()];
        for k in (0..self.shape.len()).rev() {
            let n = self.shape[k].max(1);
            idx[k] = offset % n;
            offset /= n;
        }
        let parts: Vec<String> = self
            .dims
            .iter()
            .zip(&idx)
            .map(|(d, i)| format!("{d}_index={i}"))
            .collect();
        if parts.is_empty() {
            "its one value".into()
        } else {
            parts.join(", ")
        }
    }
}

/// A store element written from Arrow.
trait Cell: ArrayElement + Clone + std::fmt::Debug {
    /// The Arrow type a column is cast to before its values are read.
    fn arrow() -> DataType;
    /// The values of `column` (of type [`Cell::arrow`]), `None` for NULL; the column is
    /// downcast once, not per row.
    fn cells(column: &dyn Array) -> impl Iterator<Item = Option<Self>> + '_;
    /// A placeholder before the fill is chosen.
    fn zero() -> Self;
    /// Whether two values are the same (floats bitwise, so NaN equals NaN).
    fn same(&self, other: &Self) -> bool;
    /// A fill value that is not `used`, preferring the NetCDF default; `values` lists the
    /// array's values when the first candidates are all taken.
    fn pick_fill(used: &dyn Fn(&Self) -> bool, values: &dyn Fn() -> Vec<Self>) -> Option<Self>;
    fn fill_value(&self) -> FillValue;
}

/// The first of `candidates` not `used`.
fn first_free<T: Cell>(
    used: &dyn Fn(&T) -> bool,
    candidates: impl IntoIterator<Item = T>,
) -> Option<T> {
    candidates.into_iter().find(|c| !used(c))
}

macro_rules! int_cell {
    ($t:ty, $a:ty, $default:expr, $fill:path, $wide:ty) => {
        impl Cell for $t {
            fn arrow() -> DataType {
                <$a as ArrowPrimitiveType>::DATA_TYPE
            }
            fn cells(column: &dyn Array) -> impl Iterator<Item = Option<Self>> + '_ {
                column.as_primitive::<$a>().iter()
            }
            fn zero() -> Self {
                0
            }
            fn same(&self, other: &Self) -> bool {
                self == other
            }
            fn pick_fill(
                used: &dyn Fn(&Self) -> bool,
                values: &dyn Fn() -> Vec<Self>,
            ) -> Option<Self> {
                if let Some(f) = first_free(used, [$default, <$t>::MIN, <$t>::MAX]) {
                    return Some(f);
                }
                let mut sorted: Vec<$t> = values();
                sorted.sort_unstable();
                sorted.dedup();
                let mut want = <$t>::MIN;
                for v in sorted {
                    if v != want {
                        return Some(want);
                    }
                    want = want.checked_add(1)?;
                }
                Some(want)
            }
            fn fill_value(&self) -> FillValue {
                $fill(*self as $wide)
            }
        }
    };
}

int_cell!(i8, Int8Type, -127, FillValue::Int, i64);
int_cell!(i16, Int16Type, -32767, FillValue::Int, i64);
int_cell!(i32, Int32Type, -2147483647, FillValue::Int, i64);
int_cell!(i64, Int64Type, -9223372036854775806, FillValue::Int, i64);
int_cell!(u8, UInt8Type, 255, FillValue::UInt, u64);
int_cell!(u16, UInt16Type, 65535, FillValue::UInt, u64);
int_cell!(u32, UInt32Type, 4294967295, FillValue::UInt, u64);
int_cell!(u64, UInt64Type, 18446744073709551614, FillValue::UInt, u64);

macro_rules! float_cell {
    ($t:ty, $a:ty) => {
        impl Cell for $t {
            fn arrow() -> DataType {
                <$a as ArrowPrimitiveType>::DATA_TYPE
            }
            fn cells(column: &dyn Array) -> impl Iterator<Item = Option<Self>> + '_ {
                column.as_primitive::<$a>().iter()
            }
            fn zero() -> Self {
                0.0
            }
            fn same(&self, other: &Self) -> bool {
                self.to_bits() == other.to_bits() || (self.is_nan() && other.is_nan())
            }
            fn pick_fill(used: &dyn Fn(&Self) -> bool, _: &dyn Fn() -> Vec<Self>) -> Option<Self> {
                let netcdf = 9.969_209_968_386_869e36_f64 as $t;
                first_free(
                    used,
                    [
                        netcdf,
                        -netcdf,
                        <$t>::MAX,
                        <$t>::MIN,
                        <$t>::NAN,
                        <$t>::INFINITY,
                    ],
                )
            }
            fn fill_value(&self) -> FillValue {
                FillValue::Float(*self as f64)
            }
        }
    };
}

float_cell!(f32, Float32Type);
float_cell!(f64, Float64Type);

impl Cell for String {
    fn arrow() -> DataType {
        DataType::Utf8
    }
    fn cells(column: &dyn Array) -> impl Iterator<Item = Option<Self>> + '_ {
        column
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
    }
    fn zero() -> Self {
        String::new()
    }
    fn same(&self, other: &Self) -> bool {
        self == other
    }
    fn pick_fill(used: &dyn Fn(&Self) -> bool, values: &dyn Fn() -> Vec<Self>) -> Option<Self> {
        if let Some(f) = first_free(used, [String::new(), "\0".into()]) {
            return Some(f);
        }
        // "", "\0", "\0\0", …: one of the first len + 1 is free.
        let n = values().len();
        first_free(used, (2..=n + 1).map(|n| "\0".repeat(n)))
    }
    fn fill_value(&self) -> FillValue {
        FillValue::String(self.clone())
    }
}

impl Cell for TimestampNs {
    fn arrow() -> DataType {
        TimestampNanosecondType::DATA_TYPE
    }
    fn cells(column: &dyn Array) -> impl Iterator<Item = Option<Self>> + '_ {
        let column = column.as_primitive::<TimestampNanosecondType>();
        column.iter().map(|v| v.map(TimestampNs))
    }
    fn zero() -> Self {
        TimestampNs(0)
    }
    fn same(&self, other: &Self) -> bool {
        self.0 == other.0
    }
    fn pick_fill(used: &dyn Fn(&Self) -> bool, values: &dyn Fn() -> Vec<Self>) -> Option<Self> {
        first_free(used, [TimestampNs(i64::MIN), TimestampNs(i64::MAX)]).or_else(|| {
            let raw = || values().into_iter().map(|t| t.0).collect();
            i64::pick_fill(&|v| used(&TimestampNs(*v)), &raw).map(TimestampNs)
        })
    }
    fn fill_value(&self) -> FillValue {
        FillValue::TimestampNs(self.0)
    }
}

impl Cell for Bool {
    fn arrow() -> DataType {
        DataType::Boolean
    }
    fn cells(column: &dyn Array) -> impl Iterator<Item = Option<Self>> + '_ {
        column.as_boolean().iter().map(|v| v.map(Bool))
    }
    fn zero() -> Self {
        Bool(false)
    }
    fn same(&self, other: &Self) -> bool {
        self == other
    }
    fn pick_fill(used: &dyn Fn(&Self) -> bool, _: &dyn Fn() -> Vec<Self>) -> Option<Self> {
        first_free(used, [Bool(false), Bool(true)])
    }
    fn fill_value(&self) -> FillValue {
        FillValue::Bool(self.0)
    }
}

/// Cell states while assembling.
const UNSET: u8 = 0;
const NULL: u8 = 1;
const VALUE: u8 = 2;

/// One array of a dataset from its rows: the values placed at `positions`, NULLs and the
/// positions no row holds set to a fill value the array's values do not use. Two rows at one
/// position must agree.
fn assemble<T: Cell>(
    place: &Place<'_>,
    columns: &[&ArrayRef],
    positions: &[Vec<usize>],
) -> Result<Assembled<T>> {
    let fail = |reason: String| Error::Write {
        dataset: place.dataset.to_string(),
        reason,
    };
    let too_large = || {
        fail(format!(
            "{:?} of shape {:?} is too large to hold",
            place.array, place.shape
        ))
    };
    let cells = place
        .shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(too_large)?;
    let mut data: Vec<T> = Vec::new();
    let mut state: Vec<u8> = Vec::new();
    data.try_reserve_exact(cells).map_err(|_| too_large())?;
    state.try_reserve_exact(cells).map_err(|_| too_large())?;
    data.resize(cells, T::zero());
    state.resize(cells, UNSET);
    for (column, offsets) in columns.iter().zip(positions) {
        let column = cast_exact(column, &T::arrow(), place.dataset, place.array)?;
        for (&o, value) in offsets.iter().zip(T::cells(column.as_ref())) {
            match (state[o], value) {
                (UNSET, None) => state[o] = NULL,
                (UNSET, Some(v)) => {
                    data[o] = v;
                    state[o] = VALUE;
                }
                (NULL, None) => {}
                (VALUE, Some(v)) if v.same(&data[o]) => {}
                (_, v) => {
                    let old = (state[o] == VALUE).then(|| data[o].clone());
                    return Err(fail(format!(
                        "two rows of {:?} at {} disagree ({} and {}); a position holds \
                         one value",
                        place.array,
                        place.describe(o),
                        old.map_or("NULL".into(), |v| format!("{v:?}")),
                        v.map_or("NULL".into(), |v| format!("{v:?}")),
                    )));
                }
            }
        }
    }
    let fill = if state.iter().all(|&s| s == VALUE) {
        None
    } else {
        let used = |c: &T| {
            data.iter()
                .zip(&state)
                .any(|(v, s)| *s == VALUE && v.same(c))
        };
        let values = || {
            data.iter()
                .zip(&state)
                .filter(|(_, s)| **s == VALUE)
                .map(|(v, _)| v.clone())
                .collect()
        };
        let fill = T::pick_fill(&used, &values).ok_or_else(|| {
            fail(format!(
                "{:?} has NULLs or positions no row holds, and uses every value of its type, \
                 so no fill value is left to stand for them; CAST it to a wider type",
                place.array
            ))
        })?;
        for (v, s) in data.iter_mut().zip(&state) {
            if *s != VALUE {
                *v = fill.clone();
            }
        }
        Some(fill.fill_value())
    };
    let data = ArrayD::from_shape_vec(IxDyn(place.shape), data)
        .map_err(|e| fail(format!("{:?}: {e}", place.array)))?;
    Ok(Assembled { data, fill, state })
}

/// An array assembled from rows: its values, its fill, and which cells rows gave values.
struct Assembled<T> {
    data: ArrayD<T>,
    fill: Option<FillValue>,
    state: Vec<u8>,
}

/// The value of attribute `key` of dataset `name`: the one non-NULL value its rows hold (NULL
/// everywhere: no attribute).
fn attribute(name: &str, key: &str, runs: &[RecordBatch], column: usize) -> Result<Option<Attr>> {
    let mut found: Option<ScalarValue> = None;
    for run in runs {
        let col = run.column(column);
        for i in 0..col.len() {
            if col.is_null(i) {
                continue;
            }
            let v = ScalarValue::try_from_array(col, i)?;
            match &found {
                None => found = Some(v),
                Some(f) if *f == v => {}
                Some(f) => {
                    return Err(Error::Write {
                        dataset: name.to_string(),
                        reason: format!(
                            "its rows disagree on attribute {key:?} ({f} and {v}); a dataset \
                             has one value per attribute"
                        ),
                    });
                }
            }
        }
    }
    found.map(|v| to_attr(name, key, &v)).transpose()
}

fn to_attr(name: &str, key: &str, v: &ScalarValue) -> Result<Attr> {
    let bad = || Error::Write {
        dataset: name.to_string(),
        reason: format!(
            "attribute {key:?} has type {}, which an attribute cannot hold (numbers, strings, \
             booleans, timestamps and lists of numbers or strings can)",
            v.data_type()
        ),
    };
    let int = |v: &ScalarValue| -> Option<i64> {
        match v {
            ScalarValue::Int8(Some(x)) => Some(*x as i64),
            ScalarValue::Int16(Some(x)) => Some(*x as i64),
            ScalarValue::Int32(Some(x)) => Some(*x as i64),
            ScalarValue::Int64(Some(x)) => Some(*x),
            ScalarValue::UInt8(Some(x)) => Some(*x as i64),
            ScalarValue::UInt16(Some(x)) => Some(*x as i64),
            ScalarValue::UInt32(Some(x)) => Some(*x as i64),
            ScalarValue::UInt64(Some(x)) => i64::try_from(*x).ok(),
            _ => None,
        }
    };
    if let Some(i) = int(v) {
        return Ok(Attr::Int64(i));
    }
    let nanos = |t: i64, per: i64| {
        t.checked_mul(per)
            .map(Attr::TimestampNanoseconds)
            .ok_or_else(|| Error::Write {
                dataset: name.to_string(),
                reason: format!(
                    "attribute {key:?} is a timestamp outside the years 1677-2262 that \
                     nanoseconds reach"
                ),
            })
    };
    Ok(match v {
        ScalarValue::Float32(Some(x)) => Attr::Float64(*x as f64),
        ScalarValue::Float64(Some(x)) => Attr::Float64(*x),
        ScalarValue::Boolean(Some(b)) => Attr::Bool(*b),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Attr::String(s.clone()),
        ScalarValue::Dictionary(_, inner) => return to_attr(name, key, inner),
        ScalarValue::TimestampNanosecond(Some(t), _) => Attr::TimestampNanoseconds(*t),
        ScalarValue::TimestampMicrosecond(Some(t), _) => nanos(*t, 1_000)?,
        ScalarValue::TimestampMillisecond(Some(t), _) => nanos(*t, 1_000_000)?,
        ScalarValue::TimestampSecond(Some(t), _) => nanos(*t, 1_000_000_000)?,
        ScalarValue::List(list) => {
            let items = list.value(0);
            let item_type = items.data_type().clone();
            let scalars = (0..items.len())
                .map(|i| ScalarValue::try_from_array(&items, i))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            if item_type.is_integer() {
                Attr::Int64List(
                    scalars
                        .iter()
                        .map(int)
                        .collect::<Option<_>>()
                        .ok_or_else(bad)?,
                )
            } else if item_type.is_floating() {
                let floats = scalars.iter().map(|s| match s {
                    ScalarValue::Float64(Some(x)) => Some(*x),
                    ScalarValue::Float32(Some(x)) => Some(*x as f64),
                    _ => None,
                });
                Attr::Float64List(floats.collect::<Option<_>>().ok_or_else(bad)?)
            } else if is_string(&item_type) {
                let strings = scalars.iter().map(|s| match s {
                    ScalarValue::Utf8(Some(x))
                    | ScalarValue::LargeUtf8(Some(x))
                    | ScalarValue::Utf8View(Some(x)) => Some(x.clone()),
                    _ => None,
                });
                Attr::StringList(strings.collect::<Option<_>>().ok_or_else(bad)?)
            } else {
                return Err(bad());
            }
        }
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: Vec<Field>) -> Schema {
        Schema::new(fields)
    }

    #[test]
    fn index_columns_give_dims_and_a_column_named_like_a_dim_is_its_coordinate() {
        let s = schema(vec![
            Field::new("dataset", DataType::Utf8, false),
            Field::new("time_index", DataType::UInt32, false),
            Field::new("lat_index", DataType::Int64, false),
            Field::new("lat", DataType::Float64, true),
            Field::new("sst", DataType::Float32, true),
            Field::new("title", DataType::Utf8, true)
                .with_metadata([(DATASET_ATTRIBUTE.to_string(), "title".to_string())].into()),
        ]);
        let l = RowLayout::new(&s, &WriteOptions::default()).unwrap();
        let dims: Vec<&str> = l.dims.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(dims, ["time", "lat"]);
        let arrays: Vec<(&str, &[usize])> = l
            .arrays
            .iter()
            .map(|a| (a.name.as_str(), a.axes.as_slice()))
            .collect();
        assert_eq!(arrays, [("lat", &[1][..]), ("sst", &[0, 1][..])]);
        assert_eq!(l.attribute_keys(), ["title"]);
    }

    #[test]
    fn options_name_columns_ignoring_case_and_refuse_unknown_keys() {
        let s = schema(vec![
            Field::new("dataset", DataType::Utf8, false),
            Field::new("N_PROF_index", DataType::Int64, false),
            Field::new("N_LEVELS_index", DataType::Int64, false),
            Field::new("JULD", DataType::Float64, true),
        ]);
        let opts = |pairs: &[(&str, &str)]| {
            WriteOptions::parse(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let o = opts(&[("format.dims.juld", "N_PROF"), ("format.shape.juld", "4")]).unwrap();
        let l = RowLayout::new(&s, &o).unwrap();
        assert_eq!(l.arrays[0].axes, [0]);
        assert_eq!(l.arrays[0].shape, Some(vec![4]));
        let e = opts(&[("format.colour", "red")]).unwrap_err().to_string();
        assert!(e.contains("unknown ATLAS option \"colour\""), "{e}");
        // `shape.x` reaches the sink without the `format.` prefix bare keys get.
        let o = opts(&[("shape.juld", "4,5,6")]).unwrap();
        let e = RowLayout::new(&s, &o).unwrap_err().to_string();
        assert!(e.contains("gives 3 lengths"), "{e}");
        let o = opts(&[("format.dims.nope", "N_PROF")]).unwrap();
        let e = RowLayout::new(&s, &o).unwrap_err().to_string();
        assert!(e.contains("does not have"), "{e}");
    }

    #[test]
    fn a_schema_without_dataset_or_with_an_unwritable_type_is_refused_by_name() {
        let s = schema(vec![Field::new("x", DataType::Int32, true)]);
        let e = RowLayout::new(&s, &WriteOptions::default()).unwrap_err();
        assert!(e.to_string().contains("`dataset`"), "{e}");
        let s = schema(vec![
            Field::new("dataset", DataType::Utf8, false),
            Field::new("d", DataType::Decimal128(10, 2), true),
        ]);
        let e = RowLayout::new(&s, &WriteOptions::default()).unwrap_err();
        assert!(
            e.to_string().contains("column \"d\" has type Decimal128"),
            "{e}"
        );
    }

    #[test]
    fn the_fill_is_a_value_the_array_does_not_hold() {
        fn pick<T: Cell>(values: &[T]) -> Option<T> {
            T::pick_fill(&|c| values.iter().any(|v| v.same(c)), &|| values.to_vec())
        }
        assert_eq!(pick::<i8>(&[1, 2]), Some(-127));
        assert_eq!(pick::<i8>(&[-127, -128, 127]), Some(-126));
        assert_eq!(pick::<u8>(&(0..=255).collect::<Vec<u8>>()), None);
        let netcdf = 9.969_209_968_386_869e36_f64 as f32;
        assert_eq!(pick::<f32>(&[1.0]), Some(netcdf));
        assert_eq!(pick::<f32>(&[netcdf]), Some(-netcdf));
        assert_eq!(pick::<String>(&[String::new()]), Some("\0".into()));
        assert_eq!(
            pick::<String>(&[String::new(), "\0".into()]),
            Some("\0\0".into())
        );
        assert_eq!(pick::<Bool>(&[Bool(true)]), Some(Bool(false)));
        assert_eq!(pick::<Bool>(&[Bool(true), Bool(false)]), None);
    }
}
