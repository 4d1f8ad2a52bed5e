//! The columnar encoding of datasets shared by checkpoints and log entries.
//!
//! Datasets and arrays are rows of a few fixed-width columns (stored as little-endian byte
//! blobs, so decoding is a copy, not a parse per value) that point into tables of distinct
//! strings, array definitions and attribute sets. Repetition across datasets — the same
//! `units` on ten thousand arrays, the same shape — is stored once.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::frozen::{
    DsRef, Frozen, FrozenDataset, FrozenEntry, STAT_BYTES, STAT_FLOAT, STAT_INT, STAT_NONE, STAT_TS,
    STAT_UINT,
};
use super::snapshot::{AttrSet, Attrs, Dataset, Interner, Name, SegmentEntry};
use crate::error::Error;
use crate::schema::{ArraySchema, Attr, StatRepr};

/// Byte blobs as msgpack `bin`, not as arrays of integers.
mod blob {
    use serde::{Deserializer, Serializer, de::Visitor};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte blob")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(V)
    }
}

/// A column of fixed-width little-endian integers.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Col(#[serde(with = "blob")] Vec<u8>);

impl Col {
    fn push_u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn push_u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
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
    fn u32s(&self, what: &str, rows: usize) -> std::result::Result<Vec<u32>, String> {
        self.fixed(what, rows, u32::from_le_bytes)
    }
    fn u64s(&self, what: &str, rows: usize) -> std::result::Result<Vec<u64>, String> {
        self.fixed(what, rows, u64::from_le_bytes)
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
struct StatCol {
    #[serde(with = "blob")]
    kind: Vec<u8>,
    bits: Col,
    bytes: Vec<Col>,
}

impl StatCol {
    fn push(&mut self, v: Option<&StatRepr>) {
        let (kind, bits) = match v {
            None => (STAT_NONE, 0),
            Some(StatRepr::Int(x)) => (STAT_INT, *x as u64),
            Some(StatRepr::UInt(x)) => (STAT_UINT, *x),
            Some(StatRepr::Float(x)) => (STAT_FLOAT, x.to_bits()),
            Some(StatRepr::TimestampNs(x)) => (STAT_TS, *x as u64),
            Some(StatRepr::Bytes(b)) => {
                self.bytes.push(Col(b.clone()));
                (STAT_BYTES, 0)
            }
        };
        self.kind.push(kind);
        self.bits.push_u64(bits);
    }

    /// The kind and bits columns (byte values are taken in row order by the caller).
    fn columns(&self, what: &str, rows: usize) -> std::result::Result<(&[u8], Vec<u64>), String> {
        if self.kind.len() != rows {
            return Err(format!(
                "column {what} has {} kinds for {rows} rows",
                self.kind.len()
            ));
        }
        Ok((&self.kind, self.bits.u64s(what, rows)?))
    }
}

/// Datasets (and segments) in columns. Dataset rows are followed by their arrays' rows.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Columns {
    /// Distinct strings, concatenated UTF-8, with each one's end offset.
    #[serde(with = "blob")]
    strings: Vec<u8>,
    string_ends: Col,
    /// Distinct array definitions.
    schemas: Vec<ArraySchema>,
    /// Distinct attribute sets, as columns: pairs per set, then per pair its key string, value
    /// kind, and number (the value's bits, a string, or a list's length); list elements follow
    /// in `list_num`.
    set_len: Col,
    pair_key: Col,
    #[serde(with = "blob")]
    pair_kind: Vec<u8>,
    pair_num: Col,
    list_num: Col,
    ds_name: Col,
    ds_seq: Col,
    ds_attrs: Col,
    ds_arrays: Col,
    a_name: Col,
    a_schema: Col,
    a_attrs: Col,
    /// Segment string + 1; 0 when the array has no data.
    a_segment: Col,
    #[serde(with = "blob")]
    a_has_stats: Vec<u8>,
    a_min: StatCol,
    a_max: StatCol,
    a_nulls: Col,
    a_rows: Col,
    /// Segments: key, variable, size, CRC-32, and the generation that retired it (`u64::MAX`
    /// while live).
    seg_key: Col,
    seg_variable: Col,
    seg_size: Col,
    seg_crc: Col,
    seg_retired: Col,
    /// Names without rows (deleted datasets, dropped segments), by string.
    removed: Col,
}

/// Builds [`Columns`], interning as it goes.
#[derive(Default)]
pub(crate) struct ColumnsWriter {
    cols: Columns,
    n_strings: u32,
    strings: HashMap<Name, u32>,
    schemas: HashMap<usize, u32>,
    attrs: HashMap<usize, u32>,
    datasets: usize,
    arrays: usize,
    segments: usize,
    removed: usize,
    n_sets: u32,
    n_pairs: u64,
}

impl ColumnsWriter {
    fn string(&mut self, s: &Name) -> u32 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        self.cols.strings.extend_from_slice(s.as_bytes());
        self.cols
            .string_ends
            .push_u32(self.cols.strings.len() as u32);
        let i = self.n_strings;
        self.n_strings += 1;
        self.strings.insert(Name::clone(s), i);
        i
    }

    fn string_str(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let n: Name = s.into();
        self.string(&n)
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

    fn attrs(&mut self, a: &Attrs) -> u32 {
        let key = Arc::as_ptr(a) as usize;
        if let Some(&i) = self.attrs.get(&key) {
            return i;
        }
        let i = self.n_sets;
        self.n_sets += 1;
        self.cols.set_len.push_u32(a.pairs().len() as u32);
        for (k, v) in a.pairs() {
            let k = self.string(k);
            self.cols.pair_key.push_u32(k);
            let (kind, num) = match &**v {
                Attr::Bool(b) => (ATTR_BOOL, u64::from(*b)),
                Attr::Int64(x) => (ATTR_INT, *x as u64),
                Attr::Float64(x) => (ATTR_FLOAT, x.to_bits()),
                Attr::String(x) => (ATTR_STRING, u64::from(self.string_str(x))),
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
                        let id = self.string_str(x);
                        self.cols.list_num.push_u64(u64::from(id));
                    }
                    (ATTR_STRING_LIST, xs.len() as u64)
                }
            };
            self.cols.pair_kind.push(kind);
            self.cols.pair_num.push_u64(num);
            self.n_pairs += 1;
        }
        self.attrs.insert(key, i);
        i
    }

    /// A dataset name: distinct by construction, so not looked up.
    fn dataset_name(&mut self, s: &str) -> u32 {
        self.cols.strings.extend_from_slice(s.as_bytes());
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
            c.a_has_stats.push(u8::from(stats.is_some()));
            let s = stats.as_ref();
            c.a_min.push(s.and_then(|s| s.min.as_ref()));
            c.a_max.push(s.and_then(|s| s.max.as_ref()));
            c.a_nulls.push_u64(s.map_or(0, |s| s.null_count));
            c.a_rows.push_u64(s.map_or(0, |s| s.row_count));
            self.arrays += 1;
            count += 1;
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
        self.segments += 1;
    }

    pub(crate) fn removed(&mut self, name: &Name) {
        let n = self.string(name);
        self.cols.removed.push_u32(n);
        self.removed += 1;
    }

    /// The columns and their row counts (datasets, arrays, segments, removed).
    pub(crate) fn finish(self) -> (Columns, [u64; 4]) {
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

impl Decoded {
    /// The datasets as objects (a log entry's few).
    pub(crate) fn datasets(&self, interner: &mut Interner) -> Vec<(Name, Arc<Dataset>)> {
        (0..self.frozen.len())
            .map(|r| {
                (
                    interner.name(self.frozen.name(r)),
                    Arc::new(self.frozen.dataset(r).to_dataset()),
                )
            })
            .collect()
    }
}

/// The string table, read in place.
struct Strings<'a> {
    bytes: &'a [u8],
    ends: Vec<u32>,
    /// Strings made shared names so far (array names, keys, segments), by index.
    names: Vec<Option<Name>>,
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
        std::str::from_utf8(bytes).map_err(|e| format!("string table: {e}"))?;
        Ok(Strings {
            bytes,
            names: vec![None; ends.len()],
            ends,
        })
    }

    fn get(&self, i: u64) -> std::result::Result<&'a str, String> {
        let i = usize::try_from(i).map_err(|_| format!("string {i}"))?;
        let end = *self
            .ends
            .get(i)
            .ok_or_else(|| format!("string {i} of {}", self.ends.len()))? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        // The whole table is UTF-8, but an offset can split a character.
        std::str::from_utf8(&self.bytes[start..end]).map_err(|e| format!("string {i}: {e}"))
    }

    fn name(&mut self, i: u64, interner: &mut Interner) -> std::result::Result<Name, String> {
        let s = self.get(i)?;
        let slot = &mut self.names[i as usize];
        Ok(Name::clone(slot.get_or_insert_with(|| interner.name(s))))
    }
}

impl Columns {
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
        let mut strings = Strings::new(&self.strings, &self.string_ends)?;
        let schemas: Vec<Arc<ArraySchema>> = self
            .schemas
            .iter()
            .map(|s| {
                check_schema(s)?;
                Ok(interner.schema(s.clone()))
            })
            .collect::<std::result::Result<_, String>>()?;
        let attr_sets = self.decode_attr_sets(&mut strings, interner)?;

        let ds_name = self.ds_name.u32s("ds_name", n_ds)?;
        let ds_seq = self.ds_seq.u64s("ds_seq", n_ds)?;
        let ds_attrs = self.ds_attrs.u32s("ds_attrs", n_ds)?;
        let ds_arrays = self.ds_arrays.u32s("ds_arrays", n_ds)?;
        let a_name = self.a_name.u32s("a_name", n_arrays)?;
        let a_schema = self.a_schema.u32s("a_schema", n_arrays)?;
        let a_attrs = self.a_attrs.u32s("a_attrs", n_arrays)?;
        let a_segment = self.a_segment.u32s("a_segment", n_arrays)?;
        if self.a_has_stats.len() != n_arrays {
            return Err("column a_has_stats has the wrong length".into());
        }
        let (min_kind, min_bits) = self.a_min.columns("a_min", n_arrays)?;
        let (max_kind, max_bits) = self.a_max.columns("a_max", n_arrays)?;
        let a_nulls = self.a_nulls.u64s("a_nulls", n_arrays)?;
        let a_rows = self.a_rows.u64s("a_rows", n_arrays)?;
        let total: u64 = ds_arrays.iter().map(|&n| n as u64).sum();
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
            attr_sets,
            ..Frozen::default()
        };
        // File string index -> index in `f.strings`.
        let mut local: HashMap<u32, u32> = HashMap::new();
        let mut local_string =
            |i: u32, f: &mut Frozen, strings: &mut Strings<'_>, interner: &mut Interner| {
                if let Some(&j) = local.get(&i) {
                    return Ok::<u32, String>(j);
                }
                let j = f.strings.len() as u32;
                f.strings.push(strings.name(u64::from(i), interner)?);
                local.insert(i, j);
                Ok(j)
            };
        let mut min_bytes = self.a_min.bytes.iter();
        let mut max_bytes = self.a_max.bytes.iter();
        f.names.reserve(n_ds * 12);
        f.datasets.reserve_exact(n_ds);
        f.entries.reserve_exact(n_arrays);
        let mut row = 0usize;
        for d in 0..n_ds {
            let name = strings.get(u64::from(ds_name[d]))?;
            if ds_attrs[d] as usize >= f.attr_sets.len() {
                return Err(format!(
                    "attribute set {} of {}",
                    ds_attrs[d],
                    f.attr_sets.len()
                ));
            }
            let first = f.entries.len();
            for _ in 0..ds_arrays[d] {
                if a_schema[row] as usize >= f.schemas.len() {
                    return Err(format!("schema {} of {}", a_schema[row], f.schemas.len()));
                }
                if a_attrs[row] as usize >= f.attr_sets.len() {
                    return Err(format!(
                        "attribute set {} of {}",
                        a_attrs[row],
                        f.attr_sets.len()
                    ));
                }
                let array = local_string(a_name[row], &mut f, &mut strings, interner)?;
                if f.entries[first..].iter().any(|e| e.name == array) {
                    return Err(format!(
                        "dataset {name} lists array {} twice",
                        f.strings[array as usize]
                    ));
                }
                let segment = match a_segment[row] {
                    0 => 0,
                    s => local_string(s - 1, &mut f, &mut strings, interner)? + 1,
                };
                let mut bits = |kind: u8, v: u64, bytes: &mut std::slice::Iter<'_, Col>| {
                    match kind {
                        STAT_NONE | STAT_INT | STAT_UINT | STAT_FLOAT | STAT_TS => Ok(v),
                        STAT_BYTES => {
                            let b = bytes
                                .next()
                                .ok_or_else(|| format!("dataset {name} lacks a byte statistic"))?;
                            f.bytes.push(b.0.clone().into_boxed_slice());
                            Ok(f.bytes.len() as u64 - 1)
                        }
                        other => Err(format!("statistic kind {other} is unknown")),
                    }
                };
                let min = bits(min_kind[row], min_bits[row], &mut min_bytes)?;
                let max = bits(max_kind[row], max_bits[row], &mut max_bytes)?;
                f.entries.push(FrozenEntry {
                    min,
                    max,
                    nulls: a_nulls[row],
                    rows: a_rows[row],
                    name: array,
                    schema: a_schema[row],
                    attrs: a_attrs[row],
                    segment,
                    has_stats: self.a_has_stats[row] != 0,
                    min_kind: min_kind[row],
                    max_kind: max_kind[row],
                });
                row += 1;
            }
            f.names.push_str(name);
            f.datasets.push(FrozenDataset {
                seq: ds_seq[d],
                name_end: f.names.len() as u64,
                attrs: ds_attrs[d],
                entries_end: f.entries.len() as u32,
            });
        }
        let f = f.into_name_order()?;

        let seg_key = self.seg_key.u32s("seg_key", n_segs)?;
        let seg_variable = self.seg_variable.u32s("seg_variable", n_segs)?;
        let seg_size = self.seg_size.u64s("seg_size", n_segs)?;
        let seg_crc = self.seg_crc.u32s("seg_crc", n_segs)?;
        let seg_retired = self.seg_retired.u64s("seg_retired", n_segs)?;
        let mut segments = Vec::with_capacity(n_segs);
        for i in 0..n_segs {
            segments.push((
                strings.name(u64::from(seg_key[i]), interner)?,
                SegmentEntry {
                    variable: strings.name(u64::from(seg_variable[i]), interner)?,
                    size: seg_size[i],
                    crc32: seg_crc[i],
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

impl Columns {
    /// The attribute sets; values repeated across sets (a string, a number) are shared.
    fn decode_attr_sets(
        &self,
        strings: &mut Strings<'_>,
        interner: &mut Interner,
    ) -> std::result::Result<Vec<Attrs>, String> {
        let n_sets = self.set_len.0.len() / 4;
        let set_len = self.set_len.u32s("set_len", n_sets)?;
        let n_pairs = self.pair_kind.len();
        let keys = self.pair_key.u32s("pair_key", n_pairs)?;
        let nums = self.pair_num.u64s("pair_num", n_pairs)?;
        let list = self.list_num.u64s("list_num", self.list_num.0.len() / 8)?;
        let total: u64 = set_len.iter().map(|&n| u64::from(n)).sum();
        if total != n_pairs as u64 {
            return Err(format!(
                "attribute sets hold {total} pairs, but there are {n_pairs}"
            ));
        }
        let mut by_string: HashMap<u64, Arc<Attr>> = HashMap::new();
        let mut by_number: HashMap<(u8, u64), Arc<Attr>> = HashMap::new();
        let mut list_at = 0usize;
        let mut take = |n: u64| -> std::result::Result<&[u64], String> {
            let n = usize::try_from(n).map_err(|_| format!("a list of {n} values"))?;
            let out = list
                .get(list_at..list_at.saturating_add(n))
                .ok_or_else(|| format!("list values end past {}", list.len()))?;
            list_at += n;
            Ok(out)
        };
        let mut sets = Vec::with_capacity(n_sets);
        let mut pair = 0usize;
        for &len in &set_len {
            let mut entries = Vec::with_capacity(len as usize);
            for _ in 0..len {
                let key = strings.name(u64::from(keys[pair]), interner)?;
                let (kind, num) = (self.pair_kind[pair], nums[pair]);
                let value = match kind {
                    ATTR_STRING => match by_string.get(&num) {
                        Some(v) => Arc::clone(v),
                        None => {
                            let v = Arc::new(Attr::String(strings.get(num)?.to_string()));
                            by_string.insert(num, Arc::clone(&v));
                            v
                        }
                    },
                    ATTR_BOOL | ATTR_INT | ATTR_FLOAT | ATTR_TS => {
                        match by_number.get(&(kind, num)) {
                            Some(v) => Arc::clone(v),
                            None => {
                                let v = Arc::new(match kind {
                                    ATTR_BOOL => Attr::Bool(num != 0),
                                    ATTR_INT => Attr::Int64(num as i64),
                                    ATTR_FLOAT => Attr::Float64(f64::from_bits(num)),
                                    _ => Attr::TimestampNanoseconds(num as i64),
                                });
                                by_number.insert((kind, num), Arc::clone(&v));
                                v
                            }
                        }
                    }
                    ATTR_INT_LIST => Arc::new(Attr::Int64List(
                        take(num)?.iter().map(|&x| x as i64).collect(),
                    )),
                    ATTR_FLOAT_LIST => Arc::new(Attr::Float64List(
                        take(num)?.iter().map(|&x| f64::from_bits(x)).collect(),
                    )),
                    ATTR_STRING_LIST => Arc::new(Attr::StringList(
                        take(num)?
                            .iter()
                            .map(|&i| strings.get(i).map(str::to_string))
                            .collect::<std::result::Result<_, _>>()?,
                    )),
                    other => return Err(format!("attribute kind {other} is unknown")),
                };
                entries.push((key, value));
                pair += 1;
            }
            sets.push(Arc::new(AttrSet::from_pairs(entries)));
        }
        Ok(sets)
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
