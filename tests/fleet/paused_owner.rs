//! Issue 57: a node's owner that stalls instead of dying. Two `serve` processes share four
//! simulated nodes on one Redis, each reaching every node through a proxy of its own that logs
//! the commands it sends. Under a steady stream of mutes and unmutes (through the other
//! instance), the owner of two nodes is paused with SIGSTOP for three times its lease, then
//! resumed with SIGCONT. Its leases run out and the other instance takes its nodes; woken, it
//! must not act on the leases it lost before it holds them again: no snapshot or audit of those
//! nodes (`conference json_list`, `show channels as json`), no room of theirs read or written
//! in the store (it reaches Redis through a proxy that logs what it sends; the traffic goes
//! through the other instance, which does not send it on to this one, so nothing else of it
//! touches a room). Every command
//! answered 202 is announced once, in order; no `seq` is used twice; the store agrees with the
//! nodes. Before the fencing, the woken owner applied the events waiting on its connections to
//! the rooms of the nodes it had lost, and at times audited those nodes, within milliseconds of
//! SIGCONT, before its first lease check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime};

use super::nodes::{
    Instance, LEASE_MS, LogsOnFailure, PREFIXES, TRAFFIC, Traffic, announced_once_in_order, call,
    members_as_answered, progressing_room_of, rooms_with_callers, shared, simulators,
};
use crate::common::proxy::Proxy;
use crate::common::redis_monitor::Monitor;
use crate::common::redis_server::RedisServer;
use crate::common::serve::{operator_toml, until};
use crate::webhook_support::Receiver;

/// The commands only a node's owner sends: its resync and audit.
fn owners_command(command: &str) -> bool {
    command.starts_with("conference json_list") || command.starts_with("show channels")
}

/// This machine's clock at `at` (the proxies log by `Instant`).
fn wall(at: Instant) -> SystemTime {
    let (now, now_wall) = (Instant::now(), SystemTime::now());
    now_wall - now.duration_since(at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_woken_past_its_lease_does_not_act_on_the_nodes_it_lost() {
    let _alone = TRAFFIC.lock().await;
    let redis = RedisServer::start();
    let url = redis.url();
    let sims = simulators().await;
    let dir = std::env::temp_dir().join(format!("switchyard-paused-owner-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _logs = LogsOnFailure(dir.clone());
    let receiver = Receiver::ok().await;
    let hook = receiver.url();
    // A proxy per instance and node: which instance sent what to which node.
    let mut proxies: Vec<Vec<Proxy>> = Vec::new();
    for _ in 0..2 {
        let mut mine = Vec::new();
        for sim in &sims {
            mine.push(Proxy::start(sim.addr().to_string()).await);
        }
        proxies.push(mine);
    }
    let esl = |n: usize| -> Vec<String> { proxies[n].iter().map(|p| p.addr.to_string()).collect() };
    // Audits every second: one is due whenever the paused owner wakes up.
    let extra = "audit_ms = 1000\n";
    let a_redis = Proxy::start(format!("127.0.0.1:{}", redis.port)).await;
    let a_url = format!("redis://{}/", a_redis.addr);
    // `a` gives the fleet no URL, so the other instance serves every command itself rather
    // than sending those of `a`'s nodes on to it (`api/forward.rs`): an API command served by
    // `a` writes its room as any instance may, on no lease, and would be counted below.
    let a = Instance::start_through(
        0,
        &dir,
        &a_url,
        &sims,
        &hook,
        extra,
        Some(&esl(0)),
        "advertise_url = \"\"\n",
    )
    .await;
    let b = Instance::start_through(1, &dir, &url, &sims, &hook, extra, Some(&esl(1)), "").await;
    let settle = Duration::from_millis(LEASE_MS * 4);
    let shares = shared(&[&a, &b], settle, "two instances share the four nodes").await;
    let (sessions, rooms) = rooms_with_callers(&b.api, &sims).await;
    let lost: Vec<String> = shares[0].iter().cloned().collect();
    assert!(!lost.is_empty(), "{shares:?}");
    let a_id: String = {
        let client = redis::Client::open(url.clone()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("GET")
            .arg(format!("sy:fleet:node:{}", lost[0]))
            .query_async(&mut conn)
            .await
            .unwrap()
    };
    let monitor = Monitor::start(redis.port);

    // The traffic goes through `b`, which stays up.
    let traffic = Traffic::start(&b.api, &sessions);
    traffic.more(40).await;
    let paused_at = SystemTime::now();
    a.serve.pause();
    tokio::time::sleep(Duration::from_millis(LEASE_MS * 3)).await;
    // Nothing `a` does after waking can come before this.
    let resumed_at = SystemTime::now();
    a.serve.resume();
    traffic.more(40).await;
    shared(
        &[&a, &b],
        settle,
        "the woken instance takes its share again",
    )
    .await;
    traffic.more(40).await;
    let acked = traffic.finish().await;

    // Redis's order of what happened. `a`'s connections are its proxy's.
    let executed = monitor.executed();
    let a_clients: Vec<String> = a_redis
        .upstream_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    let after = |at: SystemTime| {
        at.duration_since(resumed_at).map_or_else(
            |_| format!("-{:?}", resumed_at.duration_since(at).unwrap()),
            |d| format!("+{d:?}"),
        )
    };
    for node in &lost {
        let lease = format!("sy:fleet:node:{node}");
        let (lease, a_id) = (&lease, &a_id);
        let takes = |by_a: bool| {
            executed.iter().filter(move |e| {
                e.args.first().is_some_and(|c| c == "SET")
                    && e.args.get(1) == Some(lease)
                    && (e.args.get(2) == Some(a_id)) == by_a
            })
        };
        // `b` took it while `a` was paused; `a` took it again later (or not yet).
        let taken_over = takes(false)
            .find(|e| e.at > paused_at && e.at < resumed_at)
            .map(|e| e.at.duration_since(paused_at).unwrap());
        assert!(
            taken_over.is_some(),
            "{node}: not taken over while `a` was paused"
        );
        println!(
            "{node}: taken over {:?} after SIGSTOP ({LEASE_MS} ms leases)",
            taken_over.unwrap()
        );
        let retaken = takes(true).find(|e| e.at > resumed_at).map(|e| e.at);
        let before_retaken = |at: SystemTime| at > resumed_at && retaken.is_none_or(|r| at < r);
        // The node asked for a snapshot before `a` held its lease again: the proxy logged the
        // command no earlier than `a` sent it, so one logged before the take was sent before.
        let n = PREFIXES.iter().position(|p| p == node).unwrap();
        let early: Vec<_> = proxies[0][n]
            .commands()
            .into_iter()
            .filter(|(at, c)| owners_command(c) && before_retaken(wall(*at)))
            .map(|(at, c)| (after(wall(at)), c))
            .collect();
        assert!(
            early.is_empty(),
            "{node}: the woken instance asked the node on a lease it had lost (SIGCONT +0, \
             the lease held again at {:?}): {early:?}",
            retaken.map(after)
        );
        // A room of the node written by `a` (a script of its own changed the record) before it
        // held the lease again. A write sent before the pause may reach Redis after it: its
        // `seq` no longer matches, or its fence is older than the room's, and it changes
        // nothing.
        let room_prefix = format!(":room:{node}-");
        let written: Vec<_> = executed
            .iter()
            .filter(|e| {
                e.args.first().is_some_and(|c| c == "HSET")
                    && e.args.get(1).is_some_and(|k| k.contains(&room_prefix))
                    && a_clients.contains(&e.caller)
                    && before_retaken(e.at)
            })
            .map(|e| (after(e.at), e.args.get(1).cloned()))
            .collect();
        assert!(
            written.is_empty(),
            "{node}: the woken instance wrote the node's rooms on a lease it had lost (SIGCONT \
             +0, the lease held again at {:?}): {written:?}",
            retaken.map(after)
        );
    }
    // Nothing acknowledged was lost or told twice, and the store agrees with the nodes.
    members_as_answered(&b.api, &sims, &rooms, &acked).await;
    announced_once_in_order(&receiver, &acked, &rooms, 0.0).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A room of two greeting sentences: each member who joins hears both, sent by the node's owner
/// one after the other (`conference <room> saymember`).
fn greeting_room(name: &str) -> serde_json::Value {
    let talk = |text: &str| {
        serde_json::json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "next_id": "00000000-0000-0000-0000-000000000000",
            "type": "talk",
            "option": { "text": text, "language": "en-US" }
        })
    };
    serde_json::json!({
        "name": name,
        "pre_actions": [talk("Hello."), talk("Welcome to the room.")]
    })
}

/// Issue 57, for what reaches the node: an effect the owner decided on its lease (a member's
/// greeting, two `saymember` commands) while the owner is paused between its first command and
/// the second (the node's answers reach it 700 ms late). Woken past its lease, taken over
/// meanwhile, it must not send the second: the lease the greeting was decided on is gone. Before
/// the effects checked the lease, it sent it as soon as the node's answer was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_woken_past_its_lease_sends_nothing_more_of_an_effect_it_decided() {
    // No traffic: it runs beside the tests that hold `TRAFFIC`.
    let redis = RedisServer::start();
    let url = redis.url();
    let sims = simulators().await;
    let dir = std::env::temp_dir().join(format!("switchyard-paused-effect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _logs = LogsOnFailure(dir.clone());
    let receiver = Receiver::ok().await;
    let hook = receiver.url();
    // `a` reaches each node through a proxy that logs what it sends.
    let mut proxies = Vec::new();
    for sim in &sims {
        proxies.push(Proxy::start(sim.addr().to_string()).await);
    }
    let esl: Vec<String> = proxies.iter().map(|p| p.addr.to_string()).collect();
    // With no URL for `a`, `b` sends the join itself (not on to `a`): `a` only applies events.
    // Its metrics are read at the end (the operator's key).
    let top = format!("advertise_url = \"\"\n{}", operator_toml());
    let a = Instance::start_through(0, &dir, &url, &sims, &hook, "", Some(&esl), &top).await;
    let b = Instance::start(1, &dir, &url, &sims, &hook).await;
    let settle = Duration::from_millis(LEASE_MS * 4);
    let shares = shared(&[&a, &b], settle, "two instances share the four nodes").await;

    // A greeting room on a node `a` applies, made through `b`.
    let mut placed = None;
    for i in 0..8 {
        let room = progressing_room_of(&b.api, &b.api, greeting_room(&format!("greeted{i}"))).await;
        if let Some(n) = PREFIXES
            .iter()
            .position(|p| room.starts_with(p) && shares[0].contains(*p))
        {
            placed = Some((room, n));
            break;
        }
    }
    let (room, n) = placed.expect("no room placed on a node of `a` in 8");
    let session = call(&b.api, &sims, n, "6100").await;

    // What the node sends `a` arrives 700 ms late from now on (within its probe's deadline,
    // 1 s): the time to pause it between the greeting's two commands. The caller joins.
    proxies[n].delay_replies(Duration::from_millis(700));
    let path = format!("/api/v1/sessions/{session}/commands/conference/join");
    let (status, body) = b
        .api
        .call("POST", &path, Some(serde_json::json!({ "room_id": room })))
        .await;
    assert_eq!(status, 202, "{body}");
    let greetings = || {
        proxies[n]
            .commands()
            .into_iter()
            .filter(|(_, c)| c.starts_with(&format!("conference {room} saymember")))
            .map(|(_, c)| c)
            .collect::<Vec<_>>()
    };
    until(
        settle,
        "`a` sends the greeting's first sentence",
        || async { (!greetings().is_empty()).then_some(()) },
    )
    .await;
    // Paused before the node answers it, for three times its lease.
    a.serve.pause();
    tokio::time::sleep(Duration::from_millis(LEASE_MS * 3)).await;
    let node = PREFIXES[n].to_owned();
    assert!(
        b.applies().await.is_some_and(|s| s.contains(&node)),
        "{node}: not taken over while `a` was paused"
    );
    a.serve.resume();
    // Woken, `a` reads the node's late answer at once, and runs again: it takes its share back.
    shared(
        &[&a, &b],
        settle,
        "the woken instance takes its share again",
    )
    .await;
    let sent = greetings();
    assert_eq!(
        sent.len(),
        1,
        "the woken instance went on with a greeting decided on a lease it had lost: {sent:?}"
    );
    let metrics = a
        .api
        .metrics_request()
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fenced = format!("switchyard_fenced_effects_total{{node=\"{node}\"}} 1");
    assert!(
        metrics.lines().any(|l| l == fenced),
        "{fenced} not in the woken instance's metrics: {:?}",
        metrics
            .lines()
            .filter(|l| l.contains("fenced"))
            .collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
