//! What the catalog knows, for planners and `info` screens: no I/O.
//!
//! [`Atlas::catalog`] hands out a [`CatalogView`], the handle's snapshot itself (shared, O(1) to
//! take), read through borrowed [`DatasetRef`]s and [`ArrayRef`]s: planning over a million
//! datasets copies nothing. [`Atlas::describe`] builds owned copies, for callers that want them.

use std::collections::HashSet;
use std::sync::Arc;

use array_format::ArrayStats;

use crate::atlas::{Atlas, lock};
use crate::catalog::{DsRef, EntryRef, Snapshot};
use crate::schema::{ArraySchema, Attr};

/// The catalog as one handle sees it at one moment (its own unflushed changes included).
/// Cheap to take and to clone; later changes to the handle do not show in it.
#[derive(Clone)]
pub struct CatalogView {
    snap: Snapshot,
    /// (dataset, array) pairs with unflushed writes: their committed statistics are stale.
    unflushed: Arc<HashSet<(String, String)>>,
}

impl std::fmt::Debug for CatalogView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogView")
            .field("generation", &self.snap.generation)
            .field("datasets", &self.snap.len())
            .finish_non_exhaustive()
    }
}

impl CatalogView {
    /// The generation the snapshot was committed as (the handle's unflushed changes on top).
    pub fn generation(&self) -> u64 {
        self.snap.generation
    }

    /// Number of datasets.
    pub fn len(&self) -> usize {
        self.snap.len()
    }

    /// Whether the store has no dataset.
    pub fn is_empty(&self) -> bool {
        self.snap.len() == 0
    }

    /// Datasets in store order.
    pub fn datasets(&self) -> impl ExactSizeIterator<Item = DatasetRef<'_>> + '_ {
        self.snap.iter().map(move |(name, ds)| DatasetRef {
            view: self,
            name,
            ds,
        })
    }

    /// One dataset by name.
    pub fn dataset(&self, name: &str) -> Option<DatasetRef<'_>> {
        let (name, ds) = self.snap.get(name)?;
        Some(DatasetRef {
            view: self,
            name,
            ds,
        })
    }
}

/// One dataset of a [`CatalogView`].
#[derive(Clone, Copy)]
pub struct DatasetRef<'a> {
    view: &'a CatalogView,
    name: &'a str,
    ds: DsRef<'a>,
}

impl std::fmt::Debug for DatasetRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetRef")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'a> DatasetRef<'a> {
    /// The dataset's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Dataset attributes, in the order they were first set.
    pub fn attributes(self) -> impl Iterator<Item = (&'a str, &'a Attr)> + 'a {
        self.ds.attributes().iter()
    }

    /// Arrays, in the order they were defined.
    pub fn arrays(self) -> impl Iterator<Item = ArrayRef<'a>> + 'a {
        let (view, name) = (self.view, self.name);
        self.ds.arrays().map(move |entry| ArrayRef {
            view,
            dataset: name,
            entry,
        })
    }

    /// One array by name.
    pub fn array(&self, name: &str) -> Option<ArrayRef<'a>> {
        let entry = self.ds.array(name)?;
        Some(ArrayRef {
            view: self.view,
            dataset: self.name,
            entry,
        })
    }
}

/// One array of one dataset of a [`CatalogView`].
#[derive(Clone, Copy)]
pub struct ArrayRef<'a> {
    view: &'a CatalogView,
    dataset: &'a str,
    entry: EntryRef<'a>,
}

impl std::fmt::Debug for ArrayRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrayRef")
            .field("dataset", &self.dataset)
            .field("name", &&**self.entry.name())
            .finish_non_exhaustive()
    }
}

impl<'a> ArrayRef<'a> {
    /// Array (variable) name.
    pub fn name(&self) -> &'a str {
        self.entry.name()
    }

    /// Definition: dtype, dims, shape, chunk shape, fill value.
    pub fn schema(&self) -> &'a ArraySchema {
        self.entry.schema()
    }

    /// The definition as a shared handle: arrays with the same definition share one.
    pub fn shared_schema(&self) -> Arc<ArraySchema> {
        Arc::clone(self.entry.schema())
    }

    /// Statistics of the array's current contents (see [`ArrayInfo::stats`]).
    pub fn stats(&self) -> Option<ArrayStats> {
        let name = &**self.entry.name();
        if self
            .view
            .unflushed
            .contains(&(self.dataset.to_string(), name.to_string()))
        {
            None
        } else if self.entry.segment().is_none() {
            Some(unwritten_stats(name, self.entry.schema()))
        } else {
            self.entry.stats().map(|s| s.to_stats(name))
        }
    }

    /// Array attributes, in the order they were first set.
    pub fn attributes(self) -> impl Iterator<Item = (&'a str, &'a Attr)> + 'a {
        self.entry.attributes().iter()
    }
}

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
    /// The catalog this handle sees (its own unflushed changes included), shared: O(1), no
    /// I/O, and nothing copied, so a planner can call it for a million datasets.
    pub fn catalog(&self) -> CatalogView {
        let st = lock(&self.inner.state);
        CatalogView {
            snap: st.working.clone(),
            unflushed: Arc::new(st.pending.keys().cloned().collect()),
        }
    }

    /// Every dataset with its attributes, arrays, definitions and statistics, as owned copies
    /// (see [`Atlas::catalog`] for the same without copying). Costs no I/O.
    pub fn describe(&self) -> Vec<DatasetInfo> {
        let view = self.catalog();
        view.datasets()
            .map(|ds| DatasetInfo {
                name: ds.name().to_string(),
                attributes: ds
                    .attributes()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                arrays: ds
                    .arrays()
                    .map(|a| ArrayInfo {
                        name: a.name().to_string(),
                        schema: a.schema().clone(),
                        stats: a.stats(),
                        attributes: a
                            .attributes()
                            .map(|(k, v)| (k.to_string(), v.clone()))
                            .collect(),
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
    let zero = match &schema.fill_value {
        _ if n == 0 => None,
        Some(_) => None,
        None => crate::schema::zero_of(&schema.dtype),
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
