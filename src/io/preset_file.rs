//! Latent Choir's own preset file, `.lcpreset`: one preset per file, as pretty-printed JSON.
//!
//! CLAP hosts index presets by file location, and a file holding a single preset needs no load
//! key (clap-validator 0.4.1 deadlocks on any preset declared with one), so the factory presets
//! are kept on disk as one file each in [`factory_dir`], which the CLAP provider fills itself
//! ([`sync_folder`]). JSON keeps the file readable and editable by hand:
//!
//! ```json
//! {
//!   "format": "latent-choir-preset",
//!   "version": 1,
//!   "name": "Dark Drone",
//!   "key": "dark-drone",
//!   "description": "…",
//!   "creator": "Latent Choir",
//!   "factory": true,
//!   "state": { "version": "…", "params": { … }, "fields": {} }
//! }
//! ```
//!
//! `state` is nice-plug's `PluginState` exactly as the plugin saves it, so loading a preset is
//! loading a state. Files come from anywhere a host looks, so [`parse`] bounds the size and the
//! texts and refuses anything else with an error, never a panic.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use nice_plug::prelude::PluginState;
use serde::{Deserialize, Serialize};

use super::WriteError;
use super::output_file::PendingFile;

/// The file extension, without its dot (as CLAP declares file types).
pub const EXTENSION: &str = "lcpreset";
/// The `format` tag that tells our files from any other JSON.
pub const FORMAT: &str = "latent-choir-preset";
/// The newest layout this code reads and the one it writes.
pub const VERSION: u64 = 1;
/// A preset is a few kilobytes; anything past this is not one of ours, and reading it whole
/// would let a stray file cost the host memory.
pub const MAX_FILE_SIZE: u64 = 1 << 20;
/// Names, keys, descriptions and creators go to hosts as C strings; this bounds them.
const MAX_TEXT: usize = 16 * 1024;

/// One preset as the file holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresetFile {
    /// Shown in hosts' preset browsers.
    pub name: String,
    /// Stable key (the factory presets' `params::presets` key); the factory file is named by it.
    pub key: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub creator: String,
    /// Whether hosts should list it as factory content rather than the user's own.
    #[serde(default)]
    pub factory: bool,
    /// The plugin state the preset loads.
    pub state: PluginState,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresetFileError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("larger than {MAX_FILE_SIZE} bytes, not a Latent Choir preset")]
    TooLarge,
    #[error("not a Latent Choir preset")]
    NotAPreset,
    #[error("preset format version {0} is newer than this plugin reads ({VERSION})")]
    NewerVersion(u64),
    #[error("damaged Latent Choir preset: {0}")]
    Malformed(String),
    #[error("the preset's {0} is empty, too long or holds a NUL")]
    BadText(&'static str),
}

/// The first look at a file: only the tag and version, so that a foreign file or a newer
/// version gets its own message instead of a field-by-field complaint.
#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    version: Option<u64>,
}

/// What is written: the tag and version in front of the preset.
#[derive(Serialize)]
struct Written<'a> {
    format: &'static str,
    version: u64,
    #[serde(flatten)]
    preset: &'a PresetFile,
}

/// The file's bytes: pretty JSON and a final newline. Deterministic (nice-plug's state keeps its
/// maps sorted), so an unchanged preset writes the same bytes and [`sync_folder`] can compare.
pub fn to_bytes(preset: &PresetFile) -> Result<Vec<u8>, PresetFileError> {
    check_texts(preset)?;
    let mut bytes = serde_json::to_vec_pretty(&Written {
        format: FORMAT,
        version: VERSION,
        preset,
    })
    .map_err(|err| PresetFileError::Malformed(err.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// A preset from a file's bytes.
pub fn parse(bytes: &[u8]) -> Result<PresetFile, PresetFileError> {
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(PresetFileError::TooLarge);
    }
    // serde_json limits nesting depth, so hostile input cannot exhaust the stack.
    let header: Header = serde_json::from_slice(bytes).map_err(|_| PresetFileError::NotAPreset)?;
    if header.format.as_deref() != Some(FORMAT) {
        return Err(PresetFileError::NotAPreset);
    }
    match header.version {
        Some(VERSION) => {}
        Some(version) if version > VERSION => return Err(PresetFileError::NewerVersion(version)),
        _ => return Err(PresetFileError::Malformed(String::from("no valid version"))),
    }
    let preset: PresetFile =
        serde_json::from_slice(bytes).map_err(|err| PresetFileError::Malformed(err.to_string()))?;
    check_texts(&preset)?;
    Ok(preset)
}

/// The preset in the file at `path`, read no further than [`MAX_FILE_SIZE`].
pub fn read(path: &Path) -> Result<PresetFile, PresetFileError> {
    let read_error = |err: std::io::Error| PresetFileError::Read {
        path: path.display().to_string(),
        message: err.to_string(),
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    parse(&bytes)
}

/// Writes `preset` to `path` whole or not at all (a host may be reading the folder meanwhile).
pub fn write(path: &Path, preset: &PresetFile) -> Result<PathBuf, WriteError> {
    let bytes = to_bytes(preset).map_err(|err| WriteError::new(path, err))?;
    write_bytes(path, &bytes)
}

fn write_bytes(path: &Path, bytes: &[u8]) -> Result<PathBuf, WriteError> {
    let pending = PendingFile::new(path)?;
    std::fs::write(pending.temp(), bytes).map_err(|err| WriteError::new(path, err))?;
    pending.commit()
}

/// `key.lcpreset`, if `key` is a plain file name (lowercase letters, digits and dashes): keys
/// become file names, and a path separator or `..` in one must not write elsewhere.
pub fn file_name(key: &str) -> Option<String> {
    let plain = !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    plain.then(|| format!("{key}.{EXTENSION}"))
}

/// Makes `dir` hold exactly `presets`, one `key.lcpreset` each: creates the folder, writes the
/// files that are missing or differ (atomically, so a host crawling at the same time sees old or
/// new files, never half of one) and removes other `.lcpreset` files, which are factory presets
/// of an older version that this one no longer has. Returns how many files it wrote.
///
/// The folder is the plugin's own (`factory`), so nothing a user keeps is removed; files with
/// other extensions are left alone.
pub fn sync_folder(dir: &Path, presets: &[PresetFile]) -> Result<usize, WriteError> {
    std::fs::create_dir_all(dir).map_err(|err| WriteError::new(dir, err))?;
    let mut names = BTreeSet::new();
    let mut written = 0;
    for preset in presets {
        let name = file_name(&preset.key)
            .ok_or_else(|| WriteError::new(dir, format!("{:?} is no file name", preset.key)))?;
        let path = dir.join(&name);
        let bytes = to_bytes(preset).map_err(|err| WriteError::new(&path, err))?;
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            write_bytes(&path, &bytes)?;
            written += 1;
        }
        names.insert(name);
    }
    let entries = std::fs::read_dir(dir).map_err(|err| WriteError::new(dir, err))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = path.extension().is_some_and(|ext| ext == EXTENSION);
        let current = entry
            .file_name()
            .to_str()
            .is_some_and(|name| names.contains(name));
        if ours && !current && path.is_file() {
            // Another process may have removed it first; what matters is that it is gone.
            match std::fs::remove_file(&path) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    return Err(WriteError::new(&path, err));
                }
                _ => {}
            }
        }
    }
    Ok(written)
}

/// `$XDG_DATA_HOME/latent-choir/presets/factory`, by default
/// `~/.local/share/latent-choir/presets/factory`: next to the models
/// (`llm::discovery::models_dir`), per user and writable without privileges, so the plugin can
/// create it on a fresh machine. Relative variables are ignored, as the XDG spec asks (and CLAP
/// wants absolute locations); `None` when neither gives an absolute folder.
pub fn factory_dir() -> Option<PathBuf> {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
    };
    let data =
        absolute("XDG_DATA_HOME").or_else(|| absolute("HOME").map(|h| h.join(".local/share")))?;
    Some(data.join("latent-choir/presets/factory"))
}

fn check_texts(preset: &PresetFile) -> Result<(), PresetFileError> {
    let ok = |text: &str, may_be_empty: bool| {
        (may_be_empty || !text.is_empty()) && text.len() <= MAX_TEXT && !text.contains('\0')
    };
    if !ok(&preset.name, false) {
        return Err(PresetFileError::BadText("name"));
    }
    if !ok(&preset.key, true) {
        return Err(PresetFileError::BadText("key"));
    }
    if !ok(&preset.description, true) {
        return Err(PresetFileError::BadText("description"));
    }
    if !ok(&preset.creator, true) {
        return Err(PresetFileError::BadText("creator"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use nice_plug::plugin::ParamValue;

    use super::*;

    fn preset(key: &str) -> PresetFile {
        PresetFile {
            name: String::from("Dark \"Drone\""),
            key: key.to_owned(),
            description: String::from("Low & slow"),
            creator: String::from("Latent Choir"),
            factory: true,
            state: PluginState {
                version: String::from("0.1.0"),
                params: BTreeMap::from([
                    (String::from("reverb"), ParamValue::F32(0.6)),
                    (
                        String::from("scale"),
                        ParamValue::String(String::from("phrygian")),
                    ),
                ]),
                fields: BTreeMap::new(),
            },
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "latent-choir-preset-file-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_written_preset_reads_back() {
        let bytes = to_bytes(&preset("dark-drone")).expect("writes");
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert!(
            text.contains("\"format\": \"latent-choir-preset\""),
            "{text}"
        );
        assert!(text.contains("\"version\": 1"), "{text}");
        assert!(text.ends_with("}\n"));
        let back = parse(&bytes).expect("reads");
        assert_eq!(back.name, "Dark \"Drone\"");
        assert_eq!(back.key, "dark-drone");
        assert_eq!(back.description, "Low & slow");
        assert_eq!(back.creator, "Latent Choir");
        assert!(back.factory);
        assert_eq!(back.state.params.len(), 2);
        assert_eq!(to_bytes(&back).expect("writes"), bytes, "deterministic");
    }

    #[test]
    fn damaged_and_foreign_files_are_refused_never_panic() {
        let bytes = to_bytes(&preset("dark-drone")).expect("writes");
        // Every cut but the one dropping only the final newline.
        for len in 0..bytes.len() - 1 {
            assert!(parse(&bytes[..len]).is_err(), "cut to {len} bytes");
        }
        let text = String::from_utf8(bytes).expect("utf-8");
        let with = |from: &str, to: &str| parse(text.replacen(from, to, 1).as_bytes());
        assert_eq!(
            with("latent-choir-preset", "other").err(),
            Some(PresetFileError::NotAPreset)
        );
        assert_eq!(
            with("\"version\": 1", "\"version\": 2").err(),
            Some(PresetFileError::NewerVersion(2))
        );
        assert!(matches!(
            with("\"version\": 1", "\"version\": \"1\""),
            Err(PresetFileError::NotAPreset | PresetFileError::Malformed(_))
        ));
        assert!(matches!(
            with("\"state\"", "\"stat\""),
            Err(PresetFileError::Malformed(_))
        ));
        assert!(matches!(
            with("\"params\": {", "\"params\": 5, \"x\": {"),
            Err(PresetFileError::Malformed(_))
        ));
        assert_eq!(
            with("Dark \\\"Drone\\\"", "").err(),
            Some(PresetFileError::BadText("name"))
        );
        assert_eq!(
            with("Low & slow", "Low \\u0000").err(),
            Some(PresetFileError::BadText("description"))
        );
        for foreign in [
            &b""[..],
            b"\0\0\0",
            b"[]",
            b"null",
            b"{}",
            b"\xff\xfe{",
            b"VST3",
        ] {
            assert!(parse(foreign).is_err(), "{foreign:?}");
        }
        let deep = "[".repeat(100_000);
        assert_eq!(
            parse(deep.as_bytes()).err(),
            Some(PresetFileError::NotAPreset)
        );
        let huge = vec![b' '; MAX_FILE_SIZE as usize + 1];
        assert_eq!(parse(&huge).err(), Some(PresetFileError::TooLarge));
    }

    #[test]
    fn keys_become_plain_file_names_only() {
        assert_eq!(
            file_name("dark-drone").as_deref(),
            Some("dark-drone.lcpreset")
        );
        for bad in ["", "../x", "a/b", "Dark", "a.b", "a b", "a\0"] {
            assert_eq!(file_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sync_fills_a_fresh_folder_then_only_changes() {
        let root = scratch("sync");
        let dir = root.join("presets/factory");
        let presets = [preset("one"), preset("two")];
        assert_eq!(
            sync_folder(&dir, &presets).expect("sync"),
            2,
            "a fresh folder"
        );
        assert_eq!(
            sync_folder(&dir, &presets).expect("sync"),
            0,
            "nothing changed"
        );
        assert_eq!(read(&dir.join("one.lcpreset")).expect("reads").key, "one");

        // An outdated file is rewritten, an old preset removed, other files left alone.
        std::fs::write(dir.join("two.lcpreset"), b"{}").expect("write");
        std::fs::write(dir.join("gone.lcpreset"), b"{}").expect("write");
        std::fs::write(dir.join("notes.txt"), b"mine").expect("write");
        assert_eq!(sync_folder(&dir, &presets).expect("sync"), 1);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["notes.txt", "one.lcpreset", "two.lcpreset"]);
        assert_eq!(read(&dir.join("two.lcpreset")).expect("reads").key, "two");

        assert!(sync_folder(&dir, &[preset("../escape")]).is_err());
        assert!(matches!(
            read(&dir.join("missing.lcpreset")),
            Err(PresetFileError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&root);
    }
}
