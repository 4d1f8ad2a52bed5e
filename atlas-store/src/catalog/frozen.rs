//! The columnar base of a snapshot: every dataset as of the last fold, in flat columns.
//!
//! A store of a million datasets holds four million array entries. As objects (a map node, an
//! `Arc<Dataset>`, a `Vec` of entries each holding names, pointers and statistics) that is about
//! a kilobyte per dataset; as columns it is one 56-byte row per array entry plus a 24-byte row
//! per dataset, with names in one string and definitions and attribute sets in shared tables.
//! A [`Frozen`] never changes: a snapshot lays its changes since the fold over it (see
//! [`super::Snapshot`]) and folds them in when it writes a checkpoint or opens a store.
//!
//! Readers see a dataset through [`DsRef`] and an array through [`EntryRef`], which read either
//! a column row or a changed dataset's objects.

use std::collections::HashMap;
use std::sync::Arc;

use super::snapshot::{ArrayEntry, Attrs, Dataset, Name};
use crate::schema::{ArraySchema, StatRepr, StatsRepr};

/// Statistic kinds of a [`FrozenEntry`] (the same codes as the catalog columns).
pub(crate) const STAT_NONE: u8 = 0;
pub(crate) const STAT_INT: u8 = 1;
pub(crate) const STAT_UINT: u8 = 2;
pub(crate) const STAT_FLOAT: u8 = 3;
pub(crate) const STAT_BYTES: u8 = 4;
pub(crate) const STAT_TS: u8 = 5;

/// A statistic as a kind and 64 bits (for bytes: an index into [`Frozen::bytes`]).
pub(crate) fn stat_bits(v: Option<&StatRepr>, bytes: &mut Vec<Box<[u8]>>) -> (u8, u64) {
    match v {
        None => (STAT_NONE, 0),
        Some(StatRepr::Int(x)) => (STAT_INT, *x as u64),
        Some(StatRepr::UInt(x)) => (STAT_UINT, *x),
        Some(StatRepr::Float(x)) => (STAT_FLOAT, x.to_bits()),
        Some(StatRepr::TimestampNs(x)) => (STAT_TS, *x as u64),
        Some(StatRepr::Bytes(b)) => {
            bytes.push(b.clone().into_boxed_slice());
            (STAT_BYTES, bytes.len() as u64 - 1)
        }
    }
}

/// One dataset row. Its name ends at `name_end` in [`Frozen::names`] and its entries end at
/// `entries_end`; both start where the previous row's end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrozenDataset {
    pub seq: u64,
    pub name_end: u64,
    pub attrs: u32,
    pub entries_end: u32,
}

/// One array entry row: indices into the shared tables, and the statistics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrozenEntry {
    pub min: u64,
    pub max: u64,
    pub nulls: u64,
    pub rows: u64,
    /// Index into [`Frozen::strings`].
    pub name: u32,
    /// Index into [`Frozen::schemas`].
    pub schema: u32,
    /// Index into [`Frozen::attr_sets`].
    pub attrs: u32,
    /// Index into [`Frozen::strings`] + 1; 0 when the array has no data.
    pub segment: u32,
    pub has_stats: bool,
    pub min_kind: u8,
    pub max_kind: u8,
}

/// Datasets in columns, in name order.
#[derive(Debug, Default)]
pub(crate) struct Frozen {
    /// Array names and segment keys.
    pub strings: Vec<Name>,
    pub schemas: Vec<Arc<ArraySchema>>,
    pub attr_sets: Vec<Attrs>,
    /// Byte-valued statistics (string arrays), by index.
    pub bytes: Vec<Box<[u8]>>,
    /// Dataset names, concatenated in name order.
    pub names: String,
    pub datasets: Vec<FrozenDataset>,
    pub entries: Vec<FrozenEntry>,
    /// Row indices in store order, `(seq, name)`.
    pub order: Vec<u32>,
}

impl Frozen {
    pub(crate) fn len(&self) -> usize {
        self.datasets.len()
    }

    pub(crate) fn name(&self, row: usize) -> &str {
        let start = if row == 0 {
            0
        } else {
            self.datasets[row - 1].name_end as usize
        };
        &self.names[start..self.datasets[row].name_end as usize]
    }

    fn entry_range(&self, row: usize) -> std::ops::Range<usize> {
        let start = if row == 0 {
            0
        } else {
            self.datasets[row - 1].entries_end as usize
        };
        start..self.datasets[row].entries_end as usize
    }

    /// The row of a dataset.
    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.datasets.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.name(mid).cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    pub(crate) fn dataset(&self, row: usize) -> DsRef<'_> {
        DsRef::Frozen(self, row)
    }

    /// These rows in name order (a decoder takes rows in file order); a name listed twice is an
    /// error.
    pub(crate) fn into_name_order(mut self) -> Result<Frozen, String> {
        let n = self.len();
        let sorted = (1..n).all(|r| self.name(r - 1) < self.name(r));
        if !sorted {
            let mut rows: Vec<usize> = (0..n).collect();
            rows.sort_by(|&a, &b| self.name(a).cmp(self.name(b)));
            let mut names = String::with_capacity(self.names.len());
            let mut datasets = Vec::with_capacity(n);
            let mut entries = Vec::with_capacity(self.entries.len());
            for (i, &r) in rows.iter().enumerate() {
                if i > 0 && self.name(rows[i - 1]) == self.name(r) {
                    return Err(format!("dataset {} is listed twice", self.name(r)));
                }
                names.push_str(self.name(r));
                entries.extend_from_slice(&self.entries[self.entry_range(r)]);
                datasets.push(FrozenDataset {
                    name_end: names.len() as u64,
                    entries_end: entries.len() as u32,
                    ..self.datasets[r]
                });
            }
            self.names = names;
            self.datasets = datasets;
            self.entries = entries;
        }
        self.names.shrink_to_fit();
        self.sort_order();
        Ok(self)
    }

    /// Sets `order` from the rows' sequence numbers.
    pub(crate) fn sort_order(&mut self) {
        let mut order: Vec<u32> = (0..self.datasets.len() as u32).collect();
        // Rows are in name order, so (seq, row) orders as (seq, name).
        order.sort_unstable_by_key(|&r| (self.datasets[r as usize].seq, r));
        self.order = order;
    }
}

/// Builds a [`Frozen`] from datasets given in name order, sharing table rows by pointer.
#[derive(Default)]
pub(crate) struct FrozenBuilder {
    out: Frozen,
    strings: HashMap<Name, u32>,
    schemas: HashMap<usize, u32>,
    attrs: HashMap<usize, u32>,
}

impl FrozenBuilder {
    fn string(&mut self, s: &Name) -> u32 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.out.strings.len() as u32;
        self.out.strings.push(Name::clone(s));
        self.strings.insert(Name::clone(s), i);
        i
    }

    fn schema(&mut self, s: &Arc<ArraySchema>) -> u32 {
        let key = Arc::as_ptr(s) as usize;
        if let Some(&i) = self.schemas.get(&key) {
            return i;
        }
        let i = self.out.schemas.len() as u32;
        self.out.schemas.push(Arc::clone(s));
        self.schemas.insert(key, i);
        i
    }

    fn attrs(&mut self, a: &Attrs) -> u32 {
        let key = Arc::as_ptr(a) as usize;
        if let Some(&i) = self.attrs.get(&key) {
            return i;
        }
        let i = self.out.attr_sets.len() as u32;
        self.out.attr_sets.push(Arc::clone(a));
        self.attrs.insert(key, i);
        i
    }

    /// Appends a dataset; names must come in increasing order.
    pub(crate) fn push(&mut self, name: &str, ds: DsRef<'_>) {
        debug_assert!(
            self.out.datasets.is_empty()
                || self.out.name(self.out.datasets.len() - 1) < name
        );
        self.out.names.push_str(name);
        let attrs = self.attrs(ds.attributes());
        for e in ds.arrays() {
            let name = self.string(e.name());
            let schema = self.schema(e.schema());
            let attrs = self.attrs(e.attributes());
            let segment = e.segment().map_or(0, |s| self.string(s) + 1);
            let row = match e {
                EntryRef::Frozen(f, i) => {
                    let r = f.entries[i];
                    let mut bits = |kind: u8, v: u64| {
                        if kind == STAT_BYTES {
                            self.out.bytes.push(f.bytes[v as usize].clone());
                            self.out.bytes.len() as u64 - 1
                        } else {
                            v
                        }
                    };
                    FrozenEntry {
                        min: bits(r.min_kind, r.min),
                        max: bits(r.max_kind, r.max),
                        name,
                        schema,
                        attrs,
                        segment,
                        ..r
                    }
                }
                EntryRef::Owned(a) => {
                    let s = a.stats.as_ref();
                    let (min_kind, min) =
                        stat_bits(s.and_then(|s| s.min.as_ref()), &mut self.out.bytes);
                    let (max_kind, max) =
                        stat_bits(s.and_then(|s| s.max.as_ref()), &mut self.out.bytes);
                    FrozenEntry {
                        min,
                        max,
                        nulls: s.map_or(0, |s| s.null_count),
                        rows: s.map_or(0, |s| s.row_count),
                        name,
                        schema,
                        attrs,
                        segment,
                        has_stats: s.is_some(),
                        min_kind,
                        max_kind,
                    }
                }
            };
            self.out.entries.push(row);
        }
        self.out.datasets.push(FrozenDataset {
            seq: ds.seq(),
            name_end: self.out.names.len() as u64,
            attrs,
            entries_end: self.out.entries.len() as u32,
        });
    }

    pub(crate) fn finish(mut self) -> Frozen {
        self.out.names.shrink_to_fit();
        self.out.datasets.shrink_to_fit();
        self.out.entries.shrink_to_fit();
        self.out.sort_order();
        self.out
    }
}

/// A dataset: a column row or a changed dataset's objects.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DsRef<'a> {
    Owned(&'a Arc<Dataset>),
    Frozen(&'a Frozen, usize),
}

impl<'a> DsRef<'a> {
    pub(crate) fn seq(self) -> u64 {
        match self {
            DsRef::Owned(d) => d.seq,
            DsRef::Frozen(f, r) => f.datasets[r].seq,
        }
    }

    pub(crate) fn attributes(self) -> &'a Attrs {
        match self {
            DsRef::Owned(d) => &d.attributes,
            DsRef::Frozen(f, r) => &f.attr_sets[f.datasets[r].attrs as usize],
        }
    }

    pub(crate) fn arrays(self) -> Entries<'a> {
        match self {
            DsRef::Owned(d) => Entries::Owned(d.arrays.iter()),
            DsRef::Frozen(f, r) => Entries::Frozen(f, f.entry_range(r)),
        }
    }

    pub(crate) fn array(self, name: &str) -> Option<EntryRef<'a>> {
        self.arrays().find(|e| &**e.name() == name)
    }

    /// The dataset as a shared object.
    pub(crate) fn shared(self) -> Arc<Dataset> {
        match self {
            DsRef::Owned(d) => Arc::clone(d),
            DsRef::Frozen(..) => Arc::new(self.to_dataset()),
        }
    }

    /// The dataset as objects (to change it).
    pub(crate) fn to_dataset(self) -> Dataset {
        match self {
            DsRef::Owned(d) => (**d).clone(),
            DsRef::Frozen(..) => Dataset {
                seq: self.seq(),
                attributes: Arc::clone(self.attributes()),
                arrays: self.arrays().map(EntryRef::to_entry).collect(),
            },
        }
    }
}

/// The arrays of a [`DsRef`].
pub(crate) enum Entries<'a> {
    Owned(std::slice::Iter<'a, ArrayEntry>),
    Frozen(&'a Frozen, std::ops::Range<usize>),
}

impl<'a> Iterator for Entries<'a> {
    type Item = EntryRef<'a>;

    fn next(&mut self) -> Option<EntryRef<'a>> {
        match self {
            Entries::Owned(it) => it.next().map(EntryRef::Owned),
            Entries::Frozen(f, range) => range.next().map(|i| EntryRef::Frozen(f, i)),
        }
    }
}

/// One array of one dataset: a column row or an entry object.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EntryRef<'a> {
    Owned(&'a ArrayEntry),
    Frozen(&'a Frozen, usize),
}

impl<'a> EntryRef<'a> {
    pub(crate) fn name(self) -> &'a Name {
        match self {
            EntryRef::Owned(a) => &a.name,
            EntryRef::Frozen(f, i) => &f.strings[f.entries[i].name as usize],
        }
    }

    pub(crate) fn schema(self) -> &'a Arc<ArraySchema> {
        match self {
            EntryRef::Owned(a) => &a.schema,
            EntryRef::Frozen(f, i) => &f.schemas[f.entries[i].schema as usize],
        }
    }

    pub(crate) fn attributes(self) -> &'a Attrs {
        match self {
            EntryRef::Owned(a) => &a.attributes,
            EntryRef::Frozen(f, i) => &f.attr_sets[f.entries[i].attrs as usize],
        }
    }

    pub(crate) fn segment(self) -> Option<&'a Name> {
        match self {
            EntryRef::Owned(a) => a.segment.as_ref(),
            EntryRef::Frozen(f, i) => match f.entries[i].segment {
                0 => None,
                s => Some(&f.strings[s as usize - 1]),
            },
        }
    }

    /// The statistics of the bytes in `segment`.
    pub(crate) fn stats(self) -> Option<StatsRepr> {
        match self {
            EntryRef::Owned(a) => a.stats.clone(),
            EntryRef::Frozen(f, i) => {
                let r = &f.entries[i];
                if !r.has_stats {
                    return None;
                }
                let value = |kind: u8, bits: u64| match kind {
                    STAT_INT => Some(StatRepr::Int(bits as i64)),
                    STAT_UINT => Some(StatRepr::UInt(bits)),
                    STAT_FLOAT => Some(StatRepr::Float(f64::from_bits(bits))),
                    STAT_TS => Some(StatRepr::TimestampNs(bits as i64)),
                    STAT_BYTES => Some(StatRepr::Bytes(f.bytes[bits as usize].to_vec())),
                    _ => None,
                };
                Some(StatsRepr {
                    min: value(r.min_kind, r.min),
                    max: value(r.max_kind, r.max),
                    null_count: r.nulls,
                    row_count: r.rows,
                })
            }
        }
    }

    pub(crate) fn to_entry(self) -> ArrayEntry {
        match self {
            EntryRef::Owned(a) => a.clone(),
            EntryRef::Frozen(..) => ArrayEntry {
                name: Name::clone(self.name()),
                schema: Arc::clone(self.schema()),
                attributes: Arc::clone(self.attributes()),
                segment: self.segment().cloned(),
                stats: self.stats(),
            },
        }
    }
}
