//! Announcements and coaching on a real FreeSWITCH with SIPp callers (each sends a 440 Hz
//! tone; joined muted, so the room is silent unless a test unmutes one), measured in what the
//! node sends each call (`uuid_record`, write direction only): an announcement is heard by its
//! member alone and its end is told; a coach is heard by the coached member alone, and by
//! everyone again once uncoached. Without a FreeSWITCH these tests are compiled and reported as
//! ignored (see `tests/live/conference.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::live;

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::EventKind;

use live::{Live, channel_of, notice, sound_share, tone_share};

const TONE: f64 = 440.0;
/// A caller that hears something hears it in most of a window; one that does not, in almost
/// none.
const HEARS: f64 = 0.4;
const DEAF: f64 = 0.1;

async fn post(t: &Live, session: &str, verb: &str, body: Value) -> common::api::Reply {
    let path = format!("/api/v1/sessions/{session}/commands/conference/{verb}");
    t.patiently("POST", &path, body).await
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_an_announcement_is_heard_by_its_member_alone_and_its_end_is_told() {
    let t = Live::start().await;
    let room = t.room("announced").await;
    let (a, b) = (t.call("1001").await, t.call("1002").await);
    t.joined(&room, &a).await;
    t.joined(&room, &b).await;
    let (a_ch, b_ch) = (channel_of(&a).to_owned(), channel_of(&b).to_owned());
    let finished = || async {
        t.events(&room)
            .await
            .into_iter()
            .filter(|e| e.kind == EventKind::MemberAnnouncementFinished)
            .map(|e| (e.data["operation_id"].clone(), e.data["completed"].clone()))
            .collect::<Vec<_>>()
    };

    // Spoken text: A hears speech, B (in the same silent room) nothing.
    let r = post(
        &t,
        &a,
        "announce",
        json!({ "text": "You have one minute left in this call." }),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let spoken = r.body["operation_id"].clone();
    let (heard_a, heard_b) = tokio::join!(t.ear(&a_ch, 1500), t.ear(&b_ch, 1500));
    let (sa, sb) = (sound_share(&heard_a), sound_share(&heard_b));
    notice(&format!(
        "spoken to A: A hears sound in {:.0} %, B in {:.0} % of 1.5 s",
        sa * 100.0,
        sb * 100.0
    ));
    assert!(sa > HEARS, "A hears its announcement");
    assert!(sb < DEAF, "B hears nothing of A's announcement");
    t.eventually("the spoken announcement finished", || async {
        finished().await.contains(&(spoken.clone(), json!(true)))
    })
    .await;

    // A URL: the fixture's 2 s tone, to B alone this time.
    let tone = t.tone().await;
    let r = post(&t, &b, "announce", json!({ "url": tone.url })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let played = r.body["operation_id"].clone();
    let (heard_a, heard_b) = tokio::join!(t.ear(&a_ch, 1500), t.ear(&b_ch, 1500));
    let (ta, tb) = (tone_share(&heard_a, TONE), tone_share(&heard_b, TONE));
    notice(&format!(
        "played to B: the tone in {:.0} % of A's 1.5 s, {:.0} % of B's",
        ta * 100.0,
        tb * 100.0
    ));
    assert!(tb > HEARS, "B hears the file");
    assert!(ta < DEAF, "A hears nothing of it");
    t.eventually("the URL's announcement finished", || async {
        finished().await.contains(&(played.clone(), json!(true)))
    })
    .await;

    // A URL the node cannot fetch: 502, as the node words it, and no webhook.
    let missing = tone.url.replace("tone-440hz-2s.wav", "missing.wav");
    let r = post(&t, &a, "announce", json!({ "url": missing })).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{r:?}");
    assert!(r.body["error"].is_string(), "{r:?}");
    assert_eq!(finished().await.len(), 2);
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_coach_is_heard_by_the_coached_member_alone() {
    let t = Live::start().await;
    let room = t.room("coached").await;
    let (agent, customer, coach) = (
        t.call("1001").await,
        t.call("1002").await,
        t.call("1003").await,
    );
    for s in [&agent, &customer, &coach] {
        t.joined(&room, s).await;
    }
    let (agent_ch, customer_ch) = (
        channel_of(&agent).to_owned(),
        channel_of(&customer).to_owned(),
    );
    // Only the coach is unmuted: its tone is all there is to hear.
    let r = post(&t, &coach, "unmute", json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("the coach is unmuted", || async {
        t.members(&room)
            .await
            .iter()
            .any(|m| m["uuid"] == coach && m["muted"] == false)
    })
    .await;
    let shares = || async {
        let (a, c) = tokio::join!(t.ear(&agent_ch, 2000), t.ear(&customer_ch, 2000));
        (tone_share(&a, TONE), tone_share(&c, TONE))
    };
    let (a, c) = shares().await;
    notice(&format!(
        "before: agent {:.0} %, customer {:.0} %",
        a * 100.0,
        c * 100.0
    ));
    assert!(a > HEARS && c > HEARS, "both hear the coach before");

    let r = post(&t, &coach, "coach", json!({ "member": agent })).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let (a, c) = shares().await;
    notice(&format!(
        "coaching: agent {:.0} %, customer {:.0} %",
        a * 100.0,
        c * 100.0
    ));
    assert!(a > HEARS, "the agent hears the coach");
    assert!(c < DEAF, "the customer does not");

    // A caller who joins later does not hear the coach either.
    let late = t.call("1004").await;
    t.joined(&room, &late).await;
    let late_ch = channel_of(&late).to_owned();
    t.eventually("the newcomer does not hear the coach", || async {
        tone_share(&t.ear(&late_ch, 1500).await, TONE) < DEAF
    })
    .await;

    let r = post(&t, &coach, "uncoach", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let (a, c) = shares().await;
    notice(&format!(
        "uncoached: agent {:.0} %, customer {:.0} %",
        a * 100.0,
        c * 100.0
    ));
    assert!(a > HEARS && c > HEARS, "both hear the coach again");
    let told: Vec<Value> = t
        .events(&room)
        .await
        .iter()
        .filter(|e| e.kind == EventKind::MemberCoaching)
        .map(|e| e.data["coaching"].clone())
        .collect();
    assert_eq!(told, [json!(agent), Value::Null]);
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_room_waits_for_its_moderator_and_ends_when_it_leaves() {
    let t = Live::start().await;
    let room = t
        .room_with(json!({ "name": "town-hall", "wait_for_moderator": true }))
        .await;
    let (talker, listener, host) = (
        t.call("1001").await,
        t.call("1002").await,
        t.call("1003").await,
    );
    t.joined(&room, &talker).await;
    t.joined(&room, &listener).await;
    let r = post(&t, &talker, "unmute", json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let listener_ch = channel_of(&listener).to_owned();
    // Waiting: the room's audio is not mixed; the waiting members hear hold music.
    t.eventually("the talker is unmuted", || async {
        t.members(&room)
            .await
            .iter()
            .any(|m| m["uuid"] == talker && m["muted"] == false)
    })
    .await;
    let heard = t.ear(&listener_ch, 2000).await;
    let (tone, sound) = (tone_share(&heard, TONE), sound_share(&heard));
    notice(&format!(
        "waiting: the talker's tone in {:.0} %, sound in {:.0} % of 2 s",
        tone * 100.0,
        sound * 100.0
    ));
    assert!(tone < DEAF, "a waiting member hears no one");
    assert!(sound > HEARS, "a waiting member hears hold music");
    assert_eq!(t.waiting_for_moderator(&room).await, true);

    // The moderator joins (muted, and ending the room when it leaves): the room starts.
    let path = format!("/api/v1/sessions/{host}/commands/conference/join");
    let r = t
        .patiently(
            "POST",
            &path,
            json!({ "room_id": room, "moderator": true, "end_on_exit": true }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("the moderator joined", || async {
        t.members(&room).await.iter().any(|m| m["uuid"] == host)
    })
    .await;
    let tone = tone_share(&t.ear(&listener_ch, 2000).await, TONE);
    notice(&format!(
        "started: the talker's tone in {:.0} % of 2 s",
        tone * 100.0
    ));
    assert!(
        tone > HEARS,
        "the room's audio is mixed once the moderator is in"
    );
    assert_eq!(t.waiting_for_moderator(&room).await, false);

    // The moderator leaves: the room ends, the others are moved out, their calls alive.
    let r = post(&t, &host, "leave", json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("the room ends", || async {
        t.count(&room, EventKind::Terminated).await == 1
    })
    .await;
    for s in [&talker, &listener] {
        assert!(t.channel_exists(channel_of(s)).await, "{s} is still up");
        t.eventually("parked", || async {
            t.session(s).await["state"] == "parked"
        })
        .await;
    }
    assert!(!t.conference_on_node(&room).await);
    t.finish().await;
}

/// A moderator the controller did not join (an operator moves a call in on the node) starts a
/// waiting room all the same: FreeSWITCH ends the wait with no event of its own, so the API
/// said the room still waited. Now it reads the member's type from its add-member.
#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_an_operators_moderator_starts_a_waiting_room() {
    let t = Live::start().await;
    let room = t
        .room_with(json!({ "name": "briefing", "wait_for_moderator": true }))
        .await;
    let (caller, host) = (t.call("1001").await, t.call("1002").await);
    t.joined(&room, &caller).await;
    assert_eq!(t.waiting_for_moderator(&room).await, true);
    t.operator_joins_moderator(&room, &host).await;
    t.eventually("the operator's moderator is listed", || async {
        t.members(&room)
            .await
            .iter()
            .any(|m| m["uuid"] == host && m["moderator"] == true)
    })
    .await;
    // `get wait_mod` answers `true`, or nothing (`-ERR no reply` over the Event Socket).
    let on_node = t.node_api(&format!("conference {room} get wait_mod")).await;
    assert_ne!(on_node.trim(), "true", "the node no longer waits");
    assert_eq!(
        t.waiting_for_moderator(&room).await,
        false,
        "the API says the room started"
    );
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_beeping_room_beeps_as_members_join_and_leave() {
    let t = Live::start().await;
    // What the first member hears (sound share) around the second's join and leave, in a room
    // created with `body`. Everyone is muted: all there is to hear is the room's own sounds.
    let around = |body: Value, callers: (&'static str, &'static str)| {
        let t = &t;
        async move {
            let room = t.room_with(body).await;
            let (first, second) = (t.call(callers.0).await, t.call(callers.1).await);
            t.joined(&room, &first).await;
            let first_ch = channel_of(&first).to_owned();
            let (heard, ()) = tokio::join!(t.ear(&first_ch, 2500), t.joined(&room, &second));
            let leave = async {
                let r = post(t, &second, "leave", json!({})).await;
                assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
            };
            let (left, ()) = tokio::join!(t.ear(&first_ch, 2000), leave);
            (sound_share(&heard), sound_share(&left))
        }
    };
    let (entered, exited) =
        around(json!({ "name": "beeps", "beep": "both" }), ("1001", "1002")).await;
    let (quiet_in, quiet_out) = around(json!({ "name": "no-beeps" }), ("1003", "1004")).await;
    notice(&format!(
        "beeps: sound in {:.0} % of 2.5 s around a join, {:.0} % of 2 s around a leave \
         (a room without beeps: {:.0} %, {:.0} %)",
        entered * 100.0,
        exited * 100.0,
        quiet_in * 100.0,
        quiet_out * 100.0
    ));
    assert!(
        quiet_in < 0.05 && quiet_out < 0.05,
        "a room without beeps is silent"
    );
    assert!(entered >= 0.08, "the join's beep is heard");
    assert!(exited >= 0.08, "the leave's beep is heard");
    t.finish().await;
}

/// A locked room on a real node: a SIPp caller's join is refused (409 "Room is locked") and the
/// node's conference never sees it, while the member inside stays and hears nothing of it;
/// once unlocked, the same call joins and both are in the node's conference.
#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_locked_room_keeps_a_caller_out_until_it_is_unlocked() {
    let t = Live::start().await;
    let room = t.room("locked-room").await;
    let (inside, outside) = (t.call("1001").await, t.call("1002").await);
    t.joined(&room, &inside).await;
    let r = t
        .post(&format!("/api/v1/conferences/{room}/lock"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = t.join(&outside, &room).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert_eq!(r.body["error"], "Room is locked");
    let listed = t.node_api(&format!("conference {room} list")).await;
    assert!(!listed.contains(channel_of(&outside)), "{listed}");
    assert!(listed.contains(channel_of(&inside)), "{listed}");
    assert_eq!(t.session(&outside).await["state"], "parked");

    let r = t
        .post(&format!("/api/v1/conferences/{room}/unlock"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    t.joined(&room, &outside).await;
    let listed = t.node_api(&format!("conference {room} list")).await;
    assert!(listed.contains(channel_of(&outside)), "{listed}");
    assert_eq!(t.count(&room, EventKind::Locked).await, 1);
    assert_eq!(t.count(&room, EventKind::Unlocked).await, 1);
    t.finish().await;
}

/// `unmute_all` and `mute_all` on a real node: every caller but the moderator and the one
/// named is switched on the node itself (its `can_speak` flag as `json_list` shows it), and
/// each switch is announced once.
#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_room_wide_unmute_and_mute_switch_everyone_but_the_moderator_and_those_named() {
    let t = Live::start().await;
    let room = t.room("all-switch").await;
    let (host, guest, quiet) = (
        t.call("1001").await,
        t.call("1002").await,
        t.call("1003").await,
    );
    let r = t
        .post(
            &format!("/api/v1/sessions/{host}/commands/conference/join"),
            json!({ "room_id": room, "moderator": true }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.joined(&room, &guest).await;
    t.joined(&room, &quiet).await;
    t.eventually("the moderator is in", || async {
        t.members(&room).await.len() == 3
    })
    .await;
    let speaks = |flags: Value| flags["can_speak"] == true;

    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/unmute_all"),
            json!({ "except": [quiet] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["sessions"], json!([guest]));
    t.eventually("the guest speaks on the node", || async {
        speaks(t.node_flags(&room, channel_of(&guest)).await)
    })
    .await;
    assert!(!speaks(t.node_flags(&room, channel_of(&quiet)).await));
    assert!(!speaks(t.node_flags(&room, channel_of(&host)).await));

    let r = t
        .post(&format!("/api/v1/conferences/{room}/mute_all"), json!({}))
        .await;
    assert_eq!(r.body["sessions"], json!([guest]), "{r:?}");
    t.eventually("the guest is muted on the node", || async {
        !speaks(t.node_flags(&room, channel_of(&guest)).await)
    })
    .await;
    t.eventually("each switch told once", || async {
        t.count(&room, EventKind::MemberUnmuted).await == 1
            && t.count(&room, EventKind::MemberMuted).await == 1
    })
    .await;
    t.finish().await;
}
