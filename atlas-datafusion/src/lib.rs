//! # atlas-datafusion
//!
//! A DataFusion extension that makes every variable of an ATLAS store a SQL table, and pushes
//! filters on dataset names, dimension positions, coordinates and values into the scan so only
//! the chunks a query needs are read.
//!
//! ```no_run
//! # async fn demo() -> datafusion::error::Result<()> {
//! use datafusion::prelude::SessionContext;
//!
//! let ctx = SessionContext::new();
//! atlas_datafusion::register_atlas(&ctx);
//! atlas_datafusion::register_store(&ctx, "ocean", "/data/ocean.atlas").await?;
//! ctx.sql("SELECT dataset, max(temperature) FROM ocean.temperature GROUP BY dataset")
//!     .await?
//!     .show()
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! `docs/sql.md` documents the mapping, the metadata tables and each pushdown.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod codec;
mod convert;
mod error;
mod gather;
mod grid_join;
mod layout;
mod meta;
mod options;
mod provider;
mod sink;
mod snapshot;
mod source;
mod store;
mod table;
mod tables;
mod write;

pub use codec::AtlasCodec;
pub use error::{Error, Result};
pub use grid_join::GridJoins;
pub use layout::{
    Conflict, ConflictKind, TypeConflicts, arrow_type, dataset_type, fits, majority_type, widen,
};
pub use meta::{METADATA_TABLES, dtype_name, type_conflicts};
pub use options::AtlasOptions;
pub use provider::{
    AtlasDatasetsFunction, AtlasScanFunction, AtlasSchemaProvider, AtlasTableFactory, OpenedStores,
    grid_table, policy_table, register_atlas, register_opened, register_store, store_table,
};
pub use sink::{AtlasFormatFactory, AtlasSinkExec, new_store_table};
pub use snapshot::OneGenerationPerStore;
pub use source::{AtlasSource, atlas_scans, scan_metrics};
pub use store::AtlasStore;
pub use table::AtlasTable;
pub use tables::{TableInfo, TableKind, grid_name, store_tables};
pub use write::DATASET_ATTRIBUTE;

/// Re-exported so callers name the same store types.
pub use atlas_store;
