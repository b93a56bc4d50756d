//! A rolling upgrade under traffic (issue 37, docs/operations.md "Upgrading"): two `serve`
//! instances on one Redis share four simulated nodes; mutes and unmutes go through both, spread
//! as a load balancer spreads them (a request an instance does not take goes to the other).
//! Each instance in turn is stopped (SIGTERM) and a new one started in its place. Every command
//! answered 202 is announced by a webhook, in order, once; no member ends in a state other than
//! its last answered command; the only refusals are 503s with `Retry-After`, counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::nodes::{
    Acked, Instance, LEASE_MS, TRAFFIC, announced_once_in_order, members, on_node,
    rooms_with_callers, shared, simulators,
};
use crate::common::redis_server::RedisServer;
use crate::common::serve::{Api, until};
use crate::webhook_support::Receiver;

/// The instances a load balancer sends to, in turn.
#[derive(Clone, Default)]
struct Balancer {
    apis: Arc<Mutex<Vec<Api>>>,
    next: Arc<std::sync::atomic::AtomicUsize>,
    /// Answers other than 202, by status (0: the connection was refused or cut), and the 503s
    /// without `Retry-After`.
    refused: Arc<Mutex<BTreeMap<u16, usize>>>,
    no_retry_after: Arc<std::sync::atomic::AtomicUsize>,
}

impl Balancer {
    fn set(&self, apis: Vec<Api>) {
        *self.apis.lock().unwrap() = apis;
    }

    /// One POST of `body` through the next instance; a request that got no answer goes to
    /// the other one, as a load balancer retries it (safe: every command carries its
    /// `command_uid`, so one that did take effect is answered as before). The final status.
    async fn post(&self, path: &str, body: &str) -> u16 {
        let apis = self.apis.lock().unwrap().clone();
        let first = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for k in 0..apis.len() {
            let api = &apis[(first + k) % apis.len()];
            let sent = api
                .http
                .post(format!("{}{path}", api.base))
                .header("X-App-ID", &api.app)
                .header("X-API-Key", &api.key)
                .header("Content-Type", "application/json")
                .body(body.to_owned())
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            let r = match sent {
                Ok(r) => r,
                Err(e) => {
                    // 0: no connection (a stopped instance); 1: no answer on one.
                    let kind = if e.is_connect() { 0 } else { 1 };
                    *self.refused.lock().unwrap().entry(kind).or_default() += 1;
                    continue;
                }
            };
            let status = r.status().as_u16();
            if status != 202 {
                if status == 503 && r.headers().get("retry-after").is_none() {
                    self.no_retry_after
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let text = r.text().await.unwrap_or_default();
                println!("refused: {status} {path}: {text}");
                *self.refused.lock().unwrap().entry(status).or_default() += 1;
            }
            return status;
        }
        0
    }
}

/// Mutes and unmutes `session` in turn through the balancer until `stop`, recording each
/// command answered 202. A 503 is retried after a moment (its `Retry-After` is a second; the
/// test retries sooner, as a client with other instances may).
async fn toggle(lb: Balancer, session: String, acked: Acked, stop: CancellationToken) {
    let mut mute = false;
    let mut n = 0;
    while !stop.is_cancelled() {
        let verb = if mute { "mute" } else { "unmute" };
        let path = format!("/api/v1/sessions/{session}/commands/conference/{verb}");
        let body = json!({ "command_uid": format!("upgrade-{n}") }).to_string();
        if lb.post(&path, &body).await == 202 {
            n += 1;
            acked
                .lock()
                .unwrap()
                .entry(session.clone())
                .or_default()
                .push(mute);
            mute = !mute;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn answered(acked: &Acked) -> usize {
    acked.lock().unwrap().values().map(Vec::len).sum()
}

async fn more(acked: &Acked, n: usize) {
    let from = answered(acked);
    until(Duration::from_secs(30), "the traffic goes on", || async {
        (answered(acked) >= from + n).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_under_traffic_loses_no_webhook_and_reverts_no_state() {
    let _alone = TRAFFIC.lock().await;
    let redis = RedisServer::start();
    let url = redis.url();
    let sims = simulators().await;
    let dir = std::env::temp_dir().join(format!("switchyard-upgrade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let receiver = Receiver::ok().await;
    let hook = receiver.url();
    let mut a = Instance::start(0, &dir, &url, &sims, &hook).await;
    let mut b = Instance::start(1, &dir, &url, &sims, &hook).await;
    let settle = Duration::from_millis(LEASE_MS * 4);
    shared(&[&a, &b], settle, "two instances share the four nodes").await;
    let (sessions, rooms) = rooms_with_callers(&a.api, &sims).await;

    let lb = Balancer::default();
    lb.set(vec![a.api.clone(), b.api.clone()]);
    let acked: Acked = Default::default();
    let stop = CancellationToken::new();
    let tasks: Vec<_> = sessions
        .iter()
        .map(|s| tokio::spawn(toggle(lb.clone(), s.clone(), acked.clone(), stop.clone())))
        .collect();
    more(&acked, 40).await;

    // Each instance in turn: SIGTERM (it finishes what it has in flight and hands its nodes
    // over), then the new one in its place, taken into the balancer once ready.
    for n in [1, 0] {
        let old = if n == 1 { &mut b } else { &mut a };
        old.serve.terminate();
        let fresh = Instance::start(n, &dir, &url, &sims, &hook).await;
        *old = fresh;
        lb.set(vec![a.api.clone(), b.api.clone()]);
        shared(&[&a, &b], settle, "the new instance takes its share").await;
        more(&acked, 40).await;
    }
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let refused = lb.refused.lock().unwrap().clone();
    let total: usize = acked.values().map(Vec::len).sum();
    println!("rolling upgrade: {total} commands answered 202; refused by status: {refused:?}");

    // Only retriable refusals, each with Retry-After; connections a stopping instance did not
    // take (0) or answer (1) went to the other one, with the same command_uid. Never a 409
    // "already muted/unmuted": before `Member::asks`, the commands accepted while the node's
    // reports waited for its new owner were settled by the first report of the same value,
    // and the next report showed the member as before the last command (1 to 3 in about 1,300
    // commands with the machine loaded by a soak).
    let other: Vec<_> = refused
        .keys()
        .filter(|s| ![0, 1, 503].contains(*s))
        .collect();
    assert!(other.is_empty(), "refusals other than 503: {refused:?}");
    assert_eq!(
        lb.no_retry_after.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a 503 without Retry-After"
    );
    // No state reverted: each member is as its last answered command left it, in the store
    // and on the node.
    for room in &rooms {
        let as_asked = |shown: &BTreeMap<String, bool>| {
            shown.iter().all(|(session, muted)| {
                acked
                    .get(session)
                    .and_then(|c| c.last())
                    .is_none_or(|last| last == muted)
            })
        };
        let shown = until(Duration::from_secs(10), "members as last asked", || async {
            let shown = members(&a.api, room).await;
            (as_asked(&shown) && shown == on_node(&sims, room)).then_some(shown)
        })
        .await;
        assert_eq!(shown.len(), 2, "{room}: {shown:?}");
    }
    // No webhook lost, none twice, in order.
    announced_once_in_order(&receiver, &acked, &rooms, 0.0).await;
    let _ = std::fs::remove_dir_all(&dir);
}
