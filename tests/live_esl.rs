//! Against a real FreeSWITCH: run with `SWITCHYARD_LIVE_ESL=host:port` (and
//! `SWITCHYARD_LIVE_ESL_PASSWORD`, default `ClueCon`). Without the variable these tests are
//! compiled but reported as ignored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use switchyard::esl::{
    ApiCommand, Client, ClientConfig, EventFormat, EventName, EventSet, Password,
};

async fn connect() -> (Client, switchyard::esl::EventStream) {
    let addr = std::env::var("SWITCHYARD_LIVE_ESL").expect("SWITCHYARD_LIVE_ESL");
    let password =
        std::env::var("SWITCHYARD_LIVE_ESL_PASSWORD").unwrap_or_else(|_| "ClueCon".into());
    Client::connect(
        &addr,
        &Password::new(&password).unwrap(),
        ClientConfig::default(),
    )
    .await
    .expect("connect and authenticate")
}

#[tokio::test]
#[cfg_attr(
    not(live_esl),
    ignore = "needs a real FreeSWITCH: set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_api_status_answers() {
    let (client, _events) = connect().await;
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
    not(live_esl),
    ignore = "needs a real FreeSWITCH: set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_bgapi_resolves_through_background_job() {
    let (client, mut events) = connect().await;
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
    not(live_esl),
    ignore = "needs a real FreeSWITCH: set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_subscription_delivers_events_in_both_formats() {
    for format in [EventFormat::Plain, EventFormat::Json] {
        let (client, mut events) = connect().await;
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
