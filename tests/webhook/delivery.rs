//! The webhook dispatcher against a real HTTP receiver on a local port (memory store): signed
//! envelopes, retries with one webhook-id, Retry-After, dead letters, per-room order, a receiver
//! that comes back, and the address policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::webhook_support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use switchyard::conference::EventKind;
use switchyard::store::Deliveries;
use switchyard::store::Store;
use switchyard::store::memory::MemoryStore;
use switchyard::webhook::sign::{Secret, Signer, verify};
use switchyard::webhook::{DispatcherConfig, spawn};
use webhook_support::*;

const WITHIN: Duration = Duration::from_secs(10);

fn start(store: &Arc<MemoryStore>, config: DispatcherConfig) -> CancellationToken {
    let stop = CancellationToken::new();
    spawn(store.clone(), config, stop.clone()).unwrap();
    stop
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn events_arrive_signed_in_the_documented_envelope() {
    let store = Arc::new(MemoryStore::new());
    let receiver = Receiver::ok().await;
    let mut a = TestRoom::create(&*store, "a").await;
    a.emit(&*store, EventKind::MemberMuted, json!({"member_id": "7"}))
        .await;
    let b = TestRoom::create(&*store, "b").await;
    // Two active secrets, as during a rotation.
    let next = Secret::generate();
    let mut config = config(&receiver.url(), 3);
    config.signer = Signer::parse(&format!("{next} {}", secret())).unwrap();
    let _stop = start(&store, config);

    let got = receiver.wait_delivered(3, WITHIN).await;
    assert_eq!(got.len(), 3);
    let outbox = store.outbox(&app(), None, 10).await.unwrap();
    assert_eq!(outbox.len(), 3);
    for r in &got {
        let row = outbox
            .iter()
            .find(|row| r.id() == format!("msg_{}", row.id))
            .expect("an outbox entry");
        let (outbox_id, event) = (&row.id, &row.event);
        // A receiver using the scheme's reference library (the `standardwebhooks` crate) accepts
        // the message with either secret.
        for s in [secret(), next.clone()] {
            let wh = standardwebhooks::Webhook::new(&s).unwrap();
            wh.verify(&r.body, &r.headers).expect("valid signature");
        }
        let header = |n: &str| r.headers.get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), "application/json");
        verify(
            &[Secret::parse(&secret()).unwrap()],
            &header("webhook-id"),
            &header("webhook-timestamp"),
            &header("webhook-signature"),
            &r.body,
            unix_now(),
        )
        .unwrap();
        // The envelope, field by field.
        let keys: Vec<&str> = r
            .json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "type",
                "timestamp",
                "app_id",
                "room_id",
                "seq",
                "data"
            ]
        );
        assert_eq!(r.json["id"], header("webhook-id"));
        assert_eq!(r.json["id"], format!("msg_{outbox_id}"));
        assert_eq!(r.json["type"], event.kind.as_str());
        assert_eq!(r.json["app_id"], "hook-app");
        assert_eq!(r.json["room_id"], event.room.as_str());
        assert_eq!(r.json["seq"], event.seq);
        assert_eq!(r.json["data"], event.data);
        assert_eq!(
            r.json["timestamp"],
            switchyard::api::extract::iso8601(event.at)
        );
        assert!(
            r.json["timestamp"]
                .as_str()
                .unwrap()
                .starts_with("2026-05-06T12:3")
        );
    }
    assert_eq!(seqs_of(&got, a.id()), [a.room.seq - 1, a.room.seq]);
    assert_eq!(seqs_of(&got, b.id()), [b.room.seq]);
    // Everything settled: the position is the last entry, nothing is recorded ahead of it.
    let last = outbox.last().unwrap().position.clone();
    wait_for(WITHIN, || {
        futures_now(store.outbox_position(&app())) == Some(last.clone())
    })
    .await;
    assert!(store.outbox_acked(&app()).await.unwrap().is_empty());
}

/// The value of a store future that completes at once (the memory store never waits).
fn futures_now<T>(
    f: impl std::future::Future<Output = Result<T, switchyard::store::StoreError>>,
) -> T {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v.unwrap(),
        std::task::Poll::Pending => panic!("the memory store waited"),
    }
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_message_three_times_with_one_id() {
    let store = Arc::new(MemoryStore::new());
    let receiver = Receiver::start(any_port(), |_, earlier| {
        if earlier < 2 {
            (500, None)
        } else {
            (200, None)
        }
    })
    .await;
    TestRoom::create(&*store, "flaky").await;
    let _stop = start(&store, config(&receiver.url(), 5));
    receiver.wait_delivered(1, WITHIN).await;
    let all = receiver.requests();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|r| r.id() == all[0].id()));
    assert!(all.iter().all(|r| r.body == all[0].body));
    assert_eq!(
        all.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    for r in &all {
        standardwebhooks::Webhook::new(&secret())
            .unwrap()
            .verify(&r.body, &r.headers)
            .unwrap();
    }
    assert!(store.dead_letters(&app(), 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let store = Arc::new(MemoryStore::new());
    let receiver = Receiver::start(any_port(), |_, earlier| {
        if earlier == 0 {
            (429, Some("1"))
        } else {
            (200, None)
        }
    })
    .await;
    TestRoom::create(&*store, "busy").await;
    let _stop = start(&store, config(&receiver.url(), 3));
    receiver.wait_delivered(1, WITHIN).await;
    let all = receiver.requests();
    assert_eq!(all.len(), 2);
    let gap = all[1].at - all[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
}

#[tokio::test]
async fn refusals_and_exhausted_retries_are_dead_lettered_without_blocking_other_rooms() {
    let store = Arc::new(MemoryStore::new());
    let mut refused = TestRoom::create(&*store, "refused").await;
    let mut failing = TestRoom::create(&*store, "failing").await;
    let mut fine = TestRoom::create(&*store, "fine").await;
    let (refused_id, failing_id) = (refused.id().to_owned(), failing.id().to_owned());
    let receiver = Receiver::start(any_port(), move |body, _| {
        let room = body["room_id"].as_str().unwrap_or("");
        let created = body["type"] == "conference.created";
        match room {
            r if r == refused_id && created => (400, None),
            r if r == failing_id && created => (503, None),
            _ => (200, None),
        }
    })
    .await;
    for room in [&mut refused, &mut failing, &mut fine] {
        room.emit(&*store, EventKind::Progressing, json!({})).await;
    }
    let mut config = config(&receiver.url(), 2);
    config.retry.delays = vec![Duration::from_millis(300), Duration::from_millis(300)];
    let _stop = start(&store, config);

    // The fine room is done while the failing one still waits for its retries.
    receiver.wait_delivered(3, WITHIN).await;
    let early = receiver.delivered();
    assert_eq!(seqs_of(&early, fine.id()).len(), 2);
    assert!(seqs_of(&early, failing.id()).is_empty());

    // Then everything: each room's second event after its first was given up on.
    let got = receiver.wait_delivered(4, WITHIN).await;
    assert_eq!(seqs_of(&got, refused.id()), [refused.room.seq]);
    assert_eq!(seqs_of(&got, failing.id()), [failing.room.seq]);
    let letters = store.dead_letters(&app(), 10).await.unwrap();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].event.room, refused.room.id);
    assert_eq!((letters[0].attempts, letters[0].status), (1, Some(400)));
    assert_eq!(letters[1].event.room, failing.room.id);
    assert_eq!((letters[1].attempts, letters[1].status), (3, Some(503)));
    let tries = |room: &str| {
        receiver
            .requests()
            .iter()
            .filter(|r| r.room() == room && r.json["type"] == "conference.created")
            .count()
    };
    assert_eq!(tries(refused.id()), 1);
    assert_eq!(tries(failing.id()), 3);
    let last = store
        .outbox(&app(), None, 100)
        .await
        .unwrap()
        .last()
        .unwrap()
        .position
        .clone();
    wait_for(WITHIN, || {
        futures_now(store.outbox_position(&app())) == Some(last.clone())
    })
    .await;
}

#[tokio::test]
async fn a_receiver_that_was_down_gets_everything_in_room_order() {
    let store = Arc::new(MemoryStore::new());
    let addr = free_addr();
    let mut config = config(&format!("http://{addr}/hook"), 40);
    config.retry.delays = vec![Duration::from_millis(50); 40];
    let _stop = start(&store, config);
    let mut rooms = Vec::new();
    for i in 0..3 {
        let mut room = TestRoom::create(&*store, &format!("room{i}")).await;
        for _ in 0..4 {
            room.emit(&*store, EventKind::MemberJoined, json!({})).await;
        }
        rooms.push(room);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let receiver = Receiver::start(addr, |_, _| (200, None)).await;
    let got = receiver.wait_delivered(15, WITHIN).await;
    assert_eq!(got.len(), 15);
    for room in &rooms {
        let first = room.room.seq - 4;
        assert_eq!(
            seqs_of(&got, room.id()),
            (first..=room.room.seq).collect::<Vec<_>>()
        );
    }
    assert!(store.dead_letters(&app(), 10).await.unwrap().is_empty());
}

/// Many rooms at once: verdicts that arrive together are recorded together, and still every
/// message arrives once, each room in order, every delivery is logged, and the position reaches
/// the end with nothing recorded ahead of it.
#[tokio::test]
async fn many_rooms_at_once_are_delivered_logged_and_settled() {
    let store = Arc::new(MemoryStore::new());
    let receiver = Receiver::ok().await;
    let mut rooms = Vec::new();
    for i in 0..40 {
        let mut room = TestRoom::create(&*store, &format!("busy{i}")).await;
        for _ in 0..4 {
            room.emit(&*store, EventKind::MemberJoined, json!({})).await;
        }
        rooms.push(room);
    }
    let _stop = start(&store, config(&receiver.url(), 3));

    let got = receiver.wait_delivered(200, WITHIN).await;
    assert_eq!(got.len(), 200);
    let mut ids: Vec<&str> = got.iter().map(|r| r.id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "a message arrived twice");
    for room in &rooms {
        let first = room.room.seq - 4;
        assert_eq!(
            seqs_of(&got, room.id()),
            (first..=room.room.seq).collect::<Vec<_>>()
        );
    }
    let last = store.outbox(&app(), None, 1000).await.unwrap()[199]
        .position
        .clone();
    wait_for(WITHIN, || {
        futures_now(store.outbox_position(&app())) == Some(last.clone())
    })
    .await;
    assert!(store.outbox_acked(&app()).await.unwrap().is_empty());
    let log = store.delivery_log(&app(), None, 1000).await.unwrap();
    assert_eq!(log.len(), 200);
    assert!(
        log.iter()
            .all(|(_, a)| a.outcome == "delivered" && a.attempt == 1 && a.status == Some(200))
    );
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let receiver = Receiver::ok().await;
    let port = receiver.addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
    ] {
        let store = Arc::new(MemoryStore::new());
        TestRoom::create(&*store, "private").await;
        let mut refused = config(&url, 3);
        refused.allow_private = false;
        let stop = start(&store, refused);
        wait_for(WITHIN, || {
            !futures_now(store.dead_letters(&app(), 10)).is_empty()
        })
        .await;
        stop.cancel();
        let letter = &store.dead_letters(&app(), 10).await.unwrap()[0];
        assert_eq!(letter.attempts, 1, "{url}: {letter:?}");
        assert!(
            letter.last_error.contains("private"),
            "{}",
            letter.last_error
        );
        assert!(receiver.requests().is_empty(), "{url} was reached");
    }
    let store = Arc::new(MemoryStore::new());
    TestRoom::create(&*store, "allowed").await;
    let _stop = start(&store, config(&receiver.url(), 3));
    receiver.wait_delivered(1, WITHIN).await;
}
