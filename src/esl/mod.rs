//! The Event Socket wire layer: bytes ↔ frames ↔ events and replies, command builders, and the
//! client connection. It knows the protocol, not rooms, Redis or HTTP.

mod client;
mod codec;
mod command;
mod connection;
mod error;
mod event;
mod frame;
pub mod inspect;
mod json_event;
mod names;
mod parse;
mod reply;
mod request;
mod serialize;
mod tape;
mod wake;

pub use client::{Client, ClientConfig, DEFAULT_WAKE_INTERVAL, EventStream, Overflow};
pub use codec::{DEFAULT_MAX_FRAME, DEFAULT_MAX_HEADER_BLOCK, EslCodec, Limits, decode_all};
pub use command::{ApiCommand, Command, EventFormat, EventSet, Password};
pub use connection::CloseReason;
pub use error::{ClientError, CodecError, CommandError, EventError};
pub use event::{Event, HeaderValue};
pub use frame::{ContentType, Frame, FrameWriter};
pub use names::{ConferenceAction, EventName};
pub use reply::{ApiReply, reply_result};
pub use request::{Request, RequestCodec};
pub use serialize::{EventData, command_reply, url_encode};
pub use tape::{Tape, Taped};
pub use wake::Waker;
