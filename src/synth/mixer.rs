//! The output stage: what the host's track feeds in, mixed with what the plugin plays, at the
//! output gain. It is also the last guard before the host: nothing non-finite or subnormal leaves.

/// Peak levels and repairs made while mixing one block.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct MixReport {
    pub input_peak: f32,
    /// Input samples that were NaN or infinite and were replaced by silence.
    pub non_finite: u64,
}

/// Make an input sample safe to compute with: NaN and ±inf become silence (reported), subnormals
/// become exact zero so they cannot slow down or leak out of later stages.
#[inline]
pub fn clean_sample(x: f32) -> (f32, bool) {
    if !x.is_finite() {
        (0.0, true)
    } else if x.abs() < f32::MIN_POSITIVE {
        (0.0, false)
    } else {
        (x, false)
    }
}

/// Peak of a set of channels after cleaning, with invalid samples ignored.
pub fn peak(channels: &[&mut [f32]]) -> f32 {
    channels
        .iter()
        .flat_map(|channel| channel.iter())
        .map(|&x| clean_sample(x).0.abs())
        .fold(0.0, f32::max)
}

/// Frames [`mix_block`] handles at a time (stack buffers for the per-frame gains).
const MIX_CHUNK: usize = 64;

/// Mix one block in place. `channels` holds the host's input on entry (or garbage when the plugin
/// has no main input, see `has_input`) and the output on return; `played` is what the plugin
/// itself plays, per channel (missing channels are silent). `thru` and `gain` yield one smoothed
/// value per sample (called once per frame, in frame order).
pub fn mix_block(
    channels: &mut [&mut [f32]],
    played: &[&[f32]],
    has_input: bool,
    mut thru: impl FnMut() -> f32,
    mut gain: impl FnMut() -> f32,
) -> MixReport {
    let mut report = MixReport::default();
    let frames = channels.first().map_or(0, |c| c.len());
    let mut start = 0;
    while start < frames {
        let n = (frames - start).min(MIX_CHUNK);
        let (mut thrus, mut gains) = ([0.0f32; MIX_CHUNK], [0.0f32; MIX_CHUNK]);
        for (t, g) in thrus[..n].iter_mut().zip(&mut gains[..n]) {
            *t = thru();
            *g = gain();
        }
        for (index, channel) in channels.iter_mut().enumerate() {
            let Some(channel) = channel.get_mut(start..start + n) else {
                continue;
            };
            let own = played
                .get(index)
                .map_or(&[][..], |p| p.get(start..).unwrap_or(&[]));
            for (frame, x) in channel.iter_mut().enumerate() {
                let own = own.get(frame).map_or(0.0, |&x| clean_sample(x).0);
                let input = if has_input {
                    let (x, bad) = clean_sample(*x);
                    report.non_finite += u64::from(bad);
                    report.input_peak = report.input_peak.max(x.abs());
                    x
                } else {
                    0.0
                };
                *x = clean_sample((input * thrus[frame] + own) * gains[frame]).0;
            }
        }
        start += n;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_becomes_silence_and_is_counted() {
        let mut left = [1.0, f32::NAN, f32::INFINITY, 1e-40, -0.5];
        let mut right = [f32::NEG_INFINITY, 0.25, 0.0, 0.0, 0.0];
        let report = mix_block(&mut [&mut left, &mut right], &[], true, || 0.5, || 2.0);
        assert_eq!(report.non_finite, 3);
        assert_eq!(report.input_peak, 1.0);
        assert_eq!(left, [1.0, 0.0, 0.0, 0.0, -0.5]);
        assert_eq!(right, [0.0, 0.25, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn without_main_input_the_host_buffer_is_ignored() {
        let mut left = [0.7; 4];
        let report = mix_block(&mut [&mut left], &[], false, || 1.0, || 1.0);
        assert_eq!(left, [0.0; 4]);
        assert_eq!(report, MixReport::default());
    }

    #[test]
    fn output_underflow_is_flushed() {
        let mut left = [1e-20_f32; 3];
        mix_block(&mut [&mut left], &[], true, || 1e-20, || 1.0);
        assert_eq!(left, [0.0; 3]);
    }
}
