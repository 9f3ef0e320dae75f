//! Asking the memory system for what a block will read before the block reads it.
//!
//! Between two `process()` calls a host runs other plugins and other threads, so a block starts
//! with cold caches. Without help, each note's wavetable and each reverb delay line then misses
//! one cache line at a time as the block walks through it, and those waits in a row cost as
//! much as the synthesis itself (7 notes and reverb: 39 µs warm, 69 µs cold). Prefetching it all
//! at the start of the block lets the misses overlap.

/// Starts loading every cache line of `data`; returns at once and never faults.
#[inline]
pub(crate) fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        const LINE: usize = 64;
        let start = data.as_ptr().cast::<i8>();
        for offset in (0..std::mem::size_of_val(data)).step_by(LINE) {
            // SAFETY: the address is inside `data`, and a prefetch only hints the cache.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// [`prefetch`] of the `len` elements of the ring `buf` from `at` on, wrapping at its end.
pub(crate) fn prefetch_ring<T>(buf: &[T], at: usize, len: usize) {
    let at = at.min(buf.len());
    let first = len.min(buf.len() - at);
    prefetch(&buf[at..at + first]);
    prefetch(&buf[..(len - first).min(at)]);
}
