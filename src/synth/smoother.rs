//! One-pole smoothing of gain parameters, so that a knob move or automation step never clicks.
//! Runs once per sample, so the result does not depend on how the host splits blocks.

/// Smoothing time constant of every gain parameter.
pub(crate) const SMOOTHING_SECONDS: f32 = 0.010;

/// Below this distance the smoother snaps to its target (-100 dB on a unit gain), so it settles in
/// finite time and never creeps through subnormal differences.
const SNAP: f32 = 1e-5;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Smoother {
    value: f32,
    target: f32,
    coeff: f32,
}

impl Smoother {
    pub(crate) fn new(sample_rate: f32, seconds: f32, value: f32) -> Self {
        let coeff = 1.0 - (-1.0 / (seconds * sample_rate).max(1.0)).exp();
        Self {
            value,
            target: value,
            coeff,
        }
    }

    /// Non-finite targets are ignored: a bad parameter value must not poison the output.
    pub(crate) fn set_target(&mut self, target: f32) {
        if target.is_finite() {
            self.target = target;
        }
    }

    pub(crate) fn target(&self) -> f32 {
        self.target
    }

    pub(crate) fn is_settled(&self) -> bool {
        self.value == self.target
    }

    #[inline]
    pub(crate) fn next(&mut self) -> f32 {
        if self.value != self.target {
            let next = self.value + (self.target - self.value) * self.coeff;
            // Snap when close, or when f32 rounding has stalled the approach.
            self.value = if next == self.value || (next - self.target).abs() < SNAP {
                self.target
            } else {
                next
            };
        }
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_exactly_and_ignores_nan() {
        let mut s = Smoother::new(48_000.0, SMOOTHING_SECONDS, 0.0);
        s.set_target(1.0);
        s.set_target(f32::NAN);
        let first = s.next();
        assert!(first > 0.0 && first < 0.01, "{first}");
        for _ in 0..48_000 {
            s.next();
        }
        assert!(s.is_settled());
        assert_eq!(s.next(), 1.0);
    }
}
