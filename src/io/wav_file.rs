//! The render's audio: a stereo WAV of 32-bit float samples (exactly what the engine computed,
//! no dither or clipping; every DAW and `soundfile`/`scipy` read it).

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

/// A WAV being written, block by block.
pub struct WavSink {
    writer: hound::WavWriter<BufWriter<File>>,
}

impl WavSink {
    /// Creates (or truncates) `path` for stereo float audio at `sample_rate`.
    pub fn create(path: &Path, sample_rate: u32) -> Result<Self, String> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let writer = hound::WavWriter::create(path, spec)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Self { writer })
    }

    /// Appends one block, interleaving `left` and `right`.
    pub fn write(&mut self, left: &[f32], right: &[f32]) -> Result<(), String> {
        for (&l, &r) in left.iter().zip(right) {
            self.writer.write_sample(l).map_err(|e| e.to_string())?;
            self.writer.write_sample(r).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Completes the header and flushes.
    pub fn finish(self) -> Result<(), String> {
        self.writer.finalize().map_err(|e| e.to_string())
    }
}
