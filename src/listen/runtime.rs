//! ONNX Runtime, loaded once per process from the shared library `cargo xtask fetch-model`
//! stores beside the default model (`<models>/listen/`), and the encoder files kept there.
//! Loading is explicit (`ort::init_from`), so no environment variable is needed inside a DAW;
//! `LATENT_CHOIR_ONNXRUNTIME` names another library (a user's own ONNX Runtime 1.31 build).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use super::error::ListenError;
use crate::llm::discovery::models_dir;

/// The ONNX Runtime version `ort` 2.0.0-rc.15 is built against.
pub const ONNX_RUNTIME_VERSION: &str = "1.31.1";

#[cfg(target_os = "macos")]
const LIBRARY: &str = "libonnxruntime.1.31.1.dylib";
#[cfg(not(target_os = "macos"))]
const LIBRARY: &str = "libonnxruntime.so.1.31.1";

/// Basic Pitch's ICASSP 2022 model, as shipped in the `basic-pitch==0.4.0` wheel.
pub const BASIC_PITCH_FILE: &str = "nmp.onnx";

/// `<models>/listen`, where the set-up step puts ONNX Runtime and the encoders.
pub fn listen_dir() -> Option<PathBuf> {
    models_dir().map(|dir| dir.join("listen"))
}

/// The default semantic encoder's path (it may not exist yet).
pub fn basic_pitch_path() -> Option<PathBuf> {
    listen_dir().map(|dir| dir.join(BASIC_PITCH_FILE))
}

fn library_path() -> Option<PathBuf> {
    match std::env::var_os("LATENT_CHOIR_ONNXRUNTIME").filter(|v| !v.is_empty()) {
        Some(path) => Some(PathBuf::from(path)),
        None => listen_dir().map(|dir| dir.join(LIBRARY)),
    }
}

/// The process's ONNX Runtime environment; the first call loads the library. A failure is
/// remembered (the library cannot be loaded twice) and reported on every call.
pub fn environment() -> Result<Environment, ListenError> {
    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(load)
        .clone()
        .map_err(ListenError::Runtime)
}

fn load() -> Result<Environment, String> {
    let path = library_path().ok_or("neither XDG_DATA_HOME nor HOME is set")?;
    if !path.exists() {
        return Err(missing(&path));
    }
    // A library that is not ONNX Runtime (or a damaged one) makes `init_from` fail, not crash.
    let builder = ort::init_from(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    builder
        .with_name("latent-choir")
        .build()
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn missing(path: &Path) -> String {
    format!(
        "ONNX Runtime {ONNX_RUNTIME_VERSION} is not at {}; run `cargo xtask fetch-model` (or set \
         LATENT_CHOIR_ONNXRUNTIME to a libonnxruntime 1.31 library)",
        path.display()
    )
}
