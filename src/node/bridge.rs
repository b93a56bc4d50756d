//! Node-to-node bridges (rooms that span media nodes, issue 18): the command that carries a
//! caller parked on its own node into a room another node hosts, over that node's `nodes` SIP
//! profile. Every fact behind it was recorded on two real nodes:
//! `fixtures/esl/10_cross_node.md` (section 2 and "What to do").
//!
//! The room's node (`freeswitch-conf/dialplan/nodes.xml`) puts the leg into the room muted,
//! join-only, tagged by `X-Switchyard-Session`, and hangs it up when it leaves the room; the
//! bridge ends then, and the caller parks again on its own node (`park_after_bridge`, which must
//! be set on the caller's leg: inside the dial string's `{…}` it reaches only the outbound leg).

use std::net::SocketAddr;

use crate::conference::{RoomId, SessionId};
use crate::esl::{ApiCommand, CommandError};

/// What one bridge asks of the caller's node.
#[derive(Debug, Clone)]
pub struct NodeBridge<'a> {
    /// The caller's channel on its own node (parked).
    pub caller: &'a uuid::Uuid,
    /// The outbound leg's uuid (`origination_uuid`), so the controller knows it in advance.
    pub out: &'a uuid::Uuid,
    /// The caller's session: the tag the room's node reads.
    pub session: &'a SessionId,
    pub room: &'a RoomId,
    /// The room's node-to-node SIP address (its `nodes` profile).
    pub node: SocketAddr,
    /// Seconds before a room's node that does not answer fails the join (32 s otherwise).
    pub answer_timeout_secs: u32,
    /// Milliseconds without media after which the outbound leg gives up a dead room's node
    /// (needs the RTP timer the `nodes` profile has; 0: never).
    pub media_timeout_ms: u32,
}

/// `uuid_transfer <caller> 'm:^:set:park_after_bridge=true^set:continue_on_fail=true^set:sip_copy_custom_headers=false^bridge:{…}sofia/nodes/<room>@<node>^park' inline`:
/// `m:^:` because the dial string's `{…}` holds commas, which would split an inline dialplan;
/// `continue_on_fail` and the trailing `park` keep the caller parked when the room's node
/// refuses (480 for a room it does not host) or cannot be reached; `sip_copy_custom_headers`
/// off keeps the caller's own `X-` headers (a carrier's) off the node link.
pub fn bridge_to_node(b: &NodeBridge<'_>) -> Result<ApiCommand, CommandError> {
    let vars = [
        format!("origination_uuid={}", b.out.hyphenated()),
        format!("sip_h_X-Switchyard-Session={}", b.session),
        format!("originate_timeout={}", b.answer_timeout_secs.clamp(1, 60)),
        format!("media_timeout={}", b.media_timeout_ms),
        "switchyard_role=node_bridge".to_owned(),
        format!("switchyard_room={}", b.room),
    ];
    let steps = format!(
        "m:^:set:park_after_bridge=true^set:continue_on_fail=true^set:sip_copy_custom_headers=false^bridge:{{{}}}sofia/nodes/{}@{}^park",
        vars.join(","),
        b.room,
        b.node
    );
    ApiCommand::new("uuid_transfer")?
        .arg(&b.caller.hyphenated().to_string())?
        .quoted(&steps)?
        .arg("inline")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::NodePrefix;

    #[test]
    fn the_bridge_is_the_recorded_command_with_nothing_but_checked_ids_in_it() {
        let caller = uuid::Uuid::parse_str("0b3c2a54-6f7e-4f4c-9a51-2d3f4b5c6d7e").unwrap();
        let out = uuid::Uuid::parse_str("1c4d3b65-7a8f-4a5d-8b62-3e4f5c6d7e8f").unwrap();
        let b_prefix = NodePrefix::parse("nodeB").unwrap();
        let session = SessionId::new(&b_prefix, &caller.to_string());
        let room = RoomId::parse("nodeA-room-550e8400-e29b-41d4-a716-446655440000").unwrap();
        let cmd = bridge_to_node(&NodeBridge {
            caller: &caller,
            out: &out,
            session: &session,
            room: &room,
            node: "10.0.0.5:5070".parse().unwrap(),
            answer_timeout_secs: 5,
            media_timeout_ms: 5000,
        })
        .unwrap();
        assert_eq!(
            cmd.as_str(),
            "uuid_transfer 0b3c2a54-6f7e-4f4c-9a51-2d3f4b5c6d7e 'm:^:set:park_after_bridge=true^set:continue_on_fail=true^set:sip_copy_custom_headers=false^bridge:{origination_uuid=1c4d3b65-7a8f-4a5d-8b62-3e4f5c6d7e8f,sip_h_X-Switchyard-Session=nodeB-0b3c2a54-6f7e-4f4c-9a51-2d3f4b5c6d7e,originate_timeout=5,media_timeout=5000,switchyard_role=node_bridge,switchyard_room=nodeA-room-550e8400-e29b-41d4-a716-446655440000}sofia/nodes/nodeA-room-550e8400-e29b-41d4-a716-446655440000@10.0.0.5:5070^park' inline"
        );
    }
}
