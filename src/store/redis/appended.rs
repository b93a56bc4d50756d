//! The Redis store's bells: every write that appends to an app's outbox publishes on the app's
//! channel ([`keys::appended`]) in the same script, and one subscriber per process
//! (`PSUBSCRIBE` on [`keys::APPENDED_PATTERN`], its own connection, never the shared one) rings
//! the app's bell, so a waiting dispatcher or event stream wakes whichever controller instance
//! appended.
//!
//! On a Redis Cluster the writes `SPUBLISH` instead, and [`sharded`] subscribes to each app's
//! shard channels on their masters.
//!
//! Pub/Sub is fire-and-forget: a message published while the subscriber is disconnected is
//! lost. So the bells are live only while the subscription is (checked with a `PING` every
//! few seconds, since a silently dead TCP connection would otherwise look idle); meanwhile
//! readers poll, and when the subscription is back every bell rings once.

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
                    _ => subscribed(&target, &mut switches, &bells, &stop).await,
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

/// One subscription: connects, subscribes, rings every bell (what was appended while the
/// bells were not live), then rings each app's bell for its messages. Returns `Ok` when an
/// established subscription ends, `Err` when it could not be established.
async fn subscribed(
    target: &Target,
    switches: &mut tokio::sync::watch::Receiver<u64>,
    bells: &Bells,
    stop: &CancellationToken,
) -> redis::RedisResult<()> {
    // The master now (a Sentinel set may have failed over since the last session); a switch
    // the sentinels announce later ends the session, to subscribe again on the new master.
    switches.borrow_and_update();
    let client = within(target.master()).await?;
    let mut pubsub = within(client.get_async_pubsub()).await?;
    within(pubsub.psubscribe(keys::APPENDED_PATTERN)).await?;
    let (mut sink, mut messages) = pubsub.split();
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
            _ = switches.changed() => return Ok(()),
            _ = ping.tick() => {
                if within(sink.ping::<redis::Value>()).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
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
