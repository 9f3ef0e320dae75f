//! The process's memory, from /proc/self/status (Linux), for the benchmark and fit reports.

/// VmRSS: what the process holds now.
pub fn resident() -> Option<String> {
    status_line("VmRSS:")
}

/// VmHWM: the most the process has held.
pub fn peak() -> Option<String> {
    status_line("VmHWM:")
}

fn status_line(key: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    Some(line.trim_start_matches(key).trim().to_owned())
}
