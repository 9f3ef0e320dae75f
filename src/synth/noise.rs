//! Seeded white noise (xorshift32): the flute's breath. Seeded per note from the note's serial
//! number, so the same calls give the same noise, bit for bit.

#[derive(Debug, Clone, Copy)]
pub(crate) struct Noise {
    state: u32,
}

impl Default for Noise {
    fn default() -> Self {
        Self::new(0)
    }
}

impl Noise {
    pub(crate) fn new(seed: u64) -> Self {
        // SplitMix64 spreads nearby seeds (consecutive note serials) over the state space.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // xorshift must never hold zero.
        Self {
            state: (z as u32) | 1,
        }
    }

    /// Uniform in [-1, 1).
    #[inline]
    pub(crate) fn next(&mut self) -> f32 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        (x >> 8) as f32 * (2.0 / 16_777_216.0) - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_bounded_and_roughly_zero_mean() {
        let mut a = Noise::new(7);
        let mut b = Noise::new(7);
        let mut c = Noise::new(8);
        let mut sum = 0.0f64;
        let mut differs = false;
        for _ in 0..100_000 {
            let x = a.next();
            assert_eq!(x, b.next());
            differs |= x != c.next();
            assert!((-1.0..1.0).contains(&x));
            sum += f64::from(x);
        }
        assert!(differs);
        assert!((sum / 100_000.0).abs() < 0.01);
    }
}
