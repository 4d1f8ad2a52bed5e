//! Format version 1: the whole catalog in every commit. Read (and converted into a
//! [`Snapshot`]) so stores written by earlier builds still open; the next checkpoint upgrades
//! them to version 2. See `docs/format.md`.

use std::collections::BTreeMap;

use std::sync::Arc;

use indexmap::IndexMap;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::snapshot::{self, Interner, LiveSegment, Name, Settings, Snapshot};

use crate::config::{Codec, MetaFormat};
use crate::error::{Error, Result};
use crate::schema::{ArraySchema, Attr, StatsRepr};

/// The version of this encoding.
pub(crate) const V1: u32 = 1;

const MSGPACK_MAGIC: &[u8; 8] = b"ATLASCAT";

/// Everything the store holds, as of one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Catalog {
    pub format_version: u32,
    pub generation: u64,
    /// Random id of the commit that wrote this generation; lets a writer recognise its own
    /// commit after an error that hid success.
    pub commit_id: String,
    pub codec: Codec,
    pub meta_format: MetaFormat,
    pub meta_compression: Codec,
    /// Datasets in insertion order.
    pub datasets: IndexMap<String, DatasetEntry>,
    /// Segments the datasets reference, by key `<variable>/<file>`.
    pub segments: BTreeMap<String, SegmentEntry>,
    /// Segments that were referenced once and no longer are, with the generation that dropped
    /// them; `compact`/`vacuum` delete them.
    #[serde(default)]
    pub retired: BTreeMap<String, u64>,
}

/// One dataset: its attributes and arrays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DatasetEntry {
    #[serde(default)]
    pub attributes: IndexMap<String, Attr>,
    #[serde(default)]
    pub arrays: IndexMap<String, ArrayEntry>,
}

/// One array of one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ArrayEntry {
    pub schema: ArraySchema,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub attributes: IndexMap<String, Attr>,
    /// Segment holding the array's bytes (keyed by dataset name inside it); `None` until data is
    /// written, in which case every cell reads as the fill value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Statistics of the bytes in `segment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<StatsRepr>,
}

/// One segment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SegmentEntry {
    pub variable: String,
    pub size: u64,
    pub crc32: u32,
}

impl Catalog {
    #[cfg(test)]
    pub(crate) fn empty(codec: Codec, meta_format: MetaFormat, meta_compression: Codec) -> Self {
        Catalog {
            format_version: V1,
            generation: 0,
            commit_id: super::new_id(),
            codec,
            meta_format,
            meta_compression,
            datasets: IndexMap::new(),
            segments: BTreeMap::new(),
            retired: BTreeMap::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn extension(&self) -> &'static str {
        self.meta_format.extension(self.meta_compression)
    }

    /// The same state as a snapshot (datasets keep their order; retired segments keep their
    /// keys, with the size and checksum version 1 did not record).
    pub(crate) fn into_snapshot(self, origin: &str, interner: &mut Interner) -> Result<Snapshot> {
        let mut snap = Snapshot::empty(Settings {
            codec: self.codec,
            meta_format: self.meta_format,
            meta_compression: self.meta_compression,
        });
        snap.generation = self.generation;
        snap.commit_id = self.commit_id.as_str().into();
        snap.lineage.base_format = V1;
        for (key, e) in self.segments {
            let entry = snapshot::SegmentEntry {
                variable: interner.name(&e.variable),
                size: e.size,
                crc32: e.crc32,
                sums: None,
            };
            snap.segments
                .insert(interner.name(&key), LiveSegment { entry, refs: 0 });
        }
        for (key, generation) in self.retired {
            let variable = key.rsplit_once('/').map_or("", |(v, _)| v);
            let entry = snapshot::SegmentEntry {
                variable: interner.name(variable),
                size: 0,
                crc32: 0,
                sums: None,
            };
            snap.retired
                .insert(interner.name(&key), (entry, generation));
        }
        for (seq, (name, d)) in self.datasets.into_iter().enumerate() {
            let arrays = d
                .arrays
                .into_iter()
                .map(|(array, a)| {
                    super::columns::check_schema(&a.schema).map_err(|reason| {
                        Error::CorruptCatalog {
                            path: origin.to_string(),
                            reason: format!("{name}/{array}: {reason}"),
                        }
                    })?;
                    Ok(snapshot::ArrayEntry {
                        name: interner.name(&array),
                        schema: interner.schema(a.schema),
                        attributes: interner.attrs_from(a.attributes),
                        segment: a.segment.as_deref().map(|s| interner.name(s)),
                        stats: a.stats,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let ds = snapshot::Dataset {
                seq: seq as u64,
                attributes: interner.attrs_from(d.attributes),
                arrays,
            };
            let name: Name = interner.name(&name);
            snap.put_dataset(name, Arc::new(ds));
        }
        snap.recount(origin)?;
        Ok(snap.fold())
    }
}

/// Encodes a version-1 catalog (tests make version-1 stores with it): an envelope carrying the format version and a CRC-32 of the payload,
/// then the configured compression.
#[cfg(test)]
pub(crate) fn encode(cat: &Catalog) -> Result<Vec<u8>> {
    let body = match cat.meta_format {
        MetaFormat::Json => {
            let payload = serde_json::to_string(cat).map_err(|e| Error::Encode(e.to_string()))?;
            let crc = crc32fast::hash(payload.as_bytes());
            format!("{{\"atlas_catalog\":{V1},\"crc32\":{crc},\"catalog\":{payload}}}\n")
                .into_bytes()
        }
        MetaFormat::MsgPack => {
            let payload = rmp_serde::to_vec_named(cat).map_err(|e| Error::Encode(e.to_string()))?;
            let mut out = Vec::with_capacity(payload.len() + 16);
            out.extend_from_slice(MSGPACK_MAGIC);
            out.extend_from_slice(&V1.to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            out.extend_from_slice(&payload);
            out
        }
    };
    Ok(match cat.meta_compression {
        Codec::Uncompressed => body,
        Codec::Zstd => zstd::bulk::compress(&body, 3).map_err(|e| Error::Encode(e.to_string()))?,
        Codec::Lz4 => lz4_flex::compress_prepend_size(&body),
    })
}

#[derive(Deserialize)]
struct JsonEnvelope<'a> {
    atlas_catalog: u32,
    crc32: u32,
    #[serde(borrow)]
    catalog: &'a serde_json::value::RawValue,
}

/// The JSON envelope `{"atlas_catalog":V,"crc32":C,"catalog":…}` shared by version-1 catalogs
/// and the version-2 marker: its version and its payload, whose checksum has been checked.
pub(crate) fn json_envelope<'a>(path: &Path, body: &'a [u8]) -> Result<(u32, &'a str)> {
    let corrupt = |reason: String| Error::CorruptCatalog {
        path: path.to_string(),
        reason,
    };
    let env: JsonEnvelope<'a> = serde_json::from_slice(body)
        .map_err(|e| corrupt(format!("not a catalog envelope: {e}")))?;
    let payload = env.catalog.get();
    let crc = crc32fast::hash(payload.as_bytes());
    if crc != env.crc32 {
        return Err(corrupt(format!(
            "checksum mismatch (stored {:08x}, computed {crc:08x})",
            env.crc32
        )));
    }
    Ok((env.atlas_catalog, payload))
}

/// Decodes and checks a version-1 catalog read from `path`.
pub(crate) fn decode(path: &Path, bytes: &[u8], ext: &str) -> Result<Catalog> {
    let corrupt = |reason: String| Error::CorruptCatalog {
        path: path.to_string(),
        reason,
    };
    let (format, compression) = MetaFormat::from_extension(ext)
        .ok_or_else(|| corrupt(format!("unknown catalog extension {ext:?}")))?;
    let body = match compression {
        Codec::Uncompressed => bytes.to_vec(),
        Codec::Zstd => zstd::stream::decode_all(bytes)
            .map_err(|e| corrupt(format!("zstd decompression failed: {e}")))?,
        Codec::Lz4 => lz4_flex::decompress_size_prepended(bytes)
            .map_err(|e| corrupt(format!("lz4 decompression failed: {e}")))?,
    };
    let check_version = |found: u32| {
        if found > V1 {
            Err(Error::UnsupportedVersion {
                path: path.to_string(),
                found,
                supported: V1,
            })
        } else {
            Ok(())
        }
    };
    let cat: Catalog = match format {
        MetaFormat::Json => {
            let (version, payload) = json_envelope(path, &body)?;
            check_version(version)?;
            serde_json::from_str(payload).map_err(|e| corrupt(format!("bad catalog: {e}")))?
        }
        MetaFormat::MsgPack => {
            if body.len() < 16 || &body[..8] != MSGPACK_MAGIC {
                return Err(corrupt("missing ATLASCAT header".into()));
            }
            let word =
                |i: usize| u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
            check_version(word(8))?;
            let stored = word(12);
            let payload = &body[16..];
            let crc = crc32fast::hash(payload);
            if crc != stored {
                return Err(corrupt(format!(
                    "checksum mismatch (stored {stored:08x}, computed {crc:08x})"
                )));
            }
            rmp_serde::from_slice(payload).map_err(|e| corrupt(format!("bad catalog: {e}")))?
        }
    };
    check_version(cat.format_version)?;
    Ok(cat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(format: MetaFormat, compression: Codec) -> Catalog {
        let mut c = Catalog::empty(Codec::Zstd, format, compression);
        c.generation = 7;
        c.datasets.insert("a".into(), DatasetEntry::default());
        c
    }

    #[test]
    fn every_catalog_encoding_round_trips() {
        for f in [MetaFormat::Json, MetaFormat::MsgPack] {
            for z in [Codec::Uncompressed, Codec::Zstd, Codec::Lz4] {
                let c = sample(f, z);
                let bytes = encode(&c).unwrap();
                let back = decode(&Path::from("x"), &bytes, c.extension()).unwrap();
                assert_eq!(back, c, "{f:?}/{z:?}");
            }
        }
    }

    #[test]
    fn flipped_byte_fails_the_checksum() {
        for f in [MetaFormat::Json, MetaFormat::MsgPack] {
            let c = sample(f, Codec::Uncompressed);
            let mut bytes = encode(&c).unwrap();
            // Flip a byte inside the dataset name, keeping the document well-formed.
            let pos = bytes.len() - bytes.iter().rev().position(|&b| b == b'a').unwrap() - 1;
            bytes[pos] = b'b';
            let err = decode(&Path::from("x"), &bytes, c.extension()).unwrap_err();
            assert!(matches!(err, Error::CorruptCatalog { .. }), "{f:?}: {err}");
        }
    }

    #[test]
    fn truncated_catalog_is_reported_corrupt() {
        for z in [Codec::Uncompressed, Codec::Zstd, Codec::Lz4] {
            let c = sample(MetaFormat::Json, z);
            let bytes = encode(&c).unwrap();
            let err =
                decode(&Path::from("x"), &bytes[..bytes.len() / 2], c.extension()).unwrap_err();
            assert!(matches!(err, Error::CorruptCatalog { .. }), "{z:?}: {err}");
        }
    }

    #[test]
    fn newer_format_version_is_refused_by_name() {
        let c = sample(MetaFormat::Json, Codec::Uncompressed);
        let text = String::from_utf8(encode(&c).unwrap()).unwrap();
        let text = text.replacen("\"atlas_catalog\":1", "\"atlas_catalog\":9", 1);
        let err = decode(&Path::from("x"), text.as_bytes(), "json").unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedVersion { found: 9, .. }),
            "{err}"
        );
    }
}
