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

/// One dataset's array of one of the table's variables.
#[derive(Debug, Clone)]
pub struct ValueSource {
    /// The array's definition, shared with the catalog.
    pub schema: Arc<ArraySchema>,
    /// Its statistics, if committed.
    pub stats: Option<ArrayStats>,
    /// Whether its column holds it: its type fits the column's and its dims and shape are the
    /// dataset's grid (if not, the column is NULL for this dataset, or the dataset is left out,
    /// per [`TypeConflicts`]).
    pub fits: bool,
}

/// One dataset of the table: its grid and the arrays of the table's variables on it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Dataset name.
    pub dataset: String,
    /// The grid's shape, per axis: the shape of the dataset's first array among the table's
    /// variables (in the table's order).
    pub shape: Vec<usize>,
    /// That array's chunk shape (units of work align to it).
    pub chunk_shape: Vec<usize>,
    /// For each value column, the dataset's array of that variable (`None`: it has none).
    pub values: Vec<Option<ValueSource>>,
    /// For each table dimension, the grid's axis along it (`None`: the dataset lacks the dim).
    pub axis_of_dim: Vec<Option<usize>>,
    /// For each coordinate column, the dataset's coordinate array, if it has one of the same
    /// length whose type the column holds.
    pub coords: Vec<Option<CoordSource>>,
}

impl Entry {
    /// Rows this dataset contributes.
    pub fn rows(&self) -> u64 {
        self.shape.iter().map(|&n| n as u64).product()
    }

    /// Length of table dimension `d` in this dataset (`None` if it lacks it).
    pub fn dim_len(&self, d: usize) -> Option<usize> {
        self.axis_of_dim[d].map(|a| self.shape[a])
    }

    /// The rows along the first axis that units of work align to: a multiple of every
    /// array's first chunk length, so no chunk of any variable spans two units (the largest
    /// of them when that multiple would pass 2^16 rows).
    pub fn unit_align(&self) -> usize {
        fn gcd(a: usize, b: usize) -> usize {
            if b == 0 { a } else { gcd(b, a % b) }
        }
        let firsts = || {
            self.values
                .iter()
                .flatten()
                .filter_map(|s| s.schema.chunk_shape.first().copied())
                .map(|c| c.max(1))
        };
        let mut lcm = self.chunk_shape.first().copied().unwrap_or(1).max(1);
        for c in firsts() {
            lcm = lcm / gcd(lcm, c) * c;
            if lcm > 1 << 16 {
                return firsts().max().unwrap_or(1);
            }
        }
        lcm
    }

    /// Value column `v`'s array, when its column holds it.
    pub fn value(&self, v: usize) -> Option<&ValueSource> {
        self.values[v].as_ref().filter(|s| s.fits)
    }
}

/// The table of one variable, or of several variables on one grid (a grid table).
#[derive(Debug)]
pub struct Layout {
    /// The table's name: the variable, or the grid table's name.
    pub name: String,
    /// The variables, one value column each, in column order.
    pub variables: Vec<String>,
    /// Columns: `dataset`, `<dim>_index`…, coordinates…, the values.
    pub schema: SchemaRef,
    /// Dimensions in first-seen order.
    pub dims: Vec<String>,
    /// For each coordinate column, the dimension it belongs to.
    pub coord_dims: Vec<usize>,
    /// Types of the value columns.
    pub value_types: Vec<DataType>,
    /// Types of the coordinate columns.
    pub coord_types: Vec<DataType>,
    /// Datasets holding any of the variables, in store order.
    pub entries: Vec<Entry>,
    /// Position of each entry's dataset in the store (its key in the `dataset` dictionary).
    pub ordinals: Vec<u32>,
    /// Entries with a value or coordinate their column cannot hold, by entry.
    pub conflicts: Vec<EntryConflict>,
    /// Whether only datasets holding every variable are in it ([`Layout::retain_complete`]).
    pub complete: bool,
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

    /// Column index of value column `v`.
    pub fn value_col(&self, v: usize) -> usize {
        1 + self.dims.len() + self.coord_dims.len() + v
    }

    /// What a column is.
    pub fn column_kind(&self, col: usize) -> ColumnKind {
        let first_value = self.value_col(0);
        if col == 0 {
            ColumnKind::Dataset
        } else if col <= self.dims.len() {
            ColumnKind::Index(col - 1)
        } else if col < first_value {
            ColumnKind::Coord(col - 1 - self.dims.len())
        } else {
            ColumnKind::Value(col - first_value)
        }
    }

    /// Builds the table of `variable` from a catalog snapshot. Datasets whose array or
    /// coordinate has a type the column cannot hold stay in the table and are listed in
    /// [`Layout::conflicts`]; the scan applies the [`TypeConflicts`] policy to them.
    pub fn build(location: &str, variable: &str, catalog: &CatalogView) -> Result<Layout> {
        Self::build_grid(location, variable, &[variable.to_string()], catalog)
    }

    /// Builds table `name` of several variables sharing their dimensions (a grid table): one
    /// row per grid position of every dataset holding any of them, one value column each
    /// (NULL where a dataset lacks the variable). A dataset's array whose dims or shape are not
    /// the dataset's grid is a conflict of kind [`ConflictKind::Shape`].
    pub fn build_grid(
        location: &str,
        name: &str,
        variables: &[String],
        catalog: &CatalogView,
    ) -> Result<Layout> {
        let columns = Columns::resolve_grid(location, name, variables, catalog)?;
        let Columns {
            dims,
            value_types,
            coord_dims,
            coord_types,
            conflicts: mut found_conflicts,
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
        for (variable, ty) in variables.iter().zip(&value_types) {
            fields.push(Field::new(variable, ty.clone(), true));
            what.push(format!("the value of {variable:?}"));
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, f) in fields.iter().enumerate() {
            if let Some(&j) = seen.get(f.name().as_str()) {
                return Err(Error::NameCollision {
                    variable: name.to_string(),
                    column: f.name().clone(),
                    first: what[j].clone(),
                    second: what[i].clone(),
                });
            }
            seen.insert(f.name(), i);
        }

        let value_misfits: HashSet<(u32, &str)> = found_conflicts
            .iter()
            .filter(|c| c.kind == ConflictKind::Value)
            .map(|c| (c.ordinal, c.column.as_str()))
            .collect();
        let mut entries = Vec::new();
        let mut ordinals = Vec::new();
        let mut shape_conflicts = Vec::new();
        for (ordinal, ds) in catalog.datasets().enumerate() {
            let arrays: Vec<_> = variables.iter().map(|v| ds.array(v)).collect();
            let Some(grid) = arrays.iter().flatten().next() else {
                continue;
            };
            let ordinal = u32::try_from(ordinal).map_err(|_| {
                Error::Usage(format!("store {location} has more than 2^32 datasets"))
            })?;
            let grid = grid.shared_schema();
            let values = variables
                .iter()
                .zip(&arrays)
                .map(|(variable, a)| {
                    let a = a.as_ref()?;
                    let s = a.schema();
                    let on_grid = s.dims == grid.dims && s.shape == grid.shape;
                    if !on_grid {
                        shape_conflicts.push(Conflict {
                            table: name.to_string(),
                            column: variable.clone(),
                            kind: ConflictKind::Shape,
                            ordinal,
                            dataset: ds.name().to_string(),
                            dataset_type: grid_text(&s.dims, &s.shape),
                            table_type: grid_text(&grid.dims, &grid.shape),
                        });
                    }
                    Some(ValueSource {
                        schema: a.shared_schema(),
                        stats: a.stats(),
                        fits: on_grid && !value_misfits.contains(&(ordinal, variable.as_str())),
                    })
                })
                .collect();
            let axis_of_dim = dims
                .iter()
                .map(|d| grid.dims.iter().position(|x| x == d))
                .collect::<Vec<_>>();
            let coords = coord_dims
                .iter()
                .zip(&coord_types)
                .map(|(&d, ty)| {
                    let axis = axis_of_dim[d]?;
                    let len = grid.shape[axis];
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
                shape: grid.shape.clone(),
                chunk_shape: grid.chunk_shape.clone(),
                values,
                axis_of_dim,
                coords,
            });
            ordinals.push(ordinal);
        }
        found_conflicts.extend(shape_conflicts);
        found_conflicts.sort_by_key(|c| c.ordinal);
        let conflicts = found_conflicts
            .into_iter()
            .filter_map(|c| {
                let entry = ordinals.binary_search(&c.ordinal).ok()?;
                Some(EntryConflict { entry, conflict: c })
            })
            .collect();
        Ok(Layout {
            name: name.to_string(),
            variables: variables.to_vec(),
            schema: Arc::new(Schema::new(fields)),
            dims,
            coord_dims,
            value_types,
            coord_types,
            entries,
            ordinals,
            conflicts,
            complete: false,
        })
    }
}

impl Layout {
    /// Keeps only the datasets holding every variable of the table on every dimension: the
    /// rows an inner join of the variables' tables on `dataset` and every index column pairs.
    pub fn retain_complete(&mut self) {
        let entries = std::mem::take(&mut self.entries);
        let ordinals = std::mem::take(&mut self.ordinals);
        // Each entry's index once the incomplete ones are gone.
        let mut new_index = vec![None; entries.len()];
        for (i, (e, o)) in entries.into_iter().zip(ordinals).enumerate() {
            if e.values.iter().all(Option::is_some) && e.axis_of_dim.iter().all(Option::is_some) {
                new_index[i] = Some(self.entries.len());
                self.entries.push(e);
                self.ordinals.push(o);
            }
        }
        self.conflicts.retain_mut(|c| match new_index[c.entry] {
            Some(n) => {
                c.entry = n;
                true
            }
            None => false,
        });
        self.complete = true;
    }
}

/// `(time, depth) 3×5`: an array's dims and shape, for conflict messages.
fn grid_text(dims: &[String], shape: &[usize]) -> String {
    let shape: Vec<String> = shape.iter().map(|n| n.to_string()).collect();
    format!("({}) {}", dims.join(", "), shape.join("×"))
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
    /// A variable of a grid table whose dims or shape differ from its dataset's grid.
    Shape,
}

impl ConflictKind {
    /// `value` or `coordinate`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::Value => "value",
            ConflictKind::Coordinate => "coordinate",
            ConflictKind::Shape => "shape",
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

/// The columns of a table and the datasets that do not fit them, worked out from the catalog
/// without building the per-dataset entries.
#[derive(Debug)]
pub struct Columns {
    /// Dimensions in first-seen order.
    pub dims: Vec<String>,
    /// Types of the value columns, one per variable.
    pub value_types: Vec<DataType>,
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
        Self::resolve_grid(location, variable, &[variable.to_string()], catalog)
    }

    /// Resolves the columns of table `table` of `variables`, which must have the same
    /// dimensions (in the same order) over the datasets holding them.
    pub fn resolve_grid(
        location: &str,
        table: &str,
        variables: &[String],
        catalog: &CatalogView,
    ) -> Result<Columns> {
        // Per variable: its dims in first-seen order and the datasets holding it.
        let mut var_dims: Vec<Vec<String>> = vec![Vec::new(); variables.len()];
        let mut holders: Vec<Vec<(u32, &str, &DType)>> = vec![Vec::new(); variables.len()];
        let mut found = Vec::new();
        for (ordinal, ds) in catalog.datasets().enumerate() {
            let mut any = false;
            for (v, variable) in variables.iter().enumerate() {
                let Some(array) = ds.array(variable) else {
                    continue;
                };
                any = true;
                for d in &array.schema().dims {
                    if !var_dims[v].contains(d) {
                        var_dims[v].push(d.clone());
                    }
                }
                holders[v].push((ordinal as u32, ds.name(), &array.schema().dtype));
            }
            if any {
                found.push((ordinal as u32, ds));
            }
        }
        if let Some(v) = holders.iter().position(|h| h.is_empty()) {
            let mut known: Vec<&str> = catalog
                .datasets()
                .flat_map(|d| d.arrays().map(|a| a.name()))
                .collect();
            known.sort_unstable();
            known.dedup();
            return Err(Error::UnknownVariable {
                variable: variables[v].clone(),
                location: location.to_string(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
        let dims = var_dims[0].clone();
        if let Some(v) = var_dims.iter().position(|d| *d != dims) {
            return Err(Error::MixedDims {
                table: table.to_string(),
                first: variables[0].clone(),
                first_dims: dims.join(", "),
                other: variables[v].clone(),
                other_dims: var_dims[v].join(", "),
            });
        }
        let mut value_types = Vec::with_capacity(variables.len());
        let mut conflicts = Vec::new();
        for (variable, holders) in variables.iter().zip(&holders) {
            let Some((ty, more)) = resolve_column(table, variable, ConflictKind::Value, holders)
            else {
                return Err(Error::UnsupportedType {
                    variable: variable.clone(),
                    dataset: holders[0].1.to_string(),
                    dtype: format!("{:?}", holders[0].2),
                });
            };
            value_types.push(ty);
            conflicts.extend(more);
        }

        // Coordinate columns: dims other than the variables themselves that some dataset
        // holding a variable describes with a 1-D array of the same name.
        let mut coord_dims = Vec::new();
        let mut coord_types: Vec<DataType> = Vec::new();
        for (d, dim) in dims.iter().enumerate() {
            if variables.contains(dim) {
                continue;
            }
            let holders: Vec<(u32, &str, &DType)> = found
                .iter()
                .filter_map(|(ordinal, ds)| {
                    let c = ds.array(dim)?;
                    let s = c.schema();
                    (s.dims.len() == 1 && &s.dims[0] == dim)
                        .then(|| (*ordinal, ds.name(), &s.dtype))
                })
                .collect();
            let Some((ty, more)) = resolve_column(table, dim, ConflictKind::Coordinate, &holders)
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
            value_types,
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
    /// Value column `v` (the value of the table's `v`-th variable).
    Value(usize),
}
