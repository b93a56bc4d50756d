//! The memory store's webhook bookkeeping ([`Deliveries`]).

use std::time::{Duration, Instant};

use super::MemoryStore;
use crate::conference::AppId;
use crate::store::{
    DEAD_LETTERS_KEPT, DELIVERY_LOG_KEPT, DeadLetter, Deliveries, DeliveryAttempt, StoreError,
    outbox_order,
};

impl Deliveries for MemoryStore {
    async fn outbox_position(&self, app: &AppId) -> Result<Option<String>, StoreError> {
        Ok(self.lock().outbox_position.get(app).cloned())
    }

    async fn set_outbox_position(&self, app: &AppId, id: &str) -> Result<(), StoreError> {
        let mut s = self.lock();
        s.outbox_position.insert(app.clone(), id.to_owned());
        let upto = outbox_order(id);
        if let Some(acked) = s.outbox_acked.get_mut(app) {
            acked.retain(|a| outbox_order(a) > upto);
        }
        Ok(())
    }

    async fn advance_outbox(
        &self,
        app: &AppId,
        id: &str,
        forget: &[String],
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        s.outbox_position.insert(app.clone(), id.to_owned());
        if let Some(acked) = s.outbox_acked.get_mut(app) {
            acked.retain(|a| !forget.contains(a));
        }
        Ok(())
    }

    async fn settle_outbox(
        &self,
        app: &AppId,
        attempts: &[DeliveryAttempt],
        position: Option<&str>,
        ahead: &[&str],
        forget: &[String],
    ) -> Result<(), StoreError> {
        for attempt in attempts {
            self.log_delivery(app, attempt).await?;
        }
        for id in ahead {
            self.ack_outbox(app, id).await?;
        }
        match position {
            Some(p) => self.advance_outbox(app, p, forget).await,
            None => Ok(()),
        }
    }

    async fn ack_outbox(&self, app: &AppId, id: &str) -> Result<(), StoreError> {
        self.lock()
            .outbox_acked
            .entry(app.clone())
            .or_default()
            .insert(id.to_owned());
        Ok(())
    }

    async fn outbox_acked(&self, app: &AppId) -> Result<Vec<String>, StoreError> {
        let s = self.lock();
        let mut ids: Vec<String> = s
            .outbox_acked
            .get(app)
            .map(|a| a.iter().cloned().collect())
            .unwrap_or_default();
        ids.sort_by_key(|id| outbox_order(id));
        Ok(ids)
    }

    async fn dead_letter(&self, app: &AppId, letter: &DeadLetter) -> Result<(), StoreError> {
        let mut s = self.lock();
        let list = s.dead_letters.entry(app.clone()).or_default();
        list.push_back(letter.clone());
        while list.len() > DEAD_LETTERS_KEPT {
            list.pop_front();
        }
        Ok(())
    }

    async fn log_delivery(
        &self,
        app: &AppId,
        attempt: &DeliveryAttempt,
    ) -> Result<String, StoreError> {
        let mut s = self.lock();
        s.next_event += 1;
        let id = format!("{}-0", s.next_event);
        let log = s.delivery_log.entry(app.clone()).or_default();
        log.push_back((id.clone(), attempt.clone()));
        if log.len() > DELIVERY_LOG_KEPT {
            log.pop_front();
        }
        Ok(id)
    }

    async fn delivery_log(
        &self,
        app: &AppId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, DeliveryAttempt)>, StoreError> {
        let s = self.lock();
        let before = before.and_then(outbox_order);
        Ok(s.delivery_log
            .get(app)
            .map(|log| {
                log.iter()
                    .rev()
                    .filter(|(id, _)| {
                        before.is_none_or(|b| outbox_order(id).is_some_and(|o| o < b))
                    })
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn lease(
        &self,
        app: &AppId,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let key = (app.clone(), name.to_owned());
        let now = Instant::now();
        match s.leases.get(&key) {
            Some((h, until)) if h != holder && *until > now => Ok(false),
            _ => {
                s.leases.insert(key, (holder.to_owned(), now + ttl));
                Ok(true)
            }
        }
    }

    async fn release_lease(&self, app: &AppId, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut s = self.lock();
        let key = (app.clone(), name.to_owned());
        if s.leases.get(&key).is_some_and(|(h, _)| h == holder) {
            s.leases.remove(&key);
        }
        Ok(())
    }

    async fn dead_letters(&self, app: &AppId, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let s = self.lock();
        Ok(s.dead_letters
            .get(app)
            .map(|l| l.iter().take(limit).cloned().collect())
            .unwrap_or_default())
    }
}
