//! Behaviour of the synth as a whole: pitch, level, spectrum, note lifetimes, stealing,
//! determinism, block-size independence, denormals, SoundFont playback; and the benchmark.

use super::soundfont::tests::timgm6mb;
use super::*;

const SR: f32 = 48_000.0;
const BLOCK: usize = 512;

fn render(choir: &mut Choir, frames: usize) -> (Vec<f32>, Vec<f32>) {
    let mut l = vec![0.0; frames];
    let mut r = vec![0.0; frames];
    choir.render(&mut l, &mut r);
    (l, r)
}

fn render_mono(synth: &mut PolySynth, voice: VoiceId, frames: usize) -> Vec<f32> {
    let mut out = vec![0.0; frames];
    for chunk in out.chunks_mut(BLOCK) {
        synth.render_voice_mono(voice, chunk);
    }
    out
}

fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

/// Fundamental by normalised autocorrelation: the first local maximum within 10 % of the best
/// (so an octave error shows), refined by a parabola.
fn estimate_frequency(x: &[f32], sr: f32, expected: f32) -> f32 {
    let max_lag = (2.5 * sr / expected) as usize + 2;
    assert!(x.len() > 2 * max_lag);
    let w = x.len() - max_lag;
    let r: Vec<f64> = (0..=max_lag)
        .map(|lag| {
            let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
            for i in 0..w {
                let (a, b) = (f64::from(x[i]), f64::from(x[i + lag]));
                xy += a * b;
                xx += a * a;
                yy += b * b;
            }
            xy / (xx * yy).sqrt().max(1e-30)
        })
        .collect();
    let best = r[2..max_lag].iter().cloned().fold(f64::MIN, f64::max);
    let lag = (2..max_lag)
        .find(|&t| r[t] >= r[t - 1] && r[t] >= r[t + 1] && r[t] >= 0.9 * best)
        .expect("no periodicity");
    let (a, b, c) = (r[lag - 1], r[lag], r[lag + 1]);
    let shift = 0.5 * (a - c) / (a - 2.0 * b + c);
    sr / (lag as f64 + shift) as f32
}

/// Share of the energy (Hann window) within ±4 bins of the harmonics of `f0` below Nyquist.
fn harmonic_share(x: &[f32], sr: f32, f0: f32) -> f64 {
    let n = x.len();
    let w: Vec<f64> = (0..n)
        .map(|i| {
            let h = 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos();
            h * f64::from(x[i])
        })
        .collect();
    let bin_hz = f64::from(sr) / n as f64;
    let (mut total, mut harmonic) = (0.0, 0.0);
    for k in 1..n / 2 {
        let (mut re, mut im) = (0.0, 0.0);
        let step = std::f64::consts::TAU * k as f64 / n as f64;
        for (i, v) in w.iter().enumerate() {
            let a = step * i as f64;
            re += v * a.cos();
            im -= v * a.sin();
        }
        let p = re * re + im * im;
        total += p;
        let f = k as f64 * bin_hz;
        let h = (f / f64::from(f0)).round();
        // Detuned oscillators (strings, ±7 cents) sit a little off the exact harmonics.
        let tolerance = 4.0 * bin_hz + 0.005 * h * f64::from(f0);
        if h >= 1.0 && (f - h * f64::from(f0)).abs() <= tolerance {
            harmonic += p;
        }
    }
    harmonic / total
}

fn notes_for(timbre: Timbre) -> &'static [u8] {
    match timbre {
        Timbre::Flute => &[60, 72, 84, 96, 100, 108],
        Timbre::Clarinet => &[50, 60, 72, 88, 100, 105],
        Timbre::Strings => &[43, 55, 67, 79, 100, 103],
        Timbre::Drone => &[24, 36, 48, 60, 100],
        Timbre::Organ => &[36, 48, 60, 72, 96],
        Timbre::AcidBass => &[28, 36, 48, 60, 72],
        Timbre::Pluck => &[36, 48, 60, 72, 84, 96],
        Timbre::FmBass => &[28, 36, 48, 60, 72],
        // Unpitched: the drum tests below cover the kit.
        Timbre::Drums => &[],
    }
}

#[test]
fn every_timbre_is_in_tune_finite_and_audible() {
    for sr in [44_100.0, SR, 96_000.0] {
        for timbre in Timbre::ALL {
            for &note in notes_for(timbre) {
                let mut synth = PolySynth::new(sr);
                synth.set_timbre(VoiceId::Voice1, timbre);
                synth.note_on(VoiceId::Voice1, note, 100);
                let out = render_mono(&mut synth, VoiceId::Voice1, (0.6 * sr) as usize);
                assert!(out.iter().all(|x| x.is_finite()));
                let tail = &out[(0.3 * sr) as usize..];
                let level = rms(tail);
                assert!(level > 0.01, "{timbre:?} {note} @ {sr}: rms {level}");
                assert!(
                    peak(&out) < 1.0,
                    "{timbre:?} {note} @ {sr}: peak {}",
                    peak(&out)
                );
                let expected = timbre::note_frequency(note);
                let f = estimate_frequency(tail, sr, expected);
                let err = (f / expected - 1.0).abs();
                assert!(
                    err < 0.01,
                    "{timbre:?} {note} @ {sr}: {f} Hz, expected {expected}"
                );
            }
        }
    }
}

#[test]
fn flute_and_strings_get_delayed_vibrato_clarinet_and_drone_stay_steady() {
    for (timbre, vibrato) in [
        (Timbre::Flute, true),
        (Timbre::Strings, true),
        (Timbre::Clarinet, false),
        (Timbre::Drone, false),
    ] {
        let mut synth = PolySynth::new(SR);
        synth.set_timbre(VoiceId::Voice1, timbre);
        synth.note_on(VoiceId::Voice1, 69, 100);
        let out = render_mono(&mut synth, VoiceId::Voice1, (1.6 * SR) as usize);
        let spread = |from: f32| {
            let f: Vec<f32> = (0..8)
                .map(|k| {
                    let start = (from * SR) as usize + k * 1_200;
                    estimate_frequency(&out[start..start + 2_400], SR, 440.0)
                })
                .collect();
            let max = f.iter().cloned().fold(f32::MIN, f32::max);
            let min = f.iter().cloned().fold(f32::MAX, f32::min);
            max / min - 1.0
        };
        // Before the vibrato starts every timbre is steady.
        assert!(
            spread(0.05) < 0.002,
            "{timbre:?} wobbles early: {}",
            spread(0.05)
        );
        let late = spread(1.3);
        if vibrato {
            assert!(late > 0.004, "{timbre:?} has no vibrato: {late}");
        } else {
            assert!(late < 0.002, "{timbre:?} wobbles: {late}");
        }
    }
}

#[test]
fn the_choir_is_send() {
    fn send<T: Send>() {}
    send::<Choir>();
    send::<PolySynth>();
}

#[test]
fn full_choir_at_default_levels_stays_within_full_scale() {
    let mut choir = Choir::new(SR, BLOCK);
    for (voice, notes) in [
        (VoiceId::Voice1, [84u8, 88]),
        (VoiceId::Voice2, [67, 72]),
        (VoiceId::Voice3, [60, 64]),
    ] {
        for n in notes {
            choir.note_on(voice, n, 127);
        }
    }
    choir.note_on(VoiceId::Drone, 36, 127);
    let (l, r) = render(&mut choir, 4 * SR as usize);
    let p = peak(&l).max(peak(&r));
    assert!(p < 1.0 && p > 0.1, "peak {p}");
    for &x in l.iter().chain(&r) {
        assert!(x == 0.0 || x.is_normal());
    }
    // And each timbre alone at full velocity, high notes included.
    for timbre in Timbre::ALL {
        for &note in notes_for(timbre) {
            let mut choir = Choir::new(SR, BLOCK);
            choir.set_timbre(VoiceId::Voice2, timbre);
            choir.note_on(VoiceId::Voice2, note, 127);
            let (l, r) = render(&mut choir, SR as usize);
            assert!(peak(&l).max(peak(&r)) < 1.0, "{timbre:?} {note}");
            assert!(peak(&l) > 0.01, "{timbre:?} {note} silent");
        }
    }
}

#[test]
fn high_notes_do_not_alias() {
    // Analysed before vibrato starts; the flute's breath noise is not harmonic, so it gets a
    // looser bound.
    for (timbre, bound) in [
        (Timbre::Clarinet, 0.999),
        (Timbre::Strings, 0.999),
        (Timbre::Drone, 0.999),
        (Timbre::Organ, 0.999),
        (Timbre::Flute, 0.99),
    ] {
        for note in [96u8, 100, 105, 110] {
            let mut synth = PolySynth::new(SR);
            synth.set_timbre(VoiceId::Voice1, timbre);
            synth.set_envelope(
                VoiceId::Voice1,
                Adsr {
                    attack: 0.01,
                    decay: 0.01,
                    sustain: 1.0,
                    release: 0.1,
                },
            );
            synth.note_on(VoiceId::Voice1, note, 100);
            let out = render_mono(&mut synth, VoiceId::Voice1, 12_288);
            let share = harmonic_share(&out[4_096..], SR, timbre::note_frequency(note));
            assert!(share > bound, "{timbre:?} {note}: harmonic share {share}");
        }
    }
}

#[test]
fn note_off_ends_in_silence_within_the_release_time() {
    // Drum hits ignore note-off (see `drum_hits_are_one_shots_that_die_away`).
    for timbre in Timbre::ALL.into_iter().filter(|t| !t.is_one_shot()) {
        let mut choir = Choir::new(SR, BLOCK);
        choir.set_reverb_mix(0.0);
        choir.set_timbre(VoiceId::Voice1, timbre);
        let release = timbre.default_envelope().release;
        choir.note_on(VoiceId::Voice1, 60, 100);
        let (l, _) = render(&mut choir, (2.5 * SR) as usize);
        assert!(rms(&l[l.len() - 4_800..]) > 0.01, "{timbre:?} not sounding");
        choir.note_off(VoiceId::Voice1, 60);
        let margin = 0.01;
        render(&mut choir, ((release + margin) * SR) as usize);
        assert_eq!(
            choir.builtin_sounding_notes(VoiceId::Voice1),
            0,
            "{timbre:?}"
        );
        let (l, r) = render(&mut choir, SR as usize);
        assert!(
            l.iter().chain(&r).all(|&x| x == 0.0),
            "{timbre:?} not silent"
        );
    }
}

#[test]
fn all_notes_off_silences_every_voice() {
    let mut choir = Choir::new(SR, BLOCK);
    choir.set_reverb_mix(0.0);
    for voice in VoiceId::ALL {
        for note in [48, 55, 60, 64] {
            choir.note_on(voice, note, 90);
        }
    }
    let (l, _) = render(&mut choir, SR as usize);
    assert!(rms(&l[24_000..]) > 0.01);
    choir.all_notes_off();
    let longest = Timbre::ALL
        .iter()
        .map(|t| t.default_envelope().release)
        .fold(0.0, f32::max);
    render(&mut choir, ((longest + 0.01) * SR) as usize);
    let (l, r) = render(&mut choir, BLOCK);
    assert!(l.iter().chain(&r).all(|&x| x == 0.0));
    for voice in VoiceId::ALL {
        assert_eq!(choir.builtin_sounding_notes(voice), 0);
    }
}

#[test]
fn all_sound_off_is_quick_and_click_free() {
    let mut choir = Choir::new(SR, BLOCK);
    choir.note_on(VoiceId::Voice3, 60, 127);
    render(&mut choir, SR as usize);
    choir.all_sound_off();
    let (l, _) = render(&mut choir, 480);
    // A 5 ms fade: no sample-to-sample jump bigger than the signal's own slope allows.
    let max_step = l
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f32::max);
    assert!(max_step < 0.1, "{max_step}");
    let (l, r) = render(&mut choir, BLOCK);
    assert!(l.iter().chain(&r).all(|&x| x == 0.0));
}

#[test]
fn stealing_beyond_polyphony_is_bounded_and_smooth() {
    let mut choir = Choir::new(SR, BLOCK);
    let mut noise = noise::Noise::new(3);
    let mut prev = 0.0f32;
    let mut max_step = 0.0f32;
    for i in 0..200 {
        let note = 40 + ((noise.next() * 0.5 + 0.5) * 60.0) as u8;
        choir.note_on(VoiceId::Voice1, note, 64 + (i % 64) as u8);
        assert!(choir.builtin_sounding_notes(VoiceId::Voice1) <= POLYPHONY + 4);
        let (l, r) = render(&mut choir, 1 + (i * 37) % 300);
        for &x in l.iter().chain(&r) {
            assert!(x.is_finite() && x.abs() < 2.0);
        }
        for &x in &l {
            max_step = max_step.max((x - prev).abs());
            prev = x;
        }
    }
    assert!(max_step < 0.5, "click of {max_step}");
    // The pool really was full: the oldest notes were stolen.
    assert_eq!(
        choir.builtin.sounding_notes(VoiceId::Voice1).min(POLYPHONY),
        POLYPHONY
    );
}

#[test]
fn stealing_takes_the_oldest_releasing_note_first() {
    let mut synth = PolySynth::new(SR);
    let v = VoiceId::Voice2;
    for note in 60..60 + POLYPHONY as u8 {
        synth.note_on(v, note, 100);
    }
    synth.note_off(v, 63); // releasing, younger than 60..62
    synth.note_on(v, 90, 100);
    render_mono(&mut synth, v, 16);
    let held = |synth: &PolySynth, key: u8| {
        synth.pools[v.index()]
            .notes
            .iter()
            .any(|n| n.is_active() && n.key() == key && !n.is_fading())
    };
    assert!(
        !held(&synth, 63),
        "the releasing note should have been stolen"
    );
    assert!(held(&synth, 60) && held(&synth, 90));
    synth.note_on(v, 91, 100); // now the oldest held note goes
    assert!(!held(&synth, 60) && held(&synth, 61));
}

#[test]
fn repeated_pitch_rearticulates_instead_of_doubling() {
    let mut synth = PolySynth::new(SR);
    synth.note_on(VoiceId::Voice1, 72, 100);
    render_mono(&mut synth, VoiceId::Voice1, 4_800);
    synth.note_on(VoiceId::Voice1, 72, 80);
    assert_eq!(synth.sounding_notes(VoiceId::Voice1), 1);
    synth.note_off(VoiceId::Voice1, 72);
    render_mono(&mut synth, VoiceId::Voice1, SR as usize);
    assert_eq!(synth.sounding_notes(VoiceId::Voice1), 0);
}

/// A scripted performance: (frame offset, action).
#[derive(Clone, Copy, Debug)]
enum Event {
    On(VoiceId, u8, u8),
    Off(VoiceId, u8),
    Pan(VoiceId, f32),
    Level(VoiceId, f32),
    Mix(f32),
    Master(f32),
    AllOff,
}

fn script() -> Vec<(usize, Event)> {
    use Event::*;
    use VoiceId::*;
    let mut s = vec![
        (0, On(Drone, 36, 100)),
        (0, On(Voice1, 72, 100)),
        (700, On(Voice2, 64, 90)),
        (1_234, On(Voice3, 60, 80)),
        (5_000, Pan(Voice1, -1.0)),
        (9_001, Off(Voice1, 72)),
        (9_001, On(Voice1, 74, 110)),
        (9_400, On(Voice1, 76, 70)), // ornament overlapping
        (12_000, Level(Voice2, 0.3)),
        (15_000, Mix(0.0)),
        (20_000, Off(Voice1, 76)),
        (26_000, Mix(0.5)),
        (30_000, Master(0.5)),
        (40_000, AllOff),
        (90_000, On(Voice2, 100, 127)),
        (95_000, Off(Voice2, 100)),
    ];
    // Stealing too.
    for i in 0..12 {
        s.push((50_000 + i * 101, On(Voice3, 50 + i as u8 * 2, 90)));
    }
    s.sort_by_key(|e| e.0);
    s
}

fn apply(choir: &mut Choir, e: Event) {
    match e {
        Event::On(v, n, vel) => choir.note_on(v, n, vel),
        Event::Off(v, n) => choir.note_off(v, n),
        Event::Pan(v, p) => choir.set_pan(v, p),
        Event::Level(v, g) => choir.set_level(v, g),
        Event::Mix(m) => choir.set_reverb_mix(m),
        Event::Master(g) => choir.set_master_gain(g),
        Event::AllOff => choir.all_notes_off(),
    }
}

/// Plays the script, rendering between events in pieces chosen by `split` (max `BLOCK`).
fn perform(
    mut choir: Choir,
    total: usize,
    mut split: impl FnMut(usize) -> usize,
) -> (Vec<f32>, Vec<f32>) {
    let events = script();
    let mut l = vec![0.0; total];
    let mut r = vec![0.0; total];
    let mut pos = 0;
    let mut next = 0;
    while pos < total {
        while next < events.len() && events[next].0 <= pos {
            apply(&mut choir, events[next].1);
            next += 1;
        }
        let until = events.get(next).map_or(total, |e| e.0.min(total));
        let n = split(until - pos).clamp(1, (until - pos).min(BLOCK));
        choir.render(&mut l[pos..pos + n], &mut r[pos..pos + n]);
        pos += n;
    }
    (l, r)
}

#[test]
fn identical_calls_give_identical_output() {
    let a = perform(Choir::new(SR, BLOCK), 120_000, |n| n);
    let b = perform(Choir::new(SR, BLOCK), 120_000, |n| n);
    assert!(a.0 == b.0 && a.1 == b.1);
    assert!(rms(&a.0) > 0.01);
}

#[test]
fn block_splitting_does_not_change_a_single_sample() {
    let whole = perform(Choir::new(SR, BLOCK), 120_000, |n| n);
    let mut noise = noise::Noise::new(11);
    let random = perform(Choir::new(SR, BLOCK), 120_000, |n| {
        1 + ((noise.next() * 0.5 + 0.5) * n as f32) as usize
    });
    let ones = perform(Choir::new(SR, BLOCK), 30_000, |_| 1);
    for i in 0..whole.0.len() {
        assert_eq!(whole.0[i].to_bits(), random.0[i].to_bits(), "left {i}");
        assert_eq!(whole.1[i].to_bits(), random.1[i].to_bits(), "right {i}");
    }
    assert!(whole.0[..30_000] == ones.0[..] && whole.1[..30_000] == ones.1[..]);
    // Longer-than-max_block calls are split internally, identically.
    let mut a = Choir::new(SR, 64);
    let mut b = Choir::new(SR, BLOCK);
    for c in [&mut a, &mut b] {
        c.note_on(VoiceId::Voice3, 60, 100);
    }
    assert_eq!(render(&mut a, 5_000), render(&mut b, 5_000));
}

#[test]
fn tails_end_in_exact_zeros_without_subnormals() {
    let mut choir = Choir::new(SR, BLOCK);
    choir.set_reverb_mix(0.6);
    choir.set_reverb_size(1.0);
    for voice in VoiceId::ALL {
        choir.note_on(voice, 60, 127);
    }
    render(&mut choir, SR as usize);
    choir.all_notes_off();
    let mut seconds = 0;
    loop {
        let (l, r) = render(&mut choir, SR as usize);
        for &x in l.iter().chain(&r) {
            assert!(x == 0.0 || x.is_normal(), "subnormal output {x:e}");
        }
        seconds += 1;
        if l.iter().chain(&r).all(|&x| x == 0.0) {
            break;
        }
        assert!(seconds < 60, "the tail never ended");
    }
    assert!(choir.reverb.is_idle());
    for voice in VoiceId::ALL {
        assert_eq!(choir.builtin_sounding_notes(voice), 0);
    }
    assert!(
        choir
            .builtin
            .pools
            .iter()
            .flat_map(|p| p.notes.iter())
            .all(|n| !n.is_active())
    );
}

#[test]
fn pan_and_level_are_equal_power_and_exact() {
    let mut choir = Choir::new(SR, BLOCK);
    choir.set_reverb_mix(0.0);
    choir.set_pan(VoiceId::Voice1, -1.0);
    render(&mut choir, 9_600); // let the smoothers settle
    choir.note_on(VoiceId::Voice1, 69, 100);
    let (l, r) = render(&mut choir, SR as usize);
    assert!(rms(&l) > 0.01);
    assert!(r.iter().all(|&x| x == 0.0));
    // Centre: -3 dB each side relative to hard left.
    let mut centre = Choir::new(SR, BLOCK);
    centre.set_reverb_mix(0.0);
    centre.set_pan(VoiceId::Voice1, 0.0);
    render(&mut centre, 4_800);
    centre.note_on(VoiceId::Voice1, 69, 100);
    let (cl, cr) = render(&mut centre, SR as usize);
    assert_eq!(cl, cr);
    let ratio = rms(&cl) / rms(&l);
    assert!(
        (ratio - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-3,
        "{ratio}"
    );
    // Level 0 and master 0 silence.
    centre.set_level(VoiceId::Voice1, 0.0);
    render(&mut centre, 12_000);
    let (cl, _) = render(&mut centre, 4_800);
    assert!(cl.iter().all(|&x| x == 0.0));
    assert!((db_to_gain(-6.0) - 0.501).abs() < 1e-3);
    assert_eq!(db_to_gain(f32::NEG_INFINITY), 0.0);
}

#[test]
fn reverb_mix_zero_is_dry_and_bypassed() {
    let mut wet = Choir::new(SR, BLOCK);
    let mut dry = Choir::new(SR, BLOCK);
    dry.set_reverb_mix(0.0);
    wet.set_reverb_mix(0.5);
    for c in [&mut wet, &mut dry] {
        render(c, 4_800);
        c.note_on(VoiceId::Voice2, 60, 100);
    }
    let (wl, _) = render(&mut wet, SR as usize);
    let (dl, _) = render(&mut dry, SR as usize);
    assert!(dry.reverb.is_idle() && !wet.reverb.is_idle());
    assert!(wl != dl);
    // Turning it off clears the tail; turning it on again starts fresh.
    wet.set_reverb_mix(0.0);
    render(&mut wet, 12_000);
    assert!(wet.reverb.is_idle());
}

#[test]
fn bad_parameter_values_are_ignored_or_clamped() {
    let mut choir = Choir::new(SR, BLOCK);
    choir.set_level(VoiceId::Voice1, f32::NAN);
    choir.set_pan(VoiceId::Voice1, f32::INFINITY);
    choir.set_master_gain(1e9);
    choir.set_reverb_mix(-3.0);
    choir.set_reverb_size(f32::NAN);
    choir.set_envelope(
        VoiceId::Voice1,
        Adsr {
            attack: f32::NAN,
            decay: -1.0,
            sustain: 7.0,
            release: 0.0,
        },
    );
    choir.note_on(VoiceId::Voice1, 255, 255);
    choir.note_on(VoiceId::Voice1, 0, 1);
    let (l, r) = render(&mut choir, SR as usize);
    assert!(l.iter().chain(&r).all(|x| x.is_finite()));
    assert_eq!(choir.master_gain(), 4.0);
    assert_eq!(choir.reverb_mix(), 0.0);
    // Tiny and odd sample rates still work.
    for sr in [1_000.0, 11_025.0, 384_000.0, 0.0, f32::NAN] {
        let mut c = Choir::new(sr, 100);
        for v in VoiceId::ALL {
            c.note_on(v, 100, 100);
            c.note_on(v, 30, 100);
        }
        let (l, r) = render(&mut c, 3_000);
        assert!(
            l.iter().chain(&r).all(|x| x.is_finite() && x.abs() < 1.0),
            "{sr}"
        );
    }
}

#[test]
fn soundfont_voices_play_through_the_choir() {
    let Some(font) = timgm6mb() else { return };
    let player = SoundFontPlayer::from_bytes(&font, SR, BLOCK).unwrap();
    let mut choir = Choir::new(SR, BLOCK);
    choir.set_reverb_mix(0.0);
    assert!(choir.replace_soundfont(Some(player)).unwrap().is_none());
    choir.set_source(VoiceId::Voice1, Source::SoundFont);
    choir.set_pan(VoiceId::Voice1, 0.0);
    render(&mut choir, 4_800);
    choir.note_on(VoiceId::Voice1, 72, 100);
    let (l, r) = render(&mut choir, SR as usize);
    assert!(l.iter().chain(&r).all(|x| x.is_finite()));
    let level = rms(&l[4_800..]);
    assert!(
        level > 0.01 && peak(&l) < 1.0,
        "rms {level}, peak {}",
        peak(&l)
    );
    assert_eq!(choir.builtin_sounding_notes(VoiceId::Voice1), 0);
    let f = estimate_frequency(&l[9_600..], SR, timbre::note_frequency(72));
    assert!(
        (f / timbre::note_frequency(72) - 1.0).abs() < 0.01,
        "{f} Hz"
    );
    // Compare with the built-in flute's level, for the record.
    let mut builtin = Choir::new(SR, BLOCK);
    builtin.set_reverb_mix(0.0);
    builtin.set_pan(VoiceId::Voice1, 0.0);
    render(&mut builtin, 4_800);
    builtin.note_on(VoiceId::Voice1, 72, 100);
    let (bl, _) = render(&mut builtin, SR as usize);
    eprintln!(
        "flute C5 vel 100, rms: SoundFont {level:.3}, built-in {:.3}",
        rms(&bl[4_800..])
    );
    // A note started on the font is released there even after switching back.
    choir.set_source(VoiceId::Voice1, Source::BuiltIn);
    choir.note_off(VoiceId::Voice1, 72);
    render(&mut choir, 2 * SR as usize);
    let (l, _) = render(&mut choir, 4_800);
    assert!(peak(&l) < 1e-4, "SoundFont note hangs: {}", peak(&l));
    // Each voice's default program sounds.
    for voice in VoiceId::ALL {
        choir.set_source(voice, Source::SoundFont);
        choir.note_on(voice, if voice == VoiceId::Drone { 36 } else { 67 }, 100);
        let (l, r) = render(&mut choir, SR as usize);
        assert!(rms(&l).max(rms(&r)) > 0.005, "{voice:?} silent");
        choir.all_sound_off();
        render(&mut choir, BLOCK);
    }
}

#[test]
fn soundfont_output_is_independent_of_block_splits() {
    let Some(font) = timgm6mb() else { return };
    let make = || {
        let mut c = Choir::new(SR, BLOCK);
        let p = SoundFontPlayer::from_bytes(&font, SR, BLOCK).unwrap();
        c.replace_soundfont(Some(p)).unwrap();
        for v in VoiceId::ALL {
            c.set_source(v, Source::SoundFont);
        }
        c
    };
    let whole = perform(make(), 60_000, |n| n);
    let mut noise = noise::Noise::new(5);
    let random = perform(make(), 60_000, |n| {
        1 + ((noise.next() * 0.5 + 0.5) * n as f32) as usize
    });
    assert!(whole == random);
    assert!(rms(&whole.0) > 0.005);
}

#[test]
fn soundfont_for_another_rate_is_refused() {
    let Some(font) = timgm6mb() else { return };
    let p = SoundFontPlayer::from_bytes(&font, 44_100.0, BLOCK).unwrap();
    let mut choir = Choir::new(SR, BLOCK);
    assert!(choir.replace_soundfont(Some(p)).is_err());
    assert!(choir.soundfont().is_none());
}

/// `cargo test --release --lib synth::tests::bench -- --ignored --nocapture`
#[test]
#[ignore = "benchmark; run in release"]
fn bench_render_512_frames_all_voices() {
    let t = std::time::Instant::now();
    drop(std::hint::black_box(Choir::new(SR, BLOCK)));
    eprintln!(
        "Choir::new(48 kHz, 512): {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    // Cold: 64 MB read between blocks, as when a host runs other work between two calls
    // (what `process()` meets in real time); warm: blocks back to back.
    let evict = vec![1u8; 64 << 20];
    for (with_font, mix, cold) in [
        (false, 0.0, false),
        (false, 0.3, false),
        (false, 0.3, true),
        (true, 0.3, false),
    ] {
        let mut choir = Choir::new(SR, BLOCK);
        choir.set_reverb_mix(mix);
        if with_font {
            let Some(font) = timgm6mb() else { continue };
            let p = SoundFontPlayer::from_bytes(&font, SR, BLOCK).unwrap();
            choir.replace_soundfont(Some(p)).unwrap();
            for v in VoiceId::ALL {
                choir.set_source(v, Source::SoundFont);
            }
        }
        for (voice, notes) in [
            (VoiceId::Voice1, [84u8, 88]),
            (VoiceId::Voice2, [67, 72]),
            (VoiceId::Voice3, [60, 64]),
        ] {
            for n in notes {
                choir.note_on(voice, n, 100);
            }
        }
        choir.note_on(VoiceId::Drone, 36, 100);
        let mut l = vec![0.0; BLOCK];
        let mut r = vec![0.0; BLOCK];
        for _ in 0..100 {
            choir.render(&mut l, &mut r);
        }
        let mut times: Vec<f64> = (0..1_000)
            .map(|_| {
                if cold {
                    std::hint::black_box(
                        evict.iter().step_by(64).map(|&x| u64::from(x)).sum::<u64>(),
                    );
                }
                l.fill(0.0);
                r.fill(0.0);
                let t = std::time::Instant::now();
                choir.prefetch(BLOCK);
                choir.render(&mut l, &mut r);
                t.elapsed().as_secs_f64()
            })
            .collect();
        assert!(peak(&l) > 0.0);
        times.sort_by(f64::total_cmp);
        let budget = BLOCK as f64 / f64::from(SR);
        let (median, p99) = (times[500], times[990]);
        eprintln!(
            "{}, reverb mix {mix}{}: 512 frames @ 48 kHz, 7 notes: median {:.1} µs \
             ({:.2} % of {:.2} ms), p99 {:.1} µs ({:.2} %)",
            if with_font {
                "SoundFont (TimGM6mb)"
            } else {
                "built-in"
            },
            if cold { ", cold caches" } else { "" },
            median * 1e6,
            100.0 * median / budget,
            budget * 1e3,
            p99 * 1e6,
            100.0 * p99 / budget
        );
    }
}

#[test]
#[ignore = "benchmark; run in release"]
fn bench_timbres() {
    for timbre in Timbre::ALL {
        let mut synth = PolySynth::new(SR);
        synth.set_timbre(VoiceId::Voice1, timbre);
        synth.note_on(VoiceId::Voice1, 60, 100);
        let mut out = vec![0.0f32; BLOCK];
        for _ in 0..100 {
            synth.render_voice_mono(VoiceId::Voice1, &mut out);
        }
        let mut times: Vec<f64> = (0..2_000)
            .map(|_| {
                let t = std::time::Instant::now();
                synth.render_voice_mono(VoiceId::Voice1, &mut out);
                t.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        eprintln!(
            "{timbre:?}: {:.2} µs per 512, {:.1} ns/sample",
            times[1000] * 1e6,
            times[1000] * 1e9 / 512.0
        );
    }
    let mut r = Reverb::new(SR);
    let mut times: Vec<f64> = (0..2_000)
        .map(|i| {
            let t = std::time::Instant::now();
            let mut acc = 0.0;
            for n in 0..BLOCK {
                let (a, b) = r.process(if (n + i) % 100 == 0 { 0.5 } else { 0.01 });
                acc += a + b;
            }
            std::hint::black_box(acc);
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    eprintln!("reverb: {:.2} µs per 512", times[1000] * 1e6);
}

// The timbres of the weight pieces: acid bass, pluck, FM bass, drums; and controllers.

/// Fundamental to a fraction of a cent: the peak of the Hann-windowed spectrum within ±60 cents
/// of `guess`, found on a one-cent grid and refined on a 0.02-cent one.
fn precise_frequency(x: &[f32], sr: f32, guess: f32) -> f32 {
    let n = x.len();
    let w: Vec<f64> = (0..n)
        .map(|i| {
            let h = 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos();
            h * f64::from(x[i])
        })
        .collect();
    let power = |f: f64| {
        let step = std::f64::consts::TAU * f / f64::from(sr);
        let (c, s) = (step.cos(), step.sin());
        let (mut re, mut im, mut acc_re, mut acc_im) = (1.0f64, 0.0f64, 0.0, 0.0);
        for &v in &w {
            acc_re += v * re;
            acc_im += v * im;
            (re, im) = (re * c - im * s, re * s + im * c);
        }
        acc_re * acc_re + acc_im * acc_im
    };
    let at = |cents: f64| f64::from(guess) * 2f64.powf(cents / 1200.0);
    let best = |from: f64, to: f64, step: f64| {
        let mut best = (from, f64::MIN);
        let mut c = from;
        while c <= to {
            let p = power(at(c));
            if p > best.1 {
                best = (c, p);
            }
            c += step;
        }
        best.0
    };
    let coarse = best(-60.0, 60.0, 1.0);
    at(best(coarse - 1.0, coarse + 1.0, 0.02)) as f32
}

fn cents_off(f: f32, note: u8) -> f32 {
    1200.0 * (f / timbre::note_frequency(note)).log2()
}

/// High-frequency share: RMS of the first difference over RMS (rises with the spectral centroid).
fn brightness(x: &[f32]) -> f32 {
    let d: Vec<f32> = x.windows(2).map(|w| w[1] - w[0]).collect();
    rms(&d) / rms(x).max(1e-12)
}

fn synth_with(timbre: Timbre, sr: f32) -> PolySynth {
    let mut synth = PolySynth::new(sr);
    synth.set_timbre(VoiceId::Voice1, timbre);
    synth
}

const WEIGHT_TIMBRES: [Timbre; 4] = [
    Timbre::AcidBass,
    Timbre::Pluck,
    Timbre::FmBass,
    Timbre::Drums,
];

#[test]
fn pitched_weight_timbres_are_in_tune_within_five_cents() {
    for sr in [44_100.0, SR] {
        for timbre in [Timbre::Pluck, Timbre::AcidBass, Timbre::FmBass] {
            let notes: Vec<u8> = match timbre {
                Timbre::Pluck => (36..=96).step_by(5).chain([96]).collect(),
                _ => vec![24, 28, 36, 43, 48, 55, 60, 72],
            };
            for note in notes {
                let mut synth = synth_with(timbre, sr);
                synth.note_on(VoiceId::Voice1, note, 90);
                let out = render_mono(&mut synth, VoiceId::Voice1, (0.8 * sr) as usize);
                let tail = &out[(0.2 * sr) as usize..];
                let f = precise_frequency(tail, sr, timbre::note_frequency(note));
                let off = cents_off(f, note);
                assert!(off.abs() < 5.0, "{timbre:?} {note} @ {sr}: {off:.2} cents");
            }
        }
    }
}

#[test]
fn acid_slide_glides_without_reattack_and_belongs_to_the_new_key() {
    let v = VoiceId::Voice1;
    let window = |x: &[f32], at: f32| rms(&x[(at * SR) as usize..((at + 0.01) * SR) as usize]);
    // Slide: 36 held, 48 starts 0.3 s in, 36 ends 0.1 s later, 48 ends at 0.9 s.
    let mut slide = synth_with(Timbre::AcidBass, SR);
    slide.note_on(v, 36, 80);
    let mut out = render_mono(&mut slide, v, (0.3 * SR) as usize);
    slide.note_on(v, 48, 80);
    assert_eq!(slide.sounding_notes(v), 1, "a slide starts no new note");
    out.extend(render_mono(&mut slide, v, (0.1 * SR) as usize));
    slide.note_off(v, 36);
    out.extend(render_mono(&mut slide, v, (0.5 * SR) as usize));
    let before = precise_frequency(&out[4_800..14_400], SR, timbre::note_frequency(36));
    let after = precise_frequency(&out[21_600..43_200], SR, timbre::note_frequency(48));
    assert!(cents_off(before, 36).abs() < 5.0, "before: {before} Hz");
    assert!(cents_off(after, 48).abs() < 5.0, "after: {after} Hz");
    // The old key's note-off did not release it: it sounds on at the level it had.
    let held = window(&out, 0.38);
    assert!(
        window(&out, 0.85) > 0.5 * held,
        "released by the old key's note-off"
    );
    slide.note_off(v, 48);
    render_mono(&mut slide, v, (0.05 * SR) as usize);
    assert_eq!(slide.sounding_notes(v), 0, "the new key's note-off ends it");
    // No re-attack: the level just after the slide is no higher than just before it. A new
    // note at the same moment (after a note-off) jumps, which shows the measure can tell.
    let mut restrike = synth_with(Timbre::AcidBass, SR);
    restrike.note_on(v, 36, 80);
    let mut other = render_mono(&mut restrike, v, (0.3 * SR) as usize);
    restrike.note_off(v, 36);
    restrike.note_on(v, 48, 80);
    other.extend(render_mono(&mut restrike, v, (0.1 * SR) as usize));
    let (slid, struck) = (
        window(&out, 0.33) / window(&out, 0.285),
        window(&other, 0.33) / window(&other, 0.285),
    );
    assert!(slid < 1.05, "slide re-attacked: level ×{slid}");
    assert!(
        struck > 1.15 && struck > 1.3 * slid,
        "a new note re-attacks: ×{struck}"
    );
    let (slid_b, struck_b) = (
        brightness(&out[15_840..16_320]),
        brightness(&other[15_840..16_320]),
    );
    assert!(
        struck_b > 1.3 * slid_b,
        "filter envelope: {slid_b} vs {struck_b}"
    );
}

#[test]
fn acid_accent_is_louder_and_brighter() {
    let play = |velocity| {
        let mut synth = synth_with(Timbre::AcidBass, SR);
        synth.note_on(VoiceId::Voice1, 36, velocity);
        render_mono(&mut synth, VoiceId::Voice1, (0.15 * SR) as usize)
    };
    let (plain, accent) = (play(99), play(100));
    let onset = 0..(0.05 * SR) as usize;
    assert!(
        peak(&accent) > 1.3 * peak(&plain),
        "{} vs {}",
        peak(&accent),
        peak(&plain)
    );
    let (b0, b1) = (
        brightness(&plain[onset.clone()]),
        brightness(&accent[onset]),
    );
    assert!(b1 > 1.2 * b0, "accent brightness {b1} vs {b0}");
}

/// Energy of the harmonics of `f0` between `lo` and `hi` Hz over all of them below 10 kHz.
fn harmonic_band_share(x: &[f32], sr: f32, f0: f32, lo: f32, hi: f32) -> f64 {
    let power = |f: f64| {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (i, &v) in x.iter().enumerate() {
            let a = std::f64::consts::TAU * f * i as f64 / f64::from(sr);
            re += f64::from(v) * a.cos();
            im += f64::from(v) * a.sin();
        }
        re * re + im * im
    };
    let (mut band, mut total) = (0.0, 0.0);
    let mut k = 1;
    while k as f32 * f0 < 10_000.0 {
        let f = k as f32 * f0;
        let p = power(f64::from(f));
        total += p;
        if f >= lo && f <= hi {
            band += p;
        }
        k += 1;
    }
    band / total
}

#[test]
fn resonance_controller_raises_the_peak_at_the_cutoff() {
    let share = |resonance| {
        let mut synth = synth_with(Timbre::AcidBass, SR);
        synth.control_change(VoiceId::Voice1, CC_CUTOFF, 64);
        synth.control_change(VoiceId::Voice1, CC_RESONANCE, resonance);
        synth.note_on(VoiceId::Voice1, 36, 80);
        let out = render_mono(&mut synth, VoiceId::Voice1, (1.1 * SR) as usize);
        // The filter envelope has closed; the base cutoff of controller 64 is about 710 Hz.
        harmonic_band_share(&out[(1.0 * SR) as usize..], SR, 65.406, 560.0, 900.0)
    };
    let (dry, resonant) = (share(0), share(127));
    assert!(resonant > 4.0 * dry, "band share {dry:.4} → {resonant:.4}");
}

#[test]
fn cutoff_controller_reaches_sounding_notes_smoothly() {
    let v = VoiceId::Voice1;
    let mut synth = synth_with(Timbre::AcidBass, SR);
    synth.note_on(v, 36, 80);
    let dark = render_mono(&mut synth, v, SR as usize);
    synth.control_change(v, CC_CUTOFF, 127);
    let bright = render_mono(&mut synth, v, (0.2 * SR) as usize);
    assert!(brightness(&bright[4_800..]) > 2.0 * brightness(&dark[38_400..]));
    // Glides: no sample-to-sample jump bigger than the bright sound's own.
    let step = |x: &[f32]| {
        x.windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max)
    };
    let around = [&dark[dark.len() - 480..], &bright[..480]].concat();
    assert!(step(&around) <= 1.05 * step(&bright[4_800..]));
    assert_eq!(synth.controller(v, CC_CUTOFF), Some(127));
    assert_eq!(synth.controller(v, 7), None);
    // FM and pluck brightness follow the same controller.
    for timbre in [Timbre::FmBass, Timbre::Pluck] {
        let play = |value| {
            let mut s = synth_with(timbre, SR);
            s.control_change(v, CC_CUTOFF, value);
            s.note_on(v, 48, 90);
            brightness(&render_mono(&mut s, v, (0.3 * SR) as usize)[2_400..])
        };
        let (low, high) = (play(0), play(127));
        assert!(high > 1.3 * low, "{timbre:?}: {low} → {high}");
    }
}

#[test]
fn drum_keys_make_finite_hits_that_die_away() {
    for key in [35u8, 36, 38, 39, 40, 42, 44, 46, 49, 57] {
        let mut synth = synth_with(Timbre::Drums, SR);
        synth.note_on(VoiceId::Voice1, key, 110);
        let mut out = render_mono(&mut synth, VoiceId::Voice1, 10 * SR as usize);
        assert!(out.iter().all(|&x| x == 0.0 || x.is_normal()), "{key}");
        let p = peak(&out);
        assert!(p > 0.05 && p < 1.0, "{key}: peak {p}");
        let (start, later) = (rms(&out[..4_800]), rms(&out[72_000..76_800]));
        assert!(
            start > 3.0 * later,
            "{key}: not a hit ({start} then {later})"
        );
        assert_eq!(
            synth.sounding_notes(VoiceId::Voice1),
            0,
            "{key} still sounding"
        );
        out.truncate(SR as usize);
        // One-shot: a note-off right away changes nothing, bit for bit.
        let mut off = synth_with(Timbre::Drums, SR);
        off.note_on(VoiceId::Voice1, key, 110);
        off.note_off(VoiceId::Voice1, key);
        off.all_notes_off();
        assert!(
            render_mono(&mut off, VoiceId::Voice1, SR as usize) == out,
            "{key}"
        );
    }
}

#[test]
fn unknown_drum_keys_are_silent() {
    let mut synth = synth_with(Timbre::Drums, SR);
    for key in [0u8, 34, 37, 41, 45, 60, 127] {
        synth.note_on(VoiceId::Voice1, key, 127);
    }
    assert_eq!(synth.sounding_notes(VoiceId::Voice1), 0);
    let out = render_mono(&mut synth, VoiceId::Voice1, 4_800);
    assert!(out.iter().all(|&x| x == 0.0));
}

#[test]
fn closed_hat_chokes_open_hat() {
    let v = VoiceId::Voice1;
    let tail = |second: Option<u8>| {
        let mut synth = synth_with(Timbre::Drums, SR);
        synth.note_on(v, 46, 110);
        render_mono(&mut synth, v, (0.05 * SR) as usize);
        if let Some(key) = second {
            synth.note_on(v, key, 110);
        }
        let out = render_mono(&mut synth, v, (0.3 * SR) as usize);
        (rms(&out[(0.15 * SR) as usize..]), synth.sounding_notes(v))
    };
    let (open, _) = tail(None);
    let (choked, notes) = tail(Some(42));
    let (pedal, _) = tail(Some(44));
    let (with_snare, both) = tail(Some(38));
    assert!(open > 0.01, "{open}");
    assert!(
        choked < 0.05 * open && pedal < 0.05 * open,
        "{open} {choked} {pedal}"
    );
    assert!(
        with_snare > 0.5 * open && both == 2,
        "a snare does not choke the hat"
    );
    assert!(notes <= 1);
}

#[test]
fn pluck_rings_and_note_off_damps_it() {
    let v = VoiceId::Voice1;
    let mut synth = synth_with(Timbre::Pluck, SR);
    synth.note_on(v, 55, 100);
    let ring = render_mono(&mut synth, v, 2 * SR as usize);
    let (early, late) = (rms(&ring[..4_800]), rms(&ring[ring.len() - 4_800..]));
    assert!(
        late < 0.7 * early && late > 0.05 * early,
        "{early} → {late}"
    );
    synth.note_off(v, 55);
    render_mono(&mut synth, v, (0.3 * SR) as usize);
    assert_eq!(synth.sounding_notes(v), 0);
    // Velocity: brighter and louder.
    let play = |velocity| {
        let mut s = synth_with(Timbre::Pluck, SR);
        s.note_on(v, 55, velocity);
        render_mono(&mut s, v, (0.2 * SR) as usize)
    };
    let (soft, hard) = (play(30), play(127));
    assert!(brightness(&hard) > 1.3 * brightness(&soft));
    assert!(rms(&hard) > 2.0 * rms(&soft));
    // Below the line's lowest note (MIDI 24) a string sounds octaves up, in tune.
    let mut low = synth_with(Timbre::Pluck, SR);
    low.note_on(v, 12, 100);
    let out = render_mono(&mut low, v, SR as usize);
    let f = precise_frequency(&out[9_600..], SR, timbre::note_frequency(24));
    assert!(cents_off(f, 24).abs() < 5.0, "MIDI 12 plays at {f} Hz");
    // Unreleased, a string dies away by itself and its note ends.
    let mut s = synth_with(Timbre::Pluck, SR);
    s.note_on(v, 96, 100);
    render_mono(&mut s, v, 20 * SR as usize);
    assert_eq!(s.sounding_notes(v), 0);
}

#[test]
fn stolen_plucks_fade_with_their_own_string() {
    let v = VoiceId::Voice1;
    let mut synth = synth_with(Timbre::Pluck, SR);
    for i in 0..POLYPHONY as u8 {
        synth.note_on(v, 40 + 3 * i, 100);
        render_mono(&mut synth, v, 100);
    }
    let len = synth.pools[v.index()].line_len;
    let oldest = synth.pools[v.index()].lines[..len].to_vec();
    assert!(oldest.iter().any(|&x| x != 0.0));
    synth.note_on(v, 90, 100);
    // The stolen note's string went with it to the fade slot (the first one).
    let pool = &synth.pools[v.index()];
    assert!(pool.lines[POLYPHONY * len..(POLYPHONY + 1) * len] == oldest[..]);
    assert_eq!(synth.sounding_notes(v), POLYPHONY + 1);
    let out = render_mono(&mut synth, v, 4_800);
    assert!(out.iter().all(|x| x.is_finite() && x.abs() < 2.0));
    assert_eq!(synth.sounding_notes(v), POLYPHONY);
}

/// Every new timbre through sliding, extreme controllers, extreme notes and rates.
fn torture(synth: &mut PolySynth, timbre: Timbre, split: &mut impl FnMut() -> usize) -> Vec<f32> {
    let v = VoiceId::Voice2;
    synth.set_timbre(v, timbre);
    synth.set_acid_wave(v, AcidWave::Square);
    let mut out = Vec::new();
    let mut play = |synth: &mut PolySynth, frames: usize| {
        let mut done = 0;
        while done < frames {
            let n = split().clamp(1, frames - done);
            out.extend(render_mono(synth, v, n));
            done += n;
        }
    };
    let keys: [u8; 8] = if timbre == Timbre::Drums {
        [35, 36, 38, 39, 42, 46, 49, 44]
    } else {
        [0, 127, 24, 100, 36, 60, 12, 96]
    };
    for (i, &key) in keys.iter().enumerate() {
        let cc = if i % 2 == 0 { 0 } else { 127 };
        synth.control_change(v, CC_CUTOFF, cc);
        synth.control_change(v, CC_RESONANCE, 127 - cc);
        synth.note_on(v, key, if i % 3 == 0 { 127 } else { 60 });
        play(synth, 1_500);
        if i % 2 == 1 {
            synth.note_off(v, keys[i - 1]);
        }
        synth.control_change(v, CC_RESONANCE, 127);
        play(synth, 700);
    }
    synth.note_on(v, 36, 127);
    synth.control_change(v, CC_CUTOFF, 127);
    play(synth, 6_000);
    synth.all_notes_off();
    play(synth, 3_000);
    out
}

#[test]
fn weight_timbres_stay_finite_at_extreme_controllers_notes_and_rates() {
    for sr in [22_050.0, 44_100.0, 96_000.0, 192_000.0] {
        for timbre in WEIGHT_TIMBRES {
            let mut synth = PolySynth::new(sr);
            let out = torture(&mut synth, timbre, &mut || 512);
            assert!(
                out.iter()
                    .all(|&x| x == 0.0 || (x.is_normal() && x.abs() < 4.0)),
                "{timbre:?} @ {sr}: {}",
                peak(&out)
            );
            assert!(rms(&out) > 1e-3, "{timbre:?} @ {sr} silent");
        }
    }
}

#[test]
fn weight_timbres_are_deterministic_and_independent_of_block_splits() {
    for timbre in WEIGHT_TIMBRES {
        let whole = torture(&mut PolySynth::new(SR), timbre, &mut || BLOCK);
        let again = torture(&mut PolySynth::new(SR), timbre, &mut || BLOCK);
        let mut noise = noise::Noise::new(17);
        let mut random = || 1 + ((noise.next() * 0.5 + 0.5) * 200.0) as usize;
        let split = torture(&mut PolySynth::new(SR), timbre, &mut random);
        assert!(whole == again, "{timbre:?} not repeatable");
        assert_eq!(whole.len(), split.len());
        for (i, (a, b)) in whole.iter().zip(&split).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{timbre:?} differs at {i}");
        }
    }
}

#[test]
fn weight_timbres_peak_below_full_scale_through_the_choir() {
    for timbre in [Timbre::AcidBass, Timbre::Pluck, Timbre::FmBass] {
        for note in [24u8, 36, 48, 60, 72] {
            let mut choir = Choir::new(SR, BLOCK);
            choir.set_timbre(VoiceId::Voice2, timbre);
            choir.note_on(VoiceId::Voice2, note, 127);
            let (l, r) = render(&mut choir, SR as usize);
            let p = peak(&l).max(peak(&r));
            assert!(p < 1.0 && p > 0.02, "{timbre:?} {note}: {p}");
        }
    }
}

#[test]
fn the_choir_forwards_controllers_and_timbres() {
    let mut choir = Choir::new(SR, BLOCK);
    choir.set_timbre(VoiceId::Voice3, Timbre::AcidBass);
    assert_eq!(choir.timbre(VoiceId::Voice3), Timbre::AcidBass);
    choir.control_change(VoiceId::Voice3, CC_RESONANCE, 10);
    assert_eq!(
        choir.builtin.controller(VoiceId::Voice3, CC_RESONANCE),
        Some(10)
    );
    assert_eq!(
        choir.builtin.controller(VoiceId::Voice1, CC_RESONANCE),
        Some(64)
    );
    choir.set_acid_wave(VoiceId::Voice3, AcidWave::Square);
    assert_eq!(choir.acid_wave(VoiceId::Voice3), AcidWave::Square);
    // A square has (almost) no even harmonics; a saw has them all.
    let even_share = |wave| {
        let mut synth = synth_with(Timbre::AcidBass, SR);
        synth.set_acid_wave(VoiceId::Voice1, wave);
        synth.control_change(VoiceId::Voice1, CC_CUTOFF, 127);
        synth.control_change(VoiceId::Voice1, CC_RESONANCE, 0);
        synth.note_on(VoiceId::Voice1, 36, 80);
        let out = render_mono(&mut synth, VoiceId::Voice1, (0.5 * SR) as usize);
        harmonic_band_share(&out[12_000..], SR, 65.406, 120.0, 140.0)
    };
    assert!(even_share(AcidWave::Saw) > 10.0 * even_share(AcidWave::Square));
    // Through the SoundFont when the voice plays one.
    let Some(font) = timgm6mb() else { return };
    let player = SoundFontPlayer::from_bytes(&font, SR, BLOCK).unwrap();
    choir.replace_soundfont(Some(player)).unwrap();
    choir.set_source(VoiceId::Voice1, Source::SoundFont);
    choir.set_reverb_mix(0.0);
    choir.note_on(VoiceId::Voice1, 60, 100);
    let (loud, _) = render(&mut choir, 9_600);
    choir.control_change(VoiceId::Voice1, 7, 0);
    choir.control_change(VoiceId::Voice1, 0, 5);
    render(&mut choir, 9_600);
    let (quiet, _) = render(&mut choir, 4_800);
    assert!(rms(&quiet) < 0.1 * rms(&loud[4_800..]));
    assert_eq!(
        choir.builtin.controller(VoiceId::Voice1, CC_CUTOFF),
        Some(64)
    );
}

/// With `assert_process_allocs`, nice-plug's allocator aborts on any allocation inside
/// `assert_no_alloc` (without it, `tests/synth_no_alloc.rs` counts them instead).
#[cfg(feature = "assert_process_allocs")]
#[test]
fn weight_timbres_do_not_allocate_while_playing() {
    let mut choir = Choir::new(SR, BLOCK);
    let mut l = vec![0.0f32; BLOCK];
    let mut r = vec![0.0f32; BLOCK];
    nice_assert_no_alloc::assert_no_alloc(|| {
        for (voice, timbre) in VoiceId::ALL.into_iter().zip(WEIGHT_TIMBRES) {
            choir.set_timbre(voice, timbre);
            choir.set_acid_wave(voice, AcidWave::Square);
        }
        for i in 0..200u8 {
            for voice in VoiceId::ALL {
                choir.control_change(voice, CC_CUTOFF, i % 128);
                choir.control_change(voice, CC_RESONANCE, 127 - i % 128);
                choir.note_on(voice, 30 + i % 40, 60 + i % 60);
            }
            let n = 1 + (usize::from(i) * 37) % BLOCK;
            choir.render(&mut l[..n], &mut r[..n]);
            if i % 3 == 0 {
                choir.all_notes_off();
            }
        }
        choir.all_sound_off();
        choir.render(&mut l, &mut r);
    });
    assert!(l.iter().chain(&r).all(|x| x.is_finite()));
}

/// Amplitude of the sinusoid at `f` in `x` (Hann-windowed correlation).
fn amplitude_at(x: &[f32], f: f32) -> f32 {
    let n = x.len();
    let (mut re, mut im, mut wsum) = (0.0f64, 0.0f64, 0.0f64);
    for (t, &v) in x.iter().enumerate() {
        let w = 0.5 - 0.5 * (std::f64::consts::TAU * t as f64 / n as f64).cos();
        let angle = std::f64::consts::TAU * f64::from(f) * t as f64 / f64::from(SR);
        re += f64::from(v) * w * angle.cos();
        im += f64::from(v) * w * angle.sin();
        wsum += w;
    }
    (2.0 * (re * re + im * im).sqrt() / wsum) as f32
}

#[test]
fn a_spectral_voice_sounds_its_partials_and_releases_when_its_last_note_ends() {
    let mut choir = Choir::new(SR, BLOCK);
    choir.set_reverb_mix(0.0);
    choir.set_pan(VoiceId::Voice1, 0.0);
    choir.set_source(VoiceId::Voice1, Source::Spectral);
    choir.set_spectrum(VoiceId::Voice1, &[(440.0, 0.5, 0.0), (1000.0, 0.25, 1.0)]);
    choir.note_on(VoiceId::Voice1, 69, 127);
    choir.note_on(VoiceId::Voice1, 72, 127);
    let _ = render(&mut choir, 24_000);
    let (l, r) = render(&mut choir, 9_600);
    let at_440 = amplitude_at(&l, 440.0);
    let at_1000 = amplitude_at(&l, 1000.0);
    assert!(at_440 > 0.05, "440 Hz at {at_440}");
    assert!(
        (at_1000 / at_440 - 0.5).abs() < 0.1,
        "{at_1000} vs {at_440}"
    );
    assert!(
        amplitude_at(&l, 700.0) < at_440 * 0.01,
        "nothing between them"
    );
    assert!(amplitude_at(&r, 440.0) > 0.05);
    // Nothing sounds in the built-in synth for a Spectral voice.
    assert_eq!(choir.builtin_sounding_notes(VoiceId::Voice1), 0);

    // One of the two held notes ends: the partials go on; the last one ends: they fade out.
    choir.note_off(VoiceId::Voice1, 69);
    let (l, _) = render(&mut choir, 4_800);
    assert!(amplitude_at(&l, 440.0) > at_440 * 0.9);
    choir.note_off(VoiceId::Voice1, 72);
    // The amplitudes fall by one pole of 60 ms and snap to zero at -120 dB (13.8 time
    // constants, 0.83 s).
    let (tail, _) = render(&mut choir, 72_000);
    assert!(
        amplitude_at(&tail[19_200..24_000], 440.0) < at_440 * 0.01,
        "-40 dB in 0.4 s"
    );
    assert!(
        tail[48_000..].iter().all(|&v| v == 0.0),
        "silent after the fade"
    );
    assert!(tail.iter().all(|v| v.is_finite()));

    // A sound-off (reset, transport jump) does not wait for the glide.
    choir.note_on(VoiceId::Voice1, 69, 127);
    let _ = render(&mut choir, 9_600);
    choir.all_sound_off();
    let (gone, _) = render(&mut choir, 1_440);
    assert!(
        gone[960..].iter().all(|&v| v == 0.0),
        "silent 20 ms after a sound-off"
    );
    // The next note glides again.
    choir.note_on(VoiceId::Voice1, 69, 127);
    let (again, _) = render(&mut choir, 24_000);
    assert!(amplitude_at(&again[19_200..], 440.0) > at_440 * 0.9);
}
