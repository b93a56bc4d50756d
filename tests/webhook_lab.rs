//! Webhooks end to end in the lab: requests to the REST API, confirmations from the simulated
//! node, and every resulting domain event delivered, signed, to a real receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod webhook_support;

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use common::api::{A, TestLab, options};
use switchyard::conference::AppId;
use switchyard::store::memory::MemoryStore;
use switchyard::webhook::sign::Signer;
use webhook_support::{Receiver, secret};

#[tokio::test]
async fn lab_events_reach_the_receiver_signed_and_in_room_order() {
    let receiver = Receiver::ok().await;
    let mut opts = options();
    opts.webhook = Some((receiver.url(), Signer::parse(&secret()).unwrap()));
    let t = TestLab::start(MemoryStore::new(), opts).await;

    let room = t.room(A, "standup").await;
    let session = t.call(A, "1001").await;
    t.joined(A, &room, &session).await;
    let r = t.command(A, &session, "conference/unmute").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let app = AppId::parse(A.0).unwrap();
    common::api::eventually("unmuted", || async {
        t.count(A, switchyard::conference::EventKind::MemberUnmuted)
            .await
            > 0
    })
    .await;

    let outbox = t.events(A).await;
    let got = receiver
        .wait_delivered(outbox.len(), Duration::from_secs(10))
        .await;
    assert_eq!(got.len(), outbox.len());
    let webhook = standardwebhooks::Webhook::new(&secret()).unwrap();
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    for r in &got {
        webhook.verify(&r.body, &r.headers).expect("signed");
        assert_eq!(r.json["app_id"], app.as_str());
        let prev = last_seq.insert(r.room().to_owned(), r.seq());
        assert!(
            prev.is_none_or(|p| p < r.seq()),
            "room order: {prev:?} then {}",
            r.seq()
        );
    }
    let types: Vec<&str> = got.iter().filter_map(|r| r.json["type"].as_str()).collect();
    for kind in [
        "conference.created",
        "conference.member.joined",
        "conference.member.unmuted",
    ] {
        assert!(types.contains(&kind), "{kind} missing from {types:?}");
    }
    // The same events, in the same order, as the outbox holds.
    let sent: Vec<&str> = outbox.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(types, sent);
}
