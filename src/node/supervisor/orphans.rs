//! Conferences the store no longer has (issue 35). A store that fails over can lose a room it
//! had just created (its create answered 201): the room's conference and control leg stay on
//! the node, listed nowhere. Each audit looks for them: a conference named as a room
//! (`<prefix>-room-<uuid>`, of this node or, moved here, of another) whose room the store does
//! not know at all, with this
//! controller's control leg in it (the leg it originates carries `switchyard_role=control` and
//! `switchyard_room=<the room>`, read with `uuid_getvar`). Seen so on two audits in a row (a
//! room being created is in the store before its conference starts, so this is only a guard),
//! its callers are parked (the application can join them elsewhere) and its control leg hung
//! up. Nothing else is touched: another controller's conferences are not named as this node's
//! rooms, or have no such control leg.

use std::collections::HashSet;

use super::Supervisor;
use crate::conference::RoomId;
use crate::conference::snapshot::SnapshotConference;
use crate::esl::{ApiCommand, Client};
use crate::node::reconciler::Before;
use crate::node::{commands, describe};
use crate::store::Store;

/// An orphaned conference: its room, its control leg, its other callers.
struct Orphan {
    room: RoomId,
    control: String,
    callers: Vec<String>,
}

impl<S: Store> Supervisor<S> {
    /// Parks the callers of, and hangs up the control legs of, this node's conferences whose
    /// rooms the store has lost (seen so on this audit and the one before).
    pub(super) async fn remove_orphans(
        &self,
        before: &Before,
        conferences: &[SnapshotConference],
        commands: &[Client],
    ) {
        let Some(client) = commands.first() else {
            return;
        };
        let mut found = Vec::new();
        for c in conferences {
            let Ok(room) = RoomId::parse(&c.conference_name) else {
                continue;
            };
            if before.versions.contains_key(&room) {
                continue;
            }
            // Unknown to the store (an error proves nothing).
            if !matches!(self.store.room_app(&room).await, Ok(None)) {
                continue;
            }
            let mut control = None;
            for m in &c.members {
                if control_leg_of(client, &m.uuid).await.as_deref() == Some(room.as_str()) {
                    control = Some(m);
                    break;
                }
            }
            let Some(control) = control else {
                continue;
            };
            found.push(Orphan {
                room,
                control: control.uuid.clone(),
                callers: c
                    .members
                    .iter()
                    .filter(|m| m.uuid != control.uuid && !m.uuid.is_empty())
                    .map(|m| m.uuid.clone())
                    .collect(),
            });
        }
        let confirmed: Vec<Orphan> = match self.orphans.lock() {
            Ok(mut seen) => {
                let before: HashSet<RoomId> = std::mem::take(&mut *seen);
                seen.extend(found.iter().map(|o| o.room.clone()));
                found
                    .into_iter()
                    .filter(|o| before.contains(&o.room))
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        for orphan in confirmed {
            tracing::warn!(node = %describe(&self.config), room = %orphan.room, callers = orphan.callers.len(), "a conference whose room the store no longer has: its callers are parked and its control leg hung up");
            crate::telemetry::orphan_removed(self.config.prefix.as_str());
            let parks = orphan.callers.iter().map(|c| commands::leave(c, &[]));
            for command in parks.chain([commands::kill(&orphan.control)]) {
                // Only on a lease that still holds: the reads above may have spanned a pause
                // (as `resync` checks before each request).
                if !self.acting() {
                    return;
                }
                match command {
                    Ok(command) => send(client, &command).await,
                    Err(e) => {
                        tracing::warn!(room = %orphan.room, error = %e, "no command for an orphaned conference")
                    }
                }
            }
        }
    }
}

/// The room whose control leg `channel` is, if it is one this controller originated.
async fn control_leg_of(client: &Client, channel: &str) -> Option<String> {
    let var = |name: &str| {
        let command = super::api(&["uuid_getvar", channel, name]);
        async move {
            let reply = client.api(&command.ok()?).await.ok()?.into_data().ok()?;
            let value = reply.trim();
            (!value.is_empty() && !value.starts_with("-ERR") && value != "_undef_")
                .then(|| value.to_owned())
        }
    };
    if var("switchyard_role").await.as_deref() != Some("control") {
        return None;
    }
    var("switchyard_room").await
}

async fn send(client: &Client, command: &ApiCommand) {
    if let Err(e) = client.api(command).await {
        tracing::warn!(error = %e, "a command for an orphaned conference failed; the next audit tries again");
    }
}
