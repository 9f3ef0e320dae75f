//! The `latent-choir` command line as a subprocess, the way a user runs it.

use std::process::{Command, Output};

/// `latent-choir`, arguments still to add.
pub fn command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_latent-choir"))
}

/// Runs `command` and asserts it succeeded, showing what it printed when it did not.
pub fn succeed(command: &mut Command) -> Output {
    let out = command.output().expect("run latent-choir");
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `command`, asserts it failed with a message rather than a panic; its stderr.
pub fn fail(command: &mut Command) -> String {
    let out = command.output().expect("run latent-choir");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{command:?} should fail:\n{stderr}");
    assert!(
        !stderr.contains("panicked"),
        "{command:?} panicked:\n{stderr}"
    );
    stderr
}
