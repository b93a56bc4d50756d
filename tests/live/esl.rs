//! The ESL client against a real FreeSWITCH: one each test starts (`tests/common/freeswitch.rs`),
//! or the running node `SWITCHYARD_LIVE_ESL=host:port` names (with `SWITCHYARD_LIVE_ESL_PASSWORD`,
//! default `ClueCon`). Without a FreeSWITCH these tests are compiled but reported as ignored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::freeswitch::FreeSwitch;

use std::time::Duration;

use switchyard::esl::{
    ApiCommand, Client, ClientConfig, EventFormat, EventName, EventSet, Password,
};

/// A logged-in client, and the node when this test started it (kept alive with the client).
async fn connect() -> (Client, switchyard::esl::EventStream, Option<FreeSwitch>) {
    let (addr, password, node) = match std::env::var("SWITCHYARD_LIVE_ESL") {
        Ok(addr) if !addr.is_empty() => (
            addr,
            std::env::var("SWITCHYARD_LIVE_ESL_PASSWORD").unwrap_or_else(|_| "ClueCon".into()),
            None,
        ),
        _ => {
            let node = tokio::task::spawn_blocking(FreeSwitch::start)
                .await
                .unwrap();
            (node.esl(), node.password.clone(), Some(node))
        }
    };
    let (client, events) = Client::connect(
        &addr,
        &Password::new(&password).unwrap(),
        ClientConfig::default(),
    )
    .await
    .expect("connect and authenticate");
    (client, events, node)
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_api_status_answers() {
    let (client, _events, _node) = connect().await;
    let status = client
        .api(&ApiCommand::new("status").unwrap())
        .await
        .unwrap();
    assert!(status.text().starts_with("UP "), "{}", status.text());
    let missing = client
        .api(&ApiCommand::new("nosuchcommand").unwrap())
        .await
        .unwrap();
    assert!(missing.is_error(), "{}", missing.text());
    client.exit().await.unwrap();
    assert!(client.closed().await.notice.is_some());
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_bgapi_resolves_through_background_job() {
    let (client, mut events, _node) = connect().await;
    client
        .subscribe(
            EventFormat::Plain,
            EventSet::new().name(EventName::BackgroundJob),
        )
        .await
        .unwrap();
    let reply = client
        .bgapi(&ApiCommand::new("status").unwrap())
        .await
        .unwrap();
    assert!(reply.text().starts_with("UP "), "{}", reply.text());
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.name(), &EventName::BackgroundJob);
    assert_eq!(event.header("Job-Command").unwrap(), "status");
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_subscription_delivers_events_in_both_formats() {
    for format in [EventFormat::Plain, EventFormat::Json] {
        let (client, mut events, _node) = connect().await;
        client
            .subscribe(format, EventSet::new().name(EventName::Api))
            .await
            .unwrap();
        client
            .api(&ApiCommand::new("status").unwrap())
            .await
            .unwrap();
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.name(), &EventName::Api, "{format:?}");
        assert!(
            event.core_uuid().is_some_and(|c| c.len() == 36),
            "{format:?}"
        );
        assert!(event.sequence().is_some(), "{format:?}");
    }
}
