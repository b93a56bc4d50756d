//! Controller instances on one store share the nodes (issue 19): each node's event stream is
//! applied by exactly one instance at a time — the one holding the node's lease in the store —
//! while every instance keeps command connections to every node (any instance serves any API
//! call). Nodes are spread evenly over the live instances: every instance computes the same
//! assignment from the same list of live instances ([`assign`]), takes the leases of its own
//! nodes, and gives up at once those assigned to another (a joining instance gets its share on
//! the others' next renewal). A stopped instance hands its nodes over as it leaves; a killed
//! one's leases run out after their time to live and its nodes go to the others.
//!
//! Nothing the node does between two owners is lost (issue 35): every instance listens to every
//! node's events, the owner applying them, the others keeping them (hot standby, see
//! `supervisor/standby.rs`). The owner records with each renewal of a node's lease how far it
//! has applied the node's stream (a [`NodePosition`]), and with the release when it hands the
//! node over; the next owner replays what it kept from there on, then resyncs. Events applied
//! twice (those between the last recorded position and where a killed owner really stopped)
//! change nothing the second time: the rooms keep the node's `Event-Sequence` marks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::conference::NodePrefix;
use crate::store::fleet::{Fleet, NodeLease, NodePosition};
use crate::store::{Store, StoreError};

/// Whether this instance applies a node's events.
pub struct Ownership;

impl Ownership {
    /// A controller alone: it applies every node's events, for good.
    pub fn sole() -> watch::Receiver<bool> {
        watch::channel(true).1
    }
}

/// The lease this instance holds on a node, as the fleet last renewed it (issue 57).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The lease's generation: the fencing token of what is done on its strength (the rooms
    /// it writes refuse an older one, `conference::Room::fences`).
    pub generation: u64,
    /// Until when this instance may act on it, by its own monotonic clock: from just before the
    /// renewal was asked (the store started the lease later still), the lease's time to live
    /// less a margin. `None`: for good (a controller alone).
    pub until: Option<Instant>,
}

impl Grant {
    /// A controller alone: every node is its own, for good, with no token to carry.
    pub const SOLE: Grant = Grant {
        generation: 0,
        until: None,
    };

    /// Whether it still holds at `now`. A process that was paused (stopped, starved, migrated)
    /// finds it lapsed as soon as it runs again, whatever its tasks do first: its monotonic
    /// clock counted the pause.
    pub fn holds(&self, now: Instant) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

/// The lease an act was decided on, checked again when the act reaches the node: a
/// supervisor's effects run on tasks of their own, and a process paused between deciding an
/// effect and sending its commands must not send them on a lease it has lost since.
#[derive(Debug, Clone)]
pub struct Mandate {
    /// The grant the act was decided on.
    pub grant: Grant,
    /// The grant as the fleet renews it.
    current: watch::Receiver<Option<Grant>>,
}

impl Mandate {
    /// Whether the lease still holds now, by this process's clock: as renewed since, while the
    /// fleet renews it under the same generation; else (handed over, or taken by another) until
    /// the decision's own grant runs out. A process paused past its lease finds both run out
    /// (its clock counted the pause); a lease taken again after losing it is another
    /// generation, and what was decided on the first is not carried out on the second. A node
    /// given up in an orderly handover keeps the rest of its decision's grant, as its room
    /// writes did.
    pub fn holds(&self) -> bool {
        let now = Instant::now();
        match *self.current.borrow() {
            Some(g) if g.generation == self.grant.generation => g.holds(now),
            _ => self.grant.holds(now),
        }
    }
}

/// The supervisor's side of a node in the fleet.
#[derive(Debug)]
pub struct Handover {
    /// Whether this instance applies the node's events.
    pub owns: watch::Receiver<bool>,
    /// The lease while this instance holds it (sent with every renewal): what it may act on,
    /// until when, with which token. `owns` alone is not enough: a process paused past its
    /// lease still says it owns the node until its fleet task runs again.
    pub grant: watch::Receiver<Option<Grant>>,
    /// How far this instance has applied the node's events, while it owns the node (the fleet
    /// records it with each lease renewal).
    pub applied: Arc<Mutex<Option<NodePosition>>>,
    /// The position the store holds for the node (read with each lease attempt): where the
    /// owner stood at its last renewal, or where the previous owner stopped.
    pub recorded: watch::Receiver<Option<NodePosition>>,
    /// Set once the supervisor has either started keeping the node's events or found the node
    /// unreachable: an instance joins the fleet (and so is handed nodes) only after that.
    pub ready: watch::Sender<bool>,
    /// The first event this instance heard on the node's event connection (set before
    /// `ready`): a joining instance waits until the owner has applied up to it, so that what
    /// it kept covers everything the owner hands it.
    pub listening: Arc<Mutex<Option<NodePosition>>>,
}

impl Handover {
    /// A controller alone: it applies every node's events, for good.
    pub fn sole() -> Handover {
        Handover {
            owns: Ownership::sole(),
            grant: watch::channel(Some(Grant::SOLE)).1,
            applied: Arc::default(),
            recorded: watch::channel(None).1,
            ready: watch::channel(false).0,
            listening: Arc::default(),
        }
    }

    /// Records that this instance has applied the node's events up to `position` (kept only
    /// if newer than what was recorded for the same process).
    pub fn applied(&self, position: NodePosition) {
        if let Ok(mut applied) = self.applied.lock() {
            let newer = applied
                .as_ref()
                .is_none_or(|a| a.core != position.core || a.sequence < position.sequence);
            if newer {
                *applied = Some(position);
            }
        }
    }

    /// The lease's token if this instance may act on the node now: it owns it and its grant
    /// has not lapsed (see [`Grant::holds`]).
    pub fn acting(&self) -> Option<u64> {
        self.acting_grant().map(|g| g.generation)
    }

    /// The grant this instance may act on now: it owns the node and the grant has not lapsed
    /// (see [`Grant::holds`]).
    pub fn acting_grant(&self) -> Option<Grant> {
        if !*self.owns.borrow() {
            return None;
        }
        self.grant.borrow().filter(|g| g.holds(Instant::now()))
    }

    /// What an act decided on `grant` carries to what it does later, from another task (see
    /// [`Mandate`]).
    pub fn mandate(&self, grant: Grant) -> Mandate {
        Mandate {
            grant,
            current: self.grant.clone(),
        }
    }

    /// Forgets what this instance applied (it hands the node over, or the connection is new).
    pub fn forget(&self) {
        if let Ok(mut applied) = self.applied.lock() {
            *applied = None;
        }
    }
}

/// The fleet task's side of a node.
pub struct Seat {
    node: NodePrefix,
    owns: watch::Sender<bool>,
    grant: watch::Sender<Option<Grant>>,
    applied: Arc<Mutex<Option<NodePosition>>>,
    recorded: watch::Sender<Option<NodePosition>>,
    ready: watch::Receiver<bool>,
    listening: Arc<Mutex<Option<NodePosition>>>,
}

impl Seat {
    /// A node's seat in the fleet, and the supervisor's side of it.
    pub fn pair(node: NodePrefix) -> (Seat, Handover) {
        let (owns_tx, owns) = watch::channel(false);
        let (grant_tx, grant) = watch::channel(None);
        let (recorded_tx, recorded) = watch::channel(None);
        let (ready, ready_rx) = watch::channel(false);
        let applied = Arc::<Mutex<Option<NodePosition>>>::default();
        let listening = Arc::<Mutex<Option<NodePosition>>>::default();
        let seat = Seat {
            node,
            owns: owns_tx,
            grant: grant_tx,
            applied: applied.clone(),
            recorded: recorded_tx,
            ready: ready_rx,
            listening: listening.clone(),
        };
        let handover = Handover {
            owns,
            grant,
            applied,
            recorded,
            ready,
            listening,
        };
        (seat, handover)
    }

    fn applied(&self) -> Option<NodePosition> {
        self.applied.lock().ok().and_then(|a| a.clone())
    }

    /// Where the owner recorded it stood, read from the store, when it has not yet applied
    /// up to the first event this instance heard (so a handover now would leave a gap).
    async fn behind<F: Fleet>(&self, store: &F, me: &str) -> Option<NodePosition> {
        let first = self.listening.lock().ok().and_then(|l| l.clone())?;
        let lease = store
            .node_lease(&self.node, me, Duration::ZERO, None)
            .await
            .ok()?;
        lease
            .recorded
            .filter(|r| r.core == first.core && r.sequence.saturating_add(1) < first.sequence)
    }

    /// Gives the node up here: no grant, not owned.
    fn vacate(&self) {
        self.grant.send_replace(None);
        self.owns.send_replace(false);
    }

    fn record(&self, recorded: Option<NodePosition>) {
        self.recorded.send_if_modified(|r| {
            let changed = *r != recorded;
            *r = recorded;
            changed
        });
    }
}

/// A node joining or leaving the fleet's leases while the instance runs (a reload).
pub enum SeatChange {
    Add(Seat),
    Remove(NodePrefix),
}

/// Which live instance each node is assigned to ([`assign`]), as this instance last computed
/// it: the API sends a member command to the instance that applies its node
/// (`api/forward.rs`).
pub type Owners = Arc<arc_swap::ArcSwap<HashMap<NodePrefix, String>>>;

/// How an instance takes part.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// This instance's id (unique per process start): a random id, then `@` and the URL the
    /// other instances reach its API at, when it has one ([`FleetConfig::reached_at`]).
    pub instance: String,
    /// How long a heartbeat or a node lease lasts unless renewed (renewed every third of it).
    pub lease_ttl: Duration,
    /// Where the fleet's task publishes each node's instance.
    pub owners: Owners,
}

impl FleetConfig {
    pub fn new(lease_ttl: Duration) -> FleetConfig {
        FleetConfig {
            instance: uuid::Uuid::new_v4().simple().to_string(),
            lease_ttl,
            owners: Owners::default(),
        }
    }

    /// This instance's API is reached by the others at `url` (`http://10.0.0.5:8080`): its
    /// id carries it, so the list of live instances says where each one answers.
    pub fn reached_at(mut self, url: Option<&str>) -> FleetConfig {
        if let Some(url) = url {
            self.instance = format!("{}@{url}", self.instance);
        }
        self
    }
}

/// The URL an instance's API is reached at, from its id (see [`FleetConfig::reached_at`]).
pub fn instance_url(instance: &str) -> Option<&str> {
    instance.split_once('@').map(|(_, url)| url)
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

/// A task of this process that hands something over to the others when stopped (the streams
/// it carries): [`departed`] waits for it as for the fleet's own, until it is dropped.
pub struct TakingPart(());

impl TakingPart {
    #[allow(clippy::new_without_default)]
    pub fn new() -> TakingPart {
        TAKING_PART.send_modify(|n| *n += 1);
        TakingPart(())
    }
}

impl Drop for TakingPart {
    fn drop(&mut self) {
        TAKING_PART.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Waits (at most `limit`) until every fleet task of this process, once stopped, has handed
/// its nodes over and left: a stopping process calls it before it exits.
pub async fn departed(limit: Duration) {
    let mut rx = TAKING_PART.subscribe();
    let _ = tokio::time::timeout(limit, rx.wait_for(|n| *n == 0)).await;
}

/// How long a joining instance waits for its supervisors to be ready to take nodes over (see
/// [`Handover::ready`]) before it joins anyway.
const READY_WAIT: Duration = Duration::from_secs(10);

/// How long a joining instance waits for the owners of its nodes to apply up to the first
/// event it heard of each (see [`catch_up`]) before it joins anyway.
const CATCH_UP_WAIT: Duration = Duration::from_secs(30);

/// Before joining a running fleet: waits (up to [`CATCH_UP_WAIT`]) until every node's owner
/// has recorded applying up to the first event this instance heard of it, or has stopped
/// moving (a killed owner). A saturated owner
/// can be thousands of events behind the node; handed over before it got there, it would
/// record a position older than anything this instance kept, and the events in between would
/// be lost to the takeover (logged as a gap, repaired by the resync, unannounced). Meanwhile
/// the store's positions are passed on, so that what is kept is trimmed as the owners go.
async fn catch_up<F: Fleet + Store>(
    store: &F,
    me: &str,
    seats: &[Seat],
    ttl: Duration,
    stop: &CancellationToken,
) {
    let deadline = Instant::now() + CATCH_UP_WAIT;
    // Per node: the last position read, and for how many looks it has not moved.
    let mut seen: HashMap<NodePrefix, (NodePosition, u32)> = HashMap::new();
    loop {
        let mut behind = Vec::new();
        for seat in seats {
            let Some(recorded) = seat.behind(store, me).await else {
                continue;
            };
            let still = match seen.get_mut(&seat.node) {
                Some((last, looks)) if *last == recorded => {
                    *looks += 1;
                    *looks
                }
                _ => {
                    seen.insert(seat.node.clone(), (recorded.clone(), 0));
                    0
                }
            };
            // An owner whose position has not moved for two looks (two renewals) is gone or
            // stalled: its lease lapses or has lapsed, and waiting for it gains nothing (a
            // killed owner's node is taken from where it stopped, as before).
            if still < 2 {
                behind.push((seat, recorded));
            } else if still == 2 {
                // Said once: a saturated owner whose renewals came late looks the same, and
                // its takeover is then logged as a gap.
                tracing::info!(node = %seat.node, owner_at = recorded.sequence, "not waiting for the node's owner: its position has not moved for two renewals (gone or stalled)");
            }
        }
        if behind.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            for (seat, recorded) in &behind {
                tracing::warn!(node = %seat.node, owner_at = recorded.sequence, "joining the fleet although the node's owner has not applied up to where this instance began to listen");
            }
            return;
        }
        if matches!(store.replicated().await, Ok(true)) {
            for (seat, recorded) in &behind {
                seat.record(Some(recorded.clone()));
            }
        }
        tracing::info!(
            nodes = behind.len(),
            "waiting to join the fleet until the nodes' owners apply up to where this instance began to listen"
        );
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(ttl / 3) => {}
        }
    }
}

/// What one renewal asked the store of one seat's lease.
enum Ask {
    /// Renewed (or taken), asked at that instant.
    Renewed(Instant, Result<NodeLease, StoreError>),
    /// Given up: another instance is to hold it now.
    GaveUp,
    /// Another instance's: where it stands.
    Read(Result<NodeLease, StoreError>),
    /// Nobody is assigned (the heartbeat failed): what is held stands until it lapses.
    Unknown,
}

/// Takes part in the fleet until `stop`: heartbeats, the leases of this instance's nodes (with
/// the positions applied), and each node's seat told what this instance applies and what the
/// store recorded. It joins once every supervisor keeps its node's events (or found the node
/// unreachable), and, when other instances are live, once they have taken the nodes nobody
/// held (see below), so nodes are handed to it only when it can take them without a gap. When
/// stopped it gives its leases up, recording where it stood, and leaves, so the others take its
/// nodes on their next renewal.
///
/// It runs on a thread of its own, with a runtime and store connections of its own
/// ([`Fleet::apart`]): in a saturated process the renewals waited for the busy runtime (their
/// task's turn, the shared connection's driver) past the leases' time to live, and a lapsed
/// lease stops the node's events until the next renewal. A thread of its own is scheduled by
/// the kernel, which runs a mostly sleeping thread first.
pub fn start<F: Fleet + Store>(
    store: Arc<F>,
    config: FleetConfig,
    seats: Vec<Seat>,
    changes: tokio::sync::mpsc::UnboundedReceiver<SeatChange>,
    stop: CancellationToken,
) {
    TAKING_PART.send_modify(|n| *n += 1);
    let part = Arc::new(Mutex::new(Some(Part {
        store,
        config,
        seats,
        changes,
        stop,
    })));
    let taken = part.clone();
    let own = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|runtime| {
            std::thread::Builder::new()
                .name("switchyard-fleet".into())
                .spawn(move || {
                    if let Some(part) = Part::take(&taken) {
                        runtime.block_on(async move {
                            let store = match part.store.apart().await {
                                Some(apart) => Arc::new(apart),
                                None => part.store.clone(),
                            };
                            take_part(Part { store, ..part }).await;
                        });
                    }
                })
        });
    if let Err(e) = own {
        tracing::warn!(error = %e, "the fleet's renewals could not have a thread of their own; they share the runtime");
        if let Some(part) = Part::take(&part) {
            tokio::spawn(take_part(part));
        }
    }
}

/// What [`start`] hands to the fleet's task.
struct Part<F> {
    store: Arc<F>,
    config: FleetConfig,
    seats: Vec<Seat>,
    changes: tokio::sync::mpsc::UnboundedReceiver<SeatChange>,
    stop: CancellationToken,
}

impl<F> Part<F> {
    fn take(part: &Mutex<Option<Part<F>>>) -> Option<Part<F>> {
        part.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The fleet's task (see [`start`]).
async fn take_part<F: Fleet + Store>(part: Part<F>) {
    let Part {
        store,
        config,
        seats,
        mut changes,
        stop,
    } = part;
    let ttl = config.lease_ttl.max(Duration::from_millis(300));
    let me = config.instance.as_str();
    let mut seats = seats;
    let mut nodes: Vec<NodePrefix> = seats.iter().map(|s| s.node.clone()).collect();
    let ready = futures_util::future::join_all(seats.iter().map(|s| {
        let mut ready = s.ready.clone();
        async move {
            let _ = ready.wait_for(|r| *r).await;
        }
    }));
    tokio::select! {
        () = stop.cancelled() => {}
        _ = tokio::time::timeout(READY_WAIT, ready) => {}
    }
    // Joining a running fleet: the nodes nobody holds right now (a stopped instance's, a
    // killed one's once its leases run out) are left to the instances already there, which
    // heard their events while nobody applied them; this one only started listening. It
    // joins once they have had the time to take them (a killed owner's time to live, and
    // one renewal), and is then handed its share by live owners, from where they stand.
    // Alone (a cold start) it joins at once.
    if let Ok(others) = store.heartbeat(me, Duration::ZERO).await
        && others.iter().any(|i| i != me)
    {
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(ttl + ttl / 3) => {}
        }
        // The owners still live (a killed one's heartbeat has run out by now: its nodes are
        // taken from where it stopped, there is nothing to wait for).
        if let Ok(others) = store.heartbeat(me, Duration::ZERO).await
            && others.iter().any(|i| i != me)
        {
            catch_up(&*store, me, &seats, ttl, &stop).await;
        }
    }
    let mut tick = tokio::time::interval(ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When each held lease was last renewed: past its time to live it is not ours.
    let mut renewed: HashMap<NodePrefix, Instant> = HashMap::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        // Nodes a reload added or removed: a removed one's lease is given up at once.
        while let Ok(change) = changes.try_recv() {
            match change {
                SeatChange::Add(seat) => {
                    nodes.push(seat.node.clone());
                    seats.push(seat);
                }
                SeatChange::Remove(node) => {
                    if let Some(i) = seats.iter().position(|s| s.node == node) {
                        let seat = seats.remove(i);
                        seat.vacate();
                        if renewed.remove(&node).is_some() {
                            let applied = seat.applied();
                            let _ = store
                                .node_lease(&node, me, Duration::ZERO, applied.as_ref())
                                .await;
                        }
                    }
                    nodes.retain(|n| *n != node);
                }
            }
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
        if let Some(assigned) = &assigned {
            let owners = assigned
                .iter()
                .map(|(node, instance)| (node.clone(), (*instance).to_owned()))
                .collect();
            config.owners.store(Arc::new(owners));
        }
        // Every seat's lease asked at once: one after another, a saturated instance (its
        // store round trips slow) renewed its sixth node's lease past its time to live.
        let asks = seats.iter().map(|seat| {
            let node = &seat.node;
            let mine = assigned.as_ref().map(|a| a.get(node).copied() == Some(me));
            let held_here = renewed.contains_key(node);
            let store = &*store;
            async move {
                match mine {
                    Some(true) => {
                        let applied = seat.applied();
                        // The lease runs from when the store renews it, after this.
                        let asked = Instant::now();
                        let lease = store.node_lease(node, me, ttl, applied.as_ref()).await;
                        Ask::Renewed(asked, lease)
                    }
                    Some(false) if held_here => {
                        seat.vacate();
                        let applied = seat.applied();
                        let _ = store
                            .node_lease(node, me, Duration::ZERO, applied.as_ref())
                            .await;
                        Ask::GaveUp
                    }
                    // Another instance's: where it stands, so the events kept here for a
                    // takeover need not go back further.
                    Some(false) => {
                        Ask::Read(store.node_lease(node, me, Duration::ZERO, None).await)
                    }
                    None => Ask::Unknown,
                }
            }
        });
        let asked = futures_util::future::join_all(asks).await;
        // Per seat: whether this instance holds it, the position the store answered, and
        // the grant renewed (none: the last one stands, to lapse on its own).
        let mut leases = Vec::with_capacity(seats.len());
        for (seat, ask) in seats.iter().zip(asked) {
            let node = &seat.node;
            let still_held = |renewed: &HashMap<NodePrefix, Instant>| {
                renewed.get(node).is_some_and(|t| t.elapsed() < ttl)
            };
            let (held, recorded, grant) = match ask {
                Ask::Renewed(
                    asked,
                    Ok(NodeLease {
                        held: true,
                        recorded,
                        generation,
                    }),
                ) => {
                    renewed.insert(node.clone(), started);
                    let grant = Grant {
                        generation,
                        until: Some(asked + crate::store::lease_holds_for(ttl)),
                    };
                    (true, Some(recorded), Some(grant))
                }
                Ask::Renewed(_, Ok(lease)) => (false, Some(lease.recorded), None),
                Ask::Renewed(_, Err(_)) | Ask::Unknown => (still_held(&renewed), None, None),
                Ask::GaveUp => (false, None, None),
                Ask::Read(read) => (false, read.ok().map(|lease| lease.recorded), None),
            };
            if !held {
                renewed.remove(node);
            }
            leases.push((held, recorded, grant));
        }
        // A position is trusted (standbys drop what they kept up to it, a takeover replays
        // from it) only once the replicas have it: a failover cannot take it back then.
        let confirmed = match store.replicated().await {
            Ok(confirmed) => confirmed,
            Err(e) => {
                tracing::warn!(error = %e, "fleet positions not confirmed on the replicas");
                false
            }
        };
        for (seat, (held, recorded, grant)) in seats.iter().zip(leases) {
            if confirmed && let Some(recorded) = recorded {
                seat.record(recorded);
            }
            // The grant before ownership: a supervisor told it owns the node finds what it
            // may act on.
            match (held, grant) {
                (true, Some(grant)) => {
                    seat.grant.send_replace(Some(grant));
                }
                (true, None) => {}
                (false, _) => {
                    seat.grant.send_if_modified(|g| g.take().is_some());
                }
            }
            seat.owns.send_if_modified(|owned| {
                let changed = *owned != held;
                *owned = held;
                changed
            });
            crate::telemetry::node_owned(seat.node.as_str(), held);
        }
    }
    for seat in &seats {
        seat.vacate();
        if renewed.contains_key(&seat.node) {
            let applied = seat.applied();
            let _ = store
                .node_lease(&seat.node, me, Duration::ZERO, applied.as_ref())
                .await;
        }
    }
    let _ = store.heartbeat(me, Duration::ZERO).await;
    tracing::info!(instance = %me, "controller instance left the fleet; its nodes are handed over");
    TAKING_PART.send_modify(|n| *n = n.saturating_sub(1));
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

    #[test]
    fn an_effects_mandate_holds_while_its_lease_does() {
        let now = Instant::now();
        let grant = |generation, secs: i64| Grant {
            generation,
            until: Some(if secs >= 0 {
                now + Duration::from_secs(secs as u64)
            } else {
                now - Duration::from_secs((-secs) as u64)
            }),
        };
        let (fleet, current) = watch::channel(Some(grant(3, 2)));
        let decided = Mandate {
            grant: grant(3, 2),
            current,
        };
        assert!(decided.holds(), "the grant it was decided on");
        // Renewed under the same generation: the renewal counts, later or lapsed.
        fleet.send_replace(Some(grant(3, 10)));
        assert!(decided.holds());
        fleet.send_replace(Some(grant(3, -1)));
        assert!(!decided.holds(), "a renewal that lapsed (a pause)");
        // Handed over in order: the rest of the decision's grant.
        fleet.send_replace(None);
        assert!(decided.holds());
        // Taken again after losing it: another generation, the decision's grant only.
        fleet.send_replace(Some(grant(4, 10)));
        assert!(decided.holds());
        let paused = Mandate {
            grant: grant(3, -1),
            current: fleet.subscribe(),
        };
        assert!(!paused.holds(), "a pause past the decision's grant");
        let sole = Mandate {
            grant: Grant::SOLE,
            current: watch::channel(Some(Grant::SOLE)).1,
        };
        assert!(sole.holds(), "a controller alone");
    }
}
