//! A member's audio levels: the volume of what it says and of what it hears, and its energy
//! threshold (the noise gate of a noisy line). Each is one mod_conference command, confirmed
//! by the node's event (`conference.member.audio` once it changed).

use super::{CooldownGroup, Rooms, ServiceError, invalid};
use crate::conference::ops::OpError;
use crate::conference::{AppId, Level, MemberStatus, RoomId, SessionId};
use crate::node::commands;
use crate::store::Store;

impl<S: Store> Rooms<S> {
    /// Sets the levels of the session's member (each `(level, value)` within
    /// [`Level::range`]) on the room's node, in order. Returns the room.
    pub async fn set_levels(
        &self,
        app: &AppId,
        session: &SessionId,
        levels: &[(Level, i32)],
    ) -> Result<RoomId, ServiceError> {
        let (room, member) = self.membership(app, session).await?;
        if room.migration.is_some() || member.moving {
            return Err(ServiceError::Moving);
        }
        let member_id = match (member.status, member.member_id) {
            (MemberStatus::Joined, Some(id)) => id,
            (MemberStatus::Joining, _) => return Err(OpError::StillJoining.into()),
            _ => return Err(OpError::NotInRoom.into()),
        };
        let cmds = levels
            .iter()
            .map(|(level, value)| commands::member_level(&room.id, *level, member_id, *value))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let node = self.pool.get(&room.node)?;
        self.cool(app, CooldownGroup::ConferenceAudio, session.as_str())
            .await?;
        for cmd in &cmds {
            node.expect_no_error_line(cmd).await?;
        }
        Ok(room.id)
    }
}
