//! Live audio streams (`POST /api/v1/conferences/{id}/streams`): a room's audio, or one
//! member's, to a WebSocket server the application names, and that server's audio back into
//! the room or to that member alone.
//!
//! The instance that is asked carries the stream: it binds a UDP port per media leg, originates
//! the legs on the room's node (`node::media_legs`), points each leg's `unicast` at its port,
//! opens the socket (`streams::socket`) and relays (`streams::relay`) until the stream ends.
//! The room's record keeps the stream (status, legs, webhooks); whatever ends it (a DELETE, the
//! room or the member ending, the server closing) ends it there and hangs its legs up.
//! Another instance takes a stream over when its carrier's lease is gone ([`takeover`]).

mod listen;
mod takeover;

pub use listen::{LISTEN_PATH, ListenRequest, TICKET_LIFE};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

use super::{Rooms, ServiceError, invalid, quotas::Reached};
use crate::conference::ops::{self, OpError};
use crate::conference::{
    AppId, DomainEvent, EventKind, Protocol, RoomId, SessionId, Stream, StreamStatus, Track,
};
use crate::node::media_legs::{self, Listen};
use crate::node::supervisor::now_micros;
use crate::node::{NodeHandle, commands};
use crate::store::{Store, update_room};
use crate::streams::protocol::Opening;
use crate::streams::relay::{Control, Media, Outcome, Relay};
use crate::streams::socket::{self, Policy};

/// How long a new stream's legs have to send their first audio.
const MEDIA_START: Duration = Duration::from_secs(3);

/// How many times a stream follows its room to new legs (moves off draining nodes).
const MAX_MOVES: u32 = 8;

/// How long a stream whose legs are gone waits for its room's move to be over.
const MOVE_WAIT: Duration = Duration::from_secs(10);

/// How streams are opened here (`[streams]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    pub policy: Policy,
    /// The address the nodes send a stream's audio to; `None`: this host's address on the
    /// route to each node.
    pub media_ip: Option<IpAddr>,
    /// Where the stream's UDP ports are bound.
    pub media_bind: IpAddr,
}

impl Default for StreamSettings {
    fn default() -> StreamSettings {
        StreamSettings {
            policy: Policy {
                allow_private: false,
                require_wss: true,
                connect_timeout: Duration::from_secs(5),
            },
            media_ip: None,
            media_bind: IpAddr::from([0, 0, 0, 0]),
        }
    }
}

/// A stream carried here: its app, its room, its controls.
type Carried = (AppId, RoomId, mpsc::Sender<Control>);

/// The streams this process carries, and how it opens them.
pub struct StreamsHere {
    settings: arc_swap::ArcSwap<StreamSettings>,
    /// Each stream carried here: its app and its controls.
    running: Mutex<HashMap<Uuid, Carried>>,
    /// This process, as a carrier of streams (`Stream::carrier`, the lease's holder).
    holder: String,
    /// The generation of this process's carrier lease, per app, as last renewed.
    generations: Mutex<HashMap<AppId, u64>>,
    /// Each app's members' keys, read once from its outbox for all its streams here.
    dtmf: Arc<Mutex<KeyFeeds>>,
}

type KeyFeeds = HashMap<AppId, broadcast::Sender<Key>>;

/// A key a member pressed (`conference.member.dtmf`).
#[derive(Debug, Clone)]
struct Key {
    room: RoomId,
    session: Option<String>,
    digit: char,
}

impl Default for StreamsHere {
    fn default() -> StreamsHere {
        StreamsHere {
            settings: Default::default(),
            running: Mutex::default(),
            holder: Uuid::new_v4().to_string(),
            generations: Mutex::default(),
            dtmf: Arc::default(),
        }
    }
}

impl StreamsHere {
    fn control(&self, id: &Uuid) -> Option<mpsc::Sender<Control>> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(|(_, _, c)| c.clone())
    }

    fn carries(&self, id: &Uuid) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
    }

    fn add(&self, id: Uuid, app: AppId, room: RoomId, control: mpsc::Sender<Control>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(id, (app, room, control));
        crate::telemetry::streams_carried(running.len());
    }

    /// The apps whose streams this process carries.
    fn apps(&self) -> Vec<AppId> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut apps: Vec<AppId> = running.values().map(|(a, _, _)| a.clone()).collect();
        apps.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        apps.dedup();
        apps
    }

    /// The app's members' keys from now on. The first stream of an app to ask starts the one
    /// reader of its outbox here; the reader stops once no stream listens.
    fn dtmf_of<S: Store>(&self, store: &Arc<S>, app: &AppId) -> broadcast::Receiver<Key> {
        let mut feeds = self.dtmf.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(feed) = feeds.get(app) {
            return feed.subscribe();
        }
        let (tx, rx) = broadcast::channel(64);
        feeds.insert(app.clone(), tx.clone());
        let (store, app, feeds) = (store.clone(), app.clone(), self.dtmf.clone());
        tokio::spawn(async move { read_keys(store, app, tx, feeds).await });
        rx
    }

    /// The app's streams carried here: each one's id, room and controls.
    fn of_app(&self, app: &AppId) -> Vec<(Uuid, RoomId, mpsc::Sender<Control>)> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .iter()
            .filter(|(_, (a, _, _))| a == app)
            .map(|(id, (_, room, c))| (*id, room.clone(), c.clone()))
            .collect()
    }

    fn forget(&self, id: &Uuid) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.remove(id);
        crate::telemetry::streams_carried(running.len());
    }
}

/// What the application asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRequest {
    pub url: String,
    pub track: Track,
    pub session: Option<SessionId>,
    pub protocol: Protocol,
    pub sample_rate: u32,
    pub bidirectional: bool,
    pub parameters: Map<String, Value>,
}

impl<S: Store> Rooms<S> {
    /// How streams are opened from now on (a configuration reload).
    pub fn set_stream_settings(&self, settings: StreamSettings) {
        self.streams.settings.store(Arc::new(settings));
    }

    /// Starts a stream and waits until audio flows or it has failed (the socket could not be
    /// opened within the connect timeout, or the node sent no audio): the stream as it then
    /// is, `streaming` or `failed` with why.
    pub async fn start_stream(
        &self,
        app: &AppId,
        id: &RoomId,
        req: StreamRequest,
    ) -> Result<Stream, ServiceError> {
        let asked = std::time::Instant::now();
        let settings = self.streams.settings.load_full();
        let url = socket::check_url(&req.url, &settings.policy)
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let room = self.room(app, id).await?;
        let node = self.pool.get(&room.node)?;
        node.has_room_for_a_command()?;
        self.stream_place(app).await?;
        // This process's lease as a carrier of the app's streams, before the stream names it:
        // no other instance takes over a stream whose carrier holds its lease.
        if !takeover::hold(&self.store, &self.streams, app).await? {
            return Err(ServiceError::Store(crate::store::StoreError::Unavailable(
                "this instance's lease as a stream carrier is held by another".into(),
            )));
        }
        let now = now_micros();
        let stream = Stream {
            id: Uuid::new_v4(),
            url: req.url.clone(),
            track: req.track,
            session: req.session.clone(),
            channel: None,
            protocol: req.protocol,
            sample_rate: req.sample_rate,
            bidirectional: req.bidirectional,
            parameters: req.parameters.clone(),
            status: StreamStatus::Starting,
            reason: None,
            error: None,
            legs: Vec::new(),
            carrier: Some(self.streams.holder.clone()),
            listen: false,
            connections: 0,
            created_at: now,
            started_at: None,
            ended_at: None,
            updated_at: now,
        };
        let sid = stream.id;
        let added = update_room(&*self.store, app, id, |r| {
            ops::request_stream(r, stream.clone(), now_micros())?;
            Ok::<_, OpError>(((), Vec::new()))
        })
        .await?;
        let room = match added {
            None => return Err(ServiceError::NotFound("room")),
            Some(Err(e)) => return Err(refused(e)),
            Some(Ok((room, ()))) => room,
        };
        let (tx, rx) = mpsc::channel(64);
        self.streams.add(sid, app.clone(), id.clone(), tx);
        let (ready_tx, mut ready) = watch::channel(false);
        self.spawn_carrier(app, &room, sid, Peer::Dial(url), rx, ready_tx);
        // Until it streams or has ended (the carrier says so either way), or for as long as
        // opening may take: then it is answered as it is (`starting`).
        let most = self.streams.settings.load().policy.connect_timeout
            + MEDIA_START
            + Duration::from_secs(2);
        let _ = tokio::time::timeout(most, ready.wait_for(|done| *done)).await;
        let answered = self.stream(app, id, &sid).await;
        tracing::debug!(stream = %sid, took_ms = asked.elapsed().as_millis() as u64, "stream answered");
        answered
    }

    pub async fn stream(
        &self,
        app: &AppId,
        id: &RoomId,
        stream: &Uuid,
    ) -> Result<Stream, ServiceError> {
        self.room_any(app, id)
            .await?
            .streams
            .into_iter()
            .find(|s| s.id == *stream)
            .ok_or(ServiceError::NotFound("stream"))
    }

    /// Ends a stream (`stopped`, reason `deleted`): its legs are hung up, and the instance
    /// carrying it sends the server `stop` and closes the socket. One already over is returned
    /// as it is.
    pub async fn stop_stream(
        &self,
        app: &AppId,
        id: &RoomId,
        stream: &Uuid,
    ) -> Result<Stream, ServiceError> {
        let room = self.room_any(app, id).await?;
        if !room.streams.iter().any(|s| s.id == *stream) {
            return Err(ServiceError::NotFound("stream"));
        }
        end_stream(
            &*self.store,
            &self.pool,
            app,
            id,
            *stream,
            None,
            StreamStatus::Stopped,
            "deleted",
            None,
        )
        .await?;
        if let Some(control) = self.streams.control(stream) {
            let _ = control.send(Control::Stop("deleted".into())).await;
        }
        self.stream(app, id, stream).await
    }

    /// Carries the stream `id` of `room` on a task of its own, from its legs to its end (or
    /// until it yields), then forgets it. The caller has added its controls
    /// ([`StreamsHere::add`]); `ready` is told once it streams or has ended.
    fn spawn_carrier(
        &self,
        app: &AppId,
        room: &crate::conference::Room,
        id: Uuid,
        peer: Peer,
        control: mpsc::Receiver<Control>,
        ready: watch::Sender<bool>,
    ) {
        let stream = room.streams.iter().find(|s| s.id == id).cloned();
        let (Some(stream), Ok(node)) = (stream, self.pool.get(&room.node)) else {
            self.streams.forget(&id);
            return;
        };
        let carrier = Carrier {
            store: self.store.clone(),
            pool: self.pool.clone(),
            here: self.streams.clone(),
            app: app.clone(),
            room: room.id.clone(),
            node,
            settings: self.streams.settings.load_full(),
            peer,
            target: ops::member_target(room, &stream),
            // A stream taken over: the legs its last carrier made (none for a new one).
            old_legs: stream.legs.clone(),
        };
        tokio::spawn(async move {
            carrier.carry(stream, control, ready).await;
            carrier.here.forget(&id);
        });
    }

    /// Refused when the app's live rooms already hold its quota of live streams.
    async fn stream_place(&self, app: &AppId) -> Result<(), ServiceError> {
        let most = self.quota(app).streams;
        if most == 0 {
            return Ok(());
        }
        let live = self
            .count_in_rooms(app, true, most, |r| {
                r.streams.iter().filter(|s| s.is_live()).count()
            })
            .await?;
        if live >= most {
            return Err(Reached::Streams(most).into());
        }
        Ok(())
    }
}

/// Ends a stream in the room's record and hangs its legs up: the stream's status and reason as
/// they now are, and whether this call ended it (a stream already over is left as it was).
#[allow(clippy::too_many_arguments)]
async fn end_stream<S: Store>(
    store: &S,
    pool: &crate::node::NodePool,
    app: &AppId,
    id: &RoomId,
    stream: Uuid,
    carrier: Option<&str>,
    status: StreamStatus,
    reason: &str,
    error: Option<&str>,
) -> Result<Option<(StreamStatus, String, bool)>, ServiceError> {
    let ended = update_room(store, app, id, |r| {
        let node = r.node.clone();
        let applied = ops::end_stream(r, stream, carrier, status, reason, error, now_micros());
        let here = !applied.events.is_empty();
        let now = r.streams.iter().find(|s| s.id == stream);
        let outcome = now.map(|s| (s.status, s.reason.clone().unwrap_or_default(), here));
        let legs: Vec<String> = applied
            .effects
            .iter()
            .filter_map(|e| match e {
                crate::conference::Effect::Cancel { channel } => Some(channel.clone()),
                _ => None,
            })
            .collect();
        Ok::<_, OpError>(((node, legs, outcome), applied.events))
    })
    .await?;
    match ended {
        Some(Ok((_, (node, legs, outcome)))) => {
            hang_up(&pool.get(&node).ok(), &legs).await;
            Ok(outcome)
        }
        _ => Ok(None),
    }
}

/// Fails a stream that no instance carries on (a listen-in no socket claimed, or one whose
/// carrier is gone), if `carrier` still has it; counted once, by the instance that ended it.
#[allow(clippy::too_many_arguments)]
async fn fail_uncarried<S: Store>(
    store: &S,
    pool: &crate::node::NodePool,
    app: &AppId,
    id: &RoomId,
    stream: Uuid,
    carrier: &str,
    reason: &str,
    error: &str,
) {
    let ended = end_stream(
        store,
        pool,
        app,
        id,
        stream,
        Some(carrier),
        StreamStatus::Failed,
        reason,
        Some(error),
    )
    .await;
    if let Ok(Some((status, reason, true))) = ended {
        crate::telemetry::stream_ended(status.as_str(), &reason);
    }
}

/// Hangs up a stream's legs (best effort: a leg already gone is gone).
async fn hang_up(node: &Option<NodeHandle>, legs: &[String]) {
    let Some(node) = node else { return };
    for leg in legs {
        if let Ok(cmd) = commands::kill(leg) {
            let _ = node.api(&cmd).await;
        }
    }
}

/// Where a stream's socket comes from.
enum Peer {
    /// The application's server, dialled.
    Dial(url::Url),
    /// A browser listening in, its connection upgraded here (taken once).
    Accepted(Box<Mutex<Option<socket::Socket>>>),
}

/// One stream carried by this process, from its legs to its end.
struct Carrier<S> {
    store: Arc<S>,
    pool: crate::node::NodePool,
    here: Arc<StreamsHere>,
    app: AppId,
    room: RoomId,
    node: NodeHandle,
    settings: Arc<StreamSettings>,
    peer: Peer,
    /// The channel a member track listens to.
    target: Option<String>,
    /// A stream taken over: the legs its last carrier made (hung up before new ones are made).
    old_legs: Vec<String>,
}

impl<S: Store> Carrier<S> {
    async fn carry(
        &self,
        stream: Stream,
        control: mpsc::Receiver<Control>,
        ready: watch::Sender<bool>,
    ) {
        hang_up(&Some(self.node.clone()), &self.old_legs).await;
        let began = std::time::Instant::now();
        let opened = self.open(&stream).await;
        tracing::debug!(stream = %stream.id, took_ms = began.elapsed().as_millis() as u64, ok = opened.is_ok(), "stream opened");
        let outcome = match opened {
            Ok((socket, media)) => {
                self.started(&stream).await;
                let _ = ready.send(true);
                Ok(self.relay(&stream, socket, media, control).await)
            }
            Err(failed) => Err(failed),
        };
        if outcome == Ok(Outcome::Yielded) {
            // Another instance carries it now: it is not over.
            let _ = ready.send(true);
            return;
        }
        let (status, reason, error) = match &outcome {
            Ok(Outcome::Stopped(reason)) => (StreamStatus::Stopped, reason.clone(), None),
            Ok(Outcome::ServerClosed) => (StreamStatus::Stopped, "server_closed".into(), None),
            Ok(Outcome::Lost(e)) => (StreamStatus::Failed, "lost".into(), Some(e.clone())),
            Ok(Outcome::MediaGone) => (
                StreamStatus::Failed,
                "media_lost".into(),
                Some("the node's media legs stopped sending audio".into()),
            ),
            Ok(Outcome::Yielded) => return,
            Err((code, text)) => (StreamStatus::Failed, (*code).to_owned(), Some(text.clone())),
        };
        // Ended already where it was ended (a DELETE, the room or member ending): unchanged,
        // and counted as it was ended.
        let ended = end_stream(
            &*self.store,
            &self.pool,
            &self.app,
            &self.room,
            stream.id,
            Some(&self.here.holder),
            status,
            &reason,
            error.as_deref(),
        )
        .await;
        if let Ok(Some((status, reason, _))) = ended {
            crate::telemetry::stream_ended(status.as_str(), &reason);
        }
        let _ = ready.send(true);
    }

    /// Relays until the stream ends. When its legs stop sending while the stream lives on (its
    /// room moved to another node, which hangs the old legs up), new legs are made where the
    /// room is now, toward the same ports, and the same socket goes on.
    async fn relay(
        &self,
        stream: &Stream,
        mut socket: socket::Socket,
        mut media: Media,
        control: mpsc::Receiver<Control>,
    ) -> Outcome {
        let parameters = stream.parameters.clone();
        let stream_id = stream.id.to_string();
        let session = stream.session.as_ref().map(|s| s.to_string());
        let held = crate::telemetry::stream_frame_held();
        let relay = Relay {
            protocol: stream.protocol,
            opening: Opening {
                stream_id: &stream_id,
                room_id: self.room.as_str(),
                app_id: self.app.as_str(),
                track: stream.track,
                session: session.as_deref(),
                sample_rate: stream.sample_rate,
                bidirectional: stream.bidirectional,
                parameters: &parameters,
            },
            bidirectional: stream.bidirectional,
            held: &held,
        };
        let mut control = merge(control, self.follow_dtmf(stream));
        let mut running = match relay.open(&mut socket).await {
            Ok(running) => running,
            Err(outcome) => return outcome,
        };
        let mut moves = 0;
        let outcome = loop {
            let outcome = relay
                .run(&mut running, &mut socket, &media, &mut control)
                .await;
            if outcome != Outcome::MediaGone || moves >= MAX_MOVES {
                break outcome;
            }
            moves += 1;
            match self.follow_room(stream, &mut media).await {
                Ok(()) => continue,
                Err(_) => break outcome,
            }
        };
        relay.close(&mut running, socket, &outcome).await;
        outcome
    }

    /// New legs for a live stream whose legs are gone, on the room's node as it is now (after
    /// a move that is over), toward the same ports.
    async fn follow_room(&self, stream: &Stream, media: &mut Media) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + MOVE_WAIT;
        let room = loop {
            let room = self
                .store
                .room(&self.app, &self.room)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the room is gone")?;
            let live = room
                .streams
                .iter()
                .any(|s| s.id == stream.id && s.is_live());
            if !live || room.status != crate::conference::RoomStatus::Progressing {
                return Err("the stream or its room ended".into());
            }
            if room.migration.is_none() {
                break room;
            }
            if tokio::time::Instant::now() > deadline {
                return Err("the room is still moving".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let node = self.pool.get(&room.node).map_err(|e| e.to_string())?;
        let target = ops::member_target(&room, stream);
        let (node_addr, media_ip) = self.addresses(&node).await.map_err(|e| e.1)?;
        let plan = plan(
            stream,
            &node,
            target.as_deref(),
            &media.listen,
            media.speak.as_ref(),
        )
        .map_err(|e| e.1)?;
        let mut legs = Vec::new();
        let made = self
            .make_legs(&node, stream, &plan, media_ip, &mut legs, true)
            .await;
        let flowing =
            made.is_ok() && Relay::media_flows(&media.listen, node_addr.ip(), MEDIA_START).await;
        if !flowing {
            hang_up(&Some(node), &legs).await;
            return Err("no audio from the new legs".into());
        }
        media.node_ip = node_addr.ip();
        tracing::info!(stream = %stream.id, node = %room.node, "stream legs remade where the room is now");
        Ok(())
    }

    /// The node's address, and the address it sends a stream's audio to.
    async fn addresses(
        &self,
        node: &NodeHandle,
    ) -> Result<(SocketAddr, IpAddr), (&'static str, String)> {
        let node_addr = resolve(&node.config.addr).await.ok_or((
            "media_unavailable",
            "the node's address does not resolve".to_owned(),
        ))?;
        let media_ip = match self.settings.media_ip {
            Some(ip) => ip,
            None => route_to(node_addr).await.ok_or((
                "media_unavailable",
                "no route to the node for the stream's audio".to_owned(),
            ))?,
        };
        Ok((node_addr, media_ip))
    }

    /// The legs and the socket; on failure, the legs made so far are hung up.
    async fn open(
        &self,
        stream: &Stream,
    ) -> Result<(socket::Socket, Media), (&'static str, String)> {
        let (node_addr, media_ip) = self.addresses(&self.node).await?;
        let bind = SocketAddr::new(self.settings.media_bind, 0);
        let listen = UdpSocket::bind(bind).await.map_err(no_port)?;
        let speak = match stream.track == Track::Member && stream.bidirectional {
            true => Some(UdpSocket::bind(bind).await.map_err(no_port)?),
            false => None,
        };
        let plan = plan(
            stream,
            &self.node,
            self.target.as_deref(),
            &listen,
            speak.as_ref(),
        )?;
        let mut legs = Vec::new();
        let result = self
            .make_legs(&self.node, stream, &plan, media_ip, &mut legs, false)
            .await;
        let result = match result {
            Ok(()) => self.connect(node_addr, &listen).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(socket) => Ok((
                socket,
                Media {
                    listen,
                    speak,
                    node_ip: node_addr.ip(),
                },
            )),
            Err(e) => {
                hang_up(&Some(self.node.clone()), &legs).await;
                Err(e)
            }
        }
    }

    /// Originates each planned leg on `node`, records it in the room (`replace`: in place of
    /// the legs it had), and points its `unicast` at its port here.
    async fn make_legs(
        &self,
        node: &NodeHandle,
        stream: &Stream,
        plan: &[(Listen<'_>, &UdpSocket)],
        media_ip: IpAddr,
        legs: &mut Vec<String>,
        mut replace: bool,
    ) -> Result<(), (&'static str, String)> {
        for (listen, udp) in plan {
            let port = udp.local_addr().map_err(no_port)?.port();
            let mut tries = 0;
            let leg = loop {
                tries += 1;
                let leg = Uuid::new_v4().to_string();
                let cmd = media_legs::originate(&leg, &self.room, &stream.id, *listen)
                    .map_err(|e| ("media_unavailable", invalid(e).to_string()))?;
                legs.push(leg.clone());
                // In the background (`bgapi`): an `api originate` holds its Event Socket
                // connection (FreeSWITCH runs a connection's commands in turn) for as long as
                // the node takes, and every command behind it would wait.
                let began = std::time::Instant::now();
                let originated = node.bgapi(&cmd).await.and_then(|r| {
                    r.expect_ok(false)
                        .map(drop)
                        .map_err(|e| crate::node::NodeError::Rejected(e.to_string()))
                });
                tracing::debug!(stream = %stream.id, tries, took_ms = began.elapsed().as_millis() as u64, ok = originated.is_ok(), "stream leg originated");
                match originated {
                    Ok(()) => break leg,
                    // Now and then (about one in 50 under load, both versions) a loopback
                    // originate is never answered: it runs into its `originate_timeout`
                    // (media_legs::ANSWER_WITHIN) and is made again, once.
                    Err(_) if tries < 2 => continue,
                    Err(e) => {
                        return Err((
                            "media_unavailable",
                            format!("the node refused the media leg: {e}"),
                        ));
                    }
                }
            };
            let unicast = media_legs::unicast(&leg, SocketAddr::new(media_ip, port))
                .map_err(|e| ("media_unavailable", e.to_string()))?;
            let recorded = update_room(&*self.store, &self.app, &self.room, |r| {
                let now = now_micros();
                let leg = std::slice::from_ref(&leg);
                let kept = ops::stream_legs(r, stream.id, &self.here.holder, leg, replace, now);
                Ok::<_, OpError>((kept, Vec::new()))
            })
            .await;
            replace = false;
            if !matches!(recorded, Ok(Some(Ok((_, true))))) {
                return Err(("stopped", "the stream ended while it was starting".into()));
            }
            node.sendmsg(unicast).await.map_err(|e| {
                (
                    "media_unavailable",
                    format!("the node refused unicast: {e}"),
                )
            })?;
        }
        Ok(())
    }

    /// The socket, once the node's audio flows.
    async fn connect(
        &self,
        node_addr: SocketAddr,
        listen: &UdpSocket,
    ) -> Result<socket::Socket, (&'static str, String)> {
        let began = std::time::Instant::now();
        let socket = match &self.peer {
            Peer::Dial(url) => socket::open(url, &self.settings.policy)
                .await
                .map_err(|f| (f.code, f.text))?,
            Peer::Accepted(socket) => socket
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .ok_or(("lost", "the listener's socket is gone".to_owned()))?,
        };
        let opened = began.elapsed();
        let flows = Relay::media_flows(listen, node_addr.ip(), MEDIA_START).await;
        tracing::debug!(
            socket_ms = opened.as_millis() as u64,
            media_ms = began.elapsed().as_millis() as u64,
            flows,
            "stream socket and media"
        );
        if !flows {
            return Err((
                "media_unavailable",
                "the node sent no audio for the stream".into(),
            ));
        }
        Ok(socket)
    }

    async fn started(&self, stream: &Stream) {
        let _ = update_room(&*self.store, &self.app, &self.room, |r| {
            let events: Vec<DomainEvent> =
                ops::stream_started(r, stream.id, &self.here.holder, now_micros())
                    .map(|a| a.events)
                    .unwrap_or_default();
            Ok::<_, OpError>(((), events))
        })
        .await;
    }

    /// The DTMF of the room's members (or the one member a member track follows), from the
    /// app's event outbox, which every instance reads: one reader per app here, whatever the
    /// number of its streams ([`StreamsHere::dtmf_of`]).
    fn follow_dtmf(&self, stream: &Stream) -> mpsc::Receiver<Control> {
        let (tx, rx) = mpsc::channel(32);
        let mut keys = self.here.dtmf_of(&self.store, &self.app);
        let room = self.room.clone();
        let session = stream.session.as_ref().map(|s| s.to_string());
        tokio::spawn(async move {
            loop {
                let key = tokio::select! {
                    key = keys.recv() => key,
                    () = tx.closed() => return,
                };
                let key = match key {
                    Ok(key) => key,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let theirs = session.is_none() || key.session == session;
                if key.room != room || !theirs {
                    continue;
                }
                let dtmf = Control::Dtmf {
                    digit: key.digit,
                    session: key.session,
                };
                if tx.send(dtmf).await.is_err() {
                    return;
                }
            }
        });
        rx
    }
}

/// Reads the app's outbox from now on and hands its members' keys to the app's streams here,
/// until none listens (then it leaves the feeds, under their lock, so that a stream asking at
/// that moment starts a new reader).
async fn read_keys<S: Store>(
    store: Arc<S>,
    app: AppId,
    tx: broadcast::Sender<Key>,
    feeds: Arc<Mutex<KeyFeeds>>,
) {
    let mut bell = store.outbox_watch(&app);
    let ms = now_micros().max(0) as u64 / 1000;
    let mut after = format!("{}-0", ms.saturating_sub(200));
    let waits = crate::store::bell::Waits {
        poll: Duration::from_millis(100),
        idle: Duration::from_secs(5),
    };
    loop {
        {
            let mut feeds = feeds.lock().unwrap_or_else(|e| e.into_inner());
            if tx.receiver_count() == 0 {
                feeds.remove(&app);
                return;
            }
        }
        bell.seen();
        let rows: Vec<crate::store::OutboxEntry> = store
            .outbox(&app, Some(&after), 200)
            .await
            .unwrap_or_default();
        let caught_up = rows.len() < 200;
        for row in rows {
            after = row.position.clone();
            let e = &row.event;
            let digit = e.data["digit"].as_str().and_then(|d| d.chars().next());
            if let (EventKind::MemberDtmf, Some(digit)) = (e.kind, digit) {
                let session = e.data["uuid"].as_str().map(str::to_owned);
                let _ = tx.send(Key {
                    room: e.room.clone(),
                    session,
                    digit,
                });
            }
        }
        if caught_up {
            bell.wait(tokio::time::Instant::now(), waits).await;
        }
    }
}

/// Which legs a stream takes on `node`: a room track's conference member, or a member track's
/// eavesdrop (and its whisper, when bidirectional), each with its UDP socket here.
fn plan<'a>(
    stream: &Stream,
    node: &'a NodeHandle,
    target: Option<&'a str>,
    listen: &'a UdpSocket,
    speak: Option<&'a UdpSocket>,
) -> Result<Vec<(Listen<'a>, &'a UdpSocket)>, (&'static str, String)> {
    let mut plan = Vec::new();
    match (stream.track, target) {
        (Track::Room, _) => plan.push((
            Listen::Room {
                profile: &node.config.profile,
                speaks: stream.bidirectional,
            },
            listen,
        )),
        (Track::Member, Some(target)) => {
            plan.push((Listen::Member { target }, listen));
            if let Some(speak) = speak {
                plan.push((Listen::Whisper { target }, speak));
            }
        }
        (Track::Member, None) => {
            return Err(("member_left", "the member is no longer in the room".into()));
        }
    }
    Ok(plan)
}

/// Why the room refused a stream: a `session` that is not one of its members is bad input (a
/// 400 naming the field), the rest is the room's state (409).
fn refused(e: OpError) -> ServiceError {
    match e {
        OpError::NotAMember(_) => ServiceError::Invalid(format!("session: {e}")),
        e => e.into(),
    }
}

fn no_port(e: std::io::Error) -> (&'static str, String) {
    (
        "media_unavailable",
        format!("no UDP port for the stream: {e}"),
    )
}

/// Both control sources as one (the DELETE's stop, the DTMF feed).
fn merge(
    mut control: mpsc::Receiver<Control>,
    mut dtmf: mpsc::Receiver<Control>,
) -> mpsc::Receiver<Control> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                c = control.recv() => match c { Some(c) => c, None => return },
                Some(d) = dtmf.recv() => d,
            };
            if tx.send(next).await.is_err() {
                return;
            }
        }
    });
    rx
}

async fn resolve(addr: &str) -> Option<SocketAddr> {
    tokio::net::lookup_host(addr).await.ok()?.next()
}

/// This host's address on the route to `to` (no packet is sent).
async fn route_to(to: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = match to {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let probe = UdpSocket::bind(any).await.ok()?;
    probe.connect(to).await.ok()?;
    Some(probe.local_addr().ok()?.ip())
}
