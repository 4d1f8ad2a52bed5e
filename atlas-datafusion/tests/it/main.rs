//! Integration tests of the SQL layer, through SQL and the scan's metrics.

mod conflicts;
mod copy;
mod differential;
mod entry_points;
mod grid;
mod mapping;
mod pushdown;
mod remote;
mod support;
mod upstream;
mod upstream010;
