//! The event feed: an application that missed webhooks catches up here. `GET /api/v1/events`
//! pages through the app's events (the webhook outbox) in order; `GET /api/v1/events/stream`
//! streams them as Server-Sent Events, resuming after `Last-Event-ID`. Each event is the
//! webhook envelope, with the same `id`, so a receiver de-duplicates across both.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{QueryParams, known_params, positive};
use super::openapi::errors::BadRequest;
use super::openapi::params::{FeedQuery as FeedParams, ResumeHeader, StreamQuery};
use super::openapi::schemas as doc;
use super::{ApiError, ApiState, Caller};
use crate::conference::AppId;
use crate::store::{Position, Store};
use crate::webhook::envelope::Envelope;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new()
        .route("/api/v1/events", get(list::<S>))
        .route("/api/v1/events/stream", get(stream::<S>))
}

#[derive(Deserialize)]
struct FeedQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// A position in the feed: the `cursor` of a page, or the SSE id of the last event seen
/// (`<ms>-<n>`, or one such per shard of a store that spreads an app, comma-separated).
fn position(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(p) if Position::parse(p).is_some() => Ok(Some(p.to_owned())),
        Some(p) => Err(ApiError::bad_request_with(
            "Invalid after: an event cursor as returned by this feed",
            json!({ "after": p.chars().take(64).collect::<String>() }),
        )),
    }
}

fn envelope(id: &str, event: &crate::conference::DomainEvent) -> Value {
    serde_json::to_value(Envelope::new(id, event)).unwrap_or(Value::Null)
}

#[utoipa::path(
    get,
    path = "/api/v1/events",
    operation_id = "events_list",
    tag = "events",
    summary = "The app's events, in order",
    description = "From the outbox that webhooks are delivered from: the same envelopes, with \
        the same message ids, for an application that missed webhooks.",
    params(FeedParams),
    responses(
        (status = 200, description = "A page of events", body = doc::EventPage),
        (status = 400, response = BadRequest),
    )
)]
async fn list<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    QueryParams(q): QueryParams<FeedQuery>,
    QueryParams(query): QueryParams<Vec<(String, String)>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    known_params(&query, &["after", "limit"])?;
    let after = position(q.after.as_deref())?;
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(l) => positive("limit", l)?.min(1000) as usize,
    };
    let rows = crate::store::replicated_outbox(st.rooms().store(), &app, after.as_deref(), limit)
        .await
        .map_err(crate::rooms::ServiceError::from)?;
    let cursor = rows
        .last()
        .map(|row| row.position.clone())
        .or(after)
        .unwrap_or_default();
    let events: Vec<Value> = rows
        .iter()
        .map(|row| envelope(&row.id, &row.event))
        .collect();
    Ok((
        StatusCode::OK,
        Json(json!({ "events": events, "cursor": cursor })),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/events/stream",
    operation_id = "events_stream",
    tag = "events",
    summary = "The app's events as Server-Sent Events",
    description = "First the events after `after` (or `Last-Event-ID`), then each new one as it \
        happens: `id` = the event id, `event` = its type, `data` = the envelope. A comment every \
        15 s keeps the connection open.",
    params(
        StreamQuery,
        ResumeHeader,
    ),
    responses(
        (status = 200, description = "The stream: one event per envelope", content_type = "text/event-stream", body = doc::StreamEvent),
        (status = 400, response = BadRequest),
    )
)]
async fn stream<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    headers: HeaderMap,
    QueryParams(q): QueryParams<FeedQuery>,
    QueryParams(query): QueryParams<Vec<(String, String)>>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    known_params(&query, &["after"])?;
    // An empty Last-Event-ID is none (the stream starts from `after`).
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::bad_request("Invalid Last-Event-ID: an event id as this stream sent it")
        })?)
        .filter(|v| !v.is_empty()),
    };
    // `after` must be well-formed even when the header wins.
    let (after, now) = match q.after.as_deref() {
        Some("now") => (Some(now_position()), true),
        other => (position(other)?, false),
    };
    let (after, announce) = match resume {
        Some(header) => (position(Some(header))?, false),
        None => (after, now),
    };
    let events = feed(st, app, after, announce);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// How far back `after=now` starts: outbox ids are stamped by the store's clock (Redis's, or
/// this process's), which may run a little behind this one; what was sent twice is harmless to
/// a reader that de-duplicates on `id`.
const NOW_MARGIN_MS: u64 = 2_000;

/// The position of `after=now`.
fn now_position() -> String {
    let ms = crate::node::supervisor::now_micros().max(0) as u64 / 1000;
    format!("{}-0", ms.saturating_sub(NOW_MARGIN_MS))
}

/// The app's events after `after`, forever: each read pages through what is there, then waits
/// for the app's outbox to grow (woken by the store on any controller's append; polling only
/// while those notifications are down).
fn feed<S: Store>(
    st: ApiState<S>,
    app: AppId,
    after: Option<String>,
    announce: bool,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let bell = st.rooms().store().outbox_watch(&app);
    // `after=now` starts with the position it stands for, as an event with an id and no data
    // (which sets a browser's last event id and dispatches nothing): a client that drops before
    // any event comes resumes from there, not from a later "now".
    let mut queue = VecDeque::new();
    if let (true, Some(position)) = (announce, &after) {
        queue.push_back(SseEvent::default().id(position.clone()));
    }
    // `caught_up`: the last read returned less than it asked for, so once its rows are sent
    // the stream waits for the bell (rung after that read's `seen`) instead of reading again.
    let state = (st, app, after, queue, bell, false);
    futures_util::stream::unfold(
        state,
        |(st, app, mut after, mut queue, mut bell, mut caught_up)| async move {
            loop {
                if let Some(event) = queue.pop_front() {
                    return Some((Ok(event), (st, app, after, queue, bell, caught_up)));
                }
                if caught_up {
                    bell.wait(tokio::time::Instant::now(), st.stream_waits())
                        .await;
                }
                bell.seen();
                match crate::store::replicated_outbox(
                    st.rooms().store(),
                    &app,
                    after.as_deref(),
                    PAGE,
                )
                .await
                {
                    Ok(rows) => {
                        caught_up = rows.len() < PAGE;
                        // The SSE id is the position (what `Last-Event-ID` resumes from); the
                        // envelope's id is the event's own.
                        for row in &rows {
                            let data = envelope(&row.id, &row.event).to_string();
                            queue.push_back(
                                SseEvent::default()
                                    .id(&row.position)
                                    .event(row.event.kind.as_str())
                                    .data(data),
                            );
                        }
                        after = rows.last().map(|row| row.position.clone()).or(after);
                    }
                    // The store is briefly unreachable (or its replicas behind): look again
                    // after the poll interval.
                    Err(_) => {
                        caught_up = false;
                        tokio::time::sleep(st.stream_waits().poll).await;
                    }
                }
            }
        },
    )
}

/// Events read from the outbox at once.
const PAGE: usize = 256;
