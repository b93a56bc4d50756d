//! Faults on a real FreeSWITCH, each test with a node of its own (`tests/common/freeswitch.rs`)
//! and SIP callers (SIPp): the node killed with SIGKILL mid-conference and started again on the
//! same ports, and the controller's Event Socket connections cut and restored. What docs/operations.md's
//! "When a node fails" section promises is what these tests hold the controller to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::live;

use axum::http::StatusCode;
use serde_json::json;
use switchyard::conference::{EventKind, RoomStatus, SessionId, SessionState};
use switchyard::store::Store;

use common::api::assert_error;
use live::{Live, channel_of};

async fn session_state(t: &Live, session: &str) -> Option<SessionState> {
    t.store()
        .session(&t.app_id(), &SessionId::parse(session).unwrap())
        .await
        .unwrap()
        .map(|s| s.state)
}

/// The (session, reason) of every `conference.member.left` of `room`.
async fn left(t: &Live, room: &str) -> Vec<(String, String)> {
    t.events(room)
        .await
        .iter()
        .filter(|e| e.kind == EventKind::MemberLeft)
        .map(|e| {
            (
                e.data["uuid"].as_str().unwrap_or_default().to_owned(),
                e.data["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_node_killed_mid_conference_comes_back_with_its_rooms_and_without_its_calls() {
    let mut t = Live::start_own_node().await;
    let room = t.room("crash").await;
    let (alice, bob) = (t.call("1001").await, t.call("1002").await);
    t.joined(&room, &alice).await;
    t.joined(&room, &bob).await;
    let r = t.command(&bob, "conference/unmute").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let core = t.node_api("global_getvar core_uuid").await;

    // The node dies; its calls die with it. It comes back on the same ports.
    t.crash_and_restart_node().await;
    assert_ne!(
        t.node_api("global_getvar core_uuid").await,
        core,
        "a new FreeSWITCH process"
    );
    t.eventually("both members left with node_restarted", || async {
        let left = left(&t, &room).await;
        [&alice, &bob]
            .iter()
            .all(|s| left.contains(&(s.to_string(), "node_restarted".into())))
    })
    .await;
    let left = left(&t, &room).await;
    assert_eq!(left.len(), 2, "one member.left each: {left:?}");
    t.eventually("the calls' sessions ended", || async {
        session_state(&t, &alice).await == Some(SessionState::Ended)
            && session_state(&t, &bob).await == Some(SessionState::Ended)
    })
    .await;
    // The room is re-established on the new process: a new control leg holds the conference.
    t.eventually("the room's conference is back on the node", || async {
        t.conference_on_node(&room).await
            && t.stored_room(&room).await.status == RoomStatus::Progressing
    })
    .await;
    assert!(t.members(&room).await.is_empty());
    assert_eq!(t.readyz().await.status, StatusCode::OK);

    // And it takes calls again.
    let carol = t.call("1003").await;
    t.joined(&room, &carol).await;
    let members = t.members(&room).await;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["uuid"], carol.as_str());
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_cut_event_socket_refuses_commands_and_is_repaired_on_reconnect() {
    let t = Live::start_proxied().await;
    let room = t.room("cut").await;
    let (alice, bob, carol) = (
        t.call("1001").await,
        t.call("1002").await,
        t.call("1003").await,
    );
    t.joined(&room, &alice).await;
    t.joined(&room, &bob).await;
    let bob_id = t.stored_room(&room).await.members[channel_of(&bob)]
        .member_id
        .unwrap();

    // The network between the controller and the node fails.
    t.proxy.as_ref().unwrap().cut();
    t.eventually("readyz reports the node down", || async {
        t.readyz().await.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let r = t
        .req(
            "POST",
            &format!("/api/v1/sessions/{carol}/commands/conference/join"),
            Some(json!({ "room_id": room })),
        )
        .await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE);
    // Meanwhile on the node: Alice hangs up, an operator unmutes Bob.
    for line in [
        format!("uuid_kill {}", channel_of(&alice)),
        format!("conference {room} unmute {bob_id}"),
    ] {
        let reply = t.node_api(&line).await;
        assert!(reply.starts_with("+OK"), "{line}: {reply}");
    }

    // The network comes back: the controller reconnects and repairs the store from the node.
    t.proxy.as_ref().unwrap().heal();
    t.eventually("the store equals the node again", || async {
        t.store_members(&room).await == t.node_members(&room).await
            && t.store_members(&room).await.len() == 1
    })
    .await;
    let members = t.members(&room).await;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["uuid"], bob.as_str());
    assert_eq!(members[0]["muted"], false, "the operator's unmute is seen");
    t.eventually("alice's session ended", || async {
        session_state(&t, &alice).await == Some(SessionState::Ended)
    })
    .await;
    let left = left(&t, &room).await;
    assert_eq!(
        left.iter().filter(|(s, _)| s == &alice).count(),
        1,
        "{left:?}"
    );
    assert_eq!(t.readyz().await.status, StatusCode::OK);
    // Commands work again.
    t.joined(&room, &carol).await;
    t.finish().await;
}

/// A moderator that came and went on the node while the Event Socket was cut started the
/// waiting room (FreeSWITCH never waits again): after the reconnect the resync reads the room's
/// `wait_mod` from the node's list, and the API stops saying the room waits (it said so for
/// good: neither the moderator nor the end of the wait was ever told).
#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_moderator_that_came_and_went_while_the_socket_was_cut_started_the_room() {
    let t = Live::start_proxied().await;
    let room = t
        .room_with(json!({ "name": "cut-wait", "wait_for_moderator": true }))
        .await;
    let (caller, host) = (t.call("1001").await, t.call("1002").await);
    t.joined(&room, &caller).await;
    assert_eq!(t.waiting_for_moderator(&room).await, true);

    t.proxy.as_ref().unwrap().cut();
    t.eventually("readyz reports the node down", || async {
        t.readyz().await.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    // Meanwhile on the node: an operator's moderator joins, and hangs up.
    t.operator_joins_moderator(&room, &host).await;
    // (`get wait_mod` answers `true`, or nothing: `-ERR no reply` over the Event Socket.)
    t.eventually("the node no longer waits", || async {
        t.node_api(&format!("conference {room} get wait_mod"))
            .await
            .trim()
            != "true"
    })
    .await;
    let reply = t
        .node_api(&format!("uuid_kill {}", channel_of(&host)))
        .await;
    assert!(reply.starts_with("+OK"), "{reply}");
    // Gone from the node before the controller comes back (a hangup takes the channel's own
    // thread a moment: CI once saw the resync list the moderator, then its del-member).
    t.eventually("the moderator's call is gone", || async {
        !t.channel_exists(channel_of(&host)).await
    })
    .await;

    t.proxy.as_ref().unwrap().heal();
    t.eventually("the controller is back", || async {
        t.readyz().await.status == StatusCode::OK
    })
    .await;
    t.eventually("the API says the room started", || async {
        t.waiting_for_moderator(&room).await == false
    })
    .await;
    t.eventually("the store equals the node", || async {
        let node = t.node_members(&room).await;
        node.len() == 1 && t.store_members(&room).await == node
    })
    .await;
    let members = t.members(&room).await;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["uuid"], caller.as_str());
    t.finish().await;
}
