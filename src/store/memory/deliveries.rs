//! The memory store's webhook bookkeeping ([`Deliveries`]). The dispatcher's writes are checked
//! against its lease under the same lock that makes them, as the Redis store checks them in the
//! script that makes them.

use std::time::{Duration, Instant};

use super::MemoryStore;
use super::state::Inner;
use crate::conference::AppId;
use crate::store::{
    DEAD_LETTERS_KEPT, DELIVERY_LOG_KEPT, DeadLetter, Deliveries, DeliveryAttempt, Fence,
    StoreError, log_id, outbox_order,
};

impl Deliveries for MemoryStore {
    async fn outbox_position(&self, app: &AppId) -> Result<Option<String>, StoreError> {
        Ok(self.lock().outbox_position.get(app).cloned())
    }

    async fn set_outbox_position(
        &self,
        app: &AppId,
        id: &str,
        fence: &Fence,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        fenced(&s, app, fence)?;
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
        fence: &Fence,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        fenced(&s, app, fence)?;
        advance(&mut s, app, id, forget);
        Ok(())
    }

    async fn settle_outbox(
        &self,
        app: &AppId,
        attempts: &[DeliveryAttempt],
        position: Option<&str>,
        ahead: &[&str],
        forget: &[String],
        fence: &Fence,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        fenced(&s, app, fence)?;
        for attempt in attempts {
            log(&mut s, app, attempt);
        }
        for id in ahead {
            ack(&mut s, app, id);
        }
        if let Some(p) = position {
            advance(&mut s, app, p, forget);
        }
        Ok(())
    }

    async fn ack_outbox(&self, app: &AppId, id: &str, fence: &Fence) -> Result<(), StoreError> {
        let mut s = self.lock();
        fenced(&s, app, fence)?;
        ack(&mut s, app, id);
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

    async fn dead_letter(
        &self,
        app: &AppId,
        letter: &DeadLetter,
        fence: &Fence,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        fenced(&s, app, fence)?;
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
        fence: Option<&Fence>,
    ) -> Result<String, StoreError> {
        let mut s = self.lock();
        if let Some(fence) = fence {
            fenced(&s, app, fence)?;
        }
        Ok(log(&mut s, app, attempt))
    }

    async fn delivery_log(
        &self,
        app: &AppId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, DeliveryAttempt)>, StoreError> {
        let s = self.lock();
        // Each entry here holds one attempt: before its `k`-th attempt, `k` > 0, is up to it.
        let before = match before.map(log_id) {
            None => None,
            Some(None) => return Ok(Vec::new()),
            Some(Some((entry, k))) => outbox_order(entry).map(|o| (o, k.is_some_and(|k| k > 0))),
        };
        Ok(s.delivery_log
            .get(app)
            .map(|log| {
                log.iter()
                    .rev()
                    .filter(|(id, _)| {
                        before.is_none_or(|(b, with)| {
                            outbox_order(id).is_some_and(|o| o < b || (with && o == b))
                        })
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
    ) -> Result<Option<u64>, StoreError> {
        let mut s = self.lock();
        let key = (app.clone(), name.to_owned());
        let now = Instant::now();
        let generation = generation(&s, app, name);
        let mine = s
            .leases
            .get(&key)
            .filter(|(_, until)| *until > now)
            .map(|(h, _)| h == holder);
        match mine {
            Some(false) => Ok(None),
            Some(true) if generation > 0 => {
                s.leases.insert(key, (holder.to_owned(), now + ttl));
                Ok(Some(generation))
            }
            _ => {
                s.leases.insert(key, (holder.to_owned(), now + ttl));
                let next = generation + 1;
                // The slot beside the lease's, as Redis keeps `<lease key>:gen`; never expires.
                s.leases
                    .insert(generation_slot(app, name), (next.to_string(), now));
                Ok(Some(next))
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

/// Where a lease's generation is kept: in the leases' map, under the lease's name and `:gen`
/// (as Redis keeps it beside the lease), the generation in decimal where a holder would be.
fn generation_slot(app: &AppId, name: &str) -> (AppId, String) {
    (app.clone(), format!("{name}:gen"))
}

/// The generation of the lease `name` (0: never taken).
fn generation(s: &Inner, app: &AppId, name: &str) -> u64 {
    s.leases
        .get(&generation_slot(app, name))
        .and_then(|(g, _)| g.parse().ok())
        .unwrap_or(0)
}

/// Ok if the lease of `fence` is held now by its holder under its generation; else the
/// refusal.
fn fenced(s: &Inner, app: &AppId, fence: &Fence) -> Result<(), StoreError> {
    let now = Instant::now();
    let held = s
        .leases
        .get(&(app.clone(), fence.lease.clone()))
        .is_some_and(|(h, until)| *h == fence.holder && *until > now);
    if held && generation(s, app, &fence.lease) == fence.generation {
        return Ok(());
    }
    Err(StoreError::Fenced(format!(
        "app {app}: lease {} is not held by {} under generation {}",
        fence.lease, fence.holder, fence.generation
    )))
}

/// Moves the position to `id`, forgetting the acknowledgments `forget`.
fn advance(s: &mut Inner, app: &AppId, id: &str, forget: &[String]) {
    s.outbox_position.insert(app.clone(), id.to_owned());
    if let Some(acked) = s.outbox_acked.get_mut(app) {
        acked.retain(|a| !forget.contains(a));
    }
}

fn ack(s: &mut Inner, app: &AppId, id: &str) {
    s.outbox_acked
        .entry(app.clone())
        .or_default()
        .insert(id.to_owned());
}

/// Appends `attempt` to the app's delivery log: its entry's id.
fn log(s: &mut Inner, app: &AppId, attempt: &DeliveryAttempt) -> String {
    s.next_event += 1;
    let id = format!("{}-0", s.next_event);
    let log = s.delivery_log.entry(app.clone()).or_default();
    log.push_back((id.clone(), attempt.clone()));
    if log.len() > DELIVERY_LOG_KEPT {
        log.pop_front();
    }
    id
}
