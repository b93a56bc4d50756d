//! Errors of the wire layer: what can go wrong while turning bytes into frames and back.
//!
//! Every error here is fatal for the connection it came from: after a framing error the byte
//! stream can no longer be trusted, so the caller closes the socket.

use std::io;

/// A framing or encoding failure on an Event Socket byte stream.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The socket failed underneath the codec.
    #[error("i/o error on the event socket: {0}")]
    Io(#[from] io::Error),

    /// A frame announced (or grew to) more bytes than the configured cap.
    #[error("frame of {size} bytes exceeds the {cap}-byte cap")]
    FrameTooLarge { size: usize, cap: usize },

    /// The header block of a frame did not end within the header cap.
    #[error("header block longer than {cap} bytes without a blank line")]
    HeaderBlockTooLarge { cap: usize },

    /// `Content-Length` was negative, empty or not a number.
    #[error("invalid Content-Length {0:?}")]
    BadContentLength(String),

    /// A header line without a `:` separator, or an empty header name.
    #[error("malformed header line {0:?}")]
    MalformedHeader(String),

    /// A frame without a `Content-Type` header.
    #[error("frame without Content-Type")]
    MissingContentType,

    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({buffered} bytes buffered)")]
    Truncated { buffered: usize },

    /// A command could not be written because one of its parts is unsafe.
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl CodecError {
    /// True when the peer sent bytes that are not a valid ESL stream (as opposed to an I/O failure).
    pub fn is_protocol_error(&self) -> bool {
        !matches!(self, CodecError::Io(_) | CodecError::Command(_))
    }
}

/// A command argument that must not reach FreeSWITCH as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// An argument was empty where a token is required.
    #[error("empty {what}")]
    Empty { what: &'static str },

    /// An argument carries a byte that could end the command line or start another one.
    #[error("{what} contains a forbidden character {ch:?}")]
    ForbiddenChar { what: &'static str, ch: char },

    /// An argument that must be a single token contains whitespace.
    #[error("{what} must be one token without whitespace: {value:?}")]
    NotAToken { what: &'static str, value: String },
}

/// A failure while reading the body of an event frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The frame is not an event (its Content-Type is not text/event-plain or text/event-json).
    #[error("frame of type {0} is not an event")]
    NotAnEvent(String),

    /// A line of a plain event body has no `:`.
    #[error("malformed event header line {0:?}")]
    MalformedHeader(String),

    /// A JSON event body is not a JSON object of strings.
    #[error("malformed JSON event: {0}")]
    MalformedJson(String),
}

/// A failure of a client connection or of one command on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// TCP connect failed or timed out.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },

    /// FreeSWITCH refused our password (`-ERR invalid`). Retrying with the same password is useless.
    #[error("authentication refused: {0}")]
    AuthFailed(String),

    /// FreeSWITCH's ACL refused this peer (`text/rude-rejection`).
    #[error("connection rejected by the node's ACL: {0}")]
    Rejected(String),

    /// The peer did not speak the Event Socket protocol as expected.
    #[error("protocol error: {0}")]
    Protocol(String),

    /// The connection is gone; the text says why (FreeSWITCH's disconnect notice, EOF, an error).
    #[error("disconnected: {0}")]
    Disconnected(String),

    /// No answer within the deadline.
    #[error("timed out waiting for {0}")]
    Timeout(String),

    /// FreeSWITCH answered the command with a failure (`-ERR …`, or usage text).
    #[error("{command} failed: {reply}")]
    CommandFailed { command: String, reply: String },

    /// The command was refused before it was sent.
    #[error(transparent)]
    InvalidCommand(#[from] CommandError),

    /// The consumer did not take events fast enough and the backlog passed its cap; the
    /// connection was closed rather than dropping events.
    #[error("event backlog passed {0} events; connection closed")]
    EventBacklogOverflow(usize),
}

impl ClientError {
    /// The node refused our credentials or our address: reconnecting will not help.
    pub fn is_auth_error(&self) -> bool {
        matches!(self, ClientError::AuthFailed(_) | ClientError::Rejected(_))
    }

    /// The connection failed or went away; a new connection may succeed.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Disconnected(_)
                | ClientError::Protocol(_)
                | ClientError::EventBacklogOverflow(_)
        )
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Timeout(_))
    }

    /// FreeSWITCH ran the command and said it failed.
    pub fn is_command_failure(&self) -> bool {
        matches!(self, ClientError::CommandFailed { .. })
    }
}
