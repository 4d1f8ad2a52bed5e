//! The catalog: what the store holds, and the commit protocol around it (format version 3; versions 1 and 2 are read and upgraded).
//!
//! ```text
//! atlas.json                      marker: format version and settings (written once)
//! _log/<g:020>.atl                the changes of generation g; its create-if-absent put is
//!                                 the commit point
//! _checkpoint/<g:020>.atl         the full state as of g, columnar
//! ```
//!
//! A commit writes only what it changed, so its cost follows the change, not the store.
//! Every so often (when the log since the last checkpoint reaches an eighth of it) the
//! committing writer also writes a checkpoint; `open` lists `_checkpoint/`, reads the newest one
//! and replays the log after it. Log entries and checkpoints a newer checkpoint covers are removed once older
//! than the retention period. Version-1 stores (`snapshot` of the whole catalog per commit, in
//! [`v1`]) still open; their first checkpoint upgrades them. See `docs/format.md`.

pub(crate) mod columns;
pub(crate) mod frozen;
pub(crate) mod log;
pub(crate) mod snapshot;
pub(crate) mod v1;

use object_store::{ObjectStore, path::Path};

use crate::error::{Error, Result};

pub(crate) use frozen::{DsRef, EntryRef, Held};
pub(crate) use log::{
    changes_for, cleanup_log, commit, create, load_latest, log_entry_exists, newest_checkpoint,
    read_delta, root_listing, write_checkpoint,
};
pub(crate) use snapshot::{
    ArrayEntry, Dataset, DatasetChange, Delta, Interner, Name, SegmentEntry, Settings, Snapshot,
};

/// The catalog format version this build writes and the newest it reads.
pub(crate) const FORMAT_VERSION: u32 = 4;

/// Folder of per-generation commit objects.
pub(crate) const LOG_DIR: &str = "_log";

/// Folder of checkpoints.
pub(crate) const CHECKPOINT_DIR: &str = "_checkpoint";

/// A random 16-hex-digit id, unique across processes in practice.
pub(crate) fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    format!("{:016x}", h.finish())
}

/// Lists every object under `prefix` (for vacuum and size reports).
pub(crate) async fn list_all(
    store: &dyn ObjectStore,
    prefix: &Path,
) -> Result<Vec<object_store::ObjectMeta>> {
    use futures::TryStreamExt;
    let p = (!prefix.as_ref().is_empty()).then_some(prefix);
    store
        .list(p)
        .try_collect()
        .await
        .map_err(|e| Error::store(prefix, e))
}

/// When each generation was committed: its log entry's `last_modified`, from a listing.
pub(crate) fn log_times(
    prefix: &Path,
    listing: &[object_store::ObjectMeta],
) -> std::collections::HashMap<u64, std::time::SystemTime> {
    let dir = prefix.clone().join(LOG_DIR);
    listing
        .iter()
        .filter_map(|m| {
            let mut rest = m.location.prefix_match(&dir)?;
            let file = rest.next()?;
            let g = file.as_ref().split('.').next()?.parse().ok()?;
            Some((g, m.last_modified.into()))
        })
        .collect()
}

pub(crate) fn display_location(prefix: &Path) -> String {
    if prefix.as_ref().is_empty() {
        "the store root".to_string()
    } else {
        prefix.to_string()
    }
}
