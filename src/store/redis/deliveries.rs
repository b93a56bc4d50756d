//! The Redis store's webhook bookkeeping ([`Deliveries`]): the dispatcher's outbox position and
//! acknowledgments, dead letters (a capped list), the delivery log (a capped stream) and the
//! per-app leases, under the app's hash tag.

use std::time::Duration;

use redis::AsyncCommands;

use super::reads::range_command;
use super::{RedisStore, decode, encode, unavailable};
use crate::conference::AppId;
use crate::store::{
    DEAD_LETTERS_KEPT, DELIVERY_LOG_KEPT, DeadLetter, Deliveries, DeliveryAttempt, Position,
    StoreError, keys,
};

impl Deliveries for RedisStore {
    async fn outbox_position(&self, app: &AppId) -> Result<Option<String>, StoreError> {
        let kept: Option<String> = self
            .conn()
            .get(keys::webhook_position(app))
            .await
            .map_err(unavailable)?;
        let logged = self.logged_position(app).await?;
        Ok(match (kept, logged) {
            (Some(k), Some(l)) => Some(newest(k, l)),
            (k, l) => k.or(l),
        })
    }

    async fn settle_outbox(
        &self,
        app: &AppId,
        attempts: &[DeliveryAttempt],
        position: Option<&str>,
        ahead: &[&str],
        forget: &[String],
    ) -> Result<(), StoreError> {
        // Every key under the app's tag: one slot, one round trip. Not a transaction: each
        // write only adds to what is settled, and a crash between them at worst sends some
        // entries again (as the position and the acknowledgments always were).
        let mut pipe = redis::pipe();
        for (i, attempt) in attempts.iter().enumerate() {
            let mut xadd = log_entry(app, attempt);
            // The position rides on the batch's last log entry (see `logged_position`).
            if let Some(p) = position.filter(|_| i + 1 == attempts.len()) {
                xadd.arg(POSITION_FIELD).arg(p);
            }
            pipe.add_command(xadd).ignore();
        }
        if let Some(p) = position.filter(|_| attempts.is_empty()) {
            pipe.set(keys::webhook_position(app), p).ignore();
        }
        if !ahead.is_empty() {
            pipe.sadd(keys::webhook_acked(app), ahead).ignore();
        }
        if position.is_some() && !forget.is_empty() {
            pipe.srem(keys::webhook_acked(app), forget).ignore();
        }
        if pipe.is_empty() {
            return Ok(());
        }
        pipe.query_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn set_outbox_position(&self, app: &AppId, id: &str) -> Result<(), StoreError> {
        let mut call = self.set_outbox_position.prepare_invoke();
        call.key(keys::webhook_position(app))
            .key(keys::webhook_acked(app))
            .arg(id);
        let _: i64 = call
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn advance_outbox(
        &self,
        app: &AppId,
        id: &str,
        forget: &[String],
    ) -> Result<(), StoreError> {
        if forget.is_empty() {
            return self
                .conn()
                .set(keys::webhook_position(app), id)
                .await
                .map_err(unavailable);
        }
        // Both keys are under the app's tag: one slot, one round trip.
        redis::pipe()
            .set(keys::webhook_position(app), id)
            .ignore()
            .srem(keys::webhook_acked(app), forget)
            .ignore()
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn ack_outbox(&self, app: &AppId, id: &str) -> Result<(), StoreError> {
        self.conn()
            .sadd(keys::webhook_acked(app), id)
            .await
            .map_err(unavailable)
    }

    async fn outbox_acked(&self, app: &AppId) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = self
            .conn()
            .smembers(keys::webhook_acked(app))
            .await
            .map_err(unavailable)?;
        ids.sort_by_key(|id| crate::store::entry_order(id).map(|(k, at)| (at, k)));
        Ok(ids)
    }

    async fn dead_letter(&self, app: &AppId, letter: &DeadLetter) -> Result<(), StoreError> {
        let key = keys::webhook_dead(app);
        let _: () = redis::pipe()
            .atomic()
            .rpush(&key, encode(letter))
            .ignore()
            .ltrim(&key, -(DEAD_LETTERS_KEPT as isize), -1)
            .ignore()
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn log_delivery(
        &self,
        app: &AppId,
        attempt: &DeliveryAttempt,
    ) -> Result<String, StoreError> {
        log_entry(app, attempt)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn delivery_log(
        &self,
        app: &AppId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, DeliveryAttempt)>, StoreError> {
        let end = before
            .map(|b| format!("({b}"))
            .unwrap_or_else(|| "+".into());
        let key = keys::webhook_log(app);
        self.stream_range("XREVRANGE", &key, (&end, "-"), limit, "attempt")
            .await
    }

    async fn lease(
        &self,
        app: &AppId,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let held: i64 = self
            .lease
            .key(keys::lease(app, name))
            .arg(holder)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(held == 1)
    }

    async fn release_lease(&self, app: &AppId, name: &str, holder: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .lease
            .key(keys::lease(app, name))
            .arg(holder)
            .arg(0)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn dead_letters(&self, app: &AppId, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = keys::webhook_dead(app);
        let rows: Vec<String> = self
            .conn()
            .lrange(&key, 0, limit as isize - 1)
            .await
            .map_err(unavailable)?;
        rows.iter().map(|json| decode(&key, json)).collect()
    }
}

/// The delivery log entry field that carries the dispatcher's position after a batch of verdicts
/// ([`Deliveries::settle_outbox`]).
const POSITION_FIELD: &str = "position";

/// How many of the delivery log's entries are read at a time looking for the position, after
/// the first few.
const POSITION_PAGE: usize = 256;

/// The `XADD` of one attempt to the app's delivery log (capped, about [`DELIVERY_LOG_KEPT`]).
fn log_entry(app: &AppId, attempt: &DeliveryAttempt) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(keys::webhook_log(app))
        .arg("MAXLEN")
        .arg("~")
        .arg(DELIVERY_LOG_KEPT)
        .arg("*")
        .arg("attempt")
        .arg(encode(attempt));
    cmd
}

/// The later of two positions, shard by shard (one that does not parse loses).
fn newest(a: String, b: String) -> String {
    match (Position::parse(&a), Position::parse(&b)) {
        (Some(pa), Some(pb)) => pa.max(&pb).to_string(),
        (Some(_), None) => a,
        (None, _) => b,
    }
}

impl RedisStore {
    /// The position the newest batch of verdicts in the app's delivery log carries: read back a
    /// page at a time, past the entries that carry none (attempts to be retried), until one
    /// does or the log ends. The dispatcher writes the position key itself only now and then
    /// (`webhook/dispatcher.rs`); between, this is where the position is.
    async fn logged_position(&self, app: &AppId) -> Result<Option<String>, StoreError> {
        let log = keys::webhook_log(app);
        let mut end = "+".to_owned();
        // The newest entry carries it but while deliveries are retried: a small page first.
        let mut page = 16;
        loop {
            let rows: Vec<(String, Vec<(String, String)>)> =
                range_command("XREVRANGE", &log, (&end, "-"), page)
                    .query_async(&mut self.conn())
                    .await
                    .map_err(unavailable)?;
            let found = rows.iter().find_map(|(_, fields)| {
                fields
                    .iter()
                    .find(|(f, _)| f == POSITION_FIELD)
                    .map(|(_, p)| p.clone())
            });
            match (found, rows.last()) {
                (Some(p), _) => return Ok(Some(p)),
                (None, Some((id, _))) if rows.len() == page => end = format!("({id}"),
                _ => return Ok(None),
            }
            page = POSITION_PAGE;
        }
    }
}
