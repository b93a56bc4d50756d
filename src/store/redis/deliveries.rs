//! The Redis store's webhook bookkeeping ([`Deliveries`]): the dispatcher's outbox position and
//! acknowledgments, dead letters (a capped list), the delivery log (a capped stream) and the
//! per-app leases, under the app's hash tag. The dispatcher's writes are checked against its
//! lease in the script that makes them (`lua/settle_outbox.lua`, `lua/set_outbox_position.lua`).

use std::time::Duration;

use redis::{AsyncCommands, Script};

use super::reads::range_command;
use super::{RedisStore, decode, encode, unavailable};
use crate::conference::AppId;
use crate::store::{
    DEAD_LETTERS_KEPT, DELIVERY_LOG_KEPT, DeadLetter, Deliveries, DeliveryAttempt, Fence, Position,
    StoreError, keys, log_id,
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
        fence: &Fence,
    ) -> Result<(), StoreError> {
        if attempts.is_empty() && position.is_none() && ahead.is_empty() {
            return Ok(());
        }
        let written = FencedWrite {
            attempts,
            position,
            ahead,
            forget,
            dead: None,
        };
        self.fenced(app, fence, written).await.map(drop)
    }

    async fn set_outbox_position(
        &self,
        app: &AppId,
        id: &str,
        fence: &Fence,
    ) -> Result<(), StoreError> {
        let mut call = self.set_outbox_position.prepare_invoke();
        call.key(keys::webhook_position(app))
            .key(keys::webhook_acked(app))
            .key(keys::lease(app, &fence.lease))
            .key(keys::lease_generation(app, &fence.lease))
            .arg(id)
            .arg(&fence.holder)
            .arg(fence.generation);
        let done: i64 = call
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        match done {
            1 => Ok(()),
            _ => Err(refused(app, fence)),
        }
    }

    async fn advance_outbox(
        &self,
        app: &AppId,
        id: &str,
        forget: &[String],
        fence: &Fence,
    ) -> Result<(), StoreError> {
        let written = FencedWrite {
            attempts: &[],
            position: Some(id),
            ahead: &[],
            forget,
            dead: None,
        };
        self.fenced(app, fence, written).await.map(drop)
    }

    async fn ack_outbox(&self, app: &AppId, id: &str, fence: &Fence) -> Result<(), StoreError> {
        let written = FencedWrite {
            attempts: &[],
            position: None,
            ahead: &[id],
            forget: &[],
            dead: None,
        };
        self.fenced(app, fence, written).await.map(drop)
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

    async fn dead_letter(
        &self,
        app: &AppId,
        letter: &DeadLetter,
        fence: &Fence,
    ) -> Result<(), StoreError> {
        let written = FencedWrite {
            attempts: &[],
            position: None,
            ahead: &[],
            forget: &[],
            dead: Some(letter),
        };
        self.fenced(app, fence, written).await.map(drop)
    }

    async fn log_delivery(
        &self,
        app: &AppId,
        attempt: &DeliveryAttempt,
        fence: Option<&Fence>,
    ) -> Result<String, StoreError> {
        let Some(fence) = fence else {
            return log_entry(app, attempt)
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable);
        };
        let written = FencedWrite {
            attempts: std::slice::from_ref(attempt),
            position: None,
            ahead: &[],
            forget: &[],
            dead: None,
        };
        self.fenced(app, fence, written).await
    }

    async fn delivery_log(
        &self,
        app: &AppId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, DeliveryAttempt)>, StoreError> {
        // Before the `k`-th attempt of an entry: that entry (inclusive) is read again, its
        // attempts from `k` on left out.
        let (end, within) = match before.and_then(log_id) {
            Some((entry, Some(k))) => (entry.to_owned(), Some((entry, k))),
            Some((entry, None)) => (format!("({entry}"), None),
            None if before.is_some() => return Ok(Vec::new()),
            None => ("+".to_owned(), None),
        };
        let key = keys::webhook_log(app);
        // The entry read again may give no attempt: one entry more.
        let entries = limit + usize::from(within.is_some());
        let rows: Vec<(String, Vec<(String, String)>)> =
            range_command("XREVRANGE", &key, (&end, "-"), entries)
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
        let mut out = Vec::with_capacity(limit);
        for (id, fields) in rows {
            let attempts: Vec<String> = fields
                .into_iter()
                .filter(|(f, _)| f == "attempt")
                .map(|(_, v)| v)
                .collect();
            let several = attempts.len() > 1;
            let until = match within {
                Some((entry, k)) if entry == id => k,
                _ => attempts.len(),
            };
            // Newest first: an entry's attempts from its last.
            for (k, json) in attempts.iter().enumerate().take(until).rev() {
                let attempt: DeliveryAttempt = decode(&key, json)?;
                let row = if several {
                    format!("{id}.{k}")
                } else {
                    id.clone()
                };
                out.push((row, attempt));
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    async fn lease(
        &self,
        app: &AppId,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let generation: u64 = self
            .lease
            .key(keys::lease(app, name))
            .key(keys::lease_generation(app, name))
            .arg(holder)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok((generation > 0).then_some(generation))
    }

    async fn release_lease(&self, app: &AppId, name: &str, holder: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .lease
            .key(keys::lease(app, name))
            .key(keys::lease_generation(app, name))
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

/// What one call of `settle_outbox.lua` writes, if the fence holds.
struct FencedWrite<'a> {
    attempts: &'a [DeliveryAttempt],
    position: Option<&'a str>,
    ahead: &'a [&'a str],
    forget: &'a [String],
    dead: Option<&'a DeadLetter>,
}

/// The dispatcher's writes, checked against the lease in the same script (one round trip).
static SETTLE_OUTBOX: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("../lua/settle_outbox.lua")));

/// The refusal of a write whose fence does not hold.
fn refused(app: &AppId, fence: &Fence) -> StoreError {
    StoreError::Fenced(format!(
        "app {app}: lease {} is not held by {} under generation {}",
        fence.lease, fence.holder, fence.generation
    ))
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
    /// Writes `w` if `fence` holds, in one script: the id of the last log entry written ('' if
    /// none); [`StoreError::Fenced`] if it does not hold (nothing is written).
    async fn fenced(
        &self,
        app: &AppId,
        fence: &Fence,
        w: FencedWrite<'_>,
    ) -> Result<String, StoreError> {
        let mut call = SETTLE_OUTBOX.prepare_invoke();
        call.key(keys::lease(app, &fence.lease))
            .key(keys::lease_generation(app, &fence.lease))
            .key(keys::webhook_log(app))
            .key(keys::webhook_position(app))
            .key(keys::webhook_acked(app))
            .key(keys::webhook_dead(app))
            .arg(&fence.holder)
            .arg(fence.generation)
            .arg(DELIVERY_LOG_KEPT)
            .arg(DEAD_LETTERS_KEPT)
            .arg(w.position.unwrap_or_default())
            .arg(w.attempts.len())
            .arg(w.ahead.len())
            .arg(w.forget.len())
            .arg(usize::from(w.dead.is_some()));
        for attempt in w.attempts {
            call.arg(encode(attempt));
        }
        call.arg(w.ahead).arg(w.forget);
        if let Some(letter) = w.dead {
            call.arg(encode(letter));
        }
        let last: Option<String> = call
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        last.ok_or_else(|| refused(app, fence))
    }

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
