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

use super::snapshot::{ArrayEntry, AttrSet, Attrs, Dataset, Name};
use crate::schema::{ArraySchema, Attr, StatRepr, StatsRepr};

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
    /// Index of an attribute set (see [`Frozen::set_ends`]).
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
    /// Array names, segment keys and attribute keys.
    pub strings: Vec<Name>,
    pub schemas: Vec<Arc<ArraySchema>>,
    /// Distinct attribute values.
    pub values: Vec<Arc<Attr>>,
    /// Attribute sets: set `s` holds `pairs[set_ends[s - 1]..set_ends[s]]`, each a key (into
    /// `strings`) and a value (into `values`). A dataset's own `station_id` costs one pair and
    /// one value, not a set object.
    pub set_ends: Vec<u32>,
    pub pairs: Vec<(u32, u32)>,
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

    /// The pairs of attribute set `set`.
    pub(crate) fn set(&self, set: u32) -> &[(u32, u32)] {
        let s = set as usize;
        let start = if s == 0 {
            0
        } else {
            self.set_ends[s - 1] as usize
        };
        &self.pairs[start..self.set_ends[s] as usize]
    }

    /// Number of attribute sets.
    pub(crate) fn sets(&self) -> usize {
        self.set_ends.len()
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

/// Table indices of source bases already carried into an output (`u32::MAX`: not yet), so
/// copying a row of a base costs array lookups, not hashing. The fold ([`FrozenBuilder`]) and
/// the checkpoint writer both use it.
#[derive(Default)]
pub(crate) struct Remaps(Vec<Remap>);

/// See [`Remaps`]: one source's table indices in the output.
pub(crate) struct Remap {
    source: usize,
    pub strings: Vec<u32>,
    pub schemas: Vec<u32>,
    pub sets: Vec<u32>,
    pub values: Vec<u32>,
}

impl Remaps {
    /// The index of `f`'s remap, made on first use.
    pub(crate) fn of(&mut self, f: &Frozen) -> usize {
        let ptr = f as *const Frozen as usize;
        if let Some(i) = self.0.iter().position(|r| r.source == ptr) {
            return i;
        }
        self.0.push(Remap {
            source: ptr,
            strings: vec![u32::MAX; f.strings.len()],
            schemas: vec![u32::MAX; f.schemas.len()],
            sets: vec![u32::MAX; f.sets()],
            values: vec![u32::MAX; f.values.len()],
        });
        self.0.len() - 1
    }
}

impl std::ops::Index<usize> for Remaps {
    type Output = Remap;
    fn index(&self, m: usize) -> &Remap {
        &self.0[m]
    }
}

impl std::ops::IndexMut<usize> for Remaps {
    fn index_mut(&mut self, m: usize) -> &mut Remap {
        &mut self.0[m]
    }
}

/// Builds a [`Frozen`] from datasets given in name order. Rows of other `Frozen`s are copied
/// by index; objects share table rows by pointer.
#[derive(Default)]
pub(crate) struct FrozenBuilder {
    out: Frozen,
    strings: HashMap<Name, u32>,
    schemas: HashMap<usize, u32>,
    sets: HashMap<usize, u32>,
    values: HashMap<usize, u32>,
    remaps: Remaps,
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

    fn value(&mut self, v: &Arc<Attr>) -> u32 {
        let key = Arc::as_ptr(v) as usize;
        if let Some(&i) = self.values.get(&key) {
            return i;
        }
        let i = self.out.values.len() as u32;
        self.out.values.push(Arc::clone(v));
        self.values.insert(key, i);
        i
    }

    fn end_set(&mut self) -> u32 {
        self.out.set_ends.push(self.out.pairs.len() as u32);
        self.out.set_ends.len() as u32 - 1
    }

    fn frozen_string(&mut self, m: usize, f: &Frozen, i: u32) -> u32 {
        let slot = self.remaps[m].strings[i as usize];
        if slot != u32::MAX {
            return slot;
        }
        let j = self.string(&f.strings[i as usize]);
        self.remaps[m].strings[i as usize] = j;
        j
    }

    fn frozen_set(&mut self, m: usize, f: &Frozen, set: u32) -> u32 {
        let slot = self.remaps[m].sets[set as usize];
        if slot != u32::MAX {
            return slot;
        }
        for &(k, v) in f.set(set) {
            let k = self.frozen_string(m, f, k);
            // Distinct within the source already: copied once, not looked up.
            let v = match self.remaps[m].values[v as usize] {
                u32::MAX => {
                    self.out.values.push(Arc::clone(&f.values[v as usize]));
                    let j = self.out.values.len() as u32 - 1;
                    self.remaps[m].values[v as usize] = j;
                    j
                }
                j => j,
            };
            self.out.pairs.push((k, v));
        }
        let j = self.end_set();
        self.remaps[m].sets[set as usize] = j;
        j
    }

    fn attrs(&mut self, a: AttrsRef<'_>) -> u32 {
        match a {
            AttrsRef::Frozen(f, set) => {
                let m = self.remaps.of(f);
                self.frozen_set(m, f, set)
            }
            AttrsRef::Owned(a) => {
                let key = Arc::as_ptr(a) as usize;
                if let Some(&i) = self.sets.get(&key) {
                    return i;
                }
                for (k, v) in a.pairs() {
                    let (k, v) = (self.string(k), self.value(v));
                    self.out.pairs.push((k, v));
                }
                let i = self.end_set();
                self.sets.insert(key, i);
                i
            }
        }
    }

    fn frozen_entry(&mut self, f: &Frozen, i: usize) -> FrozenEntry {
        let m = self.remaps.of(f);
        let r = f.entries[i];
        let name = self.frozen_string(m, f, r.name);
        let schema = match self.remaps[m].schemas[r.schema as usize] {
            u32::MAX => {
                let j = self.schema(&f.schemas[r.schema as usize]);
                self.remaps[m].schemas[r.schema as usize] = j;
                j
            }
            j => j,
        };
        let attrs = self.frozen_set(m, f, r.attrs);
        let segment = match r.segment {
            0 => 0,
            s => self.frozen_string(m, f, s - 1) + 1,
        };
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

    fn owned_entry(&mut self, a: &ArrayEntry) -> FrozenEntry {
        let name = self.string(&a.name);
        let schema = self.schema(&a.schema);
        let attrs = self.attrs(AttrsRef::Owned(&a.attributes));
        let segment = a.segment.as_ref().map_or(0, |s| self.string(s) + 1);
        let s = a.stats.as_ref();
        let (min_kind, min) = stat_bits(s.and_then(|s| s.min.as_ref()), &mut self.out.bytes);
        let (max_kind, max) = stat_bits(s.and_then(|s| s.max.as_ref()), &mut self.out.bytes);
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

    /// Appends a dataset; names must come in increasing order.
    pub(crate) fn push(&mut self, name: &str, ds: DsRef<'_>) {
        self.out.names.push_str(name);
        let attrs = self.attrs(ds.attributes());
        for e in ds.arrays() {
            let row = match e {
                EntryRef::Frozen(f, i) => self.frozen_entry(f, i),
                EntryRef::Owned(a) => self.owned_entry(a),
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
        self.out.pairs.shrink_to_fit();
        self.out.values.shrink_to_fit();
        self.out.set_ends.shrink_to_fit();
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

    pub(crate) fn attributes(self) -> AttrsRef<'a> {
        match self {
            DsRef::Owned(d) => AttrsRef::Owned(&d.attributes),
            DsRef::Frozen(f, r) => AttrsRef::Frozen(f, f.datasets[r].attrs),
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
                attributes: self.attributes().to_attrs(),
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

    pub(crate) fn attributes(self) -> AttrsRef<'a> {
        match self {
            EntryRef::Owned(a) => AttrsRef::Owned(&a.attributes),
            EntryRef::Frozen(f, i) => AttrsRef::Frozen(f, f.entries[i].attrs),
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
                attributes: self.attributes().to_attrs(),
                segment: self.segment().cloned(),
                stats: self.stats(),
            },
        }
    }
}

/// An attribute set: a column range or a set object.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AttrsRef<'a> {
    Owned(&'a Attrs),
    Frozen(&'a Frozen, u32),
}

impl<'a> AttrsRef<'a> {
    pub(crate) fn iter(self) -> impl Iterator<Item = (&'a str, &'a Attr)> + 'a {
        let (owned, frozen) = match self {
            AttrsRef::Owned(a) => (Some(a.pairs().iter()), None),
            AttrsRef::Frozen(f, s) => (None, Some((f, f.set(s).iter()))),
        };
        owned
            .into_iter()
            .flatten()
            .map(|(k, v)| (&**k, &**v))
            .chain(frozen.into_iter().flat_map(|(f, pairs)| {
                pairs.map(move |&(k, v)| (&*f.strings[k as usize], &*f.values[v as usize]))
            }))
    }

    pub(crate) fn get(self, key: &str) -> Option<&'a Attr> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The set as a shared object (keys and values shared with the columns).
    pub(crate) fn to_attrs(self) -> Attrs {
        match self {
            AttrsRef::Owned(a) => Arc::clone(a),
            AttrsRef::Frozen(f, s) => Arc::new(AttrSet::from_pairs(
                f.set(s)
                    .iter()
                    .map(|&(k, v)| {
                        (
                            Name::clone(&f.strings[k as usize]),
                            Arc::clone(&f.values[v as usize]),
                        )
                    })
                    .collect(),
            )),
        }
    }
}

/// A dataset a snapshot holds in its changes: objects, or a row of a log entry's columns
/// (what `open` replays, without making objects of it).
#[derive(Debug, Clone)]
pub(crate) enum Held {
    Owned(Arc<Dataset>),
    Row(Arc<Frozen>, u32),
}

impl Held {
    pub(crate) fn get(&self) -> DsRef<'_> {
        match self {
            Held::Owned(d) => DsRef::Owned(d),
            Held::Row(f, r) => DsRef::Frozen(f, *r as usize),
        }
    }
}
