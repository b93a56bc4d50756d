//! Wake-ups for the readers of an application's outbox (the webhook dispatcher, the event
//! stream): a store rings an app's bell when it appends to that app's outbox, and a reader that
//! has caught up waits for the bell instead of polling.
//!
//! The memory store rings in-process. With the room cache, on one Redis (or a Sentinel set),
//! Redis tells each process that read an app's outbox that it changed (client-side tracking),
//! which rings the app's bell there (`store/redis/outbox_bells.rs`). On a Redis Cluster, or
//! without the cache, the writes publish on the channel of the app's shard they appended to
//! (`sy:{shard}:outbox:appended`, with the append), and one subscriber per process
//! ([`super::redis`]) rings the bells. Either way a reader wakes when any controller instance
//! appends.
//!
//! A bell can miss nothing while it is *live*: a reader marks what it has seen before it reads
//! ([`OutboxWatch::seen`]), so a ring between its read and its wait still wakes it. A watcher
//! that does not read the outbox arms its watch after marking instead ([`OutboxWatch::arm`]):
//! where Redis tells a process of changes to what it read, the read is what has it told. While the
//! subscriber is down (Redis restarting) the bell is not live, and readers fall back to polling;
//! when it is back every bell rings once, for what was appended in between.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::watch;

use crate::conference::AppId;

/// The bells of every app of one store.
#[derive(Clone)]
pub struct Bells {
    inner: Arc<Inner>,
}

struct Inner {
    apps: Mutex<HashMap<AppId, watch::Sender<u64>>>,
    /// Whether rings reach this process (always, for the memory store).
    live: watch::Sender<bool>,
    /// Counts the changes of the apps with bells (an app's first reader came, or its last one
    /// went): the subscriber, which names each app's channels, follows them.
    readers: watch::Sender<u64>,
    /// How a watch is armed ([`OutboxWatch::arm`]); unset: it needs no arming.
    arm: std::sync::OnceLock<Arm>,
}

/// Has the store tell this process of the app's next append (see [`OutboxWatch::arm`]).
pub type Arm = Arc<
    dyn Fn(AppId) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync,
>;

/// In-process bells, live from the start (the memory store's).
impl Default for Bells {
    fn default() -> Bells {
        Bells::new(true)
    }
}

impl Bells {
    /// Bells that are live from the start (`true`: rung in-process) or once a subscriber says so.
    pub fn new(live: bool) -> Bells {
        Bells {
            inner: Arc::new(Inner {
                apps: Mutex::new(HashMap::new()),
                live: watch::Sender::new(live),
                readers: watch::Sender::new(0),
                arm: std::sync::OnceLock::new(),
            }),
        }
    }

    /// How the watches given from now on are armed ([`OutboxWatch::arm`]): set once, the
    /// first (a later one changes nothing).
    pub fn set_arm(&self, arm: Arm) {
        let _ = self.inner.arm.set(arm);
    }

    fn bells(&self) -> MutexGuard<'_, HashMap<AppId, watch::Sender<u64>>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.inner.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A reader's view of the app's bell.
    pub fn watch(&self, app: &AppId) -> OutboxWatch {
        let mut apps = self.bells();
        let rings = match apps.get(app) {
            Some(bell) => bell.subscribe(),
            None => {
                let bell = watch::Sender::new(0);
                let rings = bell.subscribe();
                apps.insert(app.clone(), bell);
                self.inner.readers.send_modify(|n| *n = n.wrapping_add(1));
                rings
            }
        };
        OutboxWatch {
            rings,
            live: self.inner.live.subscribe(),
            bells: Arc::downgrade(&self.inner),
            app: app.clone(),
            arm: self.inner.arm.get().cloned(),
        }
    }

    /// The app's outbox grew.
    pub fn ring(&self, app: &AppId) {
        if let Some(bell) = self.bells().get(app) {
            bell.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// The apps that have a bell now (a reader).
    pub fn apps(&self) -> Vec<AppId> {
        self.bells().keys().cloned().collect()
    }

    /// Changes whenever [`Bells::apps`] does: an app gets its first reader or loses its last.
    pub fn readers(&self) -> watch::Receiver<u64> {
        self.inner.readers.subscribe()
    }

    /// Every app's outbox may have grown (rings were missed while the bell was not live).
    pub fn ring_all(&self) {
        for bell in self.bells().values() {
            bell.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Rings reach this process (`true`), or may be missed and readers must poll.
    pub fn set_live(&self, live: bool) {
        self.inner
            .live
            .send_if_modified(|l| std::mem::replace(l, live) != live);
    }
}

/// Why [`OutboxWatch::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The outbox grew (or may have: the bell came back after being down).
    Rung,
    /// The wait ran out.
    Timeout,
}

/// How long a caught-up reader waits before it reads anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waits {
    /// While the bell is not live: the poll interval.
    pub poll: Duration,
    /// While the bell is live: a safety net only (a lost ring costs at most this long).
    pub idle: Duration,
}

impl Default for Waits {
    fn default() -> Waits {
        Waits {
            poll: Duration::from_millis(250),
            idle: Duration::from_secs(30),
        }
    }
}

/// One reader's view of an app's bell.
pub struct OutboxWatch {
    rings: watch::Receiver<u64>,
    live: watch::Receiver<bool>,
    /// To take the app's bell down with its last reader.
    bells: Weak<Inner>,
    app: AppId,
    arm: Option<Arm>,
}

/// The last reader of an app takes its bell with it, so the subscriber stops listening for it.
impl Drop for OutboxWatch {
    fn drop(&mut self) {
        // This reader's receiver goes first, so the count below no longer holds it.
        drop(std::mem::replace(&mut self.rings, watch::channel(0).1));
        let Some(inner) = self.bells.upgrade() else {
            return;
        };
        let mut apps = inner.apps.lock().unwrap_or_else(|p| p.into_inner());
        let before = apps.len();
        apps.retain(|_, bell| bell.receiver_count() > 0);
        if apps.len() != before {
            inner.readers.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

impl OutboxWatch {
    /// Resolves once rings reach this reader (at once for the memory store; for Redis once the
    /// subscription is up), or never if its store is gone.
    pub async fn live(&mut self) {
        if self.live.wait_for(|live| *live).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Marks every ring so far as seen: call it just before reading the outbox, so a ring that
    /// comes after the read wakes the next [`OutboxWatch::wait`].
    pub fn seen(&mut self) {
        self.rings.borrow_and_update();
    }

    /// For a watcher that does not read the outbox after [`OutboxWatch::seen`]: makes sure the
    /// next append rings. A store whose rings follow the reads themselves (Redis with the room
    /// cache: it tells a process of a change to what that process read) reads a little here
    /// (the outbox's length); for the others it does nothing.
    pub async fn arm(&self) {
        if let Some(arm) = &self.arm {
            arm(self.app.clone()).await;
        }
    }

    /// Waits for a ring after the last [`OutboxWatch::seen`], until `waits.idle` after `since`
    /// while the bell is live and `waits.poll` after it while it is not (a bell that goes down
    /// mid-wait shortens the wait to the poll interval). `since`: when the reader caught up, so
    /// a wait that is interrupted and started again keeps its deadline.
    pub async fn wait(&mut self, since: tokio::time::Instant, waits: Waits) -> Woken {
        let start = since;
        loop {
            let live = *self.live.borrow_and_update();
            let limit = if live { waits.idle } else { waits.poll };
            let until = start + limit;
            tokio::select! {
                changed = self.rings.changed() => {
                    return match changed {
                        Ok(()) => Woken::Rung,
                        // The store is gone: nothing will ring; poll.
                        Err(_) => {
                            tokio::time::sleep_until(until).await;
                            Woken::Timeout
                        }
                    };
                }
                () = tokio::time::sleep_until(until) => return Woken::Timeout,
                changed = self.live.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep_until(until).await;
                        return Woken::Timeout;
                    }
                    // Live or not, the wait starts over with the new limit from `start`.
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> AppId {
        AppId::parse(name).unwrap_or_else(|e| panic!("{e}"))
    }

    const WAITS: Waits = Waits {
        poll: Duration::from_millis(250),
        idle: Duration::from_secs(30),
    };

    #[test]
    fn an_app_has_a_bell_while_it_has_a_reader() {
        let bells = Bells::new(true);
        let mut readers = bells.readers();
        let first = bells.watch(&app("app-a"));
        let second = bells.watch(&app("app-a"));
        assert_eq!(bells.apps(), vec![app("app-a")]);
        assert!(
            readers.has_changed().unwrap_or(false),
            "a first reader is a change"
        );
        readers.borrow_and_update();
        drop(first);
        assert_eq!(bells.apps(), vec![app("app-a")]);
        assert!(
            !readers.has_changed().unwrap_or(true),
            "another reader is left"
        );
        drop(second);
        assert!(bells.apps().is_empty(), "the last reader took the bell");
        assert!(
            readers.has_changed().unwrap_or(false),
            "the last reader going is a change"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_ring_after_seen_wakes_the_wait_at_once() {
        let bells = Bells::new(true);
        let mut w = bells.watch(&app("app-a"));
        w.seen();
        bells.ring(&app("app-a"));
        let start = tokio::time::Instant::now();
        assert_eq!(
            w.wait(tokio::time::Instant::now(), WAITS).await,
            Woken::Rung
        );
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn another_apps_ring_does_not_wake_and_a_live_bell_waits_the_idle_time() {
        let bells = Bells::new(true);
        let mut w = bells.watch(&app("app-a"));
        let _other = bells.watch(&app("app-b"));
        w.seen();
        bells.ring(&app("app-b"));
        let start = tokio::time::Instant::now();
        assert_eq!(
            w.wait(tokio::time::Instant::now(), WAITS).await,
            Woken::Timeout
        );
        assert_eq!(start.elapsed(), WAITS.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bell_that_is_not_live_polls_and_one_that_goes_down_mid_wait_shortens_the_wait() {
        let bells = Bells::new(false);
        let mut w = bells.watch(&app("app-a"));
        w.seen();
        let start = tokio::time::Instant::now();
        assert_eq!(
            w.wait(tokio::time::Instant::now(), WAITS).await,
            Woken::Timeout
        );
        assert_eq!(start.elapsed(), WAITS.poll);

        bells.set_live(true);
        let waiting = tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let woken = w.wait(tokio::time::Instant::now(), WAITS).await;
            (woken, start.elapsed())
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        bells.set_live(false);
        let (woken, took) = waiting.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(woken, Woken::Timeout);
        assert_eq!(
            took,
            Duration::from_secs(1),
            "already past the poll interval"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ring_all_wakes_every_reader() {
        let bells = Bells::new(true);
        let mut a = bells.watch(&app("app-a"));
        let mut b = bells.watch(&app("app-b"));
        a.seen();
        b.seen();
        bells.ring_all();
        assert_eq!(
            a.wait(tokio::time::Instant::now(), WAITS).await,
            Woken::Rung
        );
        assert_eq!(
            b.wait(tokio::time::Instant::now(), WAITS).await,
            Woken::Rung
        );
    }
}
