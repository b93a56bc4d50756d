//! The outbox's bells on a Redis Cluster (sharded Pub/Sub): an append wakes the readers of
//! every controller without the other masters hearing of it, and readers go on waking after
//! their outbox's slot moves to another master and after a master fails over.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::webhook_support;

use std::time::Duration;

use serde_json::json;
use tokio::time::{Instant, timeout};

use common::redis_cluster::RedisCluster;
use switchyard::conference::{AppId, EventKind};
use switchyard::store::bell::{OutboxWatch, Waits, Woken};
use switchyard::store::keys;
use switchyard::store::redis::RedisStore;
use switchyard::store::{Saved, Store};
use webhook_support::{TestRoom, app};

/// Fallback waits long enough that only a ring can end a wait within a test.
const HOUR: Waits = Waits {
    poll: Duration::from_secs(3600),
    idle: Duration::from_secs(3600),
};

async fn rung(w: &mut OutboxWatch, what: &str, within: Duration) {
    let woken = timeout(within, w.wait(Instant::now(), HOUR))
        .await
        .unwrap_or_else(|_| panic!("{what}: no wake-up within {within:?}"));
    assert_eq!(woken, Woken::Rung, "{what}");
}

/// Lets the rings already under way pass (a subscriber that starts again rings every bell
/// once), so that the next ring comes from what the test does next.
async fn quiet(w: &mut OutboxWatch) {
    let short = Waits {
        poll: Duration::from_millis(500),
        idle: Duration::from_millis(500),
    };
    loop {
        w.seen();
        w.arm().await;
        if w.wait(Instant::now(), short).await == Woken::Timeout {
            return;
        }
    }
}

/// A reader and a writer (two controller instances) over three shards, the reader's bell live.
async fn reader_and_writer(cluster: &RedisCluster) -> (RedisStore, RedisStore, OutboxWatch) {
    let store = || async {
        RedisStore::connect(&cluster.url())
            .await
            .unwrap()
            .with_shards(3)
    };
    let (reader, writer) = (store().await, store().await);
    let mut w = reader.outbox_watch(&app());
    timeout(Duration::from_secs(5), w.live())
        .await
        .expect("the bell is live");
    (reader, writer, w)
}

/// Node `i`'s count of one `CLUSTER INFO` field (absent: 0).
fn cluster_stat(cluster: &RedisCluster, i: usize, field: &str) -> u64 {
    cluster
        .cli(i, &["CLUSTER", "INFO"])
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(field)?
                .strip_prefix(':')?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The node serving the room's slot.
fn master_of_room(cluster: &RedisCluster, room: &TestRoom) -> (usize, String) {
    let key = cluster
        .find_key(&format!("sy:*:room:{}", room.id()))
        .expect("the room's key");
    (cluster.master_of(&key).expect("its master"), key)
}

/// After the room's master failed over: once the writer's writes reach the new master (they
/// fail meanwhile) and the reader's bell is live and quiet, an append there wakes the reader.
async fn wakes_on_the_new_master(
    writer: &RedisStore,
    room: &mut TestRoom,
    w: &mut OutboxWatch,
    deadline: Instant,
) {
    loop {
        let old = room.room.clone();
        room.room.seq += 1;
        let saved = writer.save_room(&old, &room.room, &[]).await;
        if matches!(saved, Ok(Saved::Saved)) {
            break;
        }
        room.room = old;
        assert!(Instant::now() < deadline, "writes never resumed: {saved:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    timeout(Duration::from_secs(10), w.live())
        .await
        .expect("the bell is live again");
    quiet(w).await;
    room.emit(writer, EventKind::MemberJoined, json!({})).await;
    rung(w, "an append on the new master", Duration::from_secs(5)).await;
}

#[tokio::test]
async fn on_a_cluster_appends_wake_readers_and_stay_on_their_masters() {
    let cluster = RedisCluster::start();
    let (_reader, writer, mut w) = reader_and_writer(&cluster).await;
    let heard = |field: &str| -> u64 {
        (0..cluster.nodes.len())
            .map(|i| cluster_stat(&cluster, i, field))
            .sum()
    };
    let before = heard("cluster_stats_messages_publish_received");
    // Rooms until every master holds one: each one's append wakes the reader.
    let mut masters = Vec::new();
    let mut n = 0;
    while masters.len() < cluster.nodes.len() {
        assert!(n < 64, "64 rooms and still a master without one");
        w.seen();
        w.arm().await;
        let room = TestRoom::create(&writer, &format!("spread-{n}")).await;
        rung(
            &mut w,
            &format!("room {n}'s creation"),
            Duration::from_secs(5),
        )
        .await;
        let (master, _) = master_of_room(&cluster, &room);
        if !masters.contains(&master) {
            masters.push(master);
        }
        n += 1;
    }
    // A plain PUBLISH would have gone to every node over the cluster bus: each master would
    // spend CPU on every other master's writes.
    assert_eq!(
        heard("cluster_stats_messages_publish_received"),
        before,
        "appends were published to the whole cluster"
    );
}

#[tokio::test]
async fn on_a_cluster_readers_wake_after_their_outbox_slot_moves() {
    let cluster = RedisCluster::start();
    let (_reader, writer, mut w) = reader_and_writer(&cluster).await;
    w.seen();
    w.arm().await;
    let mut room = TestRoom::create(&writer, "moving").await;
    rung(&mut w, "the creation", Duration::from_secs(5)).await;
    let (from, key) = master_of_room(&cluster, &room);

    w.seen();

    w.arm().await;
    cluster.move_slot_of(&key);
    assert_ne!(cluster.master_of(&key), Some(from), "the slot moved");
    // The old master unsubscribed the reader from the slot's channel: it subscribes again on
    // the new master, and rings once for what it may have missed meanwhile.
    rung(
        &mut w,
        "the subscription following the slot",
        Duration::from_secs(5),
    )
    .await;
    quiet(&mut w).await;
    room.emit(&writer, EventKind::MemberJoined, json!({})).await;
    rung(
        &mut w,
        "an append on the slot's new master",
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn on_a_cluster_readers_wake_after_a_master_failover() {
    let mut cluster = RedisCluster::with_replicas(1);
    let (_reader, writer, mut w) = reader_and_writer(&cluster).await;
    // A room on the first node the URL names (where the reader's subscription used to be).
    let mut n = 0;
    let (mut room, key) = loop {
        assert!(n < 64, "64 rooms and none on node 0");
        let room = TestRoom::create(&writer, &format!("failover-{n}")).await;
        let (master, key) = master_of_room(&cluster, &room);
        if master == 0 {
            break (room, key);
        }
        n += 1;
    };
    cluster.wait_replicated(0);
    cluster.nodes[0].kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.master_of(&key).is_none() {
        assert!(
            Instant::now() < deadline,
            "no replica took over:\n{}",
            cluster.describe(1)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wakes_on_the_new_master(&writer, &mut room, &mut w, deadline).await;
}

/// A planned failover (`CLUSTER FAILOVER` on a replica: it and its master swap roles, the old
/// master staying up as a replica): readers go on waking for appends on the new master.
#[tokio::test]
async fn on_a_cluster_readers_wake_after_a_planned_failover() {
    let cluster = RedisCluster::with_replicas(1);
    let (_reader, writer, mut w) = reader_and_writer(&cluster).await;
    w.seen();
    w.arm().await;
    let mut room = TestRoom::create(&writer, "switching").await;
    rung(&mut w, "the creation", Duration::from_secs(5)).await;
    let (old, key) = master_of_room(&cluster, &room);
    let old_id = cluster.cli(old, &["CLUSTER", "MYID"]).trim().to_owned();
    let replica = (0..cluster.nodes.len())
        .find(|&i| {
            cluster
                .cli(i, &["CLUSTER", "NODES"])
                .lines()
                .any(|l| l.contains("myself,slave") && l.contains(&old_id))
        })
        .expect("the room's master has a replica");
    cluster.wait_replicated(old);
    cluster
        .planned_failover(replica, &key, Duration::from_secs(45))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    wakes_on_the_new_master(&writer, &mut room, &mut w, deadline).await;
}

/// The apps of the shard channels the masters have subscribers for (`PUBSUB SHARDCHANNELS`,
/// one entry per channel), sorted.
fn subscribed_apps(cluster: &RedisCluster) -> Vec<String> {
    let mut apps: Vec<String> = (0..cluster.nodes.len())
        .flat_map(|i| {
            cluster
                .cli(i, &["PUBSUB", "SHARDCHANNELS", "sy:*"])
                .lines()
                .filter_map(|l| keys::appended_app(l.trim()).map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    apps.sort();
    apps
}

/// The connections subscribed to shard channels (`CLIENT LIST`'s `ssub`), as node and id.
fn shard_subscribers(cluster: &RedisCluster) -> Vec<(usize, String)> {
    (0..cluster.nodes.len())
        .flat_map(|i| {
            cluster
                .cli(i, &["CLIENT", "LIST"])
                .lines()
                .filter(|l| {
                    l.split(' ')
                        .any(|f| f.strip_prefix("ssub=").is_some_and(|n| n != "0"))
                })
                .filter_map(|l| l.split(' ').next().map(|id| (i, id.to_owned())))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn until_subscribed(cluster: &RedisCluster, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let apps = subscribed_apps(cluster);
        if apps == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the masters' shard channels are those of {apps:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn on_a_cluster_an_apps_channels_go_with_its_last_reader() {
    let cluster = RedisCluster::start();
    let (reader, writer, mut w) = reader_and_writer(&cluster).await;
    let hook = ["hook-app"; 3];
    until_subscribed(&cluster, &hook).await;
    let other = reader.outbox_watch(&AppId::parse("other-app").unwrap());
    let both = [hook.as_slice(), &["other-app"; 3]].concat();
    until_subscribed(&cluster, &both).await;
    let subscribers = shard_subscribers(&cluster);
    drop(other);
    until_subscribed(&cluster, &hook).await;
    // Our own unsubscription did not end the session (no new connections), and the first
    // app's reader still wakes.
    quiet(&mut w).await;
    assert_eq!(shard_subscribers(&cluster), subscribers);
    TestRoom::create(&writer, "after-leaving").await;
    rung(&mut w, "an append after leaving", Duration::from_secs(5)).await;
}
