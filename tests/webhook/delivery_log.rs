//! The delivery log read as an application reads it (issue 60 item 3): filtered by outcome, room
//! and type, paged with the cursor, every old dead letter reached and sent again; a filtered page
//! reads a bounded stretch of the log, and paging on from it loses nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::webhook_support;

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::{AppId, EventKind, RoomId};
use switchyard::store::memory::MemoryStore;
use switchyard::store::{Deliveries, DeliveryAttempt};
use switchyard::webhook::sign::Signer;

use common::api::{A, B, TestLab, assert_error, eventually, options};
use webhook_support::{Receiver, RoomNames, any_port, secret};

const LOG: &str = "/api/v1/webhooks/deliveries";

/// Every page of the log under `query` (`""`: every attempt), `limit` at a time, newest first:
/// the attempts and the pages it took. Each page is a 200 of at most `limit` attempts.
async fn walk(
    t: &TestLab<MemoryStore>,
    app: (&str, &str),
    query: &str,
    limit: usize,
) -> (Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut cursor = String::new();
    for pages in 1.. {
        let path = format!("{LOG}?limit={limit}&cursor={cursor}&{query}");
        let r = t.get(&path, app).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {r:?}");
        let page = r.body["deliveries"].as_array().unwrap();
        assert!(page.len() <= limit, "{path}: {} rows", page.len());
        rows.extend(page.iter().cloned());
        cursor = r.body["cursor"].as_str().unwrap().to_owned();
        if cursor.is_empty() {
            return (rows, pages);
        }
        assert!(pages < 1_000, "{query}: the cursor never ends");
    }
    unreachable!()
}

/// What identifies one row of the log.
fn key(row: &Value) -> (String, u64, String) {
    (
        row["id"].as_str().unwrap().to_owned(),
        row["attempt"].as_u64().unwrap(),
        row["at"].as_str().unwrap().to_owned(),
    )
}

/// 48 rooms make 96 attempts (each room's `conference.created` and `conference.progressing`);
/// the receiver refuses five of them for good (400). The one refused 16th from the oldest sits
/// about 81st of 96, newest first: far past the 50 the dashboard showed, with no row and no
/// Retry. The filter finds it, paging finds it, both walks agree with the whole log, and it is
/// sent again from its id.
#[tokio::test]
async fn an_old_dead_letter_is_reached_by_its_filter_and_by_paging_and_sent_again() {
    // (room number, type) refused on the first attempt; r07's progressing is the old one.
    const REFUSED: [(usize, &str); 5] = [
        (1, "conference.created"),
        (7, "conference.progressing"),
        (20, "conference.created"),
        (33, "conference.progressing"),
        (45, "conference.created"),
    ];
    let names = RoomNames::default();
    let receiver = Receiver::start(any_port(), move |json, earlier| {
        let name = names.of(json);
        let kind = json["type"].as_str().unwrap_or_default();
        let refused = REFUSED
            .iter()
            .any(|(n, k)| name == format!("r{n:02}") && kind == *k);
        match refused && earlier == 0 {
            true => (400, None),
            false => (200, None),
        }
    })
    .await;
    let mut opts = options();
    opts.webhook = Some((receiver.url(), Signer::parse(&secret()).unwrap()));
    let t = TestLab::start(MemoryStore::new(), opts).await;
    let mut rooms = Vec::new();
    for n in 0..48 {
        rooms.push(t.room(A, &format!("r{n:02}")).await);
    }
    eventually("96 attempts logged", || async {
        t.store()
            .delivery_log(&AppId::parse(A.0).unwrap(), None, 1_000)
            .await
            .unwrap()
            .len()
            >= 96
    })
    .await;

    // The whole log, by pages of 10: 96 attempts, none twice.
    let (all, _) = walk(&t, A, "", 10).await;
    assert_eq!(all.len(), 96, "{all:#?}");
    assert_eq!(all.iter().map(key).collect::<HashSet<_>>().len(), 96);
    let old = all
        .iter()
        .position(|d| d["room_id"] == rooms[7].as_str() && d["type"] == "conference.progressing")
        .unwrap();
    assert_eq!(all[old]["outcome"], "dead_letter");
    assert!(
        old >= 50,
        "the old dead letter is at {}, on the first page",
        old + 1
    );
    println!(
        "the old dead letter is at {} of {}, newest first",
        old + 1,
        all.len()
    );
    let id = all[old]["id"].as_str().unwrap().to_owned();

    // Dead letters only, two a page: the same rows, in the same order, as the whole log has.
    let dead: Vec<Value> = all
        .iter()
        .filter(|d| d["outcome"] == "dead_letter")
        .cloned()
        .collect();
    assert_eq!(dead.len(), REFUSED.len());
    let (filtered, pages) = walk(&t, A, "outcome=dead_letter", 2).await;
    assert_eq!(filtered, dead);
    assert!(pages >= 3, "{pages} pages");
    // The first page of the filter, as the dashboard asks for it, holds every dead letter.
    let first = t.get(&format!("{LOG}?outcome=dead_letter"), A).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(first.body["deliveries"], json!(dead));
    assert_eq!(first.body["cursor"], "");

    // Every filter, alone and together (AND), walks to what the whole log holds.
    let room = &rooms[7];
    for (query, wanted) in [
        (
            "outcome=delivered".to_owned(),
            Box::new(|d: &Value| d["outcome"] == "delivered") as Box<dyn Fn(&Value) -> bool>,
        ),
        (
            "type=conference.progressing".to_owned(),
            Box::new(|d: &Value| d["type"] == "conference.progressing"),
        ),
        (
            format!("room_id={room}"),
            Box::new(|d: &Value| d["room_id"] == room.as_str()),
        ),
        (
            "outcome=dead_letter&type=conference.created".to_owned(),
            Box::new(|d: &Value| {
                d["outcome"] == "dead_letter" && d["type"] == "conference.created"
            }),
        ),
        (
            format!("outcome=dead_letter&room_id={room}&type=conference.progressing"),
            Box::new(|d: &Value| d["id"] == id.as_str()),
        ),
        (
            format!("outcome=delivered&room_id={room}&type=conference.progressing"),
            Box::new(|_: &Value| false),
        ),
        ("outcome=retry".to_owned(), Box::new(|_: &Value| false)),
    ] {
        let expected: Vec<Value> = all.iter().filter(|d| wanted(d)).cloned().collect();
        for limit in [1, 7, 50] {
            let (got, _) = walk(&t, A, &query, limit).await;
            assert_eq!(got, expected, "{query}, {limit} a page");
        }
    }

    // Another app sees none of it, filtered or not.
    for query in [
        "outcome=dead_letter".to_owned(),
        format!("room_id={room}"),
        "type=conference.created".to_owned(),
    ] {
        assert_eq!(
            walk(&t, B, &query, 50).await.0,
            Vec::<Value>::new(),
            "{query}"
        );
    }
    let retry = format!("{LOG}/{id}/retry");
    assert_error(&t.post(&retry, B, json!({})).await, StatusCode::NOT_FOUND);

    // Sent again from its id, it is delivered, and the log says so under the same filter.
    let r = t.post(&retry, A, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("delivered this time", || async {
        receiver.delivered().iter().any(|d| d.id() == id)
    })
    .await;
    let delivered = format!("outcome=delivered&room_id={room}&type=conference.progressing");
    eventually("the delivery is logged", || async {
        walk(&t, A, &delivered, 50)
            .await
            .0
            .iter()
            .any(|d| d["id"] == id.as_str())
    })
    .await;
    assert_error(&t.post(&retry, A, json!({})).await, StatusCode::CONFLICT);
}

/// A filter value the log does not know is refused, as any bad query is: 400 "Invalid query"
/// saying what is expected. So is an empty one (a filter by nothing is no filter: leave it out).
#[tokio::test]
async fn an_unknown_filter_value_is_a_400() {
    let t = TestLab::start(MemoryStore::new(), options()).await;
    for (query, says) in [
        ("outcome=dead", "dead_letter"),
        ("outcome=DEAD_LETTER", "dead_letter"),
        ("outcome=", "dead_letter"),
        ("type=conference.exploded", "conference.created"),
        ("type=", "conference.created"),
        ("room_id=nope", "room_id"),
        ("room_id=", "room_id"),
        ("outcome=delivered&outcome=retry", "outcome"),
    ] {
        let r = t.get(&format!("{LOG}?{query}"), A).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["error"], "Invalid query", "{query}: {r:?}");
        let reason = r.body["detail"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(says), "{query}: {reason}");
    }
}

/// One attempt of `message` for the log.
fn attempt(room: &RoomId, message: usize, outcome: &str) -> DeliveryAttempt {
    DeliveryAttempt {
        message_id: format!("msg_{message}-0"),
        kind: EventKind::MemberJoined,
        room: room.clone(),
        seq: message as u64,
        attempt: 1,
        outcome: outcome.into(),
        status: Some(if outcome == "delivered" { 200 } else { 400 }),
        error: None,
        at: message as i64,
        duration_ms: 1,
    }
}

/// A filtered page reads at most a bounded stretch of the log
/// ([`switchyard::webhook::delivery_log::SCANNED_PER_PAGE`] attempts): past it, the page ends
/// short (here empty) with a cursor where the reading stopped, and paging on from it reaches
/// every match, the oldest in the log too, once.
#[tokio::test]
async fn a_filtered_page_reads_a_bounded_stretch_and_paging_on_loses_nothing() {
    use switchyard::webhook::delivery_log::SCANNED_PER_PAGE;
    let t = TestLab::start(MemoryStore::new(), options()).await;
    let app = AppId::parse(A.0).unwrap();
    let room = RoomId::parse("lab01-room-550e8400-e29b-41d4-a716-446655440000").unwrap();
    let total = 2 * SCANNED_PER_PAGE + SCANNED_PER_PAGE / 2;
    // Dead letters: the oldest attempt, and one just past the first page's stretch.
    let dead = [0, total - SCANNED_PER_PAGE - 10];
    for n in 0..total {
        let outcome = if dead.contains(&n) {
            "dead_letter"
        } else {
            "delivered"
        };
        t.store()
            .log_delivery(&app, &attempt(&room, n, outcome), None)
            .await
            .unwrap();
    }
    let first = t.get(&format!("{LOG}?outcome=dead_letter"), A).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(first.body["deliveries"], json!([]), "none among the newest");
    assert_ne!(
        first.body["cursor"], "",
        "a short page still says where to go on"
    );
    let (found, pages) = walk(&t, A, "outcome=dead_letter", 50).await;
    let ids: Vec<&str> = found.iter().map(|d| d["id"].as_str().unwrap()).collect();
    let wanted = [format!("msg_{}-0", dead[1]), format!("msg_{}-0", dead[0])];
    assert_eq!(ids, wanted);
    assert_eq!(
        pages, 3,
        "each page reads {SCANNED_PER_PAGE} attempts at most"
    );
    // Unfiltered pages are full as ever.
    let (all, pages) = walk(&t, A, "", 500).await;
    assert_eq!(all.len(), total);
    assert_eq!(pages, total.div_ceil(500));
}
