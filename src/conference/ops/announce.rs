//! Announcements to one member (a URL or spoken text, heard by that member alone): asked here,
//! ended by the node's play-file-member-done for its operation id (see `apply`), or cut short
//! when the member leaves.

use uuid::Uuid;

use super::{OpError, require_active};
use crate::conference::apply::{Applied, Step};
use crate::conference::model::{MemberStatus, Micros, Room};

/// Most announcements one member may have on their way at once.
pub const MAX_ANNOUNCEMENTS: usize = 10;

/// Queues announcement `op` for the member of `channel`; returns the member id to address.
pub fn request_announce(
    room: &mut Room,
    channel: &str,
    op: Uuid,
    now: Micros,
) -> Result<(Applied, u32), OpError> {
    require_active(room)?;
    let m = room.members.get_mut(channel).ok_or(OpError::NotInRoom)?;
    let Some(member_id) = m.member_id.filter(|_| m.status == MemberStatus::Joined) else {
        return Err(OpError::StillJoining);
    };
    if m.announcements.len() >= MAX_ANNOUNCEMENTS {
        return Err(OpError::TooManyAnnouncements(MAX_ANNOUNCEMENTS));
    }
    m.announcements.push(op);
    m.updated_at = now;
    let mut step = Step::new(room, now);
    step.touch();
    Ok((step.finish(), member_id))
}

/// An announcement the node refused, or that never reached it: forgotten (the request that
/// asked for it answered with the error).
pub fn announce_not_sent(room: &mut Room, channel: &str, op: Uuid, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    if let Some(m) = step.room.members.get_mut(channel) {
        let before = m.announcements.len();
        m.announcements.retain(|a| *a != op);
        if m.announcements.len() != before {
            m.updated_at = now;
            step.touch();
        }
    }
    step.finish()
}
