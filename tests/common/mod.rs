//! Shared pieces of the host-level test harness.
#![allow(dead_code)]

pub mod bounce;
pub mod clap_host;
pub mod cli;
pub mod isolate;
pub mod midi;
pub mod params;
pub mod paths;
pub mod serve;
pub mod signal;
pub mod state;
pub mod temp;
#[cfg(target_os = "linux")]
pub mod vst3_bundle;
pub mod vst3_raw;
