//! Proof that the hot paths do not allocate: a counting allocator (for this test binary only)
//! watches the clock and the mapping run over many blocks.
//!
//! Left out when `assert_process_allocs` is on: nice-plug then installs its own global allocator,
//! which aborts on allocation in `process()` and so checks the same thing in the host tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use super::frame::TokenFrame;
use super::grid::{FreeBlock, HostBlock, TokenClock};
use super::scale::{Root, Scale};
use super::voices::{MappingParams, MappingState, map_frame};

/// Forwards to the system allocator; counts allocations made on a thread while it is watching.
struct CountingAllocator;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    if WATCHING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
    }
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged from the caller, who upholds `GlobalAlloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations `f` makes on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|count| count.set(0));
    WATCHING.with(|watching| watching.set(true));
    f();
    WATCHING.with(|watching| watching.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn the_counter_sees_allocations() {
    assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 16]))) >= 1);
}

#[test]
fn clock_and_mapping_do_not_allocate() {
    let mut frames = [TokenFrame::EMPTY; 16];
    for (i, frame) in frames.iter_mut().enumerate() {
        *frame = TokenFrame::new(i as u32, 7, "token text that is fairly long…", 31, 0.9);
        for s in 0..31 {
            let x = ((i * 31 + s) as f32 * 0.37).sin();
            frame.set_state(
                s,
                crate::music::frame::components(&[x, -x, 0.5 * x, 0.0]),
                10.0 + 5.0 * x,
                0.5 + 0.4 * x,
                0.8,
            );
        }
    }
    let mut params = MappingParams {
        ornament_amount: 1.0,
        ..MappingParams::default()
    };
    let mut clock = TokenClock::new();
    let mut state = MappingState::new();
    let mut played = 0usize;

    let count = allocations_in(|| {
        let mut beat = 0.0;
        for block in 0..2000u32 {
            let len = 1 + (block * 7919) % 4096;
            params.scale = Scale::ALL[(block / 100) as usize % Scale::ALL.len()];
            params.root = Root::from_pitch_class((block / 150) as u8);
            let steps = if block % 500 < 400 {
                if block % 333 == 0 {
                    beat = 4.0; // loop jump
                }
                let steps = clock.host_block(&HostBlock {
                    beat,
                    tempo: 100.0 + f64::from(block % 60),
                    sample_rate: 48_000.0,
                    len,
                    tokens_per_beat: 4.0,
                });
                beat += f64::from(len) * (100.0 + f64::from(block % 60)) / 2_880_000.0;
                steps
            } else {
                clock.free_block(&FreeBlock {
                    sample_rate: 48_000.0,
                    len,
                    tokens_per_second: 8.0,
                })
            };
            if steps.jumped {
                state.release_all();
            }
            for step in steps {
                let frame = &frames[step.step.rem_euclid(frames.len() as i64) as usize];
                let plan = map_frame(frame, &params, 0, &mut state);
                played +=
                    plan.voices.iter().flatten().count() + std::hint::black_box(frame.text()).len();
            }
            let _ = state.update_drone(&params);
        }
    });
    assert_eq!(count, 0, "the clock or the mapping allocated");
    assert!(played > 1000);
}
