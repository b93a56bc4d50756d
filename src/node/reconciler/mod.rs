//! Folds one node's facts and snapshots into the store, in order. Every write goes through the
//! domain's pure functions and the store's atomic room update; what the node must do next comes
//! back as effects for the supervisor. [`resync`] makes the store agree with a snapshot of the
//! node, and gives up what the node never confirmed.

mod legs;
mod resync;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{AppDirectory, NodeConfig};
use crate::conference::apply::{
    DialoutStep, Effect, apply_dialout, channel_gone, channel_parked, dtmf,
};
use crate::conference::session::{Origin, apply_channel};
use crate::conference::snapshot::Stale;
use crate::conference::{
    AppId, ChannelFact, ChannelInfo, ConferenceFact, Fact, Micros, NodePrefix, Observed, Room,
    RoomId, Session, SessionId, apply_event, in_order,
};
use crate::store::{RoomChange, Store, StoreError, modify_room, modify_rooms};

/// An effect and the room it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEffect {
    pub app: AppId,
    pub room: RoomId,
    /// The room's node as the change left it: the node that does the work.
    pub node: NodePrefix,
    pub effect: Effect,
}

/// Counters a node reports (and tests and the dashboard read).
#[derive(Debug, Default)]
pub struct Stats {
    pub applied: AtomicU64,
    pub ignored: AtomicU64,
    pub resyncs: AtomicU64,
    /// Snapshot writes refused because the room had moved on since the snapshot was asked for.
    pub stale: AtomicU64,
    /// From the node firing the newest batch's oldest event to its write, in µs.
    pub lag_us: AtomicU64,
    /// [`Stats::per_second`]'s window: when it started, `applied` then, the rate it measured.
    window: std::sync::Mutex<Option<(std::time::Instant, u64, f64)>>,
}

impl Stats {
    /// Records the lag of a batch just applied: `stamps` are when the node fired its events
    /// (µs since the epoch), `now` when they were written.
    pub fn record_lag(&self, stamps: &[i64], now: i64) {
        if let Some(oldest) = stamps.iter().min() {
            let lag = now.saturating_sub(*oldest).max(0) as u64;
            self.lag_us.store(lag, Ordering::Relaxed);
        }
    }

    /// Events applied per second, measured over windows of at least a second (the last whole
    /// window's rate; 0 until one has passed).
    pub fn per_second(&self) -> f64 {
        let applied = self.applied.load(Ordering::Relaxed);
        let now = std::time::Instant::now();
        let Ok(mut window) = self.window.lock() else {
            return 0.0;
        };
        match *window {
            None => {
                *window = Some((now, applied, 0.0));
                0.0
            }
            Some((start, base, rate)) => {
                let elapsed = now.duration_since(start).as_secs_f64();
                if elapsed < 1.0 {
                    return rate;
                }
                let rate = applied.saturating_sub(base) as f64 / elapsed;
                *window = Some((now, applied, rate));
                rate
            }
        }
    }
}

/// See [`Reconciler::before_snapshot`].
#[derive(Debug, Clone, Default)]
pub struct Before {
    /// Each live room of the node: its app and its version (`seq`).
    pub versions: HashMap<RoomId, (AppId, u64)>,
    /// The channels of the node's live sessions.
    pub channels: std::collections::HashSet<String>,
}

/// Why a room change was not written: an event-driven change never refuses; a snapshot's is
/// refused when it is stale.
trait RefusedWrite {
    fn count<S>(self, reconciler: &Reconciler<S>, room: &RoomId);
}

impl RefusedWrite for std::convert::Infallible {
    fn count<S>(self, _: &Reconciler<S>, _: &RoomId) {
        match self {}
    }
}

impl RefusedWrite for Stale {
    fn count<S>(self, reconciler: &Reconciler<S>, room: &RoomId) {
        reconciler.stats.stale.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::resync_stale(reconciler.node.prefix.as_str());
        tracing::debug!(%room, seen = self.seen, now = self.now, "snapshot write refused: the room moved on since the snapshot was asked for");
    }
}

/// A room change refused because the room was written under a later lease of the node (this
/// instance lost it, paused), or refused for its own reason `E`.
pub(super) enum Fenced<E> {
    Off { token: u64 },
    Refused(E),
}

impl<E: RefusedWrite> RefusedWrite for Fenced<E> {
    fn count<S>(self, reconciler: &Reconciler<S>, room: &RoomId) {
        match self {
            Fenced::Off { token } => {
                reconciler
                    .fencing
                    .refused
                    .fetch_max(token, Ordering::Relaxed);
                crate::telemetry::fenced_write(reconciler.node.prefix.as_str());
                tracing::warn!(node = %reconciler.node.prefix, %room, token, "room write refused: another instance took the node's lease since this one's (paused past it?); this instance stops applying the node's events");
            }
            Fenced::Refused(e) => e.count(reconciler, room),
        }
    }
}

/// The fencing token the reconciler writes under (issue 57): the generation of the node's lease
/// this instance holds, set by the supervisor before it applies anything; 0 for a controller
/// alone (nothing checked). A write the rooms refuse as older than theirs is remembered in
/// `refused`: the supervisor stops acting on that lease.
#[derive(Debug, Default)]
pub struct Fencing {
    pub token: AtomicU64,
    pub refused: AtomicU64,
}

impl Fencing {
    /// Whether a write under the current token was refused.
    pub fn lost(&self) -> bool {
        self.refuses(self.token.load(Ordering::Relaxed))
    }

    /// Whether a write under `token` (or a later one) was refused: a later holder of the
    /// node's lease wrote first, and nothing more is done on `token`'s strength.
    pub fn refuses(&self, token: u64) -> bool {
        token != 0 && self.refused.load(Ordering::Relaxed) >= token
    }
}

pub struct Reconciler<S> {
    store: Arc<S>,
    node: Arc<NodeConfig>,
    apps: Arc<AppDirectory>,
    pub stats: Arc<Stats>,
    /// The token its room writes carry (see [`Fencing`]).
    pub fencing: Arc<Fencing>,
    /// room → app never changes once written; remembered to save a round trip per event.
    room_apps: std::sync::Mutex<HashMap<RoomId, AppId>>,
    /// The API's intents for the node's rooms, applied first by each write of their room
    /// (`node/intents.rs`).
    pub intents: Arc<crate::node::intents::Intents>,
}

type Effects = Vec<RoomEffect>;

/// How many rooms a resync changes in one batch.
const RESYNC_CHUNK: usize = 256;

/// One fact of a batch about a room: its conference facts, and what a member's own call says
/// (it ended or parked, a digit), each numbered by the node.
enum RoomFact<'a> {
    /// (core uuid, event sequence, conference uuid, fact).
    Conference(&'a str, u64, &'a str, &'a ConferenceFact),
    /// A member's call ended (`HungUp`) or parked: it is out of the room.
    Call {
        core: &'a str,
        sequence: u64,
        kind: ChannelFact,
        channel: &'a str,
        cause: Option<&'a str>,
    },
    /// A member pressed a key.
    Dtmf {
        core: &'a str,
        sequence: u64,
        channel: &'a str,
        digit: &'a str,
    },
}

/// One room's facts of a batch, in the order the node delivered them.
type RoomFacts<'a> = Vec<RoomFact<'a>>;

/// The sessions of the members a room's facts add, by channel (`None`: not known).
type Sessions = HashMap<String, Option<Session>>;

impl<S: Store> Reconciler<S> {
    pub fn new(store: Arc<S>, node: Arc<NodeConfig>, apps: Arc<AppDirectory>) -> Reconciler<S> {
        Reconciler {
            store,
            node,
            apps,
            stats: Arc::default(),
            fencing: Arc::default(),
            room_apps: std::sync::Mutex::default(),
            intents: Arc::default(),
        }
    }

    /// `change` refused on a room written already under a later lease of this node, and
    /// stamping the rooms it changes with this instance's token (see [`Fencing`],
    /// `Room::fences`). The check and the stamp travel in the room's guarded write: a write
    /// between this read and it makes the store refuse it, and the change is judged again.
    pub(super) fn fenced<T, E>(
        &self,
        mut change: impl FnMut(&mut Room) -> Result<T, E>,
    ) -> impl FnMut(&mut Room) -> Result<T, Fenced<E>> {
        let token = self.fencing.token.load(Ordering::Relaxed);
        let node = &self.node.prefix;
        move |r| {
            if token != 0 && r.fenced_off(node, token) {
                return Err(Fenced::Off { token });
            }
            let seq = r.seq;
            let out = change(r).map_err(Fenced::Refused)?;
            if token != 0 && r.seq != seq {
                r.fence(node, token);
            }
            Ok(out)
        }
    }

    fn count(&self, applied: bool) {
        let counter = if applied {
            &self.stats.applied
        } else {
            &self.stats.ignored
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Applies one observed fact.
    pub async fn apply(&self, observed: &Observed, now: Micros) -> Result<Effects, StoreError> {
        match &observed.fact {
            Fact::Channel { kind, info, cause } => {
                let (core, sequence) = (&observed.core_uuid, observed.sequence);
                self.channel(core, sequence, *kind, info, cause.as_deref(), now)
                    .await
            }
            Fact::Conference {
                room,
                conference_uuid,
                fact,
            } => {
                self.conference(observed, room, conference_uuid, fact, now)
                    .await
            }
            Fact::Dtmf { channel, digit } => {
                let (core, sequence) = (&observed.core_uuid, observed.sequence);
                self.dtmf(core, sequence, channel, digit, now).await
            }
            Fact::DialoutFailed {
                room,
                channel,
                cause,
            } => {
                let step = DialoutStep::failed(cause);
                self.dialout(&observed.core_uuid, room, channel, &step, now)
                    .await
            }
            Fact::Job { .. } | Fact::Heartbeat => Ok(Vec::new()),
        }
    }

    /// A CHANNEL fact numbered `sequence` by the node (0: not from an event, e.g. a resync).
    async fn channel(
        &self,
        core: &str,
        sequence: u64,
        kind: ChannelFact,
        info: &ChannelInfo,
        cause: Option<&str>,
        now: Micros,
    ) -> Result<Effects, StoreError> {
        let (mut effects, out_of) = self.channel_session(core, kind, info, cause, now).await?;
        if let Some((app, room)) = out_of {
            effects.extend(
                self.update(&app, &room, |r| {
                    call_out(r, core, sequence, kind, &info.channel, cause, now)
                })
                .await?,
            );
        }
        Ok(effects)
    }

    /// [`Reconciler::channel`] up to the member's room: applies the fact to the session (and to
    /// a call a room places, or a leg between nodes), and returns the room a member's call
    /// ended or parked in, for the caller to take the member out of. In a batch that is done
    /// with the room's conference facts, in the node's order: a CHANNEL_PARK comes after its
    /// member's del-member and after the mute-member events fired before that.
    async fn channel_session(
        &self,
        core: &str,
        kind: ChannelFact,
        info: &ChannelInfo,
        cause: Option<&str>,
        now: Micros,
    ) -> Result<(Effects, Option<(AppId, RoomId)>), StoreError> {
        if let Some(session) = info.node_session.as_deref() {
            let effects = self.node_leg(core, session, kind, info, cause, now).await?;
            return Ok((effects, None));
        }
        if let Some(room) = info.bridge_room() {
            if kind != ChannelFact::HungUp {
                return Ok((Vec::new(), None));
            }
            let effects = self.bridge_ended(room, &info.channel, cause, now).await?;
            return Ok((effects, None));
        }
        let id = SessionId::new(&self.node.prefix, &info.channel);
        let known = self.store.session_app(&id).await?;
        let Some(app) = known.or_else(|| self.apps.owner(&info.did, info.app_hint.as_deref()))
        else {
            self.count(false);
            return Ok((Vec::new(), None));
        };
        let existing = self.store.session(&app, &id).await?;
        let origin = Origin {
            node: &self.node.prefix,
            core_uuid: core,
            now,
        };
        match apply_channel(existing.as_ref(), origin, kind, info, cause, Some(&app)) {
            Some(session) => {
                self.store.save_session(&session).await?;
                self.count(true);
            }
            None => self.count(false),
        }
        // A call a room is placing: its progress is the room's.
        if let Some(room) = info.dialout_room() {
            let step = match kind {
                ChannelFact::Ringing => Some(DialoutStep::Ringing),
                ChannelFact::Answered => Some(DialoutStep::Answered),
                ChannelFact::HungUp => {
                    Some(DialoutStep::failed(cause.unwrap_or("NORMAL_CLEARING")))
                }
                ChannelFact::Created | ChannelFact::Parked => None,
            };
            if let Some(step) = step {
                let effects = self.dialout(core, room, &info.channel, &step, now).await?;
                if !effects.is_empty() {
                    return Ok((effects, None));
                }
            }
        }
        // A call that ended, or that parked after we moved it out, is out of its room: its
        // del-member normally came first, or was missed.
        if !matches!(kind, ChannelFact::HungUp | ChannelFact::Parked) {
            return Ok((Vec::new(), None));
        }
        let room = self.store.room_of_session(&app, &id).await?;
        Ok((Vec::new(), room.map(|room| (app, room))))
    }

    /// A step of a dial-out of `room` (as the call's variable names it: applied only if that
    /// room of this node is dialing the channel).
    async fn dialout(
        &self,
        core: &str,
        room: &str,
        channel: &str,
        step: &DialoutStep,
        now: Micros,
    ) -> Result<Effects, StoreError> {
        let Some((room, app)) = self.known_room(room).await? else {
            return Ok(Vec::new());
        };
        self.update(&app, &room, |r| apply_dialout(r, core, channel, step, now))
            .await
    }

    /// A digit from a caller: announced if the call is a member of one of its app's rooms,
    /// once (a second instance applying the same event announces nothing again).
    async fn dtmf(
        &self,
        core: &str,
        sequence: u64,
        channel: &str,
        digit: &str,
        now: Micros,
    ) -> Result<Effects, StoreError> {
        let Some((app, room)) = self.room_of_call(channel).await? else {
            return Ok(Vec::new());
        };
        self.update(&app, &room, |r| {
            digit_in(r, core, sequence, channel, digit, now)
        })
        .await
    }

    /// The room (and its app) the call on `channel` is a member of; else counted as ignored.
    async fn room_of_call(&self, channel: &str) -> Result<Option<(AppId, RoomId)>, StoreError> {
        let id = SessionId::new(&self.node.prefix, channel);
        let Some(app) = self.store.session_app(&id).await? else {
            self.count(false);
            return Ok(None);
        };
        let Some(room) = self.store.room_of_session(&app, &id).await? else {
            self.count(false);
            return Ok(None);
        };
        Ok(Some((app, room)))
    }

    async fn conference(
        &self,
        observed: &Observed,
        name: &str,
        conference_uuid: &str,
        fact: &ConferenceFact,
        now: Micros,
    ) -> Result<Effects, StoreError> {
        // Any room's id: a room that moved here keeps the id that names its first node.
        let Ok(room) = RoomId::parse(name) else {
            self.count(false);
            return Ok(Vec::new());
        };
        let Some(app) = self
            .room_app(&room)
            .await?
            .filter(|app| !fact.is_talking() || self.apps.wants_talking(app))
        else {
            self.count(false);
            return Ok(Vec::new());
        };
        let session = match fact {
            ConferenceFact::MemberAdded { channel, .. } => {
                self.store
                    .session(&app, &SessionId::new(&self.node.prefix, channel))
                    .await?
            }
            _ => None,
        };
        let (core, sequence) = (observed.core_uuid.as_str(), observed.sequence);
        self.update(&app, &room, |r| {
            apply_event(
                r,
                core,
                conference_uuid,
                fact,
                session.as_ref(),
                now,
                sequence,
            )
        })
        .await
    }

    /// A room a channel variable names, and its app, if it is a stored room (of this node or
    /// another: the apply judges by the room's node); else counted as ignored.
    async fn known_room(&self, room: &str) -> Result<Option<(RoomId, AppId)>, StoreError> {
        let room = RoomId::parse(room).ok();
        let found = match room {
            Some(room) => self.room_app(&room).await?.map(|app| (room, app)),
            None => None,
        };
        if found.is_none() {
            self.count(false);
        }
        Ok(found)
    }

    /// The app of one of this node's rooms (cached: it never changes).
    async fn room_app(&self, room: &RoomId) -> Result<Option<AppId>, StoreError> {
        if let Some(app) = self
            .room_apps
            .lock()
            .ok()
            .and_then(|m| m.get(room).cloned())
        {
            return Ok(Some(app));
        }
        let app = self.store.room_app(room).await?;
        if let Some(app) = &app {
            self.know_room_app(room, app);
        }
        Ok(app)
    }

    /// Remembers a room's app (read with one of its sessions: it never changes).
    fn know_room_app(&self, room: &RoomId, app: &AppId) {
        if let Ok(mut cache) = self.room_apps.lock() {
            if cache.len() > 100_000 {
                cache.clear();
            }
            cache.insert(room.clone(), app.clone());
        }
    }

    /// Applies a burst of facts: what each fact does outside rooms (sessions, a call a room
    /// places), one by one in order; then each room's facts, in the node's order, as one atomic
    /// update, rooms concurrently. A room's facts are its conference facts and what its
    /// members' calls say (one ended or parked, a digit): a CHANNEL_PARK applied before the
    /// mute-member and del-member events fired before it would take out a leaving member
    /// first, and they would go unannounced as older than its exit. A room's facts depend on
    /// its members' sessions, which the channel facts create first.
    pub async fn apply_batch(
        &self,
        batch: &[Observed],
        now: Micros,
    ) -> Result<Effects, StoreError> {
        let mut effects = Vec::new();
        let mut rooms: Vec<(RoomId, RoomFacts<'_>)> = Vec::new();
        // Each room's group in `rooms`.
        let mut groups: HashMap<RoomId, usize> = HashMap::new();
        let mut group_of = |rooms: &mut Vec<(RoomId, RoomFacts<'_>)>, id: RoomId| {
            *groups.entry(id.clone()).or_insert_with(|| {
                rooms.push((id, Vec::new()));
                rooms.len() - 1
            })
        };
        // Each conference name is parsed once: its group, or `None` if it is not one of our rooms.
        let mut slot: HashMap<&str, Option<usize>> = HashMap::new();
        for observed in batch {
            let (core, sequence) = (observed.core_uuid.as_str(), observed.sequence);
            let (group, fact) = match &observed.fact {
                Fact::Conference {
                    room,
                    conference_uuid,
                    fact,
                } => {
                    let group = *slot
                        .entry(room.as_str())
                        .or_insert_with(|| Some(group_of(&mut rooms, RoomId::parse(room).ok()?)));
                    let Some(group) = group else {
                        self.count(false);
                        continue;
                    };
                    let fact = RoomFact::Conference(core, sequence, conference_uuid, fact);
                    (group, fact)
                }
                Fact::Channel { kind, info, cause } => {
                    let cause = cause.as_deref();
                    let (done, out_of) =
                        self.channel_session(core, *kind, info, cause, now).await?;
                    effects.extend(done);
                    let Some((app, room)) = out_of else {
                        continue;
                    };
                    self.know_room_app(&room, &app);
                    let fact = RoomFact::Call {
                        core,
                        sequence,
                        kind: *kind,
                        channel: &info.channel,
                        cause,
                    };
                    (group_of(&mut rooms, room), fact)
                }
                Fact::Dtmf { channel, digit } => {
                    let Some((app, room)) = self.room_of_call(channel).await? else {
                        continue;
                    };
                    self.know_room_app(&room, &app);
                    let fact = RoomFact::Dtmf {
                        core,
                        sequence,
                        channel,
                        digit,
                    };
                    (group_of(&mut rooms, room), fact)
                }
                _ => {
                    effects.extend(self.apply(observed, now).await?);
                    continue;
                }
            };
            if let Some((_, facts)) = rooms.get_mut(group) {
                facts.push(fact);
            }
        }
        // Each room's app and the sessions its new members need, read for all rooms at once;
        // then every room's facts applied, and the rooms written together.
        let prepared = futures_util::future::join_all(
            rooms.iter().map(|(room, facts)| self.prepare(room, facts)),
        )
        .await;
        let mut groups = Vec::with_capacity(rooms.len());
        for ((room, facts), prepared) in rooms.iter_mut().zip(prepared) {
            let Some((app, sessions)) = prepared? else {
                self.count(false);
                continue;
            };
            if !self.apps.wants_talking(&app) {
                let before = facts.len();
                facts.retain(
                    |fact| !matches!(fact, RoomFact::Conference(_, _, _, f) if f.is_talking()),
                );
                for _ in facts.len()..before {
                    self.count(false);
                }
                if facts.is_empty() {
                    continue;
                }
            }
            groups.push((app, &*room, &*facts, sessions));
        }
        // The API's intents for these rooms go first in their writes (`node/intents.rs`).
        let _serial = self.intents.writing().await;
        let claims: Vec<_> = groups
            .iter()
            .map(|(_, room, _, _)| self.intents.claim(room))
            .collect();
        let changes = groups
            .iter()
            .zip(&claims)
            .map(|((app, room, facts, sessions), claim)| RoomChange {
                app,
                room,
                change: self.fenced(move |r: &mut crate::conference::Room| {
                    let mut all = crate::conference::Applied {
                        events: claim.apply(r),
                        ..Default::default()
                    };
                    for fact in facts.iter() {
                        let applied = match *fact {
                            RoomFact::Conference(core, sequence, conf, fact) => {
                                let session = match fact {
                                    ConferenceFact::MemberAdded { channel, .. } => {
                                        sessions.get(channel.as_str()).and_then(Option::as_ref)
                                    }
                                    _ => None,
                                };
                                apply_event(r, core, conf, fact, session, now, sequence)
                            }
                            RoomFact::Call {
                                core,
                                sequence,
                                kind,
                                channel,
                                cause,
                            } => call_out(r, core, sequence, kind, channel, cause, now),
                            RoomFact::Dtmf {
                                core,
                                sequence,
                                channel,
                                digit,
                            } => digit_in(r, core, sequence, channel, digit, now),
                        };
                        all.changed |= applied.changed;
                        all.events.extend(applied.events);
                        all.effects.extend(applied.effects);
                    }
                    Ok::<_, std::convert::Infallible>(((all.effects, r.node.clone()), all.events))
                }),
            });
        let results = modify_rooms(&*self.store, changes.collect()).await;
        for (((app, room, _, _), result), claim) in groups.iter().zip(results).zip(claims) {
            let result = result?;
            claim.written(matches!(result, Some(Ok(_))));
            effects.extend(self.effects_of(app, room, result));
        }
        Ok(effects)
    }

    /// A room's app, and the sessions of the members its facts add (read at once), or `None`
    /// when the room is not known.
    async fn prepare(
        &self,
        room: &RoomId,
        facts: &[RoomFact<'_>],
    ) -> Result<Option<(AppId, Sessions)>, StoreError> {
        let Some(app) = self.room_app(room).await? else {
            return Ok(None);
        };
        let added: Vec<&str> = facts
            .iter()
            .filter_map(|fact| match fact {
                RoomFact::Conference(_, _, _, ConferenceFact::MemberAdded { channel, .. }) => {
                    Some(channel.as_str())
                }
                _ => None,
            })
            .collect();
        let ids: Vec<SessionId> = added
            .iter()
            .map(|channel| SessionId::new(&self.node.prefix, channel))
            .collect();
        let reads = ids.iter().map(|id| self.store.session(&app, id));
        let mut sessions = HashMap::new();
        for (channel, s) in added
            .iter()
            .zip(futures_util::future::join_all(reads).await)
        {
            sessions.insert((*channel).to_owned(), s?);
        }
        Ok(Some((app, sessions)))
    }

    /// One atomic room update through a pure function; returns its effects.
    async fn update(
        &self,
        app: &AppId,
        room: &RoomId,
        f: impl FnMut(&mut crate::conference::Room) -> crate::conference::Applied + Send,
    ) -> Result<Effects, StoreError> {
        self.update_judged(app, room, f, |_| false).await
    }

    /// [`Reconciler::update`] for a fact whose outcome may destroy something without changing
    /// the room (`refuses`: a leg hung up as unexpected). The room may have been read from this
    /// instance's cache a moment before another instance's change reaches it (the change's
    /// push travels apart from the node's events): such an outcome is judged again on the room
    /// as stored, and only that judgement's effects are carried out.
    async fn update_judged(
        &self,
        app: &AppId,
        room: &RoomId,
        mut f: impl FnMut(&mut crate::conference::Room) -> crate::conference::Applied + Send,
        mut refuses: fn(&crate::conference::Applied) -> bool,
    ) -> Result<Effects, StoreError> {
        loop {
            let mut refused = false;
            // The API's intents for the room go first in its write (`node/intents.rs`).
            let serial = self.intents.writing().await;
            let claim = self.intents.claim(room);
            let result = modify_room(
                &*self.store,
                app,
                room,
                self.fenced(|r| {
                    let mut events = claim.apply(r);
                    let applied = f(r);
                    refused = !applied.changed && refuses(&applied);
                    events.extend(applied.events);
                    Ok::<_, std::convert::Infallible>(((applied.effects, r.node.clone()), events))
                }),
            )
            .await?;
            claim.written(matches!(result, Some(Ok(_))));
            drop(serial);
            if !refused {
                return Ok(self.effects_of(app, room, result));
            }
            // Judged again on the room as stored, whatever it says then.
            self.store.forget_cached(app, room);
            refuses = |_| false;
        }
    }

    /// Counts an update and ties its effects to the room; a snapshot write refused as stale is
    /// counted as such.
    fn effects_of<E: RefusedWrite>(
        &self,
        app: &AppId,
        room: &RoomId,
        result: Option<Result<(Vec<Effect>, NodePrefix), E>>,
    ) -> Effects {
        let (effects, node) = match result {
            Some(Ok(done)) => done,
            Some(Err(refused)) => {
                refused.count(self, room);
                return Vec::new();
            }
            None => {
                self.count(false);
                return Vec::new();
            }
        };
        self.count(true);
        effects
            .into_iter()
            .map(|effect| RoomEffect {
                app: app.clone(),
                room: room.clone(),
                node: node.clone(),
                effect,
            })
            .collect()
    }
}

/// A member's call ended (`HungUp`) or parked, by a CHANNEL event the node numbered
/// `sequence`: the member is out of the room. An old CHANNEL_PARK or HANGUP applied late (by a
/// second instance) must not take out a member that joined again since.
fn call_out(
    r: &mut crate::conference::Room,
    core: &str,
    sequence: u64,
    kind: ChannelFact,
    channel: &str,
    cause: Option<&str>,
    now: Micros,
) -> crate::conference::Applied {
    in_order(r, core, channel, sequence, |r| match kind {
        ChannelFact::HungUp => channel_gone(r, channel, cause, now),
        _ => channel_parked(r, channel, now),
    })
}

/// A digit pressed by the member on `channel`, numbered `sequence` by its node. The room must
/// still be on the node that numbered it, unless the room carries the call from this node (its
/// digits are this node's to number).
fn digit_in(
    r: &mut crate::conference::Room,
    core: &str,
    sequence: u64,
    channel: &str,
    digit: &str,
    now: Micros,
) -> crate::conference::Applied {
    let carried = r.members.get(channel).is_some_and(|m| m.bridge.is_some());
    match r.core_uuid.as_deref() {
        Some(c) if c != core && !carried => crate::conference::Applied::default(),
        _ => dtmf(r, channel, digit, sequence, now),
    }
}
