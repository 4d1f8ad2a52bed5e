//! How one variable maps to a table: its columns, and where each dataset's array sits in them.

use std::collections::{HashMap, HashSet};
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
    /// Whether the value column's type holds the array's values (if not, the column is NULL
    /// for this dataset, or the dataset is left out, per [`TypeConflicts`]).
    pub value_fits: bool,
    /// For each table dimension, the array's axis along it (`None`: the array lacks the dim).
    pub axis_of_dim: Vec<Option<usize>>,
    /// For each coordinate column, the dataset's coordinate array, if it has one of the same
    /// length whose type the column holds.
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
    /// Entries with a value or coordinate their column cannot hold, by entry.
    pub conflicts: Vec<EntryConflict>,
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

    /// Builds the table of `variable` from a catalog snapshot. Datasets whose array or
    /// coordinate has a type the column cannot hold stay in the table and are listed in
    /// [`Layout::conflicts`]; the scan applies the [`TypeConflicts`] policy to them.
    pub fn build(location: &str, variable: &str, catalog: &CatalogView) -> Result<Layout> {
        let columns = Columns::resolve(location, variable, catalog)?;
        let Columns {
            dims,
            value_type,
            coord_dims,
            coord_types,
            conflicts: found_conflicts,
        } = columns;

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

        let value_misfits: HashSet<u32> = found_conflicts
            .iter()
            .filter(|c| c.kind == ConflictKind::Value)
            .map(|c| c.ordinal)
            .collect();
        let mut entries = Vec::new();
        let mut ordinals = Vec::new();
        for (ordinal, ds) in catalog.datasets().enumerate() {
            let Some(array) = ds.array(variable) else {
                continue;
            };
            let ordinal = u32::try_from(ordinal).map_err(|_| {
                Error::Usage(format!("store {location} has more than 2^32 datasets"))
            })?;
            let axis_of_dim = dims
                .iter()
                .map(|d| array.schema().dims.iter().position(|x| x == d))
                .collect::<Vec<_>>();
            let coords = coord_dims
                .iter()
                .zip(&coord_types)
                .map(|(&d, ty)| {
                    let axis = axis_of_dim[d]?;
                    let len = array.schema().shape[axis];
                    let dim = &dims[d];
                    ds.array(dim)
                        .filter(|a| {
                            let s = a.schema();
                            s.dims.len() == 1
                                && &s.dims[0] == dim
                                && s.shape[0] == len
                                && arrow_type(&s.dtype).is_some_and(|t| fits(&t, ty))
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
                value_fits: !value_misfits.contains(&ordinal),
                axis_of_dim,
                coords,
            });
            ordinals.push(ordinal);
        }
        let conflicts = found_conflicts
            .into_iter()
            .filter_map(|c| {
                let entry = ordinals.binary_search(&c.ordinal).ok()?;
                Some(EntryConflict { entry, conflict: c })
            })
            .collect();
        Ok(Layout {
            variable: variable.to_string(),
            schema: Arc::new(Schema::new(fields)),
            dims,
            coord_dims,
            value_type,
            coord_types,
            entries,
            ordinals,
            conflicts,
        })
    }
}

/// Whether every value of type `t` is a value of column type `column`.
pub fn fits(t: &DataType, column: &DataType) -> bool {
    widen(column, t).as_ref() == Some(column)
}

/// The type of a column whose datasets have the given types, each with how many datasets have
/// it: the type most datasets have, widened by every other type that widens with it, taken in
/// order of how many datasets have them (ties: the earlier in `counts`). `None` when `counts`
/// is empty.
pub fn majority_type(counts: &[(DataType, usize)]) -> Option<DataType> {
    let mut order: Vec<&(DataType, usize)> = counts.iter().collect();
    // A stable sort keeps the given order among equal counts.
    order.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let mut it = order.into_iter();
    let (first, _) = it.next()?;
    let mut ty = first.clone();
    for (t, _) in it {
        if let Some(w) = widen(&ty, t) {
            ty = w;
        }
    }
    Some(ty)
}

/// [`majority_type`] of one type per dataset (`None`: no SQL type), and for each dataset
/// whether it fits.
fn majority(types: &[Option<DataType>]) -> Option<(DataType, Vec<bool>)> {
    let mut counts: Vec<(DataType, usize)> = Vec::new();
    for t in types.iter().flatten() {
        match counts.iter_mut().find(|(x, _)| x == t) {
            Some((_, n)) => *n += 1,
            None => counts.push((t.clone(), 1)),
        }
    }
    let ty = majority_type(&counts)?;
    let fit = types
        .iter()
        .map(|t| t.as_ref().is_some_and(|t| fits(t, &ty)))
        .collect();
    Some((ty, fit))
}

/// The kind of column a conflict is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// The variable's values.
    Value,
    /// A coordinate column.
    Coordinate,
}

impl ConflictKind {
    /// `value` or `coordinate`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::Value => "value",
            ConflictKind::Coordinate => "coordinate",
        }
    }
}

/// A dataset whose array, or coordinate, has a type its table's column cannot hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The table (its variable).
    pub table: String,
    /// The column.
    pub column: String,
    /// Whether it is the value or a coordinate.
    pub kind: ConflictKind,
    /// The dataset's position in the store.
    pub ordinal: u32,
    /// The dataset.
    pub dataset: String,
    /// The dataset's type: its SQL type, or its store dtype when SQL has none.
    pub dataset_type: String,
    /// The column's type.
    pub table_type: String,
}

/// A [`Conflict`] of one entry of a [`Layout`].
#[derive(Debug, Clone)]
pub struct EntryConflict {
    /// The entry.
    pub entry: usize,
    /// What does not fit.
    pub conflict: Conflict,
}

/// The columns of a variable's table and the datasets that do not fit them, worked out from
/// the catalog without building the per-dataset entries.
#[derive(Debug)]
pub struct Columns {
    /// Dimensions in first-seen order.
    pub dims: Vec<String>,
    /// Type of the value column.
    pub value_type: DataType,
    /// For each coordinate column, the dimension it belongs to.
    pub coord_dims: Vec<usize>,
    /// Types of the coordinate columns.
    pub coord_types: Vec<DataType>,
    /// Datasets whose value or coordinate does not fit its column, in store order.
    pub conflicts: Vec<Conflict>,
}

/// One column's type over the datasets that have it, `(ordinal, dataset, dtype)` each, and the
/// conflicts of those that do not fit (`None`: no dataset has a type SQL can show).
fn resolve_column(
    table: &str,
    column: &str,
    kind: ConflictKind,
    holders: &[(u32, &str, &DType)],
) -> Option<(DataType, Vec<Conflict>)> {
    let types: Vec<Option<DataType>> = holders.iter().map(|(_, _, d)| arrow_type(d)).collect();
    let (ty, fit) = majority(&types)?;
    let conflicts = holders
        .iter()
        .zip(&types)
        .zip(fit)
        .filter(|(_, ok)| !ok)
        .map(|(((ordinal, dataset, dtype), t), _)| Conflict {
            table: table.to_string(),
            column: column.to_string(),
            kind,
            ordinal: *ordinal,
            dataset: dataset.to_string(),
            dataset_type: t
                .as_ref()
                .map_or_else(|| crate::meta::dtype_name(dtype), |t| t.to_string()),
            table_type: ty.to_string(),
        })
        .collect();
    Some((ty, conflicts))
}

impl Columns {
    /// Resolves the columns of `variable`'s table.
    pub fn resolve(location: &str, variable: &str, catalog: &CatalogView) -> Result<Columns> {
        let mut dims: Vec<String> = Vec::new();
        let mut found = Vec::new();
        for (ordinal, ds) in catalog.datasets().enumerate() {
            let Some(array) = ds.array(variable) else {
                continue;
            };
            for d in &array.schema().dims {
                if !dims.contains(d) {
                    dims.push(d.clone());
                }
            }
            found.push((ordinal as u32, ds, array));
        }
        if found.is_empty() {
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
        }
        let holders: Vec<(u32, &str, &DType)> = found
            .iter()
            .map(|(o, ds, a)| (*o, ds.name(), &a.schema().dtype))
            .collect();
        let Some((value_type, mut conflicts)) =
            resolve_column(variable, variable, ConflictKind::Value, &holders)
        else {
            return Err(Error::UnsupportedType {
                variable: variable.to_string(),
                dataset: holders[0].1.to_string(),
                dtype: format!("{:?}", holders[0].2),
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
            let holders: Vec<(u32, &str, &DType)> = found
                .iter()
                .filter_map(|(ordinal, ds, _)| {
                    let c = ds.array(dim)?;
                    let s = c.schema();
                    (s.dims.len() == 1 && &s.dims[0] == dim)
                        .then(|| (*ordinal, ds.name(), &s.dtype))
                })
                .collect();
            let Some((ty, more)) =
                resolve_column(variable, dim, ConflictKind::Coordinate, &holders)
            else {
                continue;
            };
            conflicts.extend(more);
            coord_dims.push(d);
            coord_types.push(ty);
        }
        conflicts.sort_by_key(|c| c.ordinal);
        Ok(Columns {
            dims,
            value_type,
            coord_dims,
            coord_types,
            conflicts,
        })
    }
}

/// What the scan of a table does with the datasets listed in its conflicts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TypeConflicts {
    /// They keep their rows, with NULL in the columns they do not fit (the default: every
    /// row stays visible and nothing is dropped unannounced).
    #[default]
    Null,
    /// They are left out of the table.
    Exclude,
    /// Scanning the table is an error naming them.
    Error,
}

impl std::str::FromStr for TypeConflicts {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "null" => Ok(TypeConflicts::Null),
            "exclude" => Ok(TypeConflicts::Exclude),
            "error" => Ok(TypeConflicts::Error),
            other => Err(Error::Usage(format!(
                "type_conflicts is 'null', 'exclude' or 'error', not {other:?}"
            ))),
        }
    }
}

impl std::fmt::Display for TypeConflicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TypeConflicts::Null => "null",
            TypeConflicts::Exclude => "exclude",
            TypeConflicts::Error => "error",
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
