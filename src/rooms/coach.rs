//! Coaching: a member heard by one other member alone, and back to everyone.

use super::{CooldownGroup, Rooms, ServiceError, invalid};
use crate::conference::ops;
use crate::conference::{AppId, RoomId, SessionId};
use crate::node::supervisor::now_micros;
use crate::node::{NodeError, commands};
use crate::store::Store;

impl<S: Store> Rooms<S> {
    /// The member of `session` is heard by the member of `target` alone (`None`: by everyone
    /// again). Returns its room.
    pub async fn coach(
        &self,
        app: &AppId,
        session: &SessionId,
        target: Option<&SessionId>,
    ) -> Result<RoomId, ServiceError> {
        let (room, member) = self.membership(app, session).await?;
        let channel = member.channel();
        let previous = member.coaching.clone();
        let now = now_micros();
        // Every check before the cooldown is spent.
        match target {
            Some(t) => drop(ops::request_coach(&mut room.clone(), channel, t, now)?),
            None => drop(ops::request_uncoach(&mut room.clone(), channel, now)?),
        }
        let node = self.pool.get(&room.node)?;
        self.cool(app, CooldownGroup::ConferenceCoach, session.as_str())
            .await?;
        // Asked before it is sent, so a member who joins meanwhile is kept from hearing it, and
        // the command addresses the members as the room holds them now.
        let mut asked = None;
        self.change(app, &room.id, |r| {
            let applied = match target {
                Some(t) => {
                    let (applied, coaching) = ops::request_coach(r, channel, t, now_micros())?;
                    asked = Some(commands::unhear(&r.id, coaching.coach, &coaching.unheard));
                    applied
                }
                None => {
                    let (applied, coach) = ops::request_uncoach(r, channel, now_micros())?;
                    asked = Some(commands::hear_again(&r.id, coach));
                    applied
                }
            };
            Ok(applied)
        })
        .await?;
        let sent = match asked {
            Some(Ok(cmd)) => node
                .api(&cmd)
                .await
                .map_err(ServiceError::from)
                .and_then(|reply| {
                    let text = reply.text();
                    match commands::relate_failed(&text) {
                        true => Err(NodeError::Rejected(text.trim_end().to_owned()).into()),
                        false => Ok(()),
                    }
                }),
            Some(Err(e)) => Err(invalid(e)),
            // The change above ran (it returned Ok), so it set the command.
            None => Err(ServiceError::NotFound("room")),
        };
        match sent {
            Ok(()) => {
                self.change(app, &room.id, |r| {
                    Ok(ops::coaching_sent(r, channel, now_micros()))
                })
                .await?;
                Ok(room.id)
            }
            Err(e) => {
                self.change(app, &room.id, |r| {
                    Ok(ops::coach_not_sent(
                        r,
                        channel,
                        previous.clone(),
                        now_micros(),
                    ))
                })
                .await?;
                Err(e)
            }
        }
    }
}
