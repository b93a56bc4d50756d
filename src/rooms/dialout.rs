//! Dial-out: the room calls someone (a SIP address, or a number through the node's gateway).
//! The node's events take it from there: ringing, answered (then it is a member, joined as
//! asked), or failed with the cause.

use uuid::Uuid;

use super::{Rooms, ServiceError, invalid};
use crate::conference::ops::{self, DIALOUT_GRACE_SECS};
use crate::conference::{AppId, Dialout, DialoutState, RoomId, SessionId};
use crate::node::dial_policy::{NodeAddresses, Reach, check_public};
use crate::node::dialout::{Destination, DestinationError, Dial, originate};
use crate::node::supervisor::now_micros;
use crate::node::{NodeError, NodeHandle};
use crate::store::Store;

/// What the application asks to dial.
#[derive(Debug, Clone)]
pub struct DialRequest {
    pub to: String,
    pub caller_id_number: Option<String>,
    pub caller_id_name: Option<String>,
    /// Seconds of ringing before `no_answer`.
    pub timeout_secs: u32,
    pub muted: bool,
    pub moderator: bool,
    pub end_on_exit: bool,
    pub command_uid: Option<String>,
    /// The application's data about the participation.
    pub metadata: Option<crate::conference::Metadata>,
}

/// A participant being called, or (for a repeated `command_uid`) already in the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub id: Uuid,
    pub session: SessionId,
    pub room: RoomId,
    /// `dialing`, `ringing`, `answered`, or `joined`.
    pub state: &'static str,
    /// A repeat of an earlier request (its `command_uid`).
    pub repeated: bool,
}

impl From<DestinationError> for ServiceError {
    fn from(e: DestinationError) -> ServiceError {
        match e {
            DestinationError::Malformed => ServiceError::Invalid(e.to_string()),
            DestinationError::NotAllowed(_)
            | DestinationError::Internal
            | DestinationError::Unresolved => ServiceError::NotPermitted(e.to_string()),
            DestinationError::NoGateway => ServiceError::Conflict(e.to_string()),
        }
    }
}

impl<S: Store> Rooms<S> {
    /// Places a call from the room to `req.to`: 202-style, the call is on its way when this
    /// returns.
    pub async fn dial_out(
        &self,
        app: &AppId,
        room_id: &RoomId,
        req: DialRequest,
    ) -> Result<Participant, ServiceError> {
        // Bad input is refused whatever its command_uid: a repeat is of a valid request.
        let to = Destination::parse(&req.to)?;
        let room = self.room(app, room_id).await?;
        if let Some(uid) = req.command_uid.as_deref()
            && let Some(p) = repeated(&room, uid, &req.to)?
        {
            return Ok(p);
        }
        if let Some(n) = req.caller_id_number.as_deref()
            && !self.directory.may_present(app, n)
        {
            return Err(ServiceError::Invalid(
                "Invalid caller_id: not one this application may present (its configured \
                 caller_ids; by default its dids)"
                    .into(),
            ));
        }
        self.check_destination(app, &to, &req.to).await?;
        let node = self.pool.get(&room.node)?;
        self.refuse_if_draining(&room.node).await?;
        self.sessions_to_spare(&node).await?;
        let endpoint = to.endpoint(&node.config.dialout_profile, node.config.gateway.as_deref())?;
        let id = Uuid::new_v4();
        let session = SessionId::new(&room.node, &id.hyphenated().to_string());
        let cmd = originate(&Dial {
            room: room_id,
            channel: &id,
            endpoint: &endpoint,
            app: app.as_str(),
            caller_id_number: req.caller_id_number.as_deref(),
            caller_id_name: req.caller_id_name.as_deref(),
            timeout_secs: req.timeout_secs,
            profile: &node.config.profile,
            muted: req.muted,
            moderator: req.moderator,
        })
        .map_err(invalid)?;
        let now = now_micros();
        let dialout = Dialout {
            id,
            session: session.clone(),
            to: req.to.clone(),
            state: DialoutState::Dialing,
            muted: req.muted,
            moderator: req.moderator,
            end_on_exit: req.end_on_exit,
            command_uid: req.command_uid.clone(),
            metadata: req.metadata.clone(),
            requested_at: now,
            deadline: now + (i64::from(req.timeout_secs) + DIALOUT_GRACE_SECS) * 1_000_000,
            updated_at: now,
        };
        // Every check before the cooldown is spent.
        drop(ops::request_dialout(
            &mut room.clone(),
            dialout.clone(),
            now,
        )?);
        let most = self.quota(app).dialouts_in_flight;
        let dialing = self
            .dialing
            .take(app, most, 0)
            .ok_or(super::quotas::Reached::DialoutsInFlight(most))?;
        self.cool(app, super::CooldownGroup::ConferenceDialout, &req.to)
            .await?;
        self.change(app, room_id, |r| {
            ops::request_dialout(r, dialout.clone(), now_micros())
        })
        .await?;
        self.place(node.clone(), app.clone(), room_id.clone(), id, cmd, dialing);
        Ok(Participant {
            id,
            session,
            room: room_id.clone(),
            state: DialoutState::Dialing.as_str(),
            repeated: false,
        })
    }

    /// Refuses a destination the app's configuration does not allow, and under `*` one that
    /// is (or resolves to) a private address or a media node's ([`check_public`]).
    async fn check_destination(
        &self,
        app: &AppId,
        to: &Destination,
        written: &str,
    ) -> Result<(), DestinationError> {
        match self.directory.dial_reach(app, to) {
            Reach::Listed => Ok(()),
            Reach::NotAllowed => Err(DestinationError::NotAllowed(written.to_owned())),
            Reach::IfPublic(host) => {
                let nodes = NodeAddresses::of(self.pool.nodes().iter().map(|n| &*n.config));
                check_public(&host, &nodes, self.directory.dial_unresolved_ok()).await
            }
        }
    }

    /// Sends the originate. Its outcome comes from the node's events (the channel's, and the
    /// job's BACKGROUND_JOB, which the event connection hears too); a command that never got
    /// to the node fails the dial-out here.
    fn place(
        &self,
        node: NodeHandle,
        app: AppId,
        room: RoomId,
        id: Uuid,
        cmd: crate::esl::ApiCommand,
        dialing: super::quotas::Held,
    ) {
        let store = self.store.clone();
        tokio::spawn(async move {
            // Under way (the app's quota) until the node answers the originate's job: the
            // call answered, refused or timed out.
            let answered = node.bgapi(&cmd).await;
            drop(dialing);
            let why = match answered {
                Ok(_) | Err(NodeError::Rejected(_)) => return,
                Err(e) => e.to_string(),
            };
            tracing::warn!(%room, participant = %id, error = %why, "dial-out never reached the node");
            let result = crate::store::update_room(&*store, &app, &room, |r| {
                let applied = ops::dialout_lost(r, id, now_micros());
                Ok::<_, std::convert::Infallible>((applied.events.clone(), applied.events))
            })
            .await;
            if let Err(e) = result {
                tracing::warn!(%room, error = %e, "a lost dial-out could not be written; its deadline ends it");
            }
        });
    }
}

/// The participant an earlier request with this `command_uid` made, if the room still has it;
/// refused when that request dialed another destination than `to`.
fn repeated(
    room: &crate::conference::Room,
    uid: &str,
    to: &str,
) -> Result<Option<Participant>, ServiceError> {
    let same = |earlier: &str| match earlier == to {
        true => Ok(()),
        false => Err(ServiceError::UidReused {
            uid: uid.to_owned(),
            used_for: earlier.to_owned(),
        }),
    };
    if let Some(d) = room
        .dialouts
        .iter()
        .find(|d| d.command_uid.as_deref() == Some(uid))
    {
        same(&d.to)?;
        return Ok(Some(Participant {
            id: d.id,
            session: d.session.clone(),
            room: room.id.clone(),
            state: d.state.as_str(),
            repeated: true,
        }));
    }
    // A dial-out's member: its conferencecall id is its channel's uuid, its `did` the
    // destination dialed.
    let Some(m) = room.members.values().find(|m| {
        m.command_uid.as_deref() == Some(uid)
            && Uuid::parse_str(m.channel()) == Ok(m.conferencecall_id)
    }) else {
        return Ok(None);
    };
    same(&m.did)?;
    Ok(Some(Participant {
        id: m.conferencecall_id,
        session: m.session.clone(),
        room: room.id.clone(),
        state: "joined",
        repeated: true,
    }))
}
