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
