//! `freeswitch-conf/`'s node-to-node link (issue 18, first step: the configuration the cross-node
//! join will drive) on two real FreeSWITCH nodes started side by side: a SIPp caller parked on
//! node B is bridged, with the command `fixtures/esl/10_cross_node.md` recommends, to the `nodes`
//! profile of node A, whose `nodes` context puts the leg into the room A hosts, muted and tagged
//! with the caller's session id; a kick on A ends the bridge and B parks its caller again; a room
//! A does not host is refused and the caller parks again on B. Without a FreeSWITCH it is
//! compiled and reported as ignored (see `tests/live/conference.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::scenario::{PROFILE, Run, Target};
use switchyard::conference::{RoomId, SessionId};
use switchyard::node::bridge::{NodeBridge, bridge_to_node};

const DID: &str = "15550001000";

/// The node-to-node address of the node a run drives.
fn node_sip(run: &Run) -> std::net::SocketAddr {
    match &run.target {
        Target::Real { node, .. } => node.node_sip(),
        Target::Sim(_) => unreachable!("two real nodes"),
    }
}

/// On B: the caller leaves park for a bridge to `room` on A, tagged `session`, with the
/// controller's command (`node::bridge::bridge_to_node`); parked again on B when it ends.
async fn bridge(b: &mut Run, caller: &str, session: &str, room: &str, a: std::net::SocketAddr) {
    let caller = uuid::Uuid::parse_str(caller).unwrap();
    let session = SessionId::parse(session).unwrap();
    let room = RoomId::parse(room).unwrap();
    let cmd = bridge_to_node(&NodeBridge {
        caller: &caller,
        out: &uuid::Uuid::new_v4(),
        session: &session,
        room: &room,
        node: a,
        answer_timeout_secs: 5,
        media_timeout_ms: 5000,
    })
    .unwrap();
    let reply = b.api(cmd.as_str()).await;
    assert_eq!(reply.trim(), "+OK", "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_caller_on_one_node_is_bridged_into_a_room_on_another_and_parks_again() {
    let (a, b) = tokio::join!(Target::real(), Target::real());
    let (mut a, mut b) = (Run::start(a).await, Run::start(b).await);
    let a_addr = node_sip(&a);
    // A's node-to-node profile is up (sofia starts its profiles after the Event Socket).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = a.api("sofia status").await;
        if status
            .lines()
            .any(|l| l.contains("nodes") && l.contains("RUNNING"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "profile nodes never ran: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The room on A, opened as the controller opens rooms.
    let room = "nodeA-room-6d1f4c1e-0b5a-4c3e-9d52-0c7f0e3a9b11";
    let ctl = uuid::Uuid::new_v4().to_string();
    let from = a.mark();
    a.bgapi(&format!(
        "originate {{origination_uuid={ctl},switchyard_role=control}}null/switchyard &conference({room}@{PROFILE}+flags{{mute|deaf}})"
    ))
    .await;
    a.conf_event(from, "add-member", Some(&ctl)).await;

    // A caller on B, bridged into A's room.
    let caller = b.call(DID, "1001", "Alice").await;
    let session = format!("nodeB-{caller}");
    let from_a = a.mark();
    bridge(&mut b, &caller, &session, room, a_addr).await;
    let created = a
        .wait_from(from_a, "A's leg, tagged with the caller's session", |e| {
            e.header("Event-Name").as_deref() == Some("CHANNEL_CREATE")
                && e.header("variable_sip_h_X-Switchyard-Session").as_deref()
                    == Some(session.as_str())
        })
        .await;
    let leg = created.unique_id().unwrap().into_owned();
    assert_ne!(leg, caller, "A's leg is a channel of its own");
    let added = a.conf_event(from_a, "add-member", Some(&leg)).await;
    assert_eq!(
        added.header("Speak").as_deref(),
        Some("false"),
        "joined muted"
    );
    let id = added.member_id().unwrap();

    // A kick on A hangs A's leg up (nothing stays parked on A), B parks its caller again.
    let (from_a, from_b) = (a.mark(), b.mark());
    a.api(&format!("conference {room} kick {id}")).await;
    b.channel_event(from_b, "CHANNEL_PARK", &caller).await;
    a.destroyed(from_a, &leg).await;
    assert_eq!(b.api(&format!("uuid_exists {caller}")).await.trim(), "true");

    // A room A does not host: refused (join-only), and the caller parks again on B.
    let elsewhere = "nodeA-room-00000000-0000-4000-8000-000000000000";
    let (from_a, from_b) = (a.mark(), b.mark());
    bridge(&mut b, &caller, &session, elsewhere, a_addr).await;
    b.channel_event(from_b, "CHANNEL_PARK", &caller).await;
    assert!(
        a.events()[from_a..].iter().all(|e| {
            e.header("Action").as_deref() != Some("add-member")
                || e.header("Conference-Name").as_deref() != Some(elsewhere)
        }),
        "no room was made for it on A"
    );
    assert!(
        !a.api("conference list").await.contains(elsewhere),
        "no conference {elsewhere} on A"
    );
}
