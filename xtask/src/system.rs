//! Debian packages the build and the tests need, installed when missing. CI runs as root on a
//! fresh machine; a developer without root is told the exact command instead.

use std::path::Path;
use std::process::{Command, Stdio};

/// Needed to compile the standalone app (cpal's ALSA and the JACK bindings).
pub const STANDALONE_BUILD: &[&str] = &["pkg-config", "libasound2-dev", "libjack-jackd2-dev"];
/// A virtual X display with software OpenGL, for the editor screenshot test.
pub const HEADLESS_GUI: &[&str] = &[
    "xvfb",
    "xauth",
    "libgl1-mesa-dri",
    "libglx-mesa0",
    "libx11-xcb1",
    "libxcursor1",
];

/// A small General MIDI SoundFont (6 MB) for the SoundFont voice tests.
pub const TEST_SOUNDFONT: &[&str] = &["timgm6mb-soundfont"];

pub fn ensure_packages(packages: &[&str]) -> Result<(), String> {
    if !Path::new("/usr/bin/dpkg-query").exists() {
        println!(
            "Not a Debian system: make sure these are installed: {}",
            packages.join(" ")
        );
        return Ok(());
    }
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| !is_installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    let as_root = is_root();
    if !as_root && !has_passwordless_sudo() {
        return Err(format!(
            "missing Debian packages: {}. Install them with:\n  sudo sh -c '{install}'",
            missing.join(" ")
        ));
    }
    println!("Installing missing Debian packages: {}", missing.join(" "));
    let mut command = if as_root {
        Command::new("sh")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", "sh"]);
        sudo
    };
    let status = command
        .args(["-c", &install])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|err| format!("could not run apt-get: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "installing {} failed ({status})",
            missing.join(" ")
        ))
    }
}

fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn has_passwordless_sudo() -> bool {
    Command::new("sudo")
        .args(["-n", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
