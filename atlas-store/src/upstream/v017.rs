//! atlas-rust 0.17 collections: the catalog built from the footer and the segments.
//!
//! The upstream crate reads the container's trailer, footer and deletion mask, and lists the
//! live datasets with the arrays and attribute keys each declares. Only datasets the footer
//! lists are read: a segment can hold entries of a dataset whose writer never finished, and
//! those are not part of the collection. Shapes, chunking, fill values, statistics and
//! attribute values live in the segments, so each segment a live dataset uses is opened once
//! (two small reads) while the catalog is built.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use array_format::{ArrayFile, AttributeValue};
use atlas_rust_017 as upstream;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, path::Path};

use super::{DATA_FILE, Format, Upstream};
use crate::atlas::Atlas;
use crate::catalog::{ArrayEntry, Dataset, Interner, SegmentEntry, Settings, Snapshot};
use crate::config::{Codec, MetaFormat};
use crate::error::{Error, Result};
use crate::schema::{ArraySchema, Attr, segment_stats};
use crate::segment::{PREFETCH_CONCURRENCY, SegmentCache, SegmentRange};

/// The reserved segment holding the dataset attributes.
const DATASET_ATTRS: &str = "_datasets";

/// The catalog key of `variable`'s segment: shown in messages as `data.atlas/<variable>`.
fn segment_key(variable: &str) -> String {
    format!("{DATA_FILE}/{variable}")
}

pub(super) async fn open(
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    location: String,
) -> Result<Atlas> {
    let format = Format::Collection017;
    let store = crate::io::CountingStore::wrap(store);
    let unreadable = |e: upstream::Error| Error::Upstream {
        location: location.clone(),
        format: format.describe(),
        source: Box::new(e),
    };
    let collection = upstream::Atlas::open(Arc::clone(&store), prefix.clone())
        .await
        .map_err(unreadable)?;
    let footer = collection.footer();
    let container = prefix.clone().join(DATA_FILE);
    let mut ranges = HashMap::new();
    let damaged = |reason: String| Error::Upstream {
        location: location.clone(),
        format: format.describe(),
        source: reason.into(),
    };
    for v in &footer.variables {
        let Some(name) = footer.string(v.name) else {
            return Err(damaged(format!(
                "the footer names a segment by string {}, which its pool lacks",
                v.name
            )));
        };
        let inside = v
            .seg_offset
            .checked_add(v.seg_len)
            .is_some_and(|end| end <= collection.container_bytes());
        if !inside {
            return Err(damaged(format!(
                "the footer puts segment {name:?} at bytes {}..+{} of a {}-byte {DATA_FILE}",
                v.seg_offset,
                v.seg_len,
                collection.container_bytes()
            )));
        }
        ranges.insert(
            segment_key(name),
            SegmentRange {
                container: container.clone(),
                offset: v.seg_offset,
                len: v.seg_len,
            },
        );
    }
    let segments = SegmentCache::with_ranges(Arc::clone(&store), prefix.clone(), ranges);

    // What each live dataset declares, from the footer (no I/O).
    struct Declared {
        name: String,
        /// Name, dtype and attribute keys (in the order they were set) of each array.
        arrays: Vec<(String, array_format::DType, Vec<String>)>,
        /// Dataset attribute keys, in the order they were set.
        attrs: Vec<String>,
    }
    let mut declared = Vec::new();
    let mut variables: BTreeSet<String> = BTreeSet::new();
    for name in collection.list_datasets() {
        let view = collection.dataset(&name).map_err(unreadable)?;
        let schema = view.schema();
        let arrays: Vec<_> = schema
            .iter()
            .map(|a| {
                (
                    a.name().to_string(),
                    a.dtype().clone(),
                    a.attribute_names()
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                )
            })
            .collect();
        for (a, _, _) in &arrays {
            variables.insert(a.clone());
        }
        let attrs: Vec<String> = schema.attribute_names().map(str::to_string).collect();
        if !attrs.is_empty() {
            variables.insert(DATASET_ATTRS.to_string());
        }
        declared.push(Declared {
            name,
            arrays,
            attrs,
        });
    }

    // Every segment a live dataset uses, opened a few at a time.
    let files: HashMap<String, Arc<crate::segment::Segment>> = futures::stream::iter(variables)
        .map(|v| {
            let segments = &segments;
            async move {
                let key = segment_key(&v);
                let file = segments.open(&key, None).await?;
                Ok::<_, Error>((v, file))
            }
        })
        .buffer_unordered(PREFETCH_CONCURRENCY)
        .try_collect()
        .await?;

    let mut interner = Interner::default();
    let mut snap = Snapshot::empty(Settings {
        codec: match footer.codec {
            upstream::Codec::Zstd => Codec::Zstd,
            upstream::Codec::Lz4 => Codec::Lz4,
            upstream::Codec::Uncompressed => Codec::Uncompressed,
        },
        meta_format: MetaFormat::Json,
        meta_compression: Codec::Uncompressed,
    });
    for variable in files.keys() {
        let key = segment_key(variable);
        let entry = SegmentEntry {
            variable: interner.name(variable),
            size: segments.range(&key).map_or(0, |r| r.len),
            crc32: 0,
            sums: None,
        };
        snap.segments.insert(
            interner.name(&key),
            crate::catalog::snapshot::LiveSegment { entry, refs: 0 },
        );
    }
    let corrupt = |key: &str, reason: String| Error::CorruptSegment {
        path: crate::segment::object_path(&prefix, key).to_string(),
        reason,
        source: None,
    };
    for (seq, d) in declared.into_iter().enumerate() {
        let attributes = match files.get(DATASET_ATTRS) {
            Some(file) => attributes_of(file, &d.name, &d.attrs),
            None => Vec::new(),
        };
        let mut arrays = Vec::with_capacity(d.arrays.len());
        for (array, dtype, keys) in d.arrays {
            let key = segment_key(&array);
            let file = &files[&array];
            let info = file.array(&d.name).ok_or_else(|| {
                corrupt(
                    &key,
                    format!(
                        "the collection's footer says dataset {:?} has this array, but the \
                         segment holds none for it",
                        d.name
                    ),
                )
            })?;
            if info.dtype != dtype {
                return Err(corrupt(
                    &key,
                    format!(
                        "dataset {:?}: the footer says {dtype:?}, the segment {:?}",
                        d.name, info.dtype
                    ),
                ));
            }
            let rank = info.shape.len();
            let dims = if info.dimension_names.len() == rank {
                info.dimension_names.clone()
            } else {
                (0..rank).map(|i| format!("dim{i}")).collect()
            };
            let shape: Vec<usize> = info.shape.iter().map(|&n| n as usize).collect();
            let empty = shape.contains(&0);
            let schema = ArraySchema {
                dtype,
                dims,
                // array-format allows a chunk longer than its axis; the catalog (and
                // `check_layout`) take it as the axis, the same single chunk.
                chunk_shape: info
                    .chunk_shape
                    .iter()
                    .zip(&shape)
                    .map(|(&c, &n)| (c as usize).clamp(1, n.max(1)))
                    .collect(),
                shape,
                fill_value: info.fill_value.clone(),
            };
            crate::catalog::columns::check_schema(&schema)
                .map_err(|reason| corrupt(&key, format!("dataset {:?}: {reason}", d.name)))?;
            let array_attrs = attributes_of(file, &d.name, &keys);
            arrays.push(ArrayEntry {
                name: interner.name(&array),
                schema: interner.schema(schema),
                attributes: interner.attrs_from(array_attrs),
                // An array with no elements has nothing to read.
                segment: (!empty).then(|| interner.name(&key)),
                stats: segment_stats(info),
            });
        }
        let ds = Dataset {
            seq: seq as u64,
            attributes: interner.attrs_from(attributes),
            arrays,
        };
        let name = interner.name(&d.name);
        snap.put_dataset(name, Arc::new(ds));
    }
    snap.recount(&location)?;
    let snap = snap.fold();
    let upstream = Upstream {
        format,
        location,
        source: None,
    };
    Ok(Atlas::from_upstream(
        store, prefix, snap, interner, segments, upstream,
    ))
}

/// Attributes `keys` of entry `name` of a segment, converted to ours, in the order of `keys`
/// (the footer's, which is the order they were set; a segment keeps them sorted).
fn attributes_of(file: &ArrayFile, name: &str, keys: &[String]) -> Vec<(String, Attr)> {
    keys.iter()
        .filter_map(|k| Some((k.clone(), convert_attr(file.get_attribute(name, k)?))))
        .collect()
}

/// An array-format attribute as one of ours. Narrow integers and `f32` widen; a `u64` beyond
/// `i64` becomes its decimal string, binary its hex string; boolean lists become 0/1.
pub(crate) fn convert_attr(v: &AttributeValue) -> Attr {
    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
    fn ints<T: Copy + Into<i64>>(v: &[T]) -> Attr {
        Attr::Int64List(v.iter().map(|&x| x.into()).collect())
    }
    match v {
        AttributeValue::Bool(b) => Attr::Bool(*b),
        AttributeValue::Int8(x) => Attr::Int64((*x).into()),
        AttributeValue::Int16(x) => Attr::Int64((*x).into()),
        AttributeValue::Int32(x) => Attr::Int64((*x).into()),
        AttributeValue::Int64(x) => Attr::Int64(*x),
        AttributeValue::UInt8(x) => Attr::Int64((*x).into()),
        AttributeValue::UInt16(x) => Attr::Int64((*x).into()),
        AttributeValue::UInt32(x) => Attr::Int64((*x).into()),
        AttributeValue::UInt64(x) => match i64::try_from(*x) {
            Ok(i) => Attr::Int64(i),
            Err(_) => Attr::String(x.to_string()),
        },
        AttributeValue::Float32(x) => Attr::Float64((*x).into()),
        AttributeValue::Float64(x) => Attr::Float64(*x),
        AttributeValue::String(s) => Attr::String(s.to_string()),
        AttributeValue::Binary(b) => Attr::String(hex(b)),
        AttributeValue::BoolList(v) => Attr::Int64List(v.iter().map(|&b| i64::from(b)).collect()),
        AttributeValue::Int8List(v) => ints(v),
        AttributeValue::Int16List(v) => ints(v),
        AttributeValue::Int32List(v) => ints(v),
        AttributeValue::Int64List(v) => Attr::Int64List(v.to_vec()),
        AttributeValue::UInt8List(v) => ints(v),
        AttributeValue::UInt16List(v) => ints(v),
        AttributeValue::UInt32List(v) => ints(v),
        AttributeValue::UInt64List(v) => {
            if v.iter().all(|&x| i64::try_from(x).is_ok()) {
                Attr::Int64List(v.iter().map(|&x| x as i64).collect())
            } else {
                Attr::StringList(v.iter().map(u64::to_string).collect())
            }
        }
        AttributeValue::Float32List(v) => {
            Attr::Float64List(v.iter().map(|&x| f64::from(x)).collect())
        }
        AttributeValue::Float64List(v) => Attr::Float64List(v.to_vec()),
        AttributeValue::StringList(v) => {
            Attr::StringList(v.iter().map(|s| s.to_string()).collect())
        }
        AttributeValue::BinaryList(v) => Attr::StringList(v.iter().map(|b| hex(b)).collect()),
    }
}
