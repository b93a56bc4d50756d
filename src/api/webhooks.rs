//! The app's webhook deliveries: `GET /api/v1/webhooks/deliveries` (every attempt, newest
//! first, with its outcome, HTTP status and error; filtered by outcome, room and type, and paged
//! by `cursor`: see [`crate::webhook::delivery_log`]) and
//! `POST /api/v1/webhooks/deliveries/{id}/retry` (send a dead-lettered message again).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{IdPath, QueryParams, iso8601, known_params, positive};
use super::openapi::errors::{BadRequest, Conflict, NotFound};
use super::openapi::params::{LogQuery as LogParams, MessagePath};
use super::openapi::schemas as doc;
use super::{ApiError, ApiState, Caller};
use crate::conference::{EventKind, RoomId};
use crate::rooms::ServiceError;
use crate::store::{Store, log_id};
use crate::telemetry::WebhookOutcome;
use crate::webhook::delivery_log::{self, LogFilter};
use crate::webhook::redeliver::{RedeliverError, redeliver};

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

// The descriptions below, `LogQuery`'s in `openapi/params.rs` and docs/api.md give these
// figures.
const _: () = assert!(
    delivery_log::SCANNED_PER_PAGE == 2_000
        && crate::store::DELIVERY_LOG_KEPT == 10_000
        && crate::store::DEAD_LETTERS_KEPT == 10_000,
    "the deliveries' documents say 2,000 and 10,000: give them the new figures"
);

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new()
        .route("/api/v1/webhooks/deliveries", get(list::<S>))
        .route("/api/v1/webhooks/deliveries/{id}/retry", post(retry::<S>))
}

/// A filter's value that is not one of its words (or an empty one) fails here: 400 "Invalid
/// query", saying what is expected.
#[derive(Deserialize)]
struct LogQuery {
    cursor: Option<String>,
    limit: Option<String>,
    outcome: Option<WebhookOutcome>,
    room_id: Option<RoomId>,
    #[serde(rename = "type")]
    kind: Option<EventKind>,
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks/deliveries",
    operation_id = "webhooks_deliveries",
    tag = "webhooks",
    summary = "The app's webhook delivery attempts, newest first",
    description = "Every attempt the log keeps (the newest 10,000 of the app), newest first, \
        a page at a time: pass `cursor` back for older ones. `outcome`, `room_id` and `type` \
        keep only the attempts that match all of those given (`outcome=dead_letter`: the \
        messages given up on, each to be sent again with its `id`). A filtered page reads at \
        most 2,000 attempts of the log: one that found fewer matches than `limit` by then ends \
        there, short or empty, with a `cursor` to read on from. Only an empty `cursor` says \
        the log has no more.",
    params(LogParams),
    responses(
        (status = 200, description = "A page of attempts", body = doc::DeliveryPage),
        (status = 400, response = BadRequest),
    )
)]
async fn list<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    QueryParams(q): QueryParams<LogQuery>,
    QueryParams(query): QueryParams<Vec<(String, String)>>,
) -> Answer {
    known_params(&query, &["cursor", "limit", "outcome", "room_id", "type"])?;
    let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) if log_id(c).is_some() => Some(c.to_owned()),
        Some(_) => return Err(ApiError::bad_request("Invalid cursor")),
    };
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(l) => positive("limit", l)?.min(500) as usize,
    };
    let filter = LogFilter {
        outcome: q.outcome,
        room: q.room_id,
        kind: q.kind,
    };
    let page = delivery_log::page(st.rooms().store(), &app, before.as_deref(), limit, &filter)
        .await
        .map_err(ServiceError::from)?;
    let deliveries: Vec<Value> = page
        .attempts
        .iter()
        .map(|(_, a)| {
            json!({
                "id": a.message_id,
                "type": a.kind,
                "room_id": a.room,
                "seq": a.seq,
                "attempt": a.attempt,
                "outcome": a.outcome,
                "status": a.status,
                "error": a.error,
                "at": iso8601(a.at),
                "duration_ms": a.duration_ms,
            })
        })
        .collect();
    let cursor = page.next.unwrap_or_default();
    Ok((
        StatusCode::OK,
        Json(json!({ "deliveries": deliveries, "cursor": cursor })),
    ))
}

/// 202: the message is back in the outbox with its id; 404 when no dead letter has that id,
/// 409 when it was sent again already.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/deliveries/{id}/retry",
    operation_id = "webhooks_retry",
    tag = "webhooks",
    summary = "Send a dead-lettered webhook again",
    description = "It goes back in the outbox with its original `webhook-id` and `seq`, behind \
        its room's pending events. Once per dead letter (refused for 30 days). The app's newest \
        10,000 dead letters can be sent again, also those whose attempts have left the \
        delivery log.",
    params(MessagePath),
    responses(
        (status = 202, description = "Queued", body = doc::RetryQueued),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
async fn retry<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(id): IdPath,
) -> Answer {
    match redeliver(st.rooms().store(), &app, &id).await {
        Ok(letter) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "id": id, "type": letter.event.kind, "status": "queued" })),
        )),
        Err(RedeliverError::NotDead) => Err(ApiError::NotFound(
            "No dead-lettered delivery with this id".into(),
        )),
        Err(RedeliverError::AlreadyRedelivered) => Err(ApiError::Conflict {
            error: "This delivery was already retried".into(),
            detail: Value::Null,
        }),
        Err(RedeliverError::Store(e)) => Err(ServiceError::from(e).into()),
    }
}
