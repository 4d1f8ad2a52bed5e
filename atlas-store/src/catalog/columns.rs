//! The columnar encoding of datasets shared by checkpoints and log entries.
//!
//! Datasets and arrays are rows of a few fixed-width columns (stored as little-endian byte
//! blobs, so decoding is a copy, not a parse per value) that point into tables of distinct
//! strings, array definitions and attribute sets. Repetition across datasets — the same
//! `units` on ten thousand arrays, the same shape — is stored once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::frozen::{AttrsRef, Remaps};
use super::frozen::{
    DsRef, EntryRef, Frozen, FrozenDataset, FrozenEntry, STAT_BYTES, STAT_FLOAT, STAT_INT,
    STAT_NONE, STAT_TS, STAT_UINT,
};
use super::snapshot::{Interner, Name, SegmentEntry};
use crate::error::Error;
use crate::schema::{ArraySchema, Attr, StatRepr};

/// Byte blobs as msgpack `bin`, not as arrays of integers; read in place from the decoded
/// payload when the deserializer allows it (a checkpoint's columns are not copied again).
mod blob {
    use std::borrow::Cow;

    use serde::{Deserializer, Serializer, de::Visitor};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Cow<'de, [u8]>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte blob")
        }
        fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_vec()))
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cow<'de, [u8]>, D::Error> {
        d.deserialize_bytes(V)
    }
}

/// A column of fixed-width little-endian integers.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Col<'a>(#[serde(borrow, with = "blob")] Cow<'a, [u8]>);

impl Col<'_> {
    fn push_u32(&mut self, v: u32) {
        self.0.to_mut().extend_from_slice(&v.to_le_bytes());
    }
    fn push_u64(&mut self, v: u64) {
        self.0.to_mut().extend_from_slice(&v.to_le_bytes());
    }
    /// The column as `rows` values of `N` bytes each.
    fn fixed<const N: usize, T>(
        &self,
        what: &str,
        rows: usize,
        from: fn([u8; N]) -> T,
    ) -> std::result::Result<Vec<T>, String> {
        if self.0.len() != rows * N {
            return Err(format!(
                "column {what} has {} bytes for {rows} rows",
                self.0.len()
            ));
        }
        Ok(self
            .0
            .chunks_exact(N)
            .map(|c| from(c.try_into().unwrap_or([0; N])))
            .collect())
    }
    /// The column as `rows` values of `N` bytes, read in place.
    fn view<const N: usize>(
        &self,
        what: &str,
        rows: usize,
    ) -> std::result::Result<View<'_, N>, String> {
        if self.0.len() != rows * N {
            return Err(format!(
                "column {what} has {} bytes for {rows} rows",
                self.0.len()
            ));
        }
        Ok(View(&self.0))
    }
    fn u32s(&self, what: &str, rows: usize) -> std::result::Result<Vec<u32>, String> {
        self.fixed(what, rows, u32::from_le_bytes)
    }
    fn u64s(&self, what: &str, rows: usize) -> std::result::Result<Vec<u64>, String> {
        self.fixed(what, rows, u64::from_le_bytes)
    }
}

/// A fixed-width column read in place (its length checked when made).
#[derive(Clone, Copy)]
struct View<'a, const N: usize>(&'a [u8]);

impl View<'_, 4> {
    fn at(&self, i: usize) -> u32 {
        self.0
            .get(i * 4..i * 4 + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    }
}

impl View<'_, 8> {
    fn at(&self, i: usize) -> u64 {
        self.0
            .get(i * 8..i * 8 + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    }
}

/// Attribute value kinds in `pair_kind`.
const ATTR_BOOL: u8 = 0;
const ATTR_INT: u8 = 1;
const ATTR_FLOAT: u8 = 2;
const ATTR_STRING: u8 = 3;
const ATTR_TS: u8 = 4;
const ATTR_INT_LIST: u8 = 5;
const ATTR_FLOAT_LIST: u8 = 6;
const ATTR_STRING_LIST: u8 = 7;

/// One min or max column: kind per row, the number's bits, and byte values in row order.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct StatCol<'a> {
    #[serde(borrow, with = "blob")]
    kind: Cow<'a, [u8]>,
    #[serde(borrow)]
    bits: Col<'a>,
    #[serde(borrow)]
    bytes: Vec<Col<'a>>,
}

impl StatCol<'_> {
    fn push(&mut self, v: Option<&StatRepr>) {
        let (kind, bits) = match v {
            None => (STAT_NONE, 0),
            Some(StatRepr::Int(x)) => (STAT_INT, *x as u64),
            Some(StatRepr::UInt(x)) => (STAT_UINT, *x),
            Some(StatRepr::Float(x)) => (STAT_FLOAT, x.to_bits()),
            Some(StatRepr::TimestampNs(x)) => (STAT_TS, *x as u64),
            Some(StatRepr::Bytes(b)) => {
                self.bytes.push(Col(Cow::Owned(b.clone())));
                (STAT_BYTES, 0)
            }
        };
        self.kind.to_mut().push(kind);
        self.bits.push_u64(bits);
    }

    /// The kind and bits columns (byte values are taken in row order by the caller).
    fn columns(
        &self,
        what: &str,
        rows: usize,
    ) -> std::result::Result<(&[u8], View<'_, 8>), String> {
        if self.kind.len() != rows {
            return Err(format!(
                "column {what} has {} kinds for {rows} rows",
                self.kind.len()
            ));
        }
        Ok((&self.kind, self.bits.view::<8>(what, rows)?))
    }
}

/// Datasets (and segments) in columns. Dataset rows are followed by their arrays' rows.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Columns<'a> {
    /// Distinct strings, concatenated UTF-8, with each one's end offset.
    #[serde(borrow, with = "blob")]
    strings: Cow<'a, [u8]>,
    #[serde(borrow)]
    string_ends: Col<'a>,
    /// Distinct array definitions.
    schemas: Vec<ArraySchema>,
    /// Distinct attribute sets, as columns: pairs per set, then per pair its key string, value
    /// kind, and number (the value's bits, a string, or a list's length); list elements follow
    /// in `list_num`.
    #[serde(borrow)]
    set_len: Col<'a>,
    #[serde(borrow)]
    pair_key: Col<'a>,
    #[serde(borrow, with = "blob")]
    pair_kind: Cow<'a, [u8]>,
    #[serde(borrow)]
    pair_num: Col<'a>,
    #[serde(borrow)]
    list_num: Col<'a>,
    #[serde(borrow)]
    ds_name: Col<'a>,
    #[serde(borrow)]
    ds_seq: Col<'a>,
    #[serde(borrow)]
    ds_attrs: Col<'a>,
    #[serde(borrow)]
    ds_arrays: Col<'a>,
    #[serde(borrow)]
    a_name: Col<'a>,
    #[serde(borrow)]
    a_schema: Col<'a>,
    #[serde(borrow)]
    a_attrs: Col<'a>,
    /// Segment string + 1; 0 when the array has no data.
    #[serde(borrow)]
    a_segment: Col<'a>,
    #[serde(borrow, with = "blob")]
    a_has_stats: Cow<'a, [u8]>,
    #[serde(borrow)]
    a_min: StatCol<'a>,
    #[serde(borrow)]
    a_max: StatCol<'a>,
    #[serde(borrow)]
    a_nulls: Col<'a>,
    #[serde(borrow)]
    a_rows: Col<'a>,
    /// Segments: key, variable, size, CRC-32, and the generation that retired it (`u64::MAX`
    /// while live).
    #[serde(borrow)]
    seg_key: Col<'a>,
    #[serde(borrow)]
    seg_variable: Col<'a>,
    #[serde(borrow)]
    seg_size: Col<'a>,
    #[serde(borrow)]
    seg_crc: Col<'a>,
    #[serde(borrow)]
    seg_retired: Col<'a>,
    /// Names without rows (deleted datasets, dropped segments), by string.
    #[serde(borrow)]
    removed: Col<'a>,
    /// Per segment, the checksum its page-checksum sidecar ends with, `u64::MAX` when it has none.
    /// New in format version 3: absent (empty) in catalogs written by version 2.
    #[serde(borrow, default)]
    seg_sums: Col<'a>,
}

/// Builds [`Columns`], interning as it goes.
#[derive(Default)]
pub(crate) struct ColumnsWriter {
    cols: Columns<'static>,
    n_strings: u32,
    hasher: std::collections::hash_map::RandomState,
    strings: HashMap<u64, u32>,
    schemas: HashMap<usize, u32>,
    /// Sets written, by pointer (objects).
    attrs: HashMap<usize, u32>,
    /// Table indices of each base already written, so writing a checkpoint from columns costs
    /// array lookups, not hashing (`Remap::values` holds a string value's string id).
    remaps: Remaps,
    datasets: usize,
    arrays: usize,
    segments: usize,
    removed: usize,
    n_sets: u32,
    n_pairs: u64,
}

impl ColumnsWriter {
    /// The bytes of string `i` already written.
    fn written(&self, i: u32) -> &[u8] {
        let end = |i: u32| {
            let at = i as usize * 4;
            self.cols.string_ends.0[at..at + 4]
                .try_into()
                .map_or(0, u32::from_le_bytes) as usize
        };
        let start = if i == 0 { 0 } else { end(i - 1) };
        &self.cols.strings[start..end(i)]
    }

    /// A string, found by hash (so a million distinct values cost no key copies); a hash
    /// collision writes the string twice, which readers do not mind.
    fn string(&mut self, s: &str) -> u32 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = self.hasher.build_hasher();
        h.write(s.as_bytes());
        let key = h.finish();
        if let Some(&i) = self.strings.get(&key)
            && self.written(i) == s.as_bytes()
        {
            return i;
        }
        let i = self.dataset_name(s);
        self.strings.entry(key).or_insert(i);
        i
    }

    // Identity by pointer: snapshots share one `Arc` per distinct definition or attribute set.
    fn schema(&mut self, s: &Arc<ArraySchema>) -> u32 {
        let key = Arc::as_ptr(s) as usize;
        if let Some(&i) = self.schemas.get(&key) {
            return i;
        }
        let i = self.cols.schemas.len() as u32;
        self.cols.schemas.push((**s).clone());
        self.schemas.insert(key, i);
        i
    }

    fn frozen_string(&mut self, m: usize, f: &Frozen, i: u32) -> u32 {
        match self.remaps[m].strings[i as usize] {
            u32::MAX => {
                let j = self.string(&f.strings[i as usize]);
                self.remaps[m].strings[i as usize] = j;
                j
            }
            j => j,
        }
    }

    /// A set of a base, its pairs written from the columns.
    fn frozen_attrs(&mut self, m: usize, f: &Frozen, set: u32) -> u32 {
        if let Some(&i) = self.remaps[m].sets.get(set as usize)
            && i != u32::MAX
        {
            return i;
        }
        let i = self.n_sets;
        self.n_sets += 1;
        let pairs = f.set(set);
        for &(k, v) in pairs {
            let k = self.frozen_string(m, f, k);
            self.cols.pair_key.push_u32(k);
            match &*f.values[v as usize] {
                Attr::String(x) => {
                    let id = match self.remaps[m].values[v as usize] {
                        u32::MAX => {
                            let id = self.string(x);
                            self.remaps[m].values[v as usize] = id;
                            id
                        }
                        id => id,
                    };
                    self.cols.pair_kind.to_mut().push(ATTR_STRING);
                    self.cols.pair_num.push_u64(u64::from(id));
                }
                other => self.value(other),
            }
            self.n_pairs += 1;
        }
        self.cols.set_len.push_u32(pairs.len() as u32);
        self.remaps[m].sets[set as usize] = i;
        i
    }

    /// One pair's value: its kind, its number, and a list's elements.
    fn value(&mut self, v: &Attr) {
        let (kind, num) = match v {
            Attr::Bool(b) => (ATTR_BOOL, u64::from(*b)),
            Attr::Int64(x) => (ATTR_INT, *x as u64),
            Attr::Float64(x) => (ATTR_FLOAT, x.to_bits()),
            Attr::String(x) => (ATTR_STRING, u64::from(self.string(x))),
            Attr::TimestampNanoseconds(x) => (ATTR_TS, *x as u64),
            Attr::Int64List(xs) => {
                xs.iter()
                    .for_each(|x| self.cols.list_num.push_u64(*x as u64));
                (ATTR_INT_LIST, xs.len() as u64)
            }
            Attr::Float64List(xs) => {
                xs.iter()
                    .for_each(|x| self.cols.list_num.push_u64(x.to_bits()));
                (ATTR_FLOAT_LIST, xs.len() as u64)
            }
            Attr::StringList(xs) => {
                for x in xs {
                    let id = self.string(x);
                    self.cols.list_num.push_u64(u64::from(id));
                }
                (ATTR_STRING_LIST, xs.len() as u64)
            }
        };
        self.cols.pair_kind.to_mut().push(kind);
        self.cols.pair_num.push_u64(num);
    }

    fn attrs(&mut self, a: AttrsRef<'_>) -> u32 {
        let a = match a {
            AttrsRef::Frozen(f, s) => {
                let m = self.remaps.of(f);
                return self.frozen_attrs(m, f, s);
            }
            AttrsRef::Owned(a) => a,
        };
        let key = Arc::as_ptr(a) as usize;
        if let Some(&i) = self.attrs.get(&key) {
            return i;
        }
        let i = self.n_sets;
        self.n_sets += 1;
        for (k, v) in a.pairs() {
            let k = self.string(k);
            self.cols.pair_key.push_u32(k);
            self.value(v);
            self.n_pairs += 1;
        }
        self.cols.set_len.push_u32(a.pairs().len() as u32);
        self.attrs.insert(key, i);
        i
    }

    /// An array row of a base, written from the columns.
    fn frozen_entry(&mut self, f: &Frozen, i: usize) {
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
        let attrs = self.frozen_attrs(m, f, r.attrs);
        let seg = match r.segment {
            0 => 0,
            s => self.frozen_string(m, f, s - 1) + 1,
        };
        let c = &mut self.cols;
        c.a_name.push_u32(name);
        c.a_schema.push_u32(schema);
        c.a_attrs.push_u32(attrs);
        c.a_segment.push_u32(seg);
        c.a_has_stats.to_mut().push(u8::from(r.has_stats));
        for (col, kind, bits) in [
            (&mut c.a_min, r.min_kind, r.min),
            (&mut c.a_max, r.max_kind, r.max),
        ] {
            // A row without statistics writes none, as an object without them does.
            let kind = if r.has_stats { kind } else { STAT_NONE };
            col.kind.to_mut().push(kind);
            if kind == STAT_BYTES {
                col.bytes
                    .push(Col(Cow::Owned(f.bytes[bits as usize].to_vec())));
                col.bits.push_u64(0);
            } else {
                col.bits.push_u64(if kind == STAT_NONE { 0 } else { bits });
            }
        }
        c.a_nulls.push_u64(if r.has_stats { r.nulls } else { 0 });
        c.a_rows.push_u64(if r.has_stats { r.rows } else { 0 });
    }

    /// A dataset name: distinct by construction, so not looked up.
    fn dataset_name(&mut self, s: &str) -> u32 {
        self.cols.strings.to_mut().extend_from_slice(s.as_bytes());
        self.cols
            .string_ends
            .push_u32(self.cols.strings.len() as u32);
        self.n_strings += 1;
        self.n_strings - 1
    }

    pub(crate) fn dataset(&mut self, name: &str, ds: DsRef<'_>) {
        let n = self.dataset_name(name);
        let attrs = self.attrs(ds.attributes());
        self.cols.ds_name.push_u32(n);
        self.cols.ds_seq.push_u64(ds.seq());
        self.cols.ds_attrs.push_u32(attrs);
        let mut count = 0u32;
        for a in ds.arrays() {
            self.arrays += 1;
            count += 1;
            if let EntryRef::Frozen(f, i) = a {
                self.frozen_entry(f, i);
                continue;
            }
            let name = self.string(a.name());
            let schema = self.schema(a.schema());
            let attrs = self.attrs(a.attributes());
            let seg = a.segment().map_or(0, |s| self.string(s) + 1);
            let stats = a.stats();
            let c = &mut self.cols;
            c.a_name.push_u32(name);
            c.a_schema.push_u32(schema);
            c.a_attrs.push_u32(attrs);
            c.a_segment.push_u32(seg);
            c.a_has_stats.to_mut().push(u8::from(stats.is_some()));
            let s = stats.as_ref();
            c.a_min.push(s.and_then(|s| s.min.as_ref()));
            c.a_max.push(s.and_then(|s| s.max.as_ref()));
            c.a_nulls.push_u64(s.map_or(0, |s| s.null_count));
            c.a_rows.push_u64(s.map_or(0, |s| s.row_count));
        }
        self.cols.ds_arrays.push_u32(count);
        self.datasets += 1;
    }

    pub(crate) fn segment(&mut self, key: &Name, e: &SegmentEntry, retired: Option<u64>) {
        let k = self.string(key);
        let v = self.string(&e.variable);
        let c = &mut self.cols;
        c.seg_key.push_u32(k);
        c.seg_variable.push_u32(v);
        c.seg_size.push_u64(e.size);
        c.seg_crc.push_u32(e.crc32);
        c.seg_retired.push_u64(retired.unwrap_or(u64::MAX));
        c.seg_sums.push_u64(e.sums.map_or(u64::MAX, u64::from));
        self.segments += 1;
    }

    pub(crate) fn removed(&mut self, name: &Name) {
        let n = self.string(name);
        self.cols.removed.push_u32(n);
        self.removed += 1;
    }

    /// The columns and their row counts (datasets, arrays, segments, removed).
    pub(crate) fn finish(self) -> (Columns<'static>, [u64; 4]) {
        let counts = [
            self.datasets as u64,
            self.arrays as u64,
            self.segments as u64,
            self.removed as u64,
        ];
        (self.cols, counts)
    }
}

/// Decoded rows: the datasets as columns, in name order.
pub(crate) struct Decoded {
    pub frozen: Frozen,
    /// Segments with their retiring generation (`None`: live).
    pub segments: Vec<(Name, SegmentEntry, Option<u64>)>,
    pub removed: Vec<Name>,
}

/// The string table, read in place.
struct Strings<'a> {
    text: &'a str,
    ends: Vec<u32>,
}

impl<'a> Strings<'a> {
    fn new(bytes: &'a [u8], ends: &Col) -> std::result::Result<Self, String> {
        let ends = ends.u32s("string_ends", ends.0.len() / 4)?;
        let mut start = 0u32;
        for &end in &ends {
            if end < start || end as usize > bytes.len() {
                return Err(format!("string table ends at {end} of {}", bytes.len()));
            }
            start = end;
        }
        let text = std::str::from_utf8(bytes).map_err(|e| format!("string table: {e}"))?;
        Ok(Strings { text, ends })
    }

    fn get(&self, i: u64) -> std::result::Result<&'a str, String> {
        let i = usize::try_from(i).map_err(|_| format!("string {i}"))?;
        let end = *self
            .ends
            .get(i)
            .ok_or_else(|| format!("string {i} of {}", self.ends.len()))?
            as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        // The whole table is UTF-8, but an offset can split a character.
        self.text
            .get(start..end)
            .ok_or_else(|| format!("string {i} splits a character"))
    }

    /// String `i` as a shared name (the interner keeps one copy of each).
    fn name(&self, i: u64, interner: &mut Interner) -> std::result::Result<Name, String> {
        Ok(interner.name(self.get(i)?))
    }
}

impl Columns<'_> {
    /// Decodes and checks the rows; `counts` are the row counts recorded beside the columns.
    /// Every index is checked, so a damaged entry is an error, never a panic or a wrong entry.
    pub(crate) fn decode(
        &self,
        counts: [u64; 4],
        interner: &mut Interner,
    ) -> std::result::Result<Decoded, String> {
        let rows = |n: u64| usize::try_from(n).map_err(|_| format!("{n} rows"));
        let [n_ds, n_arrays, n_segs, n_removed] = [
            rows(counts[0])?,
            rows(counts[1])?,
            rows(counts[2])?,
            rows(counts[3])?,
        ];
        let strings = Strings::new(&self.strings, &self.string_ends)?;
        let schemas: Vec<Arc<ArraySchema>> = self
            .schemas
            .iter()
            .map(|s| {
                check_schema(s)?;
                Ok(interner.schema(s.clone()))
            })
            .collect::<std::result::Result<_, String>>()?;
        let ds_name = self.ds_name.view::<4>("ds_name", n_ds)?;
        let ds_seq = self.ds_seq.view::<8>("ds_seq", n_ds)?;
        let ds_attrs = self.ds_attrs.view::<4>("ds_attrs", n_ds)?;
        let ds_arrays = self.ds_arrays.view::<4>("ds_arrays", n_ds)?;
        let a_name = self.a_name.view::<4>("a_name", n_arrays)?;
        let a_schema = self.a_schema.view::<4>("a_schema", n_arrays)?;
        let a_attrs = self.a_attrs.view::<4>("a_attrs", n_arrays)?;
        let a_segment = self.a_segment.view::<4>("a_segment", n_arrays)?;
        if self.a_has_stats.len() != n_arrays {
            return Err("column a_has_stats has the wrong length".into());
        }
        let (min_kind, min_bits) = self.a_min.columns("a_min", n_arrays)?;
        let (max_kind, max_bits) = self.a_max.columns("a_max", n_arrays)?;
        let a_nulls = self.a_nulls.view::<8>("a_nulls", n_arrays)?;
        let a_rows = self.a_rows.view::<8>("a_rows", n_arrays)?;
        let total: u64 = (0..n_ds).map(|d| u64::from(ds_arrays.at(d))).sum();
        if total != n_arrays as u64 {
            return Err(format!(
                "datasets list {total} arrays, but there are {n_arrays} array rows"
            ));
        }
        if u32::try_from(n_arrays).is_err() {
            return Err(format!("{n_arrays} array rows"));
        }

        let mut f = Frozen {
            schemas,
            ..Frozen::default()
        };
        let mut local = Local(vec![u32::MAX; strings.ends.len()]);
        let n_sets = self.set_len.0.len() / 4;
        let decode_rows = |f: &mut Frozen,
                           local: &mut Local,
                           interner: &mut Interner|
         -> std::result::Result<(), String> {
            let mut min_bytes = self.a_min.bytes.iter();
            let mut max_bytes = self.a_max.bytes.iter();
            f.names.reserve(n_ds * 12);
            f.datasets.reserve_exact(n_ds);
            f.entries.reserve_exact(n_arrays);
            let mut row = 0usize;
            for d in 0..n_ds {
                let name = strings.get(u64::from(ds_name.at(d)))?;
                if ds_attrs.at(d) as usize >= n_sets {
                    return Err(format!("attribute set {} of {n_sets}", ds_attrs.at(d)));
                }
                let first = f.entries.len();
                for _ in 0..ds_arrays.at(d) {
                    if a_schema.at(row) as usize >= f.schemas.len() {
                        return Err(format!(
                            "schema {} of {}",
                            a_schema.at(row),
                            f.schemas.len()
                        ));
                    }
                    if a_attrs.at(row) as usize >= n_sets {
                        return Err(format!("attribute set {} of {n_sets}", a_attrs.at(row)));
                    }
                    let array = local.get(a_name.at(row), &mut f.strings, &strings, interner)?;
                    if f.entries[first..].iter().any(|e| e.name == array) {
                        return Err(format!(
                            "dataset {name} lists array {} twice",
                            f.strings[array as usize]
                        ));
                    }
                    let segment = match a_segment.at(row) {
                        0 => 0,
                        s => local.get(s - 1, &mut f.strings, &strings, interner)? + 1,
                    };
                    let mut bits =
                        |kind: u8, v: u64, bytes: &mut std::slice::Iter<'_, Col>| match kind {
                            STAT_NONE | STAT_INT | STAT_UINT | STAT_FLOAT | STAT_TS => Ok(v),
                            STAT_BYTES => {
                                let b = bytes.next().ok_or_else(|| {
                                    format!("dataset {name} lacks a byte statistic")
                                })?;
                                f.bytes.push(Box::from(&*b.0));
                                Ok(f.bytes.len() as u64 - 1)
                            }
                            other => Err(format!("statistic kind {other} is unknown")),
                        };
                    let min = bits(min_kind[row], min_bits.at(row), &mut min_bytes)?;
                    let max = bits(max_kind[row], max_bits.at(row), &mut max_bytes)?;
                    f.entries.push(FrozenEntry {
                        min,
                        max,
                        nulls: a_nulls.at(row),
                        rows: a_rows.at(row),
                        name: array,
                        schema: a_schema.at(row),
                        attrs: a_attrs.at(row),
                        segment,
                        has_stats: self.a_has_stats[row] != 0,
                        min_kind: min_kind[row],
                        max_kind: max_kind[row],
                    });
                    row += 1;
                }
                f.names.push_str(name);
                f.datasets.push(FrozenDataset {
                    seq: ds_seq.at(d),
                    name_end: f.names.len() as u64,
                    attrs: ds_attrs.at(d),
                    entries_end: f.entries.len() as u32,
                });
            }
            Ok(())
        };
        // Attribute sets are decoded on a second thread when there are many (a million
        // datasets' own `station_id`s), while this one decodes the dataset and array rows.
        let (attr_part, rows) = if self.pair_kind.len() >= PARALLEL_PAIRS {
            std::thread::scope(|s| {
                let part = s.spawn(|| self.decode_attr_sets(&strings));
                let rows = decode_rows(&mut f, &mut local, interner);
                let part = part
                    .join()
                    .unwrap_or_else(|_| Err("decoding attribute sets panicked".into()));
                (part, rows)
            })
        } else {
            let part = self.decode_attr_sets(&strings);
            (part, decode_rows(&mut f, &mut local, interner))
        };
        rows?;
        let part = attr_part?;
        // The sets' keys join the string table after the rows' names.
        let offset = f.strings.len() as u32;
        f.strings.extend(part.strings);
        f.values = part.values;
        f.set_ends = part.set_ends;
        f.pairs = part.pairs;
        for (k, _) in &mut f.pairs {
            *k += offset;
        }
        let f = f.into_name_order()?;

        let seg_key = self.seg_key.u32s("seg_key", n_segs)?;
        let seg_variable = self.seg_variable.u32s("seg_variable", n_segs)?;
        let seg_size = self.seg_size.u64s("seg_size", n_segs)?;
        let seg_crc = self.seg_crc.u32s("seg_crc", n_segs)?;
        let seg_retired = self.seg_retired.u64s("seg_retired", n_segs)?;
        let seg_sums = if self.seg_sums.0.is_empty() {
            vec![u64::MAX; n_segs]
        } else {
            self.seg_sums.u64s("seg_sums", n_segs)?
        };
        let mut segments = Vec::with_capacity(n_segs);
        for i in 0..n_segs {
            segments.push((
                strings.name(u64::from(seg_key[i]), interner)?,
                SegmentEntry {
                    variable: strings.name(u64::from(seg_variable[i]), interner)?,
                    size: seg_size[i],
                    crc32: seg_crc[i],
                    sums: u32::try_from(seg_sums[i]).ok(),
                },
                (seg_retired[i] != u64::MAX).then_some(seg_retired[i]),
            ));
        }
        let removed = self
            .removed
            .u32s("removed", n_removed)?
            .into_iter()
            .map(|i| strings.name(u64::from(i), interner))
            .collect::<std::result::Result<_, _>>()?;
        Ok(Decoded {
            frozen: f,
            segments,
            removed,
        })
    }
}

impl Columns<'_> {
    /// The attribute sets, into `f`'s set columns; values repeated across sets (a string, a
    /// number) are stored once.
    fn decode_attr_sets(&self, strings: &Strings<'_>) -> std::result::Result<AttrPart, String> {
        let mut local = Local(vec![u32::MAX; strings.ends.len()]);
        let mut interner = Interner::default();
        let mut part = AttrPart::default();
        let f = &mut part;
        let n_sets = self.set_len.0.len() / 4;
        let set_len = self.set_len.u32s("set_len", n_sets)?;
        let n_pairs = self.pair_kind.len();
        let keys = self.pair_key.view::<4>("pair_key", n_pairs)?;
        let nums = self.pair_num.view::<8>("pair_num", n_pairs)?;
        let list = self.list_num.u64s("list_num", self.list_num.0.len() / 8)?;
        let total: u64 = set_len.iter().map(|&n| u64::from(n)).sum();
        if total != n_pairs as u64 || u32::try_from(n_pairs).is_err() {
            return Err(format!(
                "attribute sets hold {total} pairs, but there are {n_pairs}"
            ));
        }
        // Value of each string of the table, once made (`u32::MAX`: not yet).
        let mut by_string: Vec<u32> = vec![u32::MAX; strings.ends.len()];
        let mut by_number: HashMap<(u8, u64), u32> = HashMap::new();
        let mut list_at = 0usize;
        let mut take = |n: u64| -> std::result::Result<&[u64], String> {
            let n = usize::try_from(n).map_err(|_| format!("a list of {n} values"))?;
            let out = list
                .get(list_at..list_at.saturating_add(n))
                .ok_or_else(|| format!("list values end past {}", list.len()))?;
            list_at += n;
            Ok(out)
        };
        let push = |f: &mut AttrPart, v: Attr| {
            f.values.push(Arc::new(v));
            f.values.len() as u32 - 1
        };
        f.set_ends.reserve_exact(n_sets);
        f.pairs.reserve_exact(n_pairs);
        let mut pair = 0usize;
        for &len in &set_len {
            for _ in 0..len {
                let key = local.get(keys.at(pair), &mut f.strings, strings, &mut interner)?;
                let (kind, num) = (self.pair_kind[pair], nums.at(pair));
                let value = match kind {
                    ATTR_STRING => {
                        let text = strings.get(num)?;
                        match by_string[num as usize] {
                            u32::MAX => {
                                let v = push(f, Attr::String(text.to_string()));
                                by_string[num as usize] = v;
                                v
                            }
                            v => v,
                        }
                    }
                    ATTR_BOOL | ATTR_INT | ATTR_FLOAT | ATTR_TS => {
                        match by_number.get(&(kind, num)) {
                            Some(&v) => v,
                            None => {
                                let v = push(
                                    f,
                                    match kind {
                                        ATTR_BOOL => Attr::Bool(num != 0),
                                        ATTR_INT => Attr::Int64(num as i64),
                                        ATTR_FLOAT => Attr::Float64(f64::from_bits(num)),
                                        _ => Attr::TimestampNanoseconds(num as i64),
                                    },
                                );
                                by_number.insert((kind, num), v);
                                v
                            }
                        }
                    }
                    ATTR_INT_LIST => {
                        let v = Attr::Int64List(take(num)?.iter().map(|&x| x as i64).collect());
                        push(f, v)
                    }
                    ATTR_FLOAT_LIST => {
                        let v = Attr::Float64List(
                            take(num)?.iter().map(|&x| f64::from_bits(x)).collect(),
                        );
                        push(f, v)
                    }
                    ATTR_STRING_LIST => {
                        let v = Attr::StringList(
                            take(num)?
                                .iter()
                                .map(|&i| strings.get(i).map(str::to_string))
                                .collect::<std::result::Result<_, _>>()?,
                        );
                        push(f, v)
                    }
                    other => return Err(format!("attribute kind {other} is unknown")),
                };
                f.pairs.push((key, value));
                pair += 1;
            }
            f.set_ends.push(f.pairs.len() as u32);
        }
        Ok(part)
    }
}

/// Attribute sets decoded apart from the rows: their keys index `strings` here.
#[derive(Default)]
struct AttrPart {
    strings: Vec<Name>,
    values: Vec<Arc<Attr>>,
    set_ends: Vec<u32>,
    pairs: Vec<(u32, u32)>,
}

/// Attribute pairs above which a checkpoint's sets are decoded on a second thread (unit tests
/// take that path with a handful; the integration tests take the other).
const PARALLEL_PAIRS: usize = if cfg!(test) { 8 } else { 200_000 };

/// File string index -> index in the output's `strings` (`u32::MAX`: not yet), made on first
/// use; strings only datasets use (their names) are never made shared names.
struct Local(Vec<u32>);

impl Local {
    fn get(
        &mut self,
        i: u32,
        out: &mut Vec<Name>,
        strings: &Strings<'_>,
        interner: &mut Interner,
    ) -> std::result::Result<u32, String> {
        if let Some(&j) = self.0.get(i as usize)
            && j != u32::MAX
        {
            return Ok(j);
        }
        let name = strings.name(u64::from(i), interner)?;
        let j = out.len() as u32;
        out.push(name);
        self.0[i as usize] = j;
        Ok(j)
    }
}

/// The structural checks a checksum cannot make: ranks agree, chunks fit, counts addressable.
pub(crate) fn check_schema(s: &ArraySchema) -> std::result::Result<(), String> {
    if s.dims.len() != s.shape.len() || s.chunk_shape.len() != s.shape.len() {
        return Err(format!(
            "an array definition has {} dims, shape {:?} and chunk shape {:?}",
            s.dims.len(),
            s.shape,
            s.chunk_shape
        ));
    }
    if s.chunk_shape
        .iter()
        .zip(&s.shape)
        .any(|(&c, &n)| c == 0 || c > n.max(1))
    {
        return Err(format!(
            "chunk shape {:?} does not tile shape {:?}",
            s.chunk_shape, s.shape
        ));
    }
    let count = s
        .shape
        .iter()
        .try_fold(1u64, |acc, &n| acc.checked_mul(n as u64));
    if count.is_none_or(|c| c > isize::MAX as u64) {
        return Err(format!("shape {:?} has too many elements", s.shape));
    }
    Ok(())
}

/// Maps a decode failure to the error naming the file.
pub(crate) fn corrupt(path: &str) -> impl Fn(String) -> Error + '_ {
    move |reason| Error::CorruptCatalog {
        path: path.to_string(),
        reason,
    }
}
