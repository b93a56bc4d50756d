//! The simulator as the controller will use it, seen through our own ESL client: calls, rooms,
//! playback, and the fault switches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use switchyard::esl::{
    ApiCommand, Client, ClientConfig, ConferenceAction, Event, EventFormat, EventName, EventSet,
    EventStream, Password,
};
use switchyard::sim::{SimConfig, Simulator};

async fn start() -> (Simulator, Client, EventStream) {
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        heartbeat: None,
        default_play_duration: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (client, events) = connect(&sim).await;
    (sim, client, events)
}

async fn connect(sim: &Simulator) -> (Client, EventStream) {
    let (client, events) = Client::connect(
        &sim.addr().to_string(),
        &Password::new("ClueCon").unwrap(),
        ClientConfig::default(),
    )
    .await
    .unwrap();
    let set = EventSet::new()
        .names([
            EventName::ChannelCreate,
            EventName::ChannelAnswer,
            EventName::ChannelPark,
            EventName::ChannelHangup,
            EventName::ChannelHangupComplete,
            EventName::BackgroundJob,
            EventName::Heartbeat,
        ])
        .subclass("conference::maintenance")
        .unwrap();
    client.subscribe(EventFormat::Plain, set).await.unwrap();
    (client, events)
}

fn api(words: &[&str]) -> ApiCommand {
    words[1..]
        .iter()
        .fold(ApiCommand::new(words[0]).unwrap(), |c, w| c.arg(w).unwrap())
}

/// The next event matching `pred`, skipping others.
async fn until(events: &mut EventStream, pred: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let event = events.recv().await.expect("event stream open");
            if pred(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the expected event within 5 s")
}

fn action(a: ConferenceAction) -> impl Fn(&Event) -> bool {
    move |e| e.action().as_ref() == Some(&a)
}

#[tokio::test]
async fn an_inbound_call_joins_a_room_is_muted_hears_a_file_and_is_parked_again() {
    let (sim, client, mut events) = start().await;
    let uuid = sim.inbound_call("15551230000", "1001", "Alice").unwrap();
    let park = until(&mut events, |e| e.name() == &EventName::ChannelPark).await;
    assert_eq!(park.unique_id().unwrap(), uuid);
    assert_eq!(
        park.header("Caller-Destination-Number").unwrap(),
        "15551230000"
    );
    assert_eq!(
        park.header("variable_switchyard_did").unwrap(),
        "15551230000"
    );

    let join = "conference:abcde-room-1@switchyard+flags{mute},park:";
    let reply = client
        .api(&api(&["uuid_transfer", &uuid, join, "inline"]))
        .await
        .unwrap();
    assert_eq!(reply.expect_ok(false).unwrap(), "");
    until(&mut events, action(ConferenceAction::ConferenceCreate)).await;
    let add = until(&mut events, action(ConferenceAction::AddMember)).await;
    assert_eq!(add.unique_id().unwrap(), uuid);
    assert_eq!(add.flag("Speak"), Some(false), "joined muted");
    let member = add.member_id().unwrap().to_string();

    let unmute = client
        .api(&api(&["conference", "abcde-room-1", "unmute", &member]))
        .await
        .unwrap();
    assert_eq!(unmute.expect_ok(false).unwrap(), format!("unmute {member}"));
    let ev = until(&mut events, action(ConferenceAction::UnmuteMember)).await;
    assert_eq!(ev.flag("Speak"), Some(true));

    let file = "{switchyard_op=op-1}https://example.com/a.wav";
    let play = client
        .api(&api(&["conference", "abcde-room-1", "play", file]))
        .await
        .unwrap();
    // FreeSWITCH keeps the `{…}` prefix in the reply and in `File` (tests/live/differential/mod.rs).
    assert_eq!(
        play.expect_ok(false).unwrap(),
        format!("(play) Playing file {file}")
    );
    let done = until(&mut events, action(ConferenceAction::PlayFileDone)).await;
    assert_eq!(done.header("switchyard_op").unwrap(), "op-1");
    assert_eq!(done.file().unwrap(), file);

    // Leaving = transfer to park: del-member, the room (now empty) is destroyed, the call lives.
    client
        .api(&api(&["uuid_transfer", &uuid, "park", "inline"]))
        .await
        .unwrap();
    let del = until(&mut events, action(ConferenceAction::DelMember)).await;
    assert_eq!(del.conference_size(), Some(0));
    until(&mut events, action(ConferenceAction::ConferenceDestroy)).await;
    until(&mut events, |e| e.name() == &EventName::ChannelPark).await;
    let exists = client.api(&api(&["uuid_exists", &uuid])).await.unwrap();
    assert_eq!(exists.text(), "true");
}

#[tokio::test]
async fn kick_runs_the_rest_of_the_inline_dialplan_or_hangs_up() {
    let (sim, client, mut events) = start().await;
    let a = sim.inbound_call("100", "1001", "A").unwrap();
    let b = sim.inbound_call("100", "1002", "B").unwrap();
    client
        .api(&api(&[
            "uuid_transfer",
            &a,
            "conference:r1@default,park:",
            "inline",
        ]))
        .await
        .unwrap();
    client
        .api(&api(&[
            "uuid_transfer",
            &b,
            "conference:r1@default",
            "inline",
        ]))
        .await
        .unwrap();
    // Each channel's thread carries out its transfer after the reply.
    until(&mut events, |e| {
        e.action() == Some(ConferenceAction::AddMember) && e.unique_id().as_deref() == Some(&b)
    })
    .await;
    let count = client
        .api(&api(&["conference", "r1", "count"]))
        .await
        .unwrap();
    assert_eq!(count.into_data().unwrap(), "2");
    let kick = client
        .api(&api(&["conference", "r1", "kick", "all"]))
        .await
        .unwrap();
    let text = kick.expect_ok(false).unwrap();
    assert!(text.contains("kicked"), "{text}");
    let hangup = until(&mut events, |e| {
        e.name() == &EventName::ChannelHangupComplete
    })
    .await;
    assert_eq!(
        hangup.unique_id().unwrap(),
        b,
        "B had nothing after the conference"
    );
    assert_eq!(
        client.api(&api(&["uuid_exists", &a])).await.unwrap().text(),
        "true"
    );
    let gone = client
        .api(&api(&["conference", "r1", "list"]))
        .await
        .unwrap();
    assert_eq!(gone.text(), "-ERR Conference r1 not found\n");
}

#[tokio::test]
async fn bgapi_originate_of_a_control_leg_into_a_room() {
    let (_sim, client, mut events) = start().await;
    let cmd = api(&[
        "originate",
        "{origination_uuid=11111111-2222-3333-4444-555555555555,switchyard_role=control}null/control",
        "&conference(abcde-room-9@switchyard+flags{mute|deaf})",
    ]);
    let reply = client.bgapi(&cmd).await.unwrap();
    assert_eq!(
        reply.expect_ok(false).unwrap(),
        "11111111-2222-3333-4444-555555555555"
    );
    let add = until(&mut events, action(ConferenceAction::AddMember)).await;
    assert_eq!(add.flag("Hear"), Some(false));
    let json = client
        .api(&api(&["conference", "abcde-room-9", "json_list"]))
        .await
        .unwrap();
    let rooms: serde_json::Value = serde_json::from_str(&json.into_data().unwrap()).unwrap();
    assert_eq!(
        rooms[0]["members"][0]["uuid"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(rooms[0]["members"][0]["flags"]["can_speak"], false);
}

#[tokio::test]
async fn a_restart_sends_the_shutdown_notice_and_changes_core_uuid() {
    let (sim, client, _events) = start().await;
    let before = sim.core_uuid();
    sim.inbound_call("100", "1001", "A").unwrap();
    sim.restart();
    let reason = client.closed().await;
    assert_eq!(
        reason.notice.as_deref(),
        Some("The system is being shut down.\n")
    );
    assert_ne!(sim.core_uuid(), before);
    let (client, _events) = connect(&sim).await;
    let uuid = client
        .api(&api(&["global_getvar", "core_uuid"]))
        .await
        .unwrap();
    assert_eq!(uuid.text(), sim.core_uuid());
    let channels = client
        .api(&api(&["show", "channels", "as", "json"]))
        .await
        .unwrap();
    assert_eq!(
        channels.text(),
        "{\"row_count\":0}\n",
        "calls are gone after a restart"
    );
}

#[tokio::test]
async fn a_dropped_connection_has_no_notice() {
    let (sim, client, _events) = start().await;
    sim.drop_connections();
    let reason = client.closed().await;
    assert_eq!(reason.notice, None);
}

#[tokio::test]
async fn heartbeats_stalls_and_dropped_events_are_controllable() {
    let (sim, client, mut events) = start().await;
    sim.heartbeat_now();
    until(&mut events, |e| e.name() == &EventName::Heartbeat).await;

    sim.drop_events("Event-Name", "CHANNEL_CREATE");
    sim.stall_events(true);
    let uuid = sim.inbound_call("100", "1001", "A").unwrap();
    // Replies still flow while events are held back.
    assert_eq!(
        client
            .api(&api(&["uuid_exists", &uuid]))
            .await
            .unwrap()
            .text(),
        "true"
    );
    sim.stall_events(false);
    let first = until(&mut events, |e| e.name() != &EventName::Heartbeat).await;
    assert_eq!(
        first.name(),
        &EventName::ChannelAnswer,
        "CHANNEL_CREATE was dropped"
    );
}

#[tokio::test]
async fn recordings_pause_resume_and_land_as_real_wav_files_and_volumes_change() {
    let (sim, client, mut events) = start().await;
    let uuid = sim.inbound_call("100", "1001", "A").unwrap();
    client
        .api(&api(&[
            "uuid_transfer",
            &uuid,
            "conference:rec1@default,park:",
            "inline",
        ]))
        .await
        .unwrap();
    let add = until(&mut events, action(ConferenceAction::AddMember)).await;
    let member = add.member_id().unwrap().to_string();
    let path = std::env::temp_dir().join(format!("sim-rec-{}.wav", uuid::Uuid::new_v4()));
    let path = path.to_str().unwrap().to_owned();
    let reply = |words: &[&str]| {
        let cmd = api(words);
        let client = client.clone();
        async move { client.api(&cmd).await.unwrap().text().into_owned() }
    };
    assert_eq!(
        reply(&["conference", "rec1", "record", &path]).await,
        format!("+OK Record file {path}\n")
    );
    until(&mut events, action(ConferenceAction::StartRecording)).await;
    assert_eq!(
        reply(&["conference", "rec1", "recording", "check"]).await,
        format!("+OK Record file {path}\n")
    );
    assert_eq!(
        reply(&["conference", "rec1", "pause", &path]).await,
        format!("+OK Pause recording file {path}\n")
    );
    let paused = until(&mut events, action(ConferenceAction::PauseRecording)).await;
    assert_eq!(paused.path().unwrap(), path);
    assert_eq!(
        reply(&["conference", "rec1", "resume", &path]).await,
        format!("+OK Resume recording file {path}\n")
    );
    until(&mut events, action(ConferenceAction::ResumeRecording)).await;
    let stopped = reply(&["conference", "rec1", "norecord", "all"]).await;
    assert_eq!(
        stopped,
        format!("Stopped recording file {path}\n+OK Stopped recording 0 files\n")
    );
    let stop = until(&mut events, action(ConferenceAction::StopRecording)).await;
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(
        stop.header("Record-File-Size").unwrap(),
        bytes.len().to_string()
    );
    std::fs::remove_file(&path).unwrap();

    assert_eq!(
        reply(&["conference", "rec1", "volume_in", &member]).await,
        format!("+OK Volume IN {member} = 0\n")
    );
    assert_eq!(
        reply(&["conference", "rec1", "volume_in", &member, "2"]).await,
        format!("+OK Volume IN {member} = 2\n")
    );
    let vol = until(&mut events, action(ConferenceAction::VolumeInMember)).await;
    assert_eq!(vol.header("Volume-Level").unwrap(), "2");
    let json: serde_json::Value =
        serde_json::from_str(&reply(&["conference", "rec1", "json_list"]).await).unwrap();
    assert_eq!(json[0]["members"][0]["volume_in"], 2);
}

#[tokio::test]
async fn delayed_delivery_holds_each_event_back() {
    let (sim, _client, mut events) = start().await;
    let delay = Duration::from_millis(150);
    sim.delay_events(Some(delay));
    let fired = std::time::Instant::now();
    sim.heartbeat_now();
    until(&mut events, |e| e.name() == &EventName::Heartbeat).await;
    assert!(
        fired.elapsed() >= delay,
        "delivered after {:?}",
        fired.elapsed()
    );
    sim.delay_events(None);
}

/// A room torn down the controller's way (each member moved out to park, then the control leg
/// killed, back to back): the control leg's del-member comes before the members', as a real node
/// often reports it; each member parks after its own del-member; conference-destroy comes after
/// the last del-member.
#[tokio::test]
async fn a_room_torn_down_reports_the_control_legs_del_member_first() {
    let (sim, client, mut events) = start().await;
    let control = "11111111-2222-3333-4444-555555555555";
    let origination = format!("{{origination_uuid={control},switchyard_role=control}}null/control");
    let cmd = api(&[
        "originate",
        &origination,
        "&conference(abcde-room-7@switchyard+flags{mute|deaf})",
    ]);
    client.bgapi(&cmd).await.unwrap().expect_ok(false).unwrap();
    until(&mut events, action(ConferenceAction::AddMember)).await;
    let mut members = Vec::new();
    for n in 1..=3 {
        let uuid = sim
            .inbound_call("15551230000", &format!("100{n}"), "Caller")
            .unwrap();
        let join = "conference:abcde-room-7@switchyard+flags{mute},park:";
        client
            .api(&api(&["uuid_transfer", &uuid, join, "inline"]))
            .await
            .unwrap();
        let add = until(&mut events, action(ConferenceAction::AddMember)).await;
        assert_eq!(add.unique_id().unwrap(), uuid);
        members.push(uuid);
    }
    for uuid in &members {
        let out = client
            .api(&api(&["uuid_transfer", uuid, "park", "inline"]))
            .await
            .unwrap();
        assert_eq!(out.expect_ok(false).unwrap(), "");
    }
    client
        .api(&api(&["uuid_kill", control]))
        .await
        .unwrap()
        .expect_ok(false)
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let e = until(&mut events, |e| {
            e.action() == Some(ConferenceAction::DelMember)
                || e.action() == Some(ConferenceAction::ConferenceDestroy)
                || e.name() == &EventName::ChannelPark
        })
        .await;
        let who = e.unique_id().unwrap_or_default().to_string();
        let what = match e.action() {
            Some(ConferenceAction::ConferenceDestroy) => "destroy",
            Some(_) => "del-member",
            None => "park",
        };
        seen.push((what, who));
        let parked = seen.iter().filter(|(what, _)| *what == "park").count();
        if seen.iter().any(|(what, _)| *what == "destroy") && parked == members.len() {
            break;
        }
    }
    let del: Vec<&str> = seen
        .iter()
        .filter(|(what, _)| *what == "del-member")
        .map(|(_, who)| who.as_str())
        .collect();
    assert_eq!(del.len(), 4, "{seen:?}");
    assert_eq!(
        del[0], control,
        "the control leg's del-member first: {seen:?}"
    );
    for uuid in &members {
        let del = seen.iter().position(|s| s == &("del-member", uuid.clone()));
        let park = seen.iter().position(|s| s == &("park", uuid.clone()));
        assert!(
            del.is_some() && park > del,
            "{uuid} parks after leaving: {seen:?}"
        );
    }
}
