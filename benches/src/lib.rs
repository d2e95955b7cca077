//! Benchmarks of the mixup zoo live in `benches/`. This library only sets the allocator their
//! binaries use: mimalloc, as the `mixup` binary does, so that `cargo bench` and `mixup bench`
//! time the same thing (with glibc's malloc, flex steps took 4-25% longer; README, Performance).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
