//! Reading a song to steer the model with: WAV, FLAC, MP3 and Ogg Vorbis through `symphonia`,
//! decoded whole into stereo f32 (songs are minutes long: tens of MB, fine for a CLI).

use std::fs::File;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as DecodeError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// Decoded audio, as a stereo track would play it.
#[derive(Debug, Clone, PartialEq)]
pub struct StereoAudio {
    pub sample_rate: u32,
    pub left: Vec<f32>,
    pub right: Vec<f32>,
    /// Channels in the file: 1 is played on both sides (as a DAW plays a mono clip on a stereo
    /// track), more than 2 keep only the first two (front left and right).
    pub source_channels: usize,
}

impl StereoAudio {
    pub fn frames(&self) -> usize {
        self.left.len()
    }

    pub fn seconds(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate.max(1))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AudioFileError {
    #[error("{0}: no such file")]
    NotFound(PathBuf),
    #[error("{path}: cannot read: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: not an audio file this build reads (WAV, FLAC, MP3, Ogg Vorbis): {message}")]
    Unsupported { path: PathBuf, message: String },
    #[error("{path}: the audio is damaged: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{0}: the file holds no audio")]
    Empty(PathBuf),
}

/// Reads and decodes a whole file. Damaged packets in the middle are skipped (as players do);
/// a file that yields no audio at all is an error.
pub fn read(path: &Path) -> Result<StereoAudio, AudioFileError> {
    let owned = || path.to_path_buf();
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => AudioFileError::NotFound(owned()),
        _ => AudioFileError::Io {
            path: owned(),
            message: e.to_string(),
        },
    })?;
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(AudioFileError::Io {
            path: owned(),
            message: "is a directory".into(),
        });
    }
    decode(path, Box::new(file))
}

/// Decodes audio held in memory (a file piped to standard input); `name` labels errors and
/// its extension, if any, hints the format.
pub fn read_bytes(name: &Path, bytes: Vec<u8>) -> Result<StereoAudio, AudioFileError> {
    if bytes.is_empty() {
        return Err(AudioFileError::Empty(name.to_path_buf()));
    }
    decode(name, Box::new(std::io::Cursor::new(bytes)))
}

fn decode(
    path: &Path,
    source: Box<dyn symphonia::core::io::MediaSource>,
) -> Result<StereoAudio, AudioFileError> {
    let owned = || path.to_path_buf();
    let unsupported = |message: String| AudioFileError::Unsupported {
        path: owned(),
        message,
    };
    let corrupt = |message: String| AudioFileError::Corrupt {
        path: owned(),
        message,
    };
    let mut hint = Hint::new();
    if let Some(extension) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(extension);
    }
    let stream = MediaSourceStream::new(source, Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| unsupported(e.to_string()))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| unsupported("no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| unsupported("no audio codec parameters".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| unsupported(e.to_string()))?;

    let mut audio = StereoAudio {
        sample_rate: 0,
        left: Vec::new(),
        right: Vec::new(),
        source_channels: 0,
    };
    let mut interleaved: Vec<f32> = Vec::new();
    let mut last_error = None;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A truncated file ends in an I/O error: keep what was decoded.
            Err(DecodeError::IoError(e)) => {
                last_error = Some(e.to_string());
                break;
            }
            Err(e) => {
                last_error = Some(e.to_string());
                break;
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            Err(DecodeError::DecodeError(e)) => {
                last_error = Some(e.to_string());
                continue;
            }
            Err(e) => {
                last_error = Some(e.to_string());
                break;
            }
        };
        let spec = buffer.spec();
        let (rate, channels) = (spec.rate(), spec.channels().count());
        if channels == 0 || rate == 0 {
            return Err(corrupt(
                "a packet with no channels or no sample rate".into(),
            ));
        }
        if audio.sample_rate == 0 {
            audio.sample_rate = rate;
            audio.source_channels = channels;
        } else if (audio.sample_rate, audio.source_channels) != (rate, channels) {
            return Err(corrupt(format!(
                "the format changes mid-stream ({} Hz × {} → {rate} Hz × {channels})",
                audio.sample_rate, audio.source_channels
            )));
        }
        interleaved.resize(buffer.samples_interleaved(), 0.0);
        buffer.copy_to_slice_interleaved(&mut interleaved[..]);
        for frame in interleaved.chunks_exact(channels) {
            let left = sanitize(frame[0]);
            let right = if channels == 1 {
                left
            } else {
                sanitize(frame[1])
            };
            audio.left.push(left);
            audio.right.push(right);
        }
    }
    if audio.left.is_empty() {
        return Err(match last_error {
            Some(message) => corrupt(message),
            None => AudioFileError::Empty(owned()),
        });
    }
    Ok(audio)
}

/// Decoders can produce NaN from damaged data; it reads as silence.
fn sanitize(sample: f32) -> f32 {
    if sample.is_finite() { sample } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-bit PCM WAV file, written by hand so the reader is tested against the format, not
    /// against our own writer.
    fn wav(channels: u16, rate: u32, frames: &[Vec<i16>]) -> Vec<u8> {
        let data: Vec<u8> = frames
            .iter()
            .flat_map(|f| f.iter().flat_map(|s| s.to_le_bytes()))
            .collect();
        let mut out = Vec::new();
        out.extend(b"RIFF");
        out.extend((36 + data.len() as u32).to_le_bytes());
        out.extend(b"WAVEfmt ");
        out.extend(16u32.to_le_bytes());
        out.extend(1u16.to_le_bytes());
        out.extend(channels.to_le_bytes());
        out.extend(rate.to_le_bytes());
        out.extend((rate * u32::from(channels) * 2).to_le_bytes());
        out.extend((channels * 2).to_le_bytes());
        out.extend(16u16.to_le_bytes());
        out.extend(b"data");
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
        out
    }

    fn write(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("latent-choir-audio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    }

    #[test]
    fn reads_stereo_mono_and_multichannel_wav() {
        let stereo = write(
            "stereo.wav",
            &wav(2, 44_100, &vec![vec![16_384, -16_384]; 100]),
        );
        let audio = read(&stereo).expect("stereo");
        assert_eq!(
            (audio.sample_rate, audio.frames(), audio.source_channels),
            (44_100, 100, 2)
        );
        assert!((audio.left[0] - 0.5).abs() < 1e-3 && (audio.right[0] + 0.5).abs() < 1e-3);

        let mono = write("mono.wav", &wav(1, 8_000, &vec![vec![8_192]; 50]));
        let audio = read(&mono).expect("mono");
        assert_eq!(audio.left, audio.right);
        assert_eq!(audio.source_channels, 1);

        let surround = write(
            "six.wav",
            &wav(6, 48_000, &vec![vec![1, 2, 3, 4, 5, 6]; 10]),
        );
        let audio = read(&surround).expect("5.1");
        assert_eq!(audio.source_channels, 6);
        assert!(audio.left[0] < audio.right[0]);
    }

    #[test]
    fn bad_files_are_errors_not_panics() {
        let missing = std::env::temp_dir().join("latent-choir-no-such-song.wav");
        assert!(matches!(read(&missing), Err(AudioFileError::NotFound(_))));
        let text = write(
            "notes.wav",
            b"these are not the samples you are looking for",
        );
        assert!(matches!(
            read(&text),
            Err(AudioFileError::Unsupported { .. })
        ));
        let empty = write("empty.wav", &wav(2, 48_000, &[]));
        assert!(read(&empty).is_err());
        let zero = write("zero.wav", &[]);
        assert!(read(&zero).is_err());
        let whole = wav(2, 48_000, &vec![vec![1000, -1000]; 1000]);
        for cut in [10, 44, 45, 1001] {
            let truncated = write(&format!("cut{cut}.wav"), &whole[..cut]);
            // Either what survives, or a clear error; never a panic.
            if let Ok(audio) = read(&truncated) {
                assert!(audio.frames() < 1000);
            }
        }
        let mut garbage = 0x9e37_79b9_u32;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                garbage ^= garbage << 13;
                garbage ^= garbage >> 17;
                garbage ^= garbage << 5;
                garbage as u8
            })
            .collect();
        let mut riff_noise = whole[..44].to_vec();
        riff_noise.extend(&noise);
        let _ = read(&write("noise.wav", &riff_noise));
        let _ = read(&write("noise.mp3", &noise));
        let _ = read(&write("noise.flac", &noise));
        let _ = read(&write("noise.ogg", &noise));
    }
}
