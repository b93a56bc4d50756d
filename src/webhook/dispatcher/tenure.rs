//! The dispatcher's hold on its app's webhook lease (issue 57): the [`Fence`] every write it
//! makes carries (the store refuses it once another holder, or a later take of the same one,
//! has the lease), and until when, by this process's monotonic clock, it may act on the lease.
//!
//! A process that was paused (stopped, starved, migrated) finds its hold lapsed as soon as it
//! runs again, whatever its tasks do first: the clock counted the pause. Before it sends a
//! webhook it checks ([`Tenure::confirmed`]); a lapsed hold sends nothing until a renewal says
//! the lease is still held under the same generation. A renewal that finds another generation
//! (the lease was lost and taken again) or another holder ends the term: what was in flight is
//! dropped, and the next term starts from the position the store holds.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::conference::AppId;
use crate::store::{Fence, Store, StoreError, lease_holds_for};

/// One term of leading: the lease as taken, kept by renewals.
pub(in crate::webhook) struct Tenure {
    fence: Fence,
    ttl: Duration,
    /// Until when the lease may be acted on: from just before the request that took or renewed
    /// it was sent (the store started it later still), its time to live less a margin ([`lease_holds_for`]).
    until: watch::Sender<Instant>,
    /// A renewal asked for now (a check found the hold lapsed).
    urgent: Notify,
    /// Cancelled when the term ends: the lease is lost, a write was refused, or the
    /// dispatcher stops.
    term: CancellationToken,
}

impl Tenure {
    /// The term of a lease taken for `ttl` with `fence`, asked for at `asked`; it ends with
    /// `term`.
    pub(in crate::webhook) fn new(
        fence: Fence,
        ttl: Duration,
        asked: Instant,
        term: CancellationToken,
    ) -> Arc<Tenure> {
        Arc::new(Tenure {
            fence,
            ttl,
            until: watch::Sender::new(asked + lease_holds_for(ttl)),
            urgent: Notify::new(),
            term,
        })
    }

    /// What the writes of this term carry.
    pub(in crate::webhook) fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Cancelled when the term ends.
    pub(in crate::webhook) fn term(&self) -> &CancellationToken {
        &self.term
    }

    /// True once the lease may be acted on now: at once if the hold has not lapsed, else after
    /// a renewal (asked for now) under the same generation. False when the term ended
    /// instead: nothing may be sent or written on its strength.
    pub(in crate::webhook) async fn confirmed(&self) -> bool {
        let mut until = self.until.subscribe();
        loop {
            if self.term.is_cancelled() {
                return false;
            }
            if Instant::now() < *until.borrow_and_update() {
                return true;
            }
            self.urgent.notify_one();
            tokio::select! {
                () = self.term.cancelled() => return false,
                changed = until.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                }
            }
        }
    }

    /// Ends the term if `e` says the store refused a write of it: true then. The dispatcher
    /// stops leading at once; it leads again from the position the store holds.
    pub(in crate::webhook) fn refused(&self, e: &StoreError) -> bool {
        if !matches!(e, StoreError::Fenced(_)) {
            return false;
        }
        if !self.term.is_cancelled() {
            tracing::warn!(error = %e, "the store refused a webhook write: this instance lost the lease; it stops delivering");
            self.term.cancel();
        }
        true
    }

    /// Renews the lease every third of its time to live, and at once when a check finds the
    /// hold lapsed, until the term ends; ends it when the lease is lost (another holder, or
    /// another generation: lost and taken again in between) or could not be renewed before
    /// the hold lapsed.
    pub(in crate::webhook) async fn renew<S: Store>(self: Arc<Self>, store: Arc<S>, app: AppId) {
        let Fence {
            lease,
            holder,
            generation,
        } = &self.fence;
        loop {
            tokio::select! {
                () = self.term.cancelled() => return,
                () = tokio::time::sleep(self.ttl / 3) => {}
                () = self.urgent.notified() => {}
            }
            let asked = Instant::now();
            match store.lease(&app, lease, holder, self.ttl).await {
                Ok(Some(g)) if g == *generation => {
                    let until = asked + lease_holds_for(self.ttl);
                    self.until.send_replace(until);
                }
                Ok(Some(g)) => {
                    tracing::warn!(
                        generation = g,
                        was = generation,
                        "the webhook lease lapsed and was taken again: what was in flight is dropped"
                    );
                    self.term.cancel();
                    return;
                }
                Ok(None) => {
                    self.term.cancel();
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the webhook lease");
                    if Instant::now() + self.ttl / 3 >= *self.until.borrow() {
                        self.term.cancel();
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::Deliveries;
    use crate::store::memory::MemoryStore;

    const LEASE: &str = "webhooks";

    fn app() -> AppId {
        AppId::parse("tenure-app").unwrap()
    }

    /// A term of `holder` on a lease it just took (the store's leases run on the real clock,
    /// for ten seconds; the hold on tokio's paused one).
    async fn taken(store: &MemoryStore, holder: &str) -> Arc<Tenure> {
        let ttl = Duration::from_secs(10);
        let generation = store.lease(&app(), LEASE, holder, ttl).await.unwrap();
        let fence = Fence {
            lease: LEASE.into(),
            holder: holder.into(),
            generation: generation.unwrap(),
        };
        Tenure::new(fence, ttl, Instant::now(), CancellationToken::new())
    }

    /// A process paused past its hold acts on nothing until a renewal confirms it under the
    /// same generation.
    #[tokio::test(start_paused = true)]
    async fn a_lapsed_hold_waits_for_a_renewal() {
        let store = Arc::new(MemoryStore::new());
        let tenure = taken(&store, "one").await;
        assert!(tenure.confirmed().await);
        tokio::time::advance(tenure.ttl).await;
        let waited = tokio::time::timeout(Duration::from_secs(1), tenure.confirmed()).await;
        assert!(waited.is_err(), "confirmed with nobody renewing");
        let renewing = tokio::spawn(tenure.clone().renew(store.clone(), app()));
        assert!(tenure.confirmed().await);
        assert!(!tenure.term().is_cancelled());
        tenure.term().cancel();
        renewing.await.unwrap();
    }

    /// A renewal that finds the lease taken again under another generation (it lapsed in the
    /// store meanwhile), or held by another holder, ends the term: nothing is confirmed.
    #[tokio::test(start_paused = true)]
    async fn a_lease_lost_in_between_ends_the_term() {
        let store = Arc::new(MemoryStore::new());
        for other in [None, Some("two")] {
            let tenure = taken(&store, "one").await;
            store.release_lease(&app(), LEASE, "one").await.unwrap();
            if let Some(other) = other {
                let ttl = Duration::from_secs(10);
                assert!(
                    store
                        .lease(&app(), LEASE, other, ttl)
                        .await
                        .unwrap()
                        .is_some()
                );
            }
            let renewing = tokio::spawn(tenure.clone().renew(store.clone(), app()));
            tokio::time::advance(tenure.ttl).await;
            assert!(
                !tenure.confirmed().await,
                "confirmed after {other:?} took the lease"
            );
            assert!(tenure.term().is_cancelled());
            renewing.await.unwrap();
            store.release_lease(&app(), LEASE, "two").await.unwrap();
        }
    }

    /// A write the store refused for its fence ends the term; another error does not.
    #[tokio::test]
    async fn a_refused_write_ends_the_term() {
        let store = MemoryStore::new();
        let tenure = taken(&store, "one").await;
        assert!(!tenure.refused(&StoreError::Unavailable("down".into())));
        assert!(!tenure.term().is_cancelled());
        assert!(tenure.refused(&StoreError::Fenced("lost".into())));
        assert!(tenure.term().is_cancelled());
        assert!(!tenure.confirmed().await);
    }
}
