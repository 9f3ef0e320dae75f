//! The model's thread and everything that talks to it: the session it runs, the link the plugin
//! holds, the feed that turns its results into frames for the audio thread.

pub mod control;
pub mod feed;
pub mod heard;
pub mod link;
pub mod remote_run;
pub mod session;
pub mod thread;
