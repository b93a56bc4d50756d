//! A stream outlives the instance that carries it. Each carrier holds a lease per app whose
//! streams it carries (`stream-carrier:<holder>`, renewed four times a second, good for 1.5
//! s), and every stream names its carrier (`Stream::carrier`). Every instance looks at the
//! apps' live streams four times a second, reading only the rooms of the store's media index
//! (`Store::media_rooms_of_app`), not every live room: a stream whose carrier's lease is gone (the lease
//! taken here means it was free) is taken over, in the room's record first (only one instance
//! can change the carrier from the old one: `ops::adopt_stream`), then on the node (the old
//! legs hung up, new ones made toward this instance) and on a new socket, whose `start` the
//! server gets again for the same `stream_id`; `conference.stream.started` says so, with one
//! more `connections`. The room's record fences the old carrier: its writes name a carrier the
//! stream no longer has and change nothing; when it finds its lease taken (a new generation),
//! it closes its sockets without `stop`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{Peer, StreamsHere, listen};
use crate::conference::ops::{self, OpError};
use crate::conference::{AppId, Room, Stream, StreamStatus, UNCLAIMED};
use crate::node::supervisor::now_micros;
use crate::rooms::Rooms;
use crate::store::{Store, StoreError, update_room};
use crate::streams::relay::Control;
use crate::streams::socket;

/// How long a carrier's lease lasts unrenewed: a stream is taken over this long (and up to a
/// look, [`LOOK`]) after its carrier died.
const LEASE: Duration = Duration::from_millis(1500);
const RENEW: Duration = Duration::from_millis(250);
const LOOK: Duration = Duration::from_millis(250);

fn lease_name(holder: &str) -> String {
    format!("stream-carrier:{holder}")
}

/// Takes or renews this process's lease as a carrier of the app's streams; `false` when another
/// holds it. A new generation (the lease lapsed in between: a stall) makes each stream carried
/// here for the app that another instance took over meanwhile yield.
pub(super) async fn hold<S: Store>(
    store: &Arc<S>,
    here: &StreamsHere,
    app: &AppId,
) -> Result<bool, StoreError> {
    let Some(generation) = store
        .lease(app, &lease_name(&here.holder), &here.holder, LEASE)
        .await?
    else {
        return Ok(false);
    };
    let before = here
        .generations
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(app.clone(), generation);
    if before.is_none_or(|g| g == generation) {
        return Ok(true);
    }
    // A lease that ran out while this instance carried none of the app's streams (the last
    // one ended) lost nothing.
    let carried = here.of_app(app);
    if !carried.is_empty() {
        tracing::warn!(app = %app, "this instance's stream carrier lease lapsed: its streams taken over yield");
        for (id, room, control) in carried {
            let room = store.room(app, &room).await?;
            let kept = room.is_some_and(|r| {
                r.streams
                    .iter()
                    .any(|s| s.id == id && s.carrier.as_deref() == Some(here.holder.as_str()))
            });
            if !kept {
                let _ = control.send(Control::Yield).await;
            }
        }
    }
    Ok(true)
}

impl<S: Store> Rooms<S> {
    /// Renews this process's carrier leases and takes over the streams of carriers that are
    /// gone, until `stop`. The renewals run apart from the look at every stream, which a busy
    /// store can make slow: a renewal never waits for it.
    pub async fn keep_streams(&self, stop: CancellationToken) {
        let _part = crate::node::fleet::TakingPart::new();
        let renewing = async {
            let mut renew = tokio::time::interval(RENEW);
            renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                renew.tick().await;
                self.renew_carrier_leases().await;
            }
        };
        let looking = async {
            let mut look = tokio::time::interval(LOOK);
            look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                look.tick().await;
                self.take_over_streams().await;
            }
        };
        tokio::select! {
            () = stop.cancelled() => {}
            () = renewing => {}
            () = looking => {}
        }
        self.hand_streams_over().await;
    }

    /// Stopping: each stream carried here closes its socket (no `stop`: it goes on), and the
    /// carrier leases are given up, so that another instance takes the streams over at its next
    /// look (250 ms) rather than once the leases run out (1.5 s). Alone, the streams wait for
    /// this instance's restart, which takes them back the same way.
    async fn hand_streams_over(&self) {
        let holder = self.streams.holder.clone();
        for app in self.streams.apps() {
            for (_, _, control) in self.streams.of_app(&app) {
                let _ = control.send(Control::Yield).await;
            }
            let released = self
                .store
                .release_lease(&app, &lease_name(&holder), &holder)
                .await;
            tracing::info!(app = %app, released = released.is_ok(), "stream carrier lease given up: the streams go to another instance");
        }
    }

    async fn renew_carrier_leases(&self) {
        for app in self.streams.apps() {
            match hold(&self.store, &self.streams, &app).await {
                Ok(true) => {}
                Ok(false) => {
                    for (_, _, control) in self.streams.of_app(&app) {
                        let _ = control.send(Control::Yield).await;
                    }
                }
                // The store is out: the lease may run out meanwhile; a takeover then fences
                // this instance, and the next renewal finds a new generation.
                Err(e) => {
                    tracing::debug!(app = %app, error = %e, "stream carrier lease not renewed")
                }
            }
        }
    }

    async fn take_over_streams(&self) {
        let me = self.streams.holder.clone();
        for app in self.directory().apps() {
            // Per carrier: gone (its lease was free and is taken here) or alive.
            let mut gone: HashMap<String, bool> = HashMap::new();
            let mut after = None;
            loop {
                let Ok(page) = self.store.media_rooms_of_app(&app, after, 500).await else {
                    break;
                };
                for room in &page.items {
                    for s in room
                        .streams
                        .iter()
                        .filter(|s| s.status == StreamStatus::Streaming || s.listen && s.is_live())
                    {
                        let Some(carrier) = s.carrier.clone() else {
                            continue;
                        };
                        if self.streams.carries(&s.id) {
                            continue;
                        }
                        if carrier == UNCLAIMED {
                            if listen::stale(s, now_micros()) {
                                listen::end_unclaimed(
                                    &*self.store,
                                    &self.pool,
                                    &app,
                                    &room.id,
                                    s.id,
                                )
                                .await;
                            }
                            continue;
                        }
                        // Carried by this process before it lost it, or by another.
                        let is_gone = match (carrier == me, gone.get(&carrier)) {
                            (true, _) => true,
                            (false, Some(g)) => *g,
                            (false, None) => {
                                let name = lease_name(&carrier);
                                let taken = self.store.lease(&app, &name, &me, LEASE).await;
                                let g = matches!(taken, Ok(Some(_)));
                                gone.insert(carrier.clone(), g);
                                g
                            }
                        };
                        if is_gone && s.listen {
                            // Its socket was the browser's, to the instance that is gone: it
                            // is over (the page opens a new one).
                            super::fail_uncarried(
                                &*self.store,
                                &self.pool,
                                &app,
                                &room.id,
                                s.id,
                                &carrier,
                                "lost",
                                "the controller instance carrying the listen-in is gone",
                            )
                            .await;
                        } else if is_gone {
                            self.adopt(&app, room, s, &carrier).await;
                        }
                    }
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
    }

    /// Takes the stream over from `from`: in the room's record, then its legs and socket.
    async fn adopt(&self, app: &AppId, room: &Room, s: &Stream, from: &str) {
        let me = self.streams.holder.clone();
        if !matches!(hold(&self.store, &self.streams, app).await, Ok(true)) {
            return;
        }
        let adopted = update_room(&*self.store, app, &room.id, |r| {
            let ok = ops::adopt_stream(r, s.id, from, &me, now_micros());
            Ok::<_, OpError>((ok, Vec::new()))
        })
        .await;
        let room = match adopted {
            Ok(Some(Ok((room, true)))) => room,
            _ => return,
        };
        let Some(stream) = room.streams.iter().find(|x| x.id == s.id).cloned() else {
            return;
        };
        let Ok(url) = socket::check_url(&stream.url, &self.streams.settings.load().policy) else {
            return;
        };
        tracing::info!(stream = %stream.id, room = %room.id, from, "stream taken over");
        let (tx, rx) = mpsc::channel(64);
        self.streams
            .add(stream.id, app.clone(), room.id.clone(), tx);
        let (ready, _) = watch::channel(false);
        self.spawn_carrier(app, &room, stream.id, Peer::Dial(url), rx, ready);
    }
}
