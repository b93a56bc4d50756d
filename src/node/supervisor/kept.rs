//! Applying a node's events, and applying them again after a store failover (issue 35).
//!
//! A store that fails over (a Sentinel set) may lose the writes its old master took last: after
//! a planned switch the old master takes writes until the controller moves, and a killed one
//! takes with it what it had not passed to its replica. So the owner of a node keeps every
//! event it applies until the replicas have a position past it (`Handover::recorded`, trusted
//! only once confirmed, see `node/fleet.rs`). When the store moves to another master, the owner
//! applies everything it kept again, *before* any newer event reaches the new master: what the
//! new master has changes nothing again (each member's facts carry the node's
//! `Event-Sequence`), and what it lost is written, announced, as the node did it. A newer event
//! written first would make the lost older ones stale, and they would go unannounced.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Supervisor;
use super::standby::Backlog;
use crate::conference::Observed;
use crate::esl::Client;
use crate::node::describe;
use crate::node::reconciler::RoomEffect;
use crate::store::Store;
use crate::store::fleet::NodePosition;

/// The longest pause between two attempts to store a batch of events (50 ms doubled up to it:
/// about 3 s in all, longer than a Sentinel failover's moment of errors).
const APPLY_RETRY_MAX: Duration = Duration::from_millis(1600);

/// What became of a batch.
enum Stored {
    Written(Vec<RoomEffect>),
    /// The store moved to another master meanwhile: everything kept is applied again.
    FailedOver,
    /// The lease lapsed while the store was asked again: the batch waits with what is kept
    /// on standby.
    Lapsed,
    Failed,
}

impl<S: Store> Supervisor<S> {
    /// Runs `f` on what this owner keeps (`None`: a store that cannot fail over, nothing kept).
    fn with_kept<T>(&self, f: impl FnOnce(&mut Backlog) -> T) -> Option<T> {
        self.kept.lock().ok()?.as_mut().map(f)
    }

    /// Keeps what this owner applies from `recorded` on (it takes the node over from there).
    pub(super) fn keep_from(&self, recorded: Option<&NodePosition>) {
        self.with_kept(|kept| *kept = Backlog::after(recorded.map(|r| r.sequence)));
    }

    /// What this owner kept, taken out (it hands the node over: the events the store may
    /// still lose go on being kept on standby).
    pub(super) fn take_kept(&self) -> Option<Backlog> {
        self.with_kept(std::mem::take)
    }

    /// Drops what the replicas have (`position`, confirmed) from what this owner keeps.
    pub(super) fn trim_kept(&self, position: &NodePosition) {
        self.with_kept(|kept| kept.trim(position, Instant::now()));
    }

    fn keep(&self, batch: &[Observed]) {
        self.with_kept(|kept| {
            let now = Instant::now();
            for observed in batch {
                kept.push(observed.clone(), now);
            }
        });
    }

    /// How many times the store has moved to another master (0 for a store that cannot).
    pub(super) fn failover_count(&self) -> u64 {
        self.failovers
            .lock()
            .ok()
            .and_then(|f| f.as_ref().map(|f| *f.borrow()))
            .unwrap_or(0)
    }

    /// Whether the store moved to another master since this was last asked.
    fn failed_over(&self) -> bool {
        let Ok(mut failovers) = self.failovers.lock() else {
            return false;
        };
        match failovers.as_mut() {
            Some(f) if f.has_changed().unwrap_or(false) => {
                f.borrow_and_update();
                true
            }
            _ => false,
        }
    }

    /// Applies a batch of facts (the first taken off the connection at `received`; `stamps`:
    /// when the node fired them, for the lag metric) and carries out their effects. A store
    /// that fails is asked again a few times (the node's events wait meanwhile: its connection
    /// pushes back), so a failover's moment of errors loses nothing; a store that moved to
    /// another master first has everything kept applied again. An empty batch only does that.
    pub(super) async fn apply(
        &self,
        batch: &[Observed],
        received: Instant,
        stamps: &[i64],
        commands: &[Client],
    ) {
        // Only on the strength of a lease that still holds by this process's clock (a pause
        // past it ends it): otherwise the batch waits with the events kept on standby.
        if !self.acting() {
            return self.lapse(batch);
        }
        self.keep(batch);
        if self.failed_over() {
            return self.apply_kept(commands).await;
        }
        if batch.is_empty() {
            return;
        }
        match self.store_batch(batch).await {
            Stored::Written(_) if self.reconciler.fencing.lost() => self.lapse(batch),
            Stored::Written(effects) => {
                self.written(batch, effects, commands);
                let node = self.config.prefix.as_str();
                crate::telemetry::events_applied(node, batch.len(), received.elapsed());
                crate::telemetry::reconciler_lag(node, stamps);
                self.reconciler
                    .stats
                    .record_lag(stamps, super::now_micros());
            }
            Stored::FailedOver => self.apply_kept(commands).await,
            Stored::Lapsed => self.lapse(batch),
            Stored::Failed => {}
        }
    }

    /// Whether this instance may act on the node's lease now (see `Handover::acting`: it owns
    /// the node, and the lease holds by this process's clock), with the lease's token handed
    /// to the reconciler's writes; not after a write under that token was refused (a later
    /// holder wrote first).
    pub(super) fn acting(&self) -> bool {
        let fencing = &self.reconciler.fencing;
        let grant = self.handover.acting_grant();
        let acting = match grant {
            Some(g) if !fencing.refuses(g.generation) => {
                fencing.token.store(g.generation, Ordering::Relaxed);
                true
            }
            _ => false,
        };
        // What is decided from here on is decided on this grant (the effects carry it).
        if let Ok(mut acted_on) = self.acted_on.lock() {
            *acted_on = grant.filter(|_| acting);
        }
        let owned = *self.handover.owns.borrow();
        let noted = self.lapse_noted.swap(owned && !acting, Ordering::Relaxed);
        if owned && !acting && !noted {
            crate::telemetry::lease_lapsed(self.config.prefix.as_str());
            tracing::warn!(node = %describe(&self.config), "this instance's lease of the node lapsed before it acted on it (a pause past it?), or a later holder wrote first: it stops acting until the lease is renewed");
        }
        acting
    }

    /// A batch this instance may not apply (its lease lapsed, or a later holder wrote): it
    /// waits with the events kept on standby, for this instance's next takeover.
    pub(super) fn lapse(&self, batch: &[Observed]) {
        if let Ok(mut lapsed) = self.lapsed.lock() {
            lapsed.extend(batch.iter().cloned());
        }
    }

    /// A batch stored: how far the node's events are applied, and their effects carried out.
    fn written(&self, batch: &[Observed], effects: Vec<RoomEffect>, commands: &[Client]) {
        if let Some(newest) = batch.iter().max_by_key(|o| o.sequence) {
            self.handover.applied(NodePosition {
                core: newest.core_uuid.clone(),
                sequence: newest.sequence,
            });
        }
        self.execute(effects, commands, super::effects::Basis::Lease)
    }

    /// Writes a batch, asking again while the store fails (unless it moves meanwhile).
    async fn store_batch(&self, batch: &[Observed]) -> Stored {
        let mut delay = Duration::from_millis(50);
        loop {
            match self
                .reconciler
                .apply_batch(batch, super::now_micros())
                .await
            {
                Ok(effects) => return Stored::Written(effects),
                Err(e) if delay <= APPLY_RETRY_MAX => {
                    tracing::warn!(node = %describe(&self.config), error = %e, retry_in = ?delay, "events not stored yet; trying again");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    if self.failed_over() {
                        return Stored::FailedOver;
                    }
                    if !self.acting() {
                        return Stored::Lapsed;
                    }
                }
                // The audit repairs what a failed write missed.
                Err(e) => {
                    tracing::warn!(node = %describe(&self.config), error = %e, "events not stored");
                    return Stored::Failed;
                }
            }
        }
    }

    /// After a store failover: applies again, in order, every event kept (all that the new
    /// master may lack). No resync follows at once: its snapshot would be newer than the events
    /// still on their way from the node (they waited while the store was away), which would
    /// then be stale, applied and never announced; the next audit repairs what no event
    /// covers (an API write the old master took last).
    async fn apply_kept(&self, commands: &[Client]) {
        'again: loop {
            let events = self.with_kept(|kept| kept.events()).unwrap_or_default();
            crate::telemetry::store_rewind(self.config.prefix.as_str());
            tracing::warn!(node = %describe(&self.config), events = events.len(), "the store failed over: applying again the events it may have lost");
            for chunk in events.chunks(512) {
                match self.store_batch(chunk).await {
                    // What is kept stays kept: the next owner (this one again, or another
                    // through the standby's backlog) applies it.
                    Stored::Written(_) if self.reconciler.fencing.lost() => return,
                    Stored::Lapsed => return,
                    Stored::Written(effects) => self.written(chunk, effects, commands),
                    Stored::FailedOver => continue 'again,
                    Stored::Failed => {}
                }
            }
            break;
        }
    }
}
