//! The controller's room state against a simulated FreeSWITCH: joins, mutes and hangups reach the
//! store through the event stream; after a lost connection, a node restart or a controller
//! restart, the store equals the node again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::conference::{
    AppId, EventKind, LeaveReason, MemberStatus, NodePrefix, Room, RoomStatus, SessionId,
    SessionState, Switch,
};
use switchyard::node::{
    AppDirectory, NodeConfig, NodeError, NodeHandle, NodePool, SEND_BEFORE, supervisor,
};
use switchyard::rooms::{Cooldowns, JoinOutcome, NewRoom, Rooms, ServiceError};
use switchyard::sim::{SimConfig, Simulator};
use switchyard::store::Store;
use switchyard::store::memory::MemoryStore;
use tokio_util::sync::CancellationToken;

const DID: &str = "15551230000";

fn app() -> AppId {
    AppId::parse("app1").unwrap()
}

fn prefix() -> NodePrefix {
    NodePrefix::parse("simA1").unwrap()
}

async fn sim() -> Simulator {
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        heartbeat: Some(Duration::from_millis(200)),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn start_node<S: Store>(sim: &Simulator, store: Arc<S>, stop: &CancellationToken) -> NodeHandle {
    start_node_auditing(sim, store, stop, Duration::from_secs(3600))
}

fn start_node_auditing<S: Store>(
    sim: &Simulator,
    store: Arc<S>,
    stop: &CancellationToken,
    audit: Duration,
) -> NodeHandle {
    let mut apps = AppDirectory::new();
    apps.add_app(app(), [DID.to_owned()]);
    let mut config = NodeConfig::new(prefix(), sim.addr().to_string(), "ClueCon");
    config.silence_timeout = Duration::from_secs(2);
    config.audit_interval = audit;
    config.join_timeout = Duration::from_secs(5);
    supervisor::spawn(config, store, Arc::new(apps), stop.clone()).0
}

/// Waits (up to 10 s) until `check` holds, re-evaluating as the system moves.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn stored_room<S: Store>(store: &S, room: &Room) -> Room {
    store.room(&app(), &room.id).await.unwrap().unwrap()
}

/// (channel, member id, muted) of the confirmed members, as the store holds them.
async fn store_members<S: Store>(store: &S, room: &Room) -> BTreeSet<(String, u32, bool)> {
    stored_room(store, room)
        .await
        .members
        .values()
        .filter(|m| m.status == MemberStatus::Joined)
        .map(|m| (m.channel().to_owned(), m.member_id.unwrap(), m.muted))
        .collect()
}

/// The same, as the node lists them (without the control leg).
fn node_members(sim: &Simulator, room: &Room, control: &str) -> BTreeSet<(String, u32, bool)> {
    let text = sim.api(&format!("conference {} json_list", room.id));
    let Ok(rooms) = serde_json::from_str::<serde_json::Value>(&text) else {
        return BTreeSet::new();
    };
    rooms[0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "caller" && m["uuid"] != control)
        .map(|m| {
            (
                m["uuid"].as_str().unwrap().to_owned(),
                m["id"].as_u64().unwrap() as u32,
                !m["flags"]["can_speak"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The session is stored as ended.
async fn session_ended<S: Store>(store: &S, id: &SessionId) -> bool {
    store
        .session(&app(), id)
        .await
        .unwrap()
        .is_some_and(|s| s.state == SessionState::Ended)
}

/// A store on `server`, a simulated node audited every 300 ms, and the rooms over them (keep
/// the token: the node's supervisor stops with it).
async fn auditing_on_redis(
    server: &common::redis_server::RedisServer,
) -> (
    Arc<switchyard::store::redis::RedisStore>,
    Simulator,
    CancellationToken,
    Rooms<switchyard::store::redis::RedisStore>,
) {
    let store = Arc::new(
        switchyard::store::redis::RedisStore::connect(&server.url())
            .await
            .unwrap(),
    );
    let sim = sim().await;
    let stop = CancellationToken::new();
    let node = start_node_auditing(&sim, store.clone(), &stop, Duration::from_millis(300));
    assert!(node.wait_up(Duration::from_secs(5)).await);
    let rooms = Rooms::new(store.clone(), NodePool::new(vec![node]));
    (store, sim, stop, rooms)
}

async fn progressing_room<S: Store>(rooms: &Rooms<S>, name: &str) -> Room {
    let room = rooms.create(&app(), NewRoom::named(name)).await.unwrap();
    let store = rooms.store();
    eventually("the control leg is in", || async {
        stored_room(store, &room).await.status == RoomStatus::Progressing
    })
    .await;
    stored_room(store, &room).await
}

async fn call<S: Store>(sim: &Simulator, store: &S, caller: &str) -> SessionId {
    let channel = sim.inbound_call(DID, caller, caller).unwrap();
    let id = SessionId::new(&prefix(), &channel);
    eventually("the session is stored", || async {
        store
            .session(&app(), &id)
            .await
            .unwrap()
            .is_some_and(|s| s.state == SessionState::Parked)
    })
    .await;
    id
}

async fn joined<S: Store>(rooms: &Rooms<S>, room: &Room, session: &SessionId) {
    assert_eq!(
        rooms
            .join(&app(), session, &room.id, None, Default::default())
            .await
            .unwrap(),
        JoinOutcome::Joining
    );
    let store = rooms.store();
    eventually("add-member confirms the join", || async {
        stored_room(store, room)
            .await
            .members
            .get(session.channel())
            .is_some_and(|m| m.status == MemberStatus::Joined)
    })
    .await;
}

async fn join_mute_and_hang_up<S: Store>(store: Arc<S>) {
    let sim = sim().await;
    let stop = CancellationToken::new();
    let node = start_node(&sim, store.clone(), &stop);
    assert!(node.wait_up(Duration::from_secs(5)).await);
    let rooms = Rooms::new(store.clone(), NodePool::new(vec![node]));
    let room = progressing_room(&rooms, "standup").await;
    let alice = call(&sim, &*store, "1001").await;
    joined(&rooms, &room, &alice).await;
    let member = stored_room(&*store, &room).await.members[alice.channel()].clone();
    assert!(member.member_id.is_some());
    assert!(member.muted, "members join muted");
    assert_eq!(
        (member.did.as_str(), member.caller_id.as_str()),
        (DID, "1001")
    );
    assert_eq!(
        rooms
            .join(&app(), &alice, &room.id, None, Default::default())
            .await
            .unwrap(),
        JoinOutcome::AlreadyJoined
    );

    rooms
        .set_switch(&app(), &alice, Switch::Mute, false, None, None)
        .await
        .unwrap();
    eventually("unmute-member confirms", || async {
        !stored_room(&*store, &room).await.members[alice.channel()].muted
    })
    .await;
    assert!(
        rooms
            .set_switch(&app(), &alice, Switch::Mute, false, None, None)
            .await
            .is_err(),
        "already unmuted"
    );

    sim.api(&format!("uuid_kill {}", alice.channel()));
    eventually("the member left with its reason", || async {
        stored_room(&*store, &room).await.members.is_empty()
    })
    .await;
    let left = stored_room(&*store, &room)
        .await
        .past_members
        .last()
        .cloned()
        .unwrap();
    assert_eq!(left.leave_reason, Some(LeaveReason::Hangup));
    assert_eq!(left.hangup_cause.as_deref(), Some("NORMAL_CLEARING"));
    eventually("the session ended", || session_ended(&*store, &alice)).await;
    let kinds: Vec<EventKind> = store
        .outbox(&app(), None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.event.kind)
        .collect();
    use EventKind::*;
    assert_eq!(
        kinds,
        [
            Created,
            Progressing,
            MemberJoining,
            MemberJoined,
            MemberUnmuted,
            MemberLeft
        ]
    );
    stop.cancel();
}

#[tokio::test]
async fn join_mute_and_hang_up_with_the_memory_store() {
    join_mute_and_hang_up(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn join_mute_and_hang_up_with_redis() {
    let server = common::redis_server::RedisServer::start();
    let store = switchyard::store::redis::RedisStore::connect(&server.url())
        .await
        .unwrap();
    join_mute_and_hang_up(Arc::new(store)).await;
}

#[tokio::test]
async fn after_a_lost_connection_the_store_equals_the_node() {
    let sim = sim().await;
    let store = Arc::new(MemoryStore::new());
    let stop = CancellationToken::new();
    let node = start_node(&sim, store.clone(), &stop);
    assert!(node.wait_up(Duration::from_secs(5)).await);
    let rooms = Rooms::new(store.clone(), NodePool::new(vec![node.clone()]));
    let room = progressing_room(&rooms, "drop").await;
    let (a, b) = (
        call(&sim, &*store, "1001").await,
        call(&sim, &*store, "1002").await,
    );
    joined(&rooms, &room, &a).await;
    joined(&rooms, &room, &b).await;

    // The node keeps changing while nobody listens: A hangs up, C calls in and is put in the room.
    sim.stall_events(true);
    sim.drop_connections();
    sim.api(&format!("uuid_kill {}", a.channel()));
    let c = sim.inbound_call(DID, "1003", "Carol").unwrap();
    sim.api(&format!(
        "uuid_transfer {c} conference:{}@default+flags{{mute}},park: inline",
        room.id
    ));
    let control = stored_room(&*store, &room).await.control.channel;
    // The channel's own thread carries out the transfer after the command's reply, as on
    // FreeSWITCH: `last` must name C, so C must be in first.
    eventually("C is in the room on the node", || async {
        node_members(&sim, &room, &control)
            .iter()
            .any(|(ch, _, _)| ch == &c)
    })
    .await;
    sim.api(&format!("conference {} unmute {}", room.id, "last"));
    sim.stall_events(false);

    // The node carries out the transfer and the unmute after answering them.
    eventually("the node lists B and C, C unmuted", || async {
        let on_node = node_members(&sim, &room, &control);
        on_node.len() == 2 && on_node.iter().any(|(ch, _, muted)| ch == &c && !muted)
    })
    .await;
    eventually("the store equals the node", || async {
        store_members(&*store, &room).await == node_members(&sim, &room, &control)
    })
    .await;
    let now = store_members(&*store, &room).await;
    assert_eq!(now.len(), 2, "B and C, not A: {now:?}");
    assert!(
        now.iter().any(|(ch, _, muted)| ch == &c && !muted),
        "C unmuted"
    );
    let left = stored_room(&*store, &room).await.past_members;
    assert_eq!(left[0].channel(), a.channel());
    assert_eq!(left[0].leave_reason, Some(LeaveReason::NotOnNode));
    stop.cancel();
}

#[tokio::test]
async fn a_node_restart_empties_rooms_and_re_establishes_them() {
    let sim = sim().await;
    let store = Arc::new(MemoryStore::new());
    let stop = CancellationToken::new();
    let node = start_node(&sim, store.clone(), &stop);
    assert!(node.wait_up(Duration::from_secs(5)).await);
    let rooms = Rooms::new(store.clone(), NodePool::new(vec![node]));
    let room = progressing_room(&rooms, "restart").await;
    let a = call(&sim, &*store, "1001").await;
    joined(&rooms, &room, &a).await;
    let old_core = sim.core_uuid();
    sim.restart();
    eventually(
        "the room lives again on the new FreeSWITCH process",
        || async {
            let r = stored_room(&*store, &room).await;
            r.core_uuid.as_deref() == Some(sim.core_uuid().as_str())
                && r.control.member_id.is_some()
                && r.members.is_empty()
        },
    )
    .await;
    assert_ne!(sim.core_uuid(), old_core);
    let r = stored_room(&*store, &room).await;
    assert_eq!(r.status, RoomStatus::Progressing);
    assert_eq!(
        r.past_members[0].leave_reason,
        Some(LeaveReason::NodeRestarted)
    );
    assert!(
        sim.api(&format!("conference {} count", room.id))
            .starts_with('1'),
        "the control leg is in"
    );
    stop.cancel();
}

#[tokio::test]
async fn a_restarted_controller_resyncs_from_the_store() {
    let sim = sim().await;
    let store = Arc::new(MemoryStore::new());
    let first = CancellationToken::new();
    let node = start_node(&sim, store.clone(), &first);
    assert!(node.wait_up(Duration::from_secs(5)).await);
    let rooms = Rooms::new(store.clone(), NodePool::new(vec![node]));
    let room = progressing_room(&rooms, "ctl").await;
    let (a, b) = (
        call(&sim, &*store, "1001").await,
        call(&sim, &*store, "1002").await,
    );
    joined(&rooms, &room, &a).await;
    joined(&rooms, &room, &b).await;
    first.cancel();
    // While no controller runs, B leaves.
    sim.api(&format!("uuid_transfer {} park inline", b.channel()));
    let second = CancellationToken::new();
    let node = start_node(&sim, store.clone(), &second);
    assert!(node.wait_up(Duration::from_secs(5)).await);
    let control = stored_room(&*store, &room).await.control.channel;
    eventually("the node has let B go", || async {
        node_members(&sim, &room, &control).len() == 1
    })
    .await;
    eventually("the store equals the node", || async {
        store_members(&*store, &room).await == node_members(&sim, &room, &control)
    })
    .await;
    assert_eq!(store_members(&*store, &room).await.len(), 1);
    second.cancel();
}

#[tokio::test]
async fn a_redis_restart_under_node_traffic_is_reported_then_repaired() {
    let mut server = common::redis_server::RedisServer::start();
    let (store, sim, stop, rooms) = auditing_on_redis(&server).await;
    let room = progressing_room(&rooms, "redis-restart").await;
    let (a, b) = (
        call(&sim, &*store, "1001").await,
        call(&sim, &*store, "1002").await,
    );
    joined(&rooms, &room, &a).await;
    joined(&rooms, &room, &b).await;

    server.kill();
    // The node moves on while Redis is away: A hangs up, B is unmuted by an operator.
    sim.api(&format!("uuid_kill {}", a.channel()));
    sim.api(&format!("conference {} unmute all", room.id));
    // An application's request reports the outage instead of hanging or panicking.
    let err = rooms
        .set_switch(&app(), &b, Switch::Mute, true, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, switchyard::rooms::ServiceError::Store(ref e) if e.is_retryable()),
        "{err:?}"
    );

    server.restart();
    let control = stored_room(&*store, &room).await.control.channel;
    eventually("the node shows only B, unmuted", || async {
        node_members(&sim, &room, &control)
            .iter()
            .map(|(ch, _, muted)| (ch.clone(), *muted))
            .collect::<Vec<_>>()
            == vec![(b.channel().to_owned(), false)]
    })
    .await;
    // The audit repairs what the lost events would have told.
    eventually("the store equals the node again", || async {
        store_members(&*store, &room).await == node_members(&sim, &room, &control)
    })
    .await;
    eventually("A's session ended", || session_ended(&*store, &a)).await;
    stop.cancel();
}

#[tokio::test]
async fn background_jobs_on_command_connections_resolve() {
    let sim = sim().await;
    let stop = CancellationToken::new();
    let node = start_node(&sim, Arc::new(MemoryStore::new()), &stop);
    assert!(node.wait_up(Duration::from_secs(5)).await);
    // The control leg of every room is a bgapi originate: its result must come back (the
    // command connection hears its BACKGROUND_JOB), not wait for the job timeout.
    let cmd = switchyard::esl::ApiCommand::new("status").unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(3), node.bgapi(&cmd))
        .await
        .expect("the job's result within 3 s")
        .unwrap();
    assert!(reply.text().contains("UP"), "{}", reply.text());
    stop.cancel();
}

#[tokio::test]
async fn an_audit_repairs_the_store_while_a_recording_runs() {
    // FreeSWITCH lists a running recording among the conference's members (a `recording_node`
    // entry without id or flags): the audit must read past it, not drop the node.
    let sim = sim().await;
    let store = Arc::new(MemoryStore::new());
    let stop = CancellationToken::new();
    let node = start_node_auditing(&sim, store.clone(), &stop, Duration::from_millis(200));
    assert!(node.wait_up(Duration::from_secs(5)).await);
    let rooms = Rooms::new(store.clone(), NodePool::new(vec![node.clone()]));
    let room = progressing_room(&rooms, "recorded").await;
    let a = call(&sim, &*store, "1001").await;
    joined(&rooms, &room, &a).await;
    let path = std::env::temp_dir().join(format!("switchyard-audit-{}.wav", room.id));
    let reply = sim.api(&format!("conference {} record {}", room.id, path.display()));
    assert!(reply.starts_with("+OK"), "{reply}");
    let listed = sim.api(&format!("conference {} json_list", room.id));
    assert!(listed.contains("recording_node"), "{listed}");

    // An operator unmutes A on the node and the controller misses the event: only an audit can
    // tell it.
    sim.drop_events("Action", "unmute-member");
    let control = stored_room(&*store, &room).await.control.channel;
    let member = node_members(&sim, &room, &control)
        .into_iter()
        .next()
        .unwrap()
        .1;
    sim.api(&format!("conference {} unmute {member}", room.id));
    eventually("an audit finds A unmuted", || async {
        store_members(&*store, &room)
            .await
            .iter()
            .any(|(ch, _, muted)| ch == a.channel() && !muted)
    })
    .await;
    assert!(
        matches!(node.state(), switchyard::node::NodeState::Up { .. }),
        "{:?}",
        node.state()
    );
    sim.clear_dropped_events();
    sim.api(&format!("conference {} norecord all", room.id));
    let _ = std::fs::remove_file(&path);
    stop.cancel();
}

#[tokio::test]
async fn an_audit_never_ends_a_call_that_show_channels_does_not_list_yet() {
    // FreeSWITCH's `show channels` trails its events by a few hundred milliseconds: an audit
    // taken right after a call began does not list it. The call is alive; it must stay so.
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        heartbeat: Some(Duration::from_millis(200)),
        channel_list_lag: Duration::from_secs(30),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let stop = CancellationToken::new();
    let mut apps = AppDirectory::new();
    apps.add_app(app(), [DID.to_owned()]);
    let mut config = NodeConfig::new(prefix(), sim.addr().to_string(), "ClueCon");
    config.audit_interval = Duration::from_millis(50);
    let (node, stats) = supervisor::spawn(config, store.clone(), Arc::new(apps), stop.clone());
    assert!(node.wait_up(Duration::from_secs(5)).await);
    let a = call(&sim, &*store, "1001").await;
    let listed = sim.api("show channels as json");
    assert!(!listed.contains(a.channel()), "not listed yet: {listed}");
    let before = stats.resyncs.load(std::sync::atomic::Ordering::Relaxed);
    eventually("three audits ran", || async {
        stats.resyncs.load(std::sync::atomic::Ordering::Relaxed) >= before + 3
    })
    .await;
    let session = store.session(&app(), &a).await.unwrap().unwrap();
    assert_eq!(session.state, SessionState::Parked, "{session:?}");
    // A call that really ended while nobody listened still ends at the next audit.
    sim.stall_events(true);
    sim.api(&format!("uuid_kill {}", a.channel()));
    sim.drop_connections();
    sim.stall_events(false);
    eventually("the hung-up call's session ended", || {
        session_ended(&*store, &a)
    })
    .await;
    stop.cancel();
}

/// Issue 35: a conference whose room the store no longer has (a failover lost the room's
/// creation) is removed by the audits: its caller is parked (its call goes on, out of the
/// room) and its control leg hung up. Another controller's conference on the same node, with a
/// leg named like our control legs, is left alone.
#[tokio::test]
async fn an_audit_removes_a_conference_the_store_lost_and_nothing_else() {
    let server = common::redis_server::RedisServer::start();
    let (store, sim, _stop, rooms) = auditing_on_redis(&server).await;
    let room = progressing_room(&rooms, "lost").await;
    let alice = call(&sim, &*store, "1001").await;
    joined(&rooms, &room, &alice).await;
    let other = sim.api(
        "originate {origination_caller_id_name=switchyard}null/4000 &conference(standup@default)",
    );
    assert!(other.starts_with("+OK"), "{other}");
    let listed = |name: &str| sim.api("conference list").contains(name);
    eventually("another controller's conference is up", || async {
        listed("standup")
    })
    .await;
    assert!(listed(room.id.as_str()));

    // The store forgets the room, as a failover that lost its creation would (its record and
    // lookups; the node's index may still name it).
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{}*", room.id))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();

    eventually("the lost room's conference is gone", || async {
        !listed(room.id.as_str())
    })
    .await;
    let channels = sim.api("show channels as json");
    assert!(
        channels.contains(alice.channel()),
        "the caller was parked, not hung up: {channels}"
    );
    assert!(listed("standup"), "another controller's conference stays");
}

/// Nodes that come up together are audited apart: each node's first audit falls anywhere
/// from half an interval to one and a half after it is up, so a controller with many nodes
/// does not snapshot them all at one instant (which held every node's events back while the
/// audits ran: a quarter of a second with 50 nodes, `benches/scale.rs`).
#[tokio::test]
async fn nodes_that_came_up_together_are_audited_apart() {
    let store = Arc::new(MemoryStore::new());
    let stop = CancellationToken::new();
    let mut apps = AppDirectory::new();
    apps.add_app(app(), [DID.to_owned()]);
    let apps = Arc::new(apps);
    let mut nodes = Vec::new();
    let mut sims = Vec::new();
    for i in 0..6 {
        let sim = sim().await;
        let prefix = NodePrefix::parse(&format!("aud0{i}")).unwrap();
        let mut config = NodeConfig::new(prefix, sim.addr().to_string(), "ClueCon");
        config.audit_interval = Duration::from_secs(1);
        // No other snapshot in the window: only the audits count.
        config.settle_resync = Duration::from_secs(60);
        config.join_timeout = Duration::from_secs(60);
        nodes.push(supervisor::spawn(
            config,
            store.clone(),
            apps.clone(),
            stop.clone(),
        ));
        sims.push(sim);
    }
    for (node, _) in &nodes {
        assert!(node.wait_up(Duration::from_secs(5)).await);
    }
    let resyncs = |i: usize| {
        nodes[i]
            .1
            .resyncs
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let up: Vec<u64> = (0..nodes.len()).map(resyncs).collect();
    let began = tokio::time::Instant::now();
    let mut first = vec![None; nodes.len()];
    while first.iter().any(Option::is_none) {
        assert!(
            began.elapsed() < Duration::from_secs(3),
            "every node is audited within one and a half intervals: {first:?}"
        );
        for (i, at) in first.iter_mut().enumerate() {
            if at.is_none() && resyncs(i) > up[i] {
                *at = Some(began.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at: Vec<Duration> = first.into_iter().flatten().collect();
    let spread = *at.iter().max().unwrap() - *at.iter().min().unwrap();
    assert!(
        spread >= Duration::from_millis(150),
        "six nodes' first audits spread over {spread:?}: {at:?}"
    );
    stop.cancel();
}

/// A member command whose time to be sent is over (a command sent on by another instance
/// whose sender is about to give up, `node::SEND_BEFORE`) is not sent to the node and leaves
/// the room as it was: the same command asked again is a change, not a repeat.
#[tokio::test]
async fn a_command_whose_time_to_be_sent_is_over_is_not_sent_and_changes_nothing() {
    let store = Arc::new(MemoryStore::new());
    let sim = sim().await;
    let stop = CancellationToken::new();
    let node = start_node(&sim, store.clone(), &stop);
    assert!(node.wait_up(Duration::from_secs(5)).await);
    // No cooldown: the command is asked again at once (a command not sent spent it, as a
    // command the node refused does).
    let none = Cooldowns {
        conf_play: Duration::ZERO,
        conference_control: Duration::ZERO,
        conference: Duration::ZERO,
        conference_mute: Duration::ZERO,
    };
    let rooms = Rooms::new(store.clone(), NodePool::new(vec![node])).with_cooldowns(none);
    let room = progressing_room(&rooms, "late").await;
    let alice = call(&sim, &*store, "1001").await;
    joined(&rooms, &room, &alice).await;
    let control = stored_room(&*store, &room).await.control.channel;
    let before = store_members(&*store, &room).await;
    assert_eq!(before, node_members(&sim, &room, &control), "joined muted");

    let app = app();
    let unmute = || rooms.set_switch(&app, &alice, Switch::Mute, false, None, None);
    let late = SEND_BEFORE.scope(Instant::now(), unmute()).await;
    assert!(
        matches!(late, Err(ServiceError::Node(NodeError::TooLate))),
        "{late:?}"
    );
    assert_eq!(
        node_members(&sim, &room, &control),
        before,
        "sent to the node"
    );
    assert_eq!(
        store_members(&*store, &room).await,
        before,
        "the room changed"
    );

    // With time left it is sent, and it is a change (not a repeat of the one not sent).
    let in_time = Instant::now() + Duration::from_secs(5);
    SEND_BEFORE.scope(in_time, unmute()).await.unwrap();
    eventually("unmute-member confirms", || async {
        let unmuted = store_members(&*store, &room)
            .await
            .iter()
            .all(|(_, _, muted)| !muted);
        unmuted && store_members(&*store, &room).await == node_members(&sim, &room, &control)
    })
    .await;
    stop.cancel();
}
