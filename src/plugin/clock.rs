//! Which clock a block follows: the host's beats while its transport plays, silence while it
//! stands, or a free-running rate.

use nice_plug::prelude::Transport;

use crate::params::{GenerationParams, Timing};
use crate::playback::player::Clock;

/// The block's clock and the tempo the saved run records for it. `standalone`: the standalone
/// app's transport (JACK's) may never roll, so it runs free while stopped.
pub fn block_clock(
    transport: &Transport,
    generation: &GenerationParams,
    standalone: bool,
) -> (Clock, f64) {
    let tokens_per_beat = f64::from(generation.tokens_per_beat.value());
    let follow = generation.timing.value() == Timing::FollowTransport;
    match (transport.playing, transport.pos_beats(), transport.tempo) {
        (true, Some(beat), Some(tempo)) if follow => (
            Clock::Transport {
                beat,
                tempo,
                tokens_per_beat,
            },
            tempo,
        ),
        (false, Some(_), Some(tempo)) if follow && !standalone => (Clock::Stopped, tempo),
        _ => {
            let tokens_per_second = f64::from(generation.tokens_per_second.value());
            (
                Clock::Free { tokens_per_second },
                60.0 * tokens_per_second / tokens_per_beat.max(1e-6),
            )
        }
    }
}
