//! The live rooms' index (`rooms:live`, one per shard): what live listings page through, so
//! a page of live rooms costs what it holds however many ended rooms the app keeps for its
//! retention. The room scripts keep it (created: in; ended: out); [`RedisStore::index_live`]
//! puts back the live rooms it misses — data from before the index existed, or rooms an older
//! controller made or ended during a rolling upgrade — from the nodes' sets of live rooms.
//!
//! The media index (`rooms:media`, one per shard) holds the live rooms that record or carry a
//! live stream: the room scripts put a room in as it begins and take it out as it stops (or
//! ends); a page takes out what no longer has media (an older controller's write);
//! [`RedisStore::index_media`] puts back what is missing, from the live rooms.

use super::{RedisStore, decode, unavailable};
use crate::conference::{AppId, Micros, NodePrefix, Room, RoomId, RoomStatus};
use crate::store::{Page, Store, StoreError, keys};

impl RedisStore {
    /// A page of the app's rooms in the index `index` names in each shard (all of them, or the
    /// live ones), by creation time.
    pub(super) async fn room_page(
        &self,
        app: &AppId,
        index: fn(&str) -> String,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<Room>, StoreError> {
        let record = |id: &str| {
            let id = RoomId::parse(id).ok()?;
            Some(self.room_key_of(app, &id))
        };
        let indexes = self.in_every_shard(app, index);
        self.page_of(&indexes, record, after, limit).await
    }

    /// A page of the app's rooms that have not ended.
    pub(super) async fn live_page(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<Room>, StoreError> {
        // Ended by a controller whose script did not unindex it: out now (it never comes back).
        self.indexed_page(app, keys::live_rooms, after, limit, |room| {
            room.status < RoomStatus::Terminated
        })
        .await
    }

    /// A page of the app's live rooms that record or carry a live stream.
    pub(super) async fn media_page(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<Room>, StoreError> {
        self.indexed_page(app, keys::media_rooms, after, limit, Room::has_media)
            .await
    }

    /// A page of `index` holding the rooms that pass `belongs`; the others met on it (an older
    /// controller's write left them in) are taken out of the index.
    async fn indexed_page(
        &self,
        app: &AppId,
        index: fn(&str) -> String,
        after: Option<(Micros, String)>,
        limit: usize,
        belongs: impl Fn(&Room) -> bool,
    ) -> Result<Page<Room>, StoreError> {
        let mut page = self.room_page(app, index, after, limit).await?;
        let mut out = redis::pipe();
        page.items.retain(|room| {
            if belongs(room) {
                return true;
            }
            let tag = self.shards.room_tag(app, &room.id);
            out.zrem(index(&tag), room.id.as_str()).ignore();
            false
        });
        if !out.is_empty()
            && let Err(e) = out.query_async::<()>(&mut self.conn()).await
        {
            tracing::debug!(error = %e, "could not take rooms out of an index");
        }
        Ok(page)
    }

    /// Indexes the app's live rooms with media that the media index lacks; how many.
    pub(super) async fn index_media(&self, app: &AppId) -> Result<usize, StoreError> {
        let mut indexed = 0;
        let mut after = None;
        loop {
            let page = self.live_page(app, after, 500).await?;
            let mut index = redis::pipe();
            for room in page.items.iter().filter(|r| r.has_media()) {
                let tag = self.shards.room_tag(app, &room.id);
                index.zadd(keys::media_rooms(&tag), room.id.as_str(), room.created_at);
            }
            if !index.is_empty() {
                let added: Vec<usize> = index
                    .query_async(&mut self.conn())
                    .await
                    .map_err(unavailable)?;
                indexed += added.iter().sum::<usize>();
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(indexed),
            }
        }
    }

    /// Indexes the node's live rooms the live index lacks; how many.
    pub(super) async fn index_live(&self, node: &NodePrefix) -> Result<usize, StoreError> {
        let owners = self.rooms_on_node(node).await?;
        if owners.is_empty() {
            return Ok(0);
        }
        let tags: Vec<String> = owners
            .iter()
            .map(|(app, id)| self.shards.room_tag(app, id))
            .collect();
        let mut conn = self.conn();
        let mut scores = redis::pipe();
        for ((_, id), tag) in owners.iter().zip(&tags) {
            scores.zscore(keys::live_rooms(tag), id.as_str());
        }
        let scores: Vec<Option<f64>> = scores.query_async(&mut conn).await.map_err(unavailable)?;
        let missing: Vec<(&RoomId, &String)> = owners
            .iter()
            .zip(&tags)
            .zip(scores)
            .filter(|(_, score)| score.is_none())
            .map(|(((_, id), tag), _)| (id, tag))
            .collect();
        if missing.is_empty() {
            return Ok(0);
        }
        let mut reads = redis::pipe();
        for (id, tag) in &missing {
            reads.hget(keys::room(tag, id), "json");
        }
        let jsons: Vec<Option<String>> = reads.query_async(&mut conn).await.map_err(unavailable)?;
        let mut index = redis::pipe();
        let mut indexed = 0;
        for ((id, tag), json) in missing.iter().zip(jsons) {
            let Some(json) = json else { continue };
            let room: Room = decode(&keys::room(tag, id), &json)?;
            // A room that ends meanwhile may slip in; the live listing drops it when it meets it.
            if room.status < RoomStatus::Terminated {
                index
                    .zadd(keys::live_rooms(tag), id.as_str(), room.created_at)
                    .ignore();
                indexed += 1;
            }
        }
        if indexed > 0 {
            index
                .query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(indexed)
    }
}
