//! The caller's node of a node-to-node bridge (`fixtures/esl/10_cross_node.md`, sections 2, 4,
//! 6, 7): the `bridge` app places a leg on the `nodes` profile to the room's node, named
//! `sofia/nodes/<room>@<host:port>` and born under the dial string's `origination_uuid`
//! (OUTGOING, CREATE, ORIGINATE); the room's node's 183 is CHANNEL_PROGRESS_MEDIA, its 200 the
//! answer and the caller's CHANNEL_BRIDGE. When the leg ends after an answer the caller
//! UNBRIDGEs, ends `bridge`, and with `park_after_bridge` parks with no app (no EXECUTE park);
//! a refused or unreachable bridge ends `bridge` with `originate_failed_cause` and, with
//! `continue_on_fail`, goes on to the next app. A caller that hangs up or is transferred takes
//! its leg down first (BYE to the room's node).

use std::time::Duration;

use super::channel::{Dialog, OtherLeg};
use super::channels::split_vars;
use super::core::{Deferred, State};
use super::link::{self, Invite, SipMsg};

/// Headers an event carries around the channel's own.
type Headers = Vec<(&'static str, String)>;

/// Causes after which a failed bridge goes on to the next app even without `continue_on_fail`
/// (`switch_channel_handle_cause`).
const CONTINUE_ANYWAY: &[&str] = &["NO_ANSWER", "NO_USER_RESPONSE", "ORIGINATOR_CANCEL"];

impl State {
    /// `bridge:{<vars>}sofia/nodes/<room>@<host:port>` run by `caller`.
    pub(crate) fn bridge(&mut self, caller: &str, data: &str) {
        let (vars, endpoint) = split_vars(data);
        let var = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let out = var("origination_uuid").unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let peer = endpoint
            .strip_prefix("sofia/nodes/")
            .and_then(|r| r.split_once('@'))
            .and_then(|(_, at)| at.parse::<std::net::SocketAddr>().ok());
        let (Some(me), Some(peer)) = (self.config.node_sip, peer) else {
            // No `nodes` profile here, or not a node's address: the originate fails at once.
            self.bridge_failed(caller, "DESTINATION_OUT_OF_ORDER");
            return;
        };
        let Some(ch) = self.channels.get(caller) else {
            return;
        };
        if self.channels.contains_key(&out) {
            self.bridge_failed(caller, "DESTINATION_OUT_OF_ORDER");
            return;
        }
        let cid = (ch.cid_name.clone(), ch.cid_number.clone());
        let speaking = ch.speaking;
        let originator = ch.clone();
        // What the originate copies from the caller onto its leg.
        let mut vars = vars.clone();
        for (k, v) in [
            ("max_forwards", "69".to_owned()),
            ("originating_leg_uuid", caller.to_owned()),
            ("originator", caller.to_owned()),
            ("originator_codec", "PCMU@8000h@20i@64000b".into()),
            ("signal_bond", caller.to_owned()),
            (
                "switch_m_sdp",
                ch.var("switch_r_sdp").unwrap_or_default().to_owned(),
            ),
        ] {
            vars.push((k.to_owned(), v));
        }
        let far = self.place_sofia_leg(&out, endpoint, &vars, &cid, "nodes", Some(originator));
        let call_id = uuid::Uuid::new_v4().to_string();
        if let Some(leg) = self.channels.get_mut(&out) {
            leg.bridge_caller = Some(caller.to_owned());
            leg.dialog = Some(Dialog {
                call_id: call_id.clone(),
                peer,
                closed: false,
                ended: None,
            });
        }
        if let Some(ch) = self.channels.get_mut(caller) {
            ch.bridge_out = Some(out.clone());
        }
        self.set_callstate(caller, "RING_WAIT", 6);
        let invite = Invite {
            call_id: call_id.clone(),
            from: me,
            user: far.user,
            tag: var("sip_h_X-Switchyard-Session"),
            cid_name: cid.0,
            cid_number: cid.1,
            speaking,
        };
        if !link::send(peer, SipMsg::Invite(invite)) {
            // The port is closed: mod_sofia fails the request itself (ICMP), at once.
            self.later(
                Duration::from_millis(1),
                Deferred::Sip(SipMsg::Refuse {
                    call_id,
                    status: 503,
                    cause: "NORMAL_TEMPORARY_FAILURE".into(),
                }),
            );
        }
    }

    /// A node-to-node message: to the leg of its dialog on this node.
    pub(crate) fn sip_in(&mut self, msg: SipMsg) {
        if let SipMsg::Invite(invite) = msg {
            self.node_invite(invite);
            return;
        }
        if let SipMsg::PeerGone { addr } = msg {
            self.peer_gone(addr);
            return;
        }
        let Some(uuid) = msg.call_id().and_then(|id| self.dialog_leg(id)) else {
            return;
        };
        match msg {
            SipMsg::Progress { .. } => self.bridge_progress(&uuid),
            SipMsg::Answer { .. } => self.bridge_answered(&uuid),
            SipMsg::Refuse { cause, status, .. } => {
                self.close_dialog(&uuid, "recv_refuse");
                let far = self.far_of(&uuid);
                let cid = self.cid_of(&uuid);
                self.far_replied(&uuid, &far, &cid, Some(&cause));
                if let Some(ch) = self.channels.get_mut(&uuid) {
                    ch.set_var("sip_term_status", status.to_string());
                    ch.set_var("sip_reason", format!("Q.850;cause=16;text=\"{cause}\""));
                }
                self.hangup(&uuid, &cause);
            }
            SipMsg::Bye { .. } => {
                let answered = self.channels.get(&uuid).is_some_and(|c| c.answered != 0);
                let (cause, how) = match answered {
                    true => ("NORMAL_CLEARING", "recv_bye"),
                    false => ("ORIGINATOR_CANCEL", "recv_cancel"),
                };
                self.close_dialog(&uuid, how);
                if let Some(ch) = self.channels.get_mut(&uuid).filter(|_| answered) {
                    ch.set_var("sip_term_status", "200");
                    ch.set_var("proto_specific_hangup_cause", "sip:200");
                    ch.set_var("sip_term_cause", "16");
                    ch.set_var("sip_reason", "Q.850;cause=16;text=\"NORMAL_CLEARING\"");
                }
                self.hangup_soon(&uuid, cause);
            }
            SipMsg::Info { .. } => self.recv_info(&uuid),
            SipMsg::Talk { on, .. } => {
                let room = self.channels.get_mut(&uuid).and_then(|ch| {
                    ch.speaking = on;
                    ch.room.clone()
                });
                if let Some(room) = room {
                    self.audio_changed(&room, None);
                }
            }
            SipMsg::Invite(_) | SipMsg::PeerGone { .. } => {}
        }
    }

    /// The channel of dialog `call_id` (either end).
    fn dialog_leg(&self, call_id: &str) -> Option<String> {
        self.channels
            .values()
            .find(|ch| ch.dialog.as_ref().is_some_and(|d| d.call_id == call_id))
            .map(|ch| ch.uuid.clone())
    }

    fn close_dialog(&mut self, uuid: &str, how: &'static str) {
        if let Some(d) = self
            .channels
            .get_mut(uuid)
            .and_then(|ch| ch.dialog.as_mut())
        {
            d.closed = true;
            d.ended = Some(how);
        }
    }

    fn far_of(&self, uuid: &str) -> super::dialout::Far {
        let name = self.channels.get(uuid).map(|ch| ch.name.clone());
        super::dialout::far_of_name(name.as_deref().unwrap_or_default())
    }

    fn cid_of(&self, uuid: &str) -> (String, String) {
        self.channels
            .get(uuid)
            .map(|ch| (ch.cid_name.clone(), ch.cid_number.clone()))
            .unwrap_or_default()
    }

    /// The room's node's 183: early media on the outbound leg.
    fn bridge_progress(&mut self, out: &str) {
        let far = self.far_of(out);
        let cid = self.cid_of(out);
        self.far_replied(out, &far, &cid, None);
        match self.channels.get_mut(out) {
            Some(ch) if ch.answered == 0 => {
                ch.answer_state = "early";
                ch.progress_media = super::events::now_micros();
                for (k, v) in [
                    ("endpoint_disposition", "EARLY MEDIA".to_owned()),
                    ("ep_codec_string", "PCMU@8000h@20i@64000b".into()),
                    (
                        "sip_allow",
                        "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REFER, NOTIFY"
                            .into(),
                    ),
                    ("sip_user_agent", "Switchyard".into()),
                    ("switch_r_sdp", super::sofia::answer_sdp("20000")),
                ] {
                    ch.set_var(k, v);
                }
                // mod_sofia names the callee after the party that answered with media (the
                // room's user; seen on 1.11), its number as it was.
                let number = ch.callee.take().map(|c| c.1).unwrap_or_default();
                ch.callee = Some((ch.destination.clone(), number));
            }
            _ => return,
        }
        self.ch_event("CHANNEL_PROGRESS_MEDIA", out, &[], &[], true);
        self.set_callstate(out, "EARLY", 3);
        // The originator notes the early media too.
        let caller = self.channels.get(out).and_then(|l| l.bridge_caller.clone());
        if let Some(ch) = caller.and_then(|c| self.channels.get_mut(&c))
            && ch.progress_media == 0
        {
            ch.progress_media = super::events::now_micros();
        }
        // The 183's SDP sets the leg's codecs and its RTP session.
        self.far_media(out);
        if let Some(ch) = self.channels.get_mut(out) {
            for (k, v) in super::sofia::answered_media_variables("rfc2833") {
                ch.set_var(k, v);
            }
            ch.set_var("rtp_2833_send_payload", "101");
            ch.set_var("rtp_2833_recv_payload", "101");
        }
    }

    /// The room's node's 200: the leg answers and the caller is bridged to it.
    fn bridge_answered(&mut self, out: &str) {
        let Some(caller) = self.channels.get(out).and_then(|c| c.bridge_caller.clone()) else {
            return;
        };
        self.far_answered(out, false);
        if self
            .channels
            .get(&caller)
            .is_none_or(|ch| ch.bridge_out.as_deref() != Some(out))
        {
            return;
        }
        let now = super::events::now_micros();
        let (peer, originatee) = match self.channels.get_mut(out) {
            Some(leg) => {
                leg.bridged_at = now;
                (
                    Some(leg.destination.clone()),
                    Some(OtherLeg::of("originatee", leg)),
                )
            }
            None => (None, None),
        };
        if let Some(ch) = self.channels.get_mut(&caller) {
            ch.other = originatee;
            if let Some(room) = &peer {
                ch.callee = Some((room.clone(), room.clone()));
            }
        }
        self.set_callstate(&caller, "ACTIVE", 4);
        self.originated(&caller, out, "NONE");
        let Some(ch) = self.channels.get_mut(&caller) else {
            return;
        };
        ch.bridged = true;
        ch.bridged_at = now;
        for (k, v) in [
            ("DIALSTATUS", "SUCCESS".to_owned()),
            ("originate_disposition", "SUCCESS".into()),
            ("signal_bond", out.to_owned()),
            ("switch_m_sdp", super::sofia::answer_sdp("20000")),
        ] {
            ch.set_var(k, v);
        }
        for k in [
            "originate_signal_bond",
            "sip_invite_failure_phrase",
            "sip_invite_failure_status",
        ] {
            ch.unset_var(k);
        }
        // The caller's display changes only when it is bridged to someone new.
        let new_peer = std::mem::replace(&mut ch.shown_peer, peer.clone()) != peer;
        let pre = Self::bridge_headers(&caller, out);
        self.ch_event("CHANNEL_BRIDGE", &caller, &pre, &[], true);
        let out_name = self
            .channels
            .get(out)
            .map(|l| l.name.clone())
            .unwrap_or_default();
        let caller_name = self
            .channels
            .get(&caller)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        for (leg, other, other_name) in [
            (out, caller.as_str(), &caller_name),
            (&caller, out, &out_name),
        ] {
            if let Some(ch) = self.channels.get_mut(leg) {
                let shown = (ch.cid_name.clone(), ch.cid_number.clone());
                for (k, v) in [
                    ("bridge_channel", other_name.clone()),
                    ("bridge_to", other.to_owned()),
                    ("bridge_uuid", other.to_owned()),
                    ("last_bridge_to", other.to_owned()),
                    ("last_sent_callee_id_name", shown.0),
                    ("last_sent_callee_id_number", shown.1),
                ] {
                    ch.set_var(k, v);
                }
            }
        }
        self.set_state(out, "CS_EXCHANGE_MEDIA", 5);
        // Each leg is sent the other's identity (mod_sofia's display update).
        let sent = |to: &str, name: String, number: String| {
            vec![
                ("Direction", "SEND".to_owned()),
                ("Sent-Callee-ID-Name", name),
                ("Sent-Callee-ID-Number", number),
                ("Bridged-To", to.to_owned()),
            ]
        };
        let cid = self.cid_of(&caller);
        self.ch_event("CALL_UPDATE", out, &sent(&caller, cid.0, cid.1), &[], true);
        if new_peer {
            let room = peer.clone().unwrap_or_default();
            let pre = sent(out, room.clone(), room);
            self.ch_event("CALL_UPDATE", &caller, &pre, &[], true);
        }
        // The display update mod_sofia sends the room's node after a bridge (CALL_UPDATE).
        if let Some(d) = self.channels.get(out).and_then(|c| c.dialog.as_ref()) {
            let call_id = d.call_id.clone();
            link::send(d.peer, SipMsg::Info { call_id });
        }
    }

    /// `Bridge-A-Unique-ID`/`Bridge-B-Unique-ID`, before the caller's headers (whose caller
    /// profile carries the other leg's while it has one).
    fn bridge_headers(caller: &str, out: &str) -> Headers {
        vec![
            ("Bridge-A-Unique-ID", caller.to_owned()),
            ("Bridge-B-Unique-ID", out.to_owned()),
        ]
    }

    /// What an originate leaves on its caller, pushed (so every bridge of a call is kept, an
    /// array from the second on): `originated_legs` (`<leg>;<callee name>;<callee number>`)
    /// and `originate_causes` (`<leg>;<its cause>`, NONE when answered).
    fn originated(&mut self, caller: &str, out: &str, cause: &str) {
        let (dest, cause) = match self.channels.get(out) {
            Some(leg) => (
                leg.destination.clone(),
                leg.hangup_cause.clone().unwrap_or_else(|| cause.to_owned()),
            ),
            None => (String::new(), cause.to_owned()),
        };
        if let Some(ch) = self.channels.get_mut(caller) {
            ch.push_var("originated_legs", &format!("{out};Outbound Call;{dest}"));
            ch.push_var("originate_causes", &format!("{out};{cause}"));
        }
    }

    /// A bridge that never got an answer: `bridge` ends; the caller goes on (`continue_on_fail`
    /// or a cause that always continues) or is hung up with the cause.
    pub(crate) fn bridge_failed(&mut self, caller: &str, cause: &str) {
        let Some(ch) = self.channels.get_mut(caller) else {
            return;
        };
        let out = ch.bridge_out.take();
        // The refusal the leg got (`far_replied`), as the originate copies it to the caller.
        let refusal: Vec<(&str, String)> = out
            .as_ref()
            .and_then(|o| self.channels.get(o))
            .map(|leg| {
                ["sip_invite_failure_phrase", "sip_invite_failure_status"]
                    .into_iter()
                    .filter_map(|k| leg.var(k).map(|v| (k, v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(out) = &out {
            self.originated(caller, out, cause);
        }
        let Some(ch) = self.channels.get_mut(caller) else {
            return;
        };
        ch.set_var("originate_failed_cause", cause);
        if let Some(out) = out {
            ch.set_var("originate_signal_bond", out);
        }
        for (k, v) in refusal {
            ch.set_var(k, v);
        }
        let goes_on =
            ch.var("continue_on_fail") == Some("true") || CONTINUE_ANYWAY.contains(&cause);
        let after = std::mem::take(&mut ch.after);
        if ch.call_state == "RING_WAIT" {
            self.set_callstate(caller, "ACTIVE", 4);
        }
        self.execute_complete(caller);
        if goes_on {
            self.run_apps(caller, after);
        } else {
            self.hangup(caller, cause);
        }
    }

    /// The outbound leg `out` is done (HANGUP_COMPLETE fired): its caller, if still bridged
    /// to it, unbridges and parks (`park_after_bridge`) or runs its next app; a leg that never
    /// answered fails the bridge.
    pub(crate) fn bridge_leg_ended(&mut self, out: &str, cause: &str) {
        let Some(caller) = self.channels.get(out).and_then(|c| c.bridge_caller.clone()) else {
            return;
        };
        let Some(ch) = self.channels.get_mut(&caller) else {
            return;
        };
        if ch.bridge_out.as_deref() != Some(out) || ch.is_hungup() {
            return;
        }
        if !ch.bridged {
            self.bridge_failed(&caller, cause);
            return;
        }
        ch.bridge_out = None;
        ch.bridged = false;
        for (k, v) in [
            ("bridge_hangup_cause", cause.to_owned()),
            ("last_bridge_hangup_cause", cause.to_owned()),
            ("last_bridge_proto_specific_hangup_cause", "sip:200".into()),
            ("sip_hangup_phrase", "OK".into()),
            (
                "sip_reason",
                "Q.850;cause=16;text=\"NORMAL_CLEARING\"".into(),
            ),
        ] {
            ch.set_var(k, v);
        }
        ch.unset_var("bridge_to");
        let park = ch.var("park_after_bridge") == Some("true");
        let after = std::mem::take(&mut ch.after);
        let pre = Self::bridge_headers(&caller, out);
        self.ch_event("CHANNEL_UNBRIDGE", &caller, &pre, &[], true);
        if park {
            // Asked to park: the bridge's end is reported on the way there.
            self.ask_state(&caller, 6);
        }
        self.execute_complete(&caller);
        if park {
            if let Some(ch) = self.channels.get_mut(&caller) {
                ch.bare_park = true;
            }
            self.set_state(&caller, "CS_PARK", 6);
            self.ch_event("CHANNEL_PARK", &caller, &[], &[], true);
        } else {
            self.run_apps(&caller, after);
        }
    }

    /// The caller leaves its bridge itself (hangs up, is transferred): the outbound leg is hung
    /// up (BYE to the room's node), then the caller UNBRIDGEs.
    pub(crate) fn drop_bridge(&mut self, caller: &str) {
        let Some(ch) = self.channels.get_mut(caller) else {
            return;
        };
        let Some(out) = ch.bridge_out.take() else {
            return;
        };
        let was = std::mem::replace(&mut ch.bridged, false);
        let killed = ch.hangup_cause.clone();
        if let Some(leg) = self.channels.get_mut(&out) {
            // The caller's thread ends the bridge: the leg is no longer its originatee.
            leg.bridge_caller = None;
            leg.unset_var("bridge_to");
            match killed {
                Some(cause) => leg.set_var("last_bridge_hangup_cause", cause),
                // A transfer unbonds both legs.
                None => leg.unset_var("signal_bond"),
            }
        }
        self.hangup(&out, "NORMAL_CLEARING");
        if let Some(ch) = self.channels.get_mut(caller) {
            ch.unset_var("bridge_to");
        }
        if was {
            let pre = Self::bridge_headers(caller, &out);
            self.ch_event("CHANNEL_UNBRIDGE", caller, &pre, &[], true);
        }
    }

    /// What a hanging-up leg of a dialog sends the other node: BYE once answered (or a CANCEL,
    /// which the room's node takes like a BYE), a refusal from the room's node before it
    /// answered. Nothing when the other node ended the dialog.
    pub(crate) fn sip_hangup(&mut self, uuid: &str) {
        let Some(ch) = self.channels.get_mut(uuid) else {
            return;
        };
        let Some(dialog) = ch.dialog.as_mut() else {
            return;
        };
        if dialog.closed {
            if ch.bridge_caller.is_some() {
                ch.unset_var("bridge_to");
            }
            return;
        }
        dialog.closed = true;
        let (peer, call_id) = (dialog.peer, dialog.call_id.clone());
        if ch.bridge_caller.is_some() {
            ch.unset_var("bridge_to");
        }
        let cause = ch.hangup_cause.clone().unwrap_or_default();
        let (msg, how) = if ch.answered != 0 {
            (SipMsg::Bye { call_id }, "send_bye")
        } else if ch.outbound {
            (SipMsg::Bye { call_id }, "send_cancel")
        } else {
            let status = match cause.as_str() {
                "UNALLOCATED_NUMBER" => 404,
                "USER_BUSY" => 486,
                _ => 480,
            };
            (
                SipMsg::Refuse {
                    call_id,
                    status,
                    cause,
                },
                "send_refuse",
            )
        };
        ch.set_var("sip_hangup_disposition", how);
        link::send(peer, msg);
    }

    /// A leg whose dialog the other node ended: its `sip_hangup_disposition` (`recv_bye`, …).
    pub(crate) fn sip_ended(&mut self, uuid: &str) {
        if let Some(ch) = self.channels.get_mut(uuid)
            && let Some(how) = ch.dialog.as_mut().and_then(|d| d.ended.take())
        {
            ch.set_var("sip_hangup_disposition", how);
        }
    }

    /// A node died: its RTP stopped. Legs bridged to it end on their `media_timeout` (never
    /// without one); a leg still ringing there on its `originate_timeout`.
    fn peer_gone(&mut self, addr: std::net::SocketAddr) {
        let mut ends = Vec::new();
        for ch in self.channels.values_mut() {
            let Some(d) = ch.dialog.as_mut().filter(|d| d.peer == addr && !d.closed) else {
                continue;
            };
            d.closed = true;
            let ms = |v: Option<&str>| v.and_then(|v| v.parse::<u64>().ok()).filter(|v| *v > 0);
            if ch.answered != 0 {
                if let Some(ms) = ms(ch.var("media_timeout")) {
                    ends.push((ch.uuid.clone(), ms, "MEDIA_TIMEOUT"));
                }
            } else if let Some(secs) = ms(ch.var("originate_timeout")) {
                ends.push((ch.uuid.clone(), secs * 1000, "NO_ANSWER"));
            }
        }
        for (uuid, ms, cause) in ends {
            self.later(
                Duration::from_millis(ms),
                Deferred::Hangup {
                    uuid,
                    cause: cause.into(),
                },
            );
        }
    }

    /// A restart ends every call: each open dialog gets its BYE.
    pub(crate) fn bye_all(&mut self) {
        for ch in self.channels.values_mut() {
            if let Some(d) = ch.dialog.as_mut().filter(|d| !d.closed) {
                d.closed = true;
                link::send(
                    d.peer,
                    SipMsg::Bye {
                        call_id: d.call_id.clone(),
                    },
                );
            }
        }
    }
}
