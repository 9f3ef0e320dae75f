//! Runs a hosted-plugin test in a child process. With `assert_process_allocs`, an allocation on
//! the audio thread *aborts* the process instead of panicking; in-process that would kill the
//! whole test binary with no hint of why. In a child, the parent sees the signal and says so.

use std::path::Path;
use std::process::Command;

/// Set in the child so the same test function runs its body instead of spawning again.
const CHILD_ENV: &str = "LATENT_CHOIR_ISOLATED_TEST";

/// Run `body` in a fresh copy of this test binary. `name` is the test's path as libtest knows it
/// (for a top-level `#[test] fn foo` in `tests/bar.rs`, that is `"foo"`).
pub fn isolated(name: &str, body: impl FnOnce()) {
    isolated_with_env(name, &[], body);
}

/// [`isolated`], with `env` set in the child: for code that reads its folders from the
/// environment (`XDG_DATA_HOME`), pointed at a scratch folder instead of the real home.
pub fn isolated_with_env(name: &str, env: &[(&str, &Path)], body: impl FnOnce()) {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let output = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .envs(env.iter().copied())
        .output()
        .expect("spawn the isolated test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        assert!(
            stdout.contains("1 passed"),
            "the isolated child ran no test named {name:?}:\n{stdout}"
        );
        print!("{stdout}");
        return;
    }
    let cause = describe_failure(&output.status, &stderr);
    panic!(
        "{name} failed in its child process: {cause}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
}

fn describe_failure(status: &std::process::ExitStatus, stderr: &str) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        match status.signal() {
            Some(6) if stderr.contains("memory allocation") => {
                return "aborted (SIGABRT) by assert_process_allocs: something allocated on the \
                        audio thread inside process()"
                    .to_owned();
            }
            Some(6) => return "aborted (SIGABRT)".to_owned(),
            Some(11) => return "crashed (SIGSEGV)".to_owned(),
            Some(signal) => return format!("killed by signal {signal}"),
            None => {}
        }
    }
    format!("exited with {status}")
}
