//! Starting and stopping node supervisors while the controller runs: the configured nodes at
//! start, and those a configuration reload adds or removes. Each node gets its supervisor (with
//! its own stop), a place in the pool the room service places rooms from, and, in a fleet, a
//! seat in the leases (see `fleet.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::fleet::{Handover, Seat, SeatChange};
use super::supervisor::{self, Peers};
use super::{AppDirectory, NodeConfig, NodePool};
use crate::conference::NodePrefix;
use crate::store::Store;

pub struct Spawner<S> {
    store: Arc<S>,
    apps: Arc<AppDirectory>,
    peers: Peers,
    pool: NodePool,
    /// The fleet task's seats (`None`: a controller alone, which applies every node).
    fleet: Option<UnboundedSender<SeatChange>>,
    stop: CancellationToken,
    running: Mutex<HashMap<NodePrefix, CancellationToken>>,
}

impl<S: Store> Spawner<S> {
    /// A spawner over an empty pool; `fleet`: where new nodes' seats go.
    pub fn new(
        store: Arc<S>,
        apps: Arc<AppDirectory>,
        fleet: Option<UnboundedSender<SeatChange>>,
        stop: CancellationToken,
    ) -> Spawner<S> {
        let pool = NodePool::default();
        let peers = Peers::default();
        let _ = peers.set(pool.clone());
        Spawner {
            store,
            apps,
            peers,
            pool,
            fleet,
            stop,
            running: Mutex::default(),
        }
    }

    /// The applications' directory the supervisors share.
    pub fn apps(&self) -> Arc<AppDirectory> {
        self.apps.clone()
    }

    /// The pool of the nodes running.
    pub fn pool(&self) -> NodePool {
        self.pool.clone()
    }

    /// Starts a node's supervisor with `handover` (its seat already given to the fleet, or
    /// [`Handover::sole`]) and puts the node in the pool.
    pub fn start_with(&self, config: NodeConfig, handover: Handover) {
        let prefix = config.prefix.clone();
        let stop = self.stop.child_token();
        let (handle, _) = supervisor::spawn_among(
            config,
            self.store.clone(),
            self.apps.clone(),
            self.peers.clone(),
            handover,
            stop.clone(),
        );
        if let Ok(mut running) = self.running.lock() {
            running.insert(prefix, stop);
        }
        self.pool.add(handle);
    }

    /// Adds a node while the controller runs (a reload): in a fleet, its seat joins the leases.
    pub fn add(&self, config: NodeConfig) {
        let handover = match &self.fleet {
            Some(fleet) => {
                let (seat, handover) = Seat::pair(config.prefix.clone());
                let _ = fleet.send(SeatChange::Add(seat));
                handover
            }
            None => Handover::sole(),
        };
        tracing::info!(node = %super::describe(&config), "media node added");
        self.start_with(config, handover);
    }

    /// Takes a node out of the pool and stops its supervisor (its lease given up in a fleet).
    pub fn remove(&self, node: &NodePrefix) {
        self.pool.remove(node);
        if let Some(fleet) = &self.fleet {
            let _ = fleet.send(SeatChange::Remove(node.clone()));
        }
        let stop = self.running.lock().ok().and_then(|mut r| r.remove(node));
        if let Some(stop) = stop {
            stop.cancel();
        }
        tracing::info!(node = %node, "media node removed");
    }
}
