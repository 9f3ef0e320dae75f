//! Playing without a host: the simulated transport the command line renders on, recording what
//! the worker made, and replaying a run file.

pub mod error;
pub mod recording;
pub mod replay;
pub mod timeline;

pub use error::OfflineError;
