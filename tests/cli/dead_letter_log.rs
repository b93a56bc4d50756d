//! A dead-lettered webhook is logged with what an operator needs to find it: the app, the room,
//! the message (webhook-id, event type, seq), the attempts and the last status; so is each
//! attempt that will be retried (at debug).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::log_capture;
use crate::webhook_support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use log_capture::Logs;
use switchyard::conference::EventKind;
use switchyard::store::Deliveries;
use switchyard::store::memory::MemoryStore;
use switchyard::webhook::spawn;
use webhook_support::*;

const WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_dead_letter_line_names_the_app_the_room_and_the_message() {
    let (logs, _capturing) = Logs::capture();
    let store = Arc::new(MemoryStore::new());
    let refused = TestRoom::create(&*store, "refused").await;
    let mut failing = TestRoom::create(&*store, "failing").await;
    failing
        .emit(&*store, EventKind::Progressing, json!({}))
        .await;
    let (refused_id, failing_id) = (refused.id().to_owned(), failing.id().to_owned());
    let receiver = Receiver::start(any_port(), move |body, _| {
        let room = body["room_id"].as_str().unwrap_or("");
        match (room, body["type"].as_str().unwrap_or("")) {
            (r, _) if r == refused_id => (400, None),
            (r, "conference.progressing") if r == failing_id => (503, None),
            _ => (200, None),
        }
    })
    .await;
    let stop = CancellationToken::new();
    spawn(store.clone(), config(&receiver.url(), 2), stop.clone()).unwrap();
    wait_for(WITHIN, || {
        futures_now(store.dead_letters(&app(), 10)).map_or(0, |l| l.len()) == 2
    })
    .await;
    stop.cancel();

    let sent_id = |room: &str, kind: &str| {
        receiver
            .requests()
            .iter()
            .find(|r| r.room() == room && r.json["type"] == kind)
            .map(|r| r.id().to_owned())
            .unwrap()
    };
    let dead = logs.with_message("webhook dead-lettered");
    assert_eq!(dead.len(), 2, "{}", logs.text());
    let line_of = |room: &str| -> Value {
        dead.iter()
            .find(|l| l["fields"]["room"] == room)
            .unwrap_or_else(|| panic!("no dead-letter line names {room}: {dead:?}"))
            .clone()
    };

    let line = line_of(refused.id());
    assert_eq!(line["level"], "WARN");
    // Inside the dispatcher's spans as well: the app's, then the message's.
    assert_eq!(line["spans"][0]["app"], "hook-app", "{line}");
    assert_eq!(line["span"]["room"], refused.id(), "{line}");
    let fields = &line["fields"];
    assert_eq!(fields["app"], "hook-app", "{line}");
    assert_eq!(
        fields["message_id"],
        sent_id(refused.id(), "conference.created"),
        "{line}"
    );
    assert_eq!(fields["event_type"], "conference.created", "{line}");
    assert_eq!(fields["seq"], refused.room.seq, "{line}");
    assert_eq!(fields["attempts"], 1, "{line}");
    assert_eq!(fields["status"], 400, "{line}");

    let line = line_of(failing.id());
    let fields = &line["fields"];
    assert_eq!(fields["app"], "hook-app", "{line}");
    let progressing_id = sent_id(failing.id(), "conference.progressing");
    assert_eq!(fields["message_id"], progressing_id, "{line}");
    assert_eq!(fields["event_type"], "conference.progressing", "{line}");
    assert_eq!(fields["seq"], failing.room.seq, "{line}");
    assert_eq!(fields["attempts"], 3, "{line}");
    assert_eq!(fields["status"], 503, "{line}");

    // The two attempts before it, each logged before its wait with the same names.
    let retried: Vec<Value> = logs
        .with_message("webhook attempt failed; will retry")
        .into_iter()
        .filter(|l| l["fields"]["message_id"] == progressing_id.as_str())
        .collect();
    assert_eq!(retried.len(), 2, "{}", logs.text());
    for l in &retried {
        assert_eq!(l["fields"]["app"], "hook-app", "{l}");
        assert_eq!(l["fields"]["room"], failing.id(), "{l}");
        assert_eq!(l["fields"]["seq"], failing.room.seq, "{l}");
    }
}

/// The value of a future that is ready at once (the memory store's are).
fn futures_now<T>(
    f: impl std::future::Future<Output = Result<T, switchyard::store::StoreError>>,
) -> Option<T> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => r.ok(),
        std::task::Poll::Pending => None,
    }
}
