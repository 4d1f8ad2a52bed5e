//! The metadata tables: `_datasets`, `_arrays`, `_attributes`.

use std::sync::Arc;

use atlas_store::{Attr, CatalogView, DType, FillValue, StatValue};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, DictionaryArray, Float64Builder, Int64Builder, ListBuilder,
    StringArray, StringBuilder, TimestampNanosecondArray, TimestampNanosecondBuilder, UInt32Array,
    UInt64Builder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, UInt32Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::MemTable;

use crate::layout::{Columns, Conflict, ConflictKind, Layout, dataset_type};
use crate::store::AtlasStore;

/// Names of the metadata tables, which can never clash with a variable (leading underscore).
pub const METADATA_TABLES: [&str; 5] = [
    "_datasets",
    "_arrays",
    "_attributes",
    "_conflicts",
    "_tables",
];

/// A store dtype's name in `_arrays.dtype`.
pub fn dtype_name(dtype: &DType) -> String {
    match dtype {
        DType::Bool => "bool".into(),
        DType::Int8 => "int8".into(),
        DType::Int16 => "int16".into(),
        DType::Int32 => "int32".into(),
        DType::Int64 => "int64".into(),
        DType::UInt8 => "uint8".into(),
        DType::UInt16 => "uint16".into(),
        DType::UInt32 => "uint32".into(),
        DType::UInt64 => "uint64".into(),
        DType::Float32 => "float32".into(),
        DType::Float64 => "float64".into(),
        DType::String => "string".into(),
        DType::Binary => "binary".into(),
        DType::TimestampNs => "timestamp_ns".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn timestamp_text(ns: i64) -> String {
    let a = TimestampNanosecondArray::from(vec![ns]);
    cast(&a, &DataType::Utf8)
        .ok()
        .and_then(|s| {
            s.as_any()
                .downcast_ref::<StringArray>()
                .map(|s| s.value(0).to_string())
        })
        .unwrap_or_else(|| ns.to_string())
}

/// An attribute as text.
pub fn attr_text(a: &Attr) -> String {
    fn list<T: ToString>(xs: &[T]) -> String {
        format!(
            "[{}]",
            xs.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
        )
    }
    match a {
        Attr::Bool(b) => b.to_string(),
        Attr::Int64(i) => i.to_string(),
        Attr::Float64(f) => f.to_string(),
        Attr::String(s) => s.clone(),
        Attr::TimestampNanoseconds(t) => timestamp_text(*t),
        Attr::Int64List(v) => list(v),
        Attr::Float64List(v) => list(v),
        Attr::StringList(v) => format!(
            "[{}]",
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn stat_text(v: &StatValue, dtype: &DType) -> String {
    match (v, dtype) {
        (StatValue::UInt(b), DType::Bool) => (*b != 0).to_string(),
        (StatValue::Int(i), _) => i.to_string(),
        (StatValue::UInt(u), _) => u.to_string(),
        (StatValue::Float(f), _) => f.to_string(),
        (StatValue::Bytes(b), _) => String::from_utf8_lossy(b).into_owned(),
        (StatValue::TimestampNs(t), _) => timestamp_text(*t),
    }
}

fn fill_text(f: &FillValue) -> String {
    match f {
        FillValue::Bool(b) => b.to_string(),
        FillValue::Int(i) => i.to_string(),
        FillValue::UInt(u) => u.to_string(),
        FillValue::Float(x) => x.to_string(),
        FillValue::String(s) => s.clone(),
        FillValue::TimestampNs(t) => timestamp_text(*t),
    }
}

fn dataset_keys(store: &AtlasStore, keys: Vec<u32>) -> Result<ArrayRef> {
    Ok(Arc::new(DictionaryArray::<UInt32Type>::try_new(
        UInt32Array::from(keys),
        Arc::clone(&store.dictionary),
    )?))
}

fn mem_table(schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<MemTable> {
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    MemTable::try_new(schema, vec![vec![batch]])
}

/// The SQL type of an attribute value.
fn attr_type(a: &Attr) -> DataType {
    let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
    match a {
        Attr::Bool(_) => DataType::Boolean,
        Attr::Int64(_) => DataType::Int64,
        Attr::Float64(_) => DataType::Float64,
        Attr::TimestampNanoseconds(_) => DataType::Timestamp(TimeUnit::Nanosecond, None),
        Attr::Int64List(_) => list(DataType::Int64),
        Attr::Float64List(_) => list(DataType::Float64),
        Attr::StringList(_) => list(DataType::Utf8),
        _ => DataType::Utf8,
    }
}

fn attr_scalar(a: &Attr, ty: &DataType) -> ScalarValue {
    match (a, ty) {
        (Attr::Bool(b), DataType::Boolean) => ScalarValue::Boolean(Some(*b)),
        (Attr::Int64(i), DataType::Int64) => ScalarValue::Int64(Some(*i)),
        (Attr::Int64(i), DataType::Float64) => ScalarValue::Float64(Some(*i as f64)),
        (Attr::Float64(f), DataType::Float64) => ScalarValue::Float64(Some(*f)),
        (Attr::TimestampNanoseconds(t), DataType::Timestamp(..)) => {
            ScalarValue::TimestampNanosecond(Some(*t), None)
        }
        (Attr::Int64List(v), DataType::List(_)) => {
            ScalarValue::List(ScalarValue::new_list_nullable(
                &v.iter()
                    .map(|x| ScalarValue::Int64(Some(*x)))
                    .collect::<Vec<_>>(),
                &DataType::Int64,
            ))
        }
        (Attr::Float64List(v), DataType::List(_)) => {
            ScalarValue::List(ScalarValue::new_list_nullable(
                &v.iter()
                    .map(|x| ScalarValue::Float64(Some(*x)))
                    .collect::<Vec<_>>(),
                &DataType::Float64,
            ))
        }
        (Attr::StringList(v), DataType::List(_)) => {
            ScalarValue::List(ScalarValue::new_list_nullable(
                &v.iter()
                    .map(|x| ScalarValue::Utf8(Some(x.clone())))
                    .collect::<Vec<_>>(),
                &DataType::Utf8,
            ))
        }
        (a, _) => ScalarValue::Utf8(Some(attr_text(a))),
    }
}

/// `_datasets`: one row per dataset, one typed column per dataset attribute key.
pub fn datasets_table(store: &AtlasStore) -> Result<MemTable> {
    let mut keys: Vec<(String, DataType)> = Vec::new();
    for ds in store.catalog.datasets() {
        for (k, v) in ds.attributes() {
            let t = attr_type(v);
            match keys.iter_mut().find(|(name, _)| name == k) {
                None => keys.push((k.to_string(), t)),
                Some((_, cur)) if *cur == t => {}
                Some((_, cur)) => {
                    *cur = match (&*cur, &t) {
                        (DataType::Int64, DataType::Float64)
                        | (DataType::Float64, DataType::Int64) => DataType::Float64,
                        _ => DataType::Utf8,
                    }
                }
            }
        }
    }
    let mut fields = vec![Field::new("dataset", dataset_type(), false)];
    let mut columns = vec![dataset_keys(
        store,
        (0..store.catalog.len() as u32).collect(),
    )?];
    for (key, ty) in &keys {
        let name = if key == "dataset" {
            "dataset_attribute"
        } else {
            key
        };
        fields.push(
            Field::new(name, ty.clone(), true)
                .with_metadata([(crate::DATASET_ATTRIBUTE.to_string(), key.clone())].into()),
        );
        let values = store.catalog.datasets().map(|ds| {
            ds.attributes()
                .find(|(k, _)| k == key)
                .map(|(_, v)| attr_scalar(v, ty))
                .unwrap_or(ScalarValue::try_from(ty).unwrap_or(ScalarValue::Null))
        });
        columns.push(if store.catalog.is_empty() {
            datafusion::arrow::array::new_empty_array(ty)
        } else {
            ScalarValue::iter_to_array(values)?
        });
    }
    mem_table(Arc::new(Schema::new(fields)), columns)
}

/// `_arrays`: one row per (dataset, array) with its definition and statistics.
pub fn arrays_table(store: &AtlasStore) -> Result<MemTable> {
    let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
    let schema = Arc::new(Schema::new(vec![
        Field::new("dataset", dataset_type(), false),
        Field::new("array", DataType::Utf8, false),
        Field::new("dtype", DataType::Utf8, false),
        Field::new("dims", list(DataType::Utf8), false),
        Field::new("shape", list(DataType::UInt64), false),
        Field::new("chunk_shape", list(DataType::UInt64), false),
        Field::new("fill_value", DataType::Utf8, true),
        Field::new("min", DataType::Utf8, true),
        Field::new("max", DataType::Utf8, true),
        Field::new("null_count", DataType::UInt64, true),
        Field::new("row_count", DataType::UInt64, false),
    ]));
    let mut keys = Vec::new();
    let mut array = StringBuilder::new();
    let mut dtype = StringBuilder::new();
    let mut dims = ListBuilder::new(StringBuilder::new());
    let mut shape = ListBuilder::new(UInt64Builder::new());
    let mut chunks = ListBuilder::new(UInt64Builder::new());
    let mut fill = StringBuilder::new();
    let mut min = StringBuilder::new();
    let mut max = StringBuilder::new();
    let mut nulls = UInt64Builder::new();
    let mut rows = UInt64Builder::new();
    for (i, ds) in store.catalog.datasets().enumerate() {
        for a in ds.arrays() {
            let schema = a.schema();
            keys.push(i as u32);
            array.append_value(a.name());
            dtype.append_value(dtype_name(&schema.dtype));
            for d in &schema.dims {
                dims.values().append_value(d);
            }
            dims.append(true);
            for s in &schema.shape {
                shape.values().append_value(*s as u64);
            }
            shape.append(true);
            for s in &schema.chunk_shape {
                chunks.values().append_value(*s as u64);
            }
            chunks.append(true);
            fill.append_option(schema.fill_value.as_ref().map(fill_text));
            let stats = a.stats();
            let st = stats.as_ref();
            min.append_option(
                st.and_then(|s| s.min.as_ref())
                    .map(|v| stat_text(v, &schema.dtype)),
            );
            max.append_option(
                st.and_then(|s| s.max.as_ref())
                    .map(|v| stat_text(v, &schema.dtype)),
            );
            nulls.append_option(st.map(|s| s.null_count));
            rows.append_value(schema.element_count());
        }
    }
    let columns: Vec<ArrayRef> = vec![
        dataset_keys(store, keys)?,
        Arc::new(array.finish()),
        Arc::new(dtype.finish()),
        Arc::new(dims.finish()),
        Arc::new(shape.finish()),
        Arc::new(chunks.finish()),
        Arc::new(fill.finish()),
        Arc::new(min.finish()),
        Arc::new(max.finish()),
        Arc::new(nulls.finish()),
        Arc::new(rows.finish()),
    ];
    // The list builders name their item field "item" and make it nullable, as declared.
    mem_table(schema, columns)
}

/// `_attributes`: one row per attribute, of datasets (`array` NULL) and arrays.
pub fn attributes_table(store: &AtlasStore) -> Result<MemTable> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("dataset", dataset_type(), false),
        Field::new("array", DataType::Utf8, true),
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
        Field::new("int_value", DataType::Int64, true),
        Field::new("float_value", DataType::Float64, true),
        Field::new("bool_value", DataType::Boolean, true),
        Field::new(
            "timestamp_value",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
    ]));
    let mut keys = Vec::new();
    let mut array = StringBuilder::new();
    let mut key = StringBuilder::new();
    let mut value = StringBuilder::new();
    let mut ints = Int64Builder::new();
    let mut floats = Float64Builder::new();
    let mut bools = BooleanBuilder::new();
    let mut times = TimestampNanosecondBuilder::new();
    let mut push = |ds: u32, arr: Option<&str>, k: &str, v: &Attr| {
        keys.push(ds);
        array.append_option(arr);
        key.append_value(k);
        value.append_value(attr_text(v));
        ints.append_option(match v {
            Attr::Int64(i) => Some(*i),
            Attr::Bool(b) => Some(i64::from(*b)),
            _ => None,
        });
        floats.append_option(match v {
            Attr::Int64(i) => Some(*i as f64),
            Attr::Float64(f) => Some(*f),
            _ => None,
        });
        bools.append_option(match v {
            Attr::Bool(b) => Some(*b),
            _ => None,
        });
        times.append_option(match v {
            Attr::TimestampNanoseconds(t) => Some(*t),
            _ => None,
        });
    };
    for (i, ds) in store.catalog.datasets().enumerate() {
        for (k, v) in ds.attributes() {
            push(i as u32, None, k, v);
        }
        for a in ds.arrays() {
            for (k, v) in a.attributes() {
                push(i as u32, Some(a.name()), k, v);
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        dataset_keys(store, keys)?,
        Arc::new(array.finish()),
        Arc::new(key.finish()),
        Arc::new(value.finish()),
        Arc::new(ints.finish()),
        Arc::new(floats.finish()),
        Arc::new(bools.finish()),
        Arc::new(times.finish()),
    ];
    mem_table(schema, columns)
}

/// Every dataset of the store whose value or coordinate has a type its table's column cannot
/// hold, table by table (tables in name order, datasets in store order), then every array of a
/// grid table off its dataset's grid (kind `shape`).
pub fn type_conflicts(catalog: &CatalogView) -> Vec<Conflict> {
    conflicts_of(catalog, &crate::tables::store_tables(catalog))
}

/// [`type_conflicts`] over the store's tables as already worked out.
fn conflicts_of(catalog: &CatalogView, tables: &[crate::TableInfo]) -> Vec<Conflict> {
    let mut out = Vec::new();
    for t in tables
        .iter()
        .filter(|t| t.kind == crate::TableKind::Variable)
    {
        // A variable no SQL type can show at all has no table, hence no conflicts.
        if let Ok(columns) = Columns::resolve("", &t.name, catalog) {
            out.extend(columns.conflicts);
        }
    }
    for grid in tables.iter().filter(|t| t.kind == crate::TableKind::Grid) {
        if let Ok(layout) = Layout::build_grid("", &grid.name, &grid.variables, catalog) {
            out.extend(
                layout
                    .conflicts
                    .into_iter()
                    .map(|c| c.conflict)
                    .filter(|c| c.kind == ConflictKind::Shape),
            );
        }
    }
    out
}

/// `_conflicts`: one row per dataset and column that does not fit its table's type.
pub fn conflicts_table(store: &AtlasStore) -> Result<MemTable> {
    let conflicts = conflicts_of(&store.catalog, store.tables());
    let text = |f: &dyn Fn(&Conflict) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(conflicts.iter().map(f)))
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("column", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("dataset", dataset_type(), false),
        Field::new("dataset_type", DataType::Utf8, false),
        Field::new("table_type", DataType::Utf8, false),
    ]));
    let columns = vec![
        text(&|c| &c.table),
        text(&|c| &c.column),
        text(&|c| c.kind.as_str()),
        dataset_keys(store, conflicts.iter().map(|c| c.ordinal).collect())?,
        text(&|c| &c.dataset_type),
        text(&|c| &c.table_type),
    ];
    mem_table(schema, columns)
}

/// `_tables`: one row per variable and grid table of the store, with its variables and dims.
pub fn tables_table(store: &AtlasStore) -> Result<MemTable> {
    use datafusion::arrow::array::{ListBuilder, StringBuilder};
    let tables = store.tables();
    let list = |f: &dyn Fn(&crate::TableInfo) -> &[String]| -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
            "item",
            DataType::Utf8,
            false,
        )));
        for t in tables {
            for x in f(t) {
                b.values().append_value(x);
            }
            b.append(true);
        }
        Arc::new(b.finish())
    };
    let item = Arc::new(Field::new("item", DataType::Utf8, false));
    let schema = Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("variables", DataType::List(Arc::clone(&item)), false),
        Field::new("dims", DataType::List(item), false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            tables.iter().map(|t| t.name.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            tables.iter().map(|t| t.kind.as_str()),
        )),
        list(&|t| &t.variables),
        list(&|t| &t.dims),
    ];
    mem_table(schema, columns)
}
