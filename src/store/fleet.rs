//! What controller instances sharing one store agree on (issue 19): which instances are live,
//! and which one applies each node's events. An instance renews its heartbeat every third of
//! its time to live and counts as live until it runs out; a node's lease says which instance
//! applies that node's event stream (renewed the same way, taken by another instance when it
//! runs out or is handed over).
//!
//! Redis keys (global, one key each, so every script stays in one slot on a cluster):
//! `sy:fleet:instances` (zset of instance ids scored by expiry, Redis's clock) and
//! `sy:fleet:node:<prefix>` (string with PX: the instance applying the node).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::Script;

use super::StoreError;
use super::memory::MemoryStore;
use super::redis::RedisStore;
use crate::conference::NodePrefix;

/// The fleet's records in a store.
pub trait Fleet: Send + Sync + 'static {
    /// Renews `instance` as live for `ttl` (`Duration::ZERO`: it leaves); the live instances,
    /// sorted.
    fn heartbeat(
        &self,
        instance: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Takes or renews the lease of `node` for `holder`, for `ttl` (`Duration::ZERO`: gives it
    /// up, if held): true if `holder` holds it now.
    fn node_lease(
        &self,
        node: &NodePrefix,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

const INSTANCES: &str = "sy:fleet:instances";

fn node_key(node: &NodePrefix) -> String {
    format!("sy:fleet:node:{node}")
}

impl Fleet for RedisStore {
    async fn heartbeat(&self, instance: &str, ttl: Duration) -> Result<Vec<String>, StoreError> {
        static SCRIPT: std::sync::LazyLock<Script> =
            std::sync::LazyLock::new(|| Script::new(include_str!("lua/heartbeat.lua")));
        SCRIPT
            .key(INSTANCES)
            .arg(instance)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.connection())
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn node_lease(
        &self,
        node: &NodePrefix,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let ms = match ttl.is_zero() {
            true => 0,
            false => ttl.as_millis().max(1) as u64,
        };
        let held: i64 = self
            .lease_script()
            .key(node_key(node))
            .arg(holder)
            .arg(ms)
            .invoke_async(&mut self.connection())
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(held == 1)
    }
}

/// The memory store's fleet: one process, so one instance in practice (tests run several
/// controllers on one memory store).
#[derive(Default)]
pub(crate) struct MemoryFleet {
    inner: Mutex<FleetState>,
}

#[derive(Default)]
struct FleetState {
    instances: HashMap<String, Instant>,
    leases: HashMap<NodePrefix, (String, Instant)>,
}

impl MemoryFleet {
    fn lock(&self) -> MutexGuard<'_, FleetState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Fleet for MemoryStore {
    async fn heartbeat(&self, instance: &str, ttl: Duration) -> Result<Vec<String>, StoreError> {
        let mut s = self.fleet().lock();
        let now = Instant::now();
        if ttl.is_zero() {
            s.instances.remove(instance);
        } else {
            s.instances.insert(instance.to_owned(), now + ttl);
        }
        s.instances.retain(|_, until| *until > now);
        let mut live: Vec<String> = s.instances.keys().cloned().collect();
        live.sort();
        Ok(live)
    }

    async fn node_lease(
        &self,
        node: &NodePrefix,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut s = self.fleet().lock();
        let now = Instant::now();
        let held_by_other = s
            .leases
            .get(node)
            .is_some_and(|(h, until)| h != holder && *until > now);
        if ttl.is_zero() {
            if s.leases.get(node).is_some_and(|(h, _)| h == holder) {
                s.leases.remove(node);
            }
            return Ok(false);
        }
        if held_by_other {
            return Ok(false);
        }
        s.leases
            .insert(node.clone(), (holder.to_owned(), now + ttl));
        Ok(true)
    }
}
