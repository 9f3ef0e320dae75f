//! Test signals, a seeded random source, and checks on what the plugin outputs.

/// A sine at `freq` Hz sampled at `rate`.
pub fn sine(freq: f64, rate: f64, frames: usize, amplitude: f32) -> Vec<f32> {
    (0..frames)
        .map(|i| amplitude * (std::f64::consts::TAU * freq * i as f64 / rate).sin() as f32)
        .collect()
}

/// Every sample finite and no subnormals: what a host must always get.
pub fn assert_clean(channels: &[Vec<f32>]) {
    for (c, channel) in channels.iter().enumerate() {
        for (i, x) in channel.iter().enumerate() {
            assert!(x.is_finite(), "channel {c} sample {i} is {x}");
            assert!(
                !x.is_subnormal(),
                "channel {c} sample {i} is subnormal ({x:e})"
            );
        }
    }
}

/// xorshift64*: tiny, seeded, the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Writes interleaved-from-planar stereo as a 32-bit float WAV, the simplest file every
/// decoder reads, so tests can hand audio to the CLI.
pub fn write_wav(path: &std::path::Path, rate: u32, left: &[f32], right: &[f32]) {
    let frames = left.len().min(right.len());
    let data_bytes = (frames * 8) as u32;
    let mut out = Vec::with_capacity(44 + data_bytes as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_bytes).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 8).to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_bytes.to_le_bytes());
    for i in 0..frames {
        out.extend_from_slice(&left[i].to_le_bytes());
        out.extend_from_slice(&right[i].to_le_bytes());
    }
    std::fs::write(path, out).expect("write the test WAV");
}
