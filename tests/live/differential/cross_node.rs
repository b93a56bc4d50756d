//! The node-to-node scenarios of `tests/live/differential/mod.rs` (rooms that span media nodes,
//! `fixtures/esl/10_cross_node.md`): a [`PairScenario`] drives two nodes at once — node A hosts
//! the room, node B has the SIP caller, which it bridges over SIP into A's room with the
//! command the controller sends (`src/node/bridge.rs`); A's `nodes` dialplan
//! (`freeswitch-conf/dialplan/nodes.xml`) puts the leg into the room.
//!
//! Labels, given in both runs wherever the id can appear: the caller `call1` (A sees it inside
//! the tag `variable_sip_h_X-Switchyard-Session`, `<prefix>-<caller uuid>`, and in
//! `Channel-Presence-Data`), B's outbound leg `outN` (the `origination_uuid` chosen here), A's
//! leg `legN` (learnt from A's CHANNEL_CREATE carrying the tag), their common SIP Call-ID
//! `sipN`, the nodes' node-to-node addresses `a_sip` (in B's caller's destination after the
//! transfer) and `b_sip` (A's leg's Via and Contact), and the rooms.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use switchyard::conference::Exit;
use switchyard::conference::actions::{Gender, Talk};
use switchyard::conference::{NodePrefix, RoomId, SessionId};
use switchyard::esl::ApiCommand;
use switchyard::node::bridge::{NodeBridge, bridge_to_node};
use switchyard::node::commands;

use super::scenarios::{self, DID, ROOM};
use crate::common::scenario::Run;

/// A scenario on two nodes: the first run is node A's (the room's), the second node B's (the
/// caller's).
pub type PairScenario =
    for<'a> fn(&'a mut Run, &'a mut Run) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

/// B's node prefix: the session tag is `<PREFIX>-<caller uuid>`.
pub const PREFIX: &str = "dtest";

/// A valid room id that node A does not host (its join-only join is refused: 480).
pub const OTHER_ROOM: &str = "dtest-room-3b9e2f70-5c1d-4e8a-a6f4-7d2c9b0e1f35";

/// A request user that is not a room id (A's `not_a_node_leg`: 404).
pub const NOT_A_ROOM: &str = "not-a-room";

/// The bridge as the controller sends it to the caller's node (`node::bridge::bridge_to_node`,
/// 5 s answer timeout, 5 s media timeout); written out here so that a request user that is not
/// a room id can be sent too, and checked against the controller's text for real room ids.
pub fn bridge_command(caller: &str, out: &str, tag: &str, room: &str, node: SocketAddr) -> String {
    let line = format!(
        "uuid_transfer {caller} 'm:^:set:park_after_bridge=true^set:continue_on_fail=true^set:sip_copy_custom_headers=false^bridge:{{origination_uuid={out},sip_h_X-Switchyard-Session={tag},originate_timeout=5,media_timeout=5000,switchyard_role=node_bridge,switchyard_room={room}}}sofia/nodes/{room}@{node}^park' inline"
    );
    if let Ok(room_id) = RoomId::parse(room) {
        let (caller_id, out_id) = (caller.parse().unwrap(), out.parse().unwrap());
        let session = SessionId::new(&NodePrefix::parse(PREFIX).unwrap(), caller);
        let controller = bridge_to_node(&NodeBridge {
            caller: &caller_id,
            out: &out_id,
            session: &session,
            room: &room_id,
            node,
            answer_timeout_secs: 5,
            media_timeout_ms: 5000,
        })
        .unwrap();
        assert_eq!(line, controller.as_str(), "the controller's bridge command");
    }
    line
}

/// One bridge sent: A's leg, B's outbound leg, and the marks taken before the command.
struct Bridge {
    leg: String,
    out: String,
    from_a: usize,
    from_b: usize,
}

/// The controller's exit of a bridged member on the room's node (`commands::take_out`): its leg
/// killed, or told `talks` then hung up.
fn take_out(leg: &str, talks: &[Talk]) -> ApiCommand {
    let exit = Exit {
        channel: leg.to_owned(),
        bridged: true,
    };
    commands::take_out(&exit, talks).unwrap()
}

/// Sends bridge number `n` of `caller` into `room` on B, and waits for A's leg to be created
/// (the CHANNEL_CREATE carrying the caller's tag), labelling everything in both runs.
async fn bridge(a: &mut Run, b: &mut Run, caller: &str, room: &str, n: usize) -> Bridge {
    let out = uuid::Uuid::new_v4().to_string();
    a.label(&out, &format!("out{n}"));
    b.label(&out, &format!("out{n}"));
    let tag = format!("{PREFIX}-{caller}");
    let line = bridge_command(caller, &out, &tag, room, a.target.node_sip());
    let (from_a, from_b) = (a.mark(), b.mark());
    b.api(&line).await;
    let create = a
        .wait_from(from_a, &format!("CHANNEL_CREATE of leg{n}"), |e| {
            e.header("Event-Name").as_deref() == Some("CHANNEL_CREATE")
                && e.header("variable_sip_h_X-Switchyard-Session").as_deref() == Some(&tag)
        })
        .await;
    let leg = create.unique_id().unwrap().into_owned();
    a.label(&leg, &format!("leg{n}"));
    b.label(&leg, &format!("leg{n}"));
    if let Some(call_id) = create.header("variable_sip_call_id") {
        a.label(&call_id, &format!("sip{n}"));
        b.label(&call_id, &format!("sip{n}"));
    }
    Bridge {
        leg,
        out,
        from_a,
        from_b,
    }
}

/// The bridge is up and settled: A's leg is a member of the room (its Member-ID), the caller is
/// bridged on B, B's outbound leg has sent A the caller's display (its CALL_UPDATE on B, A's
/// leg's RECV_INFO `message/update_display`, which otherwise lands anywhere among the next
/// step's events) and, when the caller's callee id changes (the first bridge only: later ones
/// show the same room), the caller's CALL_UPDATE on B.
async fn joined(a: &Run, b: &Run, caller: &str, x: &Bridge, callee_changes: bool) -> u32 {
    let id = a
        .conf_event(x.from_a, "add-member", Some(&x.leg))
        .await
        .member_id()
        .unwrap();
    b.channel_event(x.from_b, "CHANNEL_BRIDGE", caller).await;
    b.channel_event(x.from_b, "CALL_UPDATE", &x.out).await;
    if callee_changes {
        b.channel_event(x.from_b, "CALL_UPDATE", caller).await;
    }
    a.channel_event(x.from_a, "RECV_INFO", &x.leg).await;
    id
}

/// The bridge is over and the caller parked again on B: the caller's CHANNEL_PARK on B, A's leg
/// and B's outbound leg destroyed (counting from the marks `from`).
async fn parked_again(a: &Run, b: &Run, caller: &str, x: &Bridge, from: (usize, usize)) {
    b.channel_event(from.1, "CHANNEL_PARK", caller).await;
    a.destroyed(from.0, &x.leg).await;
    b.destroyed(from.1, &x.out).await;
}

/// One caller on B bridged into A's room seven times: joined, unmuted and muted, and taken out
/// on A (`uuid_kill` of A's leg); joined and kicked on A; joined and moved to park on B; refused
/// by A for a room it does not host (480); refused for a request user that is not a room (404);
/// joined and taken out on A with a farewell spoken; joined and hung up on B. After every leave and refusal the caller is parked again on B.
pub fn bridged<'a>(a: &'a mut Run, b: &'a mut Run) -> Pin<Box<dyn Future<Output = ()> + 'a>> {
    Box::pin(async move {
        let (a_sip, b_sip) = (
            a.target.node_sip().to_string(),
            b.target.node_sip().to_string(),
        );
        for run in [&mut *a, &mut *b] {
            run.label(&a_sip, "a_sip");
            run.label(&b_sip, "b_sip");
            run.label(ROOM, "room");
            run.label(OTHER_ROOM, "room2");
        }
        let ctl = scenarios::open_room(a).await;
        // Silent: a caller's voice would race the unmute/mute with talking events.
        let caller = b.call_silent(DID, "1001", "Alice").await;
        a.label(&caller, "call1");

        // 1. Joined, unmuted, muted; A's leg killed on A.
        let x = bridge(a, b, &caller, ROOM, 1).await;
        let id = joined(a, b, &caller, &x, true).await;
        scenarios::member(a, "unmute", id, &x.leg, "unmute-member").await;
        scenarios::member(a, "mute", id, &x.leg, "mute-member").await;
        let from = (a.mark(), b.mark());
        a.api(take_out(&x.leg, &[]).as_str()).await;
        parked_again(a, b, &caller, &x, from).await;

        // 2. Joined, kicked on A (A's dialplan hangs its leg up).
        let x = bridge(a, b, &caller, ROOM, 2).await;
        let id = joined(a, b, &caller, &x, false).await;
        let from = (a.mark(), b.mark());
        scenarios::member(a, "kick", id, &x.leg, "kick-member").await;
        parked_again(a, b, &caller, &x, from).await;

        // 3. Joined, the caller moved to park on B (the controller's leave).
        let x = bridge(a, b, &caller, ROOM, 3).await;
        joined(a, b, &caller, &x, false).await;
        let from = (a.mark(), b.mark());
        b.api(commands::leave(&caller, &[]).unwrap().as_str()).await;
        a.conf_event(from.0, "del-member", Some(&x.leg)).await;
        parked_again(a, b, &caller, &x, from).await;

        // 4. A room A does not host: join-only refuses it (480), the caller parks again.
        let x = bridge(a, b, &caller, OTHER_ROOM, 4).await;
        a.conf_event(x.from_a, "rejected-join-only", None).await;
        parked_again(a, b, &caller, &x, (x.from_a, x.from_b)).await;

        // 5. Not a room id: A's `not_a_node_leg` (404), the caller parks again.
        let x = bridge(a, b, &caller, NOT_A_ROOM, 5).await;
        parked_again(a, b, &caller, &x, (x.from_a, x.from_b)).await;

        // 6. Joined, taken out on A with a farewell: A's leg hears it, then hangs up.
        let x = bridge(a, b, &caller, ROOM, 6).await;
        joined(a, b, &caller, &x, false).await;
        let from = (a.mark(), b.mark());
        let bye = Talk {
            text: "Goodbye".into(),
            language: "en-US".into(),
            gender: Gender::Female,
        };
        a.api(take_out(&x.leg, &[bye]).as_str()).await;
        a.conf_event(from.0, "del-member", Some(&x.leg)).await;
        parked_again(a, b, &caller, &x, from).await;

        // 7. Joined, the caller killed on B: A's leg leaves the room and hangs up.
        let x = bridge(a, b, &caller, ROOM, 7).await;
        joined(a, b, &caller, &x, false).await;
        let from = (a.mark(), b.mark());
        b.api(&format!("uuid_kill {caller}")).await;
        a.conf_event(from.0, "del-member", Some(&x.leg)).await;
        a.destroyed(from.0, &x.leg).await;
        b.destroyed(from.1, &caller).await;
        b.destroyed(from.1, &x.out).await;

        scenarios::close(a, &ctl).await;
        b.all_destroyed().await;
    })
}
