//! `uuid_transfer`: a new caller profile for the channel, then — in the channel's own thread,
//! after the command's reply — out of the room or park it was in, a new routing pass and the
//! new apps, as FreeSWITCH's switch_ivr_session_transfer and the inline dialplan do it.

use std::time::Duration;

use super::channel::App;
use super::channels::{parse_inline, split_args};
use super::core::{Deferred, State};
use super::events::now_micros;

/// Where `uuid_transfer` sends a channel: its new caller profile's destination and dialplan.
#[derive(Debug, Clone)]
pub(crate) struct NewProfile {
    dest: String,
    dialplan: String,
}

impl NewProfile {
    pub(crate) fn new(dest: &str, dialplan: &str) -> NewProfile {
        NewProfile {
            dest: dest.to_owned(),
            dialplan: dialplan.to_owned(),
        }
    }
}

impl State {
    /// `uuid_transfer <uuid> [-bleg|-both] <dest> [inline|dialplan] [context]`.
    pub(crate) fn uuid_transfer(&mut self, args: &str) -> String {
        let mut words = split_args(args);
        words.retain(|w| !matches!(w.as_str(), "-bleg" | "-both"));
        let (Some(uuid), Some(dest)) = (words.first(), words.get(1)) else {
            return "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n".into();
        };
        if !self.channels.contains_key(uuid.as_str()) {
            return "-ERR No such channel!\n".into();
        }
        let apps = if words.get(2).map(String::as_str) == Some("inline") {
            match parse_inline(dest) {
                Some(apps) if !apps.is_empty() => apps,
                _ => return "-ERR\n".into(),
            }
        } else {
            vec![App::Park]
        };
        let dialplan = words.get(2).cloned().unwrap_or_else(|| "XML".into());
        let (uuid, dest) = (uuid.clone(), dest.clone());
        // switch_ivr_session_transfer counts transfers down: `max_session_transfers`, else
        // `max_forwards`, one less, or 70 when neither is set (an originated leg's first).
        if let Some(ch) = self.channels.get_mut(&uuid) {
            let name = match ch.var("max_session_transfers") {
                Some(_) => "max_session_transfers",
                None => "max_forwards",
            };
            let left = ch
                .var(name)
                .and_then(|v| v.parse::<i64>().ok())
                .map_or(70, |v| v - 1);
            ch.set_var(name, left.to_string());
        }
        let profile = NewProfile { dest, dialplan };
        // switch_ivr_session_transfer makes a new caller profile in the API's thread, so the
        // events of a parked channel's UNPARK carry it already; a conference member's thread
        // resets its codec (CODEC) before, and reports del-member after.
        let in_room = self.channels.get(&uuid).is_some_and(|ch| ch.room.is_some());
        let profile = if in_room {
            Some(profile)
        } else {
            self.new_profile(&uuid, profile);
            None
        };
        // A member notices the transfer when its thread reads its next frame.
        let after = if in_room {
            super::membership::NEXT_FRAME
        } else {
            Duration::from_millis(1)
        };
        self.later(
            after,
            Deferred::Transfer {
                uuid,
                apps,
                profile,
            },
        );
        "+OK\n".into()
    }

    /// The caller profile a transfer makes: one more index, the transfer's destination (the
    /// old one becomes RDNIS), the dialplan, `Caller-Transfer-Source` and `transfer_history`.
    pub(crate) fn new_profile(&mut self, uuid: &str, profile: NewProfile) {
        let Some(ch) = self.channels.get_mut(uuid) else {
            return;
        };
        let NewProfile { dest, dialplan } = profile;
        let now = now_micros();
        ch.profile_index += 1;
        ch.profile_created = now;
        ch.rdnis = Some(std::mem::replace(&mut ch.destination, dest.clone()));
        let source = format!(
            "{}:{}:bl_xfer:{dest}/{}/{dialplan}",
            now / 1_000_000,
            uuid::Uuid::new_v4(),
            ch.context
        );
        // Pushed: from the second transfer on, an array.
        ch.push_var("transfer_history", &source);
        ch.set_var("transfer_source", source.clone());
        ch.transfer_source = Some(source);
        ch.dialplan = Some(dialplan);
        ch.logically_inbound = true;
        ch.after.clear();
        // A new caller profile has no other leg; the transfer unbonds the channel.
        ch.other = None;
        ch.unset_var("signal_bond");
    }

    /// A transferred channel leaves its room and app, and routes again: CS_ROUTING, where the
    /// inline dialplan puts the destination back (it takes RDNIS and clears it), then CS_EXECUTE
    /// and the new apps. An inbound channel's call state follows its running state (RINGING in
    /// CS_ROUTING, ACTIVE again once answered: `switch_channel_perform_set_running_state`); an
    /// outbound one's stays as it was.
    pub(crate) fn transferred(&mut self, uuid: &str, apps: Vec<App>, profile: Option<NewProfile>) {
        if self.channels.get(uuid).is_none_or(|ch| ch.is_hungup()) {
            return;
        }
        if let Some(profile) = profile {
            self.codec(uuid, false);
            // Asked to route again: the room's del-member, the bridge's end and the app's end
            // are reported on the way there.
            self.ask_state(uuid, 2);
            self.new_profile(uuid, profile);
            self.leave_room_with(uuid, false);
        }
        self.ask_state(uuid, 2);
        self.drop_bridge(uuid);
        self.execute_complete(uuid);
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.state = ("CS_ROUTING", 2);
        }
        let inbound = self.channels.get(uuid).is_some_and(|ch| !ch.outbound);
        if inbound {
            self.set_callstate(uuid, "RINGING", 2);
        }
        self.set_state(uuid, "CS_ROUTING", 2);
        if let Some(ch) = self.channels.get_mut(uuid) {
            if let Some(rdnis) = ch.rdnis.take() {
                ch.destination = rdnis;
            }
            ch.state = ("CS_EXECUTE", 4);
        }
        if inbound {
            self.set_callstate(uuid, "ACTIVE", 4);
        }
        self.set_state(uuid, "CS_EXECUTE", 4);
        self.run_apps(uuid, apps);
    }
}
