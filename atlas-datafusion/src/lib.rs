//! # atlas-datafusion
//!
//! The DataFusion extension for ATLAS stores: one SQL table per variable, with dataset, index,
//! coordinate and statistics pushdown.
//!
//! **Status:** not built yet. This crate is a placeholder member of the workspace so the layout
//! in `docs/architecture.md` is visible; it exposes nothing until the SQL mapping lands. Use
//! [`atlas_store`] directly in the meantime.

#![warn(missing_docs)]

pub use atlas_store;
