//! `cargo xtask validate`: the release bundles through the third-party conformance tools —
//! clap-validator 0.4.1 (`validate`, then a timed `fuzz`) and Steinberg's VST 3.7.14 validator in
//! extensive mode. They are prebuilt Linux x86-64 binaries kept outside the repository (see
//! `../shared/validators/README.md`), so the README's test command does not depend on them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Overrides the folder the validators are looked up in.
pub const ENV_VAR: &str = "LATENT_CHOIR_VALIDATORS";
const CLAP_VALIDATOR: &str = "clap-validator";
const VST3_VALIDATOR: &str = "vst3-validator";
/// About 40 fuzz chunks on 2 cores (measured), short enough for every push.
const DEFAULT_FUZZ_SECONDS: u64 = 60;
/// A step that has not finished after this long (plus the fuzz time for the fuzzer) is taken as
/// hung and killed, so a deadlocked plugin fails CI instead of stalling it. Normal runs take a
/// fraction of this.
const STEP_TIMEOUT: Duration = Duration::from_secs(900);

const USAGE: &str = "cargo xtask validate [--fuzz-seconds N] [--no-build]";

pub struct Options {
    pub fuzz_seconds: u64,
    /// Validate the bundles already in `target/bundled/` (to rerun the validators quickly, or on
    /// a debug build).
    pub no_build: bool,
}

pub fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        fuzz_seconds: DEFAULT_FUZZ_SECONDS,
        no_build: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--no-build" {
            options.no_build = true;
            continue;
        }
        let value = match arg.strip_prefix("--fuzz-seconds") {
            Some("") => args.next().map(String::as_str),
            Some(rest) => rest.strip_prefix('='),
            None => return Err(format!("unknown argument {arg:?} (usage: {USAGE})")),
        };
        options.fuzz_seconds = value
            .and_then(|value| value.parse().ok())
            .filter(|&seconds| seconds > 0)
            .ok_or("--fuzz-seconds takes a whole number of seconds above 0")?;
    }
    Ok(options)
}

/// The two validator binaries, checked before anything is built so that a missing one costs
/// nothing but a message saying where to put it.
pub struct Validators {
    clap: PathBuf,
    vst3: PathBuf,
}

impl Validators {
    pub fn find(workspace: &Path) -> Result<Self, String> {
        let (dir, from_env) = match std::env::var_os(ENV_VAR) {
            Some(dir) if !dir.is_empty() => {
                let dir = PathBuf::from(dir);
                (std::path::absolute(&dir).unwrap_or(dir), true)
            }
            _ => {
                let shared = workspace.parent().unwrap_or(workspace);
                (shared.join("shared/validators"), false)
            }
        };
        let clap = dir.join(CLAP_VALIDATOR);
        let vst3 = dir.join(VST3_VALIDATOR);
        let problems: Vec<String> = [&clap, &vst3]
            .into_iter()
            .filter_map(|path| problem(path).map(|why| format!("  {} ({why})", path.display())))
            .collect();
        if problems.is_empty() {
            return Ok(Self { clap, vst3 });
        }
        let source = if from_env {
            format!("the folder in ${ENV_VAR}")
        } else {
            format!("the default folder (set ${ENV_VAR} to use another)")
        };
        Err(format!(
            "the plugin validators are not usable:\n{}\n\
             `cargo xtask validate` expects these executables in {source}:\n  {}\n  {}\n\
             They are clap-validator 0.4.1 (github.com/free-audio/clap-validator) and the \
             `validator` of Steinberg's VST3 SDK 3.7.14, built for Linux x86-64: put them there \
             (executable) or point {ENV_VAR} at the folder that holds them.",
            problems.join("\n"),
            clap.display(),
            vst3.display(),
        ))
    }
}

/// Why `path` cannot be run, if it cannot.
fn problem(path: &Path) -> Option<&'static str> {
    let Ok(metadata) = std::fs::metadata(path) else {
        return Some("missing");
    };
    if !metadata.is_file() {
        return Some("not a file");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o111 == 0 {
            return Some("not executable");
        }
    }
    None
}

/// Runs every step even after a failure, so one run shows all of them, then fails naming the
/// ones that failed.
pub fn run(validators: &Validators, bundled: &Path, options: &Options) -> Result<(), String> {
    leftovers::adopt();
    let clap = bundled.join("Latent Choir.clap");
    let vst3 = bundled.join("Latent Choir.vst3");
    let clap = clap.to_string_lossy();
    let vst3 = vst3.to_string_lossy();
    let fuzz_duration = format!("-d{}s", options.fuzz_seconds);
    let steps: [(&str, &Path, Vec<&str>, Duration); 3] = [
        (
            "clap-validator validate",
            &validators.clap,
            // Only the failures: the passing tests are just a long list in the CI log. Every
            // test runs, the preset-discovery ones included: clap-validator 0.4.1 deadlocks on
            // any preset declared with a load key (its metadata receiver locks its result mutex
            // twice), which is why the factory presets are one `.lcpreset` file each, declared
            // without a key (`clap_export.rs`).
            vec!["validate", "--only-failed", &clap],
            STEP_TIMEOUT,
        ),
        (
            "clap-validator fuzz",
            &validators.clap,
            vec!["fuzz", "-j2", &fuzz_duration, &clap],
            STEP_TIMEOUT + Duration::from_secs(options.fuzz_seconds),
        ),
        (
            "vst3-validator -e",
            &validators.vst3,
            // -q prints only the failing tests and their errors (without it, 3500 lines of
            // "Info:"); it still exits non-zero when a test fails.
            vec!["-q", "-e", &vst3],
            STEP_TIMEOUT,
        ),
    ];
    let mut summary = Vec::new();
    let mut failed = Vec::new();
    for (name, program, args, timeout) in steps {
        let command = format!("{} {}", program.display(), quoted(&args));
        println!();
        println!("$ {command}");
        let start = Instant::now();
        let outcome = run_step(program, &args, timeout);
        let seconds = start.elapsed().as_secs_f64();
        let killed = leftovers::kill_all();
        if !killed.is_empty() {
            println!("Killed what {name} left running:");
            for process in &killed {
                println!("  {process}");
            }
        }
        match &outcome {
            Ok(()) => summary.push(format!("  ok      {name} ({seconds:.0} s)")),
            Err(why) => {
                summary.push(format!("  FAILED  {name} ({seconds:.0} s): {why}"));
                summary.push(format!("          rerun: {command}"));
                failed.push(name);
            }
        }
        if !killed.is_empty() {
            summary.push(format!(
                "          left {} process(es) running, killed",
                killed.len()
            ));
        }
    }
    println!();
    println!("Validators:");
    for line in &summary {
        println!("{line}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of 3 validator steps failed: {} (their output is above)",
            failed.len(),
            failed.join(", ")
        ))
    }
}

/// One validator with its output streamed, killed if it outlives `timeout`.
fn run_step(program: &Path, args: &[&str], timeout: Duration) -> Result<(), String> {
    let mut child = Command::new(program)
        .args(args)
        .spawn()
        .map_err(|err| format!("could not start {}: {err}", program.display()))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{status}")),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "still running after {} s, killed",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(err) => return Err(format!("could not wait for it: {err}")),
        }
    }
}

/// The arguments as a shell would need them, so the printed command can be pasted.
fn quoted(args: &[&str]) -> String {
    args.iter()
        .map(|arg| {
            if arg.contains(' ') {
                format!("\"{arg}\"")
            } else {
                (*arg).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// clap-validator 0.4.1 gives up on a fuzz chunk after a fixed 60 s without killing its sandbox
/// process, which then keeps a plugin instance busy on CI's cores. As child subreaper (prctl) this
/// process inherits such orphans, so after each step it kills exactly those, and nothing else.
#[cfg(target_os = "linux")]
mod leftovers {
    pub fn adopt() {
        // SAFETY: plain prctl with integer arguments; failure only means nothing is adopted.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }

    /// Kills and reaps every child of this process, as "pid command" lines. Only a finished
    /// step's orphans can be children here: cargo and the validator have been waited for.
    pub fn kill_all() -> Vec<String> {
        let mut killed = Vec::new();
        // A killed orphan's own children come to us next: a few rounds catch them.
        for _ in 0..8 {
            let children = children();
            if children.is_empty() {
                break;
            }
            for (pid, command) in children {
                // SAFETY: signals and reaps our own child by pid.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
                killed.push(format!("{pid} {command}"));
            }
        }
        killed
    }

    fn children() -> Vec<(i32, String)> {
        let me = std::process::id().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
                let ppid = fields.nth(1)?;
                if ppid != me {
                    return None;
                }
                let command = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                let command = String::from_utf8_lossy(&command).replace('\0', " ");
                Some((pid, command.trim().to_owned()))
            })
            .collect()
    }
}

#[cfg(not(target_os = "linux"))]
mod leftovers {
    pub fn adopt() {}

    pub fn kill_all() -> Vec<String> {
        Vec::new()
    }
}
