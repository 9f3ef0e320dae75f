//! `cargo xtask test-aarch64`: the kernel crate's tests on aarch64 under QEMU, so its NEON paths
//! are proven on an x86 machine too. Twice: on a CPU with `dotprod` (QEMU's `max`, the SDOT
//! path) and on a Cortex-A57 without it (the widening-multiply path). The kernel crate has no
//! dependencies, so it cross-builds with only the GNU cross linker.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::system;

const TARGET: &str = "aarch64-unknown-linux-gnu";
const KERNELS: &str = "latent-choir-kernels";
const LINKER: &str = "aarch64-linux-gnu-gcc";
const QEMU: &str = "qemu-aarch64";
/// The Debian packages that provide [`LINKER`], [`QEMU`] and the aarch64 C library in
/// [`SYSROOT`] (the linker's start files; `--no-install-recommends` leaves it out of the
/// linker's package).
const PACKAGES: &[&str] = &[
    "qemu-user",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
];
/// Where Debian's cross toolchain keeps the aarch64 C library QEMU loads binaries against.
const SYSROOT: &str = "/usr/aarch64-linux-gnu";
/// QEMU CPUs to run on, and what each proves.
const CPUS: [(&str, &str); 2] = [
    ("max", "NEON with dotprod (SDOT)"),
    ("cortex-a57", "NEON without dotprod"),
];

pub fn test(cargo: &str, root: &Path, extra: &[String]) -> Result<(), String> {
    ensure_target()?;
    system::ensure_packages(PACKAGES)?;
    if !on_path(LINKER) || !on_path(QEMU) {
        return Err(format!(
            "{LINKER} and {QEMU} are still not on PATH after installing {}",
            PACKAGES.join(" ")
        ));
    }
    let env = |name: &str| {
        format!(
            "CARGO_TARGET_{}_{name}",
            TARGET.to_uppercase().replace('-', "_")
        )
    };
    let runner = format!("{QEMU} -L {SYSROOT}");
    for (cpu, what) in CPUS {
        println!("$ QEMU_CPU={cpu} cargo test -p {KERNELS} --target {TARGET}   ({what})");
        let status = Command::new(cargo)
            .args(["test", "-p", KERNELS, "--target", TARGET])
            .args(extra)
            .env(env("LINKER"), LINKER)
            .env(env("RUNNER"), &runner)
            .env("QEMU_CPU", cpu)
            .current_dir(root)
            .status()
            .map_err(|err| format!("could not run cargo: {err}"))?;
        if !status.success() {
            return Err(format!(
                "the kernel tests failed on aarch64 under QEMU_CPU={cpu} ({what}): {status}"
            ));
        }
    }
    println!("The kernel tests passed on aarch64 with and without dotprod.");
    Ok(())
}

/// `rustup target add` when the aarch64 standard library is not installed.
fn ensure_target() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
        .map_err(|err| {
            format!("could not run rustup ({err}): install the Rust target {TARGET} yourself")
        })?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == TARGET)
    {
        return Ok(());
    }
    println!("$ rustup target add {TARGET}");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .map_err(|err| format!("could not run rustup: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`rustup target add {TARGET}` failed ({status})"))
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
