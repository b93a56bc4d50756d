//! A live audio stream of a room: its audio (the room's mix, or one member's voice) sent to a
//! WebSocket server the application named, and what that server sends back played into the
//! room (or to that member alone). The room keeps what a stream is and where it stands; the
//! audio itself goes through media legs on the node (`legs`) and the controller instance that
//! carries the socket (`crate::streams`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Micros;
use crate::conference::SessionId;

/// Most streams a room keeps in its record, ended ones included (the oldest ended ones go).
pub const STREAMS_KEPT: usize = 50;

/// What the stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Track {
    /// The room's mix; what the server sends is heard by the whole room.
    Room,
    /// Only what one member says; what the server sends is heard by that member alone.
    Member,
}

/// The messages on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Twilio's bidirectional Media Streams, message for message (µ-law, 8 kHz).
    Twilio,
    /// Binary L16 frames after one JSON text frame of metadata.
    L16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamStatus {
    /// Asked for: its media legs and its socket are being opened.
    Starting,
    /// Audio flows both ways.
    Streaming,
    /// Ended as asked or as the room, the member or the server ended it.
    Stopped,
    /// Could not be opened, or lost and not regained.
    Failed,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Starting => "starting",
            StreamStatus::Streaming => "streaming",
            StreamStatus::Stopped => "stopped",
            StreamStatus::Failed => "failed",
        }
    }

    pub fn is_over(self) -> bool {
        matches!(self, StreamStatus::Stopped | StreamStatus::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    pub id: Uuid,
    /// The server's `wss://` (or, where allowed, `ws://`) URL.
    pub url: String,
    pub track: Track,
    /// The member a member track follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    /// That member's channel in the room's conference (the key of `Room::members`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    pub protocol: Protocol,
    pub sample_rate: u32,
    pub bidirectional: bool,
    /// The application's own values, sent to the server in the first message.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    pub status: StreamStatus,
    /// Why it stopped or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What went wrong, in words (a failed stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The media legs on the room's node (the parked end of each `loopback` pair), hung up
    /// when the stream ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legs: Vec<String>,
    /// The controller instance that carries it (its sockets and relay): only it changes the
    /// stream's legs and status (a DELETE excepted), and another takes it over once that
    /// instance's lease is gone (`rooms::streams`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// A listen-in from the dashboard (`POST …/listen`): its socket is the browser's, opened
    /// to the controller with a one-time ticket, so it ends with its carrier instead of being
    /// taken over (`url` is the listen endpoint's path).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub listen: bool,
    /// How many times a socket to the server was opened (a takeover opens a new one).
    #[serde(default)]
    pub connections: u32,
    pub created_at: Micros,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Micros>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Micros>,
    pub updated_at: Micros,
}

/// The carrier of a listen-in no socket has claimed yet: no instance holds this name.
pub const UNCLAIMED: &str = "unclaimed";

impl Stream {
    pub fn is_live(&self) -> bool {
        !self.status.is_over()
    }
}
