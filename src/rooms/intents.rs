//! A command's intent and its sending, written with the confirmation when this instance
//! applies the room's node (`node/intents.rs`), else written alone before the command as
//! before.

use std::sync::Arc;

use super::{Rooms, ServiceError};
use crate::conference::ops::OpError;
use crate::conference::{AppId, Applied, Room, RoomId};
use crate::esl::ApiCommand;
use crate::node::NodeHandle;
use crate::node::intents::{FOLD_WINDOW, IntentOp};
use crate::store::Store;

impl<S: Store> Rooms<S> {
    /// The room as the API judges a command on it: with the intents this instance holds for
    /// its node's next write of it applied.
    pub(super) fn with_intents(&self, room: &mut Room) {
        if let Ok(node) = self.pool.get(&room.node) {
            node.intents().overlay(room);
        }
    }

    /// Sends `cmd` to `node` (`empty_ok`: see [`NodeHandle::expect_ok`]), its room asked first (`intent`) so that the node's confirmation
    /// finds it, and answers once that is written. Where this instance applies the node's
    /// events, the intent goes with the room's next write (the confirmation's, usually); else
    /// it is written before the command. A command not sent leaves the room as it was
    /// (`not_sent` undoes an intent written already).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn send_with_intent(
        &self,
        app: &AppId,
        room: &RoomId,
        node: &NodeHandle,
        cmd: &ApiCommand,
        empty_ok: bool,
        intent: impl Fn(&mut Room) -> Result<Applied, OpError> + Send + Sync + 'static,
        mut not_sent: impl FnMut(&mut Room) -> Applied + Send,
    ) -> Result<(), ServiceError> {
        if !node.applies_events() {
            self.change(app, room, &intent).await?;
            if let Err(e) = node.expect_ok(cmd, empty_ok).await {
                self.change(app, room, |r| Ok(not_sent(r))).await?;
                return Err(e.into());
            }
            return Ok(());
        }
        let op: Arc<IntentOp> = Arc::new(move |r: &mut Room| match intent(r) {
            Ok(applied) => applied.events,
            Err(_) => Vec::new(),
        });
        let mut ticket = node.intents().add(room, op);
        // From here the command may reach the node: its intent is owed to the room.
        ticket.sent();
        if let Err(e) = node.expect_ok(cmd, empty_ok).await {
            if !ticket.withdraw().await {
                self.change(app, room, |r| Ok(not_sent(r))).await?;
            }
            return Err(e.into());
        }
        let alone = |op: Arc<IntentOp>| async move {
            let written = self
                .change(app, room, |r| {
                    Ok(Applied {
                        events: op(r),
                        ..Applied::default()
                    })
                })
                .await;
            match written {
                // The room ended meanwhile: nothing to keep of the command.
                Ok(_) | Err(ServiceError::NotFound(_)) => Ok(()),
                Err(e) => Err(e),
            }
        };
        // The node carried the command out (it answered +OK): its confirmation is on its way
        // and is applied whatever becomes of the intent, by this instance or the node's next
        // owner. A store that does not take the intent now (an outage, a failover) does not
        // make the command undone: it is answered as carried out, and only what the intent
        // alone records (its `command_uid`) may be missing from the room.
        match ticket.settle(FOLD_WINDOW, alone).await {
            Ok(_) => {}
            Err(Some(e)) => {
                tracing::warn!(room = %room, error = %e, "a command carried out by the node; its intent could not be written");
            }
            Err(None) => {
                tracing::warn!(room = %room, "a command carried out by the node; the room's write under way did not end in time, its intent waits for the next one");
            }
        }
        Ok(())
    }
}
