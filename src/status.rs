//! What the audio thread tells the editor, through atomics only: the audio thread stores, the
//! editor loads, and neither ever waits for the other.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Shared between the plugin (writer, audio thread) and the editor (reader, GUI thread).
#[derive(Default)]
pub struct AudioStatus {
    /// Sample rate of the current activation in Hz, 0 while inactive.
    sample_rate: AtomicU32,
    /// Largest block the host promised for this activation.
    max_block_size: AtomicU32,
    /// Host tempo as f64 bits, 0 when the host sends none.
    tempo_bits: AtomicU64,
    playing: AtomicBool,
    /// Peak of the latest block, as f32 bits.
    main_peak_bits: AtomicU32,
    sidechain_peak_bits: AtomicU32,
    /// NaN or infinite input samples replaced by silence since activation.
    non_finite_inputs: AtomicU64,
    /// MIDI events received since activation.
    midi_events_in: AtomicU64,
    /// MIDI events the host's output queue had no room for.
    midi_out_dropped: AtomicU64,
}

/// A plain copy of [`AudioStatus`] for drawing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StatusSnapshot {
    pub sample_rate: u32,
    pub max_block_size: u32,
    pub tempo: Option<f64>,
    pub playing: bool,
    pub main_peak: f32,
    pub sidechain_peak: f32,
    pub non_finite_inputs: u64,
    pub midi_events_in: u64,
    pub midi_out_dropped: u64,
}

/// What one `process()` call observed.
pub struct BlockReport {
    pub tempo: Option<f64>,
    pub playing: bool,
    pub main_peak: f32,
    pub sidechain_peak: f32,
    pub non_finite_inputs: u64,
    pub midi_events_in: u64,
    pub midi_out_dropped: u64,
}

impl AudioStatus {
    pub fn activated(&self, sample_rate: f32, max_block_size: u32) {
        self.sample_rate
            .store(sample_rate.round() as u32, Ordering::Relaxed);
        self.max_block_size.store(max_block_size, Ordering::Relaxed);
        self.non_finite_inputs.store(0, Ordering::Relaxed);
        self.midi_events_in.store(0, Ordering::Relaxed);
        self.midi_out_dropped.store(0, Ordering::Relaxed);
    }

    pub fn deactivated(&self) {
        self.sample_rate.store(0, Ordering::Relaxed);
        self.playing.store(false, Ordering::Relaxed);
    }

    pub fn report_block(&self, block: &BlockReport) {
        self.tempo_bits
            .store(block.tempo.unwrap_or(0.0).to_bits(), Ordering::Relaxed);
        self.playing.store(block.playing, Ordering::Relaxed);
        self.main_peak_bits
            .store(block.main_peak.to_bits(), Ordering::Relaxed);
        self.sidechain_peak_bits
            .store(block.sidechain_peak.to_bits(), Ordering::Relaxed);
        self.non_finite_inputs
            .fetch_add(block.non_finite_inputs, Ordering::Relaxed);
        self.midi_events_in
            .fetch_add(block.midi_events_in, Ordering::Relaxed);
        self.midi_out_dropped
            .fetch_add(block.midi_out_dropped, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        let tempo = f64::from_bits(self.tempo_bits.load(Ordering::Relaxed));
        StatusSnapshot {
            sample_rate: self.sample_rate.load(Ordering::Relaxed),
            max_block_size: self.max_block_size.load(Ordering::Relaxed),
            tempo: (tempo > 0.0).then_some(tempo),
            playing: self.playing.load(Ordering::Relaxed),
            main_peak: f32::from_bits(self.main_peak_bits.load(Ordering::Relaxed)),
            sidechain_peak: f32::from_bits(self.sidechain_peak_bits.load(Ordering::Relaxed)),
            non_finite_inputs: self.non_finite_inputs.load(Ordering::Relaxed),
            midi_events_in: self.midi_events_in.load(Ordering::Relaxed),
            midi_out_dropped: self.midi_out_dropped.load(Ordering::Relaxed),
        }
    }
}

impl StatusSnapshot {
    /// One line for the bottom of the editor.
    pub fn line(&self) -> String {
        if self.sample_rate == 0 {
            return "Inactive: waiting for the host to start audio".to_owned();
        }
        let transport = match (self.playing, self.tempo) {
            (true, Some(bpm)) => format!("playing at {bpm:.1} BPM"),
            (true, None) => "playing (host sends no tempo)".to_owned(),
            (false, Some(bpm)) => format!("stopped ({bpm:.1} BPM)"),
            (false, None) => "stopped".to_owned(),
        };
        let mut line = format!(
            "{:.1} kHz, blocks up to {} · transport {} · input {} · sidechain {} · MIDI in {}",
            self.sample_rate as f32 / 1000.0,
            self.max_block_size,
            transport,
            peak_text(self.main_peak),
            peak_text(self.sidechain_peak),
            self.midi_events_in,
        );
        if self.non_finite_inputs > 0 {
            line.push_str(&format!(
                " · {} invalid input samples silenced",
                self.non_finite_inputs
            ));
        }
        if self.midi_out_dropped > 0 {
            line.push_str(&format!(
                " · {} MIDI events dropped (host queue full)",
                self.midi_out_dropped
            ));
        }
        line
    }
}

fn peak_text(peak: f32) -> String {
    if peak <= 1e-5 {
        "-inf dBFS".to_owned()
    } else {
        format!("{:.1} dBFS", 20.0 * peak.log10())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reflects_reports_and_accumulates_counters() {
        let status = AudioStatus::default();
        assert!(status.snapshot().line().starts_with("Inactive"));
        status.activated(48_000.0, 512);
        let block = BlockReport {
            tempo: Some(100.0),
            playing: true,
            main_peak: 0.5,
            sidechain_peak: 0.0,
            non_finite_inputs: 2,
            midi_events_in: 3,
            midi_out_dropped: 0,
        };
        status.report_block(&block);
        status.report_block(&block);
        let snap = status.snapshot();
        assert_eq!(snap.non_finite_inputs, 4);
        assert_eq!(snap.midi_events_in, 6);
        let line = snap.line();
        assert!(line.contains("48.0 kHz"), "{line}");
        assert!(line.contains("playing at 100.0 BPM"), "{line}");
        assert!(line.contains("-6.0 dBFS"), "{line}");
        assert!(line.contains("4 invalid input samples"), "{line}");
    }
}
