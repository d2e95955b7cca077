//! Benchmarks of the mixup zoo live in `benches/`. This library only sets the allocator their
//! binaries use: mimalloc, as the `mixup` binary does, so that `cargo bench` and `mixup bench`
//! time the same thing (glibc's malloc costs flex steps 5-35%; see the README's Speed section).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
