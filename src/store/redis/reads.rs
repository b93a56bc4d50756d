//! Reads of the Redis store: a JSON field, a page of an index (zset) with the records it
//! names, a range of a stream.

use futures_util::future::try_join_all;
use redis::AsyncCommands;

use super::{RedisStore, decode, encode, unavailable};
use crate::conference::{DomainEvent, Micros};
use crate::store::{Page, StoreError};

impl RedisStore {
    /// A room's record (`room_record`), read whole: its JSON and its past participations.
    pub(super) async fn room_record(
        &self,
        key: &str,
    ) -> Result<Option<crate::conference::Room>, StoreError> {
        let (json, past): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(key)
            .arg(&super::room_record::FIELDS)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        json.map(|j| super::room_record::decode(key, &j, past.as_deref(), None).map(|d| d.room))
            .transpose()
    }

    pub(super) async fn json_field<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let json: Option<String> = self.conn().hget(key, "json").await.map_err(unavailable)?;
        json.map(|j| decode(key, &j)).transpose()
    }

    /// Ids after `after` in a (score, member) zset, up to `limit` (+1 to know if there is more).
    pub(super) async fn zpage(
        &self,
        key: &str,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<(Vec<(Micros, String)>, bool), StoreError> {
        let min = after
            .as_ref()
            .map(|(s, _)| s.to_string())
            .unwrap_or_else(|| "-inf".into());
        // Ties on the score are rare (µs); fetch a few extra to skip past the cursor's ties.
        let fetch = limit + 17;
        let raw: Vec<(String, f64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(key)
            .arg(&min)
            .arg("+inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(fetch)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let mut rows: Vec<(Micros, String)> =
            raw.into_iter().map(|(m, s)| (s as Micros, m)).collect();
        if let Some(cursor) = &after {
            rows.retain(|row| row > cursor);
        }
        let more = rows.len() > limit;
        rows.truncate(limit);
        Ok((rows, more))
    }

    pub(super) fn events_json(events: &[DomainEvent]) -> Vec<String> {
        events.iter().map(encode).collect()
    }

    /// A page of an index (`zset`; one per shard of the app, merged by (score, id), which is
    /// what the cursor is, so it needs no shard) with its records (`hash` field `json`), read
    /// in one pipelined round trip instead of one per record. Ids that no longer parse or whose
    /// record is gone are skipped.
    pub(super) async fn page_of<T: Record>(
        &self,
        indexes: &[String],
        record_key: impl Fn(&str) -> Option<String>,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<T>, StoreError> {
        let pages = try_join_all(
            indexes
                .iter()
                .map(|index| self.zpage(index, after.clone(), limit)),
        )
        .await?;
        let mut more = false;
        // (score, id, which index).
        let mut rows = Vec::new();
        for (i, (page, page_more)) in pages.into_iter().enumerate() {
            more |= page_more;
            rows.extend(page.into_iter().map(|(score, id)| (score, id, i)));
        }
        rows.sort_unstable();
        more |= rows.len() > limit;
        rows.truncate(limit);
        let keyed: Vec<(String, &(Micros, String, usize))> = rows
            .iter()
            .filter_map(|row| Some((record_key(&row.1)?, row)))
            .collect();
        let mut pipe = redis::pipe();
        for (key, _) in &keyed {
            pipe.cmd("HMGET").arg(key).arg(&super::room_record::FIELDS);
        }
        let jsons: Vec<(Option<String>, Option<String>)> = if keyed.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut self.conn())
                .await
                .map_err(unavailable)?
        };
        let mut items = Vec::with_capacity(keyed.len());
        // A record that is gone expired (an ended room past its retention): its index entry
        // goes too, so the index does not grow with every room ever made and a listing does
        // not walk past them again. (A record and its entry are written in one script, so an
        // entry without a record is never one being created.)
        let mut gone = redis::pipe();
        for ((key, row), (json, past)) in keyed.iter().zip(jsons) {
            match json {
                Some(json) => items.push(T::read(key, &json, past.as_deref())?),
                None => {
                    gone.zrem(&indexes[row.2], &row.1).ignore();
                }
            }
        }
        if !gone.is_empty() {
            // Tidying only: a failure leaves the entries for the next listing.
            if let Err(e) = gone.query_async::<()>(&mut self.conn()).await {
                tracing::debug!(error = %e, "could not drop expired index entries");
            }
        }
        let rows: Vec<(Micros, String)> = rows.into_iter().map(|(s, id, _)| (s, id)).collect();
        Ok(Page {
            items,
            next: if more { rows.last().cloned() } else { None },
        })
    }
}

/// A record listed by [`RedisStore::page_of`]: read from its hash's `json` field (and, for a
/// room, its `past` field: `room_record`).
pub(super) trait Record: Sized {
    fn read(key: &str, json: &str, past: Option<&str>) -> Result<Self, StoreError>;
}

impl Record for crate::conference::Room {
    fn read(key: &str, json: &str, past: Option<&str>) -> Result<Self, StoreError> {
        super::room_record::decode(key, json, past, None).map(|d| d.room)
    }
}

impl Record for crate::conference::Session {
    fn read(key: &str, json: &str, _: Option<&str>) -> Result<Self, StoreError> {
        decode(key, json)
    }
}

/// `command` (`XRANGE`, or `XREVRANGE` with the bounds reversed) of up to `limit` entries of the
/// stream `key` between `bounds`.
pub(super) fn range_command(
    command: &str,
    key: &str,
    bounds: (&str, &str),
    limit: usize,
) -> redis::Cmd {
    let mut cmd = redis::cmd(command);
    cmd.arg(key)
        .arg(bounds.0)
        .arg(bounds.1)
        .arg("COUNT")
        .arg(limit);
    cmd
}

/// A stream's entries (as `XRANGE` answers) as (id, the JSON of `field` decoded).
pub(super) fn stream_records<T: serde::de::DeserializeOwned>(
    key: &str,
    rows: Vec<(String, Vec<(String, String)>)>,
    field: &str,
) -> Result<Vec<(String, T)>, StoreError> {
    rows.into_iter()
        .map(|(id, fields)| {
            let json = fields
                .into_iter()
                .find(|(f, _)| f == field)
                .map(|(_, v)| v)
                .unwrap_or_default();
            decode(key, &json).map(|record| (id, record))
        })
        .collect()
}
