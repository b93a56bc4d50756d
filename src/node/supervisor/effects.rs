//! The supervisor's effects: what applying events asks of the node (a control leg, an eject,
//! a greeting, ...), carried out in the background on a command connection.

use std::time::Instant;

use super::Supervisor;
use crate::conference::RoomStatus;
use crate::conference::apply::Effect;
use crate::esl::Client;
use crate::node::reconciler::RoomEffect;
use crate::node::{NodeConfig, commands};
use crate::store::{Store, update_room};

impl<S: Store> Supervisor<S> {
    /// Carries out effects in the background, so a slow originate never holds up the event stream.
    pub(super) fn execute(&self, effects: Vec<RoomEffect>, commands: &[Client]) {
        let Some(client) = commands.first().cloned() else {
            return;
        };
        for e in effects {
            // Another node's room (a call of this node it carries): that node does the work.
            if e.node != self.config.prefix {
                match self.peers.get().map(|pool| pool.get(&e.node)) {
                    Some(Ok(peer)) => peer.request(e),
                    _ => {
                        tracing::warn!(room = %e.room, effect = ?e.effect, "effect for a node this controller does not know")
                    }
                }
                continue;
            }
            if e.effect == Effect::EstablishControlLeg && !self.claim_control_leg(&e.room) {
                continue;
            }
            let (store, config, in_flight, client) = (
                self.store.clone(),
                self.config.clone(),
                self.in_flight.clone(),
                client.clone(),
            );
            tokio::spawn(async move {
                if let Err(err) = run_effect(&*store, &config, &client, &e).await {
                    tracing::warn!(room = %e.room, effect = ?e.effect, error = %err, "effect failed; the next audit retries");
                    if let Ok(mut f) = in_flight.lock() {
                        f.remove(&e.room);
                    }
                }
            });
        }
    }

    /// True if no control leg is being originated for the room (and now one is).
    fn claim_control_leg(&self, room: &crate::conference::RoomId) -> bool {
        let Ok(mut in_flight) = self.in_flight.lock() else {
            return false;
        };
        let now = Instant::now();
        in_flight.retain(|_, since| now.duration_since(*since) < self.config.join_timeout);
        if in_flight.contains_key(room) {
            return false;
        }
        in_flight.insert(room.clone(), now);
        true
    }
}

async fn run_effect<S: Store>(
    store: &S,
    config: &NodeConfig,
    client: &Client,
    e: &RoomEffect,
) -> Result<(), String> {
    match &e.effect {
        Effect::EstablishControlLeg => {
            let channel = uuid::Uuid::new_v4().to_string();
            let updated = update_room(store, &e.app, &e.room, |r| {
                if r.status > RoomStatus::Progressing {
                    return Err("room is ending");
                }
                r.control.channel = channel.clone();
                r.control.member_id = None;
                // A new conference waits for its moderator again.
                r.waiting_for_moderator = r.wait_for_moderator;
                r.seq += 1;
                Ok((r.wait_for_moderator, Vec::new()))
            })
            .await
            .map_err(|err| err.to_string())?;
            let wait_for_moderator = match updated {
                Some(Ok((_, wait))) => wait,
                _ => return Ok(()),
            };
            let cmd = commands::originate_control_leg(
                &e.room,
                &channel,
                &config.control_endpoint,
                &config.profile,
                wait_for_moderator,
            )
            .map_err(|err| err.to_string())?;
            let reply = client.bgapi(&cmd).await.map_err(|err| err.to_string())?;
            reply
                .expect_ok(false)
                .map(drop)
                .map_err(|err| err.to_string())
        }
        Effect::Eject { exit, talks } => {
            let cmd = commands::take_out(exit, talks).map_err(|err| err.to_string())?;
            client
                .api(&cmd)
                .await
                .map(drop)
                .map_err(|err| err.to_string())
        }
        Effect::Greet { member_id, talks } => {
            for talk in talks {
                let cmd = commands::say_member(&e.room, *member_id, talk)
                    .map_err(|err| err.to_string())?;
                let reply = client.api(&cmd).await.map_err(|err| err.to_string())?;
                reply.expect_ok(false).map_err(|err| err.to_string())?;
            }
            Ok(())
        }
        Effect::HoldMusic { member_id, file } => {
            let cmd =
                commands::member_file(&e.room, *member_id, file).map_err(|err| err.to_string())?;
            let reply = client.api(&cmd).await.map_err(|err| err.to_string())?;
            reply
                .expect_ok(false)
                .map(drop)
                .map_err(|err| err.to_string())
        }
        Effect::Beeps { enter, exit } => {
            for (on, is_enter) in [(*enter, true), (*exit, false)] {
                if !on {
                    continue;
                }
                let cmd = commands::beep(&e.room, is_enter).map_err(|err| err.to_string())?;
                let reply = client.api(&cmd).await.map_err(|err| err.to_string())?;
                // `exit_sound file` prints the old sound first: every line must be +OK.
                let text = reply.text();
                if !text.lines().all(|l| l.starts_with("+OK")) {
                    return Err(format!("beep: {}", text.trim_end()));
                }
            }
            Ok(())
        }
        Effect::Restore {
            member_id,
            unmute,
            deaf,
            hold,
            hold_music,
            levels,
        } => {
            let mut cmds = Vec::new();
            if *unmute {
                cmds.push(commands::member_switch(&e.room, "unmute", *member_id));
            }
            if *deaf {
                cmds.push(commands::member_switch(&e.room, "deaf", *member_id));
            }
            if *hold {
                let music = hold_music.as_deref().unwrap_or(commands::HOLD_MUSIC);
                cmds.push(commands::hold(&e.room, *member_id, music));
            }
            for cmd in cmds {
                let cmd = cmd.map_err(|err| err.to_string())?;
                let reply = client.api(&cmd).await.map_err(|err| err.to_string())?;
                reply.expect_ok(false).map_err(|err| err.to_string())?;
            }
            // `energy` answers `Energy <id> = <n>`, with no `+OK`.
            for (level, value) in levels {
                let cmd = commands::member_level(&e.room, *level, *member_id, *value)
                    .map_err(|err| err.to_string())?;
                let reply = client.api(&cmd).await.map_err(|err| err.to_string())?;
                let text = reply.text();
                if text.lines().any(|l| l.starts_with("-ERR")) {
                    return Err(format!("{}: {}", level.verb(), text.trim_end()));
                }
            }
            Ok(())
        }
        Effect::Cancel { channel } => {
            // `-ERR No such channel!` when it ended meanwhile: nothing left to cancel.
            let cmd = commands::cancel(channel).map_err(|err| err.to_string())?;
            client
                .api(&cmd)
                .await
                .map(drop)
                .map_err(|err| err.to_string())
        }
        Effect::Unhear { coach, member_id } => {
            let cmd =
                commands::unhear(&e.room, *coach, &[*member_id]).map_err(|err| err.to_string())?;
            let reply = client.api(&cmd).await.map_err(|err| err.to_string())?;
            let text = reply.text();
            if commands::relate_failed(&text) {
                return Err(format!("relate: {}", text.trim_end()));
            }
            Ok(())
        }
        Effect::ReleaseControlLeg => {
            let Some(room) = store
                .room(&e.app, &e.room)
                .await
                .map_err(|err| err.to_string())?
            else {
                return Ok(());
            };
            let cmd = commands::kill(&room.control.channel).map_err(|err| err.to_string())?;
            client
                .api(&cmd)
                .await
                .map(drop)
                .map_err(|err| err.to_string())
        }
    }
}
