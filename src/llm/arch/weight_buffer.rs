//! Weight storage on 2 MB-aligned memory (for arrays of at least that size) that Linux is asked to back with huge pages.
//!
//! Decode streams every weight once per token (494 MB for GPT-2 124M in f32), far more than any
//! cache or TLB holds. On 4 KB pages each page is a TLB miss and a point where the hardware
//! prefetcher stops and has to ramp up again; on 2 MB pages both happen 512 times less often.
//! Linux hands out transparent huge pages to regions marked `MADV_HUGEPAGE` (the default policy
//! is often `madvise`); where it cannot, the memory stays ordinary and only the speed differs.

use std::alloc::{self, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// The huge-page size of x86-64 and most aarch64 Linux systems.
const HUGE_PAGE: usize = 2 << 20;

/// An immutable array of plain values (`f32`, `u8`), huge-page aligned when that large.
pub struct WeightBuffer<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: the buffer owns its memory and never changes it after construction.
unsafe impl<T: Copy + Send> Send for WeightBuffer<T> {}
// SAFETY: shared access is read-only.
unsafe impl<T: Copy + Sync> Sync for WeightBuffer<T> {}

impl<T: Copy> WeightBuffer<T> {
    /// The parts one after the other.
    pub fn concat(parts: &[&[T]]) -> Self {
        let len = parts.iter().map(|p| p.len()).sum();
        let buffer = Self::allocate(len, false);
        let mut at = 0;
        for part in parts {
            // SAFETY: `at + part.len() <= len`, the allocation holds `len` values, and it does
            // not overlap the part.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    part.as_ptr(),
                    buffer.ptr.as_ptr().add(at),
                    part.len(),
                )
            };
            at += part.len();
        }
        buffer
    }

    /// `len` values, zeroed or left for the caller to write, advised onto huge pages.
    fn allocate(len: usize, zeroed: bool) -> Self {
        let Some(layout) = Self::layout(len) else {
            return Self {
                ptr: NonNull::dangling(),
                len: 0,
            };
        };
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe {
            if zeroed {
                alloc::alloc_zeroed(layout)
            } else {
                alloc::alloc(layout)
            }
        };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            alloc::handle_alloc_error(layout)
        };
        advise_huge_pages(raw, layout.size());
        Self { ptr, len }
    }

    /// `None` for an empty buffer. Arrays smaller than a huge page are only cache-line aligned,
    /// so small models do not reserve 2 MB per matrix.
    fn layout(len: usize) -> Option<Layout> {
        let size = len.checked_mul(size_of::<T>()).filter(|&s| s > 0)?;
        let align = if size >= HUGE_PAGE { HUGE_PAGE } else { 64 };
        Some(
            Layout::from_size_align(size, align.max(align_of::<T>()))
                .expect("a weight array fits the address space"),
        )
    }
}

impl WeightBuffer<u8> {
    /// `len` bytes written in place by `fill`, which gets them zeroed: a layer converted at load
    /// goes straight into its buffer, with no copy beside it.
    pub fn filled(len: usize, fill: impl FnOnce(&mut [u8])) -> Self {
        let buffer = Self::allocate(len, true);
        // SAFETY: `len` zeroed (so initialised) bytes (or none), owned here and not yet shared.
        fill(unsafe { std::slice::from_raw_parts_mut(buffer.ptr.as_ptr(), buffer.len) });
        buffer
    }
}

impl<T: Copy> From<&[T]> for WeightBuffer<T> {
    fn from(values: &[T]) -> Self {
        Self::concat(&[values])
    }
}

impl<T: Copy> Deref for WeightBuffer<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialised values (or is dangling with `len` 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for WeightBuffer<T> {
    fn drop(&mut self) {
        if let Some(layout) = Self::layout(self.len) {
            // SAFETY: allocated in `concat` with this very layout.
            unsafe { alloc::dealloc(self.ptr.as_ptr().cast(), layout) };
        }
    }
}

/// Bytes in a cache line (x86-64, most aarch64).
const CACHE_LINE: usize = 64;

/// Zeroed floats starting on a cache line: a step's scratch space. AVX loads from it then never
/// straddle two lines, whatever address the allocator hands out; left to the allocator, that
/// address depends on everything allocated before and moved prompt processing by 10%.
pub struct Scratch {
    data: Vec<f32>,
    start: usize,
    len: usize,
}

impl Scratch {
    pub fn zeroed(len: usize) -> Self {
        let per_line = CACHE_LINE / size_of::<f32>();
        let data = vec![0.0_f32; len + per_line - 1];
        // `data` is f32-aligned, so the distance to the next line is a whole number of floats.
        let start =
            (CACHE_LINE - data.as_ptr() as usize % CACHE_LINE) % CACHE_LINE / size_of::<f32>();
        Self { data, start, len }
    }
}

impl Deref for Scratch {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.data[self.start..][..self.len]
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.data[self.start..][..self.len]
    }
}

/// Asks for huge pages over the whole huge pages inside `size` bytes from `start` (which is
/// huge-page aligned), before anything touches them; a refusal only costs speed.
fn advise_huge_pages(start: *mut u8, size: usize) {
    let whole = size / HUGE_PAGE * HUGE_PAGE;
    #[cfg(target_os = "linux")]
    if whole > 0 {
        // SAFETY: the range lies inside one live allocation; the advice changes no contents.
        unsafe { libc::madvise(start.cast(), whole, libc::MADV_HUGEPAGE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, whole);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_its_parts_in_order_on_an_aligned_start() {
        let big: Vec<f32> = (0..(HUGE_PAGE / 4 + 5)).map(|i| i as f32).collect();
        let buffer = WeightBuffer::concat(&[&[1.5, 2.5], &big, &[]]);
        assert_eq!(buffer.len(), big.len() + 2);
        assert_eq!(&buffer[..2], &[1.5, 2.5]);
        assert_eq!(&buffer[2..], &big[..]);
        assert_eq!(buffer.as_ptr() as usize % HUGE_PAGE, 0);
        let empty = WeightBuffer::<u8>::from(&[][..]);
        assert!(empty.is_empty());
    }

    #[test]
    fn scratch_starts_on_a_cache_line() {
        for len in [0, 1, 17, 1000] {
            let mut scratch = Scratch::zeroed(len);
            assert_eq!(scratch.len(), len);
            assert!(scratch.iter().all(|&v| v == 0.0));
            scratch.fill(1.0);
            assert_eq!(scratch.as_ptr() as usize % CACHE_LINE, 0);
        }
    }
}
