//! `latent-choir serve` as a subprocess on a free loopback port, killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use super::cli;
use super::temp::TempDir;

/// A running server, killed on drop.
pub struct Serve {
    pub child: Child,
    pub port: u16,
}

impl Serve {
    /// The API base a client is given.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve --port 0 ARGS` with its map cache in `cache` and waits for its line.
pub fn serve(cache: &TempDir, args: &[&str]) -> Serve {
    let mut command: Command = cli::command();
    command
        .args(["serve", "--port", "0"])
        .args(args)
        .env("XDG_CACHE_HOME", cache.join("cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command.spawn().expect("start latent-choir serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the first line");
    let port = line
        .trim()
        .strip_prefix("listening on http://127.0.0.1:")
        .and_then(|p| p.parse().ok());
    let Some(port) = port else {
        let _ = child.kill();
        panic!("serve did not say where it listens: {line:?}");
    };
    Serve { child, port }
}
