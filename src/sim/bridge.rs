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

use super::channel::Dialog;
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
        let context = ch.context.clone();
        let speaking = ch.speaking;
        let far = self.place_sofia_leg(&out, endpoint, &vars, &cid, "nodes");
        let call_id = uuid::Uuid::new_v4().to_string();
        if let Some(leg) = self.channels.get_mut(&out) {
            leg.context = context;
            leg.bridge_caller = Some(caller.to_owned());
            leg.set_var("sip_call_id", call_id.clone());
            leg.dialog = Some(Dialog {
                call_id: call_id.clone(),
                peer,
                closed: false,
            });
        }
        if let Some(ch) = self.channels.get_mut(caller) {
            ch.bridge_out = Some(out.clone());
        }
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
                self.close_dialog(&uuid);
                let far = self.far_of(&uuid);
                let cid = self.cid_of(&uuid);
                self.far_replied(&uuid, &far, &cid, Some(&cause));
                if let Some(ch) = self.channels.get_mut(&uuid) {
                    ch.set_var("sip_term_status", status.to_string());
                }
                self.hangup(&uuid, &cause);
            }
            SipMsg::Bye { .. } => {
                self.close_dialog(&uuid);
                let answered = self.channels.get(&uuid).is_some_and(|c| c.answered != 0);
                let (cause, how) = match answered {
                    true => ("NORMAL_CLEARING", "recv_bye"),
                    false => ("ORIGINATOR_CANCEL", "recv_cancel"),
                };
                if let Some(ch) = self.channels.get_mut(&uuid) {
                    ch.set_var("sip_hangup_disposition", how);
                    if answered {
                        ch.set_var("sip_term_status", "200");
                        ch.set_var("sip_term_cause", "16");
                    }
                }
                self.hangup_soon(&uuid, cause);
            }
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

    fn close_dialog(&mut self, uuid: &str) {
        if let Some(d) = self
            .channels
            .get_mut(uuid)
            .and_then(|ch| ch.dialog.as_mut())
        {
            d.closed = true;
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
                ch.progressed = super::events::now_micros();
            }
            _ => return,
        }
        self.ch_event("CHANNEL_PROGRESS_MEDIA", out, &[], &[], true);
        self.set_callstate(out, "EARLY", 3);
    }

    /// The room's node's 200: the leg answers and the caller is bridged to it.
    fn bridge_answered(&mut self, out: &str) {
        let Some(caller) = self.channels.get(out).and_then(|c| c.bridge_caller.clone()) else {
            return;
        };
        self.far_answered(out);
        let Some(ch) = self.channels.get_mut(&caller) else {
            return;
        };
        if ch.bridge_out.as_deref() != Some(out) {
            return;
        }
        ch.bridged = true;
        ch.set_var("bridge_to", out);
        ch.set_var("last_bridge_to", out);
        ch.set_var("signal_bond", out);
        if let Some(leg) = self.channels.get_mut(out) {
            leg.set_var("bridge_to", caller.clone());
            leg.set_var("signal_bond", caller.clone());
        }
        let (pre, post) = self.bridge_headers(&caller, out);
        self.ch_event("CHANNEL_BRIDGE", &caller, &pre, &post, true);
        let to = [("Bridged-To", out.to_owned())];
        self.ch_event("CALL_UPDATE", out, &[], &to, true);
        let to = [("Bridged-To", caller.clone())];
        self.ch_event("CALL_UPDATE", &caller, &[], &to, true);
    }

    /// `Bridge-A-Unique-ID`/`Bridge-B-Unique-ID` before the caller's headers, the other leg's
    /// after.
    fn bridge_headers(
        &self,
        caller: &str,
        out: &str,
    ) -> (Headers, Headers) {
        let pre = vec![
            ("Bridge-A-Unique-ID", caller.to_owned()),
            ("Bridge-B-Unique-ID", out.to_owned()),
        ];
        let mut post = vec![("Other-Type", "originatee".to_owned())];
        if let Some(leg) = self.channels.get(out) {
            post.extend([
                ("Other-Leg-Direction", "outbound".to_owned()),
                ("Other-Leg-Caller-ID-Name", leg.cid_name.clone()),
                ("Other-Leg-Caller-ID-Number", leg.cid_number.clone()),
                ("Other-Leg-Destination-Number", leg.destination.clone()),
                ("Other-Leg-Unique-ID", out.to_owned()),
                ("Other-Leg-Channel-Name", leg.name.clone()),
            ]);
        }
        (pre, post)
    }

    /// A bridge that never got an answer: `bridge` ends; the caller goes on (`continue_on_fail`
    /// or a cause that always continues) or is hung up with the cause.
    pub(crate) fn bridge_failed(&mut self, caller: &str, cause: &str) {
        let Some(ch) = self.channels.get_mut(caller) else {
            return;
        };
        ch.bridge_out = None;
        ch.set_var("originate_failed_cause", cause);
        ch.set_var("originate_disposition", cause);
        let goes_on =
            ch.var("continue_on_fail") == Some("true") || CONTINUE_ANYWAY.contains(&cause);
        let after = std::mem::take(&mut ch.after);
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
        ch.set_var("last_bridge_hangup_cause", cause);
        let park = ch.var("park_after_bridge") == Some("true");
        let after = std::mem::take(&mut ch.after);
        let (pre, post) = self.bridge_headers(&caller, out);
        self.ch_event("CHANNEL_UNBRIDGE", &caller, &pre, &post, true);
        self.execute_complete(&caller);
        if park {
            if let Some(ch) = self.channels.get_mut(&caller) {
                ch.bare_park = true;
            }
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
        self.hangup(&out, "NORMAL_CLEARING");
        if was {
            let (pre, post) = self.bridge_headers(caller, &out);
            self.ch_event("CHANNEL_UNBRIDGE", caller, &pre, &post, true);
        }
    }

    /// What a hanging-up leg of a dialog sends the other node: BYE once answered (or a CANCEL,
    /// which the room's node takes like a BYE), a refusal from the room's node before it
    /// answered. Nothing when the other node ended the dialog.
    pub(crate) fn sip_hangup(&mut self, uuid: &str) {
        let Some(ch) = self.channels.get_mut(uuid) else {
            return;
        };
        let Some(dialog) = ch.dialog.as_mut().filter(|d| !d.closed) else {
            return;
        };
        dialog.closed = true;
        let (peer, call_id) = (dialog.peer, dialog.call_id.clone());
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
