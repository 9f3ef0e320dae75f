//! Band-limited wavetables: additive synthesis done once, at construction, instead of per sample.
//!
//! Each spectrum is stored as a set of single-cycle tables, four per octave. The table for a band
//! holds only the harmonics that stay below Nyquist for the band's highest frequency (plus a
//! little headroom for vibrato and detune), so no note at any sample rate can alias, and a note
//! costs one interpolated table read per sample however many harmonics it has. Quarter-octave
//! bands mean the lowest note of a band still gets everything up to 84 % of Nyquist.

use std::f64::consts::TAU;

/// Samples per cycle. With at most `TABLE_LEN / 4` harmonics, linear interpolation images stay
/// below -70 dB.
pub(crate) const TABLE_LEN: usize = 2048;
/// One guard sample repeats the first so interpolation never wraps.
pub(crate) const STRIDE: usize = TABLE_LEN + 1;
const MAX_HARMONICS: usize = TABLE_LEN / 4;
/// Lower edge of band 0; lower notes use band 0.
const BASE_FREQ: f32 = 8.0;
const BANDS_PER_OCTAVE: f32 = 4.0;
/// Frequency modulation a note may add on top of its band (vibrato + detune ≈ 26 cents).
pub(crate) const MOD_HEADROOM: f32 = 1.015;
/// More bands than any sample rate needs (8 Hz · 2^16 = 524 kHz).
const MAX_BANDS: usize = 64;

/// The harmonic recipes of the built-in timbres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spectrum {
    Sine,
    /// Sine-ish: a strong fundamental with a little 2nd and 3rd harmonic.
    Flute,
    /// Odd harmonics dominant (a rounded square), a trace of the 2nd.
    Clarinet,
    /// All harmonics at 1/n.
    Saw,
    /// A pipe organ's principal stops: drawbars 8′, 4′, 2⅔′, 2′ (harmonics 1, 2, 3, 4) and a
    /// little 1⅗′ (5) and 1′ (8).
    Organ,
}

impl Spectrum {
    fn amplitude(self, n: usize) -> f64 {
        let nf = n as f64;
        match self {
            Spectrum::Sine => f64::from(n == 1),
            Spectrum::Flute => match n {
                1 => 1.0,
                2 => 0.22,
                3 => 0.09,
                4 => 0.035,
                5 => 0.012,
                _ => 0.0,
            },
            Spectrum::Clarinet => {
                if n % 2 == 1 {
                    1.0 / nf
                } else if n == 2 {
                    0.04
                } else {
                    0.0
                }
            }
            Spectrum::Saw => 1.0 / nf,
            Spectrum::Organ => match n {
                1 => 1.0,
                2 => 0.7,
                3 => 0.45,
                4 => 0.4,
                5 => 0.12,
                8 => 0.2,
                _ => 0.0,
            },
        }
    }
}

pub(crate) struct Wavetable {
    samples: Box<[f32]>,
    bands: usize,
}

impl std::fmt::Debug for Wavetable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wavetable")
            .field("bands", &self.bands)
            .finish_non_exhaustive()
    }
}

/// Upper frequency edge of band `b`.
fn band_top(b: usize) -> f64 {
    f64::from(BASE_FREQ) * 2f64.powf((b as f64 + 1.0) / f64::from(BANDS_PER_OCTAVE))
}

impl Wavetable {
    /// Allocates and computes every band; call off the audio thread.
    pub(crate) fn new(spectrum: Spectrum, sample_rate: f32) -> Self {
        let nyquist = 0.5 * f64::from(sample_rate.max(1.0));
        let harmonics = |b: usize| -> usize {
            let n = (nyquist / (band_top(b) * f64::from(MOD_HEADROOM))).floor();
            (n.max(0.0) as usize).min(MAX_HARMONICS)
        };
        let bands = (0..MAX_BANDS).take_while(|&b| harmonics(b) >= 1).count();

        let sine: Vec<f64> = (0..TABLE_LEN)
            .map(|i| (TAU * i as f64 / TABLE_LEN as f64).sin())
            .collect();
        let mut acc = vec![0.0f64; TABLE_LEN];
        let mut samples = vec![0.0f32; bands * STRIDE].into_boxed_slice();
        // From the top band down, each band is the one above plus the harmonics that now fit.
        let mut added = 0;
        for b in (0..bands).rev() {
            let top = harmonics(b);
            for n in added + 1..=top {
                let a = spectrum.amplitude(n);
                if a != 0.0 {
                    for (i, x) in acc.iter_mut().enumerate() {
                        *x += a * sine[(n * i) % TABLE_LEN];
                    }
                }
            }
            added = added.max(top);
            let table = &mut samples[b * STRIDE..(b + 1) * STRIDE];
            for (dst, &src) in table.iter_mut().zip(&acc) {
                *dst = src as f32;
            }
            table[TABLE_LEN] = table[0];
        }
        // One scale for all bands, so loudness does not jump between bands.
        let peak = samples.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        if peak > 0.0 {
            samples.iter_mut().for_each(|x| *x /= peak);
        }
        Self { samples, bands }
    }

    /// The band to play `freq` Hz from, or `None` when even its fundamental would alias.
    pub(crate) fn band_for(&self, freq: f32) -> Option<u32> {
        if freq.is_nan() || freq <= 0.0 {
            return None;
        }
        let b = (BANDS_PER_OCTAVE * (freq / BASE_FREQ).log2()).floor();
        let b = if b > 0.0 { b as usize } else { 0 };
        (b < self.bands).then_some(b as u32)
    }

    /// Linearly interpolated read; `phase` in cycles, [0, 1).
    #[cfg(test)]
    pub(crate) fn lookup(&self, band: u32, phase: f32) -> f32 {
        read(
            self.band(band),
            super::oscillator::to_fixed(f64::from(phase)),
        )
    }

    /// One band's table (with its guard sample), for reading many samples of one note.
    /// `band` must come from [`Wavetable::band_for`].
    #[inline]
    pub(crate) fn band(&self, band: u32) -> &[f32; STRIDE] {
        let start = band as usize * STRIDE;
        self.samples[start..start + STRIDE]
            .try_into()
            .expect("a band from band_for is inside the table")
    }
}

/// Bits of a fixed-point phase below the table index.
const FRACTION_BITS: u32 = 32 - TABLE_LEN.trailing_zeros();
const _: () = assert!(
    TABLE_LEN.is_power_of_two(),
    "the index is the phase's top bits"
);

/// Linearly interpolated read of one band at a fixed-point phase (2^32 is one cycle): the top
/// bits index the table, the rest interpolate.
#[inline]
pub(crate) fn read(band: &[f32; STRIDE], phase: u32) -> f32 {
    let i = (phase >> FRACTION_BITS) as usize;
    let frac = (phase & ((1 << FRACTION_BITS) - 1)) as f32 * (1.0 / (1u32 << FRACTION_BITS) as f32);
    let a = band[i];
    let b = band[i + 1];
    a + (b - a) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Amplitude of harmonic `n` in band `b`, by correlation with a sine.
    fn harmonic(table: &Wavetable, b: u32, n: usize) -> f64 {
        let mut acc = 0.0;
        for i in 0..TABLE_LEN {
            let x = f64::from(table.lookup(b, i as f32 / TABLE_LEN as f32));
            acc += x * (TAU * (n * i) as f64 / TABLE_LEN as f64).sin();
        }
        2.0 * acc / TABLE_LEN as f64
    }

    #[test]
    fn bands_stop_below_nyquist() {
        let sr = 48_000.0;
        let saw = Wavetable::new(Spectrum::Saw, sr);
        for freq in [30.0, 440.0, 2_637.0, 8_000.0, 15_000.0] {
            let b = saw.band_for(freq).unwrap();
            let top = band_top(b as usize);
            assert!(freq as f64 <= top * 1.0001);
            // The last harmonic present is below Nyquist even at the band's top with headroom.
            let mut last = 0;
            for n in 1..=(0.5 * sr as f64 / freq as f64) as usize + 3 {
                if harmonic(&saw, b, n).abs() > 1e-4 {
                    last = n;
                }
            }
            assert!(last >= 1);
            assert!(
                last as f64 * top * f64::from(MOD_HEADROOM) <= 0.5 * f64::from(sr),
                "{freq} Hz: harmonic {last} of band top {top}"
            );
            // And nothing that would fit was left out.
            assert!(
                last == MAX_HARMONICS
                    || (last + 1) as f64 * top * f64::from(MOD_HEADROOM) > 0.5 * f64::from(sr)
            );
        }
        assert_eq!(saw.band_for(23_900.0), None);
        assert_eq!(saw.band_for(f32::NAN), None);
        assert_eq!(saw.band_for(-1.0), None);
    }

    #[test]
    fn clarinet_is_odd_dominant_and_flute_is_sine_ish() {
        let clarinet = Wavetable::new(Spectrum::Clarinet, 48_000.0);
        let b = clarinet.band_for(200.0).unwrap();
        let h: Vec<f64> = (1..=6).map(|n| harmonic(&clarinet, b, n).abs()).collect();
        assert!(
            h[2] > 5.0 * h[1] && h[4] > 5.0 * h[3] && h[4] > 5.0 * h[5],
            "{h:?}"
        );
        let flute = Wavetable::new(Spectrum::Flute, 48_000.0);
        let b = flute.band_for(500.0).unwrap();
        let h: Vec<f64> = (1..=4).map(|n| harmonic(&flute, b, n).abs()).collect();
        assert!(
            h[1] < 0.3 * h[0] && h[2] < 0.15 * h[0] && h[2] > 0.0,
            "{h:?}"
        );
    }

    #[test]
    fn tiny_sample_rates_have_no_bands_above_nyquist() {
        let t = Wavetable::new(Spectrum::Saw, 1_000.0);
        assert!(t.band_for(400.0).is_some());
        assert_eq!(t.band_for(600.0), None);
        let t = Wavetable::new(Spectrum::Saw, 1.0);
        assert_eq!(t.band_for(8.0), None);
    }
}
