//! The room service: what an application can ask of its rooms and sessions. It checks
//! ownership and state, takes the rate-limit cooldown, records the pending operation in the
//! store, sends the command to the room's node, and leaves confirmation to the node's event
//! stream. It knows the store and the node pool, not HTTP.
//!
//! `lifecycle` creates, lists and deletes rooms; `membership` moves sessions in and out and
//! mutes them; `playback` plays into rooms; `limits` holds the cooldown groups.

mod bridges;
mod coach;
mod dialout;
mod drain;
mod intents;
mod levels;
mod lifecycle;
mod limits;
mod membership;
mod migrate;
mod moderation;
mod moving;
mod playback;
pub mod quotas;
mod recording;
pub mod streams;
mod uploads;

pub use dialout::{DialRequest, Participant};
pub use lifecycle::NewRoom;
pub use migrate::Moved;
pub use playback::PlaybackState;

use std::sync::Arc;
use std::time::Duration;

pub use limits::{CooldownGroup, Cooldowns};

use crate::conference::ops::OpError;
use crate::conference::{
    AppId, DomainEvent, NodePrefix, Room, RoomId, RoomStatus, Session, SessionId,
};
use crate::node::{AppDirectory, NodeError, NodeHandle, NodePool, Placed};
use crate::store::{Store, StoreError, update_room};

/// Why a request could not be carried out; the API maps each to a status code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// It exists but belongs to another application.
    #[error("{0} belongs to a different application")]
    Forbidden(&'static str),
    /// The application may not do this (its configuration says so).
    #[error("{0}")]
    NotPermitted(String),
    #[error("{0}")]
    Conflict(String),
    #[error("conference name already taken for this application")]
    NameTaken(RoomId),
    /// A `command_uid` already used for a different request (`used_for`: what it asked).
    #[error("command_uid was already used for a different request")]
    UidReused { uid: String, used_for: String },
    /// A value that cannot be written into a FreeSWITCH command.
    #[error("{0}")]
    Invalid(String),
    /// The group's cooldown is held for `wait` more.
    #[error("rate limit exceeded for {}", group.as_str())]
    RateLimited {
        group: CooldownGroup,
        wait: Duration,
    },
    /// The room is moving to another node: a 503, asked again in a moment it is served.
    #[error("the room is moving to another media node")]
    Moving,
    /// The app has reached one of its quotas.
    #[error("quota reached: {}", .0.name())]
    Quota(quotas::Reached),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OpError> for ServiceError {
    fn from(e: OpError) -> ServiceError {
        match e {
            OpError::Moving => ServiceError::Moving,
            e => ServiceError::Conflict(e.to_string()),
        }
    }
}

/// What `join` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    Joining,
    AlreadyJoined,
}

pub struct Rooms<S> {
    store: Arc<S>,
    pool: NodePool,
    /// Replaced by a configuration reload, for every clone of the service.
    cooldowns: Arc<arc_swap::ArcSwap<Cooldowns>>,
    /// What each application may do beyond its rooms (where it may dial out to).
    directory: Arc<AppDirectory>,
    /// Rung when a drain asks for its rooms to move (`migrate`), so they start at once.
    migrations: Arc<tokio::sync::Notify>,
    /// Where finished recordings are copied (`[recordings] store = "s3"`), and how long a
    /// download URL lasts; `None`: they stay on the nodes' disks.
    objects: Option<(Arc<crate::objects::ObjectStore>, Duration)>,
    /// How long a recording copied there is kept (`retention_days`); `None`: for ever.
    retention: Option<Duration>,
    /// Recordings listed for a copy that this process found missing from their rooms, and
    /// since when (`uploads`).
    unseen: uploads::Unseen,
    /// Each app's quotas ([`quotas`]); replaced by a configuration reload.
    quotas: Arc<arc_swap::ArcSwap<quotas::Quotas>>,
    /// Rooms being created here, per app, not yet in the store's count.
    creating: quotas::UnderWay,
    /// Dial-outs placed from here and not yet answered or failed, per app.
    dialing: quotas::UnderWay,
    /// The live audio streams this process carries, and how it opens them.
    streams: Arc<streams::StreamsHere>,
}

impl<S: Store> Rooms<S> {
    pub fn new(store: Arc<S>, pool: NodePool) -> Rooms<S> {
        Rooms {
            store,
            pool,
            cooldowns: Arc::default(),
            directory: Arc::default(),
            migrations: Arc::default(),
            objects: None,
            retention: None,
            unseen: uploads::Unseen::default(),
            // None until configured (`serve` sets its configuration's, the lab none).
            quotas: Arc::new(arc_swap::ArcSwap::from_pointee(quotas::Quotas::none())),
            creating: quotas::UnderWay::default(),
            dialing: quotas::UnderWay::default(),
            streams: Arc::default(),
        }
    }

    /// The same service copying finished recordings to `objects` (download URLs lasting
    /// `url_ttl`).
    pub fn with_objects(
        mut self,
        objects: Option<crate::objects::ObjectStore>,
        url_ttl: Duration,
        retention: Option<Duration>,
    ) -> Rooms<S> {
        self.objects = objects.map(|o| (Arc::new(o), url_ttl));
        self.retention = retention;
        self
    }

    /// How long a recording's download URL lasts.
    pub fn url_ttl(&self) -> Duration {
        self.objects
            .as_ref()
            .map_or(Duration::from_secs(3600), |(_, ttl)| *ttl)
    }

    /// The object store recordings go to, if any.
    pub fn objects(&self) -> Option<&crate::objects::ObjectStore> {
        self.objects.as_ref().map(|(o, _)| &**o)
    }

    /// The same service with the applications' permissions (dial-out destinations).
    pub fn with_directory(mut self, directory: Arc<AppDirectory>) -> Rooms<S> {
        self.directory = directory;
        self
    }

    /// The same service with other cooldown windows.
    pub fn with_cooldowns(self, cooldowns: Cooldowns) -> Rooms<S> {
        self.set_cooldowns(cooldowns);
        self
    }

    /// New cooldown windows (a configuration reload), for every clone of the service.
    pub fn set_cooldowns(&self, cooldowns: Cooldowns) {
        self.cooldowns.store(Arc::new(cooldowns));
    }

    /// The applications' directory the service and the nodes' supervisors share.
    pub fn directory(&self) -> &AppDirectory {
        &self.directory
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn store_arc(&self) -> Arc<S> {
        self.store.clone()
    }

    pub fn pool(&self) -> &NodePool {
        &self.pool
    }

    /// A node for a room, among the pool's nodes that `eligible` keeps: the least loaded by the
    /// store's live-room counts (asked all at once: one round trip with Redis, not one per
    /// node) and this process's placements in flight ([`NodePool::place`]). Hold the answer
    /// until the store counts the room on the node.
    async fn place_room(
        &self,
        eligible: impl Fn(&NodeHandle) -> bool,
    ) -> Result<Placed, ServiceError> {
        let nodes: Vec<NodePrefix> = self
            .pool
            .nodes()
            .iter()
            .filter(|n| eligible(n))
            .map(|n| n.config.prefix.clone())
            .collect();
        let counts = nodes
            .iter()
            .map(|prefix| self.store.node_room_count(prefix));
        let counts = futures_util::future::try_join_all(counts).await?;
        Ok(self.pool.place(&nodes.into_iter().zip(counts).collect())?)
    }

    /// A live room of this app; another app's room is `Forbidden`, an unknown or deleted one
    /// `NotFound`.
    pub async fn room(&self, app: &AppId, id: &RoomId) -> Result<Room, ServiceError> {
        let room = self.room_any(app, id).await?;
        // A deleted room is gone for the API at once, while the node still tears it down.
        if room.status >= RoomStatus::Terminating {
            return Err(ServiceError::NotFound("room"));
        }
        Ok(room)
    }

    /// A room of this app in any status (ended rooms stay readable while the store keeps
    /// them).
    pub async fn room_any(&self, app: &AppId, id: &RoomId) -> Result<Room, ServiceError> {
        if let Some(room) = self.store.room(app, id).await? {
            return Ok(room);
        }
        match self.store.room_app(id).await? {
            Some(owner) if &owner != app => Err(ServiceError::Forbidden("room")),
            _ => Err(ServiceError::NotFound("room")),
        }
    }

    /// A session of this app, live or ended. Another app's is forbidden; one the lookup gives
    /// to this app with no record yet (a call being stored: its lookup is written first) is
    /// not found yet.
    pub async fn session(&self, app: &AppId, id: &SessionId) -> Result<Session, ServiceError> {
        match self.store.session(app, id).await? {
            Some(s) => Ok(s),
            None => match self.store.session_app(id).await? {
                Some(owner) if &owner != app => Err(ServiceError::Forbidden("session")),
                _ => Err(ServiceError::NotFound("session")),
            },
        }
    }

    async fn live_session(&self, app: &AppId, id: &SessionId) -> Result<Session, ServiceError> {
        let s = self.session(app, id).await?;
        if s.state == crate::conference::SessionState::Ended {
            return Err(ServiceError::NotFound("session"));
        }
        Ok(s)
    }

    /// The node a command on a member goes to, refused at once (`NodeError::Busy`) when this
    /// instance has `max_in_flight` commands waiting on it already: checked before the command's
    /// cooldown and intent are taken, so a refusal costs the store nothing.
    fn node_for_command(
        &self,
        node: &crate::conference::NodePrefix,
    ) -> Result<crate::node::NodeHandle, ServiceError> {
        let node = self.pool.get(node)?;
        node.has_room_for_a_command()?;
        Ok(node)
    }

    /// Takes the group's cooldown for `subject` (a room or session id), or says how long to wait.
    /// Called only once a command is about to be sent.
    async fn cool(
        &self,
        app: &AppId,
        group: CooldownGroup,
        subject: &str,
    ) -> Result<(), ServiceError> {
        let ttl = self.cooldowns.load().window(group);
        // A window of 0 holds nothing back: no round trip to the store.
        if ttl.is_zero() {
            return Ok(());
        }
        let key = format!("{}:{subject}", group.as_str());
        for _ in 0..2 {
            if self.store.take_cooldown(app, &key, ttl).await? {
                return Ok(());
            }
            if let Some(wait) = self.store.cooldown_left(app, &key).await? {
                return Err(ServiceError::RateLimited { group, wait });
            }
            // It expired between the two calls: try once more.
        }
        Err(ServiceError::RateLimited { group, wait: ttl })
    }

    /// One atomic room change through a domain operation.
    async fn change(
        &self,
        app: &AppId,
        id: &RoomId,
        mut op: impl FnMut(&mut Room) -> Result<crate::conference::Applied, OpError> + Send,
    ) -> Result<Vec<DomainEvent>, ServiceError> {
        let result = update_room(&*self.store, app, id, |r| {
            let applied = op(r)?;
            Ok::<_, OpError>((applied.events.clone(), applied.events))
        })
        .await?;
        match result {
            None => Err(ServiceError::NotFound("room")),
            Some(Err(e)) => Err(e.into()),
            Some(Ok((_, events))) => Ok(events),
        }
    }
}

/// A command that could not be built from its parts (the API validates before, so this is rare).
fn invalid(e: crate::esl::CommandError) -> ServiceError {
    ServiceError::Invalid(e.to_string())
}
