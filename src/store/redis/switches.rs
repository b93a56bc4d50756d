//! Redis Sentinel's announcements of a new master (`+switch-master` on every sentinel's Pub/Sub),
//! followed at once. Without them the store would move only when a command fails: after a
//! failover asked of the sentinels (`SENTINEL FAILOVER`, a planned switch) the old master stays
//! up and takes writes until the sentinels turn it into a replica, seconds later, and those
//! writes are lost when it turns. On each announcement for our master the shared connection
//! moves ([`Conn::follow_now`]) and the count of switches grows, which the room cache's tracked
//! connection reads before each use (it moves too, and forgets what it kept) and the outbox
//! notifications' subscriber waits on (it subscribes again, on the new master).
//!
//! One subscriber per sentinel (each announces its own switch; any may be down), each
//! connecting again after a second when its connection ends; a reconnection counts as a switch
//! (one may have been missed meanwhile).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::failover::{Conn, Target};

/// Counts the sentinels' announcements: the room cache's tracked connection compares it with
/// what it last saw, and the outbox notifications' subscriber waits for it to change (it moves
/// to the new master too).
pub(crate) type Switches = tokio::sync::watch::Sender<u64>;

/// How long connecting and subscribing may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Starts following the sentinels' announcements (nothing unless `target` is a Sentinel set):
/// `switches` counts them. Stops with `stop`.
pub(super) fn follow(
    target: &Target,
    conn: &Conn,
    switches: &Arc<Switches>,
    stop: &CancellationToken,
) {
    let Target::Sentinel {
        sentinels, master, ..
    } = target
    else {
        return;
    };
    for sentinel in sentinels {
        let (sentinel, master) = (sentinel.clone(), master.clone());
        let (conn, switches, stop) = (conn.clone(), switches.clone(), stop.clone());
        tokio::spawn(async move {
            let mut first = true;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = listen(&sentinel, &master, &conn, &switches, first) => {}
                }
                first = false;
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }
}

/// One subscription to `sentinel`, until it ends.
async fn listen(sentinel: &str, master: &str, conn: &Conn, switches: &Switches, first: bool) {
    let subscribed = async {
        let mut pubsub = redis::Client::open(sentinel)?.get_async_pubsub().await?;
        pubsub.subscribe("+switch-master").await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    let mut pubsub = match tokio::time::timeout(TIMEOUT, subscribed).await {
        Ok(Ok(pubsub)) => pubsub,
        _ => return,
    };
    if !first {
        switched(conn, switches).await;
    }
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        // `<master name> <old ip> <old port> <new ip> <new port>`
        let payload: String = message.get_payload().unwrap_or_default();
        if payload.split(' ').next() == Some(master) {
            tracing::warn!(%payload, "Redis Sentinel announced a new master");
            switched(conn, switches).await;
        }
    }
}

async fn switched(conn: &Conn, switches: &Switches) {
    // A move counts itself (before the first command goes to the new master).
    if !conn.follow_now().await {
        switches.send_modify(|n| *n = n.wrapping_add(1));
    }
}
