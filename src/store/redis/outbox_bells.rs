//! The outbox bells on a Redis with the room cache, not a cluster: no write publishes.
//!
//! A reader's outbox reads go on the room cache's tracked connection, so Redis tells this
//! process when the outbox changes (the `invalidate` push the room cache hears anyway) and the
//! app's bell rings. An append by this process on that connection draws no push (NOLOOP), so a
//! writer rings its own bells. Redis tracks a key for us from our read until its next change:
//! one push per read, however many appends follow, and only to the processes that read that
//! app's outbox (its webhook dispatcher's, its event streams'), as the Pub/Sub channels were.
//!
//! The bells are live while the tracked connection is: a `PING` every few seconds finds a
//! connection that died quietly, and one at each Sentinel announcement moves it to the new
//! master; a lost one takes the bells down (readers poll) and is made
//! again at once (then with backoff), and the next connection sets the bells live and rings
//! them all (what was appended while no change could be heard).
//!
//! Instances of earlier versions hear appends on Pub/Sub channels ([`super::appended`]): while
//! any such channel has a subscriber (`PUBSUB CHANNELS`, asked every second), the writes publish
//! on it as before, so a rolling upgrade keeps every reader woken at once.
//!
//! On a Redis Cluster, or with the room cache off, the writes publish and [`super::appended`]
//! subscribes, as before.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::shards::Shards;
use super::{RedisStore, failover};
use crate::conference::AppId;
use crate::store::bell::Bells;
use crate::store::keys;
use crate::store::room_cache::{Tracked, Tracking, Watcher};

/// How often the tracked connection is checked while bells may wait on it.
const PING_EVERY: Duration = Duration::from_secs(5);
/// The first wait before connecting again after a loss (doubling up to [`PING_EVERY`]).
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// How often the channels that instances of before listen on are asked for.
const CHANNELS_EVERY: Duration = Duration::from_secs(1);

/// The shards (tags) whose [`keys::appended`] channel has a subscriber (an instance of an
/// earlier version), as last asked; `None` until asked once (every write publishes meanwhile).
#[derive(Default)]
pub(super) struct Listened {
    tags: Mutex<Option<HashSet<String>>>,
    asking: std::sync::OnceLock<tokio_util::sync::DropGuard>,
}

impl Listened {
    /// Asked on every write that appends: no allocation.
    fn heard(&self, tag: &str) -> bool {
        self.tags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_none_or(|t| t.contains(tag))
    }

    fn set(&self, tags: Option<HashSet<String>>) {
        *self.tags.lock().unwrap_or_else(|p| p.into_inner()) = tags;
    }
}

/// Rings `bells` for what the tracked connection hears about outbox keys; `lost` is told when
/// the connection goes (the bells are down until the next one is up: readers poll meanwhile).
fn watcher(bells: Bells, lost: Arc<Notify>) -> Watcher {
    Arc::new(move |news: Tracking<'_>| match news {
        Tracking::Changed(key) => {
            if let Some(app) = keys::outbox_app(key).and_then(|a| AppId::parse(a).ok()) {
                bells.ring(&app);
            }
        }
        Tracking::Everything => bells.ring_all(),
        Tracking::Connected => {
            bells.set_live(true);
            bells.ring_all();
        }
        Tracking::Lost => {
            bells.set_live(false);
            lost.notify_one();
        }
    })
}

impl RedisStore {
    /// The tracked connection, when the bells follow it (not on a cluster, where each master
    /// would need its own reads; there the writes `SPUBLISH`).
    pub(super) fn bells_tracked(&self) -> Option<&Arc<Tracked>> {
        self.rooms.as_ref().filter(|t| !t.is_cluster())
    }

    /// Starts hearing the outbox through the tracked connection (once per store).
    pub(super) fn follow_tracking(
        &self,
        runtime: &tokio::runtime::Handle,
        tracked: &Arc<Tracked>,
        stop: CancellationToken,
    ) {
        let lost = Arc::new(Notify::new());
        tracked
            .entries()
            .watch(watcher(self.bells.clone(), lost.clone()));
        // A watcher that does not read the outbox has it tracked by reading its length.
        // Weak: the bells are the cache's watcher's, which the tracked connection holds.
        let (arming, shards) = (
            Arc::downgrade(tracked),
            Arc::new(Shards::new(self.shards.count())),
        );
        self.bells.set_arm(Arc::new(move |app: AppId| {
            let (tracked, tags) = (arming.upgrade(), shards.tags(&app));
            Box::pin(async move {
                let Some(tracked) = tracked else {
                    return;
                };
                for tag in tags.iter() {
                    let key = keys::outbox(tag);
                    let mut xlen = redis::cmd("XLEN");
                    xlen.arg(&key);
                    // Not armed: the connection is lost, which takes the bells down (readers
                    // poll) until the next one is up.
                    let _ = tracked
                        .on_server_of(&key, |mut conn| async move {
                            xlen.query_async::<u64>(&mut conn).await
                        })
                        .await;
                }
            })
        }));
        let (tracked, bells) = (tracked.clone(), self.bells.clone());
        // A Sentinel set's new master: the connection moves at once (at its next use).
        let mut switches = self.switches.subscribe();
        runtime.spawn(async move {
            let mut following = true;
            let mut wait = RETRY_FIRST;
            loop {
                // A connection that is there answers; a new one is made (and says so, which
                // sets the bells live and rings them); a lost one is dropped (and says so).
                let ping = tracked
                    .on_server_of("", |mut conn| async move {
                        redis::cmd("PING").query_async::<()>(&mut conn).await
                    })
                    .await;
                let next = match ping {
                    Ok(()) => {
                        bells.set_live(true);
                        wait = RETRY_FIRST;
                        PING_EVERY
                    }
                    Err(_) => {
                        wait = (wait * 2).min(PING_EVERY);
                        wait
                    }
                };
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(next) => {}
                    // Lost meanwhile: connect again now.
                    () = lost.notified(), if next == PING_EVERY => {}
                    changed = switches.changed(), if following => {
                        // No more announcements (the store is going): the pings go on.
                        following = changed.is_ok();
                    }
                }
            }
        });
    }

    /// Whether an append to the outbox of shard `tag` is to be published: always where the
    /// bells are the subscriber's, and where they follow the tracked connection only while an
    /// instance of before listens on the channel.
    pub(super) fn publishes(&self, tag: &str) -> bool {
        if self.bells_tracked().is_none() {
            return true;
        }
        self.listened.asking.get_or_init(|| {
            let stop = CancellationToken::new();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(ask_channels(
                    self.conn(),
                    Arc::downgrade(&self.listened),
                    stop.clone(),
                ));
            }
            stop.drop_guard()
        });
        self.listened.heard(tag)
    }

    /// This process appended to the outboxes of `apps`: where the bells follow the tracked
    /// connection, its own readers are rung here (its own writes draw no push).
    pub(super) fn rang<'a>(&self, apps: impl IntoIterator<Item = &'a AppId>) {
        if self.bells_tracked().is_some() {
            for app in apps {
                self.bells.ring(app);
            }
        }
    }
}

/// Asks every [`CHANNELS_EVERY`] which outbox channels have a subscriber, until `stop` (the
/// store, which holds `listened`, is gone).
async fn ask_channels(conn: failover::Conn, listened: Weak<Listened>, stop: CancellationToken) {
    let pattern = keys::appended("*");
    loop {
        let mut c = conn.clone();
        let asked: redis::RedisResult<Vec<String>> = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .arg(&pattern)
            .query_async(&mut c)
            .await;
        let Some(listened) = listened.upgrade() else {
            return;
        };
        // Unknown: publish.
        listened.set(asked.ok().map(|channels| {
            channels
                .iter()
                .filter_map(|c| keys::appended_tag(c))
                .map(str::to_owned)
                .collect()
        }));
        drop(listened);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(CHANNELS_EVERY) => {}
        }
    }
}
