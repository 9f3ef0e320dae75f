//! The synth's audio-thread methods never allocate: a counting global allocator watches this
//! thread while the choir plays (built-in and, when Debian's `timgm6mb-soundfont` is installed,
//! SoundFont voices), and while the spectral building blocks (partial banks, the formant voice,
//! the convolution reverb) are set and rendered.
//!
//! With `assert_process_allocs` (as `cargo xtask test` builds) nice-plug installs its own global
//! allocator, which aborts on any allocation in `process()`; this file then compiles to nothing
//! and the host tests cover the same code through the plugin. Plain `cargo test` runs it.
#![cfg(not(feature = "assert_process_allocs"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use latent_choir::synth::{
    AcidWave, Adsr, CC_CUTOFF, CC_RESONANCE, Choir, ConvolutionReverb, FormantVoice, PartialBank,
    SoundFontPlayer, Source, Timbre, VoiceEngine, VoiceId, Vowel, synthetic_impulse_response,
};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only this test thread's allocations while armed count; the harness may allocate elsewhere.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count();
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns how many allocations (and frees) it made on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

const FONT: &str = "/usr/share/sounds/sf2/TimGM6mb.sf2";

fn play(choir: &mut Choir, left: &mut [f32], right: &mut [f32]) {
    let sizes = [512usize, 1, 17, 333, 64, 500, 2];
    let mut s = 0;
    let mut block = |choir: &mut Choir, left: &mut [f32], right: &mut [f32]| {
        let n = sizes[s % sizes.len()];
        s += 1;
        choir.render(&mut left[..n], &mut right[..n]);
    };
    for voice in VoiceId::ALL {
        choir.note_on(voice, 60, 100);
        choir.note_on(voice, 67, 90);
    }
    for _ in 0..20 {
        block(choir, left, right);
    }
    // Parameters, ornaments, stealing, re-articulation.
    choir.set_level(VoiceId::Voice1, 0.5);
    choir.set_pan(VoiceId::Voice2, -0.7);
    choir.set_master_gain(0.9);
    choir.set_reverb_mix(0.4);
    choir.set_reverb_size(0.9);
    choir.set_reverb_damping(0.2);
    choir.set_timbre(VoiceId::Voice1, Timbre::Strings);
    choir.set_envelope(
        VoiceId::Voice2,
        Adsr {
            attack: 0.01,
            decay: 0.1,
            sustain: 0.5,
            release: 0.3,
        },
    );
    choir.set_program(VoiceId::Voice3, 40);
    for note in 40..80 {
        choir.note_on(VoiceId::Voice1, note, 80);
        choir.note_on(VoiceId::Voice3, note, 80);
        block(choir, left, right);
    }
    choir.note_on(VoiceId::Voice2, 60, 127);
    choir.note_off(VoiceId::Voice2, 60);
    choir.set_source(VoiceId::Voice2, Source::BuiltIn);
    choir.note_on(VoiceId::Voice2, 62, 0);
    choir.all_notes_off();
    for _ in 0..50 {
        block(choir, left, right);
    }
    // The weight pieces' timbres: controllers, slides, re-plucks, drum chokes, stealing.
    let weight = [
        Timbre::AcidBass,
        Timbre::Pluck,
        Timbre::FmBass,
        Timbre::Drums,
    ];
    for (voice, timbre) in VoiceId::ALL.into_iter().zip(weight) {
        choir.set_timbre(voice, timbre);
        choir.set_acid_wave(voice, AcidWave::Square);
    }
    for i in 0..60u8 {
        for voice in VoiceId::ALL {
            choir.control_change(voice, CC_CUTOFF, i * 2);
            choir.control_change(voice, CC_RESONANCE, 127 - i * 2);
            choir.control_change(voice, 7, 100);
            choir.note_on(voice, 35 + i % 12, 60 + i);
        }
        block(choir, left, right);
        if i % 4 == 3 {
            choir.all_notes_off();
        }
    }
    choir.set_reverb_mix(0.0);
    choir.all_sound_off();
    for _ in 0..50 {
        block(choir, left, right);
    }
}

#[test]
fn playing_the_choir_does_not_allocate() {
    // The counter sees allocations (so a zero below means something).
    assert!(allocations_in(|| drop(std::hint::black_box(vec![0u8; 16]))) >= 1);

    let mut left = vec![0.0f32; 512];
    let mut right = vec![0.0f32; 512];

    let mut choir = Choir::new(48_000.0, 512);
    let n = allocations_in(|| play(&mut choir, &mut left, &mut right));
    assert_eq!(n, 0, "built-in synth allocated {n} times");
    assert!(left.iter().chain(&right).all(|x| x.is_finite()));

    // The engines on their own, through the shared trait.
    let mut builtin = latent_choir::synth::PolySynth::new(48_000.0);
    let n = allocations_in(|| {
        for voice in VoiceId::ALL {
            builtin.note_on(voice, 72, 100);
        }
        builtin.render(&mut left, &mut right);
        builtin.all_notes_off();
        builtin.render(&mut left, &mut right);
    });
    assert_eq!(n, 0, "PolySynth allocated {n} times");

    match SoundFontPlayer::load(FONT, 48_000.0, 512) {
        Ok(player) => {
            let mut choir = Choir::new(48_000.0, 512);
            for voice in VoiceId::ALL {
                choir.set_source(voice, Source::SoundFont);
            }
            let mut old = None;
            let n = allocations_in(|| {
                // Installing a loaded player is a move, not an allocation.
                old = Some(choir.replace_soundfont(Some(player)));
                play(&mut choir, &mut left, &mut right);
            });
            assert_eq!(n, 0, "SoundFont voices allocated {n} times");
            assert!(left.iter().chain(&right).all(|x| x.is_finite()));
        }
        Err(e) => {
            eprintln!("SKIPPED SoundFont part: {e} (install the Debian package timgm6mb-soundfont)")
        }
    }
}

#[test]
fn spectral_building_blocks_do_not_allocate() {
    let mut left = vec![0.0f32; 512];
    let mut right = vec![0.0f32; 512];
    let sizes = [512usize, 1, 17, 333, 64, 500, 2];

    // Three voices' banks, set once per token as the plugin will.
    let mut banks: Vec<PartialBank> = (0..3).map(|_| PartialBank::new(64, 48_000.0)).collect();
    let n = allocations_in(|| {
        for token in 0..40 {
            for (v, bank) in banks.iter_mut().enumerate() {
                bank.set_smoothing(0.02 + 0.01 * v as f32);
                bank.set_glide(if token % 2 == 0 { 0.0 } else { 0.03 });
                for i in 0..64 {
                    let freq = 55.0 * (v + 1) as f32 * (i + 1 + token % 5) as f32;
                    bank.set_phase(i, 0.1 * i as f32);
                    bank.set_partial(i, freq, 0.01, (i as f32 / 32.0) - 1.0);
                }
                let n = sizes[token % sizes.len()];
                bank.render_add(&mut left[..n], &mut right[..n]);
            }
        }
        for bank in banks.iter_mut() {
            bank.release_all();
            bank.render_add(&mut left, &mut right);
        }
    });
    assert_eq!(n, 0, "PartialBank allocated {n} times");

    let mut voice = FormantVoice::new(48_000.0);
    let n = allocations_in(|| {
        for step in 0..60 {
            if step % 6 == 0 {
                voice.set_vowel(Vowel::ALL[step % Vowel::ALL.len()]);
                voice.set_vibrato(5.5, 40.0, 0.1);
                voice.set_envelope(Adsr {
                    attack: 0.02,
                    decay: 0.1,
                    sustain: 0.7,
                    release: 0.1,
                });
                voice.set_pan(-0.5);
                voice.note_on(196.0 + step as f32, 100);
            }
            if step % 6 == 4 {
                voice.note_off();
            }
            let n = sizes[step % sizes.len()];
            voice.render_add(&mut left[..n], &mut right[..n]);
        }
    });
    assert_eq!(n, 0, "FormantVoice allocated {n} times");

    let (ir_left, ir_right) = synthetic_impulse_response(48_000.0, 0.5, 3);
    let mut reverb = ConvolutionReverb::new(&ir_left, &ir_right, 256);
    left.fill(0.25);
    right.fill(-0.25);
    let n = allocations_in(|| {
        for step in 0..100 {
            reverb.set_mix(0.01 * step as f32);
            let n = sizes[step % sizes.len()];
            reverb.process(&mut left[..n], &mut right[..n]);
        }
        reverb.reset();
        reverb.process(&mut left, &mut right);
    });
    assert_eq!(n, 0, "ConvolutionReverb allocated {n} times");
    assert!(left.iter().chain(&right).all(|x| x.is_finite()));
}
