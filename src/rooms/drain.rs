//! Taking a media node out of service: a draining node takes no new rooms and places no new
//! dial-outs; its rooms go on, and its callers can still join rooms here or on other nodes.
//! The mark is kept in the store, so every controller instance of a fleet honours it at once.

use super::{Rooms, ServiceError};
use crate::conference::NodePrefix;
use crate::node::NodeError;
use crate::store::{Drain, Store};

impl<S: Store> Rooms<S> {
    /// Marks a configured node draining (again: the first mark's time stays); the mark.
    pub async fn drain(&self, node: &NodePrefix, migrate: bool) -> Result<Drain, ServiceError> {
        self.pool.get(node)?;
        let since = match self.store.draining().await?.remove(node) {
            Some(d) => d.since,
            None => crate::node::supervisor::now_micros(),
        };
        let drain = Drain { since, migrate };
        self.store.set_draining(node, Some(&drain)).await?;
        if migrate {
            self.migrations.notify_one();
        }
        tracing::info!(node = %node, migrate, "media node draining: no new rooms or dial-outs");
        Ok(drain)
    }

    /// Takes a configured node back into service.
    pub async fn undrain(&self, node: &NodePrefix) -> Result<(), ServiceError> {
        self.pool.get(node)?;
        self.store.set_draining(node, None).await?;
        tracing::info!(node = %node, "media node back in service");
        Ok(())
    }

    /// Moves the rooms of every node draining with `migrate` (see `migrate.rs`), one room at a
    /// time, until `stop`: every controller instance runs this; a room's move is held by one.
    pub async fn run_migrations(&self, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
                _ = self.migrations.notified() => {}
            }
            let Ok(draining) = self.store.draining().await else {
                continue;
            };
            for (node, _) in draining.iter().filter(|(_, d)| d.migrate) {
                if let Err(e) = self.migrate_node(node).await {
                    tracing::warn!(node = %node, error = %e, "rooms could not be moved off a draining node; retrying");
                }
            }
        }
    }

    /// Refuses new work on a draining node (a 503: retry, it lands elsewhere or after).
    pub(super) async fn refuse_if_draining(&self, node: &NodePrefix) -> Result<(), ServiceError> {
        if self.store.draining().await?.contains_key(node) {
            return Err(NodeError::Draining(node.to_string()).into());
        }
        Ok(())
    }
}
