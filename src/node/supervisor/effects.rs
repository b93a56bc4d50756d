//! The supervisor's effects: what applying events asks of the node (a control leg, an eject,
//! a greeting, ...), carried out in the background on a command connection.
//!
//! An effect decided on the node's lease (applying its events, a resync, a join's deadline)
//! carries the grant it was decided on to its commands, and each command checks it first: a
//! process paused between deciding an effect and sending it sends nothing on a lease it has
//! lost since (issue 57's fencing, for what reaches the node rather than the store).

use std::sync::Arc;
use std::time::Instant;

use super::Supervisor;
use crate::conference::RoomStatus;
use crate::conference::apply::Effect;
use crate::esl::{ApiCommand, ApiReply, Client};
use crate::node::fleet::Mandate;
use crate::node::reconciler::{Fencing, RoomEffect};
use crate::node::{NodeConfig, commands};
use crate::store::{Store, update_room};

/// On whose word effects are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Basis {
    /// Decided by applying the node's events on its lease: each command checks the lease first.
    Lease,
    /// Asked of the node by an API request or another node's supervisor, which judged it on a
    /// room write of its own (a room made through any instance gets its control leg).
    Request,
}

/// The lease an effect was decided on, as its task checks it.
struct OnLease {
    mandate: Mandate,
    fencing: Arc<Fencing>,
}

impl OnLease {
    /// Whether the lease still holds and no write under its token was refused.
    fn holds(&self) -> bool {
        self.mandate.holds() && !self.fencing.refuses(self.mandate.grant.generation)
    }
}

/// The node's command connection as an effect uses it.
struct Node<'a> {
    client: &'a Client,
    lease: Option<&'a OnLease>,
    prefix: &'a str,
}

impl Node<'_> {
    /// Refused if the effect was decided on a lease that no longer holds.
    fn may_send(&self) -> Result<(), String> {
        match self.lease {
            Some(lease) if !lease.holds() => {
                crate::telemetry::effect_fenced(self.prefix);
                Err(format!(
                    "not sent: the node's lease (token {}) no longer holds",
                    lease.mandate.grant.generation
                ))
            }
            _ => Ok(()),
        }
    }

    async fn api(&self, cmd: &ApiCommand) -> Result<ApiReply, String> {
        self.may_send()?;
        self.client.api(cmd).await.map_err(|err| err.to_string())
    }

    async fn bgapi(&self, cmd: &ApiCommand) -> Result<ApiReply, String> {
        self.may_send()?;
        self.client.bgapi(cmd).await.map_err(|err| err.to_string())
    }
}

impl<S: Store> Supervisor<S> {
    /// Carries out effects in the background, so a slow originate never holds up the event stream.
    pub(super) fn execute(&self, effects: Vec<RoomEffect>, commands: &[Client], basis: Basis) {
        let Some(client) = commands.first().cloned() else {
            return;
        };
        if effects.is_empty() {
            return;
        }
        let lease = match basis {
            Basis::Request => None,
            Basis::Lease => match self.decided_on().map(|g| self.handover.mandate(g)) {
                Some(mandate) if mandate.holds() => Some(Arc::new(OnLease {
                    mandate,
                    fencing: self.reconciler.fencing.clone(),
                })),
                _ => {
                    for _ in &effects {
                        crate::telemetry::effect_fenced(self.config.prefix.as_str());
                    }
                    tracing::warn!(node = %self.config.prefix, effects = effects.len(), "effects not carried out: the node's lease lapsed after they were decided");
                    return;
                }
            },
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
            let (store, config, in_flight, client, lease) = (
                self.store.clone(),
                self.config.clone(),
                self.in_flight.clone(),
                client.clone(),
                lease.clone(),
            );
            tokio::spawn(async move {
                let node = Node {
                    client: &client,
                    lease: lease.as_deref(),
                    prefix: config.prefix.as_str(),
                };
                if let Err(err) = run_effect(&*store, &config, &node, &e).await {
                    tracing::warn!(room = %e.room, effect = ?e.effect, error = %err, "effect failed; the next audit retries");
                    if let Ok(mut f) = in_flight.lock() {
                        f.remove(&e.room);
                    }
                }
            });
        }
    }

    /// The grant the last check that this instance may act found (`acting`).
    fn decided_on(&self) -> Option<crate::node::fleet::Grant> {
        self.acted_on.lock().ok().and_then(|g| *g)
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
    client: &Node<'_>,
    e: &RoomEffect,
) -> Result<(), String> {
    match &e.effect {
        Effect::EstablishControlLeg => {
            let channel = uuid::Uuid::new_v4().to_string();
            // On a lease, the room's write carries its token (and is refused under a later one).
            let token = client.lease.map_or(0, |l| l.mandate.grant.generation);
            let updated = update_room(store, &e.app, &e.room, |r| {
                if r.status > RoomStatus::Progressing {
                    return Err("room is ending");
                }
                if token != 0 {
                    if r.fenced_off(&config.prefix, token) {
                        return Err("the room was written under a later lease of the node");
                    }
                    r.fence(&config.prefix, token);
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
            let reply = client.bgapi(&cmd).await?;
            reply
                .expect_ok(false)
                .map(drop)
                .map_err(|err| err.to_string())
        }
        Effect::Eject { exit, talks } => {
            let cmd = commands::take_out(exit, talks).map_err(|err| err.to_string())?;
            client.api(&cmd).await.map(drop)
        }
        Effect::Greet { member_id, talks } => {
            for talk in talks {
                let cmd = commands::say_member(&e.room, *member_id, talk)
                    .map_err(|err| err.to_string())?;
                let reply = client.api(&cmd).await?;
                reply.expect_ok(false).map_err(|err| err.to_string())?;
            }
            Ok(())
        }
        Effect::HoldMusic { member_id, file } => {
            let cmd =
                commands::member_file(&e.room, *member_id, file).map_err(|err| err.to_string())?;
            let reply = client.api(&cmd).await?;
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
                let reply = client.api(&cmd).await?;
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
                let reply = client.api(&cmd).await?;
                reply.expect_ok(false).map_err(|err| err.to_string())?;
            }
            // `energy` answers `Energy <id> = <n>`, with no `+OK`.
            for (level, value) in levels {
                let cmd = commands::member_level(&e.room, *level, *member_id, *value)
                    .map_err(|err| err.to_string())?;
                let reply = client.api(&cmd).await?;
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
            client.api(&cmd).await.map(drop)
        }
        Effect::Unhear { coach, member_id } => {
            let cmd =
                commands::unhear(&e.room, *coach, &[*member_id]).map_err(|err| err.to_string())?;
            let reply = client.api(&cmd).await?;
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
            client.api(&cmd).await.map(drop)
        }
    }
}
