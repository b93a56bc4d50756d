//! Recordings copied to the object store (`[recordings] store = "s3"`, issue 38). The node that
//! wrote a finished file puts it into the bucket itself: the controller signs a `PUT` URL for
//! the object (the bucket's credentials never leave the controller) and asks the node for
//! `http_put <url> <file>` (mod_http_cache). Then the controller reads the object back whole
//! from the bucket, and only then is the recording `ready`, with the size and sha256 it read,
//! told by `conference.recording.ready`.
//!
//! A recording is listed in the store as it starts, before the node is asked anything, and
//! leaves the list once ready or given up: every instance runs [`Rooms::run_uploads`], one at a
//! time does each recording (a lease), and a failed attempt is tried again later with backoff,
//! across restarts, for as long as [`GIVE_UP_AFTER`] (the node keeps its file meanwhile).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use uuid::Uuid;

mod parts;

use parts::{Copy, Due, Part};

use super::{Rooms, ServiceError};
use crate::conference::{AppId, Micros, RoomId};
use crate::node::supervisor::now_micros;
use crate::store::bell::{OutboxWatch, Waits, Woken};
use crate::store::{Store, update_room};

/// How long an attempt may hold a recording's upload (it lets go when done; a dead instance's
/// hold expires).
const LEASE: Duration = Duration::from_secs(120);
/// How long a signed `PUT` URL given to a node lasts.
const PUT_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// The wait before the first retry, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// Attempts after which an upload is given up, at [`MAX_BACKOFF`] apart once the backoff is
/// full: about a day.
const GIVE_UP_AFTER: u32 = 300;
/// The shortest time between two passes woken by outbox appends.
const RUNG_PASS_EVERY: Duration = Duration::from_millis(100);
/// How long a listed recording may be missing from its room before it is let go. A recording
/// is listed a moment before its room holds it (`start_recording`), and a pass in between must
/// not take that for a recording gone; one whose start the room refused never comes.
const MISSING_FOR: Duration = Duration::from_secs(60);

/// The listed recordings this process found missing from their (existing) rooms, and since
/// when.
#[derive(Default)]
pub(super) struct Unseen(std::sync::Mutex<HashMap<Uuid, tokio::time::Instant>>);

impl Unseen {
    /// Whether `rec`, missing now, has been missing for [`MISSING_FOR`].
    fn missing_long(&self, rec: Uuid) -> bool {
        let now = tokio::time::Instant::now();
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let since = *seen.entry(rec).or_insert(now);
        let long = now.duration_since(since) >= MISSING_FOR;
        if long {
            seen.remove(&rec);
        }
        long
    }

    /// `rec` is in its room, or its room is gone: no longer missing.
    fn found(&self, rec: Uuid) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.is_empty() {
            seen.remove(&rec);
        }
    }
}

/// Resolves when any of the bells rings (never without one).
async fn any_rung(bells: &mut HashMap<AppId, OutboxWatch>) {
    if bells.is_empty() {
        return std::future::pending().await;
    }
    let waits = Waits {
        poll: Duration::from_secs(1),
        idle: Duration::from_secs(1),
    };
    loop {
        let now = tokio::time::Instant::now();
        let rings = bells.values_mut().map(|b| Box::pin(b.wait(now, waits)));
        if let (Woken::Rung, ..) = futures_util::future::select_all(rings).await {
            return;
        }
    }
}

/// What one attempt found.
pub(super) enum Attempt {
    Ready {
        size: u64,
        sha256: String,
    },
    /// Try again later: why.
    Retry(String),
    /// Never: why.
    GiveUp(String),
}

impl<S: Store> Rooms<S> {
    /// Copies finished recordings to the object store until `stop` (nothing to do without
    /// one): a pass once a second, and one as soon as an app with a copy pending appends to its
    /// outbox (a recording that ends tells `conference.recording.finished` there), so a copy
    /// starts moments after its recording ends, not at the next tick.
    pub async fn run_uploads(&self, stop: tokio_util::sync::CancellationToken) {
        if self.objects.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut bells: HashMap<AppId, OutboxWatch> = HashMap::new();
        let mut last = tokio::time::Instant::now();
        loop {
            let ticked = tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => true,
                () = any_rung(&mut bells) => false,
            };
            if !ticked {
                // An app's outbox grows with every event: a pass at most every RUNG_PASS_EVERY.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    () = tokio::time::sleep_until(last + RUNG_PASS_EVERY) => {}
                }
            }
            // This pass does not read the outboxes: each watch is armed (after it is marked, so
            // an append from then on rings it).
            for bell in bells.values_mut() {
                bell.seen();
                bell.arm().await;
            }
            last = tokio::time::Instant::now();
            match self.upload_due().await {
                Ok(apps) => {
                    bells.retain(|app, _| apps.contains(app));
                    for app in apps {
                        if let std::collections::hash_map::Entry::Vacant(v) = bells.entry(app) {
                            let bell = self.store.outbox_watch(v.key());
                            bell.arm().await;
                            v.insert(bell);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "recordings could not be copied to the object store; retrying");
                }
            }
            if ticked && let Err(e) = self.expire_recordings(now_micros()).await {
                tracing::warn!(error = %e, "recordings past their retention could not be deleted; retrying");
            }
        }
    }

    /// One pass over the listed recordings: each one due is attempted once. Returns the apps
    /// that have copies pending.
    pub async fn upload_due(&self) -> Result<HashSet<AppId>, ServiceError> {
        let mut apps = HashSet::new();
        for (app, room, rec) in self.store.uploads_pending().await? {
            self.upload_one(&app, &room, rec).await?;
            apps.insert(app);
        }
        Ok(apps)
    }

    /// Deletes the recordings whose retention ended (each by one instance); how many.
    pub async fn expire_recordings(&self, now: Micros) -> Result<usize, ServiceError> {
        let mut deleted = 0;
        for (app, room, rec) in self.store.claim_expired_recordings(now, 100).await? {
            match self.delete_recording(&app, rec).await {
                Ok(()) => deleted += 1,
                Err(ServiceError::NotFound(_)) => {}
                Err(e) => {
                    // Tried again in a minute.
                    let again = now.saturating_add(60_000_000);
                    self.store
                        .expire_recording_at(&app, &room, rec, again)
                        .await?;
                    tracing::warn!(room = %room, recording = %rec, error = %e, "a recording past its retention could not be deleted");
                }
            }
        }
        Ok(deleted)
    }

    /// Attempts the copy of one recording's part that is due, if any (its finished parts
    /// first, then its own file); whether the recording became ready.
    async fn upload_one(
        &self,
        app: &AppId,
        id: &RoomId,
        rec_id: Uuid,
    ) -> Result<bool, ServiceError> {
        let Some((objects, url_ttl)) = self.objects.clone() else {
            return Ok(false);
        };
        let now = now_micros();
        let room = self.store.room(app, id).await?;
        let due = room
            .as_ref()
            .and_then(|r| r.recording_by_id(rec_id).map(|rec| parts::due(r, rec, now)));
        // Not written into its room yet (or never, its start refused): given time.
        if room.is_some() && due.is_none() {
            if !self.unseen.missing_long(rec_id) {
                return Ok(false);
            }
        } else {
            self.unseen.found(rec_id);
        }
        let copy = match due {
            Some(Due::Copy(copy)) => copy,
            Some(Due::Later) => return Ok(false),
            // The room gone, a recording missing from it for long, or every part of it copied
            // or given up: nothing (more) to do.
            None | Some(Due::Done) => {
                self.store
                    .set_upload_pending(app, id, rec_id, false)
                    .await?;
                return Ok(false);
            }
        };
        // Held by this instance for the attempt, and let go after it (a lease that a dead
        // instance's attempt leaves to expire).
        let lease = format!("upload:{rec_id}");
        if self
            .store
            .remember(app, &lease, "attempt", LEASE)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        let attempt = self.attempt(&copy, &objects).await;
        if let Err(e) = self.store.settle(app, &lease, None, LEASE).await {
            tracing::warn!(recording = %rec_id, error = %e, "an upload's lease was not let go; it expires");
        }
        let at = now_micros();
        let done = update_room(&*self.store, app, id, |r| {
            let events = parts::settle(r, rec_id, copy.part, &attempt, &objects, url_ttl, at);
            Ok::<_, ServiceError>(((), events))
        })
        .await?;
        let ready = matches!(attempt, Attempt::Ready { .. }) && copy.part == Part::Last;
        if let (true, Some(keep)) = (ready, self.retention) {
            let at = now_micros().saturating_add(keep.as_micros() as Micros);
            self.store.expire_recording_at(app, id, rec_id, at).await?;
        }
        if let Attempt::Retry(why) | Attempt::GiveUp(why) = &attempt {
            tracing::warn!(room = %id, recording = %rec_id, part = ?copy.part, error = %why, "a recording's copy to the object store failed");
        }
        Ok(ready && done.is_some())
    }

    /// Asks the node that wrote the file to put it, then reads the object back.
    async fn attempt(&self, copy: &Copy, objects: &crate::objects::ObjectStore) -> Attempt {
        let key = copy.key.as_str();
        // Already there (an attempt whose answer was lost, or another instance's)? A bucket that
        // refuses the controller (bad credentials, no such bucket) will refuse the node too.
        match objects.check(key).await {
            Ok(Some(checked)) => {
                return Attempt::Ready {
                    size: checked.size,
                    sha256: checked.sha256,
                };
            }
            Err(e) if !e.is_retryable() => {
                return Attempt::GiveUp(format!("the bucket refuses: {e}"));
            }
            Ok(None) | Err(_) => {}
        }
        let node = match self.pool.get(&copy.node) {
            Ok(node) => node,
            Err(e) => return Attempt::Retry(e.to_string()),
        };
        let url = objects.put_url(key, PUT_URL_TTL);
        let cmd = match crate::node::commands::http_put(&url, &copy.path) {
            Ok(cmd) => cmd,
            Err(e) => return Attempt::GiveUp(e.to_string()),
        };
        let reply = match node.api(&cmd).await {
            Ok(reply) => reply.text().trim().to_owned(),
            Err(e) => return Attempt::Retry(e.to_string()),
        };
        // `+OK 200`. A failed put answers `-ERR http_put Command not found!` whatever the
        // cause (FreeSWITCH's text for any API command that fails: the bucket's status is
        // lost), so it is tried again; a bucket that refuses for good was found above.
        if !reply.starts_with("+OK") {
            return Attempt::Retry(format!("the node's http_put: {reply}"));
        }
        match objects.check(key).await {
            Ok(Some(checked)) => Attempt::Ready {
                size: checked.size,
                sha256: checked.sha256,
            },
            Ok(None) => Attempt::Retry("the node put it, but the bucket has no such object".into()),
            Err(e) => Attempt::Retry(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests;
