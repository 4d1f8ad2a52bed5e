//! Cross-crate integration tests for atlas-sql live in `tests/tests/`. This library is empty.
