//! Steinberg's `.vstpreset` file, the preset format every VST3 host reads: written for the
//! factory presets (`vst3_export`), read back by the tests.
//!
//! The layout, all little-endian (the SDK's `vstpresetfile.h`): a 48-byte header ("VST3", version
//! 1 as i32, the class id as 32 ASCII hex digits, the chunk list's offset as i64), the chunks'
//! data, then the chunk list ("List", an i32 count, and per chunk its 4-byte id, offset and size
//! as i64). The plugin's component state goes in a "Comp" chunk exactly as `IComponent::getState`
//! writes it (hosts hand that chunk to `setState` as it is), the metadata XML in "Info".

/// Chunk ids.
pub const COMPONENT_STATE: [u8; 4] = *b"Comp";
pub const CONTROLLER_STATE: [u8; 4] = *b"Cont";
pub const META_INFO: [u8; 4] = *b"Info";
const HEADER_ID: [u8; 4] = *b"VST3";
const LIST_ID: [u8; 4] = *b"List";
const FORMAT_VERSION: i32 = 1;
/// Header id, version, class id, list offset.
const HEADER_SIZE: usize = 4 + 4 + 32 + 8;
/// Chunk id, offset, size.
const ENTRY_SIZE: usize = 4 + 8 + 8;

/// Why bytes are not a `.vstpreset`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Vst3PresetError {
    #[error("not a VST3 preset (no \"VST3\" header)")]
    NotAPreset,
    #[error("the preset file is cut short")]
    Truncated,
    #[error("the class id is not 32 hex digits")]
    BadClassId,
    #[error("the chunk list is missing or damaged")]
    BadChunkList,
    #[error("chunk {0:?} points outside the file")]
    BadChunk(String),
}

/// A preset file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vst3Preset {
    /// The plugin class the preset is for, as the 32 hex digits the file holds.
    pub class_id: String,
    /// `(id, data)` in file order.
    pub chunks: Vec<([u8; 4], Vec<u8>)>,
}

impl Vst3Preset {
    /// The data of the first chunk with this id.
    pub fn chunk(&self, id: [u8; 4]) -> Option<&[u8]> {
        self.chunks
            .iter()
            .find(|(chunk, _)| *chunk == id)
            .map(|(_, data)| data.as_slice())
    }

    /// What a host hands to the plugin's `setState`.
    pub fn component_state(&self) -> Option<&[u8]> {
        self.chunk(COMPONENT_STATE)
    }
}

/// A class id as the file spells it: the SDK's `FUID::toString`, two upper-case hex digits per
/// byte in the id's canonical order (on Windows the SDK reads the first three fields as COM
/// integers, which gives the same text for the same id).
pub fn class_id_text(class_id: &[u8; 16]) -> String {
    class_id.iter().map(|byte| format!("{byte:02X}")).collect()
}

/// The preset file for plugin class `class_id` with the component state and, if given, the
/// metadata XML, in the SDK's order: Comp, Info, List.
pub fn write(class_id: &[u8; 16], component_state: &[u8], meta_info: Option<&str>) -> Vec<u8> {
    let mut chunks: Vec<([u8; 4], &[u8])> = vec![(COMPONENT_STATE, component_state)];
    if let Some(xml) = meta_info {
        chunks.push((META_INFO, xml.as_bytes()));
    }
    let data_size: usize = chunks.iter().map(|(_, data)| data.len()).sum();
    let mut file = Vec::with_capacity(HEADER_SIZE + data_size + 8 + ENTRY_SIZE * chunks.len());
    file.extend_from_slice(&HEADER_ID);
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(class_id_text(class_id).as_bytes());
    let list_offset = HEADER_SIZE + data_size;
    file.extend_from_slice(&(list_offset as i64).to_le_bytes());
    let mut entries = Vec::with_capacity(chunks.len());
    for (id, data) in &chunks {
        entries.push((*id, file.len(), data.len()));
        file.extend_from_slice(data);
    }
    file.extend_from_slice(&LIST_ID);
    file.extend_from_slice(&(entries.len() as i32).to_le_bytes());
    for (id, offset, size) in entries {
        file.extend_from_slice(&id);
        file.extend_from_slice(&(offset as i64).to_le_bytes());
        file.extend_from_slice(&(size as i64).to_le_bytes());
    }
    file
}

/// Reads a preset file, checking every offset against the file's length.
pub fn read(bytes: &[u8]) -> Result<Vst3Preset, Vst3PresetError> {
    let field = |at: usize, len: usize| {
        at.checked_add(len)
            .and_then(|end| bytes.get(at..end))
            .ok_or(Vst3PresetError::Truncated)
    };
    let int64 = |at: usize| -> Result<usize, Vst3PresetError> {
        let raw: [u8; 8] = field(at, 8)?
            .try_into()
            .map_err(|_| Vst3PresetError::Truncated)?;
        usize::try_from(i64::from_le_bytes(raw)).map_err(|_| Vst3PresetError::BadChunkList)
    };
    if bytes.get(..4) != Some(HEADER_ID.as_slice()) {
        return Err(Vst3PresetError::NotAPreset);
    }
    let class_id = field(8, 32)?;
    if !class_id.iter().all(u8::is_ascii_hexdigit) {
        return Err(Vst3PresetError::BadClassId);
    }
    let class_id = String::from_utf8_lossy(class_id).into_owned();
    let list = int64(40)?;
    if list < HEADER_SIZE || field(list, 4).map_err(|_| Vst3PresetError::BadChunkList)? != LIST_ID {
        return Err(Vst3PresetError::BadChunkList);
    }
    let count: [u8; 4] = field(list + 4, 4)?
        .try_into()
        .map_err(|_| Vst3PresetError::Truncated)?;
    let count =
        usize::try_from(i32::from_le_bytes(count)).map_err(|_| Vst3PresetError::BadChunkList)?;
    // Every entry must fit in the file, which also bounds the allocation below.
    if count > bytes.len() / ENTRY_SIZE {
        return Err(Vst3PresetError::BadChunkList);
    }
    let mut chunks = Vec::with_capacity(count);
    for entry in (0..count).map(|i| list + 8 + i * ENTRY_SIZE) {
        let id: [u8; 4] = field(entry, 4)?
            .try_into()
            .map_err(|_| Vst3PresetError::Truncated)?;
        let (offset, size) = (int64(entry + 4)?, int64(entry + 12)?);
        let data = field(offset, size)
            .map_err(|_| Vst3PresetError::BadChunk(String::from_utf8_lossy(&id).into_owned()))?;
        chunks.push((id, data.to_vec()));
    }
    Ok(Vst3Preset { class_id, chunks })
}

/// The metadata XML hosts show in their preset browsers (the attribute ids are the SDK's
/// `PresetAttributes`, the layout the one Steinberg's hosts write).
pub fn meta_info_xml(preset_name: &str, plugin_name: &str, plugin_category: &str) -> String {
    let attribute = |id: &str, value: &str, flags: &str| {
        format!(
            "\t<Attribute id=\"{id}\" value=\"{}\" type=\"string\" flags=\"{flags}\"/>\r\n",
            xml_escape(value)
        )
    };
    [
        String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<MetaInfo>\r\n"),
        attribute("MediaType", "VstPreset", "writeProtected"),
        attribute("PlugInName", plugin_name, "writeProtected"),
        attribute("PlugInCategory", plugin_category, "writeProtected"),
        attribute("Name", preset_name, ""),
        String::from("</MetaInfo>\r\n"),
    ]
    .concat()
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASS: [u8; 16] = *b"LatentChoirLLM01";

    #[test]
    fn a_written_preset_reads_back() {
        let xml = meta_info_xml("A & B", "Plug", "Instrument|Synth");
        let file = write(&CLASS, b"{\"state\":1}", Some(&xml));
        assert_eq!(&file[..4], b"VST3");
        assert_eq!(&file[8..40], b"4C6174656E7443686F69724C4C4D3031");
        let preset = read(&file).expect("reads");
        assert_eq!(preset.class_id, "4C6174656E7443686F69724C4C4D3031");
        assert_eq!(preset.component_state(), Some(b"{\"state\":1}".as_slice()));
        assert_eq!(preset.chunk(META_INFO), Some(xml.as_bytes()));
        assert!(xml.contains("value=\"A &amp; B\""));
        assert_eq!(preset.chunks.len(), 2);
    }

    #[test]
    fn damaged_files_are_refused_never_panic() {
        let file = write(&CLASS, b"0123456789", None);
        for len in 0..file.len() {
            assert!(read(&file[..len]).is_err(), "cut to {len} bytes");
        }
        let mut wrong_magic = file.clone();
        wrong_magic[0] = b'X';
        assert_eq!(read(&wrong_magic), Err(Vst3PresetError::NotAPreset));
        let mut far_list = file.clone();
        far_list[40..48].copy_from_slice(&i64::MAX.to_le_bytes());
        assert!(read(&far_list).is_err());
        let mut huge_count = file.clone();
        let list = file.len() - 8 - ENTRY_SIZE;
        huge_count[list + 4..list + 8].copy_from_slice(&i32::MAX.to_le_bytes());
        assert_eq!(read(&huge_count), Err(Vst3PresetError::BadChunkList));
        let mut huge_chunk = file.clone();
        huge_chunk[list + 8 + 12..list + 8 + 20].copy_from_slice(&i64::MAX.to_le_bytes());
        assert!(matches!(
            read(&huge_chunk),
            Err(Vst3PresetError::BadChunk(_))
        ));
    }
}
