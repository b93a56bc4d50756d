//! Media nodes: one supervisor per FreeSWITCH node (connect, subscribe, resync, apply the event
//! stream, watch heartbeats, reconnect), command connections, and the pool that places rooms.
//! It knows FreeSWITCH and the store; it does not know HTTP.

pub mod backoff;
pub mod bridge;
pub mod commands;
pub mod dial_policy;
pub mod dialout;
pub mod fleet;
pub mod intents;
pub mod media_legs;
pub mod probe;
pub mod reconciler;
pub mod sessions;
pub mod spawner;
pub mod supervisor;
pub mod talking;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::conference::{AppId, NodePrefix};
use crate::esl::{ApiCommand, ApiReply, Client, ClientError};

/// Command connections per node unless configured: a command the node is slow to answer then
/// holds up few others.
pub const DEFAULT_COMMAND_CONNECTIONS: usize = 4;
/// Commands one instance may have waiting on one node (`[limits] node_commands_in_flight`):
/// with four connections at about a millisecond a command, a quarter of a second of queue.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// See [`NodeConfig::event_wake`]: longer than FreeSWITCH takes to fire the events of a mute or
/// a join on a busy node (17 ms at the 99th percentile, measured with `event_latency`).
pub const DEFAULT_EVENT_WAKE: Duration = Duration::from_millis(200);
/// The longest a node's event connection is woken for a command another instance sends to it
/// ([`NodeHandle::events_expected_in`]): that instance sends it right after writing its intent,
/// which is how this one hears of it; FreeSWITCH's own look at its queue comes within 20 ms
/// anyway.
pub const FOREIGN_WAKE: Duration = Duration::from_millis(50);
/// See [`NodeConfig::talking_interval`].
pub const DEFAULT_TALKING_INTERVAL: Duration = Duration::from_millis(200);

/// How to reach and use one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub prefix: NodePrefix,
    pub addr: String,
    pub password: String,
    /// The mod_conference profile rooms are created with.
    pub profile: String,
    /// Where control legs are originated (`null/switchyard` needs no media).
    pub control_endpoint: String,
    /// Command connections besides the event connection. FreeSWITCH runs the commands of one
    /// connection one at a time, so this many commands run at once; each goes to the
    /// connection with the fewest commands in flight.
    pub command_connections: usize,
    /// No bytes for this long means the node is gone (about 2.5 heartbeat periods).
    pub silence_timeout: Duration,
    /// How often the node is asked a cheap command on a connection of its own, to find a node
    /// that hangs with its connections open ([`probe`]); zero: never.
    pub probe_interval: Duration,
    /// A probe unanswered this long makes the node hung: its commands are refused at once
    /// until it answers.
    pub probe_deadline: Duration,
    /// How often the store is compared with the node and repaired.
    pub audit_interval: Duration,
    /// A second snapshot this long after the one taken on (re)connecting. FreeSWITCH answers
    /// `show channels` from its core database, which its SQL thread updates a few hundred
    /// milliseconds behind the events (measured on 1.11: 0.2–0.3 s idle): a call that hung up
    /// just before we connected is still listed, and its hangup events went out before we
    /// subscribed, so without this second look its session would stay live until the audit.
    pub settle_resync: Duration,
    /// Joins not confirmed within this time fail.
    pub join_timeout: Duration,
    pub command_timeout: Duration,
    /// The most commands this instance has in flight to the node at once (0: no bound): one
    /// more is refused at once (`NodeError::Busy`, 503), not queued behind a node that answers
    /// late, where it would hold its request's memory until `command_timeout`.
    pub max_in_flight: usize,
    /// The directory on the node where room recordings are written.
    pub recordings_dir: String,
    /// Where this controller reads those files (a shared volume); `None`: the same path.
    pub recordings_local_dir: Option<std::path::PathBuf>,
    /// Talking events are held this long and only each member's last one applied: a room's
    /// `conference.member.talking` webhooks are at least this far apart, a spurt shorter than
    /// it is not told, and a busy room costs one write per interval. Zero: applied at once.
    pub talking_interval: Duration,
    /// The SIP profile dial-outs to `sip:` destinations leave through.
    pub dialout_profile: String,
    /// The gateway numbers are dialed through (none: no numbers).
    pub gateway: Option<String>,
    /// Where the other nodes reach this node's node-to-node SIP profile (see `bridge`).
    pub node_sip: Option<std::net::SocketAddr>,
    /// After each command sent to the node, its event connection is kept awake this long
    /// (`esl::Waker`): FreeSWITCH then hands over the events the command causes within
    /// about 2 ms instead of up to 20 ms. Zero: never woken.
    pub event_wake: Duration,
}

impl NodeConfig {
    /// Where the node writes a recording.
    pub fn recording_path(&self, id: &uuid::Uuid) -> String {
        format!("{}/{id}.wav", self.recordings_dir.trim_end_matches('/'))
    }

    /// Where this controller reads a recording the node wrote at `path`.
    pub fn local_recording_path(&self, path: &str) -> Option<std::path::PathBuf> {
        let name = std::path::Path::new(path).file_name()?;
        let dir = match &self.recordings_local_dir {
            Some(dir) => dir.clone(),
            None => std::path::PathBuf::from(&self.recordings_dir),
        };
        Some(dir.join(name))
    }

    pub fn new(
        prefix: NodePrefix,
        addr: impl Into<String>,
        password: impl Into<String>,
    ) -> NodeConfig {
        NodeConfig {
            prefix,
            addr: addr.into(),
            password: password.into(),
            profile: "switchyard".into(),
            control_endpoint: "null/switchyard".into(),
            command_connections: DEFAULT_COMMAND_CONNECTIONS,
            silence_timeout: Duration::from_secs(50),
            probe_interval: probe::DEFAULT_INTERVAL,
            probe_deadline: probe::DEFAULT_DEADLINE,
            audit_interval: Duration::from_secs(30),
            settle_resync: Duration::from_secs(2),
            join_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(10),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            recordings_dir: "/var/lib/freeswitch/recordings/switchyard".into(),
            recordings_local_dir: None,
            talking_interval: DEFAULT_TALKING_INTERVAL,
            dialout_profile: "inbound".into(),
            gateway: None,
            node_sip: None,
            event_wake: DEFAULT_EVENT_WAKE,
        }
    }
}

/// Which application owns a call: by the DID it dialed, or by the `switchyard_app_id` variable
/// when the dialplan names the owner; and what each app asked for or may do. Shared by the
/// room service and every node's supervisor, and replaced whole by a configuration reload
/// ([`AppDirectory::replace`]): each lookup sees one directory, the old or the new.
#[derive(Debug, Default)]
pub struct AppDirectory {
    now: arc_swap::ArcSwap<Directory>,
}

#[derive(Debug, Clone, Default)]
struct Directory {
    by_did: HashMap<String, AppId>,
    apps: Vec<AppId>,
    /// The apps that asked for talking events.
    talking: std::collections::HashSet<AppId>,
    /// Where each app may dial out to, and the caller ids it may present.
    dialout: HashMap<AppId, dial_policy::DialPolicy>,
    /// A dial-out host name that does not resolve passes `*` (the lab: its simulated nodes
    /// dial nobody).
    dial_unresolved_ok: bool,
    /// Each app's default `(empty_timeout, departure_timeout)` for its new rooms, seconds.
    lifetime: HashMap<AppId, (u64, u64)>,
}

impl Clone for AppDirectory {
    fn clone(&self) -> AppDirectory {
        AppDirectory {
            now: arc_swap::ArcSwap::new(self.now.load_full()),
        }
    }
}

impl AppDirectory {
    pub fn new() -> AppDirectory {
        AppDirectory::default()
    }

    /// Changes the directory being built (at start, or for a reload's new one).
    fn edit(&mut self, change: impl FnOnce(&mut Directory)) {
        let mut d = Directory::clone(&self.now.load());
        change(&mut d);
        self.now.store(Arc::new(d));
    }

    /// Puts `other`'s content in force here, for every holder of this directory.
    pub fn replace(&self, other: &AppDirectory) {
        self.now.store(other.now.load_full());
    }

    pub fn add_app(&mut self, app: AppId, dids: impl IntoIterator<Item = String>) {
        self.edit(|d| {
            for did in dids {
                d.by_did.insert(did, app.clone());
            }
            d.apps.push(app);
        });
    }

    /// The app gets talking events.
    /// Every application it knows.
    pub fn apps(&self) -> Vec<AppId> {
        self.now.load().apps.clone()
    }

    pub fn hear_talking(&mut self, app: AppId) {
        self.edit(|d| {
            d.talking.insert(app);
        });
    }

    /// Where the app may dial out to, and which caller ids it may present
    /// ([`dial_policy::DialPolicy`]).
    pub fn may_dial(&mut self, app: AppId, policy: dial_policy::DialPolicy) {
        self.edit(|d| {
            d.dialout.insert(app, policy);
        });
    }

    /// Dial-out host names that do not resolve pass `*` (the lab, whose nodes dial nobody).
    pub fn dial_unresolved_names(&mut self) {
        self.edit(|d| d.dial_unresolved_ok = true);
    }

    /// The app's rooms end `empty` seconds after creation if nobody joined, and `departure`
    /// seconds after the last member left, unless a room says otherwise (0: never).
    pub fn set_room_lifetime(&mut self, app: AppId, empty: u64, departure: u64) {
        self.edit(|d| {
            d.lifetime.insert(app, (empty, departure));
        });
    }

    /// The app's default `(empty_timeout, departure_timeout)`, seconds (0: never).
    pub fn room_lifetime(&self, app: &AppId) -> (u64, u64) {
        self.now.load().lifetime.get(app).copied().unwrap_or((0, 0))
    }

    /// How far the app's configuration alone lets it dial `to` (`IfPublic`: see
    /// [`dial_policy::check_public`]).
    pub fn dial_reach(&self, app: &AppId, to: &dialout::Destination) -> dial_policy::Reach {
        self.now
            .load()
            .dialout
            .get(app)
            .map_or(dial_policy::Reach::NotAllowed, |p| p.reach(to))
    }

    /// Whether the app may show `number` as a dial-out's caller id.
    pub fn may_present(&self, app: &AppId, number: &str) -> bool {
        self.now
            .load()
            .dialout
            .get(app)
            .is_some_and(|p| p.may_present(number))
    }

    /// Whether a dial-out host name that does not resolve passes `*`.
    pub fn dial_unresolved_ok(&self) -> bool {
        self.now.load().dial_unresolved_ok
    }

    /// Whether the app asked for talking events.
    pub fn wants_talking(&self, app: &AppId) -> bool {
        self.now.load().talking.contains(app)
    }

    /// The owner of a new call; an unknown app named by a variable is not trusted.
    pub fn owner(&self, did: &str, hint: Option<&str>) -> Option<AppId> {
        let d = self.now.load();
        if let Some(app) = hint.and_then(|h| d.apps.iter().find(|a| a.as_str() == h)) {
            return Some(app.clone());
        }
        d.by_did.get(did).cloned()
    }
}

/// A node as the rest of the controller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeState {
    Connecting,
    /// Connected, and reading the node's state (channels, rooms) before it is used.
    Resyncing,
    /// Connected and resynced; `core_uuid` identifies the FreeSWITCH process.
    Up {
        core_uuid: String,
    },
    /// Not reachable right now; the supervisor keeps trying.
    Down {
        reason: String,
    },
    /// The node refused our credentials; the supervisor gave up. An operator must act.
    Failed {
        reason: String,
    },
}

tokio::task_local! {
    /// The instant from which no command may be sent to a node from this task: a member
    /// command another instance sent on gives up then (`api/forward.rs`), and one the node
    /// carried out after that would be answered "outcome unknown" for nothing. Checked just
    /// before each command is written (reads and a stalling store before it count); unset, no
    /// limit.
    pub static SEND_BEFORE: std::time::Instant;
}

/// [`NodeError::TooLate`] once this task's [`SEND_BEFORE`] has passed.
fn in_time() -> Result<(), NodeError> {
    match SEND_BEFORE.try_with(|until| std::time::Instant::now() >= *until) {
        Ok(true) => Err(NodeError::TooLate),
        _ => Ok(()),
    }
}

/// Why a command could not be carried out on a node.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    #[error("media node {0} is not available")]
    Unavailable(String),
    /// The operator took the node out of service: it takes no new rooms or dial-outs.
    #[error("media node {0} is draining")]
    Draining(String),
    #[error("media node rejected the command: {0}")]
    Rejected(String),
    #[error("media node did not answer in time")]
    Timeout,
    #[error("unknown media node {0}")]
    Unknown(String),
    /// This instance has `max_in_flight` commands waiting on the node already.
    #[error("media node {0} has too many commands in flight")]
    Busy(String),
    /// The node's connections are open but it answers nothing ([`probe`]).
    #[error("media node {0} is not answering")]
    Hung(String),
    /// The node's sessions are at the share kept spare for calls into rooms already made.
    #[error("media node {0} has no sessions to spare")]
    Full(String),
    /// Not sent: the task's time to send it ([`SEND_BEFORE`]) was over.
    #[error("the command's time to be sent was over; it was not sent")]
    TooLate,
}

/// The permits of a node's bound on commands in flight ([`NodeConfig::max_in_flight`]; 0: none).
fn permits_of(config: &NodeConfig) -> usize {
    match config.max_in_flight {
        0 => tokio::sync::Semaphore::MAX_PERMITS,
        n => n,
    }
}

/// A live link to a node: its state and its command connections.
#[derive(Clone)]
pub struct NodeLink {
    pub state: NodeState,
    pub commands: Vec<Client>,
    /// How the node speaks text (read from `show files` as it comes up).
    pub speech: commands::Speech,
    /// Whether it answers at all, as this connected period's probe finds ([`probe`]).
    pub health: watch::Receiver<probe::Health>,
    /// Wakes this period's event connection while a command's events are expected
    /// ([`NodeConfig::event_wake`]).
    pub wake: Option<crate::esl::Waker>,
}

impl NodeLink {
    /// How long the node has been hung while connected, if it is.
    pub fn hung(&self) -> Option<Duration> {
        match self.state {
            NodeState::Up { .. } | NodeState::Resyncing => self.health.borrow().hung_for(),
            _ => None,
        }
    }
}

/// A cheap handle to one node.
#[derive(Clone)]
pub struct NodeHandle {
    pub config: Arc<NodeConfig>,
    link: watch::Receiver<NodeLink>,
    next: Arc<AtomicUsize>,
    effects: tokio::sync::mpsc::UnboundedSender<reconciler::RoomEffect>,
    /// Whether this instance applies the node's events ([`fleet`]).
    owns: watch::Receiver<bool>,
    /// What this instance's reconciler of the node counted.
    stats: Arc<reconciler::Stats>,
    /// One permit per command in flight to the node ([`NodeConfig::max_in_flight`]).
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Intents this instance's reconciler of the node folds into its next write of their
    /// room ([`intents`]).
    intents: Arc<intents::Intents>,
}

impl NodeHandle {
    pub(crate) fn new(
        config: Arc<NodeConfig>,
        link: watch::Receiver<NodeLink>,
        effects: tokio::sync::mpsc::UnboundedSender<reconciler::RoomEffect>,
        owns: watch::Receiver<bool>,
        stats: Arc<reconciler::Stats>,
        intents: Arc<intents::Intents>,
    ) -> NodeHandle {
        let permits = permits_of(&config);
        NodeHandle {
            config,
            link,
            next: Arc::new(AtomicUsize::new(0)),
            effects,
            owns,
            stats,
            in_flight: Arc::new(tokio::sync::Semaphore::new(permits)),
            intents,
        }
    }

    /// The intents waiting for this instance's next write of their room ([`intents`]).
    pub fn intents(&self) -> &Arc<intents::Intents> {
        &self.intents
    }

    /// Refuses at once when the node has `max_in_flight` commands of this instance waiting
    /// already: checked before a command's intent is written, so a command that would be
    /// refused costs the store nothing.
    pub fn has_room_for_a_command(&self) -> Result<(), NodeError> {
        if self.is_hung() {
            return Err(self.hung_error());
        }
        match self.in_flight.available_permits() {
            0 => Err(self.busy()),
            _ => Ok(()),
        }
    }

    /// How many commands of this instance wait on the node now.
    pub fn commands_in_flight(&self) -> usize {
        permits_of(&self.config).saturating_sub(self.in_flight.available_permits())
    }

    fn busy(&self) -> NodeError {
        NodeError::Busy(self.config.prefix.to_string())
    }

    /// A permit for one command in flight, or `Busy` at once.
    fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, NodeError> {
        self.in_flight.try_acquire().map_err(|_| self.busy())
    }

    /// What this instance's reconciler of the node counted (all zero where another instance
    /// applies the node's events).
    pub fn stats(&self) -> &reconciler::Stats {
        &self.stats
    }

    /// Whether this controller instance applies the node's events (it alone, in a fleet).
    pub fn applies_events(&self) -> bool {
        *self.owns.borrow()
    }

    /// Hands work to the node's supervisor (which deduplicates control-leg originates). While
    /// the node is down the request is dropped: the resync after reconnecting finds the same work.
    pub fn request(&self, effect: reconciler::RoomEffect) {
        let _ = self.effects.send(effect);
    }

    /// The FreeSWITCH process the node runs, while it is up.
    pub fn core_uuid(&self) -> Option<String> {
        match &self.link.borrow().state {
            NodeState::Up { core_uuid } => Some(core_uuid.clone()),
            _ => None,
        }
    }

    /// How the node speaks text, as last read when it came up.
    pub fn speech(&self) -> commands::Speech {
        self.link.borrow().speech
    }

    pub fn state(&self) -> NodeState {
        self.link.borrow().state.clone()
    }

    pub fn is_up(&self) -> bool {
        matches!(self.link.borrow().state, NodeState::Up { .. })
    }

    /// How long the node has been hung (connected, answering nothing: [`probe`]), if it is.
    /// Its commands are refused meanwhile ([`NodeError::Hung`]).
    pub fn hung(&self) -> Option<Duration> {
        self.link.borrow().hung()
    }

    pub fn is_hung(&self) -> bool {
        self.hung().is_some()
    }

    fn hung_error(&self) -> NodeError {
        NodeError::Hung(self.config.prefix.to_string())
    }

    /// Waits until the node is up (or `timeout` passes).
    pub async fn wait_up(&self, timeout: Duration) -> bool {
        let mut link = self.link.clone();
        tokio::time::timeout(
            timeout,
            link.wait_for(|l| matches!(l.state, NodeState::Up { .. })),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }

    /// Waits until the node, up now or later, is up no more (its Event Socket closed, or went
    /// silent); `false` if the supervisor stopped first.
    pub async fn lost(&self) -> bool {
        let mut link = self.link.clone();
        if link
            .wait_for(|l| matches!(l.state, NodeState::Up { .. }))
            .await
            .is_err()
        {
            return false;
        }
        link.wait_for(|l| !matches!(l.state, NodeState::Up { .. }))
            .await
            .is_ok()
    }

    /// A command connection and the node's health, or why no command can go now.
    fn client(
        &self,
        command: Option<&ApiCommand>,
    ) -> Result<(Client, watch::Receiver<probe::Health>), NodeError> {
        let link = self.link.borrow();
        if !matches!(link.state, NodeState::Up { .. }) || link.commands.is_empty() {
            return Err(NodeError::Unavailable(self.config.prefix.to_string()));
        }
        if link.hung().is_some() {
            return Err(self.hung_error());
        }
        let client = least_busy(&link.commands, self.next.fetch_add(1, Ordering::Relaxed));
        if let Some(wake) = &link.wake {
            match command {
                Some(command) => wake.wake_until_heard(command.awaited(), self.config.event_wake),
                None => wake.wake_for(self.config.event_wake),
            }
        }
        Ok((client.clone(), link.health.clone()))
    }

    /// `work` on the node, failed as timed out as soon as the node is found hung while it
    /// waits: whether it was carried out is as unknown as after a timeout (its answer is only
    /// earlier), and a hung node may not answer for long.
    async fn unless_hung<T>(
        &self,
        health: watch::Receiver<probe::Health>,
        work: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, NodeError> {
        tokio::select! {
            result = work => result.map_err(|e| self.error(e)),
            () = probe::hung(health) => Err(NodeError::Timeout),
        }
    }

    /// Another instance changed `room`, a room on this node: an API command's intent, which
    /// that instance sends to the node right after. While this instance applies the node's
    /// events, their connection is woken until an event of the room comes (at most
    /// [`FOREIGN_WAKE`], and never past the node's `event_wake`), as for a command of its own;
    /// otherwise FreeSWITCH would hand the command's events over up to 20 ms late.
    pub fn events_expected_in(&self, room: &crate::conference::RoomId) {
        if let Some(wake) = &self.link.borrow().wake {
            wake.wake_until_heard(
                &[("Conference-Name", room.as_str().to_owned())],
                self.config.event_wake.min(FOREIGN_WAKE),
            );
        }
    }

    /// Runs an API command on one of the node's command connections.
    pub async fn api(&self, command: &ApiCommand) -> Result<ApiReply, NodeError> {
        let (client, health) = self.client(Some(command))?;
        let _permit = self.permit()?;
        in_time()?;
        let reply = self.unless_hung(health, client.api(command)).await;
        // What the command fired is queued on the node by now (`esl/wake.rs`).
        if !command.awaited().is_empty()
            && let Some(wake) = &self.link.borrow().wake
        {
            wake.nudge_now();
        }
        reply
    }

    /// Runs a command that answers `+OK …` and fails on anything else.
    pub async fn expect_ok(
        &self,
        command: &ApiCommand,
        empty_ok: bool,
    ) -> Result<String, NodeError> {
        self.api(command)
            .await?
            .expect_ok(empty_ok)
            .map_err(|e| self.error(e))
    }

    /// Runs a command whose reply may carry a `-ERR …` line after others (`norecord` prints
    /// `Stopped recording file …` first; `recording pause` prints `+OK …` then `-ERR …` for an
    /// unknown file, seen on 1.11): any such line fails it.
    pub async fn expect_no_error_line(&self, command: &ApiCommand) -> Result<String, NodeError> {
        let text = self.api(command).await?.text().into_owned();
        if text.lines().any(|l| l.starts_with("-ERR")) {
            return Err(NodeError::Rejected(text.trim_end().to_owned()));
        }
        Ok(text)
    }

    /// Queues a message to a channel (`sendmsg`, e.g. `call-command: unicast`).
    pub async fn sendmsg(&self, command: crate::esl::Command) -> Result<(), NodeError> {
        let (client, health) = self.client(None)?;
        let _permit = self.permit()?;
        self.unless_hung(health, client.sendmsg(command)).await
    }

    /// Runs a slow command in the background (`bgapi`), resolved by its BACKGROUND_JOB.
    /// Not failed when the node is found hung meanwhile (unlike [`NodeHandle::api`]): a job
    /// (an originate) runs on for long anyway, and its result still comes when the node is back.
    pub async fn bgapi(&self, command: &ApiCommand) -> Result<ApiReply, NodeError> {
        let (client, _) = self.client(Some(command))?;
        let _permit = self.permit()?;
        client.bgapi(command).await.map_err(|e| self.error(e))
    }

    fn error(&self, e: ClientError) -> NodeError {
        match e {
            ClientError::CommandFailed { reply, .. } => NodeError::Rejected(reply),
            ClientError::Timeout(_) => NodeError::Timeout,
            other => NodeError::Unavailable(format!("{}: {other}", self.config.prefix)),
        }
    }
}

/// The connection a command should go to: an open one with the fewest commands in flight (a
/// command queued behind a slow one waits for it, as FreeSWITCH runs a connection's commands in
/// turn); ties go round-robin from `turn`. `commands` must not be empty.
fn least_busy(commands: &[Client], turn: usize) -> &Client {
    let n = commands.len();
    (0..n)
        .map(|k| &commands[(turn + k) % n])
        .min_by_key(|c| (c.is_closed(), c.in_flight()))
        .unwrap_or(&commands[turn % n])
}

/// Every configured node; places new rooms on the least-loaded healthy one. Clones share the
/// list, which a configuration reload changes ([`NodePool::add`], [`NodePool::remove`]): each
/// lookup sees the list of its moment.
#[derive(Clone, Default)]
pub struct NodePool {
    nodes: Arc<arc_swap::ArcSwap<Vec<NodeHandle>>>,
    /// Rooms this process is placing that the store's counts do not hold yet, by node: a burst
    /// of creates that all read the same counts is spread, not piled on one node.
    placing: Arc<std::sync::Mutex<HashMap<NodePrefix, usize>>>,
}

/// A node chosen for a room, counted as placing there until dropped (once the store counts the
/// room on the node, or the placement failed).
pub struct Placed {
    pub node: NodeHandle,
    placing: Arc<std::sync::Mutex<HashMap<NodePrefix, usize>>>,
}

impl Drop for Placed {
    fn drop(&mut self) {
        let mut placing = self.placing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = placing.get_mut(&self.node.config.prefix) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                placing.remove(&self.node.config.prefix);
            }
        }
    }
}

impl NodePool {
    pub fn new(nodes: Vec<NodeHandle>) -> NodePool {
        NodePool {
            nodes: Arc::new(arc_swap::ArcSwap::from_pointee(nodes)),
            placing: Arc::default(),
        }
    }

    pub fn get(&self, prefix: &NodePrefix) -> Result<NodeHandle, NodeError> {
        self.nodes
            .load()
            .iter()
            .find(|n| &n.config.prefix == prefix)
            .cloned()
            .ok_or_else(|| NodeError::Unknown(prefix.to_string()))
    }

    /// Which rooms the store keeps in memory after this process writes them
    /// ([`crate::store::Store::keep_rooms_of`]): those of the nodes whose events this instance
    /// applies, and of any node it does not know (one a reload took away).
    pub fn keeps_rooms(&self) -> crate::store::KeepsRooms {
        let pool = self.clone();
        Arc::new(move |node| pool.get(node).ok().is_none_or(|n| n.applies_events()))
    }

    /// What the store tells of rooms other instances change ([`crate::store::Store::on_rooms_changed`]):
    /// the room's node (where it was last seen: a room moved off a draining node keeps its
    /// id), if this instance applies its events, expects them
    /// ([`NodeHandle::events_expected_in`]).
    pub fn expects_events(&self) -> crate::store::RoomsChanged {
        let pool = self.clone();
        Arc::new(move |room, node| {
            if let Ok(node) = pool.get(node) {
                node.events_expected_in(room);
            }
        })
    }

    /// The nodes now.
    pub fn nodes(&self) -> Arc<Vec<NodeHandle>> {
        self.nodes.load_full()
    }

    /// A node added (a reload); it goes last.
    pub fn add(&self, node: NodeHandle) {
        self.nodes.rcu(|nodes| {
            let mut nodes = Vec::clone(nodes);
            nodes.push(node.clone());
            nodes
        });
    }

    /// A node removed (a reload).
    pub fn remove(&self, prefix: &NodePrefix) {
        self.nodes.rcu(|nodes| {
            nodes
                .iter()
                .filter(|n| &n.config.prefix != prefix)
                .cloned()
                .collect::<Vec<_>>()
        });
    }

    /// Among the healthy nodes (up, not hung) `rooms` counts (the others are draining, or not
    /// counted), the one with the fewest live rooms (the store's count, shared by every
    /// controller instance, plus the rooms this process is placing there); ties go to the
    /// first configured. Hold the answer until the store counts the room.
    pub fn place(&self, rooms: &HashMap<NodePrefix, usize>) -> Result<Placed, NodeError> {
        let mut placing = self.placing.lock().unwrap_or_else(|e| e.into_inner());
        let node = self
            .nodes
            .load()
            .iter()
            .filter(|n| n.is_up() && !n.is_hung())
            .filter_map(|n| {
                let prefix = &n.config.prefix;
                let pending = placing.get(prefix).copied().unwrap_or(0);
                Some((n, *rooms.get(prefix)? + pending))
            })
            .min_by_key(|(_, count)| *count)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| {
                NodeError::Unavailable("no healthy media node that is not draining".into())
            })?;
        *placing.entry(node.config.prefix.clone()).or_default() += 1;
        Ok(Placed {
            node,
            placing: self.placing.clone(),
        })
    }
}

/// A node address for logs (never the password).
pub fn describe(config: &NodeConfig) -> String {
    format!("{}@{}", config.prefix, config.addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esl::{ClientConfig, Password, RequestCodec};
    use bytes::Bytes;
    use futures_util::{SinkExt, StreamExt};
    use tokio::sync::{mpsc, oneshot};
    use tokio_util::codec::Framed;

    fn api_response(body: &str) -> Bytes {
        Bytes::from(format!(
            "Content-Type: api/response\nContent-Length: {}\n\n{body}",
            body.len()
        ))
    }

    /// A fake node's command connection named `name`: it answers every `api` with `+OK <name>`,
    /// reports each command it reads on `seen`, and holds the answer to its first command
    /// until `hold` fires (when given), as FreeSWITCH holds a connection behind a slow command.
    async fn connection(
        name: &'static str,
        seen: mpsc::UnboundedSender<(&'static str, String)>,
        hold: Option<oneshot::Receiver<()>>,
    ) -> Client {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut framed = Framed::new(theirs, RequestCodec::default());
            framed
                .send(Bytes::from_static(b"Content-Type: auth/request\n\n"))
                .await
                .unwrap();
            let _auth = framed.next().await.unwrap().unwrap();
            framed
                .send(Bytes::from_static(
                    b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n",
                ))
                .await
                .unwrap();
            // Commands are reported as they arrive (so one queued behind the held answer shows
            // at once) and answered in order by a writer that holds the first answer.
            let (mut sink, mut stream) = framed.split();
            let (answers, mut to_answer) = mpsc::unbounded_channel::<()>();
            tokio::spawn(async move {
                let mut hold = hold;
                while to_answer.recv().await.is_some() {
                    if let Some(release) = hold.take() {
                        let _ = release.await;
                    }
                    let answer = api_response(&format!("+OK {name}"));
                    if sink.send(answer).await.is_err() {
                        return;
                    }
                }
            });
            while let Some(Ok(request)) = stream.next().await {
                let _ = seen.send((name, request.command.clone()));
                let _ = answers.send(());
            }
        });
        let config = ClientConfig {
            command_timeout: Duration::from_secs(30),
            ..ClientConfig::default()
        };
        let (client, _) = Client::handshake(ours, &Password::new("ClueCon").unwrap(), config)
            .await
            .unwrap();
        client
    }

    #[tokio::test]
    async fn a_command_goes_to_the_connection_with_the_fewest_in_flight() {
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let (release, hold) = oneshot::channel();
        let slow = connection("slow", seen_tx.clone(), Some(hold)).await;
        let quick = connection("quick", seen_tx, None).await;
        let (link_tx, link) = watch::channel(NodeLink {
            state: NodeState::Up {
                core_uuid: "core".into(),
            },
            commands: vec![slow.clone(), quick.clone()],
            speech: commands::Speech::Files,
            health: probe::unprobed(),
            wake: None,
        });
        let (effects, _effects_rx) = tokio::sync::mpsc::unbounded_channel();
        let config = NodeConfig::new(NodePrefix::parse("abcde").unwrap(), "fake:1", "ClueCon");
        let node = NodeHandle::new(
            Arc::new(config),
            link,
            effects,
            fleet::Ownership::sole(),
            Arc::default(),
            Arc::default(),
        );
        let cmd = |arg: &str| ApiCommand::new("echo").unwrap().arg(arg).unwrap();

        // The first command goes to the first connection, which holds it.
        let first = tokio::spawn({
            let node = node.clone();
            let cmd = cmd("1");
            async move { node.api(&cmd).await }
        });
        assert_eq!(seen.recv().await.unwrap(), ("slow", "api echo 1".into()));
        assert_eq!(slow.in_flight(), 1);
        // The second goes to the other one; the third too: the held connection has a command
        // in flight (round-robin would queue the third behind the held one).
        for n in ["2", "3"] {
            let command = cmd(n);
            let call = node.api(&command);
            tokio::pin!(call);
            let mut reached = None;
            let reply = loop {
                tokio::select! {
                    reply = &mut call => break reply.unwrap(),
                    Some((to, line)) = seen.recv() => {
                        assert_eq!(to, "quick", "command {n} queued behind the held one: {line}");
                        reached = Some(line);
                    }
                }
            };
            assert_eq!(
                reply.into_data().unwrap().trim(),
                "+OK quick",
                "command {n}"
            );
            let reached = match reached {
                Some(line) => line,
                None => seen.recv().await.unwrap().1,
            };
            assert_eq!(reached, format!("api echo {n}"));
        }
        assert_eq!(quick.in_flight(), 0);
        release.send(()).unwrap();
        let reply = first.await.unwrap().unwrap();
        assert_eq!(reply.into_data().unwrap().trim(), "+OK slow");
        assert_eq!(slow.in_flight(), 0);
        // With both idle again, commands take turns.
        let mut used = Vec::new();
        for n in ["4", "5"] {
            node.api(&cmd(n)).await.unwrap();
            used.push(seen.recv().await.unwrap().0);
        }
        used.sort_unstable();
        assert_eq!(used, ["quick", "slow"]);
        drop(link_tx);
    }
}
