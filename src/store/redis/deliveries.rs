//! The Redis store's webhook bookkeeping ([`Deliveries`]): the dispatcher's outbox position and
//! acknowledgments, dead letters (a capped list), the delivery log (a capped stream) and the
//! per-app leases, under the app's hash tag.

use std::time::Duration;

use redis::AsyncCommands;

use super::{RedisStore, decode, encode, unavailable};
use crate::conference::AppId;
use crate::store::{
    DEAD_LETTERS_KEPT, DELIVERY_LOG_KEPT, DeadLetter, Deliveries, DeliveryAttempt, StoreError, keys,
};

impl Deliveries for RedisStore {
    async fn outbox_position(&self, app: &AppId) -> Result<Option<String>, StoreError> {
        self.conn()
            .get(keys::webhook_position(app))
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
        redis::cmd("XADD")
            .arg(keys::webhook_log(app))
            .arg("MAXLEN")
            .arg("~")
            .arg(DELIVERY_LOG_KEPT)
            .arg("*")
            .arg("attempt")
            .arg(encode(attempt))
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
