//! An instance on standby for a node whose events another instance applies.
//! - The node hangs (its connections stay open, nothing comes back): the standby finds out from
//!   the missing heartbeats, as the owner does, and says the node is down instead of sending
//!   the API's commands into a node that never answers.
//! - Its commands do not wake its own event connection (only the owner's is woken); a room
//!   changed through it (a command's intent) has the owner wake its connection.
//! - Joining a running fleet, it waits for the owner to apply up to where it began to listen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use switchyard::conference::{AppId, NodePrefix};
use switchyard::node::{AppDirectory, NodeConfig, NodeHandle, NodeState, supervisor};
use switchyard::sim::{SimConfig, Simulator};
use switchyard::store::memory::MemoryStore;
use tokio_util::sync::CancellationToken;

async fn state_becomes(node: &NodeHandle, what: &str, want: impl Fn(&NodeState) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = node.state();
        if want(&state) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still {state:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_instance_finds_out_that_a_node_hangs() {
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        heartbeat: Some(Duration::from_millis(200)),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let proxy = Proxy::start(sim.addr().to_string()).await;
    let mut apps = AppDirectory::new();
    apps.add_app(AppId::parse("app1").unwrap(), ["15551230000".to_owned()]);
    let mut config = NodeConfig::new(
        NodePrefix::parse("stby1").unwrap(),
        proxy.addr.to_string(),
        "ClueCon",
    );
    config.silence_timeout = Duration::from_secs(2);
    // Another instance owns the node: this one stays on standby while the seat lives.
    let (_owned_elsewhere, handover) =
        switchyard::node::fleet::Seat::pair(NodePrefix::parse("stby1").unwrap());
    let stop = CancellationToken::new();
    let (node, _) = supervisor::spawn_among(
        config,
        Arc::new(MemoryStore::new()),
        Arc::new(apps),
        supervisor::Peers::default(),
        handover,
        stop.clone(),
    );
    state_becomes(&node, "the node comes up", |s| {
        matches!(s, NodeState::Up { .. })
    })
    .await;
    assert!(
        !node.applies_events(),
        "another instance applies its events"
    );

    // Longer than the silence timeout, to see that heartbeats keep a quiet standby node up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        matches!(node.state(), NodeState::Up { .. }),
        "{:?}",
        node.state()
    );

    proxy.freeze();
    let frozen = Instant::now();
    state_becomes(&node, "the hung node is down", |s| {
        !matches!(s, NodeState::Up { .. })
    })
    .await;
    assert!(
        frozen.elapsed() < Duration::from_secs(5),
        "found out after {:?}",
        frozen.elapsed()
    );
    stop.cancel();
}

/// A command wakes the node's event connection for its events (a line feed every
/// `wake_interval`, `esl/wake.rs`) only in the instance that applies them. A standby's commands
/// woke its own event connection, whose events wait for a takeover: in `event_cost` the line
/// feeds cost the API instance about 100 µs a command, and half of them were a standby's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_instance_that_applies_a_nodes_events_wakes_its_event_connection() {
    use switchyard::esl::ApiCommand;
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut apps = AppDirectory::new();
    apps.add_app(AppId::parse("app1").unwrap(), ["15551230000".to_owned()]);
    let store = Arc::new(MemoryStore::new());
    let stop = CancellationToken::new();
    let spawn = |handover| {
        let mut config = NodeConfig::new(
            NodePrefix::parse("wake1").unwrap(),
            sim.addr().to_string(),
            "ClueCon",
        );
        config.event_wake = Duration::from_millis(100);
        supervisor::spawn_among(
            config,
            store.clone(),
            Arc::new(apps.clone()),
            supervisor::Peers::default(),
            handover,
            stop.clone(),
        )
        .0
    };
    let (_owned_elsewhere, handover) =
        switchyard::node::fleet::Seat::pair(NodePrefix::parse("wake1").unwrap());
    let standby = spawn(handover);
    let owner = spawn(switchyard::node::fleet::Handover::sole());
    for node in [&standby, &owner] {
        state_becomes(node, "the node comes up", |s| {
            matches!(s, NodeState::Up { .. })
        })
        .await;
    }
    assert!(!standby.applies_events() && owner.applies_events());
    let status = ApiCommand::new("status").unwrap();

    // The owner's command: its connection is woken for the window, then left alone.
    let before = sim.line_feeds();
    owner.api(&status).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.line_feeds() < before + 10 {
        assert!(
            Instant::now() < deadline,
            "the owner's connection was not woken"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The standby's commands: nothing, for longer than their windows.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before = sim.line_feeds();
    for _ in 0..3 {
        standby.api(&status).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        sim.line_feeds() - before,
        0,
        "a standby's commands woke a connection"
    );
    stop.cancel();
}

/// A joining instance is handed nodes only once their owner has applied up to the first event
/// it heard of each: a saturated owner thousands of events behind, handed over sooner, would
/// record a position older than anything the newcomer kept (a gap). It waits, reading the
/// owner's positions, and joins as soon as the owner gets there; an owner that stops moving (a
/// killed one whose heartbeat has not run out yet) is not waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_instance_waits_for_the_owner_to_reach_where_it_began_to_listen() {
    // The owner applies one event every 40 ms from 100: 149 after about 2 s.
    let (joined_at, waited) = join_behind(Some(Duration::from_millis(40))).await;
    assert!(
        joined_at.sequence >= 149,
        "joined while the owner stood at {}",
        joined_at.sequence
    );
    assert!(waited > Duration::from_millis(1500), "{waited:?}");
    // An owner that records nothing new (killed, its heartbeat not yet run out): joined after
    // two looks without a move.
    let (joined_at, waited) = join_behind(None).await;
    assert_eq!(joined_at.sequence, 100);
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

/// A newcomer that began to listen at event 150 of a node whose owner recorded 100, and moves
/// on by one every `pace` (`None`: never): where the owner stood when the newcomer joined, and
/// how long after its start.
async fn join_behind(pace: Option<Duration>) -> (switchyard::store::fleet::NodePosition, Duration) {
    use switchyard::node::fleet::{self, FleetConfig, Seat};
    use switchyard::store::fleet::{Fleet, NodePosition};
    let store = Arc::new(MemoryStore::new());
    let node = NodePrefix::parse("late1").unwrap();
    let at = |sequence| NodePosition {
        core: "core-1".into(),
        sequence,
    };
    let minute = Duration::from_secs(60);
    store.heartbeat("owner", minute).await.unwrap();
    // Taken, then renewed with the position applied (a renewal records it).
    for _ in 0..2 {
        let lease = store
            .node_lease(&node, "owner", minute, Some(&at(100)))
            .await
            .unwrap();
        assert!(lease.held);
    }
    let owner = pace.map(|pace| {
        let (store, node) = (store.clone(), node.clone());
        tokio::spawn(async move {
            for sequence in 101..=200 {
                tokio::time::sleep(pace).await;
                let _ = store
                    .node_lease(&node, "owner", minute, Some(&at(sequence)))
                    .await;
            }
        })
    });
    let (seat, handover) = Seat::pair(node.clone());
    *handover.listening.lock().unwrap() = Some(at(150));
    handover.ready.send_replace(true);
    let stop = CancellationToken::new();
    let (_changes, changes) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    fleet::start(
        store.clone(),
        FleetConfig {
            instance: "newcomer".into(),
            ..FleetConfig::new(Duration::from_millis(300))
        },
        vec![seat],
        changes,
        stop.clone(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live = store.heartbeat("owner", minute).await.unwrap();
        if live.iter().any(|i| i == "newcomer") {
            break;
        }
        assert!(Instant::now() < deadline, "never joined");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waited = started.elapsed();
    let recorded = store
        .node_lease(&node, "reader", Duration::ZERO, None)
        .await
        .unwrap()
        .recorded
        .unwrap();
    stop.cancel();
    if let Some(owner) = owner {
        owner.abort();
    }
    (recorded, waited)
}

/// A room changed through one instance (an API command's intent, which that instance sends the
/// node right after) wakes the event connection of the instance that applies the room's node:
/// FreeSWITCH would otherwise hand that command's events over up to 20 ms late (issue 59). A
/// change that no command follows (new metadata here) wakes it for `FOREIGN_WAKE` at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_changed_through_another_instance_wakes_the_owners_event_connection() {
    use super::nodes::{self, Instance, LogsOnFailure};
    use common::serve::until;
    let redis = common::redis_server::RedisServer::start();
    let sims = nodes::simulators().await;
    let dir = std::env::temp_dir().join(format!("switchyard-woken-owner-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _logs = LogsOnFailure(dir.clone());
    let receiver = crate::webhook_support::Receiver::ok().await;
    let a = Instance::start(0, &dir, &redis.url(), &sims, &receiver.url()).await;
    let b = Instance::start(1, &dir, &redis.url(), &sims, &receiver.url()).await;
    let settle = Duration::from_millis(nodes::LEASE_MS * 4);
    let shares = nodes::shared(&[&a, &b], settle, "two instances share the nodes").await;
    // A room on a node b applies, made through a; b applies its control leg's join, and keeps
    // the room it wrote.
    let mut room = String::new();
    for i in 0..16 {
        room = nodes::progressing_room(&a.api, &b.api, &format!("woken-{i}")).await;
        if shares[1].iter().any(|n| room.starts_with(&format!("{n}-"))) {
            break;
        }
    }
    let n = nodes::PREFIXES
        .iter()
        .position(|p| room.starts_with(&format!("{p}-")))
        .unwrap();
    assert!(
        shares[1].contains(nodes::PREFIXES[n]),
        "no room on b's nodes: {shares:?}"
    );
    let sim = &sims[n];
    let before = sim.line_feeds();
    let (status, body) = a
        .api
        .call(
            "PATCH",
            &format!("/api/v1/conferences/{room}"),
            Some(serde_json::json!({ "metadata": { "topic": "woken" } })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    until(
        Duration::from_secs(5),
        "b wakes its event connection",
        || async { (sim.line_feeds() >= before + 10).then_some(()) },
    )
    .await;
}
