//! The allocator of the `mixup` binary and the benches.
//!
//! Tensor backends allocate and free buffers of the same few sizes at every operation.
//! mimalloc (v3) returns freed pages to the OS after a purge delay (1 s by default), after which
//! the next step faults them in again. [`keep_freed_pages`] turns purging off for the process:
//! measured on the 2-core dev machine (`mixup bench --model textcnn`, median of 15 steps, in
//! alternation) it raised TextCNN training from 905 to 1249-1309 samples/s, for 83 instead of
//! 68 MiB peak memory. Binaries put [`ALLOCATOR`]'s type in a `#[global_allocator]` static and
//! call [`keep_freed_pages`] first thing in `main`.

pub use mimalloc::MiMalloc;

/// The allocator value for a `#[global_allocator]` static.
pub const ALLOCATOR: MiMalloc = MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`, mimalloc v3's
/// `include/mimalloc.h`).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to purge freed pages (`mi_option_purge_delay = -1`), so that a training
/// loop reuses them instead of faulting them in again every step. Call it at the start of
/// `main`, before the tensors come; calling it again changes nothing.
pub fn keep_freed_pages() {
    // SAFETY: `mi_option_set` takes an option index and a value and only stores the value in
    // mimalloc's option table; PURGE_DELAY is a valid index and -1 a documented value.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_is_set() {
        keep_freed_pages();
        // SAFETY: reads an option value; the index is valid.
        #[allow(unsafe_code)]
        let value = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        assert_eq!(value, -1);
    }
}
