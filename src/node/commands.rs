//! The FreeSWITCH commands the controller sends, built from checked parts: room ids, channel
//! uuids and profile names are validated before they are written into a command line, so
//! nothing an API caller sends reaches FreeSWITCH unchecked.

use crate::conference::RoomId;
use crate::conference::actions::{Gender, Talk};
use crate::esl::{ApiCommand, CommandError};

/// The text-to-speech engine talk actions use (mod_flite).
pub const TTS_ENGINE: &str = "flite";

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

/// `uuid_transfer <uuid> 'm:^:speak:flite|<voice>|<text>^…^park' inline`: out of the room,
/// hearing the room's post-actions, then parked; plain [`park`] when there is nothing to say.
pub fn leave(channel: &str, talks: &[Talk]) -> Result<ApiCommand, CommandError> {
    if talks.is_empty() {
        return park(channel);
    }
    let mut dest = String::from("m:^:");
    for talk in talks {
        dest.push_str(&format!(
            "speak:{TTS_ENGINE}|{}|{}^",
            voice(talk),
            checked_speech(&talk.text)?
        ));
    }
    dest.push_str("park");
    ApiCommand::new("uuid_transfer")?
        .arg(checked_uuid(channel)?)?
        .quoted(&dest)?
        .arg("inline")
}

/// `conference <room> saymember <member_id> #<voice>#<text>`: spoken to one member only.
pub fn say_member(room: &RoomId, member_id: u32, talk: &Talk) -> Result<ApiCommand, CommandError> {
    ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg("saymember")?
        .arg(&member_id.to_string())?
        .text(&format!("#{}#{}", voice(talk), checked_speech(&talk.text)?))
}

/// The flite voice for a talk: female `slt`, male `rms`, neutral `kal`.
pub fn voice(talk: &Talk) -> &'static str {
    match talk.gender {
        Gender::Female => "slt",
        Gender::Male => "rms",
        Gender::Neutral => "kal",
    }
}

/// Text that stays literal through FreeSWITCH's argument splitting, inline dialplans, the speak
/// application's `|` fields and channel-variable expansion.
fn checked_speech(text: &str) -> Result<&str, CommandError> {
    let bad = |c: char| c.is_control() || ['\'', '"', '\\', '^', '|', '{', '}', '`'].contains(&c);
    if text.trim().is_empty() || text.chars().any(bad) {
        return Err(CommandError::NotAToken {
            what: "text to speak",
            value: text.chars().take(64).collect(),
        });
    }
    Ok(text)
}

/// `conference <room> record <path>`: the node records the room into `path`.
pub fn record(room: &RoomId, path: &str) -> Result<ApiCommand, CommandError> {
    room_command(room, "record", Some(checked_path(path)?))
}

/// `conference <room> norecord <path>`.
pub fn norecord(room: &RoomId, path: &str) -> Result<ApiCommand, CommandError> {
    room_command(room, "norecord", Some(checked_path(path)?))
}

/// `conference <room> recording pause|resume <path>`.
pub fn pause_recording(room: &RoomId, path: &str, pause: bool) -> Result<ApiCommand, CommandError> {
    ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg("recording")?
        .arg(if pause { "pause" } else { "resume" })?
        .arg(checked_path(path)?)
}

/// A recordings directory that [`record`] can write into.
pub fn record_dir_ok(dir: &str) -> Result<&str, CommandError> {
    checked_path(dir)
}

/// A file path on the node: absolute, plain characters only.
fn checked_path(path: &str) -> Result<&str, CommandError> {
    let ok = path.starts_with('/')
        && !path.contains("..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
    if ok {
        Ok(path)
    } else {
        Err(CommandError::NotAToken {
            what: "recording path",
            value: path.chars().take(64).collect(),
        })
    }
}

/// `conference <room> <verb> <member> quiet` (mute, unmute, deaf, undeaf). `quiet`: the
/// profile has a TTS voice (for talk actions) and no muted/unmuted sounds, and unless told
/// `quiet` mod_conference then speaks "Muted", "Unmuted", "Deaf"… to the member itself
/// (measured on 1.11), a prompt the application did not ask for, and a flite synthesis per
/// command on the node.
pub fn member_switch(
    room: &RoomId,
    verb: &str,
    member_id: u32,
) -> Result<ApiCommand, CommandError> {
    ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg(verb)?
        .arg(&member_id.to_string())?
        .arg("quiet")
}

/// What a held member hears unless the request names something else: the node's hold music
/// stream (freeswitch-conf's `local_stream.conf.xml`).
pub const HOLD_MUSIC: &str = "local_stream://moh";

/// `conference <room> hold <member> <music>`: the member hears `music` (a URL or a stream,
/// one token) instead of the room.
pub fn hold(room: &RoomId, member_id: u32, music: &str) -> Result<ApiCommand, CommandError> {
    ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg("hold")?
        .arg(&member_id.to_string())?
        .arg(checked_token("hold music", music)?)
}

/// `conference <room> play <file> <member> nomux`: the file instead of the room, for that
/// member only (as a hold plays its music).
pub fn member_file(room: &RoomId, member_id: u32, file: &str) -> Result<ApiCommand, CommandError> {
    ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg("play")?
        .arg(checked_token("member file", file)?)?
        .arg(&member_id.to_string())?
        .arg("nomux")
}

/// A value passed as one argument of a conference command: no quotes, braces, commas or
/// backslashes that FreeSWITCH would split or expand.
fn checked_token<'a>(what: &'static str, value: &'a str) -> Result<&'a str, CommandError> {
    if value.is_empty() || value.contains(['{', '}', '\'', '"', '\\', ',']) {
        return Err(CommandError::NotAToken {
            what,
            value: value.chars().take(64).collect(),
        });
    }
    Ok(value)
}

/// `conference <room> play {switchyard_op=<op>}<url>`; the URL must be one token.
pub fn play(room: &RoomId, operation: &uuid::Uuid, url: &str) -> Result<ApiCommand, CommandError> {
    checked_token("playback URL", url)?;
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
