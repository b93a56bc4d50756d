//! The bells on a Redis Cluster, by sharded Pub/Sub: writes `SPUBLISH` on the channel of the
//! shard they appended to, which lives in the outbox's slot (`sy:{tag}:outbox:appended`), so
//! the message stays on that slot's master (and its replicas). A plain `PUBLISH` goes to every
//! node of a cluster over its bus: each master would spend CPU on every other master's writes,
//! and the cluster would not grow with its masters (`benches/cluster_store.rs`).
//!
//! Sharded Pub/Sub has no patterns, so the subscriber names each channel: every shard of every
//! app that has a bell ([`Bells::apps`]), each on the master of its slot (`CLUSTER SLOTS`),
//! over one RESP3 connection per master whose pushes all reach one queue. An app that gets a
//! bell later is subscribed then (and its bell rung once: a ring before that was not heard);
//! an app whose last reader goes is unsubscribed. The session ends, and the caller starts
//! another from a new slot map, when a master's connection is lost or does not answer a
//! `PING`, or when a master unsubscribes us from a channel we did not leave: Redis does that
//! when a channel's slot moves to another master (a reshard, a failover).

use std::collections::HashSet;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{TIMEOUT, channels, live, unheard, within};
use crate::conference::AppId;
use crate::store::bell::Bells;
use crate::store::keys;
use crate::store::redis::shards::Shards;
use crate::store::redis::slot_map::{Range, first_map, no_master, seeds};
use crate::store::redis::slot_of_key;

/// One master's subscribing connection.
struct Master {
    info: ConnectionInfo,
    conn: MultiplexedConnection,
}

/// One subscription session over the cluster whose nodes (some of them) are `nodes`, for apps
/// over `shards` shards. As [`super::subscribed`]: `Ok` when an established session ends, `Err`
/// when it could not be established.
pub(super) async fn subscribed(
    nodes: &[String],
    shards: &Shards,
    bells: &Bells,
    stop: &CancellationToken,
) -> redis::RedisResult<()> {
    let map = first_map(&seeds(nodes)?).await?;
    let (pushed, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
    let mut masters: Vec<Master> = Vec::new();
    for (_, _, info) in &map {
        if masters.iter().any(|m| m.info.addr == info.addr) {
            continue;
        }
        let conn = within(connect(info.clone(), pushed.clone())).await?;
        masters.push(Master {
            info: info.clone(),
            conn,
        });
    }
    let mut readers = bells.readers();
    readers.borrow_and_update();
    let mut heard: HashSet<String> = HashSet::new();
    // Channels we unsubscribed from whose `sunsubscribe` has not come back yet.
    let mut leaving: HashSet<String> = HashSet::new();
    let wanted = channels(shards, &bells.apps());
    follow(&map, &mut masters, &wanted, &mut heard, &mut leaving).await?;
    let mut ping = live(bells).await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            push = pushes.recv() => {
                let Some(push) = push else { return Ok(()) };
                match push.kind {
                    PushKind::SMessage => {
                        if let Some(app) = channel_app(&push) {
                            bells.ring(&app);
                        }
                    }
                    // Our own unsubscription's reply.
                    PushKind::SUnsubscribe if push_channel(&push).is_some_and(|c| leaving.remove(c)) => {}
                    // The channel's slot left that master, or the connection did.
                    PushKind::SUnsubscribe | PushKind::Disconnection => return Ok(()),
                    _ => {}
                }
            }
            changed = readers.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let apps = bells.apps();
                let new = unheard(shards, &apps, &heard);
                let wanted = channels(shards, &apps);
                if follow(&map, &mut masters, &wanted, &mut heard, &mut leaving).await.is_err() {
                    return Ok(());
                }
                for app in &new {
                    bells.ring(app);
                }
            }
            _ = ping.tick() => {
                for master in &mut masters {
                    if within(master.conn.send_packed_command(&redis::cmd("PING"))).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// A RESP3 connection to a master whose pushes go to `pushed`.
async fn connect(
    mut info: ConnectionInfo,
    pushed: mpsc::UnboundedSender<PushInfo>,
) -> redis::RedisResult<MultiplexedConnection> {
    info.redis.protocol = ProtocolVersion::RESP3;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(TIMEOUT)
        .set_response_timeout(TIMEOUT)
        .set_push_sender(pushed);
    redis::Client::open(info)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Makes the subscription `wanted` (`heard` holds what it was), each channel on its slot's
/// master and one per command (each has one reply): subscribes to the new channels and
/// unsubscribes from those of apps whose last reader went, noting them in `leaving`.
async fn follow(
    map: &[Range<ConnectionInfo>],
    masters: &mut [Master],
    wanted: &HashSet<String>,
    heard: &mut HashSet<String>,
    leaving: &mut HashSet<String>,
) -> redis::RedisResult<()> {
    for channel in wanted.difference(heard).cloned().collect::<Vec<_>>() {
        let master = master_of(map, masters, &channel)?;
        within(
            master
                .conn
                .send_packed_command(redis::cmd("SSUBSCRIBE").arg(&channel)),
        )
        .await?;
        heard.insert(channel);
    }
    for channel in heard.difference(wanted).cloned().collect::<Vec<_>>() {
        let master = master_of(map, masters, &channel)?;
        heard.remove(&channel);
        leaving.insert(channel.clone());
        within(
            master
                .conn
                .send_packed_command(redis::cmd("SUNSUBSCRIBE").arg(&channel)),
        )
        .await?;
    }
    Ok(())
}

/// The subscribing connection to the master of the channel's slot.
fn master_of<'m>(
    map: &[Range<ConnectionInfo>],
    masters: &'m mut [Master],
    channel: &str,
) -> redis::RedisResult<&'m mut Master> {
    let slot = slot_of_key(channel);
    map.iter()
        .find(|(first, last, _)| (*first..=*last).contains(&slot))
        .and_then(|(_, _, info)| masters.iter_mut().find(|m| m.info.addr == info.addr))
        .ok_or_else(|| no_master(format!("no master serves slot {slot}")))
}

/// The channel a push names (its first item).
fn push_channel(push: &PushInfo) -> Option<&str> {
    match push.data.first()? {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The app whose channel a `smessage` push came on.
fn channel_app(push: &PushInfo) -> Option<AppId> {
    keys::appended_app(push_channel(push)?).and_then(|a| AppId::parse(a).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_smessage_names_the_app_of_any_shard() {
        let push = |channel: &str| PushInfo {
            kind: PushKind::SMessage,
            data: vec![
                Value::BulkString(channel.as_bytes().to_vec()),
                Value::BulkString(Vec::new()),
            ],
        };
        let app = AppId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
        let shards = Shards::new(3);
        for tag in shards.tags(&app).iter() {
            assert_eq!(channel_app(&push(&keys::appended(tag))), Some(app.clone()));
        }
        assert_eq!(channel_app(&push("sy:{acme}:outbox")), None);
    }
}
