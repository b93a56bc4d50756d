//! One task per node: connect (with jittered backoff, one attempt at a time), subscribe, take a
//! snapshot and resync the store, then apply the event stream in order while watching for
//! silence; audit periodically; on any loss, mark the node down and start over. A refused
//! password stops the supervisor and marks the node failed. In a fleet, while another instance
//! applies the node's events, it keeps them ([`standby`]) and replays them when the node is
//! handed to it. The resync is in [`resync`], the effects applying events asks of the node in
//! [`effects`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use self::effects::Basis;
use self::standby::Backlog;
use super::backoff::Backoff;
use super::commands::Speech;
use super::fleet::Handover;
use super::reconciler::{Reconciler, RoomEffect};
use super::talking::TalkingBuffer;
use super::{AppDirectory, NodeConfig, NodeHandle, NodeLink, NodeState, describe};
use crate::conference::{Micros, from_event};
use crate::esl::{
    ApiCommand, Client, ClientConfig, ClientError, Event, EventFormat, EventName, EventSet,
    EventStream, Password, Tape,
};
use crate::store::Store;

/// Events a standby keeps in one turn of its loop (at most).
const STANDBY_BATCH: usize = 256;

mod effects;
mod kept;
mod orphans;
mod resync;
pub mod standby;

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> Micros {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as Micros)
        .unwrap_or_default()
}

/// The other nodes, once all are started: a node's events may change a room another node hosts
/// (a call this node carries there), and that room's work is done by its own node.
pub type Peers = Arc<std::sync::OnceLock<super::NodePool>>;

/// Starts the supervisor of one node and returns its handle.
pub fn spawn<S: Store>(
    config: NodeConfig,
    store: Arc<S>,
    apps: Arc<AppDirectory>,
    stop: CancellationToken,
) -> (NodeHandle, Arc<super::reconciler::Stats>) {
    spawn_among(
        config,
        store,
        apps,
        Peers::default(),
        Handover::sole(),
        stop,
    )
}

/// [`spawn`] of one node among others (`peers`, filled once every node is started), applying
/// its events only while `handover` says this instance owns the node, keeping them otherwise
/// (see [`super::fleet`]).
pub fn spawn_among<S: Store>(
    config: NodeConfig,
    store: Arc<S>,
    apps: Arc<AppDirectory>,
    peers: Peers,
    handover: Handover,
    stop: CancellationToken,
) -> (NodeHandle, Arc<super::reconciler::Stats>) {
    let config = Arc::new(config);
    let (link_tx, link_rx) = watch::channel(NodeLink {
        state: NodeState::Connecting,
        commands: Vec::new(),
        speech: Speech::default(),
        health: super::probe::unprobed(),
        wake: None,
    });
    crate::telemetry::node_connected(config.prefix.as_str(), false);
    let reconciler = Reconciler::new(store.clone(), config.clone(), apps);
    let stats = reconciler.stats.clone();
    let intents = reconciler.intents.clone();
    let (effects_tx, effects_rx) = tokio::sync::mpsc::unbounded_channel();
    let owns = handover.owns.clone();
    // A store that can fail over may lose what it was told last: the owner keeps what it
    // applied until the replicas have its position.
    let failovers = store.failovers();
    let kept = failovers.is_some().then(Backlog::default);
    let supervisor = Supervisor {
        config: config.clone(),
        store,
        reconciler: Arc::new(reconciler),
        link: link_tx,
        in_flight: Arc::default(),
        requests: tokio::sync::Mutex::new(effects_rx),
        peers,
        handover,
        kept: Mutex::new(kept),
        failovers: Mutex::new(failovers),
        orphans: Mutex::default(),
        lapsed: Mutex::default(),
        lapse_noted: Default::default(),
        acted_on: Mutex::default(),
    };
    tokio::spawn(supervisor.run(stop));
    (
        NodeHandle::new(config, link_rx, effects_tx, owns, stats.clone(), intents),
        stats,
    )
}

struct Supervisor<S> {
    config: Arc<NodeConfig>,
    store: Arc<S>,
    reconciler: Arc<Reconciler<S>>,
    link: watch::Sender<NodeLink>,
    /// Control legs being originated, so audits do not start a second one.
    in_flight: Arc<Mutex<HashMap<crate::conference::RoomId, Instant>>>,
    /// Work asked for through the node's handle (only this task reads it).
    requests: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<RoomEffect>>,
    peers: Peers,
    /// Whether this instance applies the node's events, and how far it has (the fleet's side).
    handover: Handover,
    /// While this instance owns the node, the events it applied that the store may still lose
    /// in a failover (those after the last position the replicas confirmed); `None`: a store
    /// that cannot fail over so, nothing kept.
    kept: Mutex<Option<Backlog>>,
    /// The store's failovers, as last seen (see [`Store::failovers`]).
    failovers: Mutex<Option<watch::Receiver<u64>>>,
    /// Rooms whose conferences the last audit found without a room in the store.
    orphans: Mutex<std::collections::HashSet<crate::conference::RoomId>>,
    /// Events taken off the node's connection but not applied: the lease lapsed first (see
    /// `acting`). They go to the standby's backlog as the node is given up.
    lapsed: Mutex<Vec<crate::conference::Observed>>,
    /// Whether a lapse of the lease was told (once per lapse).
    lapse_noted: std::sync::atomic::AtomicBool,
    /// The grant of the last check that this instance may act (`acting`): what the effects
    /// decided since carry to their commands.
    acted_on: Mutex<Option<super::fleet::Grant>>,
}

/// What standing by works with: the first command connection and its heartbeats, ownership,
/// and the event connection with what it kept.
struct Standby<'a> {
    first: &'a Client,
    heard: &'a mut watch::Receiver<()>,
    owns: &'a mut watch::Receiver<bool>,
    grant: &'a mut watch::Receiver<Option<super::fleet::Grant>>,
    events: &'a Client,
    stream: &'a mut EventStream,
    backlog: &'a mut Backlog,
    /// Where the event connection keeps the events it hears.
    tape: &'a Arc<Tape>,
}

/// Changes whenever an event arrives on a command connection's stream (its heartbeats; a
/// bgapi's BACKGROUND_JOB too), which it reads to the end; closed once the connection is.
fn heartbeats(mut stream: EventStream) -> watch::Receiver<()> {
    let (heard, rx) = watch::channel(());
    tokio::spawn(async move {
        while stream.recv().await.is_some() {
            if heard.send(()).is_err() {
                return;
            }
        }
    });
    rx
}

/// The events the controller needs; CUSTOM last, as FreeSWITCH requires.
fn subscription() -> EventSet {
    let set = EventSet::new().names([
        EventName::ChannelCreate,
        EventName::ChannelProgress,
        EventName::ChannelProgressMedia,
        EventName::ChannelAnswer,
        EventName::ChannelPark,
        EventName::ChannelHangupComplete,
        EventName::Dtmf,
        EventName::Heartbeat,
        EventName::BackgroundJob,
    ]);
    // A fixed, valid subclass: cannot fail.
    set.clone()
        .subclass("conference::maintenance")
        .unwrap_or(set)
}

fn api(words: &[&str]) -> Result<ApiCommand, ClientError> {
    let (first, rest) = words
        .split_first()
        .ok_or_else(|| ClientError::Protocol("empty command".into()))?;
    rest.iter()
        .try_fold(ApiCommand::new(first)?, |c, w| c.arg(w))
        .map_err(ClientError::from)
}

impl<S: Store> Supervisor<S> {
    async fn run(self, stop: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        loop {
            let outcome = tokio::select! {
                () = stop.cancelled() => return,
                outcome = self.connected_period(&stop, &mut backoff) => outcome,
            };
            match outcome {
                Err(e) if e.is_auth_error() => {
                    self.handover.ready.send_replace(true);
                    tracing::error!(node = %describe(&self.config), error = %e, "media node refused our credentials; giving up on it until the configuration is fixed");
                    self.set_state(
                        NodeState::Failed {
                            reason: e.to_string(),
                        },
                        Vec::new(),
                    );
                    return;
                }
                Err(e) => {
                    // Unreachable is settled too: the fleet need not wait for this node.
                    self.handover.ready.send_replace(true);
                    tracing::warn!(node = %describe(&self.config), error = %e, "media node connection lost");
                    self.set_state(
                        NodeState::Down {
                            reason: e.to_string(),
                        },
                        Vec::new(),
                    );
                }
                Ok(()) => return,
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn set_state(&self, state: NodeState, commands: Vec<Client>) {
        let up = matches!(state, NodeState::Up { .. });
        crate::telemetry::node_connected(self.config.prefix.as_str(), up);
        // How the node speaks stays as it was last read (`connected_period`), its health as
        // this period's probe finds it, and the waker is this period's event connection's.
        self.link.send_modify(|link| {
            link.state = state;
            link.commands = commands;
        });
    }

    fn client_config(&self) -> ClientConfig {
        ClientConfig {
            command_timeout: self.config.command_timeout,
            metrics_node: Some(self.config.prefix.to_string()),
            ..ClientConfig::default()
        }
    }

    /// The event connection pushes back on FreeSWITCH instead of dropping anything; commands
    /// travel on other connections, so a slow reconciler never holds them up (the resync's,
    /// which must be ordered with the events, are answered even while the backlog is full).
    fn events_config(&self) -> ClientConfig {
        ClientConfig {
            overflow: crate::esl::Overflow::Backpressure,
            max_event_backlog: 10_000,
            ..self.client_config()
        }
    }

    /// One connection's life: the command connections, and while this instance owns the node
    /// an event connection too (the node's events applied, with a resync each time it starts).
    /// `Ok` only when asked to stop.
    async fn connected_period(
        &self,
        stop: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), ClientError> {
        let password = Password::new(&self.config.password)?;
        let mut commands = Vec::with_capacity(self.config.command_connections);
        let mut heard = None;
        for _ in 0..self.config.command_connections.max(1) {
            let (client, stream) =
                Client::connect(&self.config.addr, &password, self.client_config()).await?;
            // A bgapi's result comes back only as a BACKGROUND_JOB event, and only to
            // connections subscribed to it. The first connection hears the node's heartbeats
            // too: while another instance applies the node's events, they are how this one
            // finds out that the node hangs (the connection open, nothing answered).
            let mut names = vec![EventName::BackgroundJob];
            if heard.is_none() {
                names.push(EventName::Heartbeat);
                heard = Some(heartbeats(stream));
            }
            client
                .subscribe(EventFormat::Plain, EventSet::new().names(names))
                .await?;
            commands.push(client);
        }
        let mut heard = heard.ok_or(ClientError::Protocol("no command connection".into()))?;
        backoff.reset();
        // Whether the node answers at all, probed for as long as this period lasts (`probe`).
        let probing = stop.child_token();
        let health =
            super::probe::spawn(self.config.clone(), self.client_config(), probing.clone());
        self.link.send_modify(|link| link.health = health);
        let _probing = probing.drop_guard();
        let first = commands
            .first()
            .cloned()
            .ok_or(ClientError::Protocol("no command connection".into()))?;
        let core = first
            .api(&api(&["global_getvar", "core_uuid"])?)
            .await?
            .into_data()?
            .trim()
            .to_owned();
        // Whether `tts://` plays as a file here (1.11; a stock 1.10 speaks only with `say:`).
        let files = first.api(&api(&["show", "files"])?).await?.into_data();
        let speech = files.map_or(Speech::Files, |f| Speech::from_show_files(&f));
        if speech == Speech::Say {
            tracing::info!(node = %describe(&self.config), "media node has no tts:// file format (FreeSWITCH 1.10 without mod_ssml): text is spoken with say:, in the profile's voice");
        }
        self.link.send_modify(|link| link.speech = speech);
        let mut requests = self.requests.lock().await;
        // Requests made while the node was down are stale: the resync below covers them. So
        // are originates in flight on the old connections (a restarted node lost them).
        while requests.try_recv().is_ok() {}
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.clear();
        }
        // One event connection for the whole period: while another instance applies the
        // node's events this one keeps them, and replays them when the node is handed to it.
        let tape = Arc::new(Tape::default());
        let config = ClientConfig {
            tape: Some(tape.clone()),
            ..self.events_config()
        };
        let (events, mut stream) = Client::connect(&self.config.addr, &password, config).await?;
        events.subscribe(EventFormat::Plain, subscription()).await?;
        // Commands sent to the node wake this connection for their events while this instance
        // applies them (a standby's connection is not woken: what it keeps waits for a
        // takeover, and a wake costs a write every `wake_interval`).
        let waker = events.waker();
        // Its result comes back as an event numbered after the subscription took effect: the
        // point from which this connection has heard everything.
        events.bgapi(&api(&["global_getvar", "core_uuid"])?).await?;
        let mut backlog = Backlog::default();
        let mut owns = self.handover.owns.clone();
        let mut grant = self.handover.grant.clone();
        loop {
            owns.borrow_and_update();
            grant.borrow_and_update();
            if !self.acting() {
                self.link.send_modify(|link| link.wake = None);
                tracing::info!(node = %describe(&self.config), %core, "media node up (another instance applies its events; this one keeps them)");
                self.set_state(
                    NodeState::Up {
                        core_uuid: core.clone(),
                    },
                    commands.clone(),
                );
                let on = Standby {
                    first: &first,
                    heard: &mut heard,
                    owns: &mut owns,
                    grant: &mut grant,
                    events: &events,
                    stream: &mut stream,
                    backlog: &mut backlog,
                    tape: &tape,
                };
                if self
                    .standby(on, &mut requests, &commands, &core, stop)
                    .await?
                {
                    return Ok(());
                }
                continue;
            }
            // A node coming up is resyncing until its state is read; one already up (this
            // instance takes its events over from another) stays up meanwhile.
            if !matches!(self.link.borrow().state, NodeState::Up { .. }) {
                self.set_state(NodeState::Resyncing, Vec::new());
            }
            self.link
                .send_modify(|link| link.wake = Some(waker.clone()));
            let gap = self
                .take_over(&mut backlog, &mut stream, &commands, &core)
                .await;
            self.handover.ready.send_replace(true);
            self.resync(&events, &mut stream, &commands, &core).await?;
            tracing::info!(node = %describe(&self.config), %core, "media node up");
            self.set_state(
                NodeState::Up {
                    core_uuid: core.clone(),
                },
                commands.clone(),
            );
            let stopped = self
                .live(
                    &events,
                    &mut stream,
                    &mut requests,
                    &commands,
                    &core,
                    (&mut owns, &mut grant),
                    gap,
                    stop,
                )
                .await?;
            if stopped {
                return Ok(());
            }
            // Handed to another instance: its events are that instance's to apply now, and
            // this one keeps them from where it stopped.
            // What the store may still lose is kept on (another owner's takeover, or this
            // instance's next, replays it); with nothing kept, from where it stopped.
            let last = self.handover.applied.lock().ok().and_then(|a| a.clone());
            backlog = match self.take_kept() {
                Some(kept) if kept.listening() => kept,
                _ => Backlog::after(last.filter(|a| a.core == core).map(|a| a.sequence)),
            };
            // The events taken off the connection but not applied (the lease lapsed first)
            // come before any the standby takes next.
            let lapsed = self
                .lapsed
                .lock()
                .map(|mut l| std::mem::take(&mut *l))
                .unwrap_or_default();
            let now = Instant::now();
            for observed in lapsed {
                backlog.push(observed, now);
            }
            self.handover.forget();
            tracing::info!(node = %describe(&self.config), "media node's events handed to another instance");
        }
    }

    /// Replays what this instance kept while on standby, from where the previous owner
    /// recorded it stopped (the events it applied already change nothing again). Whether
    /// events since that position were missed (a gap: a connection lost, an owner that died).
    async fn take_over(
        &self,
        backlog: &mut Backlog,
        stream: &mut EventStream,
        commands: &[Client],
        core: &str,
    ) -> bool {
        // The events the stream was given before the tape's first come before it (the tape
        // may have started with them still on their way), what waits on the stream after it.
        if let Some(taped) = backlog.stop_tape() {
            let now = Instant::now();
            while taped.after_streamed.is_some_and(|n| stream.received() < n) {
                let Some(event) = stream.recv().await else {
                    break;
                };
                backlog.hear(event, core, now);
            }
            backlog.keep_taped(taped);
        }
        for observed in self.waiting(stream, core) {
            backlog.push(observed, Instant::now());
        }
        let recorded = self.handover.recorded.borrow().clone();
        let replay = backlog.take(recorded.as_ref(), core);
        self.keep_from(recorded.as_ref().filter(|r| r.core == core));
        let node = self.config.prefix.as_str();
        // Nothing recorded: no instance applied the node before (or only one that records no
        // position), so there is no gap to speak of.
        let gap = !replay.covered && recorded.is_some();
        if gap {
            crate::telemetry::handover_gap(node);
            tracing::warn!(node = %describe(&self.config), ?recorded, first = ?replay.first, dropped = replay.dropped, applied_here = ?replay.own, "media node taken over without every event since its last owner's position; the resync repairs the state, changes made and undone meanwhile go unannounced");
        }
        crate::telemetry::handover_replayed(node, replay.len());
        if !replay.is_empty() {
            tracing::info!(node = %describe(&self.config), events = replay.len(), ?recorded, "media node taken over: replaying the events kept on standby");
        }
        // Read a batch at a time, each applied before the next is read: reading thousands at
        // once would hold this thread for as long, and the lease's renewal with it.
        for batch in replay.batches(512) {
            self.apply(&batch, Instant::now(), &[], commands).await;
            tokio::task::yield_now().await;
        }
        gap
    }

    /// While another instance applies the node's events: commands (the API's, and work other
    /// nodes' rooms ask of this node), and the node's events kept, until this instance owns the
    /// node (`Ok(false)`), is stopped (`Ok(true)`), or the node is lost.
    async fn standby(
        &self,
        on: Standby<'_>,
        requests: &mut tokio::sync::mpsc::UnboundedReceiver<RoomEffect>,
        commands: &[Client],
        core: &str,
        stop: &CancellationToken,
    ) -> Result<bool, ClientError> {
        let Standby {
            first,
            heard,
            owns,
            grant,
            events,
            stream,
            backlog,
            tape,
        } = on;
        // What the connection hears from now on is taped, not streamed (`standby.rs`).
        backlog.tape(tape.clone(), core);
        // Whether ownership can still change (its sender lives).
        let mut settled = false;
        let mut last_heard = Instant::now();
        heard.borrow_and_update();
        let mut recorded = self.handover.recorded.clone();
        // Armed once: it fires at the first deadline and looks again at when the node was last
        // heard (a timer made anew per event cost the standby as much as the event).
        let silence = tokio::time::sleep_until((last_heard + self.config.silence_timeout).into());
        tokio::pin!(silence);
        loop {
            tokio::select! {
                changed = heard.changed() => match changed {
                    Ok(()) => last_heard = Instant::now(),
                    Err(_) => return Err(ClientError::Disconnected(first.closed().await.to_string())),
                },
                () = &mut silence => {
                    let deadline = last_heard + self.config.silence_timeout;
                    if deadline <= Instant::now() {
                        return Err(ClientError::Timeout(format!("any event for {:?} (heartbeats stopped)", self.config.silence_timeout)));
                    }
                    silence.as_mut().reset(deadline.into());
                }
                () = stop.cancelled() => {
                    let _ = events.exit().await;
                    return Ok(true);
                }
                changed = owns.changed(), if !settled => match changed {
                    Ok(()) if self.acting() => return Ok(false),
                    Ok(()) => {}
                    Err(_) => settled = true,
                },
                // A lease renewed after it lapsed here (the process was paused) is acted on
                // again.
                Ok(()) = grant.changed() => {
                    if self.acting() {
                        return Ok(false);
                    }
                }
                event = stream.recv() => match event {
                    Some(event) => {
                        // What else has come is kept in the same turn of the loop.
                        let now = Instant::now();
                        backlog.hear(event, core, now);
                        for _ in 0..STANDBY_BATCH {
                            let Some(event) = stream.try_recv() else { break };
                            backlog.hear(event, core, now);
                        }
                        if let Some(first) = backlog.first()
                            && !*self.handover.ready.borrow()
                        {
                            if let Ok(mut listening) = self.handover.listening.lock() {
                                *listening = Some(crate::store::fleet::NodePosition { core: core.to_owned(), sequence: first });
                            }
                            self.handover.ready.send_replace(true);
                        }
                    }
                    None => return Err(ClientError::Disconnected(events.closed().await.to_string())),
                },
                Ok(()) = recorded.changed() => {
                    if let Some(position) = recorded.borrow_and_update().clone() {
                        backlog.trim(&position, Instant::now());
                    }
                }
                reason = first.closed() => return Err(ClientError::Disconnected(reason.to_string())),
                Some(effect) = requests.recv() => self.execute(vec![effect], commands, Basis::Request),
            }
        }
    }

    /// Applies the node's events until stopped (`Ok(true)`), handed to another instance
    /// (`Ok(false)`), or the node is lost.
    #[allow(clippy::too_many_arguments)]
    async fn live(
        &self,
        events: &Client,
        stream: &mut EventStream,
        requests: &mut tokio::sync::mpsc::UnboundedReceiver<RoomEffect>,
        commands: &[Client],
        core: &str,
        (owns, grant): (
            &mut watch::Receiver<bool>,
            &mut watch::Receiver<Option<super::fleet::Grant>>,
        ),
        gap: bool,
        stop: &CancellationToken,
    ) -> Result<bool, ClientError> {
        let mut last_heard = Instant::now();
        // The first audit falls anywhere from half an interval to one and a half: nodes that
        // came up together (a controller started with many) are audited apart, not all at
        // once (50 nodes' audits at one instant held every node's events back a quarter of a
        // second, `benches/scale.rs`).
        let every = self.config.audit_interval;
        let first = every.mul_f64(0.5 + fastrand::f64());
        let mut audit = tokio::time::interval_at((Instant::now() + first).into(), every);
        let mut joins =
            tokio::time::interval((self.config.join_timeout / 4).max(Duration::from_millis(50)));
        // Snapshots taken once after the first, latest first (each taken off the end): the
        // settle look (`settle_resync`), and after a gap (a connection that was down, an owner
        // that died) a look once whatever was asked before the first snapshot is past its
        // deadline to be confirmed. That snapshot left such asks (a recording stopped, a member
        // muted) to their events, which may have been missed; without it they wait for the
        // audit.
        let began = Instant::now();
        let mut looks = vec![began + self.config.settle_resync];
        if gap {
            looks.push(began + self.config.join_timeout);
        }
        looks.sort_by(|a, b| b.cmp(a));
        let look = tokio::time::sleep_until((*looks.last().unwrap_or(&began)).into());
        tokio::pin!(look);
        // Held back per connection: a reconnect's resync repairs what they would have told.
        let mut talking = TalkingBuffer::new(self.config.talking_interval);
        // Ownership that can no longer change (a sole instance's).
        let mut owned_for_good = false;
        // Two timers armed once and moved only when their deadline does (not re-registered for
        // every batch): the silence check fires at the first deadline and looks again at when
        // the node was last heard; the talking flush is armed while events are held.
        let silence = tokio::time::sleep_until((last_heard + self.config.silence_timeout).into());
        tokio::pin!(silence);
        let talk_flush = tokio::time::sleep_until(last_heard.into());
        tokio::pin!(talk_flush);
        let mut flush_at: Option<Instant> = None;
        let mut recorded = self.handover.recorded.clone();
        recorded.borrow_and_update();
        // Wakes the loop when the store fails over (what it kept is applied again at once).
        let (_never, idle) = watch::channel(0u64);
        let mut moved = self.store.failovers().unwrap_or(idle);
        loop {
            let talking_due = talking.deadline();
            if let Some(due) = talking_due.filter(|due| flush_at != Some(*due)) {
                talk_flush.as_mut().reset(due.into());
            }
            flush_at = talking_due;
            // Every act below is on the strength of the lease: not once it lapsed by this
            // process's clock (after a pause, whatever wakes first), nor after a later holder
            // wrote (each act checks again as it begins: `apply`, `resync`).
            if !self.acting() {
                return Ok(false);
            }
            tokio::select! {
                () = stop.cancelled() => {
                    let _ = events.exit().await;
                    return Ok(true);
                }
                changed = owns.changed(), if !owned_for_good => match changed {
                    Ok(()) if !*owns.borrow() => return Ok(false),
                    Ok(()) => {}
                    Err(_) => owned_for_good = true,
                },
                Ok(()) = grant.changed() => {
                    grant.borrow_and_update();
                }
                event = stream.recv() => match event {
                    Some(event) => {
                        last_heard = Instant::now();
                        self.on_events(event, stream, commands, core, &mut talking).await;
                    }
                    None => return Err(ClientError::Disconnected(events.closed().await.to_string())),
                },
                () = &mut silence => {
                    let deadline = last_heard + self.config.silence_timeout;
                    if deadline <= Instant::now() {
                        return Err(ClientError::Timeout(format!("any event for {:?} (heartbeats stopped)", self.config.silence_timeout)));
                    }
                    silence.as_mut().reset(deadline.into());
                }
                () = &mut talk_flush, if flush_at.is_some() => {
                    let due = talking.take();
                    self.apply(&due, Instant::now(), &[], commands).await;
                }
                // Not while the node is hung: it would time out and end the period.
                _ = audit.tick() => if self.link.borrow().hung().is_none() {
                    self.resync(events, stream, commands, core).await?
                },
                Ok(()) = recorded.changed() => {
                    let position = recorded.borrow_and_update().clone();
                    if let Some(position) = position {
                        self.trim_kept(&position);
                    }
                }
                Ok(()) = moved.changed() => {
                    moved.borrow_and_update();
                    self.apply(&[], Instant::now(), &[], commands).await;
                }
                () = &mut look, if !looks.is_empty() => {
                    looks.pop();
                    if let Some(next) = looks.last() {
                        look.as_mut().reset((*next).into());
                    }
                    self.resync(events, stream, commands, core).await?;
                }
                Some(effect) = requests.recv() => self.execute(vec![effect], commands, Basis::Request),
                _ = joins.tick() => {
                    if !self.acting() {
                        continue;
                    }
                    match self.reconciler.expire_joins(now_micros()).await {
                        Ok(effects) => self.execute(effects, commands, Basis::Lease),
                        Err(e) => tracing::warn!(error = %e, "join deadline check could not reach the store"),
                    }
                }
            }
        }
    }

    /// Applies an event and whatever else has already arrived behind it, as one batch.
    async fn on_events(
        &self,
        first: Event,
        stream: &mut EventStream,
        commands: &[Client],
        core: &str,
        talking: &mut TalkingBuffer,
    ) {
        const BATCH: usize = 512;
        // When the batch's first event was taken off the connection.
        let received = Instant::now();
        let mut batch = Vec::new();
        let mut stamps = Vec::new();
        let mut next = Some(first);
        while let Some(event) = next.take() {
            crate::telemetry::esl_event(self.config.prefix.as_str(), &event);
            match from_event(&event) {
                Some(observed) if observed.core_uuid == core => {
                    if let Some(observed) = talking.hold(observed, received) {
                        stamps.extend(crate::telemetry::event_timestamp(&event));
                        batch.push(observed)
                    }
                }
                Some(_) => {
                    tracing::warn!(node = %describe(&self.config), "event from another FreeSWITCH process ignored")
                }
                None => {}
            }
            if batch.len() < BATCH {
                next = stream.try_recv();
            }
        }
        self.apply(&batch, received, &stamps, commands).await;
    }
}
