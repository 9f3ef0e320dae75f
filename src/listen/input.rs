//! What `listen` reads: audio files, or standard input holding one or more files separated by
//! the ASCII file separator (0x1C). Anything that is not audio is read as raw 16-bit PCM
//! (little-endian, mono, 22.05 kHz), as the tool this follows does, with a warning.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::basic_pitch::SAMPLE_RATE;
use super::error::ListenError;
use crate::io::audio_file::{self, AudioFileError};

pub const FILE_SEPARATOR: u8 = 0x1C;

/// One input, decoded to mono.
#[derive(Debug, Clone, PartialEq)]
pub struct MonoInput {
    pub name: String,
    pub sample_rate: u32,
    pub samples: Vec<f32>,
    pub channels: usize,
    /// Not audio: read as raw 16-bit PCM.
    pub raw_pcm: bool,
    pub sha256: String,
}

/// Splits piped bytes into files. Audio data may contain 0x1C itself, so a separator counts
/// only where the next file starts (a RIFF/WAVE, FLAC, Ogg or ID3 header); a RIFF file's own
/// length field is trusted to skip over its data.
pub fn split_piped(bytes: &[u8]) -> Vec<&[u8]> {
    let starts_file = |rest: &[u8]| {
        [b"RIFF".as_slice(), b"fLaC", b"OggS", b"ID3"]
            .iter()
            .any(|magic| rest.starts_with(magic))
    };
    let mut files = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let rest = &bytes[start..];
        let mut search_from = 0;
        if rest.starts_with(b"RIFF") && rest.len() >= 8 {
            let size = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            search_from = (size + 8).min(rest.len());
        }
        let end = (search_from..rest.len())
            .find(|&i| {
                rest[i] == FILE_SEPARATOR
                    && (i + 1 == rest.len()
                        || starts_file(&rest[i + 1..])
                        || i == search_from && search_from > 0)
            })
            .unwrap_or(rest.len());
        if end > 0 {
            files.push(&rest[..end]);
        }
        start += end + 1;
    }
    files
}

/// Decodes one input; `warn` hears about a non-audio input read as raw PCM.
pub fn decode(
    name: &str,
    bytes: Vec<u8>,
    warn: &mut dyn FnMut(String),
) -> Result<MonoInput, ListenError> {
    if bytes.is_empty() {
        return Err(ListenError::Empty(name.to_owned()));
    }
    let sha256: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match audio_file::read_bytes(Path::new(name), bytes.clone()) {
        Ok(audio) => {
            let samples = audio
                .left
                .iter()
                .zip(&audio.right)
                .map(|(l, r)| (l + r) / 2.0)
                .collect();
            Ok(MonoInput {
                name: name.to_owned(),
                sample_rate: audio.sample_rate,
                samples,
                channels: audio.source_channels,
                raw_pcm: false,
                sha256,
            })
        }
        Err(AudioFileError::Unsupported { .. }) => {
            warn(format!(
                "{name}: not an audio format this build reads; reading it as raw 16-bit PCM (mono, {SAMPLE_RATE} Hz)"
            ));
            let samples: Vec<f32> = bytes
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
                .collect();
            if samples.is_empty() {
                return Err(ListenError::Empty(name.to_owned()));
            }
            Ok(MonoInput {
                name: name.to_owned(),
                sample_rate: SAMPLE_RATE,
                samples,
                channels: 1,
                raw_pcm: true,
                sha256,
            })
        }
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn riff(payload: &[u8]) -> Vec<u8> {
        let mut out = b"RIFF".to_vec();
        out.extend((payload.len() as u32 + 4).to_le_bytes());
        out.extend(b"WAVE");
        out.extend(payload);
        out
    }

    #[test]
    fn separators_inside_a_wav_do_not_split_it() {
        let a = riff(&[1, FILE_SEPARATOR, 2, FILE_SEPARATOR]);
        let b = riff(&[FILE_SEPARATOR, 7]);
        let mut piped = a.clone();
        piped.push(FILE_SEPARATOR);
        piped.extend(&b);
        piped.push(FILE_SEPARATOR);
        piped.extend(b"raw bytes");
        let files = split_piped(&piped);
        assert_eq!(
            files,
            vec![a.as_slice(), b.as_slice(), b"raw bytes".as_slice()]
        );
        assert_eq!(split_piped(b"just one"), vec![b"just one".as_slice()]);
        assert!(split_piped(b"").is_empty());
    }
}
