//! Band-limited resampling to the encoders' rate: a Blackman-windowed sinc with 32 zero
//! crossings a side. For the usual rates the ratio is a small fraction (48 kHz → 22.05 kHz is
//! 147/320) and every output phase has its own exact row of taps; other ratios use 1024
//! tabulated phases, interpolated. Plain scalar arithmetic in a fixed order, so every CPU gives
//! the same samples.

const ZERO_CROSSINGS: usize = 32;
const PHASES: usize = 1024;
/// Ratios whose reduced output side is at most this get exact phases.
const EXACT_PHASES: u32 = 4096;

pub struct Resampler {
    from: u32,
    to: u32,
    /// `Some(l)`: `l` exact phases (the output rate over the rates' gcd); `None`: interpolated.
    exact: Option<u32>,
    /// Rows of `2 · ZERO_CROSSINGS` taps: `l` exact ones, or `PHASES + 1` to interpolate.
    table: Vec<f32>,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Self {
        let cutoff = (f64::from(to) / f64::from(from)).min(1.0) * 0.97;
        let taps = 2 * ZERO_CROSSINGS;
        let reduced = to / gcd(from, to).max(1);
        let exact = (reduced <= EXACT_PHASES).then_some(reduced);
        let rows = exact.map_or(PHASES + 1, |l| l as usize);
        let mut table = vec![0.0f32; rows * taps];
        for phase in 0..rows {
            let fraction = match exact {
                Some(l) => phase as f64 / f64::from(l),
                None => phase as f64 / PHASES as f64,
            };
            for tap in 0..taps {
                // Distance from the output instant to input sample `tap`.
                let x = tap as f64 - (ZERO_CROSSINGS as f64 - 1.0) - fraction;
                let window_pos = (x / ZERO_CROSSINGS as f64 + 1.0) / 2.0;
                let window = if (0.0..=1.0).contains(&window_pos) {
                    let a = 2.0 * std::f64::consts::PI * window_pos;
                    0.42 - 0.5 * a.cos() + 0.08 * (2.0 * a).cos()
                } else {
                    0.0
                };
                let arg = std::f64::consts::PI * cutoff * x;
                let sinc = if x.abs() < 1e-12 {
                    1.0
                } else {
                    arg.sin() / arg
                };
                table[phase * taps + tap] = (cutoff * sinc * window) as f32;
            }
        }
        Self {
            from,
            to,
            exact,
            table,
        }
    }

    /// The whole signal at the new rate: `ceil(n · to / from)` samples.
    pub fn process(&self, input: &[f32]) -> Vec<f32> {
        if self.from == self.to {
            return input.to_vec();
        }
        // A zero rate (never a real input's) resamples to nothing rather than dividing by zero.
        if self.from == 0 || self.to == 0 {
            return Vec::new();
        }
        let taps = 2 * ZERO_CROSSINGS;
        let out_len =
            (input.len() as u64 * u64::from(self.to)).div_ceil(u64::from(self.from)) as usize;
        let mut output = Vec::with_capacity(out_len);
        let at = |i: isize| -> f32 {
            if i < 0 || i as usize >= input.len() {
                0.0
            } else {
                input[i as usize]
            }
        };
        let mut row = [0.0f32; 2 * ZERO_CROSSINGS];
        for n in 0..out_len {
            // Exact position in input samples, as a whole part and a fraction.
            let numerator = n as u64 * u64::from(self.from);
            let whole = (numerator / u64::from(self.to)) as isize;
            let remainder = numerator % u64::from(self.to);
            let taps_of = |phase: usize| &self.table[phase * taps..(phase + 1) * taps];
            let coefficients: &[f32] = match self.exact {
                Some(l) => taps_of((remainder * u64::from(l) / u64::from(self.to)) as usize),
                None => {
                    let scaled = remainder as f64 / f64::from(self.to) * PHASES as f64;
                    let phase = (scaled as usize).min(PHASES - 1);
                    let blend = (scaled - phase as f64) as f32;
                    let (a, b) = (taps_of(phase), taps_of(phase + 1));
                    for (r, (x, y)) in row.iter_mut().zip(a.iter().zip(b)) {
                        *r = x + (y - x) * blend;
                    }
                    &row
                }
            };
            let first = whole - (ZERO_CROSSINGS as isize - 1);
            let sum = if first >= 0 && first as usize + taps <= input.len() {
                let window = &input[first as usize..first as usize + taps];
                window.iter().zip(coefficients).map(|(x, c)| x * c).sum()
            } else {
                (0..taps)
                    .map(|tap| at(first + tap as isize) * coefficients[tap])
                    .sum()
            };
            output.push(sum);
        }
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, hz: f64, seconds: f64) -> Vec<f32> {
        (0..(f64::from(rate) * seconds) as usize)
            .map(|i| (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin() as f32)
            .collect()
    }

    #[test]
    fn a_tone_keeps_its_pitch_and_level_and_too_high_tones_vanish() {
        let resampler = Resampler::new(48_000, 22_050);
        let out = resampler.process(&sine(48_000, 440.0, 1.0));
        assert_eq!(out.len(), 22_050);
        let expected = sine(22_050, 440.0, 1.0);
        let middle = 1000..21_000;
        let error = out[middle.clone()]
            .iter()
            .zip(&expected[middle])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(error < 0.01, "max error {error}");
        let alias = resampler.process(&sine(48_000, 15_000.0, 1.0));
        let peak = alias[1000..21_000]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak < 0.01, "15 kHz above the new Nyquist leaks at {peak}");
    }
}
