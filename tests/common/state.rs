//! Editing the plugin's saved state the way a host would hand it back.

/// Sets a persisted field (stored as JSON text inside the state's JSON).
pub fn with_field(state: &[u8], key: &str, value: &serde_json::Value) -> Vec<u8> {
    let json: &[u8] = &state[8..];
    let mut document: serde_json::Value = serde_json::from_slice(json).expect("state JSON");
    document["fields"][key] = serde_json::Value::String(value.to_string());
    let json = serde_json::to_vec(&document).expect("encode");
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out
}

/// A persisted field's value (the JSON inside the state's JSON), if the state has it.
pub fn field(state: &[u8], key: &str) -> Option<serde_json::Value> {
    let document: serde_json::Value = serde_json::from_slice(&state[8..]).expect("state JSON");
    let text = document["fields"][key].as_str()?;
    serde_json::from_str(text).ok()
}

/// A plugin state as the CLAP build saves it: its JSON after an 8-byte little-endian length.
#[allow(dead_code)]
pub fn encode(state: &nice_plug::prelude::PluginState) -> Vec<u8> {
    let json = serde_json::to_vec(state).expect("encode");
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out
}
