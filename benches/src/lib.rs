//! Shared workload generators for the benchmarks in `benches/benches/`.
