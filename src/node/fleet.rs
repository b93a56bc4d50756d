//! Controller instances on one store share the nodes (issue 19): each node's event stream is
//! applied by exactly one instance at a time — the one holding the node's lease in the store —
//! while every instance keeps command connections to every node (any instance serves any API
//! call). Nodes are spread evenly over the live instances: every instance computes the same
//! assignment from the same list of live instances ([`assign`]), takes the leases of its own
//! nodes, and gives up at once those assigned to another (a joining instance gets its share on
//! the others' next renewal). A stopped instance hands its nodes over as it leaves; a killed
//! one's leases run out after their time to live and its nodes go to the others, whose
//! supervisors resync them (nothing a node did meanwhile is lost: the resync repairs the store,
//! and the outbox keeps webhooks at least once, in each room's order).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::conference::NodePrefix;
use crate::store::fleet::Fleet;

/// Whether this instance applies a node's events.
pub struct Ownership;

impl Ownership {
    /// A controller alone: it applies every node's events, for good.
    pub fn sole() -> watch::Receiver<bool> {
        watch::channel(true).1
    }
}

/// How an instance takes part.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// This instance's id (unique per process start).
    pub instance: String,
    /// How long a heartbeat or a node lease lasts unless renewed (renewed every third of it).
    pub lease_ttl: Duration,
}

impl FleetConfig {
    pub fn new(lease_ttl: Duration) -> FleetConfig {
        FleetConfig {
            instance: uuid::Uuid::new_v4().simple().to_string(),
            lease_ttl,
        }
    }
}

/// FNV-1a: a hash every instance (whatever its build) computes alike.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Which live instance applies each node: the nodes, in name order, each to the instance that
/// ranks it highest (rendezvous hashing) among those below the even share
/// (`floor(nodes / instances)`); then the nodes left over, one each, to the instances ranking
/// them highest that have no extra node yet. So the shares differ by at most one, and a change
/// of instances moves few nodes. Every instance computes the same from the same lists.
pub fn assign<'a>(nodes: &[NodePrefix], live: &'a [String]) -> HashMap<NodePrefix, &'a str> {
    let mut out = HashMap::new();
    if live.is_empty() {
        return out;
    }
    let share = nodes.len() / live.len();
    let mut load: HashMap<&str, usize> = HashMap::new();
    let mut sorted: Vec<&NodePrefix> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut left_over = Vec::new();
    for cap in [share, share + 1] {
        for node in std::mem::take(&mut sorted) {
            let best = live
                .iter()
                .filter(|i| load.get(i.as_str()).copied().unwrap_or(0) < cap)
                .max_by_key(|i| (fnv(&[node.as_str(), i]), i.as_str()));
            match best {
                Some(best) => {
                    *load.entry(best.as_str()).or_default() += 1;
                    out.insert(node.clone(), best.as_str());
                }
                None => left_over.push(node),
            }
        }
        sorted = std::mem::take(&mut left_over);
    }
    out
}

/// How many fleet tasks of this process have not left yet (see [`departed`]).
static TAKING_PART: std::sync::LazyLock<watch::Sender<usize>> =
    std::sync::LazyLock::new(|| watch::channel(0).0);

/// Waits (at most `limit`) until every fleet task of this process, once stopped, has handed
/// its nodes over and left: a stopping process calls it before it exits.
pub async fn departed(limit: Duration) {
    let mut rx = TAKING_PART.subscribe();
    let _ = tokio::time::timeout(limit, rx.wait_for(|n| *n == 0)).await;
}

/// Takes part in the fleet until `stop`: heartbeats, the leases of this instance's nodes, and
/// `owns` (one sender per node) told what this instance applies. When stopped it gives its
/// leases up and leaves, so the others take its nodes on their next renewal.
pub fn start<F: Fleet>(
    store: Arc<F>,
    config: FleetConfig,
    owns: Vec<(NodePrefix, watch::Sender<bool>)>,
    stop: CancellationToken,
) {
    TAKING_PART.send_modify(|n| *n += 1);
    tokio::spawn(async move {
        let ttl = config.lease_ttl.max(Duration::from_millis(300));
        let me = config.instance.as_str();
        let nodes: Vec<NodePrefix> = owns.iter().map(|(n, _)| n.clone()).collect();
        let mut tick = tokio::time::interval(ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When each held lease was last renewed: past its time to live it is not ours.
        let mut renewed: HashMap<NodePrefix, Instant> = HashMap::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let started = Instant::now();
            let live = match store.heartbeat(me, ttl).await {
                Ok(mut live) => {
                    if !live.iter().any(|i| i == me) {
                        live.push(me.to_owned());
                        live.sort();
                    }
                    Some(live)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fleet heartbeat failed; keeping what this instance holds until its leases run out");
                    None
                }
            };
            let assigned = live.as_deref().map(|live| assign(&nodes, live));
            for (node, tx) in &owns {
                let mine = assigned.as_ref().map(|a| a.get(node).copied() == Some(me));
                let held = match mine {
                    Some(true) => match store.node_lease(node, me, ttl).await {
                        Ok(true) => {
                            renewed.insert(node.clone(), started);
                            true
                        }
                        Ok(false) => false,
                        Err(_) => renewed.get(node).is_some_and(|t| t.elapsed() < ttl),
                    },
                    Some(false) => {
                        if renewed.remove(node).is_some() {
                            let _ = store.node_lease(node, me, Duration::ZERO).await;
                        }
                        false
                    }
                    None => renewed.get(node).is_some_and(|t| t.elapsed() < ttl),
                };
                if !held {
                    renewed.remove(node);
                }
                tx.send_if_modified(|owned| {
                    let changed = *owned != held;
                    *owned = held;
                    changed
                });
                crate::telemetry::node_owned(node.as_str(), held);
            }
        }
        for (node, tx) in &owns {
            tx.send_replace(false);
            if renewed.contains_key(node) {
                let _ = store.node_lease(node, me, Duration::ZERO).await;
            }
        }
        let _ = store.heartbeat(me, Duration::ZERO).await;
        tracing::info!(instance = %me, "controller instance left the fleet; its nodes are handed over");
        TAKING_PART.send_modify(|n| *n = n.saturating_sub(1));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<NodePrefix> {
        (1..=n)
            .map(|i| NodePrefix::parse(&format!("nd{i:03}")).unwrap())
            .collect()
    }

    #[test]
    fn nodes_are_spread_evenly_and_alike_everywhere() {
        let live: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        for n in 1..12 {
            let nodes = nodes(n);
            let a = assign(&nodes, &live);
            assert_eq!(a.len(), n);
            let mut load: HashMap<&str, usize> = HashMap::new();
            for owner in a.values() {
                *load.entry(owner).or_default() += 1;
            }
            let (min, max) = (
                live.iter()
                    .map(|i| load.get(i.as_str()).copied().unwrap_or(0))
                    .min(),
                live.iter()
                    .map(|i| load.get(i.as_str()).copied().unwrap_or(0))
                    .max(),
            );
            assert!(max.unwrap() - min.unwrap() <= 1, "{n} nodes: {load:?}");
            assert_eq!(a, assign(&nodes, &live), "deterministic");
        }
    }

    #[test]
    fn an_instance_leaving_moves_only_its_nodes() {
        let nodes = nodes(6);
        let three: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let two: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let before = assign(&nodes, &three);
        let after = assign(&nodes, &two);
        let moved = nodes
            .iter()
            .filter(|n| before[*n] != "c" && before[*n] != after[*n])
            .count();
        assert!(moved <= 1, "{before:?} → {after:?}");
        assert!(after.values().all(|o| *o != "c"));
    }
}
