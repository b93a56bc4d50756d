//! Live audio streams of a room (see [`crate::conference::Stream`]): asked for through the
//! API, started and ended by the instance that carries the socket, and ended by the room
//! itself when it ends or when the member a stream follows leaves it.

use serde_json::{Value, json};
use uuid::Uuid;

use super::OpError;
use crate::conference::apply::{Applied, Effect, Step};
use crate::conference::events::EventKind;
use crate::conference::model::{
    MemberStatus, Micros, Room, RoomStatus, STREAMS_KEPT, Stream, StreamStatus, Track,
};

/// Most live streams one room holds at once (each takes one or two media legs on the node).
pub const MAX_STREAMS_PER_ROOM: usize = 10;

/// What a stream's webhooks carry (and, with its times, the API's view of it).
pub fn stream_data(room: &Room, s: &Stream) -> Value {
    json!({
        "room_id": room.id,
        "stream_id": s.id,
        "url": s.url,
        "track": s.track,
        "session": s.session,
        "protocol": s.protocol,
        "sample_rate": s.sample_rate,
        "bidirectional": s.bidirectional,
        "status": s.status.as_str(),
        "reason": s.reason,
        "error": s.error,
        "connections": s.connections,
    })
}

/// The channel a member track listens to on the room's node: the member's own, or the
/// node-to-node leg that carries it there.
pub fn member_target(room: &Room, stream: &Stream) -> Option<String> {
    let session = stream.session.as_ref()?;
    let m = room.member_by_session(session)?;
    Some(m.leg().unwrap_or(m.channel()).to_owned())
}

/// A new stream, `starting`: refused unless the room is live, the member of a member track is
/// in it, and the room has a place for one more.
pub fn request_stream(room: &mut Room, mut stream: Stream, now: Micros) -> Result<(), OpError> {
    match room.status {
        RoomStatus::Starting | RoomStatus::Progressing => {}
        other => return Err(OpError::RoomNotActive(other.as_str())),
    }
    super::require_steady(room)?;
    if stream.track == Track::Member {
        let session = stream.session.clone().ok_or(OpError::NotInRoom)?;
        let member = room
            .member_by_session(&session)
            .filter(|m| m.status == MemberStatus::Joined)
            .ok_or_else(|| OpError::NotAMember(session.to_string()))?;
        stream.channel = Some(member.channel().to_owned());
    }
    let live = room.streams.iter().filter(|s| s.is_live()).count();
    if live >= MAX_STREAMS_PER_ROOM {
        return Err(OpError::TooManyStreams(MAX_STREAMS_PER_ROOM));
    }
    stream.status = StreamStatus::Starting;
    stream.created_at = now;
    stream.updated_at = now;
    room.streams.push(stream);
    while room.streams.len() > STREAMS_KEPT {
        match room.streams.iter().position(|s| !s.is_live()) {
            Some(i) => drop(room.streams.remove(i)),
            None => break,
        }
    }
    room.seq += 1;
    room.updated_at = now;
    Ok(())
}

/// The live stream `id` if `carrier` carries it (a carrier that lost it to a takeover changes
/// nothing: the fence).
fn carried<'a>(room: &'a mut Room, id: Uuid, carrier: &str) -> Option<&'a mut Stream> {
    room.streams
        .iter_mut()
        .find(|s| s.id == id && s.is_live() && s.carrier.as_deref() == Some(carrier))
}

/// The stream's media legs are on the node (hung up when it ends); `replace`: in place of the
/// ones it had (its room moved, and the old ones are gone with the old conference).
pub fn stream_legs(
    room: &mut Room,
    id: Uuid,
    carrier: &str,
    legs: &[String],
    replace: bool,
    now: Micros,
) -> bool {
    let Some(s) = carried(room, id, carrier) else {
        return false;
    };
    if replace {
        s.legs.clear();
    }
    for leg in legs {
        if !s.legs.contains(leg) {
            s.legs.push(leg.clone());
        }
    }
    s.updated_at = now;
    room.seq += 1;
    room.updated_at = now;
    true
}

/// A socket to the server is open and audio flows: `conference.stream.started` (again after a
/// takeover, with one more connection). `None` when the stream is over or unknown.
pub fn stream_started(room: &mut Room, id: Uuid, carrier: &str, now: Micros) -> Option<Applied> {
    carried(room, id, carrier)?;
    let i = room.streams.iter().position(|s| s.id == id)?;
    let mut step = Step::new(room, now);
    let s = &mut step.room.streams[i];
    s.status = StreamStatus::Streaming;
    s.connections += 1;
    s.started_at.get_or_insert(now);
    s.updated_at = now;
    let data = stream_data(step.room, &step.room.streams[i]);
    step.emit(EventKind::StreamStarted, data);
    Some(step.finish())
}

/// Ends one stream (`stopped` or `failed`, with why); its legs are to be hung up
/// (`Effect::Cancel`). Nothing when it is over already, or when `carrier` (`None`: the
/// application's DELETE) no longer carries it.
pub fn end_stream(
    room: &mut Room,
    id: Uuid,
    carrier: Option<&str>,
    status: StreamStatus,
    reason: &str,
    error: Option<&str>,
    now: Micros,
) -> Applied {
    let Some(s) = room.streams.iter_mut().find(|s| s.id == id && s.is_live()) else {
        return Applied::default();
    };
    if carrier.is_some_and(|c| s.carrier.as_deref() != Some(c)) {
        return Applied::default();
    }
    s.error = error.map(str::to_owned);
    let mut step = Step::new(room, now);
    end_where(&mut step, |s| s.id == id, status, reason);
    step.finish()
}

/// Another instance takes the stream over from `from` (whose lease is gone): it carries it from
/// now on, and the old carrier's writes are refused. `false` when it is over or carried by
/// another already.
pub fn adopt_stream(room: &mut Room, id: Uuid, from: &str, to: &str, now: Micros) -> bool {
    let Some(s) = carried(room, id, from) else {
        return false;
    };
    s.carrier = Some(to.to_owned());
    s.updated_at = now;
    room.seq += 1;
    room.updated_at = now;
    true
}

/// Ends every live stream `which` picks.
pub(crate) fn end_where(
    step: &mut Step<'_>,
    which: impl Fn(&Stream) -> bool,
    status: StreamStatus,
    reason: &str,
) {
    let now = step.now;
    for i in 0..step.room.streams.len() {
        let s = &mut step.room.streams[i];
        if !s.is_live() || !which(s) {
            continue;
        }
        s.status = status;
        s.reason = Some(reason.to_owned());
        s.ended_at = Some(now);
        s.updated_at = now;
        let legs = s.legs.clone();
        let data = stream_data(step.room, &step.room.streams[i]);
        let kind = match status {
            StreamStatus::Failed => EventKind::StreamFailed,
            _ => EventKind::StreamStopped,
        };
        step.emit(kind, data);
        for channel in legs {
            step.out.effects.push(Effect::Cancel { channel });
        }
    }
}
