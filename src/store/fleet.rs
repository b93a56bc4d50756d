//! What controller instances sharing one store agree on (issue 19): which instances are live,
//! and which one applies each node's events. An instance renews its heartbeat every third of
//! its time to live and counts as live until it runs out; a node's lease says which instance
//! applies that node's event stream (renewed the same way, taken by another instance when it
//! runs out or is handed over).
//!
//! A node's lease also carries how far its holder has applied the node's event stream (a
//! [`NodePosition`], recorded with each renewal and with the release): the instance that takes
//! the node over replays, from the events it kept while on standby, what followed.
//!
//! Redis keys (global, so every script stays in one slot on a cluster):
//! `sy:fleet:instances` (zset of instance ids scored by expiry, Redis's clock),
//! `sy:fleet:node:<prefix>` (string with PX: the instance applying the node) and
//! `{sy:fleet:node:<prefix>}:applied` (its position, in the lease key's slot; kept a day) and
//! `{sy:fleet:node:<prefix>}:gen` (the lease's generation, its fencing token: one more at each
//! take).

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
    /// up, if held), recording `applied` (how far the holder has applied the node's events)
    /// when `holder` holds it: whether `holder` holds it now, the position recorded (by the
    /// holder, or by the instance that held it before), and the lease's generation.
    fn node_lease(
        &self,
        node: &NodePrefix,
        holder: &str,
        ttl: Duration,
        applied: Option<&NodePosition>,
    ) -> impl Future<Output = Result<NodeLease, StoreError>> + Send;

    /// The same records over connections of their own, made on the calling runtime (`None`:
    /// this store serves as it is). The fleet's renewals run on a thread of their own, so that
    /// a saturated process still renews its leases in time: their round trips must not wait
    /// for the busy runtime to drive a shared connection.
    fn apart(&self) -> impl Future<Output = Option<Self>> + Send
    where
        Self: Sized,
    {
        async { None }
    }
}

/// A node's lease as [`Fleet::node_lease`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLease {
    /// Whether the asking instance holds it now.
    pub held: bool,
    /// The position its holder recorded last (see [`NodePosition`]).
    pub recorded: Option<NodePosition>,
    /// How many times the lease has been taken (a renewal does not count): the fencing token
    /// of what its holder does on the strength of it. Every take makes a greater one, so a
    /// holder that lost the lease carries a token older than its successor's.
    pub generation: u64,
}

/// How far a node's event stream has been applied: the newest `Event-Sequence` of the
/// FreeSWITCH process `core`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePosition {
    pub core: String,
    pub sequence: u64,
}

impl NodePosition {
    fn encode(&self) -> String {
        format!("{} {}", self.core, self.sequence)
    }

    fn parse(s: &str) -> Option<NodePosition> {
        let (core, sequence) = s.split_once(' ')?;
        Some(NodePosition {
            core: core.to_owned(),
            sequence: sequence.parse().ok()?,
        })
    }
}

const INSTANCES: &str = "sy:fleet:instances";

fn node_key(node: &NodePrefix) -> String {
    format!("sy:fleet:node:{node}")
}

/// The key of a node's recorded position: the lease key as hash tag, so both share a slot.
fn position_key(node: &NodePrefix) -> String {
    format!("{{sy:fleet:node:{node}}}:applied")
}

/// The key of a node lease's generation (its fencing token), in the lease key's slot.
fn generation_key(node: &NodePrefix) -> String {
    format!("{{sy:fleet:node:{node}}}:gen")
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
        applied: Option<&NodePosition>,
    ) -> Result<NodeLease, StoreError> {
        static SCRIPT: std::sync::LazyLock<Script> =
            std::sync::LazyLock::new(|| Script::new(include_str!("lua/node_lease.lua")));
        let ms = match ttl.is_zero() {
            true => 0,
            false => ttl.as_millis().max(1) as u64,
        };
        let (held, recorded, generation): (i64, Option<String>, u64) = SCRIPT
            .key(node_key(node))
            .key(position_key(node))
            .key(generation_key(node))
            .arg(holder)
            .arg(ms)
            .arg(applied.map(NodePosition::encode).unwrap_or_default())
            .invoke_async(&mut self.connection())
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(NodeLease {
            held: held == 1,
            recorded: recorded.as_deref().and_then(NodePosition::parse),
            generation,
        })
    }

    async fn apart(&self) -> Option<RedisStore> {
        match RedisStore::apart(self).await {
            Ok(store) => Some(store),
            Err(e) => {
                tracing::warn!(error = %e, "the fleet's own Redis connection could not be made; its renewals share the store's");
                None
            }
        }
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
    positions: HashMap<NodePrefix, NodePosition>,
    generations: HashMap<NodePrefix, u64>,
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
        applied: Option<&NodePosition>,
    ) -> Result<NodeLease, StoreError> {
        let mut s = self.fleet().lock();
        let now = Instant::now();
        let lease = s.leases.get(node).filter(|(_, until)| *until > now);
        let mine = lease.is_some_and(|(h, _)| h == holder);
        let held_by_other = lease.is_some() && !mine;
        if let (true, Some(applied)) = (mine, applied) {
            s.positions.insert(node.clone(), applied.clone());
        }
        let recorded = s.positions.get(node).cloned();
        let mut generation = s.generations.get(node).copied().unwrap_or(0);
        let lease = |held, generation| NodeLease {
            held,
            recorded: recorded.clone(),
            generation,
        };
        if ttl.is_zero() {
            if mine {
                s.leases.remove(node);
            }
            return Ok(lease(false, generation));
        }
        if held_by_other {
            return Ok(lease(false, generation));
        }
        if !mine {
            generation += 1;
            s.generations.insert(node.clone(), generation);
        }
        s.leases
            .insert(node.clone(), (holder.to_owned(), now + ttl));
        Ok(lease(true, generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_reads_back_as_written() {
        let p = NodePosition {
            core: "3f1c-core".into(),
            sequence: 18_446_744_073_709_551_615,
        };
        assert_eq!(NodePosition::parse(&p.encode()), Some(p));
        assert_eq!(NodePosition::parse("core"), None);
        assert_eq!(NodePosition::parse("core x"), None);
    }
}
