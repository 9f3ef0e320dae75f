//! A [`Score`] played offline into stereo samples: every track on a voice of a [`Choir`] (five
//! tracks per choir), through a General MIDI SoundFont when one is given (drums on its
//! percussion channel) or the built-in synth's sounds otherwise. Deterministic: the same score,
//! rate and font give the same samples.

use std::path::Path;

use crate::music::score::{BuiltInSound, DRUM_CHANNEL, Score};
use crate::synth::{Choir, SoundFontError, SoundFontPlayer, Source, Timbre, VoiceId};

/// Frames rendered per step between events.
const BLOCK: usize = 512;
/// Release after the score's end, in seconds.
pub const TAIL_SECONDS: f64 = 3.0;
/// Every render is scaled as a whole so its loudest sample is here (−1 dBFS): the pieces are
/// finished tracks, and the scale is the same whatever the tracks' number.
const PEAK: f32 = 0.891;

/// The built-in timbre that plays a track's sound.
pub fn timbre(sound: BuiltInSound) -> Timbre {
    match sound {
        BuiltInSound::Strings => Timbre::Strings,
        BuiltInSound::Flute => Timbre::Flute,
        BuiltInSound::Clarinet => Timbre::Clarinet,
        BuiltInSound::Organ => Timbre::Organ,
        BuiltInSound::Brass => Timbre::Drone,
        BuiltInSound::Pluck => Timbre::Pluck,
        BuiltInSound::AcidBass => Timbre::AcidBass,
        BuiltInSound::FmBass => Timbre::FmBass,
        BuiltInSound::Drums => Timbre::Drums,
    }
}

/// What came out.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub left: Vec<f32>,
    pub right: Vec<f32>,
    /// The mix's peak before it was scaled to −1 dBFS.
    pub peak_before: f32,
    pub sample_rate: u32,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Control(u8, u8),
    Off(u8),
    On(u8, u8),
}

/// Renders `score` at `sample_rate`, through the SoundFont at `font` if given.
pub fn render(
    score: &Score,
    sample_rate: u32,
    font: Option<&Path>,
) -> Result<Rendered, SoundFontError> {
    let rate = f64::from(sample_rate.max(1));
    let per_choir = VoiceId::COUNT;
    let choirs_needed = score.tracks.len().div_ceil(per_choir).max(1);
    let mut choirs = Vec::with_capacity(choirs_needed);
    for _ in 0..choirs_needed {
        let mut choir = Choir::new(sample_rate as f32, BLOCK);
        if let Some(path) = font {
            let player = SoundFontPlayer::load(path, sample_rate as f32, BLOCK)?;
            choir
                .replace_soundfont(Some(player))
                .map_err(|_| SoundFontError::UnsupportedSampleRate(sample_rate as f32))?;
        }
        choirs.push(choir);
    }
    let count = score.tracks.len();
    for (i, track) in score.tracks.iter().enumerate() {
        let choir = &mut choirs[i / per_choir];
        let voice = VoiceId::ALL[i % per_choir];
        let drums = track.channel == DRUM_CHANNEL;
        choir.set_timbre(voice, timbre(track.sound));
        choir.set_source(
            voice,
            if font.is_some() {
                Source::SoundFont
            } else {
                Source::BuiltIn
            },
        );
        choir.set_program(voice, track.program);
        choir.set_percussion(voice, drums);
        choir.set_level(voice, 1.0);
        // Spread the tracks over the stereo field; drums and basses stay in the middle.
        let centred = drums || matches!(track.sound, BuiltInSound::AcidBass | BuiltInSound::FmBass);
        let pan = if centred || count < 2 {
            0.0
        } else {
            -0.6 + 1.2 * i as f32 / (count - 1) as f32
        };
        choir.set_pan(voice, pan);
    }

    let sample = |beat: f64| (score.seconds_at(beat) * rate).round().max(0.0) as u64;
    // (sample, order, track, kind): controllers first, then offs, then ons at one sample.
    let mut events: Vec<(u64, u8, usize, Kind)> = Vec::new();
    for (t, track) in score.tracks.iter().enumerate() {
        for c in &track.controls {
            events.push((sample(c.beat), 0, t, Kind::Control(c.controller, c.value)));
        }
        for n in &track.notes {
            let on = sample(n.start);
            let off = sample(n.start + n.length).max(on + 1);
            events.push((on, 2, t, Kind::On(n.key, n.velocity)));
            events.push((off, 1, t, Kind::Off(n.key)));
        }
    }
    events.sort_by_key(|&(at, order, track, _)| (at, order, track));

    let total = sample(score.length) + (TAIL_SECONDS * rate) as u64;
    let mut left = vec![0.0f32; total as usize];
    let mut right = vec![0.0f32; total as usize];
    let mut scratch_l = vec![0.0f32; BLOCK];
    let mut scratch_r = vec![0.0f32; BLOCK];
    let mut cursor = 0u64;
    let mut next = 0;
    while cursor < total {
        while let Some(&(_, _, t, kind)) = events.get(next).filter(|e| e.0 <= cursor) {
            let choir = &mut choirs[t / per_choir];
            let voice = VoiceId::ALL[t % per_choir];
            match kind {
                Kind::Control(controller, value) => choir.control_change(voice, controller, value),
                Kind::Off(key) => choir.note_off(voice, key),
                Kind::On(key, velocity) => choir.note_on(voice, key, velocity),
            }
            next += 1;
        }
        let until = events.get(next).map_or(total, |e| e.0.min(total));
        let len = ((until - cursor) as usize).clamp(1, BLOCK);
        let at = cursor as usize;
        for choir in &mut choirs {
            let (l, r) = (&mut scratch_l[..len], &mut scratch_r[..len]);
            l.fill(0.0);
            r.fill(0.0);
            choir.render(l, r);
            for (out, v) in left[at..at + len].iter_mut().zip(l.iter()) {
                *out += v;
            }
            for (out, v) in right[at..at + len].iter_mut().zip(r.iter()) {
                *out += v;
            }
        }
        cursor += len as u64;
    }

    let peak =
        left.iter().chain(&right).fold(
            0.0f32,
            |p, v| if v.is_finite() { p.max(v.abs()) } else { p },
        );
    let gain = if peak > 0.0 { PEAK / peak } else { 1.0 };
    for v in left.iter_mut().chain(right.iter_mut()) {
        *v = if v.is_finite() { *v * gain } else { 0.0 };
    }
    Ok(Rendered {
        left,
        right,
        peak_before: peak,
        sample_rate,
    })
}
