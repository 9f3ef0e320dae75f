//! The plugin run offline: a simulated host transport at a fixed tempo drives the
//! [`Sonifier`] block by block, with a song (if any) as the track's audio — metered for the
//! temperature and mixed into the output exactly as in a DAW — for a piece of a given number
//! of tokens, then a release tail with Generate off so the last notes and the reverb ring out.
//! `latent-choir render` feeds it the worker's queue, `replay` a run file's frames.

use crate::io::WriteError;
use crate::io::audio_file::StereoAudio;
use crate::io::midi_file::MidiRecorder;
use crate::params::{LatentChoirParams, ScaleChoice};

use super::OfflineError;

use crate::music::scale::{Root, Scale};
use crate::playback::ear::Ear;
use crate::playback::player::{Clock, FrameSource, Hearing};
use crate::playback::sonifier::{BlockInput, MidiMessage, Sonifier, metered_input};

/// Samples per processing block: what a DAW typically uses.
pub const BLOCK: usize = 512;
/// Release tail after the piece, in seconds.
pub const TAIL_SECONDS: f64 = 3.0;

/// How long the piece is and how fast it goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeline {
    pub sample_rate: u32,
    pub bpm: f64,
    pub block: usize,
    /// Samples while tokens advance.
    pub piece_samples: u64,
    /// Samples of release after them.
    pub tail_samples: u64,
    /// The model's own key, played when the Scale is Model's Key (a key heard wins).
    pub model_key: Option<(Scale, Root)>,
}

impl Timeline {
    /// A piece of `tokens` grid steps at `bpm` and `tokens_per_beat`, followed by the tail.
    pub fn for_tokens(sample_rate: u32, bpm: f64, tokens_per_beat: f64, tokens: u64) -> Self {
        let step = f64::from(sample_rate) * 60.0 / (bpm * tokens_per_beat);
        // Step k fires at ceil(k · step) (the grid's rounding, with its float-noise tolerance):
        // end the piece right where step `tokens` would fire, so exactly `tokens` steps fall in.
        let piece_samples = (tokens as f64 * step - 1e-3).ceil().max(0.0) as u64;
        Self {
            sample_rate,
            bpm,
            block: BLOCK,
            piece_samples,
            tail_samples: (TAIL_SECONDS * f64::from(sample_rate)).round() as u64,
            model_key: None,
        }
    }

    pub fn total_samples(&self) -> u64 {
        self.piece_samples + self.tail_samples
    }
}

/// What the offline run saw.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct OfflineReport {
    /// Grid steps in the piece.
    pub steps: u64,
    /// Steps without a frame (the worker was late beyond the bounded wait, or ran out).
    pub underruns: u64,
    /// Note messages that did not fit a block (should stay 0).
    pub dropped: u64,
    /// Largest absolute output sample.
    pub peak: f32,
}

/// Takes each output block, `[left, right]`; an error ends the run.
pub type AudioSink<'a> = dyn FnMut(&[f32], &[f32]) -> Result<(), WriteError> + 'a;

/// Listen, offline (`render --param listen=On`): the ear the metered input goes to, and the
/// key the listener heard last (for Follow Key).
pub struct OfflineEars<'a> {
    pub ear: &'a mut Ear,
    pub key: &'a dyn Fn() -> Option<(Scale, Root)>,
}

/// Where an offline run's results go.
pub struct Sinks<'a> {
    /// The listener's ear, when Listen is on.
    pub ears: Option<OfflineEars<'a>>,
    /// Every note message, at its absolute sample position.
    pub midi: &'a mut MidiRecorder,
    /// Every output block, `[left, right]`.
    pub audio: &'a mut AudioSink<'a>,
    /// The samples done so far.
    pub progress: &'a mut dyn FnMut(u64),
}

/// Runs the whole timeline.
pub fn run(
    timeline: &Timeline,
    params: &LatentChoirParams,
    sonifier: &mut Sonifier,
    song: Option<&StereoAudio>,
    source: &mut impl FrameSource,
    sinks: Sinks<'_>,
) -> Result<OfflineReport, OfflineError> {
    let Sinks {
        mut ears,
        midi,
        audio,
        progress,
    } = sinks;
    let listen = &params.listen;
    let model_key = timeline
        .model_key
        .filter(|_| params.melody.scale.value() == ScaleChoice::ModelKey);
    let every = listen.every.value().max(1) as u32;
    let block = timeline.block.min(sonifier.max_block()).max(1);
    let rate = f64::from(timeline.sample_rate);
    let tokens_per_beat = f64::from(params.generation.tokens_per_beat.value());
    let mut left = vec![0.0_f32; block];
    let mut right = vec![0.0_f32; block];
    let mut report = OfflineReport::default();
    let mut at = 0u64;
    while at < timeline.total_samples() {
        let playing = at < timeline.piece_samples;
        let end = if playing {
            timeline.piece_samples
        } else {
            timeline.total_samples()
        };
        let len = (end - at).min(block as u64) as usize;
        let (l, r) = (&mut left[..len], &mut right[..len]);
        fill_song(song, at, l, r);

        let clock = Clock::Transport {
            beat: at as f64 / rate * timeline.bpm / 60.0,
            tempo: timeline.bpm,
            tokens_per_beat,
        };
        let channels: [&mut [f32]; 2] = [l, r];
        let main = song.map(|_| &channels[..]);
        let metered = metered_input(params.temperature.meter_source.value(), main, None);
        let input = BlockInput {
            frames: len,
            clock,
            metered,
            playing,
            hearing: Hearing {
                key: match &ears {
                    Some(ears) if listen.follow_key.value() => (ears.key)(),
                    _ => None,
                }
                .or(model_key),
                ear: match &mut ears {
                    Some(ears) if listen.enabled.value() => Some((&mut *ears.ear, every)),
                    _ => None,
                },
            },
        };
        let step = sonifier.process_block(input, params, source, |m| match m {
            MidiMessage::Note(m) => midi.record(at + u64::from(m.offset), m),
            MidiMessage::Control(c) => midi.record_control(at + u64::from(c.offset), c),
        });
        if playing {
            report.steps += u64::from(step.steps);
            report.underruns += u64::from(step.underruns);
        }
        report.dropped += u64::from(step.dropped);
        let [l, r] = channels;
        let mut out: [&mut [f32]; 2] = [l, r];
        sonifier.mix_into(&mut out, song.is_some(), params);
        let [l, r] = out;
        report.peak = l
            .iter()
            .chain(r.iter())
            .fold(report.peak, |p, x| p.max(x.abs()));
        audio(l, r)?;
        at += len as u64;
        progress(at);
    }
    midi.end_at(at);
    Ok(report)
}

/// The song's samples at `[at, at + len)`, silence past its end.
fn fill_song(song: Option<&StereoAudio>, at: u64, left: &mut [f32], right: &mut [f32]) {
    left.fill(0.0);
    right.fill(0.0);
    let Some(song) = song else { return };
    let start = usize::try_from(at).unwrap_or(usize::MAX);
    for (out, source) in [(left, &song.left), (right, &song.right)] {
        if let Some(samples) = source.get(start..) {
            let n = samples.len().min(out.len());
            out[..n].copy_from_slice(&samples[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_holds_exactly_its_tokens() {
        for (rate, bpm, per_beat, tokens) in [
            (48_000, 100.0, 2.0, 128),
            (44_100, 97.0, 0.75, 33),
            (48_000, 120.0, 4.0, 7),
        ] {
            let t = Timeline::for_tokens(rate, bpm, per_beat, tokens);
            let step = f64::from(rate) * 60.0 / (bpm * per_beat);
            let last = ((tokens - 1) as f64 * step).ceil() as u64;
            assert!(last < t.piece_samples, "{t:?}");
            assert!(
                t.piece_samples as f64 <= tokens as f64 * step + 1.0,
                "{t:?}"
            );
        }
    }
}
