//! The domain: rooms, members (conferencecalls), sessions, playback and recordings, and the pure
//! functions that fold FreeSWITCH facts into them. It knows FreeSWITCH's vocabulary, not sockets,
//! Redis or HTTP.

pub mod actions;
pub mod apply;
pub mod events;
pub mod facts;
pub mod ids;
pub mod model;
pub mod ops;
pub mod session;
pub mod snapshot;

pub use apply::{Applied, Effect, Ignored, apply, apply_event, in_order};
pub use events::{DomainEvent, EventKind};
pub use facts::{ChannelFact, ChannelInfo, ConferenceFact, Fact, Observed, from_event};
pub use ids::{AppId, IdError, NodePrefix, RoomId, SessionId};
pub use model::{
    Action, Beep, Bridge, Carried, ControlLeg, Dialout, DialoutFailure, DialoutState, EndRule,
    Exit, LeaveReason, Level, MAX_TIMEOUT_SECS, METADATA_MAX_BYTES, Member, MemberStatus, Metadata,
    Micros, Migration, PAST_MEMBERS_KEPT, Playback, PlaybackStatus, Protocol, Recording,
    RecordingStatus, Room, RoomStatus, RoomType, Segment, Session, SessionState, Stream,
    StreamStatus, Switch, Track, UNCLAIMED, Upload, UploadStatus,
};
