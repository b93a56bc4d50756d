//! A member command taken by an instance that does not apply the call's node is sent on to
//! the one that does (`api/forward.rs`), which writes it with the node's confirmation
//! (`node/intents.rs`): one room write, wherever the command came in. An instance killed
//! before its heartbeat lapses has the commands for its nodes served where they came in.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::json;

use crate::common::redis_server::RedisServer;
use crate::common::serve::{Api, until};
use crate::nodes::{Instance, LEASE_MS, members, on_node, rooms_with_callers, shared, simulators};
use crate::webhook_support::Receiver;

/// The rooms' writes (`HSET`, one per room write) Redis ran between two readings.
fn room_writes(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> u64 {
    let n = |m: &HashMap<String, u64>| m.get("hset").copied().unwrap_or(0);
    n(after) - n(before)
}

/// Unmutes `session` (of `room`) through `by`; waits until `seen` and the node have it so.
async fn unmute(
    by: &Api,
    seen: &Api,
    sims: &[switchyard::sim::Simulator],
    room: &str,
    session: &str,
) {
    let path = format!("/api/v1/sessions/{session}/commands/conference/unmute");
    let (status, body) = by.call("POST", &path, Some(json!({}))).await;
    assert_eq!(status, 202, "{body}");
    until(Duration::from_secs(10), "the unmute is seen", || async {
        let shown = members(seen, room).await;
        (shown.get(session) == Some(&false) && shown == on_node(sims, room)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_command_is_written_once_by_the_instance_that_applies_its_node() {
    let redis = RedisServer::start();
    let sims = simulators().await;
    let dir = std::env::temp_dir().join(format!("switchyard-forward-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _logs = crate::nodes::LogsOnFailure(dir.clone());
    let receiver = Receiver::ok().await;
    let hook = receiver.url();
    let a = Instance::start(0, &dir, &redis.url(), &sims, &hook).await;
    let mut b = Instance::start(1, &dir, &redis.url(), &sims, &hook).await;
    let settle = Duration::from_millis(LEASE_MS * 4);
    let shares = shared(&[&a, &b], settle, "two instances share the four nodes").await;
    let (sessions, rooms) = rooms_with_callers(&a.api, &sims).await;
    let room_of = |session: &str| -> String {
        rooms
            .iter()
            .find(|r| r[..5] == session[..5])
            .cloned()
            .unwrap()
    };
    let of = |share: &BTreeSet<String>| -> String {
        sessions
            .iter()
            .find(|s| share.contains(&s[..5]))
            .cloned()
            .unwrap()
    };
    let (here, there) = (of(&shares[0]), of(&shares[1]));

    // Taken by A for a node B applies: sent on to B, one room write; and for one of its own.
    for session in [&there, &here] {
        let before = redis.command_calls().await;
        unmute(&a.api, &a.api, &sims, &room_of(session), session).await;
        let after = redis.command_calls().await;
        assert_eq!(
            room_writes(&before, &after),
            1,
            "{session}: the command and its confirmation in one write"
        );
    }

    // A command sent on that waited past its deadline (a process woken from a stop finds
    // such requests queued) is not carried out: its sender answered 503 for it.
    let late = b
        .api
        .http
        .post(format!(
            "{}/api/v1/sessions/{here}/commands/conference/mute",
            b.api.base
        ))
        .header("X-App-ID", &b.api.app)
        .header("X-API-Key", &b.api.key)
        .header("Switchyard-Forwarded-By", "another-instance")
        .header("Switchyard-Forward-Deadline", "1")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(late.status().as_u16(), 503);
    let room = room_of(&here);
    assert_eq!(
        on_node(&sims, &room).get(&here),
        Some(&false),
        "not sent to the node"
    );
    assert_eq!(members(&a.api, &room).await.get(&here), Some(&false));

    // B killed: until its heartbeat lapses A still names it for B's nodes; A cannot reach it
    // and serves the command itself.
    let other = sessions
        .iter()
        .find(|s| shares[1].contains(&s[..5]) && **s != there)
        .cloned()
        .unwrap();
    b.serve.kill();
    unmute(&a.api, &a.api, &sims, &room_of(&other), &other).await;
}
