//! The in-memory catalog: one immutable, shared snapshot per generation.
//!
//! A [`Snapshot`] is built from persistent maps (`imbl`), so cloning one costs O(1) and changing
//! one dataset copies only the path to it: a commit that touched ten datasets costs ten
//! datasets, whatever the size of the store. Names, array definitions and attribute sets are
//! interned ([`Interner`]) and shared by `Arc`, so ten thousand datasets that repeat the same
//! `units`/`long_name` hold one copy of them.

use std::collections::HashMap;
use std::sync::Arc;

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

    pub(crate) fn get(&self, key: &str) -> Option<&Attr> {
        self.entries
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
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
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub generation: u64,
    pub commit_id: Name,
    pub settings: Settings,
    pub datasets: imbl::OrdMap<Name, Arc<Dataset>>,
    pub order: imbl::OrdSet<(u64, Name)>,
    pub next_seq: u64,
    /// Segments some array references, with their reference counts.
    pub segments: imbl::OrdMap<Name, LiveSegment>,
    /// Segments no array references any more, with the generation that dropped them;
    /// `compact`/`vacuum` delete them.
    pub retired: imbl::OrdMap<Name, (SegmentEntry, u64)>,
    pub lineage: Lineage,
}

/// A change to one dataset, as a commit records it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DatasetChange {
    /// The dataset as it now is (created, or changed in any way).
    Put(Name, Arc<Dataset>),
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
#[derive(Debug, Clone, PartialEq)]
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
            datasets: Default::default(),
            order: Default::default(),
            next_seq: 0,
            segments: Default::default(),
            retired: Default::default(),
            lineage: Lineage {
                base_format: crate::catalog::FORMAT_VERSION,
                ..Lineage::default()
            },
        }
    }

    pub(crate) fn dataset(&self, name: &str) -> Option<&Arc<Dataset>> {
        self.datasets.get(name)
    }

    /// Datasets in store order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Name, &Arc<Dataset>)> + '_ {
        self.order.iter().filter_map(|(_, name)| {
            let (k, v) = self.datasets.get_key_value(name)?;
            Some((k, v))
        })
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
        if let Some(old) = self.datasets.get(&name)
            && old.seq != ds.seq
        {
            self.order.remove(&(old.seq, Name::clone(&name)));
        }
        self.order.insert((ds.seq, Name::clone(&name)));
        self.next_seq = self.next_seq.max(ds.seq + 1);
        self.datasets.insert(name, ds);
    }

    /// Removes a dataset from the working state.
    pub(crate) fn remove_dataset(&mut self, name: &str) -> Option<Arc<Dataset>> {
        let (key, old) = self.datasets.remove_with_key(name)?;
        self.order.remove(&(old.seq, key));
        Some(old)
    }

    /// The snapshot of the next generation: this one with `delta` applied. Segments whose last
    /// reference goes are retired. Fails (naming `origin`) when the delta references a segment
    /// neither this snapshot nor the delta knows: a damaged or foreign log entry.
    pub(crate) fn apply(&self, delta: &Delta, origin: &str) -> Result<Snapshot> {
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
        let mut next = self.clone();
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
                for seg in old.arrays.iter().filter_map(|a| a.segment.as_ref()) {
                    if let Some(s) = next.segments.get_mut(seg) {
                        s.refs = s.refs.saturating_sub(1);
                        if s.refs == 0 {
                            released.push(Name::clone(seg));
                        }
                    }
                }
            }
            if let DatasetChange::Put(name, ds) = change {
                for a in &ds.arrays {
                    let Some(seg) = &a.segment else { continue };
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
                                a.name
                            )));
                        }
                    }
                }
                next.put_dataset(Name::clone(name), Arc::clone(ds));
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
        Ok(next)
    }

    /// Recomputes segment reference counts from the datasets (after loading a full state).
    pub(crate) fn recount(&mut self, origin: &str) -> Result<()> {
        let mut refs: HashMap<Name, u64> = HashMap::new();
        for ds in self.datasets.values() {
            for seg in ds.arrays.iter().filter_map(|a| a.segment.as_ref()) {
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
        use std::hash::Hasher;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        hash_attr(&v, &mut h);
        let key = h.finish();
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
        use std::hash::{Hash, Hasher};
        if attrs.is_empty() {
            return self.empty_attrs();
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (k, v) in attrs.iter() {
            k.hash(&mut h);
            hash_attr(v, &mut h);
        }
        let key = h.finish();
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

    pub(crate) fn empty_attrs(&mut self) -> Attrs {
        Arc::clone(self.empty.get_or_insert_with(Attrs::default))
    }
}
