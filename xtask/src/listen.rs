//! The `listen` encoders' files, fetched by the same set-up step as the default model and
//! stored beside it (`<models>/listen/`): ONNX Runtime's shared library from the
//! `onnxruntime==1.31.1` wheel (the version `ort` 2.0.0-rc.15 targets) and Basic Pitch's
//! `nmp.onnx` from the `basic-pitch==0.4.0` wheel. Both are checked against pinned sha256s;
//! nothing is downloaded at run time. The file names must stay in step with
//! `latent_choir::listen::runtime`.

use std::path::{Path, PathBuf};

use crate::model::models_dir;
use crate::wheel::{WheelMember, fetch_member};

const BASIC_PITCH: WheelMember = WheelMember {
    requirement: "basic-pitch==0.4.0",
    pip_options: &[],
    member: "basic_pitch/saved_models/icassp_2022/nmp.onnx",
    sha256: "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec",
    file_name: "nmp.onnx",
};

fn onnx_runtime() -> Result<WheelMember, String> {
    let (platform, member, sha256, file_name) = match (std::env::consts::OS, std::env::consts::ARCH)
    {
        ("linux", "x86_64") => (
            "manylinux_2_28_x86_64",
            "onnxruntime/capi/libonnxruntime.so.1.31.1",
            "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
            "libonnxruntime.so.1.31.1",
        ),
        ("linux", "aarch64") => (
            "manylinux_2_28_aarch64",
            "onnxruntime/capi/libonnxruntime.so.1.31.1",
            "8aa3b76b28c778a2b1dd660d34161adb1d508c9ccd04ff9dc80e26eca5df8467",
            "libonnxruntime.so.1.31.1",
        ),
        ("macos", "aarch64") => (
            "macosx_14_0_arm64",
            "onnxruntime/capi/libonnxruntime.1.31.1.dylib",
            "f8b06155feece624e55e49124340eea279da812529ae6fbc46a9f2be9c9cad2e",
            "libonnxruntime.1.31.1.dylib",
        ),
        (os, arch) => {
            return Err(format!(
                "no pinned ONNX Runtime build for {os}/{arch}; put libonnxruntime 1.31 in {} yourself",
                listen_dir()?.display()
            ));
        }
    };
    let pip_options: &'static [&'static str] = match platform {
        "manylinux_2_28_x86_64" => &["--platform", "manylinux_2_28_x86_64"],
        "manylinux_2_28_aarch64" => &["--platform", "manylinux_2_28_aarch64"],
        _ => &["--platform", "macosx_14_0_arm64"],
    };
    Ok(WheelMember {
        requirement: "onnxruntime==1.31.1",
        pip_options,
        member,
        sha256,
        file_name,
    })
}

/// `<models>/listen`: where `latent_choir::listen::runtime` looks.
fn listen_dir() -> Result<PathBuf, String> {
    Ok(models_dir()?.join("listen"))
}

/// Make sure ONNX Runtime and Basic Pitch's model are in place and intact.
pub fn fetch(scratch: &Path) -> Result<(), String> {
    let dir = listen_dir()?;
    fetch_member(&BASIC_PITCH, &dir, scratch)?;
    fetch_member(&onnx_runtime()?, &dir, scratch).map(|_| ())
}
