//! criterion benchmarks for pstream; see the `benches/` targets.
