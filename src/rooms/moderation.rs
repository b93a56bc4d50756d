//! A moderator's controls over a whole room: mute (or unmute) everyone but the moderators and
//! those named, each member switched as its own mute would be (the node's `mute` of that
//! member, confirmed by its mute-member, announced once per member).

use std::time::Duration;

use super::{Rooms, ServiceError};
use crate::conference::ops::OpError;
use crate::conference::{AppId, MemberStatus, RoomId, RoomStatus, SessionId, Switch};
use crate::store::Store;

/// How many times one member's switch waits out its cooldown (a mute of its own a moment
/// before) before the room's command gives up on it.
const COOLDOWN_WAITS: usize = 3;

impl<S: Store> Rooms<S> {
    /// Mutes (`mute`) or unmutes every member of the room in it now, but its moderators and
    /// the sessions in `except`, that is not so already (as last asked); returns the sessions
    /// asked. Each member's switch goes as a mute command of its own would, so a member that
    /// leaves meanwhile is left out, not an error.
    pub async fn mute_all(
        &self,
        app: &AppId,
        id: &RoomId,
        mute: bool,
        except: &[SessionId],
    ) -> Result<Vec<SessionId>, ServiceError> {
        let room = self.room(app, id).await?;
        if room.status != RoomStatus::Progressing {
            return Err(OpError::RoomNotActive(room.status.as_str()).into());
        }
        crate::conference::ops::require_steady(&room)?;
        let targets: Vec<SessionId> = room
            .members
            .values()
            .filter(|m| m.status == MemberStatus::Joined && !m.moderator)
            .filter(|m| !except.contains(&m.session))
            .filter(|m| m.mute_requested.unwrap_or(m.muted) != mute)
            .map(|m| m.session.clone())
            .collect();
        let mut asked = Vec::with_capacity(targets.len());
        for session in targets {
            let mut waits = 0;
            loop {
                match self
                    .set_switch(app, &session, Switch::Mute, mute, None, None)
                    .await
                {
                    Ok(_) => {
                        asked.push(session);
                        break;
                    }
                    Err(ServiceError::RateLimited { wait, .. }) if waits < COOLDOWN_WAITS => {
                        waits += 1;
                        tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                    }
                    // Gone, or already so: nothing to ask of it.
                    Err(ServiceError::NotFound(_) | ServiceError::Conflict(_)) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(asked)
    }
}
