//! Packs: the small arrays of many datasets in one array of a segment.
//!
//! A segment holds one variable for many datasets. An array-format array costs some 250 bytes
//! of footer (name, dtype, shape, dimension names, chunk table, statistics), which outweighs
//! the values of a sensor's 24 readings several times over, and every array read is a lookup,
//! a chunk-table walk and an assembly. Arrays of a fixed-width dtype with at most
//! [`PACK_MAX_ELEMENTS`] values are therefore written one after another, in row-major order,
//! into one 1-D array per dtype, `_pack.<dtype>` (a name no dataset can have: dataset names
//! never start with `_`). The pack's attributes say where each dataset's values sit:
//!
//! - `atlas.datasets`: the dataset names, in pack order, joined by `\n` (names hold no control
//!   characters);
//! - `atlas.offsets`: `names + 1` little-endian `u64` element offsets; dataset `i` holds
//!   `offsets[i] .. offsets[i + 1]`.
//!
//! The catalog is unchanged: a dataset's array row names its segment as before, and a reader
//! finds the array in the segment by name or, failing that, in the pack index built when the
//! segment is opened. Statistics are computed from each dataset's own values (the pack's
//! footer statistics cover all of them and are not used).

use std::collections::{BTreeMap, HashMap};

use array_format::{ArrayFile, ArrayWriter, AttributeValue, DType, FillValue};

use crate::error::{Error, Result};
use crate::schema::{ArraySchema, StatsRepr};

/// Arrays with at most this many values (and at least one) are packed.
pub(crate) const PACK_MAX_ELEMENTS: u64 = 4096;
/// Raw bytes of one chunk of a pack (a quarter of a segment block: a one-dataset read decodes
/// one block, as it would unpacked).
const PACK_CHUNK_BYTES: usize = 64 << 10;
const PREFIX: &str = "_pack.";
const DATASETS: &str = "atlas.datasets";
const OFFSETS: &str = "atlas.offsets";

/// Whether the segment array `name` is a pack.
pub(crate) fn is_pack(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// Bytes per value of the dtypes that are packed (fixed width, encoded as their little-endian
/// bytes); `None` for the others.
pub(crate) fn element_size(dtype: &DType) -> Option<usize> {
    match dtype {
        DType::Bool | DType::FixedSizeList { .. } => None,
        d => d.element_size(),
    }
}

/// Whether an array of `schema` is written into its segment's pack.
pub(crate) fn packable(schema: &ArraySchema) -> bool {
    let n: u64 = schema.shape.iter().map(|&s| s as u64).product();
    element_size(&schema.dtype).is_some() && (1..=PACK_MAX_ELEMENTS).contains(&n)
}

/// Where one dataset's values sit in a pack.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// Name of the pack array.
    pub array: String,
    /// First element.
    pub start: u64,
    /// One past the last element.
    pub end: u64,
}

impl Slot {
    /// Values per chunk of `pack`, the array this slot is in.
    pub(crate) fn chunk_len(&self, pack: &array_format::reader::ArrayInfo) -> u64 {
        u64::from(pack.chunk_shape.first().copied().unwrap_or(1).max(1))
    }

    /// The chunks of `pack` holding this slot's values.
    pub(crate) fn chunks(
        &self,
        pack: &array_format::reader::ArrayInfo,
    ) -> std::ops::RangeInclusive<u64> {
        let c = self.chunk_len(pack);
        self.start / c..=self.end.saturating_sub(1) / c
    }
}

/// The pack index of one segment: dataset name to its slot.
#[derive(Debug, Default)]
pub(crate) struct Packs {
    slots: HashMap<Box<str>, Slot>,
}

impl Packs {
    /// Reads the index from the packs' attributes. `Err` says what is wrong with it.
    pub(crate) fn read(file: &ArrayFile) -> std::result::Result<Packs, String> {
        let mut slots = HashMap::new();
        for info in file.arrays() {
            let name = info.name.as_str();
            if !name.starts_with(PREFIX) {
                continue;
            }
            let names = match file.get_attribute(name, DATASETS) {
                Some(AttributeValue::String(s)) => s.as_str(),
                _ => return Err(format!("pack {name:?} has no {DATASETS} attribute")),
            };
            let offsets = match file.get_attribute(name, OFFSETS) {
                Some(AttributeValue::Binary(b)) if b.len().is_multiple_of(8) => b
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                    .collect::<Vec<u64>>(),
                _ => return Err(format!("pack {name:?} has no readable {OFFSETS} attribute")),
            };
            let names: Vec<&str> = if names.is_empty() {
                Vec::new()
            } else {
                names.split('\n').collect()
            };
            let len = info.shape.first().map_or(0, |&n| u64::from(n));
            if info.shape.len() != 1
                || offsets.len() != names.len() + 1
                || offsets.windows(2).any(|w| w[0] > w[1])
                || offsets.last().is_some_and(|&l| l > len)
            {
                return Err(format!(
                    "pack {name:?}: {} offsets for {} datasets over {len} values do not fit",
                    offsets.len(),
                    names.len()
                ));
            }
            for (i, dataset) in names.iter().enumerate() {
                let slot = Slot {
                    array: name.to_string(),
                    start: offsets[i],
                    end: offsets[i + 1],
                };
                if slots.insert(Box::from(*dataset), slot).is_some() {
                    return Err(format!("dataset {dataset:?} is packed twice"));
                }
            }
        }
        Ok(Packs { slots })
    }

    /// How many datasets are packed.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The slot of `dataset`, if it is packed.
    pub(crate) fn get(&self, dataset: &str) -> Option<&Slot> {
        self.slots.get(dataset)
    }
}

/// One pack being written.
struct Builder {
    name: String,
    elem: usize,
    /// Values per chunk.
    chunk: usize,
    /// Encoded values not yet written as a chunk.
    buf: Vec<u8>,
    next_chunk: u32,
    names: String,
    offsets: Vec<u64>,
    total: u64,
}

/// Writes the packs of one segment, chunk by chunk as values arrive (memory: one chunk per
/// dtype).
pub(crate) struct Packer {
    packs: BTreeMap<String, Builder>,
}

fn pack_name(dtype: &DType) -> String {
    format!("{PREFIX}{dtype:?}")
}

impl Packer {
    /// Defines in `writer` one pack per dtype among `schemas` (the arrays that will be
    /// pushed), sized to hold them all.
    pub(crate) fn new<'a>(
        writer: &mut ArrayWriter,
        schemas: impl Iterator<Item = &'a ArraySchema>,
    ) -> Result<Packer> {
        let mut totals: BTreeMap<String, (DType, u64)> = BTreeMap::new();
        for s in schemas {
            let n: u64 = s.shape.iter().map(|&x| x as u64).product();
            totals
                .entry(pack_name(&s.dtype))
                .or_insert((s.dtype.clone(), 0))
                .1 += n;
        }
        let mut packs = BTreeMap::new();
        for (name, (dtype, total)) in totals {
            let elem = element_size(&dtype)
                .ok_or_else(|| Error::Internal(format!("dtype {dtype:?} cannot be packed")))?;
            let chunk = (PACK_CHUNK_BYTES / elem).max(1);
            writer
                .define_array_dtype(
                    name.clone(),
                    dtype,
                    vec!["value".into()],
                    vec![total as usize],
                    Some(vec![chunk]),
                    None,
                )
                .map_err(|e| Error::format(format!("defining {name}"), e))?;
            packs.insert(
                name.clone(),
                Builder {
                    name,
                    elem,
                    chunk,
                    buf: Vec::with_capacity(chunk * elem),
                    next_chunk: 0,
                    names: String::new(),
                    offsets: vec![0],
                    total,
                },
            );
        }
        Ok(Packer { packs })
    }

    /// Appends `dataset`'s values (`bytes`, encoded, row-major) to the pack of `dtype`.
    pub(crate) fn push(
        &mut self,
        writer: &mut ArrayWriter,
        dataset: &str,
        dtype: &DType,
        bytes: &[u8],
    ) -> Result<()> {
        let name = pack_name(dtype);
        let b = self
            .packs
            .get_mut(&name)
            .ok_or_else(|| Error::Internal(format!("no pack {name} was defined")))?;
        let n = (bytes.len() / b.elem) as u64;
        let at = b.offsets.last().copied().unwrap_or(0);
        if !bytes.len().is_multiple_of(b.elem) || at + n > b.total {
            return Err(Error::Internal(format!(
                "{dataset}: {} bytes do not fit pack {name}",
                bytes.len()
            )));
        }
        if !b.names.is_empty() || b.offsets.len() > 1 {
            b.names.push('\n');
        }
        b.names.push_str(dataset);
        b.offsets.push(at + n);
        let full = b.chunk * b.elem;
        let mut rest = bytes;
        while !rest.is_empty() {
            let take = (full - b.buf.len()).min(rest.len());
            b.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if b.buf.len() == full {
                write_chunk(writer, b)?;
            }
        }
        Ok(())
    }

    /// Writes the last chunk of every pack and its index.
    pub(crate) fn finish(self, writer: &mut ArrayWriter) -> Result<()> {
        for (_, mut b) in self.packs {
            if !b.buf.is_empty() {
                write_chunk(writer, &mut b)?;
            }
            let written = b.offsets.last().copied().unwrap_or(0);
            if written != b.total {
                return Err(Error::Internal(format!(
                    "pack {} holds {written} of the {} values it was defined for",
                    b.name, b.total
                )));
            }
            let offsets: Vec<u8> = b.offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
            let set = |w: &mut ArrayWriter, key: &str, v: AttributeValue| {
                w.set_attribute(&b.name, key, v)
                    .map_err(|e| Error::format(format!("indexing {}", b.name), e))
            };
            set(
                writer,
                DATASETS,
                AttributeValue::String(b.names.as_str().into()),
            )?;
            set(writer, OFFSETS, AttributeValue::Binary(offsets.into()))?;
        }
        Ok(())
    }
}

fn write_chunk(writer: &mut ArrayWriter, b: &mut Builder) -> Result<()> {
    writer
        .write_chunk_bytes(&b.name, vec![b.next_chunk], &b.buf)
        .map_err(|e| Error::format(format!("writing {}", b.name), e))?;
    b.next_chunk += 1;
    b.buf.clear();
    Ok(())
}

/// The statistics of one packed array's values, as a segment footer would hold them for it
/// unpacked: nulls are values equal to the fill value.
pub(crate) fn stats(bytes: &[u8], dtype: &DType, fill: Option<&FillValue>) -> StatsRepr {
    let (min, max, null_count, row_count) =
        array_format::stats::chunk_statistics(bytes, dtype, fill);
    crate::schema::stats_to_repr(&array_format::ArrayStats {
        name: String::new(),
        min,
        max,
        null_count,
        row_count,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use array_format::{NoCompression, WriterConfig};
    use object_store::memory::InMemory;

    use super::*;

    /// A file with one f32 pack of `len` values indexed by `names` and `offsets` (either
    /// attribute left out when `None`).
    async fn pack_file(names: Option<&str>, offsets: Option<&[u64]>, len: usize) -> ArrayFile {
        let mut w = ArrayWriter::new(WriterConfig::new(NoCompression));
        let name = "_pack.Float32";
        w.define_array_dtype(
            name,
            DType::Float32,
            vec!["value".into()],
            vec![len],
            Some(vec![len.max(1)]),
            None,
        )
        .unwrap();
        let values: Vec<u8> = (0..len).flat_map(|i| (i as f32).to_le_bytes()).collect();
        w.write_chunk_bytes(name, vec![0], &values).unwrap();
        if let Some(n) = names {
            w.set_attribute(name, DATASETS, AttributeValue::String(n.into()))
                .unwrap();
        }
        if let Some(o) = offsets {
            let bytes: Vec<u8> = o.iter().flat_map(|x| x.to_le_bytes()).collect();
            w.set_attribute(name, OFFSETS, AttributeValue::Binary(bytes.into()))
                .unwrap();
        }
        w.finish(Arc::new(InMemory::new()), "seg.af".into())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_pack_index_gives_each_dataset_its_slot() {
        let file = pack_file(Some("a\nb"), Some(&[0, 2, 5]), 5).await;
        let packs = Packs::read(&file).unwrap();
        assert_eq!(packs.len(), 2);
        let b = packs.get("b").unwrap();
        assert_eq!((b.array.as_str(), b.start, b.end), ("_pack.Float32", 2, 5));
        assert!(packs.get("c").is_none());
    }

    #[tokio::test]
    async fn a_pack_index_that_does_not_fit_its_pack_is_refused_by_name() {
        type Case<'a> = (Option<&'a str>, Option<&'a [u64]>, &'a str);
        let cases: [Case; 6] = [
            (None, Some(&[0, 5]), "no atlas.datasets"),
            (Some("a"), None, "no readable atlas.offsets"),
            (Some("a\nb"), Some(&[0, 5]), "do not fit"),
            (Some("a\nb"), Some(&[0, 4, 2]), "do not fit"),
            (Some("a"), Some(&[0, 9]), "do not fit"),
            (Some("a\na"), Some(&[0, 2, 5]), "packed twice"),
        ];
        for (names, offsets, why) in cases {
            let file = pack_file(names, offsets, 5).await;
            let err = Packs::read(&file).unwrap_err();
            assert!(err.contains(why), "{names:?} {offsets:?}: {err}");
        }
    }
}
