//! The Redis store's bells: every write that appends to an app's outbox publishes on the
//! channel of the app's shard it appended to ([`keys::appended`]) in the same script, and one
//! subscriber per process (its own connection, never the shared one) rings the app's bell, so
//! a waiting dispatcher or event stream wakes whichever controller instance appended.
//!
//! The subscriber names the channels of the apps this process has readers for ([`Bells::apps`]:
//! the apps whose webhook lease it holds, the apps with an open event stream here), not a
//! pattern over every app: in a fleet an instance hears only its own apps' appends, so the
//! work of hearing them is shared out with the apps instead of repeated by every instance. An
//! app that gets a reader later is subscribed then (and its bell rung once: a ring before
//! that was not heard); an app's channels are dropped when its last reader goes.
//!
//! On a Redis Cluster the writes `SPUBLISH` instead, and [`sharded`] subscribes to each app's
//! shard channels on their masters.
//!
//! Pub/Sub is fire-and-forget: a message published while the subscriber is disconnected is
//! lost. So the bells are live only while the subscription is (checked with a `PING` every
//! few seconds, since a silently dead TCP connection would otherwise look idle); meanwhile
//! readers poll, and when the subscription is back every bell rings once.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::conference::AppId;
use crate::store::bell::Bells;
use crate::store::keys;
use crate::store::redis::failover::Target;
use crate::store::redis::shards::Shards;

mod sharded;

/// How long connecting, subscribing and a `PING` may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How often the subscription is checked while nothing is published.
const PING_EVERY: Duration = Duration::from_secs(5);

/// Rings `bells` for what is published, until `stop`.
pub(super) async fn listen(
    target: std::sync::Arc<Target>,
    mut switches: tokio::sync::watch::Receiver<u64>,
    shards: usize,
    bells: Bells,
    stop: CancellationToken,
) {
    let shards = Shards::new(shards);
    let mut wait = Duration::from_millis(100);
    let mut outage_logged = false;
    loop {
        match tokio::select! {
            () = stop.cancelled() => return,
            session = async {
                match &*target {
                    Target::Cluster(nodes) => sharded::subscribed(nodes, &shards, &bells, &stop).await,
                    _ => subscribed(&target, &mut switches, &shards, &bells, &stop).await,
                }
            } => session,
        } {
            Ok(()) => {
                wait = Duration::from_millis(100);
                outage_logged = false;
                if stop.is_cancelled() {
                    return;
                }
                tracing::warn!("outbox notifications lost; readers poll until they are back");
            }
            Err(e) => {
                if !outage_logged {
                    tracing::warn!(error = %e, "cannot subscribe to outbox notifications; readers poll meanwhile");
                    outage_logged = true;
                }
            }
        }
        bells.set_live(false);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// One subscription: connects, subscribes to the channels of the apps with readers, rings
/// every bell (what was appended while the bells were not live), then rings each app's bell
/// for its messages. Returns `Ok` when an established subscription ends, `Err` when it could
/// not be established.
async fn subscribed(
    target: &Target,
    switches: &mut tokio::sync::watch::Receiver<u64>,
    shards: &Shards,
    bells: &Bells,
    stop: &CancellationToken,
) -> redis::RedisResult<()> {
    // The master now (a Sentinel set may have failed over since the last session); a switch
    // the sentinels announce later ends the session, to subscribe again on the new master.
    switches.borrow_and_update();
    let client = within(target.master()).await?;
    let pubsub = within(client.get_async_pubsub()).await?;
    let (mut sink, mut messages) = pubsub.split();
    let mut readers = bells.readers();
    readers.borrow_and_update();
    let mut heard: HashSet<String> = HashSet::new();
    follow(&mut sink, &channels(shards, &bells.apps()), &mut heard).await?;
    let mut ping = live(bells).await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            message = messages.next() => match message {
                Some(m) => {
                    if let Some(app) = keys::appended_app(m.get_channel_name()).and_then(|a| AppId::parse(a).ok()) {
                        bells.ring(&app);
                    }
                }
                None => return Ok(()),
            },
            changed = readers.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let apps = bells.apps();
                let new = unheard(shards, &apps, &heard);
                if follow(&mut sink, &channels(shards, &apps), &mut heard).await.is_err() {
                    return Ok(());
                }
                for app in &new {
                    bells.ring(app);
                }
            }
            _ = switches.changed() => return Ok(()),
            _ = ping.tick() => {
                if within(sink.ping::<redis::Value>()).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// Makes the subscription `wanted` (`heard` holds what it was): subscribes to the new
/// channels and unsubscribes from those of apps whose last reader went.
async fn follow(
    sink: &mut redis::aio::PubSubSink,
    wanted: &HashSet<String>,
    heard: &mut HashSet<String>,
) -> redis::RedisResult<()> {
    // One channel per command: the sink pairs each reply with one command, and Redis answers
    // a command naming several channels once per channel.
    for channel in wanted.difference(heard) {
        within(sink.subscribe(channel)).await?;
    }
    for channel in heard.difference(wanted) {
        within(sink.unsubscribe(channel)).await?;
    }
    heard.clone_from(wanted);
    Ok(())
}

/// The channels of `apps`' shards.
fn channels(shards: &Shards, apps: &[AppId]) -> HashSet<String> {
    apps.iter()
        .flat_map(|app| {
            shards
                .tags(app)
                .iter()
                .map(|tag| keys::appended(tag))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The apps among `apps` with a channel not in `heard` (whose readers came since).
fn unheard(shards: &Shards, apps: &[AppId], heard: &HashSet<String>) -> Vec<AppId> {
    apps.iter()
        .filter(|app| {
            shards
                .tags(app)
                .iter()
                .any(|tag| !heard.contains(&keys::appended(tag)))
        })
        .cloned()
        .collect()
}

/// The subscription is up: the bells are live, and ring once for what was appended while they
/// were not. Returns the interval of the `PING`s that check the subscription (its first tick
/// taken).
async fn live(bells: &Bells) -> tokio::time::Interval {
    bells.set_live(true);
    bells.ring_all();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    ping
}

async fn within<T>(
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "Redis did not answer in time",
        ))),
    }
}
