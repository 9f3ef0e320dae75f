//! Offline bounces through the CLAP harness: a timeline of tempo segments cut into blocks the
//! way a host would, Generate on, parameters set, and everything the plugin sent collected.

use std::path::Path;

use super::clap_host::{Block, DialectCount, HostedPlugin, InEvent, OutNote, Transport};
use super::signal::Rng;
use super::state::with_field;

pub const RATE: f64 = 48_000.0;
pub const MAX_BLOCK: usize = 1024;

/// A stretch of the host's timeline: the transport plays from `beat` at `tempo` for `samples`.
#[derive(Clone, Copy)]
pub struct Segment {
    pub beat: f64,
    pub tempo: f64,
    pub samples: u64,
}

/// A stretch of a session as a host plays it: the transport at `beat` (advancing while
/// `playing`, standing still while stopped) at `tempo` for `samples`.
#[derive(Clone, Copy, Debug)]
pub struct Stretch {
    pub beat: f64,
    pub tempo: f64,
    pub samples: u64,
    pub playing: bool,
}

impl From<Segment> for Stretch {
    fn from(segment: Segment) -> Self {
        Self {
            beat: segment.beat,
            tempo: segment.tempo,
            samples: segment.samples,
            playing: true,
        }
    }
}

/// How a host reports its beat position: exactly, or rounded to its own grid.
pub type Rounding = fn(f64) -> f64;

/// Exact positions (the default of every bounce).
pub fn exact(beat: f64) -> f64 {
    beat
}

/// How the host cuts the timeline into blocks.
#[derive(Clone, Copy)]
pub enum Blocks {
    Fixed(usize),
    Random(u64),
}

/// What a bounce produced: note events at absolute sample positions, and the audio.
pub struct Bounce {
    pub notes: Vec<(u64, OutNote)>,
    /// Control changes at their absolute sample: (sample, channel, controller, value).
    pub controls: Vec<(u64, u8, u8, u8)>,
    pub audio: [Vec<f32>; 2],
    /// Sample of every grid step the timeline passed (2 tokens per beat).
    pub grid: Vec<u64>,
    /// Absolute sample positions where the `changes` took effect (block starts).
    pub change_at: Vec<u64>,
    /// Each block's start and the notes it sent, in the order sent.
    pub blocks: Vec<(u64, Vec<OutNote>)>,
    /// How the notes came: as CLAP note events or as MIDI.
    pub dialects: DialectCount,
}

/// Bounces `timeline` offline with Generate on and `setup` (parameter name, CLAP value) set
/// at the start; each `(sample, name, value)` change is sent with the first block that starts
/// at or after `sample`. `model` of `None` plays the default model.
pub fn bounce(
    model: Option<&Path>,
    setup: &[(&str, f64)],
    timeline: &[Segment],
    changes: &[(u64, &str, f64)],
    blocks: Blocks,
) -> Bounce {
    let fields: Vec<(&str, serde_json::Value)> = model
        .map(|m| ("model", serde_json::json!(m.to_string_lossy())))
        .into_iter()
        .collect();
    bounce_with(&fields, setup, timeline, changes, blocks)
}

/// As [`bounce`], with persisted fields (model, SoundFont, …) set in the state first.
pub fn bounce_with(
    fields: &[(&str, serde_json::Value)],
    setup: &[(&str, f64)],
    timeline: &[Segment],
    changes: &[(u64, &str, f64)],
    blocks: Blocks,
) -> Bounce {
    bounce_song(fields, setup, timeline, changes, blocks, None)
}

/// As [`bounce_with`], with `song` (`[left, right]`, at least as long as the timeline) on the
/// main input: the track the plugin sits on.
pub fn bounce_song(
    fields: &[(&str, serde_json::Value)],
    setup: &[(&str, f64)],
    timeline: &[Segment],
    changes: &[(u64, &str, f64)],
    blocks: Blocks,
    song: Option<&[Vec<f32>; 2]>,
) -> Bounce {
    let mut plugin = HostedPlugin::new();
    if !fields.is_empty() {
        let mut state = plugin.save_state();
        for (key, value) in fields {
            state = with_field(&state, key, value);
        }
        assert!(plugin.load_state(&state), "the state with {fields:?} loads");
    }
    bounce_on(&mut plugin, setup, timeline, changes, blocks, song)
}

/// As [`bounce_song`], on a plugin the caller made (and may save the state of afterwards).
pub fn bounce_on(
    plugin: &mut HostedPlugin,
    setup: &[(&str, f64)],
    timeline: &[Segment],
    changes: &[(u64, &str, f64)],
    blocks: Blocks,
    song: Option<&[Vec<f32>; 2]>,
) -> Bounce {
    let session: Vec<Stretch> = timeline.iter().map(|s| Stretch::from(*s)).collect();
    play_session(plugin, setup, &session, changes, blocks, song, exact)
}

/// Plays a session of stretches (stopped ones too) offline, the positions passed through
/// `rounding` as the host would report them.
pub fn play_session(
    plugin: &mut HostedPlugin,
    setup: &[(&str, f64)],
    timeline: &[Stretch],
    changes: &[(u64, &str, f64)],
    blocks: Blocks,
    song: Option<&[Vec<f32>; 2]>,
    rounding: Rounding,
) -> Bounce {
    let mut start = vec![InEvent::Param {
        time: 0,
        id: plugin.param_id("Generate"),
        value: 1.0,
    }];
    for (name, value) in setup {
        start.push(InEvent::Param {
            time: 0,
            id: plugin.param_id(name),
            value: *value,
        });
    }
    let changes: Vec<(u64, InEvent)> = changes
        .iter()
        .map(|(at, name, value)| {
            let id = plugin.param_id(name);
            (
                *at,
                InEvent::Param {
                    time: 0,
                    id,
                    value: *value,
                },
            )
        })
        .collect();
    plugin.set_offline(true);
    plugin.activate(RATE, MAX_BLOCK as u32);

    let silence = vec![0.0_f32; MAX_BLOCK];
    let mut rng = match blocks {
        Blocks::Random(seed) => Some(Rng::new(seed)),
        Blocks::Fixed(_) => None,
    };
    let mut out = Bounce {
        notes: Vec::new(),
        controls: Vec::new(),
        audio: [Vec::new(), Vec::new()],
        grid: Vec::new(),
        change_at: Vec::new(),
        blocks: Vec::new(),
        dialects: DialectCount::default(),
    };
    let mut at = 0u64;
    let mut pending = changes.iter().peekable();
    let mut first = true;
    for segment in timeline {
        let step = RATE * 60.0 / segment.tempo / 2.0;
        assert_eq!(step.fract(), 0.0, "the test keeps grid steps whole samples");
        assert_eq!(
            (segment.beat * 2.0).fract(),
            0.0,
            "segments start on the grid"
        );
        let step = step as u64;
        if segment.playing {
            out.grid
                .extend((0..segment.samples.div_ceil(step)).map(|j| at + j * step));
        }
        let mut done = 0u64;
        while done < segment.samples {
            let size = match (blocks, rng.as_mut()) {
                (Blocks::Fixed(n), _) => n,
                (_, Some(rng)) => 1 + rng.below(MAX_BLOCK),
                _ => MAX_BLOCK,
            }
            .min((segment.samples - done) as usize);
            let mut events: Vec<InEvent> = Vec::new();
            if first {
                events.extend(&start);
                first = false;
            }
            while let Some((_, event)) = pending.next_if(|(when, _)| *when <= at) {
                events.push(*event);
                out.change_at.push(at);
            }
            let elapsed = done as f64 / RATE;
            let mut block = Block::silent(&silence[..size], &events);
            if let Some([left, right]) = song {
                let span = at as usize..at as usize + size;
                block.main = [&left[span.clone()], &right[span]];
            }
            let beats = if segment.playing {
                segment.beat + elapsed * segment.tempo / 60.0
            } else {
                segment.beat
            };
            block.transport = Some(Transport {
                playing: segment.playing,
                tempo: segment.tempo,
                beats: rounding(beats),
                seconds: at as f64 / RATE,
            });
            let result = plugin.process(&block);
            out.dialects += result.dialects;
            out.blocks.push((at, result.notes.clone()));
            out.controls.extend(
                result
                    .controls
                    .iter()
                    .map(|&(time, channel, cc, value)| (at + u64::from(time), channel, cc, value)),
            );
            out.notes
                .extend(result.notes.into_iter().map(|n| (at + note_time(&n), n)));
            for (all, part) in out.audio.iter_mut().zip(result.audio) {
                all.extend(part);
            }
            done += size as u64;
            at += size as u64;
        }
    }
    // Generate off: everything still sounding is released.
    let stop = [InEvent::Param {
        time: 0,
        id: plugin.param_id("Generate"),
        value: 0.0,
    }];
    let result = plugin.process(&Block::silent(&silence[..512], &stop));
    out.dialects += result.dialects;
    out.notes
        .extend(result.notes.into_iter().map(|n| (at + note_time(&n), n)));
    plugin.deactivate();
    out
}

pub fn note_time(note: &OutNote) -> u64 {
    match *note {
        OutNote::On { time, .. } | OutNote::Off { time, .. } => u64::from(time),
    }
}

/// Every note-on is closed by a note-off of the same channel and key, none is left sounding,
/// and no note-off comes without its note-on.
pub fn assert_paired(notes: &[(u64, OutNote)]) {
    let mut sounding: Vec<(u8, u8)> = Vec::new();
    for (at, note) in notes {
        match *note {
            OutNote::On { channel, key, .. } => sounding.push((channel, key)),
            OutNote::Off { channel, key, .. } => {
                let i = sounding.iter().position(|s| *s == (channel, key));
                assert!(i.is_some(), "note-off without note-on at {at}: {note:?}");
                sounding.remove(i.unwrap_or(0));
            }
        }
    }
    assert!(sounding.is_empty(), "stuck notes: {sounding:?}");
}
