//! A node's snapshot folded into the store (on every connect, the settle look and each audit),
//! and the deadlines of what the node never confirmed (joins, dial-outs).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::{Before, Effects, RESYNC_CHUNK, Reconciler};
use crate::conference::snapshot::{
    SnapshotChannel, SnapshotConference, Stale, Taken, reconcile_at,
};
use crate::conference::{AppId, ChannelFact, ChannelInfo, Micros, RoomId, Session, SessionId, ops};
use crate::store::{RoomChange, Store, StoreError, modify_rooms};

impl<S: Store> Reconciler<S> {
    /// What the store holds for this node just before a snapshot is asked for: each live
    /// room's version and the live sessions' channels. A resync changes only those rooms, and
    /// only if they are still at that version ([`reconcile_at`]); it ends only those sessions.
    /// Whatever is newer than the snapshot is left to the event stream and the next audit.
    pub async fn before_snapshot(&self) -> Result<Before, StoreError> {
        let rooms = self.store.rooms_on_node(&self.node.prefix).await?;
        let mut versions = HashMap::with_capacity(rooms.len());
        for chunk in rooms.chunks(RESYNC_CHUNK) {
            let reads = chunk.iter().map(|(app, room)| self.store.room(app, room));
            for ((app, id), read) in chunk
                .iter()
                .zip(futures_util::future::join_all(reads).await)
            {
                // A room moving here or away is listed on both nodes; it is this node's only
                // once it lives here.
                if let Some(room) = read?.filter(|r| r.node == self.node.prefix) {
                    versions.insert(id.clone(), (app.clone(), room.seq));
                }
            }
        }
        let channels = self
            .store
            .sessions_on_node(&self.node.prefix)
            .await?
            .into_iter()
            .map(|s| s.id.channel().to_owned())
            .collect();
        Ok(Before { versions, channels })
    }

    /// Makes the store agree with a snapshot of the node, taken after `before`: rooms, members
    /// and sessions. `snapshot_events`: the newest `Event-Sequence` the snapshot reflects (the
    /// newest event that arrived before its reply on the connection it was asked on; 0: unknown).
    pub async fn resync(
        &self,
        core: &str,
        before: &Before,
        conferences: &[SnapshotConference],
        channels: &[SnapshotChannel],
        snapshot_events: u64,
        now: Micros,
    ) -> Result<Effects, StoreError> {
        self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
        let sessions: HashMap<String, Session> = self
            .store
            .sessions_on_node(&self.node.prefix)
            .await?
            .into_iter()
            .map(|s| (s.id.channel().to_owned(), s))
            .collect();
        // Calls that started while we were not listening, so their memberships can be recognised.
        for c in channels.iter().filter(|c| !sessions.contains_key(&c.uuid)) {
            let did = if c.initial_dest.is_empty() {
                &c.dest
            } else {
                &c.initial_dest
            };
            let info = ChannelInfo {
                channel: c.uuid.clone(),
                did: did.clone(),
                caller_id: c.cid_num.clone(),
                caller_name: c.cid_name.clone(),
                app_hint: None,
                role: None,
                room: None,
                node_session: None,
            };
            self.channel(core, 0, ChannelFact::Answered, &info, None, now)
                .await?;
        }
        let sessions: HashMap<String, Session> = self
            .store
            .sessions_on_node(&self.node.prefix)
            .await?
            .into_iter()
            .map(|s| (s.id.channel().to_owned(), s))
            .collect();
        let settled = now - self.node.join_timeout.as_micros() as Micros;
        let mut effects = Vec::new();
        let tagged = self.tag_legs(conferences, channels);
        let conferences = tagged.as_deref().unwrap_or(conferences);
        let by_name: HashMap<&str, &SnapshotConference> = conferences
            .iter()
            .map(|c| (c.conference_name.as_str(), c))
            .collect();
        let lookup = |channel: &str| sessions.get(channel).cloned();
        let rooms: Vec<(&AppId, &RoomId, u64)> = before
            .versions
            .iter()
            .map(|(room, (app, seen))| (app, room, *seen))
            .collect();
        // Rooms are written a chunk at a time (one round trip each with Redis).
        for chunk in rooms.chunks(RESYNC_CHUNK) {
            let changes = chunk.iter().map(|&(app, room, seen)| {
                let conf = by_name.get(room.as_str()).copied();
                let lookup = &lookup;
                RoomChange {
                    app,
                    room,
                    change: self.fenced(move |r: &mut crate::conference::Room| {
                        let taken = Taken {
                            version: seen,
                            events: snapshot_events,
                        };
                        let applied = reconcile_at(r, taken, core, conf, lookup, settled, now)?;
                        Ok::<_, Stale>(((applied.effects, r.node.clone()), applied.events))
                    }),
                }
            });
            let results = modify_rooms(&*self.store, changes.collect()).await;
            for (&(app, room, _), result) in chunk.iter().zip(results) {
                effects.extend(self.effects_of(app, room, result?));
            }
        }
        // Calls that ended while we were not listening (of those known before the snapshot: a
        // call that began after it is not in it).
        for session in sessions.values().filter(|s| {
            before.channels.contains(s.id.channel())
                && !channels.iter().any(|c| c.uuid == s.id.channel())
        }) {
            let info = ChannelInfo {
                channel: session.id.channel().to_owned(),
                did: session.did.clone(),
                caller_id: session.caller_id.clone(),
                caller_name: session.caller_name.clone(),
                app_hint: None,
                role: None,
                room: None,
                node_session: None,
            };
            effects.extend(
                self.channel(core, 0, ChannelFact::HungUp, &info, None, now)
                    .await?,
            );
        }
        Ok(effects)
    }

    /// The conferences with each node-to-node leg marked with the session it carries (its tag
    /// in `show channels`' `presence_data`), so a leg whose first event was missed is tied (see
    /// `snapshot::reconcile`); `None` when no leg is tagged.
    fn tag_legs(
        &self,
        conferences: &[SnapshotConference],
        channels: &[SnapshotChannel],
    ) -> Option<Vec<SnapshotConference>> {
        let tags: HashMap<&str, SessionId> = channels
            .iter()
            .filter(|c| !c.presence_data.is_empty())
            .filter_map(|c| {
                let session = SessionId::parse(&c.presence_data).ok()?;
                (session.prefix() != self.node.prefix).then_some((c.uuid.as_str(), session))
            })
            .collect();
        if tags.is_empty() {
            return None;
        }
        let mut tagged = conferences.to_vec();
        for m in tagged.iter_mut().flat_map(|c| c.members.iter_mut()) {
            m.carries = tags.get(m.uuid.as_str()).cloned();
        }
        Some(tagged)
    }

    /// Joins of this node's rooms that FreeSWITCH never confirmed fail.
    pub async fn expire_joins(&self, now: Micros) -> Result<Effects, StoreError> {
        let deadline = now - self.node.join_timeout.as_micros() as Micros;
        let mut effects = Vec::new();
        for (app, room) in self.store.rooms_on_node(&self.node.prefix).await? {
            effects.extend(
                self.update(&app, &room, |r| ops::expire_joins(r, deadline, now))
                    .await?,
            );
        }
        Ok(effects)
    }
}
