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
        "kind": if s.listen { "listen" } else { "server" },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::apply::remove_member;
    use crate::conference::model::{LeaveReason, Member, Protocol, RoomType};
    use crate::conference::{AppId, NodePrefix, RoomId, SessionId};

    const CALL: &str = "0b3c2a54-6f7e-4f4c-9a51-2d3f4b5c6d7e";

    fn room() -> Room {
        let node = NodePrefix::parse("nodea").unwrap();
        let mut room = Room::new(
            RoomId::new(&node, Uuid::new_v4()),
            AppId::parse("app").unwrap(),
            "r".into(),
            RoomType::Conference,
            "control".into(),
            1,
        );
        room.status = RoomStatus::Progressing;
        let mut m = Member::new(SessionId::new(&node, CALL), "d".into(), "c".into(), None, 1);
        m.status = MemberStatus::Joined;
        m.member_id = Some(2);
        room.members.insert(CALL.into(), m);
        room
    }

    fn stream(track: Track, carrier: &str) -> Stream {
        Stream {
            id: Uuid::new_v4(),
            url: "wss://example.com/".into(),
            track,
            session: (track == Track::Member)
                .then(|| SessionId::new(&NodePrefix::parse("nodea").unwrap(), CALL)),
            channel: None,
            protocol: Protocol::Twilio,
            sample_rate: 8000,
            bidirectional: true,
            parameters: Default::default(),
            status: StreamStatus::Starting,
            reason: None,
            error: None,
            legs: Vec::new(),
            carrier: Some(carrier.into()),
            listen: false,
            connections: 0,
            created_at: 0,
            started_at: None,
            ended_at: None,
            updated_at: 0,
        }
    }

    fn kinds(a: &Applied) -> Vec<EventKind> {
        a.events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn a_carrier_that_lost_its_stream_changes_nothing_of_it() {
        let mut r = room();
        let s = stream(Track::Room, "a");
        let id = s.id;
        request_stream(&mut r, s, 1).unwrap();
        assert!(stream_legs(&mut r, id, "a", &["leg-1".into()], false, 2));
        assert!(stream_started(&mut r, id, "a", 3).is_some());
        // b takes it over from a; a's writes are refused from then on.
        assert!(
            !adopt_stream(&mut r, id, "x", "b", 4),
            "only from its carrier"
        );
        assert!(adopt_stream(&mut r, id, "a", "b", 4));
        assert!(!adopt_stream(&mut r, id, "a", "c", 5), "once");
        assert!(!stream_legs(&mut r, id, "a", &["leg-2".into()], true, 6));
        assert!(stream_started(&mut r, id, "a", 6).is_none());
        let ended = end_stream(&mut r, id, Some("a"), StreamStatus::Failed, "lost", None, 7);
        assert!(ended.events.is_empty());
        assert!(r.streams[0].is_live());
        // The new carrier's do; its second start is told with its second connection.
        assert!(stream_legs(&mut r, id, "b", &["leg-3".into()], true, 8));
        assert_eq!(r.streams[0].legs, ["leg-3"]);
        let again = stream_started(&mut r, id, "b", 9).unwrap();
        assert_eq!(kinds(&again), [EventKind::StreamStarted]);
        assert_eq!(again.events[0].data["connections"], 2);
        // The application's DELETE needs no carrier; the legs are hung up.
        let deleted = end_stream(&mut r, id, None, StreamStatus::Stopped, "deleted", None, 10);
        assert_eq!(kinds(&deleted), [EventKind::StreamStopped]);
        assert_eq!(
            deleted.effects,
            [Effect::Cancel {
                channel: "leg-3".into()
            }]
        );
        let twice = end_stream(&mut r, id, None, StreamStatus::Stopped, "deleted", None, 11);
        assert!(twice.events.is_empty() && twice.effects.is_empty());
    }

    /// A listen-in is claimed by the first socket only, and the issuer's "no socket came" ends
    /// only one that nobody claimed.
    #[test]
    fn a_listen_in_is_claimed_once_and_ends_unopened_only_if_unclaimed() {
        use crate::conference::model::UNCLAIMED;
        let mut r = room();
        let mut s = stream(Track::Room, UNCLAIMED);
        s.listen = true;
        let (id, other) = (s.id, stream(Track::Room, UNCLAIMED));
        let other_id = other.id;
        request_stream(&mut r, s, 1).unwrap();
        request_stream(&mut r, other, 1).unwrap();
        assert_eq!(stream_data(&r, &r.streams[0])["kind"], "listen");
        assert_eq!(stream_data(&r, &r.streams[1])["kind"], "server");
        assert!(
            adopt_stream(&mut r, id, UNCLAIMED, "a", 2),
            "the first socket"
        );
        assert!(!adopt_stream(&mut r, id, UNCLAIMED, "b", 3), "not a second");
        let late = end_stream(
            &mut r,
            id,
            Some(UNCLAIMED),
            StreamStatus::Failed,
            "not_opened",
            None,
            4,
        );
        assert!(late.events.is_empty(), "claimed: not ended as unopened");
        assert!(r.streams[0].is_live());
        let unopened = end_stream(
            &mut r,
            other_id,
            Some(UNCLAIMED),
            StreamStatus::Failed,
            "not_opened",
            None,
            5,
        );
        assert_eq!(kinds(&unopened), [EventKind::StreamFailed]);
        assert_eq!(r.streams[1].reason.as_deref(), Some("not_opened"));
    }

    #[test]
    fn a_member_track_ends_with_its_member_and_every_stream_with_the_room() {
        let mut r = room();
        let member = stream(Track::Member, "a");
        let (m, whole) = (member.id, stream(Track::Room, "a"));
        let w = whole.id;
        request_stream(&mut r, member, 1).unwrap();
        request_stream(&mut r, whole, 1).unwrap();
        assert_eq!(r.streams[0].channel.as_deref(), Some(CALL));
        stream_legs(&mut r, m, "a", &["m-leg".into()], false, 2);
        let mut step = Step::new(&mut r, 3);
        remove_member(&mut step, CALL, LeaveReason::Left, None);
        let left = step.finish();
        assert!(left.effects.contains(&Effect::Cancel {
            channel: "m-leg".into()
        }));
        let stopped: Vec<_> = r.streams.iter().map(|s| (s.id, s.status)).collect();
        assert_eq!(
            stopped,
            [(m, StreamStatus::Stopped), (w, StreamStatus::Starting)]
        );
        assert_eq!(r.streams[0].reason.as_deref(), Some("member_left"));
        let (ended, _) = crate::conference::ops::request_terminate(&mut r, "deleted", 4);
        assert!(kinds(&ended).contains(&EventKind::StreamStopped));
        assert_eq!(r.streams[1].reason.as_deref(), Some("room_ended"));
    }

    #[test]
    fn a_stream_needs_a_live_room_a_member_in_it_and_a_place() {
        let mut r = room();
        let mut stranger = stream(Track::Member, "a");
        stranger.session = Some(SessionId::new(
            &NodePrefix::parse("nodeb").unwrap(),
            "1c4d3b65-7a8f-4a5d-8b62-3e4f5c6d7e8f",
        ));
        assert!(matches!(
            request_stream(&mut r, stranger, 1),
            Err(OpError::NotAMember(_))
        ));
        for _ in 0..MAX_STREAMS_PER_ROOM {
            request_stream(&mut r, stream(Track::Room, "a"), 1).unwrap();
        }
        assert_eq!(
            request_stream(&mut r, stream(Track::Room, "a"), 1),
            Err(OpError::TooManyStreams(MAX_STREAMS_PER_ROOM))
        );
        r.status = RoomStatus::Terminating;
        assert!(matches!(
            request_stream(&mut r, stream(Track::Room, "a"), 1),
            Err(OpError::RoomNotActive(_))
        ));
    }
}
