//! `cargo xtask`: the project's set-up and build commands.
//!
//! * `cargo xtask demo`  — the main job: set up, build the plugin bundles, say where they are,
//!   and render a demo piece (WAV, MIDI, run file) into `target/demo/`.
//! * `cargo xtask test`  — set up everything the tests need, then run them all.
//! * `cargo xtask test-aarch64` — the kernel crate's tests cross-built for aarch64 and run under
//!   QEMU, with and without `dotprod` (installs the cross linker and QEMU when missing);
//!   `test` runs it too.
//! * `cargo xtask fetch-model` — put the default model and the `listen` encoders (ONNX Runtime,
//!   Basic Pitch) in the user data dir (both of the above call it) and fit the model's PCA map
//!   into the user cache dir (`demo` does too, after building).
//! * `cargo xtask validate [--fuzz-seconds N] [--no-build]` — rebuild the release bundles and run
//!   clap-validator (validate, fuzz) and Steinberg's VST3 validator on them.
//! * `cargo xtask bundle latent_choir [--release] [--features standalone]` — nice-plug's bundler,
//!   then the factory presets as VST3 preset files in `target/bundled/presets/` (see [`presets`]).

mod aarch64;
mod listen;
mod model;
mod presets;
mod system;
mod validate;
mod wheel;

use std::path::Path;
use std::process::{Command, ExitCode};

const PACKAGE: &str = "latent_choir";
/// The demo's prompt (the design's example piece).
const DEMO_PROMPT: &str = "The forest was silent.";
/// Features every test build uses: the standalone app for the GUI test, and the allocation
/// checker that aborts on any allocation inside `process()` in debug builds.
const TEST_FEATURES: &str = "standalone,assert_process_allocs";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let result = match args.next().as_deref() {
        Some("demo") => demo(),
        Some("test") => test(args.collect()),
        Some("test-aarch64") => test_aarch64(args.collect()),
        Some("fetch-model") => fetch_model_and_map(),
        Some("validate") => validate(args.collect()),
        Some("bundle") => bundle_command(args.collect()),
        Some(_) | None => nice_plug_xtask::main_with_args("cargo xtask", std::env::args().skip(1))
            .map_err(|err| format!("{err:#}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The default model and the `listen` encoders (ONNX Runtime, Basic Pitch), all pinned.
fn fetch_model() -> Result<std::path::PathBuf, String> {
    let model = model::fetch_default(&target_dir())?;
    listen::fetch(&target_dir())?;
    Ok(model)
}

/// The model, then its map, fitted by the release CLI (built here if needed).
fn fetch_model_and_map() -> Result<(), String> {
    let model = fetch_model()?;
    cargo(&["build", "--release", "--bin", "latent-choir"])?;
    model::fit_default_map(&target_dir().join("release/latent-choir"), &model)
}

fn demo() -> Result<(), String> {
    system::ensure_packages(system::STANDALONE_BUILD)?;
    let model = fetch_model()?;
    bundle(&["--release", "--features", "standalone"])?;
    // The bundle build also built the release CLI: fit the default model's map with it, so
    // the plugin does not have to on first use.
    model::fit_default_map(&target_dir().join("release/latent-choir"), &model)?;
    let bundled = target_dir().join("bundled");
    println!();
    println!("Built the Latent Choir bundles in {}:", bundled.display());
    for name in ["Latent Choir.clap", "Latent Choir.vst3", "Latent Choir"] {
        let path = bundled.join(name);
        let mark = if path.exists() { "ok" } else { "missing" };
        println!("  [{mark}] {}", path.display());
    }
    println!();
    println!("Install them for your DAW (per user), with the VST3 factory presets:");
    println!(
        "  mkdir -p ~/.clap ~/.vst3/presets && cp -r \"{0}/Latent Choir.clap\" ~/.clap/ && cp -r \"{0}/Latent Choir.vst3\" ~/.vst3/ && cp -r \"{0}/presets/{1}\" ~/.vst3/presets/",
        bundled.display(),
        presets::VENDOR,
    );
    println!("Run the standalone app without a sound card:");
    println!("  \"{}/Latent Choir\" --backend dummy", bundled.display());
    println!();
    // The bundle build also built the command-line engine: render the demo piece with it.
    let cli = target_dir().join("release/latent-choir");
    let demo = target_dir().join("demo");
    std::fs::create_dir_all(&demo)
        .map_err(|err| format!("cannot create {}: {err}", demo.display()))?;
    let (wav, midi, run) = (
        demo.join("forest.wav"),
        demo.join("forest.mid"),
        demo.join("forest.lcrun"),
    );
    let path = |p: &Path| p.display().to_string();
    let args = [
        "render".to_owned(),
        "--prompt".to_owned(),
        DEMO_PROMPT.to_owned(),
        "--bpm".to_owned(),
        "100".to_owned(),
        "--bars".to_owned(),
        "16".to_owned(),
        "--seed".to_owned(),
        "1".to_owned(),
        "--out".to_owned(),
        path(&wav),
        "--midi".to_owned(),
        path(&midi),
        "--run".to_owned(),
        path(&run),
    ];
    println!("$ {} {}", cli.display(), args.join(" "));
    println!("The model says:");
    let status = Command::new(&cli)
        .args(&args)
        .status()
        .map_err(|err| format!("could not run {}: {err}", cli.display()))?;
    if !status.success() {
        return Err(format!("the demo render failed ({status})"));
    }
    println!();
    println!("The demo piece (\"{DEMO_PROMPT}\", 100 BPM, 16 bars):");
    println!("  audio:    {}", wav.display());
    println!("  MIDI:     {}", midi.display());
    println!("  run file: {}", run.display());
    println!("Hear it again, in D Dorian, without the model:");
    println!(
        "  {} replay {} --param scale=Dorian --param root=D --out {}",
        cli.display(),
        run.display(),
        demo.join("forest-dorian.wav").display()
    );
    Ok(())
}

fn test(extra: Vec<String>) -> Result<(), String> {
    let mut needed = system::STANDALONE_BUILD.to_vec();
    needed.extend_from_slice(system::HEADLESS_GUI);
    needed.extend_from_slice(system::TEST_SOUNDFONT);
    system::ensure_packages(&needed)?;
    fetch_model()?;
    // The VST3 test loads the bundle exactly as a host would, so build it with the same
    // features as the tests: the cdylib is then shared and always fresh.
    bundle(&["--features", TEST_FEATURES])?;
    let mut args = vec!["test", "--workspace", "--features", TEST_FEATURES];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)?;
    test_aarch64(Vec::new())
}

/// The kernel crate's tests on aarch64 under QEMU (see [`aarch64`]).
fn test_aarch64(extra: Vec<String>) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    aarch64::test(&cargo, workspace_root(), &extra)
}

/// Rebuilds the CLAP and VST3 bundles in `target/bundled/` as a plain release build (no
/// standalone, no allocation checker: the fuzzer gets through more cases), replacing the debug
/// test bundles `cargo xtask test` leaves there, and runs the validators on them. The validators
/// are looked up first, so a user without them is told where to put them before any build.
fn validate(args: Vec<String>) -> Result<(), String> {
    let options = validate::parse_args(&args)?;
    let validators = validate::Validators::find(workspace_root())?;
    if !options.no_build {
        bundle(&["--release"])?;
    }
    // The fuzzer turns Generate on, sometimes in offline mode, where the plugin waits for the
    // model and its PCA map: fitted here first (by the release CLI, which the bundle build has
    // all but built), no fuzz case waits minutes for the fit.
    fetch_model_and_map()?;
    validate::run(&validators, &target_dir().join("bundled"), &options)
}

/// nice-plug's bundler for this package, then the VST3 factory presets beside the bundles.
fn bundle(args: &[&str]) -> Result<(), String> {
    let mut all = vec!["bundle", PACKAGE];
    all.extend_from_slice(args);
    nice_plug_xtask::main_with_args("cargo xtask", all.into_iter().map(String::from))
        .map_err(|err| format!("bundling failed: {err:#}"))?;
    presets::write(&target_dir().join("bundled"), args)
}

/// `cargo xtask bundle ...` as typed: this package gets its presets too; any other package (or
/// a `bundle-universal`) goes to nice-plug's bundler unchanged.
fn bundle_command(args: Vec<String>) -> Result<(), String> {
    match args.split_first() {
        Some((package, rest)) if package == PACKAGE => {
            bundle(&rest.iter().map(String::as_str).collect::<Vec<_>>())
        }
        _ => nice_plug_xtask::main_with_args(
            "cargo xtask",
            std::iter::once(String::from("bundle")).chain(args),
        )
        .map_err(|err| format!("bundling failed: {err:#}")),
    }
}

fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    println!("$ cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .map_err(|err| format!("could not run cargo: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace) or `target/`.
fn target_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
}
