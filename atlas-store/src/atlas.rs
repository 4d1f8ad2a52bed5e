//! The store handle: datasets, flush (the durability boundary), spill, compact, and reads across
//! datasets.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use array_format::{ArrayElement, ArrayStats};
use ndarray::{ArcArray, Array, ArrayD, IxDyn};
use object_store::{ObjectStore, ObjectStoreExt, local::LocalFileSystem, path::Path};

use crate::catalog::{
    self, Dataset, DatasetChange, Delta, EntryRef, Held, Interner, Name, SegmentEntry, Snapshot,
};
use crate::config::StoreConfig;
use crate::dataset::DatasetView;
use crate::error::{Error, Result};
use crate::pending::{self, Patch};
use crate::schema::{ArraySchema, StatsRepr, segment_stats, validate_name};

/// Commits after which a checkpoint is written even if the log is still small.
const CHECKPOINT_COMMITS: u64 = 100;
/// Log bytes after which a checkpoint is written at the least.
const CHECKPOINT_MIN_LOG_BYTES: u64 = 1 << 20;
/// A checkpoint is written once the log since the last one reaches this fraction of it: `open`
/// then replays at most an eighth of the store as log, and checkpoint writes, each O(store),
/// come once per eighth of the store changed, so their cost per changed dataset stays flat.
const CHECKPOINT_LOG_FRACTION: u64 = 8;
use crate::pack;
use crate::segment::{self, SegmentCache};
use crate::sums;

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the state is only
/// mutated in short sections that leave it consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counters of what a handle has written, for tests, benches and progress reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteStats {
    /// Times pending data spilled to uncommitted segments because it passed the budget.
    pub spills: u64,
    /// Segment files written (by flushes, spills and compactions).
    pub segments_written: u64,
    /// Bytes of segment files written.
    pub segment_bytes_written: u64,
    /// Commits made.
    pub commits: u64,
    /// Pending array bytes held in memory now.
    pub pending_bytes: usize,
    /// Most pending array bytes held in memory at once.
    pub peak_pending_bytes: usize,
    /// Checkpoints written.
    pub checkpoints: u64,
}

/// What `compact` or `vacuum` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactReport {
    /// Variables rewritten into one segment.
    pub variables_rewritten: Vec<String>,
    /// Segment files removed.
    pub segments_removed: usize,
    /// Unreferenced segments kept because they are younger than the retention period.
    pub orphans_kept: usize,
    /// Retired segments kept because they were retired less than the retention period ago
    /// (readers of older generations may still read them).
    pub retired_kept: usize,
    /// Bytes of segment files removed.
    pub bytes_removed: u64,
}

/// What [`Atlas::verify_all`] found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segments read and checked.
    pub segments_checked: usize,
    /// Their bytes.
    pub bytes_checked: u64,
    /// Segments that are missing or fail their checks, in key order.
    pub damaged: Vec<DamagedSegment>,
}

/// A segment [`Atlas::verify_all`] found missing or damaged.
#[derive(Debug)]
#[non_exhaustive]
pub struct DamagedSegment {
    /// Key, `<variable>/<file>`.
    pub key: String,
    /// What is wrong (names the first damaged byte range).
    pub error: Error,
    /// The arrays it holds, as `(dataset, array)`.
    pub holds: Vec<(String, String)>,
}

/// What [`Atlas::vacuum_plan`] says `vacuum` would remove now, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VacuumPlan {
    /// Segments `compact` replaced or whose arrays were all deleted, retired longer ago than
    /// the retention: `(key, bytes with its checksum sidecar)`.
    pub retired: Vec<(String, u64)>,
    /// Segment files no commit references (a crashed writer's, or an abandoned ingest's),
    /// older than the retention: `(path inside the store, bytes with its checksum sidecar)`.
    pub orphans: Vec<(String, u64)>,
    /// Retired segments kept because they are younger than the retention.
    pub retired_kept: usize,
    /// Unreferenced segments kept because they are younger than the retention.
    pub orphans_kept: usize,
}

/// A segment of the current catalog, as `info` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// Key, `<variable>/<file>`.
    pub key: String,
    /// Variable it holds.
    pub variable: String,
    /// Size in bytes.
    pub size: u64,
}

pub(crate) struct State {
    /// The last generation this handle committed or loaded: shared, never copied.
    pub committed: Arc<Snapshot>,
    /// The state a flush will commit: `committed` plus this handle's changes (a cheap clone of
    /// it, sharing every dataset it did not change). Segment references may point at
    /// uncommitted spill segments.
    pub working: Snapshot,
    /// Datasets this handle changed since its last commit, with the `changes` mark of the
    /// latest change: a commit writes exactly these.
    pub dirty: HashMap<Name, u64>,
    /// Shared copies of names, definitions and attribute sets.
    pub interner: Interner,
    /// Writes not yet in any segment, by (dataset, array).
    pub pending: HashMap<(String, String), Vec<Arc<dyn Patch>>>,
    /// Bumped by every change, so a flush knows which changes arrived while it ran.
    pub changes: u64,
    /// Spill segments this handle wrote and has not committed, with their entries.
    pub own_spills: HashMap<Name, SegmentEntry>,
    pub budget: usize,
    pub retention: Duration,
    pub checkpoint_commits: u64,
    pub stats: WriteStats,
    /// A commit whose outcome is unknown (its put failed, but may have landed): the state it
    /// would make and the `changes` mark it covered. The next flush checks it first.
    pub in_doubt: Option<(Arc<Snapshot>, u64)>,
}

impl State {
    /// The state of a handle just opened on `snap`.
    fn new(snap: Snapshot, interner: Interner, config: &StoreConfig) -> State {
        State {
            working: snap.clone(),
            committed: Arc::new(snap),
            dirty: HashMap::new(),
            interner,
            pending: HashMap::new(),
            changes: 0,
            own_spills: HashMap::new(),
            budget: config.pending_budget,
            retention: config.orphan_retention,
            checkpoint_commits: CHECKPOINT_COMMITS,
            stats: WriteStats::default(),
            in_doubt: None,
        }
    }

    /// Records a change to `dataset`.
    pub(crate) fn touch(&mut self, dataset: &str) {
        self.changes += 1;
        let name = self.interner.name(dataset);
        self.dirty.insert(name, self.changes);
    }

    pub(crate) fn drop_pending(&mut self, key: &(String, String)) {
        if let Some(patches) = self.pending.remove(key) {
            let bytes: usize = patches.iter().map(|p| p.nbytes()).sum();
            self.stats.pending_bytes -= bytes;
        }
    }

    /// A dataset of the working state, copied on first write.
    pub(crate) fn dataset_mut(&mut self, name: &str) -> Option<&mut Dataset> {
        self.working.dataset_mut(name)
    }

    /// Makes `next` the committed state; the working state keeps its datasets (and any change
    /// made since) and takes the rest of the bookkeeping.
    pub(crate) fn adopt(&mut self, next: Arc<Snapshot>) {
        self.working.generation = next.generation;
        self.working.commit_id = Name::clone(&next.commit_id);
        self.working.segments = next.segments.clone();
        self.working.retired = next.retired.clone();
        self.working.lineage = next.lineage;
        self.committed = next;
    }

    /// The entry of a segment this handle can see: committed, or its own spill.
    pub(crate) fn segment_entry(&self, key: &str) -> Option<SegmentEntry> {
        self.committed
            .segment(key)
            .or_else(|| self.own_spills.get(key))
            .cloned()
    }
}

pub(crate) struct Inner {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    pub state: Mutex<State>,
    /// Serialises data writes with spill, flush and compact (held across their I/O).
    pub gate: tokio::sync::Mutex<()>,
    pub segments: SegmentCache,
    /// Set for a store in a format this build reads but never writes (an atlas-rust store).
    pub upstream: Option<crate::upstream::Upstream>,
}

impl Inner {
    /// The reader of a store whose values our segment reader cannot decode (atlas-rust 0.10).
    pub(crate) fn region_source(&self) -> Option<Arc<dyn crate::upstream::RegionSource>> {
        self.upstream.as_ref().and_then(|u| u.source.clone())
    }

    /// Whether array `array` of `dataset` has data: a committed segment or pending writes.
    pub(crate) fn has_data(&self, dataset: &str, array: &str) -> bool {
        let st = lock(&self.state);
        let Some(entry) = st.working.dataset(dataset).and_then(|d| d.array(array)) else {
            return false;
        };
        entry.segment().is_some()
            || st
                .pending
                .get(&(dataset.to_string(), array.to_string()))
                .is_some_and(|p| !p.is_empty())
    }

    /// Refuses `op` on a read-only store.
    pub(crate) fn writable(&self, op: &str) -> Result<()> {
        match &self.upstream {
            Some(u) => Err(u.refuse(op)),
            None => Ok(()),
        }
    }
}

/// A handle on an ATLAS store.
///
/// Changes (datasets, arrays, writes, attributes, deletions) are visible to this handle at once
/// and reach the store at [`Atlas::flush`], the single durability boundary. Another handle sees
/// them when it opens the store after that flush.
pub struct Atlas {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Atlas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("Atlas")
            .field("prefix", &self.inner.prefix)
            .field("generation", &st.committed.generation)
            .field("datasets", &st.working.len())
            .finish_non_exhaustive()
    }
}

impl Atlas {
    /// Creates a new, empty store at `prefix` of `store`. Fails with [`Error::StoreExists`] if a
    /// store is already there: creating never wipes data.
    pub async fn create(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        config: StoreConfig,
    ) -> Result<Atlas> {
        // One listing sees both a catalog of ours and an atlas-rust collection.
        let (roots, collection) = catalog::root_listing(&*store, &prefix).await?;
        if !roots.is_empty() || collection {
            return Err(Error::StoreExists {
                location: catalog::display_location(&prefix),
            });
        }
        let settings = catalog::Settings {
            codec: config.codec,
            meta_format: config.meta_format,
            meta_compression: config.meta_compression,
        };
        let snap = match catalog::create(&*store, &prefix, settings).await {
            Err(Error::Conflict { .. }) => {
                return Err(Error::StoreExists {
                    location: catalog::display_location(&prefix),
                });
            }
            other => other?,
        };
        Ok(Self::from_snapshot(
            store,
            prefix,
            snap,
            Interner::default(),
            &config,
        ))
    }

    /// Opens the store at `prefix` of `store`. The codecs and catalog format are read from the
    /// store; budgets take their defaults (see [`Atlas::set_pending_budget`]).
    ///
    /// A store written by `atlas-rust` 0.17 (a `data.atlas` collection) opens too, read-only:
    /// its tables, metadata and statistics read as an atlas-sql store's, and every write is
    /// refused with [`Error::ReadOnlyFormat`] (see [`Atlas::upstream_format`]).
    pub async fn open(store: Arc<dyn ObjectStore>, prefix: Path) -> Result<Atlas> {
        let location = catalog::display_location(&prefix);
        Self::open_named(store, prefix, location).await
    }

    /// [`Atlas::open`], naming the store `location` in messages.
    async fn open_named(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        location: String,
    ) -> Result<Atlas> {
        let (snap, interner) = match catalog::load_latest(&*store, &prefix).await {
            Ok(found) => found,
            // No catalog of ours: an upstream store, when one is there (one `head` to know).
            Err(Error::StoreNotFound { location: at }) => {
                return match crate::upstream::open(&store, &prefix, location).await? {
                    Some(atlas) => Ok(atlas),
                    None => Err(Error::StoreNotFound { location: at }),
                };
            }
            Err(e @ Error::CorruptCatalog { .. }) => {
                // Our version-1 catalogs share their file names with atlas-rust 0.10's
                // registry: the upstream crate decides whether this is one.
                return match crate::upstream::open_010(&store, &prefix, location).await? {
                    Some(atlas) => Ok(atlas),
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        Ok(Self::from_snapshot(
            store,
            prefix,
            snap,
            interner,
            &StoreConfig::default(),
        ))
    }

    /// Creates a new store in the local directory `path`, making missing directories.
    pub async fn create_path(
        path: impl AsRef<std::path::Path>,
        config: StoreConfig,
    ) -> Result<Atlas> {
        let path = path.as_ref();
        std::fs::create_dir_all(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        let store = local_store(path)?;
        Self::create(store, Path::default(), config).await
    }

    /// Opens the store in the local directory `path`.
    pub async fn open_path(path: impl AsRef<std::path::Path>) -> Result<Atlas> {
        let path = path.as_ref();
        if !path.is_dir() {
            return Err(Error::StoreNotFound {
                location: path.display().to_string(),
            });
        }
        let store = local_store(path)?;
        Self::open_named(store, Path::default(), path.display().to_string())
            .await
            .map_err(|e| match e {
                Error::StoreNotFound { .. } => Error::StoreNotFound {
                    location: path.display().to_string(),
                },
                other => other,
            })
    }

    /// Opens the store at `location`: a local directory, or a URL (`s3://bucket/path`,
    /// `gs://…`, `az://…`, `http(s)://…`, `file://…`) whose client is configured from the
    /// environment (see [`crate::location`]).
    pub async fn open_location(location: &str) -> Result<Atlas> {
        if !crate::location::is_url(location) {
            return Self::open_path(location).await;
        }
        let (store, prefix) = crate::location::resolve(location)?;
        Self::open_named(store, prefix, location.to_string())
            .await
            .map_err(|e| match e {
                Error::StoreNotFound { .. } => Error::StoreNotFound {
                    location: location.to_string(),
                },
                other => other,
            })
    }

    /// Creates a new store at `location` (a local directory, made if missing, or a URL as in
    /// [`Atlas::open_location`]).
    pub async fn create_location(location: &str, config: StoreConfig) -> Result<Atlas> {
        if !crate::location::is_url(location) {
            return Self::create_path(location, config).await;
        }
        let (store, prefix) = crate::location::resolve(location)?;
        Self::create(store, prefix, config)
            .await
            .map_err(|e| match e {
                Error::StoreExists { .. } => Error::StoreExists {
                    location: location.to_string(),
                },
                other => other,
            })
    }

    fn from_snapshot(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        snap: Snapshot,
        interner: Interner,
        config: &StoreConfig,
    ) -> Atlas {
        let state = State::new(snap, interner, config);
        let store = crate::io::CountingStore::wrap(store);
        let segments = SegmentCache::new(Arc::clone(&store), prefix.clone());
        Self::from_parts(store, prefix, state, segments, None)
    }

    /// A read-only handle on an upstream store: `store` is already counted, and `segments`
    /// has the segments the catalog `snap` was built from open.
    #[cfg_attr(not(feature = "upstream"), allow(dead_code))]
    pub(crate) fn from_upstream(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        snap: Snapshot,
        interner: Interner,
        segments: SegmentCache,
        upstream: crate::upstream::Upstream,
    ) -> Atlas {
        let state = State::new(snap, interner, &StoreConfig::default());
        Self::from_parts(store, prefix, state, segments, Some(upstream))
    }

    fn from_parts(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        state: State,
        segments: SegmentCache,
        upstream: Option<crate::upstream::Upstream>,
    ) -> Atlas {
        Atlas {
            inner: Arc::new(Inner {
                segments,
                store,
                prefix,
                state: Mutex::new(state),
                gate: tokio::sync::Mutex::new(()),
                upstream,
            }),
        }
    }

    /// The format of a store this build reads but does not write, as a phrase ("an
    /// atlas-rust 0.17 collection (data.atlas)"); `None` for an atlas-sql store.
    pub fn upstream_format(&self) -> Option<&'static str> {
        self.inner.upstream.as_ref().map(|u| u.format.describe())
    }

    /// Sets the pending-bytes budget: past it, written data spills to uncommitted segments.
    pub fn set_pending_budget(&self, bytes: usize) {
        lock(&self.inner.state).budget = bytes;
    }

    /// Sets how old an unreferenced segment must be before `compact`/`vacuum` removes it, how
    /// long ago a retired segment (one `compact` replaced, or whose arrays were deleted) must
    /// have been retired before they remove it, and how old a log entry or checkpoint a newer
    /// checkpoint covers must be before it is removed.
    pub fn set_orphan_retention(&self, retention: Duration) {
        lock(&self.inner.state).retention = retention;
    }

    /// Sets after how many commits a checkpoint is written at the latest (default 100; a
    /// checkpoint is also written once the log since the last one weighs an eighth of it, and
    /// at least 1 MiB).
    pub fn set_checkpoint_interval(&self, commits: u64) {
        lock(&self.inner.state).checkpoint_commits = commits.max(1);
    }

    /// The catalog format version of the state this handle sees: older than the version this
    /// build writes (1 or 2) for a store written by an earlier build and not yet upgraded (its
    /// next commit or [`Atlas::checkpoint`] upgrades it), else the version this build writes.
    pub fn format_version(&self) -> u32 {
        lock(&self.inner.state).committed.lineage.base_format
    }

    /// The generation of the catalog this handle last committed or loaded.
    pub fn generation(&self) -> u64 {
        lock(&self.inner.state).committed.generation
    }

    /// What this handle has written so far.
    pub fn write_stats(&self) -> WriteStats {
        lock(&self.inner.state).stats
    }

    /// Creates a dataset. Visible to this handle at once, stored at the next flush.
    pub async fn create_dataset(&mut self, name: &str) -> Result<DatasetView> {
        self.inner.writable("create a dataset")?;
        validate_name("dataset", name)?;
        let mut st = lock(&self.inner.state);
        if st.working.contains(name) {
            return Err(Error::DatasetExists {
                name: name.to_string(),
            });
        }
        let ds = Dataset {
            seq: st.working.next_seq,
            attributes: st.interner.empty_attrs(),
            arrays: Vec::new(),
        };
        let key = st.interner.name(name);
        st.working.put_dataset(key, Arc::new(ds));
        st.touch(name);
        Ok(DatasetView::new(Arc::clone(&self.inner), name.to_string()))
    }

    /// Opens an existing dataset.
    pub async fn open_dataset(&self, name: &str) -> Result<DatasetView> {
        if !self.dataset_exists(name) {
            return Err(Error::DatasetNotFound {
                name: name.to_string(),
            });
        }
        Ok(DatasetView::new(Arc::clone(&self.inner), name.to_string()))
    }

    /// Deletes a dataset and all its arrays; the store drops them at the next flush.
    pub async fn delete_dataset(&mut self, name: &str) -> Result<()> {
        self.inner.writable("delete a dataset")?;
        let mut st = lock(&self.inner.state);
        let Some(ds) = st.working.remove_dataset(name) else {
            return Err(Error::DatasetNotFound {
                name: name.to_string(),
            });
        };
        for array in ds.get().arrays() {
            st.drop_pending(&(name.to_string(), array.name().to_string()));
        }
        st.touch(name);
        Ok(())
    }

    /// Dataset names in insertion order.
    pub fn list_datasets(&self) -> Vec<String> {
        lock(&self.inner.state)
            .working
            .iter()
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// Whether a dataset of that name exists.
    pub fn dataset_exists(&self, name: &str) -> bool {
        lock(&self.inner.state).working.contains(name)
    }

    /// Distinct array (variable) names across all datasets, sorted.
    pub fn list_arrays(&self) -> Vec<String> {
        let st = lock(&self.inner.state);
        let names: BTreeSet<&str> = st
            .working
            .iter()
            .flat_map(|(_, d)| d.arrays().map(|a| &**a.name()))
            .collect();
        names.into_iter().map(str::to_string).collect()
    }

    /// Segments of the current catalog.
    pub fn list_segments(&self) -> Vec<SegmentInfo> {
        lock(&self.inner.state)
            .committed
            .segments
            .iter()
            .map(|(key, s)| SegmentInfo {
                key: key.to_string(),
                variable: s.entry.variable.to_string(),
                size: s.entry.size,
            })
            .collect()
    }

    /// Makes every change since the last flush durable in one atomic commit: one new segment per
    /// touched variable (plus any spill segments the pending budget forced), then the catalog.
    ///
    /// On error nothing is committed and the pending changes stay, so the flush can be retried;
    /// on [`Error::Conflict`] another writer committed first.
    pub async fn flush(&mut self) -> Result<()> {
        if self.inner.upstream.is_some() {
            // Nothing can have changed: every change is refused.
            return Ok(());
        }
        let _gate = self.inner.gate.lock().await;
        self.inner.flush_locked().await
    }

    /// Flushes, then rewrites every variable whose live data spans several segments (or shares
    /// them with deleted data) into one segment, and removes the segments no longer needed:
    /// those this store retired, and unreferenced ones older than the retention period. A
    /// compaction that rewrote anything is followed by a checkpoint, so the next open reads
    /// the catalog from one object instead of replaying the log.
    pub async fn compact(&mut self) -> Result<CompactReport> {
        self.inner.writable("compact")?;
        let _gate = self.inner.gate.lock().await;
        self.inner.flush_locked().await?;
        self.inner.cleanup(true).await
    }

    /// Flushes, then removes retired segments and unreferenced segments (orphans of crashed
    /// writers) older than the retention period, without rewriting anything.
    pub async fn vacuum(&mut self) -> Result<CompactReport> {
        self.inner.writable("vacuum")?;
        let _gate = self.inner.gate.lock().await;
        self.inner.flush_locked().await?;
        self.inner.cleanup(false).await
    }

    /// Flushes, then writes a checkpoint of the committed state now (upgrading a store of an
    /// older format version to the current one) and removes the log entries and checkpoints it
    /// covers that are older than the retention period. Returns the checkpoint's generation.
    pub async fn checkpoint(&mut self) -> Result<u64> {
        self.inner.writable("checkpoint")?;
        let _gate = self.inner.gate.lock().await;
        self.inner.flush_locked().await?;
        self.inner.checkpoint_now().await
    }

    /// Brings this handle up to the newest commit of the store (other writers' included) when it
    /// holds no unflushed change; returns whether it moved. When nothing was committed since,
    /// this costs one read of the next log entry's name and one listing of `_checkpoint/`. A
    /// handle with unflushed changes is left as it is (its next flush rebases it instead).
    pub async fn refresh(&self) -> Result<bool> {
        if self.inner.upstream.is_some() {
            // Opened read-only and never followed: a reopen sees another writer's changes.
            return Ok(false);
        }
        let _gate = self.inner.gate.lock().await;
        let clean = |st: &State| st.dirty.is_empty() && st.pending.is_empty();
        let generation = {
            let st = lock(&self.inner.state);
            if !clean(&st) {
                return Ok(false);
            }
            st.committed.generation
        };
        if !self.inner.committed_after(generation).await? {
            return Ok(false);
        }
        let (store, prefix) = (&*self.inner.store, &self.inner.prefix);
        let (snap, interner) = catalog::load_latest(store, prefix).await?;
        let mut st = lock(&self.inner.state);
        if snap.generation <= generation || !clean(&st) || st.committed.generation != generation {
            return Ok(false);
        }
        st.working = snap.clone();
        st.committed = Arc::new(snap);
        st.interner = interner;
        Ok(true)
    }

    /// A new handle on the newest commit when the store has commits newer than this handle's
    /// generation (`None` when it has none): what a reader that must not change under running
    /// reads uses instead of [`Atlas::refresh`]. The check costs what `refresh`'s does.
    pub async fn reopen_if_newer(&self) -> Result<Option<Atlas>> {
        if self.inner.upstream.is_some() {
            return Ok(None);
        }
        let generation = lock(&self.inner.state).committed.generation;
        if !self.inner.committed_after(generation).await? {
            return Ok(None);
        }
        let atlas = Atlas::open(Arc::clone(&self.inner.store), self.inner.prefix.clone()).await?;
        Ok((atlas.generation() > generation).then_some(atlas))
    }

    /// Reads every segment of the current catalog in full and checks its size and CRC-32, and
    /// its page checksums (an error names the first damaged byte range). Returns the number of
    /// segments checked.
    pub async fn verify(&self) -> Result<usize> {
        if self.inner.region_source().is_some() {
            let report = self.verify_all(|_, _| {}).await?;
            return match report.damaged.into_iter().next() {
                Some(d) => Err(d.error),
                None => Ok(report.segments_checked),
            };
        }
        let segments = lock(&self.inner.state).committed.segments.clone();
        for (key, live) in &segments {
            self.inner.segments.verify(key, &live.entry).await?;
        }
        Ok(segments.len())
    }

    /// Reads every segment of the current catalog in full and checks it as [`Atlas::verify`]
    /// does, but goes on past damage: the report lists every missing or damaged segment with
    /// the arrays it holds. `progress` is called after each segment with the bytes checked so
    /// far and the total. Errors only for what stops the check itself.
    pub async fn verify_all(&self, mut progress: impl FnMut(u64, u64)) -> Result<VerifyReport> {
        if let Some(source) = self.inner.region_source() {
            return self.verify_by_reading(&*source, progress).await;
        }
        let committed = Arc::clone(&lock(&self.inner.state).committed);
        let total: u64 = committed.segments.values().map(|s| s.entry.size).sum();
        let mut report = VerifyReport::default();
        let mut holds: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
        for (ds, d) in committed.iter() {
            for a in d.arrays() {
                if let Some(seg) = a.segment() {
                    holds
                        .entry(&**seg)
                        .or_default()
                        .push((ds.to_string(), a.name().to_string()));
                }
            }
        }
        for (key, live) in &committed.segments {
            let checked = self.inner.segments.verify(key, &live.entry).await;
            report.segments_checked += 1;
            report.bytes_checked += live.entry.size;
            match checked {
                Ok(()) => {}
                Err(
                    error @ (Error::CorruptSegment { .. }
                    | Error::SegmentGone { .. }
                    | Error::ObjectStore { .. }
                    | Error::Format { .. }
                    | Error::Io { .. }),
                ) => report.damaged.push(DamagedSegment {
                    key: key.to_string(),
                    error,
                    holds: holds.remove(&**key).unwrap_or_default(),
                }),
                Err(other) => return Err(other),
            }
            progress(report.bytes_checked, total);
        }
        Ok(report)
    }

    /// [`Atlas::verify_all`] for a store whose files our reader cannot check (atlas-rust
    /// 0.10): every array each file holds is read through `source`, which decodes every
    /// chunk, in the bounded tiles a copy uses; the first array that fails marks its file
    /// damaged.
    async fn verify_by_reading(
        &self,
        source: &dyn crate::upstream::RegionSource,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<VerifyReport> {
        let committed = Arc::clone(&lock(&self.inner.state).committed);
        let total: u64 = committed.segments.values().map(|s| s.entry.size).sum();
        /// `(dataset, array, definition)` of each array a file holds.
        type Held = (String, String, Arc<ArraySchema>);
        let mut holds: BTreeMap<&str, Vec<Held>> = BTreeMap::new();
        for (ds, d) in committed.iter() {
            for a in d.arrays() {
                if let Some(seg) = a.segment() {
                    holds.entry(&**seg).or_default().push((
                        ds.to_string(),
                        a.name().to_string(),
                        Arc::clone(a.schema()),
                    ));
                }
            }
        }
        let mut report = VerifyReport::default();
        for (key, live) in &committed.segments {
            let arrays = holds.remove(&**key).unwrap_or_default();
            let mut failed = None;
            'arrays: for (ds, array, schema) in &arrays {
                let tiles = crate::copy::tiles(
                    &schema.shape,
                    &schema.chunk_shape,
                    crate::copy::COPY_TILE_ELEMENTS,
                );
                for (start, shape) in tiles {
                    if let Err(e) = source.read(ds, array, &schema.dtype, start, shape).await {
                        failed = Some(e);
                        break 'arrays;
                    }
                }
            }
            report.segments_checked += 1;
            report.bytes_checked += live.entry.size;
            match failed {
                None => {}
                Some(
                    error @ (Error::Upstream { .. }
                    | Error::SegmentGone { .. }
                    | Error::CorruptSegment { .. }
                    | Error::ObjectStore { .. }
                    | Error::Io { .. }),
                ) => report.damaged.push(DamagedSegment {
                    key: key.to_string(),
                    error,
                    holds: arrays.into_iter().map(|(d, a, _)| (d, a)).collect(),
                }),
                Some(other) => return Err(other),
            }
            progress(report.bytes_checked, total);
        }
        Ok(report)
    }

    /// What [`Atlas::vacuum`] would remove now with this handle's retention, without removing
    /// or committing anything (a dry run). Lists the store once.
    pub async fn vacuum_plan(&self) -> Result<VacuumPlan> {
        self.inner.writable("vacuum")?;
        let (committed, retention) = {
            let st = lock(&self.inner.state);
            (Arc::clone(&st.committed), st.retention)
        };
        let now = std::time::SystemTime::now();
        let prefix = &self.inner.prefix;
        let listing = catalog::list_all(&*self.inner.store, prefix).await?;
        let log_times = catalog::log_times(prefix, &listing);
        // A segment's checksum sidecar goes with it.
        let sizes: HashMap<&Path, u64> = listing.iter().map(|m| (&m.location, m.size)).collect();
        let with_sidecar = |path: &Path, size: u64| {
            size + sizes.get(&sums::sidecar_path(path)).copied().unwrap_or(0)
        };
        let mut plan = VacuumPlan::default();
        for (key, (entry, retired_at)) in committed.retired.iter() {
            let age = log_times.get(retired_at).map_or(Duration::MAX, |t| {
                now.duration_since(*t).unwrap_or(Duration::ZERO)
            });
            if age >= retention {
                let path = segment::object_path(prefix, key);
                plan.retired
                    .push((key.to_string(), with_sidecar(&path, entry.size)));
            } else {
                plan.retired_kept += 1;
            }
        }
        let live: HashSet<Path> = committed
            .segments
            .keys()
            .chain(committed.retired.keys())
            .map(|k| segment::object_path(prefix, k))
            .collect();
        for meta in &listing {
            if sums::segment_of(&meta.location).is_some()
                || !segment::is_segment(prefix, &meta.location)
                || live.contains(&meta.location)
            {
                continue;
            }
            let age = now
                .duration_since(meta.last_modified.into())
                .unwrap_or(Duration::ZERO);
            if age >= retention {
                let path = meta.location.as_ref();
                let relative = path
                    .strip_prefix(prefix.as_ref())
                    .map_or(path, |p| p.trim_start_matches('/'));
                plan.orphans.push((
                    relative.to_string(),
                    with_sidecar(&meta.location, meta.size),
                ));
            } else {
                plan.orphans_kept += 1;
            }
        }
        Ok(plan)
    }

    /// Loads into this handle's block cache, several requests at a time, the blocks holding the
    /// given regions of committed arrays: `(array, dataset, region)`, one range per axis (an
    /// empty region: the whole array). Arrays with unflushed writes, and datasets or arrays
    /// that do not exist, are skipped. Reads of those regions that follow are served from the
    /// cache, so a scan can fetch and decode ahead of the rows it emits. Returns how many
    /// blocks it loaded (those already cached are not loaded again).
    pub async fn prefetch<A: AsRef<str>, D: AsRef<str>>(
        &self,
        wanted: &[(A, D, Vec<Range<usize>>)],
    ) -> Result<usize> {
        // The upstream reader of an atlas-rust 0.10 store has no block cache to fill.
        if self.inner.region_source().is_some() {
            return Ok(0);
        }
        type Wanted = (String, Arc<ArraySchema>, Vec<Range<usize>>);
        let mut by_segment: BTreeMap<Name, (Option<SegmentEntry>, Vec<Wanted>)> = BTreeMap::new();
        {
            let st = lock(&self.inner.state);
            for (array, dataset, region) in wanted {
                let (array, dataset) = (array.as_ref(), dataset.as_ref());
                let Some(entry) = st.working.dataset(dataset).and_then(|d| d.array(array)) else {
                    continue;
                };
                let Some(seg) = entry.segment() else {
                    continue;
                };
                if st
                    .pending
                    .contains_key(&(dataset.to_string(), array.to_string()))
                {
                    continue;
                }
                let item = (
                    dataset.to_string(),
                    Arc::clone(entry.schema()),
                    region.clone(),
                );
                by_segment
                    .entry(Name::clone(seg))
                    .or_insert_with(|| (st.segment_entry(seg), Vec::new()))
                    .1
                    .push(item);
            }
        }
        let mut loaded = 0;
        for (key, (entry, items)) in by_segment {
            let file = self.inner.segments.open(&key, entry.as_ref()).await?;
            let mut ids = BTreeSet::new();
            // The layout is checked by the read that uses these blocks; a bad chunk
            // coordinate here only asks for a block nobody reads.
            for (dataset, schema, region) in &items {
                segment::blocks_of(&file, dataset, &schema.chunk_shape, region, &mut ids);
            }
            let ids: Vec<array_format::address::BlockId> = ids
                .into_iter()
                .map(array_format::address::BlockId)
                .collect();
            match file
                .prefetch_blocks(&ids, segment::PREFETCH_CONCURRENCY)
                .await
            {
                Ok(n) => loaded += n,
                Err(e) => {
                    let ctx = format!("prefetching {key}");
                    return Err(self.inner.segments.read_error(&key, ctx, e).await);
                }
            }
        }
        Ok(loaded)
    }

    /// The values of the whole `array` of each of `datasets` as array-format encodes them
    /// (little-endian, row-major), for arrays of a fixed-width dtype held in one chunk or in a
    /// pack: slices of the decoded blocks, through the block cache, with each segment looked up
    /// once and each chunk fetched once however many datasets it holds. A dataset whose values
    /// sit in one chunk costs no copy. `None` where this does not apply (no such dataset or
    /// array, never written, writes pending, several chunks, a variable-width dtype, a store
    /// read through an upstream reader): read those with [`DatasetView::read_array`].
    pub async fn read_encoded<D: AsRef<str>>(
        &self,
        array: &str,
        datasets: &[D],
    ) -> Result<Vec<Option<bytes::Bytes>>> {
        let mut out: Vec<Option<bytes::Bytes>> = vec![None; datasets.len()];
        if self.inner.region_source().is_some() {
            return Ok(out);
        }
        let mut plan: Vec<(usize, Name, Arc<ArraySchema>)> = Vec::with_capacity(datasets.len());
        let mut entries: HashMap<Name, Option<SegmentEntry>> = HashMap::new();
        {
            let st = lock(&self.inner.state);
            let any_pending = !st.pending.is_empty();
            for (i, ds) in datasets.iter().enumerate() {
                let ds = ds.as_ref();
                let Some(a) = st.working.dataset(ds).and_then(|d| d.array(array)) else {
                    continue;
                };
                let Some(seg) = a.segment() else {
                    continue;
                };
                if pack::element_size(&a.schema().dtype).is_none()
                    || (any_pending
                        && st
                            .pending
                            .contains_key(&(ds.to_string(), array.to_string())))
                {
                    continue;
                }
                if !entries.contains_key(seg) {
                    entries.insert(Name::clone(seg), st.segment_entry(seg));
                }
                plan.push((i, Name::clone(seg), Arc::clone(a.schema())));
            }
        }
        let segments = &self.inner.segments;
        let mut open: Option<(Name, Arc<segment::Segment>)> = None;
        // The pack chunk read last: consecutive packed datasets mostly share it.
        let mut held: Option<(String, u64, bytes::Bytes)> = None;
        for (i, seg, schema) in plan {
            let ds = datasets[i].as_ref();
            let file = match &open {
                Some((k, f)) if *k == seg => Arc::clone(f),
                _ => {
                    let f = segments.open(&seg, entries[&seg].as_ref()).await?;
                    open = Some((Name::clone(&seg), Arc::clone(&f)));
                    held = None;
                    f
                }
            };
            segments.check_layout(&seg, &file, ds, &schema)?;
            let elem = pack::element_size(&schema.dtype).unwrap_or(1);
            let n = schema.shape.iter().product::<usize>();
            let read = match (file.array(ds), file.packs.get(ds)) {
                (Some(info), _) => {
                    let chunks = info.chunk_entries();
                    let whole = info
                        .chunk_shape
                        .iter()
                        .zip(&info.shape)
                        .all(|(&c, &s)| c >= s);
                    if !whole || chunks.len() != 1 {
                        continue;
                    }
                    file.chunk_bytes(info, &chunks[0].coord).await
                }
                (None, Some(slot)) => {
                    match segment::slot_bytes(&file, slot, elem, &mut held).await {
                        Ok(None) => {
                            return Err(Error::CorruptSegment {
                                path: segment::object_path(&self.inner.prefix, &seg).to_string(),
                                reason: format!(
                                    "pack {:?}, which holds {ds:?}, lacks one of its chunks",
                                    slot.array
                                ),
                                source: None,
                            });
                        }
                        other => other,
                    }
                }
                (None, None) => continue,
            };
            let bytes = match read {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    let ctx = format!("reading {ds}/{array}");
                    return Err(segments.read_error(&seg, ctx, e).await);
                }
            };
            if bytes.len() != n * elem {
                return Err(Error::CorruptSegment {
                    path: segment::object_path(&self.inner.prefix, &seg).to_string(),
                    reason: format!(
                        "{} bytes of values for {ds:?}, whose {n} values take {}",
                        bytes.len(),
                        n * elem
                    ),
                    source: None,
                });
            }
            out[i] = Some(bytes);
        }
        Ok(out)
    }

    /// Blocks this handle has decoded so far (block-cache misses): the decoding work of its
    /// reads, counted where it happens.
    pub fn blocks_decoded(&self) -> u64 {
        self.inner.segments.blocks_decoded()
    }

    /// Reads the same region of `array` from each of `datasets`, in parallel (at most one read
    /// per CPU at a time). An entry is `None` where that dataset has no such array.
    pub async fn read_array_across<T: ArrayElement>(
        &self,
        array: &str,
        datasets: &[String],
        start: Vec<usize>,
        shape: Vec<usize>,
    ) -> Result<Vec<Option<ArcArray<T, IxDyn>>>> {
        for name in datasets {
            if !self.dataset_exists(name) {
                return Err(Error::DatasetNotFound { name: name.clone() });
            }
        }
        let limit = std::thread::available_parallelism().map_or(1, |n| n.get());
        let sem = Arc::new(tokio::sync::Semaphore::new(limit));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, name) in datasets.iter().enumerate() {
            let inner = Arc::clone(&self.inner);
            let sem = Arc::clone(&sem);
            let (name, array) = (name.clone(), array.to_string());
            let (start, shape) = (start.clone(), shape.clone());
            tasks.spawn(async move {
                let _permit = sem
                    .acquire_owned()
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?;
                let out = inner.read_region::<T>(&name, &array, start, shape).await?;
                Ok::<_, Error>((i, out))
            });
        }
        let mut out: Vec<Option<ArcArray<T, IxDyn>>> = vec![None; datasets.len()];
        while let Some(joined) = tasks.join_next().await {
            let (i, arr) =
                joined.map_err(|e| Error::Internal(format!("read task failed: {e}")))??;
            out[i] = arr;
        }
        Ok(out)
    }

    /// Like [`Atlas::read_array_across`], stacked into one array of shape
    /// `[datasets.len(), region...]`. Every dataset must have the array and the region must fit
    /// each of them.
    pub async fn read_array_across_stacked<T: ArrayElement>(
        &self,
        array: &str,
        datasets: &[String],
        start: Vec<usize>,
        shape: Vec<usize>,
    ) -> Result<Array<T, IxDyn>> {
        let parts = self
            .read_array_across::<T>(array, datasets, start, shape)
            .await?;
        let mut region: Option<Vec<usize>> = None;
        for (name, part) in datasets.iter().zip(&parts) {
            let Some(part) = part else {
                let known = DatasetView::new(Arc::clone(&self.inner), name.clone()).list_arrays();
                return Err(Error::ArrayNotFound {
                    dataset: name.clone(),
                    array: array.to_string(),
                    known: known.join(", "),
                });
            };
            match &region {
                None => region = Some(part.shape().to_vec()),
                Some(r) if r.as_slice() != part.shape() => {
                    return Err(Error::invalid(
                        name,
                        array,
                        format!(
                            "region has shape {:?} here but {r:?} in {}; stacking needs one shape",
                            part.shape(),
                            datasets[0]
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let region = region.unwrap_or_default();
        let mut dims = vec![datasets.len()];
        dims.extend_from_slice(&region);
        let mut out = ArrayD::<T>::from_elem(IxDyn(&dims), T::fill_element(None));
        for (i, part) in parts.into_iter().flatten().enumerate() {
            out.index_axis_mut(ndarray::Axis(0), i).assign(&part);
        }
        Ok(out)
    }
}

fn local_store(path: &std::path::Path) -> Result<Arc<dyn ObjectStore>> {
    let fs = LocalFileSystem::new_with_prefix(path).map_err(|e| Error::store(path.display(), e))?;
    Ok(Arc::new(fs))
}

/// One (dataset, array) a flush or spill writes.
struct Item {
    dataset: String,
    schema: Arc<ArraySchema>,
    base: Option<Name>,
    patches: Vec<Arc<dyn Patch>>,
}

impl Inner {
    /// Reads a region of one array, this handle's pending writes applied.
    pub(crate) async fn read_region<T: ArrayElement>(
        &self,
        dataset: &str,
        array: &str,
        start: Vec<usize>,
        shape: Vec<usize>,
    ) -> Result<Option<ArcArray<T, IxDyn>>> {
        let (schema, base, base_entry, patches) = {
            let st = lock(&self.state);
            let ds = st
                .working
                .dataset(dataset)
                .ok_or_else(|| Error::DatasetNotFound {
                    name: dataset.to_string(),
                })?;
            let Some(entry) = ds.array(array) else {
                return Ok(None);
            };
            let key = (dataset.to_string(), array.to_string());
            (
                Arc::clone(entry.schema()),
                entry.segment().cloned(),
                entry.segment().and_then(|s| st.segment_entry(s)),
                st.pending.get(&key).cloned().unwrap_or_default(),
            )
        };
        check_dtype::<T>(dataset, array, &schema)?;
        let (start, shape) = resolve_region(dataset, array, &schema, start, shape)?;
        let (patches, needs_base) = pending::live(&patches, &schema.shape);
        let base = base.filter(|_| needs_base);
        if base.is_some()
            && let Some(source) = self.region_source()
        {
            // A read-only store: nothing pending to apply.
            let read = source
                .read(dataset, array, &schema.dtype, start, shape)
                .await?;
            return match read.downcast::<ArcArray<T, IxDyn>>() {
                Ok(a) => Ok(Some(*a)),
                Err(_) => Err(Error::Internal(format!(
                    "the upstream reader returned another element type for {dataset}/{array}"
                ))),
            };
        }
        let mut out: ArrayD<T> = match base {
            Some(key) => {
                let arr = self
                    .read_base::<T>(
                        (&key, base_entry.as_ref()),
                        dataset,
                        array,
                        &schema,
                        start.clone(),
                        shape.clone(),
                    )
                    .await?;
                if patches.is_empty() {
                    return Ok(Some(arr));
                }
                arr.into_owned()
            }
            None => ArrayD::from_elem(IxDyn(&shape), T::fill_element(schema.fill_value.as_ref())),
        };
        for p in patches {
            if !pending::apply(&mut out, &start, &**p) {
                return Err(Error::Internal(format!(
                    "pending write to {dataset}/{array} has another element type"
                )));
            }
        }
        Ok(Some(out.into_shared()))
    }

    /// Adds a write; spills everything pending when the budget is passed. Caller holds the gate.
    pub(crate) async fn add_patch(
        &self,
        dataset: &str,
        array: &str,
        patch: Arc<dyn Patch>,
    ) -> Result<()> {
        let over = {
            let mut st = lock(&self.state);
            if st
                .working
                .dataset(dataset)
                .and_then(|d| d.array(array))
                .is_none()
            {
                return Err(Error::Internal(format!(
                    "write to {dataset}/{array}, which is not defined"
                )));
            }
            st.stats.pending_bytes += patch.nbytes();
            st.stats.peak_pending_bytes = st.stats.peak_pending_bytes.max(st.stats.pending_bytes);
            st.pending
                .entry((dataset.to_string(), array.to_string()))
                .or_default()
                .push(patch);
            st.touch(dataset);
            st.stats.pending_bytes > st.budget
        };
        if over {
            self.spill_locked().await?;
        }
        Ok(())
    }

    /// Groups pending writes by variable.
    fn pending_items(st: &State) -> BTreeMap<String, Vec<Item>> {
        let mut groups: BTreeMap<String, Vec<Item>> = BTreeMap::new();
        for ((dataset, array), patches) in &st.pending {
            let Some(entry) = st.working.dataset(dataset).and_then(|d| d.array(array)) else {
                continue;
            };
            groups.entry(array.clone()).or_default().push(Item {
                dataset: dataset.clone(),
                schema: Arc::clone(entry.schema()),
                base: entry.segment().cloned(),
                patches: patches.clone(),
            });
        }
        for items in groups.values_mut() {
            items.sort_by(|a, b| a.dataset.cmp(&b.dataset));
        }
        groups
    }

    /// Writes one segment of `variable` holding `items`; returns its key, entry, and the stats
    /// of each dataset's array in it.
    async fn write_segment(
        &self,
        generation: u64,
        variable: &str,
        items: &[Item],
    ) -> Result<(Name, SegmentEntry, Vec<(String, StatsRepr)>)> {
        use futures::FutureExt;
        // array-format's writer buffers blocks in a temporary file and panics when it cannot
        // make or write one (an unwritable or full temporary directory): check first, and turn
        // a panic midway into an error rather than a crash.
        segment::check_temp_dir()?;
        let write =
            std::panic::AssertUnwindSafe(self.write_segment_unguarded(generation, variable, items));
        match write.catch_unwind().await {
            Ok(result) => result,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown failure".into());
                Err(Error::Io {
                    path: std::env::temp_dir().display().to_string(),
                    source: std::io::Error::other(format!(
                        "writing a segment of {variable:?} failed in array-format ({why}); is \
                         the temporary directory writable and not full?"
                    )),
                })
            }
        }
    }

    async fn write_segment_unguarded(
        &self,
        generation: u64,
        variable: &str,
        items: &[Item],
    ) -> Result<(Name, SegmentEntry, Vec<(String, StatsRepr)>)> {
        let codec = lock(&self.state).committed.settings.codec;
        let mut writer = segment::new_writer(codec);
        // Small fixed-width arrays go into the segment's packs (`crate::pack`), whether they
        // were packed before or not; the rest are array-format arrays of their own.
        let writes = |item: &Item| {
            let (patches, needs_base) = pending::live(&item.patches, &item.schema.shape);
            !patches.is_empty() || (needs_base && item.base.is_some())
        };
        let packed: Vec<bool> = items
            .iter()
            .map(|i| pack::packable(&i.schema) && writes(i))
            .collect();
        let mut packer = pack::Packer::new(
            &mut writer,
            items
                .iter()
                .zip(&packed)
                .filter(|(_, p)| **p)
                .map(|(i, _)| &*i.schema),
        )?;
        let mut stats: Vec<(String, StatsRepr)> = Vec::new();
        for (item, &is_packed) in items.iter().zip(&packed) {
            if is_packed {
                let bytes = self.materialize(variable, item).await?;
                let schema = &item.schema;
                stats.push((
                    item.dataset.clone(),
                    pack::stats(&bytes, &schema.dtype, schema.fill_value.as_ref()),
                ));
                packer.push(&mut writer, &item.dataset, &schema.dtype, &bytes)?;
                continue;
            }
            let ctx = || format!("writing {}/{variable}", item.dataset);
            let (patches, needs_base) = pending::live(&item.patches, &item.schema.shape);
            match item.base.as_ref().filter(|_| needs_base) {
                Some(base) => {
                    let entry = lock(&self.state).segment_entry(base);
                    let file = self.segments.open(base, entry.as_ref()).await?;
                    self.segments
                        .check_layout(base, &file, &item.dataset, &item.schema)?;
                    if file.array(&item.dataset).is_none() {
                        // Packed where it was, not here: its values are its first write.
                        let schema = &item.schema;
                        let whole: Arc<dyn Patch> = crate::copy::by_dtype!(schema.dtype, &item.dataset, variable, T => {
                            let a = self
                                .read_base::<T>((base, entry.as_ref()), &item.dataset, variable, schema, vec![], vec![])
                                .await?;
                            let origin = vec![0; schema.shape.len()];
                            Ok::<Arc<dyn Patch>, Error>(Arc::new(
                                pending::TypedPatch::<T>::new(origin, a.view()),
                            ))
                        })?;
                        whole
                            .define_in(&mut writer, &item.dataset, schema)
                            .and_then(|()| whole.write_to(&mut writer, &item.dataset))
                            .map_err(|e| Error::format(ctx(), e))?;
                    } else if let Err(e) = writer.copy_array(&file, &item.dataset).await {
                        return Err(self.segments.read_error(base, ctx(), e).await);
                    }
                }
                None => match patches.first() {
                    Some(p) => p
                        .define_in(&mut writer, &item.dataset, &item.schema)
                        .map_err(|e| Error::format(ctx(), e))?,
                    None => continue,
                },
            }
            for p in patches {
                p.write_to(&mut writer, &item.dataset)
                    .map_err(|e| Error::format(ctx(), e))?;
            }
        }
        packer.finish(&mut writer)?;
        let key = segment::new_key(variable, generation);
        let path = segment::object_path(&self.prefix, &key);
        // The checksum is taken from the bytes as they are written, not by reading them back.
        let hashing = Arc::new(segment::HashingStore::new(Arc::clone(&self.store)));
        let file = writer
            .finish(Arc::clone(&hashing) as Arc<dyn ObjectStore>, path.clone())
            .await
            .map_err(|e| Error::format(format!("writing segment {path}"), e))?;
        stats.extend(items.iter().filter_map(|i| {
            file.array(&i.dataset)
                .and_then(segment_stats)
                .map(|s| (i.dataset.clone(), s))
        }));
        drop(file);
        let (size, crc32, sums) = hashing.digest();
        let sums = segment::write_sums(&*self.store, &path, &sums).await?;
        let mut st = lock(&self.state);
        st.stats.segments_written += 1;
        st.stats.segment_bytes_written += size;
        let entry = SegmentEntry {
            variable: st.interner.name(variable),
            size,
            crc32,
            sums: Some(sums),
        };
        let key = st.interner.name(&key);
        Ok((key, entry, stats))
    }

    /// The values of `item` (its base with its patches applied) as array-format encodes them,
    /// row-major: what a pack holds of it.
    async fn materialize(&self, variable: &str, item: &Item) -> Result<Vec<u8>> {
        let (patches, needs_base) = pending::live(&item.patches, &item.schema.shape);
        let schema = &item.schema;
        let base = item.base.as_ref().filter(|_| needs_base);
        crate::copy::by_dtype!(schema.dtype, &item.dataset, variable, T => {
            let mut out: ArrayD<T> = match base {
                Some(key) => {
                    let entry = lock(&self.state).segment_entry(key);
                    self.read_base::<T>((key, entry.as_ref()), &item.dataset, variable, schema, vec![], vec![])
                        .await?
                        .into_owned()
                }
                None => ArrayD::from_elem(
                    IxDyn(&schema.shape),
                    T::fill_element(schema.fill_value.as_ref()),
                ),
            };
            let origin = vec![0; schema.shape.len()];
            for p in patches {
                if !pending::apply(&mut out, &origin, &**p) {
                    return Err(Error::Internal(format!(
                        "pending write to {}/{variable} has another element type",
                        item.dataset
                    )));
                }
            }
            let out = out.as_standard_layout();
            Ok(match out.as_slice() {
                Some(s) => T::encode_chunk(s),
                None => T::encode_chunk(&out.iter().cloned().collect::<Vec<T>>()),
            })
        })
    }

    /// Reads a region of `dataset`'s `array` from its committed segment `key`, whose catalog
    /// row is `entry` (no pending writes): its own array-format array or its slot in a pack, the layout checked first.
    pub(crate) async fn read_base<T: ArrayElement>(
        &self,
        (key, entry): (&Name, Option<&SegmentEntry>),
        dataset: &str,
        array: &str,
        schema: &ArraySchema,
        start: Vec<usize>,
        shape: Vec<usize>,
    ) -> Result<ArcArray<T, IxDyn>> {
        let file = self.segments.open(key, entry).await?;
        self.segments.check_layout(key, &file, dataset, schema)?;
        let (start, shape) = if start.is_empty() && shape.is_empty() {
            (vec![0; schema.shape.len()], schema.shape.clone())
        } else {
            (start, shape)
        };
        match segment::read_region::<T>(&file, dataset, &schema.shape, start, shape).await {
            Ok(a) => Ok(a),
            Err(e) => {
                let ctx = format!("reading {dataset}/{array}");
                Err(self.segments.read_error(key, ctx, e).await)
            }
        }
    }

    /// Writes every pending array into segments and points the working catalog at them.
    async fn write_pending(&self, generation: u64) -> Result<()> {
        let groups = Self::pending_items(&lock(&self.state));
        let mut written = Vec::new();
        for (variable, items) in &groups {
            written.push((
                variable,
                items,
                self.write_segment(generation, variable, items).await?,
            ));
        }
        let mut st = lock(&self.state);
        for (variable, items, (key, entry, stats)) in written {
            st.own_spills.insert(Name::clone(&key), entry);
            let stats: HashMap<String, StatsRepr> = stats.into_iter().collect();
            for item in items {
                let k = (item.dataset.clone(), variable.clone());
                // Only the array these writes were made to: a delete (and redefinition) while
                // the segment was written drops them, and the segment must not stand in.
                let same = match (
                    st.pending.get(&k).and_then(|p| p.first()),
                    item.patches.first(),
                ) {
                    (Some(now), Some(then)) => Arc::ptr_eq(now, then),
                    _ => false,
                };
                if !same {
                    continue;
                }
                if let Some(a) = st
                    .dataset_mut(&item.dataset)
                    .and_then(|d| d.array_mut(variable))
                {
                    a.segment = Some(Name::clone(&key));
                    a.stats = stats.get(&item.dataset).cloned();
                }
                st.drop_pending(&k);
            }
        }
        Ok(())
    }

    /// Moves all pending writes into uncommitted segments. Caller holds the gate.
    async fn spill_locked(&self) -> Result<()> {
        let generation = lock(&self.state).committed.generation + 1;
        self.write_pending(generation).await?;
        lock(&self.state).stats.spills += 1;
        Ok(())
    }

    /// Flush with the gate held.
    pub(crate) async fn flush_locked(&self) -> Result<()> {
        self.resolve_in_doubt().await?;
        {
            let st = lock(&self.state);
            if st.pending.is_empty() && st.dirty.is_empty() {
                return Ok(());
            }
        }
        let generation = lock(&self.state).committed.generation + 1;
        self.write_pending(generation).await?;
        loop {
            let (base, delta, next, mark) = self.build_commit()?;
            match catalog::commit(&*self.store, &self.prefix, &base, &delta).await {
                Ok(outcome) => {
                    let mut next = next;
                    next.lineage.log_bytes_since += outcome.bytes;
                    self.committed(Arc::new(next), mark).await;
                    self.maybe_checkpoint().await;
                    return Ok(());
                }
                Err(Error::Conflict { base: b, found, .. }) => {
                    // Another writer took the generation: if what it (and any after it)
                    // changed is disjoint from ours, commit on top of it.
                    self.rebase(b, found, &BTreeMap::new()).await?;
                }
                Err(e) => {
                    lock(&self.state).in_doubt = Some((Arc::new(next), mark));
                    return Err(e);
                }
            }
        }
    }

    /// The next commit of this handle: its base, the delta (every dirty dataset as the working
    /// state has it, and the segments first referenced), the state it makes, and the change
    /// mark it covers.
    fn build_commit(&self) -> Result<(Arc<Snapshot>, Delta, Snapshot, u64)> {
        let mut st = lock(&self.state);
        let base = Arc::clone(&st.committed);
        let mark = st.changes;
        let mut names: Vec<Name> = st.dirty.keys().cloned().collect();
        names.sort();
        let mut changes = catalog::changes_for(&st.working, &names);
        let mut added: Vec<(Name, SegmentEntry)> = Vec::new();
        for change in &mut changes {
            let DatasetChange::Put(_, ds) = change else {
                continue;
            };
            // Share the attribute sets other datasets already hold.
            let mut shared = ds.get().to_dataset();
            shared.attributes = st.interner.share_attrs(&shared.attributes);
            for a in &mut shared.arrays {
                a.attributes = st.interner.share_attrs(&a.attributes);
                if let Some(seg) = &a.segment
                    && !base.segments.contains_key(seg)
                    && !added.iter().any(|(k, _)| k == seg)
                {
                    let entry = st.segment_entry(seg).ok_or_else(|| {
                        Error::Internal(format!("segment {seg} of a commit has no entry"))
                    })?;
                    added.push((Name::clone(seg), entry));
                }
            }
            *ds = Held::Owned(Arc::new(shared));
        }
        let delta = Delta {
            generation: base.generation + 1,
            commit_id: catalog::new_id().into(),
            added_segments: added,
            datasets: changes,
            dropped_segments: Vec::new(),
        };
        let next = base
            .apply(&delta, "this handle's commit")
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok((base, delta, next, mark))
    }

    /// Brings this handle up to the newest commit when the commits it missed touched none of
    /// its dirty datasets (nor any dataset `also` names); otherwise [`Error::Conflict`] naming
    /// the first that did. Either way the pending changes stay.
    async fn rebase(&self, base: u64, found: u64, also: &BTreeMap<Name, Dataset>) -> Result<()> {
        let conflict = Error::Conflict {
            base,
            found,
            detail: String::new(),
        };
        let mut interner = std::mem::take(&mut lock(&self.state).interner);
        let mut missed = Vec::new();
        let mut generation = base + 1;
        let read = loop {
            match catalog::read_delta(&*self.store, &self.prefix, generation, &mut interner).await {
                Ok(Some(d)) => missed.push(d),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
            generation += 1;
        };
        let mut st = lock(&self.state);
        st.interner = interner;
        read?;
        // The generation was taken, but its entry is not a version-2 delta this handle can
        // check (cleaned up behind a checkpoint, or written by another format version).
        if missed.is_empty() {
            return Err(conflict);
        }
        for (delta, _) in &missed {
            if let Some(c) = delta
                .datasets
                .iter()
                .find(|c| st.dirty.contains_key(c.name()) || also.contains_key(c.name()))
            {
                return Err(Error::Conflict {
                    base,
                    found: delta.generation,
                    detail: format!(" and changed dataset {:?} too", &**c.name()),
                });
            }
        }
        let mut committed = (*st.committed).clone();
        for (delta, bytes) in &missed {
            let origin = format!("log entry of generation {}", delta.generation);
            committed = committed.apply(delta, &origin)?;
            committed.lineage.log_bytes_since += bytes;
        }
        // The working state: the new committed state with this handle's changes on top.
        let mut working = committed.clone();
        let dirty: Vec<Name> = st.dirty.keys().cloned().collect();
        for name in dirty {
            working.take_from(&st.working, &name);
        }
        st.working = working;
        st.committed = Arc::new(committed);
        Ok(())
    }

    /// Settles a commit whose put failed: if it landed after all, it becomes this handle's
    /// committed state; if not, the next commit supersedes it.
    async fn resolve_in_doubt(&self) -> Result<()> {
        let Some((next, mark)) = lock(&self.state).in_doubt.take() else {
            return Ok(());
        };
        let mut interner = Interner::default();
        match catalog::read_delta(&*self.store, &self.prefix, next.generation, &mut interner).await
        {
            Ok(Some((found, _))) if found.commit_id == next.commit_id => {
                self.committed(next, mark).await;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                lock(&self.state).in_doubt = Some((next, mark));
                Err(e)
            }
        }
    }

    /// Records a landed commit and removes this handle's superseded spills.
    async fn committed(&self, next: Arc<Snapshot>, mark: u64) {
        let garbage: Vec<Name> = {
            let mut st = lock(&self.state);
            st.adopt(next);
            // Datasets unchanged since the commit was built take the committed copies, whose
            // attribute sets are shared with every other dataset's.
            let settled: Vec<Name> = st
                .dirty
                .iter()
                .filter(|(_, m)| **m <= mark)
                .map(|(n, _)| Name::clone(n))
                .collect();
            let committed = Arc::clone(&st.committed);
            for name in settled {
                st.working.take_from(&committed, &name);
            }
            st.dirty.retain(|_, m| *m > mark);
            st.stats.commits += 1;
            let garbage = st
                .own_spills
                .keys()
                .filter(|k| !committed.segments.contains_key(*k))
                .cloned()
                .collect::<Vec<_>>();
            // Spills still referenced only by changes made after the commit stay ours.
            let still_needed: HashSet<Name> = st
                .dirty
                .keys()
                .filter_map(|n| st.working.dataset(n))
                .flat_map(|d| d.arrays().filter_map(|a| a.segment().cloned()))
                .collect();
            st.own_spills
                .retain(|k, _| !committed.segments.contains_key(k) && still_needed.contains(k));
            garbage
                .into_iter()
                .filter(|k| !still_needed.contains(k))
                .collect()
        };
        // Spills superseded before they were ever committed are this handle's alone.
        for key in garbage {
            let path = segment::object_path(&self.prefix, &key);
            let _ = self.store.delete(&path).await;
            let _ = self.store.delete(&sums::sidecar_path(&path)).await;
        }
    }

    /// Whether the store holds commits after `generation`: its next log entry exists, or (when
    /// clean-up removed the entries a checkpoint covers) a checkpoint past it does.
    async fn committed_after(&self, generation: u64) -> Result<bool> {
        let (store, prefix) = (&*self.store, &self.prefix);
        // Both in flight: one round trip whatever the answer.
        let (next, newest) = futures::join!(
            catalog::log_entry_exists(store, prefix, generation + 1),
            catalog::newest_checkpoint(store, prefix)
        );
        Ok(next? || newest? > Some(generation))
    }

    /// Writes a checkpoint when the log since the last one is long enough (or the store is
    /// still version 1). A failure here loses nothing: the commit has landed, and the next
    /// commit tries again.
    async fn maybe_checkpoint(&self) {
        let (l, every) = {
            let st = lock(&self.state);
            (st.committed.lineage, st.checkpoint_commits)
        };
        let due = l.base_format < catalog::FORMAT_VERSION
            || l.commits_since >= every
            || l.log_bytes_since
                >= (l.checkpoint_bytes / CHECKPOINT_LOG_FRACTION).max(CHECKPOINT_MIN_LOG_BYTES);
        if due {
            let _ = self.checkpoint_now().await;
        }
    }

    /// Writes a checkpoint of the committed state and cleans up what it covers.
    pub(crate) async fn checkpoint_now(&self) -> Result<u64> {
        let (snap, retention) = {
            let st = lock(&self.state);
            (Arc::clone(&st.committed), st.retention)
        };
        // Folded first: the checkpoint is written from the columns, and the handle keeps them.
        let snap = if snap.changed.is_empty() {
            snap
        } else {
            Arc::new(snap.fold())
        };
        let size = catalog::write_checkpoint(&*self.store, &self.prefix, &snap).await?;
        {
            let mut st = lock(&self.state);
            if st.committed.generation == snap.generation {
                let mut next = (*snap).clone();
                next.lineage.base_format = catalog::FORMAT_VERSION;
                next.lineage.checkpoint_bytes = size;
                next.lineage.commits_since = 0;
                next.lineage.log_bytes_since = 0;
                // The working state: the folded state with this handle's changes since on top.
                let mut working = next.clone();
                working.next_seq = working.next_seq.max(st.working.next_seq);
                let dirty: Vec<Name> = st.dirty.keys().cloned().collect();
                for name in &dirty {
                    working.take_from(&st.working, name);
                }
                st.working = working;
                // What the interner remembered of datasets now folded is held by the columns.
                let mut interner = Interner::default();
                interner.seed(&next.frozen);
                st.interner = interner;
                st.committed = Arc::new(next);
            }
            st.stats.checkpoints += 1;
        }
        catalog::cleanup_log(&*self.store, &self.prefix, snap.generation, retention).await?;
        Ok(snap.generation)
    }

    /// Compaction (when `rewrite`) and removal of unneeded segments. Caller holds the gate and
    /// has just flushed, so `working` equals `committed` apart from changes made since.
    async fn cleanup(&self, rewrite: bool) -> Result<CompactReport> {
        let mut report = CompactReport::default();
        let retention = lock(&self.state).retention;
        // A handle that missed other writers' commits would take their segments for orphans:
        // it catches up first (or says conflict when it cannot).
        let (latest, _) = catalog::load_latest(&*self.store, &self.prefix).await?;
        let base = lock(&self.state).committed.generation;
        if latest.generation != base {
            self.rebase(base, latest.generation, &BTreeMap::new())
                .await?;
        }
        let committed = Arc::clone(&lock(&self.state).committed);
        let generation = committed.generation + 1;
        // Datasets whose arrays moved, as they will be, and the segments written.
        let mut moved: BTreeMap<Name, Dataset> = BTreeMap::new();
        let mut added: Vec<(Name, SegmentEntry)> = Vec::new();
        if rewrite {
            // Live arrays of each variable, and the segments they sit in.
            let mut by_var: BTreeMap<Name, Vec<(Name, Name, Arc<ArraySchema>)>> = BTreeMap::new();
            for (ds, d) in committed.iter() {
                for a in d.arrays() {
                    if let Some(seg) = a.segment() {
                        by_var.entry(Name::clone(a.name())).or_default().push((
                            Name::from(ds),
                            Name::clone(seg),
                            Arc::clone(a.schema()),
                        ));
                    }
                }
            }
            for (variable, live) in by_var {
                let segs: BTreeSet<&Name> = live.iter().map(|(_, s, _)| s).collect();
                let mut needs = segs.len() > 1;
                if !needs {
                    for s in &segs {
                        let file = self.segments.open(s, committed.segment(s)).await?;
                        // Arrays of datasets no longer live, or small arrays not yet packed.
                        needs |= file.datasets() != live.len()
                            || live.iter().any(|(ds, _, schema)| {
                                pack::packable(schema) && file.array(ds).is_some()
                            });
                    }
                }
                if !needs {
                    continue;
                }
                let items: Vec<Item> = live
                    .iter()
                    .map(|(ds, seg, schema)| Item {
                        dataset: ds.to_string(),
                        schema: Arc::clone(schema),
                        base: Some(Name::clone(seg)),
                        patches: Vec::new(),
                    })
                    .collect();
                let (key, entry, stats) = self.write_segment(generation, &variable, &items).await?;
                added.push((Name::clone(&key), entry));
                for (ds, s) in stats {
                    let name: Name = ds.as_str().into();
                    let Some(d) = moved
                        .get(&name)
                        .cloned()
                        .or_else(|| committed.dataset(&ds).map(|d| d.to_dataset()))
                    else {
                        continue;
                    };
                    let mut d = d;
                    if let Some(a) = d.array_mut(&variable) {
                        a.segment = Some(Name::clone(&key));
                        a.stats = Some(s);
                    }
                    moved.insert(name, d);
                }
                report.variables_rewritten.push(variable.to_string());
            }
        }
        let mut cat = committed;
        let mut doomed: BTreeSet<Path> = BTreeSet::new();
        // One listing serves the retirement ages (a generation's time is its log entry's) and
        // the orphan sweep below (objects written after it are not swept, which is safe).
        let now = std::time::SystemTime::now();
        let listing = catalog::list_all(&*self.store, &self.prefix).await?;
        let log_times = catalog::log_times(&self.prefix, &listing);
        let age_of = |retired_at: u64, generation: u64| {
            if retired_at >= generation {
                // Retired by this very clean-up.
                return Duration::ZERO;
            }
            // A log entry is removed only once a checkpoint covers it and it is older than
            // the retention, so a missing one is old.
            log_times.get(&retired_at).map_or(Duration::MAX, |t| {
                now.duration_since(*t).unwrap_or(Duration::ZERO)
            })
        };
        let expired = |r: &imbl::OrdMap<Name, (SegmentEntry, u64)>, generation: u64| -> Vec<Name> {
            r.iter()
                .filter(|(_, (_, g))| age_of(*g, generation) >= retention)
                .map(|(k, _)| Name::clone(k))
                .collect()
        };
        if !moved.is_empty() || !expired(&cat.retired, generation).is_empty() {
            let mut datasets = Vec::with_capacity(moved.len());
            for (name, d) in &moved {
                let key = lock(&self.state).interner.name(name);
                datasets.push(DatasetChange::Put(key, Held::Owned(Arc::new(d.clone()))));
            }
            let mut delta = Delta {
                generation,
                commit_id: catalog::new_id().into(),
                added_segments: added,
                datasets,
                dropped_segments: Vec::new(),
            };
            let (outcome, mut next) = loop {
                delta.dropped_segments.clear();
                let mut next = cat
                    .apply(&delta, "this handle's compaction")
                    .map_err(|e| Error::Internal(e.to_string()))?;
                // Retired segments past the retention are removed (the commit drops them);
                // younger ones, and what this rewrite retires, stay for readers of older
                // generations.
                delta.dropped_segments = expired(&next.retired, delta.generation);
                for key in &delta.dropped_segments {
                    next.retired.remove(key);
                }
                match catalog::commit(&*self.store, &self.prefix, &cat, &delta).await {
                    Ok(outcome) => break (outcome, next),
                    // Another writer committed while this one rewrote: if it touched none of
                    // the moved datasets, commit on top of it (appends never stall compaction).
                    Err(Error::Conflict { base, found, .. }) => {
                        self.rebase(base, found, &moved).await?;
                        cat = Arc::clone(&lock(&self.state).committed);
                        delta.generation = cat.generation + 1;
                        delta.commit_id = catalog::new_id().into();
                    }
                    Err(e) => return Err(e),
                }
            };
            doomed = delta
                .dropped_segments
                .iter()
                .map(|k| segment::object_path(&self.prefix, k))
                .collect();
            next.lineage.log_bytes_since += outcome.bytes;
            let next = Arc::new(next);
            {
                let mut st = lock(&self.state);
                // Point the working state's arrays at their new segments, keeping any change
                // made since the flush.
                for change in &delta.datasets {
                    let DatasetChange::Put(name, d) = change else {
                        continue;
                    };
                    let Some(w) = st.dataset_mut(name) else {
                        continue;
                    };
                    for a in d.get().arrays() {
                        if let Some(wa) = w.array_mut(a.name())
                            && wa.schema == *a.schema()
                        {
                            wa.segment = a.segment().cloned();
                            wa.stats = a.stats();
                        }
                    }
                }
                st.adopt(Arc::clone(&next));
                st.stats.commits += 1;
            }
            cat = next;
            if moved.is_empty() {
                self.maybe_checkpoint().await;
            } else {
                // The compaction's log entry names every dataset it moved, and every open
                // after it would replay them all: a checkpoint now costs what the rewrite
                // already did and makes the next open read one object. Best effort, as after
                // any commit: the compaction is committed either way.
                let _ = self.checkpoint_now().await;
            }
        }
        report.retired_kept = cat.retired.len();
        // Unreferenced segments nobody retired: crashed writers' leftovers, or live spills.
        // Compared as object paths, since paths percent-encode some characters of names.
        let live: HashSet<Path> = cat
            .segments
            .keys()
            .chain(cat.retired.keys())
            .map(|k| segment::object_path(&self.prefix, k))
            .collect();
        let mut sizes: HashMap<Path, u64> = HashMap::new();
        // Sidecars go with their segment; one whose segment is gone ages like an orphan.
        let mut lone_sidecars = Vec::new();
        for meta in listing {
            let sidecar_of = sums::segment_of(&meta.location);
            let segment = sidecar_of.as_ref().unwrap_or(&meta.location);
            if !segment::is_segment(&self.prefix, segment) || live.contains(segment) {
                continue;
            }
            sizes.insert(meta.location.clone(), meta.size);
            let age = now
                .duration_since(meta.last_modified.into())
                .unwrap_or(Duration::ZERO);
            if sidecar_of.is_some() {
                if age >= retention {
                    lone_sidecars.push(meta.location);
                }
                continue;
            }
            if doomed.contains(&meta.location) {
                continue;
            }
            if age >= retention {
                doomed.insert(meta.location);
            } else {
                report.orphans_kept += 1;
            }
        }
        let sidecars: Vec<Path> = doomed.iter().map(sums::sidecar_path).collect();
        for path in doomed {
            match self.store.delete(&path).await {
                Ok(()) => {
                    report.segments_removed += 1;
                    report.bytes_removed += sizes.get(&path).copied().unwrap_or(0);
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::store(&path, e)),
            }
        }
        let sidecars: HashSet<Path> = sidecars.into_iter().chain(lone_sidecars).collect();
        for path in sidecars {
            match self.store.delete(&path).await {
                Ok(()) => report.bytes_removed += sizes.get(&path).copied().unwrap_or(0),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::store(&path, e)),
            }
        }
        self.segments.clear();
        Ok(report)
    }
}

pub(crate) fn check_dtype<T: ArrayElement>(
    dataset: &str,
    array: &str,
    schema: &ArraySchema,
) -> Result<()> {
    if schema.dtype != T::DTYPE {
        return Err(Error::DTypeMismatch {
            dataset: dataset.to_string(),
            array: array.to_string(),
            expected: schema.dtype.clone(),
            actual: T::DTYPE,
        });
    }
    Ok(())
}

/// Checks a read region; empty `start` and `shape` mean the whole array.
pub(crate) fn resolve_region(
    dataset: &str,
    array: &str,
    schema: &ArraySchema,
    start: Vec<usize>,
    shape: Vec<usize>,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let ndim = schema.shape.len();
    if start.is_empty() && shape.is_empty() {
        return Ok((vec![0; ndim], schema.shape.clone()));
    }
    if start.len() != ndim || shape.len() != ndim {
        return Err(Error::invalid(
            dataset,
            array,
            format!(
                "the array has {ndim} dimensions, but start has {} and shape {}",
                start.len(),
                shape.len()
            ),
        ));
    }
    check_bounds(dataset, array, &schema.shape, &start, &shape, "read")?;
    Ok((start, shape))
}

pub(crate) fn check_bounds(
    dataset: &str,
    array: &str,
    full: &[usize],
    start: &[usize],
    shape: &[usize],
    what: &str,
) -> Result<()> {
    for (axis, ((&s, &n), &len)) in start.iter().zip(shape).zip(full).enumerate() {
        match s.checked_add(n) {
            Some(end) if end <= len => {}
            _ => {
                return Err(Error::invalid(
                    dataset,
                    array,
                    format!(
                        "{what} of [{s}, {s}+{n}) is out of bounds on axis {axis} of length {len} \
                         (shape {full:?})"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Catalog entry lookup shared by the dataset view.
pub(crate) fn array_entry<'a>(st: &'a State, dataset: &str, array: &str) -> Result<EntryRef<'a>> {
    let ds = st
        .working
        .dataset(dataset)
        .ok_or_else(|| Error::DatasetNotFound {
            name: dataset.to_string(),
        })?;
    ds.array(array).ok_or_else(|| Error::ArrayNotFound {
        dataset: dataset.to_string(),
        array: array.to_string(),
        known: ds
            .arrays()
            .map(|a| &**a.name())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Statistics of an array as of the last commit, from the catalog.
pub(crate) fn committed_stats(st: &State, dataset: &str, array: &str) -> Option<ArrayStats> {
    st.committed
        .dataset(dataset)?
        .array(array)?
        .stats()
        .map(|s| s.to_stats(array))
}
