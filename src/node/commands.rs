//! The FreeSWITCH commands the controller sends, built from checked parts: room ids, channel
//! uuids and profile names are validated before they are written into a command line, so
//! nothing an API caller sends reaches FreeSWITCH unchecked.

use crate::conference::actions::{Gender, Talk};
use crate::conference::{Exit, RoomId};
use crate::esl::{ApiCommand, CommandError};

/// The text-to-speech engine talk actions use (mod_flite).
pub const TTS_ENGINE: &str = "flite";

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

pub(crate) fn checked_uuid(s: &str) -> Result<&str, CommandError> {
    if is_uuid(s) {
        Ok(s)
    } else {
        Err(CommandError::NotAToken {
            what: "channel uuid",
            value: s.chars().take(64).collect(),
        })
    }
}

pub(crate) fn checked_profile(s: &str) -> Result<&str, CommandError> {
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

/// `originate {origination_uuid=<ctl>,switchyard_role=control,…}<endpoint> &conference(<room>@<profile>+flags{mute|deaf})`.
/// A room that waits for a moderator is created with `wait-mod` (a conference flag, taken from
/// the creating member's flags) and the node's hold music for the waiting members
/// (`conference_moh_sound`, read when the conference is created).
pub fn originate_control_leg(
    room: &RoomId,
    channel: &str,
    endpoint: &str,
    profile: &str,
    wait_for_moderator: bool,
) -> Result<ApiCommand, CommandError> {
    let moh = if wait_for_moderator {
        format!(",conference_moh_sound={HOLD_MUSIC}")
    } else {
        String::new()
    };
    let vars = format!(
        "{{origination_uuid={},switchyard_role=control,switchyard_room={},origination_caller_id_name=switchyard,origination_caller_id_number=0{moh}}}",
        checked_uuid(channel)?,
        room
    );
    let flags = if wait_for_moderator {
        "mute|deaf|wait-mod"
    } else {
        "mute|deaf"
    };
    ApiCommand::new("originate")?
        .arg(&format!("{vars}{endpoint}"))?
        .arg(&format!(
            "&conference({room}@{}+flags{{{flags}}})",
            checked_profile(profile)?
        ))
}

/// `uuid_transfer <uuid> conference:<room>@<profile>+flags{mute},park: inline`: join muted; when
/// the member leaves the conference the call parks instead of hanging up. A moderator joins
/// with `+flags{mute|moderator}`.
pub fn join(
    channel: &str,
    room: &RoomId,
    profile: &str,
    moderator: bool,
) -> Result<ApiCommand, CommandError> {
    let flags = if moderator { "mute|moderator" } else { "mute" };
    Ok(ApiCommand::new("uuid_transfer")?
        .arg(checked_uuid(channel)?)?
        .arg(&format!(
            "conference:{room}@{}+flags{{{flags}}},park:",
            checked_profile(profile)?
        ))?
        .arg("inline")?
        .awaiting("Action", "add-member")
        .awaiting("Unique-ID", channel))
}

/// The member's `del-member`: what taking a channel out of its room causes.
fn awaiting_exit(command: ApiCommand, channel: &str) -> ApiCommand {
    command
        .awaiting("Action", "del-member")
        .awaiting("Unique-ID", channel)
}

/// The tone a room plays as a member joins (a rising pair) and leaves (a falling pair):
/// FreeSWITCH's built-in tone generator, so every node has them. The `switchyard_beep`
/// parameter names them in their play-file-done (they share the room's play queue).
pub const ENTER_BEEP: &str = "{switchyard_beep=enter}tone_stream://%(120,40,660);%(120,0,880)";
pub const EXIT_BEEP: &str = "{switchyard_beep=exit}tone_stream://%(120,40,880);%(120,0,660)";

/// `conference <room> enter_sound file <beep>` (`enter`) or `exit_sound file <beep>`; the
/// room's sounds are on by default, only the file is missing.
pub fn beep(room: &RoomId, enter: bool) -> Result<ApiCommand, CommandError> {
    let (verb, file) = if enter {
        ("enter_sound", ENTER_BEEP)
    } else {
        ("exit_sound", EXIT_BEEP)
    };
    ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg(verb)?
        .arg("file")?
        .arg(file)
}

/// `uuid_transfer <uuid> park inline`: out of the room, the call lives on.
pub fn park(channel: &str) -> Result<ApiCommand, CommandError> {
    let command = ApiCommand::new("uuid_transfer")?
        .arg(checked_uuid(channel)?)?
        .arg("park")?
        .arg("inline")?;
    Ok(awaiting_exit(command, channel))
}

/// `uuid_transfer <uuid> 'm:^:speak:flite|<voice>|<text>^…^park' inline`: out of the room,
/// hearing the room's post-actions, then parked; plain [`park`] when there is nothing to say.
pub fn leave(channel: &str, talks: &[Talk]) -> Result<ApiCommand, CommandError> {
    if talks.is_empty() {
        return park(channel);
    }
    say_then(channel, talks, "park")
}

/// Takes a member out of its room on the room's node: its call is parked ([`leave`]), or its
/// node-to-node leg hung up (`uuid_kill`, or the post-actions then `hangup`): the bridge ends and
/// the call's own node parks it again (`park_after_bridge`, see `node::bridge`).
pub fn take_out(exit: &Exit, talks: &[Talk]) -> Result<ApiCommand, CommandError> {
    match (exit.bridged, talks.is_empty()) {
        (false, _) => leave(&exit.channel, talks),
        (true, true) => kill(&exit.channel),
        (true, false) => say_then(&exit.channel, talks, "hangup"),
    }
}

/// `uuid_transfer <uuid> 'm:^:speak:…^…^<last>' inline`.
fn say_then(channel: &str, talks: &[Talk], last: &str) -> Result<ApiCommand, CommandError> {
    let mut dest = String::from("m:^:");
    for talk in talks {
        dest.push_str(&format!(
            "speak:{TTS_ENGINE}|{}|{}^",
            voice(talk),
            checked_speech(&talk.text)?
        ));
    }
    dest.push_str(last);
    let command = ApiCommand::new("uuid_transfer")?
        .arg(checked_uuid(channel)?)?
        .quoted(&dest)?
        .arg("inline")?;
    Ok(awaiting_exit(command, channel))
}

/// `conference <room> saymember <member_id> #<voice>#<text>`: spoken to one member only.
pub fn say_member(room: &RoomId, member_id: u32, talk: &Talk) -> Result<ApiCommand, CommandError> {
    ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg("saymember")?
        .arg(&member_id.to_string())?
        .text(&format!("#{}#{}", voice(talk), checked_speech(&talk.text)?))
}

/// What a room or a member hears: a URL (one token), or text spoken by the node's flite voice
/// (`tts://flite|<voice>|<text>`, which plays as a file, so it ends with a done event).
pub fn tts_file(talk: &Talk) -> Result<String, CommandError> {
    Ok(format!(
        "tts://{TTS_ENGINE}|{}|{}",
        voice(talk),
        checked_speech(&talk.text)?
    ))
}

/// How a node speaks text (`fixtures/esl/11_versions.md`). FreeSWITCH 1.11 plays
/// `tts://<engine>|<voice>|<text>` as a file (mod_dptools gives the `tts` file format), and so
/// does a 1.10 that loads mod_ssml; a stock 1.10.12 has no `tts` format (`-ERR (play) File: …
/// not found.`) and speaks only with `say:<text>`, which takes no `{…}` variables, always uses the
/// profile's `tts-voice`, and fires no done event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Speech {
    /// `tts://` plays as a file, tagged, with its own done event.
    #[default]
    Files,
    /// Only `say:`: text is spoken with `say:<text>`, followed by [`SAY_MARKER`] tagged with the
    /// operation, whose done event (after the speech) ends it.
    Say,
}

impl Speech {
    /// From the node's answer to `show files` (rows `type,name,ikey`): whether a module gives
    /// the `tts` file format.
    pub fn from_show_files(reply: &str) -> Speech {
        if reply.lines().any(|l| l.split(',').nth(1) == Some("tts")) {
            Speech::Files
        } else {
            Speech::Say
        }
    }
}

/// Queued after a `say:` on a node without `tts://` files ([`Speech::Say`]): 20 ms of silence
/// that plays once the speech before it ended, tagged, so its done event ends the operation.
pub const SAY_MARKER: &str = "silence_stream://20";

/// What plays `file` (a URL, or a [`tts_file`]) tagged with `operation`, to the room or, with
/// `member`, to that member alone: one `conference <room> play`, or on a node that speaks with
/// [`Speech::Say`], the text's `say:` and then the tagged [`SAY_MARKER`].
pub fn play_tagged(
    room: &RoomId,
    operation: &uuid::Uuid,
    file: &str,
    member: Option<u32>,
    speech: Speech,
) -> Result<Vec<ApiCommand>, CommandError> {
    let to = |cmd: ApiCommand| match member {
        Some(id) => cmd.arg(&id.to_string()),
        None => Ok(cmd),
    };
    let text = file
        .strip_prefix("tts://")
        .and_then(|rest| rest.splitn(3, '|').nth(2));
    match (speech, text) {
        (Speech::Say, Some(text)) => {
            let say = ApiCommand::new("conference")?
                .arg(room.as_str())?
                .arg("play")?
                .quoted(&format!("say:{}", checked_speech(text)?))?;
            Ok(vec![to(say)?, to(play(room, operation, SAY_MARKER)?)?])
        }
        _ => Ok(vec![to(play(room, operation, file)?)?]),
    }
}

/// `conference <room> relate <coach> <id>,<id>… nospeak`: those members stop hearing the coach.
pub fn unhear(room: &RoomId, coach: u32, members: &[u32]) -> Result<ApiCommand, CommandError> {
    let ids: Vec<String> = members.iter().map(u32::to_string).collect();
    ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg("relate")?
        .arg(&coach.to_string())?
        .arg(&ids.join(","))?
        .arg("nospeak")
}

/// `conference <room> relate <coach> 0 clear`: every relationship of the coach is cleared.
pub fn hear_again(room: &RoomId, coach: u32) -> Result<ApiCommand, CommandError> {
    ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg("relate")?
        .arg(&coach.to_string())?
        .arg("0")?
        .arg("clear")
}

/// Whether a `relate` reply says it failed: it has one line per pair, `+OK …`, or
/// `-ERR relationship X->Y not found.` for a member gone meanwhile (which hears nothing anyway);
/// anything else (the usage text, another error) is a failure.
pub fn relate_failed(reply: &str) -> bool {
    let lines: Vec<&str> = reply.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.is_empty()
        || lines.iter().any(|l| {
            !(l.starts_with("+OK")
                || (l.starts_with("-ERR relationship") && l.ends_with("not found.")))
        })
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

/// `http_put <url> <path>` (mod_http_cache): the node `PUT`s its file at `path` to `url` (a
/// signed object-store URL, `objects::ObjectStore::put_url`); it answers `+OK <status>` or
/// `-ERR <status>`. The URL must be plain `http(s)` with no `{` (mod_http_cache would read
/// parameters from it) and no blank.
pub fn http_put(url: &str, path: &str) -> Result<ApiCommand, CommandError> {
    let plain = (url.starts_with("http://") || url.starts_with("https://"))
        && url
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
    if !plain {
        return Err(CommandError::NotAToken {
            what: "upload URL",
            value: url.chars().take(64).collect(),
        });
    }
    ApiCommand::new("http_put")?
        .arg(url)?
        .arg(checked_path(path)?)
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
    let member = member_id.to_string();
    Ok(ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg(verb)?
        .arg(&member)?
        .arg("quiet")?
        .awaiting("Action", &format!("{verb}-member"))
        .awaiting("Conference-Name", room.as_str())
        .awaiting("Member-ID", &member))
}

/// `conference <room> volume_in|volume_out|energy <member> <value>`: one of the member's
/// levels (see [`crate::conference::Level`]); confirmed by its volume-in-member,
/// volume-out-member or energy-level-member event. `energy` replies `Energy <id> = <value>`
/// with no `+OK`; an unknown member is `-ERR`.
pub fn member_level(
    room: &RoomId,
    level: crate::conference::Level,
    member_id: u32,
    value: i32,
) -> Result<ApiCommand, CommandError> {
    ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg(level.verb())?
        .arg(&member_id.to_string())?
        .arg(&value.to_string())
}

/// What a held member hears unless the request names something else: the node's hold music
/// stream (freeswitch-conf's `local_stream.conf.xml`).
pub const HOLD_MUSIC: &str = "local_stream://moh";

/// `conference <room> hold <member> <music>`: the member hears `music` (a URL or a stream,
/// one token) instead of the room.
pub fn hold(room: &RoomId, member_id: u32, music: &str) -> Result<ApiCommand, CommandError> {
    let member = member_id.to_string();
    Ok(ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg("hold")?
        .arg(&member)?
        .arg(checked_token("hold music", music)?)?
        .awaiting("Action", "hold-member")
        .awaiting("Conference-Name", room.as_str())
        .awaiting("Member-ID", &member))
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

/// `conference <room> play {switchyard_op=<op>}<url>`; the URL must be one token. Spoken text
/// (a [`tts_file`], which has blanks) goes in single quotes; braces, quotes and backslashes are
/// refused in it too.
pub fn play(room: &RoomId, operation: &uuid::Uuid, url: &str) -> Result<ApiCommand, CommandError> {
    let cmd = ApiCommand::new("conference")?
        .arg(room.as_str())?
        .arg("play")?;
    let tagged = format!("{{switchyard_op={operation}}}{url}");
    match url.strip_prefix("tts://") {
        Some(_) if !url.contains(['{', '}', '\'', '"', '\\']) => cmd.quoted(&tagged),
        _ => {
            checked_token("playback URL", url)?;
            cmd.arg(&tagged)
        }
    }
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

/// `uuid_kill <uuid> ORIGINATOR_CANCEL`: a call we placed, given up (the far end gets a CANCEL
/// with `Reason: SIP;cause=487`, or a BYE once answered).
pub fn cancel(channel: &str) -> Result<ApiCommand, CommandError> {
    kill(channel)?.arg("ORIGINATOR_CANCEL")
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_upload_takes_a_signed_url_and_a_plain_path_and_nothing_else() {
        let url = "http://127.0.0.1:3900/recordings/a/b.wav?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab12";
        let cmd = super::http_put(url, "/var/rec/b.wav").unwrap();
        assert_eq!(cmd.as_str(), format!("http_put {url} /var/rec/b.wav"));
        for bad in [
            "ftp://x/y",
            "{profile=x}http://x/y",
            "http://x/y z",
            "http://x/y\nsofia",
        ] {
            assert!(super::http_put(bad, "/var/rec/b.wav").is_err(), "{bad}");
        }
        assert!(super::http_put(url, "/var/rec/../../etc/passwd").is_err());
    }

    use super::*;

    fn room() -> RoomId {
        RoomId::parse("abcde-room-550e8400-e29b-41d4-a716-446655440000").unwrap()
    }

    #[test]
    fn commands_are_built_from_checked_parts() {
        let ch = "28ec5c5e-0cdb-4582-983d-48f16177e7f7";
        assert_eq!(
            join(ch, &room(), "switchyard", false).unwrap().as_str(),
            format!(
                "uuid_transfer {ch} conference:{}@switchyard+flags{{mute}},park: inline",
                room()
            )
        );
        assert!(
            join(ch, &room(), "switchyard", true)
                .unwrap()
                .as_str()
                .contains("+flags{mute|moderator},park:")
        );
        assert!(join("x y", &room(), "switchyard", false).is_err());
        assert!(join(ch, &room(), "bad profile", false).is_err());
        // Spoken text, to a room or a member, stays one quoted argument; what would break out
        // of it is refused.
        let talk = |text: &str| Talk {
            text: text.into(),
            language: "en-US".into(),
            gender: Gender::Male,
        };
        let file = tts_file(&talk("One minute, left.")).unwrap();
        assert_eq!(file, "tts://flite|rms|One minute, left.");
        let op = uuid::Uuid::nil();
        assert!(play(&room(), &op, &file).unwrap().as_str().ends_with(
            "play '{switchyard_op=00000000-0000-0000-0000-000000000000}tts://flite|rms|One minute, left.'"
        ));
        let lines = |member, speech| -> Vec<String> {
            play_tagged(&room(), &op, &file, member, speech)
                .unwrap()
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect()
        };
        let tagged = "{switchyard_op=00000000-0000-0000-0000-000000000000}";
        assert_eq!(
            lines(Some(7), Speech::Files),
            [format!("conference {} play '{tagged}{file}' 7", room())]
        );
        // A node without `tts://` files speaks with `say:` and ends the operation with a tagged
        // marker played after it, to the same listeners.
        assert_eq!(
            lines(Some(7), Speech::Say),
            [
                format!("conference {} play 'say:One minute, left.' 7", room()),
                format!("conference {} play {tagged}silence_stream://20 7", room())
            ]
        );
        assert_eq!(lines(None, Speech::Say).len(), 2);
        assert!(!lines(None, Speech::Say)[1].ends_with(" 7"));
        // A URL plays the same on both.
        let url = "https://x/a.wav";
        for speech in [Speech::Files, Speech::Say] {
            let cmds = play_tagged(&room(), &op, url, None, speech).unwrap();
            assert_eq!(cmds.len(), 1);
            assert!(cmds[0].as_str().ends_with(&format!("play {tagged}{url}")));
        }
        for bad in ["it's", "a|b", "${x}", "back\\slash"] {
            assert!(tts_file(&talk(bad)).is_err(), "{bad}");
        }
        assert!(play_tagged(&room(), &op, "https://x/a'b.wav", Some(7), Speech::Files).is_err());
        // `show files` as 1.11 and a stock 1.10.12 answer it.
        let shown = |v| std::fs::read_to_string(format!("fixtures/esl/11_show_files_{v}.txt"));
        assert_eq!(
            Speech::from_show_files(&shown("1.11").unwrap()),
            Speech::Files
        );
        assert_eq!(
            Speech::from_show_files(&shown("1.10").unwrap()),
            Speech::Say
        );
        assert_eq!(
            unhear(&room(), 5, &[1, 4, 9]).unwrap().as_str(),
            format!("conference {} relate 5 1,4,9 nospeak", room())
        );
        assert!(!relate_failed(
            "+OK 5->4 nospeak set\n-ERR relationship 5->9 not found.\n"
        ));
        assert!(relate_failed(
            "relate <member_id>[,<member_id>] <other_member_id>"
        ));
        assert!(relate_failed(""));
        assert!(play(&room(), &uuid::Uuid::nil(), "https://x/a b.wav").is_err());
        assert!(play(&room(), &uuid::Uuid::nil(), "https://x/{evil}").is_err());
        assert!(play(&room(), &uuid::Uuid::nil(), "https://x/a.wav\napi hupall").is_err());
        let p = play(&room(), &uuid::Uuid::nil(), "https://cdn.example.com/a.wav").unwrap();
        assert!(p.as_str().ends_with(
            "play {switchyard_op=00000000-0000-0000-0000-000000000000}https://cdn.example.com/a.wav"
        ));
    }
}
