//! Criterion benchmarks over the public API live in `benches/`; this crate has no library code.
