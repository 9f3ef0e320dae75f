//! The audio thread's path from frames to sound: the clip on the host's timeline, the player,
//! the sonifier around the choir, the history ring the editor reads, and the SoundFont loader
//! that feeds the choir. Shared by the plugin and the offline renderer.

pub mod clip;
pub mod ear;
pub mod history;
pub mod player;
pub mod score_loader;
pub mod score_player;
pub mod sonifier;
pub mod soundfont_loader;
