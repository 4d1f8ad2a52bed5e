//! Integration tests of atlas-store, one module per concern.

mod api;
mod catalog;
mod copy;
mod durability;
mod golden;
mod integrity;
mod lifecycle;
mod memory;
mod metadata;
mod pack;
mod support;
mod upstream;
mod upstream010;
mod validation;
