//! Where the freshly built artifacts are. `cargo test` leaves the new cdylib next to the test
//! binary in `target/<profile>/deps/`; the copy one level up may be stale.

use std::path::PathBuf;

/// `target/<profile>/deps/`, the folder this test binary runs from.
pub fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().expect("deps folder").to_path_buf()
}

/// The plugin's cdylib built for this test run.
pub fn plugin_library() -> PathBuf {
    let path = deps_dir().join(format!(
        "{}latent_choir{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(
        path.exists(),
        "{} is missing: run the tests through `cargo test` so the cdylib is built",
        path.display()
    );
    path
}

/// `target/`, the workspace's target folder.
pub fn target_dir() -> PathBuf {
    deps_dir()
        .parent()
        .and_then(|profile| profile.parent())
        .expect("target folder")
        .to_path_buf()
}

/// Where tests keep files for a person to look at (screenshots, renders).
pub fn artifacts_dir() -> PathBuf {
    let dir = target_dir().join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}

/// A file or folder in `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
