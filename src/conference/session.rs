//! Sessions: the calls on a node that belong to an application, folded from CHANNEL_* facts.
//! Which room a session is in is not stored here but derived from room membership (the stores
//! keep a session → room index in the same atomic step as the room).

use super::facts::{ChannelFact, ChannelInfo};
use super::ids::{AppId, NodePrefix, SessionId};
use super::model::{Micros, Session, SessionState};

/// Where and when a channel fact was observed.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub node: &'a NodePrefix,
    pub core_uuid: &'a str,
    pub now: Micros,
}

/// Applies a channel fact. `app` is the owner the caller resolved (DID map or the
/// `switchyard_app_id` variable); calls of no application and control legs are not sessions.
/// Returns the new session, or `None` when nothing is stored or nothing changed.
pub fn apply_channel(
    existing: Option<&Session>,
    origin: Origin<'_>,
    kind: ChannelFact,
    info: &ChannelInfo,
    cause: Option<&str>,
    app: Option<&AppId>,
) -> Option<Session> {
    let Origin {
        node,
        core_uuid,
        now,
    } = origin;
    if info.role.as_deref() == Some("control") {
        return None;
    }
    let mut session = match existing {
        Some(s) => s.clone(),
        None => Session {
            id: SessionId::new(node, &info.channel),
            app: app?.clone(),
            did: info.did.clone(),
            caller_id: info.caller_id.clone(),
            caller_name: info.caller_name.clone(),
            state: SessionState::Ringing,
            core_uuid: core_uuid.to_owned(),
            created_at: now,
            answered_at: None,
            ended_at: None,
            hangup_cause: None,
            seq: 0,
        },
    };
    if session.state == SessionState::Ended {
        return None;
    }
    match kind {
        ChannelFact::Created | ChannelFact::Ringing => {}
        ChannelFact::Answered => {
            if session.answered_at.is_none() {
                session.answered_at = Some(now);
            }
            if session.state == SessionState::Ringing {
                session.state = SessionState::Answered;
            }
        }
        ChannelFact::Parked => {
            session.answered_at.get_or_insert(now);
            session.state = SessionState::Parked;
        }
        ChannelFact::HungUp => {
            session.state = SessionState::Ended;
            session.ended_at = Some(now);
            session.hangup_cause = cause.map(str::to_owned);
        }
    }
    if existing == Some(&session) {
        return None;
    }
    session.seq += 1;
    Some(session)
}
