//! A snapshot of everything the catalog knows, for planners and `info` screens: no I/O.

use array_format::{ArrayStats, DType, StatValue};

use crate::atlas::{Atlas, lock};
use crate::schema::{ArraySchema, Attr};

/// One dataset as the catalog describes it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DatasetInfo {
    /// Dataset name.
    pub name: String,
    /// Dataset attributes, in the order they were first set.
    pub attributes: Vec<(String, Attr)>,
    /// Arrays, in the order they were defined.
    pub arrays: Vec<ArrayInfo>,
}

/// One array of one dataset as the catalog describes it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ArrayInfo {
    /// Array (variable) name.
    pub name: String,
    /// Definition: dtype, dims, shape, chunk shape, fill value.
    pub schema: ArraySchema,
    /// Statistics of the array's current contents: min and max of the cells not equal to the
    /// fill value, the count of cells equal to it, and the element count. `None` while the array
    /// has unflushed writes (the committed statistics would be stale).
    pub stats: Option<ArrayStats>,
    /// Array attributes, in the order they were first set.
    pub attributes: Vec<(String, Attr)>,
}

impl Atlas {
    /// Every dataset with its attributes, arrays, definitions and statistics, from the catalog
    /// this handle sees (its own unflushed changes included). Costs no I/O, so a query planner
    /// can call it for 10,000 datasets.
    pub fn describe(&self) -> Vec<DatasetInfo> {
        let st = lock(&self.inner.state);
        st.working
            .iter()
            .map(|(name, ds)| DatasetInfo {
                name: name.to_string(),
                attributes: ds
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                arrays: ds
                    .arrays
                    .iter()
                    .map(|entry| {
                        let array = &*entry.name;
                        let key = (name.to_string(), array.to_string());
                        let stats = if st.pending.contains_key(&key) {
                            None
                        } else if entry.segment.is_none() {
                            Some(unwritten_stats(array, &entry.schema))
                        } else {
                            entry.stats.as_ref().map(|s| s.to_stats(array))
                        };
                        ArrayInfo {
                            name: array.to_string(),
                            schema: (*entry.schema).clone(),
                            stats,
                            attributes: entry
                                .attributes
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                        }
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Statistics of an array no data was ever written to: every cell holds the fill value (a null),
/// or the dtype's zero when there is none.
fn unwritten_stats(name: &str, schema: &ArraySchema) -> ArrayStats {
    let n = schema.element_count();
    let zero = match (&schema.fill_value, &schema.dtype) {
        _ if n == 0 => None,
        (Some(_), _) => None,
        (None, DType::Int8 | DType::Int16 | DType::Int32 | DType::Int64) => Some(StatValue::Int(0)),
        (None, DType::UInt8 | DType::UInt16 | DType::UInt32 | DType::UInt64 | DType::Bool) => {
            Some(StatValue::UInt(0))
        }
        (None, DType::Float32 | DType::Float64) => Some(StatValue::Float(0.0)),
        (None, DType::String | DType::Binary) => Some(StatValue::Bytes(Vec::new())),
        (None, DType::TimestampNs) => Some(StatValue::TimestampNs(0)),
        (None, _) => None,
    };
    let nulls = if schema.fill_value.is_some() { n } else { 0 };
    ArrayStats {
        name: name.to_string(),
        min: zero.clone(),
        max: zero,
        null_count: nulls,
        row_count: n,
    }
}
