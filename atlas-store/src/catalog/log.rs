//! Reading and writing the catalog's objects: the root marker, log entries, checkpoints.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, path::Path};
use serde::{Deserialize, Serialize};

use super::columns::{Columns, ColumnsWriter, corrupt};
use super::frozen::Held;
use super::snapshot::{DatasetChange, Delta, Interner, LiveSegment, Name, Settings, Snapshot};
use super::{CHECKPOINT_DIR, FORMAT_VERSION, LOG_DIR, display_location, v1};
use crate::config::MetaFormat;
use crate::error::{Error, Result};

/// Extension of log entries and checkpoints (format version 2 and later).
const EXT: &str = "atl";
/// First bytes of every log entry and checkpoint (format version 2 and later).
const MAGIC: &[u8; 6] = b"ATLAS2";
const KIND_LOG: u8 = b'L';
const KIND_CHECKPOINT: u8 = b'C';
const HEADER: usize = 6 + 1 + 1 + 4 + 8 + 4;
/// Largest decompressed entry accepted: a damaged length field must not allocate the machine.
const MAX_DECODED: u64 = 16 << 30;
/// Log entries read at once while replaying the tail: one per CPU, the store's read bound.
fn tail_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn log_path(prefix: &Path, generation: u64, ext: &str) -> Path {
    prefix
        .clone()
        .join(LOG_DIR)
        .join(format!("{generation:020}.{ext}").as_str())
}

fn checkpoint_path(prefix: &Path, generation: u64) -> Path {
    prefix
        .clone()
        .join(CHECKPOINT_DIR)
        .join(format!("{generation:020}.{EXT}").as_str())
}

fn root_path(prefix: &Path, ext: &str) -> Path {
    prefix.clone().join(format!("atlas.{ext}").as_str())
}

/// Wraps a msgpack payload: magic, kind, version, decoded length, CRC-32 of the compressed
/// bytes, then the zstd-compressed payload.
#[cfg(test)]
fn seal(kind: u8, payload: &[u8]) -> Result<Vec<u8>> {
    let packed = zstd::bulk::compress(payload, 3).map_err(|e| Error::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER + packed.len());
    out.extend_from_slice(MAGIC);
    out.push(kind);
    out.push(0);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&packed).to_le_bytes());
    out.extend_from_slice(&packed);
    Ok(out)
}

/// [`seal`] of a document's MessagePack, encoded straight into the compressor: a checkpoint of
/// a million datasets never exists uncompressed as a whole.
fn seal_doc<T: Serialize>(kind: u8, doc: &T) -> Result<Vec<u8>> {
    use std::io::Write;
    /// Counts the bytes written through it.
    struct Counting<W>(W, u64);
    impl<W: Write> Write for Counting<W> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.0.write(buf)?;
            self.1 += n as u64;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }
    let encode = |e: &dyn std::fmt::Display| Error::Encode(e.to_string());
    let out = vec![0u8; HEADER];
    let mut z = Counting(
        zstd::stream::Encoder::new(out, 3).map_err(|e| encode(&e))?,
        0,
    );
    rmp_serde::encode::write(&mut z, doc).map_err(|e| encode(&e))?;
    let decoded = z.1;
    let mut out = z.0.finish().map_err(|e| encode(&e))?;
    let crc = crc32fast::hash(&out[HEADER..]);
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.push(kind);
    header.push(0);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&decoded.to_le_bytes());
    header.extend_from_slice(&crc.to_le_bytes());
    out[..HEADER].copy_from_slice(&header);
    Ok(out)
}

/// Checks and unwraps what [`seal`] wrote.
/// Returns the payload and the format version of its writer.
fn unseal(path: &Path, bytes: &[u8], kind: u8) -> Result<(Vec<u8>, u32)> {
    let bad = |reason: String| Error::CorruptCatalog {
        path: path.to_string(),
        reason,
    };
    if bytes.len() < HEADER || &bytes[..6] != MAGIC {
        return Err(bad(format!(
            "{} bytes without the ATLAS2 header",
            bytes.len()
        )));
    }
    if bytes[6] != kind {
        return Err(bad(format!(
            "a {} where a {} was expected",
            kind_name(bytes[6]),
            kind_name(kind)
        )));
    }
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let version = word(8);
    if version > FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_string(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let len = u64::from(word(12)) | (u64::from(word(16)) << 32);
    let stored = word(20);
    let packed = &bytes[HEADER..];
    let crc = crc32fast::hash(packed);
    if crc != stored {
        return Err(bad(format!(
            "checksum mismatch (stored {stored:08x}, computed {crc:08x})"
        )));
    }
    if len > MAX_DECODED {
        return Err(bad(format!("claims {len} decoded bytes")));
    }
    let out = zstd::bulk::decompress(packed, len as usize)
        .map_err(|e| bad(format!("zstd decompression failed: {e}")))?;
    if out.len() as u64 != len {
        return Err(bad(format!(
            "decodes to {} bytes, but the header says {len}",
            out.len()
        )));
    }
    Ok((out, version))
}

/// Unseals and deserialises a log entry or checkpoint.
/// Deserializes an unsealed payload; the document's columns borrow from it.
fn read_doc<'de, T: Deserialize<'de>>(path: &Path, payload: &'de [u8], kind: u8) -> Result<T> {
    rmp_serde::from_slice(payload)
        .map_err(|e| corrupt(path.as_ref())(format!("bad {}: {e}", kind_name(kind))))
}

fn kind_name(k: u8) -> &'static str {
    match k {
        KIND_LOG => "log entry",
        KIND_CHECKPOINT => "checkpoint",
        _ => "unknown object",
    }
}

#[derive(Serialize, Deserialize)]
struct LogDoc<'a> {
    generation: u64,
    commit_id: String,
    /// Present in generation 0 only: the store's settings.
    settings: Option<Settings>,
    counts: [u64; 4],
    /// Datasets put (rows), datasets removed (`removed`), segments added (segment rows).
    #[serde(borrow)]
    columns: Columns<'a>,
    /// Retired segments whose files are being removed.
    dropped: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct CheckpointDoc<'a> {
    generation: u64,
    commit_id: String,
    settings: Settings,
    next_seq: u64,
    counts: [u64; 4],
    #[serde(borrow)]
    columns: Columns<'a>,
}

/// The JSON body of the root marker (format version 2 and later).
#[derive(Serialize, Deserialize)]
struct Marker {
    settings: Settings,
}

fn encode_delta(delta: &Delta, settings: Option<Settings>) -> Result<Vec<u8>> {
    let mut w = ColumnsWriter::default();
    for change in &delta.datasets {
        match change {
            DatasetChange::Put(name, ds) => w.dataset(name, ds.get()),
            DatasetChange::Remove(name) => w.removed(name),
        }
    }
    for (key, entry) in &delta.added_segments {
        w.segment(key, entry, None);
    }
    let (columns, counts) = w.finish();
    let doc = LogDoc {
        generation: delta.generation,
        commit_id: delta.commit_id.to_string(),
        settings,
        counts,
        columns,
        dropped: delta
            .dropped_segments
            .iter()
            .map(|k| k.to_string())
            .collect(),
    };
    seal_doc(KIND_LOG, &doc)
}

fn decode_delta(
    path: &Path,
    bytes: &[u8],
    interner: &mut Interner,
) -> Result<(Delta, Option<Settings>)> {
    let p = path.to_string();
    let (payload, _) = unseal(path, bytes, KIND_LOG)?;
    let doc: LogDoc<'_> = read_doc(path, &payload, KIND_LOG)?;
    let rows = doc
        .columns
        .decode(doc.counts, interner)
        .map_err(corrupt(&p))?;
    let mut datasets: Vec<DatasetChange> = rows
        .removed
        .iter()
        .map(|n| DatasetChange::Remove(Name::clone(n)))
        .collect();
    // The datasets stay rows of the entry's columns: replaying a long tail makes no objects.
    let frozen = Arc::new(rows.frozen);
    datasets.extend((0..frozen.len()).map(|r| {
        DatasetChange::Put(
            frozen.name(r).into(),
            Held::Row(Arc::clone(&frozen), r as u32),
        )
    }));
    let delta = Delta {
        generation: doc.generation,
        commit_id: interner.name(&doc.commit_id),
        added_segments: rows.segments.into_iter().map(|(k, e, _)| (k, e)).collect(),
        datasets,
        dropped_segments: doc.dropped.iter().map(|k| interner.name(k)).collect(),
    };
    Ok((delta, doc.settings))
}

fn encode_checkpoint(snap: &Snapshot) -> Result<Vec<u8>> {
    let mut w = ColumnsWriter::default();
    // In name order, so that `open` takes the rows as they are.
    for (name, ds) in snap.iter_by_name() {
        w.dataset(name, ds);
    }
    for (key, s) in &snap.segments {
        w.segment(key, &s.entry, None);
    }
    for (key, (entry, generation)) in &snap.retired {
        w.segment(key, entry, Some(*generation));
    }
    let (columns, counts) = w.finish();
    let doc = CheckpointDoc {
        generation: snap.generation,
        commit_id: snap.commit_id.to_string(),
        settings: snap.settings,
        next_seq: snap.next_seq,
        counts,
        columns,
    };
    seal_doc(KIND_CHECKPOINT, &doc)
}

fn decode_checkpoint(path: &Path, bytes: &[u8], interner: &mut Interner) -> Result<Snapshot> {
    let p = path.to_string();
    let (payload, version) = unseal(path, bytes, KIND_CHECKPOINT)?;
    let doc: CheckpointDoc<'_> = read_doc(path, &payload, KIND_CHECKPOINT)?;
    let rows = doc
        .columns
        .decode(doc.counts, interner)
        .map_err(corrupt(&p))?;
    let mut snap = Snapshot::empty(doc.settings);
    // A checkpoint of an older version makes the next commit write a current one (and the
    // marker), which upgrades the store.
    snap.lineage.base_format = version;
    snap.generation = doc.generation;
    snap.commit_id = interner.name(&doc.commit_id);
    for (key, entry, retired) in rows.segments {
        match retired {
            None => {
                snap.segments.insert(key, LiveSegment { entry, refs: 0 });
            }
            Some(g) => {
                snap.retired.insert(key, (entry, g));
            }
        }
    }
    snap.set_base(rows.frozen);
    snap.next_seq = snap.next_seq.max(doc.next_seq);
    snap.recount(&p)?;
    snap.lineage.checkpoint_bytes = bytes.len() as u64;
    Ok(snap)
}

/// Reads an object, `None` when it does not exist.
async fn get_opt(store: &dyn ObjectStore, path: &Path) -> Result<Option<bytes::Bytes>> {
    match store.get(path).await {
        Ok(r) => Ok(Some(r.bytes().await.map_err(|e| Error::store(path, e))?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::store(path, e)),
    }
}

/// The root catalog files' extensions (`atlas.<ext>`), sorted.
pub(crate) async fn find_root(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<String>> {
    Ok(root_listing(store, prefix).await?.0)
}

/// The extensions of the root catalog files at `prefix` (as [`find_root`]), and whether an
/// atlas-rust 0.17 collection (`data.atlas`) is there too: one listing.
pub(crate) async fn root_listing(
    store: &dyn ObjectStore,
    prefix: &Path,
) -> Result<(Vec<String>, bool)> {
    let listing = store
        .list_with_delimiter(Some(prefix))
        .await
        .map_err(|e| Error::store(prefix, e))?;
    let collection = listing
        .objects
        .iter()
        .any(|o| o.location.filename() == Some(crate::upstream::DATA_FILE));
    let mut found: Vec<String> = listing
        .objects
        .iter()
        .filter_map(|o| o.location.filename())
        .filter_map(|f| f.strip_prefix("atlas."))
        .filter(|ext| MetaFormat::from_extension(ext).is_some())
        .map(str::to_string)
        .collect();
    found.sort();
    Ok((found, collection))
}

/// What the root file says.
enum Root {
    /// A version-2 marker.
    Marker,
    /// A whole version-1 catalog.
    V1(v1::Catalog),
}

async fn read_root(store: &dyn ObjectStore, prefix: &Path) -> Result<Option<Root>> {
    let exts = find_root(store, prefix).await?;
    if exts.is_empty() {
        return Ok(None);
    }
    // During an upgrade the version-2 marker (always `atlas.json`) may sit beside the
    // version-1 catalog it replaces; the marker wins.
    if exts.iter().any(|e| e == "json") {
        let path = root_path(prefix, "json");
        if let Some(bytes) = get_opt(store, &path).await?
            && let Ok((version, payload)) = v1::json_envelope(&path, &bytes)
            && (2..=FORMAT_VERSION).contains(&version)
        {
            serde_json::from_str::<Marker>(payload)
                .map_err(|e| corrupt(path.as_ref())(format!("bad marker: {e}")))?;
            return Ok(Some(Root::Marker));
        }
    }
    if exts.len() > 1 {
        return Err(Error::CorruptCatalog {
            path: prefix.to_string(),
            reason: format!("several catalogs found: atlas.{}", exts.join(", atlas.")),
        });
    }
    let path = root_path(prefix, &exts[0]);
    let Some(bytes) = get_opt(store, &path).await? else {
        return Ok(None);
    };
    Ok(Some(Root::V1(v1::decode(&path, &bytes, &exts[0])?)))
}

fn encode_marker(settings: Settings) -> Result<Vec<u8>> {
    let body =
        serde_json::to_string(&Marker { settings }).map_err(|e| Error::Encode(e.to_string()))?;
    let crc = crc32fast::hash(body.as_bytes());
    Ok(
        format!("{{\"atlas_catalog\":{FORMAT_VERSION},\"crc32\":{crc},\"catalog\":{body}}}\n")
            .into_bytes(),
    )
}

/// Generations of the objects in folder `dir` (`<g:020>.<ext>`), sorted, with their extension
/// and metadata.
async fn list_generations(
    store: &dyn ObjectStore,
    prefix: &Path,
    dir: &str,
    after: Option<u64>,
) -> Result<Vec<(u64, String, object_store::ObjectMeta)>> {
    let folder = prefix.clone().join(dir);
    let listing: Vec<object_store::ObjectMeta> = match after {
        Some(g) => {
            let offset = folder.clone().join(format!("{g:020}.~").as_str());
            store
                .list_with_offset(Some(&folder), &offset)
                .try_collect()
                .await
        }
        None => store.list(Some(&folder)).try_collect().await,
    }
    .map_err(|e| Error::store(&folder, e))?;
    let mut out: Vec<_> = listing
        .into_iter()
        .filter_map(|m| {
            let name = m.location.filename()?.to_string();
            let (generation, ext) = name.split_once('.')?;
            if generation.len() != 20 {
                return None;
            }
            let g = generation.parse::<u64>().ok()?;
            let ext = ext.to_string();
            (ext == EXT || MetaFormat::from_extension(&ext).is_some()).then_some((g, ext, m))
        })
        .filter(|(g, _, _)| after.is_none_or(|a| *g > a))
        .collect();
    out.sort_by_key(|(g, ext, _)| (*g, ext.clone()));
    Ok(out)
}

/// The newest checkpoint's generation, `None` when there is none.
pub(crate) async fn newest_checkpoint(
    store: &dyn ObjectStore,
    prefix: &Path,
) -> Result<Option<u64>> {
    Ok(list_generations(store, prefix, CHECKPOINT_DIR, None)
        .await?
        .into_iter()
        .filter(|(_, ext, _)| ext == EXT)
        .map(|(g, _, _)| g)
        .next_back())
}

/// Creates the store: generation 0 (the settings) as the first log entry, then the marker.
/// [`Error::Conflict`] when another creator won.
pub(crate) async fn create(
    store: &dyn ObjectStore,
    prefix: &Path,
    settings: Settings,
) -> Result<Snapshot> {
    let snap = Snapshot::empty(settings);
    let delta = Delta {
        generation: 0,
        commit_id: Name::clone(&snap.commit_id),
        added_segments: Vec::new(),
        datasets: Vec::new(),
        dropped_segments: Vec::new(),
    };
    let bytes = encode_delta(&delta, Some(settings))?;
    put_log(store, prefix, 0, bytes, &snap.commit_id).await?;
    // The log entry is the store; the marker only names the format. `open` finds the entry
    // if this put fails.
    let _ = store
        .put(&root_path(prefix, "json"), encode_marker(settings)?.into())
        .await;
    // Every store starts with a checkpoint, so `open` never replays from generation 0; if
    // this put fails, `open` replays the log instead.
    let mut snap = snap;
    if let Ok(size) = write_checkpoint(store, prefix, &snap).await {
        snap.lineage.checkpoint_bytes = size;
    }
    Ok(snap)
}

/// Create-if-absent put of a log entry; an `AlreadyExists` whose entry carries our id is a
/// success that an earlier error hid.
async fn put_log(
    store: &dyn ObjectStore,
    prefix: &Path,
    generation: u64,
    bytes: Vec<u8>,
    commit_id: &str,
) -> Result<u64> {
    let path = log_path(prefix, generation, EXT);
    let size = bytes.len() as u64;
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(&path, bytes.into(), opts).await {
        Ok(_) => Ok(size),
        Err(object_store::Error::AlreadyExists { .. }) => {
            let mut interner = Interner::default();
            let ours = match get_opt(store, &path).await {
                Ok(Some(b)) => decode_delta(&path, &b, &mut interner)
                    .is_ok_and(|(d, _)| &*d.commit_id == commit_id),
                _ => false,
            };
            if ours {
                Ok(size)
            } else {
                Err(Error::Conflict {
                    base: generation.saturating_sub(1),
                    found: generation,
                    detail: String::new(),
                })
            }
        }
        Err(e) => Err(Error::store(&path, e)),
    }
}

/// What a commit wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommitOutcome {
    /// Bytes of the log entry.
    pub bytes: u64,
}

/// Commits `delta` on top of `base` (its generation is `base.generation + 1`). Returns
/// [`Error::Conflict`] when another writer committed that generation first, or when a
/// checkpoint newer than `base` exists (the log this writer missed may be gone, so it cannot
/// be checked for overlap).
pub(crate) async fn commit(
    store: &dyn ObjectStore,
    prefix: &Path,
    base: &Snapshot,
    delta: &Delta,
) -> Result<CommitOutcome> {
    if let Some(newest) = newest_checkpoint(store, prefix).await?
        && newest > base.generation
    {
        return Err(Error::Conflict {
            base: base.generation,
            found: newest,
            detail: " and checkpointed the store since".into(),
        });
    }
    let bytes = encode_delta(delta, None)?;
    let size = put_log(store, prefix, delta.generation, bytes, &delta.commit_id).await?;
    Ok(CommitOutcome { bytes: size })
}

/// Reads the version-2 log entry of `generation`, `None` when it was never committed (or has
/// been cleaned up).
/// Whether generation `generation` has a version-2 log entry (a `head`, nothing read).
pub(crate) async fn log_entry_exists(
    store: &dyn ObjectStore,
    prefix: &Path,
    generation: u64,
) -> Result<bool> {
    let path = log_path(prefix, generation, EXT);
    match store.head(&path).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(Error::store(&path, e)),
    }
}

pub(crate) async fn read_delta(
    store: &dyn ObjectStore,
    prefix: &Path,
    generation: u64,
    interner: &mut Interner,
) -> Result<Option<(Delta, u64)>> {
    let path = log_path(prefix, generation, EXT);
    match get_opt(store, &path).await? {
        Some(bytes) => {
            let (d, _) = decode_delta(&path, &bytes, interner)?;
            Ok(Some((d, bytes.len() as u64)))
        }
        None => Ok(None),
    }
}

/// Loads the newest committed state: the newest checkpoint (or a version-1 root catalog, or
/// generation 0), then the log after it.
pub(crate) async fn load_latest(
    store: &dyn ObjectStore,
    prefix: &Path,
) -> Result<(Snapshot, Interner)> {
    let not_found = || Error::StoreNotFound {
        location: display_location(prefix),
    };
    // A checkpoint can be cleaned up between listing and reading it, and a listing can race a
    // checkpoint and the clean-up behind it; then list again. Each attempt starts from a newer
    // checkpoint, so this converges unless checkpoints keep coming faster than an open.
    for _attempt in 0..OPEN_ATTEMPTS {
        let mut interner = Interner::default();
        let mut marker = false;
        // With a checkpoint the store is version 2 (a version-1 store gets its marker right
        // after its first checkpoint), so the root need not be read.
        let newest = newest_checkpoint(store, prefix).await?;
        let (checkpoint, v1_base) = match newest {
            Some(g) => {
                let path = checkpoint_path(prefix, g);
                match get_opt(store, &path).await? {
                    Some(bytes) => (Some((g, path, bytes)), None),
                    None => continue,
                }
            }
            None => match read_root(store, prefix).await? {
                Some(Root::V1(cat)) => {
                    let origin = prefix.to_string();
                    (None, Some(cat.into_snapshot(&origin, &mut interner)?))
                }
                Some(Root::Marker) => {
                    marker = true;
                    (None, None)
                }
                None => (None, None),
            },
        };
        let after = match (&checkpoint, &v1_base) {
            (Some((g, ..)), _) => Some(*g),
            (None, Some(b)) => Some(b.generation),
            (None, None) => None,
        };
        let tail = list_generations(store, prefix, LOG_DIR, after).await?;
        if after.is_none() && tail.is_empty() {
            // A version-2 marker with neither checkpoint nor log: the listing of `_checkpoint/`
            // raced a checkpoint replacing the one it saw. Only a damaged store stays so.
            if marker {
                continue;
            }
            return Err(not_found());
        }
        let first = after.map_or(0, |g| g + 1);
        // The newest checkpoint is listed again beside reading the tail (after the tail was
        // listed, so it sees any checkpoint whose clean-up that listing may have raced).
        let (fetched, newest_now) = futures::join!(
            fetch_tail(store, prefix, first, tail),
            newest_checkpoint(store, prefix)
        );
        let ((fetched, vanished), newest_now) = (fetched?, newest_now?);
        if let Some(missing) = vanished {
            // Entries are removed only behind a checkpoint: one missing after it was listed is a
            // clean-up racing this open (a newer checkpoint now covers it: read again) or
            // damage, which must not pass for an older state.
            // The listing beside the reads may predate that checkpoint: list again only then.
            if newest_now > after || newest_checkpoint(store, prefix).await? > after {
                continue;
            }
            return Err(Error::CorruptCatalog {
                path: log_path(prefix, missing, EXT).to_string(),
                reason: format!(
                    "generation {missing} is missing, but it was listed or later generations are"
                ),
            });
        }
        // The entries read are a contiguous run from `first`; the state they reach must be
        // the newest one committed before this open started. Clean-up removes entries only
        // behind a newer checkpoint, so one newer than that state means the listings may have
        // missed entries removed under this open (a stale `_checkpoint/` listing followed by a
        // log already cleaned up would otherwise read as an older, even empty, store).
        let reached = match fetched.len() as u64 {
            0 => after,
            n => Some(first + n - 1),
        };
        if newest_now > reached {
            continue;
        }
        let (base, decoded) = match checkpoint {
            None => (v1_base, decode_tail(&fetched, &mut interner)?),
            Some((g, path, bytes)) => {
                // A large checkpoint is decoded on a second thread while this one decodes the
                // log after it.
                let (base, decoded) = if bytes.len() >= PARALLEL_DECODE_BYTES && !fetched.is_empty()
                {
                    std::thread::scope(|s| {
                        let base =
                            s.spawn(|| decode_checkpoint(&path, &bytes, &mut Interner::default()));
                        let decoded = decode_tail(&fetched, &mut interner);
                        let base = base.join().unwrap_or_else(|_| {
                            Err(Error::Internal("decoding a checkpoint panicked".into()))
                        });
                        (base, decoded)
                    })
                } else {
                    let base = decode_checkpoint(&path, &bytes, &mut interner);
                    (base, decode_tail(&fetched, &mut interner))
                };
                let base = base?;
                if base.generation != g {
                    return Err(corrupt(path.as_ref())(format!(
                        "holds generation {} under the name of generation {g}",
                        base.generation
                    )));
                }
                (Some(base), decoded?)
            }
        };
        return replay(prefix, base, fetched, decoded, interner);
    }
    Err(Error::CorruptCatalog {
        path: prefix.clone().join(CHECKPOINT_DIR).to_string(),
        reason: format!(
            "the newest checkpoint changed during each of {OPEN_ATTEMPTS} attempts to open the \
             store (checkpoints and clean-ups faster than an open, or a marker with no \
             checkpoint and no log)"
        ),
    })
}

/// How many times an open lists the catalog again when a checkpoint or clean-up raced it.
const OPEN_ATTEMPTS: usize = 8;

/// Checkpoints at least this large are decoded beside the log tail, on a second thread.
const PARALLEL_DECODE_BYTES: usize = 1 << 20;

/// One log entry read at open: its path, extension and bytes.
type Fetched = (Path, String, bytes::Bytes);

/// A decoded version-2 log entry (`None`: a version-1 catalog, decoded when replayed).
type DecodedEntry = Option<(Delta, Option<Settings>)>;

/// Reads the contiguous run of log entries from generation `first`. Also returns the first
/// generation missing before a later one that was listed, or listed and then missing, if any.
async fn fetch_tail(
    store: &dyn ObjectStore,
    prefix: &Path,
    first: u64,
    tail: Vec<(u64, String, object_store::ObjectMeta)>,
) -> Result<(Vec<Fetched>, Option<u64>)> {
    let mut run = Vec::new();
    let mut gap = None;
    for (expected, (g, ext, _)) in (first..).zip(tail) {
        if g < expected {
            // Two entries for one generation: only a writer of another format version can do
            // that; refuse rather than guess.
            return Err(Error::CorruptCatalog {
                path: log_path(prefix, g, &ext).to_string(),
                reason: format!("generation {g} has more than one log entry"),
            });
        }
        if g != expected {
            gap = Some(expected);
            break;
        }
        run.push((g, ext));
    }
    let mut fetched = futures::stream::iter(run.into_iter().map(|(g, ext)| async move {
        let path = log_path(prefix, g, &ext);
        get_opt(store, &path).await.map(|b| (path, ext, b))
    }))
    .buffered(tail_concurrency());
    let mut out = Vec::new();
    while let Some(item) = fetched.next().await {
        let (path, ext, bytes) = item?;
        let Some(bytes) = bytes else {
            // Removed after the listing: a clean-up behind a newer checkpoint (or damage).
            gap = gap.or(Some(first + out.len() as u64));
            break;
        };
        out.push((path, ext, bytes));
    }
    Ok((out, gap))
}

/// Decodes the version-2 entries of a fetched tail (`None` for version-1 ones, decoded as they
/// are replayed).
fn decode_tail(fetched: &[Fetched], interner: &mut Interner) -> Result<Vec<DecodedEntry>> {
    fetched
        .iter()
        .map(|(path, ext, bytes)| {
            (ext == EXT)
                .then(|| decode_delta(path, bytes, interner))
                .transpose()
        })
        .collect()
}

/// Applies a fetched and decoded run of log entries to `base`. The tail stays as the
/// snapshot's changes, held as rows of the entries' columns; the next checkpoint folds it.
fn replay(
    prefix: &Path,
    mut base: Option<Snapshot>,
    fetched: Vec<Fetched>,
    decoded: Vec<DecodedEntry>,
    mut interner: Interner,
) -> Result<(Snapshot, Interner)> {
    for ((path, ext, bytes), decoded) in fetched.into_iter().zip(decoded) {
        let origin = path.to_string();
        match decoded {
            Some((delta, settings)) => {
                let mut next = match (base.take(), settings) {
                    (None, Some(settings)) if delta.generation == 0 => {
                        let mut s = Snapshot::empty(settings);
                        s.commit_id = Name::clone(&delta.commit_id);
                        s
                    }
                    (None, _) => {
                        return Err(corrupt(&origin)(
                            "the store's first log entry does not hold its settings".into(),
                        ));
                    }
                    (Some(mut b), _) => {
                        b.apply_in_place(&delta, &origin)?;
                        b
                    }
                };
                next.lineage.log_bytes_since += bytes.len() as u64;
                base = Some(next);
            }
            None => {
                let cat = v1::decode(&path, &bytes, &ext)?;
                let mut snap = cat.into_snapshot(&origin, &mut interner)?;
                if let Some(b) = &base {
                    snap.lineage = b.lineage;
                    snap.lineage.base_format = v1::V1;
                }
                base = Some(snap);
            }
        }
    }
    let snap = base.ok_or_else(|| Error::StoreNotFound {
        location: display_location(prefix),
    })?;
    interner.seed(&snap.frozen);
    Ok((snap, interner))
}

/// Writes a checkpoint of `snap`; when it upgrades a version-1 store, the marker replaces the
/// version-1 root catalog. Returns the checkpoint's size.
pub(crate) async fn write_checkpoint(
    store: &dyn ObjectStore,
    prefix: &Path,
    snap: &Snapshot,
) -> Result<u64> {
    let bytes = encode_checkpoint(snap)?;
    let size = bytes.len() as u64;
    let path = checkpoint_path(prefix, snap.generation);
    store
        .put(&path, bytes.into())
        .await
        .map_err(|e| Error::store(&path, e))?;
    if snap.lineage.base_format < FORMAT_VERSION {
        let marker = root_path(prefix, "json");
        store
            .put(&marker, encode_marker(snap.settings)?.into())
            .await
            .map_err(|e| Error::store(&marker, e))?;
        for ext in find_root(store, prefix).await? {
            if ext != "json" {
                let old = root_path(prefix, &ext);
                match store.delete(&old).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(Error::store(&old, e)),
                }
            }
        }
    }
    Ok(size)
}

/// Removes log entries and checkpoints that the checkpoint of generation `covered` makes
/// unnecessary, once they are older than `retention`. Returns how many objects it removed.
///
/// Readers never need them: `open` starts at the newest checkpoint. A writer still based on a
/// generation before it is refused by [`commit`] (a newer checkpoint exists); one whose check
/// raced the checkpoint finds the entry of generation `covered`, which is kept, and conflicts.
pub(crate) async fn cleanup_log(
    store: &dyn ObjectStore,
    prefix: &Path,
    covered: u64,
    retention: Duration,
) -> Result<usize> {
    let now = std::time::SystemTime::now();
    let old_enough = |m: &object_store::ObjectMeta| {
        now.duration_since(m.last_modified.into())
            .unwrap_or(Duration::ZERO)
            >= retention
    };
    let mut doomed: Vec<Path> = Vec::new();
    for (g, _, meta) in list_generations(store, prefix, LOG_DIR, None).await? {
        // The entry of generation `covered` itself stays: a writer whose check for newer
        // checkpoints raced this one then finds that generation taken (a conflict it rebases
        // from) instead of writing it again unseen behind the checkpoint.
        if g < covered && old_enough(&meta) {
            doomed.push(meta.location);
        }
    }
    for (g, _, meta) in list_generations(store, prefix, CHECKPOINT_DIR, None).await? {
        if g < covered && old_enough(&meta) {
            doomed.push(meta.location);
        }
    }
    let mut removed = 0;
    for path in doomed {
        match store.delete(&path).await {
            Ok(()) => removed += 1,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::store(&path, e)),
        }
    }
    Ok(removed)
}

/// The dataset records a delta needs for `names`, as `working` has them.
pub(crate) fn changes_for<'a>(
    working: &Snapshot,
    names: impl IntoIterator<Item = &'a Name>,
) -> Vec<DatasetChange> {
    names
        .into_iter()
        .map(|n| match working.held(n) {
            Some(ds) => DatasetChange::Put(Name::clone(n), ds),
            None => DatasetChange::Remove(Name::clone(n)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Codec;

    fn settings() -> Settings {
        Settings {
            codec: Codec::Zstd,
            meta_format: MetaFormat::Json,
            meta_compression: Codec::Uncompressed,
        }
    }

    /// Datasets with every kind of attribute and statistic, as objects.
    fn varied_snapshot() -> Snapshot {
        use crate::catalog::snapshot::{ArrayEntry, Dataset};
        use crate::schema::{ArraySchema, Attr, StatRepr, StatsRepr};
        let mut interner = Interner::default();
        let mut snap = Snapshot::empty(settings());
        let schema = interner.schema(ArraySchema {
            dtype: array_format::DType::Float64,
            dims: vec!["time".into()],
            shape: vec![4],
            chunk_shape: vec![4],
            fill_value: None,
        });
        snap.segments.insert(
            interner.name("t/1.af"),
            LiveSegment {
                entry: super::super::SegmentEntry {
                    variable: interner.name("t"),
                    size: 10,
                    crc32: 7,
                    sums: Some(9),
                },
                refs: 0,
            },
        );
        for i in 0..50u64 {
            let attrs = interner.attrs_from([
                ("id".to_string(), Attr::String(format!("S{i}"))),
                ("shared".to_string(), Attr::String("same".into())),
                ("n".to_string(), Attr::Int64(i as i64 % 3)),
                ("f".to_string(), Attr::Float64(f64::NAN)),
                ("flag".to_string(), Attr::Bool(i % 2 == 0)),
                ("l".to_string(), Attr::Float64List(vec![1.5, i as f64])),
                (
                    "s".to_string(),
                    Attr::StringList(vec!["a".into(), format!("{i}")]),
                ),
            ]);
            let stats = match i % 4 {
                0 => None,
                1 => Some(StatsRepr {
                    min: Some(StatRepr::Float(-1.0)),
                    max: Some(StatRepr::Float(i as f64)),
                    null_count: 1,
                    row_count: 4,
                }),
                2 => Some(StatsRepr {
                    min: Some(StatRepr::Bytes(b"aa".to_vec())),
                    max: Some(StatRepr::Bytes(format!("z{i}").into_bytes())),
                    null_count: 0,
                    row_count: 4,
                }),
                _ => Some(StatsRepr {
                    min: None,
                    max: Some(StatRepr::Int(-(i as i64))),
                    null_count: 4,
                    row_count: 4,
                }),
            };
            let array = ArrayEntry {
                name: interner.name("t"),
                schema: std::sync::Arc::clone(&schema),
                attributes: interner.attrs_from([("units".to_string(), Attr::String("s".into()))]),
                segment: (i % 4 != 0).then(|| interner.name("t/1.af")),
                stats,
            };
            // Names out of store order, so name order and store order differ.
            let name = interner.name(&format!("d{:02}", (i * 7) % 50));
            snap.put_dataset(
                name,
                std::sync::Arc::new(Dataset {
                    seq: i,
                    attributes: attrs,
                    arrays: vec![array],
                }),
            );
        }
        snap.recount("test").unwrap();
        snap
    }

    /// Reads everything a snapshot holds, the way planners and `info` do.
    fn touch_everything(s: &Snapshot) -> usize {
        let mut n = 0;
        for (name, d) in s.iter() {
            n += name.len() + d.seq() as usize % 2;
            n += d.attributes().iter().count();
            for a in d.arrays() {
                n += a.name().len() + a.schema().dims.len() + a.attributes().iter().count();
                n += usize::from(a.segment().is_some()) + usize::from(a.stats().is_some());
            }
            n += d.to_dataset().arrays.len();
        }
        n + s.fold().len()
    }

    /// Payloads with a valid checksum but damaged content (a buggy or foreign writer, a
    /// hand-edited file): decoding either fails or gives a snapshot every reader can walk.
    #[test]
    fn damaged_payloads_behind_valid_checksums_decode_to_errors_never_panics() {
        let snap = varied_snapshot();
        let checkpoint = encode_checkpoint(&snap.fold()).unwrap();
        let (payload, _) = unseal(&Path::from("c"), &checkpoint, KIND_CHECKPOINT).unwrap();
        // A log entry of the same datasets, applied to an empty state with its segment listed.
        let names: Vec<Name> = snap.changed.keys().cloned().collect();
        let delta = Delta {
            generation: 1,
            commit_id: "c".into(),
            added_segments: snap
                .segments
                .iter()
                .map(|(k, s)| (Name::clone(k), s.entry.clone()))
                .collect(),
            datasets: changes_for(&snap, &names),
            dropped_segments: vec![],
        };
        let (entry, _) = unseal(
            &Path::from("l"),
            &encode_delta(&delta, None).unwrap(),
            KIND_LOG,
        )
        .unwrap();
        let mut rng = crate::testing::Lcg(0x2545_f491_4f6c_dd1d);
        let mut next = move |n: usize| rng.below(n);
        let (mut refused, mut decoded) = (0, 0);
        for trial in 0..4000 {
            let log = trial % 2 == 1;
            let mut p = if log { entry.clone() } else { payload.clone() };
            match next(4) {
                0 => {
                    for _ in 0..1 + next(4) {
                        let bit = next(p.len() * 8);
                        p[bit / 8] ^= 1 << (bit % 8);
                    }
                }
                1 => p.truncate(next(p.len())),
                2 => {
                    let at = next(p.len());
                    let end = (at + 1 + next(16)).min(p.len());
                    for b in &mut p[at..end] {
                        *b = next(256) as u8;
                    }
                }
                _ => {
                    // A byte set to a boundary value: lengths and indices just past the end.
                    let at = next(p.len());
                    p[at] = [0x00, 0x01, 0x7f, 0xff, 0xcc, 0xce][next(6)];
                }
            }
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if log {
                    let sealed = seal(KIND_LOG, &p)?;
                    let (d, _) = decode_delta(&Path::from("l"), &sealed, &mut Interner::default())?;
                    let mut base = Snapshot::empty(settings());
                    base.apply_in_place(&d, "l")?;
                    Ok(touch_everything(&base))
                } else {
                    let sealed = seal(KIND_CHECKPOINT, &p)?;
                    decode_checkpoint(&Path::from("c"), &sealed, &mut Interner::default())
                        .map(|s| touch_everything(&s))
                }
            }));
            match outcome {
                Err(_) => panic!("trial {trial}: a damaged payload panicked the decoder"),
                Ok(Err(e)) => {
                    assert!(matches!(e, Error::CorruptCatalog { .. }), "{e}");
                    refused += 1;
                }
                Ok(Ok(_)) => decoded += 1,
            }
        }
        assert!(refused > 1500, "{refused} refused, {decoded} decoded");
    }

    #[test]
    fn a_checkpoint_written_from_columns_is_the_one_written_from_objects() {
        let objects = varied_snapshot();
        assert!(!objects.changed.is_empty());
        let folded = objects.fold();
        assert!(folded.changed.is_empty());
        let from_objects = encode_checkpoint(&objects).unwrap();
        let from_columns = encode_checkpoint(&folded).unwrap();
        assert_eq!(from_objects, from_columns);
        // And it reads back as what was written, in store order.
        let back =
            decode_checkpoint(&Path::from("c"), &from_columns, &mut Interner::default()).unwrap();
        let seen = |s: &Snapshot| {
            s.iter()
                .map(|(n, d)| {
                    let a = d.arrays().next().map(|a| (a.segment().cloned(), a.stats()));
                    let attrs: Vec<(String, String)> = d
                        .attributes()
                        .iter()
                        .map(|(k, v)| (k.to_string(), format!("{v:?}")))
                        .collect();
                    (n.to_string(), d.seq(), attrs, format!("{a:?}"))
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(seen(&back), seen(&objects));
        assert_eq!(back.len(), 50);
    }

    #[test]
    fn a_flipped_byte_in_a_log_entry_fails_the_checksum() {
        let delta = Delta {
            generation: 3,
            commit_id: "abc".into(),
            added_segments: vec![],
            datasets: vec![DatasetChange::Remove("gone".into())],
            dropped_segments: vec![],
        };
        let mut bytes = encode_delta(&delta, None).unwrap();
        let (back, _) = decode_delta(&Path::from("x"), &bytes, &mut Interner::default()).unwrap();
        assert_eq!((back.generation, &back.commit_id), (3, &delta.commit_id));
        assert!(matches!(&back.datasets[..], [DatasetChange::Remove(n)] if &**n == "gone"));
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        let err = decode_delta(&Path::from("x"), &bytes, &mut Interner::default()).unwrap_err();
        assert!(matches!(err, Error::CorruptCatalog { .. }), "{err}");
    }

    #[test]
    fn a_damaged_length_field_is_refused_before_allocating() {
        let snap = Snapshot::empty(settings());
        let mut bytes = encode_checkpoint(&snap).unwrap();
        bytes[16..20].copy_from_slice(&[0xff; 4]);
        let err =
            decode_checkpoint(&Path::from("x"), &bytes, &mut Interner::default()).unwrap_err();
        assert!(err.to_string().contains("decoded bytes"), "{err}");
    }

    #[test]
    fn a_log_entry_is_not_taken_for_a_checkpoint() {
        let delta = Delta {
            generation: 1,
            commit_id: "x".into(),
            added_segments: vec![],
            datasets: vec![],
            dropped_segments: vec![],
        };
        let bytes = encode_delta(&delta, None).unwrap();
        let err =
            decode_checkpoint(&Path::from("x"), &bytes, &mut Interner::default()).unwrap_err();
        assert!(err.to_string().contains("checkpoint was expected"), "{err}");
    }
}
