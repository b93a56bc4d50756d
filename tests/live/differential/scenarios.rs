//! The scripted scenarios of `tests/live/differential/mod.rs`: each sends what the controller sends
//! (`src/node/commands.rs`) and waits on the events it reads.

use std::future::Future;
use std::pin::Pin;

use switchyard::conference::actions::{Gender, Talk};
use switchyard::conference::{Level, RoomId};
use switchyard::node::commands::{self, Speech, play_tagged};

use crate::common::scenario::{PROFILE, Run};

pub type Scenario = for<'a> fn(&'a mut Run) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

/// The DID every call dials (the `public` dialplan parks any number).
pub const DID: &str = "15550001000";

/// The room of a scenario (a controller room id: `<prefix>-room-<uuid>`).
pub const ROOM: &str = "dtest-room-6d1f4c1e-0b5a-4c3e-9d52-0c7f0e3a9b11";

/// Opens a room as the controller does: `bgapi originate` of a control leg into the conference
/// (`commands::originate_control_leg`), then waits for its add-member. Labels it `ctl`.
pub async fn open_room(run: &mut Run) -> String {
    open_room_with(
        run,
        &format!(",switchyard_role=control,switchyard_room={ROOM},origination_caller_id_name=switchyard,origination_caller_id_number=0"),
    )
    .await
}

/// A second room, for a scenario that moves a member between two.
pub const ROOM2: &str = "dtest-room-2b8e7a90-5c41-4d2f-8e6a-1f9d3c7b5a22";

/// [`open_room`] with `vars` (each after a comma) beside the leg's `origination_uuid`.
async fn open_room_with(run: &mut Run, vars: &str) -> String {
    open_named(run, ROOM, ("room", "ctl"), vars).await
}

/// Opens `room` with a control leg, labelled `labels` (the room's, the leg's).
async fn open_named(run: &mut Run, room: &str, labels: (&str, &str), vars: &str) -> String {
    let ctl = uuid::Uuid::new_v4().to_string();
    run.label(&ctl, labels.1);
    run.label(room, labels.0);
    let from = run.mark();
    run.bgapi(&format!(
        "originate {{origination_uuid={ctl}{vars}}}null/switchyard &conference({room}@{PROFILE}+flags{{mute|deaf}})"
    ))
    .await;
    run.conf_event(from, "add-member", Some(&ctl)).await;
    ctl
}

/// `uuid_transfer <uuid> conference:<room>@<profile>+flags{mute},park: inline`; the member id.
pub async fn join(run: &mut Run, uuid: &str) -> u32 {
    join_as(run, uuid, false).await
}

/// A join as the controller sends it (`commands::join`, `+flags{mute|moderator}` for a
/// moderator); the member id once its add-member came.
pub async fn join_as(run: &mut Run, uuid: &str, moderator: bool) -> u32 {
    let room = switchyard::conference::RoomId::parse(ROOM).unwrap();
    let cmd = commands::join(uuid, &room, PROFILE, moderator).unwrap();
    let from = run.mark();
    run.api(cmd.as_str()).await;
    run.conf_event(from, "add-member", Some(uuid))
        .await
        .member_id()
        .unwrap()
}

/// The conference thread starts a room's hold music again on its next tick (20 ms) with no
/// event to await: a second is the margin for a loaded machine.
async fn music_restarts() {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}

/// `conference <room> <verb> <member>`, waiting for the event `action` of `uuid`: as the
/// controller sends it (`commands::member_switch`, with `quiet`) for the switches it makes, as
/// another client would for the rest (`kick`).
pub async fn member(run: &mut Run, verb: &str, id: u32, uuid: &str, action: &str) {
    let line = match verb {
        "mute" | "unmute" | "deaf" | "undeaf" | "unhold" => {
            let room = RoomId::parse(ROOM).unwrap();
            commands::member_switch(&room, verb, id)
                .unwrap()
                .as_str()
                .to_owned()
        }
        _ => format!("conference {ROOM} {verb} {id}"),
    };
    let from = run.mark();
    run.api(&line).await;
    run.conf_event(from, action, Some(uuid)).await;
}

/// `uuid_kill <uuid>`, waiting for the channel to be destroyed.
pub async fn kill(run: &mut Run, uuid: &str) {
    let from = run.mark();
    run.api(commands::kill(uuid).unwrap().as_str()).await;
    run.destroyed(from, uuid).await;
}

/// The end of every scenario: the control leg killed (the room ends), every channel gone.
pub async fn close(run: &mut Run, ctl: &str) {
    let from = run.mark();
    run.api(commands::kill(ctl).unwrap().as_str()).await;
    run.conf_event(from, "conference-destroy", None).await;
    run.all_destroyed().await;
}

/// One SIP call parked, moved into a room, unmuted and muted, kicked back to park, hung up.
/// The caller sends no RTP: unmuted, a caller playing audio fires start-talking whenever
/// FreeSWITCH's energy detector gets to it, so two real runs differed by one event (CI, run
/// 31: start-talking before mute-member in one run only).
pub fn basic(run: &mut Run) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let call = run.call_silent(DID, "1001", "Alice").await;
        let ctl = open_room(run).await;
        let m = join(run, &call).await;
        run.api(&format!("conference {ROOM} json_list")).await;
        run.settled_channels().await;
        member(run, "unmute", m, &call, "unmute-member").await;
        member(run, "mute", m, &call, "mute-member").await;
        let from = run.mark();
        member(run, "kick", m, &call, "kick-member").await;
        run.channel_event(from, "CHANNEL_PARK", &call).await;
        kill(run, &call).await;
        close(run, &ctl).await;
    })
}

/// Odd caller names and numbers (spaces, `%`, `+`, non-ASCII) through park, a room and a hangup
/// inside the room.
pub fn odd_names(run: &mut Run) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let callers = [
            ("+15551230001", "Ann Smith"),
            ("1002", "100% Juice"),
            ("+442071234567", "+44 Caller"),
            ("1004", "Zoë Ünïcode 日本"),
        ];
        let mut calls = Vec::new();
        for (number, name) in callers {
            calls.push(run.call(DID, number, name).await);
        }
        let ctl = open_room(run).await;
        for call in &calls {
            join(run, call).await;
        }
        run.api(&format!("conference {ROOM} json_list")).await;
        run.settled_channels().await;
        for call in &calls {
            let from = run.mark();
            run.api(&format!("uuid_kill {call}")).await;
            run.conf_event(from, "del-member", Some(call)).await;
            run.destroyed(from, call).await;
        }
        close(run, &ctl).await;
    })
}

/// A control leg originated with a caller name holding spaces (as `switchyard lab` does for
/// its calls), parked, then killed.
pub fn originate_quoted_name(run: &mut Run) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let leg = uuid::Uuid::new_v4().to_string();
        run.label(&leg, "leg");
        let from = run.mark();
        run.bgapi(&format!(
            "originate {{origination_uuid={leg},switchyard_did={DID},origination_caller_id_number=1001,origination_caller_id_name='Ann Smith'}}null/{DID} &park"
        ))
        .await;
        run.channel_event(from, "CHANNEL_PARK", &leg).await;
        run.settled_channels().await;
        kill(run, &leg).await;
    })
}

/// A mono 16-bit 8 kHz WAV of `millis` ms (a quiet tone) in this process's media directory.
pub fn wav(name: &str, millis: u32) -> String {
    let dir = std::env::temp_dir().join(format!("switchyard-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let samples = 8 * millis;
    let data: Vec<u8> = (0..samples)
        .flat_map(|i| {
            let v = (f64::from(i) * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin();
            ((v * 2000.0) as i16).to_le_bytes()
        })
        .collect();
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    std::fs::write(&path, w).unwrap();
    path.to_string_lossy().into_owned()
}

/// Tagged plays as the controller sends them: three queued (each `{switchyard_op=…}`), then a
/// long one paused, resumed, its volume changed and stopped; then a file that does not exist.
pub fn plays(run: &mut Run) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let (short, shorter, long) = (wav("a.wav", 600), wav("b.wav", 400), wav("c.wav", 4000));
        let dir = std::path::Path::new(&short)
            .parent()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        run.label(&dir, "media");
        let call = run.call(DID, "1001", "Alice").await;
        let ctl = open_room(run).await;
        join(run, &call).await;
        let ops: Vec<String> = (1..=4)
            .map(|n| format!("00000000-0000-4000-8000-00000000000{n}"))
            .collect();
        for (n, op) in ops.iter().enumerate() {
            run.label(op, &format!("op{}", n + 1));
        }
        let from = run.mark();
        for (op, file) in ops.iter().zip([&short, &shorter, &short]) {
            run.api(&format!(
                "conference {ROOM} play {{switchyard_op={op}}}{file}"
            ))
            .await;
        }
        run.wait_from(from, "the third play-file-done", |e| {
            e.header("Action").as_deref() == Some("play-file-done")
                && e.header("switchyard_op").as_deref() == Some(ops[2].as_str())
        })
        .await;
        let from = run.mark();
        run.api(&format!(
            "conference {ROOM} play {{switchyard_op={}}}{long}",
            ops[3]
        ))
        .await;
        run.conf_event(from, "play-file", None).await;
        // As the controller pauses (a toggle), sets the volume and stops.
        let room = RoomId::parse(ROOM).unwrap();
        let control = |verb: &str, arg: Option<&str>| {
            commands::room_command(&room, verb, arg)
                .unwrap()
                .as_str()
                .to_owned()
        };
        run.api(&control("pause_play", None)).await;
        run.api(&control("pause_play", None)).await;
        run.api(&control("file-vol", Some("3"))).await;
        run.api(&control("file-vol", Some("-50"))).await;
        let from = run.mark();
        run.api(&control("stop", Some("all"))).await;
        run.conf_event(from, "play-file-done", None).await;
        run.api(&control("stop", Some("all"))).await;
        run.api(&format!(
            "conference {ROOM} play {{switchyard_op={}}}{dir}/missing.wav",
            ops[0]
        ))
        .await;
        kill(run, &call).await;
        close(run, &ctl).await;
    })
}

/// `record` and `norecord` of a room, as the controller sends them.
pub fn record(run: &mut Run) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-diff-rec-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.to_string_lossy().into_owned();
        run.label(&dir, "recdir");
        let call = run.call(DID, "1001", "Alice").await;
        let ctl = open_room(run).await;
        join(run, &call).await;
        let path = format!("{dir}/room.wav");
        let room = RoomId::parse(ROOM).unwrap();
        let from = run.mark();
        run.api(commands::record(&room, &path).unwrap().as_str())
            .await;
        run.conf_event(from, "start-recording", None).await;
        run.api(&format!("conference {ROOM} json_list")).await;
        // Paused and resumed as the controller does it, then a second pause of a path not
        // recorded.
        for (pause, action) in [(true, "pause-recording"), (false, "resume-recording")] {
            let from = run.mark();
            run.api(
                commands::pause_recording(&room, &path, pause)
                    .unwrap()
                    .as_str(),
            )
            .await;
            run.conf_event(from, action, None).await;
        }
        let other = format!("{dir}/other.wav");
        run.api(
            commands::pause_recording(&room, &other, true)
                .unwrap()
                .as_str(),
        )
        .await;
        let norecord = commands::norecord(&room, &path).unwrap();
        let from = run.mark();
        run.api(norecord.as_str()).await;
        run.conf_event(from, "stop-recording", None).await;
        run.api(norecord.as_str()).await;
        // The finished file put to a URL (recordings in object storage): accepted, refused,
        // and a file the node does not have.
        let receiver = put_receiver();
        run.label(&receiver, "receiver");
        for (url, file) in [
            (format!("{receiver}/ok/room.wav"), path.clone()),
            (format!("{receiver}/refused/room.wav"), path.clone()),
            (format!("{receiver}/ok/none.wav"), format!("{dir}/none.wav")),
        ] {
            run.api(commands::http_put(&url, &file).unwrap().as_str())
                .await;
        }
        kill(run, &call).await;
        close(run, &ctl).await;
        let _ = std::fs::remove_dir_all(&dir);
    })
}

/// Text to speech: `saymember` (the controller's greetings) and `say` to the room, and a leave
/// that speaks before parking (`uuid_transfer 'm:^:speak:…^park' inline`).
pub fn speech(run: &mut Run) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let call = run.call(DID, "1001", "Alice").await;
        let ctl = open_room(run).await;
        let m = join(run, &call).await;
        let room = RoomId::parse(ROOM).unwrap();
        let talk = |text: &str| Talk {
            text: text.into(),
            language: "en-US".into(),
            gender: Gender::Female,
        };
        let from = run.mark();
        let greet = commands::say_member(&room, m, &talk("Hello there")).unwrap();
        run.api(greet.as_str()).await;
        run.conf_event(from, "speak-text-member", Some(&call)).await;
        let from = run.mark();
        run.api(&format!("conference {ROOM} say Welcome")).await;
        run.conf_event(from, "speak-text", None).await;
        let from = run.mark();
        let bye = commands::leave(&call, &[talk("Goodbye, Alice")]).unwrap();
        run.api(bye.as_str()).await;
        run.conf_event(from, "del-member", Some(&call)).await;
        run.channel_event(from, "CHANNEL_PARK", &call).await;
        kill(run, &call).await;
        close(run, &ctl).await;
    })
}

/// A burst of 30 calls at once, each moved into one room; three sent out by `hup` (which, like
/// `kick`, ends the member's conference app: the call parks), one moved out with
/// `uuid_transfer … park inline`, then every call killed (in the room or parked).
pub fn burst(run: &mut Run) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let numbers: Vec<String> = (0..30).map(|n| format!("20{n:02}")).collect();
        let names: Vec<String> = (0..30).map(|n| format!("Caller {n}")).collect();
        let pairs: Vec<(&str, &str)> = numbers
            .iter()
            .zip(&names)
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let calls = run.calls(DID, &pairs).await;
        let ctl = open_room(run).await;
        let mut members = Vec::new();
        for call in &calls {
            members.push(join(run, call).await);
        }
        run.api(&format!("conference {ROOM} json_list")).await;
        run.settled_channels().await;
        for (call, m) in calls.iter().zip(&members).take(3) {
            let from = run.mark();
            run.api(&format!("conference {ROOM} hup {m}")).await;
            run.conf_event(from, "del-member", Some(call)).await;
            run.channel_event(from, "CHANNEL_PARK", call).await;
        }
        let from = run.mark();
        run.api(&format!("uuid_transfer {} park inline", calls[3]))
            .await;
        run.conf_event(from, "del-member", Some(&calls[3])).await;
        run.channel_event(from, "CHANNEL_PARK", &calls[3]).await;
        for call in &calls {
            kill(run, call).await;
        }
        close(run, &ctl).await;
    })
}

/// Every scenario's name (its `fn` name).
pub const NAMES: [&str; 13] = [
    "basic",
    "odd_names",
    "originate_quoted_name",
    "plays",
    "record",
    "speech",
    "burst",
    "url_play",
    "url_play_missing",
    "participants",
    "wait_mod",
    "dtmf",
    "bare_legs",
];

/// The participant controls as the controller sends them: deaf/undeaf; a hold with a file
/// (which ends while held) and the unhold; an announcement played to one member, tagged, and
/// one spoken (`tts://`, quoted); a hold on the node's own music and a file for one member
/// (`nomux`); `relate` for a coach and its clearing; the room's enter tone (tagged) played when
/// a moderator joins, and its exit tone when one leaves.
pub fn participants(run: &mut Run) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let (hold, note) = (wav("hold.wav", 500), wav("note.wav", 400));
        let dir = std::path::Path::new(&hold)
            .parent()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        run.label(&dir, "media");
        let (a, b) = (
            run.call(DID, "1001", "Alice").await,
            run.call(DID, "1002", "Bob").await,
        );
        let ctl = open_room(run).await;
        let ma = join(run, &a).await;
        let mb = join(run, &b).await;
        member(run, "deaf", ma, &a, "deaf-member").await;
        member(run, "undeaf", ma, &a, "undeaf-member").await;
        let room = RoomId::parse(ROOM).unwrap();
        // A member's levels (`commands::member_level`): volumes past ±4 are clamped by the
        // node; energy replies without `+OK`, its event carrying `Energy-Level` twice.
        for (level, value, action) in [
            (Level::VolumeIn, 3, "volume-in-member"),
            (Level::VolumeOut, -4, "volume-out-member"),
            (Level::Energy, 300, "energy-level-member"),
        ] {
            let from = run.mark();
            run.api(
                commands::member_level(&room, level, mb, value)
                    .unwrap()
                    .as_str(),
            )
            .await;
            run.conf_event(from, action, Some(&b)).await;
        }
        // A hold with a file: it ends while the member is still held.
        let from = run.mark();
        run.api(commands::hold(&room, mb, &hold).unwrap().as_str())
            .await;
        run.conf_event(from, "hold-member", Some(&b)).await;
        run.conf_event(from, "play-file-member-done", Some(&b))
            .await;
        member(run, "unhold", mb, &b, "unhold-member").await;
        // A hold with no music given: the node's own (`local_stream://moh`, which loops).
        let from = run.mark();
        run.api(
            commands::hold(&room, mb, commands::HOLD_MUSIC)
                .unwrap()
                .as_str(),
        )
        .await;
        run.conf_event(from, "hold-member", Some(&b)).await;
        // The music is stopped by the member's thread, after the unhold's reply.
        let from = run.mark();
        member(run, "unhold", mb, &b, "unhold-member").await;
        run.conf_event(from, "play-file-member-done", Some(&b))
            .await;
        // A file instead of the room for one member (`commands::member_file`).
        let from = run.mark();
        run.api(commands::member_file(&room, ma, &note).unwrap().as_str())
            .await;
        run.conf_event(from, "play-file-member-done", Some(&a))
            .await;
        // Announcements to one member: a tagged file, then spoken text.
        let op = "00000000-0000-4000-8000-000000000001";
        run.label(op, "op1");
        let from = run.mark();
        for cmd in play_tagged(&room, &op.parse().unwrap(), &note, Some(ma), Speech::Files).unwrap()
        {
            run.api(cmd.as_str()).await;
        }
        run.conf_event(from, "play-file-member", Some(&a)).await;
        run.conf_event(from, "play-file-member-done", Some(&a))
            .await;
        // Spoken as the controller speaks on this node: a `tts://` file (1.11), or `say:` and a
        // tagged marker where no module gives `tts://` (a stock 1.10).
        let speech = Speech::from_show_files(&run.api("show files").await);
        let spoken = play_tagged(
            &room,
            &op.parse().unwrap(),
            "tts://flite|slt|Hi.",
            Some(mb),
            speech,
        )
        .unwrap();
        let from = run.mark();
        for cmd in &spoken {
            run.api(cmd.as_str()).await;
        }
        run.conf_event(from, "play-file-member-done", Some(&b))
            .await;
        // A coach: relate, then cleared.
        run.api(commands::unhear(&room, ma, &[mb, 999]).unwrap().as_str())
            .await;
        run.api(commands::hear_again(&room, ma).unwrap().as_str())
            .await;
        // The enter tone, tagged, played as a member joins.
        run.api(commands::beep(&room, true).unwrap().as_str()).await;
        let c = run.call(DID, "1003", "Carol").await;
        let from = run.mark();
        join_as(run, &c, true).await;
        run.conf_event(from, "play-file-done", None).await;
        // The exit tone, played as a member leaves.
        run.api(commands::beep(&room, false).unwrap().as_str())
            .await;
        let from = run.mark();
        kill(run, &c).await;
        run.conf_event(from, "play-file-done", None).await;
        // A member sent straight into another room (`conference/move`: the join's own command
        // while it is in this one): its del-member here (and the exit tone), its add-member
        // there.
        let ctl2 = open_named(
            run,
            ROOM2,
            ("room2", "ctl2"),
            &format!(",switchyard_role=control,switchyard_room={ROOM2},origination_caller_id_name=switchyard,origination_caller_id_number=0"),
        )
        .await;
        let other = RoomId::parse(ROOM2).unwrap();
        let from = run.mark();
        run.api(commands::join(&a, &other, PROFILE, false).unwrap().as_str())
            .await;
        run.conf_event(from, "del-member", Some(&a)).await;
        run.conf_event(from, "add-member", Some(&a)).await;
        run.conf_event(from, "play-file-done", None).await;
        kill(run, &a).await;
        let from = run.mark();
        run.api(commands::kill(&ctl2).unwrap().as_str()).await;
        run.conf_event(from, "conference-destroy", None).await;
        kill(run, &b).await;
        close(run, &ctl).await;
    })
}

/// A dial-out as `rooms::dial_out` sends it (`node::dialout::originate`): the room calls a SIP
/// callee who answers (it enters the room at once, muted; leaves to park when kicked; hung up),
/// the same with no caller id, unmuted, as a moderator,
/// one who is busy (486: the job fails with USER_BUSY), and one who rings and never answers (the
/// job fails with NO_ANSWER at the 1 s timeout, after the leg's HANGUP), and one given up while
/// it rings (`commands::cancel`).
pub fn dialout(run: &mut Run) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        use crate::common::sipp::Answer;
        use switchyard::node::dialout::{Destination, Dial, originate};
        let ctl = open_room(run).await;
        let room = RoomId::parse(ROOM).unwrap();
        // A dial-out with its optional parts (a caller id, muted) or without them (no caller
        // id: the node's default; unmuted; a moderator).
        let dial = |to: &str, channel: &uuid::Uuid, timeout_secs: u32, full: bool| {
            let endpoint = Destination::parse(to)
                .unwrap()
                .endpoint("inbound", None)
                .unwrap();
            originate(&Dial {
                room: &room,
                channel,
                endpoint: &endpoint,
                app: "diffapp",
                caller_id_number: full.then_some("+15550001111"),
                caller_id_name: full.then_some("Switchyard"),
                timeout_secs,
                profile: PROFILE,
                muted: full,
                moderator: !full,
            })
            .unwrap()
            .as_str()
            .to_owned()
        };
        let line = |to: &str, channel: &uuid::Uuid, timeout_secs: u32| {
            dial(to, channel, timeout_secs, true)
        };
        let to = run.callee(Answer::Yes).await;
        let answered = uuid::Uuid::new_v4();
        run.label(&answered.to_string(), "dialed");
        let from = run.mark();
        run.bgapi(&line(&to, &answered, 10)).await;
        let dialed = answered.to_string();
        let id = run
            .conf_event(from, "add-member", Some(&dialed))
            .await
            .member_id()
            .unwrap();
        member(run, "kick", id, &dialed, "del-member").await;
        run.channel_event(from, "CHANNEL_PARK", &dialed).await;
        kill(run, &dialed).await;
        // The same with none of the optional parts.
        let to = run.callee(Answer::Yes).await;
        let bare = uuid::Uuid::new_v4();
        run.label(&bare.to_string(), "dialed_bare");
        let from = run.mark();
        run.bgapi(&dial(&to, &bare, 10, false)).await;
        let bare = bare.to_string();
        let id = run
            .conf_event(from, "add-member", Some(&bare))
            .await
            .member_id()
            .unwrap();
        member(run, "kick", id, &bare, "del-member").await;
        run.channel_event(from, "CHANNEL_PARK", &bare).await;
        kill(run, &bare).await;
        let to = run.callee(Answer::Busy).await;
        let busy = uuid::Uuid::new_v4();
        run.label(&busy.to_string(), "busy");
        let from = run.mark();
        run.bgapi(&line(&to, &busy, 10)).await;
        run.destroyed(from, &busy.to_string()).await;
        // Given up by the node's own timeout while it rings: 3 s, so the callee's 180 Ringing
        // comes before it even on a loaded machine (with 1 s a CI run saw the node give up
        // before the 180, without CHANNEL_PROGRESS).
        let to = run.callee(Answer::Never).await;
        let silent = uuid::Uuid::new_v4();
        run.label(&silent.to_string(), "silent");
        let from = run.mark();
        run.bgapi(&line(&to, &silent, 3)).await;
        run.destroyed(from, &silent.to_string()).await;
        // Given up while it rings (`commands::cancel`, as a DELETE of the participant sends
        // it): the callee gets a CANCEL, the job fails with ORIGINATOR_CANCEL.
        let to = run.callee(Answer::Never).await;
        let given_up = uuid::Uuid::new_v4();
        run.label(&given_up.to_string(), "given_up");
        let from = run.mark();
        run.bgapi(&line(&to, &given_up, 30)).await;
        let given_up = given_up.to_string();
        run.channel_event(from, "CHANNEL_PROGRESS", &given_up).await;
        run.api(commands::cancel(&given_up).unwrap().as_str()).await;
        run.destroyed(from, &given_up).await;
        close(run, &ctl).await;
    })
}

/// A room that waits for its moderator, opened as the controller opens one
/// (`commands::originate_control_leg` with `wait-mod` and `conference_moh_sound`): hold music
/// plays from the start (no event: it is the conference thread's, not a play); a caller joins
/// (the music is stopped for the join, a play-file-done, and starts again), another comes and
/// hangs up (its leave stops the music too), the room is listed while it waits, a play is stopped with `stop all` (which stops the music too), the
/// moderator joins (the music stops for good), the room is listed again;
/// the moderator is kicked and the caller hangs up, which leaves the control leg alone (the
/// music starts again) until the room is closed.
pub fn wait_mod(run: &mut Run) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let room = RoomId::parse(ROOM).unwrap();
        let (caller, passer, host) = (
            run.call_silent(DID, "1001", "Alice").await,
            run.call_silent(DID, "1003", "Bob").await,
            run.call_silent(DID, "1002", "Host").await,
        );
        let ctl = uuid::Uuid::new_v4().to_string();
        run.label(&ctl, "ctl");
        run.label(ROOM, "room");
        let open =
            commands::originate_control_leg(&room, &ctl, "null/switchyard", PROFILE, true).unwrap();
        let from = run.mark();
        run.bgapi(open.as_str()).await;
        run.conf_event(from, "add-member", Some(&ctl)).await;
        // The conference thread starts the music on its own tick, with no event to await; a
        // thread that ticked before the control leg was in waits 2 s (`moh_wait`) first.
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        let from = run.mark();
        let id = join_as(run, &caller, false).await;
        run.conf_event(from, "play-file-done", None).await;
        member(run, "unmute", id, &caller, "unmute-member").await;
        // Another caller comes and goes while the room waits: its leave stops the music too.
        music_restarts().await;
        let from = run.mark();
        join_as(run, &passer, false).await;
        run.conf_event(from, "play-file-done", None).await;
        music_restarts().await;
        let from = run.mark();
        kill(run, &passer).await;
        run.conf_event(from, "play-file-done", None).await;
        music_restarts().await;
        run.api(&format!("conference {ROOM} json_list")).await;
        run.api(&format!("conference {ROOM} get wait_mod")).await;
        // Summary: the full list names the caller's SIP address, whose port is SIPp's.
        run.api("conference list summary").await;
        // A play while the room waits (played over the music), stopped as the controller
        // stops plays (`stop all`).
        let note = wav("waiting.wav", 3000);
        let dir = std::path::Path::new(&note).parent().unwrap();
        run.label(&dir.to_string_lossy(), "media");
        let op = uuid::Uuid::parse_str("00000000-0000-4000-8000-000000000001").unwrap();
        run.label(&op.to_string(), "op1");
        let from = run.mark();
        run.api(commands::play(&room, &op, &note).unwrap().as_str())
            .await;
        run.conf_event(from, "play-file", None).await;
        let from = run.mark();
        run.api(&format!("conference {ROOM} stop all")).await;
        run.wait_from(from, "the play's play-file-done", |e| {
            e.header("Action").as_deref() == Some("play-file-done")
                && e.header("switchyard_op").as_deref() == Some(op.to_string().as_str())
        })
        .await;
        // The music is stopped by `stop all` too, and starts again.
        music_restarts().await;
        let from = run.mark();
        let mid = join_as(run, &host, true).await;
        run.conf_event(from, "play-file-done", None).await;
        run.api(&format!("conference {ROOM} json_list")).await;
        run.api(&format!("conference {ROOM} get wait_mod")).await;
        member(run, "kick", mid, &host, "del-member").await;
        kill(run, &host).await;
        kill(run, &caller).await;
        // The control leg alone: the music starts again.
        music_restarts().await;
        close(run, &ctl).await;
    })
}

/// Keys a caller presses, as the live tests press them (`uuid_recv_dtmf`: the digit handed to
/// the channel as if it came from the far end): one while parked, one in a room (whose
/// profile has no caller controls), three in two groups (`12@100+9`), one after a kick back
/// to park.
pub fn dtmf(run: &mut Run) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let call = run.call_silent(DID, "1001", "Alice").await;
        let press = |digit: char| format!("uuid_recv_dtmf {call} {digit}");
        let from = run.mark();
        run.api(&press('5')).await;
        run.channel_event(from, "DTMF", &call).await;
        let ctl = open_room(run).await;
        let m = join(run, &call).await;
        let from = run.mark();
        run.api(&press('7')).await;
        run.channel_event(from, "DTMF", &call).await;
        // Two groups, the first of two digits held 100 ms each.
        let from = run.mark();
        run.api(&format!("uuid_recv_dtmf {call} 12@100+9")).await;
        run.wait_from(from, "the third digit", |e| {
            e.header("DTMF-Digit").as_deref() == Some("9")
        })
        .await;
        let from = run.mark();
        member(run, "kick", m, &call, "kick-member").await;
        run.channel_event(from, "CHANNEL_PARK", &call).await;
        let from = run.mark();
        run.api(&press('#')).await;
        run.channel_event(from, "DTMF", &call).await;
        kill(run, &call).await;
        close(run, &ctl).await;
    })
}

/// Legs as a script or another ESL client makes them, with none of the optional parts: a control
/// leg originated on `null/` with no caller id, five parked `null/` calls with no caller id (each
/// answered at once) joined by `uuid_transfer … inline`, each moved out again by a second inline
/// transfer (`commands::leave`: parked, the transfer history now two long), then hung up.
pub fn bare_legs(run: &mut Run) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let ctl = open_room_with(run, "").await;
        let mut calls = Vec::new();
        for i in 0..5 {
            let call = uuid::Uuid::new_v4().to_string();
            run.label(&call, &format!("bare{i}"));
            let from = run.mark();
            run.bgapi(&format!(
                "originate {{origination_uuid={call}}}null/100{i} &park()"
            ))
            .await;
            run.channel_event(from, "CHANNEL_PARK", &call).await;
            calls.push(call);
        }
        for call in &calls {
            join(run, call).await;
        }
        for call in &calls {
            let cmd = commands::park(call).unwrap();
            let from = run.mark();
            run.api(cmd.as_str()).await;
            run.conf_event(from, "del-member", Some(call)).await;
            run.channel_event(from, "CHANNEL_PARK", call).await;
        }
        for call in &calls {
            kill(run, call).await;
        }
        close(run, &ctl).await;
    })
}

/// A scenario by its name.
pub fn by_name(name: &str) -> Option<Scenario> {
    let scenario: Scenario = match name {
        "basic" => basic,
        "odd_names" => odd_names,
        "originate_quoted_name" => originate_quoted_name,
        "plays" => plays,
        "record" => record,
        "speech" => speech,
        "burst" => burst,
        "url_play" => url_play,
        "url_play_missing" => url_play_missing,
        "participants" => participants,
        "dialout" => dialout,
        "wait_mod" => wait_mod,
        "dtmf" => dtmf,
        "bare_legs" => bare_legs,
        _ => return None,
    };
    Some(scenario)
}

/// Serves `body` (a WAV) to every HTTP request on a local port until the test ends; the URL.
async fn serve_wav(body: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let missing = String::from_utf8_lossy(&request).contains("/missing");
                let head = if missing {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_owned()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                };
                let _ = stream.write_all(head.as_bytes()).await;
                if !missing && !request.starts_with(b"HEAD") {
                    let _ = stream.write_all(&body).await;
                }
            });
        }
    });
    format!("http://{addr}/greeting.wav")
}

/// The controller's usual play: an `http://` URL (mod_http_cache fetches it), tagged, played to
/// its end.
pub fn url_play(run: &mut Run) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let url = serve_wav(std::fs::read(wav("url.wav", 500)).unwrap()).await;
        let host = url.trim_start_matches("http://");
        let host = host.split('/').next().unwrap().to_owned();
        run.label(&host, "http");
        let op = "00000000-0000-4000-8000-0000000000aa";
        run.label(op, "op");
        let call = run.call(DID, "1001", "Alice").await;
        let ctl = open_room(run).await;
        join(run, &call).await;
        let from = run.mark();
        run.api(&format!(
            "conference {ROOM} play {{switchyard_op={op}}}{url}"
        ))
        .await;
        run.conf_event(from, "play-file-done", None).await;
        kill(run, &call).await;
        close(run, &ctl).await;
    })
}

/// A tagged play of a URL its server answers 404.
pub fn url_play_missing(run: &mut Run) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let url = serve_wav(Vec::new()).await;
        let host = url.trim_start_matches("http://");
        let host = host.split('/').next().unwrap().to_owned();
        run.label(&host, "http");
        let op = "00000000-0000-4000-8000-0000000000bb";
        run.label(op, "op");
        let call = run.call(DID, "1001", "Alice").await;
        let ctl = open_room(run).await;
        join(run, &call).await;
        let missing = url.replace("greeting", "missing");
        let from = run.mark();
        run.api(&format!(
            "conference {ROOM} play {{switchyard_op={op}}}{missing}"
        ))
        .await;
        run.wait_from(from, "the failed play-file", |e| {
            e.header("Action").as_deref() == Some("play-file") && e.header("Error").is_some()
        })
        .await;
        kill(run, &call).await;
        close(run, &ctl).await;
    })
}

/// A local HTTP server for `http_put`: a `PUT` under `/ok/` is answered 200, any other 403.
/// Its base URL (`http://127.0.0.1:<port>`).
fn put_receiver() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let (mut target, mut length) = (String::new(), 0usize);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                let l = line.trim_end().to_owned();
                line.clear();
                if l.is_empty() {
                    break;
                }
                if target.is_empty() {
                    target = l.split_whitespace().nth(1).unwrap_or_default().to_owned();
                } else if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let status = if target.starts_with("/ok/") {
                "200 OK"
            } else {
                "403 Forbidden"
            };
            let _ = reader.get_mut().write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    base
}
