//! `POST …/participants`: the room calls someone. The dial-out is pending (dialing) until the
//! node says it rang, was answered (then its add-member makes it a member) or failed.

use super::{OpError, require_active};
use crate::conference::apply::{Applied, Step, fail_dialout};
use crate::conference::model::{Dialout, DialoutFailure, DialoutState, Micros, Room, RoomType};

/// Calls one room may be placing at once.
pub const MAX_DIALOUTS: usize = 20;

/// Seconds past a dial-out's own timeout after which the controller gives up on a call the node
/// never reported on (it lost the originate, or its events were missed).
pub const DIALOUT_GRACE_SECS: i64 = 30;

/// Records a dial-out about to be placed. A place in the room is held for it (it counts against
/// `max_participants` and a `connect` room's two).
pub fn request_dialout(room: &mut Room, dialout: Dialout, now: Micros) -> Result<Applied, OpError> {
    require_active(room)?;
    if room.locked {
        return Err(OpError::Locked);
    }
    let held = (room.members.len() + room.dialouts.len()) as u64;
    if room.kind == RoomType::Connect && held >= 2 {
        return Err(OpError::ConnectFull);
    }
    if room.max_participants > 0 && held >= room.max_participants {
        return Err(OpError::RoomFull(room.max_participants));
    }
    if room.dialouts.len() >= MAX_DIALOUTS {
        return Err(OpError::TooManyDialouts(MAX_DIALOUTS));
    }
    room.dialouts.push(Dialout {
        state: DialoutState::Dialing,
        ..dialout
    });
    let mut step = Step::new(room, now);
    step.touch();
    Ok(step.finish())
}

/// A dial-out whose originate never reached the node is forgotten (the API says why).
pub fn dialout_not_sent(room: &mut Room, id: uuid::Uuid, now: Micros) -> Applied {
    let before = room.dialouts.len();
    room.dialouts.retain(|d| d.id != id);
    let mut step = Step::new(room, now);
    if step.room.dialouts.len() != before {
        step.touch();
    }
    step.finish()
}

/// A dial-out whose originate was accepted by us but never reached the node (the connection
/// dropped): it failed, and says so.
pub fn dialout_lost(room: &mut Room, id: uuid::Uuid, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    if let Some(channel) = step
        .room
        .dialouts
        .iter()
        .find(|d| d.id == id && d.state == DialoutState::Dialing)
        .map(|d| d.channel().to_owned())
    {
        fail_dialout(
            &mut step,
            &channel,
            DialoutFailure::Failed,
            Some("NODE_UNAVAILABLE"),
        );
    }
    step.finish()
}
