//! One dispatcher per application with a webhook URL: it reads the app's outbox after its
//! persisted position and delivers every entry, at least once.
//!
//! - **Per-room order**: a room has at most one message in progress; its later events wait while
//!   an earlier one is retried. Other rooms go on (up to `max_in_flight` requests at once; a
//!   message waiting for its next retry holds no request slot).
//! - **Durable progress**: an entry is settled when the receiver answered 2xx, or when it was
//!   dead-lettered. The position advances over the settled prefix of the outbox (up to just
//!   before the oldest unsettled entry); entries settled beyond it are recorded with
//!   [`Store::ack_outbox`], so a restarted dispatcher sends again only what was never settled.
//!   Verdicts that arrive together are recorded together: the position, the entries settled
//!   ahead of it and the last attempts' log entries are written at once (one round trip to
//!   Redis, [`Store::settle_outbox`]: the position rides on the last log entry), and only then
//!   do those rooms' next events go. The position's own key, which earlier versions read, is
//!   written at most once a second ([`KEY_EVERY`]). The message tasks themselves are in
//!   `message`.
//! - **Woken, not polling**: a dispatcher that has caught up waits on the app's outbox bell
//!   ([`crate::store::bell`]), which rings as soon as any controller instance appends; it
//!   polls (`waits.poll`) only while the store's notifications are down.
//! - **Bounded memory**: at most `max_pending` entries are held between the position and the
//!   read cursor; reading pauses when the window is full.
//!
//! - **One per app across instances**: a dispatcher delivers only while it holds the app's
//!   lease in the store (renewed every third of `lease_ttl`). Controller instances on one Redis
//!   each run a dispatcher per app; one leads, the others stand by and take over when its lease
//!   runs out (a crash) or is given up (a clean stop). Per-room order needs a single reader of
//!   an app's outbox, which is why the work is shared per app rather than per message.
//! - **Fenced** (issue 57, [`tenure`]): every write carries the lease's generation and is
//!   refused by the store unless the lease is still held under it; a refusal ends the term at
//!   once. Before each batch it reads and each request it sends, the dispatcher checks by its
//!   own clock that its hold has not lapsed (a paused process's has), and renews first if it
//!   has; a renewal under another generation ends the term. A new term reads the position
//!   again.
//!
//! Stopping (the cancellation token) drops deliveries in progress; they are sent again later.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

mod tenure;

pub(in crate::webhook) use tenure::Tenure;

use super::deliver::{self, RetrySchedule};
use super::message::{Endpoint, Settled, Target, deliver_until_settled};
use super::sign::Signer;
use crate::conference::{AppId, DomainEvent, RoomId};
use crate::store::bell::Waits;
use crate::store::{DeliveryAttempt, Fence, Store, StoreError};

/// How one application's webhooks are delivered.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    pub app: AppId,
    pub url: String,
    pub signer: Signer,
    pub retry: RetrySchedule,
    /// The longest one request may take, connection included.
    pub timeout: Duration,
    /// Allow URLs that resolve to loopback, private or link-local addresses (tests, the lab).
    pub allow_private: bool,
    /// How long a caught-up dispatcher waits for the outbox to grow before it reads anyway: it
    /// wakes at once when any controller appends, and polls only while those notifications
    /// are down.
    pub waits: Waits,
    /// Entries read from the outbox at once.
    pub batch: usize,
    /// Entries held between the position and the read cursor.
    pub max_pending: usize,
    /// Requests in progress at once (each to a different room).
    pub max_in_flight: usize,
    /// How long the dispatcher's lease lasts unless renewed: one dispatcher per app delivers
    /// at a time, across controller instances; another takes over this long after one dies.
    pub lease_ttl: Duration,
    /// How long verdicts may wait to be recorded with those that follow them, so deliveries
    /// that end close together cost the store one write, not one each (a room's next event
    /// never waits for it: a room with one waiting has its verdict written at once). What a
    /// crash loses of this is sent again; zero writes each batch of verdicts as it comes.
    pub settle_within: Duration,
}

impl DispatcherConfig {
    pub fn new(app: AppId, url: impl Into<String>, signer: Signer) -> DispatcherConfig {
        DispatcherConfig {
            app,
            url: url.into(),
            signer,
            retry: RetrySchedule::default(),
            timeout: Duration::from_secs(15),
            allow_private: false,
            waits: Waits::default(),
            batch: 256,
            max_pending: 10_000,
            max_in_flight: 64,
            lease_ttl: Duration::from_secs(10),
            settle_within: Duration::from_millis(10),
        }
    }
}

/// Why a dispatcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("app {0}: the webhook URL is not a valid http(s) URL")]
    BadUrl(AppId),
    #[error("app {app}: cannot build the HTTP client: {reason}")]
    Client { app: AppId, reason: String },
}

/// Starts the dispatcher of one application; it runs until `stop` is cancelled.
pub fn spawn<S: Store>(
    store: Arc<S>,
    config: DispatcherConfig,
    stop: CancellationToken,
) -> Result<JoinHandle<()>, DispatchError> {
    start(store, config, stop).map(|w| w.task)
}

/// A running dispatcher, whose URL and secrets can change while it runs.
pub struct Webhook {
    endpoint: Arc<Endpoint>,
    pub task: JoinHandle<()>,
}

impl Webhook {
    /// Sends from now on to `url`, signed by `signer` (a configuration reload): requests in
    /// progress finish as they began, the lease, the position and the retries carry on.
    pub fn retarget(&self, url: &str, signer: Signer) -> Result<(), DispatchError> {
        let url = checked_url(&self.endpoint.app, url)?;
        self.endpoint.target.store(Arc::new(Target { url, signer }));
        Ok(())
    }
}

fn checked_url(app: &AppId, url: &str) -> Result<Url, DispatchError> {
    Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| DispatchError::BadUrl(app.clone()))
}

/// [`spawn`], keeping the means to retarget it.
pub fn start<S: Store>(
    store: Arc<S>,
    config: DispatcherConfig,
    stop: CancellationToken,
) -> Result<Webhook, DispatchError> {
    let app = config.app.clone();
    let url = checked_url(&app, &config.url)?;
    let client = deliver::client(config.timeout, config.allow_private).map_err(|e| {
        DispatchError::Client {
            app: app.clone(),
            reason: e.without_url().to_string(),
        }
    })?;
    let endpoint = Arc::new(Endpoint {
        app: app.clone(),
        client,
        target: arc_swap::ArcSwap::from_pointee(Target {
            url,
            signer: config.signer.clone(),
        }),
        retry: config.retry.clone(),
        allow_private: config.allow_private,
        slots: Semaphore::new(config.max_in_flight.max(1)),
    });
    let span = tracing::info_span!("webhooks", app = %app);
    let task = tokio::spawn(lead(store, config, endpoint.clone(), stop).instrument(span));
    Ok(Webhook { endpoint, task })
}

/// The lease that makes one dispatcher per app deliver at a time.
const LEASE: &str = "webhooks";

/// Waits for the app's lease, delivers while holding it (renewing it every third of its
/// time), and waits again if it is lost; gives it up when stopped. Each term of leading
/// resumes from the persisted position, so a dead holder's unsettled messages are sent again
/// (at least once), and a holder that lost the lease drops what it had in flight.
async fn lead<S: Store>(
    store: Arc<S>,
    config: DispatcherConfig,
    endpoint: Arc<Endpoint>,
    stop: CancellationToken,
) {
    let holder = uuid::Uuid::new_v4().to_string();
    let ttl = config.lease_ttl.max(Duration::from_millis(30));
    let app = config.app.clone();
    let mut waiting_logged = false;
    while !stop.is_cancelled() {
        let asked = Instant::now();
        match store.lease(&app, LEASE, &holder, ttl).await {
            Ok(Some(generation)) => {
                tracing::info!(generation, "webhook dispatcher leads");
                waiting_logged = false;
                let fence = Fence {
                    lease: LEASE.to_owned(),
                    holder: holder.clone(),
                    generation,
                };
                let tenure = Tenure::new(fence, ttl, asked, stop.child_token());
                // Both in this task: if it is aborted (the process dies), renewing stops too
                // and the lease runs out for another instance to take.
                let run = async {
                    let loaded =
                        Dispatcher::load(store.clone(), config.clone(), endpoint.clone(), &tenure);
                    if let Some(d) = loaded.await {
                        d.run().await;
                    }
                    tenure.term().cancel();
                };
                let renewing = tenure.clone().renew(store.clone(), app.clone());
                tokio::join!(run, renewing);
                if !stop.is_cancelled() {
                    tracing::warn!("webhook lease lost; waiting to lead again");
                }
            }
            Ok(None) => {
                if !waiting_logged {
                    tracing::info!("another instance delivers this app's webhooks; standing by");
                    waiting_logged = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot take the webhook lease"),
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep((ttl / 3).min(STANDBY_POLL)) => {}
        }
    }
    let _ = store.release_lease(&app, LEASE, &holder).await;
}

/// How often a standing-by dispatcher asks for the lease: a leader that stops releases it, and
/// the next one leads within this (one lease script per app and standing-by instance this often;
/// a killed leader's lease still has to run out).
const STANDBY_POLL: Duration = Duration::from_millis(200);

/// The most verdicts held back at once ([`DispatcherConfig::settle_within`]): more are
/// written at once (a batch of deliveries is written as one anyway).
const HOLD_AT_MOST: usize = 256;

/// How often, at most, the dispatcher writes its position to the position's own key. Each
/// batch of verdicts carries the position in its delivery log entries, which is where this
/// version reads it first ([`Store::outbox_position`]); the key is for the readers of earlier
/// versions (a rolling upgrade), which would send again at most this much of what was settled
/// before they took over.
const KEY_EVERY: Duration = Duration::from_secs(1);

/// Where the position's own key stands.
struct Key {
    /// When it was last written.
    written: Instant,
    /// The position, when it is ahead of the key (carried by log entries).
    behind: Option<String>,
}

impl Key {
    /// When the key is to be written next, if it is behind.
    fn due(&self) -> Option<Instant> {
        self.behind.as_ref().map(|_| self.written + KEY_EVERY)
    }
}

/// An entry read and not yet behind the position.
struct Held {
    id: String,
    /// The position after it.
    after: String,
    settled: bool,
    /// Recorded as settled ahead of the position ([`Store::ack_outbox`]): forgotten when the
    /// position passes it.
    acked: bool,
}

struct Dispatcher<S> {
    store: Arc<S>,
    config: DispatcherConfig,
    endpoint: Arc<Endpoint>,
    /// This term's hold on the lease; its end stops the dispatcher.
    tenure: Arc<Tenure>,
    /// Last entry read.
    cursor: Option<String>,
    /// Entries recorded as settled ahead of the position by an earlier run.
    settled_before: HashSet<String>,
    /// Entries read and not yet behind the position, in the order read.
    window: BTreeMap<u64, Held>,
    numbers: HashMap<String, u64>,
    next_number: u64,
    waiting: HashMap<RoomId, VecDeque<(String, DomainEvent)>>,
    busy: HashSet<RoomId>,
    /// Deliveries in progress (`None`: one found the term ended before it sent).
    tasks: JoinSet<Option<Settled>>,
    /// Where the position's own key stands (see [`KEY_EVERY`]).
    key: Key,
    /// Verdicts not yet written (see [`DispatcherConfig::settle_within`]).
    unwritten: Unwritten,
}

/// Verdicts held back to be written with those that follow ([`DispatcherConfig::settle_within`]).
#[derive(Default)]
struct Unwritten {
    attempts: Vec<DeliveryAttempt>,
    /// The newest position, and the acknowledgments the positions held here passed.
    position: Option<String>,
    forget: Vec<String>,
    /// Entries settled ahead of the position.
    ahead: Vec<String>,
    /// Rooms whose next event waits for these to be written.
    rooms: Vec<RoomId>,
    /// When they are written at the latest (`None`: nothing is held).
    due: Option<Instant>,
}

impl Unwritten {
    fn is_empty(&self) -> bool {
        self.attempts.is_empty()
            && self.position.is_none()
            && self.ahead.is_empty()
            && self.rooms.is_empty()
    }
}

impl<S: Store> Dispatcher<S> {
    async fn load(
        store: Arc<S>,
        config: DispatcherConfig,
        endpoint: Arc<Endpoint>,
        tenure: &Arc<Tenure>,
    ) -> Option<Dispatcher<S>> {
        let app = config.app.clone();
        let fence = tenure.fence();
        let (cursor, acked) = retry_store(tenure, "read the webhook position", || async {
            let cursor = store.outbox_position(&app).await?;
            let mut acked = store.outbox_acked(&app).await?;
            // Acknowledgments the position has passed already (an earlier run's, lost between
            // its two writes): forgotten now, in the store, since no entry read will name them.
            if let Some(p) = cursor.as_deref().filter(|_| !acked.is_empty()) {
                store.set_outbox_position(&app, p, fence).await?;
                acked = store.outbox_acked(&app).await?;
            }
            Ok((cursor, acked))
        })
        .await?;
        Some(Dispatcher {
            store,
            config,
            endpoint,
            tenure: tenure.clone(),
            cursor,
            settled_before: acked.into_iter().collect(),
            window: BTreeMap::new(),
            numbers: HashMap::new(),
            next_number: 0,
            waiting: HashMap::new(),
            busy: HashSet::new(),
            tasks: JoinSet::new(),
            key: Key {
                written: Instant::now(),
                behind: None,
            },
            unwritten: Unwritten::default(),
        })
    }

    async fn run(mut self) {
        let mut bell = self.store.outbox_watch(&self.config.app);
        let waits = self.config.waits;
        let mut next = Next::At(Instant::now());
        loop {
            let now = Instant::now();
            // Due held verdicts are written here too: under a steady stream of finished
            // deliveries the (biased) select below never reaches their timer.
            if self.unwritten.due.is_some_and(|due| now >= due) && !self.write_held().await {
                break;
            }
            if self.window.len() >= self.config.max_pending {
                // Full: what settles makes room; look again after the poll interval at most.
                next = Next::At(now + waits.poll);
            } else if matches!(next, Next::At(at) if now >= at) {
                // A batch starts only on a hold that has not lapsed (a pause ends it).
                if !self.tenure.confirmed().await {
                    break;
                }
                bell.seen();
                next = match self.read().await {
                    Ok(true) => Next::At(now),
                    Ok(false) => Next::Bell(now),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the outbox");
                        Next::At(now + waits.poll.max(Duration::from_millis(500)))
                    }
                };
                if !self.advance().await {
                    break;
                }
            }
            let key_due = self.key.due();
            let held_due = self.unwritten.due;
            tokio::select! {
                biased;
                _ = self.tenure.term().cancelled() => break,
                Some(done) = self.tasks.join_next() => {
                    let Some(batch) = self.finished(done) else {
                        break;
                    };
                    if !self.settle(batch).await || !self.write_key().await {
                        break;
                    }
                }
                _ = bell.wait(next.at(), waits), if matches!(next, Next::Bell(_)) => {
                    next = Next::At(Instant::now());
                }
                _ = tokio::time::sleep_until(next.at()), if matches!(next, Next::At(_)) => {}
                _ = tokio::time::sleep_until(key_due.unwrap_or(now)), if key_due.is_some() => {
                    if !self.write_key().await {
                        break;
                    }
                }
                _ = tokio::time::sleep_until(held_due.unwrap_or(now)), if held_due.is_some() => {
                    if !self.write_held().await {
                        break;
                    }
                }
            }
        }
        self.tasks.abort_all();
        // Stopped: what is held is written if the store answers at once (once: the retries
        // end with the stop), else those messages are sent again; no room's next one starts.
        self.flush().await;
    }

    /// Reads one batch; true when it was full (more may be waiting).
    async fn read(&mut self) -> Result<bool, StoreError> {
        let room_left = self.config.max_pending.saturating_sub(self.window.len());
        let limit = self.config.batch.clamp(1, room_left.max(1));
        // Sent only once a failover cannot lose them (issue 35): an entry lost with the old
        // master would have been announced, and its room's seq used again by another change.
        let entries = crate::store::replicated_outbox(
            &*self.store,
            &self.config.app,
            self.cursor.as_deref(),
            limit,
        )
        .await?;
        let full = entries.len() == limit;
        for entry in entries {
            let (id, event) = (entry.id, entry.event);
            self.cursor = Some(entry.position.clone());
            let settled = self.settled_before.remove(&id);
            let number = self.next_number;
            self.next_number += 1;
            self.window.insert(
                number,
                Held {
                    id: id.clone(),
                    after: entry.position,
                    settled,
                    acked: settled,
                },
            );
            self.numbers.insert(id.clone(), number);
            if !settled {
                let room = event.room.clone();
                self.waiting
                    .entry(room.clone())
                    .or_default()
                    .push_back((id, event));
                if !self.busy.contains(&room) {
                    self.start_next(room);
                }
            }
        }
        Ok(full)
    }

    /// Starts delivering the room's oldest waiting event, if any.
    fn start_next(&mut self, room: RoomId) {
        let next = self.waiting.get_mut(&room).and_then(|q| q.pop_front());
        if self.waiting.get(&room).is_some_and(|q| q.is_empty()) {
            self.waiting.remove(&room);
        }
        let Some((outbox_id, event)) = next else {
            self.busy.remove(&room);
            return;
        };
        self.busy.insert(room.clone());
        let endpoint = self.endpoint.clone();
        // At info, so every line of the delivery (a delivery log that cannot be written, say)
        // names the room and the entry beside the app of the dispatcher's span.
        let span = tracing::info_span!("webhook", room = %room, outbox_id = %outbox_id);
        let delivery = deliver_until_settled(
            self.store.clone(),
            endpoint,
            self.tenure.clone(),
            outbox_id,
            event,
        );
        self.tasks.spawn(delivery.instrument(span));
    }

    /// The finished delivery `first` and every other one already finished, so they are recorded
    /// together. `None` when a task failed (a bug: the dispatcher stops) or found the term
    /// ended.
    fn finished(&mut self, first: Result<Option<Settled>, JoinError>) -> Option<Vec<Settled>> {
        let mut batch = Vec::new();
        for done in std::iter::once(first).chain(std::iter::from_fn(|| self.tasks.try_join_next()))
        {
            match done {
                Ok(Some(settled)) => batch.push(settled),
                Ok(None) => return None,
                Err(e) => {
                    tracing::error!(error = %e, "a webhook delivery task failed; dispatcher stops");
                    return None;
                }
            }
        }
        Some(batch)
    }

    /// Records verdicts durably (dead letters at once, then the position and the entries
    /// settled ahead of it, held back a moment to go with those that follow when no room
    /// waits for them), and lets each room's next event go once they are. False when stopped.
    async fn settle(&mut self, batch: Vec<Settled>) -> bool {
        let (store, app) = (self.store.clone(), self.config.app.clone());
        let fence = self.tenure.fence();
        for letter in batch.iter().filter_map(|s| s.dead.as_ref()) {
            let ok = retry_store(&self.tenure, "store a dead letter", || {
                store.dead_letter(&app, letter, fence)
            })
            .await;
            if ok.is_none() {
                return false;
            }
        }
        // The last attempts go to the delivery log as they are (no copy).
        let (settled, attempts): (Vec<(String, RoomId)>, Vec<DeliveryAttempt>) = batch
            .into_iter()
            .map(|s| ((s.outbox_id, s.room), s.last_attempt))
            .unzip();
        for (id, _) in &settled {
            let number = self.numbers.get(id);
            if let Some(entry) = number.and_then(|n| self.window.get_mut(n)) {
                entry.settled = true;
            }
        }
        self.hold_prefix();
        let ahead: Vec<String> = settled
            .iter()
            .map(|(id, _)| id)
            .filter(|id| self.numbers.contains_key(*id))
            .cloned()
            .collect();
        for id in &ahead {
            let number = self.numbers.get(id);
            if let Some(entry) = number.and_then(|n| self.window.get_mut(n)) {
                entry.acked = true;
            }
        }
        let held = &mut self.unwritten;
        held.attempts.extend(attempts);
        held.ahead.extend(ahead);
        held.rooms.extend(settled.into_iter().map(|(_, room)| room));
        self.write_or_hold().await
    }

    /// Moves the position over the settled prefix of the window. False when stopped.
    async fn advance(&mut self) -> bool {
        self.hold_prefix();
        self.write_or_hold().await
    }

    /// The settled prefix of the window ([`Dispatcher::settled_prefix`]) joins what is held.
    fn hold_prefix(&mut self) {
        let (position, forget) = self.settled_prefix();
        let held = &mut self.unwritten;
        if position.is_some() {
            held.position = position;
        }
        held.forget.extend(forget);
    }

    /// Writes what is held now if a room waits for it, if holding is off or enough is held;
    /// else holds it until [`DispatcherConfig::settle_within`] after the first of it. False
    /// when stopped.
    async fn write_or_hold(&mut self) -> bool {
        let held = &self.unwritten;
        if held.is_empty() {
            return true;
        }
        let waited_on = held.rooms.iter().any(|r| self.waiting.contains_key(r));
        let within = self.config.settle_within;
        if waited_on || within.is_zero() || held.attempts.len() >= HOLD_AT_MOST {
            return self.write_held().await;
        }
        self.unwritten
            .due
            .get_or_insert_with(|| Instant::now() + within);
        true
    }

    /// Writes what is held, then lets its rooms' next events go. False when stopped.
    async fn write_held(&mut self) -> bool {
        let Some(rooms) = self.flush().await else {
            return false;
        };
        for room in rooms {
            self.start_next(room);
        }
        true
    }

    /// Writes what is held; the rooms whose next events waited for it (`None`: stopped).
    async fn flush(&mut self) -> Option<Vec<RoomId>> {
        let held = std::mem::take(&mut self.unwritten);
        let ahead: Vec<&str> = held.ahead.iter().map(String::as_str).collect();
        self.persist(
            held.position.as_deref(),
            &held.attempts,
            &ahead,
            &held.forget,
        )
        .await
        .then_some(held.rooms)
    }

    /// Takes the settled prefix off the window: the position after its last entry is the new
    /// position, and the acknowledgments of its entries are to be forgotten.
    fn settled_prefix(&mut self) -> (Option<String>, Vec<String>) {
        let mut position = None;
        let mut forget = Vec::new();
        while let Some(entry) = self.window.first_entry() {
            if !entry.get().settled {
                break;
            }
            let held = entry.remove();
            self.numbers.remove(&held.id);
            if held.acked {
                forget.push(held.id);
            }
            position = Some(held.after);
        }
        (position, forget)
    }

    /// Writes the settled messages' last attempts, a new position (forgetting the
    /// acknowledgments it passes, `forget`) and the entries settled ahead of it, all in one
    /// round trip ([`Store::settle_outbox`]): the writes are independent (the position only
    /// forgets acknowledgments it passed), so a crash between them at worst sends some entries
    /// again. A position that went with log entries is also written to its own key, at most
    /// once per [`KEY_EVERY`] ([`Dispatcher::write_key`]). False when stopped.
    async fn persist(
        &mut self,
        position: Option<&str>,
        attempts: &[DeliveryAttempt],
        ahead: &[&str],
        forget: &[String],
    ) -> bool {
        if position.is_none() && ahead.is_empty() && attempts.is_empty() {
            return true;
        }
        let (store, app, fence) = (&*self.store, &self.config.app, self.tenure.fence());
        let done = retry_store(&self.tenure, "record webhook progress", || {
            store.settle_outbox(app, attempts, position, ahead, forget, fence)
        })
        .await
        .is_some();
        if let Some(p) = position.filter(|_| done) {
            if attempts.is_empty() {
                // Written to the key itself (nothing to carry it).
                self.key.written = Instant::now();
                self.key.behind = None;
            } else {
                self.key.behind = Some(p.to_owned());
            }
        }
        done
    }

    /// Writes the position to its own key, if it is behind and was last written
    /// [`KEY_EVERY`] ago: what an instance of an earlier version reads, should it take over
    /// (this version reads the delivery log's too). False when stopped.
    async fn write_key(&mut self) -> bool {
        if self.key.due().is_none_or(|due| Instant::now() < due) {
            return true;
        }
        let Some(p) = self.key.behind.take() else {
            return true;
        };
        let (store, app, fence) = (&*self.store, &self.config.app, self.tenure.fence());
        let done = retry_store(&self.tenure, "record the webhook position", || {
            store.advance_outbox(app, &p, &[], fence)
        })
        .await
        .is_some();
        if done {
            self.key.written = Instant::now();
        } else {
            self.key.behind = Some(p);
        }
        done
    }
}

/// When the dispatcher reads the outbox next.
#[derive(Debug, Clone, Copy)]
enum Next {
    /// At this instant (now: more is waiting).
    At(Instant),
    /// When the app's outbox grows; it caught up at this instant (the bell's waits count from
    /// it).
    Bell(Instant),
}

impl Next {
    fn at(self) -> Instant {
        match self {
            Next::At(at) | Next::Bell(at) => at,
        }
    }
}

/// Runs a store operation until it succeeds (with backoff) or the term ends (`None`): a write
/// the store refuses for its fence ends it at once.
async fn retry_store<T, F, Fut>(tenure: &Tenure, what: &str, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut wait = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(v) => return Some(v),
            Err(e) if tenure.refused(&e) => return None,
            Err(e) => tracing::warn!(error = %e, "cannot {what}; retrying"),
        }
        tokio::select! {
            _ = tenure.term().cancelled() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}
