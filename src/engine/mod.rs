//! The sonification engine shared by the plugin and the command-line renderer: the same code
//! turns the worker's tokens into notes whether a host or a simulated transport drives it.

pub mod clip;
pub mod export;
pub mod feed;
pub mod history;
pub mod link;
pub mod offline;
pub mod player;
pub mod plugin_source;
pub mod recording;
pub mod replay;
pub mod run_collector;
pub mod saved_run;
pub mod sonifier;
pub mod soundfont_loader;
pub mod start;
