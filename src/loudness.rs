//! The music steers the model: K-weighted momentary loudness (ITU-R BS.1770 / EBU R128, 400 ms)
//! of the track, smoothed, and its rate of change mapped to the sampling temperature of the
//! next token.
//!
//! ```text
//!  audio ──add()──▶ LoudnessMeter (ebur128, momentary) ──lufs──▶ TemperatureCurve::tick(dt)
//!                                                              └─▶ {lufs, smoothed, velocity, temperature}
//! ```
//!
//! Both halves run on the audio thread in the plugin and in the same order in `latent-choir
//! analyze`/`render`, so the curve a file gives is the curve the plugin computes from the same
//! samples: the meter only depends on the samples added (not on how they were split into
//! blocks), and the curve only on the loudness at each token and the time between tokens.

use ebur128::{EbuR128, Mode};

/// Below this sample rate the K-weighting pre-filter (a 1.5 kHz shelf and a 38 Hz high-pass
/// designed by bilinear transform) is no longer stable; metering is bypassed.
pub const MIN_METERED_SAMPLE_RATE: f32 = 8_000.0;
/// What silence (and anything quieter) reads as, in LUFS.
pub const SILENCE_LUFS: f32 = -70.0;

/// Momentary loudness of a stereo signal. Allocates only in [`LoudnessMeter::new`]; adding
/// samples and reading the loudness do not allocate, so both may run on the audio thread.
pub struct LoudnessMeter {
    /// `None` when the sample rate is outside what K-weighting supports.
    meter: Option<EbuR128>,
    skipped_blocks: u64,
}

impl LoudnessMeter {
    pub fn new(sample_rate: f32) -> Self {
        let meter = (sample_rate.is_finite() && sample_rate >= MIN_METERED_SAMPLE_RATE)
            .then(|| EbuR128::new(2, sample_rate.round() as u32, Mode::M).ok())
            .flatten();
        Self {
            meter,
            skipped_blocks: 0,
        }
    }

    /// Whether loudness is measured at all (false below 8 kHz): without it the temperature
    /// stays at the curve's centre.
    pub fn is_metering(&self) -> bool {
        self.meter.is_some()
    }

    /// Adds a block of stereo samples (a mono source passes the same slice twice). A block
    /// holding NaN or infinite samples is skipped whole: one bad sample would otherwise poison
    /// the filter state for good.
    pub fn add(&mut self, left: &[f32], right: &[f32]) {
        let Some(meter) = &mut self.meter else { return };
        let len = left.len().min(right.len());
        let (left, right) = (&left[..len], &right[..len]);
        if left.iter().chain(right).any(|s| !s.is_finite()) {
            self.skipped_blocks += 1;
            return;
        }
        if meter.add_frames_planar_f32(&[left, right]).is_err() {
            self.skipped_blocks += 1;
        }
    }

    /// Momentary loudness (last 400 ms) in LUFS, floored at [`SILENCE_LUFS`]; `None` when not
    /// metering.
    pub fn momentary(&self) -> Option<f32> {
        let meter = self.meter.as_ref()?;
        let lufs = meter.loudness_momentary().unwrap_or(f64::NEG_INFINITY) as f32;
        Some(if lufs.is_finite() {
            lufs.max(SILENCE_LUFS)
        } else {
            SILENCE_LUFS
        })
    }

    /// Blocks skipped for non-finite samples since creation.
    pub fn skipped_blocks(&self) -> u64 {
        self.skipped_blocks
    }

    pub fn reset(&mut self) {
        if let Some(meter) = &mut self.meter {
            meter.reset();
        }
        self.skipped_blocks = 0;
    }
}

/// What drives the temperature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CurveMode {
    /// The rate of change of the smoothed loudness (the original audio-reactive work): any
    /// swell or drop heats the model up, a steady level lets it cool to `t_min`.
    #[default]
    Velocity,
    /// The smoothed loudness itself: quiet is `t_min`, loud is `t_max`.
    Level,
    /// A fixed temperature.
    Off,
}

impl CurveMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Velocity => "velocity",
            Self::Level => "level",
            Self::Off => "off",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Velocity, Self::Level, Self::Off]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// The curve's settings; plain values, read once per token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurveSettings {
    pub mode: CurveMode,
    pub t_min: f32,
    pub t_max: f32,
    /// Scales how strongly loudness (or its velocity) moves the temperature; 1 is the default
    /// response, 0 keeps the temperature at `t_min`.
    pub sensitivity: f32,
    /// Time constant of the one-pole loudness smoother, in seconds.
    pub smoothing: f32,
    /// The temperature in `Off` mode and whenever loudness cannot be measured.
    pub fixed: f32,
}

impl Default for CurveSettings {
    fn default() -> Self {
        Self {
            mode: CurveMode::Velocity,
            t_min: 0.4,
            t_max: 1.3,
            sensitivity: 1.0,
            smoothing: 0.4,
            fixed: 0.8,
        }
    }
}

/// Loudness velocity (LU/s) that, at sensitivity 1, takes the temperature ~76% of the way from
/// `t_min` to `t_max` (tanh(1)): a swell of 10 LU over a second is a big musical event.
const VELOCITY_SCALE: f32 = 10.0;
/// The loudness span `Level` mode maps onto [t_min, t_max] at sensitivity 1.
const LEVEL_FLOOR_LUFS: f32 = -50.0;
const LEVEL_CEILING_LUFS: f32 = -10.0;

/// One token's reading of the curve.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CurvePoint {
    /// Momentary loudness at the token (LUFS), [`SILENCE_LUFS`] when not metering.
    pub lufs: f32,
    /// After the one-pole smoother.
    pub smoothed: f32,
    /// Rate of change of the smoothed loudness, LU per second.
    pub velocity: f32,
    pub temperature: f32,
}

/// Smoother state between tokens.
#[derive(Debug, Clone, Default)]
pub struct TemperatureCurve {
    smoothed: Option<f32>,
}

impl TemperatureCurve {
    pub fn reset(&mut self) {
        self.smoothed = None;
    }

    /// Evaluates the curve for the next token. `lufs` is `None` when loudness is not measured
    /// (the temperature is then `settings.fixed`); `dt` is the time since the previous token in
    /// seconds.
    pub fn tick(&mut self, lufs: Option<f32>, dt: f32, settings: &CurveSettings) -> CurvePoint {
        let (t_lo, t_hi) = ordered(settings.t_min, settings.t_max);
        let fixed = finite_or(settings.fixed, 0.8).clamp(0.0, 10.0);
        let Some(lufs) = lufs.filter(|l| l.is_finite()) else {
            return CurvePoint {
                lufs: SILENCE_LUFS,
                smoothed: SILENCE_LUFS,
                velocity: 0.0,
                temperature: fixed,
            };
        };
        let dt = finite_or(dt, 0.0).max(0.0);
        let tau = finite_or(settings.smoothing, 0.0).max(0.0);
        let previous = self.smoothed.unwrap_or(lufs);
        let alpha = if tau <= 0.0 {
            1.0
        } else {
            1.0 - (-dt / tau).exp()
        };
        let smoothed = previous + alpha * (lufs - previous);
        self.smoothed = Some(smoothed);
        let velocity = if dt > 0.0 {
            (smoothed - previous) / dt
        } else {
            0.0
        };
        let sensitivity = finite_or(settings.sensitivity, 1.0).max(0.0);
        let amount = match settings.mode {
            CurveMode::Velocity => (sensitivity * velocity.abs() / VELOCITY_SCALE).tanh(),
            CurveMode::Level => {
                let level = (smoothed - LEVEL_FLOOR_LUFS) / (LEVEL_CEILING_LUFS - LEVEL_FLOOR_LUFS);
                (0.5 + sensitivity * (level - 0.5)).clamp(0.0, 1.0)
            }
            CurveMode::Off => {
                return CurvePoint {
                    lufs,
                    smoothed,
                    velocity,
                    temperature: fixed,
                };
            }
        };
        CurvePoint {
            lufs,
            smoothed,
            velocity,
            temperature: t_lo + (t_hi - t_lo) * amount,
        }
    }
}

/// The curve a whole recording gives at `tokens_per_second`: token `k` falls on sample
/// `ceil(k * sample_rate / tokens_per_second)` and reads the meter after every sample before it,
/// exactly as the plugin's free-running clock does. Token 0 is at the start (silence so far).
pub fn curve_over(
    left: &[f32],
    right: &[f32],
    sample_rate: f32,
    tokens_per_second: f32,
    settings: &CurveSettings,
) -> Vec<(f64, CurvePoint)> {
    let frames = left.len().min(right.len());
    if !(tokens_per_second.is_finite() && tokens_per_second > 0.0 && sample_rate > 0.0) {
        return Vec::new();
    }
    let step = f64::from(sample_rate) / f64::from(tokens_per_second);
    let mut meter = LoudnessMeter::new(sample_rate);
    let mut curve = TemperatureCurve::default();
    let mut points = Vec::new();
    let mut fed = 0;
    for k in 0.. {
        let at = (k as f64 * step).ceil() as usize;
        if at > frames {
            break;
        }
        meter.add(&left[fed..at], &right[fed..at]);
        let dt = (at - fed) as f32 / sample_rate;
        fed = at;
        let time = at as f64 / f64::from(sample_rate);
        points.push((time, curve.tick(meter.momentary(), dt, settings)));
    }
    points
}

fn finite_or(value: f32, fallback: f32) -> f32 {
    if value.is_finite() { value } else { fallback }
}

/// `[t_min, t_max]` put in order and inside [0, 10].
fn ordered(a: f32, b: f32) -> (f32, f32) {
    let a = finite_or(a, 0.4).clamp(0.0, 10.0);
    let b = finite_or(b, 1.3).clamp(0.0, 10.0);
    (a.min(b), a.max(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(sample_rate: f32, seconds: f32, dbfs: f32) -> Vec<f32> {
        let amplitude = 10f32.powf(dbfs / 20.0);
        (0..(sample_rate * seconds) as usize)
            .map(|i| amplitude * (std::f32::consts::TAU * 1000.0 * i as f32 / sample_rate).sin())
            .collect()
    }

    #[test]
    fn a_1khz_sine_at_minus_23_dbfs_reads_minus_23_lufs() {
        for rate in [44_100.0, 48_000.0, 96_000.0] {
            let signal = sine(rate, 1.0, -23.0);
            let mut meter = LoudnessMeter::new(rate);
            meter.add(&signal, &signal);
            let lufs = meter.momentary().expect("metering");
            assert!((lufs + 23.0).abs() <= 0.1, "{rate} Hz: {lufs} LUFS");
        }
    }

    #[test]
    fn block_splits_do_not_change_the_reading() {
        let signal = sine(48_000.0, 0.9, -17.0);
        let mut whole = LoudnessMeter::new(48_000.0);
        whole.add(&signal, &signal);
        let mut split = LoudnessMeter::new(48_000.0);
        let mut at = 0;
        for size in [1, 511, 4096, 3, 777].iter().cycle() {
            if at >= signal.len() {
                break;
            }
            let end = (at + size).min(signal.len());
            split.add(&signal[at..end], &signal[at..end]);
            at = end;
        }
        assert_eq!(whole.momentary(), split.momentary());
    }

    #[test]
    fn silence_floors_and_bad_input_is_skipped() {
        let mut meter = LoudnessMeter::new(48_000.0);
        meter.add(&[0.0; 4800], &[0.0; 4800]);
        assert_eq!(meter.momentary(), Some(SILENCE_LUFS));
        meter.add(&[f32::NAN; 64], &[0.0; 64]);
        meter.add(&[0.0; 64], &[f32::INFINITY; 64]);
        assert_eq!(meter.skipped_blocks(), 2);
        assert_eq!(meter.momentary(), Some(SILENCE_LUFS));
        let low = LoudnessMeter::new(4_000.0);
        assert!(!low.is_metering());
        assert_eq!(low.momentary(), None);
        assert!(!LoudnessMeter::new(f32::NAN).is_metering());
    }

    /// Feeds 10 tokens/s of a signal that steps up by 20 dB after 3 s; returns the curve.
    fn step_response(settings: &CurveSettings, step_db: f32) -> Vec<CurvePoint> {
        let rate = 48_000.0;
        let quiet = sine(rate, 3.0, -40.0);
        let loud = sine(rate, 5.0, -40.0 + step_db);
        let signal: Vec<f32> = quiet.into_iter().chain(loud).collect();
        let mut meter = LoudnessMeter::new(rate);
        let mut curve = TemperatureCurve::default();
        signal
            .chunks(4_800)
            .map(|chunk| {
                meter.add(chunk, chunk);
                curve.tick(meter.momentary(), 0.1, settings)
            })
            .collect()
    }

    #[test]
    fn a_20_db_step_spikes_the_velocity_and_the_temperature_then_settles() {
        let settings = CurveSettings::default();
        let up = step_response(&settings, 20.0);
        let down = step_response(&settings, -20.0);
        let peak_up = up.iter().map(|p| p.velocity).fold(f32::MIN, f32::max);
        let peak_down = down.iter().map(|p| p.velocity).fold(f32::MAX, f32::min);
        assert!(peak_up > 5.0, "rise gives a positive spike: {peak_up} LU/s");
        assert!(
            peak_down < -5.0,
            "fall gives a negative spike: {peak_down} LU/s"
        );
        for point in up.iter().chain(&down) {
            assert!(point.temperature >= settings.t_min && point.temperature <= settings.t_max);
        }
        let hottest = up.iter().map(|p| p.temperature).fold(f32::MIN, f32::max);
        assert!(hottest > settings.t_min + 0.5 * (settings.t_max - settings.t_min));
        // Steady before the step (once the 400 ms window is full) and long after it: calm.
        for point in [&up[20], up.last().expect("points")] {
            assert!(
                (point.temperature - settings.t_min).abs() < 0.02,
                "steady input settles to the calm temperature: {point:?}"
            );
        }
    }

    #[test]
    fn level_and_off_modes() {
        let level = CurveSettings {
            mode: CurveMode::Level,
            ..CurveSettings::default()
        };
        let points = step_response(&level, 20.0);
        let (before, after) = (
            points[25].temperature,
            points.last().expect("points").temperature,
        );
        assert!(
            after > before,
            "louder is hotter in level mode: {before} -> {after}"
        );
        let off = CurveSettings {
            mode: CurveMode::Off,
            ..CurveSettings::default()
        };
        assert!(
            step_response(&off, 20.0)
                .iter()
                .all(|p| p.temperature == off.fixed)
        );
        let mut curve = TemperatureCurve::default();
        assert_eq!(curve.tick(None, 0.1, &level).temperature, level.fixed);
    }

    #[test]
    fn the_curve_over_a_recording_has_one_point_per_token() {
        let signal = sine(48_000.0, 2.0, -20.0);
        let points = curve_over(&signal, &signal, 48_000.0, 4.0, &CurveSettings::default());
        assert_eq!(points.len(), 9);
        assert_eq!(points[0].0, 0.0);
        assert_eq!(points[8].0, 2.0);
        assert_eq!(points[0].1.lufs, SILENCE_LUFS);
        assert!((points[8].1.lufs + 20.0).abs() < 0.2, "{:?}", points[8]);
        assert!(curve_over(&signal, &signal, 48_000.0, 0.0, &CurveSettings::default()).is_empty());
    }

    #[test]
    fn nonsense_settings_stay_in_range() {
        let settings = CurveSettings {
            t_min: 3.0,
            t_max: f32::NAN,
            sensitivity: f32::INFINITY,
            smoothing: -1.0,
            ..CurveSettings::default()
        };
        let mut curve = TemperatureCurve::default();
        for (i, lufs) in [-70.0, -10.0, f32::NAN, -30.0].into_iter().enumerate() {
            let point = curve.tick(Some(lufs), i as f32 * 0.1, &settings);
            assert!(point.temperature.is_finite() && (0.0..=10.0).contains(&point.temperature));
        }
    }
}
