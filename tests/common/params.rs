//! Parameters as hosts see them, derived independently of the plugin's wrappers.

use std::collections::BTreeMap;

use latent_choir::params::LatentChoirParams;
use latent_choir::params::presets::Preset;
use nice_plug::prelude::Params;

/// nice-plug's CLAP and VST3 id for a parameter's string id: a 31-based string hash with the
/// top bit cleared (VST3 reserves it for hosts). Hosts store automation under these numbers.
pub fn param_id(string_id: &str) -> u32 {
    let hash = string_id.bytes().fold(0u32, |hash, byte| {
        hash.wrapping_mul(31).wrapping_add(u32::from(byte))
    });
    hash & !(1 << 31)
}

/// Every parameter's text once `preset` is applied, by string id: what a host should read
/// after loading it (`with_unit`: CLAP's value text has the unit, VST3's does not).
pub fn preset_texts(preset: &Preset, with_unit: bool) -> BTreeMap<String, String> {
    let params = LatentChoirParams::default();
    preset.apply(&params).expect("the preset applies");
    params
        .param_map()
        .into_iter()
        .map(|(id, ptr, _)| {
            // SAFETY: `ptr` points into `params`, alive for this whole call.
            let text = unsafe {
                ptr.normalized_value_to_string(ptr.unmodulated_normalized_value(), with_unit)
            };
            (id, text)
        })
        .collect()
}
