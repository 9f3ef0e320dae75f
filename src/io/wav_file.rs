//! The render's audio: a stereo WAV of 32-bit float samples (exactly what the engine computed,
//! no dither or clipping; every DAW and `soundfile`/`scipy` read it).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::WriteError;

/// A WAV being written, block by block.
pub struct WavSink {
    writer: hound::WavWriter<BufWriter<File>>,
    path: PathBuf,
}

impl WavSink {
    /// Creates (or truncates) `path` for stereo float audio at `sample_rate`.
    pub fn create(path: &Path, sample_rate: u32) -> Result<Self, WriteError> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let writer = hound::WavWriter::create(path, spec).map_err(|e| WriteError::new(path, e))?;
        Ok(Self {
            writer,
            path: path.to_owned(),
        })
    }

    /// Appends one block, interleaving `left` and `right`.
    pub fn write(&mut self, left: &[f32], right: &[f32]) -> Result<(), WriteError> {
        for (&l, &r) in left.iter().zip(right) {
            (self.writer.write_sample(l))
                .and_then(|()| self.writer.write_sample(r))
                .map_err(|e| WriteError::new(&self.path, e))?;
        }
        Ok(())
    }

    /// Completes the header and flushes.
    pub fn finish(self) -> Result<(), WriteError> {
        let path = self.path;
        self.writer
            .finalize()
            .map_err(|e| WriteError::new(&path, e))
    }
}
