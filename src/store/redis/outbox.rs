//! An app's outbox in the Redis store: one stream per shard (`keys::outbox` of each tag), read
//! merged under one position (see [`crate::store::Position`]).

use futures_util::future::try_join_all;

use super::reads::{range_command, stream_records};
use super::{RedisStore, unavailable};
use crate::conference::{AppId, DomainEvent};
use crate::store::{OutboxEntry, Position, StoreError, entry_id, keys, outbox_order};

impl RedisStore {
    /// Up to `limit` entries after `after`: each shard's next entries, merged in the order of
    /// their ids (time, as each shard's master numbers them), each with the position after it.
    /// An entry not taken now stays after the position in its shard, so nothing is skipped
    /// whatever order the shards' entries come in.
    pub(super) async fn read_outbox(
        &self,
        app: &AppId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let tags = self.shards.tags(app);
        let mut position = match after {
            None => Position::start(tags.len()),
            Some(a) => Position::parse(a)
                .ok_or_else(|| StoreError::Corrupt {
                    key: keys::outbox(app.as_str()),
                    reason: format!("not an outbox position: {a}"),
                })?
                .spread(tags.len()),
        };
        let reads = tags.iter().enumerate().map(|(k, tag)| {
            let (ms, seq) = position.of(k);
            let key = keys::outbox(tag);
            async move {
                // No entry is 0-0: from the start of a shard is after it.
                let start = format!("({ms}-{seq}");
                let xrange = range_command("XRANGE", &key, (&start, "+"), limit);
                // On the tracked connection where the bells follow it: Redis then tells this
                // process when the outbox grows (`outbox_bells.rs`).
                let rows: Vec<(String, Vec<(String, String)>)> = match self.bells_tracked() {
                    Some(tracked) => {
                        let xrange = &xrange;
                        tracked
                            .on_server_of(&key, |mut conn| async move {
                                xrange.query_async(&mut conn).await
                            })
                            .await
                    }
                    None => xrange.query_async(&mut self.conn()).await,
                }
                .map_err(unavailable)?;
                stream_records::<DomainEvent>(&key, rows, "event")
            }
        });
        let shards = try_join_all(reads).await?;
        let mut merged: Vec<((u64, u64), usize, DomainEvent)> = Vec::new();
        for (k, rows) in shards.into_iter().enumerate() {
            for (id, event) in rows {
                let Some(at) = outbox_order(&id) else {
                    return Err(StoreError::Corrupt {
                        key: keys::outbox(&tags[k]),
                        reason: format!("not a stream id: {id}"),
                    });
                };
                merged.push((at, k, event));
            }
        }
        // Stable: each shard's entries stay in their order.
        merged.sort_by_key(|(at, k, _)| (*at, *k));
        merged.truncate(limit);
        let one = tags.len() == 1;
        Ok(merged
            .into_iter()
            .map(|(at, k, event)| {
                position.set(k, at);
                let id = entry_id(k, at);
                OutboxEntry {
                    position: if one {
                        id.clone()
                    } else {
                        position.to_string()
                    },
                    id,
                    event,
                }
            })
            .collect())
    }

    /// Drops each shard's entries before the position's entry in it.
    pub(super) async fn trim_outboxes(&self, app: &AppId, before: &str) -> Result<(), StoreError> {
        let Some(before) = Position::parse(before) else {
            return Ok(());
        };
        let mut pipe = redis::pipe();
        for (k, tag) in self.shards.tags(app).iter().enumerate() {
            let (ms, seq) = before.of(k);
            pipe.cmd("XTRIM")
                .arg(keys::outbox(tag))
                .arg("MINID")
                .arg(format!("{ms}-{seq}"))
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    /// Appends events with no room change (a dead letter sent again), each to its room's shard
    /// (so it comes after the room's earlier events), waking the readers.
    pub(super) async fn append_outboxes(
        &self,
        app: &AppId,
        events: &[DomainEvent],
    ) -> Result<(), StoreError> {
        let mut by_tag: Vec<(String, Vec<&DomainEvent>)> = Vec::new();
        for event in events {
            let tag = self.shards.room_tag(app, &event.room);
            match by_tag.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, list)) => list.push(event),
                None => by_tag.push((tag, vec![event])),
            }
        }
        for (tag, events) in by_tag {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for event in events {
                pipe.xadd(keys::outbox(&tag), "*", &[("event", super::encode(event))])
                    .ignore();
            }
            // As the room scripts do: the readers of the outbox wake.
            if self.publishes(&tag) {
                pipe.add_command(self.publish(&tag)).ignore();
            }
            pipe.query_async::<()>(&mut self.conn())
                .await
                .map_err(unavailable)?;
        }
        self.rang([app]);
        Ok(())
    }
}
