//! Issue 57: the webhook leader paused past its lease (SIGSTOP for three times its lease), then
//! resumed (SIGCONT), under a steady stream of mutes and unmutes. Two `serve` instances on one
//! Redis, each sending app1's webhooks to a receiver of its own, so who delivered what is seen
//! at the receivers. The other instance takes the lease over once it runs out and delivers from
//! the position the store holds; the woken one finds its lease lapsed before it sends or writes
//! anything, and stands by. Checked: every command answered 202 is announced, in order, once;
//! no `seq` stands for two webhooks; each room's first deliveries come in `seq` order; the
//! position (its own key and the one the delivery log carries) never moves back; and nothing
//! the woken instance started after SIGCONT reaches its receiver. (A request it had started
//! before the pause, its bytes not yet out, goes out as it runs again: at most one per room,
//! the message it had in flight. Only the receiver could refuse that one; it carries the same
//! `webhook-id` as the other instance's delivery of it.) Before the webhook lease was fenced,
//! the woken leader wrote its old position to `sy:{app}:wh:pos` within milliseconds of
//! SIGCONT, and went on delivering what followed its messages in flight, long since delivered
//! by the other instance.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::nodes::{
    Instance, LEASE_MS, LogsOnFailure, TRAFFIC, Traffic, rooms_with_callers, shared, simulators,
};
use crate::common::redis_server::RedisServer;
use crate::common::serve::until;
use crate::webhook_support::{Received, Receiver};
use switchyard::conference::AppId;
use switchyard::store::{Position, keys};

/// The webhook lease's time to live in the test (`[webhooks] lease_ms` in `nodes.rs`).
const WEBHOOK_LEASE: Duration = Duration::from_millis(1000);

/// What the watcher read from Redis at one moment.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    /// `sy:{app1}:wh:pos`.
    key: Option<String>,
    /// The position the newest delivery log entry that carries one holds.
    logged: Option<String>,
    /// Who holds `sy:{app1}:lease:webhooks`.
    holder: Option<String>,
}

/// A delivery log entry as `XREVRANGE` answers: its id and its fields and values in turn.
type LogEntry = (String, Vec<String>);

/// Reads the position's key, the logged position and the lease holder every 2 ms (one
/// pipelined round trip each time) until `stop`.
fn watch(url: &str, stop: CancellationToken) -> Arc<Mutex<Vec<Sample>>> {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let kept = samples.clone();
    let client = redis::Client::open(url).unwrap();
    let app = AppId::parse("app1").unwrap();
    tokio::spawn(async move {
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        while !stop.is_cancelled() {
            let (key, holder, log): (Option<String>, Option<String>, Vec<LogEntry>) = redis::pipe()
                .get(keys::webhook_position(&app))
                .get(keys::lease(&app, "webhooks"))
                .cmd("XREVRANGE")
                .arg(keys::webhook_log(&app))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(64)
                .query_async(&mut conn)
                .await
                .unwrap();
            let logged = log.iter().find_map(|(_, fields)| {
                let i = fields.iter().step_by(2).position(|f| f == "position")?;
                fields.get(2 * i + 1).cloned()
            });
            kept.lock().unwrap().push(Sample {
                at: Instant::now(),
                key,
                logged,
                holder,
            });
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    samples
}

/// The moments a position read went back from the furthest read before it: (when, from, to).
fn backwards(
    samples: &[Sample],
    read: impl Fn(&Sample) -> Option<&String>,
) -> Vec<(Instant, String, String)> {
    let mut furthest: Option<Position> = None;
    let mut back = Vec::new();
    for s in samples {
        let Some(p) = read(s).and_then(|p| Position::parse(p)) else {
            continue;
        };
        match &furthest {
            Some(f) if f.max(&p) == *f && *f != p => {
                back.push((s.at, read(s).cloned().unwrap_or_default(), f.to_string()));
            }
            _ => furthest = Some(p),
        }
    }
    back
}

/// Sends `signal` (`STOP`, `CONT`) to the process `pid`.
fn signal(pid: u32, signal: &str) {
    let pid = pid.to_string();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), pid.as_str()])
        .status();
    assert!(sent.is_ok_and(|s| s.success()), "SIG{signal} to {pid}");
}

/// The mutes and unmutes announced per session of `sessions` (each message once, by its id),
/// in each room's `seq` order.
fn announced(delivered: &[Received], sessions: &BTreeSet<String>) -> BTreeMap<String, Vec<bool>> {
    let mut seen = BTreeSet::new();
    let mut ordered: Vec<&Received> = delivered
        .iter()
        .filter(|r| seen.insert(r.id().to_owned()))
        .collect();
    ordered.sort_by_key(|r| (r.room().to_owned(), r.seq()));
    let mut by_session: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for r in ordered {
        let muted = match r.json["type"].as_str() {
            Some("conference.member.muted") => true,
            Some("conference.member.unmuted") => false,
            _ => continue,
        };
        let session = r.json["data"]["uuid"].as_str().unwrap_or_default();
        if sessions.contains(session) {
            by_session
                .entry(session.to_owned())
                .or_default()
                .push(muted);
        }
    }
    by_session
}

/// What reached the paused instance's receiver after SIGCONT: only requests it had started
/// before it was stopped (checked its hold and handed to its HTTP client, their bytes not yet
/// out), which go out as it runs again; nothing it started after. Such a request is its room's
/// message right after the last one that receiver got before the pause (a room has one in
/// progress), at most one per room, and arrives at once. Their count.
fn started_before_the_pause(
    delivered: &[Received],
    paused: &Receiver,
    stopped: Instant,
    resumed: Instant,
) -> usize {
    let mine = paused.delivered();
    let late: Vec<&Received> = mine.iter().filter(|r| r.at > resumed).collect();
    let mut rooms = BTreeSet::new();
    for r in &late {
        let room = r.room();
        let after_resume = (r.at - resumed).as_millis();
        let shown = format!("{room} seq {} +{after_resume} ms after SIGCONT", r.seq());
        assert!(
            rooms.insert(room),
            "two deliveries after SIGCONT in {shown}"
        );
        assert!(after_resume < 1000, "delivered long after SIGCONT: {shown}");
        let last_before = mine
            .iter()
            .filter(|d| d.room() == room && d.at < stopped)
            .map(Received::seq)
            .max();
        let next = delivered
            .iter()
            .filter(|d| d.room() == room && last_before.is_none_or(|l| d.seq() > l))
            .map(Received::seq)
            .min();
        assert_eq!(
            next,
            Some(r.seq()),
            "not the message in flight at the pause: {shown}, after seq {last_before:?}"
        );
    }
    late.len()
}

/// Both receivers' 2xx-answered requests, in the order they arrived.
fn all_delivered(receivers: &[&Receiver]) -> Vec<Received> {
    let mut all: Vec<Received> = receivers.iter().flat_map(|r| r.delivered()).collect();
    all.sort_by_key(|r| r.at);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_leader_paused_past_its_lease_delivers_and_writes_nothing_when_resumed() {
    let _alone = TRAFFIC.lock().await;
    let redis = RedisServer::start();
    let url = redis.url();
    let sims = simulators().await;
    let dir = std::env::temp_dir().join(format!("switchyard-paused-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _logs = LogsOnFailure(dir.clone());
    let receivers = [Receiver::ok().await, Receiver::ok().await];
    let instances = [
        Instance::start(0, &dir, &url, &sims, &receivers[0].url()).await,
        Instance::start(1, &dir, &url, &sims, &receivers[1].url()).await,
    ];
    let settle = Duration::from_millis(LEASE_MS * 4);
    shared(
        &[&instances[0], &instances[1]],
        settle,
        "two instances share the four nodes",
    )
    .await;
    let (sessions, rooms) = rooms_with_callers(&instances[0].api, &sims).await;

    // The leader is the instance whose receiver the rooms' webhooks reach.
    let leader = until(Duration::from_secs(10), "a webhook delivered", || async {
        let last = all_delivered(&[&receivers[0], &receivers[1]]).pop()?;
        receivers
            .iter()
            .position(|r| r.delivered().iter().any(|d| d.at == last.at))
    })
    .await;
    let other = 1 - leader;
    // The traffic goes to the nodes the other instance applies, through it: the paused
    // instance's nodes are another subject (the node owner paused).
    let nodes = instances[other].applies().await.unwrap();
    let on_its_nodes = |id: &String| nodes.iter().any(|n| id.starts_with(n.as_str()));
    let busy: Vec<String> = sessions
        .iter()
        .filter(|s| on_its_nodes(s))
        .cloned()
        .collect();
    let busy_rooms: BTreeSet<String> = rooms.iter().filter(|r| on_its_nodes(r)).cloned().collect();
    assert!(!busy.is_empty(), "no callers on {nodes:?}");
    let stop_watching = CancellationToken::new();
    let samples = watch(&url, stop_watching.clone());
    let traffic = Traffic::start(&instances[other].api, &busy);
    traffic.more(60).await;
    let holder_before = samples
        .lock()
        .unwrap()
        .last()
        .and_then(|s| s.holder.clone());

    // Paused for three times its lease, then resumed.
    let pid = instances[leader].serve.pid();
    let stopped = Instant::now();
    signal(pid, "STOP");
    tokio::time::sleep(WEBHOOK_LEASE * 3).await;
    let resumed = Instant::now();
    signal(pid, "CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    traffic.more(60).await;
    let acked = traffic.finish().await;

    // Every command answered 202 announced, in order, once (by either instance).
    let wanted: BTreeSet<String> = acked.keys().cloned().collect();
    let both = [&receivers[0], &receivers[1]];
    let delivered = until(
        Duration::from_secs(30),
        "every answered command announced",
        || {
            let delivered = all_delivered(&both);
            let got = announced(&delivered, &wanted);
            std::future::ready((got == acked).then_some(delivered))
        },
    )
    .await;
    stop_watching.cancel();
    let samples = samples.lock().unwrap().clone();

    // No room's seq stands for two webhooks; each room's first deliveries come in seq order.
    let mut ids_by_seq: BTreeMap<(String, u64), BTreeSet<String>> = BTreeMap::new();
    let mut first_seq: HashMap<String, u64> = HashMap::new();
    let mut seen = BTreeSet::new();
    let mut out_of_order = Vec::new();
    for r in &delivered {
        ids_by_seq
            .entry((r.room().to_owned(), r.seq()))
            .or_default()
            .insert(r.id().to_owned());
        if seen.insert(r.id().to_owned()) {
            let last = first_seq.insert(r.room().to_owned(), r.seq());
            if last.is_some_and(|last| last >= r.seq()) {
                out_of_order.push((r.room().to_owned(), last, r.seq()));
            }
        }
    }
    let reused: Vec<_> = ids_by_seq.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(reused.is_empty(), "a seq used twice: {reused:?}");
    assert!(
        out_of_order.is_empty(),
        "first deliveries out of order: {out_of_order:?}"
    );

    // The woken instance never led again, and sent nothing after SIGCONT.
    let paused_holder = holder_before.expect("a lease holder before the pause");
    let led_again = samples
        .iter()
        .any(|s| s.at > resumed && s.holder.as_ref() == Some(&paused_holder));
    assert!(
        !led_again,
        "the paused instance took the lease again: the test cannot tell"
    );
    let in_flight = started_before_the_pause(&delivered, &receivers[leader], stopped, resumed);
    // The position never moved back, in its key or in the delivery log.
    let after = |at: Instant| at.saturating_duration_since(resumed).as_millis();
    for (what, back) in [
        ("its key", backwards(&samples, |s| s.key.as_ref())),
        (
            "the delivery log",
            backwards(&samples, |s| s.logged.as_ref()),
        ),
    ] {
        let shown: Vec<_> = back
            .iter()
            .map(|(at, to, from)| format!("+{} ms after SIGCONT: {from} -> {to}", after(*at)))
            .collect();
        assert!(
            shown.is_empty(),
            "the position moved back in {what}: {shown:#?}"
        );
    }

    // What the pause cost (docs/operations.md): how long webhooks stopped, and when the other
    // instance delivered its first.
    let firsts: Vec<Instant> = {
        let mut seen = BTreeSet::new();
        delivered
            .iter()
            .filter(|r| seen.insert(r.id().to_owned()))
            .map(|r| r.at)
            .filter(|at| *at + Duration::from_secs(1) > stopped && *at < resumed)
            .collect()
    };
    let gap = firsts
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let took_over = receivers[other]
        .delivered()
        .iter()
        .map(|r| r.at)
        .find(|at| *at > stopped)
        .map(|at| (at - stopped).as_millis());
    let redelivered = delivered.len() - seen.len();
    println!(
        "paused webhook leader (lease {} ms, paused {} ms): no webhook for {} ms; the other \
         instance's first after {took_over:?} ms; {redelivered} sent twice, {in_flight} of \
         them started before the pause and sent after it; {} rooms busy",
        WEBHOOK_LEASE.as_millis(),
        (resumed - stopped).as_millis(),
        gap.as_millis(),
        busy_rooms.len(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
