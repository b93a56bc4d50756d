//! The outbox read ahead for this process's readers, by the room writes that append to it.
//!
//! A caught-up reader (the webhook dispatcher, an event stream) reads the outbox again each time
//! its bell rings: one round trip of its own per append. Where the bells follow the tracked
//! connection (one Redis or a Sentinel set, the room cache on; an app on one shard), a room write
//! of this process that appends to an app's outbox reads what followed that app's last reader's
//! position (`XRANGE`) in its own pipeline, after its script, and keeps it here; the reader's
//! next read from that position takes it from memory. The read in the pipeline also has Redis
//! track the outbox again for this process, as the reader's own read did.
//!
//! Nothing is skipped: what is kept is only handed out while the app's bell has rung exactly
//! once since the pipeline was sent (the writer's own ring). Any other ring, for an append by
//! another instance (Redis's push), by another write of this process, or for a reconnection,
//! means the snapshot may lack entries, and the reader reads Redis as before. An append by
//! another instance between the script and the read is in the snapshot; one after it draws a
//! push (the read tracks the key again), which rings.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use redis::Value;

use super::reads::{range_command, stream_records};
use crate::conference::{AppId, DomainEvent};
use crate::store::bell::Bells;
use crate::store::{OutboxEntry, Position, StoreError, entry_id, outbox_order};

/// How many entries a write reads ahead at most: a read that finds this many is not kept (more
/// may follow; the reader reads them itself). A caught-up reader at a low rate is one or two
/// entries behind; a reader further behind is not helped.
const AHEAD: usize = 16;

/// Per app: where its readers in this process stand, and what was read ahead of them.
#[derive(Default)]
pub(super) struct ReadAhead {
    apps: Mutex<HashMap<AppId, Standing>>,
}

#[derive(Default)]
struct Standing {
    /// The position after the last read's entries: a caught-up reader reads from there next.
    tail: Option<String>,
    /// Entries after `tail` read by a write, valid while the bell's count is `rings`.
    ahead: Option<Ahead>,
    /// A write has planned its read ahead since the reader's last read: the writes after it do
    /// not. (Under a high rate many writes fall between two reads; each reading all that
    /// followed the reader would read the same entries over and over, and only the last could
    /// be valid.)
    planned: bool,
}

struct Ahead {
    after: String,
    entries: Vec<OutboxEntry>,
    rings: u64,
}

/// A read ahead planned into a write's pipeline.
pub(super) struct Planned {
    app: AppId,
    key: String,
    after: String,
    /// The app's bell count when the pipeline was built.
    rings: u64,
}

impl Planned {
    /// The command that reads ahead (`XRANGE` after the reader's position).
    pub(super) fn command(&self) -> Option<redis::Cmd> {
        let (ms, seq) = Position::parse(&self.after)?.spread(1).of(0);
        Some(range_command(
            "XRANGE",
            &self.key,
            (&format!("({ms}-{seq}"), "+"),
            AHEAD,
        ))
    }
}

impl ReadAhead {
    fn apps(&self) -> MutexGuard<'_, HashMap<AppId, Standing>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A read ahead for an append to `app`'s outbox (its only shard's `key`), when a reader of
    /// this process has a position and a bell.
    pub(super) fn plan(&self, bells: &Bells, app: &AppId, key: String) -> Option<Planned> {
        let rings = bells.rings(app)?;
        let mut apps = self.apps();
        let standing = apps.get_mut(app)?;
        if standing.planned {
            return None;
        }
        let after = standing.tail.clone()?;
        standing.planned = true;
        Some(Planned {
            app: app.clone(),
            key,
            after,
            rings,
        })
    }

    /// Keeps what the read ahead answered, before the write rings the bell (once) for its
    /// append: valid while that ring is the last.
    pub(super) fn keep(&self, planned: Planned, reply: &Value) {
        let Ok(rows) = redis::from_redis_value::<Vec<(String, Vec<(String, String)>)>>(reply)
        else {
            return;
        };
        // As many as asked: more may follow, which the reader would take itself for caught up.
        if rows.len() >= AHEAD {
            return;
        }
        let Ok(entries) = one_shard_entries(&planned.key, rows) else {
            return;
        };
        let mut apps = self.apps();
        let standing = apps.entry(planned.app).or_default();
        // Nothing appended (a script Redis did not have yet, a write that lost its race): the
        // next write reads ahead again.
        if entries.is_empty() {
            standing.planned = false;
        }
        // The reader moved on meanwhile: what it reads next is not after this.
        if standing.tail.as_deref() != Some(planned.after.as_str()) {
            return;
        }
        standing.ahead = Some(Ahead {
            after: planned.after,
            entries,
            rings: planned.rings.wrapping_add(1),
        });
    }

    /// What was read ahead of a reader at `after`, if still valid (up to `limit` entries; the
    /// rest kept for its next read); `None`: read Redis.
    pub(super) fn take(
        &self,
        bells: &Bells,
        app: &AppId,
        after: Option<&str>,
        limit: usize,
    ) -> Option<Vec<OutboxEntry>> {
        let after = after?;
        let rings = bells.rings(app);
        let live = bells.is_live();
        let mut apps = self.apps();
        let standing = apps.get_mut(app)?;
        let ahead = standing.ahead.take()?;
        if !live || ahead.after != after || Some(ahead.rings) != rings {
            return None;
        }
        let mut entries = ahead.entries;
        let rest = entries.split_off(limit.min(entries.len()));
        let tail = entries
            .last()
            .map_or_else(|| after.to_owned(), |e| e.position.clone());
        standing.planned = false;
        if !rest.is_empty() {
            standing.ahead = Some(Ahead {
                after: tail.clone(),
                entries: rest,
                rings: ahead.rings,
            });
        }
        standing.tail = Some(tail);
        Some(entries)
    }

    /// A reader of `app` read from `after` and got `entries`: it stands after them.
    pub(super) fn read(&self, app: &AppId, after: Option<&str>, entries: &[OutboxEntry]) {
        let tail = entries
            .last()
            .map(|e| e.position.clone())
            .or_else(|| after.map(str::to_owned));
        if tail.is_none() {
            return;
        }
        let mut apps = self.apps();
        let standing = apps.entry(app.clone()).or_default();
        standing.tail = tail;
        standing.ahead = None;
        standing.planned = false;
    }
}

/// An app's one outbox shard's entries (as `XRANGE` answers), each its own position.
fn one_shard_entries(
    key: &str,
    rows: Vec<(String, Vec<(String, String)>)>,
) -> Result<Vec<OutboxEntry>, StoreError> {
    stream_records::<DomainEvent>(key, rows, "event")?
        .into_iter()
        .map(|(id, event)| {
            let at = outbox_order(&id).ok_or_else(|| StoreError::Corrupt {
                key: key.to_owned(),
                reason: format!("not a stream id: {id}"),
            })?;
            let id = entry_id(0, at);
            Ok(OutboxEntry {
                position: id.clone(),
                id,
                event,
            })
        })
        .collect()
}
