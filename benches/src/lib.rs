//! Benchmarks of the mixup zoo live in `benches/`. This library only sets the allocator their
//! binaries use: mimalloc with purging off ([`mixup_alloc`]), as the `mixup` binary does, so
//! that `cargo bench` and `mixup bench` time the same thing (README, Performance). Every bench
//! `main` calls [`setup`] first.

#[global_allocator]
static ALLOCATOR: mixup_alloc::MiMalloc = mixup_alloc::ALLOCATOR;

/// Sets the allocator up as the `mixup` binary does ([`mixup_alloc::keep_freed_pages`]).
pub fn setup() {
    mixup_alloc::keep_freed_pages();
}
