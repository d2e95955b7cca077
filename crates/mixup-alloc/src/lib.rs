//! The allocator of the `mixup` binary and the benches.
//!
//! Tensor backends allocate and free buffers of the same few sizes at every operation.
//! mimalloc (v3) returns freed pages to the OS after a purge delay (1 s by default), after which
//! the next step faults them in again. [`keep_freed_pages`] turns purging off for the process:
//! measured on the 2-core dev machine (`mixup bench --model textcnn`, median of 15 steps, in
//! alternation) it raised TextCNN training from 905 to 1249-1309 samples/s, for 83 instead of
//! 68 MiB peak memory. Binaries put [`ALLOCATOR`]'s type in a `#[global_allocator]` static and
//! call [`keep_freed_pages`] first thing in `main`.
//!
//! LibTorch (the `tch` backend) allocates through the C library's `malloc`, not through Rust's
//! global allocator. glibc serves every block above its mmap threshold (128 KiB at first) with a
//! fresh `mmap` and returns it with `munmap` on free, so each step faults in and zeroes its
//! activations' pages again (14% of a tch BiLSTM step was the kernel's page-fault handling). On
//! 64-bit glibc, [`keep_freed_pages`] also raises the mmap threshold to its maximum (32 MiB) and the
//! trim threshold to 1 GiB, so freed blocks stay in the heap for the next step: measured with
//! `mixup bench --device tch` (README, Performance, three alternating pairs each) a TextCNN
//! step took about 22% less time, BiLSTM steps were faster in every pair (by 2-36%; the
//! machine drifted), and the Transformer did not change.

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
    keep_c_heap();
}

/// glibc's mmap threshold, raised to its largest allowed value (`DEFAULT_MMAP_THRESHOLD_MAX`
/// on 64-bit targets).
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
pub const C_MMAP_THRESHOLD: i32 = 32 << 20;

/// glibc's trim threshold: free memory at the top of the heap beyond this goes back to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
pub const C_TRIM_THRESHOLD: i32 = 1 << 30;

/// Keeps the C library's freed blocks for reuse (see the crate documentation); 64-bit glibc
/// only (32 MiB is above the mmap threshold's cap on 32-bit targets).
/// Returns whether both settings were taken.
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
pub fn keep_c_heap() -> bool {
    // SAFETY: `mallopt` takes a parameter number and a value and only changes malloc's
    // settings; both numbers are glibc's documented M_MMAP_THRESHOLD and M_TRIM_THRESHOLD,
    // and the values are within their documented ranges.
    #[allow(unsafe_code)]
    unsafe {
        // Both settings are tried, whatever the first one returns.
        let mmap = libc::mallopt(libc::M_MMAP_THRESHOLD, C_MMAP_THRESHOLD) == 1;
        let trim = libc::mallopt(libc::M_TRIM_THRESHOLD, C_TRIM_THRESHOLD) == 1;
        mmap && trim
    }
}

/// Keeps the C library's freed blocks for reuse: nothing to do off 64-bit glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")))]
pub fn keep_c_heap() -> bool {
    false
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

    /// glibc takes both settings. (Their effect is on speed: `mixup bench --device tch`,
    /// README's Performance, measures it; no test times anything.)
    #[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
    #[test]
    fn c_heap_settings_are_taken() {
        assert!(keep_c_heap(), "mallopt refused the settings");
    }
}
