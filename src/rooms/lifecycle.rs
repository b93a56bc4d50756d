//! Rooms themselves: create (placed on a node, held open by a control leg), list, read the
//! members, delete.

use serde_json::json;
use uuid::Uuid;

use super::{Rooms, ServiceError, invalid};
use crate::conference::apply::{Effect, Step};
use crate::conference::ops;
use crate::conference::{AppId, EventKind, Member, Micros, Room, RoomId, RoomStatus, RoomType};
use crate::node::commands;
use crate::node::reconciler::RoomEffect;
use crate::node::supervisor::now_micros;
use crate::store::{Created, Page, Store};

impl<S: Store> Rooms<S> {
    /// Creates a room on the least-loaded healthy node; it is `starting` until its control leg
    /// is in the FreeSWITCH conference.
    pub async fn create(
        &self,
        app: &AppId,
        name: &str,
        kind: RoomType,
    ) -> Result<Room, ServiceError> {
        let node = self.pool.place()?;
        let id = RoomId::new(&node.config.prefix, Uuid::new_v4());
        let now = now_micros();
        let mut room = Room::new(
            id,
            app.clone(),
            name.to_owned(),
            kind,
            Uuid::new_v4().to_string(),
            now,
        );
        room.core_uuid = node.core_uuid();
        let mut step = Step::new(&mut room, now);
        let data = json!({ "room_id": step.room.id, "name": name });
        step.emit(EventKind::Created, data);
        let events = step.finish().events;
        match self.store.create_room(&room, &events).await? {
            Created::NameTaken(existing) => return Err(ServiceError::NameTaken(existing)),
            Created::Created => {}
        }
        node.request(RoomEffect {
            app: app.clone(),
            room: room.id.clone(),
            effect: Effect::EstablishControlLeg,
        });
        Ok(room)
    }

    /// The app's live rooms by creation time, after `after`; deleted rooms are skipped.
    pub async fn list(
        &self,
        app: &AppId,
        mut after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<Room>, ServiceError> {
        let mut items = Vec::new();
        loop {
            let want = limit - items.len();
            let page = self.store.rooms_of_app(app, after, want).await?;
            items.extend(
                page.items
                    .into_iter()
                    .filter(|r| r.status < RoomStatus::Terminating),
            );
            match page.next {
                Some(next) if items.len() < limit => after = Some(next),
                next => return Ok(Page { items, next }),
            }
        }
    }

    /// The members FreeSWITCH has confirmed, by channel uuid, after `after` (exclusive).
    pub async fn members(
        &self,
        app: &AppId,
        id: &RoomId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Member>, Option<String>), ServiceError> {
        let room = self.room(app, id).await?;
        let mut members: Vec<Member> = room
            .confirmed_members()
            .filter(|m| after.is_none_or(|a| m.channel.as_str() > a))
            .take(limit + 1)
            .cloned()
            .collect();
        let more = members.len() > limit;
        members.truncate(limit);
        let next = more
            .then(|| members.last().map(|m| m.channel.clone()))
            .flatten();
        Ok((members, next))
    }

    /// Ends a room: recording stops, members are moved out (their calls live on), the control
    /// leg is released; the room is gone from the API at once.
    pub async fn delete(&self, app: &AppId, id: &RoomId) -> Result<(), ServiceError> {
        let room = self.room(app, id).await?;
        let node = self.pool.get(&room.node)?;
        let kill = commands::kill(&room.control.channel).map_err(invalid)?;
        self.change(app, id, |r| Ok(ops::request_terminate(r, now_micros())))
            .await?;
        if room.conference_uuid.is_none() {
            self.change(app, id, |r| Ok(ops::finish_terminate(r, now_micros())))
                .await?;
        }
        if room.recording.is_some()
            && let Ok(cmd) = commands::room_command(id, "norecord", Some("all"))
        {
            let _ = node.api(&cmd).await;
        }
        for m in room.members.values() {
            if let Ok(cmd) = commands::park(&m.channel) {
                let _ = node.api(&cmd).await;
            }
        }
        // The control leg may already be gone; its conference-destroy ends the room.
        node.api(&kill).await?;
        Ok(())
    }
}
