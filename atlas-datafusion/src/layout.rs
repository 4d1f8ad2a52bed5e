//! How one variable maps to a table: its columns, and where each dataset's array sits in them.

use std::collections::HashMap;
use std::sync::Arc;

use atlas_store::{ArraySchema, ArrayStats, CatalogView, DType};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{Error, Result};

/// Type of the `dataset` column of every table.
pub fn dataset_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8))
}

/// The SQL type of a store dtype, or `None` for dtypes SQL cannot show (lists).
pub fn arrow_type(dtype: &DType) -> Option<DataType> {
    Some(match dtype {
        DType::Bool => DataType::Boolean,
        DType::Int8 => DataType::Int8,
        DType::Int16 => DataType::Int16,
        DType::Int32 => DataType::Int32,
        DType::Int64 => DataType::Int64,
        DType::UInt8 => DataType::UInt8,
        DType::UInt16 => DataType::UInt16,
        DType::UInt32 => DataType::UInt32,
        DType::UInt64 => DataType::UInt64,
        DType::Float32 => DataType::Float32,
        DType::Float64 => DataType::Float64,
        DType::String => DataType::Utf8,
        DType::Binary => DataType::Binary,
        DType::TimestampNs => DataType::Timestamp(TimeUnit::Nanosecond, None),
        _ => return None,
    })
}

fn int_bits(t: &DataType) -> Option<(bool, u32)> {
    Some(match t {
        DataType::Int8 => (true, 8),
        DataType::Int16 => (true, 16),
        DataType::Int32 => (true, 32),
        DataType::Int64 => (true, 64),
        DataType::UInt8 => (false, 8),
        DataType::UInt16 => (false, 16),
        DataType::UInt32 => (false, 32),
        DataType::UInt64 => (false, 64),
        _ => return None,
    })
}

fn int_type(signed: bool, bits: u32) -> DataType {
    match (signed, bits) {
        (true, 8) => DataType::Int8,
        (true, 16) => DataType::Int16,
        (true, 32) => DataType::Int32,
        (true, _) => DataType::Int64,
        (false, 8) => DataType::UInt8,
        (false, 16) => DataType::UInt16,
        (false, 32) => DataType::UInt32,
        (false, _) => DataType::UInt64,
    }
}

/// The narrowest type holding every value of both `a` and `b` exactly (integers widen to the
/// next size that holds both, f32 + f64 to f64, integers + floats to f64), or `None`.
pub fn widen(a: &DataType, b: &DataType) -> Option<DataType> {
    if a == b {
        return Some(a.clone());
    }
    let is_float = |t: &DataType| matches!(t, DataType::Float32 | DataType::Float64);
    match (int_bits(a), int_bits(b)) {
        (Some((sa, ba)), Some((sb, bb))) => {
            if sa == sb {
                return Some(int_type(sa, ba.max(bb)));
            }
            let (signed_bits, unsigned_bits) = if sa { (ba, bb) } else { (bb, ba) };
            if signed_bits > unsigned_bits {
                Some(int_type(true, signed_bits))
            } else if unsigned_bits < 64 {
                Some(int_type(true, unsigned_bits * 2))
            } else {
                None
            }
        }
        (Some(_), None) if is_float(b) => Some(DataType::Float64),
        (None, Some(_)) if is_float(a) => Some(DataType::Float64),
        (None, None) if is_float(a) && is_float(b) => Some(DataType::Float64),
        _ => None,
    }
}

/// A coordinate of one dataset: a 1-D array named like the dimension.
#[derive(Debug, Clone)]
pub struct CoordSource {
    /// Its statistics, if committed.
    pub stats: Option<ArrayStats>,
    /// Its definition (dtype, fill value), shared with the catalog.
    pub schema: Arc<ArraySchema>,
}

/// One dataset's array of the variable.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Dataset name.
    pub dataset: String,
    /// The array's definition, shared with the catalog.
    pub schema: Arc<ArraySchema>,
    /// Its statistics, if committed.
    pub stats: Option<ArrayStats>,
    /// For each table dimension, the array's axis along it (`None`: the array lacks the dim).
    pub axis_of_dim: Vec<Option<usize>>,
    /// For each coordinate column, the dataset's coordinate array, if it has one that fits.
    pub coords: Vec<Option<CoordSource>>,
}

impl Entry {
    /// Rows this dataset contributes.
    pub fn rows(&self) -> u64 {
        self.schema.element_count()
    }

    /// Length of table dimension `d` in this dataset (`None` if it lacks it).
    pub fn dim_len(&self, d: usize) -> Option<usize> {
        self.axis_of_dim[d].map(|a| self.schema.shape[a])
    }
}

/// The table of one variable.
#[derive(Debug)]
pub struct Layout {
    /// The variable.
    pub variable: String,
    /// Columns: `dataset`, `<dim>_index`…, coordinates…, the value.
    pub schema: SchemaRef,
    /// Dimensions in first-seen order.
    pub dims: Vec<String>,
    /// For each coordinate column, the dimension it belongs to.
    pub coord_dims: Vec<usize>,
    /// Type of the value column.
    pub value_type: DataType,
    /// Types of the coordinate columns.
    pub coord_types: Vec<DataType>,
    /// Datasets holding the variable, in store order.
    pub entries: Vec<Entry>,
    /// Position of each entry's dataset in the store (its key in the `dataset` dictionary).
    pub ordinals: Vec<u32>,
}

impl Layout {
    /// Column index of `<dim>_index` for dimension `d`.
    pub fn index_col(&self, d: usize) -> usize {
        1 + d
    }

    /// Column index of coordinate `c`.
    pub fn coord_col(&self, c: usize) -> usize {
        1 + self.dims.len() + c
    }

    /// Column index of the value.
    pub fn value_col(&self) -> usize {
        1 + self.dims.len() + self.coord_dims.len()
    }

    /// What a column is.
    pub fn column_kind(&self, col: usize) -> ColumnKind {
        if col == 0 {
            ColumnKind::Dataset
        } else if col <= self.dims.len() {
            ColumnKind::Index(col - 1)
        } else if col < self.value_col() {
            ColumnKind::Coord(col - 1 - self.dims.len())
        } else {
            ColumnKind::Value
        }
    }

    /// Builds the table of `variable` from a catalog snapshot.
    pub fn build(location: &str, variable: &str, catalog: &CatalogView) -> Result<Layout> {
        let mut dims: Vec<String> = Vec::new();
        let mut value_type: Option<(DataType, String)> = None;
        let mut found = Vec::new();
        for (ordinal, ds) in catalog.datasets().enumerate() {
            let Some(array) = ds.array(variable) else {
                continue;
            };
            let ty = arrow_type(&array.schema().dtype).ok_or_else(|| Error::UnsupportedType {
                variable: variable.to_string(),
                dataset: ds.name().to_string(),
                dtype: format!("{:?}", array.schema().dtype),
            })?;
            value_type = Some(match value_type {
                None => (ty, ds.name().to_string()),
                Some((prev, first)) => match widen(&prev, &ty) {
                    Some(w) => (w, first),
                    None => {
                        return Err(Error::IncompatibleTypes {
                            variable: variable.to_string(),
                            first_dataset: first,
                            first_type: prev.to_string(),
                            other_dataset: ds.name().to_string(),
                            other_type: ty.to_string(),
                        });
                    }
                },
            });
            for d in &array.schema().dims {
                if !dims.contains(d) {
                    dims.push(d.clone());
                }
            }
            found.push((ordinal, ds, array));
        }
        let Some((value_type, _)) = value_type else {
            let mut known: Vec<&str> = catalog
                .datasets()
                .flat_map(|d| d.arrays().map(|a| a.name()))
                .collect();
            known.sort_unstable();
            known.dedup();
            return Err(Error::UnknownVariable {
                variable: variable.to_string(),
                location: location.to_string(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        };

        // Coordinate columns: dims other than the variable itself that some dataset holding the
        // variable describes with a 1-D array of the same name.
        let mut coord_dims = Vec::new();
        let mut coord_types: Vec<DataType> = Vec::new();
        for (d, dim) in dims.iter().enumerate() {
            if dim == variable {
                continue;
            }
            let mut ty: Option<(DataType, String)> = None;
            for (_, ds, _) in &found {
                let Some(c) = ds
                    .array(dim)
                    .filter(|a| a.schema().dims.len() == 1 && &a.schema().dims[0] == dim)
                else {
                    continue;
                };
                let Some(t) = arrow_type(&c.schema().dtype) else {
                    continue;
                };
                ty = Some(match ty {
                    None => (t, ds.name().to_string()),
                    Some((prev, first)) => match widen(&prev, &t) {
                        Some(w) => (w, first),
                        None => {
                            return Err(Error::IncompatibleTypes {
                                variable: dim.clone(),
                                first_dataset: first,
                                first_type: prev.to_string(),
                                other_dataset: ds.name().to_string(),
                                other_type: t.to_string(),
                            });
                        }
                    },
                });
            }
            if let Some((t, _)) = ty {
                coord_dims.push(d);
                coord_types.push(t);
            }
        }

        let mut fields = vec![Field::new("dataset", dataset_type(), false)];
        let mut what = vec!["the dataset name".to_string()];
        for dim in &dims {
            fields.push(Field::new(format!("{dim}_index"), DataType::UInt64, true));
            what.push(format!("the position along dimension {dim:?}"));
        }
        for (c, &d) in coord_dims.iter().enumerate() {
            fields.push(Field::new(dims[d].clone(), coord_types[c].clone(), true));
            what.push(format!("the coordinate of dimension {:?}", dims[d]));
        }
        fields.push(Field::new(variable, value_type.clone(), true));
        what.push("the value".to_string());
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, f) in fields.iter().enumerate() {
            if let Some(&j) = seen.get(f.name().as_str()) {
                return Err(Error::NameCollision {
                    variable: variable.to_string(),
                    column: f.name().clone(),
                    first: what[j].clone(),
                    second: what[i].clone(),
                });
            }
            seen.insert(f.name(), i);
        }

        let mut entries = Vec::with_capacity(found.len());
        let mut ordinals = Vec::with_capacity(found.len());
        for (ordinal, ds, array) in found {
            let axis_of_dim = dims
                .iter()
                .map(|d| array.schema().dims.iter().position(|x| x == d))
                .collect::<Vec<_>>();
            let coords = coord_dims
                .iter()
                .map(|&d| {
                    let axis = axis_of_dim[d]?;
                    let len = array.schema().shape[axis];
                    let dim = &dims[d];
                    ds.array(dim)
                        .filter(|a| {
                            let s = a.schema();
                            s.dims.len() == 1
                                && &s.dims[0] == dim
                                && s.shape[0] == len
                                && arrow_type(&s.dtype).is_some()
                        })
                        .map(|a| CoordSource {
                            stats: a.stats(),
                            schema: a.shared_schema(),
                        })
                })
                .collect();
            entries.push(Entry {
                dataset: ds.name().to_string(),
                schema: array.shared_schema(),
                stats: array.stats(),
                axis_of_dim,
                coords,
            });
            ordinals.push(u32::try_from(ordinal).map_err(|_| {
                Error::Usage(format!("store {location} has more than 2^32 datasets"))
            })?);
        }
        Ok(Layout {
            variable: variable.to_string(),
            schema: Arc::new(Schema::new(fields)),
            dims,
            coord_dims,
            value_type,
            coord_types,
            entries,
            ordinals,
        })
    }
}

/// What a column of a variable's table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `dataset`.
    Dataset,
    /// `<dim>_index` of table dimension `d`.
    Index(usize),
    /// Coordinate column `c`.
    Coord(usize),
    /// The value.
    Value,
}
