//! Issue 59: an instance whose store answers slowly (a saturated process sees its round trips
//! that way) must still renew its node leases within their time to live. One `serve` applies
//! four simulated nodes and reaches Redis through a proxy; once it holds every lease, each
//! Redis reply is passed on 350 ms late. The renewal asks the heartbeat, then the four leases:
//! asked one after another (1.75 s a round, past the 1.5 s lease) each lease lapsed in Redis and
//! was taken again, a new generation each time, and the node's events went unapplied
//! meanwhile; asked at once (700 ms a round) none lapses. It takes no traffic lock: the margin
//! (650 ms) is for a busy machine.
//!
//! And an instance whose runtime is saturated (every worker kept by the flood of events it
//! applies) must renew its leases all the same: the fleet's renewals run on a thread of their
//! own. When they ran on the busy runtime, a worker kept two seconds let the lease lapse, and
//! the node's events waited for the next renewal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use super::nodes::{Instance, LEASE_MS, LogsOnFailure, PREFIXES, shared, simulators};
use crate::common::proxy::Proxy;
use crate::common::redis_server::RedisServer;
use crate::webhook_support::Receiver;

/// Each node lease's generation (one more each time a lease is taken, not renewed).
async fn generations(url: &str) -> BTreeMap<&'static str, u64> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut out = BTreeMap::new();
    for node in PREFIXES {
        let generation: Option<u64> = redis::cmd("GET")
            .arg(format!("{{sy:fleet:node:{node}}}:gen"))
            .query_async(&mut conn)
            .await
            .unwrap();
        out.insert(node, generation.unwrap_or(0));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_store_answers_slowly_keeps_its_node_leases() {
    let redis = RedisServer::start();
    let sims = simulators().await;
    let dir = std::env::temp_dir().join(format!("switchyard-slow-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _logs = LogsOnFailure(dir.clone());
    let receiver = Receiver::ok().await;
    let proxy = Proxy::start(format!("127.0.0.1:{}", redis.port)).await;
    let through = format!("redis://{}/", proxy.addr);
    let a = Instance::start_through(0, &dir, &through, &sims, &receiver.url(), "", None, "").await;
    let settle = Duration::from_millis(LEASE_MS * 4);
    shared(&[&a], settle, "one instance applies every node").await;
    let before = generations(&redis.url()).await;
    assert!(before.values().all(|g| *g > 0), "{before:?}");

    proxy.delay_replies(Duration::from_millis(350));
    // The delay is in force (else the leases would keep for nothing): a PING through the proxy.
    let slow = redis::Client::open(through.as_str()).unwrap();
    let mut slow = slow.get_multiplexed_async_connection().await.unwrap();
    let asked = std::time::Instant::now();
    let _: String = redis::cmd("PING").query_async(&mut slow).await.unwrap();
    assert!(
        asked.elapsed() >= Duration::from_millis(350),
        "the proxy answered in {:?}",
        asked.elapsed()
    );
    // Nothing to wait for: the leases must not lapse over several of their lifetimes.
    tokio::time::sleep(Duration::from_millis(LEASE_MS * 3)).await;
    let after = generations(&redis.url()).await;
    proxy.delay_replies(Duration::ZERO);
    assert_eq!(
        after, before,
        "node leases lapsed and were taken again while the store answered 350 ms late"
    );
    let applies = a.applies().await.expect("ready");
    assert_eq!(applies.len(), PREFIXES.len(), "{applies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_runtime_is_saturated_keeps_its_node_leases() {
    use std::sync::Arc;
    use switchyard::conference::NodePrefix;
    use switchyard::node::fleet::{FleetConfig, Seat};

    let redis = RedisServer::start();
    let store = Arc::new(
        switchyard::store::redis::RedisStore::connect(&redis.url())
            .await
            .unwrap(),
    );
    let ttl = Duration::from_millis(600);
    let (seat, handover) = Seat::pair(NodePrefix::parse("satur").unwrap());
    handover.ready.send_replace(true);
    let (_changes, changed) = tokio::sync::mpsc::unbounded_channel();
    let stop = tokio_util::sync::CancellationToken::new();
    switchyard::node::fleet::start(
        store,
        FleetConfig::new(ttl),
        vec![seat],
        changed,
        stop.clone(),
    );
    let mut owns = handover.owns.clone();
    tokio::time::timeout(Duration::from_secs(5), owns.wait_for(|o| *o))
        .await
        .expect("the lone instance takes the node's lease")
        .unwrap();
    let generation = handover.acting().expect("a fresh grant");

    // Both workers kept for more than three times the lease's life, as a flood of events keeps
    // them; each asks, as it is let go, whether the node may still be acted on.
    let handover = Arc::new(handover);
    let kept: Vec<_> = (0..2)
        .map(|_| {
            let handover = handover.clone();
            tokio::spawn(async move {
                std::thread::sleep(ttl * 3 + ttl / 2);
                handover.acting()
            })
        })
        .collect();
    for worker in kept {
        assert_eq!(
            worker.await.unwrap(),
            Some(generation),
            "the node's lease lapsed (or was taken again) while the runtime was saturated"
        );
    }
    stop.cancel();
}
