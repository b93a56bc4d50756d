//! Live audio streams: a room's (or one member's) audio to and from a WebSocket server the
//! application names, over a media leg on the node (see docs/architecture.md, "Live audio
//! streams").

pub mod audio;
pub mod protocol;
pub mod relay;
pub mod socket;
