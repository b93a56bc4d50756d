//! The room's node of a node-to-node bridge (`fixtures/esl/10_cross_node.md`, sections 3, 4, 7):
//! another node's INVITE on the `nodes` profile becomes an inbound leg in context `nodes`, named
//! `sofia/nodes/<caller number>@<that node's address>`, carrying the caller's id and the session
//! tag (`variable_sip_h_X-Switchyard-Session`, from CHANNEL_CREATE on). The `nodes` dialplan of
//! `freeswitch-conf/dialplan/nodes.xml` runs: a tagged leg to a room id sets
//! `switchyard_role=node_leg` and `presence_data=<tag>`, and joins the room muted and join-only
//! (PROGRESS_MEDIA — the 183 —, EXECUTE conference, ANSWER — the 200 —, add-member), then hangs
//! up when it leaves; a room this node does not host is `rejected-join-only` and a 480; anything
//! else is `not_a_node_leg` (UNALLOCATED_NUMBER, a 404).

use super::channel::{App, Dialog};
use super::conference::{JoinSpec, QUIET_PROFILE};
use super::core::State;
use super::events::now_micros;
use super::link::{self, Invite, SipMsg};
use super::sofia::Arrival;

/// `<5 letters or digits>-<lowercase uuid>`: the shape of a session id.
fn is_session_tag(tag: &str) -> bool {
    tag.split_once('-').is_some_and(|(prefix, id)| {
        prefix.len() == 5 && prefix.bytes().all(|b| b.is_ascii_alphanumeric()) && is_uuid(id)
    })
}

/// `<5 letters or digits>-room-<lowercase uuid>`: the shape of a room id.
fn is_room(user: &str) -> bool {
    user.split_once("-room-").is_some_and(|(prefix, id)| {
        prefix.len() == 5 && prefix.bytes().all(|b| b.is_ascii_alphanumeric()) && is_uuid(id)
    })
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok() && !s.bytes().any(|b| b.is_ascii_uppercase())
}

/// The `nodes` context of `freeswitch-conf/dialplan/nodes.xml`.
fn nodes_dialplan(tag: Option<&str>, user: &str) -> Vec<App> {
    match tag {
        Some(tag) if is_session_tag(tag) && is_room(user) => vec![
            App::Set("switchyard_role=node_leg".into()),
            App::Set(format!("presence_data={tag}")),
            App::Conference(JoinSpec {
                room: user.to_owned(),
                profile: QUIET_PROFILE.into(),
                flags: vec!["mute".into(), "join-only".into()],
            }),
            App::Hangup("NORMAL_CLEARING".into()),
        ],
        _ => vec![App::Hangup("UNALLOCATED_NUMBER".into())],
    }
}

impl State {
    /// Another node's INVITE to a room: the leg arrives and runs the `nodes` dialplan.
    pub(crate) fn node_invite(&mut self, invite: Invite) {
        let Some(me) = self.config.node_sip else {
            return;
        };
        let uuid = uuid::Uuid::new_v4().to_string();
        let (number, name) = (invite.cid_number.clone(), invite.cid_name.clone());
        let from = invite.from;
        let host = from.ip().to_string();
        let arrival = Arrival {
            uuid: uuid.clone(),
            profile: "nodes",
            context: "nodes",
            number: number.clone(),
            name: name.clone(),
            from,
            local: me,
            user: invite.user.clone(),
            call_id: invite.call_id.clone(),
            user_agent: "Switchyard",
            from_uri: format!("{number}@{host}"),
            contact_user: "mod_sofia".into(),
            via: format!("SIP/2.0/UDP {from};rport;branch=z9hG4bK-sim"),
            max_forwards: "69",
        };
        let mut ch = arrival.channel(self.next_session());
        ch.speaking = invite.speaking;
        ch.dialog = Some(Dialog {
            call_id: invite.call_id.clone(),
            peer: from,
            closed: false,
            ended: None,
        });
        // The other node's mod_sofia: its caller id header, methods, and our session tag.
        let mut vars = vec![
            (
                "sip_Remote-Party-ID",
                format!("\"{name}\" <sip:{number}@{host}>;party=calling;screen=yes;privacy=off"),
            ),
            (
                "sip_allow",
                "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REFER, NOTIFY".into(),
            ),
            ("sip_cid_type", "rpid".into()),
            ("sip_via_rport", from.port().to_string()),
        ];
        if let Some(tag) = &invite.tag {
            vars.push(("sip_h_X-Switchyard-Session", tag.clone()));
        }
        for (k, v) in vars {
            ch.set_var(k, v);
        }
        self.sip_arrives(ch, from.port().into());
        let apps = nodes_dialplan(invite.tag.as_deref(), &invite.user);
        // The node-leg extension's room condition captured the room.
        if let (Some(ch), true) = (self.channels.get_mut(&uuid), apps.len() > 1) {
            let room = &invite.user;
            ch.set_var("DP_MATCH", format!("ARRAY::{room}|:{room}"));
        }
        self.run_apps(&uuid, apps);
    }

    /// The conference app's pre-answer of a node leg: the 183 (CHANNEL_PROGRESS_MEDIA).
    pub(crate) fn node_leg_pre_answer(&mut self, uuid: &str) {
        let call_id = match self.channels.get_mut(uuid) {
            Some(ch) if !ch.outbound && ch.answered == 0 && ch.answer_state != "early" => {
                match &ch.dialog {
                    Some(d) => {
                        let call_id = d.call_id.clone();
                        let peer = d.peer;
                        ch.answer_state = "early";
                        ch.progress_media = now_micros();
                        // The early media's RTP session (the same as an answer's).
                        let port = ch.var("remote_media_port").unwrap_or("20000").to_owned();
                        for (k, v) in super::sofia::sip_answer_variables(&port) {
                            ch.set_var(k, v);
                        }
                        ch.set_var("rtp_2833_send_payload", "101");
                        ch.set_var("rtp_2833_recv_payload", "101");
                        (call_id, peer)
                    }
                    None => return,
                }
            }
            _ => return,
        };
        self.ch_event("CHANNEL_PROGRESS_MEDIA", uuid, &[], &[], true);
        self.set_callstate(uuid, "EARLY", 3);
        link::send(call_id.1, SipMsg::Progress { call_id: call_id.0 });
    }

    /// A node leg answered: the 200 to the caller's node.
    pub(crate) fn node_leg_answered(&mut self, uuid: &str) {
        if let Some((peer, call_id)) = self
            .channels
            .get(uuid)
            .filter(|ch| !ch.outbound)
            .and_then(|ch| ch.dialog.as_ref())
            .filter(|d| !d.closed)
            .map(|d| (d.peer, d.call_id.clone()))
        {
            link::send(peer, SipMsg::Answer { call_id });
        }
    }

    /// The conference app with `join-only` and no such room: `rejected-join-only` (the
    /// channel's basic data, the room's name and profile), then the hangup
    /// (`hangup_after_conference`). True when it refused.
    pub(crate) fn rejects_join_only(&mut self, uuid: &str, spec: &JoinSpec) -> bool {
        if !spec.flags.iter().any(|f| f == "join-only") || self.rooms.contains_key(&spec.room) {
            return false;
        }
        let Some(ch) = self.channels.get(uuid).cloned() else {
            return true;
        };
        let mut e = self.event(
            "CUSTOM",
            Some("conference::maintenance"),
            ("mod_conference.c", "conference_function", 2134),
        );
        ch.push_headers(&mut e, false);
        e.push("Conference-Name", spec.room.clone());
        e.push("Conference-Profile-Name", spec.profile.clone());
        e.push("Action", "rejected-join-only");
        self.fire(e);
        self.hangup(uuid, "NORMAL_CLEARING");
        true
    }

    /// RECV_INFO: the INFO `message/update_display` the caller's node sends once bridged.
    pub(crate) fn recv_info(&mut self, uuid: &str) {
        let Some(ch) = self.channels.get(uuid).cloned() else {
            return;
        };
        let mut e = self.event("RECV_INFO", None, ("sofia.c", "create_info_event", 9733));
        let me = self.config.node_sip;
        let host = ch.network_addr.clone().unwrap_or_default();
        e.push("SIP-Content-Type", "message/update_display");
        e.push("SIP-From-User", ch.cid_number.clone());
        e.push("SIP-From-Host", host.clone());
        e.push("SIP-To-User", ch.destination.clone());
        e.push(
            "SIP-To-Host",
            me.map(|a| a.ip().to_string()).unwrap_or_default(),
        );
        e.push("SIP-Contact-User", "mod_sofia");
        e.push("SIP-Contact-Host", host);
        ch.push_headers(&mut e, false);
        self.fire(e);
    }
}
