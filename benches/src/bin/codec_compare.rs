//! Codecs measured on a store's own values: for every floating-point array in the stores given,
//! the values of each variable are laid out as the store lays them out (datasets one after
//! another, in blocks of 256 KiB of raw values), and each block is compressed with each
//! candidate codec. Prints, per store and variable, the compressed size of each codec against
//! the raw bytes and the time to decompress every block on one core (median of the runs).
//!
//! ```text
//! cargo run --release -p atlas-benches --bin codec_compare -- [RUNS] STORE...
//! ```
//! Candidates: zstd (level 3, the store's default), lz4, and each after a byte shuffle
//! (the bytes of every element grouped by position, as Blosc and HDF5's shuffle filter do).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use atlas_store::{Atlas, DType};

/// Raw bytes per compressed block, as the store writes them.
const BLOCK: usize = 256 * 1024;

type Failure = Box<dyn std::error::Error>;

/// The values of one variable, as raw little-endian bytes, and its element size.
struct Variable {
    bytes: Vec<u8>,
    elem: usize,
}

/// Each variable's values, by name and element type (a variable may be f32 in one file and
/// f64 in another).
async fn variables(location: &str) -> Result<BTreeMap<String, Variable>, Failure> {
    let atlas = Atlas::open_location(location).await?;
    let mut out: BTreeMap<String, Variable> = BTreeMap::new();
    for name in atlas.list_datasets() {
        let view = atlas.open_dataset(&name).await?;
        for array in view.list_arrays() {
            let Some(meta) = view.array_meta(&array) else {
                continue;
            };
            let (bytes, elem) = match meta.dtype {
                DType::Float32 => {
                    let Some(v) = view.read_array::<f32>(&array, vec![], vec![]).await? else {
                        continue;
                    };
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    (bytes, 4)
                }
                DType::Float64 => {
                    let Some(v) = view.read_array::<f64>(&array, vec![], vec![]).await? else {
                        continue;
                    };
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    (bytes, 8)
                }
                _ => continue,
            };
            let var = out
                .entry(format!("{array} ({:?})", meta.dtype))
                .or_insert(Variable {
                    bytes: Vec::new(),
                    elem,
                });
            var.bytes.extend_from_slice(&bytes);
        }
    }
    Ok(out)
}

/// Bytes of each element grouped by their position: all first bytes, then all second bytes, …
fn shuffle(bytes: &[u8], elem: usize) -> Vec<u8> {
    let n = bytes.len() / elem;
    let mut out = vec![0u8; bytes.len()];
    for (i, e) in bytes.chunks_exact(elem).enumerate() {
        for (b, &byte) in e.iter().enumerate() {
            out[b * n + i] = byte;
        }
    }
    out
}

/// The inverse of [`shuffle`], for 4- and 8-byte elements (the only ones measured).
fn unshuffle(bytes: &[u8], elem: usize) -> Vec<u8> {
    match elem {
        4 => unshuffle_n::<4>(bytes),
        8 => unshuffle_n::<8>(bytes),
        _ => unreachable!("only f32 and f64 are measured"),
    }
}

fn unshuffle_n<const N: usize>(bytes: &[u8]) -> Vec<u8> {
    let n = bytes.len() / N;
    let planes: [&[u8]; N] = std::array::from_fn(|b| &bytes[b * n..(b + 1) * n]);
    let mut out = vec![0u8; bytes.len()];
    for (i, dst) in out.chunks_exact_mut(N).enumerate() {
        for (b, plane) in planes.iter().enumerate() {
            dst[b] = plane[i];
        }
    }
    out
}

#[derive(Clone, Copy)]
enum Candidate {
    Zstd,
    Lz4,
    ShuffleZstd,
    ShuffleLz4,
}

impl Candidate {
    const ALL: [Candidate; 4] = [
        Candidate::Zstd,
        Candidate::Lz4,
        Candidate::ShuffleZstd,
        Candidate::ShuffleLz4,
    ];

    fn name(self) -> &'static str {
        match self {
            Candidate::Zstd => "zstd",
            Candidate::Lz4 => "lz4",
            Candidate::ShuffleZstd => "shuffle+zstd",
            Candidate::ShuffleLz4 => "shuffle+lz4",
        }
    }

    fn compress(self, block: &[u8], elem: usize) -> Result<Vec<u8>, Failure> {
        Ok(match self {
            Candidate::Zstd => zstd::bulk::compress(block, 3)?,
            Candidate::Lz4 => lz4_flex::compress_prepend_size(block),
            Candidate::ShuffleZstd => zstd::bulk::compress(&shuffle(block, elem), 3)?,
            Candidate::ShuffleLz4 => lz4_flex::compress_prepend_size(&shuffle(block, elem)),
        })
    }

    fn decompress(self, block: &[u8], raw: usize, elem: usize) -> Result<Vec<u8>, Failure> {
        Ok(match self {
            Candidate::Zstd => zstd::bulk::decompress(block, raw)?,
            Candidate::Lz4 => lz4_flex::decompress_size_prepended(block)?,
            Candidate::ShuffleZstd => unshuffle(&zstd::bulk::decompress(block, raw)?, elem),
            Candidate::ShuffleLz4 => unshuffle(&lz4_flex::decompress_size_prepended(block)?, elem),
        })
    }
}

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1).peekable();
    let runs: usize = match args.peek().map(|a| a.parse::<usize>()) {
        Some(Ok(n)) => {
            args.next();
            n
        }
        _ => 5,
    };
    let stores: Vec<String> = args.collect();
    if stores.is_empty() {
        return Err("usage: codec_compare [RUNS] STORE...".into());
    }
    let rt = tokio::runtime::Runtime::new()?;
    println!(
        "| store · variable | raw MiB | codec | stored MiB | ratio to raw | decompress ms | GB/s |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|");
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    for store in &stores {
        let short = std::path::Path::new(store)
            .file_name()
            .map_or(store.as_str(), |f| f.to_str().unwrap_or(store));
        let vars = rt.block_on(variables(store))?;
        for (name, var) in &vars {
            let blocks: Vec<&[u8]> = var.bytes.chunks(BLOCK).collect();
            let raw = var.bytes.len();
            for c in Candidate::ALL {
                let packed = blocks
                    .iter()
                    .map(|b| c.compress(b, var.elem))
                    .collect::<Result<Vec<_>, _>>()?;
                let stored: usize = packed.iter().map(Vec::len).sum();
                for (p, b) in packed.iter().zip(&blocks) {
                    if c.decompress(p, b.len(), var.elem)?.as_slice() != *b {
                        let codec = c.name();
                        return Err(format!("{store} {name}: {codec} does not round-trip").into());
                    }
                }
                let mut times: Vec<Duration> = Vec::with_capacity(runs);
                for _ in 0..runs.max(1) {
                    let start = Instant::now();
                    for (p, b) in packed.iter().zip(&blocks) {
                        std::hint::black_box(c.decompress(p, b.len(), var.elem)?);
                    }
                    times.push(start.elapsed());
                }
                times.sort();
                let t = times[times.len() / 2];
                println!(
                    "| {short} · {name} | {:.2} | {} | {:.2} | {:.3} | {:.2} | {:.2} |",
                    mib(raw),
                    c.name(),
                    mib(stored),
                    stored as f64 / raw as f64,
                    t.as_secs_f64() * 1e3,
                    raw as f64 / t.as_secs_f64() / 1e9,
                );
            }
        }
    }
    Ok(())
}
