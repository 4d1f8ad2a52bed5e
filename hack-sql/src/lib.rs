//! No code. This crate exists for its `Cargo.toml`: see the comment there.
