//! Listening in from the dashboard, through the same streams: `POST …/listen` makes a stream
//! (`listen`, L16 at 16 kHz, two-way when the listener may talk) that no socket has claimed
//! yet, and answers with a one-time ticket. The browser opens its WebSocket to the controller
//! with it (`GET /api/v1/listen/{ticket}`); the first socket claims the stream in the room's
//! record (its carrier becomes this instance), and the stream is carried like any other, its
//! legs made and its audio relayed to the browser. A ticket no socket used ends the stream
//! (`failed`, `not_opened`). A listen-in is not taken over when its carrier dies: the
//! browser's socket died with it, so it ends (`failed`, `lost`), and the page opens a new one.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Map;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::{Peer, fail_uncarried, takeover};
use crate::conference::ops::{self, OpError};
use crate::conference::{
    AppId, Protocol, Room, RoomId, SessionId, Stream, StreamStatus, Track, UNCLAIMED,
};
use crate::node::supervisor::now_micros;
use crate::rooms::{Rooms, ServiceError};
use crate::store::{Store, update_room};
use crate::streams::socket::Socket;

/// How long a listen-in's ticket opens its socket.
pub const TICKET_LIFE: Duration = Duration::from_secs(30);

/// An unclaimed listen-in older than this is over (its issuer died before it could end it).
pub(super) const STALE: Duration = Duration::from_secs(40);

/// The path the listener's socket is opened on (and a listen-in's `url`).
pub const LISTEN_PATH: &str = "/api/v1/listen";

/// Audio to the listener: L16 at 16 kHz.
const RATE: u32 = 16_000;

/// What the listener asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenRequest {
    pub track: Track,
    pub session: Option<SessionId>,
    /// The listener may talk: what it sends is heard by the room (or by the member alone).
    pub talk: bool,
}

impl<S: Store> Rooms<S> {
    /// A listen-in, `starting` and unclaimed, counted like any stream: the first socket opened
    /// with its ticket within [`TICKET_LIFE`] claims it, or it fails (`not_opened`).
    pub async fn request_listen(
        &self,
        app: &AppId,
        id: &RoomId,
        req: ListenRequest,
    ) -> Result<Stream, ServiceError> {
        let room = self.room(app, id).await?;
        self.pool.get(&room.node)?.has_room_for_a_command()?;
        self.stream_place(app).await?;
        let now = now_micros();
        let stream = Stream {
            id: Uuid::new_v4(),
            url: LISTEN_PATH.into(),
            track: req.track,
            session: req.session,
            channel: None,
            protocol: Protocol::L16,
            sample_rate: RATE,
            bidirectional: req.talk,
            parameters: Map::new(),
            status: StreamStatus::Starting,
            reason: None,
            error: None,
            legs: Vec::new(),
            carrier: Some(UNCLAIMED.into()),
            listen: true,
            connections: 0,
            created_at: now,
            started_at: None,
            ended_at: None,
            updated_at: now,
        };
        let added = update_room(&*self.store, app, id, |r| {
            ops::request_stream(r, stream.clone(), now_micros())?;
            Ok::<_, OpError>(((), Vec::new()))
        })
        .await?;
        match added {
            None => return Err(ServiceError::NotFound("room")),
            Some(Err(e)) => return Err(super::refused(e)),
            Some(Ok(_)) => {}
        }
        let (store, pool, app2, id2, sid) = (
            self.store.clone(),
            self.pool.clone(),
            app.clone(),
            id.clone(),
            stream.id,
        );
        tokio::spawn(async move {
            tokio::time::sleep(TICKET_LIFE + Duration::from_secs(1)).await;
            end_unclaimed(&*store, &pool, &app2, &id2, sid).await;
        });
        Ok(stream)
    }

    /// Claims the listen-in for a socket opened here: `Conflict` when another socket did
    /// already, or it is over.
    pub async fn claim_listen(
        &self,
        app: &AppId,
        id: &RoomId,
        stream: Uuid,
    ) -> Result<(Room, mpsc::Receiver<crate::streams::relay::Control>), ServiceError> {
        if !takeover::hold(&self.store, &self.streams, app).await? {
            return Err(ServiceError::Store(crate::store::StoreError::Unavailable(
                "this instance's lease as a stream carrier is held by another".into(),
            )));
        }
        let (tx, rx) = mpsc::channel(64);
        self.streams.add(stream, app.clone(), id.clone(), tx);
        let holder = self.streams.holder.clone();
        let claimed = update_room(&*self.store, app, id, |r| {
            let listen = r.streams.iter().any(|s| s.id == stream && s.listen);
            let ok = listen && ops::adopt_stream(r, stream, UNCLAIMED, &holder, now_micros());
            Ok::<_, OpError>((ok, Vec::new()))
        })
        .await;
        match claimed {
            Ok(Some(Ok((room, true)))) => Ok((room, rx)),
            other => {
                self.streams.forget(&stream);
                match other {
                    Err(e) => Err(e.into()),
                    Ok(None) => Err(ServiceError::NotFound("room")),
                    _ => Err(ServiceError::Conflict(
                        "this listen-in was opened already, or it is over".into(),
                    )),
                }
            }
        }
    }

    /// Carries a claimed listen-in on the listener's socket until it ends.
    pub fn carry_listen(
        &self,
        app: &AppId,
        room: Room,
        stream: Uuid,
        control: mpsc::Receiver<crate::streams::relay::Control>,
        socket: Option<Socket>,
    ) {
        let peer = Peer::Accepted(Box::new(Mutex::new(socket)));
        let (ready, _) = watch::channel(false);
        self.spawn_carrier(app, &room, stream, peer, control, ready);
    }
}

/// Ends the listen-in if no socket claimed it (`failed`, `not_opened`).
pub(super) async fn end_unclaimed<S: Store>(
    store: &S,
    pool: &crate::node::NodePool,
    app: &AppId,
    id: &RoomId,
    stream: Uuid,
) {
    fail_uncarried(
        store,
        pool,
        app,
        id,
        stream,
        UNCLAIMED,
        "not_opened",
        "no listener opened the socket with the ticket in time",
    )
    .await;
}

/// Whether the unclaimed listen-in is past any ticket's life.
pub(super) fn stale(s: &Stream, now: i64) -> bool {
    s.carrier.as_deref() == Some(UNCLAIMED)
        && now.saturating_sub(s.created_at) > STALE.as_micros() as i64
}
