//! A node that hangs with its connections open: a proxy in front of the simulator holds back
//! every byte the node sends (replies, events) while what the controller sends still reaches
//! it, as a stopped process's kernel takes the bytes and nothing answers; releasing them is the
//! node resuming. Both the instance applying the node's events and one on standby (command
//! connections only) find the hang within 3 s with their probe (`node/probe.rs`), refuse the
//! node's commands at once meanwhile, fail a command caught waiting as timed out once the hang
//! is found (not after the command timeout), and serve again as soon as the node answers,
//! without a connection made again. The real-process version is
//! `tests/live/hung_node.rs` (FreeSWITCH paused with SIGSTOP).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use switchyard::conference::{AppId, NodePrefix};
use switchyard::esl::ApiCommand;
use switchyard::node::{AppDirectory, NodeConfig, NodeError, NodeHandle, NodeState, supervisor};
use switchyard::sim::{SimConfig, Simulator};
use switchyard::store::memory::MemoryStore;
use tokio_util::sync::CancellationToken;

/// Waits until `check` holds of `node`, failing past `limit` from `since`.
async fn until(
    node: &NodeHandle,
    since: Instant,
    limit: Duration,
    what: &str,
    check: impl Fn(&NodeHandle) -> bool,
) {
    while !check(node) {
        assert!(
            since.elapsed() < limit,
            "{what}: not within {limit:?} ({:?}, hung {:?})",
            node.state(),
            node.hung()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_node_is_found_within_3_s_by_its_owner_and_a_standby_and_serves_again_at_once() {
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let proxy = Proxy::start(sim.addr().to_string()).await;
    let mut apps = AppDirectory::new();
    apps.add_app(AppId::parse("app1").unwrap(), ["15551230000".to_owned()]);
    let apps = Arc::new(apps);
    let prefix = NodePrefix::parse("hang1").unwrap();
    // The defaults (probe every second, hung a second past; commands time out after 10 s).
    let config = NodeConfig::new(prefix.clone(), proxy.addr.to_string(), "ClueCon");
    let stop = CancellationToken::new();
    let (owner, _) = supervisor::spawn(
        config.clone(),
        Arc::new(MemoryStore::new()),
        apps.clone(),
        stop.clone(),
    );
    // Another instance applies the node's events for this one: it stands by.
    let (_owned_elsewhere, handover) = switchyard::node::fleet::Seat::pair(prefix);
    let (standby, _) = supervisor::spawn_among(
        config,
        Arc::new(MemoryStore::new()),
        apps,
        supervisor::Peers::default(),
        handover,
        stop.clone(),
    );
    let nodes = [("owner", &owner), ("standby", &standby)];
    for (_, node) in nodes {
        assert!(
            node.wait_up(Duration::from_secs(10)).await,
            "{:?}",
            node.state()
        );
    }
    assert!(owner.applies_events() && !standby.applies_events());
    let status = ApiCommand::new("status").unwrap();
    // Past the owner's second look at the node after coming up (`settle_resync`).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (who, node) in nodes {
        node.api(&status)
            .await
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert_eq!(node.hung(), None, "{who}");
    }
    let connections = proxy.accepted.load(Ordering::SeqCst);

    proxy.hold_replies();
    let held = Instant::now();
    // A command sent as the node hangs.
    let caught = tokio::spawn({
        let (node, status) = (standby.clone(), status.clone());
        async move {
            let result = node.api(&status).await;
            (result, held.elapsed())
        }
    });
    for (who, node) in nodes {
        let what = format!("{who} finds the node hung");
        until(
            node,
            held,
            Duration::from_secs(3),
            &what,
            NodeHandle::is_hung,
        )
        .await;
    }
    let (result, took) = caught.await.unwrap();
    assert!(matches!(result, Err(NodeError::Timeout)), "{result:?}");
    assert!(took < Duration::from_secs(3), "failed only after {took:?}");
    // Refused at once, before anything is written for a command; the node stays up.
    for (who, node) in nodes {
        let asked = Instant::now();
        let result = node.api(&status).await;
        assert!(
            matches!(result, Err(NodeError::Hung(_))),
            "{who}: {result:?}"
        );
        assert!(asked.elapsed() < Duration::from_millis(50), "{who}");
        assert!(matches!(
            node.has_room_for_a_command(),
            Err(NodeError::Hung(_))
        ));
        assert!(matches!(node.state(), NodeState::Up { .. }), "{who}");
    }
    // It stays so while the node hangs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (who, node) in nodes {
        assert!(node.hung().unwrap() > Duration::from_secs(3), "{who}");
        assert!(matches!(node.state(), NodeState::Up { .. }), "{who}");
    }

    proxy.release_replies();
    let released = Instant::now();
    for (who, node) in nodes {
        let what = format!("{who} finds the node answering");
        until(node, released, Duration::from_millis(500), &what, |n| {
            !n.is_hung()
        })
        .await;
        node.api(&status)
            .await
            .unwrap_or_else(|e| panic!("{who}: {e}"));
    }
    assert_eq!(
        proxy.accepted.load(Ordering::SeqCst),
        connections,
        "served again on the connections it had"
    );
    stop.cancel();
}
