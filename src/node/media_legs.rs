//! The media legs of a live audio stream (`crate::streams`), on stock FreeSWITCH: a
//! `loopback` pair whose far end listens (a conference member for the room's mix, or an
//! `eavesdrop` of one member), and whose near end is parked and sends what it hears to the
//! controller over UDP with the Event Socket's `unicast`, playing what comes back.
//!
//! Only our own uuids, the room id, the node's profile and a member's channel uuid (as the
//! node reported it) reach these command lines, each checked as a token of its kind.

use super::commands::{checked_profile, checked_uuid};
use crate::conference::RoomId;
use crate::esl::{ApiCommand, Command, CommandError};

/// What a media leg's far end does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen<'a> {
    /// A member of the room's conference: hears the room's mix and is heard by the room
    /// (muted when nothing is to be heard from it).
    Room { profile: &'a str, speaks: bool },
    /// Hears only what one member says (`eavesdrop` of its read stream).
    Member { target: &'a str },
    /// Speaks to one member alone (`eavesdrop` of its write stream, whispering into it); what it
    /// hears is not used.
    Whisper { target: &'a str },
}

/// `originate {origination_uuid=<leg>,switchyard_role=stream,…}loopback/<far end>/default/inline
/// &park()`: the near end (`leg`) parks, the far end runs an inline dialplan.
/// How long a media leg has to answer (its `originate_timeout`; a loopback leg answers in
/// milliseconds, and one that does not is made again).
pub const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

pub fn originate(
    leg: &str,
    room: &RoomId,
    stream: &uuid::Uuid,
    listen: Listen<'_>,
) -> Result<ApiCommand, CommandError> {
    let far = match listen {
        Listen::Room { profile, speaks } => {
            let flags = if speaks { "" } else { "+flags{mute}" };
            format!("conference:{room}@{}{flags}", checked_profile(profile)?)
        }
        Listen::Member { target } => format!(
            "m:^:set:eavesdrop_bridge_aleg=true^set:eavesdrop_enable_dtmf=false^eavesdrop:{}",
            checked_uuid(target)?
        ),
        Listen::Whisper { target } => format!(
            "m:^:set:eavesdrop_bridge_bleg=true^set:eavesdrop_whisper_bleg=true^set:eavesdrop_enable_dtmf=false^eavesdrop:{}",
            checked_uuid(target)?
        ),
    };
    let vars = format!(
        "{{origination_uuid={},switchyard_role=stream,switchyard_room={room},switchyard_stream={stream},origination_caller_id_name=switchyard,origination_caller_id_number=0,originate_timeout={}}}",
        checked_uuid(leg)?,
        ANSWER_WITHIN.as_secs()
    );
    ApiCommand::new("originate")?
        .arg(&format!("{vars}loopback/{far}/default/inline"))?
        .arg("&park()")
}

/// `sendmsg <leg>` `call-command: unicast`: the parked leg sends what it hears, L16 at its
/// rate in 20 ms datagrams, from a port of its own (`local-port: 0`, the system's choice, which
/// the controller learns from the first datagram) to `remote`, and plays what arrives there.
pub fn unicast(leg: &str, remote: std::net::SocketAddr) -> Result<Command, CommandError> {
    let ip = remote.ip().to_string();
    let port = remote.port().to_string();
    Command::sendmsg(
        checked_uuid(leg)?,
        &[
            ("call-command", "unicast"),
            ("local-ip", "0.0.0.0"),
            ("local-port", "0"),
            ("remote-ip", &ip),
            ("remote-port", &port),
            ("transport", "udp"),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_of_another_shape_never_reaches_the_command_line() {
        let room = RoomId::parse("node1-room-550e8400-e29b-41d4-a716-446655440000").unwrap();
        let id = uuid::Uuid::nil();
        let leg = "0b3c2a54-6f7e-4f4c-9a51-2d3f4b5c6d7e";
        for bad in ["x^hangup", "1c4d3b65 7a8f", "../../etc", ""] {
            assert!(originate(leg, &room, &id, Listen::Member { target: bad }).is_err());
        }
        assert!(
            originate(
                leg,
                &room,
                &id,
                Listen::Room {
                    profile: "a b",
                    speaks: true
                }
            )
            .is_err()
        );
        let ok = originate(
            leg,
            &room,
            &id,
            Listen::Room {
                profile: "switchyard",
                speaks: false,
            },
        )
        .unwrap();
        assert_eq!(
            ok.as_str(),
            format!(
                "originate {{origination_uuid={leg},switchyard_role=stream,switchyard_room={room},switchyard_stream={id},origination_caller_id_name=switchyard,origination_caller_id_number=0,originate_timeout=3}}loopback/conference:{room}@switchyard+flags{{mute}}/default/inline &park()"
            )
        );
    }
}
