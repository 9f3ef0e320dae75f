//! Per-voice MIDI controllers of the built-in synth: the raw values a voice last received, and
//! what they mean to the timbres that listen. Notes read them every chunk and glide toward them
//! (see each timbre), so a controller move never steps the sound.

/// Sound controller 5 (brightness): the acid filter's cutoff, the FM and pluck brightness.
pub const CC_CUTOFF: u8 = 74;
/// Sound controller 2 (timbre/harmonic content): the acid filter's resonance.
pub const CC_RESONANCE: u8 = 71;

/// Lowest and highest base cutoff of the acid filter, reached at controller values 0 and 127.
const CUTOFF_MIN_HZ: f32 = 60.0;
const CUTOFF_MAX_HZ: f32 = 8_000.0;

/// The oscillator of [`Timbre::AcidBass`](super::Timbre::AcidBass), as the 303's switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AcidWave {
    #[default]
    Saw,
    Square,
}

/// One voice's controller state. Both controllers start at the centre (64), where every
/// timbre sounds as designed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Controls {
    pub(crate) cutoff: u8,
    pub(crate) resonance: u8,
    pub(crate) acid_wave: AcidWave,
}

impl Default for Controls {
    fn default() -> Self {
        Self {
            cutoff: 64,
            resonance: 64,
            acid_wave: AcidWave::Saw,
        }
    }
}

impl Controls {
    /// Stores a controller value (clamped to 0..=127); controllers nobody listens to are ignored.
    pub(crate) fn set(&mut self, controller: u8, value: u8) {
        let value = value.min(127);
        match controller {
            CC_CUTOFF => self.cutoff = value,
            CC_RESONANCE => self.resonance = value,
            _ => {}
        }
    }

    /// The acid filter's base cutoff: exponential, so equal controller steps are equal intervals.
    pub(crate) fn cutoff_hz(&self) -> f32 {
        let x = f32::from(self.cutoff) / 127.0;
        CUTOFF_MIN_HZ * (CUTOFF_MAX_HZ / CUTOFF_MIN_HZ).powf(x)
    }

    /// Resonance 0..=1; 1 is just short of self-oscillation.
    pub(crate) fn resonance(&self) -> f32 {
        f32::from(self.resonance) / 127.0
    }

    /// A brightness factor, 1 at the centre, ×4 at 127 and ×¼ at 0 (two octaves each way).
    pub(crate) fn brightness(&self) -> f32 {
        ((f32::from(self.cutoff) - 64.0) / 32.0).exp2()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_span_their_ranges() {
        let mut c = Controls::default();
        assert_eq!(c.brightness(), 1.0);
        c.set(CC_CUTOFF, 0);
        c.set(CC_RESONANCE, 200);
        assert!((c.cutoff_hz() - CUTOFF_MIN_HZ).abs() < 0.01);
        assert_eq!(c.resonance(), 1.0);
        assert_eq!(c.brightness(), 0.25);
        c.set(CC_CUTOFF, 127);
        assert!((c.cutoff_hz() - CUTOFF_MAX_HZ).abs() < 1.0);
        c.set(7, 0);
        assert_eq!(c.cutoff, 127);
    }
}
