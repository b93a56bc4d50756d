//! Where room state lives: the [`Store`] trait and its two implementations, [`memory`] (embedded,
//! for `switchyard lab` and unit tests) and [`redis`] (production). Both pass one conformance
//! suite (`tests/store/conformance.rs`).
//!
//! A change to one room is one atomic step: the room (guarded by its `seq`, so two writers can
//! never both win), its indexes, and its domain events appended to the webhook outbox. Callers use
//! [`update_room`], which loads, applies, saves and retries on a lost race (or [`modify_room`],
//! the same without the saved room handed back); the memory store does it in one step under its
//! lock instead. That loop and batches of room changes are in `change`; the webhook delivery
//! records in `delivery`; the outbox's wake-ups in [`bell`].

pub mod bell;
mod change;
pub(crate) mod conn_slot;
mod delivery;
pub mod fleet;
pub mod keys;
pub mod memory;
mod position;
pub mod redis;
pub mod room_cache;

use std::future::Future;
use std::time::Duration;

use uuid::Uuid;

pub use change::{
    IndexDelta, Modified, RoomChange, Updated, load_apply_save, modify_room, modify_rooms,
    unique_name, update_room,
};
pub use delivery::{
    DEAD_LETTERS_KEPT, DELIVERY_LOG_KEPT, DeadLetter, Deliveries, DeliveryAttempt, Fence, log_id,
    outbox_order,
};
pub use position::{OutboxEntry, Position, entry_id, entry_order, replicated_outbox};

/// Whether a room on a node is worth keeping in memory once this process has written it
/// ([`Store::keep_rooms_of`]).
pub type KeepsRooms = std::sync::Arc<dyn Fn(&NodePrefix) -> bool + Send + Sync>;

/// Told of a room another process changed, and the node it is on as this process last knew it
/// (the one its id names if unknown) ([`Store::on_rooms_changed`]).
pub type RoomsChanged = std::sync::Arc<dyn Fn(&RoomId, &NodePrefix) + Send + Sync>;

/// How long a lease's holder may act on it, counted from just before the request that took or
/// renewed it (the store started it later still): its time to live less a margin, a tenth (at
/// least 20 ms), for the clocks' rates and the step between a check and the act it allows
/// (issue 57: node leases and the webhook lease alike).
pub fn lease_holds_for(ttl: Duration) -> Duration {
    ttl.saturating_sub((ttl / 10).max(Duration::from_millis(20)))
}

use crate::conference::{AppId, DomainEvent, Micros, NodePrefix, Room, RoomId, Session, SessionId};

/// A store failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or did not answer in time; the operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back.
    #[error("corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// Another writer kept winning the race for this room.
    #[error("too much contention on {0}")]
    Contention(String),
    /// A write made on the strength of a lease was refused: its writer no longer holds the
    /// lease, or holds it under a newer generation than the token it carried (it lost the lease
    /// and took it again). The writer must stop acting on what it had; retrying is no use.
    #[error("refused, the lease is not held as claimed: {0}")]
    Fenced(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Contention(_))
    }
}

/// A media node being drained (fleet-wide, kept in the store): it takes no new rooms or
/// dial-outs; with `migrate`, its rooms are moved to other nodes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Drain {
    /// When the drain began (Unix microseconds).
    pub since: Micros,
    pub migrate: bool,
}

/// Outcome of creating a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Created,
    /// The application already has a live room with this name.
    NameTaken(RoomId),
}

/// Outcome of a guarded write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Saved,
    /// The stored `seq` was not the expected one: reload and apply again.
    Conflict,
}

/// A page of a listing: items and the position to continue after, if there is more.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// (created_at, id) of the last item, when more may follow.
    pub next: Option<(Micros, String)>,
}

/// The storage the controller needs. Every method is one round trip (or one atomic script).
pub trait Store: Deliveries + Send + Sync + 'static {
    /// The uuid of a new room's id (`RoomId::new`) named `name`: a store that spreads an app
    /// over shards draws it so that the room lands where its name's uniqueness is kept.
    fn new_room_uuid(&self, name: &str) -> uuid::Uuid {
        let _ = name;
        uuid::Uuid::new_v4()
    }

    /// Stores a new room (its id from [`Store::new_room_uuid`]), unless the app already has a
    /// live room with that name.
    fn create_room(
        &self,
        room: &Room,
        events: &[DomainEvent],
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;

    fn room(
        &self,
        app: &AppId,
        id: &RoomId,
    ) -> impl Future<Output = Result<Option<Room>, StoreError>> + Send;

    /// The room as stored now, past any cache: for a refusal that a cached read (a moment
    /// behind a change another instance just made) would get wrong.
    fn room_fresh(
        &self,
        app: &AppId,
        id: &RoomId,
    ) -> impl Future<Output = Result<Option<Room>, StoreError>> + Send {
        self.room(app, id)
    }

    /// Drops this process's cached copy of a room, if it keeps one: the next read comes from
    /// the store itself. For a decision that changes nothing in the room but destroys something
    /// elsewhere (a leg hung up as unexpected), which a cached read a moment behind another
    /// instance's change would get wrong and no `seq` guard would catch.
    fn forget_cached(&self, _app: &AppId, _id: &RoomId) {}

    /// Which application a room belongs to (for events that name only the room).
    fn room_app(
        &self,
        id: &RoomId,
    ) -> impl Future<Output = Result<Option<AppId>, StoreError>> + Send;

    /// Replaces `old` by `new` if the stored seq is still `old.seq`, with the index changes and
    /// the events, atomically.
    fn save_room(
        &self,
        old: &Room,
        new: &Room,
        events: &[DomainEvent],
    ) -> impl Future<Output = Result<Saved, StoreError>> + Send;

    /// The app and room a conferencecall or recording id belongs to.
    fn ref_owner(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<(AppId, RoomId)>, StoreError>> + Send;

    /// Schedules the end of a room at `at` (its timeout). Written before the room itself, so a
    /// crash in between leaves only a timeout for a room that does not exist.
    fn schedule_timeout(
        &self,
        app: &AppId,
        id: &RoomId,
        at: Micros,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Rooms whose timeout is due at `now`, at most `limit`. Each is handed to one caller: the
    /// claim holds for `lease`, after which a room whose timeout was not cleared (its claimer
    /// died) is handed out again.
    fn claim_timeouts(
        &self,
        now: Micros,
        lease: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(AppId, RoomId)>, StoreError>> + Send;

    /// The room's timeout was carried out (or no longer applies).
    fn clear_timeout(
        &self,
        app: &AppId,
        id: &RoomId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The app's rooms by creation time, after `after` (exclusive).
    fn rooms_of_app(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Room>, StoreError>> + Send;

    /// The app's rooms that have not ended (some may be ending), by creation time, after
    /// `after` (exclusive): a page costs what it holds, however many ended rooms the app keeps.
    fn live_rooms_of_app(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Room>, StoreError>> + Send;

    /// The app's live rooms that record or carry a live stream ([`Room::has_media`]), by
    /// creation time, after `after`: a page costs what it holds, however many live rooms the
    /// app has. (Redis: its media index, which the room writes keep; the default filters the
    /// live rooms.)
    fn media_rooms_of_app(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Room>, StoreError>> + Send {
        async move {
            let mut page = self.live_rooms_of_app(app, after, limit).await?;
            page.items.retain(Room::has_media);
            Ok(page)
        }
    }

    /// Puts the app's live rooms with media that [`Store::media_rooms_of_app`] misses into its
    /// index (Redis: rooms whose recording or stream an older controller began during a
    /// rolling upgrade); how many. Reads every live room of the app: run at start and now and
    /// then.
    fn index_media_rooms(
        &self,
        app: &AppId,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        let _ = app;
        async { Ok(0) }
    }

    /// How many rooms the app's live index holds: its live rooms, and perhaps a few ended
    /// ones not yet taken out (a page of [`Store::live_rooms_of_app`] takes them out). What a
    /// quota compares first, for a count, not a read of every room.
    fn live_room_count(
        &self,
        app: &AppId,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Puts the node's live rooms that [`Store::live_rooms_of_app`] misses into its index
    /// (Redis: rooms made before the index existed, or by an older controller in a rolling
    /// upgrade); how many. Run at start and now and then.
    fn index_live_rooms(
        &self,
        node: &NodePrefix,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        let _ = node;
        async { Ok(0) }
    }

    /// Live rooms placed on a node.
    fn rooms_on_node(
        &self,
        node: &NodePrefix,
    ) -> impl Future<Output = Result<Vec<(AppId, RoomId)>, StoreError>> + Send;

    /// Lists a room on `node` (`listed`) or not: a room moving to another node is listed on
    /// both until the move is over (`rooms::migrate`). A store that derives the list from the
    /// rooms themselves does nothing.
    fn list_on_node(
        &self,
        node: &NodePrefix,
        app: &AppId,
        room: &RoomId,
        listed: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (node, app, room, listed);
        async { Ok(()) }
    }

    /// Lists a recording as having a copy to make in the object store (`pending`), or no
    /// longer. Listed as the recording starts, before its command is sent: whatever happens to
    /// the controller after, an uploader finds it (`rooms/uploads.rs`).
    fn set_upload_pending(
        &self,
        app: &AppId,
        room: &RoomId,
        recording: uuid::Uuid,
        pending: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The recordings listed by [`Store::set_upload_pending`].
    fn uploads_pending(
        &self,
    ) -> impl Future<Output = Result<Vec<(AppId, RoomId, uuid::Uuid)>, StoreError>> + Send;

    /// A recording to delete at `at` (its retention), once.
    fn expire_recording_at(
        &self,
        app: &AppId,
        room: &RoomId,
        recording: uuid::Uuid,
        at: Micros,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Recordings whose time to go has come, each handed to one caller only (taken off the
    /// schedule as it is handed out).
    fn claim_expired_recordings(
        &self,
        now: Micros,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(AppId, RoomId, uuid::Uuid)>, StoreError>> + Send;

    /// Marks `node` draining (`Some`), or takes it back into service (`None`), for every
    /// controller instance on the store.
    fn set_draining(
        &self,
        node: &NodePrefix,
        drain: Option<&Drain>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The nodes being drained.
    fn draining(
        &self,
    ) -> impl Future<Output = Result<std::collections::BTreeMap<NodePrefix, Drain>, StoreError>> + Send;

    /// How many live rooms a node holds (room placement).
    fn node_room_count(
        &self,
        node: &NodePrefix,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    fn session(
        &self,
        app: &AppId,
        id: &SessionId,
    ) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;

    /// Which application a session belongs to.
    fn session_app(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = Result<Option<AppId>, StoreError>> + Send;

    /// Stores a session version; an older `seq` than the stored one is ignored.
    fn save_session(
        &self,
        session: &Session,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The app's live sessions by creation time, after `after` (exclusive).
    fn sessions_of_app(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Session>, StoreError>> + Send;

    /// Live sessions on a node.
    fn sessions_on_node(
        &self,
        node: &NodePrefix,
    ) -> impl Future<Output = Result<Vec<Session>, StoreError>> + Send;

    /// The room a session is in (joining, joined or leaving).
    fn room_of_session(
        &self,
        app: &AppId,
        id: &SessionId,
    ) -> impl Future<Output = Result<Option<RoomId>, StoreError>> + Send;

    /// Takes a cooldown: true if it was free (and is now held for `ttl`), false if still held.
    fn take_cooldown(
        &self,
        app: &AppId,
        key: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// How long a cooldown taken with [`Store::take_cooldown`] is still held; `None` when free.
    /// (The API tells a refused caller how long to wait.)
    fn cooldown_left(
        &self,
        app: &AppId,
        key: &str,
    ) -> impl Future<Output = Result<Option<Duration>, StoreError>> + Send;

    /// The answer [`Store::remember`] holds for `key`, without storing anything. (An idempotent
    /// command repeated within the window is answered from here and sends nothing.)
    fn recall(
        &self,
        app: &AppId,
        key: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Remembers the answer to a command for `ttl`; returns the earlier answer if there is one.
    fn remember(
        &self,
        app: &AppId,
        key: &str,
        answer: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Replaces (`Some`, kept for `ttl`) or drops (`None`) what [`Store::remember`] holds for
    /// `key`. (A command reserves its key with `remember`, then settles it with its answer, or
    /// frees it when it failed.)
    fn settle(
        &self,
        app: &AppId,
        key: &str,
        answer: Option<&str>,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Domain events of an app appended after `after` (a [`Position`]; `None` = from the
    /// start), each with its stable id and the position after it.
    fn outbox(
        &self,
        app: &AppId,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxEntry>, StoreError>> + Send;

    /// Whether what the store holds now would survive a failover: the replicas configured to
    /// be waited for have it (`Ok(false)`: not yet, after a short wait). What is acted on only
    /// if it survives (a webhook's outbox entry, a node's applied position) is checked with it
    /// once read. A store with no replica to wait for: `Ok(true)` at once.
    fn replicated(&self) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async { Ok(true) }
    }

    /// Counts the store's failovers (its moves to a Sentinel set's new master), each of which
    /// may have lost the writes the old master had not passed on: it changes before the first
    /// command goes to the new master. `None`: a store that cannot fail over that way.
    fn failovers(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Wakes a reader of the app's outbox when it grows, from any controller instance on the
    /// same store: the webhook dispatcher and the event stream wait on it instead of polling.
    fn outbox_watch(&self, app: &AppId) -> bell::OutboxWatch;
    /// Tells a store that keeps rooms in memory which rooms are worth keeping after this
    /// process writes them: those `keeps` says yes to, by the node the room is on (the nodes
    /// whose events this process applies: it writes their rooms next, as the node confirms).
    /// A room of another node, written here (an API command's intent), is next written by the
    /// process that applies that node; keeping it would cost a read after the write and a
    /// notice when that process writes. Until told, every room written is kept.
    fn keep_rooms_of(&self, keeps: KeepsRooms) {
        let _ = keeps;
    }
    /// Tells `changed`, from now on, of each room this process keeps in memory that another
    /// process changes, as soon as the store hears of it: synchronously, on the store's own
    /// task (keep it short). An API command's intent, written by the instance that took the
    /// command just before it sends the command to the node, is how the instance that applies
    /// the node's events hears that some are coming. A store that hears of no other process's
    /// writes tells nothing.
    fn on_rooms_changed(&self, changed: RoomsChanged) {
        let _ = changed;
    }

    /// Loads a room, lets `change` modify it, saves it atomically with its events; call it
    /// through [`update_room`]. Stores that can change a room in place override this.
    fn change_room<T, E, F>(
        &self,
        app: &AppId,
        id: &RoomId,
        change: F,
    ) -> impl Future<Output = Updated<T, E>> + Send
    where
        Self: Sized,
        T: Send,
        E: Send,
        F: FnMut(&mut Room) -> Result<(T, Vec<DomainEvent>), E> + Send,
    {
        load_apply_save(self, app, id, change)
    }

    /// [`Store::change_room`] for a caller that does not need the saved room back (the node
    /// reconciler): the same atomic step, returning only the change's value, so a store that
    /// changes rooms in place copies nothing to hand back. Call it through [`modify_room`].
    fn change_room_value<T, E, F>(
        &self,
        app: &AppId,
        id: &RoomId,
        change: F,
    ) -> impl Future<Output = Result<Option<Result<T, E>>, StoreError>> + Send
    where
        Self: Sized,
        T: Send,
        E: Send,
        F: FnMut(&mut Room) -> Result<(T, Vec<DomainEvent>), E> + Send,
    {
        async move {
            let updated = self.change_room(app, id, change).await?;
            Ok(updated.map(|r| r.map(|(_, value)| value)))
        }
    }

    /// Several rooms changed at once, each exactly as [`Store::change_room_value`] changes one
    /// (each room's change is atomic; the batch as a whole is not a transaction), results in the
    /// order of `changes`. A store that can send the writes together overrides it (Redis: one
    /// pipelined round trip for the whole batch). Call it through [`modify_rooms`].
    fn change_rooms<'a, T, E, F>(
        &'a self,
        changes: Vec<RoomChange<'a, F>>,
    ) -> impl Future<Output = Vec<Modified<T, E>>> + Send + 'a
    where
        Self: Sized,
        T: Send + 'a,
        E: Send + 'a,
        F: FnMut(&mut Room) -> Result<(T, Vec<DomainEvent>), E> + Send + 'a,
    {
        let each = changes
            .into_iter()
            .map(|c| self.change_room_value(c.app, c.room, c.change));
        futures_util::future::join_all(each)
    }

    /// Drops the app's outbox entries before `before` (a [`Position`]; the entries it stands
    /// on stay): the end of the event feed's retained window.
    fn trim_outbox(
        &self,
        app: &AppId,
        before: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Drops the app's ended rooms whose retention is over from its listing index; how many
    /// went. The server runs it now and then (Redis: a record expires by itself, its index
    /// entry does not). The memory store keeps ended rooms while the process lives: nothing
    /// to do.
    fn sweep_ended_rooms(
        &self,
        app: &AppId,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        let _ = app;
        async { Ok(0) }
    }

    /// Appends events to the app's outbox with no room change (a dead letter sent again).
    fn append_outbox(
        &self,
        app: &AppId,
        events: &[DomainEvent],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How long a terminated room (and its conferencecalls and recordings) stays readable.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
