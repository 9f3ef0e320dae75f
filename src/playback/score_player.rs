//! The Model Weights source on the audio thread: a [`SlotScore`] played on the host's beat grid
//! (or free, at the piece's own tempo), looping every `length` beats, as note messages for the
//! sonifier, the same kind the token player makes.
//!
//! Notes are scheduled by beat, so a seek or a loop lands where the piece is at that beat: the
//! notes sounding there are struck again. Tracks that share a slot may share a key; a key counts
//! its strikes and is released when the last of them ends, so every note-on has one note-off.
//! Nothing here allocates after [`ScorePlayer::new`].

use crate::music::score::{SlotNote, SlotScore};
use crate::music::{NO_TOKEN, NoteMessage, SLOTS};

use super::player::Clock;

/// Notes sounding at once, over all slots.
const MAX_SOUNDING: usize = 128;
/// Note messages one block can carry.
const MAX_EVENTS: usize = 1024;
/// A block that starts further than this (in beats) from where the last one ended is a jump.
const JUMP: f64 = 1e-3;

#[derive(Debug, Clone, Copy, Default)]
struct Sounding {
    slot: u8,
    key: u8,
    /// Host beat (or free-run beat) at which it ends.
    end: f64,
}

/// One block's place on the beat line.
struct Block {
    start: f64,
    frames: usize,
    per_sample: f64,
}

impl Block {
    fn sample_of(&self, beat: f64) -> i64 {
        ((beat - self.start) / self.per_sample).round() as i64
    }
}

pub struct ScorePlayer {
    score: Option<Box<SlotScore>>,
    sample_rate: f64,
    sounding: [Sounding; MAX_SOUNDING],
    n_sounding: usize,
    /// Strikes of each key per slot still sounding.
    counts: [[u8; 128]; SLOTS],
    /// The channel each sounding key went out on, so its note-off matches.
    channel_of: [[u8; 128]; SLOTS],
    events: Box<[NoteMessage]>,
    n_events: usize,
    /// The events hold note-offs a replace or reset owes the next block.
    owed: bool,
    dropped: u32,
    /// Where the last block ended, in beats; `None` after a stop.
    last_end: Option<f64>,
    /// The free-running beat, when there is no transport.
    free_beat: f64,
}

impl std::fmt::Debug for ScorePlayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScorePlayer")
            .field("score", &self.score.as_ref().map(|s| &s.title))
            .field("sounding", &self.n_sounding)
            .finish()
    }
}

impl ScorePlayer {
    pub fn new(sample_rate: f64) -> Self {
        Self {
            score: None,
            sample_rate: if sample_rate > 0.0 {
                sample_rate
            } else {
                48_000.0
            },
            sounding: [Sounding::default(); MAX_SOUNDING],
            n_sounding: 0,
            counts: [[0; 128]; SLOTS],
            channel_of: [[0; 128]; SLOTS],
            events: vec![
                NoteMessage {
                    offset: 0,
                    slot: 0,
                    channel: 0,
                    note: 0,
                    velocity: 0,
                    token: NO_TOKEN,
                };
                MAX_EVENTS
            ]
            .into_boxed_slice(),
            n_events: 0,
            owed: false,
            dropped: 0,
            last_end: None,
            free_beat: 0.0,
        }
    }

    pub fn score(&self) -> Option<&SlotScore> {
        self.score.as_deref()
    }

    /// Puts `score` in place (releasing what sounds, in the next block's events; a free run
    /// starts it from its beginning) and returns the one it replaces, to be freed off the audio
    /// thread.
    pub fn replace(&mut self, score: Option<Box<SlotScore>>) -> Option<Box<SlotScore>> {
        self.n_events = 0;
        self.release_all(0);
        self.owed = true;
        self.last_end = None;
        self.free_beat = 0.0;
        std::mem::replace(&mut self.score, score)
    }

    /// The last block's note messages, in time order.
    pub fn events(&self) -> &[NoteMessage] {
        &self.events[..self.n_events]
    }

    /// Messages that did not fit the last block (should stay 0).
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Forgets the position (the host's reset) after releasing everything.
    pub fn reset(&mut self) {
        self.n_events = 0;
        self.release_all(0);
        self.owed = true;
        self.last_end = None;
        self.free_beat = 0.0;
    }

    /// Plays one block of `frames` samples. `channels`: each slot's MIDI channel; a drum slot
    /// always sends on channel 10. `free_tempo`: true when the clock runs free, at the piece's
    /// tempo `bpm`.
    pub fn process(
        &mut self,
        clock: Clock,
        frames: usize,
        channels: [u8; SLOTS],
        drums: [bool; SLOTS],
        bpm: f64,
    ) -> &[NoteMessage] {
        if !std::mem::take(&mut self.owed) {
            self.n_events = 0;
        }
        self.dropped = 0;
        let (start, tempo) = match clock {
            Clock::Transport { beat, tempo, .. } => (beat, tempo),
            Clock::Free { .. } => (self.free_beat, bpm),
            Clock::Stopped => {
                self.release_all(0);
                self.last_end = None;
                return self.events();
            }
        };
        let per_sample = tempo / 60.0 / self.sample_rate;
        if !(per_sample.is_finite() && per_sample > 0.0 && start.is_finite()) {
            return self.events();
        }
        let end = start + frames as f64 * per_sample;
        if let Clock::Free { .. } = clock {
            self.free_beat = end;
        }
        // A beat's sample offset in this block (may fall outside it): every position is rounded
        // to a sample once, so a note on a block boundary falls in exactly one block.
        let sample_of = |beat: f64| -> i64 { ((beat - start) / per_sample).round() as i64 };
        let jumped = self.last_end.is_none_or(|last| (start - last).abs() > JUMP);
        if jumped {
            self.release_all(0);
        }
        // Note-offs first: a key ending where it starts again is released before it sounds.
        let mut i = 0;
        while i < self.n_sounding {
            let s = self.sounding[i];
            let at = sample_of(s.end);
            if at < frames as i64 {
                self.n_sounding -= 1;
                self.sounding[i] = self.sounding[self.n_sounding];
                self.note_off(s.slot, s.key, at.max(0) as u32);
            } else {
                i += 1;
            }
        }
        if let Some(score) = self.score.take() {
            let block = Block {
                start,
                frames,
                per_sample,
            };
            self.strike(&score, &block, jumped, channels, drums);
            self.score = Some(score);
        }
        self.last_end = Some(end);
        self.events[..self.n_events].sort_by_key(|e| (e.offset, e.velocity > 0));
        self.events()
    }

    /// Note-ons for the notes of the looped piece whose sample falls in the block (after a
    /// jump, also those already sounding at its start, struck at once).
    fn strike(
        &mut self,
        score: &SlotScore,
        block: &Block,
        jumped: bool,
        channels: [u8; SLOTS],
        drums: [bool; SLOTS],
    ) {
        let length = score.length;
        if length.is_nan() || length <= 0.0 {
            return;
        }
        let (start, ps) = (block.start, block.per_sample);
        let end = start + block.frames as f64 * ps;
        if end + ps <= 0.0 {
            return;
        }
        if jumped && start >= 0.0 {
            let origin = (start / length).floor() * length;
            let position = start - origin;
            let window = score.first_from(position - ps);
            for note in &score.notes[..window] {
                if note.start + note.length > position {
                    let until = origin + note.start + note.length;
                    self.note_on(note, 0, until, channels, drums);
                }
            }
        }
        let first_pass = ((start - ps) / length).floor().max(0.0);
        let last_pass = ((end + ps) / length).floor();
        let mut pass = first_pass;
        while pass <= last_pass {
            let origin = pass * length;
            let from = score.first_from(start - ps - origin);
            for note in score.notes[from..]
                .iter()
                .take_while(|n| n.start < end + ps - origin)
            {
                let at = origin + note.start;
                let sample = block.sample_of(at);
                if (0..block.frames as i64).contains(&sample) {
                    self.note_on(note, sample as u32, at + note.length, channels, drums);
                }
            }
            pass += 1.0;
        }
    }

    fn note_on(
        &mut self,
        note: &SlotNote,
        offset: u32,
        until: f64,
        channels: [u8; SLOTS],
        drums: [bool; SLOTS],
    ) {
        let (slot, key, velocity) = (note.slot, note.key, note.velocity);
        let s = usize::from(slot).min(SLOTS - 1);
        let k = usize::from(key & 0x7f);
        if self.n_sounding >= MAX_SOUNDING || self.counts[s][k] == u8::MAX {
            self.dropped += 1;
            return;
        }
        let channel = if drums[s] { 9 } else { channels[s] & 0x0f };
        if self.counts[s][k] == 0 {
            self.channel_of[s][k] = channel;
            self.push(NoteMessage {
                offset,
                slot: s as u8,
                channel,
                note: k as u8,
                velocity: velocity.max(1),
                token: NO_TOKEN,
            });
        }
        self.counts[s][k] += 1;
        self.sounding[self.n_sounding] = Sounding {
            slot: s as u8,
            key: k as u8,
            end: until,
        };
        self.n_sounding += 1;
    }

    fn note_off(&mut self, slot: u8, key: u8, offset: u32) {
        let (s, k) = (usize::from(slot), usize::from(key));
        if self.counts[s][k] == 0 {
            return;
        }
        self.counts[s][k] -= 1;
        if self.counts[s][k] == 0 {
            self.push(NoteMessage {
                offset,
                slot,
                channel: self.channel_of[s][k],
                note: key,
                velocity: 0,
                token: NO_TOKEN,
            });
        }
    }

    /// Note-offs at `offset` for everything sounding.
    fn release_all(&mut self, offset: u32) {
        while self.n_sounding > 0 {
            self.n_sounding -= 1;
            let s = self.sounding[self.n_sounding];
            let count = &mut self.counts[usize::from(s.slot)][usize::from(s.key)];
            if *count > 0 {
                *count = 1;
                self.note_off(s.slot, s.key, offset);
            }
        }
    }

    fn push(&mut self, message: NoteMessage) {
        if self.n_events < self.events.len() {
            self.events[self.n_events] = message;
            self.n_events += 1;
        } else {
            self.dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::score::{BuiltInSound, SlotNote, SlotSound};

    fn score() -> Box<SlotScore> {
        let note = |start: f64, length: f64, key: u8, slot: u8| SlotNote {
            start,
            length,
            key,
            velocity: 100,
            slot,
        };
        let mut slots = [None; SLOTS];
        slots[0] = Some(SlotSound {
            sound: BuiltInSound::Strings,
            program: 40,
        });
        slots[1] = Some(SlotSound {
            sound: BuiltInSound::Drums,
            program: 0,
        });
        Box::new(SlotScore {
            title: "t".into(),
            tag: 0,
            bpm: 120.0,
            length: 4.0,
            notes: vec![
                note(0.0, 2.0, 60, 0),
                note(0.0, 0.25, 36, 1),
                note(1.0, 0.5, 64, 0),
                note(1.0, 2.5, 64, 0),
                note(2.0, 0.25, 36, 1),
            ],
            slots,
        })
    }

    const CHANNELS: [u8; SLOTS] = [0, 1, 2, 3, 4];
    const DRUMS: [bool; SLOTS] = [false, true, false, false, false];

    /// Plays `beats` at 120 BPM in 512-frame blocks from `from`, returning (absolute sample,
    /// message).
    fn play(player: &mut ScorePlayer, from: f64, blocks: usize) -> Vec<(u64, NoteMessage)> {
        let mut out = Vec::new();
        let per_block = 512.0 * 2.0 / 48_000.0;
        for b in 0..blocks {
            let clock = Clock::Transport {
                beat: from + b as f64 * per_block,
                tempo: 120.0,
                tokens_per_beat: 1.0,
            };
            for e in player.process(clock, 512, CHANNELS, DRUMS, 120.0) {
                out.push((b as u64 * 512 + u64::from(e.offset), *e));
            }
        }
        out
    }

    #[test]
    fn notes_fall_on_their_beats_and_every_on_has_one_off() {
        let mut player = ScorePlayer::new(48_000.0);
        assert!(player.replace(Some(score())).is_none());
        let events = play(&mut player, 0.0, 200); // a bit over two loops of 4 beats
        let ons: Vec<(u64, u8, u8)> = events
            .iter()
            .filter(|(_, e)| e.velocity > 0)
            .map(|(t, e)| (*t, e.note, e.channel))
            .collect();
        // Beat b at 120 BPM is sample 24 000·b; the loop repeats every 4 beats (96 000).
        assert_eq!(
            &ons[..4],
            &[(0, 60, 0), (0, 36, 9), (24_000, 64, 0), (48_000, 36, 9)],
            "drums on channel 10; the doubled 64 struck once"
        );
        assert!(ons.contains(&(96_000, 60, 0)), "the loop comes round");
        // The doubled E sounds until the longer of its two notes ends (beat 3.5).
        let e_off = events
            .iter()
            .find(|(_, e)| e.velocity == 0 && e.note == 64)
            .map(|(t, _)| *t);
        assert_eq!(e_off, Some(84_000));
        let mut open = std::collections::HashMap::new();
        for (t, e) in &events {
            let count = open.entry((e.channel, e.note)).or_insert(0i32);
            *count += if e.velocity > 0 { 1 } else { -1 };
            assert!((0..=1).contains(count), "{e:?} at {t}");
        }
    }

    #[test]
    fn a_seek_strikes_what_sounds_there_and_a_stop_releases_everything() {
        let mut player = ScorePlayer::new(48_000.0);
        player.replace(Some(score()));
        play(&mut player, 0.0, 10);
        // Jump to beat 1.5 of the next pass: the held C (0–2) and the long E (1–3.5) sound.
        let events = play(&mut player, 5.5, 1);
        let ons: Vec<u8> = events
            .iter()
            .filter(|(_, e)| e.velocity > 0)
            .map(|(_, e)| e.note)
            .collect();
        assert!(ons.contains(&60) && ons.contains(&64), "{events:?}");
        let offs = player.process(Clock::Stopped, 512, CHANNELS, DRUMS, 120.0);
        assert_eq!(offs.iter().filter(|e| e.velocity == 0).count(), 2);
        assert!(offs.iter().all(|e| e.offset == 0));
        // A new score releases the old one's notes in the next block.
        play(&mut player, 0.0, 2);
        player.replace(Some(score()));
        let next = player.process(Clock::Stopped, 512, CHANNELS, DRUMS, 120.0);
        assert_eq!(
            next.iter().filter(|e| e.velocity == 0).count(),
            2,
            "{next:?}"
        );
    }

    #[test]
    fn free_running_plays_at_the_pieces_tempo_and_nothing_without_a_score() {
        let mut player = ScorePlayer::new(48_000.0);
        let free = Clock::Free {
            tokens_per_second: 2.0,
        };
        assert!(player.process(free, 512, CHANNELS, DRUMS, 120.0).is_empty());
        player.replace(Some(score()));
        let mut first_e = None;
        for b in 0..100u64 {
            if let Some(e) = player
                .process(free, 512, CHANNELS, DRUMS, 60.0)
                .iter()
                .find(|e| e.note == 64 && e.velocity > 0)
            {
                first_e = Some(b * 512 + u64::from(e.offset));
                break;
            }
        }
        assert_eq!(first_e, Some(48_000), "beat 1 at 60 BPM is one second in");
    }
}
