//! Moving a member to another room of the same application in one step (`conference/move`).
//! The call is sent straight from one conference to the other, as a join sends it: on one node
//! `uuid_transfer <call> conference:<room>@<profile>+flags{mute} inline` takes it out of the
//! first and into the second with no park between; a call carried from another node, or going
//! to a room on another node, is bridged there as a join across nodes is (its old leg hangs
//! up). The room it goes to takes it as a join that tells nothing until the node has it, then
//! one `conference.member.moved`; the room it leaves lets it go without a word.

use super::{CooldownGroup, Rooms, ServiceError, invalid};
use crate::conference::ops;
use crate::conference::{AppId, RoomId, SessionId};
use crate::node::commands;
use crate::node::supervisor::now_micros;
use crate::store::Store;

impl<S: Store> Rooms<S> {
    /// Moves the session's member to room `to` (muted as asked, else as it is now, with its
    /// deafness and levels); returns the room it leaves.
    pub async fn move_member(
        &self,
        app: &AppId,
        session: &SessionId,
        to: &RoomId,
        muted: Option<bool>,
        command_uid: Option<String>,
    ) -> Result<RoomId, ServiceError> {
        let s = self.live_session(app, session).await?;
        let (from, member) = self.membership(app, session).await?;
        if &from.id == to {
            return Err(ServiceError::Conflict(
                "Session is already in this conference room".into(),
            ));
        }
        if from.migration.is_some() || member.moving {
            return Err(ServiceError::Moving);
        }
        let target = self.room(app, to).await?;
        let channel = session.channel();
        ops::movable(&from, channel)?;
        let muted = muted.unwrap_or(member.muted);
        // The call's own node sends it: into the room there, or bridged to the room's node.
        let (cmd, node, bridge) = if target.node == session.prefix() {
            let node = self.pool.get(&target.node)?;
            let cmd = commands::join(channel, to, &node.config.profile, member.moderator)
                .map_err(invalid)?;
            (cmd, node, None)
        } else {
            let (cmd, node, out) = self.bridge_plan(session, &target)?;
            (cmd, node, Some(out))
        };
        let now = now_micros();
        // Every check the state changes make, before the cooldown is spent.
        ops::request_move_in(
            &mut target.clone(),
            &s,
            &member,
            &from,
            muted,
            None,
            bridge,
            now,
        )?;
        self.cool(app, CooldownGroup::Conference, session.as_str())
            .await?;
        self.change(app, to, |r| {
            ops::request_move_in(
                r,
                &s,
                &member,
                &from,
                muted,
                command_uid.clone(),
                bridge,
                now_micros(),
            )
        })
        .await?;
        let undo_in = || async {
            self.change(app, to, |r| {
                Ok(ops::move_in_not_sent(r, channel, now_micros()))
            })
            .await
        };
        if let Err(e) = self
            .change(app, &from.id, |r| {
                ops::request_move_out(r, channel, &target, now_micros())
            })
            .await
        {
            undo_in().await?;
            return Err(e);
        }
        if let Err(e) = node.expect_ok(&cmd, true).await {
            self.change(app, &from.id, |r| {
                Ok(ops::move_out_not_sent(r, channel, now_micros()))
            })
            .await?;
            undo_in().await?;
            return Err(e.into());
        }
        Ok(from.id)
    }
}
