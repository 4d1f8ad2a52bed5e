//! The in-memory catalog: one immutable, shared snapshot per generation.
//!
//! A [`Snapshot`] is built from persistent maps (`imbl`), so cloning one costs O(1) and changing
//! one dataset copies only the path to it: a commit that touched ten datasets costs ten
//! datasets, whatever the size of the store. Names, array definitions and attribute sets are
//! interned ([`Interner`]) and shared by `Arc`, so ten thousand datasets that repeat the same
//! `units`/`long_name` hold one copy of them.

use std::collections::HashMap;
use std::sync::Arc;

use super::frozen::{AttrsRef, DsRef, EntryRef, Frozen, FrozenBuilder, Held};
use crate::config::{Codec, MetaFormat};
use crate::error::{Error, Result};
use crate::schema::{ArraySchema, Attr, StatsRepr};

/// An interned name (dataset, array, dimension, segment key).
pub(crate) type Name = Arc<str>;

/// An attribute set: keys in the order they were first set, keys and values shared with every
/// other set that repeats them (ten thousand `units = "degC"` are one key and one value).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AttrSet {
    entries: Vec<(Name, Arc<Attr>)>,
}

impl AttrSet {
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Attr)> + '_ {
        self.entries.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Sets `key`, keeping its place if it was set before.
    pub(crate) fn insert(&mut self, key: Name, value: Arc<Attr>) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn pairs(&self) -> &[(Name, Arc<Attr>)] {
        &self.entries
    }

    pub(crate) fn from_pairs(entries: Vec<(Name, Arc<Attr>)>) -> Self {
        AttrSet { entries }
    }
}

/// A shared attribute set.
pub(crate) type Attrs = Arc<AttrSet>;

/// Persisted store settings, fixed at `create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Settings {
    /// Compression of segment blocks.
    pub codec: Codec,
    /// Encoding of version-1 catalog files (kept so a version-1 store keeps its file names).
    pub meta_format: MetaFormat,
    /// Compression of version-1 catalog files.
    pub meta_compression: Codec,
}

/// One array of one dataset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ArrayEntry {
    pub name: Name,
    pub schema: Arc<ArraySchema>,
    pub attributes: Attrs,
    /// Segment holding the array's bytes (keyed by dataset name inside it); `None` until data is
    /// written, in which case every cell reads as the fill value.
    pub segment: Option<Name>,
    /// Statistics of the bytes in `segment`.
    pub stats: Option<StatsRepr>,
}

/// One dataset: its place in the store's order, attributes and arrays.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dataset {
    /// Creation order: datasets list by `(seq, name)`.
    pub seq: u64,
    pub attributes: Attrs,
    /// Arrays in definition order (a dataset has a handful; a linear scan beats a map).
    pub arrays: Vec<ArrayEntry>,
}

impl Dataset {
    pub(crate) fn array(&self, name: &str) -> Option<&ArrayEntry> {
        self.arrays.iter().find(|a| &*a.name == name)
    }

    pub(crate) fn array_mut(&mut self, name: &str) -> Option<&mut ArrayEntry> {
        self.arrays.iter_mut().find(|a| &*a.name == name)
    }
}

/// One segment file and how many arrays of the snapshot reference it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentEntry {
    pub variable: Name,
    pub size: u64,
    pub crc32: u32,
    /// The checksum the segment's page-checksum sidecar ends with (`None`: written before page checksums,
    /// read unchecked).
    pub sums: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LiveSegment {
    pub entry: SegmentEntry,
    pub refs: u64,
}

/// Where a snapshot's lineage was last written in full, for the checkpoint policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Lineage {
    /// Format version of the state this snapshot was loaded from (1: a version-1 catalog that
    /// the next commit upgrades).
    pub base_format: u32,
    /// Bytes of that checkpoint.
    pub checkpoint_bytes: u64,
    /// Commits and log bytes since it.
    pub commits_since: u64,
    pub log_bytes_since: u64,
}

/// Everything the store holds as of one generation. Cheap to clone.
///
/// Datasets live in two layers: `frozen`, the columns of every dataset as of the last fold
/// (opening a store or writing a checkpoint folds), and `changed`, the datasets created,
/// changed or deleted since, as objects in a persistent map. A commit touches only `changed`;
/// a reader looks there first.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub generation: u64,
    pub commit_id: Name,
    pub settings: Settings,
    pub frozen: Arc<Frozen>,
    /// Datasets changed since the fold: `Some` as they now are, `None` deleted.
    pub changed: imbl::OrdMap<Name, Option<Held>>,
    /// Store order `(seq, name)` of the datasets in `changed` that exist.
    pub order: imbl::OrdSet<(u64, Name)>,
    /// Number of datasets.
    len: usize,
    pub next_seq: u64,
    /// Segments some array references, with their reference counts.
    pub segments: imbl::OrdMap<Name, LiveSegment>,
    /// Segments no array references any more, with the generation that dropped them;
    /// `compact`/`vacuum` delete them.
    pub retired: imbl::OrdMap<Name, (SegmentEntry, u64)>,
    pub lineage: Lineage,
}

/// A bit per base row.
struct Shadowed(Vec<u64>);

impl Shadowed {
    fn contains(&self, row: usize) -> bool {
        self.0
            .get(row / 64)
            .is_some_and(|w| w & (1 << (row % 64)) != 0)
    }
}

/// Datasets in store order: the base's order merged with the changed datasets' order.
pub(crate) struct SnapshotIter<'a> {
    snap: &'a Snapshot,
    shadowed: Shadowed,
    left: usize,
    frozen: std::iter::Peekable<std::slice::Iter<'a, u32>>,
    changed: std::iter::Peekable<
        imbl::ordset::Iter<'a, (u64, Name), imbl::shared_ptr::DefaultSharedPtr>,
    >,
}

impl<'a> Iterator for SnapshotIter<'a> {
    type Item = (&'a str, DsRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let f = &*self.snap.frozen;
        loop {
            // Base rows shadowed by a change are skipped.
            while let Some(&&r) = self.frozen.peek() {
                if !self.shadowed.contains(r as usize) {
                    break;
                }
                self.frozen.next();
            }
            let base = self
                .frozen
                .peek()
                .map(|&&r| (f.datasets[r as usize].seq, f.name(r as usize)));
            let take_changed = match (self.changed.peek(), base) {
                (Some((seq, name)), Some(b)) => (*seq, &**name) < b,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return None,
            };
            if take_changed {
                let (_, name) = self.changed.next()?;
                if let Some((k, Some(d))) = self.snap.changed.get_key_value(name) {
                    self.left = self.left.saturating_sub(1);
                    return Some((&**k, d.get()));
                }
            } else {
                let r = *self.frozen.next()? as usize;
                self.left = self.left.saturating_sub(1);
                return Some((f.name(r), f.dataset(r)));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for SnapshotIter<'_> {}

/// A change to one dataset, as a commit records it.
#[derive(Debug, Clone)]
pub(crate) enum DatasetChange {
    /// The dataset as it now is (created, or changed in any way).
    Put(Name, Held),
    /// The dataset was deleted.
    Remove(Name),
}

impl DatasetChange {
    pub(crate) fn name(&self) -> &Name {
        match self {
            DatasetChange::Put(n, _) | DatasetChange::Remove(n) => n,
        }
    }
}

/// What one commit changed: the log entry of its generation.
#[derive(Debug, Clone)]
pub(crate) struct Delta {
    pub generation: u64,
    pub commit_id: Name,
    /// Segments first referenced by this commit.
    pub added_segments: Vec<(Name, SegmentEntry)>,
    pub datasets: Vec<DatasetChange>,
    /// Retired segments whose files are being removed (vacuum/compact).
    pub dropped_segments: Vec<Name>,
}

impl Snapshot {
    pub(crate) fn empty(settings: Settings) -> Self {
        Snapshot {
            generation: 0,
            commit_id: crate::catalog::new_id().into(),
            settings,
            frozen: Arc::default(),
            changed: Default::default(),
            order: Default::default(),
            len: 0,
            next_seq: 0,
            segments: Default::default(),
            retired: Default::default(),
            lineage: Lineage {
                base_format: crate::catalog::FORMAT_VERSION,
                ..Lineage::default()
            },
        }
    }

    pub(crate) fn dataset(&self, name: &str) -> Option<DsRef<'_>> {
        self.get(name).map(|(_, d)| d)
    }

    /// A dataset as a commit records it.
    pub(crate) fn held(&self, name: &str) -> Option<Held> {
        match self.changed.get(name) {
            Some(d) => d.clone(),
            None => Some(Held::Row(
                Arc::clone(&self.frozen),
                self.frozen.find(name)? as u32,
            )),
        }
    }

    /// A dataset with its name as the snapshot holds it.
    pub(crate) fn get(&self, name: &str) -> Option<(&str, DsRef<'_>)> {
        match self.changed.get_key_value(name) {
            Some((k, Some(d))) => Some((&**k, d.get())),
            Some((_, None)) => None,
            None => {
                let row = self.frozen.find(name)?;
                Some((self.frozen.name(row), self.frozen.dataset(row)))
            }
        }
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        match self.changed.get(name) {
            Some(d) => d.is_some(),
            None => self.frozen.find(name).is_some(),
        }
    }

    /// The base rows a change stands in for: O(changes), not O(store), to find.
    fn shadowed(&self) -> Shadowed {
        if self.changed.is_empty() {
            return Shadowed(Vec::new());
        }
        let mut bits = vec![0u64; self.frozen.len().div_ceil(64)];
        for name in self.changed.keys() {
            if let Some(r) = self.frozen.find(name) {
                bits[r / 64] |= 1 << (r % 64);
            }
        }
        Shadowed(bits)
    }

    /// Number of datasets.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Datasets in store order.
    pub(crate) fn iter(&self) -> SnapshotIter<'_> {
        SnapshotIter {
            snap: self,
            shadowed: self.shadowed(),
            left: self.len,
            frozen: self.frozen.order.iter().peekable(),
            changed: self.order.iter().peekable(),
        }
    }

    /// Datasets in name order.
    pub(crate) fn iter_by_name(&self) -> impl Iterator<Item = (&str, DsRef<'_>)> + '_ {
        let f = &*self.frozen;
        let mut changed = self.changed.iter().peekable();
        let mut rows = 0..f.len();
        std::iter::from_fn(move || {
            loop {
                let row_name = rows.clone().next().map(|r| f.name(r));
                let take_changed = match (changed.peek(), row_name) {
                    (Some((k, _)), Some(n)) => &***k <= n,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => return None,
                };
                if take_changed {
                    let (k, v) = changed.next()?;
                    if row_name == Some(&**k) {
                        rows.next();
                    }
                    if let Some(d) = v {
                        return Some((&**k, d.get()));
                    }
                } else {
                    let r = rows.next()?;
                    return Some((f.name(r), f.dataset(r)));
                }
            }
        })
    }

    /// Makes `frozen` the datasets of this (empty) snapshot.
    pub(crate) fn set_base(&mut self, frozen: Frozen) {
        self.len = frozen.len();
        let top = frozen.datasets.iter().map(|d| d.seq + 1).max().unwrap_or(0);
        self.next_seq = self.next_seq.max(top);
        self.frozen = Arc::new(frozen);
        self.changed = Default::default();
        self.order = Default::default();
    }

    /// The snapshot with `changed` folded into new columns.
    pub(crate) fn fold(&self) -> Snapshot {
        let mut b = FrozenBuilder::default();
        for (name, ds) in self.iter_by_name() {
            b.push(name, ds);
        }
        let mut next = self.clone();
        next.frozen = Arc::new(b.finish());
        next.changed = Default::default();
        next.order = Default::default();
        next
    }

    /// Makes this snapshot's `name` what `other` has (both share their base, or `other`'s
    /// dataset is copied).
    pub(crate) fn take_from(&mut self, other: &Snapshot, name: &Name) {
        match other.changed.get(name) {
            Some(Some(d)) => self.put_held(Name::clone(name), d.clone()),
            Some(None) => {
                self.remove_dataset(name);
            }
            None if Arc::ptr_eq(&self.frozen, &other.frozen) => {
                // `other` reads it from the shared base; so does this one, once its change goes.
                match self.changed.remove(name) {
                    Some(Some(d)) => {
                        self.order.remove(&(d.get().seq(), Name::clone(name)));
                        if self.frozen.find(name).is_none() {
                            self.len -= 1;
                        }
                    }
                    // Only a base row is marked deleted.
                    Some(None) => self.len += 1,
                    None => {}
                }
            }
            None => match other.dataset(name) {
                Some(d) => self.put_dataset(Name::clone(name), d.shared()),
                None => {
                    self.remove_dataset(name);
                }
            },
        }
    }

    /// A dataset to change, copied into `changed` on first write.
    pub(crate) fn dataset_mut(&mut self, name: &str) -> Option<&mut Dataset> {
        if !self.changed.contains_key(name) {
            let row = self.frozen.find(name)?;
            let d = self.frozen.dataset(row).to_dataset();
            let key: Name = self.frozen.name(row).into();
            self.order.insert((d.seq, Name::clone(&key)));
            self.changed.insert(key, Some(Held::Owned(Arc::new(d))));
        }
        let slot = self.changed.get_mut(name)?;
        if let Some(Held::Row(f, r)) = slot {
            *slot = Some(Held::Owned(Arc::new(f.dataset(*r as usize).to_dataset())));
        }
        match slot {
            Some(Held::Owned(d)) => Some(Arc::make_mut(d)),
            // A row was made objects of just above.
            Some(Held::Row(..)) | None => None,
        }
    }

    /// Looks up a segment, live or retired.
    pub(crate) fn segment(&self, key: &str) -> Option<&SegmentEntry> {
        self.segments
            .get(key)
            .map(|s| &s.entry)
            .or_else(|| self.retired.get(key).map(|(e, _)| e))
    }

    /// Inserts or replaces a dataset in the working state (no reference counting: that is done
    /// when a commit applies its delta to the committed snapshot).
    pub(crate) fn put_dataset(&mut self, name: Name, ds: Arc<Dataset>) {
        self.put_held(name, Held::Owned(ds));
    }

    /// [`Snapshot::put_dataset`] of a dataset held either way.
    pub(crate) fn put_held(&mut self, name: Name, ds: Held) {
        let seq = ds.get().seq();
        match self.changed.get(&name) {
            Some(Some(old)) => {
                self.order.remove(&(old.get().seq(), Name::clone(&name)));
            }
            Some(None) => self.len += 1,
            None => {
                if self.frozen.find(&name).is_none() {
                    self.len += 1;
                }
            }
        }
        self.order.insert((seq, Name::clone(&name)));
        self.next_seq = self.next_seq.max(seq + 1);
        self.changed.insert(name, Some(ds));
    }

    /// Removes a dataset from the working state.
    pub(crate) fn remove_dataset(&mut self, name: &str) -> Option<Held> {
        let row = self.frozen.find(name);
        let old = match self.changed.get_key_value(name) {
            Some((_, None)) => return None,
            Some((key, Some(old))) => {
                let (key, old) = (Name::clone(key), old.clone());
                self.order.remove(&(old.get().seq(), Name::clone(&key)));
                if row.is_some() {
                    self.changed.insert(key, None);
                } else {
                    self.changed.remove(&key);
                }
                old
            }
            None => {
                let row = row?;
                self.changed.insert(self.frozen.name(row).into(), None);
                Held::Row(Arc::clone(&self.frozen), row as u32)
            }
        };
        self.len -= 1;
        Some(old)
    }

    /// The snapshot of the next generation: this one with `delta` applied. Segments whose last
    /// reference goes are retired. Fails (naming `origin`) when the delta references a segment
    /// neither this snapshot nor the delta knows: a damaged or foreign log entry.
    pub(crate) fn apply(&self, delta: &Delta, origin: &str) -> Result<Snapshot> {
        let mut next = self.clone();
        next.apply_in_place(delta, origin)?;
        Ok(next)
    }

    /// [`Snapshot::apply`] on this snapshot (left half-changed on error).
    pub(crate) fn apply_in_place(&mut self, delta: &Delta, origin: &str) -> Result<()> {
        let corrupt = |reason: String| Error::CorruptCatalog {
            path: origin.to_string(),
            reason,
        };
        if delta.generation != self.generation + 1 {
            return Err(corrupt(format!(
                "entry of generation {} does not follow generation {}",
                delta.generation, self.generation
            )));
        }
        let next = self;
        next.generation = delta.generation;
        next.commit_id = Name::clone(&delta.commit_id);
        for (key, entry) in &delta.added_segments {
            if !next.segments.contains_key(key) {
                next.segments.insert(
                    Name::clone(key),
                    LiveSegment {
                        entry: entry.clone(),
                        refs: 0,
                    },
                );
            }
        }
        let mut released: Vec<Name> = Vec::new();
        for change in &delta.datasets {
            let name = change.name();
            if let Some(old) = next.remove_dataset(name) {
                for seg in old.get().arrays().filter_map(|a| a.segment()) {
                    if let Some(s) = next.segments.get_mut(seg) {
                        s.refs = s.refs.saturating_sub(1);
                        if s.refs == 0 {
                            released.push(Name::clone(seg));
                        }
                    }
                }
            }
            if let DatasetChange::Put(name, ds) = change {
                for a in ds.get().arrays() {
                    let Some(seg) = a.segment() else { continue };
                    if next.segments.get(seg).is_none()
                        && let Some((entry, _)) = next.retired.remove(seg)
                    {
                        // A retired segment referenced again (a rebased writer's copy).
                        next.segments
                            .insert(Name::clone(seg), LiveSegment { entry, refs: 0 });
                    }
                    match next.segments.get_mut(seg) {
                        Some(s) => s.refs += 1,
                        None => {
                            return Err(corrupt(format!(
                                "array {name}/{} references segment {seg}, which the catalog \
                                 does not list",
                                a.name()
                            )));
                        }
                    }
                }
                next.put_held(Name::clone(name), ds.clone());
            }
        }
        // Newly added segments nobody references (superseded spills) are retired too.
        released.extend(delta.added_segments.iter().map(|(k, _)| Name::clone(k)));
        for key in released {
            if let Some(s) = next.segments.get(&key)
                && s.refs == 0
                && let Some(s) = next.segments.remove(&key)
            {
                next.retired.insert(key, (s.entry, delta.generation));
            }
        }
        for key in &delta.dropped_segments {
            next.retired.remove(key);
        }
        next.lineage.commits_since += 1;
        Ok(())
    }

    /// Recomputes segment reference counts from the datasets (after loading a full state).
    pub(crate) fn recount(&mut self, origin: &str) -> Result<()> {
        let mut refs: HashMap<Name, u64> = HashMap::new();
        // Base rows count by string index first: four million entries, a few hundred segments.
        let f = &*self.frozen;
        let mut by_index = vec![0u64; f.strings.len() + 1];
        let shadowed = self.shadowed();
        for row in 0..f.len() {
            if shadowed.contains(row) {
                continue;
            }
            for e in f.dataset(row).arrays() {
                if let EntryRef::Frozen(f, i) = e {
                    by_index[f.entries[i].segment as usize] += 1;
                }
            }
        }
        for (i, n) in by_index.into_iter().enumerate().skip(1) {
            if n > 0 {
                *refs.entry(Name::clone(&f.strings[i - 1])).or_default() += n;
            }
        }
        for ds in self.changed.values().flatten() {
            for seg in ds.get().arrays().filter_map(|a| a.segment()) {
                *refs.entry(Name::clone(seg)).or_default() += 1;
            }
        }
        for (key, n) in refs {
            match self.segments.get_mut(&key) {
                Some(s) => s.refs = n,
                None => {
                    return Err(Error::CorruptCatalog {
                        path: origin.to_string(),
                        reason: format!("an array references segment {key}, which is not listed"),
                    });
                }
            }
        }
        let unreferenced: Vec<Name> = self
            .segments
            .iter()
            .filter(|(_, s)| s.refs == 0)
            .map(|(k, _)| Name::clone(k))
            .collect();
        for key in unreferenced {
            if let Some(s) = self.segments.remove(&key) {
                self.retired.insert(key, (s.entry, self.generation));
            }
        }
        Ok(())
    }
}

/// Shares one copy of each distinct name, array definition, attribute value and attribute set.
/// Definitions are found by the hash of their encoded form, values and sets by a hash of their
/// bits (floats compare by bits, so NaN interns too); only the hash is kept as the key, so a
/// value held once costs no second copy.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    names: std::collections::HashSet<Name>,
    schemas: HashMap<u64, Arc<ArraySchema>>,
    values: HashMap<u64, Arc<Attr>>,
    attrs: HashMap<u64, Attrs>,
    empty: Option<Attrs>,
}

fn hash_attr(a: &Attr, h: &mut impl std::hash::Hasher) {
    use std::hash::Hash;
    std::mem::discriminant(a).hash(h);
    match a {
        Attr::Bool(b) => b.hash(h),
        Attr::Int64(i) | Attr::TimestampNanoseconds(i) => i.hash(h),
        Attr::Float64(f) => f.to_bits().hash(h),
        Attr::String(s) => s.hash(h),
        Attr::Int64List(v) => v.hash(h),
        Attr::Float64List(v) => v.iter().for_each(|f| f.to_bits().hash(h)),
        Attr::StringList(v) => v.hash(h),
    }
}

/// Equality by bits (NaN equals NaN), the interner's notion of "the same value".
fn same_attr(a: &Attr, b: &Attr) -> bool {
    let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    match (a, b) {
        (Attr::Float64(x), Attr::Float64(y)) => x.to_bits() == y.to_bits(),
        (Attr::Float64List(x), Attr::Float64List(y)) => bits(x) == bits(y),
        _ => a == b,
    }
}

fn value_key(v: &Attr) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hash_attr(v, &mut h);
    h.finish()
}

fn attrs_key(attrs: &AttrSet) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (k, v) in attrs.iter() {
        k.hash(&mut h);
        hash_attr(v, &mut h);
    }
    h.finish()
}

fn hash_of<T: std::hash::Hash + ?Sized>(v: &T) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

impl Interner {
    pub(crate) fn name(&mut self, s: &str) -> Name {
        if let Some(n) = self.names.get(s) {
            return Name::clone(n);
        }
        let n: Name = s.into();
        self.names.insert(Name::clone(&n));
        n
    }

    pub(crate) fn schema(&mut self, schema: ArraySchema) -> Arc<ArraySchema> {
        let Ok(key) = rmp_serde::to_vec(&schema) else {
            return Arc::new(schema);
        };
        match self.schemas.get(&hash_of(&key[..])) {
            Some(found) if rmp_serde::to_vec(&**found).ok().as_deref() == Some(&key[..]) => {
                Arc::clone(found)
            }
            Some(_) => Arc::new(schema),
            None => {
                let shared = Arc::new(schema);
                self.schemas.insert(hash_of(&key[..]), Arc::clone(&shared));
                shared
            }
        }
    }

    pub(crate) fn value(&mut self, v: Attr) -> Arc<Attr> {
        let key = value_key(&v);
        match self.values.get(&key) {
            Some(found) if same_attr(found, &v) => Arc::clone(found),
            Some(_) => Arc::new(v),
            None => {
                let shared = Arc::new(v);
                self.values.insert(key, Arc::clone(&shared));
                shared
            }
        }
    }

    /// An attribute set built from owned pairs, its keys and values shared.
    pub(crate) fn attrs_from(&mut self, pairs: impl IntoIterator<Item = (String, Attr)>) -> Attrs {
        let mut set = AttrSet::default();
        for (k, v) in pairs {
            let (k, v) = (self.name(&k), self.value(v));
            set.insert(k, v);
        }
        self.share_attrs(&Arc::new(set))
    }

    /// The shared copy of an attribute set that may not be interned yet.
    pub(crate) fn share_attrs(&mut self, attrs: &Attrs) -> Attrs {
        if attrs.is_empty() {
            return self.empty_attrs();
        }
        let key = attrs_key(attrs);
        let same = |a: &AttrSet, b: &AttrSet| {
            a.pairs().len() == b.pairs().len()
                && a.iter()
                    .zip(b.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && same_attr(va, vb))
        };
        match self.attrs.get(&key) {
            Some(found) if Arc::ptr_eq(found, attrs) || same(found, attrs) => Arc::clone(found),
            Some(_) => Arc::clone(attrs),
            None => {
                self.attrs.insert(key, Arc::clone(attrs));
                Arc::clone(attrs)
            }
        }
    }

    /// Registers what a base shares (names of arrays and segments, definitions, the attribute
    /// sets arrays use or more than one dataset uses, and their values), so that later commits
    /// share them too. A set only one dataset holds (its `station_id`) is left out: remembering
    /// a million of those would cost more than it saves.
    pub(crate) fn seed(&mut self, f: &Frozen) {
        for name in &f.strings {
            self.names.insert(Name::clone(name));
        }
        for schema in &f.schemas {
            if let Ok(key) = rmp_serde::to_vec(&**schema) {
                self.schemas
                    .entry(hash_of(&key[..]))
                    .or_insert_with(|| Arc::clone(schema));
            }
        }
        let mut uses = vec![0u8; f.sets()];
        for e in &f.entries {
            uses[e.attrs as usize] = 2;
        }
        for d in &f.datasets {
            let u = &mut uses[d.attrs as usize];
            *u = u.saturating_add(1);
        }
        for (set, _) in uses.into_iter().enumerate().filter(|(_, u)| *u >= 2) {
            let set = AttrsRef::Frozen(f, set as u32).to_attrs();
            if set.is_empty() {
                continue;
            }
            for (k, v) in set.pairs() {
                self.names.insert(Name::clone(k));
                self.values
                    .entry(value_key(v))
                    .or_insert_with(|| Arc::clone(v));
            }
            self.attrs.entry(attrs_key(&set)).or_insert(set);
        }
    }

    pub(crate) fn empty_attrs(&mut self) -> Attrs {
        Arc::clone(self.empty.get_or_insert_with(Attrs::default))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{Codec, MetaFormat};

    fn settings() -> Settings {
        Settings {
            codec: Codec::Zstd,
            meta_format: MetaFormat::Json,
            meta_compression: Codec::Uncompressed,
        }
    }

    fn dataset(seq: u64, tag: i64, interner: &mut Interner) -> Arc<Dataset> {
        Arc::new(Dataset {
            seq,
            attributes: interner.attrs_from([("tag".to_string(), Attr::Int64(tag))]),
            arrays: Vec::new(),
        })
    }

    fn tag(d: DsRef<'_>) -> Option<&Attr> {
        d.attributes().get("tag")
    }

    /// Checks every way of reading `snap` against the model (name -> (seq, tag)).
    fn check(snap: &Snapshot, model: &BTreeMap<String, (u64, i64)>) {
        assert_eq!(snap.len(), model.len());
        let by_name: Vec<(String, u64, Option<Attr>)> = snap
            .iter_by_name()
            .map(|(n, d)| (n.to_string(), d.seq(), tag(d).cloned()))
            .collect();
        let want: Vec<(String, u64, Option<Attr>)> = model
            .iter()
            .map(|(n, (s, t))| (n.clone(), *s, Some(Attr::Int64(*t))))
            .collect();
        assert_eq!(by_name, want);
        let mut in_order = want.clone();
        in_order.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        let got: Vec<(String, u64, Option<Attr>)> = snap
            .iter()
            .map(|(n, d)| (n.to_string(), d.seq(), tag(d).cloned()))
            .collect();
        assert_eq!(got, in_order);
        for i in 0..40 {
            let name = format!("d{i:02}");
            assert_eq!(snap.contains(&name), model.contains_key(&name), "{name}");
            assert_eq!(
                snap.dataset(&name).and_then(tag).cloned(),
                model.get(&name).map(|(_, t)| Attr::Int64(*t))
            );
        }
    }

    #[test]
    fn a_snapshot_reads_the_same_through_its_changes_and_after_folding_them() {
        let mut interner = Interner::default();
        let mut snap = Snapshot::empty(settings());
        let mut model: BTreeMap<String, (u64, i64)> = BTreeMap::new();
        // A small linear congruential generator: the same sequence on every run.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: u64| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % n
        };
        for step in 0..3000i64 {
            let name = format!("d{:02}", next(40));
            match next(10) {
                0..=3 => {
                    let seq = snap.next_seq;
                    let key = interner.name(&name);
                    let seq = model.get(&name).map_or(seq, |(s, _)| *s);
                    snap.put_dataset(key, dataset(seq, step, &mut interner));
                    model.insert(name, (seq, step));
                }
                4 | 5 => {
                    let had = snap.remove_dataset(&name).is_some();
                    assert_eq!(had, model.remove(&name).is_some());
                }
                6 | 7 => {
                    let value = interner.value(Attr::Int64(step));
                    let key = interner.name("tag");
                    match snap.dataset_mut(&name) {
                        Some(d) => {
                            Arc::make_mut(&mut d.attributes).insert(key, value);
                            model.get_mut(&name).expect("in the model").1 = step;
                        }
                        None => assert!(!model.contains_key(&name)),
                    }
                }
                8 => {
                    // Another snapshot of the same base takes this one's view of a name.
                    let mut other = snap.fold();
                    let mut copy = snap.clone();
                    other.remove_dataset(&name);
                    copy.take_from(&other, &interner.name(&name));
                    let mut m = model.clone();
                    m.remove(&name);
                    check(&copy, &m);
                    let mut back = snap.clone();
                    back.take_from(&copy, &interner.name(&name));
                    check(&back, &m);
                    // And back again, from the snapshot both share their base with.
                    back.take_from(&snap, &interner.name(&name));
                    check(&back, &model);
                }
                _ => snap = snap.fold(),
            }
            check(&snap, &model);
        }
    }
}
