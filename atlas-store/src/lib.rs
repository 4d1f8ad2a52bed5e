//! # atlas-store
//!
//! A durable store of many NetCDF-like datasets — named, typed N-dimensional arrays with
//! attributes — laid out **variable-first**: each variable (`temperature`, `time`, …) has its own
//! segment files holding it for every dataset, so reading one variable across 10,000 datasets
//! touches one variable's files.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> atlas_store::Result<()> {
//! use atlas_store::{Atlas, Attr, StoreConfig};
//! use ndarray::{Array, IxDyn};
//!
//! let dir = tempfile::tempdir().expect("temp dir");
//! let mut atlas = Atlas::create_path(dir.path().join("store"), StoreConfig::default()).await?;
//! let ds = atlas.create_dataset("cruise_001").await?;
//! ds.set_attribute("platform", Attr::String("R/V Atlantis".into()))?;
//! ds.define_array::<f32>("temperature", vec!["depth".into()], vec![4], None, None).await?;
//! let t = Array::from_shape_vec(IxDyn(&[4]), vec![18.5f32, 16.0, 12.25, 9.0]).expect("shape");
//! ds.write_array("temperature", vec![0], t.view()).await?;
//! atlas.flush().await?; // the durability boundary
//!
//! let atlas = Atlas::open_path(dir.path().join("store")).await?;
//! let ds = atlas.open_dataset("cruise_001").await?;
//! let top = ds.read_array::<f32>("temperature", vec![0], vec![2]).await?.expect("defined");
//! assert_eq!(top.as_slice(), Some(&[18.5f32, 16.0][..]));
//! let stats = ds.array_stats("temperature").await.expect("flushed");
//! assert_eq!(stats.row_count, 4);
//! # Ok(())
//! # }
//! ```
//!
//! `docs/format.md` specifies the bytes on disk; `docs/architecture.md` shows how the parts fit.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod atlas;
mod catalog;
mod config;
mod copy;
mod dataset;
mod describe;
mod element;
mod error;
mod io;
pub mod location;
mod pack;
mod pending;
mod schema;
mod segment;
mod sums;
#[cfg(test)]
mod testing;
mod upstream;

pub use array_format::{ArrayElement, ArrayStats, DType, FillValue, StatValue, TimestampNs};
pub(crate) use atlas::lock;
pub use atlas::{
    Atlas, CompactReport, DamagedSegment, SegmentInfo, VacuumPlan, VerifyReport, WriteStats,
};
pub use config::{
    CHUNK_ELEMENTS, Codec, DEFAULT_ORPHAN_RETENTION, DEFAULT_PENDING_BUDGET, MetaFormat,
    StoreConfig, chunk_shape, parse_chunk_spec,
};
pub use copy::{
    COPY_TILE_ELEMENTS, CopyPhase, CopyProgress, CopyReport, discard_partial_store, migrate,
};
pub use dataset::DatasetView;
pub use describe::{ArrayInfo, ArrayRef, CatalogView, DatasetInfo, DatasetRef};
pub use element::Bool;
pub use error::{Error, Result};
pub use io::{ReadCounter, ReadCounts, count_reads};
pub use schema::{ArraySchema, Attr};
/// Re-exported so callers name the same `ndarray` and `object_store` types as the store.
pub use {ndarray, object_store};
