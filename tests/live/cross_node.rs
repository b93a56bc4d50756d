//! Rooms that span media nodes (issue 18), on two real FreeSWITCH nodes under one controller
//! (`common/pair.rs`): a SIPp call on one node joins a room the other node hosts through the
//! same API as a local join — the controller bridges it over the nodes' SIP link
//! (`node::bridge`) and ties the room node's leg to the session by its tag. Its audio is in the
//! room's recording, a mute of it is heard as silence, a leave parks it again on its own node,
//! a hangup on either side takes it out, and a node killed with SIGKILL leaves the API and both
//! nodes agreeing within 2 s. Each scenario runs twice: on two real nodes (`live_…`; without a
//! FreeSWITCH compiled and reported as ignored, see `tests/live/conference.rs`) and on two
//! simulators linked the same way (`sim_…`), which must behave alike. Where the real run
//! measures audio (the room's recording), the simulated one checks the member's talking on the
//! room's node: the simulator carries no audio.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::live;
use crate::pair;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use switchyard::conference::EventKind;

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

/// The node-to-node bridge that carries `session` into `room`, as the store tied it: its leg on
/// the room's node and its outbound leg on the call's node.
async fn bridge_of(t: &Pair, room: &str, session: &str) -> (String, String) {
    let stored = t.stored_room(room).await;
    let m = stored
        .members
        .get(channel(session))
        .expect("the member is stored under its call");
    let bridge = m.bridge.as_ref().expect("a carried member");
    let leg = bridge.leg.clone().expect("the leg is tied");
    (leg, bridge.out.to_string())
}

/// The call is parked again on its node `node` within `limit`: alive, its bridge's outbound leg
/// gone.
async fn parked_again(t: &Pair, node: usize, session: &str, out: &str, limit: Duration) {
    t.within(limit, "the bridge's outbound leg is gone", || async {
        !t.channel_exists(node, out).await
    })
    .await;
    assert!(
        t.channel_exists(node, channel(session)).await,
        "the call lives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_call_on_one_node_joins_a_room_on_the_other_is_heard_muted_leaves_and_hangs_up() {
    joins_is_heard_muted_leaves_and_hangs_up(Pair::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_a_call_on_one_node_joins_a_room_on_the_other_is_heard_muted_leaves_and_hangs_up() {
    joins_is_heard_muted_leaves_and_hangs_up(Pair::start_sims().await).await;
}

/// Whether the remote member is heard in the room now (it speaks all along): on real nodes the
/// share of the room's recording that holds its caller's 440 Hz tone; on simulators, whether its
/// leg talks on the room's node (its caller speaking).
async fn heard(t: &Pair, room: &str, node: usize, leg: &str) -> f64 {
    if t.nodes[node].is_real() {
        return tone_share(&record(t, room, 1500).await, 440.0);
    }
    let talking = || async {
        let list = t
            .node_api(node, &format!("conference {room} json_list"))
            .await;
        let list: serde_json::Value = serde_json::from_str(&list).unwrap_or_default();
        list[0]["members"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["uuid"] == leg && m["flags"]["talking"] == true)
    };
    // The simulated conference notices talking after its detection delay.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < deadline {
        if talking().await {
            return 1.0;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    0.0
}

async fn joins_is_heard_muted_leaves_and_hangs_up(t: Pair) {
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
    let (leg, out) = bridge_of(&t, &room, &remote).await;
    assert_ne!(leg, channel(&remote));
    let tag = t
        .node_api(r, &format!("uuid_getvar {leg} sip_h_X-Switchyard-Session"))
        .await;
    assert_eq!(tag.trim(), remote, "the leg carries the session's tag");

    // A key the caller presses (on its own node) is the member's.
    let pressed = t
        .node_api(o, &format!("uuid_recv_dtmf {} 7", channel(&remote)))
        .await;
    assert!(pressed.starts_with("+OK"), "{pressed}");
    t.eventually("conference.member.dtmf", || async {
        t.events(&room).await.iter().any(|e| {
            e.kind == EventKind::MemberDtmf
                && e.data["uuid"] == remote.as_str()
                && e.data["digit"] == "7"
        })
    })
    .await;

    // Its audio reaches the room: unmuted, SIPp's 440 Hz tone fills the recording (the local
    // caller, sending the same tone, stays muted). The simulated caller speaks from now on.
    if !t.nodes[o].is_real() {
        let spoke = t
            .node_api(o, &format!("sim_talk {} on", channel(&remote)))
            .await;
        assert!(spoke.starts_with("+OK"), "{spoke}");
    }
    let r1 = t.command(&remote, "conference/unmute", json!({})).await;
    assert_eq!(r1.status, StatusCode::ACCEPTED, "{r1:?}");
    t.eventually("unmute-member confirms", || async {
        t.member(&room, &remote).await.unwrap()["muted"] == false
    })
    .await;
    let heard = heard(&t, &room, r, &leg).await;
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
    let silent = self::heard(&t, &room, r, &leg).await;
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
    parked_again(&t, o, &remote, &out, Duration::from_secs(5)).await;
    t.eventually("the leg is gone from the room's node", || async {
        !t.channel_exists(r, &leg).await
    })
    .await;

    // Joined again (a new leg), then the caller hangs up on its node: the member leaves with
    // `hangup`, and the room's node lets the leg go.
    t.joined(&room, &remote).await;
    let (leg2, _) = bridge_of(&t, &room, &remote).await;
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

    // Hold acts on the leg on the room's node; a kick through the API takes the member out
    // (`kicked`) and the call parks again on its own node.
    let held = t.call(o, "4004").await;
    t.joined(&room, &held).await;
    let (leg4, out4) = bridge_of(&t, &room, &held).await;
    let r4 = t.command(&held, "conference/hold", json!({})).await;
    assert_eq!(r4.status, StatusCode::ACCEPTED, "{r4:?}");
    t.eventually("hold-member confirms", || async {
        t.member(&room, &held).await.unwrap()["held"] == true
    })
    .await;
    let list = t.node_api(r, &format!("conference {room} json_list")).await;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let on_node = list[0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["uuid"] == leg4.as_str())
        .cloned()
        .unwrap();
    assert_eq!(on_node["flags"]["hold"], true, "{on_node}");
    let call_id = t.stored_room(&room).await.members[channel(&held)].conferencecall_id;
    let kicked = t
        .req(
            "DELETE",
            &format!("/api/v1/conferencecalls/{call_id}"),
            None,
        )
        .await;
    assert!(kicked.status.is_success(), "{kicked:?}");
    t.eventually("the member left kicked", || async {
        t.left_reasons(&room, &held).await == ["kicked"]
    })
    .await;
    parked_again(&t, o, &held, &out4, Duration::from_secs(5)).await;

    // The leg hung up on the room's node: the member leaves, the call parks on its own node.
    let other = t.call(o, "4003").await;
    t.joined(&room, &other).await;
    let (leg3, out3) = bridge_of(&t, &room, &other).await;
    t.node_api(r, &format!("uuid_kill {leg3}")).await;
    t.eventually("the member left", || async {
        t.left_reasons(&room, &other).await.len() == 1
    })
    .await;
    parked_again(&t, o, &other, &out3, Duration::from_secs(5)).await;
    assert_eq!(t.members(&room).await.len(), 1, "the local caller stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_node_killed_under_a_carried_call_leaves_the_api_and_the_other_node_agreeing_in_2_s()
{
    node_killed_under_a_carried_call(Pair::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_a_node_killed_under_a_carried_call_leaves_the_api_and_the_other_node_agreeing_in_2_s()
{
    node_killed_under_a_carried_call(Pair::start_sims().await).await;
}

async fn node_killed_under_a_carried_call(mut t: Pair) {
    let (room, r) = t.room("failing").await;
    let o = 1 - r;
    let local = t.call(r, "4101").await;
    let remote = t.call(o, "4102").await;
    t.joined(&room, &local).await;
    t.joined(&room, &remote).await;

    // SIGKILL of the call's node: the member leaves (`node_failed`) and its leg is gone from the
    // room's node.
    let (leg, _) = bridge_of(&t, &room, &remote).await;
    let killed = std::time::Instant::now();
    t.nodes[o].kill();
    let two = Duration::from_secs(2);
    t.within(two, "the member left with node_failed", || async {
        t.left_reasons(&room, &remote).await == ["node_failed"]
    })
    .await;
    t.within(two, "its leg is gone from the room's node", || async {
        !t.channel_exists(r, &leg).await
    })
    .await;
    notice(&format!(
        "call's node killed: consistent after {} ms",
        killed.elapsed().as_millis()
    ));
    let members = t.members(&room).await;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["uuid"], local.as_str());

    // The node back, a new call on it joins; then SIGKILL of the room's node: the member leaves
    // (`node_failed`) and its call is parked again on its own node, alive.
    t.nodes[o].restart().await;
    let prefix = switchyard::conference::NodePrefix::parse(pair::PREFIXES[o]).unwrap();
    t.eventually("the controller has the node back", || async {
        t.ctl.state.rooms().pool().get(&prefix).unwrap().is_up()
    })
    .await;
    let remote = t.call(o, "4103").await;
    t.joined(&room, &remote).await;
    let (_, out) = bridge_of(&t, &room, &remote).await;
    let killed = std::time::Instant::now();
    t.nodes[r].kill();
    t.within(two, "the member left with node_failed", || async {
        t.left_reasons(&room, &remote).await == ["node_failed"]
    })
    .await;
    let rest = two.saturating_sub(killed.elapsed());
    parked_again(&t, o, &remote, &out, rest).await;
    notice(&format!(
        "room's node killed: consistent after {} ms",
        killed.elapsed().as_millis()
    ));
    // The room waits for its node (the node-restart behaviour): listed, with its local member.
    let members = t.members(&room).await;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["uuid"], local.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_leg_that_arrived_while_no_controller_listened_is_tied_from_the_snapshot() {
    leg_tied_from_the_snapshot(Pair::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_a_leg_that_arrived_while_no_controller_listened_is_tied_from_the_snapshot() {
    leg_tied_from_the_snapshot(Pair::start_sims().await).await;
}

async fn leg_tied_from_the_snapshot(mut t: Pair) {
    use switchyard::conference::ops::{self, JoinAs};
    use switchyard::conference::{RoomId, SessionId};
    use switchyard::node::bridge::{NodeBridge, bridge_to_node};
    use switchyard::store::{Store, update_room};

    let (room, r) = t.room("away").await;
    let o = 1 - r;
    let remote = t.call(o, "4201").await;
    // The controller asks for the join and goes away before the room's node tells of the leg.
    t.ctl.stop().await;
    let (app, id) = (t.app_id(), RoomId::parse(&room).unwrap());
    let session = SessionId::parse(&remote).unwrap();
    let s = t.store().session(&app, &session).await.unwrap().unwrap();
    let out = uuid::Uuid::new_v4();
    update_room(t.store(), &app, &id, |room| {
        let now = switchyard::node::supervisor::now_micros();
        ops::request_bridged_join(room, &s, None, JoinAs::default(), out, now)
            .map(|applied| ((), applied.events))
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    let caller = uuid::Uuid::parse_str(channel(&remote)).unwrap();
    let cmd = bridge_to_node(&NodeBridge {
        caller: &caller,
        out: &out,
        session: &session,
        room: &id,
        node: t.nodes[r].node_sip(),
        answer_timeout_secs: 5,
        media_timeout_ms: 5000,
    })
    .unwrap();
    let sent = t.node_api(o, cmd.as_str()).await;
    assert!(sent.starts_with("+OK"), "{sent}");
    t.eventually("the room's node has the leg in the room", || async {
        t.node_api(r, &format!("conference {room} list"))
            .await
            .contains("sofia/nodes/")
    })
    .await;
    // A new controller ties the leg from its snapshot: the member is in, listed once.
    t.start_controller().await;
    t.eventually("the member is joined", || async {
        t.member(&room, &remote).await.is_some()
    })
    .await;
    let stored = t.stored_room(&room).await;
    let m = &stored.members[channel(&remote)];
    assert!(m.leg().is_some(), "{m:?}");
    assert_eq!(t.members(&room).await.len(), 1);
    assert!(
        t.events(&room)
            .await
            .iter()
            .any(|e| e.kind == EventKind::MemberJoined && e.data["uuid"] == remote.as_str())
    );
}

/// A room whose node has no `node_sip` in the configuration cannot take calls from other nodes:
/// the join is 409 with the reason, and the call stays parked on its node, out of the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_a_join_into_a_room_whose_node_has_no_node_sip_is_refused_with_the_reason() {
    let t = Pair::start_sims_unlinked().await;
    let (room, r) = t.room("unlinked").await;
    let remote = t.call(1 - r, "4301").await;
    let joined = t
        .command(&remote, "conference/join", json!({ "room_id": room }))
        .await;
    assert_eq!(joined.status, StatusCode::CONFLICT, "{joined:?}");
    let error = joined.body["error"].as_str().unwrap_or_default();
    assert!(error.contains("no node-to-node SIP address"), "{joined:?}");
    assert!(t.members(&room).await.is_empty());
    assert!(t.channel_exists(1 - r, channel(&remote)).await);
}

/// A caller who sends no RTP (on hold, silence suppression) is moved as fast as any: its own
/// leg reads on a timer (`rtp-timer-name soft` on the `inbound` profile), so a transfer into a
/// room, into a bridge, and back to park does not wait out the 5-second poll of a leg whose far
/// end is silent (`fixtures/esl/10_cross_node.md`, section 6; without the timer each step took
/// 5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_caller_who_sends_no_rtp_joins_and_leaves_without_waiting_seconds() {
    let t = Pair::start().await;
    let (room, r) = t.room("quiet").await;
    let o = 1 - r;
    let local = t.call_silent(r, "4401").await;
    let remote = t.call_silent(o, "4402").await;
    let second = Duration::from_secs(1);
    for session in [&local, &remote] {
        let r = t
            .command(session, "conference/join", json!({ "room_id": room }))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        t.within(second, "the silent caller is in the room", || async {
            t.member(&room, session).await.is_some()
        })
        .await;
    }
    let (_, out) = bridge_of(&t, &room, &remote).await;
    let r = t.command(&remote, "conference/leave", json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    parked_again(&t, o, &remote, &out, second).await;
    t.within(second, "the silent caller is parked again", || async {
        t.get(&format!("/api/v1/sessions/{remote}")).await.body["state"] == "parked"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_member_moves_to_a_room_on_the_other_node_and_back() {
    moves_across_nodes(Pair::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_a_member_moves_to_a_room_on_the_other_node_and_back() {
    moves_across_nodes(Pair::start_sims().await).await;
}

/// A call on one node moves from a room there to a room on the other node (bridged there, as a
/// join across nodes is), then back (its leg hangs up, the call goes straight into the first
/// room): each move one `conference.member.moved`, no leave told, the call up all along.
async fn moves_across_nodes(t: Pair) {
    let (here, h) = t.room("here").await;
    let (there, o) = t.room("there").await;
    assert_ne!(h, o, "the two rooms are on two nodes");
    let caller = t.call(h, "4001").await;
    t.joined(&here, &caller).await;
    let r = t.command(&caller, "conference/unmute", json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("unmuted", || async {
        t.member(&here, &caller)
            .await
            .is_some_and(|m| m["muted"] == false)
    })
    .await;

    let seen = t.events(&here).await.len();
    let r = t
        .command(&caller, "conference/move", json!({ "room_id": there }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("in the room on the other node", || async {
        t.member(&there, &caller).await.is_some()
    })
    .await;
    t.eventually("out of the first room", || async {
        t.member(&here, &caller).await.is_none()
    })
    .await;
    let (leg, out) = bridge_of(&t, &there, &caller).await;
    assert!(t.channel_exists(o, &leg).await, "its leg on the other node");
    t.eventually("unmuted there too", || async {
        t.member(&there, &caller)
            .await
            .is_some_and(|m| m["muted"] == false)
    })
    .await;

    let r = t
        .command(&caller, "conference/move", json!({ "room_id": here }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("back in the first room", || async {
        t.member(&here, &caller).await.is_some()
    })
    .await;
    // The other node lets the leg go on its own time.
    t.eventually("out of the room on the other node", || async {
        t.member(&there, &caller).await.is_none()
    })
    .await;
    // Straight in, not carried: the leg to the other node is gone.
    let stored = t.stored_room(&here).await;
    assert!(stored.members[channel(&caller)].bridge.is_none());
    parked_or_gone(&t, h, &out).await;
    assert!(
        t.channel_exists(h, channel(&caller)).await,
        "the call lives"
    );
    let told = |room: String, skip: usize| {
        let (t, caller) = (&t, &caller);
        async move {
            t.events(&room)
                .await
                .into_iter()
                .skip(skip)
                .filter(|e| e.data["uuid"] == caller.as_str())
                .map(|e| e.kind)
                .filter(|k| {
                    matches!(
                        k,
                        EventKind::MemberMoved
                            | EventKind::MemberLeft
                            | EventKind::MemberLeaving
                            | EventKind::MemberJoining
                            | EventKind::MemberJoinFailed
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(told(there.clone(), 0).await, [EventKind::MemberMoved]);
    assert_eq!(told(here.clone(), seen).await, [EventKind::MemberMoved]);
}

/// The bridge's outbound leg `out` on node `node` is gone.
async fn parked_or_gone(t: &Pair, node: usize, out: &str) {
    t.within(Duration::from_secs(5), "the old leg is gone", || async {
        !t.channel_exists(node, out).await
    })
    .await;
}
