//! Benchmarks of the mixup zoo live in `benches/`; this library is empty.
