//! The FM bass ([`Timbre::FmBass`](super::Timbre::FmBass)): two sine operators, a modulator at
//! the carrier's frequency (ratio 1: every harmonic, a full bass) with a touch of feedback.
//!
//! The punch is the modulation index: it starts high (more with velocity) and decays with its
//! own envelope to a low sustained value, so the attack is bright and the body round. The
//! voice's brightness controller scales the index. The index is capped per note so the
//! sidebands that carry real energy (up to about index + 2 harmonics) stay below Nyquist.

use std::f32::consts::TAU;

use super::controls::Controls;
use super::filter::flush;
use super::oscillator::Phasor;
use super::timbre::Tables;
use super::wavetable::read;

/// Index at the attack, soft and hard, and the sustained index.
const INDEX_SOFT: f32 = 1.5;
const INDEX_HARD: f32 = 6.0;
const INDEX_SUSTAIN: f32 = 0.9;
/// Time constant of the index envelope.
const INDEX_SECONDS: f32 = 0.15;
/// Modulator self-feedback, radians per unit output.
const FEEDBACK: f32 = 0.5;
/// Controller smoothing time constant.
const CONTROL_SECONDS: f32 = 0.01;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FmTone {
    carrier: Phasor,
    modulator: Phasor,
    /// The sine table's band (every band holds the one sine); `None` above Nyquist.
    band: Option<u32>,
    peak: f32,
    env: f32,
    env_decay: f32,
    max_index: f32,
    brightness: f32,
    control_coeff: f32,
    /// The modulator's last two outputs, averaged for its feedback (which keeps it stable).
    prev: [f32; 2],
    gain: f32,
}

/// Cycles (any size) to a fixed-point phase offset, wrapping.
#[inline]
fn phase_offset(cycles: f32) -> u32 {
    (cycles * 4_294_967_296.0) as i64 as u32
}

impl FmTone {
    pub(crate) fn new(
        tables: &Tables,
        controls: &Controls,
        freq: f32,
        velocity: u8,
        sample_rate: f32,
        gain: f32,
    ) -> Self {
        let v = f32::from(velocity.min(127)) / 127.0;
        Self {
            carrier: Phasor::new(freq, sample_rate, 0.0),
            modulator: Phasor::new(freq, sample_rate, 0.0),
            band: tables.sine.band_for(freq),
            peak: INDEX_SOFT + (INDEX_HARD - INDEX_SOFT) * v,
            env: 1.0,
            env_decay: (-1.0 / (INDEX_SECONDS * sample_rate).max(1.0)).exp(),
            max_index: (0.45 * sample_rate / freq - 2.0).max(0.0),
            brightness: controls.brightness(),
            control_coeff: 1.0 - (-1.0 / (CONTROL_SECONDS * sample_rate).max(1.0)).exp(),
            prev: [0.0; 2],
            gain,
        }
    }

    /// A re-struck note: the index envelope starts over.
    pub(crate) fn restart(&mut self) {
        self.env = 1.0;
    }

    pub(crate) fn prefetch(&self, tables: &Tables) {
        if let Some(b) = self.band {
            super::prefetch::prefetch(tables.sine.band(b));
        }
    }

    pub(crate) fn fill(&mut self, tables: &Tables, controls: &Controls, out: &mut [f32]) {
        let Some(b) = self.band else {
            out.fill(0.0);
            return;
        };
        let sine = tables.sine.band(b);
        let brightness = controls.brightness();
        for o in out.iter_mut() {
            self.brightness += (brightness - self.brightness) * self.control_coeff;
            self.env = flush(self.env * self.env_decay);
            let index = ((INDEX_SUSTAIN + (self.peak - INDEX_SUSTAIN) * self.env)
                * self.brightness)
                .min(self.max_index);
            let fb = FEEDBACK * 0.5 * (self.prev[0] + self.prev[1]);
            let m = read(
                sine,
                self.modulator
                    .tick()
                    .wrapping_add(phase_offset(fb * (1.0 / TAU))),
            );
            self.prev = [m, self.prev[0]];
            let c = read(
                sine,
                self.carrier
                    .tick()
                    .wrapping_add(phase_offset(index * m * (1.0 / TAU))),
            );
            *o = c * self.gain;
        }
    }
}
