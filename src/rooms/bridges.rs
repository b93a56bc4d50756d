//! Calls carried across nodes (`node::bridge`) when a node is lost: the controller's Event Socket
//! to a crashed node closes within milliseconds, long before a bridge's media timeout (5 s) or a
//! SIP session timer (over a minute) would notice (`fixtures/esl/10_cross_node.md`, section 9).

use std::collections::HashSet;

use super::{Rooms, ServiceError};
use crate::conference::apply::{Effect, call_node_failed, room_node_failed};
use crate::conference::{NodePrefix, RoomId, SessionId};
use crate::node::commands;
use crate::node::supervisor::now_micros;
use crate::store::{Store, update_room};

impl<S: Store> Rooms<S> {
    /// `node` stopped answering (its Event Socket closed, or went silent): members carried into
    /// its rooms from other nodes leave (`node_failed`) and their calls are parked again on their
    /// own nodes; members its calls are in rooms of other nodes leave (`node_failed`) and their
    /// legs there are hung up. The node's own rooms and calls wait for it as before (a resync
    /// when it is back; `node_restarted` if it restarted). Returns how many members left.
    pub async fn node_failed(&self, node: &NodePrefix) -> Result<usize, ServiceError> {
        let mut left = 0;
        for (app, id) in self.store.rooms_on_node(node).await? {
            let carries =
                self.store.room(&app, &id).await?.is_some_and(|r| {
                    &r.node == node && r.members.values().any(|m| m.bridge.is_some())
                });
            if !carries {
                continue;
            }
            let updated = update_room(&*self.store, &app, &id, |r| {
                if &r.node != node {
                    return Ok::<_, ServiceError>((Vec::new(), Vec::new()));
                }
                let (applied, calls) = room_node_failed(r, now_micros());
                Ok::<_, ServiceError>((calls, applied.events))
            })
            .await?;
            let Some(Ok((_, calls))) = updated else {
                continue;
            };
            left += calls.len();
            for call in &calls {
                self.park_call(call).await;
            }
        }
        let mut rooms: HashSet<(crate::conference::AppId, RoomId)> = HashSet::new();
        for session in self.store.sessions_on_node(node).await? {
            if let Some(room) = self
                .store
                .room_of_session(&session.app, &session.id)
                .await?
            {
                rooms.insert((session.app, room));
            }
        }
        for (app, id) in rooms {
            let updated = update_room(&*self.store, &app, &id, |r| {
                // A room on the lost node itself waits for it (above).
                if &r.node == node {
                    return Ok::<_, ServiceError>(((Vec::new(), 0), Vec::new()));
                }
                let before = r.members.len();
                let applied = call_node_failed(r, node, now_micros());
                let gone = before - r.members.len();
                Ok::<_, ServiceError>(((applied.effects, gone), applied.events))
            })
            .await?;
            let Some(Ok((room, (effects, gone)))) = updated else {
                continue;
            };
            left += gone;
            let Ok(room_node) = self.pool.get(&room.node) else {
                continue;
            };
            for effect in effects {
                if let Effect::Cancel { channel } = effect
                    && let Ok(cmd) = commands::cancel(&channel)
                {
                    // Gone already (the room's node saw the call's node die): nothing to do.
                    let _ = room_node.api(&cmd).await;
                }
            }
        }
        Ok(left)
    }

    /// Parks a call again on its own node (its bridge to a lost node ends).
    async fn park_call(&self, call: &SessionId) {
        let (Ok(node), Ok(cmd)) = (
            self.pool.get(&call.prefix()),
            commands::park(call.channel()),
        ) else {
            return;
        };
        if let Err(e) = node.api(&cmd).await {
            tracing::warn!(session = %call, error = %e, "a call carried to a lost node could not be parked");
        }
    }
}
