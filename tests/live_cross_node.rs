//! Rooms that span media nodes (issue 18), on two real FreeSWITCH nodes under one controller
//! (`common/pair.rs`): a SIPp call on one node joins a room the other node hosts through the
//! same API as a local join — the controller bridges it over the nodes' SIP link
//! (`node::bridge`) and ties the room node's leg to the session by its tag. Its audio is in the
//! room's recording, a mute of it is heard as silence, a leave parks it again on its own node,
//! a hangup on either side takes it out, and a node killed with SIGKILL leaves the API and both
//! nodes agreeing within 2 s. Without a FreeSWITCH it is compiled and reported as ignored (see
//! `tests/live_conference.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/live.rs"]
mod live;
#[path = "common/pair.rs"]
mod pair;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use switchyard::conference::{EventKind, SessionState};
use switchyard::store::Store;

use live::{notice, tone_share};
use pair::Pair;

/// Records `room` for `millis` through the API; the WAV's bytes.
async fn record(t: &Pair, room: &str, millis: u64) -> Vec<u8> {
    let path = format!("/api/v1/conferences/{room}/recording/start");
    let r = t.patiently("POST", &path, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let rec = r.body["id"].as_str().unwrap().to_owned();
    t.eventually("start-recording confirms", || async {
        t.get(&format!("/api/v1/recordings/{rec}")).await.body["status"] == "recording"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(millis)).await;
    let path = format!("/api/v1/conferences/{room}/recording/stop");
    let r = t.patiently("POST", &path, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("stop-recording confirms", || async {
        t.get(&format!("/api/v1/recordings/{rec}")).await.body["status"] == "ended"
    })
    .await;
    let wav = t.raw_get(&format!("/api/v1/recordings/{rec}/file")).await;
    assert_eq!(wav.0, StatusCode::OK, "{:?}", wav.2);
    wav.2.to_vec()
}

/// The channel uuid of a session id.
fn channel(session: &str) -> &str {
    &session[6..]
}

/// The node-to-node leg on the room's node that carries `session`, as the store tied it.
async fn leg_of(t: &Pair, room: &str, session: &str) -> String {
    let stored = t.stored_room(room).await;
    let m = stored
        .members
        .get(channel(session))
        .expect("the member is stored under its call");
    m.leg().expect("the leg is tied").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_call_on_one_node_joins_a_room_on_the_other_is_heard_muted_leaves_and_hangs_up() {
    let t = Pair::start().await;
    let (room, r) = t.room("spanning").await;
    let o = 1 - r;
    let local = t.call(r, "4001").await;
    let remote = t.call(o, "4002").await;

    // The same API and answers as a local join.
    t.joined(&room, &local).await;
    t.joined(&room, &remote).await;
    let again = t
        .command(&remote, "conference/join", json!({ "room_id": room }))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.body["status"], "already_joined", "{again:?}");
    let members = t.members(&room).await;
    assert_eq!(members.len(), 2, "{members:?}");
    let m = t.member(&room, &remote).await.unwrap();
    assert_eq!(m["did"], pair::DID, "{m}");
    assert_eq!(m["caller_id"], "4002", "{m}");
    assert_eq!(m["muted"], true, "joined muted: {m}");
    let joined: Vec<_> = t
        .events(&room)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::MemberJoined && e.data["uuid"] == remote.as_str())
        .collect();
    assert_eq!(joined.len(), 1, "one conference.member.joined: {joined:?}");
    // On the room's node: a leg of its own, muted, tagged with the session.
    let leg = leg_of(&t, &room, &remote).await;
    assert_ne!(leg, channel(&remote));
    let tag = t
        .node_api(r, &format!("uuid_getvar {leg} sip_h_X-Switchyard-Session"))
        .await;
    assert_eq!(tag.trim(), remote, "the leg carries the session's tag");

    // Its audio reaches the room: unmuted, SIPp's 440 Hz tone fills the recording (the local
    // caller, sending the same tone, stays muted).
    let r1 = t.command(&remote, "conference/unmute", json!({})).await;
    assert_eq!(r1.status, StatusCode::ACCEPTED, "{r1:?}");
    t.eventually("unmute-member confirms", || async {
        t.member(&room, &remote).await.unwrap()["muted"] == false
    })
    .await;
    let heard = tone_share(&record(&t, &room, 1500).await, 440.0);
    notice(&format!(
        "unmuted: the remote caller's tone fills {:.0} % of the recording",
        heard * 100.0
    ));
    assert!(heard > 0.6, "the remote caller is heard: {heard}");
    let r2 = t.command(&remote, "conference/mute", json!({})).await;
    assert_eq!(r2.status, StatusCode::ACCEPTED, "{r2:?}");
    t.eventually("mute-member confirms", || async {
        t.member(&room, &remote).await.unwrap()["muted"] == true
    })
    .await;
    let silent = tone_share(&record(&t, &room, 1500).await, 440.0);
    notice(&format!(
        "muted: the remote caller's tone fills {:.0} % of the recording",
        silent * 100.0
    ));
    assert!(silent < 0.1, "a muted remote caller is not heard: {silent}");

    // Leave: out of the room, the call parked again on its own node, nothing left on the room's.
    let r3 = t.command(&remote, "conference/leave", json!({})).await;
    assert_eq!(r3.status, StatusCode::ACCEPTED, "{r3:?}");
    t.eventually("the member left", || async {
        t.left_reasons(&room, &remote).await == ["left"]
    })
    .await;
    t.eventually("the call is parked on its node", || async {
        t.store()
            .session(
                &t.app_id(),
                &switchyard::conference::SessionId::parse(&remote).unwrap(),
            )
            .await
            .unwrap()
            .is_some_and(|s| s.state == SessionState::Parked)
    })
    .await;
    assert!(
        t.channel_exists(o, channel(&remote)).await,
        "the call lives"
    );
    t.eventually("the leg is gone from the room's node", || async {
        !t.channel_exists(r, &leg).await
    })
    .await;

    // Joined again (a new leg), then the caller hangs up on its node: the member leaves with
    // `hangup`, and the room's node lets the leg go.
    t.joined(&room, &remote).await;
    let leg2 = leg_of(&t, &room, &remote).await;
    assert_ne!(leg2, leg);
    t.node_api(o, &format!("uuid_kill {}", channel(&remote)))
        .await;
    t.eventually("the member left with hangup", || async {
        t.left_reasons(&room, &remote).await == ["left", "hangup"]
    })
    .await;
    t.eventually("the leg is gone from the room's node", || async {
        !t.channel_exists(r, &leg2).await
    })
    .await;

    // The leg hung up on the room's node: the member leaves, the call parks on its own node.
    let other = t.call(o, "4003").await;
    t.joined(&room, &other).await;
    let leg3 = leg_of(&t, &room, &other).await;
    t.node_api(r, &format!("uuid_kill {leg3}")).await;
    t.eventually("the member left", || async {
        t.left_reasons(&room, &other).await.len() == 1
    })
    .await;
    t.eventually("the call is parked on its node", || async {
        t.store()
            .session(
                &t.app_id(),
                &switchyard::conference::SessionId::parse(&other).unwrap(),
            )
            .await
            .unwrap()
            .is_some_and(|s| s.state == SessionState::Parked)
    })
    .await;
    assert!(t.channel_exists(o, channel(&other)).await, "the call lives");
    assert_eq!(t.members(&room).await.len(), 1, "the local caller stays");
}
