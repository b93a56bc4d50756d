//! How a channel lives, event by event, as FreeSWITCH's state machine reports it: states and call
//! states, codecs, applications (CHANNEL_EXECUTE / _COMPLETE), answer, and the hangup sequence
//! (CHANNEL_HANGUP, CS_HANGUP, CS_REPORTING with the CDR variables, HANGUP_COMPLETE, DESTROY).
//! A loopback pair hangs up together: each leg takes its partner down.

use std::time::Duration;

use super::channel::{App, cdr_variables};
use super::core::{Deferred, State};
use super::events::now_micros;

type Headers<'a> = &'a [(&'a str, String)];

const SWITCH_CHANNEL: (&str, &str, u32) =
    ("switch_channel.c", "switch_channel_perform_event", 4000);

impl State {
    /// Fires `name` for a channel: `pre` headers, the channel (with `variables` or not), `post`.
    pub(crate) fn ch_event(
        &mut self,
        name: &str,
        uuid: &str,
        pre: Headers<'_>,
        post: Headers<'_>,
        variables: bool,
    ) {
        let Some(ch) = self.channels.get_mut(uuid) else {
            return;
        };
        // What FreeSWITCH's core database (`show channels`) takes from these events.
        match name {
            "CHANNEL_CREATE" => ch.listed.0 = ch.destination.clone(),
            "CALL_UPDATE" => {
                ch.listed.1 = ch.cid_name.clone();
                ch.listed.2 = ch.cid_number.clone();
            }
            "CHANNEL_STATE" if ch.state.0 == "CS_ROUTING" => {
                ch.listed = (
                    ch.destination.clone(),
                    ch.cid_name.clone(),
                    ch.cid_number.clone(),
                );
            }
            _ => {}
        }
        let ch = ch.clone();
        let mut e = self.event(name, None, SWITCH_CHANNEL);
        for (n, v) in pre {
            e.push(n, v.clone());
        }
        ch.push_headers(&mut e, variables);
        for (n, v) in post {
            e.push(n, v.clone());
        }
        self.fire(e);
    }

    /// Moves a channel to a new state (CHANNEL_STATE).
    pub(crate) fn set_state(&mut self, uuid: &str, state: &'static str, number: u8) {
        match self.channels.get_mut(uuid) {
            Some(ch) => {
                ch.state = (state, number);
                // The caller profile's hangup time is stamped as the channel enters CS_HANGUP
                // (its CHANNEL_HANGUP, fired before, still says 0; seen on 1.11).
                if state == "CS_HANGUP" && ch.hung_up == 0 {
                    ch.hung_up = now_micros();
                }
            }
            None => return,
        }
        self.ch_event("CHANNEL_STATE", uuid, &[], &[], false);
    }

    /// The state a channel was asked to move to while its running state (`Channel-State`) has
    /// not followed yet: the events fired meanwhile carry it as `Channel-State-Number`
    /// (FreeSWITCH's `channel->state` against `running_state`; seen on 1.11: 10 on a hangup's
    /// events, 12 on CHANNEL_DESTROY, 2 on a transfer's UNPARK and EXECUTE_COMPLETE and on
    /// CHANNEL_CREATE).
    pub(crate) fn ask_state(&mut self, uuid: &str, number: u8) {
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.state.1 = number;
        }
    }

    /// Moves a channel to a new call state (CHANNEL_CALLSTATE).
    pub(crate) fn set_callstate(&mut self, uuid: &str, call_state: &'static str, number: u8) {
        let old = match self.channels.get_mut(uuid) {
            Some(ch) => std::mem::replace(&mut ch.call_state, call_state),
            None => return,
        };
        let pre = [
            ("Original-Channel-Call-State", old.to_owned()),
            ("Channel-Call-State-Number", number.to_string()),
        ];
        self.ch_event("CHANNEL_CALLSTATE", uuid, &pre, &[], false);
    }

    /// A CODEC event: the read codec (`write` false) or the write codec was (re)set.
    pub(crate) fn codec(&mut self, uuid: &str, write: bool) {
        let (name, bit_rate) = match self.channels.get_mut(uuid) {
            Some(ch) => {
                if write {
                    ch.write_codec = true;
                } else {
                    ch.read_codec = true;
                }
                ch.codec
            }
            None => return,
        };
        let post: Vec<(&str, String)> = if write {
            vec![
                ("Channel-Write-Codec-Name", name.into()),
                ("Channel-Write-Codec-Rate", "8000".into()),
                ("Channel-Write-codec-bit-rate", bit_rate.into()),
            ]
        } else {
            vec![
                ("channel-read-codec-name", name.into()),
                ("channel-read-codec-rate", "8000".into()),
                ("channel-read-codec-bit-rate", bit_rate.into()),
            ]
        };
        self.ch_event("CODEC", uuid, &[], &post, false);
    }

    pub(crate) fn answer(&mut self, uuid: &str) {
        match self.channels.get_mut(uuid) {
            Some(ch) if ch.answered == 0 && !ch.is_hungup() => {
                ch.answered = now_micros();
                ch.answer_state = "answered";
                if ch.username.is_some() {
                    let port = ch.var("remote_media_port").unwrap_or("20000").to_owned();
                    for (k, v) in super::sofia::sip_answer_variables(&port) {
                        ch.set_var(k, v);
                    }
                    ch.set_var("endpoint_disposition", "ANSWER");
                }
            }
            _ => return,
        }
        self.ch_event("CHANNEL_ANSWER", uuid, &[], &[], true);
        self.set_callstate(uuid, "ACTIVE", 4);
        self.node_leg_answered(uuid);
    }

    /// CHANNEL_EXECUTE of `app`, which becomes the running app.
    pub(crate) fn app_execute(&mut self, uuid: &str, app: &App) {
        let (name, data) = app.name_and_data();
        let app_uuid = uuid::Uuid::new_v4().to_string();
        match self.channels.get_mut(uuid) {
            Some(ch) => {
                ch.application = Some(app.clone());
                ch.app_uuid = app_uuid.clone();
                ch.set_var("current_application", name);
                if data.is_empty() {
                    ch.unset_var("current_application_data");
                } else {
                    ch.set_var("current_application_data", data.clone());
                }
            }
            None => return,
        }
        let mut post = vec![("Application", name.to_owned())];
        if !data.is_empty() {
            post.push(("Application-Data", data));
        }
        post.push(("Application-UUID", app_uuid));
        self.ch_event("CHANNEL_EXECUTE", uuid, &[], &post, true);
    }

    /// CHANNEL_EXECUTE_COMPLETE of the running app, if any.
    pub(crate) fn execute_complete(&mut self, uuid: &str) {
        let Some(ch) = self.channels.get_mut(uuid) else {
            return;
        };
        let Some(app) = ch.application.take() else {
            // Parked by `park_after_bridge`: no app runs, the park still ends.
            if std::mem::take(&mut ch.bare_park) {
                self.ch_event("CHANNEL_UNPARK", uuid, &[], &[], true);
            }
            return;
        };
        ch.bare_park = false;
        let (name, data) = app.name_and_data();
        ch.last_app = Some((name.to_owned(), data.clone()));
        ch.echoing = false;
        let app_uuid = ch.app_uuid.clone();
        if app == App::Park {
            self.ch_event("CHANNEL_UNPARK", uuid, &[], &[], true);
        }
        let mut post = vec![("Application", name.to_owned())];
        if !data.is_empty() {
            post.push(("Application-Data", data));
        }
        post.push(("Application-Response", "_none_".to_owned()));
        post.push(("Application-UUID", app_uuid));
        self.ch_event("CHANNEL_EXECUTE_COMPLETE", uuid, &[], &post, true);
    }

    /// An originated channel is handed its apps: CS_EXECUTE, then the apps.
    pub(crate) fn proceed(&mut self, uuid: &str, apps: Vec<App>) {
        if self.channels.get(uuid).is_none_or(|ch| ch.is_hungup()) {
            return;
        }
        self.set_state(uuid, "CS_EXECUTE", 4);
        self.run_apps(uuid, apps);
    }

    /// Runs a channel's apps until one keeps it (echo, park, conference) or ends it. No app left
    /// means the call hangs up, as at the end of an extension.
    pub(crate) fn run_apps(&mut self, uuid: &str, apps: Vec<App>) {
        let mut apps = apps.into_iter();
        loop {
            if self.channels.get(uuid).is_none_or(|ch| ch.is_hungup()) {
                return;
            }
            let Some(app) = apps.next() else {
                self.hangup(uuid, "NORMAL_CLEARING");
                return;
            };
            if matches!(app, App::Conference(_)) {
                self.node_leg_pre_answer(uuid);
            }
            self.app_execute(uuid, &app);
            match app {
                App::Answer => {
                    self.answer(uuid);
                    if let Some(ch) = self.channels.get_mut(uuid) {
                        ch.set_var("endpoint_disposition", "ANSWER");
                    }
                    self.execute_complete(uuid);
                }
                App::Echo => {
                    if let Some(ch) = self.channels.get_mut(uuid) {
                        ch.echoing = true;
                    }
                    return;
                }
                App::Park => {
                    self.answer(uuid);
                    self.ch_event("CHANNEL_PARK", uuid, &[], &[], true);
                    return;
                }
                App::Conference(spec) => {
                    if self.rejects_join_only(uuid, &spec) {
                        return;
                    }
                    // An unanswered leg (another node's) is answered by the conference app,
                    // which names the room first.
                    let room_uuid = self.rooms.get(&spec.room).map(|r| r.uuid.clone());
                    if let (Some(ch), Some(room_uuid)) = (self.channels.get_mut(uuid), room_uuid)
                        && ch.answered == 0
                    {
                        ch.set_var("conference_name", spec.room.clone());
                        ch.set_var("app_session_uuid", room_uuid);
                    }
                    self.answer(uuid);
                    if let Some(ch) = self.channels.get_mut(uuid) {
                        ch.after = apps.collect();
                    }
                    self.join(uuid, &spec);
                    return;
                }
                App::Hangup(cause) => {
                    let cause = if cause.is_empty() {
                        "NORMAL_CLEARING"
                    } else {
                        &cause
                    };
                    self.hangup(uuid, cause);
                    return;
                }
                App::Bridge(data) => {
                    if let Some(ch) = self.channels.get_mut(uuid) {
                        ch.after = apps.collect();
                    }
                    self.bridge(uuid, &data);
                    return;
                }
                // The simulator speaks instantly; the next app follows.
                App::Speak(_) => self.execute_complete(uuid),
                App::Set(data) => {
                    if let (Some(ch), Some((k, v))) =
                        (self.channels.get_mut(uuid), data.split_once('='))
                    {
                        ch.set_var(k, v);
                    }
                    self.execute_complete(uuid);
                }
            }
        }
    }

    /// CHANNEL_HANGUP; false when the channel is gone or hanging up already.
    pub(crate) fn hangup_start(&mut self, uuid: &str, cause: &str) -> bool {
        match self.channels.get_mut(uuid) {
            Some(ch) if !ch.is_hungup() => {
                ch.hangup_cause = Some(cause.to_owned());
                ch.answer_state = "hangup";
                // Asked to hang up (CS_HANGUP) before the channel's thread gets there.
                ch.state.1 = 10;
                // Either end of a live bridge says which end it was.
                if ch.bridged {
                    ch.set_var("last_bridge_role", "originator");
                } else if ch.bridge_caller.is_some() && ch.bridged_at != 0 {
                    ch.set_var("last_bridge_role", "originatee");
                }
            }
            _ => return false,
        }
        self.ch_event("CHANNEL_HANGUP", uuid, &[], &[], true);
        self.pending_job_done(uuid, format!("-ERR {cause}\n"));
        true
    }

    /// A full hangup, now.
    pub(crate) fn hangup(&mut self, uuid: &str, cause: &str) {
        if self.hangup_start(uuid, cause) {
            self.finish_hangup(uuid);
        }
    }

    /// A hangup from another thread (`uuid_kill`): CHANNEL_HANGUP now, the channel's own thread
    /// does the rest right after.
    pub(crate) fn hangup_soon(&mut self, uuid: &str, cause: &str) {
        if self.hangup_start(uuid, cause) {
            self.later(
                Duration::from_millis(1),
                Deferred::FinishHangup {
                    uuid: uuid.to_owned(),
                },
            );
        }
    }

    /// Leaves the room, ends the app, CS_HANGUP, CS_REPORTING with HANGUP_COMPLETE, DESTROY;
    /// a loopback partner is taken down in between.
    pub(crate) fn finish_hangup(&mut self, uuid: &str) {
        let Some(ch) = self.channels.get(uuid) else {
            return;
        };
        let cause = ch
            .hangup_cause
            .clone()
            .unwrap_or_else(|| "NORMAL_CLEARING".into());
        let partner = ch.partner.clone();
        let in_room = ch.room.is_some();
        // A BYE received is noted before the app ends.
        self.sip_ended(uuid);
        if in_room {
            self.leave_room(uuid);
        }
        self.drop_bridge(uuid);
        self.execute_complete(uuid);
        self.set_state(uuid, "CS_HANGUP", 10);
        self.set_callstate(uuid, "HANGUP", 7);
        let took_partner = partner
            .as_deref()
            .is_some_and(|p| self.hangup_start(p, &cause));
        self.sip_hangup(uuid);
        self.set_state(uuid, "CS_REPORTING", 11);
        let now = now_micros();
        if let Some(ch) = self.channels.get_mut(uuid) {
            for (k, v) in cdr_variables(ch, now) {
                ch.set_var(&k, v);
            }
            if ch.partner.is_some() {
                ch.set_var("is_loopback", "1");
            }
            // A SIP call's RTP session (a call we placed has one once answered).
            let placed = ch.username.is_none() && ch.var("sofia_profile_name").is_some();
            // One given up while it rang: FreeSWITCH CANCELled its INVITE.
            if placed && ch.answered == 0 && ch.var("sip_hangup_disposition").is_none() {
                ch.set_var("sip_invite_failure_status", "487".to_owned());
                ch.set_var("sip_invite_failure_phrase", "CANCEL".to_owned());
                ch.set_var("sip_hangup_disposition", "send_cancel".to_owned());
            }
            // A leg refused before any media had no RTP session.
            let media = ch.answered != 0 || ch.progress_media != 0;
            if (ch.username.is_some() && media) || (placed && ch.answered != 0) {
                for (k, v) in super::sofia::sip_hangup_variables() {
                    // A node-to-node leg's says how its dialog ended already.
                    if k == "sip_hangup_disposition" && ch.var(&k).is_some() {
                        continue;
                    }
                    ch.set_var(&k, v);
                }
            }
        }
        let pre = [("Hangup-Cause", cause.clone())];
        self.ch_event("CHANNEL_HANGUP_COMPLETE", uuid, &pre, &[], true);
        self.bridge_leg_ended(uuid, &cause);
        if let (true, Some(p)) = (took_partner, partner.as_deref()) {
            self.finish_hangup(p);
        }
        self.ask_state(uuid, 12);
        self.ch_event("CHANNEL_DESTROY", uuid, &[], &[], true);
        self.set_state(uuid, "CS_DESTROY", 12);
        self.channels.remove(uuid);
    }
}
