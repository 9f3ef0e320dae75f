//! The standalone app: the plugin with its own audio and MIDI I/O (JACK, ALSA, or `--backend
//! dummy` for machines without a sound card).

fn main() {
    nice_plug::nice_export_standalone::<latent_choir::LatentChoir>();
}
