//! The FreeSWITCH commands the controller sends, built from checked parts: room ids, channel
//! uuids and profile names are validated before they are written into a command line, so
//! nothing an API caller sends reaches FreeSWITCH unchecked.

use crate::conference::RoomId;
use crate::esl::{ApiCommand, CommandError};

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

fn checked_uuid(s: &str) -> Result<&str, CommandError> {
    if is_uuid(s) {
        Ok(s)
    } else {
        Err(CommandError::NotAToken {
            what: "channel uuid",
            value: s.chars().take(64).collect(),
        })
    }
}

fn checked_profile(s: &str) -> Result<&str, CommandError> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(s)
    } else {
        Err(CommandError::NotAToken {
            what: "conference profile",
            value: s.chars().take(64).collect(),
        })
    }
}

/// `originate {origination_uuid=<ctl>,switchyard_role=control,…}<endpoint> &conference(<room>@<profile>+flags{mute|deaf})`
pub fn originate_control_leg(
    room: &RoomId,
    channel: &str,
    endpoint: &str,
    profile: &str,
) -> Result<ApiCommand, CommandError> {
    let vars = format!(
        "{{origination_uuid={},switchyard_role=control,switchyard_room={},origination_caller_id_name=switchyard,origination_caller_id_number=0}}",
        checked_uuid(channel)?,
        room
    );
    ApiCommand::new("originate")?
        .arg(&format!("{vars}{endpoint}"))?
        .arg(&format!(
            "&conference({room}@{}+flags{{mute|deaf}})",
            checked_profile(profile)?
        ))
}

/// `uuid_transfer <uuid> conference:<room>@<profile>+flags{mute},park: inline`: join muted; when
/// the member leaves the conference the call parks instead of hanging up.
pub fn join(channel: &str, room: &RoomId, profile: &str) -> Result<ApiCommand, CommandError> {
    ApiCommand::new("uuid_transfer")?
        .arg(checked_uuid(channel)?)?
        .arg(&format!(
            "conference:{room}@{}+flags{{mute}},park:",
            checked_profile(profile)?
        ))?
        .arg("inline")
}

/// `uuid_transfer <uuid> park inline`: out of the room, the call lives on.
pub fn park(channel: &str) -> Result<ApiCommand, CommandError> {
    ApiCommand::new("uuid_transfer")?
        .arg(checked_uuid(channel)?)?
        .arg("park")?
        .arg("inline")
}

/// `conference <room> <verb> <member_id>` for mute, unmute, kick, hup.
pub fn member(room: &RoomId, verb: &str, member_id: u32) -> Result<ApiCommand, CommandError> {
    ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg(verb)?
        .arg(&member_id.to_string())
}

/// `conference <room> play {switchyard_op=<op>}<url>`; the URL must be one token.
pub fn play(room: &RoomId, operation: &uuid::Uuid, url: &str) -> Result<ApiCommand, CommandError> {
    if url.contains(['{', '}', '\'', '"', '\\', ',']) {
        return Err(CommandError::NotAToken {
            what: "playback URL",
            value: url.chars().take(64).collect(),
        });
    }
    ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg("play")?
        .arg(&format!("{{switchyard_op={operation}}}{url}"))
}

/// `conference <room> <verb> [arg]` for pause_play, stop all, file-vol.
pub fn room_command(
    room: &RoomId,
    verb: &str,
    arg: Option<&str>,
) -> Result<ApiCommand, CommandError> {
    let cmd = ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg(verb)?;
    match arg {
        Some(a) => cmd.arg(a),
        None => Ok(cmd),
    }
}

/// `uuid_kill <uuid>`.
pub fn kill(channel: &str) -> Result<ApiCommand, CommandError> {
    ApiCommand::new("uuid_kill")?.arg(checked_uuid(channel)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> RoomId {
        RoomId::parse("abcde-room-550e8400-e29b-41d4-a716-446655440000").unwrap()
    }

    #[test]
    fn commands_are_built_from_checked_parts() {
        let ch = "28ec5c5e-0cdb-4582-983d-48f16177e7f7";
        assert_eq!(
            join(ch, &room(), "switchyard").unwrap().as_str(),
            format!(
                "uuid_transfer {ch} conference:{}@switchyard+flags{{mute}},park: inline",
                room()
            )
        );
        assert!(join("x y", &room(), "switchyard").is_err());
        assert!(join(ch, &room(), "bad profile").is_err());
        assert!(play(&room(), &uuid::Uuid::nil(), "https://x/a b.wav").is_err());
        assert!(play(&room(), &uuid::Uuid::nil(), "https://x/{evil}").is_err());
        assert!(play(&room(), &uuid::Uuid::nil(), "https://x/a.wav\napi hupall").is_err());
        let p = play(&room(), &uuid::Uuid::nil(), "https://cdn.example.com/a.wav").unwrap();
        assert!(p.as_str().ends_with(
            "play {switchyard_op=00000000-0000-0000-0000-000000000000}https://cdn.example.com/a.wav"
        ));
    }
}
